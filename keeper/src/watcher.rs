//! The chain watcher: scans block ranges for the events of this provider's agreements and records
//! them in the [`Store`], only once they are buried under the configured confirmations.
//!
//! Each poll first checks that the last scanned block is still canonical. If it is not (a reorg
//! deeper than the confirmations), the watcher walks back through the kept checkpoints to the
//! last block both chains share, has the store undo everything after it, and scans again from
//! there. A reorg shallower than the confirmations never reaches the store, since the watcher does
//! not scan that close to the head.
//!
//! Ranges adapt: a node that refuses a range (too many results, too wide) gets half of it next
//! time, down to one block; ranges grow again after successes. RPC failures back off
//! exponentially. The scan checks the range's last block hash before and after reading the logs,
//! so a reorg in between is caught and the range read again.

use std::{collections::HashMap, time::Duration};

use alloy::{
    primitives::{Address, B256},
    providers::DynProvider,
    rpc::types::Log,
    sol_types::SolEvent,
    transports::TransportError,
};
use insitu_bindings::{
    AgreementStore, PaymentCondition, ServiceTemplate, deployment::SuiteAddresses,
};
use insitu_chainwatch::{Backoff, FollowError, Follower, Journal, Step};

use crate::store::{
    Agreement, AgreementState, Checkpoint, EventKind, LogPosition, Observed, OperatorRequest,
    RequestKind, Store, StoreError, Terms,
};

pub use insitu_chainwatch::{MAX_BACKOFF, MAX_RANGE};

/// Why a poll failed.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The node could not be read (retried with backoff by [`Watcher::run`]).
    #[error("RPC error: {0}")]
    Rpc(#[from] TransportError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The node does not know a block it reported.
    #[error("the node does not return block {0}")]
    MissingBlock(u64),
}

impl From<FollowError<StoreError>> for WatchError {
    fn from(error: FollowError<StoreError>) -> Self {
        match error {
            FollowError::Rpc(error) => Self::Rpc(error),
            FollowError::Journal(error) => Self::Store(error),
            FollowError::MissingBlock(number) => Self::MissingBlock(number),
        }
    }
}

/// What a poll did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Poll {
    /// Blocks `from..=to` were scanned; `recorded` events of this provider's agreements found.
    Scanned {
        /// First block.
        from: u64,
        /// Last block.
        to: u64,
        /// Events recorded.
        recorded: usize,
    },
    /// A reorg was undone back to block `ancestor`; these agreements changed or vanished.
    Reorged {
        /// The last block both chains share.
        ancestor: u64,
        /// Agreements whose events were undone.
        affected: Vec<B256>,
    },
    /// Nothing new is buried under the confirmations yet.
    UpToDate {
        /// The chain's head.
        head: u64,
    },
    /// An operator's re-index request was applied: the next scans start again at `from` (or
    /// there was nothing to scan again).
    Reindexed {
        /// The request.
        request: u64,
        /// The first block scanned again.
        from: u64,
    },
}

/// Scans the chain for one provider's agreements.
#[derive(Debug)]
pub struct Watcher {
    follower: Follower,
    suite: SuiteAddresses,
    keeper: Address,
    progress: Option<tokio::sync::watch::Sender<u64>>,
}

impl Watcher {
    /// A watcher of the agreements made on offers of `keeper` on `suite`, scanning from
    /// `start_block` (the deployment's block) and acting `confirmations` blocks behind the head.
    pub fn new(
        provider: DynProvider,
        suite: SuiteAddresses,
        keeper: Address,
        confirmations: u64,
        start_block: u64,
    ) -> Self {
        let follower = Follower::new(
            provider,
            vec![
                suite.agreement_store,
                suite.payment,
                suite.access_template,
                suite.compute_template,
            ],
            vec![
                ServiceTemplate::AgreementTerms::SIGNATURE_HASH,
                AgreementStore::AgreementCreated::SIGNATURE_HASH,
                AgreementStore::ConditionFulfilled::SIGNATURE_HASH,
                AgreementStore::ConditionAborted::SIGNATURE_HASH,
                PaymentCondition::PaymentReleased::SIGNATURE_HASH,
                PaymentCondition::PaymentRefunded::SIGNATURE_HASH,
            ],
            confirmations,
            start_block,
        );
        Self {
            follower,
            suite,
            keeper,
            progress: None,
        }
    }

    /// Publishes, while [`Watcher::run`] runs, the last block scanned after each range it scans
    /// and each reorg it undoes, so that readers of the store waiting for something to be
    /// recorded know when to look again.
    pub fn with_progress(mut self, progress: tokio::sync::watch::Sender<u64>) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Caps the blocks per `eth_getLogs` (for nodes with tight limits, and tests).
    pub fn with_max_range(mut self, max_range: u64) -> Self {
        self.follower = self.follower.with_max_range(max_range);
        self
    }

    /// One step: apply an operator's re-index request if one is open, else undo a reorg if there
    /// was one, else scan the next range, else report the head.
    ///
    /// # Errors
    ///
    /// See [`WatchError`].
    pub async fn poll(&mut self, store: &mut Store) -> Result<Poll, WatchError> {
        if let Some(request) = store
            .open_requests(&[RequestKind::Reindex])?
            .into_iter()
            .next()
        {
            return self.reindex(store, request).await;
        }
        let mut journal = AgreementJournal {
            store,
            suite: &self.suite,
            keeper: self.keeper,
        };
        Ok(match self.follower.step(&mut journal).await? {
            Step::Scanned { from, to, recorded } => Poll::Scanned { from, to, recorded },
            Step::Reorged { ancestor, undone } => Poll::Reorged {
                ancestor,
                affected: undone,
            },
            Step::UpToDate { head } => Poll::UpToDate { head },
        })
    }

    /// Polls until the store is up to date with the chain (`UpToDate`), returning how many
    /// events were recorded; for tests and start up.
    ///
    /// # Errors
    ///
    /// See [`WatchError`].
    pub async fn catch_up(&mut self, store: &mut Store) -> Result<usize, WatchError> {
        let mut recorded = 0;
        loop {
            match self.poll(store).await? {
                Poll::Scanned {
                    recorded: found, ..
                } => recorded += found,
                Poll::Reorged { .. } | Poll::Reindexed { .. } => {}
                Poll::UpToDate { .. } => return Ok(recorded),
            }
        }
    }

    /// Polls every `interval` until `shutdown` resolves. Errors, of the node or of the store, are
    /// logged and retried with exponential backoff (up to a minute): nothing is recorded past
    /// them, and `/ready` reports the growing lag.
    pub async fn run(
        mut self,
        store: &mut Store,
        interval: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut backoff = Backoff::new(interval);
        loop {
            let wait = match self.poll(store).await {
                Ok(Poll::Scanned { from, to, recorded }) => {
                    tracing::debug!(from, to, recorded, "scanned");
                    self.publish(to);
                    backoff.reset();
                    Duration::ZERO
                }
                Ok(Poll::Reorged { ancestor, affected }) => {
                    tracing::warn!(ancestor, agreements = affected.len(), "reorg undone");
                    self.publish(ancestor);
                    Duration::ZERO
                }
                Ok(Poll::Reindexed { request, from }) => {
                    tracing::warn!(request, from, "re-index requested by the operator");
                    Duration::ZERO
                }
                Ok(Poll::UpToDate { .. }) => {
                    backoff.reset();
                    interval
                }
                Err(error) => {
                    let wait = backoff.failed();
                    let retry_in_ms = wait.as_millis() as u64;
                    if matches!(error, WatchError::Store(_)) {
                        tracing::error!(%error, retry_in_ms, "the store refused a poll");
                    } else {
                        tracing::warn!(%error, retry_in_ms, "poll failed");
                    }
                    wait
                }
            };
            if insitu_chainwatch::pause(wait, &mut shutdown).await {
                return;
            }
        }
    }

    /// Applies an operator's re-index request: the cursor moves back to the block before
    /// `from_block` (never before the watcher's first block), so the next scans record whatever
    /// is missing from there on (a node that answered with missing logs, say).
    async fn reindex(
        &mut self,
        store: &mut Store,
        request: OperatorRequest,
    ) -> Result<Poll, WatchError> {
        let from = request
            .from_block
            .unwrap_or(self.follower.start_block())
            .max(self.follower.start_block());
        let now = crate::executor::now();
        match store.cursor()? {
            Some(cursor) if cursor.number >= from => {
                let restart = if from > self.follower.start_block() {
                    Some(Checkpoint {
                        number: from - 1,
                        hash: self.follower.block_hash::<StoreError>(from - 1).await?,
                    })
                } else {
                    None
                };
                let result = format!(
                    "applied: scanning again from block {from} (the scan had reached block {})",
                    cursor.number
                );
                store.apply_reindex(&request, restart, &result, now)?;
            }
            cursor => {
                let result = format!(
                    "applied: nothing to scan again, the scan has not passed block {from} yet \
                     (it is at {})",
                    cursor
                        .map_or_else(|| "its start".to_owned(), |c| format!("block {}", c.number))
                );
                store.close_request(&request, &result, now)?;
            }
        }
        Ok(Poll::Reindexed {
            request: request.seq,
            from,
        })
    }

    fn publish(&self, block: u64) {
        if let Some(progress) = &self.progress {
            progress.send_replace(block);
        }
    }
}

/// The keeper's [`Store`] as the follower's journal: a range's logs become changes of this
/// provider's agreements.
struct AgreementJournal<'a> {
    store: &'a mut Store,
    suite: &'a SuiteAddresses,
    keeper: Address,
}

impl Journal for AgreementJournal<'_> {
    type Error = StoreError;
    type Undone = Vec<B256>;

    fn cursor(&mut self) -> Result<Option<Checkpoint>, StoreError> {
        self.store.cursor()
    }

    fn anchors(&mut self) -> Result<Vec<Checkpoint>, StoreError> {
        self.store.anchors()
    }

    fn rollback(&mut self, ancestor: u64, hash: Option<B256>) -> Result<Vec<B256>, StoreError> {
        self.store.rollback(ancestor, hash)
    }

    fn record(&mut self, logs: &[Log], cursor: Checkpoint) -> Result<usize, StoreError> {
        let observed = self.observe(logs)?;
        self.store.apply(&observed, cursor)?;
        Ok(observed.len())
    }
}

impl AgreementJournal<'_> {
    /// Turns a range's logs into changes of this provider's agreements, in chain order.
    fn observe(&self, logs: &[Log]) -> Result<Vec<Observed>, StoreError> {
        // Agreements made on this provider's offers in this range: their terms, by id.
        let mut terms = HashMap::new();
        for log in logs {
            if (log.address() == self.suite.access_template
                || log.address() == self.suite.compute_template)
                && let Ok(event) = log.log_decode::<ServiceTemplate::AgreementTerms>()
                && event.inner.data.provider == self.keeper
            {
                terms.insert(
                    event.inner.data.agreementId,
                    (log.address(), event.inner.data),
                );
            }
        }
        // Conditions of agreements created in this range: id -> (agreement, is payment).
        let mut fresh_conditions: HashMap<B256, (B256, bool)> = HashMap::new();
        let mut observed = Vec::new();
        for log in logs {
            let Some(at) = LogPosition::of(log) else {
                continue;
            };
            let address = log.address();
            if address == self.suite.agreement_store {
                if let Ok(event) = log.log_decode::<AgreementStore::AgreementCreated>() {
                    let event = event.inner.data;
                    let Some((template, agreed)) = terms.get(&event.agreementId) else {
                        continue;
                    };
                    if event.template != *template {
                        continue;
                    }
                    let service_contract = if *template == self.suite.access_template {
                        self.suite.access
                    } else {
                        self.suite.compute_execution
                    };
                    // The template's conditions: the payment first, then the service.
                    let [payment_condition, service_condition] = event.conditionIds[..] else {
                        continue;
                    };
                    fresh_conditions.insert(payment_condition, (event.agreementId, true));
                    fresh_conditions.insert(service_condition, (event.agreementId, false));
                    observed.push(Observed::Created {
                        at,
                        agreement: Box::new(Agreement {
                            id: event.agreementId,
                            did: event.did,
                            consumer: event.consumer,
                            template: *template,
                            service_contract,
                            payment_condition,
                            service_condition,
                            terms: Terms {
                                provider: agreed.provider,
                                token: agreed.token,
                                receivers: agreed.receivers.clone(),
                                amounts: agreed.amounts.clone(),
                                fee: agreed.fee,
                                service_timeout: agreed.serviceTimeout,
                                checksum: agreed.checksum,
                            },
                            created_block: at.block_number,
                            state: AgreementState::Created,
                            state_block: at.block_number,
                        }),
                    });
                    continue;
                }
                let (condition, fulfilled) =
                    if let Ok(event) = log.log_decode::<AgreementStore::ConditionFulfilled>() {
                        (event.inner.data.conditionId, true)
                    } else if let Ok(event) = log.log_decode::<AgreementStore::ConditionAborted>() {
                        (event.inner.data.conditionId, false)
                    } else {
                        continue;
                    };
                let found = match fresh_conditions.get(&condition) {
                    Some(found) => Some(*found),
                    None => self.store.by_condition(condition)?,
                };
                let Some((agreement_id, is_payment)) = found else {
                    continue;
                };
                let kind = match (is_payment, fulfilled) {
                    (true, true) => EventKind::Paid,
                    (true, false) => EventKind::PaymentAborted,
                    (false, true) => EventKind::Served,
                    (false, false) => EventKind::ServiceAborted,
                };
                observed.push(Observed::Changed {
                    at,
                    agreement_id,
                    kind,
                });
            } else if address == self.suite.payment {
                let (agreement_id, kind) = if let Ok(event) =
                    log.log_decode::<PaymentCondition::PaymentReleased>()
                {
                    (event.inner.data.agreementId, EventKind::Released)
                } else if let Ok(event) = log.log_decode::<PaymentCondition::PaymentRefunded>() {
                    (event.inner.data.agreementId, EventKind::Refunded)
                } else {
                    continue;
                };
                observed.push(Observed::Changed {
                    at,
                    agreement_id,
                    kind,
                });
            }
        }
        Ok(observed)
    }
}
