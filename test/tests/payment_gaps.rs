//! Review scenarios of the payment condition after the v2 redesign: the consumer's cap on the
//! network fee (L-4), EIP-2612 permit purchases, tokens the protocol does not support (rebasing,
//! gas-burning), protocol contracts refused as receivers, unpaid payments timing out, refunds of
//! compute agreements and to payers that refuse ETH, the gas ceiling of a release, revoked
//! templates, settlement happening once, and fee withdrawal with the fee switched off.
//!
//! Each test says what the pre-v2 contracts (separate lock and escrow conditions, consumer-written
//! terms, fee read at creation without a cap) did, where that differs.

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::sol_types::{SolCall, SolValue};
use insitu_bindings::{
    AccessCondition, AgreementStore, FeeOnTransferToken, GasBurningReceiver, PaymentCondition,
    PermitToken, RebasingToken, ReentrantToken, RogueTemplate, ServiceTemplate,
};
use insitu_tests::harness::{ExpectRevert, Tx};
use insitu_tests::world::{Deal, FEE_BPS, Service, SignedOffer, World, state};

mod common;

/// The keeper's signed offer on the world's asset for `service`, paying `split` in `token`.
fn offer_in(
    world: &mut World,
    service: Service,
    token: Address,
    split: &[(Address, u64)],
) -> SignedOffer {
    let did = world.did;
    let offer = world.offer(did, token, split);
    world.sign_offer(service, offer)
}

/// The one-step purchase call of `signed` with `seed` and cap `max_total`.
fn buy_call(
    world: &World,
    service: Service,
    signed: &SignedOffer,
    seed: B256,
    max_total: U256,
) -> PaymentCondition::createAgreementAndPayCall {
    PaymentCondition::createAgreementAndPayCall {
        template: world.template(service),
        seed,
        offer: signed.offer.clone().into(),
        signature: signed.signature.clone(),
        serviceTimeout: 0,
        maxTotal: max_total,
    }
}

/// What the template previews for `consumer` buying `signed` with `seed` now.
fn preview(
    world: &mut World,
    service: Service,
    consumer: Address,
    signed: &SignedOffer,
    seed: B256,
) -> ServiceTemplate::Preview {
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
        .expect("previewAgreement")
}

fn balances(world: &mut World, token: Address, who: &[Address]) -> Vec<U256> {
    who.iter().map(|a| world.balance(token, *a)).collect()
}

fn accrued_fees(world: &mut World, token: Address) -> U256 {
    world
        .chain
        .call(
            world.suite.payment,
            &PaymentCondition::accruedFeesCall { token },
        )
        .expect("accruedFees")
}

fn total_credits(world: &mut World, token: Address) -> U256 {
    world
        .chain
        .call(
            world.suite.payment,
            &PaymentCondition::totalCreditsCall { token },
        )
        .expect("totalCredits")
}

fn allowance(world: &mut World, token: Address, owner: Address, spender: Address) -> U256 {
    world
        .chain
        .call(token, &PermitToken::allowanceCall { owner, spender })
        .expect("allowance")
}

// ---------------------------------------------------------------------------------------------
// L-4: the consumer's cap on the total

/// Old contracts: the template priced the payment at the fee in force when the consumer's
/// transaction ran, with no cap; a consumer with a standing approval paid a fee raised (up to 10%)
/// between its quote and its purchase. Now `maxTotal` refuses it, and nothing is taken.
#[test]
fn l4_a_fee_raised_after_the_quote_is_refused_by_the_consumers_cap() {
    let mut world = World::with_fee();
    let (consumer, provider, fee_receiver, token, payment) = (
        world.consumer,
        world.provider,
        world.fee_receiver,
        world.token,
        world.suite.payment,
    );
    let signed = offer_in(&mut world, Service::Access, token, &[(provider, 1_000)]);
    let quote = world.quote(Service::Access, consumer, &signed);
    assert_eq!(quote, U256::from(1_010u64));

    // Governance raises the fee to 10% before the consumer's purchase lands.
    world.set_network_fee(fee_receiver, 1_000).expect("raise");
    let seed = world.seed();
    let would_be = preview(&mut world, Service::Access, consumer, &signed, seed);
    assert_eq!(would_be.total, U256::from(1_100u64));
    let before = balances(&mut world, token, &[consumer, payment]);
    let call = buy_call(&world, Service::Access, &signed, seed, quote);
    let err = world
        .transact(consumer, payment, &call, U256::ZERO)
        .expect_revert::<PaymentCondition::TotalAboveMaximum>();
    assert_eq!(
        (err.total, err.maxTotal),
        (U256::from(1_100u64), U256::from(1_010u64))
    );
    assert_eq!(balances(&mut world, token, &[consumer, payment]), before);
    assert_eq!(
        world.state(would_be.paymentConditionId),
        state::UNINITIALIZED
    );
    assert_eq!(
        world.state(would_be.serviceConditionId),
        state::UNINITIALIZED
    );
    assert_eq!(
        allowance(&mut world, token, consumer, payment),
        U256::MAX,
        "approval untouched"
    );

    // The consumer who accepts the new total buys at it.
    let (deal, _) = world
        .buy_with(
            Service::Access,
            consumer,
            &signed,
            0,
            would_be.total,
            U256::ZERO,
        )
        .expect("buy at the new total");
    assert_eq!(deal.fee, U256::from(100u64));
    assert_eq!(
        world.balance(token, consumer),
        before[0] - U256::from(1_100u64)
    );
}

/// The same cap on the two-step path: the template's `createAgreement` refuses a total above the
/// consumer's `maxTotal` (old contracts: `createAgreement(seed, did, terms)` had no cap).
#[test]
fn l4_the_two_step_creation_is_capped_too() {
    let mut world = World::with_fee();
    let (consumer, provider, fee_receiver, token) = (
        world.consumer,
        world.provider,
        world.fee_receiver,
        world.token,
    );
    let signed = offer_in(&mut world, Service::Compute, token, &[(provider, 1_000)]);
    let quote = world.quote(Service::Compute, consumer, &signed);
    world.set_network_fee(fee_receiver, 1_000).expect("raise");
    let seed = world.seed();
    let would_be = preview(&mut world, Service::Compute, consumer, &signed, seed);
    let call = ServiceTemplate::createAgreementCall {
        seed,
        offer: signed.offer.clone(),
        signature: signed.signature.clone(),
        serviceTimeout: 0,
        maxTotal: quote,
    };
    let template = world.suite.compute_template;
    let err = world
        .transact(consumer, template, &call, U256::ZERO)
        .expect_revert::<ServiceTemplate::TotalAboveMaximum>();
    assert_eq!(
        (err.total, err.maxTotal),
        (U256::from(1_100u64), U256::from(1_010u64))
    );
    assert_eq!(
        world.state(would_be.paymentConditionId),
        state::UNINITIALIZED
    );
    // At the new total, it is created, priced at 10%.
    let mut call = call;
    call.maxTotal = would_be.total;
    let receipt = world
        .transact(consumer, template, &call, U256::ZERO)
        .expect("create at the new total");
    assert_eq!(receipt.output, would_be.agreementId);
    let terms = receipt.expect_event::<ServiceTemplate::AgreementTerms>();
    assert_eq!(terms.fee, U256::from(100u64));
}

/// ETH: the value sent was always an implicit cap (IncorrectValue); the explicit cap is checked
/// first, whatever is sent, and nothing moves.
#[test]
fn l4_an_eth_purchase_at_a_higher_fee_is_refused() {
    let mut world = World::with_fee();
    let (consumer, provider, fee_receiver, payment) = (
        world.consumer,
        world.provider,
        world.fee_receiver,
        world.suite.payment,
    );
    let signed = offer_in(
        &mut world,
        Service::Access,
        Address::ZERO,
        &[(provider, 1_000)],
    );
    let quote = world.quote(Service::Access, consumer, &signed);
    assert_eq!(quote, U256::from(1_010u64));
    world.set_network_fee(fee_receiver, 1_000).expect("raise");
    let before = balances(&mut world, Address::ZERO, &[consumer, payment]);
    for sent in [1_010u64, 1_100] {
        let seed = world.seed();
        let call = buy_call(&world, Service::Access, &signed, seed, quote);
        let err = world
            .transact(consumer, payment, &call, U256::from(sent))
            .expect_revert::<PaymentCondition::TotalAboveMaximum>();
        assert_eq!(
            (err.total, err.maxTotal),
            (U256::from(1_100u64), U256::from(1_010u64))
        );
    }
    // Without a cap, sending the quoted total is refused by the value check.
    let seed = world.seed();
    let call = buy_call(&world, Service::Access, &signed, seed, U256::MAX);
    let err = world
        .transact(consumer, payment, &call, quote)
        .expect_revert::<PaymentCondition::IncorrectValue>();
    assert_eq!(
        (err.expected, err.sent),
        (U256::from(1_100u64), U256::from(1_010u64))
    );
    assert_eq!(
        balances(&mut world, Address::ZERO, &[consumer, payment]),
        before
    );
}

// ---------------------------------------------------------------------------------------------
// EIP-2612 permits (new: old contracts needed a standing approval, which L-4 exploited)

fn permit_token(world: &mut World) -> Address {
    let token = world
        .chain
        .deploy(
            world.governor,
            &PermitToken::BYTECODE,
            &PermitToken::constructorCall {
                name_: "Permit Token".into(),
                symbol_: "PT".into(),
            },
        )
        .expect("deploy PermitToken");
    let consumer = world.consumer;
    world.mint(token, consumer, U256::from(10_000u64));
    token
}

fn nonce(world: &mut World, token: Address, owner: Address) -> U256 {
    world
        .chain
        .call(token, &PermitToken::noncesCall { owner })
        .expect("nonces")
}

#[test]
fn a_permit_purchase_pays_in_one_transaction_and_leaves_no_allowance() {
    let mut world = World::with_fee();
    let token = permit_token(&mut world);
    let (consumer, provider, co_provider, keeper, payment) = (
        world.consumer,
        world.provider,
        world.co_provider,
        world.keeper,
        world.suite.payment,
    );
    let signed = offer_in(
        &mut world,
        Service::Access,
        token,
        &[(provider, 600), (co_provider, 400)],
    );
    let total = world.quote(Service::Access, consumer, &signed);
    assert_eq!(total, U256::from(1_010u64));
    assert_eq!(allowance(&mut world, token, consumer, payment), U256::ZERO);
    let deadline = world.chain.timestamp() + 3_600;
    let permit = world.sign_permit(token, consumer, payment, total, deadline);
    let (deal, receipt) = world
        .buy_with_permit(Service::Access, consumer, &signed, total, permit)
        .expect("buy with permit");
    assert_eq!(deal.total(), total);
    assert_eq!(deal.consumer, consumer);
    let paid = receipt.expect_event::<AgreementStore::ConditionFulfilled>();
    assert_eq!(paid.conditionId, deal.payment_id);
    assert_eq!(world.state(deal.payment_id), state::FULFILLED);
    assert_eq!(allowance(&mut world, token, consumer, payment), U256::ZERO);
    assert_eq!(nonce(&mut world, token, consumer), U256::from(1));
    assert_eq!(
        world.balance(token, consumer),
        U256::from(10_000u64 - 1_010)
    );
    assert_eq!(world.balance(token, payment), total);

    world
        .serve_and_release(&deal, keeper)
        .expect("serve and release");
    assert_eq!(world.balance(token, provider), U256::from(600u64));
    assert_eq!(world.balance(token, co_provider), U256::from(400u64));
    assert_eq!(world.balance(token, payment), U256::from(10u64));
    assert_eq!(accrued_fees(&mut world, token), U256::from(10u64));
}

#[test]
fn a_front_run_permit_does_not_block_the_purchase() {
    let mut world = World::new();
    let token = permit_token(&mut world);
    let (consumer, provider, outsider, payment) = (
        world.consumer,
        world.provider,
        world.outsider,
        world.suite.payment,
    );
    let signed = offer_in(&mut world, Service::Compute, token, &[(provider, 700)]);
    let total = U256::from(700u64);
    let deadline = world.chain.timestamp() + 3_600;
    let permit = world.sign_permit(token, consumer, payment, total, deadline);
    // Someone copies the permit from the mempool and submits it first.
    world
        .chain
        .transact(
            outsider,
            token,
            &PermitToken::permitCall {
                owner: consumer,
                spender: payment,
                value: total,
                deadline: permit.deadline,
                v: permit.v,
                r: permit.r,
                s: permit.s,
            },
        )
        .expect("front-run permit");
    assert_eq!(allowance(&mut world, token, consumer, payment), total);
    let (deal, _) = world
        .buy_with_permit(Service::Compute, consumer, &signed, total, permit)
        .expect("the purchase uses the allowance the permit set");
    assert_eq!(world.state(deal.payment_id), state::FULFILLED);
    assert_eq!(allowance(&mut world, token, consumer, payment), U256::ZERO);
    assert_eq!(nonce(&mut world, token, consumer), U256::from(1));
    assert_eq!(world.balance(token, consumer), U256::from(10_000u64 - 700));
    assert_eq!(world.balance(token, payment), total);
}

#[test]
fn a_permit_for_another_value_fails_and_changes_nothing() {
    let mut world = World::new();
    let token = permit_token(&mut world);
    let (consumer, provider, payment) = (world.consumer, world.provider, world.suite.payment);
    let signed = offer_in(&mut world, Service::Access, token, &[(provider, 700)]);
    let total = U256::from(700u64);
    let deadline = world.chain.timestamp() + 3_600;
    for value in [699u64, 701] {
        let permit = world.sign_permit(token, consumer, payment, U256::from(value), deadline);
        let seed = world.seed();
        let would_be = preview(&mut world, Service::Access, consumer, &signed, seed);
        let call = PaymentCondition::createAgreementAndPayWithPermitCall {
            template: world.suite.access_template,
            seed,
            offer: signed.offer.clone().into(),
            signature: signed.signature.clone(),
            serviceTimeout: 0,
            maxTotal: U256::MAX,
            permit,
        };
        // The permit (for `value`, checked against a digest for the total) fails inside a
        // try/catch; the transfer then finds no allowance.
        let err = world
            .transact(consumer, payment, &call, U256::ZERO)
            .expect_revert::<PermitToken::ERC20InsufficientAllowance>();
        assert_eq!(
            (err.spender, err.allowance, err.needed),
            (payment, U256::ZERO, total)
        );
        assert_eq!(
            world.state(would_be.paymentConditionId),
            state::UNINITIALIZED
        );
        assert_eq!(nonce(&mut world, token, consumer), U256::ZERO);
        assert_eq!(allowance(&mut world, token, consumer, payment), U256::ZERO);
        assert_eq!(world.balance(token, consumer), U256::from(10_000u64));
        assert_eq!(world.balance(token, payment), U256::ZERO);
    }
}

/// Documents a usability edge: the permit must be for exactly the total at execution. A consumer
/// who signs for the quoted total (or for its cap) and sees governance LOWER the fee before the
/// purchase lands has a permit for the wrong value: the purchase reverts, nothing moves.
#[test]
fn a_permit_signed_before_a_fee_cut_still_pays_the_lower_total() {
    // The permit is for the consumer's cap (its quote): a fee cut between the quote and the
    // purchase lowers the total; the purchase goes through at the new total, and the difference
    // stays approved to the payment condition, which only ever takes tokens from its own caller.
    let mut world = World::with_fee();
    let token = permit_token(&mut world);
    let (consumer, provider, payment) = (world.consumer, world.provider, world.suite.payment);
    let signed = offer_in(&mut world, Service::Access, token, &[(provider, 1_000)]);
    let quote = world.quote(Service::Access, consumer, &signed);
    assert_eq!(quote, U256::from(1_010u64));
    let deadline = world.chain.timestamp() + 3_600;
    let permit = world.sign_permit(token, consumer, payment, quote, deadline);
    world.set_network_fee(Address::ZERO, 0).expect("fee off");
    let (deal, _) = world
        .buy_with_permit(Service::Access, consumer, &signed, quote, permit)
        .expect("the purchase goes through at the lower total");
    assert_eq!(deal.fee, U256::ZERO);
    assert_eq!(nonce(&mut world, token, consumer), U256::from(1u64));
    assert_eq!(world.balance(token, consumer), U256::from(9_000u64));
    assert_eq!(world.balance(token, payment), U256::from(1_000u64));
    let allowance = world
        .chain
        .call(
            token,
            &PermitToken::allowanceCall {
                owner: consumer,
                spender: payment,
            },
        )
        .expect("allowance");
    assert_eq!(allowance, U256::from(10u64));
}

#[test]
fn a_permit_for_an_eth_offer_is_refused() {
    let mut world = World::new();
    let token = permit_token(&mut world);
    let (consumer, provider, payment) = (world.consumer, world.provider, world.suite.payment);
    let signed = offer_in(
        &mut world,
        Service::Access,
        Address::ZERO,
        &[(provider, 700)],
    );
    let deadline = world.chain.timestamp() + 3_600;
    let permit = world.sign_permit(token, consumer, payment, U256::from(700u64), deadline);
    let before = world.chain.balance(consumer);
    world
        .buy_with_permit(Service::Access, consumer, &signed, U256::MAX, permit)
        .expect_revert::<PaymentCondition::PermitForEth>();
    assert_eq!(world.chain.balance(consumer), before);
    assert_eq!(world.chain.balance(payment), U256::ZERO);
    assert_eq!(nonce(&mut world, token, consumer), U256::ZERO);
}

// ---------------------------------------------------------------------------------------------
// Unsupported tokens (documentation: both old and new contracts hold fixed amounts in escrow)

fn rebasing_token(world: &mut World) -> Address {
    let token = world
        .chain
        .deploy_bare(world.governor, &RebasingToken::BYTECODE)
        .expect("deploy RebasingToken");
    let consumer = world.consumer;
    world.mint(token, consumer, U256::from(1_000_000u64));
    world.approve(token, consumer, world.suite.payment, U256::MAX);
    token
}

fn rebase(world: &mut World, token: Address, numerator: u64, denominator: u64) {
    world
        .chain
        .transact(
            world.governor,
            token,
            &RebasingToken::rebaseCall {
                numerator: U256::from(numerator),
                denominator: U256::from(denominator),
            },
        )
        .expect("rebase");
}

/// A negative rebase after the payment leaves the escrow short: the release still succeeds, pays
/// the receivers in order while the balance lasts, and credits the one it cannot pay; that credit
/// cannot be withdrawn. Rebasing tokens are unsupported (docs/protocol.md).
#[test]
fn a_negative_rebase_leaves_the_escrow_short_and_a_receiver_with_an_unpayable_credit() {
    let mut world = World::new();
    let token = rebasing_token(&mut world);
    let (provider, co_provider, keeper, payment) = (
        world.provider,
        world.co_provider,
        world.keeper,
        world.suite.payment,
    );
    let signed = offer_in(
        &mut world,
        Service::Access,
        token,
        &[(provider, 600), (co_provider, 400)],
    );
    let consumer = world.consumer;
    let (deal, _) = world
        .buy(Service::Access, consumer, &signed, U256::ZERO)
        .expect("buy");
    assert_eq!(world.balance(token, payment), U256::from(1_000u64));

    rebase(&mut world, token, 1, 2);
    assert_eq!(world.balance(token, payment), U256::from(500u64));
    let released = world.serve_and_release(&deal, keeper).expect("release");
    // 600 does not fit in 500: credited; 400 does: paid. 100 stays, owed to nobody.
    let credited = released.expect_event::<PaymentCondition::PaymentCredited>();
    assert_eq!(
        (credited.account, credited.token, credited.amount),
        (provider, token, U256::from(600u64))
    );
    let event = released.expect_event::<PaymentCondition::PaymentReleased>();
    assert_eq!(event.amount, U256::from(1_000u64));
    assert_eq!(world.state(deal.payment_id), state::RELEASED);
    assert_eq!(world.balance(token, provider), U256::ZERO);
    assert_eq!(world.balance(token, co_provider), U256::from(400u64));
    assert_eq!(world.balance(token, payment), U256::from(100u64));
    assert_eq!(world.credit(token, provider), U256::from(600u64));
    assert_eq!(total_credits(&mut world, token), U256::from(600u64));

    world
        .chain
        .transact(
            provider,
            payment,
            &PaymentCondition::withdrawCall {
                token,
                to: provider,
            },
        )
        .expect_revert::<RebasingToken::Insufficient>();
    assert_eq!(world.credit(token, provider), U256::from(600u64));
    assert_eq!(world.balance(token, payment), U256::from(100u64));
}

/// A positive rebase strands the surplus in the payment contract: nobody is owed it.
#[test]
fn a_positive_rebase_strands_the_surplus() {
    let mut world = World::new();
    let token = rebasing_token(&mut world);
    let (provider, keeper, payment) = (world.provider, world.keeper, world.suite.payment);
    let signed = offer_in(&mut world, Service::Access, token, &[(provider, 1_000)]);
    let consumer = world.consumer;
    let (deal, _) = world
        .buy(Service::Access, consumer, &signed, U256::ZERO)
        .expect("buy");
    rebase(&mut world, token, 2, 1);
    world.serve_and_release(&deal, keeper).expect("release");
    assert_eq!(world.balance(token, provider), U256::from(1_000u64));
    assert_eq!(world.balance(token, payment), U256::from(1_000u64));
    assert_eq!(total_credits(&mut world, token), U256::ZERO);
    assert_eq!(accrued_fees(&mut world, token), U256::ZERO);
}

/// No gas-burning token mock exists; the ReentrantToken armed to call a GasBurningReceiver from
/// inside its next transfer acts as one. The payment condition forwards all gas to token
/// transfers (`trySafeTransfer`), so such a token makes the releaser pay for nearly the whole gas
/// limit; with a modest limit the release runs out of gas and reverts whole (nothing settles).
#[test]
fn a_gas_burning_token_makes_release_cost_the_whole_gas_limit() {
    let mut world = World::new();
    let token = world
        .chain
        .deploy_bare(world.governor, &ReentrantToken::BYTECODE)
        .expect("deploy token");
    let consumer = world.consumer;
    world.mint(token, consumer, U256::from(1_000_000u64));
    world.approve(token, consumer, world.suite.payment, U256::MAX);
    let burner = world
        .chain
        .deploy_bare(world.governor, &GasBurningReceiver::BYTECODE)
        .expect("deploy burner");
    let (provider, keeper, governor) = (world.provider, world.keeper, world.governor);
    let signed = offer_in(&mut world, Service::Access, token, &[(provider, 1_000)]);
    let (deal, _) = world
        .buy(Service::Access, consumer, &signed, U256::ZERO)
        .expect("buy");
    world.serve(&deal, keeper).expect("serve");
    world
        .chain
        .transact(
            governor,
            token,
            &ReentrantToken::armCall {
                target_: burner,
                payload_: Bytes::new(),
            },
        )
        .expect("arm");
    let release: Bytes = deal.release_call().abi_encode().into();

    let limited = world
        .chain
        .send(Tx::call(keeper, world.suite.payment, release.clone()).gas_limit(300_000))
        .expect_failure();
    assert_eq!(limited.gas_used(), Some(300_000), "{limited}");
    assert_eq!(world.state(deal.payment_id), state::FULFILLED);
    assert_eq!(world.balance(token, provider), U256::ZERO);

    let receipt = world
        .chain
        .send(Tx::call(keeper, world.suite.payment, release))
        .expect("release with the block gas limit");
    assert!(
        receipt.gas_used > 29_000_000,
        "the token burned {} gas",
        receipt.gas_used
    );
    assert_eq!(world.state(deal.payment_id), state::RELEASED);
    assert_eq!(world.balance(token, provider), U256::from(1_000u64));
}

// ---------------------------------------------------------------------------------------------
// Protocol contracts refused as receivers

/// Old contracts validated only zero receivers and amounts: a payment to the escrow, the store,
/// a condition or a template was accepted, and its tokens were stuck there for good.
#[test]
fn protocol_contracts_are_refused_as_receivers() {
    let mut world = World::with_fee();
    let (consumer, provider, token, payment) = (
        world.consumer,
        world.provider,
        world.token,
        world.suite.payment,
    );
    let cases = [
        (Service::Access, payment),
        (Service::Access, world.suite.agreement_store),
        (Service::Access, world.suite.access),
        (Service::Access, world.suite.access_template),
        (Service::Compute, payment),
        (Service::Compute, world.suite.agreement_store),
        (Service::Compute, world.suite.compute_execution),
        (Service::Compute, world.suite.compute_template),
    ];
    let before = balances(&mut world, token, &[consumer, payment]);
    for (service, refused) in cases {
        let signed = offer_in(&mut world, service, token, &[(provider, 10), (refused, 5)]);
        let seed = world.seed();
        let call = buy_call(&world, service, &signed, seed, U256::MAX);
        let err = world
            .transact(consumer, payment, &call, U256::ZERO)
            .expect_revert::<PaymentCondition::ProtocolReceiver>();
        assert_eq!((err.index, err.receiver), (U256::from(1), refused));
        let err = world
            .create(service, consumer, &signed)
            .expect_revert::<PaymentCondition::ProtocolReceiver>();
        assert_eq!((err.index, err.receiver), (U256::from(1), refused));
        // previewAgreement validates the same way, so no agreement id leaks out for it.
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
            .expect_revert::<PaymentCondition::ProtocolReceiver>();
    }
    assert_eq!(balances(&mut world, token, &[consumer, payment]), before);
}

/// Documents the limit of the refused list (docs/protocol.md): the contracts an agreement itself
/// involves are refused, the registry too; another service's condition or template is not, so a
/// compute offer that pays the access condition or the access template strands those tokens. The
/// provider signs its own receivers; off-chain tools refuse the suite's addresses.
#[test]
fn the_other_services_contracts_are_not_refused() {
    let mut world = World::new();
    let (consumer, provider, keeper, token) =
        (world.consumer, world.provider, world.keeper, world.token);
    let (access, access_template) = (world.suite.access, world.suite.access_template);
    let signed = offer_in(
        &mut world,
        Service::Compute,
        token,
        &[(provider, 10), (access, 5), (access_template, 5)],
    );
    let (deal, _) = world
        .buy(Service::Compute, consumer, &signed, U256::ZERO)
        .expect("accepted");
    world.serve_and_release(&deal, keeper).expect("release");
    assert_eq!(world.balance(token, access), U256::from(5u64));
    assert_eq!(world.balance(token, access_template), U256::from(5u64));

    // The asset registry is refused by the template that knows it.
    let registry = world.suite.asset_registry;
    let signed = offer_in(
        &mut world,
        Service::Compute,
        token,
        &[(provider, 10), (registry, 5)],
    );
    let err = world
        .buy(Service::Compute, consumer, &signed, U256::ZERO)
        .expect_revert::<PaymentCondition::ProtocolReceiver>();
    assert_eq!((err.index, err.receiver), (U256::from(1u64), registry));
}

/// Review gap 6: a token that starts charging a transfer fee after the payment (its owner switches
/// the fee on). The payment was taken whole (the fee was off), and the escrow stays solvent: each
/// release transfer is charged on the way out, so receivers get less than agreed; nothing is
/// stranded and no other payment is touched. Such tokens are unsupported (docs/protocol.md).
#[test]
fn a_token_that_switches_a_transfer_fee_on_after_the_payment_pays_receivers_less() {
    let mut world = World::with_fee();
    let (consumer, provider, keeper, payment) = (
        world.consumer,
        world.provider,
        world.keeper,
        world.suite.payment,
    );
    let token = world
        .chain
        .deploy(
            world.governor,
            &FeeOnTransferToken::BYTECODE,
            &FeeOnTransferToken::constructorCall {
                feeBps_: U256::ZERO,
            },
        )
        .expect("deploy the token");
    world.mint(token, consumer, U256::from(10_000u64));
    world.approve(token, consumer, payment, U256::MAX);
    let signed = offer_in(&mut world, Service::Access, token, &[(provider, 1_000)]);
    let (deal, _) = world
        .buy(Service::Access, consumer, &signed, U256::ZERO)
        .expect("no fee yet: the payment arrives whole");
    assert_eq!(world.balance(token, payment), U256::from(1_010u64));

    let governor = world.governor;
    world
        .chain
        .transact(
            governor,
            token,
            &FeeOnTransferToken::setFeeCall {
                feeBps_: U256::from(1_000u64),
            },
        )
        .expect("switch the fee on");
    world.serve_and_release(&deal, keeper).expect("release");
    assert_eq!(world.state(deal.payment_id), state::RELEASED);
    // 10% of the 1,000 pushed to the provider is burned by the token on the way.
    assert_eq!(world.balance(token, provider), U256::from(900u64));
    // The escrow still holds the accrued network fee it owes, no more, no less.
    assert_eq!(world.balance(token, payment), U256::from(10u64));
    let accrued = world
        .chain
        .call(payment, &PaymentCondition::accruedFeesCall { token })
        .expect("accruedFees");
    assert_eq!(accrued, U256::from(10u64));

    // A new payment is now refused whole: the escrow would receive less than the total.
    let signed = offer_in(&mut world, Service::Access, token, &[(provider, 1_000)]);
    let err = world
        .buy(Service::Access, consumer, &signed, U256::ZERO)
        .expect_revert::<PaymentCondition::TransferAmountMismatch>();
    assert_eq!(
        (err.expected, err.received),
        (U256::from(1_010u64), U256::from(909u64))
    );
}

// ---------------------------------------------------------------------------------------------
// Time outs and refunds

/// New behaviour: an unpaid payment whose window has passed is aborted on the payment condition
/// itself; then nothing can pay, serve, release or refund it.
#[test]
fn an_unpaid_payment_times_out_and_then_nothing_settles_it() {
    let mut world = World::new();
    let (consumer, provider, keeper, outsider, token, payment) = (
        world.consumer,
        world.provider,
        world.keeper,
        world.outsider,
        world.token,
        world.suite.payment,
    );
    let signed = offer_in(&mut world, Service::Access, token, &[(provider, 1_000)]);
    let (deal, _) = world
        .create(Service::Access, consumer, &signed)
        .expect("create");
    let abort = PaymentCondition::abortTimedOutCall {
        conditionId: deal.payment_id,
    };
    let err = world
        .transact(outsider, payment, &abort, U256::ZERO)
        .expect_revert::<AgreementStore::ConditionNotTimedOut>();
    assert_eq!(err.conditionId, deal.payment_id);

    // The payment window is half the service time out.
    world.chain.warp(u64::from(deal.service_timeout) / 2);
    let receipt = world
        .transact(outsider, payment, &abort, U256::ZERO)
        .expect("abort the unpaid payment");
    let event = receipt.expect_event::<AgreementStore::ConditionAborted>();
    assert_eq!(
        (event.conditionId, event.conditionContract),
        (deal.payment_id, payment)
    );
    assert_eq!(world.state(deal.payment_id), state::ABORTED);
    let before = balances(&mut world, token, &[consumer, payment, provider]);

    let err = world
        .lock(&deal, consumer, U256::ZERO)
        .expect_revert::<AgreementStore::ConditionNotUnfulfilled>();
    assert_eq!(
        (err.conditionId, err.state),
        (deal.payment_id, state::ABORTED)
    );
    let err = world
        .serve(&deal, keeper)
        .expect_revert::<AccessCondition::DependencyNotFulfilled>();
    assert_eq!(
        (err.conditionId, err.state),
        (deal.payment_id, state::ABORTED)
    );
    let err = world
        .serve_and_release(&deal, keeper)
        .expect_revert::<AgreementStore::ConditionNotFulfilled>();
    assert_eq!(
        (err.conditionId, err.state),
        (deal.payment_id, state::ABORTED)
    );
    let err = world
        .release(&deal, keeper)
        .expect_revert::<PaymentCondition::ServiceNotFulfilled>();
    assert_eq!(
        (err.serviceConditionId, err.state),
        (deal.service_id, state::UNFULFILLED)
    );
    let err = world
        .refund(&deal, consumer)
        .expect_revert::<PaymentCondition::ServiceNotAborted>();
    assert_eq!(
        (err.serviceConditionId, err.state),
        (deal.service_id, state::UNFULFILLED)
    );

    // Once the service times out too and is aborted, the refund reaches the store, which has
    // nothing in escrow to settle.
    world.chain.warp(u64::from(deal.service_timeout));
    world.abort_service(&deal, outsider).expect("abort service");
    let err = world
        .refund(&deal, consumer)
        .expect_revert::<AgreementStore::ConditionNotFulfilled>();
    assert_eq!(
        (err.conditionId, err.state),
        (deal.payment_id, state::ABORTED)
    );
    assert_eq!(world.state(deal.payment_id), state::ABORTED);
    assert_eq!(
        balances(&mut world, token, &[consumer, payment, provider]),
        before
    );
}

#[test]
fn a_compute_agreement_that_is_never_served_is_refunded() {
    let mut world = World::with_fee();
    let (consumer, keeper, outsider, token, payment) = (
        world.consumer,
        world.keeper,
        world.outsider,
        world.token,
        world.suite.payment,
    );
    let deal = world.paid_deal(Service::Compute);
    assert_eq!(deal.service_condition, world.suite.compute_execution);
    let before = world.balance(token, consumer);
    world.chain.warp(u64::from(deal.service_timeout));
    let err = world
        .serve(&deal, keeper)
        .expect_revert::<AgreementStore::ConditionTimedOut>();
    assert_eq!(err.conditionId, deal.service_id);
    let aborted = world.abort_service(&deal, outsider).expect("abort");
    let event = aborted.expect_event::<AgreementStore::ConditionAborted>();
    assert_eq!(
        (event.conditionId, event.conditionContract),
        (deal.service_id, world.suite.compute_execution)
    );
    let refunded = world.refund(&deal, outsider).expect("refund");
    assert_eq!(refunded.output, deal.payment_id);
    let event = refunded.expect_event::<PaymentCondition::PaymentRefunded>();
    assert_eq!(
        (event.agreementId, event.payer, event.token, event.amount),
        (deal.agreement_id, consumer, token, U256::from(1_010u64))
    );
    assert!(!refunded.has_event::<PaymentCondition::PaymentCredited>());
    assert_eq!(world.state(deal.payment_id), state::REFUNDED);
    assert_eq!(world.state(deal.service_id), state::ABORTED);
    assert_eq!(world.balance(token, consumer), before + deal.total());
    assert_eq!(world.balance(token, payment), U256::ZERO);
    assert_eq!(accrued_fees(&mut world, token), U256::ZERO);
}

/// A payer contract that refuses ETH is refunded by credit, and withdraws it elsewhere.
/// RevertingReceiver's `execute` is not payable (it cannot buy with ETH), so the payer is a
/// RogueTemplate used only for its payable `execute`; it has no receive() nor fallback.
#[test]
fn an_eth_refund_to_a_payer_that_refuses_eth_is_credited_and_withdrawn_elsewhere() {
    let mut world = World::new();
    let (provider, outsider, payment) = (world.provider, world.outsider, world.suite.payment);
    let payer = world
        .chain
        .deploy(
            outsider,
            &RogueTemplate::BYTECODE,
            &RogueTemplate::constructorCall {
                store: world.suite.agreement_store,
            },
        )
        .expect("deploy the payer contract");
    let signed = offer_in(
        &mut world,
        Service::Access,
        Address::ZERO,
        &[(provider, 5_000)],
    );
    let seed = world.seed();
    let buy = buy_call(&world, Service::Access, &signed, seed, U256::MAX);
    let receipt = world
        .chain
        .transact_value(
            outsider,
            payer,
            &RogueTemplate::executeCall {
                target: payment,
                data: buy.abi_encode().into(),
            },
            U256::from(5_000u64),
        )
        .expect("the contract buys");
    let receipt = receipt.map(|out| B256::abi_decode(&out).expect("an agreement id"));
    let deal: Deal = world.deal_from(Service::Access, &receipt);
    assert_eq!(deal.consumer, payer);
    assert_eq!(world.chain.balance(payment), U256::from(5_000u64));

    world.chain.warp(u64::from(deal.service_timeout));
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
        (
            deal.agreement_id,
            payer,
            Address::ZERO,
            U256::from(5_000u64)
        )
    );
    let event = refunded.expect_event::<PaymentCondition::PaymentRefunded>();
    assert_eq!((event.payer, event.amount), (payer, U256::from(5_000u64)));
    assert_eq!(world.state(deal.payment_id), state::REFUNDED);
    assert_eq!(world.credit(Address::ZERO, payer), U256::from(5_000u64));
    assert_eq!(world.chain.balance(payer), U256::ZERO);

    let payout = world.chain.account_named("payout");
    let payout_before = world.chain.balance(payout);
    let withdraw = PaymentCondition::withdrawCall {
        token: Address::ZERO,
        to: payout,
    };
    let receipt = world
        .chain
        .transact(
            outsider,
            payer,
            &RogueTemplate::executeCall {
                target: payment,
                data: withdraw.abi_encode().into(),
            },
        )
        .expect("withdraw elsewhere");
    let event = receipt.expect_event::<PaymentCondition::CreditWithdrawn>();
    assert_eq!(
        (event.account, event.token, event.to, event.amount),
        (payer, Address::ZERO, payout, U256::from(5_000u64))
    );
    assert_eq!(
        world.chain.balance(payout),
        payout_before + U256::from(5_000u64)
    );
    assert_eq!(world.credit(Address::ZERO, payer), U256::ZERO);
    assert_eq!(world.chain.balance(payment), U256::ZERO);
}

// ---------------------------------------------------------------------------------------------
// Gas ceiling of a release

/// Most gas one `fulfilAndRelease` may use with 16 ETH receivers that each burn the whole
/// stipend: 16 x (50,000 stipend + about 43,000 of call, credit storage and event) plus the
/// service fulfilment; measured 1,496,778 when written.
const SIXTEEN_BURNERS_GAS_BOUND: u64 = 1_600_000;

#[test]
fn a_release_to_sixteen_gas_burning_receivers_stays_bounded_and_credits_them() {
    let mut world = World::new();
    let (consumer, keeper, governor) = (world.consumer, world.keeper, world.governor);
    let burners: Vec<Address> = (0..16)
        .map(|_| {
            world
                .chain
                .deploy_bare(governor, &GasBurningReceiver::BYTECODE)
                .expect("deploy burner")
        })
        .collect();
    let split: Vec<(Address, u64)> = burners
        .iter()
        .enumerate()
        .map(|(i, b)| (*b, 1_000 + i as u64))
        .collect();
    let price: u64 = split.iter().map(|(_, a)| a).sum();
    let signed = offer_in(&mut world, Service::Access, Address::ZERO, &split);
    let (deal, _) = world
        .buy(Service::Access, consumer, &signed, U256::from(price))
        .expect("buy");
    let receipt = world.serve_and_release(&deal, keeper).expect("release");
    let credited = receipt
        .events::<PaymentCondition::PaymentCredited>()
        .unwrap();
    let got: Vec<(Address, U256)> = credited.iter().map(|e| (e.account, e.amount)).collect();
    let want: Vec<(Address, U256)> = split.iter().map(|(b, a)| (*b, U256::from(*a))).collect();
    assert_eq!(got, want);
    for (burner, amount) in &split {
        assert_eq!(world.credit(Address::ZERO, *burner), U256::from(*amount));
        assert_eq!(world.chain.balance(*burner), U256::ZERO);
    }
    assert_eq!(total_credits(&mut world, Address::ZERO), U256::from(price));
    assert_eq!(world.state(deal.payment_id), state::RELEASED);
    assert!(
        receipt.gas_used < SIXTEEN_BURNERS_GAS_BOUND,
        "fulfilAndRelease used {} gas",
        receipt.gas_used
    );
    // Each burner really got (and burned) its stipend: the bound is not loose by an order.
    assert!(receipt.gas_used > 16 * 50_000, "used {}", receipt.gas_used);
}

// ---------------------------------------------------------------------------------------------
// Revoked templates

/// Revocation is not an emergency stop: it stops new agreements only. An agreement created
/// before can still be paid (the two-step `lock` does not check the template) and completed.
#[test]
fn a_two_step_payment_after_the_template_is_revoked_still_completes() {
    let mut world = World::new();
    let (consumer, provider, keeper, token) =
        (world.consumer, world.provider, world.keeper, world.token);
    let signed = offer_in(&mut world, Service::Access, token, &[(provider, 1_000)]);
    let (deal, _) = world
        .create(Service::Access, consumer, &signed)
        .expect("create");
    let template = world.suite.access_template;
    common::revoke_template(&mut world, template).expect("revoke");
    let err = world
        .buy(Service::Access, consumer, &signed, U256::ZERO)
        .expect_revert::<AgreementStore::TemplateNotApproved>();
    assert_eq!(err.caller, template);

    world
        .lock(&deal, consumer, U256::ZERO)
        .expect("lock after revocation");
    assert_eq!(world.state(deal.payment_id), state::FULFILLED);
    world
        .serve_and_release(&deal, keeper)
        .expect("serve and release after revocation");
    assert_eq!(world.state(deal.payment_id), state::RELEASED);
    assert_eq!(world.balance(token, provider), U256::from(1_000u64));
}

// ---------------------------------------------------------------------------------------------
// Settlement happens once

/// Old contracts: lock and escrow were separate conditions, and a template could bind several
/// escrows to one lock, so one payment could be paid out more than once. Now the payment itself
/// is settled once by the store. A second settlement of the same kind reaches the store's
/// `settle` (ConditionNotFulfilled with RELEASED or REFUNDED); a settlement of the other kind is
/// refused earlier, by the service condition's state, which can never be both Fulfilled and
/// Aborted.
#[test]
fn a_payment_is_settled_once_whatever_is_tried_after() {
    let mut world = World::with_fee();
    let (keeper, outsider, consumer, provider, token, payment) = (
        world.keeper,
        world.outsider,
        world.consumer,
        world.provider,
        world.token,
        world.suite.payment,
    );

    let released = world.paid_deal(Service::Access);
    world.serve(&released, keeper).expect("serve");
    world.release(&released, keeper).expect("release");
    let refunded = world.paid_deal(Service::Compute);
    world.chain.warp(u64::from(refunded.service_timeout));
    world.abort_service(&refunded, outsider).expect("abort");
    world.refund(&refunded, outsider).expect("refund");
    let before = balances(&mut world, token, &[consumer, payment, provider]);

    let err = world
        .release(&released, outsider)
        .expect_revert::<AgreementStore::ConditionNotFulfilled>();
    assert_eq!(
        (err.conditionId, err.state),
        (released.payment_id, state::RELEASED)
    );
    let err = world
        .refund(&refunded, outsider)
        .expect_revert::<AgreementStore::ConditionNotFulfilled>();
    assert_eq!(
        (err.conditionId, err.state),
        (refunded.payment_id, state::REFUNDED)
    );
    let err = world
        .refund(&released, outsider)
        .expect_revert::<PaymentCondition::ServiceNotAborted>();
    assert_eq!(
        (err.serviceConditionId, err.state),
        (released.service_id, state::FULFILLED)
    );
    let err = world
        .release(&refunded, outsider)
        .expect_revert::<PaymentCondition::ServiceNotFulfilled>();
    assert_eq!(
        (err.serviceConditionId, err.state),
        (refunded.service_id, state::ABORTED)
    );

    // Nobody but the payment contract may settle its conditions in the store.
    for (id, released_flag) in [(released.payment_id, false), (refunded.payment_id, true)] {
        let err = world
            .chain
            .transact(
                outsider,
                world.suite.agreement_store,
                &AgreementStore::settleCall {
                    conditionId: id,
                    released: released_flag,
                },
            )
            .expect_revert::<AgreementStore::NotConditionContract>();
        assert_eq!((err.conditionId, err.caller), (id, outsider));
    }
    assert_eq!(world.state(released.payment_id), state::RELEASED);
    assert_eq!(world.state(refunded.payment_id), state::REFUNDED);
    assert_eq!(
        balances(&mut world, token, &[consumer, payment, provider]),
        before
    );
    assert_eq!(accrued_fees(&mut world, token), released.fee);
}

// ---------------------------------------------------------------------------------------------
// Fee withdrawal with the fee switched off

/// `setNetworkFee(0, 0)` switches the fee off and clears the receiver: fees accrued before (and
/// fees of agreements created before, released later) are withdrawable by nobody, governance
/// included, until a receiver is set again.
#[test]
fn with_the_fee_off_accrued_fees_wait_for_a_new_receiver() {
    let mut world = World::with_fee();
    let (keeper, fee_receiver, outsider, governor, token, payment) = (
        world.keeper,
        world.fee_receiver,
        world.outsider,
        world.governor,
        world.token,
        world.suite.payment,
    );
    let deal = world.paid_deal(Service::Access);
    assert_eq!(deal.fee, U256::from(1_000 * u64::from(FEE_BPS) / 10_000));
    world.set_network_fee(Address::ZERO, 0).expect("fee off");
    world.serve_and_release(&deal, keeper).expect("release");
    assert_eq!(accrued_fees(&mut world, token), deal.fee);

    let withdraw = |to: Address| PaymentCondition::withdrawFeesCall { token, to };
    for caller in [fee_receiver, outsider, governor] {
        let err = world
            .chain
            .transact(caller, payment, &withdraw(caller))
            .expect_revert::<PaymentCondition::NotFeeReceiver>();
        assert_eq!(err.caller, caller);
    }
    let err = world
        .govern(&[(payment, withdraw(world.timelock).abi_encode())])
        .expect_revert::<PaymentCondition::NotFeeReceiver>();
    assert_eq!(err.caller, world.timelock);
    assert_eq!(accrued_fees(&mut world, token), deal.fee);
    assert_eq!(world.balance(token, payment), deal.fee);

    // A receiver set again (the fee may stay off) withdraws them; the old one still cannot.
    let treasury = world.chain.account_named("treasury");
    world.set_network_fee(treasury, 0).expect("new receiver");
    let err = world
        .chain
        .transact(fee_receiver, payment, &withdraw(fee_receiver))
        .expect_revert::<PaymentCondition::NotFeeReceiver>();
    assert_eq!(err.caller, fee_receiver);
    let receipt = world
        .chain
        .transact(treasury, payment, &withdraw(treasury))
        .expect("withdraw");
    let event = receipt.expect_event::<PaymentCondition::FeesWithdrawn>();
    assert_eq!(
        (event.receiver, event.token, event.to, event.amount),
        (treasury, token, treasury, deal.fee)
    );
    assert_eq!(world.balance(token, treasury), deal.fee);
    assert_eq!(accrued_fees(&mut world, token), U256::ZERO);
    assert_eq!(world.balance(token, payment), U256::ZERO);
}
