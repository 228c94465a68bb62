//! `ssh` (routes and the gateway's keys) and `session`.

use std::process::ExitCode;

use excalibur_core::api::CreateSshRoute;
use excalibur_ctl::cli::{SessionCmd, SshCmd};

use super::{Columns, Ctx, field};

/// The seed's Sessions columns.
const SESSION_COLS: Columns = &[
    ("SESSION", "id"),
    ("USER", "user"),
    ("SOURCE", "source"),
    ("STARTED", "started_at"),
    ("STATE", "state"),
    ("TARGET", "target"),
];

const SSH_ROUTE_COLS: Columns = &[
    ("ID", "id"),
    ("USER", "user"),
    ("SOURCE NETWORK", "source_network"),
    ("TARGET HOST", "target_host"),
    ("TARGET PORT", "target_port"),
    ("TARGET USER", "target_user"),
    ("ALLOWED DOMAINS", "allowed_domains"),
];

pub(crate) async fn ssh(ctx: &Ctx, cmd: SshCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        SshCmd::Route(cmd) => {
            ctx.document::<CreateSshRoute>(&["api", "ssh", "routes"], SSH_ROUTE_COLS, cmd)
                .await
        }
        SshCmd::Gateway => {
            let v = ctx.client.get(&["api", "ssh", "gateway"], &[]).await?;
            if ctx.json {
                ctx.print_json(&v);
            } else {
                println!("host key:   {}", field(&v, "host_key"));
                println!("client key: {}", field(&v, "client_key"));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub(crate) async fn session(ctx: &Ctx, cmd: SessionCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        SessionCmd::List => ctx.list(&["api", "sessions"], SESSION_COLS).await,
        SessionCmd::Revoke { id } => {
            let body = serde_json::Map::new();
            ctx.create(&["api", "sessions", &id, "revoke"], &body, SESSION_COLS)
                .await
        }
    }
}
