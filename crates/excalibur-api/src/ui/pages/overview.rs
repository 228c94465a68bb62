//! `/ui`: the last hour at a glance (flows, denies, active principals, a chart).

use std::collections::BTreeSet;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use excalibur_core::time::Timestamp;
use excalibur_store::FlowQuery;
use maud::{Markup, html};

use super::super::{current, load, page};
use crate::ApiState;

pub(in crate::ui) fn routes() -> Router<ApiState> {
    Router::new().route("/ui", get(overview))
}

/// Minutes the chart covers.
const MINUTES: usize = 60;

async fn overview(State(s): State<ApiState>, headers: HeaderMap) -> Result<Response, Response> {
    let ui = current(&s, &headers).await?;
    let now = Timestamp::now().millis();
    s.settled().await;
    let flows = load(s.store.flow_list(FlowQuery {
        since_ms: Some(now - 3600 * 1000),
        limit: 10_000,
        ..Default::default()
    }))
    .await?;
    let mut per_minute = [0u32; MINUTES];
    for f in &flows {
        let Ok(t) = Timestamp::parse(&f.ts) else {
            continue;
        };
        let age = usize::try_from((now - t.millis()) / 60_000).unwrap_or(usize::MAX);
        if let Some(slot) = (MINUTES - 1)
            .checked_sub(age)
            .and_then(|i| per_minute.get_mut(i))
        {
            *slot += 1;
        }
    }
    let denies = flows.iter().filter(|f| f.decision == "deny").count();
    let principals: BTreeSet<&str> = flows
        .iter()
        .filter(|f| !f.principal.is_empty() && f.principal != "unidentified")
        .map(|f| f.principal.as_str())
        .collect();
    let body = html! {
        section.stats {
            div { span.n #flows-hour { (flows.len()) } " flows in the last hour" }
            div { span.n #denies-hour { (denies) } " denies" }
            div { span.n #active-principals { (principals.len()) } " active principals" }
        }
        h2 { "Flows per minute" }
        (chart(&per_minute, now))
        h2 { "Active principals" }
        @if principals.is_empty() {
            p.hint { "None in the last hour. Workloads appear here once they send requests through the proxy (port 3128) with a service credential or an exchanged token." }
        }
        ul { @for p in &principals { li { (p) } } }
    };
    Ok(page("Overview", &ui, &body))
}

/// A bar chart of the last hour with both axes labelled; each bar's value on hover.
fn chart(per_minute: &[u32; MINUTES], now_ms: i64) -> Markup {
    const LEFT: u32 = 44;
    const TOP: u32 = 22;
    const HEIGHT: u32 = 120;
    let max = per_minute.iter().copied().max().unwrap_or(0).max(1);
    let bottom = TOP + HEIGHT;
    let minute = |i: usize| {
        let back = i64::try_from(MINUTES - 1 - i).unwrap_or(0);
        let ts = Timestamp::from_millis(now_ms - back * 60_000).to_rfc3339();
        ts.get(11..16).unwrap_or_default().to_owned()
    };
    html! {
        svg.chart viewBox="0 0 660 180" role="img" aria-label="flows per minute, last hour" {
            line.axis x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(bottom) {}
            line.axis x1=(LEFT) y1=(bottom) x2=(LEFT + 600) y2=(bottom) {}
            @for (value, y) in [(max, TOP), (max / 2, TOP + HEIGHT / 2), (0, bottom)] {
                text.tick x=(LEFT - 6) y=(y + 4) text-anchor="end" { (value) }
            }
            @for i in [0usize, 15, 30, 45, 59] {
                @let x = LEFT + u32::try_from(i).unwrap_or(0) * 10 + 4;
                text.tick x=(x) y=(bottom + 16) text-anchor="middle" {
                    @if i == MINUTES - 1 { "now" } @else { "−" (MINUTES - i) " min" }
                }
            }
            text.label x="4" y=(TOP - 10) { "flows per minute" }
            text.label x=(LEFT + 600) y=(bottom + 32) text-anchor="end" { "minutes before now" }
            @for (i, n) in per_minute.iter().enumerate() {
                @let h = n * HEIGHT / max;
                @let x = LEFT + u32::try_from(i).unwrap_or(0) * 10 + 1;
                rect.bar x=(x) y=(bottom - h.max(1)) width="8" height=(h.max(1)) data-value=(n) {
                    title { (minute(i)) " UTC: " (n) " flows" }
                }
            }
        }
    }
}
