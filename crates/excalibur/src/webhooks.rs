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
const TICK: Duration = Duration::from_millis(250);
/// How often a replica that is not the delivery leader tries to become it (each try
/// opens a database connection): the bound on a failover's delay.
const LEADER_RETRY_TICKS: u64 = 8;
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
    checkpoints: crate::checkpoint::Checkpointer,
    cancel: CancellationToken,
) {
    let mut ticks: u64 = 0;
    // With several replicas, one of them (holding the cluster lock) sweeps and delivers.
    let mut leader: Option<excalibur_store::Exclusive> = None;
    let mut waited: u64 = LEADER_RETRY_TICKS;
    // Where this leader last saw the cursor reach the head (none after a change of
    // leader: another may have moved it).
    let mut caught_up: Option<i64> = None;
    loop {
        tokio::select! {
            () = tokio::time::sleep(TICK) => {}
            () = cancel.cancelled() => return,
        }
        if !leader
            .as_ref()
            .is_some_and(excalibur_store::Exclusive::is_held)
        {
            caught_up = None;
            waited += 1;
            if waited < LEADER_RETRY_TICKS {
                continue;
            }
            waited = 0;
            leader = match store.exclusive("webhooks".into(), false).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %excalibur_core::ErrorChain(&e), "cannot take the delivery lock");
                    None
                }
            };
            if leader.is_none() {
                continue;
            }
        }
        ticks += 1;
        if ticks.is_multiple_of(4)
            && let Err(e) = checkpoints.tick().await
        {
            tracing::warn!(error = %format!("{e:#}"), "audit checkpoint failed");
        }
        if ticks.is_multiple_of(4) {
            match store.expire_due().await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(expired = n, "credentials expired");
                    snapshots.rebuild().await;
                }
                Err(e) => {
                    tracing::warn!(error = %excalibur_core::ErrorChain(&e), "expiry sweep failed")
                }
            }
        }
        if let Err(e) = enqueue(store.as_ref(), &mut caught_up).await {
            tracing::warn!(error = %format!("{e:#}"), "webhook enqueue failed");
        }
        if let Err(e) = attempt_due(&store, &cfg).await {
            tracing::warn!(error = %format!("{e:#}"), "webhook delivery round failed");
        }
    }
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

/// Moves the delivery cursor over new events, enqueuing a delivery for each receiver
/// that subscribed. `caught_up`: the head the cursor was last seen to reach (by this
/// leader); while the head is still there, nothing is read (an idle leader costs one
/// query per tick).
async fn enqueue(store: &dyn Store, caught_up: &mut Option<i64>) -> anyhow::Result<()> {
    // The head is read before the receivers: an event after a receiver's creation
    // is after this head, so skipping to it loses nothing for anyone.
    let head = i64::try_from(store.audit_head_seq().await?).unwrap_or(i64::MAX);
    if *caught_up == Some(head) {
        return Ok(());
    }
    let cursor = store.cursor_get(CURSOR.to_owned()).await?.unwrap_or(0);
    let hooks = store.webhook_list().await?;
    if hooks.is_empty() {
        // Nothing to deliver to: the cursor moves past what exists without reading it
        // (as reading it would have matched nothing).
        if head > cursor {
            store
                .delivery_enqueue(Vec::new(), (CURSOR.to_owned(), head))
                .await?;
        }
        *caught_up = Some(head);
        return Ok(());
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
        return Ok(());
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
    store
        .delivery_enqueue(deliveries, (CURSOR.to_owned(), last))
        .await?;
    if last >= head {
        *caught_up = Some(head);
    }
    Ok(())
}

async fn attempt_due(store: &Arc<dyn Store>, cfg: &Webhooks) -> anyhow::Result<()> {
    let due = store.deliveries_due(BATCH).await?;
    if due.is_empty() {
        return Ok(());
    }
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
        });
    }
    while set.join_next().await.is_some() {}
    Ok(())
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
