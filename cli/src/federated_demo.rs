//! `insitu demo --federated`: federated learning across three providers on a local chain. It
//! starts anvil, deploys the suite, starts three keepers as processes of their own (each with a
//! Flower runtime), has each provider publish one partition of the example data set sold for
//! federated compute, and plays the consumer: buys from the three in four transactions, starts
//! its SuperLink (TLS, SuperNode authentication), orders the example app on each agreement,
//! registers the SuperNode key each keeper shows, and trains the model with `flwr run`. Each
//! keeper serves its rounds in its sandbox, signs its round log and is paid; the consumer checks
//! each log's signature. The accuracy per round is shown against a model trained on one
//! provider's rows alone. Everything is stopped on exit and on Ctrl-C.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command},
    time::{Duration, Instant},
};

use alloy::{
    primitives::{Address, B256, U256, hex},
    signers::local::PrivateKeySigner,
};
use anyhow::{Context, Result, bail};
use insitu_bindings::{MockERC20, rounds::SignedRoundLog};
use insitu_client::{
    agreement::{self, ConditionState},
    compute::{self, Order},
    market::{self, KeeperClient},
    metadata::ServiceKind,
    suite::Suite,
    tx::{Sender, Silent},
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::demo::{self, Step};

/// Each provider's price: 30 tokens of 18 decimals.
const PRICE: u128 = 30_000_000_000_000_000_000;
/// Providers, each with its keeper.
const PROVIDERS: usize = 3;
/// Local passes over a provider's rows per round (the app's `local-epochs`).
const LOCAL_EPOCHS: u32 = 5;
/// Longest the training may take.
const RUN_BUDGET: Duration = Duration::from_secs(600);

/// Where the demo finds Flower and the example.
#[derive(Debug, Clone)]
pub(crate) struct FederatedOptions {
    /// The Flower environment (`script/flower-deps.sh` makes `target/flower-venv`).
    pub(crate) environment: PathBuf,
    /// The example's folder: `app/`, `make_partitions.py`, `consumer_tools.py`.
    pub(crate) example: PathBuf,
    /// The folder holding the `insitu_flower` package (the project's `federated/`).
    pub(crate) package: PathBuf,
    /// Rounds to train.
    pub(crate) rounds: u32,
}

/// One provider, as the demo ends.
#[derive(Debug, Serialize)]
pub(crate) struct ProviderReport {
    /// Its keeper's account.
    pub(crate) keeper: Address,
    /// Its partition's asset.
    pub(crate) did: B256,
    /// The consumer's agreement with it.
    pub(crate) agreement: B256,
    /// Rounds its signed log says it served.
    pub(crate) rounds_served: usize,
    /// Rows each of its updates was trained on.
    pub(crate) samples: u64,
    /// The hash naming its signed round log.
    pub(crate) round_log_hash: B256,
    /// Its escrow was released to it.
    pub(crate) escrow_released: bool,
}

/// What the federated demo did.
#[derive(Debug, Serialize)]
pub(crate) struct FederatedReport {
    /// The transactions after the deployment, in order.
    pub(crate) steps: Vec<Step>,
    /// The providers.
    pub(crate) providers: Vec<ProviderReport>,
    /// Transactions the consumer sent to buy from every provider.
    pub(crate) purchase_transactions: usize,
    /// Rounds the model was trained for.
    pub(crate) federated_rounds: u64,
    /// Escrows released to providers whose round logs verify.
    pub(crate) federated_escrows_released: u64,
    /// The final model's accuracy on every provider's held-out rows.
    pub(crate) federated_accuracy: f64,
    /// The accuracy after each round.
    pub(crate) federated_accuracy_per_round: Vec<f64>,
    /// The accuracy, on the same rows, of a model trained on provider 0's rows alone.
    pub(crate) single_provider_accuracy: f64,
    /// Token balances at the end: (party, balance).
    pub(crate) balances: Vec<(String, U256)>,
}

/// A child process (the SuperLink), killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The consumer's Flower side: its home, its tools and its SuperLink.
struct Consumer {
    options: FederatedOptions,
    home: PathBuf,
    port: u16,
    ca: String,
    _superlink: Process,
}

impl Consumer {
    /// A command of the Flower environment, with the consumer's Flower home.
    fn flower(&self, program: &str) -> Command {
        flower_command(&self.options, program, &self.home)
    }

    /// Registers a SuperNode's public key with the SuperLink.
    fn register(&self, key: &str) -> Result<()> {
        let file = self.home.join(format!(
            "supernode-{}.pub",
            hex::encode(&Sha256::digest(key.as_bytes())[..8])
        ));
        std::fs::write(&file, format!("{key}\n"))?;
        let output = self
            .flower("flwr")
            .args(["supernode", "register"])
            .arg(&file)
            .arg("consumer")
            .output()
            .context("running flwr supernode register")?;
        if !output.status.success() {
            bail!(
                "flwr supernode register failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }
}

fn flower_command(options: &FederatedOptions, program: &str, home: &Path) -> Command {
    let mut command = Command::new(options.environment.join("bin").join(program));
    command
        .env(
            "PATH",
            format!(
                "{}:/usr/bin:/bin",
                options.environment.join("bin").display()
            ),
        )
        .env("FLWR_HOME", home)
        .env("PYTHONPATH", options.example.join("app"))
        .current_dir(home);
    command
}

/// Runs one of the example's scripts with `arguments`; returns what it printed.
fn example_script(
    options: &FederatedOptions,
    home: &Path,
    script: &str,
    arguments: &[&str],
) -> Result<String> {
    let output = flower_command(options, "python", home)
        .arg(options.example.join(script))
        .args(arguments)
        .output()
        .with_context(|| format!("running {script}"))?;
    if !output.status.success() {
        bail!(
            "{script} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs the demo, telling `log` what happens.
pub(crate) async fn run(options: &FederatedOptions, log: &dyn Fn(&str)) -> Result<FederatedReport> {
    for needed in [
        options.environment.join("bin/flower-supernode"),
        options.example.join("app/pyproject.toml"),
        options.package.join("insitu_flower/supernode.py"),
    ] {
        if !needed.exists() {
            bail!(
                "{} is missing (script/flower-deps.sh makes the Flower environment; run from the \
                 repository's root)",
                needed.display()
            );
        }
    }
    let work = tempfile::tempdir().context("creating the demo's folder")?;
    let root = work.path();
    // 1. The suite and a demo token, the consumer funded.
    let chain = demo::local_chain(root, 8, 0, 3, log).await?;
    let (devnet, provider, suite) = (&chain.devnet, chain.provider.clone(), &chain.suite);
    let [
        operator,
        publisher,
        consumer,
        fee_receiver,
        keeper_keys @ ..,
    ] = &chain.keys[..]
    else {
        bail!("anvil gave fewer than eight accounts");
    };
    let addresses = chain.addresses.clone();
    let as_sender = |key: &PrivateKeySigner| chain.sender(key);
    let mut steps: Vec<(String, B256)> = Vec::new();
    let token = demo::deploy_token(
        &as_sender(operator),
        consumer.address(),
        U256::from(PRICE) * U256::from(10),
        "consumer is given 300 DUSD",
        &mut steps,
    )
    .await?;

    // 2. The consumer's side: its TLS authority and SuperLink, which admits only the
    //    SuperNodes whose keys it registers.
    let home = root.join("consumer");
    std::fs::create_dir_all(&home)?;
    let tls = root.join("tls");
    example_script(
        options,
        &home,
        "consumer_tools.py",
        &["tls", &tls.display().to_string()],
    )?;
    let port = demo::free_port()?;
    let superlink_log = std::fs::File::create(root.join("superlink.log"))?;
    let superlink = flower_command(options, "flower-superlink", &home)
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
        .stdout(superlink_log.try_clone()?)
        .stderr(superlink_log)
        .spawn()
        .context("starting flower-superlink")?;
    let superlink = Process(superlink);
    std::fs::write(
        home.join("config.toml"),
        format!(
            "[superlink]\ndefault = \"consumer\"\n\n[superlink.consumer]\naddress = \
             \"127.0.0.1:{port}\"\nroot-certificates = \"{}\"\n",
            tls.join("ca.pem").display()
        ),
    )?;
    let consumer_side = Consumer {
        options: options.clone(),
        home: home.clone(),
        port,
        ca: std::fs::read_to_string(tls.join("ca.pem"))?,
        _superlink: superlink,
    };
    log(&format!(
        "consumer's SuperLink at 127.0.0.1:{port} (TLS, SuperNode authentication)"
    ));

    // 3. Three providers, each with one partition and a keeper of its own.
    let partitions = root.join("partitions");
    example_script(
        options,
        &home,
        "make_partitions.py",
        &[
            &partitions.display().to_string(),
            "--providers",
            &PROVIDERS.to_string(),
        ],
    )?;
    let mut keepers = Vec::new();
    let mut dids = Vec::new();
    let fab_path = home.join("app.fab");
    example_script(
        options,
        &home,
        "consumer_tools.py",
        &[
            "fab",
            &options.example.join("app").display().to_string(),
            &fab_path.display().to_string(),
        ],
    )?;
    let fab = std::fs::read(&fab_path)?;
    let fab_sha256 = hex::encode(Sha256::digest(&fab));
    for (index, keeper_key) in keeper_keys.iter().take(PROVIDERS).enumerate() {
        let folder = root.join(format!("provider-{index}"));
        let data = folder.join("data");
        std::fs::create_dir_all(&data)?;
        let file = data.join("data.csv");
        std::fs::copy(partitions.join(format!("provider-{index}/data.csv")), &file)?;
        let keeper_port = demo::free_port()?;
        let config = folder.join("keeper.toml");
        std::fs::write(
            &config,
            format!(
                "rpc_url = \"{}\"\nchain_id = 31337\naddresses = \"{}\"\nconfirmations = 1\n\
                 poll_interval_ms = 250\nlisten = \"127.0.0.1:{keeper_port}\"\ndatabase = \"{}\"\n\
                 data_root = \"{}\"\npublishers = [\"{}\"]\n\n\
                 [compute]\nwork_root = \"{}\"\ngrace_secs = 2\n\n\
                 [[compute.runtimes]]\nname = \"flower\"\ndescription = \"Flower 1.41.0 SuperNode with numpy\"\n\n\
                 [compute.runtimes.flower]\nenvironment = \"{}\"\npackage = \"{}\"\n\
                 # The consumer's aggregator runs on this machine.\n\
                 aggregators_allow = [\"127.0.0.0/8\"]\n",
                devnet.endpoint(),
                addresses.display(),
                folder.join("keeper.db").display(),
                data.display(),
                publisher.address(),
                folder.join("compute").display(),
                options.environment.display(),
                options.package.display(),
            ),
        )?;
        let keeper = demo::start_keeper(&config, keeper_key, &folder.join("keeper.log"))?;
        let url = format!("http://127.0.0.1:{keeper_port}");
        demo::wait_ready(&url, "/ready").await?;
        log(&format!(
            "provider {index}: keeper {} at {url}",
            keeper_key.address()
        ));
        let bytes = std::fs::read(&file)?;
        let source = serde_json::to_vec_pretty(&serde_json::json!({
            "@context": "https://schema.org",
            "@type": "Dataset",
            "schemaVersion": "insitu-metadata/1",
            "name": format!("Classification partition {index} (federated sample)"),
            "description": "One provider's rows of a binary classification table; they never leave it.",
            "author": format!("provider {index}"),
            "license": "LicenseRef-federated-only",
            "keywords": ["federated", "sample"],
            "files": [{
                "name": "data.csv",
                "contentType": "text/csv",
                "contentSize": bytes.len(),
                "sha256": hex::encode(Sha256::digest(&bytes)),
                "location": format!("file://{}", file.display()),
            }],
            "services": [{
                "type": "compute",
                "token": token.to_string(),
                "price": [{"receiver": publisher.address().to_string(), "amount": PRICE.to_string()}],
                "timeout": {"min": 3600, "max": 86400},
                "compute": {
                    "algorithms": {"any": false, "sha256": [fab_sha256]},
                    "runtimes": ["flower"],
                    "limits": {"wallSecs": 900, "memoryMb": 1024, "cpuPercent": 100, "pids": 256,
                               "outputMb": 4, "tmpMb": 256, "logKb": 256},
                    "logs": "consumer",
                    "resultRetentionDays": 30
                }
            }]
        }))?;
        let published = market::publish(
            suite,
            &as_sender(publisher),
            &KeeperClient::new(&url),
            &source,
            B256::from(rand::random::<[u8; 32]>()),
            &Silent,
        )
        .await?;
        steps.push((
            format!("provider {index} publishes its partition"),
            published.transaction,
        ));
        dids.push(published.did);
        keepers.push(keeper);
    }

    // 4. The consumer buys from the three: one approval of the sum, one purchase each.
    let consumer_sender = as_sender(consumer);
    let bought = market::buy_many(
        suite,
        &consumer_sender,
        &dids,
        ServiceKind::Compute,
        0,
        &Silent,
    )
    .await?;
    let mut purchase_transactions = 0;
    if let Some(approval) = bought.first().and_then(|bought| bought.approval) {
        steps.push(("consumer approves the three prices".into(), approval));
        purchase_transactions += 1;
    }
    for (index, purchase) in bought.iter().enumerate() {
        steps.push((
            format!("consumer buys federated compute from provider {index}"),
            purchase.transaction,
        ));
        purchase_transactions += 1;
    }
    let agreements: Vec<B256> = bought
        .iter()
        .map(|bought| bought.quote.agreement_id)
        .collect();
    log(&format!(
        "bought from {PROVIDERS} providers in {purchase_transactions} transactions"
    ));

    // 5. One order per agreement; each keeper shows its SuperNode's key, which the consumer
    //    registers.
    let order = Order {
        algorithm: compute::Algorithm::File(fab.clone()),
        runtime: "flower".into(),
        params: [
            ("superlink", format!("127.0.0.1:{}", consumer_side.port)),
            ("superlink-ca", consumer_side.ca.clone()),
            ("rounds", options.rounds.to_string()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect(),
    };
    for id in &agreements {
        compute::submit(suite, &consumer_sender, *id, &order).await?;
    }
    for (index, id) in agreements.iter().enumerate() {
        let key = supernode_key(suite, &consumer_sender, *id).await?;
        consumer_side.register(&key)?;
        log(&format!("registered provider {index}'s SuperNode key"));
    }

    // 6. The training.
    let output = home.join("result");
    log(&format!(
        "training for {} rounds (flwr run)",
        options.rounds
    ));
    let run_log = home.join("flwr-run.log");
    let run_file = std::fs::File::create(&run_log)?;
    let mut run = consumer_side
        .flower("flwr")
        .arg("run")
        .arg(options.example.join("app"))
        .arg("consumer")
        .arg("--stream")
        .arg("--run-config")
        .arg(format!(
            "num-server-rounds={} min-nodes={PROVIDERS} local-epochs={LOCAL_EPOCHS} \
             round-timeout=120 output-dir=\"{}\"",
            options.rounds,
            output.display()
        ))
        .stdout(run_file.try_clone()?)
        .stderr(run_file)
        .spawn()
        .context("starting flwr run")?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = run.try_wait()? {
            break status;
        }
        if started.elapsed() > RUN_BUDGET {
            let _ = run.kill();
            let _ = run.wait();
            bail!(
                "the training did not end within {} s:\n{}\n{}",
                RUN_BUDGET.as_secs(),
                tail(&run_log),
                jobs_report(suite, &consumer_sender, &agreements).await
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let printed = std::fs::read_to_string(&run_log).unwrap_or_default();
    for line in printed.lines().filter(|line| line.contains("aggregate_")) {
        log(&format!("  flwr: {}", strip_colours(line).trim()));
    }
    if !status.success() {
        bail!(
            "flwr run failed:\n{}\n{}",
            tail(&run_log),
            jobs_report(suite, &consumer_sender, &agreements).await
        );
    }
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(output.join("rounds.json"))?)?;
    let per_round: Vec<f64> = written["rounds"]
        .as_array()
        .context("rounds.json has no rounds")?
        .iter()
        .filter_map(|round| round["accuracy"].as_f64())
        .collect();
    let alone: serde_json::Value = serde_json::from_str(&example_script(
        options,
        &home,
        "consumer_tools.py",
        &[
            "baseline",
            &partitions.display().to_string(),
            "--provider",
            "0",
            "--epochs",
            &(LOCAL_EPOCHS * options.rounds).to_string(),
        ],
    )?)?;
    let single_provider_accuracy = alone["accuracy"].as_f64().unwrap_or_default();
    for (round, accuracy) in per_round.iter().enumerate() {
        log(&format!(
            "round {}: accuracy {accuracy:.3} across the {PROVIDERS} providers' held-out rows \
             (a model trained on provider 0 alone: {single_provider_accuracy:.3})",
            round + 1
        ));
    }

    // 7. Each keeper ends its job once its rounds are served, signs its round log and is paid;
    //    the consumer checks each log.
    let domain = insitu_bindings::requests::domain(31_337, suite.addresses.compute_execution);
    let mut providers = Vec::new();
    for (index, ((id, did), keeper_key)) in
        agreements.iter().zip(&dids).zip(keeper_keys).enumerate()
    {
        let mut seen = |_: &compute::JobStatus| {};
        let done = tokio::time::timeout(
            Duration::from_secs(300),
            compute::follow(
                suite,
                &consumer_sender,
                *id,
                &[],
                Duration::from_millis(500),
                &mut seen,
            ),
        )
        .await
        .context("a keeper did not settle within five minutes")??;
        if done.phase != "done" {
            bail!(
                "provider {index}'s job ended {}: {:?}",
                done.phase,
                done.reason
            );
        }
        let path = root.join(format!("round-log-{index}.json"));
        let mut ignore = |_| {};
        compute::download_result(suite, &consumer_sender, *id, 0, &path, &mut ignore).await?;
        let signed: SignedRoundLog = serde_json::from_slice(&std::fs::read(&path)?)?;
        let signer = signed
            .verify(&domain)
            .with_context(|| format!("provider {index}'s round log"))?;
        if signer != keeper_key.address() || signed.log.agreementId != *id || signed.log.did != *did
        {
            bail!("provider {index}'s round log is not about its agreement");
        }
        let released = agreement::show(suite, *id, None)
            .await?
            .payment_condition()
            .map(|condition| condition.state)
            == Some(ConditionState::Released);
        log(&format!(
            "provider {index}: served {} rounds, round log signed by its keeper, escrow {}",
            signed.log.rounds.len(),
            if released { "released" } else { "NOT released" }
        ));
        providers.push(ProviderReport {
            keeper: keeper_key.address(),
            did: *did,
            agreement: *id,
            rounds_served: signed.log.rounds.len(),
            samples: signed.log.rounds.first().map_or(0, |round| round.samples),
            round_log_hash: signed.hash(&domain),
            escrow_released: released,
        });
    }
    let report_steps = demo::with_receipts(&provider, steps).await?;
    let erc20 = MockERC20::new(token, &provider);
    let mut balances = Vec::new();
    let parties = [
        ("consumer".to_owned(), consumer.address()),
        ("data owner (publisher)".to_owned(), publisher.address()),
        ("fee receiver".to_owned(), fee_receiver.address()),
        (
            "escrow (payment condition)".to_owned(),
            suite.addresses.payment,
        ),
    ];
    for (party, address) in parties {
        balances.push((party, erc20.balanceOf(address).call().await?));
    }
    drop(keepers);
    Ok(FederatedReport {
        steps: report_steps,
        federated_rounds: per_round.len() as u64,
        federated_escrows_released: providers
            .iter()
            .filter(|provider| provider.escrow_released)
            .count() as u64,
        federated_accuracy: per_round.last().copied().unwrap_or_default(),
        federated_accuracy_per_round: per_round,
        single_provider_accuracy,
        purchase_transactions,
        providers,
        balances,
    })
}

/// Each job's phase, reason and last log lines, to explain a run that went wrong.
async fn jobs_report(suite: &Suite, consumer: &Sender, agreements: &[B256]) -> String {
    let mut report = String::new();
    for (index, id) in agreements.iter().enumerate() {
        let status = compute::status(suite, consumer, *id)
            .await
            .map(|status| format!("{} {}", status.phase, status.reason.unwrap_or_default()))
            .unwrap_or_else(|error| error.to_string());
        let logs = compute::logs(suite, consumer, *id)
            .await
            .unwrap_or_default();
        let lines: Vec<&str> = logs.lines().collect();
        report += &format!(
            "provider {index}'s job: {status}\n{}\n",
            lines[lines.len().saturating_sub(15)..]
                .iter()
                .map(|line| strip_colours(line))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    report
}

/// The SuperNode key job `id` shows once it is configured.
async fn supernode_key(suite: &Suite, consumer: &Sender, id: B256) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let status = compute::status(suite, consumer, id).await?;
        if let Some(key) = status.supernode_key {
            return Ok(key);
        }
        if status.is_final() {
            bail!(
                "the job ended {} before it ran: {:?}",
                status.phase,
                status.reason
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    bail!("job {id} showed no SuperNode key within two minutes")
}

/// The last lines of the file at `path`, without colour codes.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..]
        .iter()
        .map(|line| strip_colours(line))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `line` without terminal colour codes.
fn strip_colours(line: &str) -> String {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for next in chars.by_ref() {
                if next.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}
