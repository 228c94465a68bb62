//! Input validation for API writes; each failure names the field and the rule.

use excalibur_core::api::{
    CreateServiceCredential, CreateTranslationRule, Provider, UpsertPlaceholder,
};
use excalibur_core::hosts::HostPattern;

use crate::ApiError;

/// Longest real value accepted.
const MAX_SECRET_BYTES: usize = 16 * 1024;

fn ident(field: &str, v: &str, min: usize, max: usize, extra: &[u8]) -> Result<(), ApiError> {
    let ok = (min..=max).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b));
    if ok {
        return Ok(());
    }
    let allowed: String = extra
        .iter()
        .map(|b| format!("`{}`", char::from(*b)))
        .collect::<Vec<_>>()
        .join(", ");
    Err(ApiError::unprocessable(format!(
        "`{field}` must be {min} to {max} characters of letters, digits and {allowed}"
    )))
}

fn hosts(field: &str, list: &[String], allow_empty: bool) -> Result<(), ApiError> {
    if list.is_empty() && !allow_empty {
        return Err(ApiError::unprocessable(format!(
            "`{field}` must list at least one host"
        )));
    }
    for h in list {
        HostPattern::parse(h).map_err(|e| ApiError::unprocessable(format!("`{field}`: {e}")))?;
    }
    Ok(())
}

/// Placeholder names are distinctive tokens so they never match ordinary text.
pub(crate) fn placeholder(req: &UpsertPlaceholder) -> Result<(), ApiError> {
    ident("placeholder", &req.placeholder, 8, 128, b"_-.")?;
    ident("provider_id", &req.provider_id, 1, 64, b"_-")?;
    if let Some(rf) = &req.route_family {
        ident("route_family", rf, 1, 64, b"_-")?;
    }
    if req.real_value.is_empty() || req.real_value.len() > MAX_SECRET_BYTES {
        return Err(ApiError::unprocessable(format!(
            "`real_value` must be 1 to {MAX_SECRET_BYTES} bytes"
        )));
    }
    // The value is written into HTTP headers: control characters would split them.
    if req
        .real_value
        .expose()
        .bytes()
        .any(|b| b.is_ascii_control())
    {
        return Err(ApiError::unprocessable(
            "`real_value` must not contain control characters (CR, LF, NUL, ...)",
        ));
    }
    expires("expires_at", req.expires_at.as_deref())
}

fn expires(field: &str, v: Option<&str>) -> Result<(), ApiError> {
    if let Some(v) = v {
        excalibur_core::time::Timestamp::parse(v)
            .map_err(|e| ApiError::unprocessable(format!("`{field}`: {e}")))?;
    }
    Ok(())
}

pub(crate) fn webhook(w: &excalibur_core::api::CreateWebhook) -> Result<(), ApiError> {
    let url = w.url.to_ascii_lowercase();
    if !(url.starts_with("https://") || url.starts_with("http://"))
        || w.url.len() > 2048
        || w.url.contains(char::is_whitespace)
    {
        return Err(ApiError::unprocessable(
            "`url` must be an http:// or https:// URL",
        ));
    }
    let bad_type = |t: &String| {
        t.is_empty()
            || t.len() > 64
            || !t
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'*')
    };
    if w.event_types.is_empty() || w.event_types.iter().any(bad_type) {
        return Err(ApiError::unprocessable(
            "`event_types` must list event types or globs such as `credential_rotated` or `placeholder_*`",
        ));
    }
    if w.secret
        .as_ref()
        .is_some_and(|s| s.len() < 16 || s.len() > 256)
    {
        return Err(ApiError::unprocessable(
            "`secret` must be 16 to 256 characters",
        ));
    }
    Ok(())
}

pub(crate) fn provider(p: &Provider) -> Result<(), ApiError> {
    ident("id", &p.id, 1, 64, b"_-")?;
    hosts("hosts", &p.hosts, false)
}

pub(crate) fn token_name(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() || name.len() > 128 {
        return Err(ApiError::unprocessable(
            "`name` must be 1 to 128 characters",
        ));
    }
    Ok(())
}

/// Parses `source_network` as a CIDR (a bare address means a single host).
pub(crate) fn credential(c: &CreateServiceCredential) -> Result<String, ApiError> {
    token_name(&c.name)?;
    ident("user", &c.user, 1, 64, b"_-.@")?;
    hosts("allowed_domains", &c.allowed_domains, true)?;
    expires("expires_at", c.expires_at.as_deref())?;
    let net = c
        .source_network
        .parse::<ipnet::IpNet>()
        .or_else(|_| {
            c.source_network
                .parse::<std::net::IpAddr>()
                .map(ipnet::IpNet::from)
        })
        .map_err(|_| {
            ApiError::unprocessable(format!(
                "`source_network`: `{}` is not a CIDR such as 10.0.0.0/8",
                c.source_network
            ))
        })?;
    Ok(net.trunc().to_string())
}

pub(crate) fn rule(r: &CreateTranslationRule) -> Result<(), ApiError> {
    if r.principal.is_empty() || r.principal.len() > 256 {
        return Err(ApiError::unprocessable(
            "`principal` must be `*`, a principal id or a glob",
        ));
    }
    ident(
        "placeholder",
        &r.placeholder.replace('*', ""),
        0,
        128,
        b"_-.",
    )?;
    if r.placeholder.is_empty() {
        return Err(ApiError::unprocessable(
            "`placeholder` must name a placeholder or a glob",
        ));
    }
    hosts("hosts", &r.hosts, false)?;
    if !r.path_prefix.starts_with('/') {
        return Err(ApiError::unprocessable("`path_prefix` must start with `/`"));
    }
    for m in &r.methods {
        if m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(ApiError::unprocessable(format!(
                "`methods`: `{m}` is not an uppercase HTTP method"
            )));
        }
    }
    Ok(())
}

pub(crate) fn namespace(n: &excalibur_core::api::Namespace) -> Result<(), ApiError> {
    // Kubernetes namespaces, SPIFFE trust domains and OIDC owners all fit here.
    ident("name", &n.name, 1, 255, b"-._")?;
    hosts("allowed_domains", &n.allowed_domains, true)
}

fn printable(field: &str, v: &str, max: usize) -> Result<(), ApiError> {
    if v.is_empty() || v.len() > max || v.bytes().any(|b| b.is_ascii_control()) {
        return Err(ApiError::unprocessable(format!(
            "`{field}` must be 1 to {max} bytes without control characters"
        )));
    }
    Ok(())
}

/// A SigV4 mapping's fields (the provider and host binding are checked by the handler).
pub(crate) fn sigv4(req: &excalibur_core::api::CreateSigv4Mapping) -> Result<(), ApiError> {
    ident("provider_id", &req.provider_id, 1, 64, b"_-")?;
    hosts("target_host", std::slice::from_ref(&req.target_host), false)?;
    if !req.path_prefix.starts_with('/')
        || req.path_prefix.len() > 1024
        || req
            .path_prefix
            .bytes()
            .any(|b| b.is_ascii_control() || b == b' ')
    {
        return Err(ApiError::unprocessable(
            "`path_prefix` must start with `/` (at most 1024 bytes, no spaces)",
        ));
    }
    let lower = |field: &str, v: &str| {
        let ok = (1..=64).contains(&v.len())
            && v.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(())
        } else {
            Err(ApiError::unprocessable(format!(
                "`{field}` must be 1 to 64 of `a-z`, `0-9`, `-`"
            )))
        }
    };
    lower("region", &req.region)?;
    lower("service", &req.service)?;
    match (
        &req.role_arn,
        &req.real_access_key_id,
        &req.real_secret_access_key,
    ) {
        (None, Some(akid), Some(secret)) => {
            ident("real_access_key_id", akid, 16, 128, b"")?;
            printable("real_secret_access_key", secret.expose(), 256)?;
            if let Some(t) = &req.real_session_token {
                printable("real_session_token", t.expose(), 8192)?;
            }
            if req.session_name.is_some()
                || req.duration_seconds.is_some()
                || req.sts_endpoint.is_some()
            {
                return Err(ApiError::unprocessable(
                    "`session_name`, `duration_seconds` and `sts_endpoint` go with `role_arn`",
                ));
            }
            Ok(())
        }
        (Some(role), None, None) if req.real_session_token.is_none() => sigv4_role(req, role),
        _ => Err(ApiError::unprocessable(
            "give either `real_access_key_id` and `real_secret_access_key`, or `role_arn` (no static key)",
        )),
    }
}

/// The assumed-role settings of a SigV4 mapping.
fn sigv4_role(req: &excalibur_core::api::CreateSigv4Mapping, role: &str) -> Result<(), ApiError> {
    // arn:<partition>:iam::<12 digits>:role/<path and name>
    let parts: Vec<&str> = role.splitn(6, ':').collect();
    let ok = matches!(parts.as_slice(), ["arn", partition, "iam", "", account, resource]
        if partition.starts_with("aws")
            && account.len() == 12
            && account.bytes().all(|b| b.is_ascii_digit())
            && resource.strip_prefix("role/").is_some_and(|n| !n.is_empty() && n.len() <= 512
                && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-/".contains(&b))));
    if !ok {
        return Err(ApiError::unprocessable(
            "`role_arn` must be arn:aws:iam::<account>:role/<name>",
        ));
    }
    if let Some(name) = &req.session_name {
        ident("session_name", name, 2, 64, b"+=,.@_-")?;
    }
    if let Some(d) = req.duration_seconds
        && !(900..=43_200).contains(&d)
    {
        return Err(ApiError::unprocessable(
            "`duration_seconds` must be 900 to 43200",
        ));
    }
    if let Some(url) = &req.sts_endpoint {
        let loopback = url.starts_with("http://127.") || url.starts_with("http://[::1]");
        if !(url.starts_with("https://") || loopback)
            || url.len() > 2048
            || url.contains(char::is_whitespace)
        {
            return Err(ApiError::unprocessable(
                "`sts_endpoint` must be an https:// URL (http:// only on loopback)",
            ));
        }
    }
    Ok(())
}

/// A JWT-bearer mapping's fields (provider, hosts and key are checked by the handler).
pub(crate) fn jwt_bearer(
    req: &excalibur_core::api::CreateJwtBearerMapping,
) -> Result<(), ApiError> {
    ident("provider_id", &req.provider_id, 1, 64, b"_-")?;
    hosts("token_host", std::slice::from_ref(&req.token_host), false)?;
    if let Some(h) = &req.resource_host {
        hosts("resource_host", std::slice::from_ref(h), false)?;
    }
    for (field, v) in [
        ("token_host", Some(&req.token_host)),
        ("resource_host", req.resource_host.as_ref()),
    ] {
        if v.is_some_and(|h| h.starts_with("*.")) {
            return Err(ApiError::unprocessable(format!(
                "`{field}` must be an exact host"
            )));
        }
    }
    for (field, v) in [
        ("path_prefix", Some(&req.path_prefix)),
        ("token_path", req.token_path.as_ref()),
    ] {
        if let Some(v) = v
            && (!v.starts_with('/')
                || v.len() > 1024
                || v.bytes().any(|b| b.is_ascii_control() || b == b' '))
        {
            return Err(ApiError::unprocessable(format!(
                "`{field}` must start with `/` (at most 1024 bytes, no spaces)"
            )));
        }
    }
    let federated = req.preset.federated();
    match (&req.issuer, &req.real_private_pem, federated) {
        (Some(issuer), Some(_), false) => printable("issuer", issuer, 512)?,
        (None, None, true) => {}
        (_, _, true) => {
            return Err(ApiError::unprocessable(
                "a federated preset stores no key and signs as Excalibur's issuer: omit `issuer` and `real_private_pem`",
            ));
        }
        _ => {
            return Err(ApiError::unprocessable(
                "`issuer` and `real_private_pem` are required (or choose a federated preset)",
            ));
        }
    }
    if req.preset == excalibur_core::api::JwtBearerPreset::AzureFederated
        && (req.client_id.is_none() || req.token_path.is_none())
    {
        return Err(ApiError::unprocessable(
            "azure_federated needs `client_id` (the app registration) and `token_path` (/<tenant>/oauth2/v2.0/token)",
        ));
    }
    if req.preset == excalibur_core::api::JwtBearerPreset::GcpWorkloadIdentity
        && req.audience.is_none()
    {
        return Err(ApiError::unprocessable(
            "gcp_workload_identity needs `audience`: //iam.googleapis.com/projects/<n>/locations/global/workloadIdentityPools/<pool>/providers/<provider>",
        ));
    }
    for (field, v) in [
        ("subject", &req.subject),
        ("audience", &req.audience),
        ("scope", &req.scope),
        ("client_id", &req.client_id),
    ] {
        if let Some(v) = v {
            printable(field, v, 2048)?;
        }
    }
    match &req.real_private_pem {
        Some(pem) => printable_pem(pem.expose()),
        None => Ok(()),
    }
}

fn printable_pem(pem: &str) -> Result<(), ApiError> {
    if pem.is_empty() || pem.len() > 16 * 1024 || !pem.contains("PRIVATE KEY-----") {
        return Err(ApiError::unprocessable(
            "`real_private_pem` must be a PEM private key (at most 16 KiB)",
        ));
    }
    Ok(())
}

/// An identifier field: 1 to 64 of letters, digits, `_` and `-`.
pub(crate) fn ident_pub(field: &str, v: &str) -> Result<(), ApiError> {
    ident(field, v, 1, 64, b"_-")
}

/// An SSH route's fields (key material is parsed by the handler through [`crate::SshHooks`]);
/// returns the normalized source network.
pub(crate) fn ssh_route(r: &excalibur_core::api::CreateSshRoute) -> Result<String, ApiError> {
    ident("user", &r.user, 1, 64, b"_-.@")?;
    ident("target_user", &r.target_user, 1, 64, b"_-.@")?;
    printable("target_host", &r.target_host, 253)?;
    if r.target_host
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b == b'/' || b == b'@')
    {
        return Err(ApiError::unprocessable(
            "`target_host` must be a host name or an address",
        ));
    }
    if r.target_port == 0 {
        return Err(ApiError::unprocessable("`target_port` must be 1 to 65535"));
    }
    if let Some(id) = &r.id {
        ident("id", id, 1, 64, b"_-")?;
    }
    if r.authorized_keys.len() > 256 {
        return Err(ApiError::unprocessable("at most 256 `authorized_keys`"));
    }
    hosts("allowed_domains", &r.allowed_domains, true)?;
    let net = r
        .source_network
        .parse::<ipnet::IpNet>()
        .or_else(|_| {
            r.source_network
                .parse::<std::net::IpAddr>()
                .map(ipnet::IpNet::from)
        })
        .map_err(|_| {
            ApiError::unprocessable(format!(
                "`source_network`: `{}` is not a CIDR such as 10.0.0.0/8",
                r.source_network
            ))
        })?;
    Ok(net.trunc().to_string())
}

/// The client id and the secrets of an OAuth2 refresh mapping: 1 to 8192 printable
/// characters without spaces (they go into a form body verbatim).
pub(crate) fn oauth_refresh_credentials(
    req: &excalibur_core::api::CreateOauthRefreshMapping,
) -> Result<(), ApiError> {
    for (field, v) in [
        ("client_id", Some(req.client_id.as_str())),
        (
            "real_client_secret",
            req.real_client_secret.as_ref().map(|v| v.expose()),
        ),
        ("real_refresh_token", Some(req.real_refresh_token.expose())),
    ] {
        if let Some(v) = v
            && (v.is_empty() || v.len() > 8192 || !v.bytes().all(|b| (0x21..0x7f).contains(&b)))
        {
            return Err(ApiError::unprocessable(format!(
                "`{field}` must be 1 to 8192 printable characters without spaces"
            )));
        }
    }
    Ok(())
}
