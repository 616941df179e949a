//! Receipts of executed transactions.

use alloy::{
    primitives::{Address, Log},
    sol_types::SolEvent,
};

use super::EventError;

/// The result of a successful transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt<T> {
    /// The decoded return value (raw bytes for [`Chain::send`](super::Chain::send), the new
    /// address for a deployment).
    pub output: T,
    /// Gas used, as in a real receipt: intrinsic gas and calldata included, refund subtracted.
    pub gas_used: u64,
    /// Gas refunded (e.g. for clearing storage), already subtracted from `gas_used`.
    pub gas_refunded: u64,
    /// Logs emitted, in order.
    pub logs: Vec<Log>,
    /// Address of the contract created by a create transaction.
    pub contract_address: Option<Address>,
    /// Block the transaction ran in.
    pub block_number: u64,
    /// Timestamp of that block.
    pub timestamp: u64,
}

impl<T> Receipt<T> {
    /// Replaces the output, keeping everything else.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Receipt<U> {
        Receipt {
            output: f(self.output),
            gas_used: self.gas_used,
            gas_refunded: self.gas_refunded,
            logs: self.logs,
            contract_address: self.contract_address,
            block_number: self.block_number,
            timestamp: self.timestamp,
        }
    }

    /// All events `E` emitted, from any address, in order. Logs of other events are skipped.
    pub fn events<E: SolEvent>(&self) -> Result<Vec<E>, EventError> {
        self.matching::<E>(None)
    }

    /// All events `E` emitted by the contract at `address`, in order.
    pub fn events_from<E: SolEvent>(&self, address: Address) -> Result<Vec<E>, EventError> {
        self.matching::<E>(Some(address))
    }

    /// The one event `E` emitted; an error if there is none or more than one.
    pub fn event<E: SolEvent>(&self) -> Result<E, EventError> {
        let mut events = self.events::<E>()?;
        match events.len() {
            1 => Ok(events.remove(0)),
            0 => Err(EventError::Missing {
                event: E::SIGNATURE,
            }),
            count => Err(EventError::Ambiguous {
                event: E::SIGNATURE,
                count,
            }),
        }
    }

    /// Test helper: the one event `E` emitted.
    ///
    /// # Panics
    ///
    /// If there is none, more than one, or it does not decode.
    #[track_caller]
    pub fn expect_event<E: SolEvent>(&self) -> E {
        match self.event::<E>() {
            Ok(event) => event,
            Err(err) => panic!("expect_event: {err}"),
        }
    }

    /// Whether at least one event `E` was emitted.
    pub fn has_event<E: SolEvent>(&self) -> bool {
        self.logs.iter().any(|log| is_event::<E>(log))
    }

    fn matching<E: SolEvent>(&self, address: Option<Address>) -> Result<Vec<E>, EventError> {
        let candidates = self
            .logs
            .iter()
            .filter(|log| address.is_none_or(|a| log.address == a));
        if E::ANONYMOUS {
            // No signature topic to match: every log that decodes is taken.
            return Ok(candidates
                .filter_map(|log| E::decode_log_data(&log.data).ok())
                .collect());
        }
        candidates
            .filter(|log| is_event::<E>(log))
            .map(|log| {
                E::decode_log_data(&log.data).map_err(|source| EventError::Decode {
                    event: E::SIGNATURE,
                    source: Box::new(source),
                })
            })
            .collect()
    }
}

fn is_event<E: SolEvent>(log: &Log) -> bool {
    if E::ANONYMOUS {
        E::decode_log_data(&log.data).is_ok()
    } else {
        log.topics().first() == Some(&E::SIGNATURE_HASH)
    }
}
