//! The SQLite backend: one connection in WAL mode behind the store's mutex; writes are
//! `BEGIN IMMEDIATE` transactions. Configuration writes are synced before their commit
//! returns (`synchronous=FULL`); records ([`Mode::Record`]) are committed to the OS
//! (`synchronous=NORMAL`: a process crash loses none, a power loss the last checkpoint's
//! worth) unless they ask for more ([`Mode::RecordSynced`]). Flows in flight are not
//! rows here but lines of the journal beside the database (`crate::journal`).

use std::path::Path;

use rusqlite::Connection;
use rusqlite::types::{ToSqlOutput, ValueRef};

use crate::StoreError;
use crate::db::{Backend, Connections, Dialect, Mode, Row, Tx, Value};
use crate::seal::MasterKey;
use crate::sql::SqlStore;

/// The store on a SQLite file (the embedded default).
pub type SqliteStore = SqlStore;

/// Versioned migrations, applied in order at open.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/sqlite/0001_init.sql")),
    (2, include_str!("migrations/sqlite/0002_policies.sql")),
    (
        3,
        include_str!("migrations/sqlite/0003_webhooks_expiry.sql"),
    ),
    (4, include_str!("migrations/sqlite/0004_workloads.sql")),
    (
        5,
        include_str!("migrations/sqlite/0005_crypto_mappings.sql"),
    ),
    (6, include_str!("migrations/sqlite/0006_ssh.sql")),
    (7, include_str!("migrations/sqlite/0007_plaintext.sql")),
    (
        8,
        include_str!("migrations/sqlite/0008_principal_revocations.sql"),
    ),
    (9, include_str!("migrations/sqlite/0009_config_mac.sql")),
    (10, include_str!("migrations/sqlite/0010_flow_intents.sql")),
    (
        11,
        include_str!("migrations/sqlite/0011_audit_checkpoints.sql"),
    ),
    (
        12,
        include_str!("migrations/sqlite/0012_config_row_macs.sql"),
    ),
    (13, include_str!("migrations/sqlite/0013_reissue.sql")),
    (
        14,
        include_str!("migrations/sqlite/0014_introspection_role.sql"),
    ),
    (
        15,
        include_str!("migrations/sqlite/0015_config_row_macs_table.sql"),
    ),
    (16, include_str!("migrations/sqlite/0016_flow_seq.sql")),
    (
        17,
        include_str!("migrations/sqlite/0017_live_credential_names.sql"),
    ),
    (
        18,
        include_str!("migrations/sqlite/0018_flow_intents_table.sql"),
    ),
];

impl SqlStore {
    /// Opens (creating if needed) the SQLite database at `path`, applies migrations,
    /// loads the data keys with `master`, and reads back the flow journal
    /// (`<path>-intents`) of the last run. Blocking: call it from a blocking context.
    ///
    /// Errors when the master key does not open this database's data keys.
    pub fn open(path: &Path, master: &MasterKey) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // 32 MiB of page cache (the default 2 MiB re-reads the flow and audit indexes from
        // the OS on every batch), and the statement cache sized for the record inserts'
        // few shapes.
        conn.pragma_update(None, "cache_size", -32_768)?;
        conn.set_prepared_statement_cache_capacity(128);
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // The WAL is copied into the database by a thread of its own, not by whichever
        // commit crosses the threshold (a write answered after a checkpoint's copy and
        // fsync was the tail of rotation latency); without that thread, as SQLite does.
        let checkpointer = Checkpointer::start(path);
        if checkpointer.is_some() {
            conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        }
        let conn: Box<dyn Backend> = Box::new(SqliteBackend { conn, synced: true });
        let store = SqlStore::new(
            Box::new(SqliteConnection {
                conn: std::sync::Mutex::new(conn),
                _checkpointer: checkpointer,
            }),
            MIGRATIONS,
            master,
            None,
        )?;
        // One process: its flows in flight are journaled beside the database.
        store.adopt_journal(&crate::journal::path_for(path))?;
        Ok(store)
    }
}

/// The store's one connection, and the checkpoint thread that lives as long as it.
struct SqliteConnection {
    conn: std::sync::Mutex<Box<dyn Backend>>,
    _checkpointer: Option<Checkpointer>,
}

impl Connections for SqliteConnection {
    fn with_backend(
        &self,
        f: &mut dyn FnMut(&mut dyn Backend) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.conn.with_backend(f)
    }
}

/// Checkpoints the WAL in the background (`PASSIVE`: it never waits for, or blocks,
/// the writer) every [`Checkpointer::EVERY`], on a connection of its own, and syncs the
/// flow journal as often; stops when dropped.
struct Checkpointer {
    _stop: std::sync::mpsc::Sender<()>,
}

impl Checkpointer {
    const EVERY: std::time::Duration = std::time::Duration::from_millis(500);

    /// `None` when the thread or its connection cannot be had (SQLite's automatic
    /// checkpoints stay on).
    fn start(path: &Path) -> Option<Self> {
        let journal = crate::journal::path_for(path);
        let conn = Connection::open(path).ok()?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).ok()?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".to_owned())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(Self::EVERY)
                {
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::warn!(error = %e, "WAL checkpoint failed");
                    }
                    // The journal of flows in flight reaches the disk as often as the WAL
                    // does (its appends are only committed to the OS).
                    if let Ok(f) = std::fs::File::open(&journal)
                        && let Err(e) = f.sync_data()
                    {
                        tracing::warn!(error = %e, "syncing the flow journal failed");
                    }
                }
            })
            .ok()?;
        Some(Self { _stop: stop })
    }
}

struct SqliteBackend {
    conn: Connection,
    /// Whether the connection runs with `synchronous=FULL` (else `NORMAL`).
    synced: bool,
}

impl Backend for SqliteBackend {
    fn begin(&mut self, mode: Mode) -> Result<Box<dyn Tx + '_>, StoreError> {
        // The level applies to the commits that follow; a synced commit also syncs the
        // frames of the unsynced ones before it, so nothing commits out of order.
        let synced = match mode {
            Mode::Read => self.synced,
            Mode::Record => false,
            Mode::Write | Mode::RecordSynced => true,
        };
        if synced != self.synced {
            let level = if synced {
                "PRAGMA synchronous = FULL"
            } else {
                "PRAGMA synchronous = NORMAL"
            };
            self.conn.prepare_cached(level)?.execute([])?;
            self.synced = synced;
        }
        if !self.conn.is_autocommit() {
            // A rollback that failed left a transaction open: end it before the next.
            rollback(&self.conn)?;
        }
        let begin = if mode == Mode::Read {
            "BEGIN DEFERRED"
        } else {
            "BEGIN IMMEDIATE"
        };
        self.conn.prepare_cached(begin)?.execute([])?;
        Ok(Box::new(SqliteTx(&self.conn)))
    }
}

/// An open transaction on the connection: committed by [`Tx::commit`], rolled back when
/// dropped before (or after a failed commit). `BEGIN`, `COMMIT` and `ROLLBACK` are
/// cached prepared statements: a recording batch, one per write-ahead commit, does not
/// parse them anew each time as `execute_batch` would.
struct SqliteTx<'a>(&'a Connection);

impl Drop for SqliteTx<'_> {
    fn drop(&mut self) {
        if !self.0.is_autocommit()
            && let Err(e) = rollback(self.0)
        {
            tracing::warn!(error = %e, "rolling back a transaction failed");
        }
    }
}

fn rollback(conn: &Connection) -> rusqlite::Result<usize> {
    conn.prepare_cached("ROLLBACK")?.execute([])
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::I64(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            Value::Bool(b) => ToSqlOutput::Borrowed(ValueRef::Integer(i64::from(*b))),
        })
    }
}

fn value(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::I64(i),
        // No column is REAL; keep the bits rather than fail.
        ValueRef::Real(f) => Value::Text(f.to_string()),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

impl Tx for SqliteTx<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        let n = self
            .0
            .prepare_cached(sql)?
            .execute(rusqlite::params_from_iter(params))?;
        Ok(n as u64)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError> {
        let mut stmt = self.0.prepare_cached(sql)?;
        let n = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let mut cols = Vec::with_capacity(n);
            for i in 0..n {
                cols.push(value(r.get_ref(i)?));
            }
            out.push(Row(cols));
        }
        Ok(out)
    }

    fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        Ok(self.0.execute_batch(sql)?)
    }

    fn commit(self: Box<Self>) -> Result<(), StoreError> {
        self.0.prepare_cached("COMMIT")?.execute([])?;
        Ok(())
    }

    fn track_changes(&mut self, tables: &[(&str, &str)]) -> Result<bool, StoreError> {
        // No key on the log: inside a trigger an upsert's conflict clause would override
        // an `OR IGNORE`; duplicates are folded when it is read. TEMP objects belong to
        // this connection: another process's edits (or the
        // sqlite3 shell's) are not recorded here; they change `data_version` instead.
        let mut sql = String::from(
            "CREATE TEMP TABLE IF NOT EXISTS config_dirty (tbl TEXT NOT NULL, row_key TEXT NOT NULL);\n",
        );
        for (table, key) in tables {
            for (event, rows) in [
                ("INSERT", vec!["NEW"]),
                ("UPDATE", vec!["OLD", "NEW"]),
                ("DELETE", vec!["OLD"]),
            ] {
                let inserts: String = rows
                    .iter()
                    .map(|r| {
                        format!(
                            "INSERT INTO config_dirty VALUES ('{table}', CAST({r}.{key} AS TEXT)); "
                        )
                    })
                    .collect();
                sql.push_str(&format!(
                    "CREATE TEMP TRIGGER IF NOT EXISTS config_dirty_{table}_{event} AFTER {event} ON main.{table} BEGIN {inserts}END;\n"
                ));
            }
        }
        self.0.execute_batch(&sql)?;
        Ok(true)
    }

    fn data_version(&mut self) -> Result<Option<i64>, StoreError> {
        Ok(Some(
            self.0.query_row("PRAGMA data_version", [], |r| r.get(0))?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
    use crate::testing::flow;

    /// Configuration commits are on disk when they return; records are committed to the
    /// OS (a crash of the process loses none) unless they ask to be synced too.
    #[test]
    fn configuration_commits_are_synced_and_records_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("excalibur.db")).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.pragma_update(None, "synchronous", "FULL").unwrap();
        let mut backend = SqliteBackend { conn, synced: true };
        // PRAGMA synchronous: 1 is NORMAL, 2 is FULL.
        for (mode, level) in [
            (Mode::Record, 1),
            (Mode::Read, 1),
            (Mode::Write, 2),
            (Mode::Read, 2),
            (Mode::Record, 1),
            (Mode::RecordSynced, 2),
        ] {
            drop(backend.begin(mode).unwrap());
            let now: i64 = backend
                .conn
                .query_row("PRAGMA synchronous", [], |r| r.get(0))
                .unwrap();
            assert_eq!(now, level, "{mode:?}");
        }
    }

    /// A transaction dropped before its commit, or whose commit failed, leaves nothing
    /// behind, and the connection takes the next one.
    #[test]
    fn a_transaction_not_committed_is_rolled_back() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("excalibur.db")).unwrap();
        conn.execute_batch(
            "PRAGMA foreign_keys = ON;
             CREATE TABLE p (id INTEGER PRIMARY KEY);
             CREATE TABLE c (pid INTEGER REFERENCES p (id) DEFERRABLE INITIALLY DEFERRED);",
        )
        .unwrap();
        let mut backend = SqliteBackend { conn, synced: true };
        {
            let mut tx = backend.begin(Mode::Write).unwrap();
            tx.execute("INSERT INTO p VALUES (?1)", &[Value::I64(1)])
                .unwrap();
        }
        // The deferred key is checked at COMMIT, which fails with the transaction open.
        let mut tx = backend.begin(Mode::Record).unwrap();
        tx.execute("INSERT INTO c VALUES (?1)", &[Value::I64(7)])
            .unwrap();
        assert!(tx.commit().is_err());
        let mut tx = backend.begin(Mode::Write).unwrap();
        tx.execute("INSERT INTO p VALUES (?1)", &[Value::I64(2)])
            .unwrap();
        tx.commit().unwrap();
        let mut tx = backend.begin(Mode::Read).unwrap();
        let p = tx.query("SELECT id FROM p", &[]).unwrap();
        let c = tx.query("SELECT pid FROM c", &[]).unwrap();
        assert_eq!(p.len(), 1, "only the committed row is there");
        assert_eq!(p[0].get::<i64>(0).unwrap(), 2);
        assert!(c.is_empty(), "the failed commit left nothing");
    }

    /// Flows journaled in flight when the process stopped are in flight after a restart,
    /// and completed as `interrupted`; one whose completion was committed is not.
    #[tokio::test]
    async fn flows_journaled_in_flight_are_completed_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("excalibur.db");
        let master = std::sync::Arc::new(MasterKey::generate());
        let open = |path: std::path::PathBuf, master: std::sync::Arc<MasterKey>| {
            tokio::task::spawn_blocking(move || SqlStore::open(&path, &master).unwrap())
        };
        {
            let store = open(path.clone(), master.clone()).await.unwrap();
            store
                .record_with_intents_here(&crate::RecordBatch {
                    intents: vec![flow("fl_a"), flow("fl_b")],
                    gateway: "gw_old".into(),
                    ..Default::default()
                })
                .unwrap();
            assert_eq!(store.flow_gateways_in_flight().await.unwrap(), ["gw_old"]);
            let mut done = flow("fl_a");
            done.status = 200;
            store.record(vec![done], Vec::new()).await.unwrap();
        }
        let store = open(path.clone(), master.clone()).await.unwrap();
        assert_eq!(store.flow_gateways_in_flight().await.unwrap(), ["gw_old"]);
        assert_eq!(store.flows_interrupted("gw_old".into()).await.unwrap(), 1);
        assert!(store.flow_gateways_in_flight().await.unwrap().is_empty());
        let flows = store
            .flow_list(crate::FlowQuery {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        let got: Vec<(&str, u16, Option<&str>)> = flows
            .iter()
            .map(|f| (f.id.as_str(), f.status, f.reason.as_deref()))
            .collect();
        assert_eq!(got, [("fl_b", 0, Some("interrupted")), ("fl_a", 200, None)]);
        // The journal of this run starts empty: a third run finds nothing in flight.
        drop(store);
        let store = open(path, master).await.unwrap();
        assert!(store.flow_gateways_in_flight().await.unwrap().is_empty());
    }

    /// A flow left in flight by a gateway running the schema before migration 18 (a
    /// marked row in `flows`) is still completed as `interrupted` after the upgrade.
    #[tokio::test]
    async fn a_flow_in_flight_before_the_intents_table_is_completed_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("excalibur.db");
        let flow = flow("fl_old");
        {
            let mut old = SqliteBackend {
                conn: Connection::open(&path).unwrap(),
                synced: true,
            };
            let before = MIGRATIONS.iter().position(|(v, _)| *v == 18).unwrap();
            crate::sql::migrate(&mut old, &MIGRATIONS[..before]).unwrap();
            old.conn
                .execute(
                    "INSERT INTO flows (id, ts_ms, body, principal, host, decision, in_flight)
                     VALUES (?1, 0, ?2, 'svc:ci', 'api.example', 'allow', 'gw_old')",
                    rusqlite::params![flow.id, serde_json::to_string(&flow).unwrap()],
                )
                .unwrap();
        }
        let store = tokio::task::spawn_blocking(move || {
            SqlStore::open(&path, &MasterKey::generate()).unwrap()
        })
        .await
        .unwrap();
        assert_eq!(store.flow_gateways_in_flight().await.unwrap(), ["gw_old"]);
        assert!(
            store
                .flow_list(crate::FlowQuery {
                    limit: 10,
                    ..Default::default()
                })
                .await
                .unwrap()
                .is_empty(),
            "a flow in flight is not listed"
        );
        assert_eq!(store.flows_interrupted("gw_old".into()).await.unwrap(), 1);
        let flows = store
            .flow_list(crate::FlowQuery {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(flows.len(), 1);
        assert_eq!(
            (flows[0].id.as_str(), flows[0].reason.as_deref()),
            ("fl_old", Some("interrupted"))
        );
        assert!(store.flow_gateways_in_flight().await.unwrap().is_empty());
    }
}
