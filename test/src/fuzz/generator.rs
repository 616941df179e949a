//! The step generator: random actors and calls over every external function, with arguments
//! drawn from the dictionary of values seen (agreements and their terms, condition ids, assets,
//! amounts, time boundaries) most of the time and at random otherwise, then sometimes mutated by
//! one field, so that both the happy paths and their near misses are explored. Offers are signed
//! by the asset's servers most of the time; expired, revoked, altered, foreign (another
//! template's domain, another signer) and malformed ones are made too.

use alloy::primitives::{Address, B256, Bytes, U256};

use super::actions::{
    Call, Generic, OfferArgs, OfferSig, Payment, PermitArgs, Role, Service, Spec, Step,
};
use super::env::{Actor, CONSUMERS, Env, PROVIDERS, TokenKind};
use super::invariants::{Deal, Ghost};
use super::model::{CondState, Model, ids};
use super::rng::Rng;

/// Relative weights of the kinds of steps (see [`Kind`]).
const WEIGHTS: &[(Kind, u32)] = &[
    (Kind::Pay, 14),
    (Kind::Create, 4),
    (Kind::PayWithPermit, 3),
    (Kind::Lock, 6),
    (Kind::Fulfil, 8),
    (Kind::FulfilAndRelease, 5),
    (Kind::Release, 8),
    (Kind::Refund, 5),
    (Kind::Abort, 6),
    (Kind::Warp, 10),
    (Kind::Mine, 2),
    (Kind::Withdraw, 4),
    (Kind::WithdrawFees, 2),
    (Kind::Passthrough, 2),
    (Kind::SignFulfil, 1),
    (Kind::HashLockFulfil, 1),
    (Kind::ThresholdFulfil, 1),
    (Kind::Registry, 8),
    (Kind::Governance, 3),
    (Kind::StoreDirect, 1),
    (Kind::CreateFor, 1),
    (Kind::Rogue, 7),
    (Kind::Mint, 1),
    (Kind::Approve, 1),
    (Kind::Transfer, 2),
    (Kind::SetBlocked, 3),
    (Kind::ArmToken, 2),
    (Kind::ArmAttacker, 2),
    (Kind::SendEth, 1),
];

/// Kinds of steps the generator makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Pay,
    Create,
    PayWithPermit,
    Lock,
    Fulfil,
    FulfilAndRelease,
    Release,
    Refund,
    Abort,
    Warp,
    Mine,
    Withdraw,
    WithdrawFees,
    Passthrough,
    SignFulfil,
    HashLockFulfil,
    ThresholdFulfil,
    Registry,
    Governance,
    StoreDirect,
    CreateFor,
    Rogue,
    Mint,
    Approve,
    Transfer,
    SetBlocked,
    ArmToken,
    ArmAttacker,
    SendEth,
}

/// Kinds a re-entrant token or the attacker may be armed with.
const INNER: &[Kind] = &[
    Kind::Release,
    Kind::Refund,
    Kind::Withdraw,
    Kind::WithdrawFees,
    Kind::Lock,
    Kind::Abort,
    Kind::Fulfil,
    Kind::FulfilAndRelease,
    Kind::Pay,
];

/// Makes steps for one sequence.
#[derive(Debug)]
pub struct Generator<'a> {
    rng: &'a mut Rng,
    env: &'a Env,
    model: &'a Model,
    ghost: &'a Ghost,
}

impl<'a> Generator<'a> {
    /// A generator over the current state of a sequence.
    pub fn new(rng: &'a mut Rng, env: &'a Env, model: &'a Model, ghost: &'a Ghost) -> Self {
        Self {
            rng,
            env,
            model,
            ghost,
        }
    }

    /// The next step.
    pub fn step(&mut self) -> Step {
        let weights: Vec<u32> = WEIGHTS.iter().map(|(_, w)| *w).collect();
        let kind = WEIGHTS[self.rng.weighted(&weights)].0;
        self.make(kind, false)
    }

    fn make(&mut self, kind: Kind, inner: bool) -> Step {
        let any = self.any_actor();
        match kind {
            Kind::Pay => self.pay(inner),
            Kind::Create => self.create(),
            Kind::PayWithPermit => self.pay_with_permit(),
            Kind::Lock => self.lock(),
            Kind::Fulfil | Kind::FulfilAndRelease => self.fulfil(kind == Kind::FulfilAndRelease),
            Kind::Release | Kind::Refund => self.settle(kind == Kind::Release),
            Kind::Abort => self.abort(),
            Kind::Warp => Step {
                actor: Actor::Governor,
                call: Call::Warp {
                    seconds: self.warp(),
                },
            },
            Kind::Mine => Step {
                actor: Actor::Governor,
                call: Call::Mine {
                    blocks: self.rng.range(1, 20),
                },
            },
            Kind::Withdraw => self.withdraw(),
            Kind::WithdrawFees => self.withdraw_fees(),
            Kind::Passthrough => self.passthrough(),
            Kind::SignFulfil => self.sign_fulfil(),
            Kind::HashLockFulfil => self.hash_lock_fulfil(),
            Kind::ThresholdFulfil => self.threshold_fulfil(),
            Kind::Registry => self.registry(),
            Kind::Governance => self.governance(),
            Kind::StoreDirect => {
                let condition = self.condition_id();
                let call = match self.rng.below(4) {
                    0 => Call::StoreFulfil { condition },
                    1 => Call::StoreAbort { condition },
                    2 => Call::StoreSettle {
                        condition,
                        released: self.rng.chance(50),
                    },
                    _ => Call::StoreCreate {
                        seed: self.rng.b256(),
                        consumer: self.pool_address(),
                        did: self.did(),
                    },
                };
                Step { actor: any, call }
            }
            Kind::CreateFor => {
                let service = self.service();
                let (offer, sig) = self.offer(service);
                Step {
                    actor: any,
                    call: Call::CreateAgreementFor {
                        service,
                        consumer: self.pool_address(),
                        seed: self.seed(),
                        offer,
                        sig,
                        timeout: 0,
                        fee_bps: self.model.fee.1,
                    },
                }
            }
            Kind::Rogue => self.rogue(),
            Kind::Mint => Step {
                actor: any,
                call: Call::Mint {
                    token: self.erc20(),
                    to: if self.rng.chance(30) {
                        self.env.rogue
                    } else {
                        self.pool_address()
                    },
                    amount: self.amount(),
                },
            },
            Kind::Approve => {
                let spender = if self.rng.chance(70) {
                    self.env.suite.payment
                } else {
                    self.pool_address()
                };
                let amount = match self.rng.below(3) {
                    0 => U256::MAX,
                    1 => U256::ZERO,
                    _ => self.amount(),
                };
                Step {
                    actor: self.holder_actor(),
                    call: Call::Approve {
                        token: self.erc20(),
                        spender,
                        amount,
                    },
                }
            }
            Kind::Transfer => {
                let to = if self.rng.chance(40) {
                    self.env.suite.payment
                } else {
                    self.pool_address()
                };
                Step {
                    actor: self.holder_actor(),
                    call: Call::Transfer {
                        token: self.erc20(),
                        to,
                        amount: self.small_amount(),
                    },
                }
            }
            Kind::SetBlocked => {
                let account = match self.rng.below(4) {
                    0 => self.env.suite.payment,
                    1 => self
                        .deal()
                        .and_then(|d| d.payment.receivers.first().copied())
                        .unwrap_or(self.env.consumers[0]),
                    _ => self.pool_address(),
                };
                Step {
                    actor: any,
                    call: Call::SetBlocked {
                        account,
                        blocked: self.rng.chance(60),
                    },
                }
            }
            Kind::ArmToken | Kind::ArmAttacker => {
                let payload = if self.rng.chance(10) {
                    None
                } else {
                    let k = *self.rng.pick(INNER);
                    Some(Box::new(self.make(k, true).call))
                };
                let call = if kind == Kind::ArmToken {
                    Call::ArmToken { inner: payload }
                } else {
                    Call::ArmAttacker { inner: payload }
                };
                Step { actor: any, call }
            }
            Kind::SendEth => {
                let to = match self.rng.below(4) {
                    0 => self.env.suite.payment,
                    1 => self.env.attacker,
                    _ => self.pool_address(),
                };
                let actor = self.eoa_actor();
                Step {
                    actor,
                    call: Call::SendEth {
                        to,
                        value: self.small_amount(),
                    },
                }
            }
        }
    }

    // ---- Actors and addresses ----

    fn any_actor(&mut self) -> Actor {
        *self.rng.pick(&Actor::all())
    }

    fn eoa_actor(&mut self) -> Actor {
        loop {
            let actor = self.any_actor();
            if !actor.is_contract() {
                return actor;
            }
        }
    }

    fn consumer_actor(&mut self) -> Actor {
        if self.rng.chance(10) {
            Actor::Attacker
        } else {
            Actor::Consumer(self.rng.below(CONSUMERS as u64) as u8)
        }
    }

    /// Actors holding tokens at the start.
    fn holder_actor(&mut self) -> Actor {
        match self.rng.below(5) {
            0 => Actor::Attacker,
            1 => Actor::Reverter,
            _ => Actor::Consumer(self.rng.below(CONSUMERS as u64) as u8),
        }
    }

    fn actor_of(&self, address: Address) -> Option<Actor> {
        self.env
            .addrs
            .actors
            .iter()
            .find(|(_, a)| **a == address)
            .map(|(actor, _)| *actor)
    }

    fn pool_address(&mut self) -> Address {
        let pool = self.env.address_pool();
        *self.rng.pick(&pool)
    }

    /// A receiver of a payment: mostly providers and keepers, sometimes adversarial.
    fn receiver(&mut self) -> Address {
        let e = self.env;
        match self.rng.below(12) {
            0..=3 => e.providers[self.rng.index(PROVIDERS)],
            4 | 5 => e.keepers[self.rng.index(PROVIDERS)],
            6 => e.attacker,
            7 => e.reverter,
            8 => e.gas_burner,
            9 => e.strangers[self.rng.index(e.strangers.len())],
            10 => e.consumers[self.rng.index(CONSUMERS)],
            _ => self.pool_address(),
        }
    }

    // ---- Values ----

    fn token(&mut self) -> Address {
        let kind = match self.rng.below(20) {
            0..=5 => TokenKind::Eth,
            6..=9 => TokenKind::Plain,
            10 | 11 => TokenKind::NoReturn,
            12 | 13 => TokenKind::FeeOnTransfer,
            14..=16 => TokenKind::Blocklist,
            17 => TokenKind::Permit,
            _ => TokenKind::Reentrant,
        };
        self.env.token(kind)
    }

    fn erc20(&mut self) -> Address {
        loop {
            let token = self.token();
            if !token.is_zero() {
                return token;
            }
        }
    }

    fn small_amount(&mut self) -> U256 {
        U256::from(self.rng.range(1, 10_000))
    }

    fn amount(&mut self) -> U256 {
        match self.rng.below(20) {
            0..=7 => U256::from(self.rng.range(1, 10_000)),
            8..=11 => {
                let seen = &self.ghost.amounts;
                if seen.is_empty() {
                    U256::from(1)
                } else {
                    seen[self.rng.index(seen.len())]
                }
            }
            12..=14 => U256::from(*self.rng.pick(&[1u64, 2, 99, 100, 101, 9_999, 10_000])),
            15 | 16 => U256::from(self.rng.range(1_000_000, 1_000_000_000_000)),
            17 => *self
                .rng
                .pick(&[U256::MAX, U256::from(1) << 255, U256::MAX - U256::from(1)]),
            _ => U256::from(self.rng.range(1, 1_000)),
        }
    }

    fn did(&mut self) -> B256 {
        if self.rng.chance(97) && !self.ghost.dids.is_empty() {
            let dids = &self.ghost.dids;
            dids[self.rng.index(dids.len())]
        } else {
            self.rng.b256()
        }
    }

    fn seed(&mut self) -> B256 {
        if self.rng.chance(5) && !self.ghost.seeds.is_empty() {
            let seeds = &self.ghost.seeds;
            seeds[self.rng.index(seeds.len())]
        } else {
            self.rng.b256()
        }
    }

    fn condition_id(&mut self) -> B256 {
        let ids = self.ghost.all_conditions();
        if ids.is_empty() || self.rng.chance(5) {
            self.rng.b256()
        } else {
            ids[self.rng.index(ids.len())]
        }
    }

    /// A template deal: mostly a recent one.
    fn deal(&mut self) -> Option<Deal> {
        let deals = &self.ghost.deals;
        if deals.is_empty() {
            return None;
        }
        let i = if self.rng.chance(70) {
            deals.len() - 1 - self.rng.index(deals.len().min(5))
        } else {
            self.rng.index(deals.len())
        };
        Some(deals[i].clone())
    }

    /// Whether some deal's (payment, service) states satisfy `wanted`.
    fn has_deal(&self, wanted: impl Fn([CondState; 2]) -> bool) -> bool {
        self.ghost.deals.iter().any(|d| {
            wanted([
                self.model.state(d.payment_id),
                self.model.state(d.service_id),
            ])
        })
    }

    /// A deal for which `wanted` holds (given the states of its payment and service
    /// conditions), else sometimes (`any_percent`) any deal. With `hot_percent`, a deal with a
    /// time boundary at this very second comes first: that is where off-by-one errors in time
    /// checks show.
    fn deal_where(
        &mut self,
        wanted: impl Fn([CondState; 2]) -> bool,
        any_percent: u64,
        hot_percent: u64,
    ) -> Option<Deal> {
        let now = self.model.time;
        let states = |d: &Deal| {
            [
                self.model.state(d.payment_id),
                self.model.state(d.service_id),
            ]
        };
        let hot: Vec<&Deal> = self
            .ghost
            .deals
            .iter()
            .filter(|d| {
                [d.payment_id, d.service_id].iter().any(|id| {
                    self.model.conditions.get(id).is_some_and(|c| {
                        c.time_out.abs_diff(now) <= 1
                            || (c.time_lock != 0 && c.time_lock.abs_diff(now) <= 1)
                    })
                })
            })
            .collect();
        if !hot.is_empty() && self.rng.chance(hot_percent) {
            return Some(hot[self.rng.index(hot.len())].clone());
        }
        let matching: Vec<&Deal> = self
            .ghost
            .deals
            .iter()
            .filter(|d| wanted(states(d)))
            .collect();
        if matching.is_empty() || self.rng.chance(any_percent) {
            return self.deal();
        }
        Some(matching[self.rng.index(matching.len())].clone())
    }

    fn warp(&mut self) -> u64 {
        let now = self.model.time;
        if self.rng.chance(55) {
            let ahead: Vec<u64> = self.ghost.times.range(now..).copied().take(8).collect();
            if !ahead.is_empty() {
                let t = ahead[self.rng.index(ahead.len())];
                let target = match self.rng.below(3) {
                    0 => t.saturating_sub(1),
                    1 => t,
                    _ => t + 1,
                };
                return target.saturating_sub(now);
            }
        }
        match self.rng.below(8) {
            0 => 1,
            1 => 12,
            2 => 60,
            3 => 1_800,
            4 => 3_600,
            5 => 86_400,
            6 => 3 * 86_400,
            _ => self.rng.range(1, 10 * 86_400),
        }
    }

    // ---- Mutations ----

    /// With some probability changes one field of a payment.
    fn mutate_payment(&mut self, payment: &mut Payment) {
        if !self.rng.chance(12) {
            return;
        }
        match self.rng.below(6) {
            0 if !payment.amounts.is_empty() => {
                let i = self.rng.index(payment.amounts.len());
                payment.amounts[i] = if self.rng.chance(50) {
                    payment.amounts[i].saturating_add(U256::from(1))
                } else {
                    payment.amounts[i].saturating_sub(U256::from(1))
                };
            }
            1 => payment.fee = payment.fee.saturating_add(U256::from(1)),
            2 => payment.fee = U256::ZERO,
            3 if !payment.receivers.is_empty() => {
                let i = self.rng.index(payment.receivers.len());
                payment.receivers[i] = self.receiver();
            }
            4 => payment.token = self.token(),
            _ => {
                payment.receivers.push(self.receiver());
                payment.amounts.push(self.small_amount());
            }
        }
    }

    fn maybe_other_agreement(&mut self, agreement: B256) -> B256 {
        if self.rng.chance(5) {
            self.deal().map_or_else(|| self.rng.b256(), |d| d.agreement)
        } else {
            agreement
        }
    }

    fn maybe_other_address(&mut self, address: Address) -> Address {
        if self.rng.chance(5) {
            self.pool_address()
        } else {
            address
        }
    }

    fn maybe_other_id(&mut self, id: B256) -> B256 {
        if self.rng.chance(5) {
            self.condition_id()
        } else {
            id
        }
    }

    // ---- Protocol steps ----

    fn service(&mut self) -> Service {
        if self.rng.chance(60) {
            Service::Access
        } else {
            Service::Compute
        }
    }

    /// A split: 1 to 16 receivers, sometimes malformed.
    fn split(&mut self) -> (Vec<Address>, Vec<U256>) {
        let n = match self.rng.below(10) {
            0..=5 => 1,
            6..=8 => 2,
            _ => self.rng.range(0, 17) as usize,
        };
        let mut receivers: Vec<Address> = (0..n).map(|_| self.receiver()).collect();
        let mut amounts: Vec<U256> = (0..n).map(|_| self.amount()).collect();
        if self.rng.chance(3) {
            amounts.push(self.small_amount());
        }
        if self.rng.chance(3) && !amounts.is_empty() {
            amounts[0] = U256::ZERO;
        }
        if self.rng.chance(3) && !receivers.is_empty() {
            // A protocol contract as receiver (refused).
            let s = self.env.suite;
            receivers[0] =
                *self
                    .rng
                    .pick(&[s.payment, s.agreement_store, s.access, s.access_template]);
        }
        (receivers, amounts)
    }

    /// An offer of a server of an asset, signed, or one of its near misses.
    fn offer(&mut self, service: Service) -> (OfferArgs, OfferSig) {
        let now = self.model.time;
        let did = self.did();
        let asset = self.model.assets.get(&did).cloned().unwrap_or_default();
        let mut servers: Vec<Address> = std::iter::once(asset.owner)
            .chain(asset.providers.iter().copied())
            .chain(asset.delegates.iter().copied())
            .filter(|a| self.actor_of(*a).is_some_and(|actor| !actor.is_contract()))
            .collect();
        servers.sort();
        let provider = if servers.is_empty() || self.rng.chance(5) {
            let actor = self.eoa_actor();
            self.env.address(actor)
        } else {
            servers[self.rng.index(servers.len())]
        };
        let (receivers, amounts) = self.split();
        let (min_timeout, max_timeout) = match self.rng.below(30) {
            0 => (3_599, 7 * 86_400),
            1 => (3_600, 90 * 86_400 + 1),
            2 => (7 * 86_400, 3_600),
            3..=6 => (3_600, 90 * 86_400),
            7..=9 => (86_400, 86_400),
            _ => (3_600, 3 * 86_400),
        };
        let expiry = match self.rng.below(30) {
            0 => now,
            1 => now.saturating_sub(1),
            2 => now + 1,
            _ => now + 86_400,
        };
        let epoch = if self.rng.chance(5) {
            asset.offer_epoch.wrapping_sub(1)
        } else {
            asset.offer_epoch
        };
        let offer = OfferArgs {
            did,
            checksum: asset.checksum,
            provider,
            token: self.token(),
            receivers,
            amounts,
            min_timeout,
            max_timeout,
            expiry,
            epoch,
        };
        let signer = match self.rng.below(30) {
            0 => None,
            1 => Some(self.eoa_actor()),
            _ => self.actor_of(provider),
        };
        let domain = if self.rng.chance(4) {
            match service {
                Service::Access => Service::Compute,
                Service::Compute => Service::Access,
            }
        } else {
            service
        };
        let signed = if self.rng.chance(5) {
            // Signed, then altered.
            let mut original = offer.clone();
            match self.rng.below(3) {
                0 => original.token = self.token(),
                1 => original.expiry += 1,
                _ => original.epoch = original.epoch.wrapping_add(1),
            }
            Some(Box::new(original))
        } else {
            None
        };
        (
            offer,
            OfferSig {
                signer,
                domain,
                signed,
            },
        )
    }

    /// The total of an offer at today's fee (saturated), or `None` when malformed.
    fn total_of(&self, offer: &OfferArgs) -> U256 {
        let price = offer
            .amounts
            .iter()
            .fold(U256::ZERO, |a, b| a.saturating_add(*b));
        self.model
            .quote(price)
            .map_or(price, |fee| price.saturating_add(fee))
    }

    fn timeout_for(&mut self, offer: &OfferArgs) -> u32 {
        match self.rng.below(10) {
            0..=5 => 0,
            6 => offer.min_timeout.saturating_sub(1),
            7 => offer.max_timeout.saturating_add(1),
            _ => self.rng.range(
                u64::from(offer.min_timeout.min(offer.max_timeout)),
                u64::from(offer.max_timeout.max(offer.min_timeout)),
            ) as u32,
        }
    }

    /// The most a consumer accepts to pay: the quoted total mostly, any fee often, a cent less
    /// now and then.
    fn max_total(&mut self, total: U256) -> U256 {
        match self.rng.below(12) {
            0 => total.saturating_sub(U256::from(1)),
            1..=4 => U256::MAX,
            _ => total,
        }
    }

    fn template_to_buy(&mut self, service: Service) -> Address {
        match self.rng.below(40) {
            0..=2 => self.env.rogue,
            3 => self.pool_address(),
            _ => service.template(&self.env.addrs),
        }
    }

    fn pay(&mut self, inner: bool) -> Step {
        let actor = self.consumer_actor();
        let service = self.service();
        let (offer, sig) = self.offer(service);
        let total = self.total_of(&offer);
        let mut value = U256::ZERO;
        if offer.token.is_zero() && !inner && !actor.is_contract() {
            value = match self.rng.below(12) {
                0 => total.saturating_add(U256::from(1)),
                1 => total.saturating_sub(U256::from(1)),
                _ => total,
            };
            // Never more than an account holds: the EVM would reject the transaction outright.
            value = value.min(U256::from(10u64).pow(U256::from(21)));
        } else if self.rng.chance(2) && !inner && !actor.is_contract() {
            value = U256::from(1);
        }
        let timeout = self.timeout_for(&offer);
        let max_total = self.max_total(total);
        Step {
            actor,
            call: Call::Pay {
                template: self.template_to_buy(service),
                seed: self.seed(),
                offer,
                sig,
                timeout,
                max_total,
                value,
            },
        }
    }

    fn pay_with_permit(&mut self) -> Step {
        let actor = Actor::Consumer(self.rng.below(CONSUMERS as u64) as u8);
        let owner = self.env.address(actor);
        let service = self.service();
        let (mut offer, sig) = self.offer(service);
        if self.rng.chance(85) {
            offer.token = self.env.token(TokenKind::Permit);
        }
        let total = self.total_of(&offer);
        let timeout = self.timeout_for(&offer);
        let max_total = self.max_total(total);
        let nonce = self.model.nonces.get(&owner).copied().unwrap_or_default();
        let now = U256::from(self.model.time);
        // The permit is for `maxTotal`.
        let mut permit = PermitArgs {
            signer: Some(actor),
            owner,
            value: max_total,
            nonce,
            deadline: now + U256::from(3_600),
        };
        match self.rng.below(20) {
            0 => permit.deadline = now.saturating_sub(U256::from(1)),
            1 => permit.value = max_total.saturating_sub(U256::from(1)),
            2 => permit.nonce += U256::from(1),
            3 => permit.signer = Some(self.eoa_actor()),
            4 => permit.signer = None,
            _ => {}
        }
        Step {
            actor,
            call: Call::PayWithPermit {
                template: self.template_to_buy(service),
                seed: self.seed(),
                offer,
                sig,
                timeout,
                max_total,
                permit,
            },
        }
    }

    fn create(&mut self) -> Step {
        let actor = self.consumer_actor();
        let service = self.service();
        let (offer, sig) = self.offer(service);
        let total = self.total_of(&offer);
        let timeout = self.timeout_for(&offer);
        let max_total = self.max_total(total);
        Step {
            actor,
            call: Call::CreateAgreement {
                service,
                seed: self.seed(),
                offer,
                sig,
                timeout,
                max_total,
            },
        }
    }

    /// `call` made by the payer of a deal: the payer's own transaction, or the rogue template's
    /// `execute` when the payer is the rogue template.
    fn as_payer(&mut self, payer: Address, call: Call) -> Step {
        if payer == self.env.rogue {
            let value = call.value();
            let call = match call {
                Call::Lock {
                    agreement,
                    did,
                    service,
                    payment,
                    ..
                } => Call::Lock {
                    agreement,
                    did,
                    service,
                    payment,
                    value,
                },
                other => other,
            };
            return Step {
                actor: Actor::Rogue,
                call: Call::RogueExecute {
                    inner: Box::new(call),
                    value,
                },
            };
        }
        let actor = if self.rng.chance(85) {
            self.actor_of(payer).unwrap_or(Actor::Attacker)
        } else {
            self.any_actor()
        };
        let call = match call {
            Call::Lock {
                agreement,
                did,
                service,
                payment,
                value,
            } => Call::Lock {
                agreement,
                did,
                service,
                payment,
                value: if actor.is_contract() {
                    U256::ZERO
                } else {
                    value
                },
            },
            other => other,
        };
        Step { actor, call }
    }

    fn lock(&mut self) -> Step {
        use CondState::Unfulfilled as U;
        let Some(deal) = self.deal_where(|[payment, _]| payment == U, 10, 30) else {
            return self.create();
        };
        let mut payment = deal.payment.clone();
        self.mutate_payment(&mut payment);
        let value = if payment.token.is_zero() {
            let total = payment.total().unwrap_or_default();
            match self.rng.below(12) {
                0 => total.saturating_add(U256::from(1)),
                1 => total.saturating_sub(U256::from(1)),
                _ => total,
            }
            .min(U256::from(10u64).pow(U256::from(21)))
        } else {
            U256::ZERO
        };
        let service = if self.rng.chance(3) {
            self.pool_address()
        } else {
            deal.service_contract
        };
        let agreement = self.maybe_other_agreement(deal.agreement);
        self.as_payer(
            deal.consumer,
            Call::Lock {
                agreement,
                did: deal.did,
                service,
                payment,
                value,
            },
        )
    }

    fn server_of(&mut self, did: B256) -> Actor {
        let mut candidates: Vec<Actor> = Vec::new();
        if let Some(asset) = self.model.assets.get(&did) {
            for a in std::iter::once(&asset.owner)
                .chain(asset.providers.iter())
                .chain(asset.delegates.iter())
            {
                if let Some(actor) = self.actor_of(*a) {
                    candidates.push(actor);
                }
            }
        }
        if candidates.is_empty() || self.rng.chance(10) {
            self.any_actor()
        } else {
            candidates[self.rng.index(candidates.len())]
        }
    }

    fn fulfil(&mut self, and_release: bool) -> Step {
        use CondState::{Fulfilled as F, Unfulfilled as U};
        // Mostly paid deals; unpaid ones too, whose service must not be fulfilled.
        let paid = self.rng.chance(80);
        let Some(deal) = self.deal_where(
            |[payment, service]| service == U && (payment == F || !paid),
            10,
            30,
        ) else {
            return self.pay(false);
        };
        let actor = self.server_of(deal.did);
        let service = match deal.service {
            Some(service) if self.rng.chance(92) => service,
            Some(Service::Access) => Service::Compute,
            _ => Service::Access,
        };
        let agreement = self.maybe_other_agreement(deal.agreement);
        let consumer = self.maybe_other_address(deal.consumer);
        let result = self.rng.b256();
        let call = if and_release {
            let mut payment = deal.payment.clone();
            self.mutate_payment(&mut payment);
            Call::FulfilAndRelease {
                service,
                agreement,
                did: deal.did,
                consumer,
                result,
                payment,
            }
        } else {
            Call::Fulfil {
                service,
                agreement,
                did: deal.did,
                consumer,
                payment_id: self.maybe_other_id(deal.payment_id),
                result,
            }
        };
        Step { actor, call }
    }

    fn settle(&mut self, release: bool) -> Step {
        use CondState::{Aborted as A, Fulfilled as F, Uninitialized as N};
        // Mostly deals ready to settle; some already settled, to try settling them again. With
        // none ready, move a deal towards settlement instead.
        let again = self.rng.chance(15);
        // Premature settlements too: a paid payment whose service is still pending.
        let early = !again && self.rng.chance(20);
        let ready = move |[payment, service]: [CondState; 2]| {
            let service_ready = if early {
                service == CondState::Unfulfilled
            } else if release {
                service == F
            } else {
                service == A || service == N
            };
            service_ready && ((payment == F) != again)
        };
        if !self.has_deal(ready) && self.rng.chance(80) {
            return if release {
                let and_release = self.rng.chance(30);
                self.fulfil(and_release)
            } else if self.rng.chance(50) {
                self.abort()
            } else {
                Step {
                    actor: Actor::Governor,
                    call: Call::Warp {
                        seconds: self.warp(),
                    },
                }
            };
        }
        let Some(deal) = self.deal_where(ready, 10, 0) else {
            return self.pay(false);
        };
        let actor = if self.rng.chance(40) {
            self.actor_of(deal.consumer).unwrap_or(Actor::Outsider(0))
        } else {
            self.any_actor()
        };
        let mut payment = deal.payment.clone();
        self.mutate_payment(&mut payment);
        let agreement = self.maybe_other_agreement(deal.agreement);
        let payer = self.maybe_other_address(deal.consumer);
        let service = if self.rng.chance(5) {
            self.pool_address()
        } else {
            deal.service_contract
        };
        let call = if release {
            Call::Release {
                agreement,
                did: deal.did,
                payer,
                service,
                payment,
            }
        } else {
            Call::Refund {
                agreement,
                did: deal.did,
                payer,
                service,
                payment,
            }
        };
        if self.rng.chance(5) {
            // The rogue template settles as itself: it has no more rights than anyone.
            return Step {
                actor: Actor::Rogue,
                call: Call::RogueExecute {
                    inner: Box::new(call),
                    value: U256::ZERO,
                },
            };
        }
        Step { actor, call }
    }

    fn abort(&mut self) -> Step {
        let s = self.env.suite;
        let now = self.model.time;
        let mut timed_out: Vec<(B256, Address)> = self
            .model
            .conditions
            .iter()
            .filter(|(_, c)| {
                c.state == CondState::Unfulfilled && c.time_out != 0 && now >= c.time_out
            })
            .map(|(id, c)| (*id, c.contract))
            .collect();
        timed_out.sort();
        let (contract, condition) = match self.rng.below(10) {
            0..=4 if !timed_out.is_empty() => {
                let (id, owner) = timed_out[self.rng.index(timed_out.len())];
                (owner, id)
            }
            0..=5 => {
                match self.deal_where(|[_, service]| service == CondState::Unfulfilled, 10, 30) {
                    Some(deal) => (deal.service_contract, deal.service_id),
                    None => (s.access, self.condition_id()),
                }
            }
            6 | 7 => match self.deal() {
                Some(deal) => (s.payment, deal.payment_id),
                None => (s.payment, self.condition_id()),
            },
            _ => {
                let id = self.condition_id();
                let owner = self.ghost.conds.get(&id).map_or(s.sign, |c| c.contract);
                (owner, id)
            }
        };
        let contract = if self.rng.chance(8) {
            *self.rng.pick(&self.env.addrs.condition_contracts())
        } else {
            contract
        };
        Step {
            actor: self.any_actor(),
            call: Call::AbortTimedOut {
                contract,
                condition,
            },
        }
    }

    // ---- The rogue template ----

    /// A payer for the rogue template's payments: consumers mostly, the rogue template itself,
    /// anyone.
    fn rogue_payer(&mut self) -> Address {
        match self.rng.below(10) {
            0..=5 => self.env.consumers[self.rng.index(CONSUMERS)],
            6 | 7 => self.env.rogue,
            _ => self.pool_address(),
        }
    }

    fn rogue_service(&mut self) -> Address {
        let s = self.env.suite;
        match self.rng.below(10) {
            0..=4 => s.access,
            5..=7 => s.compute_execution,
            8 => self.env.strangers[0],
            _ => self.pool_address(),
        }
    }

    fn rogue_payment(&mut self) -> Payment {
        let (receivers, amounts) = if self.rng.chance(85) {
            let n = self.rng.range(1, 3) as usize;
            let receivers = (0..n).map(|_| self.receiver()).collect();
            let amounts = (0..n).map(|_| self.small_amount()).collect();
            (receivers, amounts)
        } else {
            self.split()
        };
        Payment {
            token: self.token(),
            receivers,
            amounts,
            fee: if self.rng.chance(50) {
                U256::ZERO
            } else {
                self.small_amount()
            },
        }
    }

    /// Specs of an agreement of `consumer` made with `seed` by the rogue template: one or more
    /// payments (naming any payer), each with or without its service condition.
    fn rogue_specs(&mut self, seed: B256, consumer: Address, did: B256) -> Vec<Spec> {
        let pc = self.env.suite.payment;
        let payments = if self.rng.chance(75) { 1 } else { 2 };
        let shared_service = self.rogue_service();
        let mut specs = Vec::new();
        let mut agreement = B256::ZERO;
        for i in 0..payments {
            let payer = self.rogue_payer();
            // Several payments on one service, or each on its own.
            let service = if self.rng.chance(60) {
                shared_service
            } else {
                self.rogue_service()
            };
            let payment = self.rogue_payment();
            let generic = Generic::Payment {
                did,
                payer,
                service,
                payment: payment.clone(),
            };
            let time_out = match self.rng.below(4) {
                0 => 0,
                _ => self.rng.range(60, 2 * 86_400) as u32,
            };
            let value_hash = ids::payment_value(did, payer, service, &payment);
            if i == 0 {
                agreement = ids::agreement(seed, consumer, pc, value_hash);
            }
            let payment_id = ids::condition(agreement, pc, value_hash);
            specs.push(Spec {
                generic,
                time_lock: 0,
                time_out,
            });
            // The service condition that releases it, mostly; sometimes none (a service that
            // does not exist), or one for another consumer.
            if self.rng.chance(75) {
                let service_consumer = if self.rng.chance(90) {
                    payer
                } else {
                    self.pool_address()
                };
                specs.push(Spec {
                    generic: Generic::Service {
                        contract: service,
                        did,
                        consumer: service_consumer,
                        payment_id,
                    },
                    time_lock: if self.rng.chance(80) {
                        0
                    } else {
                        self.rng.range(1, 3_600) as u32
                    },
                    time_out: match self.rng.below(5) {
                        0 => 0,
                        _ => self.rng.range(3_600, 4 * 86_400) as u32,
                    },
                });
            }
        }
        if self.rng.chance(5) {
            specs.reverse();
        }
        specs
    }

    fn rogue(&mut self) -> Step {
        let actor = if self.rng.chance(80) {
            Actor::Rogue
        } else {
            self.any_actor()
        };
        let call = match self.rng.below(10) {
            0..=3 => {
                let seed = self.seed();
                let consumer = if self.rng.chance(80) {
                    self.env.consumers[self.rng.index(CONSUMERS)]
                } else {
                    self.pool_address()
                };
                let did = self.did();
                Call::RogueCreate {
                    seed,
                    consumer,
                    did,
                    specs: self.rogue_specs(seed, consumer, did),
                }
            }
            4 | 5 => {
                // Lies for `createAgreementFor`: an agreement for someone else, a known one, a
                // random one, any service.
                let consumer = if self.rng.chance(50) {
                    self.env.consumers[self.rng.index(CONSUMERS)]
                } else {
                    self.pool_address()
                };
                let did = self.did();
                let specs = if self.rng.chance(60) {
                    self.rogue_specs(B256::ZERO, consumer, did)
                } else {
                    Vec::new()
                };
                let agreement = match self.rng.below(4) {
                    0 => self.rng.b256(),
                    1 => self.deal().map_or(B256::ZERO, |d| d.agreement),
                    _ => B256::ZERO,
                };
                Call::RogueScript {
                    agreement,
                    service: self.rogue_service(),
                    consumer,
                    did,
                    specs,
                }
            }
            6 => {
                // Buy through the rogue template.
                let step = self.pay(false);
                if let Call::Pay {
                    seed,
                    offer,
                    sig,
                    timeout,
                    max_total,
                    value,
                    ..
                } = step.call
                {
                    return Step {
                        actor: step.actor,
                        call: Call::Pay {
                            template: self.env.rogue,
                            seed,
                            offer,
                            sig,
                            timeout,
                            max_total,
                            value,
                        },
                    };
                }
                return step;
            }
            _ => {
                // The rogue template calls the protocol as itself.
                let condition = self.condition_id();
                let inner = match self.rng.below(8) {
                    0 => Call::StoreFulfil { condition },
                    1 => Call::StoreAbort { condition },
                    2 => Call::StoreSettle {
                        condition,
                        released: self.rng.chance(50),
                    },
                    3 => Call::Approve {
                        token: self.erc20(),
                        spender: self.env.suite.payment,
                        amount: U256::MAX,
                    },
                    4 => Call::Withdraw {
                        token: self.token(),
                        to: self.pool_address(),
                    },
                    5 => {
                        let service = self.service();
                        let (offer, sig) = self.offer(service);
                        Call::CreateAgreementFor {
                            service,
                            consumer: self.pool_address(),
                            seed: self.seed(),
                            offer,
                            sig,
                            timeout: 0,
                            fee_bps: 0,
                        }
                    }
                    6 => return self.lock(),
                    _ => {
                        let release = self.rng.chance(50);
                        return self.settle(release);
                    }
                };
                Call::RogueExecute {
                    inner: Box::new(inner),
                    value: U256::ZERO,
                }
            }
        };
        Step { actor, call }
    }

    fn withdraw(&mut self) -> Step {
        let mut owed: Vec<(Address, Address)> = self
            .model
            .credits
            .iter()
            .filter(|(_, v)| !v.is_zero())
            .map(|(k, _)| *k)
            .collect();
        owed.sort();
        if owed.is_empty() && self.rng.chance(70) {
            return self.settle(true);
        }
        let (actor, token) = if !owed.is_empty() && self.rng.chance(80) {
            let (token, account) = owed[self.rng.index(owed.len())];
            match self.actor_of(account) {
                Some(actor) => (actor, token),
                None => (self.any_actor(), token),
            }
        } else {
            (self.any_actor(), self.token())
        };
        let to = if self.rng.chance(55) {
            self.env.address(actor)
        } else {
            self.pool_address()
        };
        Step {
            actor,
            call: Call::Withdraw { token, to },
        }
    }

    fn withdraw_fees(&mut self) -> Step {
        let actor = if self.rng.chance(75) {
            self.actor_of(self.model.fee.0)
                .unwrap_or(Actor::FeeReceiver)
        } else {
            self.any_actor()
        };
        let mut accrued: Vec<Address> = self
            .model
            .accrued
            .iter()
            .filter(|(_, v)| !v.is_zero())
            .map(|(k, _)| *k)
            .collect();
        // Hash maps iterate in a random order: sort, so a seed means one run.
        accrued.sort();
        let token = if !accrued.is_empty() && self.rng.chance(80) {
            accrued[self.rng.index(accrued.len())]
        } else {
            self.token()
        };
        let to = if self.rng.chance(60) {
            self.env.address(actor)
        } else {
            self.pool_address()
        };
        Step {
            actor,
            call: Call::WithdrawFees { token, to },
        }
    }

    // ---- Generic conditions ----

    fn passthrough(&mut self) -> Step {
        let n = self.rng.range(1, 3);
        let specs = (0..n)
            .map(|_| {
                let generic = match self.rng.below(8) {
                    0..=2 => Generic::Sign {
                        signer: if self.rng.chance(85) {
                            let a = self.eoa_actor();
                            self.env.address(a)
                        } else {
                            self.pool_address()
                        },
                        message: self.rng.b256(),
                    },
                    3..=5 => {
                        let len = self.rng.range(0, 40) as usize;
                        let bytes: Vec<u8> = (0..len).map(|_| self.rng.below(256) as u8).collect();
                        Generic::HashLock {
                            preimage: Bytes::from(bytes),
                        }
                    }
                    6 => {
                        let mut inputs: Vec<B256> = (0..self.rng.range(1, 3))
                            .map(|_| self.condition_id())
                            .collect();
                        if self.rng.chance(85) {
                            inputs.sort();
                            inputs.dedup();
                        }
                        let threshold = U256::from(self.rng.range(0, inputs.len() as u64 + 1));
                        Generic::Threshold { inputs, threshold }
                    }
                    _ => Generic::Raw {
                        contract: *self.rng.pick(&[
                            self.env.strangers[0],
                            self.env.outsiders[0],
                            self.env.token(TokenKind::Plain),
                            Address::ZERO,
                        ]),
                        value_hash: self.rng.b256(),
                    },
                };
                let time_lock = if self.rng.chance(60) {
                    0
                } else {
                    self.rng.range(1, 3_600) as u32
                };
                let time_out = if self.rng.chance(40) {
                    0
                } else if self.rng.chance(10) {
                    time_lock
                } else {
                    time_lock + self.rng.range(1, 7_200) as u32
                };
                Spec {
                    generic,
                    time_lock,
                    time_out,
                }
            })
            .collect();
        Step {
            actor: self.any_actor(),
            call: Call::Passthrough {
                seed: self.seed(),
                did: self.did(),
                specs,
            },
        }
    }

    /// A condition of a generic agreement matching `pick`.
    fn generic_condition(
        &mut self,
        pick: impl Fn(&Generic) -> bool,
    ) -> Option<(B256, B256, Generic)> {
        let found: Vec<(B256, B256, Generic)> = self
            .ghost
            .generics
            .iter()
            .flat_map(|g| {
                g.conditions
                    .iter()
                    .filter(|(_, generic)| pick(generic))
                    .map(move |(id, generic)| (g.agreement, *id, generic.clone()))
            })
            .collect();
        if found.is_empty() {
            None
        } else {
            Some(found[self.rng.index(found.len())].clone())
        }
    }

    fn sign_fulfil(&mut self) -> Step {
        let (agreement, signer, message) = match self
            .generic_condition(|g| matches!(g, Generic::Sign { .. }))
        {
            Some((agreement, _, Generic::Sign { signer, message })) => (agreement, signer, message),
            _ => (self.rng.b256(), self.env.consumers[0], self.rng.b256()),
        };
        let key = if self.rng.chance(85) {
            self.actor_of(signer).filter(|a| !a.is_contract())
        } else if self.rng.chance(50) {
            Some(self.eoa_actor())
        } else {
            None
        };
        let (signed_agreement, signed_message) = if self.rng.chance(88) {
            (agreement, message)
        } else if self.rng.chance(50) {
            let random = self.rng.b256();
            (self.maybe_other_agreement(random), message)
        } else {
            (agreement, self.rng.b256())
        };
        Step {
            actor: self.any_actor(),
            call: Call::SignFulfil {
                agreement,
                signer,
                message,
                key,
                signed_agreement,
                signed_message,
            },
        }
    }

    fn hash_lock_fulfil(&mut self) -> Step {
        let (agreement, preimage) =
            match self.generic_condition(|g| matches!(g, Generic::HashLock { .. })) {
                Some((agreement, _, Generic::HashLock { preimage })) => (agreement, preimage),
                _ => (self.rng.b256(), Bytes::from(vec![1, 2, 3])),
            };
        let preimage = if self.rng.chance(85) {
            preimage
        } else {
            let mut p = preimage.to_vec();
            p.push(0);
            Bytes::from(p)
        };
        Step {
            actor: self.any_actor(),
            call: Call::HashLockFulfil {
                agreement: self.maybe_other_agreement(agreement),
                preimage,
            },
        }
    }

    fn threshold_fulfil(&mut self) -> Step {
        let (agreement, inputs, threshold) =
            match self.generic_condition(|g| matches!(g, Generic::Threshold { .. })) {
                Some((agreement, _, Generic::Threshold { inputs, threshold })) => {
                    (agreement, inputs, threshold)
                }
                _ => (self.rng.b256(), vec![self.condition_id()], U256::from(1)),
            };
        let threshold = if self.rng.chance(85) {
            threshold
        } else {
            threshold.saturating_add(U256::from(1))
        };
        Step {
            actor: self.any_actor(),
            call: Call::ThresholdFulfil {
                agreement,
                inputs,
                threshold,
            },
        }
    }

    // ---- Registry and governance ----

    fn manager_of(&mut self, did: B256) -> Actor {
        if let Some(asset) = self.model.assets.get(&did)
            && self.rng.chance(70)
        {
            let mut managers: Vec<Address> = vec![asset.owner];
            managers.extend(asset.delegates.iter().copied());
            let pick = managers[self.rng.index(managers.len())];
            if let Some(actor) = self.actor_of(pick) {
                return actor;
            }
        }
        self.any_actor()
    }

    fn registry(&mut self) -> Step {
        let did = self.did();
        let someone = self.pool_address();
        let checksum = if self.rng.chance(5) {
            B256::ZERO
        } else {
            self.rng.b256()
        };
        let url = if self.rng.chance(5) {
            String::new()
        } else {
            format!("ipfs://{}", self.rng.below(1_000))
        };
        let providers: Vec<Address> = (0..self.rng.range(0, 2))
            .map(|_| self.pool_address())
            .collect();
        let activity = self.rng.b256();
        let (actor, call) = match self.rng.below(18) {
            0 => (
                Actor::Provider(self.rng.below(PROVIDERS as u64) as u8),
                Call::Register {
                    seed: self.seed(),
                    checksum,
                    url,
                    providers,
                },
            ),
            1 => {
                let source = self.did();
                (
                    self.server_of(source),
                    Call::RegisterDerived {
                        seed: self.seed(),
                        checksum,
                        url,
                        providers,
                        sources: vec![source],
                        activity,
                    },
                )
            }
            2 => {
                let source = self.did();
                let owner = if self.rng.chance(90) {
                    self.env.consumers[self.rng.index(CONSUMERS)]
                } else {
                    self.pool_address()
                };
                let activity = match self.deal() {
                    Some(deal) if self.rng.chance(70) => deal.agreement,
                    _ => activity,
                };
                let sources = if self.rng.chance(5) {
                    Vec::new()
                } else {
                    vec![source]
                };
                (
                    self.server_of(source),
                    Call::RegisterResult {
                        owner,
                        activity,
                        checksum,
                        url,
                        sources,
                    },
                )
            }
            3 => (
                self.manager_of(did),
                Call::UpdateMetadata { did, checksum, url },
            ),
            4 => {
                let new_owner = if self.rng.chance(80) {
                    let actor = self.eoa_actor();
                    self.env.address(actor)
                } else {
                    someone
                };
                (
                    self.owner_of(did),
                    Call::TransferOwnership { did, new_owner },
                )
            }
            5 => {
                let pending = self
                    .model
                    .assets
                    .get(&did)
                    .map(|a| a.pending_owner)
                    .unwrap_or_default();
                let actor = match self.actor_of(pending) {
                    Some(actor) if self.rng.chance(85) => actor,
                    _ => self.any_actor(),
                };
                (actor, Call::AcceptOwnership { did })
            }
            6 => (self.owner_of(did), Call::CancelOwnershipTransfer { did }),
            7 | 8 => (
                self.manager_of(did),
                Call::AddProvider {
                    did,
                    provider: someone,
                },
            ),
            9 => {
                let provider = self
                    .model
                    .assets
                    .get(&did)
                    .and_then(|a| a.providers.iter().next().copied())
                    .unwrap_or(someone);
                (self.manager_of(did), Call::RemoveProvider { did, provider })
            }
            10 => (
                self.owner_of(did),
                Call::GrantPermission {
                    did,
                    delegate: someone,
                },
            ),
            11 => {
                let delegate = self
                    .model
                    .assets
                    .get(&did)
                    .and_then(|a| a.delegates.iter().next().copied())
                    .unwrap_or(someone);
                (self.owner_of(did), Call::RevokePermission { did, delegate })
            }
            12 => (self.server_of(did), Call::ResignProvider { did }),
            13 | 14 => (self.server_of(did), Call::RevokeOffers { did }),
            15 => (self.server_of(did), Call::RecordUse { did, activity }),
            _ => {
                let source = self.did();
                (
                    self.server_of(source),
                    Call::RecordDerivation {
                        did,
                        source,
                        activity,
                    },
                )
            }
        };
        Step { actor, call }
    }

    fn owner_of(&mut self, did: B256) -> Actor {
        if let Some(asset) = self.model.assets.get(&did)
            && self.rng.chance(80)
            && let Some(actor) = self.actor_of(asset.owner)
        {
            return actor;
        }
        self.any_actor()
    }

    fn governance(&mut self) -> Step {
        let s = self.env.suite;
        let templates = [
            s.access_template,
            s.compute_template,
            self.env.passthrough,
            self.env.rogue,
        ];
        // The governor holds the roles itself (no timelock in the fuzz environment). It only
        // approves the real templates (the rogue one is approved from the start), grants roles
        // only to the fee receiver, and rarely revokes anything. Everyone else may try anything.
        let governor = self.rng.chance(50);
        let actor = if governor {
            Actor::Governor
        } else {
            self.any_actor()
        };
        let call = match self.rng.below(8) {
            0 => Call::ProposeTemplate {
                template: self.pool_address(),
            },
            1 => Call::ApproveTemplate {
                template: if governor {
                    *self.rng.pick(&templates[..2])
                } else {
                    self.pool_address()
                },
            },
            2 if !governor || self.rng.chance(5) => Call::RevokeTemplate {
                template: *self.rng.pick(&templates),
            },
            3 => Call::GrantRole {
                role: if self.rng.chance(50) {
                    Role::Governor
                } else {
                    Role::Admin
                },
                account: if governor {
                    self.env.fee_receiver
                } else {
                    self.pool_address()
                },
            },
            4 if !governor || self.rng.chance(5) => Call::RevokeRole {
                role: if self.rng.chance(80) {
                    Role::Governor
                } else {
                    Role::Admin
                },
                account: self.pool_address(),
            },
            5 if !governor || self.rng.chance(5) => {
                let account = self.env.address(actor);
                Call::RenounceRole {
                    role: Role::Governor,
                    account: if self.rng.chance(80) {
                        account
                    } else {
                        self.pool_address()
                    },
                }
            }
            _ => {
                let bps = match self.rng.below(6) {
                    0 => 0,
                    1 => 1_000,
                    2 => 1_001,
                    _ => self.rng.range(1, 999) as u16,
                };
                let receiver = match self.rng.below(6) {
                    0 => Address::ZERO,
                    1 => self.env.attacker,
                    2 => self.env.reverter,
                    _ => self.env.fee_receiver,
                };
                Call::SetNetworkFee { receiver, bps }
            }
        };
        Step { actor, call }
    }
}
