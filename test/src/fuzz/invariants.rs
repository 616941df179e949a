//! The named invariants of the protocol (see `docs/fuzzing.md`), checked after every step from
//! what the EVM did: the receipt's events, the store's views and the token balances.
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
    AccessCondition, AgreementStore, AssetRegistry, ComputeExecutionCondition, MockERC20,
    PaymentCondition, ServiceTemplate,
};
use serde::{Deserialize, Serialize};

use super::actions::{Call, Generic, Payment, Service, Spec, Step};
use super::env::{Addrs, Env, TokenKind, balance_slot};
use super::model::{CondState, ids};

/// Every invariant the fuzzer checks, with what it means. The order is the order of the checks:
/// the first one broken by a step is the one reported.
pub const INVARIANTS: &[(&str, &str)] = &[
    (
        "settlement_exactly_once",
        "a payment (lock) is settled once: released or refunded, never both, never twice, and its condition never reaches Released or Refunded without paying out",
    ),
    (
        "release_implies_fulfilled",
        "a payment is released only while it is paid (Fulfilled) and the service condition that releases it is Fulfilled",
    ),
    (
        "refund_implies_aborted",
        "a payment is refunded only while it is paid (Fulfilled) and the service condition that releases it is Aborted or does not exist",
    ),
    (
        "states_only_move_forward",
        "condition states move Unfulfilled -> Fulfilled | Aborted once, only through their own condition contract, and a paid payment Fulfilled -> Released | Refunded once; never without an event",
    ),
    (
        "only_servers_fulfil",
        "access and compute conditions are fulfilled only by the asset's owner, a provider or a delegate",
    ),
    (
        "only_payer_locks",
        "a payment is paid only by the payer bound in it, with the agreed token and amount, into the payment condition",
    ),
    (
        "time_windows_respected",
        "nothing is fulfilled before its time lock or from its time out on; the suite's conditions are aborted only once timed out; a template's service condition always times out, within 90 days, and its payment window is half of it",
    ),
    (
        "service_implies_lock",
        "an access or compute condition becomes Fulfilled only while the payment it releases is paid (Fulfilled)",
    ),
    (
        "fee_is_configured_bps",
        "the fee of an agreement is floor(price x bps / 10000) for the rate in force, bps never above 1000, and a release accrues exactly that fee",
    ),
    (
        "ids_unique",
        "no agreement id and no condition id is created twice; a template's payment id is the one its terms derive",
    ),
    (
        "escrow_solvency",
        "for every token the payment condition holds at least what it owes: paid and unsettled payments, pending credits, accrued fees; nobody withdraws more than was credited; a settlement pays exactly what was paid in",
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

/// A payment condition whose terms the ghost knows (from a template's `AgreementTerms`, or from
/// the specs a step gave the rogue template), with the service condition that releases it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deal {
    /// Access or compute, when the releasing service contract is one of the suite's.
    pub service: Option<Service>,
    /// The service contract bound in the payment.
    pub service_contract: Address,
    /// Agreement id.
    pub agreement: B256,
    /// Asset.
    pub did: B256,
    /// Consumer and payer.
    pub consumer: Address,
    /// Payment terms (fee included).
    pub payment: Payment,
    /// Payment condition.
    pub payment_id: B256,
    /// The service condition that releases the payment (derived; it may not exist).
    pub service_id: B256,
    /// Service time out in seconds (0 for the rogue template's agreements).
    pub timeout: u32,
    /// Made by the access or compute template.
    pub template: bool,
}

/// An agreement made by the passthrough or rogue template, with its conditions.
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
    ids: Vec<B256>,
    created: u64,
}

/// What one step touched, gathered while its logs are read.
#[derive(Debug, Default)]
struct StepAcc {
    touched: Vec<B256>,
    escrow_tokens: Vec<Address>,
    /// (token, account) whose credit moved.
    credited: Vec<(Address, Address)>,
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
    /// Payments with known terms, in creation order.
    pub deals: Vec<Deal>,
    by_payment: HashMap<B256, usize>,
    /// Service conditions (of templates and of the rogue template's specs) to the payment each
    /// releases.
    service_of: HashMap<B256, B256>,
    /// Agreements of the passthrough and rogue templates in creation order.
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
    /// The specs the rogue template was last scripted with.
    script: Vec<Spec>,
    /// The calls the re-entrant token and the attacker were last armed with (in that order):
    /// they run in later steps.
    armed: [Option<Call>; 2],
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
            escrow_slot: balance_slot(env.suite.payment),
            a,
            holders,
            conds: HashMap::new(),
            agreements: HashSet::new(),
            deals: Vec::new(),
            by_payment: HashMap::new(),
            service_of: HashMap::new(),
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
            script: Vec::new(),
            armed: [None, None],
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
        for &token in env.tokens.values() {
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
            env.chain.balance(self.a.suite().payment)
        } else {
            env.chain.storage(token, self.escrow_slot)
        }
    }

    /// The deal whose payment or service condition is `id`.
    pub fn deal_of_condition(&self, id: B256) -> Option<&Deal> {
        let payment = self.service_of.get(&id).copied().unwrap_or(id);
        self.by_payment.get(&payment).map(|&i| &self.deals[i])
    }

    /// The state the ghost last saw for a condition.
    pub fn state(&self, id: B256) -> CondState {
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
            touched: step.call.mentioned_ids(&self.a),
            ..StepAcc::default()
        };
        let mut found: Vec<Violation> = Vec::new();
        self.learn_step(step, outcome);
        for log in &outcome.logs {
            if let Err(violation) = self.one_log(env, step, outcome, log, &mut acc) {
                found.push(violation);
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
        acc.credited.sort();
        acc.credited.dedup();
        for (token, account) in acc.credited {
            if let Err(violation) = self.check_credit(env, token, account) {
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
                acc.touched.extend(e.conditionIds.iter().copied());
                self.on_created(env, step, &e, now)?;
            } else if topic0 == AgreementStore::ConditionFulfilled::SIGNATURE_HASH {
                let e = decode::<AgreementStore::ConditionFulfilled>(log)?;
                acc.touched.push(e.conditionId);
                let verdict = self.on_state(
                    e.conditionId,
                    e.conditionContract,
                    CondState::Fulfilled,
                    now,
                );
                if e.conditionContract == s.payment {
                    acc.escrow_tokens.extend(
                        self.deal_of_condition(e.conditionId)
                            .map(|d| d.payment.token),
                    );
                    // Checked whatever the verdict above, so that the books stay right.
                    let paid = self.on_paid(env, step, outcome, e.conditionId);
                    verdict?;
                    paid?;
                } else {
                    verdict?;
                }
            } else if topic0 == AgreementStore::ConditionAborted::SIGNATURE_HASH {
                let e = decode::<AgreementStore::ConditionAborted>(log)?;
                acc.touched.push(e.conditionId);
                self.on_state(e.conditionId, e.conditionContract, CondState::Aborted, now)?;
            }
        } else if from == s.access_template || from == s.compute_template {
            if topic0 == ServiceTemplate::AgreementTerms::SIGNATURE_HASH {
                let e = decode::<ServiceTemplate::AgreementTerms>(log)?;
                self.on_terms(from, &e)?;
            }
        } else if from == s.access || from == s.compute_execution {
            let (did, provider, agreement) =
                if topic0 == AccessCondition::AccessGranted::SIGNATURE_HASH {
                    let e = decode::<AccessCondition::AccessGranted>(log)?;
                    (e.did, e.provider, e.agreementId)
                } else if topic0 == ComputeExecutionCondition::ComputeExecuted::SIGNATURE_HASH {
                    let e = decode::<ComputeExecutionCondition::ComputeExecuted>(log)?;
                    (e.did, e.provider, e.agreementId)
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
                        "{} served agreement {agreement} on asset {did} but may not serve it",
                        env.name(provider)
                    ),
                ));
            }
        } else if from == s.payment {
            if topic0 == PaymentCondition::NetworkFeeSet::SIGNATURE_HASH {
                let e = decode::<PaymentCondition::NetworkFeeSet>(log)?;
                if e.bps > 1_000 {
                    return Err(Violation::new(
                        "fee_is_configured_bps",
                        format!("network fee set to {} bps, above the 1000 bps cap", e.bps),
                    ));
                }
                self.fee = (e.receiver, e.bps);
            } else if topic0 == PaymentCondition::PaymentReleased::SIGNATURE_HASH {
                let e = decode::<PaymentCondition::PaymentReleased>(log)?;
                acc.escrow_tokens.push(e.token);
                let id = self.settled_payment(step, e.agreementId, e.token, e.amount, Some(e.fee));
                acc.touched.extend(id);
                self.on_released(env, &e, id)?;
            } else if topic0 == PaymentCondition::PaymentRefunded::SIGNATURE_HASH {
                let e = decode::<PaymentCondition::PaymentRefunded>(log)?;
                acc.escrow_tokens.push(e.token);
                let id = self.settled_payment(step, e.agreementId, e.token, e.amount, None);
                acc.touched.extend(id);
                self.on_refunded(env, &e, id)?;
            } else if topic0 == PaymentCondition::PaymentCredited::SIGNATURE_HASH {
                let e = decode::<PaymentCondition::PaymentCredited>(log)?;
                acc.escrow_tokens.push(e.token);
                acc.credited.push((e.token, e.account));
                *self.credits.entry(e.token).or_default() += e.amount;
                *self.credit_of.entry((e.token, e.account)).or_default() += e.amount;
                self.amounts.push(e.amount);
            } else if topic0 == PaymentCondition::CreditWithdrawn::SIGNATURE_HASH {
                let e = decode::<PaymentCondition::CreditWithdrawn>(log)?;
                acc.escrow_tokens.push(e.token);
                acc.credited.push((e.token, e.account));
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
            } else if topic0 == PaymentCondition::FeesWithdrawn::SIGNATURE_HASH {
                let e = decode::<PaymentCondition::FeesWithdrawn>(log)?;
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
                let settled = matches!(actual, CondState::Released | CondState::Refunded);
                return Err(Violation::new(
                    if settled {
                        "settlement_exactly_once"
                    } else {
                        "states_only_move_forward"
                    },
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

    /// Solvency by the payment condition's own books, after a step that moved its accounts of
    /// `token`: it must hold what is paid in plus what its `totalCredits` and `accruedFees` say
    /// it owes.
    fn check_books(&self, env: &mut Env, token: Address) -> Result<(), Violation> {
        let escrow = self.a.suite().payment;
        let credits = env
            .chain
            .call(escrow, &PaymentCondition::totalCreditsCall { token })
            .unwrap_or_default();
        let fees = env
            .chain
            .call(escrow, &PaymentCondition::accruedFeesCall { token })
            .unwrap_or_default();
        let held = self.escrow_balance(env, token);
        let locked = sum(&self.locked, token);
        let owed = locked.saturating_add(credits).saturating_add(fees);
        if held < owed {
            return Err(Violation::new(
                "escrow_solvency",
                format!(
                    "the payment condition holds {held} {} but its books owe {owed} (paid in {locked}, totalCredits {credits}, accruedFees {fees})",
                    token_name(env, token)
                ),
            ));
        }
        Ok(())
    }

    /// The payment condition's record of what it owes `account` in `token` is what was credited
    /// to it and not withdrawn: a credit withdrawn but still on the books can be withdrawn again.
    fn check_credit(
        &self,
        env: &mut Env,
        token: Address,
        account: Address,
    ) -> Result<(), Violation> {
        let escrow = self.a.suite().payment;
        let books = env
            .chain
            .call(escrow, &PaymentCondition::creditsCall { token, account })
            .unwrap_or_default();
        let owed = self
            .credit_of
            .get(&(token, account))
            .copied()
            .unwrap_or_default();
        if books != owed {
            return Err(Violation::new(
                "escrow_solvency",
                format!(
                    "the payment condition's books owe {} {books} {}, but it was credited {owed} more than it withdrew",
                    env.name(account),
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
                        "the payment condition holds {held} {} but owes {owed} (paid in {}, credits {}, fees {})",
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

    fn learn_step(&mut self, step: &Step, outcome: &Outcome) {
        match &step.call {
            Call::CreateAgreement { seed, offer, .. }
            | Call::Pay { seed, offer, .. }
            | Call::PayWithPermit { seed, offer, .. } => {
                self.seeds.push(*seed);
                self.amounts.extend(offer.amounts.iter().copied());
            }
            Call::Passthrough { seed, .. }
            | Call::Register { seed, .. }
            | Call::RogueCreate { seed, .. } => self.seeds.push(*seed),
            Call::RogueScript { specs, .. } if outcome.error.is_none() => {
                self.script = specs.clone();
            }
            Call::ArmToken { inner } if outcome.error.is_none() => {
                self.armed[0] = inner.as_deref().cloned();
            }
            Call::ArmAttacker { inner } if outcome.error.is_none() => {
                self.armed[1] = inner.as_deref().cloned();
            }
            Call::HashLockFulfil { preimage, .. } => self.secrets.push(preimage.clone()),
            _ => {}
        }
        if self.amounts.len() > 64 {
            self.amounts.drain(..32);
        }
    }

    /// The condition specs a step may have given the passthrough or rogue template.
    fn candidate_specs(&self, call: &Call, out: &mut Vec<Vec<Spec>>) {
        match call {
            Call::Passthrough { specs, .. } | Call::RogueCreate { specs, .. } => {
                out.push(specs.clone());
            }
            Call::Pay { .. } | Call::PayWithPermit { .. } => out.push(self.script.clone()),
            Call::RogueExecute { inner, .. } => self.candidate_specs(inner, out),
            Call::ArmToken { inner: Some(inner) } | Call::ArmAttacker { inner: Some(inner) } => {
                self.candidate_specs(inner, out);
            }
            _ => {}
        }
    }

    fn on_created(
        &mut self,
        env: &mut Env,
        step: &Step,
        e: &AgreementStore::AgreementCreated,
        now: u64,
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
        if e.template != self.a.passthrough && e.template != self.a.rogue {
            self.pending.insert(
                e.agreementId,
                Pending {
                    did: e.did,
                    consumer: e.consumer,
                    ids: e.conditionIds.clone(),
                    created: now,
                },
            );
            return Ok(());
        }
        // The passthrough's or the rogue's: find the specs the step gave it.
        let mut candidates = Vec::new();
        self.candidate_specs(&step.call, &mut candidates);
        for call in self.armed.iter().flatten() {
            self.candidate_specs(call, &mut candidates);
        }
        let a = self.a.clone();
        let Some(specs) = candidates.into_iter().find(|specs| {
            specs.len() == e.conditionIds.len()
                && specs.iter().zip(&e.conditionIds).all(|(spec, id)| {
                    let (contract, hash) = spec.generic.contract_and_hash(&a);
                    ids::condition(e.agreementId, contract, hash) == *id
                })
        }) else {
            return Ok(());
        };
        for (spec, id) in specs.iter().zip(&e.conditionIds) {
            match &spec.generic {
                Generic::Payment {
                    did,
                    payer,
                    service,
                    payment,
                } => {
                    let service_id = ids::condition(
                        e.agreementId,
                        *service,
                        ids::service_value(*did, *payer, *id),
                    );
                    let kind = if *service == a.suite().access {
                        Some(Service::Access)
                    } else if *service == a.suite().compute_execution {
                        Some(Service::Compute)
                    } else {
                        None
                    };
                    self.add_deal(Deal {
                        service: kind,
                        service_contract: *service,
                        agreement: e.agreementId,
                        did: *did,
                        consumer: *payer,
                        payment: payment.clone(),
                        payment_id: *id,
                        service_id,
                        timeout: 0,
                        template: false,
                    });
                }
                Generic::Service { payment_id, .. } => {
                    self.service_of.insert(*id, *payment_id);
                }
                _ => {}
            }
        }
        self.generics.push(GenericDeal {
            agreement: e.agreementId,
            conditions: e
                .conditionIds
                .iter()
                .copied()
                .zip(specs.into_iter().map(|s| s.generic))
                .collect(),
        });
        Ok(())
    }

    fn add_deal(&mut self, deal: Deal) {
        let i = self.deals.len();
        self.by_payment.insert(deal.payment_id, i);
        self.service_of.insert(deal.service_id, deal.payment_id);
        self.deals.push(deal);
    }

    fn on_terms(
        &mut self,
        template: Address,
        e: &ServiceTemplate::AgreementTerms,
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
        let (service, service_contract) = if template == s.access_template {
            (Service::Access, s.access)
        } else {
            (Service::Compute, s.compute_execution)
        };
        let payment = Payment {
            token: e.token,
            receivers: e.receivers.clone(),
            amounts: e.amounts.clone(),
            fee: e.fee,
        };
        let [payment_id, service_id] = p.ids[..] else {
            return Err(Violation::new(
                "ids_unique",
                format!("a template agreement with {} conditions", p.ids.len()),
            ));
        };
        // The template's ids must be the ones its terms derive.
        let expected_payment = ids::condition(
            e.agreementId,
            s.payment,
            ids::payment_value(p.did, p.consumer, service_contract, &payment),
        );
        let expected_service = ids::condition(
            e.agreementId,
            service_contract,
            ids::service_value(p.did, p.consumer, expected_payment),
        );
        if expected_payment != payment_id || expected_service != service_id {
            return Err(Violation::new(
                "ids_unique",
                format!(
                    "agreement {} has payment {payment_id} and service {service_id}, its terms derive {expected_payment} and {expected_service}",
                    e.agreementId
                ),
            ));
        }
        let timeout = u64::from(e.serviceTimeout);
        let svc = self.conds.get(&service_id).copied();
        if svc.is_none_or(|c| {
            c.time_out != p.created + timeout || timeout == 0 || timeout > 90 * 24 * 3600
        }) {
            return Err(Violation::new(
                "time_windows_respected",
                format!(
                    "service condition {service_id} does not time out {timeout} s (at most 90 days) after creation"
                ),
            ));
        }
        if self
            .conds
            .get(&payment_id)
            .is_none_or(|c| c.time_out != p.created + timeout / 2)
        {
            return Err(Violation::new(
                "time_windows_respected",
                format!("payment {payment_id} does not time out after half the service time out"),
            ));
        }
        self.add_deal(Deal {
            service: Some(service),
            service_contract,
            agreement: e.agreementId,
            did: p.did,
            consumer: p.consumer,
            payment,
            payment_id,
            service_id,
            timeout: e.serviceTimeout,
            template: true,
        });
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
                if let Some(payment) = self.service_of.get(&id)
                    && self.state(*payment) != CondState::Fulfilled
                {
                    return Err(Violation::new(
                        "service_implies_lock",
                        format!(
                            "service condition {id} fulfilled while its payment {payment} is {:?}",
                            self.state(*payment)
                        ),
                    ));
                }
            }
            _ => {
                // The suite's condition contracts abort only timed-out conditions. A generic
                // condition owned by any other account is that account's to abort: the store
                // allows it by design.
                let suite_condition = self.a.condition_contracts().contains(&by);
                if suite_condition && (c.time_out == 0 || now < c.time_out) {
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

    /// A payment condition became Fulfilled: its payer must have paid exactly its total into
    /// the payment condition in this transaction.
    fn on_paid(
        &mut self,
        env: &Env,
        step: &Step,
        outcome: &Outcome,
        id: B256,
    ) -> Result<(), Violation> {
        let pc = self.a.suite().payment;
        let Some(deal) = self.by_payment.get(&id).map(|&i| self.deals[i].clone()) else {
            return Err(Violation::new(
                "only_payer_locks",
                format!("payment {id}, whose terms nobody published, was paid"),
            ));
        };
        let token = deal.payment.token;
        let total = deal.payment.total().unwrap_or(U256::MAX);
        let paid = if token.is_zero() {
            protocol_sender(env, step) == deal.consumer && step.call.value() == total
        } else {
            outcome.logs.iter().any(|log| {
                log.address == token
                    && log.topics().first() == Some(&MockERC20::Transfer::SIGNATURE_HASH)
                    && MockERC20::Transfer::decode_log_data(&log.data)
                        .is_ok_and(|t| t.from == deal.consumer && t.to == pc && t.value == total)
            })
        };
        *self.locked.entry(token).or_default() += total;
        if !paid {
            let how = if token.is_zero() {
                format!(
                    "the transaction of {} sent {} wei",
                    env.name(protocol_sender(env, step)),
                    step.call.value()
                )
            } else {
                format!(
                    "no transfer of that amount from {} to the payment condition",
                    env.name(deal.consumer)
                )
            };
            return Err(Violation::new(
                "only_payer_locks",
                format!(
                    "payment {id} of {total} {} by {} is Fulfilled, but {how}",
                    token_name(env, token),
                    env.name(deal.consumer)
                ),
            ));
        }
        Ok(())
    }

    fn settle_once(&mut self, id: B256) -> Result<(), Violation> {
        let n = self.settled.entry(id).or_default();
        *n += 1;
        if *n > 1 {
            return Err(Violation::new(
                "settlement_exactly_once",
                format!("payment {id} settled {n} times"),
            ));
        }
        Ok(())
    }

    /// The payment settled by a payout event: known, paid, not settled before. Records its new
    /// state.
    fn settling(&mut self, id: B256, to: CondState, rule: &str) -> Result<Deal, Violation> {
        let once = self.settle_once(id);
        let previous = self.state(id);
        if let Some(c) = self.conds.get_mut(&id) {
            c.state = to;
        }
        once?;
        let Some(deal) = self.by_payment.get(&id).map(|&i| self.deals[i].clone()) else {
            return Err(Violation::new(
                rule,
                format!("settled payment {id}, which was never created"),
            ));
        };
        match previous {
            CondState::Fulfilled => Ok(deal),
            CondState::Released | CondState::Refunded => Err(Violation::new(
                "settlement_exactly_once",
                format!("payment {id} settled again ({to:?}) after it was {previous:?}"),
            )),
            _ => Err(Violation::new(
                rule,
                format!("payment {id} settled ({to:?}) while it was {previous:?}, never paid"),
            )),
        }
    }

    /// The payment a payout event of `agreement` settled: the one the step's release, refund or
    /// fulfil-and-release call names with these amounts (the events do not carry the payment's
    /// id, since one agreement has one payment when made by a real template).
    fn settled_payment(
        &self,
        step: &Step,
        agreement: B256,
        token: Address,
        amount: U256,
        fee: Option<U256>,
    ) -> Option<B256> {
        let mut candidates = Vec::new();
        settle_candidates(&step.call, &self.a, &mut candidates);
        for call in self.armed.iter().flatten() {
            settle_candidates(call, &self.a, &mut candidates);
        }
        let matching: Vec<B256> = candidates
            .into_iter()
            .filter(|(a, _, p)| {
                let price = p
                    .amounts
                    .iter()
                    .fold(U256::ZERO, |x, y| x.saturating_add(*y));
                *a == agreement
                    && p.token == token
                    && match fee {
                        Some(fee) => p.fee == fee && price == amount,
                        None => p.total() == Some(amount),
                    }
            })
            .map(|(_, id, _)| id)
            .collect();
        // Several calls may name the same agreement and amounts (a callback armed with other
        // terms): the paid one is the one that can have been settled, then a known one.
        matching
            .iter()
            .find(|id| self.state(**id) == CondState::Fulfilled)
            .or_else(|| matching.iter().find(|id| self.by_payment.contains_key(*id)))
            .or(matching.first())
            .copied()
    }

    fn on_released(
        &mut self,
        env: &Env,
        e: &PaymentCondition::PaymentReleased,
        id: Option<B256>,
    ) -> Result<(), Violation> {
        let Some(id) = id else {
            return Err(Violation::new(
                "release_implies_fulfilled",
                format!(
                    "a payment of agreement {} was released that no call of the step names",
                    e.agreementId
                ),
            ));
        };
        let deal = self.settling(id, CondState::Released, "release_implies_fulfilled")?;
        let service = self.state(deal.service_id);
        if service != CondState::Fulfilled {
            return Err(Violation::new(
                "release_implies_fulfilled",
                format!(
                    "payment {id} released while its service condition {} is {service:?}",
                    deal.service_id
                ),
            ));
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
                    "release paid {} of {}, the agreement took {price} of {}",
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
        e: &PaymentCondition::PaymentRefunded,
        id: Option<B256>,
    ) -> Result<(), Violation> {
        let Some(id) = id else {
            return Err(Violation::new(
                "refund_implies_aborted",
                format!(
                    "a payment of agreement {} was refunded that no call of the step names",
                    e.agreementId
                ),
            ));
        };
        let deal = self.settling(id, CondState::Refunded, "refund_implies_aborted")?;
        let service = self.state(deal.service_id);
        if service != CondState::Aborted && service != CondState::Uninitialized {
            return Err(Violation::new(
                "refund_implies_aborted",
                format!(
                    "payment {id} refunded while its service condition {} is {service:?}",
                    deal.service_id
                ),
            ));
        }
        let total = deal.payment.total().unwrap_or(U256::MAX);
        if e.payer != deal.consumer || e.amount != total || e.token != deal.payment.token {
            return Err(Violation::new(
                "escrow_solvency",
                format!(
                    "refund paid {} to {}, {} paid {total}",
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
                    "the payment condition paid out {amount} of {} while only {locked} was paid in and unsettled",
                    token_name(env, token)
                ),
            ));
        }
        self.locked.insert(token, locked - amount);
        Ok(())
    }
}

/// (agreement, payment id, terms) of every release, refund and fulfil-and-release in `call`,
/// nested calls included.
fn settle_candidates(call: &Call, a: &Addrs, out: &mut Vec<(B256, B256, Payment)>) {
    let pc = a.suite().payment;
    match call {
        Call::Release {
            agreement,
            did,
            payer,
            service,
            payment,
        }
        | Call::Refund {
            agreement,
            did,
            payer,
            service,
            payment,
        } => out.push((
            *agreement,
            ids::condition(
                *agreement,
                pc,
                ids::payment_value(*did, *payer, *service, payment),
            ),
            payment.clone(),
        )),
        Call::FulfilAndRelease {
            service,
            agreement,
            did,
            consumer,
            payment,
            ..
        } => out.push((
            *agreement,
            ids::condition(
                *agreement,
                pc,
                ids::payment_value(*did, *consumer, service.condition(a), payment),
            ),
            payment.clone(),
        )),
        Call::RogueExecute { inner, .. }
        | Call::ArmToken { inner: Some(inner) }
        | Call::ArmAttacker { inner: Some(inner) } => settle_candidates(inner, a, out),
        _ => {}
    }
}

/// The account the protocol sees as the caller of a step.
fn protocol_sender(env: &Env, step: &Step) -> Address {
    match &step.call {
        Call::RogueExecute { .. } => env.rogue,
        _ => env.address(step.actor),
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
    /// The condition ids a call names or derives (payment and service conditions of its terms).
    pub fn mentioned_ids(&self, a: &Addrs) -> Vec<B256> {
        let s = a.suite();
        let pair = |agreement: B256, did: B256, payer: Address, service: Address, p: &Payment| {
            let id = ids::condition(
                agreement,
                s.payment,
                ids::payment_value(did, payer, service, p),
            );
            vec![
                id,
                ids::condition(agreement, service, ids::service_value(did, payer, id)),
            ]
        };
        match self {
            Call::StoreFulfil { condition }
            | Call::StoreAbort { condition }
            | Call::StoreSettle { condition, .. }
            | Call::AbortTimedOut { condition, .. } => vec![*condition],
            Call::Fulfil { payment_id, .. } => vec![*payment_id],
            Call::FulfilAndRelease {
                service,
                agreement,
                did,
                consumer,
                payment,
                ..
            } => pair(*agreement, *did, *consumer, service.condition(a), payment),
            Call::Release {
                agreement,
                did,
                payer,
                service,
                payment,
            }
            | Call::Refund {
                agreement,
                did,
                payer,
                service,
                payment,
            } => pair(*agreement, *did, *payer, *service, payment),
            Call::ThresholdFulfil { inputs, .. } => inputs.clone(),
            Call::ArmToken { inner: Some(inner) }
            | Call::ArmAttacker { inner: Some(inner) }
            | Call::RogueExecute { inner, .. } => inner.mentioned_ids(a),
            _ => Vec::new(),
        }
    }
}
