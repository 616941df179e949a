//! `insitu-keeper`: the provider's keeper.
//!
//! `--check-config` prints the effective settings (file, then `INSITU_KEEPER_*` variables, then
//! defaults) and checks the deployment's addresses file (it exists, is for the configured chain
//! and names the whole suite). `--check-compute` runs the compute backend's start-up check
//! (the local sandbox's probe, or the cluster's) without starting anything. Without it, the keeper runs until SIGTERM or Ctrl-C: the watcher
//! records the agreements made on its account's offers, the API stores publishers' metadata
//! documents, signs offers and serves paid access, and the executor settles each paid agreement
//! once (see docs/keeper.md). `admin` holds the operator's commands (see docs/operations.md).

mod admin_cli;

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use insitu_client::keys;
use insitu_keeper::{config::Config, service};
use tracing_subscriber::EnvFilter;

/// The insitu keeper: watches agreements, fulfils conditions and releases payments.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Configuration file (TOML). Without it the defaults are used; `INSITU_KEEPER_*`
    /// environment variables override either. The key is read from INSITU_KEEPER_PRIVATE_KEY
    /// (hex) unless the file names a keystore and its password file.
    #[arg(
        short,
        long,
        env = "INSITU_KEEPER_CONFIG",
        value_name = "FILE",
        global = true
    )]
    config: Option<PathBuf>,

    /// Load and validate the configuration, print it and exit.
    #[arg(long)]
    check_config: bool,

    /// Check that compute can run as the `[compute]` table says (probe the local sandbox, or
    /// check the cluster's API, permissions, workspace claim and network isolation), print what
    /// was found and exit; nothing is started or deleted.
    #[arg(long, conflicts_with = "check_config")]
    check_compute: bool,

    /// Print the configuration reference (Markdown: every key, its type, default, environment
    /// variable and meaning) and exit.
    #[arg(long, exclusive = true)]
    config_reference: bool,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// The operator's commands: agreements and their history, retry, abandon, re-index, balance.
    Admin(admin_cli::AdminArgs),
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.config_reference {
        print!("{}", insitu_keeper::config::reference::markdown());
        return Ok(());
    }
    let config = Config::load(args.config.as_deref()).context("loading the configuration")?;
    if let Some(Command::Admin(admin)) = args.command {
        return admin_cli::run(&config, admin);
    }
    if args.check_compute {
        let compute = config
            .compute
            .clone()
            .context("the configuration has no [compute] table: this keeper sells no compute")?;
        let summary = tokio::runtime::Runtime::new()?
            .block_on(service::check_compute(&compute))
            .context("compute cannot run as configured")?;
        println!("compute: {summary}");
        return Ok(());
    }
    if args.check_config {
        print!("{}", config.redacted());
    }
    let chains = config.chain_settings();
    for chain in &chains {
        let (deployment, suite) = chain.deployment().with_context(|| {
            format!(
                "checking the deployment's addresses of chain {}",
                chain.chain_id
            )
        })?;
        if args.check_config {
            println!(
                "# deployment: chain {}, from block {}, agreement store {}, payment condition {}",
                deployment.chain_id, deployment.block, suite.agreement_store, suite.payment
            );
        }
    }
    if args.check_config {
        return Ok(());
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    // The first chain's key here, so a missing one is said before anything starts; the other
    // chains' keys are loaded by the service, naming their chain when one is missing.
    let key = keys::load(&chains[0].key)
        .with_context(|| format!("loading the keeper's key of chain {}", chains[0].chain_id))?;

    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        tracing::info!(chains = chains.len(), "keeper starting");
        let running = service::start(&config, key, Some(metrics)).await?;
        tracing::info!(address = %running.address, "keeper started");
        shutdown_signal().await;
        tracing::info!("shutting down");
        running.stop().await;
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
