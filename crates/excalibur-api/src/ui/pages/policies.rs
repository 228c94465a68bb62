//! `/ui/policies`: operator Cedar policies, and the compiled set in force.

use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use excalibur_core::api::CreatePolicy;
use maud::{Markup, html};
use serde::Deserialize;

use super::super::view::{code, post_button, table, time};
use super::super::{Ui, apply, current, load, page, write_then, writer};
use super::CsrfForm;
use crate::{ApiError, ApiState};

pub(in crate::ui) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/ui/policies", get(policies))
        .route("/ui/policies/create", post(policy_create))
        .route("/ui/policies/{id}/delete", post(policy_delete))
}

async fn policies_page(s: &ApiState, ui: &Ui, notice: &Markup) -> Result<Response, Response> {
    let list = load(s.store.policy_list()).await?;
    let rows = list
        .iter()
        .map(|p| {
            vec![
                code(&p.policy.id),
                html! { (p.policy.description) },
                html! { pre { (p.policy.policy) } },
                time(&p.created_at),
                if ui.admin() {
                    post_button(
                        ui,
                        &format!("/ui/policies/{}/delete", p.policy.id),
                        "Delete",
                        true,
                    )
                } else {
                    html! {}
                },
            ]
        })
        .collect();
    let compiled = (s.policy)();
    let body = html! {
        (notice)
        h2 { "Operator policies" }
        (table("policies", &["ID", "Description", "Policy", "Created", ""], rows,
            &html! { "No operator policies: only the compiled rules below decide. Add a " code { "forbid" } " or " code { "permit" } " below, and try it first with " code { "excalibur-ctl policy evaluate" } "." }))
        @if ui.admin() {
            section.card {
                h2 { "Add a Cedar policy" }
                form method="post" action="/ui/policies/create" {
                    (ui.csrf())
                    label { "ID " input name="id" required; }
                    label { "Description " input name="description"; }
                    label { "Policy " textarea name="policy" rows="6" required {} }
                    button { "Add" }
                }
            }
        }
        details {
            summary { "Compiled policy set in force" }
            pre { (compiled.cedar_text()) }
        }
    };
    Ok(page("Policies", ui, &body))
}

async fn policies(State(s): State<ApiState>, headers: HeaderMap) -> Result<Response, Response> {
    let ui = current(&s, &headers).await?;
    policies_page(&s, &ui, &html! {}).await
}

#[derive(Deserialize)]
struct PolicyForm {
    csrf: String,
    id: String,
    #[serde(default)]
    description: String,
    policy: String,
}

async fn policy_create(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Form(f): Form<PolicyForm>,
) -> Result<Response, Response> {
    let ui = writer(&s, &headers, &f.csrf).await?;
    let valid = excalibur_policy::validate_operator_policy(&f.id, &f.policy)
        .map_err(|e| ApiError::unprocessable(e.to_string()));
    let policy = CreatePolicy {
        id: f.id,
        description: f.description,
        policy: f.policy,
    };
    let notice = apply(
        &s,
        valid,
        || s.store.policy_create(policy, ui.actor()),
        "Added.",
    )
    .await;
    policies_page(&s, &ui, &notice).await
}

async fn policy_delete(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, Response> {
    let ui = writer(&s, &headers, &f.csrf).await?;
    write_then(&s, &ui, "/ui/policies", true, |actor| {
        s.store.policy_delete(id, actor)
    })
    .await
}
