//! A template that breaks every template rule, approved through governance as a compromised
//! governor would (review M-1, test gap 1), run against the real `PaymentCondition`: the payment
//! condition's guarantees must not depend on templates.
//!
//! Before the redesign, exactly-once settlement held per escrow condition, not per lock, and
//! `LockPaymentCondition.lockFor` took the payer from the template: an approved template could
//! back several escrow conditions with one lock, and pull tokens from anyone with a standing
//! approval. Each test below runs an honest deal alongside (the victim paid 1,000 for the keeper's
//! offer) and checks the balances of victim, escrow and attacker before and after, and that the
//! honest deal still settles in full.

mod common;

use alloy::{
    primitives::{Address, B256, Bytes, U256, keccak256},
    sol_types::{SolCall, SolValue},
};
use insitu_bindings::{
    AccessCondition, AgreementStore, ComputeExecutionCondition, MockERC20, PaymentCondition,
    RogueTemplate,
};
use insitu_tests::harness::{ExpectRevert, Receipt, TxError};
use insitu_tests::world::{Deal, Service, World, state};

const PRICE: u64 = 1_000;

/// The honest world, the approved rogue template and the attacker.
struct Attack {
    w: World,
    rogue: Address,
    attacker: Address,
    /// The world's consumer: holds tokens and approved the payment condition for all of them.
    victim: Address,
    /// An asset the attacker owns, so it may fulfil service conditions on it.
    attacker_did: B256,
    /// The victim's paid deal on the keeper's offer: 1,000 in escrow.
    honest: Deal,
}

/// Balances of the parties an attack could move tokens between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Books {
    attacker: U256,
    victim: U256,
    escrow: U256,
    rogue: U256,
}

fn payment_hash(
    did: B256,
    payer: Address,
    service: Address,
    token: Address,
    receivers: &[Address],
    amounts: &[U256],
    fee: U256,
) -> B256 {
    keccak256(
        (
            did,
            payer,
            service,
            token,
            receivers.to_vec(),
            amounts.to_vec(),
            fee,
        )
            .abi_encode_params(),
    )
}

fn condition_id(agreement: B256, contract: Address, value_hash: B256) -> B256 {
    keccak256((agreement, contract, value_hash).abi_encode_params())
}

fn spec(contract: Address, value_hash: B256, time_out: u32) -> RogueTemplate::ConditionSpec {
    RogueTemplate::ConditionSpec {
        conditionContract: contract,
        valueHash: value_hash,
        timeLock: 0,
        timeOut: time_out,
    }
}

fn agreement_id(seed: B256, consumer: Address, first: &RogueTemplate::ConditionSpec) -> B256 {
    keccak256((seed, consumer, first.conditionContract, first.valueHash).abi_encode_params())
}

impl Attack {
    fn new() -> Self {
        let mut w = World::new();
        let attacker = w.chain.account_named("attacker");
        let victim = w.consumer;
        let (token, payment, store) = (w.token, w.suite.payment, w.suite.agreement_store);
        w.mint(token, attacker, U256::from(PRICE));
        w.approve(token, attacker, payment, U256::MAX);
        let attacker_did = w.register_asset(attacker, &[]);
        let honest = w.paid_deal(Service::Access);
        let rogue = w
            .chain
            .deploy(
                attacker,
                &RogueTemplate::BYTECODE,
                &RogueTemplate::constructorCall { store },
            )
            .expect("deploy RogueTemplate");
        w.chain.label(rogue, "rogue");
        w.transact(
            attacker,
            store,
            &AgreementStore::proposeTemplateCall { template: rogue },
            U256::ZERO,
        )
        .expect("propose the rogue template");
        // A compromised governor approves it (through the timelock, as any approval).
        common::approve_template(&mut w, rogue).expect("approve the rogue template");
        Self {
            w,
            rogue,
            attacker,
            victim,
            attacker_did,
            honest,
        }
    }

    fn books(&mut self) -> Books {
        let token = self.w.token;
        let payment = self.w.suite.payment;
        Books {
            attacker: self.w.balance(token, self.attacker),
            victim: self.w.balance(token, self.victim),
            escrow: self.w.balance(token, payment),
            rogue: self.w.balance(token, self.rogue),
        }
    }

    #[allow(clippy::too_many_arguments)]
    /// A deal paying `amount` of the world's token to `receivers[0]` from `payer`, released by
    /// `service`'s condition, in agreement `agreement`.
    fn deal(
        &self,
        service: Service,
        service_condition: Address,
        agreement: B256,
        did: B256,
        payer: Address,
        receiver: Address,
        amount: u64,
    ) -> Deal {
        let token = self.w.token;
        let amounts = vec![U256::from(amount)];
        let value_hash = payment_hash(
            did,
            payer,
            service_condition,
            token,
            &[receiver],
            &amounts,
            U256::ZERO,
        );
        let payment_id = condition_id(agreement, self.w.suite.payment, value_hash);
        let service_id = condition_id(
            agreement,
            service_condition,
            keccak256((did, payer, payment_id).abi_encode_params()),
        );
        Deal {
            service,
            template: self.rogue,
            service_condition,
            agreement_id: agreement,
            did,
            consumer: payer,
            provider: receiver,
            token,
            receivers: vec![receiver],
            amounts,
            fee: U256::ZERO,
            service_timeout: 3600,
            payment_id,
            service_id,
        }
    }

    /// The payment condition spec of a deal built by [`Attack::deal`] (before its agreement id is
    /// known: the value hash does not depend on it).
    fn payment_spec(&self, deal: &Deal) -> RogueTemplate::ConditionSpec {
        let value_hash = payment_hash(
            deal.did,
            deal.consumer,
            deal.service_condition,
            deal.token,
            &deal.receivers,
            &deal.amounts,
            deal.fee,
        );
        spec(self.w.suite.payment, value_hash, 1800)
    }

    fn service_spec(&self, deal: &Deal) -> RogueTemplate::ConditionSpec {
        spec(
            deal.service_condition,
            keccak256((deal.did, deal.consumer, deal.payment_id).abi_encode_params()),
            3600,
        )
    }

    /// A deal of `payer` in a fresh rogue agreement of `consumer` whose first condition is its
    /// payment (so its id is known in advance), and the specs [payment, service].
    fn planned(
        &mut self,
        service: Service,
        consumer: Address,
        did: B256,
        payer: Address,
        receiver: Address,
        amount: u64,
    ) -> (B256, Deal, Vec<RogueTemplate::ConditionSpec>) {
        let seed = self.w.seed();
        let service_condition = self.w.service_address(service);
        let draft = self.deal(
            service,
            service_condition,
            B256::ZERO,
            did,
            payer,
            receiver,
            amount,
        );
        let payment = self.payment_spec(&draft);
        let agreement = agreement_id(seed, consumer, &payment);
        let deal = self.deal(
            service,
            service_condition,
            agreement,
            did,
            payer,
            receiver,
            amount,
        );
        let specs = vec![payment, self.service_spec(&deal)];
        (seed, deal, specs)
    }

    /// The rogue template creates an agreement of `consumer` with any conditions.
    fn create_for(
        &mut self,
        seed: B256,
        consumer: Address,
        did: B256,
        conditions: Vec<RogueTemplate::ConditionSpec>,
    ) -> Result<Receipt<B256>, TxError> {
        let call = RogueTemplate::createForCall {
            seed,
            consumer,
            did,
            conditions,
        };
        let (attacker, rogue) = (self.attacker, self.rogue);
        self.w.transact(attacker, rogue, &call, U256::ZERO)
    }

    /// The rogue template calls `target` with `call`, as itself.
    fn execute<C: SolCall>(
        &mut self,
        target: Address,
        call: &C,
    ) -> Result<Receipt<Bytes>, TxError> {
        let call = RogueTemplate::executeCall {
            target,
            data: call.abi_encode().into(),
        };
        let (attacker, rogue) = (self.attacker, self.rogue);
        self.w.transact(attacker, rogue, &call, U256::ZERO)
    }

    /// Sets what the rogue template answers to `createAgreementFor`.
    fn script(
        &mut self,
        agreement: B256,
        service: Address,
        consumer: Address,
        did: B256,
        specs: Vec<RogueTemplate::ConditionSpec>,
    ) {
        let call = RogueTemplate::scriptCall {
            agreementId: agreement,
            service,
            consumer,
            did,
            specs,
        };
        let (attacker, rogue) = (self.attacker, self.rogue);
        self.w
            .transact(attacker, rogue, &call, U256::ZERO)
            .expect("script");
    }

    /// `caller` buys through the rogue template: `PaymentCondition.createAgreementAndPay` with an
    /// unsigned offer on `did` paying `amount` to `receiver`.
    fn buy_through_rogue(
        &mut self,
        caller: Address,
        did: B256,
        receiver: Address,
        amount: u64,
    ) -> Result<Receipt<B256>, TxError> {
        let mut offer = self.w.offer(did, self.w.token, &[(receiver, amount)]);
        offer.provider = receiver;
        let call = PaymentCondition::createAgreementAndPayCall {
            template: self.rogue,
            seed: self.w.seed(),
            offer: offer.into(),
            signature: Bytes::new(),
            serviceTimeout: 0,
            maxTotal: U256::MAX,
        };
        let payment = self.w.suite.payment;
        self.w.transact(caller, payment, &call, U256::ZERO)
    }

    /// The honest deal was left whole: its 1,000 are still in escrow and release to the provider in
    /// full (pushed, not credited), leaving the escrow with `rest`.
    #[track_caller]
    fn honest_deal_settles_in_full(&mut self, rest: U256) {
        let honest = self.honest.clone();
        let (token, provider, keeper) = (self.w.token, self.w.provider, self.w.keeper);
        assert_eq!(self.w.state(honest.payment_id), state::FULFILLED);
        assert_eq!(self.books().escrow, rest + honest.total());
        let before = self.w.balance(token, provider);
        let receipt = self
            .w
            .serve_and_release(&honest, keeper)
            .expect("the honest deal releases");
        assert!(!receipt.has_event::<PaymentCondition::PaymentCredited>());
        assert_eq!(self.w.balance(token, provider), before + honest.total());
        assert_eq!(self.w.credit(token, provider), U256::ZERO);
        assert_eq!(self.books().escrow, rest);
    }
}

// ---- settlement happens once per payment ----

#[test]
fn a_rogue_agreement_settles_its_payment_once() {
    let mut a = Attack::new();
    let (attacker, did) = (a.attacker, a.attacker_did);
    let start = a.books();
    let (seed, deal, specs) = a.planned(Service::Access, attacker, did, attacker, attacker, PRICE);
    let receipt = a.create_for(seed, attacker, did, specs).unwrap();
    assert_eq!(receipt.output, deal.agreement_id);
    a.w.lock(&deal, attacker, U256::ZERO)
        .expect("the attacker pays");
    a.w.serve(&deal, attacker)
        .expect("the attacker serves its own asset");
    a.w.release(&deal, attacker).expect("first release");
    assert_eq!(a.w.state(deal.payment_id), state::RELEASED);
    assert_eq!(a.books(), start, "paid 1,000, got 1,000");

    // Again: the store settles a payment once.
    let err: AgreementStore::ConditionNotFulfilled = a.w.release(&deal, attacker).expect_revert();
    assert_eq!(
        (err.conditionId, err.state),
        (deal.payment_id, state::RELEASED)
    );
    let err: PaymentCondition::ServiceNotAborted = a.w.refund(&deal, attacker).expect_revert();
    assert_eq!(
        (err.serviceConditionId, err.state),
        (deal.service_id, state::FULFILLED)
    );
    // The template itself cannot settle or abort anyone's condition: only the payment condition.
    let payment = deal.payment_id;
    let store = a.w.suite.agreement_store;
    let rogue = a.rogue;
    for honest_or_own in [payment, a.honest.payment_id] {
        let err: AgreementStore::NotConditionContract = a
            .execute(
                store,
                &AgreementStore::settleCall {
                    conditionId: honest_or_own,
                    released: true,
                },
            )
            .expect_revert();
        assert_eq!((err.conditionId, err.caller), (honest_or_own, rogue));
    }
    assert_eq!(a.books(), start);
    a.honest_deal_settles_in_full(U256::ZERO);
}

#[test]
fn one_payment_backs_one_release_however_many_agreements_or_conditions_name_it() {
    // The old escrow condition id was hash(agreement, escrow, hash(lockId, releaseConditions)), so
    // the template could list one lock under several escrow conditions, each paying in full. Now
    // the payment IS the escrow record; any other condition naming it is another, unpaid payment.
    let mut a = Attack::new();
    let (attacker, did) = (a.attacker, a.attacker_did);
    let start = a.books();
    let (seed, deal, specs) = a.planned(Service::Access, attacker, did, attacker, attacker, PRICE);
    // The same payment condition twice in one agreement cannot even be created.
    let twice = vec![specs[0].clone(), specs[1].clone(), specs[0].clone()];
    let err: AgreementStore::ConditionAlreadyExists =
        a.create_for(seed, attacker, did, twice).expect_revert();
    assert_eq!(err.conditionId, deal.payment_id);
    a.create_for(seed, attacker, did, specs.clone()).unwrap();
    a.w.lock(&deal, attacker, U256::ZERO).unwrap();

    // A second agreement with the same payment terms and a service naming the FIRST payment.
    let seed2 = a.w.seed();
    let second_payment = specs[0].clone();
    let agreement2 = agreement_id(seed2, attacker, &second_payment);
    let shadow = spec(a.w.suite.access, specs[1].valueHash, 3600);
    a.create_for(seed2, attacker, did, vec![second_payment, shadow])
        .unwrap();
    let second = a.deal(
        Service::Access,
        a.w.suite.access,
        agreement2,
        did,
        attacker,
        attacker,
        PRICE,
    );
    assert_ne!(second.payment_id, deal.payment_id);
    // Its shadow service is fulfilled on the strength of the first payment...
    let call = AccessCondition::fulfilCall {
        agreementId: agreement2,
        did,
        consumer: attacker,
        paymentConditionId: deal.payment_id,
    };
    let access = a.w.suite.access;
    a.w.transact(attacker, access, &call, U256::ZERO)
        .expect("a service condition naming the first payment");
    // ...but release derives the payment from the agreement: the second agreement's own payment,
    // unpaid, and its own service, never created.
    let err: PaymentCondition::ServiceNotFulfilled = a.w.release(&second, attacker).expect_revert();
    assert_eq!(
        (err.serviceConditionId, err.state),
        (second.service_id, state::UNINITIALIZED)
    );
    // Its own service fulfilled too: the unpaid second payment still cannot settle.
    let err: AccessCondition::DependencyNotFulfilled = a.w.serve(&second, attacker).expect_revert();
    assert_eq!(
        (err.conditionId, err.state),
        (second.payment_id, state::UNFULFILLED)
    );
    // A second "payment" for the first service through the other service contract.
    let compute = a.w.suite.compute_execution;
    let via_compute = a.deal(
        Service::Compute,
        compute,
        deal.agreement_id,
        did,
        attacker,
        attacker,
        PRICE,
    );
    let err: AgreementStore::ConditionNotFound =
        a.w.serve_and_release(&via_compute, attacker)
            .expect_revert();
    assert_eq!(err.conditionId, via_compute.service_id);

    a.w.serve(&deal, attacker).unwrap();
    a.w.release(&deal, attacker).unwrap();
    let err: AgreementStore::ConditionNotFulfilled = a.w.release(&deal, attacker).expect_revert();
    assert_eq!(err.state, state::RELEASED);
    assert_eq!(a.books(), start, "one payment, one payout");
    a.honest_deal_settles_in_full(U256::ZERO);
}

#[test]
fn a_payment_is_released_only_on_its_terms_never_for_more() {
    let mut a = Attack::new();
    let (attacker, did) = (a.attacker, a.attacker_did);
    let start = a.books();
    let (seed, deal, specs) = a.planned(Service::Access, attacker, did, attacker, attacker, PRICE);
    a.create_for(seed, attacker, did, specs).unwrap();
    a.w.lock(&deal, attacker, U256::ZERO).unwrap();
    a.w.serve(&deal, attacker).unwrap();
    // Inflated terms are another payment id, which does not exist, so neither does its service.
    for amount in [2 * PRICE, PRICE + 1] {
        let mut inflated = deal.clone();
        inflated.amounts = vec![U256::from(amount)];
        let err: PaymentCondition::ServiceNotFulfilled =
            a.w.release(&inflated, attacker).expect_revert();
        assert_eq!(err.state, state::UNINITIALIZED);
    }
    let mut split = deal.clone();
    split.receivers = vec![attacker, attacker];
    split.amounts = vec![U256::from(PRICE), U256::from(PRICE)];
    let err: PaymentCondition::ServiceNotFulfilled = a.w.release(&split, attacker).expect_revert();
    assert_eq!(err.state, state::UNINITIALIZED);
    assert_eq!(a.books().escrow, start.escrow + U256::from(PRICE));
    a.w.release(&deal, attacker).unwrap();
    assert_eq!(a.books(), start);
    a.honest_deal_settles_in_full(U256::ZERO);
}

// ---- standing approvals ----

#[test]
fn a_rogue_template_cannot_pull_from_a_victims_standing_approval() {
    // Old contracts: `lockFor(payer = victim)` from the template pulled from any account that had
    // approved the lock condition. The payment condition now takes only from its own caller.
    let mut a = Attack::new();
    let (attacker, victim, did, rogue) = (a.attacker, a.victim, a.attacker_did, a.rogue);
    let (token, payment) = (a.w.token, a.w.suite.payment);
    let start = a.books();

    // An agreement of the victim paying the attacker, created without the victim.
    let (seed, deal, specs) = a.planned(Service::Access, victim, did, victim, attacker, PRICE);
    a.create_for(seed, victim, did, specs).unwrap();
    // The template pays it "for" the victim: the payer is the template, so these are other terms.
    let lock = PaymentCondition::lockCall {
        agreementId: deal.agreement_id,
        did,
        service: deal.service_condition,
        payment: deal.payment(),
    };
    let err: AgreementStore::ConditionNotFound = a.execute(payment, &lock).expect_revert();
    let as_rogue = a.deal(
        Service::Access,
        deal.service_condition,
        deal.agreement_id,
        did,
        rogue,
        attacker,
        PRICE,
    );
    assert_eq!(err.conditionId, as_rogue.payment_id);
    assert_eq!(a.w.state(deal.payment_id), state::UNFULFILLED);
    assert_eq!(a.books(), start, "the victim's approval was not used");

    // An agreement whose payer is the template itself: it pays from its own balance, or not at all.
    let (seed, own, specs) = a.planned(Service::Access, victim, did, rogue, attacker, PRICE);
    a.create_for(seed, victim, did, specs).unwrap();
    let lock = PaymentCondition::lockCall {
        agreementId: own.agreement_id,
        did,
        service: own.service_condition,
        payment: own.payment(),
    };
    let err: MockERC20::ERC20InsufficientAllowance = a.execute(payment, &lock).expect_revert();
    assert_eq!(err.spender, payment);
    assert_eq!(a.books(), start);
    assert_eq!(a.w.state(own.payment_id), state::UNFULFILLED);
    // Funded by the attacker, it pays with the attacker's own money.
    a.w.transact(
        attacker,
        token,
        &MockERC20::transferCall {
            to: rogue,
            value: U256::from(PRICE),
        },
        U256::ZERO,
    )
    .unwrap();
    a.execute(
        token,
        &MockERC20::approveCall {
            spender: payment,
            value: U256::MAX,
        },
    )
    .unwrap();
    a.execute(payment, &lock)
        .expect("the template pays for itself");
    let books = a.books();
    assert_eq!(books.victim, start.victim, "never the victim");
    assert_eq!(books.rogue, U256::ZERO);
    assert_eq!(books.attacker, start.attacker - U256::from(PRICE));
    assert_eq!(books.escrow, start.escrow + U256::from(PRICE));
    a.honest_deal_settles_in_full(U256::from(PRICE));
}

#[test]
fn create_agreement_for_lies_charge_only_the_caller_for_its_own_terms() {
    let mut a = Attack::new();
    let (attacker, victim, did) = (a.attacker, a.victim, a.attacker_did);
    let access = a.w.suite.access;
    let start = a.books();

    // 1. A made-up agreement id: the caller's payment matches no condition.
    let fake = keccak256(b"no such agreement");
    a.script(fake, access, Address::ZERO, B256::ZERO, vec![]);
    let err: AgreementStore::ConditionNotFound = a
        .buy_through_rogue(attacker, did, attacker, PRICE)
        .expect_revert();
    let expected = a.deal(
        Service::Access,
        access,
        fake,
        did,
        attacker,
        attacker,
        PRICE,
    );
    assert_eq!(err.conditionId, expected.payment_id);
    assert_eq!(a.books(), start);

    // 2. Another consumer's agreement: the victim created one on the keeper's offer, unpaid. The
    //    attacker's purchase through the rogue template answers the victim's agreement id.
    let keeper_offer = {
        let (did, token, provider) = (a.w.did, a.w.token, a.w.provider);
        let offer = a.w.offer(did, token, &[(provider, PRICE)]);
        a.w.sign_offer(Service::Access, offer)
    };
    let (victims, _) = a.w.create(Service::Access, victim, &keeper_offer).unwrap();
    a.script(
        victims.agreement_id,
        access,
        Address::ZERO,
        B256::ZERO,
        vec![],
    );
    let (world_did, provider) = (a.w.did, a.w.provider);
    let err: AgreementStore::ConditionNotFound = a
        .buy_through_rogue(attacker, world_did, provider, PRICE)
        .expect_revert();
    let as_attacker = a.deal(
        Service::Access,
        access,
        victims.agreement_id,
        world_did,
        attacker,
        provider,
        PRICE,
    );
    assert_eq!(err.conditionId, as_attacker.payment_id);
    assert_eq!(a.w.state(victims.payment_id), state::UNFULFILLED);
    assert_eq!(a.books(), start, "neither the victim nor the attacker paid");
    // Lured into buying through the rogue template, the victim is charged its own terms only:
    // cheaper terms match no condition, its agreement's exact terms pay its own agreement.
    let err: AgreementStore::ConditionNotFound = a
        .buy_through_rogue(victim, world_did, provider, 1)
        .expect_revert();
    assert_ne!(err.conditionId, victims.payment_id);
    a.buy_through_rogue(victim, world_did, provider, PRICE)
        .expect("pays its own agreement");
    assert_eq!(a.w.state(victims.payment_id), state::FULFILLED);
    let books = a.books();
    assert_eq!(books.victim, start.victim - U256::from(PRICE));
    assert_eq!(books.attacker, start.attacker);
    let keeper = a.w.keeper;
    a.w.serve_and_release(&victims, keeper)
        .expect("the keeper serves the victim's agreement as usual");

    // 3. A service that does not exist: the agreement is created, the caller pays its own terms,
    //    and the payment can never be released, only refunded to its payer.
    let ghost = Address::repeat_byte(0x99);
    let seed_less = a.deal(
        Service::Access,
        ghost,
        B256::ZERO,
        did,
        attacker,
        attacker,
        PRICE,
    );
    let payment_spec = a.payment_spec(&seed_less);
    a.script(B256::ZERO, ghost, attacker, did, vec![payment_spec.clone()]);
    let before = a.books();
    let receipt = a
        .buy_through_rogue(attacker, did, attacker, PRICE)
        .expect("the caller pays for its own terms");
    let agreement = agreement_id(B256::ZERO, attacker, &payment_spec);
    assert_eq!(receipt.output, agreement);
    let ghost_deal = a.deal(
        Service::Access,
        ghost,
        agreement,
        did,
        attacker,
        attacker,
        PRICE,
    );
    assert_eq!(a.w.state(ghost_deal.payment_id), state::FULFILLED);
    assert_eq!(a.books().attacker, before.attacker - U256::from(PRICE));
    assert_eq!(a.books().victim, before.victim);
    let err: PaymentCondition::ServiceNotFulfilled =
        a.w.release(&ghost_deal, attacker).expect_revert();
    assert_eq!(
        (err.serviceConditionId, err.state),
        (ghost_deal.service_id, state::UNINITIALIZED)
    );
    let receipt = a.w.refund(&ghost_deal, victim).expect("anyone refunds");
    let refunded = receipt.expect_event::<PaymentCondition::PaymentRefunded>();
    assert_eq!(
        (refunded.payer, refunded.amount),
        (attacker, U256::from(PRICE))
    );
    assert_eq!(a.books(), before, "back to its payer");
    let err: AgreementStore::ConditionNotFulfilled =
        a.w.refund(&ghost_deal, attacker).expect_revert();
    assert_eq!(err.state, state::REFUNDED);
    a.honest_deal_settles_in_full(U256::ZERO);
}

// ---- conditions the template does not own ----

#[test]
fn a_rogue_template_cannot_touch_or_recreate_another_agreement() {
    let mut a = Attack::new();
    let (attacker, victim, did, rogue) = (a.attacker, a.victim, a.attacker_did, a.rogue);
    let honest = a.honest.clone();
    let store = a.w.suite.agreement_store;
    let start = a.books();
    // Store calls as the template: refused, the caller is not the condition's contract.
    for id in [honest.payment_id, honest.service_id] {
        let err: AgreementStore::NotConditionContract = a
            .execute(store, &AgreementStore::fulfilCall { conditionId: id })
            .expect_revert();
        assert_eq!((err.conditionId, err.caller), (id, rogue));
        let err: AgreementStore::NotConditionContract = a
            .execute(store, &AgreementStore::abortCall { conditionId: id })
            .expect_revert();
        assert_eq!((err.conditionId, err.caller), (id, rogue));
    }
    // The honest payment's value hash under a new agreement is a new, unpaid payment; the honest
    // agreement's own ids cannot be created again.
    let honest_payment = spec(
        a.w.suite.payment,
        payment_hash(
            honest.did,
            victim,
            honest.service_condition,
            honest.token,
            &honest.receivers,
            &honest.amounts,
            honest.fee,
        ),
        1800,
    );
    // World::seed's n-th seed is 8 bytes of keccak256(n) at the end of 32: find the honest one.
    let honest_seed = (1u64..64)
        .map(|n| {
            let mut seed = B256::ZERO;
            seed[24..].copy_from_slice(&keccak256(n.to_be_bytes())[..8]);
            seed
        })
        .find(|seed| agreement_id(*seed, victim, &honest_payment) == honest.agreement_id)
        .expect("the honest deal's seed");
    let err: AgreementStore::ConditionAlreadyExists = a
        .create_for(
            honest_seed,
            victim,
            honest.did,
            vec![honest_payment.clone(), spec(rogue, B256::ZERO, 0)],
        )
        .expect_revert();
    assert_eq!(err.conditionId, honest.payment_id);
    let seed = a.w.seed();
    a.create_for(seed, victim, honest.did, vec![honest_payment.clone()])
        .expect("a new agreement with the same terms");
    let copy = agreement_id(seed, victim, &honest_payment);
    assert_eq!(
        a.w.state(condition_id(
            copy,
            a.w.suite.payment,
            honest_payment.valueHash
        )),
        state::UNFULFILLED
    );
    // Fulfilling a service in the attacker's agreement that names the honest payment (paid) does
    // not release it: release derives both ids from the agreement it is given.
    let seed = a.w.seed();
    let access = a.w.suite.access;
    let named = spec(
        access,
        keccak256((did, victim, honest.payment_id).abi_encode_params()),
        3600,
    );
    let own_agreement = agreement_id(seed, victim, &named);
    a.create_for(seed, victim, did, vec![named]).unwrap();
    let call = AccessCondition::fulfilCall {
        agreementId: own_agreement,
        did,
        consumer: victim,
        paymentConditionId: honest.payment_id,
    };
    a.w.transact(attacker, access, &call, U256::ZERO)
        .expect("the attacker serves its own asset");
    let mut hijack = honest.clone();
    hijack.agreement_id = own_agreement;
    hijack.did = did;
    let err: PaymentCondition::ServiceNotFulfilled = a.w.release(&hijack, attacker).expect_revert();
    assert_eq!(err.state, state::UNINITIALIZED);
    let err: PaymentCondition::ServiceNotFulfilled = a.w.release(&honest, attacker).expect_revert();
    assert_eq!(
        (err.serviceConditionId, err.state),
        (honest.service_id, state::UNFULFILLED)
    );
    // Nor can the attacker serve the honest agreement on the keeper's asset.
    let err: AccessCondition::NotAssetServer = a.w.serve(&honest, attacker).expect_revert();
    assert_eq!(err.caller, attacker);
    assert_eq!(a.books(), start);
    a.honest_deal_settles_in_full(U256::ZERO);
}

#[test]
fn an_unserved_payment_is_only_refunded_to_its_payer() {
    // Release without a Fulfilled service: before the service condition is created, while it is
    // Unfulfilled, and after it was Aborted.
    let mut a = Attack::new();
    let (attacker, victim, did) = (a.attacker, a.victim, a.attacker_did);
    let start = a.books();
    let (seed, deal, specs) = a.planned(Service::Access, attacker, did, attacker, attacker, PRICE);
    // Only the payment is created: its service condition never exists.
    a.create_for(seed, attacker, did, vec![specs[0].clone()])
        .unwrap();
    a.w.lock(&deal, attacker, U256::ZERO).unwrap();
    let err: PaymentCondition::ServiceNotFulfilled = a.w.release(&deal, attacker).expect_revert();
    assert_eq!(
        (err.serviceConditionId, err.state),
        (deal.service_id, state::UNINITIALIZED)
    );
    // Refunded to its payer, whoever calls, with exactly what it paid.
    a.w.refund(&deal, victim).unwrap();
    assert_eq!(a.books(), start);

    // With the service created but not served: no release, no refund before the time out.
    let (seed, deal, specs) = a.planned(Service::Access, attacker, did, attacker, attacker, PRICE);
    a.create_for(seed, attacker, did, specs).unwrap();
    a.w.lock(&deal, attacker, U256::ZERO).unwrap();
    let err: PaymentCondition::ServiceNotFulfilled = a.w.release(&deal, attacker).expect_revert();
    assert_eq!(err.state, state::UNFULFILLED);
    let err: PaymentCondition::ServiceNotAborted = a.w.refund(&deal, attacker).expect_revert();
    assert_eq!(err.state, state::UNFULFILLED);
    a.w.chain.warp(3600);
    a.w.abort_service(&deal, victim).unwrap();
    let err: PaymentCondition::ServiceNotFulfilled = a.w.release(&deal, attacker).expect_revert();
    assert_eq!(err.state, state::ABORTED);
    a.w.refund(&deal, victim).unwrap();
    assert_eq!(a.books(), start);
    a.honest_deal_settles_in_full(U256::ZERO);
}

// ---- the review's exploit, end to end ----

#[test]
fn the_reviews_exploit_sequence_fails() {
    // Review M-1, reproduced on the old contracts through PassthroughTemplate: the template created
    // [lock(payer = attacker, receivers = [attacker], 1,000), escrow(lockId, [lockId]),
    // escrow(lockId, [lockId, lockId])]; the attacker locked 1,000 once and released each escrow
    // condition: it paid 1,000 and took 2,000, out of the honest deals' escrow. The honest provider
    // was then credited 1,000 that could never be withdrawn. A second route had the template lock
    // with payer = victim through `lockFor`, pulling on the victim's standing approval.
    //
    // The same sequence against the real PaymentCondition, with the rogue template approved.
    let mut a = Attack::new();
    let (attacker, victim, did) = (a.attacker, a.victim, a.attacker_did);
    let (access, compute) = (a.w.suite.access, a.w.suite.compute_execution);
    let start = a.books();
    assert_eq!(start.escrow, U256::from(PRICE), "the honest deal's 1,000");

    // One agreement: the attacker's payment, its access condition, and a second release path for
    // the same payment through the compute condition, plus a shadow payment with the same terms.
    let (seed, deal, mut specs) =
        a.planned(Service::Access, attacker, did, attacker, attacker, PRICE);
    let second = a.deal(
        Service::Compute,
        compute,
        deal.agreement_id,
        did,
        attacker,
        attacker,
        PRICE,
    );
    specs.push(a.payment_spec(&second));
    specs.push(a.service_spec(&second));
    a.create_for(seed, attacker, did, specs).unwrap();
    a.w.lock(&deal, attacker, U256::ZERO)
        .expect("lock 1,000 once");
    a.w.serve(&deal, attacker).unwrap();
    a.w.release(&deal, attacker).expect("first release: 1,000");
    // Second release of the same payment.
    let err: AgreementStore::ConditionNotFulfilled = a.w.release(&deal, attacker).expect_revert();
    assert_eq!(
        (err.conditionId, err.state),
        (deal.payment_id, state::RELEASED)
    );
    // Release through the second path: its payment was never paid.
    let err: AgreementStore::ConditionNotFulfilled =
        a.w.serve_and_release(&second, attacker).expect_revert();
    assert_eq!(
        (err.conditionId, err.state),
        (second.payment_id, state::UNFULFILLED)
    );
    let call = ComputeExecutionCondition::fulfilCall {
        agreementId: second.agreement_id,
        did,
        consumer: attacker,
        paymentConditionId: second.payment_id,
        result: B256::repeat_byte(1),
    };
    let err: ComputeExecutionCondition::DependencyNotFulfilled =
        a.w.transact(attacker, compute, &call, U256::ZERO)
            .expect_revert();
    assert_eq!(err.conditionId, second.payment_id);

    // The victim route: an agreement with payer = victim, paid "for" it by the template.
    let (seed, victims, specs) = a.planned(Service::Access, victim, did, victim, attacker, PRICE);
    a.create_for(seed, victim, did, specs).unwrap();
    let lock = PaymentCondition::lockCall {
        agreementId: victims.agreement_id,
        did,
        service: access,
        payment: victims.payment(),
    };
    let payment = a.w.suite.payment;
    let _: AgreementStore::ConditionNotFound = a.execute(payment, &lock).expect_revert();
    let err: PaymentCondition::ServiceNotFulfilled =
        a.w.release(&victims, attacker).expect_revert();
    assert_eq!(err.state, state::UNFULFILLED);

    let end = a.books();
    assert_eq!(
        end.attacker, start.attacker,
        "paid 1,000 and took 1,000, not 2,000"
    );
    assert_eq!(
        end.victim, start.victim,
        "the victim's approval was never used"
    );
    assert_eq!(end.escrow, start.escrow, "the honest escrow is whole");
    a.honest_deal_settles_in_full(U256::ZERO);
}
