//! The commands that inspect and operate a deployed suite, against a real anvil node on which
//! the demo bought access to an asset that its keeper never served: `asset show`, `agreement
//! show`, `refund`, `withdraw`, `fee show|set`, `template list|propose|approve`.

mod common;

use alloy::{primitives::Address, signers::local::PrivateKeySigner};
use common::{json, keys, nonce, rpc, run_as, stderr, stdout};
use insitu_client::{demo, devnet::Devnet};

struct Setup {
    devnet: Devnet,
    keys: Vec<PrivateKeySigner>,
    report: demo::DemoReport,
    _dir: tempfile::TempDir,
    addresses: String,
}

impl Setup {
    /// The demo up to the payment: operator keys[0], provider keys[1], keeper keys[2], consumer
    /// keys[3], fee receiver keys[4].
    fn new() -> Self {
        Self::until(demo::Stage::Paid)
    }

    fn until(stage: demo::Stage) -> Self {
        let devnet = Devnet::start().expect("anvil");
        let keys = keys(&devnet);
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let report = runtime
            .block_on(demo::run_until(&devnet.endpoint(), &keys[..5], stage))
            .expect("demo");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("31337.json");
        report.deployment.write(&path).unwrap();
        Self {
            devnet,
            keys,
            report,
            addresses: path.to_str().unwrap().to_owned(),
            _dir: dir,
        }
    }

    /// `insitu` as `key`, with the endpoint and the addresses file after `args`.
    fn run(&self, key: usize, args: &[&str]) -> std::process::Output {
        let endpoint = self.devnet.endpoint();
        let mut all = args.to_vec();
        all.extend(["--rpc-url", &endpoint, "--addresses", &self.addresses]);
        run_as(&self.keys[key], &all)
    }

    fn agreement(&self, key: usize, party: Option<Address>) -> serde_json::Value {
        let id = self.report.agreement_id.to_string();
        let party = party.map(|party| party.to_string());
        let mut args = vec!["--json", "agreement", "show", &id];
        if let Some(party) = &party {
            args.extend(["--as", party]);
        }
        let output = self.run(key, &args);
        assert!(output.status.success(), "{}", stderr(&output));
        json(&output)
    }
}

fn refused(output: &std::process::Output, message: &str) {
    assert!(!output.status.success(), "{}", stdout(output));
    assert!(stderr(output).contains(message), "{}", stderr(output));
}

#[test]
fn an_unserved_agreement_is_shown_then_refunded_once_it_times_out() {
    let setup = Setup::new();
    let (consumer, keeper, outsider) = (
        setup.keys[3].address(),
        setup.keys[2].address(),
        setup.keys[6].address(),
    );
    let id = setup.report.agreement_id.to_string();

    let shown = setup.agreement(6, Some(consumer));
    assert_eq!(shown["id"], id);
    assert_eq!(shown["consumer"], consumer.to_string().to_lowercase());
    assert_eq!(
        shown["terms"]["provider"],
        keeper.to_string().to_lowercase()
    );
    assert_eq!(shown["template_name"], "AccessTemplate");
    let conditions = shown["conditions"].as_array().unwrap();
    assert_eq!(conditions.len(), 2);
    assert_eq!(conditions[0]["name"], "PaymentCondition");
    assert_eq!(conditions[0]["state"], "fulfilled");
    assert_eq!(conditions[1]["name"], "AccessCondition");
    assert_eq!(conditions[1]["state"], "unfulfilled");
    assert_eq!(conditions[1]["timed_out"], false);
    let deadline = conditions[1]["time_out"].as_u64().unwrap();
    assert_eq!(
        deadline,
        shown["created_at"].as_u64().unwrap() + u64::from(demo::OFFER_MAX_TIMEOUT)
    );
    assert_eq!(shown["next"]["action"], "wait");
    assert_eq!(shown["next"]["who"], "the provider to serve");
    assert_eq!(shown["next"]["deadline"], deadline);
    // The provider is told to serve; by default, the key's account is the party.
    assert_eq!(setup.agreement(6, Some(keeper))["next"]["action"], "serve");
    assert_eq!(
        setup.agreement(3, None)["party"],
        consumer.to_string().to_lowercase()
    );

    // Too early: refused, nothing sent.
    let output = setup.run(6, &["refund", &id]);
    refused(
        &output,
        &format!("agreement {id} cannot be refunded: waiting for the provider to serve until"),
    );
    assert_eq!(nonce(&setup.devnet, outsider), 0);

    rpc(
        &setup.devnet,
        "evm_increaseTime",
        serde_json::json!([demo::OFFER_MAX_TIMEOUT + 1]),
    );
    rpc(&setup.devnet, "evm_mine", serde_json::json!([]));
    let shown = setup.agreement(6, None);
    assert_eq!(shown["conditions"][1]["timed_out"], true);
    assert_eq!(shown["next"]["action"], "refund");
    let text = setup.run(6, &["agreement", "show", &id]);
    assert!(
        stdout(&text).contains(&format!("`insitu refund {id}`")),
        "{}",
        stdout(&text)
    );

    // Anyone may refund; the consumer is paid back the whole quoted total.
    let output = setup.run(6, &["--json", "refund", &id]);
    assert!(output.status.success(), "{}", stderr(&output));
    let refunded = json(&output);
    assert_eq!(refunded["payer"], consumer.to_string().to_lowercase());
    assert_eq!(
        refunded["amount"],
        serde_json::to_value(setup.report.quoted_total).unwrap()
    );
    assert!(
        refunded["abort_transaction"].is_string(),
        "the service was aborted first"
    );
    let shown = setup.agreement(6, None);
    assert_eq!(shown["conditions"][0]["state"], "refunded");
    assert_eq!(shown["conditions"][1]["state"], "aborted");
    assert_eq!(shown["next"]["action"], "finished");

    let sent = nonce(&setup.devnet, outsider);
    let again = setup.run(6, &["refund", &id]);
    refused(
        &again,
        "cannot be refunded: not served: the payment was refunded to the consumer",
    );
    assert_eq!(nonce(&setup.devnet, outsider), sent);

    let unknown = format!("0x{}", "ab".repeat(32));
    refused(
        &setup.run(6, &["agreement", "show", &unknown]),
        "was created on this suite",
    );
}

#[test]
fn assets_fees_templates_and_withdrawals() {
    let setup = Setup::new();
    let did = setup.report.did.to_string();
    let operator = 0;
    let fee_receiver = setup.keys[4].address();
    let outsider = 6;

    // asset show
    let asset = json(&setup.run(outsider, &["--json", "asset", "show", &did]));
    assert_eq!(
        asset["owner"],
        setup.keys[1].address().to_string().to_lowercase()
    );
    assert_eq!(
        asset["providers"],
        serde_json::json!([setup.keys[2].address().to_string().to_lowercase()])
    );
    let missing = format!("0x{}", "01".repeat(32));
    refused(
        &setup.run(outsider, &["asset", "show", &missing]),
        "is registered",
    );
    refused(
        &setup.run(outsider, &["asset", "show", "0x1234"]),
        "invalid value '0x1234'",
    );

    // fee show
    let token = setup.report.token.to_string();
    let fee = json(&setup.run(outsider, &["--json", "fee", "show", "--token", &token]));
    assert_eq!(fee["bps"], 100);
    assert_eq!(fee["max_bps"], 1_000);
    assert_eq!(fee["receiver"], fee_receiver.to_string().to_lowercase());

    // fee set: an outsider may not; bad values are refused before sending.
    let receiver = setup.keys[5].address().to_string();
    refused(
        &setup.run(
            outsider,
            &["fee", "set", "--bps", "200", "--receiver", &receiver],
        ),
        "may not govern this suite",
    );
    refused(
        &setup.run(
            operator,
            &["fee", "set", "--bps", "1001", "--receiver", &receiver],
        ),
        "a network fee of 1001 bps is above the maximum of 1000 bps",
    );
    let zero = Address::ZERO.to_string();
    refused(
        &setup.run(operator, &["fee", "set", "--bps", "5", "--receiver", &zero]),
        "a non-zero network fee needs a non-zero receiver",
    );
    assert_eq!(nonce(&setup.devnet, setup.keys[outsider].address()), 0);
    // The operator proposes to the timelock (no delay in the demo): scheduled, then executed,
    // then in effect.
    let set = [
        "--json",
        "fee",
        "set",
        "--bps",
        "200",
        "--receiver",
        &receiver,
    ];
    let scheduled = json(&setup.run(operator, &set));
    assert_eq!(scheduled["status"], "scheduled", "{scheduled}");
    let executed = json(&setup.run(operator, &set));
    assert_eq!(executed["status"], "done", "{executed}");
    let again = json(&setup.run(operator, &set));
    assert_eq!(again["status"], "already_in_effect", "{again}");
    let fee = json(&setup.run(outsider, &["--json", "fee", "show"]));
    assert_eq!(fee["bps"], 200);

    // template list | propose | approve
    let templates = json(&setup.run(outsider, &["--json", "template", "list"]));
    let templates = templates["templates"].as_array().unwrap();
    assert_eq!(templates.len(), 2);
    assert!(
        templates
            .iter()
            .all(|template| template["status"] == "approved")
    );
    let access = setup
        .report
        .deployment
        .address("AccessTemplate")
        .unwrap()
        .to_string();
    let propose = setup.run(outsider, &["template", "propose", &access]);
    assert!(propose.status.success());
    assert!(
        stdout(&propose).contains("is already approved"),
        "{}",
        stdout(&propose)
    );
    let payment = setup
        .report
        .deployment
        .address("PaymentCondition")
        .unwrap()
        .to_string();
    refused(
        &setup.run(operator, &["template", "approve", &payment]),
        "is not proposed: only a proposed template can be approved",
    );
    let account = setup.keys[9].address().to_string();
    refused(
        &setup.run(outsider, &["template", "propose", &account]),
        "is not a contract",
    );
    // A contract proposed by anyone, then approved through the timelock by the operator.
    let proposed = json(&setup.run(outsider, &["--json", "template", "propose", &payment]));
    assert_eq!(proposed["status"], "done");
    refused(
        &setup.run(outsider, &["template", "approve", &payment]),
        "may not govern this suite",
    );
    assert_eq!(
        json(&setup.run(operator, &["--json", "template", "approve", &payment]))["status"],
        "scheduled"
    );
    assert_eq!(
        json(&setup.run(operator, &["--json", "template", "approve", &payment]))["status"],
        "done"
    );
    let templates = json(&setup.run(outsider, &["--json", "template", "list"]));
    assert_eq!(templates["templates"].as_array().unwrap().len(), 3);

    // withdraw: nothing owed, not the fee receiver.
    refused(
        &setup.run(outsider, &["withdraw", "--token", &token]),
        "has nothing to withdraw in token",
    );
    refused(
        &setup.run(outsider, &["withdraw", "--fees", "--token", &token]),
        "is not the network fee receiver",
    );
    refused(
        &setup.run(5, &["withdraw", "--fees", "--token", &token, "--to", &zero]),
        "the recipient must not be the zero address",
    );
    refused(
        &setup.run(5, &["withdraw", "--fees", "--token", &token]),
        "has nothing to withdraw",
    );
}

#[test]
fn the_fee_receiver_withdraws_the_fees_of_a_served_agreement() {
    let setup = Setup::until(demo::Stage::Served);
    let token = setup.report.token.to_string();
    let fee_receiver = 4;
    let fee = json(&setup.run(0, &["--json", "fee", "show", "--token", &token]));
    let accrued = fee["accrued"][0]["amount"].clone();
    assert_eq!(
        accrued,
        serde_json::to_value(
            setup.report.quoted_total - alloy::primitives::U256::from(demo::PRICE)
        )
        .unwrap()
    );
    let to = setup.keys[7].address();
    let output = setup.run(
        fee_receiver,
        &[
            "--json",
            "withdraw",
            "--fees",
            "--token",
            &token,
            "--to",
            &to.to_string(),
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let withdrawn = json(&output);
    assert_eq!(withdrawn["kind"], "fees");
    assert_eq!(withdrawn["amount"], accrued);
    assert_eq!(withdrawn["to"], to.to_string().to_lowercase());
    let fee = json(&setup.run(0, &["--json", "fee", "show", "--token", &token]));
    assert_eq!(
        fee["accrued"][0]["amount"],
        serde_json::to_value(alloy::primitives::U256::ZERO).unwrap()
    );
    // Nothing is left: refused, nothing sent.
    let sent = nonce(&setup.devnet, setup.keys[fee_receiver].address());
    refused(
        &setup.run(fee_receiver, &["withdraw", "--fees", "--token", &token]),
        "has nothing to withdraw",
    );
    assert_eq!(
        nonce(&setup.devnet, setup.keys[fee_receiver].address()),
        sent
    );
    // The agreement is over: paid to the provider.
    let id = setup.report.agreement_id.to_string();
    let shown = setup.agreement(6, None);
    assert_eq!(shown["conditions"][0]["state"], "released");
    assert_eq!(shown["next"]["action"], "finished");
    refused(&setup.run(6, &["refund", &id]), "served and paid");
}

#[test]
fn the_demo_runs_the_whole_system_with_the_keeper_as_its_own_process() {
    let keeper = std::path::Path::new(env!("CARGO_BIN_EXE_insitu")).with_file_name("insitu-keeper");
    assert!(
        keeper.exists(),
        "{} is missing: build the workspace (cargo build -p insitu-keeper)",
        keeper.display()
    );
    let catalog = keeper.with_file_name("insitu-catalog");
    assert!(
        catalog.exists(),
        "{} is missing: build the workspace (cargo build -p insitu-catalog)",
        catalog.display()
    );
    let output = common::insitu()
        .args(["--json", "demo"])
        .env("INSITU_KEEPER_BIN", &keeper)
        .env("INSITU_CATALOG_BIN", &catalog)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let report = json(&output);
    assert_eq!(report["access_delivered"], true);
    assert_eq!(report["access_escrow_released"], true);
    assert_eq!(report["refund_after_timeout"], true);
    let blocks = report["blocks_lock_to_release_access"].as_u64().unwrap();
    assert!((1..=10).contains(&blocks), "{blocks}");
    assert_eq!(report["compute_result_delivered"], true);
    assert_eq!(report["compute_escrow_released"], true);
    assert_eq!(report["compute_failed_job_refunded"], true);
    let blocks = report["blocks_lock_to_release_compute"].as_u64().unwrap();
    assert!((3..=30).contains(&blocks), "{blocks}");
    assert_eq!(report["compute_result"]["visits.csv"]["rows"], 1500);
    // Both datasets were found in the catalog before they were bought; the compute result was
    // indexed too.
    assert_eq!(report["catalog_search_found"], true);
    assert_eq!(report["catalog_indexed_assets"], 3);
    let searched = &report["catalog_searches"];
    assert!(
        searched[0][1][0]
            .as_str()
            .unwrap()
            .starts_with("Hourly air quality (sample)"),
        "{searched}"
    );
    let steps: Vec<_> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| step["step"].as_str().unwrap().to_owned())
        .collect();
    assert!(steps.contains(&"keeper grants access and releases the escrow".to_owned()));
    assert!(steps.contains(&"consumer is refunded".to_owned()));
    for step in [
        "keeper registers the result, owned by the consumer",
        "keeper records the input's use",
        "keeper fulfils compute and releases the escrow",
        "consumer is refunded for the failed job",
    ] {
        assert!(
            steps.contains(&step.to_owned()),
            "{step} missing from {steps:?}"
        );
    }
    // Balances: the provider got the price once, the consumer the refund, escrow is empty.
    let balance = |party: &str| {
        report["balances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|entry| entry[0] == party)
            .map(|entry| entry[1].clone())
            .unwrap()
    };
    // The provider got the access price and the compute price, once each.
    assert_eq!(
        balance("provider"),
        serde_json::to_value(alloy::primitives::U256::from(
            demo::PRICE + 40_000_000_000_000_000_000
        ))
        .unwrap()
    );
    assert_eq!(
        balance("escrow (payment condition)"),
        serde_json::to_value(alloy::primitives::U256::ZERO).unwrap()
    );
    // In --json mode only the JSON is printed.
    assert!(stderr(&output).is_empty(), "{}", stderr(&output));
}

#[test]
fn a_deployment_file_of_another_chain_or_a_reset_chain_is_refused() {
    let setup = Setup::new();
    // A fresh node: no code at the recorded addresses.
    let fresh = Devnet::start().expect("anvil");
    let endpoint = fresh.endpoint();
    let output = run_as(
        &setup.keys[0],
        &[
            "fee",
            "show",
            "--rpc-url",
            &endpoint,
            "--addresses",
            &setup.addresses,
        ],
    );
    refused(&output, "does not describe this chain");
    let other = Devnet::start_with(|anvil| anvil.chain_id(5)).expect("anvil");
    let endpoint = other.endpoint();
    let output = run_as(
        &setup.keys[0],
        &[
            "fee",
            "show",
            "--rpc-url",
            &endpoint,
            "--addresses",
            &setup.addresses,
        ],
    );
    refused(
        &output,
        "is for chain 31337, but the RPC endpoint serves chain 5",
    );
}

#[test]
fn the_federated_demo_trains_across_three_keepers_and_pays_each() {
    let keeper = std::path::Path::new(env!("CARGO_BIN_EXE_insitu")).with_file_name("insitu-keeper");
    assert!(
        keeper.exists(),
        "{} is missing: build the workspace (cargo build -p insitu-keeper)",
        keeper.display()
    );
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let environment = root.join("target/flower-venv");
    assert!(
        environment.join("bin/flower-supernode").exists(),
        "no Flower environment at {}: run script/flower-deps.sh",
        environment.display()
    );
    let output = common::insitu()
        .args(["--json", "demo", "--federated", "--rounds", "2"])
        .arg("--flower-environment")
        .arg(&environment)
        .arg("--example")
        .arg(root.join("examples/federated"))
        .arg("--flower-package")
        .arg(root.join("federated"))
        .env("INSITU_KEEPER_BIN", &keeper)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let report = json(&output);
    assert_eq!(report["federated_rounds"], 2, "{report}");
    assert_eq!(report["federated_escrows_released"], 3, "{report}");
    assert_eq!(report["purchase_transactions"], 4, "{report}");
    let accuracy = report["federated_accuracy"].as_f64().unwrap();
    let alone = report["single_provider_accuracy"].as_f64().unwrap();
    assert!(accuracy > 0.8, "{report}");
    assert!(accuracy > alone + 0.1, "{report}");
    let providers = report["providers"].as_array().unwrap();
    assert_eq!(providers.len(), 3);
    let mut hashes = std::collections::HashSet::new();
    for provider in providers {
        assert_eq!(provider["rounds_served"], 2, "{provider}");
        assert_eq!(provider["samples"], 2 * 480, "{provider}");
        assert_eq!(provider["escrow_released"], true, "{provider}");
        hashes.insert(provider["round_log_hash"].as_str().unwrap().to_owned());
    }
    assert_eq!(hashes.len(), 3, "a round log per provider");

    // The model is the consumer's asset, derived on chain from the three round logs, each
    // derived from its provider's partition, and its document names each log's hash.
    let model = &report["model"];
    let set = |values: &serde_json::Value| -> std::collections::BTreeSet<String> {
        values
            .as_array()
            .unwrap()
            .iter()
            .map(|value| value.as_str().unwrap().to_owned())
            .collect()
    };
    let of_providers = |field: &str| -> std::collections::BTreeSet<String> {
        providers
            .iter()
            .map(|provider| provider[field].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        model["owner"].as_str().unwrap().to_lowercase(),
        "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc",
        "owned by the consumer (anvil's third account): {model}"
    );
    assert_eq!(
        set(&model["derived_from"]),
        of_providers("round_log"),
        "{report}"
    );
    assert_eq!(set(&model["inputs"]), of_providers("did"), "{report}");
    assert_eq!(
        set(&model["round_log_hashes"]),
        hashes.into_iter().collect(),
        "{report}"
    );
    let agreements: Vec<alloy::primitives::B256> = providers
        .iter()
        .map(|provider| provider["agreement"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        model["activity"].as_str().unwrap(),
        insitu_client::metadata::training_activity(agreements).to_string(),
        "{model}"
    );
}

#[test]
fn the_federated_commands_refuse_bad_input_before_sending_anything() {
    let setup = Setup::new();
    let consumer = setup.keys[3].address();
    let sent = nonce(&setup.devnet, consumer);
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.fab");
    std::fs::write(&app, b"a FAB").unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "just text").unwrap();
    let did = setup.report.did.to_string();
    let (app, ca, not_pem) = (
        app.to_str().unwrap(),
        ca.to_str().unwrap(),
        not_pem.to_str().unwrap(),
    );
    let order = |dids: &[&str], app: &str, superlink: &str, ca: &str| {
        let mut args = vec!["federated", "order"];
        args.extend(dids);
        args.extend([
            "--app",
            app,
            "--superlink",
            superlink,
            "--superlink-ca",
            ca,
            "--rounds",
            "3",
        ]);
        setup.run(3, &args)
    };
    refused(
        &order(&[&did, &did], app, "127.0.0.1:9092", ca),
        &format!("asset {did} is given twice"),
    );
    refused(
        &order(&[&did], "/nonexistent/app.fab", "127.0.0.1:9092", ca),
        "reading the app /nonexistent/app.fab",
    );
    refused(
        &order(&[&did], app, "127.0.0.1:9092", not_pem),
        "holds no PEM certificate",
    );
    for superlink in ["127.0.0.1", ":9092", "127.0.0.1:0", "host:port"] {
        refused(&order(&[&did], app, superlink, ca), "is not HOST:PORT");
    }
    // The demo's asset here has no keeper that could sell compute: nothing is bought.
    refused(
        &order(&[&did], app, "127.0.0.1:9092", ca),
        "is not a keeper's metadata URL",
    );

    let agreement = setup.report.agreement_id.to_string();
    let model = dir.path().join("model.npy");
    std::fs::write(&model, b"weights").unwrap();
    let register_with = |agreements: &[&str], app: &str, model: &str| {
        let mut args = vec!["federated", "register-model"];
        args.extend(agreements);
        args.extend([
            "--app",
            app,
            "--model",
            model,
            "--keeper",
            "http://127.0.0.1:9",
            "--name",
            "model",
            "--description",
            "a model",
            "--license",
            "MIT",
            "--logs",
            dir.path().to_str().unwrap(),
        ]);
        setup.run(3, &args)
    };
    let register = |agreements: &[&str], model: &str| register_with(agreements, app, model);
    let model = model.to_str().unwrap();
    refused(
        &register(&[&agreement, &agreement], model),
        &format!("agreement {agreement} is given twice"),
    );
    refused(
        &register(&[&agreement], "/nonexistent/model.npy"),
        "reading the model /nonexistent/model.npy",
    );
    refused(
        &register_with(&[&agreement], "/nonexistent/app.fab", model),
        "reading the app /nonexistent/app.fab",
    );
    let unknown = format!("0x{}", "ab".repeat(32));
    refused(
        &register(&[&unknown], model),
        &format!("no agreement {unknown} was created on this suite"),
    );
    assert_eq!(nonce(&setup.devnet, consumer), sent, "nothing was sent");
}
