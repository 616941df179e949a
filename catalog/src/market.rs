//! Purchases and keeper requests for browser wallets: the catalog prepares what a wallet signs
//! and sends, and never holds a key. A purchase is prepared with the client library (the keeper's
//! offer fetched through the outbound guard and checked against the indexed document and the
//! template, quoted on chain); a request to a keeper is returned as EIP-712 typed data for
//! `eth_signTypedData_v4`.

use std::collections::HashMap;

use alloy::{
    dyn_abi::TypedData,
    primitives::{Address, B256, U256},
};
use insitu_bindings::requests::{self, ServiceRequest};
use insitu_client::{
    agreement,
    catalog::{PlannedTransaction, PurchasePlan, SigningRequest, TokenInfo},
    market::{self, KeeperClient, MarketError, REQUEST_VALIDITY},
    metadata::{MetadataDocument, ServiceKind},
    suite::Suite,
};
use insitu_outbound::GuardedClient;
use url::Url;

/// Why a purchase or request could not be prepared; each has a stable code and an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum MarketRefusal {
    /// The chain is not one this catalog follows.
    #[error("chain {0} is not followed by this catalog")]
    UnknownChain(u64),
    /// The asset has no valid indexed document.
    #[error("the asset has no checked metadata document in this catalog yet")]
    NotIndexed,
    /// The asset's metadata is not served by a keeper's API.
    #[error("the asset's metadata is not served by a keeper, which the purchase needs")]
    NoKeeper,
    /// The keeper's URL is refused by the outbound guard.
    #[error("the keeper's URL is refused: {0}")]
    KeeperRefusedByGuard(String),
    /// The signer is not the agreement's consumer.
    #[error("{0} is not the agreement's consumer")]
    NotConsumer(Address),
    /// The client library refused.
    #[error(transparent)]
    Market(#[from] MarketError),
}

impl MarketRefusal {
    /// HTTP status and stable code.
    pub fn code(&self) -> (u16, &'static str) {
        match self {
            Self::UnknownChain(_) => (404, "not_found"),
            Self::NotIndexed => (409, "not_indexed"),
            Self::NoKeeper => (422, "no_keeper"),
            Self::KeeperRefusedByGuard(_) => (422, "keeper_refused"),
            Self::NotConsumer(_) => (403, "not_consumer"),
            Self::Market(error) => match error {
                MarketError::BadOffer(_) => (422, "bad_offer"),
                MarketError::KeeperUnreachable { .. } => (502, "keeper_unreachable"),
                MarketError::Refused { .. } => (502, "keeper_refused"),
                MarketError::Agreement(_) | MarketError::UnknownAsset(_) => (404, "not_found"),
                MarketError::Reverts(_) | MarketError::Call(_) => (422, "chain_refused"),
                _ => (502, "chain_unavailable"),
            },
        }
    }
}

/// The chains' suites, the guarded HTTP client keepers are reached with, and the tokens read so
/// far.
#[derive(Debug)]
pub struct Markets {
    suites: HashMap<u64, Suite>,
    guard: GuardedClient,
    tokens: std::sync::Mutex<HashMap<(u64, Address), TokenInfo>>,
}

/// Tokens remembered at most (a token's metadata does not change; the cache only bounds memory).
const TOKENS_KEPT: usize = 4_096;

impl Markets {
    /// Markets on `suites`, reaching keepers through `guard`.
    pub fn new(suites: HashMap<u64, Suite>, guard: GuardedClient) -> Self {
        Self {
            suites,
            guard,
            tokens: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Token `address` of `chain` as its contract describes itself: symbol and decimals, each
    /// left out when the contract does not answer sensibly. The zero address is the native coin
    /// (ETH, 18 decimals).
    ///
    /// # Errors
    ///
    /// [`MarketRefusal::UnknownChain`].
    pub async fn token(&self, chain: u64, address: Address) -> Result<TokenInfo, MarketRefusal> {
        let suite = self.suite(chain)?;
        if let Some(known) = self
            .tokens
            .lock()
            .ok()
            .and_then(|tokens| tokens.get(&(chain, address)).cloned())
        {
            return Ok(known);
        }
        let info = if address.is_zero() {
            TokenInfo {
                chain,
                address,
                symbol: Some("ETH".to_owned()),
                decimals: Some(18),
            }
        } else {
            let token = insitu_bindings::MockERC20::new(address, suite.provider());
            let symbol = token.symbol().call().await.ok().filter(|symbol| {
                !symbol.is_empty()
                    && symbol.chars().count() <= 16
                    && symbol.chars().all(|c| !c.is_control())
            });
            let decimals = token
                .decimals()
                .call()
                .await
                .ok()
                .filter(|decimals| *decimals <= 36);
            TokenInfo {
                chain,
                address,
                symbol,
                decimals,
            }
        };
        if let Ok(mut tokens) = self.tokens.lock() {
            if tokens.len() >= TOKENS_KEPT {
                tokens.clear();
            }
            tokens.insert((chain, address), info.clone());
        }
        Ok(info)
    }

    fn suite(&self, chain: u64) -> Result<&Suite, MarketRefusal> {
        self.suites
            .get(&chain)
            .ok_or(MarketRefusal::UnknownChain(chain))
    }

    /// The keeper serving the document at `metadata_url`, reached through the guard.
    fn keeper(&self, metadata_url: &str) -> Result<KeeperClient, MarketRefusal> {
        let base = KeeperClient::for_metadata_url(metadata_url)
            .ok_or(MarketRefusal::NoKeeper)?
            .base()
            .to_owned();
        let url = Url::parse(&base).map_err(|_| MarketRefusal::NoKeeper)?;
        let http = self
            .guard
            .client_for(&url)
            .map_err(|refused| MarketRefusal::KeeperRefusedByGuard(refused.to_string()))?;
        Ok(KeeperClient::with_http(&base, http))
    }

    /// Prepares the purchase of `service` of asset `did` on `chain` by `buyer`, on the indexed
    /// document (`document`, `checksum`, served at `metadata_url`).
    ///
    /// # Errors
    ///
    /// [`MarketRefusal`].
    #[allow(clippy::too_many_arguments)]
    pub async fn purchase(
        &self,
        chain: u64,
        did: B256,
        document: &MetadataDocument,
        checksum: B256,
        metadata_url: &str,
        buyer: Address,
        service: ServiceKind,
        service_timeout: u32,
    ) -> Result<PurchasePlan, MarketRefusal> {
        let suite = self.suite(chain)?;
        let keeper = self.keeper(metadata_url)?;
        let purchase = market::prepare_purchase(
            suite,
            &keeper,
            document,
            checksum,
            did,
            buyer,
            service,
            service_timeout,
        )
        .await?;
        let planned = |description: &str, request: &alloy::rpc::types::TransactionRequest| {
            PlannedTransaction {
                description: description.to_owned(),
                from: buyer,
                to: request
                    .to
                    .and_then(|to| to.to().copied())
                    .unwrap_or_default(),
                data: request
                    .input
                    .input()
                    .map(ToString::to_string)
                    .unwrap_or_else(|| "0x".to_owned()),
                value: format!("{:#x}", request.value.unwrap_or(U256::ZERO)),
            }
        };
        let mut transactions = Vec::new();
        if let Some(approval) = &purchase.approval {
            transactions.push(planned(
                "approve the payment condition for exactly the total",
                approval,
            ));
        }
        transactions.push(planned(
            "create the agreement and pay into escrow",
            &purchase.create,
        ));
        let quote = purchase.quote;
        Ok(PurchasePlan {
            agreement_id: quote.agreement_id,
            token: quote.token,
            price: quote.price.to_string(),
            fee: quote.fee.to_string(),
            total: quote.total.to_string(),
            service_timeout: quote.service_timeout,
            keeper: keeper.base().to_owned(),
            transactions,
        })
    }

    /// Agreement `id` on `chain`, when `consumer` is its consumer.
    ///
    /// # Errors
    ///
    /// [`MarketRefusal`].
    pub async fn agreement(
        &self,
        chain: u64,
        id: B256,
        consumer: Address,
    ) -> Result<agreement::AgreementInfo, MarketRefusal> {
        let suite = self.suite(chain)?;
        let agreement = agreement::show(suite, id, None)
            .await
            .map_err(MarketError::from)?;
        if agreement.consumer != consumer {
            return Err(MarketRefusal::NotConsumer(consumer));
        }
        Ok(agreement)
    }

    /// The access request the consumer of `agreement` signs to have its keeper (the API serving
    /// the asset's document at `metadata_url`) issue a download link for file `file`, valid for
    /// [`REQUEST_VALIDITY`] seconds, with a random nonce.
    ///
    /// # Errors
    ///
    /// [`MarketRefusal`].
    pub async fn access_request(
        &self,
        chain: u64,
        agreement: &agreement::AgreementInfo,
        metadata_url: &str,
        file: usize,
    ) -> Result<SigningRequest, MarketRefusal> {
        let suite = self.suite(chain)?;
        let (id, consumer) = (agreement.id, agreement.consumer);
        let url = metadata_url;
        let keeper = self.keeper(url)?;
        let (service, now) = market::service_and_now(suite, agreement).await?;
        let request = ServiceRequest {
            command: requests::commands::ACCESS.to_owned(),
            agreementId: id,
            did: agreement.did,
            consumer,
            nonce: U256::from_be_bytes(rand::random::<[u8; 32]>()),
            deadline: now + REQUEST_VALIDITY,
        };
        let domain = requests::domain(chain, service);
        let typed_data = serde_json::to_value(TypedData::from_struct(&request, Some(domain)))
            .map_err(|error| MarketError::BadAnswer(error.to_string()))?;
        Ok(SigningRequest {
            keeper: keeper.base().to_owned(),
            route: format!("/v1/access/token?file={file}"),
            chain_id: chain,
            request: serde_json::json!({
                "command": request.command,
                "agreementId": request.agreementId.to_string(),
                "did": request.did.to_string(),
                "consumer": request.consumer.to_string(),
                "nonce": request.nonce.to_string(),
                "deadline": request.deadline,
            }),
            typed_data,
        })
    }
}
