//! The compute runner of one chain: it takes the jobs the API queued in the chain's store and
//! carries each through its phases, writing every phase to the store before its work begins.
//!
//! ```text
//! queued ──► configuring ──► running ──► publishing ──► settling ──► done
//!   │             │             │             │
//!   └─────────────┴─────────────┴─────────────┴──► failed | stopped
//! ```
//!
//! - **configuring**: the asset's files are read from the provider's storage into the run's
//!   workspace, each checked against the SHA-256 of the asset's document, with the algorithm and
//!   its parameters; only the jobs' account may read them.
//! - **running**: the backend runs the job; a stop asked through the API is passed on; a
//!   watchdog stops a run that outlives its wall time by more than a margin.
//! - **publishing**: the regular files at the top of the output folder are stored beneath the
//!   keeper's data folder, with a metadata document (their sealed locations and the job's
//!   provenance), and the job moves to settling with its settlement intended in the same store
//!   transaction: the executor registers the result as the consumer's asset, records the
//!   input's use, then fulfils the compute condition and releases the payment in one call.
//! - **settling**: done once the settlement is confirmed; failed if it fails (the consumer is
//!   then refunded after the service's time out).
//!
//! Each phase has a watchdog. At start, jobs a killed keeper left configuring or running are
//! queued again (a new run) until they have had `max_runs`, then failed; jobs left publishing are
//! published again (publishing is idempotent). The staged inputs are removed as soon as the run
//! ends, whatever its end; the log is kept.

use std::{
    collections::BTreeMap,
    io::Write,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use alloy::{
    primitives::{B256, hex},
    signers::local::PrivateKeySigner,
};
use futures::StreamExt;
use insitu_client::metadata::{self, Location, MetadataDocument, Provenance, ServiceKind};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, watch};

use super::{ComputeContext, Ending, Prepared, RunId, RunState, federated, sandbox_limits};
use crate::{
    executor::now,
    storage::Storage,
    store::{ActionState, Job, JobPhase, Store, StoreError},
};

/// Longest the inputs of one run may take to stage.
pub const CONFIGURE_BUDGET: Duration = Duration::from_secs(3600);
/// Longest a result may take to store and describe.
pub const PUBLISH_BUDGET: Duration = Duration::from_secs(600);
/// How long past its wall time (and grace) a run may go before the watchdog stops it.
pub const RUN_MARGIN: Duration = Duration::from_secs(60);
/// Most result files kept of one job.
pub const MAX_RESULT_FILES: usize = 100;

pub use insitu_client::compute::result_did;

/// A stored result, as the job records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredResult {
    /// The id the result gets on chain.
    pub did: B256,
    /// The checksum of its metadata document.
    pub checksum: B256,
    /// Where the document is served.
    pub url: String,
    /// Its files.
    pub files: Vec<ResultFile>,
    /// Entries of the output folder left out (not regular files, bad names, past the count).
    pub skipped: Vec<String>,
    /// Unix time the files are deleted (the policy's retention after publishing).
    pub expires_at: u64,
    /// The assets it was derived from: the input, then the algorithm's asset when there is one.
    #[serde(default)]
    pub sources: Vec<B256>,
}

impl Runner {
    /// The folder of the result of agreement `agreement` of chain `chain_id`.
    pub fn result_folder(data_root: &Path, chain_id: u64, agreement: B256) -> PathBuf {
        data_root
            .join("results")
            .join(chain_id.to_string())
            .join(agreement.to_string())
    }
}

/// One file of a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultFile {
    /// Its name.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, lower-case hex.
    pub sha256: String,
}

/// Why a phase failed.
#[derive(Debug, thiserror::Error)]
enum PhaseError {
    /// The store failed (the phase is retried later, the job left where it was).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The job cannot go on, for this reason (it fails).
    #[error("{0}")]
    Job(String),
}

impl From<std::io::Error> for PhaseError {
    fn from(error: std::io::Error) -> Self {
        Self::Job(error.to_string())
    }
}

/// The jobs a task of this runner is working on (claimed before the task starts, released when
/// it ends, whatever its end), so no job is worked on twice at once.
#[derive(Debug, Clone, Default)]
struct Started(Arc<std::sync::Mutex<std::collections::HashSet<B256>>>);

impl Started {
    fn claim(&self, id: B256) -> bool {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id)
    }

    fn release(&self, id: B256) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&id);
    }
}

/// The compute runner of one chain.
#[derive(Debug, Clone)]
pub struct Runner {
    /// The chain.
    pub chain_id: u64,
    /// The chain's store.
    pub database: PathBuf,
    /// Compute's shared parts.
    pub compute: ComputeContext,
    /// The provider's storage (inputs are read through it).
    pub storage: Arc<Storage>,
    /// The keeper's key: opens sealed locations, seals the results', and is the results' agent.
    pub key: PrivateKeySigner,
    /// The keeper's data folder (results are stored beneath it).
    pub data_root: PathBuf,
    /// The API's address as consumers reach it.
    pub public_url: String,
    /// The keeper's own services (its API, its chains' RPC endpoints): never a federated
    /// job's aggregator.
    pub own_addresses: Vec<std::net::SocketAddr>,
    /// Woken by the API when it queues a job or asks a stop.
    pub wake: Arc<Notify>,
    /// Wakes the chain's executor when a result's settlement is intended.
    pub wake_executor: Arc<Notify>,
    /// Test hook: the process aborts once a job has entered this phase (crash-recovery tests;
    /// see `service::CRASH_ENV`). `None` in production.
    pub crash: Option<JobPhase>,
}

impl Runner {
    /// Where the logs of ended runs are kept.
    pub fn logs_folder(compute: &ComputeContext, chain_id: u64) -> PathBuf {
        compute
            .config
            .work_root
            .join("logs")
            .join(chain_id.to_string())
    }

    /// The kept log of the job of `agreement` (once its run ended).
    pub fn kept_log(compute: &ComputeContext, chain_id: u64, agreement: B256) -> PathBuf {
        Self::logs_folder(compute, chain_id).join(format!("{agreement}.log"))
    }

    /// Runs until `stopped`: recovers what an earlier process left, then starts queued jobs as
    /// slots free up and passes stop requests on.
    pub async fn run(self, mut stopped: watch::Receiver<bool>) {
        let mut store = match Store::open(&self.database) {
            Ok(store) => store,
            Err(error) => {
                tracing::error!(chain = self.chain_id, %error, "compute runner: cannot open the store");
                return;
            }
        };
        if let Err(error) = self.recover(&mut store).await {
            tracing::error!(chain = self.chain_id, %error, "compute runner: recovery failed");
        }
        let started = Started::default();
        loop {
            if let Err(error) = self.tick(&mut store, &started).await {
                tracing::warn!(chain = self.chain_id, %error, "compute runner tick failed; retrying");
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                () = self.wake.notified() => {}
                _ = stopped.changed() => {}
            }
            if *stopped.borrow() {
                return;
            }
        }
    }

    /// Jobs a killed keeper left part way.
    async fn recover(&self, store: &mut Store) -> Result<(), StoreError> {
        let max_runs = self.compute.config.max_runs;
        for phase in [JobPhase::Configuring, JobPhase::Running] {
            for job in store.jobs(phase)? {
                let id = job.agreement_id;
                let run = self.run_id(id, job.runs.max(1));
                self.clean_workspace(&run);
                if job.runs < max_runs && !job.stop_requested {
                    let reason = format!("run {} interrupted by a restart of the keeper", job.runs);
                    tracing::warn!(chain = self.chain_id, agreement = %id, %reason, "job queued again");
                    store.move_job(id, phase, JobPhase::Queued, Some(&reason), now())?;
                } else if job.stop_requested {
                    store.move_job(
                        id,
                        phase,
                        JobPhase::Stopped,
                        Some("stopped on request"),
                        now(),
                    )?;
                } else {
                    let reason =
                        format!("interrupted by restarts of the keeper {} times", job.runs);
                    tracing::warn!(chain = self.chain_id, agreement = %id, %reason, "job failed");
                    store.move_job(id, phase, JobPhase::Failed, Some(&reason), now())?;
                }
            }
        }
        Ok(())
    }

    /// Passes stop requests on and starts the queued jobs that are not started yet.
    async fn tick(&self, store: &mut Store, started: &Started) -> Result<(), StoreError> {
        for job in store.jobs(JobPhase::Queued)? {
            if job.stop_requested {
                store.move_job(
                    job.agreement_id,
                    JobPhase::Queued,
                    JobPhase::Stopped,
                    Some("stopped on request"),
                    now(),
                )?;
                continue;
            }
            if started.claim(job.agreement_id) {
                let (runner, started) = (self.clone(), started.clone());
                tokio::spawn(async move {
                    let id = job.agreement_id;
                    if let Err(error) = runner.drive(job).await {
                        tracing::error!(agreement = %id, %error, "compute job: store failure");
                    }
                    started.release(id);
                });
            }
        }
        // Settling jobs end with their settlement.
        for job in store.jobs(JobPhase::Settling)? {
            let id = job.agreement_id;
            match store
                .action(id)?
                .map(|action| (action.state, action.outcome))
            {
                Some((ActionState::Confirmed | ActionState::Done, _)) => {
                    store.move_job(id, JobPhase::Settling, JobPhase::Done, None, now())?;
                    tracing::info!(chain = self.chain_id, agreement = %id, "job done: result registered, payment released");
                }
                Some((ActionState::Failed | ActionState::Abandoned, outcome)) => {
                    let reason = format!("settlement: {}", outcome.unwrap_or_default());
                    store.move_job(
                        id,
                        JobPhase::Settling,
                        JobPhase::Failed,
                        Some(&reason),
                        now(),
                    )?;
                }
                Some(_) => {}
                None => {
                    // Published without its intent (an older keeper): intend it now.
                    store.intend(id, now())?;
                    self.wake_executor.notify_one();
                }
            }
        }
        // A job failed at its settlement is done after all if the operator's retry settled it.
        for job in store.jobs(JobPhase::Failed)? {
            let id = job.agreement_id;
            let settled = job.result.is_some()
                && store.action(id)?.is_some_and(|action| {
                    matches!(action.state, ActionState::Confirmed | ActionState::Done)
                });
            if settled {
                store.move_job(
                    id,
                    JobPhase::Failed,
                    JobPhase::Done,
                    Some("settled on a retry"),
                    now(),
                )?;
            }
        }
        self.expire_results(store)?;
        // Jobs left publishing by an earlier process (those of this one are in a task already).
        for job in store.jobs(JobPhase::Publishing)? {
            if started.claim(job.agreement_id) {
                let (runner, started) = (self.clone(), started.clone());
                tokio::spawn(async move {
                    let id = job.agreement_id;
                    let run = runner.run_id(id, job.runs.max(1));
                    if let Err(error) = runner.finish_publishing(&job, &run).await {
                        tracing::error!(agreement = %id, %error, "compute job: store failure");
                    }
                    started.release(id);
                });
            }
        }
        Ok(())
    }

    /// Takes one queued job to its end (or to settling).
    async fn drive(&self, job: Job) -> Result<(), StoreError> {
        let id = job.agreement_id;
        let Ok(_slot) = self.compute.slots.clone().acquire_owned().await else {
            return Ok(());
        };
        let mut store = Store::open(&self.database)?;
        let Some(job) = store.job(id)? else {
            return Ok(());
        };
        if job.phase != JobPhase::Queued {
            return Ok(());
        }
        if job.stop_requested {
            store.move_job(
                id,
                JobPhase::Queued,
                JobPhase::Stopped,
                Some("stopped on request"),
                now(),
            )?;
            return Ok(());
        }
        if !store.move_job(id, JobPhase::Queued, JobPhase::Configuring, None, now())? {
            return Ok(());
        }
        store.count_job_run(id)?;
        self.crash_at(JobPhase::Configuring);
        let run = self.run_id(id, job.runs + 1);
        tracing::info!(chain = self.chain_id, agreement = %id, run = run.run, "job configuring");
        let prepared = match tokio::time::timeout(
            CONFIGURE_BUDGET,
            self.prepare(&mut store, &job, &run),
        )
        .await
        {
            Ok(Ok(prepared)) => prepared,
            Ok(Err(PhaseError::Store(error))) => return Err(error),
            Ok(Err(PhaseError::Job(reason))) => {
                return self.end(
                    &mut store,
                    &job,
                    &run,
                    JobPhase::Configuring,
                    JobPhase::Failed,
                    &format!("configuring: {reason}"),
                );
            }
            Err(_) => {
                return self.end(
                    &mut store,
                    &job,
                    &run,
                    JobPhase::Configuring,
                    JobPhase::Failed,
                    "watchdog: configuring took too long",
                );
            }
        };
        if store.job(id)?.is_some_and(|job| job.stop_requested) {
            return self.end(
                &mut store,
                &job,
                &run,
                JobPhase::Configuring,
                JobPhase::Stopped,
                "stopped on request",
            );
        }
        if !store.move_job(id, JobPhase::Configuring, JobPhase::Running, None, now())? {
            self.clean_workspace(&run);
            return Ok(());
        }
        let budget = Duration::from_secs(
            prepared
                .limits
                .wall_secs
                .saturating_add(self.compute.config.grace_secs),
        )
        .saturating_add(RUN_MARGIN)
        .saturating_add(self.compute.backend.overhead());
        if let Err(error) = self.compute.backend.submit(prepared).await {
            return self.end(
                &mut store,
                &job,
                &run,
                JobPhase::Running,
                JobPhase::Failed,
                &error.to_string(),
            );
        }
        tracing::info!(chain = self.chain_id, agreement = %id, run = run.run, "job running");
        let (outcome, overdue) = self.follow(&mut store, &run, budget).await?;
        if let Err(error) = self.compute.backend.collect(&run).await {
            tracing::warn!(agreement = %id, %error, "collecting the run's output failed");
        }
        store.record_job_outcome(id, &serde_json::to_string(&outcome).unwrap_or_default())?;
        self.keep_log(&run);
        // The staged copy of the provider's data goes as soon as the run is over.
        let input = self.workspace(&run).join("input");
        if let Err(error) = std::fs::remove_dir_all(&input) {
            tracing::warn!(agreement = %id, %error, "cannot remove a job's staged inputs");
        }
        tracing::info!(chain = self.chain_id, agreement = %id, ending = ?outcome.ending, "job ended");
        match outcome.ending {
            Ending::Succeeded => {
                if !store.move_job(id, JobPhase::Running, JobPhase::Publishing, None, now())? {
                    self.clean_workspace(&run);
                    return Ok(());
                }
                self.crash_at(JobPhase::Publishing);
                let job = store.job(id)?.unwrap_or(job);
                self.finish_publishing(&job, &run).await
            }
            Ending::Stopped if overdue => self.end(
                &mut store,
                &job,
                &run,
                JobPhase::Running,
                JobPhase::Failed,
                "watchdog: the run outlived its wall time",
            ),
            Ending::Stopped => self.end(
                &mut store,
                &job,
                &run,
                JobPhase::Running,
                JobPhase::Stopped,
                "stopped on request",
            ),
            other => {
                let reason = describe(other, &outcome);
                self.end(
                    &mut store,
                    &job,
                    &run,
                    JobPhase::Running,
                    JobPhase::Failed,
                    &reason,
                )
            }
        }
    }

    /// Waits for run `run` to end, passing a stop request on, and stopping it past `budget`;
    /// tells whether the watchdog stopped it.
    async fn follow(
        &self,
        store: &mut Store,
        run: &RunId,
        budget: Duration,
    ) -> Result<(super::Outcome, bool), StoreError> {
        let deadline = tokio::time::Instant::now() + budget;
        let (mut stop_sent, mut watchdog) = (false, false);
        loop {
            match self.compute.backend.status(run).await {
                RunState::Ended(outcome) => return Ok((outcome, watchdog)),
                RunState::Unknown => {
                    let lost = super::Outcome {
                        ending: Ending::SandboxFailed,
                        exit_code: None,
                        signal: None,
                        wall_ms: 0,
                        peak_memory_bytes: None,
                        output_bytes: 0,
                        log_bytes: 0,
                        log_truncated: false,
                        egress: None,
                    };
                    return Ok((lost, watchdog));
                }
                RunState::Running => {}
            }
            let asked = store
                .job(run.agreement)?
                .is_some_and(|job| job.stop_requested);
            let overdue = tokio::time::Instant::now() >= deadline;
            if (asked || overdue) && !stop_sent {
                watchdog = overdue && !asked;
                if overdue {
                    tracing::warn!(agreement = %run.agreement, "watchdog: the run outlived its wall time; stopping it");
                }
                self.compute.backend.stop(run).await;
                stop_sent = true;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Ends job `job` in `to` from `from`, with `reason`, and removes its workspace.
    fn end(
        &self,
        store: &mut Store,
        job: &Job,
        run: &RunId,
        from: JobPhase,
        to: JobPhase,
        reason: &str,
    ) -> Result<(), StoreError> {
        tracing::info!(chain = self.chain_id, agreement = %job.agreement_id, phase = to.as_str(), reason, "job ended");
        store.move_job(job.agreement_id, from, to, Some(reason), now())?;
        self.clean_workspace(run);
        Ok(())
    }

    /// Publishes the result of `run` and moves the job to settling, or fails it.
    async fn finish_publishing(&self, job: &Job, run: &RunId) -> Result<(), StoreError> {
        let mut store = Store::open(&self.database)?;
        let published =
            tokio::time::timeout(PUBLISH_BUDGET, self.publish(&mut store, job, run)).await;
        let result = match published {
            Ok(Ok(result)) => result,
            Ok(Err(PhaseError::Store(error))) => return Err(error),
            Ok(Err(PhaseError::Job(reason))) => {
                self.drop_result(job.agreement_id);
                return self.end(
                    &mut store,
                    job,
                    run,
                    JobPhase::Publishing,
                    JobPhase::Failed,
                    &format!("publishing: {reason}"),
                );
            }
            Err(_) => {
                return self.end(
                    &mut store,
                    job,
                    run,
                    JobPhase::Publishing,
                    JobPhase::Failed,
                    "watchdog: publishing took too long",
                );
            }
        };
        let json = serde_json::to_string(&result).unwrap_or_default();
        store.record_job_result(job.agreement_id, &json, now())?;
        self.wake_executor.notify_one();
        tracing::info!(chain = self.chain_id, agreement = %job.agreement_id, result = %result.did, "job result stored; settling");
        self.clean_workspace(run);
        Ok(())
    }

    /// Run `run` of the job of `agreement` on this chain.
    fn run_id(&self, agreement: B256, run: u32) -> RunId {
        RunId {
            chain_id: self.chain_id,
            agreement,
            run,
        }
    }

    /// Aborts the process, as `kill -9` would, when the test hook names `phase`.
    fn crash_at(&self, phase: JobPhase) {
        if self.crash == Some(phase) {
            tracing::error!(phase = phase.as_str(), "crash point reached: aborting");
            std::process::abort();
        }
    }

    fn workspace(&self, run: &RunId) -> PathBuf {
        self.compute.workspace(self.chain_id, run)
    }

    fn clean_workspace(&self, run: &RunId) {
        let workspace = self.workspace(run);
        if workspace.exists()
            && let Err(error) = std::fs::remove_dir_all(&workspace)
        {
            tracing::warn!(workspace = %workspace.display(), %error, "cannot remove a job's workspace");
        }
    }

    /// Moves the run's log where the API finds it once the run is over.
    fn keep_log(&self, run: &RunId) {
        let kept = Self::kept_log(&self.compute, self.chain_id, run.agreement);
        let moved = kept
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::copy(self.workspace(run).join("job.log"), &kept).map(drop));
        if let Err(error) = moved {
            tracing::warn!(agreement = %run.agreement, %error, "cannot keep a job's log");
        }
    }

    /// Folders the jobs' account must be able to go through, but not list.
    fn open_path_to(&self, workspace: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(workspace)?;
        if self.compute.job_account.is_some() {
            let root = &self.compute.config.work_root;
            let mut folder = workspace.parent();
            while let Some(current) = folder {
                std::fs::set_permissions(current, std::fs::Permissions::from_mode(0o711))?;
                if current == root.as_path() {
                    break;
                }
                folder = current.parent();
            }
        }
        Ok(())
    }

    /// Gives `path` to the jobs' group, readable by it only.
    fn share(&self, path: &Path) -> std::io::Result<()> {
        let gid = self.compute.job_account.map(|(_, gid)| gid);
        std::os::unix::fs::chown(path, None, gid)?;
        let mode = if path.is_dir() { 0o750 } else { 0o640 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    }

    /// Stages the run's workspace: the asset's files, checked; the algorithm; its parameters.
    async fn prepare(
        &self,
        store: &mut Store,
        job: &Job,
        run: &RunId,
    ) -> Result<Prepared, PhaseError> {
        let agreement = store
            .agreement(job.agreement_id)?
            .ok_or_else(|| PhaseError::Job("the agreement is not recorded".into()))?;
        let bytes = store.document(agreement.terms.checksum)?.ok_or_else(|| {
            PhaseError::Job("the asset's metadata document is not stored here".into())
        })?;
        let document =
            metadata::parse(&bytes).map_err(|error| PhaseError::Job(error.to_string()))?;
        let policy = document
            .service(ServiceKind::Compute)
            .and_then(|service| service.compute.clone())
            .ok_or_else(|| PhaseError::Job("the asset has no compute service".into()))?;
        let runtime = self.compute.config.runtime(&job.runtime).ok_or_else(|| {
            PhaseError::Job(format!("runtime {} is no longer offered", job.runtime))
        })?;

        let workspace = self.workspace(run);
        if workspace.exists() {
            std::fs::remove_dir_all(&workspace)?;
        }
        self.open_path_to(&workspace)?;
        self.share(&workspace)?;
        for folder in ["input", "algorithm", "output"] {
            std::fs::create_dir(workspace.join(folder))?;
            self.share(&workspace.join(folder))?;
        }
        for file in &document.files {
            self.stage(file, &workspace.join("input").join(&file.name))
                .await?;
        }
        let algorithm = self.compute.algorithms().join(&job.algorithm_sha256);
        let staged = workspace.join("algorithm/main");
        std::fs::copy(&algorithm, &staged)
            .map_err(|error| PhaseError::Job(format!("the algorithm file: {error}")))?;
        self.share(&staged)?;
        if runtime.command.is_empty() {
            // Executed itself: the jobs' group may run it.
            std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o750))?;
        }
        let params = workspace.join("algorithm/params.json");
        std::fs::write(&params, &job.params)?;
        self.share(&params)?;

        let mut env = vec![
            ("INSITU_AGREEMENT".into(), job.agreement_id.to_string()),
            ("INSITU_INPUTS".into(), "/data".into()),
            ("INSITU_OUTPUT".into(), "/output".into()),
            ("INSITU_PARAMS".into(), "/algorithm/params.json".into()),
        ];
        let (command, mounts, egress) = match &runtime.flower {
            None => {
                let mut command = runtime.command.clone();
                command.push("/algorithm/main".into());
                (command, Vec::new(), None)
            }
            Some(flower) => {
                let params: BTreeMap<String, String> = serde_json::from_str(&job.params)
                    .map_err(|error| PhaseError::Job(format!("the parameters: {error}")))?;
                let params = federated::parse_params(&params)
                    .map_err(|error| PhaseError::Job(error.to_string()))?;
                let policy = crate::outbound::Policy::new(flower.aggregators_allow.clone());
                let aggregator = federated::resolve(&params, &policy, &self.own_addresses)
                    .await
                    .map_err(|error| PhaseError::Job(error.to_string()))?;
                let keys = federated::write_keys(&workspace, &params)
                    .map_err(|error| PhaseError::Job(error.to_string()))?;
                self.share(&keys)?;
                for entry in std::fs::read_dir(&keys)?.flatten() {
                    self.share(&entry.path())?;
                }
                env.extend(federated::env(flower));
                (
                    federated::command(flower, &job.algorithm_sha256, params.rounds),
                    federated::mounts(flower, &keys),
                    Some(federated::egress(aggregator)),
                )
            }
        };
        Ok(Prepared {
            id: run.clone(),
            runtime: runtime.name.clone(),
            workspace,
            command,
            env,
            limits: sandbox_limits(&policy.limits),
            mounts,
            egress,
        })
    }

    /// Copies one file of the asset into `target`, checking its SHA-256 on the way.
    async fn stage(&self, file: &metadata::FileEntry, target: &Path) -> Result<(), PhaseError> {
        let location = metadata::open_location(&file.location, &self.key)
            .map_err(|error| PhaseError::Job(format!("{}: {error}", file.name)))?;
        let source = self
            .storage
            .resolve(&location)
            .await
            .map_err(|error| PhaseError::Job(format!("{}: {error}", file.name)))?;
        let stat = source
            .stat()
            .await
            .map_err(|error| PhaseError::Job(format!("{}: {error}", file.name)))?;
        if stat.size != file.content_size {
            return Err(PhaseError::Job(format!(
                "{} has {} bytes, the document says {}",
                file.name, stat.size, file.content_size
            )));
        }
        let mut chunks = source
            .pinned(&stat)
            .read(0, stat.size)
            .await
            .map_err(|error| PhaseError::Job(format!("{}: {error}", file.name)))?;
        let mut out = std::io::BufWriter::new(std::fs::File::create(target)?);
        let mut hasher = Sha256::new();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk?;
            hasher.update(&chunk);
            out.write_all(&chunk)?;
        }
        out.flush()?;
        drop(out);
        if hex::encode(hasher.finalize()) != file.sha256 {
            return Err(PhaseError::Job(format!(
                "{} does not match its SHA-256 in the asset's document",
                file.name
            )));
        }
        self.share(target)?;
        Ok(())
    }

    /// Stores the run's result beneath the data folder and describes it.
    async fn publish(
        &self,
        store: &mut Store,
        job: &Job,
        run: &RunId,
    ) -> Result<StoredResult, PhaseError> {
        let output = self.workspace(run).join("output");
        if !output.is_dir() {
            return Err(PhaseError::Job("the run's output is gone".into()));
        }
        let agreement = store
            .agreement(job.agreement_id)?
            .ok_or_else(|| PhaseError::Job("the agreement is not recorded".into()))?;
        let bytes = store.document(agreement.terms.checksum)?.ok_or_else(|| {
            PhaseError::Job("the asset's metadata document is not stored here".into())
        })?;
        let input = metadata::parse(&bytes).map_err(|error| PhaseError::Job(error.to_string()))?;
        let policy = input
            .service(ServiceKind::Compute)
            .and_then(|service| service.compute.clone())
            .ok_or_else(|| PhaseError::Job("the asset has no compute service".into()))?;

        let folder = Self::result_folder(&self.data_root, self.chain_id, job.agreement_id);
        if folder.exists() {
            std::fs::remove_dir_all(&folder)?;
        }
        std::fs::create_dir_all(&folder)?;
        let mut entries: Vec<(String, PathBuf, bool)> = std::fs::read_dir(&output)?
            .flatten()
            .map(|entry| {
                let regular = entry.file_type().is_ok_and(|kind| kind.is_file());
                (
                    entry.file_name().to_string_lossy().into_owned(),
                    entry.path(),
                    regular,
                )
            })
            .collect();
        entries.sort_by(|one, other| one.0.cmp(&other.0));
        let (mut files, mut skipped) = (Vec::new(), Vec::new());
        // A federated job's result is the provider's signed log of the rounds it served, which
        // the keeper makes from its SuperNode's record, in the run's workspace (where the job
        // cannot write), and nothing the job left.
        let federated = self
            .compute
            .config
            .runtime(&job.runtime)
            .is_some_and(|runtime| runtime.flower.is_some());
        if federated {
            let domain =
                insitu_bindings::requests::domain(self.chain_id, agreement.service_contract);
            let signed = self.workspace(run).join(federated::ROUND_LOG);
            federated::sign_round_log(
                &output.join(federated::RECORD),
                &signed,
                (job.agreement_id, job.did),
                &self.key,
                &domain,
                now(),
            )
            .map_err(|error| PhaseError::Job(format!("the round log: {error}")))?;
            skipped.extend(entries.drain(..).map(|(name, _, _)| name));
            entries.push((federated::ROUND_LOG.to_owned(), signed, true));
        }
        let public_key = metadata::public_key(&self.key);
        let mut documented = Vec::new();
        for (name, path, regular) in entries {
            if !regular || !valid_file_name(&name) || files.len() == MAX_RESULT_FILES {
                skipped.push(name);
                continue;
            }
            let target = folder.join(&name);
            std::fs::copy(&path, &target)?;
            // The job's own mode bits (executable, setuid, ...) stay behind.
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640))?;
            let sha256 = insitu_client::market::sha256_of(&target)?;
            let size = std::fs::metadata(&target)?.len();
            let url = url::Url::from_file_path(std::fs::canonicalize(&target)?)
                .map_err(|()| PhaseError::Job("a result path is not absolute".into()))?;
            let location = metadata::seal_location(&Location::url(url.as_str()), &public_key)
                .map_err(|error| PhaseError::Job(error.to_string()))?;
            documented.push(metadata::FileEntry {
                name: name.clone(),
                content_type: content_type(&name).to_owned(),
                content_size: size,
                sha256: sha256.clone(),
                location,
            });
            files.push(ResultFile { name, size, sha256 });
        }
        if files.is_empty() {
            return Err(PhaseError::Job(
                "the algorithm left no regular file at the top of /output".into(),
            ));
        }
        let did = result_did(job.agreement_id, job.consumer, self.key.address());
        let sources: Vec<B256> = std::iter::once(job.did).chain(job.algorithm_did).collect();
        let document = MetadataDocument {
            context: "https://schema.org".into(),
            kind: "Dataset".into(),
            schema_version: metadata::SCHEMA_VERSION.into(),
            name: format!("Result of compute agreement {}", job.agreement_id),
            description: format!(
                "Computed on asset {} by the algorithm with SHA-256 {}{} in runtime {}, for {}.",
                job.did,
                job.algorithm_sha256,
                job.algorithm_did
                    .map(|did| format!(" (asset {did})"))
                    .unwrap_or_default(),
                job.runtime,
                job.consumer
            ),
            author: job.consumer.to_string(),
            license: input.license.clone(),
            keywords: Vec::new(),
            date_created: None,
            files: documented,
            services: Vec::new(),
            provenance: Some(Provenance {
                was_generated_by: job.agreement_id,
                was_derived_from: sources.clone(),
                algorithm_sha256: job.algorithm_sha256.clone(),
                algorithm: job.algorithm_did,
                runtime: job.runtime.clone(),
                limits: policy.limits,
                agent: self.key.address(),
            }),
            training: None,
        };
        let bytes = serde_json::to_vec_pretty(&document)
            .map_err(|error| PhaseError::Job(error.to_string()))?;
        metadata::parse(&bytes)
            .map_err(|error| PhaseError::Job(format!("the result's document: {error}")))?;
        let checksum = metadata::checksum(&bytes);
        store.put_document(checksum, &bytes, self.key.address(), now())?;
        Ok(StoredResult {
            did,
            checksum,
            url: format!("{}/v1/metadata/{checksum}", self.public_url),
            files,
            skipped,
            expires_at: now() + u64::from(policy.result_retention_days) * 86_400,
            sources,
        })
    }

    /// Deletes what a failed publishing left of agreement `agreement`'s result.
    fn drop_result(&self, agreement: B256) {
        let folder = Self::result_folder(&self.data_root, self.chain_id, agreement);
        if folder.exists()
            && let Err(error) = std::fs::remove_dir_all(&folder)
        {
            tracing::warn!(%agreement, %error, "cannot remove a failed result");
        }
    }

    /// Deletes the files of results past their retention.
    fn expire_results(&self, store: &Store) -> Result<(), StoreError> {
        for job in store.jobs(JobPhase::Done)? {
            let expired = job
                .result
                .as_deref()
                .and_then(|json| serde_json::from_str::<StoredResult>(json).ok())
                .is_some_and(|result| result.expires_at <= now());
            let folder = Self::result_folder(&self.data_root, self.chain_id, job.agreement_id);
            if expired && folder.exists() {
                match std::fs::remove_dir_all(&folder) {
                    Ok(()) => {
                        tracing::info!(agreement = %job.agreement_id, "result past its retention deleted")
                    }
                    Err(error) => {
                        tracing::warn!(agreement = %job.agreement_id, %error, "cannot delete an expired result")
                    }
                }
            }
        }
        Ok(())
    }
}

/// The reason recorded for a run that ended otherwise than succeeded or stopped.
fn describe(ending: Ending, outcome: &super::Outcome) -> String {
    match ending {
        Ending::Failed => match (outcome.exit_code, outcome.signal) {
            (Some(code), _) => format!("the algorithm exited with status {code}"),
            (None, Some(signal)) => format!("the algorithm was killed by signal {signal}"),
            (None, None) => "the algorithm failed".to_owned(),
        },
        Ending::OutOfMemory => "the algorithm ran out of memory (its limit)".to_owned(),
        Ending::TimedOut => "the algorithm ran out of time (its limit)".to_owned(),
        Ending::OutputTooLarge => "the algorithm's output passed its size limit".to_owned(),
        Ending::SandboxFailed => "the sandbox failed to run the algorithm".to_owned(),
        Ending::Succeeded | Ending::Stopped => format!("{ending:?}"),
    }
}

/// Whether `name` can be a file name in a metadata document.
fn valid_file_name(name: &str) -> bool {
    name != "."
        && name != ".."
        && (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'))
}

/// A content type from a file name's extension.
fn content_type(name: &str) -> &'static str {
    match name
        .rsplit_once('.')
        .map(|(_, extension)| extension.to_ascii_lowercase())
    {
        Some(extension) => match extension.as_str() {
            "csv" => "text/csv",
            "json" => "application/json",
            "txt" | "log" => "text/plain",
            "md" => "text/markdown",
            "html" => "text/html",
            "png" => "image/png",
            "svg" => "image/svg+xml",
            "parquet" => "application/vnd.apache.parquet",
            _ => "application/octet-stream",
        },
        None => "application/octet-stream",
    }
}

/// A job's parameters as given: a JSON object of strings.
pub type Params = BTreeMap<String, String>;

#[cfg(test)]
mod tests {
    use alloy::primitives::{Address, keccak256};

    use super::*;

    #[test]
    fn result_ids_match_the_registrys_formula() {
        // keccak256(abi.encode(keccak256("insitu.result"), activity, owner, agent)).
        let (activity, owner, agent) = (
            B256::repeat_byte(1),
            Address::repeat_byte(2),
            Address::repeat_byte(3),
        );
        let mut encoded = Vec::new();
        encoded.extend_from_slice(keccak256("insitu.result").as_slice());
        encoded.extend_from_slice(activity.as_slice());
        encoded.extend_from_slice(&[0; 12]);
        encoded.extend_from_slice(owner.as_slice());
        encoded.extend_from_slice(&[0; 12]);
        encoded.extend_from_slice(agent.as_slice());
        assert_eq!(result_did(activity, owner, agent), keccak256(&encoded));
    }

    #[test]
    fn result_files_need_plain_names_and_get_a_type() {
        assert!(valid_file_name("summary.json"));
        assert!(!valid_file_name("a b"));
        assert!(!valid_file_name(".."));
        assert!(valid_file_name("..."), "dots only are plain characters");
        assert_eq!(content_type("stats.CSV"), "text/csv");
        assert_eq!(content_type("model"), "application/octet-stream");
    }
}
