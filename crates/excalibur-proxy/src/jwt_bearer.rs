//! JWT-bearer mediation on the request path: for a mapped resource host and path, get
//! an access token (cached until shortly before it expires; one exchange at a time per
//! mapping; failures never cached; never a token past its expiry) and inject it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

// tokio's clock, so that expiry is tested with paused time.
use tokio::time::Instant;

use bytes::Bytes;
use excalibur_core::Secret;
use excalibur_core::api::{JwtBearerPreset, MappingRecord};
use excalibur_mediation::jwt_bearer::{self, Assertion, AssertionKey};
use excalibur_mediation::sigv4::uri_encode;
use http::{Request, StatusCode, header};
use serde_json::json;

use crate::body;
use crate::error::{ProxyError, refuse};

/// Largest token endpoint response read.
/// Lifetime assumed when a token response does not say.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(300);

/// `(alg, kid)` of a private key PEM, or `None` when it is not a usable signing key.
pub fn key_info(pem: &Secret) -> Option<(String, String)> {
    AssertionKey::from_pem(pem)
        .ok()
        .map(|k| (k.alg().to_owned(), k.kid().to_owned()))
}

/// One JWT-bearer mapping, ready to sign.
#[derive(Debug)]
pub struct JwtBearerRoute {
    /// Mapping id (the name policy decides redemption on).
    pub id: String,
    /// Provider.
    pub provider_id: String,
    fingerprint: String,
    resource_host: String,
    path_prefix: String,
    token_host: String,
    token_path: String,
    issuer: String,
    subject: Option<String>,
    audience: Option<String>,
    scope: Option<String>,
    client_id: Option<String>,
    preset: JwtBearerPreset,
    /// The stored key; `None` for a federated preset (Excalibur's issuer signs).
    key: Option<AssertionKey>,
}

impl JwtBearerRoute {
    fn from_record(r: &MappingRecord, pem: &Secret) -> Option<Self> {
        let text = |k: &str| r.setting(k);
        Some(Self {
            id: r.id.clone(),
            provider_id: r.provider_id.clone(),
            // Any change to the mapping (key or settings) starts a fresh token cache.
            fingerprint: format!("{}:{}", r.fingerprint, r.updated_at),
            resource_host: text("resource_host")?,
            path_prefix: text("path_prefix")?,
            token_host: text("token_host")?,
            token_path: text("token_path")?,
            issuer: text("issuer")?,
            subject: text("subject"),
            audience: text("audience"),
            scope: text("scope"),
            client_id: text("client_id"),
            key: match serde_json::from_value::<JwtBearerPreset>(r.config.get("preset")?.clone())
                .ok()?
            {
                p if p.federated() => None,
                _ => Some(AssertionKey::from_pem(pem).ok()?),
            },
            preset: serde_json::from_value(r.config.get("preset")?.clone()).ok()?,
        })
    }

    fn assertion(&self) -> Assertion<'_> {
        let github = self.preset == JwtBearerPreset::GithubApp;
        Assertion {
            issuer: &self.issuer,
            subject: if github {
                None
            } else {
                Some(self.subject.as_deref().unwrap_or(&self.issuer))
            },
            audience: if github {
                None
            } else {
                self.audience.as_deref()
            },
            scope: if self.preset == JwtBearerPreset::Google {
                self.scope.as_deref()
            } else {
                None
            },
            // GitHub: exp <= 10 min and iat 60 s back for drift; RFC 7523 profiles: 5 min.
            lifetime: if github {
                Duration::from_secs(540)
            } else {
                Duration::from_secs(300)
            },
            backdate: if github {
                Duration::from_secs(60)
            } else {
                Duration::ZERO
            },
        }
    }
}

/// All JWT-bearer routes of a snapshot.
#[derive(Debug, Default)]
pub struct JwtBearerRoutes(Vec<JwtBearerRoute>);

impl JwtBearerRoutes {
    /// Routes from stored mappings (unreadable ones are left out and logged).
    pub fn build(mappings: &[(MappingRecord, Secret)]) -> Self {
        let mut routes = Vec::new();
        for (record, pem) in mappings
            .iter()
            .filter(|(r, _)| r.family == excalibur_core::api::CryptoFamily::JwtBearer)
        {
            match JwtBearerRoute::from_record(record, pem) {
                Some(r) => routes.push(r),
                None => {
                    tracing::error!(mapping = %record.id, "JWT-bearer mapping is unreadable; left out")
                }
            }
        }
        Self(routes)
    }

    /// Every mapping id with its provider (for policy bindings).
    pub fn bindings(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.0.iter().map(|r| (r.id.clone(), r.provider_id.clone()))
    }

    /// The mapping for `host` and `path` (longest path prefix wins).
    pub fn find(&self, host: &str, path: &str) -> Option<&JwtBearerRoute> {
        self.0
            .iter()
            .filter(|r| r.resource_host == host && path.starts_with(&r.path_prefix))
            .max_by_key(|r| r.path_prefix.len())
    }
}

#[derive(Debug)]
pub(crate) struct Cached {
    token: Injected,
    refresh_at: Instant,
    expires_at: Instant,
}

impl Cached {
    /// Cached at `now` for `lifetime`; refreshed a tenth of its life (at most a minute)
    /// before it expires.
    fn new(token: Injected, lifetime: Duration, now: Instant) -> Self {
        let early = (lifetime / 10).min(Duration::from_secs(60));
        Self {
            token,
            refresh_at: now + lifetime.saturating_sub(early),
            expires_at: now + lifetime,
        }
    }

    /// Served without asking the endpoint.
    fn fresh(&self, now: Instant) -> bool {
        now < self.refresh_at
    }

    /// Still valid: served when an early refresh failed, never past its expiry.
    fn usable(&self, now: Instant) -> bool {
        now < self.expires_at
    }
}

/// An access token to inject, with its `Authorization` value (marked sensitive) and the
/// scrubber that replaces it by the mapping id in responses: built once per token, not
/// per request.
#[derive(Debug, Clone)]
pub(crate) struct Injected {
    pub(crate) token: Secret,
    pub(crate) header: http::HeaderValue,
    pub(crate) scrub: Arc<excalibur_mediation::Mediator>,
}

impl Injected {
    /// Refused with `code` when the token cannot travel in a header.
    pub(crate) fn new(
        mapping_id: &str,
        token: Secret,
        code: &'static str,
    ) -> Result<Self, ProxyError> {
        let mut header =
            http::HeaderValue::from_bytes(&jwt_bearer::bearer(&token)).map_err(|_| {
                refuse(
                    StatusCode::BAD_GATEWAY,
                    code,
                    "the access token is not a header value",
                )
            })?;
        header.set_sensitive(true);
        let scrub = Arc::new(excalibur_mediation::Mediator::new(vec![(
            mapping_id.to_owned(),
            token.clone(),
        )]));
        Ok(Self {
            token,
            header,
            scrub,
        })
    }
}

/// One single-flight slot per mapping: callers hold its lock while they fetch, so
/// concurrent requests share one fetch. A new version of the mapping (rotated key,
/// changed settings) replaces the slot, so old state never outlives its mapping.
#[derive(Debug)]
pub(crate) struct Slots<T>(Mutex<HashMap<String, (String, Slot<T>)>>);

/// A mapping's state, locked by whoever is fetching it.
pub(crate) type Slot<T> = Arc<tokio::sync::Mutex<Option<T>>>;

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Self(Mutex::default())
    }
}

impl<T> Slots<T> {
    /// The slot of mapping `id` at `version`.
    pub(crate) fn get(&self, id: &str, version: &str) -> Slot<T> {
        let mut slots = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((v, slot)) = slots.get(id)
            && v == version
        {
            return Arc::clone(slot);
        }
        let slot = Arc::new(tokio::sync::Mutex::new(None));
        slots.insert(id.to_owned(), (version.to_owned(), Arc::clone(&slot)));
        slot
    }
}

/// Access tokens by mapping.
pub(crate) type TokenCache = Slots<Cached>;

impl crate::Inner {
    /// The access token to inject for `route`: cached, or exchanged now. Concurrent
    /// callers share one exchange.
    pub(crate) async fn jwt_bearer_token(
        &self,
        route: &JwtBearerRoute,
        principal: &str,
    ) -> Result<Injected, ProxyError> {
        let slot = self.tokens.get(&route.id, &route.fingerprint);
        let mut cached = slot.lock().await;
        if let Some(c) = cached.as_ref()
            && c.fresh(Instant::now())
        {
            return Ok(c.token.clone());
        }
        let exchanged = self
            .exchange(route, principal)
            .await
            .and_then(|(token, lifetime)| {
                Ok((
                    Injected::new(&route.id, token, "token_exchange_failed")?,
                    lifetime,
                ))
            });
        match exchanged {
            Ok((token, lifetime)) => {
                let lifetime = lifetime.unwrap_or(DEFAULT_TOKEN_LIFETIME);
                *cached = Some(Cached::new(token.clone(), lifetime, Instant::now()));
                Ok(token)
            }
            Err(refusal) => match cached.as_ref() {
                // Refreshing early failed: the current token is still valid, use it.
                Some(c) if c.usable(Instant::now()) => Ok(c.token.clone()),
                // Never a token past its expiry.
                _ => {
                    *cached = None;
                    Err(refusal)
                }
            },
        }
    }

    async fn exchange(
        &self,
        route: &JwtBearerRoute,
        principal: &str,
    ) -> Result<(Secret, Option<Duration>), ProxyError> {
        if route.preset.federated() {
            return self.federated_exchange(route, principal).await;
        }
        let key = route.key.as_ref().ok_or_else(|| {
            refuse(
                StatusCode::BAD_GATEWAY,
                "jwt_bearer_failed",
                "the mapping has no key",
            )
        })?;
        let assertion = jwt_bearer::sign(key, &route.assertion(), SystemTime::now())
            .map_err(|e| refuse(StatusCode::BAD_GATEWAY, "jwt_bearer_failed", &e.to_string()))?;
        self.event(
            excalibur_core::audit::EventType::JwtBearerSigned,
            principal,
            json!({"mapping": route.id, "issuer": route.issuer, "audience": route.audience,
                   "kid": key.kid(), "alg": key.alg()}),
        );
        if route.preset == JwtBearerPreset::SelfSigned {
            return Ok((assertion, Some(Duration::from_secs(240))));
        }
        let endpoint = format!("https://{}{}", route.token_host, route.token_path);
        let mut req = Request::post(&endpoint).header(header::ACCEPT, "application/json");
        let body = if route.preset == JwtBearerPreset::GithubApp {
            let mut auth =
                http::HeaderValue::from_bytes(&jwt_bearer::bearer(&assertion)).map_err(|_| {
                    refuse(
                        StatusCode::BAD_GATEWAY,
                        "jwt_bearer_failed",
                        "assertion is not a header value",
                    )
                })?;
            auth.set_sensitive(true);
            req = req
                .header(header::AUTHORIZATION, auth)
                .header(header::ACCEPT, "application/vnd.github+json")
                .header("x-github-api-version", "2022-11-28");
            Bytes::new()
        } else {
            let mut form = format!(
                "grant_type={}&assertion={}",
                uri_encode("urn:ietf:params:oauth:grant-type:jwt-bearer", false),
                jwt_bearer::form_value(&assertion)
            );
            if let (Some(scope), false) = (&route.scope, route.preset == JwtBearerPreset::Google) {
                form.push_str(&format!("&scope={}", uri_encode(scope, false)));
            }
            if let Some(client) = &route.client_id {
                form.push_str(&format!("&client_id={}", uri_encode(client, false)));
            }
            req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            Bytes::from(form)
        };
        let req = req
            .header(header::VIA, self.via.clone())
            .body(body::full(body))
            .map_err(|_| {
                refuse(
                    StatusCode::BAD_GATEWAY,
                    "jwt_bearer_failed",
                    "bad token endpoint",
                )
            })?;
        self.token_call(route, principal, &endpoint, req).await
    }

    /// A federated preset: Excalibur's issuer signs the assertion (no stored key), then
    /// Azure's client-credentials or GCP's token-exchange request carries it.
    async fn federated_exchange(
        &self,
        route: &JwtBearerRoute,
        principal: &str,
    ) -> Result<(Secret, Option<Duration>), ProxyError> {
        let azure = route.preset == JwtBearerPreset::AzureFederated;
        let audience = route.audience.clone().unwrap_or_else(|| {
            if azure {
                "api://AzureADTokenExchange".to_owned()
            } else {
                String::new()
            }
        });
        let subject = route
            .subject
            .clone()
            .unwrap_or_else(|| format!("jwt-bearer:{}", route.id));
        let assertion = self
            .control
            .web_identity_token(subject, audience.clone())
            .await
            .map_err(|e| refuse(StatusCode::BAD_GATEWAY, "jwt_bearer_failed", &e))?;
        self.event(
            excalibur_core::audit::EventType::JwtBearerSigned,
            principal,
            json!({"mapping": route.id, "issuer": route.issuer, "audience": audience,
                   "kid": "excalibur-issuer", "alg": "ES256"}),
        );
        let enc = |v: &str| uri_encode(v, false);
        let scope = route.scope.clone().unwrap_or_else(|| {
            if azure {
                format!("https://{}/.default", route.resource_host)
            } else {
                "https://www.googleapis.com/auth/cloud-platform".to_owned()
            }
        });
        let form = if azure {
            format!(
                "grant_type=client_credentials&client_id={}&scope={}&client_assertion_type={}&client_assertion={}",
                enc(route.client_id.as_deref().unwrap_or_default()),
                enc(&scope),
                enc("urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                enc(&assertion)
            )
        } else {
            format!(
                "grant_type={}&audience={}&scope={}&requested_token_type={}&subject_token={}&subject_token_type={}",
                enc("urn:ietf:params:oauth:grant-type:token-exchange"),
                enc(&audience),
                enc(&scope),
                enc("urn:ietf:params:oauth:token-type:access_token"),
                enc(&assertion),
                enc("urn:ietf:params:oauth:token-type:jwt")
            )
        };
        let endpoint = format!("https://{}{}", route.token_host, route.token_path);
        let req = Request::post(&endpoint)
            .header(header::ACCEPT, "application/json")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::VIA, self.via.clone())
            .body(body::full(Bytes::from(form)))
            .map_err(|_| {
                refuse(
                    StatusCode::BAD_GATEWAY,
                    "jwt_bearer_failed",
                    "bad token endpoint",
                )
            })?;
        self.token_call(route, principal, &endpoint, req).await
    }

    /// Posts a token request and reads the access token and its lifetime.
    async fn token_call(
        &self,
        route: &JwtBearerRoute,
        principal: &str,
        endpoint: &str,
        req: Request<crate::body::ProxyBody>,
    ) -> Result<(Secret, Option<Duration>), ProxyError> {
        let (status, bytes) = match crate::token::post(
            self.client.own(),
            req,
            self.request_timeout,
            "token_exchange_failed",
        )
        .await
        {
            Ok(answer) => answer,
            Err(f) => {
                self.exchange_event(route, principal, endpoint, f.status, f.result);
                return Err(f.refusal);
            }
        };
        match jwt_bearer::parse_token_response(&bytes, SystemTime::now()) {
            Ok(t) => {
                self.exchange_event(route, principal, endpoint, Some(status.as_u16()), "issued");
                Ok((t.value, t.expires_in))
            }
            Err(e) => {
                self.exchange_event(
                    route,
                    principal,
                    endpoint,
                    Some(status.as_u16()),
                    "unusable",
                );
                Err(refuse(
                    StatusCode::BAD_GATEWAY,
                    "token_exchange_failed",
                    &e.to_string(),
                ))
            }
        }
    }

    fn exchange_event(
        &self,
        route: &JwtBearerRoute,
        principal: &str,
        endpoint: &str,
        status: Option<u16>,
        result: &str,
    ) {
        self.event(
            excalibur_core::audit::EventType::JwtBearerExchange,
            principal,
            json!({"mapping": route.id, "token_endpoint": endpoint, "status": status, "result": result}),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_cached_token_is_refreshed_early_and_never_served_past_expiry() {
        let token = Injected::new("m", Secret::new(b"ghs_token".to_vec()), "x").unwrap();
        let start = Instant::now();
        let c = Cached::new(token, Duration::from_secs(100), start);
        // (seconds after caching, fresh, usable)
        for (at, fresh, usable) in [
            (0, true, true),
            (89, true, true),
            (90, false, true),
            (99, false, true),
            (100, false, false),
            (3600, false, false),
        ] {
            let then = start + Duration::from_secs(at);
            tokio::time::advance(then.saturating_duration_since(Instant::now())).await;
            let now = Instant::now();
            assert_eq!((c.fresh(now), c.usable(now)), (fresh, usable), "at {at} s");
        }
        // Long lifetimes refresh at most a minute early.
        let token = Injected::new("m", Secret::new(b"t".to_vec()), "x").unwrap();
        let c = Cached::new(token, Duration::from_secs(3600), Instant::now());
        tokio::time::advance(Duration::from_secs(3539)).await;
        assert!(c.fresh(Instant::now()));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(!c.fresh(Instant::now()) && c.usable(Instant::now()));
    }
}
