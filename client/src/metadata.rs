//! Asset metadata documents: the versioned JSON schema they follow, their validation with one
//! error per offending field (before any gas is spent), their on-chain checksum, and the sealing
//! of file locations to the keeper's key.
//!
//! A document is a schema.org `Dataset` ([`SCHEMA`], `schemas/metadata-v1.json`) listing the files
//! the provider's keeper serves and the services it sells (access, compute) with their prices and
//! time outs. The document's bytes are served by the keeper and their keccak256 is registered on
//! chain, so a consumer can check what it pays for. File locations are encrypted (ECIES over
//! secp256k1, AES-256-GCM) to the keeper's public key on the publisher's machine: only the keeper
//! can read where the data is.

use std::collections::{BTreeMap, HashSet};

use alloy::{
    primitives::{Address, B256, U256, hex, keccak256},
    signers::local::PrivateKeySigner,
};
use serde::{Deserialize, Serialize};

/// The JSON schema of version 1 documents.
pub const SCHEMA: &str = include_str!("../../schemas/metadata-v1.json");
/// The `schemaVersion` of version 1 documents.
pub const SCHEMA_VERSION: &str = "insitu-metadata/1";

/// A field that does not meet the schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// JSON pointer to the field (`/services/0/price/1/amount`); empty for the document itself.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = if self.path.is_empty() {
            "/"
        } else {
            &self.path
        };
        write!(f, "{path}: {}", self.message)
    }
}

/// Why a document is refused.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// Not JSON at all.
    #[error("not a JSON document: {0}")]
    NotJson(String),
    /// Fields that do not meet the schema, all of them.
    #[error("the metadata document is invalid:\n{}", list(.0))]
    Invalid(Vec<FieldError>),
}

fn list(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|error| format!("  {error}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A service the asset is sold with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceKind {
    /// Download the files.
    Access,
    /// Run an algorithm where the data is.
    Compute,
}

/// A metadata document (version 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetadataDocument {
    /// `https://schema.org`.
    #[serde(rename = "@context")]
    pub context: String,
    /// `Dataset`, or `SoftwareSourceCode` for an algorithm compute jobs may run.
    #[serde(rename = "@type")]
    pub kind: String,
    /// [`SCHEMA_VERSION`].
    pub schema_version: String,
    /// Title.
    pub name: String,
    /// What the data is.
    pub description: String,
    /// Who made it.
    pub author: String,
    /// Its licence (an SPDX identifier or a URL).
    pub license: String,
    /// Tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
    /// `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_created: Option<String>,
    /// The files.
    pub files: Vec<FileEntry>,
    /// The services sold (none for a compute result, which has its provenance instead).
    pub services: Vec<ServiceEntry>,
    /// How a compute result was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
    /// How a federated model was trained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<Training>,
}

/// A file of the asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileEntry {
    /// File name, as the consumer receives it.
    pub name: String,
    /// MIME type.
    pub content_type: String,
    /// Size in bytes.
    pub content_size: u64,
    /// SHA-256 of the content, lower-case hex.
    pub sha256: String,
    /// The location sealed to the keeper ([`seal_location`]), `0x` hex.
    pub location: String,
}

/// A service and its terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceEntry {
    /// Access or compute.
    #[serde(rename = "type")]
    pub kind: ServiceKind,
    /// The payment token (zero address: ETH).
    pub token: Address,
    /// Who is paid how much (in the token's smallest unit, decimal).
    pub price: Vec<PriceEntry>,
    /// Bounds of the service time out a buyer may choose, in seconds.
    pub timeout: Timeout,
    /// Seconds after the purchase during which downloads may be repeated (access).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_window: Option<u64>,
    /// What may run and with what limits (compute services only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute: Option<ComputePolicy>,
}

/// How an asset may be computed on: the provider's terms, committed on chain with the document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComputePolicy {
    /// Which algorithms may run.
    pub algorithms: AlgorithmPolicy,
    /// Names of the runtimes offered, as the keeper's configuration defines them.
    pub runtimes: Vec<String>,
    /// What one job may use.
    pub limits: ComputeLimits,
    /// Whether the consumer may read the job's logs.
    pub logs: LogVisibility,
    /// Days a result is kept for its owner.
    pub result_retention_days: u32,
}

/// Which algorithms may run on an asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlgorithmPolicy {
    /// Any algorithm.
    pub any: bool,
    /// Otherwise, those whose SHA-256 (lower-case hex) is listed...
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sha256: Vec<String>,
    /// ...and those published as assets by these accounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub publishers: Vec<Address>,
}

impl AlgorithmPolicy {
    /// Whether the algorithm with SHA-256 `sha256` (lower-case hex) may run, coming from an asset
    /// owned by `publisher` when it does.
    pub fn allows(&self, sha256: &str, publisher: Option<Address>) -> bool {
        self.any
            || self.sha256.iter().any(|listed| listed == sha256)
            || publisher.is_some_and(|owner| self.publishers.contains(&owner))
    }
}

/// Who may read a compute job's logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogVisibility {
    /// The consumer who bought the job.
    Consumer,
    /// Nobody but the provider (logs can leak the data).
    Private,
}

/// What one compute job may use (the sandbox enforces each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComputeLimits {
    /// Wall-clock seconds.
    pub wall_secs: u64,
    /// Memory in MiB (its output and `/tmp` included: at least `outputMb + tmpMb + 16`).
    pub memory_mb: u64,
    /// CPU in percent of one core.
    pub cpu_percent: u32,
    /// Processes and threads at once.
    pub pids: u32,
    /// Output in MiB.
    pub output_mb: u64,
    /// `/tmp` in MiB.
    pub tmp_mb: u64,
    /// Logs kept, in KiB.
    pub log_kb: u64,
}

/// How a compute result was made (in a result's document).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Provenance {
    /// The compute agreement.
    pub was_generated_by: B256,
    /// The assets computed on.
    pub was_derived_from: Vec<B256>,
    /// The algorithm's SHA-256, lower-case hex.
    pub algorithm_sha256: String,
    /// The algorithm's asset, when it ran from one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<B256>,
    /// The runtime it ran in.
    pub runtime: String,
    /// The limits it ran with.
    pub limits: ComputeLimits,
    /// The keeper that ran it.
    pub agent: Address,
}

/// How a model trained across several providers was made (in the model's document, which its
/// owner, the consumer, writes): the run and each provider's part in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Training {
    /// The framework that ran the rounds (`flower`).
    pub framework: String,
    /// The activity registered on chain as the model's `wasGeneratedBy`.
    pub activity: B256,
    /// The framework's run id, the same in every member's round log (in decimal in the
    /// document).
    #[serde(with = "decimal")]
    pub run: u64,
    /// SHA-256 of the app every provider ran, lower-case hex.
    pub algorithm_sha256: String,
    /// Each provider's part.
    pub members: Vec<TrainingMember>,
}

/// A `u64` written as a decimal string (JSON numbers lose precision beyond 2^53).
mod decimal {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&value.to_string())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse()
            .map_err(|_| D::Error::custom(format!("{text:?} is not a 64-bit integer in decimal")))
    }
}

/// One provider's part in a federated training, as its signed round log shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrainingMember {
    /// The compute agreement with the provider.
    pub agreement: B256,
    /// The asset trained on.
    pub asset: B256,
    /// The provider, whose keeper signed the round log.
    pub provider: Address,
    /// The round log's asset (the agreement's compute result, owned by the consumer).
    pub result: B256,
    /// The hash naming the signed round log.
    pub round_log: B256,
    /// Training rounds served.
    pub rounds: u32,
    /// Rows its updates were trained on, summed over its rounds.
    pub samples: u64,
}

/// One receiver's share of a price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceEntry {
    /// Who is paid.
    pub receiver: Address,
    /// How much, decimal.
    pub amount: String,
}

/// Bounds of a service time out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeout {
    /// Shortest, seconds.
    pub min: u32,
    /// Longest, seconds.
    pub max: u32,
}

impl ServiceEntry {
    /// Receivers and amounts, as an offer lists them.
    pub fn receivers_and_amounts(&self) -> (Vec<Address>, Vec<U256>) {
        self.price
            .iter()
            .map(|entry| {
                (
                    entry.receiver,
                    entry.amount.parse::<U256>().unwrap_or_default(),
                )
            })
            .unzip()
    }

    /// The price: the sum of the amounts (the network fee comes on top).
    pub fn total(&self) -> U256 {
        self.receivers_and_amounts()
            .1
            .into_iter()
            .fold(U256::ZERO, |sum, amount| sum.saturating_add(amount))
    }
}

impl MetadataDocument {
    /// The service of `kind`, if the asset is sold with it.
    pub fn service(&self, kind: ServiceKind) -> Option<&ServiceEntry> {
        self.services.iter().find(|service| service.kind == kind)
    }
}

/// The schema, compiled once per process (documents are checked on every access request).
fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let schema: serde_json::Value =
            serde_json::from_str(SCHEMA).expect("the embedded schema is JSON");
        jsonschema::validator_for(&schema).expect("the embedded schema is valid")
    })
}

/// Parses and validates a document: the schema first (every violation, with its field), then what
/// a schema cannot say (time out bounds in order, amounts non-zero and within 256 bits, no zero
/// receiver, file names and service types unique).
///
/// # Errors
///
/// [`MetadataError::NotJson`] or [`MetadataError::Invalid`] with every offending field.
pub fn parse(bytes: &[u8]) -> Result<MetadataDocument, MetadataError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|error| MetadataError::NotJson(error.to_string()))?;
    let mut errors: Vec<FieldError> = validator()
        .iter_errors(&value)
        .map(|error| FieldError {
            path: error.instance_path().to_string(),
            message: error.to_string(),
        })
        .collect();
    if !errors.is_empty() {
        errors.sort_by(|a, b| a.path.cmp(&b.path));
        return Err(MetadataError::Invalid(errors));
    }
    let document: MetadataDocument = serde_json::from_value(value).map_err(|error| {
        MetadataError::Invalid(vec![FieldError {
            path: String::new(),
            message: error.to_string(),
        }])
    })?;
    let mut names = HashSet::new();
    for (index, file) in document.files.iter().enumerate() {
        if !names.insert(&file.name) {
            errors.push(FieldError {
                path: format!("/files/{index}/name"),
                message: format!("the file name {:?} is used twice", file.name),
            });
        }
    }
    let mut kinds = HashSet::new();
    for (index, service) in document.services.iter().enumerate() {
        if !kinds.insert(service.kind) {
            errors.push(FieldError {
                path: format!("/services/{index}/type"),
                message: format!("a second {:?} service", service.kind),
            });
        }
        if service.timeout.min > service.timeout.max {
            errors.push(FieldError {
                path: format!("/services/{index}/timeout"),
                message: format!(
                    "min {} is above max {}",
                    service.timeout.min, service.timeout.max
                ),
            });
        }
        match (service.kind, &service.compute) {
            (ServiceKind::Compute, None) => errors.push(FieldError {
                path: format!("/services/{index}"),
                message: "a compute service needs its `compute` policy".to_owned(),
            }),
            (ServiceKind::Access, Some(_)) => errors.push(FieldError {
                path: format!("/services/{index}/compute"),
                message: "only a compute service has a compute policy".to_owned(),
            }),
            (ServiceKind::Compute, Some(policy)) => {
                if service.access_window.is_some() {
                    errors.push(FieldError {
                        path: format!("/services/{index}/accessWindow"),
                        message: "a compute service has no access window".to_owned(),
                    });
                }
                let algorithms = &policy.algorithms;
                if !algorithms.any
                    && algorithms.sha256.is_empty()
                    && algorithms.publishers.is_empty()
                {
                    errors.push(FieldError {
                        path: format!("/services/{index}/compute/algorithms"),
                        message: "no algorithm may run: set `any`, or list checksums or publishers"
                            .to_owned(),
                    });
                }
                let limits = &policy.limits;
                let room = limits
                    .output_mb
                    .saturating_add(limits.tmp_mb)
                    .saturating_add(16);
                if limits.memory_mb < room {
                    errors.push(FieldError {
                        path: format!("/services/{index}/compute/limits/memoryMb"),
                        message: format!(
                            "the output and /tmp live in memory: memoryMb must be at least {room}"
                        ),
                    });
                }
            }
            (ServiceKind::Access, None) => {}
        }
        for (share, entry) in service.price.iter().enumerate() {
            if entry.receiver.is_zero() {
                errors.push(FieldError {
                    path: format!("/services/{index}/price/{share}/receiver"),
                    message: "the zero address cannot be paid".to_owned(),
                });
            }
            match entry.amount.parse::<U256>() {
                Ok(amount) if amount.is_zero() => errors.push(FieldError {
                    path: format!("/services/{index}/price/{share}/amount"),
                    message: "an amount must not be zero".to_owned(),
                }),
                Ok(_) => {}
                Err(_) => errors.push(FieldError {
                    path: format!("/services/{index}/price/{share}/amount"),
                    message: "not a 256-bit amount".to_owned(),
                }),
            }
        }
    }
    if let Some(training) = &document.training {
        if document.provenance.is_some() {
            errors.push(FieldError {
                path: "/training".to_owned(),
                message:
                    "a document records one job's provenance or a federated training, not both"
                        .to_owned(),
            });
        }
        let mut agreements = HashSet::new();
        for (index, member) in training.members.iter().enumerate() {
            if !agreements.insert(member.agreement) {
                errors.push(FieldError {
                    path: format!("/training/members/{index}/agreement"),
                    message: format!("agreement {} is listed twice", member.agreement),
                });
            }
        }
        let activity = training_activity(training.members.iter().map(|member| member.agreement));
        if training.activity != activity {
            errors.push(FieldError {
                path: "/training/activity".to_owned(),
                message: format!("the members' agreements make the activity {activity}"),
            });
        }
    }
    if errors.is_empty() {
        Ok(document)
    } else {
        Err(MetadataError::Invalid(errors))
    }
}

/// The activity of a federated training over `agreements` (one per provider), registered on chain
/// as its model's `wasGeneratedBy`: keccak256 of the agreement ids, sorted, concatenated. It names
/// the set, whatever order the members are listed in.
pub fn training_activity(agreements: impl IntoIterator<Item = B256>) -> B256 {
    let mut ids: Vec<B256> = agreements.into_iter().collect();
    ids.sort();
    ids.dedup();
    keccak256(ids.iter().flat_map(|id| id.0).collect::<Vec<u8>>())
}

/// The checksum registered on chain for a document's bytes: their keccak256.
pub fn checksum(bytes: &[u8]) -> B256 {
    keccak256(bytes)
}

/// Why a location could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The public key is not a secp256k1 point.
    #[error("invalid keeper public key")]
    InvalidPublicKey,
    /// Not `0x` hex.
    #[error("a sealed location is 0x-prefixed hex")]
    NotHex,
    /// The ciphertext was not made for this key, or was altered.
    #[error("the location cannot be opened with this key (sealed to another keeper, or altered)")]
    WrongKey,
    /// The plaintext is not a URL or a location object.
    #[error("the opened location is neither a URL nor a location object")]
    NotText,
    /// A header the location may not carry.
    #[error("location headers: {0}")]
    Header(String),
}

/// The uncompressed secp256k1 public key (65 bytes) of `key`'s account, which publishers seal
/// locations to (the keeper publishes it).
pub fn public_key(key: &PrivateKeySigner) -> Vec<u8> {
    key.credential()
        .verifying_key()
        .to_encoded_point(false)
        .as_bytes()
        .to_vec()
}

/// Where a file is, as only the keeper reads it: a URL and, for `http(s)://` URLs, the headers
/// the keeper sends with each request for it (an API token, say). Both are sealed together, so a
/// token is as secret as the location. Its `Debug` output shows the URL's scheme and host and the
/// header names, never a path, query or header value.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    /// `file://`, `s3://` or `http(s)://` URL.
    pub url: String,
    /// Request headers, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Scheme and host only: the path, query and user info may hold a token.
        let shown = url::Url::parse(&self.url).map_or_else(
            |_| "<not a URL>".to_owned(),
            |url| {
                format!(
                    "{}://{}/…",
                    url.scheme(),
                    url.host_str().unwrap_or_default()
                )
            },
        );
        f.debug_struct("Location")
            .field("url", &shown)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Headers a location may not set: the keeper sets them itself for each request.
pub const RESERVED_HEADERS: &[&str] = &[
    "connection",
    "content-length",
    "host",
    "if-range",
    "keep-alive",
    "proxy-authorization",
    "range",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Most headers one location may carry.
pub const MAX_HEADERS: usize = 16;

impl Location {
    /// A location without headers.
    pub fn url(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            headers: BTreeMap::new(),
        }
    }

    /// Checks that the headers are valid HTTP headers the keeper may send, on an `http(s)://`
    /// URL only.
    ///
    /// # Errors
    ///
    /// [`SealError::Header`], naming the header.
    pub fn check(&self) -> Result<(), SealError> {
        if self.headers.is_empty() {
            return Ok(());
        }
        let bad = |why: String| Err(SealError::Header(why));
        if !(self.url.starts_with("https://") || self.url.starts_with("http://")) {
            return bad("headers go with http:// and https:// locations only".to_owned());
        }
        if self.headers.len() > MAX_HEADERS {
            return bad(format!("at most {MAX_HEADERS} headers"));
        }
        for (name, value) in &self.headers {
            let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
            if name.is_empty() || !name.chars().all(token) {
                return bad(format!("{name:?} is not a header name"));
            }
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return bad(format!("{name} is set by the keeper"));
            }
            if !value.chars().all(|c| c == '\t' || (' '..='~').contains(&c)) {
                return bad(format!("the value of {name} is not printable ASCII"));
            }
        }
        Ok(())
    }
}

/// Seals `location` to the keeper whose public key is `keeper_public_key` (65 or 33 bytes):
/// ECIES over secp256k1 with AES-256-GCM, `0x` hex. A location without headers seals its bare
/// URL; one with headers, the JSON object `{"url", "headers"}`.
///
/// # Errors
///
/// [`SealError::InvalidPublicKey`], or [`SealError::Header`] from [`Location::check`].
pub fn seal_location(location: &Location, keeper_public_key: &[u8]) -> Result<String, SealError> {
    location.check()?;
    let plain = if location.headers.is_empty() {
        location.url.clone().into_bytes()
    } else {
        serde_json::to_vec(location).map_err(|error| SealError::Header(error.to_string()))?
    };
    let sealed =
        ecies::encrypt(keeper_public_key, &plain).map_err(|_| SealError::InvalidPublicKey)?;
    Ok(format!("0x{}", hex::encode(sealed)))
}

/// Opens a location sealed to `key` by [`seal_location`].
///
/// # Errors
///
/// [`SealError::NotHex`], [`SealError::WrongKey`], [`SealError::NotText`] or
/// [`SealError::Header`].
pub fn open_location(sealed: &str, key: &PrivateKeySigner) -> Result<Location, SealError> {
    let bytes = sealed
        .strip_prefix("0x")
        .and_then(|text| hex::decode(text).ok())
        .ok_or(SealError::NotHex)?;
    let plain =
        ecies::decrypt(key.to_bytes().as_slice(), &bytes).map_err(|_| SealError::WrongKey)?;
    let text = String::from_utf8(plain).map_err(|_| SealError::NotText)?;
    let location = if text.starts_with('{') {
        serde_json::from_str(&text).map_err(|_| SealError::NotText)?
    } else {
        Location::url(text)
    };
    location.check()?;
    Ok(location)
}
