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
