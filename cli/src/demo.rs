//! `insitu demo`: the whole system on a local chain. It starts anvil (a block a second), deploys the
//! suite, starts the provider's keeper as its own process (with compute in its sandbox) and the
//! catalog as another, publishes a sample dataset, finds it with a catalog search, buys it,
//! downloads it (its SHA-256 checked); publishes a second dataset that may only be computed on,
//! finds it too, buys compute on it with the sample algorithm (summary statistics), downloads the
//! result, and orders a job that runs out of memory; then makes an access purchase that the
//! provider never delivers, and has the consumer refunded after the time out, as is the failed
//! job's. Anvil, the keeper and the catalog are stopped on exit and on Ctrl-C.

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
    catalog::{CatalogClient, SearchQuery},
    compute,
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
/// The demo's compute price: 40 tokens.
const COMPUTE_PRICE: u128 = 40_000_000_000_000_000_000;
/// The sample algorithm: summary statistics of CSV files.
const SUMMARY_ALGORITHM: &[u8] = include_bytes!("../../examples/algorithms/summary.py");
/// An algorithm that allocates until it is killed.
const MEMORY_BOMB: &[u8] = b"chunks = []\nwhile True:\n    chunks.append(bytearray(16 << 20))\n";

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
    /// The compute-only asset.
    pub(crate) compute_did: B256,
    /// The compute agreement whose job succeeded.
    pub(crate) compute_agreement: B256,
    /// The result the consumer downloaded (summary statistics, JSON).
    pub(crate) compute_result: serde_json::Value,
    /// The failed job's agreement.
    pub(crate) failed_compute_agreement: B256,
    /// The job's result was downloaded by the consumer, its SHA-256 checked, and holds the
    /// statistics of the whole dataset.
    pub(crate) compute_result_delivered: bool,
    /// The compute agreement's payment was released (after the result's registration).
    pub(crate) compute_escrow_released: bool,
    /// The job that ran out of memory failed, and its payment was refunded after the time out.
    pub(crate) compute_failed_job_refunded: bool,
    /// Blocks from the compute purchase to the release.
    pub(crate) blocks_lock_to_release_compute: u64,
    /// The catalog found each published dataset by a search before it was bought.
    pub(crate) catalog_search_found: bool,
    /// Assets the catalog indexed as valid by the end (the datasets and the compute result).
    pub(crate) catalog_indexed_assets: u64,
    /// What the searches found: (query, names of the results).
    pub(crate) catalog_searches: Vec<(String, Vec<String>)>,
}

/// A service (the keeper, the catalog) running as a child process, killed when dropped.
pub(crate) struct ServiceProcess {
    child: Child,
}

impl ServiceProcess {
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

impl Drop for ServiceProcess {
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
    // 1. The operator deploys the suite (timelock without delay on a dev chain, 1% fee).
    let chain = local_chain(root, 5, 0, 4, log).await?;
    let (devnet, provider, suite) = (&chain.devnet, chain.provider.clone(), &chain.suite);
    let [operator, publisher, keeper_key, consumer, fee_receiver] = &chain.keys[..] else {
        bail!("anvil gave fewer than five accounts");
    };
    let addresses = chain.addresses.clone();
    let as_sender = |key: &PrivateKeySigner| chain.sender(key);
    let mut steps: Vec<(String, B256)> = Vec::new();

    // 2. A demo token, the consumer funded.
    let operator_sender = as_sender(operator);
    let token = deploy_token(
        &operator_sender,
        consumer.address(),
        U256::from(PRICE) * U256::from(4),
        "consumer is given 1000 DUSD",
        &mut steps,
    )
    .await?;

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
             data_root = \"{}\"\npublishers = [\"{}\"]\n\n[compute]\nwork_root = \"{}\"\n\
             grace_secs = 2\n",
            devnet.endpoint(),
            addresses.display(),
            root.join("keeper.db").display(),
            data.display(),
            publisher.address(),
            root.join("compute").display()
        ),
    )?;
    let mut keeper = start_keeper(&config, keeper_key, &root.join("keeper.log"))?;
    let keeper_url = format!("http://127.0.0.1:{port}");
    wait_ready(&keeper_url, "/ready").await?;
    log(&format!(
        "keeper {} running as its own process at {keeper_url}",
        keeper_key.address()
    ));
    let catalog_port = free_port()?;
    let catalog_config = root.join("catalog.toml");
    std::fs::write(
        &catalog_config,
        format!(
            "listen = \"127.0.0.1:{catalog_port}\"\ndatabase = \"{}\"\npoll_interval_ms = 250\n\n\
             [[chains]]\nrpc_url = \"{}\"\naddresses = \"{}\"\nconfirmations = 1\n\n\
             # The keeper serving the metadata documents is on this machine.\n\
             [outbound]\nallow = [\"127.0.0.0/8\"]\n",
            root.join("catalog.db").display(),
            devnet.endpoint(),
            addresses.display(),
        ),
    )?;
    let mut catalog_process = start_service(
        "insitu-catalog",
        "INSITU_CATALOG_BIN",
        &["run", "--config"],
        &catalog_config,
        &[],
        &root.join("catalog.log"),
    )?;
    let catalog_url = format!("http://127.0.0.1:{catalog_port}");
    wait_ready(&catalog_url, "/health").await?;
    let catalog = CatalogClient::new(&catalog_url);
    log(&format!(
        "catalog running as its own process at {catalog_url}, indexing the chain"
    ));
    let mut catalog_searches = Vec::new();

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
        suite,
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
    let access_found = find_in_catalog(
        &catalog,
        "air quality",
        published.did,
        log,
        &mut catalog_searches,
    )
    .await?;

    // 5. The consumer buys it on the keeper's signed offer, then downloads it.
    let consumer_sender = as_sender(consumer);
    let buy = || {
        market::buy(
            suite,
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
        market::download(suite, &consumer_sender, served, 0, &out, &mut ignore).await?;
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
    let shown = agreement::show(suite, served, None).await?;
    let access_escrow_released = shown.payment_condition().map(|condition| condition.state)
        == Some(ConditionState::Released);
    let (lock_block, release_block, settlement) =
        lock_and_release(suite, served, bought.transaction).await?;
    steps.push((
        "keeper grants access and releases the escrow".into(),
        settlement,
    ));

    // 6. Compute in situ: a dataset that may not be downloaded, only computed on.
    let visits = data.join("visits.csv");
    let visits_content = sample_visits();
    std::fs::write(&visits, &visits_content)?;
    let compute_source = serde_json::to_vec_pretty(&serde_json::json!({
        "@context": "https://schema.org",
        "@type": "Dataset",
        "schemaVersion": "insitu-metadata/1",
        "name": "Hospital visits (sample, compute only)",
        "description": "One row per visit: age, ward, length of stay. Never downloadable.",
        "author": "insitu demo",
        "license": "LicenseRef-compute-only",
        "files": [{
            "name": "visits.csv",
            "contentType": "text/csv",
            "contentSize": visits_content.len(),
            "sha256": hex::encode(Sha256::digest(&visits_content)),
            "location": format!("file://{}", visits.display()),
        }],
        "services": [{
            "type": "compute",
            "token": token.to_string(),
            "price": [{"receiver": publisher.address().to_string(), "amount": COMPUTE_PRICE.to_string()}],
            "timeout": {"min": 3600, "max": 86400},
            "compute": {
                "algorithms": {"any": true},
                "runtimes": ["python3"],
                "limits": {"wallSecs": 120, "memoryMb": 128, "cpuPercent": 100, "pids": 32,
                           "outputMb": 8, "tmpMb": 16, "logKb": 256},
                "logs": "consumer",
                "resultRetentionDays": 7
            }
        }]
    }))?;
    let compute_asset = market::publish(
        suite,
        &as_sender(publisher),
        &keeper_client,
        &compute_source,
        B256::from(rand::random::<[u8; 32]>()),
        &Silent,
    )
    .await?;
    steps.push((
        "provider publishes a compute-only dataset".into(),
        compute_asset.transaction,
    ));
    log(&format!(
        "published compute-only asset {}",
        compute_asset.did
    ));
    let compute_found = find_in_catalog(
        &catalog,
        "hospital visits",
        compute_asset.did,
        log,
        &mut catalog_searches,
    )
    .await?;
    let buy_compute = || {
        market::buy(
            suite,
            &consumer_sender,
            compute_asset.did,
            ServiceKind::Compute,
            SERVICE_TIMEOUT,
            &Silent,
        )
    };
    let compute_bought = buy_compute().await?;
    if let Some(approval) = compute_bought.approval {
        steps.push(("consumer approves the compute price".into(), approval));
    }
    steps.push((
        "consumer buys compute on it".into(),
        compute_bought.transaction,
    ));
    let compute_id = compute_bought.quote.agreement_id;
    let order = compute::Order {
        algorithm: compute::Algorithm::File(SUMMARY_ALGORITHM.to_vec()),
        runtime: "python3".into(),
        params: [("columns".to_owned(), "age,stay_days".to_owned())].into(),
    };
    compute::submit(suite, &consumer_sender, compute_id, &order).await?;
    log("ordered the job: examples/algorithms/summary.py on the visits, in the keeper's sandbox");
    let mut phases = Vec::new();
    let finished = compute::follow(
        suite,
        &consumer_sender,
        compute_id,
        &[],
        Duration::from_millis(500),
        &mut |status: &compute::JobStatus| phases.push(status.phase.clone()),
    )
    .await?;
    log(&format!("  its phases: {}", phases.join(" -> ")));
    if finished.phase != "done" {
        bail!(
            "the demo's job ended {}: {}",
            finished.phase,
            finished.reason.unwrap_or_default()
        );
    }
    let result_file = root.join("summary.json");
    let mut ignore = |_| {};
    let fetched = compute::download_result(
        suite,
        &consumer_sender,
        compute_id,
        0,
        &result_file,
        &mut ignore,
    )
    .await?;
    let compute_result: serde_json::Value = serde_json::from_slice(&std::fs::read(&result_file)?)?;
    let rows = visits_content.iter().filter(|byte| **byte == b'\n').count() - 1;
    let compute_result_delivered = compute_result["visits.csv"]["rows"] == rows
        && compute_result["visits.csv"]["columns"]["age"]["count"] == rows;
    log(&format!(
        "downloaded the result ({} bytes, SHA-256 checked): mean age {:.1}, mean stay {:.2} days over {rows} visits",
        fetched.bytes,
        compute_result["visits.csv"]["columns"]["age"]["mean"]
            .as_f64()
            .unwrap_or_default(),
        compute_result["visits.csv"]["columns"]["stay_days"]["mean"]
            .as_f64()
            .unwrap_or_default(),
    ));
    let compute_escrow_released = agreement::show(suite, compute_id, None)
        .await?
        .payment_condition()
        .map(|condition| condition.state)
        == Some(ConditionState::Released);
    let (compute_lock, compute_release, compute_settlement) =
        lock_and_release(suite, compute_id, compute_bought.transaction).await?;
    for (what, hash) in registrations(suite, compute_id, compute_lock).await? {
        steps.push((what, hash));
    }
    steps.push((
        "keeper fulfils compute and releases the escrow".into(),
        compute_settlement,
    ));

    // A job past its memory limit fails; its payment comes back after the time out.
    let failing_bought = buy_compute().await?;
    if let Some(approval) = failing_bought.approval {
        steps.push(("consumer approves again".into(), approval));
    }
    steps.push((
        "consumer buys compute for a job that fails".into(),
        failing_bought.transaction,
    ));
    let failing_id = failing_bought.quote.agreement_id;
    let bomb = compute::Order {
        algorithm: compute::Algorithm::File(MEMORY_BOMB.to_vec()),
        runtime: "python3".into(),
        params: Default::default(),
    };
    compute::submit(suite, &consumer_sender, failing_id, &bomb).await?;
    let failed = compute::follow(
        suite,
        &consumer_sender,
        failing_id,
        &[],
        Duration::from_millis(500),
        &mut |_| {},
    )
    .await?;
    log(&format!(
        "a job allocating without end: {} ({})",
        failed.phase,
        failed.reason.clone().unwrap_or_default()
    ));

    // 7. A second purchase; the provider goes away and never delivers.
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
    let refund = payments::refund(suite, &consumer_sender, refunded_id, &Silent).await?;
    if let Some(abort) = refund.abort_transaction {
        steps.push(("the timed-out service is aborted".into(), abort));
    }
    steps.push(("consumer is refunded".into(), refund.transaction));
    let refund_after_timeout = agreement::show(suite, refunded_id, None)
        .await?
        .payment_condition()
        .map(|condition| condition.state)
        == Some(ConditionState::Refunded);
    log(&format!(
        "refunded {} to the consumer after the time out",
        refund.amount
    ));
    let failed_refund = payments::refund(suite, &consumer_sender, failing_id, &Silent).await?;
    if let Some(abort) = failed_refund.abort_transaction {
        steps.push(("the failed job's service is aborted".into(), abort));
    }
    steps.push((
        "consumer is refunded for the failed job".into(),
        failed_refund.transaction,
    ));
    let compute_failed_job_refunded = failed.phase == "failed"
        && agreement::show(suite, failing_id, None)
            .await?
            .payment_condition()
            .map(|condition| condition.state)
            == Some(ConditionState::Refunded);
    log(&format!(
        "refunded {} for the failed job",
        failed_refund.amount
    ));
    let fees = payments::withdraw_fees(
        suite,
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

    // 8. Gas and balances, from the chain.
    let report_steps = with_receipts(&provider, steps).await?;
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
    // The catalog indexes the compute result too (registered for the consumer by the keeper).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut catalog_indexed_assets = 0;
    while Instant::now() < deadline {
        let status = catalog.status().await?;
        catalog_indexed_assets = status.chains.iter().map(|chain| chain.valid).sum();
        if catalog_indexed_assets >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    log(&format!(
        "the catalog indexed {catalog_indexed_assets} assets (the two datasets and the compute result)"
    ));
    catalog_process.stop();
    Ok(Report {
        steps: report_steps,
        deployment_transactions: chain.deployment_transactions,
        did: published.did,
        served_agreement: served,
        refunded_agreement: refunded_id,
        balances,
        access_delivered,
        access_escrow_released,
        refund_after_timeout,
        blocks_lock_to_release_access: release_block.saturating_sub(lock_block),
        compute_did: compute_asset.did,
        compute_agreement: compute_id,
        compute_result,
        failed_compute_agreement: failing_id,
        compute_result_delivered,
        compute_escrow_released,
        compute_failed_job_refunded,
        blocks_lock_to_release_compute: compute_release.saturating_sub(compute_lock),
        catalog_search_found: access_found && compute_found,
        catalog_indexed_assets,
        catalog_searches,
    })
}

/// Searches the catalog for `words` until `did` is among the results (the catalog indexes a
/// block after it is confirmed, then fetches the document), for up to a minute; logs what it
/// found.
async fn find_in_catalog(
    catalog: &CatalogClient,
    words: &str,
    did: B256,
    log: &dyn Fn(&str),
    searches: &mut Vec<(String, Vec<String>)>,
) -> Result<bool> {
    let query = SearchQuery {
        q: Some(words.to_owned()),
        ..SearchQuery::default()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let page = catalog.search(&query).await?;
        let found = page.results.iter().any(|result| result.did == did);
        if found || Instant::now() >= deadline {
            let names: Vec<String> = page
                .results
                .iter()
                .map(|result| {
                    let prices: Vec<String> = result
                        .services
                        .iter()
                        .map(|service| format!("{} {}", service.kind, service.price))
                        .collect();
                    format!("{} ({})", result.name, prices.join(", "))
                })
                .collect();
            log(&format!(
                "catalog search {words:?}: {} found: {}",
                page.total,
                names.join("; ")
            ));
            searches.push((words.to_owned(), names));
            return Ok(found);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The keeper's registration of the result of compute agreement `id` and its record of the
/// input's use, after block `from` (to show them as steps).
async fn registrations(suite: &Suite, id: B256, from: u64) -> Result<Vec<(String, B256)>> {
    use alloy::sol_types::SolEvent;
    let provider = suite.provider();
    let mut found = Vec::new();
    for (what, signature) in [
        (
            "keeper registers the result, owned by the consumer",
            insitu_bindings::AssetRegistry::WasGeneratedBy::SIGNATURE_HASH,
        ),
        (
            "keeper records the input's use",
            insitu_bindings::AssetRegistry::Used::SIGNATURE_HASH,
        ),
    ] {
        let filter = alloy::rpc::types::Filter::new()
            .address(suite.addresses.asset_registry)
            .event_signature(signature)
            .topic2(id)
            .from_block(from)
            .to_block(BlockNumberOrTag::Latest);
        if let Some(log) = provider.get_logs(&filter).await?.into_iter().next() {
            found.push((what.to_owned(), log.transaction_hash.unwrap_or_default()));
        }
    }
    Ok(found)
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

/// A local chain with the suite deployed.
pub(crate) struct LocalChain {
    /// The anvil node (stopped when dropped).
    pub(crate) devnet: Devnet,
    /// Its first funded accounts.
    pub(crate) keys: Vec<PrivateKeySigner>,
    /// A connection to it.
    pub(crate) provider: alloy::providers::DynProvider,
    /// The deployed suite.
    pub(crate) suite: Suite,
    /// Its addresses file.
    pub(crate) addresses: PathBuf,
    /// Transactions the deployment took.
    pub(crate) deployment_transactions: usize,
}

impl LocalChain {
    /// A sender for `key` on this chain.
    pub(crate) fn sender(&self, key: &PrivateKeySigner) -> Sender {
        Sender::new(
            self.provider.clone(),
            self.devnet.chain_id(),
            key.clone(),
            TxOptions::default(),
        )
    }
}

/// Starts anvil (a block a second), takes its first `accounts` accounts and deploys the suite
/// from account `operator` (a timelock without delay, as on a development chain) with a 1%
/// network fee to account `fee_receiver`; the addresses file is written beneath `root`.
pub(crate) async fn local_chain(
    root: &Path,
    accounts: usize,
    operator: usize,
    fee_receiver: usize,
    log: &dyn Fn(&str),
) -> Result<LocalChain> {
    let devnet =
        Devnet::start_with(|anvil| anvil.block_time(1)).context("starting the local anvil node")?;
    log(&format!(
        "local chain {} at {} (a block a second)",
        devnet.chain_id(),
        devnet.endpoint()
    ));
    let keys: Vec<PrivateKeySigner> = devnet.signers().into_iter().take(accounts).collect();
    let (Some(operator), Some(fee_receiver)) = (keys.get(operator), keys.get(fee_receiver)) else {
        bail!("anvil gave fewer than {accounts} accounts");
    };
    let endpoint = Endpoint::parse(&devnet.endpoint())?;
    let connection = rpc::connect(&endpoint, Some(devnet.chain_id())).await?;
    let provider = connection.provider.clone();
    let (deployed, _) = deploy_suite(
        &Sender::new(
            provider.clone(),
            devnet.chain_id(),
            operator.clone(),
            TxOptions::default(),
        ),
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
    let addresses = root.join(format!("deployments/{}.json", devnet.chain_id()));
    deployed.deployment.write(&addresses)?;
    let suite = Suite::open(connection, &addresses).await?;
    log(&format!(
        "deployed the suite in {} transactions",
        deployed.transactions.len()
    ));
    Ok(LocalChain {
        devnet,
        keys,
        provider,
        suite,
        addresses,
        deployment_transactions: deployed.transactions.len(),
    })
}

/// Deploys the demo token (Demo USD, 18 decimals) from `operator` and mints `amount` to `to`;
/// records both transactions in `steps`, the mint as `minted`.
pub(crate) async fn deploy_token(
    operator: &Sender,
    to: alloy::primitives::Address,
    amount: U256,
    minted: &str,
    steps: &mut Vec<(String, B256)>,
) -> Result<alloy::primitives::Address> {
    let mut create = MockERC20::BYTECODE.to_vec();
    create.extend(
        MockERC20::constructorCall {
            name_: "Demo USD".into(),
            symbol_: "DUSD".into(),
            decimals_: 18,
        }
        .abi_encode(),
    );
    let receipt = operator
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
    let receipt = operator
        .send(
            "mint",
            TransactionRequest::default()
                .with_to(token)
                .with_input(MockERC20::mintCall { to, amount }.abi_encode()),
            &Silent,
        )
        .await?;
    steps.push((minted.to_owned(), receipt.transaction_hash));
    Ok(token)
}

/// Each step's block and gas, from its receipt.
pub(crate) async fn with_receipts(
    provider: &impl Provider,
    steps: Vec<(String, B256)>,
) -> Result<Vec<Step>> {
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
    Ok(report_steps)
}

pub(crate) fn start_keeper(
    config: &Path,
    key: &PrivateKeySigner,
    log: &Path,
) -> Result<ServiceProcess> {
    let key = hex::encode(key.to_bytes());
    start_service(
        "insitu-keeper",
        "INSITU_KEEPER_BIN",
        &["--config"],
        config,
        &[("INSITU_KEEPER_PRIVATE_KEY", key.as_str())],
        log,
    )
}

/// Starts service `name` (found next to this program, or at `$bin_var`) with `args` and
/// `config`, its logs to `log`.
fn start_service(
    name: &str,
    bin_var: &str,
    args: &[&str],
    config: &Path,
    env: &[(&str, &str)],
    log: &Path,
) -> Result<ServiceProcess> {
    let binary = std::env::var_os(bin_var)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::current_exe()
                .map(|exe| exe.with_file_name(name))
                .unwrap_or_else(|_| PathBuf::from(name))
        });
    let log_file = std::fs::File::create(log)?;
    let child = Command::new(&binary)
        .args(args)
        .arg(config)
        .envs(env.iter().copied())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .with_context(|| {
            format!(
                "starting {} (build it: cargo build -p {name}, or set {bin_var})",
                binary.display()
            )
        })?;
    Ok(ServiceProcess { child })
}

pub(crate) async fn wait_ready(url: &str, path: &str) -> Result<()> {
    let http = reqwest_client();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(response) = http.get(format!("{url}{path}")).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("the service at {url} did not become ready within 60 s")
}

fn reqwest_client() -> reqwest::Client {
    reqwest::Client::new()
}

pub(crate) fn free_port() -> Result<u16> {
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

/// About 1,500 hospital visits: age, ward, length of stay (deterministic).
fn sample_visits() -> Vec<u8> {
    let mut csv = String::from("age,ward,stay_days\n");
    for visit in 0..1_500_u32 {
        let age = 18 + (visit * 37) % 73;
        let ward = ["cardiology", "maternity", "orthopaedics", "oncology"][(visit % 4) as usize];
        let stay = 1 + (visit * 13 + age) % 9;
        csv.push_str(&format!("{age},{ward},{stay}.{}\n", visit % 10));
    }
    csv.into_bytes()
}
