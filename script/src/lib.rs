//! Developer scripts for insitu.
//!
//! - [`devnet`]: starts a local anvil node (the binary `npm install` puts in node_modules) for tests and demos.
//! - [`addresses`]: the JSON file that records where a deployment put each contract (defined in
//!   `insitu-bindings`, which the keeper shares).
//! - [`deploy`]: deploys and wires the contract suite on any chain (binary `insitu-deploy`).
//! - [`demo`]: the end-to-end demo on a local node (binary `insitu-demo`).

pub use insitu_bindings::addresses;
pub mod demo;
pub mod deploy;
pub mod devnet;
