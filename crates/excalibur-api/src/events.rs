//! `GET /api/events/stream`: audit events as Server-Sent Events, for live panels and
//! scripts. Follows the log from the current head (or `after_seq`), filtered by a type
//! glob. Polls the store, so it sees writes from every process sharing it.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use excalibur_store::AuditQuery;
use futures_util::stream::{self, Stream};
use serde::Deserialize;

use crate::auth::Reader;
use crate::extract::Query;
use crate::{ApiError, ApiState};

/// How often the stream looks for new events.
const POLL: Duration = Duration::from_millis(250);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StreamParams {
    #[serde(rename = "type")]
    event_type: Option<String>,
    after_seq: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/api/events/stream",
    tag = "audit",
    summary = "Audit events as Server-Sent Events (event name = type, id = seq), from the head or after_seq (role: operator)",
    params(("type" = Option<String>, Query, description = "Event type or glob"), ("after_seq" = Option<i64>, Query, description = "Start after this seq")),
    responses((status = 200, description = "event stream", body = String, content_type = "text/event-stream"), (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 403, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
pub(crate) async fn stream(
    _: Reader,
    State(s): State<ApiState>,
    Query(p): Query<StreamParams>,
) -> Result<impl IntoResponse, ApiError> {
    let start = match p.after_seq {
        Some(seq) => seq,
        None => s
            .store
            .audit_list(AuditQuery {
                limit: 1,
                ..Default::default()
            })
            .await?
            .first()
            .map(|e| e.seq.0)
            .unwrap_or(0),
    };
    Ok(Sse::new(follow(s, p.event_type, start)).keep_alive(KeepAlive::default()))
}

/// The event stream for a type glob from `after_seq` on; used by the UI too.
pub(crate) fn follow(
    s: ApiState,
    event_type: Option<String>,
    after_seq: i64,
) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(
        (s, event_type, after_seq, Vec::new()),
        |(s, ty, mut last, mut pending)| async move {
            loop {
                if let Some(e) = pending.pop() {
                    let e: excalibur_core::audit::AuditEvent = e;
                    let data = serde_json::to_string(&e).unwrap_or_default();
                    let event = Event::default()
                        .event(e.event_type.clone())
                        .id(e.seq.0.to_string())
                        .data(data);
                    return Some((Ok(event), (s, ty, last, pending)));
                }
                tokio::time::sleep(POLL).await;
                let q = AuditQuery {
                    event_type: ty.clone(),
                    after_seq: Some(last),
                    limit: 200,
                    oldest_first: true,
                    ..Default::default()
                };
                match s.store.audit_list(q).await {
                    Ok(mut events) => {
                        if let Some(newest) = events.last() {
                            last = newest.seq.0;
                        }
                        events.reverse();
                        pending = events;
                    }
                    Err(e) => {
                        tracing::warn!(error = %excalibur_core::ErrorChain(&e), "event stream poll failed")
                    }
                }
            }
        },
    )
}
