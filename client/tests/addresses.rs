//! Reading and writing deployment address files.

use alloy::primitives::{Address, address};
use insitu_client::addresses::{AddressesError, Deployment};

const STORE: Address = address!("0x5FbDB2315678afecb367f032d93F642f64180aa3");
const REGISTRY: Address = address!("0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512");

#[test]
fn round_trips_through_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deployments").join("devnet.json");
    let mut deployment = Deployment::new(31337, 12);
    deployment
        .insert("AgreementStore", STORE)
        .insert("AssetRegistry", REGISTRY);

    deployment.write(&path).unwrap();
    let back = Deployment::read(&path).unwrap();
    assert_eq!(back, deployment);
    assert_eq!(back.address("AssetRegistry").unwrap(), REGISTRY);

    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"chainId\": 31337"), "{text}");
    assert!(text.ends_with('\n'));
    assert!(
        !dir.path()
            .join("deployments")
            .join("devnet.json.tmp")
            .exists()
    );
}

#[test]
fn reads_the_documented_format() {
    let text = r#"{ "chainId": 31337, "block": 3,
        "contracts": { "AgreementStore": "0x5fbdb2315678afecb367f032d93f642f64180aa3" } }"#;
    let deployment = Deployment::from_json(text, "inline.json".as_ref()).unwrap();
    assert_eq!(deployment.chain_id, 31337);
    assert_eq!(deployment.block, 3);
    assert_eq!(deployment.address("AgreementStore").unwrap(), STORE);
}

#[test]
fn rejects_malformed_files_with_the_path_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.json");

    std::fs::write(
        &path,
        "{ \"chainId\": 31337, \"block\": 1, \"contracts\": { \"A\": \"0x12\" } }",
    )
    .unwrap();
    let err = Deployment::read(&path).unwrap_err();
    assert!(matches!(err, AddressesError::Malformed { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.starts_with("malformed addresses file"), "{message}");
    assert!(message.contains("bad.json"), "{message}");
    assert!(message.contains("line 1"), "{message}");

    std::fs::write(
        &path,
        "{ \"chainId\": 1, \"block\": 1, \"contracts\": {}, \"extra\": 1 }",
    )
    .unwrap();
    let message = Deployment::read(&path).unwrap_err().to_string();
    assert!(message.contains("unknown field `extra`"), "{message}");

    std::fs::write(&path, "{ \"block\": 1, \"contracts\": {} }").unwrap();
    let message = Deployment::read(&path).unwrap_err().to_string();
    assert!(message.contains("missing field `chainId`"), "{message}");
}

#[test]
fn rejects_unusable_content() {
    let text = r#"{ "chainId": 0, "block": 1,
        "contracts": { "Zero": "0x0000000000000000000000000000000000000000" } }"#;
    match Deployment::from_json(text, "zero.json".as_ref()).unwrap_err() {
        AddressesError::Invalid { reason, .. } => {
            assert!(reason.contains("chainId must not be 0"), "{reason}");
            assert!(reason.contains("`Zero` has the zero address"), "{reason}");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    let dir = tempfile::tempdir().unwrap();
    let mut bad = Deployment::new(0, 0);
    bad.insert("X", STORE);
    assert!(matches!(
        bad.write(dir.path().join("x.json")),
        Err(AddressesError::Invalid { .. })
    ));
}

#[test]
fn missing_files_and_contracts_are_reported() {
    let err = Deployment::read("/nonexistent/insitu/addresses.json").unwrap_err();
    assert!(matches!(err, AddressesError::Read { .. }), "{err:?}");

    let mut deployment = Deployment::new(31337, 0);
    deployment.insert("AgreementStore", STORE);
    let err = deployment.address("Nope").unwrap_err();
    assert_eq!(
        err.to_string(),
        "contract `Nope` is not in the deployment (it has: AgreementStore)"
    );
}

#[test]
fn a_deployment_file_holds_the_suite_with_its_timelock() {
    use insitu_bindings::deployment::{DeployOptions, Governance, SuiteAddresses, plan};

    let deployer = address!("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
    let dir = tempfile::tempdir().unwrap();
    for (governance, contracts) in [
        (
            Governance::Timelock {
                proposer: deployer,
                delay: 172_800,
            },
            11,
        ),
        (Governance::Account(deployer), 10),
    ] {
        let suite = plan(
            deployer,
            0,
            DeployOptions {
                governance,
                admin_transfer_delay: 0,
                network_fee: None,
            },
        )
        .addresses;
        let mut deployment = Deployment::new(31337, 14);
        for (name, address) in suite.by_name() {
            deployment.insert(name, address);
        }
        let path = dir.path().join("suite.json");
        deployment.write(&path).unwrap();
        let back = Deployment::read(&path).unwrap();
        assert_eq!(back.contracts.len(), contracts);
        assert_eq!(
            back.address("GovernanceTimelock").ok(),
            suite.governance_timelock
        );
        assert_eq!(SuiteAddresses::from_names(&back.contracts), Ok(suite));
        assert_eq!(back.address("PaymentCondition").unwrap(), suite.payment);
        for gone in ["LockPaymentCondition", "EscrowPaymentCondition"] {
            assert!(back.address(gone).is_err(), "{gone}");
        }
    }
}
