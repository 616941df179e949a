//! The catalog's API: search queries, result pages with facets, asset pages, and a client.
//!
//! These types are the wire format of the catalog service (`insitu-catalog`) and what
//! `insitu search` prints with `--json`. Amounts are decimal strings (they are 256-bit), addresses
//! and ids `0x` hex.

use alloy::primitives::{Address, B256};
use serde::{Deserialize, Serialize};

/// Results per page when the query does not say.
pub const DEFAULT_LIMIT: u32 = 20;
/// Most results per page.
pub const MAX_LIMIT: u32 = 100;

/// What an asset is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AssetType {
    /// Data (`@type` `Dataset`).
    Dataset,
    /// An algorithm compute jobs may run (`SoftwareSourceCode`).
    Algorithm,
    /// The result of a compute job (a document with provenance), or a model trained across
    /// several providers (a document with its training).
    Result,
}

impl AssetType {
    /// Its name in queries and answers.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dataset => "dataset",
            Self::Algorithm => "algorithm",
            Self::Result => "result",
        }
    }
}

impl std::str::FromStr for AssetType {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "dataset" => Ok(Self::Dataset),
            "algorithm" => Ok(Self::Algorithm),
            "result" => Ok(Self::Result),
            other => Err(format!(
                "unknown type {other:?}: dataset, algorithm or result"
            )),
        }
    }
}

/// How results are ordered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Sort {
    /// Best match first (the default with a query; newest without one).
    #[default]
    Relevance,
    /// Most recently registered first.
    Newest,
    /// Cheapest first.
    PriceAsc,
    /// Dearest first.
    PriceDesc,
    /// Most agreements first.
    Popularity,
}

impl Sort {
    /// Its name in queries.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Relevance => "relevance",
            Self::Newest => "newest",
            Self::PriceAsc => "price_asc",
            Self::PriceDesc => "price_desc",
            Self::Popularity => "popularity",
        }
    }
}

impl std::str::FromStr for Sort {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "relevance" => Ok(Self::Relevance),
            "newest" => Ok(Self::Newest),
            "price_asc" => Ok(Self::PriceAsc),
            "price_desc" => Ok(Self::PriceDesc),
            "popularity" => Ok(Self::Popularity),
            other => Err(format!(
                "unknown sort {other:?}: relevance, newest, price_asc, price_desc or popularity"
            )),
        }
    }
}

/// A search: full text and filters, each optional. Filters of different fields all apply; the
/// tags listed must all be on an asset. Prices are in the token's smallest unit and apply to the
/// service filtered on (any service otherwise).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct SearchQuery {
    /// Words to find in name, description, tags and author (all must match; the last may be the
    /// start of a word).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    /// Chain id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<u64>,
    /// `dataset`, `algorithm` or `result`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `access` or `compute`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Payment token address (the zero address for ETH).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Lowest price, decimal, inclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_min: Option<String>,
    /// Highest price, decimal, inclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_max: Option<String>,
    /// A provider (keeper) that serves the asset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Licence, exactly as the document names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// Tags, comma-separated; an asset must have them all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<String>,
    /// `relevance` (default with `q`), `newest` (default without), `price_asc`, `price_desc`,
    /// `popularity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort: Option<String>,
    /// Results per page, 1 to 100 (20 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// A service's terms, as the asset's document states them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceSummary {
    /// `access` or `compute`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Payment token.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub token: Address,
    /// The price: the sum of the receivers' amounts, decimal (the network fee comes on top).
    pub price: String,
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AssetSummary {
    /// Chain id.
    pub chain: u64,
    /// The asset's id.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub did: B256,
    /// What it is.
    #[serde(rename = "type")]
    pub kind: AssetType,
    /// Title.
    pub name: String,
    /// Description.
    pub description: String,
    /// Author.
    pub author: String,
    /// Licence.
    pub license: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Owner on chain.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub owner: Address,
    /// Providers (keepers) allowed to serve it.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub providers: Vec<Address>,
    /// Services sold, with prices.
    pub services: Vec<ServiceSummary>,
    /// Block it was registered in.
    pub registered_block: u64,
    /// When it was registered (block time, Unix seconds).
    pub registered_at: u64,
    /// Agreements made on it.
    pub agreements: u64,
}

/// A facet value and how many results have it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FacetCount {
    /// The value.
    pub value: String,
    /// Results with it.
    pub count: u64,
}

/// Counts of the results by field (the most frequent values first, at most 20 each).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Facets {
    /// By chain id.
    pub chain: Vec<FacetCount>,
    /// By type.
    #[serde(rename = "type")]
    pub kind: Vec<FacetCount>,
    /// By service sold.
    pub service: Vec<FacetCount>,
    /// By payment token.
    pub token: Vec<FacetCount>,
    /// By licence.
    pub license: Vec<FacetCount>,
    /// By tag.
    pub tags: Vec<FacetCount>,
    /// By provider.
    pub provider: Vec<FacetCount>,
}

/// A page of results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SearchPage {
    /// Results matching the query and filters, all pages.
    pub total: u64,
    /// This page's.
    pub results: Vec<AssetSummary>,
    /// Counts over all the matching results.
    pub facets: Facets,
    /// The cursor of the next page, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Where an asset's document stands in the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DocumentStatus {
    /// Not fetched yet, or being retried.
    Pending,
    /// Fetched, matching the checksum on chain, and valid: the asset is searchable.
    Valid,
    /// The document served does not hash to the checksum on chain: never indexed as valid.
    ChecksumMismatch,
    /// It matches the checksum but breaks the schema it names (or names no known schema).
    Invalid,
    /// It cannot be fetched (refused by the outbound guard, too large, or unreachable after
    /// retries; retried later).
    Unreachable,
}

/// How an asset was made and what was made from it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProvenanceView {
    /// The activity (compute agreement) that generated it, and the agent that attested it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_by: Option<Generation>,
    /// The assets it was derived from.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub derived_from: Vec<B256>,
    /// The assets derived from it.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub derivatives: Vec<B256>,
}

/// A `WasGeneratedBy` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Generation {
    /// The activity.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub activity: B256,
    /// The agent that recorded it.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub agent: Address,
}

/// How an asset has been used.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Usage {
    /// Access agreements made.
    pub access_agreements: u64,
    /// Compute agreements made.
    pub compute_agreements: u64,
    /// Access delivered (the access condition fulfilled).
    pub access_completed: u64,
    /// Compute delivered (the compute condition fulfilled).
    pub compute_completed: u64,
    /// Payments refunded.
    pub refunds: u64,
    /// Times it was used as a compute input (`Used` records).
    pub uses: u64,
}

/// Everything the catalog knows of one asset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AssetView {
    /// Chain id.
    pub chain: u64,
    /// The asset's id.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub did: B256,
    /// Owner on chain.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub owner: Address,
    /// Providers allowed to serve it.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub providers: Vec<Address>,
    /// The metadata checksum registered on chain.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub checksum: B256,
    /// The metadata URL registered on chain.
    pub url: String,
    /// Block it was registered in, and its time (Unix seconds).
    pub registered_block: u64,
    /// Block time of the registration, Unix seconds.
    pub registered_at: u64,
    /// Block of the last change of its metadata, owner or providers.
    pub updated_block: u64,
    /// Whether its document is indexed.
    pub status: DocumentStatus,
    /// Why it is not, when it is not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// The summary, when the document is valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<AssetSummary>,
    /// The document, when valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<serde_json::Value>,
    /// Provenance.
    pub provenance: ProvenanceView,
    /// Usage.
    pub usage: Usage,
}

/// A chain the catalog follows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChainStatus {
    /// Chain id.
    pub chain: u64,
    /// The last block indexed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub indexed_block: Option<u64>,
    /// Assets registered on it.
    pub assets: u64,
    /// Of which searchable.
    pub valid: u64,
    /// Of which flagged (mismatch or invalid).
    pub flagged: u64,
    /// Of which pending or unreachable.
    pub pending: u64,
}

/// The catalog's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CatalogStatus {
    /// Per chain.
    pub chains: Vec<ChainStatus>,
}

/// Why a catalog request failed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The catalog could not be reached.
    #[error("the catalog at {url} is unreachable: {reason}")]
    Unreachable {
        /// Its URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The catalog refused the request.
    #[error("the catalog refused ({status}, {code}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Its stable code.
        code: String,
        /// Its message.
        message: String,
    },
    /// The answer is not what it should be.
    #[error("the catalog's answer is invalid: {0}")]
    BadAnswer(String),
}

/// The error body of the catalog's API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CatalogErrorBody {
    /// Stable code: `bad_query`, `bad_cursor`, `not_found`, `internal`.
    pub code: String,
    /// For people.
    pub message: String,
}

/// A client of a catalog's API.
#[derive(Debug, Clone)]
pub struct CatalogClient {
    base: String,
    http: reqwest::Client,
}

impl CatalogClient {
    /// A client of the catalog at `base` (`https://catalog.example`).
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// `GET /v1/search`.
    ///
    /// # Errors
    ///
    /// [`CatalogError`].
    pub async fn search(&self, query: &SearchQuery) -> Result<SearchPage, CatalogError> {
        self.get("/v1/search", query).await
    }

    /// `GET /v1/assets/{chain}/{did}`.
    ///
    /// # Errors
    ///
    /// [`CatalogError`] (`not_found` for an asset the catalog has not seen).
    pub async fn asset(&self, chain: u64, did: B256) -> Result<AssetView, CatalogError> {
        self.get(&format!("/v1/assets/{chain}/{did}"), &()).await
    }

    /// `GET /v1/status`.
    ///
    /// # Errors
    ///
    /// [`CatalogError`].
    pub async fn status(&self) -> Result<CatalogStatus, CatalogError> {
        self.get("/v1/status", &()).await
    }

    async fn get<Q: Serialize + ?Sized, T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &Q,
    ) -> Result<T, CatalogError> {
        let url = format!("{}{path}", self.base);
        let unreachable = |error: reqwest::Error| CatalogError::Unreachable {
            url: self.base.clone(),
            reason: crate::rpc::error_chain(&error),
        };
        let response = self
            .http
            .get(&url)
            .query(query)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        let text = response.text().await.map_err(unreachable)?;
        if !status.is_success() {
            let (code, message) = match serde_json::from_str::<CatalogErrorBody>(&text) {
                Ok(body) => (body.code, body.message),
                Err(_) => ("http_error".to_owned(), text),
            };
            return Err(CatalogError::Refused {
                status: status.as_u16(),
                code,
                message,
            });
        }
        serde_json::from_str(&text).map_err(|error| CatalogError::BadAnswer(error.to_string()))
    }
}

/// A purchase a browser wallet can make: the quote, and the transactions to send in order
/// (`eth_sendTransaction`), each waited for before the next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PurchasePlan {
    /// The agreement the purchase creates.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub agreement_id: B256,
    /// The payment token.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub token: Address,
    /// The provider's price, decimal.
    pub price: String,
    /// The network fee, decimal.
    pub fee: String,
    /// What the buyer pays (price and fee), decimal.
    pub total: String,
    /// The service time out, seconds: refundable after it when not delivered.
    pub service_timeout: u32,
    /// The keeper that serves the asset.
    pub keeper: String,
    /// The transactions, in order.
    pub transactions: Vec<PlannedTransaction>,
}

/// One transaction of a [`PurchasePlan`], as `eth_sendTransaction` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlannedTransaction {
    /// What it does, for people.
    pub description: String,
    /// The buyer.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub from: Address,
    /// The contract called.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub to: Address,
    /// The call data, `0x` hex.
    pub data: String,
    /// Wei sent, `0x` hex.
    pub value: String,
}

/// A request to a keeper for the wallet to sign (`eth_signTypedData_v4`), then to post to
/// `keeper` + `route` as `{"chainId", "request", "signature"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SigningRequest {
    /// The keeper's base URL.
    pub keeper: String,
    /// The keeper's route to post to.
    pub route: String,
    /// The chain id.
    pub chain_id: u64,
    /// The request, as the keeper reads it.
    pub request: serde_json::Value,
    /// The EIP-712 typed data of the request.
    pub typed_data: serde_json::Value,
}

/// A payment token as its contract describes itself (ERC-20 metadata), for showing amounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenInfo {
    /// Chain id.
    pub chain: u64,
    /// The token (the zero address: the chain's native coin).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub address: Address,
    /// Its symbol, when the contract answers `symbol()` with at most 16 printable characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
    /// Its decimals, when the contract answers `decimals()` with at most 36.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decimals: Option<u8>,
}
