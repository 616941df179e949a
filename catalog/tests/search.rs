//! The index and search on a generated catalog: full text, every filter, facets, sorts, keyset
//! pages, flagged documents, updates, transfers, usage, provenance, and reorgs; on SQLite and on
//! PostgreSQL.

mod common;

use std::collections::HashSet;

use alloy::primitives::{Address, B256, U256, keccak256};
use insitu_catalog::{
    sample::{self, OTHER_TOKEN, PROVIDER_A},
    store::{
        Event, Fetch, Fetched, Located, Store,
        search::{Query, QueryError},
    },
};
use insitu_chainwatch::{Checkpoint, LogPosition};
use insitu_client::{
    catalog::{AssetSummary, AssetType, DocumentStatus, SearchPage, SearchQuery},
    metadata::ServiceKind,
};

const CHAIN: u64 = 31_337;
const COUNT: usize = 240;
const T0: u64 = 1_700_000_000;

/// A new, empty store of the database under test.
type Fresh<'a> = &'a dyn Fn() -> Store;

fn catalog(fresh: Fresh<'_>) -> Store {
    let mut store = fresh();
    sample::populate(&mut store, CHAIN, COUNT, T0).unwrap();
    store
}

fn search(store: &mut Store, query: SearchQuery) -> SearchPage {
    store.search(&Query::parse(&query).unwrap()).unwrap()
}

fn total(store: &mut Store, query: SearchQuery) -> usize {
    search(store, query).total as usize
}

fn all(store: &mut Store, query: SearchQuery) -> Vec<AssetSummary> {
    let mut results = Vec::new();
    let mut cursor = None;
    loop {
        let page = search(
            store,
            SearchQuery {
                cursor: cursor.take(),
                limit: Some(7),
                ..query.clone()
            },
        );
        results.extend(page.results);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return results,
        }
    }
}

fn generated(filter: impl Fn(usize) -> bool) -> usize {
    (0..COUNT).filter(|&index| filter(index)).count()
}

/// Events at block `block` (log indexes from 0).
fn at(block: u64, events: Vec<Event>) -> (Vec<Located>, Checkpoint) {
    let hash = keccak256(format!("block {block}"));
    let located = events
        .into_iter()
        .enumerate()
        .map(|(index, event)| Located {
            at: LogPosition {
                block_number: block,
                block_hash: hash,
                log_index: index as u64,
                tx_hash: keccak256(format!("tx {block} {index}")),
            },
            time: T0 + block * 12,
            event,
        })
        .collect();
    (
        located,
        Checkpoint {
            number: block,
            hash,
        },
    )
}

fn record(store: &mut Store, block: u64, events: Vec<Event>) {
    let (events, cursor) = at(block, events);
    store.record(CHAIN, &events, cursor).unwrap();
}

fn register(did: B256, body: &[u8], url: &str) -> Event {
    Event::Registered {
        did,
        owner: Address::repeat_byte(0x22),
        checksum: keccak256(body),
        url: url.to_owned(),
    }
}

fn fetched(store: &mut Store, body: &[u8], url: &str, outcome: Fetched) {
    let fetch = Fetch {
        checksum: keccak256(body),
        url: url.to_owned(),
        attempts: 0,
    };
    store.fetched(&fetch, &outcome, T0, T0 + 10).unwrap();
}

fn renamed(name: &str) -> Vec<u8> {
    let mut value: serde_json::Value = serde_json::from_slice(&sample::document(1)).unwrap();
    value["name"] = name.into();
    serde_json::to_vec(&value).unwrap()
}

fn words_match_name_description_tags_and_author_and_the_last_may_be_a_prefix(fresh: Fresh<'_>) {
    let mut store = catalog(fresh);
    let expected = generated(|index| index % 12 == 0);
    let page = search(
        &mut store,
        SearchQuery {
            q: Some("Air Quality".into()),
            ..Default::default()
        },
    );
    assert_eq!(page.total, expected as u64);
    assert!(
        page.results
            .iter()
            .all(|r| r.name.to_lowercase().contains("air quality"))
    );
    let prefix = search(
        &mut store,
        SearchQuery {
            q: Some("air qual".into()),
            ..Default::default()
        },
    );
    assert_eq!(prefix.total, expected as u64);
    // Author ("<place> open data office") and tags are searched too.
    let by_author = search(
        &mut store,
        SearchQuery {
            q: Some("Lyon office".into()),
            ..Default::default()
        },
    );
    assert_eq!(
        by_author.total,
        generated(|index| (index / 12) % 10 == 0) as u64
    );
    let by_tag = search(
        &mut store,
        SearchQuery {
            q: Some("geospatial".into()),
            ..Default::default()
        },
    );
    assert!(by_tag.total > 0);
    assert!(
        by_tag
            .results
            .iter()
            .all(|r| r.tags.iter().any(|t| t == "geospatial"))
    );
    // Query syntax is never interpreted: operators and quotes are words.
    let odd = search(
        &mut store,
        SearchQuery {
            q: Some("\"air\" OR NEAR(".into()),
            ..Default::default()
        },
    );
    assert_eq!(odd.total, 0);
    // Relevance: an exact name beats a mention in the description.
    let best = search(
        &mut store,
        SearchQuery {
            q: Some("bike sharing".into()),
            limit: Some(1),
            ..Default::default()
        },
    );
    assert!(best.results[0].name.starts_with("bike sharing"));
}

fn every_filter_narrows_the_results_to_what_it_names(fresh: Fresh<'_>) {
    let mut store = catalog(fresh);
    assert_eq!(total(&mut store, SearchQuery::default()), COUNT);
    assert_eq!(
        total(
            &mut store,
            SearchQuery {
                chain: Some(CHAIN),
                ..Default::default()
            }
        ),
        COUNT
    );
    assert_eq!(
        total(
            &mut store,
            SearchQuery {
                chain: Some(1),
                ..Default::default()
            }
        ),
        0
    );
    assert_eq!(
        total(
            &mut store,
            SearchQuery {
                kind: Some("algorithm".into()),
                ..Default::default()
            }
        ),
        generated(|index| index % 10 == 9)
    );
    assert_eq!(
        total(
            &mut store,
            SearchQuery {
                kind: Some("dataset".into()),
                ..Default::default()
            }
        ),
        generated(|index| index % 10 != 9)
    );
    assert_eq!(
        total(
            &mut store,
            SearchQuery {
                service: Some("compute".into()),
                ..Default::default()
            }
        ),
        generated(|index| index % 4 == 0)
    );
    assert_eq!(
        total(
            &mut store,
            SearchQuery {
                token: Some(OTHER_TOKEN.to_string()),
                ..Default::default()
            }
        ),
        generated(|index| index % 7 == 0)
    );
    assert_eq!(
        total(
            &mut store,
            SearchQuery {
                provider: Some(PROVIDER_A.to_string().to_lowercase()),
                ..Default::default()
            }
        ),
        generated(|index| index % 2 == 0)
    );
    assert_eq!(
        total(
            &mut store,
            SearchQuery {
                license: Some("CC0-1.0".into()),
                ..Default::default()
            }
        ),
        generated(|index| index % 4 == 1)
    );
    // Tags: all of them; case does not matter.
    let both = search(
        &mut store,
        SearchQuery {
            tags: Some("Time Series, finance".into()),
            limit: Some(100),
            ..Default::default()
        },
    );
    assert!(both.total > 0);
    for result in &both.results {
        assert!(
            result.tags.contains(&"time series".to_owned())
                && result.tags.contains(&"finance".to_owned())
        );
    }
    // Prices, inclusive, in the token's smallest unit, on the service filtered on.
    let ether = U256::from(10u64).pow(U256::from(18));
    let price = |index: usize| U256::from(1 + (index * 37) % 500) * ether;
    let (min, max) = (U256::from(100) * ether, U256::from(200) * ether);
    assert_eq!(
        total(
            &mut store,
            SearchQuery {
                service: Some("access".into()),
                price_min: Some(min.to_string()),
                price_max: Some(max.to_string()),
                ..Default::default()
            }
        ),
        generated(|index| (min..=max).contains(&price(index)))
    );
    // Filters combine.
    assert_eq!(
        total(
            &mut store,
            SearchQuery {
                q: Some("river".into()),
                service: Some("compute".into()),
                provider: Some(PROVIDER_A.to_string()),
                ..Default::default()
            }
        ),
        generated(|index| index % 12 == 1 && index % 4 == 0 && index % 2 == 0)
    );
}

fn facets_count_every_matching_result_not_just_the_page(fresh: Fresh<'_>) {
    let mut store = catalog(fresh);
    let page = search(
        &mut store,
        SearchQuery {
            limit: Some(1),
            ..Default::default()
        },
    );
    let count = |facet: &[insitu_client::catalog::FacetCount], value: &str| {
        facet
            .iter()
            .find(|f| f.value == value)
            .map_or(0, |f| f.count) as usize
    };
    assert_eq!(
        count(&page.facets.kind, "algorithm"),
        generated(|i| i % 10 == 9)
    );
    assert_eq!(
        count(&page.facets.kind, "dataset"),
        generated(|i| i % 10 != 9)
    );
    assert_eq!(count(&page.facets.service, "access"), COUNT);
    assert_eq!(
        count(&page.facets.service, "compute"),
        generated(|i| i % 4 == 0)
    );
    assert_eq!(count(&page.facets.chain, &CHAIN.to_string()), COUNT);
    assert_eq!(
        count(&page.facets.license, "ODbL-1.0"),
        generated(|i| i % 4 == 2)
    );
    assert_eq!(
        count(
            &page.facets.provider,
            &PROVIDER_A.to_string().to_lowercase()
        ),
        COUNT / 2
    );
    assert!(
        page.facets
            .tags
            .windows(2)
            .all(|w| w[0].count >= w[1].count)
    );
    // Facets follow the filters.
    let filtered = search(
        &mut store,
        SearchQuery {
            kind: Some("algorithm".into()),
            ..Default::default()
        },
    );
    assert_eq!(filtered.facets.kind.len(), 1);
}

fn sorts_order_results_and_pages_walk_them_without_repeats_or_gaps(fresh: Fresh<'_>) {
    let mut store = catalog(fresh);
    for sort in ["newest", "price_asc", "price_desc", "popularity"] {
        let results = all(
            &mut store,
            SearchQuery {
                sort: Some(sort.into()),
                ..Default::default()
            },
        );
        assert_eq!(results.len(), COUNT, "{sort}");
        let ids: HashSet<B256> = results.iter().map(|r| r.did).collect();
        assert_eq!(ids.len(), COUNT, "{sort}: a result repeated");
        let price = |r: &AssetSummary| {
            r.services
                .iter()
                .map(|s| s.price.parse::<U256>().unwrap())
                .min()
                .unwrap()
        };
        let ordered = match sort {
            "newest" => results
                .windows(2)
                .all(|w| w[0].registered_at >= w[1].registered_at),
            "price_asc" => results.windows(2).all(|w| price(&w[0]) <= price(&w[1])),
            "price_desc" => results.windows(2).all(|w| price(&w[0]) >= price(&w[1])),
            _ => results
                .windows(2)
                .all(|w| w[0].agreements >= w[1].agreements),
        };
        assert!(ordered, "{sort} is out of order");
    }
    let relevant = all(
        &mut store,
        SearchQuery {
            q: Some("levels".into()),
            ..Default::default()
        },
    );
    assert_eq!(relevant.len(), generated(|i| i % 12 == 1 || i % 12 == 7));
    // Many of them tie on relevance (the same words, the same lengths): the pages still hold each
    // once.
    let ids: HashSet<B256> = relevant.iter().map(|r| r.did).collect();
    assert_eq!(
        ids.len(),
        relevant.len(),
        "a relevance page repeated a result"
    );
}

fn a_page_cursor_survives_new_assets_and_refuses_another_sort(fresh: Fresh<'_>) {
    let mut store = catalog(fresh);
    let expected = all(
        &mut store,
        SearchQuery {
            sort: Some("newest".into()),
            ..Default::default()
        },
    );
    let first = search(
        &mut store,
        SearchQuery {
            sort: Some("newest".into()),
            limit: Some(10),
            ..Default::default()
        },
    );
    // A new asset registered between two pages is the newest: it is not on the next page, and
    // the next page starts right after the first.
    let body = renamed("brand new");
    record(
        &mut store,
        10_000,
        vec![register(B256::repeat_byte(9), &body, "https://x/new")],
    );
    fetched(
        &mut store,
        &body,
        "https://x/new",
        Fetched::Valid(body.clone()),
    );
    let second = search(
        &mut store,
        SearchQuery {
            sort: Some("newest".into()),
            limit: Some(10),
            cursor: first.next.clone(),
            ..Default::default()
        },
    );
    let walked: Vec<B256> = first
        .results
        .iter()
        .chain(&second.results)
        .map(|r| r.did)
        .collect();
    assert_eq!(
        walked,
        expected[..20].iter().map(|r| r.did).collect::<Vec<_>>()
    );
    // A cursor is bound to its sort.
    let refused = Query::parse(&SearchQuery {
        sort: Some("price_asc".into()),
        cursor: first.next,
        ..Default::default()
    });
    assert_eq!(refused.unwrap_err(), QueryError::Cursor);
}

fn a_document_that_does_not_match_its_checksum_or_its_schema_is_flagged_never_searchable(
    fresh: Fresh<'_>,
) {
    let mut store = fresh();
    let good = renamed("Glacier melt");
    let (mismatched, invalid) = (B256::repeat_byte(1), B256::repeat_byte(2));
    record(
        &mut store,
        5,
        vec![
            register(mismatched, &good, "https://x/a"),
            register(invalid, b"{}", "https://x/b"),
        ],
    );
    let view = store.asset(CHAIN, mismatched).unwrap().unwrap();
    assert_eq!(view.status, DocumentStatus::Pending);
    assert_eq!(store.due_fetches(T0, 10).unwrap().len(), 2);
    fetched(
        &mut store,
        &good,
        "https://x/a",
        Fetched::Mismatch {
            served: keccak256(b"other"),
        },
    );
    fetched(
        &mut store,
        b"{}",
        "https://x/b",
        Fetched::Invalid {
            body: b"{}".to_vec(),
            problems: vec!["/name: missing".into()],
        },
    );
    let view = store.asset(CHAIN, mismatched).unwrap().unwrap();
    assert_eq!(view.status, DocumentStatus::ChecksumMismatch);
    assert!(view.summary.is_none() && view.document.is_none());
    let view = store.asset(CHAIN, invalid).unwrap().unwrap();
    assert_eq!(view.status, DocumentStatus::Invalid);
    assert_eq!(view.problems, ["/name: missing"]);
    assert_eq!(search(&mut store, SearchQuery::default()).total, 0);
    let status = store.status(&[CHAIN]).unwrap();
    assert_eq!(
        (
            status.chains[0].assets,
            status.chains[0].flagged,
            status.chains[0].valid
        ),
        (2, 2, 0)
    );
    // The mismatch is retried later (the server may be fixed); the invalid document never is,
    // since the bytes of a checksum never change.
    let due = store.due_fetches(T0 + 10, 10).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].url, "https://x/a");
    fetched(
        &mut store,
        &good,
        "https://x/a",
        Fetched::Valid(good.clone()),
    );
    assert_eq!(
        search(
            &mut store,
            SearchQuery {
                q: Some("glacier".into()),
                ..Default::default()
            }
        )
        .total,
        1
    );
    // A document refused by an older catalog (a schema version it did not know, say) that passes
    // this catalog's check is searchable after the check at start.
    let later = renamed("Permafrost depth");
    let once_refused = B256::repeat_byte(0x0e);
    record(
        &mut store,
        6,
        vec![register(once_refused, &later, "https://x/p")],
    );
    fetched(
        &mut store,
        &later,
        "https://x/p",
        Fetched::Invalid {
            body: later.clone(),
            problems: vec!["/schemaVersion: unknown".into()],
        },
    );
    assert_eq!(insitu_catalog::fetcher::recheck(&mut store).unwrap(), 1);
    assert_eq!(
        store.asset(CHAIN, once_refused).unwrap().unwrap().status,
        DocumentStatus::Valid
    );
    assert_eq!(insitu_catalog::fetcher::recheck(&mut store).unwrap(), 0);
    // The really invalid one stays refused.
    assert_eq!(
        store.asset(CHAIN, invalid).unwrap().unwrap().status,
        DocumentStatus::Invalid
    );
}

fn updates_transfers_and_providers_are_followed(fresh: Fresh<'_>) {
    let mut store = fresh();
    let did = B256::repeat_byte(3);
    let (old, new) = (renamed("Tide gauges"), renamed("Wave buoys"));
    record(
        &mut store,
        5,
        vec![
            register(did, &old, "https://x/1"),
            Event::ProviderAdded {
                did,
                provider: PROVIDER_A,
            },
        ],
    );
    fetched(&mut store, &old, "https://x/1", Fetched::Valid(old.clone()));
    assert_eq!(
        search(
            &mut store,
            SearchQuery {
                q: Some("tide".into()),
                ..Default::default()
            }
        )
        .total,
        1
    );
    let owner = Address::repeat_byte(0x33);
    let provider = Address::repeat_byte(0x44);
    record(
        &mut store,
        6,
        vec![
            Event::MetadataUpdated {
                did,
                checksum: keccak256(&new),
                url: "https://x/2".into(),
            },
            Event::OwnerChanged { did, owner },
            Event::ProviderAdded { did, provider },
            Event::ProviderRemoved {
                did,
                provider: PROVIDER_A,
            },
        ],
    );
    // The new document is not fetched yet: the asset leaves the index until it is.
    assert_eq!(
        search(
            &mut store,
            SearchQuery {
                q: Some("tide".into()),
                ..Default::default()
            }
        )
        .total,
        0
    );
    let view = store.asset(CHAIN, did).unwrap().unwrap();
    assert_eq!(view.status, DocumentStatus::Pending);
    assert_eq!(
        (view.owner, view.providers.clone(), view.updated_block),
        (owner, vec![provider], 6)
    );
    fetched(&mut store, &new, "https://x/2", Fetched::Valid(new.clone()));
    let page = search(
        &mut store,
        SearchQuery {
            q: Some("wave".into()),
            ..Default::default()
        },
    );
    assert_eq!(page.total, 1);
    assert_eq!(
        (page.results[0].owner, page.results[0].providers.clone()),
        (owner, vec![provider])
    );
    assert_eq!(
        search(
            &mut store,
            SearchQuery {
                provider: Some(PROVIDER_A.to_string()),
                ..Default::default()
            }
        )
        .total,
        0
    );
}

fn usage_and_provenance_are_counted_from_agreements_and_registry_records(fresh: Fresh<'_>) {
    let mut store = fresh();
    let (data, result) = (B256::repeat_byte(4), B256::repeat_byte(5));
    let body = renamed("Ward occupancy");
    record(&mut store, 5, vec![register(data, &body, "https://x/d")]);
    fetched(
        &mut store,
        &body,
        "https://x/d",
        Fetched::Valid(body.clone()),
    );
    let (a1, a2, c1) = (
        B256::repeat_byte(0xa1),
        B256::repeat_byte(0xa2),
        B256::repeat_byte(0xc1),
    );
    let condition = |id: B256| keccak256(id);
    record(
        &mut store,
        6,
        vec![
            Event::Agreement {
                id: a1,
                did: data,
                service: ServiceKind::Access,
                service_condition: condition(a1),
            },
            Event::Agreement {
                id: a2,
                did: data,
                service: ServiceKind::Access,
                service_condition: condition(a2),
            },
            Event::Agreement {
                id: c1,
                did: data,
                service: ServiceKind::Compute,
                service_condition: condition(c1),
            },
            // A condition and a payment of agreements the catalog does not know are ignored.
            Event::Fulfilled {
                condition: B256::repeat_byte(0xee),
            },
            Event::Refunded {
                agreement: B256::repeat_byte(0xef),
            },
        ],
    );
    record(
        &mut store,
        7,
        vec![
            Event::Fulfilled {
                condition: condition(a1),
            },
            Event::Released { agreement: a1 },
            Event::Refunded { agreement: a2 },
            Event::Fulfilled {
                condition: condition(c1),
            },
            Event::Used {
                did: data,
                activity: c1,
            },
            register(result, b"result document", "https://x/r"),
            Event::Generated {
                did: result,
                activity: c1,
                agent: PROVIDER_A,
            },
            Event::Derived {
                did: result,
                source: data,
                activity: c1,
            },
        ],
    );
    let view = store.asset(CHAIN, data).unwrap().unwrap();
    let usage = view.usage;
    assert_eq!(
        (
            usage.access_agreements,
            usage.compute_agreements,
            usage.access_completed,
            usage.compute_completed,
            usage.refunds,
            usage.uses
        ),
        (2, 1, 1, 1, 1, 1)
    );
    assert_eq!(view.provenance.derivatives, [result]);
    let page = search(
        &mut store,
        SearchQuery {
            q: Some("ward".into()),
            ..Default::default()
        },
    );
    assert_eq!(page.results[0].agreements, 3);
    let made = store.asset(CHAIN, result).unwrap().unwrap();
    assert_eq!(made.provenance.derived_from, [data]);
    assert_eq!(made.provenance.generated_by.unwrap().activity, c1);
}

fn a_rollback_undoes_registrations_updates_and_usage_after_the_ancestor(fresh: Fresh<'_>) {
    let mut store = fresh();
    let (kept, dropped) = (B256::repeat_byte(6), B256::repeat_byte(7));
    let (first, second) = (renamed("Reef survey"), renamed("Reef survey revised"));
    record(&mut store, 5, vec![register(kept, &first, "https://x/k")]);
    fetched(
        &mut store,
        &first,
        "https://x/k",
        Fetched::Valid(first.clone()),
    );
    let other = renamed("Ephemeral");
    record(
        &mut store,
        6,
        vec![
            register(dropped, &other, "https://x/e"),
            Event::MetadataUpdated {
                did: kept,
                checksum: keccak256(&second),
                url: "https://x/k2".into(),
            },
            Event::Agreement {
                id: B256::repeat_byte(8),
                did: kept,
                service: ServiceKind::Access,
                service_condition: B256::repeat_byte(9),
            },
        ],
    );
    fetched(
        &mut store,
        &other,
        "https://x/e",
        Fetched::Valid(other.clone()),
    );
    fetched(
        &mut store,
        &second,
        "https://x/k2",
        Fetched::Valid(second.clone()),
    );
    assert_eq!(search(&mut store, SearchQuery::default()).total, 2);
    assert_eq!(store.anchors(CHAIN).unwrap()[0].number, 6);

    let anchor = store.anchors(CHAIN).unwrap()[1];
    let mut affected = store
        .rollback(CHAIN, anchor.number, Some(anchor.hash))
        .unwrap();
    affected.sort();
    assert_eq!(affected, [kept, dropped]);
    assert!(store.asset(CHAIN, dropped).unwrap().is_none());
    let view = store.asset(CHAIN, kept).unwrap().unwrap();
    assert_eq!(
        (view.checksum, view.usage.access_agreements),
        (keccak256(&first), 0)
    );
    let page = search(&mut store, SearchQuery::default());
    assert_eq!(page.total, 1);
    assert_eq!(page.results[0].name, "Reef survey");
    assert_eq!(store.cursor(CHAIN).unwrap().unwrap().number, 5);
    // The same events recorded again (the new branch) are recorded once.
    record(
        &mut store,
        6,
        vec![register(dropped, &other, "https://x/e")],
    );
    record(
        &mut store,
        6,
        vec![register(dropped, &other, "https://x/e")],
    );
    assert_eq!(search(&mut store, SearchQuery::default()).total, 2);
    // Nothing survives a rollback to before the start.
    store.rollback(CHAIN, 0, None).unwrap();
    assert_eq!(search(&mut store, SearchQuery::default()).total, 0);
    assert!(store.cursor(CHAIN).unwrap().is_none());
}

fn types_follow_the_document(fresh: Fresh<'_>) {
    let mut store = catalog(fresh);
    let page = search(
        &mut store,
        SearchQuery {
            q: Some("model".into()),
            limit: Some(100),
            ..Default::default()
        },
    );
    assert!(page.results.iter().all(|r| r.kind == AssetType::Algorithm));
}

/// Every scenario above, on each database.
macro_rules! on_each_database {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $scenario() {
                    super::$scenario(&|| insitu_catalog::store::Store::in_memory().unwrap());
                }
            )*
        }

        /// The same scenarios on a PostgreSQL server of this machine (Debian's), started for
        /// this test alone, each in a database of its own.
        #[test]
        fn on_postgresql() {
            let server = common::Postgres::start();
            $(
                let url = server.new_database(stringify!($scenario));
                $scenario(&|| insitu_catalog::store::Store::postgres(&url).unwrap());
            )*
        }
    };
}

on_each_database!(
    words_match_name_description_tags_and_author_and_the_last_may_be_a_prefix,
    every_filter_narrows_the_results_to_what_it_names,
    facets_count_every_matching_result_not_just_the_page,
    sorts_order_results_and_pages_walk_them_without_repeats_or_gaps,
    a_page_cursor_survives_new_assets_and_refuses_another_sort,
    a_document_that_does_not_match_its_checksum_or_its_schema_is_flagged_never_searchable,
    updates_transfers_and_providers_are_followed,
    usage_and_provenance_are_counted_from_agreements_and_registry_records,
    a_rollback_undoes_registrations_updates_and_usage_after_the_ancestor,
    types_follow_the_document
);

/// A PostgreSQL connection the server closes is made again: the statement that finds it closed
/// fails (the indexers and the fetcher retry), the next one works, and a write transaction it
/// was in is never applied in part.
#[test]
fn a_lost_postgresql_connection_is_made_again() {
    let server = common::Postgres::start();
    let url = server.new_database("reconnect");
    let mut store = Store::postgres(&url).unwrap();
    sample::populate(&mut store, CHAIN, 12, T0).unwrap();
    let kill = || {
        let mut admin =
            postgres::Client::connect(&server.url("postgres"), postgres::NoTls).unwrap();
        admin
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = 'reconnect' AND pid <> pg_backend_pid()",
                &[],
            )
            .unwrap();
    };
    kill();
    let mut answered = None;
    for _ in 0..3 {
        if let Ok(page) = store.search(&Query::parse(&SearchQuery::default()).unwrap()) {
            answered = Some(page.total);
            break;
        }
    }
    assert_eq!(answered, Some(12), "the store did not connect again");
    // Killed in the middle of a write: the write fails whole, and a retry applies it once.
    kill();
    let body = renamed("After the restart");
    let (events, cursor) = at(
        50,
        vec![register(B256::repeat_byte(0x42), &body, "https://x/r")],
    );
    let mut recorded = None;
    for _ in 0..3 {
        if let Ok(count) = store.record(CHAIN, &events, cursor) {
            recorded = Some(count);
            break;
        }
    }
    assert_eq!(recorded, Some(1));
    assert_eq!(store.cursor(CHAIN).unwrap().unwrap().number, 50);
}
