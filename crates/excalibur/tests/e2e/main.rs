//! End-to-end tests: the built `excalibur` binary driven by real clients.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::disallowed_methods,
    reason = "test code: a failed step should fail the test loudly"
)]

mod checkpoints;
mod cli;
mod cloud_identity;
mod crypto_families;
mod data_plane;
mod dpop;
mod foundation;
mod hardening;
mod import;
mod jwt_bearer;
mod leaks;
mod mtls;
mod netbird;
mod oauth_refresh;
mod policy;
mod replicas;
mod sigv4;
pub(crate) mod ssh;
mod ui;
mod webhooks;
pub(crate) mod workload;

use std::path::{Path, PathBuf};

use excalibur_test_support::{Gateway, Options};

pub(crate) fn server_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_excalibur"))
}

pub(crate) fn ctl_bin() -> PathBuf {
    excalibur_test_support::sibling_binary(server_bin(), "excalibur-ctl")
}

pub(crate) async fn gateway() -> Gateway {
    Gateway::start(server_bin(), Options::default())
        .await
        .expect("gateway starts")
}

/// Runs `excalibur-ctl` against `gw` with the admin token; returns (exit code, stdout, stderr).
pub(crate) async fn ctl(gw: &Gateway, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    ctl_as(gw, &gw.admin_token, args, stdin).await
}

pub(crate) async fn ctl_as(
    gw: &Gateway,
    token: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> (i32, String, String) {
    use tokio::io::AsyncWriteExt as _;
    let mut cmd = tokio::process::Command::new(ctl_bin());
    cmd.args(args)
        .env("EXCALIBUR_URL", gw.url())
        .env("EXCALIBUR_TOKEN", token)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd
        .spawn()
        .expect("excalibur-ctl is built next to excalibur");
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).await.unwrap();
    }
    drop(input);
    let out = child.wait_with_output().await.unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
