//! The signed round log: built from a SuperNode's record (bad records refused, line named),
//! signed by the provider, and refused when forged: changed after signing, signed by another
//! account, signed in another domain, or with a malformed signature or one in another form.

use alloy::{
    primitives::{Address, B256, Bytes, address, b256},
    signers::{SignerSync, local::PrivateKeySigner},
};
use insitu_bindings::{
    requests,
    rounds::{RoundLog, RoundLogError, SignedRoundLog},
};

const AGREEMENT: B256 = b256!("0x1111111111111111111111111111111111111111111111111111111111111111");
const DID: B256 = b256!("0x2222222222222222222222222222222222222222222222222222222222222222");
const COMPUTE_CONDITION: Address = address!("0x5FbDB2315678afecb367f032d93F642f64180aa3");

fn id(byte: char) -> String {
    byte.to_string().repeat(64)
}

/// A SuperNode's record of two rounds, each a training reply then an evaluation.
fn record() -> String {
    [
        format!(r#"{{"run": 7, "round": 1, "kind": "train", "message": "{}", "update": "{}", "samples": 480}}"#, id('a'), id('b')),
        format!(r#"{{"run": 7, "round": 1, "kind": "evaluate", "message": "{}", "update": null, "samples": 120}}"#, id('c')),
        format!(r#"{{"run": 7, "round": 2, "kind": "train", "message": "{}", "update": "{}", "samples": 480}}"#, id('d'), id('e')),
        format!(r#"{{"run": 7, "round": 2, "kind": "evaluate", "message": "{}", "update": null, "samples": 120}}"#, id('f')),
    ]
    .join("\n")
}

/// anvil's first well-known development key.
fn provider() -> PrivateKeySigner {
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
        .parse()
        .unwrap()
}

fn signed(log: RoundLog, signer: &PrivateKeySigner) -> SignedRoundLog {
    let domain = requests::domain(31337, COMPUTE_CONDITION);
    let signature = signer.sign_hash_sync(&log.signing_hash(&domain)).unwrap();
    SignedRoundLog {
        log,
        signature: Bytes::from(signature.as_bytes().to_vec()),
    }
}

fn log() -> RoundLog {
    RoundLog::from_records(
        &record(),
        AGREEMENT,
        DID,
        provider().address(),
        1_700_000_000,
    )
    .unwrap()
}

#[test]
fn the_training_rounds_of_a_record_make_the_log() {
    let log = log();
    assert_eq!(log.run, 7);
    assert_eq!(log.rounds.len(), 2);
    assert_eq!(log.rounds[0].round, 1);
    assert_eq!(log.rounds[0].update, id('b').parse::<B256>().unwrap());
    assert_eq!(log.rounds[0].message, id('a').parse::<B256>().unwrap());
    assert_eq!(log.rounds[1].samples, 480);
    assert_eq!(log.provider, provider().address());
}

#[test]
fn a_log_signed_by_its_provider_verifies_and_survives_json() {
    let domain = requests::domain(31337, COMPUTE_CONDITION);
    let signed = signed(log(), &provider());
    assert_eq!(signed.verify(&domain), Ok(provider().address()));
    let json = serde_json::to_string(&signed).unwrap();
    let back: SignedRoundLog = serde_json::from_str(&json).unwrap();
    assert_eq!(back, signed);
    assert_eq!(back.verify(&domain), Ok(provider().address()));
    assert_eq!(back.hash(&domain), signed.hash(&domain));
}

#[test]
fn forged_logs_are_refused() {
    let domain = requests::domain(31337, COMPUTE_CONDITION);
    let genuine = signed(log(), &provider());

    // A round added, a count raised, an update swapped, the agreement changed: each after
    // signing.
    let mut more_rounds = genuine.clone();
    let mut extra = more_rounds.log.rounds[1].clone();
    extra.round = 3;
    more_rounds.log.rounds.push(extra);
    let mut more_samples = genuine.clone();
    more_samples.log.rounds[0].samples = 10_000;
    let mut other_update = genuine.clone();
    other_update.log.rounds[1].update = B256::repeat_byte(0x99);
    let mut other_agreement = genuine.clone();
    other_agreement.log.agreementId = B256::repeat_byte(0x33);
    for forged in [more_rounds, more_samples, other_update, other_agreement] {
        assert!(
            matches!(
                forged.verify(&domain),
                Err(RoundLogError::WrongSigner { .. })
            ),
            "{forged:?}"
        );
        assert_ne!(forged.hash(&domain), genuine.hash(&domain));
    }

    // Signed by somebody else in the provider's name.
    let stranger = PrivateKeySigner::random();
    let by_stranger = signed(log(), &stranger);
    assert_eq!(
        by_stranger.verify(&domain),
        Err(RoundLogError::WrongSigner {
            signer: stranger.address(),
            provider: provider().address()
        })
    );

    // Signed for another chain or another compute condition.
    for other in [
        requests::domain(1, COMPUTE_CONDITION),
        requests::domain(31337, Address::repeat_byte(0x44)),
    ] {
        assert!(matches!(
            genuine.verify(&other),
            Err(RoundLogError::WrongSigner { .. })
        ));
    }

    // Not a signature at all.
    for bytes in [vec![], vec![0_u8; 64], vec![0xff_u8; 65]] {
        let mut malformed = genuine.clone();
        malformed.signature = Bytes::from(bytes);
        assert!(malformed.verify(&domain).is_err());
    }

    // The same signature in another form (`v` as 0 or 1, or the high `s` twin): it would
    // recover the provider, but it would name the log by another hash.
    let canonical = alloy::primitives::Signature::try_from(genuine.signature.as_ref()).unwrap();
    let mut parity_form = genuine.signature.to_vec();
    parity_form[64] -= 27;
    // The order of secp256k1's group.
    let order: alloy::primitives::U256 =
        "0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141"
            .parse()
            .unwrap();
    let high_s =
        alloy::primitives::Signature::new(canonical.r(), order - canonical.s(), !canonical.v());
    for other_form in [parity_form, high_s.as_bytes().to_vec()] {
        let mut twin = genuine.clone();
        twin.signature = Bytes::from(other_form);
        assert_eq!(twin.verify(&domain), Err(RoundLogError::Malformed));
    }
}

#[test]
fn records_that_do_not_hold_together_are_refused_naming_the_line() {
    let provider = provider().address();
    let build = |record: &str| RoundLog::from_records(record, AGREEMENT, DID, provider, 0);
    let train = |run: u64, round: u32| {
        format!(
            r#"{{"run": {run}, "round": {round}, "kind": "train", "message": "{}", "update": "{}", "samples": 480}}"#,
            id('a'),
            id('b')
        )
    };
    let refused = |record: String, line: usize, reason: &str| match build(&record) {
        Err(RoundLogError::Record {
            line: at,
            reason: why,
        }) => {
            assert_eq!(at, line, "{record}: {why}");
            assert!(why.contains(reason), "{record}: {why}");
        }
        other => panic!("{record}: {other:?}"),
    };
    refused(
        format!("{}\n{}", train(7, 1), train(7, 3)),
        2,
        "round 3 where 2 was due",
    );
    refused(format!("{}\n{}", train(7, 1), train(8, 2)), 2, "run 8");
    refused(train(7, 2), 1, "round 2 where 1 was due");
    refused("not json".into(), 1, "expected");
    refused(
        r#"{"run": 7, "round": 1, "kind": "train", "message": "ab", "update": null, "samples": 1}"#
            .into(),
        1,
        "update",
    );
    refused(
        format!(
            r#"{{"run": 7, "round": 1, "kind": "train", "message": "{}", "update": "{}", "samples": 1}}"#,
            id('a'),
            id('z')
        ),
        1,
        "not a SHA-256",
    );
    refused(
        format!(
            r#"{{"run": 7, "round": 1, "kind": "train", "message": "{}", "update": "{}"}}"#,
            id('a'),
            id('b')
        ),
        1,
        "no sample count",
    );
    refused(
        format!(
            r#"{{"message": "{}", "error": "object never came"}}"#,
            id('a')
        ),
        1,
        "could not record",
    );
    refused(
        r#"{"run": 7, "round": 1, "kind": "train", "extra": 1}"#.into(),
        1,
        "unknown field",
    );
    assert_eq!(build(""), Err(RoundLogError::Empty));
    // Evaluations alone are no round served.
    assert_eq!(
        build(&format!(
            r#"{{"run": 7, "round": 0, "kind": "evaluate", "message": "{}", "update": null, "samples": 5}}"#,
            id('c')
        )),
        Err(RoundLogError::Empty)
    );
}
