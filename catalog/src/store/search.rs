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
use serde::{Deserialize, Serialize};

use super::{
    Store, StoreError, address_text, amount_key,
    db::{Connection, ConnectionExt, Dialect, Value},
};

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
    /// The words searched for (letters and digits only; at most 16).
    words: Vec<String>,
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
    k: Key,
    /// Its chain.
    c: u64,
    /// Its did.
    d: B256,
}

/// A sort key in a cursor, of the type its sort uses, kept exactly: a float travels as its bits,
/// since a decimal printed and parsed back may differ in its last place, and a page would then
/// repeat or skip the results that tie with the previous page's last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Key {
    /// Relevance.
    #[serde(rename = "f")]
    Float(u64),
    /// Time, popularity.
    #[serde(rename = "i")]
    Int(i64),
    /// Price.
    #[serde(rename = "t")]
    Text(String),
}

impl Key {
    fn of(value: Value) -> Option<Self> {
        match value {
            Value::Real(real) => Some(Self::Float(real.to_bits())),
            Value::Int(integer) => Some(Self::Int(integer)),
            Value::Text(text) => Some(Self::Text(text)),
            Value::Null | Value::Blob(_) => None,
        }
    }

    fn value(&self) -> Value {
        match self {
            Self::Float(bits) => Value::Real(f64::from_bits(*bits)),
            Self::Int(integer) => Value::Int(*integer),
            Self::Text(text) => Value::Text(text.clone()),
        }
    }

    /// Whether this key can be `sort`'s.
    fn fits(&self, sort: Sort) -> bool {
        match self {
            Self::Float(bits) => sort == Sort::Relevance && f64::from_bits(*bits).is_finite(),
            Self::Int(_) => matches!(sort, Sort::Newest | Sort::Popularity),
            Self::Text(text) => {
                matches!(sort, Sort::PriceAsc | Sort::PriceDesc)
                    && text.len() <= 78
                    && (text.bytes().all(|b| b.is_ascii_digit()) || text == "~" || text.is_empty())
            }
        }
    }
}

impl Query {
    /// Checks a query from the API.
    ///
    /// # Errors
    ///
    /// [`QueryError`] naming the parameter.
    pub fn parse(query: &SearchQuery) -> Result<Self, QueryError> {
        let words = match query.q.as_deref().map(str::trim) {
            Some(q) if q.chars().count() > MAX_QUERY_CHARS => {
                return Err(bad(
                    "q",
                    format!("longer than {MAX_QUERY_CHARS} characters"),
                ));
            }
            Some(q) => words(q),
            None => Vec::new(),
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
            None if !words.is_empty() => Sort::Relevance,
            None => Sort::Newest,
        };
        // Without words there is nothing to rank: relevance is the newest first.
        let sort = if sort == Sort::Relevance && words.is_empty() {
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
                if cursor.s != sort.as_str() || !cursor.k.fits(sort) {
                    return Err(QueryError::Cursor);
                }
                Ok(cursor)
            })
            .transpose()?;
        Ok(Self {
            words,
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
        self.words.is_empty()
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

/// The words of `q`: runs of letters and digits, at most 16. Nothing else of the query reaches
/// the full-text engine, so no operator or column syntax gets through.
fn words(q: &str) -> Vec<String> {
    q.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .take(16)
        .map(str::to_owned)
        .collect()
}

/// The words as a query of `dialect`'s full-text engine: all required, the last also matching
/// the words it starts. FTS5: each word quoted. PostgreSQL: a `to_tsquery` of plain words.
fn text_query(dialect: Dialect, words: &[String]) -> Option<String> {
    let (last, rest) = words.split_last()?;
    Some(match dialect {
        Dialect::Sqlite => {
            let mut parts: Vec<String> = rest.iter().map(|word| format!("\"{word}\"")).collect();
            parts.push(format!("\"{last}\"*"));
            parts.join(" ")
        }
        Dialect::Postgres => {
            let mut parts: Vec<String> = rest.iter().map(|word| word.to_lowercase()).collect();
            parts.push(format!("{}:*", last.to_lowercase()));
            parts.join(" & ")
        }
    })
}

/// Adds an asset to the index.
pub(super) fn insert(
    db: &mut dyn Connection,
    summary: &AssetSummary,
    popularity: u64,
    document: &MetadataDocument,
) -> Result<(), StoreError> {
    let encoded = serde_json::to_string(summary)
        .map_err(|error| StoreError::Corrupt(format!("a summary: {error}")))?;
    let tags_text = summary.tags.join(" ");
    let mut columns: Vec<Value> = vec![
        summary.chain.into(),
        summary.did.into(),
        summary.kind.as_str().into(),
        (&summary.license).into(),
        summary.registered_at.into(),
        summary.registered_block.into(),
        popularity.into(),
        encoded.into(),
    ];
    let id = match db.dialect() {
        Dialect::Sqlite => {
            let id = db
                .value(
                    "INSERT INTO search (chain_id, did, kind, license, registered_at, \
                     registered_block, popularity, summary) VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
                     RETURNING id",
                    &columns,
                )?
                .u64()?;
            db.execute(
                "INSERT INTO search_text (rowid, name, description, tags, author) \
                 VALUES (?, ?, ?, ?, ?)",
                &[
                    id.into(),
                    (&summary.name).into(),
                    (&summary.description).into(),
                    tags_text.into(),
                    (&summary.author).into(),
                ],
            )?;
            id
        }
        Dialect::Postgres => {
            // Weights as FTS5's bm25 weights above: name, tags, author, then description.
            columns.extend([
                (&summary.name).into(),
                tags_text.into(),
                (&summary.author).into(),
                (&summary.description).into(),
            ]);
            db.value(
                "INSERT INTO search (chain_id, did, kind, license, registered_at, \
                 registered_block, popularity, summary, words) VALUES (?, ?, ?, ?, ?, ?, ?, ?, \
                 setweight(to_tsvector('simple', ?), 'A') || \
                 setweight(to_tsvector('simple', ?), 'B') || \
                 setweight(to_tsvector('simple', ?), 'C') || \
                 setweight(to_tsvector('simple', ?), 'D')) RETURNING id",
                &columns,
            )?
            .u64()?
        }
    };
    for service in &document.services {
        db.execute(
            "INSERT INTO search_services (id, service, token, price) VALUES (?, ?, ?, ?)",
            &[
                id.into(),
                match service.kind {
                    insitu_client::metadata::ServiceKind::Access => "access",
                    insitu_client::metadata::ServiceKind::Compute => "compute",
                }
                .into(),
                address_text(service.token).into(),
                amount_key(service.total()).into(),
            ],
        )?;
    }
    let mut tags: Vec<String> = summary.tags.iter().map(|tag| tag.to_lowercase()).collect();
    tags.sort();
    tags.dedup();
    for tag in tags {
        db.execute(
            "INSERT INTO search_tags (id, tag) VALUES (?, ?)",
            &[id.into(), tag.into()],
        )?;
    }
    for provider in &summary.providers {
        db.execute(
            "INSERT INTO search_providers (id, provider) VALUES (?, ?)",
            &[id.into(), address_text(*provider).into()],
        )?;
    }
    Ok(())
}

/// Removes an asset from the index (if it is there).
pub(super) fn remove(db: &mut dyn Connection, chain: u64, did: B256) -> Result<(), StoreError> {
    let Some(row) = db.row(
        "SELECT id FROM search WHERE chain_id = ? AND did = ?",
        &[chain.into(), did.into()],
    )?
    else {
        return Ok(());
    };
    let id = row[0].clone();
    for table in ["search_services", "search_tags", "search_providers"] {
        db.execute(
            &format!("DELETE FROM {table} WHERE id = ?"),
            std::slice::from_ref(&id),
        )?;
    }
    if db.dialect() == Dialect::Sqlite {
        db.execute(
            "DELETE FROM search_text WHERE rowid = ?",
            std::slice::from_ref(&id),
        )?;
    }
    db.execute("DELETE FROM search WHERE id = ?", &[id])?;
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
    /// Runs a search: one page of results, the total, and facets over all matching results, read
    /// from one snapshot of the index.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn search(&mut self, query: &Query) -> Result<SearchPage, StoreError> {
        let dialect = self.dialect();
        let db = self.db();
        db.batch(match dialect {
            Dialect::Sqlite => "BEGIN",
            Dialect::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        })?;
        let result = page(db, query, &hits(dialect, query, true)).and_then(|(results, next)| {
            let (total, facets) =
                total_and_facets(db, query.is_everything(), &hits(dialect, query, false))?;
            Ok(SearchPage {
                total,
                results,
                facets,
                next,
            })
        });
        db.batch("COMMIT")?;
        result
    }
}

/// The matching assets, each with its sort key `k` when `keyed` (NULL otherwise: counting needs
/// none), as a common table expression computed once per statement. Relevance ascends: FTS5's
/// bm25 is lower for better matches, and PostgreSQL's rank is negated to match.
fn hits(dialect: Dialect, query: &Query, keyed: bool) -> Sql {
    let text = text_query(dialect, &query.words);
    let price_scope = {
        let mut scope = Sql::default();
        if let Some(service) = query.service {
            scope.push(" AND p.service = ?", [service.into()]);
        }
        if let Some(token) = &query.token {
            scope.push(" AND p.token = ?", [token.into()]);
        }
        if let Some(min) = &query.price_min {
            scope.push(" AND p.price >= ?", [min.into()]);
        }
        if let Some(max) = &query.price_max {
            scope.push(" AND p.price <= ?", [max.into()]);
        }
        scope
    };
    let mut hits = Sql::default();
    hits.push(
        "WITH hits AS MATERIALIZED (SELECT s.id, s.chain_id, s.did, s.kind, s.license, ",
        [],
    );
    match query.sort {
        _ if !keyed => hits.push("NULL", []),
        Sort::Relevance => match dialect {
            Dialect::Sqlite => hits.push("bm25(search_text, 8.0, 1.0, 4.0, 2.0)", []),
            Dialect::Postgres => hits.push(
                "-CAST(ts_rank(s.words, to_tsquery('simple', ?)) AS DOUBLE PRECISION)",
                [text.clone().into()],
            ),
        },
        Sort::Newest => hits.push("s.registered_at", []),
        Sort::Popularity => hits.push("s.popularity", []),
        Sort::PriceAsc | Sort::PriceDesc => {
            // Assets without a matching price sort last either way.
            let missing = if query.sort == Sort::PriceAsc {
                "'~'"
            } else {
                "''"
            };
            hits.push(
                &format!(
                    "COALESCE((SELECT MIN(p.price) FROM search_services p \
                     WHERE p.id = s.id{}), {missing})",
                    price_scope.text
                ),
                price_scope.values.clone(),
            );
        }
    }
    hits.push(" AS k FROM search s", []);
    match (&text, dialect) {
        (Some(text), Dialect::Sqlite) => hits.push(
            " JOIN search_text ON search_text.rowid = s.id WHERE search_text MATCH ?",
            [text.into()],
        ),
        (Some(text), Dialect::Postgres) => {
            hits.push(" WHERE s.words @@ to_tsquery('simple', ?)", [text.into()])
        }
        (None, _) => hits.push(" WHERE TRUE", []),
    }
    if let Some(chain) = query.chain {
        hits.push(" AND s.chain_id = ?", [chain.into()]);
    }
    if let Some(kind) = query.kind {
        hits.push(" AND s.kind = ?", [kind.as_str().into()]);
    }
    if let Some(license) = &query.license {
        hits.push(" AND s.license = ?", [license.into()]);
    }
    if let Some(provider) = &query.provider {
        hits.push(
            " AND EXISTS (SELECT 1 FROM search_providers v \
             WHERE v.id = s.id AND v.provider = ?)",
            [provider.into()],
        );
    }
    for tag in &query.tags {
        hits.push(
            " AND EXISTS (SELECT 1 FROM search_tags t WHERE t.id = s.id AND t.tag = ?)",
            [tag.into()],
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
    hits.push(") ", []);
    hits
}

/// One page of results after the query's cursor, and the cursor of the next page.
fn page(
    db: &mut dyn Connection,
    query: &Query,
    hits: &Sql,
) -> Result<(Vec<AssetSummary>, Option<String>), StoreError> {
    let descending = matches!(
        query.sort,
        Sort::Newest | Sort::Popularity | Sort::PriceDesc
    );
    // The page is picked from the hits first; only its rows are joined to their summaries.
    let mut page = Sql::default();
    page.push(&hits.text, hits.values.clone());
    page.push(
        "SELECT h.chain_id, h.did, h.k, s.summary FROM \
         (SELECT id, chain_id, did, k FROM hits h",
        [],
    );
    if let Some(after) = &query.after {
        let key = after.k.value();
        let comparison = if descending { "<" } else { ">" };
        page.push(
            &format!(
                " WHERE h.k {comparison} ? OR (h.k = ? AND (h.chain_id > ? \
                 OR (h.chain_id = ? AND h.did > ?)))"
            ),
            [
                key.clone(),
                key,
                after.c.into(),
                after.c.into(),
                after.d.into(),
            ],
        );
    }
    let direction = if descending { "DESC" } else { "ASC" };
    let order = format!("ORDER BY h.k {direction}, h.chain_id ASC, h.did ASC");
    page.push(
        &format!(" {order} LIMIT ?) h JOIN search s ON s.id = h.id {order}"),
        [(u64::from(query.limit) + 1).into()],
    );
    let rows = db.query(&page.text, &page.values)?;
    let more = rows.len() > query.limit as usize;
    let mut results = Vec::new();
    let mut last = None;
    for row in rows.into_iter().take(query.limit as usize) {
        let summary: AssetSummary = serde_json::from_str(&row[3].text()?)
            .map_err(|error| StoreError::Corrupt(format!("a summary: {error}")))?;
        last = Some((row[2].clone(), row[0].u64()?, row[1].b256()?));
        results.push(summary);
    }
    let next = if more {
        last.and_then(|(key, chain, did)| {
            let cursor = Cursor {
                s: query.sort.as_str().to_owned(),
                k: Key::of(key)?,
                c: chain,
                d: did,
            };
            Some(URL_SAFE_NO_PAD.encode(serde_json::to_vec(&cursor).ok()?))
        })
    } else {
        None
    };
    Ok((results, next))
}

/// The number of hits and the facet counts, in one statement. Facets count over the hits; over
/// the whole index (the same counts, read straight from its indexes) when everything matched.
fn total_and_facets(
    db: &mut dyn Connection,
    everything: bool,
    hits: &Sql,
) -> Result<(u64, Facets), StoreError> {
    let scope = |table: &str| {
        if everything {
            format!("{table} h")
        } else {
            format!("hits x JOIN {table} h ON h.id = x.id")
        }
    };
    let (search, services, tags, providers) = (
        scope("search"),
        scope("search_services"),
        scope("search_tags"),
        scope("search_providers"),
    );
    // Each value is counted once per asset (an asset may sell two services in one token).
    let facet = |name: &str, value: &str, from: &str, distinct: bool| {
        let counted = if distinct {
            "COUNT(DISTINCT h.id)"
        } else {
            "COUNT(*)"
        };
        format!(
            " UNION ALL SELECT * FROM (SELECT '{name}' AS facet, CAST({value} AS TEXT) AS value, \
             {counted} AS n FROM {from} GROUP BY {value} \
             ORDER BY n DESC, value ASC LIMIT {FACET_VALUES}) f_{name}"
        )
    };
    let mut sql = Sql::default();
    sql.push(&hits.text, hits.values.clone());
    sql.push(
        if everything {
            "SELECT 'total' AS facet, '' AS value, COUNT(*) AS n FROM search"
        } else {
            "SELECT 'total' AS facet, '' AS value, COUNT(*) AS n FROM hits"
        },
        [],
    );
    for (name, value, from, distinct) in [
        ("chain", "h.chain_id", &search, false),
        ("type", "h.kind", &search, false),
        ("service", "h.service", &services, false),
        ("token", "h.token", &services, true),
        ("license", "h.license", &search, false),
        ("tags", "h.tag", &tags, false),
        ("provider", "h.provider", &providers, false),
    ] {
        sql.push(&facet(name, value, from, distinct), []);
    }
    let mut total = 0;
    let mut facets = Facets::default();
    for row in db.query(&sql.text, &sql.values)? {
        let (name, value, count) = (row[0].text()?, row[1].text()?, row[2].u64()?);
        let list = match name.as_str() {
            "total" => {
                total = count;
                continue;
            }
            "chain" => &mut facets.chain,
            "type" => &mut facets.kind,
            "service" => &mut facets.service,
            "token" => &mut facets.token,
            "license" => &mut facets.license,
            "tags" => &mut facets.tags,
            _ => &mut facets.provider,
        };
        list.push(FacetCount { value, count });
    }
    // (A union's rows come in no promised order.)
    for list in [
        &mut facets.chain,
        &mut facets.kind,
        &mut facets.service,
        &mut facets.token,
        &mut facets.license,
        &mut facets.tags,
        &mut facets.provider,
    ] {
        list.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
    }
    Ok((total, facets))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_words_are_quoted_and_the_last_is_a_prefix() {
        let found = words("air \"quality\" OR NEAR(x");
        assert_eq!(
            text_query(Dialect::Sqlite, &found),
            Some("\"air\" \"quality\" \"OR\" \"NEAR\" \"x\"*".to_owned())
        );
        assert_eq!(
            text_query(Dialect::Postgres, &found),
            Some("air & quality & or & near & x:*".to_owned())
        );
        assert_eq!(text_query(Dialect::Sqlite, &words("  -- ** ")), None);
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

    #[test]
    fn a_cursor_must_carry_a_key_of_its_sorts_type() {
        let cursor = |sort: &str, key: Key| {
            let cursor = Cursor {
                s: sort.to_owned(),
                k: key,
                c: 1,
                d: B256::ZERO,
            };
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&cursor).unwrap())
        };
        let parse = |sort: &str, key: Key| {
            Query::parse(&SearchQuery {
                q: Some("air".into()),
                sort: Some(sort.to_owned()),
                cursor: Some(cursor(sort, key)),
                ..Default::default()
            })
        };
        assert!(parse("newest", Key::Int(5)).is_ok());
        assert!(parse("relevance", Key::Float((-1.5f64).to_bits())).is_ok());
        assert!(parse("price_asc", Key::Text("0".repeat(78))).is_ok());
        for (sort, key) in [
            ("newest", Key::Text("x".into())),
            ("relevance", Key::Int(1)),
            ("relevance", Key::Float(f64::NAN.to_bits())),
            ("price_desc", Key::Float(0)),
            ("price_asc", Key::Text("12a".into())),
            ("popularity", Key::Text(String::new())),
        ] {
            assert_eq!(
                parse(sort, key.clone()).unwrap_err(),
                QueryError::Cursor,
                "{sort} {key:?}"
            );
        }
    }

    #[test]
    fn a_float_key_comes_back_bit_for_bit() {
        for value in [-1.234_567_890_123_456_7e-6, -0.1, -3.0e-300, -7.0] {
            let key = Key::of(Value::Real(value)).unwrap();
            let json = serde_json::to_vec(&key).unwrap();
            let back: Key = serde_json::from_slice(&json).unwrap();
            assert_eq!(back.value(), Value::Real(value));
        }
    }
}
