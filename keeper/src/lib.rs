//! The insitu keeper: the provider's agent that watches agreements on chain, fulfils the
//! conditions it is responsible for and releases payments.
//!
//! Data flows one way: the [`watcher`] reads the chain and records what it sees in the [`store`];
//! the executor (to come) acts on the store. This version has the configuration ([`config`]), the
//! store and the watcher: `insitu-keeper` follows the chain and records the provider's agreements
//! and their states, across restarts and reorgs; it does not serve or settle yet.

pub mod admin;
pub mod api;
pub mod compute;
pub mod config;
pub mod executor;
pub mod outbound;
pub mod requests;
pub mod rpc_pool;
pub mod service;
pub mod storage;
pub mod store;
pub mod watcher;
