//! Every contract refuses to be deployed with a zero address where it needs a contract or a
//! governor, so a mis-wired deployment fails at once instead of misbehaving later; and the
//! deployed suite exposes its wiring.

use alloy::primitives::{Address, Bytes, U256, aliases::U48};
use alloy::sol_types::{SolConstructor, SolError};
use insitu_bindings::{
    AccessCondition, AccessTemplate, AgreementStore, ComputeExecutionCondition, ComputeTemplate,
    GovernanceTimelock, HashLockCondition, PaymentCondition, SignCondition, ThresholdCondition,
};
use insitu_tests::harness::{Chain, ExpectRevert};
use insitu_tests::world::World;

/// Deploys `bytecode` with `args` from `from`, expects the revert `E`, and checks that nothing
/// was created at the address the deployment would have had.
#[track_caller]
fn refused<A: SolConstructor, E: SolError>(
    chain: &mut Chain,
    from: Address,
    bytecode: &Bytes,
    args: &A,
) -> E {
    let at = from.create(chain.nonce(from));
    let err = chain.deploy(from, bytecode, args).expect_revert::<E>();
    assert!(chain.code(at).is_empty(), "no contract was created");
    err
}

#[test]
fn constructors_refuse_zero_addresses() {
    let mut world = World::new();
    let from = world.outsider;
    let s = world.suite;
    let zero = Address::ZERO;
    let chain = &mut world.chain;

    // The store's admin rules refuse a zero initial admin (the old store had its own
    // InvalidGovernor).
    for delay in [0, 86_400] {
        let err: AgreementStore::AccessControlInvalidDefaultAdmin = refused(
            chain,
            from,
            &AgreementStore::BYTECODE,
            &AgreementStore::constructorCall {
                governor: zero,
                adminTransferDelay: U48::from(delay),
            },
        );
        assert_eq!(err.defaultAdmin, zero);
    }
    let _: PaymentCondition::InvalidStore = refused(
        chain,
        from,
        &PaymentCondition::BYTECODE,
        &PaymentCondition::constructorCall { store: zero },
    );
    for bytecode in [
        &SignCondition::BYTECODE,
        &HashLockCondition::BYTECODE,
        &ThresholdCondition::BYTECODE,
    ] {
        let _: SignCondition::InvalidStore = refused(
            chain,
            from,
            bytecode,
            &SignCondition::constructorCall { store: zero },
        );
    }
    for bytecode in [
        &AccessCondition::BYTECODE,
        &ComputeExecutionCondition::BYTECODE,
    ] {
        let _: AccessCondition::InvalidStore = refused(
            chain,
            from,
            bytecode,
            &AccessCondition::constructorCall {
                store: zero,
                registry: s.asset_registry,
                payment: s.payment,
            },
        );
        let _: AccessCondition::InvalidRegistry = refused(
            chain,
            from,
            bytecode,
            &AccessCondition::constructorCall {
                store: s.agreement_store,
                registry: zero,
                payment: s.payment,
            },
        );
        // Was InvalidEscrow, for the escrow condition the payment condition replaces.
        let _: AccessCondition::InvalidPaymentCondition = refused(
            chain,
            from,
            bytecode,
            &AccessCondition::constructorCall {
                store: s.agreement_store,
                registry: s.asset_registry,
                payment: zero,
            },
        );
    }
    let wirings = [
        (zero, s.asset_registry, s.payment, s.access),
        (s.agreement_store, zero, s.payment, s.access),
        (s.agreement_store, s.asset_registry, zero, s.access),
        (s.agreement_store, s.asset_registry, s.payment, zero),
    ];
    for (store, registry, payment, service) in wirings {
        let _: AccessTemplate::InvalidAddress = refused(
            chain,
            from,
            &AccessTemplate::BYTECODE,
            &AccessTemplate::constructorCall {
                store,
                registry,
                payment,
                access: service,
            },
        );
        let _: ComputeTemplate::InvalidAddress = refused(
            chain,
            from,
            &ComputeTemplate::BYTECODE,
            &ComputeTemplate::constructorCall {
                store,
                registry,
                payment,
                compute: service,
            },
        );
    }
}

#[test]
fn the_same_constructors_accept_a_complete_wiring() {
    // The refusals above are about the zero address only: the same arguments with every address
    // set deploy.
    let mut world = World::new();
    let from = world.outsider;
    let s = world.suite;
    let chain = &mut world.chain;
    chain
        .deploy(
            from,
            &AgreementStore::BYTECODE,
            &AgreementStore::constructorCall {
                governor: from,
                adminTransferDelay: U48::ZERO,
            },
        )
        .unwrap();
    chain
        .deploy(
            from,
            &PaymentCondition::BYTECODE,
            &PaymentCondition::constructorCall {
                store: s.agreement_store,
            },
        )
        .unwrap();
    for bytecode in [
        &AccessCondition::BYTECODE,
        &ComputeExecutionCondition::BYTECODE,
    ] {
        chain
            .deploy(
                from,
                bytecode,
                &AccessCondition::constructorCall {
                    store: s.agreement_store,
                    registry: s.asset_registry,
                    payment: s.payment,
                },
            )
            .unwrap();
    }
    chain
        .deploy(
            from,
            &AccessTemplate::BYTECODE,
            &AccessTemplate::constructorCall {
                store: s.agreement_store,
                registry: s.asset_registry,
                payment: s.payment,
                access: s.access,
            },
        )
        .unwrap();
}

#[test]
fn templates_and_conditions_expose_their_wiring() {
    let mut world = World::new();
    let s = world.suite;
    let chain = &mut world.chain;
    let store = |chain: &mut Chain, at: Address| {
        chain
            .call(at, &AccessCondition::agreementStoreCall {})
            .expect("agreementStore")
    };
    for condition in [
        s.payment,
        s.access,
        s.compute_execution,
        s.sign,
        s.hash_lock,
        s.threshold,
    ] {
        assert_eq!(store(chain, condition), s.agreement_store);
    }
    for service in [s.access, s.compute_execution] {
        assert_eq!(
            chain
                .call(service, &AccessCondition::assetRegistryCall {})
                .unwrap(),
            s.asset_registry
        );
        assert_eq!(
            chain
                .call(service, &AccessCondition::paymentConditionCall {})
                .unwrap(),
            s.payment
        );
    }
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
                .call(template, &AccessTemplate::assetRegistryCall {})
                .unwrap(),
            s.asset_registry
        );
        assert_eq!(
            chain
                .call(template, &AccessTemplate::paymentConditionCall {})
                .unwrap(),
            s.payment
        );
        assert_eq!(
            chain
                .call(template, &AccessTemplate::serviceConditionCall {})
                .unwrap(),
            service
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
    }
    assert_eq!(
        chain
            .call(s.payment, &PaymentCondition::MAX_FEE_BPSCall {})
            .unwrap(),
        1_000
    );
    assert_eq!(
        chain
            .call(s.payment, &PaymentCondition::BPSCall {})
            .unwrap(),
        10_000
    );
    assert_eq!(
        chain
            .call(s.payment, &PaymentCondition::ETH_PUSH_GASCall {})
            .unwrap(),
        U256::from(50_000)
    );
    // Governance: the world's timelock (no delay) administers the store, with no admin delay.
    let timelock = s.governance_timelock.expect("a timelock");
    assert_eq!(timelock, world.timelock);
    assert_eq!(
        chain
            .call(s.agreement_store, &AgreementStore::defaultAdminCall {})
            .unwrap(),
        timelock
    );
    assert_eq!(
        chain
            .call(s.agreement_store, &AgreementStore::defaultAdminDelayCall {})
            .unwrap(),
        U48::ZERO
    );
    assert_eq!(
        chain
            .call(timelock, &GovernanceTimelock::getMinDelayCall {})
            .unwrap(),
        U256::ZERO
    );
}
