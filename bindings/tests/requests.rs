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
