//! A Flower SuperNode and the consumer's ClientApp run in real sandboxes, three of them, each
//! with its own partition of the example data set at `/data` and one egress to a SuperLink on
//! the host, which serves TLS and admits only the SuperNodes whose keys the consumer
//! registered; the consumer's ServerApp trains the example model across them, and each
//! SuperNode logs the replies it delivered. Needs what
//! `escape.rs` needs, plus the Flower environment of `script/flower-deps.sh`.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use insitu_sandbox::{Egress, Ending, JobSpec, Limits, Mount, Sandbox, SandboxConfig};

/// Writes a P-384 key pair for a SuperNode to the folder named by its argument (`supernode.pem`,
/// `supernode.pub`, in the SSH format Flower asks for), with the `cryptography` package of the Flower environment.
const KEY_PAIR: &str = r#"
import sys, pathlib
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
key = ec.generate_private_key(ec.SECP384R1())
folder = pathlib.Path(sys.argv[1])
(folder / "supernode.pem").write_bytes(key.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()))
(folder / "supernode.pub").write_bytes(key.public_key().public_bytes(
    serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH))
"#;

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

/// A free TCP port on the host's loopback.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs a program of the Flower environment on the host, with `home` as its Flower home.
fn flower(venv: &Path, program: &str, home: &Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(venv.join("bin").join(program));
    let path = format!("{}:/usr/bin:/bin", venv.join("bin").display());
    command
        .env("PATH", path)
        .env("FLWR_HOME", home)
        .kill_on_drop(true);
    command
}

/// Makes `path` and its folders readable by the jobs' account through its group.
fn share(path: &Path, gid: Option<u32>) {
    std::os::unix::fs::chown(path, None, gid).unwrap();
    let mode = if path.is_dir() { 0o750 } else { 0o640 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            share(&entry.unwrap().path(), gid);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_sandboxed_supernodes_train_the_example_model_through_their_egress() {
    let venv = venv();
    let config = SandboxConfig {
        cgroup_folder: "insitu-test-jobs".into(),
        ..SandboxConfig::new(PathBuf::from(env!("CARGO_BIN_EXE_insitu-sandbox-init")))
    };
    let isolation = insitu_sandbox::probe(&config).await;
    let sandbox = Sandbox::new(config, &isolation).unwrap();
    let gid = sandbox.job_account().map(|(_, gid)| gid);
    let work = tempfile::tempdir().unwrap();

    // The data set, one partition per provider.
    let partitions = work.path().join("partitions");
    let made = flower(&venv, "python", work.path())
        .arg(root().join("examples/federated/make_partitions.py"))
        .arg(&partitions)
        .status()
        .await
        .unwrap();
    assert!(made.success());
    share(&partitions, gid);

    // The consumer's SuperLink on the host, over TLS.
    let home = work.path().join("consumer");
    std::fs::create_dir(&home).unwrap();
    let tls = work.path().join("tls");
    std::fs::create_dir(&tls).unwrap();
    let made = flower(&venv, "python", &home)
        .env("PYTHONPATH", root().join("examples/federated/app"))
        .arg(root().join("examples/federated/consumer_tools.py"))
        .arg("tls")
        .arg(&tls)
        .status()
        .await
        .unwrap();
    assert!(made.success());
    let port = free_port();
    let superlink_log = std::fs::File::create(work.path().join("superlink.log")).unwrap();
    let mut superlink = flower(&venv, "python", &home)
        .env("PYTHONPATH", root().join("examples/federated/app"))
        .arg(root().join("examples/federated/consumer_tools.py"))
        .arg("superlink")
        .arg(&tls)
        .arg(port.to_string())
        .current_dir(&home)
        .stdout(superlink_log.try_clone().unwrap())
        .stderr(superlink_log)
        .spawn()
        .unwrap();
    let aggregator: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(aggregator).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    std::fs::write(
        home.join("config.toml"),
        format!(
            "[superlink]\ndefault = \"consumer\"\n\n[superlink.consumer]\naddress = \"127.0.0.1:{port}\"\nroot-certificates = \"{}\"\n",
            tls.join("ca.pem").display()
        ),
    )
    .unwrap();

    // Each provider's SuperNode, in its sandbox, with a key the consumer registered with its
    // SuperLink (which refuses SuperNodes it does not know).
    let mut jobs = Vec::new();
    for provider in 0..3 {
        let folder = work.path().join(format!("job-{provider}"));
        std::fs::create_dir_all(folder.join("output")).unwrap();
        let keys = folder.join("key");
        std::fs::create_dir(&keys).unwrap();
        let made = flower(&venv, "python", &home)
            .arg("-c")
            .arg(KEY_PAIR)
            .arg(&keys)
            .status()
            .await
            .unwrap();
        assert!(made.success());
        std::fs::copy(tls.join("ca.pem"), keys.join("ca.pem")).unwrap();
        share(&keys, gid);
        let registered = flower(&venv, "flwr", &home)
            .args(["supernode", "register"])
            .arg(keys.join("supernode.pub"))
            .arg("consumer")
            .current_dir(&home)
            .output()
            .await
            .unwrap();
        assert!(
            registered.status.success(),
            "{}{}",
            String::from_utf8_lossy(&registered.stdout),
            String::from_utf8_lossy(&registered.stderr)
        );
        let spec = JobSpec {
            name: format!("flower-{provider}-{}", std::process::id()),
            command: vec![
                venv.join("bin/python").display().to_string(),
                "-m".into(),
                "insitu_flower.supernode".into(),
                "--rounds-log".into(),
                "/output/rounds.jsonl".into(),
                "--".into(),
                "--root-certificates".into(),
                "/key/ca.pem".into(),
                "--auth-supernode-private-key".into(),
                "/key/supernode.pem".into(),
                "--superlink".into(),
                "127.0.0.1:7000".into(),
            ],
            read_only: vec![
                Mount {
                    host: partitions.join(format!("provider-{provider}")),
                    inside: PathBuf::from("/data"),
                },
                Mount {
                    host: venv.clone(),
                    inside: venv.clone(),
                },
                Mount {
                    host: keys,
                    inside: PathBuf::from("/key"),
                },
                Mount {
                    host: root().join("federated"),
                    inside: PathBuf::from("/opt/insitu"),
                },
            ],
            output: folder.join("output"),
            log: folder.join("job.log"),
            env: vec![
                (
                    "PATH".into(),
                    format!("{}:/usr/bin:/bin", venv.join("bin").display()),
                ),
                ("PYTHONPATH".into(), "/opt/insitu".into()),
            ],
            limits: Limits {
                wall_secs: 600,
                memory_mb: 1024,
                pids: 256,
                tmp_mb: 256,
                ..Limits::default()
            },
            egress: Some(Egress {
                port: 7000,
                to: aggregator,
            }),
        };
        jobs.push((sandbox.start(spec).await.unwrap(), folder));
    }

    // The consumer's run: three rounds across the three SuperNodes.
    let output = home.join("result");
    let run = flower(&venv, "flwr", &home)
        .arg("run")
        .arg(root().join("examples/federated/app"))
        .arg("consumer")
        .arg("--stream")
        .arg("--run-config")
        .arg(format!("output-dir=\"{}\"", output.display()))
        .current_dir(&home)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output();
    let Ok(run) = tokio::time::timeout(Duration::from_secs(300), run).await else {
        for (_, folder) in &jobs {
            eprintln!(
                "{}",
                std::fs::read_to_string(folder.join("job.log")).unwrap_or_default()
            );
        }
        panic!("the run did not end within five minutes");
    };
    let run = run.unwrap();
    let logs = jobs
        .iter()
        .map(|(_, folder)| std::fs::read_to_string(folder.join("job.log")).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n----\n");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    eprintln!("run:\n{printed}\nsupernodes:\n{logs}");
    assert!(run.status.success());
    let rounds: serde_json::Value =
        serde_json::from_slice(&std::fs::read(output.join("rounds.json")).unwrap()).unwrap();
    let rounds = rounds["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 3, "{rounds:?}");
    assert!(rounds[2]["accuracy"].as_f64().unwrap() > 0.8, "{rounds:?}");
    assert_eq!(
        printed.matches("Received 3 results and 0 failures").count(),
        6
    );

    let mut updates = std::collections::HashSet::new();
    for (job, folder) in jobs {
        job.stopper().stop();
        let outcome = job.wait().await;
        assert_eq!(outcome.ending, Ending::Stopped, "{outcome:?}");
        let egress = outcome.egress.unwrap();
        assert!(
            egress.sent_bytes > 0 && egress.received_bytes > 0,
            "{egress:?}"
        );
        // The SuperNode's log of the replies it delivered: per round, one training update (the
        // provider's 480 training rows) and one evaluation (its 120 held-out rows).
        let log = std::fs::read_to_string(folder.join("output/rounds.jsonl")).unwrap();
        let entries: Vec<serde_json::Value> = log
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(entries.len(), 6, "{log}");
        for (index, entry) in entries.iter().enumerate() {
            let round = index / 2 + 1;
            assert_eq!(entry["round"], round, "{log}");
            assert_eq!(entry["message"].as_str().unwrap().len(), 64, "{log}");
            if index % 2 == 0 {
                assert_eq!(entry["kind"], "train", "{log}");
                assert_eq!(entry["samples"], 480, "{log}");
                let update = entry["update"].as_str().unwrap();
                assert_eq!(update.len(), 64, "{log}");
                assert!(updates.insert(update.to_owned()), "each update is its own");
            } else {
                assert_eq!(entry["kind"], "evaluate", "{log}");
                assert_eq!(entry["samples"], 120, "{log}");
                assert!(entry["update"].is_null(), "{log}");
            }
        }
    }
    superlink.kill().await.unwrap();
}
