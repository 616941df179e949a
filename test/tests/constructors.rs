//! Every contract refuses to be deployed with a zero address where it needs a contract, so a
//! mis-wired deployment fails at once instead of misbehaving later.

use alloy::primitives::Address;
use insitu_bindings::{
    AccessCondition, AccessTemplate, AgreementStore, ComputeExecutionCondition, ComputeTemplate,
    EscrowPaymentCondition, HashLockCondition, LockPaymentCondition, SignCondition,
    ThresholdCondition,
};
use insitu_tests::harness::ExpectRevert;
use insitu_tests::world::World;

#[test]
fn constructors_refuse_zero_addresses() {
    let mut world = World::new();
    let from = world.outsider;
    let s = world.suite;
    let zero = Address::ZERO;
    let chain = &mut world.chain;

    chain
        .deploy(
            from,
            &AgreementStore::BYTECODE,
            &AgreementStore::constructorCall { governor: zero },
        )
        .expect_revert::<AgreementStore::InvalidGovernor>();
    chain
        .deploy(
            from,
            &LockPaymentCondition::BYTECODE,
            &LockPaymentCondition::constructorCall { store: zero },
        )
        .expect_revert::<LockPaymentCondition::InvalidStore>();
    for bytecode in [
        &SignCondition::BYTECODE,
        &HashLockCondition::BYTECODE,
        &ThresholdCondition::BYTECODE,
    ] {
        chain
            .deploy(
                from,
                bytecode,
                &SignCondition::constructorCall { store: zero },
            )
            .expect_revert::<SignCondition::InvalidStore>();
    }
    chain
        .deploy(
            from,
            &AccessCondition::BYTECODE,
            &AccessCondition::constructorCall {
                store: s.agreement_store,
                registry: zero,
                escrow_: s.escrow_payment,
            },
        )
        .expect_revert::<AccessCondition::InvalidRegistry>();
    chain
        .deploy(
            from,
            &AccessCondition::BYTECODE,
            &AccessCondition::constructorCall {
                store: s.agreement_store,
                registry: s.asset_registry,
                escrow_: zero,
            },
        )
        .expect_revert::<AccessCondition::InvalidEscrow>();
    chain
        .deploy(
            from,
            &ComputeExecutionCondition::BYTECODE,
            &ComputeExecutionCondition::constructorCall {
                store: zero,
                registry: s.asset_registry,
                escrow_: s.escrow_payment,
            },
        )
        .expect_revert::<ComputeExecutionCondition::InvalidStore>();
    chain
        .deploy(
            from,
            &EscrowPaymentCondition::BYTECODE,
            &EscrowPaymentCondition::constructorCall {
                store: s.agreement_store,
                lockCondition_: zero,
            },
        )
        .expect_revert::<EscrowPaymentCondition::InvalidLockCondition>();
    let wirings = [
        (zero, s.lock_payment, s.access, s.escrow_payment),
        (s.agreement_store, zero, s.access, s.escrow_payment),
        (s.agreement_store, s.lock_payment, zero, s.escrow_payment),
        (s.agreement_store, s.lock_payment, s.access, zero),
    ];
    for (store, lock, service, escrow) in wirings {
        chain
            .deploy(
                from,
                &AccessTemplate::BYTECODE,
                &AccessTemplate::constructorCall {
                    store,
                    lock,
                    access: service,
                    escrow,
                },
            )
            .expect_revert::<AccessTemplate::InvalidAddress>();
        chain
            .deploy(
                from,
                &ComputeTemplate::BYTECODE,
                &ComputeTemplate::constructorCall {
                    store,
                    lock,
                    compute: service,
                    escrow,
                },
            )
            .expect_revert::<ComputeTemplate::InvalidAddress>();
    }
}

#[test]
fn templates_and_conditions_expose_their_wiring() {
    let mut world = World::new();
    let s = world.suite;
    let chain = &mut world.chain;
    let store = |chain: &mut insitu_tests::harness::Chain, at: Address| {
        chain
            .call(at, &AccessCondition::agreementStoreCall {})
            .expect("agreementStore")
    };
    for condition in [
        s.lock_payment,
        s.access,
        s.compute_execution,
        s.escrow_payment,
        s.sign,
        s.hash_lock,
        s.threshold,
    ] {
        assert_eq!(store(chain, condition), s.agreement_store);
    }
    assert_eq!(
        chain
            .call(s.access, &AccessCondition::assetRegistryCall {})
            .unwrap(),
        s.asset_registry
    );
    assert_eq!(
        chain
            .call(
                s.escrow_payment,
                &EscrowPaymentCondition::lockConditionCall {}
            )
            .unwrap(),
        s.lock_payment
    );
    for (template, service) in [
        (s.access_template, s.access),
        (s.compute_template, s.compute_execution),
    ] {
        assert_eq!(
            chain
                .call(template, &AccessTemplate::agreementStoreCall {})
                .unwrap(),
            s.agreement_store
        );
        assert_eq!(
            chain
                .call(template, &AccessTemplate::lockConditionCall {})
                .unwrap(),
            s.lock_payment
        );
        assert_eq!(
            chain
                .call(template, &AccessTemplate::serviceConditionCall {})
                .unwrap(),
            service
        );
        assert_eq!(
            chain
                .call(template, &AccessTemplate::escrowConditionCall {})
                .unwrap(),
            s.escrow_payment
        );
        assert_eq!(
            chain
                .call(template, &AccessTemplate::MIN_SERVICE_TIMEOUTCall {})
                .unwrap(),
            3_600
        );
        assert_eq!(
            chain
                .call(template, &AccessTemplate::MAX_SERVICE_TIMEOUTCall {})
                .unwrap(),
            90 * 86_400
        );
        assert_eq!(
            chain
                .call(template, &AccessTemplate::DEFAULT_SERVICE_TIMEOUTCall {})
                .unwrap(),
            3 * 86_400
        );
    }
    assert_eq!(
        chain
            .call(s.lock_payment, &LockPaymentCondition::MAX_FEE_BPSCall {})
            .unwrap(),
        1_000
    );
    assert_eq!(
        chain
            .call(s.lock_payment, &LockPaymentCondition::BPSCall {})
            .unwrap(),
        10_000
    );
}
