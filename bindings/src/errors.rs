//! One decoder for the revert data of any insitu contract: the custom errors of every contract of
//! the suite (and of the OpenZeppelin code they use), `Error(string)` and `Panic(uint256)`. The CLI,
//! the deploy command and the keeper name a failure with it.

use std::fmt;

use alloy::primitives::{Bytes, U256};
use alloy::sol_types::{Panic, Revert as RevertString, SolError};

/// A revert, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revert {
    /// A custom error declared by an insitu contract.
    Custom {
        /// The error's name, e.g. `TotalAboveMaximum`.
        name: String,
        /// The error with its arguments, e.g. `TotalAboveMaximum { total: 1100, maxTotal: 1010 }`.
        details: String,
    },
    /// `Error(string)`, from `require(condition, "message")` or `revert("message")`.
    Message(String),
    /// `Panic(uint256)`: a failed assertion, an arithmetic overflow, a division by zero...
    Panic(U256),
    /// No data: a plain `revert()`, running out of gas, or a call to an account without code.
    Empty,
    /// Data that no insitu contract declares.
    Unknown(Bytes),
}

impl fmt::Display for Revert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Custom { details, .. } => f.write_str(details),
            Self::Message(message) => write!(f, "Error({message:?})"),
            Self::Panic(code) => write!(f, "Panic({code:#x})"),
            Self::Empty => f.write_str("reverted without data"),
            Self::Unknown(data) => write!(f, "unknown revert data {data}"),
        }
    }
}

impl Revert {
    /// The error's name, when it is one of the suite's custom errors.
    pub fn name(&self) -> Option<&str> {
        match self {
            Self::Custom { name, .. } => Some(name),
            _ => None,
        }
    }
}

/// Decodes revert data returned by any insitu contract.
pub fn decode_revert(data: &[u8]) -> Revert {
    if data.is_empty() {
        return Revert::Empty;
    }
    if let Ok(message) = RevertString::abi_decode(data) {
        return Revert::Message(message.reason);
    }
    if let Ok(panic) = Panic::abi_decode(data) {
        return Revert::Panic(panic.code);
    }
    match crate::decode_custom_error(data) {
        // The generated decoder renders `Name(Name { args })`.
        Some(rendered) => {
            let (name, rest) = rendered.split_once('(').unwrap_or((&rendered, ""));
            let details = rest.strip_suffix(')').unwrap_or(rest);
            Revert::Custom {
                name: name.to_owned(),
                details: if details.is_empty() {
                    name.to_owned()
                } else {
                    details.to_owned()
                },
            }
        }
        None => Revert::Unknown(Bytes::copy_from_slice(data)),
    }
}
