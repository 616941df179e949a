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

use crate::store::{
    Store,
    search::{Query as Checked, QueryError},
};

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// The index (read connection).
    pub store: Arc<Mutex<Store>>,
    /// The chains followed.
    pub chains: Arc<Vec<u64>>,
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
    paths(search, asset, status),
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
        CatalogErrorBody
    ))
)]
pub struct ApiDoc;

/// The API's routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/search", get(search))
        .route("/v1/assets/{chain}/{did}", get(asset))
        .route("/v1/status", get(status))
        .route("/openapi.json", get(openapi))
        .route("/health", get(|| async { "ok" }))
        .with_state(state)
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
    work: impl FnOnce(&Store) -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || {
        let store = store
            .lock()
            .map_err(|_| ApiError::internal("the store lock is poisoned"))?;
        work(&store).map_err(ApiError::internal)
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
    let chain: u64 = chain.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_query",
            "chain: not a chain id",
        )
    })?;
    let did: B256 = did.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_query",
            "did: not 32 bytes of hex",
        )
    })?;
    with_store(&state, move |store| store.asset(chain, did))
        .await?
        .map(Json)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no asset {did} on chain {chain} in this catalog"),
            )
        })
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
