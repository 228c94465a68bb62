//! The PostgreSQL backend, for several `excalibur serve` replicas sharing one database.
//! Each store holds a pool of connections (used from blocking threads). Write
//! transactions take one transaction-scoped advisory lock, so the audit chain stays
//! linear whatever the number of writers, and configuration writes `NOTIFY` the other
//! replicas ([`listen`]) when they commit.

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use postgres::fallible_iterator::FallibleIterator as _;
use postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use postgres::{Client, NoTls, Transaction};

use crate::StoreError;
use crate::db::{Backend, Dialect, Mode, Row, Tx, Value};
use crate::seal::MasterKey;
use crate::sql::SqlStore;

/// The channel configuration writes notify on commit.
pub const CHANGES_CHANNEL: &str = "excalibur_changes";

/// The advisory lock every write transaction takes (one writer at a time, cluster-wide).
const WRITE_LOCK: i64 = 0x6578_6361_6c69_6275;

/// Versioned migrations, applied in order at connect (same versions as SQLite's).
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/postgres/0001_init.sql")),
    (2, include_str!("migrations/postgres/0002_policies.sql")),
    (
        3,
        include_str!("migrations/postgres/0003_webhooks_expiry.sql"),
    ),
    (4, include_str!("migrations/postgres/0004_workloads.sql")),
    (
        5,
        include_str!("migrations/postgres/0005_crypto_mappings.sql"),
    ),
    (6, include_str!("migrations/postgres/0006_ssh.sql")),
    (7, include_str!("migrations/postgres/0007_plaintext.sql")),
    (
        8,
        include_str!("migrations/postgres/0008_principal_revocations.sql"),
    ),
    (9, include_str!("migrations/postgres/0009_config_mac.sql")),
    (
        10,
        include_str!("migrations/postgres/0010_flow_intents.sql"),
    ),
    (
        11,
        include_str!("migrations/postgres/0011_audit_checkpoints.sql"),
    ),
    (
        12,
        include_str!("migrations/postgres/0012_config_row_macs.sql"),
    ),
    (13, include_str!("migrations/postgres/0013_reissue.sql")),
    (
        14,
        include_str!("migrations/postgres/0014_introspection_role.sql"),
    ),
    (
        15,
        include_str!("migrations/postgres/0015_config_row_macs_table.sql"),
    ),
    (16, include_str!("migrations/postgres/0016_flow_seq.sql")),
    (
        17,
        include_str!("migrations/postgres/0017_live_credential_names.sql"),
    ),
    (
        18,
        include_str!("migrations/postgres/0018_flow_intents_table.sql"),
    ),
];

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        // A connection that closed or broke mid-statement: the database is away (503),
        // not an error in what was asked (500).
        // (A TLS verification failure is an I/O error too, of kind `InvalidData`: it stays
        // a configuration error.)
        let gone = std::error::Error::source(&e)
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .is_some_and(|io| {
                use std::io::ErrorKind::*;
                matches!(
                    io.kind(),
                    ConnectionRefused
                        | ConnectionReset
                        | ConnectionAborted
                        | BrokenPipe
                        | UnexpectedEof
                        | TimedOut
                        | NotConnected
                )
            });
        if e.is_closed() || gone {
            return StoreError::Unavailable;
        }
        StoreError::Db(Box::new(e))
    }
}

/// How to reach the database: the URL and, for TLS, the roots that verify the server.
#[derive(Clone)]
pub struct PgConnect {
    url: String,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
}

impl std::fmt::Debug for PgConnect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password.
        f.debug_struct("PgConnect")
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl PgConnect {
    /// `url` as `postgres://user:pass@host:5432/db[?sslmode=require]`; `ca_pem`: the CA
    /// certificates that verify the server (TLS 1.2+, rustls, host name checked). With a
    /// CA, connections use TLS (`sslmode=require` refuses a server without it; the default
    /// `prefer` would fall back to plain text); `sslmode=require` without a CA is refused.
    pub fn new(url: &str, ca_pem: Option<&[u8]>) -> Result<Self, StoreError> {
        let config: postgres::Config = url
            .parse()
            .map_err(|_| StoreError::Invalid("the PostgreSQL URL does not parse".into()))?;
        let require = config.get_ssl_mode() == postgres::config::SslMode::Require;
        let tls = match ca_pem {
            Some(pem) => Some(rustls_connector(pem)?),
            None if require => {
                return Err(StoreError::Invalid(
                    "sslmode=require needs the CA that signed the server's certificate (EXCALIBUR_DATABASE_CA_FILE)".into(),
                ));
            }
            None => None,
        };
        Ok(Self {
            url: url.to_owned(),
            tls,
        })
    }

    fn connect(&self) -> Result<Client, postgres::Error> {
        match &self.tls {
            Some(tls) => Client::connect(&self.url, tls.clone()),
            None => Client::connect(&self.url, NoTls),
        }
    }
}

fn rustls_connector(pem: &[u8]) -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    let invalid = |what: &str| StoreError::Invalid(format!("database CA: {what}"));
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|_| invalid("not PEM certificates"))?;
        roots
            .add(cert)
            .map_err(|_| invalid("a certificate is not usable as a root"))?;
    }
    if roots.is_empty() {
        return Err(invalid("no certificate"));
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|_| invalid("no TLS protocol version"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// Connections per replica: reads run side by side, writes queue on the cluster lock.
const POOL_SIZE: u32 = 8;

/// How long a transaction waits for a connection before answering
/// [`StoreError::Unavailable`] (503): while PostgreSQL is away, requests fail fast
/// instead of hanging.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(2);

impl SqlStore {
    /// Connects to PostgreSQL (a pool of [`POOL_SIZE`] connections), applies migrations
    /// under the write lock and loads the data keys with `master`. Blocking: call it from
    /// a blocking context.
    pub fn connect_postgres(connect: &PgConnect, master: &MasterKey) -> Result<Self, StoreError> {
        // Fail at start, with the driver's reason, when the database cannot be reached.
        let first = connect.connect().map_err(|e| StoreError::Db(Box::new(e)))?;
        drop(OwnedClient::new(first));
        let pool = r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            .min_idle(Some(1))
            .connection_timeout(CHECKOUT_TIMEOUT)
            // A connection is checked (an empty query) before each use, so a pool that
            // held connections across a PostgreSQL restart hands out live ones only.
            .test_on_check_out(true)
            .error_handler(Box::new(LogErrors))
            .build(Manager(connect.clone()))
            .map_err(|_| StoreError::Unavailable)?;
        SqlStore::new(
            Box::new(pool),
            MIGRATIONS,
            master,
            Some(Arc::new(PgLocks::new(connect.clone()))),
        )
    }
}

/// Opens pooled connections. r2d2 (by the `postgres` crate's author) fits this store:
/// its transactions run on blocking threads with the synchronous client, and the pool
/// re-opens connections in the background with backoff while the database is away.
#[derive(Debug)]
struct Manager(PgConnect);

impl r2d2::ManageConnection for Manager {
    type Connection = OwnedClient;
    type Error = StoreError;

    fn connect(&self) -> Result<OwnedClient, StoreError> {
        Ok(OwnedClient::new(self.0.connect()?))
    }

    fn is_valid(&self, conn: &mut OwnedClient) -> Result<(), StoreError> {
        conn.get()?.simple_query("")?;
        Ok(())
    }

    fn has_broken(&self, conn: &mut OwnedClient) -> bool {
        conn.is_closed()
    }
}

/// The pool's failed connection attempts, in our log (once per attempt, with backoff).
#[derive(Debug)]
struct LogErrors;

impl r2d2::HandleError<StoreError> for LogErrors {
    fn handle_error(&self, error: StoreError) {
        tracing::warn!(error = %excalibur_core::ErrorChain(&error), "database unreachable");
    }
}

impl crate::db::Connections for r2d2::Pool<Manager> {
    fn with_backend(
        &self,
        f: &mut dyn FnMut(&mut dyn Backend) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut conn = self.get().map_err(|_| StoreError::Unavailable)?;
        f(&mut *conn)
    }
}

/// A synchronous client that may be dropped anywhere: its `Drop` blocks on an internal
/// runtime, which must not happen on an async thread, so the drop runs on its own thread.
pub struct OwnedClient(Option<Client>);

impl OwnedClient {
    pub(crate) fn new(c: Client) -> Self {
        Self(Some(c))
    }

    fn get(&mut self) -> Result<&mut Client, StoreError> {
        self.0.as_mut().ok_or(StoreError::Task)
    }

    /// True once the connection is gone.
    pub fn is_closed(&self) -> bool {
        self.0.as_ref().is_none_or(Client::is_closed)
    }
}

impl std::fmt::Debug for OwnedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnedClient")
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Drop for OwnedClient {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            let _ = std::thread::Builder::new()
                .name("excalibur-pg-close".into())
                .spawn(move || drop(c));
        }
    }
}

impl Backend for OwnedClient {
    fn begin(&mut self, mode: Mode) -> Result<Box<dyn Tx + '_>, StoreError> {
        let client = self.get()?;
        let tx = if mode == Mode::Read {
            // One snapshot for every statement of a read (the audit head and the events
            // it covers, a snapshot's tables), whatever other replicas commit meanwhile.
            client
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?
        } else {
            let mut tx = client.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])?;
            tx
        };
        Ok(Box::new(PgTx {
            tx,
            notify: mode == Mode::Write,
        }))
    }
}

struct PgTx<'a> {
    tx: Transaction<'a>,
    notify: bool,
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::I64(i) if *ty == Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
            Value::I64(i) => i.to_sql(ty, out),
            Value::Text(s) => s.to_sql(ty, out),
            Value::Blob(b) => b.to_sql(ty, out),
            Value::Bool(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// `?N` → `$N` (our SQL has no `?` inside literals).
fn dollar(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

fn read(row: &postgres::Row) -> Result<Row, StoreError> {
    let mut cols = Vec::with_capacity(row.len());
    for (i, col) in row.columns().iter().enumerate() {
        let t = col.type_();
        let v = if *t == Type::INT8 {
            row.try_get::<_, Option<i64>>(i)?.map(Value::I64)
        } else if *t == Type::INT4 {
            row.try_get::<_, Option<i32>>(i)?
                .map(|v| Value::I64(i64::from(v)))
        } else if *t == Type::INT2 {
            row.try_get::<_, Option<i16>>(i)?
                .map(|v| Value::I64(i64::from(v)))
        } else if *t == Type::BOOL {
            row.try_get::<_, Option<bool>>(i)?.map(Value::Bool)
        } else if *t == Type::BYTEA {
            row.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Blob)
        } else if *t == Type::TEXT || *t == Type::VARCHAR || *t == Type::BPCHAR || *t == Type::NAME
        {
            row.try_get::<_, Option<String>>(i)?.map(Value::Text)
        } else {
            return Err(StoreError::Column(i));
        };
        cols.push(v.unwrap_or(Value::Null));
    }
    Ok(Row(cols))
}

impl Tx for PgTx<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        let refs: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        Ok(self.tx.execute(dollar(sql).as_str(), &refs)?)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError> {
        let refs: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        self.tx
            .query(dollar(sql).as_str(), &refs)?
            .iter()
            .map(read)
            .collect()
    }

    fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        Ok(self.tx.batch_execute(sql)?)
    }

    fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        if self.notify {
            self.tx
                .batch_execute(&format!("NOTIFY {CHANGES_CHANNEL}"))?;
        }
        Ok(self.tx.commit()?)
    }
}

/// Follows [`CHANGES_CHANNEL`] on its own connection (a dedicated thread) and sends `()`
/// for every notification; after a lost connection it reconnects and sends `()` once
/// (changes may have been missed). Ends when the receiver is dropped.
pub fn listen(connect: PgConnect) -> tokio::sync::mpsc::Receiver<()> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    std::thread::Builder::new()
        .name("excalibur-listen".into())
        .spawn(move || {
            let mut backoff = Duration::from_millis(200);
            while !tx.is_closed() {
                let mut client = match connect.connect().and_then(|mut c| {
                    c.batch_execute(&format!("LISTEN {CHANGES_CHANNEL}"))
                        .map(|()| c)
                }) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "LISTEN connection failed; retrying");
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(1));
                        continue;
                    }
                };
                backoff = Duration::from_millis(200);
                let _ = tx.try_send(());
                loop {
                    // A fresh iterator per wait: a `TimeoutIter` whose delay has fired
                    // answers `None` at once forever after (the old loop spun a core
                    // and read notifications late). This blocks on the socket for up to
                    // 500 ms, waking as soon as a notification arrives.
                    let next = client
                        .notifications()
                        .timeout_iter(Duration::from_millis(500))
                        .next();
                    match next {
                        Ok(Some(_)) => {
                            // Coalesce a burst: one rebuild covers every pending change
                            // (`iter` returns only what already arrived, never blocks).
                            let mut pending = client.notifications();
                            let mut queued = pending.iter();
                            while let Ok(Some(_)) = queued.next() {}
                            let _ = tx.try_send(());
                        }
                        Ok(None) if client.is_closed() => {
                            tracing::warn!("LISTEN connection closed; reconnecting");
                            break;
                        }
                        Ok(None) => {
                            if tx.is_closed() {
                                return;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "LISTEN connection lost; reconnecting");
                            break;
                        }
                    }
                }
            }
        })
        .map(|_| ())
        .unwrap_or_else(|e| tracing::error!(error = %e, "cannot start the LISTEN thread"));
    rx
}

/// Cluster locks on their own connections. A try that finds the lock taken keeps its
/// connection for the next try: a replica waiting to take over (the delivery leader's
/// lock, retried every two seconds) costs one round trip per try, not a new connection
/// with its authentication and threads.
pub(crate) struct PgLocks {
    connect: PgConnect,
    /// Connections that hold no lock, ready for the next try.
    spare: std::sync::Mutex<Vec<OwnedClient>>,
}

/// Spare connections kept at most (one per lock a replica waits for, in practice).
const SPARE_LOCK_CONNECTIONS: usize = 2;

impl PgLocks {
    pub(crate) fn new(connect: PgConnect) -> Self {
        Self {
            connect,
            spare: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// A spare connection that is still open, or a new one.
    fn client(&self) -> Result<OwnedClient, StoreError> {
        let spare = self.spare.lock().ok().and_then(|mut s| {
            s.retain(|c| !c.is_closed());
            s.pop()
        });
        match spare {
            Some(c) => Ok(c),
            None => Ok(OwnedClient::new(self.connect.connect()?)),
        }
    }

    fn keep(&self, client: OwnedClient) {
        if let Ok(mut s) = self.spare.lock()
            && s.len() < SPARE_LOCK_CONNECTIONS
        {
            s.push(client);
        }
    }
}

impl crate::db::ClusterLocks for PgLocks {
    /// Takes the session-level advisory lock for `name` on a connection of its own
    /// (released when the connection closes): waiting for it (`wait`), or `None` at once
    /// when another process holds it.
    fn lock(&self, name: &str, wait: bool) -> Result<Option<crate::Exclusive>, StoreError> {
        let key = lock_key(name);
        let mut client = self.client()?;
        if wait {
            client
                .get()?
                .execute("SELECT pg_advisory_lock($1)", &[&key])?;
            return Ok(Some(crate::Exclusive::held(client)));
        }
        // A spare connection may have died since its last use: one retry on a new one.
        let got = match try_lock(&mut client, key) {
            Ok(got) => got,
            Err(_) => {
                client = OwnedClient::new(self.connect.connect()?);
                try_lock(&mut client, key)?
            }
        };
        if got {
            return Ok(Some(crate::Exclusive::held(client)));
        }
        self.keep(client);
        Ok(None)
    }
}

fn try_lock(client: &mut OwnedClient, key: i64) -> Result<bool, StoreError> {
    Ok(client
        .get()?
        .query_one("SELECT pg_try_advisory_lock($1)", &[&key])?
        .try_get(0)?)
}

/// FNV-1a of the name: a stable 64-bit key.
fn lock_key(name: &str) -> i64 {
    let key = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    i64::from_ne_bytes(key.to_ne_bytes())
}
