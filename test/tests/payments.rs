//! The lock payment and escrow conditions on their own: validation of payment terms, ETH value
//! checks, the network fee and its governance, fee withdrawal, credits and their withdrawal, and
//! the entry points reserved to templates and to the lock condition.

use alloy::primitives::{Address, B256, U256};
use insitu_bindings::{EscrowPaymentCondition, LockPaymentCondition, ServiceTemplate};
use insitu_tests::harness::ExpectRevert;
use insitu_tests::world::{Service, World, state};

mod common;

fn terms_of(token: Address, receivers: Vec<Address>, amounts: Vec<u64>) -> ServiceTemplate::Terms {
    ServiceTemplate::Terms {
        token,
        receivers,
        amounts: amounts.into_iter().map(U256::from).collect(),
        serviceTimeout: 0,
    }
}

#[test]
fn malformed_payment_terms_are_refused_before_anything_moves() {
    let mut world = World::new();
    let (consumer, did, token, p) = (world.consumer, world.did, world.token, world.provider);
    let before = world.balance(token, consumer);

    world
        .create_and_lock(
            Service::Access,
            consumer,
            did,
            terms_of(token, vec![], vec![]),
            U256::ZERO,
        )
        .expect_revert::<LockPaymentCondition::NoReceivers>();
    let err = world
        .create_and_lock(
            Service::Access,
            consumer,
            did,
            terms_of(token, vec![p, p], vec![1]),
            U256::ZERO,
        )
        .expect_revert::<LockPaymentCondition::LengthMismatch>();
    assert_eq!((err.receivers, err.amounts), (U256::from(2), U256::from(1)));
    let err = world
        .create_and_lock(
            Service::Access,
            consumer,
            did,
            terms_of(token, vec![p, Address::ZERO], vec![1, 1]),
            U256::ZERO,
        )
        .expect_revert::<LockPaymentCondition::ZeroReceiver>();
    assert_eq!(err.index, U256::from(1));
    let err = world
        .create_and_lock(
            Service::Compute,
            consumer,
            did,
            terms_of(token, vec![p, p], vec![5, 0]),
            U256::ZERO,
        )
        .expect_revert::<LockPaymentCondition::ZeroAmount>();
    assert_eq!(err.index, U256::from(1));
    let err = world
        .create_and_lock(
            Service::Access,
            consumer,
            did,
            terms_of(token, vec![p; 17], vec![1; 17]),
            U256::ZERO,
        )
        .expect_revert::<LockPaymentCondition::TooManyReceivers>();
    assert_eq!(err.count, U256::from(17));
    // Sixteen receivers is the most, and works.
    world
        .create_and_lock(
            Service::Access,
            consumer,
            did,
            terms_of(token, vec![p; 16], vec![1; 16]),
            U256::ZERO,
        )
        .expect("sixteen receivers");
    assert_eq!(world.balance(token, consumer), before - U256::from(16));
}

#[test]
fn eth_payments_must_send_exactly_the_total() {
    let mut world = World::with_fee();
    let (consumer, did, p) = (world.consumer, world.did, world.provider);
    let eth_terms = terms_of(Address::ZERO, vec![p], vec![1_000]);
    for sent in [0u64, 1_009, 1_011, 2_020] {
        let err = world
            .create_and_lock(
                Service::Access,
                consumer,
                did,
                eth_terms.clone(),
                U256::from(sent),
            )
            .expect_revert::<LockPaymentCondition::IncorrectValue>();
        assert_eq!(err.expected, U256::from(1_010));
        assert_eq!(err.sent, U256::from(sent));
    }
    // ETH sent along with an ERC20 payment is refused, not kept.
    let token_terms = terms_of(world.token, vec![p], vec![1_000]);
    let err = world
        .create_and_lock(Service::Access, consumer, did, token_terms, U256::from(1))
        .expect_revert::<LockPaymentCondition::IncorrectValue>();
    assert_eq!((err.expected, err.sent), (U256::ZERO, U256::from(1)));
    // createAgreement is not payable at all.
    let call = ServiceTemplate::createAgreementCall {
        seed: B256::repeat_byte(1),
        did,
        terms: eth_terms,
    };
    let template = world.suite.access_template;
    world
        .chain
        .transact_value(consumer, template, &call, U256::from(1))
        .expect_failure();
    assert_eq!(world.chain.balance(world.suite.escrow_payment), U256::ZERO);
}

#[test]
fn lock_for_is_reserved_to_approved_templates() {
    let mut world = World::new();
    let (consumer, outsider) = (world.consumer, world.outsider);
    let (deal, _) = world
        .create(
            Service::Access,
            consumer,
            world.did,
            World::terms(world.token, &[(world.provider, 50)]),
        )
        .expect("create");
    // An outsider cannot spend the consumer's approval by locking "for" it.
    let call = LockPaymentCondition::lockForCall {
        agreementId: deal.agreement_id,
        did: deal.did,
        escrow: world.suite.escrow_payment,
        token: deal.token,
        payer: consumer,
        receivers: deal.receivers.clone(),
        amounts: deal.amounts.clone(),
        fee: deal.fee,
    };
    let err = world
        .chain
        .transact(outsider, world.suite.lock_payment, &call)
        .expect_revert::<LockPaymentCondition::NotApprovedTemplate>();
    assert_eq!(err.caller, outsider);
    assert_eq!(world.state(deal.lock_id), state::UNFULFILLED);

    let zero_escrow = LockPaymentCondition::lockCall {
        agreementId: deal.agreement_id,
        did: deal.did,
        escrow: Address::ZERO,
        token: deal.token,
        receivers: deal.receivers.clone(),
        amounts: deal.amounts.clone(),
        fee: deal.fee,
    };
    world
        .chain
        .transact(consumer, world.suite.lock_payment, &zero_escrow)
        .expect_revert::<LockPaymentCondition::InvalidEscrow>();
}

#[test]
fn a_payment_without_allowance_or_balance_reverts_whole() {
    let mut world = World::new();
    let stranger = world.chain.account_named("stranger");
    let terms = World::terms(world.token, &[(world.provider, 100)]);
    let did = world.did;
    // No approval.
    world.mint(world.token, stranger, U256::from(100));
    world
        .create_and_lock(Service::Access, stranger, did, terms.clone(), U256::ZERO)
        .expect_revert::<insitu_bindings::MockERC20::ERC20InsufficientAllowance>();
    // Approval but not enough balance.
    world.approve(world.token, stranger, world.suite.lock_payment, U256::MAX);
    let mut expensive = terms;
    expensive.amounts = vec![U256::from(101)];
    world
        .create_and_lock(Service::Access, stranger, did, expensive, U256::ZERO)
        .expect_revert::<insitu_bindings::MockERC20::ERC20InsufficientBalance>();
    assert_eq!(world.balance(world.token, stranger), U256::from(100));
}

#[test]
fn the_network_fee_is_governed_and_capped() {
    let mut world = World::new();
    let (governor, outsider, fee_receiver) = (world.governor, world.outsider, world.fee_receiver);
    let lock = world.suite.lock_payment;
    let set =
        |receiver: Address, bps: u16| LockPaymentCondition::setNetworkFeeCall { receiver, bps };

    let err = world
        .chain
        .transact(outsider, lock, &set(outsider, 100))
        .expect_revert::<LockPaymentCondition::NotGovernor>();
    assert_eq!(err.caller, outsider);
    let err = world
        .chain
        .transact(governor, lock, &set(fee_receiver, 1_001))
        .expect_revert::<LockPaymentCondition::FeeTooHigh>();
    assert_eq!((err.bps, err.max), (1_001, 1_000));
    world
        .chain
        .transact(governor, lock, &set(Address::ZERO, 1))
        .expect_revert::<LockPaymentCondition::InvalidFeeReceiver>();

    let receipt = world
        .chain
        .transact(governor, lock, &set(fee_receiver, 1_000))
        .expect("max fee");
    let event = receipt.expect_event::<LockPaymentCondition::NetworkFeeSet>();
    assert_eq!((event.receiver, event.bps), (fee_receiver, 1_000));
    let fee = world
        .chain
        .call(lock, &LockPaymentCondition::networkFeeCall {})
        .expect("networkFee");
    assert_eq!((fee.receiver, fee.bps), (fee_receiver, 1_000));

    // Rounded down, never up: 10% of 9 is 0, of 19 is 1.
    for (price, expected) in [(9u64, 0u64), (10, 1), (19, 1), (1_000_000, 100_000)] {
        let quoted = world
            .chain
            .call(
                lock,
                &LockPaymentCondition::quoteFeeCall {
                    amount: U256::from(price),
                },
            )
            .expect("quote");
        assert_eq!(quoted, U256::from(expected), "fee on {price}");
    }
    // Zero fee with zero receiver switches the fee off.
    world
        .chain
        .transact(governor, lock, &set(Address::ZERO, 0))
        .expect("fee off");
    let deal = world.paid_deal(Service::Access);
    assert_eq!(deal.fee, U256::ZERO);
}

#[test]
fn accrued_fees_are_withdrawn_by_the_fee_receiver_only() {
    let mut world = World::with_fee();
    let (keeper, outsider, fee_receiver, governor) = (
        world.keeper,
        world.outsider,
        world.fee_receiver,
        world.governor,
    );
    let token = world.token;
    let escrow = world.suite.escrow_payment;
    let withdraw =
        |token: Address, to: Address| EscrowPaymentCondition::withdrawFeesCall { token, to };

    world
        .chain
        .transact(fee_receiver, escrow, &withdraw(token, fee_receiver))
        .expect_revert::<EscrowPaymentCondition::NoFeesAccrued>();
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

    let err = world
        .chain
        .transact(outsider, escrow, &withdraw(token, outsider))
        .expect_revert::<EscrowPaymentCondition::NotFeeReceiver>();
    assert_eq!(err.caller, outsider);
    world
        .chain
        .transact(fee_receiver, escrow, &withdraw(token, Address::ZERO))
        .expect_revert::<EscrowPaymentCondition::InvalidRecipient>();

    let treasury = world.chain.account_named("treasury");
    let receipt = world
        .chain
        .transact(fee_receiver, escrow, &withdraw(token, treasury))
        .expect("withdraw fees");
    let event = receipt.expect_event::<EscrowPaymentCondition::FeesWithdrawn>();
    assert_eq!(event.amount, U256::from(30u64));
    assert_eq!(event.to, treasury);
    assert_eq!(world.balance(token, treasury), U256::from(30u64));
    assert_eq!(world.balance(token, escrow), U256::ZERO);

    // Governance moves the fee receiver: the old one can no longer withdraw.
    world
        .chain
        .transact(
            governor,
            world.suite.lock_payment,
            &LockPaymentCondition::setNetworkFeeCall {
                receiver: treasury,
                bps: 100,
            },
        )
        .expect("new receiver");
    let deal = world.paid_deal(Service::Access);
    world.serve(&deal, keeper).expect("serve");
    world.release(&deal, keeper).expect("release");
    world
        .chain
        .transact(fee_receiver, escrow, &withdraw(token, fee_receiver))
        .expect_revert::<EscrowPaymentCondition::NotFeeReceiver>();
    world
        .chain
        .transact(treasury, escrow, &withdraw(token, treasury))
        .expect("treasury withdraws");
    assert_eq!(world.balance(token, treasury), U256::from(40u64));
}

#[test]
fn the_escrow_takes_eth_from_the_lock_condition_only() {
    let mut world = World::new();
    let (outsider, escrow) = (world.outsider, world.suite.escrow_payment);
    let err = world
        .chain
        .send_eth(outsider, escrow, U256::from(1))
        .expect_revert::<EscrowPaymentCondition::UnexpectedEth>();
    assert_eq!(err.sender, outsider);
    assert_eq!(world.chain.balance(escrow), U256::ZERO);
}

#[test]
fn release_needs_at_least_one_release_condition() {
    let mut world = World::new();
    let deal = world.paid_deal(Service::Access);
    let call = EscrowPaymentCondition::releaseCall {
        agreementId: deal.agreement_id,
        did: deal.did,
        token: deal.token,
        payer: deal.consumer,
        receivers: deal.receivers.clone(),
        amounts: deal.amounts.clone(),
        fee: deal.fee,
        releaseConditions: vec![],
    };
    world
        .chain
        .transact(world.outsider, world.suite.escrow_payment, &call)
        .expect_revert::<EscrowPaymentCondition::NoReleaseConditions>();
    // Naming the lock itself (Fulfilled) as release condition addresses no escrow condition.
    let mut sneaky = call;
    sneaky.releaseConditions = vec![deal.lock_id];
    world
        .chain
        .transact(world.outsider, world.suite.escrow_payment, &sneaky)
        .expect_revert::<insitu_bindings::AgreementStore::ConditionNotFound>();
    assert_eq!(world.state(deal.escrow_id), state::UNFULFILLED);
}

#[test]
fn credits_cannot_be_withdrawn_twice_or_to_nowhere() {
    let mut world = World::new();
    let (outsider, escrow, token) = (world.outsider, world.suite.escrow_payment, world.token);
    let err = world
        .chain
        .transact(
            outsider,
            escrow,
            &EscrowPaymentCondition::withdrawCall {
                token,
                to: outsider,
            },
        )
        .expect_revert::<EscrowPaymentCondition::NothingToWithdraw>();
    assert_eq!((err.account, err.token), (outsider, token));
    world
        .chain
        .transact(
            outsider,
            escrow,
            &EscrowPaymentCondition::withdrawCall {
                token,
                to: Address::ZERO,
            },
        )
        .expect_revert::<EscrowPaymentCondition::InvalidRecipient>();
}

#[test]
fn value_hashes_agree_between_contracts_and_the_template() {
    let mut world = World::with_fee();
    let deal = world.paid_deal(Service::Access);
    let lock_hash = world
        .chain
        .call(
            world.suite.lock_payment,
            &LockPaymentCondition::hashValuesCall {
                did: deal.did,
                escrow: world.suite.escrow_payment,
                token: deal.token,
                payer: deal.consumer,
                receivers: deal.receivers.clone(),
                amounts: deal.amounts.clone(),
                fee: deal.fee,
            },
        )
        .expect("lock hash");
    let lock_id = world
        .chain
        .call(
            world.suite.lock_payment,
            &LockPaymentCondition::conditionIdOfCall {
                agreementId: deal.agreement_id,
                valueHash: lock_hash,
            },
        )
        .expect("lock id");
    assert_eq!(lock_id, deal.lock_id);
    let escrow_hash = world
        .chain
        .call(
            world.suite.escrow_payment,
            &EscrowPaymentCondition::hashValuesCall {
                lockConditionId: deal.lock_id,
                releaseConditions: vec![deal.service_id],
            },
        )
        .expect("escrow hash");
    let escrow_id = world
        .chain
        .call(
            world.suite.escrow_payment,
            &EscrowPaymentCondition::conditionIdOfCall {
                agreementId: deal.agreement_id,
                valueHash: escrow_hash,
            },
        )
        .expect("escrow id");
    assert_eq!(escrow_id, deal.escrow_id);
    let has_access = world
        .chain
        .call(
            world.suite.access,
            &insitu_bindings::AccessCondition::hasAccessCall {
                agreementId: deal.agreement_id,
                did: deal.did,
                consumer: deal.consumer,
                lockConditionId: deal.lock_id,
            },
        )
        .expect("hasAccess");
    assert!(!has_access);
    let keeper = world.keeper;
    world.serve(&deal, keeper).expect("serve");
    let has_access = world
        .chain
        .call(
            world.suite.access,
            &insitu_bindings::AccessCondition::hasAccessCall {
                agreementId: deal.agreement_id,
                did: deal.did,
                consumer: deal.consumer,
                lockConditionId: deal.lock_id,
            },
        )
        .expect("hasAccess");
    assert!(has_access);
}

#[test]
fn an_escrow_condition_never_times_out() {
    let mut world = World::new();
    let deal = world.paid_deal(Service::Access);
    world.chain.warp(1_000 * 24 * 3600);
    let call = EscrowPaymentCondition::abortTimedOutCall {
        conditionId: deal.escrow_id,
    };
    let err = world
        .chain
        .transact(world.outsider, world.suite.escrow_payment, &call)
        .expect_revert::<EscrowPaymentCondition::EscrowCannotTimeOut>();
    assert_eq!(err.conditionId, deal.escrow_id);
    assert_eq!(world.state(deal.escrow_id), state::UNFULFILLED);
}

#[test]
fn a_lock_whose_escrow_refuses_eth_reverts_whole() {
    // Approved templates always bind the escrow contract, which accepts ETH from the lock. A
    // lock bound (through a test template) to a contract that refuses ETH must revert, and keep
    // nothing.
    let mut world = World::new();
    let passthrough = common::approved_passthrough(&mut world);
    let refuser = world
        .chain
        .deploy_bare(
            world.governor,
            &insitu_bindings::RevertingReceiver::BYTECODE,
        )
        .expect("deploy");
    let (consumer, did, provider) = (world.consumer, world.did, world.provider);
    let amounts = vec![U256::from(1_000u64)];
    let value_hash = world
        .chain
        .call(
            world.suite.lock_payment,
            &LockPaymentCondition::hashValuesCall {
                did,
                escrow: refuser,
                token: Address::ZERO,
                payer: consumer,
                receivers: vec![provider],
                amounts: amounts.clone(),
                fee: U256::ZERO,
            },
        )
        .expect("hash");
    let seed = B256::repeat_byte(0x77);
    let specs = vec![common::spec(world.suite.lock_payment, value_hash, 0, 3_600)];
    let agreement_id = common::create(&mut world, passthrough, consumer, seed, did, specs)
        .expect("create")
        .output;
    let before = world.chain.balance(consumer);
    let call = LockPaymentCondition::lockCall {
        agreementId: agreement_id,
        did,
        escrow: refuser,
        token: Address::ZERO,
        receivers: vec![provider],
        amounts,
        fee: U256::ZERO,
    };
    world
        .chain
        .transact_value(
            consumer,
            world.suite.lock_payment,
            &call,
            U256::from(1_000u64),
        )
        .expect_revert::<LockPaymentCondition::EthForwardFailed>();
    assert_eq!(world.chain.balance(consumer), before);
    assert_eq!(world.chain.balance(refuser), U256::ZERO);
    let lock_id = common::condition_id(agreement_id, world.suite.lock_payment, value_hash);
    assert_eq!(world.state(lock_id), state::UNFULFILLED);
}
