//! Bearer-token authentication for the API: every `/api` route except the CA and the
//! OpenAPI document needs a live token; writes need the `admin` role.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use excalibur_core::ids::{Role, TokenId, token_hash};

use crate::{ApiError, ApiState};

/// An authenticated API caller.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) id: TokenId,
    pub(crate) role: Role,
}

impl Caller {
    /// The principal recorded in audit events.
    pub(crate) fn actor(&self) -> String {
        format!("{}:{}", self.role.as_str(), self.id)
    }
}

/// A caller allowed to write.
#[derive(Debug)]
pub(crate) struct Admin(pub(crate) Caller);

/// A caller allowed to read (any role).
#[derive(Debug)]
pub(crate) struct Reader(
    #[expect(dead_code, reason = "reads are not attributed yet")] pub(crate) Caller,
);

async fn authenticate(parts: &Parts, state: &ApiState) -> Result<Caller, ApiError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "missing `Authorization: Bearer <token>`",
        ));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "the Authorization header must be `Bearer <token>`",
            )
        })?;
    let info = state
        .store
        .token_by_hash(token_hash(token))
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "the token is unknown or revoked",
            )
        })?;
    Ok(Caller {
        id: info.id,
        role: info.role,
    })
}

impl FromRequestParts<ApiState> for Admin {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let caller = authenticate(parts, state).await?;
        if !caller.role.can_write() {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "role `{}` may only read; this needs `admin`",
                    caller.role.as_str()
                ),
            ));
        }
        Ok(Admin(caller))
    }
}

impl FromRequestParts<ApiState> for Reader {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        // Reads (GET only) also accept a UI session cookie, so live panels can stream.
        if parts.headers.get(header::AUTHORIZATION).is_none()
            && parts.method == axum::http::Method::GET
            && let Some(session) = state.sessions.lookup(&parts.headers)
            && state
                .store
                .token_by_hash(session.token_hash.clone())
                .await?
                .is_some()
        {
            return Ok(Reader(Caller {
                id: session.token_id,
                role: session.role,
            }));
        }
        let caller = authenticate(parts, state).await?;
        if !caller.role.can_read() {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "role `{}` may only call POST /v1/introspect",
                    caller.role.as_str()
                ),
            ));
        }
        Ok(Reader(caller))
    }
}

/// A caller allowed to introspect tokens (`introspection`, `operator` or `admin`).
#[derive(Debug)]
pub(crate) struct Introspector(
    #[expect(dead_code, reason = "introspection is not attributed yet")] pub(crate) Caller,
);

impl FromRequestParts<ApiState> for Introspector {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        authenticate(parts, state).await.map(Introspector)
    }
}
