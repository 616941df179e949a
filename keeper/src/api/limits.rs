//! Downloads in flight, per consumer.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use alloy::primitives::Address;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Counts the downloads each consumer has in flight, up to a limit per consumer.
#[derive(Debug)]
pub struct DownloadLimits {
    per_consumer: usize,
    open: Mutex<HashMap<Address, Arc<Semaphore>>>,
}

impl DownloadLimits {
    /// At most `per_consumer` downloads in flight for each consumer (at least one).
    pub fn new(per_consumer: u32) -> Self {
        Self {
            per_consumer: usize::try_from(per_consumer.max(1)).unwrap_or(usize::MAX),
            open: Mutex::new(HashMap::new()),
        }
    }

    /// A permit for one more download of `consumer`, to hold until the download ends (dropping
    /// it ends the count); `None` when `consumer` has the limit in flight already.
    pub fn try_start(&self, consumer: Address) -> Option<OwnedSemaphorePermit> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        // Consumers with nothing in flight are forgotten.
        open.retain(|_, semaphore| semaphore.available_permits() < self.per_consumer);
        open.entry(consumer)
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_consumer)))
            .clone()
            .try_acquire_owned()
            .ok()
    }

    /// Consumers with a download in flight.
    pub fn consumers_in_flight(&self) -> usize {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.values()
            .filter(|semaphore| semaphore.available_permits() < self.per_consumer)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_consumer_has_its_own_limit_and_a_finished_download_frees_its_place() {
        let limits = DownloadLimits::new(2);
        let (alice, bob) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let first = limits.try_start(alice).unwrap();
        let _second = limits.try_start(alice).unwrap();
        assert!(limits.try_start(alice).is_none(), "a third at once");
        let _bob = limits
            .try_start(bob)
            .expect("another consumer is not limited");
        assert_eq!(limits.consumers_in_flight(), 2);
        drop(first);
        let _third = limits.try_start(alice).expect("a place was freed");
        assert!(limits.try_start(alice).is_none());
    }

    #[test]
    fn consumers_with_nothing_in_flight_are_forgotten() {
        let limits = DownloadLimits::new(1);
        for byte in 0..100 {
            drop(limits.try_start(Address::repeat_byte(byte)).unwrap());
        }
        let _held = limits.try_start(Address::repeat_byte(200)).unwrap();
        assert_eq!(limits.open.lock().unwrap().len(), 1);
        assert_eq!(limits.consumers_in_flight(), 1);
    }
}
