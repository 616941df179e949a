//! A keeper with several RPC endpoints of one chain: a node held back (its head behind) is
//! avoided though it answers and comes first in the configuration; a node killed mid-run is left
//! for the other, which a purchase then goes through, settled exactly once.

mod common;

use std::time::{Duration, Instant};

use alloy::{
    primitives::{B256, U256},
    providers::{DynProvider, Provider, ProviderBuilder},
    signers::local::PrivateKeySigner,
};
use insitu_client::{
    devnet::Devnet,
    market::{self, KeeperClient},
    suite::Suite,
    tx::Silent,
};
use insitu_keeper::{
    config::Config,
    rpc_pool::EndpointStatus,
    service::{self, Running},
};

const PRICE: u128 = 1_000_000_000_000_000_000;

fn provider(endpoint: &str) -> DynProvider {
    ProviderBuilder::new()
        .connect_http(endpoint.parse().unwrap())
        .erased()
}

/// A free port of 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A node that starts from `from`'s chain as it is now (its state, blocks and head), on `port`.
async fn replica(from: &DynProvider, port: u16) -> Devnet {
    let state: String = from
        .raw_request("anvil_dumpState".into(), ())
        .await
        .unwrap();
    let devnet = Devnet::start_with(|anvil| anvil.port(port)).expect("anvil");
    let loaded: bool = provider(&devnet.endpoint())
        .raw_request("anvil_loadState".into(), (state,))
        .await
        .unwrap();
    assert!(loaded);
    devnet
}

/// The keeper (keys[2]) on `endpoints` of the chain, publisher keys[1].
async fn keeper(
    dir: &std::path::Path,
    addresses: &std::path::Path,
    endpoints: &[String],
    keys: &[PrivateKeySigner],
) -> Running {
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let config = Config {
        rpc_url: endpoints[0].clone(),
        rpc_fallback_urls: endpoints[1..].to_vec(),
        chain_id: 31_337,
        addresses: addresses.to_path_buf(),
        confirmations: 0,
        poll_interval_ms: 100,
        listen: "127.0.0.1:0".to_owned(),
        database: dir.join("keeper.db"),
        data_root: dir.join("data"),
        publishers: vec![keys[1].address()],
        ..Config::default()
    };
    service::start(&config, keys[2].clone(), None)
        .await
        .unwrap()
}

/// Publishes a small file at `keeper` on `suite`'s chain; returns the asset and content.
async fn publish(
    suite: &Suite,
    keeper: &Running,
    keys: &[PrivateKeySigner],
    token: alloy::primitives::Address,
    data: &std::path::Path,
) -> (B256, Vec<u8>) {
    let content: Vec<u8> = (0..50_000_u32).map(|i| (i % 241) as u8).collect();
    let file = data.join("data/set.bin");
    std::fs::write(&file, &content).unwrap();
    let source = common::access_document(
        &format!("file://{}", file.display()),
        &content,
        token,
        keys[1].address(),
        PRICE,
    );
    let did = market::publish(
        suite,
        &common::suite_sender(suite, &keys[1]),
        &KeeperClient::new(&format!("http://{}", keeper.address)),
        &source,
        B256::from(rand::random::<[u8; 32]>()),
        &Silent,
    )
    .await
    .unwrap()
    .did;
    (did, content)
}

/// Waits until the pool's status satisfies `done`.
async fn wait_for(keeper: &Running, what: &str, done: impl Fn(&[EndpointStatus]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = keeper.rpc[0].status();
        if done(&status) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {status:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_held_back_is_avoided_though_it_answers_and_comes_first() {
    let live = Devnet::start().expect("anvil");
    let deployed = common::deploy(&live, None, U256::from(PRICE) * U256::from(10)).await;
    // The held-back node has the chain as it is now, then nothing more.
    let held = replica(&deployed.provider, free_port()).await;
    common::node_rpc(&deployed.provider, "anvil_mine", serde_json::json!([10])).await;

    let root = deployed.dir.path();
    let keeper = keeper(
        root,
        &deployed.addresses,
        &[held.endpoint(), live.endpoint()],
        &deployed.keys,
    )
    .await;
    let status = keeper.rpc[0].status();
    assert!(!status[0].healthy && !status[0].active, "{status:?}");
    assert!(status[1].healthy && status[1].active, "{status:?}");
    assert_eq!(status[1].head.unwrap() - status[0].head.unwrap(), 10);

    let (did, content) = publish(
        &deployed.suite,
        &keeper,
        &deployed.keys,
        deployed.token,
        root,
    )
    .await;
    let (_, received) = common::buy_and_download(
        &deployed.suite,
        &deployed.keys[3],
        did,
        &root.join("out.bin"),
    )
    .await;
    assert_eq!(received, content);
    let keeper_account = deployed.keys[2].address();
    assert_eq!(
        deployed
            .provider
            .get_transaction_count(keeper_account)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        provider(&held.endpoint())
            .get_transaction_count(keeper_account)
            .await
            .unwrap(),
        0,
        "nothing went to the node held back"
    );
    keeper.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_run_is_left_for_the_other_and_nothing_is_settled_twice() {
    let first = Devnet::start().expect("anvil");
    let deployed = common::deploy(&first, None, U256::from(PRICE) * U256::from(10)).await;
    let root = deployed.dir.path();
    // The second node is down when the keeper starts: kept, unhealthy, checked again later.
    let second_port = free_port();
    let second_url = format!("http://127.0.0.1:{second_port}");
    let keeper = keeper(
        root,
        &deployed.addresses,
        &[first.endpoint(), second_url.clone()],
        &deployed.keys,
    )
    .await;
    let status = keeper.rpc[0].status();
    assert!(status[0].active && status[0].healthy, "{status:?}");
    assert!(!status[1].healthy && status[1].head.is_none(), "{status:?}");

    // A purchase through the first node.
    let (did, content) = publish(
        &deployed.suite,
        &keeper,
        &deployed.keys,
        deployed.token,
        root,
    )
    .await;
    let (_, received) = common::buy_and_download(
        &deployed.suite,
        &deployed.keys[3],
        did,
        &root.join("one.bin"),
    )
    .await;
    assert_eq!(received, content);

    // The second node comes up with the same chain; the keeper finds it healthy.
    let second = replica(&deployed.provider, second_port).await;
    wait_for(&keeper, "the second node found healthy", |status| {
        status[1].healthy && status[1].head == status[0].head
    })
    .await;

    // The first node dies. The next purchase goes through the second: the keeper follows.
    drop(first);
    let suite = Suite::open(
        insitu_client::rpc::connect(
            &insitu_client::rpc::Endpoint::parse(&second.endpoint()).unwrap(),
            Some(31_337),
        )
        .await
        .unwrap(),
        &deployed.addresses,
    )
    .await
    .unwrap();
    let (id, received) =
        common::buy_and_download(&suite, &deployed.keys[3], did, &root.join("two.bin")).await;
    assert_eq!(received, content);
    wait_for(&keeper, "the failover", |status| {
        !status[0].healthy && status[1].healthy && status[1].active
    })
    .await;
    let keeper_account = deployed.keys[2].address();
    assert_eq!(
        suite
            .provider()
            .get_transaction_count(keeper_account)
            .await
            .unwrap(),
        2,
        "one settlement each, none twice"
    );
    let shown = insitu_client::agreement::show(&suite, id, None)
        .await
        .unwrap();
    assert_eq!(
        shown.payment_condition().unwrap().state,
        insitu_client::agreement::ConditionState::Released
    );
    keeper.stop().await;
}
