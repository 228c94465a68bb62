//! Excalibur's control plane: the REST API under `/api`, health endpoints, and the
//! OpenAPI document.
//!
//! **Owns:** routing, bearer-token authentication and roles, input validation,
//! `application/problem+json` errors, the OpenAPI document kept in this crate.
//!
//! **Never:** returns or logs a secret value or an issued token after creation;
//! writes without an audit event (the store appends it in the same transaction);
//! answers a write before the proxy's snapshot reflects it.
//!
//! **Start at:** [`router`], [`ApiState`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use excalibur_store::Store;

mod auth;
mod docs;
mod error;
mod events;
mod exchange;

pub use exchange::ExchangeConfig;

/// The TCP peer of a request, inserted by the listener (never from a header).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub std::net::SocketAddr);
mod extract;
mod handlers;
mod issuer;
pub mod ui;
mod validate;

pub use error::ApiError;

/// Largest request body the API accepts.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Largest `POST /api/import` body.
pub const IMPORT_MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// The OpenAPI document, generated from the handlers' operations and the DTOs' schemas.
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi as _;
    handlers::all().split(docs::ApiDoc::openapi()).1
}

/// Every route the API serves, as `(method, path)`: the operations of [`openapi`].
pub fn routes() -> Vec<(String, String)> {
    let doc = serde_json::to_value(openapi()).unwrap_or_default();
    let mut out = Vec::new();
    if let Some(paths) = doc.get("paths").and_then(serde_json::Value::as_object) {
        for (path, item) in paths {
            for method in item.as_object().into_iter().flat_map(|m| m.keys()) {
                out.push((method.clone(), path.clone()));
            }
        }
    }
    out
}

/// Rebuilds the proxy's snapshot after a committed write; the API awaits it before
/// answering, so a write is in effect for every request that starts after the response.
pub type Reloader = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Brings the proxy's snapshot up to date after a committed write to one row: the row
/// is read back and only what it touches changes (what cannot change alone rebuilds
/// the snapshot); awaited like [`Reloader`].
pub type ChangeNotifier =
    Arc<dyn Fn(Changed) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// The row one committed write changed ([`ChangeNotifier`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changed {
    /// A placeholder upserted or deleted, by name.
    Placeholder(String),
    /// A translation rule created or deleted.
    Rule(excalibur_core::ids::RuleId),
    /// A provider upserted or deleted, by id.
    Provider(String),
    /// A service credential created or revoked.
    Credential(excalibur_core::ids::CredentialId),
    /// A workload bearer issued, by id.
    Workload(String),
}

/// Shared state of the API handlers.
#[derive(Clone)]
pub struct ApiState {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The Excalibur CA certificate, PEM.
    pub ca_pem: Arc<str>,
    /// Called after every write that changes what the proxy serves.
    pub reload: Reloader,
    /// Called instead of `reload` after a write to one row.
    pub changed: ChangeNotifier,
    /// The policy currently in force (for dry runs).
    pub policy: Arc<dyn Fn() -> Arc<excalibur_policy::Policy> + Send + Sync>,
    /// Web UI sessions.
    pub sessions: Arc<ui::Sessions>,
    /// Workload issuers trusted for token exchange (Kubernetes, SPIFFE, OIDC).
    pub attestors: Arc<excalibur_identity::attest::Attestors>,
    /// Token exchange settings.
    pub exchange: ExchangeConfig,
    /// Keys that sign audience-scoped workload tokens.
    pub signing: Arc<tokio::sync::RwLock<excalibur_identity::mint::SigningKeys>>,
    /// Every registered metric, for `/metrics`.
    pub registry: Arc<prometheus_client::registry::Registry>,
    /// API-side metrics.
    pub metrics: ApiMetrics,
    /// Presigns a URL with a SigV4 mapping from the proxy's current snapshot.
    pub presign: Presigner,
    /// Reads a private key PEM: `(alg, kid)`, or `None` when it is not a usable key.
    pub key_info: KeyInfo,
    /// Checks an mTLS client certificate chain and key: the leaf's fingerprint, or why not.
    pub client_identity: ClientIdentity,
    /// The NetBird sync's status and peers.
    pub netbird: NetbirdSource,
    /// Generates a DPoP proof key: `(sealed PKCS#8, jkt)`.
    pub dpop_keygen: Arc<dyn Fn() -> Option<(excalibur_core::Secret, String)> + Send + Sync>,
    /// The SSH gateway's hooks.
    pub ssh: SshHooks,
    /// What `/healthz` and `/readyz` report (wired by the binary).
    pub probes: Arc<dyn Probes>,
    /// The audit checkpoint signing key's public half (PEM `PUBLIC KEY`).
    pub checkpoint_key_pem: Arc<str>,
    /// Checks a webhook receiver URL the way deliveries will (its host resolved, private,
    /// loopback and metadata addresses refused unless configured): why not, if not.
    pub check_receiver: ReceiverCheck,
    /// The proxy's and SSH gateway's recording queue: readers of flows and audit
    /// events wait for what was queued before them ([`ApiState::settled`]).
    pub recorder: Arc<dyn excalibur_core::record::Recorder>,
}

impl ApiState {
    /// Waits (at most 2 s) until every flow and event queued before the call is
    /// written, so a list read after a request shows that request.
    pub(crate) async fn settled(&self) {
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(2), self.recorder.settle()).await;
    }
}

/// See [`ApiState::check_receiver`].
pub type ReceiverCheck = Arc<
    dyn Fn(
            String,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>
        + Send
        + Sync,
>;

/// What a probe reports. The probe answers 503 when `problems` is not empty.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ProbeReport {
    /// Liveness: why a restart is needed. Readiness: why this process should get no
    /// traffic now (a state other replicas do not share).
    pub problems: Vec<&'static str>,
    /// Readiness only: states worth an operator's attention that do not justify draining
    /// this replica (shared by every replica, or early warnings).
    pub degraded: Vec<&'static str>,
    /// Figures behind them (snapshot age, CA expiry, database counters).
    pub details: serde_json::Map<String, serde_json::Value>,
}

/// The binary's view of its own health, for the probes. Cheap and without I/O.
pub trait Probes: Send + Sync {
    /// Liveness: can this process still recover by itself?
    fn liveness(&self) -> ProbeReport;
    /// Readiness; `database_answers`: the store answered a query just now.
    fn readiness(&self, database_answers: bool) -> ProbeReport;
}

/// What the API needs of the SSH gateway (wired by the binary).
#[derive(Clone)]
pub struct SshHooks {
    /// The gateway's keys and trusted CAs.
    pub info: excalibur_core::api::SshGatewayInfo,
    /// Closes a live session at once; false when it is not live on this process.
    pub revoke: Arc<dyn Fn(&str) -> bool + Send + Sync>,
    /// Parses an OpenSSH public-key line: its fingerprint, or why not.
    pub check_public: fn(&str) -> Result<String, String>,
    /// Parses an OpenSSH private key: its public line, or why not.
    pub check_private: fn(&excalibur_core::Secret) -> Result<String, String>,
}

/// Checks a client certificate PEM and its key (wired by the binary to the proxy).
pub type ClientIdentity =
    Arc<dyn Fn(&str, &excalibur_core::Secret) -> Result<String, String> + Send + Sync>;

/// Reads the NetBird sync's current view (wired by the binary).
pub type NetbirdSource = Arc<
    dyn Fn() -> (
            excalibur_core::api::NetbirdStatus,
            Vec<excalibur_core::api::NetbirdPeer>,
        ) + Send
        + Sync,
>;

/// Reads a private key PEM for a JWT-bearer mapping (wired by the binary to mediation).
pub type KeyInfo = Arc<dyn Fn(&excalibur_core::Secret) -> Option<(String, String)> + Send + Sync>;

/// Presigns a URL with a SigV4 mapping (wired by the binary to the proxy's snapshot).
pub type Presigner = Arc<
    dyn Fn(excalibur_core::api::PresignRequest) -> Result<Presigned, PresignFailure> + Send + Sync,
>;

/// A presigned URL with what the audit event records about it.
#[derive(Debug, Clone)]
pub struct Presigned {
    /// The response body.
    pub url: excalibur_core::api::PresignedUrl,
    /// Host signed for.
    pub host: String,
    /// Path signed (without the query).
    pub path: String,
    /// Method signed.
    pub method: String,
}

/// Why a presign request failed.
#[derive(Debug, Clone)]
pub enum PresignFailure {
    /// No SigV4 mapping has that id.
    UnknownMapping,
    /// The request does not fit the mapping (path, host, method or expiry).
    Invalid(String),
}

/// Labels of `excalibur_exchange_results_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct ExchangeLabels {
    /// `issued`, `invalid_request`, `unsupported_grant_type`, `invalid_target`, `replay`.
    pub result: String,
}

/// Metrics the API updates.
#[derive(Debug, Clone, Default)]
pub struct ApiMetrics {
    /// Token exchange outcomes.
    pub exchange: prometheus_client::metrics::family::Family<
        ExchangeLabels,
        prometheus_client::metrics::counter::Counter,
    >,
}

impl ApiMetrics {
    /// Creates and registers the API metrics.
    pub fn register(registry: &mut prometheus_client::registry::Registry) -> Self {
        let m = Self::default();
        registry.register(
            "excalibur_exchange_results",
            "Token exchange outcomes",
            m.exchange.clone(),
        );
        m
    }

    pub(crate) fn exchange(&self, result: &str) {
        self.exchange
            .get_or_create(&ExchangeLabels {
                result: result.to_owned(),
            })
            .inc();
    }
}

impl std::fmt::Debug for SshHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshHooks")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// Builds the API router.
pub fn router(state: ApiState) -> Router {
    use utoipa::OpenApi as _;
    let (api, _) = handlers::all().split(docs::ApiDoc::openapi());
    api.merge(ui::routes())
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    /// The generated document is valid JSON with the frame, a schema for every `$ref`, and
    /// every operation tagged, summarized and answering something.
    #[test]
    fn the_document_is_complete() {
        let doc = serde_json::to_value(super::openapi()).unwrap();
        assert_eq!(doc["info"]["title"], "Excalibur API");
        assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let text = doc.to_string();
        for r in text.split("\"#/components/schemas/").skip(1) {
            let name = r.split('"').next().unwrap();
            assert!(schemas.contains_key(name), "no schema for $ref {name}");
        }
        let routes = super::routes();
        assert!(routes.len() >= 70, "{}", routes.len());
        for (method, path) in &routes {
            let op = &doc["paths"][path][method];
            assert!(op["summary"].is_string(), "{method} {path}: no summary");
            assert!(op["tags"][0].is_string(), "{method} {path}: no tag");
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path}"
            );
        }
        // Secrets are write-only in requests, shown-once values read-only.
        assert_eq!(schemas["SecretString"]["writeOnly"], true);
        assert_eq!(schemas["ShownOnce"]["readOnly"], true);
        assert_eq!(
            schemas["UpsertPlaceholder"]["properties"]["real_value"]["$ref"],
            "#/components/schemas/SecretString"
        );
        assert_eq!(
            schemas["CreatedToken"]["allOf"][1]["properties"]["token"]["$ref"],
            "#/components/schemas/ShownOnce"
        );
    }
}
