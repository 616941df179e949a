//! The keeper running (watcher, executor, API) against a real anvil node, driven by the client
//! library as a publisher and a consumer would: publish, buy, download (settled once, resumed,
//! repeated within the access window), and the refusals over HTTP with their codes.

mod common;

use std::path::{Path, PathBuf};

use alloy::{
    primitives::{Address, B256, U256, hex, keccak256},
    providers::{DynProvider, Provider},
    signers::local::PrivateKeySigner,
};
use insitu_bindings::MockERC20;
use insitu_client::{
    agreement::{self, ConditionState},
    devnet::Devnet,
    market::{self, KeeperClient, MarketError},
    metadata::ServiceKind,
    suite::Suite,
    tx::{Sender, Silent, TxOptions},
};
use insitu_keeper::{
    config::Config,
    service::{self, Running},
    store::{ActionState, Store},
};

const PRICE: u128 = 250_000_000_000_000_000_000;

struct Setup {
    _devnet: Devnet,
    _dir: tempfile::TempDir,
    dir: PathBuf,
    provider: DynProvider,
    keys: Vec<PrivateKeySigner>,
    suite: Suite,
    token: Address,
    keeper: Running,
    content: Vec<u8>,
    database: PathBuf,
}

async fn sender(setup_provider: &DynProvider, key: &PrivateKeySigner) -> Sender {
    Sender::new(
        setup_provider.clone(),
        31_337,
        key.clone(),
        TxOptions::default(),
    )
}

/// A deployed suite, a demo token with the consumer (keys[3]) funded, a data file, and a keeper
/// (keys[2]) whose publisher is keys[1].
async fn setup() -> Setup {
    setup_with(|_| {}).await
}

/// [`setup`] with the keeper's configuration adjusted by `configure` (it acts on the head unless
/// told otherwise).
async fn setup_with(configure: impl FnOnce(&mut Config)) -> Setup {
    let devnet = Devnet::start().expect("anvil");
    let common::Deployed {
        dir,
        addresses,
        provider,
        keys,
        suite,
        token,
    } = common::deploy(
        &devnet,
        Some((devnet.signers()[4].address(), 100)),
        U256::from(PRICE) * U256::from(10),
    )
    .await;
    let root = dir.path().to_path_buf();

    std::fs::create_dir_all(root.join("data")).unwrap();
    let content: Vec<u8> = (0..300_000_u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(root.join("data/air.csv"), &content).unwrap();

    let mut config = Config {
        rpc_url: devnet.endpoint(),
        chain_id: 31_337,
        addresses,
        confirmations: 0,
        poll_interval_ms: 100,
        listen: "127.0.0.1:0".to_owned(),
        database: root.join("keeper.db"),
        data_root: root.join("data"),
        publishers: vec![keys[1].address()],
        ..Config::default()
    };
    configure(&mut config);
    let keeper = service::start(&config, keys[2].clone(), None)
        .await
        .unwrap();
    Setup {
        _devnet: devnet,
        _dir: dir,
        dir: root.clone(),
        provider,
        suite,
        token,
        keeper,
        content,
        keys,
        database: root.join("keeper.db"),
    }
}

impl Setup {
    fn keeper_client(&self) -> KeeperClient {
        KeeperClient::new(&format!("http://{}", self.keeper.address))
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.keeper.address)
    }

    /// The publisher's source document: plain file location, this token, price to keys[1].
    fn source(&self, file: &Path, sha256: &str, size: usize) -> Vec<u8> {
        self.source_at(&format!("file://{}", file.display()), sha256, size)
    }

    /// The publisher's source document for the file at `location` (a plain URL).
    fn source_at(&self, location: &str, sha256: &str, size: usize) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "@context": "https://schema.org",
            "@type": "Dataset",
            "schemaVersion": "insitu-metadata/1",
            "name": "Air quality",
            "description": "Hourly readings.",
            "author": "Lab",
            "license": "CC-BY-4.0",
            "files": [{
                "name": "air.csv",
                "contentType": "text/csv",
                "contentSize": size,
                "sha256": sha256,
                "location": location,
            }],
            "services": [{
                "type": "access",
                "token": self.token.to_string(),
                "price": [{"receiver": self.keys[1].address().to_string(), "amount": PRICE.to_string()}],
                "timeout": {"min": 3600, "max": 86400},
                "accessWindow": 3600
            }]
        }))
        .unwrap()
    }

    fn good_source(&self) -> Vec<u8> {
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&self.content));
        self.source(&self.dir.join("data/air.csv"), &sha, self.content.len())
    }

    async fn publish(&self) -> B256 {
        self.publish_source(&self.good_source()).await.unwrap()
    }

    async fn publish_source(&self, source: &[u8]) -> Result<B256, MarketError> {
        let publisher = sender(&self.provider, &self.keys[1]).await;
        Ok(market::publish(
            &self.suite,
            &publisher,
            &self.keeper_client(),
            source,
            B256::from(rand::random::<[u8; 32]>()),
            &Silent,
        )
        .await?
        .did)
    }

    async fn buy(&self, did: B256) -> B256 {
        let consumer = sender(&self.provider, &self.keys[3]).await;
        market::buy(&self.suite, &consumer, did, ServiceKind::Access, 0, &Silent)
            .await
            .unwrap()
            .quote
            .agreement_id
    }

    async fn download(&self, id: B256, out: &Path) -> Result<market::Downloaded, MarketError> {
        let consumer = sender(&self.provider, &self.keys[3]).await;
        let mut ignore = |_| {};
        market::download(&self.suite, &consumer, id, 0, out, &mut ignore).await
    }

    /// Waits until the keeper's watcher recorded agreement `id`.
    async fn wait_recorded(&self, id: B256) {
        for _ in 0..100 {
            if Store::open(&self.database)
                .unwrap()
                .agreement(id)
                .unwrap()
                .is_some()
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("the keeper never recorded {id}");
    }

    /// An access request for agreement `id` of asset `did`, signed by the consumer (keys[3]).
    async fn signed_access(&self, id: B256, did: B256) -> serde_json::Value {
        let head = self
            .provider
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await
            .unwrap()
            .unwrap();
        market::access_request(
            &self.keys[3],
            31_337,
            self.suite.addresses.access,
            did,
            id,
            head.header.timestamp.max(insitu_keeper::executor::now()) + 60,
        )
        .unwrap()
    }

    /// Publishes, buys, and sends one access request for the purchase before it is buried under
    /// the keeper's confirmations; checks that the keeper holds it. Returns the agreement and the
    /// request in flight.
    async fn request_before_confirmations(
        &self,
    ) -> (
        B256,
        tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>,
    ) {
        let did = self.publish().await;
        let id = self.buy(did).await;
        let body = self.signed_access(id, did).await;
        let request = tokio::spawn(
            reqwest::Client::new()
                .post(self.url("/v1/access"))
                .json(&body)
                .send(),
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert!(!request.is_finished(), "answered before the confirmations");
        (id, request)
    }

    async fn rpc(&self, method: &'static str, params: serde_json::Value) {
        common::node_rpc(&self.provider, method, params).await;
    }

    async fn keeper_nonce(&self) -> u64 {
        self.provider
            .get_transaction_count(self.keys[2].address())
            .await
            .unwrap()
    }
}

fn refused_code(result: Result<impl std::fmt::Debug, MarketError>) -> String {
    match result {
        Err(MarketError::Refused { code, .. }) => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_buy_download_settles_once_and_resumes() {
    let setup = setup().await;
    let did = setup.publish().await;
    let id = setup.buy(did).await;

    let out = setup.dir.join("download/air.csv");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let downloaded = setup.download(id, &out).await.unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), setup.content);
    assert_eq!(downloaded.bytes, setup.content.len() as u64);
    assert_eq!(downloaded.resumed_from, 0);

    // Settled on chain: paid to the provider, once.
    let shown = agreement::show(&setup.suite, id, None).await.unwrap();
    assert_eq!(
        shown.payment_condition().unwrap().state,
        ConditionState::Released
    );
    assert_eq!(setup.keeper_nonce().await, 1);
    let store = Store::open(&setup.database).unwrap();
    assert_eq!(
        store.action(id).unwrap().unwrap().state,
        ActionState::Confirmed
    );

    // Again within the access window: no second transaction.
    std::fs::remove_file(&out).unwrap();
    setup.download(id, &out).await.unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), setup.content);
    assert_eq!(setup.keeper_nonce().await, 1);

    // An interrupted download resumes with a range.
    std::fs::remove_file(&out).unwrap();
    let part = setup.dir.join("download/air.csv.part");
    std::fs::write(&part, &setup.content[..100_000]).unwrap();
    let resumed = setup.download(id, &out).await.unwrap();
    assert_eq!(resumed.resumed_from, 100_000);
    assert_eq!(std::fs::read(&out).unwrap(), setup.content);
    assert!(!part.exists());

    // The consumer's balance paid the quoted total; the provider got the price.
    let token = MockERC20::new(setup.token, &setup.provider);
    assert_eq!(
        token
            .balanceOf(setup.keys[1].address())
            .call()
            .await
            .unwrap(),
        U256::from(PRICE)
    );
    setup.keeper.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_the_keeper_cannot_serve_is_never_settled() {
    let setup = setup().await;
    let did = setup.publish().await;
    let id = setup.buy(did).await;
    // The file changes after publication: refused before any transaction.
    let file = setup.dir.join("data/air.csv");
    let mut altered = setup.content.clone();
    altered[0] ^= 1;
    std::fs::write(&file, &altered).unwrap();
    let out = setup.dir.join("air.csv");
    let code = refused_code(setup.download(id, &out).await);
    assert_eq!(code, "content_unavailable");
    assert_eq!(setup.keeper_nonce().await, 0);
    assert!(
        Store::open(&setup.database)
            .unwrap()
            .action(id)
            .unwrap()
            .is_none()
    );
    // Restored: served and settled.
    std::fs::write(&file, &setup.content).unwrap();
    setup.download(id, &out).await.unwrap();
    assert_eq!(setup.keeper_nonce().await, 1);
    setup.keeper.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_is_checked_before_any_gas_is_spent() {
    let setup = setup().await;
    let keeper = setup.keeper_client();
    let publisher = sender(&setup.provider, &setup.keys[1]).await;
    let outsider = sender(&setup.provider, &setup.keys[6]).await;
    let seed = B256::repeat_byte(1);
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&setup.content));
    let size = setup.content.len();

    // Not a publisher of this keeper.
    let code = refused_code(
        market::publish(
            &setup.suite,
            &outsider,
            &keeper,
            &setup.good_source(),
            seed,
            &Silent,
        )
        .await,
    );
    assert_eq!(code, "not_a_publisher");
    // Outside the data folder, wrong size, wrong hash, missing file.
    for source in [
        setup.source(Path::new("/etc/hostname"), &sha, size),
        setup.source(&setup.dir.join("data/air.csv"), &sha, size + 1),
        setup.source(&setup.dir.join("data/air.csv"), &"0".repeat(64), size),
        setup.source(&setup.dir.join("data/missing.csv"), &sha, size),
    ] {
        let code = refused_code(
            market::publish(&setup.suite, &publisher, &keeper, &source, seed, &Silent).await,
        );
        assert_eq!(code, "invalid_metadata");
    }
    // Invalid against the schema: refused by the client itself, every field named.
    let mut source: serde_json::Value = serde_json::from_slice(&setup.good_source()).unwrap();
    source["services"][0]["timeout"]["min"] = serde_json::json!(10);
    source.as_object_mut().unwrap().remove("license");
    let error = market::publish(
        &setup.suite,
        &publisher,
        &keeper,
        &serde_json::to_vec(&source).unwrap(),
        seed,
        &Silent,
    )
    .await
    .unwrap_err();
    let text = error.to_string();
    assert!(text.contains("/services/0/timeout/min"), "{text}");
    assert!(text.contains("license"), "{text}");
    assert_eq!(
        setup
            .provider
            .get_transaction_count(setup.keys[1].address())
            .await
            .unwrap(),
        0,
        "no gas spent"
    );
    setup.keeper.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_4xx_json_errors_with_stable_codes() {
    let setup = setup().await;
    let did = setup.publish().await;
    let id = setup.buy(did).await;
    setup.wait_recorded(id).await;
    let http = reqwest::Client::new();
    let post = |body: serde_json::Value, query: &str| {
        http.post(setup.url(&format!("/v1/access{query}")))
            .json(&body)
            .send()
    };
    let code_of = |response: reqwest::Response| async move {
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap();
        (status, body["code"].as_str().unwrap().to_owned())
    };

    // Not JSON, missing fields, bad hex.
    let response = http
        .post(setup.url("/v1/access"))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(code_of(response).await, (400, "malformed".to_owned()));
    let response = post(serde_json::json!({"request": {}}), "").await.unwrap();
    assert_eq!(code_of(response).await, (400, "malformed".to_owned()));

    // A well-formed request signed by someone else.
    let consumer = setup.keys[3].address();
    let deadline = setup
        .provider
        .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
        .await
        .unwrap()
        .unwrap()
        .header
        .timestamp
        .max(insitu_keeper::executor::now())
        + 60;
    let request = |nonce: u64, agreement: B256| {
        serde_json::json!({
            "command": "access",
            "agreementId": agreement.to_string(),
            "did": did.to_string(),
            "consumer": consumer.to_string(),
            "nonce": nonce.to_string(),
            "deadline": deadline,
        })
    };
    let sign = |key: &PrivateKeySigner, nonce: u64, agreement: B256| {
        use alloy::signers::SignerSync;
        let typed = insitu_bindings::requests::ServiceRequest {
            command: "access".to_owned(),
            agreementId: agreement,
            did,
            consumer,
            nonce: U256::from(nonce),
            deadline,
        };
        let domain = insitu_bindings::requests::domain(31_337, setup.suite.addresses.access);
        let signature = key
            .sign_hash_sync(&insitu_bindings::requests::signing_hash(&typed, &domain))
            .unwrap();
        format!("0x{}", hex::encode(signature.as_bytes()))
    };
    let forged = post(
        serde_json::json!({"request": request(1, id), "signature": sign(&setup.keys[6], 1, id)}),
        "",
    )
    .await
    .unwrap();
    assert_eq!(code_of(forged).await, (401, "forged".to_owned()));
    let unknown = B256::repeat_byte(5);
    let response = post(
        serde_json::json!({"request": request(2, unknown), "signature": sign(&setup.keys[3], 2, unknown)}),
        "",
    )
    .await
    .unwrap();
    assert_eq!(
        code_of(response).await,
        (404, "unknown_agreement".to_owned())
    );
    let response = post(
        serde_json::json!({"request": request(3, id), "signature": sign(&setup.keys[3], 3, id)}),
        "?file=9",
    )
    .await
    .unwrap();
    assert_eq!(code_of(response).await, (404, "unknown_file".to_owned()));
    // None of the refusals settled anything.
    assert_eq!(setup.keeper_nonce().await, 0);

    // A good one, then its replay, then a bad range.
    let good =
        serde_json::json!({"request": request(4, id), "signature": sign(&setup.keys[3], 4, id)});
    let response = post(good.clone(), "").await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers()["x-content-sha256"].to_str().unwrap(),
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&setup.content))
    );
    assert_eq!(response.bytes().await.unwrap().to_vec(), setup.content);
    let response = post(good, "").await.unwrap();
    assert_eq!(code_of(response).await, (409, "replayed".to_owned()));
    let response = http
        .post(setup.url("/v1/access"))
        .header("range", "bytes=999999999-")
        .json(&serde_json::json!({"request": request(5, id), "signature": sign(&setup.keys[3], 5, id)}))
        .send()
        .await
        .unwrap();
    assert_eq!(code_of(response).await, (416, "invalid_range".to_owned()));
    let response = http
        .post(setup.url("/v1/access"))
        .header("range", "bytes=10-19")
        .json(&serde_json::json!({"request": request(6, id), "signature": sign(&setup.keys[3], 6, id)}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 206);
    assert_eq!(
        response.headers()["content-range"].to_str().unwrap(),
        format!("bytes 10-19/{}", setup.content.len())
    );
    assert_eq!(
        response.bytes().await.unwrap().to_vec(),
        setup.content[10..20]
    );

    // Other routes: unknown, offers for an unknown asset, oversized bodies.
    let response = http.get(setup.url("/nowhere")).send().await.unwrap();
    assert_eq!(code_of(response).await, (404, "not_found".to_owned()));
    let response = http
        .get(setup.url(&format!("/v1/offers/{}", B256::repeat_byte(3))))
        .send()
        .await
        .unwrap();
    assert_eq!(code_of(response).await, (404, "unknown_asset".to_owned()));
    let response = http.get(setup.url("/v1/offers/0x12")).send().await.unwrap();
    assert_eq!(code_of(response).await, (400, "malformed".to_owned()));
    let response = http
        .get(setup.url(&format!("/v1/offers/{did}?service=stream")))
        .send()
        .await
        .unwrap();
    assert_eq!(code_of(response).await, (400, "malformed".to_owned()));
    // One byte over the limit. The keeper answers 413 as soon as it sees the length and closes
    // the connection without reading the body: the client either reads the answer or, if it was
    // still sending, finds the connection closed. Either way nothing is stored.
    let oversized = http
        .put(setup.url("/v1/metadata"))
        .body(vec![b' '; insitu_keeper::api::MAX_BODY_BYTES + 1])
        .send()
        .await;
    match oversized {
        Ok(response) => assert_eq!(response.status().as_u16(), 413),
        Err(error) => {
            let chain = format!("{error:?}");
            assert!(
                chain.contains("BrokenPipe") || chain.contains("ConnectionReset"),
                "{chain}"
            );
        }
    }
    setup.keeper.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_health_readiness_and_the_openapi_document() {
    let setup = setup().await;
    let keeper = setup.keeper_client();
    let info = keeper.info().await.unwrap();
    assert_eq!(info.chain_id, 31_337);
    assert_eq!(info.address, setup.keys[2].address());
    assert_eq!(
        info.public_key,
        format!(
            "0x{}",
            hex::encode(insitu_client::metadata::public_key(&setup.keys[2]))
        )
    );
    let http = reqwest::Client::new();
    let health = http.get(setup.url("/health")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    // A web page elsewhere (a catalog's, with a browser wallet) may post signed requests: the
    // preflight allows any origin, no credentials, and the download's headers are readable.
    let preflight = http
        .request(reqwest::Method::OPTIONS, setup.url("/v1/access/token"))
        .header("origin", "https://catalog.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let allowed = |name: &str| {
        preflight
            .headers()
            .get(name)
            .map(|value| value.to_str().unwrap().to_lowercase())
            .unwrap_or_default()
    };
    assert_eq!(allowed("access-control-allow-origin"), "*");
    assert!(allowed("access-control-allow-methods").contains("post"));
    assert!(allowed("access-control-allow-headers").contains("content-type"));
    assert!(allowed("access-control-allow-credentials").is_empty());
    let offer = http
        .get(setup.url(&format!("/v1/offers/{}?service=access", B256::ZERO)))
        .header("origin", "https://catalog.example")
        .send()
        .await
        .unwrap();
    let exposed = offer.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap();
    assert!(exposed.contains("content-disposition"), "{exposed}");
    // The operator's routes stay same-origin: a page cannot read the keeper's metrics or info.
    for path in ["/metrics", "/v1/info", "/health"] {
        let answer = http
            .get(setup.url(path))
            .header("origin", "https://catalog.example")
            .send()
            .await
            .unwrap();
        assert!(
            answer
                .headers()
                .get("access-control-allow-origin")
                .is_none(),
            "{path} answers cross-origin"
        );
    }
    // Ready once the watcher caught up.
    let mut ready = 0;
    for _ in 0..50 {
        ready = http
            .get(setup.url("/ready"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if ready == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(ready, 200);
    let openapi: serde_json::Value = http
        .get(setup.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/v1/info",
        "/v1/access",
        "/v1/offers/{did}",
        "/v1/metadata",
        "/v1/metadata/{checksum}",
        "/health",
        "/ready",
    ] {
        assert!(openapi["paths"][path].is_object(), "{path} missing");
    }
    assert!(openapi["components"]["schemas"]["ErrorBody"].is_object());
    // No metrics recorder in this test process.
    let metrics = http.get(setup.url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status().as_u16(), 404);
    // A stored document is served byte for byte under its checksum.
    let did = setup.publish().await;
    let (_, _, checksum) = market::fetch_document(&setup.suite, did).await.unwrap();
    let bytes = http
        .get(setup.url(&format!("/v1/metadata/{checksum}")))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(keccak256(&bytes), checksum);
    setup.keeper.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_for_a_purchase_not_yet_confirmed_waits_for_the_watcher() {
    let setup = setup_with(|config| config.confirmations = 2).await;
    // One request, sent before the purchase is buried under two blocks: the keeper holds it until
    // the watcher records the agreement, then settles and serves it.
    let (id, request) = setup.request_before_confirmations().await;
    assert!(
        Store::open(&setup.database)
            .unwrap()
            .agreement(id)
            .unwrap()
            .is_none()
    );
    setup.rpc("anvil_mine", serde_json::json!([2])).await;
    // The settlement itself is then buried under two more blocks.
    let mining = {
        let provider = setup.provider.clone();
        tokio::spawn(async move {
            for _ in 0..20 {
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                let _: serde_json::Value = provider
                    .raw_request("evm_mine".into(), serde_json::json!([]))
                    .await
                    .unwrap();
            }
        })
    };
    let response = request.await.unwrap().unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.bytes().await.unwrap().as_ref(), &setup.content[..]);
    mining.abort();
    assert_eq!(setup.keeper_nonce().await, 1);
    let agreement = agreement::show(&setup.suite, id, None).await.unwrap();
    assert_eq!(
        agreement.payment_condition().unwrap().state,
        ConditionState::Released
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purchase_reorged_out_before_its_confirmations_is_never_served_nor_settled() {
    let setup = setup_with(|config| config.confirmations = 2).await;
    let (id, request) = setup.request_before_confirmations().await;

    // The block holding the purchase is replaced by an empty one, then the chain grows past the
    // confirmations: the waiting request is refused as unknown, nothing is sent.
    setup.rpc("anvil_reorg", serde_json::json!([1, []])).await;
    setup.rpc("anvil_mine", serde_json::json!([3])).await;
    let response = tokio::time::timeout(std::time::Duration::from_secs(30), request)
        .await
        .expect("answered")
        .unwrap()
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    let error: serde_json::Value = response.json().await.unwrap();
    assert_eq!(error["code"], "unknown_agreement");
    assert!(
        agreement::show(&setup.suite, id, None).await.is_err(),
        "the agreement is gone from the chain"
    );
    let store = Store::open(&setup.database).unwrap();
    assert!(store.agreement(id).unwrap().is_none());
    assert!(store.action(id).unwrap().is_none(), "no intent written");
    assert_eq!(setup.keeper_nonce().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_gets_as_many_downloads_at_once_as_the_keeper_allows() {
    let setup = setup_with(|config| config.max_downloads_per_consumer = 1).await;
    // Larger than what the loopback connection buffers, so a download the consumer does not read
    // stays in flight.
    let size = 64 << 20;
    let big = setup.dir.join("data/big.bin");
    std::fs::File::create(&big).unwrap().set_len(size).unwrap();
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(std::fs::read(&big).unwrap()))
    };
    let did = setup
        .publish_source(&setup.source(&big, &sha, size as usize))
        .await
        .unwrap();
    let id = setup.buy(did).await;
    setup.wait_recorded(id).await;
    let http = reqwest::Client::new();
    let access = || async {
        http.post(setup.url("/v1/access"))
            .json(&setup.signed_access(id, did).await)
            .send()
            .await
            .unwrap()
    };

    let first = access().await;
    assert_eq!(first.status().as_u16(), 200);
    assert_eq!(first.headers()["x-content-sha256"], sha.as_str());
    let second = access().await;
    assert_eq!(second.status().as_u16(), 429);
    assert_eq!(second.headers()["retry-after"], "1");
    let error: serde_json::Value = second.json().await.unwrap();
    assert_eq!(error["code"], "too_many_downloads");

    // The first download ends (the consumer goes away): its place is free again.
    drop(first);
    let mut third = None;
    for _ in 0..50 {
        let response = access().await;
        if response.status().as_u16() == 200 {
            third = Some(response);
            break;
        }
        assert_eq!(response.status().as_u16(), 429);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let third = third.expect("the place of the dropped download was never freed");
    assert_eq!(third.bytes().await.unwrap().len() as u64, size);
    assert_eq!(setup.keeper_nonce().await, 1, "settled once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_in_an_s3_bucket_are_checked_served_in_ranges_and_never_settled_once_changed() {
    let s3 = common::S3Server::start().await;
    s3.create_bucket("datasets").await;
    s3.create_bucket("elsewhere").await;
    let content: Vec<u8> = (0..3_000_000_u32).map(|i| (i * 31 % 253) as u8).collect();
    s3.put("datasets", "air/2026.csv", content.clone()).await;
    s3.put("elsewhere", "air.csv", content.clone()).await;
    let setup = setup_with(|config| config.s3 = Some(s3.config(&["datasets"]))).await;
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&content));
    let size = content.len();

    // Refused before any gas is spent: a bucket the keeper does not serve, a missing object.
    for (location, message) in [
        (
            "s3://elsewhere/air.csv",
            "bucket \"elsewhere\" is not one this keeper serves",
        ),
        ("s3://datasets/missing.csv", "air.csv does not exist"),
    ] {
        let refused = setup
            .publish_source(&setup.source_at(location, &sha, size))
            .await;
        match refused {
            Err(MarketError::Refused { code, fields, .. }) => {
                assert_eq!(code, "invalid_metadata");
                assert!(
                    fields.iter().any(|field| field.path == "/files/0/location"
                        && field.message.contains(message)),
                    "{location}: {fields:?}"
                );
            }
            other => panic!("{location}: {other:?}"),
        }
    }

    let did = setup
        .publish_source(&setup.source_at("s3://datasets/air/2026.csv", &sha, size))
        .await
        .unwrap();
    let id = setup.buy(did).await;
    let out = setup.dir.join("from-s3.csv");
    let downloaded = setup.download(id, &out).await.unwrap();
    assert_eq!(downloaded.bytes, size as u64);
    assert_eq!(std::fs::read(&out).unwrap(), content);

    // A range of the object, within the access window.
    let response = reqwest::Client::new()
        .post(setup.url("/v1/access"))
        .header("range", "bytes=1000000-1000999")
        .json(&setup.signed_access(id, did).await)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 206);
    assert_eq!(
        response.bytes().await.unwrap().as_ref(),
        &content[1_000_000..1_001_000]
    );

    // The object is replaced (same size, other bytes): a new purchase is refused as unservable,
    // and nothing is settled for it.
    let id_2 = setup.buy(did).await;
    let mut changed = content.clone();
    changed[0] ^= 0xff;
    s3.put("datasets", "air/2026.csv", changed).await;
    setup.wait_recorded(id_2).await;
    let nonce_before = setup.keeper_nonce().await;
    let code = refused_code(setup.download(id_2, &setup.dir.join("again.csv")).await);
    assert_eq!(code, "content_unavailable");
    assert_eq!(setup.keeper_nonce().await, nonce_before);
    let agreement = agreement::show(&setup.suite, id_2, None).await.unwrap();
    assert_eq!(
        agreement.payment_condition().unwrap().state,
        ConditionState::Fulfilled,
        "paid, still in escrow"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_behind_a_web_server_are_fetched_with_their_sealed_headers_and_the_guard() {
    let folder = tempfile::tempdir().unwrap();
    let content: Vec<u8> = (0..2_500_000_u32).map(|i| (i * 13 % 241) as u8).collect();
    std::fs::write(folder.path().join("air.csv"), &content).unwrap();
    let token = "tok-7f3a9c-not-for-consumers";
    let web = common::WebServer::start(folder.path(), token).await;
    // The server is on the keeper's own machine: allowed by name, as an operator would.
    let setup = setup_with(|config| {
        config.outbound.allow = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&content));
    let size = content.len();
    let with_headers = |location: &str, headers: serde_json::Value| {
        let mut source: serde_json::Value =
            serde_json::from_slice(&setup.source_at(location, &sha, size)).unwrap();
        source["files"][0]["headers"] = headers;
        serde_json::to_vec(&source).unwrap()
    };
    let bearer = serde_json::json!({ "Authorization": format!("Bearer {token}") });
    let refused_at = |result: Result<B256, MarketError>| match result {
        Err(MarketError::Refused { code, fields, .. }) => {
            assert_eq!(code, "invalid_metadata");
            fields
                .into_iter()
                .find(|field| field.path == "/files/0/location")
                .map(|field| field.message)
                .unwrap_or_else(|| panic!("no location problem"))
        }
        other => panic!("expected a refusal, got {other:?}"),
    };
    let nonce = setup.keeper_nonce().await;

    // Refused before any gas is spent: without the token, the server says 401; the guard refuses
    // loopback addresses the configuration does not allow, and redirects to them or to the cloud
    // metadata service, whatever the first hop; the token is not redirected to another origin.
    let file_url = format!("{}/air.csv", web.base);
    let message = refused_at(
        setup
            .publish_source(&setup.source_at(&file_url, &sha, size))
            .await,
    );
    assert!(message.contains("401"), "{message}");
    let port = web.base.rsplit(':').next().unwrap();
    for (location, expected) in [
        (
            format!("http://[::1]:{port}/air.csv"),
            "is ::1, a loopback address, which is not fetched from",
        ),
        (
            format!("http://127.0.0.2:{port}/air.csv"),
            "127.0.0.2 is 127.0.0.2, a loopback address",
        ),
        (
            format!(
                "{}/redirect?to=http://169.254.169.254/latest/meta-data/",
                web.base
            ),
            "169.254.169.254 is 169.254.169.254, a cloud metadata address",
        ),
        (
            format!("{}/redirect?to=http://[::1]:{port}/air.csv", web.base),
            "a loopback address",
        ),
        (
            format!("{}/redirect?to=http://localhost:{port}/air.csv", web.base),
            "a redirect to another host, which would receive the location's headers",
        ),
        (
            format!("{}/redirect?to=http://10.0.0.1/air.csv", web.base),
            "10.0.0.1 is 10.0.0.1, a private (10.0.0.0/8) address",
        ),
    ] {
        let message = refused_at(
            setup
                .publish_source(&with_headers(&location, bearer.clone()))
                .await,
        );
        assert!(message.contains(expected), "{location}: {message}");
    }
    // Headers only go with web locations (refused by the client before anything is sent), and
    // the keeper reads no other scheme.
    let ftp = format!("ftp://127.0.0.1:{port}/air.csv");
    assert!(matches!(
        setup
            .publish_source(&with_headers(&ftp, bearer.clone()))
            .await,
        Err(MarketError::Metadata(_))
    ));
    let message = refused_at(
        setup
            .publish_source(&setup.source_at(&ftp, &sha, size))
            .await,
    );
    assert!(message.contains("not ftp://"), "{message}");
    assert_eq!(
        web.authorized.load(std::sync::atomic::Ordering::SeqCst),
        4,
        "the redirects' first hops"
    );

    // With the token, through an allowed redirect: checked (size and SHA-256), published,
    // bought, delivered and settled once.
    let hops = format!("{}/redirect?to=/air.csv", web.base);
    let did = setup
        .publish_source(&with_headers(&hops, bearer.clone()))
        .await
        .unwrap();
    assert_eq!(
        setup.keeper_nonce().await,
        nonce,
        "publishing spends nothing of the keeper's"
    );
    let stored = reqwest::get(setup.url(&format!(
        "/v1/metadata/{}",
        agreement_document_checksum(&setup, did).await
    )))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(stored.contains("\"location\": \"0x"), "{stored}");
    assert!(
        !stored.contains(token) && !stored.contains("headers"),
        "{stored}"
    );

    let id = setup.buy(did).await;
    let out = setup.dir.join("from-web.csv");
    let downloaded = setup.download(id, &out).await.unwrap();
    assert_eq!(downloaded.bytes, size as u64);
    assert_eq!(std::fs::read(&out).unwrap(), content);
    assert_eq!(setup.keeper_nonce().await, nonce + 1);

    // A range is asked of the web server as a range.
    let response = reqwest::Client::new()
        .post(setup.url("/v1/access"))
        .header("range", "bytes=2000000-2000099")
        .json(&setup.signed_access(id, did).await)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 206);
    assert_eq!(
        response.bytes().await.unwrap().as_ref(),
        &content[2_000_000..2_000_100]
    );

    // The file changes on the server (same size): the next purchase is refused as unservable and
    // never settled.
    let id_2 = setup.buy(did).await;
    let mut changed = content.clone();
    changed[size - 1] ^= 0xff;
    // A new modification time, so the server's validators change.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    std::fs::write(folder.path().join("air.csv"), &changed).unwrap();
    setup.wait_recorded(id_2).await;
    let code = refused_code(setup.download(id_2, &setup.dir.join("again.csv")).await);
    assert_eq!(code, "content_unavailable");
    assert_eq!(setup.keeper_nonce().await, nonce + 1);
    setup.keeper.stop().await;
}

/// The checksum of the metadata document registered for `did`.
async fn agreement_document_checksum(setup: &Setup, did: B256) -> B256 {
    insitu_client::asset::show(&setup.suite, did)
        .await
        .unwrap()
        .checksum
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_lived_token_stands_in_for_signatures_on_one_agreement_until_it_expires() {
    let setup = setup_with(|config| config.access_token_ttl_secs = 600).await;
    let did = setup.publish().await;
    let id = setup.buy(did).await;
    let consumer = sender(&setup.provider, &setup.keys[3]).await;

    // One signed request settles the agreement and yields the token.
    let before = insitu_keeper::executor::now();
    let token = market::access_token(&setup.suite, &consumer, id, 0)
        .await
        .unwrap();
    assert_eq!(setup.keeper_nonce().await, 1, "settled once");
    assert_eq!(token.agreement_id, id.to_string());
    assert!(
        (before + 600..=insitu_keeper::executor::now() + 600).contains(&token.expires_at),
        "{token:?}"
    );
    assert!(
        token
            .url
            .starts_with(&setup.url(&format!("/v1/access/{id}?file=0&token=")))
    );

    // The URL alone (a player), then the header with a range (a script).
    let http = reqwest::Client::new();
    let whole = http.get(&token.url).send().await.unwrap();
    assert_eq!(whole.status().as_u16(), 200);
    assert_eq!(
        whole.bytes().await.unwrap().as_ref(),
        setup.content.as_slice()
    );
    let part = http
        .get(setup.url(&format!("/v1/access/{id}")))
        .bearer_auth(&token.token)
        .header("range", "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status().as_u16(), 206);
    assert_eq!(
        part.bytes().await.unwrap().as_ref(),
        &setup.content[1000..2000]
    );
    // A second token, within the access window: nothing more sent.
    market::access_token(&setup.suite, &consumer, id, 0)
        .await
        .unwrap();
    assert_eq!(setup.keeper_nonce().await, 1);

    // Refusals, each with its code.
    let refused = |url: String, token: Option<String>| {
        let http = http.clone();
        async move {
            let mut request = http.get(url);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap();
            (status, body["code"].as_str().unwrap().to_owned())
        }
    };
    let path = setup.url(&format!("/v1/access/{id}"));
    assert_eq!(
        refused(path.clone(), None).await,
        (401, "invalid_token".into())
    );
    let mut altered = token.token.clone();
    altered.replace_range(..1, if altered.starts_with('A') { "B" } else { "A" });
    assert_eq!(
        refused(path.clone(), Some(altered)).await,
        (401, "invalid_token".into())
    );
    // Another keeper's token for the same agreement.
    let foreign = insitu_keeper::api::tokens::Tokens::new(&PrivateKeySigner::random()).issue(
        insitu_keeper::api::tokens::Grant {
            agreement: id,
            chain_id: 31_337,
            consumer: setup.keys[3].address(),
            expires_at: u64::MAX,
        },
    );
    assert_eq!(
        refused(path.clone(), Some(foreign)).await,
        (401, "invalid_token".into())
    );
    // This keeper's, expired (made with its key, as the keeper would have).
    let tokens = insitu_keeper::api::tokens::Tokens::new(&setup.keys[2]);
    let expired = tokens.issue(insitu_keeper::api::tokens::Grant {
        agreement: id,
        chain_id: 31_337,
        consumer: setup.keys[3].address(),
        expires_at: insitu_keeper::executor::now() - 1,
    });
    assert_eq!(
        refused(path.clone(), Some(expired)).await,
        (401, "token_expired".into())
    );
    // The token names one agreement.
    let other = B256::repeat_byte(0x42);
    assert_eq!(
        refused(
            setup.url(&format!("/v1/access/{other}")),
            Some(token.token.clone())
        )
        .await,
        (403, "wrong_agreement".into())
    );
    assert_eq!(
        refused(setup.url("/v1/access/nope"), Some(token.token.clone())).await,
        (400, "malformed".into())
    );
    assert_eq!(
        refused(
            setup.url(&format!("/v1/access/{id}?file=7")),
            Some(token.token.clone())
        )
        .await,
        (404, "unknown_file".into())
    );
    // A token for an agreement the store does not hold.
    let unknown = tokens.issue(insitu_keeper::api::tokens::Grant {
        agreement: other,
        chain_id: 31_337,
        consumer: setup.keys[3].address(),
        expires_at: u64::MAX,
    });
    assert_eq!(
        refused(setup.url(&format!("/v1/access/{other}")), Some(unknown)).await,
        (404, "unknown_agreement".into())
    );
    // Someone else's signed request gets no token.
    let stranger = sender(&setup.provider, &setup.keys[5]).await;
    assert!(matches!(
        market::access_token(&setup.suite, &stranger, id, 0).await,
        Err(MarketError::Refused { code, .. }) if code == "wrong_consumer"
    ));
    assert_eq!(setup.keeper_nonce().await, 1);
    setup.keeper.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_file_replaced_after_its_check_is_refused_not_served() {
    use insitu_client::metadata::Location;
    use insitu_keeper::{outbound::Policy, storage::Storage};
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("f.bin");
    std::fs::write(&file, vec![7_u8; 10_000]).unwrap();
    let web = common::WebServer::start(folder.path(), "t").await;
    let storage = Storage::new(
        folder.path().to_path_buf(),
        None,
        &Policy::new(vec!["127.0.0.1/32".parse().unwrap()]),
    )
    .unwrap();
    let mut location = Location::url(format!("{}/f.bin", web.base));
    location
        .headers
        .insert("Authorization".to_owned(), "Bearer t".to_owned());
    let source = storage.resolve(&location).await.unwrap();
    let stat = source.stat().await.unwrap();
    assert_eq!(stat.size, 10_000);
    assert!(stat.etag.is_some());
    let source = source.pinned(&stat);
    // The checked version reads.
    let mut chunks = source.read(100, 50).await.unwrap();
    let mut read = Vec::new();
    while let Some(chunk) = futures::StreamExt::next(&mut chunks).await {
        read.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(read, vec![7_u8; 50]);
    // Replaced (same size): the pinned source refuses to read it.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&file, vec![9_u8; 10_000]).unwrap();
    let error = source.read(0, 10).await.err().expect("refused");
    assert!(
        error
            .to_string()
            .contains("the file changed since it was checked"),
        "{error}"
    );
}
