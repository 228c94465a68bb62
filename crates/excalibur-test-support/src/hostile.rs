//! A hostile upstream for tests: HTTPS on 127.0.0.1 that takes the credential it is sent
//! (`Authorization: Bearer <value>`) and tries to hand it back to the workload in a way
//! a careless scrubber misses. The path picks the trick:
//!
//! | path | trick (HTTP/1.1, written byte by byte) |
//! |---|---|
//! | `/trailer` | chunked body, the value in a trailer field `x-echo` |
//! | `/double-ce` | `Content-Encoding: identity` then `Content-Encoding: gzip`, gzip body |
//! | `/ce-list` | `Content-Encoding: identity, gzip`, gzip body |
//! | `/te-gzip` | `Transfer-Encoding: gzip, chunked`, no Content-Encoding |
//! | `/deflate` | `Content-Encoding: deflate` (zlib) body |
//! | `/br` | `Content-Encoding: br` (a coding nobody here decodes) |
//! | `/header-name` | a header whose *name* is `x-<value>` |
//! | `/encoded` | the value base64, base64url, percent- and JSON-`\u`-escaped in the body |
//! | `/bomb` | a gzip body that inflates to 64 MiB |
//! | `/early` | 401 at once, before (and without) reading the request body |
//!
//! On its HTTP/2 listener every path answers with the value in the response trailers.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use crate::upstream::test_tls;

/// A running hostile upstream.
#[derive(Debug, Clone)]
pub struct Hostile {
    /// Its HTTP/1.1 TLS address (ALPN `http/1.1` only).
    pub addr: SocketAddr,
    /// Its HTTP/2 TLS address (ALPN `h2` only).
    pub h2_addr: SocketAddr,
    /// The test CA (PEM) that signed its certificate.
    pub ca_pem: String,
}

impl Hostile {
    /// Starts it with a certificate for `names`.
    pub async fn start(names: &[&str]) -> anyhow::Result<Self> {
        let (h1_tls, ca_pem) = test_tls(names, &[b"http/1.1"])?;
        let (mut h2_tls, _) = test_tls(names, &[b"h2"])?;
        // Both listeners present the same CA's leaf: reuse the first config's cert.
        h2_tls.cert_resolver = Arc::clone(&h1_tls.cert_resolver);
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let h2_listener = TcpListener::bind("127.0.0.1:0").await?;
        let (addr, h2_addr) = (listener.local_addr()?, h2_listener.local_addr()?);
        for (listener, tls, h2) in [(listener, h1_tls, false), (h2_listener, h2_tls, true)] {
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
            tokio::spawn(async move {
                while let Ok((tcp, _)) = listener.accept().await {
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        if h2 {
                            serve_h2(tls).await;
                        } else {
                            serve_h1(tls).await;
                        }
                    });
                }
            });
        }
        Ok(Self {
            addr,
            h2_addr,
            ca_pem,
        })
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

fn chunked(body: &[u8], trailer: Option<&str>) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", body.len()).into_bytes();
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n0\r\n");
    if let Some(t) = trailer {
        out.extend_from_slice(t.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The response for `path` carrying `value`: head lines (no status line) and body bytes.
fn trick(path: &str, value: &str) -> (String, Vec<u8>) {
    let echo = format!("{{\"echo\":\"{value}\"}}");
    let len = |b: &[u8]| format!("content-length: {}\r\n", b.len());
    match path {
        "/trailer" => (
            "transfer-encoding: chunked\r\ntrailer: x-echo\r\n".into(),
            chunked(b"ok", Some(&format!("x-echo: {value}"))),
        ),
        "/double-ce" => {
            let b = gzip(echo.as_bytes());
            (
                format!(
                    "content-encoding: identity\r\ncontent-encoding: gzip\r\n{}",
                    len(&b)
                ),
                b,
            )
        }
        "/ce-list" => {
            let b = gzip(echo.as_bytes());
            (
                format!("content-encoding: identity, gzip\r\n{}", len(&b)),
                b,
            )
        }
        "/te-gzip" => (
            "transfer-encoding: gzip, chunked\r\n".into(),
            chunked(&gzip(echo.as_bytes()), None),
        ),
        "/deflate" => {
            let b = zlib(echo.as_bytes());
            (format!("content-encoding: deflate\r\n{}", len(&b)), b)
        }
        "/br" => {
            let b = echo.into_bytes();
            (format!("content-encoding: br\r\n{}", len(&b)), b)
        }
        "/header-name" => (format!("x-{value}: 1\r\n{}", len(b"ok")), b"ok".to_vec()),
        "/encoded" => {
            let std = base64::engine::general_purpose::STANDARD;
            let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            let pct: String = value.bytes().map(|b| format!("%{b:02X}")).collect();
            let json: String = value.bytes().map(|b| format!("\\u{b:04x}")).collect();
            let body = format!(
                "{{\"basic\":\"{}\",\"b64\":\"{}\",\"b64url\":\"{}\",\"pct\":\"{pct}\",\"json\":\"{json}\"}}",
                std.encode(format!("user:{value}")),
                std.encode(value),
                url.encode(format!("{{\"t\":\"{value}\"}}")),
            )
            .into_bytes();
            (len(&body), body)
        }
        "/bomb" => {
            let mut big = echo.into_bytes();
            big.resize(64 << 20, b' ');
            let b = gzip(&big);
            (format!("content-encoding: gzip\r\n{}", len(&b)), b)
        }
        _ => (len(echo.as_bytes()), echo.into_bytes()),
    }
}

fn bearer(headers: &str) -> String {
    headers
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case("authorization")
                .then(|| v.trim().trim_start_matches("Bearer ").to_owned())
        })
        .unwrap_or_default()
}

async fn serve_h1<S>(mut io: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    // One request per connection: read the head (and a bounded body), answer, close.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 1 << 20 {
        match io.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
        }
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let path = head
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .split('?')
        .next()
        .unwrap_or("/")
        .to_owned();
    let (lines, body) = trick(&path, &bearer(&head));
    let status = if path == "/early" {
        "401 Unauthorized"
    } else {
        "200 OK"
    };
    let mut out = format!("HTTP/1.1 {status}\r\n{lines}connection: close\r\n\r\n").into_bytes();
    out.extend_from_slice(&body);
    let _ = io.write_all(&out).await;
    let _ = io.shutdown().await;
    // A lingering close, as real servers do: read on (bounded) so that an unread upload
    // does not turn the close into a reset that destroys the answer in flight.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        let mut seen = 0usize;
        while let Ok(n) = io.read(&mut chunk).await {
            seen += n;
            if n == 0 || seen > 64 << 20 {
                break;
            }
        }
    })
    .await;
}

/// A body of one data frame and then trailers.
struct WithTrailers {
    data: Option<Bytes>,
    trailers: Option<http::HeaderMap>,
}

impl http_body::Body for WithTrailers {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let frame = match self.data.take() {
            Some(d) => Some(Ok(Frame::data(d))),
            None => self.trailers.take().map(|t| Ok(Frame::trailers(t))),
        };
        std::task::Poll::Ready(frame)
    }
}

async fn serve_h2<S>(io: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(|req: hyper::Request<Incoming>| async move {
        let value = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim_start_matches("Bearer ").to_owned())
            .unwrap_or_default();
        let early = req.uri().path() == "/early";
        if !early {
            let _ = req.into_body().collect().await;
        }
        let mut trailers = http::HeaderMap::new();
        if let Ok(v) = http::HeaderValue::from_str(&value) {
            trailers.insert("x-echo", v);
        }
        let body = WithTrailers {
            data: Some(Bytes::from_static(b"ok")),
            trailers: Some(trailers),
        };
        let mut resp = hyper::Response::new(body);
        if early {
            *resp.status_mut() = http::StatusCode::UNAUTHORIZED;
        }
        Ok::<_, std::convert::Infallible>(resp)
    });
    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(io), service)
        .await;
}
