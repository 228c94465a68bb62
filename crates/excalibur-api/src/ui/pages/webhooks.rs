//! `/ui/webhooks`: receivers of audit events, their delivery counts, add and delete.

use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use excalibur_core::api::CreateWebhook;
use maud::{Markup, html};
use serde::Deserialize;

use super::super::view::{code, error_box, once_box, post_button, table, time};
use super::super::{Ui, current, load, page, split_list, write_then, writer};
use super::CsrfForm;
use crate::ApiState;

pub(in crate::ui) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/ui/webhooks", get(webhooks))
        .route("/ui/webhooks/create", post(webhook_create))
        .route("/ui/webhooks/{id}/delete", post(webhook_delete))
}

async fn webhooks_page(s: &ApiState, ui: &Ui, notice: &Markup) -> Result<Response, Response> {
    let hooks = load(s.store.webhook_list()).await?;
    let mut rows = Vec::new();
    for h in &hooks {
        let log = load(s.store.delivery_list(h.id.clone(), 200)).await?;
        let delivered = log.iter().filter(|d| d.status == "delivered").count();
        rows.push(vec![
            code(&h.id),
            code(&h.url),
            html! { (h.event_types.join(", ")) },
            code(&h.secret_fingerprint),
            html! { (delivered) " delivered / " (log.len()) " total" },
            time(&h.created_at),
            if ui.admin() {
                post_button(ui, &format!("/ui/webhooks/{}/delete", h.id), "Delete", true)
            } else {
                html! {}
            },
        ]);
    }
    let body = html! {
        (notice)
        (table("webhooks", &["ID", "URL", "Event types", "Secret", "Deliveries", "Created", ""], rows,
            &html! { "No webhooks. Add a receiver below (or " code { "excalibur-ctl webhook add" } ") to push audit events such as " code { "credential_rotated" } " to another system." }))
        @if ui.admin() {
            section.card {
                h2 { "Add a webhook" }
                form method="post" action="/ui/webhooks/create" {
                    (ui.csrf())
                    label { "URL " input name="url" type="url" required; }
                    label { "Event types " input name="event_types" value="credential_rotated credential_expired"; }
                    button { "Add" }
                }
            }
        }
        p.hint { "Deliveries are signed: " code { "X-Excalibur-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, t + \".\" + body)>" } "." }
    };
    Ok(page("Webhooks", ui, &body))
}

async fn webhooks(State(s): State<ApiState>, headers: HeaderMap) -> Result<Response, Response> {
    let ui = current(&s, &headers).await?;
    webhooks_page(&s, &ui, &html! {}).await
}

#[derive(Deserialize)]
struct WebhookForm {
    csrf: String,
    url: String,
    event_types: String,
}

async fn webhook_create(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Form(f): Form<WebhookForm>,
) -> Result<Response, Response> {
    let ui = writer(&s, &headers, &f.csrf).await?;
    let req = CreateWebhook {
        url: f.url,
        event_types: split_list(&f.event_types),
        secret: None,
    };
    let notice = match crate::handlers::create_webhook(&s, req, ui.actor()).await {
        Ok(created) => match &created.secret {
            Some(secret) => once_box("Signing secret", secret),
            None => {
                html! { p.ok role="status" { "Added; deliveries are signed with the secret you chose." } }
            }
        },
        Err(e) => error_box(&e),
    };
    webhooks_page(&s, &ui, &notice).await
}

async fn webhook_delete(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, Response> {
    let ui = writer(&s, &headers, &f.csrf).await?;
    write_then(&s, &ui, "/ui/webhooks", false, |actor| {
        s.store.webhook_delete(id, actor)
    })
    .await
}
