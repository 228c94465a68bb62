//! UI sessions: a login with an API token creates a server-side session; the browser
//! holds only a random session id (HttpOnly, Secure, SameSite=Strict) and every form
//! carries the session's CSRF token.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use axum::http::HeaderMap;
use excalibur_core::ids::{Role, TokenId, random_bytes};
use excalibur_core::secret::hex;
use excalibur_core::time::Timestamp;

/// Session lifetime.
const SESSION_TTL_MS: i64 = 8 * 3600 * 1000;
/// Most concurrent sessions kept; the oldest are dropped beyond it.
const MAX_SESSIONS: usize = 1024;
/// The session cookie's name.
pub(crate) const COOKIE: &str = "excalibur_session";

/// One logged-in browser.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) token_id: TokenId,
    pub(crate) token_hash: String,
    pub(crate) role: Role,
    pub(crate) csrf: String,
    expires_ms: i64,
}

impl Session {
    pub(crate) fn csrf_ok(&self, presented: &str) -> bool {
        verify_slices_are_equal(self.csrf.as_bytes(), presented.as_bytes()).is_ok()
    }
}

/// The server-side session table.
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Creates a session; returns its id (the cookie value).
    pub(crate) fn create(&self, token_id: TokenId, token_hash: String, role: Role) -> String {
        let id = hex(&random_bytes::<32>());
        let session = Session {
            token_id,
            token_hash,
            role,
            csrf: hex(&random_bytes::<32>()),
            expires_ms: Timestamp::now().millis() + SESSION_TTL_MS,
        };
        if let Ok(mut map) = self.map.lock() {
            let now = Timestamp::now().millis();
            map.retain(|_, s| s.expires_ms > now);
            if map.len() >= MAX_SESSIONS
                && let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, s)| s.expires_ms)
                    .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
            map.insert(id.clone(), session);
        }
        id
    }

    /// The live session named by the request's cookie.
    pub(crate) fn lookup(&self, headers: &HeaderMap) -> Option<Session> {
        let id = cookie(headers, COOKIE)?;
        let map = self.map.lock().ok()?;
        map.get(&id)
            .filter(|s| s.expires_ms > Timestamp::now().millis())
            .cloned()
    }

    /// Ends the request's session.
    pub(crate) fn remove(&self, headers: &HeaderMap) {
        if let (Some(id), Ok(mut map)) = (cookie(headers, COOKIE), self.map.lock()) {
            map.remove(&id);
        }
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}
