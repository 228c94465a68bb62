//! Background work that follows the audit log, run by one replica at a time: the expiry
//! sweeper (`credential_expired`), audit checkpoints, and the webhook dispatcher (signed
//! deliveries with exponential backoff and a delivery log). None touches the request
//! path.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::hmac;
use excalibur_core::Secret;
use excalibur_core::api::{Delivery, WebhookInfo};
use excalibur_core::audit::{AuditEvent, glob_match};
use excalibur_core::secret::hex;
use excalibur_core::time::Timestamp;
use excalibur_store::{AuditQuery, Store};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::config::Webhooks;
use crate::snapshot::Rebuilder;

const CURSOR: &str = "webhooks";
/// A leader's pause between looks at the log while there is work.
const TICK: Duration = Duration::from_millis(250);
/// Its longest pause while idle, each look being one read of the log's head: how late an
/// idle leader sees a new event. A retry or an expiry it knows of wakes it on time.
const IDLE_TICK: Duration = Duration::from_secs(1);
/// How often a leader reads the due deliveries even when it knows of none (one whose
/// update was lost, say).
const DUE_RECHECK: Duration = Duration::from_secs(10);
/// How often a replica that is not the delivery leader tries to become it (one round trip
/// on a kept connection): the bound on a failover's delay.
const LEADER_RETRY: Duration = Duration::from_secs(2);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Deliveries attempted per tick.
const BATCH: usize = 32;

/// Places the delivery cursor at the current head on a data dir's first start (history
/// is not replayed to webhooks). Call before serving, so no event slips past it.
pub(crate) async fn init_cursor(store: &dyn Store) -> anyhow::Result<()> {
    if store.cursor_get(CURSOR.to_owned()).await?.is_none() {
        let head = store
            .audit_list(AuditQuery {
                limit: 1,
                ..Default::default()
            })
            .await?
            .first()
            .map(|e| e.seq.0)
            .unwrap_or(0);
        store
            .delivery_enqueue(Vec::new(), (CURSOR.to_owned(), head))
            .await?;
    }
    Ok(())
}

/// Runs until `cancel` fires.
pub(crate) async fn run(
    store: Arc<dyn Store>,
    snapshots: Rebuilder,
    cfg: Webhooks,
    mut checkpoints: crate::checkpoint::Checkpointer,
    cancel: CancellationToken,
) {
    // With several replicas, one of them (holding the cluster lock) sweeps and delivers.
    let mut leader: Option<excalibur_store::Exclusive> = None;
    let mut known = Known::default();
    let mut pause = TICK;
    loop {
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = cancel.cancelled() => return,
        }
        if !leader
            .as_ref()
            .is_some_and(excalibur_store::Exclusive::is_held)
        {
            // Another leader may have moved everything on since.
            known = Known::default();
            checkpoints.forget();
            leader = match store.exclusive("webhooks".into(), false).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %excalibur_core::ErrorChain(&e), "cannot take the delivery lock");
                    None
                }
            };
            if leader.is_none() {
                pause = LEADER_RETRY;
                continue;
            }
        }
        let busy = lead(&store, &snapshots, &cfg, &mut checkpoints, &mut known).await;
        pause = if busy {
            TICK
        } else {
            (pause * 2).clamp(TICK, IDLE_TICK)
        };
        // A retry or an expiry due sooner wakes the leader then.
        if let Some(at) = [known.next_retry, known.next_expiry]
            .into_iter()
            .flatten()
            .min()
        {
            let wait = u64::try_from(at - Timestamp::now().millis()).unwrap_or(0);
            pause = pause.min(Duration::from_millis(wait));
        }
    }
}

/// What a leader knows of the work ahead, so that an idle one reads only the log's head.
/// Forgotten on a change of leader.
#[derive(Debug, Default)]
struct Known {
    /// The head the delivery cursor was last seen to reach.
    caught_up: Option<i64>,
    /// When the earliest retry this leader scheduled falls due (epoch ms).
    next_retry: Option<i64>,
    /// More deliveries are due now (new ones enqueued, or a full batch attempted).
    due_now: bool,
    /// When the due deliveries were last read.
    due_read: Option<std::time::Instant>,
    /// When the next placeholder or credential expires (epoch ms)...
    next_expiry: Option<i64>,
    /// ...as read at this snapshot version (a configuration change may move it).
    expiry_version: Option<u64>,
}

/// One look at the log by the leader: checkpoints, the expiry sweep, webhook enqueue and
/// delivery, each only when it has something to do. True when something was done.
async fn lead(
    store: &Arc<dyn Store>,
    snapshots: &Rebuilder,
    cfg: &Webhooks,
    checkpoints: &mut crate::checkpoint::Checkpointer,
    known: &mut Known,
) -> bool {
    let head = match store.audit_head_seq().await {
        Ok(head) => head,
        Err(e) => {
            tracing::warn!(error = %excalibur_core::ErrorChain(&e), "cannot read the audit head");
            return false;
        }
    };
    let mut busy = false;
    match checkpoints.tick(head).await {
        Ok(made) => busy |= made.is_some(),
        Err(e) => tracing::warn!(error = %format!("{e:#}"), "audit checkpoint failed"),
    }
    let now = Timestamp::now().millis();
    let version = snapshots.version();
    if known.expiry_version != Some(version) || known.next_expiry.is_some_and(|at| at <= now) {
        match store.expire_due().await {
            Ok(swept) => {
                known.expiry_version = Some(version);
                known.next_expiry = swept.next_ms;
                if swept.expired > 0 {
                    tracing::info!(expired = swept.expired, "credentials expired");
                    snapshots.rebuild().await;
                    busy = true;
                }
            }
            Err(e) => {
                tracing::warn!(error = %excalibur_core::ErrorChain(&e), "expiry sweep failed");
            }
        }
    }
    let head = i64::try_from(head).unwrap_or(i64::MAX);
    match enqueue(store.as_ref(), head, &mut known.caught_up).await {
        Ok(moved) => {
            busy |= moved.cursor_moved;
            known.due_now |= moved.deliveries > 0;
        }
        Err(e) => tracing::warn!(error = %format!("{e:#}"), "webhook enqueue failed"),
    }
    if known.due_now
        || known.next_retry.is_some_and(|at| at <= now)
        || known.due_read.is_none_or(|at| at.elapsed() >= DUE_RECHECK)
    {
        match attempt_due(store, cfg).await {
            Ok(round) => {
                known.due_read = Some(std::time::Instant::now());
                known.due_now = round.attempted == BATCH;
                // A retry scheduled earlier and not yet due is still pending.
                known.next_retry = [known.next_retry.filter(|at| *at > now), round.next_retry]
                    .into_iter()
                    .flatten()
                    .min();
                busy |= round.attempted > 0;
            }
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "webhook delivery round failed"),
        }
    }
    busy
}

/// The event type a webhook subscribed to that `event` satisfies, if any.
/// `credential_rotated` is the documented alias of `placeholder_rotated`.
fn matches(hook: &WebhookInfo, event: &AuditEvent) -> Option<String> {
    hook.event_types.iter().find_map(|pattern| {
        if pattern == "credential_rotated" && event.event_type == "placeholder_rotated" {
            Some("credential_rotated".to_owned())
        } else if glob_match(pattern, &event.event_type) {
            Some(event.event_type.clone())
        } else {
            None
        }
    })
}

/// What [`enqueue`] did.
#[derive(Debug, Default)]
struct Enqueued {
    cursor_moved: bool,
    deliveries: usize,
}

/// Moves the delivery cursor over new events up to `head`, enqueuing a delivery for each
/// receiver that subscribed. `caught_up`: the head the cursor was last seen to reach (by
/// this leader); while the head is still there, nothing is read.
async fn enqueue(
    store: &dyn Store,
    head: i64,
    caught_up: &mut Option<i64>,
) -> anyhow::Result<Enqueued> {
    // The head is read before the receivers: an event after a receiver's creation
    // is after this head, so skipping to it loses nothing for anyone.
    if *caught_up == Some(head) {
        return Ok(Enqueued::default());
    }
    let cursor = store.cursor_get(CURSOR.to_owned()).await?.unwrap_or(0);
    let hooks = store.webhook_list().await?;
    if hooks.is_empty() {
        // Nothing to deliver to: the cursor moves past what exists without reading it
        // (as reading it would have matched nothing).
        let cursor_moved = head > cursor;
        if cursor_moved {
            store
                .delivery_enqueue(Vec::new(), (CURSOR.to_owned(), head))
                .await?;
        }
        *caught_up = Some(head);
        return Ok(Enqueued {
            cursor_moved,
            deliveries: 0,
        });
    }
    let events = store
        .audit_list(AuditQuery {
            after_seq: Some(cursor),
            limit: 500,
            oldest_first: true,
            ..Default::default()
        })
        .await?;
    let Some(last) = events.last().map(|e| e.seq.0) else {
        *caught_up = Some(head);
        return Ok(Enqueued::default());
    };
    let mut deliveries = Vec::new();
    for event in &events {
        for hook in &hooks {
            if let Some(event_type) = matches(hook, event) {
                deliveries.push(Delivery {
                    id: format!("dlv_{}", hex(&excalibur_core::ids::random_bytes::<8>())),
                    webhook_id: hook.id.clone(),
                    event_seq: event.seq.0,
                    event_type,
                    status: "pending".into(),
                    attempts: 0,
                    last_status: None,
                    last_error: None,
                    created_at: String::new(),
                    updated_at: String::new(),
                });
            }
        }
    }
    let count = deliveries.len();
    store
        .delivery_enqueue(deliveries, (CURSOR.to_owned(), last))
        .await?;
    if last >= head {
        *caught_up = Some(head);
    }
    Ok(Enqueued {
        cursor_moved: true,
        deliveries: count,
    })
}

/// What a round of [`attempt_due`] did.
#[derive(Debug, Default)]
struct Round {
    attempted: usize,
    /// The earliest retry it scheduled (epoch ms).
    next_retry: Option<i64>,
}

async fn attempt_due(store: &Arc<dyn Store>, cfg: &Webhooks) -> anyhow::Result<Round> {
    let due = store.deliveries_due(BATCH).await?;
    if due.is_empty() {
        return Ok(Round::default());
    }
    let attempted = due.len();
    let hooks: HashMap<String, (WebhookInfo, Secret)> = store
        .webhook_secrets()
        .await?
        .into_iter()
        .map(|(info, secret)| (info.id.clone(), (info, secret)))
        .collect();
    let mut set = tokio::task::JoinSet::new();
    for d in due {
        let Some((hook, secret)) = hooks.get(&d.webhook_id).cloned() else {
            continue;
        };
        let (store, cfg) = (Arc::clone(store), cfg.clone());
        set.spawn(async move {
            let outcome = deliver(store.as_ref(), &hook, &secret, &d, &cfg).await;
            let attempts = d.attempts + 1;
            let (status, code, error, next) = match outcome {
                Ok(code) => ("delivered", Some(code), None, Timestamp::now().millis()),
                Err((code, error)) => {
                    let failed = attempts >= cfg.max_attempts;
                    let backoff = cfg.retry_base_ms.saturating_mul(1u64 << attempts.min(16).saturating_sub(1));
                    let next = Timestamp::now().millis() + i64::try_from(backoff).unwrap_or(i64::MAX / 2);
                    (if failed { "failed" } else { "pending" }, code, Some(error), next)
                }
            };
            if let Err(e) = store.delivery_update(d.id.clone(), status.to_owned(), code, error, next).await {
                tracing::warn!(error = %excalibur_core::ErrorChain(&e), delivery = %d.id, "recording a delivery attempt failed");
            }
            (status == "pending").then_some(next)
        });
    }
    let mut next_retry: Option<i64> = None;
    while let Some(joined) = set.join_next().await {
        if let Ok(Some(at)) = joined {
            next_retry = Some(next_retry.map_or(at, |n| n.min(at)));
        }
    }
    Ok(Round {
        attempted,
        next_retry,
    })
}

/// One attempt: sign and POST. `Ok(status)` on 2xx; `Err((status, error))` otherwise.
async fn deliver(
    store: &dyn Store,
    hook: &WebhookInfo,
    secret: &Secret,
    d: &Delivery,
    cfg: &Webhooks,
) -> Result<u16, (Option<u16>, String)> {
    let event = store
        .audit_list(AuditQuery {
            after_seq: Some(d.event_seq - 1),
            limit: 1,
            oldest_first: true,
            ..Default::default()
        })
        .await
        .map_err(|e| (None, excalibur_core::ErrorChain(&e).to_string()))?
        .into_iter()
        .next()
        .ok_or((None, "event not found".to_owned()))?;
    let body =
        json!({"delivery_id": d.id, "webhook_id": hook.id, "event_type": d.event_type, "event": event}).to_string();
    let t = Timestamp::now().millis() / 1000;
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.expose());
    let signature = hex(hmac::sign(&key, format!("{t}.{body}").as_bytes()).as_ref());
    let client = client_for(&hook.url, cfg).await.map_err(|e| (None, e))?;
    let resp = client
        .post(&hook.url)
        .header("content-type", "application/json")
        .header("x-excalibur-event", &d.event_type)
        .header("x-excalibur-delivery", &d.id)
        .header("x-excalibur-signature", format!("t={t},v1={signature}"))
        .body(body)
        .send()
        .await
        .map_err(|e| {
            (
                None,
                // Without the URL: a receiver URL may carry credentials.
                format!(
                    "request failed: {}",
                    excalibur_core::ErrorChain(&e.without_url())
                ),
            )
        })?;
    let status = resp.status().as_u16();
    if resp.status().is_success() {
        Ok(status)
    } else {
        Err((Some(status), format!("receiver answered {status}")))
    }
}

/// The address a delivery to `url` goes to: its host resolved, and the first address
/// that is not private, loopback, link-local, CGNAT or a metadata endpoint (any, with
/// `allow_private`). The error names the host and what it resolved to.
pub(crate) async fn receiver_address(
    url: &str,
    allow_private: bool,
) -> Result<(String, SocketAddr), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("bad url: {e}"))?;
    let host = parsed.host_str().ok_or("url has no host")?.to_owned();
    let port = parsed.port_or_known_default().unwrap_or(443);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    let allowed = addrs
        .iter()
        .find(|a| allow_private || excalibur_proxy::guard::forbidden(a.ip()).is_none());
    match allowed {
        Some(a) => Ok((host, *a)),
        None => {
            let why: Vec<String> = addrs
                .iter()
                .map(|a| {
                    let ip = a.ip().to_canonical();
                    match excalibur_proxy::guard::forbidden(ip) {
                        Some(reason) => format!("{ip} ({reason})"),
                        None => ip.to_string(),
                    }
                })
                .collect();
            Err(format!(
                "{host} resolves only to forbidden addresses: {}",
                why.join(", ")
            ))
        }
    }
}

/// A client pinned to the receiver's checked address (no second lookup).
async fn client_for(url: &str, cfg: &Webhooks) -> Result<reqwest::Client, String> {
    let (host, addr) = receiver_address(url, cfg.dangerous_allow_private_destinations).await?;
    reqwest::Client::builder()
        .timeout(ATTEMPT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .resolve(&host, addr)
        .build()
        .map_err(|e| e.to_string())
}
