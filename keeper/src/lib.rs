//! The insitu keeper: the provider's agent that watches agreements on chain, fulfils the
//! conditions it is responsible for and releases payments.
//!
//! Data flows one way: the [`watcher`] reads the chain and records what it sees in the [`store`];
//! the [`executor`] acts on the store (fulfils, releases, registers results) and the [`api`] only
//! writes intents into it (a consumer's signed request, an operator's command). [`compute`] runs
//! consumers' algorithms beside the data; [`storage`] reads the files wherever they live.

pub mod admin;
pub mod api;
pub mod compute;
pub mod config;
pub mod executor;
pub mod requests;
pub mod rpc_pool;
pub mod service;
pub mod storage;
pub mod store;
pub mod watcher;

/// The outbound guard every fetch of a location goes through.
pub use insitu_outbound as outbound;
