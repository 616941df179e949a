//! The revert decoder names any insitu error with its arguments.

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::sol_types::{Panic, Revert as RevertString, SolError};
use insitu_bindings::errors::{Revert, decode_revert};
use insitu_bindings::{AgreementStore, AssetRegistry, PaymentCondition, ServiceTemplate};

#[test]
fn custom_errors_of_every_contract_are_named_with_their_arguments() {
    let data = PaymentCondition::TotalAboveMaximum {
        total: U256::from(1_100u64),
        maxTotal: U256::from(1_010u64),
    }
    .abi_encode();
    let decoded = decode_revert(&data);
    assert_eq!(decoded.name(), Some("TotalAboveMaximum"));
    assert_eq!(
        decoded.to_string(),
        "TotalAboveMaximum { total: 1100, maxTotal: 1010 }"
    );

    let did = B256::repeat_byte(7);
    let decoded = decode_revert(&AssetRegistry::AssetNotFound { did }.abi_encode());
    assert_eq!(decoded.name(), Some("AssetNotFound"));
    assert!(decoded.to_string().contains(&did.to_string()), "{decoded}");

    let decoded = decode_revert(
        &ServiceTemplate::OfferRevoked {
            epoch: 0,
            current: 1,
        }
        .abi_encode(),
    );
    assert_eq!(decoded.to_string(), "OfferRevoked { epoch: 0, current: 1 }");

    // An error without arguments.
    let decoded = decode_revert(&AgreementStore::NoConditions {}.abi_encode());
    assert_eq!(decoded.name(), Some("NoConditions"));

    // An OpenZeppelin error the store inherits.
    let account = Address::repeat_byte(1);
    let decoded = decode_revert(
        &AgreementStore::AccessControlUnauthorizedAccount {
            account,
            neededRole: B256::ZERO,
        }
        .abi_encode(),
    );
    assert_eq!(decoded.name(), Some("AccessControlUnauthorizedAccount"));
}

#[test]
fn messages_panics_nothing_and_unknown_data_are_told_apart() {
    let data = RevertString {
        reason: "not owner".into(),
    }
    .abi_encode();
    assert_eq!(
        decode_revert(&data),
        Revert::Message("not owner".to_owned())
    );
    let data = Panic {
        code: U256::from(0x11u64),
    }
    .abi_encode();
    assert_eq!(decode_revert(&data), Revert::Panic(U256::from(0x11u64)));
    assert_eq!(decode_revert(&data).to_string(), "Panic(0x11)");
    assert_eq!(decode_revert(&[]), Revert::Empty);
    let unknown = [0xde, 0xad, 0xbe, 0xef, 1, 2];
    assert_eq!(
        decode_revert(&unknown),
        Revert::Unknown(Bytes::copy_from_slice(&unknown))
    );
    assert_eq!(decode_revert(&unknown).name(), None);
}
