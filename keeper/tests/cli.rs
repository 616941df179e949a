//! The `insitu-keeper` binary.

use std::path::Path;
use std::process::Command;

use alloy::primitives::address;
use insitu_bindings::addresses::Deployment;
use insitu_bindings::deployment::{self, DeployOptions, Governance};

/// A child process killed and reaped when dropped, unless taken.
struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn keeper() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_insitu-keeper"));
    // Keep the caller's INSITU_KEEPER_* variables out of these tests.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("INSITU_KEEPER_") {
            command.env_remove(name);
        }
    }
    command
}

/// Writes the addresses file of a whole suite on `chain_id` to `path`, as `insitu deploy` does.
fn write_deployment(path: &Path, chain_id: u64) {
    let deployer = address!("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
    let options = DeployOptions {
        governance: Governance::Timelock {
            proposer: deployer,
            delay: 0,
        },
        admin_transfer_delay: 0,
        network_fee: None,
    };
    let plan = deployment::plan(deployer, 0, options);
    let mut file = Deployment::new(chain_id, 20);
    for (name, address) in plan.addresses.by_name() {
        file.insert(name, address);
    }
    file.write(path).unwrap();
}

#[test]
fn check_config_prints_the_effective_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keeper.toml");
    std::fs::write(&path, "confirmations = 4\n").unwrap();
    // By default the keeper reads deployments/<chain id>.json, where `insitu deploy` writes it.
    write_deployment(&dir.path().join("deployments/1337.json"), 1337);
    let output = keeper()
        .args(["--check-config", "--config"])
        .arg(&path)
        .env("INSITU_KEEPER_CHAIN_ID", "1337")
        .env(
            "INSITU_KEEPER_RPC_FALLBACK_URLS",
            "https://rpc.example/v2/SECRETKEY",
        )
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    // An endpoint's API key is never printed.
    assert!(stdout.contains("https://rpc.example/…"), "{stdout}");
    assert!(!stdout.contains("SECRETKEY"), "{stdout}");
    assert!(stdout.contains("confirmations = 4"), "{stdout}");
    assert!(stdout.contains("chain_id = 1337"), "{stdout}");
    assert!(
        stdout.contains("rpc_url = \"http://127.0.0.1:8545\""),
        "{stdout}"
    );
    assert!(stdout.contains("deployments/1337.json"), "{stdout}");
    assert!(
        stdout.contains("# deployment: chain 1337, from block 20"),
        "{stdout}"
    );
}

#[test]
fn check_config_refuses_a_missing_or_foreign_addresses_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keeper.toml");
    std::fs::write(&path, "chain_id = 1337\n").unwrap();
    let run = || {
        let output = keeper()
            .args(["--check-config", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(!output.status.success());
        String::from_utf8(output.stderr).unwrap()
    };
    let stderr = run();
    assert!(
        stderr.contains("deployments/1337.json does not exist"),
        "{stderr}"
    );
    assert!(stderr.contains("deploy the contracts first"), "{stderr}");

    // A file written for another chain.
    write_deployment(&dir.path().join("deployments/1337.json"), 31337);
    let stderr = run();
    assert!(
        stderr.contains("is for chain 31337, but the keeper is configured for chain 1337"),
        "{stderr}"
    );

    // A file that lacks a contract of the suite.
    let mut partial = Deployment::new(1337, 1);
    partial.insert(
        "AgreementStore",
        address!("5FbDB2315678afecb367f032d93F642f64180aa3"),
    );
    partial
        .write(dir.path().join("deployments/1337.json"))
        .unwrap();
    let stderr = run();
    assert!(stderr.contains("is not in the deployment"), "{stderr}");
}

#[test]
fn an_invalid_configuration_fails_with_a_readable_error() {
    let output = keeper()
        .arg("--check-config")
        .env("INSITU_KEEPER_LISTEN", "nowhere")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("loading the configuration"), "{stderr}");
    assert!(
        stderr.contains("listen \"nowhere\" is not an ip:port socket address"),
        "{stderr}"
    );
}

#[test]
fn a_keystore_needs_its_password_file() {
    let output = keeper()
        .arg("--check-config")
        .env("INSITU_KEEPER_KEYSTORE", "key.json")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("keystore and password_file go together"),
        "{stderr}"
    );
}

#[test]
fn the_keeper_follows_the_chain_records_its_agreements_and_stops_on_sigterm() {
    use insitu_client::{demo, devnet::Devnet};
    use insitu_keeper::store::{AgreementState, Store};

    let devnet = Devnet::start().expect("anvil");
    let keys: Vec<alloy::signers::local::PrivateKeySigner> = devnet.signers();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let report = runtime
        .block_on(demo::run_until(
            &devnet.endpoint(),
            &keys[..5],
            demo::Stage::Paid,
        ))
        .expect("demo");
    let dir = tempfile::tempdir().unwrap();
    report
        .deployment
        .write(dir.path().join("deployments/31337.json"))
        .unwrap();
    let config = dir.path().join("keeper.toml");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // A threshold above the dev account's 10,000 ETH: the balance is reported low.
    std::fs::write(
        &config,
        format!(
            "rpc_url = \"{}\"\nconfirmations = 0\npoll_interval_ms = 100\n\
             listen = \"127.0.0.1:{port}\"\nlow_balance_gwei = 20000000000000\n",
            devnet.endpoint()
        ),
    )
    .unwrap();

    // Without a key it says which variable to set.
    let output = keeper().args(["--config"]).arg(&config).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("no key: set INSITU_KEEPER_PRIVATE_KEY"),
        "{stderr}"
    );

    // Killed if the test fails before it stops it.
    let mut child = KillOnDrop(Some(
        keeper()
            .args(["--config"])
            .arg(&config)
            .env(
                "INSITU_KEEPER_PRIVATE_KEY",
                alloy::primitives::hex::encode(keys[2].to_bytes()),
            )
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    let database = dir.path().join("keeper.db");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the keeper never recorded the agreement"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
        if let Ok(store) = Store::open(&database)
            && let Ok(Some(agreement)) = store.agreement(report.agreement_id)
        {
            assert_eq!(agreement.state, AgreementState::Paid);
            break;
        }
    }
    // The Prometheus metrics: actions in flight, the balance and its warning gauge.
    let metrics = runtime.block_on(async {
        reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    assert!(
        metrics.contains("keeper_pending_actions{chain=\"31337\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("keeper_balance_low{chain=\"31337\"} 1"),
        "{metrics}"
    );
    let balance: f64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("keeper_balance_gwei{chain=\"31337\"} "))
        .unwrap()
        .parse()
        .unwrap();
    assert!((9_000e9..=10_000e9).contains(&balance), "{balance}");
    let child = child.0.take().unwrap();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("keeper started"), "{stderr}");
    assert!(stderr.contains(&keys[2].address().to_string()), "{stderr}");
    assert!(stderr.contains("stopped"), "{stderr}");
    assert!(stderr.contains("the keeper's balance is low"), "{stderr}");
    assert!(!stderr.contains(&alloy::primitives::hex::encode(keys[2].to_bytes())));
}

#[test]
fn the_configuration_reference_is_printed_without_a_configuration() {
    let output = keeper().arg("--config-reference").output().unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        insitu_keeper::config::reference::markdown()
    );
    // Alone only.
    let output = keeper()
        .args(["--config-reference", "--check-config"])
        .output()
        .unwrap();
    assert!(!output.status.success());
}
