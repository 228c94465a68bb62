//! OAuth2 refresh mediation: for a mapped resource host and path, inject an access token
//! the proxy obtains with the refresh token it holds. Tokens are refreshed shortly before
//! they expire and after a 401; one refresh at a time per mapping; a rotated refresh token
//! replaces the old one at once in memory and is stored (sealed) in the background.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use excalibur_core::Secret;
use excalibur_core::api::{CryptoFamily, MappingRecord};
use excalibur_mediation::jwt_bearer;
use excalibur_mediation::sigv4::uri_encode;
use http::{Request, StatusCode, header};
use serde_json::json;

use crate::body;
use crate::error::{ProxyError, refuse};
use crate::jwt_bearer::Injected;

const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(300);

/// One refresh mapping.
#[derive(Debug)]
pub struct OauthRefreshRoute {
    /// Mapping id (the name policy decides redemption on).
    pub id: String,
    /// Provider.
    pub provider_id: String,
    generation: u64,
    /// `generation` as the token cache's version key.
    version: String,
    token_host: String,
    token_path: String,
    resource_host: String,
    path_prefix: String,
    client_id: String,
    scope: Option<String>,
    client_secret: Option<Secret>,
    refresh_token: Secret,
}

/// All refresh routes of a snapshot.
#[derive(Debug, Default)]
pub struct OauthRefreshRoutes(Vec<OauthRefreshRoute>);

impl OauthRefreshRoutes {
    /// Routes from stored mappings (unreadable ones are left out and logged).
    pub fn build(mappings: &[(MappingRecord, Secret)]) -> Self {
        let mut routes = Vec::new();
        for (r, sealed) in mappings
            .iter()
            .filter(|(r, _)| r.family == CryptoFamily::OauthRefresh)
        {
            let text = |k: &str| r.setting(k);
            let route = (|| {
                let (client_secret, refresh_token) = jwt_bearer::open_refresh_keys(sealed)?;
                Some(OauthRefreshRoute {
                    id: r.id.clone(),
                    provider_id: r.provider_id.clone(),
                    generation: r.config.get("generation")?.as_u64()?,
                    version: r.config.get("generation")?.as_u64()?.to_string(),
                    token_host: text("token_host")?,
                    token_path: text("token_path")?,
                    resource_host: text("resource_host")?,
                    path_prefix: text("path_prefix")?,
                    client_id: text("client_id")?,
                    scope: text("scope"),
                    client_secret,
                    refresh_token,
                })
            })();
            match route {
                Some(route) => routes.push(route),
                None => {
                    tracing::error!(mapping = %r.id, "OAuth refresh mapping is unreadable; left out")
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
    pub fn find(&self, host: &str, path: &str) -> Option<&OauthRefreshRoute> {
        self.0
            .iter()
            .filter(|r| r.resource_host == host && path.starts_with(&r.path_prefix))
            .max_by_key(|r| r.path_prefix.len())
    }
}

#[derive(Debug)]
pub(crate) struct State {
    refresh_token: Secret,
    access: Option<(Injected, Instant, Instant)>,
}

/// Refresh state by mapping (a new operator generation starts afresh).
pub(crate) type RefreshCache = crate::jwt_bearer::Slots<State>;

impl crate::Inner {
    /// The access token for `route`; `stale` is the token a 401 just rejected (it is
    /// dropped and a fresh one fetched, unless another request already did).
    pub(crate) async fn oauth_access_token(
        &self,
        route: &OauthRefreshRoute,
        principal: &str,
        stale: Option<&Secret>,
    ) -> Result<Injected, ProxyError> {
        let slot = self.refresh_cache.get(&route.id, &route.version);
        let mut state = slot.lock().await;
        let st = state.get_or_insert_with(|| State {
            refresh_token: route.refresh_token.clone(),
            access: None,
        });
        if let (Some(stale), Some((token, _, _))) = (stale, &st.access)
            && stale.ct_eq(&token.token)
        {
            st.access = None;
        }
        let now = Instant::now();
        if let Some((token, refresh_at, _)) = &st.access
            && now < *refresh_at
        {
            return Ok(token.clone());
        }
        let refreshed = self
            .refresh(route, principal, &st.refresh_token)
            .await
            .and_then(|(access, lifetime, rotated)| {
                let access = Injected::new(&route.id, access, "token_refresh_failed")?;
                Ok((access, lifetime, rotated))
            });
        match refreshed {
            Ok((access, lifetime, rotated)) => {
                let lifetime = lifetime.unwrap_or(DEFAULT_TOKEN_LIFETIME);
                let early = (lifetime / 10).min(Duration::from_secs(60));
                let now = Instant::now();
                st.access = Some((
                    access.clone(),
                    now + lifetime.saturating_sub(early),
                    now + lifetime,
                ));
                if let Some(new) = rotated {
                    st.refresh_token = new.clone();
                    let sealed = jwt_bearer::seal_refresh_keys(route.client_secret.as_ref(), &new);
                    let (control, id, generation) = (
                        Arc::clone(&self.control),
                        route.id.clone(),
                        route.generation,
                    );
                    self.tasks.spawn(async move {
                        control.store_mapping_secret(id, generation, sealed).await;
                    });
                }
                Ok(access)
            }
            Err(refusal) => match &st.access {
                Some((token, _, expires)) if Instant::now() < *expires && stale.is_none() => {
                    Ok(token.clone())
                }
                _ => {
                    st.access = None;
                    Err(refusal)
                }
            },
        }
    }

    async fn refresh(
        &self,
        route: &OauthRefreshRoute,
        principal: &str,
        refresh_token: &Secret,
    ) -> Result<(Secret, Option<Duration>, Option<Secret>), ProxyError> {
        let endpoint = format!("https://{}{}", route.token_host, route.token_path);
        let mut form = format!(
            "grant_type=refresh_token&refresh_token={}&client_id={}",
            jwt_bearer::form_value(refresh_token),
            uri_encode(&route.client_id, false)
        );
        if let Some(secret) = &route.client_secret {
            form.push_str("&client_secret=");
            form.push_str(&jwt_bearer::form_value(secret));
        }
        if let Some(scope) = &route.scope {
            form.push_str(&format!("&scope={}", uri_encode(scope, false)));
        }
        let req = Request::post(&endpoint)
            .header(header::ACCEPT, "application/json")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::VIA, self.via.clone())
            .body(body::full(Bytes::from(form)))
            .map_err(|_| {
                refuse(
                    StatusCode::BAD_GATEWAY,
                    "token_refresh_failed",
                    "bad token endpoint",
                )
            })?;
        let event = |status: Option<u16>, result: &str, rotated: bool| {
            self.event(
                excalibur_core::audit::EventType::OauthTokenRefreshed,
                principal,
                json!({"mapping": route.id, "token_endpoint": endpoint, "status": status, "result": result, "rotated": rotated}),
            );
        };
        let (status, bytes) = match crate::token::post(
            self.client.own(),
            req,
            self.request_timeout,
            "token_refresh_failed",
        )
        .await
        {
            Ok(answer) => answer,
            Err(f) => {
                event(f.status, f.result, false);
                return Err(f.refusal);
            }
        };
        let parsed = jwt_bearer::parse_token_response(&bytes, SystemTime::now());
        let rotated =
            jwt_bearer::rotated_refresh_token(&bytes).filter(|new| !new.ct_eq(refresh_token));
        match parsed {
            Ok(t) => {
                event(Some(status.as_u16()), "issued", rotated.is_some());
                Ok((t.value, t.expires_in, rotated))
            }
            Err(e) => {
                event(Some(status.as_u16()), "unusable", false);
                Err(refuse(
                    StatusCode::BAD_GATEWAY,
                    "token_refresh_failed",
                    &e.to_string(),
                ))
            }
        }
    }
}
