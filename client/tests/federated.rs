//! Federated training from the consumer's side, without a chain: the training made from the
//! providers' checked round logs, every reason it is refused, and the model's document.

use alloy::{
    primitives::{Address, B256},
    signers::{SignerSync, local::PrivateKeySigner},
};
use insitu_bindings::rounds::{RoundLog, ServedRound, SignedRoundLog};
use insitu_client::{
    federated::{self, FederatedError, Model, ServedPart},
    metadata::{self, TrainingMember},
};

/// Provider `index`'s part: agreement and asset made from `index`, a log of `run` with three
/// rounds of 480 rows signed by a fresh key, and app `app`.
fn part(index: u8, run: u64, app: &str) -> ServedPart {
    part_signed_by(index, run, app, &PrivateKeySigner::random())
}

/// The keepers' domain these tests sign in.
fn domain() -> alloy::sol_types::Eip712Domain {
    insitu_bindings::requests::domain(31_337, Address::repeat_byte(0xcc))
}

/// As [`part`], signed by `key`.
fn part_signed_by(index: u8, run: u64, app: &str, key: &PrivateKeySigner) -> ServedPart {
    let agreement = B256::repeat_byte(index);
    let asset = B256::repeat_byte(index + 0x40);
    let log = RoundLog {
        agreementId: agreement,
        did: asset,
        provider: key.address(),
        run,
        rounds: (1..=3)
            .map(|round| ServedRound {
                round,
                update: B256::repeat_byte(round as u8),
                message: B256::repeat_byte(round as u8 + 0x10),
                samples: 480,
            })
            .collect(),
        closedAt: 1_700_000_000,
    };
    let domain = domain();
    let signature = key.sign_hash_sync(&log.signing_hash(&domain)).unwrap();
    let signed = SignedRoundLog {
        log,
        signature: signature.as_bytes().to_vec().into(),
    };
    ServedPart {
        member: TrainingMember {
            agreement,
            asset,
            provider: key.address(),
            result: B256::repeat_byte(index + 0x80),
            round_log: signed.hash(&domain),
            rounds: 3,
            samples: 3 * 480,
        },
        log: signed,
        algorithm_sha256: app.to_owned(),
        path: format!("round-log-{index}.json").into(),
    }
}

fn refused(parts: &[ServedPart], message: &str) {
    match federated::training(parts, &"ab".repeat(32)) {
        Err(FederatedError::Invalid(text)) => assert!(text.contains(message), "{text}"),
        other => panic!("expected a refusal with {message:?}, got {other:?}"),
    }
}

#[test]
fn the_training_lists_every_provider_under_the_activity_of_their_agreements() {
    let app = "ab".repeat(32);
    let parts: Vec<ServedPart> = (1..=3).map(|index| part(index, 7, &app)).collect();
    let training = federated::training(&parts, &app).unwrap();
    assert_eq!(training.framework, "flower");
    assert_eq!(training.run, 7);
    assert_eq!(training.algorithm_sha256, app);
    assert_eq!(training.members.len(), 3);
    assert_eq!(training.members[1], parts[1].member);
    // The activity names the set of agreements, whatever their order.
    let reversed: Vec<ServedPart> = parts.iter().rev().cloned().collect();
    assert_eq!(
        federated::training(&reversed, &app).unwrap().activity,
        training.activity
    );
    assert_eq!(
        training.activity,
        metadata::training_activity((1..=3).map(B256::repeat_byte))
    );
}

#[test]
fn a_training_that_does_not_hold_together_is_refused() {
    let app = "ab".repeat(32);
    refused(&[], "at least one provider");
    let one = part(1, 7, &app);
    refused(&[one.clone(), one.clone()], "is given twice");
    refused(
        &[one.clone(), part(2, 8, &app)],
        "one model comes from one run",
    );
    refused(&[one.clone(), part(2, 7, &"cd".repeat(32))], "ran the app");
    refused(&[part(2, 7, &"cd".repeat(32))], "not the app");
    let many: Vec<ServedPart> = (1..=17).map(|index| part(index, 7, &app)).collect();
    refused(&many, "at most 16");
}

#[test]
fn the_model_document_records_the_training_and_meets_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.npy");
    std::fs::write(&path, b"weights").unwrap();
    let app = "ab".repeat(32);
    let parts: Vec<ServedPart> = (1..=3).map(|index| part(index, 7, &app)).collect();
    let training = federated::training(&parts, &app).unwrap();
    let model = Model {
        path: path.clone(),
        location: format!("file://{}", path.display()),
        content_type: "application/octet-stream".into(),
        name: "A model".into(),
        description: "Trained across three providers.".into(),
        license: "MIT".into(),
    };
    let owner = Address::repeat_byte(0x33);
    let draft: serde_json::Value =
        serde_json::from_slice(&federated::model_document(&model, owner, &training).unwrap())
            .unwrap();
    assert_eq!(draft["author"], owner.to_string());
    assert_eq!(draft["services"], serde_json::json!([]));
    assert_eq!(draft["files"][0]["name"], "model.npy");
    assert_eq!(draft["files"][0]["contentSize"], 7);
    assert_eq!(
        draft["files"][0]["sha256"],
        insitu_client::market::sha256_of(&path).unwrap()
    );
    let listed: metadata::Training = serde_json::from_value(draft["training"].clone()).unwrap();
    assert_eq!(listed, training);

    // A training changed after it was made is refused by the document's checks.
    let mut changed = training.clone();
    changed.members.pop();
    match federated::model_document(&model, owner, &changed) {
        Err(FederatedError::Market(insitu_client::market::MarketError::Metadata(
            metadata::MetadataError::Invalid(errors),
        ))) => assert_eq!(errors[0].path, "/training/activity", "{errors:?}"),
        other => panic!("expected the activity refused, got {other:?}"),
    }
    // A model that cannot be read.
    let missing = Model {
        path: dir.path().join("missing.npy"),
        ..model
    };
    assert!(matches!(
        federated::model_document(&missing, owner, &training),
        Err(FederatedError::Io { .. })
    ));
}

#[test]
fn a_round_log_is_accepted_only_from_its_provider_about_its_agreement_and_asset() {
    let key = PrivateKeySigner::random();
    let genuine = part_signed_by(1, 7, &"ab".repeat(32), &key);
    let expected = federated::Expected {
        agreement: genuine.member.agreement,
        asset: genuine.member.asset,
        provider: key.address(),
    };
    federated::check_round_log(&genuine.log, &expected, &domain()).unwrap();

    let not_its = |expected: federated::Expected, message: &str| match federated::check_round_log(
        &genuine.log,
        &expected,
        &domain(),
    ) {
        Err(FederatedError::NotItsLog { reason, .. }) => {
            assert!(reason.contains(message), "{reason}")
        }
        other => panic!("expected {message:?}, got {other:?}"),
    };
    // Signed by its keeper, but another provider fulfilled the agreement.
    not_its(
        federated::Expected {
            provider: Address::repeat_byte(0x77),
            ..expected
        },
        "not by the agreement's provider",
    );
    // A genuine log of another agreement, or about another asset.
    not_its(
        federated::Expected {
            agreement: B256::repeat_byte(0x09),
            ..expected
        },
        "it is the log of agreement",
    );
    not_its(
        federated::Expected {
            asset: B256::repeat_byte(0x09),
            ..expected
        },
        "not the agreement's",
    );

    // Changed after signing, or signed for another chain: the signature no longer holds.
    let mut changed = genuine.log.clone();
    changed.log.rounds[0].samples += 1;
    let other_chain = insitu_bindings::requests::domain(1, Address::repeat_byte(0xcc));
    for (log, domain) in [(&changed, domain()), (&genuine.log, other_chain)] {
        assert!(matches!(
            federated::check_round_log(log, &expected, &domain),
            Err(FederatedError::RoundLog { .. })
        ));
    }
}

#[test]
fn an_order_is_checked_against_each_asset_policy_before_anything_is_bought() {
    let document = |runtimes: &[&str], sha256: &[String]| -> metadata::MetadataDocument {
        let value = serde_json::json!({
            "@context": "https://schema.org",
            "@type": "Dataset",
            "schemaVersion": metadata::SCHEMA_VERSION,
            "name": "A partition",
            "description": "Rows.",
            "author": "a provider",
            "license": "MIT",
            "files": [{"name": "data.csv", "contentType": "text/csv", "contentSize": 1,
                       "sha256": "00".repeat(32), "location": "0x00"}],
            "services": [{
                "type": "compute",
                "token": Address::ZERO.to_string(),
                "price": [{"receiver": Address::repeat_byte(1).to_string(), "amount": "1"}],
                "timeout": {"min": 3600, "max": 86400},
                "compute": {
                    "algorithms": {"any": false, "sha256": sha256},
                    "runtimes": runtimes,
                    "limits": {"wallSecs": 900, "memoryMb": 1024, "cpuPercent": 100, "pids": 256,
                               "outputMb": 4, "tmpMb": 256, "logKb": 256},
                    "logs": "consumer",
                    "resultRetentionDays": 30
                }
            }]
        });
        metadata::parse(value.to_string().as_bytes()).unwrap()
    };
    let aggregator = federated::Aggregator {
        address: "127.0.0.1:9092".into(),
        ca_pem: "-----BEGIN CERTIFICATE-----".into(),
    };
    let app = b"a FAB".to_vec();
    let app_sha256 = alloy::primitives::hex::encode(
        insitu_client::compute::Algorithm::File(app.clone()).sha256(),
    );
    let order = federated::order(app, "flower", &aggregator, 3);
    assert_eq!(order.params["rounds"], "3");
    assert_eq!(order.params["superlink"], "127.0.0.1:9092");
    let did = B256::repeat_byte(5);
    federated::check_order(
        did,
        &document(&["flower"], std::slice::from_ref(&app_sha256)),
        &order,
    )
    .unwrap();
    for (document, message) in [
        (
            document(&["python3"], std::slice::from_ref(&app_sha256)),
            "not flower",
        ),
        (
            document(&["flower"], &["cd".repeat(32)]),
            "does not allow the app",
        ),
    ] {
        match federated::check_order(did, &document, &order) {
            Err(FederatedError::Invalid(text)) => assert!(text.contains(message), "{text}"),
            other => panic!("expected {message:?}, got {other:?}"),
        }
    }
}
