//! The executor: carries out the settlement actions the store holds, exactly once, with the
//! keeper's key.
//!
//! Each [`Executor::tick`] moves every action one step along:
//!
//! - **pending**: the chain is read first. A payment already released is recorded as done and
//!   nothing is sent; an unpaid, refunded or timed-out agreement fails with the reason; a service
//!   already fulfilled needs only `release`, otherwise `fulfilAndRelease`. The call's gas is
//!   estimated (a call that would revert fails with its decoded error, never retried blindly), a
//!   nonce assigned (the lowest at or above the account's mined count that no other in-flight
//!   action holds), fees taken from the node, and the signed transaction recorded before it is
//!   broadcast.
//! - **signed**: broadcast (again).
//! - **sent**: the receipts of all its attempts are looked up. Once one is buried under the
//!   confirmations the action is confirmed (or failed, if it reverted). If the nonce was used by
//!   none of them, the chain is read again and the action decided anew. A transaction left
//!   unmined for `bump_after` is replaced with fees 12.5% higher (at least the node's current
//!   estimate), up to the fee cap.
//! - **confirmed**: if the transaction's receipt disappears (a reorg), back to sent.
//!
//! Since every step is recorded before the next begins, the process can die anywhere (see
//! [`CrashPoint`]): the next start finds each action where it was and finishes it, and no
//! agreement is settled twice.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy::{
    eips::Encodable2718,
    network::{EthereumWallet, NetworkTransactionBuilder, TransactionBuilder},
    primitives::{Address, B256},
    providers::{DynProvider, Provider},
    rpc::types::TransactionRequest,
    signers::local::PrivateKeySigner,
    sol_types::SolCall,
    transports::TransportError,
};
use insitu_bindings::{
    AccessCondition, AgreementStore, PaymentCondition, deployment::SuiteAddresses,
    errors::decode_revert, offers::Payment,
};

use insitu_client::agreement::ConditionState;

use crate::store::{Action, ActionState, Agreement, Attempt, SettlementCall, Store, StoreError};

/// Default time a transaction may stay unmined before it is replaced with higher fees.
pub const DEFAULT_BUMP_AFTER: Duration = Duration::from_secs(30);
/// Default highest fee per gas the keeper pays (1000 gwei).
pub const DEFAULT_MAX_FEE_PER_GAS: u128 = 1_000_000_000_000;
/// Fee increase of a replacement, in per mille (nodes require at least 10%).
pub const BUMP_PER_MILLE: u128 = 125;
/// Gas limit margin over the estimate, in percent.
const GAS_MARGIN_PERCENT: u64 = 20;

/// A point at which a test makes the executor stop as if the process had been killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// The transaction is signed and recorded, not broadcast.
    AfterSign,
    /// The transaction is broadcast and recorded as sent.
    AfterSend,
    /// The receipt is buried under the confirmations but not recorded.
    AfterReceipt,
}

impl CrashPoint {
    /// Parses `after_sign`, `after_send` or `after_receipt`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "after_sign" => Some(Self::AfterSign),
            "after_send" => Some(Self::AfterSend),
            "after_receipt" => Some(Self::AfterReceipt),
            _ => None,
        }
    }
}

/// Why a tick stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    /// The node could not be reached (the tick is retried; nothing is lost).
    #[error("RPC error: {0}")]
    Rpc(#[from] TransportError),
    /// A contract read failed.
    #[error("reading the chain: {0}")]
    Call(#[from] alloy::contract::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Signing failed.
    #[error("signing: {0}")]
    Signing(String),
    /// A configured crash point was reached (tests).
    #[error("crash point {0:?} reached")]
    Crashed(CrashPoint),
}

/// What a tick did to one action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Signed and broadcast (`call` with `nonce`).
    Sent {
        /// The agreement.
        agreement: B256,
        /// The transaction.
        tx_hash: B256,
        /// Its nonce.
        nonce: u64,
    },
    /// Replaced with higher fees.
    Bumped {
        /// The agreement.
        agreement: B256,
        /// The new transaction.
        tx_hash: B256,
    },
    /// Confirmed on chain.
    Confirmed {
        /// The agreement.
        agreement: B256,
        /// The transaction.
        tx_hash: B256,
        /// Its block.
        block: u64,
    },
    /// Already settled on chain: nothing sent.
    Done {
        /// The agreement.
        agreement: B256,
    },
    /// Cannot be done.
    Failed {
        /// The agreement.
        agreement: B256,
        /// Why.
        reason: String,
    },
    /// Decided anew (its nonce was taken, or its transaction reorged out).
    Reopened {
        /// The agreement.
        agreement: B256,
    },
}

/// Settles agreements with the keeper's key.
#[derive(Debug)]
pub struct Executor {
    provider: DynProvider,
    wallet: EthereumWallet,
    account: Address,
    chain_id: u64,
    suite: SuiteAddresses,
    confirmations: u64,
    bump_after: Duration,
    max_fee_per_gas: u128,
    crash: Option<CrashPoint>,
}

impl Executor {
    /// An executor sending from `key`'s account on chain `chain_id`, counting an action done
    /// once its transaction is buried under `confirmations` blocks.
    pub fn new(
        provider: DynProvider,
        chain_id: u64,
        key: PrivateKeySigner,
        suite: SuiteAddresses,
        confirmations: u64,
    ) -> Self {
        let account = key.address();
        Self {
            provider,
            wallet: EthereumWallet::from(key),
            account,
            chain_id,
            suite,
            confirmations,
            bump_after: DEFAULT_BUMP_AFTER,
            max_fee_per_gas: DEFAULT_MAX_FEE_PER_GAS,
            crash: None,
        }
    }

    /// Sets how long a transaction may stay unmined before a fee bump, and the fee cap.
    pub fn with_fees(mut self, bump_after: Duration, max_fee_per_gas: u128) -> Self {
        self.bump_after = bump_after;
        self.max_fee_per_gas = max_fee_per_gas;
        self
    }

    /// Stops every tick at `point` (tests of crash recovery).
    pub fn with_crash_point(mut self, point: Option<CrashPoint>) -> Self {
        self.crash = point;
        self
    }

    /// The keeper's account.
    pub fn account(&self) -> Address {
        self.account
    }

    /// Moves every action one step (see the module documentation).
    ///
    /// # Errors
    ///
    /// See [`ExecuteError`]; what was recorded before the error stays recorded.
    pub async fn tick(&self, store: &mut Store) -> Result<Vec<Step>, ExecuteError> {
        let mut steps = Vec::new();
        for action in store.actions(ActionState::Confirmed)? {
            if let Some(hash) = action.tx_hash
                && self.provider.get_transaction_receipt(hash).await?.is_none()
            {
                store.set_action_state(action.agreement_id, ActionState::Sent, None, now())?;
            }
        }
        for action in store.actions(ActionState::Signed)? {
            if let Some(attempt) = store.attempts(action.agreement_id)?.first() {
                self.broadcast(&attempt.raw).await?;
                store.set_action_state(action.agreement_id, ActionState::Sent, None, now())?;
                steps.push(Step::Sent {
                    agreement: action.agreement_id,
                    tx_hash: attempt.tx_hash,
                    nonce: attempt.nonce,
                });
            }
        }
        let sent = store.actions(ActionState::Sent)?;
        if !sent.is_empty() {
            let head = self.provider.get_block_number().await?;
            for action in sent {
                if let Some(step) = self.follow(store, &action, head).await? {
                    steps.push(step);
                }
            }
        }
        let pending = store.actions(ActionState::Pending)?;
        if !pending.is_empty() {
            steps.extend(self.start_all(store, &pending).await?);
        }
        Ok(steps)
    }

    /// Decides the pending actions (their chain reads and gas estimations run concurrently, at
    /// most [`CONCURRENT_READS`] at a time), then signs, records and broadcasts each one to send,
    /// one after another with consecutive nonces.
    async fn start_all(
        &self,
        store: &mut Store,
        pending: &[Action],
    ) -> Result<Vec<Step>, ExecuteError> {
        let mut steps = Vec::new();
        let limit = std::sync::Arc::new(tokio::sync::Semaphore::new(CONCURRENT_READS));
        let mut reads = tokio::task::JoinSet::new();
        for (index, action) in pending.iter().enumerate() {
            let Some(agreement) = store.agreement(action.agreement_id)? else {
                if let Some(step) = self.fail(
                    store,
                    action.agreement_id,
                    "no such agreement of this provider",
                )? {
                    steps.push(step);
                }
                continue;
            };
            let (provider, suite, account, limit) = (
                self.provider.clone(),
                self.suite,
                self.account,
                limit.clone(),
            );
            reads.spawn(async move {
                let _permit = limit.acquire_owned().await;
                let plan = plan(&provider, suite, account, &agreement).await;
                (index, agreement, plan)
            });
        }
        let mut planned = Vec::with_capacity(reads.len());
        while let Some(joined) = reads.join_next().await {
            planned.push(joined.map_err(|error| ExecuteError::Signing(error.to_string()))?);
        }
        // In the order the intents were written.
        planned.sort_by_key(|(index, _, _)| *index);
        let mut fees = None;
        let mut mined = None;
        for (_, agreement, plan) in planned {
            let id = agreement.id;
            let (call, gas) = match plan? {
                Plan::Send { call, gas } => (call, gas),
                Plan::Done(outcome) => {
                    store.finish_action(id, ActionState::Done, None, &outcome, now())?;
                    steps.push(Step::Done { agreement: id });
                    continue;
                }
                Plan::Fail(reason) => {
                    if let Some(step) = self.fail(store, id, &reason)? {
                        steps.push(step);
                    }
                    continue;
                }
            };
            let fees = match fees {
                Some(fees) => fees,
                None => *fees.insert(self.provider.estimate_eip1559_fees().await?),
            };
            let mined = match mined {
                Some(mined) => mined,
                None => *mined.insert(self.provider.get_transaction_count(self.account).await?),
            };
            let nonce = free_nonce(store, mined)?;
            let max_fee = fees.max_fee_per_gas.min(self.max_fee_per_gas);
            let attempt = self
                .sign(
                    settlement_request(self.suite, self.account, &agreement, call)
                        .with_gas_limit(gas.saturating_mul(100 + GAS_MARGIN_PERCENT) / 100),
                    nonce,
                    max_fee,
                    fees.max_priority_fee_per_gas.min(max_fee),
                )
                .await?;
            store.record_signed(id, call, &attempt)?;
            self.crash_at(CrashPoint::AfterSign)?;
            self.broadcast(&attempt.raw).await?;
            store.set_action_state(id, ActionState::Sent, None, now())?;
            tracing::info!(agreement = %id, tx = %attempt.tx_hash, nonce, ?call, "settlement sent");
            metrics::counter!("keeper_transactions_sent_total").increment(1);
            self.crash_at(CrashPoint::AfterSend)?;
            steps.push(Step::Sent {
                agreement: id,
                tx_hash: attempt.tx_hash,
                nonce,
            });
        }
        Ok(steps)
    }

    /// Follows a sent action: receipt, confirmations, a taken nonce, a fee bump.
    async fn follow(
        &self,
        store: &mut Store,
        action: &Action,
        head: u64,
    ) -> Result<Option<Step>, ExecuteError> {
        let id = action.agreement_id;
        let attempts = store.attempts(id)?;
        // Counted before the receipts are looked up: if the nonce is used by now and none of our
        // attempts has a receipt afterwards, another transaction used it.
        let mined = self.provider.get_transaction_count(self.account).await?;
        for attempt in &attempts {
            let Some(receipt) = self
                .provider
                .get_transaction_receipt(attempt.tx_hash)
                .await?
            else {
                continue;
            };
            let block = receipt.block_number.unwrap_or(head);
            if head + 1 < block + self.confirmations.max(1) {
                return Ok(None);
            }
            self.crash_at(CrashPoint::AfterReceipt)?;
            if receipt.status() {
                store.finish_action(
                    id,
                    ActionState::Confirmed,
                    Some((attempt.tx_hash, block)),
                    "settled",
                    now(),
                )?;
                tracing::info!(agreement = %id, tx = %attempt.tx_hash, block, "settlement confirmed");
                metrics::counter!("keeper_settlements_total").increment(1);
                return Ok(Some(Step::Confirmed {
                    agreement: id,
                    tx_hash: attempt.tx_hash,
                    block,
                }));
            }
            let reason = format!("transaction {} reverted in block {block}", attempt.tx_hash);
            store.finish_action(
                id,
                ActionState::Failed,
                Some((attempt.tx_hash, block)),
                &reason,
                now(),
            )?;
            tracing::error!(agreement = %id, %reason, "settlement failed");
            metrics::counter!("keeper_transactions_failed_total").increment(1);
            return Ok(Some(Step::Failed {
                agreement: id,
                reason,
            }));
        }
        let Some(latest) = attempts.first() else {
            store.set_action_state(id, ActionState::Pending, Some("no attempt recorded"), now())?;
            return Ok(Some(Step::Reopened { agreement: id }));
        };
        if mined > latest.nonce {
            // The nonce is used, by none of our attempts (or their receipts are not served yet):
            // decide again from the chain's state.
            store.set_action_state(
                id,
                ActionState::Pending,
                Some(&format!(
                    "nonce {} was used by another transaction",
                    latest.nonce
                )),
                now(),
            )?;
            return Ok(Some(Step::Reopened { agreement: id }));
        }
        if now().saturating_sub(latest.sent_at) < self.bump_after.as_secs() {
            // Not stuck yet; make sure the node has it.
            self.broadcast(&latest.raw).await?;
            return Ok(None);
        }
        let fees = self.provider.estimate_eip1559_fees().await?;
        let bump = |old: u128| old + old * BUMP_PER_MILLE / 1_000 + 1;
        let max_fee = bump(latest.max_fee_per_gas)
            .max(fees.max_fee_per_gas)
            .min(self.max_fee_per_gas);
        let priority = bump(latest.max_priority_fee_per_gas)
            .max(fees.max_priority_fee_per_gas)
            .min(max_fee);
        if max_fee <= latest.max_fee_per_gas {
            tracing::warn!(agreement = %id, max_fee, "stuck at the fee cap");
            self.broadcast(&latest.raw).await?;
            return Ok(None);
        }
        let Some(agreement) = store.agreement(id)? else {
            return Ok(None);
        };
        let call = action.call.unwrap_or(SettlementCall::FulfilAndRelease);
        let gas = self
            .provider
            .estimate_gas(settlement_request(
                self.suite,
                self.account,
                &agreement,
                call,
            ))
            .await
            .unwrap_or(500_000);
        let attempt = self
            .sign(
                settlement_request(self.suite, self.account, &agreement, call)
                    .with_gas_limit(gas.saturating_mul(100 + GAS_MARGIN_PERCENT) / 100),
                latest.nonce,
                max_fee,
                priority,
            )
            .await?;
        store.record_attempt(id, &attempt)?;
        self.broadcast(&attempt.raw).await?;
        tracing::warn!(agreement = %id, tx = %attempt.tx_hash, max_fee, "settlement bumped");
        metrics::counter!("keeper_transactions_bumped_total").increment(1);
        Ok(Some(Step::Bumped {
            agreement: id,
            tx_hash: attempt.tx_hash,
        }))
    }

    async fn sign(
        &self,
        request: TransactionRequest,
        nonce: u64,
        max_fee_per_gas: u128,
        max_priority_fee_per_gas: u128,
    ) -> Result<Attempt, ExecuteError> {
        let envelope = request
            .with_chain_id(self.chain_id)
            .with_nonce(nonce)
            .with_max_fee_per_gas(max_fee_per_gas)
            .with_max_priority_fee_per_gas(max_priority_fee_per_gas)
            .build(&self.wallet)
            .await
            .map_err(|error| ExecuteError::Signing(error.to_string()))?;
        Ok(Attempt {
            tx_hash: *envelope.tx_hash(),
            nonce,
            max_fee_per_gas,
            max_priority_fee_per_gas,
            raw: envelope.encoded_2718().into(),
            sent_at: now(),
        })
    }

    /// Broadcasts `raw`; a node that already has it, or whose nonce is already used (the follow
    /// step finds out by what), is not an error.
    async fn broadcast(&self, raw: &[u8]) -> Result<(), ExecuteError> {
        match self.provider.send_raw_transaction(raw).await {
            Ok(_) => Ok(()),
            Err(error) => {
                let message = error
                    .as_error_resp()
                    .map(|payload| payload.message.to_lowercase())
                    .unwrap_or_default();
                if [
                    "already known",
                    "already imported",
                    "nonce too low",
                    "underpriced",
                ]
                .iter()
                .any(|known| message.contains(known))
                {
                    tracing::debug!(%message, "broadcast not needed");
                    Ok(())
                } else {
                    Err(error.into())
                }
            }
        }
    }

    fn fail(
        &self,
        store: &mut Store,
        id: B256,
        reason: &str,
    ) -> Result<Option<Step>, ExecuteError> {
        store.finish_action(id, ActionState::Failed, None, reason, now())?;
        tracing::warn!(agreement = %id, reason, "settlement refused");
        Ok(Some(Step::Failed {
            agreement: id,
            reason: reason.to_owned(),
        }))
    }

    fn crash_at(&self, point: CrashPoint) -> Result<(), ExecuteError> {
        if self.crash == Some(point) {
            return Err(ExecuteError::Crashed(point));
        }
        Ok(())
    }
}

/// Chain reads and gas estimations run at once when deciding pending actions.
pub const CONCURRENT_READS: usize = 16;

/// What a pending action needs.
enum Plan {
    Send { call: SettlementCall, gas: u64 },
    Done(String),
    Fail(String),
}

/// What the chain says is left to do for `agreement`, with the gas of the call to send.
async fn plan(
    provider: &DynProvider,
    suite: SuiteAddresses,
    account: Address,
    agreement: &Agreement,
) -> Result<Plan, ExecuteError> {
    let store = AgreementStore::new(suite.agreement_store, provider);
    let payment = store
        .getCondition(agreement.payment_condition)
        .call()
        .await?;
    let service = store
        .getCondition(agreement.service_condition)
        .call()
        .await?;
    let call = match (
        ConditionState::from_raw(payment.state),
        ConditionState::from_raw(service.state),
    ) {
        (ConditionState::Released, _) => {
            return Ok(Plan::Done("the payment is already released".to_owned()));
        }
        (ConditionState::Refunded, _) => {
            return Ok(Plan::Fail("the payment was refunded".to_owned()));
        }
        (ConditionState::Aborted, _) => {
            return Ok(Plan::Fail(
                "the payment was never made (aborted)".to_owned(),
            ));
        }
        (ConditionState::Uninitialized | ConditionState::Unfulfilled, _) => {
            return Ok(Plan::Fail("the payment is not in escrow".to_owned()));
        }
        (_, ConditionState::Fulfilled) => SettlementCall::Release,
        (_, ConditionState::Unfulfilled) => {
            if store.isTimedOut(agreement.service_condition).call().await? {
                return Ok(Plan::Fail("the service timed out".to_owned()));
            }
            SettlementCall::FulfilAndRelease
        }
        (_, other) => {
            return Ok(Plan::Fail(format!("the service condition is {other:?}")));
        }
    };
    match provider
        .estimate_gas(settlement_request(suite, account, agreement, call))
        .await
    {
        Ok(gas) => Ok(Plan::Send { call, gas }),
        Err(error) => match error.as_error_resp().and_then(|e| e.as_revert_data()) {
            Some(data) => Ok(Plan::Fail(format!(
                "would revert: {}",
                decode_revert(&data)
            ))),
            None => Err(error.into()),
        },
    }
}

/// The settlement transaction `call` of `agreement`, from `account`.
fn settlement_request(
    suite: SuiteAddresses,
    account: Address,
    agreement: &Agreement,
    call: SettlementCall,
) -> TransactionRequest {
    let payment = Payment {
        token: agreement.terms.token,
        receivers: agreement.terms.receivers.clone(),
        amounts: agreement.terms.amounts.clone(),
        fee: agreement.terms.fee,
    };
    let (to, input) = match call {
        SettlementCall::FulfilAndRelease => (
            agreement.service_contract,
            AccessCondition::fulfilAndReleaseCall {
                agreementId: agreement.id,
                did: agreement.did,
                consumer: agreement.consumer,
                payment: payment.into(),
            }
            .abi_encode(),
        ),
        SettlementCall::Release => (
            suite.payment,
            PaymentCondition::releaseCall {
                agreementId: agreement.id,
                did: agreement.did,
                payer: agreement.consumer,
                service: agreement.service_contract,
                payment,
            }
            .abi_encode(),
        ),
    };
    TransactionRequest::default()
        .with_from(account)
        .with_to(to)
        .with_input(input)
}

/// The lowest nonce at or above `mined` (the account's mined count) that no in-flight action
/// holds.
fn free_nonce(store: &Store, mined: u64) -> Result<u64, ExecuteError> {
    let mut nonce = mined;
    for held in store.nonces_in_flight()? {
        if held == nonce {
            nonce += 1;
        }
    }
    Ok(nonce)
}

/// Unix time in seconds.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or_default()
}
