//! Deploying the suite to a real anvil node, and the end-to-end demo on it.

use std::process::Command;

use alloy::{
    network::EthereumWallet,
    primitives::U256,
    providers::{Provider, ProviderBuilder},
    signers::local::PrivateKeySigner,
};
use insitu_bindings::{AgreementStore, LockPaymentCondition, deployment::DeployOptions};
use insitu_script::{
    addresses::Deployment,
    demo,
    deploy::{DeployError, deploy_suite},
    devnet::Devnet,
};

fn keys(devnet: &Devnet) -> Vec<PrivateKeySigner> {
    devnet
        .instance()
        .keys()
        .iter()
        .map(|key| PrivateKeySigner::from(key.clone()))
        .collect()
}

#[tokio::test]
async fn deploys_and_wires_the_suite_as_planned() {
    let devnet = Devnet::start().expect("anvil");
    let keys = keys(&devnet);
    let deployer = keys[0].address();
    let fee_receiver = keys[3].address();
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(keys[0].clone()))
        .connect_http(devnet.endpoint().parse().unwrap());

    let options = DeployOptions {
        governor: deployer,
        network_fee: Some((fee_receiver, 250)),
    };
    let deployed = deploy_suite(&provider, deployer, options, 1)
        .await
        .expect("deploy");
    assert_eq!(deployed.transactions.len(), 11 + 2 + 2 + 1);
    assert!(deployed.plan.governor_calls.is_empty());
    assert_eq!(deployed.deployment.chain_id, 31337);
    assert_eq!(deployed.deployment.contracts.len(), 11);
    assert_eq!(
        deployed.deployment.block,
        provider.get_block_number().await.unwrap()
    );
    for (name, address) in &deployed.deployment.contracts {
        let code = provider.get_code_at(*address).await.unwrap();
        assert!(!code.is_empty(), "{name} has code");
    }

    let suite = deployed.plan.addresses;
    let store = AgreementStore::new(suite.agreement_store, &provider);
    for template in [suite.access_template, suite.compute_template] {
        assert!(store.isTemplateApproved(template).call().await.unwrap());
    }
    assert!(store.isGovernor(deployer).call().await.unwrap());
    let fee = LockPaymentCondition::new(suite.lock_payment, &provider)
        .networkFee()
        .call()
        .await
        .unwrap();
    assert_eq!((fee.receiver, fee.bps), (fee_receiver, 250));

    // The addresses file round-trips.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("31337.json");
    deployed.deployment.write(&path).unwrap();
    assert_eq!(Deployment::read(&path).unwrap(), deployed.deployment);

    // A second deployment by the same account lands at new addresses.
    let again = deploy_suite(&provider, deployer, options, 1)
        .await
        .expect("deploy again");
    assert_ne!(again.plan.addresses, suite);
}

#[tokio::test]
async fn a_separate_governor_is_left_the_approvals_to_send() {
    let devnet = Devnet::start().expect("anvil");
    let keys = keys(&devnet);
    let (deployer, governor) = (keys[0].address(), keys[1].address());
    let mut wallet = EthereumWallet::from(keys[0].clone());
    wallet.register_signer(keys[1].clone());
    let provider = ProviderBuilder::new()
        .wallet(wallet)
        .connect_http(devnet.endpoint().parse().unwrap());

    let options = DeployOptions {
        governor,
        network_fee: None,
    };
    let deployed = deploy_suite(&provider, deployer, options, 1)
        .await
        .expect("deploy");
    let suite = deployed.plan.addresses;
    let store = AgreementStore::new(suite.agreement_store, &provider);
    assert!(!store.isGovernor(deployer).call().await.unwrap());
    assert!(store.isGovernor(governor).call().await.unwrap());
    const PROPOSED: u8 = 1;
    assert_eq!(
        store
            .templateState(suite.access_template)
            .call()
            .await
            .unwrap(),
        PROPOSED
    );
    assert_eq!(deployed.plan.governor_calls.len(), 2);

    // The governor sends the calls it was left, and the templates are approved.
    for call in &deployed.plan.governor_calls {
        let alloy::primitives::TxKind::Call(to) = call.kind else {
            panic!("governor calls are calls");
        };
        let request = alloy::rpc::types::TransactionRequest::default()
            .from(governor)
            .to(to)
            .input(call.input.clone().into());
        let receipt = provider
            .send_transaction(request)
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
        assert!(receipt.status(), "{}", call.label);
    }
    assert!(
        store
            .isTemplateApproved(suite.compute_template)
            .call()
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn a_deployer_without_funds_gets_a_clear_error() {
    let devnet = Devnet::start().expect("anvil");
    let broke = PrivateKeySigner::random();
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(broke.clone()))
        .connect_http(devnet.endpoint().parse().unwrap());
    let options = DeployOptions {
        governor: broke.address(),
        network_fee: None,
    };
    let err = deploy_suite(&provider, broke.address(), options, 1)
        .await
        .expect_err("no funds");
    assert!(matches!(err, DeployError::Rpc(_)), "{err:?}");
    assert!(err.to_string().to_lowercase().contains("funds"), "{err}");
}

#[tokio::test]
async fn the_demo_runs_a_paid_access_agreement_end_to_end() {
    let devnet = Devnet::start().expect("anvil");
    let keys = keys(&devnet);
    let report = demo::run(&devnet.endpoint(), &keys[..4])
        .await
        .expect("demo");
    assert!(report.consumer_has_access);
    let price = U256::from(demo::PRICE);
    let fee = price / U256::from(100);
    let balance = |party: &str| {
        report
            .balances
            .iter()
            .find(|(name, _)| *name == party)
            .map(|(_, balance)| *balance)
            .unwrap()
    };
    assert_eq!(balance("consumer"), U256::ZERO);
    assert_eq!(balance("provider"), price);
    assert_eq!(balance("fee receiver"), fee);
    assert_eq!(balance("escrow"), U256::ZERO);
    let labels: Vec<_> = report.steps.iter().map(|(step, _)| *step).collect();
    assert!(labels.contains(&"consumer creates the agreement and pays"));
    assert!(report.steps.iter().all(|(_, gas)| *gas > 21_000));

    let err = demo::run(&devnet.endpoint(), &keys[..2]).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "the demo needs four funded accounts, got 2"
    );
}

#[test]
fn the_deploy_command_refuses_to_run_without_a_key() {
    let output = Command::new(env!("CARGO_BIN_EXE_insitu-deploy"))
        .env_remove("INSITU_DEPLOYER_KEY")
        .output()
        .expect("run insitu-deploy");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("set INSITU_DEPLOYER_KEY"), "{stderr}");

    let output = Command::new(env!("CARGO_BIN_EXE_insitu-deploy"))
        .env("INSITU_DEPLOYER_KEY", "not a key")
        .output()
        .expect("run insitu-deploy");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a valid private key"), "{stderr}");
}

#[test]
fn the_deploy_command_writes_an_addresses_file() {
    let devnet = Devnet::start().expect("anvil");
    let keys = keys(&devnet);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("devnet.json");
    let output = Command::new(env!("CARGO_BIN_EXE_insitu-deploy"))
        .env(
            "INSITU_DEPLOYER_KEY",
            alloy::primitives::hex::encode(keys[0].to_bytes()),
        )
        .args([
            "--rpc-url",
            &devnet.endpoint(),
            "--fee-bps",
            "100",
            "--fee-receiver",
        ])
        .arg(keys[3].address().to_string())
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run insitu-deploy");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let deployment = Deployment::read(&out).expect("addresses file");
    assert_eq!(deployment.contracts.len(), 11);
    assert!(stdout.contains("AccessTemplate"), "{stdout}");

    let output = Command::new(env!("CARGO_BIN_EXE_insitu-deploy"))
        .env(
            "INSITU_DEPLOYER_KEY",
            alloy::primitives::hex::encode(keys[0].to_bytes()),
        )
        .args(["--rpc-url", &devnet.endpoint(), "--fee-bps", "100"])
        .output()
        .expect("run insitu-deploy");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--fee-bps needs --fee-receiver"));
}
