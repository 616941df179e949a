//! The worked example of a keeper request in docs/keeper.md: its signing hash, and the signature
//! of anvil's fourth dev account (a well-known test key) over it.

use alloy::{
    primitives::{Address, U256, address, b256, hex},
    signers::{SignerSync, local::PrivateKeySigner},
};
use insitu_bindings::requests::{self, ServiceRequest, commands};

/// Anvil's dev account 3 (public test key).
const CONSUMER_KEY: &str = "7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6";
const CONSUMER: Address = address!("90F79bf6EB2c4f870365E785982E1f101E93b906");
const ACCESS_CONDITION: Address = address!("Dc64a140Aa3E981100a9becA4E685f962f0cF6C9");

fn example() -> ServiceRequest {
    ServiceRequest {
        command: commands::ACCESS.to_owned(),
        agreementId: b256!("073e647cb4ed73a38c441fae24e646028e73a0cf9236cee776464c1495ff74b8"),
        did: b256!("b1e0a2d6c3a54f0e8e2f3d1c9b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a"),
        consumer: CONSUMER,
        nonce: U256::from(1),
        deadline: 1_796_000_000,
    }
}

#[test]
fn the_documented_example_hashes_and_signs_as_documented() {
    let domain = requests::domain(31_337, ACCESS_CONDITION);
    let hash = requests::signing_hash(&example(), &domain);
    let key: PrivateKeySigner = CONSUMER_KEY.parse().unwrap();
    assert_eq!(key.address(), CONSUMER);
    assert_eq!(
        hash,
        b256!("0cf6e654e8342644c12b741c429de2a1e0e05ec6ad416b0021f95c3db1cd03d8")
    );
    let signature = key.sign_hash_sync(&hash).unwrap().as_bytes();
    assert_eq!(
        hex::encode(signature),
        "2300fbd2116fcce48b71074aeb8e8323b52577ade3fd400e000083538a27ee72\
         1b98e2da95d8e2d58d774d35925c304737d9fa28c4418d5842d50e32264c29831c"
    );
    assert_eq!(
        requests::recover(&example(), &domain, &signature),
        Some(CONSUMER)
    );
    // Any change to the message, the chain or the verifying contract changes the signer.
    let mut other = example();
    other.nonce = U256::from(2);
    assert_ne!(
        requests::recover(&other, &domain, &signature),
        Some(CONSUMER)
    );
    let elsewhere = requests::domain(1, ACCESS_CONDITION);
    assert_ne!(
        requests::recover(&example(), &elsewhere, &signature),
        Some(CONSUMER)
    );
}

fn compute_job() -> requests::ComputeJob {
    let params = std::collections::BTreeMap::from([
        ("column".to_owned(), "stay_days".to_owned()),
        ("bins".to_owned(), "10".to_owned()),
    ]);
    requests::ComputeJob {
        agreementId: b256!("073e647cb4ed73a38c441fae24e646028e73a0cf9236cee776464c1495ff74b8"),
        did: b256!("b1e0a2d6c3a54f0e8e2f3d1c9b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a"),
        consumer: CONSUMER,
        algorithm: b256!("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"),
        runtime: "python3".to_owned(),
        params: requests::params_hash(&params),
        nonce: U256::from(7),
        deadline: 1_796_000_000,
    }
}

#[test]
fn a_compute_order_binds_its_algorithm_runtime_and_parameters() {
    // Parameters hash as their sorted, compact JSON object.
    assert_eq!(
        compute_job().params,
        alloy::primitives::keccak256(br#"{"bins":"10","column":"stay_days"}"#)
    );
    let compute_condition = address!("5FC8d32690cc91D4c39d9d3abcBD16989F875707");
    let domain = requests::domain(31_337, compute_condition);
    let key: PrivateKeySigner = CONSUMER_KEY.parse().unwrap();
    let hash = requests::compute_signing_hash(&compute_job(), &domain);
    let signature = key.sign_hash_sync(&hash).unwrap().as_bytes();
    assert_eq!(
        requests::recover_compute(&compute_job(), &domain, &signature),
        Some(CONSUMER)
    );
    // Whatever is changed, the signer is no longer the consumer.
    let changes: [fn(&mut requests::ComputeJob); 4] = [
        |job| {
            job.algorithm =
                b256!("0000000000000000000000000000000000000000000000000000000000000001")
        },
        |job| job.runtime = "python3.12".to_owned(),
        |job| job.params = requests::params_hash(&Default::default()),
        |job| job.deadline += 1,
    ];
    for change in changes {
        let mut job = compute_job();
        change(&mut job);
        assert_ne!(
            requests::recover_compute(&job, &domain, &signature),
            Some(CONSUMER)
        );
    }
    // Not valid as an access request's signature either: another type, another hash.
    assert_ne!(hash, requests::signing_hash(&example(), &domain));
}
