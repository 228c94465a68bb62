//! `/ui/flows`: recorded flows, newest first, filtered and paged by cursor; the filters
//! and the cursor live in the URL.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use excalibur_core::api::Flow;
use excalibur_store::FlowQuery;
use maud::html;
use serde::Deserialize;

use super::super::view::{PageRead, Pager, code, table, time};
use super::super::{current, load, page};
use crate::ApiState;

pub(in crate::ui) fn routes() -> Router<ApiState> {
    Router::new().route("/ui/flows", get(flows))
}

/// Flows per page.
pub(in crate::ui) const PAGE: usize = 50;

#[derive(Deserialize, Default)]
struct FlowFilter {
    principal: Option<String>,
    host: Option<String>,
    decision: Option<String>,
    /// Older than this seq.
    before: Option<i64>,
    /// Newer than this seq.
    after: Option<i64>,
}

/// A page of a newest-first list by cursor: `before` pages toward older records,
/// `after` toward newer ones; reads one extra to know whether more are left.
pub(in crate::ui) fn window(
    before: Option<i64>,
    after: Option<i64>,
) -> (Option<i64>, Option<i64>, bool) {
    match (before, after) {
        (_, Some(a)) => (None, Some(a), true),
        (b, None) => (b, None, false),
    }
}

async fn flows(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<FlowFilter>,
) -> Result<Response, Response> {
    let ui = current(&s, &headers).await?;
    let nonempty = |v: Option<String>| v.filter(|s| !s.is_empty());
    let (principal, host, decision) = (
        nonempty(q.principal),
        nonempty(q.host),
        nonempty(q.decision),
    );
    let (before_seq, after_seq, oldest_first) = window(q.before, q.after);
    s.settled().await;
    let mut flows = load(s.store.flow_list(FlowQuery {
        principal: principal.clone(),
        host: host.clone(),
        decision: decision.clone(),
        before_seq,
        after_seq,
        oldest_first,
        limit: PAGE + 1,
        ..Default::default()
    }))
    .await?;
    let more = flows.len() > PAGE;
    flows.truncate(PAGE);
    if oldest_first {
        flows.reverse();
    }
    let filters = [
        ("principal", principal.as_deref()),
        ("host", host.as_deref()),
        ("decision", decision.as_deref()),
    ];
    let pager = Pager::links(&PageRead {
        base: "/ui/flows",
        filters: &filters,
        before: q.before,
        after: q.after,
        more,
        first: flows.first().and_then(|f| f.seq),
        last: flows.last().and_then(|f| f.seq),
    });
    let rows = flows.iter().map(row).collect();
    let filtered = filters.iter().any(|(_, v)| v.is_some());
    let body = html! {
        (filter_form(principal.as_deref(), host.as_deref(), decision.as_deref()))
        (pager.render())
        (table(
            "flows",
            &["Seq", "Time", "Principal", "Method", "Host", "Path", "Status", "Decision", "Reason", "Placeholders", "Bytes up/down", "Latency"],
            rows,
            &if filtered {
                html! { "No flows match these filters. " a href="/ui/flows" { "Clear them" } "." }
            } else {
                html! { "No flows yet. Send a request through the proxy on port 3128 with a service credential (Sessions & Services) and it appears here." }
            },
        ))
        (pager.render())
    };
    Ok(page("Flows", &ui, &body))
}

fn row(f: &Flow) -> Vec<maud::Markup> {
    vec![
        html! { (f.seq.unwrap_or_default()) },
        time(&f.ts),
        code(&f.principal),
        html! { (f.method) },
        code(&f.host),
        code(&f.path),
        html! { (f.status) },
        html! { span class={ "decision " (f.decision) } { (f.decision) } },
        html! { (f.reason.as_deref().unwrap_or("")) },
        code(&f.placeholders.join(", ")),
        html! { (f.bytes_up) " / " (f.bytes_down) },
        html! { (f.latency_ms) " ms" },
    ]
}

fn filter_form(
    principal: Option<&str>,
    host: Option<&str>,
    decision: Option<&str>,
) -> maud::Markup {
    html! {
        form.filters method="get" {
            label { "Principal " input name="principal" value=[principal]; }
            label { "Host " input name="host" value=[host]; }
            label { "Decision "
                select name="decision" {
                    option value="" { "any" }
                    option selected[decision == Some("allow")] { "allow" }
                    option selected[decision == Some("deny")] { "deny" }
                }
            }
            button { "Filter" }
        }
    }
}
