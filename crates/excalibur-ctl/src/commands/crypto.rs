//! `crypto <family>`: mappings whose requests the proxy signs or authenticates, and
//! SigV4 presigning.

use std::process::ExitCode;

use excalibur_core::SecretString;
use excalibur_core::api::{
    CreateDpopMapping, CreateJwtBearerMapping, CreateMtlsMapping, CreateOauthRefreshMapping,
    CreateSigv4Mapping, PresignRequest,
};
use excalibur_ctl::cli::{CryptoCmd, Sigv4Cmd};
use serde_json::Value;

use super::{Columns, Ctx, read_value};

/// The seed's Crypto Mediation columns, shared by every family's list.
const MAPPING_COLUMNS: Columns = &[
    ("ID", "id"),
    ("PROVIDER", "provider_id"),
    ("AUTHORITY", "authority"),
    ("TOKEN HOST", "token_host"),
    ("RESOURCE HOST", "resource_host"),
    ("PATH PREFIX", "path_prefix"),
    ("SURROGATE", "surrogate"),
];

const SIGV4_COLUMNS: Columns = &[
    ("ID", "id"),
    ("PROVIDER", "provider_id"),
    ("AUTHORITY", "authority"),
    ("PATH PREFIX", "path_prefix"),
    ("REGION", "region"),
    ("SERVICE", "service"),
    ("KEY ID", "access_key_id_prefix"),
    ("FINGERPRINT", "fingerprint"),
];

const SIGV4: &[&str] = &["api", "crypto", "sigv4", "mappings"];

pub(crate) async fn crypto(ctx: &Ctx, cmd: CryptoCmd) -> anyhow::Result<ExitCode> {
    let mappings = |family: &'static str| ["api", "crypto", family, "mappings"];
    match cmd {
        CryptoCmd::JwtBearer(cmd) => {
            ctx.document::<CreateJwtBearerMapping>(&mappings("jwt-bearer"), MAPPING_COLUMNS, cmd)
                .await
        }
        CryptoCmd::Dpop(cmd) => {
            ctx.document::<CreateDpopMapping>(&mappings("dpop"), MAPPING_COLUMNS, cmd)
                .await
        }
        CryptoCmd::Mtls(cmd) => {
            ctx.document::<CreateMtlsMapping>(&mappings("mtls"), MAPPING_COLUMNS, cmd)
                .await
        }
        CryptoCmd::OauthRefresh(cmd) => {
            ctx.document::<CreateOauthRefreshMapping>(
                &mappings("oauth-refresh"),
                MAPPING_COLUMNS,
                cmd,
            )
            .await
        }
        CryptoCmd::Sigv4(cmd) => sigv4(ctx, cmd).await,
    }
}

async fn sigv4(ctx: &Ctx, cmd: Sigv4Cmd) -> anyhow::Result<ExitCode> {
    match cmd {
        Sigv4Cmd::Add(a) => {
            let a = *a;
            let body = CreateSigv4Mapping {
                id: a.id,
                provider_id: a.provider,
                target_host: a.target_host,
                path_prefix: a.path_prefix,
                region: a.region,
                service: a.service,
                real_access_key_id: a.access_key_id,
                real_secret_access_key: a
                    .secret_key_file
                    .map(|f| read_value(None, Some(f)).map(SecretString::new))
                    .transpose()?,
                real_session_token: a
                    .session_token_file
                    .map(|f| read_value(None, Some(f)).map(SecretString::new))
                    .transpose()?,
                role_arn: a.role_arn,
                session_name: a.session_name,
                duration_seconds: a.duration_seconds,
                sts_endpoint: a.sts_endpoint,
            };
            ctx.create(SIGV4, &body, SIGV4_COLUMNS).await
        }
        Sigv4Cmd::List => ctx.list(SIGV4, SIGV4_COLUMNS).await,
        Sigv4Cmd::Delete { id } => ctx.delete(&[SIGV4, &[id.as_str()]].concat(), &id).await,
        Sigv4Cmd::Presign {
            mapping,
            path,
            method,
            expires_in,
        } => {
            let body = PresignRequest {
                mapping_id: mapping,
                method: Some(method),
                path,
                host: None,
                expires_in: Some(expires_in),
            };
            let v = ctx
                .client
                .post(&["api", "crypto", "sigv4", "presign"], &body)
                .await?;
            if ctx.json {
                println!("{v}");
            } else {
                println!(
                    "{}",
                    v.get("url").and_then(Value::as_str).unwrap_or_default()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
