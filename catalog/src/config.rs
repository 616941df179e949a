//! The catalog's configuration file (TOML).
//!
//! ```toml
//! listen = "127.0.0.1:8600"
//! database = "catalog.db"
//!
//! [[chains]]
//! rpc_url = "https://rpc.example"
//! addresses = "deployment.json"   # written by `insitu deploy`
//! confirmations = 12
//!
//! [outbound]
//! allow = []                      # private ranges metadata may be fetched from
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Default `listen`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8600";
/// Default `poll_interval_ms`.
pub const DEFAULT_POLL_INTERVAL_MS: u64 = 2_000;
/// Default `max_document_kb`.
pub const DEFAULT_MAX_DOCUMENT_KB: usize = 256;

/// Why the configuration is refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It is not valid TOML for this configuration.
    #[error("{}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A value is out of range.
    #[error("{field}: {message}")]
    Invalid {
        /// The setting.
        field: String,
        /// What is wrong.
        message: String,
    },
}

/// The catalog's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the API and web page listen on.
    pub listen: String,
    /// The database: the path of a SQLite file, or a `postgres://` URL.
    pub database: String,
    /// How often each chain is polled, in milliseconds.
    pub poll_interval_ms: u64,
    /// Largest metadata document fetched, in KiB.
    pub max_document_kb: usize,
    /// The chains indexed.
    pub chains: Vec<ChainConfig>,
    /// What metadata URLs may reach.
    pub outbound: OutboundConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.to_owned(),
            database: "catalog.db".to_owned(),
            poll_interval_ms: DEFAULT_POLL_INTERVAL_MS,
            max_document_kb: DEFAULT_MAX_DOCUMENT_KB,
            chains: Vec::new(),
            outbound: OutboundConfig::default(),
        }
    }
}

/// One chain (a `[[chains]]` table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainConfig {
    /// JSON-RPC endpoint (`http` or `https`).
    pub rpc_url: String,
    /// The deployment's addresses file (its chain id and first block included).
    pub addresses: PathBuf,
    /// Blocks behind the head the index stays.
    #[serde(default)]
    pub confirmations: u64,
}

/// The `[outbound]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboundConfig {
    /// Ranges the outbound guard would refuse (loopback, private, ...) that metadata may be
    /// fetched from all the same.
    pub allow: Vec<ipnet::IpNet>,
}

/// Whether a `database` setting names a PostgreSQL server.
pub fn is_postgres(database: &str) -> bool {
    database.starts_with("postgres://") || database.starts_with("postgresql://")
}

/// The `database` setting as it may be shown: a PostgreSQL URL without its password, whether in
/// its user part or in a `password` parameter.
pub fn shown(database: &str) -> String {
    match url::Url::parse(database) {
        Ok(mut url) if is_postgres(database) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("***"));
            }
            if url.query().is_some() {
                let pairs: Vec<(String, String)> = url
                    .query_pairs()
                    .map(|(name, value)| {
                        let value = if name.eq_ignore_ascii_case("password") {
                            "***".to_owned()
                        } else {
                            value.into_owned()
                        };
                        (name.into_owned(), value)
                    })
                    .collect();
                url.query_pairs_mut().clear().extend_pairs(pairs);
            }
            url.to_string()
        }
        // Not a URL: the setting is shown only when it is a file path.
        Err(_) if is_postgres(database) => "(a PostgreSQL URL)".to_owned(),
        _ => database.to_owned(),
    }
}

impl Config {
    /// Reads and checks the file at `path`; relative paths in it are taken from its folder.
    ///
    /// # Errors
    ///
    /// [`ConfigError`].
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config: Self = toml::from_str(&text).map_err(|error| ConfigError::Parse {
            path: path.to_owned(),
            message: error.message().to_owned(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        if !is_postgres(&config.database) {
            config.database = base.join(&config.database).display().to_string();
        }
        for chain in &mut config.chains {
            chain.addresses = base.join(&chain.addresses);
        }
        config.check()?;
        Ok(config)
    }

    /// Checks the values.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming the first bad setting.
    pub fn check(&self) -> Result<(), ConfigError> {
        let invalid = |field: String, message: &str| {
            Err(ConfigError::Invalid {
                field,
                message: message.to_owned(),
            })
        };
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return invalid("listen".into(), "not an address and port");
        }
        if self.chains.is_empty() {
            return invalid("chains".into(), "at least one [[chains]] table is needed");
        }
        if !(100..=600_000).contains(&self.poll_interval_ms) {
            return invalid("poll_interval_ms".into(), "from 100 to 600000");
        }
        if !(1..=16_384).contains(&self.max_document_kb) {
            return invalid("max_document_kb".into(), "from 1 to 16384");
        }
        for (index, chain) in self.chains.iter().enumerate() {
            match url::Url::parse(&chain.rpc_url) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => {}
                _ => {
                    return invalid(
                        format!("chains[{index}].rpc_url"),
                        "an http:// or https:// URL",
                    );
                }
            }
            if chain.confirmations > 1_000 {
                return invalid(format!("chains[{index}].confirmations"), "at most 1000");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(&path)
    }

    #[test]
    fn a_minimal_file_takes_the_defaults_and_paths_from_its_folder() {
        let config = load(
            "[[chains]]\nrpc_url = \"http://127.0.0.1:8545\"\naddresses = \"deployment.json\"\n",
        )
        .unwrap();
        assert_eq!(config.listen, DEFAULT_LISTEN);
        assert!(config.database.ends_with("catalog.db"));
        assert!(std::path::Path::new(&config.database).is_absolute());
        assert!(config.chains[0].addresses.is_absolute());
        assert_eq!(config.chains[0].confirmations, 0);
    }

    #[test]
    fn a_postgres_url_is_kept_and_shown_without_its_password() {
        let config = load(
            "database = \"postgres://catalog:secret@db.internal:5432/catalog\"\n\
             [[chains]]\nrpc_url = \"http://127.0.0.1:8545\"\naddresses = \"d.json\"\n",
        )
        .unwrap();
        assert_eq!(
            config.database,
            "postgres://catalog:secret@db.internal:5432/catalog"
        );
        assert_eq!(
            shown(&config.database),
            "postgres://catalog:***@db.internal:5432/catalog"
        );
        assert_eq!(
            shown("postgres://catalog@db/catalog?sslmode=disable&password=secret"),
            "postgres://catalog@db/catalog?sslmode=disable&password=***"
        );
        assert_eq!(shown("postgres://[broken"), "(a PostgreSQL URL)");
    }

    #[test]
    fn bad_settings_are_named() {
        let error = |text: &str| load(text).unwrap_err().to_string();
        assert!(error("").contains("chains"));
        assert!(error("nonsense = 1\n").contains("unknown field"));
        let chain = "[[chains]]\nrpc_url = \"ftp://x\"\naddresses = \"d.json\"\n";
        assert!(error(chain).contains("chains[0].rpc_url"));
        let chain = "listen = \"here\"\n[[chains]]\nrpc_url = \"http://x\"\naddresses = \"d\"\n";
        assert!(error(chain).contains("listen"));
    }
}
