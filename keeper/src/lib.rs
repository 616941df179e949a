//! The insitu keeper: the provider's agent that watches agreements on chain, fulfils the
//! conditions it is responsible for and releases payments.
//!
//! This version holds the configuration ([`config`]); the binary `insitu-keeper` loads and
//! validates it (`--check-config`).

pub mod config;
