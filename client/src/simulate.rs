//! Executes a deployment plan in an in-memory EVM before anything is sent.
//!
//! The plan creates its own contracts and only calls them, so its outcome does not depend on the
//! chain's state: running it from the deployer's nonce on an empty state, with the chain's id and
//! time, tells whether every step succeeds (a step that would revert is named with its decoded
//! error), creates each contract where planned, and how much gas the whole deployment takes.

use std::convert::Infallible;

use alloy::primitives::{Address, B256, TxKind, U256};
use insitu_bindings::{
    deployment::PlannedTx,
    errors::{Revert, decode_revert},
};
use revm::{
    Context, ExecuteCommitEvm, MainBuilder, MainContext,
    context::{
        TxEnv,
        result::{ExecutionResult, Output},
    },
    context_interface::block::BlobExcessGasAndPrice,
    database::{CacheDB, EmptyDB},
    primitives::{eip4844::BLOB_BASE_FEE_UPDATE_FRACTION_CANCUN, hardfork::SpecId},
    state::AccountInfo,
};

/// Gas limit of each simulated transaction and block.
pub const SIMULATION_GAS_LIMIT: u64 = 30_000_000;

/// Why a plan would fail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimulationError {
    /// A step reverts.
    #[error("`{label}` would revert: {reason}")]
    Reverts {
        /// The step.
        label: &'static str,
        /// The decoded revert.
        reason: Revert,
    },
    /// A step halts (out of gas, invalid opcode, contract too large, ...).
    #[error("`{label}` would fail: {reason}")]
    Halts {
        /// The step.
        label: &'static str,
        /// The EVM's reason.
        reason: String,
    },
    /// A create step would put its contract elsewhere than planned.
    #[error("`{label}` would create {actual:?} instead of the planned {expected}")]
    UnexpectedAddress {
        /// The step.
        label: &'static str,
        /// The planned address.
        expected: Address,
        /// The simulated one.
        actual: Option<Address>,
    },
    /// The EVM refused the transaction itself.
    #[error("`{label}` is not a valid transaction: {reason}")]
    Invalid {
        /// The step.
        label: &'static str,
        /// Why.
        reason: String,
    },
}

/// The gas each step used, in plan order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Simulation {
    /// `(step, gas used)`.
    pub steps: Vec<(&'static str, u64)>,
}

impl Simulation {
    /// Gas of all steps.
    pub fn total_gas(&self) -> u64 {
        self.steps.iter().map(|(_, gas)| gas).sum()
    }
}

/// Runs `steps` from `deployer`, whose first transaction has nonce `first_nonce`, on chain
/// `chain_id` at time `timestamp`.
///
/// # Errors
///
/// The first failing step, see [`SimulationError`].
pub fn simulate(
    deployer: Address,
    first_nonce: u64,
    steps: &[PlannedTx],
    chain_id: u64,
    timestamp: u64,
) -> Result<Simulation, SimulationError> {
    let mut db = CacheDB::new(EmptyDB::default());
    db.insert_account_info(
        deployer,
        AccountInfo {
            balance: U256::MAX >> 8,
            nonce: first_nonce,
            ..AccountInfo::default()
        },
    );
    let mut evm = Context::mainnet()
        .with_db(db)
        .modify_cfg_chained(|cfg| {
            cfg.spec = SpecId::CANCUN;
            cfg.chain_id = chain_id;
        })
        .modify_block_chained(|block| {
            block.number = U256::from(1);
            block.timestamp = U256::from(timestamp);
            block.gas_limit = SIMULATION_GAS_LIMIT;
            block.basefee = 0;
            block.prevrandao = Some(B256::ZERO);
            block.blob_excess_gas_and_price = Some(BlobExcessGasAndPrice::new(
                0,
                BLOB_BASE_FEE_UPDATE_FRACTION_CANCUN,
            ));
        })
        .build_mainnet();

    let mut gas = Vec::with_capacity(steps.len());
    for (offset, step) in steps.iter().enumerate() {
        let label = step.label;
        let env = TxEnv::builder()
            .caller(deployer)
            .kind(step.kind)
            .data(step.input.clone())
            .gas_limit(SIMULATION_GAS_LIMIT)
            .gas_price(0)
            .nonce(first_nonce + offset as u64)
            .chain_id(Some(chain_id))
            .build_fill();
        let result = evm
            .transact_commit(env)
            .map_err(|error| SimulationError::Invalid {
                label,
                reason: error
                    .map_db_err(|never: Infallible| match never {})
                    .to_string(),
            })?;
        let gas_used = result.tx_gas_used();
        match result {
            ExecutionResult::Success { output, .. } => {
                if let (TxKind::Create, Some(expected)) = (step.kind, step.creates) {
                    let actual = match output {
                        Output::Create(_, address) => address,
                        Output::Call(_) => None,
                    };
                    if actual != Some(expected) {
                        return Err(SimulationError::UnexpectedAddress {
                            label,
                            expected,
                            actual,
                        });
                    }
                }
                gas.push((label, gas_used));
            }
            ExecutionResult::Revert { output, .. } => {
                return Err(SimulationError::Reverts {
                    label,
                    reason: decode_revert(&output),
                });
            }
            ExecutionResult::Halt { reason, .. } => {
                return Err(SimulationError::Halts {
                    label,
                    reason: format!("{reason:?}"),
                });
            }
        }
    }
    Ok(Simulation { steps: gas })
}
