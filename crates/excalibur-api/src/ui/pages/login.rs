//! `/login` and `/logout`.

use axum::Router;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use excalibur_core::ids::token_hash;
use maud::{Markup, html};
use serde::Deserialize;

use super::super::{COOKIE, respond, shell};
use crate::ApiState;

pub(in crate::ui) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
}

async fn login_page() -> Response {
    respond(StatusCode::OK, shell("Log in", None, &form(None)))
}

fn form(error: Option<&str>) -> Markup {
    html! {
        @if let Some(e) = error { p.error role="alert" { (e) } }
        form.card method="post" action="/login" {
            label { "API token " input type="password" name="token" autocomplete="off" required; }
            button { "Log in" }
        }
        p.hint { "Use an admin or operator token (" code { "excalibur-ctl token create" } ")." }
    }
}

fn refused(status: StatusCode, why: &str) -> Response {
    respond(status, shell("Log in", None, &form(Some(why))))
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site")
    {
        return refused(StatusCode::FORBIDDEN, "cross-site login refused");
    }
    let hash = token_hash(f.token.trim());
    match s.store.token_by_hash(hash.clone()).await {
        Ok(Some(info)) if !info.role.can_read() => refused(
            StatusCode::FORBIDDEN,
            "an introspection token cannot log in",
        ),
        Ok(Some(info)) => {
            let id = s.sessions.create(info.id, hash, info.role);
            let cookie =
                format!("{COOKIE}={id}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=28800");
            let mut resp = Redirect::to("/ui").into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                resp.headers_mut().insert(header::SET_COOKIE, v);
            }
            resp
        }
        _ => refused(
            StatusCode::UNAUTHORIZED,
            "That token is unknown or revoked.",
        ),
    }
}

async fn logout(State(s): State<ApiState>, headers: HeaderMap) -> Response {
    s.sessions.remove(&headers);
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "excalibur_session=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0",
        ),
    );
    resp
}
