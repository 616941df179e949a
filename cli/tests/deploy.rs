//! `insitu deploy` against a real anvil node: over http, ws, https and wss; everything it refuses
//! before sending; keystores; time outs; and an interrupted deployment resumed.

mod common;

use std::{
    io::{BufRead, BufReader},
    process::Stdio,
};

use alloy::{
    primitives::{Address, U256, aliases::U48},
    providers::ProviderBuilder,
    signers::local::PrivateKeySigner,
};
use common::{TlsFront, hex_key, insitu, json, keys, nonce, rpc, run_as, stderr, stdout};
use insitu_bindings::{AgreementStore, GovernanceTimelock};
use insitu_client::{addresses::Deployment, devnet::Devnet};

/// Contracts of the suite without the timelock.
const CONTRACTS: usize = 10;
/// Transactions of a deployment governed by a timelock without delay: timelock, contracts, two
/// proposals, the batch scheduled and executed.
const TRANSACTIONS: u64 = 15;
/// `TemplateRegistry.TemplateState.Proposed`.
const PROPOSED: u8 = 1;

fn deploy_args<'a>(endpoint: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["deploy", "--rpc-url", endpoint, "--out", out];
    args.extend_from_slice(extra);
    args
}

#[test]
fn a_key_is_required_and_checked_before_anything_else() {
    let output = insitu().arg("deploy").output().expect("run insitu");
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("no key: set INSITU_PRIVATE_KEY"),
        "{}",
        stderr(&output)
    );

    // A bad key, with a node there: refused, and no block was made (nothing was sent).
    let devnet = Devnet::start().expect("anvil");
    let endpoint = devnet.endpoint();
    let output = insitu()
        .env("INSITU_PRIVATE_KEY", "0xnot-a-key")
        .args(["deploy", "--rpc-url", &endpoint])
        .output()
        .expect("run insitu");
    assert!(!output.status.success());
    let text = stderr(&output);
    assert!(
        text.contains("INSITU_PRIVATE_KEY is not a valid private key"),
        "{text}"
    );
    assert!(
        !text.contains("not-a-key"),
        "the key's text is not echoed: {text}"
    );
    let blocks = tokio::runtime::Runtime::new().unwrap().block_on(async {
        alloy::providers::Provider::get_block_number(
            &ProviderBuilder::new().connect_http(endpoint.parse().unwrap()),
        )
        .await
        .unwrap()
    });
    assert_eq!(blocks, 0, "nothing was sent");

    let output = insitu().args(["deploy", "--help"]).output().expect("help");
    assert!(output.status.success());
    for named in ["INSITU_PRIVATE_KEY", "--keystore", "--password-file"] {
        assert!(stdout(&output).contains(named), "{named}");
    }
}

#[test]
fn deploys_over_http_and_ws_with_json_output() {
    let devnet = Devnet::start().expect("anvil");
    let keys = keys(&devnet);
    let dir = tempfile::tempdir().unwrap();
    for (scheme, offset) in [("http", 0), ("ws", TRANSACTIONS)] {
        let endpoint = devnet.endpoint().replace("http", scheme);
        let out = dir.path().join(format!("{scheme}.json"));
        let mut args = vec!["--json"];
        args.extend(deploy_args(
            &endpoint,
            out.to_str().unwrap(),
            &["--timelock-delay", "0"],
        ));
        let output = run_as(&keys[0], &args);
        assert!(output.status.success(), "{scheme}: {}", stderr(&output));
        let report = json(&output);
        assert_eq!(report["chain_id"], 31_337);
        assert_eq!(
            report["deployer"],
            keys[0].address().to_string().to_lowercase()
        );
        assert_eq!(report["resumed"], false);
        assert_eq!(report["governance_done"], true);
        assert_eq!(
            report["transactions"].as_array().unwrap().len() as u64,
            TRANSACTIONS
        );
        assert!(report["simulated_gas"].as_u64().unwrap() > 10_000_000);
        let deployment = Deployment::read(&out).unwrap();
        assert_eq!(deployment.contracts.len(), CONTRACTS + 1);
        // The planned addresses: the timelock is the deployer's first creation of this run.
        assert_eq!(
            deployment.address("GovernanceTimelock").unwrap(),
            keys[0].address().create(offset)
        );
        // Progress went to standard error, one line per transaction sent and confirmed.
        let progress = stderr(&output);
        assert!(
            progress.is_empty(),
            "nothing but JSON in --json mode: {progress}"
        );
    }
    assert_eq!(nonce(&devnet, keys[0].address()), 2 * TRANSACTIONS);
}

#[test]
fn deploys_over_https_and_wss_trusting_the_certificate_it_is_told_to() {
    let devnet = Devnet::start().expect("anvil");
    let keys = keys(&devnet);
    let front = TlsFront::start(([127, 0, 0, 1], devnet.port()).into());
    let dir = tempfile::tempdir().unwrap();

    // Without the CA, the certificate is refused: nothing is sent.
    let out = dir.path().join("refused.json");
    let url = front.url("https");
    let output = run_as(&keys[0], &deploy_args(&url, out.to_str().unwrap(), &[]));
    assert!(!output.status.success());
    let text = stderr(&output);
    assert!(text.contains("is unreachable"), "{text}");
    assert!(text.to_lowercase().contains("certificate"), "{text}");
    assert_eq!(nonce(&devnet, keys[0].address()), 0);

    for scheme in ["https", "wss"] {
        let out = dir.path().join(format!("{scheme}.json"));
        let url = front.url(scheme);
        let output = insitu()
            .env("INSITU_PRIVATE_KEY", hex_key(&keys[0]))
            .env("SSL_CERT_FILE", &front.ca_file)
            .args(deploy_args(
                &url,
                out.to_str().unwrap(),
                &["--timelock-delay", "0"],
            ))
            .output()
            .unwrap();
        assert!(output.status.success(), "{scheme}: {}", stderr(&output));
        assert!(
            stderr(&output).contains(&format!("({scheme}://localhost:")),
            "{}",
            stderr(&output)
        );
        assert_eq!(
            Deployment::read(&out).unwrap().contracts.len(),
            CONTRACTS + 1
        );
    }
    assert_eq!(nonce(&devnet, keys[0].address()), 2 * TRANSACTIONS);
}

#[test]
fn an_unreachable_endpoint_a_wrong_chain_and_a_bad_url_are_refused() {
    let devnet = Devnet::start().expect("anvil");
    let keys = keys(&devnet);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    let out = out.to_str().unwrap();
    // A port nobody listens on.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let endpoint = devnet.endpoint();
    let unreachable_http = format!("http://127.0.0.1:{closed}/v2/SECRETKEY");
    let unreachable_ws = format!("ws://127.0.0.1:{closed}");
    for (args, message) in [
        (
            deploy_args(&unreachable_http, out, &[]),
            format!("the RPC endpoint http://127.0.0.1:{closed}/… is unreachable"),
        ),
        (
            deploy_args(&unreachable_ws, out, &[]),
            format!("the RPC endpoint ws://127.0.0.1:{closed} is unreachable"),
        ),
        (
            deploy_args(&endpoint, out, &["--chain-id", "1"]),
            format!("the RPC endpoint {endpoint} serves chain 31337, not the expected chain 1"),
        ),
        (
            deploy_args("ftp://127.0.0.1:21", out, &[]),
            "unsupported RPC URL scheme `ftp`".to_owned(),
        ),
    ] {
        let output = run_as(&keys[0], &args);
        assert!(!output.status.success(), "{args:?}");
        let text = stderr(&output);
        assert!(text.contains(&message), "{args:?}: {text}");
        assert!(
            !text.contains("SECRETKEY"),
            "the URL's path is not shown: {text}"
        );
    }
    // --json: the error is a JSON object.
    let mut args = vec!["--json"];
    args.extend(deploy_args(&endpoint, out, &["--chain-id", "5"]));
    let output = run_as(&keys[0], &args);
    assert!(!output.status.success());
    assert!(
        json(&output)["error"]
            .as_str()
            .unwrap()
            .contains("not the expected chain 5")
    );
    assert_eq!(nonce(&devnet, keys[0].address()), 0, "nothing was sent");
    assert!(!std::path::Path::new(out).exists());
}

#[test]
fn bad_options_are_refused_before_sending_anything() {
    let devnet = Devnet::start().expect("anvil");
    let keys = keys(&devnet);
    let zero = Address::ZERO.to_string();
    let receiver = keys[3].address().to_string();
    let endpoint = devnet.endpoint();
    for (args, message) in [
        (&["--fee-bps", "100"][..], "--fee-bps needs --fee-receiver"),
        (
            &["--fee-receiver", &receiver][..],
            "--fee-receiver needs --fee-bps",
        ),
        (
            &["--fee-bps", "0", "--fee-receiver", &receiver][..],
            "--fee-receiver needs a non-zero --fee-bps",
        ),
        (
            &["--fee-bps", "2000", "--fee-receiver", &receiver][..],
            "--fee-bps 2000 is above the maximum network fee of 1000 bps",
        ),
        (
            &["--fee-bps", "100", "--fee-receiver", &zero][..],
            "--fee-receiver must not be the zero address",
        ),
        (
            &["--governor", &zero][..],
            "--governor must not be the zero address",
        ),
        (
            &["--governance", "account", "--timelock-delay", "60"][..],
            "--timelock-delay needs --governance timelock",
        ),
        (
            &["--admin-transfer-delay", "4294967296"][..],
            "invalid value '4294967296' for '--admin-transfer-delay <SECONDS>'",
        ),
        (
            &["--governance", "multisig"][..],
            "invalid value 'multisig'",
        ),
        (
            &["--confirmations", "0"][..],
            "invalid value '0' for '--confirmations",
        ),
        (&["--password-file", "/nonexistent"][..], "--keystore"),
    ] {
        let mut all = vec!["deploy", "--rpc-url", &endpoint];
        all.extend_from_slice(args);
        let output = run_as(&keys[0], &all);
        assert!(!output.status.success(), "{args:?}");
        assert!(
            stderr(&output).contains(message),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    assert_eq!(nonce(&devnet, keys[0].address()), 0, "nothing was sent");
}

#[test]
fn a_second_deploy_or_an_unwritable_output_is_refused_before_sending_anything() {
    let devnet = Devnet::start().expect("anvil");
    let keys = keys(&devnet);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("devnet.json");
    let endpoint = devnet.endpoint();
    let args = deploy_args(&endpoint, out.to_str().unwrap(), &["--timelock-delay", "0"]);
    let first = run_as(&keys[0], &args);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(
        stderr(&first).contains(&format!("deployer {} on chain 31337", keys[0].address())),
        "{}",
        stderr(&first)
    );
    let recorded = std::fs::read_to_string(&out).unwrap();
    let sent = nonce(&devnet, keys[0].address());
    assert_eq!(sent, TRANSACTIONS);

    let again = run_as(&keys[0], &args);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("exists: a suite is already deployed on this chain"),
        "{}",
        stderr(&again)
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), recorded);
    assert_eq!(nonce(&devnet, keys[0].address()), sent, "nothing was sent");

    // A file stands where the output's folder should be.
    let blocked = dir.path().join("not-a-folder");
    std::fs::write(&blocked, "").unwrap();
    let unwritable = blocked.join("devnet.json");
    let output = run_as(
        &keys[0],
        &deploy_args(
            &endpoint,
            unwritable.to_str().unwrap(),
            &["--timelock-delay", "0"],
        ),
    );
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("for the addresses file"),
        "{}",
        stderr(&output)
    );
    assert_eq!(nonce(&devnet, keys[0].address()), sent, "nothing was sent");

    let mut replace = args.clone();
    replace.push("--overwrite");
    let replaced = run_as(&keys[0], &replace);
    assert!(replaced.status.success(), "{}", stderr(&replaced));
    assert_ne!(std::fs::read_to_string(&out).unwrap(), recorded);
}

#[test]
fn a_deployer_without_funds_is_told_before_anything_is_sent() {
    let devnet = Devnet::start().expect("anvil");
    let broke = PrivateKeySigner::random();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    let output = run_as(
        &broke,
        &deploy_args(
            &devnet.endpoint(),
            out.to_str().unwrap(),
            &["--timelock-delay", "0"],
        ),
    );
    assert!(!output.status.success());
    let text = stderr(&output);
    assert!(
        text.contains(&format!("the deployer {} holds 0 wei", broke.address())),
        "{text}"
    );
    assert!(text.contains("nothing was sent"), "{text}");
    assert!(!out.exists());
}

#[test]
fn a_keystore_opens_with_its_password_file_and_a_wrong_password_is_refused() {
    let devnet = Devnet::start().expect("anvil");
    let keys = keys(&devnet);
    let dir = tempfile::tempdir().unwrap();
    let (_, name) = PrivateKeySigner::encrypt_keystore(
        dir.path(),
        &mut rand::thread_rng(),
        keys[0].to_bytes(),
        "correct horse",
        Some("deployer.json"),
    )
    .unwrap();
    let keystore = dir.path().join("deployer.json");
    assert_eq!(name.len(), 36, "a UUID");
    let good = dir.path().join("password");
    std::fs::write(&good, "correct horse\n").unwrap();
    let bad = dir.path().join("wrong");
    std::fs::write(&bad, "battery staple\n").unwrap();
    let out = dir.path().join("out.json");
    let endpoint = devnet.endpoint();

    let wrong = insitu()
        .args(deploy_args(
            &endpoint,
            out.to_str().unwrap(),
            &["--timelock-delay", "0"],
        ))
        .args(["--keystore", keystore.to_str().unwrap()])
        .args(["--password-file", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    let text = stderr(&wrong);
    assert!(text.contains("wrong password for the keystore"), "{text}");
    assert!(
        !text.contains("battery"),
        "the password is not echoed: {text}"
    );
    assert_eq!(nonce(&devnet, keys[0].address()), 0);

    let right = insitu()
        .args(deploy_args(
            &endpoint,
            out.to_str().unwrap(),
            &["--timelock-delay", "0"],
        ))
        .args(["--keystore", keystore.to_str().unwrap()])
        .args(["--password-file", good.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(right.status.success(), "{}", stderr(&right));
    assert!(
        stderr(&right).contains(&format!("deployer {}", keys[0].address())),
        "{}",
        stderr(&right)
    );
    assert_eq!(nonce(&devnet, keys[0].address()), TRANSACTIONS);
}

#[test]
fn confirmations_that_never_come_time_out_and_the_deployment_resumes() {
    // anvil mines a block per transaction and no other: a second confirmation never comes.
    let devnet = Devnet::start().expect("anvil");
    let keys = keys(&devnet);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("31337.json");
    let journal = dir.path().join("31337.journal.json");
    let endpoint = devnet.endpoint();
    let args = deploy_args(&endpoint, out.to_str().unwrap(), &["--timelock-delay", "0"]);
    let mut waiting = args.clone();
    waiting.extend(["--confirmations", "2", "--confirmation-timeout", "2"]);
    let output = run_as(&keys[0], &waiting);
    assert!(!output.status.success());
    let text = stderr(&output);
    assert!(
        text.contains("`deploy GovernanceTimelock` (transaction 0x")
            && text.contains("did not get 2 confirmation(s) within 2 s"),
        "{text}"
    );
    assert!(
        text.contains("run the same command again to resume"),
        "{text}"
    );
    assert!(journal.exists());
    assert!(!out.exists());
    assert_eq!(nonce(&devnet, keys[0].address()), 1);

    // Resumed with one confirmation: the timelock is not deployed again.
    let resumed = run_as(&keys[0], &args);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert!(stderr(&resumed).contains("resuming the interrupted deployment"));
    assert!(
        stdout(&resumed).contains(", resumed"),
        "{}",
        stdout(&resumed)
    );
    assert_eq!(nonce(&devnet, keys[0].address()), TRANSACTIONS);
    assert!(
        !journal.exists(),
        "the journal is removed once the file is written"
    );
    let deployment = Deployment::read(&out).unwrap();
    assert_eq!(
        deployment.address("GovernanceTimelock").unwrap(),
        keys[0].address().create(0)
    );
}

#[test]
fn a_deployment_killed_midway_resumes_where_it_stopped() {
    let devnet = Devnet::start().expect("anvil");
    let keys = keys(&devnet);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("31337.json");
    let journal = dir.path().join("31337.journal.json");
    let endpoint = devnet.endpoint();
    let args = deploy_args(&endpoint, out.to_str().unwrap(), &["--timelock-delay", "0"]);

    // Killed once four transactions are confirmed.
    let mut child = insitu()
        .env("INSITU_PRIVATE_KEY", hex_key(&keys[0]))
        .args(&args)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut confirmed = 0;
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        if line.unwrap().starts_with("confirmed") {
            confirmed += 1;
            if confirmed == 4 {
                child.kill().unwrap();
                break;
            }
        }
    }
    let _ = child.wait();
    let sent = nonce(&devnet, keys[0].address());
    assert!((4..TRANSACTIONS).contains(&sent), "{sent}");
    assert!(journal.exists());
    assert!(!out.exists());

    // A different deployment is not mixed with the recorded one.
    let mut other = args.clone();
    other.extend(["--admin-transfer-delay", "60"]);
    let refused = run_as(&keys[0], &other);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("records an interrupted deployment with other options"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(nonce(&devnet, keys[0].address()), sent);

    let resumed = run_as(
        &keys[0],
        &["--json"].iter().chain(&args).copied().collect::<Vec<_>>(),
    );
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let report = json(&resumed);
    assert_eq!(report["resumed"], true);
    assert_eq!(
        report["transactions"].as_array().unwrap().len() as u64,
        TRANSACTIONS
    );
    assert_eq!(
        nonce(&devnet, keys[0].address()),
        TRANSACTIONS,
        "no step sent twice"
    );
    assert!(!journal.exists());
    let deployment = Deployment::read(&out).unwrap();
    assert_eq!(
        deployment.address("AgreementStore").unwrap(),
        keys[0].address().create(1)
    );
    assert_eq!(report["governance_done"], true);
}

#[test]
fn a_template_someone_else_proposed_first_counts_as_proposed() {
    // Proposing is open to anyone: a front-runner proposes the access template between its
    // creation and the deployer's proposal. Here the deployment stops after the templates are
    // created (a time out), the outsider proposes, and the resumed deployment skips that step.
    let devnet = Devnet::start().expect("anvil");
    let keys = keys(&devnet);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("31337.json");
    let endpoint = devnet.endpoint();
    let args = deploy_args(&endpoint, out.to_str().unwrap(), &["--timelock-delay", "0"]);
    let deployer = keys[0].address();
    let store = deployer.create(1);
    let access_template = deployer.create(9);

    // Deploy the contracts only: kill after the templates are created.
    let mut child = insitu()
        .env("INSITU_PRIVATE_KEY", hex_key(&keys[0]))
        .args(&args)
        .args(["--confirmations", "2", "--confirmation-timeout", "600"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // With two confirmations, each step waits for the next block: mine them one at a time.
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut created = 0;
    while created < 11 {
        let line = lines.next().unwrap().unwrap();
        if line.starts_with("sent") {
            rpc(&devnet, "evm_mine", serde_json::json!([]));
        }
        if line.starts_with("confirmed") {
            created += 1;
        }
    }
    child.kill().unwrap();
    let _ = child.wait();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let provider = ProviderBuilder::new()
            .wallet(keys[5].clone())
            .connect_http(endpoint.parse().unwrap());
        let store = AgreementStore::new(store, &provider);
        store
            .proposeTemplate(access_template)
            .send()
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
        assert_eq!(
            store.templateState(access_template).call().await.unwrap(),
            PROPOSED
        );
    });

    let resumed = run_as(&keys[0], &args);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert!(
        stderr(&resumed).contains(&format!(
            "skipped    propose AccessTemplate           template {access_template} is already proposed"
        )),
        "{}",
        stderr(&resumed)
    );
    assert!(
        stdout(&resumed).contains("templates approved and network fee set"),
        "{}",
        stdout(&resumed)
    );
}

#[test]
fn the_default_is_a_two_day_timelock_with_the_batch_scheduled() {
    let devnet = Devnet::start().expect("anvil");
    let keys = keys(&devnet);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("devnet.json");
    let receiver = keys[3].address().to_string();
    let output = run_as(
        &keys[0],
        &deploy_args(
            &devnet.endpoint(),
            out.to_str().unwrap(),
            &["--fee-bps", "100", "--fee-receiver", &receiver],
        ),
    );
    let text = stdout(&output);
    assert!(output.status.success(), "{text}{}", stderr(&output));
    let deployment = Deployment::read(&out).expect("addresses file");
    let timelock_address = deployment.address("GovernanceTimelock").unwrap();
    assert!(text.contains("the governance batch is scheduled"), "{text}");
    assert!(
        text.contains(&format!("to {timelock_address} data 0x")),
        "{text}"
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let provider = ProviderBuilder::new().connect_http(devnet.endpoint().parse().unwrap());
        let timelock = GovernanceTimelock::new(timelock_address, &provider);
        assert_eq!(
            timelock.getMinDelay().call().await.unwrap(),
            U256::from(172_800)
        );
        let store = AgreementStore::new(deployment.address("AgreementStore").unwrap(), &provider);
        assert_eq!(
            store.defaultAdminDelay().call().await.unwrap(),
            U48::from(172_800)
        );
        assert_eq!(store.defaultAdmin().call().await.unwrap(), timelock_address);
    });
}

#[test]
fn another_proposer_is_told_what_to_send() {
    let devnet = Devnet::start().expect("anvil");
    let keys = keys(&devnet);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("devnet.json");
    let proposer = keys[1].address().to_string();
    let output = run_as(
        &keys[0],
        &deploy_args(
            &devnet.endpoint(),
            out.to_str().unwrap(),
            &["--governor", &proposer, "--timelock-delay", "600"],
        ),
    );
    let text = stdout(&output);
    assert!(output.status.success(), "{text}{}", stderr(&output));
    assert!(text.contains("NOT scheduled"), "{text}");
    assert!(text.contains(&proposer), "{text}");
    assert!(text.contains("600 seconds after"), "{text}");
}

#[test]
fn account_governance_or_no_delay_on_dev_chains_only() {
    let devnet = Devnet::start().expect("anvil");
    let keys = keys(&devnet);
    let dir = tempfile::tempdir().unwrap();
    for (extra, contracts, file) in [
        (&["--governance", "account"][..], CONTRACTS, "account.json"),
        (
            &["--timelock-delay", "0"][..],
            CONTRACTS + 1,
            "timelock.json",
        ),
    ] {
        let out = dir.path().join(file);
        let output = run_as(
            &keys[0],
            &deploy_args(&devnet.endpoint(), out.to_str().unwrap(), extra),
        );
        assert!(output.status.success(), "{extra:?}: {}", stderr(&output));
        assert!(stdout(&output).contains("templates approved and network fee set"));
        assert_eq!(Deployment::read(&out).unwrap().contracts.len(), contracts);
    }

    let testnet = Devnet::start_with(|anvil| anvil.chain_id(5)).expect("anvil");
    let out = dir.path().join("5.json");
    for (extra, message) in [
        (
            &["--governance", "account"][..],
            "governance by an account without a timelock is for development chains only",
        ),
        (
            &["--timelock-delay", "0"][..],
            "a governance timelock without delay is for development chains only",
        ),
    ] {
        let output = run_as(
            &keys[0],
            &deploy_args(&testnet.endpoint(), out.to_str().unwrap(), extra),
        );
        assert!(!output.status.success(), "{extra:?}");
        assert!(stderr(&output).contains(message), "{}", stderr(&output));
    }
    assert_eq!(nonce(&testnet, keys[0].address()), 0, "nothing was sent");
}

#[test]
fn completions_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let output = insitu().args(["completions", shell]).output().unwrap();
        assert!(output.status.success(), "{shell}");
        let script = stdout(&output);
        assert!(script.contains("insitu"), "{shell}");
        assert!(script.contains("deploy"), "{shell}");
    }
    let output = insitu()
        .args(["--json", "completions", "bash"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["shell"], "bash");
    assert!(json["script"].as_str().unwrap().contains("deploy"));
    let output = insitu().args(["completions", "cmd"]).output().unwrap();
    assert!(!output.status.success());
}

#[test]
fn a_new_keystore_is_created_once_and_shows_its_account() {
    let dir = tempfile::tempdir().unwrap();
    let keystore = dir.path().join("keeper-key.json");
    let password = dir.path().join("keeper-key.pass");
    std::fs::write(&password, "correct horse battery staple\n").unwrap();
    let keystore_arg = keystore.to_str().unwrap();
    let password_arg = password.to_str().unwrap();

    let created = insitu()
        .args([
            "--json",
            "key",
            "new",
            "--keystore",
            keystore_arg,
            "--password-file",
            password_arg,
        ])
        .output()
        .unwrap();
    assert!(created.status.success(), "{}", stderr(&created));
    let created = json(&created);
    let address: Address = created["address"].as_str().unwrap().parse().unwrap();
    assert!(created["public_key"].as_str().unwrap().starts_with("0x04"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&keystore).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "owner only");
    }
    let text = std::fs::read_to_string(&keystore).unwrap();
    assert!(text.contains("\"crypto\""), "an encrypted keystore");

    // It opens with its password, and shows the same account.
    let shown = insitu()
        .args([
            "--json",
            "key",
            "show",
            "--keystore",
            keystore_arg,
            "--password-file",
            password_arg,
        ])
        .output()
        .unwrap();
    assert!(shown.status.success(), "{}", stderr(&shown));
    assert_eq!(
        json(&shown)["address"]
            .as_str()
            .unwrap()
            .parse::<Address>()
            .unwrap(),
        address
    );

    // Never overwritten; a short password is refused and writes nothing.
    let again = insitu()
        .args([
            "key",
            "new",
            "--keystore",
            keystore_arg,
            "--password-file",
            password_arg,
        ])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("a keystore is never overwritten"),
        "{}",
        stderr(&again)
    );
    assert_eq!(std::fs::read_to_string(&keystore).unwrap(), text);
    let weak = dir.path().join("weak.pass");
    std::fs::write(&weak, "short\n").unwrap();
    let other = dir.path().join("other.json");
    let refused = insitu()
        .args([
            "key",
            "new",
            "--keystore",
            other.to_str().unwrap(),
            "--password-file",
            weak.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("at least 12 characters"),
        "{}",
        stderr(&refused)
    );
    assert!(!other.exists());

    // The environment's key is shown without a keystore.
    let from_env = insitu()
        .env(
            "INSITU_PRIVATE_KEY",
            hex_key(&PrivateKeySigner::from_bytes(&[7u8; 32].into()).unwrap()),
        )
        .args(["--json", "key", "show"])
        .output()
        .unwrap();
    assert!(from_env.status.success(), "{}", stderr(&from_env));
}
