//! What `insitu-keeper admin` does, for the operator: read the store (agreements, their history
//! and transactions, the audit log), write requests (retry, abandon, re-index) that the running
//! keeper applies, and read the key's balance. Every function checks its input before writing
//! anything.

use std::{path::Path, time::Duration};

use alloy::primitives::{Address, B256, U256};
use serde::Serialize;

use crate::store::{
    Action, ActionState, Agreement, AgreementState, Attempt, AuditEntry, EventKind, LogPosition,
    OperatorRequest, RequestKind, Store, StoreError,
};

/// Longest reason accepted, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// Why an admin command was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Not a 32-byte hex id.
    #[error("{0:?} is not an agreement id (32 bytes, 0x-prefixed hex)")]
    BadId(String),
    /// A state name that does not exist.
    #[error("{given:?} is not {what}; one of: {choices}")]
    BadState {
        /// The name given.
        given: String,
        /// What it should name.
        what: &'static str,
        /// The names accepted.
        choices: &'static str,
    },
    /// The store has no such agreement.
    #[error("no agreement of this keeper has id {0}")]
    UnknownAgreement(B256),
    /// An empty or overlong reason.
    #[error(
        "a reason is required (1 to {MAX_REASON_CHARS} characters): it goes into the audit log"
    )]
    Reason,
    /// A re-index before the deployment.
    #[error("block {from} is before the deployment (block {deployed}): nothing to scan there")]
    BeforeDeployment {
        /// The block asked for.
        from: u64,
        /// The deployment's block.
        deployed: u64,
    },
}

/// Parses an agreement id.
///
/// # Errors
///
/// [`AdminError::BadId`].
pub fn parse_id(text: &str) -> Result<B256, AdminError> {
    let trimmed = text.trim();
    if !trimmed.starts_with("0x") || trimmed.len() != 66 {
        return Err(AdminError::BadId(text.to_owned()));
    }
    trimmed
        .parse()
        .map_err(|_| AdminError::BadId(text.to_owned()))
}

/// Parses an agreement state name (`paid`, `released`, ...).
///
/// # Errors
///
/// [`AdminError::BadState`].
pub fn parse_agreement_state(text: &str) -> Result<AgreementState, AdminError> {
    AgreementState::parse(text).map_err(|_| AdminError::BadState {
        given: text.to_owned(),
        what: "an agreement state",
        choices: "created, payment_aborted, paid, served, service_aborted, released, refunded",
    })
}

/// Parses a settlement state name, or `none` for agreements without a settlement.
///
/// # Errors
///
/// [`AdminError::BadState`].
pub fn parse_settlement_state(text: &str) -> Result<Option<ActionState>, AdminError> {
    if text == "none" {
        return Ok(None);
    }
    ActionState::parse(text)
        .map(Some)
        .map_err(|_| AdminError::BadState {
            given: text.to_owned(),
            what: "a settlement state",
            choices: "none, pending, signed, sent, confirmed, done, failed, abandoned",
        })
}

/// One line of `admin agreements`.
#[derive(Debug, Clone, Serialize)]
pub struct AgreementLine {
    /// The agreement.
    pub id: B256,
    /// The asset.
    pub did: B256,
    /// The consumer.
    pub consumer: Address,
    /// Where it stands on chain.
    pub state: AgreementState,
    /// Block of its creation.
    pub created_block: u64,
    /// Its settlement's state, if the keeper has one.
    pub settlement: Option<ActionState>,
    /// What happened to the settlement, in words.
    pub outcome: Option<String>,
    /// Unix time of the settlement's last change.
    pub updated_at: Option<u64>,
}

/// The agreements, newest first (see [`Store::agreement_list`]).
///
/// # Errors
///
/// [`AdminError::Store`].
pub fn agreements(
    store: &Store,
    state: Option<AgreementState>,
    settlement: Option<Option<ActionState>>,
    limit: u64,
) -> Result<Vec<AgreementLine>, AdminError> {
    Ok(store
        .agreement_list(state, settlement, limit)?
        .into_iter()
        .map(|(agreement, action)| AgreementLine {
            id: agreement.id,
            did: agreement.did,
            consumer: agreement.consumer,
            state: agreement.state,
            created_block: agreement.created_block,
            settlement: action.as_ref().map(|action| action.state),
            outcome: action.as_ref().and_then(|action| action.outcome.clone()),
            updated_at: action.map(|action| action.updated_at),
        })
        .collect())
}

/// A chain event of an agreement.
#[derive(Debug, Clone, Serialize)]
pub struct ChainEvent {
    /// What happened.
    pub kind: EventKind,
    /// Where.
    #[serde(flatten)]
    pub at: LogPosition,
}

/// Everything the keeper knows of one agreement.
#[derive(Debug, Clone, Serialize)]
pub struct AgreementReport {
    /// The agreement, as the watcher recorded it.
    pub agreement: Agreement,
    /// Its events on chain, in chain order.
    pub events: Vec<ChainEvent>,
    /// Its settlement.
    pub settlement: Option<Action>,
    /// Every transaction signed for it, newest first.
    pub attempts: Vec<Attempt>,
    /// The operator's requests about it.
    pub requests: Vec<OperatorRequest>,
    /// Its audit log, oldest line first.
    pub audit: Vec<AuditEntry>,
}

/// The report of agreement `id`.
///
/// # Errors
///
/// [`AdminError::UnknownAgreement`], [`AdminError::Store`].
pub fn show(store: &Store, id: B256) -> Result<AgreementReport, AdminError> {
    let agreement = store
        .agreement(id)?
        .ok_or(AdminError::UnknownAgreement(id))?;
    Ok(AgreementReport {
        agreement,
        events: store
            .events(id)?
            .into_iter()
            .map(|(at, kind)| ChainEvent { kind, at })
            .collect(),
        settlement: store.action(id)?,
        attempts: store.attempts(id)?,
        requests: store.requests_for(id)?,
        audit: store.audit(Some(id), u64::MAX >> 1)?,
    })
}

fn check_reason(reason: &str) -> Result<(), AdminError> {
    let length = reason.trim().chars().count();
    if length == 0 || length > MAX_REASON_CHARS {
        return Err(AdminError::Reason);
    }
    Ok(())
}

/// Requests a retry or an abandon of agreement `id`'s settlement, with `reason`; returns the
/// request's number. The running keeper applies it in its next round.
///
/// # Errors
///
/// [`AdminError::Reason`] or [`AdminError::UnknownAgreement`], before anything is written.
pub fn request_settlement(
    store: &mut Store,
    kind: RequestKind,
    id: B256,
    reason: &str,
    now: u64,
) -> Result<u64, AdminError> {
    check_reason(reason)?;
    if store.agreement(id)?.is_none() {
        return Err(AdminError::UnknownAgreement(id));
    }
    Ok(store.request(kind, Some(id), None, reason.trim(), now)?)
}

/// Requests a re-index from block `from` (not before `deployed`, the deployment's block), with
/// `reason`; returns the request's number.
///
/// # Errors
///
/// [`AdminError::Reason`] or [`AdminError::BeforeDeployment`], before anything is written.
pub fn request_reindex(
    store: &mut Store,
    from: u64,
    deployed: u64,
    reason: &str,
    now: u64,
) -> Result<u64, AdminError> {
    check_reason(reason)?;
    if from < deployed {
        return Err(AdminError::BeforeDeployment { from, deployed });
    }
    Ok(store.request(RequestKind::Reindex, None, Some(from), reason.trim(), now)?)
}

/// Waits up to `timeout` for request `seq` to be applied by the running keeper; the request as
/// it stands then.
///
/// # Errors
///
/// [`AdminError::Store`].
pub async fn wait_applied(
    database: &Path,
    seq: u64,
    timeout: Duration,
) -> Result<Option<OperatorRequest>, AdminError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let request = Store::open(database)?.operator_request(seq)?;
        let applied = request
            .as_ref()
            .is_some_and(|request| request.applied_at.is_some());
        if applied || tokio::time::Instant::now() >= deadline {
            return Ok(request);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The keeper account's balance.
#[derive(Debug, Clone, Serialize)]
pub struct Balance {
    /// The account.
    pub account: Address,
    /// Its balance in wei.
    pub wei: U256,
    /// The same in gwei (rounded down).
    pub gwei: U256,
    /// The configured low-balance threshold, in gwei.
    pub low_balance_gwei: u64,
    /// Whether the balance is below it.
    pub low: bool,
}

impl Balance {
    /// `wei` for `account`, judged against `low_balance_gwei`.
    pub fn new(account: Address, wei: U256, low_balance_gwei: u64) -> Self {
        let gwei = wei / U256::from(1_000_000_000_u64);
        Self {
            account,
            wei,
            gwei,
            low_balance_gwei,
            low: gwei < U256::from(low_balance_gwei),
        }
    }
}
