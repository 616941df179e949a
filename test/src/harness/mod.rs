//! An in-memory EVM chain for contract tests.
//!
//! [`Chain`] wraps revm with an in-memory state ([`CacheDB`] over [`EmptyDB`]), configured like
//! the chain the contracts target: the Cancun hard fork (the `evm_version` of `foundry.toml`),
//! chain id 31337 (anvil's) and a base fee of zero. Calls and transactions take the typed call
//! structs that `alloy::sol!` generates for the bindings and return their decoded results;
//! reverts come back as [`TxError`], from which custom errors, `Error(string)` and
//! `Panic(uint256)` can be decoded by type.
//!
//! Gas is accounted as on a real chain: `gas_used` of a [`Receipt`] includes the intrinsic
//! cost, calldata and the capped refund. Gas price is zero, so sending transactions costs no ETH
//! and balances only move by value transfers.
//!
//! The clock only moves when asked: every transaction runs in the current block until
//! [`Chain::mine`], [`Chain::warp`] or [`Chain::set_timestamp`] changes it.
//!
//! ```
//! use alloy::primitives::U256;
//! use insitu_bindings::fixtures::HarnessProbe;
//! use insitu_tests::harness::{Chain, ExpectRevert};
//!
//! let mut chain = Chain::new();
//! let owner = chain.account_named("owner");
//! let stranger = chain.account_named("stranger");
//!
//! // Deploy with constructor arguments; `deploy` returns the address.
//! let probe = chain
//!     .deploy(
//!         owner,
//!         &HarnessProbe::BYTECODE,
//!         &HarnessProbe::constructorCall { label_: "demo".into(), initial: U256::from(1) },
//!     )
//!     .unwrap();
//!
//! // A transaction: decoded return value, gas, typed events.
//! let receipt = chain
//!     .transact(owner, probe, &HarnessProbe::storeCall { newValue: U256::from(2) })
//!     .unwrap();
//! assert_eq!(receipt.output, U256::from(1));
//! assert!(receipt.gas_used > 21_000);
//! let stored: HarnessProbe::Stored = receipt.expect_event();
//! assert_eq!(stored.newValue, U256::from(2));
//!
//! // A call (nothing committed).
//! assert_eq!(chain.call(probe, &HarnessProbe::valueCall {}).unwrap(), U256::from(2));
//!
//! // A revert with a custom error, decoded by type.
//! let err: HarnessProbe::NotOwner = chain
//!     .call_from(stranger, probe, &HarnessProbe::onlyOwnerActionCall { code: U256::from(7) })
//!     .expect_revert();
//! assert_eq!(err.caller, stranger);
//!
//! // Time.
//! chain.warp(3600); // one hour later, same block
//! chain.mine(1); // next block, 12 seconds later
//! assert_eq!(chain.timestamp(), insitu_tests::harness::GENESIS_TIMESTAMP + 3612);
//! ```
//!
//! [`CacheDB`]: revm::database::CacheDB
//! [`EmptyDB`]: revm::database::EmptyDB

mod chain;
mod error;
mod expect;
mod profile;
mod receipt;

pub use chain::{
    BLOCK_GAS_LIMIT, BLOCK_TIME, CHAIN_ID, Chain, DEFAULT_BALANCE, GENESIS_BLOCK,
    GENESIS_TIMESTAMP, SPEC, Snapshot, Tx,
};
pub use error::{EventError, Revert, TxError};
pub use expect::ExpectRevert;
pub use profile::GasProfile;
pub use receipt::Receipt;
