//! The fuzzing environment: the suite deployed once with every actor, token and adversarial
//! contract the campaign uses, saved as a snapshot that each sequence starts from.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::sol_types::{SolCall, SolValue};
use insitu_bindings::deployment::{self, DeployOptions, Governance, SuiteAddresses};
use insitu_bindings::{
    AssetRegistry, BlocklistToken, FeeOnTransferToken, GasBurningReceiver, MockERC20,
    NoReturnToken, PassthroughTemplate, PermitToken, ReentrantReceiver, ReentrantToken,
    RevertingReceiver, RogueTemplate, TemplateRegistry,
};
use serde::{Deserialize, Serialize};

use crate::harness::{Chain, Snapshot, Tx, TxError};

/// Number of asset owners (each with one keeper and one registered asset).
pub const PROVIDERS: usize = 3;
/// Number of consumers.
pub const CONSUMERS: usize = 3;
/// Number of outsiders (accounts with no role).
pub const OUTSIDERS: usize = 2;
/// Addresses with neither code nor key, used as arbitrary recipients.
pub const STRANGERS: usize = 2;
/// Network fee the suite starts with, in basis points.
pub const INITIAL_FEE_BPS: u16 = 100;
/// Share burned by the fee-on-transfer token on every transfer, in basis points.
pub const FOT_FEE_BPS: u64 = 100;
/// Tokens of each kind minted to each consumer and to each contract actor at the start.
pub const INITIAL_TOKENS: u64 = 1_000_000_000_000;
/// Name of the permit token (its EIP-712 domain name).
pub const PERMIT_TOKEN_NAME: &str = "Permit";
/// Gas limit of every transaction of a campaign. Far above what any protocol call needs, low
/// enough that a receiver burning all its gas costs little time.
pub const TX_GAS_LIMIT: u64 = 3_000_000;

/// Who sends a transaction.
///
/// Externally owned accounts send directly. The two contract actors act through their
/// `execute(target, data)` function, sent by their operator, so the protocol sees the contract as
/// `msg.sender`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    /// Deployer and governor of the suite.
    Governor,
    /// Receiver of the network fee.
    FeeReceiver,
    /// Owner of asset `i`.
    Provider(u8),
    /// Keeper (listed provider) of asset `i`.
    Keeper(u8),
    /// A buyer.
    Consumer(u8),
    /// An account with no role.
    Outsider(u8),
    /// The attacker contract (`ReentrantReceiver`): re-enters when paid ETH once armed.
    Attacker,
    /// A contract that rejects every ETH payment (`RevertingReceiver`).
    Reverter,
    /// The account that drives the approved rogue template (an ordinary account: the template's
    /// functions are open to anyone).
    Rogue,
}

impl Actor {
    /// Every actor that can send a transaction.
    pub fn all() -> Vec<Actor> {
        let mut all = vec![Actor::Governor, Actor::FeeReceiver];
        for i in 0..PROVIDERS as u8 {
            all.push(Actor::Provider(i));
            all.push(Actor::Keeper(i));
        }
        for i in 0..CONSUMERS as u8 {
            all.push(Actor::Consumer(i));
        }
        for i in 0..OUTSIDERS as u8 {
            all.push(Actor::Outsider(i));
        }
        all.push(Actor::Attacker);
        all.push(Actor::Reverter);
        all.push(Actor::Rogue);
        all
    }

    /// Whether the actor is a contract acting through `execute`.
    pub fn is_contract(self) -> bool {
        matches!(self, Actor::Attacker | Actor::Reverter)
    }
}

/// The tokens of a campaign. `Eth` is native ETH (the zero address in payment terms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// Native ETH.
    Eth,
    /// A standard OpenZeppelin ERC20.
    Plain,
    /// `transfer`/`transferFrom`/`approve` return nothing (USDT style).
    NoReturn,
    /// Burns [`FOT_FEE_BPS`] of every transfer.
    FeeOnTransfer,
    /// Transfers from or to a blocklisted account revert.
    Blocklist,
    /// Calls back into a chosen contract from inside its next transfer once armed.
    Reentrant,
    /// An OpenZeppelin ERC20 with EIP-2612 permits (nobody approves it in advance).
    Permit,
}

impl TokenKind {
    /// All kinds, ETH first.
    pub const ALL: [TokenKind; 7] = [
        TokenKind::Eth,
        TokenKind::Plain,
        TokenKind::NoReturn,
        TokenKind::FeeOnTransfer,
        TokenKind::Blocklist,
        TokenKind::Reentrant,
        TokenKind::Permit,
    ];

    /// Short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            TokenKind::Eth => "ETH",
            TokenKind::Plain => "ERC20",
            TokenKind::NoReturn => "NoReturnToken",
            TokenKind::FeeOnTransfer => "FeeOnTransferToken",
            TokenKind::Blocklist => "BlocklistToken",
            TokenKind::Reentrant => "ReentrantToken",
            TokenKind::Permit => "PermitToken",
        }
    }
}

/// Which suite contracts to deploy from other creation code (see
/// [`deployment::plan_with_overrides`]), with a name for reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// Name of the variant, recorded in failure files (e.g. a planted bug's name).
    pub name: Option<String>,
    /// Contract name (as in [`SuiteAddresses::by_name`]) to creation code.
    pub code: BTreeMap<String, Bytes>,
}

/// The deployed environment of a campaign.
#[derive(Debug)]
pub struct Env {
    /// The chain, in whatever state the current sequence left it.
    pub chain: Chain,
    /// Suite addresses.
    pub suite: SuiteAddresses,
    /// The test-only template creating agreements of generic conditions, approved.
    pub passthrough: Address,
    /// The adversarial template (`RogueTemplate`), approved by governance.
    pub rogue: Address,
    /// The account driving the rogue template.
    pub rogue_operator: Address,
    /// Governor (and deployer).
    pub governor: Address,
    /// Network fee receiver.
    pub fee_receiver: Address,
    /// Asset owners.
    pub providers: [Address; PROVIDERS],
    /// Their keepers.
    pub keepers: [Address; PROVIDERS],
    /// Buyers.
    pub consumers: [Address; CONSUMERS],
    /// Accounts with no role.
    pub outsiders: [Address; OUTSIDERS],
    /// The attacker contract (a `ReentrantReceiver`).
    pub attacker: Address,
    /// Account that operates the attacker contract.
    pub attacker_operator: Address,
    /// A `RevertingReceiver`.
    pub reverter: Address,
    /// Account that operates the reverting receiver.
    pub reverter_operator: Address,
    /// A `GasBurningReceiver` (cannot act, only receive).
    pub gas_burner: Address,
    /// Addresses with no code and no key.
    pub strangers: [Address; STRANGERS],
    /// Token addresses by kind (ETH: zero).
    pub tokens: BTreeMap<TokenKind, Address>,
    /// The asset of each provider, served by its keeper.
    pub dids: [B256; PROVIDERS],
    /// Creation-code overrides the suite was deployed with.
    pub overrides: Overrides,
    /// The addresses above in one shareable value.
    pub addrs: Arc<Addrs>,
    base: Option<Snapshot>,
    names: HashMap<Address, String>,
    slots: Vec<(Address, U256)>,
}

/// Why the environment could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// A setup transaction failed.
    #[error("setting up the fuzzing environment failed at {step}: {source}")]
    Setup {
        /// The step.
        step: String,
        /// The failure.
        #[source]
        source: TxError,
    },
    /// An override names no contract of the suite.
    #[error("overrides name contracts that are not part of the suite: {0:?}")]
    UnknownOverride(Vec<String>),
}

fn step<T>(what: impl Into<String>, result: Result<T, TxError>) -> Result<T, EnvError> {
    result.map_err(|source| EnvError::Setup {
        step: what.into(),
        source,
    })
}

impl Env {
    /// Deploys the suite (with `overrides` applied), the tokens and the adversarial contracts,
    /// funds every actor and registers one asset per provider.
    ///
    /// # Errors
    ///
    /// If a setup transaction fails, or an override names an unknown contract.
    pub fn new(overrides: Overrides) -> Result<Self, EnvError> {
        let mut chain = Chain::new();
        chain.set_gas_limit(TX_GAS_LIMIT);
        let governor = chain.account_named("governor");
        let fee_receiver = chain.account_named("fee_receiver");
        let providers: [Address; PROVIDERS] =
            std::array::from_fn(|i| chain.account_named(&format!("provider{i}")));
        let keepers: [Address; PROVIDERS] =
            std::array::from_fn(|i| chain.account_named(&format!("keeper{i}")));
        let consumers: [Address; CONSUMERS] =
            std::array::from_fn(|i| chain.account_named(&format!("consumer{i}")));
        let outsiders: [Address; OUTSIDERS] =
            std::array::from_fn(|i| chain.account_named(&format!("outsider{i}")));
        let attacker_operator = chain.account_named("attacker_operator");
        let reverter_operator = chain.account_named("reverter_operator");
        let rogue_operator = chain.account_named("rogue_operator");
        let strangers: [Address; STRANGERS] = std::array::from_fn(|i| {
            let address = Address::from_word(keccak256(format!("insitu.fuzz.stranger.{i}")));
            chain.label(address, &format!("stranger{i}"));
            address
        });

        // The suite, deployed by the governor as the deploy script does.
        // The governor holds the governance roles itself (no timelock): a governance call takes
        // effect at once, which is all the fuzzer needs (the timelock is tested apart).
        let options = DeployOptions {
            governance: Governance::Account(governor),
            admin_transfer_delay: 0,
            network_fee: Some((fee_receiver, INITIAL_FEE_BPS)),
        };
        let plan = deployment::plan_with_overrides(
            governor,
            chain.nonce(governor),
            options,
            &overrides.code,
        );
        let unknown: Vec<String> = overrides
            .code
            .keys()
            .filter(|name| !plan.overridden.contains(name))
            .cloned()
            .collect();
        if !unknown.is_empty() {
            return Err(EnvError::UnknownOverride(unknown));
        }
        for planned in plan.transactions {
            let tx = match planned.kind {
                alloy::primitives::TxKind::Create => Tx::create(governor, planned.input),
                alloy::primitives::TxKind::Call(to) => Tx::call(governor, to, planned.input),
            };
            step(planned.label, chain.send(tx))?;
        }
        let suite = plan.addresses;
        for (name, address) in suite.by_name() {
            chain.label(address, &name);
        }

        let passthrough = step(
            "deploy PassthroughTemplate",
            chain.deploy(
                governor,
                &PassthroughTemplate::BYTECODE,
                &PassthroughTemplate::constructorCall {
                    store: suite.agreement_store,
                },
            ),
        )?;
        chain.label(passthrough, "PassthroughTemplate");
        let rogue = step(
            "deploy RogueTemplate",
            chain.deploy(
                governor,
                &RogueTemplate::BYTECODE,
                &RogueTemplate::constructorCall {
                    store: suite.agreement_store,
                },
            ),
        )?;
        chain.label(rogue, "RogueTemplate");
        // Both test templates approved, as a compromised governance would.
        for template in [passthrough, rogue] {
            step(
                "propose template",
                chain.transact(
                    governor,
                    suite.agreement_store,
                    &TemplateRegistry::proposeTemplateCall { template },
                ),
            )?;
            step(
                "approve template",
                chain.transact(
                    governor,
                    suite.agreement_store,
                    &TemplateRegistry::approveTemplateCall { template },
                ),
            )?;
        }

        // Tokens.
        let mut tokens = BTreeMap::new();
        tokens.insert(TokenKind::Eth, Address::ZERO);
        let plain = step(
            "deploy MockERC20",
            chain.deploy(
                governor,
                &MockERC20::BYTECODE,
                &MockERC20::constructorCall {
                    name_: "Plain".into(),
                    symbol_: "PLN".into(),
                    decimals_: 18,
                },
            ),
        )?;
        tokens.insert(TokenKind::Plain, plain);
        let no_return = step(
            "deploy NoReturnToken",
            chain.deploy_bare(governor, &NoReturnToken::BYTECODE),
        )?;
        tokens.insert(TokenKind::NoReturn, no_return);
        let fot = step(
            "deploy FeeOnTransferToken",
            chain.deploy(
                governor,
                &FeeOnTransferToken::BYTECODE,
                &FeeOnTransferToken::constructorCall {
                    feeBps_: U256::from(FOT_FEE_BPS),
                },
            ),
        )?;
        tokens.insert(TokenKind::FeeOnTransfer, fot);
        let blocklist = step(
            "deploy BlocklistToken",
            chain.deploy_bare(governor, &BlocklistToken::BYTECODE),
        )?;
        tokens.insert(TokenKind::Blocklist, blocklist);
        let reentrant = step(
            "deploy ReentrantToken",
            chain.deploy_bare(governor, &ReentrantToken::BYTECODE),
        )?;
        tokens.insert(TokenKind::Reentrant, reentrant);
        let permit = step(
            "deploy PermitToken",
            chain.deploy(
                governor,
                &PermitToken::BYTECODE,
                &PermitToken::constructorCall {
                    name_: PERMIT_TOKEN_NAME.into(),
                    symbol_: "PRM".into(),
                },
            ),
        )?;
        tokens.insert(TokenKind::Permit, permit);
        for (kind, address) in &tokens {
            if *kind != TokenKind::Eth {
                chain.label(*address, kind.name());
            }
        }

        // Adversarial contracts.
        let attacker = step(
            "deploy ReentrantReceiver",
            chain.deploy_bare(attacker_operator, &ReentrantReceiver::BYTECODE),
        )?;
        chain.label(attacker, "attacker");
        let reverter = step(
            "deploy RevertingReceiver",
            chain.deploy_bare(reverter_operator, &RevertingReceiver::BYTECODE),
        )?;
        chain.label(reverter, "reverter");
        let gas_burner = step(
            "deploy GasBurningReceiver",
            chain.deploy_bare(governor, &GasBurningReceiver::BYTECODE),
        )?;
        chain.label(gas_burner, "gas_burner");

        let mut env = Self {
            chain,
            suite,
            passthrough,
            rogue,
            rogue_operator,
            governor,
            fee_receiver,
            providers,
            keepers,
            consumers,
            outsiders,
            attacker,
            attacker_operator,
            reverter,
            reverter_operator,
            gas_burner,
            strangers,
            tokens,
            dids: [B256::ZERO; PROVIDERS],
            overrides,
            addrs: Arc::new(Addrs::default()),
            base: None,
            names: HashMap::new(),
            slots: Vec::new(),
        };

        // Funding: every consumer and both contract actors hold every token and approved the
        // payment condition for all of it, except the permit token (bought with permits).
        let holders: Vec<Actor> = (0..CONSUMERS as u8)
            .map(Actor::Consumer)
            .chain([Actor::Attacker, Actor::Reverter])
            .collect();
        for kind in TokenKind::ALL {
            if kind == TokenKind::Eth {
                continue;
            }
            let token = env.token(kind);
            for &holder in &holders {
                let to = env.address(holder);
                let mint = MockERC20::mintCall {
                    to,
                    amount: U256::from(INITIAL_TOKENS),
                };
                step(
                    format!("mint {}", kind.name()),
                    env.chain.send(Tx::call(governor, token, mint.abi_encode())),
                )?;
                if kind == TokenKind::Permit {
                    continue;
                }
                let approve = MockERC20::approveCall {
                    spender: env.suite.payment,
                    value: U256::MAX,
                };
                let tx = env.tx(holder, token, approve.abi_encode().into(), U256::ZERO);
                step(format!("approve {}", kind.name()), env.chain.send(tx))?;
            }
        }

        // One asset per provider, served by its keeper.
        for i in 0..PROVIDERS {
            let call = AssetRegistry::registerCall {
                seed: keccak256(format!("insitu.fuzz.asset.{i}")),
                checksum: keccak256(b"metadata"),
                url: format!("ipfs://asset-{i}"),
                providers: vec![env.keepers[i]],
            };
            let receipt = step(
                "register asset",
                env.chain
                    .transact(env.providers[i], env.suite.asset_registry, &call),
            )?;
            env.dids[i] = receipt.output;
        }

        env.names = env.collect_names();
        env.slots = env
            .holders()
            .into_iter()
            .map(|h| (h, balance_slot(h)))
            .collect();
        env.addrs = Arc::new(env.collect_addrs());
        env.base = Some(env.chain.snapshot());
        Ok(env)
    }

    /// Puts the chain back in the state right after setup.
    pub fn reset(&mut self) {
        if let Some(base) = &self.base {
            self.chain.restore(base);
        }
    }

    /// The address of a token kind (zero for ETH).
    pub fn token(&self, kind: TokenKind) -> Address {
        self.tokens[&kind]
    }

    /// The kind of the token at `address`, if it is one of the campaign's.
    pub fn token_kind(&self, address: Address) -> Option<TokenKind> {
        self.tokens
            .iter()
            .find(|(_, a)| **a == address)
            .map(|(kind, _)| *kind)
    }

    /// The address the protocol sees as `msg.sender` for `actor`.
    pub fn address(&self, actor: Actor) -> Address {
        match actor {
            Actor::Governor => self.governor,
            Actor::FeeReceiver => self.fee_receiver,
            Actor::Provider(i) => self.providers[usize::from(i) % PROVIDERS],
            Actor::Keeper(i) => self.keepers[usize::from(i) % PROVIDERS],
            Actor::Consumer(i) => self.consumers[usize::from(i) % CONSUMERS],
            Actor::Outsider(i) => self.outsiders[usize::from(i) % OUTSIDERS],
            Actor::Attacker => self.attacker,
            Actor::Reverter => self.reverter,
            Actor::Rogue => self.rogue_operator,
        }
    }

    /// The externally owned account that signs the transactions of `actor`.
    pub fn sender(&self, actor: Actor) -> Address {
        match actor {
            Actor::Attacker => self.attacker_operator,
            Actor::Reverter => self.reverter_operator,
            other => self.address(other),
        }
    }

    /// A transaction in which `actor` calls `to` with `data` and `value`: direct for accounts,
    /// through `execute` for the contract actors (which cannot send value).
    pub fn tx(&self, actor: Actor, to: Address, data: Bytes, value: U256) -> Tx {
        let tx = match actor {
            Actor::Attacker => Tx::call(
                self.attacker_operator,
                self.attacker,
                ReentrantReceiver::executeCall { to, data }.abi_encode(),
            ),
            Actor::Reverter => Tx::call(
                self.reverter_operator,
                self.reverter,
                RevertingReceiver::executeCall { target: to, data }.abi_encode(),
            ),
            _ => Tx::call(self.address(actor), to, data),
        };
        tx.value(value)
    }

    /// Every address the campaign knows, with its name.
    pub fn names(&self) -> &HashMap<Address, String> {
        &self.names
    }

    /// The name of `address` (its checksummed hex when unknown).
    pub fn name(&self, address: Address) -> String {
        self.names
            .get(&address)
            .cloned()
            .unwrap_or_else(|| format!("{address:#}"))
    }

    /// Accounts and contracts that can hold tokens or ETH: every actor, every contract, the
    /// strangers and the zero address.
    pub fn holders(&self) -> Vec<Address> {
        let mut all: Vec<Address> = self.names.keys().copied().collect();
        all.sort();
        all
    }

    /// Every holder with the storage slot of its token balance (see [`balance_slot`]).
    pub fn holder_slots(&self) -> &[(Address, U256)] {
        &self.slots
    }

    /// Every address used as an argument: actors, contracts, strangers, the zero address.
    pub fn address_pool(&self) -> Vec<Address> {
        self.holders()
    }

    fn collect_addrs(&self) -> Addrs {
        let mut contracts: HashSet<Address> = self.suite.by_name().into_values().collect();
        contracts.extend([
            self.passthrough,
            self.rogue,
            self.attacker,
            self.reverter,
            self.gas_burner,
        ]);
        contracts.extend(self.tokens.values().copied().filter(|a| !a.is_zero()));
        Addrs {
            suite: Some(self.suite),
            passthrough: self.passthrough,
            rogue: self.rogue,
            governor: self.governor,
            fee_receiver: self.fee_receiver,
            attacker: self.attacker,
            reverter: self.reverter,
            gas_burner: self.gas_burner,
            tokens: self.tokens.clone(),
            contracts,
            actors: Actor::all()
                .into_iter()
                .map(|actor| (actor, self.address(actor)))
                .collect(),
        }
    }

    fn collect_names(&self) -> HashMap<Address, String> {
        let mut names = HashMap::new();
        for actor in Actor::all() {
            let address = self.address(actor);
            names.insert(address, self.chain.name(address));
        }
        for address in [
            self.attacker_operator,
            self.reverter_operator,
            self.gas_burner,
            self.passthrough,
            self.rogue,
        ]
        .into_iter()
        .chain(self.strangers)
        .chain(self.suite.by_name().into_values())
        .chain(self.tokens.values().copied().filter(|a| !a.is_zero()))
        {
            names.insert(address, self.chain.name(address));
        }
        names.insert(Address::ZERO, "zero".to_owned());
        names
    }
}

/// Storage slot of `balances[account]` in the tokens of the campaign: every one keeps its
/// balances in a mapping at slot 0 (OpenZeppelin's `_balances`, `NoReturnToken.balanceOf`).
/// [`Env`] users check this against `balanceOf` once (see `fuzz::check_layout`).
pub fn balance_slot(account: Address) -> U256 {
    U256::from_be_bytes(keccak256((account, U256::ZERO).abi_encode()).0)
}

/// The addresses of an [`Env`] that the model and the invariants need, without the chain.
#[derive(Debug, Clone, Default)]
pub struct Addrs {
    /// Suite addresses (always set once the environment is built).
    pub suite: Option<SuiteAddresses>,
    /// Passthrough template.
    pub passthrough: Address,
    /// Rogue template.
    pub rogue: Address,
    /// Governor.
    pub governor: Address,
    /// Network fee receiver at the start.
    pub fee_receiver: Address,
    /// Attacker contract.
    pub attacker: Address,
    /// Reverting receiver.
    pub reverter: Address,
    /// Gas-burning receiver.
    pub gas_burner: Address,
    /// Tokens by kind (ETH: zero).
    pub tokens: BTreeMap<TokenKind, Address>,
    /// Every address with code.
    pub contracts: HashSet<Address>,
    /// The protocol address of every actor.
    pub actors: HashMap<Actor, Address>,
}

impl Addrs {
    /// The suite's addresses.
    ///
    /// # Panics
    ///
    /// On a default (empty) value.
    pub fn suite(&self) -> &SuiteAddresses {
        self.suite
            .as_ref()
            .expect("addresses of a built environment")
    }

    /// The address of a token kind.
    pub fn token(&self, kind: TokenKind) -> Address {
        self.tokens.get(&kind).copied().unwrap_or_default()
    }

    /// The kind of a token address.
    pub fn kind_of(&self, token: Address) -> Option<TokenKind> {
        self.tokens
            .iter()
            .find(|(_, a)| **a == token)
            .map(|(kind, _)| *kind)
    }

    /// Whether `address` has code.
    pub fn is_contract(&self, address: Address) -> bool {
        self.contracts.contains(&address)
    }

    /// The condition contracts of the suite (every contract with `abortTimedOut`).
    pub fn condition_contracts(&self) -> [Address; 6] {
        let s = self.suite();
        [
            s.payment,
            s.access,
            s.compute_execution,
            s.sign,
            s.hash_lock,
            s.threshold,
        ]
    }
}
