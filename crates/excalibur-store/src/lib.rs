//! Excalibur's persistence: the [`Store`] trait, its SQLite backend, sealing of secret
//! material, and the tamper-evident audit chain.
//!
//! **Owns:** schema and versioned migrations, AES-256-GCM envelope sealing under the
//! master key, the audit hash chain and its authenticated head, data-dir file helpers.
//!
//! **Never:** stores a secret or an issued token in the clear (values are sealed,
//! tokens hashed); writes an API change without its audit event in the same
//! transaction; is called from the proxy's request path.
//!
//! **Start at:** [`Store`], [`sqlite::SqliteStore::open`].

use std::future::Future;
use std::pin::Pin;

use excalibur_core::Secret;
use excalibur_core::api::Revocation;
use excalibur_core::api::{
    CreatePolicy, CreateTranslationRule, Delivery, Flow, Namespace, PlaceholderInfo, PolicyRecord,
    Provider, ServiceCredentialInfo, TokenInfo, TranslationRule, UpsertPlaceholder,
    UpsertedPlaceholder, WebhookInfo, WorkloadInfo,
};
use excalibur_core::api::{CryptoFamily, MappingRecord, PrincipalRevocation, SshRoute, SshSession};
use excalibur_core::audit::{AuditEvent, NewEvent, VerifyReport};
use excalibur_core::ids::{CredentialId, RuleId, TokenId};

mod db;
pub mod fs;
mod journal;
pub mod postgres;
pub mod seal;
pub mod sql;
pub mod sqlite;
#[cfg(test)]
pub(crate) mod testing;

/// A boxed future returned by [`Store`] methods, so the trait stays object-safe.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The named object does not exist.
    #[error("{kind} `{id}` does not exist")]
    NotFound {
        /// Object kind, e.g. `provider`.
        kind: &'static str,
        /// Its id.
        id: String,
    },
    /// The write conflicts with existing data.
    #[error("{0}")]
    Conflict(String),
    /// The write was rejected as invalid.
    #[error("{0}")]
    Invalid(String),
    /// Sealing or opening failed.
    #[error("sealing failed")]
    Seal(#[source] seal::SealError),
    /// The database failed.
    #[error("database error")]
    Db(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A column held a value of another type than expected (or no row came back).
    #[error("stored data is corrupt (column {0})")]
    Column(usize),
    /// A stored JSON column did not parse.
    #[error("stored data is corrupt")]
    Corrupt(#[source] serde_json::Error),
    /// The blocking task running the query failed.
    #[error("store task failed")]
    Task,
    /// The database is unreachable (reconnecting).
    #[error("the database is unavailable")]
    Unavailable,
    /// Configuration rows were changed outside Excalibur: their MAC does not verify.
    #[error("configuration rows were modified outside Excalibur")]
    Tampered,
}

/// How the store's database connection has fared since start (metrics and probes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionStats {
    /// False from a transaction that found the database away until one succeeds again.
    pub unavailable: bool,
    /// Times the database was found away.
    pub lost: u64,
    /// Times it came back.
    pub restored: u64,
}

/// Tracks losses and recoveries from the outcome of every transaction, and logs each
/// transition once (not once per failed request).
#[derive(Debug, Default)]
pub(crate) struct Health {
    unavailable: std::sync::atomic::AtomicBool,
    lost: std::sync::atomic::AtomicU64,
    restored: std::sync::atomic::AtomicU64,
}

impl Health {
    pub(crate) fn observe<T>(&self, outcome: &Result<T, StoreError>) {
        use std::sync::atomic::Ordering::SeqCst;
        match outcome {
            Err(StoreError::Unavailable) => {
                if !self.unavailable.swap(true, SeqCst) {
                    self.lost.fetch_add(1, SeqCst);
                    tracing::error!("database connection lost; reconnecting");
                }
            }
            // Any answer from the database (a constraint error included) means it is back.
            Err(StoreError::Task) => {}
            _ => {
                if self.unavailable.swap(false, SeqCst) {
                    self.restored.fetch_add(1, SeqCst);
                    tracing::warn!("database connection restored");
                }
            }
        }
    }

    pub(crate) fn stats(&self) -> ConnectionStats {
        use std::sync::atomic::Ordering::SeqCst;
        ConnectionStats {
            unavailable: self.unavailable.load(SeqCst),
            lost: self.lost.load(SeqCst),
            restored: self.restored.load(SeqCst),
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Db(Box::new(e))
    }
}

impl From<seal::SealError> for StoreError {
    fn from(e: seal::SealError) -> Self {
        StoreError::Seal(e)
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Corrupt(e)
    }
}

/// Filters for `GET /api/audit`.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Glob on the event type, e.g. `placeholder_*`.
    pub event_type: Option<String>,
    /// Exact principal.
    pub principal: Option<String>,
    /// Only events at or after this time (ms since epoch).
    pub since_ms: Option<i64>,
    /// Only events with seq greater than this.
    pub after_seq: Option<i64>,
    /// Only events with seq less than this (the cursor of an older page).
    pub before_seq: Option<i64>,
    /// Only events before this time (ms since epoch, exclusive).
    pub until_ms: Option<i64>,
    /// Maximum number of events.
    pub limit: usize,
    /// Oldest first (for consumers following the log) instead of newest first.
    pub oldest_first: bool,
}

/// Filters for `GET /api/flows`.
#[derive(Debug, Clone, Default)]
pub struct FlowQuery {
    /// Exact principal.
    pub principal: Option<String>,
    /// Exact host.
    pub host: Option<String>,
    /// `allow` or `deny`.
    pub decision: Option<String>,
    /// Only flows at or after this time (ms since epoch).
    pub since_ms: Option<i64>,
    /// Only flows before this time (ms since epoch, exclusive).
    pub until_ms: Option<i64>,
    /// Only flows recorded after the one with this `seq` (a newer page).
    pub after_seq: Option<i64>,
    /// Only flows recorded before the one with this `seq` (an older page).
    pub before_seq: Option<i64>,
    /// Maximum number of flows.
    pub limit: usize,
    /// Oldest recorded first instead of newest first (to page toward newer flows).
    pub oldest_first: bool,
}

/// A placeholder with its opened value, for building the proxy's snapshot.
#[derive(Debug, Clone)]
pub struct PlaceholderSecret {
    /// Placeholder name.
    pub name: String,
    /// Provider id.
    pub provider_id: String,
    /// Route family.
    pub route_family: String,
    /// The real value.
    pub value: Secret,
    /// When it stops being redeemable (Unix ms), if it expires.
    pub expires_ms: Option<i64>,
}

/// A service credential with its token hash, for building the proxy's snapshot.
#[derive(Debug, Clone)]
pub struct ServiceCredentialRecord {
    /// The listed form.
    pub info: ServiceCredentialInfo,
    /// Hex SHA-256 of the token.
    pub hash: String,
}

/// Everything the proxy's snapshot is built from, read in one transaction.
#[derive(Debug, Clone, Default)]
pub struct SnapshotData {
    /// Placeholders with values opened.
    pub placeholders: Vec<PlaceholderSecret>,
    /// Providers.
    pub providers: Vec<Provider>,
    /// Live (unrevoked) service credentials.
    pub credentials: Vec<ServiceCredentialRecord>,
    /// Revoked ones, so a request that still presents one is attributed to it.
    pub revoked_credentials: Vec<ServiceCredentialRecord>,
    /// Translation rules.
    pub rules: Vec<TranslationRule>,
    /// Operator Cedar policies.
    pub policies: Vec<PolicyRecord>,
    /// Namespaces and their egress lists.
    pub namespaces: Vec<Namespace>,
    /// Live workload bearers with their token hashes.
    pub workloads: Vec<(WorkloadInfo, String)>,
    /// Crypto mappings with their secret material opened.
    pub mappings: Vec<(MappingRecord, Secret)>,
    /// SSH routes with their own target keys opened (`None`: the gateway's key).
    pub ssh_routes: Vec<(SshRoute, Option<Secret>)>,
    /// Active SSH sessions with their proxy-token hashes.
    pub ssh_sessions: Vec<(SshSession, String)>,
}

/// A proxy bearer to issue for an attested workload.
#[derive(Debug, Clone)]
pub struct WorkloadIssue {
    /// The listed form (expires_at set).
    pub info: WorkloadInfo,
    /// Hex SHA-256 of the bearer.
    pub hash: String,
    /// The subject token's id: presented twice within its life, it is a replay.
    pub jti: String,
    /// When the jti may be forgotten (the subject token's expiry).
    pub jti_expires_ms: i64,
}

/// A bulk import (`POST /api/import`): written in one transaction, all or nothing.
#[derive(Debug, Default)]
pub struct ImportBatch {
    /// Providers (created or replaced).
    pub providers: Vec<Provider>,
    /// Placeholders (created or rotated).
    pub placeholders: Vec<UpsertPlaceholder>,
    /// Translation rules (created).
    pub rules: Vec<CreateTranslationRule>,
    /// Service credentials with their token hashes (created).
    pub credentials: Vec<(ServiceCredentialInfo, String)>,
}

/// What an import wrote.
#[derive(Debug, Default)]
pub struct Imported {
    /// Providers as stored.
    pub providers: Vec<Provider>,
    /// Placeholders as stored.
    pub placeholders: Vec<UpsertedPlaceholder>,
    /// Rules as stored.
    pub rules: Vec<TranslationRule>,
}

/// What became of an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exchanged {
    /// The bearer was issued.
    Issued,
    /// The bearer was issued to the address the subject token was first exchanged
    /// from (a restart), and the bearer issued then is revoked.
    Reissued,
    /// The subject token was exchanged before (within its life).
    Replay,
    /// The principal is revoked (the kill switch) until an admin lifts it.
    PrincipalRevoked,
}

/// What an expiry sweep did ([`Store::expire_due`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    /// Placeholders and credentials marked expired.
    pub expired: usize,
    /// When the next one is due (epoch ms), if any will.
    pub next_ms: Option<i64>,
}

/// A cluster-wide lock, held until dropped (see [`Store::exclusive`]).
pub struct Exclusive(Option<postgres::OwnedClient>);

impl Exclusive {
    /// A lock held by `client`'s connection.
    pub(crate) fn held(client: postgres::OwnedClient) -> Self {
        Self(Some(client))
    }

    /// The lock of a single-process backend: nobody else can hold it.
    pub(crate) fn alone() -> Self {
        Self(None)
    }

    /// False once the lock was lost (its PostgreSQL connection closed).
    pub fn is_held(&self) -> bool {
        self.0.as_ref().is_none_or(|c| !c.is_closed())
    }
}

impl std::fmt::Debug for Exclusive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Exclusive").field(&self.is_held()).finish()
    }
}

/// One transaction's worth of records ([`Store::record_with_intents`]).
#[derive(Debug, Clone, Default)]
pub struct RecordBatch {
    /// Completed flows, each with its `flow_recorded` event among `events`.
    pub flows: Vec<Flow>,
    /// Audit events, appended to the chain in order.
    pub events: Vec<NewEvent>,
    /// Write-ahead flows about to carry a secret.
    pub intents: Vec<Flow>,
    /// The instance id that marks `intents` in flight.
    pub gateway: String,
    /// On disk before the commit returns (a power loss loses none), not only committed
    /// (a crash of this process loses none): `[audit] durability = "synced"`.
    pub synced: bool,
}

/// The persistence seam: SQLite now, PostgreSQL later. Every write that changes
/// configuration takes the acting principal and appends its audit events in the same
/// transaction, so nothing is half-written and nothing goes unrecorded.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// How the database connection has fared since start (no I/O).
    fn connection_stats(&self) -> ConnectionStats;

    /// Stores a new API token (hash only).
    fn token_create(&self, info: TokenInfo, hash: String, actor: String) -> StoreFuture<'_, ()>;
    /// Finds a live token by the hash of the presented value.
    fn token_by_hash(&self, hash: String) -> StoreFuture<'_, Option<TokenInfo>>;
    /// Lists all tokens, revoked ones included.
    fn token_list(&self) -> StoreFuture<'_, Vec<TokenInfo>>;
    /// Revokes a token.
    fn token_revoke(&self, id: TokenId, actor: String) -> StoreFuture<'_, TokenInfo>;

    /// Creates or replaces a provider.
    fn provider_upsert(&self, provider: Provider, actor: String) -> StoreFuture<'_, Provider>;
    /// Lists providers.
    fn provider_list(&self) -> StoreFuture<'_, Vec<Provider>>;
    /// Deletes a provider that no placeholder references.
    fn provider_delete(&self, id: String, actor: String) -> StoreFuture<'_, ()>;

    /// Upserts a placeholder atomically; emits `placeholder_updated`, and
    /// `placeholder_rotated` when the value changed.
    fn placeholder_upsert(
        &self,
        req: UpsertPlaceholder,
        actor: String,
    ) -> StoreFuture<'_, UpsertedPlaceholder>;
    /// Lists placeholders (fingerprints only).
    fn placeholder_list(&self) -> StoreFuture<'_, Vec<PlaceholderInfo>>;
    /// Deletes a placeholder.
    fn placeholder_delete(&self, name: String, actor: String) -> StoreFuture<'_, ()>;

    /// Stores a new service credential (hash only).
    fn credential_create(
        &self,
        info: ServiceCredentialInfo,
        hash: String,
        actor: String,
    ) -> StoreFuture<'_, ()>;
    /// Writes a bulk import in one transaction, with one audit event per object as the
    /// single-object writes have.
    fn import(&self, batch: ImportBatch, actor: String) -> StoreFuture<'_, Imported>;
    /// Lists service credentials, revoked ones included.
    fn credential_list(&self) -> StoreFuture<'_, Vec<ServiceCredentialInfo>>;
    /// Revokes a credential with a reason; revoking twice keeps the first reason.
    fn credential_revoke(
        &self,
        id: CredentialId,
        reason: String,
        actor: String,
    ) -> StoreFuture<'_, ServiceCredentialInfo>;

    /// Stores a translation rule.
    fn rule_create(
        &self,
        rule: CreateTranslationRule,
        actor: String,
    ) -> StoreFuture<'_, TranslationRule>;
    /// Lists translation rules.
    fn rule_list(&self) -> StoreFuture<'_, Vec<TranslationRule>>;
    /// Deletes a translation rule.
    fn rule_delete(&self, id: RuleId, actor: String) -> StoreFuture<'_, ()>;

    /// Stores an operator policy (validated by the caller); ids are unique.
    fn policy_create(&self, policy: CreatePolicy, actor: String) -> StoreFuture<'_, PolicyRecord>;
    /// Lists operator policies.
    fn policy_list(&self) -> StoreFuture<'_, Vec<PolicyRecord>>;
    /// Deletes an operator policy.
    fn policy_delete(&self, id: String, actor: String) -> StoreFuture<'_, ()>;

    /// Stores a webhook with its sealed signing secret.
    fn webhook_create(
        &self,
        info: WebhookInfo,
        secret: Secret,
        actor: String,
    ) -> StoreFuture<'_, ()>;
    /// Lists webhooks (fingerprints only).
    fn webhook_list(&self) -> StoreFuture<'_, Vec<WebhookInfo>>;
    /// Webhooks with their opened secrets, for the dispatcher.
    fn webhook_secrets(&self) -> StoreFuture<'_, Vec<(WebhookInfo, Secret)>>;
    /// Deletes a webhook and its pending deliveries.
    fn webhook_delete(&self, id: String, actor: String) -> StoreFuture<'_, ()>;
    /// Enqueues deliveries and advances the named cursor, atomically.
    fn delivery_enqueue(
        &self,
        deliveries: Vec<Delivery>,
        cursor: (String, i64),
    ) -> StoreFuture<'_, ()>;
    /// Pending deliveries whose next attempt is due.
    fn deliveries_due(&self, limit: usize) -> StoreFuture<'_, Vec<Delivery>>;
    /// Records an attempt's outcome.
    fn delivery_update(
        &self,
        id: String,
        status: String,
        last_status: Option<u16>,
        last_error: Option<String>,
        next_attempt_ms: i64,
    ) -> StoreFuture<'_, ()>;
    /// A webhook's delivery log, newest first.
    fn delivery_list(&self, webhook_id: String, limit: usize) -> StoreFuture<'_, Vec<Delivery>>;
    /// A follower's position in the audit log.
    fn cursor_get(&self, name: String) -> StoreFuture<'_, Option<i64>>;
    /// Marks placeholders and credentials past `expires_at` as expired (credentials are
    /// revoked) and emits `credential_expired`; returns how many, and when the next one
    /// is due (none when nothing left will expire). The decision enforces expiry on its
    /// own; this records it.
    fn expire_due(&self) -> StoreFuture<'_, Expiry>;

    /// Creates or replaces a namespace.
    fn namespace_upsert(&self, ns: Namespace, actor: String) -> StoreFuture<'_, Namespace>;
    /// Lists namespaces.
    fn namespace_list(&self) -> StoreFuture<'_, Vec<Namespace>>;
    /// Records a jti and issues the bearer with `workload_attested` and
    /// `workload_token_issued`, atomically; a jti seen before within its life writes
    /// `workload_token_replay_denied` instead ([`Exchanged::Replay`]), and an exchange for
    /// a revoked principal writes `workload_exchange_denied`
    /// ([`Exchanged::PrincipalRevoked`]).
    fn workload_exchange(&self, issue: WorkloadIssue) -> StoreFuture<'_, Exchanged>;
    /// Revokes live workload bearers matching the revocation; returns how many.
    fn workload_revoke(&self, revocation: Revocation, actor: String) -> StoreFuture<'_, usize>;
    /// A workload bearer or audience token by the hash of its value, with whether it is
    /// live now (not revoked, not expired).
    fn workload_by_hash(&self, hash: String) -> StoreFuture<'_, Option<(WorkloadInfo, bool)>>;
    /// Re-authenticates the configuration rows as they are now (after an operator edited
    /// the database on purpose), with a `configuration_accepted` event.
    fn config_accept(&self, actor: String) -> StoreFuture<'_, ()>;
    /// The standing revocations of principals (the kill switch), newest first.
    fn principal_revocation_list(&self) -> StoreFuture<'_, Vec<PrincipalRevocation>>;
    /// Lifts a standing revocation (`principal_revocation_lifted`); the principal may
    /// exchange again. Errors: unknown id.
    fn principal_revocation_delete(&self, id: String, actor: String) -> StoreFuture<'_, ()>;
    /// Lists workloads, newest first.
    fn workload_list(&self) -> StoreFuture<'_, Vec<WorkloadInfo>>;

    /// Writes a batch of flows and audit events in one transaction.
    fn record(&self, flows: Vec<Flow>, events: Vec<NewEvent>) -> StoreFuture<'_, ()> {
        self.record_with_intents(std::sync::Arc::new(RecordBatch {
            flows,
            events,
            ..RecordBatch::default()
        }))
    }
    /// [`Store::record`], plus the write-ahead rows of flows about to carry a secret
    /// (`intents`, marked in flight by `gateway`), all in one transaction. A flow in
    /// `flows` whose intent was written before replaces it (and clears the mark). The
    /// batch is shared so that a caller who retries it keeps it without a copy.
    fn record_with_intents(&self, batch: std::sync::Arc<RecordBatch>) -> StoreFuture<'_, ()>;
    /// [`Store::record_with_intents`] on the calling thread, which blocks until the
    /// commit: for a recorder with a thread of its own (one handoff fewer per commit).
    /// Never call it on an async worker.
    fn record_with_intents_here(&self, batch: &RecordBatch) -> Result<(), StoreError>;
    /// The seq of the newest audit event (0 for an empty log): one row read, for loops
    /// that must know whether anything is new before reading it.
    fn audit_head_seq(&self) -> StoreFuture<'_, u64>;
    /// The Merkle leaf hashes of events `after_seq + 1 ..= to_seq` (fewer when the log
    /// is shorter), in order.
    fn audit_leaves(
        &self,
        after_seq: u64,
        to_seq: u64,
    ) -> StoreFuture<'_, Vec<excalibur_core::merkle::Hash>>;
    /// The newest checkpoint and the tree's frontier at it.
    fn checkpoint_latest(
        &self,
    ) -> StoreFuture<
        '_,
        Option<(
            excalibur_core::merkle::Checkpoint,
            excalibur_core::merkle::Frontier,
        )>,
    >;
    /// Checkpoints with `tree_size > after`, oldest first, at most `limit`.
    fn checkpoint_list(
        &self,
        after: u64,
        limit: usize,
    ) -> StoreFuture<'_, Vec<excalibur_core::merkle::Checkpoint>>;
    /// Stores a checkpoint with its frontier, and its `audit_checkpoint` event.
    fn checkpoint_append(
        &self,
        checkpoint: excalibur_core::merkle::Checkpoint,
        frontier: excalibur_core::merkle::Frontier,
    ) -> StoreFuture<'_, ()>;
    /// The gateway instances that have flows in flight (intents never completed).
    fn flow_gateways_in_flight(&self) -> StoreFuture<'_, Vec<String>>;
    /// Completes `gateway`'s flows still in flight as `interrupted` (it died with them
    /// open), each with its `flow_recorded` event; how many.
    fn flows_interrupted(&self, gateway: String) -> StoreFuture<'_, usize>;
    /// Lists flows, newest first.
    fn flow_list(&self, query: FlowQuery) -> StoreFuture<'_, Vec<Flow>>;

    /// Lists audit events, newest first.
    fn audit_list(&self, query: AuditQuery) -> StoreFuture<'_, Vec<AuditEvent>>;
    /// Verifies the whole chain against the authenticated head.
    fn audit_verify(&self) -> StoreFuture<'_, VerifyReport>;

    /// Reads a sealed setting (e.g. the CA private key).
    fn setting_get(&self, name: String) -> StoreFuture<'_, Option<Secret>>;
    /// Writes a sealed setting.
    fn setting_put(&self, name: String, value: Secret) -> StoreFuture<'_, ()>;

    /// Creates a crypto mapping, or replaces the one with the same id and family (a
    /// rotation). `secret` is sealed to the row. Returns the record and whether it is new.
    fn mapping_upsert(
        &self,
        record: MappingRecord,
        secret: Secret,
        actor: String,
    ) -> StoreFuture<'_, (MappingRecord, bool)>;
    /// Mappings of one family.
    fn mapping_list(&self, family: CryptoFamily) -> StoreFuture<'_, Vec<MappingRecord>>;
    /// Deletes a mapping.
    fn mapping_delete(
        &self,
        family: CryptoFamily,
        id: String,
        actor: String,
    ) -> StoreFuture<'_, ()>;

    /// Creates or replaces an SSH route (`key`: its own sealed target key) with
    /// `ssh_route_created|updated`; returns the route and whether it was created.
    fn ssh_route_upsert(
        &self,
        route: SshRoute,
        key: Option<Secret>,
        actor: String,
    ) -> StoreFuture<'_, (SshRoute, bool)>;
    /// SSH routes, oldest first.
    fn ssh_route_list(&self) -> StoreFuture<'_, Vec<SshRoute>>;
    /// Deletes an SSH route with `ssh_route_deleted`.
    fn ssh_route_delete(&self, id: String, actor: String) -> StoreFuture<'_, ()>;
    /// Records a new active session (its proxy token by hash) with `ssh_session_started`.
    fn ssh_session_start(&self, session: SshSession, token_hash: String) -> StoreFuture<'_, ()>;
    /// Ends an active session with `ssh_session_ended` (`state`: `ended` or `revoked`);
    /// `None` when it was not active.
    fn ssh_session_end(
        &self,
        id: String,
        state: String,
        reason: String,
        actor: String,
    ) -> StoreFuture<'_, Option<SshSession>>;
    /// Sessions, newest first (at most `limit`).
    fn ssh_session_list(&self, limit: usize) -> StoreFuture<'_, Vec<SshSession>>;
    /// Every active session, oldest first.
    fn ssh_session_active(&self) -> StoreFuture<'_, Vec<SshSession>>;
    /// Takes the cluster-wide lock `name` (first-start initialization, background
    /// leaders), held until the guard drops: waiting for it (`wait`), or `None` at once
    /// when another replica holds it. SQLite serves one process: always granted.
    fn exclusive(&self, name: String, wait: bool) -> StoreFuture<'_, Option<Exclusive>>;
    /// One placeholder as [`Store::snapshot_data`] gives it, after the same check that
    /// the configuration rows are intact (a rotation patches the snapshot with it);
    /// `None` when there is no such placeholder.
    fn snapshot_placeholder(&self, name: String) -> StoreFuture<'_, Option<PlaceholderSecret>>;
    /// One row as [`Store::snapshot_data`] gives it, after the same check that the
    /// configuration rows are intact (a write patches the snapshot with it); `None`
    /// when there is no such row (a workload bearer: none live).
    fn snapshot_row(&self, key: SnapshotKey) -> StoreFuture<'_, Option<SnapshotRow>>;
    /// Reads everything the proxy snapshot needs, values opened, in one transaction.
    fn snapshot_data(&self) -> StoreFuture<'_, SnapshotData>;
}

/// Which row [`Store::snapshot_row`] reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotKey {
    /// A translation rule.
    Rule(RuleId),
    /// A provider.
    Provider(String),
    /// A service credential, live or revoked.
    Credential(CredentialId),
    /// A live workload bearer, by id.
    Workload(String),
}

/// A row for the proxy snapshot ([`Store::snapshot_row`]).
#[derive(Debug, Clone)]
pub enum SnapshotRow {
    /// A translation rule.
    Rule(TranslationRule),
    /// A provider.
    Provider(Provider),
    /// A service credential (revoked when `revoked_at` is set).
    Credential(ServiceCredentialRecord),
    /// A live workload bearer and its token hash.
    Workload(WorkloadInfo, String),
}
