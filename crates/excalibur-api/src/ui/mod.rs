//! The operator web UI: server-rendered HTML on the API port, readable without
//! JavaScript; one small script (`/ui/static/app.js`) adds live rows and relative times.
//! Login with an API token; operators read, admins see and use the write forms. Every
//! form carries a CSRF token, cross-origin posts are refused, and pages are served under
//! a strict CSP.
//!
//! Pages are [`maud`] templates (`pages/*.rs`, one per page): every interpolated value is
//! escaped by the template engine, so no page escapes by hand.

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::{DOCTYPE, Markup, html};

use crate::{ApiError, ApiState};

mod pages;
mod session;
mod view;

pub use session::Sessions;
use session::{COOKIE, Session};

const CSS: &str = include_str!("app.css");
/// A sword on a shield, in the UI's accent colour.
const FAVICON: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 32 32\"><path d=\"M16 2 4 6v9c0 7.5 5 12.5 12 15 7-2.5 12-7.5 12-15V6z\" fill=\"#1f4e8c\"/><path d=\"M16 6v18M12 20h8M15 24h2v3h-2z\" stroke=\"#fff\" stroke-width=\"2\" fill=\"none\"/></svg>";
const JS: &str = include_str!("app.js");
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The pages, in navigation order: (path, title).
const PAGES: &[(&str, &str)] = &[
    ("/ui", "Overview"),
    ("/ui/flows", "Flows"),
    ("/ui/services", "Sessions & Services"),
    ("/ui/fleet", "Fleet & Namespaces"),
    ("/ui/netbird", "NetBird"),
    ("/ui/crypto", "Crypto Mediation"),
    ("/ui/escrow", "Escrow & Surrogates"),
    ("/ui/rules", "Translation rules"),
    ("/ui/policies", "Policies"),
    ("/ui/audit", "Audit"),
    ("/ui/webhooks", "Webhooks"),
];

/// UI routes, merged into the API router.
pub(crate) fn routes() -> Router<ApiState> {
    use pages::*;
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui") }))
        .route(
            "/favicon.svg",
            get(|| async { asset("image/svg+xml", FAVICON) }),
        )
        .route(
            "/favicon.ico",
            get(|| async { Redirect::permanent("/favicon.svg") }),
        )
        .route(
            "/ui/static/app.css",
            get(|| async { asset("text/css", CSS) }),
        )
        .route(
            "/ui/static/app.js",
            get(|| async { asset("text/javascript", JS) }),
        )
        .merge(login::routes())
        .merge(overview::routes())
        .merge(flows::routes())
        .merge(services::routes())
        .merge(fleet::routes())
        .merge(netbird::routes())
        .merge(crypto::routes())
        .merge(escrow::routes())
        .merge(rules::routes())
        .merge(policies::routes())
        .merge(audit::routes())
        .merge(webhooks::routes())
}

fn secure_headers(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut resp = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    secure_headers(&mut resp);
    resp
}

fn respond(status: StatusCode, body: Markup) -> Response {
    let mut resp = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body.into_string(),
    )
        .into_response();
    secure_headers(&mut resp);
    resp
}

/// The logged-in user of a UI request, with a live API token behind it.
struct Ui {
    session: Session,
}

impl Ui {
    fn admin(&self) -> bool {
        self.session.role.can_write()
    }

    /// A hidden CSRF field for forms.
    fn csrf(&self) -> Markup {
        html! { input type="hidden" name="csrf" value=(self.session.csrf); }
    }

    fn actor(&self) -> String {
        format!("{}:{}", self.session.role.as_str(), self.session.token_id)
    }
}

async fn current(s: &ApiState, headers: &HeaderMap) -> Result<Ui, Response> {
    let Some(session) = s.sessions.lookup(headers) else {
        return Err(Redirect::to("/login").into_response());
    };
    match s.store.token_by_hash(session.token_hash.clone()).await {
        Ok(Some(_)) => Ok(Ui { session }),
        _ => {
            s.sessions.remove(headers);
            Err(Redirect::to("/login").into_response())
        }
    }
}

/// A write from the UI: an admin session, a matching CSRF token, a same-origin request.
async fn writer(s: &ApiState, headers: &HeaderMap, csrf: &str) -> Result<Ui, Response> {
    let ui = current(s, headers).await?;
    let cross_site = headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() != b"same-origin" && v.as_bytes() != b"none");
    let refusal = if cross_site || !ui.session.csrf_ok(csrf) {
        "The form expired or came from another site. Reload the page and try again."
    } else if !ui.admin() {
        "Your role may only read."
    } else {
        return Ok(ui);
    };
    Err(respond(
        StatusCode::FORBIDDEN,
        shell("Forbidden", None, &html! { p.error { (refusal) } }),
    ))
}

/// The page around `body`: navigation (when logged in), the user, the heading.
fn shell(title: &str, ui: Option<&Ui>, body: &Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) " · Excalibur" }
                meta name="viewport" content="width=device-width, initial-scale=1";
                link rel="icon" type="image/svg+xml" href="/favicon.svg";
                link rel="stylesheet" href="/ui/static/app.css";
                script src="/ui/static/app.js" defer {}
            }
            body {
                header {
                    strong { "Excalibur" }
                    @if let Some(u) = ui {
                        nav {
                            @for (href, name) in PAGES {
                                a href=(href) aria-current=[(*name == title).then_some("page")] { (name) }
                            }
                        }
                        form.who method="post" action="/logout" {
                            span { (u.session.token_id.as_str()) " (" (u.session.role.as_str()) ")" }
                            (u.csrf())
                            button { "Log out" }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

fn page(title: &str, ui: &Ui, body: &Markup) -> Response {
    respond(StatusCode::OK, shell(title, Some(ui), body))
}

fn split_list(s: &str) -> Vec<String> {
    s.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Runs a validated UI write: on success reloads the snapshot and says `done`; on
/// failure shows the problem. Nothing is written when validation fails.
async fn apply<T, Fut>(
    s: &ApiState,
    valid: Result<(), ApiError>,
    write: impl FnOnce() -> Fut,
    done: &str,
) -> Markup
where
    Fut: std::future::Future<Output = Result<T, excalibur_store::StoreError>>,
{
    if let Err(e) = valid {
        return view::error_box(&e);
    }
    match write().await {
        Ok(_) => {
            (s.reload)().await;
            html! { p.ok role="status" { (done) } }
        }
        Err(e) => view::error_box(&ApiError::from(e)),
    }
}

/// A write from a button (delete, revoke, lift): done as the session's actor, the
/// snapshot reloaded when it changes what the proxy serves, then back to `back`.
async fn write_then<T, Fut>(
    s: &ApiState,
    ui: &Ui,
    back: &str,
    reload: bool,
    write: impl FnOnce(String) -> Fut,
) -> Result<Response, Response>
where
    Fut: std::future::Future<Output = Result<T, excalibur_store::StoreError>>,
{
    load(write(ui.actor())).await?;
    if reload {
        (s.reload)().await;
    }
    Ok(Redirect::to(back).into_response())
}

async fn load<T>(
    f: impl std::future::Future<Output = Result<T, excalibur_store::StoreError>>,
) -> Result<T, Response> {
    f.await.map_err(|e| ApiError::from(e).into_response())
}
