//! One keeper serving two chains, each with its own endpoints, deployment, store and key: assets
//! published, bought and served on each, every agreement settled by its chain's key on its chain;
//! then one chain's node dies and the other goes on serving.

mod common;

use alloy::{
    primitives::{B256, U256},
    providers::{DynProvider, Provider},
    signers::local::PrivateKeySigner,
};
use insitu_client::{
    devnet::Devnet,
    market::{self, KeeperClient},
    suite::Suite,
    tx::Silent,
};
use insitu_keeper::{
    config::{ChainConfig, Config},
    service::{self, Running},
};

const PRICE: u128 = 1_000_000_000_000_000_000;

/// Publishes `file` (in the keeper's data folder) on `suite`'s chain at `keeper`, as keys[1].
async fn publish(
    suite: &Suite,
    keeper: &Running,
    keys: &[PrivateKeySigner],
    token: alloy::primitives::Address,
    file: &std::path::Path,
    content: &[u8],
) -> B256 {
    let source = common::access_document(
        &format!("file://{}", file.display()),
        content,
        token,
        keys[1].address(),
        PRICE,
    );
    market::publish(
        suite,
        &common::suite_sender(suite, &keys[1]),
        &KeeperClient::new(&format!("http://{}", keeper.address)),
        &source,
        B256::from(rand::random::<[u8; 32]>()),
        &Silent,
    )
    .await
    .unwrap()
    .did
}

async fn nonce(provider: &DynProvider, key: &PrivateKeySigner) -> u64 {
    provider.get_transaction_count(key.address()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_keeper_serves_two_chains_each_with_its_key_and_one_failing_leaves_the_other() {
    let first = Devnet::start().expect("anvil");
    let second = Devnet::start_with(|anvil| anvil.chain_id(1337)).expect("anvil");
    let a = common::deploy(&first, None, U256::from(PRICE) * U256::from(10)).await;
    let b = common::deploy(&second, None, U256::from(PRICE) * U256::from(10)).await;
    let keys = &a.keys;
    // The keeper's account differs by chain: keys[2] on the first, keys[4] on the second.
    let (key_a, key_b) = (&keys[2], &keys[4]);

    let root = a.dir.path();
    std::fs::create_dir_all(root.join("data")).unwrap();
    let content: Vec<u8> = (0..40_000_u32).map(|i| (i % 239) as u8).collect();
    let file = root.join("data/set.bin");
    std::fs::write(&file, &content).unwrap();
    let config = Config {
        rpc_url: first.endpoint(),
        chain_id: 31_337,
        addresses: a.addresses.clone(),
        confirmations: 0,
        poll_interval_ms: 100,
        listen: "127.0.0.1:0".to_owned(),
        database: root.join("keeper.db"),
        data_root: root.join("data"),
        publishers: vec![keys[1].address()],
        chains: vec![ChainConfig {
            chain_id: 1337,
            rpc_url: second.endpoint(),
            rpc_fallback_urls: Vec::new(),
            rpc_max_lag_blocks: 3,
            addresses: Some(b.addresses.clone()),
            confirmations: 0,
            database: Some(root.join("keeper-1337.db")),
            keystore: None,
            password_file: None,
        }],
        ..Config::default()
    };
    config.validate().unwrap();
    let keeper = service::start_chains(&config, vec![key_a.clone(), key_b.clone()], None)
        .await
        .unwrap();

    // The keeper names both chains, with its account on each.
    let info = KeeperClient::new(&format!("http://{}", keeper.address))
        .info()
        .await
        .unwrap();
    assert_eq!(info.chain_id, 31_337);
    assert_eq!(info.chain(31_337).unwrap().address, key_a.address());
    assert_eq!(info.chain(1337).unwrap().address, key_b.address());
    assert!(info.chain(5).is_none());

    // Published, bought and served on each chain; settled by that chain's key only.
    let did_a = publish(&a.suite, &keeper, keys, a.token, &file, &content).await;
    let did_b = publish(&b.suite, &keeper, keys, b.token, &file, &content).await;
    assert_eq!(
        common::buy_and_download(&a.suite, &keys[3], did_a, &root.join("a.bin"))
            .await
            .1,
        content
    );
    assert_eq!(
        common::buy_and_download(&b.suite, &keys[3], did_b, &root.join("b.bin"))
            .await
            .1,
        content
    );
    assert_eq!(nonce(&a.provider, key_a).await, 1);
    assert_eq!(nonce(&b.provider, key_b).await, 1);
    assert_eq!(nonce(&a.provider, key_b).await, 0);
    assert_eq!(nonce(&b.provider, key_a).await, 0);
    // Each chain's agreements are in its own store.
    let store_b = insitu_keeper::store::Store::open(&root.join("keeper-1337.db")).unwrap();
    assert_eq!(store_b.agreements(None).unwrap().len(), 1);
    let store_a = insitu_keeper::store::Store::open(&root.join("keeper.db")).unwrap();
    assert_eq!(store_a.agreements(None).unwrap().len(), 1);

    // A chain the keeper does not serve.
    let http = reqwest::Client::new();
    let response = http
        .get(format!(
            "http://{}/v1/offers/{did_a}?chain=5",
            keeper.address
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "unknown_chain");

    // The second chain's node dies: /ready says which chain is down, and the first chain goes on
    // being served.
    drop(second);
    let ready = http
        .get(format!("http://{}/ready", keeper.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    let ready = http
        .get(format!("http://{}/ready?chain=31337", keeper.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status().as_u16(), 200);
    assert_eq!(
        common::buy_and_download(&a.suite, &keys[3], did_a, &root.join("a2.bin"))
            .await
            .1,
        content
    );
    assert_eq!(nonce(&a.provider, key_a).await, 2);
    keeper.stop().await;
}
