//! Compute in situ: a consumer's algorithm runs next to the provider's data, and only its result
//! leaves.
//!
//! The API checks a consumer's signed order against the chain and the asset's compute policy and
//! writes a job (queued) in the chain's store; the [`runner`] takes queued jobs in turn, stages
//! their inputs, runs them through a [`ComputeBackend`] and records each phase; the result is
//! stored next to the keeper's data with a metadata document recording its provenance. Nothing
//! here sends a transaction.
//!
//! A backend runs one prepared job at a time per [`RunId`] (submit, status, stop, logs,
//! collect): the [`local`] one in the machine's sandbox (`insitu-sandbox`), the [`kubernetes`]
//! one as a Job per run on a cluster. A [`federated`] job is a Flower SuperNode run by the local
//! backend with one egress to the consumer's aggregator.

pub mod federated;
pub mod kubernetes;
pub mod local;
pub mod runner;

use std::{path::PathBuf, sync::Arc};

use alloy::primitives::{B256, hex};
use futures::future::BoxFuture;
pub use insitu_sandbox::{Egress, Ending, Limits, Mount, Outcome};

use crate::config::ComputeConfig;

/// One run of one job: its chain, its agreement and its run number (a run a restart interrupted
/// is run again under the next number).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RunId {
    /// The chain of the agreement.
    pub chain_id: u64,
    /// The compute agreement.
    pub agreement: B256,
    /// 1 for the first run.
    pub run: u32,
}

impl RunId {
    /// A name for the run, usable as a file or group name.
    pub fn name(&self) -> String {
        format!(
            "job-{}-{}-{}",
            self.chain_id,
            hex::encode(&self.agreement[..12]),
            self.run
        )
    }
}

/// A job ready to run: its workspace holds `input/` (the asset's files), `algorithm/` (the
/// algorithm as `main`, its parameters as `params.json`) and an empty `output/`.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Which run.
    pub id: RunId,
    /// The runtime it runs in, by the name the configuration gives it.
    pub runtime: String,
    /// The workspace.
    pub workspace: PathBuf,
    /// The program and its arguments inside the sandbox (the runtime's command, then the
    /// algorithm's path).
    pub command: Vec<String>,
    /// Variables for the job.
    pub env: Vec<(String, String)>,
    /// What it may use.
    pub limits: Limits,
    /// Read-only mounts besides the inputs and the algorithm (a federated job's environment,
    /// package and key).
    pub mounts: Vec<Mount>,
    /// Its one way out, for a federated job (others have no network).
    pub egress: Option<Egress>,
}

impl Prepared {
    /// The staged inputs.
    pub fn input(&self) -> PathBuf {
        self.workspace.join("input")
    }

    /// The algorithm and its parameters.
    pub fn algorithm(&self) -> PathBuf {
        self.workspace.join("algorithm")
    }

    /// Where the result is left.
    pub fn output(&self) -> PathBuf {
        self.workspace.join("output")
    }

    /// The job's log.
    pub fn log(&self) -> PathBuf {
        self.workspace.join("job.log")
    }
}

/// Where a run stands, as its backend knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunState {
    /// It runs.
    Running,
    /// It ended.
    Ended(Outcome),
    /// The backend does not know it (never submitted, already collected, or lost with an
    /// earlier keeper process).
    Unknown,
}

impl RunState {
    /// Where a run stands as its backend follows it: unknown (`None`), or running until its
    /// outcome is sent.
    pub fn of(outcome: Option<&tokio::sync::watch::Receiver<Option<Outcome>>>) -> Self {
        match outcome.map(|outcome| outcome.borrow().clone()) {
            None => Self::Unknown,
            Some(None) => Self::Running,
            Some(Some(outcome)) => Self::Ended(outcome),
        }
    }
}

/// Why a backend could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The run could not start.
    #[error("the job could not start: {0}")]
    Start(String),
    /// No such run.
    #[error("no run {0}")]
    Unknown(String),
    /// Reading the run's files failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The cluster running the job refused or failed a request.
    #[error("the cluster: {0}")]
    Cluster(String),
}

/// Runs prepared jobs somewhere isolated.
pub trait ComputeBackend: Send + Sync + std::fmt::Debug {
    /// A short name for logs and metrics (`local`, `kubernetes`).
    fn name(&self) -> &'static str;

    /// Time a run may take past its wall time before the runner's watchdog stops it: what the
    /// backend needs beyond running the program (a cluster's collector step, say).
    fn overhead(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }

    /// Starts `job`; returns once it runs (or could not start).
    fn submit(&self, job: Prepared) -> BoxFuture<'_, Result<(), BackendError>>;

    /// Where run `id` stands.
    fn status(&self, id: &RunId) -> BoxFuture<'_, RunState>;

    /// Asks run `id` to stop (SIGTERM, a grace, SIGKILL); it then ends as stopped.
    fn stop(&self, id: &RunId) -> BoxFuture<'_, ()>;

    /// The logs run `id` has written so far (at most its limit).
    fn logs(&self, id: &RunId) -> BoxFuture<'_, Result<Vec<u8>, BackendError>>;

    /// Collects an ended run: its output is brought into its workspace's `output/` folder (the
    /// local backend writes there already; a remote one copies it back), and the run is
    /// forgotten.
    fn collect(&self, id: &RunId) -> BoxFuture<'_, Result<(), BackendError>>;
}

/// What compute needs at run time, shared by every chain's runner and the API.
#[derive(Debug, Clone)]
pub struct ComputeContext {
    /// The `[compute]` settings.
    pub config: ComputeConfig,
    /// Where jobs run.
    pub backend: Arc<dyn ComputeBackend>,
    /// Jobs running at once, across chains.
    pub slots: Arc<tokio::sync::Semaphore>,
    /// The account (user id, group id) jobs run as on the host, when the keeper switches to
    /// one: staged files are shared with its group.
    pub job_account: Option<(u32, u32)>,
}

impl ComputeContext {
    /// Where algorithm files are kept, by SHA-256.
    pub fn algorithms(&self) -> PathBuf {
        self.config.work_root.join("algorithms")
    }

    /// The workspace of run `id` of chain `chain_id`.
    pub fn workspace(&self, chain_id: u64, id: &RunId) -> PathBuf {
        self.config
            .work_root
            .join("jobs")
            .join(chain_id.to_string())
            .join(id.name())
    }
}

/// The limits of a compute policy, as the sandbox takes them.
pub fn sandbox_limits(limits: &insitu_client::metadata::ComputeLimits) -> Limits {
    Limits {
        wall_secs: limits.wall_secs,
        memory_mb: limits.memory_mb,
        cpu_percent: limits.cpu_percent,
        pids: limits.pids,
        output_mb: limits.output_mb,
        tmp_mb: limits.tmp_mb,
        log_kb: limits.log_kb,
    }
}
