//! The end-to-end demo on a real node: an operator deploys the suite (governed by a timelock
//! without delay, the operator its proposer, so the templates are approved and the network fee set
//! in the deployment itself), a provider publishes an asset served by its keeper, the keeper signs
//! an EIP-712 offer, a consumer buys access on that offer and pays into escrow in one transaction
//! (approving exactly the quoted total), the keeper grants access and releases the escrow in one
//! transaction, and the network's fee receiver collects its fee.
//!
//! Every step is a real transaction on the node, through the generated bindings; the report
//! carries each step's gas and every party's balance, read back from the chain.

use alloy::{
    eips::BlockNumberOrTag,
    network::{Ethereum, EthereumWallet},
    primitives::{Address, B256, U256, keccak256},
    providers::{Provider, ProviderBuilder},
    rpc::types::TransactionReceipt,
    signers::{Signer, local::PrivateKeySigner},
    sol_types::SolEvent,
};
use insitu_bindings::{
    AccessCondition, AgreementStore, AssetRegistry, MockERC20, PaymentCondition, ServiceTemplate,
    deployment::{DeployOptions, Governance},
    offers::{self, Offer, Payment},
};

use crate::{
    addresses::Deployment,
    deploy::{DEFAULT_ADMIN_TRANSFER_DELAY, DeployError, deploy_suite},
    tx::{Sender, Silent, TxOptions},
};

/// Price of the demo asset, in demo tokens (18 decimals): 250.
pub const PRICE: u128 = 250_000_000_000_000_000_000;
/// Network fee of the demo deployment: 1%.
pub const FEE_BPS: u16 = 100;
/// Shortest service time out the keeper's offer allows: one hour.
pub const OFFER_MIN_TIMEOUT: u32 = 3_600;
/// Longest service time out the keeper's offer allows (the consumer takes it): three days.
pub const OFFER_MAX_TIMEOUT: u32 = 3 * 86_400;
/// How long the keeper's offer stays valid: one day.
pub const OFFER_VALIDITY: u64 = 86_400;

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
    /// Fewer than five funded accounts were given.
    #[error("the demo needs five funded accounts, got {0}")]
    NotEnoughAccounts(usize),
    /// The node could not be read.
    #[error("{step}: {source}")]
    Rpc {
        /// The demo step.
        step: &'static str,
        /// The underlying error.
        #[source]
        source: alloy::transports::TransportError,
    },
    /// Signing the offer failed.
    #[error("signing the offer: {0}")]
    Sign(#[from] alloy::signers::Error),
    /// The offer's EIP-712 hash computed off chain differs from the template's `offerDigest`.
    #[error("the offer's signing hash {local} differs from the template's offerDigest {on_chain}")]
    DigestMismatch {
        /// Computed with `insitu_bindings::offers::signing_hash`.
        local: B256,
        /// Returned by the template.
        on_chain: B256,
    },
    /// The agreement created is not the one previewed.
    #[error("the agreement created ({created}) is not the one previewed ({previewed})")]
    UnexpectedAgreement {
        /// From `previewAgreement`.
        previewed: B256,
        /// From the store's `AgreementCreated`.
        created: B256,
    },
}

/// What happened, for printing and for tests.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
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
    /// What the consumer paid in all (price plus network fee), as quoted by `previewAgreement`.
    pub quoted_total: U256,
    /// The consumer's allowance to the payment condition left after the purchase.
    pub allowance_left: U256,
    /// The demo token.
    pub token: Address,
    /// The deployment (what an addresses file records).
    pub deployment: Deployment,
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

/// Runs the demo against the node at `endpoint` with five funded keys: operator (deployer and the
/// timelock's proposer), provider (the asset's owner, paid on release), keeper (serves the asset:
/// signs the offer, grants access), consumer, fee receiver.
///
/// # Errors
///
/// See [`DemoError`].
pub async fn run(endpoint: &str, keys: &[PrivateKeySigner]) -> Result<DemoReport, DemoError> {
    run_until(endpoint, keys, Stage::FeesCollected).await
}

/// Where [`run_until`] stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// The consumer paid into escrow; the keeper never serves (the agreement can be refunded once
    /// its service times out, [`OFFER_MAX_TIMEOUT`] after creation).
    Paid,
    /// The keeper served and released the payment; the network fee is accrued, not withdrawn.
    Served,
    /// The fee receiver withdrew the fee: the whole demo.
    FeesCollected,
}

/// The demo up to `stage` (see [`run`] for the parties).
///
/// # Errors
///
/// See [`DemoError`].
pub async fn run_until(
    endpoint: &str,
    keys: &[PrivateKeySigner],
    stage: Stage,
) -> Result<DemoReport, DemoError> {
    let [operator, provider_key, keeper_key, consumer_key, fee_key] = keys else {
        return Err(DemoError::NotEnoughAccounts(keys.len()));
    };
    let (operator_addr, provider_addr, keeper_addr, consumer_addr, fee_addr) = (
        operator.address(),
        provider_key.address(),
        keeper_key.address(),
        consumer_key.address(),
        fee_key.address(),
    );
    let mut wallet = EthereumWallet::from(operator.clone());
    for key in [provider_key, keeper_key, consumer_key, fee_key] {
        wallet.register_signer(key.clone());
    }
    let url = endpoint
        .parse()
        .map_err(|_| DemoError::InvalidEndpoint(endpoint.to_owned()))?;
    let provider = ProviderBuilder::new().wallet(wallet).connect_http(url);
    let rpc_error = |step| move |source| DemoError::Rpc { step, source };
    let chain_id = provider
        .get_chain_id()
        .await
        .map_err(rpc_error("chain id"))?;
    let mut steps = Vec::new();

    // 1. The operator deploys the suite governed by a timelock without delay (a dev chain), whose
    //    proposer it is: the deployment schedules and executes the approval of the templates and a
    //    1% network fee itself. Then a demo token.
    let sender = Sender::new(
        provider.clone().erased(),
        chain_id,
        operator.clone(),
        TxOptions::default(),
    );
    let (deployed, _journal) = deploy_suite(
        &sender,
        DeployOptions {
            governance: Governance::Timelock {
                proposer: operator_addr,
                delay: 0,
            },
            admin_transfer_delay: DEFAULT_ADMIN_TRANSFER_DELAY,
            network_fee: Some((fee_addr, FEE_BPS)),
        },
        None,
        &Silent,
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

    // 2. The provider publishes an asset served by its keeper.
    let registry = AssetRegistry::new(suite.asset_registry, &provider);
    let receipt = confirm(
        "provider registers an asset (keeper serves)",
        registry
            .register(
                keccak256(b"demo asset"),
                keccak256(b"demo metadata document"),
                "https://provider.example/assets/demo.json".into(),
                vec![keeper_addr],
            )
            .from(provider_addr)
            .send()
            .await
            .map_err(step_error("register"))?,
        &mut steps,
    )
    .await?;
    let did = event::<AssetRegistry::AssetRegistered>("register", &receipt)?.did;

    // 3. The keeper signs an offer (off chain): the provider is paid the price, the consumer picks
    //    a service time out of one hour to three days, valid one day, for the asset's current
    //    offer epoch. The hash signed is checked against the template's own `offerDigest`.
    let asset = registry
        .getAsset(did)
        .call()
        .await
        .map_err(step_error("getAsset"))?;
    let now = provider
        .get_block_by_number(BlockNumberOrTag::Latest)
        .await
        .map_err(rpc_error("latest block"))?
        .map(|block| block.header.timestamp)
        .unwrap_or_default();
    let offer = Offer {
        did,
        checksum: asset.checksum,
        provider: keeper_addr,
        token: token_addr,
        receivers: vec![provider_addr],
        amounts: vec![price],
        minServiceTimeout: OFFER_MIN_TIMEOUT,
        maxServiceTimeout: OFFER_MAX_TIMEOUT,
        expiry: now + OFFER_VALIDITY,
        epoch: asset.offerEpoch,
    };
    let domain = offers::domain(
        offers::ACCESS_TEMPLATE_DOMAIN,
        chain_id,
        suite.access_template,
    );
    let hash = offers::signing_hash(&offer, &domain);
    let template = ServiceTemplate::new(suite.access_template, &provider);
    let on_chain = template
        .offerDigest(offer.clone())
        .call()
        .await
        .map_err(step_error("offerDigest"))?;
    if on_chain != hash {
        return Err(DemoError::DigestMismatch {
            local: hash,
            on_chain,
        });
    }
    let signature: alloy::primitives::Bytes = keeper_key
        .sign_hash(&hash)
        .await?
        .as_bytes()
        .to_vec()
        .into();
    template
        .checkOffer(offer.clone(), signature.clone())
        .call()
        .await
        .map_err(step_error("checkOffer"))?;

    // 4. The consumer has the purchase quoted, approves exactly the quoted total, and buys in one
    //    transaction, refusing to pay more than the quote.
    let seed = keccak256(b"demo order 1");
    let preview = template
        .previewAgreement(seed, consumer_addr, offer.clone(), 0)
        .call()
        .await
        .map_err(step_error("previewAgreement"))?;
    confirm(
        "consumer approves the quoted total",
        token
            .approve(suite.payment, preview.total)
            .from(consumer_addr)
            .send()
            .await
            .map_err(step_error("approve"))?,
        &mut steps,
    )
    .await?;
    let payment_condition = PaymentCondition::new(suite.payment, &provider);
    let receipt = confirm(
        "consumer creates the agreement and pays",
        payment_condition
            .createAgreementAndPay(
                suite.access_template,
                seed,
                offer.clone().into(),
                signature,
                0,
                preview.total,
            )
            .from(consumer_addr)
            .send()
            .await
            .map_err(step_error("create and pay"))?,
        &mut steps,
    )
    .await?;
    let created = event::<AgreementStore::AgreementCreated>("create", &receipt)?;
    let agreed = event::<ServiceTemplate::AgreementTerms>("create", &receipt)?;
    if created.agreementId != preview.agreementId {
        return Err(DemoError::UnexpectedAgreement {
            previewed: preview.agreementId,
            created: created.agreementId,
        });
    }

    // 5. The keeper grants access and releases the escrow in one transaction (the contracts
    //    refuse it unless the payment with these terms is in escrow).
    let access = AccessCondition::new(suite.access, &provider);
    let payment = Payment {
        token: agreed.token,
        receivers: agreed.receivers.clone(),
        amounts: agreed.amounts.clone(),
        fee: agreed.fee,
    };
    if stage >= Stage::Served {
        confirm(
            "keeper grants access and releases the escrow",
            access
                .fulfilAndRelease(created.agreementId, did, consumer_addr, payment.into())
                .from(keeper_addr)
                .send()
                .await
                .map_err(step_error("fulfil and release"))?,
            &mut steps,
        )
        .await?;
    }
    if stage >= Stage::FeesCollected {
        // 6. The fee receiver collects the accrued network fee.
        confirm(
            "fee receiver withdraws the network fee",
            payment_condition
                .withdrawFees(token_addr, fee_addr)
                .from(fee_addr)
                .send()
                .await
                .map_err(step_error("withdraw fees"))?,
            &mut steps,
        )
        .await?;
    }

    let consumer_has_access = access
        .hasAccess(
            created.agreementId,
            did,
            consumer_addr,
            preview.paymentConditionId,
        )
        .call()
        .await
        .map_err(step_error("hasAccess"))?;
    let allowance_left = token
        .allowance(consumer_addr, suite.payment)
        .call()
        .await
        .map_err(step_error("allowance"))?;
    let mut balances = Vec::new();
    for (party, address) in [
        ("consumer", consumer_addr),
        ("provider", provider_addr),
        ("keeper", keeper_addr),
        ("fee receiver", fee_addr),
        ("escrow", suite.payment),
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
        quoted_total: preview.total,
        allowance_left,
        token: token_addr,
        deployment: deployed.deployment,
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
