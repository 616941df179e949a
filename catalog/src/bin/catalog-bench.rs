//! `catalog-bench`: search latency against a generated catalog (10,000 assets by default).
//!
//! Builds the catalog in a fresh database through the store's own recording path (a SQLite file in
//! a temporary folder, or the empty PostgreSQL database given with `--database postgres://...`),
//! then runs a mix of searches (words, prefixes, filters, each sort, deep pages) round-robin and
//! prints their latency. The last line is JSON: `{"database":..,"assets":..,"queries":..,
//! "p50_ms":..,"p99_ms":..,"max_ms":..,"build_secs":..}`.

use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use insitu_catalog::{
    sample,
    store::{Store, search::Query},
};
use insitu_client::catalog::SearchQuery;

/// Search latency against a generated catalog.
#[derive(Debug, Parser)]
struct Args {
    /// Assets in the generated catalog.
    #[arg(long, default_value_t = 10_000)]
    assets: usize,
    /// Searches timed.
    #[arg(long, default_value_t = 2_000)]
    queries: usize,
    /// An empty PostgreSQL database to build the catalog in (`postgres://...`), instead of a
    /// SQLite file.
    #[arg(long)]
    database: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let folder = tempfile::tempdir().context("a temporary folder")?;
    let mut store = match &args.database {
        Some(url) => Store::open_location(url)?,
        None => Store::open(&folder.path().join("catalog.db"))?,
    };
    let database = match store.dialect() {
        insitu_catalog::store::db::Dialect::Sqlite => "sqlite",
        insitu_catalog::store::db::Dialect::Postgres => "postgresql",
    };
    let started = Instant::now();
    sample::populate(&mut store, 31_337, args.assets, 1_700_000_000)?;
    let build_secs = started.elapsed().as_secs_f64();
    let query = |q: &str| SearchQuery {
        q: Some(q.to_owned()),
        ..Default::default()
    };
    let mix: Vec<(&str, SearchQuery)> = vec![
        ("words", query("air quality")),
        ("prefix", query("riv")),
        ("rare words", query("Quito wind")),
        ("no words, newest", SearchQuery::default()),
        (
            "words and filters",
            SearchQuery {
                q: Some("levels".into()),
                service: Some("access".into()),
                license: Some("CC-BY-4.0".into()),
                ..Default::default()
            },
        ),
        (
            "price range, cheapest",
            SearchQuery {
                price_min: Some("100000000000000000000".into()),
                price_max: Some("200000000000000000000".into()),
                sort: Some("price_asc".into()),
                ..Default::default()
            },
        ),
        (
            "type and tags, popularity",
            SearchQuery {
                kind: Some("dataset".into()),
                tags: Some("sensor".into()),
                sort: Some("popularity".into()),
                ..Default::default()
            },
        ),
        (
            "provider, compute",
            SearchQuery {
                provider: Some(sample::PROVIDER_B.to_string()),
                service: Some("compute".into()),
                ..Default::default()
            },
        ),
    ];
    // A deep page: the cursor after 40 pages of the newest.
    let mut deep = SearchQuery {
        limit: Some(100),
        ..Default::default()
    };
    for _ in 0..40 {
        let page = store.search(&Query::parse(&deep)?)?;
        deep.cursor = page.next;
    }
    let mut mix = mix;
    mix.push(("page 41 of the newest", deep));
    let checked: Vec<(&str, Query)> = mix
        .iter()
        .map(|(name, query)| Ok((*name, Query::parse(query)?)))
        .collect::<anyhow::Result<_>>()?;
    // Warm up once each.
    for (_, query) in &checked {
        store.search(query)?;
    }
    let mut all = Vec::with_capacity(args.queries);
    let mut per_kind: Vec<Vec<f64>> = vec![Vec::new(); checked.len()];
    for round in 0..args.queries {
        let kind = round % checked.len();
        let started = Instant::now();
        let page = store.search(&checked[kind].1)?;
        let ms = started.elapsed().as_secs_f64() * 1_000.0;
        std::hint::black_box(page);
        all.push(ms);
        per_kind[kind].push(ms);
    }
    println!(
        "catalog of {} assets on {database} built in {build_secs:.1} s; {} searches:",
        args.assets, args.queries
    );
    for ((name, _), times) in checked.iter().zip(&mut per_kind) {
        println!(
            "  {name:<28} p50 {:>7.2} ms  p99 {:>7.2} ms",
            percentile(times, 0.50),
            percentile(times, 0.99)
        );
    }
    let (p50, p99) = (percentile(&mut all, 0.50), percentile(&mut all, 0.99));
    let max = all.iter().copied().fold(0.0, f64::max);
    println!(
        "{}",
        serde_json::json!({
            "database": database,
            "assets": args.assets,
            "queries": args.queries,
            "p50_ms": round(p50),
            "p99_ms": round(p99),
            "max_ms": round(max),
            "build_secs": round(build_secs),
        })
    );
    Ok(())
}

fn percentile(times: &mut [f64], quantile: f64) -> f64 {
    if times.is_empty() {
        return 0.0;
    }
    times.sort_by(f64::total_cmp);
    let rank = ((times.len() as f64 * quantile).ceil() as usize).clamp(1, times.len());
    times[rank - 1]
}

fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}
