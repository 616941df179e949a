//! The running catalog: an indexer per chain, the fetcher, and the API, each with a connection
//! of its own to the database.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use alloy::providers::{Provider, ProviderBuilder};
use anyhow::{Context, bail};
use insitu_bindings::addresses::Deployment;
use insitu_outbound::Policy;
use tokio::{sync::Notify, task::JoinHandle};
use tower_http::{timeout::TimeoutLayer, trace::TraceLayer};

use crate::{
    api::{self, ApiState},
    config::Config,
    fetcher::Fetcher,
    indexer::Indexer,
    market::Markets,
    store::Store,
};

/// A running catalog.
#[derive(Debug)]
pub struct Catalog {
    /// Where the API listens.
    pub address: SocketAddr,
    /// The chains followed.
    pub chains: Vec<u64>,
    shutdown: tokio::sync::watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Catalog {
    /// Checks every chain (its node answers with the chain id of its addresses file), opens the
    /// database, and starts the indexers, the fetcher and the API.
    ///
    /// # Errors
    ///
    /// A chain that does not check out, a database that does not open, an address in use.
    pub async fn start(config: &Config) -> anyhow::Result<Self> {
        let (shutdown, stopped) = tokio::sync::watch::channel(false);
        let progress = Arc::new(Notify::new());
        let interval = Duration::from_millis(config.poll_interval_ms);
        let mut indexers = Vec::new();
        let mut chains = Vec::new();
        let mut suites = std::collections::HashMap::new();
        for (index, chain) in config.chains.iter().enumerate() {
            let deployment = Deployment::read(&chain.addresses)
                .with_context(|| format!("chains[{index}].addresses"))?;
            let suite = deployment
                .suite()
                .with_context(|| format!("chains[{index}].addresses"))?;
            let url = chain
                .rpc_url
                .parse()
                .with_context(|| format!("chains[{index}].rpc_url"))?;
            let provider = ProviderBuilder::new().connect_http(url).erased();
            let id = provider.get_chain_id().await.with_context(|| {
                format!(
                    "chains[{index}]: the node at {} does not answer",
                    chain.rpc_url
                )
            })?;
            if id != deployment.chain_id {
                bail!(
                    "chains[{index}]: the node is chain {id}, the addresses file is for chain {}",
                    deployment.chain_id
                );
            }
            if chains.contains(&id) {
                bail!("chains[{index}]: chain {id} is configured twice");
            }
            chains.push(id);
            let endpoint = insitu_client::rpc::Endpoint::parse(&chain.rpc_url)
                .with_context(|| format!("chains[{index}].rpc_url"))?;
            let connection = insitu_client::rpc::connect(&endpoint, Some(id))
                .await
                .with_context(|| format!("chains[{index}]: connecting"))?;
            let opened = insitu_client::suite::Suite::open(connection, &chain.addresses)
                .await
                .with_context(|| format!("chains[{index}].addresses"))?;
            suites.insert(id, opened);
            indexers.push(Indexer::new(
                provider,
                id,
                suite,
                chain.confirmations,
                deployment.block,
            ));
        }
        let open = || {
            Store::open_location(&config.database).with_context(|| {
                format!(
                    "opening the database {}",
                    crate::config::shown(&config.database)
                )
            })
        };
        let mut tasks = Vec::new();
        for indexer in indexers {
            let mut store = open()?;
            let progress = progress.clone();
            let stopped = stopped.clone();
            tasks.push(tokio::spawn(async move {
                indexer.run(&mut store, interval, progress, stopped).await;
            }));
        }
        let policy = Policy::new(config.outbound.allow.clone());
        let fetcher = Fetcher::new(&policy, config.max_document_kb * 1024)
            .context("setting up the HTTP client")?;
        let markets = Markets::new(
            suites,
            policy.client().context("setting up the HTTP client")?,
        );
        let mut fetch_store = open()?;
        let passed =
            crate::fetcher::recheck(&mut fetch_store).context("checking stored documents")?;
        if passed > 0 {
            tracing::info!(
                documents = passed,
                "documents refused before pass their check now"
            );
        }
        let fetch_stopped = stopped.clone();
        tasks.push(tokio::spawn(async move {
            fetcher.run(&mut fetch_store, progress, fetch_stopped).await;
        }));
        let state = ApiState {
            store: Arc::new(Mutex::new(open()?)),
            chains: Arc::new(chains.clone()),
            markets: Arc::new(markets),
        };
        let app = api::router(state).layer((
            TraceLayer::new_for_http(),
            TimeoutLayer::with_status_code(
                axum::http::StatusCode::REQUEST_TIMEOUT,
                Duration::from_secs(30),
            ),
        ));
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .with_context(|| format!("listening on {}", config.listen))?;
        let address = listener.local_addr()?;
        let mut api_stopped = stopped;
        tasks.push(tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = api_stopped.wait_for(|stop| *stop).await;
                })
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "the API stopped");
            }
        }));
        tracing::info!(%address, chains = ?chains, "catalog started");
        Ok(Self {
            address,
            chains,
            shutdown,
            tasks,
        })
    }

    /// Stops every task and waits for them.
    pub async fn stop(self) {
        self.shutdown.send_replace(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}
