//! `/ui/rules`: translation rules (who may redeem which placeholder toward which host).

use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use excalibur_core::api::CreateTranslationRule;
use excalibur_core::ids::RuleId;
use maud::{Markup, html};
use serde::Deserialize;

use super::super::view::{code, post_button, table, yes_no};
use super::super::{Ui, apply, current, load, page, split_list, write_then, writer};
use super::CsrfForm;
use crate::{ApiState, validate};

pub(in crate::ui) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/ui/rules", get(rules))
        .route("/ui/rules/create", post(rule_create))
        .route("/ui/rules/{id}/delete", post(rule_delete))
}

async fn rules_page(s: &ApiState, ui: &Ui, notice: &Markup) -> Result<Response, Response> {
    let rules = load(s.store.rule_list()).await?;
    let rows = rules
        .iter()
        .map(|r| {
            vec![
                code(r.id.as_str()),
                html! { (r.rule.principal) },
                code(&r.rule.placeholder),
                html! { (r.rule.hosts.join(", ")) },
                code(&r.rule.path_prefix),
                html! { @if r.rule.methods.is_empty() { "any" } @else { (r.rule.methods.join(", ")) } },
                yes_no(r.rule.substitute_body),
                if ui.admin() {
                    post_button(ui, &format!("/ui/rules/{}/delete", r.id.as_str()), "Delete", true)
                } else {
                    html! {}
                },
            ]
        })
        .collect();
    let body = html! {
        (notice)
        (table("translation-rules", &["ID", "Principal", "Placeholder", "Hosts", "Path prefix", "Methods", "Body", ""], rows,
            &html! { "No translation rules: no placeholder is substituted anywhere. Add one below (or " code { "excalibur-ctl translation-rule create" } ")." }))
        @if ui.admin() {
            section.card {
                h2 { "Add a translation rule" }
                form method="post" action="/ui/rules/create" {
                    (ui.csrf())
                    label { "Principal " input name="principal" value="*"; }
                    label { "Placeholder " input name="placeholder" required; }
                    label { "Hosts " input name="hosts" required; }
                    label { "Path prefix " input name="path_prefix" value="/"; }
                    label { "Methods " input name="methods" placeholder="GET POST"; }
                    button { "Add" }
                }
            }
        }
    };
    Ok(page("Translation rules", ui, &body))
}

async fn rules(State(s): State<ApiState>, headers: HeaderMap) -> Result<Response, Response> {
    let ui = current(&s, &headers).await?;
    rules_page(&s, &ui, &html! {}).await
}

#[derive(Deserialize)]
struct RuleForm {
    csrf: String,
    principal: String,
    placeholder: String,
    hosts: String,
    path_prefix: String,
    #[serde(default)]
    methods: String,
}

async fn rule_create(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Form(f): Form<RuleForm>,
) -> Result<Response, Response> {
    let ui = writer(&s, &headers, &f.csrf).await?;
    let or = |v: String, default: &str| if v.is_empty() { default.to_owned() } else { v };
    let req = CreateTranslationRule {
        principal: or(f.principal, "*"),
        placeholder: f.placeholder,
        hosts: split_list(&f.hosts)
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect(),
        path_prefix: or(f.path_prefix, "/"),
        methods: split_list(&f.methods)
            .iter()
            .map(|m| m.to_ascii_uppercase())
            .collect(),
        substitute_body: false,
    };
    let notice = apply(
        &s,
        validate::rule(&req),
        || s.store.rule_create(req, ui.actor()),
        "Added.",
    )
    .await;
    rules_page(&s, &ui, &notice).await
}

async fn rule_delete(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, Response> {
    let ui = writer(&s, &headers, &f.csrf).await?;
    write_then(&s, &ui, "/ui/rules", true, |actor| {
        s.store.rule_delete(RuleId::new(id), actor)
    })
    .await
}
