//! The command tree: every verb and argument of `excalibur-ctl`, as clap parses them.
//!
//! INVARIANT: the API base (`--api-url`, `EXCALIBUR_URL`) is the only argument that says
//! where the admin token goes, and no subcommand argument may share its id or name (a
//! shared id lets the subcommand's value replace the global one); the `cli` test walks the
//! whole tree to keep it so.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Operate an Excalibur gateway through its REST API.
#[derive(Debug, Parser)]
#[command(name = "excalibur-ctl", version, about)]
pub struct Cli {
    /// Base URL of the API: the only place the token is sent. `http://` only for loopback
    /// (or with --insecure-http).
    #[arg(
        long = "api-url",
        env = "EXCALIBUR_URL",
        hide_env_values = true,
        default_value = "http://127.0.0.1:8443",
        global = true,
        value_name = "API_URL",
        help_heading = "Global options"
    )]
    pub api_url: String,
    /// API token (admin for writes, operator for reads).
    #[arg(
        long,
        env = "EXCALIBUR_TOKEN",
        hide_env_values = true,
        global = true,
        help_heading = "Global options"
    )]
    pub token: Option<String>,
    /// CA certificate (PEM) to trust for an https:// URL, e.g. the output of `ca export`.
    #[arg(
        long,
        env = "EXCALIBUR_CACERT",
        hide_env_values = true,
        global = true,
        help_heading = "Global options"
    )]
    pub cacert: Option<PathBuf>,
    /// Allow an `http://` API base that is not loopback (the token then travels in clear).
    #[arg(long, global = true, help_heading = "Global options")]
    pub insecure_http: bool,
    /// Print JSON instead of a table.
    #[arg(long, global = true, help_heading = "Global options")]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Placeholders and their real values (escrow).
    #[command(subcommand)]
    Placeholder(PlaceholderCmd),
    /// Providers: the hosts a provider's secrets may be sent to.
    #[command(subcommand)]
    Provider(ProviderCmd),
    /// API tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Service credentials (proxy bearers bound to a source network).
    #[command(subcommand, name = "service-credential")]
    ServiceCredential(CredentialCmd),
    /// Translation rules: who may redeem which placeholder toward which host.
    #[command(subcommand, name = "translation-rule")]
    TranslationRule(RuleCmd),
    /// Operator Cedar policies and dry-run decisions.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Namespaces and the domains their workloads may reach.
    #[command(subcommand)]
    Namespace(NamespaceCmd),
    /// Attested workloads and their proxy bearers.
    #[command(subcommand)]
    Workload(WorkloadCmd),
    /// Crypto mediation: the proxy signs with keys the workload never holds.
    #[command(subcommand)]
    Crypto(CryptoCmd),
    /// The SSH gateway: routes and its keys.
    #[command(subcommand)]
    Ssh(SshCmd),
    /// SSH-gateway sessions.
    #[command(subcommand)]
    Session(SessionCmd),
    /// Webhooks and their delivery logs.
    #[command(subcommand)]
    Webhook(WebhookCmd),
    /// Recorded flows.
    #[command(subcommand)]
    Flows(FlowsCmd),
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// The Excalibur CA.
    #[command(subcommand)]
    Ca(CaCmd),
    /// Import many providers, placeholders, translation rules and service credentials
    /// at once (one transaction: all or nothing).
    Import {
        /// A JSON document `{"providers": [...], "placeholders": [...],
        /// "translation_rules": [...], "service_credentials": [...]}`; `-` for stdin.
        #[arg(long)]
        file: PathBuf,
    },
}

/// `placeholder` verbs.
#[derive(Debug, Subcommand)]
pub enum PlaceholderCmd {
    /// Create or rotate a placeholder (upsert by name).
    Add {
        /// Placeholder name, e.g. XCALIBUR_GITHUB_TOKEN.
        #[arg(long)]
        name: String,
        /// The real value (prefer --value-file to keep it out of shell history).
        #[arg(
            long,
            conflicts_with = "value_file",
            required_unless_present = "value_file"
        )]
        value: Option<String>,
        /// Read the real value from a file, or `-` for stdin (one trailing newline is dropped).
        #[arg(long)]
        value_file: Option<PathBuf>,
        /// Provider id.
        #[arg(long)]
        provider: String,
        /// Route family (defaults to the provider).
        #[arg(long)]
        route_family: Option<String>,
    },
    /// List placeholders (fingerprints only).
    List,
    /// Delete a placeholder.
    Delete {
        /// Placeholder name.
        name: String,
    },
}

/// `provider` verbs.
#[derive(Debug, Subcommand)]
pub enum ProviderCmd {
    /// Create or replace a provider.
    Add {
        /// Provider id, e.g. github.
        #[arg(long)]
        id: String,
        /// A host (exact or *.suffix); repeat for more.
        #[arg(long = "host", required = true)]
        hosts: Vec<String>,
        /// Tunnel these hosts without interception.
        #[arg(long)]
        passthrough: bool,
        /// DANGEROUS: let this provider's secrets travel over a cleartext http:// leg.
        #[arg(long)]
        dangerous_allow_plaintext: bool,
    },
    /// List providers.
    List,
    /// Delete a provider.
    Delete {
        /// Provider id.
        id: String,
    },
}

/// `token` verbs.
#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Mint an API token (shown once).
    Create {
        /// Label.
        #[arg(long)]
        name: String,
        /// `admin`, `operator`, or `introspection` (only `POST /v1/introspect`).
        #[arg(long, default_value = "operator", value_parser = parse_role)]
        role: excalibur_core::ids::Role,
    },
    /// List tokens.
    List,
    /// Revoke a token.
    Revoke {
        /// Token id.
        id: String,
    },
}

/// `service-credential` verbs.
#[derive(Debug, Subcommand)]
pub enum CredentialCmd {
    /// Mint a service credential (token shown once).
    Create {
        /// Label.
        #[arg(long)]
        name: String,
        /// User the workload acts for.
        #[arg(long)]
        user: String,
        /// Source network (CIDR).
        #[arg(long)]
        source: String,
        /// Allowed destination (exact or *.suffix); repeat for more.
        #[arg(long = "allowed-domain")]
        allowed_domains: Vec<String>,
    },
    /// List service credentials.
    List,
    /// Revoke a service credential.
    Revoke {
        /// Credential id.
        id: String,
    },
}

/// `translation-rule` verbs.
#[derive(Debug, Subcommand)]
pub enum RuleCmd {
    /// Add a translation rule.
    Add(RuleArgs),
    /// List translation rules.
    List,
    /// Delete a translation rule.
    Delete {
        /// Rule id.
        id: String,
    },
}

/// `translation-rule add` arguments.
#[derive(Debug, Args)]
pub struct RuleArgs {
    /// Principal id or glob (default: any principal).
    #[arg(long, default_value = "*")]
    pub principal: String,
    /// Placeholder name or glob.
    #[arg(long)]
    pub placeholder: String,
    /// Host (exact or *.suffix); repeat for more.
    #[arg(long = "host", required = true)]
    pub hosts: Vec<String>,
    /// Path prefix.
    #[arg(long, default_value = "/")]
    pub path_prefix: String,
    /// Method; repeat for more (default: any).
    #[arg(long = "method")]
    pub methods: Vec<String>,
    /// Also substitute in request bodies.
    #[arg(long)]
    pub substitute_body: bool,
}

/// `policy` verbs.
#[derive(Debug, Subcommand)]
pub enum PolicyCmd {
    /// Add a Cedar policy (validated against the schema by the server).
    Add {
        /// Policy id.
        #[arg(long)]
        id: String,
        /// File holding one Cedar policy, or `-` for stdin.
        #[arg(long, conflicts_with = "policy", required_unless_present = "policy")]
        file: Option<PathBuf>,
        /// The policy text.
        #[arg(long)]
        policy: Option<String>,
        /// What it is for.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List operator policies.
    List,
    /// Delete an operator policy.
    Delete {
        /// Policy id.
        id: String,
    },
    /// Dry-run a decision against the policy in force.
    Test {
        /// Principal as `Type::"id"`, e.g. `Workload::"service:ci"` or `Human::"alice"`.
        #[arg(long)]
        principal: String,
        /// `connect` or `redeem`.
        #[arg(long)]
        action: String,
        /// Resource as `Host::"api.github.com"` or `Placeholder::"XCALIBUR_GITHUB_TOKEN"`.
        #[arg(long)]
        resource: String,
        /// Destination host (redeem).
        #[arg(long)]
        host: Option<String>,
        /// Path (redeem).
        #[arg(long)]
        path: Option<String>,
        /// Method (redeem).
        #[arg(long)]
        method: Option<String>,
        /// Port (connect).
        #[arg(long)]
        port: Option<u16>,
        /// Namespace / tenant of the principal.
        #[arg(long, default_value = "")]
        namespace: String,
        /// A completed authentication factor (humans); repeat for more.
        #[arg(long = "factor")]
        factors: Vec<String>,
        /// A tag as `name=value` (what claims map to); repeat for more.
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// The actor of a delegated exchange.
        #[arg(long)]
        actor: Option<String>,
        /// A bearer scope, `provider:<id>`; repeat for more.
        #[arg(long = "scope")]
        scopes: Vec<String>,
    },
}

/// `namespace` verbs.
#[derive(Debug, Subcommand)]
pub enum NamespaceCmd {
    /// Create or replace a namespace.
    Add {
        /// Namespace (Kubernetes namespace, SPIFFE trust domain, OIDC owner).
        #[arg(long)]
        name: String,
        /// Allowed destination (exact or *.suffix); repeat for more.
        #[arg(long = "allowed-domain")]
        allowed_domains: Vec<String>,
    },
    /// List namespaces.
    List,
}

/// `crypto sigv4 add` arguments.
#[derive(Debug, clap::Args)]
pub struct Sigv4Add {
    /// Existing mapping to replace (rotation).
    #[arg(long)]
    pub id: Option<String>,
    /// Provider whose hosts include the target host.
    #[arg(long)]
    pub provider: String,
    /// Upstream host, e.g. s3.eu-west-1.amazonaws.com (or *.suffix).
    #[arg(long)]
    pub target_host: String,
    /// Only requests under this path are signed.
    #[arg(long, default_value = "/")]
    pub path_prefix: String,
    /// Signing region.
    #[arg(long)]
    pub region: String,
    /// Signing service (s3, sts, ...).
    #[arg(long)]
    pub service: String,
    /// Access key id (a static key; or give --role-arn).
    #[arg(
        long,
        required_unless_present = "role_arn",
        requires = "secret_key_file"
    )]
    pub access_key_id: Option<String>,
    /// File holding the secret access key, or `-` for stdin.
    #[arg(long, requires = "access_key_id")]
    pub secret_key_file: Option<PathBuf>,
    /// File holding a session token (temporary credentials).
    #[arg(long, requires = "access_key_id")]
    pub session_token_file: Option<PathBuf>,
    /// No static key: the role Excalibur assumes with AssumeRoleWithWebIdentity.
    #[arg(long, conflicts_with = "access_key_id")]
    pub role_arn: Option<String>,
    /// Session name of the assumed role (default: the mapping id).
    #[arg(long, requires = "role_arn")]
    pub session_name: Option<String>,
    /// Lifetime asked for the assumed credentials, 900 to 43200 s.
    #[arg(long, requires = "role_arn")]
    pub duration_seconds: Option<u32>,
    /// STS endpoint (default https://sts.<region>.amazonaws.com/).
    #[arg(long, requires = "role_arn")]
    pub sts_endpoint: Option<String>,
}

/// `ssh` verbs.
#[derive(Debug, Subcommand)]
pub enum SshCmd {
    /// SSH routes: user and source network to target.
    #[command(subcommand)]
    Route(DocumentCmd),
    /// The gateway's host key (for known_hosts) and client key (for targets).
    Gateway,
}

/// `session` verbs.
#[derive(Debug, Subcommand)]
pub enum SessionCmd {
    /// List sessions, newest first.
    List,
    /// Revoke a live session: its proxy token stops working and it is closed at once.
    Revoke {
        /// Session id.
        id: String,
    },
}

/// `crypto` families.
#[derive(Debug, Subcommand)]
pub enum CryptoCmd {
    /// AWS SigV4 mappings.
    #[command(subcommand)]
    Sigv4(Sigv4Cmd),
    /// JWT-bearer (RFC 7523) mappings.
    #[command(subcommand, name = "jwt-bearer")]
    JwtBearer(DocumentCmd),
    /// DPoP (RFC 9449) mappings.
    #[command(subcommand)]
    Dpop(DocumentCmd),
    /// Upstream mTLS mappings.
    #[command(subcommand)]
    Mtls(DocumentCmd),
    /// OAuth2 refresh mappings.
    #[command(subcommand, name = "oauth-refresh")]
    OauthRefresh(DocumentCmd),
}

/// Verbs for objects configured from a JSON document.
#[derive(Debug, Subcommand)]
pub enum DocumentCmd {
    /// Create one, or replace one (with `"id"`), from a JSON document holding the API's
    /// fields (keys included): a file, or `-` for stdin. Never from the command line.
    Add {
        /// The JSON document.
        #[arg(long)]
        file: PathBuf,
    },
    /// List them (ids, hosts, fingerprints; never keys).
    List,
    /// Delete one (an SSH route's live sessions end with it).
    Delete {
        /// Its id.
        id: String,
    },
}

/// `crypto sigv4` verbs.
#[derive(Debug, Subcommand)]
pub enum Sigv4Cmd {
    /// Create a mapping, or rotate one with --id. The secret key is read from a file or
    /// stdin, never from the command line.
    Add(Box<Sigv4Add>),
    /// List mappings (key id prefix and fingerprint only).
    List,
    /// Delete a mapping.
    Delete {
        /// Mapping id.
        id: String,
    },
    /// Presign a URL with a mapping's key (a bearer credential until it expires).
    Presign {
        /// Mapping id.
        #[arg(long)]
        mapping: String,
        /// Path (and query) on the mapping's host, e.g. /bucket/key.
        #[arg(long)]
        path: String,
        /// Method.
        #[arg(long, default_value = "GET")]
        method: String,
        /// Lifetime in seconds (at most 604800).
        #[arg(long, default_value_t = 900)]
        expires_in: u64,
    },
}

/// `workload` verbs.
#[derive(Debug, Subcommand)]
pub enum WorkloadCmd {
    /// List workloads that exchanged a platform token.
    List,
    /// Revoke bearers at once: one workload, a subject token's jti, or every bearer of a
    /// principal (kill switch).
    Revoke {
        /// Workload id.
        #[arg(long, conflicts_with_all = ["jti", "principal"])]
        id: Option<String>,
        /// The subject token's jti.
        #[arg(long, conflicts_with = "principal")]
        jti: Option<String>,
        /// Principal id, e.g. k8s:prod/payments/api.
        #[arg(long)]
        principal: Option<String>,
    },
    /// Standing revocations of principals (the kill switch).
    Revocations,
    /// Lift a principal's standing revocation: it may exchange again.
    Lift {
        /// Revocation id (from `workload revocations`).
        id: String,
    },
}

/// `webhook` verbs.
#[derive(Debug, Subcommand)]
pub enum WebhookCmd {
    /// Add a webhook (a generated signing secret is shown once).
    Add {
        /// Receiver URL: where the gateway delivers events (the CLI never contacts it).
        #[arg(long)]
        url: String,
        /// Event type or glob; repeat for more.
        #[arg(long = "event-type", required = true)]
        event_types: Vec<String>,
    },
    /// List webhooks.
    List,
    /// A webhook's delivery log.
    Deliveries {
        /// Webhook id.
        id: String,
    },
    /// Delete a webhook.
    Delete {
        /// Webhook id.
        id: String,
    },
}

/// `flows` verbs.
#[derive(Debug, Subcommand)]
pub enum FlowsCmd {
    /// List flows, newest recorded first.
    List {
        /// Only this principal.
        #[arg(long)]
        principal: Option<String>,
        /// Only this host.
        #[arg(long)]
        host: Option<String>,
        /// Only `allow` or `deny`.
        #[arg(long, value_parser = ["allow", "deny"])]
        decision: Option<String>,
        /// Which page.
        #[command(flatten)]
        page: PageArgs,
    },
}

/// Which page of a newest-first list: the next page is `--before <last SEQ>`.
#[derive(Debug, clap::Args)]
pub struct PageArgs {
    /// Only records at or after this RFC 3339 time.
    #[arg(long)]
    pub since: Option<String>,
    /// Only records older than this SEQ (the last one shown), or this RFC 3339 time.
    #[arg(long)]
    pub before: Option<String>,
    /// Maximum number of records (1-1000).
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
}

impl PageArgs {
    /// The query parameters this page asks for.
    pub fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = vec![("limit", self.limit.to_string())];
        q.extend(self.since.clone().map(|v| ("since", v)));
        q.extend(self.before.clone().map(|v| ("before", v)));
        q
    }
}

/// `audit` verbs.
#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// List events, newest first.
    List {
        /// Event type or glob, e.g. placeholder_*.
        #[arg(long = "type")]
        event_type: Option<String>,
        /// Only this principal.
        #[arg(long)]
        principal: Option<String>,
        /// Which page.
        #[command(flatten)]
        page: PageArgs,
    },
    /// Verify the hash chain on the server (exit 2 when broken), or an export offline.
    Verify {
        /// Verify this `audit export` file instead, with no server: the chain, the Merkle
        /// tree and every checkpoint's signature (exit 1 with the first bad seq).
        #[arg(long, requires = "public_key")]
        offline: Option<PathBuf>,
        /// The checkpoint key to trust (PEM, from `GET /api/audit/checkpoint-key`).
        #[arg(long, requires = "offline")]
        public_key: Option<PathBuf>,
    },
    /// Write every event and checkpoint to a file (JSON lines), for offline verification.
    Export {
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
    },
}

/// `ca` verbs.
#[derive(Debug, Subcommand)]
pub enum CaCmd {
    /// Print the CA certificate (PEM), or write it to a file.
    Export {
        /// Write to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// A role by its wire name.
fn parse_role(s: &str) -> Result<excalibur_core::ids::Role, String> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| format!("`{s}` is not a role: use admin, operator or introspection"))
}
