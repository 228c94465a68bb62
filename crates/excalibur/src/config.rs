//! Configuration in two steps: `Raw` (TOML file, `EXCALIBUR_*` env and flags) is
//! resolved into [`Config`], reporting every error at once.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use serde::Deserialize;

/// Flags and environment of `excalibur serve`; each overrides the config file.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// TOML config file.
    #[arg(long, env = "EXCALIBUR_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (SQLite database, master key, CA, admin token).
    #[arg(long, env = "EXCALIBUR_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// API, UI and TLS proxy listener [default: 127.0.0.1:8443].
    #[arg(long, env = "EXCALIBUR_API_LISTEN")]
    api_listen: Option<SocketAddr>,
    /// Plain forward-proxy listener [default: 127.0.0.1:3128].
    #[arg(long, env = "EXCALIBUR_PROXY_LISTEN")]
    proxy_listen: Option<SocketAddr>,
    /// SSH gateway listener [default: 127.0.0.1:2222].
    #[arg(long, env = "EXCALIBUR_SSH_LISTEN")]
    ssh_listen: Option<SocketAddr>,
    /// Log format: `text` or `json` [default: text].
    #[arg(long, env = "EXCALIBUR_LOG_FORMAT")]
    log_format: Option<String>,
    /// Kubernetes issuer trusted for token exchange (`iss` of projected SA tokens).
    #[arg(long, env = "EXCALIBUR_K8S_ISSUER")]
    k8s_issuer: Option<String>,
    /// Cluster name recorded on Kubernetes principals.
    #[arg(long, env = "EXCALIBUR_K8S_CLUSTER", default_value = "default")]
    k8s_cluster: String,
    /// URL of the cluster's JWKS.
    #[arg(long, env = "EXCALIBUR_K8S_JWKS_URL")]
    k8s_jwks_url: Option<String>,
    /// A file holding the cluster's JWKS (instead of a URL).
    #[arg(long, env = "EXCALIBUR_K8S_JWKS_FILE")]
    k8s_jwks_file: Option<PathBuf>,
    /// The audience SA tokens must carry to be exchanged [default: excalibur].
    #[arg(long, env = "EXCALIBUR_K8S_AUDIENCE", default_value = "excalibur")]
    k8s_audience: String,
    /// A bearer token file sent when fetching the JWKS URL (in-cluster
    /// `/openid/v1/jwks` often needs one) [default: the pod's own service-account token
    /// when it exists].
    #[arg(long, env = "EXCALIBUR_K8S_TOKEN_FILE")]
    k8s_token_file: Option<PathBuf>,
    /// CA certificates that verify the JWKS URL's server [default: the pod's `ca.crt`
    /// when it exists].
    #[arg(long, env = "EXCALIBUR_K8S_CA_FILE")]
    k8s_ca_file: Option<PathBuf>,
    /// Principal tags from SA token claims, `tag=claim` pairs separated by commas
    /// (nested claims with `/`: `tenant=kubernetes.io/namespace`).
    #[arg(long, env = "EXCALIBUR_K8S_TAGS")]
    k8s_tags: Option<String>,
    /// `iss` of the audience-scoped workload tokens Excalibur signs.
    #[arg(
        long,
        env = "EXCALIBUR_ISSUER_URL",
        default_value = "https://excalibur.localhost"
    )]
    issuer_url: String,
    /// Trust domain of the `sub` (and `td`) of the audience tokens Excalibur signs, for
    /// principals that are not SPIFFE IDs already.
    #[arg(long, env = "EXCALIBUR_TRUST_DOMAIN", default_value = "excalibur")]
    trust_domain: String,
    /// Longest life of a proxy bearer issued by token exchange, in seconds.
    #[arg(long, env = "EXCALIBUR_MAX_WORKLOAD_TOKEN_TTL", default_value_t = 3600)]
    max_workload_token_ttl: u64,
    /// NetBird management API base URL (e.g. `https://netbird.example/api`).
    #[arg(long, env = "EXCALIBUR_NETBIRD_SYNC_URL")]
    netbird_sync_url: Option<String>,
    /// NetBird personal access token (sent as `Authorization: Token ...`).
    #[arg(long, env = "EXCALIBUR_NETBIRD_SYNC_TOKEN", hide_env_values = true)]
    netbird_sync_token: Option<String>,
    /// Seconds between NetBird syncs.
    #[arg(long, env = "EXCALIBUR_NETBIRD_SYNC_INTERVAL", default_value_t = 30)]
    netbird_sync_interval: u64,
    /// Only peers whose overlay address lies in this network become principals.
    #[arg(
        long,
        env = "EXCALIBUR_NETBIRD_OVERLAY_CIDR",
        default_value = "100.64.0.0/10"
    )]
    netbird_overlay_cidr: String,
    /// PostgreSQL URL (`postgres://user:pass@host/db`) for several replicas sharing one
    /// database [default: SQLite in the data dir].
    #[arg(long, env = "EXCALIBUR_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// PEM CA certificates that verify the PostgreSQL server (TLS; use with
    /// `sslmode=require` in the URL).
    #[arg(long, env = "EXCALIBUR_DATABASE_CA_FILE")]
    database_ca_file: Option<PathBuf>,
    /// File of OpenSSH public keys of CAs whose user certificates the SSH gateway accepts.
    #[arg(long, env = "EXCALIBUR_SSH_USER_CA_KEYS")]
    ssh_user_ca_keys: Option<PathBuf>,
    /// Proxy URL injected into SSH sessions' shells [default: http://<gateway address
    /// toward the target>:<proxy port>].
    #[arg(long, env = "EXCALIBUR_SSH_PROXY_URL")]
    ssh_proxy_url: Option<String>,
    /// Start even if the audit hash chain does not verify (after an investigated incident).
    #[arg(long, env = "EXCALIBUR_DANGEROUS_ALLOW_BROKEN_AUDIT_CHAIN")]
    dangerous_allow_broken_audit_chain: bool,
    /// Trust configuration rows edited outside Excalibur, as they are now (after an
    /// investigated, deliberate database edit); writes `configuration_accepted`.
    #[arg(long, env = "EXCALIBUR_DANGEROUS_ACCEPT_CONFIG_EDITS")]
    dangerous_accept_config_edits: bool,
}

/// The TOML file's shape; unknown keys are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    data_dir: Option<PathBuf>,
    api_listen: Option<SocketAddr>,
    proxy_listen: Option<SocketAddr>,
    ssh_listen: Option<SocketAddr>,
    log_format: Option<String>,
    /// Extra names for the 8443 listener's certificate.
    #[serde(default)]
    tls_names: Vec<String>,
    #[serde(default)]
    upstream: RawUpstream,
    #[serde(default)]
    proxy: RawProxy,
    #[serde(default)]
    webhooks: RawWebhooks,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    health: RawHealth,
    #[serde(default)]
    audit: RawAudit,
    #[serde(default)]
    spiffe: Vec<RawSpiffe>,
    #[serde(default)]
    oidc: Vec<RawOidc>,
    #[serde(default)]
    gcp: Vec<RawGcp>,
    #[serde(default)]
    azure: Vec<RawAzure>,
    #[serde(default)]
    aws: Vec<RawAws>,
}

/// AWS roles whose signed `sts:GetCallerIdentity` requests are exchanged (`aws-sts`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAws {
    /// Accounts admitted (required: an allowlist, never "any account").
    pub(crate) accounts: Vec<String>,
    /// Role names admitted (`*` globs); empty: any role of the accounts.
    #[serde(default)]
    pub(crate) role_patterns: Vec<String>,
    /// The value workloads sign into `X-Excalibur-Server-ID` (e.g. this server's name).
    pub(crate) server_id: String,
    /// Region of the default endpoint.
    #[serde(default = "default_region")]
    pub(crate) region: String,
    /// The STS endpoint (default `https://sts.<region>.amazonaws.com/`; GovCloud, China
    /// and tests set their own).
    pub(crate) sts_endpoint: Option<String>,
    /// Namespace of the principals (default: the account id).
    pub(crate) namespace: Option<String>,
}

fn default_region() -> String {
    "us-east-1".to_owned()
}

impl RawAws {
    /// The endpoint signed requests must name and are sent to.
    pub(crate) fn endpoint(&self) -> String {
        self.sts_endpoint
            .clone()
            .unwrap_or_else(|| format!("https://sts.{}.amazonaws.com/", self.region))
    }
}

/// GCP service accounts whose Google-signed ID tokens are exchanged (`gcp-wif`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGcp {
    /// The `audience` the workload asks the metadata server for.
    pub(crate) audience: String,
    /// Projects admitted (required: an allowlist, never "any project").
    pub(crate) projects: Vec<String>,
    /// Service-account emails admitted (`*` globs); empty: any in the projects.
    #[serde(default)]
    pub(crate) service_accounts: Vec<String>,
    /// Namespace of the principals (default: the project id).
    pub(crate) namespace: Option<String>,
    /// Google's JWKS by default; a URL or a file for tests and private deployments.
    pub(crate) jwks_url: Option<String>,
    pub(crate) jwks_file: Option<PathBuf>,
    /// Principal tags from claims: `tag = "claim"` (nested: `"a/b"`).
    #[serde(default)]
    pub(crate) tags: std::collections::BTreeMap<String, String>,
}

/// Azure managed identities whose Entra ID tokens are exchanged (`azure-mi`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAzure {
    /// Tenant id (`tid`).
    pub(crate) tenant: String,
    /// The resource (`aud`) the workload asks IMDS for.
    pub(crate) audience: String,
    /// Object ids (`oid`) admitted; empty: any identity of the tenant.
    #[serde(default)]
    pub(crate) object_ids: Vec<String>,
    /// Namespace of the principals (default: the tenant id).
    pub(crate) namespace: Option<String>,
    /// The tenant's JWKS by default; a URL or a file for tests and sovereign clouds.
    pub(crate) jwks_url: Option<String>,
    pub(crate) jwks_file: Option<PathBuf>,
    /// Principal tags from claims: `tag = "claim"` (nested: `"a/b"`).
    #[serde(default)]
    pub(crate) tags: std::collections::BTreeMap<String, String>,
}

/// What is wrong with the cloud attestors' settings.
fn cloud_errors(gcp: &[RawGcp], azure: &[RawAzure], aws: &[RawAws]) -> Vec<String> {
    let mut errors = Vec::new();
    for a in aws {
        let endpoint = a.endpoint();
        let endpoint_ok = endpoint.starts_with("https://")
            || endpoint.starts_with("http://127.")
            || endpoint.starts_with("http://[::1]");
        if a.accounts.iter().all(String::is_empty) || a.server_id.is_empty() || !endpoint_ok {
            errors.push(format!(
                "aws `{endpoint}`: give accounts, a server_id and an https:// sts_endpoint (http:// only on loopback)"
            ));
        }
    }
    for g in gcp {
        if g.audience.is_empty() || g.projects.iter().all(String::is_empty) {
            errors.push(format!(
                "gcp `{}`: give an audience and at least one project",
                g.audience
            ));
        }
        if g.jwks_url.is_some() && g.jwks_file.is_some() {
            errors.push(format!(
                "gcp `{}`: give at most one of jwks_url or jwks_file",
                g.audience
            ));
        }
    }
    for a in azure {
        let tenant_ok = !a.tenant.is_empty()
            && a.tenant.len() <= 64
            && a.tenant
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b));
        if !tenant_ok || a.audience.is_empty() {
            errors.push(format!(
                "azure `{}`: give a tenant id (letters, digits, `-`, `.`) and an audience",
                a.tenant
            ));
        }
        if a.jwks_url.is_some() && a.jwks_file.is_some() {
            errors.push(format!(
                "azure `{}`: give at most one of jwks_url or jwks_file",
                a.tenant
            ));
        }
    }
    errors
}

/// A SPIFFE trust domain whose JWT-SVIDs are accepted for token exchange.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSpiffe {
    pub(crate) trust_domain: String,
    pub(crate) audience: String,
    pub(crate) bundle_url: Option<String>,
    pub(crate) bundle_file: Option<PathBuf>,
    #[serde(default)]
    pub(crate) admit_paths: Vec<String>,
    /// PEM roots of this trust domain's X.509-SVIDs (client certificates on 8443).
    pub(crate) x509_bundle_file: Option<PathBuf>,
    /// Principal tags from JWT-SVID claims: `tag = "claim"` (nested: `"a/b"`).
    #[serde(default)]
    pub(crate) tags: std::collections::BTreeMap<String, String>,
}

/// A generic OIDC workload issuer (GitHub Actions, GitLab CI, ...).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOidc {
    pub(crate) name: String,
    pub(crate) issuer: String,
    pub(crate) audience: String,
    pub(crate) jwks_url: Option<String>,
    pub(crate) jwks_file: Option<PathBuf>,
    /// Find the JWKS through `<issuer>/.well-known/openid-configuration`.
    #[serde(default)]
    pub(crate) discovery: bool,
    #[serde(default = "sub_claim")]
    pub(crate) principal_claim: String,
    pub(crate) namespace_claim: Option<String>,
    /// Principal tags from claims: `tag = "claim"` (nested: `"a/b"`).
    #[serde(default)]
    pub(crate) tags: std::collections::BTreeMap<String, String>,
}

fn sub_claim() -> String {
    "sub".to_owned()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    header_read_timeout_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    request_timeout_ms: Option<u64>,
    max_header_bytes: Option<usize>,
    max_headers: Option<usize>,
    max_connections: Option<usize>,
    max_connections_per_source: Option<usize>,
}

/// Resource limits on client connections.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    /// Time a client has to send a complete request head.
    pub(crate) header_read_timeout: std::time::Duration,
    /// A connection with no progress either way for this long is closed.
    pub(crate) idle_timeout: std::time::Duration,
    /// Time the upstream has to answer with a response head.
    pub(crate) request_timeout: std::time::Duration,
    /// Largest request head (HTTP/1 buffer, HTTP/2 header list).
    pub(crate) max_header_bytes: usize,
    /// Most header fields in an HTTP/1 request.
    pub(crate) max_headers: usize,
    /// Most concurrent client connections of each listener.
    pub(crate) max_connections: usize,
    /// Most concurrent proxy connections from one source address.
    pub(crate) max_connections_per_source: usize,
}

impl Limits {
    /// The limits of one HTTP connection.
    pub(crate) fn http(&self) -> excalibur_proxy::HttpLimits {
        excalibur_proxy::HttpLimits {
            header_read_timeout: self.header_read_timeout,
            max_header_bytes: self.max_header_bytes,
            max_headers: self.max_headers,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    /// `durable` (default), `synced` or `batched`.
    durability: Option<String>,
    checkpoint_every_events: Option<u64>,
    checkpoint_every_secs: Option<u64>,
}

impl RawAudit {
    fn durability(&self) -> anyhow::Result<crate::record::Durability> {
        use crate::record::Durability;
        match self.durability.as_deref() {
            None | Some("durable") => Ok(Durability::Durable),
            Some("synced") => Ok(Durability::Synced),
            Some("batched") => Ok(Durability::Batched),
            Some(other) => anyhow::bail!(
                "[audit] durability must be \"durable\", \"synced\" or \"batched\", not {other:?}"
            ),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    resync_interval_ms: Option<u64>,
    snapshot_stale_after_ms: Option<u64>,
    snapshot_stuck_after_ms: Option<u64>,
    ca_warn_days: Option<u64>,
}

/// Snapshot freshness and certificate warnings, for the probes (docs/deploy.md).
#[derive(Debug, Clone)]
pub(crate) struct Health {
    /// With PostgreSQL, how often a replica re-reads the store without a notification.
    pub(crate) resync_interval: std::time::Duration,
    /// A replicated snapshot older than this makes the replica unready.
    pub(crate) snapshot_stale_after: std::time::Duration,
    /// ... and older than this while the database answers, fails liveness.
    pub(crate) snapshot_stuck_after: std::time::Duration,
    /// The CA is reported `ca_expiring` this long before it expires.
    pub(crate) ca_warn: std::time::Duration,
}

impl RawHealth {
    fn resolve(&self) -> anyhow::Result<Health> {
        let ms = |v: Option<u64>, d: u64| std::time::Duration::from_millis(v.unwrap_or(d));
        let h = Health {
            resync_interval: ms(self.resync_interval_ms, 10_000)
                .max(std::time::Duration::from_millis(100)),
            snapshot_stale_after: ms(self.snapshot_stale_after_ms, 30_000),
            snapshot_stuck_after: ms(self.snapshot_stuck_after_ms, 300_000),
            ca_warn: std::time::Duration::from_secs(self.ca_warn_days.unwrap_or(30) * 86_400),
        };
        anyhow::ensure!(
            h.snapshot_stale_after >= h.resync_interval * 2,
            "[health] snapshot_stale_after_ms must be at least twice resync_interval_ms"
        );
        anyhow::ensure!(
            h.snapshot_stuck_after > h.snapshot_stale_after,
            "[health] snapshot_stuck_after_ms must exceed snapshot_stale_after_ms"
        );
        Ok(h)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhooks {
    retry_base_ms: Option<u64>,
    max_attempts: Option<u32>,
    #[serde(default)]
    dangerous_allow_private_destinations: bool,
}

/// Webhook delivery settings.
#[derive(Debug, Clone)]
pub(crate) struct Webhooks {
    /// First retry delay; doubles per attempt.
    pub(crate) retry_base_ms: u64,
    /// Attempts before a delivery is marked failed.
    pub(crate) max_attempts: u32,
    /// Allow receivers on private or loopback addresses.
    pub(crate) dangerous_allow_private_destinations: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProxy {
    allowed_ports: Option<Vec<u16>>,
    max_substitute_body_bytes: Option<u64>,
    max_decoded_response_bytes: Option<u64>,
    leaf_validity_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    #[serde(default)]
    resolve: Vec<String>,
    ca_file: Option<PathBuf>,
    connect_timeout_ms: Option<u64>,
    #[serde(default)]
    dangerous_allow_private_destinations: bool,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

/// Resolved configuration.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) data_dir: PathBuf,
    pub(crate) api_listen: SocketAddr,
    pub(crate) proxy_listen: SocketAddr,
    pub(crate) ssh_listen: SocketAddr,
    /// PostgreSQL URL, when the store is PostgreSQL (a `Secret`: it may hold a password).
    pub(crate) database_url: Option<excalibur_core::Secret>,
    /// CA certificates for TLS to PostgreSQL.
    pub(crate) database_ca_file: Option<PathBuf>,
    /// Trusted SSH user-certificate CAs (public-key file).
    pub(crate) ssh_user_ca_keys: Option<PathBuf>,
    /// Proxy URL for SSH sessions' shells.
    pub(crate) ssh_proxy_url: Option<String>,
    pub(crate) log_format: LogFormat,
    pub(crate) tls_names: Vec<String>,
    pub(crate) upstream: Upstream,
    /// Ports a principal may reach (CONNECT and absolute-form).
    pub(crate) allowed_ports: Vec<u16>,
    /// Largest request body rewritten for substitution.
    pub(crate) max_substitute_body: u64,
    /// Largest response body decoded (gzip, deflate) so it can be scrubbed.
    pub(crate) max_decoded_response: u64,
    /// Validity of minted leaves and of the API listener's certificate (renewed after
    /// two thirds of it).
    pub(crate) leaf_validity: std::time::Duration,
    /// Webhook delivery.
    pub(crate) webhooks: Webhooks,
    /// Client connection limits.
    pub(crate) limits: Limits,
    /// Probe bounds.
    pub(crate) health: Health,
    /// When the record of a redemption is durable.
    pub(crate) durability: crate::record::Durability,
    /// A checkpoint after this many events ...
    pub(crate) checkpoint_every_events: u64,
    /// ... or this long, whichever comes first.
    pub(crate) checkpoint_every: std::time::Duration,
    /// Start even if the audit chain does not verify.
    pub(crate) dangerous_allow_broken_audit_chain: bool,
    /// Re-authenticate edited configuration rows at start.
    pub(crate) dangerous_accept_config_edits: bool,
    /// Kubernetes token exchange, when an issuer is configured.
    pub(crate) kubernetes: Option<Kubernetes>,
    /// Cap on exchanged bearers' life.
    pub(crate) max_workload_token_ttl: std::time::Duration,
    /// `iss` of minted workload tokens.
    pub(crate) issuer_url: String,
    /// Trust domain of minted tokens' subjects.
    pub(crate) trust_domain: String,
    /// NetBird sync, when configured.
    pub(crate) netbird: Option<Netbird>,
    /// SPIFFE trust domains.
    pub(crate) spiffe: Vec<RawSpiffe>,
    /// OIDC issuers.
    pub(crate) oidc: Vec<RawOidc>,
    /// GCP audiences and projects (`gcp-wif`).
    pub(crate) gcp: Vec<RawGcp>,
    /// Azure tenants (`azure-mi`).
    pub(crate) azure: Vec<RawAzure>,
    /// AWS STS endpoints and accounts (`aws-sts`).
    pub(crate) aws: Vec<RawAws>,
}

/// NetBird sync settings.
#[derive(Clone)]
pub(crate) struct Netbird {
    pub(crate) url: String,
    pub(crate) token: String,
    pub(crate) interval: std::time::Duration,
    pub(crate) overlay: ipnet::IpNet,
}

impl std::fmt::Debug for Netbird {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netbird")
            .field("url", &self.url)
            .field("interval", &self.interval)
            .field("overlay", &self.overlay)
            .finish_non_exhaustive()
    }
}

/// Where the cluster's JWKS comes from.
#[derive(Debug, Clone)]
pub(crate) enum JwksLocation {
    Url(String),
    File(PathBuf),
}

/// Kubernetes trust settings.
#[derive(Debug, Clone)]
pub(crate) struct Kubernetes {
    pub(crate) issuer: String,
    pub(crate) cluster: String,
    pub(crate) audience: String,
    pub(crate) jwks: JwksLocation,
    /// Sent as `Authorization: Bearer` when fetching the JWKS URL (re-read each fetch:
    /// kubelet rotates it).
    pub(crate) token_file: Option<PathBuf>,
    /// Trusted (with the system roots) for the JWKS URL.
    pub(crate) ca_file: Option<PathBuf>,
    /// `(tag, claim path)` pairs.
    pub(crate) tags: Vec<(String, String)>,
}

/// Where a pod finds its own service-account token and cluster CA.
const IN_CLUSTER_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
const IN_CLUSTER_CA: &str = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";

/// Upstream connection settings.
#[derive(Debug)]
pub(crate) struct Upstream {
    /// `host:port=ip:port` overrides, like curl `--resolve`; targets are trusted.
    pub(crate) resolve: Vec<(String, u16, SocketAddr)>,
    /// Extra trusted roots, PEM.
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) connect_timeout_ms: u64,
    pub(crate) dangerous_allow_private_destinations: bool,
}

impl Config {
    /// Merges file, env and flags; reports every problem at once.
    pub(crate) fn resolve(args: ServeArgs) -> anyhow::Result<Self> {
        let raw: Raw = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    anyhow::anyhow!("cannot read config file {}: {e}", path.display())
                })?;
                toml::from_str(&text)
                    .map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?
            }
            None => Raw::default(),
        };
        let mut errors = Vec::new();
        let log_format = match args.log_format.or(raw.log_format).as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                errors.push(format!("log_format: `{other}` is not `text` or `json`"));
                LogFormat::Text
            }
        };
        let mut resolve = Vec::new();
        for entry in &raw.upstream.resolve {
            match parse_resolve(entry) {
                Some(r) => resolve.push(r),
                None => errors.push(format!(
                    "upstream.resolve: `{entry}` is not `host:port=ip:port`"
                )),
            }
        }
        if let Some(ca) = &raw.upstream.ca_file
            && !ca.exists()
        {
            errors.push(format!("upstream.ca_file: {} does not exist", ca.display()));
        }
        let kubernetes = match (&args.k8s_issuer, &args.k8s_jwks_url, &args.k8s_jwks_file) {
            (None, _, _) => None,
            (Some(_), None, None) => {
                errors.push(
                    "EXCALIBUR_K8S_ISSUER needs EXCALIBUR_K8S_JWKS_URL or EXCALIBUR_K8S_JWKS_FILE"
                        .to_owned(),
                );
                None
            }
            (Some(issuer), url, file) => Some(Kubernetes {
                issuer: issuer.clone(),
                cluster: args.k8s_cluster.clone(),
                audience: args.k8s_audience.clone(),
                token_file: args.k8s_token_file.clone().or_else(|| {
                    let p = PathBuf::from(IN_CLUSTER_TOKEN);
                    (url.is_some() && p.exists()).then_some(p)
                }),
                tags: args
                    .k8s_tags
                    .as_deref()
                    .unwrap_or_default()
                    .split(',')
                    .filter(|p| !p.trim().is_empty())
                    .filter_map(|p| {
                        let (tag, claim) = p.split_once('=')?;
                        Some((tag.trim().to_owned(), claim.trim().to_owned()))
                    })
                    .collect(),
                ca_file: args.k8s_ca_file.clone().or_else(|| {
                    let p = PathBuf::from(IN_CLUSTER_CA);
                    (url.is_some() && p.exists()).then_some(p)
                }),
                jwks: match (url, file) {
                    (Some(u), _) => JwksLocation::Url(u.clone()),
                    (None, Some(f)) => JwksLocation::File(f.clone()),
                    (None, None) => JwksLocation::File(PathBuf::new()),
                },
            }),
        };
        if let Some(k) = &kubernetes
            && k.token_file.is_some()
            && matches!(&k.jwks, JwksLocation::Url(u) if !u.starts_with("https://"))
        {
            errors.push(
                "EXCALIBUR_K8S_TOKEN_FILE would send a bearer token in clear: EXCALIBUR_K8S_JWKS_URL must be https://"
                    .to_owned(),
            );
        }
        for d in &raw.spiffe {
            if let Some(f) = &d.x509_bundle_file
                && !f.exists()
            {
                errors.push(format!(
                    "spiffe `{}`: x509_bundle_file {} does not exist",
                    d.trust_domain,
                    f.display()
                ));
            }
            if d.bundle_url.is_some() == d.bundle_file.is_some() {
                errors.push(format!(
                    "spiffe `{}`: give exactly one of bundle_url or bundle_file",
                    d.trust_domain
                ));
            }
        }
        for o in &raw.oidc {
            let sources = [o.jwks_url.is_some(), o.jwks_file.is_some(), o.discovery]
                .iter()
                .filter(|x| **x)
                .count();
            if sources != 1 {
                errors.push(format!(
                    "oidc `{}`: give exactly one of jwks_url, jwks_file or discovery = true",
                    o.name
                ));
            }
        }
        errors.extend(cloud_errors(&raw.gcp, &raw.azure, &raw.aws));
        let netbird = match (&args.netbird_sync_url, &args.netbird_sync_token) {
            (None, None) => None,
            (Some(url), Some(token)) => {
                let overlay = args.netbird_overlay_cidr.parse::<ipnet::IpNet>();
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    errors.push("EXCALIBUR_NETBIRD_SYNC_URL must be an http(s) URL".to_owned());
                }
                match overlay {
                    Ok(overlay) => Some(Netbird {
                        url: url.trim_end_matches('/').to_owned(),
                        token: token.clone(),
                        interval: std::time::Duration::from_secs(args.netbird_sync_interval.max(1)),
                        overlay,
                    }),
                    Err(_) => {
                        errors.push("EXCALIBUR_NETBIRD_OVERLAY_CIDR is not a CIDR".to_owned());
                        None
                    }
                }
            }
            _ => {
                errors.push(
                    "NetBird sync needs both EXCALIBUR_NETBIRD_SYNC_URL and EXCALIBUR_NETBIRD_SYNC_TOKEN"
                        .to_owned(),
                );
                None
            }
        };
        if let Some(url) = &args.database_url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            errors.push("EXCALIBUR_DATABASE_URL must be a postgres:// URL".to_owned());
        }
        if let Some(url) = &args.ssh_proxy_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            errors.push("EXCALIBUR_SSH_PROXY_URL must be an http(s) URL".to_owned());
        }
        if !errors.is_empty() {
            bail!("invalid configuration:\n  {}", errors.join("\n  "));
        }
        let mut tls_names = vec![
            "localhost".to_owned(),
            "excalibur".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        tls_names.extend(raw.tls_names);
        Ok(Self {
            data_dir: args
                .data_dir
                .or(raw.data_dir)
                .unwrap_or_else(|| PathBuf::from("excalibur-data")),
            api_listen: args
                .api_listen
                .or(raw.api_listen)
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8443))),
            proxy_listen: args
                .proxy_listen
                .or(raw.proxy_listen)
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 3128))),
            ssh_listen: args
                .ssh_listen
                .or(raw.ssh_listen)
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 2222))),
            ssh_user_ca_keys: args.ssh_user_ca_keys.clone(),
            database_ca_file: args.database_ca_file.clone(),
            database_url: args
                .database_url
                .clone()
                .map(|u| excalibur_core::Secret::new(u.into_bytes())),
            ssh_proxy_url: args.ssh_proxy_url.clone(),
            log_format,
            tls_names,
            allowed_ports: raw.proxy.allowed_ports.unwrap_or_else(|| vec![80, 443]),
            max_substitute_body: raw
                .proxy
                .max_substitute_body_bytes
                .unwrap_or(10 * 1024 * 1024),
            max_decoded_response: raw
                .proxy
                .max_decoded_response_bytes
                .unwrap_or(256 * 1024 * 1024),
            leaf_validity: raw.proxy.leaf_validity_secs.map_or(
                excalibur_proxy::ca::DEFAULT_LEAF_VALIDITY,
                std::time::Duration::from_secs,
            ),
            limits: Limits {
                header_read_timeout: ms(raw.limits.header_read_timeout_ms, 10_000),
                idle_timeout: ms(raw.limits.idle_timeout_ms, 120_000),
                request_timeout: ms(raw.limits.request_timeout_ms, 60_000),
                max_header_bytes: raw.limits.max_header_bytes.unwrap_or(64 * 1024).max(8192),
                max_headers: raw.limits.max_headers.unwrap_or(100).max(8),
                max_connections: raw.limits.max_connections.unwrap_or(4096).max(1),
                max_connections_per_source: raw
                    .limits
                    .max_connections_per_source
                    .unwrap_or(1024)
                    .max(1),
            },
            health: raw.health.resolve()?,
            durability: raw.audit.durability()?,
            checkpoint_every_events: raw.audit.checkpoint_every_events.unwrap_or(10_000).max(1),
            checkpoint_every: std::time::Duration::from_secs(
                raw.audit.checkpoint_every_secs.unwrap_or(60).max(1),
            ),
            dangerous_allow_broken_audit_chain: args.dangerous_allow_broken_audit_chain,
            dangerous_accept_config_edits: args.dangerous_accept_config_edits,
            kubernetes,
            issuer_url: args.issuer_url.clone(),
            trust_domain: args.trust_domain.clone(),
            netbird,
            spiffe: raw.spiffe,
            oidc: raw.oidc,
            gcp: raw.gcp,
            azure: raw.azure,
            aws: raw.aws,
            max_workload_token_ttl: std::time::Duration::from_secs(
                args.max_workload_token_ttl.max(60),
            ),
            webhooks: Webhooks {
                retry_base_ms: raw.webhooks.retry_base_ms.unwrap_or(1000),
                max_attempts: raw.webhooks.max_attempts.unwrap_or(6).max(1),
                dangerous_allow_private_destinations: raw
                    .webhooks
                    .dangerous_allow_private_destinations,
            },
            upstream: Upstream {
                resolve,
                ca_file: raw.upstream.ca_file,
                connect_timeout_ms: raw.upstream.connect_timeout_ms.unwrap_or(5000),
                dangerous_allow_private_destinations: raw
                    .upstream
                    .dangerous_allow_private_destinations,
            },
        })
    }
}

fn ms(v: Option<u64>, default: u64) -> std::time::Duration {
    std::time::Duration::from_millis(v.unwrap_or(default).max(1))
}

fn parse_resolve(entry: &str) -> Option<(String, u16, SocketAddr)> {
    let (from, to) = entry.split_once('=')?;
    let (host, port) = from.rsplit_once(':')?;
    Some((
        host.to_ascii_lowercase(),
        port.parse().ok()?,
        to.parse().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_entries() {
        assert_eq!(
            parse_resolve("api.github.com:443=127.0.0.1:19443"),
            Some((
                "api.github.com".into(),
                443,
                "127.0.0.1:19443".parse().unwrap()
            ))
        );
        assert_eq!(parse_resolve("api.github.com=127.0.0.1:1"), None);
    }

    /// The `excalibur.toml` block of a deployment file (a YAML literal block).
    fn embedded_toml(file: &str) -> String {
        let mut lines = file
            .lines()
            .skip_while(|l| !l.trim_start().starts_with("excalibur.toml: |"));
        let _ = lines.next();
        lines
            .take_while(|l| l.starts_with("    "))
            .map(|l| format!("{}\n", l.trim_start()))
            .collect()
    }

    #[test]
    fn deployment_files_carry_a_config_the_server_accepts() {
        for file in [
            include_str!("../../../deploy/kubernetes/excalibur.yaml"),
            include_str!("../../../deploy/kubernetes/excalibur-postgres.yaml"),
        ] {
            let text = embedded_toml(file);
            assert!(text.contains("api_listen"), "{text}");
            let raw: Raw = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(raw.api_listen, Some("0.0.0.0:8443".parse().unwrap()));
        }
    }
}
