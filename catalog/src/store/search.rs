//! Search: SQLite FTS5 over name, description, tags and author (ranked by BM25), filters on the
//! denormalised `search` tables, facets counted over the whole result set, and keyset pagination
//! (a page's cursor names the last result's sort key and id, so a page never repeats or skips a
//! result because others were added before it).

use alloy::primitives::{Address, B256, U256};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use insitu_client::{
    catalog::{
        AssetSummary, AssetType, DEFAULT_LIMIT, FacetCount, Facets, MAX_LIMIT, SearchPage,
        SearchQuery, Sort,
    },
    metadata::MetadataDocument,
};
use rusqlite::{Transaction, params, types::Value};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, address_text, amount_key};

/// Facet values returned per field.
pub const FACET_VALUES: u32 = 20;
/// Longest query text, in characters.
pub const MAX_QUERY_CHARS: usize = 256;

/// Why a query is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// A parameter is malformed.
    #[error("{field}: {message}")]
    Bad {
        /// The parameter.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The cursor is not one this catalog gave for this sort.
    #[error("the cursor is not one of this search's pages")]
    Cursor,
}

fn bad(field: &'static str, message: impl Into<String>) -> QueryError {
    QueryError::Bad {
        field,
        message: message.into(),
    }
}

/// A checked query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// The FTS5 expression (each word quoted, the last a prefix), when there are words.
    text: Option<String>,
    chain: Option<u64>,
    kind: Option<AssetType>,
    service: Option<&'static str>,
    token: Option<String>,
    price_min: Option<String>,
    price_max: Option<String>,
    provider: Option<String>,
    license: Option<String>,
    tags: Vec<String>,
    sort: Sort,
    limit: u32,
    after: Option<Cursor>,
}

/// Where the previous page ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Cursor {
    /// The sort it belongs to.
    s: String,
    /// The last result's sort key.
    k: serde_json::Value,
    /// Its chain.
    c: u64,
    /// Its did.
    d: B256,
}

impl Query {
    /// Checks a query from the API.
    ///
    /// # Errors
    ///
    /// [`QueryError`] naming the parameter.
    pub fn parse(query: &SearchQuery) -> Result<Self, QueryError> {
        let text = match query.q.as_deref().map(str::trim) {
            Some(q) if q.chars().count() > MAX_QUERY_CHARS => {
                return Err(bad(
                    "q",
                    format!("longer than {MAX_QUERY_CHARS} characters"),
                ));
            }
            Some(q) => fts_expression(q),
            None => None,
        };
        let kind = query
            .kind
            .as_deref()
            .map(str::parse::<AssetType>)
            .transpose()
            .map_err(|message| bad("type", message))?;
        let service = match query.service.as_deref() {
            None => None,
            Some("access") => Some("access"),
            Some("compute") => Some("compute"),
            Some(other) => {
                return Err(bad(
                    "service",
                    format!("unknown service {other:?}: access or compute"),
                ));
            }
        };
        let token = parse_address("token", query.token.as_deref())?;
        let provider = parse_address("provider", query.provider.as_deref())?;
        let price_min = parse_amount("price_min", query.price_min.as_deref())?;
        let price_max = parse_amount("price_max", query.price_max.as_deref())?;
        if let (Some(min), Some(max)) = (&price_min, &price_max)
            && min > max
        {
            return Err(bad("price_min", "above price_max"));
        }
        let tags = query
            .tags
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(|tag| tag.trim().to_lowercase())
            .filter(|tag| !tag.is_empty())
            .collect::<Vec<_>>();
        if tags.len() > 10 {
            return Err(bad("tags", "at most 10 tags"));
        }
        let sort = match query.sort.as_deref() {
            Some(sort) => sort
                .parse::<Sort>()
                .map_err(|message| bad("sort", message))?,
            None if text.is_some() => Sort::Relevance,
            None => Sort::Newest,
        };
        // Without words there is nothing to rank: relevance is the newest first.
        let sort = if sort == Sort::Relevance && text.is_none() {
            Sort::Newest
        } else {
            sort
        };
        let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(bad("limit", format!("from 1 to {MAX_LIMIT}")));
        }
        let after = query
            .cursor
            .as_deref()
            .map(|cursor| {
                let bytes = URL_SAFE_NO_PAD
                    .decode(cursor)
                    .map_err(|_| QueryError::Cursor)?;
                let cursor: Cursor =
                    serde_json::from_slice(&bytes).map_err(|_| QueryError::Cursor)?;
                if cursor.s != sort.as_str() {
                    return Err(QueryError::Cursor);
                }
                Ok(cursor)
            })
            .transpose()?;
        Ok(Self {
            text,
            chain: query.chain,
            kind,
            service,
            token,
            price_min,
            price_max,
            provider,
            license: query.license.clone().filter(|license| !license.is_empty()),
            tags,
            sort,
            limit,
            after,
        })
    }
}

impl Query {
    /// Whether the query matches every indexed asset (no words, no filter).
    fn is_everything(&self) -> bool {
        self.text.is_none()
            && self.chain.is_none()
            && self.kind.is_none()
            && self.service.is_none()
            && self.token.is_none()
            && self.price_min.is_none()
            && self.price_max.is_none()
            && self.provider.is_none()
            && self.license.is_none()
            && self.tags.is_empty()
    }
}

fn parse_address(field: &'static str, text: Option<&str>) -> Result<Option<String>, QueryError> {
    text.filter(|text| !text.is_empty())
        .map(|text| {
            text.parse::<Address>()
                .map(address_text)
                .map_err(|_| bad(field, format!("{text:?} is not an address")))
        })
        .transpose()
}

fn parse_amount(field: &'static str, text: Option<&str>) -> Result<Option<String>, QueryError> {
    text.filter(|text| !text.is_empty())
        .map(|text| {
            if !text.bytes().all(|byte| byte.is_ascii_digit()) {
                return Err(bad(field, format!("{text:?} is not a decimal amount")));
            }
            U256::from_str_radix(text, 10)
                .map(amount_key)
                .map_err(|_| bad(field, format!("{text:?} is not a 256-bit amount")))
        })
        .transpose()
}

/// The words of `q` as an FTS5 expression: each word quoted (no operator or column syntax gets
/// through), all required, the last one also matching words it starts.
fn fts_expression(q: &str) -> Option<String> {
    let words: Vec<&str> = q
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .take(16)
        .collect();
    let (last, rest) = words.split_last()?;
    let mut expression: Vec<String> = rest.iter().map(|word| format!("\"{word}\"")).collect();
    expression.push(format!("\"{last}\"*"));
    Some(expression.join(" "))
}

/// Adds an asset to the index.
pub(super) fn insert(
    tx: &Transaction<'_>,
    summary: &AssetSummary,
    popularity: u64,
    document: &MetadataDocument,
) -> Result<(), StoreError> {
    let encoded = serde_json::to_string(summary)
        .map_err(|error| StoreError::Corrupt(format!("a summary: {error}")))?;
    tx.execute(
        "INSERT INTO search (chain_id, did, kind, license, registered_at, registered_block, \
         popularity, summary) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            summary.chain,
            summary.did.as_slice(),
            summary.kind.as_str(),
            summary.license,
            summary.registered_at,
            summary.registered_block,
            popularity,
            encoded
        ],
    )?;
    let id = tx.last_insert_rowid();
    for service in &document.services {
        tx.execute(
            "INSERT INTO search_services (id, service, token, price) VALUES (?1, ?2, ?3, ?4)",
            params![
                id,
                match service.kind {
                    insitu_client::metadata::ServiceKind::Access => "access",
                    insitu_client::metadata::ServiceKind::Compute => "compute",
                },
                address_text(service.token),
                amount_key(service.total())
            ],
        )?;
    }
    let mut tags: Vec<String> = summary.tags.iter().map(|tag| tag.to_lowercase()).collect();
    tags.sort();
    tags.dedup();
    for tag in &tags {
        tx.execute(
            "INSERT INTO search_tags (id, tag) VALUES (?1, ?2)",
            params![id, tag],
        )?;
    }
    for provider in &summary.providers {
        tx.execute(
            "INSERT INTO search_providers (id, provider) VALUES (?1, ?2)",
            params![id, address_text(*provider)],
        )?;
    }
    tx.execute(
        "INSERT INTO search_text (rowid, name, description, tags, author) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            id,
            summary.name,
            summary.description,
            summary.tags.join(" "),
            summary.author
        ],
    )?;
    Ok(())
}

/// Removes an asset from the index (if it is there).
pub(super) fn remove(tx: &Transaction<'_>, chain: u64, did: B256) -> Result<(), StoreError> {
    let id: Option<i64> = rusqlite::OptionalExtension::optional(tx.query_row(
        "SELECT id FROM search WHERE chain_id = ?1 AND did = ?2",
        params![chain, did.as_slice()],
        |row| row.get(0),
    ))?;
    if let Some(id) = id {
        for table in ["search_services", "search_tags", "search_providers"] {
            tx.execute(&format!("DELETE FROM {table} WHERE id = ?1"), [id])?;
        }
        tx.execute("DELETE FROM search_text WHERE rowid = ?1", [id])?;
        tx.execute("DELETE FROM search WHERE id = ?1", [id])?;
    }
    Ok(())
}

/// SQL and its parameters, built together.
#[derive(Default)]
struct Sql {
    text: String,
    values: Vec<Value>,
}

impl Sql {
    /// Appends `fragment`, whose `?` placeholders take `values` in order.
    fn push(&mut self, fragment: &str, values: impl IntoIterator<Item = Value>) {
        self.text.push_str(fragment);
        self.values.extend(values);
    }
}

impl Store {
    /// Runs a search: one page of results, the total, and facets over all matching results.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn search(&self, query: &Query) -> Result<SearchPage, StoreError> {
        // The matching assets with their sort key `k`, as a common table expression.
        let mut hits = Sql::default();
        let key = match query.sort {
            Sort::Relevance => "bm25(search_text, 8.0, 1.0, 4.0, 2.0)",
            Sort::Newest => "s.registered_at",
            Sort::Popularity => "s.popularity",
            Sort::PriceAsc | Sort::PriceDesc => "",
        };
        let price_scope = {
            let mut scope = Sql::default();
            if let Some(service) = query.service {
                scope.push(" AND p.service = ?", [Value::Text(service.to_owned())]);
            }
            if let Some(token) = &query.token {
                scope.push(" AND p.token = ?", [Value::Text(token.clone())]);
            }
            if let Some(min) = &query.price_min {
                scope.push(" AND p.price >= ?", [Value::Text(min.clone())]);
            }
            if let Some(max) = &query.price_max {
                scope.push(" AND p.price <= ?", [Value::Text(max.clone())]);
            }
            scope
        };
        hits.push(
            "INSERT INTO temp.hits (id, chain_id, did, kind, license, k) \
             SELECT s.id, s.chain_id, s.did, s.kind, s.license, ",
            [],
        );
        match query.sort {
            Sort::PriceAsc | Sort::PriceDesc => {
                // Assets without a matching price sort last either way.
                let missing = if query.sort == Sort::PriceAsc {
                    "'~'"
                } else {
                    "''"
                };
                hits.push(
                    &format!(
                        "COALESCE((SELECT MIN(p.price) FROM search_services p WHERE p.id = s.id{}), {missing})",
                        price_scope.text
                    ),
                    price_scope.values.clone(),
                );
            }
            _ => hits.push(key, []),
        }
        hits.push(" AS k FROM search s", []);
        if let Some(text) = &query.text {
            hits.push(
                " JOIN search_text ON search_text.rowid = s.id WHERE search_text MATCH ?",
                [Value::Text(text.clone())],
            );
        } else {
            hits.push(" WHERE 1", []);
        }
        if let Some(chain) = query.chain {
            hits.push(" AND s.chain_id = ?", [Value::Integer(chain as i64)]);
        }
        if let Some(kind) = query.kind {
            hits.push(" AND s.kind = ?", [Value::Text(kind.as_str().to_owned())]);
        }
        if let Some(license) = &query.license {
            hits.push(" AND s.license = ?", [Value::Text(license.clone())]);
        }
        if let Some(provider) = &query.provider {
            hits.push(
                " AND EXISTS (SELECT 1 FROM search_providers v WHERE v.id = s.id AND v.provider = ?)",
                [Value::Text(provider.clone())],
            );
        }
        for tag in &query.tags {
            hits.push(
                " AND EXISTS (SELECT 1 FROM search_tags t WHERE t.id = s.id AND t.tag = ?)",
                [Value::Text(tag.clone())],
            );
        }
        if !price_scope.text.is_empty() {
            hits.push(
                &format!(
                    " AND EXISTS (SELECT 1 FROM search_services p WHERE p.id = s.id{})",
                    price_scope.text
                ),
                price_scope.values.clone(),
            );
        }
        // The matching set is computed once; the count, the page and each facet read it.
        // (A table of this connection, in memory; emptied after each search.)
        self.connection().execute(
            "CREATE TEMP TABLE IF NOT EXISTS hits (id INTEGER PRIMARY KEY, chain_id INTEGER, \
             did BLOB, kind TEXT, license TEXT, k)",
            [],
        )?;
        self.connection().execute("DELETE FROM temp.hits", [])?;
        self.connection()
            .execute(&hits.text, rusqlite::params_from_iter(hits.values.iter()))?;
        let result = self.read_hits(query);
        self.connection().execute("DELETE FROM temp.hits", [])?;
        result
    }

    fn read_hits(&self, query: &Query) -> Result<SearchPage, StoreError> {
        let descending = matches!(
            query.sort,
            Sort::Newest | Sort::Popularity | Sort::PriceDesc
        );
        let total: u64 =
            self.connection()
                .query_row("SELECT COUNT(*) FROM temp.hits", [], |row| row.get(0))?;

        let mut page = Sql::default();
        // The page is picked from the hits first; only its rows are joined to their summaries.
        page.push(
            "SELECT h.chain_id, h.did, h.k, s.summary FROM \
             (SELECT id, chain_id, did, k FROM temp.hits h",
            [],
        );
        if let Some(after) = &query.after {
            let key = json_value(&after.k);
            let comparison = if descending { "<" } else { ">" };
            page.push(
                &format!(
                    " WHERE h.k {comparison} ? OR (h.k = ? AND (h.chain_id > ? OR (h.chain_id = ? AND h.did > ?)))"
                ),
                [
                    key.clone(),
                    key,
                    Value::Integer(after.c as i64),
                    Value::Integer(after.c as i64),
                    Value::Blob(after.d.to_vec()),
                ],
            );
        }
        let direction = if descending { "DESC" } else { "ASC" };
        let order = format!("ORDER BY h.k {direction}, h.chain_id ASC, h.did ASC");
        page.push(
            &format!(" {order} LIMIT ?) h JOIN search s ON s.id = h.id {order}"),
            [Value::Integer(i64::from(query.limit) + 1)],
        );
        let mut results = Vec::new();
        let mut last = None;
        let mut more = false;
        {
            let mut statement = self.connection().prepare(&page.text)?;
            let mut rows = statement.query(rusqlite::params_from_iter(page.values.iter()))?;
            while let Some(row) = rows.next()? {
                if results.len() == query.limit as usize {
                    more = true;
                    break;
                }
                let chain: u64 = row.get(0)?;
                let did = super::b256(&row.get::<_, Vec<u8>>(1)?)?;
                let key: Value = row.get(2)?;
                let summary: String = row.get(3)?;
                let summary: AssetSummary = serde_json::from_str(&summary)
                    .map_err(|error| StoreError::Corrupt(format!("a summary: {error}")))?;
                results.push(summary);
                last = Some((key, chain, did));
            }
        }
        let next = if more {
            last.map(|(key, chain, did)| {
                let cursor = Cursor {
                    s: query.sort.as_str().to_owned(),
                    k: value_json(key),
                    c: chain,
                    d: did,
                };
                URL_SAFE_NO_PAD.encode(serde_json::to_vec(&cursor).unwrap_or_default())
            })
        } else {
            None
        };
        let facets = self.facets(query.is_everything())?;
        Ok(SearchPage {
            total,
            results,
            facets,
            next,
        })
    }

    /// Facet counts over the hits; over the whole index (the same counts, read straight from
    /// its indexes) when `everything` matched.
    fn facets(&self, everything: bool) -> Result<Facets, StoreError> {
        let scope = |table: &str| {
            if everything {
                format!("{table} h")
            } else {
                // The hits drive the join (SQLite keeps the order of a CROSS JOIN).
                format!("temp.hits x CROSS JOIN {table} h ON h.id = x.id")
            }
        };
        let (search, services, tags, providers) = (
            scope("search"),
            scope("search_services"),
            scope("search_tags"),
            scope("search_providers"),
        );
        // Each value is counted once per asset (an asset may sell two services in one token).
        let count = |select: &str| -> Result<Vec<FacetCount>, StoreError> {
            let sql = format!(
                "SELECT value, COUNT(*) AS n FROM ({select}) \
                 GROUP BY value ORDER BY n DESC, value ASC LIMIT {FACET_VALUES}"
            );
            let mut statement = self.connection().prepare(&sql)?;
            let rows = statement.query_map([], |row| {
                let value: Value = row.get(0)?;
                Ok(FacetCount {
                    value: match value {
                        Value::Integer(number) => number.to_string(),
                        Value::Text(text) => text,
                        _ => String::new(),
                    },
                    count: row.get(1)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        };
        Ok(Facets {
            chain: count(&format!("SELECT h.chain_id AS value FROM {search}"))?,
            kind: count(&format!("SELECT h.kind AS value FROM {search}"))?,
            service: count(&format!("SELECT h.service AS value FROM {services}"))?,
            token: count(&format!(
                "SELECT DISTINCT h.id, h.token AS value FROM {services}"
            ))?,
            license: count(&format!("SELECT h.license AS value FROM {search}"))?,
            tags: count(&format!("SELECT h.tag AS value FROM {tags}"))?,
            provider: count(&format!("SELECT h.provider AS value FROM {providers}"))?,
        })
    }
}

fn json_value(value: &serde_json::Value) -> Value {
    match value {
        serde_json::Value::Number(number) => match number.as_i64() {
            Some(integer) => Value::Integer(integer),
            None => Value::Real(number.as_f64().unwrap_or_default()),
        },
        serde_json::Value::String(text) => Value::Text(text.clone()),
        _ => Value::Null,
    }
}

fn value_json(value: Value) -> serde_json::Value {
    match value {
        Value::Integer(integer) => integer.into(),
        Value::Real(real) => serde_json::Number::from_f64(real)
            .map(serde_json::Value::Number)
            .unwrap_or_default(),
        Value::Text(text) => text.into(),
        _ => serde_json::Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_words_are_quoted_and_the_last_is_a_prefix() {
        assert_eq!(
            fts_expression("air \"quality\" OR NEAR(x"),
            Some("\"air\" \"quality\" \"OR\" \"NEAR\" \"x\"*".to_owned())
        );
        assert_eq!(fts_expression("  -- ** "), None);
    }

    #[test]
    fn bad_parameters_are_named() {
        let refused = |query: SearchQuery| Query::parse(&query).unwrap_err();
        assert!(matches!(
            refused(SearchQuery {
                kind: Some("table".into()),
                ..Default::default()
            }),
            QueryError::Bad { field: "type", .. }
        ));
        assert!(matches!(
            refused(SearchQuery {
                price_min: Some("1e18".into()),
                ..Default::default()
            }),
            QueryError::Bad {
                field: "price_min",
                ..
            }
        ));
        assert!(matches!(
            refused(SearchQuery {
                price_min: Some("5".into()),
                price_max: Some("4".into()),
                ..Default::default()
            }),
            QueryError::Bad {
                field: "price_min",
                ..
            }
        ));
        assert!(matches!(
            refused(SearchQuery {
                token: Some("0x12".into()),
                ..Default::default()
            }),
            QueryError::Bad { field: "token", .. }
        ));
        assert!(matches!(
            refused(SearchQuery {
                limit: Some(0),
                ..Default::default()
            }),
            QueryError::Bad { field: "limit", .. }
        ));
        assert!(matches!(
            refused(SearchQuery {
                sort: Some("cheapest".into()),
                ..Default::default()
            }),
            QueryError::Bad { field: "sort", .. }
        ));
        assert_eq!(
            refused(SearchQuery {
                cursor: Some("not-a-cursor".into()),
                ..Default::default()
            }),
            QueryError::Cursor
        );
    }
}
