//! Deployment address files.
//!
//! A deployment writes one JSON file naming the chain, the block it was made at and the address
//! of each contract (by default `deployments/<chain id>.json`); the keeper and the demo read it
//! back:
//!
//! ```json
//! {
//!   "chainId": 31337,
//!   "block": 12,
//!   "contracts": {
//!     "AgreementStore": "0x5FbDB2315678afecb367f032d93F642f64180aa3"
//!   }
//! }
//! ```

use std::{
    collections::BTreeMap,
    fs, io,
    path::{Path, PathBuf},
};

use alloy::primitives::Address;
use serde::{Deserialize, Serialize};

/// Where each contract of one deployment lives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Deployment {
    /// Chain the contracts were deployed to.
    pub chain_id: u64,
    /// Block number of the last deployment transaction; watchers start from here.
    pub block: u64,
    /// Contract name (as in the bindings) to address.
    pub contracts: BTreeMap<String, Address>,
}

/// Why an addresses file could not be read, written or used.
#[derive(Debug, thiserror::Error)]
pub enum AddressesError {
    /// The file could not be read.
    #[error("cannot read the addresses file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The file could not be written.
    #[error("cannot write the addresses file {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The file is not a valid addresses file (JSON syntax, missing or unknown fields, bad
    /// address).
    #[error("malformed addresses file {}: {source}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The parse error, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// The file parses but its content is not usable.
    #[error("invalid addresses file {}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A contract is not part of the deployment.
    #[error("contract `{name}` is not in the deployment (it has: {known})")]
    UnknownContract {
        /// The name asked for.
        name: String,
        /// The names it has, comma separated.
        known: String,
    },
}

impl Deployment {
    /// An empty deployment on `chain_id`, at `block`.
    pub fn new(chain_id: u64, block: u64) -> Self {
        Self {
            chain_id,
            block,
            contracts: BTreeMap::new(),
        }
    }

    /// Records the address of `name`, replacing any previous one.
    pub fn insert(&mut self, name: impl Into<String>, address: Address) -> &mut Self {
        self.contracts.insert(name.into(), address);
        self
    }

    /// The address of `name`.
    pub fn address(&self, name: &str) -> Result<Address, AddressesError> {
        self.contracts
            .get(name)
            .copied()
            .ok_or_else(|| AddressesError::UnknownContract {
                name: name.to_owned(),
                known: self
                    .contracts
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Problems that make the deployment unusable: chain id zero, an empty contract name or a
    /// zero address.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.chain_id == 0 {
            problems.push("chainId must not be 0".to_owned());
        }
        for (name, address) in &self.contracts {
            if name.trim().is_empty() {
                problems.push("a contract name is empty".to_owned());
            }
            if address.is_zero() {
                problems.push(format!("`{name}` has the zero address"));
            }
        }
        problems
    }

    /// Parses a deployment from JSON text; `path` is only used in error messages.
    pub fn from_json(text: &str, path: &Path) -> Result<Self, AddressesError> {
        let deployment: Self =
            serde_json::from_str(text).map_err(|source| AddressesError::Malformed {
                path: path.to_owned(),
                source,
            })?;
        let problems = deployment.problems();
        if problems.is_empty() {
            Ok(deployment)
        } else {
            Err(AddressesError::Invalid {
                path: path.to_owned(),
                reason: problems.join("; "),
            })
        }
    }

    /// Pretty JSON, with a trailing newline.
    pub fn to_json(&self) -> String {
        // Serializing plain integers, strings and addresses into a String cannot fail.
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// The suite's addresses, when the deployment names every contract of the suite.
    pub fn suite(&self) -> Result<crate::deployment::SuiteAddresses, AddressesError> {
        crate::deployment::SuiteAddresses::from_names(&self.contracts).map_err(|name| {
            AddressesError::UnknownContract {
                known: self
                    .contracts
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
                name,
            }
        })
    }

    /// Reads and validates an addresses file.
    pub fn read(path: impl AsRef<Path>) -> Result<Self, AddressesError> {
        let path = path.as_ref();
        let text = fs::read_to_string(path).map_err(|source| AddressesError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_json(&text, path)
    }

    /// Writes the file atomically (a temporary file renamed over it), creating parent folders.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<(), AddressesError> {
        let path = path.as_ref();
        let problems = self.problems();
        if !problems.is_empty() {
            return Err(AddressesError::Invalid {
                path: path.to_owned(),
                reason: problems.join("; "),
            });
        }
        let write_err = |source| AddressesError::Write {
            path: path.to_owned(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(write_err)?;
        }
        let mut temporary = path.as_os_str().to_owned();
        temporary.push(".tmp");
        let temporary = PathBuf::from(temporary);
        fs::write(&temporary, self.to_json()).map_err(write_err)?;
        fs::rename(&temporary, path).map_err(write_err)
    }
}
