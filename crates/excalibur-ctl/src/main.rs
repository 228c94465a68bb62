//! `excalibur-ctl`: the operator CLI. A client of the REST API only.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};

mod table;

/// Operate an Excalibur gateway through its REST API.
#[derive(Debug, Parser)]
#[command(name = "excalibur-ctl", version, about)]
struct Cli {
    /// Base URL of the API.
    #[arg(
        long,
        env = "EXCALIBUR_URL",
        default_value = "http://127.0.0.1:8443",
        global = true
    )]
    url: String,
    /// API token (admin for writes, operator for reads).
    #[arg(long, env = "EXCALIBUR_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// CA certificate (PEM) to trust for an https:// URL, e.g. the output of `ca export`.
    #[arg(long, env = "EXCALIBUR_CACERT", global = true)]
    cacert: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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
}

#[derive(Debug, Subcommand)]
enum PlaceholderCmd {
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

#[derive(Debug, Subcommand)]
enum ProviderCmd {
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
    },
    /// List providers.
    List,
    /// Delete a provider.
    Delete {
        /// Provider id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCmd {
    /// Mint an API token (shown once).
    Create {
        /// Label.
        #[arg(long)]
        name: String,
        /// `admin` or `operator`.
        #[arg(long, default_value = "operator")]
        role: String,
    },
    /// List tokens.
    List,
    /// Revoke a token.
    Revoke {
        /// Token id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum CredentialCmd {
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

#[derive(Debug, Subcommand)]
enum RuleCmd {
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

#[derive(Debug, Args)]
struct RuleArgs {
    /// Principal id or glob (default: any principal).
    #[arg(long, default_value = "*")]
    principal: String,
    /// Placeholder name or glob.
    #[arg(long)]
    placeholder: String,
    /// Host (exact or *.suffix); repeat for more.
    #[arg(long = "host", required = true)]
    hosts: Vec<String>,
    /// Path prefix.
    #[arg(long, default_value = "/")]
    path_prefix: String,
    /// Method; repeat for more (default: any).
    #[arg(long = "method")]
    methods: Vec<String>,
    /// Also substitute in request bodies.
    #[arg(long)]
    substitute_body: bool,
}

#[derive(Debug, Subcommand)]
enum PolicyCmd {
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
    },
}

/// Splits `Type::"id"` (quotes optional).
fn entity(s: &str) -> anyhow::Result<(String, String)> {
    let Some((ty, id)) = s.split_once("::") else {
        bail!("`{s}` is not `Type::\"id\"`")
    };
    Ok((ty.to_owned(), id.trim_matches('"').to_owned()))
}

#[derive(Debug, Subcommand)]
enum NamespaceCmd {
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

#[derive(Debug, Subcommand)]
enum SshCmd {
    /// SSH routes: user and source network to target.
    #[command(subcommand)]
    Route(DocumentCmd),
    /// The gateway's host key (for known_hosts) and client key (for targets).
    Gateway,
}

#[derive(Debug, Subcommand)]
enum SessionCmd {
    /// List sessions, newest first.
    List,
    /// Revoke a live session: its proxy token stops working and it is closed at once.
    Revoke {
        /// Session id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum CryptoCmd {
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

#[derive(Debug, Subcommand)]
enum DocumentCmd {
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

#[derive(Debug, Subcommand)]
enum Sigv4Cmd {
    /// Create a mapping, or rotate one with --id. The secret key is read from a file or
    /// stdin, never from the command line.
    Add {
        /// Existing mapping to replace (rotation).
        #[arg(long)]
        id: Option<String>,
        /// Provider whose hosts include the target host.
        #[arg(long)]
        provider: String,
        /// Upstream host, e.g. s3.eu-west-1.amazonaws.com (or *.suffix).
        #[arg(long)]
        target_host: String,
        /// Only requests under this path are signed.
        #[arg(long, default_value = "/")]
        path_prefix: String,
        /// Signing region.
        #[arg(long)]
        region: String,
        /// Signing service (s3, sts, ...).
        #[arg(long)]
        service: String,
        /// Access key id.
        #[arg(long)]
        access_key_id: String,
        /// File holding the secret access key, or `-` for stdin.
        #[arg(long)]
        secret_key_file: PathBuf,
        /// File holding a session token (temporary credentials).
        #[arg(long)]
        session_token_file: Option<PathBuf>,
    },
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

#[derive(Debug, Subcommand)]
enum WorkloadCmd {
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
}

#[derive(Debug, Subcommand)]
enum WebhookCmd {
    /// Add a webhook (a generated signing secret is shown once).
    Add {
        /// Receiver URL.
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

#[derive(Debug, Subcommand)]
enum FlowsCmd {
    /// List recent flows.
    List {
        /// Only this principal.
        #[arg(long)]
        principal: Option<String>,
        /// Only this host.
        #[arg(long)]
        host: Option<String>,
        /// Maximum number of flows.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCmd {
    /// List events, newest first.
    List {
        /// Event type or glob, e.g. placeholder_*.
        #[arg(long = "type")]
        event_type: Option<String>,
        /// Only this principal.
        #[arg(long)]
        principal: Option<String>,
        /// Only events at or after this RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// Maximum number of events.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Verify the hash chain; exits non-zero when it is broken.
    Verify,
}

#[derive(Debug, Subcommand)]
enum CaCmd {
    /// Print the CA certificate (PEM), or write it to a file.
    Export {
        /// Write to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    fn new(cli: &Cli) -> anyhow::Result<Self> {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let mut builder = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30));
        if let Some(path) = &cli.cacert {
            let pem =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .context("--cacert is not a PEM certificate")?;
            builder = builder.tls_certs_only([cert]);
        }
        Ok(Self {
            http: builder.build()?,
            base: cli.url.trim_end_matches('/').to_owned(),
            token: cli.token.clone(),
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            let detail = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v.get("detail").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or(text);
            bail!(
                "{} {}: {detail}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            );
        }
        if text.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).or(Ok(Value::String(text)))
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::DELETE, path, None).await
    }
}

fn field(v: &Value, name: &str) -> String {
    v.get(name).map(Value::to_string).unwrap_or_default()
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `add|list|delete` for objects configured from a JSON document (crypto mappings, SSH
/// routes) at the collection `base`.
async fn document_cmd(
    client: &Client,
    json: bool,
    base: &str,
    columns: &[(&str, &str)],
    cmd: DocumentCmd,
) -> anyhow::Result<()> {
    let show = |v: &Value| {
        if json {
            println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        } else {
            print!("{}", table::render(v, columns));
        }
    };
    match cmd {
        DocumentCmd::Add { file } => {
            let text = read_value(None, Some(file))?;
            let doc: Value = serde_json::from_str(&text).context("the document is not JSON")?;
            show(&client.post(base, doc).await?);
        }
        DocumentCmd::List => show(&client.get(base).await?),
        DocumentCmd::Delete { id } => {
            client.delete(&format!("{base}/{}", enc(&id))).await?;
            println!("deleted {id}");
        }
    }
    Ok(())
}

/// The seed's Sessions columns.
const SESSION_COLS: &[(&str, &str)] = &[
    ("SESSION", "id"),
    ("USER", "user"),
    ("SOURCE", "source"),
    ("STARTED", "started_at"),
    ("STATE", "state"),
    ("TARGET", "target"),
];

const SSH_ROUTE_COLS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("USER", "user"),
    ("SOURCE NETWORK", "source_network"),
    ("TARGET HOST", "target_host"),
    ("TARGET PORT", "target_port"),
    ("TARGET USER", "target_user"),
    ("ALLOWED DOMAINS", "allowed_domains"),
];

/// The seed's Crypto Mediation columns, shared by every family's list.
const MAPPING_COLUMNS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("PROVIDER", "provider_id"),
    ("AUTHORITY", "authority"),
    ("TOKEN HOST", "token_host"),
    ("RESOURCE HOST", "resource_host"),
    ("PATH PREFIX", "path_prefix"),
    ("SURROGATE", "surrogate"),
];

const SIGV4_COLUMNS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("PROVIDER", "provider_id"),
    ("AUTHORITY", "authority"),
    ("PATH PREFIX", "path_prefix"),
    ("REGION", "region"),
    ("SERVICE", "service"),
    ("KEY ID", "access_key_id_prefix"),
    ("FINGERPRINT", "fingerprint"),
];

fn read_value(value: Option<String>, file: Option<PathBuf>) -> anyhow::Result<String> {
    if let Some(v) = value {
        return Ok(v);
    }
    let Some(path) = file else {
        bail!("give --value or --value-file")
    };
    let mut text = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the value from stdin")?;
    } else {
        text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
    }
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let client = Client::new(&cli)?;
    let json = cli.json;
    let show = |v: &Value, cols: &[(&str, &str)]| {
        if json {
            println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        } else {
            print!("{}", table::render(v, cols));
        }
    };
    const PLACEHOLDER_COLS: &[(&str, &str)] = &[
        ("PLACEHOLDER", "placeholder"),
        ("PROVIDER", "provider_id"),
        ("FINGERPRINT", "fingerprint"),
        ("CREATED", "created_at"),
        ("LAST ROTATED", "last_rotated_at"),
    ];
    const TOKEN_COLS: &[(&str, &str)] = &[
        ("ID", "id"),
        ("NAME", "name"),
        ("ROLE", "role"),
        ("PREFIX", "prefix"),
        ("CREATED", "created_at"),
        ("REVOKED", "revoked_at"),
    ];
    const CRED_COLS: &[(&str, &str)] = &[
        ("ID", "id"),
        ("NAME", "name"),
        ("USER", "user"),
        ("SOURCE", "source_network"),
        ("ALLOWED DOMAINS", "allowed_domains"),
        ("PREFIX", "prefix"),
        ("CREATED", "created_at"),
        ("REVOKED", "revoked_reason"),
    ];
    const RULE_COLS: &[(&str, &str)] = &[
        ("ID", "id"),
        ("PRINCIPAL", "principal"),
        ("PLACEHOLDER", "placeholder"),
        ("HOSTS", "hosts"),
        ("PATH PREFIX", "path_prefix"),
        ("METHODS", "methods"),
    ];
    const AUDIT_COLS: &[(&str, &str)] = &[
        ("SEQ", "seq"),
        ("TIME", "ts"),
        ("TYPE", "type"),
        ("PRINCIPAL", "principal"),
        ("DETAILS", "details"),
    ];
    const FLOW_COLS: &[(&str, &str)] = &[
        ("TIME", "ts"),
        ("PRINCIPAL", "principal"),
        ("METHOD", "method"),
        ("HOST", "host"),
        ("PATH", "path"),
        ("STATUS", "status"),
        ("DECISION", "decision"),
        ("PLACEHOLDERS", "placeholders"),
    ];
    match cli.command {
        Command::Placeholder(PlaceholderCmd::Add {
            name,
            value,
            value_file,
            provider,
            route_family,
        }) => {
            let real_value = read_value(value, value_file)?;
            let v = client
                .post(
                    "/api/placeholders",
                    json!({"placeholder": name, "real_value": real_value, "provider_id": provider, "route_family": route_family}),
                )
                .await?;
            show(&v, PLACEHOLDER_COLS);
        }
        Command::Placeholder(PlaceholderCmd::List) => {
            show(&client.get("/api/placeholders").await?, PLACEHOLDER_COLS)
        }
        Command::Placeholder(PlaceholderCmd::Delete { name }) => {
            client
                .delete(&format!("/api/placeholders/{}", enc(&name)))
                .await?;
            println!("deleted {name}");
        }
        Command::Provider(ProviderCmd::Add {
            id,
            hosts,
            passthrough,
        }) => {
            let v = client
                .post(
                    "/api/providers",
                    json!({"id": id, "hosts": hosts, "passthrough": passthrough}),
                )
                .await?;
            show(
                &v,
                &[
                    ("ID", "id"),
                    ("HOSTS", "hosts"),
                    ("PASSTHROUGH", "passthrough"),
                ],
            );
        }
        Command::Provider(ProviderCmd::List) => {
            show(
                &client.get("/api/providers").await?,
                &[
                    ("ID", "id"),
                    ("HOSTS", "hosts"),
                    ("PASSTHROUGH", "passthrough"),
                ],
            );
        }
        Command::Provider(ProviderCmd::Delete { id }) => {
            client
                .delete(&format!("/api/providers/{}", enc(&id)))
                .await?;
            println!("deleted {id}");
        }
        Command::Token(TokenCmd::Create { name, role }) => {
            let v = client
                .post("/api/tokens", json!({"name": name, "role": role}))
                .await?;
            show(
                &v,
                &[
                    ("ID", "id"),
                    ("NAME", "name"),
                    ("ROLE", "role"),
                    ("TOKEN (shown once)", "token"),
                ],
            );
        }
        Command::Token(TokenCmd::List) => show(&client.get("/api/tokens").await?, TOKEN_COLS),
        Command::Token(TokenCmd::Revoke { id }) => show(
            &client.delete(&format!("/api/tokens/{}", enc(&id))).await?,
            TOKEN_COLS,
        ),
        Command::ServiceCredential(CredentialCmd::Create {
            name,
            user,
            source,
            allowed_domains,
        }) => {
            let v = client
                .post(
                    "/api/service-credentials",
                    json!({"name": name, "user": user, "source_network": source, "allowed_domains": allowed_domains}),
                )
                .await?;
            show(
                &v,
                &[
                    ("ID", "id"),
                    ("NAME", "name"),
                    ("SOURCE", "source_network"),
                    ("TOKEN (shown once)", "token"),
                ],
            );
        }
        Command::ServiceCredential(CredentialCmd::List) => {
            show(&client.get("/api/service-credentials").await?, CRED_COLS)
        }
        Command::ServiceCredential(CredentialCmd::Revoke { id }) => {
            show(
                &client
                    .delete(&format!("/api/service-credentials/{}", enc(&id)))
                    .await?,
                CRED_COLS,
            );
        }
        Command::TranslationRule(RuleCmd::Add(a)) => {
            let v = client
                .post(
                    "/api/translation-rules",
                    json!({"principal": a.principal, "placeholder": a.placeholder, "hosts": a.hosts,
                           "path_prefix": a.path_prefix, "methods": a.methods, "substitute_body": a.substitute_body}),
                )
                .await?;
            show(&v, RULE_COLS);
        }
        Command::TranslationRule(RuleCmd::List) => {
            show(&client.get("/api/translation-rules").await?, RULE_COLS)
        }
        Command::TranslationRule(RuleCmd::Delete { id }) => {
            client
                .delete(&format!("/api/translation-rules/{}", enc(&id)))
                .await?;
            println!("deleted {id}");
        }
        Command::Policy(PolicyCmd::Add {
            id,
            file,
            policy,
            description,
        }) => {
            let text = read_value(policy, file)?;
            let v = client
                .post(
                    "/api/policies",
                    json!({"id": id, "description": description, "policy": text}),
                )
                .await?;
            show(
                &v,
                &[
                    ("ID", "id"),
                    ("DESCRIPTION", "description"),
                    ("CREATED", "created_at"),
                ],
            );
        }
        Command::Policy(PolicyCmd::List) => {
            show(
                &client.get("/api/policies").await?,
                &[
                    ("ID", "id"),
                    ("DESCRIPTION", "description"),
                    ("CREATED", "created_at"),
                ],
            );
        }
        Command::Policy(PolicyCmd::Delete { id }) => {
            client
                .delete(&format!("/api/policies/{}", enc(&id)))
                .await?;
            println!("deleted {id}");
        }
        Command::Policy(PolicyCmd::Test {
            principal,
            action,
            resource,
            host,
            path,
            method,
            port,
            namespace,
            factors,
        }) => {
            let (ptype, pid) = entity(&principal)?;
            let (rtype, rid) = entity(&resource)?;
            let body = json!({
                "principal": {"type": ptype, "id": pid, "namespace": namespace, "factors_completed": factors},
                "action": action,
                "resource": {"type": rtype, "id": rid},
                "context": {"host": host, "path": path, "method": method, "port": port},
            });
            let v = client.post("/api/policies/evaluate", body).await?;
            show(
                &v,
                &[
                    ("DECISION", "decision"),
                    ("REASON", "reason"),
                    ("POLICIES", "policies"),
                ],
            );
            if v.get("decision").and_then(Value::as_str) != Some("allow") {
                return Ok(ExitCode::from(3));
            }
        }
        Command::Namespace(NamespaceCmd::Add {
            name,
            allowed_domains,
        }) => {
            let v = client
                .post(
                    "/api/namespaces",
                    json!({"name": name, "allowed_domains": allowed_domains}),
                )
                .await?;
            show(
                &v,
                &[
                    ("NAMESPACE", "name"),
                    ("ALLOWED DOMAINS", "allowed_domains"),
                ],
            );
        }
        Command::Namespace(NamespaceCmd::List) => {
            show(
                &client.get("/api/namespaces").await?,
                &[
                    ("NAMESPACE", "name"),
                    ("ALLOWED DOMAINS", "allowed_domains"),
                ],
            );
        }
        Command::Crypto(CryptoCmd::JwtBearer(cmd)) => {
            document_cmd(
                &client,
                json,
                "/api/crypto/jwt-bearer/mappings",
                MAPPING_COLUMNS,
                cmd,
            )
            .await?
        }
        Command::Crypto(CryptoCmd::Dpop(cmd)) => {
            document_cmd(
                &client,
                json,
                "/api/crypto/dpop/mappings",
                MAPPING_COLUMNS,
                cmd,
            )
            .await?
        }
        Command::Crypto(CryptoCmd::Mtls(cmd)) => {
            document_cmd(
                &client,
                json,
                "/api/crypto/mtls/mappings",
                MAPPING_COLUMNS,
                cmd,
            )
            .await?
        }
        Command::Crypto(CryptoCmd::OauthRefresh(cmd)) => {
            document_cmd(
                &client,
                json,
                "/api/crypto/oauth-refresh/mappings",
                MAPPING_COLUMNS,
                cmd,
            )
            .await?;
        }
        Command::Crypto(CryptoCmd::Sigv4(cmd)) => match cmd {
            Sigv4Cmd::Add {
                id,
                provider,
                target_host,
                path_prefix,
                region,
                service,
                access_key_id,
                secret_key_file,
                session_token_file,
            } => {
                let secret = read_value(None, Some(secret_key_file))?;
                let token = session_token_file
                    .map(|f| read_value(None, Some(f)))
                    .transpose()?;
                let v = client
                    .post(
                        "/api/crypto/sigv4/mappings",
                        json!({"id": id, "provider_id": provider, "target_host": target_host,
                               "path_prefix": path_prefix, "region": region, "service": service,
                               "real_access_key_id": access_key_id, "real_secret_access_key": secret,
                               "real_session_token": token}),
                    )
                    .await?;
                show(&v, SIGV4_COLUMNS);
            }
            Sigv4Cmd::List => show(
                &client.get("/api/crypto/sigv4/mappings").await?,
                SIGV4_COLUMNS,
            ),
            Sigv4Cmd::Delete { id } => {
                client
                    .delete(&format!("/api/crypto/sigv4/mappings/{id}"))
                    .await?;
                println!("deleted {id}");
            }
            Sigv4Cmd::Presign {
                mapping,
                path,
                method,
                expires_in,
            } => {
                let v = client
                    .post(
                        "/api/crypto/sigv4/presign",
                        json!({"mapping_id": mapping, "path": path, "method": method, "expires_in": expires_in}),
                    )
                    .await?;
                if cli.json {
                    println!("{v}");
                } else {
                    println!(
                        "{}",
                        v.get("url").and_then(Value::as_str).unwrap_or_default()
                    );
                }
            }
        },
        Command::Workload(WorkloadCmd::List) => show(
            &client.get("/api/workloads").await?,
            &[
                ("ID", "id"),
                ("NAMESPACE", "namespace"),
                ("PRINCIPAL", "principal"),
                ("ATTESTATION", "attestation"),
                ("SOURCE", "source"),
                ("TOKEN PREFIX", "token_prefix"),
                ("CREATED", "created_at"),
            ],
        ),
        Command::Workload(WorkloadCmd::Revoke { id, jti, principal }) => {
            let v = client
                .post(
                    "/api/revocations",
                    json!({"workload_id": id, "jti": jti, "principal": principal}),
                )
                .await?;
            show(&v, &[("REVOKED", "revoked")]);
        }
        Command::Webhook(WebhookCmd::Add { url, event_types }) => {
            let v = client
                .post(
                    "/api/webhooks",
                    json!({"url": url, "event_types": event_types}),
                )
                .await?;
            show(
                &v,
                &[
                    ("ID", "id"),
                    ("URL", "url"),
                    ("SECRET (shown once)", "secret"),
                ],
            );
        }
        Command::Webhook(WebhookCmd::List) => show(
            &client.get("/api/webhooks").await?,
            &[
                ("ID", "id"),
                ("URL", "url"),
                ("EVENT TYPES", "event_types"),
                ("SECRET", "secret_fingerprint"),
            ],
        ),
        Command::Webhook(WebhookCmd::Deliveries { id }) => show(
            &client
                .get(&format!("/api/webhooks/{}/deliveries", enc(&id)))
                .await?,
            &[
                ("DELIVERY", "id"),
                ("EVENT", "event_type"),
                ("SEQ", "event_seq"),
                ("STATUS", "status"),
                ("ATTEMPTS", "attempts"),
                ("LAST STATUS", "last_status"),
                ("LAST ERROR", "last_error"),
            ],
        ),
        Command::Webhook(WebhookCmd::Delete { id }) => {
            client
                .delete(&format!("/api/webhooks/{}", enc(&id)))
                .await?;
            println!("deleted {id}");
        }
        Command::Flows(FlowsCmd::List {
            principal,
            host,
            limit,
        }) => {
            let mut q = format!("/api/flows?limit={limit}");
            if let Some(p) = principal {
                q.push_str(&format!("&principal={}", enc(&p)));
            }
            if let Some(h) = host {
                q.push_str(&format!("&host={}", enc(&h)));
            }
            show(&client.get(&q).await?, FLOW_COLS);
        }
        Command::Audit(AuditCmd::List {
            event_type,
            principal,
            since,
            limit,
        }) => {
            let mut q = format!("/api/audit?limit={limit}");
            for (k, v) in [
                ("type", event_type),
                ("principal", principal),
                ("since", since),
            ] {
                if let Some(v) = v {
                    q.push_str(&format!("&{k}={}", enc(&v)));
                }
            }
            show(&client.get(&q).await?, AUDIT_COLS);
        }
        Command::Audit(AuditCmd::Verify) => {
            let v = client.get("/api/audit/verify").await?;
            let ok = v.get("ok").and_then(Value::as_bool).unwrap_or(false);
            if json {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else if ok {
                println!(
                    "audit chain intact: {} events, head seq {}",
                    field(&v, "checked"),
                    field(&v, "head_seq")
                );
            } else {
                println!(
                    "audit chain BROKEN at seq {}: {}",
                    field(&v, "first_broken_seq"),
                    v.get("reason")
                        .and_then(Value::as_str)
                        .unwrap_or("unknown reason")
                );
            }
            if !ok {
                return Ok(ExitCode::from(2));
            }
        }
        Command::Ssh(SshCmd::Route(cmd)) => {
            document_cmd(&client, json, "/api/ssh/routes", SSH_ROUTE_COLS, cmd).await?;
        }
        Command::Ssh(SshCmd::Gateway) => {
            let v = client.get("/api/ssh/gateway").await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                println!("host key:   {}", field(&v, "host_key"));
                println!("client key: {}", field(&v, "client_key"));
            }
        }
        Command::Session(SessionCmd::List) => {
            show(&client.get("/api/sessions").await?, SESSION_COLS);
        }
        Command::Session(SessionCmd::Revoke { id }) => {
            let v = client
                .post(
                    &format!("/api/sessions/{}/revoke", enc(&id)),
                    Value::Object(Default::default()),
                )
                .await?;
            show(&v, SESSION_COLS);
        }
        Command::Ca(CaCmd::Export { out }) => {
            let pem = client.get("/api/ca.pem").await?;
            let pem = pem.as_str().unwrap_or_default().to_owned();
            match out {
                Some(path) => {
                    use std::io::Write as _;
                    std::fs::File::create(&path)
                        .and_then(|mut f| f.write_all(pem.as_bytes()))
                        .with_context(|| format!("cannot write {}", path.display()))?;
                }
                None => print!("{pem}"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
