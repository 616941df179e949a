//! Connections to a chain's JSON-RPC endpoint over http, https, ws or wss.
//!
//! TLS is rustls. Certificates are checked against the system's certificate store (and the file
//! named by `SSL_CERT_FILE` when it is set, e.g. for a private CA), plus the bundled web roots for
//! wss. Endpoint URLs often carry an API key in their path or query, so errors and logs show
//! [`Endpoint::redacted`], never the whole URL.

use std::{fmt, time::Duration};

use alloy::{
    providers::{DynProvider, Provider, ProviderBuilder},
    transports::TransportError,
};
use url::Url;

/// How long connecting and the first request may take before the endpoint is called unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// Why an endpoint could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The text is not a URL.
    #[error("invalid RPC URL: {reason}")]
    InvalidUrl {
        /// What is wrong with it.
        reason: String,
    },
    /// The URL's scheme is not one of http, https, ws, wss.
    #[error("unsupported RPC URL scheme `{scheme}`: use http://, https://, ws:// or wss://")]
    UnsupportedScheme {
        /// The scheme given.
        scheme: String,
    },
    /// The endpoint did not answer (refused, TLS failure, not JSON-RPC, ...).
    #[error("the RPC endpoint {endpoint} is unreachable: {reason}")]
    Unreachable {
        /// The endpoint, redacted.
        endpoint: String,
        /// What failed, with the endpoint's URL redacted.
        reason: String,
    },
    /// The endpoint did not answer in time.
    #[error("the RPC endpoint {endpoint} did not answer within {} s", timeout.as_secs())]
    Timeout {
        /// The endpoint, redacted.
        endpoint: String,
        /// How long was waited.
        timeout: Duration,
    },
    /// The endpoint serves another chain than expected.
    #[error("the RPC endpoint {endpoint} serves chain {actual}, not the expected chain {expected}")]
    WrongChain {
        /// The endpoint, redacted.
        endpoint: String,
        /// The chain id that was asked for.
        expected: u64,
        /// The chain id the endpoint reported.
        actual: u64,
    },
}

/// The transport an endpoint uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `http://`
    Http,
    /// `https://` (TLS)
    Https,
    /// `ws://`
    Ws,
    /// `wss://` (TLS)
    Wss,
}

/// A checked JSON-RPC endpoint URL.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    url: Url,
    scheme: Scheme,
}

impl Endpoint {
    /// Parses `text`, accepting http, https, ws and wss URLs.
    ///
    /// # Errors
    ///
    /// [`RpcError::InvalidUrl`] or [`RpcError::UnsupportedScheme`].
    pub fn parse(text: &str) -> Result<Self, RpcError> {
        let url = Url::parse(text.trim()).map_err(|error| RpcError::InvalidUrl {
            reason: error.to_string(),
        })?;
        let scheme = match url.scheme() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            "ws" => Scheme::Ws,
            "wss" => Scheme::Wss,
            other => {
                return Err(RpcError::UnsupportedScheme {
                    scheme: other.to_owned(),
                });
            }
        };
        if url.host_str().is_none_or(str::is_empty) {
            return Err(RpcError::InvalidUrl {
                reason: "no host".to_owned(),
            });
        }
        Ok(Self { url, scheme })
    }

    /// The transport.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The full URL (may contain credentials: do not log it).
    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    /// Scheme, host and port only: the path, query and user info, where providers put API keys,
    /// are replaced by `…`.
    pub fn redacted(&self) -> String {
        let host = self.url.host_str().unwrap_or_default();
        let port = self
            .url
            .port()
            .map(|port| format!(":{port}"))
            .unwrap_or_default();
        let hidden = !self.url.username().is_empty()
            || self.url.password().is_some()
            || !self.url.path().trim_matches('/').is_empty()
            || self.url.query().is_some();
        format!(
            "{}://{host}{port}{}",
            self.url.scheme(),
            if hidden { "/…" } else { "" }
        )
    }
}

impl Endpoint {
    /// `text` with every occurrence of this endpoint's URL replaced by [`Endpoint::redacted`]
    /// (HTTP client errors quote the URL they requested).
    pub fn scrub(&self, text: &str) -> String {
        let full = self.url.as_str();
        let bare = full.trim_end_matches('/');
        let redacted = self.redacted();
        let text = text.replace(full, &redacted);
        if bare.len() > "https://".len() {
            text.replace(bare, &redacted)
        } else {
            text
        }
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Endpoint").field(&self.redacted()).finish()
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl std::str::FromStr for Endpoint {
    type Err = RpcError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

/// A provider connected to an endpoint whose chain id is known. It holds no key: transactions are
/// signed by a [`crate::tx::Sender`].
#[derive(Debug, Clone)]
pub struct Connection {
    /// The provider.
    pub provider: DynProvider,
    /// The chain id the endpoint reported.
    pub chain_id: u64,
    /// The endpoint.
    pub endpoint: Endpoint,
}

/// Connects to `endpoint`, reads its chain id and, when `expected_chain_id` is given, refuses
/// another chain.
///
/// # Errors
///
/// [`RpcError::Unreachable`], [`RpcError::Timeout`] or [`RpcError::WrongChain`].
pub async fn connect(
    endpoint: &Endpoint,
    expected_chain_id: Option<u64>,
) -> Result<Connection, RpcError> {
    let unreachable = |source: TransportError| RpcError::Unreachable {
        endpoint: endpoint.redacted(),
        reason: endpoint.scrub(&error_chain(&source)),
    };
    let timeout = || RpcError::Timeout {
        endpoint: endpoint.redacted(),
        timeout: CONNECT_TIMEOUT,
    };
    let connecting = async {
        ProviderBuilder::new()
            .disable_recommended_fillers()
            .connect(endpoint.as_str())
            .await
            .map(Provider::erased)
    };
    let provider = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .map_err(|_| timeout())?
        .map_err(unreachable)?;
    let chain_id = tokio::time::timeout(CONNECT_TIMEOUT, provider.get_chain_id())
        .await
        .map_err(|_| timeout())?
        .map_err(unreachable)?;
    if let Some(expected) = expected_chain_id
        && expected != chain_id
    {
        return Err(RpcError::WrongChain {
            endpoint: endpoint.redacted(),
            expected,
            actual: chain_id,
        });
    }
    Ok(Connection {
        provider,
        chain_id,
        endpoint: endpoint.clone(),
    })
}

/// `error` and its causes, `: `-separated, without repeating a cause that says the same.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![error.to_string()];
    let mut cause = error.source();
    while let Some(next) = cause {
        let text = next.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        cause = next.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_schemes_are_accepted_and_others_refused() {
        for (text, scheme) in [
            ("http://127.0.0.1:8545", Scheme::Http),
            ("https://rpc.example", Scheme::Https),
            ("ws://localhost:8546", Scheme::Ws),
            ("wss://rpc.example/ws", Scheme::Wss),
        ] {
            assert_eq!(Endpoint::parse(text).unwrap().scheme(), scheme);
        }
        assert!(matches!(
            Endpoint::parse("ftp://rpc.example"),
            Err(RpcError::UnsupportedScheme { scheme }) if scheme == "ftp"
        ));
        assert!(matches!(
            Endpoint::parse("rpc.example:8545"),
            Err(RpcError::UnsupportedScheme { .. } | RpcError::InvalidUrl { .. })
        ));
        assert!(matches!(
            Endpoint::parse("not a url"),
            Err(RpcError::InvalidUrl { .. })
        ));
    }

    #[test]
    fn api_keys_in_the_url_are_not_shown() {
        let endpoint =
            Endpoint::parse("https://user:pw@eth.example:8443/v2/SECRETKEY?key=x").unwrap();
        assert_eq!(endpoint.redacted(), "https://eth.example:8443/…");
        assert_eq!(format!("{endpoint}"), "https://eth.example:8443/…");
        assert!(!format!("{endpoint:?}").contains("SECRET"));
        assert_eq!(
            Endpoint::parse("http://127.0.0.1:8545").unwrap().redacted(),
            "http://127.0.0.1:8545"
        );
    }
}
