//! `excalibur-ctl`: the operator CLI. A client of the REST API only.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Parser as _;
use excalibur_ctl::cli::{
    AuditCmd, CaCmd, Cli, Command, CredentialCmd, CryptoCmd, DocumentCmd, FlowsCmd, NamespaceCmd,
    PlaceholderCmd, PolicyCmd, ProviderCmd, RuleCmd, SessionCmd, Sigv4Cmd, SshCmd, TokenCmd,
    WebhookCmd, WorkloadCmd,
};
use excalibur_ctl::client::{ApiBase, Client};
use serde_json::{Value, json};

mod table;

/// Splits `Type::"id"` (quotes optional).
fn entity(s: &str) -> anyhow::Result<(String, String)> {
    let Some((ty, id)) = s.split_once("::") else {
        bail!("`{s}` is not `Type::\"id\"`")
    };
    Ok((ty.to_owned(), id.trim_matches('"').to_owned()))
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

fn field(v: &Value, name: &str) -> String {
    v.get(name).map(Value::to_string).unwrap_or_default()
}

/// `add|list|delete` for objects configured from a JSON document (crypto mappings, SSH
/// routes) at the collection `base`.
async fn document_cmd(
    client: &Client,
    json: bool,
    base: &[&str],
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
            show(&client.post(base, &doc).await?);
        }
        DocumentCmd::List => show(&client.get(base, &[]).await?),
        DocumentCmd::Delete { id } => {
            client.delete(&[base, &[id.as_str()]].concat()).await?;
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

/// `audit verify --offline`: no server is asked anything.
fn verify_offline(file: &std::path::Path, key: &std::path::Path) -> anyhow::Result<ExitCode> {
    let pem =
        std::fs::read_to_string(key).with_context(|| format!("cannot read {}", key.display()))?;
    let Some(key) = excalibur_core::merkle::parse_public_key_pem(&pem) else {
        bail!("{} is not an Ed25519 PEM public key", key.display())
    };
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    match excalibur_ctl::offline::verify(&text, &key) {
        Ok(v) => {
            match v.latest {
                Some((size, root)) => println!(
                    "export intact: {} events, {} checkpoints verified; latest covers {size} events, root {root}",
                    v.events, v.checkpoints
                ),
                None => println!(
                    "export chain intact: {} events; no checkpoint in the file",
                    v.events
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(b) => {
            match b.first_bad_seq() {
                Some(seq) => println!("export BROKEN: first bad seq {seq}: {b}"),
                None => println!("export BROKEN: {b}"),
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `audit export`: every event (oldest first, paged) and every checkpoint.
async fn export(client: &Client, out: &std::path::Path) -> anyhow::Result<(usize, usize)> {
    use std::io::Write as _;
    let file =
        std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut w = std::io::BufWriter::new(file);
    let (mut events, mut checkpoints) = (0usize, 0usize);
    let mut after = 0i64;
    loop {
        let after_s = after.to_string();
        let page = client
            .get(
                &["api", "audit"],
                &[
                    ("after_seq", after_s.as_str()),
                    ("order", "asc"),
                    ("limit", "1000"),
                ],
            )
            .await?;
        let page = page.as_array().cloned().unwrap_or_default();
        let Some(last) = page.last() else { break };
        after = last
            .get("seq")
            .and_then(Value::as_i64)
            .context("an event without seq")?;
        for e in page {
            writeln!(w, "{}", json!({"event": e}))?;
            events += 1;
        }
    }
    let mut after = 0u64;
    loop {
        let after_s = after.to_string();
        let page = client
            .get(
                &["api", "audit", "checkpoints"],
                &[("after", after_s.as_str()), ("limit", "1000")],
            )
            .await?;
        let page = page.as_array().cloned().unwrap_or_default();
        let Some(last) = page.last() else { break };
        after = last
            .get("tree_size")
            .and_then(Value::as_u64)
            .context("a checkpoint without tree_size")?;
        for c in page {
            writeln!(w, "{}", json!({"checkpoint": c}))?;
            checkpoints += 1;
        }
    }
    w.flush()?;
    Ok((events, checkpoints))
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Audit(AuditCmd::Verify {
        offline: Some(file),
        public_key: Some(key),
    }) = &cli.command
    {
        return verify_offline(file, key);
    }
    let base = ApiBase::parse(&cli.api_url, cli.insecure_http)?;
    let client = Client::new(base, cli.token.clone(), cli.cacert.as_deref())?;
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
        ("EXPIRES", "expires_at"),
        ("EXPIRED", "expired"),
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
        ("SEQ", "seq"),
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
                .post(&["api", "placeholders"], &json!({"placeholder": name, "real_value": real_value, "provider_id": provider, "route_family": route_family}),
                )
                .await?;
            show(&v, PLACEHOLDER_COLS);
        }
        Command::Placeholder(PlaceholderCmd::List) => show(
            &client.get(&["api", "placeholders"], &[]).await?,
            PLACEHOLDER_COLS,
        ),
        Command::Placeholder(PlaceholderCmd::Delete { name }) => {
            client.delete(&["api", "placeholders", &name]).await?;
            println!("deleted {name}");
        }
        Command::Provider(ProviderCmd::Add {
            id,
            hosts,
            passthrough,
            dangerous_allow_plaintext,
        }) => {
            let v = client
                .post(
                    &["api", "providers"],
                    &json!({"id": id, "hosts": hosts, "passthrough": passthrough,
                            "dangerous_allow_plaintext": dangerous_allow_plaintext}),
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
                &client.get(&["api", "providers"], &[]).await?,
                &[
                    ("ID", "id"),
                    ("HOSTS", "hosts"),
                    ("PASSTHROUGH", "passthrough"),
                ],
            );
        }
        Command::Provider(ProviderCmd::Delete { id }) => {
            client.delete(&["api", "providers", &id]).await?;
            println!("deleted {id}");
        }
        Command::Token(TokenCmd::Create { name, role }) => {
            let v = client
                .post(&["api", "tokens"], &json!({"name": name, "role": role}))
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
        Command::Token(TokenCmd::List) => {
            show(&client.get(&["api", "tokens"], &[]).await?, TOKEN_COLS)
        }
        Command::Token(TokenCmd::Revoke { id }) => {
            show(&client.delete(&["api", "tokens", &id]).await?, TOKEN_COLS)
        }
        Command::ServiceCredential(CredentialCmd::Create {
            name,
            user,
            source,
            allowed_domains,
        }) => {
            let v = client
                .post(&["api", "service-credentials"], &json!({"name": name, "user": user, "source_network": source, "allowed_domains": allowed_domains}),
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
        Command::ServiceCredential(CredentialCmd::List) => show(
            &client.get(&["api", "service-credentials"], &[]).await?,
            CRED_COLS,
        ),
        Command::ServiceCredential(CredentialCmd::Revoke { id }) => {
            show(
                &client.delete(&["api", "service-credentials", &id]).await?,
                CRED_COLS,
            );
        }
        Command::TranslationRule(RuleCmd::Add(a)) => {
            let v = client
                .post(&["api", "translation-rules"], &json!({"principal": a.principal, "placeholder": a.placeholder, "hosts": a.hosts,
                           "path_prefix": a.path_prefix, "methods": a.methods, "substitute_body": a.substitute_body}),
                )
                .await?;
            show(&v, RULE_COLS);
        }
        Command::TranslationRule(RuleCmd::List) => show(
            &client.get(&["api", "translation-rules"], &[]).await?,
            RULE_COLS,
        ),
        Command::TranslationRule(RuleCmd::Delete { id }) => {
            client.delete(&["api", "translation-rules", &id]).await?;
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
                    &["api", "policies"],
                    &json!({"id": id, "description": description, "policy": text}),
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
                &client.get(&["api", "policies"], &[]).await?,
                &[
                    ("ID", "id"),
                    ("DESCRIPTION", "description"),
                    ("CREATED", "created_at"),
                ],
            );
        }
        Command::Policy(PolicyCmd::Delete { id }) => {
            client.delete(&["api", "policies", &id]).await?;
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
            tags,
            actor,
            scopes,
        }) => {
            let (ptype, pid) = entity(&principal)?;
            let (rtype, rid) = entity(&resource)?;
            let mut tag_map = serde_json::Map::new();
            for t in &tags {
                let Some((k, v)) = t.split_once('=') else {
                    bail!("`--tag {t}` is not `name=value`")
                };
                tag_map.insert(k.to_owned(), json!(v));
            }
            let body = json!({
                "principal": {"type": ptype, "id": pid, "namespace": namespace, "factors_completed": factors,
                              "tags": tag_map, "actor": actor, "scopes": scopes},
                "action": action,
                "resource": {"type": rtype, "id": rid},
                "context": {"host": host, "path": path, "method": method, "port": port},
            });
            let v = client.post(&["api", "policies", "evaluate"], &body).await?;
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
                    &["api", "namespaces"],
                    &json!({"name": name, "allowed_domains": allowed_domains}),
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
                &client.get(&["api", "namespaces"], &[]).await?,
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
                &["api", "crypto", "jwt-bearer", "mappings"],
                MAPPING_COLUMNS,
                cmd,
            )
            .await?
        }
        Command::Crypto(CryptoCmd::Dpop(cmd)) => {
            document_cmd(
                &client,
                json,
                &["api", "crypto", "dpop", "mappings"],
                MAPPING_COLUMNS,
                cmd,
            )
            .await?
        }
        Command::Crypto(CryptoCmd::Mtls(cmd)) => {
            document_cmd(
                &client,
                json,
                &["api", "crypto", "mtls", "mappings"],
                MAPPING_COLUMNS,
                cmd,
            )
            .await?
        }
        Command::Crypto(CryptoCmd::OauthRefresh(cmd)) => {
            document_cmd(
                &client,
                json,
                &["api", "crypto", "oauth-refresh", "mappings"],
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
                    .post(&["api", "crypto", "sigv4", "mappings"], &json!({"id": id, "provider_id": provider, "target_host": target_host,
                               "path_prefix": path_prefix, "region": region, "service": service,
                               "real_access_key_id": access_key_id, "real_secret_access_key": secret,
                               "real_session_token": token}),
                    )
                    .await?;
                show(&v, SIGV4_COLUMNS);
            }
            Sigv4Cmd::List => show(
                &client
                    .get(&["api", "crypto", "sigv4", "mappings"], &[])
                    .await?,
                SIGV4_COLUMNS,
            ),
            Sigv4Cmd::Delete { id } => {
                client
                    .delete(&["api", "crypto", "sigv4", "mappings", &id])
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
                    .post(&["api", "crypto", "sigv4", "presign"], &json!({"mapping_id": mapping, "path": path, "method": method, "expires_in": expires_in}),
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
            &client.get(&["api", "workloads"], &[]).await?,
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
        Command::Workload(WorkloadCmd::Revocations) => show(
            &client.get(&["api", "revocations"], &[]).await?,
            &[
                ("ID", "id"),
                ("PRINCIPAL", "principal"),
                ("CREATED", "created_at"),
                ("BY", "actor"),
            ],
        ),
        Command::Workload(WorkloadCmd::Lift { id }) => {
            client.delete(&["api", "revocations", &id]).await?;
            println!("lifted {id}");
        }
        Command::Workload(WorkloadCmd::Revoke { id, jti, principal }) => {
            let v = client
                .post(
                    &["api", "revocations"],
                    &json!({"workload_id": id, "jti": jti, "principal": principal}),
                )
                .await?;
            show(&v, &[("REVOKED", "revoked")]);
        }
        Command::Webhook(WebhookCmd::Add { url, event_types }) => {
            let v = client
                .post(
                    &["api", "webhooks"],
                    &json!({"url": url, "event_types": event_types}),
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
            &client.get(&["api", "webhooks"], &[]).await?,
            &[
                ("ID", "id"),
                ("URL", "url"),
                ("EVENT TYPES", "event_types"),
                ("SECRET", "secret_fingerprint"),
            ],
        ),
        Command::Webhook(WebhookCmd::Deliveries { id }) => show(
            &client
                .get(&["api", "webhooks", &id, "deliveries"], &[])
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
            client.delete(&["api", "webhooks", &id]).await?;
            println!("deleted {id}");
        }
        Command::Flows(FlowsCmd::List {
            principal,
            host,
            decision,
            page,
        }) => {
            let mut q = page.query();
            q.extend(principal.map(|v| ("principal", v)));
            q.extend(host.map(|v| ("host", v)));
            q.extend(decision.map(|v| ("decision", v)));
            let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();
            show(&client.get(&["api", "flows"], &q).await?, FLOW_COLS);
        }
        Command::Audit(AuditCmd::List {
            event_type,
            principal,
            page,
        }) => {
            let mut q = page.query();
            q.extend(event_type.map(|v| ("type", v)));
            q.extend(principal.map(|v| ("principal", v)));
            let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();
            show(&client.get(&["api", "audit"], &q).await?, AUDIT_COLS);
        }
        Command::Audit(AuditCmd::Export { out }) => {
            let (events, checkpoints) = export(&client, &out).await?;
            println!(
                "wrote {events} events and {checkpoints} checkpoints to {}",
                out.display()
            );
        }
        Command::Audit(AuditCmd::Verify { .. }) => {
            let v = client.get(&["api", "audit", "verify"], &[]).await?;
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
            document_cmd(
                &client,
                json,
                &["api", "ssh", "routes"],
                SSH_ROUTE_COLS,
                cmd,
            )
            .await?;
        }
        Command::Ssh(SshCmd::Gateway) => {
            let v = client.get(&["api", "ssh", "gateway"], &[]).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                println!("host key:   {}", field(&v, "host_key"));
                println!("client key: {}", field(&v, "client_key"));
            }
        }
        Command::Session(SessionCmd::List) => {
            show(&client.get(&["api", "sessions"], &[]).await?, SESSION_COLS);
        }
        Command::Session(SessionCmd::Revoke { id }) => {
            let v = client
                .post(
                    &["api", "sessions", &id, "revoke"],
                    &Value::Object(Default::default()),
                )
                .await?;
            show(&v, SESSION_COLS);
        }
        Command::Import { file } => {
            let text = read_value(None, Some(file))?;
            let doc: Value = serde_json::from_str(&text).context("the document is not JSON")?;
            let v = client.post(&["api", "import"], &doc).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                let n = |k: &str| v.get(k).and_then(Value::as_array).map_or(0, Vec::len);
                println!(
                    "imported {} providers, {} placeholders, {} translation rules, {} service credentials",
                    n("providers"),
                    n("placeholders"),
                    n("translation_rules"),
                    n("service_credentials")
                );
                // The tokens exist only in this answer: print them (shown once).
                show(
                    &v.get("service_credentials").cloned().unwrap_or_default(),
                    &[
                        ("NAME", "name"),
                        ("ID", "id"),
                        ("TOKEN (shown once)", "token"),
                    ],
                );
            }
        }
        Command::Ca(CaCmd::Export { out }) => {
            let pem = client.get_text(&["api", "ca.pem"]).await?;
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
