//! `insitu search` against a catalog's API (the catalog's own router over a generated index, in
//! process): words and filters reach the catalog, results, facets and the next page come back,
//! in text and JSON, and bad input or an unreachable catalog is a clear error.

mod common;

use std::sync::{Arc, Mutex};

use insitu_catalog::{
    api::{self, ApiState},
    market::Markets,
    sample,
    store::Store,
};

/// A catalog of 240 generated assets on chain 31337, serving its API on a free port.
async fn catalog() -> String {
    let mut store = Store::in_memory().unwrap();
    sample::populate(&mut store, 31_337, 240, 1_700_000_000).unwrap();
    let state = ApiState {
        store: Arc::new(Mutex::new(store)),
        chains: Arc::new(vec![31_337]),
        markets: Arc::new(Markets::new(
            Default::default(),
            insitu_outbound::Policy::default().client().unwrap(),
        )),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, api::router(state)).await.unwrap() });
    format!("http://{address}")
}

/// Runs `insitu` with `args`, without blocking the runtime that serves the catalog.
async fn run(args: &[&str]) -> std::process::Output {
    tokio::process::Command::from(common::insitu())
        .args(args)
        .output()
        .await
        .unwrap()
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn words_and_filters_find_assets_with_their_prices_facets_and_next_page() {
    let url = catalog().await;
    let json = run(&[
        "--json",
        "search",
        "air quality",
        "--catalog",
        &url,
        "--type",
        "dataset",
        "--service",
        "compute",
        "--limit",
        "3",
    ])
    .await;
    assert!(
        json.status.success(),
        "{}",
        String::from_utf8_lossy(&json.stderr)
    );
    let page: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    // Air quality is every twelfth asset; compute every fourth: both, every twelfth.
    assert_eq!(page["total"], 20);
    assert_eq!(page["results"].as_array().unwrap().len(), 3);
    for result in page["results"].as_array().unwrap() {
        assert!(result["name"].as_str().unwrap().starts_with("air quality"));
        assert!(
            result["services"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["type"] == "compute")
        );
    }
    assert_eq!(page["facets"]["service"][0]["value"], "access");
    let cursor = page["next"].as_str().unwrap().to_owned();

    // The next page, in text.
    let text = run(&[
        "search",
        "air quality",
        "--catalog",
        &url,
        "--type",
        "dataset",
        "--service",
        "compute",
        "--limit",
        "3",
        "--cursor",
        &cursor,
    ])
    .await;
    assert!(text.status.success());
    let shown = stdout(&text);
    assert!(shown.starts_with("20 assets found, 3 shown"), "{shown}");
    assert!(shown.contains("air quality of"), "{shown}");
    assert!(shown.contains("compute "), "{shown}");
    assert!(shown.contains("by field"), "{shown}");
    assert!(shown.contains("next page: --cursor "), "{shown}");
    for name in page["results"].as_array().unwrap() {
        assert!(
            !shown.contains(name["name"].as_str().unwrap()),
            "page 2 repeats page 1"
        );
    }

    // Tags, prices and a sort.
    let cheap = run(&[
        "--json",
        "search",
        "--catalog",
        &url,
        "--tag",
        "health",
        "--tag",
        "sensor",
        "--price-max",
        "100000000000000000000",
        "--sort",
        "price_asc",
        "--limit",
        "100",
    ])
    .await;
    let page: serde_json::Value = serde_json::from_str(&stdout(&cheap)).unwrap();
    let results = page["results"].as_array().unwrap();
    assert!(!results.is_empty());
    let prices: Vec<u128> = results
        .iter()
        .map(|r| {
            r["services"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["price"].as_str().unwrap().parse::<u128>().unwrap())
                .min()
                .unwrap()
        })
        .collect();
    assert!(prices.windows(2).all(|w| w[0] <= w[1]), "{prices:?}");
    for result in results {
        let tags = result["tags"].as_array().unwrap();
        assert!(tags.iter().any(|t| t == "health") && tags.iter().any(|t| t == "sensor"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_and_an_unreachable_catalog_are_clear_errors() {
    let url = catalog().await;
    let refused = run(&[
        "--json",
        "search",
        "x",
        "--catalog",
        &url,
        "--sort",
        "cheapest",
    ])
    .await;
    assert!(!refused.status.success());
    let error: serde_json::Value = serde_json::from_str(&stdout(&refused)).unwrap();
    let message = error["error"].as_str().unwrap();
    assert!(
        message.contains("bad_query") && message.contains("sort"),
        "{message}"
    );

    // A token that is not an address never reaches the catalog.
    let local = run(&["search", "--catalog", &url, "--token", "0x12"]).await;
    assert!(!local.status.success());
    assert!(String::from_utf8_lossy(&local.stderr).contains("--token"));

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = run(&[
        "search",
        "x",
        "--catalog",
        &format!("http://127.0.0.1:{port}"),
    ])
    .await;
    assert!(!down.status.success());
    let said = String::from_utf8_lossy(&down.stderr);
    assert!(said.contains("unreachable"), "{said}");
}
