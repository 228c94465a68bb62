//! What happened and what is trusted: `flows`, `audit` (list, verify, export, offline
//! verification), `import`, `ca`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use excalibur_core::api::ImportRequest;
use excalibur_ctl::cli::{AuditCmd, CaCmd, FlowsCmd};
use excalibur_ctl::client::Client;
use serde_json::{Value, json};

use super::{Columns, Ctx, field, read_document};

const AUDIT_COLS: Columns = &[
    ("SEQ", "seq"),
    ("TIME", "ts"),
    ("TYPE", "type"),
    ("PRINCIPAL", "principal"),
    ("DETAILS", "details"),
];
const FLOW_COLS: Columns = &[
    ("SEQ", "seq"),
    ("TIME", "ts"),
    ("PRINCIPAL", "principal"),
    ("METHOD", "method"),
    ("HOST", "host"),
    ("PATH", "path"),
    ("STATUS", "status"),
    ("DECISION", "decision"),
    ("PLACEHOLDERS", "placeholders"),
];
const IMPORTED_COLS: Columns = &[
    ("NAME", "name"),
    ("ID", "id"),
    ("TOKEN (shown once)", "token"),
];

/// `(key, value)` query pairs as the client takes them.
fn pairs<'a>(q: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    q.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

pub(crate) async fn flows(ctx: &Ctx, cmd: FlowsCmd) -> anyhow::Result<ExitCode> {
    let FlowsCmd::List {
        principal,
        host,
        decision,
        page,
    } = cmd;
    let mut q = page.query();
    q.extend(principal.map(|v| ("principal", v)));
    q.extend(host.map(|v| ("host", v)));
    q.extend(decision.map(|v| ("decision", v)));
    ctx.show(
        &ctx.client.get(&["api", "flows"], &pairs(&q)).await?,
        FLOW_COLS,
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn audit(ctx: &Ctx, cmd: AuditCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCmd::List {
            event_type,
            principal,
            page,
        } => {
            let mut q = page.query();
            q.extend(event_type.map(|v| ("type", v)));
            q.extend(principal.map(|v| ("principal", v)));
            ctx.show(
                &ctx.client.get(&["api", "audit"], &pairs(&q)).await?,
                AUDIT_COLS,
            );
            Ok(ExitCode::SUCCESS)
        }
        AuditCmd::Export { out } => {
            let (events, checkpoints) = export(&ctx.client, &out).await?;
            println!(
                "wrote {events} events and {checkpoints} checkpoints to {}",
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        AuditCmd::Verify { .. } => verify(ctx).await,
    }
}

/// `audit verify` on the server: exit 2 when the chain is broken.
async fn verify(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let v = ctx.client.get(&["api", "audit", "verify"], &[]).await?;
    let ok = v.get("ok").and_then(Value::as_bool).unwrap_or(false);
    if ctx.json {
        ctx.print_json(&v);
    } else if ok {
        println!(
            "audit chain intact: {} events, head seq {}",
            field(&v, "checked"),
            field(&v, "head_seq")
        );
    } else {
        println!(
            "audit chain BROKEN at seq {}: {}",
            field(&v, "first_broken_seq"),
            v.get("reason")
                .and_then(Value::as_str)
                .unwrap_or("unknown reason")
        );
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// `audit verify --offline`: no server is asked anything.
pub(crate) fn verify_offline(file: &Path, key: &Path) -> anyhow::Result<ExitCode> {
    let pem =
        std::fs::read_to_string(key).with_context(|| format!("cannot read {}", key.display()))?;
    let Some(key) = excalibur_core::merkle::parse_public_key_pem(&pem) else {
        anyhow::bail!("{} is not an Ed25519 PEM public key", key.display())
    };
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    match excalibur_ctl::offline::verify(&text, &key) {
        Ok(v) => {
            match v.latest {
                Some((size, root)) => println!(
                    "export intact: {} events, {} checkpoints verified; latest covers {size} events, root {root}",
                    v.events, v.checkpoints
                ),
                None => println!(
                    "export chain intact: {} events; no checkpoint in the file",
                    v.events
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(b) => {
            match b.first_bad_seq() {
                Some(seq) => println!("export BROKEN: first bad seq {seq}: {b}"),
                None => println!("export BROKEN: {b}"),
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Pages through `segments` (1,000 at a time, oldest first) from `cursor` on, writing
/// each item as `{"<kind>": item}`; `next` reads the cursor of the next page from an
/// item. Returns how many were written.
async fn export_pages(
    client: &Client,
    w: &mut impl std::io::Write,
    segments: &[&str],
    kind: &str,
    fixed: &[(&str, &str)],
    cursor_param: &str,
    next: impl Fn(&Value) -> Option<i64>,
) -> anyhow::Result<usize> {
    let mut cursor = 0i64;
    let mut written = 0;
    loop {
        let c = cursor.to_string();
        let mut q = fixed.to_vec();
        q.push((cursor_param, c.as_str()));
        let page = client.get(segments, &q).await?;
        let page = page.as_array().cloned().unwrap_or_default();
        let Some(last) = page.last() else { break };
        cursor = next(last).with_context(|| format!("a {kind} without its cursor"))?;
        for item in page {
            writeln!(w, "{}", json!({ kind: item }))?;
            written += 1;
        }
    }
    Ok(written)
}

/// `audit export`: every event (oldest first, paged) and every checkpoint.
async fn export(client: &Client, out: &Path) -> anyhow::Result<(usize, usize)> {
    let file =
        std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut w = std::io::BufWriter::new(file);
    let events = export_pages(
        client,
        &mut w,
        &["api", "audit"],
        "event",
        &[("order", "asc"), ("limit", "1000")],
        "after_seq",
        |e| e.get("seq").and_then(Value::as_i64),
    )
    .await?;
    let checkpoints = export_pages(
        client,
        &mut w,
        &["api", "audit", "checkpoints"],
        "checkpoint",
        &[("limit", "1000")],
        "after",
        |c| c.get("tree_size").and_then(Value::as_i64),
    )
    .await?;
    w.flush()?;
    Ok((events, checkpoints))
}

/// `import --file`: many objects in one transaction; prints the tokens it minted.
pub(crate) async fn import(ctx: &Ctx, file: PathBuf) -> anyhow::Result<ExitCode> {
    let doc: ImportRequest = read_document(file)?;
    let v = ctx.client.post(&["api", "import"], &doc).await?;
    if ctx.json {
        ctx.print_json(&v);
        return Ok(ExitCode::SUCCESS);
    }
    let n = |k: &str| v.get(k).and_then(Value::as_array).map_or(0, Vec::len);
    println!(
        "imported {} providers, {} placeholders, {} translation rules, {} service credentials",
        n("providers"),
        n("placeholders"),
        n("translation_rules"),
        n("service_credentials")
    );
    // The tokens exist only in this answer: print them (shown once).
    ctx.show(
        &v.get("service_credentials").cloned().unwrap_or_default(),
        IMPORTED_COLS,
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn ca(ctx: &Ctx, cmd: CaCmd) -> anyhow::Result<ExitCode> {
    let CaCmd::Export { out } = cmd;
    let pem = ctx.client.get_text(&["api", "ca.pem"]).await?;
    match out {
        Some(path) => std::fs::File::create(&path)
            .and_then(|mut f| f.write_all(pem.as_bytes()))
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => print!("{pem}"),
    }
    Ok(ExitCode::SUCCESS)
}
