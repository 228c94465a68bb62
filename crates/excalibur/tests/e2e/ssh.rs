//! Issue: SSH gateway (seed 000 §2). The OpenSSH client (`ssh`, `scp`, `ssh -L`) logs in
//! through the running binary to a real `sshd` started here; the gateway logs in to it
//! with its own key. HTTP from the session's shell goes through the proxy as
//! `user_session:<user>@<session>`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use excalibur_test_support::Gateway;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

use crate::data_plane::{Setup, curl, setup_with, wait_events};

const GITHUB_REAL: &str = "ghp_REALVALUE_a1b2c3d4e5f6";

pub(crate) fn keygen(path: &Path) {
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test", "-f"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub(crate) fn read(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path).unwrap().trim().to_owned()
}

pub(crate) fn whoami() -> String {
    let out = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A real OpenSSH server on 127.0.0.1 that trusts the gateway's client key.
pub(crate) struct Sshd {
    _child: tokio::process::Child,
    pub(crate) port: u16,
    pub(crate) host_key: String,
}

impl Sshd {
    pub(crate) async fn start(dir: &Path, gateway_client_key: &str) -> Self {
        let _ = std::fs::create_dir_all("/run/sshd");
        keygen(&dir.join("sshd_host"));
        std::fs::write(
            dir.join("authorized_keys"),
            format!("{gateway_client_key}\n"),
        )
        .unwrap();
        let port = excalibur_test_support::free_port().unwrap().port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/sshd_host\nPidFile none\nUsePAM no\nStrictModes no\n\
             AuthorizedKeysFile {d}/authorized_keys\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PubkeyAuthentication yes\nPermitRootLogin prohibit-password\n\
             AcceptEnv HTTP_PROXY HTTPS_PROXY http_proxy https_proxy\nAllowTcpForwarding yes\n\
             Subsystem sftp internal-sftp\nLogLevel ERROR\n",
            d = dir.display()
        );
        std::fs::write(dir.join("sshd_config"), config).unwrap();
        let child = tokio::process::Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(dir.join("sshd_config"))
            .kill_on_drop(true)
            .spawn()
            .expect("sshd not found: run ./test.sh (it installs openssh-server)");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Sshd {
            _child: child,
            port,
            host_key: read(dir.join("sshd_host.pub")),
        }
    }
}

struct World {
    s: Setup,
    sshd: Sshd,
    dir: tempfile::TempDir,
    gw_port: u16,
}

impl World {
    fn gw(&self) -> &Gateway {
        &self.s.gw
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `ssh` to the gateway as `user` with `key`, the gateway's host key pinned.
    fn ssh(&self, program: &str, key: &str) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(program);
        let port_flag = if program == "ssh" { "-p" } else { "-P" };
        cmd.args([port_flag, &self.gw_port.to_string(), "-i"])
            .arg(self.path(key))
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "ConnectTimeout=10",
                "-o",
                "ServerAliveInterval=5",
            ])
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                self.path("known_hosts").display()
            ))
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// Runs `ssh <user>@gateway <command>`: (exit code, stdout, stderr), bounded.
    async fn run(&self, user: &str, key: &str, command: &str) -> (i32, String, String) {
        let out = tokio::time::timeout(
            Duration::from_secs(30),
            self.ssh("ssh", key)
                .arg(format!("{user}@127.0.0.1"))
                .arg(command)
                .output(),
        )
        .await
        .expect("ssh finishes")
        .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    async fn route(&self, body: Value) -> Value {
        self.gw().api().post("/api/ssh/routes", body).await.unwrap()
    }

    fn base_route(&self) -> Value {
        json!({
            "user": "alice",
            "source_network": "127.0.0.0/8",
            "target_host": "127.0.0.1",
            "target_port": self.sshd.port,
            "target_user": whoami(),
            "target_host_key": self.sshd.host_key,
            "authorized_keys": [read(self.path("alice.pub"))],
            "allowed_domains": ["api.github.com"],
            "port_forwarding": true,
        })
    }
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    for k in ["alice", "alice_cert", "mallory", "user_ca"] {
        keygen(&dir.path().join(k));
    }
    // A user certificate for alice from a trusted CA (her key is on no route).
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-s"])
        .arg(dir.path().join("user_ca"))
        .args(["-I", "alice@corp", "-n", "alice", "-V", "-5m:+1h"])
        .arg(dir.path().join("alice_cert.pub"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = setup_with(vec![(
        "EXCALIBUR_SSH_USER_CA_KEYS".into(),
        dir.path().join("user_ca.pub").display().to_string(),
    )])
    .await;
    let info = s.gw.api().get("/api/ssh/gateway").await.unwrap();
    let gw_port = s.gw.ssh_addr.expect("the ssh gateway listens").port();
    std::fs::write(
        dir.path().join("known_hosts"),
        format!(
            "[127.0.0.1]:{gw_port} {}\n",
            info["host_key"].as_str().unwrap()
        ),
    )
    .unwrap();
    assert_eq!(info["user_ca_fingerprints"].as_array().unwrap().len(), 1);
    let sshd = Sshd::start(dir.path(), info["client_key"].as_str().unwrap()).await;
    World {
        s,
        sshd,
        dir,
        gw_port,
    }
}

async fn sessions(gw: &Gateway) -> Vec<Value> {
    gw.api()
        .get("/api/sessions")
        .await
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn openssh_client_reaches_the_target_and_its_shell_is_attributed() {
    let w = world().await;
    let route = w.route(w.base_route()).await;
    assert_eq!(route["target_key"], "gateway");
    assert!(route["id"].as_str().unwrap().starts_with("sshr_"));

    // exec: output, stderr and the exit status come back; the proxy variables are set.
    let (code, out, err) = w
        .run(
            "alice",
            "alice",
            "echo hello; echo oops >&2; printenv HTTPS_PROXY; exit 7",
        )
        .await;
    assert_eq!(code, 7, "{err}");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("hello"));
    let proxy = lines.next().unwrap_or_default().to_owned();
    assert!(proxy.starts_with("http://user_session:xss_"), "{proxy}");
    assert!(
        proxy.ends_with(&format!("@127.0.0.1:{}", w.gw().proxy().port())),
        "{proxy}"
    );
    assert!(err.contains("oops"), "{err}");

    // HTTP from the session's shell: substituted for an allowed host, attributed to the session.
    let ca = w.s.ca.display().to_string();
    let (code, out, err) = w
        .run(
            "alice",
            "alice",
            &format!(
                "curl -sS --max-time 10 --cacert {ca} -H 'Authorization: Bearer XCALIBUR_GITHUB_TOKEN' \
                 -o /dev/null -w '%{{http_code}}' https://api.github.com/user; echo; \
                 curl -sS --max-time 10 --cacert {ca} -o /dev/null -w '%{{http_code}}' https://api.stripe.com/v1/x; echo"
            ),
        )
        .await;
    assert_eq!(code, 0, "{out} {err}");
    let codes: Vec<&str> = out.lines().collect();
    assert_eq!(codes.first(), Some(&"200"), "{out} {err}");
    // api.stripe.com is not among the route's allowed domains: the CONNECT is refused.
    assert!(
        !out.contains("\n200"),
        "stripe must be refused: {out} {err}"
    );
    let seen = w.s.echo.seen();
    let got = seen
        .iter()
        .rev()
        .find(|r| r.path == "/user")
        .expect("the upstream was called");
    assert_eq!(
        got.header("authorization"),
        Some(format!("Bearer {GITHUB_REAL}").as_str())
    );
    let all = sessions(w.gw()).await;
    let curl_session = all.first().unwrap();
    let principal = curl_session["principal"].as_str().unwrap().to_owned();
    assert!(
        principal.starts_with("user_session:alice@sess_"),
        "{principal}"
    );
    assert_eq!(curl_session["state"], "ended");
    assert_eq!(curl_session["end_reason"], "closed");
    let flows = w.gw().api().get("/api/flows?limit=50").await.unwrap();
    let mine: Vec<&Value> = flows
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["principal"] == principal.as_str())
        .collect();
    assert!(
        mine.iter().any(|f| f["host"] == "api.github.com"),
        "a flow of the session's principal: {flows}"
    );
    let started = wait_events(w.gw(), "ssh_session_started", 2).await;
    assert!(
        started
            .iter()
            .any(|e| e["details"]["principal"] == principal.as_str()),
        "{started:?}"
    );
    wait_events(w.gw(), "ssh_session_ended", 2).await;

    // An interactive shell with a terminal.
    let mut child = w
        .ssh("ssh", "alice")
        .arg("-tt")
        .arg("alice@127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"echo sum=$((6*7))\nexit\n").await.unwrap();
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("sum=42"),
        "{out:?}"
    );

    // scp (SFTP) both ways; each file is logged with its path and size.
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(w.path("payload.bin"), &payload).unwrap();
    let remote = w.path("uploaded.bin");
    let status = w
        .ssh("scp", "alice")
        .arg(w.path("payload.bin"))
        .arg(format!("alice@127.0.0.1:{}", remote.display()))
        .status()
        .await
        .unwrap();
    assert!(status.success());
    assert_eq!(std::fs::read(&remote).unwrap(), payload);
    let status = w
        .ssh("scp", "alice")
        .arg(format!("alice@127.0.0.1:{}", remote.display()))
        .arg(w.path("downloaded.bin"))
        .status()
        .await
        .unwrap();
    assert!(status.success());
    assert_eq!(std::fs::read(w.path("downloaded.bin")).unwrap(), payload);
    let transfers = wait_events(w.gw(), "sftp_transfer", 2).await;
    let path = remote.display().to_string();
    assert!(
        transfers
            .iter()
            .any(|e| e["details"]["path"] == path.as_str()
                && e["details"]["bytes_written"] == 300_000
                && e["details"]["direction"] == "upload"),
        "{transfers:?}"
    );
    assert!(
        transfers
            .iter()
            .any(|e| e["details"]["path"] == path.as_str()
                && e["details"]["bytes_read"] == 300_000
                && e["details"]["bytes"] == 300_000),
        "{transfers:?}"
    );

    // sftp in batch mode: a directory listing and a download.
    std::fs::write(
        w.path("batch"),
        format!(
            "ls {}\nget {} {}\n",
            w.dir.path().display(),
            remote.display(),
            w.path("via-sftp.bin").display()
        ),
    )
    .unwrap();
    let out = w
        .ssh("sftp", "alice")
        .arg("-b")
        .arg(w.path("batch"))
        .arg("alice@127.0.0.1")
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("uploaded.bin"),
        "{out:?}"
    );
    assert_eq!(std::fs::read(w.path("via-sftp.bin")).unwrap(), payload);
    wait_events(w.gw(), "sftp_transfer", 3).await;

    // ssh -L: a local port forwarded through the gateway and the target.
    let local = excalibur_test_support::free_port().unwrap().port();
    let mut fwd = w
        .ssh("ssh", "alice")
        .args(["-N", "-o", "ExitOnForwardFailure=yes", "-L"])
        .arg(format!(
            "127.0.0.1:{local}:127.0.0.1:{}",
            w.s.echo.plain_addr.port()
        ))
        .arg("alice@127.0.0.1")
        .spawn()
        .unwrap();
    let mut answer = (0, String::new(), String::new());
    for _ in 0..100 {
        answer = curl(&[&format!("http://127.0.0.1:{local}/through-the-tunnel")]).await;
        if answer.0 == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(answer.0, 0, "{answer:?}");
    assert!(
        w.s.echo
            .seen()
            .iter()
            .any(|r| r.path == "/through-the-tunnel" && !r.tls)
    );
    let _ = fwd.kill().await;

    // A user certificate from the trusted CA logs in without an authorized key.
    let (code, out, err) = w.run("alice", "alice_cert", "echo cert-ok").await;
    assert_eq!((code, out.trim()), (0, "cert-ok"), "{err}");
    let newest = sessions(w.gw()).await;
    assert_eq!(newest.first().unwrap()["auth"], "certificate");

    // UI: the Sessions table lists the sessions with the seed's columns.
    let cookie = crate::ui::ui_cookie(w.gw()).await;
    let page = reqwest::Client::new()
        .get(format!("{}/ui/services", w.gw().url()))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for col in [
        "Session",
        "User",
        "Source",
        "Started",
        "State",
        "Target",
        "Source network",
    ] {
        assert!(page.contains(&format!("<th>{col}</th>")), "{col}");
    }
    let sid = principal.split('@').nth(1).unwrap().to_owned();
    assert!(page.contains(&sid), "the session row is listed");
    assert!(
        page.contains(route["id"].as_str().unwrap()),
        "the route row is listed"
    );

    // The session's proxy token appears in no log, audit event or API answer.
    let token = proxy.split(['@', ':']).nth(2).unwrap().to_owned();
    assert!(token.starts_with("xss_") && token.len() > 20, "{token}");
    let audit = w
        .gw()
        .api()
        .get("/api/audit?limit=1000")
        .await
        .unwrap()
        .to_string();
    let listed = w.gw().api().get("/api/sessions").await.unwrap().to_string();
    for (what, text) in [
        ("logs", w.gw().output()),
        ("audit", audit),
        ("sessions", listed),
        ("ui", page),
    ] {
        assert!(
            !text.contains(&token),
            "the session token leaked into {what}"
        );
    }
}

#[tokio::test]
async fn revoke_closes_a_live_session_and_its_proxy_token() {
    let w = world().await;
    w.route(w.base_route()).await;
    let mut child = w
        .ssh("ssh", "alice")
        .arg("alice@127.0.0.1")
        .arg("printenv HTTPS_PROXY; sleep 60")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let proxy = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let ca = w.s.ca.display().to_string();
    let via = |proxy: String| {
        let ca = ca.clone();
        async move {
            curl(&[
                "--cacert",
                &ca,
                "-x",
                &proxy,
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "https://api.github.com/x",
            ])
            .await
        }
    };
    // The token works from the target's address while the session lives...
    let (code, out, err) = via(proxy.clone()).await;
    assert_eq!((code, out.as_str()), (0, "200"), "{err}");
    let live = sessions(w.gw()).await;
    let session = live
        .iter()
        .find(|s| s["state"] == "active")
        .expect("an active session")
        .clone();
    let id = session["id"].as_str().unwrap();
    // Only an admin may revoke.
    let reader = w
        .gw()
        .api()
        .post("/api/tokens", json!({"name": "viewer", "role": "operator"}))
        .await
        .unwrap();
    let (status, _, _) = w
        .gw()
        .api_as(Some(reader["token"].as_str().unwrap()))
        .send("POST", &format!("/api/sessions/{id}/revoke"), None)
        .await
        .unwrap();
    assert_eq!(status, 403);
    let revoked = w
        .gw()
        .api()
        .post(&format!("/api/sessions/{id}/revoke"), json!({}))
        .await
        .unwrap();
    assert_eq!(revoked["state"], "revoked");
    // ...the live ssh process is disconnected at once...
    let exit = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("the revoked session closes within seconds")
        .unwrap();
    assert!(!exit.success());
    // ...and its proxy token is dead.
    let (code, _, err) = via(proxy).await;
    assert_ne!(code, 0);
    assert!(err.contains("407"), "{err}");
    let (code, out, _) = crate::ctl(w.gw(), &["session", "list"], None).await;
    assert_eq!(code, 0);
    assert!(
        out.lines().any(|l| l.contains(id) && l.contains("revoked")),
        "{out}"
    );
    let after = sessions(w.gw()).await;
    let s = after.iter().find(|s| s["id"] == id).unwrap();
    assert_eq!(s["state"], "revoked");
    let ended = wait_events(w.gw(), "ssh_session_ended", 1).await;
    assert!(
        ended
            .iter()
            .any(|e| e["details"]["session"] == id && e["details"]["reason"] == "revoked")
    );
    // Changing the route (e.g. its target key) ends the sessions it admitted.
    let route_id = session["route_id"].as_str().unwrap().to_owned();
    let mut child = w
        .ssh("ssh", "alice")
        .arg("alice@127.0.0.1")
        .arg("echo up; sleep 60")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let up = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(up.as_deref(), Some("up"));
    let mut body = w.base_route();
    body["id"] = json!(route_id);
    body["allowed_domains"] = json!([]);
    let (status, _, _) = w
        .gw()
        .api()
        .send("POST", "/api/ssh/routes", Some(body))
        .await
        .unwrap();
    assert_eq!(status, 200);
    tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("a changed route closes its sessions")
        .unwrap();
    let newest = sessions(w.gw()).await;
    assert_eq!(newest[0]["state"], "revoked");
    assert_eq!(newest[0]["end_reason"], "route_changed");

    // A second revoke is a conflict, an unknown session a 404.
    let (status, _, _) = w
        .gw()
        .api()
        .send("POST", &format!("/api/sessions/{id}/revoke"), None)
        .await
        .unwrap();
    assert_eq!(status, 409);
    let (status, _, _) = w
        .gw()
        .api()
        .send("POST", "/api/sessions/sess_nope/revoke", None)
        .await
        .unwrap();
    assert_eq!(status, 404);
}

#[tokio::test]
async fn logins_without_a_route_key_or_trusted_target_are_refused_and_audited() {
    let w = world().await;
    w.route(w.base_route()).await;
    // A route to a target whose pinned host key is wrong.
    let mut bad = w.base_route();
    bad["user"] = json!("dave");
    bad["authorized_keys"] = json!([read(w.path("mallory.pub"))]);
    bad["target_host_key"] = json!(read(w.path("alice.pub")));
    // (created with the CLI, the document on stdin)
    let (code, out, err) = crate::ctl(
        w.gw(),
        &["ssh", "route", "add", "--file", "-"],
        Some(&bad.to_string()),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("dave") && out.contains("TARGET HOST"), "{out}");
    let (code, _, err) = crate::ctl(
        w.gw(),
        &["ssh", "route", "add", "--file", "-"],
        Some("{not json"),
    )
    .await;
    assert_ne!(code, 0);
    assert!(err.contains("not JSON"), "{err}");
    // Port forwarding is off unless the route allows it.
    let mut noforward = w.base_route();
    noforward["user"] = json!("erin");
    noforward["port_forwarding"] = json!(false);
    w.route(noforward).await;

    let (code, _, _) = w.run("alice", "mallory", "true").await;
    assert_eq!(code, 255);
    let (code, _, _) = w.run("bob", "alice", "true").await;
    assert_eq!(code, 255);
    let (code, _, _) = w.run("dave", "mallory", "true").await;
    assert_eq!(code, 255);
    // A certificate for alice does not log in as someone else.
    let (code, _, _) = w.run("erin", "alice_cert", "true").await;
    assert_eq!(code, 255);
    let denied = wait_events(w.gw(), "ssh_access_denied", 4).await;
    let reasons: Vec<(&str, &str)> = denied
        .iter()
        .map(|e| {
            (
                e["details"]["user"].as_str().unwrap(),
                e["details"]["reason"].as_str().unwrap(),
            )
        })
        .collect();
    for want in [
        ("alice", "unknown_key"),
        ("bob", "no_route"),
        ("dave", "target_host_key_mismatch"),
        ("erin", "certificate_principal_mismatch"),
    ] {
        assert!(reasons.contains(&want), "{want:?} in {reasons:?}");
    }
    assert!(sessions(w.gw()).await.is_empty(), "no session was recorded");

    // erin logs in, but her -L is refused.
    let mut routes = w.gw().api().get("/api/ssh/routes").await.unwrap();
    let erin = routes
        .as_array_mut()
        .unwrap()
        .iter()
        .find(|r| r["user"] == "erin")
        .unwrap()
        .clone();
    let mut upd = w.base_route();
    upd["id"] = erin["id"].clone();
    upd["user"] = json!("erin");
    upd["port_forwarding"] = json!(false);
    let (status, _, body) = w
        .gw()
        .api()
        .send("POST", "/api/ssh/routes", Some(upd))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let local = excalibur_test_support::free_port().unwrap().port();
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        w.ssh("ssh", "alice")
            .args(["-o", "ExitOnForwardFailure=yes", "-L"])
            .arg(format!(
                "127.0.0.1:{local}:127.0.0.1:{}",
                w.s.echo.plain_addr.port()
            ))
            .arg("erin@127.0.0.1")
            .arg(format!(
                "curl -sS --noproxy '*' --max-time 5 http://127.0.0.1:{local}/x || echo refused"
            ))
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("refused"),
        "{out:?}"
    );
    let before = denied.len();
    let denied = wait_events(w.gw(), "ssh_access_denied", before + 1).await;
    assert!(
        denied
            .iter()
            .any(|e| e["details"]["reason"] == "port_forwarding_disabled"),
        "{denied:?}"
    );

    // Bad input is a problem+json 422 and nothing is stored.
    for (field, value) in [
        ("target_host_key", json!("ssh-ed25519 not-base64")),
        ("authorized_keys", json!(["nonsense"])),
        ("source_network", json!("10.0.0.0/33")),
        (
            "target_private_key",
            json!("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----"),
        ),
    ] {
        let mut body = w.base_route();
        body[field] = value;
        let (status, _, problem) = w
            .gw()
            .api()
            .send("POST", "/api/ssh/routes", Some(body))
            .await
            .unwrap();
        assert_eq!(status, 422, "{field}: {problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains(field),
            "{problem}"
        );
    }
    assert_eq!(
        w.gw()
            .api()
            .get("/api/ssh/routes")
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

/// Signs `key.pub` for alice with the user CA, adding `-O` options.
fn certify(dir: &Path, key: &str, options: &[&str]) {
    let mut cmd = std::process::Command::new("ssh-keygen");
    cmd.args(["-q", "-s"]).arg(dir.join("user_ca")).args([
        "-I",
        "alice@corp",
        "-n",
        "alice",
        "-V",
        "-5m:+1h",
    ]);
    for o in options {
        cmd.args(["-O", o]);
    }
    let out = cmd.arg(dir.join(format!("{key}.pub"))).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_human_redeems_under_seed_003s_tenant_policy_only_with_the_factor_its_ca_asserts() {
    let w = world().await;
    // Certificates from the trusted user CA: tenant acme after a Fido2 login at the CA,
    // tenant acme without it, and tenant globex with it.
    for (key, options) in [
        (
            "acme_fido2",
            &[
                "extension:tenant_id@excalibur.dev=acme",
                "extension:factors@excalibur.dev=Fido2",
            ][..],
        ),
        (
            "acme_plain",
            &["extension:tenant_id@excalibur.dev=acme"][..],
        ),
        (
            "globex_fido2",
            &[
                "extension:tenant_id@excalibur.dev=globex",
                "extension:factors@excalibur.dev=Fido2",
            ][..],
        ),
    ] {
        keygen(&w.path(key));
        certify(w.dir.path(), key, options);
    }
    let api = w.gw().api();
    api.post(
        "/api/providers",
        json!({"id": "bank", "hosts": ["api.github.com"]}),
    )
    .await
    .unwrap();
    api.post(
        "/api/placeholders",
        json!({"placeholder": "XCALIBUR_VAULT_KEY", "real_value": "vault-real-value-42", "provider_id": "bank"}),
    )
    .await
    .unwrap();
    api.post(
        "/api/policies",
        json!({"id": "transfer-funds", "description": "seed 003", "policy": crate::workload::TENANT_POLICY}),
    )
    .await
    .unwrap();
    w.route(w.base_route()).await;
    let ca = w.s.ca.display().to_string();
    let redeem = format!(
        "curl -sS --max-time 10 --cacert {ca} -H 'Authorization: Bearer XCALIBUR_VAULT_KEY' \
         -o /dev/null -w '%{{http_code}}' https://api.github.com/transfer"
    );
    let mut codes = Vec::new();
    for key in ["acme_fido2", "acme_plain", "globex_fido2"] {
        let (code, out, err) = w.run("alice", key, &redeem).await;
        assert_eq!(code, 0, "{key}: {out} {err}");
        codes.push((key, out.trim().to_owned()));
    }
    assert_eq!(
        codes,
        [
            ("acme_fido2", "200".to_owned()),
            ("acme_plain", "403".to_owned()),
            ("globex_fido2", "403".to_owned()),
        ]
    );
    // Only the first reached the upstream with the real value.
    let carried =
        w.s.echo
            .seen()
            .iter()
            .filter(|r| r.header("authorization") == Some("Bearer vault-real-value-42"))
            .count();
    assert_eq!(carried, 1);
    // The session records what the CA asserted.
    let listed = sessions(w.gw()).await;
    assert!(
        listed
            .iter()
            .any(|s| s["factors"] == json!(["Fido2"]) && s["tags"] == json!({"tenant_id": "acme"})),
        "{listed:?}"
    );
}
