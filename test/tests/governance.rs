//! Governance of a deployment: the `GovernanceTimelock` (an OpenZeppelin `TimelockController`)
//! holds the store's admin and governor roles, so every template approval or revocation and every
//! network fee change is scheduled first and carried out after the timelock's delay; and the
//! store's admin role follows OpenZeppelin's `AccessControlDefaultAdminRules` (two-step transfer
//! with a delay, never granted directly, renounced only after a scheduled delay).
//!
//! The world's timelock has no delay (`World::govern` schedules and executes at once); the
//! delayed suites here are deployed on fresh chains with the deployment plan itself.

mod common;

use alloy::{
    primitives::{Address, B256, Bytes, U256, aliases::U48, keccak256},
    sol_types::{SolCall, SolError, SolValue},
};
use common::{approve_template, deploy_passthrough, govern_call, revoke_template};
use insitu_bindings::deployment::{
    self, DeployOptions, DeploymentPlan, Governance, SuiteAddresses,
};
use insitu_bindings::{AgreementStore, GovernanceTimelock, PassthroughTemplate, PaymentCondition};
use insitu_tests::harness::{Chain, ExpectRevert, Receipt, Tx, TxError};
use insitu_tests::world::{World, deploy_suite};

/// One day, the delay of the delayed timelock.
const DAY: u64 = 86_400;

fn governor_role() -> B256 {
    keccak256(b"insitu.governor")
}

fn proposer_role() -> B256 {
    keccak256(b"PROPOSER_ROLE")
}

/// `TimelockController`'s bitmap of expected operation states: bit 2 is Ready.
fn ready_bitmap() -> B256 {
    B256::from(U256::from(1) << 2)
}

/// Timelock operation states as the bindings return them.
mod op {
    pub(crate) const UNSET: u8 = 0;
    pub(crate) const WAITING: u8 = 1;
    pub(crate) const READY: u8 = 2;
    pub(crate) const DONE: u8 = 3;
}

/// The governance state a refused call must leave unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GovView {
    templates: Vec<u8>,
    governors: Vec<bool>,
    admins: Vec<bool>,
    default_admin: Address,
    pending_admin: (Address, U48),
    fee: (Address, u16),
}

fn gov_view(
    chain: &mut Chain,
    suite: &SuiteAddresses,
    templates: &[Address],
    accounts: &[Address],
) -> GovView {
    let store = suite.agreement_store;
    let templates = templates
        .iter()
        .map(|&template| {
            chain
                .call(store, &AgreementStore::templateStateCall { template })
                .unwrap()
        })
        .collect();
    let governors = accounts
        .iter()
        .map(|&account| {
            chain
                .call(store, &AgreementStore::isGovernorCall { account })
                .unwrap()
        })
        .collect();
    let admins = accounts
        .iter()
        .map(|&account| {
            chain
                .call(
                    store,
                    &AgreementStore::hasRoleCall {
                        role: B256::ZERO,
                        account,
                    },
                )
                .unwrap()
        })
        .collect();
    let default_admin = chain
        .call(store, &AgreementStore::defaultAdminCall {})
        .unwrap();
    let pending = chain
        .call(store, &AgreementStore::pendingDefaultAdminCall {})
        .unwrap();
    let fee = chain
        .call(suite.payment, &PaymentCondition::networkFeeCall {})
        .unwrap();
    GovView {
        templates,
        governors,
        admins,
        default_admin,
        pending_admin: (pending.newAdmin, pending.schedule),
        fee: (fee.receiver, fee.bps),
    }
}

/// The `scheduleBatch` and `executeBatch` calls of `calls` with `salt` and `delay`.
fn batch(
    calls: &[(Address, Vec<u8>)],
    salt: B256,
    delay: u64,
) -> (
    GovernanceTimelock::scheduleBatchCall,
    GovernanceTimelock::executeBatchCall,
) {
    let targets: Vec<Address> = calls.iter().map(|(to, _)| *to).collect();
    let values = vec![U256::ZERO; calls.len()];
    let payloads: Vec<Bytes> = calls
        .iter()
        .map(|(_, input)| input.clone().into())
        .collect();
    (
        GovernanceTimelock::scheduleBatchCall {
            targets: targets.clone(),
            values: values.clone(),
            payloads: payloads.clone(),
            predecessor: B256::ZERO,
            salt,
            delay: U256::from(delay),
        },
        GovernanceTimelock::executeBatchCall {
            targets,
            values,
            payloads,
            predecessor: B256::ZERO,
            salt,
        },
    )
}

/// The id of a batch, as the timelock hashes it.
fn operation_id(execute: &GovernanceTimelock::executeBatchCall) -> B256 {
    keccak256(
        (
            execute.targets.clone(),
            execute.values.clone(),
            execute.payloads.clone(),
            execute.predecessor,
            execute.salt,
        )
            .abi_encode_params(),
    )
}

/// A suite deployed with the deployment plan on a fresh chain, governed by its own timelock.
struct Suite {
    chain: Chain,
    suite: SuiteAddresses,
    plan: DeploymentPlan,
    deployer: Address,
    proposer: Address,
    outsider: Address,
    new_admin: Address,
    fee_receiver: Address,
    timelock: Address,
    salts: u64,
}

impl Suite {
    /// Deploys the suite from `deployer` with a timelock of `delay` seconds whose proposer is
    /// `proposer` (the deployer itself when `proposer_is_deployer`), an admin transfer delay of
    /// `admin_delay` seconds, and a 1% network fee.
    fn deploy(delay: u64, admin_delay: u64, proposer_is_deployer: bool) -> Self {
        let mut chain = Chain::new();
        let deployer = chain.account_named("deployer");
        let proposer = if proposer_is_deployer {
            deployer
        } else {
            chain.account_named("proposer")
        };
        let outsider = chain.account_named("outsider");
        let new_admin = chain.account_named("new admin");
        let fee_receiver = chain.account_named("fee receiver");
        let options = DeployOptions {
            governance: Governance::Timelock { proposer, delay },
            admin_transfer_delay: u32::try_from(admin_delay).expect("a u32 delay"),
            network_fee: Some((fee_receiver, 100)),
        };
        let plan = deployment::plan(deployer, chain.nonce(deployer), options);
        let suite = deploy_suite(&mut chain, deployer, options).expect("deploy the suite");
        assert_eq!(suite, plan.addresses, "the plan's addresses");
        let timelock = suite.governance_timelock.expect("a timelock");
        Self {
            chain,
            suite,
            plan,
            deployer,
            proposer,
            outsider,
            new_admin,
            fee_receiver,
            timelock,
            salts: 0,
        }
    }

    fn store(&self) -> Address {
        self.suite.agreement_store
    }

    fn view(&mut self) -> GovView {
        let templates = [self.suite.access_template, self.suite.compute_template];
        let accounts = [
            self.timelock,
            self.deployer,
            self.proposer,
            self.outsider,
            self.new_admin,
        ];
        gov_view(&mut self.chain, &self.suite, &templates, &accounts)
    }

    fn approved(&mut self, template: Address) -> bool {
        let store = self.store();
        self.chain
            .call(store, &AgreementStore::isTemplateApprovedCall { template })
            .unwrap()
    }

    fn store_call<C: SolCall>(
        &mut self,
        from: Address,
        call: &C,
    ) -> Result<Receipt<C::Return>, TxError> {
        let store = self.store();
        self.chain.transact(from, store, call)
    }

    /// The proposer schedules `calls` (a fresh salt, the timelock's minimum delay) and anyone
    /// executes them at once (a timelock without delay). Returns the execution's receipt.
    fn govern(&mut self, calls: &[(Address, Vec<u8>)]) -> Result<Receipt<Bytes>, TxError> {
        self.salts += 1;
        let salt = keccak256(self.salts.to_be_bytes());
        let (schedule, execute) = batch(calls, salt, 0);
        let (proposer, timelock, outsider) = (self.proposer, self.timelock, self.outsider);
        self.chain
            .transact(proposer, timelock, &schedule)
            .expect("schedule");
        self.chain
            .send(Tx::call(outsider, timelock, execute.abi_encode()))
    }

    fn govern_store<C: SolCall>(&mut self, call: &C) -> Result<Receipt<Bytes>, TxError> {
        let store = self.store();
        self.govern(&[(store, call.abi_encode())])
    }

    /// Expects `result` to revert with `E`, with the governance view unchanged since `before`.
    #[track_caller]
    fn refused<T, E: SolError>(&mut self, before: &GovView, result: Result<T, TxError>) -> E {
        let err = result.expect_revert::<E>();
        assert_eq!(&self.view(), before, "a refused call changed governance");
        err
    }

    /// Deploys a passthrough template and proposes it; returns its address.
    fn proposed_template(&mut self) -> Address {
        let (outsider, store) = (self.outsider, self.store());
        let template = self
            .chain
            .deploy(
                outsider,
                &PassthroughTemplate::BYTECODE,
                &PassthroughTemplate::constructorCall { store },
            )
            .unwrap();
        self.store_call(outsider, &AgreementStore::proposeTemplateCall { template })
            .unwrap();
        template
    }
}

// ---- The world's timelock ----

#[test]
fn direct_governance_calls_are_refused_and_the_timelock_carries_them_out() {
    // With the old contracts the deploying governor called approveTemplate, revokeTemplate and
    // setNetworkFee itself; now only the timelock holds the governor role.
    let mut w = World::new();
    let (store, payment, timelock) = (w.suite.agreement_store, w.suite.payment, w.timelock);
    let (governor, outsider, fee_receiver) = (w.governor, w.outsider, w.fee_receiver);
    let access = w.suite.access_template;
    let candidate = deploy_passthrough(&mut w, outsider);
    w.chain
        .transact(
            outsider,
            store,
            &AgreementStore::proposeTemplateCall {
                template: candidate,
            },
        )
        .unwrap();
    let templates = [candidate, access];
    let accounts = [timelock, governor, outsider];
    let before = gov_view(&mut w.chain, &w.suite, &templates, &accounts);

    for caller in [outsider, governor] {
        let err: AgreementStore::AccessControlUnauthorizedAccount = w
            .chain
            .transact(
                caller,
                store,
                &AgreementStore::approveTemplateCall {
                    template: candidate,
                },
            )
            .expect_revert();
        assert_eq!((err.account, err.neededRole), (caller, governor_role()));
        let err: AgreementStore::AccessControlUnauthorizedAccount = w
            .chain
            .transact(
                caller,
                store,
                &AgreementStore::revokeTemplateCall { template: access },
            )
            .expect_revert();
        assert_eq!((err.account, err.neededRole), (caller, governor_role()));
        let err: PaymentCondition::NotGovernor = w
            .chain
            .transact(
                caller,
                payment,
                &PaymentCondition::setNetworkFeeCall {
                    receiver: fee_receiver,
                    bps: 100,
                },
            )
            .expect_revert();
        assert_eq!(err.caller, caller);
        // Nor can anyone but the proposer get the timelock to act: executing what was never
        // scheduled is refused.
        let (_, execute) = batch(
            &[(
                store,
                AgreementStore::approveTemplateCall {
                    template: candidate,
                }
                .abi_encode(),
            )],
            B256::repeat_byte(7),
            0,
        );
        let err: GovernanceTimelock::TimelockUnexpectedOperationState =
            w.chain.transact(caller, timelock, &execute).expect_revert();
        assert_eq!(
            (err.operationId, err.expectedStates),
            (operation_id(&execute), ready_bitmap())
        );
        assert_eq!(
            gov_view(&mut w.chain, &w.suite, &templates, &accounts),
            before
        );
    }

    // Through the timelock, each works, and the store names the timelock as the governor.
    let receipt = govern_call(
        &mut w,
        store,
        &AgreementStore::approveTemplateCall {
            template: candidate,
        },
    )
    .unwrap();
    assert_eq!(
        receipt.expect_event::<AgreementStore::TemplateApproved>(),
        AgreementStore::TemplateApproved {
            template: candidate,
            by: timelock
        }
    );
    let receipt = govern_call(
        &mut w,
        store,
        &AgreementStore::revokeTemplateCall { template: access },
    )
    .unwrap();
    assert_eq!(
        receipt.expect_event::<AgreementStore::TemplateRevoked>(),
        AgreementStore::TemplateRevoked {
            template: access,
            by: timelock
        }
    );
    let receipt = govern_call(
        &mut w,
        payment,
        &PaymentCondition::setNetworkFeeCall {
            receiver: fee_receiver,
            bps: 100,
        },
    )
    .unwrap();
    assert_eq!(
        receipt.expect_event::<PaymentCondition::NetworkFeeSet>(),
        PaymentCondition::NetworkFeeSet {
            receiver: fee_receiver,
            bps: 100
        }
    );
    let after = gov_view(&mut w.chain, &w.suite, &templates, &accounts);
    assert_eq!(after.templates, [2, 3], "approved, revoked");
    assert_eq!(after.fee, (fee_receiver, 100));
    assert_eq!(after.governors, before.governors, "roles unchanged");
}

#[test]
fn the_world_timelock_is_wired_as_the_plan_says() {
    let mut w = World::new();
    let (timelock, governor, outsider) = (w.timelock, w.governor, w.outsider);
    let role = |w: &mut World, name: &[u8]| -> B256 {
        let role = keccak256(name);
        assert_eq!(
            role,
            match name {
                b"PROPOSER_ROLE" => w
                    .chain
                    .call(timelock, &GovernanceTimelock::PROPOSER_ROLECall {})
                    .unwrap(),
                b"EXECUTOR_ROLE" => w
                    .chain
                    .call(timelock, &GovernanceTimelock::EXECUTOR_ROLECall {})
                    .unwrap(),
                _ => w
                    .chain
                    .call(timelock, &GovernanceTimelock::CANCELLER_ROLECall {})
                    .unwrap(),
            }
        );
        role
    };
    let has = |w: &mut World, role: B256, account: Address| -> bool {
        w.chain
            .call(timelock, &GovernanceTimelock::hasRoleCall { role, account })
            .unwrap()
    };
    let (proposer, executor, canceller) = (
        role(&mut w, b"PROPOSER_ROLE"),
        role(&mut w, b"EXECUTOR_ROLE"),
        role(&mut w, b"CANCELLER_ROLE"),
    );
    // The proposer schedules and cancels; anyone executes (the role is open: held by zero).
    assert!(has(&mut w, proposer, governor));
    assert!(has(&mut w, canceller, governor));
    assert!(!has(&mut w, executor, governor));
    assert!(has(&mut w, executor, Address::ZERO));
    assert!(!has(&mut w, proposer, outsider));
    // The timelock administers itself; nobody else holds its admin role.
    assert!(has(&mut w, B256::ZERO, timelock));
    for account in [governor, outsider, Address::ZERO] {
        assert!(!has(&mut w, B256::ZERO, account));
    }
}

#[test]
fn granting_or_revoking_the_admin_role_directly_is_refused() {
    // AccessControlDefaultAdminRules: the admin role only moves by the two-step transfer, even
    // for the admin itself (with plain AccessControl the admin granted it at once).
    let mut w = World::new();
    let (store, timelock, governor, outsider) =
        (w.suite.agreement_store, w.timelock, w.governor, w.outsider);
    let templates = [w.suite.access_template, w.suite.compute_template];
    let accounts = [timelock, governor, outsider];
    let before = gov_view(&mut w.chain, &w.suite, &templates, &accounts);
    for call in [
        AgreementStore::grantRoleCall {
            role: B256::ZERO,
            account: outsider,
        }
        .abi_encode(),
        AgreementStore::revokeRoleCall {
            role: B256::ZERO,
            account: timelock,
        }
        .abi_encode(),
    ] {
        let _: AgreementStore::AccessControlEnforcedDefaultAdminRules =
            w.govern(&[(store, call.clone())]).expect_revert();
        for caller in [governor, outsider] {
            let _: AgreementStore::AccessControlEnforcedDefaultAdminRules = w
                .chain
                .send(Tx::call(caller, store, call.clone()))
                .expect_revert();
        }
    }
    // Changing the role's admin is no way around it either: the store has no such function, and
    // the governor role's admin stays the admin role.
    assert_eq!(
        gov_view(&mut w.chain, &w.suite, &templates, &accounts),
        before
    );
    assert_eq!(before.default_admin, timelock);
    assert_eq!(before.templates, [2, 2]);
}

// ---- A timelock with a delay ----

#[test]
fn a_delayed_timelock_executes_the_plan_only_after_its_delay() {
    let mut s = Suite::deploy(DAY, 0, false);
    let (proposer, deployer, outsider, timelock) = (s.proposer, s.deployer, s.outsider, s.timelock);
    let (access, compute) = (s.suite.access_template, s.suite.compute_template);
    // Deployed and proposed, not approved yet: nothing can be sold before governance acts.
    let before = s.view();
    assert_eq!(before.templates, [1, 1], "proposed");
    assert_eq!(before.fee, (Address::ZERO, 0));
    assert_eq!(before.default_admin, timelock);
    assert!(!s.approved(access) && !s.approved(compute));
    let labels: Vec<&str> = s.plan.governor_calls.iter().map(|tx| tx.label).collect();
    assert_eq!(
        labels,
        ["schedule governance batch", "execute governance batch"]
    );
    let schedule = s.plan.governor_calls[0].input.clone();
    let execute = s.plan.governor_calls[1].input.clone();
    let decoded = GovernanceTimelock::executeBatchCall::abi_decode(&execute).unwrap();
    let id = operation_id(&decoded);
    let state = |s: &mut Suite| -> u8 {
        s.chain
            .call(timelock, &GovernanceTimelock::getOperationStateCall { id })
            .unwrap()
    };
    assert_eq!(state(&mut s), op::UNSET);

    // Only the proposer schedules: neither the deployer nor an outsider may.
    for caller in [deployer, outsider] {
        let err: GovernanceTimelock::AccessControlUnauthorizedAccount = s
            .chain
            .send(Tx::call(caller, timelock, schedule.clone()))
            .expect_revert();
        assert_eq!((err.account, err.neededRole), (caller, proposer_role()));
    }
    assert_eq!(state(&mut s), op::UNSET);
    // A shorter delay than the timelock's is refused, even to the proposer.
    let mut short = GovernanceTimelock::scheduleBatchCall::abi_decode(&schedule).unwrap();
    short.delay = U256::from(DAY - 1);
    let err: GovernanceTimelock::TimelockInsufficientDelay =
        s.chain.transact(proposer, timelock, &short).expect_revert();
    assert_eq!(
        (err.delay, err.minDelay),
        (U256::from(DAY - 1), U256::from(DAY))
    );

    let receipt = s
        .chain
        .send(Tx::call(proposer, timelock, schedule.clone()))
        .expect("the plan's schedule call");
    let scheduled = receipt
        .events::<GovernanceTimelock::CallScheduled>()
        .unwrap();
    assert_eq!(scheduled.len(), 3, "approve both templates, set the fee");
    assert!(
        scheduled
            .iter()
            .all(|e| e.id == id && e.delay == U256::from(DAY))
    );
    let at = receipt.timestamp;
    assert_eq!(
        s.chain
            .call(timelock, &GovernanceTimelock::getTimestampCall { id })
            .unwrap(),
        U256::from(at + DAY)
    );
    assert_eq!(state(&mut s), op::WAITING);
    assert_eq!(s.view(), before, "scheduling changes nothing yet");

    // Before the delay, nobody executes it.
    for now in [at, at + DAY - 1] {
        s.chain.set_timestamp(now);
        for caller in [proposer, outsider] {
            let err: GovernanceTimelock::TimelockUnexpectedOperationState = s
                .chain
                .send(Tx::call(caller, timelock, execute.clone()))
                .expect_revert();
            assert_eq!((err.operationId, err.expectedStates), (id, ready_bitmap()));
        }
        assert_eq!(s.view(), before);
    }

    // Once due, anyone executes it (the executor role is open).
    s.chain.warp(1);
    assert_eq!(state(&mut s), op::READY);
    let receipt = s
        .chain
        .send(Tx::call(outsider, timelock, execute.clone()))
        .expect("executed once due");
    assert_eq!(
        receipt
            .events::<GovernanceTimelock::CallExecuted>()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(state(&mut s), op::DONE);
    let after = s.view();
    assert_eq!(after.templates, [2, 2], "approved");
    assert_eq!(after.fee, (s.fee_receiver, 100));
    assert!(s.approved(access) && s.approved(compute));

    // Done once: a second execution is refused.
    let err: GovernanceTimelock::TimelockUnexpectedOperationState = s
        .chain
        .send(Tx::call(outsider, timelock, execute))
        .expect_revert();
    assert_eq!((err.operationId, err.expectedStates), (id, ready_bitmap()));
}

#[test]
fn only_the_proposer_schedules_and_anyone_executes_once_due() {
    let mut s = Suite::deploy(DAY, 0, false);
    let (proposer, outsider, timelock, store) = (s.proposer, s.outsider, s.timelock, s.store());
    let template = s.proposed_template();
    let (schedule, execute) = batch(
        &[(
            store,
            AgreementStore::approveTemplateCall { template }.abi_encode(),
        )],
        B256::repeat_byte(1),
        DAY,
    );
    let before = s.view();
    let err: GovernanceTimelock::AccessControlUnauthorizedAccount = s
        .chain
        .transact(outsider, timelock, &schedule)
        .expect_revert();
    assert_eq!((err.account, err.neededRole), (outsider, proposer_role()));
    s.chain.transact(proposer, timelock, &schedule).unwrap();
    let at = s.chain.timestamp();
    // The governance call itself is still refused directly, to everyone.
    for caller in [proposer, outsider] {
        let err: AgreementStore::AccessControlUnauthorizedAccount = s
            .store_call(caller, &AgreementStore::approveTemplateCall { template })
            .expect_revert();
        assert_eq!((err.account, err.neededRole), (caller, governor_role()));
    }
    s.chain.set_timestamp(at + DAY - 1);
    let _: GovernanceTimelock::TimelockUnexpectedOperationState = s
        .chain
        .transact(outsider, timelock, &execute)
        .expect_revert();
    assert_eq!(s.view(), before);
    assert!(!s.approved(template));
    s.chain.set_timestamp(at + DAY);
    let receipt = s.chain.transact(outsider, timelock, &execute).unwrap();
    assert_eq!(
        receipt.expect_event::<AgreementStore::TemplateApproved>(),
        AgreementStore::TemplateApproved {
            template,
            by: timelock
        }
    );
    assert!(s.approved(template));
}

// ---- The admin role: AccessControlDefaultAdminRules ----

#[test]
fn the_admin_role_moves_in_two_steps_after_the_delay() {
    let admin_delay = 2 * DAY;
    let mut s = Suite::deploy(0, admin_delay, true);
    let (proposer, outsider, new_admin, timelock, store) =
        (s.proposer, s.outsider, s.new_admin, s.timelock, s.store());
    let (access, compute) = (s.suite.access_template, s.suite.compute_template);
    // Deployed by the proposer of a timelock without delay: the plan approved the templates.
    assert!(s.approved(access) && s.approved(compute), "approved before");
    assert_eq!(
        s.chain
            .call(store, &AgreementStore::defaultAdminDelayCall {})
            .unwrap(),
        U48::from(admin_delay)
    );
    let before = s.view();

    // Only the admin starts a transfer: not the timelock's proposer directly.
    let begin = AgreementStore::beginDefaultAdminTransferCall {
        newAdmin: new_admin,
    };
    let result = s.store_call(proposer, &begin);
    let err: AgreementStore::AccessControlUnauthorizedAccount = s.refused(&before, result);
    assert_eq!((err.account, err.neededRole), (proposer, B256::ZERO));

    // Step one, by the admin (the timelock, through governance).
    let receipt = s.govern_store(&begin).unwrap();
    let started = receipt.timestamp;
    let schedule = U48::from(started + admin_delay);
    assert_eq!(
        receipt.expect_event::<AgreementStore::DefaultAdminTransferScheduled>(),
        AgreementStore::DefaultAdminTransferScheduled {
            newAdmin: new_admin,
            acceptSchedule: schedule
        }
    );
    let pending = s.view();
    assert_eq!(pending.pending_admin, (new_admin, schedule));
    assert_eq!(pending.default_admin, timelock, "nothing moved yet");
    assert!(!pending.admins[4], "the pending admin holds no role yet");

    // Step two: only the pending admin accepts, and only once the delay has passed (strictly:
    // at the schedule itself it is still refused).
    let accept = AgreementStore::acceptDefaultAdminTransferCall {};
    for caller in [outsider, proposer] {
        let result = s.store_call(caller, &accept);
        let err: AgreementStore::AccessControlInvalidDefaultAdmin = s.refused(&pending, result);
        assert_eq!(err.defaultAdmin, caller);
    }
    for now in [started, started + admin_delay] {
        s.chain.set_timestamp(now);
        let result = s.store_call(new_admin, &accept);
        let err: AgreementStore::AccessControlEnforcedDefaultAdminDelay =
            s.refused(&pending, result);
        assert_eq!(err.schedule, schedule);
    }
    s.chain.set_timestamp(started + admin_delay + 1);
    let receipt = s.store_call(new_admin, &accept).unwrap();
    assert_eq!(
        receipt.expect_event::<AgreementStore::RoleRevoked>(),
        AgreementStore::RoleRevoked {
            role: B256::ZERO,
            account: timelock,
            sender: new_admin
        }
    );
    assert_eq!(
        receipt.expect_event::<AgreementStore::RoleGranted>(),
        AgreementStore::RoleGranted {
            role: B256::ZERO,
            account: new_admin,
            sender: new_admin
        }
    );
    let after = s.view();
    assert_eq!(after.default_admin, new_admin);
    assert_eq!(after.pending_admin, (Address::ZERO, U48::ZERO));
    assert_eq!(after.admins, [false, false, false, false, true]);
    // The governor role did not move with the admin role; the templates stay approved.
    assert_eq!(after.governors, before.governors);
    assert_eq!(after.templates, [2, 2], "approved after");

    // The new admin administers the governor role directly; the old one no longer can.
    let grant = AgreementStore::grantRoleCall {
        role: governor_role(),
        account: outsider,
    };
    let result = s.govern_store(&grant);
    let err: AgreementStore::AccessControlUnauthorizedAccount = s.refused(&after, result);
    assert_eq!((err.account, err.neededRole), (timelock, B256::ZERO));
    s.store_call(new_admin, &grant).unwrap();
    assert!(s.view().governors[3], "the outsider governs");
    // The timelock still governs templates until the new admin revokes it.
    let template = s.proposed_template();
    s.govern_store(&AgreementStore::approveTemplateCall { template })
        .unwrap();
    assert!(s.approved(template));
}

#[test]
fn a_started_admin_transfer_can_be_cancelled() {
    let mut s = Suite::deploy(0, DAY, true);
    let (new_admin, timelock) = (s.new_admin, s.timelock);
    let receipt = s
        .govern_store(&AgreementStore::beginDefaultAdminTransferCall {
            newAdmin: new_admin,
        })
        .unwrap();
    let started = receipt.timestamp;
    let receipt = s
        .govern_store(&AgreementStore::cancelDefaultAdminTransferCall {})
        .unwrap();
    assert!(receipt.has_event::<AgreementStore::DefaultAdminTransferCanceled>());
    let view = s.view();
    assert_eq!(view.pending_admin, (Address::ZERO, U48::ZERO));
    s.chain.set_timestamp(started + DAY + 1);
    let result = s.store_call(
        new_admin,
        &AgreementStore::acceptDefaultAdminTransferCall {},
    );
    let err: AgreementStore::AccessControlInvalidDefaultAdmin = s.refused(&view, result);
    assert_eq!(err.defaultAdmin, new_admin);
    assert_eq!(s.view().default_admin, timelock);
}

#[test]
fn the_last_admin_renounces_only_after_a_scheduled_delay_and_governance_then_freezes() {
    let admin_delay = DAY;
    let mut s = Suite::deploy(0, admin_delay, true);
    let (timelock, outsider, store, payment, fee_receiver) = (
        s.timelock,
        s.outsider,
        s.store(),
        s.suite.payment,
        s.fee_receiver,
    );
    let renounce = AgreementStore::renounceRoleCall {
        role: B256::ZERO,
        account: timelock,
    };
    let before = s.view();
    assert_eq!(before.templates, [2, 2], "approved before");

    // Renouncing at once is refused: it needs a transfer to the zero address first.
    let result = s.govern_store(&renounce);
    let err: AgreementStore::AccessControlEnforcedDefaultAdminDelay = s.refused(&before, result);
    assert_eq!(err.schedule, U48::ZERO);

    let receipt = s
        .govern_store(&AgreementStore::beginDefaultAdminTransferCall {
            newAdmin: Address::ZERO,
        })
        .unwrap();
    let schedule = U48::from(receipt.timestamp + admin_delay);
    let pending = s.view();
    assert_eq!(pending.pending_admin, (Address::ZERO, schedule));
    for now in [receipt.timestamp, receipt.timestamp + admin_delay] {
        s.chain.set_timestamp(now);
        let result = s.govern_store(&renounce);
        let err: AgreementStore::AccessControlEnforcedDefaultAdminDelay =
            s.refused(&pending, result);
        assert_eq!(err.schedule, schedule);
    }
    s.chain.set_timestamp(receipt.timestamp + admin_delay + 1);
    s.govern_store(&renounce).unwrap();
    let after = s.view();
    assert_eq!(after.default_admin, Address::ZERO);
    assert_eq!(after.pending_admin, (Address::ZERO, U48::ZERO));
    assert!(after.admins.iter().all(|admin| !admin));
    assert_eq!(after.templates, [2, 2], "approved after");

    // What is left: the timelock still holds the governor role, so templates and the fee are
    // still governed through it ...
    assert!(after.governors[0]);
    let template = s.proposed_template();
    s.govern_store(&AgreementStore::approveTemplateCall { template })
        .unwrap();
    assert!(s.approved(template));
    s.govern(&[(
        payment,
        PaymentCondition::setNetworkFeeCall {
            receiver: fee_receiver,
            bps: 200,
        }
        .abi_encode(),
    )])
    .unwrap();
    // ... but nobody can grant or revoke the governor role, nor become admin, ever again: the
    // set of governors is frozen to the timelock.
    let frozen = s.view();
    for call in [
        AgreementStore::grantRoleCall {
            role: governor_role(),
            account: outsider,
        }
        .abi_encode(),
        AgreementStore::revokeRoleCall {
            role: governor_role(),
            account: timelock,
        }
        .abi_encode(),
        AgreementStore::beginDefaultAdminTransferCall { newAdmin: outsider }.abi_encode(),
    ] {
        let result = s.govern(&[(store, call)]);
        let err: AgreementStore::AccessControlUnauthorizedAccount = s.refused(&frozen, result);
        assert_eq!((err.account, err.neededRole), (timelock, B256::ZERO));
    }
    let result = s.store_call(outsider, &AgreementStore::acceptDefaultAdminTransferCall {});
    let err: AgreementStore::AccessControlInvalidDefaultAdmin = s.refused(&frozen, result);
    assert_eq!(err.defaultAdmin, outsider);

    // The timelock may still renounce its governor role, which ends governance for good.
    s.govern_store(&AgreementStore::renounceRoleCall {
        role: governor_role(),
        account: timelock,
    })
    .unwrap();
    let ended = s.view();
    assert!(ended.governors.iter().all(|governor| !governor));
    let result = s.govern_store(&AgreementStore::revokeTemplateCall { template });
    let err: AgreementStore::AccessControlUnauthorizedAccount = s.refused(&ended, result);
    assert_eq!((err.account, err.neededRole), (timelock, governor_role()));
    let result = s.govern(&[(
        payment,
        PaymentCondition::setNetworkFeeCall {
            receiver: fee_receiver,
            bps: 0,
        }
        .abi_encode(),
    )]);
    let err: PaymentCondition::NotGovernor = s.refused(&ended, result);
    assert_eq!(err.caller, timelock);
}

#[test]
fn the_world_helpers_govern_through_the_timelock() {
    // common::approve_template and revoke_template, which the other tests rely on, act through
    // the timelock and surface the store's errors.
    let mut w = World::new();
    let outsider = w.outsider;
    let template = deploy_passthrough(&mut w, outsider);
    let err: AgreementStore::InvalidTemplateState =
        approve_template(&mut w, template).expect_revert();
    assert_eq!((err.template, err.state), (template, 0));
    let store = w.suite.agreement_store;
    w.chain
        .transact(
            outsider,
            store,
            &AgreementStore::proposeTemplateCall { template },
        )
        .unwrap();
    approve_template(&mut w, template).unwrap();
    revoke_template(&mut w, template).unwrap();
    let state: u8 = w
        .chain
        .call(store, &AgreementStore::templateStateCall { template })
        .unwrap();
    assert_eq!(state, 3);
}

#[test]
fn the_proposer_cancels_a_scheduled_operation_before_it_is_due() {
    let mut s = Suite::deploy(DAY, 0, false);
    let (proposer, outsider, timelock) = (s.proposer, s.outsider, s.timelock);
    let schedule = s.plan.governor_calls[0].input.clone();
    let execute = s.plan.governor_calls[1].input.clone();
    let id = operation_id(&GovernanceTimelock::executeBatchCall::abi_decode(&execute).unwrap());
    s.chain
        .send(Tx::call(proposer, timelock, schedule))
        .unwrap();
    let before = s.view();
    // Only the proposer (who holds the canceller role) cancels.
    let err: GovernanceTimelock::AccessControlUnauthorizedAccount = s
        .chain
        .transact(outsider, timelock, &GovernanceTimelock::cancelCall { id })
        .expect_revert();
    assert_eq!(
        (err.account, err.neededRole),
        (outsider, keccak256(b"CANCELLER_ROLE"))
    );
    let receipt = s
        .chain
        .transact(proposer, timelock, &GovernanceTimelock::cancelCall { id })
        .unwrap();
    assert_eq!(
        receipt.expect_event::<GovernanceTimelock::Cancelled>().id,
        id
    );
    s.chain.warp(DAY);
    let err: GovernanceTimelock::TimelockUnexpectedOperationState = s
        .chain
        .send(Tx::call(outsider, timelock, execute))
        .expect_revert();
    assert_eq!((err.operationId, err.expectedStates), (id, ready_bitmap()));
    assert_eq!(s.view(), before, "the cancelled plan never applied");
    assert_eq!(
        s.chain
            .call(timelock, &GovernanceTimelock::getOperationStateCall { id })
            .unwrap(),
        op::UNSET
    );
}

#[test]
fn a_timelock_without_a_real_proposer_is_refused() {
    // With no proposer, or a zero one, nobody could ever schedule, and the suite would stay
    // ungoverned for good: the timelock administers itself.
    let mut chain = Chain::new();
    let deployer = chain.account_named("deployer");
    let proposer = chain.account_named("proposer");
    for proposers in [vec![], vec![Address::ZERO], vec![proposer, Address::ZERO]] {
        let err = chain
            .deploy(
                deployer,
                &GovernanceTimelock::BYTECODE,
                &GovernanceTimelock::constructorCall {
                    minDelay: U256::ZERO,
                    proposers: proposers.clone(),
                    executors: vec![Address::ZERO],
                },
            )
            .expect_revert::<GovernanceTimelock::InvalidProposer>();
        assert_eq!(err.proposer, Address::ZERO, "{proposers:?}");
    }
    chain
        .deploy(
            deployer,
            &GovernanceTimelock::BYTECODE,
            &GovernanceTimelock::constructorCall {
                minDelay: U256::ZERO,
                proposers: vec![proposer],
                executors: vec![Address::ZERO],
            },
        )
        .expect("one real proposer");
}

#[test]
fn a_timelock_without_an_executor_is_refused() {
    // With no executor nothing scheduled could ever be carried out.
    let mut chain = Chain::new();
    let deployer = chain.account_named("deployer");
    let proposer = chain.account_named("proposer");
    chain
        .deploy(
            deployer,
            &GovernanceTimelock::BYTECODE,
            &GovernanceTimelock::constructorCall {
                minDelay: U256::ZERO,
                proposers: vec![proposer],
                executors: vec![],
            },
        )
        .expect_revert::<GovernanceTimelock::NoExecutor>();
}
