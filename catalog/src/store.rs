//! The catalog's database (SQLite by default, or PostgreSQL): the chain events it follows, the
//! assets' state derived from them, the metadata documents fetched, and the search index.
//!
//! Data flows one way. The indexer records events ([`Store::record`]); each asset's state is then
//! derived again from all of its events (in the same transaction), so a
//! reorg is undone by deleting the events after the common ancestor and deriving the affected
//! assets again ([`Store::rollback`]). Documents are kept by checksum: the bytes that hash to a
//! checksum never change, so a reorg never invalidates one. An asset is searchable only while the
//! document of its current checksum is stored and valid.

use std::{collections::BTreeSet, path::Path};

use alloy::primitives::{Address, B256, U256};
use insitu_chainwatch::{Checkpoint, LogPosition};
use insitu_client::{
    catalog::{
        AssetSummary, AssetType, AssetView, CatalogStatus, ChainStatus, DocumentStatus, Generation,
        ProvenanceView, ServiceSummary, Usage,
    },
    metadata::{MetadataDocument, ServiceKind},
};
use rusqlite_migration::{M, Migrations};

use self::db::{Connection, ConnectionExt, Dialect, Value};

pub mod db;
pub mod search;

/// Checkpoints kept per chain (older ones are pruned): the deepest reorg undone in place.
pub const CHECKPOINTS_KEPT: u64 = 256;

/// SQLite's schema, by version.
const SQLITE_MIGRATIONS: &[M<'static>] = &[M::up(include_str!("store/sqlite-1.sql"))];
/// PostgreSQL's schema, by version (the same tables).
const POSTGRES_MIGRATIONS: &[&str] = &[include_str!("store/postgres-1.sql")];
/// The lock every PostgreSQL write transaction takes first, so that writers follow one another
/// as they do on SQLite.
const POSTGRES_WRITE_LOCK: i64 = 0x696e_7369_7475;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The schema could not be migrated.
    #[error("database migration failed: {0}")]
    Migration(#[from] rusqlite_migration::Error),
    /// PostgreSQL failed.
    #[error("PostgreSQL: {0}")]
    Postgres(String),
    /// A stored value is not what was written.
    #[error("the database holds a corrupt value: {0}")]
    Corrupt(String),
}

/// A registry or template event, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `AssetRegistered`.
    Registered {
        /// The asset.
        did: B256,
        /// Its owner.
        owner: Address,
        /// Metadata checksum.
        checksum: B256,
        /// Metadata URL.
        url: String,
    },
    /// `MetadataUpdated`.
    MetadataUpdated {
        /// The asset.
        did: B256,
        /// New checksum.
        checksum: B256,
        /// New URL.
        url: String,
    },
    /// `AssetOwnershipTransferred`.
    OwnerChanged {
        /// The asset.
        did: B256,
        /// The new owner.
        owner: Address,
    },
    /// `ProviderAdded`.
    ProviderAdded {
        /// The asset.
        did: B256,
        /// The provider.
        provider: Address,
    },
    /// `ProviderRemoved`.
    ProviderRemoved {
        /// The asset.
        did: B256,
        /// The provider.
        provider: Address,
    },
    /// `WasGeneratedBy`.
    Generated {
        /// The asset.
        did: B256,
        /// The activity.
        activity: B256,
        /// Who recorded it.
        agent: Address,
    },
    /// `WasDerivedFrom`.
    Derived {
        /// The asset.
        did: B256,
        /// What it was derived from.
        source: B256,
        /// The activity.
        activity: B256,
    },
    /// `Used`.
    Used {
        /// The asset.
        did: B256,
        /// The activity.
        activity: B256,
    },
    /// `AgreementCreated` by the access or compute template.
    Agreement {
        /// The agreement.
        id: B256,
        /// The asset.
        did: B256,
        /// Which service.
        service: ServiceKind,
        /// Its service condition (access or compute).
        service_condition: B256,
    },
    /// `ConditionFulfilled` (only service conditions of known agreements count).
    Fulfilled {
        /// The condition.
        condition: B256,
    },
    /// `PaymentReleased`.
    Released {
        /// The agreement.
        agreement: B256,
    },
    /// `PaymentRefunded`.
    Refunded {
        /// The agreement.
        agreement: B256,
    },
}

/// An event and where it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// Where.
    pub at: LogPosition,
    /// Its block's time, Unix seconds.
    pub time: u64,
    /// What.
    pub event: Event,
}

/// A metadata document to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    /// The checksum on chain.
    pub checksum: B256,
    /// The URL on chain.
    pub url: String,
    /// Attempts so far.
    pub attempts: u32,
}

/// What fetching a document gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// Bytes hashing to the checksum, valid against the schema they name.
    Valid(Vec<u8>),
    /// Bytes hashing to the checksum that are not a valid document.
    Invalid {
        /// The bytes.
        body: Vec<u8>,
        /// Every problem.
        problems: Vec<String>,
    },
    /// Bytes hashing to something else.
    Mismatch {
        /// Their hash.
        served: B256,
    },
    /// Nothing usable (guard refusal, too large, network, HTTP error).
    Failed {
        /// Why.
        problem: String,
    },
}

/// The catalog's database.
#[derive(Debug)]
pub struct Store {
    db: Box<dyn Connection>,
}

/// Fixed-width decimal of an amount: text order is numeric order (in SQLite and PostgreSQL).
pub fn amount_key(amount: U256) -> String {
    format!("{amount:0>78}")
}

/// An address as the search tables hold it: lower-case `0x` hex.
pub(crate) fn address_text(address: Address) -> String {
    format!("{address:#x}")
}

/// The type of an asset by its document.
pub fn asset_type(document: &MetadataDocument) -> AssetType {
    if document.provenance.is_some() || document.training.is_some() {
        AssetType::Result
    } else if document.kind == "SoftwareSourceCode" {
        AssetType::Algorithm
    } else {
        AssetType::Dataset
    }
}

/// An asset's state, derived from its events.
#[derive(Debug, Default)]
struct Derived {
    owner: Option<Address>,
    checksum: B256,
    url: String,
    registered_block: u64,
    registered_at: u64,
    updated_block: u64,
    providers: Vec<Address>,
    generated: Option<Generation>,
    derived_from: Vec<B256>,
    usage: Usage,
}

/// Runs `work` in one write transaction of `db`: all of it, or none of it.
fn transaction<T>(
    db: &mut dyn Connection,
    work: impl FnOnce(&mut dyn Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    match db.dialect() {
        // Takes the write lock at once: a transaction that began as a reader could not wait for
        // another writer.
        Dialect::Sqlite => db.batch("BEGIN IMMEDIATE")?,
        Dialect::Postgres => {
            db.batch("BEGIN")?;
            if let Err(error) = db.execute(
                "SELECT pg_advisory_xact_lock(?)",
                &[Value::Int(POSTGRES_WRITE_LOCK)],
            ) {
                let _ = db.batch("ROLLBACK");
                return Err(error);
            }
        }
    }
    match work(db) {
        Ok(value) => {
            db.batch("COMMIT")?;
            Ok(value)
        }
        Err(error) => {
            let _ = db.batch("ROLLBACK");
            Err(error)
        }
    }
}

impl Store {
    /// Opens the database `location`: a `postgres://` (or `postgresql://`) URL, or the path of a
    /// SQLite file (created if needed, in WAL mode). The schema is migrated to the latest version.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn open_location(location: &str) -> Result<Self, StoreError> {
        if location.starts_with("postgres://") || location.starts_with("postgresql://") {
            Self::postgres(location)
        } else {
            Self::open(Path::new(location))
        }
    }

    /// Opens (creating if needed) the SQLite database at `path`, in WAL mode, migrated to the
    /// latest schema.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::sqlite(rusqlite::Connection::open(path)?)
    }

    /// An in-memory SQLite database (tests, benchmarks).
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::sqlite(rusqlite::Connection::open_in_memory()?)
    }

    fn sqlite(mut connection: rusqlite::Connection) -> Result<Self, StoreError> {
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        connection.pragma_update(None, "temp_store", "MEMORY")?;
        connection.busy_timeout(std::time::Duration::from_secs(5))?;
        Migrations::from_slice(SQLITE_MIGRATIONS).to_latest(&mut connection)?;
        Ok(Self {
            db: Box::new(db::Sqlite::new(connection)),
        })
    }

    /// Connects to the PostgreSQL database at `url` and migrates its schema (under the write
    /// lock, so catalogs starting together migrate once).
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn postgres(url: &str) -> Result<Self, StoreError> {
        let mut db: Box<dyn Connection> = Box::new(db::Postgres::connect(url)?);
        transaction(db.as_mut(), |db| {
            db.batch(
                "CREATE TABLE IF NOT EXISTS catalog_schema (version BIGINT NOT NULL PRIMARY KEY)",
            )?;
            let current = db
                .value("SELECT COALESCE(MAX(version), 0) FROM catalog_schema", &[])?
                .u64()?;
            for (index, migration) in POSTGRES_MIGRATIONS.iter().enumerate() {
                let version = index as u64 + 1;
                if version > current {
                    db.batch(migration)?;
                    db.execute(
                        "INSERT INTO catalog_schema (version) VALUES (?)",
                        &[version.into()],
                    )?;
                }
            }
            Ok(())
        })?;
        Ok(Self { db })
    }

    /// Which database this is.
    pub fn dialect(&self) -> Dialect {
        self.db.dialect()
    }

    /// The last block of `chain` indexed.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn cursor(&mut self, chain: u64) -> Result<Option<Checkpoint>, StoreError> {
        self.db
            .row(
                "SELECT number, hash FROM checkpoints WHERE chain_id = ? \
                 ORDER BY number DESC LIMIT 1",
                &[chain.into()],
            )?
            .map(|row| {
                Ok(Checkpoint {
                    number: row[0].u64()?,
                    hash: row[1].b256()?,
                })
            })
            .transpose()
    }

    /// Every block of `chain` whose hash the store holds, newest first.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn anchors(&mut self, chain: u64) -> Result<Vec<Checkpoint>, StoreError> {
        self.db
            .query(
                "SELECT number, hash FROM checkpoints WHERE chain_id = ? \
                 UNION SELECT DISTINCT block_number, block_hash FROM events WHERE chain_id = ? \
                 ORDER BY 1 DESC",
                &[chain.into(), chain.into()],
            )?
            .into_iter()
            .map(|row| {
                Ok(Checkpoint {
                    number: row[0].u64()?,
                    hash: row[1].b256()?,
                })
            })
            .collect()
    }

    /// Records a range's events of `chain` and moves its cursor, in one transaction: the assets
    /// they touch are derived again, and new metadata (checksum and URL) is queued for fetching.
    /// Returns how many events were recorded (an event recorded before is not recorded twice;
    /// template events of agreements on no known asset are skipped).
    ///
    /// # Errors
    ///
    /// [`StoreError`]; nothing is recorded then.
    pub fn record(
        &mut self,
        chain: u64,
        events: &[Located],
        cursor: Checkpoint,
    ) -> Result<usize, StoreError> {
        transaction(self.db.as_mut(), |db| {
            let mut touched = BTreeSet::new();
            let mut recorded = 0;
            for located in events {
                let Some((did, kind, a, b, text)) = resolve(db, chain, &located.event)? else {
                    continue;
                };
                let at = &located.at;
                let inserted = db.execute(
                    "INSERT INTO events (chain_id, block_number, log_index, block_hash, \
                     tx_hash, block_time, kind, did, a, b, text) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    &[
                        chain.into(),
                        at.block_number.into(),
                        at.log_index.into(),
                        at.block_hash.into(),
                        at.tx_hash.into(),
                        located.time.into(),
                        kind.into(),
                        did.into(),
                        a.into(),
                        b.into(),
                        text.into(),
                    ],
                )?;
                if inserted == 0 {
                    continue;
                }
                recorded += 1;
                match &located.event {
                    Event::Agreement {
                        id,
                        did,
                        service,
                        service_condition,
                    } => {
                        db.execute(
                            "INSERT INTO agreements (chain_id, id, did, service, \
                             service_condition, block_number) VALUES (?, ?, ?, ?, ?, ?) \
                             ON CONFLICT DO NOTHING",
                            &[
                                chain.into(),
                                id.into(),
                                did.into(),
                                service_name(*service).into(),
                                service_condition.into(),
                                at.block_number.into(),
                            ],
                        )?;
                    }
                    Event::Registered { checksum, url, .. }
                    | Event::MetadataUpdated { checksum, url, .. } => {
                        db.execute(
                            "INSERT INTO fetches (checksum, url, state, attempts, next_at) \
                             SELECT ?, ?, 'pending', 0, 0 \
                             WHERE NOT EXISTS (SELECT 1 FROM documents WHERE checksum = ?) \
                             ON CONFLICT DO NOTHING",
                            &[checksum.into(), url.into(), checksum.into()],
                        )?;
                    }
                    _ => {}
                }
                touched.insert(did);
            }
            for did in touched {
                refresh(db, chain, did)?;
            }
            db.execute(
                "INSERT INTO checkpoints (chain_id, number, hash) VALUES (?, ?, ?) \
                 ON CONFLICT (chain_id, number) DO UPDATE SET hash = excluded.hash",
                &[chain.into(), cursor.number.into(), cursor.hash.into()],
            )?;
            db.execute(
                "DELETE FROM checkpoints WHERE chain_id = ? AND number < ?",
                &[
                    chain.into(),
                    cursor.number.saturating_sub(CHECKPOINTS_KEPT).into(),
                ],
            )?;
            Ok(recorded)
        })
    }

    /// Undoes everything of `chain` recorded after block `ancestor` (a reorg) and derives the
    /// affected assets again; returns them. With `hash`, `ancestor` becomes the cursor; without,
    /// the chain is indexed again from its start.
    ///
    /// # Errors
    ///
    /// [`StoreError`]; nothing is undone then.
    pub fn rollback(
        &mut self,
        chain: u64,
        ancestor: u64,
        hash: Option<B256>,
    ) -> Result<Vec<B256>, StoreError> {
        transaction(self.db.as_mut(), |db| {
            let after = [chain.into(), ancestor.into()];
            let mut affected: Vec<B256> = db
                .query(
                    "SELECT DISTINCT did FROM events WHERE chain_id = ? AND block_number > ?",
                    &after,
                )?
                .iter()
                .map(|row| row[0].b256())
                .collect::<Result<_, _>>()?;
            affected.sort();
            db.execute(
                "DELETE FROM events WHERE chain_id = ? AND block_number > ?",
                &after,
            )?;
            db.execute(
                "DELETE FROM agreements WHERE chain_id = ? AND block_number > ?",
                &after,
            )?;
            match hash {
                Some(hash) => {
                    db.execute(
                        "DELETE FROM checkpoints WHERE chain_id = ? AND number > ?",
                        &after,
                    )?;
                    db.execute(
                        "INSERT INTO checkpoints (chain_id, number, hash) VALUES (?, ?, ?) \
                         ON CONFLICT (chain_id, number) DO UPDATE SET hash = excluded.hash",
                        &[chain.into(), ancestor.into(), hash.into()],
                    )?;
                }
                None => {
                    db.execute(
                        "DELETE FROM checkpoints WHERE chain_id = ?",
                        &[chain.into()],
                    )?;
                }
            }
            for did in &affected {
                refresh(db, chain, *did)?;
            }
            Ok(affected)
        })
    }

    /// The documents stored as invalid, with their bytes: checked again at start, since a newer
    /// catalog may know a schema version an older one refused.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn invalid_documents(&mut self) -> Result<Vec<(B256, Vec<u8>)>, StoreError> {
        self.db
            .query("SELECT checksum, body FROM documents WHERE valid = 0", &[])?
            .into_iter()
            .map(|row| Ok((row[0].b256()?, row[1].blob()?)))
            .collect()
    }

    /// Records that the stored document `checksum`, once invalid, passes its check now: the assets
    /// that name it become searchable.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn document_now_valid(&mut self, checksum: B256) -> Result<(), StoreError> {
        transaction(self.db.as_mut(), |db| {
            db.execute(
                "UPDATE documents SET valid = 1, problems = NULL WHERE checksum = ?",
                &[checksum.into()],
            )?;
            let assets = db.query(
                "SELECT chain_id, did FROM assets WHERE checksum = ?",
                &[checksum.into()],
            )?;
            for row in assets {
                refresh(db, row[0].u64()?, row[1].b256()?)?;
            }
            Ok(())
        })
    }

    /// Documents due for a fetch at `now` (Unix seconds), oldest first.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn due_fetches(&mut self, now: u64, limit: u32) -> Result<Vec<Fetch>, StoreError> {
        self.db
            .query(
                "SELECT checksum, url, attempts FROM fetches \
                 WHERE state IN ('pending', 'unreachable', 'mismatch') AND next_at <= ? \
                   AND NOT EXISTS (SELECT 1 FROM documents d WHERE d.checksum = fetches.checksum) \
                   AND EXISTS (SELECT 1 FROM assets a \
                               WHERE a.checksum = fetches.checksum AND a.url = fetches.url) \
                 ORDER BY next_at, url LIMIT ?",
                &[now.into(), limit.into()],
            )?
            .into_iter()
            .map(|row| {
                Ok(Fetch {
                    checksum: row[0].b256()?,
                    url: row[1].text()?,
                    attempts: u32::try_from(row[2].u64()?).unwrap_or(u32::MAX),
                })
            })
            .collect()
    }

    /// The earliest time a fetch is due, if any is queued.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn next_fetch_at(&mut self) -> Result<Option<u64>, StoreError> {
        match self.db.value(
            "SELECT MIN(next_at) FROM fetches \
             WHERE state IN ('pending', 'unreachable', 'mismatch') \
               AND NOT EXISTS (SELECT 1 FROM documents d WHERE d.checksum = fetches.checksum)",
            &[],
        )? {
            Value::Null => Ok(None),
            value => value.u64().map(Some),
        }
    }

    /// Records what fetching `fetch` gave at `now`; a failure or mismatch is tried again at
    /// `retry_at`. Assets with that checksum become searchable when the document is valid.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn fetched(
        &mut self,
        fetch: &Fetch,
        outcome: &Fetched,
        now: u64,
        retry_at: u64,
    ) -> Result<(), StoreError> {
        transaction(self.db.as_mut(), |db| {
            let store_document =
                |db: &mut dyn Connection, valid: i64, body: &[u8], problems: Option<String>| {
                    db.execute(
                        "INSERT INTO documents (checksum, valid, body, problems, fetched_at) \
                     VALUES (?, ?, ?, ?, ?) ON CONFLICT (checksum) DO UPDATE SET \
                     valid = excluded.valid, body = excluded.body, \
                     problems = excluded.problems, fetched_at = excluded.fetched_at",
                        &[
                            fetch.checksum.into(),
                            valid.into(),
                            body.into(),
                            problems.into(),
                            now.into(),
                        ],
                    )
                };
            let (state, problem, next_at) = match outcome {
                Fetched::Valid(body) => {
                    store_document(db, 1, body, None)?;
                    ("done", None, now)
                }
                Fetched::Invalid { body, problems } => {
                    store_document(
                        db,
                        0,
                        body,
                        Some(serde_json::to_string(problems).unwrap_or_default()),
                    )?;
                    ("done", None, now)
                }
                Fetched::Mismatch { served } => (
                    "mismatch",
                    Some(format!(
                        "the document served hashes to {served}, not to the checksum registered \
                         on chain"
                    )),
                    retry_at,
                ),
                Fetched::Failed { problem } => ("unreachable", Some(problem.clone()), retry_at),
            };
            db.execute(
                "UPDATE fetches SET state = ?, problem = ?, next_at = ?, \
                 attempts = attempts + 1 WHERE checksum = ? AND url = ?",
                &[
                    state.into(),
                    problem.into(),
                    next_at.into(),
                    fetch.checksum.into(),
                    (&fetch.url).into(),
                ],
            )?;
            let assets = db.query(
                "SELECT chain_id, did FROM assets WHERE checksum = ?",
                &[fetch.checksum.into()],
            )?;
            for row in assets {
                refresh(db, row[0].u64()?, row[1].b256()?)?;
            }
            Ok(())
        })
    }

    /// Everything known of asset `did` on `chain`.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn asset(&mut self, chain: u64, did: B256) -> Result<Option<AssetView>, StoreError> {
        let db = self.db.as_mut();
        let Some(derived) = derive(db, chain, did)? else {
            return Ok(None);
        };
        let Some(owner) = derived.owner else {
            return Ok(None);
        };
        let (status, problems, document) = document_state(db, &derived)?;
        let summary = document
            .as_ref()
            .map(|document| summary(chain, did, &derived, document));
        let derivatives = db
            .query(
                "SELECT did FROM events WHERE chain_id = ? AND kind = 'derived' AND a = ? \
                 GROUP BY did ORDER BY MIN(block_number), MIN(log_index)",
                &[chain.into(), did.into()],
            )?
            .iter()
            .map(|row| row[0].b256())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(AssetView {
            chain,
            did,
            owner,
            providers: derived.providers.clone(),
            checksum: derived.checksum,
            url: derived.url.clone(),
            registered_block: derived.registered_block,
            registered_at: derived.registered_at,
            updated_block: derived.updated_block,
            status,
            problems,
            summary,
            document: document.and_then(|document| serde_json::to_value(document).ok()),
            provenance: ProvenanceView {
                generated_by: derived.generated.clone(),
                derived_from: derived.derived_from.clone(),
                derivatives,
            },
            usage: derived.usage.clone(),
        }))
    }

    /// Per chain: the cursor and the assets by document status.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn status(&mut self, chains: &[u64]) -> Result<CatalogStatus, StoreError> {
        let mut out = Vec::new();
        for &chain in chains {
            let row = self.db.row(
                "SELECT COUNT(*), \
                   CAST(COALESCE(SUM(CASE WHEN EXISTS (SELECT 1 FROM documents d \
                     WHERE d.checksum = a.checksum AND d.valid = 1) THEN 1 ELSE 0 END), 0) \
                     AS BIGINT), \
                   CAST(COALESCE(SUM(CASE WHEN EXISTS (SELECT 1 FROM documents d \
                     WHERE d.checksum = a.checksum AND d.valid = 0) \
                     OR EXISTS (SELECT 1 FROM fetches f WHERE f.checksum = a.checksum \
                     AND f.url = a.url AND f.state = 'mismatch') THEN 1 ELSE 0 END), 0) \
                     AS BIGINT) \
                 FROM assets a WHERE a.chain_id = ?",
                &[chain.into()],
            )?;
            let row = row.ok_or_else(|| StoreError::Corrupt("no count".to_owned()))?;
            let (assets, valid, flagged) = (row[0].u64()?, row[1].u64()?, row[2].u64()?);
            out.push(ChainStatus {
                chain,
                indexed_block: self.cursor(chain)?.map(|cursor| cursor.number),
                assets,
                valid,
                flagged,
                pending: assets.saturating_sub(valid + flagged),
            });
        }
        Ok(CatalogStatus { chains: out })
    }

    /// The connection, for the search queries.
    pub(crate) fn db(&mut self) -> &mut dyn Connection {
        self.db.as_mut()
    }
}

fn service_name(service: ServiceKind) -> &'static str {
    match service {
        ServiceKind::Access => "access",
        ServiceKind::Compute => "compute",
    }
}

/// Columns of an event: the asset it belongs to, its kind, and its fields. `None` for template
/// events of agreements the catalog does not know (not on an indexed asset's templates).
type EventRow = (
    B256,
    &'static str,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Option<String>,
);

fn resolve(
    db: &mut dyn Connection,
    chain: u64,
    event: &Event,
) -> Result<Option<EventRow>, StoreError> {
    let mut agreement = |id: &B256| -> Result<Option<(B256, String)>, StoreError> {
        db.row(
            "SELECT did, service FROM agreements WHERE chain_id = ? AND id = ?",
            &[chain.into(), id.into()],
        )?
        .map(|row| Ok((row[0].b256()?, row[1].text()?)))
        .transpose()
    };
    Ok(Some(match event {
        Event::Registered {
            did,
            owner,
            checksum,
            url,
        } => (
            *did,
            "registered",
            Some(owner.to_vec()),
            Some(checksum.to_vec()),
            Some(url.clone()),
        ),
        Event::MetadataUpdated { did, checksum, url } => (
            *did,
            "metadata",
            None,
            Some(checksum.to_vec()),
            Some(url.clone()),
        ),
        Event::OwnerChanged { did, owner } => (*did, "owner", Some(owner.to_vec()), None, None),
        Event::ProviderAdded { did, provider } => {
            (*did, "provider_added", Some(provider.to_vec()), None, None)
        }
        Event::ProviderRemoved { did, provider } => (
            *did,
            "provider_removed",
            Some(provider.to_vec()),
            None,
            None,
        ),
        Event::Generated {
            did,
            activity,
            agent,
        } => (
            *did,
            "generated",
            Some(activity.to_vec()),
            Some(agent.to_vec()),
            None,
        ),
        Event::Derived {
            did,
            source,
            activity,
        } => (
            *did,
            "derived",
            Some(source.to_vec()),
            Some(activity.to_vec()),
            None,
        ),
        Event::Used { did, activity } => (*did, "used", Some(activity.to_vec()), None, None),
        Event::Agreement {
            id, did, service, ..
        } => (
            *did,
            "agreement",
            Some(id.to_vec()),
            None,
            Some(service_name(*service).to_owned()),
        ),
        Event::Fulfilled { condition } => {
            let Some(row) = db.row(
                "SELECT id, did, service FROM agreements \
                 WHERE chain_id = ? AND service_condition = ?",
                &[chain.into(), condition.into()],
            )?
            else {
                return Ok(None);
            };
            (
                row[1].b256()?,
                "served",
                Some(row[0].blob()?),
                None,
                Some(row[2].text()?),
            )
        }
        Event::Released { agreement: id } | Event::Refunded { agreement: id } => {
            let Some((did, service)) = agreement(id)? else {
                return Ok(None);
            };
            let kind = if matches!(event, Event::Released { .. }) {
                "released"
            } else {
                "refunded"
            };
            (did, kind, Some(id.to_vec()), None, Some(service))
        }
    }))
}

/// Folds the events of asset `did` of `chain` into its state; `None` when it has none.
fn derive(db: &mut dyn Connection, chain: u64, did: B256) -> Result<Option<Derived>, StoreError> {
    let rows = db.query(
        "SELECT kind, block_number, block_time, a, b, text FROM events \
         WHERE chain_id = ? AND did = ? ORDER BY block_number, log_index",
        &[chain.into(), did.into()],
    )?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut state = Derived::default();
    for row in rows {
        let kind = row[0].text()?;
        let (block, time) = (row[1].u64()?, row[2].u64()?);
        let (a, b) = (&row[3], &row[4]);
        let text = row[5].opt_text()?.unwrap_or_default();
        match kind.as_str() {
            "registered" => {
                state.owner = Some(a.address()?);
                state.checksum = b.b256()?;
                state.url = text;
                state.registered_block = block;
                state.registered_at = time;
                state.updated_block = block;
            }
            "metadata" => {
                state.checksum = b.b256()?;
                state.url = text;
                state.updated_block = block;
            }
            "owner" => {
                state.owner = Some(a.address()?);
                state.updated_block = block;
            }
            "provider_added" => {
                let provider = a.address()?;
                if !state.providers.contains(&provider) {
                    state.providers.push(provider);
                }
                state.updated_block = block;
            }
            "provider_removed" => {
                let provider = a.address()?;
                state.providers.retain(|known| *known != provider);
                state.updated_block = block;
            }
            "generated" => {
                state.generated = Some(Generation {
                    activity: a.b256()?,
                    agent: b.address()?,
                });
            }
            "derived" => {
                let source = a.b256()?;
                if !state.derived_from.contains(&source) {
                    state.derived_from.push(source);
                }
            }
            "used" => state.usage.uses += 1,
            "agreement" if text == "compute" => state.usage.compute_agreements += 1,
            "agreement" => state.usage.access_agreements += 1,
            "served" if text == "compute" => state.usage.compute_completed += 1,
            "served" => state.usage.access_completed += 1,
            "refunded" => state.usage.refunds += 1,
            _ => {}
        }
    }
    Ok(Some(state))
}

/// The document status of a derived asset, its problems, and its document when valid.
fn document_state(
    db: &mut dyn Connection,
    derived: &Derived,
) -> Result<(DocumentStatus, Vec<String>, Option<MetadataDocument>), StoreError> {
    if let Some(row) = db.row(
        "SELECT valid, body, problems FROM documents WHERE checksum = ?",
        &[derived.checksum.into()],
    )? {
        if row[0].u64()? == 1 {
            let document: MetadataDocument = serde_json::from_slice(&row[1].blob()?)
                .map_err(|error| StoreError::Corrupt(format!("a stored document: {error}")))?;
            return Ok((DocumentStatus::Valid, Vec::new(), Some(document)));
        }
        let problems: Vec<String> = row[2]
            .opt_text()?
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        return Ok((DocumentStatus::Invalid, problems, None));
    }
    let fetch = db.row(
        "SELECT state, problem FROM fetches WHERE checksum = ? AND url = ?",
        &[derived.checksum.into(), (&derived.url).into()],
    )?;
    let (status, problem) = match fetch {
        Some(row) => {
            let problem = row[1].opt_text()?;
            match row[0].text()?.as_str() {
                "mismatch" => (DocumentStatus::ChecksumMismatch, problem),
                "unreachable" => (DocumentStatus::Unreachable, problem),
                _ => (DocumentStatus::Pending, None),
            }
        }
        None => (DocumentStatus::Pending, None),
    };
    Ok((status, problem.into_iter().collect(), None))
}

fn summary(chain: u64, did: B256, derived: &Derived, document: &MetadataDocument) -> AssetSummary {
    AssetSummary {
        chain,
        did,
        kind: asset_type(document),
        name: document.name.clone(),
        description: document.description.clone(),
        author: document.author.clone(),
        license: document.license.clone(),
        tags: document.keywords.clone(),
        owner: derived.owner.unwrap_or_default(),
        providers: derived.providers.clone(),
        services: document
            .services
            .iter()
            .map(|service| ServiceSummary {
                kind: service_name(service.kind).to_owned(),
                token: service.token,
                price: service.total().to_string(),
            })
            .collect(),
        registered_block: derived.registered_block,
        registered_at: derived.registered_at,
        agreements: derived.usage.access_agreements + derived.usage.compute_agreements,
    }
}

/// Derives asset `did` again: its state row, and its search entry (present only while its
/// document is valid).
fn refresh(db: &mut dyn Connection, chain: u64, did: B256) -> Result<(), StoreError> {
    search::remove(db, chain, did)?;
    let derived = match derive(db, chain, did)? {
        Some(derived) if derived.owner.is_some() => derived,
        // Its registration was undone (a reorg), or only foreign events remain.
        _ => {
            db.execute(
                "DELETE FROM assets WHERE chain_id = ? AND did = ?",
                &[chain.into(), did.into()],
            )?;
            return Ok(());
        }
    };
    let owner = derived.owner.unwrap_or_default();
    let usage = &derived.usage;
    db.execute(
        "INSERT INTO assets (chain_id, did, owner, checksum, url, registered_block, \
         registered_at, updated_block) VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (chain_id, did) DO UPDATE SET owner = excluded.owner, \
         checksum = excluded.checksum, url = excluded.url, \
         registered_block = excluded.registered_block, registered_at = excluded.registered_at, \
         updated_block = excluded.updated_block",
        &[
            chain.into(),
            did.into(),
            owner.into(),
            derived.checksum.into(),
            (&derived.url).into(),
            derived.registered_block.into(),
            derived.registered_at.into(),
            derived.updated_block.into(),
        ],
    )?;
    let (status, _, document) = document_state(db, &derived)?;
    if let (DocumentStatus::Valid, Some(document)) = (status, document) {
        search::insert(
            db,
            &summary(chain, did, &derived, &document),
            usage.access_agreements + usage.compute_agreements,
            &document,
        )?;
    }
    Ok(())
}
