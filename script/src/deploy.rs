//! Deploys the contract suite to any EVM chain over JSON-RPC.
//!
//! The transactions are exactly those of [`insitu_bindings::deployment::plan`], the plan the revm
//! test harness executes too: same contracts, same order, same wiring. Each transaction is sent
//! with the nonce the plan was computed for, its receipt awaited with the requested number of
//! confirmations, and every created contract checked against its planned address. A deployment
//! that fails midway can be inspected from the error, which names the step.
//!
//! The governance calls (approving both templates, setting the network fee) go through the
//! governance timelock in production. The deployer carries them out in the deployment itself when it
//! may: it is the governing account, or the timelock's proposer and the delay is 0. When it is the
//! proposer and there is a delay, it schedules the batch (one more transaction after the plan) and
//! the batch is left to be executed, by anyone, once the delay is over. Otherwise nothing is sent
//! for them. What remains is returned in [`Deployed::governance`], which also says what to send
//! ([`PendingGovernance::instructions`]).

use std::fmt::Write as _;

use alloy::{
    network::{Ethereum, TransactionBuilder},
    primitives::{Address, B256, TxKind, U256, hex},
    providers::{PendingTransactionError, Provider},
    rpc::types::TransactionRequest,
    sol_types::SolCall,
    transports::TransportError,
};
use insitu_bindings::{
    GovernanceTimelock, PaymentCondition, TemplateRegistry,
    deployment::{self, DeployOptions, DeploymentPlan, Governance, PlannedTx},
};

use crate::addresses::Deployment;

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
    /// A transaction was sent but its receipt could not be obtained.
    #[error("waiting for the receipt of `{label}`: {source}")]
    Receipt {
        /// The plan step.
        label: &'static str,
        /// The underlying error.
        #[source]
        source: PendingTransactionError,
    },
    /// The node refused a transaction because it would revert (gas estimation failed); nothing of
    /// this step was sent.
    #[error("`{label}` would revert: {reason}")]
    WouldRevert {
        /// The plan step.
        label: &'static str,
        /// The decoded revert.
        reason: insitu_bindings::errors::Revert,
    },
    /// A transaction was mined but reverted.
    #[error("`{label}` reverted (transaction {tx_hash})")]
    Reverted {
        /// The plan step.
        label: &'static str,
        /// The transaction.
        tx_hash: B256,
    },
    /// A contract was created at another address than planned: another transaction of the
    /// deployer was mined in between. Nothing after this step was sent.
    #[error("`{label}` created {actual:?} instead of the planned {expected}")]
    UnexpectedAddress {
        /// The plan step.
        label: &'static str,
        /// The planned address.
        expected: Address,
        /// The address in the receipt.
        actual: Option<Address>,
    },
    /// A call to read the scheduled governance operation back failed.
    #[error("reading the scheduled governance batch: {0}")]
    Timelock(#[source] Box<alloy::contract::Error>),
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
    /// Hashes of the transactions sent, in order.
    pub transactions: Vec<B256>,
    /// What is left of the governance calls.
    pub governance: PendingGovernance,
}

/// Deploys the suite from `deployer` (whose key the provider's wallet holds) and returns where
/// everything went.
///
/// # Errors
///
/// See [`DeployError`]; the deployment stops at the first failing step.
pub async fn deploy_suite<P: Provider<Ethereum>>(
    provider: &P,
    deployer: Address,
    options: DeployOptions,
    confirmations: u64,
) -> Result<Deployed, DeployError> {
    let chain_id = provider.get_chain_id().await?;
    let first_nonce = provider.get_transaction_count(deployer).await?;
    let plan = deployment::plan(deployer, first_nonce, options);
    let mut transactions = Vec::with_capacity(plan.transactions.len() + 1);
    let mut last_block = 0;
    for (offset, planned) in plan.transactions.iter().enumerate() {
        let nonce = first_nonce + offset as u64;
        let (tx_hash, block) =
            send_planned(provider, deployer, nonce, planned, confirmations).await?;
        transactions.push(tx_hash);
        last_block = block;
    }

    let governance = match (options.governance, &plan.governor_calls[..]) {
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
            let timelock = GovernanceTimelock::new(timelock_address, provider);
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
                .map_err(|error| DeployError::Timelock(Box::new(error)))?;
            if proposer == deployer {
                let nonce = first_nonce + transactions.len() as u64;
                let (tx_hash, block) =
                    send_planned(provider, deployer, nonce, schedule, confirmations).await?;
                transactions.push(tx_hash);
                last_block = block;
                let ready_at = timelock
                    .getTimestamp(operation_id)
                    .call()
                    .await
                    .map_err(|error| DeployError::Timelock(Box::new(error)))?;
                PendingGovernance::Scheduled {
                    timelock: timelock_address,
                    operation_id,
                    ready_at: ready_at.try_into().unwrap_or(u64::MAX),
                    scheduled_in: tx_hash,
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
    };

    let mut deployment = Deployment::new(chain_id, last_block);
    for (name, address) in plan.addresses.by_name() {
        deployment.insert(name, address);
    }
    Ok(Deployed {
        plan,
        deployment,
        transactions,
        governance,
    })
}

async fn send_planned<P: Provider<Ethereum>>(
    provider: &P,
    deployer: Address,
    nonce: u64,
    planned: &PlannedTx,
    confirmations: u64,
) -> Result<(B256, u64), DeployError> {
    let request = TransactionRequest::default()
        .with_from(deployer)
        .with_nonce(nonce)
        .with_value(U256::ZERO)
        .with_input(planned.input.clone());
    let request = match planned.kind {
        TxKind::Create => request.into_create(),
        TxKind::Call(to) => request.with_to(to),
    };
    let label = planned.label;
    let pending = provider
        .send_transaction(request)
        .await
        .map_err(|error| refused_step(label, error))?;
    let receipt = pending
        .with_required_confirmations(confirmations.max(1))
        .get_receipt()
        .await
        .map_err(|source| DeployError::Receipt { label, source })?;
    if !receipt.status() {
        return Err(DeployError::Reverted {
            label,
            tx_hash: receipt.transaction_hash,
        });
    }
    if let Some(expected) = planned.creates
        && receipt.contract_address != Some(expected)
    {
        return Err(DeployError::UnexpectedAddress {
            label,
            expected,
            actual: receipt.contract_address,
        });
    }
    Ok((
        receipt.transaction_hash,
        receipt.block_number.unwrap_or_default(),
    ))
}

/// Names the step and decodes the revert when the node refused to send it because it would revert;
/// any other RPC error stays as it is.
fn refused_step(label: &'static str, error: TransportError) -> DeployError {
    match error
        .as_error_resp()
        .and_then(|payload| payload.as_revert_data())
    {
        Some(data) => DeployError::WouldRevert {
            label,
            reason: insitu_bindings::errors::decode_revert(&data),
        },
        None => DeployError::Rpc(error),
    }
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
