//! Keeper configuration: a TOML file, overridden by `INSITU_KEEPER_*` environment variables,
//! validated before use.
//!
//! ```toml
//! rpc_url = "http://127.0.0.1:8545"
//! rpc_fallback_urls = []                # more endpoints of the same chain, in order of preference
//! rpc_max_lag_blocks = 3                # an endpoint further behind the best head is avoided
//! chain_id = 31337
//! addresses = "deployments/31337.json"  # default: deployments/<chain_id>.json, as `insitu deploy` writes
//! confirmations = 2
//! poll_interval_ms = 1000
//! listen = "127.0.0.1:8088"
//! database = "keeper.db"
//! data_root = "data"                    # the only folder file:// locations may point into
//! publishers = []                       # accounts allowed to store metadata documents here
//! # public_url = "https://keeper.example" # how consumers reach the API (default: http://<listen>)
//! # keystore = "keeper-key.json"       # an encrypted JSON keystore; else INSITU_KEEPER_PRIVATE_KEY
//! # password_file = "keeper-key.pass"  # required with a keystore (the keeper runs unattended)
//! max_downloads_per_consumer = 4        # downloads one consumer may have in flight at once
//! low_balance_gwei = 10000000           # warn (and keeper_balance_low = 1) below 0.01 ETH
//! access_token_ttl_secs = 900           # lifetime of access tokens (60 to 86400)
//!
//! # s3:// locations: an S3-compatible object store (none by default)
//! [s3]
//! endpoint = "https://s3.example"       # default: AWS S3 in `region`
//! region = "us-east-1"
//! buckets = ["datasets"]                # the buckets locations may name
//! access_key_id = "..."                 # or INSITU_KEEPER_S3_ACCESS_KEY_ID
//! # the secret only from INSITU_KEEPER_S3_SECRET_ACCESS_KEY (or the file; never printed)
//!
//! # More chains: one table each (the keys above are the first chain). Each chain has its own
//! # endpoints, deployment, store and key (a keystore, or INSITU_KEEPER_PRIVATE_KEY_<chain id>).
//! [[chains]]
//! chain_id = 11155111
//! rpc_url = "https://sepolia.rpc.example"
//! # addresses = "deployments/11155111.json"   # the default
//! # database = "keeper-11155111.db"           # the default
//! confirmations = 3
//!
//! # Compute in situ: jobs run in the local sandbox or on a cluster (absent: no compute is sold)
//! [compute]
//! work_root = "compute"                 # jobs' workspaces and the results kept for their owners
//! concurrency = 2                       # jobs running at once; more wait, queued
//! max_runs = 2                          # runs of a job, counting those a restart interrupted
//! max_algorithm_kb = 1024               # largest algorithm file accepted
//! grace_secs = 5                        # between SIGTERM and SIGKILL
//! bwrap = "/usr/bin/bwrap"
//! # sandbox_init = "/usr/local/bin/insitu-sandbox-init"   # default: next to insitu-keeper
//! [[compute.runtimes]]
//! name = "python3"                      # the name compute policies list
//! command = ["/usr/bin/python3", "-I"]  # the algorithm's path is appended
//! description = "the system's Python 3, standard library only"
//! # backend = "kubernetes"               # jobs as Kubernetes Jobs (docs/kubernetes.md); then
//! # image = "python@sha256:..."          # each runtime's image, pinned by digest, and:
//! # [compute.kubernetes]
//! # namespace = "insitu-jobs"
//! # workspace_claim = "insitu-work"      # the ReadWriteMany claim mounted at work_root
//! # helper_image = "busybox@sha256:..."  # the collector's and the isolation check's
//!
//! # https:// and http:// locations: the keeper never fetches from loopback, private, link-local,
//! # unique-local, multicast or cloud-metadata addresses, except the ranges listed here
//! [outbound]
//! allow = ["10.20.0.0/16"]              # or INSITU_KEEPER_OUTBOUND_ALLOW="10.20.0.0/16,..."
//! ```
//!
//! Every key is optional ([`Config::default`] gives the values above, with one confirmation).
//! Relative paths are resolved against the folder of the configuration file.

pub mod compute;
pub mod reference;

pub use compute::{
    BackendKind, ComputeConfig, FlowerRuntime, KubernetesConfig, ResourcePreset, RuntimeConfig,
};

use std::{
    fmt, fs, io,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use insitu_bindings::addresses::{AddressesError, Deployment};
use insitu_bindings::deployment::SuiteAddresses;
use serde::{Deserialize, Serialize};
use url::Url;

/// Prefix of the environment variables that override the file.
pub const ENV_PREFIX: &str = "INSITU_KEEPER_";
/// Highest accepted `confirmations`.
pub const MAX_CONFIRMATIONS: u64 = 128;
/// Lowest accepted `poll_interval_ms`.
pub const MIN_POLL_INTERVAL_MS: u64 = 100;
/// Highest accepted `poll_interval_ms` (one hour).
pub const MAX_POLL_INTERVAL_MS: u64 = 3_600_000;

/// Default `max_downloads_per_consumer`.
pub const DEFAULT_MAX_DOWNLOADS_PER_CONSUMER: u32 = 4;
/// Default `low_balance_gwei` (0.01 ETH).
pub const DEFAULT_LOW_BALANCE_GWEI: u64 = 10_000_000;
/// Highest accepted `max_downloads_per_consumer`.
pub const MAX_DOWNLOADS_PER_CONSUMER: u32 = 256;
/// Default `rpc_max_lag_blocks`.
pub const DEFAULT_RPC_MAX_LAG_BLOCKS: u64 = 3;
/// Highest accepted `rpc_max_lag_blocks`.
pub const MAX_RPC_MAX_LAG_BLOCKS: u64 = 1_000;
/// Most `rpc_fallback_urls`.
pub const MAX_RPC_FALLBACK_URLS: usize = 8;
/// Default `access_token_ttl_secs` (15 minutes).
pub const DEFAULT_ACCESS_TOKEN_TTL_SECS: u64 = 900;
/// Accepted `access_token_ttl_secs`: a minute to a day.
pub const ACCESS_TOKEN_TTL_SECS: std::ops::RangeInclusive<u64> = 60..=86_400;

/// The keeper's settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// JSON-RPC endpoint of the chain (`http`, `https`, `ws` or `wss`).
    pub rpc_url: String,
    /// More endpoints of the same chain, used in this order when `rpc_url` is down or behind.
    pub rpc_fallback_urls: Vec<String>,
    /// Blocks an endpoint may be behind the highest head the endpoints report before it is
    /// avoided.
    pub rpc_max_lag_blocks: u64,
    /// Chain id the endpoints must report.
    pub chain_id: u64,
    /// Deployment addresses file (see `insitu_bindings::addresses`); by default
    /// `deployments/<chain_id>.json`, where `insitu deploy` writes it.
    pub addresses: PathBuf,
    /// Blocks an event must be buried under before the keeper acts on it (0 acts on the head).
    pub confirmations: u64,
    /// How often to poll the chain for new blocks, in milliseconds.
    pub poll_interval_ms: u64,
    /// Address of the keeper's HTTP API.
    pub listen: String,
    /// Path of the keeper's database file.
    pub database: PathBuf,
    /// The folder the files the keeper serves are in: a `file://` location outside it is refused.
    pub data_root: PathBuf,
    /// Accounts allowed to store metadata documents at this keeper (the provider's publishers).
    pub publishers: Vec<alloy::primitives::Address>,
    /// The API's address as consumers reach it (default `http://<listen>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// Encrypted JSON keystore of the keeper's account; without it the key is read from
    /// [`KEY_ENV`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keystore: Option<PathBuf>,
    /// File whose first line is the keystore's password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// Downloads one consumer may have in flight at once; one more is refused with
    /// `too_many_downloads` (429).
    pub max_downloads_per_consumer: u32,
    /// Below this balance (in gwei) the keeper's account is reported low: a warning in the log and
    /// `keeper_balance_low` = 1 (0 never warns).
    pub low_balance_gwei: u64,
    /// How long an access token lives, in seconds (never past the agreement's access window).
    pub access_token_ttl_secs: u64,
    /// The S3-compatible object store `s3://` locations are read from, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Config>,
    /// What web locations may reach.
    pub outbound: OutboundConfig,
    /// Compute in situ, if this keeper sells it (the `[compute]` table).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compute: Option<ComputeConfig>,
    /// More chains the keeper serves, one `[[chains]]` table each; the top-level keys above are
    /// its first chain.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub chains: Vec<ChainConfig>,
}

/// Another chain the keeper serves (a `[[chains]]` table): its own endpoints, deployment, store
/// and key. Agreements are settled on the chain they were made on, each chain's watcher and
/// executor on their own, so one chain's failures leave the others alone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChainConfig {
    /// Chain id the endpoints must report (required).
    pub chain_id: u64,
    /// JSON-RPC endpoint of the chain (required).
    pub rpc_url: String,
    /// More endpoints of this chain, used in order when `rpc_url` is down or behind.
    #[serde(default)]
    pub rpc_fallback_urls: Vec<String>,
    /// Blocks an endpoint may be behind the best head before it is avoided.
    #[serde(default = "default_rpc_max_lag_blocks")]
    pub rpc_max_lag_blocks: u64,
    /// Deployment addresses file (default `deployments/<chain_id>.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addresses: Option<PathBuf>,
    /// Blocks an event must be buried under before the keeper acts on it.
    #[serde(default = "default_confirmations")]
    pub confirmations: u64,
    /// This chain's store (default `keeper-<chain_id>.db` in the configuration file's folder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<PathBuf>,
    /// Encrypted JSON keystore of the keeper's account on this chain; without it the key is read
    /// from `INSITU_KEEPER_PRIVATE_KEY_<chain_id>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keystore: Option<PathBuf>,
    /// File whose first line is the keystore's password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
}

fn default_rpc_max_lag_blocks() -> u64 {
    DEFAULT_RPC_MAX_LAG_BLOCKS
}

fn default_confirmations() -> u64 {
    1
}

/// One chain of the keeper, with every default resolved: the first from the top-level keys, the
/// others from their `[[chains]]` tables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainSettings {
    /// The chain id.
    pub chain_id: u64,
    /// `rpc_url`, then the fallbacks.
    pub rpc_urls: Vec<String>,
    /// See `rpc_max_lag_blocks`.
    pub rpc_max_lag_blocks: u64,
    /// The deployment's addresses file.
    pub addresses: PathBuf,
    /// Confirmations.
    pub confirmations: u64,
    /// The chain's store.
    pub database: PathBuf,
    /// Where the chain's key comes from.
    pub key: insitu_client::keys::KeySource,
}

impl ChainSettings {
    /// Reads the addresses file and checks it is a whole suite deployed on this chain.
    ///
    /// # Errors
    ///
    /// [`DeploymentError`].
    pub fn deployment(&self) -> Result<(Deployment, SuiteAddresses), DeploymentError> {
        if !self.addresses.exists() {
            return Err(DeploymentError::Missing {
                path: self.addresses.clone(),
            });
        }
        let deployment = Deployment::read(&self.addresses)?;
        if deployment.chain_id != self.chain_id {
            return Err(DeploymentError::WrongChain {
                path: self.addresses.clone(),
                file: deployment.chain_id,
                config: self.chain_id,
            });
        }
        let suite = deployment.suite()?;
        Ok((deployment, suite))
    }

    /// The endpoints, parsed.
    ///
    /// # Errors
    ///
    /// A URL that does not parse (refused by [`Config::validate`] already).
    pub fn endpoints(
        &self,
    ) -> Result<Vec<insitu_client::rpc::Endpoint>, insitu_client::rpc::RpcError> {
        self.rpc_urls
            .iter()
            .map(|url| insitu_client::rpc::Endpoint::parse(url))
            .collect()
    }
}

/// What `https://` and `http://` locations may reach (the `[outbound]` table).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct OutboundConfig {
    /// Ranges the [outbound guard](crate::outbound) would refuse (loopback, private, ...) that
    /// the keeper may reach all the same: a file server on the provider's own network, or a
    /// federated job's aggregator there.
    pub allow: Vec<ipnet::IpNet>,
}

impl OutboundConfig {
    /// The guard's policy.
    pub fn policy(&self) -> crate::outbound::Policy {
        crate::outbound::Policy::new(self.allow.clone())
    }
}

/// An S3-compatible object store (the `[s3]` table).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// The store's URL; unset, AWS S3 in `region`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The region.
    pub region: String,
    /// The buckets `s3://` locations may name; any other is refused.
    pub buckets: Vec<String>,
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key: never printed (the printed configuration leaves it out).
    #[serde(skip_serializing)]
    pub secret_access_key: String,
    /// Whether an `http://` endpoint is accepted (a store on the provider's own network).
    pub allow_http: bool,
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            endpoint: None,
            region: "us-east-1".to_owned(),
            buckets: Vec::new(),
            access_key_id: String::new(),
            secret_access_key: String::new(),
            allow_http: false,
        }
    }
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("buckets", &self.buckets)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

/// The environment variable holding the keeper's private key (hex) when no keystore is set.
pub const KEY_ENV: &str = "INSITU_KEEPER_PRIVATE_KEY";

impl Default for Config {
    fn default() -> Self {
        Self {
            rpc_url: "http://127.0.0.1:8545".to_owned(),
            rpc_fallback_urls: Vec::new(),
            rpc_max_lag_blocks: DEFAULT_RPC_MAX_LAG_BLOCKS,
            chain_id: 31337,
            addresses: default_addresses(31337),
            confirmations: 1,
            poll_interval_ms: 1_000,
            listen: "127.0.0.1:8088".to_owned(),
            database: PathBuf::from("keeper.db"),
            data_root: PathBuf::from("data"),
            publishers: Vec::new(),
            public_url: None,
            keystore: None,
            password_file: None,
            max_downloads_per_consumer: DEFAULT_MAX_DOWNLOADS_PER_CONSUMER,
            low_balance_gwei: DEFAULT_LOW_BALANCE_GWEI,
            access_token_ttl_secs: DEFAULT_ACCESS_TOKEN_TTL_SECS,
            s3: None,
            outbound: OutboundConfig::default(),
            compute: None,
            chains: Vec::new(),
        }
    }
}

/// Where `insitu deploy` writes the addresses file of chain `chain_id`, relative to its working
/// folder.
pub fn default_addresses(chain_id: u64) -> PathBuf {
    PathBuf::from("deployments").join(format!("{chain_id}.json"))
}

/// Why the deployment named by the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    /// The addresses file does not exist.
    #[error(
        "the addresses file {} does not exist: deploy the contracts first (`insitu deploy` writes \
         deployments/<chain id>.json) or set `addresses`",
        path.display()
    )]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// The file could not be read, parsed or lacks a contract of the suite.
    #[error(transparent)]
    Addresses(#[from] AddressesError),
    /// The file is for another chain.
    #[error(
        "the addresses file {} is for chain {file}, but the keeper is configured for chain {config}",
        path.display()
    )]
    WrongChain {
        /// The file.
        path: PathBuf,
        /// The chain id in the file.
        file: u64,
        /// The configured chain id.
        config: u64,
    },
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the keeper configuration {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The file is not valid TOML or has unknown keys or wrong types.
    #[error("invalid keeper configuration {}: {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML error, with position.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// An environment variable does not hold a valid value.
    #[error("environment variable {name}={value:?} is invalid: {reason}")]
    Env {
        /// Variable name.
        name: String,
        /// Its value.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// The settings were read but are not usable.
    #[error("invalid keeper configuration: {0}")]
    Invalid(#[from] ValidationError),
}

/// A setting with an unusable value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// `rpc_url` is not a URL.
    #[error("rpc_url {url:?} is not a valid URL: {reason}")]
    RpcUrl {
        /// The value.
        url: String,
        /// The parse error.
        reason: String,
    },
    /// `rpc_url` has a scheme the keeper cannot use.
    #[error("rpc_url {url:?} must use http, https, ws or wss, not {scheme:?}")]
    RpcScheme {
        /// The value.
        url: String,
        /// Its scheme.
        scheme: String,
    },
    /// `chain_id` is zero.
    #[error("chain_id must not be 0")]
    ChainIdZero,
    /// `addresses` is empty.
    #[error("addresses must name the deployment addresses file")]
    AddressesEmpty,
    /// `confirmations` is above [`MAX_CONFIRMATIONS`].
    #[error("confirmations is {value}, at most {MAX_CONFIRMATIONS} is accepted")]
    TooManyConfirmations {
        /// The value.
        value: u64,
    },
    /// `poll_interval_ms` is outside [`MIN_POLL_INTERVAL_MS`]..=[`MAX_POLL_INTERVAL_MS`].
    #[error(
        "poll_interval_ms is {value}, it must be between {MIN_POLL_INTERVAL_MS} and {MAX_POLL_INTERVAL_MS}"
    )]
    PollInterval {
        /// The value.
        value: u64,
    },
    /// `listen` is not `ip:port`.
    #[error("listen {value:?} is not an ip:port socket address ({reason})")]
    Listen {
        /// The value.
        value: String,
        /// The parse error.
        reason: String,
    },
    /// `database` is empty.
    #[error("database must name the keeper's database file")]
    DatabaseEmpty,
    /// `max_downloads_per_consumer` is outside 1..=[`MAX_DOWNLOADS_PER_CONSUMER`].
    #[error(
        "max_downloads_per_consumer is {value}, it must be between 1 and {MAX_DOWNLOADS_PER_CONSUMER}"
    )]
    MaxDownloads {
        /// The value.
        value: u32,
    },
    /// A fallback endpoint is no endpoint URL, or repeats another.
    #[error("rpc_fallback_urls: {0}")]
    RpcFallback(String),
    /// A `[[chains]]` table is wrong.
    #[error("[[chains]] chain {chain_id}: {reason}")]
    Chain {
        /// Its chain id.
        chain_id: u64,
        /// What is wrong.
        reason: String,
    },
    /// `rpc_max_lag_blocks` is too high.
    #[error("rpc_max_lag_blocks is {value}, it must be at most {MAX_RPC_MAX_LAG_BLOCKS}")]
    RpcMaxLag {
        /// The value.
        value: u64,
    },
    /// `access_token_ttl_secs` is outside [`ACCESS_TOKEN_TTL_SECS`].
    #[error("access_token_ttl_secs is {value}, it must be between 60 and 86400")]
    AccessTokenTtl {
        /// The value.
        value: u64,
    },
    /// `keystore` without `password_file`, or the reverse.
    #[error("keystore and password_file go together (the keeper cannot prompt for a password)")]
    KeystorePassword,
    /// The `[s3]` table is incomplete or wrong.
    #[error("s3: {0}")]
    S3(String),
    /// The `[compute]` table is wrong.
    #[error("compute: {0}")]
    Compute(String),
}

impl Config {
    /// Loads `path` (or the defaults when `None`), applies the `INSITU_KEEPER_*` variables of
    /// the process environment, resolves relative paths and validates the result.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(path, |name| std::env::var(name).ok())
    }

    /// Like [`Config::load`], reading environment variables through `env` (for tests and
    /// embedding).
    pub fn load_with_env(
        path: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let (mut config, base, addresses_set) = match path {
            Some(path) => {
                let text = fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                let parse_error = |source| ConfigError::Parse {
                    path: path.to_owned(),
                    source: Box::new(source),
                };
                let addresses_set = text
                    .parse::<toml::Table>()
                    .map_err(parse_error)?
                    .contains_key("addresses");
                let mut config = Self::from_toml(&text).map_err(parse_error)?;
                let base = path.parent().unwrap_or(Path::new("")).to_path_buf();
                config.resolve_paths(&base);
                (config, base, addresses_set)
            }
            None => (Self::default(), PathBuf::new(), false),
        };
        let addresses_set =
            addresses_set || env(&format!("{ENV_PREFIX}ADDRESSES")).is_some_and(|v| !v.is_empty());
        config.apply_env(env)?;
        if !addresses_set {
            // Follow the chain id (perhaps set by the environment), like `insitu deploy` does.
            config.addresses = base.join(default_addresses(config.chain_id));
        }
        for chain in &mut config.chains {
            chain
                .addresses
                .get_or_insert_with(|| base.join(default_addresses(chain.chain_id)));
            chain
                .database
                .get_or_insert_with(|| base.join(default_database(chain.chain_id)));
        }
        config.validate()?;
        Ok(config)
    }

    /// Reads the first chain's addresses file and checks it is a whole suite deployed on that
    /// chain.
    ///
    /// # Errors
    ///
    /// [`DeploymentError`].
    pub fn deployment(&self) -> Result<(Deployment, SuiteAddresses), DeploymentError> {
        self.first_chain().deployment()
    }

    /// The first chain (the top-level keys).
    pub fn first_chain(&self) -> ChainSettings {
        ChainSettings {
            chain_id: self.chain_id,
            rpc_urls: std::iter::once(&self.rpc_url)
                .chain(&self.rpc_fallback_urls)
                .cloned()
                .collect(),
            rpc_max_lag_blocks: self.rpc_max_lag_blocks,
            addresses: self.addresses.clone(),
            confirmations: self.confirmations,
            database: self.database.clone(),
            key: self.key_source(),
        }
    }

    /// Every chain, the first one first. (Loading a file resolves the `[[chains]]` defaults
    /// against its folder; a configuration made in code gets them relative to the working
    /// folder.)
    pub fn chain_settings(&self) -> Vec<ChainSettings> {
        let extra = self.chains.iter().map(|chain| ChainSettings {
            chain_id: chain.chain_id,
            rpc_urls: std::iter::once(&chain.rpc_url)
                .chain(&chain.rpc_fallback_urls)
                .cloned()
                .collect(),
            rpc_max_lag_blocks: chain.rpc_max_lag_blocks,
            addresses: chain
                .addresses
                .clone()
                .unwrap_or_else(|| default_addresses(chain.chain_id)),
            confirmations: chain.confirmations,
            database: chain
                .database
                .clone()
                .unwrap_or_else(|| default_database(chain.chain_id)),
            key: key_source(
                chain.keystore.as_ref(),
                chain.password_file.as_ref(),
                format!("{KEY_ENV}_{}", chain.chain_id),
            ),
        });
        std::iter::once(self.first_chain()).chain(extra).collect()
    }

    /// Parses TOML text, filling missing keys with defaults. Unknown keys are errors.
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// The configuration as `--check-config` prints it: every endpoint URL cut to its scheme,
    /// host and port (providers put API keys in the path or query), the S3 secret left out.
    pub fn redacted(&self) -> Self {
        let cut = |url: &String| {
            insitu_client::rpc::Endpoint::parse(url)
                .map_or_else(|_| "<not a URL>".to_owned(), |endpoint| endpoint.redacted())
        };
        let mut shown = self.clone();
        shown.rpc_url = cut(&self.rpc_url);
        shown.rpc_fallback_urls = self.rpc_fallback_urls.iter().map(cut).collect();
        for chain in &mut shown.chains {
            chain.rpc_url = cut(&chain.rpc_url);
            chain.rpc_fallback_urls = chain.rpc_fallback_urls.iter().map(cut).collect();
        }
        shown
    }

    /// The configuration as TOML text.
    pub fn to_toml(&self) -> String {
        // Strings, integers and UTF-8 paths always serialize; a non-UTF-8 path is the only
        // failure, and then the Debug form is the most useful output.
        toml::to_string(self).unwrap_or_else(|_| format!("{self:#?}\n"))
    }

    /// Applies `INSITU_KEEPER_<KEY>` variables (e.g. `INSITU_KEEPER_RPC_URL`) over the current
    /// values. An empty variable counts as unset.
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let get = |key: &str| {
            let name = format!("{ENV_PREFIX}{key}");
            env(&name)
                .filter(|value| !value.is_empty())
                .map(|value| (name, value))
        };
        let number = |name: String, value: String| {
            value.trim().parse::<u64>().map_err(|err| ConfigError::Env {
                name,
                value: value.clone(),
                reason: err.to_string(),
            })
        };
        if let Some((_, value)) = get("RPC_URL") {
            self.rpc_url = value;
        }
        if let Some((_, value)) = get("RPC_FALLBACK_URLS") {
            self.rpc_fallback_urls = value
                .split(',')
                .map(str::trim)
                .filter(|url| !url.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if let Some((name, value)) = get("RPC_MAX_LAG_BLOCKS") {
            self.rpc_max_lag_blocks = number(name, value)?;
        }
        if let Some((name, value)) = get("CHAIN_ID") {
            self.chain_id = number(name, value)?;
        }
        if let Some((_, value)) = get("ADDRESSES") {
            self.addresses = PathBuf::from(value);
        }
        if let Some((name, value)) = get("CONFIRMATIONS") {
            self.confirmations = number(name, value)?;
        }
        if let Some((name, value)) = get("POLL_INTERVAL_MS") {
            self.poll_interval_ms = number(name, value)?;
        }
        if let Some((_, value)) = get("LISTEN") {
            self.listen = value;
        }
        if let Some((_, value)) = get("DATABASE") {
            self.database = PathBuf::from(value);
        }
        if let Some((_, value)) = get("DATA_ROOT") {
            self.data_root = PathBuf::from(value);
        }
        if let Some((name, value)) = get("PUBLISHERS") {
            self.publishers = value
                .split(',')
                .filter(|item| !item.trim().is_empty())
                .map(|item| {
                    item.trim().parse().map_err(|_| ConfigError::Env {
                        name: name.clone(),
                        value: value.clone(),
                        reason: format!("{item:?} is not an address"),
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        if let Some((_, value)) = get("PUBLIC_URL") {
            self.public_url = Some(value);
        }
        if let Some((_, value)) = get("KEYSTORE") {
            self.keystore = Some(PathBuf::from(value));
        }
        if let Some((_, value)) = get("PASSWORD_FILE") {
            self.password_file = Some(PathBuf::from(value));
        }
        for (key, field) in [
            ("S3_ACCESS_KEY_ID", 0),
            ("S3_SECRET_ACCESS_KEY", 1),
            ("S3_ENDPOINT", 2),
        ] {
            if let Some((_, value)) = get(key) {
                let s3 = self.s3.get_or_insert_with(S3Config::default);
                match field {
                    0 => s3.access_key_id = value,
                    1 => s3.secret_access_key = value,
                    _ => s3.endpoint = Some(value),
                }
            }
        }
        if let Some((name, value)) = get("OUTBOUND_ALLOW") {
            self.outbound.allow = value
                .split(',')
                .map(str::trim)
                .filter(|range| !range.is_empty())
                .map(|range| {
                    range
                        .parse()
                        .map_err(|err: ipnet::AddrParseError| ConfigError::Env {
                            name: name.clone(),
                            value: value.clone(),
                            reason: format!("{range:?}: {err}"),
                        })
                })
                .collect::<Result<_, _>>()?;
        }
        if let Some((name, value)) = get("ACCESS_TOKEN_TTL_SECS") {
            self.access_token_ttl_secs = number(name, value)?;
        }
        if let Some((name, value)) = get("LOW_BALANCE_GWEI") {
            self.low_balance_gwei = number(name, value)?;
        }
        if let Some((name, value)) = get("MAX_DOWNLOADS_PER_CONSUMER") {
            self.max_downloads_per_consumer =
                value
                    .trim()
                    .parse::<u32>()
                    .map_err(|err| ConfigError::Env {
                        name,
                        value: value.clone(),
                        reason: err.to_string(),
                    })?;
        }
        Ok(())
    }

    /// Checks every setting; returns the first problem.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let url = Url::parse(&self.rpc_url).map_err(|err| ValidationError::RpcUrl {
            url: self.rpc_url.clone(),
            reason: err.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https" | "ws" | "wss") {
            return Err(ValidationError::RpcScheme {
                url: self.rpc_url.clone(),
                scheme: url.scheme().to_owned(),
            });
        }
        check_fallbacks(&self.rpc_url, &self.rpc_fallback_urls)
            .map_err(ValidationError::RpcFallback)?;
        if self.rpc_max_lag_blocks > MAX_RPC_MAX_LAG_BLOCKS {
            return Err(ValidationError::RpcMaxLag {
                value: self.rpc_max_lag_blocks,
            });
        }
        if self.chain_id == 0 {
            return Err(ValidationError::ChainIdZero);
        }
        if self.addresses.as_os_str().is_empty() {
            return Err(ValidationError::AddressesEmpty);
        }
        if self.confirmations > MAX_CONFIRMATIONS {
            return Err(ValidationError::TooManyConfirmations {
                value: self.confirmations,
            });
        }
        if !(MIN_POLL_INTERVAL_MS..=MAX_POLL_INTERVAL_MS).contains(&self.poll_interval_ms) {
            return Err(ValidationError::PollInterval {
                value: self.poll_interval_ms,
            });
        }
        self.listen_addr()?;
        if self.database.as_os_str().is_empty() {
            return Err(ValidationError::DatabaseEmpty);
        }
        if !(1..=MAX_DOWNLOADS_PER_CONSUMER).contains(&self.max_downloads_per_consumer) {
            return Err(ValidationError::MaxDownloads {
                value: self.max_downloads_per_consumer,
            });
        }
        if !ACCESS_TOKEN_TTL_SECS.contains(&self.access_token_ttl_secs) {
            return Err(ValidationError::AccessTokenTtl {
                value: self.access_token_ttl_secs,
            });
        }
        if let Some(s3) = &self.s3 {
            s3.validate().map_err(ValidationError::S3)?;
        }
        if self.keystore.is_some() != self.password_file.is_some() {
            return Err(ValidationError::KeystorePassword);
        }
        if let Some(compute) = &self.compute {
            compute.validate().map_err(ValidationError::Compute)?;
        }
        let mut ids = vec![self.chain_id];
        let mut databases = vec![self.database.clone()];
        for chain in &self.chains {
            let bad = |reason: String| ValidationError::Chain {
                chain_id: chain.chain_id,
                reason,
            };
            if chain.chain_id == 0 {
                return Err(bad("chain_id must not be 0".to_owned()));
            }
            if ids.contains(&chain.chain_id) {
                return Err(bad("this chain is configured twice".to_owned()));
            }
            ids.push(chain.chain_id);
            insitu_client::rpc::Endpoint::parse(&chain.rpc_url)
                .map_err(|error| bad(format!("rpc_url: {error}")))?;
            check_fallbacks(&chain.rpc_url, &chain.rpc_fallback_urls)
                .map_err(|reason| bad(format!("rpc_fallback_urls: {reason}")))?;
            if chain.rpc_max_lag_blocks > MAX_RPC_MAX_LAG_BLOCKS {
                return Err(bad(format!(
                    "rpc_max_lag_blocks must be at most {MAX_RPC_MAX_LAG_BLOCKS}"
                )));
            }
            if chain.confirmations > MAX_CONFIRMATIONS {
                return Err(bad(format!(
                    "confirmations must be at most {MAX_CONFIRMATIONS}"
                )));
            }
            if chain.keystore.is_some() != chain.password_file.is_some() {
                return Err(bad(
                    "keystore and password_file go together (the keeper cannot prompt)".to_owned(),
                ));
            }
            let database = chain
                .database
                .clone()
                .unwrap_or_else(|| default_database(chain.chain_id));
            if databases.contains(&database) {
                return Err(bad(format!(
                    "database {} is another chain's: each chain has its own store",
                    database.display()
                )));
            }
            databases.push(database);
        }
        Ok(())
    }

    /// The first chain's endpoints, `rpc_url` first.
    ///
    /// # Errors
    ///
    /// A URL that does not parse (refused by [`Config::validate`] already).
    pub fn endpoints(
        &self,
    ) -> Result<Vec<insitu_client::rpc::Endpoint>, insitu_client::rpc::RpcError> {
        self.first_chain().endpoints()
    }

    /// The parsed `listen` address.
    pub fn listen_addr(&self) -> Result<SocketAddr, ValidationError> {
        self.listen
            .parse()
            .map_err(|err: std::net::AddrParseError| ValidationError::Listen {
                value: self.listen.clone(),
                reason: err.to_string(),
            })
    }

    /// The poll interval as a duration.
    pub fn poll_interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.poll_interval_ms)
    }

    /// Where the keeper's key comes from.
    pub fn key_source(&self) -> insitu_client::keys::KeySource {
        key_source(
            self.keystore.as_ref(),
            self.password_file.as_ref(),
            KEY_ENV.to_owned(),
        )
    }

    /// The API's public address.
    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
            .trim_end_matches('/')
            .to_owned()
    }

    /// Makes relative `addresses`, `database`, `data_root`, `keystore` and `password_file` paths
    /// relative to `base` instead.
    fn resolve_paths(&mut self, base: &Path) {
        if let Some(compute) = &mut self.compute {
            compute.resolve_paths(base);
        }
        for chain in &mut self.chains {
            for path in [
                chain.addresses.as_mut(),
                chain.database.as_mut(),
                chain.keystore.as_mut(),
                chain.password_file.as_mut(),
            ]
            .into_iter()
            .flatten()
            {
                if path.is_relative() && !path.as_os_str().is_empty() {
                    *path = base.join(&*path);
                }
            }
        }
        let optional = [self.keystore.as_mut(), self.password_file.as_mut()];
        for path in [&mut self.addresses, &mut self.database, &mut self.data_root]
            .into_iter()
            .chain(optional.into_iter().flatten())
        {
            if path.is_relative() && !path.as_os_str().is_empty() {
                *path = base.join(&*path);
            }
        }
    }
}

/// The store of an extra chain when its table names none (relative to the configuration's
/// folder once loaded).
fn default_database(chain_id: u64) -> PathBuf {
    PathBuf::from(format!("keeper-{chain_id}.db"))
}

/// A keystore with its password file when both are set, else the variable `var`.
fn key_source(
    keystore: Option<&PathBuf>,
    password_file: Option<&PathBuf>,
    var: String,
) -> insitu_client::keys::KeySource {
    match (keystore, password_file) {
        (Some(path), Some(password)) => insitu_client::keys::KeySource::Keystore {
            path: path.clone(),
            password: insitu_client::keys::Password::File(password.clone()),
        },
        _ => insitu_client::keys::KeySource::Var(var),
    }
}

/// Checks fallback endpoints: at most [`MAX_RPC_FALLBACK_URLS`], each a valid endpoint URL, none
/// repeating `primary` or another.
fn check_fallbacks(primary: &str, fallbacks: &[String]) -> Result<(), String> {
    if fallbacks.len() > MAX_RPC_FALLBACK_URLS {
        return Err(format!("at most {MAX_RPC_FALLBACK_URLS} endpoints"));
    }
    let mut seen = vec![primary.trim()];
    for text in fallbacks {
        let endpoint =
            insitu_client::rpc::Endpoint::parse(text).map_err(|error| error.to_string())?;
        if seen.contains(&text.trim()) {
            return Err(format!("{} is listed twice", endpoint.redacted()));
        }
        seen.push(text.trim());
    }
    Ok(())
}

impl S3Config {
    fn validate(&self) -> Result<(), String> {
        if let Some(endpoint) = &self.endpoint {
            let url = Url::parse(endpoint)
                .map_err(|error| format!("endpoint {endpoint:?} is not a URL ({error})"))?;
            match url.scheme() {
                "https" => {}
                "http" if self.allow_http => {}
                "http" => {
                    return Err(
                        "an http:// endpoint needs allow_http = true (TLS is the default)".into(),
                    );
                }
                other => return Err(format!("endpoint scheme {other}:// is not http(s)")),
            }
        }
        if self.region.trim().is_empty() {
            return Err("region is empty".into());
        }
        if self.buckets.is_empty() {
            return Err("buckets must list the buckets s3:// locations may name".into());
        }
        if let Some(bucket) = self.buckets.iter().find(|bucket| !valid_bucket(bucket)) {
            return Err(format!("{bucket:?} is not a bucket name"));
        }
        if self.access_key_id.is_empty() || self.secret_access_key.is_empty() {
            return Err(
                "access_key_id and secret_access_key are both needed (INSITU_KEEPER_S3_ACCESS_KEY_ID, INSITU_KEEPER_S3_SECRET_ACCESS_KEY)"
                    .into(),
            );
        }
        Ok(())
    }
}

/// Whether `name` is a valid S3 bucket name: 3 to 63 lowercase letters, digits, dots and
/// hyphens, starting and ending with a letter or digit.
fn valid_bucket(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_toml())
    }
}
