//! The catalog's HTTP API: search, asset pages, status, and its OpenAPI document. Reads only:
//! the index is written by the indexers and the fetcher alone.
//!
//! Every error is JSON with a stable `code`: `bad_query` (a parameter, named in the message),
//! `bad_cursor`, `not_found`, `internal`.

use std::sync::{Arc, Mutex};

use alloy::primitives::B256;
use axum::{
    Json, Router,
    extract::{Path, Query, State, rejection::QueryRejection},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use insitu_client::catalog::{
    AssetSummary, AssetType, AssetView, CatalogErrorBody, CatalogStatus, ChainStatus,
    DocumentStatus, FacetCount, Facets, Generation, ProvenanceView, SearchPage, SearchQuery,
    ServiceSummary, Sort, Usage,
};
use utoipa::OpenApi;

use crate::{
    market::{MarketRefusal, Markets},
    store::{
        Store,
        search::{Query as Checked, QueryError},
    },
    web,
};
use insitu_client::{
    catalog::{PlannedTransaction, PurchasePlan, SigningRequest, TokenInfo},
    metadata::{MetadataDocument, ServiceKind},
};
use serde::Deserialize;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// The index (read connection).
    pub store: Arc<Mutex<Store>>,
    /// The chains followed.
    pub chains: Arc<Vec<u64>>,
    /// The chains' suites, to prepare purchases and requests.
    pub markets: Arc<Markets>,
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the catalog failed; see its logs",
        )
    }
}

impl From<QueryError> for ApiError {
    fn from(error: QueryError) -> Self {
        match error {
            QueryError::Cursor => {
                Self::new(StatusCode::BAD_REQUEST, "bad_cursor", error.to_string())
            }
            QueryError::Bad { .. } => {
                Self::new(StatusCode::BAD_REQUEST, "bad_query", error.to_string())
            }
        }
    }
}

impl From<MarketRefusal> for ApiError {
    fn from(refusal: MarketRefusal) -> Self {
        let (status, code) = refusal.code();
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
        if status.is_server_error() {
            tracing::warn!(%refusal, "a purchase or request could not be prepared");
        }
        Self::new(status, code, refusal.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(CatalogErrorBody {
                code: self.code.to_owned(),
                message: self.message,
            }),
        )
            .into_response()
    }
}

/// The OpenAPI document.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "insitu catalog",
        description = "Every asset published on the chains this catalog follows, searchable."
    ),
    paths(search, asset, status, purchase, access_request, token),
    components(schemas(
        SearchPage,
        AssetSummary,
        ServiceSummary,
        Facets,
        FacetCount,
        AssetType,
        Sort,
        AssetView,
        DocumentStatus,
        ProvenanceView,
        Generation,
        Usage,
        CatalogStatus,
        ChainStatus,
        CatalogErrorBody,
        PurchasePlan,
        PlannedTransaction,
        SigningRequest
    ))
)]
pub struct ApiDoc;

/// The API's routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/search", get(search))
        .route("/v1/assets/{chain}/{did}", get(asset))
        .route("/v1/status", get(status))
        .route("/v1/assets/{chain}/{did}/purchase", get(purchase))
        .route(
            "/v1/agreements/{chain}/{id}/access-request",
            get(access_request),
        )
        .route("/v1/tokens/{chain}/{address}", get(token))
        .route("/openapi.json", get(openapi))
        .route("/", get(web::page))
        .route("/asset/{chain}/{did}", get(web::page))
        .route("/static/app.js", get(web::script))
        .route("/static/style.css", get(web::style))
        .route("/health", get(|| async { "ok" }))
        .with_state(state)
        .layer(axum::middleware::map_response(web::security_headers))
}

async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        ApiDoc::openapi().to_pretty_json().unwrap_or_default(),
    )
}

/// Runs `work` on the store off the async threads.
async fn with_store<T: Send + 'static>(
    state: &ApiState,
    work: impl FnOnce(&mut Store) -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || {
        let mut store = store
            .lock()
            .map_err(|_| ApiError::internal("the store lock is poisoned"))?;
        work(&mut store).map_err(ApiError::internal)
    })
    .await
    .map_err(ApiError::internal)?
}

/// Full-text search with filters, facets, sorting and pagination.
#[utoipa::path(
    get,
    path = "/v1/search",
    params(SearchQuery),
    responses(
        (status = 200, body = SearchPage),
        (status = 400, body = CatalogErrorBody, description = "`bad_query` or `bad_cursor`")
    )
)]
async fn search(
    State(state): State<ApiState>,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Json<SearchPage>, ApiError> {
    let Query(query) = query
        .map_err(|error| ApiError::new(StatusCode::BAD_REQUEST, "bad_query", error.body_text()))?;
    let checked = Checked::parse(&query)?;
    Ok(Json(
        with_store(&state, move |store| store.search(&checked)).await?,
    ))
}

/// One asset: its state on chain, its document's status, provenance and usage.
#[utoipa::path(
    get,
    path = "/v1/assets/{chain}/{did}",
    params(
        ("chain" = u64, Path, description = "chain id"),
        ("did" = String, Path, description = "the asset's id, 0x hex")
    ),
    responses(
        (status = 200, body = AssetView),
        (status = 400, body = CatalogErrorBody, description = "`bad_query`"),
        (status = 404, body = CatalogErrorBody, description = "`not_found`")
    )
)]
async fn asset(
    State(state): State<ApiState>,
    Path((chain, did)): Path<(String, String)>,
) -> Result<Json<AssetView>, ApiError> {
    let (chain, did) = asset_path(&chain, &did)?;
    Ok(Json(find_asset(&state, chain, did).await?))
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_query", message)
}

/// A chain id from a path.
fn chain_of(chain: &str) -> Result<u64, ApiError> {
    chain.parse().map_err(|_| bad("chain: not a chain id"))
}

fn asset_path(chain: &str, did: &str) -> Result<(u64, B256), ApiError> {
    let chain = chain_of(chain)?;
    let did: B256 = did.parse().map_err(|_| bad("did: not 32 bytes of hex"))?;
    Ok((chain, did))
}

async fn find_asset(state: &ApiState, chain: u64, did: B256) -> Result<AssetView, ApiError> {
    with_store(state, move |store| store.asset(chain, did))
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no asset {did} on chain {chain} in this catalog"),
            )
        })
}

/// Who buys what.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct PurchaseQuery {
    /// `access` or `compute`.
    service: String,
    /// The buyer's account.
    buyer: String,
    /// The service time out, seconds (0 or absent: the offer's longest).
    timeout: Option<u32>,
}

/// Prepares a purchase for a wallet: the quote on the keeper's checked offer, and the
/// transactions to send (an approval when the allowance is short, then the purchase).
#[utoipa::path(
    get,
    path = "/v1/assets/{chain}/{did}/purchase",
    params(
        ("chain" = u64, Path, description = "chain id"),
        ("did" = String, Path, description = "the asset's id"),
        PurchaseQuery
    ),
    responses(
        (status = 200, body = PurchasePlan),
        (status = 400, body = CatalogErrorBody, description = "`bad_query`"),
        (status = 404, body = CatalogErrorBody, description = "`not_found`"),
        (status = 409, body = CatalogErrorBody, description = "`not_indexed`"),
        (status = 422, body = CatalogErrorBody, description = "`no_keeper`, `keeper_refused`, `bad_offer`, `chain_refused`"),
        (status = 502, body = CatalogErrorBody, description = "`keeper_unreachable`, `keeper_refused`, `chain_unavailable`")
    )
)]
async fn purchase(
    State(state): State<ApiState>,
    Path((chain, did)): Path<(String, String)>,
    query: Result<Query<PurchaseQuery>, QueryRejection>,
) -> Result<Json<PurchasePlan>, ApiError> {
    let (chain, did) = asset_path(&chain, &did)?;
    let Query(query) = query.map_err(|error| bad(error.body_text()))?;
    let service = match query.service.as_str() {
        "access" => ServiceKind::Access,
        "compute" => ServiceKind::Compute,
        _ => return Err(bad("service: access or compute")),
    };
    let buyer: alloy::primitives::Address = query
        .buyer
        .parse()
        .map_err(|_| bad("buyer: not an address"))?;
    let view = find_asset(&state, chain, did).await?;
    let document: MetadataDocument = view
        .document
        .and_then(|document| serde_json::from_value(document).ok())
        .ok_or(MarketRefusal::NotIndexed)?;
    let plan = state
        .markets
        .purchase(
            chain,
            did,
            &document,
            view.checksum,
            &view.url,
            buyer,
            service,
            query.timeout.unwrap_or(0),
        )
        .await?;
    Ok(Json(plan))
}

/// Who asks for which file.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct RequestQuery {
    /// The agreement's consumer, who signs.
    consumer: String,
    /// Which file of the asset (its index in the document), 0 by default.
    file: Option<usize>,
}

/// The access request a wallet signs (EIP-712) and posts to the keeper to get a download link.
#[utoipa::path(
    get,
    path = "/v1/agreements/{chain}/{id}/access-request",
    params(
        ("chain" = u64, Path, description = "chain id"),
        ("id" = String, Path, description = "the agreement"),
        RequestQuery
    ),
    responses(
        (status = 200, body = SigningRequest),
        (status = 400, body = CatalogErrorBody, description = "`bad_query`"),
        (status = 403, body = CatalogErrorBody, description = "`not_consumer`"),
        (status = 404, body = CatalogErrorBody, description = "`not_found`"),
        (status = 409, body = CatalogErrorBody, description = "`not_indexed`")
    )
)]
async fn access_request(
    State(state): State<ApiState>,
    Path((chain, id)): Path<(String, String)>,
    query: Result<Query<RequestQuery>, QueryRejection>,
) -> Result<Json<SigningRequest>, ApiError> {
    let (chain, id) = asset_path(&chain, &id)?;
    let Query(query) = query.map_err(|error| bad(error.body_text()))?;
    let consumer: alloy::primitives::Address = query
        .consumer
        .parse()
        .map_err(|_| bad("consumer: not an address"))?;
    let agreement = state.markets.agreement(chain, id, consumer).await?;
    let view = find_asset(&state, chain, agreement.did).await?;
    let file = query.file.unwrap_or(0);
    let files = view
        .document
        .as_ref()
        .and_then(|document| document["files"].as_array())
        .map_or(0, Vec::len);
    if file >= files {
        return Err(bad(format!("file: the asset has {files} file(s)")));
    }
    let request = state
        .markets
        .access_request(chain, &agreement, &view.url, file)
        .await?;
    Ok(Json(request))
}

/// A payment token's symbol and decimals, to show amounts in.
#[utoipa::path(
    get,
    path = "/v1/tokens/{chain}/{address}",
    params(
        ("chain" = u64, Path, description = "chain id"),
        ("address" = String, Path, description = "the token (the zero address: the native coin)")
    ),
    responses(
        (status = 200, body = TokenInfo),
        (status = 400, body = CatalogErrorBody, description = "`bad_query`"),
        (status = 404, body = CatalogErrorBody, description = "`not_found`: a chain not followed")
    )
)]
async fn token(
    State(state): State<ApiState>,
    Path((chain, address)): Path<(String, String)>,
) -> Result<Json<TokenInfo>, ApiError> {
    let chain = chain_of(&chain)?;
    let address: alloy::primitives::Address = address
        .parse()
        .map_err(|_| bad("address: not an address"))?;
    Ok(Json(state.markets.token(chain, address).await?))
}

/// What is indexed, per chain.
#[utoipa::path(
    get,
    path = "/v1/status",
    responses((status = 200, body = CatalogStatus))
)]
async fn status(State(state): State<ApiState>) -> Result<Json<CatalogStatus>, ApiError> {
    let chains = state.chains.clone();
    Ok(Json(
        with_store(&state, move |store| store.status(&chains)).await?,
    ))
}
