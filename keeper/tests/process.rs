//! The keeper as its own process: killed (aborted) at each named crash point of a settlement and
//! restarted, the settlement finishes exactly once; the node stopped and restarted from its dumped
//! state while a settlement is in its pool; a 2 GiB file delivered with the keeper's memory
//! bounded; and two keepers of two providers on one chain, each settling only its own agreements.

mod common;

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use alloy::{
    primitives::{Address, B256, U256, hex},
    providers::{DynProvider, Provider},
    signers::local::PrivateKeySigner,
};
use insitu_bindings::MockERC20;
use insitu_client::{
    agreement::{self, ConditionState},
    devnet::Devnet,
    market::{self, KeeperClient, MarketError},
    metadata::ServiceKind,
    suite::Suite,
    tx::{Sender, Silent, TxOptions},
};

const PRICE: u128 = 1_000_000_000_000_000_000;

struct Chain {
    devnet: Devnet,
    _dir: tempfile::TempDir,
    root: PathBuf,
    provider: DynProvider,
    keys: Vec<PrivateKeySigner>,
    suite: Suite,
    addresses: PathBuf,
    token: Address,
}

async fn chain() -> Chain {
    chain_with(|anvil| anvil).await
}

/// A deployed suite on an anvil adjusted by `configure`.
async fn chain_with(
    configure: impl FnOnce(alloy::node_bindings::Anvil) -> alloy::node_bindings::Anvil,
) -> Chain {
    let devnet = Devnet::start_with(configure).expect("anvil");
    let deployed = common::deploy(&devnet, None, U256::from(PRICE) * U256::from(100)).await;
    let root = deployed.dir.path().to_path_buf();
    Chain {
        devnet,
        root,
        provider: deployed.provider,
        keys: deployed.keys,
        suite: deployed.suite,
        addresses: deployed.addresses,
        token: deployed.token,
        _dir: deployed.dir,
    }
}

/// A keeper process with its own folder, killed when dropped.
struct Keeper {
    child: Child,
    url: String,
    config: PathBuf,
    key: PrivateKeySigner,
    data: PathBuf,
}

impl Drop for Keeper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Chain {
    fn sender(&self, key: usize) -> Sender {
        Sender::new(
            self.provider.clone(),
            31_337,
            self.keys[key].clone(),
            TxOptions::default(),
        )
    }

    /// Writes the configuration of keeper `key` (publisher `publisher`) in `name/`.
    fn keeper_config(&self, name: &str, publisher: usize) -> (PathBuf, PathBuf, u16) {
        let folder = self.root.join(name);
        let data = folder.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = folder.join("keeper.toml");
        let settings = insitu_keeper::config::Config {
            rpc_url: self.devnet.endpoint(),
            addresses: self.addresses.clone(),
            confirmations: 0,
            poll_interval_ms: 100,
            listen: format!("127.0.0.1:{port}"),
            database: folder.join("keeper.db"),
            data_root: data.clone(),
            publishers: vec![self.keys[publisher].address()],
            ..insitu_keeper::config::Config::default()
        };
        std::fs::write(&config, settings.to_string()).unwrap();
        (config, data, port)
    }

    async fn start(
        &self,
        config: &Path,
        data: &Path,
        port: u16,
        key: usize,
        crash: Option<&str>,
    ) -> Keeper {
        let mut command = Command::new(env!("CARGO_BIN_EXE_insitu-keeper"));
        command
            .arg("--config")
            .arg(config)
            .env(
                "INSITU_KEEPER_PRIVATE_KEY",
                hex::encode(self.keys[key].to_bytes()),
            )
            .env_remove("INSITU_KEEPER_CRASH_AT")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(point) = crash {
            command.env("INSITU_KEEPER_CRASH_AT", point);
        }
        // Owned by the guard at once, so it is killed and reaped on every path.
        let keeper = Keeper {
            child: command.spawn().unwrap(),
            url: format!("http://127.0.0.1:{port}"),
            config: config.to_path_buf(),
            key: self.keys[key].clone(),
            data: data.to_path_buf(),
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(response) = http.get(format!("{}/ready", keeper.url)).send().await
                && response.status().is_success()
            {
                return keeper;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the keeper never became ready");
    }

    /// Publishes `content` as a file at `keeper` as `publisher`, returns the asset.
    async fn publish(&self, keeper: &Keeper, publisher: usize, content: &[u8]) -> B256 {
        let file = keeper.data.join("file.bin");
        std::fs::write(&file, content).unwrap();
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(content));
        self.publish_file(keeper, publisher, &file, content.len() as u64, &sha)
            .await
    }

    /// Publishes `file` (in `keeper`'s data folder, of `size` bytes and SHA-256 `sha`) at
    /// `keeper` as `publisher`, returns the asset.
    async fn publish_file(
        &self,
        keeper: &Keeper,
        publisher: usize,
        file: &Path,
        size: u64,
        sha: &str,
    ) -> B256 {
        let source = serde_json::to_vec(&serde_json::json!({
            "@context": "https://schema.org",
            "@type": "Dataset",
            "schemaVersion": "insitu-metadata/1",
            "name": "data",
            "description": "data",
            "author": "a",
            "license": "MIT",
            "files": [{
                "name": "file.bin",
                "contentType": "application/octet-stream",
                "contentSize": size,
                "sha256": sha,
                "location": format!("file://{}", file.display()),
            }],
            "services": [{
                "type": "access",
                "token": self.token.to_string(),
                "price": [{"receiver": self.keys[publisher].address().to_string(), "amount": PRICE.to_string()}],
                "timeout": {"min": 3600, "max": 86400}
            }]
        }))
        .unwrap();
        market::publish(
            &self.suite,
            &self.sender(publisher),
            &KeeperClient::new(&keeper.url),
            &source,
            B256::from(rand::random::<[u8; 32]>()),
            &Silent,
        )
        .await
        .unwrap()
        .did
    }

    async fn buy(&self, did: B256) -> B256 {
        market::buy(
            &self.suite,
            &self.sender(3),
            did,
            ServiceKind::Access,
            0,
            &Silent,
        )
        .await
        .unwrap()
        .quote
        .agreement_id
    }

    async fn download(&self, id: B256) -> Result<Vec<u8>, MarketError> {
        let out = self.root.join(format!("{id}.bin"));
        let mut ignore = |_| {};
        market::download(&self.suite, &self.sender(3), id, 0, &out, &mut ignore).await?;
        Ok(std::fs::read(&out).unwrap())
    }

    async fn nonce(&self, account: Address) -> u64 {
        self.provider.get_transaction_count(account).await.unwrap()
    }

    async fn payment_state(&self, id: B256) -> ConditionState {
        agreement::show(&self.suite, id, None)
            .await
            .unwrap()
            .payment_condition()
            .unwrap()
            .state
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keeper_killed_at_each_crash_point_settles_exactly_once_after_a_restart() {
    for point in ["after_sign", "after_send", "after_receipt"] {
        let chain = chain().await;
        let (config, data, port) = chain.keeper_config("keeper", 1);
        let mut keeper = chain.start(&config, &data, port, 2, Some(point)).await;
        let content: Vec<u8> = (0..50_000_u32).map(|i| (i % 256) as u8).collect();
        let did = chain.publish(&keeper, 1, &content).await;
        let id = chain.buy(did).await;

        // The settlement starts, and the process dies at the crash point.
        let first = chain.download(id).await;
        assert!(first.is_err(), "{point}: the keeper died before serving");
        let status = keeper.child.wait().unwrap();
        assert!(!status.success(), "{point}: aborted, not exited");
        let sent = chain.nonce(keeper.key.address()).await;
        assert!(sent <= 1, "{point}: {sent}");

        // Restarted on the same database: finished, served, settled once.
        let config = keeper.config.clone();
        drop(keeper);
        let _keeper = chain.start(&config, &data, port, 2, None).await;
        let bytes = chain.download(id).await.unwrap();
        assert_eq!(bytes, content, "{point}");
        assert_eq!(
            chain.payment_state(id).await,
            ConditionState::Released,
            "{point}"
        );
        assert_eq!(
            chain.nonce(chain.keys[2].address()).await,
            1,
            "{point}: exactly one settlement transaction"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_keepers_of_two_providers_each_settle_their_own() {
    let chain = chain().await;
    let (config_a, data_a, port_a) = chain.keeper_config("a", 1);
    let (config_b, data_b, port_b) = chain.keeper_config("b", 4);
    let keeper_a = chain.start(&config_a, &data_a, port_a, 2, None).await;
    let keeper_b = chain.start(&config_b, &data_b, port_b, 5, None).await;
    let did_a = chain.publish(&keeper_a, 1, b"provider a's data").await;
    let did_b = chain.publish(&keeper_b, 4, b"provider b's data").await;

    // Keeper b does not sign offers for provider a's asset.
    let offer = reqwest::get(format!("{}/v1/offers/{did_a}", keeper_b.url))
        .await
        .unwrap();
    assert_eq!(offer.status().as_u16(), 404);
    let body: serde_json::Value = offer.json().await.unwrap();
    assert_eq!(body["code"], "not_served_here");

    let id_a = chain.buy(did_a).await;
    let id_b = chain.buy(did_b).await;
    assert_eq!(chain.download(id_a).await.unwrap(), b"provider a's data");
    assert_eq!(chain.download(id_b).await.unwrap(), b"provider b's data");
    assert_eq!(chain.payment_state(id_a).await, ConditionState::Released);
    assert_eq!(chain.payment_state(id_b).await, ConditionState::Released);
    assert_eq!(chain.nonce(keeper_a.key.address()).await, 1);
    assert_eq!(chain.nonce(keeper_b.key.address()).await, 1);
    let token = MockERC20::new(chain.token, &chain.provider);
    assert_eq!(
        token
            .balanceOf(chain.keys[1].address())
            .call()
            .await
            .unwrap(),
        U256::from(PRICE)
    );
    assert_eq!(
        token
            .balanceOf(chain.keys[4].address())
            .call()
            .await
            .unwrap(),
        U256::from(PRICE)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settlement_pending_when_the_node_restarts_from_its_dumped_state_settles_once() {
    let states = tempfile::tempdir().unwrap();
    let state = states.path().join("anvil.json");
    let dump = state.display().to_string();
    let mut chain = chain_with(|anvil| anvil.args(["--dump-state", dump.as_str()])).await;
    let (config, data, port) = chain.keeper_config("keeper", 1);
    let keeper = chain.start(&config, &data, port, 2, None).await;
    let content = b"data the node forgot it was paid for".to_vec();
    let did = chain.publish(&keeper, 1, &content).await;
    let id = chain.buy(did).await;

    // Blocks are mined by hand from now on: the settlement stays in the node's pool.
    common::node_rpc(
        &chain.provider,
        "evm_setAutomine",
        serde_json::json!([false]),
    )
    .await;
    let download = {
        let (suite, consumer) = (chain.suite.clone(), chain.sender(3));
        let out = chain.root.join("download.bin");
        tokio::spawn(async move {
            let mut ignore = |_| {};
            market::download(&suite, &consumer, id, 0, &out, &mut ignore).await?;
            Ok::<_, MarketError>(std::fs::read(&out).unwrap())
        })
    };
    let keeper_account = keeper.key.address();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pending = chain
            .provider
            .get_transaction_count(keeper_account)
            .pending()
            .await
            .unwrap();
        if pending == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the settlement never reached the pool"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        chain.payment_state(id).await,
        ConditionState::Fulfilled,
        "paid, not released"
    );

    // The node stops gracefully (SIGTERM: it dumps its chain, not its pool) and comes back on
    // the same port from the dump.
    let pid = chain.devnet.instance().child().id();
    let stopped = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", chain.devnet.port())).is_ok()
        || !state.is_file()
    {
        assert!(Instant::now() < deadline, "anvil did not stop");
        std::thread::sleep(Duration::from_millis(100));
    }
    let port_of_node = chain.devnet.port();
    let load = state.display().to_string();
    chain.devnet = Devnet::start_with(|anvil| {
        anvil
            .port(port_of_node)
            .args(["--load-state", load.as_str()])
    })
    .expect("anvil restarted");
    assert_eq!(
        chain.nonce(keeper_account).await,
        0,
        "the reloaded chain has no settlement"
    );
    assert_eq!(
        chain
            .provider
            .get_transaction_count(keeper_account)
            .pending()
            .await
            .unwrap(),
        0,
        "nor does its pool"
    );

    // The keeper broadcasts its recorded transaction again; the consumer's request, still
    // waiting, is served.
    let bytes = tokio::time::timeout(Duration::from_secs(90), download)
        .await
        .expect("served in time")
        .unwrap()
        .unwrap();
    assert_eq!(bytes, content);
    assert_eq!(chain.payment_state(id).await, ConditionState::Released);
    assert_eq!(
        chain.nonce(keeper_account).await,
        1,
        "exactly one settlement transaction"
    );
    drop(keeper);
}

/// The peak resident memory of process `pid`, in bytes (Linux `VmHWM`).
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse().ok())
        .unwrap();
    kb * 1024
}

/// What the keeper's memory may reach while it serves a file of any size.
const KEEPER_MEMORY_BOUND: u64 = 100 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2_gib_file_is_delivered_whole_with_the_keepers_memory_bounded() {
    let chain = chain().await;
    let (config, data, port) = chain.keeper_config("keeper", 1);
    let keeper = chain.start(&config, &data, port, 2, None).await;
    // Sparse: it takes no disk, and reads as zeros but for a marker at each end.
    let size: u64 = 2 << 30;
    let big = data.join("big.bin");
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut file = std::fs::File::create(&big).unwrap();
        file.set_len(size).unwrap();
        file.write_all(b"first bytes").unwrap();
        file.seek(SeekFrom::Start(size - 10)).unwrap();
        file.write_all(b"last bytes").unwrap();
    }
    let sha = insitu_keeper::api::sha256_of(&big).await.unwrap();
    let did = chain.publish_file(&keeper, 1, &big, size, &sha).await;
    let id = chain.buy(did).await;

    let out = chain.root.join("downloaded.bin");
    let mut ignore = |_| {};
    let downloaded = market::download(&chain.suite, &chain.sender(3), id, 0, &out, &mut ignore)
        .await
        .unwrap();
    assert_eq!(downloaded.bytes, size);
    assert_eq!(std::fs::metadata(&out).unwrap().len(), size);
    assert_eq!(insitu_keeper::api::sha256_of(&out).await.unwrap(), sha);
    std::fs::remove_file(&out).unwrap();

    let peak = peak_rss(keeper.child.id());
    assert!(
        peak < KEEPER_MEMORY_BOUND,
        "the keeper's peak RSS reached {} MiB serving {} MiB",
        peak >> 20,
        size >> 20
    );
    assert_eq!(chain.payment_state(id).await, ConditionState::Released);
}

/// Runs `insitu-keeper --config <config> admin <args>` with keeper key `key`; returns success,
/// standard output and standard error.
fn admin(config: &Path, key: &PrivateKeySigner, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_insitu-keeper"))
        .arg("--config")
        .arg(config)
        .arg("admin")
        .args(args)
        .env("INSITU_KEEPER_PRIVATE_KEY", hex::encode(key.to_bytes()))
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `admin <args> --json`, parsed; panics with standard error when it fails.
fn admin_json(config: &Path, key: &PrivateKeySigner, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    let (ok, stdout, stderr) = admin(config, key, &all);
    assert!(ok, "admin {args:?}: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|error| panic!("{error}: {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_abandons_retries_and_reindexes_with_every_change_in_the_audit_log() {
    let chain = chain().await;
    let (config, data, port) = chain.keeper_config("keeper", 1);
    let keeper = chain.start(&config, &data, port, 2, None).await;
    let key = &keeper.key;
    let did = chain.publish(&keeper, 1, b"operator controls").await;
    let id = chain.buy(did).await;
    let id_text = id.to_string();

    // Listed once the watcher recorded it: paid, no settlement yet.
    let deadline = Instant::now() + Duration::from_secs(30);
    let listed = loop {
        let list = admin_json(&keeper.config, key, &["agreements"]);
        if let Some(line) = list
            .as_array()
            .unwrap()
            .iter()
            .find(|line| line["id"] == id_text)
        {
            break line.clone();
        }
        assert!(Instant::now() < deadline, "never listed: {list}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(listed["state"], "paid");
    assert_eq!(listed["settlement"], serde_json::Value::Null);
    let none = admin_json(&keeper.config, key, &["agreements", "--settlement", "none"]);
    assert_eq!(none.as_array().unwrap().len(), 1);
    let released = admin_json(&keeper.config, key, &["agreements", "--state", "released"]);
    assert!(released.as_array().unwrap().is_empty());

    // Bad input is refused with the reason, and nothing is written.
    let unknown = B256::repeat_byte(9).to_string();
    for (args, message) in [
        (
            vec!["abandon", id_text.as_str(), "--reason", " "],
            "a reason is required",
        ),
        (
            vec!["abandon", "0x1234", "--reason", "r"],
            "\"0x1234\" is not an agreement id",
        ),
        (
            vec!["retry", unknown.as_str(), "--reason", "r"],
            "no agreement of this keeper has id",
        ),
        (
            vec!["agreements", "--state", "lost"],
            "\"lost\" is not an agreement state",
        ),
        (
            vec!["reindex", "--from", "0", "--reason", "r"],
            "is before the deployment",
        ),
    ] {
        let (ok, _, stderr) = admin(&keeper.config, key, &args);
        assert!(!ok && stderr.contains(message), "{args:?}: {stderr}");
    }
    let shown = admin_json(&keeper.config, key, &["show", &id_text]);
    assert_eq!(shown["requests"], serde_json::json!([]));

    // Abandoned: the running keeper applies it, and neither settles nor serves the agreement.
    let abandoned = admin_json(
        &keeper.config,
        key,
        &[
            "abandon",
            &id_text,
            "--reason",
            "consumer under investigation",
        ],
    );
    assert_eq!(
        abandoned["result"], "applied: the settlement is abandoned",
        "{abandoned}"
    );
    match chain.download(id).await {
        Err(MarketError::Refused { code, message, .. }) => {
            assert_eq!(code, "settlement_abandoned");
            assert!(
                message.contains("consumer under investigation"),
                "{message}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(chain.nonce(key.address()).await, 0, "nothing sent");

    // Retried: settled and served once.
    let retried = admin_json(
        &keeper.config,
        key,
        &["retry", &id_text, "--reason", "investigation closed"],
    );
    assert_eq!(retried["result"], "applied: the settlement is pending");
    assert_eq!(chain.download(id).await.unwrap(), b"operator controls");
    assert_eq!(chain.nonce(key.address()).await, 1);
    assert_eq!(chain.payment_state(id).await, ConditionState::Released);
    // Nothing left to retry.
    let again = admin_json(
        &keeper.config,
        key,
        &["retry", &id_text, "--reason", "again"],
    );
    assert_eq!(
        again["result"],
        "refused: the settlement is confirmed: nothing is left to do"
    );

    // The whole story, in order, in the audit log.
    let deadline = Instant::now() + Duration::from_secs(30);
    let shown = loop {
        let shown = admin_json(&keeper.config, key, &["show", &id_text]);
        if shown["agreement"]["state"] == "released" {
            break shown;
        }
        assert!(Instant::now() < deadline, "never released: {shown}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(shown["settlement"]["state"], "confirmed");
    assert_eq!(shown["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(shown["requests"].as_array().unwrap().len(), 3);
    let story: Vec<String> = shown["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| {
            format!(
                "{} {}",
                line["actor"].as_str().unwrap(),
                line["event"].as_str().unwrap()
            )
        })
        .collect();
    let expected = [
        "watcher chain: created",
        "watcher chain: paid",
        "operator abandon requested",
        "keeper settlement abandoned",
        "operator retry requested",
        "executor settlement abandoned -> pending",
        "executor transaction signed",
        "executor settlement pending -> signed",
        "executor settlement signed -> sent",
        "executor settlement sent -> confirmed",
        "operator retry requested",
    ];
    let mut at = 0;
    for line in &story {
        if at < expected.len() && line == expected[at] {
            at += 1;
        }
    }
    assert_eq!(at, expected.len(), "{story:#?}");
    assert!(
        story.contains(&"watcher chain: released".to_owned()),
        "{story:#?}"
    );
    let text = admin(&keeper.config, key, &["show", &id_text]).1;
    assert!(text.contains("settlement: confirmed"), "{text}");
    assert!(text.contains("investigation closed"), "{text}");

    // A re-index goes back to the deployment's block, scans forward again, and is logged.
    let deployed = insitu_bindings::addresses::Deployment::read(&chain.addresses)
        .unwrap()
        .block
        .to_string();
    let reindexed = admin_json(
        &keeper.config,
        key,
        &[
            "reindex",
            "--from",
            &deployed,
            "--reason",
            "the node dropped logs",
        ],
    );
    assert!(
        reindexed["result"]
            .as_str()
            .unwrap()
            .starts_with(&format!("applied: scanning again from block {deployed}")),
        "{reindexed}"
    );
    let log = admin_json(&keeper.config, key, &["log", "--limit", "5"]);
    assert!(
        log.as_array().unwrap().iter().any(|line| line["event"]
            == format!("re-index from block {deployed} requested")
            && line["agreement_id"].is_null()),
        "{log}"
    );
    // Scanned again, nothing doubled: once a later purchase is recorded, the re-scan has passed
    // the first agreement's blocks.
    let later = chain.buy(did).await.to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !admin_json(&keeper.config, key, &["agreements"])
        .as_array()
        .unwrap()
        .iter()
        .any(|line| line["id"] == later)
    {
        assert!(
            Instant::now() < deadline,
            "the later purchase was never recorded"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let shown = admin_json(&keeper.config, key, &["show", &id_text]);
    assert_eq!(
        shown["events"].as_array().unwrap().len(),
        4,
        "created, paid, served, released: {shown}"
    );
    let created_lines = shown["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|line| line["event"] == "chain: created")
        .count();
    assert_eq!(
        created_lines, 1,
        "a re-scan finds the events already there: {shown}"
    );

    // The balance, against the threshold.
    let balance = admin_json(&keeper.config, key, &["balance"]);
    assert_eq!(
        balance["account"]
            .as_str()
            .unwrap()
            .parse::<Address>()
            .unwrap(),
        key.address()
    );
    assert_eq!(balance["low"], false);
    assert!(balance["wei"].as_str().unwrap().starts_with("0x"));

    // A wrong database is not created empty.
    std::fs::write(
        keeper.config.with_file_name("other.toml"),
        std::fs::read_to_string(&keeper.config)
            .unwrap()
            .replace("keeper.db", "elsewhere.db"),
    )
    .unwrap();
    let (ok, _, stderr) = admin(
        &keeper.config.with_file_name("other.toml"),
        key,
        &["agreements"],
    );
    assert!(
        !ok && stderr.contains("there is no keeper store"),
        "{stderr}"
    );
    assert!(!keeper.config.with_file_name("elsewhere.db").exists());
}
