//! The insitu catalog: every asset published on the chains it follows, discoverable.
//!
//! - The [`indexer`] follows each chain's asset registry, agreement store and payment condition
//!   with the reorg-safe follower the keeper uses, and records their events in the [`store`].
//! - The [`fetcher`] gets each asset's metadata document through the outbound guard, checks it
//!   against the checksum on chain and validates it against the schema version it names; only a
//!   valid document that matches makes an asset searchable, and a mismatch is flagged.
//! - The [`api`] serves full-text search with filters, facets, sorting and stable pagination,
//!   asset pages with provenance and usage, and its OpenAPI document.
//!
//! Data flows one way: chain -> indexer -> store <- fetcher; the API only reads.

pub mod api;
pub mod config;
pub mod fetcher;
pub mod indexer;
pub mod market;
pub mod sample;
pub mod service;
pub mod store;
pub mod web;
