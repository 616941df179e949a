//! Helpers of the command's tests: running `insitu`, anvil's keys, a TLS front for anvil.

#![allow(dead_code, unreachable_pub)]

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::Arc,
};

use alloy::{
    primitives::Address,
    providers::{Provider, ProviderBuilder},
    signers::local::PrivateKeySigner,
};
use insitu_client::devnet::Devnet;
use tokio::net::{TcpListener, TcpStream};

/// The `insitu` binary with a clean environment for keys and endpoints.
pub fn insitu() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_insitu"));
    for var in [
        "INSITU_PRIVATE_KEY",
        "INSITU_RPC_URL",
        "INSITU_KEYSTORE",
        "INSITU_ADDRESSES",
        "INSITU_CATALOG",
        "SSL_CERT_FILE",
    ] {
        command.env_remove(var);
    }
    command
}

/// Runs `insitu` with `key` in `INSITU_PRIVATE_KEY` and `args`.
pub fn run_as(key: &PrivateKeySigner, args: &[&str]) -> Output {
    insitu()
        .env("INSITU_PRIVATE_KEY", hex_key(key))
        .args(args)
        .output()
        .expect("run insitu")
}

/// `key` in hex.
pub fn hex_key(key: &PrivateKeySigner) -> String {
    alloy::primitives::hex::encode(key.to_bytes())
}

/// Standard output.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Standard error.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Standard output parsed as the JSON object `--json` prints.
pub fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("{error}: {}{}", stdout(output), stderr(output)))
}

/// anvil's funded dev keys.
pub fn keys(devnet: &Devnet) -> Vec<PrivateKeySigner> {
    devnet.signers()
}

/// Nonce (transactions sent) of `account` on `devnet`.
pub fn nonce(devnet: &Devnet, account: Address) -> u64 {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        ProviderBuilder::new()
            .connect_http(devnet.endpoint().parse().unwrap())
            .get_transaction_count(account)
            .await
            .unwrap()
    })
}

/// Calls a raw JSON-RPC method on `devnet` (anvil's `evm_mine`, `evm_increaseTime`, ...).
pub fn rpc(devnet: &Devnet, method: &'static str, params: serde_json::Value) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let provider = ProviderBuilder::new().connect_http(devnet.endpoint().parse().unwrap());
        let _: serde_json::Value = provider
            .raw_request(method.into(), params)
            .await
            .unwrap_or_else(|error| panic!("{method}: {error}"));
    });
}

/// A deployment by the command on `devnet` into `dir`, governed by a timelock of `delay` seconds
/// whose proposer is the deployer `key`, with a 1% fee to `receiver`; returns the addresses file.
pub fn deploy(
    devnet: &Devnet,
    key: &PrivateKeySigner,
    dir: &Path,
    delay: u64,
    receiver: Address,
) -> PathBuf {
    let out = dir.join("deployment.json");
    let output = run_as(
        key,
        &[
            "deploy",
            "--rpc-url",
            &devnet.endpoint(),
            "--timelock-delay",
            &delay.to_string(),
            "--fee-bps",
            "100",
            "--fee-receiver",
            &receiver.to_string(),
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    out
}

/// A TLS endpoint in front of a plain TCP one (anvil's http and ws port), with a certificate for
/// `localhost` signed by a CA made for the test, whose PEM file clients are told to trust.
#[derive(Debug)]
pub struct TlsFront {
    /// Where the TLS endpoint listens.
    pub address: SocketAddr,
    /// The CA's certificate (PEM), for `SSL_CERT_FILE`.
    pub ca_file: PathBuf,
    _dir: tempfile::TempDir,
    _runtime: tokio::runtime::Runtime,
}

impl TlsFront {
    /// Starts a TLS front forwarding every connection to `backend`.
    pub fn start(backend: SocketAddr) -> Self {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        use tokio_rustls::rustls::{
            ServerConfig,
            pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
        };

        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "insitu test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);

        let leaf_key = KeyPair::generate().unwrap();
        let leaf_params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();

        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca_cert.pem()).unwrap();

        let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(leaf.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let address = listener.local_addr().unwrap();
        runtime.spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(client).await else {
                        return;
                    };
                    let Ok(mut upstream) = TcpStream::connect(backend).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
                });
            }
        });
        Self {
            address,
            ca_file,
            _dir: dir,
            _runtime: runtime,
        }
    }

    /// `scheme://localhost:port` of the front.
    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://localhost:{}", self.address.port())
    }
}
