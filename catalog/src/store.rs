//! The catalog's database (SQLite): the chain events it follows, the assets' state derived from
//! them, the metadata documents fetched, and the search index.
//!
//! Data flows one way. The indexer records events ([`Store::record`]); each asset's state is then
//! derived again from all of its events ([`Store::refresh`] inside the same transaction), so a
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
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use rusqlite_migration::{M, Migrations};

pub mod search;

/// Checkpoints kept per chain (older ones are pruned): the deepest reorg undone in place.
pub const CHECKPOINTS_KEPT: u64 = 256;

const MIGRATIONS: &[M<'static>] = &[M::up(include_str!("store/schema-1.sql"))];

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The schema could not be migrated.
    #[error("database migration failed: {0}")]
    Migration(#[from] rusqlite_migration::Error),
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
    connection: Connection,
}

/// Fixed-width decimal of an amount: text order is numeric order (in SQLite and PostgreSQL).
pub fn amount_key(amount: U256) -> String {
    format!("{amount:0>78}")
}

/// An address as the search tables hold it: lower-case `0x` hex.
pub(crate) fn address_text(address: Address) -> String {
    format!("{address:#x}")
}

fn b256(bytes: &[u8]) -> Result<B256, StoreError> {
    B256::try_from(bytes)
        .map_err(|_| StoreError::Corrupt(format!("{} bytes for a hash", bytes.len())))
}

fn address(bytes: &[u8]) -> Result<Address, StoreError> {
    Address::try_from(bytes)
        .map_err(|_| StoreError::Corrupt(format!("{} bytes for an address", bytes.len())))
}

/// The type of an asset by its document.
pub fn asset_type(document: &MetadataDocument) -> AssetType {
    if document.provenance.is_some() {
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

impl Store {
    /// Opens (creating if needed) the database at `path`, in WAL mode, migrated to the latest
    /// schema.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::setup(Connection::open(path)?)
    }

    /// An in-memory database (tests, benchmarks).
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::setup(Connection::open_in_memory()?)
    }

    fn setup(mut connection: Connection) -> Result<Self, StoreError> {
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        connection.pragma_update(None, "temp_store", "MEMORY")?;
        connection.busy_timeout(std::time::Duration::from_secs(5))?;
        connection.set_transaction_behavior(TransactionBehavior::Immediate);
        Migrations::from_slice(MIGRATIONS).to_latest(&mut connection)?;
        Ok(Self { connection })
    }

    /// The last block of `chain` indexed.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn cursor(&self, chain: u64) -> Result<Option<Checkpoint>, StoreError> {
        self.connection
            .query_row(
                "SELECT number, hash FROM checkpoints WHERE chain_id = ?1 \
                 ORDER BY number DESC LIMIT 1",
                [chain],
                |row| Ok((row.get::<_, u64>(0)?, row.get::<_, Vec<u8>>(1)?)),
            )
            .optional()?
            .map(|(number, hash)| {
                Ok(Checkpoint {
                    number,
                    hash: b256(&hash)?,
                })
            })
            .transpose()
    }

    /// Every block of `chain` whose hash the store holds, newest first.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn anchors(&self, chain: u64) -> Result<Vec<Checkpoint>, StoreError> {
        let mut statement = self.connection.prepare(
            "SELECT number, hash FROM checkpoints WHERE chain_id = ?1 \
             UNION SELECT DISTINCT block_number, block_hash FROM events WHERE chain_id = ?1 \
             ORDER BY 1 DESC",
        )?;
        let rows = statement.query_map([chain], |row| {
            Ok((row.get::<_, u64>(0)?, row.get::<_, Vec<u8>>(1)?))
        })?;
        rows.map(|row| {
            let (number, hash) = row?;
            Ok(Checkpoint {
                number,
                hash: b256(&hash)?,
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
        let tx = self.connection.transaction()?;
        let mut touched = BTreeSet::new();
        let mut recorded = 0;
        for located in events {
            let Some((did, kind, a, b, text)) = resolve(&tx, chain, &located.event)? else {
                continue;
            };
            let at = &located.at;
            let inserted = tx.execute(
                "INSERT OR IGNORE INTO events (chain_id, block_number, log_index, block_hash, \
                 tx_hash, block_time, kind, did, a, b, text) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    chain,
                    at.block_number,
                    at.log_index,
                    at.block_hash.as_slice(),
                    at.tx_hash.as_slice(),
                    located.time,
                    kind,
                    did.as_slice(),
                    a,
                    b,
                    text
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
                    tx.execute(
                        "INSERT OR IGNORE INTO agreements (chain_id, id, did, service, \
                         service_condition, block_number) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![
                            chain,
                            id.as_slice(),
                            did.as_slice(),
                            service_name(*service),
                            service_condition.as_slice(),
                            at.block_number
                        ],
                    )?;
                }
                Event::Registered { checksum, url, .. }
                | Event::MetadataUpdated { checksum, url, .. } => {
                    tx.execute(
                        "INSERT OR IGNORE INTO fetches (checksum, url, state, attempts, next_at) \
                         SELECT ?1, ?2, 'pending', 0, 0 \
                         WHERE NOT EXISTS (SELECT 1 FROM documents WHERE checksum = ?1)",
                        params![checksum.as_slice(), url],
                    )?;
                }
                _ => {}
            }
            touched.insert(did);
        }
        for did in touched {
            refresh(&tx, chain, did)?;
        }
        tx.execute(
            "INSERT OR REPLACE INTO checkpoints (chain_id, number, hash) VALUES (?1, ?2, ?3)",
            params![chain, cursor.number, cursor.hash.as_slice()],
        )?;
        tx.execute(
            "DELETE FROM checkpoints WHERE chain_id = ?1 AND number < ?2",
            params![chain, cursor.number.saturating_sub(CHECKPOINTS_KEPT)],
        )?;
        tx.commit()?;
        Ok(recorded)
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
        let tx = self.connection.transaction()?;
        let affected: Vec<B256> = {
            let mut statement = tx.prepare(
                "SELECT DISTINCT did FROM events WHERE chain_id = ?1 AND block_number > ?2",
            )?;
            let rows =
                statement.query_map(params![chain, ancestor], |row| row.get::<_, Vec<u8>>(0))?;
            rows.map(|row| b256(&row?)).collect::<Result<_, _>>()?
        };
        tx.execute(
            "DELETE FROM events WHERE chain_id = ?1 AND block_number > ?2",
            params![chain, ancestor],
        )?;
        tx.execute(
            "DELETE FROM agreements WHERE chain_id = ?1 AND block_number > ?2",
            params![chain, ancestor],
        )?;
        match hash {
            Some(hash) => {
                tx.execute(
                    "DELETE FROM checkpoints WHERE chain_id = ?1 AND number > ?2",
                    params![chain, ancestor],
                )?;
                tx.execute(
                    "INSERT OR REPLACE INTO checkpoints (chain_id, number, hash) \
                     VALUES (?1, ?2, ?3)",
                    params![chain, ancestor, hash.as_slice()],
                )?;
            }
            None => {
                tx.execute("DELETE FROM checkpoints WHERE chain_id = ?1", [chain])?;
            }
        }
        for did in &affected {
            refresh(&tx, chain, *did)?;
        }
        tx.commit()?;
        Ok(affected)
    }

    /// Documents due for a fetch at `now` (Unix seconds), oldest first.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn due_fetches(&self, now: u64, limit: u32) -> Result<Vec<Fetch>, StoreError> {
        let mut statement = self.connection.prepare(
            "SELECT checksum, url, attempts FROM fetches \
             WHERE state IN ('pending', 'unreachable', 'mismatch') AND next_at <= ?1 \
               AND NOT EXISTS (SELECT 1 FROM documents d WHERE d.checksum = fetches.checksum) \
               AND EXISTS (SELECT 1 FROM assets a \
                           WHERE a.checksum = fetches.checksum AND a.url = fetches.url) \
             ORDER BY next_at, url LIMIT ?2",
        )?;
        let rows = statement.query_map(params![now, limit], |row| {
            Ok((
                row.get::<_, Vec<u8>>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, u32>(2)?,
            ))
        })?;
        rows.map(|row| {
            let (checksum, url, attempts) = row?;
            Ok(Fetch {
                checksum: b256(&checksum)?,
                url,
                attempts,
            })
        })
        .collect()
    }

    /// The earliest time a fetch is due, if any is queued.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn next_fetch_at(&self) -> Result<Option<u64>, StoreError> {
        Ok(self.connection.query_row(
            "SELECT MIN(next_at) FROM fetches \
             WHERE state IN ('pending', 'unreachable', 'mismatch') \
               AND NOT EXISTS (SELECT 1 FROM documents d WHERE d.checksum = fetches.checksum)",
            [],
            |row| row.get::<_, Option<u64>>(0),
        )?)
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
        let tx = self.connection.transaction()?;
        let (state, problem, next_at) = match outcome {
            Fetched::Valid(body) => {
                tx.execute(
                    "INSERT OR REPLACE INTO documents (checksum, valid, body, problems, \
                     fetched_at) VALUES (?1, 1, ?2, NULL, ?3)",
                    params![fetch.checksum.as_slice(), body, now],
                )?;
                ("done", None, now)
            }
            Fetched::Invalid { body, problems } => {
                tx.execute(
                    "INSERT OR REPLACE INTO documents (checksum, valid, body, problems, \
                     fetched_at) VALUES (?1, 0, ?2, ?3, ?4)",
                    params![
                        fetch.checksum.as_slice(),
                        body,
                        serde_json::to_string(problems).unwrap_or_default(),
                        now
                    ],
                )?;
                ("done", None, now)
            }
            Fetched::Mismatch { served } => (
                "mismatch",
                Some(format!(
                    "the document served hashes to {served}, not to the checksum registered on \
                     chain"
                )),
                retry_at,
            ),
            Fetched::Failed { problem } => ("unreachable", Some(problem.clone()), retry_at),
        };
        tx.execute(
            "UPDATE fetches SET state = ?3, problem = ?4, next_at = ?5, attempts = attempts + 1 \
             WHERE checksum = ?1 AND url = ?2",
            params![
                fetch.checksum.as_slice(),
                fetch.url,
                state,
                problem,
                next_at
            ],
        )?;
        let dids: Vec<(u64, Vec<u8>)> = {
            let mut statement =
                tx.prepare("SELECT chain_id, did FROM assets WHERE checksum = ?1")?;
            let rows = statement.query_map([fetch.checksum.as_slice()], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })?;
            rows.collect::<Result<_, _>>()?
        };
        for (chain, did) in dids {
            refresh(&tx, chain, b256(&did)?)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Everything known of asset `did` on `chain`.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn asset(&self, chain: u64, did: B256) -> Result<Option<AssetView>, StoreError> {
        let Some(derived) = derive(&self.connection, chain, did)? else {
            return Ok(None);
        };
        let Some(owner) = derived.owner else {
            return Ok(None);
        };
        let (status, problems, document) = document_state(&self.connection, &derived)?;
        let summary = document
            .as_ref()
            .map(|document| summary(chain, did, &derived, document));
        let derivatives = {
            let mut statement = self.connection.prepare(
                "SELECT DISTINCT did FROM events WHERE chain_id = ?1 AND kind = 'derived' \
                 AND a = ?2 ORDER BY block_number, log_index",
            )?;
            let rows = statement.query_map(params![chain, did.as_slice()], |row| {
                row.get::<_, Vec<u8>>(0)
            })?;
            rows.map(|row| b256(&row?)).collect::<Result<Vec<_>, _>>()?
        };
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
    pub fn status(&self, chains: &[u64]) -> Result<CatalogStatus, StoreError> {
        let mut out = Vec::new();
        for &chain in chains {
            let (assets, valid, flagged) = self.connection.query_row(
                "SELECT COUNT(*), \
                   COALESCE(SUM(EXISTS (SELECT 1 FROM documents d \
                     WHERE d.checksum = a.checksum AND d.valid = 1)), 0), \
                   COALESCE(SUM(EXISTS (SELECT 1 FROM documents d \
                     WHERE d.checksum = a.checksum AND d.valid = 0) \
                     OR EXISTS (SELECT 1 FROM fetches f WHERE f.checksum = a.checksum \
                     AND f.url = a.url AND f.state = 'mismatch')), 0) \
                 FROM assets a WHERE a.chain_id = ?1",
                [chain],
                |row| {
                    Ok((
                        row.get::<_, u64>(0)?,
                        row.get::<_, u64>(1)?,
                        row.get::<_, u64>(2)?,
                    ))
                },
            )?;
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
    pub(crate) fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Derives asset `did` of `chain` again from its events (and refreshes its search entry), in
    /// a transaction of its own; for tools that write events directly (the benchmark).
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn refresh(&mut self, chain: u64, did: B256) -> Result<(), StoreError> {
        let tx = self.connection.transaction()?;
        refresh(&tx, chain, did)?;
        tx.commit()?;
        Ok(())
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
type Row = (
    B256,
    &'static str,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Option<String>,
);

fn resolve(tx: &Transaction<'_>, chain: u64, event: &Event) -> Result<Option<Row>, StoreError> {
    let agreement = |id: &B256| -> Result<Option<(B256, String)>, StoreError> {
        tx.query_row(
            "SELECT did, service FROM agreements WHERE chain_id = ?1 AND id = ?2",
            params![chain, id.as_slice()],
            |row| Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, String>(1)?)),
        )
        .optional()?
        .map(|(did, service)| Ok((b256(&did)?, service)))
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
            let found = tx
                .query_row(
                    "SELECT id, did, service FROM agreements \
                     WHERE chain_id = ?1 AND service_condition = ?2",
                    params![chain, condition.as_slice()],
                    |row| {
                        Ok((
                            row.get::<_, Vec<u8>>(0)?,
                            row.get::<_, Vec<u8>>(1)?,
                            row.get::<_, String>(2)?,
                        ))
                    },
                )
                .optional()?;
            let Some((id, did, service)) = found else {
                return Ok(None);
            };
            (b256(&did)?, "served", Some(id), None, Some(service))
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
fn derive(connection: &Connection, chain: u64, did: B256) -> Result<Option<Derived>, StoreError> {
    let mut statement = connection.prepare_cached(
        "SELECT kind, block_number, block_time, a, b, text FROM events \
         WHERE chain_id = ?1 AND did = ?2 ORDER BY block_number, log_index",
    )?;
    let rows = statement.query_map(params![chain, did.as_slice()], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, u64>(1)?,
            row.get::<_, u64>(2)?,
            row.get::<_, Option<Vec<u8>>>(3)?,
            row.get::<_, Option<Vec<u8>>>(4)?,
            row.get::<_, Option<String>>(5)?,
        ))
    })?;
    let mut state = Derived::default();
    let mut any = false;
    for row in rows {
        let (kind, block, time, a, b, text) = row?;
        any = true;
        let a = a.unwrap_or_default();
        let b = b.unwrap_or_default();
        let text = text.unwrap_or_default();
        match kind.as_str() {
            "registered" => {
                state.owner = Some(address(&a)?);
                state.checksum = b256(&b)?;
                state.url = text;
                state.registered_block = block;
                state.registered_at = time;
                state.updated_block = block;
            }
            "metadata" => {
                state.checksum = b256(&b)?;
                state.url = text;
                state.updated_block = block;
            }
            "owner" => {
                state.owner = Some(address(&a)?);
                state.updated_block = block;
            }
            "provider_added" => {
                let provider = address(&a)?;
                if !state.providers.contains(&provider) {
                    state.providers.push(provider);
                }
                state.updated_block = block;
            }
            "provider_removed" => {
                let provider = address(&a)?;
                state.providers.retain(|known| *known != provider);
                state.updated_block = block;
            }
            "generated" => {
                state.generated = Some(Generation {
                    activity: b256(&a)?,
                    agent: address(&b)?,
                });
            }
            "derived" => {
                let source = b256(&a)?;
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
    Ok(any.then_some(state))
}

/// The document status of a derived asset, its problems, and its document when valid.
fn document_state(
    connection: &Connection,
    derived: &Derived,
) -> Result<(DocumentStatus, Vec<String>, Option<MetadataDocument>), StoreError> {
    let stored = connection
        .query_row(
            "SELECT valid, body, problems FROM documents WHERE checksum = ?1",
            [derived.checksum.as_slice()],
            |row| {
                Ok((
                    row.get::<_, bool>(0)?,
                    row.get::<_, Vec<u8>>(1)?,
                    row.get::<_, Option<String>>(2)?,
                ))
            },
        )
        .optional()?;
    if let Some((valid, body, problems)) = stored {
        if valid {
            let document: MetadataDocument = serde_json::from_slice(&body)
                .map_err(|error| StoreError::Corrupt(format!("a stored document: {error}")))?;
            return Ok((DocumentStatus::Valid, Vec::new(), Some(document)));
        }
        let problems: Vec<String> = problems
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        return Ok((DocumentStatus::Invalid, problems, None));
    }
    let fetch = connection
        .query_row(
            "SELECT state, problem FROM fetches WHERE checksum = ?1 AND url = ?2",
            params![derived.checksum.as_slice(), derived.url],
            |row| Ok((row.get::<_, String>(0)?, row.get::<_, Option<String>>(1)?)),
        )
        .optional()?;
    let (status, problem) = match fetch {
        Some((state, problem)) if state == "mismatch" => {
            (DocumentStatus::ChecksumMismatch, problem)
        }
        Some((state, problem)) if state == "unreachable" => (DocumentStatus::Unreachable, problem),
        _ => (DocumentStatus::Pending, None),
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
fn refresh(tx: &Transaction<'_>, chain: u64, did: B256) -> Result<(), StoreError> {
    search::remove(tx, chain, did)?;
    let derived = match derive(tx, chain, did)? {
        Some(derived) if derived.owner.is_some() => derived,
        // Its registration was undone (a reorg), or only foreign events remain.
        _ => {
            tx.execute(
                "DELETE FROM assets WHERE chain_id = ?1 AND did = ?2",
                params![chain, did.as_slice()],
            )?;
            return Ok(());
        }
    };
    let owner = derived.owner.unwrap_or_default();
    let usage = &derived.usage;
    tx.execute(
        "INSERT OR REPLACE INTO assets (chain_id, did, owner, checksum, url, registered_block, \
         registered_at, updated_block) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            chain,
            did.as_slice(),
            owner.as_slice(),
            derived.checksum.as_slice(),
            derived.url,
            derived.registered_block,
            derived.registered_at,
            derived.updated_block,
        ],
    )?;
    let (status, _, document) = document_state(tx, &derived)?;
    if let (DocumentStatus::Valid, Some(document)) = (status, document) {
        search::insert(
            tx,
            &summary(chain, did, &derived, &document),
            usage.access_agreements + usage.compute_agreements,
            &document,
        )?;
    }
    Ok(())
}
