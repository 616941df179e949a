//! What the keeper's integration tests share.

// Each test file uses a part of it.
#![allow(dead_code)]

use alloy::providers::{DynProvider, Provider};

/// Sends `method` with `params` to the node (anvil's test methods: `anvil_mine`, `evm_mine`,
/// `anvil_reorg`, `evm_setAutomine`, ...); panics with the method's name if the node refuses.
pub(crate) async fn node_rpc(
    provider: &DynProvider,
    method: &'static str,
    params: serde_json::Value,
) {
    let _: serde_json::Value = provider
        .raw_request(method.into(), params)
        .await
        .unwrap_or_else(|error| panic!("{method}: {error}"));
}

/// An S3-compatible server (moto, installed by `script/s3-deps.sh`) on a free port of
/// 127.0.0.1, stopped when dropped. It accepts any credentials.
pub(crate) struct S3Server {
    child: std::process::Child,
    /// `http://127.0.0.1:<port>`.
    pub(crate) endpoint: String,
}

impl S3Server {
    /// Starts the server and waits until it answers.
    pub(crate) async fn start() -> Self {
        let server = std::env::var_os("INSITU_MOTO_SERVER")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                insitu_client::devnet::repository_root().join("target/moto-venv/bin/moto_server")
            });
        assert!(
            server.is_file(),
            "{} is missing: run script/s3-deps.sh (script/test.sh does)",
            server.display()
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let s3 = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..300 {
            if reqwest::get(&s3.endpoint).await.is_ok() {
                return s3;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("the S3 server never answered");
    }

    /// Creates `bucket`.
    pub(crate) async fn create_bucket(&self, bucket: &str) {
        let response = reqwest::Client::new()
            .put(format!("{}/{bucket}", self.endpoint))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    }

    /// Stores `bytes` at `key` of `bucket` (a signed request, as a provider's tools make).
    pub(crate) async fn put(&self, bucket: &str, key: &str, bytes: Vec<u8>) {
        use object_store::ObjectStoreExt;
        let store = object_store::aws::AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_bucket_name(bucket)
            .with_access_key_id("test-key")
            .with_secret_access_key("test-secret")
            .build()
            .unwrap();
        store
            .put(&object_store::path::Path::from(key), bytes.into())
            .await
            .unwrap();
    }

    /// Settings for a keeper reading `buckets` from this server.
    pub(crate) fn config(&self, buckets: &[&str]) -> insitu_keeper::config::S3Config {
        insitu_keeper::config::S3Config {
            endpoint: Some(self.endpoint.clone()),
            buckets: buckets.iter().map(|bucket| (*bucket).to_owned()).collect(),
            access_key_id: "test-key".to_owned(),
            secret_access_key: "test-secret".to_owned(),
            allow_http: true,
            ..insitu_keeper::config::S3Config::default()
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A suite deployed on a devnet, with a mock ERC-20 and its addresses file in a folder of its
/// own.
pub(crate) struct Deployed {
    /// The folder (removed when dropped): `deployments/<chain id>.json` is in it.
    pub(crate) dir: tempfile::TempDir,
    /// The addresses file.
    pub(crate) addresses: std::path::PathBuf,
    /// The node.
    pub(crate) provider: DynProvider,
    /// Its funded accounts: 0 deploys, 1 publishes, 2 keeps, 3 buys.
    pub(crate) keys: Vec<alloy::signers::local::PrivateKeySigner>,
    /// The suite, opened.
    pub(crate) suite: insitu_client::suite::Suite,
    /// A mock ERC-20; the consumer (keys[3]) holds `minted` of it.
    pub(crate) token: alloy::primitives::Address,
}

/// Deploys the suite on `devnet` from keys[0] (governed by a timelock without delay, with
/// `network_fee`), then a mock ERC-20 of which keys[3] gets `minted`.
pub(crate) async fn deploy(
    devnet: &insitu_client::devnet::Devnet,
    network_fee: Option<(alloy::primitives::Address, u16)>,
    minted: alloy::primitives::U256,
) -> Deployed {
    use insitu_bindings::deployment::{DeployOptions, Governance};
    use insitu_client::{
        deploy::deploy_suite,
        rpc::{self, Endpoint},
        suite::Suite,
        tx::{Sender, Silent, TxOptions},
    };

    let keys = devnet.signers();
    let chain_id = devnet.chain_id();
    let endpoint = Endpoint::parse(&devnet.endpoint()).unwrap();
    let connection = rpc::connect(&endpoint, Some(chain_id)).await.unwrap();
    let provider = connection.provider.clone();
    let operator = Sender::new(
        provider.clone(),
        chain_id,
        keys[0].clone(),
        TxOptions::default(),
    );
    let (deployed, _) = deploy_suite(
        &operator,
        DeployOptions {
            governance: Governance::Timelock {
                proposer: keys[0].address(),
                delay: 0,
            },
            admin_transfer_delay: 0,
            network_fee,
        },
        None,
        &Silent,
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let addresses = dir.path().join(format!("deployments/{chain_id}.json"));
    deployed.deployment.write(&addresses).unwrap();
    let suite = Suite::open(connection, &addresses).await.unwrap();
    let signing = alloy::providers::ProviderBuilder::new()
        .wallet(alloy::network::EthereumWallet::from(keys[0].clone()))
        .connect_provider(provider.clone());
    let token = insitu_bindings::MockERC20::deploy(&signing, "Demo USD".into(), "DUSD".into(), 18)
        .await
        .unwrap();
    token
        .mint(keys[3].address(), minted)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    Deployed {
        dir,
        addresses,
        provider,
        keys,
        suite,
        token: *token.address(),
    }
}

/// A web server on a free port of 127.0.0.1 serving one folder's files with ranges and
/// `Last-Modified` (tower-http's `ServeDir`), an `ETag` of size and modification time with
/// `If-Match` honoured, behind a bearer token, plus redirects under `/redirect?to=<url>`. It
/// counts the requests that came with the right token.
pub(crate) struct WebServer {
    /// `http://127.0.0.1:<port>`.
    pub(crate) base: String,
    /// Requests that carried the token.
    pub(crate) authorized: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl WebServer {
    /// Serves `folder`; requests need `Authorization: Bearer <token>`.
    pub(crate) async fn start(folder: &std::path::Path, token: &str) -> Self {
        use axum::{
            extract::{Query, Request},
            http::{StatusCode, header},
            middleware::{self, Next},
            response::{IntoResponse, Redirect},
        };
        let authorized = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let expected = format!("Bearer {token}");
        let counter = authorized.clone();
        let root = folder.to_path_buf();
        let guard = move |request: Request, next: Next| {
            let allowed = request
                .headers()
                .get(header::AUTHORIZATION)
                .is_some_and(|value| value.as_bytes() == expected.as_bytes());
            let counter = counter.clone();
            // An ETag of the file's size and modification time, with If-Match honoured.
            let etag = std::fs::metadata(root.join(request.uri().path().trim_start_matches('/')))
                .ok()
                .filter(|info| info.is_file())
                .map(|info| {
                    let modified = info
                        .modified()
                        .ok()
                        .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
                        .map(|elapsed| elapsed.as_nanos())
                        .unwrap_or_default();
                    format!("\"{}-{modified}\"", info.len())
                });
            let if_match = request
                .headers()
                .get(header::IF_MATCH)
                .map(|value| value.as_bytes().to_vec());
            async move {
                if !allowed {
                    return StatusCode::UNAUTHORIZED.into_response();
                }
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if let (Some(wanted), Some(etag)) = (&if_match, &etag)
                    && wanted != etag.as_bytes()
                {
                    return StatusCode::PRECONDITION_FAILED.into_response();
                }
                let mut response = next.run(request).await;
                if let Some(etag) = etag {
                    response
                        .headers_mut()
                        .insert(header::ETAG, etag.parse().unwrap());
                }
                response
            }
        };
        let redirect = |Query(query): Query<std::collections::HashMap<String, String>>| async move {
            let to = query.get("to").cloned().unwrap_or_default();
            Redirect::temporary(&to).into_response()
        };
        let app = axum::Router::new()
            .route("/redirect", axum::routing::any(redirect))
            .fallback_service(tower_http::services::ServeDir::new(folder))
            .layer(middleware::from_fn(guard));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            base,
            authorized,
            task,
        }
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A publisher's draft metadata document for one file at `location` (a plain `file://` URL)
/// holding `content`, sold for access at `price` of `token`, paid to `receiver`.
pub(crate) fn access_document(
    location: &str,
    content: &[u8],
    token: alloy::primitives::Address,
    receiver: alloy::primitives::Address,
    price: u128,
) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "@context": "https://schema.org",
        "@type": "Dataset",
        "schemaVersion": "insitu-metadata/1",
        "name": "set", "description": "set", "author": "a", "license": "MIT",
        "files": [{
            "name": "set.bin",
            "contentType": "application/octet-stream",
            "contentSize": content.len(),
            "sha256": alloy::primitives::hex::encode(<sha2::Sha256 as sha2::Digest>::digest(content)),
            "location": location,
        }],
        "services": [{
            "type": "access",
            "token": token.to_string(),
            "price": [{"receiver": receiver.to_string(), "amount": price.to_string()}],
            "timeout": {"min": 3600, "max": 86400}
        }]
    }))
    .unwrap()
}

/// A sender of `key`'s transactions on `suite`'s chain.
pub(crate) fn suite_sender(
    suite: &insitu_client::suite::Suite,
    key: &alloy::signers::local::PrivateKeySigner,
) -> insitu_client::tx::Sender {
    insitu_client::tx::Sender::new(
        suite.provider().clone(),
        suite.connection.chain_id,
        key.clone(),
        insitu_client::tx::TxOptions::default(),
    )
}

/// Buys access to `did` as `consumer` on `suite`'s chain and downloads file 0 to `out` through
/// the client library; returns the agreement and the bytes.
pub(crate) async fn buy_and_download(
    suite: &insitu_client::suite::Suite,
    consumer: &alloy::signers::local::PrivateKeySigner,
    did: alloy::primitives::B256,
    out: &std::path::Path,
) -> (alloy::primitives::B256, Vec<u8>) {
    use insitu_client::{market, metadata::ServiceKind, tx::Silent};
    let sender = suite_sender(suite, consumer);
    let id = market::buy(suite, &sender, did, ServiceKind::Access, 0, &Silent)
        .await
        .unwrap()
        .quote
        .agreement_id;
    let mut ignore = |_| {};
    market::download(suite, &sender, id, 0, out, &mut ignore)
        .await
        .unwrap();
    (id, std::fs::read(out).unwrap())
}

/// The `insitu-sandbox-init` binary next to the test's (built when missing).
pub(crate) fn sandbox_init() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let folder = exe.parent().and_then(std::path::Path::parent).unwrap();
    let init = folder.join("insitu-sandbox-init");
    if !init.exists() {
        let built = std::process::Command::new(env!("CARGO"))
            .args([
                "build",
                "-p",
                "insitu-sandbox",
                "--bin",
                "insitu-sandbox-init",
            ])
            .status()
            .unwrap();
        assert!(built.success(), "cannot build insitu-sandbox-init");
    }
    init
}

/// A keeper running as a process of its own (`insitu-keeper --config`), killed (SIGKILL) when
/// dropped. Its log goes next to its configuration, with the extension `log`.
pub(crate) struct KeeperProcess(pub(crate) std::process::Child);

impl KeeperProcess {
    /// Starts the keeper configured in `config` with `key`; returns once it is ready at `url`.
    pub(crate) async fn start(
        config: &std::path::Path,
        key: &alloy::signers::local::PrivateKeySigner,
        url: &str,
    ) -> Self {
        Self::start_crashing(config, key, url, None).await
    }

    /// As [`KeeperProcess::start`], aborting at `crash` (the keeper's test hook) if given.
    pub(crate) async fn start_crashing(
        config: &std::path::Path,
        key: &alloy::signers::local::PrivateKeySigner,
        url: &str,
        crash: Option<&str>,
    ) -> Self {
        let log = std::fs::File::create(config.with_extension("log")).unwrap();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_insitu-keeper"));
        command
            .arg("--config")
            .arg(config)
            .env(
                "INSITU_KEEPER_PRIVATE_KEY",
                alloy::primitives::hex::encode(key.to_bytes()),
            )
            .env_remove("INSITU_KEEPER_CRASH_AT")
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if let Some(point) = crash {
            command.env("INSITU_KEEPER_CRASH_AT", point);
        }
        let keeper = Self(command.spawn().unwrap());
        for _ in 0..600 {
            if let Ok(response) = reqwest::get(format!("{url}/ready")).await
                && response.status().is_success()
            {
                return keeper;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("the keeper never became ready");
    }
}

impl Drop for KeeperProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
