//! The reference model: the whole suite, its tokens and the adversarial contracts re-implemented
//! in plain Rust over hash maps.
//!
//! For every step the model predicts whether the transaction succeeds and, when it fails, with
//! which error; when it succeeds, the model's state moves as the contracts' should. The engine
//! compares prediction and state with the EVM after every step (see `fuzz::compare`): any
//! difference is a violation of `model_agrees_with_evm`.
//!
//! The model follows the contracts' code order (which check comes first decides the error), but it
//! is written from the specification in `docs/protocol.md` and the contracts' NatSpec, not
//! translated line by line: ids are recomputed with the same hashing, balances move as the token
//! semantics say, and reentrancy is modelled explicitly (transient guards, callbacks of the
//! re-entrant token and of the attacker contract).
//!
//! One thing the model cannot know is gas: a push of ETH to the armed attacker contract gets
//! 50,000 gas, and whether its callback fits is a matter of metering. For that case only the model
//! asks an oracle that reads the receipt (was the push credited? did the callback's events
//! happen?) and checks that what happened is one of the legal outcomes.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use alloy::primitives::{Address, B256, Log, U256, keccak256};
use alloy::sol_types::{SolEvent, SolValue};
use insitu_bindings::{
    AccessCondition, AgreementStore, AssetRegistry, ComputeExecutionCondition, MockERC20,
    PaymentCondition,
};

use super::actions::{
    Call, Generic, OfferArgs, OfferSig, Payment, PermitArgs, Role, Service, Step,
};
use super::env::{Actor, Addrs, Env, FOT_FEE_BPS, TokenKind};

/// Bounds of an offer's service time outs.
const MIN_SERVICE_TIMEOUT: u32 = 3600;
const MAX_SERVICE_TIMEOUT: u32 = 90 * 24 * 3600;
const MAX_RECEIVERS: usize = 16;
const MAX_FEE_BPS: u16 = 1_000;

/// Name of an error: a custom error's name, `Error(<reason>)`, `Panic(0x..)`, `empty revert`,
/// `halt` or `rejected`.
pub type ErrorName = String;

/// The model's prediction for one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// The transaction succeeds.
    Ok,
    /// It fails with this error.
    Err(ErrorName),
}

/// State of a condition in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CondState {
    /// Does not exist.
    Uninitialized = 0,
    /// Created, not settled.
    Unfulfilled = 1,
    /// Fulfilled.
    Fulfilled = 2,
    /// Aborted.
    Aborted = 3,
    /// A paid payment, released to its receivers.
    Released = 4,
    /// A paid payment, refunded to its payer.
    Refunded = 5,
}

impl CondState {
    /// From the store's numeric state.
    pub fn from_u8(state: u8) -> Self {
        match state {
            1 => Self::Unfulfilled,
            2 => Self::Fulfilled,
            3 => Self::Aborted,
            4 => Self::Released,
            5 => Self::Refunded,
            _ => Self::Uninitialized,
        }
    }
}

/// A condition as the store keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cond {
    /// Owning condition contract.
    pub contract: Address,
    /// State.
    pub state: CondState,
    /// Absolute time lock (0: none).
    pub time_lock: u64,
    /// Absolute time out (0: none).
    pub time_out: u64,
}

/// An asset in the registry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Asset {
    /// Owner.
    pub owner: Address,
    /// Registration time.
    pub registered_at: u64,
    /// Ownership transfers so far; providers and delegations belong to one epoch.
    pub owner_epoch: u64,
    /// Offers must name this epoch.
    pub offer_epoch: u32,
    /// Pending owner of a started transfer (zero: none).
    pub pending_owner: Address,
    /// Metadata checksum.
    pub checksum: B256,
    /// Metadata url.
    pub url: String,
    /// Provider set.
    pub providers: BTreeSet<Address>,
    /// Delegates.
    pub delegates: BTreeSet<Address>,
}

/// State of a template in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateState {
    /// Never proposed.
    None = 0,
    /// Proposed.
    Proposed = 1,
    /// Approved.
    Approved = 2,
    /// Revoked.
    Revoked = 3,
}

/// One token's ledger.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    /// Balances.
    pub balances: HashMap<Address, U256>,
    /// Allowances (owner, spender).
    pub allowances: HashMap<(Address, Address), U256>,
    /// Total supply.
    pub supply: U256,
}

/// What the rogue template's `createAgreementFor` answers (set by `script`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RogueScript {
    /// Agreement id answered (zero: the one it creates).
    pub agreement: B256,
    /// Service contract answered.
    pub service: Address,
    /// Consumer of the agreement it creates first.
    pub consumer: Address,
    /// Asset of the agreement it creates first.
    pub did: B256,
    /// Specs of the agreement it creates first (none: creates nothing).
    pub specs: Vec<(Address, B256, u32, u32)>,
}

/// What a step changed, so the engine compares exactly those things with the EVM.
#[derive(Debug, Clone, Default)]
pub struct Dirty {
    /// Conditions.
    pub conditions: HashSet<B256>,
    /// Escrow credits (token, account).
    pub credits: HashSet<(Address, Address)>,
    /// Tokens whose escrow totals (credits, fees) changed.
    pub escrow_tokens: HashSet<Address>,
    /// Allowances (token, owner, spender).
    pub allowances: HashSet<(Address, Address, Address)>,
    /// Assets.
    pub assets: HashSet<B256>,
    /// Templates.
    pub templates: HashSet<Address>,
    /// Roles.
    pub roles: HashSet<(Role, Address)>,
    /// The network fee.
    pub fee: bool,
    /// Blocklist entries.
    pub blocked: HashSet<Address>,
    /// Re-entrant token and attacker arming.
    pub arms: bool,
    /// Permit nonces of the permit token.
    pub nonces: HashSet<Address>,
}

/// An event the model expects, reduced to what identifies it in a receipt: the emitter, the
/// signature and the first indexed argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ev {
    /// Emitting contract.
    pub emitter: Address,
    /// Event signature hash.
    pub topic0: B256,
    /// First indexed argument.
    pub topic1: B256,
}

/// The events the model emits (every occurrence of these in a receipt must be one the model
/// expects, in the same order).
pub fn modelled_events() -> [B256; 12] {
    [
        AgreementStore::AgreementCreated::SIGNATURE_HASH,
        AgreementStore::ConditionFulfilled::SIGNATURE_HASH,
        AgreementStore::ConditionAborted::SIGNATURE_HASH,
        PaymentCondition::PaymentReleased::SIGNATURE_HASH,
        PaymentCondition::PaymentRefunded::SIGNATURE_HASH,
        PaymentCondition::PaymentCredited::SIGNATURE_HASH,
        PaymentCondition::CreditWithdrawn::SIGNATURE_HASH,
        PaymentCondition::FeesWithdrawn::SIGNATURE_HASH,
        AccessCondition::AccessGranted::SIGNATURE_HASH,
        ComputeExecutionCondition::ComputeExecuted::SIGNATURE_HASH,
        AssetRegistry::AssetRegistered::SIGNATURE_HASH,
        MockERC20::Transfer::SIGNATURE_HASH,
    ]
}

/// The model's prediction of one step.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// Success or the error.
    pub expected: Expected,
    /// What the step changed (or would have, for a failure).
    pub dirty: Dirty,
    /// The modelled events of a successful step, in order.
    pub events: Vec<Ev>,
}

/// Failure of a modelled call.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fail(ErrorName);

type R<T = ()> = Result<T, Fail>;

fn fail<T>(name: &str) -> R<T> {
    Err(Fail(name.to_owned()))
}

const EMPTY: &str = "empty revert";
const OVERFLOW: &str = "Panic(0x11)";

/// How much gas a nested call gets: all of it, or the escrow's 50,000 for an ETH push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gas {
    Full,
    Limited,
}

/// Per-transaction context: the receipt (for the gas oracle), transient reentrancy guards, the
/// events emitted so far and what changed.
struct Ctx<'a> {
    logs: &'a [Log],
    used: Vec<bool>,
    guards: Vec<Address>,
    events: Vec<Ev>,
    dirty: Dirty,
    gas: Gas,
}

impl Ctx<'_> {
    fn emit(&mut self, emitter: Address, topic0: B256, topic1: B256) {
        self.events.push(Ev {
            emitter,
            topic0,
            topic1,
        });
    }

    /// Takes one unconsumed receipt log matching `pred`, if any.
    fn take_log(&mut self, pred: impl Fn(&Log) -> bool) -> bool {
        for (i, log) in self.logs.iter().enumerate() {
            if !self.used[i] && pred(log) {
                self.used[i] = true;
                return true;
            }
        }
        false
    }

    /// Whether every event emitted since index `start` appears in the receipt (each log matched
    /// once).
    fn all_happened_since(&mut self, start: usize) -> bool {
        let saved = self.used.clone();
        let events = self.events[start..].to_vec();
        for ev in &events {
            let found = self.take_log(|log| {
                log.address == ev.emitter
                    && log.topics().first() == Some(&ev.topic0)
                    && log.topics().get(1).is_none_or(|t| *t == ev.topic1)
            });
            if !found {
                self.used = saved;
                return false;
            }
        }
        true
    }
}

/// The reference model of the suite and its environment.
#[derive(Debug, Clone)]
pub struct Model {
    a: Arc<Addrs>,
    /// Current block time.
    pub time: u64,
    /// ETH balances.
    pub eth: HashMap<Address, U256>,
    /// Token ledgers by token address.
    pub ledgers: HashMap<Address, Ledger>,
    /// Blocklisted accounts of the blocklist token.
    pub blocked: HashSet<Address>,
    /// The re-entrant token's pending callback (`Some(None)`: armed with an empty call).
    pub token_armed: Option<Option<Call>>,
    /// The attacker's callback on every ETH payment.
    pub attacker_arm: Option<Call>,
    /// Template registry.
    pub templates: HashMap<Address, TemplateState>,
    /// Role holders.
    pub roles: HashSet<(Role, Address)>,
    /// Conditions.
    pub conditions: HashMap<B256, Cond>,
    /// Network fee (receiver, bps).
    pub fee: (Address, u16),
    /// Escrow credits by (token, account).
    pub credits: HashMap<(Address, Address), U256>,
    /// Escrow total credits by token.
    pub total_credits: HashMap<Address, U256>,
    /// Escrow accrued fees by token.
    pub accrued: HashMap<Address, U256>,
    /// Assets.
    pub assets: HashMap<B256, Asset>,
    /// EIP-2612 nonces of the permit token.
    pub nonces: HashMap<Address, U256>,
    /// The rogue template's scripted answer.
    pub rogue: RogueScript,
}

/// Hash helpers: the same derivations as `AgreementIds`, `PaymentTerms` and the conditions.
pub mod ids {
    use super::*;

    /// `AgreementIds.agreementId(seed, consumer, firstConditionContract, firstValueHash)`.
    pub fn agreement(seed: B256, consumer: Address, first: Address, first_value: B256) -> B256 {
        keccak256((seed, consumer, first, first_value).abi_encode_params())
    }

    /// `keccak256(abi.encode(agreementId, conditionContract, valueHash))`.
    pub fn condition(agreement: B256, contract: Address, value_hash: B256) -> B256 {
        keccak256((agreement, contract, value_hash).abi_encode_params())
    }

    /// `PaymentTerms.valueHash(did, payer, service, token, receivers, amounts, fee)`.
    pub fn payment_value(did: B256, payer: Address, service: Address, payment: &Payment) -> B256 {
        keccak256(
            (
                did,
                payer,
                service,
                payment.token,
                payment.receivers.clone(),
                payment.amounts.clone(),
                payment.fee,
            )
                .abi_encode_params(),
        )
    }

    /// `PaymentTerms.serviceValueHash`: value hash of an access or compute condition.
    pub fn service_value(did: B256, consumer: Address, payment_id: B256) -> B256 {
        keccak256((did, consumer, payment_id).abi_encode_params())
    }

    /// `computeResultDid(activityId, owner, agent)`.
    pub fn result_did(activity: B256, owner: Address, agent: Address) -> B256 {
        keccak256((keccak256(b"insitu.result"), activity, owner, agent).abi_encode_params())
    }

    /// `computeDid(seed, owner)`.
    pub fn did(seed: B256, owner: Address) -> B256 {
        keccak256((seed, owner).abi_encode_params())
    }
}

impl Model {
    /// The model of the environment right after setup, read from the chain.
    ///
    /// # Panics
    ///
    /// If a view call on the freshly built environment fails.
    pub fn from_env(env: &mut Env) -> Self {
        let a = env.addrs.clone();
        let holders = env.holders();
        let mut eth = HashMap::new();
        for &h in &holders {
            eth.insert(h, env.chain.balance(h));
        }
        let mut ledgers = HashMap::new();
        for kind in TokenKind::ALL {
            if kind == TokenKind::Eth {
                continue;
            }
            let token = a.token(kind);
            let mut ledger = Ledger::default();
            for &h in &holders {
                let balance = env
                    .chain
                    .call(token, &MockERC20::balanceOfCall { account: h })
                    .expect("balanceOf");
                if !balance.is_zero() {
                    ledger.balances.insert(h, balance);
                }
                let allowance = env
                    .chain
                    .call(
                        token,
                        &MockERC20::allowanceCall {
                            owner: h,
                            spender: a.suite().payment,
                        },
                    )
                    .expect("allowance");
                if !allowance.is_zero() {
                    ledger.allowances.insert((h, a.suite().payment), allowance);
                }
            }
            ledger.supply = env
                .chain
                .call(token, &MockERC20::totalSupplyCall {})
                .expect("totalSupply");
            ledgers.insert(token, ledger);
        }
        let suite = *a.suite();
        let mut templates = HashMap::new();
        for t in [
            suite.access_template,
            suite.compute_template,
            a.passthrough,
            a.rogue,
        ] {
            templates.insert(t, TemplateState::Approved);
        }
        let mut roles = HashSet::new();
        roles.insert((Role::Admin, a.governor));
        roles.insert((Role::Governor, a.governor));
        let mut assets = HashMap::new();
        for i in 0..env.dids.len() {
            let info = env
                .chain
                .call(
                    suite.asset_registry,
                    &AssetRegistry::getAssetCall { did: env.dids[i] },
                )
                .expect("getAsset");
            assets.insert(
                env.dids[i],
                Asset {
                    owner: info.owner,
                    registered_at: info.registeredAt.to::<u64>(),
                    owner_epoch: info.ownerEpoch.to::<u64>(),
                    offer_epoch: info.offerEpoch,
                    pending_owner: Address::ZERO,
                    checksum: info.checksum,
                    url: info.url,
                    providers: BTreeSet::from([env.keepers[i]]),
                    delegates: BTreeSet::new(),
                },
            );
        }
        Self {
            time: env.chain.timestamp(),
            eth,
            ledgers,
            blocked: HashSet::new(),
            token_armed: None,
            attacker_arm: None,
            templates,
            roles,
            conditions: HashMap::new(),
            fee: (a.fee_receiver, super::env::INITIAL_FEE_BPS),
            credits: HashMap::new(),
            total_credits: HashMap::new(),
            accrued: HashMap::new(),
            assets,
            nonces: HashMap::new(),
            rogue: RogueScript::default(),
            a,
        }
    }

    /// The addresses the model works with.
    pub fn addrs(&self) -> &Addrs {
        &self.a
    }

    /// The balance of `holder` in `token` (zero address: ETH).
    pub fn balance(&self, token: Address, holder: Address) -> U256 {
        if token.is_zero() {
            return self.eth.get(&holder).copied().unwrap_or_default();
        }
        self.ledgers
            .get(&token)
            .and_then(|l| l.balances.get(&holder))
            .copied()
            .unwrap_or_default()
    }

    /// The state of a condition.
    pub fn state(&self, id: B256) -> CondState {
        self.conditions
            .get(&id)
            .map_or(CondState::Uninitialized, |c| c.state)
    }

    /// Whether `account` may serve `did`.
    pub fn can_serve(&self, did: B256, account: Address) -> bool {
        self.assets.get(&did).is_some_and(|asset| {
            !asset.owner.is_zero()
                && (account == asset.owner
                    || asset.providers.contains(&account)
                    || asset.delegates.contains(&account))
        })
    }

    /// The network fee on `price` now.
    pub fn quote(&self, price: U256) -> Option<U256> {
        price
            .checked_mul(U256::from(self.fee.1))
            .map(|x| x / U256::from(10_000u64))
    }

    /// Predicts `step` and applies it to the model. `logs` are the step's receipt logs (used
    /// only as the gas oracle described in the module documentation); `env_sender` is the
    /// account that signs the transaction.
    pub fn apply(&mut self, step: &Step, env_sender: Address, logs: &[Log]) -> Prediction {
        let (expected, dirty, events) = self.apply_inner(step, env_sender, logs);
        Prediction {
            expected,
            dirty,
            events,
        }
    }

    fn apply_inner(
        &mut self,
        step: &Step,
        env_sender: Address,
        logs: &[Log],
    ) -> (Expected, Dirty, Vec<Ev>) {
        match &step.call {
            Call::Warp { seconds } => {
                self.time = self.time.saturating_add(*seconds);
                return (Expected::Ok, Dirty::default(), Vec::new());
            }
            Call::Mine { blocks } => {
                self.time = self
                    .time
                    .saturating_add(blocks.saturating_mul(crate::harness::BLOCK_TIME));
                return (Expected::Ok, Dirty::default(), Vec::new());
            }
            _ => {}
        }
        let value = step.call.value();
        if self.eth_of(env_sender) < value {
            return (
                Expected::Err("rejected".into()),
                Dirty::default(),
                Vec::new(),
            );
        }
        let before = self.clone();
        let mut cx = Ctx {
            logs,
            used: vec![false; logs.len()],
            guards: Vec::new(),
            events: Vec::new(),
            dirty: Dirty::default(),
            gas: Gas::Full,
        };
        let result = if step.actor.is_contract() {
            // operator -> contract.execute(target, data): not payable, bubbles the inner revert.
            if value.is_zero() {
                let sender = match step.actor {
                    Actor::Attacker => self.a.attacker,
                    _ => self.a.reverter,
                };
                self.invoke(&mut cx, sender, &step.call, U256::ZERO)
            } else {
                fail(EMPTY)
            }
        } else {
            self.invoke(&mut cx, env_sender, &step.call, value)
        };
        match result {
            Ok(()) => (Expected::Ok, cx.dirty, cx.events),
            Err(Fail(name)) => {
                let dirty = cx.dirty;
                *self = before;
                (Expected::Err(name), dirty, Vec::new())
            }
        }
    }

    // ---- ETH ----

    fn eth_of(&self, a: Address) -> U256 {
        self.eth.get(&a).copied().unwrap_or_default()
    }

    fn move_eth(&mut self, from: Address, to: Address, value: U256) -> R {
        if value.is_zero() {
            return Ok(());
        }
        let have = self.eth_of(from);
        if have < value {
            // A call whose value exceeds the caller's balance fails.
            return fail(EMPTY);
        }
        self.eth.insert(from, have - value);
        *self.eth.entry(to).or_default() += value;
        Ok(())
    }

    /// Sends ETH with a call and empty calldata, as `call{value}("")` does; `Ok(false)` when the
    /// callee rejects it (the value stays with the sender).
    fn send_eth(
        &mut self,
        cx: &mut Ctx<'_>,
        from: Address,
        to: Address,
        value: U256,
        gas: Gas,
    ) -> bool {
        if self.eth_of(from) < value {
            return false;
        }
        if !self.a.is_contract(to) {
            self.move_eth(from, to, value).is_ok()
        } else if to == self.a.attacker {
            if gas == Gas::Limited && self.attacker_arm.is_some() {
                // The oracle: with 50,000 gas the armed callback may not fit, and then the escrow
                // credits the payment instead. The receipt says which happened.
                let escrow = self.a.suite().payment;
                let credited = cx.take_log(|log| {
                    log.address == escrow
                        && log.topics().first()
                            == Some(&PaymentCondition::PaymentCredited::SIGNATURE_HASH)
                        && log.topics().get(2) == Some(&to.into_word())
                        && PaymentCondition::PaymentCredited::decode_log_data(&log.data)
                            .is_ok_and(|e| e.amount == value && e.token.is_zero())
                });
                if credited {
                    return false;
                }
            }
            let _ = self.move_eth(from, to, value);
            if let Some(inner) = self.attacker_arm.clone() {
                let saved_gas = cx.gas;
                cx.gas = gas;
                self.nested(cx, self.a.attacker, &inner);
                cx.gas = saved_gas;
            }
            true
        } else {
            // Every other contract rejects plain ETH (no receive/fallback, reverts, or burns gas).
            false
        }
    }

    /// A call made from inside a callback: its failure is swallowed and undone. Under the
    /// escrow's 50,000 gas a call the model expects to succeed may still run out of gas; it
    /// counts as done only if its events are in the receipt.
    fn nested(&mut self, cx: &mut Ctx<'_>, sender: Address, call: &Call) {
        let before = self.clone();
        let events = cx.events.len();
        let guards = cx.guards.len();
        let ok = self.invoke(cx, sender, call, U256::ZERO).is_ok();
        cx.guards.truncate(guards);
        let keep = ok && (cx.gas == Gas::Full || cx.all_happened_since(events));
        if !keep {
            *self = before;
            cx.events.truncate(events);
        }
    }

    // ---- Tokens ----

    fn ledger(&mut self, token: Address) -> &mut Ledger {
        self.ledgers.entry(token).or_default()
    }

    /// `IERC20(token).balanceOf(account)`.
    fn token_balance(&self, token: Address, account: Address) -> U256 {
        self.balance(token, account)
    }

    /// Moves tokens as the token's `_update` does (including its callback); `spender` is the
    /// `transferFrom` caller when allowances apply.
    fn token_transfer(
        &mut self,
        cx: &mut Ctx<'_>,
        token: Address,
        spender: Option<Address>,
        from: Address,
        to: Address,
        value: U256,
    ) -> R {
        let Some(kind) = self.a.kind_of(token) else {
            return fail(EMPTY);
        };
        if kind == TokenKind::Eth {
            return fail(EMPTY);
        }
        if kind == TokenKind::NoReturn {
            if let Some(spender) = spender {
                let allowed = self.allowance(token, from, spender);
                if allowed < value {
                    return fail("Error(allowance)");
                }
                if allowed != U256::MAX {
                    self.ledger(token)
                        .allowances
                        .insert((from, spender), allowed - value);
                    cx.dirty.allowances.insert((token, from, spender));
                }
            }
            let balance = self.balance(token, from);
            if balance < value {
                return fail("Error(balance)");
            }
            let ledger = self.ledger(token);
            ledger.balances.insert(from, balance - value);
            *ledger.balances.entry(to).or_default() += value;
            cx.emit(token, MockERC20::Transfer::SIGNATURE_HASH, from.into_word());
            return Ok(());
        }
        // OpenZeppelin ERC20 and its variants.
        if let Some(spender) = spender {
            let allowed = self.allowance(token, from, spender);
            if allowed != U256::MAX {
                if allowed < value {
                    return fail("ERC20InsufficientAllowance");
                }
                self.ledger(token)
                    .allowances
                    .insert((from, spender), allowed - value);
                cx.dirty.allowances.insert((token, from, spender));
            }
        }
        if from.is_zero() {
            return fail("ERC20InvalidSender");
        }
        if to.is_zero() {
            return fail("ERC20InvalidReceiver");
        }
        self.token_update(cx, kind, token, from, to, value)
    }

    /// `_update(from, to, value)` of the OpenZeppelin-based mocks (`from`/`to` zero: mint/burn).
    fn token_update(
        &mut self,
        cx: &mut Ctx<'_>,
        kind: TokenKind,
        token: Address,
        from: Address,
        to: Address,
        value: U256,
    ) -> R {
        match kind {
            TokenKind::Blocklist => {
                if self.blocked.contains(&from) {
                    return fail("Blocked");
                }
                if self.blocked.contains(&to) {
                    return fail("Blocked");
                }
                self.oz_update(cx, token, from, to, value)
            }
            TokenKind::FeeOnTransfer => {
                if from.is_zero() || to.is_zero() {
                    return self.oz_update(cx, token, from, to, value);
                }
                let Some(scaled) = value.checked_mul(U256::from(FOT_FEE_BPS)) else {
                    return fail(OVERFLOW);
                };
                let fee = scaled / U256::from(10_000u64);
                self.oz_update(cx, token, from, Address::ZERO, fee)?;
                self.oz_update(cx, token, from, to, value - fee)
            }
            TokenKind::Reentrant => {
                self.oz_update(cx, token, from, to, value)?;
                if !from.is_zero()
                    && let Some(payload) = self.token_armed.take()
                {
                    cx.dirty.arms = true;
                    if let Some(inner) = payload {
                        self.nested(cx, token, &inner);
                    }
                }
                Ok(())
            }
            _ => self.oz_update(cx, token, from, to, value),
        }
    }

    fn oz_update(
        &mut self,
        cx: &mut Ctx<'_>,
        token: Address,
        from: Address,
        to: Address,
        value: U256,
    ) -> R {
        let ledger = self.ledger(token);
        if from.is_zero() {
            ledger.supply = match ledger.supply.checked_add(value) {
                Some(s) => s,
                None => return fail(OVERFLOW),
            };
        } else {
            let balance = ledger.balances.get(&from).copied().unwrap_or_default();
            if balance < value {
                return fail("ERC20InsufficientBalance");
            }
            ledger.balances.insert(from, balance - value);
        }
        if to.is_zero() {
            ledger.supply -= value;
        } else {
            *ledger.balances.entry(to).or_default() += value;
        }
        cx.emit(token, MockERC20::Transfer::SIGNATURE_HASH, from.into_word());
        Ok(())
    }

    fn allowance(&self, token: Address, owner: Address, spender: Address) -> U256 {
        self.ledgers
            .get(&token)
            .and_then(|l| l.allowances.get(&(owner, spender)))
            .copied()
            .unwrap_or_default()
    }

    /// `SafeERC20.safeTransfer(From)`: bubbles the token's revert.
    fn safe_transfer(
        &mut self,
        cx: &mut Ctx<'_>,
        token: Address,
        spender: Option<Address>,
        from: Address,
        to: Address,
        value: U256,
    ) -> R {
        self.token_transfer(cx, token, spender, from, to, value)
    }

    /// `SafeERC20.trySafeTransfer`: false instead of a revert, effects undone.
    fn try_transfer(
        &mut self,
        cx: &mut Ctx<'_>,
        token: Address,
        from: Address,
        to: Address,
        value: U256,
    ) -> bool {
        let before = self.clone();
        let events = cx.events.len();
        match self.token_transfer(cx, token, None, from, to, value) {
            Ok(()) => true,
            Err(_) => {
                *self = before;
                cx.events.truncate(events);
                false
            }
        }
    }

    // ---- Store ----

    fn guard(&mut self, cx: &mut Ctx<'_>, contract: Address) -> R {
        if cx.guards.contains(&contract) {
            return fail("ReentrancyGuardReentrantCall");
        }
        cx.guards.push(contract);
        Ok(())
    }

    fn unguard(cx: &mut Ctx<'_>, contract: Address) {
        if let Some(i) = cx.guards.iter().rposition(|g| *g == contract) {
            cx.guards.remove(i);
        }
    }

    /// `_own`: exists and owned by `caller`.
    fn own(&self, id: B256, caller: Address) -> R<Cond> {
        let Some(c) = self.conditions.get(&id).copied() else {
            return fail("ConditionNotFound");
        };
        if c.state == CondState::Uninitialized {
            return fail("ConditionNotFound");
        }
        if c.contract != caller {
            return fail("NotConditionContract");
        }
        Ok(c)
    }

    /// `_ownUnfulfilled`: exists, owned by `caller`, Unfulfilled.
    fn own_condition(&self, id: B256, caller: Address) -> R<Cond> {
        let c = self.own(id, caller)?;
        if c.state != CondState::Unfulfilled {
            return fail("ConditionNotUnfulfilled");
        }
        Ok(c)
    }

    fn store_fulfil(&mut self, cx: &mut Ctx<'_>, caller: Address, id: B256) -> R {
        let c = self.own_condition(id, caller)?;
        if self.time < c.time_lock {
            return fail("ConditionTimeLocked");
        }
        if c.time_out != 0 && self.time >= c.time_out {
            return fail("ConditionTimedOut");
        }
        self.set_state(cx, id, CondState::Fulfilled);
        cx.emit(
            self.a.suite().agreement_store,
            AgreementStore::ConditionFulfilled::SIGNATURE_HASH,
            id,
        );
        Ok(())
    }

    fn store_abort(&mut self, cx: &mut Ctx<'_>, caller: Address, id: B256) -> R {
        self.own_condition(id, caller)?;
        self.set_state(cx, id, CondState::Aborted);
        cx.emit(
            self.a.suite().agreement_store,
            AgreementStore::ConditionAborted::SIGNATURE_HASH,
            id,
        );
        Ok(())
    }

    /// `AgreementStore.settle`: only from Fulfilled, no event.
    fn store_settle(&mut self, cx: &mut Ctx<'_>, caller: Address, id: B256, released: bool) -> R {
        let c = self.own(id, caller)?;
        if c.state != CondState::Fulfilled {
            return fail("ConditionNotFulfilled");
        }
        let state = if released {
            CondState::Released
        } else {
            CondState::Refunded
        };
        self.set_state(cx, id, state);
        Ok(())
    }

    fn set_state(&mut self, cx: &mut Ctx<'_>, id: B256, state: CondState) {
        if let Some(c) = self.conditions.get_mut(&id) {
            c.state = state;
        }
        cx.dirty.conditions.insert(id);
    }

    fn is_timed_out(&self, id: B256) -> bool {
        self.conditions.get(&id).is_some_and(|c| {
            c.state == CondState::Unfulfilled && c.time_out != 0 && self.time >= c.time_out
        })
    }

    fn approved(&self, template: Address) -> bool {
        self.templates.get(&template) == Some(&TemplateState::Approved)
    }

    /// `AgreementStore.createAgreement` called by `caller`; specs are (contract, value hash,
    /// relative time lock, relative time out).
    fn store_create(
        &mut self,
        cx: &mut Ctx<'_>,
        caller: Address,
        seed: B256,
        consumer: Address,
        specs: &[(Address, B256, u32, u32)],
    ) -> R<B256> {
        if !self.approved(caller) {
            return fail("TemplateNotApproved");
        }
        if consumer.is_zero() {
            return fail("InvalidConsumer");
        }
        let Some(first) = specs.first() else {
            return fail("NoConditions");
        };
        let agreement = ids::agreement(seed, consumer, first.0, first.1);
        let now = self.time;
        for &(contract, value_hash, time_lock, time_out) in specs {
            if contract.is_zero() {
                return fail("InvalidConditionContract");
            }
            if time_out != 0 && time_out <= time_lock {
                return fail("InvalidTimeWindow");
            }
            let id = ids::condition(agreement, contract, value_hash);
            if self.state(id) != CondState::Uninitialized {
                return fail("ConditionAlreadyExists");
            }
            let abs = |t: u32| if t == 0 { 0 } else { now + u64::from(t) };
            self.conditions.insert(
                id,
                Cond {
                    contract,
                    state: CondState::Unfulfilled,
                    time_lock: abs(time_lock),
                    time_out: abs(time_out),
                },
            );
            cx.dirty.conditions.insert(id);
        }
        cx.emit(
            self.a.suite().agreement_store,
            AgreementStore::AgreementCreated::SIGNATURE_HASH,
            agreement,
        );
        Ok(agreement)
    }

    // ---- Payments ----

    /// `PaymentTerms.price` with the protocol contracts `refused` as receivers.
    fn price(receivers: &[Address], amounts: &[U256], refused: &[Address]) -> R<U256> {
        let count = receivers.len();
        if count == 0 {
            return fail("NoReceivers");
        }
        if count > MAX_RECEIVERS {
            return fail("TooManyReceivers");
        }
        if count != amounts.len() {
            return fail("LengthMismatch");
        }
        let mut sum = U256::ZERO;
        for i in 0..count {
            if receivers[i].is_zero() {
                return fail("ZeroReceiver");
            }
            if refused.contains(&receivers[i]) {
                return fail("ProtocolReceiver");
            }
            if amounts[i].is_zero() {
                return fail("ZeroAmount");
            }
            sum = match sum.checked_add(amounts[i]) {
                Some(s) => s,
                None => return fail(OVERFLOW),
            };
        }
        Ok(sum)
    }

    /// `price * bps / 10000`, reverting on overflow.
    fn fee_of(price: U256, bps: u16) -> R<U256> {
        match price.checked_mul(U256::from(bps)) {
            Some(x) => Ok(x / U256::from(10_000u64)),
            None => fail(OVERFLOW),
        }
    }

    /// `PaymentCondition._collect`: the payment condition Fulfilled, then `total` taken from
    /// `payer` (ETH came with the call).
    fn collect(
        &mut self,
        cx: &mut Ctx<'_>,
        id: B256,
        payer: Address,
        token: Address,
        total: U256,
        value: U256,
    ) -> R {
        let pc = self.a.suite().payment;
        self.store_fulfil(cx, pc, id)?;
        if token.is_zero() {
            if value != total {
                return fail("IncorrectValue");
            }
        } else {
            if !value.is_zero() {
                return fail("IncorrectValue");
            }
            if self.a.kind_of(token).is_none() {
                return fail(EMPTY);
            }
            let before = self.token_balance(token, pc);
            self.safe_transfer(cx, token, Some(pc), payer, pc, total)?;
            let after = self.token_balance(token, pc);
            if after.saturating_sub(before) != total {
                return fail("TransferAmountMismatch");
            }
        }
        Ok(())
    }

    /// `ServiceTemplate._checkOffer` at `template` (of `service`).
    fn check_offer(&self, service: Service, offer: &OfferArgs, sig: &OfferSig) -> R {
        if self.time >= offer.expiry {
            return fail("OfferExpired");
        }
        if offer.min_timeout < MIN_SERVICE_TIMEOUT
            || offer.max_timeout > MAX_SERVICE_TIMEOUT
            || offer.min_timeout > offer.max_timeout
        {
            return fail("InvalidOfferTimeouts");
        }
        let Some(asset) = self.assets.get(&offer.did).filter(|a| !a.owner.is_zero()) else {
            return fail("AssetNotRegistered");
        };
        if !self.can_serve(offer.did, offer.provider) {
            return fail("OfferSignerNotServer");
        }
        if asset.offer_epoch != offer.epoch {
            return fail("OfferRevoked");
        }
        // ECDSA by the provider's key, over this very offer, in this template's domain; no
        // account of the campaign implements ERC-1271, so nothing else is valid.
        let valid = sig.domain == service
            && sig.signed.as_deref().is_none_or(|signed| signed == offer)
            && sig
                .signer
                .is_some_and(|k| self.key_address(k) == Some(offer.provider));
        if !valid {
            return fail("InvalidOfferSignature");
        }
        Ok(())
    }

    /// `ServiceTemplate._create`: creates the agreement of `consumer` on `offer` with `fee`.
    /// Returns the agreement id and the payment condition's id.
    #[allow(clippy::too_many_arguments)]
    fn template_create(
        &mut self,
        cx: &mut Ctx<'_>,
        service: Service,
        seed: B256,
        consumer: Address,
        offer: &OfferArgs,
        sig: &OfferSig,
        requested: u32,
        fee: U256,
    ) -> R<B256> {
        let a = self.a.clone();
        let s = *a.suite();
        self.check_offer(service, offer, sig)?;
        let timeout = if requested == 0 {
            offer.max_timeout
        } else if requested < offer.min_timeout || requested > offer.max_timeout {
            return fail("InvalidServiceTimeout");
        } else {
            requested
        };
        let contract = service.condition(&a);
        let payment = Payment {
            token: offer.token,
            receivers: offer.receivers.clone(),
            amounts: offer.amounts.clone(),
            fee,
        };
        let payment_value = ids::payment_value(offer.did, consumer, contract, &payment);
        let agreement = ids::agreement(seed, consumer, s.payment, payment_value);
        let payment_id = ids::condition(agreement, s.payment, payment_value);
        let specs = [
            (s.payment, payment_value, 0, timeout / 2),
            (
                contract,
                ids::service_value(offer.did, consumer, payment_id),
                0,
                timeout,
            ),
        ];
        self.store_create(cx, service.template(&a), seed, consumer, &specs)?;
        Ok(agreement)
    }

    /// The price of an offer as a template validates it.
    fn template_price(&self, service: Service, offer: &OfferArgs) -> R<U256> {
        let s = *self.a.suite();
        let refused = [
            s.payment,
            s.agreement_store,
            service.condition(&self.a),
            service.template(&self.a),
            s.asset_registry,
        ];
        Self::price(&offer.receivers, &offer.amounts, &refused)
    }

    /// `template.createAgreementFor(consumer, ...)` called by the payment condition. Returns the
    /// agreement id and the service contract the template answers.
    #[allow(clippy::too_many_arguments)]
    fn create_for(
        &mut self,
        cx: &mut Ctx<'_>,
        template: Address,
        consumer: Address,
        seed: B256,
        offer: &OfferArgs,
        sig: &OfferSig,
        timeout: u32,
        fee_bps: u16,
    ) -> R<(B256, Address)> {
        let a = self.a.clone();
        let service = if template == a.suite().access_template {
            Service::Access
        } else if template == a.suite().compute_template {
            Service::Compute
        } else if template == a.rogue {
            let script = self.rogue.clone();
            let mut agreement = script.agreement;
            if !script.specs.is_empty() {
                let created =
                    self.store_create(cx, a.rogue, B256::ZERO, script.consumer, &script.specs)?;
                if agreement.is_zero() {
                    agreement = created;
                }
            }
            return Ok((agreement, script.service));
        } else {
            // No such function (or no code): the call reverts without data.
            return fail(EMPTY);
        };
        let fee = Self::fee_of(self.template_price(service, offer)?, fee_bps)?;
        let agreement =
            self.template_create(cx, service, seed, consumer, offer, sig, timeout, fee)?;
        Ok((agreement, service.condition(&a)))
    }

    /// `PaymentCondition._createAndPrice`: the agreement, its payment condition and the total.
    #[allow(clippy::too_many_arguments)]
    fn create_and_price(
        &mut self,
        cx: &mut Ctx<'_>,
        payer: Address,
        template: Address,
        seed: B256,
        offer: &OfferArgs,
        sig: &OfferSig,
        timeout: u32,
        max_total: U256,
    ) -> R<(B256, U256)> {
        let s = *self.a.suite();
        let bps = self.fee.1;
        let (agreement, service) =
            self.create_for(cx, template, payer, seed, offer, sig, timeout, bps)?;
        let refused = [s.payment, s.agreement_store, service, Address::ZERO];
        let price = Self::price(&offer.receivers, &offer.amounts, &refused)?;
        let fee = Self::fee_of(price, bps)?;
        let Some(total) = price.checked_add(fee) else {
            return fail(OVERFLOW);
        };
        if total > max_total {
            return fail("TotalAboveMaximum");
        }
        let payment = Payment {
            token: offer.token,
            receivers: offer.receivers.clone(),
            amounts: offer.amounts.clone(),
            fee,
        };
        let id = ids::condition(
            agreement,
            s.payment,
            ids::payment_value(offer.did, payer, service, &payment),
        );
        Ok((id, total))
    }

    /// `PermitToken.permit` inside a `try`: applied when valid, ignored otherwise.
    fn permit(
        &mut self,
        cx: &mut Ctx<'_>,
        token: Address,
        owner: Address,
        value: U256,
        p: &PermitArgs,
    ) {
        if self.a.kind_of(token) != Some(TokenKind::Permit) {
            return;
        }
        let nonce = self.nonces.get(&owner).copied().unwrap_or_default();
        let valid = U256::from(self.time) <= p.deadline
            && p.owner == owner
            && p.value == value
            && p.nonce == nonce
            && p.signer.is_some_and(|k| self.key_address(k) == Some(owner));
        if valid {
            let spender = self.a.suite().payment;
            self.nonces.insert(owner, nonce + U256::from(1));
            self.ledger(token)
                .allowances
                .insert((owner, spender), value);
            cx.dirty.allowances.insert((token, owner, spender));
            cx.dirty.nonces.insert(owner);
        }
    }

    /// The payment condition's `_pay`: push, or credit when the push fails.
    fn pay(
        &mut self,
        cx: &mut Ctx<'_>,
        agreement: B256,
        token: Address,
        to: Address,
        amount: U256,
    ) {
        let escrow = self.a.suite().payment;
        let sent = if token.is_zero() {
            self.send_eth(cx, escrow, to, amount, Gas::Limited)
        } else {
            self.try_transfer(cx, token, escrow, to, amount)
        };
        if !sent {
            *self.credits.entry((token, to)).or_default() += amount;
            *self.total_credits.entry(token).or_default() += amount;
            cx.dirty.credits.insert((token, to));
            cx.dirty.escrow_tokens.insert(token);
            cx.emit(
                escrow,
                PaymentCondition::PaymentCredited::SIGNATURE_HASH,
                agreement,
            );
        }
    }

    /// The payment condition's `_send`: full gas, reverts on failure.
    fn send(&mut self, cx: &mut Ctx<'_>, token: Address, to: Address, amount: U256) -> R {
        let escrow = self.a.suite().payment;
        if token.is_zero() {
            if self.send_eth(cx, escrow, to, amount, Gas::Full) {
                Ok(())
            } else {
                fail("EthTransferFailed")
            }
        } else {
            self.safe_transfer(cx, token, None, escrow, to, amount)
        }
    }

    fn require_fulfilled(&self, id: B256) -> R {
        if self.state(id) == CondState::Fulfilled {
            Ok(())
        } else {
            fail("DependencyNotFulfilled")
        }
    }

    /// The payment condition's id and the id of the service condition that releases it.
    fn payment_ids(
        &self,
        agreement: B256,
        did: B256,
        payer: Address,
        service: Address,
        payment: &Payment,
    ) -> (B256, B256) {
        let pc = self.a.suite().payment;
        let id = ids::condition(
            agreement,
            pc,
            ids::payment_value(did, payer, service, payment),
        );
        let service_id = ids::condition(agreement, service, ids::service_value(did, payer, id));
        (id, service_id)
    }

    fn release(
        &mut self,
        cx: &mut Ctx<'_>,
        agreement: B256,
        did: B256,
        payer: Address,
        service: Address,
        payment: &Payment,
    ) -> R {
        let pc = self.a.suite().payment;
        self.guard(cx, pc)?;
        let (id, service_id) = self.payment_ids(agreement, did, payer, service, payment);
        if self.state(service_id) != CondState::Fulfilled {
            return fail("ServiceNotFulfilled");
        }
        self.store_settle(cx, pc, id, true)?;
        let token = payment.token;
        if !payment.fee.is_zero() {
            let accrued = self.accrued.entry(token).or_default();
            *accrued = match accrued.checked_add(payment.fee) {
                Some(x) => x,
                None => return fail(OVERFLOW),
            };
            cx.dirty.escrow_tokens.insert(token);
        }
        let mut total = U256::ZERO;
        for (i, to) in payment.receivers.iter().enumerate() {
            let Some(amount) = payment.amounts.get(i).copied() else {
                return fail("Panic(0x32)");
            };
            total = match total.checked_add(amount) {
                Some(t) => t,
                None => return fail(OVERFLOW),
            };
            self.pay(cx, agreement, token, *to, amount);
        }
        cx.emit(
            pc,
            PaymentCondition::PaymentReleased::SIGNATURE_HASH,
            agreement,
        );
        Self::unguard(cx, pc);
        Ok(())
    }

    fn refund(
        &mut self,
        cx: &mut Ctx<'_>,
        agreement: B256,
        did: B256,
        payer: Address,
        service: Address,
        payment: &Payment,
    ) -> R {
        let pc = self.a.suite().payment;
        self.guard(cx, pc)?;
        let (id, service_id) = self.payment_ids(agreement, did, payer, service, payment);
        let state = self.state(service_id);
        if state != CondState::Aborted && state != CondState::Uninitialized {
            return fail("ServiceNotAborted");
        }
        self.store_settle(cx, pc, id, false)?;
        let Some(total) = payment.total() else {
            return fail(OVERFLOW);
        };
        self.pay(cx, agreement, payment.token, payer, total);
        cx.emit(
            pc,
            PaymentCondition::PaymentRefunded::SIGNATURE_HASH,
            agreement,
        );
        Self::unguard(cx, pc);
        Ok(())
    }

    // ---- Dispatch ----

    /// Runs `call` from `sender` with `value` wei.
    fn invoke(&mut self, cx: &mut Ctx<'_>, sender: Address, call: &Call, value: U256) -> R {
        let a = self.a.clone();
        let s = *a.suite();
        let target = call.target(&a);
        if call.is_clock() {
            return Ok(());
        }
        if !a.is_contract(target) {
            // An account without code: the call succeeds and only moves the value.
            return self.move_eth(sender, target, value);
        }
        let payable = matches!(
            call,
            Call::Pay { .. } | Call::Lock { .. } | Call::RogueExecute { .. } | Call::SendEth { .. }
        );
        if !payable && !value.is_zero() {
            return fail(EMPTY);
        }
        // The value moves to the callee before its code runs.
        if !matches!(call, Call::SendEth { .. }) {
            self.move_eth(sender, target, value)?;
        }
        match call {
            Call::SendEth { to, value } => {
                // Empty calldata: only `receive` functions accept it.
                if *to == a.attacker {
                    if self.send_eth(cx, sender, *to, *value, Gas::Full) {
                        Ok(())
                    } else {
                        fail(EMPTY)
                    }
                } else if *to == a.reverter {
                    fail("Error(no ETH)")
                } else if *to == a.gas_burner {
                    fail("halt")
                } else {
                    // No receive function (the payment condition included): reverts.
                    fail(EMPTY)
                }
            }
            // ---- Registry ----
            Call::Register {
                seed,
                checksum,
                url,
                providers,
            } => self
                .register(
                    cx,
                    ids::did(*seed, sender),
                    sender,
                    *checksum,
                    url,
                    providers,
                )
                .map(|_| ()),
            Call::RegisterDerived {
                seed,
                checksum,
                url,
                providers,
                sources,
                ..
            } => {
                let did = ids::did(*seed, sender);
                self.register(cx, did, sender, *checksum, url, providers)?;
                for source in sources {
                    self.record_derivation(did, *source, sender)?;
                }
                Ok(())
            }
            Call::RegisterResult {
                owner,
                activity,
                checksum,
                url,
                sources,
            } => {
                if owner.is_zero() {
                    return fail("InvalidAddress");
                }
                if sources.is_empty() {
                    return fail("NoSources");
                }
                // The result is served by its agent, the caller.
                let did = ids::result_did(*activity, *owner, sender);
                self.register(cx, did, *owner, *checksum, url, &[])?;
                self.add_provider(cx, did, sender)?;
                for source in sources {
                    self.record_derivation(did, *source, sender)?;
                }
                Ok(())
            }
            Call::UpdateMetadata { did, checksum, url } => {
                self.require_manager(*did, sender)?;
                Self::require_metadata(*checksum, url)?;
                let asset = self.assets.get_mut(did).expect("exists");
                asset.checksum = *checksum;
                asset.url.clone_from(url);
                asset.offer_epoch += 1;
                cx.dirty.assets.insert(*did);
                Ok(())
            }
            Call::TransferOwnership { did, new_owner } => {
                self.require_owner(*did, sender)?;
                if new_owner.is_zero() || *new_owner == sender {
                    return fail("InvalidAddress");
                }
                self.assets.get_mut(did).expect("exists").pending_owner = *new_owner;
                cx.dirty.assets.insert(*did);
                Ok(())
            }
            Call::CancelOwnershipTransfer { did } => {
                self.require_owner(*did, sender)?;
                let asset = self.assets.get_mut(did).expect("exists");
                if asset.pending_owner.is_zero() {
                    return fail("NoPendingOwner");
                }
                asset.pending_owner = Address::ZERO;
                cx.dirty.assets.insert(*did);
                Ok(())
            }
            Call::AcceptOwnership { did } => {
                self.require_exists(*did)?;
                let asset = self.assets.get_mut(did).expect("exists");
                if asset.pending_owner != sender {
                    return fail("NotPendingOwner");
                }
                // A new owner epoch: every provider and delegate of the previous owner is gone.
                asset.pending_owner = Address::ZERO;
                asset.owner = sender;
                asset.owner_epoch += 1;
                asset.offer_epoch += 1;
                asset.providers.clear();
                asset.delegates.clear();
                cx.dirty.assets.insert(*did);
                Ok(())
            }
            Call::RevokeOffers { did } => {
                self.require_exists(*did)?;
                if !self.can_serve(*did, sender) {
                    return fail("NotAssetServer");
                }
                self.assets.get_mut(did).expect("exists").offer_epoch += 1;
                cx.dirty.assets.insert(*did);
                Ok(())
            }
            Call::AddProvider { did, provider } => {
                self.require_manager(*did, sender)?;
                self.add_provider(cx, *did, *provider)
            }
            Call::RemoveProvider { did, provider } => {
                self.require_manager(*did, sender)?;
                let asset = self.assets.get_mut(did).expect("exists");
                if !asset.providers.remove(provider) {
                    return fail("ProviderNotFound");
                }
                asset.offer_epoch += 1;
                cx.dirty.assets.insert(*did);
                Ok(())
            }
            Call::GrantPermission { did, delegate } => {
                self.require_owner(*did, sender)?;
                if delegate.is_zero() {
                    return fail("InvalidAddress");
                }
                let asset = self.assets.get_mut(did).expect("exists");
                if !asset.delegates.insert(*delegate) {
                    return fail("PermissionUnchanged");
                }
                cx.dirty.assets.insert(*did);
                Ok(())
            }
            Call::RevokePermission { did, delegate } => {
                self.require_owner(*did, sender)?;
                let asset = self.assets.get_mut(did).expect("exists");
                if !asset.delegates.remove(delegate) {
                    return fail("PermissionUnchanged");
                }
                asset.offer_epoch += 1;
                cx.dirty.assets.insert(*did);
                Ok(())
            }
            Call::ResignProvider { did } => {
                self.require_exists(*did)?;
                let asset = self.assets.get_mut(did).expect("exists");
                if !asset.providers.remove(&sender) {
                    return fail("ProviderNotFound");
                }
                asset.offer_epoch += 1;
                cx.dirty.assets.insert(*did);
                Ok(())
            }
            Call::RecordUse { did, .. } => {
                self.require_exists(*did)?;
                if !self.can_serve(*did, sender) {
                    return fail("NotAssetServer");
                }
                Ok(())
            }
            Call::RecordDerivation { did, source, .. } => {
                self.require_exists(*did)?;
                self.record_derivation(*did, *source, sender)
            }
            // ---- Store ----
            Call::ProposeTemplate { template } => {
                if !a.is_contract(*template) {
                    return fail("TemplateNotContract");
                }
                let state = self.template_state(*template);
                if state != TemplateState::None {
                    return fail("InvalidTemplateState");
                }
                self.templates.insert(*template, TemplateState::Proposed);
                cx.dirty.templates.insert(*template);
                Ok(())
            }
            Call::ApproveTemplate { template } => {
                self.only_role(Role::Governor, sender)?;
                if self.template_state(*template) != TemplateState::Proposed {
                    return fail("InvalidTemplateState");
                }
                self.templates.insert(*template, TemplateState::Approved);
                cx.dirty.templates.insert(*template);
                Ok(())
            }
            Call::RevokeTemplate { template } => {
                self.only_role(Role::Governor, sender)?;
                let state = self.template_state(*template);
                if state != TemplateState::Proposed && state != TemplateState::Approved {
                    return fail("InvalidTemplateState");
                }
                self.templates.insert(*template, TemplateState::Revoked);
                cx.dirty.templates.insert(*template);
                Ok(())
            }
            Call::GrantRole { role, account } => {
                if *role == Role::Admin {
                    return fail("AccessControlEnforcedDefaultAdminRules");
                }
                self.only_role(Role::Admin, sender)?;
                self.roles.insert((*role, *account));
                cx.dirty.roles.insert((*role, *account));
                Ok(())
            }
            Call::RevokeRole { role, account } => {
                if *role == Role::Admin {
                    return fail("AccessControlEnforcedDefaultAdminRules");
                }
                self.only_role(Role::Admin, sender)?;
                self.roles.remove(&(*role, *account));
                cx.dirty.roles.insert((*role, *account));
                Ok(())
            }
            Call::RenounceRole { role, account } => {
                if *role == Role::Admin && self.roles.contains(&(Role::Admin, *account)) {
                    // The default admin renounces only through a scheduled transfer.
                    return fail("AccessControlEnforcedDefaultAdminDelay");
                }
                if *account != sender {
                    return fail("AccessControlBadConfirmation");
                }
                self.roles.remove(&(*role, *account));
                cx.dirty.roles.insert((*role, *account));
                Ok(())
            }
            Call::StoreCreate { seed, consumer, .. } => self
                .store_create(cx, sender, *seed, *consumer, &[])
                .map(|_| ()),
            Call::StoreFulfil { condition } => self.store_fulfil(cx, sender, *condition),
            Call::StoreAbort { condition } => self.store_abort(cx, sender, *condition),
            Call::StoreSettle {
                condition,
                released,
            } => self.store_settle(cx, sender, *condition, *released),
            // ---- Templates ----
            Call::CreateAgreement {
                service,
                seed,
                offer,
                sig,
                timeout,
                max_total,
            } => {
                let price = self.template_price(*service, offer)?;
                let fee = Self::fee_of(price, self.fee.1)?;
                let Some(total) = price.checked_add(fee) else {
                    return fail(OVERFLOW);
                };
                if total > *max_total {
                    return fail("TotalAboveMaximum");
                }
                self.template_create(cx, *service, *seed, sender, offer, sig, *timeout, fee)
                    .map(|_| ())
            }
            Call::CreateAgreementFor {
                service,
                consumer,
                seed,
                offer,
                sig,
                timeout,
                fee_bps,
            } => {
                if sender != s.payment {
                    return fail("NotPaymentCondition");
                }
                let fee = Self::fee_of(self.template_price(*service, offer)?, *fee_bps)?;
                self.template_create(cx, *service, *seed, *consumer, offer, sig, *timeout, fee)
                    .map(|_| ())
            }
            Call::RogueCreate {
                seed,
                consumer,
                specs,
                ..
            } => {
                let specs = Self::specs(&a, specs);
                self.store_create(cx, a.rogue, *seed, *consumer, &specs)
                    .map(|_| ())
            }
            Call::RogueScript {
                agreement,
                service,
                consumer,
                did,
                specs,
            } => {
                self.rogue = RogueScript {
                    agreement: *agreement,
                    service: *service,
                    consumer: *consumer,
                    did: *did,
                    specs: Self::specs(&a, specs),
                };
                Ok(())
            }
            Call::RogueExecute { inner, value } => {
                // The rogue template calls `inner` as itself with the value it was sent.
                self.invoke(cx, a.rogue, inner, *value)
            }
            Call::Passthrough {
                seed,
                did: _,
                specs,
            } => {
                let specs = Self::specs(&a, specs);
                self.store_create(cx, target, *seed, sender, &specs)
                    .map(|_| ())
            }
            // ---- Payment ----
            Call::SetNetworkFee { receiver, bps } => {
                if !self.roles.contains(&(Role::Governor, sender)) {
                    return fail("NotGovernor");
                }
                if *bps > MAX_FEE_BPS {
                    return fail("FeeTooHigh");
                }
                if *bps != 0 && receiver.is_zero() {
                    return fail("InvalidFeeReceiver");
                }
                self.fee = (*receiver, *bps);
                cx.dirty.fee = true;
                Ok(())
            }
            Call::Pay {
                template,
                seed,
                offer,
                sig,
                timeout,
                max_total,
                ..
            } => {
                self.guard(cx, s.payment)?;
                let (id, total) = self.create_and_price(
                    cx, sender, *template, *seed, offer, sig, *timeout, *max_total,
                )?;
                self.collect(cx, id, sender, offer.token, total, value)?;
                Self::unguard(cx, s.payment);
                Ok(())
            }
            Call::PayWithPermit {
                template,
                seed,
                offer,
                sig,
                timeout,
                max_total,
                permit,
            } => {
                self.guard(cx, s.payment)?;
                if offer.token.is_zero() {
                    return fail("PermitForEth");
                }
                let (id, total) = self.create_and_price(
                    cx, sender, *template, *seed, offer, sig, *timeout, *max_total,
                )?;
                if !a.is_contract(offer.token) {
                    return fail(EMPTY);
                }
                self.permit(cx, offer.token, sender, *max_total, permit);
                self.collect(cx, id, sender, offer.token, total, U256::ZERO)?;
                Self::unguard(cx, s.payment);
                Ok(())
            }
            Call::Lock {
                agreement,
                did,
                service,
                payment,
                ..
            } => {
                self.guard(cx, s.payment)?;
                let refused = [s.payment, s.agreement_store, *service, Address::ZERO];
                let price = Self::price(&payment.receivers, &payment.amounts, &refused)?;
                let Some(total) = price.checked_add(payment.fee) else {
                    return fail(OVERFLOW);
                };
                let id = ids::condition(
                    *agreement,
                    s.payment,
                    ids::payment_value(*did, sender, *service, payment),
                );
                self.collect(cx, id, sender, payment.token, total, value)?;
                Self::unguard(cx, s.payment);
                Ok(())
            }
            // ---- Service conditions ----
            Call::Fulfil {
                agreement,
                did,
                consumer,
                payment_id,
                ..
            } => {
                if !self.can_serve(*did, sender) {
                    return fail("NotAssetServer");
                }
                self.require_fulfilled(*payment_id)?;
                let id = ids::condition(
                    *agreement,
                    target,
                    ids::service_value(*did, *consumer, *payment_id),
                );
                self.store_fulfil(cx, target, id)?;
                self.served(cx, target, *agreement);
                Ok(())
            }
            Call::FulfilAndRelease {
                agreement,
                did,
                consumer,
                payment,
                ..
            } => {
                if !self.can_serve(*did, sender) {
                    return fail("NotAssetServer");
                }
                let (_, service_id) =
                    self.payment_ids(*agreement, *did, *consumer, target, payment);
                self.store_fulfil(cx, target, service_id)?;
                self.served(cx, target, *agreement);
                self.release(cx, *agreement, *did, *consumer, target, payment)
            }
            Call::AbortTimedOut {
                contract,
                condition,
            } => {
                if !a.condition_contracts().contains(contract) {
                    return fail(EMPTY);
                }
                if !self.is_timed_out(*condition) {
                    return fail("ConditionNotTimedOut");
                }
                self.store_abort(cx, *contract, *condition)
            }
            Call::Release {
                agreement,
                did,
                payer,
                service,
                payment,
            } => self.release(cx, *agreement, *did, *payer, *service, payment),
            Call::Refund {
                agreement,
                did,
                payer,
                service,
                payment,
            } => self.refund(cx, *agreement, *did, *payer, *service, payment),
            Call::Withdraw { token, to } => {
                self.guard(cx, s.payment)?;
                if to.is_zero() {
                    return fail("InvalidRecipient");
                }
                let amount = self
                    .credits
                    .get(&(*token, sender))
                    .copied()
                    .unwrap_or_default();
                if amount.is_zero() {
                    return fail("NothingToWithdraw");
                }
                self.credits.insert((*token, sender), U256::ZERO);
                *self.total_credits.entry(*token).or_default() -= amount;
                cx.dirty.credits.insert((*token, sender));
                cx.dirty.escrow_tokens.insert(*token);
                self.send(cx, *token, *to, amount)?;
                cx.emit(
                    s.payment,
                    PaymentCondition::CreditWithdrawn::SIGNATURE_HASH,
                    sender.into_word(),
                );
                Self::unguard(cx, s.payment);
                Ok(())
            }
            Call::WithdrawFees { token, to } => {
                self.guard(cx, s.payment)?;
                if self.fee.0 != sender {
                    return fail("NotFeeReceiver");
                }
                if to.is_zero() {
                    return fail("InvalidRecipient");
                }
                let amount = self.accrued.get(token).copied().unwrap_or_default();
                if amount.is_zero() {
                    return fail("NoFeesAccrued");
                }
                self.accrued.insert(*token, U256::ZERO);
                cx.dirty.escrow_tokens.insert(*token);
                self.send(cx, *token, *to, amount)?;
                cx.emit(
                    s.payment,
                    PaymentCondition::FeesWithdrawn::SIGNATURE_HASH,
                    sender.into_word(),
                );
                Self::unguard(cx, s.payment);
                Ok(())
            }
            // ---- Generic conditions ----
            Call::SignFulfil {
                agreement,
                signer,
                message,
                key,
                signed_agreement,
                signed_message,
            } => {
                let valid = !a.is_contract(*signer)
                    && key.is_some_and(|k| self.key_address(k) == Some(*signer))
                    && signed_agreement == agreement
                    && signed_message == message;
                if !valid {
                    return fail("InvalidSignature");
                }
                let (contract, hash) = Generic::Sign {
                    signer: *signer,
                    message: *message,
                }
                .contract_and_hash(&a);
                self.store_fulfil(cx, contract, ids::condition(*agreement, contract, hash))
            }
            Call::HashLockFulfil {
                agreement,
                preimage,
            } => {
                let (contract, hash) = Generic::HashLock {
                    preimage: preimage.clone(),
                }
                .contract_and_hash(&a);
                self.store_fulfil(cx, contract, ids::condition(*agreement, contract, hash))
            }
            Call::ThresholdFulfil {
                agreement,
                inputs,
                threshold,
            } => {
                let count = U256::from(inputs.len());
                if threshold.is_zero() || *threshold > count {
                    return fail("InvalidThreshold");
                }
                for i in 1..inputs.len() {
                    if inputs[i] <= inputs[i - 1] {
                        return fail("InputsNotAscending");
                    }
                }
                let fulfilled = inputs
                    .iter()
                    .filter(|id| self.state(**id) == CondState::Fulfilled)
                    .count();
                if U256::from(fulfilled) < *threshold {
                    return fail("ThresholdNotReached");
                }
                let (contract, hash) = Generic::Threshold {
                    inputs: inputs.clone(),
                    threshold: *threshold,
                }
                .contract_and_hash(&a);
                self.store_fulfil(cx, contract, ids::condition(*agreement, contract, hash))
            }
            // ---- Tokens and adversarial contracts ----
            Call::Mint { token, to, amount } => {
                let Some(kind) = a.kind_of(*token) else {
                    return fail(EMPTY);
                };
                if kind == TokenKind::NoReturn {
                    let ledger = self.ledger(*token);
                    let balance = ledger.balances.get(to).copied().unwrap_or_default();
                    let (Some(b), Some(supply)) = (
                        balance.checked_add(*amount),
                        ledger.supply.checked_add(*amount),
                    ) else {
                        return fail(OVERFLOW);
                    };
                    ledger.balances.insert(*to, b);
                    ledger.supply = supply;
                    cx.emit(*token, MockERC20::Transfer::SIGNATURE_HASH, B256::ZERO);
                    return Ok(());
                }
                if to.is_zero() {
                    return fail("ERC20InvalidReceiver");
                }
                self.token_update(cx, kind, *token, Address::ZERO, *to, *amount)
            }
            Call::Approve {
                token,
                spender,
                amount,
            } => {
                let Some(kind) = a.kind_of(*token) else {
                    return fail(EMPTY);
                };
                if kind != TokenKind::NoReturn && spender.is_zero() {
                    return fail("ERC20InvalidSpender");
                }
                self.ledger(*token)
                    .allowances
                    .insert((sender, *spender), *amount);
                cx.dirty.allowances.insert((*token, sender, *spender));
                Ok(())
            }
            Call::Transfer { token, to, amount } => {
                self.token_transfer(cx, *token, None, sender, *to, *amount)
            }
            Call::SetBlocked { account, blocked } => {
                if *blocked {
                    self.blocked.insert(*account);
                } else {
                    self.blocked.remove(account);
                }
                cx.dirty.blocked.insert(*account);
                Ok(())
            }
            Call::ArmToken { inner } => {
                self.token_armed = Some(inner.as_deref().cloned());
                cx.dirty.arms = true;
                Ok(())
            }
            Call::ArmAttacker { inner } => {
                self.attacker_arm = inner.as_deref().cloned();
                cx.dirty.arms = true;
                Ok(())
            }
            Call::Warp { .. } | Call::Mine { .. } => Ok(()),
        }
    }

    fn key_address(&self, actor: Actor) -> Option<Address> {
        // Only externally owned actors have keys; their protocol address is their own.
        if actor.is_contract() {
            None
        } else {
            self.a.actors.get(&actor).copied()
        }
    }

    /// The service condition's event after a fulfilment.
    fn served(&mut self, cx: &mut Ctx<'_>, contract: Address, agreement: B256) {
        let topic = if contract == self.a.suite().access {
            AccessCondition::AccessGranted::SIGNATURE_HASH
        } else {
            ComputeExecutionCondition::ComputeExecuted::SIGNATURE_HASH
        };
        cx.emit(contract, topic, agreement);
    }

    /// Condition specs as the store takes them.
    fn specs(a: &Addrs, specs: &[super::actions::Spec]) -> Vec<(Address, B256, u32, u32)> {
        specs
            .iter()
            .map(|spec| {
                let (contract, hash) = spec.generic.contract_and_hash(a);
                (contract, hash, spec.time_lock, spec.time_out)
            })
            .collect()
    }

    // ---- Registry helpers ----

    fn register(
        &mut self,
        cx: &mut Ctx<'_>,
        did: B256,
        owner: Address,
        checksum: B256,
        url: &str,
        providers: &[Address],
    ) -> R<B256> {
        Self::require_metadata(checksum, url)?;
        if self.assets.get(&did).is_some_and(|a| !a.owner.is_zero()) {
            return fail("AssetAlreadyRegistered");
        }
        self.assets.insert(
            did,
            Asset {
                owner,
                registered_at: self.time,
                owner_epoch: 0,
                offer_epoch: 0,
                pending_owner: Address::ZERO,
                checksum,
                url: url.to_owned(),
                providers: BTreeSet::new(),
                delegates: BTreeSet::new(),
            },
        );
        cx.dirty.assets.insert(did);
        cx.emit(
            self.a.suite().asset_registry,
            AssetRegistry::AssetRegistered::SIGNATURE_HASH,
            did,
        );
        for p in providers {
            self.add_provider(cx, did, *p)?;
        }
        Ok(did)
    }

    fn add_provider(&mut self, cx: &mut Ctx<'_>, did: B256, provider: Address) -> R {
        if provider.is_zero() {
            return fail("InvalidAddress");
        }
        let asset = self.assets.get_mut(&did).expect("exists");
        if !asset.providers.insert(provider) {
            return fail("ProviderAlreadyAdded");
        }
        cx.dirty.assets.insert(did);
        Ok(())
    }

    fn record_derivation(&self, did: B256, source: B256, sender: Address) -> R {
        if source == did {
            return fail("SelfDerivation");
        }
        self.require_exists(source)?;
        if !self.can_serve(source, sender) {
            return fail("NotAssetServer");
        }
        Ok(())
    }

    fn require_metadata(checksum: B256, url: &str) -> R {
        if checksum.is_zero() {
            return fail("InvalidChecksum");
        }
        if url.is_empty() {
            return fail("InvalidUrl");
        }
        Ok(())
    }

    fn require_exists(&self, did: B256) -> R<Address> {
        match self.assets.get(&did) {
            Some(asset) if !asset.owner.is_zero() => Ok(asset.owner),
            _ => fail("AssetNotFound"),
        }
    }

    fn require_owner(&self, did: B256, sender: Address) -> R {
        if self.require_exists(did)? != sender {
            return fail("NotAssetOwner");
        }
        Ok(())
    }

    fn require_manager(&self, did: B256, sender: Address) -> R {
        let owner = self.require_exists(did)?;
        if sender != owner && !self.assets[&did].delegates.contains(&sender) {
            return fail("NotAssetManager");
        }
        Ok(())
    }

    fn template_state(&self, template: Address) -> TemplateState {
        self.templates
            .get(&template)
            .copied()
            .unwrap_or(TemplateState::None)
    }

    fn only_role(&self, role: Role, sender: Address) -> R {
        if self.roles.contains(&(role, sender)) {
            Ok(())
        } else {
            fail("AccessControlUnauthorizedAccount")
        }
    }
}
