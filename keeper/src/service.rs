//! The running keeper: the watcher, the executor and the API, each a task with its own database
//! connection, stopped together.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use alloy::signers::local::PrivateKeySigner;
use insitu_client::rpc::RpcError;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::{
    sync::{Mutex, Notify, watch},
    task::JoinHandle,
};

use crate::{
    api::{self, AppState},
    compute::{
        ComputeBackend, ComputeContext, kubernetes::KubernetesBackend, local::LocalBackend,
        runner::Runner,
    },
    config::{BackendKind, ChainSettings, ComputeConfig, Config, DeploymentError},
    executor::{CrashPoint, ExecuteError, Executor, Step},
    rpc_pool::RpcPool,
    storage::Storage,
    store::{ActionState, JobPhase, Store, StoreError},
    watcher::Watcher,
};

/// Test hook: when set to `after_sign`, `after_send` or `after_receipt`, the process aborts at
/// that point of its first settlement; `job_configuring` or `job_publishing`, once a compute job
/// has entered that phase (crash-recovery tests). Never set it in production.
pub const CRASH_ENV: &str = "INSITU_KEEPER_CRASH_AT";

/// Why the keeper could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The deployment's addresses are unusable.
    #[error(transparent)]
    Deployment(#[from] DeploymentError),
    /// The chain could not be reached (or is another chain).
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// A chain's key could not be loaded.
    #[error("the key of chain {chain_id}: {reason}")]
    Key {
        /// The chain.
        chain_id: u64,
        /// Why.
        reason: String,
    },
    /// The database could not be opened.
    #[error("opening the database: {0}")]
    Store(#[from] StoreError),
    /// The storage's HTTP client could not be set up.
    #[error("setting up the storage: {0}")]
    Storage(#[from] crate::storage::StorageError),
    /// Compute is configured but this machine cannot isolate jobs.
    #[error("compute: {0}")]
    Compute(String),
    /// The API could not listen.
    #[error("listening on {address}: {source}")]
    Listen {
        /// The address.
        address: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// How long stopping waits for open connections and in-flight work before closing them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A started keeper.
#[derive(Debug)]
pub struct Running {
    /// Where the API listens.
    pub address: SocketAddr,
    /// Each chain's endpoints, in the order of [`Config::chain_settings`].
    pub rpc: Vec<RpcPool>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    databases: Vec<std::path::PathBuf>,
}

impl Running {
    /// Stops the tasks (the executor finishes the step it is in; transactions in flight stay
    /// recorded and are followed at the next start) and waits for them.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for mut task in self.tasks {
            // A client holding a connection open (a long download, an idle keep-alive) gets
            // [`SHUTDOWN_GRACE`] to finish, then the connection is closed.
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
            {
                tracing::warn!(
                    grace_s = SHUTDOWN_GRACE.as_secs(),
                    "still busy after the grace period (open connections): closing"
                );
                task.abort();
                let _ = task.await;
            }
        }
        for database in &self.databases {
            if let Ok(store) = Store::open(database) {
                let in_flight = [ActionState::Pending, ActionState::Signed, ActionState::Sent]
                    .into_iter()
                    .filter_map(|state| store.actions(state).ok())
                    .map(|actions| actions.len())
                    .sum::<usize>();
                tracing::info!(
                    in_flight,
                    database = %database.display(),
                    "stopped; unsettled actions resume at the next start"
                );
            }
        }
    }
}

/// Starts the keeper described by `config`, whose first chain's key is `key` (the keys of its
/// other chains, if any, come from their key sources).
///
/// # Errors
///
/// See [`StartError`].
/// The keeper's own services as addresses: its API's, and each chain's RPC endpoints' (host
/// names resolved now, best effort). A federated job's aggregator is never one of them.
fn own_addresses(config: &Config) -> Vec<std::net::SocketAddr> {
    use std::net::ToSocketAddrs;
    let mut own: Vec<std::net::SocketAddr> = config
        .listen
        .to_socket_addrs()
        .map(Iterator::collect)
        .unwrap_or_default();
    for settings in config.chain_settings() {
        for url in &settings.rpc_urls {
            let Ok(url) = url::Url::parse(url) else {
                continue;
            };
            if let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) {
                let host = host.trim_start_matches('[').trim_end_matches(']');
                own.extend((host, port).to_socket_addrs().into_iter().flatten());
            }
        }
    }
    own
}

pub async fn start(
    config: &Config,
    key: PrivateKeySigner,
    metrics: Option<PrometheusHandle>,
) -> Result<Running, StartError> {
    let mut keys = vec![key];
    for chain in config.chain_settings().iter().skip(1) {
        keys.push(
            insitu_client::keys::load(&chain.key).map_err(|error| StartError::Key {
                chain_id: chain.chain_id,
                reason: error.to_string(),
            })?,
        );
    }
    start_chains(config, keys, metrics).await
}

/// Starts the keeper described by `config` with one key per chain, in the order of
/// [`Config::chain_settings`]. Each chain has its own endpoints, store, watcher and executor;
/// the API serves them all.
///
/// # Errors
///
/// See [`StartError`]: every chain must start.
pub async fn start_chains(
    config: &Config,
    keys: Vec<PrivateKeySigner>,
    metrics: Option<PrometheusHandle>,
) -> Result<Running, StartError> {
    let chains = config.chain_settings();
    if keys.len() != chains.len() {
        return Err(StartError::Key {
            chain_id: chains.get(keys.len()).map_or(0, |chain| chain.chain_id),
            reason: format!("{} chains, {} keys", chains.len(), keys.len()),
        });
    }
    std::fs::create_dir_all(&config.data_root).ok();
    let listener = listen(&config.listen)
        .await
        .map_err(|source| StartError::Listen {
            address: config.listen.clone(),
            source,
        })?;
    let address = listener.local_addr().map_err(|source| StartError::Listen {
        address: config.listen.clone(),
        source,
    })?;
    let (stop, stopped) = watch::channel(false);
    let compute = match &config.compute {
        Some(settings) => Some(start_compute(settings).await?),
        None => None,
    };
    let shared = api::Shared {
        storage: Arc::new(Storage::new(
            config.data_root.clone(),
            config.s3.clone(),
            &config.outbound.policy(),
        )?),
        publishers: config.publishers.clone(),
        public_url: config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{address}")),
        downloads: Arc::new(api::DownloadLimits::new(config.max_downloads_per_consumer)),
        metrics,
        tokens: Arc::new(api::tokens::Tokens::new(&keys[0])),
        token_ttl: config.access_token_ttl_secs,
        compute,
    };
    let mut states = Vec::new();
    let mut pools = Vec::new();
    let mut tasks = Vec::new();
    for (settings, key) in chains.iter().zip(keys) {
        let (state, pool, chain_tasks) =
            start_chain(config, settings, key, shared.clone(), &stopped).await?;
        states.push(state);
        pools.push(pool);
        tasks.extend(chain_tasks);
    }
    let router = api::router(api::Chains::new(states));
    let serving = {
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let shutdown = async move {
                while !*stopped.borrow() {
                    if stopped.changed().await.is_err() {
                        return;
                    }
                }
            };
            if let Err(error) = api::serve(listener, router, shutdown).await {
                tracing::error!(%error, "the API stopped");
            }
        })
    };
    tasks.push(serving);
    tracing::info!(%address, chains = chains.len(), "API listening");
    Ok(Running {
        address,
        stop,
        rpc: pools,
        tasks,
        databases: chains.iter().map(|chain| chain.database.clone()).collect(),
    })
}

/// Starts one chain's endpoints, watcher, executor and balance reader; returns its API state,
/// its endpoints and its tasks.
async fn start_chain(
    config: &Config,
    settings: &ChainSettings,
    key: PrivateKeySigner,
    shared: api::Shared,
    stopped: &watch::Receiver<bool>,
) -> Result<(AppState, RpcPool, Vec<JoinHandle<()>>), StartError> {
    let chain_id = settings.chain_id;
    let (deployment, suite) = settings.deployment()?;
    let pool = RpcPool::connect(
        &settings.endpoints()?,
        chain_id,
        settings.rpc_max_lag_blocks,
    )
    .await?;
    let provider = pool.provider();
    let api_store = Store::open(&settings.database)?;
    let mut watcher_store = Store::open(&settings.database)?;
    let mut executor_store = Store::open(&settings.database)?;
    let wake = Arc::new(Notify::new());
    let interval = config.poll_interval();
    // Waiting requests look at the store again when the watcher has scanned more blocks, or when
    // the executor finishes a settlement.
    let (scanned, scanned_seen) = watch::channel(0_u64);
    let (settled, settled_seen) = watch::channel(0_u64);

    let watcher = Watcher::new(
        provider.clone(),
        suite,
        key.address(),
        settings.confirmations,
        deployment.block,
    )
    .with_progress(scanned);
    let watching = {
        let stopped = stopped.clone();
        tokio::spawn(async move {
            watcher.run(&mut watcher_store, interval, stopped).await;
        })
    };

    let crash_point = std::env::var(CRASH_ENV)
        .ok()
        .and_then(|point| CrashPoint::parse(&point));
    if let Some(point) = crash_point {
        tracing::warn!(?point, "test hook: the process aborts at this crash point");
    }
    let executor = Executor::new(
        provider.clone(),
        chain_id,
        key.clone(),
        suite,
        settings.confirmations,
    )
    .with_crash_point(crash_point);
    let executing = {
        let mut stopped = stopped.clone();
        let wake = wake.clone();
        tokio::spawn(async move {
            loop {
                match executor.tick(&mut executor_store).await {
                    Ok(steps) => {
                        let finished = steps.iter().any(|step| {
                            matches!(
                                step,
                                Step::Confirmed { .. } | Step::Done { .. } | Step::Failed { .. }
                            )
                        });
                        for step in steps {
                            tracing::debug!(chain = chain_id, ?step, "executor");
                        }
                        if finished {
                            settled.send_modify(|count| *count += 1);
                        }
                    }
                    Err(ExecuteError::Crashed(point)) => {
                        // Only with the test hook: die as `kill -9` would, mid-settlement.
                        tracing::error!(?point, "crash point reached: aborting");
                        std::process::abort();
                    }
                    Err(error) => {
                        tracing::warn!(chain = chain_id, %error, "executor tick failed; retrying");
                    }
                }
                let pending = [ActionState::Pending, ActionState::Signed, ActionState::Sent]
                    .into_iter()
                    .filter_map(|state| executor_store.actions(state).ok())
                    .map(|actions| actions.len())
                    .sum::<usize>();
                metrics::gauge!("keeper_pending_actions", "chain" => chain_id.to_string())
                    .set(pending as f64);
                // Poll faster while something is in flight.
                let wait = if pending > 0 {
                    Duration::from_millis(200).min(interval)
                } else {
                    interval
                };
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = wake.notified() => {}
                    _ = stopped.changed() => {}
                }
                if *stopped.borrow() {
                    return;
                }
            }
        })
    };

    let wake_runner = Arc::new(Notify::new());
    let mut compute_tasks = Vec::new();
    if let Some(compute) = &shared.compute {
        let runner = Runner {
            chain_id,
            database: settings.database.clone(),
            compute: compute.clone(),
            storage: shared.storage.clone(),
            key: key.clone(),
            data_root: config.data_root.clone(),
            public_url: shared.public_url.clone(),
            own_addresses: own_addresses(config),
            wake: wake_runner.clone(),
            wake_executor: wake.clone(),
            crash: std::env::var(CRASH_ENV)
                .ok()
                .and_then(|point| JobPhase::parse(point.strip_prefix("job_")?).ok()),
        };
        compute_tasks.push(tokio::spawn(runner.run(stopped.clone())));
    }

    let checking = tokio::spawn(pool.clone().run(stopped.clone()));
    let balance = tokio::spawn(watch_balance(
        provider.clone(),
        chain_id,
        key.address(),
        config.low_balance_gwei,
        stopped.clone(),
    ));
    tracing::info!(
        chain = chain_id,
        keeper = %key.address(),
        from_block = deployment.block,
        database = %settings.database.display(),
        "chain started"
    );
    let state = AppState {
        store: Arc::new(Mutex::new(api_store)),
        provider,
        chain_id,
        suite,
        deployment,
        key,
        confirmations: settings.confirmations,
        wake_executor: wake,
        wake_runner,
        scanned: scanned_seen,
        settled: settled_seen,
        shared,
    };
    let mut tasks = vec![watching, executing, checking, balance];
    tasks.extend(compute_tasks);
    Ok((state, pool, tasks))
}

/// Makes the folders of compute's work root.
fn make_work_folders(settings: &ComputeConfig) -> Result<(), StartError> {
    for folder in ["algorithms", "jobs", "logs"] {
        let path = settings.work_root.join(folder);
        std::fs::create_dir_all(&path).map_err(|error| {
            StartError::Compute(format!("cannot create {}: {error}", path.display()))
        })?;
    }
    Ok(())
}

/// Checks that compute can run as `settings` say, as the keeper does at start, but starting,
/// stopping and deleting nothing; returns what was found, in words.
///
/// # Errors
///
/// [`StartError::Compute`], saying why compute cannot run so.
pub async fn check_compute(settings: &ComputeConfig) -> Result<String, StartError> {
    make_work_folders(settings)?;
    match settings.backend {
        BackendKind::Local => {
            let isolation = LocalBackend::check(settings)
                .await
                .map_err(StartError::Compute)?;
            let mut summary = format!(
                "local sandbox: {}, cgroup {:?}, memory limit {}, process limit {}, CPU limit {}, Landlock {:?}, seccomp {}; jobs run as uid {}",
                isolation.bwrap.as_deref().unwrap_or("bubblewrap"),
                isolation.cgroup,
                isolation.memory_limit,
                isolation.pids_limit,
                isolation.cpu_limit,
                isolation.landlock,
                isolation.seccomp,
                isolation.job_uid,
            );
            for problem in &isolation.problems {
                summary.push_str(&format!("\nwarning: {problem}"));
            }
            Ok(summary)
        }
        BackendKind::Kubernetes => {
            let report = KubernetesBackend::check(settings)
                .await
                .map_err(|error| StartError::Compute(error.to_string()))?;
            let cluster = settings.kubernetes.as_ref();
            Ok(format!(
                "Kubernetes {}, namespace {}: every permission granted, the workspace claim {} is the work root, jobs are isolated",
                report.server_version,
                cluster.map_or("", |cluster| cluster.namespace.as_str()),
                cluster.map_or("", |cluster| cluster.workspace_claim.as_str()),
            ))
        }
    }
}

/// Sets up the compute backend the configuration names (probing this machine's sandbox, or
/// checking the cluster), or says why it cannot.
async fn start_compute(settings: &ComputeConfig) -> Result<ComputeContext, StartError> {
    make_work_folders(settings)?;
    let (backend, job_account): (Arc<dyn ComputeBackend>, _) = match settings.backend {
        BackendKind::Local => {
            let (backend, isolation) = LocalBackend::start(settings)
                .await
                .map_err(StartError::Compute)?;
            tracing::info!(
                bwrap = isolation.bwrap.as_deref().unwrap_or_default(),
                cgroup = ?isolation.cgroup,
                pids_limit = isolation.pids_limit,
                cpu_limit = isolation.cpu_limit,
                landlock = ?isolation.landlock,
                seccomp = isolation.seccomp,
                job_uid = isolation.job_uid,
                "compute sandbox ready"
            );
            for problem in &isolation.problems {
                tracing::warn!(%problem, "compute sandbox: a mechanism is missing");
            }
            let job_account = backend.job_account();
            (Arc::new(backend), job_account)
        }
        BackendKind::Kubernetes => {
            let backend = KubernetesBackend::start(settings)
                .await
                .map_err(|error| StartError::Compute(error.to_string()))?;
            (Arc::new(backend), None)
        }
    };
    Ok(ComputeContext {
        config: settings.clone(),
        backend,
        slots: Arc::new(tokio::sync::Semaphore::new(settings.concurrency as usize)),
        job_account,
    })
}

/// Connections the API's socket queues before it accepts them: a burst of consumers beyond it
/// would see their connections dropped and retried a second later.
pub const LISTEN_BACKLOG: u32 = 1024;

/// A listening socket on `address` (`host:port`), with a [`LISTEN_BACKLOG`] queue.
async fn listen(address: &str) -> std::io::Result<tokio::net::TcpListener> {
    let mut last = None;
    for resolved in tokio::net::lookup_host(address).await? {
        let socket = if resolved.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket.bind(resolved) {
            Ok(()) => return socket.listen(LISTEN_BACKLOG),
            Err(error) => last = Some(error),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            "the address resolves to nothing",
        )
    }))
}

/// How often the keeper's balance is read.
pub const BALANCE_INTERVAL: Duration = Duration::from_secs(30);

/// Reads the balance of `account` every [`BALANCE_INTERVAL`] until `stopped`: the gauges
/// `keeper_balance_gwei` and `keeper_balance_low` (1 below `low_gwei`), and a warning in the log
/// when it falls below, repeated every ten readings while it stays there.
async fn watch_balance(
    provider: alloy::providers::DynProvider,
    chain_id: u64,
    account: alloy::primitives::Address,
    low_gwei: u64,
    mut stopped: watch::Receiver<bool>,
) {
    use alloy::providers::Provider;
    let mut readings_low = 0_u64;
    loop {
        match provider.get_balance(account).await {
            Ok(wei) => {
                let gwei = wei / alloy::primitives::U256::from(1_000_000_000_u64);
                let gwei = u64::try_from(gwei).unwrap_or(u64::MAX);
                let low = gwei < low_gwei;
                let chain = chain_id.to_string();
                metrics::gauge!("keeper_balance_gwei", "chain" => chain.clone()).set(gwei as f64);
                metrics::gauge!("keeper_balance_low", "chain" => chain).set(if low {
                    1.0
                } else {
                    0.0
                });
                if low {
                    if readings_low.is_multiple_of(10) {
                        tracing::warn!(
                            chain = chain_id,
                            %account,
                            balance_gwei = gwei,
                            low_balance_gwei = low_gwei,
                            "the keeper's balance is low: settlements will fail once it cannot pay for gas"
                        );
                    }
                    readings_low += 1;
                } else {
                    readings_low = 0;
                }
            }
            Err(error) => {
                tracing::warn!(chain = chain_id, %error, "reading the keeper's balance failed");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(BALANCE_INTERVAL) => {}
            _ = stopped.changed() => {}
        }
        if *stopped.borrow() {
            return;
        }
    }
}
