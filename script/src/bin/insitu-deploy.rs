//! Deploys and wires the insitu contract suite on any EVM chain, and writes an addresses file.
//!
//! The deployer's key comes from the environment (`INSITU_DEPLOYER_KEY`, hex), never from the
//! command line, where other users of the machine could read it.
//!
//! Governance goes through a timelock by default (two days), whose proposer is `--governor` (the
//! deployer when omitted). When the deployer cannot carry out the template approvals and the
//! network fee at once, the command prints what must still be sent, by whom and from when.

use std::path::PathBuf;

use alloy::{
    network::EthereumWallet,
    primitives::Address,
    providers::{Provider, ProviderBuilder},
    signers::local::PrivateKeySigner,
};
use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use insitu_bindings::deployment::{DeployOptions, Governance};
use insitu_script::deploy::{
    DEFAULT_ADMIN_TRANSFER_DELAY, DEFAULT_TIMELOCK_DELAY, MAX_FEE_BPS, deploy_suite,
    unsafe_governance,
};

/// Who holds the governor and admin roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum GovernanceKind {
    /// A governance timelock: every change is scheduled by the proposer (--governor) and applies
    /// after --timelock-delay seconds.
    Timelock,
    /// The --governor account itself, changes apply at once (development chains only).
    Account,
}

/// Deploys the insitu contracts and approves the templates.
///
/// The deployer's private key is read from the environment variable INSITU_DEPLOYER_KEY (hex),
/// never from the command line.
#[derive(Debug, Parser)]
#[command(name = "insitu-deploy", version)]
struct Args {
    /// JSON-RPC endpoint of the chain.
    #[arg(long, env = "INSITU_RPC_URL", default_value = "http://127.0.0.1:8545")]
    rpc_url: String,
    /// Who governs templates and fees: a timelock, or an account directly (development chains
    /// only: chain ids 31337 and 1337).
    #[arg(long, value_enum, default_value_t = GovernanceKind::Timelock)]
    governance: GovernanceKind,
    /// With a timelock, its proposer (e.g. a multisig), who schedules governance changes; with
    /// --governance account, the governing account. The deployer when omitted. When it is not the
    /// deployer, what it must send is printed.
    #[arg(long)]
    governor: Option<Address>,
    /// Seconds between scheduling a governance change and executing it (default 172800, two
    /// days; 0 only on development chains).
    #[arg(long, value_name = "SECONDS")]
    timelock_delay: Option<u64>,
    /// Seconds an admin-role transfer of the agreement store waits between start and acceptance.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_ADMIN_TRANSFER_DELAY)]
    admin_transfer_delay: u32,
    /// Network fee in basis points of each price (at most 1000).
    #[arg(long, default_value_t = 0)]
    fee_bps: u16,
    /// Receiver of the network fee; required when --fee-bps is not 0.
    #[arg(long)]
    fee_receiver: Option<Address>,
    /// Confirmations to wait for on every transaction.
    #[arg(long, default_value_t = 1)]
    confirmations: u64,
    /// Where to write the addresses file (default: deployments/<chain id>.json).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Deploy even if the addresses file already exists (it is replaced).
    #[arg(long)]
    overwrite: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let key = std::env::var("INSITU_DEPLOYER_KEY")
        .context("set INSITU_DEPLOYER_KEY to the deployer's private key (hex)")?;
    let signer: PrivateKeySigner = key
        .trim()
        .parse()
        .context("INSITU_DEPLOYER_KEY is not a valid private key")?;
    let deployer = signer.address();
    let network_fee = match (args.fee_bps, args.fee_receiver) {
        (0, _) => None,
        (bps, _) if bps > MAX_FEE_BPS => {
            bail!("--fee-bps {bps} is above the maximum network fee of {MAX_FEE_BPS} bps")
        }
        (_, Some(receiver)) if receiver.is_zero() => {
            bail!("--fee-receiver must not be the zero address")
        }
        (bps, Some(receiver)) => Some((receiver, bps)),
        (_, None) => bail!("--fee-bps needs --fee-receiver"),
    };
    let governor = args.governor.unwrap_or(deployer);
    if governor.is_zero() {
        bail!("--governor must not be the zero address");
    }
    let governance = match (args.governance, args.timelock_delay) {
        (GovernanceKind::Timelock, delay) => Governance::Timelock {
            proposer: governor,
            delay: delay.unwrap_or(DEFAULT_TIMELOCK_DELAY),
        },
        (GovernanceKind::Account, None) => Governance::Account(governor),
        (GovernanceKind::Account, Some(_)) => {
            bail!("--timelock-delay needs --governance timelock")
        }
    };
    let options = DeployOptions {
        governance,
        admin_transfer_delay: args.admin_transfer_delay,
        network_fee,
    };
    let url = args
        .rpc_url
        .parse()
        .with_context(|| format!("invalid RPC URL {}", args.rpc_url))?;
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(signer))
        .connect_http(url);

    let chain_id = provider
        .get_chain_id()
        .await
        .with_context(|| format!("reading the chain id from {}", args.rpc_url))?;
    if let Some(problem) = unsafe_governance(chain_id, &options) {
        bail!("{problem}");
    }
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from("deployments").join(format!("{chain_id}.json")));
    check_output(&out, args.overwrite)?;
    println!("deployer {deployer} on chain {chain_id}");

    let deployed = deploy_suite(&provider, deployer, options, args.confirmations).await?;
    deployed
        .deployment
        .write(&out)
        .with_context(|| format!("writing {}", out.display()))?;

    println!(
        "deployed {} transactions on chain {} (last block {})",
        deployed.transactions.len(),
        deployed.deployment.chain_id,
        deployed.deployment.block
    );
    for (name, address) in &deployed.deployment.contracts {
        println!("  {name:<28} {address}");
    }
    println!("addresses written to {}", out.display());
    if deployed.governance.is_done() {
        println!("templates approved and network fee set");
    } else {
        print!("{}", deployed.governance.instructions());
    }
    Ok(())
}

/// Refuses, before anything is sent, an addresses file that exists (a second deployment would
/// replace the record of the first) unless `overwrite`, and a place where it cannot be written.
fn check_output(out: &std::path::Path, overwrite: bool) -> Result<()> {
    if out.exists() && !overwrite {
        bail!(
            "{} exists: a suite is already deployed on this chain (pass --overwrite to deploy \
             another one and replace the file)",
            out.display()
        );
    }
    let dir = match out.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create {} for the addresses file", dir.display()))?;
    tempfile::NamedTempFile::new_in(&dir)
        .with_context(|| format!("cannot write the addresses file in {}", dir.display()))?;
    Ok(())
}
