//! Paid access: a consumer's signed request, checked against the chain; the settlement intent,
//! written only once the content is known to be servable; the content streamed, with HTTP Range
//! for downloads that resume.

use std::time::Instant;

use alloy::sol_types::SolEvent;
use alloy::{
    eips::BlockNumberOrTag,
    primitives::{Address, B256, U256, hex},
    providers::Provider,
};
use axum::{
    body::{Body, Bytes},
    extract::{Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures::StreamExt;
use insitu_bindings::{
    AgreementStore,
    requests::{ServiceRequest, commands},
};
use insitu_client::metadata::{self, FileEntry, ServiceKind};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tracing::Instrument;
use utoipa::ToSchema;

use super::{ApiError, AppState, CONFIRMATION_WAIT, Chains, SETTLEMENT_WAIT, now, stored_document};
use crate::{
    requests::{RequestError, verify},
    storage::{Source, StorageError},
    store::{ActionState, Agreement, AgreementState},
};

/// How long downloads may be repeated after the release when the document does not say.
pub const DEFAULT_ACCESS_WINDOW: u64 = 86_400;
/// How far back from the head an agreement the watcher has not recorded is looked for.
const RECENT_BLOCKS: u64 = 256;

/// A signed access request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessBody {
    /// The chain of the agreement (the signature's domain). When absent, the chain whose store
    /// holds the agreement, else the keeper's first chain.
    #[serde(default)]
    pub chain_id: Option<u64>,
    /// The typed data's message.
    pub request: RequestBody,
    /// The consumer's EIP-712 signature of it, hex (65 bytes).
    pub signature: String,
}

/// The `ServiceRequest` message, numbers as decimal strings, bytes as hex.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestBody {
    /// `access`.
    pub command: String,
    /// The agreement.
    pub agreement_id: String,
    /// The asset.
    pub did: String,
    /// The consumer.
    pub consumer: String,
    /// Used once.
    pub nonce: String,
    /// Unix time.
    pub deadline: u64,
}

#[derive(Debug, Deserialize)]
pub(super) struct AccessQuery {
    file: Option<usize>,
}

/// Streams file `file` (default 0) of the asset of the consumer's agreement. The first request of
/// a paid agreement waits for its settlement (fulfilled and released on chain, confirmed); later
/// ones, within the access window, stream at once. `Range: bytes=START-[END]` resumes.
#[utoipa::path(
    post,
    path = "/v1/access",
    request_body = AccessBody,
    params(("file" = Option<usize>, Query, description = "index of the file in the metadata document")),
    responses(
        (status = 200, description = "the file", content_type = "application/octet-stream"),
        (status = 206, description = "the requested range of the file"),
        (status = 400, body = super::ErrorBody, description = "malformed, wrong_command, deadline_too_far"),
        (status = 401, body = super::ErrorBody, description = "forged, expired"),
        (status = 402, body = super::ErrorBody, description = "unpaid"),
        (status = 403, body = super::ErrorBody, description = "wrong_template, wrong_asset, wrong_consumer"),
        (status = 404, body = super::ErrorBody, description = "unknown_agreement, unknown_document, unknown_file"),
        (status = 409, body = super::ErrorBody, description = "replayed, settlement_failed, settlement_abandoned"),
        (status = 410, body = super::ErrorBody, description = "ended, access_window_closed"),
        (status = 416, body = super::ErrorBody, description = "invalid_range"),
        (status = 429, body = super::ErrorBody, description = "too_many_downloads"),
        (status = 503, body = super::ErrorBody, description = "unconfirmed, content_unavailable, settlement_pending")
    )
)]
pub(super) async fn access(
    State(chains): State<Chains>,
    Query(query): Query<AccessQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    observed("signed", serve(&chains, query, &headers, &body)).await
}

/// Runs an access handler in a span that carries its agreement (once the request names a valid
/// one) and its route, counting and logging its outcome.
pub(super) async fn observed(
    route: &'static str,
    handler: impl Future<Output = Result<Response, ApiError>>,
) -> Response {
    let started = Instant::now();
    let span = tracing::info_span!("access", route, agreement = tracing::field::Empty);
    let result = handler.instrument(span.clone()).await;
    let outcome = match &result {
        Ok(_) => "served",
        Err(error) => error.code(),
    };
    metrics::counter!("keeper_access_requests_total", "outcome" => outcome).increment(1);
    span.in_scope(|| {
        tracing::info!(
            outcome,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "access request"
        );
    });
    match result {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn serve(
    chains: &Chains,
    query: AccessQuery,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let (state, agreement) = signed_agreement(chains, body).await?;
    let servable = servable(state, &agreement, query.file.unwrap_or(0)).await?;
    deliver(state, agreement.consumer, servable, headers).await
}

/// The chain a signed access request (`body`) is about, and the agreement it names, once the
/// signature, the nonce, the deadline and the agreement (this keeper's, paid or settled, the
/// consumer's) are checked. The chain is the one the request names, else the one whose store
/// holds its agreement, else the keeper's first chain (whose watcher may not have recorded it
/// yet). A purchase on chain that the watcher has not recorded yet is waited for, bounded.
pub(super) async fn signed_agreement<'a>(
    chains: &'a Chains,
    body: &[u8],
) -> Result<(&'a AppState, Agreement), ApiError> {
    signed_request(chains, body, commands::ACCESS).await
}

/// Like [`signed_agreement`], for a request carrying `command`.
pub(super) async fn signed_request<'a>(
    chains: &'a Chains,
    body: &[u8],
    command: &'static str,
) -> Result<(&'a AppState, Agreement), ApiError> {
    let body: AccessBody = serde_json::from_slice(body)
        .map_err(|error| ApiError::malformed(format!("invalid {command} request: {error}")))?;
    let request = parse_request(&body.request)?;
    let signature = parse_signature(&body.signature)?;
    let state = chain_of(chains, body.chain_id, request.agreementId).await?;
    let agreement = confirmed(state, request.agreementId, |store| {
        verify(
            store,
            &state.suite,
            state.chain_id,
            command,
            &request,
            &signature,
            now(),
        )
    })
    .await?;
    Ok((state, agreement))
}

/// A 65-byte signature given as 0x-prefixed hex.
pub(super) fn parse_signature(text: &str) -> Result<Vec<u8>, ApiError> {
    text.strip_prefix("0x")
        .and_then(|text| hex::decode(text).ok())
        .ok_or_else(|| ApiError::malformed("the signature is 0x-prefixed hex"))
}

/// The chain a request is about: the one it names, else the one whose store holds its
/// agreement, else the keeper's first chain.
pub(super) async fn chain_of(
    chains: &Chains,
    named: Option<u64>,
    agreement: B256,
) -> Result<&AppState, ApiError> {
    match named {
        Some(_) => chains.get(named),
        None => match chains.holding(agreement).await {
            Some(state) => Ok(state),
            None => chains.get(None),
        },
    }
}

/// Runs `check` (a request's verification) against `state`'s store; an agreement on chain that
/// the watcher has not recorded yet (not buried under the confirmations) is waited for, bounded,
/// and looked up on chain again after each scan, so a purchase a reorg removed is refused as
/// unknown.
pub(super) async fn confirmed(
    state: &AppState,
    id: B256,
    mut check: impl FnMut(&mut crate::store::Store) -> Result<Agreement, RequestError>,
) -> Result<Agreement, ApiError> {
    let mut scanned = state.scanned.clone();
    let mut waiting_since: Option<Instant> = None;
    let agreement = loop {
        scanned.mark_unchanged();
        let verified = {
            let mut store = state.store.lock().await;
            check(&mut store)
        };
        match verified {
            Ok(agreement) => break agreement,
            Err(RequestError::UnknownAgreement(unknown)) if unknown == id => {
                if !created_on_chain(state, id).await {
                    return Err(RequestError::UnknownAgreement(id).into());
                }
                tracing::debug!("on chain, not recorded yet: waiting for the watcher");
                let since = *waiting_since.get_or_insert_with(Instant::now);
                let left = CONFIRMATION_WAIT.saturating_sub(since.elapsed());
                if left.is_zero() || tokio::time::timeout(left, scanned.changed()).await.is_err() {
                    return Err(ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "unconfirmed",
                        format!(
                            "agreement {id} is on chain but not yet buried under {} \
                             confirmation(s): send a new request in a moment",
                            state.confirmations
                        ),
                    )
                    .retry_after(state.confirmations.max(1)));
                }
            }
            Err(error) => return Err(error.into()),
        }
    };
    tracing::Span::current().record("agreement", tracing::field::display(agreement.id));
    Ok(agreement)
}

/// A file the consumer of an agreement may have now.
pub(super) struct Servable {
    file: FileEntry,
    source: Source,
    /// Unix time the access window closes.
    pub(super) window_end: u64,
}

impl Servable {
    /// `file`, read from `source` (checked), until `window_end`.
    pub(super) fn new(file: FileEntry, source: Source, window_end: u64) -> Self {
        Self {
            file,
            source,
            window_end,
        }
    }
}

/// File `index` of `agreement`'s asset, once it is known servable (before anything is settled
/// for it), the agreement settled (a paid one is settled first, the request waiting for it) and
/// its access window open.
pub(super) async fn servable(
    state: &AppState,
    agreement: &Agreement,
    index: usize,
) -> Result<Servable, ApiError> {
    let id = agreement.id;
    // An agreement the operator gave up is not served, even one already settled.
    let action = state
        .store
        .lock()
        .await
        .action(id)
        .map_err(ApiError::internal)?;
    if let Some(action) = action.filter(|action| action.state == ActionState::Abandoned) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "settlement_abandoned",
            format!(
                "the provider's operator gave this agreement up: {}",
                action.outcome.unwrap_or_default()
            ),
        ));
    }
    let bytes = stored_document(state, agreement.terms.checksum).await?;
    let document = metadata::parse(&bytes).map_err(ApiError::internal)?;
    let file = document.files.get(index).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_file",
            format!(
                "the asset has {} file(s); there is no file {index}",
                document.files.len()
            ),
        )
    })?;
    // Never fulfil on chain for content the keeper cannot serve.
    let source = check_file(state, file).await.map_err(|reason| {
        tracing::error!(%reason, "content unavailable");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "content_unavailable",
            "the provider cannot serve this file right now; the agreement is not settled",
        )
    })?;
    let window = document
        .service(ServiceKind::Access)
        .and_then(|service| service.access_window)
        .unwrap_or(DEFAULT_ACCESS_WINDOW);
    let window_end = match agreement.state {
        AgreementState::Paid => {
            settle(state, id).await?;
            now() + window
        }
        AgreementState::Served | AgreementState::Released => {
            let settled_at = state
                .provider
                .get_block_by_number(BlockNumberOrTag::Number(agreement.state_block))
                .await
                .map_err(ApiError::internal)?
                .map(|block| block.header.timestamp)
                .unwrap_or_default();
            if now() > settled_at + window {
                return Err(ApiError::new(
                    StatusCode::GONE,
                    "access_window_closed",
                    format!(
                        "downloads were allowed until {} (unix time)",
                        settled_at + window
                    ),
                ));
            }
            settled_at + window
        }
        AgreementState::Refunded | AgreementState::ServiceAborted => {
            return Err(ApiError::new(
                StatusCode::GONE,
                "ended",
                "the agreement ended without being served (refunded or timed out)",
            ));
        }
        AgreementState::Created | AgreementState::PaymentAborted => {
            return Err(ApiError::new(
                StatusCode::PAYMENT_REQUIRED,
                "unpaid",
                "the agreement is not paid",
            ));
        }
    };
    Ok(Servable {
        file: file.clone(),
        source,
        window_end,
    })
}

/// Streams `servable` to `consumer`, within the consumer's limit of downloads in flight.
pub(super) async fn deliver(
    state: &AppState,
    consumer: Address,
    servable: Servable,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let permit = state.shared.downloads.try_start(consumer).ok_or_else(|| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_downloads",
            "this consumer has as many downloads in flight as the keeper allows: \
             send a new request when one ends",
        )
        .retry_after(1)
    })?;
    stream(&servable.file, servable.source, headers, permit).await
}

/// Whether the store's `AgreementCreated` log of `id` exists near the head (the watcher has not
/// recorded it yet: too recent, or still being scanned).
async fn created_on_chain(state: &AppState, id: B256) -> bool {
    let Ok(head) = state.provider.get_block_number().await else {
        return false;
    };
    let filter = alloy::rpc::types::Filter::new()
        .address(state.suite.agreement_store)
        .event_signature(AgreementStore::AgreementCreated::SIGNATURE_HASH)
        .topic1(id)
        .from_block(head.saturating_sub(RECENT_BLOCKS))
        .to_block(head);
    state
        .provider
        .get_logs(&filter)
        .await
        .is_ok_and(|logs| !logs.is_empty())
}

fn parse_request(body: &RequestBody) -> Result<ServiceRequest, ApiError> {
    let b256 = |text: &str, what: &str| {
        text.parse::<B256>()
            .map_err(|_| ApiError::malformed(format!("{what} is 32 bytes of hex")))
    };
    Ok(ServiceRequest {
        command: body.command.clone(),
        agreementId: b256(&body.agreement_id, "agreementId")?,
        did: b256(&body.did, "did")?,
        consumer: body
            .consumer
            .parse::<Address>()
            .map_err(|_| ApiError::malformed("consumer is an address"))?,
        nonce: body
            .nonce
            .parse::<U256>()
            .map_err(|_| ApiError::malformed("nonce is a decimal number"))?,
        deadline: body.deadline,
    })
}

/// Writes the settlement intent and waits (bounded) for the executor to settle it.
async fn settle(state: &AppState, id: B256) -> Result<(), ApiError> {
    state
        .store
        .lock()
        .await
        .intend(id, now())
        .map_err(ApiError::internal)?;
    tracing::debug!("settlement intent written");
    state.wake_executor.notify_one();
    let deadline = Instant::now() + SETTLEMENT_WAIT;
    let mut settled = state.settled.clone();
    loop {
        settled.mark_unchanged();
        let action = state
            .store
            .lock()
            .await
            .action(id)
            .map_err(ApiError::internal)?;
        match action.map(|action| (action.state, action.outcome)) {
            Some((ActionState::Confirmed | ActionState::Done, _)) => return Ok(()),
            Some((ActionState::Abandoned, outcome)) => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "settlement_abandoned",
                    format!(
                        "the provider's operator gave this settlement up: {}",
                        outcome.unwrap_or_default()
                    ),
                ));
            }
            Some((ActionState::Failed, outcome)) => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "settlement_failed",
                    format!(
                        "the agreement could not be settled: {}",
                        outcome.unwrap_or_default()
                    ),
                ));
            }
            _ => {}
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || tokio::time::timeout(left, settled.changed()).await.is_err() {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "settlement_pending",
                "the settlement is not confirmed yet: send a new request in a moment",
            )
            .retry_after(5));
        }
    }
}

/// Resolves, and checks, a file the document lists: its location opens with the keeper's key,
/// names a place the keeper reads (a `file://` URL inside the data folder, an `s3://` object of a
/// configured bucket, a web URL the outbound guard passes), and what is there has the stated size
/// and SHA-256 (hashed once per size and version). Returns the source.
pub(super) async fn check_file(state: &AppState, file: &FileEntry) -> Result<Source, String> {
    let location =
        metadata::open_location(&file.location, &state.key).map_err(|error| error.to_string())?;
    let named = |error: StorageError| match error {
        StorageError::Missing => format!("{} does not exist", file.name),
        other => other.to_string(),
    };
    let source = state
        .shared
        .storage
        .resolve(&location)
        .await
        .map_err(named)?;
    let stat = source.stat().await.map_err(named)?;
    let source = source.pinned(&stat);
    if stat.size != file.content_size {
        return Err(format!(
            "{} has {} bytes, the document says {}",
            file.name, stat.size, file.content_size
        ));
    }
    let key = source.cache_key();
    let cached = match stat.modified {
        Some(modified) => state
            .store
            .lock()
            .await
            .verified_sha256(&key, stat.size, modified)
            .map_err(|error| error.to_string())?,
        None => None,
    };
    let sha256 = match cached {
        Some(sha256) => sha256,
        None => {
            let sha256 = source.sha256().await.map_err(named)?;
            if let Some(modified) = stat.modified {
                state
                    .store
                    .lock()
                    .await
                    .record_sha256(&key, stat.size, modified, &sha256)
                    .map_err(|error| error.to_string())?;
            }
            sha256
        }
    };
    if sha256 != file.sha256 {
        return Err(format!("{} does not match its SHA-256", file.name));
    }
    Ok(source)
}

/// The SHA-256 of a file, read in chunks (constant memory).
pub async fn sha256_of(path: &std::path::Path) -> std::io::Result<String> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0_u8; 1 << 16];
    loop {
        let read = file.read(&mut buffer).await?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The file, or the range the `Range` header asks for.
/// The response streaming `file` (from `source`), or the range `headers` ask for. Chunks are
/// read only as the connection takes them, so memory stays constant whatever the size, and a
/// slow consumer slows the reads. `permit` counts the download in flight until the body ends or
/// the connection drops.
async fn stream(
    file: &FileEntry,
    source: Source,
    headers: &HeaderMap,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Result<Response, ApiError> {
    let size = file.content_size;
    let range = match headers.get(header::RANGE) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|text| parse_range(text, size))
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::RANGE_NOT_SATISFIABLE,
                        "invalid_range",
                        format!("a single range within the file's {size} bytes, e.g. bytes=0-"),
                    )
                })?,
        ),
    };
    let (start, end) = range.unwrap_or((0, size.saturating_sub(1)));
    let length = if size == 0 { 0 } else { end - start + 1 };
    let chunks = source
        .read(start, length)
        .await
        .map_err(ApiError::internal)?
        .map(move |chunk| {
            let _in_flight = &permit;
            chunk
        });
    metrics::counter!("keeper_bytes_served_total").increment(length);
    let body = Body::from_stream(chunks);
    let mut response = Response::builder()
        .status(if range.is_some() {
            StatusCode::PARTIAL_CONTENT
        } else {
            StatusCode::OK
        })
        .header(header::CONTENT_TYPE, file.content_type.as_str())
        .header(header::CONTENT_LENGTH, length)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{}\"", file.name),
        )
        .header("x-content-sha256", file.sha256.as_str());
    if range.is_some() {
        response = response.header(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!("bytes {start}-{end}/{size}"))
                .map_err(ApiError::internal)?,
        );
    }
    response.body(body).map_err(ApiError::internal)
}

/// `bytes=START-` or `bytes=START-END` within `size` bytes.
fn parse_range(text: &str, size: u64) -> Option<(u64, u64)> {
    let spec = text.trim().strip_prefix("bytes=")?;
    let (start, end) = spec.split_once('-')?;
    let start: u64 = start.trim().parse().ok()?;
    let end = match end.trim() {
        "" => size.checked_sub(1)?,
        end => end.parse::<u64>().ok()?.min(size.checked_sub(1)?),
    };
    (start <= end).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges_are_parsed_within_the_file() {
        assert_eq!(parse_range("bytes=0-", 10), Some((0, 9)));
        assert_eq!(parse_range("bytes=4-6", 10), Some((4, 6)));
        assert_eq!(parse_range("bytes=4-100", 10), Some((4, 9)));
        assert_eq!(parse_range("bytes=10-", 10), None);
        assert_eq!(parse_range("bytes=6-4", 10), None);
        assert_eq!(parse_range("bytes=0-1,3-4", 10), None);
        assert_eq!(parse_range("lines=0-1", 10), None);
        assert_eq!(parse_range("bytes=0-", 0), None);
    }
}
