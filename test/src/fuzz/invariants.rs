//! The named invariants of `DESIGN.md` section 2, checked after every step from what the EVM
//! did: the receipt's events, the store's views and the token balances.
//!
//! These checks do not use the reference model's predictions. They keep their own "ghost"
//! bookkeeping, built only from events and views, so a planted bug is reported under the
//! invariant it breaks (a double release as `settlement_exactly_once`, not just as a model
//! mismatch). The ghost state doubles as the fuzzer's dictionary of values seen: agreements with
//! their payment terms, condition ids, time boundaries, amounts, assets.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use alloy::primitives::{Address, B256, Bytes, Log, U256};
use alloy::sol_types::SolEvent;
use insitu_bindings::{
    AccessCondition, AgreementStore, AssetRegistry, ComputeExecutionCondition,
    EscrowPaymentCondition, LockPaymentCondition, MockERC20, ServiceTemplate,
};
use serde::{Deserialize, Serialize};

use super::actions::{Call, Generic, Payment, Service, Step};
use super::env::{Addrs, Env, TokenKind, balance_slot};
use super::model::{CondState, ids};

/// Every invariant the fuzzer checks, with what it means. The order is the order of the checks:
/// the first one broken by a step is the one reported.
pub const INVARIANTS: &[(&str, &str)] = &[
    (
        "settlement_exactly_once",
        "an escrow condition pays out once: released or refunded, never both, never twice, and never changes state without paying",
    ),
    (
        "release_implies_fulfilled",
        "a release happens only when the lock and every release condition are Fulfilled",
    ),
    (
        "refund_implies_aborted",
        "a refund happens only when the lock is Fulfilled and a release condition is Aborted",
    ),
    (
        "states_only_move_forward",
        "condition states move Unfulfilled -> Fulfilled | Aborted once, only through their own condition contract, never without an event",
    ),
    (
        "only_servers_fulfil",
        "access and compute conditions are fulfilled only by the asset's owner, a provider or a delegate",
    ),
    (
        "only_payer_locks",
        "a lock is paid only by the payer bound in it, with the agreed token and amount, into the agreed escrow",
    ),
    (
        "time_windows_respected",
        "nothing is fulfilled before its time lock or from its time out on; only timed-out conditions are aborted (escrow: only by refund); service conditions always time out",
    ),
    (
        "service_implies_lock",
        "an access or compute condition is Fulfilled only if its lock is Fulfilled",
    ),
    (
        "fee_is_configured_bps",
        "the fee of an agreement is floor(price x bps / 10000) for the rate in force, bps never above 1000, and a release accrues exactly that fee",
    ),
    (
        "ids_unique",
        "no agreement id and no condition id is created twice",
    ),
    (
        "escrow_solvency",
        "for every token the escrow holds at least what it owes: locked and unsettled payments, pending credits, accrued fees",
    ),
    (
        "conservation",
        "tokens and ETH are neither created nor destroyed across all holders, except mints and the burns of the fee-on-transfer token",
    ),
    (
        "model_agrees_with_evm",
        "every call succeeds or fails (with the same error) as the reference model predicts, and the state afterwards is the model's",
    ),
];

/// The names of all invariants, in checking order.
pub fn names() -> Vec<&'static str> {
    INVARIANTS.iter().map(|(name, _)| *name).collect()
}

/// A broken invariant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// Its name (one of [`INVARIANTS`]).
    pub invariant: String,
    /// What exactly was seen.
    pub message: String,
}

impl Violation {
    /// A violation of `invariant`.
    pub fn new(invariant: &str, message: impl Into<String>) -> Self {
        Self {
            invariant: invariant.to_owned(),
            message: message.into(),
        }
    }
}

/// What a step did on the EVM.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// `None` on success, else the error's name (see `model::ErrorName`).
    pub error: Option<String>,
    /// Logs of a successful transaction.
    pub logs: Vec<Log>,
    /// Block time the step ran at.
    pub timestamp: u64,
}

/// An agreement made by the access or compute template, as its events describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deal {
    /// Access or compute.
    pub service: Service,
    /// Agreement id.
    pub agreement: B256,
    /// Asset.
    pub did: B256,
    /// Consumer and payer.
    pub consumer: Address,
    /// Payment terms (fee included).
    pub payment: Payment,
    /// Lock condition.
    pub lock: B256,
    /// Service condition.
    pub service_id: B256,
    /// Escrow condition.
    pub escrow: B256,
    /// Service time out in seconds.
    pub timeout: u32,
}

/// A generic agreement made through the passthrough template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenericDeal {
    /// Agreement id.
    pub agreement: B256,
    /// Its conditions with what they are.
    pub conditions: Vec<(B256, Generic)>,
}

/// A condition as the ghost knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GhostCond {
    /// Owning contract.
    pub contract: Address,
    /// Last state seen.
    pub state: CondState,
    /// Absolute time lock.
    pub time_lock: u64,
    /// Absolute time out.
    pub time_out: u64,
}

#[derive(Debug, Clone)]
struct Pending {
    did: B256,
    consumer: Address,
    template: Address,
    ids: Vec<B256>,
}

/// What one step touched, gathered while its logs are read.
#[derive(Debug, Default)]
struct StepAcc {
    touched: Vec<B256>,
    escrow_tokens: Vec<Address>,
    escrow_changes: Vec<(B256, CondState)>,
    payouts: Vec<B256>,
}

/// Position of an invariant in [`INVARIANTS`] (unknown names last).
fn priority(invariant: &str) -> usize {
    INVARIANTS
        .iter()
        .position(|(name, _)| *name == invariant)
        .unwrap_or(INVARIANTS.len())
}

/// Ghost state built from the EVM's events and views, and the dictionary of values seen.
#[derive(Debug, Clone)]
pub struct Ghost {
    a: Arc<Addrs>,
    holders: Vec<(Address, U256)>,
    escrow_slot: U256,
    /// Conditions seen created.
    pub conds: HashMap<B256, GhostCond>,
    agreements: HashSet<B256>,
    /// Template agreements in creation order.
    pub deals: Vec<Deal>,
    by_lock: HashMap<B256, usize>,
    by_service: HashMap<B256, usize>,
    by_escrow: HashMap<B256, usize>,
    /// Generic agreements in creation order.
    pub generics: Vec<GenericDeal>,
    pending: HashMap<B256, Pending>,
    settled: HashMap<B256, u32>,
    locked: HashMap<Address, U256>,
    credits: HashMap<Address, U256>,
    credit_of: HashMap<(Address, Address), U256>,
    fees: HashMap<Address, U256>,
    minted: HashMap<Address, U256>,
    burned: HashMap<Address, U256>,
    initial: HashMap<Address, U256>,
    fee: (Address, u16),
    /// Time locks and time outs seen (absolute), for warps onto boundaries.
    pub times: BTreeSet<u64>,
    /// Amounts seen in terms, events and credits.
    pub amounts: Vec<U256>,
    /// Assets seen registered (the environment's first).
    pub dids: Vec<B256>,
    /// Seeds used in creations and registrations.
    pub seeds: Vec<B256>,
    /// Preimages and messages of generic conditions.
    pub secrets: Vec<Bytes>,
}

fn sum(map: &HashMap<Address, U256>, key: Address) -> U256 {
    map.get(&key).copied().unwrap_or_default()
}

impl Ghost {
    /// The ghost of a freshly built environment.
    pub fn new(env: &Env) -> Self {
        let a = env.addrs.clone();
        let holders: Vec<(Address, U256)> = env.holder_slots().to_vec();
        let mut ghost = Self {
            escrow_slot: balance_slot(env.suite.escrow_payment),
            a,
            holders,
            conds: HashMap::new(),
            agreements: HashSet::new(),
            deals: Vec::new(),
            by_lock: HashMap::new(),
            by_service: HashMap::new(),
            by_escrow: HashMap::new(),
            generics: Vec::new(),
            pending: HashMap::new(),
            settled: HashMap::new(),
            locked: HashMap::new(),
            credits: HashMap::new(),
            credit_of: HashMap::new(),
            fees: HashMap::new(),
            minted: HashMap::new(),
            burned: HashMap::new(),
            initial: HashMap::new(),
            fee: (env.fee_receiver, super::env::INITIAL_FEE_BPS),
            times: BTreeSet::new(),
            amounts: vec![
                U256::from(1),
                U256::from(99),
                U256::from(100),
                U256::from(1_000),
            ],
            dids: env.dids.to_vec(),
            seeds: Vec::new(),
            secrets: Vec::new(),
        };
        for (&kind, &token) in &env.tokens {
            let _ = kind;
            let total = ghost.total(env, token);
            ghost.initial.insert(token, total);
        }
        ghost
    }

    /// Sum of the balances of every holder in `token` (zero: ETH).
    fn total(&self, env: &Env, token: Address) -> U256 {
        self.holders
            .iter()
            .map(|(h, slot)| {
                if token.is_zero() {
                    env.chain.balance(*h)
                } else {
                    env.chain.storage(token, *slot)
                }
            })
            .fold(U256::ZERO, |acc, x| acc.saturating_add(x))
    }

    fn escrow_balance(&self, env: &Env, token: Address) -> U256 {
        if token.is_zero() {
            env.chain.balance(self.a.suite().escrow_payment)
        } else {
            env.chain.storage(token, self.escrow_slot)
        }
    }

    /// The deal whose lock, service or escrow condition is `id`.
    pub fn deal_of_condition(&self, id: B256) -> Option<&Deal> {
        self.by_lock
            .get(&id)
            .or_else(|| self.by_service.get(&id))
            .or_else(|| self.by_escrow.get(&id))
            .map(|&i| &self.deals[i])
    }

    fn state(&self, id: B256) -> CondState {
        self.conds
            .get(&id)
            .map_or(CondState::Uninitialized, |c| c.state)
    }

    /// Checks one step's outcome and updates the ghost. Every invariant is checked; the
    /// violation reported is the first broken one in the order of [`INVARIANTS`].
    pub fn observe(
        &mut self,
        env: &mut Env,
        step: &Step,
        outcome: &Outcome,
    ) -> Result<(), Violation> {
        let mut acc = StepAcc {
            touched: step.call.mentioned_ids(),
            ..StepAcc::default()
        };
        let mut found: Vec<Violation> = Vec::new();
        self.learn_step(step);
        for log in &outcome.logs {
            if let Err(violation) = self.one_log(env, step, outcome, log, &mut acc) {
                found.push(violation);
            }
        }
        // An escrow condition changes state exactly when it pays out.
        for (id, state) in &acc.escrow_changes {
            if !acc.payouts.contains(id) {
                found.push(Violation::new(
                    "settlement_exactly_once",
                    format!("escrow condition {id} moved to {state:?} without paying anyone"),
                ));
            }
        }
        self.check_balances(env, &mut found);
        acc.escrow_tokens.sort();
        acc.escrow_tokens.dedup();
        for token in acc.escrow_tokens {
            if let Err(violation) = self.check_books(env, token) {
                found.push(violation);
            }
        }
        if let Err(violation) = self.check_states(env, acc.touched.into_iter()) {
            found.push(violation);
        }
        match found.into_iter().min_by_key(|v| priority(&v.invariant)) {
            Some(violation) => Err(violation),
            None => Ok(()),
        }
    }

    fn one_log(
        &mut self,
        env: &mut Env,
        step: &Step,
        outcome: &Outcome,
        log: &Log,
        acc: &mut StepAcc,
    ) -> Result<(), Violation> {
        let now = outcome.timestamp;
        let s = *self.a.suite();
        let Some(topic0) = log.topics().first().copied() else {
            return Ok(());
        };
        let from = log.address;
        if from == s.agreement_store {
            if topic0 == AgreementStore::AgreementCreated::SIGNATURE_HASH {
                let e = decode::<AgreementStore::AgreementCreated>(log)?;
                self.on_created(env, step, &e)?;
                acc.touched.extend(e.conditionIds.iter().copied());
            } else if topic0 == AgreementStore::ConditionFulfilled::SIGNATURE_HASH {
                let e = decode::<AgreementStore::ConditionFulfilled>(log)?;
                self.on_state(
                    e.conditionId,
                    e.conditionContract,
                    CondState::Fulfilled,
                    now,
                )?;
                acc.touched.push(e.conditionId);
                if e.conditionContract == s.escrow_payment {
                    acc.escrow_changes
                        .push((e.conditionId, CondState::Fulfilled));
                }
            } else if topic0 == AgreementStore::ConditionAborted::SIGNATURE_HASH {
                let e = decode::<AgreementStore::ConditionAborted>(log)?;
                self.on_state(e.conditionId, e.conditionContract, CondState::Aborted, now)?;
                acc.touched.push(e.conditionId);
                if e.conditionContract == s.escrow_payment {
                    acc.escrow_changes.push((e.conditionId, CondState::Aborted));
                }
            }
        } else if from == s.access_template || from == s.compute_template {
            if topic0 == ServiceTemplate::AgreementTerms::SIGNATURE_HASH {
                let e = decode::<ServiceTemplate::AgreementTerms>(log)?;
                self.on_terms(from, &e, now)?;
            }
        } else if from == s.access || from == s.compute_execution {
            let (did, provider, id) = if topic0 == AccessCondition::AccessGranted::SIGNATURE_HASH {
                let e = decode::<AccessCondition::AccessGranted>(log)?;
                (e.did, e.provider, e.conditionId)
            } else if topic0 == ComputeExecutionCondition::ComputeExecuted::SIGNATURE_HASH {
                let e = decode::<ComputeExecutionCondition::ComputeExecuted>(log)?;
                (e.did, e.provider, e.conditionId)
            } else {
                return Ok(());
            };
            let can = env
                .chain
                .call(
                    s.asset_registry,
                    &AssetRegistry::canServeCall {
                        did,
                        account: provider,
                    },
                )
                .unwrap_or(false);
            if !can {
                return Err(Violation::new(
                    "only_servers_fulfil",
                    format!(
                        "{} fulfilled service condition {id} of asset {did} but may not serve it",
                        env.name(provider)
                    ),
                ));
            }
        } else if from == s.lock_payment {
            if topic0 == LockPaymentCondition::PaymentLocked::SIGNATURE_HASH {
                let e = decode::<LockPaymentCondition::PaymentLocked>(log)?;
                self.on_locked(env, step, outcome, &e)?;
            } else if topic0 == LockPaymentCondition::NetworkFeeSet::SIGNATURE_HASH {
                let e = decode::<LockPaymentCondition::NetworkFeeSet>(log)?;
                if e.bps > 1_000 {
                    return Err(Violation::new(
                        "fee_is_configured_bps",
                        format!("network fee set to {} bps, above the 1000 bps cap", e.bps),
                    ));
                }
                self.fee = (e.receiver, e.bps);
            }
        } else if from == s.escrow_payment {
            if topic0 == EscrowPaymentCondition::PaymentReleased::SIGNATURE_HASH {
                let e = decode::<EscrowPaymentCondition::PaymentReleased>(log)?;
                acc.escrow_tokens.push(e.token);
                acc.payouts.push(e.conditionId);
                self.on_released(env, &e)?;
            } else if topic0 == EscrowPaymentCondition::PaymentRefunded::SIGNATURE_HASH {
                let e = decode::<EscrowPaymentCondition::PaymentRefunded>(log)?;
                acc.escrow_tokens.push(e.token);
                acc.payouts.push(e.conditionId);
                self.on_refunded(env, &e)?;
            } else if topic0 == EscrowPaymentCondition::PaymentCredited::SIGNATURE_HASH {
                let e = decode::<EscrowPaymentCondition::PaymentCredited>(log)?;
                acc.escrow_tokens.push(e.token);
                *self.credits.entry(e.token).or_default() += e.amount;
                *self.credit_of.entry((e.token, e.account)).or_default() += e.amount;
                self.amounts.push(e.amount);
            } else if topic0 == EscrowPaymentCondition::CreditWithdrawn::SIGNATURE_HASH {
                let e = decode::<EscrowPaymentCondition::CreditWithdrawn>(log)?;
                acc.escrow_tokens.push(e.token);
                let own = self
                    .credit_of
                    .get(&(e.token, e.account))
                    .copied()
                    .unwrap_or_default();
                if own < e.amount {
                    return Err(Violation::new(
                        "escrow_solvency",
                        format!(
                            "{} withdrew {} of {} but was credited only {own}",
                            env.name(e.account),
                            e.amount,
                            token_name(env, e.token)
                        ),
                    ));
                }
                self.credit_of.insert((e.token, e.account), own - e.amount);
                let owed = sum(&self.credits, e.token);
                self.credits.insert(e.token, owed.saturating_sub(e.amount));
            } else if topic0 == EscrowPaymentCondition::FeesWithdrawn::SIGNATURE_HASH {
                let e = decode::<EscrowPaymentCondition::FeesWithdrawn>(log)?;
                acc.escrow_tokens.push(e.token);
                let owed = sum(&self.fees, e.token);
                if owed < e.amount {
                    return Err(Violation::new(
                        "escrow_solvency",
                        format!("fees of {} withdrawn while only {owed} accrued", e.amount),
                    ));
                }
                self.fees.insert(e.token, owed - e.amount);
            }
        } else if from == s.asset_registry {
            if topic0 == AssetRegistry::AssetRegistered::SIGNATURE_HASH {
                let e = decode::<AssetRegistry::AssetRegistered>(log)?;
                if !self.dids.contains(&e.did) {
                    self.dids.push(e.did);
                }
            }
        } else if self.a.kind_of(from).is_some() && topic0 == MockERC20::Transfer::SIGNATURE_HASH {
            let e = decode::<MockERC20::Transfer>(log)?;
            if e.from.is_zero() {
                *self.minted.entry(from).or_default() += e.value;
            }
            // OpenZeppelin tokens burn on a transfer to zero; `NoReturnToken` keeps the
            // zero address's balance like any other (it is one of the holders).
            if e.to.is_zero() && self.a.kind_of(from) != Some(TokenKind::NoReturn) {
                *self.burned.entry(from).or_default() += e.value;
            }
        }
        Ok(())
    }

    /// Compares the ghost's condition states with the store for `ids` (all known ones at the end
    /// of a sequence): a difference means a state changed without its event, or moved back.
    pub fn check_states(
        &self,
        env: &mut Env,
        ids: impl Iterator<Item = B256>,
    ) -> Result<(), Violation> {
        let store = self.a.suite().agreement_store;
        let mut seen = HashSet::new();
        for id in ids {
            if !seen.insert(id) {
                continue;
            }
            let ghost = self.state(id);
            let actual = env
                .chain
                .call(
                    store,
                    &AgreementStore::conditionStateCall { conditionId: id },
                )
                .map(CondState::from_u8)
                .unwrap_or(CondState::Uninitialized);
            if actual != ghost {
                return Err(Violation::new(
                    "states_only_move_forward",
                    format!(
                        "condition {id} is {actual:?} in the store, but its events left it {ghost:?}"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Every condition the ghost knows.
    pub fn all_conditions(&self) -> Vec<B256> {
        let mut ids: Vec<B256> = self.conds.keys().copied().collect();
        ids.sort();
        ids
    }

    /// Solvency by the escrow's own books, after a step that moved its accounts of `token`: it
    /// must hold what is locked plus what its `totalCredits` and `accruedFees` say it owes.
    fn check_books(&self, env: &mut Env, token: Address) -> Result<(), Violation> {
        let escrow = self.a.suite().escrow_payment;
        let credits = env
            .chain
            .call(escrow, &EscrowPaymentCondition::totalCreditsCall { token })
            .unwrap_or_default();
        let fees = env
            .chain
            .call(escrow, &EscrowPaymentCondition::accruedFeesCall { token })
            .unwrap_or_default();
        let held = self.escrow_balance(env, token);
        let locked = sum(&self.locked, token);
        let owed = locked.saturating_add(credits).saturating_add(fees);
        if held < owed {
            return Err(Violation::new(
                "escrow_solvency",
                format!(
                    "the escrow holds {held} {} but its books owe {owed} (locked {locked}, totalCredits {credits}, accruedFees {fees})",
                    token_name(env, token)
                ),
            ));
        }
        Ok(())
    }

    fn check_balances(&self, env: &Env, found: &mut Vec<Violation>) {
        for kind in TokenKind::ALL {
            let token = self.a.token(kind);
            let held = self.escrow_balance(env, token);
            let owed = sum(&self.locked, token)
                .saturating_add(sum(&self.credits, token))
                .saturating_add(sum(&self.fees, token));
            if held < owed {
                found.push(Violation::new(
                    "escrow_solvency",
                    format!(
                        "the escrow holds {held} {} but owes {owed} (locked {}, credits {}, fees {})",
                        kind.name(),
                        sum(&self.locked, token),
                        sum(&self.credits, token),
                        sum(&self.fees, token)
                    ),
                ));
            }
            let total = self.total(env, token);
            let expected = sum(&self.initial, token)
                .saturating_add(sum(&self.minted, token))
                .saturating_sub(sum(&self.burned, token));
            if total != expected {
                found.push(Violation::new(
                    "conservation",
                    format!(
                        "all holders together have {total} {} where {expected} was expected (initial {}, minted {}, burned {})",
                        kind.name(),
                        sum(&self.initial, token),
                        sum(&self.minted, token),
                        sum(&self.burned, token)
                    ),
                ));
            }
        }
    }

    fn learn_step(&mut self, step: &Step) {
        match &step.call {
            Call::CreateAgreement { seed, terms, .. } => {
                self.seeds.push(*seed);
                self.amounts.extend(terms.amounts.iter().copied());
            }
            Call::Passthrough { seed, .. } | Call::Register { seed, .. } => self.seeds.push(*seed),
            Call::HashLockFulfil { preimage, .. } => self.secrets.push(preimage.clone()),
            _ => {}
        }
        if self.amounts.len() > 64 {
            self.amounts.drain(..32);
        }
    }

    fn on_created(
        &mut self,
        env: &mut Env,
        step: &Step,
        e: &AgreementStore::AgreementCreated,
    ) -> Result<(), Violation> {
        if !self.agreements.insert(e.agreementId) {
            return Err(Violation::new(
                "ids_unique",
                format!("agreement {} was created a second time", e.agreementId),
            ));
        }
        let store = self.a.suite().agreement_store;
        for id in &e.conditionIds {
            if self.conds.contains_key(id) {
                return Err(Violation::new(
                    "ids_unique",
                    format!("condition {id} was created a second time"),
                ));
            }
            let c = env
                .chain
                .call(
                    store,
                    &AgreementStore::getConditionCall { conditionId: *id },
                )
                .map_err(|err| {
                    Violation::new("model_agrees_with_evm", format!("getCondition: {err}"))
                })?;
            self.conds.insert(
                *id,
                GhostCond {
                    contract: c.conditionContract,
                    state: CondState::Unfulfilled,
                    time_lock: c.timeLock.to::<u64>(),
                    time_out: c.timeOut.to::<u64>(),
                },
            );
            for t in [c.timeLock.to::<u64>(), c.timeOut.to::<u64>()] {
                if t != 0 {
                    self.times.insert(t);
                }
            }
        }
        if e.template == self.a.passthrough {
            if let Call::Passthrough { specs, .. } = &step.call {
                self.generics.push(GenericDeal {
                    agreement: e.agreementId,
                    conditions: e
                        .conditionIds
                        .iter()
                        .copied()
                        .zip(specs.iter().map(|s| s.generic.clone()))
                        .collect(),
                });
            }
        } else {
            self.pending.insert(
                e.agreementId,
                Pending {
                    did: e.did,
                    consumer: e.consumer,
                    template: e.template,
                    ids: e.conditionIds.clone(),
                },
            );
        }
        Ok(())
    }

    fn on_terms(
        &mut self,
        template: Address,
        e: &ServiceTemplate::AgreementTerms,
        now: u64,
    ) -> Result<(), Violation> {
        let s = *self.a.suite();
        let Some(p) = self.pending.remove(&e.agreementId) else {
            return Err(Violation::new(
                "ids_unique",
                format!(
                    "terms of agreement {} published without its creation",
                    e.agreementId
                ),
            ));
        };
        let price = e
            .amounts
            .iter()
            .fold(U256::ZERO, |acc, a| acc.saturating_add(*a));
        let expected = price.saturating_mul(U256::from(self.fee.1)) / U256::from(10_000u64);
        if e.fee != expected {
            return Err(Violation::new(
                "fee_is_configured_bps",
                format!(
                    "agreement {} binds a fee of {} on a price of {price}; {} bps make {expected}",
                    e.agreementId, e.fee, self.fee.1
                ),
            ));
        }
        let service = if template == s.access_template {
            Service::Access
        } else {
            Service::Compute
        };
        let payment = Payment {
            token: e.token,
            receivers: e.receivers.clone(),
            amounts: e.amounts.clone(),
            fee: e.fee,
        };
        let [lock, service_id, escrow] = p.ids[..] else {
            return Err(Violation::new(
                "ids_unique",
                format!("a template agreement with {} conditions", p.ids.len()),
            ));
        };
        let _ = p.template;
        // The template's ids must be the ones the lock, service and escrow derive.
        let expected_lock = ids::condition(
            e.agreementId,
            s.lock_payment,
            ids::lock_value(p.did, s.escrow_payment, p.consumer, &payment),
        );
        if expected_lock != lock {
            return Err(Violation::new(
                "ids_unique",
                format!(
                    "agreement {} has lock id {lock}, terms derive {expected_lock}",
                    e.agreementId
                ),
            ));
        }
        let svc = self.conds.get(&service_id).copied();
        if svc.is_none_or(|c| c.time_out == 0 || c.time_out > now + 90 * 24 * 3600) {
            return Err(Violation::new(
                "time_windows_respected",
                format!("service condition {service_id} has no finite time out within 90 days"),
            ));
        }
        if self.conds.get(&escrow).is_none_or(|c| c.time_out != 0) {
            return Err(Violation::new(
                "time_windows_respected",
                format!("escrow condition {escrow} can time out"),
            ));
        }
        let i = self.deals.len();
        self.deals.push(Deal {
            service,
            agreement: e.agreementId,
            did: p.did,
            consumer: p.consumer,
            payment,
            lock,
            service_id,
            escrow,
            timeout: e.serviceTimeout,
        });
        self.by_lock.insert(lock, i);
        self.by_service.insert(service_id, i);
        self.by_escrow.insert(escrow, i);
        Ok(())
    }

    /// A state change seen in an event: checked, and recorded whatever the verdict, so one
    /// broken rule does not make the later checks of the same step report another.
    fn on_state(
        &mut self,
        id: B256,
        by: Address,
        to: CondState,
        now: u64,
    ) -> Result<(), Violation> {
        let previous = self.conds.get(&id).copied();
        let verdict = self.check_transition(previous, id, by, to, now);
        if let Some(c) = self.conds.get_mut(&id) {
            c.state = to;
        }
        verdict
    }

    fn check_transition(
        &self,
        previous: Option<GhostCond>,
        id: B256,
        by: Address,
        to: CondState,
        now: u64,
    ) -> Result<(), Violation> {
        let s = *self.a.suite();
        let Some(c) = previous else {
            return Err(Violation::new(
                "states_only_move_forward",
                format!("condition {id} moved to {to:?} but was never created"),
            ));
        };
        if c.state != CondState::Unfulfilled {
            return Err(Violation::new(
                "states_only_move_forward",
                format!("condition {id} moved from {:?} to {to:?}", c.state),
            ));
        }
        if c.contract != by {
            return Err(Violation::new(
                "states_only_move_forward",
                format!(
                    "condition {id} of {} was moved to {to:?} by {by}",
                    c.contract
                ),
            ));
        }
        match to {
            CondState::Fulfilled => {
                if now < c.time_lock || (c.time_out != 0 && now >= c.time_out) {
                    return Err(Violation::new(
                        "time_windows_respected",
                        format!(
                            "condition {id} fulfilled at {now}, outside its window [{}, {})",
                            c.time_lock,
                            if c.time_out == 0 {
                                "never".to_owned()
                            } else {
                                c.time_out.to_string()
                            }
                        ),
                    ));
                }
                if let Some(&i) = self.by_service.get(&id) {
                    let lock = self.deals[i].lock;
                    if self.state(lock) != CondState::Fulfilled {
                        return Err(Violation::new(
                            "service_implies_lock",
                            format!(
                                "service condition {id} fulfilled while its lock {lock} is {:?}",
                                self.state(lock)
                            ),
                        ));
                    }
                }
            }
            _ => {
                // The suite's condition contracts abort only timed-out conditions (the escrow
                // only by refund, checked with its payout). A generic condition owned by any
                // other account is that account's to abort: the store allows it by design.
                let suite_condition = self.a.condition_contracts().contains(&by);
                if suite_condition
                    && by != s.escrow_payment
                    && (c.time_out == 0 || now < c.time_out)
                {
                    return Err(Violation::new(
                        "time_windows_respected",
                        format!(
                            "condition {id} aborted at {now} before timing out ({})",
                            if c.time_out == 0 {
                                "never times out".to_owned()
                            } else {
                                c.time_out.to_string()
                            }
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn on_locked(
        &mut self,
        env: &Env,
        step: &Step,
        outcome: &Outcome,
        e: &LockPaymentCondition::PaymentLocked,
    ) -> Result<(), Violation> {
        let s = *self.a.suite();
        if let Some(&i) = self.by_lock.get(&e.conditionId) {
            let deal = &self.deals[i];
            let total = deal.payment.total().unwrap_or(U256::MAX);
            if e.payer != deal.consumer
                || e.token != deal.payment.token
                || e.amount != total
                || e.escrow != s.escrow_payment
            {
                return Err(Violation::new(
                    "only_payer_locks",
                    format!(
                        "lock {} paid by {} with {} of {} into {}; agreed: {} pays {total} of {} into the escrow",
                        e.conditionId,
                        env.name(e.payer),
                        e.amount,
                        token_name(env, e.token),
                        env.name(e.escrow),
                        env.name(deal.consumer),
                        token_name(env, deal.payment.token)
                    ),
                ));
            }
        }
        let paid = if e.token.is_zero() {
            env.addrs.actors.get(&step.actor) == Some(&e.payer) && step.call.value() == e.amount
        } else {
            outcome.logs.iter().any(|log| {
                log.address == e.token
                    && log.topics().first() == Some(&MockERC20::Transfer::SIGNATURE_HASH)
                    && MockERC20::Transfer::decode_log_data(&log.data)
                        .is_ok_and(|t| t.from == e.payer && t.to == e.escrow && t.value == e.amount)
            })
        };
        if !paid {
            let how = if e.token.is_zero() {
                format!(
                    "the transaction of {} sent {} wei",
                    env.name(env.address(step.actor)),
                    step.call.value()
                )
            } else {
                format!(
                    "no transfer of that amount from {} to the escrow",
                    env.name(e.payer)
                )
            };
            return Err(Violation::new(
                "only_payer_locks",
                format!(
                    "lock {} reports {} of {} paid by {}, but {how}",
                    e.conditionId,
                    e.amount,
                    token_name(env, e.token),
                    env.name(e.payer)
                ),
            ));
        }
        if e.escrow == s.escrow_payment {
            *self.locked.entry(e.token).or_default() += e.amount;
        }
        Ok(())
    }

    fn settle_once(&mut self, id: B256) -> Result<(), Violation> {
        let n = self.settled.entry(id).or_default();
        *n += 1;
        if *n > 1 {
            return Err(Violation::new(
                "settlement_exactly_once",
                format!("escrow condition {id} paid out {n} times"),
            ));
        }
        Ok(())
    }

    fn on_released(
        &mut self,
        env: &Env,
        e: &EscrowPaymentCondition::PaymentReleased,
    ) -> Result<(), Violation> {
        self.settle_once(e.conditionId)?;
        let Some(&i) = self.by_escrow.get(&e.conditionId) else {
            return Err(Violation::new(
                "release_implies_fulfilled",
                format!(
                    "released escrow condition {} that no template created",
                    e.conditionId
                ),
            ));
        };
        let deal = self.deals[i].clone();
        for (what, id) in [("lock", deal.lock), ("release condition", deal.service_id)] {
            if self.state(id) != CondState::Fulfilled {
                return Err(Violation::new(
                    "release_implies_fulfilled",
                    format!(
                        "escrow {} released while its {what} {id} is {:?}",
                        e.conditionId,
                        self.state(id)
                    ),
                ));
            }
        }
        if e.fee != deal.payment.fee {
            return Err(Violation::new(
                "fee_is_configured_bps",
                format!(
                    "release accrued a fee of {}, the agreement binds {}",
                    e.fee, deal.payment.fee
                ),
            ));
        }
        let price = deal
            .payment
            .amounts
            .iter()
            .fold(U256::ZERO, |a, b| a.saturating_add(*b));
        if e.amount != price || e.token != deal.payment.token {
            return Err(Violation::new(
                "escrow_solvency",
                format!(
                    "release paid {} of {}, the agreement locked {price} of {}",
                    e.amount,
                    token_name(env, e.token),
                    token_name(env, deal.payment.token)
                ),
            ));
        }
        self.unlock(env, e.token, e.amount.saturating_add(e.fee))?;
        *self.fees.entry(e.token).or_default() += e.fee;
        Ok(())
    }

    fn on_refunded(
        &mut self,
        env: &Env,
        e: &EscrowPaymentCondition::PaymentRefunded,
    ) -> Result<(), Violation> {
        self.settle_once(e.conditionId)?;
        let Some(&i) = self.by_escrow.get(&e.conditionId) else {
            return Err(Violation::new(
                "refund_implies_aborted",
                format!(
                    "refunded escrow condition {} that no template created",
                    e.conditionId
                ),
            ));
        };
        let deal = self.deals[i].clone();
        if self.state(deal.lock) != CondState::Fulfilled
            || self.state(deal.service_id) != CondState::Aborted
        {
            return Err(Violation::new(
                "refund_implies_aborted",
                format!(
                    "escrow {} refunded while its lock is {:?} and its service condition {:?}",
                    e.conditionId,
                    self.state(deal.lock),
                    self.state(deal.service_id)
                ),
            ));
        }
        let total = deal.payment.total().unwrap_or(U256::MAX);
        if e.payer != deal.consumer || e.amount != total || e.token != deal.payment.token {
            return Err(Violation::new(
                "escrow_solvency",
                format!(
                    "refund paid {} to {}, the agreement locked {total} from {}",
                    e.amount,
                    env.name(e.payer),
                    env.name(deal.consumer)
                ),
            ));
        }
        self.unlock(env, e.token, e.amount)
    }

    fn unlock(&mut self, env: &Env, token: Address, amount: U256) -> Result<(), Violation> {
        let locked = sum(&self.locked, token);
        if locked < amount {
            return Err(Violation::new(
                "escrow_solvency",
                format!(
                    "the escrow paid out {amount} of {} while only {locked} was locked and unsettled",
                    token_name(env, token)
                ),
            ));
        }
        self.locked.insert(token, locked - amount);
        Ok(())
    }
}

fn decode<E: SolEvent>(log: &Log) -> Result<E, Violation> {
    E::decode_log(log)
        .map(|decoded| decoded.data)
        .map_err(|err| {
            Violation::new(
                "model_agrees_with_evm",
                format!("undecodable {} log: {err}", E::SIGNATURE),
            )
        })
}

fn token_name(env: &Env, token: Address) -> String {
    env.token_kind(token)
        .map_or_else(|| env.name(token), |kind| kind.name().to_owned())
}

impl Call {
    /// The condition and agreement ids a call names.
    pub fn mentioned_ids(&self) -> Vec<B256> {
        match self {
            Call::StoreFulfil { condition }
            | Call::StoreAbort { condition }
            | Call::AbortTimedOut { condition, .. } => vec![*condition],
            Call::Fulfil { lock, .. } | Call::FulfilAndRelease { lock, .. } => vec![*lock],
            Call::Release {
                release_conditions, ..
            }
            | Call::Refund {
                release_conditions, ..
            } => release_conditions.clone(),
            Call::ThresholdFulfil { inputs, .. } => inputs.clone(),
            Call::ArmToken { inner: Some(inner) } | Call::ArmAttacker { inner: Some(inner) } => {
                inner.mentioned_ids()
            }
            _ => Vec::new(),
        }
    }
}
