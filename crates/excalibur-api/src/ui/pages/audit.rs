//! `/ui/audit`: the hash chain's state and its events, newest first, filtered and paged
//! by cursor; each event's details as key/value rows.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use excalibur_store::AuditQuery;
use maud::html;
use serde::Deserialize;

use super::super::view::{PageRead, Pager, code, details, table, time};
use super::super::{current, load, page};
use super::flows::{PAGE, window};
use crate::ApiState;

pub(in crate::ui) fn routes() -> Router<ApiState> {
    Router::new().route("/ui/audit", get(audit))
}

#[derive(Deserialize, Default)]
struct AuditFilter {
    #[serde(rename = "type")]
    event_type: Option<String>,
    principal: Option<String>,
    before: Option<i64>,
    after: Option<i64>,
}

async fn audit(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<AuditFilter>,
) -> Result<Response, Response> {
    let ui = current(&s, &headers).await?;
    let ty = q.event_type.filter(|t| !t.is_empty());
    let principal = q.principal.filter(|t| !t.is_empty());
    let (before_seq, after_seq, oldest_first) = window(q.before, q.after);
    s.settled().await;
    let mut events = load(s.store.audit_list(AuditQuery {
        event_type: ty.clone(),
        principal: principal.clone(),
        before_seq,
        after_seq,
        oldest_first,
        limit: PAGE + 1,
        ..Default::default()
    }))
    .await?;
    let more = events.len() > PAGE;
    events.truncate(PAGE);
    if oldest_first {
        events.reverse();
    }
    let report = load(s.store.audit_verify()).await?;
    let filters = [("type", ty.as_deref()), ("principal", principal.as_deref())];
    let pager = Pager::links(&PageRead {
        base: "/ui/audit",
        filters: &filters,
        before: q.before,
        after: q.after,
        more,
        first: events.first().map(|e| e.seq.0),
        last: events.last().map(|e| e.seq.0),
    });
    let rows = events
        .iter()
        .map(|e| {
            vec![
                html! { (e.seq.0) },
                time(&e.ts),
                html! { (e.event_type) },
                code(&e.principal),
                details(&e.details),
            ]
        })
        .collect();
    let body = html! {
        @if report.ok {
            p.ok #chain-status { "Chain intact: " (report.checked) " events, head seq " (report.head_seq.unwrap_or(0)) "." }
        } @else {
            p.error #chain-status { "Chain broken at seq " (report.first_broken_seq.unwrap_or(0)) ": " (report.reason.as_deref().unwrap_or("")) }
        }
        form.filters method="get" {
            label { "Type (globs) " input name="type" value=[ty.as_deref()] placeholder="placeholder_*"; }
            label { "Principal " input name="principal" value=[principal.as_deref()]; }
            button { "Filter" }
        }
        (pager.render())
        (table(
            "audit",
            &["Seq", "Time", "Type", "Principal", "Details"],
            rows,
            &html! { "No events match. Clear the filters, or try a glob such as " code { "placeholder_*" } "." },
        ))
        (pager.render())
    };
    Ok(page("Audit", &ui, &body))
}
