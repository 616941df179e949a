//! Access with a short-lived token: `POST /v1/access/token` trades a signed access request for a
//! token (see [`super::tokens`]); `GET /v1/access/{agreement}` streams with it, as a video player
//! or `curl` can, the token in `Authorization: Bearer` or the `token` query parameter.

use alloy::primitives::B256;
use axum::{
    Json,
    body::Bytes,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    ApiError, Chains,
    access::{deliver, observed, servable, signed_agreement},
    now,
    tokens::{Grant, TokenError},
};

/// A token and where to use it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenBody {
    /// The token (base64url).
    pub token: String,
    /// Unix time it expires: the keeper's token lifetime, or the end of the access window if
    /// sooner.
    pub expires_at: u64,
    /// The agreement it is for.
    pub agreement_id: String,
    /// The file's URL with the token, for clients that cannot set headers.
    pub url: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct TokenQuery {
    file: Option<usize>,
    token: Option<String>,
}

/// Trades a signed access request for a short-lived token bound to its agreement. The first
/// request of a paid agreement settles it, as `POST /v1/access` does.
#[utoipa::path(
    post,
    path = "/v1/access/token",
    request_body = super::AccessBody,
    params(("file" = Option<usize>, Query, description = "the file the returned URL names (default 0)")),
    responses(
        (status = 200, body = TokenBody),
        (status = 400, body = super::ErrorBody, description = "malformed, wrong_command, deadline_too_far"),
        (status = 401, body = super::ErrorBody, description = "forged, expired"),
        (status = 402, body = super::ErrorBody, description = "unpaid"),
        (status = 403, body = super::ErrorBody, description = "wrong_template, wrong_asset, wrong_consumer"),
        (status = 404, body = super::ErrorBody, description = "unknown_agreement, unknown_document, unknown_file"),
        (status = 409, body = super::ErrorBody, description = "replayed, settlement_failed, settlement_abandoned"),
        (status = 410, body = super::ErrorBody, description = "ended, access_window_closed"),
        (status = 503, body = super::ErrorBody, description = "unconfirmed, content_unavailable, settlement_pending")
    )
)]
pub(super) async fn issue(
    State(chains): State<Chains>,
    Query(query): Query<TokenQuery>,
    body: Bytes,
) -> Response {
    observed("token", async {
        let (state, agreement) = signed_agreement(&chains, &body).await?;
        let index = query.file.unwrap_or(0);
        let servable = servable(state, &agreement, index).await?;
        let shared = &state.shared;
        let expires_at = (now() + shared.token_ttl).min(servable.window_end);
        let token = shared.tokens.issue(Grant {
            agreement: agreement.id,
            chain_id: state.chain_id,
            consumer: agreement.consumer,
            expires_at,
        });
        Ok(Json(TokenBody {
            url: format!(
                "{}/v1/access/{}?file={index}&token={token}",
                shared.public_url, agreement.id
            ),
            token,
            expires_at,
            agreement_id: agreement.id.to_string(),
        })
        .into_response())
    })
    .await
}

/// Streams file `file` (default 0) of the agreement's asset to the holder of a token for it,
/// with HTTP Range, within the access window.
#[utoipa::path(
    get,
    path = "/v1/access/{agreement}",
    params(
        ("agreement" = String, Path, description = "the agreement id"),
        ("file" = Option<usize>, Query, description = "index of the file in the metadata document"),
        ("token" = Option<String>, Query, description = "the token, when no Authorization header carries it")
    ),
    responses(
        (status = 200, description = "the file", content_type = "application/octet-stream"),
        (status = 206, description = "the requested range of the file"),
        (status = 400, body = super::ErrorBody, description = "malformed"),
        (status = 401, body = super::ErrorBody, description = "invalid_token, token_expired"),
        (status = 403, body = super::ErrorBody, description = "wrong_agreement"),
        (status = 404, body = super::ErrorBody, description = "unknown_agreement, unknown_chain, unknown_file"),
        (status = 409, body = super::ErrorBody, description = "settlement_abandoned"),
        (status = 410, body = super::ErrorBody, description = "ended, access_window_closed"),
        (status = 416, body = super::ErrorBody, description = "invalid_range"),
        (status = 429, body = super::ErrorBody, description = "too_many_downloads"),
        (status = 503, body = super::ErrorBody, description = "content_unavailable")
    )
)]
pub(super) async fn download(
    State(chains): State<Chains>,
    Path(agreement): Path<String>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
) -> Response {
    observed("token_access", async {
        let id: B256 = agreement
            .parse()
            .map_err(|_| ApiError::malformed("the agreement id is 32 bytes of hex"))?;
        tracing::Span::current().record("agreement", tracing::field::display(id));
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        let token = bearer.or(query.token.as_deref()).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "an access token is required (Authorization: Bearer, or ?token=)",
            )
        })?;
        let grant = chains
            .shared()
            .tokens
            .check(token, now())
            .map_err(|error| {
                let code = match error {
                    TokenError::Invalid => "invalid_token",
                    TokenError::Expired(_) => "token_expired",
                };
                ApiError::new(StatusCode::UNAUTHORIZED, code, error.to_string())
            })?;
        if grant.agreement != id {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "wrong_agreement",
                "the token is for another agreement",
            ));
        }
        let state = chains.get(Some(grant.chain_id))?;
        let agreement = state
            .store
            .lock()
            .await
            .agreement(id)
            .map_err(ApiError::internal)?
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "unknown_agreement",
                    format!("agreement {id} is not one of this keeper's"),
                )
            })?;
        let servable = servable(state, &agreement, query.file.unwrap_or(0)).await?;
        deliver(state, grant.consumer, servable, &headers).await
    })
    .await
}
