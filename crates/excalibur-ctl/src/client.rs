//! The CLI's one HTTP client, and the API base it may talk to.
//!
//! The token goes only to the origin of the API base: every request URL is the base plus
//! percent-encoded path segments (an id or a name cannot change the host), redirects are
//! never followed, and a cleartext base must be loopback unless the operator says
//! `--insecure-http`.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use reqwest::{Method, Url, redirect};
use serde_json::Value;

/// Where the API lives: the only origin the token is ever sent to.
#[derive(Debug, Clone)]
pub struct ApiBase {
    url: Url,
}

impl ApiBase {
    /// Parses the API base (`--api-url`, `EXCALIBUR_URL`).
    ///
    /// Errors: not an absolute `http://` or `https://` URL; user info, a query or a
    /// fragment in it; `http://` to a host that is not loopback without `insecure_http`.
    pub fn parse(text: &str, insecure_http: bool) -> anyhow::Result<Self> {
        let url = Url::parse(text).with_context(|| format!("--api-url `{text}` is not a URL"))?;
        if url.host().is_none() {
            bail!("--api-url `{text}` has no host");
        }
        match url.scheme() {
            "https" => {}
            "http" if insecure_http || is_loopback(&url) => {}
            "http" => bail!(
                "--api-url `{text}` is http:// to a host that is not loopback, so the token would \
                 travel in clear: use https:// (or --insecure-http if you accept that)"
            ),
            other => bail!("--api-url `{text}`: the scheme `{other}` is not http or https"),
        }
        if !url.username().is_empty() || url.password().is_some() {
            bail!("--api-url must not carry a user name or password (give --token)");
        }
        if url.query().is_some() || url.fragment().is_some() {
            bail!("--api-url `{text}` must not have a query or a fragment");
        }
        Ok(Self { url })
    }

    /// The URL of `segments` under the base, each percent-encoded as one path segment,
    /// with `query` appended. Errors on an empty, `.` or `..` segment.
    pub fn endpoint(&self, segments: &[&str], query: &[(&str, &str)]) -> anyhow::Result<Url> {
        if let Some(bad) = segments
            .iter()
            .find(|s| s.is_empty() || **s == "." || **s == "..")
        {
            bail!("`{bad}` is not a valid id");
        }
        let mut url = self.url.clone();
        url.path_segments_mut()
            .map_err(|()| anyhow::anyhow!("--api-url cannot be a base URL"))?
            .pop_if_empty()
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// Whether `url` has the base's scheme, host and port.
    pub fn same_origin(&self, url: &Url) -> bool {
        self.url.origin() == url.origin()
    }
}

impl fmt::Display for ApiBase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.url.as_str().trim_end_matches('/'))
    }
}

/// `localhost`, or an address in 127.0.0.0/8 or `::1` (IPv4-mapped forms included).
fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).to_canonical().is_loopback(),
        None => false,
    }
}

/// The API token; never printed.
struct Token(String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("**REDACTED**")
    }
}

/// The client that carries the token to the API base, and nowhere else.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    base: ApiBase,
    token: Option<Token>,
}

impl Client {
    /// A client for `base`, trusting only `cacert` (PEM) when given. Redirects are never
    /// followed. Errors: an unreadable or non-PEM `cacert`.
    pub fn new(
        base: ApiBase,
        token: Option<String>,
        cacert: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            // A 30x is reported, not followed: the token must not travel to another host.
            .redirect(redirect::Policy::none());
        if let Some(path) = cacert {
            let pem =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .context("--cacert is not a PEM certificate")?;
            builder = builder.tls_certs_only([cert]);
        }
        Ok(Self {
            http: builder.build()?,
            base,
            token: token.map(Token),
        })
    }

    /// Sends one request to `segments` under the base and returns the answer: JSON when
    /// it parses, else the text. Errors: unreachable, a redirect, a non-2xx status (with
    /// the problem's `detail`).
    pub async fn call(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<Value> {
        let url = self.base.endpoint(segments, query)?;
        // INVARIANT: `endpoint` only appends to the base's path; checked again here because
        // this is the one place the token leaves the process.
        if !self.base.same_origin(&url) {
            bail!(
                "refusing to send the token to `{url}`: not the API base {}",
                self.base
            );
        }
        let mut req = self.http.request(method, url);
        if let Some(Token(t)) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        let status = resp.status();
        if status.is_redirection() {
            let to = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("(no location)");
            bail!(
                "{} from {}: a redirect to `{to}`, not followed (the token goes only to \
                 --api-url); point --api-url at the API itself",
                status.as_u16(),
                self.base
            );
        }
        let text = resp.text().await?;
        if !status.is_success() {
            let detail = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v.get("detail").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or(text);
            bail!(
                "{} {}: {detail}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            );
        }
        if text.is_empty() {
            return Ok(Value::Null);
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// GETs a JSON document (an object or an array). Errors as [`Client::call`], and when
    /// the answer is not one.
    pub async fn get(&self, segments: &[&str], query: &[(&str, &str)]) -> anyhow::Result<Value> {
        let v = self.call(Method::GET, segments, query, None).await?;
        if !(v.is_object() || v.is_array()) {
            bail!(
                "{} answered `/{}` with no JSON document",
                self.base,
                segments.join("/")
            );
        }
        Ok(v)
    }

    /// GETs a text document (a PEM file). Errors as [`Client::call`], and on an empty answer.
    pub async fn get_text(&self, segments: &[&str]) -> anyhow::Result<String> {
        match self.call(Method::GET, segments, &[], None).await? {
            Value::String(s) if !s.is_empty() => Ok(s),
            _ => bail!(
                "{} answered `/{}` with no text",
                self.base,
                segments.join("/")
            ),
        }
    }

    /// POSTs `body` and returns what was created or done: a JSON object with at least one
    /// field. Errors as [`Client::call`], and on any other answer (an empty 2xx is not a
    /// success).
    pub async fn post<T: serde::Serialize + ?Sized>(
        &self,
        segments: &[&str],
        body: &T,
    ) -> anyhow::Result<Value> {
        let body = serde_json::to_vec(body).context("cannot encode the request")?;
        let v = self.call(Method::POST, segments, &[], Some(body)).await?;
        if v.as_object().is_none_or(serde_json::Map::is_empty) {
            bail!(
                "{} answered POST `/{}` without the object it should have created; nothing \
                 was confirmed",
                self.base,
                segments.join("/")
            );
        }
        Ok(v)
    }

    /// DELETEs `segments`. Errors as [`Client::call`].
    pub async fn delete(&self, segments: &[&str]) -> anyhow::Result<Value> {
        self.call(Method::DELETE, segments, &[], None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `check(base, insecure_http, expected)`: `Ok` with the base, or an error containing the text.
    fn check(base: &str, insecure_http: bool, expected: Result<&str, &str>) {
        match (ApiBase::parse(base, insecure_http), expected) {
            (Ok(b), Ok(want)) => assert_eq!(b.to_string(), want, "{base}"),
            (Err(e), Err(want)) => {
                let text = format!("{e:#}");
                assert!(text.contains(want), "{base}: `{text}` lacks `{want}`");
            }
            (got, want) => panic!("{base}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn cleartext_only_to_loopback() {
        check("http://127.0.0.1:8443", false, Ok("http://127.0.0.1:8443"));
        check("http://127.9.9.9:1/", false, Ok("http://127.9.9.9:1"));
        check("http://localhost:8443", false, Ok("http://localhost:8443"));
        check("http://[::1]:8443", false, Ok("http://[::1]:8443"));
        check(
            "http://[::ffff:127.0.0.1]:8443",
            false,
            Ok("http://[::ffff:7f00:1]:8443"),
        );
        check(
            "https://gw.example.com",
            false,
            Ok("https://gw.example.com"),
        );
        check("http://gw.example.com:8443", false, Err("travel in clear"));
        check("http://10.0.0.1:8443", false, Err("travel in clear"));
        check(
            "http://localhost.evil.example",
            false,
            Err("travel in clear"),
        );
        check("http://[::ffff:10.0.0.1]", false, Err("travel in clear"));
        check(
            "http://gw.example.com:8443",
            true,
            Ok("http://gw.example.com:8443"),
        );
        check("ftp://127.0.0.1", false, Err("not http or https"));
        check("127.0.0.1:8443", false, Err("not"));
        check("https://admin:pw@gw.example.com", false, Err("user name"));
        check("https://gw.example.com/?next=x", false, Err("query"));
    }

    #[test]
    fn endpoints_stay_on_the_base_origin() {
        let base = ApiBase::parse("https://gw.example.com/prefix/", false).unwrap();
        for (segments, want) in [
            (
                &["api", "tokens"][..],
                "https://gw.example.com/prefix/api/tokens",
            ),
            (
                &["api", "tokens", "@evil.example"][..],
                "https://gw.example.com/prefix/api/tokens/@evil.example",
            ),
            (
                &["api", "tokens", "//evil.example/x"][..],
                "https://gw.example.com/prefix/api/tokens/%2F%2Fevil.example%2Fx",
            ),
            (
                &["api", "tokens", "http://evil.example:1/r?q#f"][..],
                "https://gw.example.com/prefix/api/tokens/http:%2F%2Fevil.example:1%2Fr%3Fq%23f",
            ),
        ] {
            let url = base.endpoint(segments, &[]).unwrap();
            assert_eq!(url.as_str(), want);
            assert!(base.same_origin(&url));
        }
        for bad in ["", ".", ".."] {
            assert!(
                base.endpoint(&["api", "tokens", bad], &[]).is_err(),
                "`{bad}`"
            );
        }
        let q = base
            .endpoint(&["api", "flows"], &[("host", "a&b=c")])
            .unwrap();
        assert_eq!(q.query(), Some("host=a%26b%3Dc"));
    }
}
