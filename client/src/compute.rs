//! The consumer's side of compute in situ: once a compute agreement is bought (see
//! [`market::buy`](crate::market::buy) with the compute service), order its job with an algorithm
//! file, a runtime and parameters, follow its phases, read its logs (when the asset's policy lets
//! the consumer) and stop it. Every call is a request signed by the consumer (EIP-712), checked by
//! the keeper against the chain.

use std::collections::BTreeMap;

use alloy::{
    primitives::{Address, B256, U256, hex},
    signers::SignerSync,
};
use base64::Engine;
use insitu_bindings::requests::{self, ComputeJob, commands};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{
    agreement,
    market::{self, KeeperClient, MarketError, REQUEST_VALIDITY, RETRY_FOR},
    suite::Suite,
    tx::Sender,
};

/// The id the asset registry gives the result of compute agreement `agreement` owned by `owner`
/// and registered by `agent` (the keeper that ran the job):
/// `keccak256(abi.encode(keccak256("insitu.result"), agreement, owner, agent))`.
pub fn result_did(agreement: B256, owner: Address, agent: Address) -> B256 {
    use alloy::sol_types::SolValue;
    let tag = alloy::primitives::keccak256("insitu.result");
    alloy::primitives::keccak256((tag, agreement, owner, agent).abi_encode())
}

/// Where a job's algorithm comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Algorithm {
    /// A file's bytes, sent with the order.
    File(Vec<u8>),
    /// An algorithm published as an asset at the data's keeper: its id, and the SHA-256 of its
    /// one file (from its metadata document: see [`algorithm_asset`]).
    Asset {
        /// The asset.
        did: B256,
        /// Its file's SHA-256.
        sha256: B256,
    },
}

impl Algorithm {
    /// The SHA-256 the order signs.
    pub fn sha256(&self) -> B256 {
        match self {
            Self::File(bytes) => B256::from_slice(&Sha256::digest(bytes)),
            Self::Asset { sha256, .. } => *sha256,
        }
    }
}

/// The algorithm published as asset `did` (a `SoftwareSourceCode` document with one file): its
/// document is fetched (checked against the chain) for the SHA-256 of its file.
///
/// # Errors
///
/// [`MarketError`]: an unknown asset, a document that does not match the chain, or one that has
/// not exactly one file.
pub async fn algorithm_asset(suite: &Suite, did: B256) -> Result<Algorithm, MarketError> {
    let (document, _, _) = market::fetch_document(suite, did).await?;
    if document.kind != "SoftwareSourceCode" {
        return Err(MarketError::BadAnswer(format!(
            "asset {did} is a {}: an algorithm asset is SoftwareSourceCode",
            document.kind
        )));
    }
    let [file] = document.files.as_slice() else {
        return Err(MarketError::BadAnswer(format!(
            "asset {did} has {} files: an algorithm asset has one",
            document.files.len()
        )));
    };
    let sha256 = file
        .sha256
        .parse::<B256>()
        .or_else(|_| format!("0x{}", file.sha256).parse())
        .map_err(|_| MarketError::BadAnswer(format!("asset {did}: a SHA-256 that is not hex")))?;
    Ok(Algorithm::Asset { did, sha256 })
}

/// What a job runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// The algorithm.
    pub algorithm: Algorithm,
    /// The runtime (a name the asset's compute policy lists, e.g. `python3`).
    pub runtime: String,
    /// Its parameters (the algorithm reads them as JSON from `$INSITU_PARAMS`).
    pub params: BTreeMap<String, String>,
}

/// Where a job stands, as its keeper reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How its run ended (the sandbox's outcome).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<serde_json::Value>,
    /// Its stored result (id, document, files), once published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// Whether a stop was asked.
    pub stop_requested: bool,
    /// A federated job's SuperNode key for its current run (OpenSSH format), to register with
    /// the consumer's SuperLink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supernode_key: Option<String>,
}

impl JobStatus {
    /// Whether the job will not change any more (`done`, `failed` or `stopped`).
    pub fn is_final(&self) -> bool {
        matches!(self.phase.as_str(), "done" | "failed" | "stopped")
    }
}

/// The body of a compute order for agreement `id` of asset `did` (served by the compute
/// condition `service` on chain `chain_id`), valid until `deadline`, signed by `consumer`.
///
/// # Errors
///
/// [`MarketError::BadAnswer`] if signing fails.
pub fn compute_order(
    consumer: &alloy::signers::local::PrivateKeySigner,
    chain_id: u64,
    service: Address,
    did: B256,
    id: B256,
    order: &Order,
    deadline: u64,
) -> Result<serde_json::Value, MarketError> {
    let job = ComputeJob {
        agreementId: id,
        did,
        consumer: consumer.address(),
        algorithm: order.algorithm.sha256(),
        runtime: order.runtime.clone(),
        params: requests::params_hash(&order.params),
        nonce: U256::from_be_bytes(rand::random::<[u8; 32]>()),
        deadline,
    };
    let domain = requests::domain(chain_id, service);
    let signature = consumer
        .sign_hash_sync(&requests::compute_signing_hash(&job, &domain))
        .map_err(|error| MarketError::BadAnswer(error.to_string()))?;
    let mut body = serde_json::json!({
        "chainId": chain_id,
        "job": {
            "agreementId": job.agreementId.to_string(),
            "did": job.did.to_string(),
            "consumer": job.consumer.to_string(),
            "algorithm": job.algorithm.to_string(),
            "runtime": job.runtime,
            "params": job.params.to_string(),
            "nonce": job.nonce.to_string(),
            "deadline": job.deadline,
        },
        "signature": format!("0x{}", hex::encode(signature.as_bytes())),
        "params": order.params,
    });
    match &order.algorithm {
        Algorithm::File(bytes) => {
            body["algorithmFile"] = base64::engine::general_purpose::STANDARD
                .encode(bytes)
                .into();
        }
        Algorithm::Asset { did, .. } => body["algorithmDid"] = did.to_string().into(),
    }
    Ok(body)
}

/// The keeper, the compute condition and the asset of agreement `id`, and the chain's time.
async fn target(
    suite: &Suite,
    id: B256,
) -> Result<(KeeperClient, Address, B256, u64), MarketError> {
    let agreement = agreement::show(suite, id, None).await?;
    let (_, keeper, _) = market::fetch_document(suite, agreement.did).await?;
    let (service, now) = market::service_and_now(suite, &agreement).await?;
    Ok((keeper, service, agreement.did, now))
}

/// Posts `body` (made afresh by `make` on each try) to `route`, retrying while the keeper says
/// the purchase is not confirmed yet.
async fn post(
    keeper: &KeeperClient,
    route: &str,
    make: impl Fn() -> Result<serde_json::Value, MarketError>,
) -> Result<reqwest::Response, MarketError> {
    let retry_until = std::time::Instant::now() + RETRY_FOR;
    loop {
        let sent = keeper
            .http
            .post(format!("{}{route}", keeper.base()))
            .json(&make()?)
            .send()
            .await
            .map_err(|error| keeper.unreachable(&error))?;
        match keeper.check(sent).await {
            Err(MarketError::Refused { code, .. })
                if code == "unconfirmed" && std::time::Instant::now() < retry_until =>
            {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            other => return other,
        }
    }
}

async fn status_of(
    keeper: &KeeperClient,
    response: reqwest::Response,
) -> Result<JobStatus, MarketError> {
    response.json().await.map_err(|error| {
        MarketError::BadAnswer(format!("{}: the job's status: {error}", keeper.base()))
    })
}

/// Orders the job of compute agreement `id` (bought by `sender`): the keeper checks the order
/// against the asset's policy and the chain, and queues it.
///
/// # Errors
///
/// [`MarketError`]: the keeper's refusal with its code, or an unreachable keeper.
pub async fn submit(
    suite: &Suite,
    sender: &Sender,
    id: B256,
    order: &Order,
) -> Result<JobStatus, MarketError> {
    let (keeper, service, did, now) = target(suite, id).await?;
    let chain_id = suite.connection.chain_id;
    let response = post(&keeper, "/v1/compute", || {
        compute_order(
            sender.signer(),
            chain_id,
            service,
            did,
            id,
            order,
            now + REQUEST_VALIDITY,
        )
    })
    .await?;
    status_of(&keeper, response).await
}

async fn signed(
    suite: &Suite,
    sender: &Sender,
    id: B256,
    command: &'static str,
) -> Result<(KeeperClient, reqwest::Response), MarketError> {
    let (keeper, service, did, now) = target(suite, id).await?;
    let chain_id = suite.connection.chain_id;
    let route = format!("/v1/compute/{command}");
    let response = post(&keeper, &route, || {
        market::service_request(
            sender.signer(),
            chain_id,
            service,
            did,
            id,
            command,
            now + REQUEST_VALIDITY,
        )
    })
    .await?;
    Ok((keeper, response))
}

/// Where the job of agreement `id` stands.
///
/// # Errors
///
/// [`MarketError`].
pub async fn status(suite: &Suite, sender: &Sender, id: B256) -> Result<JobStatus, MarketError> {
    let (keeper, response) = signed(suite, sender, id, commands::STATUS).await?;
    status_of(&keeper, response).await
}

/// The logs of the job of agreement `id` so far.
///
/// # Errors
///
/// [`MarketError`]: `logs_private` when the asset's policy keeps them private.
pub async fn logs(suite: &Suite, sender: &Sender, id: B256) -> Result<String, MarketError> {
    let (keeper, response) = signed(suite, sender, id, commands::LOGS).await?;
    response
        .text()
        .await
        .map_err(|error| keeper.unreachable(&error))
}

/// Stops the job of agreement `id`.
///
/// # Errors
///
/// [`MarketError`]: `job_ended` when it has ended already.
pub async fn stop(suite: &Suite, sender: &Sender, id: B256) -> Result<JobStatus, MarketError> {
    let (keeper, response) = signed(suite, sender, id, commands::STOP).await?;
    status_of(&keeper, response).await
}

/// Follows the job of agreement `id` until it reaches a phase in `until` or a final one, polling
/// every `every`; `on_phase` is told each new phase.
///
/// # Errors
///
/// [`MarketError`].
pub async fn follow(
    suite: &Suite,
    sender: &Sender,
    id: B256,
    until: &[&str],
    every: std::time::Duration,
    on_phase: &mut (dyn FnMut(&JobStatus) + Send),
) -> Result<JobStatus, MarketError> {
    let mut last = String::new();
    loop {
        let status = status(suite, sender, id).await?;
        if status.phase != last {
            on_phase(&status);
            last.clone_from(&status.phase);
        }
        if status.is_final() || until.contains(&status.phase.as_str()) {
            return Ok(status);
        }
        tokio::time::sleep(every).await;
    }
}

/// Downloads file `file` of the result of the job of agreement `id` to `out`, once the job is
/// done (the result registered on chain as `sender`'s asset and the payment released). The
/// result's document is fetched from its registration and checked against the checksum on
/// chain; the file against the document's SHA-256 (see [`market::download`]).
///
/// # Errors
///
/// [`MarketError`]: `result_not_ready` while the job is not done.
pub async fn download_result(
    suite: &Suite,
    sender: &Sender,
    id: B256,
    file: usize,
    out: &std::path::Path,
    on_bytes: &mut (dyn FnMut(market::DownloadEvent) + Send),
) -> Result<market::Downloaded, MarketError> {
    let job = status(suite, sender, id).await?;
    if job.phase != "done" {
        return Err(MarketError::Refused {
            status: 409,
            code: "result_not_ready".to_owned(),
            message: format!("the job is {}: its result comes once it is done", job.phase),
            fields: Vec::new(),
        });
    }
    let did: B256 = job
        .result
        .as_ref()
        .and_then(|result| result["did"].as_str())
        .and_then(|did| did.parse().ok())
        .ok_or_else(|| MarketError::BadAnswer("a done job without its result's id".to_owned()))?;
    let agreement = agreement::show(suite, id, None).await?;
    // The result must be this agreement's, owned by the consumer, registered by its provider:
    // its id says all three.
    let provider = agreement.terms.provider;
    if did != result_did(id, sender.signer().address(), provider) {
        return Err(MarketError::BadAnswer(format!(
            "the keeper's result {did} is not the result of agreement {id} for this account"
        )));
    }
    let (document, keeper, _) = market::fetch_document(suite, did).await?;
    let from = market::Source {
        document: &document,
        keeper: &keeper,
        route: "/v1/compute/result",
        command: commands::RESULT,
    };
    market::fetch_file(suite, sender, &agreement, from, file, out, on_bytes).await
}
