//! Federated runs: a compute job whose runtime is a Flower SuperNode (a `[compute.runtimes]`
//! entry with a `flower` table).
//!
//! The consumer's order names, as its signed parameters, the aggregator's address
//! ([`SUPERLINK`]), the certificate of the authority its TLS certificate comes from
//! ([`SUPERLINK_CA`]) and the rounds to serve ([`ROUNDS`]); its algorithm file is the Flower app
//! (FAB) itself. The keeper then runs, in the sandbox, `insitu_flower.supernode` (Flower's
//! SuperNode that runs only the app whose SHA-256 the order signed, records each update it
//! delivers, and ends once the rounds are served) with:
//!
//! - one egress: `127.0.0.1:`[`EGRESS_PORT`] inside reaches the aggregator's address, resolved
//!   by the keeper and held against the runtime's `aggregators_allow` (public addresses,
//!   and the ranges listed), never one of the keeper's own services, and nothing else;
//! - a key of its own for the run (ECDSA P-384, OpenSSH format), whose public half the job's
//!   status shows: the consumer registers it with its SuperLink, which admits no other node;
//! - the asset's files at `/data`, read-only, as for any job.
//!
//! When the run ends, the SuperNode's record becomes the provider's signed round log
//! ([`insitu_bindings::rounds`]), which is the job's result.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use alloy::{
    primitives::{B256, Bytes},
    signers::{SignerSync, local::PrivateKeySigner},
    sol_types::Eip712Domain,
};
use insitu_bindings::rounds::{RoundLog, RoundLogError, SignedRoundLog};
use insitu_sandbox::{Egress, Mount};

use crate::{config::FlowerRuntime, outbound::Policy};

/// The parameter naming the aggregator (the consumer's SuperLink): `host:port`, the host a name
/// or an address (IPv6 in brackets).
pub const SUPERLINK: &str = "superlink";
/// The parameter holding the PEM certificate of the authority the SuperLink's TLS certificate
/// comes from. The certificate must name the address the SuperNode dials, `127.0.0.1`.
pub const SUPERLINK_CA: &str = "superlink-ca";
/// The parameter giving the rounds to serve, 1 to [`MAX_ROUNDS`].
pub const ROUNDS: &str = "rounds";
/// Most rounds one order may ask.
pub const MAX_ROUNDS: u32 = 1000;
/// The port of the job's own loopback its egress listens on.
pub const EGRESS_PORT: u16 = 7000;
/// Where the run's key and the authority's certificate are mounted inside.
pub const KEY_INSIDE: &str = "/key";
/// Where the `insitu_flower` package's folder is mounted inside.
pub const PACKAGE_INSIDE: &str = "/opt/insitu-flower";
/// The SuperNode's record of the replies it delivered, in `/output`.
pub const RECORD: &str = "rounds.jsonl";
/// The signed round log, the result of a federated job.
pub const ROUND_LOG: &str = "round-log.json";
/// The run's private key, in its key folder.
pub const PRIVATE_KEY: &str = "supernode";
/// The run's public key (OpenSSH format), in its key folder.
pub const PUBLIC_KEY: &str = "supernode.pub";
/// The authority's certificate, in the key folder.
pub const CA_FILE: &str = "superlink-ca.pem";
/// Longest a record may be (a line is a few hundred bytes; [`MAX_ROUNDS`] rounds fit).
const MAX_RECORD_BYTES: u64 = 4 * 1024 * 1024;
/// How long the SuperNode keeps asking the SuperLink to admit it: the consumer registers its key
/// once the job's status shows it, after the job has started.
pub const ADMISSION_WAIT_SECS: u32 = 600;
/// Time allowed to resolve the aggregator's name.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a federated run cannot go ahead, or its log not be made.
#[derive(Debug, thiserror::Error)]
pub enum FederatedError {
    /// A parameter is missing or malformed.
    #[error("{0}")]
    Params(String),
    /// The aggregator's address cannot be reached from here, or may not be.
    #[error("{0}")]
    Aggregator(String),
    /// The run's files could not be written or read.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The SuperNode's record does not make a round log.
    #[error(transparent)]
    RoundLog(#[from] RoundLogError),
    /// Signing failed.
    #[error("signing the round log: {0}")]
    Sign(String),
}

/// What a federated order's parameters ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederatedParams {
    /// The aggregator's host (a name, or an address; IPv6 without brackets).
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The PEM certificate of its TLS certificate's authority.
    pub ca: String,
    /// Rounds to serve.
    pub rounds: u32,
}

/// Reads a federated order's parameters.
///
/// # Errors
///
/// [`FederatedError::Params`] naming the parameter and what it must be.
pub fn parse_params(params: &BTreeMap<String, String>) -> Result<FederatedParams, FederatedError> {
    let refuse = |text: String| FederatedError::Params(text);
    let superlink = params
        .get(SUPERLINK)
        .ok_or_else(|| refuse(format!("a federated order needs `{SUPERLINK}` (host:port)")))?;
    let (host, port) = superlink
        .rsplit_once(':')
        .ok_or_else(|| refuse(format!("`{SUPERLINK}` {superlink:?} is not host:port")))?;
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|port| *port != 0)
        .ok_or_else(|| {
            refuse(format!(
                "`{SUPERLINK}` {superlink:?}: the port is 1 to 65535"
            ))
        })?;
    let host = match host
        .strip_prefix('[')
        .and_then(|host| host.strip_suffix(']'))
    {
        Some(v6) if v6.parse::<std::net::Ipv6Addr>().is_ok() => v6.to_owned(),
        Some(_) => {
            return Err(refuse(format!(
                "`{SUPERLINK}` {superlink:?}: not an IPv6 address"
            )));
        }
        None if !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'.' || byte == b'-') =>
        {
            host.to_owned()
        }
        None => {
            return Err(refuse(format!(
                "`{SUPERLINK}` {superlink:?}: the host is a name or an address"
            )));
        }
    };
    let ca = params
        .get(SUPERLINK_CA)
        .ok_or_else(|| {
            refuse(format!(
                "a federated order needs `{SUPERLINK_CA}`, the PEM certificate of the authority \
                 of the SuperLink's TLS certificate"
            ))
        })?
        .clone();
    let begin = ca.find("-----BEGIN CERTIFICATE-----");
    let end = ca.find("-----END CERTIFICATE-----");
    if !matches!((begin, end), (Some(begin), Some(end)) if begin < end) || !ca.is_ascii() {
        return Err(refuse(format!("`{SUPERLINK_CA}` is not a PEM certificate")));
    }
    let rounds = params
        .get(ROUNDS)
        .and_then(|rounds| rounds.parse::<u32>().ok())
        .filter(|rounds| (1..=MAX_ROUNDS).contains(rounds))
        .ok_or_else(|| {
            refuse(format!(
                "`{ROUNDS}` must be a number of rounds, 1 to {MAX_ROUNDS}"
            ))
        })?;
    Ok(FederatedParams {
        host,
        port,
        ca,
        rounds,
    })
}

/// The aggregator's address: its host resolved, the first address `policy` lets the keeper
/// reach (public addresses, and the runtime's `aggregators_allow` ranges) that is none of the
/// keeper's own services (`own`: its API, its RPC endpoints; an entry with an unspecified
/// address stands for its port on every address). The egress then connects to that address
/// only, whatever the name resolves to later.
///
/// # Errors
///
/// [`FederatedError::Aggregator`] when the name does not resolve, or only to refused addresses.
pub async fn resolve(
    params: &FederatedParams,
    policy: &Policy,
    own: &[SocketAddr],
) -> Result<SocketAddr, FederatedError> {
    let lookup = tokio::net::lookup_host((params.host.as_str(), params.port));
    let addresses: Vec<SocketAddr> = tokio::time::timeout(RESOLVE_TIMEOUT, lookup)
        .await
        .map_err(|_| FederatedError::Aggregator(format!("resolving {} timed out", params.host)))?
        .map_err(|error| {
            FederatedError::Aggregator(format!("the aggregator {}: {error}", params.host))
        })?
        .collect();
    let mut refusals = Vec::new();
    for address in &addresses {
        let ours = own.iter().any(|service| {
            service.port() == address.port()
                && (service.ip() == address.ip() || service.ip().is_unspecified())
        });
        if ours {
            refusals.push(format!("{address} (one of the keeper's own services)"));
            continue;
        }
        match policy.check(address.ip()) {
            Ok(()) => return Ok(*address),
            Err(range) => refusals.push(format!("{} ({range})", address.ip())),
        }
    }
    Err(FederatedError::Aggregator(format!(
        "the aggregator {} is refused by the outbound policy: {}",
        params.host,
        if refusals.is_empty() {
            "no address".to_owned()
        } else {
            refusals.join(", ")
        }
    )))
}

/// Makes the run's key folder beneath `workspace`: a new SuperNode key pair and the
/// authority's certificate. Returns the folder; the caller shares it with the jobs' account.
///
/// # Errors
///
/// When a file cannot be written or the key not made.
pub fn write_keys(workspace: &Path, params: &FederatedParams) -> Result<PathBuf, FederatedError> {
    use ssh_key::{Algorithm, EcdsaCurve, LineEnding, PrivateKey, rand_core::OsRng};
    let folder = workspace.join("key");
    std::fs::create_dir_all(&folder)?;
    let key = PrivateKey::random(
        &mut OsRng,
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP384,
        },
    )
    .map_err(|error| FederatedError::Io(std::io::Error::other(error.to_string())))?;
    let private = key
        .to_openssh(LineEnding::LF)
        .map_err(|error| FederatedError::Io(std::io::Error::other(error.to_string())))?;
    let public = key
        .public_key()
        .to_openssh()
        .map_err(|error| FederatedError::Io(std::io::Error::other(error.to_string())))?;
    std::fs::write(folder.join(PRIVATE_KEY), private.as_bytes())?;
    std::fs::write(folder.join(PUBLIC_KEY), format!("{public}\n"))?;
    std::fs::write(folder.join(CA_FILE), &params.ca)?;
    Ok(folder)
}

/// The run's public key, as its status shows it, once its key folder is made.
pub fn public_key(workspace: &Path) -> Option<String> {
    std::fs::read_to_string(workspace.join("key").join(PUBLIC_KEY))
        .ok()
        .map(|key| key.trim().to_owned())
}

/// The SuperNode's command inside the sandbox.
pub fn command(runtime: &FlowerRuntime, fab_sha256: &str, rounds: u32) -> Vec<String> {
    let key = Path::new(KEY_INSIDE);
    [
        runtime.environment.join("bin/python").display().to_string(),
        "-m".into(),
        "insitu_flower.supernode".into(),
        "--rounds-log".into(),
        format!("/output/{RECORD}"),
        "--fab-sha256".into(),
        fab_sha256.to_owned(),
        "--rounds".into(),
        rounds.to_string(),
        "--admission-wait".into(),
        ADMISSION_WAIT_SECS.to_string(),
        "--".into(),
        "--superlink".into(),
        format!("127.0.0.1:{EGRESS_PORT}"),
        "--root-certificates".into(),
        key.join(CA_FILE).display().to_string(),
        "--auth-supernode-private-key".into(),
        key.join(PRIVATE_KEY).display().to_string(),
    ]
    .into()
}

/// What a federated job mounts besides its data: the Flower environment (at its own path, which
/// its scripts name), the `insitu_flower` package and the run's key folder.
pub fn mounts(runtime: &FlowerRuntime, keys: &Path) -> Vec<Mount> {
    vec![
        Mount {
            host: runtime.environment.clone(),
            inside: runtime.environment.clone(),
        },
        Mount {
            host: runtime.package.clone(),
            inside: PathBuf::from(PACKAGE_INSIDE),
        },
        Mount {
            host: keys.to_path_buf(),
            inside: PathBuf::from(KEY_INSIDE),
        },
    ]
}

/// The variables a federated job needs: the environment's programs first on its path, and the
/// package importable.
pub fn env(runtime: &FlowerRuntime) -> Vec<(String, String)> {
    vec![
        (
            "PATH".into(),
            format!(
                "{}:/usr/bin:/bin",
                runtime.environment.join("bin").display()
            ),
        ),
        ("PYTHONPATH".into(), PACKAGE_INSIDE.into()),
    ]
}

/// The job's egress to the aggregator at `to`.
pub fn egress(to: SocketAddr) -> Egress {
    Egress {
        port: EGRESS_PORT,
        to,
    }
}

/// Turns the SuperNode's record at `record` (in the job's output) into the provider's signed
/// round log at `signed` (in the run's workspace, where the job cannot write): builds it for
/// `(agreement, did)`, signs it with `key` in `domain`, and writes it atomically. A log already
/// at `signed` (a publishing the keeper's crash interrupted) is kept when it is this keeper's
/// for this agreement. The record is read only when it is a regular file (never through a
/// link). Returns the log.
///
/// # Errors
///
/// When the record is missing, not a regular file, too large or does not make a log, or
/// signing or writing fails.
pub fn sign_round_log(
    record: &Path,
    signed: &Path,
    (agreement, did): (B256, B256),
    key: &PrivateKeySigner,
    domain: &Eip712Domain,
    closed_at: u64,
) -> Result<SignedRoundLog, FederatedError> {
    use std::{io::Read, os::unix::fs::OpenOptionsExt};
    if let Ok(bytes) = std::fs::read(signed)
        && let Ok(earlier) = serde_json::from_slice::<SignedRoundLog>(&bytes)
        && earlier.verify(domain).ok() == Some(key.address())
        && (earlier.log.agreementId, earlier.log.did) == (agreement, did)
    {
        return Ok(earlier);
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(record)
        .map_err(|error| match error.kind() {
            std::io::ErrorKind::NotFound => FederatedError::RoundLog(RoundLogError::Empty),
            _ => FederatedError::Io(error),
        })?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(FederatedError::Params(
            "the SuperNode's record is not a regular file".into(),
        ));
    }
    if metadata.len() > MAX_RECORD_BYTES {
        return Err(FederatedError::Params(format!(
            "the SuperNode's record is {} bytes, more than {MAX_RECORD_BYTES}",
            metadata.len()
        )));
    }
    let mut text = String::new();
    file.take(MAX_RECORD_BYTES).read_to_string(&mut text)?;
    let log = RoundLog::from_records(&text, agreement, did, key.address(), closed_at)?;
    let signature = key
        .sign_hash_sync(&log.signing_hash(domain))
        .map_err(|error| FederatedError::Sign(error.to_string()))?;
    let made = SignedRoundLog {
        log,
        signature: Bytes::from(signature.as_bytes().to_vec()),
    };
    let json = serde_json::to_vec_pretty(&made)
        .map_err(|error| FederatedError::Sign(error.to_string()))?;
    let partial = signed.with_extension("partial");
    std::fs::write(&partial, json)?;
    std::fs::rename(&partial, signed)?;
    Ok(made)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    #[test]
    fn a_federated_order_names_its_aggregator_its_authority_and_its_rounds() {
        let parsed = parse_params(&params(&[
            (SUPERLINK, "aggregator.example:9092"),
            (SUPERLINK_CA, CA),
            (ROUNDS, "3"),
        ]))
        .unwrap();
        assert_eq!(parsed.host, "aggregator.example");
        assert_eq!(parsed.port, 9092);
        assert_eq!(parsed.rounds, 3);
        let v6 = parse_params(&params(&[
            (SUPERLINK, "[2001:db8::1]:443"),
            (SUPERLINK_CA, CA),
            (ROUNDS, "1"),
        ]))
        .unwrap();
        assert_eq!(v6.host, "2001:db8::1");
    }

    #[test]
    fn bad_parameters_are_refused_naming_the_parameter() {
        let cases: [(&[(&str, &str)], &str); 11] = [
            (&[(SUPERLINK_CA, CA), (ROUNDS, "3")], "needs `superlink`"),
            (
                &[(SUPERLINK, "host"), (SUPERLINK_CA, CA), (ROUNDS, "3")],
                "not host:port",
            ),
            (
                &[(SUPERLINK, "host:0"), (SUPERLINK_CA, CA), (ROUNDS, "3")],
                "the port",
            ),
            (
                &[(SUPERLINK, "host:70000"), (SUPERLINK_CA, CA), (ROUNDS, "3")],
                "the port",
            ),
            (
                &[(SUPERLINK, ":9092"), (SUPERLINK_CA, CA), (ROUNDS, "3")],
                "the host",
            ),
            (
                &[(SUPERLINK, "a b:9092"), (SUPERLINK_CA, CA), (ROUNDS, "3")],
                "the host",
            ),
            (
                &[
                    (SUPERLINK, "[nope]:9092"),
                    (SUPERLINK_CA, CA),
                    (ROUNDS, "3"),
                ],
                "IPv6",
            ),
            (
                &[(SUPERLINK, "host:1"), (ROUNDS, "3")],
                "needs `superlink-ca`",
            ),
            (
                &[
                    (SUPERLINK, "host:1"),
                    (SUPERLINK_CA, "hello"),
                    (ROUNDS, "3"),
                ],
                "not a PEM",
            ),
            (
                &[(SUPERLINK, "host:1"), (SUPERLINK_CA, CA), (ROUNDS, "0")],
                "`rounds`",
            ),
            (
                &[(SUPERLINK, "host:1"), (SUPERLINK_CA, CA), (ROUNDS, "1001")],
                "`rounds`",
            ),
        ];
        for (pairs, expected) in cases {
            let error = parse_params(&params(pairs)).unwrap_err().to_string();
            assert!(error.contains(expected), "{pairs:?}: {error}");
        }
    }

    #[tokio::test]
    async fn the_aggregator_must_pass_the_outbound_policy() {
        let parsed = parse_params(&params(&[
            (SUPERLINK, "127.0.0.1:9092"),
            (SUPERLINK_CA, CA),
            (ROUNDS, "3"),
        ]))
        .unwrap();
        let error = resolve(&parsed, &Policy::new(Vec::new()), &[])
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("refused by the outbound policy"), "{error}");
        assert!(error.contains("127.0.0.1"), "{error}");
        let allowed = Policy::new(vec!["127.0.0.0/8".parse().unwrap()]);
        assert_eq!(
            resolve(&parsed, &allowed, &[]).await.unwrap(),
            "127.0.0.1:9092".parse().unwrap()
        );
        // Never the keeper's own API or node, even where the range is allowed.
        for own in ["127.0.0.1:9092", "0.0.0.0:9092"] {
            let error = resolve(&parsed, &allowed, &[own.parse().unwrap()])
                .await
                .unwrap_err()
                .to_string();
            assert!(error.contains("the keeper's own services"), "{error}");
        }
        assert!(
            resolve(&parsed, &allowed, &["127.0.0.1:8545".parse().unwrap()])
                .await
                .is_ok()
        );
        let unknown = FederatedParams {
            host: "no-such-host.invalid".into(),
            ..parsed
        };
        assert!(matches!(
            resolve(&unknown, &allowed, &[]).await,
            Err(FederatedError::Aggregator(_))
        ));
    }

    #[test]
    fn each_run_gets_a_p384_key_in_openssh_format() {
        let workspace = tempfile::tempdir().unwrap();
        let parsed = FederatedParams {
            host: "h".into(),
            port: 1,
            ca: CA.into(),
            rounds: 1,
        };
        let folder = write_keys(workspace.path(), &parsed).unwrap();
        let private = std::fs::read_to_string(folder.join(PRIVATE_KEY)).unwrap();
        assert!(private.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
        let public = public_key(workspace.path()).unwrap();
        assert!(public.starts_with("ecdsa-sha2-nistp384 "), "{public}");
        assert_eq!(std::fs::read_to_string(folder.join(CA_FILE)).unwrap(), CA);
        // Another run, another key.
        let again = tempfile::tempdir().unwrap();
        write_keys(again.path(), &parsed).unwrap();
        assert_ne!(public_key(again.path()).unwrap(), public);
    }

    #[test]
    fn the_record_becomes_a_signed_log_kept_out_of_the_jobs_reach() {
        let output = tempfile::tempdir().unwrap();
        let workspace = tempfile::tempdir().unwrap();
        let line = format!(
            r#"{{"run": 5, "round": 1, "kind": "train", "message": "{}", "update": "{}", "samples": 480}}"#,
            "a".repeat(64),
            "b".repeat(64)
        );
        let record = output.path().join(RECORD);
        std::fs::write(&record, format!("{line}\n")).unwrap();
        let signed = workspace.path().join(ROUND_LOG);
        let key = PrivateKeySigner::random();
        let domain = insitu_bindings::requests::domain(31337, alloy::primitives::Address::ZERO);
        let ids = (B256::repeat_byte(1), B256::repeat_byte(2));
        let made = sign_round_log(&record, &signed, ids, &key, &domain, 99).unwrap();
        assert_eq!(made.verify(&domain).unwrap(), key.address());
        let written: SignedRoundLog =
            serde_json::from_slice(&std::fs::read(&signed).unwrap()).unwrap();
        assert_eq!(written, made);

        // Made again after a crash: the log already made is kept (same closing time).
        let again = sign_round_log(&record, &signed, ids, &key, &domain, 500).unwrap();
        assert_eq!(again, made);
        // Unless it is not this keeper's, or not for this agreement: then it is made anew.
        let other = (B256::repeat_byte(3), B256::repeat_byte(2));
        let anew = sign_round_log(&record, &signed, other, &key, &domain, 600).unwrap();
        assert_eq!(anew.log.agreementId, B256::repeat_byte(3));
        assert_eq!(anew.log.closedAt, 600);

        // A record that is a link (to a file of the keeper's, say) is not followed.
        let elsewhere = tempfile::tempdir().unwrap();
        let secret = elsewhere.path().join("secret");
        std::fs::write(&secret, format!("{line}\n")).unwrap();
        let linked = elsewhere.path().join("linked.jsonl");
        std::os::unix::fs::symlink(&secret, &linked).unwrap();
        let fresh = elsewhere.path().join("log.json");
        assert!(sign_round_log(&linked, &fresh, ids, &key, &domain, 0).is_err());
        assert!(!fresh.exists());
        // Nor is a FIFO read (it would block).
        let fifo = elsewhere.path().join("fifo.jsonl");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let error = sign_round_log(&fifo, &fresh, ids, &key, &domain, 0).unwrap_err();
        assert!(error.to_string().contains("not a regular file"), "{error}");

        // No record: no log.
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            sign_round_log(
                &empty.path().join(RECORD),
                &empty.path().join(ROUND_LOG),
                ids,
                &key,
                &domain,
                0
            ),
            Err(FederatedError::RoundLog(RoundLogError::Empty))
        ));
    }
}
