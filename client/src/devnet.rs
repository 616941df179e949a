//! A local anvil devnet.
//!
//! anvil comes from the npm package `@foundry-rs/anvil` (installed by `npm install` in the
//! repository root), so no global Foundry installation is needed. [`anvil_path`] finds the
//! binary; [`Devnet::start`] runs it on a free port of 127.0.0.1 and stops it when dropped.

use std::{
    env,
    path::{Path, PathBuf},
};

use alloy::{
    node_bindings::{Anvil, AnvilInstance, NodeError},
    primitives::Address,
    signers::local::PrivateKeySigner,
};

/// Environment variable that overrides the path of the anvil binary.
pub const ANVIL_ENV: &str = "INSITU_ANVIL";

/// Path of the anvil binary installed by npm, relative to the repository root.
pub const NPM_ANVIL: &str = "node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil";

/// Chain id of the devnet (anvil's default, and the harness's).
pub const DEVNET_CHAIN_ID: u64 = 31337;

/// Why the devnet could not start.
#[derive(Debug, thiserror::Error)]
pub enum DevnetError {
    /// The anvil binary is not where it should be.
    #[error(
        "anvil not found at {}; run `npm install` in the repository root (or set {ANVIL_ENV} to an anvil binary)",
        path.display()
    )]
    AnvilMissing {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// anvil was found but did not start.
    #[error("anvil at {} did not start: {source}", path.display())]
    Spawn {
        /// The binary that was run.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: NodeError,
    },
}

/// The repository root (the Cargo workspace root), as known when this crate was compiled.
pub fn repository_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// The anvil binary to run: `$INSITU_ANVIL` when set, else the one npm installed under the
/// repository root. Fails with [`DevnetError::AnvilMissing`] when that file does not exist.
pub fn anvil_path() -> Result<PathBuf, DevnetError> {
    let overridden = env::var_os(ANVIL_ENV)
        .filter(|path| !path.is_empty())
        .map(PathBuf::from);
    locate_anvil(overridden.as_deref(), &repository_root())
}

/// The anvil binary: `override_path` when given, else [`NPM_ANVIL`] under `root`. Fails with
/// [`DevnetError::AnvilMissing`] when that file does not exist.
pub fn locate_anvil(override_path: Option<&Path>, root: &Path) -> Result<PathBuf, DevnetError> {
    let path = override_path.map_or_else(|| root.join(NPM_ANVIL), Path::to_path_buf);
    if path.is_file() {
        Ok(path)
    } else {
        Err(DevnetError::AnvilMissing { path })
    }
}

/// A running anvil node, stopped (killed) when dropped.
#[derive(Debug)]
pub struct Devnet {
    anvil: AnvilInstance,
}

impl Devnet {
    /// Starts anvil on a free port of 127.0.0.1, with chain id [`DEVNET_CHAIN_ID`], the Cancun
    /// hard fork (the contracts' `evm_version`) and anvil's funded dev accounts.
    pub fn start() -> Result<Self, DevnetError> {
        Self::start_with(|anvil| anvil)
    }

    /// Like [`Devnet::start`], letting the caller adjust the anvil builder (e.g. add
    /// `.block_time(1)` or `.arg(..)`) before it is spawned.
    pub fn start_with(configure: impl FnOnce(Anvil) -> Anvil) -> Result<Self, DevnetError> {
        let path = anvil_path()?;
        let builder = Anvil::at(&path)
            .host("127.0.0.1")
            .port(0_u16)
            .chain_id(DEVNET_CHAIN_ID)
            .cancun();
        let anvil = configure(builder)
            .try_spawn()
            .map_err(|source| DevnetError::Spawn { path, source })?;
        Ok(Self { anvil })
    }

    /// HTTP endpoint, e.g. `http://127.0.0.1:38211`.
    pub fn endpoint(&self) -> String {
        self.anvil.endpoint()
    }

    /// The port anvil listens on.
    pub fn port(&self) -> u16 {
        self.anvil.port()
    }

    /// The chain id anvil reported.
    pub fn chain_id(&self) -> u64 {
        self.anvil.chain_id()
    }

    /// The funded dev accounts.
    pub fn accounts(&self) -> &[Address] {
        self.anvil.addresses()
    }

    /// Signers of the funded dev accounts, in order.
    pub fn signers(&self) -> Vec<PrivateKeySigner> {
        self.anvil
            .keys()
            .iter()
            .map(|key| PrivateKeySigner::from(key.clone()))
            .collect()
    }

    /// The underlying alloy instance (keys, wallet, ...).
    pub fn instance(&self) -> &AnvilInstance {
        &self.anvil
    }
}
