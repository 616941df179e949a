//! Stateful invariant fuzzing of the contract suite on the in-memory EVM.
//!
//! A campaign deploys the suite once ([`env::Env`]: actors, tokens, adversarial contracts) and
//! snapshots it. Each sequence restores the snapshot and runs `depth` random [`actions::Step`]s
//! made by [`generator::Generator`] from a seed. After every step:
//!
//! 1. the named invariants of the protocol ([`invariants::INVARIANTS`]) are checked from the
//!    receipt's events, the store's views and the balances ([`invariants::Ghost`]);
//! 2. the reference model ([`model::Model`]) predicts the step's outcome and state, and both are
//!    compared with the EVM ([`compare`]).
//!
//! The first violation stops the campaign. Its sequence is shrunk ([`shrink`]) to a short one that
//! still breaks the same invariant, printed as numbered steps and saved as JSON, which
//! [`Campaign::replay`] (`fuzz --replay FILE`) runs again. See `docs/fuzzing.md`.

pub mod actions;
pub mod compare;
pub mod env;
pub mod generator;
pub mod invariants;
pub mod model;
pub mod planted;
pub mod report;
pub mod rng;
pub mod shrink;

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use alloy::primitives::{B256, Log, U256};
use alloy::sol_types::{Panic, Revert as RevertString, SolError, SolEvent};
use insitu_bindings::{
    AccessCondition, AccessTemplate, AgreementStore, AssetRegistry, BlocklistToken,
    ComputeExecutionCondition, ComputeTemplate, FeeOnTransferToken, HashLockCondition, MockERC20,
    PaymentCondition, PermitToken, ReentrantToken, SignCondition, ThresholdCondition,
};

use crate::harness::TxError;
use actions::{Call, Labels, Step};
use env::{Env, EnvError, Overrides};
use invariants::{Ghost, Outcome, Violation};
use model::{Dirty, Model};
use rng::Rng;

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Seed of the whole campaign: the same seed and settings give the same sequences.
    pub seed: u64,
    /// Number of sequences.
    pub runs: u64,
    /// Steps per sequence.
    pub depth: usize,
    /// Stop starting new sequences after this long.
    pub time_limit: Option<Duration>,
    /// Print progress to stderr at this interval (`None`: never).
    pub progress: Option<Duration>,
    /// Shrink a failing sequence before reporting it.
    pub shrink: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            seed: 1,
            runs: 100,
            depth: 100,
            time_limit: None,
            progress: None,
            shrink: true,
        }
    }
}

/// A violation with the sequence that led to it.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The broken invariant.
    pub violation: Violation,
    /// The steps, the last one being the one after which the violation was seen.
    pub steps: Vec<Step>,
    /// Length of the sequence as first found, before shrinking.
    pub original_len: usize,
    /// Index of the sequence within the campaign (0-based).
    pub sequence: u64,
    /// Transactions executed before the violation was first seen, over the whole campaign.
    pub calls_until_found: u64,
}

/// Counts of one function's outcomes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Successful calls.
    pub ok: u64,
    /// Reverted calls.
    pub reverted: u64,
    /// Reverts by error name.
    pub errors: BTreeMap<String, u64>,
}

/// The result of a campaign.
#[derive(Debug, Clone)]
pub struct Report {
    /// The campaign's seed.
    pub seed: u64,
    /// Transactions executed (clock moves not included).
    pub calls: u64,
    /// Clock moves (warps and mined blocks).
    pub clock_moves: u64,
    /// Sequences run (complete or stopped by a violation).
    pub sequences: u64,
    /// Wall time of the campaign, setup and shrinking excluded.
    pub elapsed: Duration,
    /// Hash of every step generated, in order: equal for equal runs.
    pub sequence_hash: u64,
    /// The first violation, shrunk.
    pub failure: Option<Failure>,
    /// Outcomes by function.
    pub tally: BTreeMap<&'static str, Tally>,
}

impl Report {
    /// Transactions per second of wall time.
    pub fn calls_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.calls as f64 / secs
        } else {
            0.0
        }
    }
}

/// The result of running one fixed sequence.
#[derive(Debug, Clone)]
pub struct Execution {
    /// Transactions executed.
    pub calls: u64,
    /// Steps run (including the failing one).
    pub steps_run: usize,
    /// The first violation and the index of the step after which it was seen.
    pub violation: Option<(usize, Violation)>,
}

/// A deployed environment with its model and ghost, ready to run sequences.
#[derive(Debug)]
pub struct Campaign {
    /// The environment.
    pub env: Env,
    model: Model,
    ghost: Ghost,
}

impl Campaign {
    /// Deploys the environment (with `overrides` applied) and reads its initial model.
    ///
    /// # Errors
    ///
    /// If the environment cannot be set up.
    pub fn new(overrides: Overrides) -> Result<Self, EnvError> {
        let mut env = Env::new(overrides)?;
        check_layout(&mut env)?;
        let model = Model::from_env(&mut env);
        let ghost = Ghost::new(&env);
        Ok(Self { env, model, ghost })
    }

    /// Runs a campaign.
    pub fn run(&mut self, config: &Config) -> Report {
        let mut master = Rng::new(config.seed);
        let start = Instant::now();
        let mut hasher = Fnv::default();
        let mut report = Report {
            seed: config.seed,
            calls: 0,
            clock_moves: 0,
            sequences: 0,
            elapsed: Duration::ZERO,
            sequence_hash: 0,
            failure: None,
            tally: BTreeMap::new(),
        };
        let mut last_progress = start;
        for sequence in 0..config.runs {
            if config
                .time_limit
                .is_some_and(|limit| start.elapsed() >= limit)
            {
                break;
            }
            if let Some(every) = config.progress
                && last_progress.elapsed() >= every
            {
                last_progress = Instant::now();
                eprintln!("{}", progress_line(&report, start.elapsed()));
            }
            let mut rng = master.fork();
            let (steps, execution) =
                self.generate(&mut rng, config.depth, &mut report, &mut hasher);
            report.sequences += 1;
            if let Some((index, violation)) = execution.violation {
                report.elapsed = start.elapsed();
                let found = steps[..=index].to_vec();
                let original_len = found.len();
                let shrunk = if config.shrink {
                    shrink::shrink(self, found, &violation.invariant)
                } else {
                    found
                };
                let violation = match self.execute(&shrunk).violation {
                    Some((_, v)) if v.invariant == violation.invariant => v,
                    _ => violation,
                };
                report.failure = Some(Failure {
                    violation,
                    steps: shrunk,
                    original_len,
                    sequence,
                    calls_until_found: report.calls,
                });
                report.sequence_hash = hasher.finish();
                return report;
            }
        }
        report.elapsed = start.elapsed();
        report.sequence_hash = hasher.finish();
        report
    }

    /// Generates and runs one sequence of `depth` steps.
    fn generate(
        &mut self,
        rng: &mut Rng,
        depth: usize,
        report: &mut Report,
        hasher: &mut Fnv,
    ) -> (Vec<Step>, Execution) {
        self.env.reset();
        let mut model = self.model.clone();
        let mut ghost = self.ghost.clone();
        let mut steps = Vec::with_capacity(depth);
        let mut execution = Execution {
            calls: 0,
            steps_run: 0,
            violation: None,
        };
        for i in 0..depth {
            let step = generator::Generator::new(rng, &self.env, &model, &ghost).step();
            step.hash(hasher);
            let result = self.step(&mut model, &mut ghost, &step, Some(report));
            steps.push(step);
            execution.steps_run += 1;
            if let Err(violation) = result {
                execution.violation = Some((i, violation));
                return (steps, execution);
            }
        }
        if let Err(violation) = self.finish(&model, &ghost) {
            execution.violation = Some((steps.len().saturating_sub(1), violation));
        }
        (steps, execution)
    }

    /// Runs a fixed sequence from the deployed state, checking everything after every step.
    pub fn execute(&mut self, steps: &[Step]) -> Execution {
        self.env.reset();
        let mut model = self.model.clone();
        let mut ghost = self.ghost.clone();
        let mut execution = Execution {
            calls: 0,
            steps_run: 0,
            violation: None,
        };
        for (i, step) in steps.iter().enumerate() {
            if !step.call.is_clock() {
                execution.calls += 1;
            }
            execution.steps_run += 1;
            if let Err(violation) = self.step(&mut model, &mut ghost, step, None) {
                execution.violation = Some((i, violation));
                return execution;
            }
        }
        if let Err(violation) = self.finish(&model, &ghost) {
            execution.violation = Some((steps.len().saturating_sub(1), violation));
        }
        execution
    }

    /// Replays a saved failure: runs its steps and reports what breaks.
    pub fn replay(&mut self, steps: &[Step]) -> Execution {
        self.execute(steps)
    }

    /// Readable names for the campaign's addresses and the ids of a sequence.
    pub fn labels(&mut self, steps: &[Step]) -> Labels {
        let mut labels = Labels::new(&self.env);
        let execution_ghost = {
            self.env.reset();
            let mut model = self.model.clone();
            let mut ghost = self.ghost.clone();
            for step in steps {
                if self.step(&mut model, &mut ghost, step, None).is_err() {
                    break;
                }
            }
            ghost
        };
        for deal in &execution_ghost.deals {
            labels.learn(deal.agreement, "agreement");
            labels.learn(deal.payment_id, "payment");
            labels.learn(deal.service_id, "service");
        }
        for generic in &execution_ghost.generics {
            labels.learn(generic.agreement, "agreement");
            for (id, _) in &generic.conditions {
                labels.learn(*id, "condition");
            }
        }
        for did in &execution_ghost.dids {
            labels.learn(*did, "asset");
        }
        for id in execution_ghost.all_conditions() {
            labels.learn(id, "condition");
        }
        labels
    }

    /// The outcome of each step of a sequence, for reports: `None` for success, else the error.
    pub fn outcomes(&mut self, steps: &[Step]) -> Vec<Option<String>> {
        self.env.reset();
        let mut out = Vec::with_capacity(steps.len());
        for step in steps {
            out.push(self.send(step).error);
        }
        out
    }

    /// Executes one step on the chain.
    fn send(&mut self, step: &Step) -> Outcome {
        match &step.call {
            Call::Warp { seconds } => {
                self.env.chain.warp(*seconds);
                return Outcome {
                    error: None,
                    logs: Vec::new(),
                    timestamp: self.env.chain.timestamp(),
                };
            }
            Call::Mine { blocks } => {
                self.env.chain.mine(*blocks);
                return Outcome {
                    error: None,
                    logs: Vec::new(),
                    timestamp: self.env.chain.timestamp(),
                };
            }
            _ => {}
        }
        let call = &step.call;
        let tx = self.env.tx(
            step.actor,
            call.target(&self.env.addrs),
            call.calldata(&self.env),
            call.value(),
        );
        let timestamp = self.env.chain.timestamp();
        match self.env.chain.send(tx) {
            Ok(receipt) => Outcome {
                error: None,
                logs: receipt.logs,
                timestamp,
            },
            Err(err) => Outcome {
                error: Some(error_name(&err)),
                logs: Vec::new(),
                timestamp,
            },
        }
    }

    /// One step with every check.
    fn step(
        &mut self,
        model: &mut Model,
        ghost: &mut Ghost,
        step: &Step,
        report: Option<&mut Report>,
    ) -> Result<(), Violation> {
        let outcome = self.send(step);
        if let Some(report) = report {
            if step.call.is_clock() {
                report.clock_moves += 1;
            } else {
                report.calls += 1;
                let tally = report.tally.entry(step.call.name()).or_default();
                match &outcome.error {
                    None => tally.ok += 1,
                    Some(error) => {
                        tally.reverted += 1;
                        *tally.errors.entry(error.clone()).or_default() += 1;
                    }
                }
            }
        }
        ghost.observe(&mut self.env, step, &outcome)?;
        let prediction = model.apply(step, self.env.sender(step.actor), &outcome.logs);
        let mut dirty = prediction.dirty;
        compare::outcome(&prediction.expected, &outcome)?;
        compare::events(&self.env, &prediction.events, &outcome.logs)?;
        if model.time != self.env.chain.timestamp() {
            return Err(Violation::new(
                "model_agrees_with_evm",
                format!(
                    "block time {} but the model is at {}",
                    self.env.chain.timestamp(),
                    model.time
                ),
            ));
        }
        if step.call.is_clock() {
            return Ok(());
        }
        compare::balances(&self.env, model)?;
        dirty_from_logs(&self.env, &outcome.logs, &mut dirty);
        compare::dirty(&mut self.env, model, &dirty)
    }

    /// Checks at the end of a sequence: every condition the ghost saw against the store, and
    /// everything the model knows against the EVM.
    fn finish(&mut self, model: &Model, ghost: &Ghost) -> Result<(), Violation> {
        ghost.check_states(&mut self.env, ghost.all_conditions().into_iter())?;
        compare::everything(&mut self.env, model)?;
        compare::supplies(&mut self.env, model)
    }
}

/// One line of progress: sequences, calls, calls per second, violations.
pub fn progress_line(report: &Report, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        report.calls as f64 / secs
    } else {
        0.0
    };
    format!(
        "fuzz: {:.0} s, {} runs done, {} calls, {rate:.0} calls/s, {} violations",
        secs,
        report.sequences,
        report.calls,
        u8::from(report.failure.is_some())
    )
}

/// Adds to `dirty` what the logs say changed.
fn dirty_from_logs(env: &Env, logs: &[Log], dirty: &mut Dirty) {
    let s = env.suite;
    for log in logs {
        let (Some(topic0), Some(topic1)) = (log.topics().first(), log.topics().get(1)) else {
            continue;
        };
        if log.address == s.agreement_store {
            if *topic0 == AgreementStore::ConditionFulfilled::SIGNATURE_HASH
                || *topic0 == AgreementStore::ConditionAborted::SIGNATURE_HASH
            {
                dirty.conditions.insert(*topic1);
            } else if *topic0 == AgreementStore::AgreementCreated::SIGNATURE_HASH
                && let Ok(e) = AgreementStore::AgreementCreated::decode_log_data(&log.data)
            {
                dirty.conditions.extend(e.conditionIds);
            }
        } else if log.address == s.payment {
            if *topic0 == PaymentCondition::PaymentCredited::SIGNATURE_HASH
                && let Ok(e) = PaymentCondition::PaymentCredited::decode_log_data(&log.data)
            {
                dirty.credits.insert((e.token, e.account));
                dirty.escrow_tokens.insert(e.token);
            } else if *topic0 == PaymentCondition::CreditWithdrawn::SIGNATURE_HASH
                && let Ok(e) = PaymentCondition::CreditWithdrawn::decode_log_data(&log.data)
            {
                dirty.credits.insert((e.token, e.account));
                dirty.escrow_tokens.insert(e.token);
            } else if *topic0 == PaymentCondition::PaymentReleased::SIGNATURE_HASH
                && let Ok(e) = PaymentCondition::PaymentReleased::decode_log_data(&log.data)
            {
                dirty.escrow_tokens.insert(e.token);
            } else if *topic0 == PaymentCondition::FeesWithdrawn::SIGNATURE_HASH
                && let Ok(e) = PaymentCondition::FeesWithdrawn::decode_log_data(&log.data)
            {
                dirty.escrow_tokens.insert(e.token);
            } else if *topic0 == PaymentCondition::NetworkFeeSet::SIGNATURE_HASH {
                dirty.fee = true;
            }
        } else if log.address == s.asset_registry {
            dirty.assets.insert(*topic1);
        }
    }
}

/// Checks that token balances live where [`env::balance_slot`] reads them.
fn check_layout(env: &mut Env) -> Result<(), EnvError> {
    for kind in env::TokenKind::ALL {
        let token = env.token(kind);
        if token.is_zero() {
            continue;
        }
        for holder in env.consumers {
            let by_view = env
                .chain
                .call(token, &MockERC20::balanceOfCall { account: holder })
                .map_err(|source| EnvError::Setup {
                    step: format!("balanceOf on {}", kind.name()),
                    source,
                })?;
            let by_slot = env.chain.storage(token, env::balance_slot(holder));
            if by_view != by_slot || by_view == U256::ZERO {
                return Err(EnvError::Setup {
                    step: format!("balance storage layout of {}", kind.name()),
                    source: TxError::NoContractCreated,
                });
            }
        }
    }
    Ok(())
}

/// A readable name for a failed transaction: the custom error's name, `Error(<reason>)`,
/// `Panic(0x..)`, `empty revert`, `halt` or `rejected`.
pub fn error_name(err: &TxError) -> String {
    match err {
        TxError::Revert(revert) => {
            let data = &revert.data;
            if data.is_empty() {
                return "empty revert".to_owned();
            }
            if let Ok(reason) = RevertString::abi_decode(data) {
                return format!("Error({})", reason.reason);
            }
            if let Ok(panic) = Panic::abi_decode(data) {
                return format!("Panic({:#x})", panic.code);
            }
            let Some(selector) = revert.selector() else {
                return format!("revert {data}");
            };
            error_by_selector(selector).map_or_else(
                || {
                    format!(
                        "unknown error 0x{}",
                        alloy::primitives::hex::encode(selector)
                    )
                },
                str::to_owned,
            )
        }
        TxError::Halt { .. } => "halt".to_owned(),
        TxError::Rejected(_) => "rejected".to_owned(),
        other => other.to_string(),
    }
}

/// The name of a custom error of any contract of the campaign.
fn error_by_selector(selector: [u8; 4]) -> Option<&'static str> {
    AgreementStore::AgreementStoreErrors::name_by_selector(selector)
        .or_else(|| AssetRegistry::AssetRegistryErrors::name_by_selector(selector))
        .or_else(|| PaymentCondition::PaymentConditionErrors::name_by_selector(selector))
        .or_else(|| AccessCondition::AccessConditionErrors::name_by_selector(selector))
        .or_else(|| {
            ComputeExecutionCondition::ComputeExecutionConditionErrors::name_by_selector(selector)
        })
        .or_else(|| SignCondition::SignConditionErrors::name_by_selector(selector))
        .or_else(|| HashLockCondition::HashLockConditionErrors::name_by_selector(selector))
        .or_else(|| ThresholdCondition::ThresholdConditionErrors::name_by_selector(selector))
        .or_else(|| AccessTemplate::AccessTemplateErrors::name_by_selector(selector))
        .or_else(|| ComputeTemplate::ComputeTemplateErrors::name_by_selector(selector))
        .or_else(|| MockERC20::MockERC20Errors::name_by_selector(selector))
        .or_else(|| BlocklistToken::BlocklistTokenErrors::name_by_selector(selector))
        .or_else(|| FeeOnTransferToken::FeeOnTransferTokenErrors::name_by_selector(selector))
        .or_else(|| ReentrantToken::ReentrantTokenErrors::name_by_selector(selector))
        .or_else(|| PermitToken::PermitTokenErrors::name_by_selector(selector))
}

/// FNV-1a, 64 bits: a hasher whose output depends only on the bytes fed to it.
#[derive(Debug, Clone)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Hash of a sequence of steps, as [`Report::sequence_hash`] computes it.
pub fn hash_steps(steps: &[Step]) -> u64 {
    let mut hasher = Fnv::default();
    for step in steps {
        step.hash(&mut hasher);
    }
    hasher.finish()
}

/// A seed-derived id (used by tests).
pub fn seed_id(n: u64) -> B256 {
    alloy::primitives::keccak256(n.to_be_bytes())
}
