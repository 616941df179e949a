//! The consumer's side of federated learning (see `docs/federated.md`). The consumer buys
//! federated compute on k assets held by k providers ([`market::buy_many`]), runs the aggregator
//! (a Flower SuperLink and its ServerApp) itself, and orders on each agreement a job that joins
//! it ([`order`]); each keeper shows the key of its SuperNode ([`supernode_key`]), which the
//! consumer admits at its SuperLink. Once the rounds are served, each keeper publishes its signed
//! round log as the consumer's result and is paid.
//!
//! The consumer then checks every provider's log ([`round_log`]): signed by the provider that
//! fulfilled the agreement, about that agreement and asset, and of one run with the others
//! ([`training`]). It registers the trained model as its own asset ([`register_model`]), derived
//! on chain from the round logs' results (each derived from its provider's asset), with each
//! log's hash in its metadata document.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use alloy::{
    primitives::{Address, B256, hex},
    sol_types::Eip712Domain,
};
use insitu_bindings::rounds::{RoundLogError, SignedRoundLog};
use sha2::{Digest, Sha256};

use crate::{
    agreement,
    compute::{self, Algorithm, JobStatus, Order},
    market::{self, Derivation, KeeperClient, MarketError, Published},
    metadata::{self, MetadataError, Training, TrainingMember},
    suite::Suite,
    tx::{Progress, Sender},
};

/// Most providers in one training (the metadata schema's bound on members).
pub const MAX_MEMBERS: usize = 16;
/// The framework a [`Training`] names.
pub const FRAMEWORK: &str = "flower";
/// Largest round log a consumer reads (a keeper's record is at most 4 MiB; its log is smaller).
pub const MAX_ROUND_LOG_BYTES: u64 = 8 * 1024 * 1024;

/// Why a federated step failed.
#[derive(Debug, thiserror::Error)]
pub enum FederatedError {
    /// A market or keeper call failed.
    #[error(transparent)]
    Market(#[from] MarketError),
    /// The inputs cannot make a training: nothing was sent.
    #[error("{0}")]
    Invalid(String),
    /// A job ended, or did not get where it should, in time.
    #[error("the job of agreement {agreement}: {reason}")]
    Job {
        /// The agreement.
        agreement: B256,
        /// What happened.
        reason: String,
    },
    /// A round log's signature does not hold.
    #[error("the round log of agreement {agreement}: {source}")]
    RoundLog {
        /// The agreement.
        agreement: B256,
        /// Why it was refused.
        #[source]
        source: RoundLogError,
    },
    /// A round log is signed but not about its agreement, or not by its provider.
    #[error("the round log of agreement {agreement} is refused: {reason}")]
    NotItsLog {
        /// The agreement.
        agreement: B256,
        /// What does not match.
        reason: String,
    },
    /// Reading a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Where the providers' SuperNodes reach the consumer's aggregator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregator {
    /// Its SuperLink's Fleet API, `host:port`.
    pub address: String,
    /// The PEM certificate of the authority that signed its TLS certificate.
    pub ca_pem: String,
}

/// The order of a federated job: the app (a Flower FAB) to run in `runtime` (a name with a
/// `flower` section in the keeper's configuration), joining `aggregator` for `rounds` rounds.
pub fn order(app: Vec<u8>, runtime: &str, aggregator: &Aggregator, rounds: u32) -> Order {
    Order {
        algorithm: Algorithm::File(app),
        runtime: runtime.to_owned(),
        params: [
            ("superlink", aggregator.address.clone()),
            ("superlink-ca", aggregator.ca_pem.clone()),
            ("rounds", rounds.to_string()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect(),
    }
}

/// Checks, before anything is bought, that the asset whose metadata is `document` may run
/// `order`: it sells compute, its policy lists the order's runtime, and allows its app (a file,
/// by its SHA-256).
///
/// # Errors
///
/// [`FederatedError::Invalid`] saying what the asset's policy refuses.
pub fn check_order(
    did: B256,
    document: &metadata::MetadataDocument,
    order: &Order,
) -> Result<(), FederatedError> {
    let policy = document
        .service(metadata::ServiceKind::Compute)
        .and_then(|service| service.compute.as_ref())
        .ok_or_else(|| FederatedError::Invalid(format!("asset {did} is not sold for compute")))?;
    if !policy.runtimes.contains(&order.runtime) {
        return Err(FederatedError::Invalid(format!(
            "asset {did} offers the runtimes {:?}, not {}",
            policy.runtimes, order.runtime
        )));
    }
    let sha256 = hex::encode(order.algorithm.sha256());
    if !policy.algorithms.allows(&sha256, None) {
        return Err(FederatedError::Invalid(format!(
            "asset {did} does not allow the app with SHA-256 {sha256}"
        )));
    }
    Ok(())
}

/// The SuperNode key the job of agreement `id` shows once it is configured (OpenSSH format), to
/// admit at the consumer's SuperLink; polled until `wait` has passed.
///
/// # Errors
///
/// [`FederatedError::Job`] if the job ends first or shows no key in time; [`MarketError`] if
/// its keeper cannot be asked.
pub async fn supernode_key(
    suite: &Suite,
    sender: &Sender,
    id: B256,
    wait: Duration,
) -> Result<String, FederatedError> {
    let deadline = Instant::now() + wait;
    loop {
        let status = compute::status(suite, sender, id).await?;
        if let Some(key) = status.supernode_key {
            return Ok(key);
        }
        if status.is_final() {
            return Err(FederatedError::Job {
                agreement: id,
                reason: format!(
                    "it ended {} before its SuperNode started{}",
                    status.phase,
                    status
                        .reason
                        .map(|reason| format!(": {reason}"))
                        .unwrap_or_default()
                ),
            });
        }
        if Instant::now() >= deadline {
            return Err(FederatedError::Job {
                agreement: id,
                reason: format!(
                    "no SuperNode key after {} s (the job is {})",
                    wait.as_secs(),
                    status.phase
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Follows the job of agreement `id` until it ends (or `wait` passes), and requires it done.
///
/// # Errors
///
/// [`FederatedError::Job`] if it fails, stops or is still running at the deadline.
pub async fn wait_done(
    suite: &Suite,
    sender: &Sender,
    id: B256,
    wait: Duration,
) -> Result<JobStatus, FederatedError> {
    let mut seen = |_: &JobStatus| {};
    let status = tokio::time::timeout(
        wait,
        compute::follow(
            suite,
            sender,
            id,
            &[],
            Duration::from_millis(500),
            &mut seen,
        ),
    )
    .await
    .map_err(|_| FederatedError::Job {
        agreement: id,
        reason: format!("not done after {} s", wait.as_secs()),
    })??;
    if status.phase != "done" {
        return Err(FederatedError::Job {
            agreement: id,
            reason: format!(
                "it ended {}{}",
                status.phase,
                status
                    .reason
                    .map(|reason| format!(": {reason}"))
                    .unwrap_or_default()
            ),
        });
    }
    Ok(status)
}

/// One provider's part, checked: its signed round log and what the model's document says of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedPart {
    /// The member of the training, as the model's document lists it.
    pub member: TrainingMember,
    /// The log, as its keeper signed it.
    pub log: SignedRoundLog,
    /// SHA-256 of the app the job ran, lower-case hex (as its keeper reports it).
    pub algorithm_sha256: String,
    /// Where the log was written.
    pub path: PathBuf,
}

/// What a round log must be about: its agreement, that agreement's asset and provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    /// The compute agreement.
    pub agreement: B256,
    /// The agreement's asset.
    pub asset: B256,
    /// The agreement's provider, who must have signed.
    pub provider: Address,
}

/// Checks `signed` in `domain` (the keepers' domain of the chain): signed, in the canonical
/// form, by the expected provider, about the expected agreement and asset.
///
/// # Errors
///
/// [`FederatedError::RoundLog`] for a bad signature; [`FederatedError::NotItsLog`] for a log
/// signed by another account or about another agreement or asset.
pub fn check_round_log(
    signed: &SignedRoundLog,
    expected: &Expected,
    domain: &Eip712Domain,
) -> Result<(), FederatedError> {
    let agreement = expected.agreement;
    let refuse = |reason: String| FederatedError::NotItsLog { agreement, reason };
    let signer = signed
        .verify(domain)
        .map_err(|source| FederatedError::RoundLog { agreement, source })?;
    if signer != expected.provider {
        return Err(refuse(format!(
            "signed by {signer}, not by the agreement's provider {}",
            expected.provider
        )));
    }
    if signed.log.agreementId != agreement {
        return Err(refuse(format!(
            "it is the log of agreement {}",
            signed.log.agreementId
        )));
    }
    if signed.log.did != expected.asset {
        return Err(refuse(format!(
            "it is about asset {}, not the agreement's {}",
            signed.log.did, expected.asset
        )));
    }
    Ok(())
}

/// Downloads the round log of the done job of agreement `id` (the result its keeper registered
/// for the sender, who must be the agreement's consumer) to `out`, and checks it
/// ([`check_round_log`]): signed in the keepers' domain of this chain by the agreement's
/// provider, about this agreement and its asset.
///
/// # Errors
///
/// [`MarketError`] (`result_not_ready` while the job is not done);
/// [`FederatedError::RoundLog`] for a bad signature; [`FederatedError::NotItsLog`] for an
/// agreement that is not the sender's, a log over [`MAX_ROUND_LOG_BYTES`], or a log that is not
/// the agreement's or not its provider's.
pub async fn round_log(
    suite: &Suite,
    sender: &Sender,
    id: B256,
    out: &Path,
) -> Result<ServedPart, FederatedError> {
    let bought = agreement::show(suite, id, None)
        .await
        .map_err(MarketError::from)?;
    let refuse = |reason: String| FederatedError::NotItsLog {
        agreement: id,
        reason,
    };
    if bought.consumer != sender.address() {
        return Err(refuse(format!(
            "the agreement is {}'s, not {}'s",
            bought.consumer,
            sender.address()
        )));
    }
    let status = compute::status(suite, sender, id).await?;
    let mut ignore = |_| {};
    let downloaded = compute::download_result(suite, sender, id, 0, out, &mut ignore).await?;
    if downloaded.bytes > MAX_ROUND_LOG_BYTES {
        return Err(refuse(format!(
            "the result holds {} bytes, more than a round log's {MAX_ROUND_LOG_BYTES}",
            downloaded.bytes
        )));
    }
    let bytes = std::fs::read(out).map_err(|source| FederatedError::Io {
        path: out.to_owned(),
        source,
    })?;
    let signed: SignedRoundLog = serde_json::from_slice(&bytes)
        .map_err(|error| refuse(format!("the result is not a signed round log ({error})")))?;
    let domain = insitu_bindings::requests::domain(
        suite.connection.chain_id,
        suite.addresses.compute_execution,
    );
    let expected = Expected {
        agreement: id,
        asset: bought.did,
        provider: bought.terms.provider,
    };
    check_round_log(&signed, &expected, &domain)?;
    let rounds = u32::try_from(signed.log.rounds.len())
        .map_err(|_| refuse("more rounds than a u32 counts".to_owned()))?;
    let samples = signed
        .log
        .rounds
        .iter()
        .fold(0_u64, |sum, round| sum.saturating_add(round.samples));
    Ok(ServedPart {
        member: TrainingMember {
            agreement: id,
            asset: bought.did,
            provider: bought.terms.provider,
            result: compute::result_did(id, sender.address(), bought.terms.provider),
            round_log: signed.hash(&domain),
            rounds,
            samples,
        },
        log: signed,
        algorithm_sha256: status.algorithm_sha256,
        path: out.to_owned(),
    })
}

/// The training the checked `parts` make: one per agreement, every log of the same run, every
/// job with the app the consumer ordered (`app_sha256`, lower-case hex).
///
/// # Errors
///
/// [`FederatedError::Invalid`] for no part, too many, an agreement twice, logs of different runs
/// or a job that ran another app.
pub fn training(parts: &[ServedPart], app_sha256: &str) -> Result<Training, FederatedError> {
    let first = parts
        .first()
        .ok_or_else(|| FederatedError::Invalid("a training needs at least one provider".into()))?;
    if parts.len() > MAX_MEMBERS {
        return Err(FederatedError::Invalid(format!(
            "{} providers: a training lists at most {MAX_MEMBERS}",
            parts.len()
        )));
    }
    let mut agreements = HashSet::new();
    for part in parts {
        if !agreements.insert(part.member.agreement) {
            return Err(FederatedError::Invalid(format!(
                "agreement {} is given twice",
                part.member.agreement
            )));
        }
        if part.log.log.run != first.log.log.run {
            return Err(FederatedError::Invalid(format!(
                "agreement {} served run {}, agreement {} run {}: one model comes from one run",
                first.member.agreement, first.log.log.run, part.member.agreement, part.log.log.run
            )));
        }
        if part.algorithm_sha256 != app_sha256 {
            return Err(FederatedError::Invalid(format!(
                "agreement {} ran the app {}, not the app {app_sha256}",
                part.member.agreement, part.algorithm_sha256
            )));
        }
    }
    Ok(Training {
        framework: FRAMEWORK.to_owned(),
        activity: metadata::training_activity(agreements),
        run: first.log.log.run,
        algorithm_sha256: app_sha256.to_owned(),
        members: parts.iter().map(|part| part.member.clone()).collect(),
    })
}

/// The trained model's file and how its document names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    /// The file, read here for its size and SHA-256.
    pub path: PathBuf,
    /// Where the keeper that will serve it reads it (`file://`, `https://` or `s3://`); sealed
    /// to that keeper when published.
    pub location: String,
    /// Its MIME type.
    pub content_type: String,
    /// The asset's title.
    pub name: String,
    /// What the model is.
    pub description: String,
    /// Its licence.
    pub license: String,
}

/// The model's metadata document, as [`market::publish`] takes it (the location in clear): a
/// `Dataset` of one file, sold with no service, owned by `owner`, with `training`.
///
/// # Errors
///
/// [`FederatedError::Io`] if the model cannot be read; [`MarketError::Metadata`] (every
/// offending field) if the document would not be valid.
pub fn model_document(
    model: &Model,
    owner: alloy::primitives::Address,
    training: &Training,
) -> Result<Vec<u8>, FederatedError> {
    let io = |source| FederatedError::Io {
        path: model.path.clone(),
        source,
    };
    let bytes = std::fs::read(&model.path).map_err(io)?;
    let name = model
        .path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let document = serde_json::json!({
        "@context": "https://schema.org",
        "@type": "Dataset",
        "schemaVersion": metadata::SCHEMA_VERSION,
        "name": model.name,
        "description": model.description,
        "author": owner.to_string(),
        "license": model.license,
        "keywords": ["federated", "model"],
        "files": [{
            "name": name,
            "contentType": model.content_type,
            "contentSize": bytes.len(),
            "sha256": hex::encode(Sha256::digest(&bytes)),
            "location": model.location,
        }],
        "services": [],
        "training": training,
    });
    let draft = serde_json::to_vec_pretty(&document)
        .map_err(|error| MarketError::from(MetadataError::NotJson(error.to_string())))?;
    // The document is checked with a placeholder location: the real one is sealed to the
    // keeper when published.
    let mut sealed_like = document;
    sealed_like["files"][0]["location"] = serde_json::Value::String("0x00".to_owned());
    let check = serde_json::to_vec(&sealed_like)
        .map_err(|error| MarketError::from(MetadataError::NotJson(error.to_string())))?;
    metadata::parse(&check).map_err(MarketError::from)?;
    Ok(draft)
}

/// Publishes the model at `keeper` (the sender must be one of its publishers, and the keeper able
/// to read the model's location) and registers it on chain as the sender's asset, served by that
/// keeper, generated by the training's activity and derived from each member's round-log result,
/// which the sender owns. Each member's result must be the id the registry gives its agreement's
/// result for the sender, and the sender must be able to serve it; all is checked before
/// anything is stored or sent.
///
/// # Errors
///
/// [`FederatedError`]: [`FederatedError::Invalid`] for a training that does not hold together.
pub async fn register_model(
    suite: &Suite,
    sender: &Sender,
    keeper: &KeeperClient,
    model: &Model,
    training: &Training,
    seed: B256,
    progress: &dyn Progress,
) -> Result<Published, FederatedError> {
    let expected =
        metadata::training_activity(training.members.iter().map(|member| member.agreement));
    if training.activity != expected {
        return Err(FederatedError::Invalid(format!(
            "the training's activity is {}, its members make {expected}",
            training.activity
        )));
    }
    for member in &training.members {
        let result = compute::result_did(member.agreement, sender.address(), member.provider);
        if member.result != result {
            return Err(FederatedError::Invalid(format!(
                "the result of agreement {} for {} is {result}, not {}",
                member.agreement,
                sender.address(),
                member.result
            )));
        }
    }
    let draft = model_document(model, sender.address(), training)?;
    let derivation = Derivation {
        sources: training
            .members
            .iter()
            .map(|member| member.result)
            .collect(),
        activity: training.activity,
    };
    Ok(market::publish_derived(suite, sender, keeper, &draft, seed, &derivation, progress).await?)
}
