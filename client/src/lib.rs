//! The insitu client library: everything the `insitu` command does, for the command itself, the
//! demo, the keeper's tests and integrators.
//!
//! - [`rpc`]: connections over http, https, ws and wss, with the chain id checked.
//! - [`keys`]: the signing key, from the environment or an encrypted keystore.
//! - [`metadata`]: asset metadata documents: schema, validation, checksum, sealed file locations.
//! - [`market`]: publish an asset at a keeper, buy it on the keeper's offer, download it.
//! - [`catalog`]: search a catalog of published assets.
//! - [`compute`]: order a compute job on a bought agreement, follow it, read its logs, stop it.
//! - [`federated`]: federated training across several providers: order the jobs, check each
//!   provider's signed round log, register the trained model.
//! - [`tx`]: transactions prepared, signed, sent and confirmed with a time out and progress.
//! - [`simulate`]: a deployment plan executed in memory before anything is sent.
//! - [`deploy`]: the deployment of the suite, recorded in a journal so an interrupted one resumes.
//! - [`suite`]: a deployed suite opened from its addresses file.
//! - [`agreement`], [`asset`], [`payments`], [`governance`]: reading agreements and assets,
//!   refunds and withdrawals, network fee and templates.
//! - [`devnet`] and [`demo`]: the local anvil node and the end-to-end demo.
//! - [`addresses`]: the addresses file (defined in `insitu-bindings`, shared with the keeper).

pub use insitu_bindings::addresses;
pub mod agreement;
pub mod asset;
pub mod catalog;
pub mod compute;
pub mod demo;
pub mod deploy;
pub mod devnet;
pub mod federated;
pub mod governance;
pub mod keys;
pub mod market;
pub mod metadata;
pub mod payments;
pub mod rpc;
pub mod simulate;
pub mod suite;
pub mod tx;
