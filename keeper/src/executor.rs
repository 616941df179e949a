//! The executor: carries out the settlement actions the store holds, exactly once, with the
//! keeper's key.
//!
//! Each [`Executor::tick`] moves every action one step along, with the RPC calls of a step made
//! concurrently ([`CONCURRENT_CALLS`] at a time) and its store writes batched:
//!
//! - **pending**: the chain is read first. A payment already released is recorded as done and
//!   nothing is sent; an unpaid, refunded or timed-out agreement fails with the reason; a service
//!   already fulfilled needs only `release`, otherwise `fulfilAndRelease`. A compute agreement
//!   goes through steps first, each decided from the chain: its job's result is registered as
//!   the consumer's asset (`registerResult`, unless the registry has it), the input's use is
//!   recorded (`recordUse`, unless its `Used` event is on chain), then the compute condition's
//!   `fulfilAndRelease` names the result. A confirmed step sends the action back to pending for
//!   the next one; only the last call confirms it. The call's gas is
//!   estimated (a call that would revert fails with its decoded error, never retried blindly).
//!   Then each action to send gets a nonce (the lowest at or above the account's mined count that
//!   no other in-flight action holds) and fees from the node; all the signed transactions are
//!   recorded in one store transaction before any is broadcast.
//! - **signed**: broadcast (again); those that went through are recorded as sent.
//! - **sent**: the receipts of all its attempts are looked up. Once one is buried under the
//!   confirmations the action is confirmed (or failed, if it reverted). If the nonce was used by
//!   none of them, the chain is read again and the action decided anew. A transaction left
//!   unmined for `bump_after` is replaced with fees 12.5% higher (at least the node's current
//!   estimate), up to the fee cap; before that it is broadcast again every
//!   [`REBROADCAST_AFTER`], for a node that restarted or dropped it.
//! - **confirmed**: if the transaction's receipt disappears (a reorg) while it is less than
//!   [`FINALITY_DEPTH`] blocks deep, back to sent.
//!
//! Since every step is recorded before the next begins, the process can die anywhere (see
//! [`CrashPoint`]): the next start finds each action where it was and finishes it, and no
//! agreement is settled twice.

use std::{
    collections::{HashMap, HashSet},
    sync::Mutex,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use alloy::{
    eips::Encodable2718,
    network::{EthereumWallet, NetworkTransactionBuilder, TransactionBuilder},
    primitives::{Address, B256, keccak256},
    providers::{DynProvider, Provider},
    rpc::types::TransactionRequest,
    signers::local::PrivateKeySigner,
    sol_types::SolCall,
    transports::TransportError,
};
use insitu_bindings::{
    AccessCondition, AgreementStore, AssetRegistry, ComputeExecutionCondition, PaymentCondition,
    deployment::SuiteAddresses, errors::decode_revert, offers::Payment,
};

use futures::{StreamExt, stream};
use insitu_client::agreement::ConditionState;

use crate::{
    compute::runner::StoredResult,
    store::{Action, ActionState, Agreement, Attempt, SettlementCall, Store, StoreError},
};

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
    /// A step of a compute settlement is confirmed; the next is decided at the next tick.
    Advanced {
        /// The agreement.
        agreement: B256,
        /// The step confirmed.
        call: SettlementCall,
        /// Its transaction.
        tx_hash: B256,
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
    /// When this process last broadcast each unmined transaction, by hash.
    broadcasts: Mutex<HashMap<B256, Instant>>,
    /// The head at which every sent action was last followed.
    followed_head: Mutex<Option<u64>>,
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
            broadcasts: Mutex::new(HashMap::new()),
            followed_head: Mutex::new(None),
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
        for request in store.apply_settlement_requests(now())? {
            tracing::info!(
                agreement = ?request.agreement_id,
                kind = ?request.kind,
                reason = %request.reason,
                result = request.result.as_deref().unwrap_or_default(),
                "operator request"
            );
        }
        let head = self.provider.get_block_number().await?;
        tracing::debug!(head, "tick");
        self.recheck_confirmed(store, head).await?;
        let signed = store.actions(ActionState::Signed)?;
        if !signed.is_empty() {
            let mut raws = Vec::with_capacity(signed.len());
            for action in &signed {
                if let Some(attempt) = store.attempts(action.agreement_id)?.into_iter().next() {
                    raws.push((action.agreement_id, attempt));
                }
            }
            steps.extend(self.broadcast_all(store, raws).await?);
        }
        // New work first: a settlement to send waits for nothing, following sent ones can (those
        // sent by this tick are followed from the next one).
        let sent = store.actions(ActionState::Sent)?;
        let pending = store.actions(ActionState::Pending)?;
        if !pending.is_empty() {
            steps.extend(self.start_all(store, &pending).await?);
        }
        if !sent.is_empty() {
            steps.extend(self.follow_all(store, &sent, head).await?);
        }
        Ok(steps)
    }

    /// Sends back to `Sent` every confirmed action whose receipt has disappeared (a reorg),
    /// among those less than [`FINALITY_DEPTH`] blocks deep.
    async fn recheck_confirmed(&self, store: &mut Store, head: u64) -> Result<(), ExecuteError> {
        let recent = store.confirmed_since(head.saturating_sub(FINALITY_DEPTH))?;
        let provider = &self.provider;
        let gone: Vec<Result<Option<B256>, ExecuteError>> = stream::iter(recent)
            .map(|action| async move {
                let Some(hash) = action.tx_hash else {
                    return Ok(None);
                };
                let receipt = provider.get_transaction_receipt(hash).await?;
                Ok(receipt.is_none().then_some(action.agreement_id))
            })
            .buffered(CONCURRENT_CALLS)
            .collect()
            .await;
        for id in gone {
            if let Some(id) = id? {
                tracing::warn!(agreement = %id, "confirmed settlement reorged out");
                store.set_action_state(id, ActionState::Sent, None, now())?;
            }
        }
        Ok(())
    }

    /// Broadcasts these recorded attempts, [`CONCURRENT_CALLS`] at a time, and marks the actions
    /// whose broadcast went through as sent (in one store transaction). An action whose broadcast
    /// failed stays signed and is broadcast again by the next tick.
    async fn broadcast_all(
        &self,
        store: &mut Store,
        attempts: Vec<(B256, Attempt)>,
    ) -> Result<Vec<Step>, ExecuteError> {
        let results: Vec<_> = stream::iter(attempts)
            .map(|(id, attempt)| async move {
                let result = self.broadcast(&attempt.raw).await;
                (id, attempt, result)
            })
            .buffered(CONCURRENT_CALLS)
            .collect()
            .await;
        let mut steps = Vec::with_capacity(results.len());
        let mut failure = None;
        for (id, attempt, result) in results {
            match result {
                Ok(()) => {
                    tracing::info!(agreement = %id, tx = %attempt.tx_hash, nonce = attempt.nonce, "settlement sent");
                    metrics::counter!("keeper_transactions_sent_total", "chain" => self.chain_id.to_string()).increment(1);
                    steps.push(Step::Sent {
                        agreement: id,
                        tx_hash: attempt.tx_hash,
                        nonce: attempt.nonce,
                    });
                }
                Err(error) => {
                    tracing::warn!(agreement = %id, %error, "broadcast failed; the next tick retries");
                    failure.get_or_insert(error);
                }
            }
        }
        let ids: Vec<B256> = steps
            .iter()
            .filter_map(|step| match step {
                Step::Sent { agreement, .. } => Some(*agreement),
                _ => None,
            })
            .collect();
        store.mark_sent(&ids, now())?;
        self.crash_at(CrashPoint::AfterSend)?;
        match failure {
            Some(error) => Err(error),
            None => Ok(steps),
        }
    }

    /// Decides the pending actions (their chain reads and gas estimations run concurrently, at
    /// most [`CONCURRENT_CALLS`] at a time), then signs each one to send with its own nonce,
    /// records them all (one store transaction) and broadcasts them.
    async fn start_all(
        &self,
        store: &mut Store,
        pending: &[Action],
    ) -> Result<Vec<Step>, ExecuteError> {
        let mut steps = Vec::new();
        let mut known = Vec::with_capacity(pending.len());
        for action in pending {
            match store.agreement(action.agreement_id)? {
                Some(agreement) => {
                    let result = stored_result(store, &self.suite, &agreement)?;
                    known.push((agreement, result));
                }
                None => steps.extend(self.fail(
                    store,
                    action.agreement_id,
                    "no such agreement of this provider",
                )?),
            }
        }
        let (provider, suite, account) = (&self.provider, self.suite, self.account);
        // In the order the intents were written.
        type Planned = (Agreement, Option<StoredResult>, Result<Plan, ExecuteError>);
        let planned: Vec<Planned> = stream::iter(known)
            .map(|(agreement, result)| async move {
                let plan = plan(provider, suite, account, &agreement, result.as_ref()).await;
                (agreement, result, plan)
            })
            .buffered(CONCURRENT_CALLS)
            .collect()
            .await;
        let mut to_send = Vec::new();
        for (agreement, result, plan) in planned {
            let id = agreement.id;
            let plan = match plan {
                Ok(plan) => plan,
                // One agreement's chain reads failing (a node refusing a log query, say) leaves
                // it pending for the next tick without holding up the others.
                Err(error) => {
                    tracing::warn!(agreement = %id, %error, "cannot decide the settlement yet");
                    continue;
                }
            };
            match plan {
                Plan::Send { call, gas } => to_send.push((agreement, result, call, gas)),
                Plan::Done(outcome) => {
                    store.finish_action(id, ActionState::Done, None, &outcome, now())?;
                    steps.push(Step::Done { agreement: id });
                }
                Plan::Fail(reason) => steps.extend(self.fail(store, id, &reason)?),
            }
        }
        if to_send.is_empty() {
            return Ok(steps);
        }
        let fees = self.provider.estimate_eip1559_fees().await?;
        let mined = self.provider.get_transaction_count(self.account).await?;
        let nonces = free_nonces(store, mined, to_send.len())?;
        let max_fee = fees.max_fee_per_gas.min(self.max_fee_per_gas);
        let priority = fees.max_priority_fee_per_gas.min(max_fee);
        let mut signed = Vec::with_capacity(to_send.len());
        for ((agreement, result, call, gas), nonce) in to_send.into_iter().zip(nonces) {
            let request =
                settlement_request(self.suite, self.account, &agreement, call, result.as_ref())
                    .with_gas_limit(gas.saturating_mul(100 + GAS_MARGIN_PERCENT) / 100);
            let attempt = self.sign(request, nonce, max_fee, priority).await?;
            signed.push((agreement.id, call, attempt));
        }
        store.record_signed(&signed)?;
        self.crash_at(CrashPoint::AfterSign)?;
        let attempts = signed
            .into_iter()
            .map(|(id, _, attempt)| (id, attempt))
            .collect();
        steps.extend(self.broadcast_all(store, attempts).await?);
        Ok(steps)
    }

    /// Follows the sent actions: their receipts are looked up concurrently (the account's mined
    /// nonce is read once, before them), then each is decided in turn.
    async fn follow_all(
        &self,
        store: &mut Store,
        sent: &[Action],
        head: u64,
    ) -> Result<Vec<Step>, ExecuteError> {
        // Without a new block, no receipt or nonce can have changed: only the actions due for a
        // rebroadcast or a fee bump are looked at.
        let new_block = self.followed_head().is_none_or(|followed| head > followed);
        let mut followed = Vec::with_capacity(sent.len());
        for action in sent {
            let attempts = store.attempts(action.agreement_id)?;
            let due = attempts.first().is_none_or(|latest| {
                let age = Duration::from_secs(now().saturating_sub(latest.sent_at));
                age >= self.bump_after.min(REBROADCAST_AFTER)
            });
            if new_block || due {
                followed.push((action.clone(), attempts));
            }
        }
        if followed.is_empty() {
            return Ok(Vec::new());
        }
        // Counted before the receipts are looked up: if an action's nonce is used by now and
        // none of its attempts has a receipt afterwards, another transaction used it.
        let mined = self.provider.get_transaction_count(self.account).await?;
        let provider = &self.provider;
        let looked_up: Vec<_> = stream::iter(followed)
            .map(|(action, attempts)| async move {
                let mut found = None;
                for (index, attempt) in attempts.iter().enumerate() {
                    if let Some(receipt) = provider.get_transaction_receipt(attempt.tx_hash).await?
                    {
                        found = Some((
                            index,
                            receipt.status(),
                            receipt.block_number.unwrap_or(head),
                        ));
                        break;
                    }
                }
                Ok::<_, ExecuteError>((action, attempts, found))
            })
            .buffered(CONCURRENT_CALLS)
            .collect()
            .await;
        let mut steps = Vec::new();
        let mut latest_hashes = HashSet::new();
        for result in looked_up {
            let (action, attempts, found) = result?;
            if let Some(latest) = attempts.first() {
                latest_hashes.insert(latest.tx_hash);
            }
            let step = match found {
                // A receipt of an earlier call of this settlement (a step before, or a call
                // decided again since): the chain moved on, so the action is decided again from
                // it rather than concluded by a transaction that is not its current one.
                Some((index, _, _)) if action.nonce != Some(attempts[index].nonce) => {
                    store.set_action_state(
                        action.agreement_id,
                        ActionState::Pending,
                        Some(&format!(
                            "an earlier transaction of this settlement was mined ({}): deciding again",
                            attempts[index].tx_hash
                        )),
                        now(),
                    )?;
                    Some(Step::Reopened {
                        agreement: action.agreement_id,
                    })
                }
                Some((index, success, block)) => {
                    self.conclude(store, &action, &attempts[index], success, block, head)?
                }
                None => self.unmined(store, &action, &attempts, mined).await?,
            };
            steps.extend(step);
        }
        if new_block {
            // Every sent action was followed: forget the broadcasts of the ones that ended.
            self.broadcasts()
                .retain(|hash, _| latest_hashes.contains(hash));
            *self
                .followed_head
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(head);
        }
        Ok(steps)
    }

    /// An attempt of a sent action is mined: once it is buried under the confirmations, the
    /// action is confirmed (or failed, if it reverted).
    fn conclude(
        &self,
        store: &mut Store,
        action: &Action,
        attempt: &Attempt,
        success: bool,
        block: u64,
        head: u64,
    ) -> Result<Option<Step>, ExecuteError> {
        let id = action.agreement_id;
        // Buried under the confirmations, counted as the watcher counts them (0: mined is enough).
        if head < block + self.confirmations {
            return Ok(None);
        }
        self.crash_at(CrashPoint::AfterReceipt)?;
        if let Some(call) = action.call.filter(|call| success && call.is_step()) {
            let outcome = format!(
                "{} confirmed: tx {} in block {block}",
                call_name(call),
                attempt.tx_hash
            );
            store.next_step(id, &outcome, now())?;
            tracing::info!(agreement = %id, tx = %attempt.tx_hash, block, step = call_name(call), "settlement step confirmed");
            return Ok(Some(Step::Advanced {
                agreement: id,
                call,
                tx_hash: attempt.tx_hash,
            }));
        }
        if success {
            store.finish_action(
                id,
                ActionState::Confirmed,
                Some((attempt.tx_hash, block)),
                "settled",
                now(),
            )?;
            tracing::info!(agreement = %id, tx = %attempt.tx_hash, block, "settlement confirmed");
            metrics::counter!("keeper_settlements_total", "chain" => self.chain_id.to_string())
                .increment(1);
            return Ok(Some(Step::Confirmed {
                agreement: id,
                tx_hash: attempt.tx_hash,
                block,
            }));
        }
        if let Some(call) = action.call.filter(|call| call.is_step()) {
            // A step that reverted was overtaken (done meanwhile, or the agreement ended): the
            // chain decides what is left; a call that would revert again fails at its estimate.
            let outcome = format!(
                "{} reverted in block {block} (tx {}): deciding again",
                call_name(call),
                attempt.tx_hash
            );
            store.next_step(id, &outcome, now())?;
            tracing::warn!(agreement = %id, %outcome, "settlement step reverted");
            return Ok(Some(Step::Reopened { agreement: id }));
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
        metrics::counter!("keeper_transactions_failed_total", "chain" => self.chain_id.to_string())
            .increment(1);
        Ok(Some(Step::Failed {
            agreement: id,
            reason,
        }))
    }

    /// No attempt of a sent action is mined: decided anew if its nonce was used by another
    /// transaction, replaced with higher fees once stuck, else broadcast again now and then (a
    /// node that restarted or dropped it from its pool gets it back).
    async fn unmined(
        &self,
        store: &mut Store,
        action: &Action,
        attempts: &[Attempt],
        mined: u64,
    ) -> Result<Option<Step>, ExecuteError> {
        let id = action.agreement_id;
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
            self.rebroadcast(latest).await?;
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
            self.rebroadcast(latest).await?;
            return Ok(None);
        }
        let Some(agreement) = store.agreement(id)? else {
            return Ok(None);
        };
        let result = stored_result(store, &self.suite, &agreement)?;
        let call = action.call.unwrap_or(SettlementCall::FulfilAndRelease);
        let request =
            || settlement_request(self.suite, self.account, &agreement, call, result.as_ref());
        let gas = self
            .provider
            .estimate_gas(request())
            .await
            .unwrap_or(500_000);
        let attempt = self
            .sign(
                request().with_gas_limit(gas.saturating_mul(100 + GAS_MARGIN_PERCENT) / 100),
                latest.nonce,
                max_fee,
                priority,
            )
            .await?;
        store.record_attempt(id, &attempt)?;
        self.broadcast(&attempt.raw).await?;
        tracing::warn!(agreement = %id, tx = %attempt.tx_hash, max_fee, "settlement bumped");
        metrics::counter!("keeper_transactions_bumped_total", "chain" => self.chain_id.to_string())
            .increment(1);
        Ok(Some(Step::Bumped {
            agreement: id,
            tx_hash: attempt.tx_hash,
        }))
    }

    /// Broadcasts `attempt` again when this process has not broadcast it in the last
    /// [`REBROADCAST_AFTER`] (so always once after a restart).
    async fn rebroadcast(&self, attempt: &Attempt) -> Result<(), ExecuteError> {
        let due = self
            .broadcasts()
            .get(&attempt.tx_hash)
            .is_none_or(|at| at.elapsed() >= REBROADCAST_AFTER);
        if due {
            self.broadcast(&attempt.raw).await?;
        }
        Ok(())
    }

    fn followed_head(&self) -> Option<u64> {
        *self
            .followed_head
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn broadcasts(&self) -> std::sync::MutexGuard<'_, HashMap<B256, Instant>> {
        self.broadcasts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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
        let result = self.send_raw(raw).await;
        if result.is_ok() {
            self.broadcasts().insert(keccak256(raw), Instant::now());
        }
        result
    }

    async fn send_raw(&self, raw: &[u8]) -> Result<(), ExecuteError> {
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

/// RPC calls (chain reads, gas estimations, receipts, broadcasts) the executor has in flight at
/// once.
pub const CONCURRENT_CALLS: usize = 16;
/// How many blocks deep a confirmed settlement's receipt is still checked for a reorg.
pub const FINALITY_DEPTH: u64 = 64;
/// How long an unmined transaction waits before this process broadcasts it again.
pub const REBROADCAST_AFTER: Duration = Duration::from_secs(5);

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
    result: Option<&StoredResult>,
) -> Result<Plan, ExecuteError> {
    let compute = agreement.template == suite.compute_template;
    if compute && result.is_none() {
        return Ok(Plan::Fail(
            "the compute job has no stored result to register".to_owned(),
        ));
    }
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
            match result {
                Some(result) if compute => {
                    compute_step(provider, suite, account, agreement, result).await?
                }
                _ => SettlementCall::FulfilAndRelease,
            }
        }
        (_, other) => {
            return Ok(Plan::Fail(format!("the service condition is {other:?}")));
        }
    };
    match provider
        .estimate_gas(settlement_request(suite, account, agreement, call, result))
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

/// The next step of the compute settlement of `agreement`, whose job stored `result`: register
/// the result, record the input's use, or fulfil and release.
async fn compute_step(
    provider: &DynProvider,
    suite: SuiteAddresses,
    account: Address,
    agreement: &Agreement,
    result: &StoredResult,
) -> Result<SettlementCall, ExecuteError> {
    let registry = AssetRegistry::new(suite.asset_registry, provider);
    if registry.ownerOf(result.did).call().await?.is_zero() {
        return Ok(SettlementCall::RegisterResult);
    }
    let used = alloy::rpc::types::Filter::new()
        .address(suite.asset_registry)
        .event_signature(<AssetRegistry::Used as alloy::sol_types::SolEvent>::SIGNATURE_HASH)
        .topic1(agreement.did)
        .topic2(agreement.id)
        .topic3(account.into_word())
        .from_block(agreement.created_block);
    if provider.get_logs(&used).await?.is_empty() {
        return Ok(SettlementCall::RecordUse);
    }
    Ok(SettlementCall::FulfilAndRelease)
}

/// The stored result of `agreement`'s compute job, when it is a compute agreement whose job has
/// one.
fn stored_result(
    store: &Store,
    suite: &SuiteAddresses,
    agreement: &Agreement,
) -> Result<Option<StoredResult>, StoreError> {
    if agreement.template != suite.compute_template {
        return Ok(None);
    }
    Ok(store
        .job(agreement.id)?
        .and_then(|job| job.result)
        .and_then(|json| serde_json::from_str(&json).ok()))
}

/// A call's name in logs and the audit trail.
fn call_name(call: SettlementCall) -> &'static str {
    match call {
        SettlementCall::FulfilAndRelease => "fulfilAndRelease",
        SettlementCall::Release => "release",
        SettlementCall::RegisterResult => "registerResult",
        SettlementCall::RecordUse => "recordUse",
    }
}

/// The settlement transaction `call` of `agreement`, from `account` (with the stored `result`
/// of its job, for a compute agreement).
fn settlement_request(
    suite: SuiteAddresses,
    account: Address,
    agreement: &Agreement,
    call: SettlementCall,
    result: Option<&StoredResult>,
) -> TransactionRequest {
    let payment = Payment {
        token: agreement.terms.token,
        receivers: agreement.terms.receivers.clone(),
        amounts: agreement.terms.amounts.clone(),
        fee: agreement.terms.fee,
    };
    let (to, input) = match (call, result) {
        (SettlementCall::FulfilAndRelease, Some(result)) => (
            agreement.service_contract,
            ComputeExecutionCondition::fulfilAndReleaseCall {
                agreementId: agreement.id,
                did: agreement.did,
                consumer: agreement.consumer,
                result: result.did,
                payment: payment.into(),
            }
            .abi_encode(),
        ),
        (SettlementCall::FulfilAndRelease, None) => (
            agreement.service_contract,
            AccessCondition::fulfilAndReleaseCall {
                agreementId: agreement.id,
                did: agreement.did,
                consumer: agreement.consumer,
                payment: payment.into(),
            }
            .abi_encode(),
        ),
        (SettlementCall::RegisterResult, Some(result)) => (
            suite.asset_registry,
            AssetRegistry::registerResultCall {
                owner: agreement.consumer,
                activityId: agreement.id,
                checksum: result.checksum,
                url: result.url.clone(),
                sources: if result.sources.is_empty() {
                    vec![agreement.did]
                } else {
                    result.sources.clone()
                },
            }
            .abi_encode(),
        ),
        (SettlementCall::RecordUse, _) => (
            suite.asset_registry,
            AssetRegistry::recordUseCall {
                did: agreement.did,
                activityId: agreement.id,
            }
            .abi_encode(),
        ),
        // A registration without a result is never planned; an empty call would revert.
        (SettlementCall::RegisterResult, None) => (suite.asset_registry, Vec::new()),
        (SettlementCall::Release, _) => (
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

/// The `count` lowest nonces at or above `mined` (the account's mined count) that no in-flight
/// action holds.
fn free_nonces(store: &Store, mined: u64, count: usize) -> Result<Vec<u64>, ExecuteError> {
    let held: HashSet<u64> = store.nonces_in_flight()?.into_iter().collect();
    Ok((mined..)
        .filter(|nonce| !held.contains(nonce))
        .take(count)
        .collect())
}

/// Unix time in seconds.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or_default()
}
