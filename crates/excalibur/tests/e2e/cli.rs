//! Issue 21: `excalibur-ctl` sends the token to the API base and nowhere else. A URL
//! handed to a subcommand (a webhook receiver, a host, a file, an id) is data, never a
//! destination; a redirect from the API is not followed; cleartext goes only to loopback.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::CommandFactory as _;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use crate::{ctl, ctl_bin, gateway};

/// A listener that records every connection and the bytes it got, and answers each with
/// `answer` (built from its own address), as a webhook receiver or a hostile API would.
#[derive(Clone)]
struct Tripwire {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<String>>>,
}

impl Tripwire {
    async fn start(answer: impl Fn(SocketAddr) -> String + Send + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let trip = Self {
            addr,
            got: Arc::clone(&got),
        };
        let answer = answer(addr);
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let (got, answer) = (Arc::clone(&got), answer.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
                        .await
                        .ok()
                        .and_then(Result::ok)
                        .unwrap_or(0);
                    got.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                    let _ = tcp.write_all(answer.as_bytes()).await;
                    let _ = tcp.shutdown().await;
                });
            }
        });
        trip
    }

    /// A receiver that answers 200 with an empty body (what made `webhook add` print an
    /// empty row and exit 0).
    async fn receiver() -> Self {
        Self::start(|_| "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".into())
            .await
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn requests(&self) -> Vec<String> {
        self.got.lock().unwrap().clone()
    }
}

/// Runs `excalibur-ctl` with `EXCALIBUR_URL=api_url` and the token in the environment,
/// from `cwd`, with no stdin; returns (exit code, stdout, stderr).
async fn ctl_at(api_url: &str, token: &str, cwd: &Path, args: &[String]) -> (i32, String, String) {
    let out = tokio::process::Command::new(ctl_bin())
        .args(args)
        .env("EXCALIBUR_URL", api_url)
        .env("EXCALIBUR_TOKEN", token)
        .env_remove("EXCALIBUR_CACERT")
        .current_dir(cwd)
        .stdin(std::process::Stdio::null())
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .expect("excalibur-ctl ends")
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn webhook_add_url_is_the_receiver_and_never_gets_the_token() {
    // (The receiver is on loopback: allowed here as a test would.)
    let gw = excalibur_test_support::Gateway::start(
        crate::server_bin(),
        excalibur_test_support::Options {
            config_toml: "[webhooks]\ndangerous_allow_private_destinations = true\n".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let receiver = Tripwire::receiver().await;
    let cwd = tempfile::tempdir().unwrap();
    let hook = receiver.url("/r");

    // The issue's reproduction: the API base is unreachable, so nothing is created, the
    // command fails, and the receiver hears nothing.
    let (code, out, err) = ctl_at(
        "http://127.0.0.1:1",
        &gw.admin_token,
        cwd.path(),
        &strings(&[
            "webhook",
            "add",
            "--url",
            &hook,
            "--event-type",
            "credential_rotated",
        ]),
    )
    .await;
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("127.0.0.1:1"), "{err}");

    // Against the real API: the webhook is created there, with the receiver as its URL.
    let (code, out, err) = ctl(
        &gw,
        &[
            "webhook",
            "add",
            "--url",
            &hook,
            "--event-type",
            "credential_rotated",
        ],
        None,
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&hook), "{out}");
    let listed = gw.api().get("/api/webhooks").await.unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["url"], json!(hook));
    assert_eq!(listed[0]["event_types"], json!(["credential_rotated"]));
    // `--api-url` after the subcommand is still the API base, `--url` still the receiver.
    let (code, out, err) = ctl_at(
        "http://127.0.0.1:1",
        &gw.admin_token,
        cwd.path(),
        &strings(&[
            "webhook",
            "add",
            "--url",
            &hook,
            "--event-type",
            "placeholder_*",
            "--api-url",
            &gw.url(),
        ]),
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        gw.api()
            .get("/api/webhooks")
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    for w in gw
        .api()
        .get("/api/webhooks")
        .await
        .unwrap()
        .as_array()
        .unwrap()
    {
        let id = w["id"].as_str().unwrap();
        let (code, out, err) = ctl(&gw, &["webhook", "delete", id], None).await;
        assert_eq!(code, 0, "{out}{err}");
    }
    assert!(
        receiver.requests().is_empty(),
        "the receiver was contacted: {:?}",
        receiver.requests()
    );
}

/// One invocation per (leaf subcommand, argument that takes a value): that argument and
/// every required one set to `value`. Typed arguments (ports, limits) fail to parse,
/// which is fine: the point is that no value reaches the network as a destination.
fn invocations(value: &str) -> Vec<Vec<String>> {
    fn walk(cmd: &clap::Command, path: &[String], value: &str, out: &mut Vec<Vec<String>>) {
        if cmd.has_subcommands() {
            for sub in cmd.get_subcommands() {
                let mut here = path.to_vec();
                here.push(sub.get_name().to_owned());
                walk(sub, &here, value, out);
            }
            return;
        }
        let takes = |a: &clap::Arg| a.get_action().takes_values() && !a.is_global_set();
        let args: Vec<&clap::Arg> = cmd.get_arguments().filter(|a| takes(a)).collect();
        let set = |argv: &mut Vec<String>, a: &clap::Arg| match a.get_long() {
            Some(long) => argv.extend([format!("--{long}"), value.to_owned()]),
            None => argv.push(value.to_owned()),
        };
        let required: Vec<&&clap::Arg> = args.iter().filter(|a| a.is_required_set()).collect();
        let mut base = path.to_vec();
        for r in &required {
            set(&mut base, r);
        }
        out.push(base.clone());
        for a in args.iter().filter(|a| !a.is_required_set()) {
            let mut argv = base.clone();
            set(&mut argv, a);
            out.push(argv);
        }
    }
    let mut out = Vec::new();
    walk(&excalibur_ctl::cli::Cli::command(), &[], value, &mut out);
    out
}

#[tokio::test]
async fn no_url_like_argument_of_any_subcommand_is_contacted() {
    let gw = gateway().await;
    let trip = Tripwire::receiver().await;
    let cwd = tempfile::tempdir().unwrap();
    // Something for the commands to act on, so creates and deletes reach the API.
    let api = gw.api();
    api.post(
        "/api/providers",
        json!({"id": "github", "hosts": ["api.github.com"]}),
    )
    .await
    .unwrap();
    // A URL, an authority and a scheme-relative reference: each a destination to a
    // careless client.
    let values = [
        trip.url("/x"),
        trip.addr.to_string(),
        format!("//{}/x", trip.addr),
    ];
    for value in &values {
        let all = invocations(value);
        let leaves: std::collections::BTreeSet<String> = all
            .iter()
            .map(|a| a.iter().take(2).cloned().collect::<Vec<_>>().join(" "))
            .collect();
        for must in [
            "webhook add",
            "provider add",
            "placeholder add",
            "policy add",
            "crypto sigv4",
            "ssh route",
        ] {
            assert!(
                leaves.iter().any(|l| l.starts_with(must)),
                "no `{must}` in {leaves:?}"
            );
        }
        assert!(all.len() > 60, "only {} invocations", all.len());
        let mut reached_api = 0;
        for argv in &all {
            let (code, out, err) = ctl_at(&gw.url(), &gw.admin_token, cwd.path(), argv).await;
            assert!(
                !out.contains(&gw.admin_token) && !err.contains(&gw.admin_token),
                "{argv:?} printed the token"
            );
            // A clap usage error exits 2; everything else talked to the API (or failed
            // on a local file) first.
            if code != 2 {
                reached_api += 1;
            }
            assert!(
                trip.requests().is_empty(),
                "{argv:?} contacted {value}: {:?}",
                trip.requests()
            );
        }
        assert!(
            reached_api > 40,
            "only {reached_api} invocations got past parsing"
        );
    }
    // No value given as a host or an id became configuration either.
    let providers = api.get("/api/providers").await.unwrap();
    assert_eq!(providers.as_array().unwrap().len(), 1, "{providers}");
}

#[tokio::test]
async fn redirects_from_the_api_are_not_followed() {
    let elsewhere = Tripwire::receiver().await;
    let target = elsewhere.url("/api/tokens");
    let cwd = tempfile::tempdir().unwrap();
    for status in [
        "301 Moved Permanently",
        "302 Found",
        "307 Temporary Redirect",
        "308 Permanent Redirect",
    ] {
        let t = target.clone();
        let api = Tripwire::start(move |_| {
            format!("HTTP/1.1 {status}\r\nlocation: {t}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        })
        .await;
        for args in [
            &["token", "list"][..],
            &["token", "create", "--name", "x"][..],
        ] {
            let (code, out, err) = ctl_at(
                &api.url(""),
                "xca_redirect_probe",
                cwd.path(),
                &strings(args),
            )
            .await;
            assert_eq!(code, 1, "{status} {args:?}: {out}{err}");
            assert!(
                err.contains("redirect") && err.contains("not followed"),
                "{err}"
            );
            assert!(
                err.contains(&target),
                "the error names where it pointed: {err}"
            );
            // The API base itself got the token; that is where it belongs.
            let seen = api.requests();
            assert_eq!(seen.len(), 1, "{seen:?}");
            assert!(
                seen[0]
                    .to_ascii_lowercase()
                    .contains("authorization: bearer xca_redirect_probe")
            );
            api.got.lock().unwrap().clear();
        }
    }
    assert!(
        elsewhere.requests().is_empty(),
        "{:?}",
        elsewhere.requests()
    );
}

#[tokio::test]
async fn an_empty_answer_to_a_create_is_an_error() {
    // An "API" that answers every request with an empty 200, as a webhook receiver does.
    let hollow = Tripwire::receiver().await;
    let cwd = tempfile::tempdir().unwrap();
    for args in [
        &[
            "webhook",
            "add",
            "--url",
            "https://hooks.example.com/x",
            "--event-type",
            "credential_rotated",
        ][..],
        &[
            "provider",
            "add",
            "--id",
            "github",
            "--host",
            "api.github.com",
        ][..],
        &["token", "create", "--name", "ci"][..],
        &["token", "list"][..],
        &["ca", "export"][..],
    ] {
        let (code, out, err) = ctl_at(&hollow.url(""), "xca_x", cwd.path(), &strings(args)).await;
        assert_eq!(code, 1, "{args:?}: {out}{err}");
        assert!(out.is_empty(), "{args:?} printed {out}");
        assert!(err.starts_with("error: "), "{err}");
    }
}

#[tokio::test]
async fn cleartext_api_base_only_on_loopback() {
    let gw = gateway().await;
    let cwd = tempfile::tempdir().unwrap();
    for base in [
        "http://gw.example.com:8443",
        "http://192.0.2.10:8443",
        "http://[::ffff:192.0.2.10]:8443",
        "http://localhost.example.com",
    ] {
        let (code, out, err) = ctl_at(
            base,
            &gw.admin_token,
            cwd.path(),
            &strings(&["token", "list"]),
        )
        .await;
        assert_eq!(code, 1, "{base}: {out}{err}");
        assert!(
            err.contains("in clear") && err.contains("--insecure-http"),
            "{err}"
        );
    }
    // Loopback in clear works, with or without the flag; `localhost` too.
    let port = gw.url().rsplit(':').next().unwrap().to_owned();
    for (base, extra) in [
        (gw.url(), None),
        (format!("http://localhost:{port}"), None),
        (gw.url(), Some("--insecure-http")),
    ] {
        let mut args = strings(&["token", "list"]);
        args.extend(extra.map(str::to_owned));
        let (code, out, err) = ctl_at(&base, &gw.admin_token, cwd.path(), &args).await;
        assert_eq!(code, 0, "{base}: {out}{err}");
        assert!(out.contains("ROLE"), "{out}");
    }
}

/// Issue 22: the CLI builds its requests from the API's own DTOs. A document with a
/// misspelt field, or a role that does not exist, fails in the CLI with the field named,
/// and nothing reaches the server; a well-formed document round-trips, secrets included.
#[tokio::test]
async fn requests_are_the_api_types_checked_before_sending() {
    let gw = gateway().await;
    let api = gw.api();
    api.post(
        "/api/providers",
        json!({"id": "partner", "hosts": ["auth.partner.example", "api.partner.example"]}),
    )
    .await
    .unwrap();
    let before = api.get("/api/audit?limit=1").await.unwrap()[0]["seq"].clone();

    let typo = json!({"provider_id": "partner", "token_host": "auth.partner.example",
                      "resource_host": "api.partner.example", "clientid": "x"});
    let (code, _, err) = crate::ctl(
        &gw,
        &["crypto", "dpop", "add", "--file", "-"],
        Some(&typo.to_string()),
    )
    .await;
    assert_ne!(code, 0);
    assert!(err.contains("unknown field `clientid`"), "{err}");
    let (code, _, err) = crate::ctl(
        &gw,
        &["token", "create", "--name", "x", "--role", "root"],
        None,
    )
    .await;
    assert_ne!(code, 0);
    assert!(err.contains("`root` is not a role"), "{err}");
    let after = api.get("/api/audit?limit=1").await.unwrap()[0]["seq"].clone();
    assert_eq!(before, after, "nothing reached the server");

    // The secret of a typed request still travels (once, to the API) and is sealed.
    let refresh = json!({"provider_id": "partner", "token_host": "auth.partner.example",
                         "resource_host": "api.partner.example", "path_prefix": "/",
                         "client_id": "cli", "real_refresh_token": "rt_TYPED_cli_value"});
    let (code, out, err) = crate::ctl(
        &gw,
        &["--json", "crypto", "oauth-refresh", "add", "--file", "-"],
        Some(&refresh.to_string()),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("rt_TYPED_cli_value"), "{out}");
    let listed = api.get("/api/crypto/oauth-refresh/mappings").await.unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
}
