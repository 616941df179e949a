//! Full agreement lifecycles through the templates: access and compute, ERC20 and ETH, one and
//! three receivers, with and without network fee; refunds, late payments, double settlement,
//! front-running and outsiders.

use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::sol_types::SolValue;
use insitu_bindings::{
    AccessCondition, AccessTemplate, AgreementStore, EscrowPaymentCondition, LockPaymentCondition,
    ServiceTemplate,
};
use insitu_tests::harness::ExpectRevert;
use insitu_tests::world::{FEE_BPS, Service, World, state};

const DAY: u64 = 24 * 3600;

/// Balances of the parties of a deal, in its token.
fn balances(world: &mut World, token: Address, who: &[Address]) -> Vec<U256> {
    who.iter().map(|a| world.balance(token, *a)).collect()
}

/// Runs create-and-lock, serve, release for one configuration and checks every balance, state and
/// event on the way.
fn run_lifecycle(service: Service, eth: bool, receivers: usize, fee: bool) {
    let mut world = if fee { World::with_fee() } else { World::new() };
    let token = if eth { Address::ZERO } else { world.token };
    let payees = [world.provider, world.co_provider, world.outsider];
    let split: Vec<(Address, u64)> = payees[..receivers]
        .iter()
        .enumerate()
        .map(|(i, a)| (*a, 10_000 * (i as u64 + 1) + 7))
        .collect();
    let price: u64 = split.iter().map(|(_, amount)| amount).sum();
    let expected_fee = if fee {
        price * u64::from(FEE_BPS) / 10_000
    } else {
        0
    };
    let total = U256::from(price + expected_fee);

    let escrow = world.suite.escrow_payment;
    let mut watched = vec![world.consumer, escrow];
    watched.extend(payees[..receivers].iter());
    let before = balances(&mut world, token, &watched);

    let terms = World::terms(token, &split);
    let value = if eth { total } else { U256::ZERO };
    let (consumer, did, keeper) = (world.consumer, world.did, world.keeper);
    let (deal, created) = world
        .create_and_lock(service, consumer, did, terms, value)
        .expect("create and lock");
    assert_eq!(deal.fee, U256::from(expected_fee));
    assert_eq!(deal.total(), total);
    let locked = created.expect_event::<LockPaymentCondition::PaymentLocked>();
    assert_eq!(locked.agreementId, deal.agreement_id);
    assert_eq!(locked.conditionId, deal.lock_id);
    assert_eq!(locked.payer, consumer);
    assert_eq!(locked.escrow, escrow);
    assert_eq!(locked.token, token);
    assert_eq!(locked.amount, total);
    assert_eq!(world.state(deal.lock_id), state::FULFILLED);
    assert_eq!(world.state(deal.service_id), state::UNFULFILLED);
    assert_eq!(world.state(deal.escrow_id), state::UNFULFILLED);

    // Gas price is zero in the harness, so ETH balances move by value only, like tokens.
    let after_lock = balances(&mut world, token, &watched);
    assert_eq!(after_lock[0], before[0] - total);
    assert_eq!(after_lock[1], before[1] + total, "escrow holds the payment");

    let served = world.serve(&deal, keeper).expect("serve");
    assert_eq!(served.output, deal.service_id);
    match service {
        Service::Access => {
            let granted = served.expect_event::<AccessCondition::AccessGranted>();
            assert_eq!(granted.agreementId, deal.agreement_id);
            assert_eq!(granted.conditionId, deal.service_id);
            assert_eq!(granted.did, did);
            assert_eq!(granted.consumer, consumer);
            assert_eq!(granted.provider, keeper);
        }
        Service::Compute => {
            let executed = served
                .expect_event::<insitu_bindings::ComputeExecutionCondition::ComputeExecuted>();
            assert_eq!(executed.conditionId, deal.service_id);
            assert_eq!(executed.provider, keeper);
            assert_eq!(executed.result, keccak256(deal.agreement_id));
        }
    }

    let released = world.release(&deal, keeper).expect("release");
    let event = released.expect_event::<EscrowPaymentCondition::PaymentReleased>();
    assert_eq!(event.agreementId, deal.agreement_id);
    assert_eq!(event.conditionId, deal.escrow_id);
    assert_eq!(event.amount, U256::from(price));
    assert_eq!(event.fee, U256::from(expected_fee));
    assert_eq!(world.state(deal.escrow_id), state::FULFILLED);

    let after = balances(&mut world, token, &watched);
    assert_eq!(after[0], before[0] - total, "consumer paid exactly once");
    assert_eq!(
        after[1],
        before[1] + U256::from(expected_fee),
        "escrow keeps only the fee"
    );
    for (i, (payee, amount)) in split.iter().enumerate() {
        assert_eq!(after[2 + i], before[2 + i] + U256::from(*amount), "{payee}");
    }
    let accrued = world
        .chain
        .call(escrow, &EscrowPaymentCondition::accruedFeesCall { token })
        .expect("accruedFees");
    assert_eq!(accrued, U256::from(expected_fee));
}

#[test]
fn every_configuration_settles_exactly_the_agreed_amounts() {
    for service in [Service::Access, Service::Compute] {
        for eth in [false, true] {
            for receivers in [1, 3] {
                for fee in [false, true] {
                    run_lifecycle(service, eth, receivers, fee);
                }
            }
        }
    }
}

#[test]
fn a_provider_that_never_serves_lets_the_consumer_take_everything_back() {
    let mut world = World::with_fee();
    let deal = world.paid_deal(Service::Access);
    let (consumer, keeper, outsider, token) =
        (world.consumer, world.keeper, world.outsider, world.token);
    let before = world.balance(token, consumer);

    // Before the time out: nothing to abort, nothing to refund.
    world
        .abort_service(&deal, outsider)
        .expect_revert::<AgreementStore::ConditionNotTimedOut>();
    world
        .refund(&deal, outsider)
        .expect_revert::<EscrowPaymentCondition::NoReleaseConditionAborted>();

    // The default service time out is three days after creation.
    world.chain.warp(3 * DAY);
    let late = world
        .serve(&deal, keeper)
        .expect_revert::<AgreementStore::ConditionTimedOut>();
    assert_eq!(late.conditionId, deal.service_id);
    let blocked = world
        .release(&deal, keeper)
        .expect_revert::<EscrowPaymentCondition::DependencyNotFulfilled>();
    assert_eq!(blocked.conditionId, deal.service_id);
    assert_eq!(blocked.state, state::UNFULFILLED);

    // Anyone aborts the timed-out condition, then anyone refunds.
    let aborted = world.abort_service(&deal, outsider).expect("abort");
    let event = aborted.expect_event::<AgreementStore::ConditionAborted>();
    assert_eq!(event.conditionId, deal.service_id);
    assert_eq!(world.state(deal.service_id), state::ABORTED);

    let refunded = world.refund(&deal, outsider).expect("refund");
    let event = refunded.expect_event::<EscrowPaymentCondition::PaymentRefunded>();
    assert_eq!(event.payer, consumer);
    assert_eq!(event.amount, deal.total());
    assert_eq!(world.state(deal.escrow_id), state::ABORTED);
    assert_eq!(world.balance(token, consumer), before + deal.total());
    assert_eq!(world.balance(token, world.suite.escrow_payment), U256::ZERO);

    // Settled once: neither a second refund nor a release.
    let again = world
        .refund(&deal, consumer)
        .expect_revert::<AgreementStore::ConditionNotUnfulfilled>();
    assert_eq!(again.conditionId, deal.escrow_id);
    assert_eq!(again.state, state::ABORTED);
    world
        .release(&deal, keeper)
        .expect_revert::<EscrowPaymentCondition::DependencyNotFulfilled>();
}

#[test]
fn a_released_escrow_cannot_be_released_again_or_refunded() {
    let mut world = World::with_fee();
    let deal = world.paid_deal(Service::Compute);
    let keeper = world.keeper;
    world.serve(&deal, keeper).expect("serve");
    world.release(&deal, keeper).expect("release");
    let escrow_balance = world.balance(world.token, world.suite.escrow_payment);

    let twice = world
        .release(&deal, keeper)
        .expect_revert::<AgreementStore::ConditionNotUnfulfilled>();
    assert_eq!(twice.conditionId, deal.escrow_id);
    assert_eq!(twice.state, state::FULFILLED);
    world
        .refund(&deal, world.consumer)
        .expect_revert::<EscrowPaymentCondition::NoReleaseConditionAborted>();
    // A fulfilled service can never be aborted afterwards, even past its time out.
    world.chain.warp(100 * DAY);
    world
        .abort_service(&deal, world.outsider)
        .expect_revert::<AgreementStore::ConditionNotTimedOut>();
    assert_eq!(
        world.balance(world.token, world.suite.escrow_payment),
        escrow_balance
    );
}

#[test]
fn a_late_payment_reverts_and_takes_nothing() {
    let mut world = World::new();
    let terms = World::terms(world.token, &[(world.provider, 1_000)]);
    let (consumer, did) = (world.consumer, world.did);
    let (deal, _) = world
        .create(Service::Access, consumer, did, terms)
        .expect("create");
    let before = world.balance(world.token, consumer);

    // The payment window is half the service time out (1.5 days by default).
    world.chain.warp(3 * DAY / 2);
    let late = world
        .lock(&deal, consumer, U256::ZERO)
        .expect_revert::<AgreementStore::ConditionTimedOut>();
    assert_eq!(late.conditionId, deal.lock_id);
    assert_eq!(world.balance(world.token, consumer), before);
    assert_eq!(world.state(deal.lock_id), state::UNFULFILLED);

    // One second earlier it would have gone through.
    world.chain.set_timestamp(world.chain.timestamp() - 1);
    world
        .lock(&deal, consumer, U256::ZERO)
        .expect("lock in time");
    assert_eq!(world.balance(world.token, consumer), before - deal.total());
}

#[test]
fn the_two_step_path_pays_after_creation_and_the_service_waits_for_it() {
    let mut world = World::new();
    let terms = World::terms(world.token, &[(world.provider, 500)]);
    let (consumer, did, keeper) = (world.consumer, world.did, world.keeper);
    let (deal, created) = world
        .create(Service::Access, consumer, did, terms)
        .expect("create");
    assert!(!created.has_event::<LockPaymentCondition::PaymentLocked>());

    let unpaid = world
        .serve(&deal, keeper)
        .expect_revert::<AccessCondition::DependencyNotFulfilled>();
    assert_eq!(unpaid.conditionId, deal.lock_id);
    assert_eq!(unpaid.state, state::UNFULFILLED);

    // Only the consumer's own payment fulfils the lock: the payer is bound in its id.
    let outsider = world.outsider;
    world.mint(world.token, outsider, U256::from(10_000));
    world.approve(world.token, outsider, world.suite.lock_payment, U256::MAX);
    world
        .lock(&deal, outsider, U256::ZERO)
        .expect_revert::<AgreementStore::ConditionNotFound>();

    world.lock(&deal, consumer, U256::ZERO).expect("lock");
    world.serve(&deal, keeper).expect("serve");
    world.release(&deal, keeper).expect("release");
    assert_eq!(
        world.balance(world.token, world.provider),
        U256::from(500u64)
    );
}

#[test]
fn nobody_but_the_asset_servers_can_fulfil_the_service() {
    let mut world = World::new();
    let deal = world.paid_deal(Service::Access);
    let (outsider, consumer) = (world.outsider, world.consumer);
    for intruder in [outsider, consumer, world.governor] {
        let err = world
            .serve(&deal, intruder)
            .expect_revert::<AccessCondition::NotAssetServer>();
        assert_eq!(err.did, deal.did);
        assert_eq!(err.caller, intruder);
    }
    assert_eq!(world.state(deal.service_id), state::UNFULFILLED);

    // The owner itself and a delegate may serve too.
    let owner_deal = world.paid_deal(Service::Access);
    let provider = world.provider;
    world.serve(&owner_deal, provider).expect("owner serves");

    let delegate = world.chain.account_named("delegate");
    world
        .transact(
            provider,
            world.suite.asset_registry,
            &insitu_bindings::AssetRegistry::grantPermissionCall {
                did: world.did,
                delegate,
            },
            U256::ZERO,
        )
        .expect("grant");
    let delegated = world.paid_deal(Service::Compute);
    world.serve(&delegated, delegate).expect("delegate serves");
}

#[test]
fn fulfilments_with_other_parameters_address_no_condition() {
    let mut world = World::new();
    let deal = world.paid_deal(Service::Access);
    let (keeper, outsider) = (world.keeper, world.outsider);

    // Access granted to someone else than the paying consumer.
    let mut other_consumer = deal.clone();
    other_consumer.consumer = outsider;
    world
        .serve(&other_consumer, keeper)
        .expect_revert::<AgreementStore::ConditionNotFound>();

    // Access on another asset of the same provider, with this deal's paid lock.
    let other_did = world.register_asset(world.provider, &[keeper]);
    let mut other_asset = deal.clone();
    other_asset.did = other_did;
    world
        .serve(&other_asset, keeper)
        .expect_revert::<AgreementStore::ConditionNotFound>();

    // A release that pays someone else, or more, derives another lock id: not Fulfilled.
    world.serve(&deal, keeper).expect("serve");
    let mut redirected = deal.clone();
    redirected.receivers = vec![outsider];
    let err = world
        .release(&redirected, outsider)
        .expect_revert::<EscrowPaymentCondition::DependencyNotFulfilled>();
    assert_ne!(err.conditionId, deal.lock_id);
    assert_eq!(err.state, state::UNINITIALIZED);
    let mut inflated = deal.clone();
    inflated.amounts = vec![deal.amounts[0] * U256::from(2)];
    world
        .release(&inflated, outsider)
        .expect_revert::<EscrowPaymentCondition::DependencyNotFulfilled>();

    // Anyone may trigger the real release; it pays the agreed receivers.
    world.release(&deal, outsider).expect("release by anyone");
    assert_eq!(
        world.balance(world.token, world.provider),
        U256::from(1_000u64)
    );
    assert_eq!(world.balance(world.token, outsider), U256::ZERO);
}

#[test]
fn only_approved_templates_create_agreements() {
    let mut world = World::new();
    let governor = world.governor;
    let rogue = world
        .chain
        .deploy(
            world.outsider,
            &AccessTemplate::BYTECODE,
            &AccessTemplate::constructorCall {
                store: world.suite.agreement_store,
                lock: world.suite.lock_payment,
                access: world.suite.access,
                escrow: world.suite.escrow_payment,
            },
        )
        .expect("deploy an unapproved template");
    let seed = world.seed();
    let call = ServiceTemplate::createAgreementAndLockCall {
        seed,
        did: world.did,
        terms: World::terms(world.token, &[(world.provider, 10)]),
    };
    let before = world.balance(world.token, world.consumer);
    let err = world
        .chain
        .transact(world.consumer, rogue, &call)
        .expect_revert::<AgreementStore::TemplateNotApproved>();
    assert_eq!(err.caller, rogue);
    assert_eq!(world.balance(world.token, world.consumer), before);

    // A revoked template stops creating; its agreements keep settling.
    let deal = world.paid_deal(Service::Access);
    world
        .transact(
            governor,
            world.suite.agreement_store,
            &AgreementStore::revokeTemplateCall {
                template: world.suite.access_template,
            },
            U256::ZERO,
        )
        .expect("revoke");
    let call = ServiceTemplate::createAgreementCall {
        seed: world.seed(),
        did: world.did,
        terms: World::terms(world.token, &[(world.provider, 10)]),
    };
    world
        .chain
        .transact(world.consumer, world.suite.access_template, &call)
        .expect_revert::<AgreementStore::TemplateNotApproved>();
    let keeper = world.keeper;
    world.serve(&deal, keeper).expect("serve after revocation");
    world
        .release(&deal, keeper)
        .expect("release after revocation");
}

#[test]
fn an_agreement_id_cannot_be_reused() {
    let mut world = World::new();
    let seed = B256::repeat_byte(7);
    let call = ServiceTemplate::createAgreementCall {
        seed,
        did: world.did,
        terms: World::terms(world.token, &[(world.provider, 10)]),
    };
    let (consumer, outsider) = (world.consumer, world.outsider);
    let template = world.suite.access_template;
    let first = world
        .chain
        .transact(consumer, template, &call)
        .expect("first")
        .output;
    assert_eq!(first, keccak256((seed, consumer).abi_encode()));
    let err = world
        .chain
        .transact(consumer, template, &call)
        .expect_revert::<AgreementStore::AgreementAlreadyExists>();
    assert_eq!(err.agreementId, first);
    // Another consumer with the same seed gets another agreement; so does the other template.
    let other = world
        .chain
        .transact(outsider, template, &call)
        .expect("other consumer")
        .output;
    assert_ne!(other, first);
    world
        .chain
        .transact(consumer, world.suite.compute_template, &call)
        .expect_revert::<AgreementStore::AgreementAlreadyExists>();
}

#[test]
fn service_time_outs_are_bounded_and_finite() {
    let mut world = World::new();
    let (consumer, did) = (world.consumer, world.did);
    for bad in [1u32, 3_599, 90 * 24 * 3600 + 1, u32::MAX] {
        let mut terms = World::terms(world.token, &[(world.provider, 10)]);
        terms.serviceTimeout = bad;
        let err = world
            .create(Service::Access, consumer, did, terms)
            .expect_revert::<ServiceTemplate::InvalidServiceTimeout>();
        assert_eq!(err.serviceTimeout, bad);
    }
    for (requested, expected) in [(0u32, 3 * DAY), (3_600, 3_600), (90 * 24 * 3600, 90 * DAY)] {
        let mut terms = World::terms(world.token, &[(world.provider, 10)]);
        terms.serviceTimeout = requested;
        let (deal, receipt) = world
            .create(Service::Access, consumer, did, terms)
            .expect("create");
        let now = receipt.timestamp;
        let store = world.suite.agreement_store;
        let service = world
            .chain
            .call(
                store,
                &AgreementStore::getConditionCall {
                    conditionId: deal.service_id,
                },
            )
            .expect("service condition");
        assert_eq!(u64::try_from(service.timeOut).unwrap(), now + expected);
        assert_eq!(u64::try_from(service.timeLock).unwrap(), 0);
        let lock = world
            .chain
            .call(
                store,
                &AgreementStore::getConditionCall {
                    conditionId: deal.lock_id,
                },
            )
            .expect("lock condition");
        assert_eq!(u64::try_from(lock.timeOut).unwrap(), now + expected / 2);
        let escrow = world
            .chain
            .call(
                store,
                &AgreementStore::getConditionCall {
                    conditionId: deal.escrow_id,
                },
            )
            .expect("escrow condition");
        assert_eq!(
            u64::try_from(escrow.timeOut).unwrap(),
            0,
            "escrow never times out"
        );
    }
}

#[test]
fn preview_matches_the_created_agreement() {
    let mut world = World::with_fee();
    let seed = B256::repeat_byte(0x42);
    let terms = World::terms(
        world.token,
        &[(world.provider, 20_000), (world.co_provider, 5)],
    );
    let preview = world
        .chain
        .call(
            world.suite.compute_template,
            &ServiceTemplate::previewAgreementCall {
                seed,
                consumer: world.consumer,
                did: world.did,
                terms: terms.clone(),
            },
        )
        .expect("preview");
    let call = ServiceTemplate::createAgreementAndLockCall {
        seed,
        did: world.did,
        terms,
    };
    let receipt = world
        .chain
        .transact(world.consumer, world.suite.compute_template, &call)
        .expect("create");
    let created = receipt.expect_event::<AgreementStore::AgreementCreated>();
    assert_eq!(preview.agreementId, receipt.output);
    assert_eq!(
        created.conditionIds,
        vec![
            preview.lockConditionId,
            preview.serviceConditionId,
            preview.escrowConditionId
        ]
    );
    assert_eq!(preview.fee, U256::from(200u64)); // 1% of 20,005, rounded down
    assert_eq!(preview.total, U256::from(20_205u64));
    assert_eq!(preview.serviceTimeout, 3 * 24 * 3600);
}

#[test]
fn the_fee_in_force_at_creation_holds_for_the_whole_agreement() {
    let mut world = World::with_fee();
    let deal = world.paid_deal(Service::Access);
    assert_eq!(deal.fee, U256::from(10u64)); // 1% of 1,000
    let (governor, fee_receiver) = (world.governor, world.fee_receiver);
    world
        .transact(
            governor,
            world.suite.lock_payment,
            &LockPaymentCondition::setNetworkFeeCall {
                receiver: fee_receiver,
                bps: 1_000,
            },
            U256::ZERO,
        )
        .expect("raise fee");
    let keeper = world.keeper;
    world.serve(&deal, keeper).expect("serve");
    let released = world.release(&deal, keeper).expect("release");
    let event = released.expect_event::<EscrowPaymentCondition::PaymentReleased>();
    assert_eq!(event.fee, U256::from(10u64));
    let next = world.paid_deal(Service::Access);
    assert_eq!(next.fee, U256::from(100u64));
}

#[test]
fn compute_execution_is_readable_on_chain_and_names_its_result() {
    let mut world = World::new();
    let deal = world.paid_deal(Service::Compute);
    let executed = |world: &mut World| {
        world
            .chain
            .call(
                world.suite.compute_execution,
                &insitu_bindings::ComputeExecutionCondition::isExecutedCall {
                    agreementId: deal.agreement_id,
                    did: deal.did,
                    consumer: deal.consumer,
                    lockConditionId: deal.lock_id,
                },
            )
            .expect("isExecuted")
    };
    assert!(!executed(&mut world));
    let keeper = world.keeper;
    let receipt = world.serve(&deal, keeper).expect("serve");
    assert!(executed(&mut world));
    let fulfilled = receipt.expect_event::<AgreementStore::ConditionFulfilled>();
    assert_eq!(fulfilled.conditionId, deal.service_id);
    assert_eq!(fulfilled.conditionContract, world.suite.compute_execution);
    // The access condition knows nothing of compute agreements.
    let access = world
        .chain
        .call(
            world.suite.access,
            &AccessCondition::hasAccessCall {
                agreementId: deal.agreement_id,
                did: deal.did,
                consumer: deal.consumer,
                lockConditionId: deal.lock_id,
            },
        )
        .expect("hasAccess");
    assert!(!access);
}

#[test]
fn a_keeper_serves_and_releases_in_one_transaction() {
    for service in [Service::Access, Service::Compute] {
        let mut world = World::with_fee();
        let deal = world.paid_deal(service);
        let (keeper, provider, token) = (world.keeper, world.provider, world.token);
        let receipt = world
            .serve_and_release(&deal, keeper)
            .expect("serve and release");
        assert_eq!(receipt.output, deal.service_id);
        let released = receipt.expect_event::<EscrowPaymentCondition::PaymentReleased>();
        assert_eq!(released.conditionId, deal.escrow_id);
        assert_eq!(released.fee, deal.fee);
        let fulfilled = receipt
            .events::<AgreementStore::ConditionFulfilled>()
            .unwrap();
        let ids: Vec<_> = fulfilled.iter().map(|e| e.conditionId).collect();
        assert_eq!(ids, vec![deal.service_id, deal.escrow_id]);
        assert_eq!(world.state(deal.service_id), state::FULFILLED);
        assert_eq!(world.state(deal.escrow_id), state::FULFILLED);
        assert_eq!(world.balance(token, provider), U256::from(1_000u64));

        // Settled once: neither path can release again.
        world
            .serve_and_release(&deal, keeper)
            .expect_revert::<AgreementStore::ConditionNotUnfulfilled>();
        world
            .release(&deal, keeper)
            .expect_revert::<AgreementStore::ConditionNotUnfulfilled>();
    }
}

#[test]
fn serve_and_release_is_all_or_nothing() {
    let mut world = World::new();
    let deal = world.paid_deal(Service::Access);
    let (keeper, outsider) = (world.keeper, world.outsider);

    let err = world
        .serve_and_release(&deal, outsider)
        .expect_revert::<AccessCondition::NotAssetServer>();
    assert_eq!(err.caller, outsider);

    // Terms that do not match the lock: the release reverts, and so does the access grant.
    let mut inflated = deal.clone();
    inflated.amounts = vec![deal.amounts[0] + U256::from(1)];
    let err = world
        .serve_and_release(&inflated, keeper)
        .expect_revert::<EscrowPaymentCondition::DependencyNotFulfilled>();
    assert_eq!(err.state, state::UNINITIALIZED);
    assert_eq!(world.state(deal.service_id), state::UNFULFILLED);
    assert_eq!(world.state(deal.escrow_id), state::UNFULFILLED);

    // An unpaid agreement cannot be served, let alone released.
    let terms = World::terms(world.token, &[(world.provider, 5)]);
    let (consumer, did) = (world.consumer, world.did);
    let (unpaid, _) = world
        .create(Service::Compute, consumer, did, terms)
        .expect("create");
    let err = world
        .serve_and_release(&unpaid, keeper)
        .expect_revert::<AccessCondition::DependencyNotFulfilled>();
    assert_eq!(err.conditionId, unpaid.lock_id);
}
