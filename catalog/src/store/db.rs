//! The two databases the store runs on, behind one small interface: SQLite (a file, the
//! default) and PostgreSQL (a server, for catalogs that outgrow one machine). The store writes its
//! SQL once, with `?` placeholders; the few places where the two differ (full-text search, the
//! schema) ask for the [`Dialect`].

use std::sync::mpsc;

use alloy::primitives::{Address, B256};
use rusqlite::types::{ToSqlOutput, ValueRef};

use super::StoreError;

/// Which database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite, with FTS5.
    Sqlite,
    /// PostgreSQL, with `tsvector`.
    Postgres,
}

/// A parameter or a column value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// NULL.
    Null,
    /// An integer.
    Int(i64),
    /// A float.
    Real(f64),
    /// Text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

impl From<u64> for Value {
    fn from(value: u64) -> Self {
        // Block numbers, times and counts: far below i64::MAX.
        Self::Int(i64::try_from(value).unwrap_or(i64::MAX))
    }
}

impl From<i64> for Value {
    fn from(value: i64) -> Self {
        Self::Int(value)
    }
}

impl From<u32> for Value {
    fn from(value: u32) -> Self {
        Self::Int(i64::from(value))
    }
}

impl From<&str> for Value {
    fn from(value: &str) -> Self {
        Self::Text(value.to_owned())
    }
}

impl From<String> for Value {
    fn from(value: String) -> Self {
        Self::Text(value)
    }
}

impl From<&String> for Value {
    fn from(value: &String) -> Self {
        Self::Text(value.clone())
    }
}

impl From<Vec<u8>> for Value {
    fn from(value: Vec<u8>) -> Self {
        Self::Blob(value)
    }
}

impl From<&[u8]> for Value {
    fn from(value: &[u8]) -> Self {
        Self::Blob(value.to_vec())
    }
}

impl From<B256> for Value {
    fn from(value: B256) -> Self {
        Self::Blob(value.to_vec())
    }
}

impl From<&B256> for Value {
    fn from(value: &B256) -> Self {
        Self::Blob(value.to_vec())
    }
}

impl From<Address> for Value {
    fn from(value: Address) -> Self {
        Self::Blob(value.to_vec())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(value: Option<T>) -> Self {
        value.map_or(Self::Null, Into::into)
    }
}

fn corrupt(what: &str, value: &Value) -> StoreError {
    StoreError::Corrupt(format!("expected {what}, found {value:?}"))
}

impl Value {
    /// As an unsigned integer.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] for anything else.
    pub fn u64(&self) -> Result<u64, StoreError> {
        match self {
            Self::Int(value) => u64::try_from(*value).map_err(|_| corrupt("a count", self)),
            _ => Err(corrupt("an integer", self)),
        }
    }

    /// As text.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] for anything else.
    pub fn text(&self) -> Result<String, StoreError> {
        match self {
            Self::Text(text) => Ok(text.clone()),
            _ => Err(corrupt("text", self)),
        }
    }

    /// As text, NULL as `None`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] for anything else.
    pub fn opt_text(&self) -> Result<Option<String>, StoreError> {
        match self {
            Self::Null => Ok(None),
            _ => self.text().map(Some),
        }
    }

    /// As bytes, NULL as empty.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] for anything else.
    pub fn blob(&self) -> Result<Vec<u8>, StoreError> {
        match self {
            Self::Blob(bytes) => Ok(bytes.clone()),
            Self::Null => Ok(Vec::new()),
            _ => Err(corrupt("bytes", self)),
        }
    }

    /// As a 32-byte hash.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] for anything else.
    pub fn b256(&self) -> Result<B256, StoreError> {
        B256::try_from(self.blob()?.as_slice()).map_err(|_| corrupt("32 bytes", self))
    }

    /// As an address.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] for anything else.
    pub fn address(&self) -> Result<Address, StoreError> {
        Address::try_from(self.blob()?.as_slice()).map_err(|_| corrupt("20 bytes", self))
    }
}

/// A row of a result.
pub type Row = Vec<Value>;

/// One connection to the database.
pub trait Connection: Send + std::fmt::Debug {
    /// Which database.
    fn dialect(&self) -> Dialect;
    /// Runs one statement (`?` placeholders); returns the rows it changed.
    ///
    /// # Errors
    ///
    /// The database's.
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError>;
    /// Runs one query (`?` placeholders); returns its rows.
    ///
    /// # Errors
    ///
    /// The database's.
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError>;
    /// Runs statements without parameters (a schema, `BEGIN`, `COMMIT`).
    ///
    /// # Errors
    ///
    /// The database's.
    fn batch(&mut self, sql: &str) -> Result<(), StoreError>;
}

/// Shorthands over [`Connection`].
pub trait ConnectionExt: Connection {
    /// The first row, if any.
    ///
    /// # Errors
    ///
    /// The database's.
    fn row(&mut self, sql: &str, params: &[Value]) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// The first column of the first row (a count, say).
    ///
    /// # Errors
    ///
    /// The database's, or [`StoreError::Corrupt`] when there is no row.
    fn value(&mut self, sql: &str, params: &[Value]) -> Result<Value, StoreError> {
        self.row(sql, params)?
            .and_then(|row| row.into_iter().next())
            .ok_or_else(|| StoreError::Corrupt(format!("no row for {sql}")))
    }
}

impl<C: Connection + ?Sized> ConnectionExt for C {}

/// SQLite through rusqlite.
#[derive(Debug)]
pub struct Sqlite {
    connection: rusqlite::Connection,
}

impl Sqlite {
    /// Wraps an open connection.
    pub fn new(connection: rusqlite::Connection) -> Self {
        Self { connection }
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Self::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Self::Int(value) => ToSqlOutput::Borrowed(ValueRef::Integer(*value)),
            Self::Real(value) => ToSqlOutput::Borrowed(ValueRef::Real(*value)),
            Self::Text(value) => ToSqlOutput::Borrowed(ValueRef::Text(value.as_bytes())),
            Self::Blob(value) => ToSqlOutput::Borrowed(ValueRef::Blob(value)),
        })
    }
}

impl Connection for Sqlite {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        let mut statement = self.connection.prepare_cached(sql)?;
        Ok(statement.execute(rusqlite::params_from_iter(params.iter()))? as u64)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError> {
        let mut statement = self.connection.prepare_cached(sql)?;
        let columns = statement.column_count();
        let mut rows = statement.query(rusqlite::params_from_iter(params.iter()))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let mut values = Vec::with_capacity(columns);
            for index in 0..columns {
                values.push(match row.get_ref(index)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(value) => Value::Int(value),
                    ValueRef::Real(value) => Value::Real(value),
                    ValueRef::Text(value) => {
                        Value::Text(String::from_utf8_lossy(value).into_owned())
                    }
                    ValueRef::Blob(value) => Value::Blob(value.to_vec()),
                });
            }
            out.push(values);
        }
        Ok(out)
    }

    fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        Ok(self.connection.execute_batch(sql)?)
    }
}

/// What the PostgreSQL worker is asked.
enum Job {
    Execute(String, Vec<Value>, mpsc::Sender<Result<u64, StoreError>>),
    Query(
        String,
        Vec<Value>,
        mpsc::Sender<Result<Vec<Row>, StoreError>>,
    ),
    Batch(String, mpsc::Sender<Result<(), StoreError>>),
}

/// PostgreSQL through the `postgres` client, which runs on a thread of its own (it blocks on a
/// runtime of its own, which must not be entered from the async tasks that use the store).
#[derive(Debug)]
pub struct Postgres {
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

fn worker_gone() -> StoreError {
    StoreError::Postgres("the database connection's thread stopped".to_owned())
}

impl Postgres {
    /// Connects to `url` (`postgres://user@host:port/database`).
    ///
    /// # Errors
    ///
    /// [`StoreError::Postgres`] when the server cannot be reached or refuses.
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        let (ready_send, ready) = mpsc::channel();
        let (jobs, incoming) = mpsc::channel::<Job>();
        let url = url.to_owned();
        std::thread::Builder::new()
            .name("catalog-postgres".to_owned())
            .spawn(move || {
                let mut worker = match Worker::new(url) {
                    Ok(worker) => {
                        let _ = ready_send.send(Ok(()));
                        worker
                    }
                    Err(error) => {
                        let _ = ready_send.send(Err(error));
                        return;
                    }
                };
                for job in incoming {
                    worker.run(job);
                }
            })
            .map_err(|error| StoreError::Postgres(error.to_string()))?;
        ready.recv().map_err(|_| worker_gone())??;
        Ok(Self { jobs })
    }

    fn ask<T>(
        &self,
        job: impl FnOnce(mpsc::Sender<Result<T, StoreError>>) -> Job,
    ) -> Result<T, StoreError> {
        let (reply, answer) = mpsc::channel();
        self.jobs.send(job(reply)).map_err(|_| worker_gone())?;
        answer.recv().map_err(|_| worker_gone())?
    }
}

impl Connection for Postgres {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        self.ask(|reply| Job::Execute(numbered(sql), params.to_vec(), reply))
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError> {
        self.ask(|reply| Job::Query(numbered(sql), params.to_vec(), reply))
    }

    fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        self.ask(|reply| Job::Batch(sql.to_owned(), reply))
    }
}

/// The thread that owns the PostgreSQL connection. A connection lost between transactions is
/// made again at the next statement; one lost inside a transaction fails every statement up to
/// the transaction's end, whose `COMMIT` then fails too, so no part of it is ever applied on a new
/// connection outside a transaction.
struct Worker {
    url: String,
    client: Option<postgres::Client>,
    prepared: Prepared,
    in_transaction: bool,
    lost_in_transaction: bool,
}

fn lost() -> StoreError {
    StoreError::Postgres("the connection was lost during the transaction".to_owned())
}

impl Worker {
    fn new(url: String) -> Result<Self, StoreError> {
        let mut worker = Self {
            url,
            client: None,
            prepared: Prepared::default(),
            in_transaction: false,
            lost_in_transaction: false,
        };
        worker.client()?;
        Ok(worker)
    }

    /// The connection, made again if it was lost (never inside a transaction).
    fn client(&mut self) -> Result<&mut postgres::Client, StoreError> {
        if self
            .client
            .as_ref()
            .is_some_and(postgres::Client::is_closed)
        {
            self.client = None;
            if self.in_transaction {
                self.lost_in_transaction = true;
            }
        }
        if self.lost_in_transaction {
            return Err(lost());
        }
        if self.client.is_none() {
            // Statements are prepared once and kept, but planned for their parameters each
            // time: a generic plan ignores how selective a search's words and filters are.
            let mut client =
                postgres::Client::connect(&self.url, postgres::NoTls).map_err(pg_error)?;
            client
                .batch_execute("SET plan_cache_mode = force_custom_plan")
                .map_err(pg_error)?;
            self.prepared = Prepared::default();
            self.client = Some(client);
        }
        self.client
            .as_mut()
            .ok_or_else(|| StoreError::Postgres("no connection".to_owned()))
    }

    fn run(&mut self, job: Job) {
        match job {
            Job::Execute(sql, params, reply) => {
                let _ = reply.send(self.statement(&sql, |client, statement| {
                    pg_execute(client, statement, &params)
                }));
            }
            Job::Query(sql, params, reply) => {
                let _ = reply.send(self.statement(&sql, |client, statement| {
                    pg_query(client, statement, &params)
                }));
            }
            Job::Batch(sql, reply) => {
                let _ = reply.send(self.batch(&sql));
            }
        }
    }

    fn statement<T>(
        &mut self,
        sql: &str,
        run: impl FnOnce(&mut postgres::Client, &postgres::Statement) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.client()?;
        let Self {
            client, prepared, ..
        } = self;
        let client = client
            .as_mut()
            .ok_or_else(|| StoreError::Postgres("no connection".to_owned()))?;
        let statement = prepared.get(client, sql)?;
        run(client, &statement)
    }

    fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        let word = sql
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        match word.as_str() {
            "BEGIN" => {
                self.lost_in_transaction = false;
                self.client()?.batch_execute(sql).map_err(pg_error)?;
                self.in_transaction = true;
                Ok(())
            }
            "COMMIT" | "ROLLBACK" => {
                let lost_before = self.lost_in_transaction;
                self.in_transaction = false;
                self.lost_in_transaction = false;
                if lost_before {
                    return if word == "COMMIT" {
                        Err(lost())
                    } else {
                        Ok(())
                    };
                }
                match self.client.as_mut() {
                    Some(client) if !client.is_closed() => {
                        client.batch_execute(sql).map_err(pg_error)
                    }
                    // Lost since the last statement: nothing of the transaction was applied.
                    _ if word == "COMMIT" => Err(lost()),
                    _ => Ok(()),
                }
            }
            _ => self.client()?.batch_execute(sql).map_err(pg_error),
        }
    }
}

/// Statements prepared on the connection, by SQL (most recent 256): the store runs the same few
/// statements again and again, and planning them each time would cost more than running them.
#[derive(Default)]
struct Prepared {
    statements: std::collections::HashMap<String, (postgres::Statement, u64)>,
    uses: u64,
}

impl Prepared {
    const KEPT: usize = 256;

    fn get(
        &mut self,
        client: &mut postgres::Client,
        sql: &str,
    ) -> Result<postgres::Statement, StoreError> {
        self.uses += 1;
        if let Some((statement, used)) = self.statements.get_mut(sql) {
            *used = self.uses;
            return Ok(statement.clone());
        }
        if self.statements.len() >= Self::KEPT
            && let Some(oldest) = self
                .statements
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(sql, _)| sql.clone())
        {
            self.statements.remove(&oldest);
        }
        let statement = client.prepare(sql).map_err(pg_error)?;
        self.statements
            .insert(sql.to_owned(), (statement.clone(), self.uses));
        Ok(statement)
    }
}

/// `?` placeholders as PostgreSQL's `$1`, `$2`... (the store's SQL has no `?` in literals).
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut next = 0;
    for character in sql.chars() {
        if character == '?' {
            next += 1;
            out.push('$');
            out.push_str(&next.to_string());
        } else {
            out.push(character);
        }
    }
    out
}

/// A NULL of whatever type the server expects.
#[derive(Debug)]
struct AnyNull;

impl postgres::types::ToSql for AnyNull {
    fn to_sql(
        &self,
        _: &postgres::types::Type,
        _: &mut postgres::types::private::BytesMut,
    ) -> Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        Ok(postgres::types::IsNull::Yes)
    }

    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

fn pg_params(params: &[Value]) -> Vec<Box<dyn postgres::types::ToSql + Sync>> {
    params
        .iter()
        .map(|value| -> Box<dyn postgres::types::ToSql + Sync> {
            match value {
                Value::Null => Box::new(AnyNull),
                Value::Int(value) => Box::new(*value),
                Value::Real(value) => Box::new(*value),
                Value::Text(value) => Box::new(value.clone()),
                Value::Blob(value) => Box::new(value.clone()),
            }
        })
        .collect()
}

fn pg_error(error: postgres::Error) -> StoreError {
    StoreError::Postgres(match error.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => error.to_string(),
    })
}

fn pg_execute(
    client: &mut postgres::Client,
    sql: &postgres::Statement,
    params: &[Value],
) -> Result<u64, StoreError> {
    let boxed = pg_params(params);
    let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
        boxed.iter().map(|value| value.as_ref()).collect();
    client.execute(sql, &refs).map_err(pg_error)
}

fn pg_query(
    client: &mut postgres::Client,
    sql: &postgres::Statement,
    params: &[Value],
) -> Result<Vec<Row>, StoreError> {
    use postgres::types::Type;
    let boxed = pg_params(params);
    let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
        boxed.iter().map(|value| value.as_ref()).collect();
    let rows = client.query(sql, &refs).map_err(pg_error)?;
    rows.iter()
        .map(|row| {
            (0..row.len())
                .map(|index| {
                    let kind = row.columns()[index].type_().clone();
                    let value = if kind == Type::INT8 {
                        row.try_get::<_, Option<i64>>(index)
                            .map(|v| v.map(Value::Int))
                    } else if kind == Type::INT4 {
                        row.try_get::<_, Option<i32>>(index)
                            .map(|v| v.map(|v| Value::Int(i64::from(v))))
                    } else if kind == Type::INT2 {
                        row.try_get::<_, Option<i16>>(index)
                            .map(|v| v.map(|v| Value::Int(i64::from(v))))
                    } else if kind == Type::FLOAT8 {
                        row.try_get::<_, Option<f64>>(index)
                            .map(|v| v.map(Value::Real))
                    } else if kind == Type::FLOAT4 {
                        row.try_get::<_, Option<f32>>(index)
                            .map(|v| v.map(|v| Value::Real(f64::from(v))))
                    } else if kind == Type::BYTEA {
                        row.try_get::<_, Option<Vec<u8>>>(index)
                            .map(|v| v.map(Value::Blob))
                    } else if kind == Type::BOOL {
                        row.try_get::<_, Option<bool>>(index)
                            .map(|v| v.map(|v| Value::Int(i64::from(v))))
                    } else {
                        row.try_get::<_, Option<String>>(index)
                            .map(|v| v.map(Value::Text))
                    };
                    value.map(|v| v.unwrap_or(Value::Null)).map_err(pg_error)
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_order() {
        assert_eq!(
            numbered("SELECT a FROM t WHERE b = ? AND c > ? LIMIT ?"),
            "SELECT a FROM t WHERE b = $1 AND c > $2 LIMIT $3"
        );
    }
}
