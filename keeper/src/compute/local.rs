//! The local backend: jobs run on this machine, in the sandbox of `insitu-sandbox` (namespaces,
//! a cgroup per job, rlimits, Landlock, seccomp).

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use futures::{FutureExt, future::BoxFuture};
use insitu_sandbox::{Isolation, JobSpec, Mount, Outcome, Sandbox, SandboxConfig, Stopper};
use tokio::sync::watch;

use super::{BackendError, ComputeBackend, Prepared, RunId, RunState};
use crate::config::ComputeConfig;

/// The cgroup folder of the keeper whose workspaces are in `work_root`: its own, so that a keeper
/// sweeping what it left never touches another keeper's jobs on the same machine.
fn cgroup_folder(work_root: &std::path::Path) -> String {
    let canonical = std::fs::canonicalize(work_root).unwrap_or_else(|_| work_root.to_path_buf());
    let digest = alloy::primitives::keccak256(canonical.as_os_str().as_encoded_bytes());
    format!(
        "insitu-jobs-{}",
        alloy::primitives::hex::encode(&digest[..6])
    )
}

/// The sandbox's settings for the `[compute]` table `config`.
fn sandbox_config(config: &ComputeConfig) -> SandboxConfig {
    SandboxConfig {
        bwrap: config.bwrap.clone(),
        grace: Duration::from_secs(config.grace_secs),
        cgroup_folder: cgroup_folder(&config.work_root),
        ..SandboxConfig::new(config.sandbox_init_path())
    }
}

/// A run in progress or ended, until the runner collects it.
#[derive(Debug)]
struct LocalRun {
    stopper: Stopper,
    outcome: watch::Receiver<Option<Outcome>>,
    log: PathBuf,
}

/// Runs jobs in this machine's sandbox.
#[derive(Debug)]
pub struct LocalBackend {
    sandbox: Arc<Sandbox>,
    runs: Mutex<HashMap<RunId, LocalRun>>,
}

impl LocalBackend {
    /// Probes the machine and sets the sandbox up, killing and removing whatever jobs an earlier
    /// keeper process left behind. Returns the backend and what the probe found.
    ///
    /// # Errors
    ///
    /// Why compute cannot run here, in words (what the probe found missing).
    pub async fn start(config: &ComputeConfig) -> Result<(Self, Isolation), String> {
        let sandbox_config = sandbox_config(config);
        let isolation = insitu_sandbox::probe(&sandbox_config).await;
        let sandbox =
            Sandbox::new(sandbox_config, &isolation).map_err(|error| error.to_string())?;
        let swept = sandbox.sweep().await;
        if swept > 0 {
            tracing::warn!(swept, "killed the jobs an earlier keeper left running");
        }
        Ok((
            Self {
                sandbox: Arc::new(sandbox),
                runs: Mutex::new(HashMap::new()),
            },
            isolation,
        ))
    }

    /// Probes the machine as [`start`](Self::start) does, touching no job: what it found, or
    /// why compute cannot run here.
    ///
    /// # Errors
    ///
    /// What the probe found missing, in words.
    pub async fn check(config: &ComputeConfig) -> Result<Isolation, String> {
        let isolation = insitu_sandbox::probe(&sandbox_config(config)).await;
        isolation.ensure_minimum()?;
        Ok(isolation)
    }

    /// The account jobs run as on the host, if the keeper switches to one.
    pub fn job_account(&self) -> Option<(u32, u32)> {
        self.sandbox.job_account()
    }

    fn runs(&self) -> std::sync::MutexGuard<'_, HashMap<RunId, LocalRun>> {
        self.runs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn start_run(&self, job: Prepared) -> Result<(), BackendError> {
        let mut read_only = vec![
            Mount {
                host: job.input(),
                inside: PathBuf::from("/data"),
            },
            Mount {
                host: job.algorithm(),
                inside: PathBuf::from("/algorithm"),
            },
        ];
        read_only.extend(job.mounts.iter().cloned());
        let spec = JobSpec {
            name: job.id.name(),
            command: job.command.clone(),
            read_only,
            output: job.output(),
            log: job.log(),
            env: job.env.clone(),
            limits: job.limits,
            egress: job.egress,
        };
        let running = self
            .sandbox
            .start(spec)
            .await
            .map_err(|error| BackendError::Start(error.to_string()))?;
        let (sender, outcome) = watch::channel(None);
        self.runs().insert(
            job.id.clone(),
            LocalRun {
                stopper: running.stopper(),
                outcome,
                log: job.log(),
            },
        );
        tokio::spawn(async move {
            let outcome = running.wait().await;
            sender.send_replace(Some(outcome));
        });
        Ok(())
    }
}

impl ComputeBackend for LocalBackend {
    fn name(&self) -> &'static str {
        "local"
    }

    fn submit(&self, job: Prepared) -> BoxFuture<'_, Result<(), BackendError>> {
        self.start_run(job).boxed()
    }

    fn status(&self, id: &RunId) -> BoxFuture<'_, RunState> {
        let state = RunState::of(self.runs().get(id).map(|run| &run.outcome));
        async move { state }.boxed()
    }

    fn stop(&self, id: &RunId) -> BoxFuture<'_, ()> {
        if let Some(run) = self.runs().get(id) {
            run.stopper.stop();
        }
        async {}.boxed()
    }

    fn logs(&self, id: &RunId) -> BoxFuture<'_, Result<Vec<u8>, BackendError>> {
        let log = self.runs().get(id).map(|run| run.log.clone());
        let name = id.name();
        async move {
            let log = log.ok_or(BackendError::Unknown(name))?;
            Ok(tokio::fs::read(log).await?)
        }
        .boxed()
    }

    fn collect(&self, id: &RunId) -> BoxFuture<'_, Result<(), BackendError>> {
        // The sandbox wrote the output into the workspace: nothing to copy.
        let known = self.runs().remove(id).is_some();
        let name = id.name();
        async move {
            if known {
                Ok(())
            } else {
                Err(BackendError::Unknown(name))
            }
        }
        .boxed()
    }
}
