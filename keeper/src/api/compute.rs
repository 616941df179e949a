//! The compute routes: a consumer's signed order becomes a queued job (the runner does the
//! rest); signed requests read its status and logs, or ask it to stop. Every refusal changes
//! nothing: the order is checked against the asset's compute policy and the chain before its
//! nonce is spent or anything is written.

use alloy::primitives::{Address, B256, U256, hex};
use axum::{
    Json,
    body::Bytes,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::Engine;
use insitu_bindings::requests::{self, ComputeJob, commands};
use insitu_client::metadata::{self, ComputePolicy, LogVisibility, ServiceKind};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::{
    ApiError, AppState, Chains,
    access::{
        Servable, chain_of, check_file, confirmed, deliver, observed, parse_signature,
        signed_request,
    },
    now, stored_document,
};
use crate::{
    compute::{
        ComputeContext, RunId, RunState, federated,
        runner::{Runner, StoredResult},
    },
    requests::verify_compute,
    store::{Agreement, Job, JobPhase, NewJob},
};

/// Most parameters of a job.
pub const MAX_PARAMS: usize = 64;
/// Longest parameter value, in bytes.
pub const MAX_PARAM_BYTES: usize = 4096;

/// A consumer's signed compute order, with its algorithm and parameters.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComputeBody {
    /// The chain of the agreement. When absent, the chain whose store holds it, else the first.
    #[serde(default)]
    pub chain_id: Option<u64>,
    /// The typed data's message.
    pub job: JobBody,
    /// The consumer's EIP-712 signature of it, hex (65 bytes).
    pub signature: String,
    /// The algorithm file, base64 (its SHA-256 is `job.algorithm`); or, instead:
    #[serde(default)]
    pub algorithm_file: Option<String>,
    /// the algorithm's asset (published at this keeper, one file whose SHA-256 is
    /// `job.algorithm`).
    #[serde(default)]
    pub algorithm_did: Option<String>,
    /// The parameters (their hash is `job.params`): names to string values.
    #[serde(default)]
    pub params: std::collections::BTreeMap<String, String>,
}

/// The `ComputeJob` message, numbers as decimal strings, bytes as hex.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobBody {
    /// The compute agreement.
    pub agreement_id: String,
    /// The asset.
    pub did: String,
    /// The consumer.
    pub consumer: String,
    /// SHA-256 of the algorithm file, 0x-prefixed hex.
    pub algorithm: String,
    /// The runtime's name.
    pub runtime: String,
    /// Hash of the parameters, 0x-prefixed hex.
    pub params: String,
    /// Used once.
    pub nonce: String,
    /// Unix time.
    pub deadline: u64,
}

/// Where a job stands.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobStatus {
    /// The compute agreement.
    pub agreement_id: String,
    /// `queued`, `configuring`, `running`, `publishing`, `settling`, `done`, `failed` or
    /// `stopped`.
    pub phase: String,
    /// Unix time it entered its phase.
    pub phase_since: u64,
    /// Runs started.
    pub runs: u32,
    /// The algorithm's SHA-256.
    pub algorithm_sha256: String,
    /// The runtime.
    pub runtime: String,
    /// Why it failed or stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How its run ended (the sandbox's outcome).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub outcome: Option<serde_json::Value>,
    /// The stored result (its id, document and files), once published.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    /// Whether a stop was asked.
    pub stop_requested: bool,
    /// A federated job's SuperNode key for its current run (OpenSSH format), once configured:
    /// the consumer registers it with its SuperLink, which admits no other node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supernode_key: Option<String>,
}

impl JobStatus {
    fn of(job: &Job) -> Self {
        let json = |text: &Option<String>| {
            text.as_deref()
                .and_then(|text| serde_json::from_str(text).ok())
        };
        Self {
            agreement_id: job.agreement_id.to_string(),
            phase: job.phase.as_str().to_owned(),
            phase_since: job.phase_since,
            runs: job.runs,
            algorithm_sha256: job.algorithm_sha256.clone(),
            runtime: job.runtime.clone(),
            reason: job.reason.clone(),
            outcome: json(&job.outcome),
            result: json(&job.result),
            stop_requested: job.stop_requested,
            supernode_key: None,
        }
    }
}

fn unavailable() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "compute_unavailable",
        "this keeper does not run compute jobs",
    )
}

fn compute(state: &AppState) -> Result<&ComputeContext, ApiError> {
    state.shared.compute.as_ref().ok_or_else(unavailable)
}

fn b256(text: &str, what: &str) -> Result<B256, ApiError> {
    text.parse()
        .map_err(|_| ApiError::malformed(format!("{what} is 32 bytes of 0x-prefixed hex")))
}

fn parse_job(body: &JobBody) -> Result<ComputeJob, ApiError> {
    Ok(ComputeJob {
        agreementId: b256(&body.agreement_id, "agreementId")?,
        did: b256(&body.did, "did")?,
        consumer: body
            .consumer
            .parse::<Address>()
            .map_err(|_| ApiError::malformed("consumer is an address"))?,
        algorithm: b256(&body.algorithm, "algorithm")?,
        runtime: body.runtime.clone(),
        params: b256(&body.params, "params")?,
        nonce: body
            .nonce
            .parse::<U256>()
            .map_err(|_| ApiError::malformed("nonce is a decimal number"))?,
        deadline: body.deadline,
    })
}

/// The asset's compute policy, from the document the agreement was made on.
async fn policy(state: &AppState, agreement: &Agreement) -> Result<ComputePolicy, ApiError> {
    let bytes = stored_document(state, agreement.terms.checksum).await?;
    let document = metadata::parse(&bytes).map_err(ApiError::internal)?;
    document
        .service(ServiceKind::Compute)
        .and_then(|service| service.compute.clone())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "no_compute_service",
                "the asset's document has no compute service",
            )
        })
}

/// The file and the owner of the algorithm asset `did`, which must be published at this keeper
/// (its document stored here) with exactly one file, read from the keeper's storage.
async fn algorithm_asset(
    state: &AppState,
    compute: &ComputeContext,
    did: B256,
) -> Result<(Vec<u8>, Address), ApiError> {
    let registry = insitu_bindings::AssetRegistry::new(state.suite.asset_registry, &state.provider);
    let asset = registry.getAsset(did).call().await.map_err(|error| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "chain_unreachable",
            format!("the registry cannot be read: {error}"),
        )
    })?;
    if asset.owner.is_zero() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_algorithm",
            format!("no asset {did} is registered"),
        ));
    }
    let bytes = state
        .store
        .lock()
        .await
        .document(asset.checksum)
        .map_err(ApiError::internal)?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "algorithm_not_served_here",
                "an algorithm asset must be published at this keeper",
            )
        })?;
    let document = metadata::parse(&bytes).map_err(ApiError::internal)?;
    // Only what its publisher declared an algorithm runs as one: naming a dataset would run (and
    // could print) data its buyers pay for.
    if document.kind != "SoftwareSourceCode" {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "not_an_algorithm",
            format!("asset {did} is a {}, not SoftwareSourceCode", document.kind),
        ));
    }
    // The result derives from the algorithm on chain, which this keeper must be able to serve.
    let serves = registry
        .canServe(did, state.key.address())
        .call()
        .await
        .map_err(|error| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "chain_unreachable",
                format!("the registry cannot be read: {error}"),
            )
        })?;
    if !serves {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "algorithm_not_served_here",
            "this keeper is not a provider of the algorithm asset",
        ));
    }
    let [file] = document.files.as_slice() else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "algorithm_asset_invalid",
            format!(
                "an algorithm asset has one file, not {}",
                document.files.len()
            ),
        ));
    };
    let max_bytes = compute.config.max_algorithm_kb.saturating_mul(1024);
    if file.content_size > max_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "algorithm_too_large",
            format!("an algorithm file may have at most {max_bytes} bytes"),
        ));
    }
    let unavailable = |reason: String| {
        tracing::error!(%reason, "algorithm unavailable");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "content_unavailable",
            "the provider cannot read this algorithm right now",
        )
    };
    let source = check_file(state, file).await.map_err(unavailable)?;
    let mut chunks = source
        .read(0, file.content_size)
        .await
        .map_err(|error| unavailable(error.to_string()))?;
    let mut content = Vec::with_capacity(usize::try_from(file.content_size).unwrap_or(0));
    while let Some(chunk) = futures::StreamExt::next(&mut chunks).await {
        content.extend_from_slice(&chunk.map_err(|error| unavailable(error.to_string()))?);
    }
    if hex::encode(Sha256::digest(&content)) != file.sha256 {
        return Err(unavailable(
            "the algorithm file changed since it was published".into(),
        ));
    }
    Ok((content, asset.owner))
}

/// Checks the order's algorithm, runtime and parameters (against what it signs, the asset's
/// policy and this keeper's runtimes), before anything is spent or written. `publisher` is the
/// owner of the algorithm's asset, when it comes from one.
fn check_order(
    compute: &ComputeContext,
    policy: &ComputePolicy,
    job: &ComputeJob,
    (file, publisher): (&[u8], Option<Address>),
    params: &std::collections::BTreeMap<String, String>,
) -> Result<String, ApiError> {
    let sha256 = hex::encode(Sha256::digest(file));
    if B256::from_slice(&Sha256::digest(file)) != job.algorithm {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "algorithm_mismatch",
            format!(
                "the algorithm file's SHA-256 is 0x{sha256}, the order says {}",
                job.algorithm
            ),
        ));
    }
    if params.len() > MAX_PARAMS
        || params.iter().any(|(name, value)| {
            name.is_empty()
                || name.len() > 64
                || !name
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
                || value.len() > MAX_PARAM_BYTES
        })
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_params",
            format!(
                "at most {MAX_PARAMS} parameters, named with letters, digits, _ or - (64 at most), \
                 values of at most {MAX_PARAM_BYTES} bytes"
            ),
        ));
    }
    if requests::params_hash(params) != job.params {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "params_mismatch",
            "the parameters do not hash to the order's `params`",
        ));
    }
    if !policy.runtimes.contains(&job.runtime) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "runtime_not_offered",
            format!(
                "the asset offers runtime(s) {}, not {}",
                policy.runtimes.join(", "),
                job.runtime
            ),
        ));
    }
    let Some(runtime) = compute.config.runtime(&job.runtime) else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "runtime_unavailable",
            format!("this keeper has no runtime {} configured", job.runtime),
        ));
    };
    if runtime.flower.is_some() {
        federated::parse_params(params).map_err(|error| {
            ApiError::new(StatusCode::BAD_REQUEST, "bad_params", error.to_string())
        })?;
    }
    if !policy.algorithms.allows(&sha256, publisher) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "algorithm_not_allowed",
            "the asset's compute policy does not allow this algorithm",
        ));
    }
    Ok(sha256)
}

/// Queues the job of a compute agreement: the consumer's signed order with the algorithm file and
/// its parameters. The runner then stages the asset's files, runs the algorithm in the sandbox
/// and stores the result; follow it with `/v1/compute/status`.
#[utoipa::path(
    post,
    path = "/v1/compute",
    request_body = ComputeBody,
    responses(
        (status = 202, body = JobStatus, description = "queued"),
        (status = 400, body = super::ErrorBody, description = "malformed, algorithm_mismatch, algorithm_asset_invalid, not_an_algorithm, params_mismatch, bad_params, runtime_not_offered, deadline_too_far"),
        (status = 401, body = super::ErrorBody, description = "forged, expired"),
        (status = 402, body = super::ErrorBody, description = "unpaid"),
        (status = 403, body = super::ErrorBody, description = "algorithm_not_allowed, wrong_template, wrong_asset, wrong_consumer"),
        (status = 404, body = super::ErrorBody, description = "compute_unavailable, unknown_agreement, unknown_document, unknown_algorithm"),
        (status = 409, body = super::ErrorBody, description = "job_exists, no_compute_service, algorithm_not_served_here, replayed"),
        (status = 410, body = super::ErrorBody, description = "ended"),
        (status = 413, body = super::ErrorBody, description = "algorithm_too_large"),
        (status = 503, body = super::ErrorBody, description = "unconfirmed, runtime_unavailable, content_unavailable, chain_unreachable")
    )
)]
pub(super) async fn order(State(chains): State<Chains>, body: Bytes) -> Result<Response, ApiError> {
    let body: ComputeBody = serde_json::from_slice(&body)
        .map_err(|error| ApiError::malformed(format!("invalid compute order: {error}")))?;
    let job = parse_job(&body.job)?;
    let signature = parse_signature(&body.signature)?;
    let state = chain_of(&chains, body.chain_id, job.agreementId).await?;
    let compute = compute(state)?;
    let (file, publisher, algorithm_did) = match (&body.algorithm_file, &body.algorithm_did) {
        (Some(encoded), None) => {
            let file = base64::engine::general_purpose::STANDARD
                .decode(encoded.as_bytes())
                .map_err(|_| ApiError::malformed("algorithmFile is base64"))?;
            let max_bytes = compute.config.max_algorithm_kb.saturating_mul(1024);
            if file.len() as u64 > max_bytes {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "algorithm_too_large",
                    format!("an algorithm file may have at most {max_bytes} bytes"),
                ));
            }
            (file, None, None)
        }
        (None, Some(did)) => {
            let did = b256(did, "algorithmDid")?;
            let (file, owner) = algorithm_asset(state, compute, did).await?;
            (file, Some(owner), Some(did))
        }
        _ => {
            return Err(ApiError::malformed(
                "an order carries its algorithm as algorithmFile or algorithmDid (one of them)",
            ));
        }
    };
    // The policy checks read only; the signature, payment and nonce come after, so a refused
    // order spends nothing.
    let recorded = state
        .store
        .lock()
        .await
        .agreement(job.agreementId)
        .map_err(ApiError::internal)?;
    let sha256 = match &recorded {
        Some(agreement) => {
            let policy = policy(state, agreement).await?;
            check_order(compute, &policy, &job, (&file, publisher), &body.params)?
        }
        None => hex::encode(Sha256::digest(&file)),
    };
    if state
        .store
        .lock()
        .await
        .job(job.agreementId)
        .map_err(ApiError::internal)?
        .is_some()
    {
        return Err(job_exists(job.agreementId));
    }
    let agreement = confirmed(state, job.agreementId, |store| {
        verify_compute(store, &state.suite, state.chain_id, &job, &signature, now())
    })
    .await?;
    if recorded.is_none() {
        // Recorded while the request waited: check the policy now (the nonce is spent, but
        // nothing else is written for a refused order).
        let policy = policy(state, &agreement).await?;
        check_order(compute, &policy, &job, (&file, publisher), &body.params)?;
    }
    // The algorithm is kept by its checksum before the job that names it is written.
    let folder = compute.algorithms();
    let stored = async {
        tokio::fs::create_dir_all(&folder).await?;
        let partial = folder.join(format!("{sha256}.part-{}", rand::random::<u64>()));
        tokio::fs::write(&partial, &file).await?;
        tokio::fs::rename(&partial, folder.join(&sha256)).await
    };
    stored.await.map_err(ApiError::internal)?;
    let new = NewJob {
        agreement_id: agreement.id,
        did: agreement.did,
        consumer: agreement.consumer,
        algorithm_sha256: sha256,
        algorithm_did,
        runtime: job.runtime.clone(),
        params: serde_json::to_string(&body.params).map_err(ApiError::internal)?,
    };
    let mut store = state.store.lock().await;
    if !store.order_job(&new, now()).map_err(ApiError::internal)? {
        return Err(job_exists(agreement.id));
    }
    let queued = store
        .job(agreement.id)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::internal("the job just written is gone"))?;
    drop(store);
    state.wake_runner.notify_one();
    tracing::info!(agreement = %agreement.id, runtime = %queued.runtime, "compute job queued");
    metrics::counter!("keeper_compute_jobs_total", "chain" => state.chain_id.to_string())
        .increment(1);
    Ok((StatusCode::ACCEPTED, Json(JobStatus::of(&queued))).into_response())
}

fn job_exists(id: B256) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "job_exists",
        format!("agreement {id} has its job already: one job per compute agreement"),
    )
}

async fn job_of(state: &AppState, id: B256) -> Result<Job, ApiError> {
    state
        .store
        .lock()
        .await
        .job(id)
        .map_err(ApiError::internal)?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_job",
                format!("no job was ordered for agreement {id}"),
            )
        })
}

/// The phase, outcome and result of the consumer's job (a signed request, command `status`).
#[utoipa::path(
    post,
    path = "/v1/compute/status",
    request_body = super::AccessBody,
    responses(
        (status = 200, body = JobStatus),
        (status = 400, body = super::ErrorBody, description = "malformed, wrong_command"),
        (status = 401, body = super::ErrorBody, description = "forged, expired"),
        (status = 403, body = super::ErrorBody, description = "wrong_template, wrong_asset, wrong_consumer"),
        (status = 404, body = super::ErrorBody, description = "compute_unavailable, unknown_agreement, unknown_job"),
        (status = 409, body = super::ErrorBody, description = "replayed")
    )
)]
pub(super) async fn status(
    State(chains): State<Chains>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (state, agreement) = signed_request(&chains, &body, commands::STATUS).await?;
    compute(state)?;
    let job = job_of(state, agreement.id).await?;
    let mut status = JobStatus::of(&job);
    let federated = compute(state)?
        .config
        .runtime(&job.runtime)
        .is_some_and(|runtime| runtime.flower.is_some());
    if federated && matches!(job.phase, JobPhase::Configuring | JobPhase::Running) {
        let compute = compute(state)?;
        let run = RunId {
            chain_id: state.chain_id,
            agreement: job.agreement_id,
            run: job.runs.max(1),
        };
        status.supernode_key = federated::public_key(&compute.workspace(state.chain_id, &run));
    }
    Ok(Json(status).into_response())
}

/// The logs of the consumer's job so far (a signed request, command `logs`), when the asset's
/// policy lets the consumer read them.
#[utoipa::path(
    post,
    path = "/v1/compute/logs",
    request_body = super::AccessBody,
    responses(
        (status = 200, description = "the logs", content_type = "text/plain"),
        (status = 403, body = super::ErrorBody, description = "logs_private, wrong_consumer"),
        (status = 404, body = super::ErrorBody, description = "compute_unavailable, unknown_job, no_logs")
    )
)]
pub(super) async fn logs(State(chains): State<Chains>, body: Bytes) -> Result<Response, ApiError> {
    let (state, agreement) = signed_request(&chains, &body, commands::LOGS).await?;
    let compute = compute(state)?;
    let job = job_of(state, agreement.id).await?;
    if policy(state, &agreement).await?.logs == LogVisibility::Private {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "logs_private",
            "the asset's compute policy keeps job logs private (they could leak the data)",
        ));
    }
    let run = RunId {
        chain_id: state.chain_id,
        agreement: job.agreement_id,
        run: job.runs.max(1),
    };
    let live = match compute.backend.status(&run).await {
        RunState::Running => compute.backend.logs(&run).await.ok(),
        _ => None,
    };
    let text = match live {
        Some(text) => text,
        None => tokio::fs::read(Runner::kept_log(compute, state.chain_id, job.agreement_id))
            .await
            .map_err(|_| {
                ApiError::new(StatusCode::NOT_FOUND, "no_logs", "the job has no logs yet")
            })?,
    };
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

/// Stops the consumer's job (a signed request, command `stop`): a queued job never runs, a
/// running one gets SIGTERM, then SIGKILL after the grace. It ends `stopped`.
#[utoipa::path(
    post,
    path = "/v1/compute/stop",
    request_body = super::AccessBody,
    responses(
        (status = 202, body = JobStatus, description = "the stop is asked"),
        (status = 403, body = super::ErrorBody, description = "wrong_consumer"),
        (status = 404, body = super::ErrorBody, description = "compute_unavailable, unknown_job"),
        (status = 409, body = super::ErrorBody, description = "job_ended, replayed")
    )
)]
pub(super) async fn stop(State(chains): State<Chains>, body: Bytes) -> Result<Response, ApiError> {
    let (state, agreement) = signed_request(&chains, &body, commands::STOP).await?;
    compute(state)?;
    let job = job_of(state, agreement.id).await?;
    if job.phase.is_final() || matches!(job.phase, JobPhase::Publishing | JobPhase::Settling) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "job_ended",
            format!("the job is {} already", job.phase.as_str()),
        ));
    }
    let mut store = state.store.lock().await;
    store
        .request_job_stop(agreement.id)
        .map_err(ApiError::internal)?;
    let job = store
        .job(agreement.id)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::internal("the job is gone"))?;
    drop(store);
    state.wake_runner.notify_one();
    Ok((StatusCode::ACCEPTED, Json(JobStatus::of(&job))).into_response())
}

/// `?file=N`: which file of a result.
#[derive(Debug, Deserialize)]
pub(super) struct FileQuery {
    file: Option<usize>,
}

/// Streams file `file` (default 0) of the result of the consumer's job, once it is settled (a
/// signed request, command `result`; `Range: bytes=START-[END]` resumes). Only the consumer who
/// bought the job gets it, and only until the policy's retention ends.
#[utoipa::path(
    post,
    path = "/v1/compute/result",
    request_body = super::AccessBody,
    params(("file" = Option<usize>, Query, description = "index of the file in the result's document")),
    responses(
        (status = 200, description = "the file", content_type = "application/octet-stream"),
        (status = 206, description = "the requested range of the file"),
        (status = 403, body = super::ErrorBody, description = "wrong_consumer, wrong_template"),
        (status = 404, body = super::ErrorBody, description = "compute_unavailable, unknown_job, unknown_file"),
        (status = 409, body = super::ErrorBody, description = "result_not_ready, replayed"),
        (status = 410, body = super::ErrorBody, description = "result_expired, ended"),
        (status = 416, body = super::ErrorBody, description = "invalid_range"),
        (status = 429, body = super::ErrorBody, description = "too_many_downloads"),
        (status = 503, body = super::ErrorBody, description = "content_unavailable")
    )
)]
pub(super) async fn result(
    State(chains): State<Chains>,
    Query(query): Query<FileQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    observed("result", serve_result(&chains, query, &headers, &body)).await
}

async fn serve_result(
    chains: &Chains,
    query: FileQuery,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let (state, agreement) = signed_request(chains, body, commands::RESULT).await?;
    compute(state)?;
    let job = job_of(state, agreement.id).await?;
    if job.phase != JobPhase::Done {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "result_not_ready",
            format!(
                "the job is {}: its result is served once registered and settled",
                job.phase.as_str()
            ),
        ));
    }
    let stored: StoredResult = job
        .result
        .as_deref()
        .and_then(|json| serde_json::from_str(json).ok())
        .ok_or_else(|| ApiError::internal("a done job without its result"))?;
    if stored.expires_at <= now() {
        return Err(ApiError::new(
            StatusCode::GONE,
            "result_expired",
            format!(
                "the result was kept until {} (unix time)",
                stored.expires_at
            ),
        ));
    }
    let bytes = stored_document(state, stored.checksum).await?;
    let document = metadata::parse(&bytes).map_err(ApiError::internal)?;
    let index = query.file.unwrap_or(0);
    let file = document.files.get(index).cloned().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_file",
            format!(
                "the result has {} file(s); there is no file {index}",
                document.files.len()
            ),
        )
    })?;
    let source = check_file(state, &file).await.map_err(|reason| {
        tracing::error!(%reason, "result unavailable");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "content_unavailable",
            "the provider cannot serve this result right now",
        )
    })?;
    deliver(
        state,
        agreement.consumer,
        Servable::new(file, source, stored.expires_at),
        headers,
    )
    .await
}
