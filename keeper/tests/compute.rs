//! Compute in situ against a real anvil node and the real sandbox: a consumer buys compute on a
//! compute-only asset, orders a job with the sample algorithm, and the keeper stages the data,
//! runs it, stores the result with its provenance; failing, stopped and refused jobs. Needs
//! bubblewrap and a cgroup memory controller, as the sandbox's own tests do.

mod common;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use alloy::{
    primitives::{Address, B256, U256, hex},
    signers::local::PrivateKeySigner,
};
use insitu_client::{
    compute::{self, JobStatus, Order},
    devnet::Devnet,
    market::{self, KeeperClient, MarketError},
    metadata::{self, ServiceKind},
    suite::Suite,
    tx::{Sender, Silent},
};
use insitu_keeper::{
    compute::runner::result_did,
    config::{ComputeConfig, Config},
    service::{self, Running},
    store::{JobPhase, Store},
};

use common::{KeeperProcess, sandbox_init};

const PRICE: u128 = 40_000_000_000_000_000_000;
const SUMMARY: &[u8] = include_bytes!("../../examples/algorithms/summary.py");
const VISITS: &str = "age,stay_days,ward\n34,2,A\n61,5,B\n47,3.5,A\n29,1,C\n";

struct Setup {
    _devnet: Devnet,
    _dir: tempfile::TempDir,
    root: PathBuf,
    keys: Vec<PrivateKeySigner>,
    suite: Suite,
    token: Address,
    keeper: Running,
    database: PathBuf,
    work_root: PathBuf,
}

async fn setup() -> Setup {
    setup_with(|_| {}).await
}

/// [`setup`] with the keeper's compute settings adjusted by `configure`.
async fn setup_with(configure: impl FnOnce(&mut ComputeConfig)) -> Setup {
    let devnet = Devnet::start().expect("anvil");
    let common::Deployed {
        dir,
        addresses,
        keys,
        suite,
        token,
        ..
    } = common::deploy(&devnet, None, U256::from(PRICE) * U256::from(10)).await;
    let root = dir.path().to_path_buf();
    std::fs::create_dir_all(root.join("data")).unwrap();
    std::fs::write(root.join("data/visits.csv"), VISITS).unwrap();
    let work_root = root.join("compute");
    let mut config = Config {
        rpc_url: devnet.endpoint(),
        chain_id: 31_337,
        addresses,
        confirmations: 0,
        poll_interval_ms: 100,
        listen: "127.0.0.1:0".to_owned(),
        database: root.join("keeper.db"),
        data_root: root.join("data"),
        publishers: vec![keys[1].address()],
        compute: Some(ComputeConfig {
            work_root: work_root.clone(),
            grace_secs: 1,
            sandbox_init: Some(sandbox_init()),
            runtimes: vec![
                insitu_keeper::config::RuntimeConfig {
                    name: "python3".into(),
                    command: vec!["/usr/bin/python3".into(), "-I".into()],
                    description: String::new(),
                    image: None,
                    flower: None,
                },
                insitu_keeper::config::RuntimeConfig {
                    name: "native".into(),
                    command: Vec::new(),
                    description: "the algorithm is executed itself".into(),
                    image: None,
                    flower: None,
                },
            ],
            ..ComputeConfig::default()
        }),
        ..Config::default()
    };
    if let Some(compute) = config.compute.as_mut() {
        configure(compute);
    }
    let keeper = service::start(&config, keys[2].clone(), None)
        .await
        .unwrap();
    Setup {
        _devnet: devnet,
        _dir: dir,
        database: root.join("keeper.db"),
        root,
        keys,
        suite,
        token,
        keeper,
        work_root,
    }
}

/// The compute policy's JSON with `change` applied.
fn policy(change: impl FnOnce(&mut serde_json::Value)) -> serde_json::Value {
    let mut policy = serde_json::json!({
        "algorithms": {"any": true},
        "runtimes": ["python3"],
        "limits": {
            "wallSecs": 30, "memoryMb": 128, "cpuPercent": 100, "pids": 32,
            "outputMb": 4, "tmpMb": 16, "logKb": 64
        },
        "logs": "consumer",
        "resultRetentionDays": 30
    });
    change(&mut policy);
    policy
}

impl Setup {
    fn sender(&self, key: &PrivateKeySigner) -> Sender {
        common::suite_sender(&self.suite, key)
    }

    fn consumer(&self) -> Sender {
        self.sender(&self.keys[3])
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.keeper.address)
    }

    /// Publishes the visits file sold for compute only, under `policy`.
    async fn publish(&self, policy: serde_json::Value) -> B256 {
        publish_compute(
            &self.suite,
            &self.keys,
            &format!("http://{}", self.keeper.address),
            self.token,
            &self.root.join("data/visits.csv"),
            policy,
        )
        .await
    }

    async fn buy(&self, did: B256) -> B256 {
        market::buy(
            &self.suite,
            &self.consumer(),
            did,
            ServiceKind::Compute,
            0,
            &Silent,
        )
        .await
        .unwrap()
        .quote
        .agreement_id
    }

    async fn wait_for(&self, id: B256, phases: &[&str]) -> JobStatus {
        let mut seen = |_: &JobStatus| {};
        tokio::time::timeout(
            Duration::from_secs(120),
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

    fn store(&self) -> Store {
        Store::open(&self.database).unwrap()
    }

    /// The compute condition's address.
    fn compute_condition(&self) -> Address {
        self.suite.addresses.compute_execution
    }
}

/// Publishes the visits file at `file` (keys[1] publishes, is paid) at the keeper at `url`, sold
/// for compute only under `policy`.
async fn publish_compute(
    suite: &Suite,
    keys: &[PrivateKeySigner],
    url: &str,
    token: Address,
    file: &Path,
    policy: serde_json::Value,
) -> B256 {
    let source = serde_json::to_vec(&serde_json::json!({
        "@context": "https://schema.org",
        "@type": "Dataset",
        "schemaVersion": "insitu-metadata/1",
        "name": "Visits", "description": "Hospital visits.", "author": "Hospital",
        "license": "LicenseRef-compute-only",
        "files": [{
            "name": "visits.csv",
            "contentType": "text/csv",
            "contentSize": VISITS.len(),
            "sha256": hex::encode(<sha2::Sha256 as sha2::Digest>::digest(VISITS.as_bytes())),
            "location": format!("file://{}", file.display()),
        }],
        "services": [{
            "type": "compute",
            "token": token.to_string(),
            "price": [{"receiver": keys[1].address().to_string(), "amount": PRICE.to_string()}],
            "timeout": {"min": 3600, "max": 86400},
            "compute": policy
        }]
    }))
    .unwrap();
    market::publish(
        suite,
        &common::suite_sender(suite, &keys[1]),
        &KeeperClient::new(url),
        &source,
        B256::from(rand::random::<[u8; 32]>()),
        &Silent,
    )
    .await
    .unwrap()
    .did
}

/// Transactions the keeper's account has sent.
async fn keeper_transactions(setup: &Setup) -> u64 {
    alloy::providers::Provider::get_transaction_count(
        setup.suite.provider(),
        setup.keys[2].address(),
    )
    .await
    .unwrap()
}

/// Where the keeper stored the summary a job of agreement `id` produced, and what it says.
fn stored_summary(setup: &Setup, id: B256) -> (PathBuf, serde_json::Value) {
    let stored = setup
        .root
        .join("data/results/31337")
        .join(id.to_string())
        .join("summary.json");
    let summary = serde_json::from_slice(&std::fs::read(&stored).unwrap()).unwrap();
    (stored, summary)
}

fn order(algorithm: &[u8], params: &[(&str, &str)]) -> Order {
    Order {
        algorithm: compute::Algorithm::File(algorithm.to_vec()),
        runtime: "python3".into(),
        params: params
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect(),
    }
}

fn refused_code<T: std::fmt::Debug>(result: Result<T, MarketError>) -> String {
    match result {
        Err(MarketError::Refused { code, .. }) => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_next_to_the_data_and_only_its_result_leaves() {
    let setup = setup().await;
    let did = setup.publish(policy(|_| {})).await;
    let id = setup.buy(did).await;

    // The compute agreement gives no access to the data itself.
    let mut ignore = |_| {};
    let download = market::download(
        &setup.suite,
        &setup.consumer(),
        id,
        0,
        &setup.root.join("stolen.csv"),
        &mut ignore,
    )
    .await;
    assert_eq!(refused_code(download), "wrong_template");

    let queued = compute::submit(
        &setup.suite,
        &setup.consumer(),
        id,
        &order(SUMMARY, &[("columns", "age,stay_days")]),
    )
    .await
    .unwrap();
    assert_eq!(queued.phase, "queued");
    let settling = setup.wait_for(id, &[]).await;
    assert_eq!(settling.phase, "done", "{settling:?}");
    assert_eq!(settling.runs, 1);
    assert_eq!(settling.outcome.as_ref().unwrap()["ending"], "succeeded");

    // The result: one file, stored beneath the data folder, described with its provenance.
    let result = settling.result.clone().unwrap();
    let expected_did = result_did(id, setup.keys[3].address(), setup.keys[2].address());
    assert_eq!(result["did"], expected_did.to_string());
    assert_eq!(result["files"][0]["name"], "summary.json");
    let (stored, summary) = stored_summary(&setup, id);
    assert_eq!(summary["visits.csv"]["rows"], 4);
    assert_eq!(summary["visits.csv"]["columns"]["stay_days"]["count"], 4);
    assert_eq!(summary["visits.csv"]["columns"]["age"]["max"], 61.0);
    assert!(summary["visits.csv"]["columns"].get("ward").is_none());
    let checksum: B256 = result["checksum"].as_str().unwrap().parse().unwrap();
    let document = setup.store().document(checksum).unwrap().unwrap();
    let document = metadata::parse(&document).unwrap();
    assert!(document.services.is_empty());
    let provenance = document.provenance.unwrap();
    assert_eq!(provenance.was_generated_by, id);
    assert_eq!(provenance.was_derived_from, [did]);
    assert_eq!(
        provenance.algorithm_sha256,
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(SUMMARY))
    );
    assert_eq!(provenance.agent, setup.keys[2].address());
    assert_eq!(provenance.limits.memory_mb, 128);
    // Served by the keeper like any document, and its file location opens for the keeper only.
    let served = reqwest::get(result["url"].as_str().unwrap()).await.unwrap();
    assert_eq!(served.status(), 200);
    let location = metadata::open_location(&document.files[0].location, &setup.keys[2]).unwrap();
    assert!(location.url.starts_with("file://"));
    assert!(metadata::open_location(&document.files[0].location, &setup.keys[3]).is_err());

    // The logs, for the consumer (the policy lets them).
    let logs = compute::logs(&setup.suite, &setup.consumer(), id)
        .await
        .unwrap();
    assert!(logs.contains("summarised visits.csv"), "{logs}");
    // Nothing staged stays behind: the workspace and its copy of the data are gone.
    let jobs = setup.work_root.join("jobs/31337");
    assert_eq!(std::fs::read_dir(&jobs).unwrap().count(), 0);
    // On chain: the result is the consumer's asset, generated by the agreement from the input,
    // whose use is recorded; the compute condition is fulfilled and the payment released, in
    // three transactions of the keeper.
    let registry = insitu_bindings::AssetRegistry::new(
        setup.suite.addresses.asset_registry,
        setup.suite.provider(),
    );
    assert_eq!(
        registry.ownerOf(expected_did).call().await.unwrap(),
        setup.keys[3].address()
    );
    assert!(
        registry
            .canServe(expected_did, setup.keys[2].address())
            .call()
            .await
            .unwrap()
    );
    let agreement = insitu_client::agreement::show(&setup.suite, id, None)
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
    assert_eq!(
        keeper_transactions(&setup).await,
        3,
        "registerResult, recordUse, fulfilAndRelease"
    );
    let used = alloy::rpc::types::Filter::new()
        .address(setup.suite.addresses.asset_registry)
        .event_signature(
            <insitu_bindings::AssetRegistry::Used as alloy::sol_types::SolEvent>::SIGNATURE_HASH,
        )
        .topic1(did)
        .topic2(id)
        .from_block(0);
    assert_eq!(
        alloy::providers::Provider::get_logs(setup.suite.provider(), &used)
            .await
            .unwrap()
            .len(),
        1
    );
    // Every phase is in the audit log.
    let events: Vec<String> = setup
        .store()
        .audit(Some(id), 100)
        .unwrap()
        .into_iter()
        .map(|entry| entry.event)
        .filter(|event| event.starts_with("job"))
        .collect();
    assert_eq!(
        events,
        [
            "job ordered",
            "job queued -> configuring",
            "job configuring -> running",
            "job running -> publishing",
            "job publishing -> settling",
            "job settling -> done",
        ]
    );
    // The consumer downloads the result (checked against its registered document); nobody
    // else can.
    let out = setup.root.join("summary.json");
    let mut ignore = |_| {};
    let downloaded =
        compute::download_result(&setup.suite, &setup.consumer(), id, 0, &out, &mut ignore)
            .await
            .unwrap();
    assert_eq!(
        downloaded.sha256,
        result["files"][0]["sha256"].as_str().unwrap()
    );
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(&stored).unwrap()
    );
    let stranger = setup.sender(&setup.keys[4]);
    let stolen = compute::download_result(
        &setup.suite,
        &stranger,
        id,
        0,
        &setup.root.join("x"),
        &mut ignore,
    )
    .await;
    assert_eq!(refused_code(stolen), "wrong_consumer");
    let (status, answer) = signed_post(&setup, &setup.keys[4], (id, did), "result").await;
    assert_eq!(
        (status, answer["code"].as_str().unwrap()),
        (403, "wrong_consumer")
    );
    // One job per agreement.
    let again = compute::submit(&setup.suite, &setup.consumer(), id, &order(SUMMARY, &[])).await;
    assert_eq!(refused_code(again), "job_exists");
    let stop = compute::stop(&setup.suite, &setup.consumer(), id).await;
    assert_eq!(refused_code(stop), "job_ended");
    setup.keeper.stop().await;
}

const PYTHON_IMAGE: &str = "registry.example/python@sha256:3333333333333333333333333333333333333333333333333333333333333333";
const HELPER_IMAGE: &str = "registry.example/busybox@sha256:4444444444444444444444444444444444444444444444444444444444444444";

/// Points `compute` at a fake cluster served over HTTP, whose workspace claim is the keeper's
/// work root and whose kubelet executes the pods it is given (the isolation probes scripted).
fn on_kubernetes(compute: &mut ComputeConfig) -> insitu_kubefake::FakeCluster {
    use insitu_keeper::compute::kubernetes::objects;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    std::fs::create_dir_all(&compute.work_root).unwrap();
    // The keeper shares its group with its jobs, never root's: the work root gets one, which
    // what is made in it inherits.
    if std::fs::metadata(&compute.work_root).unwrap().gid() == 0 {
        std::os::unix::fs::chown(&compute.work_root, None, Some(4242)).unwrap();
    }
    std::fs::set_permissions(&compute.work_root, std::fs::Permissions::from_mode(0o2775)).unwrap();
    let cluster = insitu_kubefake::FakeCluster::new(
        "insitu-jobs",
        "insitu-work",
        compute.work_root.clone(),
        |job: &serde_json::Value| {
            let name = job["metadata"]["name"].as_str().unwrap_or_default();
            if job["metadata"]["labels"][objects::STEP_LABEL] == "canary" {
                insitu_kubefake::Behaviour::Probe {
                    reaches: name.ends_with("-control"),
                    unexpected: objects::PROBE_UNEXPECTED_EXIT,
                    marker_missing: objects::MARKER_MISSING_EXIT,
                }
            } else {
                insitu_kubefake::Behaviour::Execute
            }
        },
    );
    let url = cluster.serve_http().unwrap();
    let kubeconfig = compute.work_root.parent().unwrap().join("kubeconfig.yaml");
    std::fs::write(
        &kubeconfig,
        insitu_kubefake::FakeCluster::kubeconfig(&url, "insitu-jobs"),
    )
    .unwrap();
    let mut kubernetes =
        insitu_keeper::config::KubernetesConfig::new("insitu-jobs", "insitu-work", HELPER_IMAGE);
    kubernetes.kubeconfig = Some(kubeconfig);
    compute.backend = insitu_keeper::config::BackendKind::Kubernetes;
    compute.kubernetes = Some(kubernetes);
    for runtime in &mut compute.runtimes {
        runtime.image = Some(PYTHON_IMAGE.to_owned());
    }
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_as_a_kubernetes_job_and_only_its_result_leaves() {
    let mut cluster = None;
    let setup = setup_with(|compute| cluster = Some(on_kubernetes(compute))).await;
    let cluster = cluster.unwrap();
    let did = setup.publish(policy(|_| {})).await;
    let id = setup.buy(did).await;
    compute::submit(
        &setup.suite,
        &setup.consumer(),
        id,
        &order(SUMMARY, &[("columns", "age,stay_days")]),
    )
    .await
    .unwrap();
    let settling = setup.wait_for(id, &[]).await;
    assert_eq!(settling.phase, "done", "{settling:?}");
    assert_eq!(settling.outcome.as_ref().unwrap()["ending"], "succeeded");

    // The same result as in the local sandbox: computed in the run's pod, copied out of its
    // output volume by the collector, published by the keeper.
    let result = settling.result.clone().unwrap();
    assert_eq!(result["files"][0]["name"], "summary.json");
    let (_, summary) = stored_summary(&setup, id);
    assert_eq!(summary["visits.csv"]["rows"], 4);
    assert_eq!(summary["visits.csv"]["columns"]["age"]["max"], 61.0);
    let logs = compute::logs(&setup.suite, &setup.consumer(), id)
        .await
        .unwrap();
    assert!(logs.contains("summarised visits.csv"), "{logs}");

    // Two Jobs ran, the algorithm's and its collector's, in the policy's limits; every object
    // of the run was then deleted, and the workspace with its copy of the data.
    let jobs: Vec<_> = cluster
        .requests_to("POST", "/jobs")
        .into_iter()
        .map(|request| request.body)
        .filter(|job| job["metadata"]["labels"]["insitu.dev/step"] != "canary")
        .collect();
    assert_eq!(jobs.len(), 2, "the run and its collector");
    let run = &jobs[0];
    let container = &run["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], PYTHON_IMAGE);
    assert_eq!(container["resources"]["limits"]["memory"], "128Mi");
    assert_eq!(
        run["metadata"]["annotations"]["insitu.dev/agreement"],
        id.to_string()
    );
    assert!(
        jobs[1]["metadata"]["name"]
            .as_str()
            .unwrap()
            .ends_with("-collect")
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !(cluster.names("jobs").is_empty() && cluster.names("networkpolicies").is_empty()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "objects left on the cluster"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(cluster.names("persistentvolumeclaims"), ["insitu-work"]);
    let jobs = setup.work_root.join("jobs/31337");
    assert_eq!(std::fs::read_dir(&jobs).unwrap().count(), 0);
    // On chain, as with the local sandbox: result registered, use recorded, payment released.
    assert_eq!(
        keeper_transactions(&setup).await,
        3,
        "registerResult, recordUse, fulfilAndRelease"
    );
    setup.keeper.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubernetes_job_cannot_write_into_its_inputs() {
    let mut cluster = None;
    let setup = setup_with(|compute| cluster = Some(on_kubernetes(compute))).await;
    let did = setup.publish(policy(|_| {})).await;
    let id = setup.buy(did).await;
    let vandal = b"import os\nfor name in os.listdir('/data'):\n    open(os.path.join('/data', name), 'w').write('gone')\n";
    compute::submit(&setup.suite, &setup.consumer(), id, &order(vandal, &[]))
        .await
        .unwrap();
    let failed = setup.wait_for(id, &[]).await;
    assert_eq!(failed.phase, "failed", "{failed:?}");
    assert_eq!(failed.outcome.as_ref().unwrap()["ending"], "failed");
    let logs = compute::logs(&setup.suite, &setup.consumer(), id)
        .await
        .unwrap();
    assert!(logs.contains("Read-only file system"), "{logs}");
    // Its run's pod mounted the staged inputs read-only, at the volume and at the mount.
    let run = cluster
        .unwrap()
        .requests_to("POST", "/jobs")
        .into_iter()
        .map(|request| request.body)
        .find(|job| job["metadata"]["labels"]["insitu.dev/step"] == "run")
        .unwrap();
    let pod = &run["spec"]["template"]["spec"];
    assert_eq!(pod["volumes"][0]["persistentVolumeClaim"]["readOnly"], true);
    assert_eq!(
        pod["containers"][0]["volumeMounts"][0]["mountPath"],
        "/data"
    );
    assert_eq!(pod["containers"][0]["volumeMounts"][0]["readOnly"], true);
    setup.keeper.stop().await;
}

/// `insitu-keeper --check-compute` with `config`: its output.
async fn check_compute(folder: &Path, compute: &ComputeConfig) -> std::process::Output {
    let config = Config {
        compute: Some(compute.clone()),
        ..Config::default()
    };
    let file = folder.join("keeper.toml");
    std::fs::write(&file, config.to_string()).unwrap();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_insitu-keeper"))
        .arg("--config")
        .arg(&file)
        .arg("--check-compute")
        .output()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_compute_checks_the_sandbox_or_the_kubernetes_cluster_and_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut compute = ComputeConfig {
        work_root: dir.path().join("compute"),
        sandbox_init: Some(sandbox_init()),
        ..ComputeConfig::default()
    };
    let output = check_compute(dir.path(), &compute).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout.starts_with("compute: local sandbox: "), "{stdout}");

    let cluster = on_kubernetes(&mut compute);
    let output = check_compute(dir.path(), &compute).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout.contains(
            "compute: Kubernetes v1.33.2, namespace insitu-jobs: every permission granted"
        ),
        "{stdout}"
    );
    // The sweep deletes by the keeper's label alone; the check deletes only its probes.
    let swept: Vec<_> = cluster
        .requests()
        .into_iter()
        .filter(|request| {
            request.method == "DELETE"
                && request
                    .query
                    .get("labelSelector")
                    .is_some_and(|selector| !selector.contains("insitu.dev/step=canary"))
        })
        .collect();
    assert!(swept.is_empty(), "a check sweeps nothing: {swept:?}");

    // A cluster whose network plugin ignores NetworkPolicy is refused, saying why.
    cluster.without_network_policy();
    let output = check_compute(dir.path(), &compute).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("does not enforce NetworkPolicy"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_and_stopped_jobs_end_so_and_leave_nothing() {
    let setup = setup().await;
    let did = setup.publish(policy(|_| {})).await;

    // Past its memory limit.
    let bomb = setup.buy(did).await;
    compute::submit(
        &setup.suite,
        &setup.consumer(),
        bomb,
        &order(
            b"chunks = []\nwhile True:\n    chunks.append(bytearray(8 << 20))\n",
            &[],
        ),
    )
    .await
    .unwrap();
    let failed = setup.wait_for(bomb, &[]).await;
    assert_eq!(failed.phase, "failed");
    assert_eq!(failed.outcome.as_ref().unwrap()["ending"], "out_of_memory");
    assert!(
        failed.reason.as_deref().unwrap().contains("out of memory"),
        "{failed:?}"
    );
    assert!(failed.result.is_none());
    let mut ignore = |_| {};
    let nothing = compute::download_result(
        &setup.suite,
        &setup.consumer(),
        bomb,
        0,
        &setup.root.join("x"),
        &mut ignore,
    )
    .await;
    assert_eq!(refused_code(nothing), "result_not_ready");
    let (status, answer) = signed_post(&setup, &setup.keys[3], (bomb, did), "result").await;
    assert_eq!(
        (status, answer["code"].as_str().unwrap()),
        (409, "result_not_ready")
    );

    // An algorithm that exits with an error, and one that leaves nothing.
    let broken = setup.buy(did).await;
    compute::submit(
        &setup.suite,
        &setup.consumer(),
        broken,
        &order(b"raise SystemExit(3)\n", &[]),
    )
    .await
    .unwrap();
    let failed = setup.wait_for(broken, &[]).await;
    assert_eq!(failed.phase, "failed");
    assert!(
        failed.reason.as_deref().unwrap().contains("status 3"),
        "{failed:?}"
    );
    let empty = setup.buy(did).await;
    compute::submit(
        &setup.suite,
        &setup.consumer(),
        empty,
        &order(b"print('nothing')\n", &[]),
    )
    .await
    .unwrap();
    let failed = setup.wait_for(empty, &[]).await;
    assert_eq!(failed.phase, "failed");
    assert!(
        failed
            .reason
            .as_deref()
            .unwrap()
            .contains("no regular file"),
        "{failed:?}"
    );

    // Stopped while it runs: SIGTERM, which it may handle.
    let sleeper = setup.buy(did).await;
    compute::submit(
        &setup.suite,
        &setup.consumer(),
        sleeper,
        &order(
            b"import time\nprint('up', flush=True)\ntime.sleep(10**6)\n",
            &[],
        ),
    )
    .await
    .unwrap();
    setup.wait_for(sleeper, &["running"]).await;
    // Live logs while it runs.
    let mut logs = String::new();
    for _ in 0..50 {
        logs = compute::logs(&setup.suite, &setup.consumer(), sleeper)
            .await
            .unwrap_or_default();
        if logs.contains("up") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(logs.contains("up"), "{logs}");
    let asked = compute::stop(&setup.suite, &setup.consumer(), sleeper)
        .await
        .unwrap();
    assert!(asked.stop_requested);
    let stopped = setup.wait_for(sleeper, &[]).await;
    assert_eq!(stopped.phase, "stopped");
    assert_eq!(stopped.outcome.as_ref().unwrap()["ending"], "stopped");

    let jobs = setup.work_root.join("jobs/31337");
    assert_eq!(
        std::fs::read_dir(&jobs).unwrap().count(),
        0,
        "workspaces left"
    );
    let store = setup.store();
    assert_eq!(store.jobs(JobPhase::Failed).unwrap().len(), 3);
    assert_eq!(store.jobs(JobPhase::Stopped).unwrap().len(), 1);
    setup.keeper.stop().await;
}

/// A compute order's body, signed by `signer` (who may not be the consumer), with `edit`
/// applied after signing.
fn order_body(
    setup: &Setup,
    signer: &PrivateKeySigner,
    (id, did): (B256, B256),
    order: &Order,
    edit: impl FnOnce(&mut serde_json::Value),
) -> serde_json::Value {
    let mut body = compute::compute_order(
        signer,
        31_337,
        setup.compute_condition(),
        did,
        id,
        order,
        insitu_keeper::executor::now() + 120,
    )
    .unwrap();
    edit(&mut body);
    body
}

/// `key`'s signed request with `command` about agreement `id` of asset `did`, posted to
/// `/v1/compute/<command>`.
async fn signed_post(
    setup: &Setup,
    key: &PrivateKeySigner,
    (id, did): (B256, B256),
    command: &str,
) -> (u16, serde_json::Value) {
    let body = market::service_request(
        key,
        31_337,
        setup.compute_condition(),
        did,
        id,
        command,
        insitu_keeper::executor::now() + 60,
    )
    .unwrap();
    post(setup, &format!("/v1/compute/{command}"), &body).await
}

async fn post(setup: &Setup, route: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(setup.url(route))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_orders_and_requests_get_their_codes_and_change_nothing() {
    let setup = setup().await;
    let listed = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(SUMMARY));
    let did = setup
        .publish(policy(|policy| {
            policy["algorithms"] = serde_json::json!({"any": false, "sha256": [listed]});
            policy["logs"] = "private".into();
        }))
        .await;
    let id = setup.buy(did).await;
    let consumer = setup.keys[3].clone();
    let good = order(SUMMARY, &[]);
    let cases: Vec<(serde_json::Value, u16, &str)> = vec![
        (
            order_body(
                &setup,
                &consumer,
                (id, did),
                &order(b"print(1)", &[]),
                |_| {},
            ),
            403,
            "algorithm_not_allowed",
        ),
        (
            order_body(
                &setup,
                &consumer,
                (id, did),
                &Order {
                    runtime: "ruby".into(),
                    ..good.clone()
                },
                |_| {},
            ),
            400,
            "runtime_not_offered",
        ),
        (
            order_body(&setup, &consumer, (id, did), &good, |body| {
                body["algorithmFile"] = "cHJpbnQoMik=".into();
            }),
            400,
            "algorithm_mismatch",
        ),
        (
            order_body(&setup, &consumer, (id, did), &good, |body| {
                body["params"] = serde_json::json!({"columns": "age"});
            }),
            400,
            "params_mismatch",
        ),
        (
            order_body(&setup, &setup.keys[4], (id, did), &good, |body| {
                body["job"]["consumer"] = consumer.address().to_string().into();
            }),
            401,
            "forged",
        ),
        (
            order_body(&setup, &setup.keys[4], (id, did), &good, |_| {}),
            403,
            "wrong_consumer",
        ),
        (
            order_body(&setup, &consumer, (id, did), &good, |body| {
                body["algorithmFile"] = "not base64!".into();
            }),
            400,
            "malformed",
        ),
        (
            order_body(
                &setup,
                &consumer,
                (B256::repeat_byte(7), did),
                &good,
                |_| {},
            ),
            404,
            "unknown_agreement",
        ),
    ];
    for (body, status, code) in cases {
        let (got, answer) = post(&setup, "/v1/compute", &body).await;
        assert_eq!(
            (got, answer["code"].as_str().unwrap_or_default()),
            (status, code),
            "{answer}"
        );
    }
    // Too large an algorithm.
    let huge = Order {
        algorithm: compute::Algorithm::File(vec![b'#'; 2 << 20]),
        ..good.clone()
    };
    let (status, answer) = post(
        &setup,
        "/v1/compute",
        &order_body(&setup, &consumer, (id, did), &huge, |_| {}),
    )
    .await;
    assert_eq!(
        (status, answer["code"].as_str().unwrap_or_default()),
        (413, "algorithm_too_large"),
        "{answer}"
    );
    // Nothing was queued, and the consumer's nonces were not spent: a good order still goes.
    assert!(setup.store().job(id).unwrap().is_none());
    let body = order_body(&setup, &consumer, (id, did), &good, |_| {});
    let (status, answer) = post(&setup, "/v1/compute", &body).await;
    assert_eq!(status, 202, "{answer}");
    // The same signed order again: one job per agreement (and its nonce is spent).
    let (status, answer) = post(&setup, "/v1/compute", &body).await;
    assert_eq!(
        (status, answer["code"].as_str().unwrap()),
        (409, "job_exists")
    );

    // Requests about the job: private logs, another account, an agreement without a job.
    let logs = compute::logs(&setup.suite, &setup.consumer(), id).await;
    assert_eq!(refused_code(logs), "logs_private");
    let stranger = compute::status(&setup.suite, &setup.sender(&setup.keys[4]), id).await;
    assert_eq!(refused_code(stranger), "wrong_consumer");
    let other = setup.buy(did).await;
    let none = compute::status(&setup.suite, &setup.consumer(), other).await;
    assert_eq!(refused_code(none), "unknown_job");
    // The good order ran.
    let ran = setup.wait_for(id, &[]).await;
    assert_eq!(ran.phase, "done");
    setup.keeper.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keeper_without_compute_refuses_orders() {
    let devnet = Devnet::start().expect("anvil");
    let deployed = common::deploy(&devnet, None, U256::from(PRICE)).await;
    let config = Config {
        rpc_url: devnet.endpoint(),
        chain_id: 31_337,
        addresses: deployed.addresses.clone(),
        confirmations: 0,
        poll_interval_ms: 100,
        listen: "127.0.0.1:0".to_owned(),
        database: deployed.dir.path().join("keeper.db"),
        data_root: deployed.dir.path().join("data"),
        ..Config::default()
    };
    let keeper = service::start(&config, deployed.keys[2].clone(), None)
        .await
        .unwrap();
    let body = compute::compute_order(
        &deployed.keys[3],
        31_337,
        deployed.suite.addresses.compute_execution,
        B256::repeat_byte(1),
        B256::repeat_byte(2),
        &order(SUMMARY, &[]),
        insitu_keeper::executor::now() + 60,
    )
    .unwrap();
    let response = reqwest::Client::new()
        .post(format!("http://{}/v1/compute", keeper.address))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["code"], "compute_unavailable");
    keeper.stop().await;
}

/// The processes left in the cgroup(s) named `name`, wherever the hierarchies are mounted.
fn processes_in_group(name: &str) -> Vec<String> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let mut found = Vec::new();
    for line in mounts.lines().filter(|line| line.contains("cgroup")) {
        let point = line.split_whitespace().nth(1).unwrap();
        let listed = std::process::Command::new("find")
            .args([point, "-maxdepth", "6", "-type", "d", "-name", name])
            .output()
            .unwrap();
        for folder in String::from_utf8_lossy(&listed.stdout).lines() {
            let procs =
                std::fs::read_to_string(Path::new(folder).join("cgroup.procs")).unwrap_or_default();
            found.extend(procs.lines().map(str::to_owned));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keeper_killed_while_its_job_runs_runs_it_again_after_a_restart() {
    let world = process_world().await;
    let (deployed, root, url, file) = (&world.deployed, &world.root, &world.url, &world.config);
    let keeper = KeeperProcess::start(file, &deployed.keys[2], url).await;
    let did = publish_compute(
        &deployed.suite,
        &deployed.keys,
        url,
        deployed.token,
        &root.join("data/visits.csv"),
        policy(|_| {}),
    )
    .await;
    let consumer = common::suite_sender(&deployed.suite, &deployed.keys[3]);
    let id = market::buy(
        &deployed.suite,
        &consumer,
        did,
        ServiceKind::Compute,
        0,
        &Silent,
    )
    .await
    .unwrap()
    .quote
    .agreement_id;
    let slow = b"import os, time\nprint('started', flush=True)\ntime.sleep(4)\nopen('/output/done.txt', 'w').write(os.environ['INSITU_AGREEMENT'])\n";
    compute::submit(&deployed.suite, &consumer, id, &order(slow, &[]))
        .await
        .unwrap();
    let mut ignore = |_: &JobStatus| {};
    let running = compute::follow(
        &deployed.suite,
        &consumer,
        id,
        &["running"],
        Duration::from_millis(100),
        &mut ignore,
    )
    .await
    .unwrap();
    assert_eq!(running.phase, "running");
    let group = insitu_keeper::compute::RunId {
        chain_id: 31_337,
        agreement: id,
        run: 1,
    }
    .name();
    for _ in 0..50 {
        if !processes_in_group(&group).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !processes_in_group(&group).is_empty(),
        "the job runs in its group"
    );

    // Killed as `kill -9` would: the job dies with it.
    drop(keeper);
    let mut left = processes_in_group(&group);
    for _ in 0..50 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = processes_in_group(&group);
    }
    assert!(left.is_empty(), "the job outlived its keeper: {left:?}");

    // Restarted: the interrupted run is queued again and its second run finishes.
    let _keeper = KeeperProcess::start(file, &deployed.keys[2], url).await;
    let settled = tokio::time::timeout(
        Duration::from_secs(120),
        compute::follow(
            &deployed.suite,
            &consumer,
            id,
            &[],
            Duration::from_millis(200),
            &mut ignore,
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(settled.phase, "done", "{settled:?}");
    assert_eq!(settled.runs, 2);
    let done = root
        .join("data/results/31337")
        .join(id.to_string())
        .join("done.txt");
    assert_eq!(std::fs::read_to_string(done).unwrap(), id.to_string());
    let audit = Store::open(&root.join("keeper.db"))
        .unwrap()
        .audit(Some(id), 100)
        .unwrap();
    assert!(
        audit
            .iter()
            .any(|entry| entry.event == "job running -> queued"
                && entry
                    .detail
                    .as_deref()
                    .unwrap_or_default()
                    .contains("interrupted by a restart")),
        "{audit:?}"
    );
    assert!(processes_in_group(&group).is_empty());
}

/// A chain with the suite, the visits file, and the configuration of a keeper process with
/// compute (keys[2], publisher keys[1]).
struct ProcessWorld {
    _devnet: Devnet,
    deployed: common::Deployed,
    root: PathBuf,
    url: String,
    config: PathBuf,
}

async fn process_world() -> ProcessWorld {
    let devnet = Devnet::start().expect("anvil");
    let deployed = common::deploy(&devnet, None, U256::from(PRICE) * U256::from(10)).await;
    let root = deployed.dir.path().to_path_buf();
    std::fs::create_dir_all(root.join("data")).unwrap();
    std::fs::write(root.join("data/visits.csv"), VISITS).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = Config {
        rpc_url: devnet.endpoint(),
        chain_id: 31_337,
        addresses: deployed.addresses.clone(),
        confirmations: 0,
        poll_interval_ms: 100,
        listen: format!("127.0.0.1:{port}"),
        database: root.join("keeper.db"),
        data_root: root.join("data"),
        publishers: vec![deployed.keys[1].address()],
        compute: Some(ComputeConfig {
            work_root: root.join("compute"),
            grace_secs: 1,
            sandbox_init: Some(sandbox_init()),
            ..ComputeConfig::default()
        }),
        ..Config::default()
    };
    let file = root.join("keeper.toml");
    std::fs::write(&file, config.to_string()).unwrap();
    ProcessWorld {
        _devnet: devnet,
        deployed,
        url: format!("http://127.0.0.1:{port}"),
        config: file,
        root,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keeper_killed_at_each_point_of_a_job_finishes_it_exactly_once() {
    for point in [
        "job_configuring",
        "job_publishing",
        "after_sign",
        "after_send",
        "after_receipt",
    ] {
        let world = process_world().await;
        let keys = &world.deployed.keys;
        let suite = &world.deployed.suite;
        let mut keeper =
            KeeperProcess::start_crashing(&world.config, &keys[2], &world.url, Some(point)).await;
        let did = publish_compute(
            suite,
            keys,
            &world.url,
            world.deployed.token,
            &world.root.join("data/visits.csv"),
            policy(|_| {}),
        )
        .await;
        let consumer = common::suite_sender(suite, &keys[3]);
        let id = market::buy(suite, &consumer, did, ServiceKind::Compute, 0, &Silent)
            .await
            .unwrap()
            .quote
            .agreement_id;
        compute::submit(suite, &consumer, id, &order(SUMMARY, &[]))
            .await
            .unwrap();
        // The process dies at the point.
        let mut died = false;
        for _ in 0..600 {
            if keeper.0.try_wait().unwrap().is_some() {
                died = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(died, "{point}: the keeper never reached its crash point");
        drop(keeper);

        // Restarted on the same store: the job ends done, settled by exactly three transactions.
        let _keeper = KeeperProcess::start(&world.config, &keys[2], &world.url).await;
        let mut ignore = |_: &JobStatus| {};
        let done = tokio::time::timeout(
            Duration::from_secs(120),
            compute::follow(
                suite,
                &consumer,
                id,
                &[],
                Duration::from_millis(200),
                &mut ignore,
            ),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(done.phase, "done", "{point}: {done:?}");
        let runs = if point == "job_configuring" { 2 } else { 1 };
        assert_eq!(done.runs, runs, "{point}");
        let nonce =
            alloy::providers::Provider::get_transaction_count(suite.provider(), keys[2].address())
                .await
                .unwrap();
        assert_eq!(
            nonce, 3,
            "{point}: registerResult, recordUse, fulfilAndRelease, once each"
        );
        let agreement = insitu_client::agreement::show(suite, id, None)
            .await
            .unwrap();
        assert_eq!(
            agreement.payment_condition().unwrap().state,
            insitu_client::agreement::ConditionState::Released,
            "{point}"
        );
        let out = world.root.join("summary.json");
        let mut quiet = |_| {};
        compute::download_result(suite, &consumer, id, 0, &out, &mut quiet)
            .await
            .unwrap();
        let summary: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        assert_eq!(summary["visits.csv"]["rows"], 4, "{point}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_algorithm_published_as_an_asset_runs_when_its_publisher_is_allowed() {
    let setup = setup().await;
    // The provider's publisher publishes the sample algorithm as an asset at the same keeper.
    let algorithm_file = setup.root.join("data/summary.py");
    std::fs::write(&algorithm_file, SUMMARY).unwrap();
    let mut source: serde_json::Value = serde_json::from_slice(&common::access_document(
        &format!("file://{}", algorithm_file.display()),
        SUMMARY,
        setup.token,
        setup.keys[1].address(),
        1_000,
    ))
    .unwrap();
    source["@type"] = "SoftwareSourceCode".into();
    let source = serde_json::to_vec(&source).unwrap();
    let algorithm_did = market::publish(
        &setup.suite,
        &setup.sender(&setup.keys[1]),
        &KeeperClient::new(&format!("http://{}", setup.keeper.address)),
        &source,
        B256::from(rand::random::<[u8; 32]>()),
        &Silent,
    )
    .await
    .unwrap()
    .did;
    let publisher = setup.keys[1].address().to_string();
    let did = setup
        .publish(policy(|policy| {
            policy["algorithms"] = serde_json::json!({"any": false, "publishers": [publisher]});
        }))
        .await;
    let id = setup.buy(did).await;
    let algorithm = compute::algorithm_asset(&setup.suite, algorithm_did)
        .await
        .unwrap();
    let by_asset = Order {
        algorithm,
        runtime: "python3".into(),
        params: Default::default(),
    };

    // Refused: both sources at once, an unknown asset, an algorithm file of nobody listed.
    let consumer = setup.keys[3].clone();
    let both = order_body(&setup, &consumer, (id, did), &by_asset, |body| {
        body["algorithmFile"] = "cHJpbnQoMSk=".into();
    });
    let (status, answer) = post(&setup, "/v1/compute", &both).await;
    assert_eq!(
        (status, answer["code"].as_str().unwrap()),
        (400, "malformed")
    );
    let unknown = Order {
        algorithm: compute::Algorithm::Asset {
            did: B256::repeat_byte(9),
            sha256: B256::repeat_byte(1),
        },
        ..by_asset.clone()
    };
    let (status, answer) = post(
        &setup,
        "/v1/compute",
        &order_body(&setup, &consumer, (id, did), &unknown, |_| {}),
    )
    .await;
    assert_eq!(
        (status, answer["code"].as_str().unwrap()),
        (404, "unknown_algorithm")
    );
    let (status, answer) = post(
        &setup,
        "/v1/compute",
        &order_body(&setup, &consumer, (id, did), &order(SUMMARY, &[]), |_| {}),
    )
    .await;
    assert_eq!(
        (status, answer["code"].as_str().unwrap()),
        (403, "algorithm_not_allowed"),
        "the same file, sent by the consumer, is not the publisher's asset"
    );
    // A dataset of the same publisher is not an algorithm (running it could print its rows).
    assert!(compute::algorithm_asset(&setup.suite, did).await.is_err());
    let as_algorithm = Order {
        algorithm: compute::Algorithm::Asset {
            did,
            sha256: B256::from_slice(&<sha2::Sha256 as sha2::Digest>::digest(VISITS.as_bytes())),
        },
        ..by_asset.clone()
    };
    let (status, answer) = post(
        &setup,
        "/v1/compute",
        &order_body(&setup, &consumer, (id, did), &as_algorithm, |_| {}),
    )
    .await;
    assert_eq!(
        (status, answer["code"].as_str().unwrap()),
        (400, "not_an_algorithm")
    );

    // The asset of a listed publisher runs, and the result derives from it too.
    compute::submit(&setup.suite, &setup.consumer(), id, &by_asset)
        .await
        .unwrap();
    let done = setup.wait_for(id, &[]).await;
    assert_eq!(done.phase, "done", "{done:?}");
    let checksum: B256 = done.result.as_ref().unwrap()["checksum"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let document = metadata::parse(&setup.store().document(checksum).unwrap().unwrap()).unwrap();
    let provenance = document.provenance.unwrap();
    assert_eq!(provenance.algorithm, Some(algorithm_did));
    assert_eq!(provenance.was_derived_from, [did, algorithm_did]);
    let derived = alloy::rpc::types::Filter::new()
        .address(setup.suite.addresses.asset_registry)
        .event_signature(
            <insitu_bindings::AssetRegistry::WasDerivedFrom as alloy::sol_types::SolEvent>::SIGNATURE_HASH,
        )
        .from_block(0);
    let logs = alloy::providers::Provider::get_logs(setup.suite.provider(), &derived)
        .await
        .unwrap();
    let sources: Vec<B256> = logs
        .iter()
        .filter_map(|log| {
            log.log_decode::<insitu_bindings::AssetRegistry::WasDerivedFrom>()
                .ok()
                .map(|event| event.inner.data.sourceDid)
        })
        .collect();
    assert!(
        sources.contains(&did) && sources.contains(&algorithm_did),
        "{sources:?}"
    );
    setup.keeper.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executable_algorithm_runs_itself_in_a_native_runtime() {
    let setup = setup().await;
    let did = setup
        .publish(policy(|policy| {
            policy["runtimes"] = serde_json::json!(["native"])
        }))
        .await;
    let id = setup.buy(did).await;
    let script =
        b"#!/bin/sh\nwc -l < \"$INSITU_INPUTS/visits.csv\" > \"$INSITU_OUTPUT/lines.txt\"\n";
    let native = Order {
        runtime: "native".into(),
        ..order(script, &[])
    };
    compute::submit(&setup.suite, &setup.consumer(), id, &native)
        .await
        .unwrap();
    let done = setup.wait_for(id, &[]).await;
    assert_eq!(done.phase, "done", "{done:?}");
    let lines = setup
        .root
        .join("data/results/31337")
        .join(id.to_string())
        .join("lines.txt");
    assert_eq!(std::fs::read_to_string(lines).unwrap().trim(), "5");
    // The python3 runtime is not offered by this asset.
    let other = setup.buy(did).await;
    let refused =
        compute::submit(&setup.suite, &setup.consumer(), other, &order(SUMMARY, &[])).await;
    assert_eq!(refused_code(refused), "runtime_not_offered");
    setup.keeper.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keeper_that_cannot_isolate_jobs_refuses_to_start() {
    let devnet = Devnet::start().expect("anvil");
    let deployed = common::deploy(&devnet, None, U256::from(PRICE)).await;
    let config = Config {
        rpc_url: devnet.endpoint(),
        chain_id: 31_337,
        addresses: deployed.addresses.clone(),
        listen: "127.0.0.1:0".to_owned(),
        database: deployed.dir.path().join("keeper.db"),
        data_root: deployed.dir.path().join("data"),
        compute: Some(ComputeConfig {
            work_root: deployed.dir.path().join("compute"),
            bwrap: PathBuf::from("/nonexistent/bwrap"),
            sandbox_init: Some(sandbox_init()),
            ..ComputeConfig::default()
        }),
        ..Config::default()
    };
    let error = service::start(&config, deployed.keys[2].clone(), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("compute is refused on this machine") && error.contains("bubblewrap"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_more_jobs_run_at_once_than_the_keeper_allows() {
    let setup = setup_with(|compute| compute.concurrency = 1).await;
    let did = setup.publish(policy(|_| {})).await;
    let sleeper = order(
        b"import time\ntime.sleep(2)\nopen('/output/done.txt', 'w').write('ok')\n",
        &[],
    );
    let first = setup.buy(did).await;
    let second = setup.buy(did).await;
    compute::submit(&setup.suite, &setup.consumer(), first, &sleeper)
        .await
        .unwrap();
    setup.wait_for(first, &["running"]).await;
    compute::submit(&setup.suite, &setup.consumer(), second, &sleeper)
        .await
        .unwrap();
    // While the first runs, the second waits in the queue.
    for _ in 0..10 {
        let phase = setup.store().job(second).unwrap().unwrap().phase;
        let running = setup.store().job(first).unwrap().unwrap().phase == JobPhase::Running;
        if running {
            assert_eq!(phase, JobPhase::Queued, "one slot: the second job waits");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(setup.wait_for(first, &[]).await.phase, "done");
    assert_eq!(setup.wait_for(second, &[]).await.phase, "done");
    // The second began only once the first had ended.
    let audit = |id| {
        setup
            .store()
            .audit(Some(id), 100)
            .unwrap()
            .into_iter()
            .find(|entry| entry.event == "job queued -> configuring")
            .unwrap()
            .seq
    };
    let first_ran = setup
        .store()
        .audit(Some(first), 100)
        .unwrap()
        .into_iter()
        .find(|entry| entry.event == "job running -> publishing")
        .unwrap()
        .seq;
    assert!(audit(second) > first_ran);
    setup.keeper.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpaid_compute_agreement_gets_no_job() {
    use alloy::{network::TransactionBuilder, sol_types::SolCall};
    let setup = setup().await;
    let did = setup.publish(policy(|_| {})).await;
    // The consumer makes the agreement on the keeper's offer, and does not pay.
    let signed: serde_json::Value =
        reqwest::get(setup.url(&format!("/v1/offers/{did}?service=compute")))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let field = |name: &str| signed["offer"][name].as_str().unwrap().to_owned();
    let offer = insitu_bindings::offers::Offer {
        did: field("did").parse().unwrap(),
        checksum: field("checksum").parse().unwrap(),
        provider: field("provider").parse().unwrap(),
        token: field("token").parse().unwrap(),
        receivers: signed["offer"]["receivers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|receiver| receiver.as_str().unwrap().parse().unwrap())
            .collect(),
        amounts: signed["offer"]["amounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|amount| amount.as_str().unwrap().parse().unwrap())
            .collect(),
        minServiceTimeout: signed["offer"]["minServiceTimeout"].as_u64().unwrap() as u32,
        maxServiceTimeout: signed["offer"]["maxServiceTimeout"].as_u64().unwrap() as u32,
        expiry: signed["offer"]["expiry"].as_u64().unwrap(),
        epoch: signed["offer"]["epoch"].as_u64().unwrap() as u32,
    };
    let call = insitu_bindings::ServiceTemplate::createAgreementCall {
        seed: B256::from(rand::random::<[u8; 32]>()),
        offer,
        signature: hex::decode(signed["signature"].as_str().unwrap())
            .unwrap()
            .into(),
        serviceTimeout: 0,
        maxTotal: U256::MAX,
    };
    let receipt = setup
        .consumer()
        .send(
            "create without paying",
            alloy::rpc::types::TransactionRequest::default()
                .with_to(setup.suite.addresses.compute_template)
                .with_input(call.abi_encode()),
            &Silent,
        )
        .await
        .unwrap();
    let id = receipt
        .inner
        .logs()
        .iter()
        .find_map(|log| {
            log.log_decode::<insitu_bindings::AgreementStore::AgreementCreated>()
                .ok()
        })
        .unwrap()
        .inner
        .data
        .agreementId;
    for _ in 0..100 {
        if setup.store().agreement(id).unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let consumer = setup.keys[3].clone();
    let body = order_body(&setup, &consumer, (id, did), &order(SUMMARY, &[]), |_| {});
    let (status, answer) = post(&setup, "/v1/compute", &body).await;
    assert_eq!(
        (status, answer["code"].as_str().unwrap()),
        (402, "unpaid"),
        "{answer}"
    );
    assert!(setup.store().job(id).unwrap().is_none());
    setup.keeper.stop().await;
}
