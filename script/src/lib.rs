//! Developer scripts for insitu.
//!
//! - [`devnet`]: starts a local anvil node (the binary `npm install` puts in node_modules) for tests and demos.
//! - [`addresses`]: the JSON file that records where a deployment put each contract.

pub mod addresses;
pub mod devnet;
