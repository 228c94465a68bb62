//! `/ui/services`: SSH sessions and routes, and service credentials (create, revoke).

use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use excalibur_core::api::CreateServiceCredential;
use excalibur_core::ids::CredentialId;
use maud::{Markup, html};
use serde::Deserialize;

use super::super::view::{code, error_box, once_box, post_button, table, time, yes_no};
use super::super::{Ui, current, load, page, split_list, write_then, writer};
use super::CsrfForm;
use crate::ApiState;

pub(in crate::ui) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/ui/services", get(services))
        .route("/ui/services/create", post(service_create))
        .route("/ui/services/{id}/revoke", post(service_revoke))
        .route("/ui/sessions/{id}/revoke", post(session_revoke))
}

fn credential_rows(
    ui: &Ui,
    creds: &[excalibur_core::api::ServiceCredentialInfo],
) -> Vec<Vec<Markup>> {
    creds
        .iter()
        .map(|c| {
            let action = if ui.admin() && c.revoked_at.is_none() {
                post_button(
                    ui,
                    &format!("/ui/services/{}/revoke", c.id.as_str()),
                    "Revoke",
                    true,
                )
            } else {
                html! { @if let Some(r) = &c.revoked_reason { "revoked: " (r) } }
            };
            vec![
                code(c.id.as_str()),
                html! { (c.name) },
                html! { (c.user) },
                html! { (c.source_network) },
                html! { (c.allowed_domains.join(", ")) },
                code(&c.prefix),
                time(&c.created_at),
                action,
            ]
        })
        .collect()
}

fn session_rows(ui: &Ui, sessions: &[excalibur_core::api::SshSession]) -> Vec<Vec<Markup>> {
    sessions
        .iter()
        .map(|x| {
            let action = if ui.admin() && x.state == "active" {
                post_button(ui, &format!("/ui/sessions/{}/revoke", x.id), "Revoke", true)
            } else {
                html! { (x.end_reason.as_deref().unwrap_or("")) }
            };
            vec![
                code(&x.id),
                html! { (x.user) },
                html! { (x.source) },
                time(&x.started_at),
                html! { (x.state) },
                html! { (x.target) },
                action,
            ]
        })
        .collect()
}

fn route_rows(routes: &[excalibur_core::api::SshRoute]) -> Vec<Vec<Markup>> {
    routes
        .iter()
        .map(|r| {
            vec![
                code(&r.id),
                html! { (r.user) },
                html! { (r.source_network) },
                html! { (r.target_user) "@" (r.target_host) ":" (r.target_port) },
                html! { (r.allowed_domains.join(", ")) },
                yes_no(r.inject_proxy),
                yes_no(r.port_forwarding),
            ]
        })
        .collect()
}

fn create_form(ui: &Ui) -> Markup {
    html! {
        section.card #create-service-credential {
            h2 { "Create service credential" }
            form method="post" action="/ui/services/create" {
                (ui.csrf())
                label { "Name " input name="name" required; }
                label { "User " input name="user" required; }
                label { "Source network " input name="source_network" placeholder="10.0.0.0/8" required; }
                label { "Allowed domains " input name="allowed_domains" placeholder="api.github.com, *.npmjs.org"; }
                button { "Create" }
            }
        }
    }
}

async fn services_page(s: &ApiState, ui: &Ui, notice: &Markup) -> Result<Response, Response> {
    let creds = load(s.store.credential_list()).await?;
    let sessions = load(s.store.ssh_session_list(200)).await?;
    let routes = load(s.store.ssh_route_list()).await?;
    let body = html! {
        (notice)
        h2 { "Sessions" }
        (table("sessions", &["Session", "User", "Source", "Started", "State", "Target", ""], session_rows(ui, &sessions),
            &html! { "No SSH sessions. Operators connect with " code { "ssh -p 2222 <user>@<gateway>" } " once an SSH route exists." }))
        h2 { "SSH routes" }
        (table("ssh-routes", &["ID", "User", "Source network", "Target", "Allowed domains", "Proxy injected", "Port forwarding"], route_rows(&routes),
            &html! { "No SSH routes. Add one with " code { "excalibur-ctl ssh route add" } "." }))
        h2 { "Service credentials" }
        (table("service-credentials", &["ID", "Name", "User", "Source", "Allowed domains", "Prefix", "Created", ""], credential_rows(ui, &creds),
            &html! { "No service credentials. Create one below (or " code { "excalibur-ctl service-credential create" } ") and give its token to a workload as its proxy password." }))
        @if ui.admin() { (create_form(ui)) }
    };
    Ok(page("Sessions & Services", ui, &body))
}

async fn services(State(s): State<ApiState>, headers: HeaderMap) -> Result<Response, Response> {
    let ui = current(&s, &headers).await?;
    services_page(&s, &ui, &html! {}).await
}

#[derive(Deserialize)]
struct CredentialForm {
    csrf: String,
    name: String,
    user: String,
    source_network: String,
    #[serde(default)]
    allowed_domains: String,
}

async fn service_create(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Form(f): Form<CredentialForm>,
) -> Result<Response, Response> {
    let ui = writer(&s, &headers, &f.csrf).await?;
    let req = CreateServiceCredential {
        name: f.name,
        user: f.user,
        source_network: f.source_network,
        allowed_domains: split_list(&f.allowed_domains),
        expires_at: None,
    };
    let notice = match crate::handlers::create_credential(&s, req, ui.actor()).await {
        Ok(created) => once_box("Proxy token", &created.token),
        Err(e) => error_box(&e),
    };
    services_page(&s, &ui, &notice).await
}

async fn service_revoke(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, Response> {
    let ui = writer(&s, &headers, &f.csrf).await?;
    write_then(&s, &ui, "/ui/services", true, |actor| {
        s.store
            .credential_revoke(CredentialId::new(id), "admin".to_owned(), actor)
    })
    .await
}

async fn session_revoke(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, Response> {
    let ui = writer(&s, &headers, &f.csrf).await?;
    if let Err(e) = crate::handlers::revoke_session(&s, &id, ui.actor()).await {
        return services_page(&s, &ui, &error_box(&e)).await;
    }
    Ok(Redirect::to("/ui/services").into_response())
}
