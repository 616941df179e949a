//! Follows a chain's logs into a [`Journal`], reorg-safely: the scanning loop the keeper's
//! watcher and the catalog's indexer share.
//!
//! A [`Follower`] reads the logs of a fixed set of contracts and events in block ranges, only
//! once the blocks are buried under the configured confirmations, and hands each range to the
//! journal together with the range's last block (a [`Checkpoint`]) so that the journal records
//! both in one transaction.
//!
//! - **Reorgs.** Each step first checks that the journal's cursor is still canonical. If it is
//!   not (a reorg deeper than the confirmations), the follower walks back through the journal's
//!   anchors (blocks it holds hashes of) to the newest one the chain still has, has the journal
//!   undo everything after it, and scans again from there. A reorg shallower than the
//!   confirmations never reaches the journal.
//! - **Ranges adapt.** A node that refuses a range (too many results, too wide) gets half of it
//!   next time, down to one block; ranges grow again after successes.
//! - **Torn reads.** The range's last block hash is read before and after its logs; a reorg in
//!   between is caught and the range read again.
//! - **Failures** are returned; [`Backoff`] spaces the retries of a loop.

use std::time::Duration;

use alloy::{
    eips::BlockNumberOrTag,
    primitives::{Address, B256},
    providers::{DynProvider, Provider},
    rpc::types::{Filter, Log},
    transports::TransportError,
};
use serde::Serialize;

/// Widest range asked for in one `eth_getLogs`.
pub const MAX_RANGE: u64 = 2_000;
/// Longest wait between retries after failures.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// A block the journal has scanned up to, or holds events of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Checkpoint {
    /// Its number.
    pub number: u64,
    /// Its hash.
    pub hash: B256,
}

/// Where a log came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LogPosition {
    /// Block number.
    pub block_number: u64,
    /// Block hash.
    pub block_hash: B256,
    /// Index of the log in the block.
    pub log_index: u64,
    /// The transaction.
    pub tx_hash: B256,
}

impl LogPosition {
    /// The position of a mined log; `None` for a pending one (never returned by ranged queries).
    pub fn of(log: &Log) -> Option<Self> {
        Some(Self {
            block_number: log.block_number?,
            block_hash: log.block_hash?,
            log_index: log.log_index?,
            tx_hash: log.transaction_hash?,
        })
    }
}

/// Where a [`Follower`] records what it reads. Each method is one transaction of the journal's
/// store: a range's events and the cursor move together, or not at all.
pub trait Journal {
    /// The journal's failure.
    type Error: std::error::Error + Send + Sync + 'static;
    /// What undoing a reorg reports (the records it changed, say).
    type Undone;

    /// The last block scanned, if any.
    ///
    /// # Errors
    ///
    /// The journal's.
    fn cursor(&mut self) -> Result<Option<Checkpoint>, Self::Error>;

    /// Every block the journal holds the hash of (kept checkpoints, blocks of recorded events),
    /// newest first: where a reorg's common ancestor is looked for.
    ///
    /// # Errors
    ///
    /// The journal's.
    fn anchors(&mut self) -> Result<Vec<Checkpoint>, Self::Error>;

    /// Undoes everything recorded after block `ancestor` (whose hash is `hash` when known; `None`:
    /// nothing survived, the scan restarts at the first block) and moves the cursor there.
    ///
    /// # Errors
    ///
    /// The journal's; nothing is undone then.
    fn rollback(&mut self, ancestor: u64, hash: Option<B256>) -> Result<Self::Undone, Self::Error>;

    /// Records the logs of one range (in chain order) and moves the cursor to `cursor`, returning
    /// how many were recorded. Logs of no interest are skipped; a log recorded before (same block
    /// and index) is not recorded twice.
    ///
    /// # Errors
    ///
    /// The journal's; nothing is recorded then.
    fn record(&mut self, logs: &[Log], cursor: Checkpoint) -> Result<usize, Self::Error>;
}

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum FollowError<E: std::error::Error + 'static> {
    /// The node could not be read.
    #[error("RPC error: {0}")]
    Rpc(#[from] TransportError),
    /// The journal failed.
    #[error(transparent)]
    Journal(E),
    /// The node does not know a block it reported.
    #[error("the node does not return block {0}")]
    MissingBlock(u64),
}

/// What a step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step<U> {
    /// Blocks `from..=to` were scanned and `recorded` logs recorded.
    Scanned {
        /// First block.
        from: u64,
        /// Last block.
        to: u64,
        /// Logs recorded.
        recorded: usize,
    },
    /// A reorg was undone back to block `ancestor`.
    Reorged {
        /// The last block both chains share.
        ancestor: u64,
        /// What the journal undid.
        undone: U,
    },
    /// Nothing new is buried under the confirmations yet.
    UpToDate {
        /// The chain's head.
        head: u64,
    },
}

/// Reads one chain's logs of some contracts and events into a [`Journal`].
#[derive(Debug, Clone)]
pub struct Follower {
    provider: DynProvider,
    addresses: Vec<Address>,
    events: Vec<B256>,
    confirmations: u64,
    start_block: u64,
    range: u64,
    max_range: u64,
    block_times: bool,
}

impl Follower {
    /// A follower of the logs with topic0 in `events` emitted by `addresses`, from `start_block`
    /// on, acting `confirmations` blocks behind the head.
    pub fn new(
        provider: DynProvider,
        addresses: Vec<Address>,
        events: Vec<B256>,
        confirmations: u64,
        start_block: u64,
    ) -> Self {
        Self {
            provider,
            addresses,
            events,
            confirmations,
            start_block,
            range: MAX_RANGE,
            max_range: MAX_RANGE,
            block_times: false,
        }
    }

    /// Has every log handed to the journal carry its block's time: nodes that leave
    /// `blockTimestamp` out of their logs get the blocks' headers read (once per block).
    pub fn with_block_times(mut self) -> Self {
        self.block_times = true;
        self
    }

    /// Caps the blocks per `eth_getLogs` (for nodes with tight limits, and tests).
    pub fn with_max_range(mut self, max_range: u64) -> Self {
        self.max_range = max_range.max(1);
        self.range = self.range.min(self.max_range);
        self
    }

    /// The first block followed.
    pub fn start_block(&self) -> u64 {
        self.start_block
    }

    /// The node read.
    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }

    /// One step: undo a reorg if there was one, else scan the next range, else report the head.
    ///
    /// # Errors
    ///
    /// See [`FollowError`]; nothing is recorded then.
    pub async fn step<J: Journal>(
        &mut self,
        journal: &mut J,
    ) -> Result<Step<J::Undone>, FollowError<J::Error>> {
        if let Some((ancestor, hash)) = self.reorged(journal).await? {
            let undone = journal
                .rollback(ancestor, hash)
                .map_err(FollowError::Journal)?;
            return Ok(Step::Reorged { ancestor, undone });
        }
        let head = self.provider.get_block_number().await?;
        let safe = head.saturating_sub(self.confirmations);
        let from = match journal.cursor().map_err(FollowError::Journal)? {
            Some(cursor) => cursor.number + 1,
            None => self.start_block,
        };
        if from > safe {
            return Ok(Step::UpToDate { head });
        }
        let to = safe.min(from + self.range - 1);
        let before = self.block_hash(to).await?;
        let logs = match self.logs(from, to).await {
            Ok(logs) => logs,
            Err(error) => {
                if self.range > 1 && is_range_error(&error) {
                    self.range = (self.range / 2).max(1);
                }
                return Err(error.into());
            }
        };
        if self.block_hash(to).await? != before {
            // The chain changed under the read: read the range again next step.
            return Ok(Step::UpToDate { head });
        }
        let recorded = journal
            .record(
                &logs,
                Checkpoint {
                    number: to,
                    hash: before,
                },
            )
            .map_err(FollowError::Journal)?;
        self.range = (self.range * 2).min(self.max_range);
        Ok(Step::Scanned { from, to, recorded })
    }

    /// The hash of canonical block `number`.
    ///
    /// # Errors
    ///
    /// [`FollowError::Rpc`], or [`FollowError::MissingBlock`] when the node does not have it.
    pub async fn block_hash<E: std::error::Error + 'static>(
        &self,
        number: u64,
    ) -> Result<B256, FollowError<E>> {
        self.provider
            .get_block_by_number(BlockNumberOrTag::Number(number))
            .await?
            .map(|block| block.header.hash)
            .ok_or(FollowError::MissingBlock(number))
    }

    /// The last block (number and hash, when known) both the journal and the chain have, when the
    /// journal's cursor is no longer canonical.
    async fn reorged<J: Journal>(
        &self,
        journal: &mut J,
    ) -> Result<Option<(u64, Option<B256>)>, FollowError<J::Error>> {
        let Some(cursor) = journal.cursor().map_err(FollowError::Journal)? else {
            return Ok(None);
        };
        if self.block_hash(cursor.number).await? == cursor.hash {
            return Ok(None);
        }
        // The newest block the journal holds a hash of that is still canonical: every block
        // before it is too (each block commits to its parent), so nothing recorded up to it
        // changed.
        for anchor in journal.anchors().map_err(FollowError::Journal)? {
            if anchor.number < cursor.number && self.block_hash(anchor.number).await? == anchor.hash
            {
                return Ok(Some((anchor.number, Some(anchor.hash))));
            }
        }
        // Nothing recorded survived: scan everything again from the start.
        Ok(Some((self.start_block.saturating_sub(1), None)))
    }

    async fn logs(&self, from: u64, to: u64) -> Result<Vec<Log>, TransportError> {
        let filter = Filter::new()
            .address(self.addresses.clone())
            .event_signature(self.events.clone())
            .from_block(from)
            .to_block(to);
        let mut logs = self.provider.get_logs(&filter).await?;
        logs.sort_by_key(|log| (log.block_number, log.log_index));
        if self.block_times {
            let mut known: Option<(u64, u64)> = None;
            for log in logs.iter_mut().filter(|log| log.block_timestamp.is_none()) {
                let Some(number) = log.block_number else {
                    continue;
                };
                let time = match known {
                    Some((block, time)) if block == number => time,
                    _ => {
                        let header = self
                            .provider
                            .get_block_by_number(BlockNumberOrTag::Number(number))
                            .await?
                            .map(|block| block.header.timestamp);
                        let Some(time) = header else { continue };
                        known = Some((number, time));
                        time
                    }
                };
                log.block_timestamp = Some(time);
            }
        }
        Ok(logs)
    }
}

/// Whether the node refused a log query for its size (the messages of geth, erigon, alchemy,
/// infura and others), so a smaller range may pass.
pub fn is_range_error(error: &TransportError) -> bool {
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

/// Exponential backoff between the retries of a polling loop: the interval after a success,
/// doubling after each failure up to [`MAX_BACKOFF`].
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    interval: Duration,
    next: Duration,
}

impl Backoff {
    /// A backoff that starts at `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            next: interval,
        }
    }

    /// A step succeeded: the next failure waits `interval` again.
    pub fn reset(&mut self) {
        self.next = self.interval;
    }

    /// A step failed: how long to wait before the next (doubling each time).
    pub fn failed(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(MAX_BACKOFF.max(self.interval));
        wait
    }
}

/// Waits `wait`, or until `shutdown` turns true (or its sender is gone); returns whether the
/// loop should stop.
pub async fn pause(wait: Duration, shutdown: &mut tokio::sync::watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(wait) => {}
        changed = shutdown.changed() => {
            if changed.is_err() {
                return true;
            }
        }
    }
    *shutdown.borrow()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_and_resets() {
        let mut backoff = Backoff::new(Duration::from_secs(10));
        let waits: Vec<u64> = (0..5).map(|_| backoff.failed().as_secs()).collect();
        assert_eq!(waits, [10, 20, 40, 60, 60]);
        backoff.reset();
        assert_eq!(backoff.failed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_ends_at_its_time_or_at_shutdown() {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        assert!(!pause(Duration::from_secs(5), &mut stopped).await);
        let waiting = tokio::spawn(async move {
            let stopping = pause(Duration::from_secs(3_600), &mut stopped).await;
            (stopping, tokio::time::Instant::now())
        });
        let asked = tokio::time::Instant::now();
        stop.send_replace(true);
        let (stopping, at) = waiting.await.unwrap();
        assert!(stopping);
        assert!(at - asked < Duration::from_secs(1));
        let (gone, mut orphan) = tokio::sync::watch::channel(false);
        drop(gone);
        assert!(pause(Duration::from_secs(5), &mut orphan).await);
    }
}
