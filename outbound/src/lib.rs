//! The outbound guard: every URL an insitu service fetches on someone else's say-so (an
//! `https://` location in a publisher's document for the keeper, a metadata URL registered on
//! chain for the catalog) goes through an HTTP client that refuses to reach the service's own
//! machine, its private networks and cloud metadata services.
//!
//! - Host names are resolved by the guard itself, and the client connects only to the addresses
//!   the guard accepted: a name that resolves to a public address when checked and to a private
//!   one a moment later (DNS rebinding) cannot move the connection.
//! - Addresses written in the URL (`http://10.0.0.1/`) are checked before any request.
//! - Every redirect is checked the same way before it is followed, and at most
//!   [`MAX_REDIRECTS`] are. A request with headers (a token) is not redirected to another origin.
//! - Proxies from the environment are ignored (a proxy would resolve names itself).
//!
//! An operator whose files really are on a private network lists its ranges in the `[outbound]`
//! table's `allow`.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// Redirects followed for one request.
pub const MAX_REDIRECTS: usize = 5;
/// Time to open a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for the next bytes of a response.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the guard refused a URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Not `http` or `https`.
    #[error("{0}:// URLs are not fetched; use https:// or http://")]
    Scheme(String),
    /// The URL names no host.
    #[error("the URL has no host")]
    NoHost,
    /// The host is, or resolves only to, an address in a refused range.
    #[error("{host} is {address}, a {range} address, which is not fetched from")]
    Address {
        /// The host as the URL names it.
        host: String,
        /// The refused address.
        address: IpAddr,
        /// The range it is in.
        range: &'static str,
    },
    /// The name does not resolve.
    #[error("{host} does not resolve: {reason}")]
    Unresolved {
        /// The host.
        host: String,
        /// The resolver's answer.
        reason: String,
    },
    /// Too many redirects.
    #[error("more than {MAX_REDIRECTS} redirects")]
    TooManyRedirects,
    /// A redirect to another origin, for a request whose headers must not go there.
    #[error("a redirect to another host, which would receive the location's headers")]
    CrossOrigin,
}

/// The refused range `address` is in, if any: loopback, private (RFC 1918), shared (RFC 6598),
/// link-local, cloud metadata, unique-local, site-local, multicast, unspecified, broadcast and
/// the other special-purpose ranges that no public file server is in. IPv6 addresses that embed
/// an IPv4 address (mapped, NAT64, 6to4) are judged by that address.
pub fn refused_range(address: IpAddr) -> Option<&'static str> {
    match address {
        IpAddr::V4(v4) => refused_v4(v4),
        IpAddr::V6(v6) => refused_v6(v6),
    }
}

fn refused_v4(address: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = address.octets();
    // Cloud metadata first: some of these lie in ranges below, and the name tells more.
    if address == Ipv4Addr::new(169, 254, 169, 254) || address == Ipv4Addr::new(100, 100, 100, 200)
    {
        return Some("cloud metadata");
    }
    let range = match (a, b, c) {
        (0, ..) => "unspecified (0.0.0.0/8)",
        (10, ..) => "private (10.0.0.0/8)",
        (100, 64..=127, _) => "shared (100.64.0.0/10)",
        (127, ..) => "loopback",
        (169, 254, _) => "link-local",
        (172, 16..=31, _) => "private (172.16.0.0/12)",
        (192, 0, 0) => "special-purpose (192.0.0.0/24)",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (192, 168, _) => "private (192.168.0.0/16)",
        (198, 18..=19, _) => "benchmarking (198.18.0.0/15)",
        (224..=239, ..) => "multicast",
        (240..=255, ..) => "reserved (240.0.0.0/4)",
        _ => return None,
    };
    Some(range)
}

fn refused_v6(address: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = embedded_v4(address) {
        return refused_v4(v4);
    }
    let segments = address.segments();
    if address == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        return Some("cloud metadata");
    }
    let range = match segments[0] {
        _ if address.is_unspecified() => "unspecified (::)",
        _ if address.is_loopback() => "loopback",
        // The rest of ::/96 (IPv4-compatible, deprecated) and ::/8 in general.
        0x0000..=0x00ff => "reserved (::/8)",
        0x0100 if segments[1..4] == [0, 0, 0] => "discard-only (100::/64)",
        0x2001 if segments[1] == 0x0db8 => "documentation",
        0xfc00..=0xfdff => "unique-local",
        0xfe80..=0xfebf => "link-local",
        0xfec0..=0xfeff => "site-local",
        0xff00..=0xffff => "multicast",
        _ => return None,
    };
    Some(range)
}

/// The IPv4 address an IPv6 address stands for: IPv4-mapped (`::ffff:a.b.c.d`), NAT64
/// (`64:ff9b::a.b.c.d`, and `64:ff9b:1::/48` for local use) and 6to4 (`2002:aabb:ccdd::`).
fn embedded_v4(address: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = address.segments();
    let from = |high: u16, low: u16| {
        let [a, b] = high.to_be_bytes();
        let [c, d] = low.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    match s {
        [0, 0, 0, 0, 0, 0xffff, high, low] => Some(from(high, low)),
        [0x64, 0xff9b, 0, 0, 0, 0, high, low] => Some(from(high, low)),
        // NAT64 for local use (RFC 8215), as the last 32 bits.
        [0x64, 0xff9b, 0x0001, .., high, low] => Some(from(high, low)),
        [0x2002, high, low, ..] => Some(from(high, low)),
        _ => None,
    }
}

/// Which addresses may be fetched from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    allow: Vec<IpNet>,
}

impl Policy {
    /// Public addresses, and the refused ranges that `allow` lists.
    pub fn new(allow: Vec<IpNet>) -> Self {
        Self { allow }
    }

    /// Whether `address` may be reached; the refused range otherwise.
    pub fn check(&self, address: IpAddr) -> Result<(), &'static str> {
        match refused_range(address) {
            Some(_) if self.allow.iter().any(|net| net.contains(&address)) => Ok(()),
            Some(range) => Err(range),
            None => Ok(()),
        }
    }

    /// Checks a URL before it is requested: its scheme, and its host when it is an address.
    /// Names are checked when they are resolved.
    ///
    /// # Errors
    ///
    /// [`Refused`].
    pub fn check_url(&self, url: &Url) -> Result<(), Refused> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refused::Scheme(url.scheme().to_owned()));
        }
        let address = match url.host().ok_or(Refused::NoHost)? {
            Host::Domain(_) => return Ok(()),
            Host::Ipv4(v4) => IpAddr::V4(v4),
            Host::Ipv6(v6) => IpAddr::V6(v6),
        };
        self.check(address).map_err(|range| Refused::Address {
            host: url.host_str().unwrap_or_default().to_owned(),
            address,
            range,
        })
    }

    /// An HTTP client that reaches only what this policy allows (see the module's docs).
    ///
    /// # Errors
    ///
    /// The TLS stack could not be set up.
    pub fn client(&self) -> reqwest::Result<GuardedClient> {
        Ok(GuardedClient {
            open: self.build(false)?,
            same_origin: self.build(true)?,
            policy: self.clone(),
        })
    }

    /// A client whose redirects pass the policy, and stay on the first URL's origin when
    /// `same_origin`.
    fn build(&self, same_origin: bool) -> reqwest::Result<reqwest::Client> {
        let policy = Arc::new(self.clone());
        let redirects = policy.clone();
        reqwest::Client::builder()
            .no_proxy()
            .dns_resolver(GuardedResolver { policy })
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() > MAX_REDIRECTS {
                    return attempt.error(Refused::TooManyRedirects);
                }
                if let Err(refused) = redirects.check_url(attempt.url()) {
                    return attempt.error(refused);
                }
                let first = attempt.previous().first().map(Url::origin);
                if same_origin && first.is_some_and(|first| first != attempt.url().origin()) {
                    return attempt.error(Refused::CrossOrigin);
                }
                attempt.follow()
            }))
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .user_agent(concat!("insitu/", env!("CARGO_PKG_VERSION")))
            .build()
    }
}

/// An HTTP client behind the guard. Requests start from [`GuardedClient::request`], which checks
/// the URL first; names are checked as they resolve and redirects before they are followed.
#[derive(Debug, Clone)]
pub struct GuardedClient {
    /// Follows redirects anywhere the policy allows.
    open: reqwest::Client,
    /// Follows redirects on the first URL's origin only.
    same_origin: reqwest::Client,
    policy: Policy,
}

impl GuardedClient {
    /// Checks `url` as [`GuardedClient::request`] does, without a request.
    ///
    /// # Errors
    ///
    /// [`Refused`].
    pub fn check(&self, url: &Url) -> Result<(), Refused> {
        self.policy.check_url(url)
    }

    /// The client to reach the origin of `url` with, once the URL passes the guard, for code that
    /// builds its own requests to that origin (every name it resolves and every redirect it
    /// follows is still checked; an address written in a later URL is not, so build those from
    /// `url`'s origin only).
    ///
    /// # Errors
    ///
    /// [`Refused`].
    pub fn client_for(&self, url: &Url) -> Result<reqwest::Client, Refused> {
        self.policy.check_url(url)?;
        Ok(self.open.clone())
    }

    /// A request for `url` with `headers`, once the URL passes the guard. A request with headers
    /// (a token, say) follows redirects on its own origin only, so the headers never go to
    /// another host.
    ///
    /// # Errors
    ///
    /// [`Refused`].
    pub fn request(
        &self,
        method: reqwest::Method,
        url: &Url,
        headers: reqwest::header::HeaderMap,
    ) -> Result<reqwest::RequestBuilder, Refused> {
        self.policy.check_url(url)?;
        let client = if headers.is_empty() {
            &self.open
        } else {
            &self.same_origin
        };
        Ok(client.request(method, url.clone()).headers(headers))
    }
}

/// The refusal behind a failed request, if the guard caused it.
pub fn refusal(error: &reqwest::Error) -> Option<Refused> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = source {
        if let Some(refused) = error.downcast_ref::<Refused>() {
            return Some(refused.clone());
        }
        source = error.source();
    }
    None
}

/// Resolves names with the system's resolver and hands the HTTP client only the addresses the
/// policy accepts, so it connects to nothing else.
struct GuardedResolver {
    policy: Arc<Policy>,
}

impl fmt::Debug for GuardedResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardedResolver").finish_non_exhaustive()
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|error| Refused::Unresolved {
                    host: host.clone(),
                    reason: error.to_string(),
                })?
                .collect();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|address| match policy.check(address.ip()) {
                    Ok(()) => true,
                    Err(range) => {
                        refused.get_or_insert((address.ip(), range));
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                return Err(match refused {
                    Some((address, range)) => Refused::Address {
                        host,
                        address,
                        range,
                    },
                    None => Refused::Unresolved {
                        host,
                        reason: "no address".to_owned(),
                    },
                }
                .into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(address: &str) -> Option<&'static str> {
        refused_range(address.parse().unwrap())
    }

    #[test]
    fn every_refused_range_is_named() {
        for (address, expected) in [
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("::1", "loopback"),
            ("10.1.2.3", "private (10.0.0.0/8)"),
            ("172.16.0.1", "private (172.16.0.0/12)"),
            ("172.31.255.255", "private (172.16.0.0/12)"),
            ("192.168.1.1", "private (192.168.0.0/16)"),
            ("100.64.0.1", "shared (100.64.0.0/10)"),
            ("169.254.10.1", "link-local"),
            ("fe80::1", "link-local"),
            ("169.254.169.254", "cloud metadata"),
            ("100.100.100.200", "cloud metadata"),
            ("fd00:ec2::254", "cloud metadata"),
            ("fc00::1", "unique-local"),
            ("fd12:3456::1", "unique-local"),
            ("fec0::1", "site-local"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("ff02::1", "multicast"),
            ("0.0.0.0", "unspecified (0.0.0.0/8)"),
            ("::", "unspecified (::)"),
            ("255.255.255.255", "reserved (240.0.0.0/4)"),
            ("192.0.2.1", "documentation"),
            ("2001:db8::1", "documentation"),
            ("198.18.0.1", "benchmarking (198.18.0.0/15)"),
            ("::10.0.0.1", "reserved (::/8)"),
            // IPv6 forms of refused IPv4 addresses.
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "cloud metadata"),
            ("64:ff9b::10.0.0.1", "private (10.0.0.0/8)"),
            ("64:ff9b:1::a9fe:a9fe", "cloud metadata"),
            ("2002:c0a8:0101::1", "private (192.168.0.0/16)"),
        ] {
            assert_eq!(range(address), Some(expected), "{address}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for address in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "2002:0808:0808::1",
        ] {
            assert_eq!(range(address), None, "{address}");
        }
    }

    #[test]
    fn an_allowed_range_opens_only_itself() {
        let policy = Policy::new(vec!["10.1.0.0/16".parse().unwrap()]);
        assert_eq!(policy.check("10.1.2.3".parse().unwrap()), Ok(()));
        assert_eq!(
            policy.check("10.2.0.1".parse().unwrap()),
            Err("private (10.0.0.0/8)")
        );
        assert_eq!(
            policy.check("169.254.169.254".parse().unwrap()),
            Err("cloud metadata")
        );
    }

    #[test]
    fn urls_are_checked_before_any_request() {
        let policy = Policy::default();
        let check = |url: &str| policy.check_url(&Url::parse(url).unwrap());
        assert_eq!(check("https://files.example/a.csv"), Ok(()));
        assert_eq!(check("http://8.8.8.8/a.csv"), Ok(()));
        assert_eq!(
            check("ftp://files.example/a.csv"),
            Err(Refused::Scheme("ftp".to_owned()))
        );
        assert_eq!(
            check("http://169.254.169.254/latest/meta-data/"),
            Err(Refused::Address {
                host: "169.254.169.254".to_owned(),
                address: "169.254.169.254".parse().unwrap(),
                range: "cloud metadata",
            })
        );
        assert!(matches!(
            check("http://[::ffff:7f00:1]:8080/"),
            Err(Refused::Address {
                range: "loopback",
                ..
            })
        ));
        // The URL parser normalises the odd spellings of an address before the check.
        for sneaky in ["http://2130706433/", "http://0x7f.1/", "http://127.1/"] {
            assert!(
                matches!(
                    check(sneaky),
                    Err(Refused::Address {
                        range: "loopback",
                        ..
                    })
                ),
                "{sneaky}"
            );
        }
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_a_refused_address_is_refused_at_connect() {
        let client = Policy::default().client().unwrap();
        let url = Url::parse("http://localhost:9/").unwrap();
        let error = client
            .request(reqwest::Method::GET, &url, Default::default())
            .unwrap()
            .send()
            .await
            .expect_err("refused");
        assert!(
            matches!(
                refusal(&error),
                Some(Refused::Address {
                    range: "loopback",
                    ..
                })
            ),
            "{error:?}"
        );
    }
}
