//! The end-to-end demo on a real node: an operator deploys the suite, a provider publishes an
//! asset, a consumer buys access and pays into escrow in one transaction, the provider grants
//! access and releases the escrow in one transaction, and the network's fee receiver collects its
//! fee.
//!
//! Every step is a real transaction on the node, through the generated bindings; the report
//! carries each step's gas and every party's balance, read back from the chain.

use alloy::{
    network::{Ethereum, EthereumWallet},
    primitives::{B256, U256, keccak256},
    providers::ProviderBuilder,
    rpc::types::TransactionReceipt,
    signers::local::PrivateKeySigner,
    sol_types::SolEvent,
};
use insitu_bindings::{
    AccessCondition, AgreementStore, AssetRegistry, EscrowPaymentCondition, MockERC20,
    ServiceTemplate, deployment::DeployOptions,
};

use crate::deploy::{DeployError, deploy_suite};

/// Price of the demo asset, in demo tokens (18 decimals): 250.
pub const PRICE: u128 = 250_000_000_000_000_000_000;
/// Network fee of the demo deployment: 1%.
pub const FEE_BPS: u16 = 100;

/// Why the demo failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The deployment failed.
    #[error(transparent)]
    Deploy(#[from] DeployError),
    /// A contract call failed (reverted, or the node refused it).
    #[error("{step}: {source}")]
    Call {
        /// The demo step.
        step: &'static str,
        /// The underlying error.
        #[source]
        source: Box<alloy::contract::Error>,
    },
    /// A receipt could not be obtained.
    #[error("{step}: {source}")]
    Receipt {
        /// The demo step.
        step: &'static str,
        /// The underlying error.
        #[source]
        source: alloy::providers::PendingTransactionError,
    },
    /// A transaction was mined but reverted.
    #[error("{step}: the transaction reverted")]
    Reverted {
        /// The demo step.
        step: &'static str,
    },
    /// An expected event is missing from a receipt.
    #[error("{step}: no {event} event in the receipt")]
    MissingEvent {
        /// The demo step.
        step: &'static str,
        /// The event's name.
        event: &'static str,
    },
    /// The endpoint is not a URL.
    #[error("invalid RPC endpoint {0}")]
    InvalidEndpoint(String),
    /// Fewer than four funded accounts were given.
    #[error("the demo needs four funded accounts, got {0}")]
    NotEnoughAccounts(usize),
}

/// What happened, for printing and for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoReport {
    /// Each transaction: (what it did, gas used).
    pub steps: Vec<(&'static str, u64)>,
    /// The asset bought.
    pub did: B256,
    /// The agreement.
    pub agreement_id: B256,
    /// Demo token balances at the end: (party, balance).
    pub balances: Vec<(&'static str, U256)>,
    /// Whether the consumer holds access on chain at the end.
    pub consumer_has_access: bool,
}

fn step_error(step: &'static str) -> impl FnOnce(alloy::contract::Error) -> DemoError {
    move |source| DemoError::Call {
        step,
        source: Box::new(source),
    }
}

async fn confirm(
    step: &'static str,
    pending: alloy::providers::PendingTransactionBuilder<Ethereum>,
    steps: &mut Vec<(&'static str, u64)>,
) -> Result<TransactionReceipt, DemoError> {
    let receipt = pending
        .get_receipt()
        .await
        .map_err(|source| DemoError::Receipt { step, source })?;
    if !receipt.status() {
        return Err(DemoError::Reverted { step });
    }
    steps.push((step, receipt.gas_used));
    Ok(receipt)
}

fn event<E: SolEvent>(step: &'static str, receipt: &TransactionReceipt) -> Result<E, DemoError> {
    receipt
        .inner
        .logs()
        .iter()
        .find_map(|log| log.log_decode::<E>().ok())
        .map(|log| log.inner.data)
        .ok_or(DemoError::MissingEvent {
            step,
            event: E::SIGNATURE,
        })
}

/// Runs the demo against the node at `endpoint` with four funded keys: operator (deployer and
/// governor), provider, consumer, fee receiver.
///
/// # Errors
///
/// See [`DemoError`].
pub async fn run(endpoint: &str, keys: &[PrivateKeySigner]) -> Result<DemoReport, DemoError> {
    let [operator, provider_key, consumer_key, fee_key] = keys else {
        return Err(DemoError::NotEnoughAccounts(keys.len()));
    };
    let (operator_addr, provider_addr, consumer_addr, fee_addr) = (
        operator.address(),
        provider_key.address(),
        consumer_key.address(),
        fee_key.address(),
    );
    let mut wallet = EthereumWallet::from(operator.clone());
    for key in [provider_key, consumer_key, fee_key] {
        wallet.register_signer(key.clone());
    }
    let url = endpoint
        .parse()
        .map_err(|_| DemoError::InvalidEndpoint(endpoint.to_owned()))?;
    let provider = ProviderBuilder::new().wallet(wallet).connect_http(url);
    let mut steps = Vec::new();

    // 1. The operator deploys the suite with a 1% network fee, and a demo token.
    let deployed = deploy_suite(
        &provider,
        operator_addr,
        DeployOptions {
            governor: operator_addr,
            network_fee: Some((fee_addr, FEE_BPS)),
        },
        1,
    )
    .await?;
    let suite = deployed.plan.addresses;
    let token = MockERC20::deploy(&provider, "Demo USD".into(), "DUSD".into(), 18)
        .await
        .map_err(step_error("deploy demo token"))?;
    let token_addr = *token.address();
    let price = U256::from(PRICE);
    let fee = price * U256::from(FEE_BPS) / U256::from(10_000);
    confirm(
        "mint demo tokens to the consumer",
        token
            .mint(consumer_addr, price + fee)
            .from(operator_addr)
            .send()
            .await
            .map_err(step_error("mint"))?,
        &mut steps,
    )
    .await?;

    // 2. The provider publishes an asset it serves itself.
    let registry = AssetRegistry::new(suite.asset_registry, &provider);
    let receipt = confirm(
        "provider registers an asset",
        registry
            .register(
                keccak256(b"demo asset"),
                keccak256(b"demo metadata document"),
                "https://provider.example/assets/demo.json".into(),
                vec![provider_addr],
            )
            .from(provider_addr)
            .send()
            .await
            .map_err(step_error("register"))?,
        &mut steps,
    )
    .await?;
    let did = event::<AssetRegistry::AssetRegistered>("register", &receipt)?.did;

    // 3. The consumer approves the lock condition once, then buys access in one transaction.
    confirm(
        "consumer approves the lock condition",
        token
            .approve(suite.lock_payment, U256::MAX)
            .from(consumer_addr)
            .send()
            .await
            .map_err(step_error("approve"))?,
        &mut steps,
    )
    .await?;
    let template = ServiceTemplate::new(suite.access_template, &provider);
    let terms = ServiceTemplate::Terms {
        token: token_addr,
        receivers: vec![provider_addr],
        amounts: vec![price],
        serviceTimeout: 0,
    };
    let receipt = confirm(
        "consumer creates the agreement and pays",
        template
            .createAgreementAndLock(keccak256(b"demo order 1"), did, terms)
            .from(consumer_addr)
            .send()
            .await
            .map_err(step_error("create and lock"))?,
        &mut steps,
    )
    .await?;
    let created = event::<AgreementStore::AgreementCreated>("create", &receipt)?;
    let agreed = event::<ServiceTemplate::AgreementTerms>("create", &receipt)?;
    let [lock_id, _access_id, _escrow_id] = created.conditionIds[..] else {
        return Err(DemoError::MissingEvent {
            step: "create",
            event: "AgreementCreated with three conditions",
        });
    };

    // 4. The provider's keeper checks the payment on chain, grants access and releases the escrow
    //    in one transaction (the contracts refuse it if the payment is not locked).
    let access = AccessCondition::new(suite.access, &provider);
    let payment = insitu_bindings::access_condition::ServiceCondition::Payment {
        token: token_addr,
        receivers: agreed.receivers.clone(),
        amounts: agreed.amounts.clone(),
        fee: agreed.fee,
    };
    confirm(
        "provider grants access and releases the escrow",
        access
            .fulfilAndRelease(created.agreementId, did, consumer_addr, lock_id, payment)
            .from(provider_addr)
            .send()
            .await
            .map_err(step_error("fulfil and release"))?,
        &mut steps,
    )
    .await?;
    let escrow = EscrowPaymentCondition::new(suite.escrow_payment, &provider);

    // 5. The fee receiver collects the accrued network fee.
    confirm(
        "fee receiver withdraws the network fee",
        escrow
            .withdrawFees(token_addr, fee_addr)
            .from(fee_addr)
            .send()
            .await
            .map_err(step_error("withdraw fees"))?,
        &mut steps,
    )
    .await?;

    let consumer_has_access = access
        .hasAccess(created.agreementId, did, consumer_addr, lock_id)
        .call()
        .await
        .map_err(step_error("hasAccess"))?;
    let mut balances = Vec::new();
    for (party, address) in [
        ("consumer", consumer_addr),
        ("provider", provider_addr),
        ("fee receiver", fee_addr),
        ("escrow", suite.escrow_payment),
    ] {
        let balance = token
            .balanceOf(address)
            .call()
            .await
            .map_err(step_error("balanceOf"))?;
        balances.push((party, balance));
    }
    Ok(DemoReport {
        steps,
        did,
        agreement_id: created.agreementId,
        balances,
        consumer_has_access,
    })
}

/// Formats a demo token amount (18 decimals) with two decimals.
pub fn format_tokens(amount: U256) -> String {
    let cents = amount / U256::from(10_000_000_000_000_000u64);
    let cents: u128 = cents.try_into().unwrap_or(u128::MAX);
    format!("{}.{:02}", cents / 100, cents % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_formatted_with_two_decimals() {
        assert_eq!(format_tokens(U256::from(PRICE)), "250.00");
        assert_eq!(
            format_tokens(U256::from(2_500_000_000_000_000_000u128)),
            "2.50"
        );
        assert_eq!(format_tokens(U256::ZERO), "0.00");
    }
}
