//! `insitu-keeper`: the provider's keeper.
//!
//! This version loads and validates the configuration; `--check-config` prints the effective
//! settings (file, then `INSITU_KEEPER_*` variables, then defaults) and checks the deployment's
//! addresses file (it exists, is for the configured chain and names the whole suite).

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Parser;
use insitu_keeper::config::Config;

/// The insitu keeper: watches agreements, fulfils conditions and releases payments.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Configuration file (TOML). Without it the defaults are used; `INSITU_KEEPER_*`
    /// environment variables override either.
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
        let (deployment, suite) = config
            .deployment()
            .context("checking the deployment's addresses")?;
        println!(
            "# deployment: chain {}, from block {}, agreement store {}, payment condition {}",
            deployment.chain_id, deployment.block, suite.agreement_store, suite.payment
        );
        return Ok(());
    }
    bail!("this version of insitu-keeper only checks its configuration: run it with --check-config")
}
