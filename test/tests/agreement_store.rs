//! AgreementStore and its TemplateRegistry: template governance, agreement and condition
//! creation (through a `PassthroughTemplate` the governor approves), and the state rules every
//! condition obeys: who may change it, once, and inside which time window.
//!
//! Conditions owned by the `oracle` account (an EOA named as condition contract in a spec) let
//! the tests call `fulfil` and `abort` on the store directly.

mod common;

use alloy::{
    primitives::{Address, B256, U256, keccak256},
    sol_types::{SolCall, SolError},
};
use common::{
    agreement, agreement_id, approved_passthrough, condition, condition_id, conditions, create,
    deploy_passthrough, is_timed_out, spec, u40,
};
use insitu_bindings::{AgreementStore, HashLockCondition, PassthroughTemplate};
use insitu_tests::harness::{ExpectRevert, Receipt, Tx, TxError};
use insitu_tests::world::{Service, World, state};

/// Template states as the bindings return them.
mod template {
    pub(crate) const NONE: u8 = 0;
    pub(crate) const PROPOSED: u8 = 1;
    pub(crate) const APPROVED: u8 = 2;
    pub(crate) const REVOKED: u8 = 3;
}

/// What the store's views say, for before/after comparisons around reverted calls.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StoreView {
    agreements: Vec<AgreementStore::Agreement>,
    conditions: Vec<AgreementStore::Condition>,
    templates: Vec<u8>,
    governors: Vec<bool>,
}

struct Store {
    w: World,
    store: Address,
    /// An approved passthrough template.
    template: Address,
    /// An EOA used as the condition contract of conditions it then fulfils or aborts itself.
    oracle: Address,
    consumer: Address,
    outsider: Address,
    governor: Address,
    /// Templates whose state every revert check compares.
    templates: Vec<Address>,
}

impl Store {
    fn new() -> Self {
        let mut w = World::new();
        let template = approved_passthrough(&mut w);
        let oracle = w.chain.account_named("oracle");
        Self {
            store: w.suite.agreement_store,
            templates: vec![template, w.suite.access_template, w.suite.compute_template],
            template,
            oracle,
            consumer: w.consumer,
            outsider: w.outsider,
            governor: w.governor,
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

    fn send_store<C: SolCall>(
        &mut self,
        from: Address,
        call: C,
    ) -> Result<Receipt<C::Return>, TxError> {
        let store = self.store;
        self.send(from, store, call)
    }

    fn view<C: SolCall>(&mut self, call: C) -> C::Return {
        self.w.chain.call(self.store, &call).expect("a store view")
    }

    fn template_state(&mut self, template: Address) -> u8 {
        self.view(AgreementStore::templateStateCall { template })
    }

    fn is_approved(&mut self, template: Address) -> bool {
        self.view(AgreementStore::isTemplateApprovedCall { template })
    }

    fn is_governor(&mut self, account: Address) -> bool {
        self.view(AgreementStore::isGovernorCall { account })
    }

    fn state_of(&mut self, agreements: &[B256], ids: &[B256]) -> StoreView {
        let parties = [self.governor, self.outsider, self.consumer, self.oracle];
        StoreView {
            agreements: agreements
                .iter()
                .map(|id| agreement(&mut self.w, *id))
                .collect(),
            conditions: conditions(&mut self.w, ids),
            templates: self
                .templates
                .clone()
                .into_iter()
                .map(|t| self.template_state(t))
                .collect(),
            governors: parties.into_iter().map(|a| self.is_governor(a)).collect(),
        }
    }

    /// Sends `call` to `to`, expects the revert `E`, and checks that the store's views of
    /// `agreements`, `ids`, the watched templates and the governor roles did not change.
    #[track_caller]
    fn reverts<C: SolCall, E: SolError>(
        &mut self,
        from: Address,
        to: Address,
        call: C,
        agreements: &[B256],
        ids: &[B256],
    ) -> E {
        let before = self.state_of(agreements, ids);
        let err = self.send(from, to, call).expect_revert::<E>();
        assert_eq!(
            self.state_of(agreements, ids),
            before,
            "a reverted call changed the store"
        );
        err
    }

    /// `consumer` creates an agreement with `specs` through the passthrough template.
    fn create(
        &mut self,
        seed: B256,
        specs: Vec<PassthroughTemplate::ConditionSpec>,
    ) -> Result<Receipt<B256>, TxError> {
        let (template, consumer, did) = (self.template, self.consumer, self.w.did);
        create(&mut self.w, template, consumer, seed, did, specs)
    }

    /// An agreement with one condition of the oracle; returns (agreement id, condition id,
    /// creation time).
    fn oracle_condition(&mut self, time_lock: u32, time_out: u32) -> (B256, B256, u64) {
        let seed = self.w.seed();
        let value_hash = keccak256(b"oracle says so");
        let receipt = self
            .create(
                seed,
                vec![spec(self.oracle, value_hash, time_lock, time_out)],
            )
            .expect("create an oracle agreement");
        let id = condition_id(receipt.output, self.oracle, value_hash);
        (receipt.output, id, receipt.timestamp)
    }

    /// An agreement with one hash lock condition; returns (agreement id, condition id, creation
    /// time).
    fn hash_lock_condition(&mut self, time_out: u32) -> (B256, B256, u64) {
        let hash_lock = self.w.suite.hash_lock;
        let value_hash = self
            .w
            .chain
            .call(
                hash_lock,
                &HashLockCondition::hashValuesCall {
                    lockHash: keccak256(b"secret"),
                },
            )
            .expect("hashValues");
        let seed = self.w.seed();
        let receipt = self
            .create(seed, vec![spec(hash_lock, value_hash, 0, time_out)])
            .expect("create a hash lock agreement");
        let id = condition_id(receipt.output, hash_lock, value_hash);
        (receipt.output, id, receipt.timestamp)
    }

    fn fulfil(&mut self, from: Address, id: B256) -> Result<Receipt<()>, TxError> {
        Ok(self
            .send_store(from, AgreementStore::fulfilCall { conditionId: id })?
            .map(|_| ()))
    }

    fn abort(&mut self, from: Address, id: B256) -> Result<Receipt<()>, TxError> {
        Ok(self
            .send_store(from, AgreementStore::abortCall { conditionId: id })?
            .map(|_| ()))
    }

    fn at(&mut self, timestamp: u64) {
        assert!(timestamp >= self.w.chain.timestamp(), "time only moves on");
        self.w.chain.set_timestamp(timestamp);
    }
}

/// A condition's record in the store, as expected.
fn record(
    contract: Address,
    state: u8,
    time_lock: u64,
    time_out: u64,
) -> AgreementStore::Condition {
    AgreementStore::Condition {
        conditionContract: contract,
        state,
        timeLock: u40(time_lock),
        timeOut: u40(time_out),
    }
}

// ---- Governance ----

#[test]
fn the_governor_role_is_the_keccak_of_insitu_governor() {
    let mut s = Store::new();
    assert_eq!(
        s.view(AgreementStore::GOVERNOR_ROLECall {}),
        keccak256(b"insitu.governor")
    );
    assert_eq!(
        s.view(AgreementStore::DEFAULT_ADMIN_ROLECall {}),
        B256::ZERO
    );
    assert_eq!(
        s.view(AgreementStore::getRoleAdminCall {
            role: keccak256(b"insitu.governor")
        }),
        B256::ZERO,
        "the admin role administers the governor role"
    );
}

#[test]
fn the_named_governor_holds_the_admin_and_governor_roles() {
    let mut s = Store::new();
    let governor = s.governor;
    assert!(s.is_governor(governor));
    assert!(s.view(AgreementStore::hasRoleCall {
        role: B256::ZERO,
        account: governor
    }));
    for account in [s.outsider, s.consumer, s.oracle, s.template, Address::ZERO] {
        assert!(!s.is_governor(account));
        assert!(!s.view(AgreementStore::hasRoleCall {
            role: B256::ZERO,
            account
        }));
    }
}

#[test]
fn a_store_with_a_zero_governor_cannot_be_deployed() {
    let mut s = Store::new();
    let deployer = s.outsider;
    let nonce = s.w.chain.nonce(deployer);
    let _: AgreementStore::InvalidGovernor =
        s.w.chain
            .deploy(
                deployer,
                &AgreementStore::BYTECODE,
                &AgreementStore::constructorCall {
                    governor: Address::ZERO,
                },
            )
            .expect_revert();
    assert!(
        s.w.chain.code(deployer.create(nonce)).is_empty(),
        "no store was created"
    );

    // Any other governor works, and the deployer gets no role.
    let named = s.consumer;
    let store =
        s.w.chain
            .deploy(
                deployer,
                &AgreementStore::BYTECODE,
                &AgreementStore::constructorCall { governor: named },
            )
            .unwrap();
    let is_governor = |s: &mut Store, account| {
        s.w.chain
            .call(store, &AgreementStore::isGovernorCall { account })
            .unwrap()
    };
    assert!(is_governor(&mut s, named));
    assert!(!is_governor(&mut s, deployer));
}

#[test]
fn the_suite_templates_are_approved_at_deployment() {
    let mut s = Store::new();
    for t in [s.w.suite.access_template, s.w.suite.compute_template] {
        assert_eq!(s.template_state(t), template::APPROVED);
        assert!(s.is_approved(t));
    }
    // Condition contracts are not templates.
    let lock = s.w.suite.lock_payment;
    assert_eq!(s.template_state(lock), template::NONE);
    assert!(!s.is_approved(lock));
}

#[test]
fn anyone_proposes_a_contract_as_template() {
    let mut s = Store::new();
    let consumer = s.consumer;
    let candidate = deploy_passthrough(&mut s.w, consumer);
    assert_eq!(s.template_state(candidate), template::NONE);

    let receipt = s
        .send_store(
            consumer,
            AgreementStore::proposeTemplateCall {
                template: candidate,
            },
        )
        .unwrap();
    assert_eq!(receipt.logs.len(), 1);
    assert_eq!(
        receipt.expect_event::<AgreementStore::TemplateProposed>(),
        AgreementStore::TemplateProposed {
            template: candidate,
            proposer: consumer
        }
    );
    assert_eq!(s.template_state(candidate), template::PROPOSED);
    assert!(!s.is_approved(candidate), "proposed is not approved");
}

#[test]
fn proposing_an_account_without_code_reverts_template_not_contract() {
    let mut s = Store::new();
    let (outsider, store, oracle) = (s.outsider, s.store, s.oracle);
    for candidate in [oracle, Address::ZERO] {
        let err: AgreementStore::TemplateNotContract = s.reverts(
            outsider,
            store,
            AgreementStore::proposeTemplateCall {
                template: candidate,
            },
            &[],
            &[],
        );
        assert_eq!(err.template, candidate);
        assert_eq!(s.template_state(candidate), template::NONE);
    }
}

#[test]
fn a_template_is_proposed_once() {
    let mut s = Store::new();
    let (outsider, governor, store) = (s.outsider, s.governor, s.store);
    let candidate = deploy_passthrough(&mut s.w, outsider);
    s.templates.push(candidate);
    let propose = AgreementStore::proposeTemplateCall {
        template: candidate,
    };
    s.send_store(outsider, propose.clone()).unwrap();

    let err: AgreementStore::InvalidTemplateState =
        s.reverts(governor, store, propose.clone(), &[], &[]);
    assert_eq!((err.template, err.state), (candidate, template::PROPOSED));

    s.send_store(
        governor,
        AgreementStore::approveTemplateCall {
            template: candidate,
        },
    )
    .unwrap();
    let err: AgreementStore::InvalidTemplateState =
        s.reverts(outsider, store, propose.clone(), &[], &[]);
    assert_eq!((err.template, err.state), (candidate, template::APPROVED));

    s.send_store(
        governor,
        AgreementStore::revokeTemplateCall {
            template: candidate,
        },
    )
    .unwrap();
    let err: AgreementStore::InvalidTemplateState = s.reverts(outsider, store, propose, &[], &[]);
    assert_eq!((err.template, err.state), (candidate, template::REVOKED));
}

#[test]
fn the_governor_approves_a_proposed_template() {
    let mut s = Store::new();
    let (outsider, governor) = (s.outsider, s.governor);
    let candidate = deploy_passthrough(&mut s.w, outsider);
    s.send_store(
        outsider,
        AgreementStore::proposeTemplateCall {
            template: candidate,
        },
    )
    .unwrap();
    let receipt = s
        .send_store(
            governor,
            AgreementStore::approveTemplateCall {
                template: candidate,
            },
        )
        .unwrap();
    assert_eq!(receipt.logs.len(), 1);
    assert_eq!(
        receipt.expect_event::<AgreementStore::TemplateApproved>(),
        AgreementStore::TemplateApproved {
            template: candidate,
            by: governor
        }
    );
    assert_eq!(s.template_state(candidate), template::APPROVED);
    assert!(s.is_approved(candidate));
}

#[test]
fn outsider_cannot_approve_a_template() {
    let mut s = Store::new();
    let (outsider, store) = (s.outsider, s.store);
    let candidate = deploy_passthrough(&mut s.w, outsider);
    s.templates.push(candidate);
    s.send_store(
        outsider,
        AgreementStore::proposeTemplateCall {
            template: candidate,
        },
    )
    .unwrap();
    let role = keccak256(b"insitu.governor");
    for caller in [outsider, s.consumer, s.oracle] {
        let err: AgreementStore::AccessControlUnauthorizedAccount = s.reverts(
            caller,
            store,
            AgreementStore::approveTemplateCall {
                template: candidate,
            },
            &[],
            &[],
        );
        assert_eq!((err.account, err.neededRole), (caller, role));
    }
    assert_eq!(s.template_state(candidate), template::PROPOSED);
}

#[test]
fn outsider_cannot_revoke_a_template() {
    let mut s = Store::new();
    let (outsider, store) = (s.outsider, s.store);
    let role = keccak256(b"insitu.governor");
    for target in [s.template, s.w.suite.access_template] {
        let err: AgreementStore::AccessControlUnauthorizedAccount = s.reverts(
            outsider,
            store,
            AgreementStore::revokeTemplateCall { template: target },
            &[],
            &[],
        );
        assert_eq!((err.account, err.neededRole), (outsider, role));
        assert_eq!(s.template_state(target), template::APPROVED);
    }
}

#[test]
fn approving_needs_a_proposed_template() {
    let mut s = Store::new();
    let (outsider, governor, store) = (s.outsider, s.governor, s.store);
    let candidate = deploy_passthrough(&mut s.w, outsider);
    s.templates.push(candidate);
    let approve = AgreementStore::approveTemplateCall {
        template: candidate,
    };

    let err: AgreementStore::InvalidTemplateState =
        s.reverts(governor, store, approve.clone(), &[], &[]);
    assert_eq!((err.template, err.state), (candidate, template::NONE));

    s.send_store(
        outsider,
        AgreementStore::proposeTemplateCall {
            template: candidate,
        },
    )
    .unwrap();
    s.send_store(governor, approve.clone()).unwrap();
    let err: AgreementStore::InvalidTemplateState =
        s.reverts(governor, store, approve.clone(), &[], &[]);
    assert_eq!((err.template, err.state), (candidate, template::APPROVED));

    s.send_store(
        governor,
        AgreementStore::revokeTemplateCall {
            template: candidate,
        },
    )
    .unwrap();
    let err: AgreementStore::InvalidTemplateState = s.reverts(governor, store, approve, &[], &[]);
    assert_eq!((err.template, err.state), (candidate, template::REVOKED));
}

#[test]
fn a_revoked_template_stays_revoked() {
    let mut s = Store::new();
    let (outsider, governor, store) = (s.outsider, s.governor, s.store);
    let candidate = deploy_passthrough(&mut s.w, outsider);
    s.templates.push(candidate);
    let revoke = AgreementStore::revokeTemplateCall {
        template: candidate,
    };

    // Revoking needs a proposed or approved template.
    let err: AgreementStore::InvalidTemplateState =
        s.reverts(governor, store, revoke.clone(), &[], &[]);
    assert_eq!((err.template, err.state), (candidate, template::NONE));

    // A proposed template may be revoked without ever being approved.
    s.send_store(
        outsider,
        AgreementStore::proposeTemplateCall {
            template: candidate,
        },
    )
    .unwrap();
    let receipt = s.send_store(governor, revoke.clone()).unwrap();
    assert_eq!(receipt.logs.len(), 1);
    assert_eq!(
        receipt.expect_event::<AgreementStore::TemplateRevoked>(),
        AgreementStore::TemplateRevoked {
            template: candidate,
            by: governor
        }
    );
    assert_eq!(s.template_state(candidate), template::REVOKED);
    assert!(!s.is_approved(candidate));

    // Final: no revoke, approve or propose brings it back.
    let err: AgreementStore::InvalidTemplateState = s.reverts(governor, store, revoke, &[], &[]);
    assert_eq!(err.state, template::REVOKED);
    let err: AgreementStore::InvalidTemplateState = s.reverts(
        governor,
        store,
        AgreementStore::approveTemplateCall {
            template: candidate,
        },
        &[],
        &[],
    );
    assert_eq!(err.state, template::REVOKED);
    let err: AgreementStore::InvalidTemplateState = s.reverts(
        outsider,
        store,
        AgreementStore::proposeTemplateCall {
            template: candidate,
        },
        &[],
        &[],
    );
    assert_eq!(err.state, template::REVOKED);
}

#[test]
fn revoking_an_approved_template_stops_its_creations_but_not_its_agreements() {
    let mut s = Store::new();
    let (governor, template, consumer, outsider) = (s.governor, s.template, s.consumer, s.outsider);
    let (old_agreement, hash_lock_id, created) = s.hash_lock_condition(1_000);
    let (_, oracle_id, _) = s.oracle_condition(0, 0);
    let (_, late_id, _) = s.hash_lock_condition(10);

    let receipt = s
        .send_store(governor, AgreementStore::revokeTemplateCall { template })
        .unwrap();
    assert_eq!(
        receipt.expect_event::<AgreementStore::TemplateRevoked>(),
        AgreementStore::TemplateRevoked {
            template,
            by: governor
        }
    );
    assert!(!s.is_approved(template));

    // No new agreement.
    let seed = s.w.seed();
    let did = s.w.did;
    let oracle = s.oracle;
    let err: AgreementStore::TemplateNotApproved = s.reverts(
        consumer,
        template,
        PassthroughTemplate::createCall {
            seed,
            did,
            conditions: vec![spec(oracle, B256::ZERO, 0, 0)],
        },
        &[agreement_id(seed, consumer)],
        &[],
    );
    assert_eq!(err.caller, template);

    // The agreements it created keep working: their conditions do not depend on the template.
    let receipt = s
        .send(
            outsider,
            s.w.suite.hash_lock,
            HashLockCondition::fulfilCall {
                agreementId: old_agreement,
                preimage: b"secret".into(),
            },
        )
        .unwrap();
    assert_eq!(receipt.output, hash_lock_id);
    assert_eq!(s.w.state(hash_lock_id), state::FULFILLED);
    s.abort(oracle, oracle_id).unwrap();
    assert_eq!(s.w.state(oracle_id), state::ABORTED);
    s.at(created + 10);
    s.send(
        outsider,
        s.w.suite.hash_lock,
        HashLockCondition::abortTimedOutCall {
            conditionId: late_id,
        },
    )
    .unwrap();
    assert_eq!(s.w.state(late_id), state::ABORTED);
}

#[test]
fn revoking_a_suite_template_stops_the_service_it_sells() {
    let mut s = Store::new();
    let governor = s.governor;
    let access = s.w.suite.access_template;
    s.send_store(
        governor,
        AgreementStore::revokeTemplateCall { template: access },
    )
    .unwrap();
    let terms = World::terms(s.w.token, &[(s.w.provider, 100)]);
    let (consumer, did) = (s.consumer, s.w.did);
    let err: AgreementStore::TemplateNotApproved =
        s.w.create(Service::Access, consumer, did, terms.clone())
            .expect_revert();
    assert_eq!(err.caller, access);
    // The compute template is not affected.
    s.w.create(Service::Compute, consumer, did, terms)
        .expect("the compute template still creates");
}

#[test]
fn a_governor_granted_by_the_admin_governs_until_revoked() {
    let mut s = Store::new();
    let (governor, outsider, store) = (s.governor, s.outsider, s.store);
    let role = keccak256(b"insitu.governor");
    let candidate = deploy_passthrough(&mut s.w, outsider);
    s.send_store(
        outsider,
        AgreementStore::proposeTemplateCall {
            template: candidate,
        },
    )
    .unwrap();

    s.send_store(
        governor,
        AgreementStore::grantRoleCall {
            role,
            account: outsider,
        },
    )
    .unwrap();
    assert!(s.is_governor(outsider));
    let receipt = s
        .send_store(
            outsider,
            AgreementStore::approveTemplateCall {
                template: candidate,
            },
        )
        .unwrap();
    assert_eq!(
        receipt
            .expect_event::<AgreementStore::TemplateApproved>()
            .by,
        outsider
    );

    s.send_store(
        governor,
        AgreementStore::revokeRoleCall {
            role,
            account: outsider,
        },
    )
    .unwrap();
    assert!(!s.is_governor(outsider));
    s.templates.push(candidate);
    let err: AgreementStore::AccessControlUnauthorizedAccount = s.reverts(
        outsider,
        store,
        AgreementStore::revokeTemplateCall {
            template: candidate,
        },
        &[],
        &[],
    );
    assert_eq!((err.account, err.neededRole), (outsider, role));
}

#[test]
fn an_account_cannot_create_agreements_directly() {
    let mut s = Store::new();
    let (store, oracle, did) = (s.store, s.oracle, s.w.did);
    let seed = B256::repeat_byte(1);
    for caller in [s.consumer, s.governor] {
        let err: AgreementStore::TemplateNotApproved = s.reverts(
            caller,
            store,
            AgreementStore::createAgreementCall {
                seed,
                consumer: caller,
                did,
                conditions: vec![AgreementStore::ConditionSpec {
                    conditionContract: oracle,
                    valueHash: B256::ZERO,
                    timeLock: 0,
                    timeOut: 0,
                }],
            },
            &[agreement_id(seed, caller)],
            &[],
        );
        assert_eq!(err.caller, caller);
    }
}

#[test]
fn an_unapproved_contract_cannot_create_agreements() {
    let mut s = Store::new();
    let (outsider, governor, consumer, oracle, did) =
        (s.outsider, s.governor, s.consumer, s.oracle, s.w.did);
    let rogue = deploy_passthrough(&mut s.w, outsider);
    s.templates.push(rogue);
    let seed = B256::repeat_byte(2);
    let call = PassthroughTemplate::createCall {
        seed,
        did,
        conditions: vec![spec(oracle, B256::ZERO, 0, 0)],
    };
    let watched = [agreement_id(seed, consumer)];

    let err: AgreementStore::TemplateNotApproved =
        s.reverts(consumer, rogue, call.clone(), &watched, &[]);
    assert_eq!(err.caller, rogue, "never proposed");
    s.send_store(
        outsider,
        AgreementStore::proposeTemplateCall { template: rogue },
    )
    .unwrap();
    let err: AgreementStore::TemplateNotApproved =
        s.reverts(consumer, rogue, call.clone(), &watched, &[]);
    assert_eq!(err.caller, rogue, "proposed only");
    s.send_store(
        governor,
        AgreementStore::revokeTemplateCall { template: rogue },
    )
    .unwrap();
    let err: AgreementStore::TemplateNotApproved = s.reverts(consumer, rogue, call, &watched, &[]);
    assert_eq!(err.caller, rogue, "revoked");
}

// ---- Agreement creation ----

#[test]
fn create_derives_every_id_and_stores_the_agreement_and_its_conditions() {
    let mut s = Store::new();
    let (template, consumer, oracle) = (s.template, s.consumer, s.oracle);
    let (hash_lock, sign) = (s.w.suite.hash_lock, s.w.suite.sign);
    let did = keccak256(b"any did: the store does not check the registry");
    let seed = B256::repeat_byte(0xa1);
    let lock_hash =
        s.w.chain
            .call(
                hash_lock,
                &HashLockCondition::hashValuesCall {
                    lockHash: keccak256(b"k"),
                },
            )
            .unwrap();
    let specs = vec![
        spec(hash_lock, lock_hash, 0, 0),
        spec(oracle, keccak256(b"x"), 100, 1_000),
        spec(sign, keccak256(b"y"), 0, 500),
        spec(oracle, keccak256(b"z"), 60, 0),
    ];
    s.w.chain.warp(7);

    let receipt = create(&mut s.w, template, consumer, seed, did, specs.clone()).unwrap();
    let created = receipt.timestamp;
    let agreement_id = receipt.output;
    assert_eq!(agreement_id, common::agreement_id(seed, consumer));

    let ids: Vec<B256> = specs
        .iter()
        .map(|spec| condition_id(agreement_id, spec.conditionContract, spec.valueHash))
        .collect();
    // The condition contracts derive the same ids.
    let via_contract: B256 =
        s.w.chain
            .call(
                hash_lock,
                &HashLockCondition::conditionIdOfCall {
                    agreementId: agreement_id,
                    valueHash: lock_hash,
                },
            )
            .unwrap();
    assert_eq!(via_contract, ids[0]);

    assert_eq!(receipt.logs.len(), 1, "one event for the whole agreement");
    assert_eq!(receipt.logs[0].address, s.store);
    assert_eq!(
        receipt.expect_event::<AgreementStore::AgreementCreated>(),
        AgreementStore::AgreementCreated {
            agreementId: agreement_id,
            did,
            consumer,
            template,
            conditionIds: ids.clone(),
        }
    );
    assert_eq!(
        agreement(&mut s.w, agreement_id),
        AgreementStore::Agreement {
            consumer,
            createdAt: u40(created),
        }
    );
    assert_eq!(
        conditions(&mut s.w, &ids),
        vec![
            record(hash_lock, state::UNFULFILLED, 0, 0),
            record(oracle, state::UNFULFILLED, created + 100, created + 1_000),
            record(sign, state::UNFULFILLED, 0, created + 500),
            record(oracle, state::UNFULFILLED, created + 60, 0),
        ]
    );
    for id in ids {
        assert_eq!(s.w.state(id), state::UNFULFILLED);
        assert!(!is_timed_out(&mut s.w, id));
    }
}

#[test]
fn the_widest_time_window_fits() {
    let mut s = Store::new();
    let oracle = s.oracle;
    let seed = s.w.seed();
    let receipt = s
        .create(seed, vec![spec(oracle, B256::ZERO, u32::MAX - 1, u32::MAX)])
        .unwrap();
    let id = condition_id(receipt.output, oracle, B256::ZERO);
    let created = receipt.timestamp;
    assert_eq!(
        condition(&mut s.w, id),
        record(
            oracle,
            state::UNFULFILLED,
            created + u64::from(u32::MAX - 1),
            created + u64::from(u32::MAX)
        )
    );
}

#[test]
fn the_same_seed_twice_by_the_same_consumer_reverts_agreement_already_exists() {
    let mut s = Store::new();
    let (template, consumer, oracle, did) = (s.template, s.consumer, s.oracle, s.w.did);
    let seed = B256::repeat_byte(3);
    let first = s
        .create(seed, vec![spec(oracle, keccak256(b"a"), 0, 0)])
        .unwrap();
    let first_id = condition_id(first.output, oracle, keccak256(b"a"));
    let second_id = condition_id(first.output, oracle, keccak256(b"b"));
    s.w.chain.warp(100);

    // Other conditions do not make it another agreement.
    let err: AgreementStore::AgreementAlreadyExists = s.reverts(
        consumer,
        template,
        PassthroughTemplate::createCall {
            seed,
            did,
            conditions: vec![spec(oracle, keccak256(b"b"), 0, 0)],
        },
        &[first.output],
        &[first_id, second_id],
    );
    assert_eq!(err.agreementId, first.output);
    assert_eq!(s.w.state(second_id), state::UNINITIALIZED);
    assert_eq!(
        agreement(&mut s.w, first.output).createdAt,
        u40(first.timestamp),
        "the first creation time stands"
    );
}

#[test]
fn two_consumers_with_the_same_seed_get_distinct_agreements() {
    let mut s = Store::new();
    let (template, consumer, outsider, oracle, did) =
        (s.template, s.consumer, s.outsider, s.oracle, s.w.did);
    let seed = B256::repeat_byte(4);
    let specs = vec![spec(oracle, keccak256(b"same"), 0, 0)];
    let mine = create(&mut s.w, template, consumer, seed, did, specs.clone()).unwrap();
    let theirs = create(&mut s.w, template, outsider, seed, did, specs).unwrap();

    assert_ne!(mine.output, theirs.output);
    assert_eq!(mine.output, agreement_id(seed, consumer));
    assert_eq!(theirs.output, agreement_id(seed, outsider));
    assert_eq!(agreement(&mut s.w, mine.output).consumer, consumer);
    assert_eq!(agreement(&mut s.w, theirs.output).consumer, outsider);
    // The same spec gives each agreement its own condition.
    let a = condition_id(mine.output, oracle, keccak256(b"same"));
    let b = condition_id(theirs.output, oracle, keccak256(b"same"));
    assert_ne!(a, b);
    assert_eq!(
        theirs
            .expect_event::<AgreementStore::AgreementCreated>()
            .conditionIds,
        vec![b]
    );
    assert_eq!(s.w.state(a), state::UNFULFILLED);
    assert_eq!(s.w.state(b), state::UNFULFILLED);
}

#[test]
fn an_agreement_without_conditions_reverts_no_conditions() {
    let mut s = Store::new();
    let (template, consumer, did) = (s.template, s.consumer, s.w.did);
    let seed = B256::repeat_byte(5);
    let _: AgreementStore::NoConditions = s.reverts(
        consumer,
        template,
        PassthroughTemplate::createCall {
            seed,
            did,
            conditions: vec![],
        },
        &[agreement_id(seed, consumer)],
        &[],
    );
    assert_eq!(
        agreement(&mut s.w, agreement_id(seed, consumer)).consumer,
        Address::ZERO
    );
}

#[test]
fn a_zero_condition_contract_reverts_invalid_condition_contract() {
    let mut s = Store::new();
    let (template, consumer, oracle, did) = (s.template, s.consumer, s.oracle, s.w.did);
    let seed = B256::repeat_byte(6);
    let id = agreement_id(seed, consumer);
    let valid = condition_id(id, oracle, keccak256(b"ok"));
    // The valid first condition is written before the second is checked: the revert undoes it.
    let err: AgreementStore::InvalidConditionContract = s.reverts(
        consumer,
        template,
        PassthroughTemplate::createCall {
            seed,
            did,
            conditions: vec![
                spec(oracle, keccak256(b"ok"), 0, 0),
                spec(Address::ZERO, keccak256(b"bad"), 0, 0),
            ],
        },
        &[id],
        &[valid, condition_id(id, Address::ZERO, keccak256(b"bad"))],
    );
    assert_eq!(err.conditionContract, Address::ZERO);
    assert_eq!(s.w.state(valid), state::UNINITIALIZED);
    assert_eq!(agreement(&mut s.w, id).consumer, Address::ZERO);
}

#[test]
fn a_time_out_not_after_the_time_lock_reverts_invalid_time_window() {
    let mut s = Store::new();
    let (template, consumer, oracle, did) = (s.template, s.consumer, s.oracle, s.w.did);
    let seed = B256::repeat_byte(7);
    let id = agreement_id(seed, consumer);
    for (time_lock, time_out) in [(100, 100), (100, 99), (u32::MAX, 1)] {
        let err: AgreementStore::InvalidTimeWindow = s.reverts(
            consumer,
            template,
            PassthroughTemplate::createCall {
                seed,
                did,
                conditions: vec![spec(oracle, B256::ZERO, time_lock, time_out)],
            },
            &[id],
            &[condition_id(id, oracle, B256::ZERO)],
        );
        assert_eq!((err.timeLock, err.timeOut), (time_lock, time_out));
    }
    // A time lock without time out, and a time out one second after the lock, are fine.
    let receipt = s
        .create(
            seed,
            vec![
                spec(oracle, keccak256(b"1"), 100, 0),
                spec(oracle, keccak256(b"2"), 100, 101),
                spec(oracle, keccak256(b"3"), 0, 1),
            ],
        )
        .unwrap();
    let created = receipt.timestamp;
    assert_eq!(
        condition(&mut s.w, condition_id(id, oracle, keccak256(b"2"))),
        record(oracle, state::UNFULFILLED, created + 100, created + 101)
    );
}

#[test]
fn two_identical_conditions_in_one_agreement_revert_condition_already_exists() {
    let mut s = Store::new();
    let (template, consumer, oracle, did) = (s.template, s.consumer, s.oracle, s.w.did);
    let seed = B256::repeat_byte(8);
    let id = agreement_id(seed, consumer);
    let duplicate = condition_id(id, oracle, keccak256(b"twice"));
    // The time window is not part of the id: other windows are still the same condition.
    let err: AgreementStore::ConditionAlreadyExists = s.reverts(
        consumer,
        template,
        PassthroughTemplate::createCall {
            seed,
            did,
            conditions: vec![
                spec(oracle, keccak256(b"twice"), 0, 0),
                spec(oracle, keccak256(b"other"), 0, 0),
                spec(oracle, keccak256(b"twice"), 10, 20),
            ],
        },
        &[id],
        &[duplicate],
    );
    assert_eq!(err.conditionId, duplicate);
    assert_eq!(s.w.state(duplicate), state::UNINITIALIZED);
}

#[test]
fn the_zero_consumer_is_refused_even_though_no_template_can_send_it() {
    // InvalidConsumer cannot be reached through a template on a real chain: every template passes
    // its own caller as consumer, and no transaction can come from the zero address. Only a
    // simulated call from the zero address (eth_call's default sender) gets there.
    let mut s = Store::new();
    let (template, oracle, did) = (s.template, s.oracle, s.w.did);
    let call = PassthroughTemplate::createCall {
        seed: B256::repeat_byte(9),
        did,
        conditions: vec![spec(oracle, B256::ZERO, 0, 0)],
    };
    let _: AgreementStore::InvalidConsumer = s.w.chain.call(template, &call).expect_revert();
    let err: AgreementStore::InvalidConsumer =
        s.w.chain
            .simulate(Tx::call(Address::ZERO, template, call.abi_encode()))
            .expect_revert();
    assert_eq!(err, AgreementStore::InvalidConsumer {});
}

// ---- Condition state rules ----

#[test]
fn only_the_condition_contract_fulfils() {
    let mut s = Store::new();
    let (oracle, outsider, store) = (s.oracle, s.outsider, s.store);
    let (agreement_id, id, _) = s.oracle_condition(0, 0);
    for caller in [outsider, s.consumer, s.governor] {
        let err: AgreementStore::NotConditionContract = s.reverts(
            caller,
            store,
            AgreementStore::fulfilCall { conditionId: id },
            &[agreement_id],
            &[id],
        );
        assert_eq!((err.conditionId, err.caller), (id, caller));
    }
    let receipt = s.fulfil(oracle, id).unwrap();
    assert_eq!(receipt.logs.len(), 1);
    assert_eq!(
        receipt.expect_event::<AgreementStore::ConditionFulfilled>(),
        AgreementStore::ConditionFulfilled {
            conditionId: id,
            conditionContract: oracle
        }
    );
    assert_eq!(s.w.state(id), state::FULFILLED);
    assert_eq!(
        condition(&mut s.w, id),
        record(oracle, state::FULFILLED, 0, 0)
    );
}

#[test]
fn only_the_condition_contract_aborts() {
    let mut s = Store::new();
    let (oracle, outsider, store) = (s.oracle, s.outsider, s.store);
    let (agreement_id, id, created) = s.oracle_condition(0, 3_600);
    let err: AgreementStore::NotConditionContract = s.reverts(
        outsider,
        store,
        AgreementStore::abortCall { conditionId: id },
        &[agreement_id],
        &[id],
    );
    assert_eq!((err.conditionId, err.caller), (id, outsider));
    // The store lets the condition's own contract abort at any time, before the time out too;
    // only `Condition.abortTimedOut` waits for it.
    let receipt = s.abort(oracle, id).unwrap();
    assert_eq!(receipt.logs.len(), 1);
    assert_eq!(
        receipt.expect_event::<AgreementStore::ConditionAborted>(),
        AgreementStore::ConditionAborted {
            conditionId: id,
            conditionContract: oracle
        }
    );
    assert_eq!(
        condition(&mut s.w, id),
        record(oracle, state::ABORTED, 0, created + 3_600)
    );
}

#[test]
fn an_unknown_condition_reverts_condition_not_found() {
    let mut s = Store::new();
    let (oracle, store) = (s.oracle, s.store);
    let (_, id, _) = s.oracle_condition(0, 0);
    let unknown = keccak256(b"no such condition");
    for caller in [oracle, s.outsider] {
        let err: AgreementStore::ConditionNotFound = s.reverts(
            caller,
            store,
            AgreementStore::fulfilCall {
                conditionId: unknown,
            },
            &[],
            &[unknown, id],
        );
        assert_eq!(err.conditionId, unknown);
        let err: AgreementStore::ConditionNotFound = s.reverts(
            caller,
            store,
            AgreementStore::abortCall {
                conditionId: unknown,
            },
            &[],
            &[unknown, id],
        );
        assert_eq!(err.conditionId, unknown);
    }
    assert_eq!(s.w.state(unknown), state::UNINITIALIZED);
    assert_eq!(
        condition(&mut s.w, unknown),
        record(Address::ZERO, state::UNINITIALIZED, 0, 0)
    );
}

#[test]
fn a_fulfilled_condition_never_changes_again() {
    let mut s = Store::new();
    let (oracle, outsider, store) = (s.oracle, s.outsider, s.store);
    let (agreement_id, id, _) = s.oracle_condition(0, 100);
    s.fulfil(oracle, id).unwrap();
    let err: AgreementStore::ConditionNotUnfulfilled = s.reverts(
        oracle,
        store,
        AgreementStore::fulfilCall { conditionId: id },
        &[agreement_id],
        &[id],
    );
    assert_eq!((err.conditionId, err.state), (id, state::FULFILLED));
    let err: AgreementStore::ConditionNotUnfulfilled = s.reverts(
        oracle,
        store,
        AgreementStore::abortCall { conditionId: id },
        &[agreement_id],
        &[id],
    );
    assert_eq!((err.conditionId, err.state), (id, state::FULFILLED));
    // The caller check comes before the state check.
    let err: AgreementStore::NotConditionContract = s.reverts(
        outsider,
        store,
        AgreementStore::abortCall { conditionId: id },
        &[agreement_id],
        &[id],
    );
    assert_eq!(err.caller, outsider);
    // After its time out, a fulfilled condition is not timed out and cannot be aborted.
    s.w.chain.warp(1_000);
    assert!(!is_timed_out(&mut s.w, id));
    let err: AgreementStore::ConditionNotUnfulfilled = s.reverts(
        oracle,
        store,
        AgreementStore::abortCall { conditionId: id },
        &[agreement_id],
        &[id],
    );
    assert_eq!(err.state, state::FULFILLED);
}

#[test]
fn an_aborted_condition_never_changes_again() {
    let mut s = Store::new();
    let (oracle, store) = (s.oracle, s.store);
    let (agreement_id, id, _) = s.oracle_condition(0, 0);
    s.abort(oracle, id).unwrap();
    for call in [
        AgreementStore::fulfilCall { conditionId: id }.abi_encode(),
        AgreementStore::abortCall { conditionId: id }.abi_encode(),
    ] {
        let before = s.state_of(&[agreement_id], &[id]);
        let err: AgreementStore::ConditionNotUnfulfilled =
            s.w.chain
                .send(Tx::call(oracle, store, call))
                .expect_revert();
        assert_eq!((err.conditionId, err.state), (id, state::ABORTED));
        assert_eq!(s.state_of(&[agreement_id], &[id]), before);
    }
}

#[test]
fn fulfil_waits_for_the_time_lock() {
    let mut s = Store::new();
    let (oracle, store) = (s.oracle, s.store);
    let (agreement_id, id, created) = s.oracle_condition(100, 0);
    for now in [created, created + 99] {
        s.at(now);
        let err: AgreementStore::ConditionTimeLocked = s.reverts(
            oracle,
            store,
            AgreementStore::fulfilCall { conditionId: id },
            &[agreement_id],
            &[id],
        );
        assert_eq!((err.conditionId, err.timeLock), (id, u40(created + 100)));
    }
    s.at(created + 100);
    s.fulfil(oracle, id).expect("fulfilled at the time lock");
    assert_eq!(s.w.state(id), state::FULFILLED);
}

#[test]
fn the_condition_contract_may_abort_while_time_locked() {
    let mut s = Store::new();
    let oracle = s.oracle;
    let (_, id, _) = s.oracle_condition(100, 200);
    s.abort(oracle, id).unwrap();
    assert_eq!(s.w.state(id), state::ABORTED);
}

#[test]
fn fulfil_is_refused_from_the_time_out_on() {
    let mut s = Store::new();
    let (oracle, store) = (s.oracle, s.store);
    let (agreement_id, id, created) = s.oracle_condition(0, 1_000);

    let snapshot = s.w.chain.snapshot();
    s.at(created + 999);
    s.fulfil(oracle, id).expect("fulfilled one second before");
    assert_eq!(s.w.state(id), state::FULFILLED);
    s.w.chain.restore(&snapshot);

    for now in [created + 1_000, created + 1_001, created + 1_000_000] {
        s.at(now);
        let err: AgreementStore::ConditionTimedOut = s.reverts(
            oracle,
            store,
            AgreementStore::fulfilCall { conditionId: id },
            &[agreement_id],
            &[id],
        );
        assert_eq!((err.conditionId, err.timeOut), (id, u40(created + 1_000)));
    }
    // Its own contract may still abort it.
    s.abort(oracle, id).unwrap();
    assert_eq!(s.w.state(id), state::ABORTED);
}

#[test]
fn fulfil_is_allowed_inside_a_window_only() {
    let mut s = Store::new();
    let (oracle, store) = (s.oracle, s.store);
    let (agreement_id, id, created) = s.oracle_condition(100, 200);
    let snapshot = s.w.chain.snapshot();
    for now in [created + 100, created + 150, created + 199] {
        s.w.chain.restore(&snapshot);
        s.at(now);
        s.fulfil(oracle, id).expect("inside the window");
    }
    s.w.chain.restore(&snapshot);
    s.at(created + 99);
    let _: AgreementStore::ConditionTimeLocked = s.reverts(
        oracle,
        store,
        AgreementStore::fulfilCall { conditionId: id },
        &[agreement_id],
        &[id],
    );
    s.at(created + 200);
    let _: AgreementStore::ConditionTimedOut = s.reverts(
        oracle,
        store,
        AgreementStore::fulfilCall { conditionId: id },
        &[agreement_id],
        &[id],
    );
}

#[test]
fn is_timed_out_truth_table() {
    let mut s = Store::new();
    let oracle = s.oracle;
    let (_, timed, created) = s.oracle_condition(0, 1_000);
    let (_, forever, _) = s.oracle_condition(0, 0);
    let (_, fulfilled, _) = s.oracle_condition(0, 1_000);
    let (_, aborted, _) = s.oracle_condition(0, 1_000);
    let (_, locked, _) = s.oracle_condition(500, 1_000);
    let unknown = keccak256(b"unknown");
    s.fulfil(oracle, fulfilled).unwrap();
    s.abort(oracle, aborted).unwrap();

    let expect = |s: &mut Store, now: u64, table: [(B256, bool); 6]| {
        s.at(now);
        for (id, expected) in table {
            assert_eq!(
                is_timed_out(&mut s.w, id),
                expected,
                "isTimedOut at +{}",
                now - created
            );
        }
    };
    expect(
        &mut s,
        created + 999,
        [
            (timed, false),
            (forever, false),
            (fulfilled, false),
            (aborted, false),
            (locked, false),
            (unknown, false),
        ],
    );
    expect(
        &mut s,
        created + 1_000,
        [
            (timed, true),
            (forever, false),
            (fulfilled, false),
            (aborted, false),
            (locked, true),
            (unknown, false),
        ],
    );
    expect(
        &mut s,
        created + 100_000_000,
        [
            (timed, true),
            (forever, false),
            (fulfilled, false),
            (aborted, false),
            (locked, true),
            (unknown, false),
        ],
    );
}

#[test]
fn anyone_aborts_a_timed_out_condition_through_its_contract() {
    let mut s = Store::new();
    let (outsider, hash_lock) = (s.outsider, s.w.suite.hash_lock);
    let (agreement_id, id, created) = s.hash_lock_condition(1_000);
    s.at(created + 1_000);
    let receipt = s
        .send(
            outsider,
            hash_lock,
            HashLockCondition::abortTimedOutCall { conditionId: id },
        )
        .unwrap();
    assert_eq!(receipt.logs.len(), 1);
    assert_eq!(receipt.logs[0].address, s.store);
    assert_eq!(
        receipt.expect_event::<AgreementStore::ConditionAborted>(),
        AgreementStore::ConditionAborted {
            conditionId: id,
            conditionContract: hash_lock
        }
    );
    assert_eq!(
        condition(&mut s.w, id),
        record(hash_lock, state::ABORTED, 0, created + 1_000)
    );
    assert!(!is_timed_out(&mut s.w, id));

    // Once aborted it is no longer "timed out": a second abort is refused.
    let err: AgreementStore::ConditionNotTimedOut = s.reverts(
        outsider,
        hash_lock,
        HashLockCondition::abortTimedOutCall { conditionId: id },
        &[agreement_id],
        &[id],
    );
    assert_eq!(err.conditionId, id);
}

#[test]
fn abort_timed_out_needs_a_passed_time_out() {
    let mut s = Store::new();
    let (outsider, hash_lock) = (s.outsider, s.w.suite.hash_lock);
    let (agreement_id, id, created) = s.hash_lock_condition(1_000);
    let (never_id, never_agreement) = {
        let (a, id, _) = s.hash_lock_condition(0);
        (id, a)
    };
    let unknown = keccak256(b"unknown");
    s.at(created + 999);
    let err: AgreementStore::ConditionNotTimedOut = s.reverts(
        outsider,
        hash_lock,
        HashLockCondition::abortTimedOutCall { conditionId: id },
        &[agreement_id],
        &[id],
    );
    assert_eq!(err.conditionId, id);
    // A condition without time out never times out.
    s.at(created + 100_000_000);
    let err: AgreementStore::ConditionNotTimedOut = s.reverts(
        outsider,
        hash_lock,
        HashLockCondition::abortTimedOutCall {
            conditionId: never_id,
        },
        &[never_agreement],
        &[never_id],
    );
    assert_eq!(err.conditionId, never_id);
    // Nor does a condition that does not exist.
    let err: AgreementStore::ConditionNotTimedOut = s.reverts(
        outsider,
        hash_lock,
        HashLockCondition::abortTimedOutCall {
            conditionId: unknown,
        },
        &[],
        &[unknown],
    );
    assert_eq!(err.conditionId, unknown);
}

#[test]
fn a_condition_contract_cannot_abort_another_contracts_condition() {
    let mut s = Store::new();
    let (outsider, hash_lock) = (s.outsider, s.w.suite.hash_lock);
    let (agreement_id, id, created) = s.oracle_condition(0, 10);
    s.at(created + 10);
    assert!(is_timed_out(&mut s.w, id));
    let err: AgreementStore::NotConditionContract = s.reverts(
        outsider,
        hash_lock,
        HashLockCondition::abortTimedOutCall { conditionId: id },
        &[agreement_id],
        &[id],
    );
    assert_eq!((err.conditionId, err.caller), (id, hash_lock));
    assert!(
        is_timed_out(&mut s.w, id),
        "still Unfulfilled and timed out"
    );
}
