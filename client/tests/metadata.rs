//! Metadata documents: the documented example, every field error, the checksum, and locations
//! sealed to a keeper's key.

use alloy::{
    primitives::{U256, keccak256},
    signers::local::PrivateKeySigner,
};
use insitu_client::metadata::{
    self, Location, LogVisibility, MetadataError, SealError, ServiceKind, open_location,
    public_key, seal_location,
};
use serde_json::{Value, json};

const EXAMPLE: &str = include_str!("../../docs/examples/metadata.json");

fn example() -> Value {
    serde_json::from_str(EXAMPLE).unwrap()
}

fn field_errors(document: &Value) -> Vec<(String, String)> {
    match metadata::parse(document.to_string().as_bytes()) {
        Err(MetadataError::Invalid(errors)) => errors
            .into_iter()
            .map(|error| (error.path, error.message))
            .collect(),
        other => panic!("expected field errors, got {other:?}"),
    }
}

fn paths(document: &Value) -> Vec<String> {
    field_errors(document)
        .into_iter()
        .map(|(path, _)| path)
        .collect()
}

#[test]
fn the_documented_example_is_valid() {
    let document = metadata::parse(EXAMPLE.as_bytes()).unwrap();
    assert_eq!(document.name, "Hourly air quality, Lyon, 2025");
    assert_eq!(document.files.len(), 1);
    let access = document.service(ServiceKind::Access).unwrap();
    assert_eq!(access.total(), U256::from(250_000_000_000_000_000_000_u128));
    assert_eq!(access.timeout.max, 259_200);
    assert!(document.service(ServiceKind::Compute).is_none());
    assert_eq!(
        metadata::checksum(EXAMPLE.as_bytes()),
        keccak256(EXAMPLE.as_bytes())
    );
}

#[test]
fn every_schema_violation_is_reported_with_its_field() {
    let mut document = example();
    document.as_object_mut().unwrap().remove("name");
    document["@type"] = json!("Book");
    document["surprise"] = json!(1);
    document["keywords"] = json!(["a", "a"]);
    document["dateCreated"] = json!("15/01/2026");
    document["files"][0]["sha256"] = json!("XYZ");
    document["files"][0]["name"] = json!("../etc/passwd");
    document["files"][0]["contentSize"] = json!(-1);
    document["services"][0]["type"] = json!("stream");
    document["services"][0]["token"] = json!("0x1234");
    document["services"][0]["price"][0]["amount"] = json!("2.5");
    document["services"][0]["timeout"]["min"] = json!(1);
    let errors = field_errors(&document);
    let paths: Vec<_> = errors.iter().map(|(path, _)| path.as_str()).collect();
    for expected in [
        "",
        "/@type",
        "/dateCreated",
        "/files/0/contentSize",
        "/files/0/name",
        "/files/0/sha256",
        "/keywords",
        "/services/0/price/0/amount",
        "/services/0/timeout/min",
        "/services/0/token",
        "/services/0/type",
    ] {
        assert!(
            paths.contains(&expected),
            "{expected} missing from {errors:#?}"
        );
    }
    // The document itself: the missing field and the unknown one are named.
    let root: Vec<_> = errors
        .iter()
        .filter(|(path, _)| path.is_empty())
        .map(|(_, message)| message.as_str())
        .collect();
    assert!(
        root.iter().any(|message| message.contains("\"name\"")),
        "{root:?}"
    );
    assert!(
        root.iter().any(|message| message.contains("surprise")),
        "{root:?}"
    );
    // The error's text lists them all, one per line.
    let text = metadata::parse(document.to_string().as_bytes())
        .unwrap_err()
        .to_string();
    assert!(
        text.starts_with("the metadata document is invalid:\n"),
        "{text}"
    );
    assert!(text.contains("  /files/0/sha256: "), "{text}");
}

#[test]
fn rules_beyond_the_schema_are_checked_too() {
    let mut document = example();
    let file = document["files"][0].clone();
    document["files"].as_array_mut().unwrap().push(file);
    let service = document["services"][0].clone();
    document["services"].as_array_mut().unwrap().push(service);
    document["services"][0]["timeout"] = json!({"min": 7200, "max": 3600});
    document["services"][0]["price"][0]["amount"] = json!("0");
    document["services"][0]["price"][0]["receiver"] =
        json!("0x0000000000000000000000000000000000000000");
    document["services"][1]["price"][0]["amount"] = json!("9".repeat(78));
    assert_eq!(
        paths(&document),
        [
            "/files/1/name",
            "/services/0/timeout",
            "/services/0/price/0/receiver",
            "/services/0/price/0/amount",
            "/services/1/type",
            "/services/1/price/0/amount",
        ]
    );
}

#[test]
fn a_document_that_is_not_json_is_refused() {
    assert!(matches!(
        metadata::parse(b"{\"name\": "),
        Err(MetadataError::NotJson(_))
    ));
    assert!(matches!(
        metadata::parse(b"[]"),
        Err(MetadataError::Invalid(_))
    ));
}

#[test]
fn a_sealed_location_opens_with_the_keeper_key_only() {
    let keeper = PrivateKeySigner::random();
    let other = PrivateKeySigner::random();
    let location = &Location::url("s3://bucket/air-quality-2025.csv");
    let sealed = seal_location(location, &public_key(&keeper)).unwrap();
    assert!(
        sealed.starts_with("0x04"),
        "an uncompressed ephemeral key first"
    );
    assert!(!sealed.contains(&alloy::primitives::hex::encode(&location.url)));
    assert_ne!(
        sealed,
        seal_location(location, &public_key(&keeper)).unwrap(),
        "fresh randomness each time"
    );
    assert_eq!(&open_location(&sealed, &keeper).unwrap(), location);
    assert!(matches!(
        open_location(&sealed, &other),
        Err(SealError::WrongKey)
    ));
    let mut tampered = sealed.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == '0' { '1' } else { '0' });
    assert!(matches!(
        open_location(&tampered, &keeper),
        Err(SealError::WrongKey)
    ));
    assert!(matches!(
        open_location("not hex", &keeper),
        Err(SealError::NotHex)
    ));
    assert!(matches!(
        seal_location(location, &[4, 1, 2]),
        Err(SealError::InvalidPublicKey)
    ));
    assert_eq!(public_key(&keeper).len(), 65);
}

#[test]
fn headers_are_sealed_with_their_location_and_never_shown() {
    let keeper = PrivateKeySigner::random();
    let mut location = Location::url("https://files.example/air.csv?sig=s3cr3t-in-query");
    location
        .headers
        .insert("Authorization".to_owned(), "Bearer s3cr3t-token".to_owned());
    let sealed = seal_location(&location, &public_key(&keeper)).unwrap();
    assert!(!sealed.contains(&alloy::primitives::hex::encode("s3cr3t")));
    assert_eq!(open_location(&sealed, &keeper).unwrap(), location);
    let shown = format!("{location:?}");
    assert!(
        shown.contains("Authorization") && !shown.contains("s3cr3t"),
        "{shown}"
    );

    let refused = |url: &str, name: &str, value: &str| {
        let mut location = Location::url(url);
        location.headers.insert(name.to_owned(), value.to_owned());
        match seal_location(&location, &public_key(&keeper)) {
            Err(SealError::Header(why)) => why,
            other => panic!("{url} {name}: {other:?}"),
        }
    };
    assert_eq!(
        refused("s3://bucket/key", "Authorization", "x"),
        "headers go with http:// and https:// locations only"
    );
    assert_eq!(
        refused("https://a.example/f", "Range", "bytes=0-"),
        "Range is set by the keeper"
    );
    assert_eq!(
        refused("https://a.example/f", "Bad Name", "x"),
        "\"Bad Name\" is not a header name"
    );
    assert_eq!(
        refused("https://a.example/f", "X-Token", "line\nbreak"),
        "the value of X-Token is not printable ASCII"
    );
}

const COMPUTE_EXAMPLE: &str = include_str!("../../docs/examples/metadata-compute.json");

fn compute_example() -> Value {
    serde_json::from_str(COMPUTE_EXAMPLE).unwrap()
}

#[test]
fn a_compute_service_carries_its_policy() {
    let document = metadata::parse(COMPUTE_EXAMPLE.as_bytes()).unwrap();
    assert!(document.service(ServiceKind::Access).is_none());
    let policy = document
        .service(ServiceKind::Compute)
        .unwrap()
        .compute
        .as_ref()
        .unwrap();
    assert!(policy.algorithms.allows(&"ab".repeat(32), None));
    assert_eq!(policy.runtimes, ["python3"]);
    assert_eq!(policy.limits.output_mb, 16);
    assert_eq!(policy.logs, LogVisibility::Consumer);

    let publisher = alloy::primitives::Address::repeat_byte(7);
    let listed = metadata::AlgorithmPolicy {
        any: false,
        sha256: vec!["ab".repeat(32)],
        publishers: vec![publisher],
    };
    assert!(listed.allows(&"ab".repeat(32), None));
    assert!(!listed.allows(&"cd".repeat(32), None));
    // An algorithm asset of a listed publisher, whatever its checksum; of another, not.
    assert!(listed.allows(&"cd".repeat(32), Some(publisher)));
    assert!(!listed.allows(&"cd".repeat(32), Some(alloy::primitives::Address::ZERO)));
}

#[test]
fn compute_policies_are_checked_field_by_field() {
    // The schema: unknown runtimes' spelling, limits out of range, a bad visibility.
    let mut document = compute_example();
    let compute = &mut document["services"][0]["compute"];
    compute["runtimes"] = json!(["Python 3"]);
    compute["limits"]["memoryMb"] = json!(0);
    compute["limits"]["network"] = json!(true);
    compute["logs"] = json!("everyone");
    compute["algorithms"]["sha256"] = json!(["nothex"]);
    let found = paths(&document);
    for expected in [
        "/services/0/compute/runtimes/0",
        "/services/0/compute/limits/memoryMb",
        "/services/0/compute/limits",
        "/services/0/compute/logs",
        "/services/0/compute/algorithms/sha256/0",
    ] {
        assert!(
            found.iter().any(|path| path == expected),
            "{expected} missing from {found:?}"
        );
    }

    // Beyond the schema.
    let mut document = compute_example();
    document["services"][0]["compute"]["algorithms"] = json!({"any": false});
    document["services"][0]["compute"]["limits"]["memoryMb"] = json!(64);
    document["services"][0]["accessWindow"] = json!(60);
    let errors = field_errors(&document);
    assert_eq!(
        errors
            .iter()
            .map(|(path, _)| path.as_str())
            .collect::<Vec<_>>(),
        [
            "/services/0/accessWindow",
            "/services/0/compute/algorithms",
            "/services/0/compute/limits/memoryMb",
        ]
    );
    assert!(errors[2].1.contains("at least 96"), "{errors:?}");

    // A compute service without its policy, an access service with one.
    let mut document = compute_example();
    let policy = document["services"][0]["compute"].clone();
    document["services"][0]
        .as_object_mut()
        .unwrap()
        .remove("compute");
    let mut access = example()["services"][0].clone();
    access["compute"] = policy;
    document["services"].as_array_mut().unwrap().push(access);
    assert_eq!(paths(&document), ["/services/0", "/services/1/compute"]);
}

/// A compute result's provenance.
fn provenance() -> Value {
    json!({
        "wasGeneratedBy": format!("0x{}", "11".repeat(32)),
        "wasDerivedFrom": [format!("0x{}", "22".repeat(32))],
        "algorithmSha256": "33".repeat(32),
        "runtime": "python3",
        "limits": compute_example()["services"][0]["compute"]["limits"],
        "agent": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    })
}

#[test]
fn only_a_result_with_its_provenance_may_sell_nothing() {
    let mut document = compute_example();
    document["services"] = json!([]);
    assert!(!field_errors(&document).is_empty());
    document["provenance"] = provenance();
    let result = metadata::parse(document.to_string().as_bytes()).unwrap();
    let provenance = result.provenance.unwrap();
    assert_eq!(provenance.runtime, "python3");
    assert_eq!(provenance.was_derived_from.len(), 1);
}

/// A federated model's training over `agreements`, each with its own member.
fn training(agreements: &[u8]) -> Value {
    let ids: Vec<alloy::primitives::B256> = agreements
        .iter()
        .map(|byte| alloy::primitives::B256::repeat_byte(*byte))
        .collect();
    json!({
        "framework": "flower",
        "activity": metadata::training_activity(ids.iter().copied()).to_string(),
        "run": "42",
        "algorithmSha256": "44".repeat(32),
        "members": ids.iter().enumerate().map(|(index, id)| json!({
            "agreement": id.to_string(),
            "asset": format!("0x{}", format!("{:02x}", index + 0x50).repeat(32)),
            "provider": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            "result": format!("0x{}", format!("{:02x}", index + 0x60).repeat(32)),
            "roundLog": format!("0x{}", format!("{:02x}", index + 0x70).repeat(32)),
            "rounds": 3,
            "samples": 1440,
        })).collect::<Vec<_>>(),
    })
}

#[test]
fn a_federated_model_records_its_training_and_may_sell_nothing() {
    let mut document = compute_example();
    document["services"] = json!([]);
    document["training"] = training(&[1, 2, 3]);
    let model = metadata::parse(document.to_string().as_bytes()).unwrap();
    let training = model.training.unwrap();
    assert_eq!(training.members.len(), 3);
    assert_eq!(training.run, 42);
    assert_eq!(
        training.members[2].round_log,
        alloy::primitives::B256::repeat_byte(0x72)
    );
}

#[test]
fn the_activity_names_the_set_of_agreements_in_any_order() {
    use alloy::primitives::B256;
    let (one, two) = (B256::repeat_byte(1), B256::repeat_byte(2));
    assert_eq!(
        metadata::training_activity([one, two]),
        metadata::training_activity([two, one])
    );
    assert_eq!(
        metadata::training_activity([one, two]),
        keccak256([one.as_slice(), two.as_slice()].concat())
    );
    assert_ne!(
        metadata::training_activity([one]),
        metadata::training_activity([one, two])
    );
}

#[test]
fn a_training_that_does_not_hold_together_is_refused_field_by_field() {
    let mut document = compute_example();
    document["services"] = json!([]);

    // An activity that is not the members' agreements'.
    let mut wrong = training(&[1, 2]);
    wrong["activity"] = json!(format!("0x{}", "99".repeat(32)));
    document["training"] = wrong;
    assert_eq!(paths(&document), ["/training/activity"]);

    // An agreement listed twice.
    let mut twice = training(&[1, 2]);
    twice["members"][1]["agreement"] = twice["members"][0]["agreement"].clone();
    document["training"] = twice;
    assert!(
        paths(&document).contains(&"/training/members/1/agreement".to_owned()),
        "{:?}",
        paths(&document)
    );

    // Schema violations: another framework, a run that is not a 64-bit decimal, no member, no
    // round served or more than a u32 counts, a bad hash, 17 members.
    let mut bad = training(&[1]);
    bad["framework"] = json!("home-made");
    bad["run"] = json!(42);
    bad["members"][0]["rounds"] = json!(0);
    bad["members"][0]["roundLog"] = json!("0x12");
    document["training"] = bad;
    let found = paths(&document);
    for path in [
        "/training/framework",
        "/training/members/0/rounds",
        "/training/members/0/roundLog",
    ] {
        assert!(found.contains(&path.to_owned()), "{path} in {found:?}");
    }
    let mut too_many_rounds = training(&[1]);
    too_many_rounds["members"][0]["rounds"] = json!(1_u64 << 32);
    too_many_rounds["run"] = json!("123456789012345678901");
    document["training"] = too_many_rounds;
    assert_eq!(
        paths(&document),
        ["/training/members/0/rounds", "/training/run"]
    );
    let mut empty = training(&[1]);
    empty["members"] = json!([]);
    document["training"] = empty;
    assert!(paths(&document).contains(&"/training/members".to_owned()));
    document["training"] = training(&(1..=17).collect::<Vec<u8>>());
    assert!(paths(&document).contains(&"/training/members".to_owned()));

    // One job's provenance and a training at once.
    document["training"] = training(&[1]);
    document["provenance"] = provenance();
    assert_eq!(paths(&document), ["/training"]);
}
