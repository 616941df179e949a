//! Deploys the contract suite to any EVM chain over JSON-RPC.
//!
//! The transactions are exactly those of [`insitu_bindings::deployment::plan`], the plan the revm
//! test harness executes too: same contracts, same order, same wiring. Before the first one is
//! sent, the whole plan runs in an in-memory EVM ([`crate::simulate`]): a step that would revert is
//! named with its decoded error, and the deployer's balance is checked against the plan's gas, so a
//! deployment that cannot succeed sends nothing. Each transaction is then signed with the nonce the
//! plan was computed for, recorded in the [`journal`], broadcast, awaited with the requested number
//! of confirmations and a time out, and every created contract checked against its planned
//! address. A deployment that stops midway resumes from its journal.
//!
//! The governance calls (approving both templates, setting the network fee) go through the
//! governance timelock in production. The deployer carries them out in the deployment itself when it
//! may: it is the governing account, or the timelock's proposer and the delay is 0. When it is the
//! proposer and there is a delay, it schedules the batch (one more transaction after the plan) and
//! the batch is left to be executed, by anyone, once the delay is over. Otherwise nothing is sent
//! for them. What remains is returned in [`Deployed::governance`], which also says what to send
//! ([`PendingGovernance::instructions`]).

pub mod journal;

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
};

use alloy::{
    eips::BlockNumberOrTag,
    network::TransactionBuilder,
    primitives::{Address, B256, TxKind, U256, hex},
    providers::{DynProvider, Provider},
    rpc::types::TransactionRequest,
    sol_types::SolCall,
    transports::TransportError,
};
use insitu_bindings::{
    AgreementStore, GovernanceTimelock, PaymentCondition, TemplateRegistry,
    deployment::{self, DeployOptions, DeploymentPlan, Governance, PlannedTx},
};

use self::journal::{JOURNAL_VERSION, Journal, JournalFile, StepRecord, plan_digest};
use crate::{
    addresses::Deployment,
    governance::TemplateStatus,
    simulate::{SimulationError, simulate},
    tx::{self, Progress, Sender, TxError, TxEvent},
};

/// Default delay of the governance timelock: two days.
pub const DEFAULT_TIMELOCK_DELAY: u64 = 172_800;
/// Default delay of an admin-role transfer in the agreement store: two days.
pub const DEFAULT_ADMIN_TRANSFER_DELAY: u32 = 172_800;
/// Highest network fee, in basis points (`PaymentCondition.MAX_FEE_BPS`).
pub const MAX_FEE_BPS: u16 = 1_000;
/// Chain ids of local development chains (anvil and hardhat, geth --dev and ganache), the only
/// chains where governance without a timelock delay is accepted by the deploy command.
pub const DEV_CHAIN_IDS: [u64; 2] = [31_337, 1_337];

/// Whether `chain_id` is a local development chain (see [`DEV_CHAIN_IDS`]).
pub fn is_dev_chain(chain_id: u64) -> bool {
    DEV_CHAIN_IDS.contains(&chain_id)
}

/// Why `options` are unsafe on chain `chain_id`, if they are: governance without a timelock, or a
/// timelock without delay, anywhere but on a development chain.
pub fn unsafe_governance(chain_id: u64, options: &DeployOptions) -> Option<String> {
    if is_dev_chain(chain_id) {
        return None;
    }
    match options.governance {
        Governance::Account(_) => Some(format!(
            "governance by an account without a timelock is for development chains only \
             (chain ids {DEV_CHAIN_IDS:?}), not chain {chain_id}"
        )),
        Governance::Timelock { delay: 0, .. } => Some(format!(
            "a governance timelock without delay is for development chains only \
             (chain ids {DEV_CHAIN_IDS:?}), not chain {chain_id}"
        )),
        Governance::Timelock { .. } => None,
    }
}

/// Why a deployment failed.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The node could not be reached or answered with an error.
    #[error("RPC error: {0}")]
    Rpc(#[from] TransportError),
    /// The plan would fail: nothing was sent.
    #[error("the deployment would fail, nothing was sent: {0}")]
    Simulation(#[from] SimulationError),
    /// The deployer cannot pay for the remaining steps: nothing was sent.
    #[error(
        "the deployer {deployer} holds {balance} wei but the deployment needs about {needed} wei \
         ({gas} gas at {fee_per_gas} wei per gas); nothing was sent"
    )]
    InsufficientFunds {
        /// The deployer.
        deployer: Address,
        /// Its balance.
        balance: U256,
        /// The estimate.
        needed: U256,
        /// Gas of the remaining steps, with a margin.
        gas: u64,
        /// Highest fee per gas.
        fee_per_gas: u128,
    },
    /// The deployer has transactions in the mempool that would take the plan's nonces.
    #[error(
        "the deployer {deployer} has pending transactions (nonce {latest} mined, {pending} pending): \
         wait for them before deploying; nothing was sent"
    )]
    PendingTransactions {
        /// The deployer.
        deployer: Address,
        /// Its next nonce counting mined transactions.
        latest: u64,
        /// Its next nonce counting pending ones.
        pending: u64,
    },
    /// A transaction failed.
    #[error("{source}{}", resume_hint(journal.as_deref()))]
    Tx {
        /// What failed.
        #[source]
        source: Box<TxError>,
        /// The journal to resume from, if any.
        journal: Option<PathBuf>,
    },
    /// Another transaction of the deployer took the nonce a step needs.
    #[error(
        "`{label}` needs nonce {nonce} but the deployer's next nonce is {actual}: another \
         transaction of the deployer was mined in between"
    )]
    NonceTaken {
        /// The step.
        label: &'static str,
        /// The nonce the plan gives it.
        nonce: u64,
        /// The deployer's next nonce on chain.
        actual: u64,
    },
    /// A contract was created at another address than planned. Nothing after this step was sent.
    #[error("`{label}` created {actual:?} instead of the planned {expected}")]
    UnexpectedAddress {
        /// The plan step.
        label: &'static str,
        /// The planned address.
        expected: Address,
        /// The address in the receipt.
        actual: Option<Address>,
    },
    /// The journal could not be read or written.
    #[error("deployment journal {}: {reason}", path.display())]
    Journal {
        /// The journal.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// The journal records another deployment (other deployer, chain, options or contracts).
    #[error(
        "the journal {} records an interrupted deployment with {what}: run the same command as \
         then to resume it, or remove the file to start over",
        path.display()
    )]
    JournalMismatch {
        /// The journal.
        path: PathBuf,
        /// What differs.
        what: &'static str,
    },
    /// Reading a contract of the deployment failed (a template's state, the scheduled
    /// governance batch).
    #[error("reading the deployed contracts: {0}")]
    Read(#[source] Box<alloy::contract::Error>),
}

fn resume_hint(journal: Option<&Path>) -> String {
    journal
        .map(|path| {
            format!(
                "; the landed steps are recorded in {}: run the same command again to resume",
                path.display()
            )
        })
        .unwrap_or_default()
}

/// The governance calls of a deployment (template approvals, network fee) still to be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PendingGovernance {
    /// None: the deployment made them.
    Done,
    /// The governing account (not the deployer) must send `calls` itself.
    Account {
        /// The account holding the governor role.
        governor: Address,
        /// The calls, in order.
        calls: Vec<PlannedTx>,
    },
    /// The timelock's proposer (not the deployer) must send `schedule` to the timelock now; once
    /// `delay` seconds have passed after it is mined, anyone may send `execute`.
    Unscheduled {
        /// The account that may schedule.
        proposer: Address,
        /// The governance timelock.
        timelock: Address,
        /// The timelock's delay, in seconds.
        delay: u64,
        /// The timelock's operation id of the batch.
        operation_id: B256,
        /// The `scheduleBatch` call.
        schedule: PlannedTx,
        /// The `executeBatch` call.
        execute: PlannedTx,
    },
    /// The deployer scheduled the batch; anyone may send `execute` to the timelock from
    /// `ready_at` on.
    Scheduled {
        /// The governance timelock.
        timelock: Address,
        /// The timelock's operation id of the batch.
        operation_id: B256,
        /// Unix time from which the batch can be executed (the timelock's `getTimestamp`).
        ready_at: u64,
        /// The transaction that scheduled it.
        scheduled_in: B256,
        /// The `executeBatch` call.
        execute: PlannedTx,
    },
}

impl PendingGovernance {
    /// Whether nothing is left to do.
    pub fn is_done(&self) -> bool {
        matches!(self, Self::Done)
    }

    /// What must still be sent, by whom and when, for an operator to read; empty when
    /// [`PendingGovernance::Done`].
    pub fn instructions(&self) -> String {
        let mut text = String::new();
        match self {
            Self::Done => {}
            Self::Account { governor, calls } => {
                let _ = writeln!(text, "the governor {governor} must still send:");
                for call in calls {
                    let _ = writeln!(text, "  {}", describe_call(call));
                    let _ = writeln!(text, "    {}", transaction_line(call));
                }
            }
            Self::Unscheduled {
                proposer,
                timelock,
                delay,
                operation_id,
                schedule,
                execute,
            } => {
                let _ = writeln!(
                    text,
                    "the governance batch is NOT scheduled: the timelock's proposer {proposer} must \
                     send now"
                );
                let _ = writeln!(text, "  scheduleBatch (operation {operation_id}):");
                let _ = writeln!(text, "    {}", transaction_line(schedule));
                write_batch(&mut text, schedule);
                let _ = writeln!(
                    text,
                    "then, {delay} seconds after the scheduleBatch is mined, anyone may send to the \
                     timelock {timelock}"
                );
                let _ = writeln!(text, "  executeBatch:");
                let _ = writeln!(text, "    {}", transaction_line(execute));
            }
            Self::Scheduled {
                timelock,
                operation_id,
                ready_at,
                scheduled_in,
                execute,
            } => {
                let _ = writeln!(
                    text,
                    "the governance batch is scheduled (operation {operation_id}, transaction \
                     {scheduled_in}) in the timelock {timelock}:"
                );
                if let Ok(schedule) =
                    GovernanceTimelock::executeBatchCall::abi_decode(&execute.input)
                {
                    for (target, payload) in schedule.targets.iter().zip(&schedule.payloads) {
                        let _ = writeln!(text, "  {}", describe_payload(*target, payload));
                    }
                }
                let _ = writeln!(
                    text,
                    "it becomes executable at {} (unix time {ready_at}); from then anyone may send",
                    format_utc(*ready_at)
                );
                let _ = writeln!(text, "  executeBatch:");
                let _ = writeln!(text, "    {}", transaction_line(execute));
            }
        }
        text
    }
}

fn transaction_line(call: &PlannedTx) -> String {
    match call.kind {
        TxKind::Call(to) => format!("to {to} data 0x{}", hex::encode(&call.input)),
        TxKind::Create => format!("create data 0x{}", hex::encode(&call.input)),
    }
}

fn write_batch(text: &mut String, schedule: &PlannedTx) {
    if let Ok(call) = GovernanceTimelock::scheduleBatchCall::abi_decode(&schedule.input) {
        let _ = writeln!(text, "  the batch:");
        for (target, payload) in call.targets.iter().zip(&call.payloads) {
            let _ = writeln!(text, "    {}", describe_payload(*target, payload));
        }
    }
}

fn describe_call(call: &PlannedTx) -> String {
    match call.kind {
        TxKind::Call(to) => describe_payload(to, &call.input),
        TxKind::Create => call.label.to_owned(),
    }
}

/// A governance call in words: `approveTemplate(0x..) on 0x..`.
fn describe_payload(target: Address, payload: &[u8]) -> String {
    if let Ok(call) = TemplateRegistry::approveTemplateCall::abi_decode(payload) {
        format!("approveTemplate({}) on {target}", call.template)
    } else if let Ok(call) = PaymentCondition::setNetworkFeeCall::abi_decode(payload) {
        format!(
            "setNetworkFee({}, {} bps) on {target}",
            call.receiver, call.bps
        )
    } else {
        format!("call 0x{} on {target}", hex::encode(payload))
    }
}

/// `unix` seconds as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn format_utc(unix: u64) -> String {
    let (days, seconds) = (unix / 86_400, unix % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i128 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i128::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        seconds / 3_600,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// The result of a deployment.
#[derive(Debug, Clone)]
pub struct Deployed {
    /// The plan that was executed (addresses, and the governance calls the deployer could not
    /// make in the deployment).
    pub plan: DeploymentPlan,
    /// The addresses file content: chain id, block of the last transaction, contracts by name.
    pub deployment: Deployment,
    /// Hashes of the transactions of the deployment, in order (including those of an earlier,
    /// interrupted run that this one resumed).
    pub transactions: Vec<B256>,
    /// Steps that needed no transaction, with the reason.
    pub skipped: Vec<(&'static str, String)>,
    /// Whether this run resumed an interrupted deployment.
    pub resumed: bool,
    /// Gas of the whole plan as simulated before sending.
    pub simulated_gas: u64,
    /// What is left of the governance calls.
    pub governance: PendingGovernance,
}

/// Deploys the suite from `sender`'s account.
///
/// Before sending anything, the whole plan is executed in memory ([`crate::simulate`]) and the
/// deployer's balance is checked against its cost. When `journal` is given, every transaction is
/// recorded there before it is broadcast and once it has landed; if the file already records an
/// interrupted deployment of the same plan by the same deployer on the same chain, this call
/// resumes it. The caller removes the journal ([`Journal::remove`]) once it has stored the
/// addresses.
///
/// # Errors
///
/// See [`DeployError`]; the deployment stops at the first failing step.
pub async fn deploy_suite(
    sender: &Sender,
    options: DeployOptions,
    journal: Option<&Path>,
    progress: &dyn Progress,
) -> Result<(Deployed, Journal), DeployError> {
    let provider = sender.provider();
    let chain_id = sender.chain_id();
    let deployer = sender.address();

    let existing = match journal {
        Some(path) => Journal::open(path)?,
        None => None,
    };
    let resumed = existing.is_some();
    let first_nonce = match &existing {
        Some(found) => found.file.first_nonce,
        None => {
            let latest = provider.get_transaction_count(deployer).await?;
            let pending = provider.get_transaction_count(deployer).pending().await?;
            if pending != latest {
                return Err(DeployError::PendingTransactions {
                    deployer,
                    latest,
                    pending,
                });
            }
            latest
        }
    };
    let plan = deployment::plan(deployer, first_nonce, options);
    let steps = steps_of(&plan, options, deployer);
    let digest = plan_digest(&steps);
    let latest = provider
        .get_block_by_number(BlockNumberOrTag::Latest)
        .await?
        .map(|block| block.header.timestamp)
        .unwrap_or_default();
    // Run on a resume too: the same plan, so the same outcome and gas figure.
    let simulation = simulate(deployer, first_nonce, &steps, chain_id, latest)?;
    let simulated_gas = simulation.total_gas();
    let mut journal = match existing {
        Some(found) => {
            let mismatch = |what| DeployError::JournalMismatch {
                path: found.path().map(Path::to_path_buf).unwrap_or_default(),
                what,
            };
            if found.file.chain_id != chain_id {
                return Err(mismatch("another chain id"));
            }
            if found.file.deployer != deployer {
                return Err(mismatch("another deployer"));
            }
            if found.file.plan_digest != digest {
                return Err(mismatch("other options or other contracts"));
            }
            found
        }
        None => {
            check_funds(sender, simulated_gas).await?;
            Journal::create(
                journal,
                JournalFile {
                    version: JOURNAL_VERSION,
                    chain_id,
                    deployer,
                    first_nonce,
                    plan_digest: digest,
                    steps: Vec::new(),
                },
            )?
        }
    };

    let tx_error = |source, journal: &Journal| DeployError::Tx {
        source: Box::new(source),
        journal: journal.path().map(Path::to_path_buf),
    };
    let store = AgreementStore::new(plan.addresses.agreement_store, provider);
    let mut transactions = Vec::with_capacity(steps.len());
    let mut skipped = Vec::new();
    let mut next_nonce = first_nonce;
    let mut last_block = 0;
    for (index, step) in steps.iter().enumerate() {
        let label = step.label;
        // A step that was started in an earlier run.
        let prepared = match journal.step(index).cloned() {
            Some(StepRecord::Landed { nonce, hash, block }) => {
                if let Some(expected) = step.creates
                    && provider.get_code_at(expected).await?.is_empty()
                {
                    return Err(DeployError::UnexpectedAddress {
                        label,
                        expected,
                        actual: None,
                    });
                }
                progress.report(&TxEvent::Skipped {
                    label: label.to_owned(),
                    reason: format!("landed earlier in block {block} (transaction {hash})"),
                });
                transactions.push(hash);
                next_nonce = nonce + 1;
                last_block = last_block.max(block);
                continue;
            }
            Some(StepRecord::Skipped { reason }) => {
                skipped.push((label, reason));
                continue;
            }
            Some(StepRecord::Sent { nonce, hash, raw }) => {
                let prepared = tx::Prepared {
                    label: label.to_owned(),
                    hash,
                    nonce,
                    raw,
                };
                if provider.get_transaction_receipt(hash).await?.is_none() {
                    let actual = provider.get_transaction_count(deployer).await?;
                    if actual > nonce {
                        return Err(DeployError::NonceTaken {
                            label,
                            nonce,
                            actual,
                        });
                    }
                    sender
                        .broadcast(&prepared)
                        .await
                        .map_err(|source| tx_error(source, &journal))?;
                    progress.report(&TxEvent::Sent {
                        label: label.to_owned(),
                        hash,
                    });
                }
                prepared
            }
            None => {
                if let Some(reason) = already_done(&store, step).await? {
                    progress.report(&TxEvent::Skipped {
                        label: label.to_owned(),
                        reason: reason.clone(),
                    });
                    journal.record(
                        index,
                        label,
                        StepRecord::Skipped {
                            reason: reason.clone(),
                        },
                    )?;
                    skipped.push((label, reason));
                    continue;
                }
                let actual = provider.get_transaction_count(deployer).await?;
                if actual != next_nonce {
                    return Err(DeployError::NonceTaken {
                        label,
                        nonce: next_nonce,
                        actual,
                    });
                }
                let prepared = sender
                    .prepare(label, request_of(step), Some(next_nonce))
                    .await
                    .map_err(|source| tx_error(source, &journal))?;
                // Recorded before it is broadcast: a run killed in between finds it by its hash.
                journal.record(
                    index,
                    label,
                    StepRecord::Sent {
                        nonce: prepared.nonce,
                        hash: prepared.hash,
                        raw: prepared.raw.clone(),
                    },
                )?;
                sender
                    .broadcast(&prepared)
                    .await
                    .map_err(|source| tx_error(source, &journal))?;
                progress.report(&TxEvent::Sent {
                    label: label.to_owned(),
                    hash: prepared.hash,
                });
                prepared
            }
        };
        let receipt = sender
            .confirm(label, prepared.hash)
            .await
            .map_err(|source| tx_error(source, &journal))?;
        if let Some(expected) = step.creates
            && receipt.contract_address != Some(expected)
        {
            return Err(DeployError::UnexpectedAddress {
                label,
                expected,
                actual: receipt.contract_address,
            });
        }
        let block = receipt.block_number.unwrap_or_default();
        journal.record(
            index,
            label,
            StepRecord::Landed {
                nonce: prepared.nonce,
                hash: prepared.hash,
                block,
            },
        )?;
        progress.report(&tx::confirmed(label, &receipt));
        transactions.push(prepared.hash);
        next_nonce = prepared.nonce + 1;
        last_block = last_block.max(block);
    }

    let governance = pending_governance(sender, &plan, options, &transactions, &steps).await?;
    let mut deployment = Deployment::new(chain_id, last_block);
    for (name, address) in plan.addresses.by_name() {
        deployment.insert(name, address);
    }
    Ok((
        Deployed {
            plan,
            deployment,
            transactions,
            skipped,
            resumed,
            simulated_gas,
            governance,
        },
        journal,
    ))
}

/// Every transaction the deployer sends: the plan's, plus the timelock's `scheduleBatch` when the
/// deployer is the proposer of a timelock with a delay.
pub fn steps_of(
    plan: &DeploymentPlan,
    options: DeployOptions,
    deployer: Address,
) -> Vec<PlannedTx> {
    let mut steps = plan.transactions.clone();
    if let (Governance::Timelock { proposer, .. }, [schedule, _execute]) =
        (options.governance, &plan.governor_calls[..])
        && proposer == deployer
    {
        steps.push(schedule.clone());
    }
    steps
}

/// Why `step` needs no transaction, if it does not: a template that is already proposed (by anyone:
/// proposing is open to all) or approved.
async fn already_done(
    store: &AgreementStore::AgreementStoreInstance<&DynProvider>,
    step: &PlannedTx,
) -> Result<Option<String>, DeployError> {
    let Ok(call) = TemplateRegistry::proposeTemplateCall::abi_decode(&step.input) else {
        return Ok(None);
    };
    if step.kind != TxKind::Call(*store.address()) {
        return Ok(None);
    }
    let state = store
        .templateState(call.template)
        .call()
        .await
        .map_err(|error| DeployError::Read(Box::new(error)))?;
    Ok(match TemplateStatus::from_raw(state) {
        TemplateStatus::Proposed => Some(format!("template {} is already proposed", call.template)),
        TemplateStatus::Approved => Some(format!("template {} is already approved", call.template)),
        TemplateStatus::Uninitialized | TemplateStatus::Revoked => None,
    })
}

fn request_of(step: &PlannedTx) -> TransactionRequest {
    let request = TransactionRequest::default()
        .with_value(U256::ZERO)
        .with_input(step.input.clone());
    match step.kind {
        TxKind::Create => request.into_create(),
        TxKind::Call(to) => request.with_to(to),
    }
}

/// Refuses a deployer that cannot pay for `gas` (with the sender's margin) at the current fees.
async fn check_funds(sender: &Sender, gas: u64) -> Result<(), DeployError> {
    let provider = sender.provider();
    let fee_per_gas = match provider.estimate_eip1559_fees().await {
        Ok(fees) => fees.max_fee_per_gas,
        Err(_) => provider.get_gas_price().await?,
    };
    let gas = gas.saturating_mul(100 + tx::GAS_MARGIN_PERCENT) / 100;
    let needed = U256::from(gas) * U256::from(fee_per_gas);
    let balance = provider.get_balance(sender.address()).await?;
    if balance < needed {
        return Err(DeployError::InsufficientFunds {
            deployer: sender.address(),
            balance,
            needed,
            gas,
            fee_per_gas,
        });
    }
    Ok(())
}

async fn pending_governance(
    sender: &Sender,
    plan: &DeploymentPlan,
    options: DeployOptions,
    transactions: &[B256],
    steps: &[PlannedTx],
) -> Result<PendingGovernance, DeployError> {
    Ok(match (options.governance, &plan.governor_calls[..]) {
        (_, []) => PendingGovernance::Done,
        (Governance::Account(governor), calls) => PendingGovernance::Account {
            governor,
            calls: calls.to_vec(),
        },
        (Governance::Timelock { proposer, delay }, [schedule, execute]) => {
            let timelock_address = plan
                .addresses
                .governance_timelock
                .expect("a timelock deployment has a timelock");
            let timelock = GovernanceTimelock::new(timelock_address, sender.provider());
            let batch = GovernanceTimelock::executeBatchCall::abi_decode(&execute.input)
                .expect("the plan's executeBatch call decodes");
            let operation_id = timelock
                .hashOperationBatch(
                    batch.targets,
                    batch.values,
                    batch.payloads,
                    batch.predecessor,
                    batch.salt,
                )
                .call()
                .await
                .map_err(|error| DeployError::Read(Box::new(error)))?;
            if proposer == sender.address() {
                let ready_at = timelock
                    .getTimestamp(operation_id)
                    .call()
                    .await
                    .map_err(|error| DeployError::Read(Box::new(error)))?;
                let scheduled_in = (steps.len() == transactions.len())
                    .then(|| transactions.last().copied())
                    .flatten()
                    .unwrap_or_default();
                PendingGovernance::Scheduled {
                    timelock: timelock_address,
                    operation_id,
                    ready_at: ready_at.try_into().unwrap_or(u64::MAX),
                    scheduled_in,
                    execute: execute.clone(),
                }
            } else {
                PendingGovernance::Unscheduled {
                    proposer,
                    timelock: timelock_address,
                    delay,
                    operation_id,
                    schedule: schedule.clone(),
                    execute: execute.clone(),
                }
            }
        }
        (Governance::Timelock { .. }, calls) => {
            unreachable!("a timelock plan leaves a schedule and an execute, not {calls:?}")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates_are_formatted() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(format_utc(1_767_225_599), "2025-12-31 23:59:59 UTC");
    }

    #[test]
    fn only_dev_chains_may_skip_the_timelock_delay() {
        let options = |governance| DeployOptions {
            governance,
            admin_transfer_delay: 0,
            network_fee: None,
        };
        let account = options(Governance::Account(Address::ZERO));
        let instant = options(Governance::Timelock {
            proposer: Address::ZERO,
            delay: 0,
        });
        let delayed = options(Governance::Timelock {
            proposer: Address::ZERO,
            delay: 1,
        });
        for chain in DEV_CHAIN_IDS {
            for options in [account, instant, delayed] {
                assert_eq!(unsafe_governance(chain, &options), None);
            }
        }
        assert!(
            unsafe_governance(1, &account)
                .unwrap()
                .contains("without a timelock")
        );
        assert!(
            unsafe_governance(11_155_111, &instant)
                .unwrap()
                .contains("without delay")
        );
        assert_eq!(unsafe_governance(1, &delayed), None);
    }
}
