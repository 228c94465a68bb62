//! Who may do what: `token`, `service-credential`, `translation-rule`, `policy`,
//! `namespace`.

use std::process::ExitCode;

use anyhow::bail;
use excalibur_core::api::{
    CreatePolicy, CreateServiceCredential, CreateToken, CreateTranslationRule, EvalContext,
    EvalPrincipal, EvalResource, EvaluateRequest, Namespace,
};
use excalibur_ctl::cli::{CredentialCmd, NamespaceCmd, PolicyCmd, RuleCmd, TokenCmd};
use serde_json::Value;

use super::{Columns, Ctx, read_value};

const TOKEN_COLS: Columns = &[
    ("ID", "id"),
    ("NAME", "name"),
    ("ROLE", "role"),
    ("PREFIX", "prefix"),
    ("CREATED", "created_at"),
    ("REVOKED", "revoked_at"),
];
const TOKEN_CREATED_COLS: Columns = &[
    ("ID", "id"),
    ("NAME", "name"),
    ("ROLE", "role"),
    ("TOKEN (shown once)", "token"),
];
const CRED_COLS: Columns = &[
    ("ID", "id"),
    ("NAME", "name"),
    ("USER", "user"),
    ("SOURCE", "source_network"),
    ("ALLOWED DOMAINS", "allowed_domains"),
    ("PREFIX", "prefix"),
    ("CREATED", "created_at"),
    ("REVOKED", "revoked_reason"),
];
const CRED_CREATED_COLS: Columns = &[
    ("ID", "id"),
    ("NAME", "name"),
    ("SOURCE", "source_network"),
    ("TOKEN (shown once)", "token"),
];
const RULE_COLS: Columns = &[
    ("ID", "id"),
    ("PRINCIPAL", "principal"),
    ("PLACEHOLDER", "placeholder"),
    ("HOSTS", "hosts"),
    ("PATH PREFIX", "path_prefix"),
    ("METHODS", "methods"),
];
const POLICY_COLS: Columns = &[
    ("ID", "id"),
    ("DESCRIPTION", "description"),
    ("CREATED", "created_at"),
];
const DECISION_COLS: Columns = &[
    ("DECISION", "decision"),
    ("REASON", "reason"),
    ("POLICIES", "policies"),
];
const NAMESPACE_COLS: Columns = &[
    ("NAMESPACE", "name"),
    ("ALLOWED DOMAINS", "allowed_domains"),
];

pub(crate) async fn token(ctx: &Ctx, cmd: TokenCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        TokenCmd::Create { name, role } => {
            let body = CreateToken { name, role };
            ctx.create(&["api", "tokens"], &body, TOKEN_CREATED_COLS)
                .await
        }
        TokenCmd::List => ctx.list(&["api", "tokens"], TOKEN_COLS).await,
        TokenCmd::Revoke { id } => {
            ctx.show(
                &ctx.client.delete(&["api", "tokens", &id]).await?,
                TOKEN_COLS,
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub(crate) async fn credential(ctx: &Ctx, cmd: CredentialCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        CredentialCmd::Create {
            name,
            user,
            source,
            allowed_domains,
        } => {
            let body = CreateServiceCredential {
                name,
                user,
                source_network: source,
                allowed_domains,
                expires_at: None,
            };
            ctx.create(&["api", "service-credentials"], &body, CRED_CREATED_COLS)
                .await
        }
        CredentialCmd::List => ctx.list(&["api", "service-credentials"], CRED_COLS).await,
        CredentialCmd::Revoke { id } => {
            let v = ctx
                .client
                .delete(&["api", "service-credentials", &id])
                .await?;
            ctx.show(&v, CRED_COLS);
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub(crate) async fn rule(ctx: &Ctx, cmd: RuleCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        RuleCmd::Add(a) => {
            let body = CreateTranslationRule {
                principal: a.principal,
                placeholder: a.placeholder,
                hosts: a.hosts,
                path_prefix: a.path_prefix,
                methods: a.methods,
                substitute_body: a.substitute_body,
            };
            ctx.create(&["api", "translation-rules"], &body, RULE_COLS)
                .await
        }
        RuleCmd::List => ctx.list(&["api", "translation-rules"], RULE_COLS).await,
        RuleCmd::Delete { id } => ctx.delete(&["api", "translation-rules", &id], &id).await,
    }
}

/// Splits `Type::"id"` (quotes optional).
fn entity(s: &str) -> anyhow::Result<(String, String)> {
    let Some((ty, id)) = s.split_once("::") else {
        bail!("`{s}` is not `Type::\"id\"`")
    };
    Ok((ty.to_owned(), id.trim_matches('"').to_owned()))
}

pub(crate) async fn policy(ctx: &Ctx, cmd: PolicyCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        PolicyCmd::Add {
            id,
            file,
            policy,
            description,
        } => {
            let body = CreatePolicy {
                id,
                description,
                policy: read_value(policy, file)?,
            };
            ctx.create(&["api", "policies"], &body, POLICY_COLS).await
        }
        PolicyCmd::List => ctx.list(&["api", "policies"], POLICY_COLS).await,
        PolicyCmd::Delete { id } => ctx.delete(&["api", "policies", &id], &id).await,
        test @ PolicyCmd::Test { .. } => policy_test(ctx, test).await,
    }
}

/// `policy test`: a dry run; exit 3 unless allowed.
async fn policy_test(ctx: &Ctx, cmd: PolicyCmd) -> anyhow::Result<ExitCode> {
    let PolicyCmd::Test {
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
    } = cmd
    else {
        bail!("not a policy test")
    };
    let (kind, id) = entity(&principal)?;
    let (rkind, rid) = entity(&resource)?;
    let mut tag_map = std::collections::BTreeMap::new();
    for t in &tags {
        let Some((k, v)) = t.split_once('=') else {
            bail!("`--tag {t}` is not `name=value`")
        };
        tag_map.insert(k.to_owned(), v.to_owned());
    }
    let body = EvaluateRequest {
        principal: EvalPrincipal {
            kind,
            id,
            namespace,
            factors_completed: factors,
            tags: tag_map,
            actor,
            scopes,
            ..EvalPrincipal::default()
        },
        action,
        resource: EvalResource {
            kind: rkind,
            id: rid,
        },
        context: EvalContext {
            host,
            path,
            method,
            port,
            scheme: None,
        },
    };
    let v = ctx
        .client
        .post(&["api", "policies", "evaluate"], &body)
        .await?;
    ctx.show(&v, DECISION_COLS);
    Ok(
        if v.get("decision").and_then(Value::as_str) == Some("allow") {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(3)
        },
    )
}

pub(crate) async fn namespace(ctx: &Ctx, cmd: NamespaceCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        NamespaceCmd::Add {
            name,
            allowed_domains,
        } => {
            let body = Namespace {
                name,
                allowed_domains,
            };
            ctx.create(&["api", "namespaces"], &body, NAMESPACE_COLS)
                .await
        }
        NamespaceCmd::List => ctx.list(&["api", "namespaces"], NAMESPACE_COLS).await,
    }
}
