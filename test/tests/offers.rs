//! Provider-signed offers (review M-2): an agreement exists only on a valid offer, signed (ECDSA or
//! ERC-1271) by an account that may serve the asset now, for the asset's current offer epoch,
//! before its expiry, in the template's own EIP-712 domain.
//!
//! Before the redesign the consumer chose token, receivers, amounts and time out, and the `did` was
//! not even checked: a consumer could create an access agreement on the provider's asset paying 1
//! wei to itself, and the provider's keeper served it. Every refusal below is checked on both
//! purchase paths (`PaymentCondition.createAgreementAndPay` and the template's two-step
//! `createAgreement`) and with `checkOffer`, with its decoded error, and shown to move no token and
//! to create no condition.

mod common;

use alloy::{
    primitives::{Address, B256, Bytes, U256, keccak256},
    sol_types::{SolError, SolValue},
};
use insitu_bindings::offers::{self, Offer};
use insitu_bindings::{
    AccessCondition, AgreementStore, AssetRegistry, ERC1271Wallet, PaymentCondition,
    ServiceTemplate,
};
use insitu_tests::harness::{ExpectRevert, Receipt, TxError};
use insitu_tests::world::{
    self, Deal, OFFER_MAX_TIMEOUT, OFFER_MIN_TIMEOUT, OFFER_VALIDITY, Service, SignedOffer, World,
    state,
};

const PRICE: u64 = 1_000;

/// The ids an agreement of `consumer` with `seed` on `offer` gets, derived as the contracts do:
/// (agreement, payment condition, service condition).
fn ids(
    w: &World,
    service: Service,
    seed: B256,
    consumer: Address,
    offer: &Offer,
    fee: U256,
) -> (B256, B256, B256) {
    let payment = w.suite.payment;
    let service_condition = w.service_address(service);
    let value_hash = keccak256(
        (
            offer.did,
            consumer,
            service_condition,
            offer.token,
            offer.receivers.clone(),
            offer.amounts.clone(),
            fee,
        )
            .abi_encode_params(),
    );
    let agreement = keccak256((seed, consumer, payment, value_hash).abi_encode_params());
    let payment_id = keccak256((agreement, payment, value_hash).abi_encode_params());
    let service_hash = keccak256((offer.did, consumer, payment_id).abi_encode_params());
    let service_id = keccak256((agreement, service_condition, service_hash).abi_encode_params());
    (agreement, payment_id, service_id)
}

/// `consumer` buys in one transaction with an explicit seed, time out and cap.
#[allow(clippy::too_many_arguments)]
fn pay(
    w: &mut World,
    service: Service,
    consumer: Address,
    signed: &SignedOffer,
    seed: B256,
    service_timeout: u32,
    max_total: U256,
    value: U256,
) -> Result<Receipt<B256>, TxError> {
    let call = PaymentCondition::createAgreementAndPayCall {
        template: w.template(service),
        seed,
        offer: signed.offer.clone().into(),
        signature: signed.signature.clone(),
        serviceTimeout: service_timeout,
        maxTotal: max_total,
    };
    let payment = w.suite.payment;
    w.transact(consumer, payment, &call, value)
}

/// `consumer` creates the agreement with the template (two-step path), paying nothing yet.
fn create(
    w: &mut World,
    service: Service,
    consumer: Address,
    signed: &SignedOffer,
    seed: B256,
    service_timeout: u32,
    max_total: U256,
) -> Result<Receipt<B256>, TxError> {
    let call = ServiceTemplate::createAgreementCall {
        seed,
        offer: signed.offer.clone(),
        signature: signed.signature.clone(),
        serviceTimeout: service_timeout,
        maxTotal: max_total,
    };
    let template = w.template(service);
    w.transact(consumer, template, &call, U256::ZERO)
}

fn check_offer(w: &mut World, service: Service, signed: &SignedOffer) -> Result<(), TxError> {
    let call = ServiceTemplate::checkOfferCall {
        offer: signed.offer.clone(),
        signature: signed.signature.clone(),
    };
    let template = w.template(service);
    w.chain.call(template, &call).map(|_| ())
}

/// Token balances of every party, the offer's receivers and the escrow.
fn balances(w: &mut World, offer: &Offer) -> Vec<(Address, U256)> {
    let mut accounts = vec![
        w.consumer,
        w.provider,
        w.keeper,
        w.co_provider,
        w.outsider,
        w.fee_receiver,
        w.suite.payment,
    ];
    accounts.extend(offer.receivers.iter().copied());
    let token = w.token;
    accounts
        .into_iter()
        .map(|account| (account, w.balance(token, account)))
        .collect()
}

/// Tries to buy `signed` as `consumer` on both paths with time out `timeout`: each must revert with
/// `E`, move no token and create no condition. Returns the error of the one-transaction path.
#[track_caller]
fn refused_purchase<E: SolError + PartialEq + std::fmt::Debug>(
    w: &mut World,
    service: Service,
    consumer: Address,
    signed: &SignedOffer,
    timeout: u32,
) -> E {
    let before = balances(w, &signed.offer);
    let seed = w.seed();
    let err: E = pay(
        w,
        service,
        consumer,
        signed,
        seed,
        timeout,
        U256::MAX,
        U256::ZERO,
    )
    .expect_revert();
    let two_step: E =
        create(w, service, consumer, signed, seed, timeout, U256::MAX).expect_revert();
    assert_eq!(two_step, err, "both purchase paths refuse alike");
    assert_eq!(
        balances(w, &signed.offer),
        before,
        "a refused purchase moved tokens"
    );
    // Nothing was created, whatever fee the agreement would have had.
    for fee in [U256::ZERO, U256::from(PRICE / 100)] {
        let (_, payment_id, service_id) = ids(w, service, seed, consumer, &signed.offer, fee);
        assert_eq!(w.state(payment_id), state::UNINITIALIZED);
        assert_eq!(w.state(service_id), state::UNINITIALIZED);
    }
    err
}

/// As [`refused_purchase`] with the longest time out, and `checkOffer` must refuse alike.
#[track_caller]
fn refused<E: SolError + PartialEq + std::fmt::Debug>(
    w: &mut World,
    service: Service,
    signed: &SignedOffer,
) -> E {
    let consumer = w.consumer;
    let err = refused_purchase::<E>(w, service, consumer, signed, 0);
    let checked: E = check_offer(w, service, signed).expect_revert();
    assert_eq!(checked, err, "checkOffer gives the same reason");
    err
}

/// The keeper's signed offer of [`PRICE`] to the provider on the world's asset.
fn keeper_offer(w: &mut World, service: Service) -> SignedOffer {
    let (did, token, provider) = (w.did, w.token, w.provider);
    let offer = w.offer(did, token, &[(provider, PRICE)]);
    w.sign_offer(service, offer)
}

/// `owner` starts the transfer of `did` to `to`, and `to` accepts.
fn transfer(w: &mut World, did: B256, owner: Address, to: Address) {
    let registry = w.suite.asset_registry;
    w.transact(
        owner,
        registry,
        &AssetRegistry::transferOwnershipCall { did, newOwner: to },
        U256::ZERO,
    )
    .expect("start the transfer");
    w.transact(
        to,
        registry,
        &AssetRegistry::acceptOwnershipCall { did },
        U256::ZERO,
    )
    .expect("accept the transfer");
}

fn registry_call<C: alloy::sol_types::SolCall>(w: &mut World, from: Address, call: &C) {
    let registry = w.suite.asset_registry;
    w.transact(from, registry, call, U256::ZERO)
        .expect("a registry call");
}

// ---- the happy paths ----

#[test]
fn a_consumer_buys_a_signed_offer_in_one_transaction() {
    for service in [Service::Access, Service::Compute] {
        let mut w = World::with_fee();
        let (consumer, keeper, provider, co_provider, token) =
            (w.consumer, w.keeper, w.provider, w.co_provider, w.token);
        let did = w.did;
        let offer = w.offer(did, token, &[(provider, 700), (co_provider, 300)]);
        let signed = w.sign_offer(service, offer.clone());
        let fee = U256::from(10); // 1% of 1,000
        let total = U256::from(1_010);
        let timeout = 2 * 24 * 3600;
        let seed = w.seed();
        let (agreement_id, payment_id, service_id) = ids(&w, service, seed, consumer, &offer, fee);
        let preview: ServiceTemplate::Preview = w
            .chain
            .call(
                w.template(service),
                &ServiceTemplate::previewAgreementCall {
                    seed,
                    consumer,
                    offer: offer.clone(),
                    serviceTimeout: timeout,
                },
            )
            .unwrap();
        assert_eq!(
            (
                preview.agreementId,
                preview.paymentConditionId,
                preview.serviceConditionId,
                preview.fee,
                preview.total,
                preview.serviceTimeout
            ),
            (agreement_id, payment_id, service_id, fee, total, timeout)
        );
        check_offer(&mut w, service, &signed).expect("a valid offer passes checkOffer");
        let before = balances(&mut w, &offer);

        let receipt = pay(
            &mut w,
            service,
            consumer,
            &signed,
            seed,
            timeout,
            total,
            U256::ZERO,
        )
        .expect("buy at exactly the cap");
        assert_eq!(receipt.output, agreement_id);
        let created = receipt.expect_event::<AgreementStore::AgreementCreated>();
        assert_eq!(
            (
                created.agreementId,
                created.did,
                created.consumer,
                created.template,
                created.conditionIds.clone()
            ),
            (
                agreement_id,
                did,
                consumer,
                w.template(service),
                vec![payment_id, service_id]
            )
        );
        let terms = receipt
            .events_from::<ServiceTemplate::AgreementTerms>(w.template(service))
            .unwrap();
        assert_eq!(
            terms,
            vec![ServiceTemplate::AgreementTerms {
                agreementId: agreement_id,
                provider: keeper,
                token,
                receivers: vec![provider, co_provider],
                amounts: vec![U256::from(700), U256::from(300)],
                fee,
                serviceTimeout: timeout,
                checksum: world::metadata_checksum(),
            }]
        );
        let fulfilled = receipt.expect_event::<AgreementStore::ConditionFulfilled>();
        assert_eq!(
            (fulfilled.conditionId, fulfilled.conditionContract),
            (payment_id, w.suite.payment)
        );
        // The consumer paid exactly the total into escrow.
        let after = balances(&mut w, &offer);
        assert_eq!(after[0].1, before[0].1 - total);
        assert_eq!(after[6].1, before[6].1 + total);
        assert_eq!(w.state(payment_id), state::FULFILLED);
        assert_eq!(w.state(service_id), state::UNFULFILLED);
        let now = w.chain.timestamp();
        let payment_condition = common::condition(&mut w, payment_id);
        let service_record = common::condition(&mut w, service_id);
        assert_eq!(
            payment_condition.timeOut,
            common::u40(now + u64::from(timeout / 2)),
            "payment window: half the service time out"
        );
        assert_eq!(
            service_record.timeOut,
            common::u40(now + u64::from(timeout))
        );

        // The keeper serves and releases: the offer's receivers are paid.
        let deal = w.deal_from(service, &receipt);
        w.serve_and_release(&deal, keeper).expect("serve");
        assert_eq!(w.state(payment_id), state::RELEASED);
        assert_eq!(w.balance(token, provider), before[1].1 + U256::from(700));
        assert_eq!(w.balance(token, co_provider), before[3].1 + U256::from(300));
    }
}

#[test]
fn a_consumer_creates_on_a_signed_offer_then_pays() {
    for service in [Service::Access, Service::Compute] {
        let mut w = World::with_fee();
        let (consumer, keeper, provider, token) = (w.consumer, w.keeper, w.provider, w.token);
        let signed = keeper_offer(&mut w, service);
        let before = balances(&mut w, &signed.offer);
        let seed = w.seed();
        let receipt = create(
            &mut w,
            service,
            consumer,
            &signed,
            seed,
            OFFER_MIN_TIMEOUT,
            U256::from(1_010),
        )
        .expect("create");
        let (agreement_id, payment_id, service_id) =
            ids(&w, service, seed, consumer, &signed.offer, U256::from(10));
        assert_eq!(receipt.output, agreement_id);
        let terms = receipt.expect_event::<ServiceTemplate::AgreementTerms>();
        assert_eq!(
            (
                terms.provider,
                terms.token,
                terms.fee,
                terms.serviceTimeout,
                terms.checksum
            ),
            (
                keeper,
                token,
                U256::from(10),
                OFFER_MIN_TIMEOUT,
                world::metadata_checksum()
            )
        );
        assert!(!receipt.has_event::<AgreementStore::ConditionFulfilled>());
        assert_eq!(balances(&mut w, &signed.offer), before, "nothing paid yet");
        assert_eq!(w.state(payment_id), state::UNFULFILLED);
        let deal = w.deal_from(service, &receipt);
        assert_eq!(deal.service_id, service_id);
        w.lock(&deal, consumer, U256::ZERO).expect("pay");
        assert_eq!(w.state(payment_id), state::FULFILLED);
        w.serve_and_release(&deal, keeper).expect("serve");
        assert_eq!(w.balance(token, provider), before[1].1 + U256::from(PRICE));
        assert_eq!(w.balance(token, consumer), before[0].1 - U256::from(1_010));
    }
}

#[test]
fn a_signed_offer_is_reusable_until_it_lapses() {
    // An offer is a price list, not an order: any consumer may buy it, again, with a new seed.
    let mut w = World::new();
    let signed = keeper_offer(&mut w, Service::Access);
    let (consumer, outsider, token, payment) = (w.consumer, w.outsider, w.token, w.suite.payment);
    w.mint(token, outsider, U256::from(PRICE));
    w.approve(token, outsider, payment, U256::from(PRICE));
    let (first, _) = w
        .buy(Service::Access, consumer, &signed, U256::ZERO)
        .unwrap();
    let (second, _) = w
        .buy(Service::Access, consumer, &signed, U256::ZERO)
        .unwrap();
    let (third, _) = w
        .buy(Service::Access, outsider, &signed, U256::ZERO)
        .unwrap();
    assert_ne!(first.agreement_id, second.agreement_id);
    assert_eq!(third.consumer, outsider);
    // The same seed twice is the same first condition: refused.
    let seed = w.seed();
    pay(
        &mut w,
        Service::Access,
        consumer,
        &signed,
        seed,
        0,
        U256::MAX,
        U256::ZERO,
    )
    .unwrap();
    let before = w.balance(token, consumer);
    let err: AgreementStore::ConditionAlreadyExists = pay(
        &mut w,
        Service::Access,
        consumer,
        &signed,
        seed,
        0,
        U256::MAX,
        U256::ZERO,
    )
    .expect_revert();
    let (_, payment_id, _) = ids(
        &w,
        Service::Access,
        seed,
        consumer,
        &signed.offer,
        U256::ZERO,
    );
    assert_eq!(err.conditionId, payment_id);
    assert_eq!(w.balance(token, consumer), before);
}

#[test]
fn a_total_above_the_consumers_cap_is_refused_on_both_paths() {
    let mut w = World::with_fee();
    let signed = keeper_offer(&mut w, Service::Access);
    let consumer = w.consumer;
    let before = balances(&mut w, &signed.offer);
    let seed = w.seed();
    let cap = U256::from(1_009);
    let err: PaymentCondition::TotalAboveMaximum = pay(
        &mut w,
        Service::Access,
        consumer,
        &signed,
        seed,
        0,
        cap,
        U256::ZERO,
    )
    .expect_revert();
    assert_eq!((err.total, err.maxTotal), (U256::from(1_010), cap));
    let err: ServiceTemplate::TotalAboveMaximum =
        create(&mut w, Service::Access, consumer, &signed, seed, 0, cap).expect_revert();
    assert_eq!((err.total, err.maxTotal), (U256::from(1_010), cap));
    assert_eq!(balances(&mut w, &signed.offer), before);
    let (_, payment_id, _) = ids(
        &w,
        Service::Access,
        seed,
        consumer,
        &signed.offer,
        U256::from(10),
    );
    assert_eq!(w.state(payment_id), state::UNINITIALIZED);
}

#[test]
fn only_the_payment_condition_creates_agreements_for_a_consumer() {
    let mut w = World::new();
    let signed = keeper_offer(&mut w, Service::Access);
    let (outsider, consumer) = (w.outsider, w.consumer);
    let call = ServiceTemplate::createAgreementForCall {
        consumer,
        seed: B256::ZERO,
        offer: signed.offer.clone(),
        signature: signed.signature.clone(),
        serviceTimeout: 0,
        feeBps: 0,
    };
    let template = w.template(Service::Access);
    for caller in [outsider, consumer, w.keeper] {
        let err: ServiceTemplate::NotPaymentCondition = w
            .transact(caller, template, &call, U256::ZERO)
            .expect_revert();
        assert_eq!(err.caller, caller);
    }
}

// ---- the digest ----

#[test]
fn the_rust_signing_hash_is_the_templates_offer_digest() {
    let mut w = World::new();
    let (did, token, provider, co_provider) = (w.did, w.token, w.provider, w.co_provider);
    let mut offer = w.offer(did, token, &[(provider, 1), (co_provider, u64::MAX)]);
    offer.epoch = 7;
    for service in [Service::Access, Service::Compute] {
        let on_chain = w
            .chain
            .call(
                w.template(service),
                &ServiceTemplate::offerDigestCall {
                    offer: offer.clone(),
                },
            )
            .unwrap();
        assert_eq!(
            offers::signing_hash(&offer, &w.offer_domain(service)),
            on_chain
        );
    }
    let access = offers::signing_hash(&offer, &w.offer_domain(Service::Access));
    let compute = offers::signing_hash(&offer, &w.offer_domain(Service::Compute));
    assert_ne!(access, compute, "each template signs in its own domain");
}

// ---- expiry ----

#[test]
fn an_offer_is_refused_from_its_expiry_on() {
    let mut w = World::new();
    let signed = keeper_offer(&mut w, Service::Access);
    let expiry = signed.offer.expiry;
    assert_eq!(expiry, w.chain.timestamp() + OFFER_VALIDITY);
    w.chain.set_timestamp(expiry - 1);
    check_offer(&mut w, Service::Access, &signed).expect("valid one second before");
    w.chain.set_timestamp(expiry);
    let err: ServiceTemplate::OfferExpired = refused(&mut w, Service::Access, &signed);
    assert_eq!(err.expiry, expiry, "refused at exactly the expiry");
    w.chain.warp(3600);
    let err: ServiceTemplate::OfferExpired = refused(&mut w, Service::Access, &signed);
    assert_eq!(err.expiry, expiry);
}

#[test]
fn a_purchase_one_second_before_expiry_succeeds() {
    let mut w = World::new();
    let signed = keeper_offer(&mut w, Service::Access);
    w.chain.set_timestamp(signed.offer.expiry - 1);
    let consumer = w.consumer;
    w.buy(Service::Access, consumer, &signed, U256::ZERO)
        .expect("still valid");
}

// ---- altered offers ----

#[test]
fn every_field_of_an_offer_is_bound_by_the_signature() {
    let service = Service::Access;
    let mut w = World::new();
    let signed = keeper_offer(&mut w, service);
    let (keeper, consumer, provider, outsider) = (w.keeper, w.consumer, w.provider, w.outsider);
    // Another asset the keeper serves: changing the did still breaks the signature.
    let other_did = w.register_asset(provider, &[keeper]);
    let other_token = w.suite.payment; // any other address
    let altered = |change: &dyn Fn(&mut Offer)| {
        let mut offer = signed.offer.clone();
        change(&mut offer);
        SignedOffer {
            offer,
            signature: signed.signature.clone(),
        }
    };
    let cases: Vec<(&str, SignedOffer)> = vec![
        ("did", altered(&|o| o.did = other_did)),
        ("checksum", altered(&|o| o.checksum = keccak256(b"other"))),
        ("token", altered(&|o| o.token = other_token)),
        ("token to ETH", altered(&|o| o.token = Address::ZERO)),
        ("receivers", altered(&|o| o.receivers = vec![consumer])),
        ("amounts", altered(&|o| o.amounts = vec![U256::from(1)])),
        (
            "an extra receiver",
            altered(&|o| {
                o.receivers.push(consumer);
                o.amounts.push(U256::from(1));
            }),
        ),
        (
            "minServiceTimeout",
            altered(&|o| o.minServiceTimeout = OFFER_MIN_TIMEOUT + 1),
        ),
        (
            "maxServiceTimeout",
            altered(&|o| o.maxServiceTimeout = OFFER_MAX_TIMEOUT - 1),
        ),
        ("expiry", altered(&|o| o.expiry += 1)),
        (
            "provider (to the owner)",
            altered(&|o| o.provider = provider),
        ),
    ];
    for (field, offer) in cases {
        let err: ServiceTemplate::InvalidOfferSignature = refused(&mut w, service, &offer);
        assert_eq!(err.provider, offer.offer.provider, "altered {field}");
    }
    // Fields checked before the signature give the more specific error.
    let err: ServiceTemplate::OfferSignerNotServer =
        refused(&mut w, service, &altered(&|o| o.provider = outsider));
    assert_eq!((err.did, err.provider), (signed.offer.did, outsider));
    let unknown = keccak256(b"unregistered");
    let err: ServiceTemplate::AssetNotRegistered =
        refused(&mut w, service, &altered(&|o| o.did = unknown));
    assert_eq!(err.did, unknown);
    let err: ServiceTemplate::OfferRevoked = refused(&mut w, service, &altered(&|o| o.epoch = 1));
    assert_eq!((err.epoch, err.current), (1, 0));
    let past = w.chain.timestamp();
    let err: ServiceTemplate::OfferExpired =
        refused(&mut w, service, &altered(&|o| o.expiry = past));
    assert_eq!(err.expiry, past);
    let err: ServiceTemplate::InvalidOfferTimeouts = refused(
        &mut w,
        service,
        &altered(&|o| o.minServiceTimeout = OFFER_MIN_TIMEOUT - 1),
    );
    assert_eq!(
        (err.minServiceTimeout, err.maxServiceTimeout),
        (OFFER_MIN_TIMEOUT - 1, OFFER_MAX_TIMEOUT)
    );
    // A split the payment terms refuse is refused before the signature is looked at.
    let err: PaymentCondition::ZeroAmount = refused_purchase(
        &mut w,
        service,
        consumer,
        &altered(&|o| o.amounts = vec![U256::ZERO]),
        0,
    );
    assert_eq!(err.index, U256::ZERO);
    // The untouched offer still sells.
    w.buy(service, consumer, &signed, U256::ZERO)
        .expect("the signed offer itself is fine");
}

#[test]
fn a_signature_by_anyone_but_the_named_provider_is_refused() {
    let service = Service::Access;
    let mut w = World::new();
    let (keeper, provider, outsider, consumer) = (w.keeper, w.provider, w.outsider, w.consumer);
    let offer = keeper_offer(&mut w, service).offer;
    // The owner may serve the asset, but it did not sign as the keeper: the offer names the keeper.
    for signer in [outsider, provider, consumer] {
        let signed = w.sign_offer_as(service, offer.clone(), signer);
        let err: ServiceTemplate::InvalidOfferSignature = refused(&mut w, service, &signed);
        assert_eq!(err.provider, keeper, "signed by {}", w.chain.name(signer));
    }
    // Malformed signatures: empty, short, garbage.
    for signature in [
        Bytes::new(),
        Bytes::from(vec![1u8; 64]),
        Bytes::from(vec![7u8; 65]),
    ] {
        let signed = SignedOffer {
            offer: offer.clone(),
            signature,
        };
        let err: ServiceTemplate::InvalidOfferSignature = refused(&mut w, service, &signed);
        assert_eq!(err.provider, keeper);
    }
}

#[test]
fn an_outsider_naming_itself_as_provider_is_not_a_server() {
    let service = Service::Access;
    let mut w = World::new();
    let (outsider, did) = (w.outsider, w.did);
    let mut offer = keeper_offer(&mut w, service).offer;
    offer.provider = outsider;
    // Its own valid signature, and even the consumer paying itself: still refused.
    offer.receivers = vec![outsider];
    let signed = w.sign_offer(service, offer);
    let err: ServiceTemplate::OfferSignerNotServer = refused(&mut w, service, &signed);
    assert_eq!((err.did, err.provider), (did, outsider));
}

#[test]
fn the_consumer_cannot_pay_itself_one_wei() {
    // Review M-2, reproduced on the old contracts: the consumer created an access agreement on the
    // provider's did paying 1 wei to ITSELF (receivers and amounts were the consumer's arguments),
    // locked it, and the provider's keeper fulfilled it: access for free. There is no path without
    // a server's signature now: altering the keeper's offer breaks its signature, signing it
    // oneself as the keeper is not the keeper's signature, and naming oneself as provider is not a
    // server.
    for service in [Service::Access, Service::Compute] {
        let mut w = World::new();
        let (consumer, keeper, did, token) = (w.consumer, w.keeper, w.did, w.token);
        let genuine = keeper_offer(&mut w, service);
        let mut cheap = genuine.offer.clone();
        cheap.receivers = vec![consumer];
        cheap.amounts = vec![U256::from(1)];
        let tampered = SignedOffer {
            offer: cheap.clone(),
            signature: genuine.signature.clone(),
        };
        let err: ServiceTemplate::InvalidOfferSignature = refused(&mut w, service, &tampered);
        assert_eq!(err.provider, keeper);
        let forged = w.sign_offer_as(service, cheap.clone(), consumer);
        let err: ServiceTemplate::InvalidOfferSignature = refused(&mut w, service, &forged);
        assert_eq!(err.provider, keeper);
        cheap.provider = consumer;
        let own = w.sign_offer(service, cheap);
        let err: ServiceTemplate::OfferSignerNotServer = refused(&mut w, service, &own);
        assert_eq!((err.did, err.provider), (did, consumer));
        // A lock on terms of the consumer's choosing matches no agreement: nothing is paid.
        let before = w.balance(token, consumer);
        let fake = Deal {
            service,
            template: w.template(service),
            service_condition: w.service_address(service),
            agreement_id: keccak256(b"made up"),
            did,
            consumer,
            provider: keeper,
            token,
            receivers: vec![consumer],
            amounts: vec![U256::from(1)],
            fee: U256::ZERO,
            service_timeout: OFFER_MAX_TIMEOUT,
            payment_id: B256::ZERO,
            service_id: B256::ZERO,
        };
        let err: AgreementStore::ConditionNotFound =
            w.lock(&fake, consumer, U256::ZERO).expect_revert();
        let payment_id = w
            .chain
            .call(
                w.suite.payment,
                &PaymentCondition::paymentConditionIdOfCall {
                    agreementId: fake.agreement_id,
                    did,
                    payer: consumer,
                    service: fake.service_condition,
                    payment: fake.payment(),
                },
            )
            .unwrap();
        assert_eq!(err.conditionId, payment_id);
        assert_eq!(w.balance(token, consumer), before);
    }
}

// ---- revocation ----

#[test]
fn revoke_offers_by_a_server_revokes_the_signed_offers() {
    let service = Service::Access;
    let mut w = World::new();
    let signed = keeper_offer(&mut w, service);
    let (keeper, did) = (w.keeper, w.did);
    registry_call(&mut w, keeper, &AssetRegistry::revokeOffersCall { did });
    let err: ServiceTemplate::OfferRevoked = refused(&mut w, service, &signed);
    assert_eq!((err.epoch, err.current), (0, 1));
    // A fresh offer for the new epoch sells.
    let fresh = keeper_offer(&mut w, service);
    assert_eq!(fresh.offer.epoch, 1);
    let consumer = w.consumer;
    w.buy(service, consumer, &fresh, U256::ZERO)
        .expect("an offer of the current epoch");
}

#[test]
fn a_removed_provider_or_revoked_delegate_takes_its_offers_with_it_even_if_it_returns() {
    let service = Service::Access;
    let mut w = World::new();
    let (provider, keeper, did) = (w.provider, w.keeper, w.did);
    let signed = keeper_offer(&mut w, service);
    registry_call(
        &mut w,
        provider,
        &AssetRegistry::removeProviderCall {
            did,
            provider: keeper,
        },
    );
    let err: ServiceTemplate::OfferSignerNotServer = refused(&mut w, service, &signed);
    assert_eq!(err.provider, keeper);
    // Back in the provider set, its old offer stays void: the removal bumped the offer epoch.
    registry_call(
        &mut w,
        provider,
        &AssetRegistry::addProviderCall {
            did,
            provider: keeper,
        },
    );
    let err: ServiceTemplate::OfferRevoked = refused(&mut w, service, &signed);
    assert_eq!((err.epoch, err.current), (0, 1));

    // The same for a delegate whose permission is revoked and granted again.
    let delegate = w.chain.account_named("delegate");
    registry_call(
        &mut w,
        provider,
        &AssetRegistry::grantPermissionCall { did, delegate },
    );
    let mut offer = keeper_offer(&mut w, service).offer;
    offer.provider = delegate;
    let by_delegate = w.sign_offer(service, offer);
    check_offer(&mut w, service, &by_delegate).expect("a delegate's offer is valid");
    registry_call(
        &mut w,
        provider,
        &AssetRegistry::revokePermissionCall { did, delegate },
    );
    registry_call(
        &mut w,
        provider,
        &AssetRegistry::grantPermissionCall { did, delegate },
    );
    let err: ServiceTemplate::OfferRevoked = refused(&mut w, service, &by_delegate);
    assert_eq!((err.epoch, err.current), (1, 2));
}

#[test]
fn a_metadata_update_revokes_the_offers_made_for_the_old_metadata() {
    let service = Service::Compute;
    let mut w = World::new();
    let signed = keeper_offer(&mut w, service);
    let (provider, did) = (w.provider, w.did);
    registry_call(
        &mut w,
        provider,
        &AssetRegistry::updateMetadataCall {
            did,
            checksum: keccak256(b"v2"),
            url: "ipfs://v2".into(),
        },
    );
    let err: ServiceTemplate::OfferRevoked = refused(&mut w, service, &signed);
    assert_eq!((err.epoch, err.current), (0, 1));
    let fresh = keeper_offer(&mut w, service);
    assert_eq!(fresh.offer.checksum, keccak256(b"v2"));
    let consumer = w.consumer;
    let (_, receipt) = w.buy(service, consumer, &fresh, U256::ZERO).unwrap();
    assert_eq!(
        receipt
            .expect_event::<ServiceTemplate::AgreementTerms>()
            .checksum,
        keccak256(b"v2"),
        "the agreement names the metadata it was bought for"
    );
}

#[test]
fn a_transfer_revokes_every_offer_made_before_it() {
    let service = Service::Access;
    let mut w = World::new();
    let signed = keeper_offer(&mut w, service);
    let (provider, keeper, did) = (w.provider, w.keeper, w.did);
    let buyer = w.chain.account_named("buyer");
    // The buyer signs an offer as soon as the transfer is started, for the epoch then current.
    registry_call(
        &mut w,
        provider,
        &AssetRegistry::transferOwnershipCall {
            did,
            newOwner: buyer,
        },
    );
    let mut early = signed.offer.clone();
    early.provider = buyer;
    let early = w.sign_offer(service, early);
    let err: ServiceTemplate::OfferSignerNotServer = refused(&mut w, service, &early);
    assert_eq!(err.provider, buyer, "not a server before accepting");
    registry_call(&mut w, buyer, &AssetRegistry::acceptOwnershipCall { did });
    let err: ServiceTemplate::OfferRevoked = refused(&mut w, service, &early);
    assert_eq!((err.epoch, err.current), (0, 1));
    // The seller's keeper no longer serves: its offers are refused for that first.
    let err: ServiceTemplate::OfferSignerNotServer = refused(&mut w, service, &signed);
    assert_eq!((err.did, err.provider), (did, keeper));
    // Even if the buyer takes the same keeper on, its pre-transfer offers stay revoked.
    registry_call(
        &mut w,
        buyer,
        &AssetRegistry::addProviderCall {
            did,
            provider: keeper,
        },
    );
    let err: ServiceTemplate::OfferRevoked = refused(&mut w, service, &signed);
    assert_eq!((err.epoch, err.current), (0, 1));
}

// ---- unregistered asset, bounds, time outs, domain ----

#[test]
fn an_agreement_for_an_unregistered_did_is_impossible() {
    // Test gap 10: the old templates accepted any did, registered or not.
    for service in [Service::Access, Service::Compute] {
        let mut w = World::new();
        let (token, provider) = (w.token, w.provider);
        let unknown = keccak256(b"never registered");
        let mut offer = w.offer(w.did, token, &[(provider, PRICE)]);
        offer.did = unknown;
        let signed = w.sign_offer(service, offer);
        let err: ServiceTemplate::AssetNotRegistered = refused(&mut w, service, &signed);
        assert_eq!(err.did, unknown);
    }
}

#[test]
fn offer_bounds_outside_the_templates_limits_are_refused() {
    let service = Service::Access;
    let mut w = World::new();
    let base = keeper_offer(&mut w, service).offer;
    let max = 90 * 24 * 3600;
    for (min_timeout, max_timeout) in [
        (OFFER_MIN_TIMEOUT - 1, OFFER_MAX_TIMEOUT),
        (0, 0),
        (OFFER_MIN_TIMEOUT, max + 1),
        (7200, 7199),
        (u32::MAX, u32::MAX),
    ] {
        let mut offer = base.clone();
        offer.minServiceTimeout = min_timeout;
        offer.maxServiceTimeout = max_timeout;
        let signed = w.sign_offer(service, offer);
        let err: ServiceTemplate::InvalidOfferTimeouts = refused(&mut w, service, &signed);
        assert_eq!(
            (err.minServiceTimeout, err.maxServiceTimeout),
            (min_timeout, max_timeout)
        );
    }
    // The limits themselves are allowed.
    for (min_timeout, max_timeout) in [(OFFER_MIN_TIMEOUT, OFFER_MIN_TIMEOUT), (max, max)] {
        let mut offer = base.clone();
        offer.minServiceTimeout = min_timeout;
        offer.maxServiceTimeout = max_timeout;
        let signed = w.sign_offer(service, offer);
        let consumer = w.consumer;
        let (deal, _) = w.buy(service, consumer, &signed, U256::ZERO).unwrap();
        assert_eq!(deal.service_timeout, max_timeout);
    }
}

#[test]
fn a_service_time_out_outside_the_offers_bounds_is_refused() {
    let service = Service::Compute;
    let mut w = World::new();
    let signed = keeper_offer(&mut w, service);
    let consumer = w.consumer;
    for timeout in [1, OFFER_MIN_TIMEOUT - 1, OFFER_MAX_TIMEOUT + 1, u32::MAX] {
        let err: ServiceTemplate::InvalidServiceTimeout =
            refused_purchase(&mut w, service, consumer, &signed, timeout);
        assert_eq!(
            (
                err.serviceTimeout,
                err.minServiceTimeout,
                err.maxServiceTimeout
            ),
            (timeout, OFFER_MIN_TIMEOUT, OFFER_MAX_TIMEOUT)
        );
    }
    for (asked, got) in [
        (OFFER_MIN_TIMEOUT, OFFER_MIN_TIMEOUT),
        (OFFER_MAX_TIMEOUT, OFFER_MAX_TIMEOUT),
        (0, OFFER_MAX_TIMEOUT),
    ] {
        let seed = w.seed();
        let receipt = pay(
            &mut w,
            service,
            consumer,
            &signed,
            seed,
            asked,
            U256::MAX,
            U256::ZERO,
        )
        .unwrap();
        assert_eq!(
            receipt
                .expect_event::<ServiceTemplate::AgreementTerms>()
                .serviceTimeout,
            got
        );
    }
}

#[test]
fn an_access_offer_is_not_valid_on_the_compute_template() {
    let mut w = World::new();
    let access = keeper_offer(&mut w, Service::Access);
    let keeper = w.keeper;
    let err: ServiceTemplate::InvalidOfferSignature = refused(&mut w, Service::Compute, &access);
    assert_eq!(err.provider, keeper);
    let compute = w.sign_offer(Service::Compute, access.offer.clone());
    let err: ServiceTemplate::InvalidOfferSignature = refused(&mut w, Service::Access, &compute);
    assert_eq!(err.provider, keeper);
    let consumer = w.consumer;
    w.buy(Service::Access, consumer, &access, U256::ZERO)
        .expect("in its own domain");
    w.buy(Service::Compute, consumer, &compute, U256::ZERO)
        .expect("in its own domain");
}

// ---- who may sign ----

#[test]
fn the_owner_and_a_delegate_may_sign() {
    let service = Service::Access;
    let mut w = World::new();
    let (provider, delegate, did, consumer) = (w.provider, w.co_provider, w.did, w.consumer);
    registry_call(
        &mut w,
        provider,
        &AssetRegistry::grantPermissionCall { did, delegate },
    );
    for signer in [provider, delegate] {
        let mut offer = keeper_offer(&mut w, service).offer;
        offer.provider = signer;
        let signed = w.sign_offer(service, offer);
        let (deal, receipt) = w.buy(service, consumer, &signed, U256::ZERO).unwrap();
        assert_eq!(deal.provider, signer);
        assert_eq!(
            receipt
                .expect_event::<ServiceTemplate::AgreementTerms>()
                .provider,
            signer
        );
    }
    // A revoked delegate no longer signs.
    registry_call(
        &mut w,
        provider,
        &AssetRegistry::revokePermissionCall { did, delegate },
    );
    let mut offer = keeper_offer(&mut w, service).offer;
    offer.provider = delegate;
    let signed = w.sign_offer(service, offer);
    let err: ServiceTemplate::OfferSignerNotServer = refused(&mut w, service, &signed);
    assert_eq!(err.provider, delegate);
}

#[test]
fn servers_of_the_previous_owner_cannot_sign_after_a_transfer() {
    // Review L-1 and test gap 2: the old registry kept providers across a transfer, so the seller's
    // keeper (or a provider the seller or a delegate added) could keep selling the buyer's asset.
    let service = Service::Access;
    let mut w = World::new();
    let (provider, keeper, delegate, did) = (w.provider, w.keeper, w.co_provider, w.did);
    registry_call(
        &mut w,
        provider,
        &AssetRegistry::grantPermissionCall { did, delegate },
    );
    registry_call(
        &mut w,
        delegate,
        &AssetRegistry::addProviderCall {
            did,
            provider: delegate,
        },
    );
    let buyer = w.chain.account_named("buyer");
    transfer(&mut w, did, provider, buyer);
    for signer in [keeper, provider, delegate] {
        // A fresh offer for the current epoch: refused only because the signer no longer serves.
        let mut offer = keeper_offer(&mut w, service).offer;
        assert_eq!(offer.epoch, 1);
        offer.provider = signer;
        let signed = w.sign_offer(service, offer);
        let err: ServiceTemplate::OfferSignerNotServer = refused(&mut w, service, &signed);
        assert_eq!((err.did, err.provider), (did, signer));
    }
    let mut offer = keeper_offer(&mut w, service).offer;
    offer.provider = buyer;
    let signed = w.sign_offer(service, offer);
    let consumer = w.consumer;
    w.buy(service, consumer, &signed, U256::ZERO)
        .expect("the new owner sells");
}

// ---- ERC-1271 providers ----

#[test]
fn a_contract_provider_signs_through_erc1271() {
    // Test gap 4: the ERC-1271 success path.
    let service = Service::Access;
    let mut w = World::new();
    let (provider, co_provider, outsider, consumer, token) =
        (w.provider, w.co_provider, w.outsider, w.consumer, w.token);
    let wallet = w
        .chain
        .deploy(
            outsider,
            &ERC1271Wallet::BYTECODE,
            &ERC1271Wallet::constructorCall {
                owner_: co_provider,
            },
        )
        .expect("deploy the wallet");
    let did = w.register_asset(provider, &[wallet]);
    let mut offer = w.offer(did, token, &[(provider, PRICE)]);
    offer.provider = wallet;
    // The wallet's owner key signs; the template asks the wallet.
    let signed = w.sign_offer_as(service, offer.clone(), co_provider);
    check_offer(&mut w, service, &signed).expect("valid through ERC-1271");
    let (deal, receipt) = w.buy(service, consumer, &signed, U256::ZERO).unwrap();
    assert_eq!(deal.provider, wallet);
    assert_eq!(
        receipt
            .expect_event::<ServiceTemplate::AgreementTerms>()
            .provider,
        wallet
    );
    // Any other key, or garbage, is refused by the wallet.
    for signer in [outsider, provider, consumer] {
        let signed = w.sign_offer_as(service, offer.clone(), signer);
        let err: ServiceTemplate::InvalidOfferSignature = refused(&mut w, service, &signed);
        assert_eq!(err.provider, wallet);
    }
    let garbage = SignedOffer {
        offer: offer.clone(),
        signature: Bytes::from(vec![3u8; 65]),
    };
    let err: ServiceTemplate::InvalidOfferSignature = refused(&mut w, service, &garbage);
    assert_eq!(err.provider, wallet);
    // The wallet's signature of another offer does not carry over.
    let mut other = offer.clone();
    other.amounts = vec![U256::from(1)];
    let moved = SignedOffer {
        offer: other,
        signature: signed.signature.clone(),
    };
    let err: ServiceTemplate::InvalidOfferSignature = refused(&mut w, service, &moved);
    assert_eq!(err.provider, wallet);
    // Once removed from the provider set, the wallet no longer sells.
    registry_call(
        &mut w,
        provider,
        &AssetRegistry::removeProviderCall {
            did,
            provider: wallet,
        },
    );
    let err: ServiceTemplate::OfferSignerNotServer = refused(&mut w, service, &signed);
    assert_eq!((err.did, err.provider), (did, wallet));
}

// ---- an agreement running across a transfer (test gap 8, review L-7) ----

/// A paid access deal on the keeper's offer paying the seller, then the asset sold to `buyer`.
fn deal_then_sold(w: &mut World) -> (Deal, Address) {
    let deal = w.paid_deal(Service::Access);
    let buyer = w.chain.account_named("buyer");
    let (provider, did) = (w.provider, w.did);
    transfer(w, did, provider, buyer);
    (deal, buyer)
}

#[test]
fn after_a_transfer_the_sellers_servers_cannot_fulfil_a_running_agreement() {
    // Old contracts: the seller's keeper stayed a provider and could fulfil (and so close the
    // consumer's refund path) on the buyer's asset.
    let mut w = World::new();
    let (deal, _) = deal_then_sold(&mut w);
    let (keeper, provider, did, token, consumer) =
        (w.keeper, w.provider, w.did, w.token, w.consumer);
    let escrow = w.balance(token, w.suite.payment);
    for server in [keeper, provider] {
        let err: AccessCondition::NotAssetServer = w.serve(&deal, server).expect_revert();
        assert_eq!((err.did, err.caller), (did, server));
        let err: AccessCondition::NotAssetServer =
            w.serve_and_release(&deal, server).expect_revert();
        assert_eq!((err.did, err.caller), (did, server));
    }
    assert_eq!(w.state(deal.service_id), state::UNFULFILLED);
    assert_eq!(w.state(deal.payment_id), state::FULFILLED);
    assert_eq!(w.balance(token, w.suite.payment), escrow);
    // Nobody serves: after the time out the consumer is refunded in full.
    let before = w.balance(token, consumer);
    w.chain.warp(u64::from(deal.service_timeout));
    w.abort_service(&deal, consumer).unwrap();
    let receipt = w.refund(&deal, keeper).expect("anyone triggers the refund");
    let refunded = receipt.expect_event::<PaymentCondition::PaymentRefunded>();
    assert_eq!(
        (refunded.agreementId, refunded.payer, refunded.amount),
        (deal.agreement_id, consumer, deal.total())
    );
    assert_eq!(w.balance(token, consumer), before + deal.total());
    assert_eq!(w.state(deal.payment_id), state::REFUNDED);
}

#[test]
fn after_a_transfer_the_new_owners_server_serves_and_the_offers_receivers_are_paid() {
    // Documented behaviour (review L-7): the agreement pays the receivers of the offer it was bought
    // on (here the seller), whoever serves it; only the new owner's servers may serve it.
    let mut w = World::new();
    let (deal, buyer) = deal_then_sold(&mut w);
    let (provider, token, did) = (w.provider, w.token, w.did);
    let new_keeper = w.chain.account_named("new_keeper");
    registry_call(
        &mut w,
        buyer,
        &AssetRegistry::addProviderCall {
            did,
            provider: new_keeper,
        },
    );
    let seller_before = w.balance(token, provider);
    let receipt = w
        .serve_and_release(&deal, new_keeper)
        .expect("the buyer's keeper serves");
    let granted = receipt.expect_event::<AccessCondition::AccessGranted>();
    assert_eq!(
        (granted.agreementId, granted.consumer, granted.provider),
        (deal.agreement_id, deal.consumer, new_keeper)
    );
    assert_eq!(
        w.balance(token, provider),
        seller_before + U256::from(PRICE)
    );
    assert_eq!(w.balance(token, buyer), U256::ZERO);
    assert_eq!(w.state(deal.payment_id), state::RELEASED);
    // The consumer's refund path is closed once served.
    let err: PaymentCondition::ServiceNotAborted = w.refund(&deal, deal.consumer).expect_revert();
    assert_eq!(err.serviceConditionId, deal.service_id);
}

#[test]
fn the_new_owner_itself_may_serve_a_running_agreement() {
    let mut w = World::new();
    let (deal, buyer) = deal_then_sold(&mut w);
    w.serve(&deal, buyer).expect("the owner serves");
    assert_eq!(w.state(deal.service_id), state::FULFILLED);
    let keeper = w.keeper;
    w.release(&deal, keeper).expect("anyone releases");
    assert_eq!(w.state(deal.payment_id), state::RELEASED);
}

#[test]
fn the_sellers_servers_cannot_fulfil_the_buyers_agreements() {
    // Review L-1 and test gap 2: with the old registry, a provider entry the seller or its delegate
    // added for itself survived the sale, and passed `canServe` on the buyer's asset: it could
    // fulfil the buyer's agreements without delivering, closing the consumers' refund path.
    let mut w = World::new();
    let (provider, keeper, delegate, did, consumer) =
        (w.provider, w.keeper, w.co_provider, w.did, w.consumer);
    registry_call(
        &mut w,
        provider,
        &AssetRegistry::grantPermissionCall { did, delegate },
    );
    for server in [provider, delegate] {
        registry_call(
            &mut w,
            delegate,
            &AssetRegistry::addProviderCall {
                did,
                provider: server,
            },
        );
    }
    let buyer = w.chain.account_named("buyer");
    transfer(&mut w, did, provider, buyer);
    for service in [Service::Access, Service::Compute] {
        let mut offer = keeper_offer(&mut w, service).offer;
        offer.provider = buyer;
        offer.receivers = vec![buyer];
        let signed = w.sign_offer(service, offer);
        let (deal, _) = w.buy(service, consumer, &signed, U256::ZERO).unwrap();
        for server in [keeper, provider, delegate] {
            let err: AccessCondition::NotAssetServer = w.serve(&deal, server).expect_revert();
            assert_eq!((err.did, err.caller), (did, server));
            let err: AccessCondition::NotAssetServer =
                w.serve_and_release(&deal, server).expect_revert();
            assert_eq!((err.did, err.caller), (did, server));
        }
        assert_eq!(w.state(deal.service_id), state::UNFULFILLED);
        let token = w.token;
        let before = w.balance(token, buyer);
        w.serve_and_release(&deal, buyer).expect("the buyer serves");
        assert_eq!(w.balance(token, buyer), before + U256::from(PRICE));
    }
}
