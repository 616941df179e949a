//! Developer scripts for insitu.
//!
//! - [`devnet`]: starts a local anvil node (the binary `npm install` puts in node_modules) for tests and demos.
//! - [`addresses`]: the JSON file that records where a deployment put each contract.
//! - [`deploy`]: deploys and wires the contract suite on any chain (binary `insitu-deploy`).
//! - [`demo`]: the end-to-end demo on a local node (binary `insitu-demo`).

pub mod addresses;
pub mod demo;
pub mod deploy;
pub mod devnet;
