//! `/ui/fleet`: attested workloads, the kill switch (principal revocations), namespaces.

use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use excalibur_core::api::{Revocation, WorkloadInfo};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::super::view::{code, post_button, table, time};
use super::super::{Ui, current, load, page, write_then, writer};
use super::CsrfForm;
use crate::ApiState;

pub(in crate::ui) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/ui/fleet", get(fleet))
        .route("/ui/revocations", post(revocation_create))
        .route("/ui/revocations/{id}/lift", post(revocation_lift))
}

fn workload_row(ui: &Ui, w: &WorkloadInfo) -> Vec<Markup> {
    let scopes = w
        .details
        .get("scopes")
        .and_then(Value::as_array)
        .map(|s| {
            s.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    let tags = w
        .details
        .get("tags")
        .and_then(Value::as_object)
        .map(|t| {
            t.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    let actor = w
        .details
        .pointer("/act/principal")
        .and_then(Value::as_str)
        .unwrap_or_default();
    vec![
        code(&w.id),
        html! { (w.namespace) },
        code(&w.principal),
        html! { (w.attestation) },
        html! { (w.source) },
        code(&w.token_prefix),
        html! { (scopes) },
        html! { (tags) },
        html! { (actor) },
        time(&w.created_at),
        if ui.admin() {
            html! {
                form method="post" action="/ui/revocations" {
                    (ui.csrf())
                    input type="hidden" name="kind" value="workload_id";
                    input type="hidden" name="value" value=(w.id);
                    button.danger { "Revoke" }
                }
            }
        } else {
            html! {}
        },
    ]
}

async fn fleet(State(s): State<ApiState>, headers: HeaderMap) -> Result<Response, Response> {
    let ui = current(&s, &headers).await?;
    let workloads = load(s.store.workload_list()).await?;
    let namespaces = load(s.store.namespace_list()).await?;
    let revocations = load(s.store.principal_revocation_list()).await?;
    let rows = workloads.iter().map(|w| workload_row(&ui, w)).collect();
    let ns_rows = namespaces
        .iter()
        .map(|n| vec![html! { (n.name) }, html! { (n.allowed_domains.join(", ")) }])
        .collect();
    let rev_rows = revocations
        .iter()
        .map(|r| {
            vec![
                code(&r.id),
                code(&r.principal),
                time(&r.created_at),
                html! { (r.actor) },
                if ui.admin() {
                    post_button(
                        &ui,
                        &format!("/ui/revocations/{}/lift", r.id),
                        "Lift",
                        false,
                    )
                } else {
                    html! {}
                },
            ]
        })
        .collect();
    let body = html! {
        h2 { "Workloads" }
        (table("workloads", &["ID", "Namespace", "Principal", "Attestation", "Source", "Token prefix", "Scopes", "Tags", "Actor", "Created", ""], rows,
            &html! { "No workloads yet. A workload appears once it exchanges its platform token at " code { "POST /v1/exchange/token" } "." }))
        h2 { "Revoked principals (kill switch)" }
        @if ui.admin() {
            form.inline method="post" action="/ui/revocations" {
                (ui.csrf())
                label { "Revoke "
                    select name="kind" {
                        option value="principal" { "principal (kill switch)" }
                        option value="jti" { "token jti" }
                        option value="workload_id" { "workload id" }
                    }
                }
                " "
                input name="value" required maxlength="512" placeholder="k8s:prod/payments/api";
                " "
                button.danger { "Revoke" }
            }
        }
        (table("revocations", &["ID", "Principal", "Revoked", "By", ""], rev_rows,
            &html! { "No standing revocations. Revoking a principal here refuses every token it holds or will be issued." }))
        h2 { "Namespaces" }
        (table("namespaces", &["Namespace", "Allowed domains"], ns_rows,
            &html! { "No namespaces. Add one with " code { "excalibur-ctl namespace add" } " to bound what its workloads may reach." }))
        @if s.attestors.is_empty() {
            p.hint { "Token exchange is off (set " code { "EXCALIBUR_K8S_ISSUER" } ", or configure " code { "[[spiffe]]" } ", " code { "[[oidc]]" } ", " code { "[[aws]]" } ", " code { "[[gcp]]" } " or " code { "[[azure]]" } ")." }
        }
    };
    Ok(page("Fleet & Namespaces", &ui, &body))
}

#[derive(Deserialize)]
struct RevokeForm {
    csrf: String,
    kind: String,
    value: String,
}

/// Revokes by workload id, subject or token `jti`, or principal (the kill switch), as
/// `POST /api/revocations` does.
async fn revocation_create(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Form(f): Form<RevokeForm>,
) -> Result<Response, Response> {
    let ui = writer(&s, &headers, &f.csrf).await?;
    let value = f.value.trim().to_owned();
    if value.is_empty() || value.len() > 512 {
        return Err(Redirect::to("/ui/fleet").into_response());
    }
    let mut r = Revocation {
        workload_id: None,
        principal: None,
        jti: None,
    };
    match f.kind.as_str() {
        "workload_id" => r.workload_id = Some(value),
        "principal" => r.principal = Some(value),
        "jti" => r.jti = Some(value),
        _ => return Err(Redirect::to("/ui/fleet").into_response()),
    }
    write_then(&s, &ui, "/ui/fleet", true, |actor| {
        s.store.workload_revoke(r, actor)
    })
    .await
}

async fn revocation_lift(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, Response> {
    let ui = writer(&s, &headers, &f.csrf).await?;
    write_then(&s, &ui, "/ui/fleet", false, |actor| {
        s.store.principal_revocation_delete(id, actor)
    })
    .await
}
