//! Adversarial tokens and receivers: tokens that return nothing, take a fee on transfer, blocklist
//! accounts or call back into the protocol; ETH receivers that revert, re-enter or burn all gas.

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::sol_types::{SolCall, SolError};
use insitu_bindings::{
    BlocklistToken, FeeOnTransferToken, GasBurningReceiver, NoReturnToken, PaymentCondition,
    ReentrantReceiver, ReentrantToken, RevertingReceiver,
};
use insitu_tests::harness::{ExpectRevert, Receipt, TxError};
use insitu_tests::world::{Deal, Service, SignedOffer, World, state};

const DAY: u64 = 24 * 3600;

/// Deploys a token from `bytecode` (no constructor arguments), funds the consumer and approves
/// the payment condition.
fn bare_token(world: &mut World, bytecode: &[u8]) -> Address {
    let token = world
        .chain
        .deploy_bare(world.governor, bytecode)
        .expect("deploy token");
    fund_consumer(world, token);
    token
}

fn fund_consumer(world: &mut World, token: Address) {
    let consumer = world.consumer;
    world.mint(token, consumer, U256::from(1_000_000u64));
    world.approve(token, consumer, world.suite.payment, U256::MAX);
}

/// The keeper's signed access offer on the world's asset paying `split` in `token`.
fn offer_in(world: &mut World, token: Address, split: &[(Address, u64)]) -> SignedOffer {
    let did = world.did;
    let offer = world.offer(did, token, split);
    world.sign_offer(Service::Access, offer)
}

/// The consumer buys access paying `split` in `token` (ETH: sends the price; the world has no fee).
fn buy_in(
    world: &mut World,
    token: Address,
    split: &[(Address, u64)],
) -> Result<(Deal, Receipt<B256>), TxError> {
    let signed = offer_in(world, token, split);
    let consumer = world.consumer;
    let value = if token == Address::ZERO {
        U256::from(split.iter().map(|(_, a)| a).sum::<u64>())
    } else {
        U256::ZERO
    };
    world.buy(Service::Access, consumer, &signed, value)
}

fn deal_in(world: &mut World, token: Address, split: &[(Address, u64)]) -> Deal {
    buy_in(world, token, split).expect("create and pay").0
}

#[test]
fn tokens_that_return_nothing_work_end_to_end() {
    let mut world = World::new();
    let token = bare_token(&mut world, &NoReturnToken::BYTECODE);
    let (keeper, provider, consumer, outsider) =
        (world.keeper, world.provider, world.consumer, world.outsider);

    let deal = deal_in(&mut world, token, &[(provider, 700)]);
    world.serve(&deal, keeper).expect("serve");
    world.release(&deal, keeper).expect("release");
    assert_eq!(world.balance(token, provider), U256::from(700u64));

    let refunded = deal_in(&mut world, token, &[(provider, 300)]);
    world.chain.warp(3 * DAY);
    world.abort_service(&refunded, outsider).expect("abort");
    world.refund(&refunded, outsider).expect("refund");
    assert_eq!(
        world.balance(token, consumer),
        U256::from(1_000_000u64 - 700)
    );
    assert_eq!(world.balance(token, world.suite.payment), U256::ZERO);
}

#[test]
fn fee_on_transfer_tokens_are_refused() {
    let mut world = World::new();
    let token = world
        .chain
        .deploy(
            world.governor,
            &FeeOnTransferToken::BYTECODE,
            &FeeOnTransferToken::constructorCall {
                feeBps_: U256::from(100),
            },
        )
        .expect("deploy");
    fund_consumer(&mut world, token);
    let (consumer, provider) = (world.consumer, world.provider);
    let err = buy_in(&mut world, token, &[(provider, 1_000)])
        .expect_revert::<PaymentCondition::TransferAmountMismatch>();
    assert_eq!(err.expected, U256::from(1_000));
    assert_eq!(err.received, U256::from(990));
    assert_eq!(world.balance(token, consumer), U256::from(1_000_000u64));
    assert_eq!(world.balance(token, world.suite.payment), U256::ZERO);
}

#[test]
fn a_blocklisted_receiver_is_credited_and_does_not_block_the_others() {
    let mut world = World::new();
    let token = bare_token(&mut world, &BlocklistToken::BYTECODE);
    let (keeper, provider, co_provider, governor) = (
        world.keeper,
        world.provider,
        world.co_provider,
        world.governor,
    );
    let deal = deal_in(&mut world, token, &[(provider, 600), (co_provider, 400)]);
    world.serve(&deal, keeper).expect("serve");
    world
        .chain
        .transact(
            governor,
            token,
            &BlocklistToken::setBlockedCall {
                account: provider,
                isBlocked: true,
            },
        )
        .expect("blocklist provider");

    let released = world
        .release(&deal, keeper)
        .expect("release despite a blocked receiver");
    let credited = released.expect_event::<PaymentCondition::PaymentCredited>();
    assert_eq!(credited.agreementId, deal.agreement_id);
    assert_eq!(credited.account, provider);
    assert_eq!(credited.amount, U256::from(600u64));
    assert_eq!(world.balance(token, co_provider), U256::from(400u64));
    assert_eq!(world.balance(token, provider), U256::ZERO);
    assert_eq!(world.credit(token, provider), U256::from(600u64));
    assert_eq!(world.state(deal.payment_id), state::RELEASED);

    // Withdrawing to itself still fails (blocked), and changes nothing; to another address works.
    let escrow = world.suite.payment;
    world
        .chain
        .transact(
            provider,
            escrow,
            &PaymentCondition::withdrawCall {
                token,
                to: provider,
            },
        )
        .expect_revert::<BlocklistToken::Blocked>();
    assert_eq!(world.credit(token, provider), U256::from(600u64));
    let cold_wallet = world.chain.account_named("cold_wallet");
    let receipt = world
        .chain
        .transact(
            provider,
            escrow,
            &PaymentCondition::withdrawCall {
                token,
                to: cold_wallet,
            },
        )
        .expect("withdraw elsewhere");
    let event = receipt.expect_event::<PaymentCondition::CreditWithdrawn>();
    assert_eq!(
        (event.account, event.to, event.amount),
        (provider, cold_wallet, U256::from(600u64))
    );
    assert_eq!(world.balance(token, cold_wallet), U256::from(600u64));
    assert_eq!(world.credit(token, provider), U256::ZERO);
    let total_credits = world
        .chain
        .call(escrow, &PaymentCondition::totalCreditsCall { token })
        .expect("totalCredits");
    assert_eq!(total_credits, U256::ZERO);
    world
        .chain
        .transact(
            provider,
            escrow,
            &PaymentCondition::withdrawCall {
                token,
                to: cold_wallet,
            },
        )
        .expect_revert::<PaymentCondition::NothingToWithdraw>();
}

#[test]
fn a_blocklisted_consumer_is_refunded_by_credit() {
    let mut world = World::new();
    let token = bare_token(&mut world, &BlocklistToken::BYTECODE);
    let (consumer, provider, outsider, governor) = (
        world.consumer,
        world.provider,
        world.outsider,
        world.governor,
    );
    let deal = deal_in(&mut world, token, &[(provider, 250)]);
    world
        .chain
        .transact(
            governor,
            token,
            &BlocklistToken::setBlockedCall {
                account: consumer,
                isBlocked: true,
            },
        )
        .expect("blocklist consumer");
    world.chain.warp(3 * DAY);
    world.abort_service(&deal, outsider).expect("abort");
    let refunded = world.refund(&deal, outsider).expect("refund");
    let credited = refunded.expect_event::<PaymentCondition::PaymentCredited>();
    assert_eq!(
        (
            credited.agreementId,
            credited.account,
            credited.token,
            credited.amount
        ),
        (deal.agreement_id, consumer, token, U256::from(250u64))
    );
    let event = refunded.expect_event::<PaymentCondition::PaymentRefunded>();
    assert_eq!((event.payer, event.amount), (consumer, U256::from(250u64)));
    assert_eq!(world.credit(token, consumer), U256::from(250u64));
    assert_eq!(
        world.balance(token, world.suite.payment),
        U256::from(250u64)
    );
    assert_eq!(world.state(deal.payment_id), state::REFUNDED);
}

#[test]
fn a_blocklisted_consumer_cannot_pay() {
    let mut world = World::new();
    let token = bare_token(&mut world, &BlocklistToken::BYTECODE);
    let (consumer, provider, governor) = (world.consumer, world.provider, world.governor);
    world
        .chain
        .transact(
            governor,
            token,
            &BlocklistToken::setBlockedCall {
                account: consumer,
                isBlocked: true,
            },
        )
        .expect("blocklist consumer");
    let err =
        buy_in(&mut world, token, &[(provider, 250)]).expect_revert::<BlocklistToken::Blocked>();
    assert_eq!(err.account, consumer);
    assert_eq!(world.balance(token, consumer), U256::from(1_000_000u64));
    assert_eq!(world.balance(token, world.suite.payment), U256::ZERO);
}

#[test]
fn a_token_that_reenters_release_cannot_pay_twice() {
    let mut world = World::new();
    let token = bare_token(&mut world, &ReentrantToken::BYTECODE);
    let (keeper, provider, governor) = (world.keeper, world.provider, world.governor);
    let deal = deal_in(&mut world, token, &[(provider, 800)]);
    world.serve(&deal, keeper).expect("serve");
    let payload: Bytes = deal.release_call().abi_encode().into();
    world
        .chain
        .transact(
            governor,
            token,
            &ReentrantToken::armCall {
                target_: world.suite.payment,
                payload_: payload,
            },
        )
        .expect("arm");

    world.release(&deal, keeper).expect("outer release");
    let succeeded = world
        .chain
        .call(token, &ReentrantToken::lastCallSucceededCall {})
        .expect("lastCallSucceeded");
    assert!(!succeeded, "the re-entrant release must fail");
    let inner = world
        .chain
        .call(token, &ReentrantToken::lastCallResultCall {})
        .expect("lastCallResult");
    assert_eq!(
        &inner[..4],
        PaymentCondition::ReentrancyGuardReentrantCall::SELECTOR.as_slice()
    );
    assert_eq!(world.balance(token, provider), U256::from(800u64));
    assert_eq!(world.balance(token, world.suite.payment), U256::ZERO);
}

#[test]
fn a_token_that_reenters_the_purchase_cannot_pay_twice() {
    let mut world = World::new();
    let token = bare_token(&mut world, &ReentrantToken::BYTECODE);
    let (consumer, provider, governor) = (world.consumer, world.provider, world.governor);
    // From inside the consumer's payment, the token starts another purchase (as itself) on the
    // payment condition; the old test re-entered the template's createAgreementAndLock.
    let signed = offer_in(&mut world, token, &[(provider, 10)]);
    let inner = PaymentCondition::createAgreementAndPayCall {
        template: world.suite.access_template,
        seed: world.seed(),
        offer: signed.offer.into(),
        signature: signed.signature,
        serviceTimeout: 0,
        maxTotal: U256::MAX,
    };
    world
        .chain
        .transact(
            governor,
            token,
            &ReentrantToken::armCall {
                target_: world.suite.payment,
                payload_: inner.abi_encode().into(),
            },
        )
        .expect("arm");
    let deal = deal_in(&mut world, token, &[(provider, 500)]);
    let succeeded = world
        .chain
        .call(token, &ReentrantToken::lastCallSucceededCall {})
        .expect("lastCallSucceeded");
    assert!(!succeeded);
    let result = world
        .chain
        .call(token, &ReentrantToken::lastCallResultCall {})
        .expect("lastCallResult");
    assert_eq!(
        &result[..4],
        PaymentCondition::ReentrancyGuardReentrantCall::SELECTOR.as_slice()
    );
    assert_eq!(world.state(deal.payment_id), state::FULFILLED);
    assert_eq!(
        world.balance(token, world.suite.payment),
        U256::from(500u64)
    );
    assert_eq!(
        world.balance(token, consumer),
        U256::from(1_000_000u64 - 500)
    );
}

#[test]
fn an_eth_receiver_that_reverts_is_credited_and_withdraws_elsewhere() {
    let mut world = World::new();
    let receiver = world
        .chain
        .deploy_bare(world.governor, &RevertingReceiver::BYTECODE)
        .expect("deploy receiver");
    let (keeper, provider) = (world.keeper, world.provider);
    let deal = deal_in(
        &mut world,
        Address::ZERO,
        &[(receiver, 3_000), (provider, 2_000)],
    );
    world.serve(&deal, keeper).expect("serve");
    let provider_before = world.chain.balance(provider);
    let released = world.release(&deal, keeper).expect("release");
    let credited = released.expect_event::<PaymentCondition::PaymentCredited>();
    assert_eq!(
        (credited.account, credited.amount),
        (receiver, U256::from(3_000u64))
    );
    assert_eq!(
        world.chain.balance(provider),
        provider_before + U256::from(2_000u64)
    );
    assert_eq!(world.credit(Address::ZERO, receiver), U256::from(3_000u64));

    let payout = world.chain.account_named("payout");
    let payout_before = world.chain.balance(payout);
    let withdraw = PaymentCondition::withdrawCall {
        token: Address::ZERO,
        to: payout,
    };
    world
        .chain
        .transact(
            world.outsider,
            receiver,
            &RevertingReceiver::executeCall {
                target: world.suite.payment,
                data: withdraw.abi_encode().into(),
            },
        )
        .expect("withdraw through the receiver");
    assert_eq!(
        world.chain.balance(payout),
        payout_before + U256::from(3_000u64)
    );
    assert_eq!(world.chain.balance(world.suite.payment), U256::ZERO);
    // Withdrawing ETH to a contract that refuses it reverts and keeps the credit.
    let deal = deal_in(&mut world, Address::ZERO, &[(receiver, 1_000)]);
    world.serve(&deal, keeper).expect("serve");
    world.release(&deal, keeper).expect("release");
    let to_self = PaymentCondition::withdrawCall {
        token: Address::ZERO,
        to: receiver,
    };
    let err = world
        .chain
        .transact(
            world.outsider,
            receiver,
            &RevertingReceiver::executeCall {
                target: world.suite.payment,
                data: to_self.abi_encode().into(),
            },
        )
        .expect_revert::<PaymentCondition::EthTransferFailed>();
    assert_eq!(err.to, receiver);
    assert_eq!(world.credit(Address::ZERO, receiver), U256::from(1_000u64));
}

#[test]
fn an_eth_receiver_that_reenters_is_paid_once() {
    let mut world = World::new();
    let receiver = world
        .chain
        .deploy_bare(world.governor, &ReentrantReceiver::BYTECODE)
        .expect("deploy receiver");
    let (keeper, governor, escrow) = (world.keeper, world.governor, world.suite.payment);
    let deal = deal_in(&mut world, Address::ZERO, &[(receiver, 4_000)]);
    world.serve(&deal, keeper).expect("serve");
    let arm = |payload: Bytes| ReentrantReceiver::armCall {
        target_: escrow,
        payload_: payload,
    };
    world
        .chain
        .transact(
            governor,
            receiver,
            &arm(deal.release_call().abi_encode().into()),
        )
        .expect("arm");

    // Pushed with a 50,000 gas stipend, the re-entering receive() runs out of gas: the push fails
    // and the receiver is credited instead. The escrow is settled once.
    let released = world.release(&deal, keeper).expect("release");
    assert!(released.has_event::<PaymentCondition::PaymentCredited>());
    assert_eq!(world.state(deal.payment_id), state::RELEASED);
    assert_eq!(world.credit(Address::ZERO, receiver), U256::from(4_000u64));
    assert_eq!(world.chain.balance(receiver), U256::ZERO);

    // A withdrawal forwards all gas: the receiver re-enters withdraw, which the guard refuses.
    let withdraw = PaymentCondition::withdrawCall {
        token: Address::ZERO,
        to: receiver,
    };
    world
        .chain
        .transact(governor, receiver, &arm(withdraw.abi_encode().into()))
        .expect("re-arm");
    world
        .chain
        .transact(
            world.outsider,
            receiver,
            &ReentrantReceiver::executeCall {
                to: escrow,
                data: withdraw.abi_encode().into(),
            },
        )
        .expect("withdraw");
    let received = world
        .chain
        .call(receiver, &ReentrantReceiver::receivedCall {})
        .expect("received");
    assert_eq!(received, U256::from(1));
    let succeeded = world
        .chain
        .call(receiver, &ReentrantReceiver::lastCallSucceededCall {})
        .expect("lastCallSucceeded");
    assert!(!succeeded, "the re-entrant withdrawal must fail");
    assert_eq!(world.chain.balance(receiver), U256::from(4_000u64));
    assert_eq!(world.credit(Address::ZERO, receiver), U256::ZERO);
    assert_eq!(world.chain.balance(escrow), U256::ZERO);
}

#[test]
fn an_eth_receiver_that_burns_all_gas_is_credited_without_stalling_release() {
    let mut world = World::new();
    let receiver = world
        .chain
        .deploy_bare(world.governor, &GasBurningReceiver::BYTECODE)
        .expect("deploy receiver");
    let (keeper, provider) = (world.keeper, world.provider);
    let deal = deal_in(&mut world, Address::ZERO, &[(receiver, 10), (provider, 20)]);
    world.serve(&deal, keeper).expect("serve");
    let released = world.release(&deal, keeper).expect("release");
    assert_eq!(world.credit(Address::ZERO, receiver), U256::from(10u64));
    assert_eq!(world.chain.balance(receiver), U256::ZERO);
    // The receiver gets a bounded stipend, so the release stays cheap whatever it does.
    let stipend = world
        .chain
        .call(world.suite.payment, &PaymentCondition::ETH_PUSH_GASCall {})
        .expect("stipend");
    assert_eq!(stipend, U256::from(50_000u64));
    assert!(
        released.gas_used < 200_000,
        "gas used {}",
        released.gas_used
    );
}
