//! [`ProxyError`]: the one error of the request path. Every refusal and failure is a
//! value with a wire reason and a side until [`ProxyError::into_response`] turns it into
//! the workload's answer (JSON body, `x-excalibur-reason`), in one place.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use serde_json::json;

use crate::body::{self, ProxyBody};

/// Header naming why the proxy refused a request.
pub(crate) const REASON_HEADER: &str = "x-excalibur-reason";

/// Whose fault it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The workload's request was refused or malformed (4xx).
    Client,
    /// The upstream (or a token endpoint) failed or misbehaved (502, 504).
    Upstream,
    /// Excalibur itself could not go on (other 5xx).
    Internal,
}

/// A refused or failed request: status, wire reason code, and a detail for the
/// workload that never carries a secret.
#[derive(Debug)]
pub(crate) struct ProxyError {
    pub(crate) status: StatusCode,
    pub(crate) reason: &'static str,
    pub(crate) detail: String,
}

impl ProxyError {
    /// Whose fault it was, from the status class (one mapping for every kind).
    pub(crate) fn side(&self) -> Side {
        match self.status {
            s if s.is_client_error() => Side::Client,
            StatusCode::BAD_GATEWAY | StatusCode::GATEWAY_TIMEOUT => Side::Upstream,
            _ => Side::Internal,
        }
    }

    /// The response the workload gets.
    pub(crate) fn into_response(self) -> Response<ProxyBody> {
        respond(self.status, self.reason, &self.detail)
    }
}

/// A [`ProxyError`].
pub(crate) fn refuse(status: StatusCode, reason: &'static str, detail: &str) -> ProxyError {
    ProxyError {
        status,
        reason,
        detail: detail.to_owned(),
    }
}

/// The JSON refusal with its reason header.
pub(crate) fn respond(status: StatusCode, reason: &str, detail: &str) -> Response<ProxyBody> {
    let body = json!({"error": reason, "detail": detail}).to_string();
    let mut resp = Response::new(body::full(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(reason) {
        resp.headers_mut().insert(REASON_HEADER, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_and_the_wire_form() {
        for (status, side) in [
            (StatusCode::FORBIDDEN, Side::Client),
            (StatusCode::LENGTH_REQUIRED, Side::Client),
            (StatusCode::BAD_GATEWAY, Side::Upstream),
            (StatusCode::GATEWAY_TIMEOUT, Side::Upstream),
            (StatusCode::SERVICE_UNAVAILABLE, Side::Internal),
        ] {
            assert_eq!(refuse(status, "r", "d").side(), side, "{status}");
        }
        let resp = refuse(StatusCode::FORBIDDEN, "plaintext_upstream", "no").into_response();
        assert_eq!(resp.status(), 403);
        assert_eq!(resp.headers()[REASON_HEADER], "plaintext_upstream");
    }
}
