//! `/ui/escrow`: the placeholder vault (never a value: fingerprints), providers, and the
//! credential lifecycle panel, which follows the audit log live and updates the vault's
//! rows (Last rotated, Expired) as events arrive.

use axum::Router;
use axum::extract::{Form, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use excalibur_core::api::{PlaceholderInfo, Provider, UpsertPlaceholder};
use excalibur_store::AuditQuery;
use maud::{Markup, html};
use serde::Deserialize;

use super::super::view::{code, table, time, yes_no};
use super::super::{Ui, apply, current, load, page, split_list, writer};
use crate::{ApiState, validate};

pub(in crate::ui) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/ui/escrow", get(escrow))
        .route("/ui/escrow/upsert", post(escrow_upsert))
        .route("/ui/escrow/providers", post(provider_upsert))
}

fn vault_row(p: &PlaceholderInfo) -> Vec<Markup> {
    vec![
        html! { code data-placeholder=(p.placeholder) { (p.placeholder) } },
        html! { (p.provider_id) },
        html! { (p.route_family) },
        html! { code.fingerprint { (p.fingerprint) } },
        time(&p.created_at),
        html! { span.last-rotated { (time(&p.last_rotated_at)) } },
        html! {
            span.expires {
                @match (&p.expires_at, p.expired) {
                    (Some(at), true) => { strong.badge.expired { "Expired" } " " (time(at)) }
                    (Some(at), false) => { (time(at)) }
                    (None, _) => { "never" }
                }
            }
        },
    ]
}

fn forms(ui: &Ui) -> Markup {
    html! {
        section.card {
            h2 { "Add or rotate a placeholder" }
            form method="post" action="/ui/escrow/upsert" {
                (ui.csrf())
                label { "Placeholder " input name="placeholder" required; }
                label { "Provider " input name="provider_id" required; }
                label { "Real value " input type="password" name="real_value" autocomplete="off" required; }
                button { "Save" }
            }
        }
        section.card {
            h2 { "Add a provider" }
            form method="post" action="/ui/escrow/providers" {
                (ui.csrf())
                label { "ID " input name="id" required; }
                label { "Hosts " input name="hosts" placeholder="api.github.com" required; }
                button { "Save" }
            }
        }
    }
}

async fn escrow_page(s: &ApiState, ui: &Ui, notice: &Markup) -> Result<Response, Response> {
    let placeholders = load(s.store.placeholder_list()).await?;
    let providers = load(s.store.provider_list()).await?;
    let recent = load(s.store.audit_list(AuditQuery {
        event_type: Some("placeholder_*".into()),
        limit: 20,
        ..Default::default()
    }))
    .await?;
    let head = load(s.store.audit_head_seq()).await?;
    let rows = placeholders.iter().map(vault_row).collect();
    let provider_rows = providers
        .iter()
        .map(|p| {
            vec![
                code(&p.id),
                html! { (p.hosts.join(", ")) },
                yes_no(p.passthrough),
                if p.dangerous_allow_plaintext {
                    html! { strong.danger { "dangerous: secrets allowed over http://" } }
                } else {
                    html! { "no" }
                },
            ]
        })
        .collect();
    let streams = format!(
        "/api/events/stream?type=placeholder_*&after_seq={head} /api/events/stream?type=credential_expired&after_seq={head}"
    );
    let body = html! {
        (notice)
        h2 { "Placeholder vault" }
        (table("placeholder-vault", &["Placeholder", "Provider", "Route family", "Fingerprint", "Created", "Last rotated", "Expires"], rows,
            &html! { "The vault is empty. Add a provider, then a placeholder and its real value below (or " code { "excalibur-ctl placeholder add" } "); workloads then send the placeholder instead of the secret." }))
        h2 { "Providers" }
        (table("providers", &["ID", "Hosts", "Passthrough", "Cleartext upstream"], provider_rows,
            &html! { "No providers. A provider names the hosts its secrets may be sent to; add one below." }))
        @if ui.admin() { (forms(ui)) }
        section.card {
            h2 { "Credential lifecycle" }
            ul #lifecycle data-stream=(streams) {
                @for e in &recent {
                    li {
                        (time(&e.ts)) " " strong { (e.event_type) } " "
                        (e.details.get("placeholder").and_then(|v| v.as_str()).unwrap_or_default())
                    }
                }
            }
            @if recent.is_empty() {
                p.hint #lifecycle-empty { "No lifecycle events yet: saving, rotating or deleting a placeholder shows here as it happens." }
            }
        }
    };
    Ok(page("Escrow & Surrogates", ui, &body))
}

async fn escrow(State(s): State<ApiState>, headers: HeaderMap) -> Result<Response, Response> {
    let ui = current(&s, &headers).await?;
    escrow_page(&s, &ui, &html! {}).await
}

#[derive(Deserialize)]
struct PlaceholderForm {
    csrf: String,
    placeholder: String,
    provider_id: String,
    real_value: String,
}

async fn escrow_upsert(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Form(f): Form<PlaceholderForm>,
) -> Result<Response, Response> {
    let ui = writer(&s, &headers, &f.csrf).await?;
    let req = UpsertPlaceholder {
        placeholder: f.placeholder,
        real_value: f.real_value.into(),
        provider_id: f.provider_id,
        route_family: None,
        expires_at: None,
    };
    let notice = apply(
        &s,
        validate::placeholder(&req),
        || s.store.placeholder_upsert(req, ui.actor()),
        "Saved.",
    )
    .await;
    escrow_page(&s, &ui, &notice).await
}

#[derive(Deserialize)]
struct ProviderForm {
    csrf: String,
    id: String,
    hosts: String,
}

async fn provider_upsert(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Form(f): Form<ProviderForm>,
) -> Result<Response, Response> {
    let ui = writer(&s, &headers, &f.csrf).await?;
    let p = Provider {
        id: f.id,
        hosts: split_list(&f.hosts)
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect(),
        passthrough: false,
        dangerous_allow_plaintext: false,
    };
    let notice = apply(
        &s,
        validate::provider(&p),
        || s.store.provider_upsert(p, ui.actor()),
        "Saved.",
    )
    .await;
    escrow_page(&s, &ui, &notice).await
}
