//! The keeper's store: an SQLite database (WAL, schema migrations) holding what the watcher saw on
//! chain and the state of each of the provider's agreements.
//!
//! The watcher writes here and nothing else does: every event is kept with the block (number and
//! hash) it came from, and each agreement's state is derived from its events, so undoing the
//! blocks a reorg dropped is deleting their events and deriving the states again. A scanned range
//! is applied in one transaction together with the new cursor, so a crash leaves the store at the
//! end of the previous range, never half way.

mod actions;
mod jobs;
mod operator;

use std::path::Path;

pub use actions::{Action, ActionState, Attempt, SettlementCall};
use alloy::primitives::{Address, B256, U256};
pub use insitu_chainwatch::{Checkpoint, LogPosition};
pub use jobs::{Job, JobPhase, NewJob};
pub use operator::{AuditEntry, OperatorRequest, RequestKind};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use rusqlite_migration::{M, Migrations};
use serde::{Deserialize, Serialize};

/// How many scanned range ends are kept to find the common ancestor after a reorg.
pub const CHECKPOINTS_KEPT: u64 = 256;

/// The schema, one migration per version; never edit a released one, append.
const MIGRATIONS: &[M<'static>] = &[
    M::up(
        "CREATE TABLE checkpoints (
        number INTEGER PRIMARY KEY,
        hash BLOB NOT NULL
    );
    CREATE TABLE events (
        block_number INTEGER NOT NULL,
        log_index INTEGER NOT NULL,
        block_hash BLOB NOT NULL,
        tx_hash BLOB NOT NULL,
        agreement_id BLOB NOT NULL,
        kind TEXT NOT NULL,
        PRIMARY KEY (block_number, log_index)
    );
    CREATE INDEX events_by_agreement ON events (agreement_id);
    CREATE TABLE agreements (
        id BLOB PRIMARY KEY,
        did BLOB NOT NULL,
        consumer BLOB NOT NULL,
        template BLOB NOT NULL,
        service_contract BLOB NOT NULL,
        payment_condition BLOB NOT NULL,
        service_condition BLOB NOT NULL,
        terms TEXT NOT NULL,
        created_block INTEGER NOT NULL,
        state TEXT NOT NULL,
        state_block INTEGER NOT NULL
    );
    CREATE INDEX agreements_by_state ON agreements (state);",
    ),
    M::up(
        "CREATE TABLE actions (
        agreement_id BLOB PRIMARY KEY,
        state TEXT NOT NULL,
        call TEXT,
        nonce INTEGER,
        tx_hash BLOB,
        block INTEGER,
        outcome TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE INDEX actions_by_state ON actions (state);
    CREATE TABLE attempts (
        tx_hash BLOB PRIMARY KEY,
        agreement_id BLOB NOT NULL,
        nonce INTEGER NOT NULL,
        max_fee_per_gas TEXT NOT NULL,
        max_priority_fee_per_gas TEXT NOT NULL,
        raw BLOB NOT NULL,
        sent_at INTEGER NOT NULL
    );
    CREATE INDEX attempts_by_agreement ON attempts (agreement_id);",
    ),
    M::up(
        "CREATE TABLE request_nonces (
        consumer BLOB NOT NULL,
        nonce TEXT NOT NULL,
        deadline INTEGER NOT NULL,
        PRIMARY KEY (consumer, nonce)
    );
    CREATE INDEX request_nonces_by_deadline ON request_nonces (deadline);",
    ),
    M::up(
        "CREATE TABLE documents (
        checksum BLOB PRIMARY KEY,
        bytes BLOB NOT NULL,
        publisher BLOB NOT NULL,
        stored_at INTEGER NOT NULL
    );
    CREATE TABLE verified_files (
        path TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        modified INTEGER NOT NULL,
        sha256 TEXT NOT NULL
    );",
    ),
    // The executor re-reads only confirmed actions a reorg could still undo.
    M::up(
        "DROP INDEX actions_by_state;
    CREATE INDEX actions_by_state_block ON actions (state, block);",
    ),
    // The audit log, append-only, written by triggers in the same transaction as every change it
    // reports (so no code path can change an agreement's record without leaving a line), and the
    // operator's requests, which the watcher and the executor apply. (In a BEFORE INSERT trigger
    // an automatic `seq` reads as -1; an explicit one at or below the last would overwrite.)
    M::up(
        "CREATE TABLE audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        agreement_id BLOB,
        at INTEGER NOT NULL,
        actor TEXT NOT NULL,
        event TEXT NOT NULL,
        detail TEXT
    );
    CREATE INDEX audit_by_agreement ON audit (agreement_id, seq);
    CREATE TRIGGER audit_is_append_only_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_is_append_only_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_is_append_only_insert BEFORE INSERT ON audit
    WHEN NEW.seq <> -1 AND NEW.seq <= (SELECT COALESCE(MAX(seq), 0) FROM audit)
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_event_recorded AFTER INSERT ON events
    BEGIN
        INSERT INTO audit (agreement_id, at, actor, event, detail)
        VALUES (NEW.agreement_id, CAST(strftime('%s', 'now') AS INTEGER), 'watcher',
                'chain: ' || NEW.kind,
                'block ' || NEW.block_number || ', tx 0x' || lower(hex(NEW.tx_hash)));
    END;
    CREATE TRIGGER audit_event_undone AFTER DELETE ON events
    BEGIN
        INSERT INTO audit (agreement_id, at, actor, event, detail)
        VALUES (OLD.agreement_id, CAST(strftime('%s', 'now') AS INTEGER), 'watcher',
                'reorg: ' || OLD.kind || ' undone', 'block ' || OLD.block_number);
    END;
    CREATE TRIGGER audit_action_created AFTER INSERT ON actions
    BEGIN
        INSERT INTO audit (agreement_id, at, actor, event, detail)
        VALUES (NEW.agreement_id, NEW.created_at, 'keeper', 'settlement ' || NEW.state,
                NEW.outcome);
    END;
    CREATE TRIGGER audit_action_moved AFTER UPDATE OF state ON actions
    WHEN OLD.state <> NEW.state
    BEGIN
        INSERT INTO audit (agreement_id, at, actor, event, detail)
        VALUES (NEW.agreement_id, NEW.updated_at, 'executor',
                'settlement ' || OLD.state || ' -> ' || NEW.state, NEW.outcome);
    END;
    CREATE TRIGGER audit_attempt_signed AFTER INSERT ON attempts
    BEGIN
        INSERT INTO audit (agreement_id, at, actor, event, detail)
        VALUES (NEW.agreement_id, NEW.sent_at, 'executor', 'transaction signed',
                'nonce ' || NEW.nonce || ', tx 0x' || lower(hex(NEW.tx_hash)) ||
                ', max fee ' || NEW.max_fee_per_gas || ' wei, tip ' ||
                NEW.max_priority_fee_per_gas || ' wei');
    END;
    CREATE TABLE operator_requests (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        agreement_id BLOB,
        from_block INTEGER,
        reason TEXT NOT NULL,
        requested_at INTEGER NOT NULL,
        applied_at INTEGER,
        result TEXT
    );
    CREATE INDEX operator_requests_open ON operator_requests (applied_at, kind);",
    ),
    // Compute jobs, one per compute agreement, with their phases in the audit log.
    M::up(jobs::MIGRATION),
];

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The schema could not be brought up to date.
    #[error("database migration: {0}")]
    Migration(#[from] rusqlite_migration::Error),
    /// A stored value does not decode.
    #[error("corrupt value in the database: {0}")]
    Corrupt(String),
}

/// Where an agreement stands, as derived from its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgreementState {
    /// Created; the payment is not in escrow.
    Created,
    /// Nobody paid within the payment window: the payment condition was aborted.
    PaymentAborted,
    /// The payment is in escrow: the keeper may serve.
    Paid,
    /// The service condition is fulfilled; the payment is not released yet.
    Served,
    /// The service timed out and was aborted; the payment is not refunded yet.
    ServiceAborted,
    /// The payment went to the provider.
    Released,
    /// The payment went back to the consumer.
    Refunded,
}

impl AgreementState {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::PaymentAborted => "payment_aborted",
            Self::Paid => "paid",
            Self::Served => "served",
            Self::ServiceAborted => "service_aborted",
            Self::Released => "released",
            Self::Refunded => "refunded",
        }
    }

    /// The state named `text` (as stored).
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] for an unknown name.
    pub fn parse(text: &str) -> Result<Self, StoreError> {
        Ok(match text {
            "created" => Self::Created,
            "payment_aborted" => Self::PaymentAborted,
            "paid" => Self::Paid,
            "served" => Self::Served,
            "service_aborted" => Self::ServiceAborted,
            "released" => Self::Released,
            "refunded" => Self::Refunded,
            other => return Err(StoreError::Corrupt(format!("agreement state `{other}`"))),
        })
    }
}

/// What happened to an agreement in one log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Created on an offer of this provider.
    Created,
    /// Its payment condition was fulfilled (paid into escrow).
    Paid,
    /// Its payment condition was aborted (never paid).
    PaymentAborted,
    /// Its service condition was fulfilled.
    Served,
    /// Its service condition was aborted (timed out).
    ServiceAborted,
    /// Its payment was released.
    Released,
    /// Its payment was refunded.
    Refunded,
}

impl EventKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Paid => "paid",
            Self::PaymentAborted => "payment_aborted",
            Self::Served => "served",
            Self::ServiceAborted => "service_aborted",
            Self::Released => "released",
            Self::Refunded => "refunded",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        Ok(match text {
            "created" => Self::Created,
            "paid" => Self::Paid,
            "payment_aborted" => Self::PaymentAborted,
            "served" => Self::Served,
            "service_aborted" => Self::ServiceAborted,
            "released" => Self::Released,
            "refunded" => Self::Refunded,
            other => return Err(StoreError::Corrupt(format!("event kind `{other}`"))),
        })
    }

    /// The state an agreement reaches with this event.
    fn state(self) -> AgreementState {
        match self {
            Self::Created => AgreementState::Created,
            Self::Paid => AgreementState::Paid,
            Self::PaymentAborted => AgreementState::PaymentAborted,
            Self::Served => AgreementState::Served,
            Self::ServiceAborted => AgreementState::ServiceAborted,
            Self::Released => AgreementState::Released,
            Self::Refunded => AgreementState::Refunded,
        }
    }
}

/// The payment terms of an agreement, as the template published them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Terms {
    /// The provider whose offer was taken (this keeper).
    pub provider: Address,
    /// The payment token (zero address: ETH).
    pub token: Address,
    /// Who is paid on release.
    pub receivers: Vec<Address>,
    /// How much each is paid.
    pub amounts: Vec<U256>,
    /// The network fee.
    pub fee: U256,
    /// Seconds from creation the provider has to serve.
    pub service_timeout: u32,
    /// The metadata checksum the offer named.
    pub checksum: B256,
}

/// An agreement of this keeper's provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Agreement {
    /// The agreement's id.
    pub id: B256,
    /// The asset.
    pub did: B256,
    /// The consumer.
    pub consumer: Address,
    /// The template that created it.
    pub template: Address,
    /// The service condition contract (access or compute).
    pub service_contract: Address,
    /// The payment condition's id.
    pub payment_condition: B256,
    /// The service condition's id.
    pub service_condition: B256,
    /// The payment terms.
    pub terms: Terms,
    /// Block of its creation.
    pub created_block: u64,
    /// Its state.
    pub state: AgreementState,
    /// Block of the event that brought it to its state.
    pub state_block: u64,
}

/// One change the watcher saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// A new agreement of this provider.
    Created {
        /// Where.
        at: LogPosition,
        /// The agreement (its `state` is [`AgreementState::Created`]).
        agreement: Box<Agreement>,
    },
    /// A change to a known agreement (or one created in the same range).
    Changed {
        /// Where.
        at: LogPosition,
        /// The agreement.
        agreement_id: B256,
        /// What happened.
        kind: EventKind,
    },
}

/// The keeper's database.
#[derive(Debug)]
pub struct Store {
    connection: Connection,
}

impl Store {
    /// Opens (creating if needed) the database at `path`, in WAL mode, with the schema migrated to
    /// the latest version.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when it cannot be opened or migrated.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::setup(Connection::open(path)?)
    }

    /// An in-memory database, for tests.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when it cannot be set up.
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::setup(Connection::open_in_memory()?)
    }

    fn setup(mut connection: Connection) -> Result<Self, StoreError> {
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "FULL")?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        connection.busy_timeout(std::time::Duration::from_secs(5))?;
        // The API, the watcher and the executor each write through a connection of their own. A
        // write transaction takes the write lock when it begins: one that began as a reader could
        // not wait for another writer and would fail at once with "database is locked".
        connection.set_transaction_behavior(TransactionBehavior::Immediate);
        Migrations::from_slice(MIGRATIONS).to_latest(&mut connection)?;
        Ok(Self { connection })
    }

    /// The last scanned block, if any.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn cursor(&self) -> Result<Option<Checkpoint>, StoreError> {
        self.connection
            .query_row(
                "SELECT number, hash FROM checkpoints ORDER BY number DESC LIMIT 1",
                [],
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

    /// The kept checkpoints, newest first.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        let mut statement = self
            .connection
            .prepare("SELECT number, hash FROM checkpoints ORDER BY number DESC")?;
        let rows = statement.query_map([], |row| {
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

    /// Every block whose hash the store holds (scanned range ends and blocks of recorded events),
    /// newest first: after a reorg, the newest of them still canonical is where both chains meet,
    /// as far as anything recorded is concerned.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn anchors(&self) -> Result<Vec<Checkpoint>, StoreError> {
        let mut statement = self.connection.prepare(
            "SELECT number, hash FROM checkpoints \
             UNION SELECT DISTINCT block_number, block_hash FROM events \
             ORDER BY 1 DESC",
        )?;
        let rows = statement.query_map([], |row| {
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

    /// Records what a scan of the blocks up to `cursor` observed and moves the cursor there, in
    /// one transaction. Changes to agreements this provider does not have are ignored; an event
    /// already recorded (same block and log index) is not recorded twice.
    ///
    /// # Errors
    ///
    /// [`StoreError`]; nothing is recorded then.
    pub fn apply(&mut self, observed: &[Observed], cursor: Checkpoint) -> Result<(), StoreError> {
        let tx = self.connection.transaction()?;
        for item in observed {
            match item {
                Observed::Created { at, agreement } => {
                    tx.execute(
                        "INSERT OR IGNORE INTO agreements (id, did, consumer, template, \
                         service_contract, payment_condition, service_condition, terms, \
                         created_block, state, state_block) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?9)",
                        params![
                            agreement.id.as_slice(),
                            agreement.did.as_slice(),
                            agreement.consumer.as_slice(),
                            agreement.template.as_slice(),
                            agreement.service_contract.as_slice(),
                            agreement.payment_condition.as_slice(),
                            agreement.service_condition.as_slice(),
                            serde_json::to_string(&agreement.terms)
                                .map_err(|error| StoreError::Corrupt(error.to_string()))?,
                            at.block_number,
                            AgreementState::Created.as_str(),
                        ],
                    )?;
                    insert_event(&tx, at, agreement.id, EventKind::Created)?;
                }
                Observed::Changed {
                    at,
                    agreement_id,
                    kind,
                } => {
                    let known: bool = tx.query_row(
                        "SELECT EXISTS (SELECT 1 FROM agreements WHERE id = ?1)",
                        [agreement_id.as_slice()],
                        |row| row.get(0),
                    )?;
                    if known {
                        insert_event(&tx, at, *agreement_id, *kind)?;
                        derive_state(&tx, *agreement_id)?;
                    }
                }
            }
        }
        tx.execute(
            "INSERT OR REPLACE INTO checkpoints (number, hash) VALUES (?1, ?2)",
            params![cursor.number, cursor.hash.as_slice()],
        )?;
        tx.execute(
            "DELETE FROM checkpoints WHERE number < ?1",
            [cursor.number.saturating_sub(CHECKPOINTS_KEPT)],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Undoes every block after `ancestor` (the last block still canonical after a reorg): their
    /// events are deleted, agreements created in them forgotten, the others' states derived again,
    /// and the cursor moved back to `ancestor` (with its hash, when known; without, to the
    /// newest checkpoint before it). Returns the agreements that changed or vanished.
    ///
    /// # Errors
    ///
    /// [`StoreError`]; nothing is undone then.
    pub fn rollback(&mut self, ancestor: u64, hash: Option<B256>) -> Result<Vec<B256>, StoreError> {
        let tx = self.connection.transaction()?;
        let affected: Vec<B256> = {
            let mut statement =
                tx.prepare("SELECT DISTINCT agreement_id FROM events WHERE block_number > ?1")?;
            let rows = statement.query_map([ancestor], |row| row.get::<_, Vec<u8>>(0))?;
            rows.map(|row| b256(&row?)).collect::<Result<_, _>>()?
        };
        tx.execute("DELETE FROM events WHERE block_number > ?1", [ancestor])?;
        tx.execute(
            "DELETE FROM agreements WHERE created_block > ?1",
            [ancestor],
        )?;
        for id in &affected {
            derive_state(&tx, *id)?;
        }
        tx.execute("DELETE FROM checkpoints WHERE number > ?1", [ancestor])?;
        if let Some(hash) = hash {
            tx.execute(
                "INSERT OR REPLACE INTO checkpoints (number, hash) VALUES (?1, ?2)",
                params![ancestor, hash.as_slice()],
            )?;
        }
        tx.commit()?;
        Ok(affected)
    }

    /// Moves the cursor to `cursor` without recording anything (the first scan's starting point).
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn start_at(&mut self, cursor: Checkpoint) -> Result<(), StoreError> {
        self.apply(&[], cursor)
    }

    /// Marks `nonce` of `consumer` used until `deadline`; false when it already was. Nonces whose
    /// deadline passed before `now` are forgotten (their requests are refused as expired anyway).
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn use_request_nonce(
        &mut self,
        consumer: Address,
        nonce: U256,
        deadline: u64,
        now: u64,
    ) -> Result<bool, StoreError> {
        let tx = self.connection.transaction()?;
        tx.execute("DELETE FROM request_nonces WHERE deadline < ?1", [now])?;
        let inserted = tx.execute(
            "INSERT OR IGNORE INTO request_nonces (consumer, nonce, deadline) VALUES (?1, ?2, ?3)",
            params![consumer.as_slice(), nonce.to_string(), deadline],
        )?;
        tx.commit()?;
        Ok(inserted == 1)
    }

    /// Stores a metadata document under its checksum (idempotent).
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn put_document(
        &mut self,
        checksum: B256,
        bytes: &[u8],
        publisher: Address,
        now: u64,
    ) -> Result<(), StoreError> {
        self.connection.execute(
            "INSERT OR IGNORE INTO documents (checksum, bytes, publisher, stored_at) \
             VALUES (?1, ?2, ?3, ?4)",
            params![checksum.as_slice(), bytes, publisher.as_slice(), now],
        )?;
        Ok(())
    }

    /// The metadata document with `checksum`, if stored.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn document(&self, checksum: B256) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .connection
            .query_row(
                "SELECT bytes FROM documents WHERE checksum = ?1",
                [checksum.as_slice()],
                |row| row.get(0),
            )
            .optional()?)
    }

    /// The SHA-256 recorded for the file at `path` when it had `size` bytes and modification
    /// time `modified`, if it was hashed in that state.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn verified_sha256(
        &self,
        path: &str,
        size: u64,
        modified: u64,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .connection
            .query_row(
                "SELECT sha256 FROM verified_files WHERE path = ?1 AND size = ?2 AND modified = ?3",
                params![path, size, modified],
                |row| row.get(0),
            )
            .optional()?)
    }

    /// Records the SHA-256 of the file at `path` in the state (`size`, `modified`) it was hashed.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn record_sha256(
        &mut self,
        path: &str,
        size: u64,
        modified: u64,
        sha256: &str,
    ) -> Result<(), StoreError> {
        self.connection.execute(
            "INSERT OR REPLACE INTO verified_files (path, size, modified, sha256) \
             VALUES (?1, ?2, ?3, ?4)",
            params![path, size, modified, sha256],
        )?;
        Ok(())
    }

    /// Agreement `id`, if this provider has it.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn agreement(&self, id: B256) -> Result<Option<Agreement>, StoreError> {
        self.connection
            .query_row(
                &format!("{AGREEMENT_COLUMNS} WHERE id = ?1"),
                [id.as_slice()],
                raw_agreement,
            )
            .optional()?
            .map(decode_agreement)
            .transpose()
    }

    /// Every agreement, oldest first; only those in `state` when given.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn agreements(&self, state: Option<AgreementState>) -> Result<Vec<Agreement>, StoreError> {
        let mut statement = self.connection.prepare(&format!(
            "{AGREEMENT_COLUMNS} WHERE ?1 IS NULL OR state = ?1 ORDER BY created_block, id"
        ))?;
        let rows = statement.query_map([state.map(AgreementState::as_str)], raw_agreement)?;
        rows.map(|row| decode_agreement(row?)).collect()
    }

    /// The events recorded for agreement `id`, in chain order.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn events(&self, id: B256) -> Result<Vec<(LogPosition, EventKind)>, StoreError> {
        let mut statement = self.connection.prepare(
            "SELECT block_number, block_hash, log_index, tx_hash, kind FROM events \
             WHERE agreement_id = ?1 ORDER BY block_number, log_index",
        )?;
        let rows = statement.query_map([id.as_slice()], |row| {
            Ok((
                row.get::<_, u64>(0)?,
                row.get::<_, Vec<u8>>(1)?,
                row.get::<_, u64>(2)?,
                row.get::<_, Vec<u8>>(3)?,
                row.get::<_, String>(4)?,
            ))
        })?;
        rows.map(|row| {
            let (block_number, block_hash, log_index, tx_hash, kind) = row?;
            Ok((
                LogPosition {
                    block_number,
                    block_hash: b256(&block_hash)?,
                    log_index,
                    tx_hash: b256(&tx_hash)?,
                },
                EventKind::parse(&kind)?,
            ))
        })
        .collect()
    }

    /// Finds the agreement whose payment or service condition is `condition`, with which one it is.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn by_condition(&self, condition: B256) -> Result<Option<(B256, bool)>, StoreError> {
        self.connection
            .query_row(
                "SELECT id, payment_condition = ?1 FROM agreements \
                 WHERE payment_condition = ?1 OR service_condition = ?1",
                [condition.as_slice()],
                |row| Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, bool>(1)?)),
            )
            .optional()?
            .map(|(id, is_payment)| Ok((b256(&id)?, is_payment)))
            .transpose()
    }
}

const AGREEMENT_COLUMNS: &str = "SELECT id, did, consumer, template, service_contract, \
     payment_condition, service_condition, terms, created_block, state, state_block FROM agreements";

type RawAgreement = (
    Vec<u8>,
    Vec<u8>,
    Vec<u8>,
    Vec<u8>,
    Vec<u8>,
    Vec<u8>,
    Vec<u8>,
    String,
    u64,
    String,
    u64,
);

fn raw_agreement(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawAgreement> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
        row.get(9)?,
        row.get(10)?,
    ))
}

fn decode_agreement(raw: RawAgreement) -> Result<Agreement, StoreError> {
    let (
        id,
        did,
        consumer,
        template,
        service,
        payment_condition,
        service_condition,
        terms,
        created,
        state,
        state_block,
    ) = raw;
    Ok(Agreement {
        id: b256(&id)?,
        did: b256(&did)?,
        consumer: address(&consumer)?,
        template: address(&template)?,
        service_contract: address(&service)?,
        payment_condition: b256(&payment_condition)?,
        service_condition: b256(&service_condition)?,
        terms: serde_json::from_str(&terms)
            .map_err(|error| StoreError::Corrupt(error.to_string()))?,
        created_block: created,
        state: AgreementState::parse(&state)?,
        state_block,
    })
}

fn insert_event(
    tx: &Transaction<'_>,
    at: &LogPosition,
    agreement: B256,
    kind: EventKind,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT OR IGNORE INTO events (block_number, log_index, block_hash, tx_hash, \
         agreement_id, kind) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            at.block_number,
            at.log_index,
            at.block_hash.as_slice(),
            at.tx_hash.as_slice(),
            agreement.as_slice(),
            kind.as_str(),
        ],
    )?;
    Ok(())
}

/// Sets agreement `id`'s state from its remaining events: the furthest state any of them reached
/// (an agreement only moves forward, so that is its state).
fn derive_state(tx: &Transaction<'_>, id: B256) -> Result<(), StoreError> {
    let mut statement =
        tx.prepare("SELECT kind, block_number FROM events WHERE agreement_id = ?1")?;
    let rows = statement.query_map([id.as_slice()], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, u64>(1)?))
    })?;
    let mut state: Option<(AgreementState, u64)> = None;
    for row in rows {
        let (kind, block) = row?;
        let reached = EventKind::parse(&kind)?.state();
        if state.is_none_or(|(current, _)| reached > current) {
            state = Some((reached, block));
        }
    }
    if let Some((state, block)) = state {
        tx.execute(
            "UPDATE agreements SET state = ?2, state_block = ?3 WHERE id = ?1",
            params![id.as_slice(), state.as_str(), block],
        )?;
    }
    Ok(())
}

fn b256(bytes: &[u8]) -> Result<B256, StoreError> {
    B256::try_from(bytes)
        .map_err(|_| StoreError::Corrupt(format!("{} bytes for a hash", bytes.len())))
}

fn address(bytes: &[u8]) -> Result<Address, StoreError> {
    Address::try_from(bytes)
        .map_err(|_| StoreError::Corrupt(format!("{} bytes for an address", bytes.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_migrations_apply_in_order_from_an_empty_database() {
        Migrations::from_slice(MIGRATIONS).validate().unwrap();
    }

    #[test]
    fn a_store_migrated_by_a_newer_keeper_is_refused_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keeper.db");
        {
            let mut connection = Connection::open(&path).unwrap();
            let mut newer = MIGRATIONS.to_vec();
            newer.push(M::up("CREATE TABLE from_the_future (x INTEGER);"));
            Migrations::from_slice(&newer)
                .to_latest(&mut connection)
                .unwrap();
        }
        assert!(matches!(Store::open(&path), Err(StoreError::Migration(_))));
    }

    #[test]
    fn a_database_of_an_earlier_schema_is_brought_up_to_date() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keeper.db");
        {
            let mut connection = Connection::open(&path).unwrap();
            Migrations::from_slice(&MIGRATIONS[..MIGRATIONS.len() - 1])
                .to_latest(&mut connection)
                .unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert!(store.confirmed_since(0).unwrap().is_empty());
    }
}
