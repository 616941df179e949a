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
    market::{self, KeeperClient},
    metadata::ServiceKind,
    suite::Suite,
    tx::Silent,
};
use insitu_keeper::{
    config::{ComputeConfig, Config, FlowerRuntime, OutboundConfig, RuntimeConfig},
    service::{self, Running},
};

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

/// The `insitu-sandbox-init` binary next to this test's (built when missing).
fn sandbox_init() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let folder = exe.parent().and_then(Path::parent).unwrap();
    let init = folder.join("insitu-sandbox-init");
    if !init.exists() {
        let built = std::process::Command::new(env!("CARGO"))
            .args([
                "build",
                "-p",
                "insitu-sandbox",
                "--bin",
                "insitu-sandbox-init",
            ])
            .status()
            .unwrap();
        assert!(built.success(), "cannot build insitu-sandbox-init");
    }
    init
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

/// Runs a Python snippet of the Flower environment with `arguments`; returns its standard output.
async fn python(home: &Path, code: &str, arguments: &[&str]) -> Vec<u8> {
    let output = flower("python", home)
        .arg("-c")
        .arg(code)
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

/// The example app as Flower sends it to SuperNodes (its FAB): what the consumer orders.
const BUILD_FAB: &str = r#"
import sys, pathlib
from flwr.cli.build import build_fab_from_disk
sys.stdout.buffer.write(build_fab_from_disk(pathlib.Path(sys.argv[1])))
"#;

/// Writes a certificate authority and the SuperLink's certificate for 127.0.0.1 to the folder
/// named by its argument (`ca.pem`, `server.pem`, `server.key`).
const TLS: &str = r#"
import sys, pathlib, datetime, ipaddress
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
folder = pathlib.Path(sys.argv[1])
now = datetime.datetime.now(datetime.timezone.utc)
def certificate(subject, issuer, key, signer, extension):
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(extension, critical=False).sign(signer, hashes.SHA256()))
ca_key = ec.generate_private_key(ec.SECP384R1())
ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "consumer CA")])
ca = certificate(ca_name, ca_name, ca_key, ca_key, x509.BasicConstraints(ca=True, path_length=None))
key = ec.generate_private_key(ec.SECP384R1())
server = certificate(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]), ca_name,
                     key, ca_key,
                     x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]))
(folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
(folder / "server.pem").write_bytes(server.public_bytes(serialization.Encoding.PEM))
(folder / "server.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
"#;

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
        python(&home, TLS, &[tls.to_str().unwrap()]).await;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(folder.join("superlink.log")).unwrap();
        let superlink = flower("flower-superlink", &home)
            .args([
                "--disable-runtime-dependency-installation",
                "--enable-supernode-auth",
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ])
            .arg("--ssl-certfile")
            .arg(tls.join("server.pem"))
            .arg("--ssl-keyfile")
            .arg(tls.join("server.key"))
            .arg("--ssl-ca-certfile")
            .arg(tls.join("ca.pem"))
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

    /// Runs the example app for `rounds` rounds across `nodes` SuperNodes; returns what the
    /// ServerApp wrote (`rounds.json`) and what `flwr run` printed, or nothing if the run did
    /// not end within five minutes.
    async fn run(&self, rounds: u32, nodes: usize) -> Option<(serde_json::Value, String)> {
        let output = self.home.join("result");
        let run = flower("flwr", &self.home)
            .arg("run")
            .arg(root().join("examples/federated"))
            .arg("consumer")
            .arg("--stream")
            .arg("--run-config")
            .arg(format!(
                "num-server-rounds={rounds} min-nodes={nodes} output-dir=\"{}\"",
                output.display()
            ))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output();
        let run = tokio::time::timeout(Duration::from_secs(300), run)
            .await
            .ok()?
            .unwrap();
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        );
        assert!(run.status.success(), "{printed}");
        let written = std::fs::read(output.join("rounds.json")).unwrap();
        Some((serde_json::from_slice(&written).unwrap(), printed))
    }
}

/// One provider: its keeper (its own account, store, data and work folders) and its partition.
struct Provider {
    key: PrivateKeySigner,
    keeper: Running,
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
    aggregator: Aggregator,
}

/// Anvil's accounts the keepers use: 2 (as in the other tests), then 4 and 5.
const KEEPER_ACCOUNTS: [usize; PROVIDERS] = [2, 4, 5];

async fn world() -> World {
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
        &std::fs::read_to_string(root().join("examples/federated/make_partitions.py")).unwrap(),
        &[partitions.to_str().unwrap()],
    )
    .await;
    let fab = python(
        &aggregator.home,
        BUILD_FAB,
        &[root().join("examples/federated").to_str().unwrap()],
    )
    .await;
    let mut providers = Vec::new();
    for (index, account) in KEEPER_ACCOUNTS.into_iter().enumerate() {
        let root_k = folder.join(format!("keeper-{index}"));
        std::fs::create_dir_all(root_k.join("data")).unwrap();
        std::fs::copy(
            partitions.join(format!("provider-{index}/data.csv")),
            root_k.join("data/data.csv"),
        )
        .unwrap();
        let config = Config {
            rpc_url: devnet.endpoint(),
            chain_id: 31_337,
            addresses: addresses.clone(),
            confirmations: 0,
            poll_interval_ms: 100,
            listen: "127.0.0.1:0".to_owned(),
            database: root_k.join("keeper.db"),
            data_root: root_k.join("data"),
            publishers: vec![keys[1].address()],
            // The consumer's aggregator runs on this machine.
            outbound: OutboundConfig {
                allow: vec!["127.0.0.0/8".parse().unwrap()],
            },
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
                    }),
                }],
                ..ComputeConfig::default()
            }),
            ..Config::default()
        };
        let keeper = service::start(&config, keys[account].clone(), None)
            .await
            .unwrap();
        providers.push(Provider {
            key: keys[account].clone(),
            keeper,
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
        aggregator,
    }
}

/// The federated compute policy: only the example app, by its SHA-256.
fn policy(fab: &[u8]) -> serde_json::Value {
    serde_json::json!({
        "algorithms": {"any": false, "sha256": [hex::encode(<sha2::Sha256 as sha2::Digest>::digest(fab))]},
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
                "compute": policy(&self.fab)
            }]
        }))
        .unwrap();
        market::publish(
            &self.suite,
            &common::suite_sender(&self.suite, &self.keys[1]),
            &KeeperClient::new(&format!("http://{}", provider.keeper.address)),
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

    fn order(&self, rounds: u32) -> Order {
        Order {
            algorithm: compute::Algorithm::File(self.fab.clone()),
            runtime: "flower".into(),
            params: [
                ("superlink", format!("127.0.0.1:{}", self.aggregator.port)),
                ("superlink-ca", self.aggregator.ca.clone()),
                ("rounds", rounds.to_string()),
            ]
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect(),
        }
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

    /// The SuperNode key job `id` shows once it runs.
    async fn supernode_key(&self, id: B256) -> String {
        for _ in 0..600 {
            let status = compute::status(&self.suite, &self.consumer(), id)
                .await
                .unwrap();
            if let Some(key) = status.supernode_key {
                return key;
            }
            assert!(!status.is_final(), "{status:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("job {id} never showed its SuperNode key");
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
    let world = world().await;
    let mut dids = Vec::new();
    for index in 0..PROVIDERS {
        dids.push(world.publish(index).await);
    }
    // One agreement and one escrow per provider, on its own offer: one approval of the sum,
    // then one purchase each.
    let before = transactions(&world, world.keys[3].address()).await;
    let agreements: Vec<(B256, B256)> = dids
        .iter()
        .copied()
        .zip(world.buy_all(&dids).await)
        .collect();
    assert_eq!(
        transactions(&world, world.keys[3].address()).await - before,
        PROVIDERS as u64 + 1
    );
    for (_, id) in &agreements {
        let queued = compute::submit(&world.suite, &world.consumer(), *id, &world.order(3))
            .await
            .unwrap();
        assert_eq!(queued.phase, "queued");
    }
    // Each job shows its SuperNode's key; the consumer lets exactly those into its SuperLink.
    let mut keys = Vec::new();
    for (_, id) in &agreements {
        let key = world.supernode_key(*id).await;
        assert!(key.starts_with("ecdsa-sha2-nistp384 "), "{key}");
        world.aggregator.register(&key).await;
        keys.push(key);
    }
    keys.dedup();
    assert_eq!(keys.len(), PROVIDERS, "a key per job");

    let Some((rounds, printed)) = world.aggregator.run(3, PROVIDERS).await else {
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
