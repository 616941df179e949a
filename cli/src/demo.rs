//! `insitu demo`: the whole system on a local chain. It starts anvil (a block a second), deploys the
//! suite, starts the provider's keeper as its own process, publishes a sample dataset, buys it,
//! downloads it (its SHA-256 checked), then makes a second purchase that the provider never
//! delivers, and has the consumer refunded after the time out. Anvil and the keeper are stopped
//! on exit and on Ctrl-C.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use alloy::{
    eips::BlockNumberOrTag,
    network::TransactionBuilder,
    primitives::{B256, U256, hex},
    providers::Provider,
    rpc::types::TransactionRequest,
    signers::local::PrivateKeySigner,
    sol_types::{SolCall, SolConstructor},
};
use anyhow::{Context, Result, bail};
use insitu_bindings::{
    MockERC20,
    deployment::{DeployOptions, Governance},
};
use insitu_client::{
    agreement::{self, ConditionState},
    deploy::deploy_suite,
    devnet::Devnet,
    market::{self, KeeperClient},
    metadata::ServiceKind,
    payments,
    rpc::{self, Endpoint},
    suite::Suite,
    tx::{Sender, Silent, TxOptions},
};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The demo's price: 250 tokens of 18 decimals.
const PRICE: u128 = 250_000_000_000_000_000_000;
/// Network fee: 1%.
const FEE_BPS: u16 = 100;
/// The service time out the consumer picks: one hour.
const SERVICE_TIMEOUT: u32 = 3_600;

/// One transaction of the demo.
#[derive(Debug, Serialize)]
pub(crate) struct Step {
    /// What it did.
    pub(crate) step: String,
    /// Its hash.
    pub(crate) transaction: B256,
    /// Its block.
    pub(crate) block: u64,
    /// Gas it used.
    pub(crate) gas: u64,
}

/// What the demo did.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    /// The transactions after the deployment, in order.
    pub(crate) steps: Vec<Step>,
    /// Transactions of the deployment.
    pub(crate) deployment_transactions: usize,
    /// The asset.
    pub(crate) did: B256,
    /// The agreement that was served.
    pub(crate) served_agreement: B256,
    /// The agreement that was refunded.
    pub(crate) refunded_agreement: B256,
    /// Token balances at the end: (party, balance).
    pub(crate) balances: Vec<(String, U256)>,
    /// The download matched the document's SHA-256.
    pub(crate) access_delivered: bool,
    /// The served agreement's payment was released.
    pub(crate) access_escrow_released: bool,
    /// The unserved agreement's payment was refunded after its time out.
    pub(crate) refund_after_timeout: bool,
    /// Blocks from the purchase (payment into escrow) to the release, served agreement.
    pub(crate) blocks_lock_to_release_access: u64,
}

/// A child process killed when dropped.
struct KeeperProcess {
    child: Child,
}

impl KeeperProcess {
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for KeeperProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs the demo, telling `log` what happens.
pub(crate) async fn run(log: &dyn Fn(&str)) -> Result<Report> {
    let work = tempfile::tempdir().context("creating the demo's folder")?;
    let root = work.path();
    let devnet =
        Devnet::start_with(|anvil| anvil.block_time(1)).context("starting the local anvil node")?;
    log(&format!(
        "local chain {} at {} (a block a second)",
        devnet.chain_id(),
        devnet.endpoint()
    ));
    let keys: Vec<PrivateKeySigner> = devnet.signers().into_iter().take(5).collect();
    let [operator, publisher, keeper_key, consumer, fee_receiver] = &keys[..] else {
        bail!("anvil gave fewer than five accounts");
    };
    let endpoint = Endpoint::parse(&devnet.endpoint())?;
    let connection = rpc::connect(&endpoint, Some(devnet.chain_id())).await?;
    let provider = connection.provider.clone();
    let as_sender = |key: &PrivateKeySigner| {
        Sender::new(provider.clone(), 31_337, key.clone(), TxOptions::default())
    };
    let mut steps: Vec<(String, B256)> = Vec::new();

    // 1. The operator deploys the suite (timelock without delay on a dev chain, 1% fee).
    let (deployed, _) = deploy_suite(
        &as_sender(operator),
        DeployOptions {
            governance: Governance::Timelock {
                proposer: operator.address(),
                delay: 0,
            },
            admin_transfer_delay: 0,
            network_fee: Some((fee_receiver.address(), FEE_BPS)),
        },
        None,
        &Silent,
    )
    .await?;
    let addresses = root.join("deployments/31337.json");
    deployed.deployment.write(&addresses)?;
    let suite = Suite::open(connection.clone(), &addresses).await?;
    log(&format!(
        "deployed the suite in {} transactions",
        deployed.transactions.len()
    ));

    // 2. A demo token, the consumer funded.
    let operator_sender = as_sender(operator);
    let mut create = MockERC20::BYTECODE.to_vec();
    create.extend(
        MockERC20::constructorCall {
            name_: "Demo USD".into(),
            symbol_: "DUSD".into(),
            decimals_: 18,
        }
        .abi_encode(),
    );
    let receipt = operator_sender
        .send(
            "deploy the demo token",
            TransactionRequest::default().with_deploy_code(create),
            &Silent,
        )
        .await?;
    let token = receipt
        .contract_address
        .context("the token deployment created no contract")?;
    steps.push((
        "operator deploys a demo token".into(),
        receipt.transaction_hash,
    ));
    let receipt = operator_sender
        .send(
            "mint",
            TransactionRequest::default().with_to(token).with_input(
                MockERC20::mintCall {
                    to: consumer.address(),
                    amount: U256::from(PRICE) * U256::from(4),
                }
                .abi_encode(),
            ),
            &Silent,
        )
        .await?;
    steps.push((
        "consumer is given 1000 DUSD".into(),
        receipt.transaction_hash,
    ));

    // 3. The provider's data and keeper.
    let data = root.join("data");
    std::fs::create_dir_all(&data)?;
    let sample = data.join("air-quality.csv");
    let content = sample_dataset();
    std::fs::write(&sample, &content)?;
    let sha256 = hex::encode(Sha256::digest(&content));
    let port = free_port()?;
    let config = root.join("keeper.toml");
    std::fs::write(
        &config,
        format!(
            "rpc_url = \"{}\"\nchain_id = 31337\naddresses = \"{}\"\nconfirmations = 1\n\
             poll_interval_ms = 250\nlisten = \"127.0.0.1:{port}\"\ndatabase = \"{}\"\n\
             data_root = \"{}\"\npublishers = [\"{}\"]\n",
            devnet.endpoint(),
            addresses.display(),
            root.join("keeper.db").display(),
            data.display(),
            publisher.address()
        ),
    )?;
    let mut keeper = start_keeper(&config, keeper_key, &root.join("keeper.log"))?;
    let keeper_url = format!("http://127.0.0.1:{port}");
    wait_ready(&keeper_url).await?;
    log(&format!(
        "keeper {} running as its own process at {keeper_url}",
        keeper_key.address()
    ));

    // 4. The provider publishes the dataset at its keeper.
    let source = serde_json::to_vec_pretty(&serde_json::json!({
        "@context": "https://schema.org",
        "@type": "Dataset",
        "schemaVersion": "insitu-metadata/1",
        "name": "Hourly air quality (sample)",
        "description": "PM2.5 and NO2 readings of four stations, one row per station and hour.",
        "author": "insitu demo",
        "license": "CC-BY-4.0",
        "keywords": ["air quality", "sample"],
        "files": [{
            "name": "air-quality.csv",
            "contentType": "text/csv",
            "contentSize": content.len(),
            "sha256": sha256,
            "location": format!("file://{}", sample.display()),
        }],
        "services": [{
            "type": "access",
            "token": token.to_string(),
            "price": [{"receiver": publisher.address().to_string(), "amount": PRICE.to_string()}],
            "timeout": {"min": 3600, "max": 86400},
            "accessWindow": 3600
        }]
    }))?;
    let keeper_client = KeeperClient::new(&keeper_url);
    let published = market::publish(
        &suite,
        &as_sender(publisher),
        &keeper_client,
        &source,
        B256::from(rand::random::<[u8; 32]>()),
        &Silent,
    )
    .await?;
    steps.push((
        "provider publishes the dataset (keeper serves)".into(),
        published.transaction,
    ));
    log(&format!(
        "published asset {} (metadata at {})",
        published.did, published.url
    ));

    // 5. The consumer buys it on the keeper's signed offer, then downloads it.
    let consumer_sender = as_sender(consumer);
    let buy = || {
        market::buy(
            &suite,
            &consumer_sender,
            published.did,
            ServiceKind::Access,
            SERVICE_TIMEOUT,
            &Silent,
        )
    };
    let bought = buy().await?;
    if let Some(approval) = bought.approval {
        steps.push(("consumer approves the quoted total".into(), approval));
    }
    steps.push((
        "consumer creates the agreement and pays".into(),
        bought.transaction,
    ));
    let served = bought.quote.agreement_id;
    log(&format!(
        "bought: agreement {served}, paid {} (price {} + fee {})",
        bought.quote.total, bought.quote.price, bought.quote.fee
    ));
    let out = root.join("downloaded.csv");
    let mut ignore = |_| {};
    let downloaded =
        market::download(&suite, &consumer_sender, served, 0, &out, &mut ignore).await?;
    let access_delivered = std::fs::read(&out)? == content && downloaded.sha256 == sha256;
    log(&format!(
        "downloaded {} bytes, SHA-256 {}",
        downloaded.bytes,
        if access_delivered {
            "matches"
        } else {
            "DOES NOT match"
        }
    ));
    let shown = agreement::show(&suite, served, None).await?;
    let access_escrow_released = shown.payment_condition().map(|condition| condition.state)
        == Some(ConditionState::Released);
    let (lock_block, release_block, settlement) =
        lock_and_release(&suite, served, bought.transaction).await?;
    steps.push((
        "keeper grants access and releases the escrow".into(),
        settlement,
    ));

    // 6. A second purchase; the provider goes away and never delivers.
    let second = buy().await?;
    if let Some(approval) = second.approval {
        steps.push(("consumer approves again".into(), approval));
    }
    steps.push(("consumer buys a second time".into(), second.transaction));
    keeper.stop();
    log("the keeper stops: the second purchase is never delivered");
    let refunded_id = second.quote.agreement_id;
    let _: serde_json::Value = provider
        .raw_request("evm_increaseTime".into(), [u64::from(SERVICE_TIMEOUT) + 1])
        .await?;
    let _: serde_json::Value = provider.raw_request("evm_mine".into(), ()).await?;
    let refund = payments::refund(&suite, &consumer_sender, refunded_id, &Silent).await?;
    if let Some(abort) = refund.abort_transaction {
        steps.push(("the timed-out service is aborted".into(), abort));
    }
    steps.push(("consumer is refunded".into(), refund.transaction));
    let refund_after_timeout = agreement::show(&suite, refunded_id, None)
        .await?
        .payment_condition()
        .map(|condition| condition.state)
        == Some(ConditionState::Refunded);
    log(&format!(
        "refunded {} to the consumer after the time out",
        refund.amount
    ));
    let fees = payments::withdraw_fees(
        &suite,
        &as_sender(fee_receiver),
        token,
        fee_receiver.address(),
        &Silent,
    )
    .await?;
    steps.push((
        "fee receiver withdraws the network fee".into(),
        fees.transaction,
    ));

    // 7. Gas and balances, from the chain.
    let mut report_steps = Vec::with_capacity(steps.len());
    for (step, hash) in steps {
        let receipt = provider
            .get_transaction_receipt(hash)
            .await?
            .with_context(|| format!("no receipt for {step}"))?;
        report_steps.push(Step {
            step,
            transaction: hash,
            block: receipt.block_number.unwrap_or_default(),
            gas: receipt.gas_used,
        });
    }
    let erc20 = MockERC20::new(token, &provider);
    let mut balances = Vec::new();
    for (party, address) in [
        ("consumer", consumer.address()),
        ("provider", publisher.address()),
        ("keeper", keeper_key.address()),
        ("fee receiver", fee_receiver.address()),
        ("escrow (payment condition)", suite.addresses.payment),
    ] {
        balances.push((party.to_owned(), erc20.balanceOf(address).call().await?));
    }
    Ok(Report {
        steps: report_steps,
        deployment_transactions: deployed.transactions.len(),
        did: published.did,
        served_agreement: served,
        refunded_agreement: refunded_id,
        balances,
        access_delivered,
        access_escrow_released,
        refund_after_timeout,
        blocks_lock_to_release_access: release_block.saturating_sub(lock_block),
    })
}

/// The block of the purchase, the block of the release and the release's transaction.
async fn lock_and_release(suite: &Suite, id: B256, purchase: B256) -> Result<(u64, u64, B256)> {
    let provider = suite.provider();
    let lock = provider
        .get_transaction_receipt(purchase)
        .await?
        .and_then(|receipt| receipt.block_number)
        .context("no receipt for the purchase")?;
    let filter = alloy::rpc::types::Filter::new()
        .address(suite.addresses.payment)
        .event_signature(
            <insitu_bindings::PaymentCondition::PaymentReleased as alloy::sol_types::SolEvent>::SIGNATURE_HASH,
        )
        .topic1(id)
        .from_block(lock)
        .to_block(BlockNumberOrTag::Latest);
    let log = provider
        .get_logs(&filter)
        .await?
        .into_iter()
        .next()
        .context("the payment was not released")?;
    Ok((
        lock,
        log.block_number.unwrap_or_default(),
        log.transaction_hash.unwrap_or_default(),
    ))
}

fn start_keeper(config: &Path, key: &PrivateKeySigner, log: &Path) -> Result<KeeperProcess> {
    let binary = std::env::var_os("INSITU_KEEPER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::current_exe()
                .map(|exe| exe.with_file_name("insitu-keeper"))
                .unwrap_or_else(|_| PathBuf::from("insitu-keeper"))
        });
    let log_file = std::fs::File::create(log)?;
    let child = Command::new(&binary)
        .arg("--config")
        .arg(config)
        .env("INSITU_KEEPER_PRIVATE_KEY", hex::encode(key.to_bytes()))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .with_context(|| {
            format!(
                "starting the keeper {} (build it: cargo build -p insitu-keeper, or set INSITU_KEEPER_BIN)",
                binary.display()
            )
        })?;
    Ok(KeeperProcess { child })
}

async fn wait_ready(url: &str) -> Result<()> {
    let http = reqwest_client();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(response) = http.get(format!("{url}/ready")).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("the keeper at {url} did not become ready within 60 s")
}

fn reqwest_client() -> reqwest::Client {
    reqwest::Client::new()
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// About 200 KB of CSV: four stations, hourly, for a month.
fn sample_dataset() -> Vec<u8> {
    let mut csv = String::from("station,hour,pm25,no2\n");
    for station in ["north", "south", "east", "west"] {
        for hour in 0..720_u32 {
            let pm25 = 8 + (hour * 7 + station.len() as u32 * 13) % 40;
            let no2 = 15 + (hour * 11 + station.len() as u32 * 5) % 60;
            csv.push_str(&format!("{station},{hour},{pm25},{no2}\n"));
        }
    }
    csv.into_bytes()
}
