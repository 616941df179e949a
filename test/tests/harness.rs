//! Tests of the in-memory EVM harness, against the `HarnessProbe` fixture contract.

use alloy::{
    primitives::{Address, Bytes, U256, address},
    signers::SignerSync,
    sol_types::{PanicKind, SolCall},
};
use insitu_bindings::fixtures::{CONTRACTS, HarnessProbe};
use insitu_tests::harness::{
    BLOCK_TIME, CHAIN_ID, Chain, DEFAULT_BALANCE, ExpectRevert, GENESIS_BLOCK, GENESIS_TIMESTAMP,
    Tx, TxError,
};
use revm::context::result::{EVMError, HaltReason, InvalidTransaction};

const ETHER: u128 = 1_000_000_000_000_000_000;

fn ether(n: u64) -> U256 {
    U256::from(n) * U256::from(ETHER)
}

/// A chain with an owner, a stranger and a freshly deployed probe (label "probe", value 7).
fn setup() -> (Chain, Address, Address, Address) {
    let mut chain = Chain::new();
    let owner = chain.account_named("owner");
    let stranger = chain.account_named("stranger");
    let probe = chain
        .deploy(
            owner,
            &HarnessProbe::BYTECODE,
            &HarnessProbe::constructorCall {
                label_: "probe".into(),
                initial: U256::from(7),
            },
        )
        .expect("deploy HarnessProbe");
    (chain, owner, stranger, probe)
}

#[test]
fn fixtures_are_listed_apart_from_production_contracts() {
    // The harness probe, and the fuzzer's planted-bug copies (`test/fixtures/planted/`).
    assert!(CONTRACTS.contains(&"HarnessProbe"));
    assert!(CONTRACTS.contains(&"PaymentReleaseTwice"));
    for fixture in CONTRACTS {
        assert!(
            !insitu_bindings::CONTRACTS.contains(fixture),
            "{fixture} is listed with the production contracts"
        );
    }
}

#[test]
fn new_chain_matches_the_target_chain() {
    let chain = Chain::new();
    assert_eq!(chain.chain_id(), CHAIN_ID);
    assert_eq!(chain.chain_id(), 31337);
    assert_eq!(chain.block_number(), GENESIS_BLOCK);
    assert_eq!(chain.timestamp(), GENESIS_TIMESTAMP);
}

#[test]
fn accounts_are_deterministic_funded_and_labelled() {
    let mut a = Chain::new();
    let mut b = Chain::new();
    let (a0, a1) = (a.account_named("alice"), a.account());
    let (b0, b1) = (b.account(), b.account());
    assert_eq!(
        (a0, a1),
        (b0, b1),
        "the n-th account is the same on every chain"
    );
    assert_ne!(a0, a1);
    assert_eq!(a.balance(a0), DEFAULT_BALANCE);
    assert_eq!(DEFAULT_BALANCE, ether(10_000));
    assert_eq!(a.nonce(a0), 0);
    assert_eq!(a.label_of(a0), Some("alice"));
    assert_eq!(a.name(a0), "alice");
    assert_eq!(a.name(a1), a1.to_checksum(None));

    // The key of an account really controls it.
    let signer = a.signer(a0).expect("key of a harness account");
    assert_eq!(signer.address(), a0);
    let signature = signer.sign_message_sync(b"insitu").expect("sign");
    assert_eq!(
        signature
            .recover_address_from_msg(b"insitu")
            .expect("recover"),
        a0
    );
}

#[test]
fn deploy_runs_the_constructor() {
    let (mut chain, owner, _, probe) = setup();
    assert!(!chain.code(probe).is_empty());
    assert_eq!(
        chain.nonce(owner),
        1,
        "deploying is a transaction of the owner"
    );
    assert_eq!(
        chain.call(probe, &HarnessProbe::ownerCall {}).unwrap(),
        owner
    );
    assert_eq!(
        chain.call(probe, &HarnessProbe::labelCall {}).unwrap(),
        "probe"
    );
    assert_eq!(
        chain.call(probe, &HarnessProbe::valueCall {}).unwrap(),
        U256::from(7)
    );
    assert_eq!(
        chain.call(probe, &HarnessProbe::createdAtCall {}).unwrap(),
        U256::from(GENESIS_TIMESTAMP)
    );
    // The create address follows the sender's nonce, as on a real chain.
    assert_eq!(probe, owner.create(0));
}

#[test]
fn deploy_raw_reports_gas_and_sends_value() {
    let mut chain = Chain::new();
    let owner = chain.account();
    let args = HarnessProbe::constructorCall {
        label_: "funded".into(),
        initial: U256::ZERO,
    };
    let initcode = [
        HarnessProbe::BYTECODE.as_ref(),
        &alloy::sol_types::SolConstructor::abi_encode(&args),
    ]
    .concat();
    let receipt = chain.deploy_raw(owner, initcode, ether(3)).unwrap();
    assert_eq!(receipt.contract_address, Some(receipt.output));
    assert!(
        receipt.gas_used > 53_000,
        "a create costs at least 53000 gas, got {}",
        receipt.gas_used
    );
    assert_eq!(chain.balance(receipt.output), ether(3));
    assert_eq!(chain.balance(owner), DEFAULT_BALANCE - ether(3));
}

#[test]
fn call_does_not_commit_and_transact_does() {
    let (mut chain, owner, _, probe) = setup();
    // A simulated state change returns the previous value but leaves no trace.
    let previous = chain.call_from(
        owner,
        probe,
        &HarnessProbe::storeCall {
            newValue: U256::from(1),
        },
    );
    assert_eq!(previous.unwrap(), U256::from(7));
    assert_eq!(
        chain.call(probe, &HarnessProbe::valueCall {}).unwrap(),
        U256::from(7)
    );
    assert_eq!(chain.nonce(owner), 1);

    let receipt = chain
        .transact(
            owner,
            probe,
            &HarnessProbe::storeCall {
                newValue: U256::from(42),
            },
        )
        .unwrap();
    assert_eq!(receipt.output, U256::from(7));
    assert_eq!(
        chain.call(probe, &HarnessProbe::valueCall {}).unwrap(),
        U256::from(42)
    );
    assert_eq!(chain.nonce(owner), 2);
}

#[test]
fn events_are_decoded_by_type() {
    let (mut chain, owner, stranger, probe) = setup();
    let receipt = chain
        .transact(
            stranger,
            probe,
            &HarnessProbe::storeCall {
                newValue: U256::from(9),
            },
        )
        .unwrap();

    let stored: HarnessProbe::Stored = receipt.expect_event();
    assert_eq!(
        stored,
        HarnessProbe::Stored {
            by: stranger,
            oldValue: U256::from(7),
            newValue: U256::from(9)
        }
    );
    assert_eq!(receipt.events::<HarnessProbe::Stored>().unwrap().len(), 1);
    assert_eq!(
        receipt
            .events_from::<HarnessProbe::Stored>(probe)
            .unwrap()
            .len(),
        1
    );
    assert!(
        receipt
            .events_from::<HarnessProbe::Stored>(owner)
            .unwrap()
            .is_empty()
    );
    assert!(receipt.has_event::<HarnessProbe::Stored>());
    assert!(!receipt.has_event::<HarnessProbe::Deposited>());
    assert!(receipt.event::<HarnessProbe::Deposited>().is_err());
    assert_eq!(receipt.logs.len(), 1);
    assert_eq!(receipt.logs[0].address, probe);
}

#[test]
fn gas_is_accounted_like_a_real_chain() {
    let (mut chain, owner, _, probe) = setup();
    let store = chain
        .transact(
            owner,
            probe,
            &HarnessProbe::storeCall {
                newValue: U256::from(8),
            },
        )
        .unwrap();
    assert!(
        store.gas_used > 21_000,
        "intrinsic gas is included, got {}",
        store.gas_used
    );
    // A non-zero to non-zero SSTORE on a cold slot costs 2900 + 2100; with calldata, the
    // event and the intrinsic 21000 it is well above 26000 and far below 100000.
    assert!(
        (26_000..100_000).contains(&store.gas_used),
        "got {}",
        store.gas_used
    );
    assert_eq!(store.gas_refunded, 0);

    // Clearing a slot earns a refund, which is subtracted from gas_used.
    let clear = chain
        .transact(owner, probe, &HarnessProbe::clearCall {})
        .unwrap();
    assert!(clear.gas_refunded > 0, "clearing storage refunds gas");
    assert!(clear.gas_used > 21_000);

    // Calldata is paid for: the same call with a longer input costs more.
    let short = chain
        .send(Tx::call(
            owner,
            probe,
            HarnessProbe::valueCall {}.abi_encode(),
        ))
        .unwrap();
    let mut long_input = HarnessProbe::valueCall {}.abi_encode();
    long_input.extend_from_slice(&[0xff; 64]);
    let long = chain.send(Tx::call(owner, probe, long_input)).unwrap();
    assert_eq!(
        long.gas_used - short.gas_used,
        64 * 16,
        "16 gas per non-zero calldata byte"
    );

    // A plain transfer costs exactly the intrinsic gas.
    let transfer = chain
        .send_eth(
            owner,
            address!("0x00000000000000000000000000000000000000aa"),
            U256::ONE,
        )
        .unwrap();
    assert_eq!(transfer.gas_used, 21_000);
}

#[test]
fn custom_errors_decode_by_type() {
    let (mut chain, owner, stranger, probe) = setup();
    assert_eq!(
        chain
            .call_from(
                owner,
                probe,
                &HarnessProbe::onlyOwnerActionCall {
                    code: U256::from(5)
                }
            )
            .unwrap(),
        U256::from(5)
    );

    let result = chain.call_from(
        stranger,
        probe,
        &HarnessProbe::onlyOwnerActionCall {
            code: U256::from(5),
        },
    );
    let err = result.as_ref().expect_err("a stranger is not the owner");
    let revert = err.revert().expect("a revert");
    assert_eq!(
        revert.selector(),
        Some(<HarnessProbe::NotOwner as alloy::sol_types::SolError>::SELECTOR)
    );
    match err.decode::<HarnessProbe::HarnessProbeErrors>() {
        Some(HarnessProbe::HarnessProbeErrors::NotOwner(e)) => {
            assert_eq!((e.caller, e.code), (stranger, U256::from(5)));
        }
        other => panic!("expected NotOwner, got {other:?}"),
    }
    assert!(err.to_string().contains("custom error"), "{err}");
    let typed: HarnessProbe::NotOwner = result.expect_revert();
    assert_eq!(
        typed,
        HarnessProbe::NotOwner {
            caller: stranger,
            code: U256::from(5)
        }
    );
}

#[test]
fn reverted_transactions_are_committed_as_failures() {
    let (mut chain, _, stranger, probe) = setup();
    let err = chain
        .transact(
            stranger,
            probe,
            &HarnessProbe::withdrawCall {
                to: stranger,
                amount: U256::ONE,
            },
        )
        .expect_failure();
    assert!(err.gas_used().unwrap() > 21_000);
    assert_eq!(
        err.decode_error::<HarnessProbe::NotOwner>().unwrap().caller,
        stranger
    );
    assert_eq!(
        chain.nonce(stranger),
        1,
        "a reverted transaction still uses the nonce"
    );
}

#[test]
fn require_strings_and_panics_decode() {
    let (mut chain, _, _, probe) = setup();
    assert_eq!(
        chain
            .call(probe, &HarnessProbe::positiveCall { x: U256::from(3) })
            .unwrap(),
        U256::from(3)
    );
    let reason = chain
        .call(probe, &HarnessProbe::positiveCall { x: U256::ZERO })
        .expect_revert_reason();
    assert_eq!(reason, "HarnessProbe: zero");
    let err = chain
        .call(probe, &HarnessProbe::positiveCall { x: U256::ZERO })
        .unwrap_err();
    assert!(err.to_string().contains("HarnessProbe: zero"), "{err}");

    assert_eq!(
        chain
            .call(
                probe,
                &HarnessProbe::divideCall {
                    a: U256::from(9),
                    b: U256::from(2)
                }
            )
            .unwrap(),
        U256::from(4)
    );
    let code = chain
        .call(
            probe,
            &HarnessProbe::divideCall {
                a: U256::ONE,
                b: U256::ZERO,
            },
        )
        .expect_panic();
    assert_eq!(code, U256::from(0x12));
    chain
        .call(
            probe,
            &HarnessProbe::divideCall {
                a: U256::ONE,
                b: U256::ZERO,
            },
        )
        .expect_panic_kind(PanicKind::DivisionByZero);
    let err = chain
        .call(
            probe,
            &HarnessProbe::divideCall {
                a: U256::ONE,
                b: U256::ZERO,
            },
        )
        .unwrap_err();
    assert_eq!(
        err.revert().unwrap().panic_kind(),
        Some(PanicKind::DivisionByZero)
    );
    assert!(err.revert().unwrap().reason().is_none());
    assert!(
        err.to_string()
            .contains("panic: division or modulo by zero (0x12)"),
        "{err}"
    );
}

#[test]
#[should_panic(expected = "expected a revert with NotOwner(address,uint256)")]
fn expect_revert_panics_on_another_error() {
    let (mut chain, _, _, probe) = setup();
    let _: HarnessProbe::NotOwner = chain
        .call(probe, &HarnessProbe::positiveCall { x: U256::ZERO })
        .expect_revert();
}

#[test]
#[should_panic(expected = "expected the call to fail, but it succeeded")]
fn expect_revert_panics_on_success() {
    let (mut chain, _, _, probe) = setup();
    let _ = chain
        .call(probe, &HarnessProbe::positiveCall { x: U256::ONE })
        .expect_revert_reason();
}

#[test]
fn value_transfers_move_balances() {
    let (mut chain, owner, stranger, probe) = setup();
    let receipt = chain
        .transact_value(stranger, probe, &HarnessProbe::depositCall {}, ether(2))
        .unwrap();
    let deposited: HarnessProbe::Deposited = receipt.expect_event();
    assert_eq!(
        (deposited.from, deposited.amount, deposited.balance),
        (stranger, ether(2), ether(2))
    );
    assert_eq!(chain.balance(probe), ether(2));
    assert_eq!(
        chain.balance(stranger),
        DEFAULT_BALANCE - ether(2),
        "gas price is zero"
    );

    let payee = chain.account();
    chain
        .transact(
            owner,
            probe,
            &HarnessProbe::withdrawCall {
                to: payee,
                amount: ether(1),
            },
        )
        .unwrap();
    assert_eq!(chain.balance(probe), ether(1));
    assert_eq!(chain.balance(payee), DEFAULT_BALANCE + ether(1));

    // Plain ETH to a contract without receive/fallback reverts; to an EOA it works.
    assert!(
        chain
            .send_eth(owner, probe, U256::ONE)
            .unwrap_err()
            .revert()
            .is_some()
    );
    chain.send_eth(owner, stranger, ether(5)).unwrap();
    assert_eq!(chain.balance(stranger), DEFAULT_BALANCE + ether(3));

    chain.set_balance(stranger, U256::from(10));
    assert_eq!(chain.balance(stranger), U256::from(10));
}

#[test]
fn spending_more_than_the_balance_is_rejected() {
    let (mut chain, _, stranger, probe) = setup();
    chain.set_balance(stranger, U256::from(10));
    let err = chain
        .transact_value(
            stranger,
            probe,
            &HarnessProbe::depositCall {},
            U256::from(11),
        )
        .expect_failure();
    assert!(
        matches!(
            err,
            TxError::Rejected(EVMError::Transaction(
                InvalidTransaction::LackOfFundForMaxFee { .. }
            ))
        ),
        "{err:?}"
    );
    assert_eq!(
        chain.nonce(stranger),
        0,
        "a rejected transaction is not included"
    );
}

#[test]
fn out_of_gas_halts_and_uses_the_whole_limit() {
    let (mut chain, owner, _, probe) = setup();
    let tx = Tx::call(
        owner,
        probe,
        HarnessProbe::spinCall {
            rounds: U256::from(1_000),
        }
        .abi_encode(),
    )
    .gas_limit(60_000);
    match chain.send(tx).unwrap_err() {
        TxError::Halt {
            reason: HaltReason::OutOfGas(_),
            gas_used,
        } => assert_eq!(gas_used, 60_000),
        other => panic!("expected out of gas, got {other:?}"),
    }
    // With the default gas limit the same call succeeds.
    chain
        .transact(
            owner,
            probe,
            &HarnessProbe::spinCall {
                rounds: U256::from(1_000),
            },
        )
        .unwrap();
}

#[test]
fn the_clock_moves_when_asked() {
    let (mut chain, owner, _, probe) = setup();
    let clock = |chain: &mut Chain| {
        let c = chain.call(probe, &HarnessProbe::clockCall {}).unwrap();
        (
            c.number.to::<u64>(),
            c.timestamp.to::<u64>(),
            c.chainId.to::<u64>(),
        )
    };
    assert_eq!(
        clock(&mut chain),
        (GENESIS_BLOCK, GENESIS_TIMESTAMP, CHAIN_ID)
    );

    // Transactions do not move the clock by themselves.
    chain
        .transact(
            owner,
            probe,
            &HarnessProbe::storeCall {
                newValue: U256::ONE,
            },
        )
        .unwrap();
    assert_eq!(
        clock(&mut chain),
        (GENESIS_BLOCK, GENESIS_TIMESTAMP, CHAIN_ID)
    );

    chain.warp(3_600);
    assert_eq!(
        clock(&mut chain),
        (GENESIS_BLOCK, GENESIS_TIMESTAMP + 3_600, CHAIN_ID)
    );

    chain.mine(10);
    assert_eq!(chain.block_number(), GENESIS_BLOCK + 10);
    assert_eq!(
        chain.timestamp(),
        GENESIS_TIMESTAMP + 3_600 + 10 * BLOCK_TIME
    );
    assert_eq!(
        clock(&mut chain),
        (chain.block_number(), chain.timestamp(), CHAIN_ID)
    );

    chain.set_timestamp(2_000_000_000);
    chain.set_block_number(500);
    assert_eq!(clock(&mut chain), (500, 2_000_000_000, CHAIN_ID));

    let receipt = chain
        .transact(
            owner,
            probe,
            &HarnessProbe::storeCall {
                newValue: U256::from(2),
            },
        )
        .unwrap();
    assert_eq!(
        (receipt.block_number, receipt.timestamp),
        (500, 2_000_000_000)
    );
}

#[test]
fn snapshots_restore_state_and_clock() {
    let (mut chain, owner, _, probe) = setup();
    let snapshot = chain.snapshot();
    chain
        .transact(
            owner,
            probe,
            &HarnessProbe::storeCall {
                newValue: U256::from(100),
            },
        )
        .unwrap();
    chain.mine(5);
    chain.restore(&snapshot);
    assert_eq!(
        chain.call(probe, &HarnessProbe::valueCall {}).unwrap(),
        U256::from(7)
    );
    assert_eq!(chain.block_number(), GENESIS_BLOCK);
    assert_eq!(chain.nonce(owner), 1);
}

#[test]
fn storage_and_code_are_readable() {
    let (chain, _, _, probe) = setup();
    // Storage layout of HarnessProbe: slot 0 `label`, slot 1 `value` (owner is immutable).
    assert_eq!(chain.storage(probe, U256::from(1)), U256::from(7));
    assert!(chain.code(Address::repeat_byte(0x42)).is_empty());
    assert_eq!(chain.balance(Address::repeat_byte(0x42)), U256::ZERO);
}

#[test]
fn calling_an_address_without_code_fails_to_decode() {
    let mut chain = Chain::new();
    let nobody = Address::repeat_byte(0x11);
    let err = chain.call(nobody, &HarnessProbe::valueCall {}).unwrap_err();
    match err {
        TxError::Decode {
            function, ref data, ..
        } => {
            assert_eq!(function, "value()");
            assert_eq!(*data, Bytes::new());
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
}
