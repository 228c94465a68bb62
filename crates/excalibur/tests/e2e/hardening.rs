//! Issue: hardening. Hostile clients and destinations against the running binary.

use std::sync::Arc;
use std::time::{Duration, Instant};

use excalibur_test_support::upstream::Echo;
use excalibur_test_support::{Gateway, Options, free_port};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::data_plane::{credential, curl, proxy_url};
use crate::server_bin;

const LIMITS: &str = "[limits]\nheader_read_timeout_ms = 500\nidle_timeout_ms = 1000\nrequest_timeout_ms = 700\nmax_connections = 1000\n";

struct Hostile {
    gw: Gateway,
    echo: Echo,
    token: String,
    ca: String,
}

async fn hostile() -> Hostile {
    let echo = Echo::start(&["api.github.com"]).await.unwrap();
    // A listener that accepts and never answers: a stalled upstream.
    let stall = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stall_addr = stall.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = stall.accept().await {
            held.push(s);
        }
    });
    let api = free_port().unwrap();
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let ca_file = dir.path().join("upstream-ca.pem");
    std::fs::write(&ca_file, &echo.ca_pem).unwrap();
    let config = format!(
        "{LIMITS}[upstream]\nca_file = {ca_file:?}\nresolve = [\"api.github.com:443={}\", \"plain.example:80={}\", \"loop.example:443={api}\", \"stall.example:80={stall_addr}\"]\n",
        echo.tls_addr, echo.plain_addr
    );
    let gw = Gateway::start_in(
        server_bin(),
        dir,
        Options {
            config_toml: config,
            api_listen: Some(api),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    gw.api()
        .post(
            "/api/providers",
            json!({"id": "github", "hosts": ["api.github.com", "plain.example"]}),
        )
        .await
        .unwrap();
    let domains = [
        "api.github.com",
        "plain.example",
        "loop.example",
        "stall.example",
        "::1",
        "::ffff:127.0.0.1",
        "169.254.169.254",
        "localhost",
    ];
    let (_, token) = credential(&gw, "ci", "127.0.0.0/8", &domains).await;
    let ca = gw.data_dir.join("ca.pem").to_string_lossy().into_owned();
    Hostile {
        gw,
        echo,
        token,
        ca,
    }
}

/// Starts a gateway on `data_dir` (in `dir`) again, with `args`: a restart after a
/// kill, a stop or an edit of its files.
async fn restart(
    dir: Arc<tempfile::TempDir>,
    data_dir: std::path::PathBuf,
    args: &[&str],
) -> anyhow::Result<Gateway> {
    Gateway::start_in(
        server_bin(),
        dir,
        Options {
            data_dir: Some(data_dir),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            ..Default::default()
        },
    )
    .await
}

/// A gateway with `config` (TOML tables other than `[upstream]`), an echo upstream for
/// api.github.com, the github provider, and a credential for 127.0.0.1.
async fn plain_gateway(config: &str) -> Hostile {
    let echo = Echo::start(&["api.github.com"]).await.unwrap();
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let ca_file = dir.path().join("upstream-ca.pem");
    std::fs::write(&ca_file, &echo.ca_pem).unwrap();
    let config = format!(
        "{config}[upstream]\nca_file = {ca_file:?}\nresolve = [\"api.github.com:443={}\"]\n",
        echo.tls_addr
    );
    let gw = Gateway::start_in(
        server_bin(),
        dir,
        Options {
            config_toml: config,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    gw.api()
        .post(
            "/api/providers",
            json!({"id": "github", "hosts": ["api.github.com"]}),
        )
        .await
        .unwrap();
    let (_, token) = credential(&gw, "ci", "127.0.0.1/32", &["api.github.com"]).await;
    let ca = gw.data_dir.join("ca.pem").to_string_lossy().into_owned();
    Hostile {
        gw,
        echo,
        token,
        ca,
    }
}

/// Reads until EOF or error; returns how long that took (bounded by `max`).
async fn time_to_close(stream: &mut TcpStream, max: Duration) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(max.saturating_sub(start.elapsed()), stream.read(&mut buf)).await
        {
            Ok(Ok(0)) | Ok(Err(_)) => return start.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => return start.elapsed(),
        }
    }
}

#[tokio::test]
async fn slow_and_idle_clients_are_cut_off() {
    let h = hostile().await;
    // Slowloris: a request head that never finishes.
    let mut slow = TcpStream::connect(h.gw.proxy()).await.unwrap();
    slow.write_all(b"GET http://plain.example/ HTTP/1.1\r\nHost: plain.example\r\nX-Slow: ")
        .await
        .unwrap();
    let took = time_to_close(&mut slow, Duration::from_secs(8)).await;
    assert!(
        took < Duration::from_secs(5),
        "slow head kept open for {took:?}"
    );

    // An idle keep-alive connection and an idle tunnel are closed too.
    let mut idle = TcpStream::connect(h.gw.proxy()).await.unwrap();
    let took = time_to_close(&mut idle, Duration::from_secs(8)).await;
    assert!(
        took < Duration::from_secs(5),
        "idle connection kept open for {took:?}"
    );
    let mut tunnel = TcpStream::connect(h.gw.proxy()).await.unwrap();
    let connect = format!(
        "CONNECT api.github.com:443 HTTP/1.1\r\nHost: api.github.com:443\r\nProxy-Authorization: Bearer {}\r\n\r\n",
        h.token
    );
    tunnel.write_all(connect.as_bytes()).await.unwrap();
    let mut head = [0u8; 64];
    let n = tunnel.read(&mut head).await.unwrap();
    assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 200"));
    let took = time_to_close(&mut tunnel, Duration::from_secs(8)).await;
    assert!(
        took < Duration::from_secs(5),
        "idle tunnel kept open for {took:?}"
    );

    // A stalled upstream answers 504 within the request timeout.
    let auth = format!("Proxy-Authorization: Bearer {}", h.token);
    let (_, out, _) = curl(&[
        "-x",
        &proxy_url(&h.gw),
        "--proxy-header",
        &auth,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "http://stall.example/",
    ])
    .await;
    assert_eq!(out, "504");
}

#[tokio::test]
async fn oversized_heads_and_smuggling_are_refused() {
    let h = hostile().await;
    let auth = format!("Proxy-Authorization: Bearer {}", h.token);
    let proxy = proxy_url(&h.gw);
    let ca = h.gw.data_dir.join("ca.pem").to_string_lossy().into_owned();
    // The same limits on the proxy port and inside an intercepted tunnel (HTTP/1.1).
    for url in ["http://plain.example/", "https://api.github.com/"] {
        let head = |extra: Vec<String>| {
            let mut args: Vec<String> = vec![
                "-x".into(),
                proxy.clone(),
                "--proxy-header".into(),
                auth.clone(),
                "--cacert".into(),
                ca.clone(),
                "--http1.1".into(),
            ];
            args.extend(extra);
            args.extend(["-o", "/dev/null", "-w", "%{http_code}", url].map(String::from));
            args
        };
        let many: Vec<String> = (0..150)
            .flat_map(|i| ["-H".to_owned(), format!("X-Many-{i}: v")])
            .collect();
        let args = head(many);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let (_, out, _) = curl(&refs).await;
        assert_eq!(out, "431", "too many headers toward {url}");
        let args = head(vec![
            "-H".into(),
            format!("X-Big: {}", "a".repeat(100 * 1024)),
        ]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let (_, out, _) = curl(&refs).await;
        assert_eq!(out, "431", "oversized head toward {url}");
    }

    // A whole oversized head in one write, to the proxy port (proxy request and API
    // request alike): refused on the parsed head, whatever one read carried.
    let big = "a".repeat(100 * 1024);
    for (addr, head) in [
        (
            h.gw.proxy(),
            format!(
                "GET http://plain.example/one-write HTTP/1.1\r\nHost: plain.example\r\n{auth}\r\nX-Big: {big}\r\n\r\n"
            ),
        ),
        (
            h.gw.api_addr,
            format!("GET /api/health HTTP/1.1\r\nHost: localhost\r\nX-Big: {big}\r\n\r\n"),
        ),
    ] {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(head.as_bytes()).await.unwrap();
        let mut answer = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut answer))
            .await
            .expect("an answer")
            .unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(answer.starts_with("HTTP/1.1 431"), "{addr}: {answer}");
    }
    // The same over TLS to the API port (where one TLS read may carry a whole head): an
    // API request, and a proxy request through the TLS proxy.
    let tls = format!("https://localhost:{}", h.gw.api_addr.port());
    let big_header = format!("X-Big: {big}");
    for args in [
        vec![format!("{tls}/api/health")],
        vec![
            "--proxy".into(),
            tls.clone(),
            "--proxy-cacert".into(),
            ca.clone(),
            "--proxy-header".into(),
            auth.clone(),
            "http://plain.example/one-write".into(),
        ],
    ] {
        let mut all: Vec<String> = [
            "--cacert",
            &ca,
            "--http1.1",
            "-H",
            &big_header,
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ]
        .map(String::from)
        .to_vec();
        all.extend(args);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let (_, out, err) = curl(&refs).await;
        assert_eq!(out, "431", "oversized head over TLS: {all:?} {err}");
    }
    assert!(
        h.echo.seen().iter().all(|r| r.path != "/one-write"),
        "an oversized head reached the upstream"
    );

    // Conflicting framing (CL + TE): Transfer-Encoding wins (RFC 9112 §6.3), Content-Length
    // is dropped, and the connection is closed after the response, so bytes smuggled
    // behind the body are never read as a second request.
    let mut s = TcpStream::connect(h.gw.proxy()).await.unwrap();
    let smuggle = format!(
        "POST http://plain.example/ HTTP/1.1\r\nHost: plain.example\r\nProxy-Authorization: Bearer {}\r\n\
         Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET http://plain.example/admin HTTP/1.1\r\nHost: plain.example\r\n\
         Proxy-Authorization: Bearer {}\r\n\r\n",
        h.token, h.token
    );
    s.write_all(smuggle.as_bytes()).await.unwrap();
    let mut all = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut all))
        .await
        .expect("connection closed");
    let text = String::from_utf8_lossy(&all).to_lowercase();
    assert_eq!(
        text.matches("http/1.1 ").count(),
        1,
        "exactly one response: {text}"
    );
    assert!(text.contains("connection: close"), "{text}");
    let posted: Vec<_> = h
        .echo
        .seen()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(posted.len(), 1);
    assert!(
        posted[0].header("content-length").is_none()
            || posted[0].header("transfer-encoding").is_none(),
        "one framing upstream"
    );
    assert!(
        h.echo.seen().iter().all(|r| r.path != "/admin"),
        "smuggled request reached the upstream"
    );
}

#[tokio::test]
async fn loops_loopback_mapped_and_metadata_destinations_are_refused() {
    let h = hostile().await;
    let auth = format!("Proxy-Authorization: Bearer {}", h.token);
    let proxy = proxy_url(&h.gw);
    let cases = [
        // The gateway's own API listener, through itself.
        ("https://loop.example/api/tokens", "proxy_loop"),
        // Raw IPv6 loopback, IPv4-mapped loopback, a metadata address, a name that resolves to loopback.
        ("https://[::1]/", "destination_forbidden"),
        ("https://[::ffff:127.0.0.1]/", "destination_forbidden"),
        (
            "http://169.254.169.254/latest/meta-data/",
            "destination_forbidden",
        ),
        ("https://localhost/", "destination_forbidden"),
    ];
    for (url, reason) in cases {
        let (_, out, _) = curl(&[
            "-x",
            &proxy,
            "--proxy-header",
            &auth,
            "--cacert",
            &h.ca,
            "-g",
            "-o",
            "/dev/null",
            "-D",
            "-",
            "-w",
            "%{http_code}",
            url,
        ])
        .await;
        assert!(out.ends_with("403"), "{url}: {out}");
        assert!(
            out.to_lowercase()
                .contains(&format!("x-excalibur-reason: {reason}")),
            "{url}: {out}"
        );
    }
    // A port outside the allowed list, even for an allowed host.
    let (_, out, _) = curl(&[
        "-x",
        &proxy,
        "--proxy-header",
        &auth,
        "-o",
        "/dev/null",
        "-w",
        "%{http_connect}",
        "https://api.github.com:8443/",
    ])
    .await;
    assert_eq!(out, "403");
}

#[tokio::test]
async fn kill_9_during_writes_loses_nothing_committed() {
    let gw = Gateway::start(server_bin(), Options::default())
        .await
        .unwrap();
    gw.api()
        .post("/api/providers", json!({"id": "p", "hosts": ["x.example"]}))
        .await
        .unwrap();
    let dir = Arc::clone(&gw.dir);
    let data_dir = gw.data_dir.clone();
    let api = gw.api();
    let mut tasks = Vec::new();
    for w in 0..4 {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for i in 0..200 {
                let name = format!("XCALIBUR_CRASH_{w}_{i}");
                let body = json!({"placeholder": name, "real_value": format!("value-{w}-{i}"), "provider_id": "p"});
                match api.send("POST", "/api/placeholders", Some(body)).await {
                    Ok((201, _, _)) => acknowledged.push(name),
                    _ => break,
                }
            }
            acknowledged
        }));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    gw.kill().await.unwrap();
    let mut acknowledged = Vec::new();
    for t in tasks {
        acknowledged.extend(t.await.unwrap());
    }
    assert!(
        !acknowledged.is_empty(),
        "some writes were acknowledged before the kill"
    );

    let gw = restart(dir, data_dir, &[]).await.unwrap();
    let stored: Vec<String> = gw
        .api()
        .get("/api/placeholders")
        .await
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["placeholder"].as_str().unwrap().to_owned())
        .collect();
    let events = gw
        .api()
        .get("/api/audit?type=placeholder_updated&limit=1000")
        .await
        .unwrap();
    for name in &acknowledged {
        assert!(stored.contains(name), "acknowledged {name} lost");
        assert!(
            events
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["details"]["placeholder"] == name.as_str()),
            "event for {name} lost"
        );
    }
    assert_eq!(gw.api().get("/api/audit/verify").await.unwrap()["ok"], true);
}

#[tokio::test]
async fn a_broken_chain_stops_the_start_unless_told() {
    let gw = Gateway::start(server_bin(), Options::default())
        .await
        .unwrap();
    gw.api()
        .post("/api/providers", json!({"id": "p", "hosts": ["x.example"]}))
        .await
        .unwrap();
    let (dir, data_dir) = (Arc::clone(&gw.dir), gw.data_dir.clone());
    gw.stop().await.unwrap();
    let db = rusqlite::Connection::open(data_dir.join("excalibur.db")).unwrap();
    db.execute(
        "UPDATE audit_events SET principal = 'mallory' WHERE seq = 2",
        [],
    )
    .unwrap();
    drop(db);
    let err = restart(Arc::clone(&dir), data_dir.clone(), &[])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("audit chain is broken at seq 2"), "{err}");
    let gw = restart(dir, data_dir, &["--dangerous-allow-broken-audit-chain"])
        .await
        .unwrap();
    assert_eq!(
        gw.api().get("/api/audit/verify").await.unwrap()["first_broken_seq"],
        2
    );
}

#[tokio::test]
async fn json_logs_carry_the_request_id_of_the_flow_and_no_secret() {
    const REAL: &str = "ghp_REAL_json_log_check_0123456789";
    let echo = Echo::start(&["api.github.com"]).await.unwrap();
    let down = free_port().unwrap();
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let upstream_ca = dir.path().join("upstream-ca.pem");
    std::fs::write(&upstream_ca, &echo.ca_pem).unwrap();
    let config = format!(
        "[upstream]\nca_file = {upstream_ca:?}\nresolve = [\"api.github.com:443={}\", \"down.example:443={down}\"]\n",
        echo.tls_addr
    );
    let gw = Gateway::start_in(
        server_bin(),
        dir,
        Options {
            config_toml: config,
            env: vec![("EXCALIBUR_LOG_FORMAT".into(), "json".into())],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let api = gw.api();
    api.post(
        "/api/providers",
        json!({"id": "github", "hosts": ["api.github.com", "down.example"]}),
    )
    .await
    .unwrap();
    api.post("/api/placeholders", json!({"placeholder": "XCALIBUR_GITHUB_TOKEN", "real_value": REAL, "provider_id": "github"}))
        .await
        .unwrap();
    api.post("/api/translation-rules", json!({"placeholder": "XCALIBUR_GITHUB_TOKEN", "hosts": ["api.github.com", "down.example"]}))
        .await
        .unwrap();
    let (_, token) = credential(
        &gw,
        "logs",
        "127.0.0.0/8",
        &["api.github.com", "down.example"],
    )
    .await;
    let ca = gw.data_dir.join("ca.pem").to_string_lossy().into_owned();
    // One request that works (with a secret substituted) and one whose upstream is down.
    for host in ["api.github.com", "down.example"] {
        let (code, _, err) = curl(&[
            "-x",
            &proxy_url(&gw),
            "--proxy-user",
            &format!("x:{token}"),
            "--cacert",
            &ca,
            "-H",
            "Authorization: Bearer XCALIBUR_GITHUB_TOKEN",
            "-o",
            "/dev/null",
            &format!("https://{host}/user"),
        ])
        .await;
        assert_eq!(code, 0, "{err}");
    }
    let flows = api.get("/api/flows?limit=10").await.unwrap();
    let down_flows: Vec<&serde_json::Value> = flows
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["host"] == "down.example")
        .collect();
    assert_eq!(down_flows.len(), 1, "one flow per request: {down_flows:?}");
    assert_eq!(down_flows[0]["status"], 502);
    let failed = down_flows[0]["id"].as_str().unwrap().to_owned();
    let mut found = false;
    for _ in 0..50 {
        let out = gw.output();
        assert!(!out.contains(REAL), "a secret reached the logs");
        found = out
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .any(|l| {
                l["level"] == "WARN"
                    && l["span"]["request_id"] == failed.as_str()
                    && l["span"]["host"] == "down.example"
            });
        if found {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        found,
        "no JSON log line carries request_id {failed}:\n{}",
        gw.output()
    );
}

/// Opens `n` TCP connections from `source` to `to` that never send a byte.
async fn silent_flood(source: &str, to: std::net::SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
        if let Ok(s) = socket.connect(to).await {
            held.push(s);
        }
    }
    held
}

#[tokio::test]
async fn an_idle_flood_starves_neither_the_api_nor_other_workloads() {
    // The defaults' idle timeout (120 s), a budget of 1,000 connections per listener.
    let h = plain_gateway(
        "[limits]\nheader_read_timeout_ms = 1000\nmax_connections = 1000\nmax_connections_per_source = 100\n",
    )
    .await;
    // 4,200 silent connections to the proxy port and 500 to the API port, from
    // 127.0.0.2 and 127.0.0.3: several times the budget (1,000) the listeners once shared.
    let mut flood = silent_flood("127.0.0.2", h.gw.proxy(), 4200).await;
    flood.extend(silent_flood("127.0.0.3", h.gw.api_addr, 500).await);
    // One more source opens 150 kept-alive connections, one after the other: it holds
    // at most max_connections_per_source (100) of them; the rest are closed at once.
    let (mut held, mut refused) = (Vec::new(), 0);
    for _ in 0..150 {
        let mut s = silent_flood("127.0.0.4", h.gw.proxy(), 1).await.remove(0);
        let head = b"GET http://api.github.com/ HTTP/1.1\r\nHost: api.github.com\r\n\r\n";
        let mut buf = [0u8; 12];
        let answered = s.write_all(head).await.is_ok()
            && matches!(
                tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await,
                Ok(Ok(n)) if n > 0
            );
        if answered {
            held.push(s);
        } else {
            refused += 1;
        }
    }
    assert_eq!((held.len(), refused), (100, 50), "one source's connections");
    assert!(
        flood.len() > 4600,
        "only {} connections opened",
        flood.len()
    );
    // And a slowloris: 300 connections from 127.0.0.5 dribbling a head, a byte every
    // 300 ms (bounded: 40 bytes each, or until the gateway closes them).
    let mut slow = silent_flood("127.0.0.5", h.gw.proxy(), 300).await;
    let dribble = tokio::spawn(async move {
        let head = b"GET http://api.github.com/ HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaa";
        for byte in head.iter().take(40) {
            for s in &mut slow {
                let _ = s.write_all(&[*byte]).await;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    // Meanwhile, from 127.0.0.1, each within a second: liveness, the kill switch, and a
    // workload's request.
    let t = Instant::now();
    let (code, _, _) = h.gw.api().send("GET", "/healthz", None).await.unwrap();
    assert_eq!(code, 200);
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "healthz took {:?}",
        t.elapsed()
    );
    let t = Instant::now();
    let (code, _, body) =
        h.gw.api()
            .send(
                "POST",
                "/api/revocations",
                Some(json!({"principal": "k8s:c/flood/sa"})),
            )
            .await
            .unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "revocation took {:?}",
        t.elapsed()
    );
    let auth = format!("Proxy-Authorization: Bearer {}", h.token);
    let t = Instant::now();
    let (code, out, err) = curl(&[
        "-x",
        &proxy_url(&h.gw),
        "--proxy-header",
        &auth,
        "--cacert",
        &h.ca,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "https://api.github.com/during-flood",
    ])
    .await;
    assert_eq!((code, out.as_str()), (0, "200"), "{err}");
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "a proxied request took {:?}",
        t.elapsed()
    );
    dribble.abort();
    // Silent connections are closed after the header read timeout (1 s here), not the
    // idle timeout (120 s): every one of them is gone within a few seconds.
    let start = Instant::now();
    for s in flood.iter_mut().step_by(50) {
        let took = time_to_close(s, Duration::from_secs(5)).await;
        assert!(
            took < Duration::from_secs(4),
            "a silent connection lived {took:?}"
        );
    }
    assert!(start.elapsed() < Duration::from_secs(6));
}

#[tokio::test]
async fn configuration_rows_edited_in_the_database_file_configure_nothing() {
    let gw = Gateway::start(server_bin(), Options::default())
        .await
        .unwrap();
    let api = gw.api();
    api.post(
        "/api/providers",
        json!({"id": "github", "hosts": ["api.github.com"]}),
    )
    .await
    .unwrap();
    api.post(
        "/api/placeholders",
        json!({"placeholder": "XCALIBUR_GITHUB_TOKEN", "real_value": "ghp_tamper_target_0123456789", "provider_id": "github"}),
    )
    .await
    .unwrap();
    api.post(
        "/api/translation-rules",
        json!({"placeholder": "XCALIBUR_GITHUB_TOKEN", "hosts": ["api.github.com"]}),
    )
    .await
    .unwrap();
    let (dir, data_dir) = (Arc::clone(&gw.dir), gw.data_dir.clone());
    gw.stop().await.unwrap();
    // The attacker's edit: the provider's hosts and the rule now point at evil.example.
    let db = rusqlite::Connection::open(data_dir.join("excalibur.db")).unwrap();
    db.execute(
        "UPDATE providers SET hosts = '[\"evil.example\"]' WHERE id = 'github'",
        [],
    )
    .unwrap();
    db.execute(
        "UPDATE translation_rules SET body = replace(body, 'api.github.com', 'evil.example')",
        [],
    )
    .unwrap();
    drop(db);
    // The gateway refuses to start on it, naming what happened.
    let err = restart(Arc::clone(&dir), data_dir.clone(), &[])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("modified outside Excalibur"), "{err}");
    // Even the broken-chain override does not let edited rows configure the proxy.
    let err = restart(
        Arc::clone(&dir),
        data_dir.clone(),
        &["--dangerous-allow-broken-audit-chain"],
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("modified outside Excalibur"), "{err}");
    // An operator who investigated accepts them explicitly, and that is audited.
    let gw = restart(dir, data_dir, &["--dangerous-accept-config-edits"])
        .await
        .unwrap();
    let v = gw.api().get("/api/audit/verify").await.unwrap();
    assert_eq!(v["ok"], true, "{v}");
    let events = gw
        .api()
        .get("/api/audit?type=configuration_accepted")
        .await
        .unwrap();
    assert_eq!(events[0]["details"]["rows_were_edited"], true, "{events}");
    // Edits under a running gateway are not laundered by the next write: writes are
    // refused and `audit verify` names each row: two providers' hosts swapped, a
    // translation rule deleted.
    gw.api()
        .post(
            "/api/providers",
            json!({"id": "stripe", "hosts": ["api.stripe.com"]}),
        )
        .await
        .unwrap();
    let db = rusqlite::Connection::open(gw.data_dir.join("excalibur.db")).unwrap();
    let hosts = |id: &str| -> String {
        db.query_row("SELECT hosts FROM providers WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .unwrap()
    };
    let (github, stripe) = (hosts("github"), hosts("stripe"));
    db.execute(
        "UPDATE providers SET hosts = ?1 WHERE id = 'github'",
        [&stripe],
    )
    .unwrap();
    db.execute(
        "UPDATE providers SET hosts = ?1 WHERE id = 'stripe'",
        [&github],
    )
    .unwrap();
    let rule: String = db
        .query_row("SELECT id FROM translation_rules", [], |r| r.get(0))
        .unwrap();
    db.execute("DELETE FROM translation_rules", []).unwrap();
    drop(db);
    let (status, _, _) = gw
        .api()
        .send(
            "POST",
            "/api/providers",
            Some(json!({"id": "other", "hosts": ["other.example"]})),
        )
        .await
        .unwrap();
    assert_eq!(status, 500);
    let v = gw.api().get("/api/audit/verify").await.unwrap();
    assert_eq!(v["ok"], false, "{v}");
    assert!(
        v["reason"].as_str().unwrap().contains("outside Excalibur"),
        "{v}"
    );
    assert_eq!(
        v["config_rows"],
        json!([
            "providers/github (changed)",
            "providers/stripe (changed)",
            format!("translation_rules/{rule} (removed)")
        ]),
        "{v}"
    );
}

#[tokio::test]
async fn certificates_renew_themselves() {
    // Leaves (and the API listener's certificate) valid 6 s, renewed after 4 s.
    let Hostile { gw, token, ca, .. } = plain_gateway("[proxy]\nleaf_validity_secs = 6\n").await;
    let auth = format!("Proxy-Authorization: Bearer {token}");
    let api_url = format!("https://localhost:{}/healthz", gw.api_addr.port());
    // The certificate the client was shown (leaf first), after a verified handshake.
    let leaf_of = |args: Vec<String>| async move {
        let mut all = vec![
            "-o".to_owned(),
            "/dev/null".into(),
            "-w".into(),
            "%{certs}".into(),
        ];
        all.extend(args);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let (code, out, err) = curl(&refs).await;
        assert_eq!(code, 0, "{err}");
        out.split("-----END CERTIFICATE-----")
            .next()
            .unwrap()
            .to_owned()
    };
    let listener = || leaf_of(vec!["--cacert".into(), ca.clone(), api_url.clone()]);
    let intercepted = || {
        leaf_of(vec![
            "-x".into(),
            proxy_url(&gw),
            "--proxy-header".into(),
            auth.clone(),
            "--cacert".into(),
            ca.clone(),
            "https://api.github.com/renew".into(),
        ])
    };
    let (first_api, first_leaf) = (listener().await, intercepted().await);
    assert!(first_api.contains("BEGIN CERTIFICATE") && first_leaf.contains("BEGIN CERTIFICATE"));
    // Within its first two thirds, the same certificates are served.
    assert_eq!(intercepted().await, first_leaf);
    // Past them, new ones, still trusted; nothing expired is ever presented.
    let start = Instant::now();
    let (mut api_renewed, mut leaf_renewed) = (false, false);
    while !(api_renewed && leaf_renewed) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "renewed: listener {api_renewed}, leaf {leaf_renewed}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        api_renewed |= listener().await != first_api;
        leaf_renewed |= intercepted().await != first_leaf;
    }
}

#[tokio::test]
async fn a_ca_near_its_expiry_is_reported_before_it_breaks_anything() {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    // An operator's CA with 10 days left (the default warning starts 30 days ahead).
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "Short-lived operator CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(10);
    let cert = params.self_signed(&key).unwrap();
    let files = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (files.path().join("ca.crt"), files.path().join("ca.key"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let gw = Gateway::start(
        server_bin(),
        Options {
            env: vec![
                (
                    "EXCALIBUR_CA_CERT_FILE".into(),
                    cert_path.display().to_string(),
                ),
                (
                    "EXCALIBUR_CA_KEY_FILE".into(),
                    key_path.display().to_string(),
                ),
            ],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // Still ready (nothing is broken yet), but degraded and saying when.
    let (status, _, ready) = gw.api().send("GET", "/readyz", None).await.unwrap();
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["ready"], true, "{ready}");
    assert_eq!(ready["degraded"], json!(["ca_expiring"]), "{ready}");
    let not_after = ready["ca_not_after"].as_str().unwrap();
    let left =
        time::OffsetDateTime::parse(not_after, &time::format_description::well_known::Rfc3339)
            .unwrap()
            - now;
    assert!(
        left > time::Duration::days(9) && left <= time::Duration::days(10),
        "{not_after}"
    );
    // And as a metric an alert can watch.
    let (_, _, metrics) = gw.api().send("GET", "/metrics", None).await.unwrap();
    let metrics = metrics.as_str().unwrap();
    let secs: i64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("excalibur_ca_expiry_seconds "))
        .unwrap_or_else(|| panic!("no CA expiry metric in {metrics}"))
        .trim()
        .parse()
        .unwrap();
    assert!((9 * 86_400..=10 * 86_400).contains(&secs), "{secs}");
    assert!(
        metrics.contains("excalibur_recording_failing 0"),
        "{metrics}"
    );

    // The gateway's own CA (10 years) is not reported.
    let fresh = Gateway::start(server_bin(), Options::default())
        .await
        .unwrap();
    let (status, _, ready) = fresh.api().send("GET", "/readyz", None).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(ready["degraded"], json!([]), "{ready}");
    assert_eq!(ready["problems"], json!([]), "{ready}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_record_of_an_answered_redemption() {
    // Five times: load with substitution, SIGKILL at a different moment, restart. Every
    // request that got its answer has its flow: the write-ahead record is committed
    // before a secret leaves, and the restart completes what was in flight. (With
    // `[audit] durability = "batched"` this fails: 7 of 107 answered requests had no
    // flow in one round.) Odd rounds run `durability = "synced"`, which promises more.
    for round in 0..5usize {
        let durability = if round % 2 == 1 { "synced" } else { "durable" };
        let Hostile { gw, token, ca, .. } =
            plain_gateway(&format!("[audit]\ndurability = \"{durability}\"\n")).await;
        let api = gw.api();
        api.post(
            "/api/placeholders",
            json!({"placeholder": "XCALIBUR_GITHUB_TOKEN", "real_value": "ghp_crash_value", "provider_id": "github"}),
        )
        .await
        .unwrap();
        api.post(
            "/api/translation-rules",
            json!({"placeholder": "XCALIBUR_GITHUB_TOKEN", "hosts": ["api.github.com"]}),
        )
        .await
        .unwrap();
        let client = reqwest::Client::builder()
            .proxy(
                reqwest::Proxy::https(proxy_url(&gw))
                    .unwrap()
                    .custom_http_auth(format!("Bearer {token}").parse().unwrap()),
            )
            .tls_certs_only([reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap()])
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let answered = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let mut workers = Vec::new();
        for w in 0..8 {
            let (client, answered) = (client.clone(), Arc::clone(&answered));
            workers.push(tokio::spawn(async move {
                for i in 0..5000 {
                    let id = format!("crash-{round}-{w}-{i}");
                    let sent = client
                        .get(format!("https://api.github.com/r/{id}"))
                        .header("authorization", "Bearer XCALIBUR_GITHUB_TOKEN")
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status() == 200 => answered.lock().unwrap().push(id),
                        _ => break,
                    }
                }
            }));
        }
        let kill_after = 40 + 30 * round;
        let started = Instant::now();
        while answered.lock().unwrap().len() < kill_after {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "load never ran"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let (dir, data_dir) = (Arc::clone(&gw.dir), gw.data_dir.clone());
        gw.kill().await.unwrap();
        for w in workers {
            w.await.unwrap();
        }
        let answered = answered.lock().unwrap().clone();

        let gw = restart(dir, data_dir, &[]).await.unwrap();
        let flows = gw.api().get("/api/flows?limit=1000").await.unwrap();
        let flows = flows.as_array().unwrap();
        assert!(flows.len() < 1000, "one page holds every flow");
        let paths: std::collections::HashSet<&str> =
            flows.iter().filter_map(|f| f["path"].as_str()).collect();
        let missing: Vec<&String> = answered
            .iter()
            .filter(|id| !paths.contains(format!("/r/{id}").as_str()))
            .collect();
        assert!(
            missing.is_empty(),
            "round {round} ({durability}): {} of {} answered requests have no flow: {missing:?}",
            missing.len(),
            answered.len()
        );
        // Those whose completion died with the process say so, and are in the chain.
        let interrupted: Vec<&Value> = flows
            .iter()
            .filter(|f| f["reason"] == "interrupted")
            .collect();
        for f in &interrupted {
            assert_eq!(f["placeholders"], json!(["XCALIBUR_GITHUB_TOKEN"]), "{f}");
        }
        let events = gw
            .api()
            .get("/api/audit?type=flow_recorded&limit=1000")
            .await
            .unwrap();
        let recorded = events.as_array().unwrap();
        for id in &answered {
            assert!(
                recorded
                    .iter()
                    .any(|e| e["details"]["path"] == format!("/r/{id}").as_str()),
                "round {round}: no flow_recorded event for {id}"
            );
        }
        assert_eq!(gw.api().get("/api/audit/verify").await.unwrap()["ok"], true);
        eprintln!(
            "round {round} ({durability}): {} answered before SIGKILL, all recorded ({} completed as interrupted at restart)",
            answered.len(),
            interrupted.len()
        );
    }
}

#[tokio::test]
async fn a_second_gateway_on_the_same_sqlite_database_is_refused() {
    // One process per SQLite database: a second one would read the first's flows in
    // flight as a dead gateway's (and empty its journal). It waits for the first to let
    // go (a predecessor shutting down), then refuses to start, and the first serves on.
    let gw = Gateway::start(server_bin(), Options::default())
        .await
        .unwrap();
    let second = restart(Arc::clone(&gw.dir), gw.data_dir.clone(), &[]).await;
    let refused = format!(
        "{:#}",
        second.expect_err("a second gateway started on the same database")
    );
    assert!(
        refused.contains("flow journal") && refused.contains("is locked"),
        "{refused}"
    );
    gw.api()
        .post(
            "/api/providers",
            json!({"id": "p1", "hosts": ["p1.example"]}),
        )
        .await
        .unwrap();
    // Once the first is gone the database is the next one's, with what it wrote.
    let (dir, data_dir) = (Arc::clone(&gw.dir), gw.data_dir.clone());
    gw.stop().await.unwrap();
    let gw = restart(dir, data_dir, &[]).await.unwrap();
    let providers = gw.api().get("/api/providers").await.unwrap();
    assert!(providers.to_string().contains("p1.example"), "{providers}");
}

/// A small tmpfs mounted for one test (needs root, as `./test.sh` runs in CI); unmounted
/// on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: &std::path::Path, size: &str) -> Self {
        std::fs::create_dir_all(at).unwrap();
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "this test mounts a tmpfs to fill it (run it as root, as ./test.sh does): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self(at.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_redemption_until_space_is_back() {
    let echo = Echo::start(&["api.github.com"]).await.unwrap();
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let upstream_ca = dir.path().join("upstream-ca.pem");
    std::fs::write(&upstream_ca, &echo.ca_pem).unwrap();
    let disk = Tmpfs::mount(&dir.path().join("small"), "16m");
    let data_dir = disk.0.join("data");
    let gw = Gateway::start_in(
        server_bin(),
        Arc::clone(&dir),
        Options {
            data_dir: Some(data_dir.clone()),
            config_toml: format!(
                "[upstream]\nca_file = {upstream_ca:?}\nresolve = [\"api.github.com:443={}\"]\n",
                echo.tls_addr
            ),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let api = gw.api();
    api.post(
        "/api/providers",
        json!({"id": "github", "hosts": ["api.github.com"]}),
    )
    .await
    .unwrap();
    api.post(
        "/api/placeholders",
        json!({"placeholder": "XCALIBUR_GITHUB_TOKEN", "real_value": "ghp_full_disk", "provider_id": "github"}),
    )
    .await
    .unwrap();
    api.post(
        "/api/translation-rules",
        json!({"placeholder": "XCALIBUR_GITHUB_TOKEN", "hosts": ["api.github.com"]}),
    )
    .await
    .unwrap();
    let (_, token) = credential(&gw, "ci", "127.0.0.1/32", &["api.github.com"]).await;
    let ca = gw.data_dir.join("ca.pem").to_string_lossy().into_owned();
    let get = |id: String| {
        let (token, ca, proxy) = (token.clone(), ca.clone(), proxy_url(&gw));
        async move {
            let (_, out, _) = curl(&[
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-x",
                &proxy,
                "--proxy-header",
                &format!("Proxy-Authorization: Bearer {token}"),
                "--cacert",
                &ca,
                "-H",
                "Authorization: Bearer XCALIBUR_GITHUB_TOKEN",
                &format!("https://api.github.com/r/{id}"),
            ])
            .await;
            out
        }
    };
    assert_eq!(get("before".into()).await, "200");

    // Fill the disk (bounded: 64 x 1 MiB, far more than the 16 MiB there are).
    let filler = disk.0.join("filler");
    {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..64 {
            if f.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = f.sync_all();
    }
    // Redemption stops: nothing leaves with a secret that cannot be recorded. (The
    // journal of flows in flight may still take a line into the page it holds: such a
    // request was recorded as in flight, may leave, and must have its flow in the end.)
    let seen_before = echo.seen().len();
    let mut statuses = Vec::new();
    for i in 0..20 {
        statuses.push(get(format!("full-{i}")).await);
    }
    assert!(
        statuses.iter().all(|s| s == "503" || s == "200"),
        "requests on a full disk: {statuses:?}"
    );
    assert!(
        statuses[10..].iter().all(|s| s == "503"),
        "redemption never stopped on a full disk: {statuses:?}"
    );
    let sent: Vec<String> = (0..statuses.len())
        .filter(|&i| statuses[i] == "200")
        .map(|i| format!("/r/full-{i}"))
        .collect();
    assert_eq!(
        echo.seen().len(),
        seen_before + sent.len(),
        "only requests recorded as in flight reached the upstream: {statuses:?}"
    );
    let (ready, _, why) = api.send("GET", "/readyz", None).await.unwrap();
    assert_eq!(ready, 503, "{why}");
    assert!(
        why["problems"].to_string().contains("recording_failing"),
        "{why}"
    );
    let (_, _, metrics) = api.send("GET", "/metrics", None).await.unwrap();
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("excalibur_recording_failing 1"),
        "{metrics}"
    );
    // A configuration write fails cleanly too (and loses nothing already stored).
    let (status, _, body) = api
        .send(
            "POST",
            "/api/providers",
            Some(json!({"id": "other", "hosts": ["other.example"]})),
        )
        .await
        .unwrap();
    assert!(status >= 500, "{status} {body}");

    // Space is back: it recovers by itself.
    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    loop {
        if get(format!("after-{}", freed.elapsed().as_millis())).await == "200" {
            break;
        }
        assert!(freed.elapsed() < Duration::from_secs(10), "never recovered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (ready, _, why) = api.send("GET", "/readyz", None).await.unwrap();
    assert_eq!(ready, 200, "{why}");
    assert_eq!(api.get("/api/audit/verify").await.unwrap()["ok"], true);
    let flows = api.get("/api/flows?limit=1000").await.unwrap();
    let paths: Vec<&str> = flows
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["path"].as_str())
        .collect();
    assert!(paths.contains(&"/r/before"), "{paths:?}");
    for path in &sent {
        assert!(
            paths.contains(&path.as_str()),
            "{path} has no flow: {paths:?}"
        );
    }
    drop(gw);
}

#[tokio::test]
async fn text_logs_carry_no_colour_codes_off_a_terminal() {
    // Captured output is not a terminal: no ANSI escapes in the text log format.
    let gw = Gateway::start(
        server_bin(),
        Options {
            env: vec![("EXCALIBUR_LOG_FORMAT".into(), "text".into())],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    gw.api()
        .post("/api/providers", json!({"id": "p", "hosts": ["x.example"]}))
        .await
        .unwrap();
    let out = gw.output();
    assert!(out.contains("api listening"), "{out}");
    assert!(!out.contains('\u{1b}'), "ANSI escape in the log: {out:?}");
}

/// Opens a CONNECT tunnel to api.github.com from 127.0.0.1; `None` when the gateway
/// closes the connection instead of answering 200.
async fn open_tunnel(h: &Hostile) -> Option<TcpStream> {
    let mut s = TcpStream::connect(h.gw.proxy()).await.ok()?;
    let connect = format!(
        "CONNECT api.github.com:443 HTTP/1.1\r\nHost: api.github.com:443\r\nProxy-Authorization: Bearer {}\r\n\r\n",
        h.token
    );
    s.write_all(connect.as_bytes()).await.ok()?;
    let mut head = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut head))
        .await
        .ok()?
        .ok()?;
    String::from_utf8_lossy(&head[..n])
        .starts_with("HTTP/1.1 200")
        .then_some(s)
}

#[tokio::test]
async fn a_tunnel_holds_its_connection_slot_for_its_whole_life() {
    // Before, the slot went back when the CONNECT was answered: a source held any number
    // of tunnels, past max_connections_per_source and max_connections.
    let h = plain_gateway("[limits]\nmax_connections_per_source = 3\n").await;
    let mut tunnels = Vec::new();
    for _ in 0..3 {
        tunnels.push(open_tunnel(&h).await.expect("a tunnel within the budget"));
    }
    assert!(
        open_tunnel(&h).await.is_none(),
        "a fourth tunnel from the same source was admitted"
    );
    // A tunnel that ends gives its slot back.
    drop(tunnels.pop());
    let start = Instant::now();
    let mut again = None;
    while again.is_none() && start.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        again = open_tunnel(&h).await;
    }
    assert!(
        again.is_some(),
        "the slot of a closed tunnel never came back"
    );
}

#[tokio::test]
async fn an_idle_tunnel_is_parked_and_serves_its_next_requests() {
    let h = plain_gateway("[limits]\nheader_read_timeout_ms = 1500\n").await;
    // Python's ssl over a raw CONNECT: one TLS session for every step.
    let script = r#"
import json, os, socket, ssl, time, urllib.request
def parked():
    req = urllib.request.Request("http://%s/metrics" % os.environ["API"],
                                 headers={"Authorization": "Bearer " + os.environ["ADMIN"]})
    for line in urllib.request.urlopen(req, timeout=5).read().decode().splitlines():
        if line.startswith("excalibur_proxy_tunnels_parked "):
            return int(float(line.split()[1]))
s = socket.create_connection(tuple(os.environ["PROXY"].rsplit(":", 1)), timeout=10)
s.sendall(("CONNECT api.github.com:443 HTTP/1.1\r\nHost: api.github.com:443\r\n"
           "Proxy-Authorization: Bearer %s\r\n\r\n" % os.environ["TOKEN"]).encode())
assert s.recv(4096).startswith(b"HTTP/1.1 200")
t = ssl.create_default_context(cafile=os.environ["CA"]).wrap_socket(s, server_hostname="api.github.com")
buf = b""
def response():
    global buf
    while b"\r\n\r\n" not in buf:
        chunk = t.recv(65536)
        if not chunk:
            raise SystemExit("closed: %r" % buf)
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    length = next(int(l.split(":", 1)[1]) for l in lines if l.lower().startswith("content-length:"))
    while len(rest) < length:
        rest += t.recv(65536)
    buf = rest[length:]
    return {"status": int(lines[0].split()[1]),
            "close": any(l.lower() == "connection: close" for l in lines)}
def get(path):
    return ("GET %s HTTP/1.1\r\nHost: api.github.com\r\n\r\n" % path).encode()
out = {}
t.sendall(get("/first")); out["first"] = response()
time.sleep(0.5)
out["parked_while_idle"] = parked()
t.sendall(get("/after-park")); out["after_park"] = response()
# A head split across a park: its first half waits in the parked state.
half = get("/split")
t.sendall(half[:20]); time.sleep(0.5); t.sendall(half[20:]); out["split"] = response()
# Two pipelined requests in one write.
t.sendall(get("/pipe-1") + get("/pipe-2")); out["pipelined"] = [response(), response()]
# Idle: a parked tunnel is closed after the header read timeout (1.5 s here).
start = time.time()
t.settimeout(10)
try:
    while t.recv(4096):
        pass
except (ssl.SSLError, OSError):
    pass
out["closed_after"] = time.time() - start
print(json.dumps(out))
"#;
    let out = tokio::process::Command::new("python3")
        .args(["-c", script])
        .env("TOKEN", &h.token)
        .env("PROXY", h.gw.proxy().to_string())
        .env("API", h.gw.api_addr.to_string())
        .env("ADMIN", &h.gw.admin_token)
        .env("CA", &h.ca)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let served = json!({"status": 200, "close": false});
    for step in ["first", "after_park", "split"] {
        assert_eq!(v[step], served, "{step}: {v}");
    }
    assert_eq!(v["pipelined"], json!([served, served]), "{v}");
    assert_eq!(v["parked_while_idle"], 1, "{v}");
    let closed = v["closed_after"].as_f64().unwrap();
    assert!((1.0..5.0).contains(&closed), "closed after {closed} s");
    // Every request reached the upstream, in order, over the one tunnel.
    let paths: Vec<String> = h.echo.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(
        paths,
        ["/first", "/after-park", "/split", "/pipe-1", "/pipe-2"],
        "{paths:?}"
    );
}
