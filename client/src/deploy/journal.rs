//! The journal of a deployment: one JSON file, rewritten atomically after every change, that records
//! each step's transaction before it is broadcast and again once it has landed. A deployment that
//! stops (killed, a time out, a node that went away) resumes from it: landed steps are not sent
//! again, and a step whose transaction was signed but may not have been broadcast is looked up by
//! its hash and, if unknown, broadcast again exactly as signed.

use std::path::{Path, PathBuf};

use alloy::primitives::{Address, B256, Bytes, keccak256};
use insitu_bindings::deployment::PlannedTx;
use serde::{Deserialize, Serialize};

use super::DeployError;

/// Format version of the journal file.
pub const JOURNAL_VERSION: u32 = 1;

/// Where a step stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum StepRecord {
    /// Signed (and perhaps broadcast), not known to have landed.
    Sent {
        /// Nonce used.
        nonce: u64,
        /// Transaction hash.
        hash: B256,
        /// The signed transaction, to broadcast it again.
        raw: Bytes,
    },
    /// Mined successfully with the confirmations asked for.
    Landed {
        /// Nonce used.
        nonce: u64,
        /// Transaction hash.
        hash: B256,
        /// Block that included it.
        block: u64,
    },
    /// Not needed (e.g. a template someone else proposed first).
    Skipped {
        /// Why.
        reason: String,
    },
}

/// The journal's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalFile {
    /// [`JOURNAL_VERSION`].
    pub version: u32,
    /// The chain.
    pub chain_id: u64,
    /// The deployer.
    pub deployer: Address,
    /// The deployer's nonce when the deployment started (the plan's addresses follow from it).
    pub first_nonce: u64,
    /// Hash of every step's kind and input: equal only for the same options and contracts.
    pub plan_digest: B256,
    /// One record per step started, in plan order, by label.
    pub steps: Vec<(String, StepRecord)>,
}

/// A journal on disk (or only in memory when no path was given).
#[derive(Debug)]
pub struct Journal {
    path: Option<PathBuf>,
    /// The content.
    pub file: JournalFile,
}

/// The digest of a list of steps (see [`JournalFile::plan_digest`]).
pub fn plan_digest(steps: &[PlannedTx]) -> B256 {
    let mut bytes = Vec::new();
    for step in steps {
        match step.kind {
            alloy::primitives::TxKind::Create => bytes.push(0),
            alloy::primitives::TxKind::Call(to) => {
                bytes.push(1);
                bytes.extend_from_slice(to.as_slice());
            }
        }
        bytes.extend_from_slice(keccak256(&step.input).as_slice());
    }
    keccak256(bytes)
}

impl Journal {
    /// Reads the journal at `path`, if the file exists.
    ///
    /// # Errors
    ///
    /// [`DeployError::Journal`] when it cannot be read or parsed.
    pub fn open(path: &Path) -> Result<Option<Self>, DeployError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(journal_error(path, error)),
        };
        let file: JournalFile =
            serde_json::from_str(&text).map_err(|error| journal_error(path, error))?;
        if file.version != JOURNAL_VERSION {
            return Err(journal_error(
                path,
                format!("unsupported version {}", file.version),
            ));
        }
        Ok(Some(Self {
            path: Some(path.to_path_buf()),
            file,
        }))
    }

    /// A new journal, written to `path` at once when given.
    ///
    /// # Errors
    ///
    /// [`DeployError::Journal`] when it cannot be written.
    pub fn create(path: Option<&Path>, file: JournalFile) -> Result<Self, DeployError> {
        let journal = Self {
            path: path.map(Path::to_path_buf),
            file,
        };
        journal.save()?;
        Ok(journal)
    }

    /// The file, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The record of step `index`, if it was started.
    pub fn step(&self, index: usize) -> Option<&StepRecord> {
        self.file.steps.get(index).map(|(_, record)| record)
    }

    /// Records `record` for step `index` (labelled `label`) and saves.
    ///
    /// # Errors
    ///
    /// [`DeployError::Journal`] when it cannot be written.
    pub fn record(
        &mut self,
        index: usize,
        label: &str,
        record: StepRecord,
    ) -> Result<(), DeployError> {
        let entry = (label.to_owned(), record);
        match index.cmp(&self.file.steps.len()) {
            std::cmp::Ordering::Less => self.file.steps[index] = entry,
            std::cmp::Ordering::Equal => self.file.steps.push(entry),
            std::cmp::Ordering::Greater => unreachable!("steps are recorded in order"),
        }
        self.save()
    }

    fn save(&self) -> Result<(), DeployError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let dir = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let text = serde_json::to_string_pretty(&self.file).map_err(|e| journal_error(path, e))?;
        let mut temp = tempfile::NamedTempFile::new_in(&dir).map_err(|e| journal_error(path, e))?;
        std::io::Write::write_all(&mut temp, text.as_bytes())
            .map_err(|e| journal_error(path, e))?;
        temp.as_file()
            .sync_all()
            .map_err(|e| journal_error(path, e))?;
        temp.persist(path)
            .map_err(|e| journal_error(path, e.error))?;
        Ok(())
    }

    /// Deletes the file (after the deployment's addresses file was written).
    ///
    /// # Errors
    ///
    /// [`DeployError::Journal`] when it exists and cannot be removed.
    pub fn remove(self) -> Result<(), DeployError> {
        match &self.path {
            Some(path) => match std::fs::remove_file(path) {
                Ok(()) => Ok(()),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(error) => Err(journal_error(path, error)),
            },
            None => Ok(()),
        }
    }
}

fn journal_error(path: &Path, error: impl std::fmt::Display) -> DeployError {
    DeployError::Journal {
        path: path.to_path_buf(),
        reason: error.to_string(),
    }
}

/// The journal path that goes with an addresses file: `deployments/1.json` ->
/// `deployments/1.journal.json`.
pub fn journal_path(addresses: &Path) -> PathBuf {
    let stem = addresses
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_else(|| "deployment".to_owned());
    addresses.with_file_name(format!("{stem}.journal.json"))
}
