//! `insitu-keeper`: the provider's keeper.
//!
//! `--check-config` prints the effective settings (file, then `INSITU_KEEPER_*` variables, then
//! defaults) and checks the deployment's addresses file (it exists, is for the configured chain
//! and names the whole suite). Without it, the keeper connects to the chain, opens its database
//! and follows the chain, recording the agreements made on its account's offers and their states
//! (paid, served, released, refunded, aborted) until SIGTERM or Ctrl-C. It does not serve or
//! settle yet.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use insitu_client::{keys, rpc};
use insitu_keeper::{config::Config, store::Store, watcher::Watcher};
use tracing_subscriber::EnvFilter;

/// The insitu keeper: watches agreements, fulfils conditions and releases payments.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Configuration file (TOML). Without it the defaults are used; `INSITU_KEEPER_*`
    /// environment variables override either. The key is read from INSITU_KEEPER_PRIVATE_KEY
    /// (hex) unless the file names a keystore and its password file.
    #[arg(short, long, env = "INSITU_KEEPER_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Load and validate the configuration, print it and exit.
    #[arg(long)]
    check_config: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = Config::load(args.config.as_deref()).context("loading the configuration")?;
    if args.check_config {
        print!("{config}");
    }
    let (deployment, suite) = config
        .deployment()
        .context("checking the deployment's addresses")?;
    if args.check_config {
        println!(
            "# deployment: chain {}, from block {}, agreement store {}, payment condition {}",
            deployment.chain_id, deployment.block, suite.agreement_store, suite.payment
        );
        return Ok(());
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let key = keys::load(&config.key_source()).context("loading the keeper's key")?;
    let keeper = key.address();

    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let endpoint = rpc::Endpoint::parse(&config.rpc_url)?;
        let connection = rpc::connect(&endpoint, Some(config.chain_id)).await?;
        let mut store = Store::open(&config.database)
            .with_context(|| format!("opening the database {}", config.database.display()))?;
        tracing::info!(
            %keeper,
            chain = config.chain_id,
            endpoint = %endpoint,
            database = %config.database.display(),
            from_block = deployment.block,
            "keeper started"
        );
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutting down");
            let _ = stop.send(true);
        });
        Watcher::new(
            connection.provider,
            suite,
            keeper,
            config.confirmations,
            deployment.block,
        )
        .run(&mut store, config.poll_interval(), stopped)
        .await?;
        tracing::info!("stopped");
        anyhow::Ok(())
    })
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
