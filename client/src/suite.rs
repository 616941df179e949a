//! A deployed suite, opened from its addresses file and checked against the chain.

use std::path::{Path, PathBuf};

use alloy::{
    primitives::Address,
    providers::{DynProvider, Provider},
};
use insitu_bindings::deployment::SuiteAddresses;

use crate::{
    addresses::{AddressesError, Deployment},
    rpc::Connection,
};

/// Why a suite could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    /// The addresses file is missing or invalid.
    #[error(transparent)]
    Addresses(#[from] AddressesError),
    /// The addresses file lacks a contract of the suite.
    #[error("{}: {reason}", path.display())]
    Incomplete {
        /// The file.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },
    /// The file is for another chain than the endpoint's.
    #[error("{} is for chain {file}, but the RPC endpoint serves chain {endpoint}", path.display())]
    WrongChain {
        /// The file.
        path: PathBuf,
        /// Its chain id.
        file: u64,
        /// The endpoint's.
        endpoint: u64,
    },
    /// No code where the file says a contract is (a reset devnet, another network).
    #[error("no contract at {address} ({name}) on chain {chain_id}: {} does not describe this chain", path.display())]
    NoCode {
        /// The file.
        path: PathBuf,
        /// The contract's name.
        name: &'static str,
        /// Its address.
        address: Address,
        /// The chain.
        chain_id: u64,
    },
    /// The node could not be read.
    #[error("RPC error: {0}")]
    Rpc(#[from] alloy::transports::TransportError),
}

/// Where the addresses file of chain `chain_id` is by default: `deployments/<chain id>.json`.
pub fn default_addresses_path(chain_id: u64) -> PathBuf {
    PathBuf::from("deployments").join(format!("{chain_id}.json"))
}

/// A deployed suite on a connected chain.
#[derive(Debug, Clone)]
pub struct Suite {
    /// The connection.
    pub connection: Connection,
    /// The addresses file's content.
    pub deployment: Deployment,
    /// The contracts.
    pub addresses: SuiteAddresses,
}

impl Suite {
    /// Opens the addresses file at `path`, refusing one for another chain, one that lacks a
    /// contract of the suite, and one whose agreement store has no code on the chain.
    ///
    /// # Errors
    ///
    /// See [`SuiteError`].
    pub async fn open(connection: Connection, path: &Path) -> Result<Self, SuiteError> {
        let deployment = Deployment::read(path)?;
        if deployment.chain_id != connection.chain_id {
            return Err(SuiteError::WrongChain {
                path: path.to_path_buf(),
                file: deployment.chain_id,
                endpoint: connection.chain_id,
            });
        }
        let addresses = deployment.suite().map_err(|error| SuiteError::Incomplete {
            path: path.to_path_buf(),
            reason: error.to_string(),
        })?;
        for (name, address) in [
            ("AgreementStore", addresses.agreement_store),
            ("PaymentCondition", addresses.payment),
            ("AssetRegistry", addresses.asset_registry),
        ] {
            if connection.provider.get_code_at(address).await?.is_empty() {
                return Err(SuiteError::NoCode {
                    path: path.to_path_buf(),
                    name,
                    address,
                    chain_id: connection.chain_id,
                });
            }
        }
        Ok(Self {
            connection,
            deployment,
            addresses,
        })
    }

    /// The provider.
    pub fn provider(&self) -> &DynProvider {
        &self.connection.provider
    }

    /// The name of the suite contract at `address`, if it is one.
    pub fn name_of(&self, address: Address) -> Option<&str> {
        self.deployment
            .contracts
            .iter()
            .find(|(_, known)| **known == address)
            .map(|(name, _)| name.as_str())
    }
}
