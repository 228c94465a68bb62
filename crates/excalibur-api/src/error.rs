//! [`ApiError`]: every failure leaves the API as `application/problem+json`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use excalibur_core::ErrorChain;
use excalibur_core::api::Problem;
use excalibur_store::StoreError;

/// An API failure: `external` is shown to the caller, `internal` only logged.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    external: String,
    internal: Option<String>,
}

impl ApiError {
    /// A failure with a status, a machine code and a caller-facing detail.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            external: detail.into(),
            internal: None,
        }
    }

    /// 400 `invalid_request`.
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", detail)
    }

    /// 422 `invalid_value`: well-formed JSON whose values are not acceptable.
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_value", detail)
    }

    /// The caller-facing detail.
    pub fn detail(&self) -> &str {
        &self.external
    }

    /// 500 with the cause logged, not shown.
    pub fn internal(cause: &(dyn std::error::Error + 'static)) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal_error",
            external: "the server failed to complete the request; see its log".to_owned(),
            internal: Some(ErrorChain(cause).to_string()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::NotFound { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            StoreError::Conflict(_) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            StoreError::Invalid(_) => ApiError::unprocessable(e.to_string()),
            StoreError::Unavailable => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "database_unavailable",
                "the database is unavailable; retry shortly".to_owned(),
            ),
            StoreError::Seal(_)
            | StoreError::Db(_)
            | StoreError::Corrupt(_)
            | StoreError::Column(_)
            | StoreError::Task
            | StoreError::Tampered => ApiError::internal(&e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Some(internal) = &self.internal {
            tracing::error!(error = %internal, code = self.code, "api request failed");
        }
        let problem = Problem {
            problem_type: format!("https://excalibur.dev/problems/{}", self.code),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.external,
            code: self.code.to_owned(),
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut resp = (self.status, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"excalibur\""),
            );
        }
        resp
    }
}
