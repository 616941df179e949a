//! The web page end to end, in headless Chromium (Debian's, driven by playwright-core from npm):
//! a real anvil, a real keeper serving a real file, the catalog, and a buyer whose browser wallet
//! forwards to anvil. The buyer searches, opens the asset, buys access and downloads the file; the
//! chain then shows the payment released to the provider. Screenshots go to
//! `target/screenshots/`; `script/test.sh` installs Chromium first (`script/browser-deps.sh`).

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use alloy::{
    network::EthereumWallet,
    primitives::{B256, U256},
    providers::ProviderBuilder,
    signers::local::PrivateKeySigner,
};
use insitu_bindings::deployment::{DeployOptions, Governance};
use insitu_catalog::{
    config::{ChainConfig, Config, OutboundConfig},
    service::Catalog,
};
use insitu_client::{
    agreement::{self, ConditionState},
    catalog::{CatalogClient, SearchQuery},
    deploy::deploy_suite,
    devnet::Devnet,
    market::{self, KeeperClient},
    rpc::{self, Endpoint},
    suite::Suite,
    tx::{Sender, Silent, TxOptions},
};
use sha2::Digest;

const NAME: &str = "Air quality of Lyon, hourly";
/// 250 tokens of 18 decimals.
const PRICE: u128 = 250_000_000_000_000_000_000;

fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("INSITU_CHROMIUM") {
        return PathBuf::from(path);
    }
    for candidate in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    panic!(
        "Chromium is missing: run script/browser-deps.sh (script/test.sh does), or set INSITU_CHROMIUM"
    );
}

#[tokio::test]
async fn a_buyer_with_a_browser_wallet_searches_buys_and_downloads() {
    let browser = chromium();
    let devnet = Devnet::start().expect("anvil");
    let keys: Vec<PrivateKeySigner> = devnet.signers();
    let (provider_key, keeper_key, consumer) = (&keys[1], &keys[2], &keys[3]);
    let endpoint = Endpoint::parse(&devnet.endpoint()).unwrap();
    let connection = rpc::connect(&endpoint, Some(31_337)).await.unwrap();
    let sender = |key: &PrivateKeySigner| {
        Sender::new(
            connection.provider.clone(),
            31_337,
            key.clone(),
            TxOptions::default(),
        )
    };
    let (deployed, _) = deploy_suite(
        &sender(&keys[0]),
        DeployOptions {
            governance: Governance::Timelock {
                proposer: keys[0].address(),
                delay: 0,
            },
            admin_transfer_delay: 0,
            network_fee: Some((keys[4].address(), 100)),
        },
        None,
        &Silent,
    )
    .await
    .unwrap();
    let folder = tempfile::tempdir().unwrap();
    let root = folder.path();
    let addresses = root.join("deployments/31337.json");
    deployed.deployment.write(&addresses).unwrap();
    let suite = Suite::open(connection.clone(), &addresses).await.unwrap();
    let signing = ProviderBuilder::new()
        .wallet(EthereumWallet::from(keys[0].clone()))
        .connect_provider(connection.provider.clone());
    let token = insitu_bindings::MockERC20::deploy(&signing, "Demo USD".into(), "DUSD".into(), 18)
        .await
        .unwrap();
    token
        .mint(consumer.address(), U256::from(PRICE) * U256::from(10))
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();

    // The provider's file and keeper.
    std::fs::create_dir_all(root.join("data")).unwrap();
    let content: Vec<u8> = (0..50_000_u32)
        .map(|i| b"0123456789,\n"[(i % 12) as usize])
        .collect();
    std::fs::write(root.join("data/lyon.csv"), &content).unwrap();
    let sha256 = alloy::hex::encode(sha2::Sha256::digest(&content));
    let keeper_config = insitu_keeper::config::Config {
        rpc_url: devnet.endpoint(),
        chain_id: 31_337,
        addresses: addresses.clone(),
        confirmations: 0,
        poll_interval_ms: 100,
        listen: "127.0.0.1:0".to_owned(),
        database: root.join("keeper.db"),
        data_root: root.join("data"),
        publishers: vec![provider_key.address()],
        ..insitu_keeper::config::Config::default()
    };
    let keeper = insitu_keeper::service::start(&keeper_config, keeper_key.clone(), None)
        .await
        .unwrap();
    let source = serde_json::to_vec(&serde_json::json!({
        "@context": "https://schema.org",
        "@type": "Dataset",
        "schemaVersion": "insitu-metadata/1",
        "name": NAME,
        "description": "PM2.5 and NO2 of twelve stations, one row per station and hour.",
        "author": "Lyon environmental lab",
        "license": "CC-BY-4.0",
        "keywords": ["air quality", "time series"],
        "files": [{
            "name": "lyon.csv",
            "contentType": "text/csv",
            "contentSize": content.len(),
            "sha256": sha256,
            "location": format!("file://{}", root.join("data/lyon.csv").display()),
        }],
        "services": [{
            "type": "access",
            "token": token.address().to_string(),
            "price": [{"receiver": provider_key.address().to_string(), "amount": PRICE.to_string()}],
            "timeout": {"min": 3600, "max": 86400},
            "accessWindow": 3600
        }]
    }))
    .unwrap();
    let published = market::publish(
        &suite,
        &sender(provider_key),
        &KeeperClient::new(&format!("http://{}", keeper.address)),
        &source,
        B256::repeat_byte(7),
        &Silent,
    )
    .await
    .unwrap();

    // The catalog.
    let catalog = Catalog::start(&Config {
        listen: "127.0.0.1:0".into(),
        database: root.join("catalog.db").display().to_string(),
        poll_interval_ms: 100,
        chains: vec![ChainConfig {
            rpc_url: devnet.endpoint(),
            addresses,
            confirmations: 0,
        }],
        outbound: OutboundConfig {
            allow: vec!["127.0.0.0/8".parse().unwrap()],
        },
        ..Config::default()
    })
    .await
    .unwrap();
    let catalog_url = format!("http://{}", catalog.address);
    let client = CatalogClient::new(&catalog_url);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let page = client
            .search(&SearchQuery {
                q: Some("air quality".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        if page.results.iter().any(|r| r.did == published.did) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the catalog did not index the asset"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The buyer, in the browser.
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    let screenshots = target.join("screenshots");
    std::fs::create_dir_all(&screenshots).unwrap();
    let downloads = root.join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let output = tokio::task::spawn_blocking({
        let (catalog_url, rpc_url) = (catalog_url.clone(), devnet.endpoint());
        let account = consumer.address().to_string();
        let downloads = downloads.clone();
        move || {
            Command::new("node")
                .arg("tests/web/e2e.mjs")
                .env("CATALOG_URL", catalog_url)
                .env("RPC_URL", rpc_url)
                .env("ACCOUNT", account)
                .env("CHROMIUM", browser)
                .env("ASSET_NAME", NAME)
                .env("SCREENSHOTS", screenshots)
                .env("DOWNLOADS", downloads)
                .output()
                .expect("node")
        }
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the browser run failed:\n{stderr}\n{stdout}"
    );
    let report: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap();

    // What the buyer saw and got.
    assert_eq!(report["search_results"][0], NAME, "{report}");
    // Prices in the token's units and symbol.
    assert_eq!(report["search_price"], "access: 250 DUSD", "{report}");
    assert!(
        report["purchase_steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|step| step
                .as_str()
                .unwrap()
                .starts_with("Price 250 DUSD + network fee 2.5 DUSD = 252.5 DUSD")),
        "{report}"
    );
    for facet in ["Type", "Service", "Licence", "Tags"] {
        assert!(
            report["facets"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f == facet),
            "{report}"
        );
    }
    assert_eq!(report["downloaded"], "lyon.csv");
    assert_eq!(report["downloaded_sha256"], sha256.as_str());
    assert_eq!(std::fs::read(downloads.join("lyon.csv")).unwrap(), content);
    let calls: Vec<&str> = report["wallet_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for method in [
        "eth_sendTransaction",
        "eth_signTypedData_v4",
        "eth_getTransactionReceipt",
    ] {
        assert!(calls.contains(&method), "{calls:?}");
    }
    assert_eq!(
        report["phone_overflows"], false,
        "the search overflows a phone's width"
    );
    assert_eq!(
        report["accessibility"]["search"],
        serde_json::json!([]),
        "{report}"
    );
    assert_eq!(
        report["accessibility"]["asset"],
        serde_json::json!([]),
        "{report}"
    );

    // The chain: the agreement the page made is the consumer's, paid, delivered and released.
    let id: B256 = report["agreement"].as_str().unwrap().parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let shown = agreement::show(&suite, id, None).await.unwrap();
        assert_eq!(shown.consumer, consumer.address());
        assert_eq!(shown.did, published.did);
        let states: Vec<ConditionState> = shown.conditions.iter().map(|c| c.state).collect();
        if states == [ConditionState::Released, ConditionState::Fulfilled] {
            break;
        }
        assert!(Instant::now() < deadline, "not settled: {states:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    catalog.stop().await;
    keeper.stop().await;
}
