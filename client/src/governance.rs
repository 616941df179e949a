//! Governance of a deployed suite: the network fee and the template registry.
//!
//! A governance change is made by whoever holds the governor role: an account, which sends it at
//! once, or (in production) the governance timelock, whose proposer schedules it and which anyone
//! may execute once the delay is over. [`govern`] takes the path the sender may take and is
//! idempotent: run once it schedules, run again after the delay it executes, and a change already
//! in effect is reported as such, without a transaction.

use alloy::{
    network::TransactionBuilder,
    primitives::{Address, B256, Bytes, U256, keccak256},
    providers::Provider,
    rpc::types::{Filter, TransactionRequest},
    sol_types::{SolCall, SolEvent, SolValue},
};
use insitu_bindings::{AgreementStore, GovernanceTimelock, PaymentCondition, TemplateRegistry};
use serde::Serialize;

use crate::{
    suite::Suite,
    tx::{Progress, Sender, TxError},
};

/// Blocks per `eth_getLogs` request when scanning history.
pub const LOG_CHUNK: u64 = 10_000;

/// Why a governance command failed; nothing was sent unless the error is [`GovernanceError::Tx`].
#[derive(Debug, thiserror::Error)]
pub enum GovernanceError {
    /// The sender can neither make the change nor schedule it.
    #[error(
        "{sender} may not govern this suite: it is not a governor, nor a proposer of the governance timelock"
    )]
    NotGovernor {
        /// The sender.
        sender: Address,
    },
    /// The change is invalid (checked before sending).
    #[error("{0}")]
    Invalid(String),
    /// A read failed.
    #[error("reading the chain: {0}")]
    Call(#[from] alloy::contract::Error),
    /// The node could not be read.
    #[error("RPC error: {0}")]
    Rpc(#[from] alloy::transports::TransportError),
    /// A transaction failed.
    #[error(transparent)]
    Tx(#[from] TxError),
}

/// Where a governance change stands after [`govern`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// Nothing to do: the change is in effect.
    AlreadyInEffect {
        /// What is in effect.
        detail: String,
    },
    /// The change was made by this call.
    Done {
        /// The transaction.
        transaction: B256,
    },
    /// The change was scheduled in the timelock by this call.
    Scheduled {
        /// The timelock operation.
        operation: B256,
        /// Unix time from which it can be executed.
        ready_at: u64,
        /// The transaction.
        transaction: B256,
    },
    /// The change is scheduled and waits for the delay to pass.
    Waiting {
        /// The timelock operation.
        operation: B256,
        /// Unix time from which it can be executed.
        ready_at: u64,
    },
}

/// The state of a template in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TemplateStatus {
    /// Never proposed.
    Uninitialized,
    /// Proposed, waiting for governance.
    Proposed,
    /// Approved: it may create agreements.
    Approved,
    /// Revoked for good.
    Revoked,
}

impl TemplateStatus {
    /// From the registry's `TemplateState` value.
    pub fn from_raw(value: u8) -> Self {
        match value {
            1 => Self::Proposed,
            2 => Self::Approved,
            3 => Self::Revoked,
            _ => Self::Uninitialized,
        }
    }
}

/// A template known to the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TemplateInfo {
    /// Its address.
    pub address: Address,
    /// Its name in the addresses file, for the suite's templates.
    pub name: Option<String>,
    /// Its state.
    pub status: TemplateStatus,
}

/// The suite's templates and every template proposed since the deployment, with their states.
///
/// # Errors
///
/// [`GovernanceError::Rpc`] or [`GovernanceError::Call`].
pub async fn list_templates(suite: &Suite) -> Result<Vec<TemplateInfo>, GovernanceError> {
    let store = AgreementStore::new(suite.addresses.agreement_store, suite.provider());
    let mut addresses = vec![
        suite.addresses.access_template,
        suite.addresses.compute_template,
    ];
    let latest = suite.provider().get_block_number().await?;
    let mut from = suite.deployment.block;
    while from <= latest {
        let to = (from + LOG_CHUNK - 1).min(latest);
        let filter = Filter::new()
            .address(suite.addresses.agreement_store)
            .event_signature(TemplateRegistry::TemplateProposed::SIGNATURE_HASH)
            .from_block(from)
            .to_block(to);
        for log in suite.provider().get_logs(&filter).await? {
            if let Ok(event) = log.log_decode::<TemplateRegistry::TemplateProposed>()
                && !addresses.contains(&event.inner.data.template)
            {
                addresses.push(event.inner.data.template);
            }
        }
        from = to + 1;
    }
    let mut templates = Vec::with_capacity(addresses.len());
    for address in addresses {
        let status = TemplateStatus::from_raw(store.templateState(address).call().await?);
        templates.push(TemplateInfo {
            address,
            name: suite.name_of(address).map(str::to_owned),
            status,
        });
    }
    Ok(templates)
}

/// Proposes `template` (anyone may). A template already proposed, approved or revoked is
/// reported, not proposed again.
///
/// # Errors
///
/// [`GovernanceError::Invalid`] when `template` has no code, or see [`GovernanceError`].
pub async fn propose_template(
    suite: &Suite,
    sender: &Sender,
    template: Address,
    progress: &dyn Progress,
) -> Result<Outcome, GovernanceError> {
    let store = AgreementStore::new(suite.addresses.agreement_store, suite.provider());
    match TemplateStatus::from_raw(store.templateState(template).call().await?) {
        TemplateStatus::Uninitialized => {}
        status => {
            return Ok(Outcome::AlreadyInEffect {
                detail: format!("template {template} is {}", status_word(status)),
            });
        }
    }
    if suite.provider().get_code_at(template).await?.is_empty() {
        return Err(GovernanceError::Invalid(format!(
            "{template} is not a contract: only a deployed template can be proposed"
        )));
    }
    let request = TransactionRequest::default()
        .with_to(suite.addresses.agreement_store)
        .with_input(TemplateRegistry::proposeTemplateCall { template }.abi_encode());
    let receipt = sender.send("propose template", request, progress).await?;
    Ok(Outcome::Done {
        transaction: receipt.transaction_hash,
    })
}

/// Approves a proposed `template` through governance (see [`govern`]).
///
/// # Errors
///
/// [`GovernanceError::Invalid`] when it is not proposed, or see [`GovernanceError`].
pub async fn approve_template(
    suite: &Suite,
    sender: &Sender,
    template: Address,
    progress: &dyn Progress,
) -> Result<Outcome, GovernanceError> {
    let store = AgreementStore::new(suite.addresses.agreement_store, suite.provider());
    match TemplateStatus::from_raw(store.templateState(template).call().await?) {
        TemplateStatus::Proposed => {}
        TemplateStatus::Approved => {
            return Ok(Outcome::AlreadyInEffect {
                detail: format!("template {template} is approved"),
            });
        }
        status => {
            return Err(GovernanceError::Invalid(format!(
                "template {template} is {}: only a proposed template can be approved",
                status_word(status)
            )));
        }
    }
    let call = TemplateRegistry::approveTemplateCall { template }.abi_encode();
    govern(
        suite,
        sender,
        "approve template",
        suite.addresses.agreement_store,
        call.into(),
        progress,
    )
    .await
}

/// The network fee and what has accrued of some tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeeInfo {
    /// Who withdraws the fees.
    pub receiver: Address,
    /// Basis points of each price.
    pub bps: u16,
    /// The highest fee governance may set.
    pub max_bps: u16,
    /// What has accrued of each token asked about.
    pub accrued: Vec<Accrued>,
}

/// Network fees of one token accrued and not yet withdrawn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Accrued {
    /// The token (zero address: ETH).
    pub token: Address,
    /// The amount.
    pub amount: U256,
}

/// Reads the network fee and the fees accrued in `tokens`.
///
/// # Errors
///
/// [`GovernanceError::Call`].
pub async fn fee(suite: &Suite, tokens: &[Address]) -> Result<FeeInfo, GovernanceError> {
    let payment = PaymentCondition::new(suite.addresses.payment, suite.provider());
    let fee = payment.networkFee().call().await?;
    let max_bps = payment.MAX_FEE_BPS().call().await?;
    let mut accrued = Vec::with_capacity(tokens.len());
    for token in tokens {
        accrued.push(Accrued {
            token: *token,
            amount: payment.accruedFees(*token).call().await?,
        });
    }
    Ok(FeeInfo {
        receiver: fee.receiver,
        bps: fee.bps,
        max_bps,
        accrued,
    })
}

/// Sets the network fee through governance (see [`govern`]).
///
/// # Errors
///
/// [`GovernanceError::Invalid`] for a fee above the maximum or a zero receiver of a non-zero fee
/// (checked before anything is sent), or see [`GovernanceError`].
pub async fn set_fee(
    suite: &Suite,
    sender: &Sender,
    receiver: Address,
    bps: u16,
    progress: &dyn Progress,
) -> Result<Outcome, GovernanceError> {
    let current = fee(suite, &[]).await?;
    if bps > current.max_bps {
        return Err(GovernanceError::Invalid(format!(
            "a network fee of {bps} bps is above the maximum of {} bps",
            current.max_bps
        )));
    }
    if bps != 0 && receiver.is_zero() {
        return Err(GovernanceError::Invalid(
            "a non-zero network fee needs a non-zero receiver".to_owned(),
        ));
    }
    if current.bps == bps && current.receiver == receiver {
        return Ok(Outcome::AlreadyInEffect {
            detail: format!("the network fee is {bps} bps for {receiver}"),
        });
    }
    let call = PaymentCondition::setNetworkFeeCall { receiver, bps }.abi_encode();
    govern(
        suite,
        sender,
        "set network fee",
        suite.addresses.payment,
        call.into(),
        progress,
    )
    .await
}

/// Makes the governance call `data` to `target`: directly when the sender is a governor; through
/// the governance timelock when the timelock governs, scheduling it (the sender must be a proposer)
/// or, once the delay is over, executing it (anyone may).
///
/// Each change is a timelock operation whose salt derives from the call and a counter, the first
/// such operation not yet executed, so the same change can be made again later (say a fee set back
/// to an earlier value).
///
/// # Errors
///
/// [`GovernanceError::NotGovernor`] (nothing sent), or see [`GovernanceError`].
pub async fn govern(
    suite: &Suite,
    sender: &Sender,
    label: &str,
    target: Address,
    data: Bytes,
    progress: &dyn Progress,
) -> Result<Outcome, GovernanceError> {
    let store = AgreementStore::new(suite.addresses.agreement_store, suite.provider());
    if store.isGovernor(sender.address()).call().await? {
        let request = TransactionRequest::default()
            .with_to(target)
            .with_input(data);
        let receipt = sender.send(label, request, progress).await?;
        return Ok(Outcome::Done {
            transaction: receipt.transaction_hash,
        });
    }
    let Some(timelock_address) = suite.addresses.governance_timelock else {
        return Err(GovernanceError::NotGovernor {
            sender: sender.address(),
        });
    };
    if !store.isGovernor(timelock_address).call().await? {
        return Err(GovernanceError::NotGovernor {
            sender: sender.address(),
        });
    }
    let timelock = GovernanceTimelock::new(timelock_address, suite.provider());
    let mut counter = 0_u64;
    let (operation, salt, state) = loop {
        let salt = keccak256((target, data.clone(), U256::from(counter)).abi_encode());
        let operation = timelock
            .hashOperation(target, U256::ZERO, data.clone(), B256::ZERO, salt)
            .call()
            .await?;
        let state = timelock.getOperationState(operation).call().await?;
        // OperationState: Unset, Waiting, Ready, Done.
        if state != 3 {
            break (operation, salt, state);
        }
        counter += 1;
    };
    match state {
        0 => {
            let proposer_role = timelock.PROPOSER_ROLE().call().await?;
            if !timelock
                .hasRole(proposer_role, sender.address())
                .call()
                .await?
            {
                return Err(GovernanceError::NotGovernor {
                    sender: sender.address(),
                });
            }
            let delay = timelock.getMinDelay().call().await?;
            let call = GovernanceTimelock::scheduleCall {
                target,
                value: U256::ZERO,
                data,
                predecessor: B256::ZERO,
                salt,
                delay,
            };
            let request = TransactionRequest::default()
                .with_to(timelock_address)
                .with_input(call.abi_encode());
            let receipt = sender
                .send(&format!("schedule {label}"), request, progress)
                .await?;
            let ready_at = timelock.getTimestamp(operation).call().await?;
            Ok(Outcome::Scheduled {
                operation,
                ready_at: ready_at.try_into().unwrap_or(u64::MAX),
                transaction: receipt.transaction_hash,
            })
        }
        1 => {
            let ready_at = timelock.getTimestamp(operation).call().await?;
            Ok(Outcome::Waiting {
                operation,
                ready_at: ready_at.try_into().unwrap_or(u64::MAX),
            })
        }
        _ => {
            let call = GovernanceTimelock::executeCall {
                target,
                value: U256::ZERO,
                payload: data,
                predecessor: B256::ZERO,
                salt,
            };
            let request = TransactionRequest::default()
                .with_to(timelock_address)
                .with_input(call.abi_encode());
            let receipt = sender
                .send(&format!("execute {label}"), request, progress)
                .await?;
            Ok(Outcome::Done {
                transaction: receipt.transaction_hash,
            })
        }
    }
}

fn status_word(status: TemplateStatus) -> &'static str {
    match status {
        TemplateStatus::Uninitialized => "not proposed",
        TemplateStatus::Proposed => "already proposed",
        TemplateStatus::Approved => "already approved",
        TemplateStatus::Revoked => "revoked",
    }
}
