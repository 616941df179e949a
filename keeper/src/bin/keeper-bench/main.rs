//! `keeper-bench`: N concurrent purchases against one keeper on anvil mining a block a second.
//!
//! It deploys the suite, starts a keeper (in this process, acting behind one confirmation) and
//! publishes one asset priced in ETH. Then two runs, with N consumers each:
//!
//! - **latency**: every consumer buys and downloads straight away, as `insitu buy` then `insitu
//!   download` would; the median number of blocks from an agreement's payment to its release is
//!   the keeper's latency.
//! - **throughput**: every consumer buys and signs its access request; once all purchases are
//!   confirmed, all requests are sent at once, right after a block, so the keeper has N requests
//!   to verify and N agreements to settle together. Timed from then to the last settlement seen
//!   mined, it is compared with the node's rate for N plain transfers from the keeper's key,
//!   signed beforehand and broadcast at once right after a block (the ceiling for any settlement
//!   rate), measured in the same run.
//!
//! Every agreement must be released exactly once, and the keeper must have sent exactly one
//! transaction per agreement (`exactly_once`). The last line is JSON: `agreements`, `settled`,
//! `exactly_once`, `seconds`, `agreements_per_second`, `median_blocks_lock_to_release`,
//! `confirmations`, `raw_tx_per_second`, `ratio`, `peak_rss_mb`.
//!
//! `--download [--file-size 2G]` measures delivery instead (see the `download` module): the
//! last line is JSON with `file_bytes`, `download_mb_per_s`, `direct_mb_per_s`, `ratio` and
//! `keeper_peak_rss_mb`.
//!
//! A benchmark, not a test: figures vary with the machine; compare ratios from one run.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

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

mod download;

/// Concurrent purchases against one keeper, or (`--download`) one large file delivered.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Number of purchases (one consumer each).
    #[arg(long, default_value_t = 200)]
    agreements: usize,
    /// Instead, deliver one file of `--file-size` through a keeper running as its own process,
    /// read it directly from storage in the same run, and compare the rates and the keeper's
    /// peak memory.
    #[arg(long)]
    download: bool,
    /// Size of the delivered file: bytes, or a number with K, M or G (powers of 1024).
    #[arg(long, default_value = "2G", value_parser = download::parse_size)]
    file_size: u64,
    /// Runs only a keeper with this configuration file (the download benchmark's keeper
    /// process); its key comes from `INSITU_KEEPER_PRIVATE_KEY`.
    #[arg(long, hide = true, value_name = "CONFIG")]
    serve_keeper: Option<std::path::PathBuf>,
}

/// A deployed suite on a fresh anvil, and a work folder.
pub(crate) struct World {
    pub(crate) devnet: Devnet,
    pub(crate) keys: Vec<PrivateKeySigner>,
    pub(crate) connection: rpc::Connection,
    pub(crate) suite: Suite,
    pub(crate) addresses: std::path::PathBuf,
    pub(crate) work: tempfile::TempDir,
}

impl World {
    /// Starts anvil with `accounts` funded accounts (mining a block every `block_time` seconds,
    /// or on each transaction) and deploys the suite.
    pub(crate) async fn deploy(accounts: usize, block_time: Option<u64>) -> Result<Self> {
        let count = accounts.to_string();
        let devnet = Devnet::start_with(|anvil| {
            let anvil = anvil.args(["--accounts", &count]).timeout(120_000);
            match block_time {
                Some(seconds) => anvil.block_time(seconds),
                None => anvil,
            }
        })
        .context("starting anvil")?;
        let keys: Vec<PrivateKeySigner> = devnet.signers();
        if keys.len() < accounts {
            bail!("anvil gave {} accounts, {accounts} needed", keys.len());
        }
        let endpoint = Endpoint::parse(&devnet.endpoint())?;
        let connection = rpc::connect(&endpoint, Some(31_337)).await?;
        eprintln!("deploying the suite...");
        let (deployed, _) = deploy_suite(
            &Sender::new(
                connection.provider.clone(),
                31_337,
                keys[0].clone(),
                TxOptions::default(),
            ),
            DeployOptions {
                governance: Governance::Timelock {
                    proposer: keys[0].address(),
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
        Ok(Self {
            devnet,
            keys,
            connection,
            suite,
            addresses,
            work,
        })
    }

    pub(crate) fn sender(&self, key: &PrivateKeySigner) -> Sender {
        Sender::new(
            self.connection.provider.clone(),
            31_337,
            key.clone(),
            TxOptions::default(),
        )
    }

    /// Publishes one file priced in ETH (paid to the publisher, keys[1]) at the keeper at `url`.
    pub(crate) async fn publish(
        &self,
        url: &str,
        file: &std::path::Path,
        size: u64,
        sha256: &str,
    ) -> Result<B256> {
        let publisher = &self.keys[1];
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
                "contentSize": size,
                "sha256": sha256,
                "location": format!("file://{}", file.display()),
            }],
            "services": [{
                "type": "access",
                "token": "0x0000000000000000000000000000000000000000",
                "price": [{"receiver": publisher.address().to_string(), "amount": "1000000000000000"}],
                "timeout": {"min": 3600, "max": 86400}
            }]
        }))?;
        Ok(market::publish(
            &self.suite,
            &self.sender(publisher),
            &KeeperClient::new(url),
            &source,
            B256::from(rand::random::<[u8; 32]>()),
            &Silent,
        )
        .await?
        .did)
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    // The keeper's logs, when asked for (`RUST_LOG=info`), on stderr.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Some(config) = &args.serve_keeper {
        return download::serve_keeper(config).await;
    }
    if args.download {
        return download::run(args.file_size).await;
    }
    let n = args.agreements.max(1);
    let world = World::deploy(n + 5, Some(1)).await?;
    let keys = &world.keys;
    let (publisher, keeper_key) = (&keys[1], &keys[2]);
    let consumers = &keys[5..5 + n];
    let (connection, suite) = (world.connection.clone(), world.suite.clone());
    let provider = connection.provider.clone();
    let work = &world.work;

    let data = work.path().join("data");
    std::fs::create_dir_all(&data)?;
    let content = vec![7_u8; 4_096];
    std::fs::write(data.join("file.bin"), &content)?;
    let config = Config {
        rpc_url: world.devnet.endpoint(),
        chain_id: 31_337,
        addresses: world.addresses.clone(),
        confirmations: CONFIRMATIONS,
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
    let did = world
        .publish(
            &keeper_url,
            &data.join("file.bin"),
            content.len() as u64,
            &sha,
        )
        .await?;

    let run = Arc::new(Run {
        suite: suite.clone(),
        provider: provider.clone(),
        connection: connection.clone(),
        did,
        out: work.path().to_path_buf(),
    });
    let keeper_nonce_before = provider.get_transaction_count(keeper_key.address()).await?;

    eprintln!("latency: {n} consumers each buy and download at once...");
    let latency = run.buy_and_download(consumers).await?;
    let blocks = run.blocks_lock_to_release(&latency.agreements).await?;
    let median = blocks.get(blocks.len() / 2).copied().unwrap_or_default();

    eprintln!("throughput: {n} consumers buy, then all send their requests at once...");
    let throughput = run
        .buy_then_request_together(consumers, &keeper_url)
        .await?;

    let all: Vec<B256> = latency
        .agreements
        .iter()
        .chain(&throughput.agreements)
        .copied()
        .collect();
    let releases = run.releases().await?;
    let settled = all
        .iter()
        .filter(|id| releases.iter().filter(|release| release == id).count() == 1)
        .count();
    let keeper_transactions =
        provider.get_transaction_count(keeper_key.address()).await? - keeper_nonce_before;
    let exactly_once = settled == all.len()
        && releases.len() == all.len()
        && keeper_transactions == all.len() as u64;
    keeper.stop().await;

    eprintln!("{n} plain transfers from the keeper's key, same node...");
    let raw = raw_transfer_rate(&provider, keeper_key, n).await?;
    let rss = peak_rss_mb(std::process::id());
    let per_second = throughput.settled as f64 / throughput.seconds;
    println!(
        "{} agreements: {} served, {settled} settled exactly once ({exactly_once}); latency run: median {median} blocks from payment to release; throughput run: {} settled in {:.2} s ({per_second:.2}/s); raw transfers {raw:.2}/s (ratio {:.2}); peak RSS {rss:.0} MB",
        all.len(),
        latency.served + throughput.served,
        throughput.settled,
        throughput.seconds,
        per_second / raw,
    );
    println!(
        "{}",
        serde_json::json!({
            "agreements": all.len(),
            "settled": settled,
            "exactly_once": exactly_once,
            "seconds": (throughput.seconds * 100.0).round() / 100.0,
            "agreements_per_second": (per_second * 100.0).round() / 100.0,
            "median_blocks_lock_to_release": median,
            "confirmations": CONFIRMATIONS,
            "raw_tx_per_second": (raw * 100.0).round() / 100.0,
            "ratio": (per_second / raw * 100.0).round() / 100.0,
            "peak_rss_mb": rss.round(),
        })
    );
    Ok(())
}

/// Blocks an event must be buried under before the keeper acts (its configuration).
const CONFIRMATIONS: u64 = 1;

/// What the phases share.
struct Run {
    suite: Suite,
    provider: alloy::providers::DynProvider,
    connection: rpc::Connection,
    did: B256,
    out: std::path::PathBuf,
}

/// One phase's outcome.
struct Phase {
    agreements: Vec<B256>,
    served: usize,
    /// Settlements mined within the timed window.
    settled: usize,
    /// The timed window.
    seconds: f64,
}

impl Run {
    fn sender(&self, key: &PrivateKeySigner) -> Sender {
        Sender::new(
            self.connection.provider.clone(),
            31_337,
            key.clone(),
            TxOptions::default(),
        )
    }

    async fn buy(&self, consumer: &PrivateKeySigner) -> Result<B256> {
        let bought = market::buy(
            &self.suite,
            &self.sender(consumer),
            self.did,
            ServiceKind::Access,
            0,
            &Silent,
        )
        .await?;
        Ok(bought.quote.agreement_id)
    }

    async fn download(&self, consumer: &PrivateKeySigner, id: B256) -> bool {
        let out = self.out.join(format!("{id}.bin"));
        let mut ignore = |_| {};
        market::download(
            &self.suite,
            &self.sender(consumer),
            id,
            0,
            &out,
            &mut ignore,
        )
        .await
        .is_ok()
    }

    /// Each consumer buys, then downloads straight away, as `insitu buy` then `insitu download`
    /// would: the keeper settles each agreement as its request comes.
    async fn buy_and_download(self: &Arc<Self>, consumers: &[PrivateKeySigner]) -> Result<Phase> {
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for (index, consumer) in consumers.iter().enumerate() {
            let (run, consumer) = (self.clone(), consumer.clone());
            tasks.spawn(async move {
                let id = run.buy(&consumer).await?;
                let served = run.download(&consumer, id).await;
                anyhow::Ok((index, id, served))
            });
        }
        let mut agreements = vec![B256::ZERO; consumers.len()];
        let mut served = 0;
        while let Some(joined) = tasks.join_next().await {
            let (index, id, ok) = joined??;
            agreements[index] = id;
            served += usize::from(ok);
        }
        Ok(Phase {
            settled: agreements.len(),
            agreements,
            served,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// Every consumer buys and signs its access request; once every purchase is buried under the
    /// confirmations, all requests are sent at once, right after a block (as the raw transfers
    /// are). Timed from then to the moment the last settlement is seen mined.
    async fn buy_then_request_together(
        self: &Arc<Self>,
        consumers: &[PrivateKeySigner],
        keeper_url: &str,
    ) -> Result<Phase> {
        let mut tasks = tokio::task::JoinSet::new();
        for (index, consumer) in consumers.iter().enumerate() {
            let (run, consumer) = (self.clone(), consumer.clone());
            tasks.spawn(async move { anyhow::Ok((index, run.buy(&consumer).await?)) });
        }
        let mut agreements = vec![B256::ZERO; consumers.len()];
        while let Some(joined) = tasks.join_next().await {
            let (index, id) = joined??;
            agreements[index] = id;
        }
        // Buried under the confirmations, and one block more for the keeper to have scanned it.
        let bought_at = self.provider.get_block_number().await?;
        while self.provider.get_block_number().await? < bought_at + CONFIRMATIONS + 1 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let deadline = self
            .provider
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await?
            .map(|block| block.header.timestamp)
            .unwrap_or_default()
            + 300;
        let mut bodies = Vec::with_capacity(consumers.len());
        for (consumer, id) in consumers.iter().zip(&agreements) {
            bodies.push(market::access_request(
                consumer,
                31_337,
                self.suite.addresses.access,
                self.did,
                *id,
                deadline,
            )?);
        }
        let http = reqwest::Client::new();
        let before = self.releases().await?.len();
        next_block(&self.provider).await?;
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for body in bodies {
            let request = http.post(format!("{keeper_url}/v1/access")).json(&body);
            tasks.spawn(async move {
                let response = request.send().await?;
                let served = response.status().is_success();
                response.bytes().await?;
                anyhow::Ok(served)
            });
        }
        // The last settlement mined: polled while the requests wait for their confirmations.
        let target = before + agreements.len();
        let give_up = Instant::now() + Duration::from_secs(600);
        let mut mined = before;
        while mined < target && Instant::now() < give_up {
            tokio::time::sleep(Duration::from_millis(20)).await;
            mined = self.releases().await?.len();
        }
        let seconds = started.elapsed().as_secs_f64();
        let mut served = 0;
        while let Some(joined) = tasks.join_next().await {
            served += usize::from(joined??);
        }
        Ok(Phase {
            agreements,
            served,
            settled: mined - before,
            seconds,
        })
    }

    /// The agreement of every `PaymentReleased` log so far, in order.
    async fn releases(&self) -> Result<Vec<B256>> {
        let logs = self
            .provider
            .get_logs(
                &Filter::new()
                    .address(self.suite.addresses.payment)
                    .event_signature(PaymentCondition::PaymentReleased::SIGNATURE_HASH)
                    .from_block(0),
            )
            .await?;
        Ok(logs
            .iter()
            .filter_map(|log| log.topics().get(1).copied())
            .collect())
    }

    /// Blocks from each agreement's creation (its payment locked in the same transaction) to its
    /// release, sorted.
    async fn blocks_lock_to_release(&self, agreements: &[B256]) -> Result<Vec<u64>> {
        let block_of = |address, signature| {
            let provider = self.provider.clone();
            async move {
                let logs = provider
                    .get_logs(
                        &Filter::new()
                            .address(address)
                            .event_signature(signature)
                            .from_block(0),
                    )
                    .await?;
                anyhow::Ok(
                    logs.into_iter()
                        .filter_map(|log| Some((*log.topics().get(1)?, log.block_number?)))
                        .collect::<std::collections::HashMap<B256, u64>>(),
                )
            }
        };
        let created = block_of(
            self.suite.addresses.agreement_store,
            insitu_bindings::AgreementStore::AgreementCreated::SIGNATURE_HASH,
        )
        .await?;
        let released = block_of(
            self.suite.addresses.payment,
            PaymentCondition::PaymentReleased::SIGNATURE_HASH,
        )
        .await?;
        let mut blocks: Vec<u64> = agreements
            .iter()
            .filter_map(|id| Some(released.get(id)? - created.get(id)?))
            .collect();
        blocks.sort_unstable();
        Ok(blocks)
    }
}

/// Returns as soon as a new block is seen (polled every 10 ms), so that the timed runs start at
/// the same point of the block interval.
async fn next_block(provider: &alloy::providers::DynProvider) -> Result<()> {
    let head = provider.get_block_number().await?;
    while provider.get_block_number().await? == head {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Transfers per second: `n` plain transfers signed with consecutive nonces, broadcast at once
/// right after a block, until the last one is mined.
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
    next_block(provider).await?;
    let started = Instant::now();
    for bytes in &raw {
        let _pending = provider.send_raw_transaction(bytes).await?;
    }
    let target = first + n as u64;
    while provider.get_transaction_count(key.address()).await? < target {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Peak resident memory of process `pid`, MB (Linux `VmHWM`; 0 elsewhere).
pub(crate) fn peak_rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
