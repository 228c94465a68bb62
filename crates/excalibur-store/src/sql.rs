//! The SQLite backend: one connection in WAL mode behind a mutex, used only from
//! blocking threads (`spawn_blocking`), so the async runtime never waits on disk.

use std::sync::Arc;

use crate::db::{Backend, Connections, Dialect, Mode, Row, Tx, Value, params};
use crate::{SnapshotKey, SnapshotRow};
use aws_lc_rs::hmac;
use excalibur_core::Secret;
use excalibur_core::api::Revocation;
use excalibur_core::api::{
    CreatePolicy, CreateTranslationRule, Delivery, Flow, Namespace, PlaceholderInfo, PolicyRecord,
    Provider, ServiceCredentialInfo, TokenInfo, TranslationRule, UpsertPlaceholder,
    UpsertedPlaceholder, WebhookInfo, WorkloadInfo,
};
use excalibur_core::api::{CryptoFamily, MappingRecord, PrincipalRevocation, SshRoute, SshSession};
use excalibur_core::audit::{AuditEvent, ChainVerifier, EventType, NewEvent, VerifyReport};
use excalibur_core::ids::{AuditSeq, CredentialId, Role, RuleId, TokenId};
use excalibur_core::merkle::StoredEvent;
use excalibur_core::secret::hex;
use excalibur_core::time::Timestamp;
use record::{FLOW_COLUMNS, append_events, flow_values, insert_rows};
use serde_json::json;

use crate::seal::{MasterKey, Sealer, WrappedKey};
use crate::{
    AuditQuery, Exchanged, Exclusive, Expiry, FlowQuery, PlaceholderSecret,
    ServiceCredentialRecord, SnapshotData, Store, StoreError, StoreFuture, WorkloadIssue,
};

/// The store over SQL: every query written once, run by a [`Backend`] (SQLite or
/// PostgreSQL) on blocking threads, so the async runtime never waits on the database.
#[derive(Debug, Clone)]
pub struct SqlStore {
    inner: Arc<Inner>,
}

struct Inner {
    conns: Box<dyn Connections>,
    /// Losses and recoveries of the database, for metrics, probes and the log.
    health: crate::Health,
    sealer: Sealer,
    head_key: HeadKey,
    /// Authenticates the configuration rows ([`config_mac`]).
    config_key: HeadKey,
    /// Cluster-wide named locks (`None`: SQLite, one process).
    locks: Option<Arc<dyn crate::db::ClusterLocks>>,
    /// The configuration as this process last authenticated and committed it, with
    /// the database's data version then (SQLite only). While no other connection has
    /// committed since (the version is unchanged), the rows are known without reading
    /// and authenticating them again: a write reads them once, not three times.
    verified: std::sync::Mutex<Option<(i64, ConfigRows)>>,
    /// What the write in progress will make [`Inner::verified`] once it commits.
    staged: std::sync::Mutex<Option<(i64, ConfigRows)>>,
    /// This connection records the configuration rows its statements change
    /// (SQLite), so a write authenticates only those.
    tracked: bool,
    /// SQLite: flows in flight are journaled here, not in `flow_intents`.
    journal: std::sync::OnceLock<crate::journal::IntentJournal>,
}

impl Inner {
    /// The authenticated configuration, if no other connection committed since it
    /// was (taken: a write that fails leaves nothing cached).
    fn take_verified(&self, tx: &mut dyn Tx) -> Result<Option<ConfigRows>, StoreError> {
        let Some(version) = tx.data_version()? else {
            return Ok(None);
        };
        let cached = self.verified.lock().ok().and_then(|mut v| v.take());
        Ok(cached.and_then(|(at, rows)| (at == version).then_some(rows)))
    }

    /// True when the configuration is known intact without reading it.
    fn known_intact(&self, tx: &mut dyn Tx) -> Result<bool, StoreError> {
        let Some(version) = tx.data_version()? else {
            return Ok(false);
        };
        Ok(self
            .verified
            .lock()
            .ok()
            .is_some_and(|v| v.as_ref().is_some_and(|(at, _)| *at == version)))
    }
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore").finish_non_exhaustive()
    }
}

struct HeadKey(hmac::Key);

impl SqlStore {
    /// A store over `backend`: applies `migrations` (in order, each once) and loads the
    /// data keys with `master`; `postgres` opens extra connections for cluster locks.
    /// Blocking: call it from a blocking context.
    ///
    /// Errors when the master key does not open this database's data keys.
    pub(crate) fn new(
        conns: Box<dyn Connections>,
        migrations: &[(i64, &str)],
        master: &MasterKey,
        locks: Option<Arc<dyn crate::db::ClusterLocks>>,
    ) -> Result<Self, StoreError> {
        let mut sealer = None;
        let mut tracked = false;
        conns.with_backend(&mut |backend| {
            migrate(backend, migrations)?;
            sealer = Some(Self::load_keys(backend, master)?);
            let mut tx = backend.begin(Mode::Write)?;
            tracked = tx.track_changes(CONFIG_TABLES)?;
            tx.commit()
        })?;
        let sealer = sealer.ok_or(StoreError::Task)?;
        Ok(Self {
            inner: Arc::new(Inner {
                conns,
                health: crate::Health::default(),
                sealer,
                head_key: HeadKey(master.audit_head_key()),
                config_key: HeadKey(master.config_key()),
                locks,
                verified: std::sync::Mutex::new(None),
                staged: std::sync::Mutex::new(None),
                tracked,
                journal: std::sync::OnceLock::new(),
            }),
        })
    }

    /// Opens the data keys with `master` (creating the first one), and authenticates
    /// the configuration rows of a database that has no MAC yet.
    fn load_keys(backend: &mut dyn Backend, master: &MasterKey) -> Result<Sealer, StoreError> {
        let sealer = {
            let mut tx = backend.begin(Mode::Write)?;
            let stored = tx.query_map(
                "SELECT id, wrapped FROM data_keys ORDER BY created_ms, id",
                params![],
                |r| {
                    Ok(WrappedKey {
                        id: r.get(0)?,
                        wrapped: r.get(1)?,
                    })
                },
            )?;
            let (sealer, new_key) = Sealer::load(master, &stored)?;
            if let Some(k) = new_key {
                tx.execute(
                    "INSERT INTO data_keys (id, wrapped, created_ms) VALUES (?1, ?2, ?3)",
                    params![k.id, k.wrapped, Timestamp::now().millis()],
                )?;
            }
            // A database from before configuration MACs (or a new one): its rows are
            // authenticated once, as they are now.
            let config_key = HeadKey(master.config_key());
            let stored: Option<(String, Option<String>)> = tx.query_opt(
                "SELECT mac, rows FROM config_mac WHERE id = 1",
                params![],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            match stored {
                None => drop(store_config_mac(tx.as_mut(), &config_key, None, false)?),
                // Authenticated before per-row MACs: re-authenticated in the new form
                // only if the old MAC still verifies (else it stays refused).
                Some((mac, None)) => {
                    let old = config_mac(&config_key, &legacy_config_digest(tx.as_mut())?);
                    if aws_lc_rs::constant_time::verify_slices_are_equal(
                        old.as_bytes(),
                        mac.as_bytes(),
                    )
                    .is_ok()
                    {
                        drop(store_config_mac(tx.as_mut(), &config_key, None, false)?);
                    }
                }
                Some(_) => {}
            }
            tx.commit()?;
            sealer
        };
        Ok(sealer)
    }

    /// Runs `f` on a blocking thread in a transaction (`write`: serialized with every
    /// other writer) and commits it.
    fn tx<T, F>(&self, mode: Mode, f: F) -> StoreFuture<'_, T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner, &mut dyn Tx) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || Self::tx_here(&inner, mode, f))
                .await
                .map_err(|_| StoreError::Task)?
        })
    }

    /// [`Self::tx`] on the calling thread, which blocks until the commit.
    fn tx_here<T, F>(inner: &Inner, mode: Mode, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Inner, &mut dyn Tx) -> Result<T, StoreError>,
    {
        let mut f = Some(f);
        let mut value = None;
        let result = inner.conns.with_backend(&mut |conn| {
            let f = f.take().ok_or(StoreError::Task)?;
            let mut tx = conn.begin(mode)?;
            let done = f(inner, tx.as_mut()).and_then(|v| {
                value = Some(v);
                tx.commit()
            });
            // Still holding the connection: what a committed write authenticated
            // becomes the known configuration; a failed one leaves none.
            let staged = inner.staged.lock().ok().and_then(|mut s| s.take());
            if done.is_ok()
                && let Some(staged) = staged
                && let Ok(mut v) = inner.verified.lock()
            {
                *v = Some(staged);
            }
            done
        });
        inner.health.observe(&result);
        result?;
        value.ok_or(StoreError::Task)
    }

    fn run<T, F>(&self, f: F) -> StoreFuture<'_, T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner, &mut dyn Tx) -> Result<T, StoreError> + Send + 'static,
    {
        self.tx(Mode::Read, f)
    }

    /// Runs `f` in a write transaction, appends the events it returns to the audit
    /// chain, and commits both together.
    fn write<T, F>(&self, f: F) -> StoreFuture<'_, T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner, &mut dyn Tx) -> Result<(T, Vec<NewEvent>), StoreError> + Send + 'static,
    {
        self.tx(Mode::Write, move |inner, tx| {
            // A write never launders rows edited outside Excalibur: it refuses until an
            // operator accepts them (`config_accept`).
            let before = match inner.take_verified(tx)? {
                Some(now) => ConfigState {
                    now,
                    changes: None,
                    in_table: true,
                },
                None => config_state(tx, &inner.config_key)?,
            };
            if before.changes.is_some() {
                return Err(StoreError::Tampered);
            }
            let (value, events) = f(inner, tx)?;
            let now = store_config_mac(tx, &inner.config_key, Some(before), inner.tracked)?;
            if let Some(version) = tx.data_version()?
                && let Ok(mut staged) = inner.staged.lock()
            {
                *staged = Some((version, now));
            }
            append_events(tx, &inner.head_key, &events)?;
            Ok(value)
        })
    }

    /// [`Self::write`] for appended records (flows, deliveries): serialized with every
    /// writer, but no replica needs to rebuild for it.
    fn append<T, F>(&self, f: F) -> StoreFuture<'_, T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner, &mut dyn Tx) -> Result<(T, Vec<NewEvent>), StoreError> + Send + 'static,
    {
        self.tx(Mode::Record, move |inner, tx| {
            let (value, events) = f(inner, tx)?;
            append_events(tx, &inner.head_key, &events)?;
            Ok(value)
        })
    }

    /// Marks due placeholders and credentials expired (`credential_expired` events).
    fn expire_now(&self) -> StoreFuture<'_, usize> {
        self.write(|_, tx| {
            let now = Timestamp::now().millis();
            let mut events = Vec::new();
            let expired: Vec<(String, String)> = {

                tx.query_map("SELECT name, provider_id FROM placeholders WHERE expires_ms IS NOT NULL AND expires_ms <= ?1 AND expired_ms IS NULL", params![now], |r| Ok((r.get(0)?, r.get(1)?)))?
            };
            for (name, provider) in &expired {
                tx.execute("UPDATE placeholders SET expired_ms = ?2 WHERE name = ?1", params![name, now])?;
                events.push(NewEvent::new(
                    EventType::CredentialExpired,
                    "system",
                    json!({"kind": "placeholder", "placeholder": name, "provider_id": provider}),
                ));
            }
            let creds: Vec<(String, String)> = {

                tx.query_map("SELECT id, name FROM service_credentials WHERE expires_ms IS NOT NULL AND expires_ms <= ?1 AND revoked_ms IS NULL", params![now], |r| Ok((r.get(0)?, r.get(1)?)))?
            };
            for (id, name) in &creds {
                tx.execute(
                    "UPDATE service_credentials SET revoked_ms = ?2, revoked_reason = 'expired' WHERE id = ?1",
                    params![id, now],
                )?;
                events.push(NewEvent::new(
                    EventType::CredentialExpired,
                    "system",
                    json!({"kind": "service_credential", "id": id, "name": name}),
                ));
            }
            Ok((expired.len() + creds.len(), events))
        })
    }
}

/// `provider_upsert` inside a write transaction (shared with `import`).
fn provider_upsert_tx(
    tx: &mut dyn Tx,
    provider: Provider,
    actor: &str,
) -> Result<(Provider, Vec<NewEvent>), StoreError> {
    let now = Timestamp::now().millis();
    tx.execute(
                "INSERT INTO providers (id, hosts, passthrough, dangerous_allow_plaintext, created_ms, updated_ms) VALUES (?1, ?2, ?3, ?5, ?4, ?4)
                 ON CONFLICT (id) DO UPDATE SET hosts = excluded.hosts, passthrough = excluded.passthrough,
                 dangerous_allow_plaintext = excluded.dangerous_allow_plaintext, updated_ms = excluded.updated_ms",
                params![provider.id, serde_json::to_string(&provider.hosts)?, provider.passthrough, now, provider.dangerous_allow_plaintext],
            )?;
    let event = NewEvent::new(
        EventType::ProviderUpdated,
        actor.to_owned(),
        json!({"id": provider.id, "hosts": provider.hosts, "passthrough": provider.passthrough,
                       "dangerous_allow_plaintext": provider.dangerous_allow_plaintext}),
    );
    Ok((provider, vec![event]))
}

/// `placeholder_upsert` inside a write transaction (shared with `import`).
fn placeholder_upsert_tx(
    inner: &Inner,
    tx: &mut dyn Tx,
    req: UpsertPlaceholder,
    actor: &str,
) -> Result<(UpsertedPlaceholder, Vec<NewEvent>), StoreError> {
    let provider_exists: Option<String> = tx.query_opt(
        "SELECT id FROM providers WHERE id = ?1",
        params![&req.provider_id],
        |r| r.get(0),
    )?;
    if provider_exists.is_none() {
        return Err(StoreError::Invalid(format!(
            "provider `{}` does not exist; create it first with POST /api/providers",
            req.provider_id
        )));
    }
    let value = req.real_value.to_secret();
    let fp = value.fingerprint();
    let route_family = req.route_family.unwrap_or_else(|| req.provider_id.clone());
    let (key_id, sealed) = inner
        .sealer
        .seal(&value, &format!("placeholder:{}", req.placeholder))?;
    let expires_ms = parse_time("expires_at", req.expires_at.as_deref())?;
    let previous: Option<String> = tx.query_opt(
        "SELECT fingerprint FROM placeholders WHERE name = ?1",
        params![&req.placeholder],
        |r| r.get(0),
    )?;
    let now = Timestamp::now().millis();
    let created = previous.is_none();
    let rotated = previous.as_ref().is_some_and(|p| *p != fp);
    tx.execute(
                "INSERT INTO placeholders (name, provider_id, route_family, key_id, sealed, fingerprint, created_ms, rotated_ms, updated_ms, expires_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?7, ?8)
                 ON CONFLICT (name) DO UPDATE SET provider_id = excluded.provider_id, route_family = excluded.route_family,
                   key_id = excluded.key_id, sealed = excluded.sealed, fingerprint = excluded.fingerprint,
                   expires_ms = excluded.expires_ms, expired_ms = NULL,
                   rotated_ms = CASE WHEN placeholders.fingerprint = excluded.fingerprint THEN placeholders.rotated_ms ELSE excluded.rotated_ms END,
                   updated_ms = excluded.updated_ms",
                params![req.placeholder, req.provider_id, route_family, key_id, sealed, fp, now, expires_ms],
            )?;
    let sql = format!("SELECT {PLACEHOLDER_COLS} FROM placeholders WHERE name = ?1");
    let info = tx.query_row(&sql, params![&req.placeholder], placeholder_row)?;
    let details = json!({
        "placeholder": info.placeholder,
        "provider_id": info.provider_id,
        "route_family": info.route_family,
        "fingerprint": info.fingerprint,
        "created": created,
    });
    let mut events = vec![NewEvent::new(
        EventType::PlaceholderUpdated,
        actor.to_owned(),
        details,
    )];
    if rotated {
        events.push(NewEvent::new(
            EventType::PlaceholderRotated,
            actor,
            json!({
                "placeholder": info.placeholder,
                "provider_id": info.provider_id,
                "previous_fingerprint": previous,
                "fingerprint": info.fingerprint,
            }),
        ));
    }
    Ok((
        UpsertedPlaceholder {
            info,
            created,
            rotated,
        },
        events,
    ))
}

/// `credential_create` inside a write transaction (shared with `import`).
fn credential_create_tx(
    tx: &mut dyn Tx,
    info: &ServiceCredentialInfo,
    hash: &str,
    actor: &str,
) -> Result<((), Vec<NewEvent>), StoreError> {
    // The name is the principal id (`service:<name>`): one live credential per name.
    let live: i64 = tx.query_row(
        "SELECT count(*) FROM service_credentials WHERE name = ?1 AND revoked_ms IS NULL",
        params![&info.name],
        |r| r.get(0),
    )?;
    if live > 0 {
        return Err(StoreError::Conflict(format!(
            "a live service credential named `{}` exists; revoke it first",
            info.name
        )));
    }
    tx.execute(
                "INSERT INTO service_credentials (id, name, \"user\", source_network, allowed_domains, prefix, hash, created_ms, expires_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    info.id.as_str(),
                    info.name,
                    info.user,
                    info.source_network,
                    serde_json::to_string(&info.allowed_domains)?,
                    info.prefix,
                    hash,
                    Timestamp::now().millis(),
                    parse_time("expires_at", info.expires_at.as_deref())?
                ],
            )?;
    let event = NewEvent::new(
        EventType::ServiceCredentialCreated,
        actor.to_owned(),
        json!({
            "id": info.id, "name": info.name, "user": info.user,
            "source_network": info.source_network, "allowed_domains": info.allowed_domains,
            "prefix": info.prefix,
        }),
    );
    Ok(((), vec![event]))
}

/// `rule_create` inside a write transaction (shared with `import`).
fn rule_create_tx(
    tx: &mut dyn Tx,
    rule: CreateTranslationRule,
    actor: &str,
) -> Result<(TranslationRule, Vec<NewEvent>), StoreError> {
    let id = RuleId::generate();
    let now = Timestamp::now().millis();
    tx.execute(
        "INSERT INTO translation_rules (id, body, created_ms) VALUES (?1, ?2, ?3)",
        params![id.as_str(), serde_json::to_string(&rule)?, now],
    )?;
    let stored = TranslationRule {
        id,
        rule,
        created_at: ts(now),
    };
    let event = NewEvent::new(
        EventType::TranslationRuleCreated,
        actor.to_owned(),
        serde_json::to_value(&stored)?,
    );
    Ok((stored, vec![event]))
}

pub(crate) fn migrate(
    backend: &mut dyn Backend,
    migrations: &[(i64, &str)],
) -> Result<(), StoreError> {
    {
        let mut tx = backend.begin(Mode::Write)?;
        tx.batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_ms BIGINT NOT NULL)",
        )?;
        tx.commit()?;
    }
    for (version, sql) in migrations {
        let mut tx = backend.begin(Mode::Write)?;
        let done = tx.query_opt(
            "SELECT version FROM schema_migrations WHERE version = ?1",
            params![*version],
            |r| r.get::<i64>(0),
        )?;
        if done.is_none() {
            tx.batch(sql)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_ms) VALUES (?1, ?2)",
                params![*version, Timestamp::now().millis()],
            )?;
        }
        tx.commit()?;
    }
    Ok(())
}

/// The tables the request path is configured from, each with its key: a row edited,
/// added or removed outside Excalibur changes [`config_digest`].
const CONFIG_TABLES: &[(&str, &str)] = &[
    ("providers", "id"),
    ("placeholders", "name"),
    ("service_credentials", "id"),
    ("translation_rules", "id"),
    ("policies", "id"),
    ("namespaces", "name"),
    ("workload_tokens", "id"),
    ("crypto_mappings", "id"),
    ("ssh_routes", "id"),
    ("ssh_sessions", "id"),
    ("principal_revocations", "id"),
];

/// The digest of migration 9 (before per-row MACs), to upgrade a database once.
fn legacy_config_digest(tx: &mut dyn Tx) -> Result<Vec<u8>, StoreError> {
    let mut h = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut put = |tag: u8, bytes: &[u8]| {
        h.update(&[tag]);
        h.update(&u64::try_from(bytes.len()).unwrap_or(u64::MAX).to_be_bytes());
        h.update(bytes);
    };
    for (table, key) in CONFIG_TABLES {
        put(b'T', table.as_bytes());
        for row in tx.query(&format!("SELECT * FROM {table} ORDER BY {key}"), &[])? {
            put(b'R', &[]);
            for v in &row.0 {
                match v {
                    crate::db::Value::Null => put(b'N', &[]),
                    crate::db::Value::I64(i) => put(b'I', &i.to_be_bytes()),
                    crate::db::Value::Text(s) => put(b'S', s.as_bytes()),
                    crate::db::Value::Blob(b) => put(b'B', b),
                    crate::db::Value::Bool(b) => put(b'I', &i64::from(*b).to_be_bytes()),
                }
            }
        }
    }
    Ok(h.finish().as_ref().to_vec())
}

/// The configuration as authenticated: one MAC per row (its table, key and values,
/// so a row cannot move or swap), and digests over all of them (so a deleted or added
/// row shows too).
#[derive(Clone)]
struct ConfigRows {
    /// `table/key` → the row's MAC.
    rows: std::collections::BTreeMap<String, String>,
    /// The digest before migration 15: SHA-256 over the row MACs in key order (only
    /// from a full read; used to upgrade a database authenticated that way).
    legacy_digest: Vec<u8>,
    /// XOR of SHA-256(row key, row MAC) over every row: one row changes it by two
    /// XORs, so a write authenticates what it changed without reading the rest.
    set: [u8; 32],
}

impl ConfigRows {
    fn empty() -> Self {
        Self {
            rows: std::collections::BTreeMap::new(),
            legacy_digest: Vec::new(),
            set: [0; 32],
        }
    }

    /// The digest the configuration MAC covers (migration 15 on): the row count and
    /// the XOR set hash. Forging it needs a row MAC, which needs the key.
    fn digest(&self) -> Vec<u8> {
        let mut h = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        h.update(b"excalibur config rows v2\0");
        h.update(
            &u64::try_from(self.rows.len())
                .unwrap_or(u64::MAX)
                .to_be_bytes(),
        );
        h.update(&self.set);
        h.finish().as_ref().to_vec()
    }

    fn toggle(&mut self, row: &str, mac: &str) {
        let d = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            format!("{row}\0{mac}").as_bytes(),
        );
        for (a, b) in self.set.iter_mut().zip(d.as_ref()) {
            *a ^= b;
        }
    }

    /// Sets (or, with `None`, removes) one row's MAC.
    fn put(&mut self, row: String, mac: Option<String>) {
        if let Some(old) = self.rows.remove(&row) {
            self.toggle(&row, &old);
        }
        if let Some(mac) = mac {
            self.toggle(&row, &mac);
            self.rows.insert(row, mac);
        }
    }
}

fn put_field(h: &mut aws_lc_rs::digest::Context, tag: u8, bytes: &[u8]) {
    h.update(&[tag]);
    h.update(&u64::try_from(bytes.len()).unwrap_or(u64::MAX).to_be_bytes());
    h.update(bytes);
}

/// One row (`SELECT key, * ...`) of `table`: its key and its MAC over the table name
/// and every value, typed and length-prefixed.
fn row_mac(key: &HeadKey, table: &str, row: &crate::db::Row) -> (String, String) {
    let mut h = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    put_field(&mut h, b'T', table.as_bytes());
    let mut id = String::new();
    for (i, v) in row.0.iter().enumerate() {
        match v {
            crate::db::Value::Null => put_field(&mut h, b'N', &[]),
            crate::db::Value::I64(n) => put_field(&mut h, b'I', &n.to_be_bytes()),
            crate::db::Value::Text(t) => {
                if i == 0 {
                    id.clone_from(t);
                }
                put_field(&mut h, b'S', t.as_bytes());
            }
            crate::db::Value::Blob(b) => put_field(&mut h, b'B', b),
            crate::db::Value::Bool(b) => put_field(&mut h, b'I', &i64::from(*b).to_be_bytes()),
        }
    }
    (id, hex(hmac::sign(&key.0, h.finish().as_ref()).as_ref()))
}

/// Reads and authenticates every configuration row, in key order.
fn config_rows(tx: &mut dyn Tx, key: &HeadKey) -> Result<ConfigRows, StoreError> {
    let mut all = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut out = ConfigRows::empty();
    for (table, column) in CONFIG_TABLES {
        put_field(&mut all, b'T', table.as_bytes());
        let sql = format!("SELECT {column}, * FROM {table} ORDER BY {column}");
        for row in tx.query(&sql, &[])? {
            let (id, mac) = row_mac(key, table, &row);
            put_field(&mut all, b'R', mac.as_bytes());
            out.put(format!("{table}/{id}"), Some(mac));
        }
    }
    out.legacy_digest = all.finish().as_ref().to_vec();
    Ok(out)
}

fn config_mac(key: &HeadKey, digest: &[u8]) -> String {
    hex(hmac::sign(&key.0, digest).as_ref())
}

/// `config_mac.rows` when the MAC covers [`ConfigRows::digest`] and the per-row MACs
/// are in `config_row_macs` (migration 15); before, it held them as one JSON document
/// and the MAC covered the legacy digest.
const ROWS_IN_TABLE: &str = "table";

/// The configuration as read at the start of a write, and how it compares with what
/// Excalibur last authenticated.
struct ConfigState {
    now: ConfigRows,
    /// `None` when intact; else the rows that differ ([`config_changes`]).
    changes: Option<Vec<String>>,
    /// Authenticated in the migration-15 form.
    in_table: bool,
}

/// `table/key` and the row's MAC now (`None`: deleted).
type RowChange = (String, Option<String>);

/// The rows this connection's statements changed since the last call (`None` when
/// the backend does not track them).
fn dirty_rows(
    tx: &mut dyn Tx,
    key: &HeadKey,
    tracked: bool,
) -> Result<Option<Vec<RowChange>>, StoreError> {
    if !tracked {
        return Ok(None);
    }
    let dirty: Vec<(String, String)> = tx.query_map(
        "SELECT DISTINCT tbl, row_key FROM temp.config_dirty",
        params![],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    tx.execute("DELETE FROM temp.config_dirty", &[])?;
    let mut out = Vec::with_capacity(dirty.len());
    for (table, id) in dirty {
        let (table, column) = CONFIG_TABLES
            .iter()
            .find(|(t, _)| *t == table)
            .ok_or_else(|| StoreError::Invalid(format!("unknown configuration table {table}")))?;
        let sql = format!("SELECT {column}, * FROM {table} WHERE {column} = ?1");
        let row = tx.query(&sql, params![id])?;
        let mac = row.first().map(|r| row_mac(key, table, r).1);
        out.push((format!("{table}/{id}"), mac));
    }
    Ok(Some(out))
}

/// Authenticates the configuration as it is now, in the writing transaction. From the
/// state read (intact) at the start of the same write, only the rows this write
/// changed are read and authenticated, when the backend tracks them; otherwise all.
fn store_config_mac(
    tx: &mut dyn Tx,
    key: &HeadKey,
    before: Option<ConfigState>,
    tracked: bool,
) -> Result<ConfigRows, StoreError> {
    let base = before.filter(|b| b.in_table && b.changes.is_none());
    let dirty = dirty_rows(tx, key, tracked)?;
    let mut upserts = Vec::new();
    let now = match (base, dirty) {
        (Some(base), Some(dirty)) => {
            let mut now = base.now;
            for (row, mac) in dirty {
                match &mac {
                    Some(m) => upserts.push(vec![Value::from(&row), Value::from(m)]),
                    None => {
                        tx.execute(
                            "DELETE FROM config_row_macs WHERE row_key = ?1",
                            params![row],
                        )?;
                    }
                }
                now.put(row, mac);
            }
            now
        }
        (base, _) => {
            let now = config_rows(tx, key)?;
            match base {
                Some(base) => {
                    for (row, m) in &now.rows {
                        if base.now.rows.get(row) != Some(m) {
                            upserts.push(vec![Value::from(row), Value::from(m)]);
                        }
                    }
                    for row in base.now.rows.keys() {
                        if !now.rows.contains_key(row) {
                            tx.execute(
                                "DELETE FROM config_row_macs WHERE row_key = ?1",
                                params![row],
                            )?;
                        }
                    }
                }
                None => {
                    tx.execute("DELETE FROM config_row_macs", &[])?;
                    upserts = now
                        .rows
                        .iter()
                        .map(|(row, m)| vec![Value::from(row), Value::from(m)])
                        .collect();
                }
            }
            now
        }
    };
    tx.execute(
        "INSERT INTO config_mac (id, mac, rows) VALUES (1, ?1, ?2)
         ON CONFLICT (id) DO UPDATE SET mac = excluded.mac, rows = excluded.rows",
        params![config_mac(key, &now.digest()), ROWS_IN_TABLE],
    )?;
    insert_rows(
        tx,
        "config_row_macs (row_key, mac)",
        upserts,
        " ON CONFLICT (row_key) DO UPDATE SET mac = excluded.mac",
    )?;
    Ok(now)
}

/// Whether the configuration rows are as Excalibur last wrote them.
fn config_intact(tx: &mut dyn Tx, key: &HeadKey) -> Result<bool, StoreError> {
    Ok(config_changes(tx, key)?.is_none())
}

/// `None` when the configuration rows are as Excalibur last wrote them; else the rows
/// that differ (`table/key (changed|added|removed)`; empty when only the record of
/// them was altered).
fn config_changes(tx: &mut dyn Tx, key: &HeadKey) -> Result<Option<Vec<String>>, StoreError> {
    Ok(config_state(tx, key)?.changes)
}

/// Reads and authenticates the configuration ([`ConfigState`]).
fn config_state(tx: &mut dyn Tx, key: &HeadKey) -> Result<ConfigState, StoreError> {
    let stored: Option<(String, Option<String>)> = tx.query_opt(
        "SELECT mac, rows FROM config_mac WHERE id = 1",
        params![],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let now = config_rows(tx, key)?;
    let Some((mac, rows)) = stored else {
        return Ok(ConfigState {
            now,
            changes: Some(Vec::new()),
            in_table: false,
        });
    };
    let in_table = rows.as_deref() == Some(ROWS_IN_TABLE);
    let digest = if in_table {
        now.digest()
    } else {
        now.legacy_digest.clone()
    };
    if aws_lc_rs::constant_time::verify_slices_are_equal(
        config_mac(key, &digest).as_bytes(),
        mac.as_bytes(),
    )
    .is_ok()
    {
        return Ok(ConfigState {
            now,
            changes: None,
            in_table,
        });
    }
    // The per-row record is only a guide to what changed (the MAC above decides).
    let before: std::collections::BTreeMap<String, String> = if in_table {
        tx.query_map("SELECT row_key, mac FROM config_row_macs", params![], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .into_iter()
        .collect()
    } else {
        rows.and_then(|r| serde_json::from_str(&r).ok())
            .unwrap_or_default()
    };
    let mut changed = Vec::new();
    for (row, m) in &now.rows {
        match before.get(row) {
            None => changed.push(format!("{row} (added)")),
            Some(b) if b != m => changed.push(format!("{row} (changed)")),
            Some(_) => {}
        }
    }
    for row in before.keys() {
        if !now.rows.contains_key(row) {
            changed.push(format!("{row} (removed)"));
        }
    }
    Ok(ConfigState {
        now,
        changes: Some(changed),
        in_table,
    })
}

fn head_mac(key: &HeadKey, seq: i64, hash: &str) -> String {
    hex(hmac::sign(&key.0, format!("{seq}:{hash}").as_bytes()).as_ref())
}

/// Refuses with [`StoreError::Tampered`] when configuration rows were edited in the
/// database file: such rows never configure the request path.
fn ensure_config_intact(inner: &Inner, tx: &mut dyn Tx) -> Result<(), StoreError> {
    if inner.known_intact(tx)? || config_intact(tx, &inner.config_key)? {
        Ok(())
    } else {
        Err(StoreError::Tampered)
    }
}

/// The columns [`placeholder_secret`] reads.
const PLACEHOLDER_SECRET_COLS: &str = "name, provider_id, route_family, key_id, sealed, expires_ms";

/// A placeholder row with its value unsealed (bound to its name).
fn placeholder_secret(inner: &Inner, r: &Row) -> Result<PlaceholderSecret, StoreError> {
    let name: String = r.get(0)?;
    let value = inner.sealer.open(
        &r.get::<String>(3)?,
        &r.get::<Vec<u8>>(4)?,
        &format!("placeholder:{name}"),
    )?;
    Ok(PlaceholderSecret {
        provider_id: r.get(1)?,
        route_family: r.get(2)?,
        expires_ms: r.get(5)?,
        value,
        name,
    })
}

fn ts(ms: i64) -> String {
    Timestamp::from_millis(ms).to_rfc3339()
}

fn token_row(r: &Row) -> Result<TokenInfo, StoreError> {
    let role: String = r.get(2)?;
    Ok(TokenInfo {
        id: TokenId::new(r.get::<String>(0)?),
        name: r.get(1)?,
        role: Role::parse(&role).unwrap_or(Role::Operator),
        prefix: r.get(3)?,
        created_at: ts(r.get(4)?),
        revoked_at: r.get::<Option<i64>>(5)?.map(ts),
    })
}

const TOKEN_COLS: &str = "id, name, role, prefix, created_ms, revoked_ms";

fn placeholder_row(r: &Row) -> Result<PlaceholderInfo, StoreError> {
    Ok(PlaceholderInfo {
        placeholder: r.get(0)?,
        provider_id: r.get(1)?,
        route_family: r.get(2)?,
        fingerprint: r.get(3)?,
        created_at: ts(r.get(4)?),
        last_rotated_at: ts(r.get(5)?),
        updated_at: ts(r.get(6)?),
        expires_at: r.get::<Option<i64>>(7)?.map(ts),
        expired: r
            .get::<Option<i64>>(7)?
            .is_some_and(|at| at <= Timestamp::now().millis()),
    })
}

const PLACEHOLDER_COLS: &str =
    "name, provider_id, route_family, fingerprint, created_ms, rotated_ms, updated_ms, expires_ms";

fn credential_row(r: &Row) -> Result<(ServiceCredentialInfo, String), StoreError> {
    let domains: String = r.get(4)?;
    Ok((
        ServiceCredentialInfo {
            id: CredentialId::new(r.get::<String>(0)?),
            name: r.get(1)?,
            user: r.get(2)?,
            source_network: r.get(3)?,
            allowed_domains: serde_json::from_str(&domains).unwrap_or_default(),
            prefix: r.get(5)?,
            created_at: ts(r.get(6)?),
            revoked_at: r.get::<Option<i64>>(7)?.map(ts),
            revoked_reason: r.get(8)?,
            expires_at: r.get::<Option<i64>>(10)?.map(ts),
        },
        r.get(9)?,
    ))
}

const CREDENTIAL_COLS: &str = "id, name, \"user\", source_network, allowed_domains, prefix, created_ms, revoked_ms, revoked_reason, hash, expires_ms";

fn provider_row(r: &Row) -> Result<Provider, StoreError> {
    let hosts: String = r.get(1)?;
    Ok(Provider {
        id: r.get(0)?,
        hosts: serde_json::from_str(&hosts).unwrap_or_default(),
        passthrough: r.get(2)?,
        dangerous_allow_plaintext: r.get(3)?,
    })
}

fn rule_row(r: &Row) -> Result<(String, String, i64), StoreError> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
}

fn parse_rule((id, body, created): (String, String, i64)) -> Result<TranslationRule, StoreError> {
    Ok(TranslationRule {
        id: RuleId::new(id),
        rule: serde_json::from_str(&body)?,
        created_at: ts(created),
    })
}

fn audit_row(r: &Row) -> Result<AuditEvent, StoreError> {
    let details: String = r.get(4)?;
    Ok(AuditEvent {
        seq: AuditSeq(r.get(0)?),
        ts: r.get(1)?,
        event_type: r.get(2)?,
        principal: r.get(3)?,
        // A row whose details no longer parse is kept as a string so verify reports it.
        details: serde_json::from_str(&details).unwrap_or(serde_json::Value::String(details)),
        prev_hash: r.get(5)?,
        hash: r.get(6)?,
    })
}

fn checkpoint_row(r: &Row) -> Result<excalibur_core::merkle::Checkpoint, StoreError> {
    Ok(excalibur_core::merkle::Checkpoint {
        tree_size: u64::try_from(r.get::<i64>(0)?).map_err(|_| StoreError::Column(0))?,
        root_hash: r.get(1)?,
        signature: r.get(2)?,
        key_id: r.get(3)?,
        ts: r.get(4)?,
    })
}

/// Events read at a time by `audit_verify`.
const VERIFY_PAGE: i64 = 10_000;

const AUDIT_COLS: &str = "seq, ts, type, principal, details, prev_hash, hash";

impl Store for SqlStore {
    fn connection_stats(&self) -> crate::ConnectionStats {
        self.inner.health.stats()
    }

    fn token_create(&self, info: TokenInfo, hash: String, actor: String) -> StoreFuture<'_, ()> {
        self.write(move |_, tx| {
            tx.execute(
                "INSERT INTO api_tokens (id, name, role, prefix, hash, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    info.id.as_str(),
                    info.name,
                    info.role.as_str(),
                    info.prefix,
                    hash,
                    Timestamp::now().millis()
                ],
            )?;
            let event = NewEvent::new(
                EventType::TokenCreated,
                actor,
                json!({"id": info.id, "name": info.name, "role": info.role, "prefix": info.prefix}),
            );
            Ok(((), vec![event]))
        })
    }

    fn token_by_hash(&self, hash: String) -> StoreFuture<'_, Option<TokenInfo>> {
        self.run(move |_, conn| {
            let sql = format!(
                "SELECT {TOKEN_COLS} FROM api_tokens WHERE hash = ?1 AND revoked_ms IS NULL"
            );
            conn.query_opt(&sql, params![hash], token_row)
        })
    }

    fn token_list(&self) -> StoreFuture<'_, Vec<TokenInfo>> {
        self.run(move |_, conn| {
            conn.query_map(
                &format!("SELECT {TOKEN_COLS} FROM api_tokens ORDER BY created_ms, id"),
                params![],
                token_row,
            )
        })
    }

    fn token_revoke(&self, id: TokenId, actor: String) -> StoreFuture<'_, TokenInfo> {
        self.write(move |_, tx| {
            let n = tx.execute(
                "UPDATE api_tokens SET revoked_ms = ?2 WHERE id = ?1 AND revoked_ms IS NULL",
                params![id.as_str(), Timestamp::now().millis()],
            )?;
            let sql = format!("SELECT {TOKEN_COLS} FROM api_tokens WHERE id = ?1");
            let info = tx
                .query_opt(&sql, params![id.as_str()], token_row)?
                .ok_or_else(|| StoreError::NotFound {
                    kind: "token",
                    id: id.to_string(),
                })?;
            let events = if n == 1 {
                vec![NewEvent::new(
                    EventType::TokenRevoked,
                    actor,
                    json!({"id": info.id, "prefix": info.prefix}),
                )]
            } else {
                Vec::new()
            };
            Ok((info, events))
        })
    }

    fn provider_upsert(&self, provider: Provider, actor: String) -> StoreFuture<'_, Provider> {
        self.write(move |_, tx| provider_upsert_tx(tx, provider, &actor))
    }

    fn provider_list(&self) -> StoreFuture<'_, Vec<Provider>> {
        self.run(|_, conn| {
            conn.query_map(
                "SELECT id, hosts, passthrough, dangerous_allow_plaintext FROM providers ORDER BY id",
                params![],
                provider_row,
            )
        })
    }

    fn provider_delete(&self, id: String, actor: String) -> StoreFuture<'_, ()> {
        self.write(move |_, tx| {
            let used: i64 = tx.query_row(
                "SELECT count(*) FROM placeholders WHERE provider_id = ?1",
                params![&id],
                |r| r.get(0),
            )?;
            if used > 0 {
                return Err(StoreError::Conflict(format!(
                    "provider `{id}` is used by {used} placeholder(s); delete them first"
                )));
            }
            let mapped: i64 = tx.query_row(
                "SELECT count(*) FROM crypto_mappings WHERE provider_id = ?1",
                params![&id],
                |r| r.get(0),
            )?;
            if mapped > 0 {
                return Err(StoreError::Conflict(format!(
                    "provider `{id}` is used by {mapped} crypto mapping(s); delete them first"
                )));
            }
            if tx.execute("DELETE FROM providers WHERE id = ?1", params![&id])? == 0 {
                return Err(StoreError::NotFound {
                    kind: "provider",
                    id,
                });
            }
            Ok((
                (),
                vec![NewEvent::new(
                    EventType::ProviderDeleted,
                    actor,
                    json!({"id": id}),
                )],
            ))
        })
    }

    fn placeholder_upsert(
        &self,
        req: UpsertPlaceholder,
        actor: String,
    ) -> StoreFuture<'_, UpsertedPlaceholder> {
        self.write(move |inner, tx| placeholder_upsert_tx(inner, tx, req, &actor))
    }

    fn placeholder_list(&self) -> StoreFuture<'_, Vec<PlaceholderInfo>> {
        self.run(|_, conn| {
            conn.query_map(
                &format!("SELECT {PLACEHOLDER_COLS} FROM placeholders ORDER BY name"),
                params![],
                placeholder_row,
            )
        })
    }

    fn placeholder_delete(&self, name: String, actor: String) -> StoreFuture<'_, ()> {
        self.write(move |_, tx| {
            if tx.execute("DELETE FROM placeholders WHERE name = ?1", params![&name])? == 0 {
                return Err(StoreError::NotFound {
                    kind: "placeholder",
                    id: name,
                });
            }
            Ok((
                (),
                vec![NewEvent::new(
                    EventType::PlaceholderDeleted,
                    actor,
                    json!({"placeholder": name}),
                )],
            ))
        })
    }

    fn credential_create(
        &self,
        info: ServiceCredentialInfo,
        hash: String,
        actor: String,
    ) -> StoreFuture<'_, ()> {
        self.write(move |_, tx| credential_create_tx(tx, &info, &hash, &actor))
    }

    fn credential_list(&self) -> StoreFuture<'_, Vec<ServiceCredentialInfo>> {
        self.run(|_, conn| {
            Ok(conn
                .query_map(
                    &format!(
                        "SELECT {CREDENTIAL_COLS} FROM service_credentials ORDER BY created_ms, id"
                    ),
                    params![],
                    credential_row,
                )?
                .into_iter()
                .map(|(i, _)| i)
                .collect())
        })
    }

    fn credential_revoke(
        &self,
        id: CredentialId,
        reason: String,
        actor: String,
    ) -> StoreFuture<'_, ServiceCredentialInfo> {
        self.write(move |_, tx| {
            let n = tx.execute(
                "UPDATE service_credentials SET revoked_ms = ?2, revoked_reason = ?3 WHERE id = ?1 AND revoked_ms IS NULL",
                params![id.as_str(), Timestamp::now().millis(), reason],
            )?;
            let sql = format!("SELECT {CREDENTIAL_COLS} FROM service_credentials WHERE id = ?1");
            let (info, _) = tx
                .query_opt(&sql, params![id.as_str()], credential_row)
                ?
                .ok_or_else(|| StoreError::NotFound { kind: "service credential", id: id.to_string() })?;
            let events = if n == 1 {
                vec![NewEvent::new(
                    EventType::ServiceCredentialRevoked,
                    actor,
                    json!({"id": info.id, "name": info.name, "prefix": info.prefix, "reason": reason}),
                )]
            } else {
                Vec::new()
            };
            Ok((info, events))
        })
    }

    fn rule_create(
        &self,
        rule: CreateTranslationRule,
        actor: String,
    ) -> StoreFuture<'_, TranslationRule> {
        self.write(move |_, tx| rule_create_tx(tx, rule, &actor))
    }

    fn import(&self, batch: crate::ImportBatch, actor: String) -> StoreFuture<'_, crate::Imported> {
        self.write(move |inner, tx| {
            let mut events = Vec::new();
            let mut out = crate::Imported::default();
            for p in batch.providers {
                let (p, ev) = provider_upsert_tx(tx, p, &actor)?;
                out.providers.push(p);
                events.extend(ev);
            }
            for req in batch.placeholders {
                let (p, ev) = placeholder_upsert_tx(inner, tx, req, &actor)?;
                out.placeholders.push(p);
                events.extend(ev);
            }
            for rule in batch.rules {
                let (r, ev) = rule_create_tx(tx, rule, &actor)?;
                out.rules.push(r);
                events.extend(ev);
            }
            for (info, hash) in &batch.credentials {
                let ((), ev) = credential_create_tx(tx, info, hash, &actor)?;
                events.extend(ev);
            }
            Ok((out, events))
        })
    }

    fn rule_list(&self) -> StoreFuture<'_, Vec<TranslationRule>> {
        self.run(|_, conn| list_rules(conn))
    }

    fn rule_delete(&self, id: RuleId, actor: String) -> StoreFuture<'_, ()> {
        self.write(move |_, tx| {
            if tx.execute(
                "DELETE FROM translation_rules WHERE id = ?1",
                params![id.as_str()],
            )? == 0
            {
                return Err(StoreError::NotFound {
                    kind: "translation rule",
                    id: id.to_string(),
                });
            }
            Ok((
                (),
                vec![NewEvent::new(
                    EventType::TranslationRuleDeleted,
                    actor,
                    json!({"id": id}),
                )],
            ))
        })
    }

    fn policy_create(&self, policy: CreatePolicy, actor: String) -> StoreFuture<'_, PolicyRecord> {
        self.write(move |_, tx| {
            let now = Timestamp::now().millis();
            let exists: Option<String> = tx.query_opt(
                "SELECT id FROM policies WHERE id = ?1",
                params![&policy.id],
                |r| r.get(0),
            )?;
            if exists.is_some() {
                return Err(StoreError::Conflict(format!(
                    "policy `{}` exists; delete it first",
                    policy.id
                )));
            }
            tx.execute(
                "INSERT INTO policies (id, description, body, created_ms) VALUES (?1, ?2, ?3, ?4)",
                params![policy.id, policy.description, policy.policy, now],
            )?;
            let record = PolicyRecord {
                policy,
                created_at: ts(now),
            };
            let event = NewEvent::new(
                EventType::PolicyCreated,
                actor,
                serde_json::to_value(&record)?,
            );
            Ok((record, vec![event]))
        })
    }

    fn policy_list(&self) -> StoreFuture<'_, Vec<PolicyRecord>> {
        self.run(|_, conn| list_policies(conn))
    }

    fn policy_delete(&self, id: String, actor: String) -> StoreFuture<'_, ()> {
        self.write(move |_, tx| {
            if tx.execute("DELETE FROM policies WHERE id = ?1", params![&id])? == 0 {
                return Err(StoreError::NotFound { kind: "policy", id });
            }
            Ok((
                (),
                vec![NewEvent::new(
                    EventType::PolicyDeleted,
                    actor,
                    json!({"id": id}),
                )],
            ))
        })
    }

    fn webhook_create(
        &self,
        info: WebhookInfo,
        secret: Secret,
        actor: String,
    ) -> StoreFuture<'_, ()> {
        self.write(move |inner, tx| {
            let (kid, sealed) = inner.sealer.seal(&secret, &format!("webhook:{}", info.id))?;
            tx.execute(
                "INSERT INTO webhooks (id, url, event_types, key_id, sealed_secret, secret_fingerprint, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    info.id,
                    info.url,
                    serde_json::to_string(&info.event_types)?,
                    kid,
                    sealed,
                    info.secret_fingerprint,
                    Timestamp::now().millis()
                ],
            )?;
            let event = NewEvent::new(
                EventType::WebhookCreated,
                actor,
                json!({"id": info.id, "url": info.url, "event_types": info.event_types, "secret_fingerprint": info.secret_fingerprint}),
            );
            Ok(((), vec![event]))
        })
    }

    fn webhook_list(&self) -> StoreFuture<'_, Vec<WebhookInfo>> {
        self.run(|_, conn| {
            conn.query_map(
                &format!("SELECT {WEBHOOK_COLS} FROM webhooks ORDER BY created_ms, id"),
                params![],
                webhook_row,
            )
        })
    }

    fn webhook_secrets(&self) -> StoreFuture<'_, Vec<(WebhookInfo, Secret)>> {
        self.run(|inner, conn| {
            let rows = conn.query_map(
                &format!("SELECT {WEBHOOK_COLS}, key_id, sealed_secret FROM webhooks ORDER BY id"),
                params![],
                |r| Ok((webhook_row(r)?, r.get::<String>(5)?, r.get::<Vec<u8>>(6)?)),
            )?;
            rows.into_iter()
                .map(|(info, kid, blob)| {
                    let secret = inner
                        .sealer
                        .open(&kid, &blob, &format!("webhook:{}", info.id))?;
                    Ok((info, secret))
                })
                .collect()
        })
    }

    fn webhook_delete(&self, id: String, actor: String) -> StoreFuture<'_, ()> {
        self.write(move |_, tx| {
            if tx.execute("DELETE FROM webhooks WHERE id = ?1", params![&id])? == 0 {
                return Err(StoreError::NotFound {
                    kind: "webhook",
                    id,
                });
            }
            tx.execute(
                "DELETE FROM webhook_deliveries WHERE webhook_id = ?1 AND status = 'pending'",
                params![&id],
            )?;
            Ok((
                (),
                vec![NewEvent::new(
                    EventType::WebhookDeleted,
                    actor,
                    json!({"id": id}),
                )],
            ))
        })
    }

    fn delivery_enqueue(
        &self,
        deliveries: Vec<Delivery>,
        cursor: (String, i64),
    ) -> StoreFuture<'_, ()> {
        self.append(move |_, tx| {
            let now = Timestamp::now().millis();
            for d in &deliveries {
                tx.execute(
                    "INSERT INTO webhook_deliveries (id, webhook_id, event_seq, event_type, status, attempts, next_attempt_ms, created_ms, updated_ms)
                     VALUES (?1, ?2, ?3, ?4, 'pending', 0, ?5, ?5, ?5) ON CONFLICT DO NOTHING",
                    params![&d.id, &d.webhook_id, d.event_seq, &d.event_type, now],
                )?;
            }
            tx.execute(
                "INSERT INTO cursors (name, seq) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET seq = excluded.seq",
                params![&cursor.0, cursor.1],
            )?;
            Ok(((), Vec::new()))
        })
    }

    fn deliveries_due(&self, limit: usize) -> StoreFuture<'_, Vec<Delivery>> {
        self.run(move |_, conn| {

            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            conn.query_map(&format!(
                "SELECT {DELIVERY_COLS} FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_ms <= ?1
                 ORDER BY next_attempt_ms, event_seq LIMIT ?2"
            ), params![Timestamp::now().millis(), limit], delivery_row)
        })
    }

    fn delivery_update(
        &self,
        id: String,
        status: String,
        last_status: Option<u16>,
        last_error: Option<String>,
        next_attempt_ms: i64,
    ) -> StoreFuture<'_, ()> {
        self.tx(Mode::Record, move |_, conn| {
            conn.execute(
                "UPDATE webhook_deliveries SET status = ?2, attempts = attempts + 1, last_status = ?3, last_error = ?4,
                 next_attempt_ms = ?5, updated_ms = ?6 WHERE id = ?1",
                params![
                    id,
                    status,
                    last_status,
                    last_error,
                    next_attempt_ms,
                    Timestamp::now().millis()
                ],
            )?;
            Ok(())
        })
    }

    fn delivery_list(&self, webhook_id: String, limit: usize) -> StoreFuture<'_, Vec<Delivery>> {
        self.run(move |_, conn| {

            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            conn.query_map(&format!(
                "SELECT {DELIVERY_COLS} FROM webhook_deliveries WHERE webhook_id = ?1 ORDER BY created_ms DESC, event_seq DESC LIMIT ?2"
            ), params![webhook_id, limit], delivery_row)
        })
    }

    fn cursor_get(&self, name: String) -> StoreFuture<'_, Option<i64>> {
        self.run(move |_, conn| {
            conn.query_opt(
                "SELECT seq FROM cursors WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
        })
    }

    fn expire_due(&self) -> StoreFuture<'_, Expiry> {
        Box::pin(async move {
            // A read first, so a sweep with nothing due takes no write lock (and
            // re-authenticates no configuration).
            let next_ms = self.run(|_, tx| next_expiry(tx)).await?;
            if next_ms.is_none_or(|at| at > Timestamp::now().millis()) {
                return Ok(Expiry {
                    expired: 0,
                    next_ms,
                });
            }
            let expired = self.expire_now().await?;
            let next_ms = self.run(|_, tx| next_expiry(tx)).await?;
            Ok(Expiry { expired, next_ms })
        })
    }

    fn namespace_upsert(&self, ns: Namespace, actor: String) -> StoreFuture<'_, Namespace> {
        self.write(move |_, tx| {
            let now = Timestamp::now().millis();
            tx.execute(
                "INSERT INTO namespaces (name, allowed_domains, created_ms, updated_ms) VALUES (?1, ?2, ?3, ?3)
                 ON CONFLICT (name) DO UPDATE SET allowed_domains = excluded.allowed_domains, updated_ms = excluded.updated_ms",
                params![ns.name, serde_json::to_string(&ns.allowed_domains)?, now],
            )?;
            let event = NewEvent::new(EventType::NamespaceUpdated, actor, json!({"name": ns.name, "allowed_domains": ns.allowed_domains}));
            Ok((ns, vec![event]))
        })
    }

    fn namespace_list(&self) -> StoreFuture<'_, Vec<Namespace>> {
        self.run(|_, conn| list_namespaces(conn))
    }

    fn workload_exchange(&self, w: WorkloadIssue) -> StoreFuture<'_, Exchanged> {
        self.write(move |_, tx| {
            let now = Timestamp::now().millis();
            let subject = Subject {
                principal: &w.info.principal,
                jti: &w.jti,
                jti_expires_ms: w.jti_expires_ms,
                attestation: &w.info.attestation,
                source: &w.info.source,
                bearer: &w.info.id,
            };
            let (refused, mut events) = admit_subject(tx, &subject, now)?;
            if let Some(refused) = refused {
                return Ok((refused, events));
            }
            let expires_ms = Timestamp::parse(&w.info.expires_at).map(Timestamp::millis).unwrap_or(now);
            tx.execute(
                "INSERT INTO workload_tokens (id, principal, namespace, attestation, source, prefix, hash, details, created_ms, expires_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    w.info.id,
                    w.info.principal,
                    w.info.namespace,
                    w.info.attestation,
                    w.info.source,
                    w.info.token_prefix,
                    w.hash,
                    serde_json::to_string(&w.info.details)?,
                    now,
                    expires_ms
                ],
            )?;
            let mut attested = w.info.details.clone();
            if let Some(obj) = attested.as_object_mut() {
                obj.insert("attestor".to_owned(), json!(w.info.attestation));
            }
            let mut issued = json!({"token_prefix": w.info.token_prefix, "ttl_seconds": (expires_ms - now) / 1000,
                                    "scopes": w.info.details.get("scopes"), "workload_id": w.info.id});
            if let (Some(obj), Some(d)) = (issued.as_object_mut(), w.info.details.as_object()) {
                for k in ["kind", "aud", "token_jti", "sub", "act"] {
                    if let Some(v) = d.get(k) {
                        obj.insert(k.to_owned(), v.clone());
                    }
                }
            }
            let reissued = events.iter().any(|e| e.event_type == EventType::WorkloadTokenReissued);
            events.push(NewEvent::new(EventType::WorkloadAttested, w.info.principal.clone(), attested));
            events.push(NewEvent::new(EventType::WorkloadTokenIssued, w.info.principal.clone(), issued));
            Ok((if reissued { Exchanged::Reissued } else { Exchanged::Issued }, events))
        })
    }

    fn workload_revoke(&self, r: Revocation, actor: String) -> StoreFuture<'_, usize> {
        self.write(move |_, tx| {
            let now = Timestamp::now().millis();
            let targets: Vec<(String, String, String)> = {

                let (jti, token_jti) = match tx.dialect() {
                    Dialect::Sqlite => ("json_extract(details, '$.jti')", "json_extract(details, '$.token_jti')"),
                    Dialect::Postgres => ("(details::jsonb ->> 'jti')", "(details::jsonb ->> 'token_jti')"),
                };
                // `jti`: the subject token's (every bearer exchanged for it) or an issued
                // audience token's own.
                let sql = format!(
                    "SELECT id, principal, prefix FROM workload_tokens WHERE revoked_ms IS NULL AND expires_ms > ?1
                     AND (CAST(?2 AS TEXT) IS NULL OR id = ?2) AND (CAST(?3 AS TEXT) IS NULL OR principal = ?3)
                     AND (CAST(?4 AS TEXT) IS NULL OR {jti} = ?4 OR {token_jti} = ?4)"
                );
                tx.query_map(&sql, params![now, r.workload_id, r.principal, r.jti], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })?
            };
            let mut events = Vec::new();
            if let Some(principal) = &r.principal {
                let exists: Option<String> = tx.query_opt(
                    "SELECT id FROM principal_revocations WHERE principal = ?1",
                    params![principal],
                    |row| row.get(0),
                )?;
                if exists.is_none() {
                    let id = format!("rev_{}", excalibur_core::secret::hex(&excalibur_core::ids::random_bytes::<8>()));
                    tx.execute(
                        "INSERT INTO principal_revocations (id, principal, actor, created_ms) VALUES (?1, ?2, ?3, ?4)",
                        params![&id, principal, &actor, now],
                    )?;
                    events.push(NewEvent::new(
                        EventType::PrincipalRevoked,
                        actor.clone(),
                        json!({"revocation_id": id, "principal": principal}),
                    ));
                }
            }
            // What an admin revoked is not re-issued to the same source later.
            if let Some(jti) = &r.jti {
                tx.execute("UPDATE seen_jti SET revoked = 1 WHERE jti = ?1", params![jti])?;
            }
            for (id, principal, prefix) in &targets {
                tx.execute("UPDATE workload_tokens SET revoked_ms = ?2 WHERE id = ?1", params![id, now])?;
                tx.execute("UPDATE seen_jti SET revoked = 1 WHERE bearer = ?1", params![id])?;
                events.push(revoked_event(id, principal, Some(prefix), "revoked", &actor, now));
            }
            Ok((targets.len(), events))
        })
    }

    fn workload_by_hash(&self, hash: String) -> StoreFuture<'_, Option<(WorkloadInfo, bool)>> {
        self.run(move |_, tx| {
            tx.query_opt(
                "SELECT id, namespace, principal, attestation, source, prefix, created_ms, expires_ms, details, revoked_ms
                 FROM workload_tokens WHERE hash = ?1",
                params![hash],
                |r| {
                    let revoked: Option<i64> = r.get(9)?;
                    let expires: i64 = r.get(7)?;
                    let live = revoked.is_none() && expires > Timestamp::now().millis();
                    Ok((workload_row(r)?.0, live))
                },
            )
        })
    }

    fn config_accept(&self, actor: String) -> StoreFuture<'_, ()> {
        self.tx(Mode::Write, move |inner, tx| {
            // Whatever was cached is forgotten: the rows are read and authenticated now.
            drop(inner.take_verified(tx)?);
            let was_intact = config_intact(tx, &inner.config_key)?;
            drop(store_config_mac(
                tx,
                &inner.config_key,
                None,
                inner.tracked,
            )?);
            let event = NewEvent::new(
                EventType::ConfigurationAccepted,
                actor,
                json!({"reason": "operator accepted the configuration rows as they are",
                       "rows_were_edited": !was_intact}),
            );
            append_events(tx, &inner.head_key, &[event])
        })
    }

    fn principal_revocation_list(&self) -> StoreFuture<'_, Vec<PrincipalRevocation>> {
        self.run(|_, conn| {
            conn.query_map(
                "SELECT id, principal, actor, created_ms FROM principal_revocations ORDER BY created_ms DESC",
                params![],
                |r| {
                    Ok(PrincipalRevocation {
                        id: r.get(0)?,
                        principal: r.get(1)?,
                        actor: r.get(2)?,
                        created_at: ts(r.get(3)?),
                    })
                },
            )
        })
    }

    fn principal_revocation_delete(&self, id: String, actor: String) -> StoreFuture<'_, ()> {
        self.write(move |_, tx| {
            let principal: Option<String> = tx.query_opt(
                "SELECT principal FROM principal_revocations WHERE id = ?1",
                params![&id],
                |r| r.get(0),
            )?;
            let Some(principal) = principal else {
                return Err(StoreError::NotFound {
                    kind: "revocation",
                    id,
                });
            };
            tx.execute(
                "DELETE FROM principal_revocations WHERE id = ?1",
                params![&id],
            )?;
            let event = NewEvent::new(
                EventType::PrincipalRevocationLifted,
                actor,
                json!({"revocation_id": id, "principal": principal}),
            );
            Ok(((), vec![event]))
        })
    }

    fn workload_list(&self) -> StoreFuture<'_, Vec<WorkloadInfo>> {
        self.run(|_, conn| {

            Ok(conn.query_map("SELECT id, namespace, principal, attestation, source, prefix, created_ms, expires_ms, details
                 FROM workload_tokens ORDER BY created_ms DESC LIMIT 1000", params![], workload_row)?.into_iter().map(|(w, _)| w).collect())
        })
    }

    fn record_with_intents(&self, batch: Arc<crate::RecordBatch>) -> StoreFuture<'_, ()> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || Self::record_batch(&inner, &batch))
                .await
                .map_err(|_| StoreError::Task)?
        })
    }

    fn record_with_intents_here(&self, batch: &crate::RecordBatch) -> Result<(), StoreError> {
        Self::record_batch(&self.inner, batch)
    }

    fn audit_head_seq(&self) -> StoreFuture<'_, u64> {
        self.run(|_, tx| {
            let seq: Option<i64> =
                tx.query_opt("SELECT seq FROM audit_head WHERE id = 1", params![], |r| {
                    r.get(0)
                })?;
            Ok(seq.and_then(|s| u64::try_from(s).ok()).unwrap_or(0))
        })
    }

    fn audit_leaves(
        &self,
        after_seq: u64,
        to_seq: u64,
    ) -> StoreFuture<'_, Vec<excalibur_core::merkle::Hash>> {
        self.run(move |_, tx| {
            let to = i64::try_from(to_seq).unwrap_or(i64::MAX);
            let mut after = i64::try_from(after_seq).unwrap_or(i64::MAX);
            let sql = format!(
                "SELECT {AUDIT_COLS} FROM audit_events WHERE seq > ?1 AND seq <= ?2 ORDER BY seq LIMIT ?3"
            );
            let mut leaves = Vec::new();
            loop {
                // Hashed from the stored columns: the details are canonical as written,
                // so no row is parsed (a row whose details are not JSON gets a leaf
                // that `audit_verify` will not reproduce: it reports that checkpoint).
                let page = tx.query_map(&sql, params![after, to, VERIFY_PAGE], |r| {
                    let leaf = excalibur_core::merkle::leaf_hash_stored(&StoredEvent {
                        seq: r.get(0)?,
                        ts: r.str(1)?,
                        event_type: r.str(2)?,
                        principal: r.str(3)?,
                        details: r.str(4)?.as_bytes(),
                        prev_hash: r.str(5)?,
                        hash: r.str(6)?,
                    });
                    Ok((r.get::<i64>(0)?, leaf))
                })?;
                let Some(&(last, _)) = page.last() else { break };
                after = last;
                leaves.extend(page.into_iter().map(|(_, leaf)| leaf));
            }
            Ok(leaves)
        })
    }

    fn checkpoint_latest(
        &self,
    ) -> StoreFuture<
        '_,
        Option<(
            excalibur_core::merkle::Checkpoint,
            excalibur_core::merkle::Frontier,
        )>,
    > {
        self.run(|_, tx| {
            let row = tx.query_opt(
                "SELECT tree_size, root_hash, signature, key_id, ts, frontier FROM audit_checkpoints
                 ORDER BY tree_size DESC LIMIT 1",
                params![],
                |r| Ok((checkpoint_row(r)?, r.get::<String>(5)?)),
            )?;
            row.map(|(cp, frontier)| {
                Ok((
                    cp,
                    serde_json::from_str(&frontier).map_err(StoreError::Corrupt)?,
                ))
            })
            .transpose()
        })
    }

    fn checkpoint_list(
        &self,
        after: u64,
        limit: usize,
    ) -> StoreFuture<'_, Vec<excalibur_core::merkle::Checkpoint>> {
        self.run(move |_, tx| {
            tx.query_map(
                "SELECT tree_size, root_hash, signature, key_id, ts FROM audit_checkpoints
                 WHERE tree_size > ?1 ORDER BY tree_size LIMIT ?2",
                params![
                    i64::try_from(after).unwrap_or(i64::MAX),
                    i64::try_from(limit).unwrap_or(i64::MAX)
                ],
                checkpoint_row,
            )
        })
    }

    fn checkpoint_append(
        &self,
        cp: excalibur_core::merkle::Checkpoint,
        frontier: excalibur_core::merkle::Frontier,
    ) -> StoreFuture<'_, ()> {
        self.append(move |_, tx| {
            tx.execute(
                "INSERT INTO audit_checkpoints (tree_size, root_hash, signature, key_id, ts, frontier)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    i64::try_from(cp.tree_size).unwrap_or(i64::MAX),
                    &cp.root_hash,
                    &cp.signature,
                    &cp.key_id,
                    &cp.ts,
                    serde_json::to_string(&frontier).map_err(StoreError::Corrupt)?
                ],
            )?;
            let details = serde_json::to_value(&cp).map_err(StoreError::Corrupt)?;
            Ok((
                (),
                vec![NewEvent::new(EventType::AuditCheckpoint, "system", details)],
            ))
        })
    }

    fn flow_gateways_in_flight(&self) -> StoreFuture<'_, Vec<String>> {
        self.run(|inner, tx| {
            let mut gateways: Vec<String> = tx.query_map(
                "SELECT DISTINCT gateway FROM flow_intents",
                params![],
                |r| r.get(0),
            )?;
            if let Some(journal) = inner.journal.get() {
                gateways.extend(journal.gateways()?);
                gateways.sort();
                gateways.dedup();
            }
            Ok(gateways)
        })
    }

    fn flows_interrupted(&self, gateway: String) -> StoreFuture<'_, usize> {
        let journal = self.inner.journal.get();
        let journaled = match journal.map(|j| j.open_of(&gateway)).transpose() {
            Ok(open) => open.unwrap_or_default(),
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        let ids: Vec<String> = journaled.iter().map(|f| f.id.clone()).collect();
        let done = self.append(move |_, tx| {
            let mut open: Vec<String> = tx.query_map(
                "SELECT body FROM flow_intents WHERE gateway = ?1 ORDER BY id",
                params![gateway],
                |r| r.get(0),
            )?;
            open.extend(journaled.into_iter().map(|f| f.body));
            let mut events = Vec::with_capacity(open.len());
            let mut rows = Vec::with_capacity(open.len());
            for body in open {
                let mut flow: Flow = serde_json::from_str(&body).map_err(StoreError::Corrupt)?;
                flow.reason = Some("interrupted".to_owned());
                events.push(excalibur_core::record::flow_event(&flow));
                rows.push(flow_values(&flow)?);
            }
            let n = rows.len();
            // A completion deletes its intent in the same transaction: an intent left is
            // a flow nobody completed.
            insert_rows(tx, FLOW_COLUMNS, rows, " ON CONFLICT (id) DO NOTHING")?;
            tx.execute(
                "DELETE FROM flow_intents WHERE gateway = ?1",
                params![gateway],
            )?;
            Ok((n, events))
        });
        Box::pin(async move {
            let n = done.await?;
            if let Some(journal) = journal {
                journal.completed(ids.iter().map(String::as_str), false);
            }
            Ok(n)
        })
    }

    fn flow_list(&self, q: FlowQuery) -> StoreFuture<'_, Vec<Flow>> {
        self.run(move |_, conn| {
            // Listed and paged by the recording sequence (`rowid`, a flow's `seq`): the
            // order flows completed in (flows in flight are not listed).
            let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
            let rows = conn.query_map(
                &format!(
                    "SELECT rowid, body FROM flows WHERE (CAST(?1 AS TEXT) IS NULL OR principal = ?1)
                     AND (CAST(?2 AS TEXT) IS NULL OR host = ?2) AND (CAST(?3 AS TEXT) IS NULL OR decision = ?3)
                     AND (CAST(?4 AS BIGINT) IS NULL OR ts_ms >= ?4) AND (CAST(?5 AS BIGINT) IS NULL OR ts_ms < ?5)
                     AND (CAST(?6 AS BIGINT) IS NULL OR rowid > ?6) AND (CAST(?7 AS BIGINT) IS NULL OR rowid < ?7)
                     ORDER BY rowid {} LIMIT ?8",
                    if q.oldest_first { "ASC" } else { "DESC" }
                ),
                params![
                    q.principal,
                    q.host,
                    q.decision,
                    q.since_ms,
                    q.until_ms,
                    q.after_seq,
                    q.before_seq,
                    limit
                ],
                |r| Ok((r.get::<i64>(0)?, r.get::<String>(1)?)),
            )?;
            rows.iter()
                .map(|(seq, body)| {
                    let mut flow: Flow = serde_json::from_str(body)?;
                    flow.seq = Some(*seq);
                    Ok(flow)
                })
                .collect()
        })
    }

    fn audit_list(&self, q: AuditQuery) -> StoreFuture<'_, Vec<AuditEvent>> {
        self.run(move |_, conn| {
            // The type glob is applied in SQL (SQLite GLOB, PostgreSQL LIKE), its other
            // metacharacters escaped.
            let dialect = conn.dialect();
            let glob = q.event_type.as_deref().map(|p| sql_glob(dialect, p));
            let matches = match dialect {
                Dialect::Sqlite => "type GLOB ?1",
                Dialect::Postgres => "type LIKE ?1 ESCAPE '\\'",
            };

            let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
            conn.query_map(&format!(
                "SELECT {AUDIT_COLS} FROM audit_events WHERE (CAST(?1 AS TEXT) IS NULL OR {matches}) AND (CAST(?2 AS TEXT) IS NULL OR principal = ?2)
                 AND (CAST(?3 AS BIGINT) IS NULL OR ts_ms >= ?3) AND (CAST(?4 AS BIGINT) IS NULL OR seq > ?4)
                 AND (CAST(?5 AS BIGINT) IS NULL OR seq < ?5) AND (CAST(?6 AS BIGINT) IS NULL OR ts_ms < ?6) ORDER BY seq {} LIMIT ?7",
                if q.oldest_first { "ASC" } else { "DESC" }
            ), params![glob, q.principal, q.since_ms, q.after_seq, q.before_seq, q.until_ms, limit], audit_row)
        })
    }

    fn audit_verify(&self) -> StoreFuture<'_, VerifyReport> {
        self.run(|inner, conn| {
            let tx = conn;
            let head: Option<(i64, String, String)> = tx.query_opt(
                "SELECT seq, hash, mac FROM audit_head WHERE id = 1",
                params![],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            let mut verifier = ChainVerifier::default();
            // Every stored checkpoint's root is recomputed in the same pass.
            let mut checkpoints = tx
                .query_map(
                    "SELECT tree_size, root_hash, signature, key_id, ts FROM audit_checkpoints ORDER BY tree_size",
                    params![],
                    checkpoint_row,
                )?
                .into_iter()
                .peekable();
            let mut tree = excalibur_core::merkle::Frontier::default();
            let mut bad_checkpoint: Option<u64> = None;
            // In pages, so a long log is never held in memory at once.
            let sql = format!(
                "SELECT {AUDIT_COLS} FROM audit_events WHERE seq > ?1 ORDER BY seq LIMIT ?2"
            );
            let mut after = 0i64;
            loop {
                let page = tx.query_map(&sql, params![after, VERIFY_PAGE], audit_row)?;
                let Some(last) = page.last() else { break };
                after = last.seq.0;
                for e in &page {
                    verifier.push(e);
                    tree.push(excalibur_core::merkle::leaf_hash(e));
                    while let Some(cp) = checkpoints.next_if(|cp| cp.tree_size <= tree.size) {
                        if bad_checkpoint.is_none()
                            && (cp.tree_size != tree.size || cp.root_hash != hex(&tree.root()))
                        {
                            bad_checkpoint = Some(cp.tree_size);
                        }
                    }
                }
            }
            if bad_checkpoint.is_none() {
                bad_checkpoint = checkpoints.next().map(|cp| cp.tree_size);
            }
            let head_ok = head.as_ref().is_none_or(|(s, h, m)| {
                aws_lc_rs::constant_time::verify_slices_are_equal(
                    head_mac(&inner.head_key, *s, h).as_bytes(),
                    m.as_bytes(),
                )
                .is_ok()
            });
            let mut report = verifier.finish(head.as_ref().map(|(s, h, _)| (*s, h.as_str())));
            if !head_ok && report.ok {
                report.ok = false;
                report.first_broken_seq = head.as_ref().map(|h| h.0);
                report.reason = Some("the authenticated head has been altered".to_owned());
            }
            if let Some(size) = bad_checkpoint
                && report.ok
            {
                report.ok = false;
                report.reason = Some(format!(
                    "the checkpoint at tree size {size} does not match the events it covers"
                ));
            }
            if report.ok
                && let Some(rows) = config_changes(tx, &inner.config_key)?
            {
                report.ok = false;
                report.reason = Some(if rows.is_empty() {
                    "configuration rows were modified outside Excalibur (their MAC does not verify)"
                        .to_owned()
                } else {
                    format!(
                        "configuration rows were modified outside Excalibur (their MAC does not verify): {}",
                        rows.join(", ")
                    )
                });
                report.config_rows = rows;
            }
            Ok(report)
        })
    }

    fn setting_get(&self, name: String) -> StoreFuture<'_, Option<Secret>> {
        self.run(move |inner, conn| {
            let row: Option<(String, Vec<u8>)> = conn.query_opt(
                "SELECT key_id, sealed FROM sealed_settings WHERE name = ?1",
                params![&name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            row.map(|(kid, blob)| {
                inner
                    .sealer
                    .open(&kid, &blob, &format!("setting:{name}"))
                    .map_err(StoreError::from)
            })
            .transpose()
        })
    }

    fn setting_put(&self, name: String, value: Secret) -> StoreFuture<'_, ()> {
        self.tx(Mode::Record, move |inner, conn| {
            let (kid, blob) = inner.sealer.seal(&value, &format!("setting:{name}"))?;
            conn.execute(
                "INSERT INTO sealed_settings (name, key_id, sealed, updated_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO UPDATE SET key_id = excluded.key_id, sealed = excluded.sealed, updated_ms = excluded.updated_ms",
                params![name, kid, blob, Timestamp::now().millis()],
            )?;
            Ok(())
        })
    }

    fn mapping_upsert(
        &self,
        record: MappingRecord,
        secret: Secret,
        actor: String,
    ) -> StoreFuture<'_, (MappingRecord, bool)> {
        self.write(move |inner, tx| {
            let provider_exists: Option<String> = tx
                .query_opt("SELECT id FROM providers WHERE id = ?1", params![&record.provider_id], |r| r.get(0))
                ?;
            if provider_exists.is_none() {
                return Err(StoreError::Invalid(format!(
                    "provider `{}` does not exist; create it first with POST /api/providers",
                    record.provider_id
                )));
            }
            let family = record.family.as_str();
            let existing: Option<String> = tx
                .query_opt("SELECT family FROM crypto_mappings WHERE id = ?1", params![&record.id], |r| r.get(0))
                ?;
            if existing.as_deref().is_some_and(|f| f != family) {
                return Err(StoreError::NotFound { kind: "mapping", id: record.id });
            }
            let created = existing.is_none();
            let fingerprint = secret.fingerprint();
            let (key_id, sealed) = inner.sealer.seal(&secret, &format!("mapping:{}", record.id))?;
            let now = Timestamp::now().millis();
            tx.execute(
                "INSERT INTO crypto_mappings (id, family, provider_id, config, key_id, sealed, fingerprint, created_ms, updated_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)
                 ON CONFLICT (id) DO UPDATE SET provider_id = excluded.provider_id, config = excluded.config,
                   key_id = excluded.key_id, sealed = excluded.sealed, fingerprint = excluded.fingerprint,
                   updated_ms = excluded.updated_ms",
                params![record.id, family, record.provider_id, serde_json::to_string(&record.config)?, key_id, sealed, fingerprint, now],
            )?;
            let sql = format!("SELECT {MAPPING_COLS} FROM crypto_mappings WHERE id = ?1");
            let stored = tx.query_row(&sql, params![&record.id], mapping_row)??;
            let [on_create, on_update, _] = record.family.events();
            let event = NewEvent::new(
                if created { on_create } else { on_update },
                actor,
                json!({"id": stored.id, "provider_id": stored.provider_id, "fingerprint": stored.fingerprint, "config": stored.config}),
            );
            Ok(((stored, created), vec![event]))
        })
    }

    fn mapping_list(&self, family: CryptoFamily) -> StoreFuture<'_, Vec<MappingRecord>> {
        self.run(move |_, conn| {

            let rows = conn.query_map(&format!(
                "SELECT {MAPPING_COLS} FROM crypto_mappings WHERE family = ?1 ORDER BY created_ms, id"
            ), params![family.as_str()], mapping_row)?;
            rows.into_iter().collect()
        })
    }

    fn mapping_delete(
        &self,
        family: CryptoFamily,
        id: String,
        actor: String,
    ) -> StoreFuture<'_, ()> {
        self.write(move |_, tx| {
            let n = tx.execute(
                "DELETE FROM crypto_mappings WHERE id = ?1 AND family = ?2",
                params![id, family.as_str()],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound {
                    kind: "mapping",
                    id,
                });
            }
            let [_, _, on_delete] = family.events();
            Ok(((), vec![NewEvent::new(on_delete, actor, json!({"id": id}))]))
        })
    }

    fn exclusive(&self, name: String, wait: bool) -> StoreFuture<'_, Option<Exclusive>> {
        let locks = self.inner.locks.clone();
        Box::pin(async move {
            let Some(locks) = locks else {
                return Ok(Some(Exclusive::alone()));
            };
            tokio::task::spawn_blocking(move || locks.lock(&name, wait))
                .await
                .map_err(|_| StoreError::Task)?
        })
    }

    fn snapshot_placeholder(&self, name: String) -> StoreFuture<'_, Option<PlaceholderSecret>> {
        self.run(move |inner, tx| {
            ensure_config_intact(inner, tx)?;
            tx.query_opt(
                &format!("SELECT {PLACEHOLDER_SECRET_COLS} FROM placeholders WHERE name = ?1"),
                params![name],
                |r| placeholder_secret(inner, r),
            )
        })
    }

    fn snapshot_row(&self, key: SnapshotKey) -> StoreFuture<'_, Option<SnapshotRow>> {
        self.run(move |inner, tx| {
            ensure_config_intact(inner, tx)?;
            Ok(match key {
                SnapshotKey::Rule(id) => tx
                    .query_opt(
                        "SELECT id, body, created_ms FROM translation_rules WHERE id = ?1",
                        params![id.as_str()],
                        rule_row,
                    )?
                    .map(parse_rule)
                    .transpose()?
                    .map(SnapshotRow::Rule),
                SnapshotKey::Provider(id) => tx
                    .query_opt(
                        "SELECT id, hosts, passthrough, dangerous_allow_plaintext FROM providers WHERE id = ?1",
                        params![id],
                        provider_row,
                    )?
                    .map(SnapshotRow::Provider),
                SnapshotKey::Credential(id) => tx
                    .query_opt(
                        &format!("SELECT {CREDENTIAL_COLS} FROM service_credentials WHERE id = ?1"),
                        params![id.as_str()],
                        credential_row,
                    )?
                    .map(|(info, hash)| SnapshotRow::Credential(ServiceCredentialRecord { info, hash })),
                SnapshotKey::Workload(id) => tx
                    .query_opt(
                        "SELECT id, namespace, principal, attestation, source, prefix, created_ms, expires_ms, details, hash
                         FROM workload_tokens WHERE id = ?1 AND revoked_ms IS NULL AND expires_ms > ?2 AND prefix <> 'jwt'",
                        params![id, Timestamp::now().millis()],
                        |r| Ok((workload_row(r)?.0, r.get::<String>(9)?)),
                    )?
                    .map(|(info, hash)| SnapshotRow::Workload(info, hash)),
            })
        })
    }

    fn snapshot_data(&self) -> StoreFuture<'_, SnapshotData> {
        self.run(|inner, conn| {
            let tx = conn;
            ensure_config_intact(inner, tx)?;
            let placeholders = tx.query_map(
                &format!("SELECT {PLACEHOLDER_SECRET_COLS} FROM placeholders ORDER BY name"),
                params![],
                |r| placeholder_secret(inner, r),
            )?;
            let providers = {

                tx.query_map("SELECT id, hosts, passthrough, dangerous_allow_plaintext FROM providers ORDER BY id", params![], provider_row)?
            };
            let credentials = {

                tx.query_map(&format!(
                    "SELECT {CREDENTIAL_COLS} FROM service_credentials WHERE revoked_ms IS NULL ORDER BY id"
                ), params![], credential_row)?
                    .into_iter()
                    .map(|(info, hash)| ServiceCredentialRecord { info, hash })
                    .collect()
            };
            let revoked_credentials = tx
                .query_map(
                    &format!(
                        "SELECT {CREDENTIAL_COLS} FROM service_credentials WHERE revoked_ms IS NOT NULL ORDER BY id"
                    ),
                    params![],
                    credential_row,
                )?
                .into_iter()
                .map(|(info, hash)| ServiceCredentialRecord { info, hash })
                .collect();
            let rules = list_rules(tx)?;
            let policies = list_policies(tx)?;
            let namespaces = list_namespaces(tx)?;
            let workloads = {

                tx.query_map("SELECT id, namespace, principal, attestation, source, prefix, created_ms, expires_ms, details, hash
                     FROM workload_tokens WHERE revoked_ms IS NULL AND expires_ms > ?1 AND prefix <> 'jwt'", params![Timestamp::now().millis()], |r| Ok((workload_row(r)?.0, r.get::<String>(9)?)))?
            };
            let mappings = {

                let rows = tx.query_map(&format!("SELECT {MAPPING_COLS}, key_id, sealed FROM crypto_mappings ORDER BY id"), params![], |r| Ok((mapping_row(r)?, r.get::<String>(7)?, r.get::<Vec<u8>>(8)?)))?;
                rows.into_iter()
                    .map(|(rec, kid, blob)| {
                        let rec = rec?;
                        let secret = inner.sealer.open(&kid, &blob, &format!("mapping:{}", rec.id))?;
                        Ok((rec, secret))
                    })
                    .collect::<Result<Vec<_>, StoreError>>()?
            };
            let ssh_routes = {

                let rows = tx.query_map("SELECT id, route, key_id, sealed FROM ssh_routes ORDER BY created_ms, id", params![], |r| {
                        Ok((r.get::<String>(0)?, r.get::<String>(1)?, r.get::<Option<String>>(2)?, r.get::<Option<Vec<u8>>>(3)?))
                    })?;
                rows.into_iter()
                    .map(|(id, route, kid, blob)| {
                        let route: SshRoute = serde_json::from_str(&route)?;
                        let key = match (kid, blob) {
                            (Some(kid), Some(blob)) => Some(inner.sealer.open(&kid, &blob, &format!("ssh_route:{id}"))?),
                            _ => None,
                        };
                        Ok((route, key))
                    })
                    .collect::<Result<Vec<_>, StoreError>>()?
            };
            let ssh_sessions = {

                let rows = tx.query_map("SELECT session, token_hash FROM ssh_sessions WHERE state = 'active' ORDER BY started_ms", params![], |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?)))?;
                rows.into_iter()
                    .map(|(session, hash)| Ok((serde_json::from_str(&session)?, hash)))
                    .collect::<Result<Vec<_>, StoreError>>()?
            };
            Ok(SnapshotData {
                placeholders,
                providers,
                credentials,
                revoked_credentials,
                rules,
                policies,
                namespaces,
                workloads,
                mappings,
                ssh_routes,
                ssh_sessions,
            })
        })
    }

    fn ssh_route_upsert(
        &self,
        mut route: SshRoute,
        key: Option<Secret>,
        actor: String,
    ) -> StoreFuture<'_, (SshRoute, bool)> {
        self.write(move |inner, tx| {
            let existing: Option<i64> = tx
                .query_opt("SELECT created_ms FROM ssh_routes WHERE id = ?1", params![&route.id], |r| r.get(0))
                ?;
            let now = Timestamp::now().millis();
            let created_ms = existing.unwrap_or(now);
            route.created_at = Timestamp::from_millis(created_ms).to_rfc3339();
            route.updated_at = Timestamp::from_millis(now).to_rfc3339();
            route.target_key_fingerprint = key.as_ref().map(Secret::fingerprint);
            route.target_key = if key.is_some() { "route" } else { "gateway" }.to_owned();
            let (key_id, sealed) = match &key {
                Some(k) => {
                    let (kid, blob) = inner.sealer.seal(k, &format!("ssh_route:{}", route.id))?;
                    (Some(kid), Some(blob))
                }
                None => (None, None),
            };
            tx.execute(
                "INSERT INTO ssh_routes (id, route, key_id, sealed, created_ms, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (id) DO UPDATE SET route = excluded.route, key_id = excluded.key_id, sealed = excluded.sealed,
                   updated_ms = excluded.updated_ms",
                params![route.id, serde_json::to_string(&route)?, key_id, sealed, created_ms, now],
            )?;
            let created = existing.is_none();
            let event = NewEvent::new(
                if created { EventType::SshRouteCreated } else { EventType::SshRouteUpdated },
                actor,
                json!({"id": route.id, "user": route.user, "source_network": route.source_network,
                       "target": format!("{}:{}", route.target_host, route.target_port), "target_user": route.target_user,
                       "target_key": route.target_key, "target_key_fingerprint": route.target_key_fingerprint,
                       "inject_proxy": route.inject_proxy, "port_forwarding": route.port_forwarding}),
            );
            Ok(((route, created), vec![event]))
        })
    }

    fn ssh_route_list(&self) -> StoreFuture<'_, Vec<SshRoute>> {
        self.run(|_, conn| {
            let rows = conn.query_map(
                "SELECT route FROM ssh_routes ORDER BY created_ms, id",
                params![],
                |r| r.get::<String>(0),
            )?;
            rows.iter().map(|r| Ok(serde_json::from_str(r)?)).collect()
        })
    }

    fn ssh_route_delete(&self, id: String, actor: String) -> StoreFuture<'_, ()> {
        self.write(move |_, tx| {
            if tx.execute("DELETE FROM ssh_routes WHERE id = ?1", params![&id])? == 0 {
                return Err(StoreError::NotFound {
                    kind: "ssh route",
                    id,
                });
            }
            Ok((
                (),
                vec![NewEvent::new(
                    EventType::SshRouteDeleted,
                    actor,
                    json!({"id": id}),
                )],
            ))
        })
    }

    fn ssh_session_start(&self, session: SshSession, token_hash: String) -> StoreFuture<'_, ()> {
        self.write(move |_, tx| {
            let started = Timestamp::parse(&session.started_at).map(Timestamp::millis).unwrap_or_else(|_| Timestamp::now().millis());
            tx.execute(
                "INSERT INTO ssh_sessions (id, session, token_hash, state, started_ms) VALUES (?1, ?2, ?3, 'active', ?4)",
                params![session.id, serde_json::to_string(&session)?, token_hash, started],
            )?;
            let event = NewEvent::new(
                EventType::SshSessionStarted,
                session.principal.clone(),
                json!({"session": session.id, "user": session.user, "principal": session.principal, "route_id": session.route_id,
                       "source": session.source, "target": session.target, "auth": session.auth,
                       "proxy_source": session.proxy_source}),
            );
            Ok(((), vec![event]))
        })
    }

    fn ssh_session_end(
        &self,
        id: String,
        state: String,
        reason: String,
        actor: String,
    ) -> StoreFuture<'_, Option<SshSession>> {
        self.write(move |_, tx| {
            let row: Option<String> = tx
                .query_opt("SELECT session FROM ssh_sessions WHERE id = ?1 AND state = 'active'", params![&id], |r| r.get(0))
                ?;
            let Some(row) = row else {
                let known: Option<String> =
                    tx.query_opt("SELECT id FROM ssh_sessions WHERE id = ?1", params![&id], |r| r.get(0))?;
                if known.is_none() {
                    return Err(StoreError::NotFound { kind: "session", id });
                }
                return Ok((None, Vec::new()));
            };
            let mut session: SshSession = serde_json::from_str(&row)?;
            let now = Timestamp::now();
            session.state.clone_from(&state);
            session.ended_at = Some(now.to_rfc3339());
            session.end_reason = Some(reason.clone());
            tx.execute(
                "UPDATE ssh_sessions SET session = ?2, state = ?3 WHERE id = ?1",
                params![id, serde_json::to_string(&session)?, state],
            )?;
            let duration_ms = Timestamp::parse(&session.started_at).map(|t| now.millis() - t.millis()).unwrap_or(0);
            let event = NewEvent::new(
                EventType::SshSessionEnded,
                actor,
                json!({"session": session.id, "user": session.user, "principal": session.principal, "state": state,
                       "reason": reason, "duration_ms": duration_ms}),
            );
            Ok((Some(session), vec![event]))
        })
    }

    fn ssh_session_active(&self) -> StoreFuture<'_, Vec<SshSession>> {
        self.run(|_, conn| {
            let rows = conn.query_map(
                "SELECT session FROM ssh_sessions WHERE state = 'active' ORDER BY started_ms, id",
                params![],
                |r| r.get::<String>(0),
            )?;
            rows.iter().map(|r| Ok(serde_json::from_str(r)?)).collect()
        })
    }

    fn ssh_session_list(&self, limit: usize) -> StoreFuture<'_, Vec<SshSession>> {
        self.run(move |_, conn| {
            let rows = conn.query_map(
                "SELECT session FROM ssh_sessions ORDER BY started_ms DESC, id LIMIT ?1",
                params![i64::try_from(limit).unwrap_or(i64::MAX)],
                |r| r.get::<String>(0),
            )?;
            rows.iter().map(|r| Ok(serde_json::from_str(r)?)).collect()
        })
    }
}

const MAPPING_COLS: &str = "id, family, provider_id, config, fingerprint, created_ms, updated_ms";

fn mapping_row(r: &Row) -> Result<Result<MappingRecord, StoreError>, StoreError> {
    let family: String = r.get(1)?;
    let config: String = r.get(3)?;
    let (created, updated): (i64, i64) = (r.get(5)?, r.get(6)?);
    let id: String = r.get(0)?;
    let provider_id: String = r.get(2)?;
    let fingerprint: String = r.get(4)?;
    Ok((|| {
        Ok(MappingRecord {
            family: serde_json::from_value(serde_json::Value::String(family))?,
            id,
            provider_id,
            config: serde_json::from_str(&config)?,
            fingerprint,
            created_at: ts(created),
            updated_at: ts(updated),
        })
    })())
}

fn parse_time(field: &str, value: Option<&str>) -> Result<Option<i64>, StoreError> {
    value
        .map(|v| {
            Timestamp::parse(v)
                .map(Timestamp::millis)
                .map_err(|e| StoreError::Invalid(format!("`{field}`: {e}")))
        })
        .transpose()
}

fn webhook_row(r: &Row) -> Result<WebhookInfo, StoreError> {
    let types: String = r.get(2)?;
    Ok(WebhookInfo {
        id: r.get(0)?,
        url: r.get(1)?,
        event_types: serde_json::from_str(&types).unwrap_or_default(),
        secret_fingerprint: r.get(3)?,
        created_at: ts(r.get(4)?),
    })
}

const WEBHOOK_COLS: &str = "id, url, event_types, secret_fingerprint, created_ms";

fn delivery_row(r: &Row) -> Result<Delivery, StoreError> {
    Ok(Delivery {
        id: r.get(0)?,
        webhook_id: r.get(1)?,
        event_seq: r.get(2)?,
        event_type: r.get(3)?,
        status: r.get(4)?,
        attempts: u32::try_from(r.get::<i64>(5)?).unwrap_or(u32::MAX),
        last_status: r.get::<Option<i64>>(6)?.and_then(|s| u16::try_from(s).ok()),
        last_error: r.get(7)?,
        created_at: ts(r.get(8)?),
        updated_at: ts(r.get(9)?),
    })
}

const DELIVERY_COLS: &str = "id, webhook_id, event_seq, event_type, status, attempts, last_status, last_error, created_ms, updated_ms";

/// When the next placeholder or credential that has not yet expired will (epoch ms).
fn next_expiry(tx: &mut dyn Tx) -> Result<Option<i64>, StoreError> {
    tx.query_row(
        "SELECT MIN(at) FROM (
             SELECT expires_ms AS at FROM placeholders WHERE expires_ms IS NOT NULL AND expired_ms IS NULL
             UNION ALL
             SELECT expires_ms FROM service_credentials WHERE expires_ms IS NOT NULL AND revoked_ms IS NULL
         ) AS pending",
        params![],
        |r| r.get(0),
    )
}

fn list_namespaces(conn: &mut dyn Tx) -> Result<Vec<Namespace>, StoreError> {
    let rows = conn.query_map(
        "SELECT name, allowed_domains FROM namespaces ORDER BY name",
        params![],
        |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?)),
    )?;
    rows.into_iter()
        .map(|(name, domains)| {
            Ok(Namespace {
                name,
                allowed_domains: serde_json::from_str(&domains)?,
            })
        })
        .collect()
}

fn workload_row(r: &Row) -> Result<(WorkloadInfo, ()), StoreError> {
    let details: String = r.get(8)?;
    Ok((
        WorkloadInfo {
            id: r.get(0)?,
            namespace: r.get(1)?,
            principal: r.get(2)?,
            attestation: r.get(3)?,
            source: r.get(4)?,
            token_prefix: r.get(5)?,
            created_at: ts(r.get(6)?),
            expires_at: ts(r.get(7)?),
            details: serde_json::from_str(&details).unwrap_or_default(),
        },
        (),
    ))
}

fn list_policies(conn: &mut dyn Tx) -> Result<Vec<PolicyRecord>, StoreError> {
    let rows = conn.query_map(
        "SELECT id, description, body, created_ms FROM policies ORDER BY created_ms, id",
        params![],
        |r| {
            Ok(PolicyRecord {
                policy: CreatePolicy {
                    id: r.get(0)?,
                    description: r.get(1)?,
                    policy: r.get(2)?,
                },
                created_at: ts(r.get(3)?),
            })
        },
    )?;
    Ok(rows)
}

/// A subject token presented for an exchange, as the replay cache and the kill switch
/// see it.
struct Subject<'a> {
    principal: &'a str,
    jti: &'a str,
    jti_expires_ms: i64,
    attestation: &'a str,
    source: &'a str,
    /// The id of the bearer this exchange issues.
    bearer: &'a str,
}

/// The one admission of a subject token, for every exchange endpoint: refused while its
/// principal is revoked (the kill switch, a standing deny). A jti seen before within its
/// life is a replay, unless it comes again from the address that first exchanged it and
/// no admin revoked what it was exchanged for: a restarted workload re-reading the same
/// projected token or cached JWT-SVID, whose earlier bearer is then revoked
/// (`workload_token_reissued`). Else its jti is recorded. The refusal, if any, and the
/// events.
fn admit_subject(
    tx: &mut dyn Tx,
    s: &Subject<'_>,
    now: i64,
) -> Result<(Option<Exchanged>, Vec<NewEvent>), StoreError> {
    let killed: Option<String> = tx.query_opt(
        "SELECT id FROM principal_revocations WHERE principal = ?1",
        params![s.principal],
        |r| r.get(0),
    )?;
    if let Some(revocation) = killed {
        let event = NewEvent::new(
            EventType::WorkloadExchangeDenied,
            s.principal.to_owned(),
            json!({"reason": "principal_revoked", "revocation_id": revocation,
                   "attestor": s.attestation, "source": s.source}),
        );
        return Ok((Some(Exchanged::PrincipalRevoked), vec![event]));
    }
    tx.execute("DELETE FROM seen_jti WHERE expires_ms < ?1", params![now])?;
    let seen: Option<(Option<String>, Option<String>, i64)> = tx.query_opt(
        "SELECT source, bearer, revoked FROM seen_jti WHERE jti = ?1",
        params![s.jti],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let Some((source, previous, revoked)) = seen else {
        tx.execute(
            "INSERT INTO seen_jti (jti, expires_ms, source, bearer, revoked) VALUES (?1, ?2, ?3, ?4, 0)",
            params![s.jti, s.jti_expires_ms, s.source, s.bearer],
        )?;
        return Ok((None, Vec::new()));
    };
    let same_source = !s.source.is_empty() && source.as_deref() == Some(s.source);
    if !same_source || revoked != 0 {
        let reason = if revoked != 0 { "revoked" } else { "replay" };
        let event = NewEvent::new(
            EventType::WorkloadTokenReplayDenied,
            s.principal.to_owned(),
            json!({"jti": s.jti, "attestor": s.attestation, "source": s.source,
                   "first_source": source, "reason": reason}),
        );
        return Ok((Some(Exchanged::Replay), vec![event]));
    }
    let mut events = Vec::new();
    if let Some(prev) = &previous {
        let revoked = tx.execute(
            "UPDATE workload_tokens SET revoked_ms = ?2 WHERE id = ?1 AND revoked_ms IS NULL",
            params![prev, now],
        )?;
        if revoked > 0 {
            events.push(revoked_event(
                prev,
                s.principal,
                None,
                "reissued",
                "system",
                now,
            ));
        }
    }
    tx.execute(
        "UPDATE seen_jti SET bearer = ?2 WHERE jti = ?1",
        params![s.jti, s.bearer],
    )?;
    events.push(NewEvent::new(
        EventType::WorkloadTokenReissued,
        s.principal.to_owned(),
        json!({"jti": s.jti, "attestor": s.attestation, "source": s.source,
               "previous_workload_id": previous, "workload_id": s.bearer}),
    ));
    Ok((None, events))
}

/// `workload_token_revoked`, with a CAEP `session-revoked` event (OpenID Shared Signals)
/// that webhooks carry to the downstreams holding the token.
fn revoked_event(
    workload_id: &str,
    principal: &str,
    prefix: Option<&str>,
    reason: &str,
    actor: &str,
    now_ms: i64,
) -> NewEvent {
    NewEvent::new(
        EventType::WorkloadTokenRevoked,
        actor.to_owned(),
        json!({"workload_id": workload_id, "principal": principal, "token_prefix": prefix,
        "reason": reason,
        "caep": {
            "event_type": "https://schemas.openid.net/secevent/caep/event-type/session-revoked",
            "subject": {"format": "opaque", "id": workload_id},
            "event_timestamp": now_ms / 1000,
            "initiating_entity": if actor == "system" { "system" } else { "admin" },
            "reason_admin": {"en": reason},
        }}),
    )
}

fn list_rules(conn: &mut dyn Tx) -> Result<Vec<TranslationRule>, StoreError> {
    let rows = conn.query_map(
        "SELECT id, body, created_ms FROM translation_rules ORDER BY created_ms, id",
        params![],
        rule_row,
    )?;
    rows.into_iter().map(parse_rule).collect()
}

/// Translates our `*`-only glob to SQLite GLOB (escaping `?`, `[` and `]`) or to
/// PostgreSQL LIKE (escaping `%`, `_` and `\\`).
fn sql_glob(dialect: Dialect, pattern: &str) -> String {
    pattern
        .chars()
        .map(|c| match (dialect, c) {
            (Dialect::Sqlite, '?') => "[?]".to_owned(),
            (Dialect::Sqlite, '[') => "[[]".to_owned(),
            (Dialect::Sqlite, ']') => "[]]".to_owned(),
            (Dialect::Postgres, '*') => "%".to_owned(),
            (Dialect::Postgres, '%' | '_' | '\\') => format!("\\{c}"),
            (_, c) => c.to_string(),
        })
        .collect()
}

mod record;
#[cfg(test)]
mod tests;
