//! The fetcher: gets each registered metadata document through the outbound guard, checks it
//! against the checksum on chain, validates it against the schema version it names, and records
//! the outcome. Failures are retried with exponential backoff; a document that hashes to another
//! checksum is flagged (and looked at again later, in case the server is fixed), never indexed.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy::primitives::keccak256;
use futures_util::StreamExt;
use insitu_client::metadata::{self, MetadataError, SCHEMA_VERSION};
use insitu_outbound::{GuardedClient, Policy};
use url::Url;

use crate::store::{Fetch, Fetched, Store, StoreError};

/// Largest document fetched, by default.
pub const DEFAULT_MAX_DOCUMENT_BYTES: usize = 256 * 1024;
/// Wait before the first retry; doubled per attempt.
pub const FIRST_RETRY: Duration = Duration::from_secs(10);
/// Longest wait between retries.
pub const LAST_RETRY: Duration = Duration::from_secs(3_600);
/// Documents fetched at once.
pub const BATCH: u32 = 32;

/// Fetches documents.
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: GuardedClient,
    max_bytes: usize,
    timeout: Duration,
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or_default()
}

/// When to try again after `attempts` failed attempts (the one just made included).
pub fn retry_at(now: u64, attempts: u32) -> u64 {
    let wait = FIRST_RETRY
        .saturating_mul(1 << attempts.saturating_sub(1).min(16))
        .min(LAST_RETRY);
    now + wait.as_secs()
}

impl Fetcher {
    /// A fetcher that reaches what `policy` allows, reading at most `max_bytes` per document.
    ///
    /// # Errors
    ///
    /// The HTTP client could not be set up.
    pub fn new(policy: &Policy, max_bytes: usize) -> reqwest::Result<Self> {
        Ok(Self {
            client: policy.client()?,
            max_bytes,
            timeout: Duration::from_secs(30),
        })
    }

    /// Fetches and checks one document.
    pub async fn fetch(&self, fetch: &Fetch) -> Fetched {
        let body = match self.download(&fetch.url).await {
            Ok(body) => body,
            Err(problem) => return Fetched::Failed { problem },
        };
        let served = keccak256(&body);
        if served != fetch.checksum {
            return Fetched::Mismatch { served };
        }
        match validate(&body) {
            Ok(()) => Fetched::Valid(body),
            Err(problems) => Fetched::Invalid { body, problems },
        }
    }

    async fn download(&self, url: &str) -> Result<Vec<u8>, String> {
        let url = Url::parse(url).map_err(|error| format!("the URL is invalid: {error}"))?;
        let request = self
            .client
            .request(reqwest::Method::GET, &url, Default::default())
            .map_err(|refused| format!("refused by the outbound guard: {refused}"))?;
        let response = request
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|error| match insitu_outbound::refusal(&error) {
                Some(refused) => format!("refused by the outbound guard: {refused}"),
                None => format!("unreachable: {}", insitu_client::rpc::error_chain(&error)),
            })?;
        if !response.status().is_success() {
            return Err(format!("the server answered {}", response.status()));
        }
        if response
            .content_length()
            .is_some_and(|length| length > self.max_bytes as u64)
        {
            return Err(format!("larger than {} bytes", self.max_bytes));
        }
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|error| {
                format!(
                    "the download failed: {}",
                    insitu_client::rpc::error_chain(&error)
                )
            })?;
            if body.len() + chunk.len() > self.max_bytes {
                return Err(format!("larger than {} bytes", self.max_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// Fetches every document due now, a batch at a time; returns how many were fetched.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub async fn drain(&self, store: &mut Store) -> Result<usize, StoreError> {
        let mut done = 0;
        loop {
            let due = store.due_fetches(now(), BATCH)?;
            if due.is_empty() {
                return Ok(done);
            }
            let outcomes =
                futures_util::future::join_all(due.iter().map(|fetch| self.fetch(fetch))).await;
            for (fetch, outcome) in due.iter().zip(outcomes) {
                let at = now();
                match &outcome {
                    Fetched::Valid(_) => tracing::info!(url = %fetch.url, "document indexed"),
                    Fetched::Invalid { problems, .. } => {
                        tracing::warn!(url = %fetch.url, problems = problems.len(), "invalid document");
                    }
                    Fetched::Mismatch { served } => {
                        tracing::warn!(url = %fetch.url, %served, "checksum mismatch");
                    }
                    Fetched::Failed { problem } => {
                        tracing::warn!(url = %fetch.url, %problem, "fetch failed");
                    }
                }
                store.fetched(fetch, &outcome, at, retry_at(at, fetch.attempts + 1))?;
                done += 1;
            }
        }
    }

    /// Fetches what is due whenever the indexers make progress or a retry falls due, until
    /// `shutdown`.
    pub async fn run(
        self,
        store: &mut Store,
        progress: std::sync::Arc<tokio::sync::Notify>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            if let Err(error) = self.drain(store).await {
                tracing::error!(%error, "the store refused the fetcher");
            }
            let wait = match store.next_fetch_at() {
                Ok(Some(at)) => Duration::from_secs(at.saturating_sub(now()).max(1)),
                _ => LAST_RETRY,
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = progress.notified() => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
        }
    }
}

/// Checks every document stored as invalid again, with this catalog's schemas: a document that
/// named a schema version an older catalog did not know, say, passes now. Returns how many did.
///
/// # Errors
///
/// [`StoreError`].
pub fn recheck(store: &mut Store) -> Result<usize, StoreError> {
    let mut passed = 0;
    for (checksum, body) in store.invalid_documents()? {
        if validate(&body).is_ok() {
            store.document_now_valid(checksum)?;
            passed += 1;
        }
    }
    Ok(passed)
}

/// Validates a document against the schema version it names.
///
/// # Errors
///
/// Every problem found, each naming its field.
pub fn validate(body: &[u8]) -> Result<(), Vec<String>> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|error| vec![format!("not a JSON document: {error}")])?;
    match value
        .get("schemaVersion")
        .and_then(|version| version.as_str())
    {
        Some(SCHEMA_VERSION) => {}
        Some(other) => {
            return Err(vec![format!(
                "/schemaVersion: {other:?} is not a schema this catalog knows ({SCHEMA_VERSION})"
            )]);
        }
        None => return Err(vec!["/schemaVersion: missing".to_owned()]),
    }
    match metadata::parse(body) {
        Ok(_) => Ok(()),
        Err(MetadataError::NotJson(message)) => Err(vec![message]),
        Err(MetadataError::Invalid(errors)) => Err(errors
            .into_iter()
            .map(|error| format!("{}: {}", error.path, error.message))
            .collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_an_hour() {
        assert_eq!(retry_at(100, 1), 110);
        assert_eq!(retry_at(100, 2), 120);
        assert_eq!(retry_at(100, 4), 180);
        assert_eq!(retry_at(100, 40), 3_700);
    }

    #[test]
    fn documents_are_validated_against_the_version_they_name() {
        let example = include_bytes!("../../docs/examples/metadata.json");
        assert_eq!(validate(example), Ok(()));
        let mut value: serde_json::Value = serde_json::from_slice(example).unwrap();
        value["schemaVersion"] = "insitu-metadata/9".into();
        let problems = validate(&serde_json::to_vec(&value).unwrap()).unwrap_err();
        assert!(problems[0].contains("insitu-metadata/9"), "{problems:?}");
        value["schemaVersion"] = SCHEMA_VERSION.into();
        value["name"] = serde_json::Value::Null;
        let problems = validate(&serde_json::to_vec(&value).unwrap()).unwrap_err();
        assert!(
            problems.iter().any(|p| p.starts_with("/name")),
            "{problems:?}"
        );
        assert!(validate(b"{").is_err());
    }
}
