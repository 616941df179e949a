//! The catalog service against a real anvil node: assets registered on chain are indexed once
//! their documents check out (served over HTTP through the outbound guard), mismatched and
//! invalid documents are flagged, unreachable ones wait, usage follows agreements, updates are
//! followed, a reorg drops what it undid, one catalog follows several chains, and the API answers
//! bad input with 4xx JSON; on SQLite and on PostgreSQL.

mod common;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use alloy::{
    network::EthereumWallet,
    primitives::{B256, keccak256},
    providers::{DynProvider, Provider, ProviderBuilder},
    signers::local::PrivateKeySigner,
};
use insitu_bindings::AssetRegistry;
use insitu_catalog::{
    config::{ChainConfig, Config, OutboundConfig},
    service::Catalog,
};
use insitu_client::{
    catalog::{CatalogClient, CatalogError, DocumentStatus, SearchQuery},
    demo::{self, Stage},
    devnet::Devnet,
};

/// Metadata documents served at `http://127.0.0.1:<port>/<name>`, changeable while serving.
#[derive(Clone, Default)]
struct Documents(Arc<Mutex<HashMap<String, Vec<u8>>>>);

impl Documents {
    fn put(&self, name: &str, body: &[u8]) {
        self.0
            .lock()
            .unwrap()
            .insert(name.to_owned(), body.to_vec());
    }

    async fn serve(&self) -> SocketAddr {
        let documents = self.clone();
        let app = axum::Router::new().route(
            "/{name}",
            axum::routing::get(
                move |axum::extract::Path(name): axum::extract::Path<String>| {
                    let documents = documents.clone();
                    async move {
                        match documents.0.lock().unwrap().get(&name) {
                            Some(body) => Ok(body.clone()),
                            None => Err(axum::http::StatusCode::NOT_FOUND),
                        }
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        address
    }
}

fn document(name: &str, tags: &[&str]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "@context": "https://schema.org",
        "@type": "Dataset",
        "schemaVersion": "insitu-metadata/1",
        "name": name,
        "description": format!("{name}: readings of every station, hourly."),
        "author": "Test Lab",
        "license": "CC-BY-4.0",
        "keywords": tags,
        "files": [{"name": "data.csv", "contentType": "text/csv", "contentSize": 10,
                   "sha256": "00".repeat(32), "location": "0x04"}],
        "services": [{
            "type": "access",
            "token": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
            "price": [{"receiver": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "amount": "1000"}],
            "timeout": {"min": 3600, "max": 86400}
        }]
    }))
    .unwrap()
}

struct World {
    chain: Chain,
    docs: Documents,
    docs_at: SocketAddr,
    catalog: Catalog,
    client: CatalogClient,
    _folder: tempfile::TempDir,
}

async fn world() -> World {
    world_on(None).await
}

/// The world with the catalog's database at `database` (a temporary SQLite file by default).
/// A chain with the suite deployed and the demo run up to a served purchase.
struct Chain {
    devnet: Devnet,
    keys: Vec<PrivateKeySigner>,
    token: alloy::primitives::Address,
    provider: DynProvider,
    registry: AssetRegistry::AssetRegistryInstance<DynProvider>,
    keeper: alloy::primitives::Address,
    demo_did: B256,
    addresses: std::path::PathBuf,
}

async fn chain(id: u64, folder: &std::path::Path) -> Chain {
    let devnet = Devnet::start_with(|anvil| anvil.chain_id(id)).expect("anvil");
    let keys: Vec<PrivateKeySigner> = devnet.signers();
    let report = demo::run_until(&devnet.endpoint(), &keys[..5], Stage::Served)
        .await
        .expect("demo");
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(keys[1].clone()))
        .connect_http(devnet.endpoint().parse().unwrap())
        .erased();
    let suite = report.deployment.suite().unwrap();
    let addresses = folder.join(format!("deployment-{id}.json"));
    report.deployment.write(&addresses).unwrap();
    Chain {
        registry: AssetRegistry::new(suite.asset_registry, provider.clone()),
        provider,
        keeper: keys[2].address(),
        demo_did: report.did,
        addresses,
        devnet,
        keys,
        token: report.token,
    }
}

impl Chain {
    fn config(&self) -> ChainConfig {
        ChainConfig {
            rpc_url: self.devnet.endpoint(),
            addresses: self.addresses.clone(),
            confirmations: 0,
        }
    }
}

/// Registers an asset on `chain` whose document is served (by `docs`, at `docs_at`) as `served`
/// while its checksum is that of `registered`.
async fn register(
    chain: &Chain,
    docs: &Documents,
    docs_at: SocketAddr,
    name: &str,
    registered: &[u8],
    served: &[u8],
) -> B256 {
    docs.put(name, served);
    let receipt = chain
        .registry
        .register(
            keccak256(name),
            keccak256(registered),
            format!("http://{docs_at}/{name}"),
            vec![chain.keeper],
        )
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    receipt
        .inner
        .logs()
        .iter()
        .find_map(|log| log.log_decode::<AssetRegistry::AssetRegistered>().ok())
        .unwrap()
        .inner
        .data
        .did
}

async fn world_on(database: Option<String>) -> World {
    let folder = tempfile::tempdir().unwrap();
    let chain = chain(31_337, folder.path()).await;
    let docs = Documents::default();
    let docs_at = docs.serve().await;
    let config = Config {
        listen: "127.0.0.1:0".into(),
        database: database
            .unwrap_or_else(|| folder.path().join("catalog.db").display().to_string()),
        poll_interval_ms: 100,
        chains: vec![chain.config()],
        outbound: OutboundConfig {
            allow: vec!["127.0.0.0/8".parse().unwrap()],
        },
        ..Config::default()
    };
    let catalog = Catalog::start(&config).await.expect("catalog");
    let client = CatalogClient::new(&format!("http://{}", catalog.address));
    World {
        chain,
        docs,
        docs_at,
        catalog,
        client,
        _folder: folder,
    }
}

impl World {
    /// Registers an asset whose document is served as `served` while its checksum is that of
    /// `registered`.
    async fn register(&self, name: &str, registered: &[u8], served: &[u8]) -> B256 {
        register(
            &self.chain,
            &self.docs,
            self.docs_at,
            name,
            registered,
            served,
        )
        .await
    }

    async fn status_of(&self, did: B256) -> Option<DocumentStatus> {
        match self.client.asset(31_337, did).await {
            Ok(view) => Some(view.status),
            Err(CatalogError::Refused { status: 404, .. }) => None,
            Err(error) => panic!("{error}"),
        }
    }

    /// Waits (up to 30 s) until `check` holds.
    async fn until<F: std::future::Future<Output = bool>>(
        &self,
        what: &str,
        check: impl Fn() -> F,
    ) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !check().await {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn found(&self, q: &str) -> Vec<B256> {
        let page = self
            .client
            .search(&SearchQuery {
                q: Some(q.into()),
                ..Default::default()
            })
            .await
            .unwrap();
        page.results.iter().map(|r| r.did).collect()
    }
}

#[tokio::test]
async fn registered_assets_are_indexed_checked_flagged_updated_and_rolled_back() {
    indexed_checked_flagged_updated_and_rolled_back(world().await).await;
}

/// The same, with the catalog on a PostgreSQL server.
#[tokio::test]
async fn the_catalog_runs_the_same_on_postgresql() {
    let server = common::Postgres::start();
    let url = server.new_database("catalog");
    indexed_checked_flagged_updated_and_rolled_back(world_on(Some(url)).await).await;
}

async fn indexed_checked_flagged_updated_and_rolled_back(world: World) {
    let glacier = document("Glacier melt", &["ice"]);
    let valid = world.register("glacier", &glacier, &glacier).await;
    let mismatched = world
        .register(
            "fjord",
            &document("Fjord salinity", &[]),
            &document("Something else", &[]),
        )
        .await;
    let invalid_body = br#"{"schemaVersion": "insitu-metadata/1", "name": "no more"}"#;
    let invalid = world.register("broken", invalid_body, invalid_body).await;

    world
        .until("the three documents are fetched", || async {
            world.status_of(valid).await == Some(DocumentStatus::Valid)
                && world.status_of(mismatched).await == Some(DocumentStatus::ChecksumMismatch)
                && world.status_of(invalid).await == Some(DocumentStatus::Invalid)
        })
        .await;
    assert_eq!(world.found("glacier").await, [valid]);
    assert!(
        world.found("fjord").await.is_empty(),
        "a mismatch is never indexed"
    );
    let view = world.client.asset(31_337, invalid).await.unwrap();
    assert!(
        view.problems.iter().any(|p| p.contains("description")),
        "{:?}",
        view.problems
    );
    let view = world.client.asset(31_337, valid).await.unwrap();
    assert_eq!(view.providers, [world.chain.keeper]);
    assert_eq!(view.summary.unwrap().services[0].price, "1000");

    // The demo's asset: its URL does not resolve (it waits, retried), and its agreement (bought,
    // served, released) is counted.
    let demo = world
        .client
        .asset(31_337, world.chain.demo_did)
        .await
        .unwrap();
    assert_eq!(
        demo.status,
        DocumentStatus::Unreachable,
        "{:?}",
        demo.problems
    );
    assert_eq!(
        (demo.usage.access_agreements, demo.usage.access_completed),
        (1, 1)
    );

    let status = world.client.status().await.unwrap();
    let chain = &status.chains[0];
    assert_eq!(
        (chain.assets, chain.valid, chain.flagged, chain.pending),
        (4, 1, 2, 1)
    );

    // An update is followed: the new document replaces the old one in the index.
    let ice = document("Ice sheet thickness", &["ice"]);
    world.docs.put("ice", &ice);
    world
        .chain
        .registry
        .updateMetadata(
            valid,
            keccak256(&ice),
            format!("http://{}/ice", world.docs_at),
        )
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    world
        .until("the update is indexed", || async {
            world.found("thickness").await == [valid]
        })
        .await;
    assert!(world.found("glacier").await.is_empty());

    // A transfer (offered, then accepted by the new owner) is followed.
    let new_owner = world.chain.keys[4].clone();
    world
        .chain
        .registry
        .transferOwnership(valid, new_owner.address())
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let accepting = ProviderBuilder::new()
        .wallet(EthereumWallet::from(new_owner.clone()))
        .connect_http(world.chain.devnet.endpoint().parse().unwrap())
        .erased();
    AssetRegistry::new(*world.chain.registry.address(), accepting)
        .acceptOwnership(valid)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    world
        .until("the transfer is indexed", || async {
            let view = world.client.asset(31_337, valid).await.unwrap();
            view.owner == new_owner.address()
                && view
                    .summary
                    .is_some_and(|summary| summary.owner == new_owner.address())
        })
        .await;

    // A reorg that drops a registration drops the asset.
    let snapshot: String = world
        .chain
        .provider
        .raw_request("evm_snapshot".into(), ())
        .await
        .unwrap();
    let fleeting = document("Fleeting", &[]);
    let gone = world.register("fleeting", &fleeting, &fleeting).await;
    world
        .until("the fleeting asset is indexed", || async {
            world.found("fleeting").await == [gone]
        })
        .await;
    let _: bool = world
        .chain
        .provider
        .raw_request("evm_revert".into(), (snapshot,))
        .await
        .unwrap();
    let _: serde_json::Value = world
        .chain
        .provider
        .raw_request("anvil_mine".into(), (3,))
        .await
        .unwrap();
    world
        .until("the reorg is undone", || async {
            world.status_of(gone).await.is_none()
        })
        .await;
    assert!(world.found("fleeting").await.is_empty());
    assert_eq!(
        world.found("thickness").await,
        [valid],
        "what the reorg kept stays"
    );
    world.catalog.stop().await;
}

#[tokio::test]
async fn bad_requests_get_4xx_json_with_stable_codes() {
    let world = world().await;
    let base = format!("http://{}", world.catalog.address);
    let http = reqwest::Client::new();
    for (path, status, code) in [
        ("/v1/search?limit=0", 400, "bad_query"),
        ("/v1/search?limit=many", 400, "bad_query"),
        ("/v1/search?type=table", 400, "bad_query"),
        ("/v1/search?price_min=1e18", 400, "bad_query"),
        ("/v1/search?cursor=nonsense", 400, "bad_cursor"),
        ("/v1/assets/31337/0x12", 400, "bad_query"),
        ("/v1/assets/x/0x12", 400, "bad_query"),
        (
            "/v1/assets/31337/0x0000000000000000000000000000000000000000000000000000000000000001",
            404,
            "not_found",
        ),
    ] {
        let response = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["code"], code, "{path}: {body}");
    }
    // Tokens, to show amounts in: the demo's token, the native coin, an account with no code.
    let token = |address: String| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let response = http
                .get(format!("{base}/v1/tokens/31337/{address}"))
                .send()
                .await
                .unwrap();
            (
                response.status().as_u16(),
                response.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };
    let (status, demo_token) = token(world.chain.token.to_string()).await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            demo_token["symbol"].as_str(),
            demo_token["decimals"].as_u64()
        ),
        (Some("DUSD"), Some(18))
    );
    let (_, native) = token(alloy::primitives::Address::ZERO.to_string()).await;
    assert_eq!(
        (native["symbol"].as_str(), native["decimals"].as_u64()),
        (Some("ETH"), Some(18))
    );
    let (status, nothing) = token(world.chain.keys[9].address().to_string()).await;
    assert_eq!(status, 200);
    assert!(
        nothing.get("symbol").is_none() && nothing.get("decimals").is_none(),
        "{nothing}"
    );
    let (status, body) = token("0x12".to_owned()).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_query")));
    let unknown_chain = http
        .get(format!("{base}/v1/tokens/5/{}", world.chain.token))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown_chain.status().as_u16(), 404);

    let openapi: serde_json::Value = http
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/v1/search",
        "/v1/assets/{chain}/{did}",
        "/v1/status",
        "/v1/tokens/{chain}/{address}",
    ] {
        assert!(
            openapi["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    world.catalog.stop().await;
}

#[tokio::test]
async fn one_catalog_indexes_several_chains_and_filters_and_counts_by_chain() {
    let folder = tempfile::tempdir().unwrap();
    let (first, second) = (
        chain(31_337, folder.path()).await,
        chain(31_338, folder.path()).await,
    );
    let docs = Documents::default();
    let docs_at = docs.serve().await;
    let (lakes, rivers) = (
        document("Lake temperatures", &["water"]),
        document("River temperatures", &["water"]),
    );
    let on_first = register(&first, &docs, docs_at, "lakes", &lakes, &lakes).await;
    let on_second = register(&second, &docs, docs_at, "rivers", &rivers, &rivers).await;
    let catalog = Catalog::start(&Config {
        listen: "127.0.0.1:0".into(),
        database: folder.path().join("catalog.db").display().to_string(),
        poll_interval_ms: 100,
        chains: vec![first.config(), second.config()],
        outbound: OutboundConfig {
            allow: vec!["127.0.0.0/8".parse().unwrap()],
        },
        ..Config::default()
    })
    .await
    .expect("catalog");
    let client = CatalogClient::new(&format!("http://{}", catalog.address));
    let query = |chain: Option<u64>| SearchQuery {
        q: Some("temperatures".into()),
        chain,
        ..Default::default()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.search(&query(None)).await.unwrap().total < 2 {
        assert!(
            Instant::now() < deadline,
            "both chains' assets are not indexed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let both = client.search(&query(None)).await.unwrap();
    let mut chains: Vec<(u64, String)> = both
        .facets
        .chain
        .iter()
        .map(|facet| (facet.count, facet.value.clone()))
        .collect();
    chains.sort();
    assert_eq!(chains, [(1, "31337".to_owned()), (1, "31338".to_owned())]);
    let only = client.search(&query(Some(31_338))).await.unwrap();
    assert_eq!(only.results.len(), 1);
    assert_eq!(
        (only.results[0].chain, only.results[0].did),
        (31_338, on_second)
    );
    assert_eq!(client.asset(31_337, on_first).await.unwrap().chain, 31_337);
    // An asset is looked up on its own chain only.
    assert!(matches!(
        client.asset(31_338, on_first).await,
        Err(CatalogError::Refused { status: 404, .. })
    ));
    let status = client.status().await.unwrap();
    let ids: Vec<u64> = status.chains.iter().map(|chain| chain.chain).collect();
    assert_eq!(ids, [31_337, 31_338]);
    catalog.stop().await;
}

#[tokio::test]
async fn a_federated_model_is_indexed_as_a_result_with_its_training() {
    let world = world().await;
    let agreements = [B256::repeat_byte(1), B256::repeat_byte(2)];
    let mut model: serde_json::Value =
        serde_json::from_slice(&document("Federated model of station readings", &["model"]))
            .unwrap();
    model["services"] = serde_json::json!([]);
    model["training"] = serde_json::json!({
        "framework": "flower",
        "activity": insitu_client::metadata::training_activity(agreements).to_string(),
        "run": "18446744073709551615",
        "algorithmSha256": "ab".repeat(32),
        "members": agreements.iter().enumerate().map(|(index, agreement)| serde_json::json!({
            "agreement": agreement.to_string(),
            "asset": B256::repeat_byte(0x10 + index as u8).to_string(),
            "provider": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            "result": B256::repeat_byte(0x20 + index as u8).to_string(),
            "roundLog": B256::repeat_byte(0x30 + index as u8).to_string(),
            "rounds": 3,
            "samples": 1440,
        })).collect::<Vec<_>>(),
    });
    let bytes = serde_json::to_vec(&model).unwrap();
    let did = world.register("model", &bytes, &bytes).await;
    world
        .until("the model is indexed", || async {
            world.status_of(did).await == Some(DocumentStatus::Valid)
        })
        .await;
    let view = world.client.asset(31_337, did).await.unwrap();
    assert_eq!(view.summary.unwrap().kind.as_str(), "result");
    let document = view.document.unwrap();
    assert_eq!(document["training"]["run"], "18446744073709551615");
    assert_eq!(
        document["training"]["members"][1]["roundLog"],
        B256::repeat_byte(0x31).to_string()
    );
    let results = world
        .client
        .search(&SearchQuery {
            kind: Some("result".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        results.results.iter().any(|result| result.did == did),
        "{results:?}"
    );
}
