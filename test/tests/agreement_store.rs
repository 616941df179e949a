//! AgreementStore and its TemplateRegistry: template governance (through the governance timelock
//! of the deployment), agreement and condition creation (through a `PassthroughTemplate` approved
//! by governance), agreement ids bound to the first condition, and the state rules every condition
//! obeys: who may change it, once, inside which time window, and how a Fulfilled condition is
//! settled (Released or Refunded) once.
//!
//! Conditions owned by the `oracle` account (an EOA named as condition contract in a spec) let
//! the tests call `fulfil`, `abort` and `settle` on the store directly.

mod common;

use alloy::{
    primitives::{Address, B256, Bytes, U256, keccak256},
    sol_types::{SolCall, SolError},
};
use common::{
    agreement_id, agreement_id_of, approve_template, approved_passthrough, condition, condition_id,
    conditions, create, deploy_passthrough, govern_call, is_timed_out, revoke_template, spec,
    store_spec, u40,
};
use insitu_bindings::{
    AgreementStore, HashLockCondition, PassthroughTemplate, PaymentCondition, RogueTemplate,
};
use insitu_tests::harness::{ExpectRevert, Receipt, Tx, TxError};
use insitu_tests::world::{Deal, Service, World, state};

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
    conditions: Vec<AgreementStore::Condition>,
    templates: Vec<u8>,
    governors: Vec<bool>,
    admin: Address,
}

struct Store {
    w: World,
    store: Address,
    /// An approved passthrough template.
    template: Address,
    /// An EOA used as the condition contract of conditions it then fulfils, aborts or settles
    /// itself.
    oracle: Address,
    consumer: Address,
    outsider: Address,
    /// The proposer of the governance timelock (an EOA without any role in the store).
    governor: Address,
    /// The governance timelock, holding the store's admin and governor roles.
    timelock: Address,
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
            timelock: w.timelock,
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

    /// Carries out `call` on the store through the governance timelock.
    fn govern<C: SolCall>(&mut self, call: C) -> Result<Receipt<Bytes>, TxError> {
        let store = self.store;
        govern_call(&mut self.w, store, &call)
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

    fn is_admin(&mut self, account: Address) -> bool {
        self.view(AgreementStore::hasRoleCall {
            role: B256::ZERO,
            account,
        })
    }

    /// The number of logs the store emitted in `receipt`.
    fn store_logs<T>(&self, receipt: &Receipt<T>) -> usize {
        receipt
            .logs
            .iter()
            .filter(|log| log.address == self.store)
            .count()
    }

    fn state_of(&mut self, ids: &[B256]) -> StoreView {
        let parties = [
            self.governor,
            self.timelock,
            self.outsider,
            self.consumer,
            self.oracle,
        ];
        StoreView {
            conditions: conditions(&mut self.w, ids),
            templates: self
                .templates
                .clone()
                .into_iter()
                .map(|t| self.template_state(t))
                .collect(),
            governors: parties.into_iter().map(|a| self.is_governor(a)).collect(),
            admin: self.view(AgreementStore::defaultAdminCall {}),
        }
    }

    /// Sends `call` to `to`, expects the revert `E`, and checks that the store's views of the
    /// conditions `ids`, the watched templates and the roles did not change.
    #[track_caller]
    fn reverts<C: SolCall, E: SolError>(
        &mut self,
        from: Address,
        to: Address,
        call: C,
        ids: &[B256],
    ) -> E {
        let before = self.state_of(ids);
        let err = self.send(from, to, call).expect_revert::<E>();
        assert_eq!(
            self.state_of(ids),
            before,
            "a reverted call changed the store"
        );
        err
    }

    /// Governance carries out `call` on the store through the timelock; expects the execution
    /// to revert with `E` (bubbled up from the store) and the store's views not to change.
    #[track_caller]
    fn govern_reverts<C: SolCall, E: SolError>(&mut self, call: C) -> E {
        let before = self.state_of(&[]);
        let err = self.govern(call).expect_revert::<E>();
        assert_eq!(
            self.state_of(&[]),
            before,
            "a reverted governance call changed the store"
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

    fn settle(&mut self, from: Address, id: B256, released: bool) -> Result<Receipt<()>, TxError> {
        Ok(self
            .send_store(
                from,
                AgreementStore::settleCall {
                    conditionId: id,
                    released,
                },
            )?
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

fn governor_role() -> B256 {
    keccak256(b"insitu.governor")
}

// ---- Governance ----

#[test]
fn the_governor_role_is_the_keccak_of_insitu_governor() {
    let mut s = Store::new();
    assert_eq!(
        s.view(AgreementStore::GOVERNOR_ROLECall {}),
        governor_role()
    );
    assert_eq!(
        s.view(AgreementStore::DEFAULT_ADMIN_ROLECall {}),
        B256::ZERO
    );
    assert_eq!(
        s.view(AgreementStore::getRoleAdminCall {
            role: governor_role()
        }),
        B256::ZERO,
        "the admin role administers the governor role"
    );
}

#[test]
fn the_governance_timelock_holds_the_admin_and_governor_roles() {
    // The deployment names the timelock as the store's governor: it alone holds both roles. The
    // account that deployed the suite and proposes to the timelock holds none (with the old
    // contracts the deployer-governor held both directly).
    let mut s = Store::new();
    let timelock = s.timelock;
    assert!(s.is_governor(timelock));
    assert!(s.is_admin(timelock));
    assert_eq!(s.view(AgreementStore::defaultAdminCall {}), timelock);
    assert_eq!(s.view(AgreementStore::ownerCall {}), timelock);
    let pending = s.view(AgreementStore::pendingDefaultAdminCall {});
    assert_eq!(
        (pending.newAdmin, pending.schedule),
        (Address::ZERO, alloy::primitives::aliases::U48::ZERO)
    );
    for account in [
        s.governor,
        s.outsider,
        s.consumer,
        s.oracle,
        s.template,
        Address::ZERO,
    ] {
        assert!(!s.is_governor(account));
        assert!(!s.is_admin(account));
    }
}

#[test]
fn a_store_with_a_zero_governor_cannot_be_deployed() {
    // The old store refused it with its own InvalidGovernor; the admin rules refuse a zero
    // initial admin with AccessControlInvalidDefaultAdmin(0).
    let mut s = Store::new();
    let deployer = s.outsider;
    let nonce = s.w.chain.nonce(deployer);
    let err: AgreementStore::AccessControlInvalidDefaultAdmin =
        s.w.chain
            .deploy(
                deployer,
                &AgreementStore::BYTECODE,
                &AgreementStore::constructorCall {
                    governor: Address::ZERO,
                    adminTransferDelay: alloy::primitives::aliases::U48::from(86_400),
                },
            )
            .expect_revert();
    assert_eq!(err.defaultAdmin, Address::ZERO);
    assert!(
        s.w.chain.code(deployer.create(nonce)).is_empty(),
        "no store was created"
    );

    // Any other governor works, holds both roles with the given admin delay, and the deployer
    // gets no role.
    let named = s.consumer;
    let store =
        s.w.chain
            .deploy(
                deployer,
                &AgreementStore::BYTECODE,
                &AgreementStore::constructorCall {
                    governor: named,
                    adminTransferDelay: alloy::primitives::aliases::U48::from(86_400),
                },
            )
            .unwrap();
    let view = |s: &mut Store, account| {
        let governor: bool =
            s.w.chain
                .call(store, &AgreementStore::isGovernorCall { account })
                .unwrap();
        let admin: bool =
            s.w.chain
                .call(
                    store,
                    &AgreementStore::hasRoleCall {
                        role: B256::ZERO,
                        account,
                    },
                )
                .unwrap();
        (governor, admin)
    };
    assert_eq!(view(&mut s, named), (true, true));
    assert_eq!(view(&mut s, deployer), (false, false));
    assert_eq!(
        s.w.chain
            .call(store, &AgreementStore::defaultAdminDelayCall {})
            .unwrap(),
        alloy::primitives::aliases::U48::from(86_400)
    );
}

#[test]
fn the_suite_templates_are_approved_at_deployment() {
    let mut s = Store::new();
    for t in [s.w.suite.access_template, s.w.suite.compute_template] {
        assert_eq!(s.template_state(t), template::APPROVED);
        assert!(s.is_approved(t));
    }
    // Condition contracts and the timelock are not templates.
    for other in [s.w.suite.payment, s.w.suite.access, s.timelock] {
        assert_eq!(s.template_state(other), template::NONE);
        assert!(!s.is_approved(other));
    }
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
        s.reverts(governor, store, propose.clone(), &[]);
    assert_eq!((err.template, err.state), (candidate, template::PROPOSED));

    approve_template(&mut s.w, candidate).unwrap();
    let err: AgreementStore::InvalidTemplateState =
        s.reverts(outsider, store, propose.clone(), &[]);
    assert_eq!((err.template, err.state), (candidate, template::APPROVED));

    revoke_template(&mut s.w, candidate).unwrap();
    let err: AgreementStore::InvalidTemplateState = s.reverts(outsider, store, propose, &[]);
    assert_eq!((err.template, err.state), (candidate, template::REVOKED));
}

#[test]
fn governance_approves_a_proposed_template() {
    let mut s = Store::new();
    let (outsider, timelock) = (s.outsider, s.timelock);
    let candidate = deploy_passthrough(&mut s.w, outsider);
    s.send_store(
        outsider,
        AgreementStore::proposeTemplateCall {
            template: candidate,
        },
    )
    .unwrap();
    let receipt = s
        .govern(AgreementStore::approveTemplateCall {
            template: candidate,
        })
        .unwrap();
    assert_eq!(s.store_logs(&receipt), 1);
    assert_eq!(
        receipt.expect_event::<AgreementStore::TemplateApproved>(),
        AgreementStore::TemplateApproved {
            template: candidate,
            by: timelock
        },
        "the governor is the timelock"
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
    // The timelock's proposer is no governor of the store either.
    for caller in [outsider, s.consumer, s.oracle, s.governor] {
        let err: AgreementStore::AccessControlUnauthorizedAccount = s.reverts(
            caller,
            store,
            AgreementStore::approveTemplateCall {
                template: candidate,
            },
            &[],
        );
        assert_eq!((err.account, err.neededRole), (caller, governor_role()));
    }
    assert_eq!(s.template_state(candidate), template::PROPOSED);
}

#[test]
fn outsider_cannot_revoke_a_template() {
    let mut s = Store::new();
    let (outsider, governor, store) = (s.outsider, s.governor, s.store);
    for target in [s.template, s.w.suite.access_template] {
        for caller in [outsider, governor] {
            let err: AgreementStore::AccessControlUnauthorizedAccount = s.reverts(
                caller,
                store,
                AgreementStore::revokeTemplateCall { template: target },
                &[],
            );
            assert_eq!((err.account, err.neededRole), (caller, governor_role()));
        }
        assert_eq!(s.template_state(target), template::APPROVED);
    }
}

#[test]
fn approving_needs_a_proposed_template() {
    let mut s = Store::new();
    let outsider = s.outsider;
    let candidate = deploy_passthrough(&mut s.w, outsider);
    s.templates.push(candidate);
    let approve = AgreementStore::approveTemplateCall {
        template: candidate,
    };

    // The store's error bubbles up through the timelock's execution.
    let err: AgreementStore::InvalidTemplateState = s.govern_reverts(approve.clone());
    assert_eq!((err.template, err.state), (candidate, template::NONE));

    s.send_store(
        outsider,
        AgreementStore::proposeTemplateCall {
            template: candidate,
        },
    )
    .unwrap();
    s.govern(approve.clone()).unwrap();
    let err: AgreementStore::InvalidTemplateState = s.govern_reverts(approve.clone());
    assert_eq!((err.template, err.state), (candidate, template::APPROVED));

    revoke_template(&mut s.w, candidate).unwrap();
    let err: AgreementStore::InvalidTemplateState = s.govern_reverts(approve);
    assert_eq!((err.template, err.state), (candidate, template::REVOKED));
}

#[test]
fn a_revoked_template_stays_revoked() {
    let mut s = Store::new();
    let (outsider, timelock, store) = (s.outsider, s.timelock, s.store);
    let candidate = deploy_passthrough(&mut s.w, outsider);
    s.templates.push(candidate);
    let revoke = AgreementStore::revokeTemplateCall {
        template: candidate,
    };

    // Revoking needs a proposed or approved template.
    let err: AgreementStore::InvalidTemplateState = s.govern_reverts(revoke.clone());
    assert_eq!((err.template, err.state), (candidate, template::NONE));

    // A proposed template may be revoked without ever being approved.
    s.send_store(
        outsider,
        AgreementStore::proposeTemplateCall {
            template: candidate,
        },
    )
    .unwrap();
    let receipt = s.govern(revoke.clone()).unwrap();
    assert_eq!(s.store_logs(&receipt), 1);
    assert_eq!(
        receipt.expect_event::<AgreementStore::TemplateRevoked>(),
        AgreementStore::TemplateRevoked {
            template: candidate,
            by: timelock
        }
    );
    assert_eq!(s.template_state(candidate), template::REVOKED);
    assert!(!s.is_approved(candidate));

    // Final: no revoke, approve or propose brings it back.
    let err: AgreementStore::InvalidTemplateState = s.govern_reverts(revoke);
    assert_eq!(err.state, template::REVOKED);
    let err: AgreementStore::InvalidTemplateState =
        s.govern_reverts(AgreementStore::approveTemplateCall {
            template: candidate,
        });
    assert_eq!(err.state, template::REVOKED);
    let err: AgreementStore::InvalidTemplateState = s.reverts(
        outsider,
        store,
        AgreementStore::proposeTemplateCall {
            template: candidate,
        },
        &[],
    );
    assert_eq!(err.state, template::REVOKED);
}

#[test]
fn revoking_an_approved_template_stops_its_creations_but_not_its_agreements() {
    let mut s = Store::new();
    let (timelock, template, consumer, outsider) = (s.timelock, s.template, s.consumer, s.outsider);
    let (old_agreement, hash_lock_id, created) = s.hash_lock_condition(1_000);
    let (_, oracle_id, _) = s.oracle_condition(0, 0);
    let (_, late_id, _) = s.hash_lock_condition(10);

    let receipt = s
        .govern(AgreementStore::revokeTemplateCall { template })
        .unwrap();
    assert_eq!(
        receipt.expect_event::<AgreementStore::TemplateRevoked>(),
        AgreementStore::TemplateRevoked {
            template,
            by: timelock
        }
    );
    assert!(!s.is_approved(template));

    // No new agreement.
    let seed = s.w.seed();
    let did = s.w.did;
    let oracle = s.oracle;
    let first = spec(oracle, B256::ZERO, 0, 0);
    let would_be = condition_id(agreement_id(seed, consumer, &first), oracle, B256::ZERO);
    let err: AgreementStore::TemplateNotApproved = s.reverts(
        consumer,
        template,
        PassthroughTemplate::createCall {
            seed,
            did,
            conditions: vec![first],
        },
        &[would_be],
    );
    assert_eq!(err.caller, template);
    assert_eq!(s.w.state(would_be), state::UNINITIALIZED);

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
    let access = s.w.suite.access_template;
    let (consumer, keeper, token, provider, did, payment) = (
        s.consumer,
        s.w.keeper,
        s.w.token,
        s.w.provider,
        s.w.did,
        s.w.suite.payment,
    );
    // An access deal paid before the revocation.
    let old = s.w.paid_deal(Service::Access);
    revoke_template(&mut s.w, access).unwrap();

    let offer = s.w.offer(did, token, &[(provider, 100)]);
    let signed = s.w.sign_offer(Service::Access, offer.clone());
    let balances = |s: &mut Store| (s.w.balance(token, consumer), s.w.balance(token, payment));
    let before = balances(&mut s);
    // Neither the one-transaction purchase nor the two-step creation goes through.
    let err: AgreementStore::TemplateNotApproved =
        s.w.buy(Service::Access, consumer, &signed, U256::ZERO)
            .expect_revert();
    assert_eq!(err.caller, access);
    let err: AgreementStore::TemplateNotApproved =
        s.w.create(Service::Access, consumer, &signed)
            .expect_revert();
    assert_eq!(err.caller, access);
    assert_eq!(balances(&mut s), before, "nothing was paid");

    // The compute template is not affected.
    let signed = s.w.sign_offer(Service::Compute, offer);
    let (deal, _) =
        s.w.buy(Service::Compute, consumer, &signed, U256::ZERO)
            .expect("the compute template still creates");
    assert_eq!(s.w.state(deal.payment_id), state::FULFILLED);

    // The access deal created before is still served and released.
    s.w.serve_and_release(&old, keeper).unwrap();
    assert_eq!(s.w.state(old.service_id), state::FULFILLED);
    assert_eq!(s.w.state(old.payment_id), state::RELEASED);
}

#[test]
fn a_governor_granted_by_the_admin_governs_until_revoked() {
    let mut s = Store::new();
    let (outsider, store) = (s.outsider, s.store);
    let candidate = deploy_passthrough(&mut s.w, outsider);
    s.send_store(
        outsider,
        AgreementStore::proposeTemplateCall {
            template: candidate,
        },
    )
    .unwrap();

    // The admin (the timelock) grants the governor role, through governance.
    s.govern(AgreementStore::grantRoleCall {
        role: governor_role(),
        account: outsider,
    })
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

    s.govern(AgreementStore::revokeRoleCall {
        role: governor_role(),
        account: outsider,
    })
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
    );
    assert_eq!((err.account, err.neededRole), (outsider, governor_role()));
}

#[test]
fn an_account_cannot_create_agreements_directly() {
    let mut s = Store::new();
    let (store, oracle, did) = (s.store, s.oracle, s.w.did);
    let seed = B256::repeat_byte(1);
    let first = spec(oracle, B256::ZERO, 0, 0);
    for caller in [s.consumer, s.governor] {
        let would_be = condition_id(agreement_id(seed, caller, &first), oracle, B256::ZERO);
        let err: AgreementStore::TemplateNotApproved = s.reverts(
            caller,
            store,
            AgreementStore::createAgreementCall {
                seed,
                consumer: caller,
                did,
                conditions: vec![store_spec(&first)],
            },
            &[would_be],
        );
        assert_eq!(err.caller, caller);
    }
    // Nor can governance: the timelock is no template.
    let timelock = s.timelock;
    let err: AgreementStore::TemplateNotApproved =
        s.govern_reverts(AgreementStore::createAgreementCall {
            seed,
            consumer: timelock,
            did,
            conditions: vec![store_spec(&first)],
        });
    assert_eq!(err.caller, timelock);
    let would_be = condition_id(agreement_id(seed, timelock, &first), oracle, B256::ZERO);
    assert_eq!(s.w.state(would_be), state::UNINITIALIZED);
}

#[test]
fn an_unapproved_contract_cannot_create_agreements() {
    let mut s = Store::new();
    let (outsider, consumer, oracle, did) = (s.outsider, s.consumer, s.oracle, s.w.did);
    let rogue = deploy_passthrough(&mut s.w, outsider);
    s.templates.push(rogue);
    let seed = B256::repeat_byte(2);
    let first = spec(oracle, B256::ZERO, 0, 0);
    let call = PassthroughTemplate::createCall {
        seed,
        did,
        conditions: vec![first.clone()],
    };
    let watched = [condition_id(
        agreement_id(seed, consumer, &first),
        oracle,
        B256::ZERO,
    )];

    let err: AgreementStore::TemplateNotApproved =
        s.reverts(consumer, rogue, call.clone(), &watched);
    assert_eq!(err.caller, rogue, "never proposed");
    s.send_store(
        outsider,
        AgreementStore::proposeTemplateCall { template: rogue },
    )
    .unwrap();
    let err: AgreementStore::TemplateNotApproved =
        s.reverts(consumer, rogue, call.clone(), &watched);
    assert_eq!(err.caller, rogue, "proposed only");
    revoke_template(&mut s.w, rogue).unwrap();
    let err: AgreementStore::TemplateNotApproved = s.reverts(consumer, rogue, call, &watched);
    assert_eq!(err.caller, rogue, "revoked");
}

// ---- Agreement creation ----

#[test]
fn create_derives_every_id_and_stores_the_conditions() {
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
    let expected_id = agreement_id(seed, consumer, &specs[0]);
    assert_eq!(
        agreement_id_of(&mut s.w, seed, consumer, &specs[0]),
        expected_id,
        "the store's view derives the id before creation"
    );

    let receipt = create(&mut s.w, template, consumer, seed, did, specs.clone()).unwrap();
    let created = receipt.timestamp;
    let agreement_id = receipt.output;
    assert_eq!(agreement_id, expected_id);

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
fn the_same_seed_and_first_condition_twice_revert_condition_already_exists() {
    // The old store kept an agreement record keyed by keccak256(seed, consumer) and refused the
    // seed again with AgreementAlreadyExists whatever the conditions. Now the id binds the first
    // condition, and recreating that condition is what the store refuses.
    let mut s = Store::new();
    let (template, consumer, oracle, did) = (s.template, s.consumer, s.oracle, s.w.did);
    let seed = B256::repeat_byte(3);
    let first = s
        .create(
            seed,
            vec![
                spec(oracle, keccak256(b"a"), 0, 0),
                spec(oracle, keccak256(b"b"), 0, 0),
            ],
        )
        .unwrap();
    let a = condition_id(first.output, oracle, keccak256(b"a"));
    let b = condition_id(first.output, oracle, keccak256(b"b"));
    let c = condition_id(first.output, oracle, keccak256(b"c"));
    s.w.chain.warp(100);

    // The same first condition (in another time window too, which is no part of any id) with
    // other, or the same, further conditions is the same agreement id: its first condition
    // already exists.
    for rest in [
        vec![spec(oracle, keccak256(b"c"), 0, 0)],
        vec![spec(oracle, keccak256(b"b"), 0, 0)],
        vec![],
    ] {
        for window in [(0, 0), (10, 20)] {
            let mut specs = vec![spec(oracle, keccak256(b"a"), window.0, window.1)];
            specs.extend(rest.clone());
            let err: AgreementStore::ConditionAlreadyExists = s.reverts(
                consumer,
                template,
                PassthroughTemplate::createCall {
                    seed,
                    did,
                    conditions: specs,
                },
                &[a, b, c],
            );
            assert_eq!(err.conditionId, a);
        }
    }
    assert_eq!(s.w.state(c), state::UNINITIALIZED);
    assert_eq!(
        condition(&mut s.w, a),
        record(oracle, state::UNFULFILLED, 0, 0),
        "the first creation stands"
    );
}

#[test]
fn the_same_seed_with_another_first_condition_is_another_agreement() {
    // With the old store the second creation reverted AgreementAlreadyExists: the id was
    // keccak256(seed, consumer) only.
    let mut s = Store::new();
    let (consumer, oracle) = (s.consumer, s.oracle);
    let seed = B256::repeat_byte(0x33);
    let a = spec(oracle, keccak256(b"a"), 0, 0);
    let b = spec(oracle, keccak256(b"b"), 0, 0);
    let one = s.create(seed, vec![a.clone(), b.clone()]).unwrap();
    // The same conditions in the other order: another first condition, another agreement.
    let two = s.create(seed, vec![b.clone(), a.clone()]).unwrap();
    let three = s.create(seed, vec![b.clone()]);
    assert_eq!(one.output, agreement_id(seed, consumer, &a));
    assert_eq!(two.output, agreement_id(seed, consumer, &b));
    assert_ne!(one.output, two.output);
    // But [b] alone has the same first condition as [b, a]: it is that agreement again.
    let b_of_two = condition_id(two.output, oracle, b.valueHash);
    assert_eq!(
        three
            .expect_revert::<AgreementStore::ConditionAlreadyExists>()
            .conditionId,
        b_of_two
    );
    for agreement in [one.output, two.output] {
        for value in [a.valueHash, b.valueHash] {
            assert_eq!(
                s.w.state(condition_id(agreement, oracle, value)),
                state::UNFULFILLED
            );
        }
    }
}

#[test]
fn agreement_id_of_matches_the_derivation_and_ignores_the_time_window() {
    let mut s = Store::new();
    let (consumer, outsider, oracle, hash_lock) =
        (s.consumer, s.outsider, s.oracle, s.w.suite.hash_lock);
    let seed = s.w.seed();
    let first = spec(hash_lock, keccak256(b"v"), 0, 0);
    let id = agreement_id_of(&mut s.w, seed, consumer, &first);
    assert_eq!(id, agreement_id(seed, consumer, &first));
    // Pure: nothing needs to exist, and the window of the first condition is not bound.
    assert_eq!(
        agreement_id_of(
            &mut s.w,
            seed,
            consumer,
            &spec(hash_lock, keccak256(b"v"), 5, 50)
        ),
        id
    );
    // Every other input is.
    for (other_seed, other_consumer, other_first) in [
        (B256::repeat_byte(0xee), consumer, first.clone()),
        (seed, outsider, first.clone()),
        (seed, consumer, spec(oracle, keccak256(b"v"), 0, 0)),
        (seed, consumer, spec(hash_lock, keccak256(b"w"), 0, 0)),
    ] {
        assert_ne!(
            agreement_id_of(&mut s.w, other_seed, other_consumer, &other_first),
            id
        );
    }
    let receipt = s.create(seed, vec![first]).unwrap();
    assert_eq!(receipt.output, id);
}

#[test]
fn two_consumers_with_the_same_seed_get_distinct_agreements() {
    let mut s = Store::new();
    let (template, consumer, outsider, oracle, did) =
        (s.template, s.consumer, s.outsider, s.oracle, s.w.did);
    let seed = B256::repeat_byte(4);
    let specs = vec![spec(oracle, keccak256(b"same"), 0, 0)];
    let mine = create(&mut s.w, template, consumer, seed, did, specs.clone()).unwrap();
    let theirs = create(&mut s.w, template, outsider, seed, did, specs.clone()).unwrap();

    assert_ne!(mine.output, theirs.output);
    assert_eq!(mine.output, agreement_id(seed, consumer, &specs[0]));
    assert_eq!(theirs.output, agreement_id(seed, outsider, &specs[0]));
    assert_eq!(
        mine.expect_event::<AgreementStore::AgreementCreated>()
            .consumer,
        consumer
    );
    assert_eq!(
        theirs
            .expect_event::<AgreementStore::AgreementCreated>()
            .consumer,
        outsider
    );
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
        &[],
    );
}

#[test]
fn a_zero_condition_contract_reverts_invalid_condition_contract() {
    let mut s = Store::new();
    let (template, consumer, oracle, did) = (s.template, s.consumer, s.oracle, s.w.did);
    let seed = B256::repeat_byte(6);
    let first = spec(oracle, keccak256(b"ok"), 0, 0);
    let id = agreement_id(seed, consumer, &first);
    let valid = condition_id(id, oracle, keccak256(b"ok"));
    // The valid first condition is written before the second is checked: the revert undoes it.
    let err: AgreementStore::InvalidConditionContract = s.reverts(
        consumer,
        template,
        PassthroughTemplate::createCall {
            seed,
            did,
            conditions: vec![first, spec(Address::ZERO, keccak256(b"bad"), 0, 0)],
        },
        &[valid, condition_id(id, Address::ZERO, keccak256(b"bad"))],
    );
    assert_eq!(err.conditionContract, Address::ZERO);
    assert_eq!(s.w.state(valid), state::UNINITIALIZED);

    // A zero first condition too (the id it would give is never created).
    let zero_first = spec(Address::ZERO, keccak256(b"bad"), 0, 0);
    let zero_id = agreement_id(seed, consumer, &zero_first);
    let err: AgreementStore::InvalidConditionContract = s.reverts(
        consumer,
        template,
        PassthroughTemplate::createCall {
            seed,
            did,
            conditions: vec![zero_first],
        },
        &[condition_id(zero_id, Address::ZERO, keccak256(b"bad"))],
    );
    assert_eq!(err.conditionContract, Address::ZERO);
}

#[test]
fn a_time_out_not_after_the_time_lock_reverts_invalid_time_window() {
    let mut s = Store::new();
    let (template, consumer, oracle, did) = (s.template, s.consumer, s.oracle, s.w.did);
    let seed = B256::repeat_byte(7);
    let first = spec(oracle, B256::ZERO, 0, 0);
    let id = agreement_id(seed, consumer, &first);
    for (time_lock, time_out) in [(100, 100), (100, 99), (u32::MAX, 1)] {
        let err: AgreementStore::InvalidTimeWindow = s.reverts(
            consumer,
            template,
            PassthroughTemplate::createCall {
                seed,
                did,
                conditions: vec![spec(oracle, B256::ZERO, time_lock, time_out)],
            },
            &[condition_id(id, oracle, B256::ZERO)],
        );
        assert_eq!((err.timeLock, err.timeOut), (time_lock, time_out));
    }
    // A time lock without time out, and a time out one second after the lock, are fine.
    let specs = vec![
        spec(oracle, keccak256(b"1"), 100, 0),
        spec(oracle, keccak256(b"2"), 100, 101),
        spec(oracle, keccak256(b"3"), 0, 1),
    ];
    let id = agreement_id(seed, consumer, &specs[0]);
    let receipt = s.create(seed, specs).unwrap();
    assert_eq!(receipt.output, id);
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
    let specs = vec![
        spec(oracle, keccak256(b"twice"), 0, 0),
        spec(oracle, keccak256(b"other"), 0, 0),
        spec(oracle, keccak256(b"twice"), 10, 20),
    ];
    let id = agreement_id(seed, consumer, &specs[0]);
    let duplicate = condition_id(id, oracle, keccak256(b"twice"));
    let other = condition_id(id, oracle, keccak256(b"other"));
    // The time window is not part of the id: other windows are still the same condition.
    let err: AgreementStore::ConditionAlreadyExists = s.reverts(
        consumer,
        template,
        PassthroughTemplate::createCall {
            seed,
            did,
            conditions: specs,
        },
        &[duplicate, other],
    );
    assert_eq!(err.conditionId, duplicate);
    assert_eq!(s.w.state(duplicate), state::UNINITIALIZED);
    assert_eq!(s.w.state(other), state::UNINITIALIZED);
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
    let (_, id, _) = s.oracle_condition(0, 0);
    for caller in [outsider, s.consumer, s.governor] {
        let err: AgreementStore::NotConditionContract = s.reverts(
            caller,
            store,
            AgreementStore::fulfilCall { conditionId: id },
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
    let (_, id, created) = s.oracle_condition(0, 3_600);
    let err: AgreementStore::NotConditionContract = s.reverts(
        outsider,
        store,
        AgreementStore::abortCall { conditionId: id },
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
            &[unknown, id],
        );
        assert_eq!(err.conditionId, unknown);
        let err: AgreementStore::ConditionNotFound = s.reverts(
            caller,
            store,
            AgreementStore::abortCall {
                conditionId: unknown,
            },
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
    let (_, id, _) = s.oracle_condition(0, 100);
    s.fulfil(oracle, id).unwrap();
    let err: AgreementStore::ConditionNotUnfulfilled = s.reverts(
        oracle,
        store,
        AgreementStore::fulfilCall { conditionId: id },
        &[id],
    );
    assert_eq!((err.conditionId, err.state), (id, state::FULFILLED));
    let err: AgreementStore::ConditionNotUnfulfilled = s.reverts(
        oracle,
        store,
        AgreementStore::abortCall { conditionId: id },
        &[id],
    );
    assert_eq!((err.conditionId, err.state), (id, state::FULFILLED));
    // The caller check comes before the state check.
    let err: AgreementStore::NotConditionContract = s.reverts(
        outsider,
        store,
        AgreementStore::abortCall { conditionId: id },
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
        &[id],
    );
    assert_eq!(err.state, state::FULFILLED);
}

#[test]
fn an_aborted_condition_never_changes_again() {
    let mut s = Store::new();
    let (oracle, store) = (s.oracle, s.store);
    let (_, id, _) = s.oracle_condition(0, 0);
    s.abort(oracle, id).unwrap();
    for call in [
        AgreementStore::fulfilCall { conditionId: id }.abi_encode(),
        AgreementStore::abortCall { conditionId: id }.abi_encode(),
    ] {
        let before = s.state_of(&[id]);
        let err: AgreementStore::ConditionNotUnfulfilled =
            s.w.chain
                .send(Tx::call(oracle, store, call))
                .expect_revert();
        assert_eq!((err.conditionId, err.state), (id, state::ABORTED));
        assert_eq!(s.state_of(&[id]), before);
    }
}

#[test]
fn fulfil_waits_for_the_time_lock() {
    let mut s = Store::new();
    let (oracle, store) = (s.oracle, s.store);
    let (_, id, created) = s.oracle_condition(100, 0);
    for now in [created, created + 99] {
        s.at(now);
        let err: AgreementStore::ConditionTimeLocked = s.reverts(
            oracle,
            store,
            AgreementStore::fulfilCall { conditionId: id },
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
    let (_, id, created) = s.oracle_condition(0, 1_000);

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
    let (_, id, created) = s.oracle_condition(100, 200);
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
        &[id],
    );
    s.at(created + 200);
    let _: AgreementStore::ConditionTimedOut = s.reverts(
        oracle,
        store,
        AgreementStore::fulfilCall { conditionId: id },
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
    let (_, id, created) = s.hash_lock_condition(1_000);
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
        &[id],
    );
    assert_eq!(err.conditionId, id);
}

#[test]
fn abort_timed_out_needs_a_passed_time_out() {
    let mut s = Store::new();
    let (outsider, hash_lock) = (s.outsider, s.w.suite.hash_lock);
    let (_, id, created) = s.hash_lock_condition(1_000);
    let (_, never_id, _) = s.hash_lock_condition(0);
    let unknown = keccak256(b"unknown");
    s.at(created + 999);
    let err: AgreementStore::ConditionNotTimedOut = s.reverts(
        outsider,
        hash_lock,
        HashLockCondition::abortTimedOutCall { conditionId: id },
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
        &[unknown],
    );
    assert_eq!(err.conditionId, unknown);
}

#[test]
fn a_condition_contract_cannot_abort_another_contracts_condition() {
    let mut s = Store::new();
    let (outsider, hash_lock) = (s.outsider, s.w.suite.hash_lock);
    let (_, id, created) = s.oracle_condition(0, 10);
    s.at(created + 10);
    assert!(is_timed_out(&mut s.w, id));
    let err: AgreementStore::NotConditionContract = s.reverts(
        outsider,
        hash_lock,
        HashLockCondition::abortTimedOutCall { conditionId: id },
        &[id],
    );
    assert_eq!((err.conditionId, err.caller), (id, hash_lock));
    assert!(
        is_timed_out(&mut s.w, id),
        "still Unfulfilled and timed out"
    );
}

// ---- Settlement: Fulfilled -> Released | Refunded, once ----

#[test]
fn settle_moves_a_fulfilled_condition_to_released_or_refunded() {
    let mut s = Store::new();
    let oracle = s.oracle;
    let (_, released, created) = s.oracle_condition(10, 1_000);
    let (_, refunded, _) = s.oracle_condition(10, 1_000);
    s.at(created + 10);
    s.fulfil(oracle, released).unwrap();
    s.fulfil(oracle, refunded).unwrap();

    // The store announces no settlement itself: the settling contract does (PaymentReleased,
    // PaymentRefunded).
    let receipt = s.settle(oracle, released, true).unwrap();
    assert!(receipt.logs.is_empty());
    let receipt = s.settle(oracle, refunded, false).unwrap();
    assert!(receipt.logs.is_empty());
    assert_eq!(
        conditions(&mut s.w, &[released, refunded]),
        vec![
            record(oracle, state::RELEASED, created + 10, created + 1_000),
            record(oracle, state::REFUNDED, created + 10, created + 1_000),
        ],
        "only the state changes"
    );
}

#[test]
fn only_the_condition_contract_settles() {
    let mut s = Store::new();
    let (oracle, store) = (s.oracle, s.store);
    let (_, id, _) = s.oracle_condition(0, 0);
    let (_, unfulfilled, _) = s.oracle_condition(0, 0);
    s.fulfil(oracle, id).unwrap();
    for caller in [s.outsider, s.consumer, s.governor] {
        for released in [true, false] {
            for target in [id, unfulfilled] {
                // The caller check comes before the state check.
                let err: AgreementStore::NotConditionContract = s.reverts(
                    caller,
                    store,
                    AgreementStore::settleCall {
                        conditionId: target,
                        released,
                    },
                    &[id, unfulfilled],
                );
                assert_eq!((err.conditionId, err.caller), (target, caller));
            }
        }
    }
    // Nor may a contract, the governance timelock or an (unapproved) template included.
    let outsider = s.outsider;
    let rogue =
        s.w.chain
            .deploy(
                outsider,
                &RogueTemplate::BYTECODE,
                &RogueTemplate::constructorCall { store },
            )
            .unwrap();
    let settle = AgreementStore::settleCall {
        conditionId: id,
        released: true,
    };
    let err: AgreementStore::NotConditionContract = s.reverts(
        outsider,
        rogue,
        RogueTemplate::executeCall {
            target: store,
            data: settle.abi_encode().into(),
        },
        &[id],
    );
    assert_eq!((err.conditionId, err.caller), (id, rogue));
    let timelock = s.timelock;
    let err: AgreementStore::NotConditionContract = s.govern_reverts(settle);
    assert_eq!((err.conditionId, err.caller), (id, timelock));
    // A condition that does not exist has no contract to settle it.
    let unknown = keccak256(b"no such condition");
    for caller in [oracle, s.outsider] {
        let err: AgreementStore::ConditionNotFound = s.reverts(
            caller,
            store,
            AgreementStore::settleCall {
                conditionId: unknown,
                released: true,
            },
            &[unknown],
        );
        assert_eq!(err.conditionId, unknown);
    }
    assert_eq!(s.w.state(id), state::FULFILLED);
}

#[test]
fn settle_needs_a_fulfilled_condition() {
    let mut s = Store::new();
    let (oracle, store) = (s.oracle, s.store);
    let (_, unfulfilled, created) = s.oracle_condition(0, 100);
    let (_, aborted, _) = s.oracle_condition(0, 100);
    s.abort(oracle, aborted).unwrap();
    let check = |s: &mut Store| {
        for released in [true, false] {
            for (id, current) in [(unfulfilled, state::UNFULFILLED), (aborted, state::ABORTED)] {
                let err: AgreementStore::ConditionNotFulfilled = s.reverts(
                    oracle,
                    store,
                    AgreementStore::settleCall {
                        conditionId: id,
                        released,
                    },
                    &[unfulfilled, aborted],
                );
                assert_eq!((err.conditionId, err.state), (id, current));
            }
        }
    };
    check(&mut s);
    // Timed out is still Unfulfilled: nothing to settle.
    s.at(created + 100);
    assert!(is_timed_out(&mut s.w, unfulfilled));
    check(&mut s);
}

#[test]
fn a_condition_is_settled_once() {
    let mut s = Store::new();
    let (oracle, store) = (s.oracle, s.store);
    for (first, settled) in [(true, state::RELEASED), (false, state::REFUNDED)] {
        let (_, id, _) = s.oracle_condition(0, 0);
        s.fulfil(oracle, id).unwrap();
        s.settle(oracle, id, first).unwrap();
        for again in [true, false] {
            let err: AgreementStore::ConditionNotFulfilled = s.reverts(
                oracle,
                store,
                AgreementStore::settleCall {
                    conditionId: id,
                    released: again,
                },
                &[id],
            );
            assert_eq!((err.conditionId, err.state), (id, settled));
        }
        assert_eq!(s.w.state(id), settled);
    }
}

#[test]
fn released_and_refunded_conditions_never_move_again() {
    let mut s = Store::new();
    let (oracle, store) = (s.oracle, s.store);
    let (_, released, created) = s.oracle_condition(0, 1_000);
    let (_, refunded, _) = s.oracle_condition(0, 1_000);
    for id in [released, refunded] {
        s.fulfil(oracle, id).unwrap();
    }
    s.settle(oracle, released, true).unwrap();
    s.settle(oracle, refunded, false).unwrap();

    let check = |s: &mut Store| {
        for (id, settled) in [(released, state::RELEASED), (refunded, state::REFUNDED)] {
            for call in [
                AgreementStore::fulfilCall { conditionId: id }.abi_encode(),
                AgreementStore::abortCall { conditionId: id }.abi_encode(),
            ] {
                let before = s.state_of(&[released, refunded]);
                let err: AgreementStore::ConditionNotUnfulfilled =
                    s.w.chain
                        .send(Tx::call(oracle, store, call))
                        .expect_revert();
                assert_eq!((err.conditionId, err.state), (id, settled));
                assert_eq!(s.state_of(&[released, refunded]), before);
            }
            assert!(
                !is_timed_out(&mut s.w, id),
                "a settled condition never times out"
            );
        }
    };
    check(&mut s);
    // Past the time out too.
    s.at(created + 1_000_000);
    check(&mut s);
}

/// A paid access deal of the world (1,000 tokens to the provider, no fee).
fn paid(s: &mut Store) -> Deal {
    s.w.paid_deal(Service::Access)
}

/// Balances of the consumer, provider and payment contract in the deal's token.
fn balances(s: &mut Store, deal: &Deal) -> [U256; 3] {
    let (token, payment) = (deal.token, s.w.suite.payment);
    [
        s.w.balance(token, deal.consumer),
        s.w.balance(token, s.w.provider),
        s.w.balance(token, payment),
    ]
}

#[test]
fn a_released_payment_never_moves_again_through_the_payment_condition() {
    // The payment condition settles through the store: once Released, a second release is the
    // store's ConditionNotFulfilled(Released), a refund finds the service Fulfilled, a second
    // lock is the store's ConditionNotUnfulfilled(Released), and it never times out. With the
    // old contracts the lock and the escrow were two conditions and the escrow kept its own
    // record of a release.
    let mut s = Store::new();
    let (keeper, outsider, payment) = (s.w.keeper, s.outsider, s.w.suite.payment);
    let deal = paid(&mut s);
    s.w.serve_and_release(&deal, keeper).unwrap();
    assert_eq!(s.w.state(deal.payment_id), state::RELEASED);
    let after = balances(&mut s, &deal);

    let err: AgreementStore::ConditionNotFulfilled = s.w.release(&deal, outsider).expect_revert();
    assert_eq!(
        (err.conditionId, err.state),
        (deal.payment_id, state::RELEASED)
    );
    let err: PaymentCondition::ServiceNotAborted = s.w.refund(&deal, outsider).expect_revert();
    assert_eq!(
        (err.serviceConditionId, err.state),
        (deal.service_id, state::FULFILLED)
    );
    let consumer = deal.consumer;
    let err: AgreementStore::ConditionNotUnfulfilled =
        s.w.lock(&deal, consumer, U256::ZERO).expect_revert();
    assert_eq!(
        (err.conditionId, err.state),
        (deal.payment_id, state::RELEASED)
    );
    s.w.chain.warp(u64::from(deal.service_timeout) + 1);
    let err: AgreementStore::ConditionNotTimedOut = s
        .send(
            outsider,
            payment,
            PaymentCondition::abortTimedOutCall {
                conditionId: deal.payment_id,
            },
        )
        .expect_revert();
    assert_eq!(err.conditionId, deal.payment_id);
    assert_eq!(balances(&mut s, &deal), after, "no token moved");
    assert_eq!(s.w.state(deal.payment_id), state::RELEASED);
}

#[test]
fn a_refunded_payment_never_moves_again_through_the_payment_condition() {
    let mut s = Store::new();
    let (keeper, outsider) = (s.w.keeper, s.outsider);
    let deal = paid(&mut s);
    s.w.chain.warp(u64::from(deal.service_timeout));
    s.w.abort_service(&deal, outsider).unwrap();
    s.w.refund(&deal, outsider).unwrap();
    assert_eq!(s.w.state(deal.payment_id), state::REFUNDED);
    let after = balances(&mut s, &deal);

    let err: AgreementStore::ConditionNotFulfilled = s.w.refund(&deal, outsider).expect_revert();
    assert_eq!(
        (err.conditionId, err.state),
        (deal.payment_id, state::REFUNDED)
    );
    let err: PaymentCondition::ServiceNotFulfilled = s.w.release(&deal, keeper).expect_revert();
    assert_eq!(
        (err.serviceConditionId, err.state),
        (deal.service_id, state::ABORTED)
    );
    let consumer = deal.consumer;
    let err: AgreementStore::ConditionNotUnfulfilled =
        s.w.lock(&deal, consumer, U256::ZERO).expect_revert();
    assert_eq!(
        (err.conditionId, err.state),
        (deal.payment_id, state::REFUNDED)
    );
    assert_eq!(balances(&mut s, &deal), after, "no token moved");
    assert_eq!(s.w.state(deal.payment_id), state::REFUNDED);
}
