//! `/ui/netbird`: the NetBird sync's state and the peers it maps to principals.

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use maud::html;

use super::super::view::{code, table};
use super::super::{current, page};
use crate::ApiState;

pub(in crate::ui) fn routes() -> Router<ApiState> {
    Router::new().route("/ui/netbird", get(netbird))
}

async fn netbird(State(s): State<ApiState>, headers: HeaderMap) -> Result<Response, Response> {
    let ui = current(&s, &headers).await?;
    let (status, peers) = (s.netbird)();
    let state = html! {
        @if !status.configured {
            "Not configured (set " code { "EXCALIBUR_NETBIRD_SYNC_URL" } " and " code { "EXCALIBUR_NETBIRD_SYNC_TOKEN" } ")."
        } @else {
            "Synced from " code { (status.sync_url.as_deref().unwrap_or_default()) }
            "; last attempt " (status.last_sync_at.as_deref().unwrap_or("never"))
            ", last success " (status.last_success_at.as_deref().unwrap_or("never")) ". "
            (status.peers) " peers, " (status.groups) " groups, " (status.routes) " routes, " (status.policies) " policies."
            @if let Some(e) = &status.error {
                " " strong { "Last attempt failed:" } " " (e) " (the last good state stays in force)."
            }
        }
    };
    let rows = peers
        .iter()
        .map(|p| {
            vec![
                code(&p.id),
                html! { (p.name) },
                html! { (p.ip) },
                html! { (p.groups.join(", ")) },
                code(&p.principal),
                html! { (p.allowed_domains.join(", ")) },
                html! { (if p.connected { "connected" } else { "offline" }) },
            ]
        })
        .collect();
    let body = html! {
        section.card { h2 { "Sync status" } p #netbird-status { (state) } }
        h2 { "Peers" }
        (table(
            "netbird-peers",
            &["Peer", "Name", "Overlay address", "Groups", "Principal", "Allowed domains", "State"],
            rows,
            &html! { "No peers synced. Peers of the NetBird network appear here once the sync is configured and answers." },
        ))
    };
    Ok(page("NetBird", &ui, &body))
}
