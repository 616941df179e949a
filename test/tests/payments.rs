//! The payment condition on its own: validation of payment terms, ETH value checks, the network
//! fee and its governance, fee withdrawal, credits and their withdrawal, the entry point reserved
//! to the payment condition, value hashes and ids, and time outs.

use alloy::primitives::{Address, B256, U256};
use alloy::sol_types::SolCall;
use insitu_bindings::{
    AccessCondition, AgreementStore, MockERC20, PaymentCondition, ServiceTemplate,
};
use insitu_tests::harness::{ExpectRevert, Receipt, TxError};
use insitu_tests::world::{Deal, Service, SignedOffer, World, state};

/// The keeper's signed offer on the world's asset for `service`, paying `amounts[i]` to
/// `receivers[i]` in `token` (lengths may differ: the offer is signed as given).
fn offer_of(
    world: &mut World,
    service: Service,
    token: Address,
    receivers: Vec<Address>,
    amounts: Vec<u64>,
) -> SignedOffer {
    let did = world.did;
    let mut offer = world.offer(did, token, &[]);
    offer.receivers = receivers;
    offer.amounts = amounts.into_iter().map(U256::from).collect();
    world.sign_offer(service, offer)
}

/// `consumer` buys `signed` (one transaction) with `seed`, sending `value`.
fn buy_seeded(
    world: &mut World,
    service: Service,
    consumer: Address,
    signed: &SignedOffer,
    seed: B256,
    value: U256,
) -> Result<(Deal, Receipt<B256>), TxError> {
    let call = PaymentCondition::createAgreementAndPayCall {
        template: world.template(service),
        seed,
        offer: signed.offer.clone().into(),
        signature: signed.signature.clone(),
        serviceTimeout: 0,
        maxTotal: U256::MAX,
    };
    let receipt = world.transact(consumer, world.suite.payment, &call, value)?;
    let deal = world.deal_from(service, &receipt);
    Ok((deal, receipt))
}

/// The payment condition id `consumer` would get by buying `signed` with `seed` now.
fn previewed_payment_id(
    world: &mut World,
    service: Service,
    consumer: Address,
    signed: &SignedOffer,
    seed: B256,
) -> B256 {
    world
        .chain
        .call(
            world.template(service),
            &ServiceTemplate::previewAgreementCall {
                seed,
                consumer,
                offer: signed.offer.clone(),
                serviceTimeout: 0,
            },
        )
        .expect("preview")
        .paymentConditionId
}

#[test]
fn malformed_payment_terms_are_refused_before_anything_moves() {
    let mut world = World::new();
    let (consumer, token, p) = (world.consumer, world.token, world.provider);
    let payment = world.suite.payment;
    let before = world.balance(token, consumer);

    let offer = offer_of(&mut world, Service::Access, token, vec![], vec![]);
    world
        .buy(Service::Access, consumer, &offer, U256::ZERO)
        .expect_revert::<PaymentCondition::NoReceivers>();
    let offer = offer_of(&mut world, Service::Access, token, vec![p, p], vec![1]);
    let err = world
        .buy(Service::Access, consumer, &offer, U256::ZERO)
        .expect_revert::<PaymentCondition::LengthMismatch>();
    assert_eq!((err.receivers, err.amounts), (U256::from(2), U256::from(1)));
    let offer = offer_of(
        &mut world,
        Service::Access,
        token,
        vec![p, Address::ZERO],
        vec![1, 1],
    );
    let err = world
        .buy(Service::Access, consumer, &offer, U256::ZERO)
        .expect_revert::<PaymentCondition::ZeroReceiver>();
    assert_eq!(err.index, U256::from(1));
    let offer = offer_of(&mut world, Service::Compute, token, vec![p, p], vec![5, 0]);
    let err = world
        .buy(Service::Compute, consumer, &offer, U256::ZERO)
        .expect_revert::<PaymentCondition::ZeroAmount>();
    assert_eq!(err.index, U256::from(1));
    let offer = offer_of(&mut world, Service::Access, token, vec![p; 17], vec![1; 17]);
    let err = world
        .buy(Service::Access, consumer, &offer, U256::ZERO)
        .expect_revert::<PaymentCondition::TooManyReceivers>();
    assert_eq!(err.count, U256::from(17));
    // The two-step creation validates the same way.
    let err = world
        .create(Service::Access, consumer, &offer)
        .expect_revert::<PaymentCondition::TooManyReceivers>();
    assert_eq!(err.count, U256::from(17));
    assert_eq!(world.balance(token, consumer), before);
    assert_eq!(world.balance(token, payment), U256::ZERO);

    // Sixteen receivers is the most, and works.
    let offer = offer_of(&mut world, Service::Access, token, vec![p; 16], vec![1; 16]);
    world
        .buy(Service::Access, consumer, &offer, U256::ZERO)
        .expect("sixteen receivers");
    assert_eq!(world.balance(token, consumer), before - U256::from(16));
}

#[test]
fn eth_payments_must_send_exactly_the_total() {
    let mut world = World::with_fee();
    let (consumer, p) = (world.consumer, world.provider);
    let payment = world.suite.payment;
    let eth_offer = offer_of(
        &mut world,
        Service::Access,
        Address::ZERO,
        vec![p],
        vec![1_000],
    );
    let before = world.chain.balance(consumer);
    for sent in [0u64, 1_009, 1_011, 2_020] {
        let seed = world.seed();
        let would_be =
            previewed_payment_id(&mut world, Service::Access, consumer, &eth_offer, seed);
        let err = buy_seeded(
            &mut world,
            Service::Access,
            consumer,
            &eth_offer,
            seed,
            U256::from(sent),
        )
        .expect_revert::<PaymentCondition::IncorrectValue>();
        assert_eq!(err.expected, U256::from(1_010));
        assert_eq!(err.sent, U256::from(sent));
        assert_eq!(world.state(would_be), state::UNINITIALIZED);
    }
    assert_eq!(world.chain.balance(consumer), before);
    // ETH sent along with an ERC20 payment is refused, not kept.
    let token = world.token;
    let token_offer = offer_of(&mut world, Service::Access, token, vec![p], vec![1_000]);
    let err = world
        .buy(Service::Access, consumer, &token_offer, U256::from(1))
        .expect_revert::<PaymentCondition::IncorrectValue>();
    assert_eq!((err.expected, err.sent), (U256::ZERO, U256::from(1)));
    // The two-step lock checks the same.
    let (deal, _) = world
        .create(Service::Access, consumer, &eth_offer)
        .expect("create");
    let err = world
        .lock(&deal, consumer, U256::from(1_000))
        .expect_revert::<PaymentCondition::IncorrectValue>();
    assert_eq!(
        (err.expected, err.sent),
        (U256::from(1_010), U256::from(1_000))
    );
    assert_eq!(world.state(deal.payment_id), state::UNFULFILLED);
    // createAgreement is not payable at all.
    let call = ServiceTemplate::createAgreementCall {
        seed: B256::repeat_byte(1),
        offer: eth_offer.offer.clone(),
        signature: eth_offer.signature.clone(),
        serviceTimeout: 0,
        maxTotal: U256::MAX,
    };
    let template = world.suite.access_template;
    world
        .chain
        .transact_value(consumer, template, &call, U256::from(1))
        .expect_failure();
    assert_eq!(world.chain.balance(payment), U256::ZERO);
    assert_eq!(world.chain.balance(template), U256::ZERO);
}

#[test]
fn create_agreement_for_is_reserved_to_the_payment_condition() {
    let mut world = World::new();
    let (consumer, outsider, provider, token) =
        (world.consumer, world.outsider, world.provider, world.token);
    let did = world.did;
    let offer = world.offer(did, token, &[(provider, 50)]);
    let signed = world.sign_offer(Service::Access, offer);
    // An outsider cannot create agreements "for" the consumer at a fee of its choosing.
    let call = ServiceTemplate::createAgreementForCall {
        consumer,
        seed: B256::repeat_byte(3),
        offer: signed.offer.clone(),
        signature: signed.signature.clone(),
        serviceTimeout: 0,
        feeBps: 0,
    };
    for template in [world.suite.access_template, world.suite.compute_template] {
        let err = world
            .chain
            .transact(outsider, template, &call)
            .expect_revert::<ServiceTemplate::NotPaymentCondition>();
        assert_eq!(err.caller, outsider);
    }

    // An outsider cannot spend the consumer's approval on the consumer's agreement either: the
    // payer is always the caller, and the outsider's payment addresses no condition.
    let (deal, _) = world
        .create(Service::Access, consumer, &signed)
        .expect("create");
    let before = world.balance(token, consumer);
    world
        .lock(&deal, outsider, U256::ZERO)
        .expect_revert::<AgreementStore::ConditionNotFound>();
    assert_eq!(world.balance(token, consumer), before);
    assert_eq!(world.state(deal.payment_id), state::UNFULFILLED);

    // A lock naming another service contract (or none) addresses no condition either.
    for service in [Address::ZERO, world.suite.compute_execution] {
        let call = PaymentCondition::lockCall {
            agreementId: deal.agreement_id,
            did: deal.did,
            service,
            payment: deal.payment(),
        };
        world
            .chain
            .transact(consumer, world.suite.payment, &call)
            .expect_revert::<AgreementStore::ConditionNotFound>();
    }
    assert_eq!(world.balance(token, consumer), before);
    assert_eq!(world.state(deal.payment_id), state::UNFULFILLED);
}

#[test]
fn a_payment_without_allowance_or_balance_reverts_whole() {
    let mut world = World::new();
    let stranger = world.chain.account_named("stranger");
    let (token, provider, payment) = (world.token, world.provider, world.suite.payment);
    let offer = offer_of(
        &mut world,
        Service::Access,
        token,
        vec![provider],
        vec![100],
    );
    // No approval.
    world.mint(token, stranger, U256::from(100));
    let seed = world.seed();
    let would_be = previewed_payment_id(&mut world, Service::Access, stranger, &offer, seed);
    let err = buy_seeded(
        &mut world,
        Service::Access,
        stranger,
        &offer,
        seed,
        U256::ZERO,
    )
    .expect_revert::<MockERC20::ERC20InsufficientAllowance>();
    assert_eq!(
        (err.spender, err.allowance, err.needed),
        (payment, U256::ZERO, U256::from(100))
    );
    assert_eq!(world.state(would_be), state::UNINITIALIZED);
    // Approval but not enough balance.
    world.approve(token, stranger, payment, U256::MAX);
    let expensive = offer_of(
        &mut world,
        Service::Access,
        token,
        vec![provider],
        vec![101],
    );
    let err = world
        .buy(Service::Access, stranger, &expensive, U256::ZERO)
        .expect_revert::<MockERC20::ERC20InsufficientBalance>();
    assert_eq!(
        (err.sender, err.balance, err.needed),
        (stranger, U256::from(100), U256::from(101))
    );
    assert_eq!(world.balance(token, stranger), U256::from(100));
    assert_eq!(world.balance(token, payment), U256::ZERO);
}

#[test]
fn the_network_fee_is_governed_and_capped() {
    let mut world = World::new();
    let (governor, outsider, fee_receiver) = (world.governor, world.outsider, world.fee_receiver);
    let payment = world.suite.payment;
    let set = |receiver: Address, bps: u16| PaymentCondition::setNetworkFeeCall { receiver, bps };

    // Neither an outsider nor the governor's own account: only the timelock holds the role.
    for caller in [outsider, governor] {
        let err = world
            .chain
            .transact(caller, payment, &set(fee_receiver, 100))
            .expect_revert::<PaymentCondition::NotGovernor>();
        assert_eq!(err.caller, caller);
    }
    let err = world
        .set_network_fee(fee_receiver, 1_001)
        .expect_revert::<PaymentCondition::FeeTooHigh>();
    assert_eq!((err.bps, err.max), (1_001, 1_000));
    world
        .set_network_fee(Address::ZERO, 1)
        .expect_revert::<PaymentCondition::InvalidFeeReceiver>();
    let fee = world
        .chain
        .call(payment, &PaymentCondition::networkFeeCall {})
        .expect("networkFee");
    assert_eq!((fee.receiver, fee.bps), (Address::ZERO, 0));

    let receipt = world
        .govern(&[(payment, set(fee_receiver, 1_000).abi_encode())])
        .expect("max fee");
    let event = receipt.expect_event::<PaymentCondition::NetworkFeeSet>();
    assert_eq!((event.receiver, event.bps), (fee_receiver, 1_000));
    let fee = world
        .chain
        .call(payment, &PaymentCondition::networkFeeCall {})
        .expect("networkFee");
    assert_eq!((fee.receiver, fee.bps), (fee_receiver, 1_000));

    // Rounded down, never up: 10% of 9 is 0, of 19 is 1.
    for (price, expected) in [(9u64, 0u64), (10, 1), (19, 1), (1_000_000, 100_000)] {
        let quoted = world
            .chain
            .call(
                payment,
                &PaymentCondition::quoteFeeCall {
                    amount: U256::from(price),
                },
            )
            .expect("quote");
        assert_eq!(quoted, U256::from(expected), "fee on {price}");
    }
    // Zero fee with zero receiver switches the fee off.
    world.set_network_fee(Address::ZERO, 0).expect("fee off");
    let deal = world.paid_deal(Service::Access);
    assert_eq!(deal.fee, U256::ZERO);
}

#[test]
fn accrued_fees_are_withdrawn_by_the_fee_receiver_only() {
    let mut world = World::with_fee();
    let (keeper, outsider, fee_receiver) = (world.keeper, world.outsider, world.fee_receiver);
    let token = world.token;
    let payment = world.suite.payment;
    let withdraw = |token: Address, to: Address| PaymentCondition::withdrawFeesCall { token, to };

    let err = world
        .chain
        .transact(fee_receiver, payment, &withdraw(token, fee_receiver))
        .expect_revert::<PaymentCondition::NoFeesAccrued>();
    assert_eq!(err.token, token);
    for _ in 0..3 {
        let deal = world.paid_deal(Service::Access);
        world.serve(&deal, keeper).expect("serve");
        world.release(&deal, keeper).expect("release");
    }
    // A refunded agreement accrues no fee.
    let refunded = world.paid_deal(Service::Access);
    world.chain.warp(3 * 24 * 3600);
    world.abort_service(&refunded, outsider).expect("abort");
    world.refund(&refunded, outsider).expect("refund");
    let accrued = world
        .chain
        .call(payment, &PaymentCondition::accruedFeesCall { token })
        .expect("accruedFees");
    assert_eq!(accrued, U256::from(30u64));

    let err = world
        .chain
        .transact(outsider, payment, &withdraw(token, outsider))
        .expect_revert::<PaymentCondition::NotFeeReceiver>();
    assert_eq!(err.caller, outsider);
    world
        .chain
        .transact(fee_receiver, payment, &withdraw(token, Address::ZERO))
        .expect_revert::<PaymentCondition::InvalidRecipient>();
    assert_eq!(world.balance(token, payment), U256::from(30u64));

    let treasury = world.chain.account_named("treasury");
    let receipt = world
        .chain
        .transact(fee_receiver, payment, &withdraw(token, treasury))
        .expect("withdraw fees");
    let event = receipt.expect_event::<PaymentCondition::FeesWithdrawn>();
    assert_eq!(
        (event.receiver, event.token, event.to, event.amount),
        (fee_receiver, token, treasury, U256::from(30u64))
    );
    assert_eq!(world.balance(token, treasury), U256::from(30u64));
    assert_eq!(world.balance(token, payment), U256::ZERO);
    world
        .chain
        .transact(fee_receiver, payment, &withdraw(token, treasury))
        .expect_revert::<PaymentCondition::NoFeesAccrued>();

    // Governance moves the fee receiver: the old one can no longer withdraw.
    world.set_network_fee(treasury, 100).expect("new receiver");
    let deal = world.paid_deal(Service::Access);
    world.serve(&deal, keeper).expect("serve");
    world.release(&deal, keeper).expect("release");
    let err = world
        .chain
        .transact(fee_receiver, payment, &withdraw(token, fee_receiver))
        .expect_revert::<PaymentCondition::NotFeeReceiver>();
    assert_eq!(err.caller, fee_receiver);
    world
        .chain
        .transact(treasury, payment, &withdraw(token, treasury))
        .expect("treasury withdraws");
    assert_eq!(world.balance(token, treasury), U256::from(40u64));
}

#[test]
fn the_payment_condition_refuses_plain_eth() {
    // The old escrow refused ETH not sent by the lock (UnexpectedEth); the merged contract has no
    // receive() nor fallback at all.
    let mut world = World::new();
    let (outsider, payment) = (world.outsider, world.suite.payment);
    let before = world.chain.balance(outsider);
    let err = world
        .chain
        .send_eth(outsider, payment, U256::from(1))
        .expect_failure();
    let revert = err.revert().expect("a revert, not a rejected transaction");
    assert!(revert.selector().is_none(), "reverts without data: {err}");
    assert_eq!(world.chain.balance(payment), U256::ZERO);
    assert_eq!(world.chain.balance(outsider), before);
}

#[test]
fn settlement_naming_another_service_contract_addresses_no_payment() {
    // Replaces "release needs at least one release condition": the releasing service is no longer
    // a list but bound into the payment's id, so naming another one reaches no payment.
    let mut world = World::new();
    let deal = world.paid_deal(Service::Access);
    let (keeper, outsider) = (world.keeper, world.outsider);
    world.serve(&deal, keeper).expect("serve");

    // Release through the compute condition: its derived service condition does not exist.
    let mut release = deal.release_call();
    release.service = world.suite.compute_execution;
    let err = world
        .chain
        .transact(outsider, world.suite.payment, &release)
        .expect_revert::<PaymentCondition::ServiceNotFulfilled>();
    assert_eq!(err.state, state::UNINITIALIZED);
    // Refund accepts a service condition that does not exist; but naming another service derives
    // another payment id, which does not exist either.
    for service in [world.suite.compute_execution, outsider, Address::ZERO] {
        let mut refund = deal.refund_call();
        refund.service = service;
        world
            .chain
            .transact(outsider, world.suite.payment, &refund)
            .expect_revert::<AgreementStore::ConditionNotFound>();
    }
    assert_eq!(world.state(deal.payment_id), state::FULFILLED);
    assert_eq!(
        world.balance(world.token, world.suite.payment),
        deal.total()
    );
}

#[test]
fn credits_cannot_be_withdrawn_twice_or_to_nowhere() {
    let mut world = World::new();
    let (outsider, payment, token) = (world.outsider, world.suite.payment, world.token);
    let err = world
        .chain
        .transact(
            outsider,
            payment,
            &PaymentCondition::withdrawCall {
                token,
                to: outsider,
            },
        )
        .expect_revert::<PaymentCondition::NothingToWithdraw>();
    assert_eq!((err.account, err.token), (outsider, token));
    world
        .chain
        .transact(
            outsider,
            payment,
            &PaymentCondition::withdrawCall {
                token,
                to: Address::ZERO,
            },
        )
        .expect_revert::<PaymentCondition::InvalidRecipient>();
}

#[test]
fn value_hashes_agree_between_contracts_and_the_template() {
    let mut world = World::with_fee();
    let deal = world.paid_deal(Service::Access);
    let payment = world.suite.payment;
    let payment_hash = world
        .chain
        .call(
            payment,
            &PaymentCondition::hashValuesCall {
                did: deal.did,
                payer: deal.consumer,
                service: world.suite.access,
                payment: deal.payment(),
            },
        )
        .expect("payment hash");
    let payment_id = world
        .chain
        .call(
            payment,
            &PaymentCondition::conditionIdOfCall {
                agreementId: deal.agreement_id,
                valueHash: payment_hash,
            },
        )
        .expect("payment id");
    assert_eq!(payment_id, deal.payment_id);
    let by_terms = world
        .chain
        .call(
            payment,
            &PaymentCondition::paymentConditionIdOfCall {
                agreementId: deal.agreement_id,
                did: deal.did,
                payer: deal.consumer,
                service: world.suite.access,
                payment: deal.payment(),
            },
        )
        .expect("paymentConditionIdOf");
    assert_eq!(by_terms, deal.payment_id);
    let service_id = world
        .chain
        .call(
            payment,
            &PaymentCondition::serviceConditionIdOfCall {
                agreementId: deal.agreement_id,
                did: deal.did,
                payer: deal.consumer,
                service: world.suite.access,
                paymentConditionId: deal.payment_id,
            },
        )
        .expect("serviceConditionIdOf");
    assert_eq!(service_id, deal.service_id);
    let access_hash = world
        .chain
        .call(
            world.suite.access,
            &AccessCondition::hashValuesCall {
                did: deal.did,
                consumer: deal.consumer,
                paymentConditionId: deal.payment_id,
            },
        )
        .expect("access hash");
    let access_id = world
        .chain
        .call(
            world.suite.access,
            &AccessCondition::conditionIdOfCall {
                agreementId: deal.agreement_id,
                valueHash: access_hash,
            },
        )
        .expect("access id");
    assert_eq!(access_id, deal.service_id);
    let has_access = |world: &mut World| {
        world
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
            .expect("hasAccess")
    };
    assert!(!has_access(&mut world));
    let keeper = world.keeper;
    world.serve(&deal, keeper).expect("serve");
    assert!(has_access(&mut world));
}

#[test]
fn a_paid_payment_never_times_out() {
    // Was "an escrow condition never times out": the payment condition times out only while
    // unpaid (see payment_gaps.rs); once Fulfilled it can no longer be aborted.
    let mut world = World::new();
    let deal = world.paid_deal(Service::Access);
    world.chain.warp(1_000 * 24 * 3600);
    let call = PaymentCondition::abortTimedOutCall {
        conditionId: deal.payment_id,
    };
    let err = world
        .chain
        .transact(world.outsider, world.suite.payment, &call)
        .expect_revert::<AgreementStore::ConditionNotTimedOut>();
    assert_eq!(err.conditionId, deal.payment_id);
    assert_eq!(world.state(deal.payment_id), state::FULFILLED);
}
