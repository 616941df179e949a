//! Deploys the contract suite to any EVM chain over JSON-RPC.
//!
//! The transactions are exactly those of [`insitu_bindings::deployment::plan`], the plan the revm
//! test harness executes too: same contracts, same order, same wiring. Each transaction is sent
//! with the nonce the plan was computed for, its receipt awaited with the requested number of
//! confirmations, and every created contract checked against its planned address. A deployment
//! that fails midway can be inspected from the error, which names the step.

use alloy::{
    network::{Ethereum, TransactionBuilder},
    primitives::{Address, B256, TxKind},
    providers::{PendingTransactionError, Provider},
    rpc::types::TransactionRequest,
    transports::TransportError,
};
use insitu_bindings::deployment::{self, DeployOptions, DeploymentPlan, PlannedTx};

use crate::addresses::Deployment;

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
}

/// The result of a deployment.
#[derive(Debug, Clone)]
pub struct Deployed {
    /// The plan that was executed (addresses, and governor calls still to make if the deployer
    /// is not the governor).
    pub plan: DeploymentPlan,
    /// The addresses file content: chain id, block of the last transaction, contracts by name.
    pub deployment: Deployment,
    /// Hashes of the transactions sent, in order.
    pub transactions: Vec<B256>,
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
    let mut transactions = Vec::with_capacity(plan.transactions.len());
    let mut last_block = 0;
    for (offset, planned) in plan.transactions.iter().enumerate() {
        let nonce = first_nonce + offset as u64;
        let (tx_hash, block) =
            send_planned(provider, deployer, nonce, planned, confirmations).await?;
        transactions.push(tx_hash);
        last_block = block;
    }
    let mut deployment = Deployment::new(chain_id, last_block);
    for (name, address) in plan.addresses.by_name() {
        deployment.insert(name, address);
    }
    Ok(Deployed {
        plan,
        deployment,
        transactions,
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
        .with_input(planned.input.clone());
    let request = match planned.kind {
        TxKind::Create => request.into_create(),
        TxKind::Call(to) => request.with_to(to),
    };
    let label = planned.label;
    let pending = provider.send_transaction(request).await?;
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
