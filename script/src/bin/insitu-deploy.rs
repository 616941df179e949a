//! Deploys and wires the insitu contract suite on any EVM chain, and writes an addresses file.
//!
//! The deployer's key comes from the environment (`INSITU_DEPLOYER_KEY`, hex), never from the
//! command line, where other users of the machine could read it.

use std::path::PathBuf;

use alloy::{
    network::EthereumWallet,
    primitives::{Address, hex},
    providers::ProviderBuilder,
    signers::local::PrivateKeySigner,
};
use anyhow::{Context, Result, bail};
use clap::Parser;
use insitu_bindings::deployment::DeployOptions;
use insitu_script::deploy::deploy_suite;

/// Deploys the insitu contracts and approves the templates.
#[derive(Debug, Parser)]
#[command(name = "insitu-deploy", version)]
struct Args {
    /// JSON-RPC endpoint of the chain.
    #[arg(long, env = "INSITU_RPC_URL", default_value = "http://127.0.0.1:8545")]
    rpc_url: String,
    /// Account that governs templates and fees; the deployer when omitted. When it is not the
    /// deployer, the template approvals and the fee are printed for the governor to send.
    #[arg(long)]
    governor: Option<Address>,
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
        (bps, Some(receiver)) => Some((receiver, bps)),
        (_, None) => bail!("--fee-bps needs --fee-receiver"),
    };
    let options = DeployOptions {
        governor: args.governor.unwrap_or(deployer),
        network_fee,
    };
    let url = args
        .rpc_url
        .parse()
        .with_context(|| format!("invalid RPC URL {}", args.rpc_url))?;
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(signer))
        .connect_http(url);

    let deployed = deploy_suite(&provider, deployer, options, args.confirmations).await?;
    let out = args.out.unwrap_or_else(|| {
        PathBuf::from("deployments").join(format!("{}.json", deployed.deployment.chain_id))
    });
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
    if !deployed.plan.governor_calls.is_empty() {
        println!("the governor {} must still send:", options.governor);
        for call in &deployed.plan.governor_calls {
            if let alloy::primitives::TxKind::Call(to) = call.kind {
                println!(
                    "  {}: to {to} data 0x{}",
                    call.label,
                    hex::encode(&call.input)
                );
            }
        }
    }
    Ok(())
}
