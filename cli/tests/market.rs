//! `insitu publish`, `buy` and `download` against a real anvil node and the keeper as its own
//! process: the provider's and the consumer's path through the command.

mod common;

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use alloy::{
    primitives::{U256, hex},
    providers::ProviderBuilder,
};
use common::{json, keys, run_as, stderr};
use insitu_bindings::MockERC20;
use insitu_client::devnet::Devnet;

struct KeeperProcess(Child);

impl Drop for KeeperProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn keeper_binary() -> PathBuf {
    let path = std::path::Path::new(env!("CARGO_BIN_EXE_insitu")).with_file_name("insitu-keeper");
    assert!(
        path.exists(),
        "{} is missing: build the workspace (cargo build -p insitu-keeper)",
        path.display()
    );
    path
}

/// A deployed suite on anvil, a token with the consumer (keys[3]) funded, a data file, and the
/// provider's keeper as its own process (keys[2], publisher keys[1]), with `extra` appended to
/// its configuration.
struct Market {
    _devnet: Devnet,
    keys: Vec<alloy::signers::local::PrivateKeySigner>,
    _dir: tempfile::TempDir,
    root: PathBuf,
    endpoint: String,
    out: PathBuf,
    token: alloy::primitives::Address,
    data: PathBuf,
    content: Vec<u8>,
    keeper_url: String,
    runtime: tokio::runtime::Runtime,
    _keeper: KeeperProcess,
}

impl Market {
    fn suite_args(&self) -> [&str; 4] {
        [
            "--rpc-url",
            self.endpoint.as_str(),
            "--addresses",
            self.out.to_str().unwrap(),
        ]
    }
}

fn market(extra: &str) -> Market {
    let devnet = Devnet::start().expect("anvil");
    let keys = keys(&devnet);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let root = root.as_path();
    let endpoint = devnet.endpoint();

    // The operator deploys.
    let out = root.join("deployments/31337.json");
    let deployed = run_as(
        &keys[0],
        &[
            "deploy",
            "--rpc-url",
            &endpoint,
            "--timelock-delay",
            "0",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(deployed.status.success(), "{}", stderr(&deployed));

    // A token, the consumer funded.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let token = runtime.block_on(async {
        let provider = ProviderBuilder::new()
            .wallet(keys[0].clone())
            .connect_http(endpoint.parse().unwrap());
        let token = MockERC20::deploy(&provider, "T".into(), "T".into(), 18)
            .await
            .unwrap();
        token
            .mint(keys[3].address(), U256::from(10_u64).pow(U256::from(21)))
            .send()
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
        *token.address()
    });

    // The provider's keeper, as its own process.
    let data = root.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let content: Vec<u8> = (0..70_000_u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(data.join("set.bin"), &content).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = root.join("keeper.toml");
    std::fs::write(
        &config,
        format!(
            "rpc_url = \"{endpoint}\"\naddresses = \"{}\"\nconfirmations = 0\npoll_interval_ms = 100\n\
             listen = \"127.0.0.1:{port}\"\ndatabase = \"{}\"\ndata_root = \"{}\"\npublishers = [\"{}\"]\n{extra}",
            out.display(),
            root.join("keeper.db").display(),
            data.display(),
            keys[1].address()
        ),
    )
    .unwrap();
    let keeper = KeeperProcess(
        Command::new(keeper_binary())
            .arg("--config")
            .arg(&config)
            .env("INSITU_KEEPER_PRIVATE_KEY", hex::encode(keys[2].to_bytes()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let keeper_url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the keeper never listened");
        std::thread::sleep(Duration::from_millis(100));
    }

    Market {
        _devnet: devnet,
        keys,
        root: root.to_path_buf(),
        _dir: dir,
        endpoint,
        out,
        token,
        data,
        content,
        keeper_url,
        runtime,
        _keeper: keeper,
    }
}

#[test]
fn publish_buy_and_download_through_the_command() {
    let market = market("");
    let Market {
        keys,
        root,
        endpoint,
        out,
        token,
        data,
        content,
        keeper_url,
        runtime,
        ..
    } = &market;
    let (root, endpoint, out, token, data, keeper_url) = (
        root.as_path(),
        endpoint.clone(),
        out.clone(),
        *token,
        data.clone(),
        keeper_url.clone(),
    );
    // An invalid document: every offending field, nothing sent.
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(content));
    let document = |min_timeout: u64| {
        serde_json::json!({
            "@context": "https://schema.org",
            "@type": "Dataset",
            "schemaVersion": "insitu-metadata/1",
            "name": "set",
            "description": "a set",
            "author": "lab",
            "license": "MIT",
            "files": [{
                "name": "set.bin",
                "contentType": "application/octet-stream",
                "contentSize": content.len(),
                "sha256": sha,
                "location": format!("file://{}", data.join("set.bin").display()),
            }],
            "services": [{
                "type": "access",
                "token": token.to_string(),
                "price": [{"receiver": keys[1].address().to_string(), "amount": "5000"}],
                "timeout": {"min": min_timeout, "max": 86400}
            }]
        })
    };
    let metadata = root.join("metadata.json");
    let suite_args = [
        "--rpc-url",
        endpoint.as_str(),
        "--addresses",
        out.to_str().unwrap(),
    ];
    std::fs::write(&metadata, document(60).to_string()).unwrap();
    let mut args = vec![
        "publish",
        metadata.to_str().unwrap(),
        "--keeper",
        &keeper_url,
    ];
    args.extend(suite_args);
    let refused = run_as(&keys[1], &args);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("/services/0/timeout/min"),
        "{}",
        stderr(&refused)
    );

    // Published, bought, downloaded.
    std::fs::write(&metadata, document(3600).to_string()).unwrap();
    let mut args = vec![
        "--json",
        "publish",
        metadata.to_str().unwrap(),
        "--keeper",
        &keeper_url,
    ];
    args.extend(suite_args);
    let published = run_as(&keys[1], &args);
    assert!(published.status.success(), "{}", stderr(&published));
    let did = json(&published)["did"].as_str().unwrap().to_owned();

    let mut args = vec!["--json", "buy", &did];
    args.extend(suite_args);
    let bought = run_as(&keys[3], &args);
    assert!(bought.status.success(), "{}", stderr(&bought));
    let bought = json(&bought);
    assert_eq!(bought["quote"]["price"], "0x1388");
    let agreement = bought["quote"]["agreement_id"].as_str().unwrap().to_owned();

    let file = root.join("received.bin");
    let mut args = vec![
        "--json",
        "download",
        &agreement,
        "-o",
        file.to_str().unwrap(),
    ];
    args.extend(suite_args);
    let downloaded = run_as(&keys[3], &args);
    assert!(downloaded.status.success(), "{}", stderr(&downloaded));
    assert_eq!(&std::fs::read(&file).unwrap(), content);
    assert_eq!(json(&downloaded)["sha256"], sha);

    // Someone else cannot download it.
    let other = root.join("stolen.bin");
    let mut args = vec!["download", &agreement, "-o", other.to_str().unwrap()];
    args.extend(suite_args);
    let refused = run_as(&keys[6], &args);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("wrong_consumer"),
        "{}",
        stderr(&refused)
    );
    assert!(!other.exists());

    // A token for a player: its URL alone fetches the file.
    let mut args = vec!["--json", "access-token", &agreement];
    args.extend(suite_args);
    let issued = run_as(&keys[3], &args);
    assert!(issued.status.success(), "{}", stderr(&issued));
    let url = json(&issued)["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&format!("{keeper_url}/v1/access/{agreement}?file=0&token=")));
    let fetched =
        runtime.block_on(async { reqwest::get(&url).await.unwrap().bytes().await.unwrap() });
    assert_eq!(fetched.as_ref(), content.as_slice());
    let mut args = vec!["access-token", &agreement];
    args.extend(suite_args);
    let refused = run_as(&keys[6], &args);
    assert!(
        !refused.status.success() && stderr(&refused).contains("wrong_consumer"),
        "{}",
        stderr(&refused)
    );

    // The agreement is settled: paid to the provider.
    let mut args = vec!["--json", "agreement", "show", &agreement];
    args.extend(suite_args);
    let shown = json(&run_as(&keys[3], &args));
    assert_eq!(shown["conditions"][0]["state"], "released");
}

#[test]
fn compute_orders_follows_and_fetches_the_result_through_the_command() {
    let market = market("[compute]\nwork_root = \"compute\"\ngrace_secs = 1\n");
    let keys = &market.keys;
    let suite_args = market.suite_args();
    let visits = "age,stay_days\n34,2\n61,5\n47,3.5\n";
    std::fs::write(market.data.join("visits.csv"), visits).unwrap();
    let document = serde_json::json!({
        "@context": "https://schema.org",
        "@type": "Dataset",
        "schemaVersion": "insitu-metadata/1",
        "name": "visits", "description": "visits", "author": "hospital",
        "license": "LicenseRef-compute-only",
        "files": [{
            "name": "visits.csv",
            "contentType": "text/csv",
            "contentSize": visits.len(),
            "sha256": hex::encode(<sha2::Sha256 as sha2::Digest>::digest(visits.as_bytes())),
            "location": format!("file://{}", market.data.join("visits.csv").display()),
        }],
        "services": [{
            "type": "compute",
            "token": market.token.to_string(),
            "price": [{"receiver": keys[1].address().to_string(), "amount": "7000"}],
            "timeout": {"min": 3600, "max": 86400},
            "compute": {
                "algorithms": {"any": true},
                "runtimes": ["python3"],
                "limits": {"wallSecs": 60, "memoryMb": 128, "cpuPercent": 100, "pids": 32,
                           "outputMb": 4, "tmpMb": 16, "logKb": 64},
                "logs": "consumer",
                "resultRetentionDays": 7
            }
        }]
    });
    let metadata = market.root.join("compute.json");
    std::fs::write(&metadata, document.to_string()).unwrap();
    let mut args = vec![
        "--json",
        "publish",
        metadata.to_str().unwrap(),
        "--keeper",
        &market.keeper_url,
    ];
    args.extend(suite_args);
    let published = run_as(&keys[1], &args);
    assert!(published.status.success(), "{}", stderr(&published));
    let did = json(&published)["did"].as_str().unwrap().to_owned();

    // A bad parameter is refused before anything is sent.
    let algorithm = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/algorithms/summary.py"
    );
    let mut args = vec![
        "compute",
        &did,
        "--algorithm",
        algorithm,
        "--param",
        "columns",
    ];
    args.extend(suite_args);
    let refused = run_as(&keys[3], &args);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("NAME=VALUE"),
        "{}",
        stderr(&refused)
    );

    // Bought, ordered, followed to its end.
    let mut args = vec![
        "--json",
        "compute",
        &did,
        "--algorithm",
        algorithm,
        "--param",
        "columns=age",
    ];
    args.extend(suite_args);
    let computed = run_as(&keys[3], &args);
    assert!(computed.status.success(), "{}", stderr(&computed));
    let computed = json(&computed);
    assert_eq!(computed["job"]["phase"], "done", "{computed}");
    assert_eq!(computed["bought"]["quote"]["price"], "0x1b58");
    let agreement = computed["agreement"].as_str().unwrap().to_owned();

    // The result, downloaded by the consumer.
    let out = market.root.join("summary.json");
    let mut args = vec![
        "--json",
        "download",
        &agreement,
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend(suite_args);
    let downloaded = run_as(&keys[3], &args);
    assert!(downloaded.status.success(), "{}", stderr(&downloaded));
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(summary["visits.csv"]["rows"], 3);
    assert_eq!(summary["visits.csv"]["columns"]["age"]["max"], 61.0);
    assert!(summary["visits.csv"]["columns"].get("stay_days").is_none());

    // Followed for people: its phase and its log lines.
    let mut args = vec!["job", "wait", &agreement];
    args.extend(suite_args);
    let waited = run_as(&keys[3], &args);
    assert!(waited.status.success(), "{}", stderr(&waited));
    assert!(stderr(&waited).contains("job done"), "{}", stderr(&waited));
    assert!(
        stderr(&waited).contains("  | summarised visits.csv"),
        "{}",
        stderr(&waited)
    );
    let text = String::from_utf8_lossy(&waited.stdout);
    assert!(text.contains("download it with: insitu download"), "{text}");

    // Status, logs; a stop comes too late; another account sees nothing.
    let mut args = vec!["--json", "job", "status", &agreement];
    args.extend(suite_args);
    let status = run_as(&keys[3], &args);
    assert!(status.status.success(), "{}", stderr(&status));
    assert_eq!(json(&status)["job"]["phase"], "done");
    let mut args = vec!["--json", "job", "logs", &agreement];
    args.extend(suite_args);
    let logs = run_as(&keys[3], &args);
    assert!(
        json(&logs)["logs"]
            .as_str()
            .unwrap()
            .contains("summarised visits.csv")
    );
    let mut args = vec!["job", "stop", &agreement];
    args.extend(suite_args);
    let late = run_as(&keys[3], &args);
    assert!(
        !late.status.success() && stderr(&late).contains("job_ended"),
        "{}",
        stderr(&late)
    );
    let mut args = vec!["job", "status", &agreement];
    args.extend(suite_args);
    let stranger = run_as(&keys[6], &args);
    assert!(
        !stranger.status.success() && stderr(&stranger).contains("wrong_consumer"),
        "{}",
        stderr(&stranger)
    );
}
