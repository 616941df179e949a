//! Starts a real anvil through the devnet module and talks to it over HTTP.

use alloy::providers::{Provider, ProviderBuilder};
use insitu_client::devnet::{DEVNET_CHAIN_ID, Devnet, DevnetError, anvil_path, locate_anvil};

#[tokio::test]
async fn devnet_runs_a_funded_chain_31337_on_localhost() {
    let devnet = Devnet::start().expect("anvil starts (run `npm install` first)");
    assert!(
        devnet.endpoint().starts_with("http://127.0.0.1:"),
        "{}",
        devnet.endpoint()
    );
    assert_ne!(devnet.port(), 0);
    assert_eq!(devnet.chain_id(), DEVNET_CHAIN_ID);

    let url = devnet.endpoint().parse().expect("endpoint is a URL");
    let provider = ProviderBuilder::new().connect_http(url);
    assert_eq!(provider.get_chain_id().await.expect("eth_chainId"), 31337);

    let dev = *devnet.accounts().first().expect("anvil has dev accounts");
    let balance = provider.get_balance(dev).await.expect("eth_getBalance");
    assert!(
        balance > alloy::primitives::U256::ZERO,
        "dev account {dev} is funded"
    );
    assert_eq!(
        provider.get_block_number().await.expect("eth_blockNumber"),
        0
    );
}

#[test]
fn two_devnets_get_different_ports() {
    let a = Devnet::start().expect("first anvil");
    let b = Devnet::start().expect("second anvil");
    assert_ne!(a.port(), b.port());
}

#[test]
fn anvil_is_found_in_node_modules() {
    let path = anvil_path().expect("anvil installed by npm");
    assert!(path.ends_with("bin/anvil"), "{}", path.display());
}

#[test]
fn a_missing_anvil_says_to_run_npm_ci() {
    let empty = tempfile::tempdir().unwrap();
    let err = locate_anvil(None, empty.path()).unwrap_err();
    assert!(matches!(err, DevnetError::AnvilMissing { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("run `npm install` in the repository root"),
        "{message}"
    );
    assert!(
        message.contains("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"),
        "{message}"
    );

    let err = locate_anvil(Some(&empty.path().join("my-anvil")), empty.path()).unwrap_err();
    assert!(err.to_string().contains("my-anvil"), "{err}");

    // An explicit path that exists is used as is.
    let real = anvil_path().unwrap();
    assert_eq!(locate_anvil(Some(&real), empty.path()).unwrap(), real);
}
