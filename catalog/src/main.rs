//! `insitu-catalog`: runs the catalog, or prints its OpenAPI document.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use insitu_catalog::{api::ApiDoc, config::Config, service::Catalog};
use utoipa::OpenApi;

/// The insitu catalog: indexes every published asset and serves search.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Indexes the configured chains and serves the API and the web page until SIGINT or
    /// SIGTERM.
    Run {
        /// The configuration file.
        #[arg(long, env = "INSITU_CATALOG_CONFIG")]
        config: PathBuf,
    },
    /// Prints the API's OpenAPI document.
    Openapi,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_http=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Openapi => {
            println!("{}", ApiDoc::openapi().to_pretty_json()?);
            Ok(())
        }
        Command::Run { config } => {
            let config = Config::load(&config)?;
            let catalog = Catalog::start(&config).await?;
            println!("catalog listening on http://{}", catalog.address);
            tokio::signal::ctrl_c()
                .await
                .context("waiting for a signal")?;
            catalog.stop().await;
            Ok(())
        }
    }
}
