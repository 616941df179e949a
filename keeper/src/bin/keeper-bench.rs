//! `keeper-bench`: N concurrent purchases against one keeper on anvil mining a block a second.
//!
//! It deploys the suite, starts a keeper (in this process), publishes one asset priced in ETH,
//! has N consumers buy it at once, then has all of them download at once: the keeper verifies N
//! requests and settles N agreements. The same run measures the node's rate for plain transfers
//! from the keeper's key, the ceiling any settlement rate is compared with. The last line is JSON:
//! `agreements`, `settled`, `seconds`, `agreements_per_second`, `median_blocks_lock_to_release`,
//! `raw_tx_per_second`, `peak_rss_mb`.
//!
//! A benchmark, not a test: figures vary with the machine; compare ratios from one run.

use std::time::{Duration, Instant};

use alloy::{
    eips::Encodable2718,
    network::{EthereumWallet, NetworkTransactionBuilder, TransactionBuilder},
    primitives::{B256, U256, hex},
    providers::Provider,
    rpc::types::{Filter, TransactionRequest},
    signers::local::PrivateKeySigner,
    sol_types::SolEvent,
};
use anyhow::{Context, Result, bail};
use clap::Parser;
use insitu_bindings::{
    PaymentCondition,
    deployment::{DeployOptions, Governance},
};
use insitu_client::{
    deploy::deploy_suite,
    devnet::Devnet,
    market::{self, KeeperClient},
    metadata::ServiceKind,
    rpc::{self, Endpoint},
    suite::Suite,
    tx::{Sender, Silent, TxOptions},
};
use insitu_keeper::{config::Config, service};

/// Concurrent purchases against one keeper.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Number of purchases (one consumer each).
    #[arg(long, default_value_t = 200)]
    agreements: usize,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let n = args.agreements.max(1);
    let accounts = (n + 5).to_string();
    let devnet = Devnet::start_with(|anvil| {
        anvil
            .block_time(1)
            .args(["--accounts", &accounts])
            .timeout(120_000)
    })
    .context("starting anvil")?;
    let keys: Vec<PrivateKeySigner> = devnet.signers();
    if keys.len() < n + 5 {
        bail!("anvil gave {} accounts, {} needed", keys.len(), n + 5);
    }
    let (operator, publisher, keeper_key) = (&keys[0], &keys[1], &keys[2]);
    let consumers = &keys[5..5 + n];
    let endpoint = Endpoint::parse(&devnet.endpoint())?;
    let connection = rpc::connect(&endpoint, Some(31_337)).await?;
    let provider = connection.provider.clone();
    let sender = |key: &PrivateKeySigner| {
        Sender::new(provider.clone(), 31_337, key.clone(), TxOptions::default())
    };

    eprintln!("deploying the suite (a block a second)...");
    let (deployed, _) = deploy_suite(
        &sender(operator),
        DeployOptions {
            governance: Governance::Timelock {
                proposer: operator.address(),
                delay: 0,
            },
            admin_transfer_delay: 0,
            network_fee: Some((keys[3].address(), 100)),
        },
        None,
        &Silent,
    )
    .await?;
    let work = tempfile::tempdir()?;
    let addresses = work.path().join("deployments/31337.json");
    deployed.deployment.write(&addresses)?;
    let suite = Suite::open(connection.clone(), &addresses).await?;

    let data = work.path().join("data");
    std::fs::create_dir_all(&data)?;
    let content = vec![7_u8; 4_096];
    std::fs::write(data.join("file.bin"), &content)?;
    let config = Config {
        rpc_url: devnet.endpoint(),
        chain_id: 31_337,
        addresses: addresses.clone(),
        confirmations: 1,
        poll_interval_ms: 200,
        listen: "127.0.0.1:0".to_owned(),
        database: work.path().join("keeper.db"),
        data_root: data.clone(),
        publishers: vec![publisher.address()],
        ..Config::default()
    };
    let keeper = service::start(&config, keeper_key.clone(), None).await?;
    let keeper_url = format!("http://{}", keeper.address);

    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&content))
    };
    let source = serde_json::to_vec(&serde_json::json!({
        "@context": "https://schema.org",
        "@type": "Dataset",
        "schemaVersion": "insitu-metadata/1",
        "name": "bench",
        "description": "bench",
        "author": "bench",
        "license": "MIT",
        "files": [{
            "name": "file.bin",
            "contentType": "application/octet-stream",
            "contentSize": content.len(),
            "sha256": sha,
            "location": format!("file://{}", data.join("file.bin").display()),
        }],
        "services": [{
            "type": "access",
            "token": "0x0000000000000000000000000000000000000000",
            "price": [{"receiver": publisher.address().to_string(), "amount": "1000000000000000"}],
            "timeout": {"min": 3600, "max": 86400}
        }]
    }))?;
    let did = market::publish(
        &suite,
        &sender(publisher),
        &KeeperClient::new(&keeper_url),
        &source,
        B256::from(rand::random::<[u8; 32]>()),
        &Silent,
    )
    .await?
    .did;

    eprintln!("{n} consumers buy at once...");
    let mut purchases = tokio::task::JoinSet::new();
    for (index, consumer) in consumers.iter().enumerate() {
        let (suite, consumer) = (suite.clone(), sender(consumer));
        purchases.spawn(async move {
            let bought = market::buy(&suite, &consumer, did, ServiceKind::Access, 0, &Silent).await;
            (index, bought)
        });
    }
    let mut agreements = vec![B256::ZERO; n];
    while let Some(result) = purchases.join_next().await {
        let (index, bought) = result?;
        agreements[index] = bought?.quote.agreement_id;
    }

    eprintln!("{n} consumers download at once (the keeper settles each agreement)...");
    let started = Instant::now();
    let mut downloads = tokio::task::JoinSet::new();
    for (index, consumer) in consumers.iter().enumerate() {
        let (suite, consumer) = (suite.clone(), sender(consumer));
        let id = agreements[index];
        let out = work.path().join(format!("out-{index}.bin"));
        downloads.spawn(async move {
            let mut ignore = |_| {};
            market::download(&suite, &consumer, id, 0, &out, &mut ignore).await
        });
    }
    let mut served = 0;
    while let Some(result) = downloads.join_next().await {
        if result?.is_ok() {
            served += 1;
        }
    }
    let seconds = started.elapsed().as_secs_f64();

    // Settlements and blocks from payment to release, from the chain's logs.
    let released = provider
        .get_logs(
            &Filter::new()
                .address(suite.addresses.payment)
                .event_signature(PaymentCondition::PaymentReleased::SIGNATURE_HASH)
                .from_block(0),
        )
        .await?;
    let created = provider
        .get_logs(
            &Filter::new()
                .address(suite.addresses.agreement_store)
                .event_signature(insitu_bindings::AgreementStore::AgreementCreated::SIGNATURE_HASH)
                .from_block(0),
        )
        .await?;
    let mut blocks: Vec<u64> = released
        .iter()
        .filter_map(|release| {
            let id = release.topics().get(1)?;
            let lock = created
                .iter()
                .find(|log| log.topics().get(1) == Some(id))?
                .block_number?;
            Some(release.block_number? - lock)
        })
        .collect();
    blocks.sort_unstable();
    let median = blocks.get(blocks.len() / 2).copied().unwrap_or_default();
    let settled = released.len();
    keeper.stop().await;

    eprintln!("{n} plain transfers from the keeper's key, same node...");
    let raw = raw_transfer_rate(&provider, keeper_key, n).await?;
    let rss = peak_rss_mb();
    let per_second = settled as f64 / seconds;
    println!(
        "agreements {n}, served {served}, settled {settled} in {seconds:.1} s ({per_second:.2}/s), median {median} blocks from payment to release; raw transfers {raw:.2}/s; peak RSS {rss:.0} MB"
    );
    println!(
        "{}",
        serde_json::json!({
            "agreements": n,
            "settled": settled,
            "seconds": (seconds * 10.0).round() / 10.0,
            "agreements_per_second": (per_second * 100.0).round() / 100.0,
            "median_blocks_lock_to_release": median,
            "raw_tx_per_second": (raw * 100.0).round() / 100.0,
            "peak_rss_mb": rss.round(),
        })
    );
    Ok(())
}

/// Transfers per second: `n` plain transfers signed with consecutive nonces, broadcast at once,
/// until the last one is mined.
async fn raw_transfer_rate(
    provider: &alloy::providers::DynProvider,
    key: &PrivateKeySigner,
    n: usize,
) -> Result<f64> {
    let wallet = EthereumWallet::from(key.clone());
    let first = provider.get_transaction_count(key.address()).await?;
    let fees = provider.estimate_eip1559_fees().await?;
    let mut raw = Vec::with_capacity(n);
    for offset in 0..n as u64 {
        let envelope = TransactionRequest::default()
            .with_to(key.address())
            .with_value(U256::from(1))
            .with_nonce(first + offset)
            .with_chain_id(31_337)
            .with_gas_limit(21_000)
            .with_max_fee_per_gas(fees.max_fee_per_gas * 2)
            .with_max_priority_fee_per_gas(fees.max_priority_fee_per_gas)
            .build(&wallet)
            .await?;
        raw.push(envelope.encoded_2718());
    }
    let started = Instant::now();
    for bytes in &raw {
        let _pending = provider.send_raw_transaction(bytes).await?;
    }
    let target = first + n as u64;
    while provider.get_transaction_count(key.address()).await? < target {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Peak resident memory of this process, MB (Linux `VmHWM`; 0 elsewhere).
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmHWM:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
