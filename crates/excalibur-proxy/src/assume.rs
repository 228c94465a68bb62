//! Temporary credentials for SigV4 mappings that name a role instead of holding a key:
//! Excalibur signs a short-lived web-identity JWT as an OIDC issuer (`Control::
//! web_identity_token`), calls `AssumeRoleWithWebIdentity`, and signs with what STS
//! returns, session token included. One call at a time per mapping; the credentials are
//! kept until shortly before their `Expiration`, failures are not kept, and an expired
//! credential is never used.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use excalibur_core::Secret;
use excalibur_core::audit::EventType;
use excalibur_mediation::Mediator;
use excalibur_mediation::sigv4::Credentials;
use http::{Request, StatusCode, header};
use serde_json::json;

use crate::error::{ProxyError, refuse};
use crate::sigv4::{RoleSpec, Sigv4Route};

/// The audience of the web-identity JWT (what IAM expects by default).
pub(crate) const STS_AUDIENCE: &str = "sts.amazonaws.com";
/// Credentials are renewed this long before they expire (or at half their life).
const RENEW_BEFORE: Duration = Duration::from_secs(5 * 60);

/// A mapping's assumed credentials.
#[derive(Debug)]
pub(crate) struct Assumed {
    creds: Arc<Credentials>,
    /// Their key id and session token, scrubbed from responses.
    scrub: Arc<Mediator>,
    renew_at: SystemTime,
    expires: SystemTime,
}

/// Assumed credentials by mapping (a changed role setting starts afresh).
pub(crate) type RoleCache = crate::jwt_bearer::Slots<Assumed>;

/// The credentials to sign with, and the values to scrub when they are temporary.
pub(crate) type Signing = (Arc<Credentials>, Option<Arc<Mediator>>);

fn failed(why: &str) -> ProxyError {
    refuse(
        StatusCode::BAD_GATEWAY,
        "sigv4_credentials_unavailable",
        why,
    )
}

/// The text of the first `<tag>` element.
fn element<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml.get(start..)?.find(&format!("</{tag}>"))? + start;
    xml.get(start..end).map(str::trim).filter(|v| !v.is_empty())
}

impl crate::Inner {
    /// What `route` signs with: its static key, or its role's current credentials.
    pub(crate) async fn sigv4_credentials(
        &self,
        route: &Sigv4Route,
        principal: &str,
    ) -> Result<Signing, ProxyError> {
        if let Some(c) = route.static_credentials() {
            return Ok((Arc::clone(c), None));
        }
        let Some(role) = &route.role else {
            return Err(failed("the mapping has neither a key nor a role"));
        };
        let slot = self.role_cache.get(&route.id, &role.version());
        let mut state = slot.lock().await;
        if let Some(a) = state.as_ref()
            && SystemTime::now() < a.renew_at
        {
            return Ok((Arc::clone(&a.creds), Some(Arc::clone(&a.scrub))));
        }
        match self.assume(route, role, principal).await {
            Ok(a) => {
                let out = (Arc::clone(&a.creds), Some(Arc::clone(&a.scrub)));
                *state = Some(a);
                Ok(out)
            }
            // STS failed while the old credentials are still good for a while: use them.
            Err(refusal) => match state.as_ref() {
                Some(a) if SystemTime::now() + Duration::from_secs(30) < a.expires => {
                    Ok((Arc::clone(&a.creds), Some(Arc::clone(&a.scrub))))
                }
                _ => {
                    *state = None;
                    Err(refusal)
                }
            },
        }
    }

    async fn assume(
        &self,
        route: &Sigv4Route,
        role: &RoleSpec,
        principal: &str,
    ) -> Result<Assumed, ProxyError> {
        let event = |status: Option<u16>, result: &str, expires: Option<&str>| {
            self.event(
                EventType::Sigv4CredentialsAssumed,
                principal,
                json!({"mapping": route.id, "role": role.arn, "sts_endpoint": role.sts_endpoint,
                       "status": status, "result": result, "expires_at": expires}),
            );
        };
        let req = self.assume_request(route, role).await?;
        let (status, bytes) = match crate::token::post(
            self.client.own(),
            req,
            self.request_timeout,
            "sigv4_credentials_unavailable",
        )
        .await
        {
            Ok(answer) => answer,
            Err(f) => {
                event(f.status, f.result, None);
                return Err(f.refusal);
            }
        };
        let answer = parse_answer(route, status, &bytes);
        match &answer {
            Ok((_, expiration)) => event(Some(status.as_u16()), "assumed", Some(expiration)),
            Err((result, _)) => event(Some(status.as_u16()), result, None),
        }
        answer.map(|(a, _)| a).map_err(|(_, refusal)| refusal)
    }

    /// `AssumeRoleWithWebIdentity` for `role`, with a fresh web-identity JWT.
    async fn assume_request(
        &self,
        route: &Sigv4Route,
        role: &RoleSpec,
    ) -> Result<Request<crate::body::ProxyBody>, ProxyError> {
        let jwt = self
            .control
            .web_identity_token(format!("sigv4:{}", route.id), STS_AUDIENCE.to_owned())
            .await
            .map_err(|e| failed(&format!("cannot sign the web identity token: {e}")))?;
        let enc = |v: &str| excalibur_mediation::sigv4::uri_encode(v, false);
        let form = format!(
            "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn={}&RoleSessionName={}&DurationSeconds={}&WebIdentityToken={}",
            enc(&role.arn),
            enc(&role.session_name),
            role.duration_seconds,
            enc(&jwt)
        );
        Request::post(&role.sts_endpoint)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/xml")
            .header(header::VIA, self.via.clone())
            .body(crate::body::full(Bytes::from(form)))
            .map_err(|_| failed("bad STS endpoint"))
    }
}

/// The credentials of an `AssumeRoleWithWebIdentity` answer and their `Expiration`, or
/// the audit `result` and the refusal.
fn parse_answer(
    route: &Sigv4Route,
    status: StatusCode,
    bytes: &[u8],
) -> Result<(Assumed, String), (&'static str, ProxyError)> {
    let xml = String::from_utf8_lossy(bytes);
    let parsed = (status == StatusCode::OK)
        .then(|| {
            Some((
                element(&xml, "AccessKeyId")?,
                element(&xml, "SecretAccessKey")?,
                element(&xml, "SessionToken")?,
                element(&xml, "Expiration")?,
            ))
        })
        .flatten();
    let Some((akid, secret, token, expiration)) = parsed else {
        let code = element(&xml, "Code").unwrap_or("no credentials in the answer");
        return Err((
            "refused",
            failed(&format!(
                "STS refused to assume the role ({status}: {code})"
            )),
        ));
    };
    let expires = excalibur_core::time::Timestamp::parse(expiration)
        .ok()
        .and_then(|t| u64::try_from(t.millis()).ok())
        .map(|ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
        .filter(|e| *e > SystemTime::now())
        .ok_or_else(|| {
            (
                "expired",
                failed("STS returned credentials that are already expired"),
            )
        })?;
    let life = expires
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    let (secret, token) = (
        Secret::new(secret.as_bytes().to_vec()),
        Secret::new(token.as_bytes().to_vec()),
    );
    let scrub = Arc::new(Mediator::new(vec![
        (
            format!("{}.access_key_id", route.id),
            Secret::new(akid.as_bytes().to_vec()),
        ),
        (route.id.clone(), token.clone()),
    ]));
    let assumed = Assumed {
        creds: Arc::new(Credentials::new(akid.to_owned(), secret, Some(token))),
        scrub,
        renew_at: expires - RENEW_BEFORE.min(life / 2),
        expires,
    };
    Ok((assumed, expiration.to_owned()))
}
