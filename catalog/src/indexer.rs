//! The indexer: follows one chain's asset registry, agreement store and payment condition with
//! the shared reorg-safe follower, and records their events in the [`Store`].

use std::time::Duration;

use alloy::{primitives::B256, providers::DynProvider, rpc::types::Log, sol_types::SolEvent};
use insitu_bindings::{
    AgreementStore, AssetRegistry, PaymentCondition, deployment::SuiteAddresses,
};
use insitu_chainwatch::{Backoff, Checkpoint, FollowError, Follower, Journal, LogPosition, Step};
use insitu_client::metadata::ServiceKind;

use crate::store::{Event, Located, Store, StoreError};

/// Follows one chain into the store.
#[derive(Debug)]
pub struct Indexer {
    chain: u64,
    suite: SuiteAddresses,
    follower: Follower,
}

/// One chain's events as the follower's journal.
struct ChainJournal<'a> {
    store: &'a mut Store,
    chain: u64,
    suite: &'a SuiteAddresses,
}

impl Indexer {
    /// An indexer of chain `chain` (whose node is `provider`) where the suite is deployed at
    /// `suite` from block `start_block`, acting `confirmations` blocks behind the head.
    pub fn new(
        provider: DynProvider,
        chain: u64,
        suite: SuiteAddresses,
        confirmations: u64,
        start_block: u64,
    ) -> Self {
        let follower = Follower::new(
            provider,
            vec![suite.asset_registry, suite.agreement_store, suite.payment],
            vec![
                AssetRegistry::AssetRegistered::SIGNATURE_HASH,
                AssetRegistry::MetadataUpdated::SIGNATURE_HASH,
                AssetRegistry::AssetOwnershipTransferred::SIGNATURE_HASH,
                AssetRegistry::ProviderAdded::SIGNATURE_HASH,
                AssetRegistry::ProviderRemoved::SIGNATURE_HASH,
                AssetRegistry::WasGeneratedBy::SIGNATURE_HASH,
                AssetRegistry::WasDerivedFrom::SIGNATURE_HASH,
                AssetRegistry::Used::SIGNATURE_HASH,
                AgreementStore::AgreementCreated::SIGNATURE_HASH,
                AgreementStore::ConditionFulfilled::SIGNATURE_HASH,
                PaymentCondition::PaymentReleased::SIGNATURE_HASH,
                PaymentCondition::PaymentRefunded::SIGNATURE_HASH,
            ],
            confirmations,
            start_block,
        )
        .with_block_times();
        Self {
            chain,
            suite,
            follower,
        }
    }

    /// One step: undo a reorg, or index the next range, or report the head.
    ///
    /// # Errors
    ///
    /// The node's or the store's.
    pub async fn step(
        &mut self,
        store: &mut Store,
    ) -> Result<Step<Vec<B256>>, FollowError<StoreError>> {
        let mut journal = ChainJournal {
            store,
            chain: self.chain,
            suite: &self.suite,
        };
        self.follower.step(&mut journal).await
    }

    /// Steps every `interval` until `shutdown`, retrying failures with backoff; wakes
    /// `progress` (the fetcher) after each range with events and each reorg.
    pub async fn run(
        mut self,
        store: &mut Store,
        interval: Duration,
        progress: std::sync::Arc<tokio::sync::Notify>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut backoff = Backoff::new(interval);
        loop {
            let wait = match self.step(store).await {
                Ok(Step::Scanned { from, to, recorded }) => {
                    tracing::debug!(chain = self.chain, from, to, recorded, "indexed");
                    if recorded > 0 {
                        progress.notify_one();
                    }
                    backoff.reset();
                    Duration::ZERO
                }
                Ok(Step::Reorged { ancestor, undone }) => {
                    tracing::warn!(
                        chain = self.chain,
                        ancestor,
                        assets = undone.len(),
                        "reorg undone"
                    );
                    progress.notify_one();
                    Duration::ZERO
                }
                Ok(Step::UpToDate { .. }) => {
                    backoff.reset();
                    interval
                }
                Err(error) => {
                    let wait = backoff.failed();
                    tracing::warn!(
                        chain = self.chain,
                        %error,
                        retry_in_ms = wait.as_millis() as u64,
                        "indexing failed"
                    );
                    wait
                }
            };
            if insitu_chainwatch::pause(wait, &mut shutdown).await {
                return;
            }
        }
    }
}

impl Journal for ChainJournal<'_> {
    type Error = StoreError;
    type Undone = Vec<B256>;

    fn cursor(&mut self) -> Result<Option<Checkpoint>, StoreError> {
        self.store.cursor(self.chain)
    }

    fn anchors(&mut self) -> Result<Vec<Checkpoint>, StoreError> {
        self.store.anchors(self.chain)
    }

    fn rollback(&mut self, ancestor: u64, hash: Option<B256>) -> Result<Vec<B256>, StoreError> {
        self.store.rollback(self.chain, ancestor, hash)
    }

    fn record(&mut self, logs: &[Log], cursor: Checkpoint) -> Result<usize, StoreError> {
        let events: Vec<Located> = logs
            .iter()
            .filter_map(|log| {
                Some(Located {
                    at: LogPosition::of(log)?,
                    time: log.block_timestamp.unwrap_or_default(),
                    event: decode(self.suite, log)?,
                })
            })
            .collect();
        self.store.record(self.chain, &events, cursor)
    }
}

/// The event a log is, when it is one the catalog follows from the suite's contracts.
pub fn decode(suite: &SuiteAddresses, log: &Log) -> Option<Event> {
    let address = log.address();
    if address == suite.asset_registry {
        decode_registry(log)
    } else if address == suite.agreement_store {
        if let Ok(event) = log.log_decode::<AgreementStore::AgreementCreated>() {
            let event = event.inner.data;
            let service = if event.template == suite.access_template {
                ServiceKind::Access
            } else if event.template == suite.compute_template {
                ServiceKind::Compute
            } else {
                return None;
            };
            // The templates' conditions: the payment first, then the service.
            let [_, service_condition] = event.conditionIds[..] else {
                return None;
            };
            return Some(Event::Agreement {
                id: event.agreementId,
                did: event.did,
                service,
                service_condition,
            });
        }
        let event = log
            .log_decode::<AgreementStore::ConditionFulfilled>()
            .ok()?;
        Some(Event::Fulfilled {
            condition: event.inner.data.conditionId,
        })
    } else if address == suite.payment {
        if let Ok(event) = log.log_decode::<PaymentCondition::PaymentReleased>() {
            return Some(Event::Released {
                agreement: event.inner.data.agreementId,
            });
        }
        let event = log.log_decode::<PaymentCondition::PaymentRefunded>().ok()?;
        Some(Event::Refunded {
            agreement: event.inner.data.agreementId,
        })
    } else {
        None
    }
}

fn decode_registry(log: &Log) -> Option<Event> {
    use AssetRegistry as R;
    let topic = *log.topic0()?;
    Some(match topic {
        R::AssetRegistered::SIGNATURE_HASH => {
            let event = log.log_decode::<R::AssetRegistered>().ok()?.inner.data;
            Event::Registered {
                did: event.did,
                owner: event.owner,
                checksum: event.checksum,
                url: event.url,
            }
        }
        R::MetadataUpdated::SIGNATURE_HASH => {
            let event = log.log_decode::<R::MetadataUpdated>().ok()?.inner.data;
            Event::MetadataUpdated {
                did: event.did,
                checksum: event.checksum,
                url: event.url,
            }
        }
        R::AssetOwnershipTransferred::SIGNATURE_HASH => {
            let event = log
                .log_decode::<R::AssetOwnershipTransferred>()
                .ok()?
                .inner
                .data;
            Event::OwnerChanged {
                did: event.did,
                owner: event.newOwner,
            }
        }
        R::ProviderAdded::SIGNATURE_HASH => {
            let event = log.log_decode::<R::ProviderAdded>().ok()?.inner.data;
            Event::ProviderAdded {
                did: event.did,
                provider: event.provider,
            }
        }
        R::ProviderRemoved::SIGNATURE_HASH => {
            let event = log.log_decode::<R::ProviderRemoved>().ok()?.inner.data;
            Event::ProviderRemoved {
                did: event.did,
                provider: event.provider,
            }
        }
        R::WasGeneratedBy::SIGNATURE_HASH => {
            let event = log.log_decode::<R::WasGeneratedBy>().ok()?.inner.data;
            Event::Generated {
                did: event.did,
                activity: event.activityId,
                agent: event.agent,
            }
        }
        R::WasDerivedFrom::SIGNATURE_HASH => {
            let event = log.log_decode::<R::WasDerivedFrom>().ok()?.inner.data;
            Event::Derived {
                did: event.did,
                source: event.sourceDid,
                activity: event.activityId,
            }
        }
        R::Used::SIGNATURE_HASH => {
            let event = log.log_decode::<R::Used>().ok()?.inner.data;
            Event::Used {
                did: event.did,
                activity: event.activityId,
            }
        }
        _ => return None,
    })
}
