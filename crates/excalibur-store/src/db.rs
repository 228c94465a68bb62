//! The seam between the SQL store and its two databases: values, rows and a transaction
//! trait that SQLite (rusqlite) and PostgreSQL (postgres) both implement, so every query
//! of the store is written once. SQL is written with `?N` parameters; the PostgreSQL
//! backend rewrites them to `$N`.

use crate::StoreError;

/// A parameter or column value. Its `Debug` names the kind only: a driver that logs
/// parameters (tokio-postgres does at debug level) never prints stored data.
#[derive(Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    I64(i64),
    Text(String),
    Blob(Vec<u8>),
    Bool(bool),
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Value::Null => "NULL",
            Value::I64(_) => "<int>",
            Value::Text(_) => "<text>",
            Value::Blob(_) => "<blob>",
            Value::Bool(_) => "<bool>",
        })
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::I64(v)
    }
}
impl From<&i64> for Value {
    fn from(v: &i64) -> Self {
        Value::I64(*v)
    }
}
impl From<u16> for Value {
    fn from(v: u16) -> Self {
        Value::I64(i64::from(v))
    }
}
impl From<&u16> for Value {
    fn from(v: &u16) -> Self {
        Value::I64(i64::from(*v))
    }
}
impl From<&&str> for Value {
    fn from(v: &&str) -> Self {
        Value::Text((*v).to_owned())
    }
}
impl From<&&Vec<u8>> for Value {
    fn from(v: &&Vec<u8>) -> Self {
        Value::Blob((*v).clone())
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<&bool> for Value {
    fn from(v: &bool) -> Self {
        Value::Bool(*v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}
impl From<&&String> for Value {
    fn from(v: &&String) -> Self {
        Value::Text((*v).clone())
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Blob(v)
    }
}
impl From<&Vec<u8>> for Value {
    fn from(v: &Vec<u8>) -> Self {
        Value::Blob(v.clone())
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}
impl<T: Clone + Into<Value>> From<&Option<T>> for Value {
    fn from(v: &Option<T>) -> Self {
        v.clone().map_or(Value::Null, Into::into)
    }
}

/// `params![a, b]`: a slice of [`Value`]s.
macro_rules! params {
    () => { &[][..] };
    ($($x:expr),+ $(,)?) => { &[$($crate::db::Value::from(&$x)),+][..] };
}
pub(crate) use params;

/// A value read back from a column.
pub(crate) trait FromValue: Sized {
    fn from_value(v: &Value) -> Option<Self>;
}

impl FromValue for i64 {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::I64(i) => Some(*i),
            Value::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }
}
impl FromValue for bool {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Bool(b) => Some(*b),
            Value::I64(i) => Some(*i != 0),
            _ => None,
        }
    }
}
impl FromValue for String {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Text(s) => Some(s.clone()),
            _ => None,
        }
    }
}
impl FromValue for Vec<u8> {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Blob(b) => Some(b.clone()),
            _ => None,
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Null => Some(None),
            v => T::from_value(v).map(Some),
        }
    }
}

/// One result row.
#[derive(Debug)]
pub(crate) struct Row(pub(crate) Vec<Value>);

impl Row {
    /// Column `i` as `T`; a type mismatch is corrupt data.
    pub(crate) fn get<T: FromValue>(&self, i: usize) -> Result<T, StoreError> {
        self.0
            .get(i)
            .and_then(T::from_value)
            .ok_or(StoreError::Column(i))
    }

    /// Column `i` as text, borrowed.
    pub(crate) fn str(&self, i: usize) -> Result<&str, StoreError> {
        match self.0.get(i) {
            Some(Value::Text(s)) => Ok(s),
            _ => Err(StoreError::Column(i)),
        }
    }
}

/// Which SQL dialect a backend speaks (for the few queries that differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// A transaction (or a plain read on a connection).
pub(crate) trait Tx {
    fn dialect(&self) -> Dialect;
    /// Runs a statement; the number of rows changed.
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError>;
    /// Runs a query; all rows.
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError>;
    /// Runs several statements (migrations).
    fn batch(&mut self, sql: &str) -> Result<(), StoreError>;
    /// Commits.
    fn commit(self: Box<Self>) -> Result<(), StoreError>;
    /// A number that changes when another connection commits to the database (SQLite's
    /// `PRAGMA data_version`); `None` when the backend cannot tell (PostgreSQL).
    fn data_version(&mut self) -> Result<Option<i64>, StoreError> {
        Ok(None)
    }
    /// Starts recording, for this connection only, the keys of the rows its own
    /// statements change in `tables` (`(table, key column)`), in `temp.config_dirty`.
    /// False when the backend cannot (PostgreSQL): the caller reads every row instead.
    fn track_changes(&mut self, tables: &[(&str, &str)]) -> Result<bool, StoreError> {
        let _ = tables;
        Ok(false)
    }
}

impl dyn Tx + '_ {
    /// The first row, if any.
    pub(crate) fn query_opt<T>(
        &mut self,
        sql: &str,
        params: &[Value],
        f: impl FnOnce(&Row) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        self.query(sql, params)?.first().map(f).transpose()
    }

    /// Exactly the first row.
    pub(crate) fn query_row<T>(
        &mut self,
        sql: &str,
        params: &[Value],
        f: impl FnOnce(&Row) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.query_opt(sql, params, f)?.ok_or(StoreError::Column(0))
    }

    /// Every row, mapped.
    pub(crate) fn query_map<T>(
        &mut self,
        sql: &str,
        params: &[Value],
        f: impl FnMut(&Row) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        self.query(sql, params)?.iter().map(f).collect()
    }
}

/// What a transaction does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Reads only.
    Read,
    /// Changes configuration (other replicas must rebuild their snapshots).
    Write,
    /// Appends records (flows, audit events, deliveries): serialized like a write, but
    /// nobody needs to hear about it. Its commit survives the process's crash (kill -9);
    /// SQLite puts it on disk by the next WAL checkpoint (`synchronous=NORMAL`).
    Record,
    /// Appends records that are on disk when the commit returns: a power loss loses none
    /// (SQLite: `synchronous=FULL`, as for `Write`).
    RecordSynced,
}

/// A database connection that opens transactions.
pub(crate) trait Backend: Send {
    /// A transaction; `Write` and `Record` ones are serialized across every process
    /// sharing the database (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: a transaction-scoped
    /// advisory lock).
    fn begin(&mut self, mode: Mode) -> Result<Box<dyn Tx + '_>, StoreError>;
}

/// Named locks across every process sharing the database (PostgreSQL session advisory
/// locks, each held by its own connection). Blocking. A single-process backend has
/// none: `exclusive` then always succeeds.
pub(crate) trait ClusterLocks: Send + Sync {
    /// Takes the lock `name`: waiting for it (`wait`), or `None` at once when another
    /// process holds it.
    fn lock(&self, name: &str, wait: bool) -> Result<Option<crate::Exclusive>, StoreError>;
}

/// Where transactions get their connection: SQLite's one connection behind a mutex, or a
/// pool of PostgreSQL connections. Blocking: called on blocking threads only.
pub(crate) trait Connections: Send + Sync {
    /// Runs `f` with a connection (waiting for one); [`StoreError::Unavailable`] when none
    /// can be had.
    fn with_backend(
        &self,
        f: &mut dyn FnMut(&mut dyn Backend) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;
}

impl Connections for std::sync::Mutex<Box<dyn Backend>> {
    fn with_backend(
        &self,
        f: &mut dyn FnMut(&mut dyn Backend) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut conn = self.lock().map_err(|_| StoreError::Task)?;
        f(conn.as_mut())
    }
}
