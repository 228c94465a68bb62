//! The operator web UI: server-rendered HTML on the API port, readable without
//! JavaScript; one small script (`/ui/static/app.js`) streams live events. Login with an
//! API token; operators read, admins see and use the write forms. Every form carries a
//! CSRF token, cross-origin posts are refused, and pages are served under a strict CSP.

use std::collections::{BTreeMap, BTreeSet};

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use excalibur_core::api::{
    CreatePolicy, CreateServiceCredential, CreateTranslationRule, CreateWebhook, Provider,
    ServiceCredentialInfo, UpsertPlaceholder,
};
use excalibur_core::ids::{CredentialId, RuleId, token_hash};
use excalibur_core::time::Timestamp;
use excalibur_store::{AuditQuery, FlowQuery};
use serde::Deserialize;

use crate::{ApiError, ApiState, validate};

mod session;

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
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui") }))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
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
        .route("/ui", get(overview))
        .route("/ui/flows", get(flows))
        .route("/ui/services", get(services))
        .route("/ui/services/create", post(service_create))
        .route("/ui/services/{id}/revoke", post(service_revoke))
        .route("/ui/sessions/{id}/revoke", post(session_revoke))
        .route("/ui/revocations/{id}/lift", post(revocation_lift))
        .route("/ui/revocations", post(revocation_create))
        .route("/ui/fleet", get(fleet))
        .route("/ui/netbird", get(netbird))
        .route("/ui/crypto", get(crypto))
        .route("/ui/escrow", get(escrow))
        .route("/ui/escrow/upsert", post(escrow_upsert))
        .route("/ui/escrow/providers", post(provider_upsert))
        .route("/ui/rules", get(rules))
        .route("/ui/rules/create", post(rule_create))
        .route("/ui/rules/{id}/delete", post(rule_delete))
        .route("/ui/policies", get(policies))
        .route("/ui/policies/create", post(policy_create))
        .route("/ui/policies/{id}/delete", post(policy_delete))
        .route("/ui/audit", get(audit))
        .route("/ui/webhooks", get(webhooks))
        .route("/ui/webhooks/create", post(webhook_create))
        .route("/ui/webhooks/{id}/delete", post(webhook_delete))
}

/// HTML-escapes text for element content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
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

fn html(status: StatusCode, body: String) -> Response {
    let mut resp = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
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
    fn csrf(&self) -> String {
        format!(
            "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
            esc(&self.session.csrf)
        )
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
    if cross_site || !ui.session.csrf_ok(csrf) {
        return Err(html(
            StatusCode::FORBIDDEN,
            page_shell(
                "Forbidden",
                None,
                "<p class=\"error\">The form expired or came from another site. Reload the page and try again.</p>",
            ),
        ));
    }
    if !ui.admin() {
        return Err(html(
            StatusCode::FORBIDDEN,
            page_shell(
                "Forbidden",
                None,
                "<p class=\"error\">Your role may only read.</p>",
            ),
        ));
    }
    Ok(ui)
}

fn page_shell(title: &str, ui: Option<&Ui>, body: &str) -> String {
    let nav: String = match ui {
        Some(_) => PAGES
            .iter()
            .map(|(href, name)| {
                let current = if *name == title {
                    " aria-current=\"page\""
                } else {
                    ""
                };
                format!("<a href=\"{href}\"{current}>{}</a>", esc(name))
            })
            .collect::<Vec<_>>()
            .join(""),
        None => String::new(),
    };
    let who = match ui {
        Some(u) => format!(
            "<form method=\"post\" action=\"/logout\" class=\"who\"><span>{} ({})</span>{}<button>Log out</button></form>",
            esc(u.session.token_id.as_str()),
            u.session.role.as_str(),
            u.csrf()
        ),
        None => String::new(),
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} · Excalibur</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <link rel=\"icon\" type=\"image/svg+xml\" href=\"/favicon.svg\">\
         <link rel=\"stylesheet\" href=\"/ui/static/app.css\"><script src=\"/ui/static/app.js\" defer></script></head>\
         <body><header><strong>Excalibur</strong><nav>{nav}</nav>{who}</header><main><h1>{t}</h1>{body}</main></body></html>",
        t = esc(title)
    )
}

fn page(title: &str, ui: &Ui, body: &str) -> Response {
    html(StatusCode::OK, page_shell(title, Some(ui), body))
}

/// A table with headers and rows of already-escaped cells.
fn table(id: &str, headers: &[&str], rows: &[Vec<String>]) -> String {
    let head: String = headers
        .iter()
        .map(|h| format!("<th>{}</th>", esc(h)))
        .collect();
    let body: String = if rows.is_empty() {
        format!(
            "<tr><td colspan=\"{}\" class=\"empty\">Nothing yet.</td></tr>",
            headers.len()
        )
    } else {
        rows.iter()
            .map(|r| {
                format!(
                    "<tr>{}</tr>",
                    r.iter()
                        .map(|c| format!("<td>{c}</td>"))
                        .collect::<String>()
                )
            })
            .collect()
    };
    format!("<table id=\"{id}\"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
}

fn error_box(e: &ApiError) -> String {
    format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e.detail()))
}

fn once_box(label: &str, value: &str) -> String {
    format!(
        "<div class=\"once\" role=\"status\"><p>{} (shown once; store it now):</p><code id=\"shown-once\">{}</code></div>",
        esc(label),
        esc(value)
    )
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
) -> String
where
    Fut: std::future::Future<Output = Result<T, excalibur_store::StoreError>>,
{
    if let Err(e) = valid {
        return error_box(&e);
    }
    match write().await {
        Ok(_) => {
            (s.reload)().await;
            format!("<p class=\"ok\" role=\"status\">{}</p>", esc(done))
        }
        Err(e) => error_box(&ApiError::from(e)),
    }
}

async fn load<T>(
    f: impl std::future::Future<Output = Result<T, excalibur_store::StoreError>>,
) -> Result<T, Response> {
    f.await.map_err(|e| ApiError::from(e).into_response())
}

// ---------------------------------------------------------------- login

async fn login_page() -> Response {
    html(
        StatusCode::OK,
        page_shell("Log in", None, &login_form(None)),
    )
}

fn login_form(error: Option<&str>) -> String {
    let err = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e)))
        .unwrap_or_default();
    format!(
        "{err}<form method=\"post\" action=\"/login\" class=\"card\"><label>API token \
         <input type=\"password\" name=\"token\" autocomplete=\"off\" required></label><button>Log in</button></form>\
         <p class=\"hint\">Use an admin or operator token (<code>excalibur-ctl token create</code>).</p>"
    )
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
        return html(
            StatusCode::FORBIDDEN,
            page_shell(
                "Log in",
                None,
                &login_form(Some("cross-site login refused")),
            ),
        );
    }
    let hash = token_hash(f.token.trim());
    match s.store.token_by_hash(hash.clone()).await {
        Ok(Some(info)) if !info.role.can_read() => html(
            StatusCode::FORBIDDEN,
            page_shell(
                "Log in",
                None,
                &login_form(Some("an introspection token cannot log in")),
            ),
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
        _ => html(
            StatusCode::UNAUTHORIZED,
            page_shell(
                "Log in",
                None,
                &login_form(Some("That token is unknown or revoked.")),
            ),
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

// ---------------------------------------------------------------- pages

async fn overview(State(s): State<ApiState>, headers: HeaderMap) -> Result<Response, Response> {
    let ui = current(&s, &headers).await?;
    let hour_ago = Timestamp::now().millis() - 3600 * 1000;
    s.settled().await;
    let flows = load(s.store.flow_list(FlowQuery {
        since_ms: Some(hour_ago),
        limit: 10_000,
        ..Default::default()
    }))
    .await?;
    let mut per_minute = [0u32; 60];
    let now = Timestamp::now().millis();
    for f in &flows {
        if let Ok(t) = Timestamp::parse(&f.ts) {
            let age = usize::try_from((now - t.millis()) / 60_000).unwrap_or(usize::MAX);
            if let Some(slot) = age
                .checked_sub(0)
                .and_then(|a| 59usize.checked_sub(a))
                .and_then(|i| per_minute.get_mut(i))
            {
                *slot += 1;
            }
        }
    }
    let max = per_minute.iter().copied().max().unwrap_or(0).max(1);
    let bars: String = per_minute
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let h = n * 100 / max;
            format!(
                "<rect x=\"{}\" y=\"{}\" width=\"8\" height=\"{h}\" fill=\"#3b6ea5\"><title>{n}</title></rect>",
                i * 10,
                100 - h
            )
        })
        .collect();
    let denies = flows.iter().filter(|f| f.decision == "deny").count();
    let principals: BTreeSet<&str> = flows
        .iter()
        .filter(|f| !f.principal.is_empty() && f.principal != "unidentified")
        .map(|f| f.principal.as_str())
        .collect();
    let body = format!(
        "<section class=\"stats\"><div><span class=\"n\" id=\"flows-hour\">{}</span> flows in the last hour</div>\
         <div><span class=\"n\" id=\"denies-hour\">{denies}</span> denies</div>\
         <div><span class=\"n\" id=\"active-principals\">{}</span> active principals</div></section>\
         <h2>Flows per minute</h2><svg class=\"chart\" viewBox=\"0 0 600 100\" role=\"img\" aria-label=\"flows per minute, last hour\">{bars}</svg>\
         <h2>Active principals</h2><ul>{}</ul>",
        flows.len(),
        principals.len(),
        principals
            .iter()
            .map(|p| format!("<li>{}</li>", esc(p)))
            .collect::<String>()
    );
    Ok(page("Overview", &ui, &body))
}

#[derive(Deserialize, Default)]
struct FlowFilter {
    principal: Option<String>,
    host: Option<String>,
    decision: Option<String>,
}

async fn flows(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<FlowFilter>,
) -> Result<Response, Response> {
    let ui = current(&s, &headers).await?;
    let nonempty = |v: Option<String>| v.filter(|s| !s.is_empty());
    let q = FlowFilter {
        principal: nonempty(q.principal),
        host: nonempty(q.host),
        decision: nonempty(q.decision),
    };
    s.settled().await;
    let flows = load(s.store.flow_list(FlowQuery {
        principal: q.principal.clone(),
        host: q.host.clone(),
        decision: q.decision.clone(),
        limit: 200,
        ..Default::default()
    }))
    .await?;
    let rows: Vec<Vec<String>> = flows
        .iter()
        .map(|f| {
            vec![
                esc(&f.ts),
                esc(&f.principal),
                esc(&f.method),
                esc(&f.host),
                esc(&f.path),
                f.status.to_string(),
                esc(&f.decision),
                esc(f.reason.as_deref().unwrap_or("")),
                esc(&f.placeholders.join(", ")),
                format!("{} / {}", f.bytes_up, f.bytes_down),
                format!("{} ms", f.latency_ms),
            ]
        })
        .collect();
    let v = |o: &Option<String>| esc(o.as_deref().unwrap_or(""));
    let body = format!(
        "<form method=\"get\" class=\"filters\"><label>Principal <input name=\"principal\" value=\"{}\"></label>\
         <label>Host <input name=\"host\" value=\"{}\"></label><label>Decision <select name=\"decision\">\
         <option value=\"\">any</option><option{}>allow</option><option{}>deny</option></select></label><button>Filter</button></form>{}",
        v(&q.principal),
        v(&q.host),
        if q.decision.as_deref() == Some("allow") {
            " selected"
        } else {
            ""
        },
        if q.decision.as_deref() == Some("deny") {
            " selected"
        } else {
            ""
        },
        table(
            "flows",
            &[
                "Time",
                "Principal",
                "Method",
                "Host",
                "Path",
                "Status",
                "Decision",
                "Reason",
                "Placeholders",
                "Bytes up/down",
                "Latency"
            ],
            &rows
        )
    );
    Ok(page("Flows", &ui, &body))
}

async fn services_page(s: &ApiState, ui: &Ui, notice: &str) -> Result<Response, Response> {
    let creds = load(s.store.credential_list()).await?;
    let rows: Vec<Vec<String>> = creds
        .iter()
        .map(|c: &ServiceCredentialInfo| {
            let action = if ui.admin() && c.revoked_at.is_none() {
                format!(
                    "<form method=\"post\" action=\"/ui/services/{}/revoke\">{}<button class=\"danger\">Revoke</button></form>",
                    esc(c.id.as_str()),
                    ui.csrf()
                )
            } else {
                esc(c.revoked_reason.as_deref().map(|r| format!("revoked: {r}")).as_deref().unwrap_or(""))
            };
            vec![
                esc(c.id.as_str()),
                esc(&c.name),
                esc(&c.user),
                esc(&c.source_network),
                esc(&c.allowed_domains.join(", ")),
                esc(&c.prefix),
                esc(&c.created_at),
                action,
            ]
        })
        .collect();
    let create = if ui.admin() {
        format!(
            "<section class=\"card\" id=\"create-service-credential\"><h2>Create service credential</h2>\
             <form method=\"post\" action=\"/ui/services/create\">{}<label>Name <input name=\"name\" required></label>\
             <label>User <input name=\"user\" required></label><label>Source network <input name=\"source_network\" placeholder=\"10.0.0.0/8\" required></label>\
             <label>Allowed domains <input name=\"allowed_domains\" placeholder=\"api.github.com, *.npmjs.org\"></label>\
             <button>Create</button></form></section>",
            ui.csrf()
        )
    } else {
        String::new()
    };
    let sessions = load(s.store.ssh_session_list(200)).await?;
    let session_rows: Vec<Vec<String>> = sessions
        .iter()
        .map(|x| {
            let action = if ui.admin() && x.state == "active" {
                format!(
                    "<form method=\"post\" action=\"/ui/sessions/{}/revoke\">{}<button class=\"danger\">Revoke</button></form>",
                    esc(&x.id),
                    ui.csrf()
                )
            } else {
                esc(x.end_reason.as_deref().unwrap_or(""))
            };
            vec![
                esc(&x.id),
                esc(&x.user),
                esc(&x.source),
                esc(&x.started_at),
                esc(&x.state),
                esc(&x.target),
                action,
            ]
        })
        .collect();
    let routes = load(s.store.ssh_route_list()).await?;
    let route_rows: Vec<Vec<String>> = routes
        .iter()
        .map(|r| {
            vec![
                esc(&r.id),
                esc(&r.user),
                esc(&r.source_network),
                esc(&format!(
                    "{}@{}:{}",
                    r.target_user, r.target_host, r.target_port
                )),
                esc(&r.allowed_domains.join(", ")),
                if r.inject_proxy { "yes" } else { "no" }.to_owned(),
                if r.port_forwarding { "yes" } else { "no" }.to_owned(),
            ]
        })
        .collect();
    let body = format!(
        "{notice}<h2>Sessions</h2>{}<h2>SSH routes</h2>{}<h2>Service credentials</h2>{}{create}",
        table(
            "sessions",
            &[
                "Session", "User", "Source", "Started", "State", "Target", ""
            ],
            &session_rows
        ),
        table(
            "ssh-routes",
            &[
                "ID",
                "User",
                "Source network",
                "Target",
                "Allowed domains",
                "Proxy injected",
                "Port forwarding"
            ],
            &route_rows
        ),
        table(
            "service-credentials",
            &[
                "ID",
                "Name",
                "User",
                "Source",
                "Allowed domains",
                "Prefix",
                "Created",
                ""
            ],
            &rows
        )
    );
    Ok(page("Sessions & Services", ui, &body))
}

async fn services(State(s): State<ApiState>, headers: HeaderMap) -> Result<Response, Response> {
    let ui = current(&s, &headers).await?;
    services_page(&s, &ui, "").await
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

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn service_revoke(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, Response> {
    let ui = writer(&s, &headers, &f.csrf).await?;
    load(
        s.store
            .credential_revoke(CredentialId::new(id), "admin".to_owned(), ui.actor()),
    )
    .await?;
    (s.reload)().await;
    Ok(Redirect::to("/ui/services").into_response())
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

async fn fleet(State(s): State<ApiState>, headers: HeaderMap) -> Result<Response, Response> {
    let ui = current(&s, &headers).await?;
    let workloads = load(s.store.workload_list()).await?;
    let namespaces = load(s.store.namespace_list()).await?;
    let rows: Vec<Vec<String>> = workloads
        .iter()
        .map(|w| {
            vec![
                esc(&w.id),
                esc(&w.namespace),
                esc(&w.principal),
                esc(&w.attestation),
                esc(&w.source),
                esc(&w.token_prefix),
                esc(&w
                    .details
                    .get("scopes")
                    .and_then(serde_json::Value::as_array)
                    .map(|s| {
                        s.iter()
                            .filter_map(serde_json::Value::as_str)
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default()),
                esc(&w
                    .details
                    .get("tags")
                    .and_then(serde_json::Value::as_object)
                    .map(|t| {
                        t.iter()
                            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default()),
                esc(w
                    .details
                    .pointer("/act/principal")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default()),
                esc(&w.created_at),
                if ui.admin() {
                    format!(
                        "<form method=\"post\" action=\"/ui/revocations\">{}<input type=\"hidden\" name=\"kind\" value=\"workload_id\"><input type=\"hidden\" name=\"value\" value=\"{}\"><button class=\"danger\">Revoke</button></form>",
                        ui.csrf(),
                        esc(&w.id)
                    )
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    let ns_rows: Vec<Vec<String>> = namespaces
        .iter()
        .map(|n| vec![esc(&n.name), esc(&n.allowed_domains.join(", "))])
        .collect();
    let revocations = load(s.store.principal_revocation_list()).await?;
    let rev_rows: Vec<Vec<String>> = revocations
        .iter()
        .map(|r| {
            let action = if ui.admin() {
                format!(
                    "<form method=\"post\" action=\"/ui/revocations/{}/lift\">{}<button>Lift</button></form>",
                    esc(&r.id),
                    ui.csrf()
                )
            } else {
                String::new()
            };
            vec![
                esc(&r.id),
                esc(&r.principal),
                esc(&r.created_at),
                esc(&r.actor),
                action,
            ]
        })
        .collect();
    let hint = if s.attestors.is_empty() {
        "<p class=\"hint\">Token exchange is off (set <code>EXCALIBUR_K8S_ISSUER</code>, or configure <code>[[spiffe]]</code> / <code>[[oidc]]</code>).</p>"
    } else {
        ""
    };
    let revoke_form = if ui.admin() {
        format!(
            "<form method=\"post\" action=\"/ui/revocations\" class=\"inline\">{}\
             <label>Revoke <select name=\"kind\"><option value=\"principal\">principal (kill switch)</option>\
             <option value=\"jti\">token jti</option><option value=\"workload_id\">workload id</option></select></label> \
             <input name=\"value\" required maxlength=\"512\" placeholder=\"k8s:prod/payments/api\"> \
             <button class=\"danger\">Revoke</button></form>",
            ui.csrf()
        )
    } else {
        String::new()
    };
    let body = format!(
        "<h2>Workloads</h2>{}<h2>Revoked principals (kill switch)</h2>{revoke_form}{}<h2>Namespaces</h2>{}{hint}",
        table(
            "workloads",
            &[
                "ID",
                "Namespace",
                "Principal",
                "Attestation",
                "Source",
                "Token prefix",
                "Scopes",
                "Tags",
                "Actor",
                "Created",
                ""
            ],
            &rows
        ),
        table(
            "revocations",
            &["ID", "Principal", "Revoked", "By", ""],
            &rev_rows
        ),
        table("namespaces", &["Namespace", "Allowed domains"], &ns_rows)
    );
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
    let mut r = excalibur_core::api::Revocation {
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
    load(s.store.workload_revoke(r, ui.actor())).await?;
    (s.reload)().await;
    Ok(Redirect::to("/ui/fleet").into_response())
}

async fn revocation_lift(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, Response> {
    let ui = writer(&s, &headers, &f.csrf).await?;
    load(s.store.principal_revocation_delete(id, ui.actor())).await?;
    Ok(Redirect::to("/ui/fleet").into_response())
}

async fn netbird(State(s): State<ApiState>, headers: HeaderMap) -> Result<Response, Response> {
    let ui = current(&s, &headers).await?;
    let (status, peers) = (s.netbird)();
    let state = if !status.configured {
        "Not configured (set <code>EXCALIBUR_NETBIRD_SYNC_URL</code> and \
         <code>EXCALIBUR_NETBIRD_SYNC_TOKEN</code>)."
            .to_owned()
    } else {
        let error = status
            .error
            .as_deref()
            .map(|e| format!(" <strong>Last attempt failed:</strong> {} (the last good state stays in force).", esc(e)))
            .unwrap_or_default();
        format!(
            "Synced from <code>{}</code>; last attempt {}, last success {}. {} peers, {} groups, {} routes, {} policies.{error}",
            esc(status.sync_url.as_deref().unwrap_or_default()),
            esc(status.last_sync_at.as_deref().unwrap_or("never")),
            esc(status.last_success_at.as_deref().unwrap_or("never")),
            status.peers,
            status.groups,
            status.routes,
            status.policies,
        )
    };
    let rows: Vec<Vec<String>> = peers
        .iter()
        .map(|p| {
            vec![
                format!("<code>{}</code>", esc(&p.id)),
                esc(&p.name),
                esc(&p.ip),
                esc(&p.groups.join(", ")),
                format!("<code>{}</code>", esc(&p.principal)),
                esc(&p.allowed_domains.join(", ")),
                if p.connected { "connected" } else { "offline" }.to_owned(),
            ]
        })
        .collect();
    let body = format!(
        "<section class=\"card\"><h2>Sync status</h2><p id=\"netbird-status\">{state}</p></section><h2>Peers</h2>{}",
        table(
            "netbird-peers",
            &[
                "Peer",
                "Name",
                "Overlay address",
                "Groups",
                "Principal",
                "Allowed domains",
                "State"
            ],
            &rows
        )
    );
    Ok(page("NetBird", &ui, &body))
}

#[derive(Deserialize, Default)]
struct TabQuery {
    tab: Option<String>,
}

async fn crypto(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<TabQuery>,
) -> Result<Response, Response> {
    let ui = current(&s, &headers).await?;
    let tabs = [
        ("jwt-bearer", "JWT Bearer"),
        ("dpop", "DPoP"),
        ("mtls", "mTLS"),
        ("sigv4", "SigV4"),
        ("oauth-refresh", "OAuth refresh"),
    ];
    let active = q
        .tab
        .as_deref()
        .filter(|t| tabs.iter().any(|(k, _)| k == t))
        .unwrap_or("jwt-bearer");
    let nav: String = tabs
        .iter()
        .map(|(k, name)| {
            let cur = if *k == active {
                " aria-current=\"page\""
            } else {
                ""
            };
            format!("<a href=\"/ui/crypto?tab={k}\"{cur}>{name}</a>")
        })
        .collect();
    use excalibur_core::api::CryptoFamily;
    let family = match active {
        "sigv4" => CryptoFamily::Sigv4,
        "mtls" => CryptoFamily::Mtls,
        "dpop" => CryptoFamily::Dpop,
        "oauth-refresh" => CryptoFamily::OauthRefresh,
        _ => CryptoFamily::JwtBearer,
    };
    let cell = |m: &serde_json::Value, k: &str| {
        m.get(k)
            .and_then(serde_json::Value::as_str)
            .map_or_else(|| "—".to_owned(), esc)
    };
    let rows: Vec<Vec<String>> = load(s.store.mapping_list(family))
        .await?
        .iter()
        .map(excalibur_core::api::MappingRecord::listed)
        .map(|m| {
            vec![
                format!("<code>{}</code>", cell(&m, "id")),
                cell(&m, "provider_id"),
                cell(&m, "authority"),
                cell(&m, "token_host"),
                cell(&m, "resource_host"),
                cell(&m, "path_prefix"),
                format!("<code>{}</code>", cell(&m, "surrogate")),
            ]
        })
        .collect();
    let body = format!(
        "<nav class=\"tabs\">{nav}</nav>{}",
        table(
            "crypto-mappings",
            &[
                "ID",
                "Provider",
                "Authority",
                "Token host",
                "Resource host",
                "Path prefix",
                "Surrogate"
            ],
            &rows
        )
    );
    Ok(page("Crypto Mediation", &ui, &body))
}

async fn escrow_page(s: &ApiState, ui: &Ui, notice: &str) -> Result<Response, Response> {
    let placeholders = load(s.store.placeholder_list()).await?;
    let providers = load(s.store.provider_list()).await?;
    let recent = load(s.store.audit_list(AuditQuery {
        event_type: Some("placeholder_*".into()),
        limit: 20,
        ..Default::default()
    }))
    .await?;
    let head = recent.first().map(|e| e.seq.0).unwrap_or(0);
    let rows: Vec<Vec<String>> = placeholders
        .iter()
        .map(|p| {
            vec![
                format!("<code>{}</code>", esc(&p.placeholder)),
                esc(&p.provider_id),
                esc(&p.route_family),
                format!("<code>{}</code>", esc(&p.fingerprint)),
                esc(&p.created_at),
                esc(&p.last_rotated_at),
                match (&p.expires_at, p.expired) {
                    (Some(at), true) => {
                        format!("<strong class=\"expired\">expired</strong> {}", esc(at))
                    }
                    (Some(at), false) => esc(at),
                    (None, _) => String::new(),
                },
            ]
        })
        .collect();
    let provider_rows: Vec<Vec<String>> = providers
        .iter()
        .map(|p| {
            vec![
                esc(&p.id),
                esc(&p.hosts.join(", ")),
                if p.passthrough {
                    "yes".into()
                } else {
                    "no".into()
                },
                if p.dangerous_allow_plaintext {
                    "<strong class=\"danger\">dangerous: secrets allowed over http://</strong>"
                        .into()
                } else {
                    "no".into()
                },
            ]
        })
        .collect();
    let forms = if ui.admin() {
        format!(
            "<section class=\"card\"><h2>Add or rotate a placeholder</h2><form method=\"post\" action=\"/ui/escrow/upsert\">{c}\
             <label>Placeholder <input name=\"placeholder\" required></label><label>Provider <input name=\"provider_id\" required></label>\
             <label>Real value <input type=\"password\" name=\"real_value\" autocomplete=\"off\" required></label><button>Save</button></form></section>\
             <section class=\"card\"><h2>Add a provider</h2><form method=\"post\" action=\"/ui/escrow/providers\">{c}\
             <label>ID <input name=\"id\" required></label><label>Hosts <input name=\"hosts\" placeholder=\"api.github.com\" required></label>\
             <button>Save</button></form></section>",
            c = ui.csrf()
        )
    } else {
        String::new()
    };
    let events: String = recent
        .iter()
        .map(|e| {
            format!(
                "<li><time>{}</time> <strong>{}</strong> {}</li>",
                esc(&e.ts),
                esc(&e.event_type),
                esc(e
                    .details
                    .get("placeholder")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default())
            )
        })
        .collect();
    let body = format!(
        "{notice}<h2>Placeholder vault</h2>{}<h2>Providers</h2>{}{forms}\
         <section class=\"card\"><h2>Credential lifecycle</h2><ul id=\"lifecycle\" data-stream=\"/api/events/stream?type=placeholder_*&amp;after_seq={head}\">{events}</ul></section>",
        table(
            "placeholder-vault",
            &[
                "Placeholder",
                "Provider",
                "Route family",
                "Fingerprint",
                "Created",
                "Last rotated",
                "Expires"
            ],
            &rows
        ),
        table(
            "providers",
            &["ID", "Hosts", "Passthrough", "Cleartext upstream"],
            &provider_rows,
        ),
    );
    Ok(page("Escrow & Surrogates", ui, &body))
}

async fn escrow(State(s): State<ApiState>, headers: HeaderMap) -> Result<Response, Response> {
    let ui = current(&s, &headers).await?;
    escrow_page(&s, &ui, "").await
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
        real_value: f.real_value,
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

async fn rules_page(s: &ApiState, ui: &Ui, notice: &str) -> Result<Response, Response> {
    let rules = load(s.store.rule_list()).await?;
    let rows: Vec<Vec<String>> = rules
        .iter()
        .map(|r| {
            let del = if ui.admin() {
                format!("<form method=\"post\" action=\"/ui/rules/{}/delete\">{}<button class=\"danger\">Delete</button></form>", esc(r.id.as_str()), ui.csrf())
            } else {
                String::new()
            };
            vec![
                esc(r.id.as_str()),
                esc(&r.rule.principal),
                format!("<code>{}</code>", esc(&r.rule.placeholder)),
                esc(&r.rule.hosts.join(", ")),
                esc(&r.rule.path_prefix),
                esc(&if r.rule.methods.is_empty() { "any".to_owned() } else { r.rule.methods.join(", ") }),
                if r.rule.substitute_body { "yes".into() } else { "no".into() },
                del,
            ]
        })
        .collect();
    let form = if ui.admin() {
        format!(
            "<section class=\"card\"><h2>Add a translation rule</h2><form method=\"post\" action=\"/ui/rules/create\">{}\
             <label>Principal <input name=\"principal\" value=\"*\"></label><label>Placeholder <input name=\"placeholder\" required></label>\
             <label>Hosts <input name=\"hosts\" required></label><label>Path prefix <input name=\"path_prefix\" value=\"/\"></label>\
             <label>Methods <input name=\"methods\" placeholder=\"GET POST\"></label><button>Add</button></form></section>",
            ui.csrf()
        )
    } else {
        String::new()
    };
    let body = format!(
        "{notice}{}{form}",
        table(
            "translation-rules",
            &[
                "ID",
                "Principal",
                "Placeholder",
                "Hosts",
                "Path prefix",
                "Methods",
                "Body",
                ""
            ],
            &rows
        )
    );
    Ok(page("Translation rules", ui, &body))
}

async fn rules(State(s): State<ApiState>, headers: HeaderMap) -> Result<Response, Response> {
    let ui = current(&s, &headers).await?;
    rules_page(&s, &ui, "").await
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
    let req = CreateTranslationRule {
        principal: if f.principal.is_empty() {
            "*".into()
        } else {
            f.principal
        },
        placeholder: f.placeholder,
        hosts: split_list(&f.hosts)
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect(),
        path_prefix: if f.path_prefix.is_empty() {
            "/".into()
        } else {
            f.path_prefix
        },
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
    load(s.store.rule_delete(RuleId::new(id), ui.actor())).await?;
    (s.reload)().await;
    Ok(Redirect::to("/ui/rules").into_response())
}

async fn policies_page(s: &ApiState, ui: &Ui, notice: &str) -> Result<Response, Response> {
    let list = load(s.store.policy_list()).await?;
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|p| {
            let del = if ui.admin() {
                format!("<form method=\"post\" action=\"/ui/policies/{}/delete\">{}<button class=\"danger\">Delete</button></form>", esc(&p.policy.id), ui.csrf())
            } else {
                String::new()
            };
            vec![esc(&p.policy.id), esc(&p.policy.description), format!("<pre>{}</pre>", esc(&p.policy.policy)), esc(&p.created_at), del]
        })
        .collect();
    let form = if ui.admin() {
        format!(
            "<section class=\"card\"><h2>Add a Cedar policy</h2><form method=\"post\" action=\"/ui/policies/create\">{}\
             <label>ID <input name=\"id\" required></label><label>Description <input name=\"description\"></label>\
             <label>Policy <textarea name=\"policy\" rows=\"6\" required></textarea></label><button>Add</button></form></section>",
            ui.csrf()
        )
    } else {
        String::new()
    };
    let compiled = esc((s.policy)().cedar_text());
    let body = format!(
        "{notice}<h2>Operator policies</h2>{}{form}<details><summary>Compiled policy set in force</summary><pre>{compiled}</pre></details>",
        table(
            "policies",
            &["ID", "Description", "Policy", "Created", ""],
            &rows
        )
    );
    Ok(page("Policies", ui, &body))
}

async fn policies(State(s): State<ApiState>, headers: HeaderMap) -> Result<Response, Response> {
    let ui = current(&s, &headers).await?;
    policies_page(&s, &ui, "").await
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
    load(s.store.policy_delete(id, ui.actor())).await?;
    (s.reload)().await;
    Ok(Redirect::to("/ui/policies").into_response())
}

#[derive(Deserialize, Default)]
struct AuditFilter {
    #[serde(rename = "type")]
    event_type: Option<String>,
    principal: Option<String>,
}

async fn audit(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<AuditFilter>,
) -> Result<Response, Response> {
    let ui = current(&s, &headers).await?;
    let ty = q.event_type.filter(|t| !t.is_empty());
    let principal = q.principal.filter(|t| !t.is_empty());
    s.settled().await;
    let events = load(s.store.audit_list(AuditQuery {
        event_type: ty.clone(),
        principal: principal.clone(),
        limit: 200,
        ..Default::default()
    }))
    .await?;
    let report = load(s.store.audit_verify()).await?;
    let status = if report.ok {
        format!(
            "<p class=\"ok\" id=\"chain-status\">Chain intact: {} events, head seq {}.</p>",
            report.checked,
            report.head_seq.unwrap_or(0)
        )
    } else {
        format!(
            "<p class=\"error\" id=\"chain-status\">Chain broken at seq {}: {}</p>",
            report.first_broken_seq.unwrap_or(0),
            esc(report.reason.as_deref().unwrap_or(""))
        )
    };
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            vec![
                e.seq.0.to_string(),
                esc(&e.ts),
                esc(&e.event_type),
                esc(&e.principal),
                format!(
                    "<code>{}</code>",
                    esc(&excalibur_core::canonical::to_string(&e.details))
                ),
            ]
        })
        .collect();
    let body = format!(
        "{status}<form method=\"get\" class=\"filters\"><label>Type (globs) <input name=\"type\" value=\"{}\" placeholder=\"placeholder_*\"></label>\
         <label>Principal <input name=\"principal\" value=\"{}\"></label><button>Filter</button></form>{}",
        esc(ty.as_deref().unwrap_or("")),
        esc(principal.as_deref().unwrap_or("")),
        table(
            "audit",
            &["Seq", "Time", "Type", "Principal", "Details"],
            &rows
        )
    );
    Ok(page("Audit", &ui, &body))
}

async fn webhooks_page(s: &ApiState, ui: &Ui, notice: &str) -> Result<Response, Response> {
    let hooks = load(s.store.webhook_list()).await?;
    let mut rows = Vec::new();
    let mut deliveries: BTreeMap<String, usize> = BTreeMap::new();
    for h in &hooks {
        let log = load(s.store.delivery_list(h.id.clone(), 200)).await?;
        deliveries.insert(
            h.id.clone(),
            log.iter().filter(|d| d.status == "delivered").count(),
        );
        let del = if ui.admin() {
            format!(
                "<form method=\"post\" action=\"/ui/webhooks/{}/delete\">{}<button class=\"danger\">Delete</button></form>",
                esc(&h.id),
                ui.csrf()
            )
        } else {
            String::new()
        };
        rows.push(vec![
            esc(&h.id),
            esc(&h.url),
            esc(&h.event_types.join(", ")),
            format!("<code>{}</code>", esc(&h.secret_fingerprint)),
            format!(
                "{} delivered / {} total",
                deliveries.get(&h.id).copied().unwrap_or(0),
                log.len()
            ),
            esc(&h.created_at),
            del,
        ]);
    }
    let form = if ui.admin() {
        format!(
            "<section class=\"card\"><h2>Add a webhook</h2><form method=\"post\" action=\"/ui/webhooks/create\">{}\
             <label>URL <input name=\"url\" type=\"url\" required></label>\
             <label>Event types <input name=\"event_types\" value=\"credential_rotated credential_expired\"></label><button>Add</button></form></section>",
            ui.csrf()
        )
    } else {
        String::new()
    };
    let body = format!(
        "{notice}{}{form}<p class=\"hint\">Deliveries are signed: <code>X-Excalibur-Signature: t=&lt;unix&gt;,v1=&lt;hex HMAC-SHA256(secret, t + \".\" + body)&gt;</code>.</p>",
        table(
            "webhooks",
            &[
                "ID",
                "URL",
                "Event types",
                "Secret",
                "Deliveries",
                "Created",
                ""
            ],
            &rows
        )
    );
    Ok(page("Webhooks", ui, &body))
}

async fn webhooks(State(s): State<ApiState>, headers: HeaderMap) -> Result<Response, Response> {
    let ui = current(&s, &headers).await?;
    webhooks_page(&s, &ui, "").await
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
        Ok(created) => once_box(
            "Signing secret",
            created.secret.as_deref().unwrap_or_default(),
        ),
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
    load(s.store.webhook_delete(id, ui.actor())).await?;
    Ok(Redirect::to("/ui/webhooks").into_response())
}
