//! **`aws-sts`**: a workload proves its AWS identity with a signed
//! `sts:GetCallerIdentity` request it does not send itself (the shape of Vault's and
//! Teleport's AWS IAM join methods). Excalibur checks the envelope, sends the request,
//! byte for byte, to the one configured STS endpoint, and names the principal after the
//! ARN STS answers with: `aws:<account>/<role name>` for an assumed role.
//!
//! The subject token is base64 of a JSON envelope:
//! `{"iam_http_request_method": "POST", "iam_request_url": b64(url),
//!   "iam_request_body": b64(body), "iam_request_headers": b64(json headers)}`.
//! Checked before anything is sent: the method, the URL (exactly the configured
//! endpoint: a client never chooses where Excalibur connects), the body (only
//! `Action=GetCallerIdentity&Version=2011-06-15`), a SigV4 `Authorization` whose
//! `SignedHeaders` include `host` and `x-excalibur-server-id`, that header equal to this
//! server's id (a request signed for another service is useless here), and `X-Amz-Date`
//! within 15 minutes. STS checks the signature.

use std::future::Future;
use std::pin::Pin;

use base64::Engine as _;
use serde::Deserialize;

use crate::attest::{Attested, TokenError};

/// The header that binds a signed request to one Excalibur deployment.
pub const SERVER_ID_HEADER: &str = "x-excalibur-server-id";
/// How long a signed request is accepted after (or before) its `X-Amz-Date`.
const MAX_SKEW_SECS: i64 = 15 * 60;

/// The request sent to STS.
#[derive(Debug, Clone)]
pub struct StsRequest {
    /// The configured endpoint.
    pub url: String,
    /// The signed headers and the others the workload sent (no `host`, no framing).
    pub headers: Vec<(String, String)>,
    /// The form body.
    pub body: Vec<u8>,
}

/// What STS answered: `(status, body)`, or why the request could not be sent.
pub type StsAnswer<'a> = Pin<Box<dyn Future<Output = Result<(u16, String), String>> + Send + 'a>>;

/// Sends a request to STS; implemented at the edge (the bin's HTTP client).
pub trait StsCaller: Send + Sync + std::fmt::Debug {
    /// `POST`s the request.
    fn call(&self, req: StsRequest) -> StsAnswer<'_>;
}

/// A signed request as the workload sent it: URL, lowercased headers, body.
struct Signed {
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// One trusted STS endpoint and the accounts and roles it admits.
#[derive(Debug, Clone)]
pub struct AwsConfig {
    /// The STS endpoint requests must be signed for and are sent to.
    pub sts_endpoint: String,
    /// This server's id, which the signed `X-Excalibur-Server-ID` header must carry.
    pub server_id: String,
    /// Accounts admitted (required).
    pub accounts: Vec<String>,
    /// Role names admitted (`*` globs); empty: any role of the accounts.
    pub role_patterns: Vec<String>,
    /// Namespace of the principals; the account id when absent.
    pub namespace: Option<String>,
}

/// The `aws-sts` attestor for one endpoint.
#[derive(Debug)]
pub struct Aws {
    config: AwsConfig,
    sts: Box<dyn StsCaller>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    iam_http_request_method: String,
    iam_request_url: String,
    iam_request_body: String,
    iam_request_headers: String,
}

/// A header value as Vault's clients send it: a string or a list of strings.
#[derive(Deserialize)]
#[serde(untagged)]
enum HeaderValue {
    One(String),
    Many(Vec<String>),
}

fn invalid(why: impl Into<String>) -> TokenError {
    TokenError::Invalid(why.into())
}

fn b64(field: &str, v: &str) -> Result<Vec<u8>, TokenError> {
    let v = v.trim();
    base64::engine::general_purpose::STANDARD
        .decode(v)
        .or_else(|_| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(v.trim_end_matches('='))
        })
        .map_err(|_| TokenError::Malformed(format!("`{field}` is not base64")))
}

/// The signed request inside a subject token.
fn open(token: &str) -> Result<Signed, TokenError> {
    let json = b64("subject_token", token)?;
    let env: Envelope = serde_json::from_slice(&json)
        .map_err(|e| TokenError::Malformed(format!("not a signed-request envelope: {e}")))?;
    if env.iam_http_request_method != "POST" {
        return Err(invalid("the signed request must be a POST"));
    }
    let url = String::from_utf8(b64("iam_request_url", &env.iam_request_url)?)
        .map_err(|_| TokenError::Malformed("the URL is not UTF-8".to_owned()))?;
    let body = b64("iam_request_body", &env.iam_request_body)?;
    let raw: std::collections::BTreeMap<String, HeaderValue> =
        serde_json::from_slice(&b64("iam_request_headers", &env.iam_request_headers)?).map_err(
            |e| TokenError::Malformed(format!("the headers are not a JSON object: {e}")),
        )?;
    let mut headers = Vec::new();
    for (name, value) in raw {
        let values = match value {
            HeaderValue::One(v) => vec![v],
            HeaderValue::Many(v) => v,
        };
        for v in values {
            headers.push((name.to_ascii_lowercase(), v));
        }
    }
    Ok(Signed { url, headers, body })
}

fn one<'a>(headers: &'a [(String, String)], name: &str) -> Result<&'a str, TokenError> {
    let mut found = headers.iter().filter(|(n, _)| n == name);
    match (found.next(), found.next()) {
        (Some((_, v)), None) => Ok(v.as_str()),
        (None, _) => Err(invalid(format!(
            "the signed request has no `{name}` header"
        ))),
        (Some(_), Some(_)) => Err(invalid(format!(
            "the signed request has two `{name}` headers"
        ))),
    }
}

/// `X-Amz-Date` (`YYYYMMDDTHHMMSSZ`) as seconds since the epoch.
fn amz_date(v: &str) -> Option<i64> {
    if v.len() != 16 || !v.is_ascii() || v.get(8..9) != Some("T") || v.get(15..) != Some("Z") {
        return None;
    }
    let rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}Z",
        v.get(0..4)?,
        v.get(4..6)?,
        v.get(6..8)?,
        v.get(9..11)?,
        v.get(11..13)?,
        v.get(13..15)?
    );
    excalibur_core::time::Timestamp::parse(&rfc3339)
        .ok()
        .map(|t| t.millis() / 1000)
}

/// The text of the first `<tag>` element of an STS answer.
fn element<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml.get(start..)?.find(&format!("</{tag}>"))? + start;
    xml.get(start..end).map(str::trim)
}

impl Aws {
    /// An attestor sending verified requests through `sts`.
    pub fn new(config: AwsConfig, sts: Box<dyn StsCaller>) -> Self {
        Self { config, sts }
    }

    /// The STS endpoint this attestor sends to.
    pub fn endpoint(&self) -> &str {
        &self.config.sts_endpoint
    }

    /// Checks the signed request, has STS verify it, and maps the caller's ARN.
    pub async fn verify(&self, token: &str, now: i64) -> Result<Attested, TokenError> {
        let Signed { url, headers, body } = open(token)?;
        if url != self.config.sts_endpoint {
            return Err(invalid(
                "the request is not signed for this server's STS endpoint",
            ));
        }
        let form: Vec<(String, String)> = url_form(&body);
        let mut keys: Vec<&str> = form.iter().map(|(k, _)| k.as_str()).collect();
        keys.sort_unstable();
        let value = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        if keys != ["Action", "Version"]
            || value("Action") != Some("GetCallerIdentity")
            || value("Version") != Some("2011-06-15")
        {
            return Err(invalid(
                "the signed request must be exactly Action=GetCallerIdentity&Version=2011-06-15",
            ));
        }
        let auth = one(&headers, "authorization")?;
        let signed = auth
            .strip_prefix("AWS4-HMAC-SHA256 ")
            .and_then(|rest| {
                rest.split(',')
                    .find_map(|p| p.trim().strip_prefix("SignedHeaders="))
            })
            .ok_or_else(|| invalid("`authorization` is not an AWS SigV4 signature"))?;
        let signed: Vec<&str> = signed.split(';').collect();
        if !signed.contains(&"host") || !signed.contains(&SERVER_ID_HEADER) {
            return Err(invalid(format!(
                "`host` and `{SERVER_ID_HEADER}` must be signed"
            )));
        }
        if one(&headers, SERVER_ID_HEADER)? != self.config.server_id {
            return Err(invalid(format!(
                "the request was signed for another server (`{SERVER_ID_HEADER}`)"
            )));
        }
        let date = amz_date(one(&headers, "x-amz-date")?)
            .ok_or_else(|| invalid("`x-amz-date` is malformed"))?;
        if (now - date).abs() > MAX_SKEW_SECS {
            return Err(invalid(
                "the signed request has expired (X-Amz-Date is over 15 minutes away)",
            ));
        }
        let forwarded = headers
            .iter()
            .filter(|(n, _)| {
                !matches!(
                    n.as_str(),
                    "host" | "content-length" | "connection" | "transfer-encoding"
                )
            })
            .cloned()
            .collect();
        let (status, answer) = self
            .sts
            .call(StsRequest {
                url,
                headers: forwarded,
                body,
            })
            .await
            .map_err(|e| TokenError::Jwks(format!("STS is unavailable: {e}")))?;
        if status != 200 {
            let code = element(&answer, "Code").unwrap_or("no error code");
            return Err(invalid(format!(
                "STS refused the signed request ({status} {code})"
            )));
        }
        let arn = element(&answer, "Arn").ok_or_else(|| invalid("STS answered without an ARN"))?;
        self.admit(arn, element(&answer, "UserId"), auth, date)
    }

    /// The principal of an assumed-role ARN, if its account and role are admitted.
    fn admit(
        &self,
        arn: &str,
        user_id: Option<&str>,
        auth: &str,
        date: i64,
    ) -> Result<Attested, TokenError> {
        // arn:<partition>:sts::<account>:assumed-role/<role>/<session>
        let mut parts = arn.splitn(6, ':');
        let (Some("arn"), Some(partition), Some("sts"), Some(""), Some(account), Some(resource)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(invalid(format!(
                "`{arn}` is not an assumed role: use an instance profile, task or function role"
            )));
        };
        let Some((role, session)) = resource
            .strip_prefix("assumed-role/")
            .and_then(|r| r.split_once('/'))
            .filter(|(r, s)| !r.is_empty() && !s.is_empty())
        else {
            return Err(invalid(format!(
                "`{arn}` is not an assumed role: use an instance profile, task or function role"
            )));
        };
        if !self.config.accounts.iter().any(|a| a == account) {
            return Err(invalid(format!("account `{account}` is not admitted")));
        }
        if !self.config.role_patterns.is_empty()
            && !self
                .config
                .role_patterns
                .iter()
                .any(|p| crate::cloud::glob(p, role))
        {
            return Err(invalid(format!("role `{role}` is not admitted")));
        }
        Ok(Attested {
            principal: format!("aws:{account}/{role}"),
            namespace: self
                .config
                .namespace
                .clone()
                .unwrap_or_else(|| account.to_owned()),
            attestation: "aws",
            // The signature is unique to this signed request.
            jti: excalibur_core::secret::fingerprint(auth.as_bytes()),
            exp: date + MAX_SKEW_SECS,
            details: serde_json::json!({
                "account": account, "role": role, "session": session, "arn": arn,
                "partition": partition, "user_id": user_id,
            }),
            tags: vec![
                ("aws_account".to_owned(), account.to_owned()),
                ("aws_role".to_owned(), role.to_owned()),
                ("aws_session".to_owned(), session.to_owned()),
            ],
        })
    }
}

/// `application/x-www-form-urlencoded` pairs.
fn url_form(body: &[u8]) -> Vec<(String, String)> {
    let decode = |s: &str| -> String {
        let s = s.replace('+', " ");
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while let Some(&b) = bytes.get(i) {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            match (b, hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
                (b'%', Some(v)) => {
                    out.push(v);
                    i += 3;
                }
                _ => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// Verifies with the attestor whose endpoint the request was signed for.
pub(crate) async fn verify_aws(attestors: &[Aws], token: &str) -> Result<Attested, TokenError> {
    let url = open(token)?.url;
    let aws = attestors
        .iter()
        .find(|a| a.config.sts_endpoint == url)
        .ok_or(TokenError::UntrustedIssuer)?;
    let now = excalibur_core::time::Timestamp::now().millis() / 1000;
    aws.verify(token, now).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_forms_and_elements() {
        assert_eq!(amz_date("20150830T123600Z"), Some(1_440_938_160));
        assert_eq!(amz_date("2015-08-30T12:36:00Z"), None);
        assert_eq!(
            url_form(b"Action=GetCallerIdentity&Version=2011-06-15"),
            [
                ("Action".into(), "GetCallerIdentity".into()),
                ("Version".into(), "2011-06-15".into())
            ]
        );
        assert_eq!(
            url_form(b"a%3Db=c+d")[0],
            ("a=b".to_owned(), "c d".to_owned())
        );
        let xml = "<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>arn:aws:sts::1:assumed-role/r/s</Arn></GetCallerIdentityResult></GetCallerIdentityResponse>";
        assert_eq!(element(xml, "Arn"), Some("arn:aws:sts::1:assumed-role/r/s"));
        assert_eq!(element(xml, "Account"), None);
    }
}
