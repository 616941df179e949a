//! Errors of transactions and of decoding their results.

use std::{convert::Infallible, fmt};

use alloy::{
    primitives::{Bytes, U256},
    sol_types::{Panic, PanicKind, Revert as RevertString, SolError, SolInterface},
};
use revm::context::result::{EVMError, HaltReason};

/// Why a call or transaction did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum TxError {
    /// The EVM executed the transaction and it reverted (`REVERT`): a custom error,
    /// `Error(string)` from `require`/`revert("..")`, or `Panic(uint256)`.
    #[error("execution reverted: {0}")]
    Revert(Revert),
    /// Execution stopped exceptionally (out of gas, invalid opcode, ...) and used all its gas.
    #[error("execution halted: {reason:?} (gas used {gas_used})")]
    Halt {
        /// What stopped the execution.
        reason: HaltReason,
        /// Gas used, which is the whole gas limit for the usual halts.
        gas_used: u64,
    },
    /// The transaction was invalid and not executed at all (e.g. value above the sender's
    /// balance, gas limit above the block's).
    #[error("transaction rejected: {0}")]
    Rejected(#[source] EVMError<Infallible>),
    /// The call succeeded but its return data does not decode as the function's outputs
    /// (usually: the address holds another contract, or no contract).
    #[error("cannot decode the return data of {function} ({data}): {source}")]
    Decode {
        /// Solidity signature of the called function.
        function: &'static str,
        /// The return data.
        data: Bytes,
        /// The decoding error.
        #[source]
        source: Box<alloy::sol_types::Error>,
    },
    /// A create transaction succeeded without creating a contract.
    #[error("the create transaction did not create a contract")]
    NoContractCreated,
}

impl TxError {
    /// The revert, if the transaction reverted.
    pub fn revert(&self) -> Option<&Revert> {
        match self {
            Self::Revert(revert) => Some(revert),
            _ => None,
        }
    }

    /// Decodes the revert data as one of the errors of a contract's error enum (e.g.
    /// `Market::MarketErrors`). `None` if it did not revert or the data is none of them.
    pub fn decode<E: SolInterface>(&self) -> Option<E> {
        self.revert()?.decode()
    }

    /// Decodes the revert data as the custom error `E`. `None` if it did not revert with `E`.
    pub fn decode_error<E: SolError>(&self) -> Option<E> {
        self.revert()?.decode_error()
    }

    /// Gas used by the failed transaction, when it was executed.
    pub fn gas_used(&self) -> Option<u64> {
        match self {
            Self::Revert(revert) => Some(revert.gas_used),
            Self::Halt { gas_used, .. } => Some(*gas_used),
            _ => None,
        }
    }
}

/// The revert of a transaction: raw revert data and the gas used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revert {
    /// Raw revert data: a 4-byte selector and ABI-encoded arguments, or empty for a bare
    /// `revert()`.
    pub data: Bytes,
    /// Gas used by the reverted transaction.
    pub gas_used: u64,
}

impl Revert {
    /// Decodes the data as one of the errors of an error enum (`Name::NameErrors`).
    pub fn decode<E: SolInterface>(&self) -> Option<E> {
        E::abi_decode(&self.data).ok()
    }

    /// Decodes the data as the custom error `E` (the selector must match).
    pub fn decode_error<E: SolError>(&self) -> Option<E> {
        E::abi_decode(&self.data).ok()
    }

    /// The message of an `Error(string)` revert (`require(cond, "message")`).
    pub fn reason(&self) -> Option<String> {
        self.decode_error::<RevertString>()
            .map(|revert| revert.reason)
    }

    /// The code of a `Panic(uint256)` revert (e.g. `0x12` for division by zero).
    pub fn panic_code(&self) -> Option<U256> {
        self.decode_error::<Panic>().map(|panic| panic.code)
    }

    /// The kind of a `Panic(uint256)` revert, when the code is a known one.
    pub fn panic_kind(&self) -> Option<PanicKind> {
        self.decode_error::<Panic>().and_then(|panic| panic.kind())
    }

    /// The 4-byte selector of the revert data, if it has one.
    pub fn selector(&self) -> Option<[u8; 4]> {
        self.data.get(..4).and_then(|s| s.try_into().ok())
    }
}

impl fmt::Display for Revert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.data.is_empty() {
            return write!(f, "without data (gas used {})", self.gas_used);
        }
        if let Some(reason) = self.reason() {
            return write!(f, "{reason:?} (gas used {})", self.gas_used);
        }
        if let Some(panic) = self.decode_error::<Panic>() {
            return write!(f, "{panic} (gas used {})", self.gas_used);
        }
        write!(f, "custom error {} (gas used {})", self.data, self.gas_used)
    }
}

/// Why the events of a receipt could not be read as asked.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// No log has the signature of the event.
    #[error("no {event} event was emitted")]
    Missing {
        /// Solidity signature of the event.
        event: &'static str,
    },
    /// More than one log has the signature, where exactly one was expected.
    #[error("{count} {event} events were emitted, expected exactly one")]
    Ambiguous {
        /// Solidity signature of the event.
        event: &'static str,
        /// Number of matching logs.
        count: usize,
    },
    /// A log has the event's signature but its topics or data do not decode.
    #[error("a log with the signature of {event} does not decode: {source}")]
    Decode {
        /// Solidity signature of the event.
        event: &'static str,
        /// The decoding error.
        #[source]
        source: Box<alloy::sol_types::Error>,
    },
}
