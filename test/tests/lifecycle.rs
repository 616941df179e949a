//! Full agreement lifecycles through the templates and the payment condition: access and compute,
//! ERC20 and ETH, one and three receivers, with and without network fee; refunds, late payments,
//! settlement happening once, outsiders, template approval, agreement ids, time outs and previews.

use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::sol_types::SolValue;
use insitu_bindings::{
    AccessCondition, AccessTemplate, AgreementStore, AssetRegistry, ComputeExecutionCondition,
    PaymentCondition, ServiceTemplate,
};
use insitu_tests::harness::{ExpectRevert, Receipt, TxError};
use insitu_tests::world::{
    Deal, FEE_BPS, OFFER_MAX_TIMEOUT, OFFER_MIN_TIMEOUT, Service, SignedOffer, World, state,
};

mod common;

const DAY: u64 = 24 * 3600;

/// Balances of the parties of a deal, in its token.
fn balances(world: &mut World, token: Address, who: &[Address]) -> Vec<U256> {
    who.iter().map(|a| world.balance(token, *a)).collect()
}

/// The keeper's signed offer on the world's asset for `service`, paying `split` in `token`.
fn signed(
    world: &mut World,
    service: Service,
    token: Address,
    split: &[(Address, u64)],
) -> SignedOffer {
    let did = world.did;
    let offer = world.offer(did, token, split);
    world.sign_offer(service, offer)
}

/// `consumer` creates an agreement on `signed` with the template's `createAgreement` (two-step),
/// with `seed` and service time out `timeout`, without a cap on the total.
fn create_with(
    world: &mut World,
    service: Service,
    consumer: Address,
    signed: &SignedOffer,
    seed: B256,
    timeout: u32,
) -> Result<(Deal, Receipt<B256>), TxError> {
    let call = ServiceTemplate::createAgreementCall {
        seed,
        offer: signed.offer.clone(),
        signature: signed.signature.clone(),
        serviceTimeout: timeout,
        maxTotal: U256::MAX,
    };
    let template = world.template(service);
    let receipt = world.transact(consumer, template, &call, U256::ZERO)?;
    let deal = world.deal_from(service, &receipt);
    Ok((deal, receipt))
}

/// Runs buy (create and pay in one transaction), serve, release for one configuration and checks
/// every balance, state and event on the way.
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

    let payment = world.suite.payment;
    let mut watched = vec![world.consumer, payment];
    watched.extend(payees[..receivers].iter());
    let before = balances(&mut world, token, &watched);

    let offer = signed(&mut world, service, token, &split);
    let value = if eth { total } else { U256::ZERO };
    let (consumer, did, keeper) = (world.consumer, world.did, world.keeper);
    let (deal, created) = world
        .buy(service, consumer, &offer, value)
        .expect("create and pay");
    assert_eq!(deal.fee, U256::from(expected_fee));
    assert_eq!(deal.total(), total);
    assert_eq!(deal.provider, keeper);
    // No PaymentLocked any more: the payment is announced by the store's ConditionFulfilled.
    let paid = created.expect_event::<AgreementStore::ConditionFulfilled>();
    assert_eq!(paid.conditionId, deal.payment_id);
    assert_eq!(paid.conditionContract, payment);
    assert_eq!(world.state(deal.payment_id), state::FULFILLED);
    assert_eq!(world.state(deal.service_id), state::UNFULFILLED);

    // Gas price is zero in the harness, so ETH balances move by value only, like tokens.
    let after_pay = balances(&mut world, token, &watched);
    assert_eq!(after_pay[0], before[0] - total);
    assert_eq!(after_pay[1], before[1] + total, "escrow holds the payment");

    let served = world.serve(&deal, keeper).expect("serve");
    assert_eq!(served.output, deal.service_id);
    match service {
        Service::Access => {
            let granted = served.expect_event::<AccessCondition::AccessGranted>();
            assert_eq!(granted.agreementId, deal.agreement_id);
            assert_eq!(granted.did, did);
            assert_eq!(granted.consumer, consumer);
            assert_eq!(granted.provider, keeper);
        }
        Service::Compute => {
            let executed = served.expect_event::<ComputeExecutionCondition::ComputeExecuted>();
            assert_eq!(executed.agreementId, deal.agreement_id);
            assert_eq!(executed.did, did);
            assert_eq!(executed.consumer, consumer);
            assert_eq!(executed.provider, keeper);
            assert_eq!(executed.result, keccak256(deal.agreement_id));
        }
    }
    let fulfilled = served.expect_event::<AgreementStore::ConditionFulfilled>();
    assert_eq!(fulfilled.conditionId, deal.service_id);

    let released = world.release(&deal, keeper).expect("release");
    assert_eq!(released.output, deal.payment_id);
    let event = released.expect_event::<PaymentCondition::PaymentReleased>();
    assert_eq!(event.agreementId, deal.agreement_id);
    assert_eq!(event.token, token);
    assert_eq!(event.amount, U256::from(price));
    assert_eq!(event.fee, U256::from(expected_fee));
    assert!(!released.has_event::<PaymentCondition::PaymentCredited>());
    assert_eq!(world.state(deal.payment_id), state::RELEASED);
    assert_eq!(world.state(deal.service_id), state::FULFILLED);

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
        .call(payment, &PaymentCondition::accruedFeesCall { token })
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
    let err = world
        .abort_service(&deal, outsider)
        .expect_revert::<AgreementStore::ConditionNotTimedOut>();
    assert_eq!(err.conditionId, deal.service_id);
    let err = world
        .refund(&deal, outsider)
        .expect_revert::<PaymentCondition::ServiceNotAborted>();
    assert_eq!(err.serviceConditionId, deal.service_id);
    assert_eq!(err.state, state::UNFULFILLED);
    assert_eq!(world.state(deal.payment_id), state::FULFILLED);

    // The default service time out is three days after creation.
    world.chain.warp(3 * DAY);
    let late = world
        .serve(&deal, keeper)
        .expect_revert::<AgreementStore::ConditionTimedOut>();
    assert_eq!(late.conditionId, deal.service_id);
    let blocked = world
        .release(&deal, keeper)
        .expect_revert::<PaymentCondition::ServiceNotFulfilled>();
    assert_eq!(blocked.serviceConditionId, deal.service_id);
    assert_eq!(blocked.state, state::UNFULFILLED);

    // Anyone aborts the timed-out condition, then anyone refunds.
    let aborted = world.abort_service(&deal, outsider).expect("abort");
    let event = aborted.expect_event::<AgreementStore::ConditionAborted>();
    assert_eq!(event.conditionId, deal.service_id);
    assert_eq!(event.conditionContract, world.suite.access);
    assert_eq!(world.state(deal.service_id), state::ABORTED);

    let refunded = world.refund(&deal, outsider).expect("refund");
    assert_eq!(refunded.output, deal.payment_id);
    let event = refunded.expect_event::<PaymentCondition::PaymentRefunded>();
    assert_eq!(event.agreementId, deal.agreement_id);
    assert_eq!(event.payer, consumer);
    assert_eq!(event.token, token);
    assert_eq!(event.amount, deal.total());
    assert_eq!(world.state(deal.payment_id), state::REFUNDED);
    assert_eq!(world.balance(token, consumer), before + deal.total());
    assert_eq!(world.balance(token, world.suite.payment), U256::ZERO);

    // Settled once: neither a second refund nor a release.
    let again = world
        .refund(&deal, consumer)
        .expect_revert::<AgreementStore::ConditionNotFulfilled>();
    assert_eq!(again.conditionId, deal.payment_id);
    assert_eq!(again.state, state::REFUNDED);
    let err = world
        .release(&deal, keeper)
        .expect_revert::<PaymentCondition::ServiceNotFulfilled>();
    assert_eq!(
        (err.serviceConditionId, err.state),
        (deal.service_id, state::ABORTED)
    );
    assert_eq!(world.balance(token, consumer), before + deal.total());
}

#[test]
fn a_released_payment_cannot_be_released_again_or_refunded() {
    let mut world = World::with_fee();
    let deal = world.paid_deal(Service::Compute);
    let keeper = world.keeper;
    world.serve(&deal, keeper).expect("serve");
    world.release(&deal, keeper).expect("release");
    let escrow_balance = world.balance(world.token, world.suite.payment);

    let twice = world
        .release(&deal, keeper)
        .expect_revert::<AgreementStore::ConditionNotFulfilled>();
    assert_eq!(twice.conditionId, deal.payment_id);
    assert_eq!(twice.state, state::RELEASED);
    let err = world
        .refund(&deal, world.consumer)
        .expect_revert::<PaymentCondition::ServiceNotAborted>();
    assert_eq!(
        (err.serviceConditionId, err.state),
        (deal.service_id, state::FULFILLED)
    );
    // A fulfilled service can never be aborted afterwards, even past its time out.
    world.chain.warp(100 * DAY);
    world
        .abort_service(&deal, world.outsider)
        .expect_revert::<AgreementStore::ConditionNotTimedOut>();
    assert_eq!(world.state(deal.payment_id), state::RELEASED);
    assert_eq!(
        world.balance(world.token, world.suite.payment),
        escrow_balance
    );
}

#[test]
fn a_late_payment_reverts_and_takes_nothing() {
    let mut world = World::new();
    let (consumer, provider, token) = (world.consumer, world.provider, world.token);
    let offer = signed(&mut world, Service::Access, token, &[(provider, 1_000)]);
    let (deal, _) = world
        .create(Service::Access, consumer, &offer)
        .expect("create");
    let before = world.balance(token, consumer);

    // The payment window is half the service time out (1.5 days by default).
    world.chain.warp(3 * DAY / 2);
    let late = world
        .lock(&deal, consumer, U256::ZERO)
        .expect_revert::<AgreementStore::ConditionTimedOut>();
    assert_eq!(late.conditionId, deal.payment_id);
    assert_eq!(world.balance(token, consumer), before);
    assert_eq!(world.state(deal.payment_id), state::UNFULFILLED);

    // One second earlier it would have gone through.
    world.chain.set_timestamp(world.chain.timestamp() - 1);
    let receipt = world
        .lock(&deal, consumer, U256::ZERO)
        .expect("lock in time");
    assert_eq!(receipt.output, deal.payment_id);
    assert_eq!(world.balance(token, consumer), before - deal.total());
    assert_eq!(world.state(deal.payment_id), state::FULFILLED);
}

#[test]
fn the_two_step_path_pays_after_creation_and_the_service_waits_for_it() {
    let mut world = World::new();
    let (consumer, keeper, provider, token) =
        (world.consumer, world.keeper, world.provider, world.token);
    let offer = signed(&mut world, Service::Access, token, &[(provider, 500)]);
    let (deal, created) = world
        .create(Service::Access, consumer, &offer)
        .expect("create");
    assert!(!created.has_event::<AgreementStore::ConditionFulfilled>());
    assert_eq!(world.state(deal.payment_id), state::UNFULFILLED);

    let unpaid = world
        .serve(&deal, keeper)
        .expect_revert::<AccessCondition::DependencyNotFulfilled>();
    assert_eq!(unpaid.conditionId, deal.payment_id);
    assert_eq!(unpaid.state, state::UNFULFILLED);

    // Only the consumer's own payment fulfils the payment: the payer is bound in its id.
    let outsider = world.outsider;
    world.mint(token, outsider, U256::from(10_000));
    world.approve(token, outsider, world.suite.payment, U256::MAX);
    world
        .lock(&deal, outsider, U256::ZERO)
        .expect_revert::<AgreementStore::ConditionNotFound>();
    assert_eq!(world.balance(token, outsider), U256::from(10_000));
    assert_eq!(world.state(deal.payment_id), state::UNFULFILLED);

    let locked = world.lock(&deal, consumer, U256::ZERO).expect("lock");
    let paid = locked.expect_event::<AgreementStore::ConditionFulfilled>();
    assert_eq!(paid.conditionId, deal.payment_id);
    world.serve(&deal, keeper).expect("serve");
    world.release(&deal, keeper).expect("release");
    assert_eq!(world.balance(token, provider), U256::from(500u64));
    assert_eq!(world.state(deal.payment_id), state::RELEASED);
}

#[test]
fn nobody_but_the_asset_servers_can_fulfil_the_service() {
    let mut world = World::new();
    let deal = world.paid_deal(Service::Access);
    let (outsider, consumer, governor) = (world.outsider, world.consumer, world.governor);
    for intruder in [outsider, consumer, governor] {
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
            &AssetRegistry::grantPermissionCall {
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

    // Access on another asset of the same provider, with this deal's paid payment.
    let other_did = world.register_asset(world.provider, &[keeper]);
    let mut other_asset = deal.clone();
    other_asset.did = other_did;
    world
        .serve(&other_asset, keeper)
        .expect_revert::<AgreementStore::ConditionNotFound>();
    assert_eq!(world.state(deal.service_id), state::UNFULFILLED);

    // A release that pays someone else, or more, derives another payment and hence another
    // service condition, which does not exist.
    world.serve(&deal, keeper).expect("serve");
    let mut redirected = deal.clone();
    redirected.receivers = vec![outsider];
    let err = world
        .release(&redirected, outsider)
        .expect_revert::<PaymentCondition::ServiceNotFulfilled>();
    assert_ne!(err.serviceConditionId, deal.service_id);
    assert_eq!(err.state, state::UNINITIALIZED);
    let mut inflated = deal.clone();
    inflated.amounts = vec![deal.amounts[0] * U256::from(2)];
    let err = world
        .release(&inflated, outsider)
        .expect_revert::<PaymentCondition::ServiceNotFulfilled>();
    assert_eq!(err.state, state::UNINITIALIZED);
    assert_eq!(world.state(deal.payment_id), state::FULFILLED);

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
    let rogue = world
        .chain
        .deploy(
            world.outsider,
            &AccessTemplate::BYTECODE,
            &AccessTemplate::constructorCall {
                store: world.suite.agreement_store,
                registry: world.suite.asset_registry,
                payment: world.suite.payment,
                access: world.suite.access,
            },
        )
        .expect("deploy an unapproved template");
    let (consumer, provider, token, did) = (world.consumer, world.provider, world.token, world.did);
    let offer = world.offer(did, token, &[(provider, 10)]);
    // Signed in the unapproved template's own domain, so only the approval is missing.
    let domain = insitu_bindings::offers::domain(
        insitu_bindings::offers::ACCESS_TEMPLATE_DOMAIN,
        world.chain.chain_id(),
        rogue,
    );
    let hash = insitu_bindings::offers::signing_hash(&offer, &domain);
    let signature: alloy::primitives::Bytes = {
        use alloy::signers::SignerSync;
        let key = world.chain.signer(world.keeper).expect("keeper key");
        key.sign_hash_sync(&hash)
            .expect("sign")
            .as_bytes()
            .to_vec()
            .into()
    };
    let before = world.balance(token, consumer);
    let two_step = ServiceTemplate::createAgreementCall {
        seed: world.seed(),
        offer: offer.clone(),
        signature: signature.clone(),
        serviceTimeout: 0,
        maxTotal: U256::MAX,
    };
    let err = world
        .chain
        .transact(consumer, rogue, &two_step)
        .expect_revert::<AgreementStore::TemplateNotApproved>();
    assert_eq!(err.caller, rogue);
    let one_step = PaymentCondition::createAgreementAndPayCall {
        template: rogue,
        seed: world.seed(),
        offer: offer.into(),
        signature,
        serviceTimeout: 0,
        maxTotal: U256::MAX,
    };
    let err = world
        .chain
        .transact(consumer, world.suite.payment, &one_step)
        .expect_revert::<AgreementStore::TemplateNotApproved>();
    assert_eq!(err.caller, rogue);
    assert_eq!(world.balance(token, consumer), before);

    // A revoked template stops creating; its agreements keep settling.
    let deal = world.paid_deal(Service::Access);
    let access_template = world.suite.access_template;
    common::revoke_template(&mut world, access_template).expect("revoke");
    let fresh = signed(&mut world, Service::Access, token, &[(provider, 10)]);
    let err = world
        .buy(Service::Access, consumer, &fresh, U256::ZERO)
        .expect_revert::<AgreementStore::TemplateNotApproved>();
    assert_eq!(err.caller, world.suite.access_template);
    let err = world
        .create(Service::Access, consumer, &fresh)
        .expect_revert::<AgreementStore::TemplateNotApproved>();
    assert_eq!(err.caller, world.suite.access_template);
    let keeper = world.keeper;
    world.serve(&deal, keeper).expect("serve after revocation");
    world
        .release(&deal, keeper)
        .expect("release after revocation");
    assert_eq!(world.state(deal.payment_id), state::RELEASED);
}

#[test]
fn an_agreement_id_cannot_be_reused() {
    let mut world = World::new();
    let seed = B256::repeat_byte(7);
    let (consumer, outsider, provider, token) =
        (world.consumer, world.outsider, world.provider, world.token);
    let access_offer = signed(&mut world, Service::Access, token, &[(provider, 10)]);
    let (first, _) = create_with(
        &mut world,
        Service::Access,
        consumer,
        &access_offer,
        seed,
        0,
    )
    .expect("first");
    // agreementId = keccak256(abi.encode(seed, consumer, payment contract, payment value hash)).
    let payment_hash = world
        .chain
        .call(
            world.suite.payment,
            &PaymentCondition::hashValuesCall {
                did: first.did,
                payer: consumer,
                service: world.suite.access,
                payment: first.payment(),
            },
        )
        .expect("hashValues");
    assert_eq!(
        first.agreement_id,
        keccak256((seed, consumer, world.suite.payment, payment_hash).abi_encode())
    );
    let err = create_with(
        &mut world,
        Service::Access,
        consumer,
        &access_offer,
        seed,
        0,
    )
    .expect_revert::<AgreementStore::ConditionAlreadyExists>();
    assert_eq!(err.conditionId, first.payment_id);
    // The one-step purchase with the same seed hits the same agreement.
    let call = PaymentCondition::createAgreementAndPayCall {
        template: world.suite.access_template,
        seed,
        offer: access_offer.offer.clone().into(),
        signature: access_offer.signature.clone(),
        serviceTimeout: 0,
        maxTotal: U256::MAX,
    };
    let before = world.balance(token, consumer);
    let err = world
        .chain
        .transact(consumer, world.suite.payment, &call)
        .expect_revert::<AgreementStore::ConditionAlreadyExists>();
    assert_eq!(err.conditionId, first.payment_id);
    assert_eq!(world.balance(token, consumer), before);

    // Another consumer with the same seed gets another agreement; so does the other template.
    let (other, _) = create_with(
        &mut world,
        Service::Access,
        outsider,
        &access_offer,
        seed,
        0,
    )
    .expect("other consumer");
    assert_ne!(other.agreement_id, first.agreement_id);
    let compute_offer = signed(&mut world, Service::Compute, token, &[(provider, 10)]);
    let (compute, _) = create_with(
        &mut world,
        Service::Compute,
        consumer,
        &compute_offer,
        seed,
        0,
    )
    .expect("other template");
    assert_ne!(compute.agreement_id, first.agreement_id);
}

#[test]
fn service_time_outs_are_bounded_and_finite() {
    let mut world = World::new();
    let (consumer, provider, token) = (world.consumer, world.provider, world.token);
    let offer = signed(&mut world, Service::Access, token, &[(provider, 10)]);
    for bad in [1u32, OFFER_MIN_TIMEOUT - 1, OFFER_MAX_TIMEOUT + 1, u32::MAX] {
        let seed = world.seed();
        let err = create_with(&mut world, Service::Access, consumer, &offer, seed, bad)
            .expect_revert::<ServiceTemplate::InvalidServiceTimeout>();
        assert_eq!(
            (
                err.serviceTimeout,
                err.minServiceTimeout,
                err.maxServiceTimeout
            ),
            (bad, OFFER_MIN_TIMEOUT, OFFER_MAX_TIMEOUT)
        );
    }
    // The offer's own bounds must lie within [1 hour, 90 days] and not be empty.
    for (min, max) in [
        (3_599u32, OFFER_MAX_TIMEOUT),
        (OFFER_MIN_TIMEOUT, 90 * 24 * 3600 + 1),
        (7_200, 3_600),
    ] {
        let mut bad_offer = offer.offer.clone();
        bad_offer.minServiceTimeout = min;
        bad_offer.maxServiceTimeout = max;
        let bad_signed = world.sign_offer(Service::Access, bad_offer);
        let seed = world.seed();
        let err = create_with(&mut world, Service::Access, consumer, &bad_signed, seed, 0)
            .expect_revert::<ServiceTemplate::InvalidOfferTimeouts>();
        assert_eq!((err.minServiceTimeout, err.maxServiceTimeout), (min, max));
    }
    for (requested, expected) in [
        (0u32, u64::from(OFFER_MAX_TIMEOUT)),
        (OFFER_MIN_TIMEOUT, u64::from(OFFER_MIN_TIMEOUT)),
        (OFFER_MAX_TIMEOUT, u64::from(OFFER_MAX_TIMEOUT)),
    ] {
        let seed = world.seed();
        let (deal, receipt) = create_with(
            &mut world,
            Service::Access,
            consumer,
            &offer,
            seed,
            requested,
        )
        .expect("create");
        assert_eq!(u64::from(deal.service_timeout), expected);
        let now = receipt.timestamp;
        let service = common::condition(&mut world, deal.service_id);
        assert_eq!(u64::try_from(service.timeOut).unwrap(), now + expected);
        assert_eq!(u64::try_from(service.timeLock).unwrap(), 0);
        let payment = common::condition(&mut world, deal.payment_id);
        assert_eq!(u64::try_from(payment.timeOut).unwrap(), now + expected / 2);
        assert_eq!(u64::try_from(payment.timeLock).unwrap(), 0);
    }
}

#[test]
fn preview_matches_the_created_agreement() {
    let mut world = World::with_fee();
    let seed = B256::repeat_byte(0x42);
    let (consumer, provider, co_provider, token) = (
        world.consumer,
        world.provider,
        world.co_provider,
        world.token,
    );
    let offer = signed(
        &mut world,
        Service::Compute,
        token,
        &[(provider, 20_000), (co_provider, 5)],
    );
    let preview = world
        .chain
        .call(
            world.suite.compute_template,
            &ServiceTemplate::previewAgreementCall {
                seed,
                consumer,
                offer: offer.offer.clone(),
                serviceTimeout: 0,
            },
        )
        .expect("preview");
    let call = PaymentCondition::createAgreementAndPayCall {
        template: world.suite.compute_template,
        seed,
        offer: offer.offer.clone().into(),
        signature: offer.signature.clone(),
        serviceTimeout: 0,
        maxTotal: preview.total,
    };
    let receipt = world
        .chain
        .transact(consumer, world.suite.payment, &call)
        .expect("create");
    let created = receipt.expect_event::<AgreementStore::AgreementCreated>();
    assert_eq!(preview.agreementId, receipt.output);
    assert_eq!(
        created.conditionIds,
        vec![preview.paymentConditionId, preview.serviceConditionId]
    );
    assert_eq!(preview.fee, U256::from(200u64)); // 1% of 20,005, rounded down
    assert_eq!(preview.total, U256::from(20_205u64));
    assert_eq!(preview.serviceTimeout, OFFER_MAX_TIMEOUT);
    let terms = receipt.expect_event::<ServiceTemplate::AgreementTerms>();
    assert_eq!(terms.fee, preview.fee);
    assert_eq!(terms.serviceTimeout, preview.serviceTimeout);
    assert_eq!(terms.checksum, offer.offer.checksum);
}

#[test]
fn the_fee_in_force_at_creation_holds_for_the_whole_agreement() {
    let mut world = World::with_fee();
    let deal = world.paid_deal(Service::Access);
    assert_eq!(deal.fee, U256::from(10u64)); // 1% of 1,000
    // Created (not yet paid) at 1%: the later raise does not apply to its payment either.
    let (consumer, provider, token) = (world.consumer, world.provider, world.token);
    let offer = signed(&mut world, Service::Access, token, &[(provider, 1_000)]);
    let (unpaid, _) = world
        .create(Service::Access, consumer, &offer)
        .expect("create");
    assert_eq!(unpaid.fee, U256::from(10u64));

    let fee_receiver = world.fee_receiver;
    world
        .set_network_fee(fee_receiver, 1_000)
        .expect("raise fee");
    let before = world.balance(token, consumer);
    world.lock(&unpaid, consumer, U256::ZERO).expect("lock");
    assert_eq!(
        world.balance(token, consumer),
        before - U256::from(1_010u64)
    );

    let keeper = world.keeper;
    world.serve(&deal, keeper).expect("serve");
    let released = world.release(&deal, keeper).expect("release");
    let event = released.expect_event::<PaymentCondition::PaymentReleased>();
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
                &ComputeExecutionCondition::isExecutedCall {
                    agreementId: deal.agreement_id,
                    did: deal.did,
                    consumer: deal.consumer,
                    paymentConditionId: deal.payment_id,
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
                paymentConditionId: deal.payment_id,
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
        let released = receipt.expect_event::<PaymentCondition::PaymentReleased>();
        assert_eq!(released.agreementId, deal.agreement_id);
        assert_eq!(released.fee, deal.fee);
        // Settlement emits no store event: only the service condition is fulfilled here.
        let fulfilled = receipt
            .events::<AgreementStore::ConditionFulfilled>()
            .unwrap();
        let ids: Vec<_> = fulfilled.iter().map(|e| e.conditionId).collect();
        assert_eq!(ids, vec![deal.service_id]);
        assert_eq!(world.state(deal.service_id), state::FULFILLED);
        assert_eq!(world.state(deal.payment_id), state::RELEASED);
        assert_eq!(world.balance(token, provider), U256::from(1_000u64));

        // Settled once: neither path can release again.
        let err = world
            .serve_and_release(&deal, keeper)
            .expect_revert::<AgreementStore::ConditionNotUnfulfilled>();
        assert_eq!(
            (err.conditionId, err.state),
            (deal.service_id, state::FULFILLED)
        );
        let err = world
            .release(&deal, keeper)
            .expect_revert::<AgreementStore::ConditionNotFulfilled>();
        assert_eq!(
            (err.conditionId, err.state),
            (deal.payment_id, state::RELEASED)
        );
        assert_eq!(world.balance(token, provider), U256::from(1_000u64));
    }
}

#[test]
fn serve_and_release_is_all_or_nothing() {
    let mut world = World::new();
    let deal = world.paid_deal(Service::Access);
    let (keeper, outsider, consumer, provider, token) = (
        world.keeper,
        world.outsider,
        world.consumer,
        world.provider,
        world.token,
    );

    let err = world
        .serve_and_release(&deal, outsider)
        .expect_revert::<AccessCondition::NotAssetServer>();
    assert_eq!(err.caller, outsider);

    // Terms that do not match the payment derive a service condition that does not exist.
    let mut inflated = deal.clone();
    inflated.amounts = vec![deal.amounts[0] + U256::from(1)];
    let err = world
        .serve_and_release(&inflated, keeper)
        .expect_revert::<AgreementStore::ConditionNotFound>();
    assert_ne!(err.conditionId, deal.service_id);
    assert_eq!(world.state(deal.service_id), state::UNFULFILLED);
    assert_eq!(world.state(deal.payment_id), state::FULFILLED);

    // An unpaid agreement: the service would be fulfilled, but the release cannot settle an
    // unpaid payment, and the whole transaction reverts.
    let offer = signed(&mut world, Service::Compute, token, &[(provider, 5)]);
    let (unpaid, _) = world
        .create(Service::Compute, consumer, &offer)
        .expect("create");
    let err = world
        .serve_and_release(&unpaid, keeper)
        .expect_revert::<AgreementStore::ConditionNotFulfilled>();
    assert_eq!(
        (err.conditionId, err.state),
        (unpaid.payment_id, state::UNFULFILLED)
    );
    assert_eq!(world.state(unpaid.service_id), state::UNFULFILLED);
    assert_eq!(world.state(unpaid.payment_id), state::UNFULFILLED);
}
