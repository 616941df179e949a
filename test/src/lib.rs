//! Test support and the contract test suite of insitu.
//!
//! The [`harness`] module runs the contracts on an in-memory EVM (revm) with typed calls,
//! decoded reverts and events, real gas accounting and a controllable clock. The tests in
//! `tests/` use it together with the bindings of `insitu-bindings`. The [`fuzz`] module is the
//! stateful invariant fuzzer behind the `fuzz` binary (see `docs/fuzzing.md`).

pub mod fuzz;
pub mod gas;
pub mod harness;
pub mod world;
