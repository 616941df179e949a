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
    eips::BlockNumberOrTag,
    primitives::{Address, B256},
    providers::{DynProvider, Provider},
    rpc::types::{Filter, Log},
    sol_types::SolEvent,
    transports::TransportError,
};
use insitu_bindings::{
    AgreementStore, PaymentCondition, ServiceTemplate, deployment::SuiteAddresses,
};

use crate::store::{
    Agreement, AgreementState, Checkpoint, EventKind, LogPosition, Observed, OperatorRequest,
    RequestKind, Store, StoreError, Terms,
};

/// Widest range asked for in one `eth_getLogs`.
pub const MAX_RANGE: u64 = 2_000;
/// Longest wait between retries after RPC failures.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

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
    provider: DynProvider,
    suite: SuiteAddresses,
    keeper: Address,
    confirmations: u64,
    start_block: u64,
    range: u64,
    max_range: u64,
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
        Self {
            provider,
            suite,
            keeper,
            confirmations,
            start_block,
            range: MAX_RANGE,
            max_range: MAX_RANGE,
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
        self.max_range = max_range.max(1);
        self.range = self.range.min(self.max_range);
        self
    }

    /// One step: undo a reorg if there was one, else scan the next range, else report the head.
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
        if let Some((ancestor, hash)) = self.reorged(store).await? {
            let affected = store.rollback(ancestor, hash)?;
            return Ok(Poll::Reorged { ancestor, affected });
        }
        let head = self.provider.get_block_number().await?;
        let safe = head.saturating_sub(self.confirmations);
        let from = match store.cursor()? {
            Some(cursor) => cursor.number + 1,
            None => self.start_block,
        };
        if from > safe {
            return Ok(Poll::UpToDate { head });
        }
        let to = safe.min(from + self.range - 1);
        let before = self.block_hash(to).await?;
        let logs = match self.logs(from, to).await {
            Ok(logs) => logs,
            Err(error) if self.range > 1 && is_range_error(&error) => {
                self.range = (self.range / 2).max(1);
                return Err(error.into());
            }
            Err(error) => return Err(error.into()),
        };
        if self.block_hash(to).await? != before {
            // The chain changed under the read: read the range again next poll.
            return Ok(Poll::UpToDate { head });
        }
        let observed = self.observe(&logs, store)?;
        let recorded = observed.len();
        store.apply(
            &observed,
            Checkpoint {
                number: to,
                hash: before,
            },
        )?;
        self.range = (self.range * 2).min(self.max_range);
        Ok(Poll::Scanned { from, to, recorded })
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
        let mut backoff = interval;
        loop {
            let wait = match self.poll(store).await {
                Ok(Poll::Scanned { from, to, recorded }) => {
                    tracing::debug!(from, to, recorded, "scanned");
                    self.publish(to);
                    backoff = interval;
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
                    backoff = interval;
                    interval
                }
                Err(error) => {
                    let retry_in_ms = backoff.as_millis() as u64;
                    if matches!(error, WatchError::Store(_)) {
                        tracing::error!(%error, retry_in_ms, "the store refused a poll");
                    } else {
                        tracing::warn!(%error, retry_in_ms, "poll failed");
                    }
                    let wait = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    wait
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
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
            .unwrap_or(self.start_block)
            .max(self.start_block);
        let now = crate::executor::now();
        match store.cursor()? {
            Some(cursor) if cursor.number >= from => {
                let restart = if from > self.start_block {
                    Some(Checkpoint {
                        number: from - 1,
                        hash: self.block_hash(from - 1).await?,
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

    /// The last block (number and hash, when known) both the store and the chain have, when the
    /// store's cursor is no longer canonical.
    async fn reorged(&self, store: &mut Store) -> Result<Option<(u64, Option<B256>)>, WatchError> {
        let Some(cursor) = store.cursor()? else {
            return Ok(None);
        };
        if self.block_hash(cursor.number).await? == cursor.hash {
            return Ok(None);
        }
        // The newest block the store holds a hash of that is still canonical: every block before
        // it is too (each block commits to its parent), so nothing recorded up to it changed.
        for anchor in store.anchors()? {
            if anchor.number < cursor.number && self.block_hash(anchor.number).await? == anchor.hash
            {
                return Ok(Some((anchor.number, Some(anchor.hash))));
            }
        }
        // Nothing recorded survived: scan everything again from the start.
        Ok(Some((self.start_block.saturating_sub(1), None)))
    }

    async fn block_hash(&self, number: u64) -> Result<B256, WatchError> {
        self.provider
            .get_block_by_number(BlockNumberOrTag::Number(number))
            .await?
            .map(|block| block.header.hash)
            .ok_or(WatchError::MissingBlock(number))
    }

    async fn logs(&self, from: u64, to: u64) -> Result<Vec<Log>, TransportError> {
        let filter = Filter::new()
            .address(vec![
                self.suite.agreement_store,
                self.suite.payment,
                self.suite.access_template,
                self.suite.compute_template,
            ])
            .event_signature(vec![
                ServiceTemplate::AgreementTerms::SIGNATURE_HASH,
                AgreementStore::AgreementCreated::SIGNATURE_HASH,
                AgreementStore::ConditionFulfilled::SIGNATURE_HASH,
                AgreementStore::ConditionAborted::SIGNATURE_HASH,
                PaymentCondition::PaymentReleased::SIGNATURE_HASH,
                PaymentCondition::PaymentRefunded::SIGNATURE_HASH,
            ])
            .from_block(from)
            .to_block(to);
        let mut logs = self.provider.get_logs(&filter).await?;
        logs.sort_by_key(|log| (log.block_number, log.log_index));
        Ok(logs)
    }

    /// Turns a range's logs into changes of this provider's agreements, in chain order.
    fn observe(&self, logs: &[Log], store: &Store) -> Result<Vec<Observed>, WatchError> {
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
            let Some(at) = position(log) else { continue };
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
                    None => store.by_condition(condition)?,
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

fn position(log: &Log) -> Option<LogPosition> {
    Some(LogPosition {
        block_number: log.block_number?,
        block_hash: log.block_hash?,
        log_index: log.log_index?,
        tx_hash: log.transaction_hash?,
    })
}

/// Whether the node refused a log query for its size (the messages of geth, erigon, alchemy,
/// infura and others), so a smaller range may pass.
fn is_range_error(error: &TransportError) -> bool {
    let Some(payload) = error.as_error_resp() else {
        return false;
    };
    let message = payload.message.to_lowercase();
    [
        "range",
        "too many",
        "limit",
        "exceed",
        "10000 results",
        "response size",
    ]
    .iter()
    .any(|needle| message.contains(needle))
}
