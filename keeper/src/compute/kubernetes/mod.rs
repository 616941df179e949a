//! The Kubernetes backend: each run is a Job on the provider's cluster.
//!
//! A run is made of, in order: a NetworkPolicy denying every connection into and out of its
//! pods, a claim for its output (`output_mb` large, of `output_storage_class`), and the Job
//! running the algorithm, its inputs and algorithm mounted read-only from the workspace claim
//! the keeper shares with its jobs. When that Job completes, a collector Job copies the regular
//! files of the output claim into the workspace's `output/` folder (refusing an output over its
//! limit), where the runner publishes them as it does the local backend's. Each Job is watched
//! until its `Complete` or `Failed` condition (or its deletion); the algorithm's logs are read by
//! the job-name label and kept in the workspace; a stop deletes the Jobs with foreground
//! propagation; collecting deletes every object of the run.
//!
//! At start the keeper checks the cluster ([`preflight`]): its API, the permissions of the
//! keeper's account, the workspace claim, and that a pod under a deny-all NetworkPolicy cannot
//! reach out while one without can. It refuses to start when the cluster cannot isolate jobs.
//! Then it deletes what an earlier keeper process left.

pub mod objects;
pub mod outcome;
pub mod preflight;

#[cfg(test)]
mod tests;

use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures::{FutureExt, StreamExt, future::BoxFuture};
use k8s_openapi::api::{
    batch::v1::Job,
    core::v1::{PersistentVolumeClaim, Pod},
    networking::v1::NetworkPolicy,
};
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, LogParams, PostParams},
    runtime::{WatchStreamExt, watcher::watch_object},
};
use tokio::sync::watch;

use self::{
    objects::{ALGORITHM_CONTAINER, Blueprint, JOB_NAME_LABEL, Placement},
    outcome::{JobState, collect_ending, job_state, run_ending, termination},
};
use super::{BackendError, ComputeBackend, Ending, Outcome, Prepared, RunId, RunState};
use crate::config::{ComputeConfig, KubernetesConfig};

/// How long a run's collector may take, on top of the run's wall time.
pub const COLLECT_BUDGET: Duration = Duration::from_secs(600);

/// Why the backend could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The client could not be configured (kubeconfig, in-cluster account).
    #[error("cannot configure the Kubernetes client: {0}")]
    Client(String),
    /// The cluster failed a start-up check.
    #[error("{0}")]
    Preflight(String),
}

/// Runs jobs as Kubernetes Jobs.
pub struct KubernetesBackend {
    client: Client,
    blueprint: Arc<Blueprint>,
    images: HashMap<String, String>,
    grace_secs: u64,
    runs: Arc<Mutex<HashMap<RunId, KubeRun>>>,
}

impl std::fmt::Debug for KubernetesBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesBackend")
            .field("namespace", &self.blueprint.config.namespace)
            .field("instance", &self.blueprint.instance)
            .field("runs", &self.runs().len())
            .finish_non_exhaustive()
    }
}

/// A run in progress or ended, until the runner collects it.
#[derive(Debug)]
struct KubeRun {
    name: String,
    stop: Arc<AtomicBool>,
    outcome: watch::Receiver<Option<Outcome>>,
    log: PathBuf,
    log_cap: usize,
    follower: tokio::task::JoinHandle<()>,
}

impl KubernetesBackend {
    /// Connects to the cluster `config.kubernetes` names, checks it (see [`preflight`]), and
    /// deletes whatever runs an earlier keeper process left there.
    ///
    /// # Errors
    ///
    /// Why jobs cannot run on this cluster, in words.
    pub async fn start(config: &ComputeConfig) -> Result<Self, StartError> {
        let settings = settings(config)?;
        let client = client_for(settings).await?;
        Self::with_client(client, config).await
    }

    /// [`start`](Self::start) with a given client (the tests' mock API server).
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start).
    pub async fn with_client(client: Client, config: &ComputeConfig) -> Result<Self, StartError> {
        let blueprint = Arc::new(blueprint_for(config)?);
        let report = preflight::check(&client, &blueprint, &config.work_root)
            .await
            .map_err(StartError::Preflight)?;
        tracing::info!(
            server = %report.server_version,
            namespace = %blueprint.config.namespace,
            claim = %blueprint.config.workspace_claim,
            instance = %blueprint.instance,
            "Kubernetes cluster checked: permissions granted, the workspace claim shared, jobs isolated"
        );
        let swept = preflight::sweep(&client, &blueprint).await;
        if swept > 0 {
            tracing::warn!(
                swept,
                "deleted the runs an earlier keeper left on the cluster"
            );
        }
        let images = config
            .runtimes
            .iter()
            .filter_map(|runtime| Some((runtime.name.clone(), runtime.image.clone()?)))
            .collect();
        Ok(Self {
            client,
            blueprint,
            images,
            grace_secs: config.grace_secs,
            runs: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// Checks the cluster as [`start`](Self::start) does, and deletes nothing: for an operator
    /// trying a configuration before the keeper runs with it.
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start).
    pub async fn check(config: &ComputeConfig) -> Result<preflight::Report, StartError> {
        let client = client_for(settings(config)?).await?;
        let blueprint = blueprint_for(config)?;
        preflight::check(&client, &blueprint, &config.work_root)
            .await
            .map_err(StartError::Preflight)
    }

    fn runs(&self) -> std::sync::MutexGuard<'_, HashMap<RunId, KubeRun>> {
        self.runs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn jobs(&self) -> Api<Job> {
        Api::namespaced(self.client.clone(), &self.blueprint.config.namespace)
    }

    /// The objects' name of run `id` (unique per keeper instance and run).
    pub fn object_name(&self, id: &RunId) -> String {
        object_name(&self.blueprint.instance, id)
    }

    async fn start_run(&self, job: Prepared) -> Result<(), BackendError> {
        // The configuration refuses flower runtimes with this backend; a job that needs a
        // network or mounts of its own is refused all the same rather than run without them.
        if job.egress.is_some() || !job.mounts.is_empty() {
            return Err(BackendError::Start(
                "federated jobs run on the local backend only".into(),
            ));
        }
        let image = self.images.get(&job.runtime).ok_or_else(|| {
            BackendError::Start(format!("runtime {} has no image configured", job.runtime))
        })?;
        let preset = self
            .blueprint
            .config
            .preset_for(job.limits.cpu_percent, job.limits.memory_mb)
            .map_err(BackendError::Start)?
            .cloned();
        let group = shared_group(std::fs::metadata(&job.workspace)?.gid())
            .map_err(|error| BackendError::Start(format!("the workspace {error}")))?;
        // The collector writes the result as the jobs' account, through the group.
        std::fs::set_permissions(
            job.output(),
            std::os::unix::fs::PermissionsExt::from_mode(0o770),
        )?;
        let placement = Placement { group, preset };
        let name = self.object_name(&job.id);
        let namespace = &self.blueprint.config.namespace;
        let created = async {
            let policies: Api<NetworkPolicy> = Api::namespaced(self.client.clone(), namespace);
            bounded(policies.create(
                &PostParams::default(),
                &self.blueprint.network_policy(&name),
            ))
            .await?;
            let claims: Api<PersistentVolumeClaim> =
                Api::namespaced(self.client.clone(), namespace);
            bounded(claims.create(
                &PostParams::default(),
                &self.blueprint.output_claim(&name, job.limits.output_mb),
            ))
            .await?;
            bounded(self.jobs().create(
                &PostParams::default(),
                &self.blueprint.run_job(&name, &job, image, &placement),
            ))
            .await?;
            Ok::<_, kube::Error>(())
        }
        .await;
        if let Err(error) = created {
            delete_run_objects(&self.client, &self.blueprint, &name).await;
            return Err(BackendError::Start(format!(
                "the cluster refused the run: {}",
                describe_error(&error)
            )));
        }
        tracing::info!(run = %job.id.name(), job = %name, "Kubernetes job created");
        let (sender, outcome) = watch::channel(None);
        let stop = Arc::new(AtomicBool::new(false));
        let follower = tokio::spawn(
            Follower {
                client: self.client.clone(),
                blueprint: self.blueprint.clone(),
                name: name.clone(),
                job: job.clone(),
                placement,
                stop: stop.clone(),
            }
            .run(sender),
        );
        self.runs().insert(
            job.id.clone(),
            KubeRun {
                name,
                stop,
                outcome,
                log: job.log(),
                log_cap: log_cap(&job),
                follower,
            },
        );
        Ok(())
    }

    async fn stop_run(&self, id: &RunId) {
        let Some((name, stop)) = self
            .runs()
            .get(id)
            .map(|run| (run.name.clone(), run.stop.clone()))
        else {
            return;
        };
        stop.store(true, Ordering::SeqCst);
        tracing::info!(run = %id.name(), job = %name, "stopping the Kubernetes job");
        let params = foreground(u32::try_from(self.grace_secs).unwrap_or(u32::MAX));
        for job in [name.clone(), objects::collector_name(&name)] {
            if let Err(error) = bounded(self.jobs().delete(&job, &params)).await
                && !is_not_found(&error)
            {
                tracing::warn!(job, error = %describe_error(&error), "cannot delete a job to stop it");
            }
        }
    }

    async fn logs_of(&self, id: &RunId) -> Result<Vec<u8>, BackendError> {
        let (name, ended, log, cap) = {
            let runs = self.runs();
            let run = runs
                .get(id)
                .ok_or_else(|| BackendError::Unknown(id.name()))?;
            (
                run.name.clone(),
                run.outcome.borrow().is_some(),
                run.log.clone(),
                run.log_cap,
            )
        };
        if ended {
            return Ok(tokio::fs::read(log).await?);
        }
        let (text, _) = read_logs(&self.client, &self.blueprint, &name, Some(cap))
            .await
            .map_err(|error| BackendError::Cluster(describe_error(&error)))?;
        Ok(text)
    }

    async fn collect_run(&self, id: &RunId) -> Result<(), BackendError> {
        let run = self
            .runs()
            .remove(id)
            .ok_or_else(|| BackendError::Unknown(id.name()))?;
        run.follower.abort();
        let left = delete_run_objects(&self.client, &self.blueprint, &run.name).await;
        if left.is_empty() {
            return Ok(());
        }
        // Tried again in the background for a while; the next start's sweep removes the rest.
        let (client, blueprint, name) = (
            self.client.clone(),
            self.blueprint.clone(),
            run.name.clone(),
        );
        tokio::spawn(async move {
            for _ in 0..CLEANUP_ATTEMPTS {
                tokio::time::sleep(CLEANUP_PAUSE).await;
                if delete_run_objects(&client, &blueprint, &name)
                    .await
                    .is_empty()
                {
                    tracing::info!(job = %name, "the run's objects are deleted at last");
                    return;
                }
            }
            tracing::warn!(job = %name, "the run's objects are left for the next start's sweep");
        });
        Err(BackendError::Cluster(format!(
            "cannot delete {} of run {} yet: the keeper tries again",
            left.join(", "),
            run.name
        )))
    }
}

impl ComputeBackend for KubernetesBackend {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    fn overhead(&self) -> Duration {
        COLLECT_BUDGET
    }

    fn submit(&self, job: Prepared) -> BoxFuture<'_, Result<(), BackendError>> {
        self.start_run(job).boxed()
    }

    fn status(&self, id: &RunId) -> BoxFuture<'_, RunState> {
        let state = RunState::of(self.runs().get(id).map(|run| &run.outcome));
        async move { state }.boxed()
    }

    fn stop(&self, id: &RunId) -> BoxFuture<'_, ()> {
        let id = id.clone();
        async move { self.stop_run(&id).await }.boxed()
    }

    fn logs(&self, id: &RunId) -> BoxFuture<'_, Result<Vec<u8>, BackendError>> {
        let id = id.clone();
        async move { self.logs_of(&id).await }.boxed()
    }

    fn collect(&self, id: &RunId) -> BoxFuture<'_, Result<(), BackendError>> {
        let id = id.clone();
        async move { self.collect_run(&id).await }.boxed()
    }
}

/// Follows one run from its Job's creation to its outcome.
struct Follower {
    client: Client,
    blueprint: Arc<Blueprint>,
    name: String,
    job: Prepared,
    placement: Placement,
    stop: Arc<AtomicBool>,
}

/// What the keeper saw of a run's pod while it ran: a cluster may delete the pod before it
/// reports the Job's end (a deadline), and its logs with it.
#[derive(Debug, Default)]
struct Observed {
    /// The algorithm's container was seen running or ended.
    started: bool,
    /// Why it was last seen waiting.
    waiting: Option<String>,
    /// Its logs, followed while it ran (at most the cap plus one byte).
    log: Vec<u8>,
}

/// Times a run's objects left at its collection are deleted again, and the pause between.
const CLEANUP_ATTEMPTS: u32 = 30;
const CLEANUP_PAUSE: Duration = Duration::from_secs(60);

/// Margin on top of a Job's deadline and grace before the keeper stops waiting for the cluster
/// to report its end.
const REPORT_MARGIN: Duration = Duration::from_secs(120);

impl Follower {
    async fn run(self, sender: watch::Sender<Option<Outcome>>) {
        let outcome = self.follow().await;
        tracing::info!(job = %self.name, ending = ?outcome.ending, "Kubernetes run ended");
        sender.send_replace(Some(outcome));
    }

    fn stop_asked(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn jobs(&self) -> Api<Job> {
        Api::namespaced(self.client.clone(), &self.blueprint.config.namespace)
    }

    async fn follow(&self) -> Outcome {
        let observed = Arc::new(Mutex::new(Observed::default()));
        // Aborted with this task, should the run be collected or the keeper stop first.
        let mut observer = AbortOnDrop(tokio::spawn(observe(
            self.client.clone(),
            self.blueprint.clone(),
            self.name.clone(),
            log_cap(&self.job),
            observed.clone(),
        )));
        let limit = Duration::from_secs(
            self.job
                .limits
                .wall_secs
                .saturating_add(self.blueprint.grace_secs),
        )
        .saturating_add(REPORT_MARGIN);
        let state = wait_for_end(&self.jobs(), &self.name, limit).await;
        // The container has ended: its log stream ends with it.
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut observer.0).await;
        drop(observer);
        let pods = self.pods_of(&self.name).await;
        let mut ended = termination(&pods, ALGORITHM_CONTAINER);
        let seen = std::mem::take(&mut *observed.lock().unwrap_or_else(PoisonError::into_inner));
        ended.started |= seen.started;
        ended.waiting = ended.waiting.or(seen.waiting);
        let (log_bytes, log_truncated) = self.keep_logs(seen.log).await;
        let (mut ending, mut detail) = run_ending(&state, &ended, self.stop_asked());
        if ending == Ending::Succeeded {
            (ending, detail) = self.collect_output().await;
        }
        if !detail.is_empty() {
            tracing::warn!(job = %self.name, %detail, "Kubernetes run did not end by itself");
        }
        let mut output_bytes = 0;
        if ending == Ending::Succeeded {
            output_bytes = folder_size(&self.job.output());
            // The collector checked already; a copy past the limit is refused all the same.
            if output_bytes > self.job.limits.output_mb.saturating_mul(1024 * 1024) {
                ending = Ending::OutputTooLarge;
            }
        }
        Outcome {
            ending,
            exit_code: ended.exit_code,
            signal: ended.signal,
            wall_ms: ended.wall_ms,
            peak_memory_bytes: None,
            output_bytes,
            log_bytes,
            log_truncated,
            egress: None,
        }
    }

    /// Runs the collector and tells how the run ended.
    async fn collect_output(&self) -> (Ending, String) {
        let jobs = self.jobs();
        let collector = objects::collector_name(&self.name);
        if self.stop_asked() {
            return (Ending::Stopped, String::new());
        }
        let created = bounded(
            jobs.create(
                &PostParams::default(),
                &self
                    .blueprint
                    .collector_job(&self.name, &self.job, &self.placement),
            ),
        )
        .await;
        if let Err(error) = created {
            return (
                Ending::SandboxFailed,
                format!(
                    "the cluster refused the collector: {}",
                    describe_error(&error)
                ),
            );
        }
        // A stop that came while the collector was being made did not find it.
        if self.stop_asked() {
            let _ = bounded(jobs.delete(&collector, &foreground(0))).await;
            return (Ending::Stopped, String::new());
        }
        let limit = Duration::from_secs(
            objects::COLLECT_DEADLINE_SECS.saturating_add(self.blueprint.grace_secs),
        )
        .saturating_add(REPORT_MARGIN);
        let state = wait_for_end(&jobs, &collector, limit).await;
        let pods = self.pods_of(&collector).await;
        let ended = termination(&pods, "collect");
        if self.stop_asked() {
            return (Ending::Stopped, String::new());
        }
        if let JobState::Failed { .. } = state
            && let Ok((text, _)) = read_container_logs(
                &self.client,
                &self.blueprint,
                &collector,
                "collect",
                Some(16 * 1024),
            )
            .await
        {
            tracing::warn!(job = %collector, log = %String::from_utf8_lossy(&text), "collector failed");
        }
        collect_ending(&state, &ended, false)
    }

    /// The pods of Job `job` (retried a few times: an empty list is no answer).
    async fn pods_of(&self, job: &str) -> Vec<Pod> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.blueprint.config.namespace);
        let params = ListParams::default().labels(&format!("{JOB_NAME_LABEL}={job}"));
        for attempt in 0..5u32 {
            match bounded(pods.list(&params)).await {
                Ok(list) => return list.items,
                Err(error) => {
                    tracing::warn!(job, attempt, error = %describe_error(&error), "cannot list a job's pods");
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
            }
        }
        Vec::new()
    }

    /// Keeps the algorithm's logs in the workspace's `job.log`, at most its limit: those read
    /// now, or those followed while it ran if more; returns the bytes kept and whether some
    /// were dropped.
    async fn keep_logs(&self, followed: Vec<u8>) -> (u64, bool) {
        let cap = log_cap(&self.job);
        let (read, read_truncated) = match read_logs(
            &self.client,
            &self.blueprint,
            &self.name,
            Some(cap),
        )
        .await
        {
            Ok(read) => read,
            Err(error) => {
                tracing::warn!(job = %self.name, error = %describe_error(&error), "cannot read a run's logs");
                (Vec::new(), false)
            }
        };
        let truncated = read_truncated || followed.len() > cap;
        let mut text = if followed.len() > read.len() {
            followed
        } else {
            read
        };
        text.truncate(cap);
        let bytes = text.len() as u64;
        if truncated {
            text.extend_from_slice(
                format!("\n[insitu: logs past {cap} bytes were dropped]\n").as_bytes(),
            );
        }
        if let Err(error) = std::fs::write(self.job.log(), &text) {
            tracing::warn!(job = %self.name, %error, "cannot keep a run's logs");
        }
        (bytes, truncated)
    }
}

/// Watches the pod of run Job `job` until its algorithm's container starts (noting why it
/// waits), then follows its logs to their end, at most `cap` bytes and one more.
async fn observe(
    client: Client,
    blueprint: Arc<Blueprint>,
    job: String,
    cap: usize,
    observed: Arc<Mutex<Observed>>,
) {
    let pods: Api<Pod> = Api::namespaced(client, &blueprint.config.namespace);
    let params = ListParams::default().labels(&format!("{JOB_NAME_LABEL}={job}"));
    let mut pause = Duration::from_millis(100);
    let pod = loop {
        if let Ok(list) = bounded(pods.list(&params)).await {
            let ended = termination(&list.items, ALGORITHM_CONTAINER);
            let mut seen = observed.lock().unwrap_or_else(PoisonError::into_inner);
            if ended.waiting.is_some() {
                seen.waiting.clone_from(&ended.waiting);
            }
            if ended.started || ended.exit_code.is_some() {
                seen.started = true;
                if let Some(name) = newest(&list.items) {
                    break name;
                }
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    };
    let params = LogParams {
        container: Some(ALGORITHM_CONTAINER.to_owned()),
        follow: true,
        limit_bytes: Some(i64::try_from(cap).unwrap_or(i64::MAX).saturating_add(1)),
        ..LogParams::default()
    };
    let Ok(stream) = bounded(pods.log_stream(&pod, &params)).await else {
        return;
    };
    let mut reader = std::pin::pin!(futures::AsyncReadExt::take(
        stream,
        (cap as u64).saturating_add(1)
    ));
    let mut chunk = vec![0; 16 * 1024];
    loop {
        match futures::AsyncReadExt::read(&mut reader, &mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(read) => observed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .log
                .extend_from_slice(&chunk[..read]),
        }
    }
}

/// The name of the newest of `pods`.
fn newest(pods: &[Pod]) -> Option<String> {
    pods.iter()
        .max_by_key(|pod| pod.metadata.creation_timestamp.clone())
        .and_then(|pod| pod.metadata.name.clone())
}

/// Waits until Job `name` ends (its `Complete` or `Failed` condition) or is gone, through
/// watch restarts and API errors (retried with backoff); past `limit`, says it is still active.
async fn wait_for_end(jobs: &Api<Job>, name: &str, limit: Duration) -> JobState {
    let waited = tokio::time::timeout(limit, async {
        let mut stream = std::pin::pin!(watch_object(jobs.clone(), name).default_backoff());
        while let Some(event) = stream.next().await {
            match event {
                Ok(job) => {
                    let state = job_state(job.as_ref());
                    if state != JobState::Active {
                        return state;
                    }
                }
                Err(error) => {
                    tracing::warn!(job = name, %error, "watching a job failed; watching again");
                }
            }
        }
        JobState::Gone
    })
    .await;
    waited.unwrap_or_else(|_| {
        tracing::warn!(
            job = name,
            "the cluster did not report the job's end in time"
        );
        JobState::Active
    })
}

/// The logs of the algorithm's container of Job `job`'s pod (or of `container`), at most
/// `cap` bytes; tells whether more were written.
async fn read_logs(
    client: &Client,
    blueprint: &Blueprint,
    job: &str,
    cap: Option<usize>,
) -> Result<(Vec<u8>, bool), kube::Error> {
    read_container_logs(client, blueprint, job, ALGORITHM_CONTAINER, cap).await
}

/// The logs of container `container` of Job `job`'s newest pod, as [`read_logs`] reads them,
/// within [`REQUEST_TIMEOUT`].
async fn read_container_logs(
    client: &Client,
    blueprint: &Blueprint,
    job: &str,
    container: &str,
    cap: Option<usize>,
) -> Result<(Vec<u8>, bool), kube::Error> {
    bounded(async {
        let pods: Api<Pod> = Api::namespaced(client.clone(), &blueprint.config.namespace);
        let list = pods
            .list(&ListParams::default().labels(&format!("{JOB_NAME_LABEL}={job}")))
            .await?;
        let Some(pod) = newest(&list.items) else {
            return Ok((Vec::new(), false));
        };
        let params = LogParams {
            container: Some(container.to_owned()),
            limit_bytes: cap.map(|cap| i64::try_from(cap).unwrap_or(i64::MAX).saturating_add(1)),
            ..LogParams::default()
        };
        let stream = pods.log_stream(&pod, &params).await?;
        let mut text = Vec::new();
        // The server stops at `limitBytes`; the reader is bounded all the same.
        let bound = cap.map_or(u64::MAX, |cap| (cap as u64).saturating_add(1));
        futures::AsyncReadExt::read_to_end(
            &mut futures::AsyncReadExt::take(stream, bound),
            &mut text,
        )
        .await
        .map_err(|error| kube::Error::Service(Box::new(error)))?;
        let truncated = cap.is_some_and(|cap| text.len() > cap);
        if let Some(cap) = cap {
            text.truncate(cap);
        }
        Ok((text, truncated))
    })
    .await
}

/// Deletes every object of run `name`: its Jobs with foreground propagation and its pods
/// (an orphaned one included), then, once no pod of the run is left, its output claim and its
/// NetworkPolicy (never before: a pod still terminating stays isolated). Returns what could not
/// be deleted.
async fn delete_run_objects(client: &Client, blueprint: &Blueprint, name: &str) -> Vec<String> {
    let namespace = &blueprint.config.namespace;
    let grace = u32::try_from(blueprint.grace_secs).unwrap_or(u32::MAX);
    let mut left = Vec::new();
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    for job in [name.to_owned(), objects::collector_name(name)] {
        if let Err(error) = bounded(jobs.delete(&job, &foreground(grace))).await
            && !is_not_found(&error)
        {
            left.push(format!("job {job} ({})", describe_error(&error)));
        }
    }
    let selector = format!("{}={name}", objects::RUN_LABEL);
    if let Err(why) = delete_pods(client, blueprint, &selector).await {
        left.push(format!("the pods of {name} ({why})"));
        return left;
    }
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let claim = objects::output_claim_name(name);
    if let Err(error) = bounded(claims.delete(&claim, &DeleteParams::default())).await
        && !is_not_found(&error)
    {
        left.push(format!("claim {claim} ({})", describe_error(&error)));
    }
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), namespace);
    if let Err(error) = bounded(policies.delete(name, &DeleteParams::default())).await
        && !is_not_found(&error)
    {
        left.push(format!(
            "network policy {name} ({})",
            describe_error(&error)
        ));
    }
    left
}

/// Deletes the pods matching `selector` and waits until none is left (their grace, and some
/// more); says why not when some are.
async fn delete_pods(client: &Client, blueprint: &Blueprint, selector: &str) -> Result<(), String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &blueprint.config.namespace);
    let params = ListParams::default().labels(selector);
    let grace = u32::try_from(blueprint.grace_secs).unwrap_or(u32::MAX);
    let delete = DeleteParams {
        grace_period_seconds: Some(grace),
        ..DeleteParams::default()
    };
    if let Err(error) = bounded(pods.delete_collection(&delete, &params)).await {
        tracing::warn!(selector, error = %describe_error(&error), "cannot delete pods");
    }
    let deadline = tokio::time::Instant::now()
        + Duration::from_secs(blueprint.grace_secs.min(3600))
        + Duration::from_secs(30);
    let mut pause = Duration::from_millis(50);
    loop {
        let why = match bounded(pods.list(&params)).await {
            Ok(list) if list.items.is_empty() => return Ok(()),
            Ok(list) => format!("{} still terminating", list.items.len()),
            Err(error) => format!("cannot list them: {}", describe_error(&error)),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(why);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

/// How long one request to the cluster's API may take (watches and followed logs aside).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// `request`, failed when the API has not answered within [`REQUEST_TIMEOUT`].
async fn bounded<T>(
    request: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, kube::Error> {
    tokio::time::timeout(REQUEST_TIMEOUT, request)
        .await
        .unwrap_or_else(|_| {
            Err(kube::Error::Service(
                format!(
                    "the cluster's API did not answer in {} s",
                    REQUEST_TIMEOUT.as_secs()
                )
                .into(),
            ))
        })
}

/// A task aborted when its handle is dropped (with the task that owns it).
#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Deletion with foreground propagation: the Job goes once its pods are gone.
fn foreground(grace_secs: u32) -> DeleteParams {
    DeleteParams {
        grace_period_seconds: Some(grace_secs),
        ..DeleteParams::foreground()
    }
}

fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

/// An API error in words (its status's message when the server gave one).
pub fn describe_error(error: &kube::Error) -> String {
    match error {
        // Its message holds the plugin's output, which may hold a credential.
        kube::Error::Auth(kube::client::AuthError::AuthExecRun { cmd, out }) => format!(
            "the kubeconfig's exec command '{cmd}' failed with status {}",
            out.status
        ),
        kube::Error::Api(status) => {
            format!("{} ({}, {})", status.message, status.code, status.reason)
        }
        other => other.to_string(),
    }
}

/// The group jobs share with the keeper, from the group id owning its work root: never root's
/// (jobs would then run with root's group).
///
/// # Errors
///
/// The end of a sentence saying why, for group 0.
pub fn shared_group(gid: u32) -> Result<i64, String> {
    if gid == 0 {
        return Err(
            "belongs to group 0: run the keeper with a group of its own, through which jobs read their inputs"
                .into(),
        );
    }
    Ok(i64::from(gid))
}

/// Bytes of logs kept of `job`.
fn log_cap(job: &Prepared) -> usize {
    usize::try_from(job.limits.log_kb.saturating_mul(1024)).unwrap_or(usize::MAX)
}

/// Bytes the regular files of `folder` take.
fn folder_size(folder: &Path) -> u64 {
    std::fs::read_dir(folder)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|entry| entry.metadata().ok())
                .filter(std::fs::Metadata::is_file)
                .try_fold(0_u64, |total, metadata| total.checked_add(metadata.len()))
                .unwrap_or(u64::MAX)
        })
        .unwrap_or(0)
}

/// The `[compute.kubernetes]` table of `config`.
fn settings(config: &ComputeConfig) -> Result<&KubernetesConfig, StartError> {
    config.kubernetes.as_ref().ok_or_else(|| {
        StartError::Client("backend = \"kubernetes\" needs a [compute.kubernetes] table".into())
    })
}

/// What every object of the keeper configured by `config` shares.
fn blueprint_for(config: &ComputeConfig) -> Result<Blueprint, StartError> {
    let settings = settings(config)?.clone();
    Ok(Blueprint {
        instance: instance_of(&settings, &config.work_root),
        config: settings,
        grace_secs: config.grace_secs,
    })
}

/// A client for the cluster `settings` names.
async fn client_for(settings: &KubernetesConfig) -> Result<Client, StartError> {
    let options = kube::config::KubeConfigOptions {
        context: settings.context.clone(),
        ..kube::config::KubeConfigOptions::default()
    };
    let config = match (&settings.kubeconfig, &settings.context) {
        (Some(path), _) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .map_err(|error| StartError::Client(format!("{}: {error}", path.display())))?;
            kube::Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|error| StartError::Client(error.to_string()))?
        }
        (None, Some(_)) => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|error| StartError::Client(error.to_string()))?,
        (None, None) => kube::Config::infer()
            .await
            .map_err(|error| StartError::Client(error.to_string()))?,
    };
    Client::try_from(config).map_err(|error| StartError::Client(error.to_string()))
}

/// The keeper's instance on the cluster: a digest of its claim and work root, so that two
/// keepers sharing a namespace never touch each other's runs.
fn instance_of(settings: &KubernetesConfig, work_root: &Path) -> String {
    let canonical = std::fs::canonicalize(work_root).unwrap_or_else(|_| work_root.to_path_buf());
    let mut seed = settings.workspace_claim.as_bytes().to_vec();
    seed.push(0);
    seed.extend_from_slice(canonical.as_os_str().as_encoded_bytes());
    alloy::primitives::hex::encode(&alloy::primitives::keccak256(seed)[..6])
}

/// The name of run `id`'s objects for keeper `instance`.
fn object_name(instance: &str, id: &RunId) -> String {
    let digest = alloy::primitives::keccak256(format!("{instance}/{}", id.name()));
    format!("insitu-{}", alloy::primitives::hex::encode(&digest[..8]))
}
