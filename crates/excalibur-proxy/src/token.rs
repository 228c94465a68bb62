//! The proxy's own calls to token endpoints (the JWT-bearer exchange, the OAuth2 refresh):
//! bounded in time and size, and classified the same way for the audit and the workload.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Limited};
use hyper_util::client::legacy::Client;

use crate::ProxyBody;
use crate::error::{ProxyError, refuse};
use crate::upstream::Connector;

/// Largest token response read.
const MAX_TOKEN_RESPONSE: usize = 64 * 1024;

/// Why a token endpoint gave no usable answer.
pub(crate) struct TokenFailure {
    /// The audit `result`: `unreachable`, `timeout` or `refused`.
    pub(crate) result: &'static str,
    /// The endpoint's status, when it answered.
    pub(crate) status: Option<u16>,
    /// What the workload gets (`reason` = the caller's code).
    pub(crate) refusal: ProxyError,
}

/// POSTs `req` and returns a 2xx answer's status and body (at most
/// [`MAX_TOKEN_RESPONSE`] bytes, within `timeout`); anything else is a [`TokenFailure`]
/// whose refusal carries `code` (502, or 504 on a timeout).
pub(crate) async fn post(
    client: &Client<Connector, ProxyBody>,
    req: Request<ProxyBody>,
    timeout: Duration,
    code: &'static str,
) -> Result<(StatusCode, Bytes), TokenFailure> {
    let outcome = tokio::time::timeout(timeout, async {
        let resp = client.request(req).await.map_err(|_| None)?;
        let status = resp.status();
        let bytes = Limited::new(resp.into_body(), MAX_TOKEN_RESPONSE)
            .collect()
            .await
            .map_err(|_| Some(status))?
            .to_bytes();
        Ok::<_, Option<StatusCode>>((status, bytes))
    })
    .await;
    match outcome {
        Ok(Ok((status, bytes))) if status.is_success() => Ok((status, bytes)),
        Ok(Ok((status, _))) => Err(TokenFailure {
            result: "refused",
            status: Some(status.as_u16()),
            refusal: refuse(
                StatusCode::BAD_GATEWAY,
                code,
                &format!("the token endpoint answered {}", status.as_u16()),
            ),
        }),
        Ok(Err(status)) => Err(TokenFailure {
            result: "unreachable",
            status: status.map(|s| s.as_u16()),
            refusal: refuse(
                StatusCode::BAD_GATEWAY,
                code,
                "the token endpoint could not be reached",
            ),
        }),
        Err(_) => Err(TokenFailure {
            result: "timeout",
            status: None,
            refusal: refuse(
                StatusCode::GATEWAY_TIMEOUT,
                code,
                "the token endpoint did not answer in time",
            ),
        }),
    }
}
