//! Where the files the keeper serves live, and how they are read: the keeper's data folder
//! (`file://` locations), an S3-compatible object store (`s3://bucket/key`, with the credentials
//! of the keeper's configuration, never of the metadata document), or a web server
//! (`https://` or `http://`, with the headers sealed in the location, through the
//! [outbound guard](crate::outbound)). Reads are streams of chunks, so memory stays constant
//! whatever a file's size.

use std::{
    collections::HashMap,
    fmt, io,
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError},
};

use axum::body::Bytes;
use futures::{StreamExt, TryStreamExt, stream::BoxStream};
use insitu_client::metadata::Location;
use object_store::{GetOptions, ObjectStore, ObjectStoreExt, aws::AmazonS3Builder, path::Path};
use reqwest::{
    Method, StatusCode,
    header::{self, HeaderMap, HeaderName, HeaderValue},
};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::{
    config::S3Config,
    outbound::{self, GuardedClient, Policy, Refused},
};

/// Bytes read per chunk.
pub const CHUNK_BYTES: usize = 256 * 1024;

/// Why a location cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The location is not a URL.
    #[error("the location is not a URL")]
    NotUrl,
    /// A scheme the keeper does not read.
    #[error("this keeper serves file://, s3://, https:// and http:// locations, not {0}://")]
    Scheme(String),
    /// The outbound guard refused the URL (or a redirect, or the address a name resolved to).
    #[error("{0}")]
    Refused(Refused),
    /// A header of the location that cannot be sent.
    #[error("the location's header {0} is not a valid HTTP header")]
    Header(String),
    /// The web server answered something other than the file.
    #[error("the server answered {0}")]
    Http(String),
    /// An `s3://` location without the keeper's `[s3]` settings.
    #[error("this keeper has no object store configured for s3:// locations")]
    NoObjectStore,
    /// A bucket the configuration does not list.
    #[error("bucket {0:?} is not one this keeper serves")]
    Bucket(String),
    /// A `file://` location outside the data folder.
    #[error("the location is outside the keeper's data folder")]
    OutsideDataFolder,
    /// Nothing at the location.
    #[error("nothing is stored at the location")]
    Missing,
    /// The data folder or a file could not be read.
    #[error("reading the file: {0}")]
    Io(#[from] io::Error),
    /// The object store failed.
    #[error("the object store: {0}")]
    ObjectStore(object_store::Error),
}

impl From<reqwest::Error> for StorageError {
    fn from(error: reqwest::Error) -> Self {
        match outbound::refusal(&error) {
            Some(refused) => Self::Refused(refused),
            // Without the URL: it may carry a token in its query.
            None => Self::Http(error.without_url().to_string()),
        }
    }
}

impl From<Refused> for StorageError {
    fn from(refused: Refused) -> Self {
        Self::Refused(refused)
    }
}

impl From<object_store::Error> for StorageError {
    fn from(error: object_store::Error) -> Self {
        match error {
            object_store::Error::NotFound { .. } => Self::Missing,
            other => Self::ObjectStore(other),
        }
    }
}

/// A resolved location.
#[derive(Clone)]
pub enum Source {
    /// A file in the data folder.
    File(PathBuf),
    /// An object of a configured bucket.
    Object {
        /// `s3://bucket/key`, for caches and logs.
        url: String,
        /// The bucket's store.
        store: Arc<dyn ObjectStore>,
        /// The object's key.
        key: Path,
    },
    /// A file on a web server.
    Http {
        /// Its URL.
        url: url::Url,
        /// The headers sent with each request (secret: never shown).
        headers: HeaderMap,
        /// The guarded client.
        client: GuardedClient,
        /// The version checked (its `ETag`): reads ask for it (`If-Match`), so a file replaced
        /// after the check is refused rather than served.
        etag: Option<HeaderValue>,
    },
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => f.debug_tuple("File").field(path).finish(),
            Self::Object { url, .. } => f.debug_struct("Object").field("url", url).finish(),
            // The URL's query and the headers may hold tokens.
            Self::Http { url, .. } => f
                .debug_struct("Http")
                .field("host", &url.host_str())
                .finish_non_exhaustive(),
        }
    }
}

/// What a source holds now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// Its size in bytes.
    pub size: u64,
    /// Its version: the last modification in nanoseconds since the Unix epoch, or for a web
    /// server's file a digest of its `ETag` and `Last-Modified` (a changed file is hashed again).
    /// `None` when the server gives neither: such a file is hashed on every check.
    pub modified: Option<u64>,
    /// A web server's `ETag` for this version, if it sent one.
    pub etag: Option<HeaderValue>,
}

impl Source {
    /// The source pinned to the version `stat` describes: a web file is then read only while it
    /// is still that version (when the server gave an `ETag`).
    pub fn pinned(self, stat: &Stat) -> Self {
        match self {
            Self::Http {
                url,
                headers,
                client,
                ..
            } => Self::Http {
                url,
                headers,
                client,
                etag: stat.etag.clone(),
            },
            other => other,
        }
    }

    /// A key naming the source in the store's cache of verified hashes.
    pub fn cache_key(&self) -> String {
        match self {
            Self::File(path) => path.to_string_lossy().into_owned(),
            Self::Object { url, .. } => url.clone(),
            // A digest, not the URL: its query may hold a token.
            Self::Http { url, .. } => format!(
                "http:{}",
                alloy::primitives::hex::encode(Sha256::digest(url.as_str()))
            ),
        }
    }

    /// Its size and modification time.
    ///
    /// # Errors
    ///
    /// [`StorageError`].
    pub async fn stat(&self) -> Result<Stat, StorageError> {
        match self {
            Self::File(path) => {
                let info = tokio::fs::metadata(path).await?;
                if !info.is_file() {
                    return Err(StorageError::Missing);
                }
                let modified = info
                    .modified()
                    .ok()
                    .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|elapsed| elapsed.as_nanos() as u64)
                    .unwrap_or_default();
                Ok(Stat {
                    size: info.len(),
                    modified: Some(modified),
                    etag: None,
                })
            }
            Self::Object { store, key, .. } => {
                let meta = store.head(key).await?;
                Ok(Stat {
                    size: meta.size,
                    modified: Some(
                        meta.last_modified
                            .timestamp_nanos_opt()
                            .unwrap_or_default()
                            .max(0) as u64,
                    ),
                    etag: None,
                })
            }
            Self::Http {
                url,
                headers,
                client,
                ..
            } => {
                let response = client
                    .request(Method::HEAD, url, headers.clone())?
                    .send()
                    .await?;
                let response = success(response)?;
                let size = response
                    .headers()
                    .get(header::CONTENT_LENGTH)
                    .and_then(|value| value.to_str().ok()?.parse::<u64>().ok())
                    .ok_or_else(|| StorageError::Http("no Content-Length".to_owned()))?;
                let validators: Vec<&[u8]> = [header::ETAG, header::LAST_MODIFIED]
                    .iter()
                    .filter_map(|name| response.headers().get(name).map(HeaderValue::as_bytes))
                    .collect();
                let modified = (!validators.is_empty()).then(|| {
                    let digest = Sha256::digest(validators.join(&b'\n'));
                    // 63 bits: the store keeps it as a signed integer.
                    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes")) >> 1
                });
                Ok(Stat {
                    size,
                    modified,
                    etag: response.headers().get(header::ETAG).cloned(),
                })
            }
        }
    }

    /// Streams `length` bytes from `start`, in chunks of at most [`CHUNK_BYTES`] (a file) or as
    /// the store sends them.
    ///
    /// # Errors
    ///
    /// [`StorageError`] when the read cannot start; later failures end the stream with an error.
    pub async fn read(
        &self,
        start: u64,
        length: u64,
    ) -> Result<BoxStream<'static, io::Result<Bytes>>, StorageError> {
        if length == 0 {
            return Ok(futures::stream::empty().boxed());
        }
        match self {
            Self::File(path) => {
                let mut handle = tokio::fs::File::open(path).await?;
                handle.seek(io::SeekFrom::Start(start)).await?;
                Ok(
                    tokio_util::io::ReaderStream::with_capacity(handle.take(length), CHUNK_BYTES)
                        .boxed(),
                )
            }
            Self::Object { store, key, .. } => {
                let result = store
                    .get_opts(
                        key,
                        GetOptions::new().with_range(Some(start..start + length)),
                    )
                    .await?;
                Ok(result.into_stream().map_err(io::Error::other).boxed())
            }
            Self::Http {
                url,
                headers,
                client,
                etag,
            } => {
                let last = start + length - 1;
                let mut request = client
                    .request(Method::GET, url, headers.clone())?
                    .header(header::RANGE, format!("bytes={start}-{last}"));
                if let Some(etag) = etag {
                    request = request.header(header::IF_MATCH, etag.clone());
                }
                let response = request.send().await?;
                if response.status() == StatusCode::PRECONDITION_FAILED {
                    return Err(StorageError::Http(
                        "the file changed since it was checked".to_owned(),
                    ));
                }
                let response = success(response)?;
                // A server that ignores ranges answers 200 with the whole file: usable only when
                // the whole file was asked for.
                let whole = response.status() == StatusCode::OK && start == 0;
                let ranged = response.status() == StatusCode::PARTIAL_CONTENT
                    && response
                        .headers()
                        .get(header::CONTENT_RANGE)
                        .and_then(|value| value.to_str().ok())
                        .is_some_and(|value| value.starts_with(&format!("bytes {start}-{last}/")));
                if !(whole || ranged) {
                    return Err(StorageError::Http(format!(
                        "{} without the range asked for",
                        response.status()
                    )));
                }
                // Exactly the bytes asked for, or nothing: a body longer than the declared length
                // would otherwise be cut by the HTTP stack mid-download.
                if response.content_length() != Some(length) {
                    return Err(StorageError::Http(format!(
                        "{} bytes, not the {length} asked for",
                        response.content_length().unwrap_or_default()
                    )));
                }
                Ok(response.bytes_stream().map_err(io::Error::other).boxed())
            }
        }
    }

    /// The SHA-256 of the whole source, hex, read in chunks.
    ///
    /// # Errors
    ///
    /// [`StorageError`].
    pub async fn sha256(&self) -> Result<String, StorageError> {
        let size = self.stat().await?.size;
        let mut chunks = self.read(0, size).await?;
        let mut hasher = Sha256::new();
        while let Some(chunk) = chunks.next().await {
            hasher.update(&chunk?);
        }
        Ok(alloy::primitives::hex::encode(hasher.finalize()))
    }
}

/// A response with a success status, or the status as an error.
fn success(response: reqwest::Response) -> Result<reqwest::Response, StorageError> {
    match response.status() {
        status if status.is_success() => Ok(response),
        StatusCode::NOT_FOUND | StatusCode::GONE => Err(StorageError::Missing),
        status => Err(StorageError::Http(status.to_string())),
    }
}

/// Resolves locations to sources.
#[derive(Debug)]
pub struct Storage {
    data_root: PathBuf,
    s3: Option<S3Config>,
    /// One store per bucket, built on first use.
    buckets: Mutex<HashMap<String, Arc<dyn ObjectStore>>>,
    /// The client for web locations.
    web: GuardedClient,
}

impl Storage {
    /// Files in `data_root`, objects in the buckets of `s3`, web files where `outbound` allows.
    ///
    /// # Errors
    ///
    /// The HTTP client's TLS stack could not be set up.
    pub fn new(
        data_root: PathBuf,
        s3: Option<S3Config>,
        outbound: &Policy,
    ) -> Result<Self, StorageError> {
        Ok(Self {
            data_root,
            s3,
            buckets: Mutex::new(HashMap::new()),
            web: outbound.client()?,
        })
    }

    /// The source at `location` (opened with the keeper's key): a `file://` path must lie inside
    /// the data folder (after links are resolved), an `s3://` bucket must be configured, an
    /// `http(s)://` URL must pass the outbound guard. Only web locations carry headers.
    ///
    /// # Errors
    ///
    /// [`StorageError`].
    pub async fn resolve(&self, location: &Location) -> Result<Source, StorageError> {
        let url = url::Url::parse(&location.url).map_err(|_| StorageError::NotUrl)?;
        if !location.headers.is_empty() && !matches!(url.scheme(), "http" | "https") {
            return Err(StorageError::Header(
                "(headers go with web locations only)".to_owned(),
            ));
        }
        match url.scheme() {
            "http" | "https" => {
                let mut headers = HeaderMap::new();
                for (name, value) in &location.headers {
                    let bad = || StorageError::Header(name.clone());
                    let mut value = HeaderValue::from_str(value).map_err(|_| bad())?;
                    value.set_sensitive(true);
                    headers.insert(
                        HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?,
                        value,
                    );
                }
                self.web.check(&url)?;
                Ok(Source::Http {
                    url,
                    headers,
                    client: self.web.clone(),
                    etag: None,
                })
            }
            "file" => {
                let path = url.to_file_path().map_err(|()| StorageError::NotUrl)?;
                let root = tokio::fs::canonicalize(&self.data_root).await?;
                let path = tokio::fs::canonicalize(&path)
                    .await
                    .map_err(|_| StorageError::Missing)?;
                if !path.starts_with(&root) {
                    return Err(StorageError::OutsideDataFolder);
                }
                Ok(Source::File(path))
            }
            "s3" => {
                let s3 = self.s3.as_ref().ok_or(StorageError::NoObjectStore)?;
                let bucket = url.host_str().unwrap_or_default().to_owned();
                if !s3.buckets.contains(&bucket) {
                    return Err(StorageError::Bucket(bucket));
                }
                let key = Path::from_url_path(url.path()).map_err(|_| StorageError::NotUrl)?;
                if key.as_ref().is_empty() {
                    return Err(StorageError::NotUrl);
                }
                let store = self.bucket(s3, &bucket)?;
                Ok(Source::Object {
                    url: format!("s3://{bucket}/{key}"),
                    store,
                    key,
                })
            }
            other => Err(StorageError::Scheme(other.to_owned())),
        }
    }

    fn bucket(&self, s3: &S3Config, bucket: &str) -> Result<Arc<dyn ObjectStore>, StorageError> {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(store) = buckets.get(bucket) {
            return Ok(store.clone());
        }
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(&s3.region)
            .with_access_key_id(&s3.access_key_id)
            .with_secret_access_key(&s3.secret_access_key)
            .with_allow_http(s3.allow_http);
        if let Some(endpoint) = &s3.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        let store: Arc<dyn ObjectStore> = Arc::new(builder.build()?);
        buckets.insert(bucket.to_owned(), store.clone());
        Ok(store)
    }
}
