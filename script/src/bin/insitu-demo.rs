//! The end-to-end demo: starts a local anvil node, deploys the suite (governed by a timelock
//! without delay), and runs one access agreement from publication and a keeper-signed offer to
//! payment, printing each step's gas and the final balances.

use anyhow::{Context, Result};
use insitu_script::{demo, devnet::Devnet};

#[tokio::main]
async fn main() -> Result<()> {
    let devnet = Devnet::start().context("starting the local anvil node")?;
    println!("local chain {} at {}", devnet.chain_id(), devnet.endpoint());
    let keys: Vec<_> = devnet
        .instance()
        .keys()
        .iter()
        .take(5)
        .map(|key| alloy::signers::local::PrivateKeySigner::from(key.clone()))
        .collect();
    let report = demo::run(&devnet.endpoint(), &keys).await?;

    println!("asset     {}", report.did);
    println!("agreement {}", report.agreement_id);
    println!(
        "quoted total {} DUSD (approved exactly; allowance left {})",
        demo::format_tokens(report.quoted_total),
        demo::format_tokens(report.allowance_left)
    );
    println!();
    println!("{:<44} {:>10}", "step", "gas");
    for (step, gas) in &report.steps {
        println!("{step:<44} {gas:>10}");
    }
    println!();
    println!("{:<44} {:>10}", "demo token balance", "DUSD");
    for (party, balance) in &report.balances {
        println!("{party:<44} {:>10}", demo::format_tokens(*balance));
    }
    println!();
    println!(
        "consumer holds access on chain: {}",
        if report.consumer_has_access {
            "yes"
        } else {
            "no"
        }
    );
    Ok(())
}
