//! The generic conditions of the suite: HashLockCondition (reveal a preimage), SignCondition
//! (an EIP-712 signature of an agreed signer, ECDSA or ERC-1271) and ThresholdCondition (k of n
//! inputs Fulfilled), on agreements created through a `PassthroughTemplate` approved by
//! governance; and the payment condition on such agreements, whose release is always the derived
//! service condition, never a generic one.
//!
//! Errors raised by the store bubble up unchanged through the condition contracts: they are
//! decoded with the store's binding.

mod common;

use alloy::{
    primitives::{Address, B256, Bytes, Signature, U256, keccak256},
    signers::SignerSync,
    sol_types::{Eip712Domain, SolCall, SolError, SolStruct, SolValue, eip712_domain},
};
use common::{approved_passthrough, condition_id, conditions, create, is_timed_out, spec};
use insitu_bindings::{
    AccessCondition, AgreementStore, ERC1271Wallet, HashLockCondition, PassthroughTemplate,
    PaymentCondition, SignCondition, ThresholdCondition,
};
use insitu_tests::harness::{CHAIN_ID, ExpectRevert, Receipt, TxError};
use insitu_tests::world::{World, state};

mod eip712 {
    alloy::sol! {
        /// The struct a SignCondition signer signs, as a wallet sees it.
        #[derive(Debug)]
        struct SignConditionFulfilment {
            bytes32 agreementId;
            bytes32 message;
        }
    }
}
use eip712::SignConditionFulfilment;

/// Order of secp256k1, for building the high-s twin of a signature.
const SECP256K1_N: U256 = U256::from_be_bytes([
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
    0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41,
]);

struct Generic {
    w: World,
    template: Address,
    /// An EOA used as condition contract, to fulfil or abort threshold inputs directly.
    oracle: Address,
    consumer: Address,
    outsider: Address,
    /// The agreed signer of sign conditions.
    signer: Address,
    sign: Address,
    hash_lock: Address,
    threshold: Address,
    store: Address,
}

/// An agreement created by the consumer through the passthrough template.
struct Created {
    id: B256,
    conditions: Vec<B256>,
    at: u64,
}

impl Generic {
    fn new() -> Self {
        let mut w = World::new();
        let template = approved_passthrough(&mut w);
        let oracle = w.chain.account_named("oracle");
        Self {
            template,
            oracle,
            consumer: w.consumer,
            outsider: w.outsider,
            signer: w.provider,
            sign: w.suite.sign,
            hash_lock: w.suite.hash_lock,
            threshold: w.suite.threshold,
            store: w.suite.agreement_store,
            w,
        }
    }

    fn send<C: SolCall>(
        &mut self,
        from: Address,
        to: Address,
        call: C,
    ) -> Result<Receipt<C::Return>, TxError> {
        self.w.transact(from, to, &call, U256::ZERO)
    }

    fn view<C: SolCall>(&mut self, to: Address, call: C) -> C::Return {
        self.w.chain.call(to, &call).expect("a view")
    }

    /// Sends `call`, expects the revert `E`, and checks that the conditions `ids` kept their
    /// records in the store.
    #[track_caller]
    fn reverts<C: SolCall, E: SolError>(
        &mut self,
        from: Address,
        to: Address,
        call: C,
        ids: &[B256],
    ) -> E {
        let before = conditions(&mut self.w, ids);
        let err = self.send(from, to, call).expect_revert::<E>();
        assert_eq!(
            conditions(&mut self.w, ids),
            before,
            "a reverted call changed a condition"
        );
        err
    }

    /// Creates an agreement with `specs`; returns its id, its condition ids in order and its
    /// creation time.
    fn agreement(&mut self, specs: Vec<PassthroughTemplate::ConditionSpec>) -> Created {
        let seed = self.w.seed();
        let (template, consumer, did) = (self.template, self.consumer, self.w.did);
        let receipt = create(&mut self.w, template, consumer, seed, did, specs.clone())
            .expect("create an agreement");
        let conditions: Vec<B256> = specs
            .iter()
            .map(|s| condition_id(receipt.output, s.conditionContract, s.valueHash))
            .collect();
        assert_eq!(
            receipt
                .expect_event::<AgreementStore::AgreementCreated>()
                .conditionIds,
            conditions
        );
        Created {
            id: receipt.output,
            conditions,
            at: receipt.timestamp,
        }
    }

    fn at(&mut self, timestamp: u64) {
        assert!(timestamp >= self.w.chain.timestamp(), "time only moves on");
        self.w.chain.set_timestamp(timestamp);
    }

    // ---- hash lock ----

    fn lock_value(&mut self, preimage: &[u8]) -> B256 {
        let hash_lock = self.hash_lock;
        self.view(
            hash_lock,
            HashLockCondition::hashValuesCall {
                lockHash: keccak256(preimage),
            },
        )
    }

    /// An agreement with one hash lock on `preimage`.
    fn hash_lock_agreement(&mut self, preimage: &[u8], time_lock: u32, time_out: u32) -> Created {
        let value = self.lock_value(preimage);
        let hash_lock = self.hash_lock;
        self.agreement(vec![spec(hash_lock, value, time_lock, time_out)])
    }

    fn reveal(
        &mut self,
        from: Address,
        agreement_id: B256,
        preimage: &[u8],
    ) -> Result<Receipt<B256>, TxError> {
        let hash_lock = self.hash_lock;
        self.send(
            from,
            hash_lock,
            HashLockCondition::fulfilCall {
                agreementId: agreement_id,
                preimage: Bytes::copy_from_slice(preimage),
            },
        )
    }

    // ---- sign ----

    fn sign_value(&mut self, signer: Address, message: B256) -> B256 {
        let sign = self.sign;
        self.view(sign, SignCondition::hashValuesCall { signer, message })
    }

    /// An agreement with one sign condition of `signer` on `message`, on the suite's contract.
    fn sign_agreement(&mut self, signer: Address, message: B256, time_out: u32) -> Created {
        let value = self.sign_value(signer, message);
        let sign = self.sign;
        self.agreement(vec![spec(sign, value, 0, time_out)])
    }

    /// The domain a wallet uses for the SignCondition at `contract` on chain `chain_id`.
    fn domain(contract: Address, chain_id: u64) -> Eip712Domain {
        eip712_domain! {
            name: "insitu.SignCondition",
            version: "1",
            chain_id: chain_id,
            verifying_contract: contract,
        }
    }

    /// `signer` signs the fulfilment of `agreement_id` on `message` in `domain`, as a wallet
    /// signing typed data does: EIP-712 hash of the struct in the domain, then ECDSA.
    fn wallet_sign(
        &self,
        signer: Address,
        domain: &Eip712Domain,
        agreement_id: B256,
        message: B256,
    ) -> Signature {
        let payload = SignConditionFulfilment {
            agreementId: agreement_id,
            message,
        };
        self.sign_hash(signer, payload.eip712_signing_hash(domain))
    }

    fn sign_hash(&self, signer: Address, digest: B256) -> Signature {
        self.w
            .chain
            .signer(signer)
            .expect("a harness account")
            .sign_hash_sync(&digest)
            .expect("sign")
    }

    fn digest(&mut self, contract: Address, agreement_id: B256, message: B256) -> B256 {
        self.view(
            contract,
            SignCondition::fulfilmentDigestCall {
                agreementId: agreement_id,
                message,
            },
        )
    }

    fn submit(
        &mut self,
        from: Address,
        contract: Address,
        agreement_id: B256,
        signer: Address,
        message: B256,
        signature: impl Into<Bytes>,
    ) -> Result<Receipt<B256>, TxError> {
        self.send(
            from,
            contract,
            fulfil_sign(agreement_id, signer, message, signature),
        )
    }

    // ---- threshold ----

    fn threshold_value(&mut self, inputs: &[B256], k: u64) -> B256 {
        let threshold = self.threshold;
        self.view(
            threshold,
            ThresholdCondition::hashValuesCall {
                inputs: inputs.to_vec(),
                threshold: U256::from(k),
            },
        )
    }

    fn reach(
        &mut self,
        from: Address,
        agreement_id: B256,
        inputs: &[B256],
        k: u64,
    ) -> Result<Receipt<B256>, TxError> {
        let threshold = self.threshold;
        self.send(from, threshold, reach_call(agreement_id, inputs, k))
    }

    fn oracle_fulfils(&mut self, id: B256) {
        let (oracle, store) = (self.oracle, self.store);
        self.send(
            oracle,
            store,
            AgreementStore::fulfilCall { conditionId: id },
        )
        .expect("the oracle fulfils");
    }

    fn oracle_aborts(&mut self, id: B256) {
        let (oracle, store) = (self.oracle, self.store);
        self.send(oracle, store, AgreementStore::abortCall { conditionId: id })
            .expect("the oracle aborts");
    }
}

fn fulfil_sign(
    agreement_id: B256,
    signer: Address,
    message: B256,
    signature: impl Into<Bytes>,
) -> SignCondition::fulfilCall {
    SignCondition::fulfilCall {
        agreementId: agreement_id,
        signer,
        message,
        signature: signature.into(),
    }
}

fn reach_call(agreement_id: B256, inputs: &[B256], k: u64) -> ThresholdCondition::fulfilCall {
    ThresholdCondition::fulfilCall {
        agreementId: agreement_id,
        inputs: inputs.to_vec(),
        threshold: U256::from(k),
    }
}

fn message() -> B256 {
    keccak256(b"delivery receipt #1")
}

fn sorted(mut ids: Vec<B256>) -> Vec<B256> {
    ids.sort();
    ids
}

// ---- HashLockCondition ----

#[test]
fn the_hash_lock_value_hash_is_the_keccak_of_the_encoded_lock_hash() {
    let mut g = Generic::new();
    let lock_hash = keccak256(b"key");
    assert_eq!(g.lock_value(b"key"), keccak256(lock_hash.abi_encode()));
}

#[test]
fn anyone_revealing_the_preimage_fulfils_the_hash_lock() {
    let mut g = Generic::new();
    let (outsider, hash_lock, store) = (g.outsider, g.hash_lock, g.store);
    let preimage = b"the decryption key";
    let a = g.hash_lock_agreement(preimage, 0, 0);
    let id = a.conditions[0];
    let value = g.lock_value(preimage);
    assert_eq!(
        g.view(
            hash_lock,
            HashLockCondition::conditionIdOfCall {
                agreementId: a.id,
                valueHash: value
            }
        ),
        id
    );

    let receipt = g.reveal(outsider, a.id, preimage).unwrap();
    assert_eq!(receipt.output, id);
    assert_eq!(receipt.logs.len(), 2);
    assert_eq!(
        receipt.logs[0].address, store,
        "the store records the state first"
    );
    assert_eq!(
        receipt.expect_event::<AgreementStore::ConditionFulfilled>(),
        AgreementStore::ConditionFulfilled {
            conditionId: id,
            conditionContract: hash_lock
        }
    );
    assert_eq!(receipt.logs[1].address, hash_lock);
    assert_eq!(
        receipt.expect_event::<HashLockCondition::PreimageRevealed>(),
        HashLockCondition::PreimageRevealed {
            agreementId: a.id,
            conditionId: id,
            preimage: Bytes::copy_from_slice(preimage),
        }
    );
    assert_eq!(g.w.state(id), state::FULFILLED);
}

#[test]
fn an_empty_preimage_is_a_preimage_like_any_other() {
    let mut g = Generic::new();
    let consumer = g.consumer;
    let a = g.hash_lock_agreement(b"", 0, 0);
    let receipt = g.reveal(consumer, a.id, b"").unwrap();
    assert_eq!(receipt.output, a.conditions[0]);
    assert_eq!(
        receipt
            .expect_event::<HashLockCondition::PreimageRevealed>()
            .preimage,
        Bytes::new()
    );
}

#[test]
fn a_wrong_preimage_addresses_no_condition() {
    let mut g = Generic::new();
    let (outsider, hash_lock) = (g.outsider, g.hash_lock);
    let a = g.hash_lock_agreement(b"right", 0, 0);
    let wrong_id = condition_id(a.id, hash_lock, g.lock_value(b"wrong"));

    let err = g.reveal(outsider, a.id, b"wrong").expect_failure();
    // The error is the store's, bubbled up: HashLockCondition's own ABI does not declare it.
    let revert = err.revert().expect("a revert");
    assert_eq!(
        revert.selector(),
        Some(AgreementStore::ConditionNotFound::SELECTOR)
    );
    assert!(
        err.decode::<HashLockCondition::HashLockConditionErrors>()
            .is_none()
    );
    assert_eq!(
        err.decode_error::<AgreementStore::ConditionNotFound>(),
        Some(AgreementStore::ConditionNotFound {
            conditionId: wrong_id
        })
    );
    assert_eq!(g.w.state(a.conditions[0]), state::UNFULFILLED);
    // Same through the revert-checking helper.
    let _: AgreementStore::ConditionNotFound = g.reverts(
        outsider,
        hash_lock,
        HashLockCondition::fulfilCall {
            agreementId: a.id,
            preimage: b"right ".into(),
        },
        &a.conditions,
    );
}

#[test]
fn a_preimage_only_opens_the_lock_of_its_own_agreement() {
    let mut g = Generic::new();
    let (outsider, hash_lock) = (g.outsider, g.hash_lock);
    let mine = g.hash_lock_agreement(b"shared secret", 0, 0);
    let other = g.hash_lock_agreement(b"another secret", 0, 0);
    let err: AgreementStore::ConditionNotFound = g.reverts(
        outsider,
        hash_lock,
        HashLockCondition::fulfilCall {
            agreementId: other.id,
            preimage: b"shared secret".into(),
        },
        &[mine.conditions[0], other.conditions[0]],
    );
    assert_eq!(
        err.conditionId,
        condition_id(other.id, hash_lock, g.lock_value(b"shared secret"))
    );
}

#[test]
fn a_hash_lock_is_revealed_once() {
    let mut g = Generic::new();
    let (outsider, consumer, hash_lock) = (g.outsider, g.consumer, g.hash_lock);
    let a = g.hash_lock_agreement(b"once", 0, 0);
    g.reveal(consumer, a.id, b"once").unwrap();
    let err: AgreementStore::ConditionNotUnfulfilled = g.reverts(
        outsider,
        hash_lock,
        HashLockCondition::fulfilCall {
            agreementId: a.id,
            preimage: b"once".into(),
        },
        &a.conditions,
    );
    assert_eq!(
        (err.conditionId, err.state),
        (a.conditions[0], state::FULFILLED)
    );
}

#[test]
fn a_hash_lock_is_revealed_inside_its_window_only() {
    let mut g = Generic::new();
    let (outsider, hash_lock) = (g.outsider, g.hash_lock);
    let a = g.hash_lock_agreement(b"timed", 60, 600);
    let id = a.conditions[0];
    let reveal = HashLockCondition::fulfilCall {
        agreementId: a.id,
        preimage: b"timed".into(),
    };

    g.at(a.at + 59);
    let err: AgreementStore::ConditionTimeLocked =
        g.reverts(outsider, hash_lock, reveal.clone(), &[id]);
    assert_eq!(err.timeLock, common::u40(a.at + 60));

    let snapshot = g.w.chain.snapshot();
    g.at(a.at + 599);
    g.reveal(outsider, a.id, b"timed")
        .expect("one second before the time out");
    g.w.chain.restore(&snapshot);

    g.at(a.at + 600);
    let err: AgreementStore::ConditionTimedOut =
        g.reverts(outsider, hash_lock, reveal.clone(), &[id]);
    assert_eq!(
        (err.conditionId, err.timeOut),
        (id, common::u40(a.at + 600))
    );

    // Then anyone aborts it, and the secret can no longer fulfil it.
    g.send(
        outsider,
        hash_lock,
        HashLockCondition::abortTimedOutCall { conditionId: id },
    )
    .unwrap();
    assert_eq!(g.w.state(id), state::ABORTED);
    let err: AgreementStore::ConditionNotUnfulfilled =
        g.reverts(outsider, hash_lock, reveal, &[id]);
    assert_eq!(err.state, state::ABORTED);
}

// ---- SignCondition ----

#[test]
fn the_fulfilment_typehash_is_the_eip712_type_hash_of_the_struct() {
    let mut g = Generic::new();
    let sign = g.sign;
    let typehash = g.view(sign, SignCondition::FULFILMENT_TYPEHASHCall {});
    assert_eq!(
        typehash,
        keccak256(b"SignConditionFulfilment(bytes32 agreementId,bytes32 message)")
    );
    let payload = SignConditionFulfilment {
        agreementId: B256::ZERO,
        message: B256::ZERO,
    };
    assert_eq!(typehash, payload.eip712_type_hash());
}

#[test]
fn the_sign_value_hash_is_the_keccak_of_signer_and_message() {
    let mut g = Generic::new();
    let signer = g.signer;
    assert_eq!(
        g.sign_value(signer, message()),
        keccak256((signer, message()).abi_encode_params())
    );
}

#[test]
fn the_eip712_domain_is_this_contract_on_this_chain() {
    let mut g = Generic::new();
    let sign = g.sign;
    let domain = g.view(sign, SignCondition::eip712DomainCall {});
    assert_eq!(
        domain.fields.0,
        [0x0f],
        "name, version, chainId, verifyingContract"
    );
    assert_eq!(domain.name, "insitu.SignCondition");
    assert_eq!(domain.version, "1");
    assert_eq!(domain.chainId, U256::from(CHAIN_ID));
    assert_eq!(domain.verifyingContract, sign);
    assert_eq!(domain.salt, B256::ZERO);
    assert!(domain.extensions.is_empty());
}

#[test]
fn a_wallet_signature_and_a_signature_of_the_contract_digest_agree_and_fulfil() {
    let mut g = Generic::new();
    let (signer, outsider, sign, store) = (g.signer, g.outsider, g.sign, g.store);
    let a = g.sign_agreement(signer, message(), 0);
    let id = a.conditions[0];

    let domain = Generic::domain(sign, CHAIN_ID);
    let payload = SignConditionFulfilment {
        agreementId: a.id,
        message: message(),
    };
    let digest = g.digest(sign, a.id, message());
    assert_eq!(
        payload.eip712_signing_hash(&domain),
        digest,
        "the wallet's EIP-712 hash is the contract's digest"
    );
    let by_wallet = g.wallet_sign(signer, &domain, a.id, message());
    let by_digest = g.sign_hash(signer, digest);
    assert_eq!(by_wallet, by_digest, "RFC 6979 signatures of the same hash");
    assert_eq!(
        by_wallet.recover_address_from_prehash(&digest).unwrap(),
        signer
    );

    // Anyone may submit the signature.
    let receipt = g
        .submit(
            outsider,
            sign,
            a.id,
            signer,
            message(),
            by_wallet.as_bytes(),
        )
        .unwrap();
    assert_eq!(receipt.output, id);
    assert_eq!(receipt.logs.len(), 2);
    assert_eq!(receipt.logs[0].address, store);
    assert_eq!(
        receipt.expect_event::<AgreementStore::ConditionFulfilled>(),
        AgreementStore::ConditionFulfilled {
            conditionId: id,
            conditionContract: sign
        }
    );
    assert_eq!(receipt.logs[1].address, sign);
    assert_eq!(
        receipt.expect_event::<SignCondition::MessageSigned>(),
        SignCondition::MessageSigned {
            agreementId: a.id,
            conditionId: id,
            signer,
            message: message(),
        }
    );
    assert_eq!(g.w.state(id), state::FULFILLED);
}

#[test]
fn the_signer_may_submit_its_own_signature() {
    let mut g = Generic::new();
    let (signer, sign) = (g.signer, g.sign);
    let a = g.sign_agreement(signer, message(), 0);
    let digest = g.digest(sign, a.id, message());
    let signature = g.sign_hash(signer, digest);
    let receipt = g
        .submit(signer, sign, a.id, signer, message(), signature.as_bytes())
        .unwrap();
    assert_eq!(receipt.output, a.conditions[0]);
}

#[test]
fn a_signature_by_another_account_reverts_invalid_signature() {
    let mut g = Generic::new();
    let (signer, outsider, sign) = (g.signer, g.outsider, g.sign);
    let a = g.sign_agreement(signer, message(), 0);
    let digest = g.digest(sign, a.id, message());
    let forged = g.sign_hash(outsider, digest);
    let err: SignCondition::InvalidSignature = g.reverts(
        outsider,
        sign,
        fulfil_sign(a.id, signer, message(), forged.as_bytes()),
        &a.conditions,
    );
    assert_eq!(err.signer, signer);
}

#[test]
fn naming_the_real_signer_of_a_foreign_signature_addresses_no_condition() {
    // The signature is valid for its own signer, but the agreement expects another signer: the
    // value hash differs, so there is no such condition.
    let mut g = Generic::new();
    let (signer, outsider, sign) = (g.signer, g.outsider, g.sign);
    let a = g.sign_agreement(signer, message(), 0);
    let digest = g.digest(sign, a.id, message());
    let own = g.sign_hash(outsider, digest);
    let err: AgreementStore::ConditionNotFound = g.reverts(
        outsider,
        sign,
        fulfil_sign(a.id, outsider, message(), own.as_bytes()),
        &a.conditions,
    );
    let value = g.sign_value(outsider, message());
    assert_eq!(err.conditionId, condition_id(a.id, sign, value));
}

#[test]
fn a_signature_over_another_message_reverts_invalid_signature() {
    let mut g = Generic::new();
    let (signer, outsider, sign) = (g.signer, g.outsider, g.sign);
    let a = g.sign_agreement(signer, message(), 0);
    let other_message = keccak256(b"delivery receipt #2");
    let digest = g.digest(sign, a.id, other_message);
    let signature = g.sign_hash(signer, digest);
    let err: SignCondition::InvalidSignature = g.reverts(
        outsider,
        sign,
        fulfil_sign(a.id, signer, message(), signature.as_bytes()),
        &a.conditions,
    );
    assert_eq!(err.signer, signer);
}

#[test]
fn a_signature_for_another_agreement_reverts_invalid_signature() {
    let mut g = Generic::new();
    let (signer, outsider, sign) = (g.signer, g.outsider, g.sign);
    let first = g.sign_agreement(signer, message(), 0);
    let second = g.sign_agreement(signer, message(), 0);
    let domain = Generic::domain(sign, CHAIN_ID);
    let for_first = g.wallet_sign(signer, &domain, first.id, message());
    let watched = [first.conditions[0], second.conditions[0]];

    let err: SignCondition::InvalidSignature = g.reverts(
        outsider,
        sign,
        fulfil_sign(second.id, signer, message(), for_first.as_bytes()),
        &watched,
    );
    assert_eq!(err.signer, signer);
    g.submit(
        outsider,
        sign,
        first.id,
        signer,
        message(),
        for_first.as_bytes(),
    )
    .expect("valid for its own agreement");
    assert_eq!(g.w.state(second.conditions[0]), state::UNFULFILLED);
}

#[test]
fn a_signature_for_another_chain_or_domain_reverts_invalid_signature() {
    let mut g = Generic::new();
    let (signer, outsider, sign) = (g.signer, g.outsider, g.sign);
    let a = g.sign_agreement(signer, message(), 0);
    let domains = [
        Generic::domain(sign, 1),
        Generic::domain(Address::repeat_byte(0x51), CHAIN_ID),
        eip712_domain! {
            name: "insitu.SignCondition",
            version: "2",
            chain_id: CHAIN_ID,
            verifying_contract: sign,
        },
        eip712_domain! {
            name: "SignCondition",
            version: "1",
            chain_id: CHAIN_ID,
            verifying_contract: sign,
        },
        eip712_domain! {
            name: "insitu.SignCondition",
            version: "1",
            chain_id: CHAIN_ID,
        },
    ];
    for domain in &domains {
        let signature = g.wallet_sign(signer, domain, a.id, message());
        let err: SignCondition::InvalidSignature = g.reverts(
            outsider,
            sign,
            fulfil_sign(a.id, signer, message(), signature.as_bytes()),
            &a.conditions,
        );
        assert_eq!(err.signer, signer, "domain {domain:?}");
    }
}

#[test]
fn a_signature_for_another_sign_contract_reverts_invalid_signature() {
    let mut g = Generic::new();
    let (signer, outsider, sign, store) = (g.signer, g.outsider, g.sign, g.store);
    let other =
        g.w.chain
            .deploy(
                outsider,
                &SignCondition::BYTECODE,
                &SignCondition::constructorCall { store },
            )
            .unwrap();
    // One agreement with the same sign condition on both contracts.
    let value = g.sign_value(signer, message());
    let a = g.agreement(vec![spec(sign, value, 0, 0), spec(other, value, 0, 0)]);
    assert_ne!(
        g.digest(sign, a.id, message()),
        g.digest(other, a.id, message())
    );
    let for_other = g.wallet_sign(signer, &Generic::domain(other, CHAIN_ID), a.id, message());

    let err: SignCondition::InvalidSignature = g.reverts(
        outsider,
        sign,
        fulfil_sign(a.id, signer, message(), for_other.as_bytes()),
        &a.conditions,
    );
    assert_eq!(err.signer, signer);
    let receipt = g
        .submit(
            outsider,
            other,
            a.id,
            signer,
            message(),
            for_other.as_bytes(),
        )
        .unwrap();
    assert_eq!(receipt.output, a.conditions[1]);
    assert_eq!(g.w.state(a.conditions[0]), state::UNFULFILLED);
}

#[test]
fn malformed_signatures_revert_invalid_signature() {
    // OpenZeppelin's SignatureChecker returns false for anything ECDSA.tryRecover refuses (bad
    // length, v not 27/28, high s, unrecoverable), so every malformed signature gives the
    // condition's own InvalidSignature rather than an ECDSA error.
    let mut g = Generic::new();
    let (signer, outsider, sign) = (g.signer, g.outsider, g.sign);
    let a = g.sign_agreement(signer, message(), 0);
    let digest = g.digest(sign, a.id, message());
    let valid = g.sign_hash(signer, digest);
    let bytes = valid.as_bytes();

    let mut extra_byte = bytes.to_vec();
    extra_byte.push(0);
    let mut v_29 = bytes;
    v_29[64] = 29;
    let mut zero_r = bytes;
    zero_r[..32].fill(0);
    let high_s = Signature::new(valid.r(), SECP256K1_N - valid.s(), !valid.v());
    assert_eq!(
        high_s.recover_address_from_prehash(&digest).ok(),
        Some(signer),
        "the high-s twin recovers to the signer with a plain ecrecover"
    );
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("one byte", vec![0x1b]),
        ("64 zero bytes", vec![0; 64]),
        ("65 zero bytes", vec![0; 65]),
        ("65 bytes and one more", extra_byte),
        ("v as 0/1 parity", valid.as_rsy().to_vec()),
        ("v = 29", v_29.to_vec()),
        ("r = 0", zero_r.to_vec()),
        ("high-s twin", high_s.as_bytes().to_vec()),
        ("two signatures", [bytes, bytes].concat()),
    ];
    for (case, signature) in cases {
        let err = g
            .send(
                outsider,
                sign,
                fulfil_sign(a.id, signer, message(), signature),
            )
            .expect_failure();
        assert_eq!(
            err.decode_error::<SignCondition::InvalidSignature>(),
            Some(SignCondition::InvalidSignature { signer }),
            "{case}: {err}"
        );
    }
    assert_eq!(g.w.state(a.conditions[0]), state::UNFULFILLED);
    // The untouched signature still works.
    g.submit(outsider, sign, a.id, signer, message(), bytes)
        .unwrap();
}

#[test]
fn a_compact_eip2098_signature_is_refused() {
    // SignCondition's NatSpec says "ECDSA signature (65 or 64 bytes)", but OpenZeppelin 5's
    // ECDSA.tryRecover(hash, bytes) only takes 65 bytes: a valid ERC-2098 compact signature of the
    // agreed signer is refused.
    let mut g = Generic::new();
    let (signer, outsider, sign) = (g.signer, g.outsider, g.sign);
    let a = g.sign_agreement(signer, message(), 0);
    let digest = g.digest(sign, a.id, message());
    let compact = g.sign_hash(signer, digest).as_erc2098();
    assert_eq!(
        Signature::from_erc2098(&compact)
            .recover_address_from_prehash(&digest)
            .unwrap(),
        signer,
        "a valid compact signature"
    );
    let err: SignCondition::InvalidSignature = g.reverts(
        outsider,
        sign,
        fulfil_sign(a.id, signer, message(), compact),
        &a.conditions,
    );
    assert_eq!(err.signer, signer);
}

#[test]
fn a_zero_signer_cannot_be_satisfied_by_an_unrecoverable_signature() {
    // ecrecover returns the zero address for garbage; the agreed signer being zero must not make
    // garbage valid.
    let mut g = Generic::new();
    let (outsider, sign) = (g.outsider, g.sign);
    let a = g.sign_agreement(Address::ZERO, message(), 0);
    for garbage in [vec![0u8; 65], {
        let mut v = vec![0u8; 65];
        v[64] = 27;
        v
    }] {
        let err: SignCondition::InvalidSignature = g.reverts(
            outsider,
            sign,
            fulfil_sign(a.id, Address::ZERO, message(), garbage),
            &a.conditions,
        );
        assert_eq!(err.signer, Address::ZERO);
    }
}

#[test]
fn a_contract_signer_without_erc1271_never_signs() {
    let mut g = Generic::new();
    let (outsider, sign, consumer) = (g.outsider, g.sign, g.consumer);
    let contract_signer = g.w.token;
    let a = g.sign_agreement(contract_signer, message(), 0);
    let digest = g.digest(sign, a.id, message());
    let signature = g.sign_hash(consumer, digest);
    let err: SignCondition::InvalidSignature = g.reverts(
        outsider,
        sign,
        fulfil_sign(a.id, contract_signer, message(), signature.as_bytes()),
        &a.conditions,
    );
    assert_eq!(err.signer, contract_signer);
}

#[test]
fn a_signature_fulfils_once() {
    let mut g = Generic::new();
    let (signer, outsider, sign) = (g.signer, g.outsider, g.sign);
    let a = g.sign_agreement(signer, message(), 0);
    let digest = g.digest(sign, a.id, message());
    let signature = g.sign_hash(signer, digest);
    g.submit(
        outsider,
        sign,
        a.id,
        signer,
        message(),
        signature.as_bytes(),
    )
    .unwrap();
    let err: AgreementStore::ConditionNotUnfulfilled = g.reverts(
        outsider,
        sign,
        fulfil_sign(a.id, signer, message(), signature.as_bytes()),
        &a.conditions,
    );
    assert_eq!(
        (err.conditionId, err.state),
        (a.conditions[0], state::FULFILLED)
    );
}

#[test]
fn a_signature_after_the_time_out_is_refused() {
    let mut g = Generic::new();
    let (signer, outsider, sign) = (g.signer, g.outsider, g.sign);
    let a = g.sign_agreement(signer, message(), 3_600);
    let digest = g.digest(sign, a.id, message());
    let signature = g.sign_hash(signer, digest);
    g.at(a.at + 3_600);
    let err: AgreementStore::ConditionTimedOut = g.reverts(
        outsider,
        sign,
        fulfil_sign(a.id, signer, message(), signature.as_bytes()),
        &a.conditions,
    );
    assert_eq!(
        (err.conditionId, err.timeOut),
        (a.conditions[0], common::u40(a.at + 3_600))
    );
    assert!(is_timed_out(&mut g.w, a.conditions[0]));
}

// ---- ThresholdCondition ----

#[test]
fn the_threshold_value_hash_encodes_inputs_and_threshold() {
    let mut g = Generic::new();
    let inputs = sorted(vec![keccak256(b"1"), keccak256(b"2"), keccak256(b"3")]);
    assert_eq!(
        g.threshold_value(&inputs, 2),
        keccak256((inputs.clone(), U256::from(2)).abi_encode_params())
    );
    assert_ne!(g.threshold_value(&inputs, 2), g.threshold_value(&inputs, 3));
}

#[test]
fn k_of_three_is_reached_exactly_when_k_inputs_are_fulfilled() {
    let mut g = Generic::new();
    let (outsider, hash_lock, threshold, store) = (g.outsider, g.hash_lock, g.threshold, g.store);
    let secrets: [&[u8]; 3] = [b"first", b"second", b"third"];
    let mut specs: Vec<_> = secrets
        .iter()
        .map(|secret| spec(hash_lock, g.lock_value(secret), 0, 0))
        .collect();
    // Ids are known before creation, so the thresholds can sit in the same agreement as their
    // inputs: the agreement id binds only the first condition (a hash lock, whose value hash does
    // not depend on the id).
    let inputs_of = |agreement_id: B256, specs: &[PassthroughTemplate::ConditionSpec]| {
        sorted(
            specs
                .iter()
                .map(|s| condition_id(agreement_id, s.conditionContract, s.valueHash))
                .collect(),
        )
    };
    // Build the full agreement: 3 hash locks, then thresholds k = 1, 2, 3 over them.
    let seed = g.w.seed();
    let agreement_id = common::agreement_id(seed, g.consumer, &specs[0]);
    let inputs = inputs_of(agreement_id, &specs);
    for k in 1..=3 {
        let value = g.threshold_value(&inputs, k);
        specs.push(spec(threshold, value, 0, 0));
    }
    let (template, consumer, did) = (g.template, g.consumer, g.w.did);
    let receipt = create(&mut g.w, template, consumer, seed, did, specs.clone()).unwrap();
    assert_eq!(receipt.output, agreement_id);
    let thresholds: Vec<B256> = specs[3..]
        .iter()
        .map(|s| condition_id(agreement_id, s.conditionContract, s.valueHash))
        .collect();
    let all: Vec<B256> = [inputs.clone(), thresholds.clone()].concat();

    // Reveal the secrets one by one; after each, exactly the thresholds k <= revealed are
    // reachable.
    for revealed in 0..=3_u64 {
        if revealed > 0 {
            let secret = secrets[usize::try_from(revealed).unwrap() - 1];
            g.reveal(outsider, agreement_id, secret).unwrap();
        }
        for k in 1..=3_u64 {
            let id = thresholds[usize::try_from(k).unwrap() - 1];
            if k < revealed {
                continue; // reached earlier
            }
            if k > revealed {
                let err: ThresholdCondition::ThresholdNotReached = g.reverts(
                    outsider,
                    threshold,
                    reach_call(agreement_id, &inputs, k),
                    &all,
                );
                assert_eq!(
                    (err.fulfilled, err.threshold),
                    (U256::from(revealed), U256::from(k))
                );
                assert_eq!(g.w.state(id), state::UNFULFILLED);
            } else {
                let receipt = g.reach(outsider, agreement_id, &inputs, k).unwrap();
                assert_eq!(receipt.output, id);
                assert_eq!(receipt.logs.len(), 2);
                assert_eq!(receipt.logs[0].address, store);
                assert_eq!(
                    receipt.expect_event::<AgreementStore::ConditionFulfilled>(),
                    AgreementStore::ConditionFulfilled {
                        conditionId: id,
                        conditionContract: threshold
                    }
                );
                assert_eq!(receipt.logs[1].address, threshold);
                assert_eq!(
                    receipt.expect_event::<ThresholdCondition::ThresholdReached>(),
                    ThresholdCondition::ThresholdReached {
                        agreementId: agreement_id,
                        conditionId: id,
                        fulfilled: U256::from(k),
                    }
                );
                assert_eq!(g.w.state(id), state::FULFILLED);
            }
        }
    }
}

#[test]
fn aborted_inputs_do_not_count() {
    let mut g = Generic::new();
    let (outsider, oracle, threshold) = (g.outsider, g.oracle, g.threshold);
    let inputs_spec: Vec<_> = (0u8..3)
        .map(|n| spec(oracle, keccak256([n]), 0, 0))
        .collect();
    let inputs_agreement = g.agreement(inputs_spec);
    let inputs = sorted(inputs_agreement.conditions.clone());
    let two = g.threshold_value(&inputs, 2);
    let three = g.threshold_value(&inputs, 3);
    let a = g.agreement(vec![
        spec(threshold, two, 0, 0),
        spec(threshold, three, 0, 1_000),
    ]);
    let watched = [inputs.clone(), a.conditions.clone()].concat();

    g.oracle_aborts(inputs[0]);
    g.oracle_fulfils(inputs[1]);
    let err: ThresholdCondition::ThresholdNotReached =
        g.reverts(outsider, threshold, reach_call(a.id, &inputs, 2), &watched);
    assert_eq!(
        (err.fulfilled, err.threshold),
        (U256::from(1), U256::from(2))
    );

    g.oracle_fulfils(inputs[2]);
    let receipt = g.reach(outsider, a.id, &inputs, 2).unwrap();
    assert_eq!(receipt.output, a.conditions[0]);

    // All three can never be Fulfilled: the 3-of-3 condition can only time out.
    let err: ThresholdCondition::ThresholdNotReached =
        g.reverts(outsider, threshold, reach_call(a.id, &inputs, 3), &watched);
    assert_eq!(
        (err.fulfilled, err.threshold),
        (U256::from(2), U256::from(3))
    );
    g.at(a.at + 1_000);
    g.send(
        outsider,
        threshold,
        ThresholdCondition::abortTimedOutCall {
            conditionId: a.conditions[1],
        },
    )
    .unwrap();
    assert_eq!(g.w.state(a.conditions[1]), state::ABORTED);
}

#[test]
fn inputs_that_do_not_exist_do_not_count() {
    let mut g = Generic::new();
    let (outsider, oracle, threshold) = (g.outsider, g.oracle, g.threshold);
    let real = g.agreement(vec![spec(oracle, keccak256(b"real"), 0, 0)]);
    g.oracle_fulfils(real.conditions[0]);
    let inputs = sorted(vec![
        real.conditions[0],
        keccak256(b"ghost 1"),
        keccak256(b"ghost 2"),
    ]);
    let value = g.threshold_value(&inputs, 2);
    let a = g.agreement(vec![spec(threshold, value, 0, 0)]);
    let err: ThresholdCondition::ThresholdNotReached = g.reverts(
        outsider,
        threshold,
        reach_call(a.id, &inputs, 2),
        &a.conditions,
    );
    assert_eq!(
        (err.fulfilled, err.threshold),
        (U256::from(1), U256::from(2))
    );
}

#[test]
fn invalid_thresholds_revert_invalid_threshold() {
    let mut g = Generic::new();
    let (outsider, threshold) = (g.outsider, g.threshold);
    let three = sorted(vec![keccak256(b"a"), keccak256(b"b"), keccak256(b"c")]);
    let agreement_id = keccak256(b"any agreement");
    let cases: [(&[B256], u64, u64); 4] =
        [(&three, 0, 3), (&three, 4, 3), (&[], 0, 0), (&[], 1, 0)];
    for (inputs, k, n) in cases {
        let err: ThresholdCondition::InvalidThreshold = g.reverts(
            outsider,
            threshold,
            reach_call(agreement_id, inputs, k),
            &three,
        );
        assert_eq!((err.threshold, err.inputs), (U256::from(k), U256::from(n)));
    }
    // The threshold is checked before the order of the inputs.
    let unsorted = [three[2], three[0]];
    let err: ThresholdCondition::InvalidThreshold = g.reverts(
        outsider,
        threshold,
        reach_call(agreement_id, &unsorted, 3),
        &three,
    );
    assert_eq!((err.threshold, err.inputs), (U256::from(3), U256::from(2)));
}

#[test]
fn inputs_must_be_strictly_ascending() {
    let mut g = Generic::new();
    let (outsider, oracle, threshold) = (g.outsider, g.oracle, g.threshold);
    let specs: Vec<_> = (0u8..3)
        .map(|n| spec(oracle, keccak256([n]), 0, 0))
        .collect();
    let inputs_agreement = g.agreement(specs);
    for id in inputs_agreement.conditions.clone() {
        g.oracle_fulfils(id);
    }
    let [a, b, c] = <[B256; 3]>::try_from(sorted(inputs_agreement.conditions)).unwrap();
    let cases: [(Vec<B256>, u64); 6] = [
        (vec![b, a, c], 1),
        (vec![a, c, b], 2),
        (vec![c, b, a], 1),
        (vec![a, a, b], 1),
        (vec![a, b, b], 2),
        (vec![a, a], 1),
    ];
    for (inputs, index) in cases {
        let err: ThresholdCondition::InputsNotAscending = g.reverts(
            outsider,
            threshold,
            reach_call(keccak256(b"any agreement"), &inputs, 1),
            &[a, b, c],
        );
        assert_eq!(err.index, U256::from(index), "{inputs:?}");
    }
    // A duplicate cannot count one Fulfilled input twice even where a threshold condition on the
    // duplicated list exists.
    let dup = vec![a, a];
    let value = g.threshold_value(&dup, 2);
    let t = g.agreement(vec![spec(threshold, value, 0, 0)]);
    let err: ThresholdCondition::InputsNotAscending = g.reverts(
        outsider,
        threshold,
        reach_call(t.id, &dup, 2),
        &t.conditions,
    );
    assert_eq!(err.index, U256::from(1));
}

#[test]
fn other_inputs_or_another_threshold_address_no_condition() {
    let mut g = Generic::new();
    let (outsider, oracle, threshold) = (g.outsider, g.oracle, g.threshold);
    let specs: Vec<_> = (0u8..3)
        .map(|n| spec(oracle, keccak256([n]), 0, 0))
        .collect();
    let inputs_agreement = g.agreement(specs);
    for id in inputs_agreement.conditions.clone() {
        g.oracle_fulfils(id);
    }
    let inputs = sorted(inputs_agreement.conditions);
    let value = g.threshold_value(&inputs, 2);
    let a = g.agreement(vec![spec(threshold, value, 0, 0)]);

    // A lower threshold than agreed.
    let err: AgreementStore::ConditionNotFound = g.reverts(
        outsider,
        threshold,
        reach_call(a.id, &inputs, 1),
        &a.conditions,
    );
    let lower = g.threshold_value(&inputs, 1);
    assert_eq!(err.conditionId, condition_id(a.id, threshold, lower));
    // A subset of the inputs.
    let subset = &inputs[..2];
    let err: AgreementStore::ConditionNotFound = g.reverts(
        outsider,
        threshold,
        reach_call(a.id, subset, 2),
        &a.conditions,
    );
    let value = g.threshold_value(subset, 2);
    assert_eq!(err.conditionId, condition_id(a.id, threshold, value));
    assert_eq!(g.w.state(a.conditions[0]), state::UNFULFILLED);
}

#[test]
fn a_threshold_condition_is_fulfilled_once() {
    let mut g = Generic::new();
    let (outsider, oracle, threshold) = (g.outsider, g.oracle, g.threshold);
    let inputs_agreement = g.agreement(vec![spec(oracle, keccak256(b"only"), 0, 0)]);
    let inputs = inputs_agreement.conditions.clone();
    g.oracle_fulfils(inputs[0]);
    let value = g.threshold_value(&inputs, 1);
    let a = g.agreement(vec![spec(threshold, value, 0, 100)]);
    g.reach(outsider, a.id, &inputs, 1).unwrap();
    let err: AgreementStore::ConditionNotUnfulfilled = g.reverts(
        outsider,
        threshold,
        reach_call(a.id, &inputs, 1),
        &a.conditions,
    );
    assert_eq!(
        (err.conditionId, err.state),
        (a.conditions[0], state::FULFILLED)
    );
}

#[test]
fn a_threshold_reached_after_the_time_out_is_refused() {
    let mut g = Generic::new();
    let (outsider, oracle, threshold) = (g.outsider, g.oracle, g.threshold);
    let inputs_agreement = g.agreement(vec![spec(oracle, keccak256(b"late"), 0, 0)]);
    let inputs = inputs_agreement.conditions.clone();
    let value = g.threshold_value(&inputs, 1);
    let a = g.agreement(vec![spec(threshold, value, 0, 100)]);
    g.at(a.at + 100);
    g.oracle_fulfils(inputs[0]);
    let err: AgreementStore::ConditionTimedOut = g.reverts(
        outsider,
        threshold,
        reach_call(a.id, &inputs, 1),
        &a.conditions,
    );
    assert_eq!(err.conditionId, a.conditions[0]);
}

#[test]
fn threshold_reached_reports_the_threshold_not_every_fulfilled_input() {
    // Counting stops once the threshold is met, so the event's `fulfilled` is always the
    // threshold, even when more inputs are Fulfilled. Its NatSpec ("`fulfilled` of the
    // condition's inputs were Fulfilled") reads as the full count.
    let mut g = Generic::new();
    let (outsider, oracle, threshold) = (g.outsider, g.oracle, g.threshold);
    let specs: Vec<_> = (0u8..3)
        .map(|n| spec(oracle, keccak256([n]), 0, 0))
        .collect();
    let inputs_agreement = g.agreement(specs);
    for id in inputs_agreement.conditions.clone() {
        g.oracle_fulfils(id);
    }
    let inputs = sorted(inputs_agreement.conditions);
    let value = g.threshold_value(&inputs, 1);
    let a = g.agreement(vec![spec(threshold, value, 0, 0)]);
    let receipt = g.reach(outsider, a.id, &inputs, 1).unwrap();
    assert_eq!(
        receipt
            .expect_event::<ThresholdCondition::ThresholdReached>()
            .fulfilled,
        U256::from(1),
        "three inputs are Fulfilled, the event says 1"
    );
}

// ---- ERC-1271 signers ----

impl Generic {
    /// Deploys an `ERC1271Wallet` whose signatures are `owner`'s.
    fn wallet(&mut self, owner: Address) -> Address {
        let outsider = self.outsider;
        self.w
            .chain
            .deploy(
                outsider,
                &ERC1271Wallet::BYTECODE,
                &ERC1271Wallet::constructorCall { owner_: owner },
            )
            .expect("deploy ERC1271Wallet")
    }
}

#[test]
fn an_erc1271_wallet_signs_with_its_owner_key() {
    let mut g = Generic::new();
    let (owner, outsider, sign, store) = (g.signer, g.outsider, g.sign, g.store);
    let wallet = g.wallet(owner);
    let a = g.sign_agreement(wallet, message(), 0);
    let id = a.conditions[0];
    let digest = g.digest(sign, a.id, message());
    let by_owner = g.sign_hash(owner, digest);
    let by_other = g.sign_hash(outsider, digest);
    // The wallet accepts its owner's signature only.
    let magic = |g: &mut Generic, signature: &Signature| {
        g.view(
            wallet,
            ERC1271Wallet::isValidSignatureCall {
                hash: digest,
                signature: signature.as_bytes().into(),
            },
        )
    };
    assert_eq!(magic(&mut g, &by_owner), [0x16, 0x26, 0xba, 0x7e]);
    assert_eq!(magic(&mut g, &by_other), [0xff; 4]);

    // A wrong key, or no signature, is refused for the wallet.
    for signature in [by_other.as_bytes().to_vec(), vec![]] {
        let err: SignCondition::InvalidSignature = g.reverts(
            outsider,
            sign,
            fulfil_sign(a.id, wallet, message(), signature),
            &a.conditions,
        );
        assert_eq!(err.signer, wallet);
    }
    // The owner's signature names the owner key, not the agreed signer: no such condition.
    let err: AgreementStore::ConditionNotFound = g.reverts(
        outsider,
        sign,
        fulfil_sign(a.id, owner, message(), by_owner.as_bytes()),
        &a.conditions,
    );
    let value = g.sign_value(owner, message());
    assert_eq!(err.conditionId, condition_id(a.id, sign, value));

    // Anyone submits the owner's signature for the wallet.
    let receipt = g
        .submit(outsider, sign, a.id, wallet, message(), by_owner.as_bytes())
        .unwrap();
    assert_eq!(receipt.output, id);
    assert_eq!(receipt.logs.len(), 2);
    assert_eq!(
        receipt.expect_event::<AgreementStore::ConditionFulfilled>(),
        AgreementStore::ConditionFulfilled {
            conditionId: id,
            conditionContract: sign
        }
    );
    assert_eq!(receipt.logs[0].address, store);
    assert_eq!(
        receipt.expect_event::<SignCondition::MessageSigned>(),
        SignCondition::MessageSigned {
            agreementId: a.id,
            conditionId: id,
            signer: wallet,
            message: message(),
        }
    );
    assert_eq!(g.w.state(id), state::FULFILLED);
}

#[test]
fn an_erc1271_signature_is_bound_to_its_agreement() {
    let mut g = Generic::new();
    let (owner, outsider, sign) = (g.signer, g.outsider, g.sign);
    let wallet = g.wallet(owner);
    let first = g.sign_agreement(wallet, message(), 0);
    let second = g.sign_agreement(wallet, message(), 0);
    let digest = g.digest(sign, first.id, message());
    let for_first = g.sign_hash(owner, digest);
    let watched = [first.conditions[0], second.conditions[0]];
    let err: SignCondition::InvalidSignature = g.reverts(
        outsider,
        sign,
        fulfil_sign(second.id, wallet, message(), for_first.as_bytes()),
        &watched,
    );
    assert_eq!(err.signer, wallet);
    g.submit(
        outsider,
        sign,
        first.id,
        wallet,
        message(),
        for_first.as_bytes(),
    )
    .unwrap();
    assert_eq!(g.w.state(second.conditions[0]), state::UNFULFILLED);
}

// ---- One secret per agreement ----

#[test]
fn once_revealed_a_secret_opens_every_agreement_locked_on_it() {
    // Documented behaviour (HashLockCondition NatSpec, "one secret per agreement"): a reveal
    // publishes the preimage, so anyone can then fulfil every other agreement locked on the same
    // hash. Binding the agreement id into the lock would not help: the revealed secret opens
    // every binding alike.
    let mut g = Generic::new();
    let (consumer, outsider, hash_lock) = (g.consumer, g.outsider, g.hash_lock);
    let first = g.hash_lock_agreement(b"shared secret", 0, 0);
    let second = g.hash_lock_agreement(b"shared secret", 0, 0);
    assert_ne!(first.conditions[0], second.conditions[0]);
    let watched = [first.conditions[0], second.conditions[0]];

    // Before the reveal the outsider cannot guess it.
    let _: AgreementStore::ConditionNotFound = g.reverts(
        outsider,
        hash_lock,
        HashLockCondition::fulfilCall {
            agreementId: second.id,
            preimage: b"a guess".into(),
        },
        &watched,
    );
    let receipt = g.reveal(consumer, first.id, b"shared secret").unwrap();
    // The outsider reads the secret from the reveal's event and opens the other agreement.
    let revealed = receipt
        .expect_event::<HashLockCondition::PreimageRevealed>()
        .preimage;
    let receipt = g.reveal(outsider, second.id, &revealed).unwrap();
    assert_eq!(receipt.output, second.conditions[0]);
    assert_eq!(g.w.state(first.conditions[0]), state::FULFILLED);
    assert_eq!(g.w.state(second.conditions[0]), state::FULFILLED);
}

#[test]
fn per_agreement_secrets_keep_the_other_agreements_locked() {
    // The NatSpec's advice: derive each agreement's secret, e.g.
    // keccak256(abi.encode(masterSecret, agreementId)). The agreement id binds the value hash of
    // the first condition, so a hash lock whose secret derives from the agreement id cannot be
    // the first condition (its value hash would depend on itself): here a sign condition comes
    // first. A lock that is the first condition can derive its secret from the seed instead.
    let mut g = Generic::new();
    let (consumer, outsider, hash_lock, sign, signer, template) = (
        g.consumer,
        g.outsider,
        g.hash_lock,
        g.sign,
        g.signer,
        g.template,
    );
    let master = keccak256(b"master secret");
    let did = g.w.did;
    let mut agreements = Vec::new();
    for _ in 0..2 {
        let seed = g.w.seed();
        let first = spec(sign, g.sign_value(signer, message()), 0, 0);
        let id = common::agreement_id(seed, consumer, &first);
        let secret = keccak256((master, id).abi_encode_params());
        let lock = g.lock_value(secret.as_slice());
        let receipt = create(
            &mut g.w,
            template,
            consumer,
            seed,
            did,
            vec![first, spec(hash_lock, lock, 0, 0)],
        )
        .unwrap();
        assert_eq!(receipt.output, id);
        agreements.push((id, secret, condition_id(id, hash_lock, lock)));
    }
    let [(one, secret_one, lock_one), (two, secret_two, lock_two)] = agreements[..] else {
        unreachable!()
    };
    assert_ne!(secret_one, secret_two);
    g.reveal(consumer, one, secret_one.as_slice()).unwrap();
    assert_eq!(g.w.state(lock_one), state::FULFILLED);

    // The published secret of the first agreement opens nothing in the second.
    let err: AgreementStore::ConditionNotFound = g.reverts(
        outsider,
        hash_lock,
        HashLockCondition::fulfilCall {
            agreementId: two,
            preimage: secret_one.as_slice().to_vec().into(),
        },
        &[lock_two],
    );
    let value = g.lock_value(secret_one.as_slice());
    assert_eq!(err.conditionId, condition_id(two, hash_lock, value));
    assert_eq!(g.w.state(lock_two), state::UNFULFILLED);
    g.reveal(consumer, two, secret_two.as_slice()).unwrap();
    assert_eq!(g.w.state(lock_two), state::FULFILLED);

    // A lock that is the first condition, on a secret derived from the seed: distinct too.
    let (seed_a, seed_b) = (g.w.seed(), g.w.seed());
    let secret_a = keccak256((master, seed_a).abi_encode_params());
    let secret_b = keccak256((master, seed_b).abi_encode_params());
    let mut ids = Vec::new();
    for (seed, secret) in [(seed_a, secret_a), (seed_b, secret_b)] {
        let lock = g.lock_value(secret.as_slice());
        let receipt = create(
            &mut g.w,
            template,
            consumer,
            seed,
            did,
            vec![spec(hash_lock, lock, 0, 0)],
        )
        .unwrap();
        ids.push((
            receipt.output,
            condition_id(receipt.output, hash_lock, lock),
        ));
    }
    g.reveal(consumer, ids[0].0, secret_a.as_slice()).unwrap();
    let _: AgreementStore::ConditionNotFound = g.reverts(
        outsider,
        hash_lock,
        HashLockCondition::fulfilCall {
            agreementId: ids[1].0,
            preimage: secret_a.as_slice().to_vec().into(),
        },
        &[ids[1].1],
    );
    assert_eq!(g.w.state(ids[1].1), state::UNFULFILLED);
}

// ---- The payment condition on generic agreements ----

/// A passthrough agreement of the consumer whose first condition is a payment of `amount` of the
/// world's token to the provider, released by `service`, followed by `more`. Returns the
/// agreement id, the payment terms and the payment condition id.
fn payment_agreement(
    g: &mut Generic,
    service: Address,
    amount: u64,
    more: impl FnOnce(&mut Generic, B256, B256) -> Vec<PassthroughTemplate::ConditionSpec>,
) -> (B256, PaymentCondition::Payment, B256) {
    let (consumer, provider, token, did, template) =
        (g.consumer, g.w.provider, g.w.token, g.w.did, g.template);
    let payment = g.w.suite.payment;
    let terms = PaymentCondition::Payment {
        token,
        receivers: vec![provider],
        amounts: vec![U256::from(amount)],
        fee: U256::ZERO,
    };
    let value = g.view(
        payment,
        PaymentCondition::hashValuesCall {
            did,
            payer: consumer,
            service,
            payment: terms.clone(),
        },
    );
    let seed = g.w.seed();
    let first = spec(payment, value, 0, 3_600);
    let id = common::agreement_id(seed, consumer, &first);
    let payment_id = condition_id(id, payment, value);
    let mut specs = vec![first];
    specs.extend(more(g, id, payment_id));
    let receipt = create(&mut g.w, template, consumer, seed, did, specs).unwrap();
    assert_eq!(receipt.output, id);
    (id, terms, payment_id)
}

fn lock_call(
    agreement_id: B256,
    did: B256,
    service: Address,
    terms: &PaymentCondition::Payment,
) -> PaymentCondition::lockCall {
    PaymentCondition::lockCall {
        agreementId: agreement_id,
        did,
        service,
        payment: terms.clone(),
    }
}

fn settle_call(
    release: bool,
    agreement_id: B256,
    did: B256,
    payer: Address,
    service: Address,
    terms: &PaymentCondition::Payment,
) -> Vec<u8> {
    if release {
        PaymentCondition::releaseCall {
            agreementId: agreement_id,
            did,
            payer,
            service,
            payment: terms.clone(),
        }
        .abi_encode()
    } else {
        PaymentCondition::refundCall {
            agreementId: agreement_id,
            did,
            payer,
            service,
            payment: terms.clone(),
        }
        .abi_encode()
    }
}

#[test]
fn a_passthrough_payment_is_released_by_its_access_condition() {
    // The nearest a generic agreement now comes to the old escrow with a chosen release
    // condition: the payment's release condition is always the service condition derived from
    // it, here an access condition listed by hand in a passthrough agreement.
    let mut g = Generic::new();
    let (consumer, keeper, outsider, provider, token, did) = (
        g.consumer,
        g.w.keeper,
        g.outsider,
        g.w.provider,
        g.w.token,
        g.w.did,
    );
    let (payment, access) = (g.w.suite.payment, g.w.suite.access);
    let mut service_id = B256::ZERO;
    let (id, terms, payment_id) = payment_agreement(&mut g, access, 500, |g, id, payment_id| {
        let value = g.view(
            access,
            AccessCondition::hashValuesCall {
                did,
                consumer,
                paymentConditionId: payment_id,
            },
        );
        assert_eq!(
            value,
            keccak256((did, consumer, payment_id).abi_encode_params())
        );
        service_id = condition_id(id, access, value);
        vec![spec(access, value, 0, 7_200)]
    });
    let derived: B256 = g.view(
        payment,
        PaymentCondition::serviceConditionIdOfCall {
            agreementId: id,
            did,
            payer: consumer,
            service: access,
            paymentConditionId: payment_id,
        },
    );
    assert_eq!(derived, service_id);
    let serve = AccessCondition::fulfilCall {
        agreementId: id,
        did,
        consumer,
        paymentConditionId: payment_id,
    };

    // No access before the payment.
    let err: AccessCondition::DependencyNotFulfilled =
        g.reverts(keeper, access, serve.clone(), &[payment_id, service_id]);
    assert_eq!(
        (err.conditionId, err.state),
        (payment_id, state::UNFULFILLED)
    );
    let consumer_before = g.w.balance(token, consumer);
    g.send(consumer, payment, lock_call(id, did, access, &terms))
        .unwrap();
    assert_eq!(g.w.state(payment_id), state::FULFILLED);
    assert_eq!(
        g.w.balance(token, consumer),
        consumer_before - U256::from(500)
    );
    g.send(keeper, access, serve).unwrap();
    assert_eq!(g.w.state(service_id), state::FULFILLED);

    let provider_before = g.w.balance(token, provider);
    let receipt =
        g.w.chain
            .send(insitu_tests::harness::Tx::call(
                outsider,
                payment,
                settle_call(true, id, did, consumer, access, &terms),
            ))
            .unwrap();
    assert_eq!(
        receipt.expect_event::<PaymentCondition::PaymentReleased>(),
        PaymentCondition::PaymentReleased {
            agreementId: id,
            token,
            amount: U256::from(500),
            fee: U256::ZERO,
        }
    );
    assert_eq!(g.w.state(payment_id), state::RELEASED);
    assert_eq!(
        g.w.balance(token, provider),
        provider_before + U256::from(500)
    );
}

#[test]
fn a_generic_condition_cannot_release_a_payment() {
    // With the old contracts the escrow took any release condition, e.g. a hash lock: revealing
    // the secret released the payment. Now the releasing condition is derived: the condition of
    // `service` with value hash keccak256(abi.encode(did, payer, paymentConditionId)), which no
    // hash lock can hold (its value hashes are keccak256(abi.encode(lockHash))). Naming the hash
    // lock contract as `service`, the payment can never be released; its derived service
    // condition does not exist, so the payer may take it back at once.
    let mut g = Generic::new();
    let (consumer, outsider, token, did, hash_lock) =
        (g.consumer, g.outsider, g.w.token, g.w.did, g.hash_lock);
    let payment = g.w.suite.payment;
    let lock = g.lock_value(b"release me");
    let mut lock_id = B256::ZERO;
    let (id, terms, payment_id) = payment_agreement(&mut g, hash_lock, 500, |_, id, _| {
        lock_id = condition_id(id, hash_lock, lock);
        vec![spec(hash_lock, lock, 0, 0)]
    });
    let derived: B256 = g.view(
        payment,
        PaymentCondition::serviceConditionIdOfCall {
            agreementId: id,
            did,
            payer: consumer,
            service: hash_lock,
            paymentConditionId: payment_id,
        },
    );
    assert_ne!(derived, lock_id);
    let before = g.w.balance(token, consumer);
    g.send(consumer, payment, lock_call(id, did, hash_lock, &terms))
        .unwrap();
    g.reveal(outsider, id, b"release me").unwrap();
    assert_eq!(g.w.state(lock_id), state::FULFILLED);

    let escrow_before = g.w.balance(token, payment);
    let err =
        g.w.chain
            .send(insitu_tests::harness::Tx::call(
                outsider,
                payment,
                settle_call(true, id, did, consumer, hash_lock, &terms),
            ))
            .expect_revert::<PaymentCondition::ServiceNotFulfilled>();
    assert_eq!(
        (err.serviceConditionId, err.state),
        (derived, state::UNINITIALIZED)
    );
    assert_eq!(g.w.state(payment_id), state::FULFILLED);
    assert_eq!(g.w.balance(token, payment), escrow_before);

    g.w.chain
        .send(insitu_tests::harness::Tx::call(
            outsider,
            payment,
            settle_call(false, id, did, consumer, hash_lock, &terms),
        ))
        .unwrap();
    assert_eq!(g.w.state(payment_id), state::REFUNDED);
    assert_eq!(g.w.balance(token, consumer), before);
}
