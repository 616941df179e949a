//! The keeper's HTTP API (axum). It reads the store and the chain, and writes only intents: a
//! verified access request becomes a settlement intent that the executor carries out, and the
//! handler waits (with a bound) for it before streaming the content.
//!
//! Routes (the OpenAPI document is served at `/openapi.json`):
//! - `GET /v1/info`: chain, keeper account and public key, contracts.
//! - `PUT /v1/metadata`: a publisher stores a metadata document (signed by an allowed publisher).
//! - `GET /v1/metadata/{checksum}`: a stored document, byte for byte.
//! - `GET /v1/offers/{did}`: a signed offer for a service of an asset this keeper serves.
//! - `POST /v1/access`: a consumer's signed request; streams a file of the asset (HTTP Range).
//! - `POST /v1/access/token`: a signed request traded for a short-lived token of its agreement.
//! - `GET /v1/access/{agreement}`: streams a file to the holder of a token (HTTP Range).
//! - `POST /v1/compute`: a consumer's signed compute order (with its algorithm): queues the job.
//! - `POST /v1/compute/status`, `/logs`, `/stop`: signed requests about the consumer's job.
//! - `POST /v1/compute/result`: streams a file of a settled job's result to its consumer.
//! - `GET /health`, `GET /ready`, `GET /metrics` (Prometheus).

mod access;
mod access_token;
mod compute;
mod error;
mod limits;
mod publish;
pub mod tokens;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use alloy::{
    primitives::{Address, hex},
    providers::{DynProvider, Provider},
    signers::local::PrivateKeySigner,
};
use axum::{
    Json, Router,
    extract::{Query, State},
    http::StatusCode,
    response::IntoResponse,
    routing::{get, post, put},
};
use insitu_bindings::{addresses::Deployment, deployment::SuiteAddresses};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use tokio::sync::{Mutex, Notify, watch};
use tower_http::limit::RequestBodyLimitLayer;
use utoipa::{OpenApi, ToSchema};

pub use access::{AccessBody, DEFAULT_ACCESS_WINDOW, RequestBody, sha256_of};
pub use access_token::TokenBody;
pub use compute::{ComputeBody, JobBody, JobStatus, MAX_PARAM_BYTES, MAX_PARAMS};
pub use error::{ApiError, ErrorBody, FieldErrorBody, FieldErrors};
pub use limits::DownloadLimits;
pub use publish::{OfferBody, PUBLISHER_SIGNATURE, SignedOffer, Stored};

use crate::{storage::Storage, store::Store};

/// Largest request body accepted (metadata documents are the largest bodies).
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// How long an access request waits for its settlement before answering `settlement_pending`.
pub const SETTLEMENT_WAIT: Duration = Duration::from_secs(90);
/// How long an access request for an agreement on chain but not yet buried under the
/// confirmations waits for the watcher to record it before answering `unconfirmed`.
pub const CONFIRMATION_WAIT: Duration = Duration::from_secs(30);
/// How long a signed offer is valid.
pub const OFFER_VALIDITY: u64 = 3_600;
/// Blocks the watcher may lag behind the head before `/ready` says no.
pub const READY_MAX_LAG: u64 = 64;

/// What every chain's handlers share.
#[derive(Debug, Clone)]
pub struct Shared {
    /// Where files are read: the data folder, the object store, web servers.
    pub storage: Arc<Storage>,
    /// Accounts allowed to store metadata documents.
    pub publishers: Vec<Address>,
    /// The API's public address, for document URLs.
    pub public_url: String,
    /// Downloads in flight per consumer, whatever the chain.
    pub downloads: Arc<DownloadLimits>,
    /// Renders the metrics, when a recorder is installed.
    pub metrics: Option<PrometheusHandle>,
    /// Issues and checks access tokens (they name their chain).
    pub tokens: Arc<tokens::Tokens>,
    /// How long an access token lives, in seconds.
    pub token_ttl: u64,
    /// Compute in situ, when this keeper runs jobs.
    pub compute: Option<crate::compute::ComputeContext>,
}

/// One chain's side of the API.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The chain's store (a connection of its own).
    pub store: Arc<Mutex<Store>>,
    /// The chain.
    pub provider: DynProvider,
    /// The chain id.
    pub chain_id: u64,
    /// The suite.
    pub suite: SuiteAddresses,
    /// The deployment (for `/v1/info`).
    pub deployment: Deployment,
    /// The keeper's key on this chain: signs offers, opens sealed locations.
    pub key: PrivateKeySigner,
    /// Confirmations the watcher waits for (for `/ready`).
    pub confirmations: u64,
    /// Wakes the executor when an intent is written.
    pub wake_executor: Arc<Notify>,
    /// Wakes the chain's compute runner when a job is queued or a stop asked.
    pub wake_runner: Arc<Notify>,
    /// Changes when the watcher has scanned more blocks (requests waiting for an agreement to
    /// be confirmed look again).
    pub scanned: watch::Receiver<u64>,
    /// Changes when the executor finishes a settlement (requests waiting for theirs look again).
    pub settled: watch::Receiver<u64>,
    /// What all chains share.
    pub shared: Shared,
}

/// The API's state: every chain the keeper serves, the first one the default.
#[derive(Debug, Clone)]
pub struct Chains {
    chains: Arc<Vec<AppState>>,
}

impl Chains {
    /// The chains, the default first.
    ///
    /// # Panics
    ///
    /// When `chains` is empty (a keeper serves at least one chain).
    pub fn new(chains: Vec<AppState>) -> Self {
        assert!(!chains.is_empty(), "a keeper serves at least one chain");
        Self {
            chains: Arc::new(chains),
        }
    }

    /// The default chain.
    fn first(&self) -> &AppState {
        &self.chains[0]
    }

    /// What all chains share.
    fn shared(&self) -> &Shared {
        &self.first().shared
    }

    /// Chain `chain`, or the default one when `None`.
    fn get(&self, chain: Option<u64>) -> Result<&AppState, ApiError> {
        match chain {
            None => Ok(self.first()),
            Some(id) => self
                .chains
                .iter()
                .find(|state| state.chain_id == id)
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::NOT_FOUND,
                        "unknown_chain",
                        format!(
                            "this keeper serves chain(s) {}, not {id}",
                            self.chains
                                .iter()
                                .map(|state| state.chain_id.to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                }),
        }
    }

    /// The chain whose store holds agreement `id`, if one does.
    async fn holding(&self, id: alloy::primitives::B256) -> Option<&AppState> {
        for state in self.chains.iter() {
            if matches!(state.store.lock().await.agreement(id), Ok(Some(_))) {
                return Some(state);
            }
        }
        None
    }
}

/// The OpenAPI document.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "insitu keeper",
        description = "The provider's keeper: metadata, offers, paid access and compute jobs, checked against the chain."
    ),
    paths(
        info,
        health,
        ready,
        publish::put_metadata,
        publish::get_metadata,
        publish::offer,
        access::access,
        access_token::issue,
        access_token::download,
        compute::order,
        compute::status,
        compute::logs,
        compute::stop,
        compute::result
    ),
    components(schemas(
        Info,
        ChainInfo,
        ErrorBody,
        FieldErrorBody,
        publish::Stored,
        publish::SignedOffer,
        publish::OfferBody,
        access::AccessBody,
        access::RequestBody,
        access_token::TokenBody,
        compute::ComputeBody,
        compute::JobBody,
        compute::JobStatus
    ))
)]
pub struct ApiDoc;

/// Largest compute order accepted: the largest algorithm any configuration allows, in base64,
/// and room for the rest (each keeper checks its own `max_algorithm_kb`).
pub const MAX_ORDER_BYTES: usize =
    (crate::config::compute::MAX_ALGORITHM_KB as usize * 1024).div_ceil(3) * 4 + MAX_BODY_BYTES;

/// The router, with body limits. The routes a buyer's web page calls (documents, offers, access,
/// compute) answer cross-origin requests ([`cors`]); the operator's (info, health, readiness,
/// metrics, the OpenAPI document, publishing) do not.
pub fn router(state: Chains) -> Router {
    let operator = Router::new()
        .route("/v1/info", get(info))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/v1/metadata", put(publish::put_metadata))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES));
    let buyers = Router::new()
        .route("/v1/metadata/{checksum}", get(publish::get_metadata))
        .route("/v1/offers/{did}", get(publish::offer))
        .route("/v1/access", post(access::access))
        .route("/v1/access/token", post(access_token::issue))
        .route("/v1/access/{agreement}", get(access_token::download))
        .route("/v1/compute/status", post(compute::status))
        .route("/v1/compute/logs", post(compute::logs))
        .route("/v1/compute/stop", post(compute::stop))
        .route("/v1/compute/result", post(compute::result))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES));
    // Orders carry their algorithm file.
    let orders = Router::new()
        .route("/v1/compute", post(compute::order))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_ORDER_BYTES))
        .layer(RequestBodyLimitLayer::new(MAX_ORDER_BYTES));
    orders
        .merge(buyers)
        .layer(cors())
        .merge(operator)
        .with_state(state)
}

/// Cross-origin reads and requests from any web page, without credentials, on the buyers'
/// routes: each request there is authorised by a signature or a token it carries, never by a
/// cookie, so a page (a catalog's, with a browser wallet) may call the keeper directly.
pub fn cors() -> tower_http::cors::CorsLayer {
    use axum::http::{Method, header};
    tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::Any)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION, header::RANGE])
        .expose_headers([
            header::CONTENT_DISPOSITION,
            header::CONTENT_LENGTH,
            header::CONTENT_RANGE,
            header::RETRY_AFTER,
        ])
        .max_age(std::time::Duration::from_secs(600))
}

/// Serves `router` on `listener` until `shutdown` resolves.
///
/// # Errors
///
/// An I/O error of the server.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// The keeper's identity on one chain.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChainInfo {
    /// Chain id.
    pub chain_id: u64,
    /// The keeper's account on it (the provider named in its offers).
    pub address: String,
    /// Its uncompressed secp256k1 public key, hex: seal file locations to it.
    pub public_key: String,
    /// The suite's contracts by name.
    pub contracts: std::collections::BTreeMap<String, String>,
}

impl ChainInfo {
    fn of(state: &AppState) -> Self {
        Self {
            chain_id: state.chain_id,
            address: state.key.address().to_string(),
            public_key: format!(
                "0x{}",
                hex::encode(insitu_client::metadata::public_key(&state.key))
            ),
            contracts: state
                .deployment
                .contracts
                .iter()
                .map(|(name, address)| (name.clone(), address.to_string()))
                .collect(),
        }
    }
}

/// The keeper's identity: its default chain's at the top level, every chain's in `chains`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Info {
    /// The default chain.
    #[serde(flatten)]
    pub default: ChainInfo,
    /// Every chain the keeper serves, the default first.
    pub chains: Vec<ChainInfo>,
    /// The keeper's version.
    pub version: String,
}

#[utoipa::path(get, path = "/v1/info", responses((status = 200, body = Info)))]
async fn info(State(chains): State<Chains>) -> Json<Info> {
    Json(Info {
        default: ChainInfo::of(chains.first()),
        chains: chains.chains.iter().map(ChainInfo::of).collect(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    })
}

#[utoipa::path(get, path = "/health", responses((status = 200, description = "the process runs")))]
async fn health() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

#[utoipa::path(
    get,
    path = "/ready",
    responses(
        (status = 200, description = "the chain is reachable and the watcher keeps up"),
        (status = 503, body = ErrorBody, description = "not ready")
    )
)]
async fn ready(
    State(chains): State<Chains>,
    Query(query): Query<ChainQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let chosen: Vec<&AppState> = match query.chain {
        Some(id) => vec![chains.get(Some(id))?],
        None => chains.chains.iter().collect(),
    };
    let mut report = Vec::new();
    for state in chosen {
        report.push(chain_ready(state).await?);
    }
    Ok(Json(
        serde_json::json!({ "status": "ready", "chains": report }),
    ))
}

/// Whether one chain is ready: its chain readable, its watcher at most [`READY_MAX_LAG`] blocks
/// behind.
async fn chain_ready(state: &AppState) -> Result<serde_json::Value, ApiError> {
    let chain = state.chain_id;
    let head = state.provider.get_block_number().await.map_err(|error| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "chain_unreachable",
            format!("chain {chain} cannot be read: {error}"),
        )
    })?;
    let cursor = state
        .store
        .lock()
        .await
        .cursor()
        .map_err(ApiError::internal)?;
    let scanned = cursor.map(|cursor| cursor.number).unwrap_or_default();
    let lag = head
        .saturating_sub(state.confirmations)
        .saturating_sub(scanned);
    metrics::gauge!("keeper_block_lag", "chain" => chain.to_string()).set(lag as f64);
    if lag > READY_MAX_LAG {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "catching_up",
            format!("the watcher of chain {chain} is {lag} blocks behind"),
        ));
    }
    Ok(serde_json::json!({ "chain": chain, "head": head, "scanned": scanned }))
}

/// `?chain=ID`: which chain a request is about (the default one when absent).
#[derive(Debug, serde::Deserialize)]
pub(crate) struct ChainQuery {
    chain: Option<u64>,
}

async fn metrics(State(chains): State<Chains>) -> impl IntoResponse {
    match &chains.shared().metrics {
        Some(handle) => (StatusCode::OK, handle.render()).into_response(),
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "metrics_disabled",
            "no metrics recorder in this process",
        )
        .into_response(),
    }
}

async fn openapi() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}

/// The metadata document with `checksum` stored in `state`'s store, or `unknown_document` (404).
async fn stored_document(
    state: &AppState,
    checksum: alloy::primitives::B256,
) -> Result<Vec<u8>, ApiError> {
    state
        .store
        .lock()
        .await
        .document(checksum)
        .map_err(ApiError::internal)?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_document",
                format!("the metadata document {checksum} is not stored here"),
            )
        })
}

/// Unix time in seconds.
fn now() -> u64 {
    crate::executor::now()
}
