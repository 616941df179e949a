//! Rust bindings for the insitu Solidity contracts.
//!
//! The build script compiles every `.sol` file under `contracts/` (with the solcjs compiler that
//! `npm install` installs, through `tools/solc`) and generates one [`alloy::sol!`] module per contract,
//! interface or library that has an ABI. Each module is named like the Solidity type and holds:
//!
//! - one call type per function (e.g. `Name::fooCall`) and its return type, one type per event
//!   and custom error, and the enums `NameCalls`, `NameEvents` and `NameErrors`;
//! - `BYTECODE` / `DEPLOYED_BYTECODE` and `deploy` when the contract is deployable;
//! - an RPC instance type (`Name::new(address, provider)`) for use against a node.
//!
//! Contract names must be unique across `contracts/`: the build fails and names both files
//! otherwise. Editing a contract is picked up by the next `cargo build`/`cargo test`.
//!
//! With the `fixtures` feature, the small contracts under `test/fixtures/` (used only to test the
//! EVM harness) are compiled into the [`fixtures`] module; they never appear at the crate root.

include!(concat!(env!("OUT_DIR"), "/contracts.rs"));

/// Compiler settings the bindings were built with. They mirror `foundry.toml`.
pub mod settings {
    include!(concat!(env!("OUT_DIR"), "/settings.rs"));
}

/// Path of the folder holding one Foundry-style JSON artifact (`abi`, `bytecode`,
/// `deployedBytecode`) per entry of [`CONTRACTS`], named `<Name>.json`.
pub const ARTIFACTS_DIR: &str = concat!(env!("OUT_DIR"), "/artifacts");

/// Bindings of the harness test fixtures in `test/fixtures/`. Not part of insitu itself.
#[cfg(feature = "fixtures")]
pub mod fixtures {
    include!(concat!(env!("OUT_DIR"), "/fixtures/fixtures.rs"));

    /// Path of the folder holding the JSON artifacts of the fixtures.
    pub const ARTIFACTS_DIR: &str = concat!(env!("OUT_DIR"), "/fixtures/artifacts");
}

pub mod addresses;
pub mod deployment;
pub mod errors;
pub mod offers;
pub mod permits;
pub mod requests;
pub mod rounds;
