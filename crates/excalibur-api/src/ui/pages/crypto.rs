//! `/ui/crypto`: the crypto mediation mappings, one tab per family.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use excalibur_core::api::{CryptoFamily, MappingRecord};
use maud::html;
use serde::Deserialize;
use serde_json::Value;

use super::super::view::{code, table};
use super::super::{current, load, page};
use crate::ApiState;

pub(in crate::ui) fn routes() -> Router<ApiState> {
    Router::new().route("/ui/crypto", get(crypto))
}

/// The tabs: (query value, label, family).
const TABS: &[(&str, &str, CryptoFamily)] = &[
    ("jwt-bearer", "JWT Bearer", CryptoFamily::JwtBearer),
    ("dpop", "DPoP", CryptoFamily::Dpop),
    ("mtls", "mTLS", CryptoFamily::Mtls),
    ("sigv4", "SigV4", CryptoFamily::Sigv4),
    ("oauth-refresh", "OAuth refresh", CryptoFamily::OauthRefresh),
];

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
    let (active, _, family) = TABS
        .iter()
        .find(|(k, _, _)| Some(*k) == q.tab.as_deref())
        .or(TABS.first())
        .ok_or_else(|| {
            crate::ApiError::internal(&std::io::Error::other("no crypto tabs")).into_response()
        })?;
    let cell = |m: &Value, k: &str| m.get(k).and_then(Value::as_str).unwrap_or("—").to_owned();
    let rows = load(s.store.mapping_list(*family))
        .await?
        .iter()
        .map(MappingRecord::listed)
        .map(|m| {
            vec![
                code(&cell(&m, "id")),
                html! { (cell(&m, "provider_id")) },
                html! { (cell(&m, "authority")) },
                html! { (cell(&m, "token_host")) },
                html! { (cell(&m, "resource_host")) },
                html! { (cell(&m, "path_prefix")) },
                code(&cell(&m, "surrogate")),
            ]
        })
        .collect();
    let body = html! {
        nav.tabs {
            @for (k, name, _) in TABS {
                a href={ "/ui/crypto?tab=" (k) } aria-current=[(k == active).then_some("page")] { (name) }
            }
        }
        (table(
            "crypto-mappings",
            &["ID", "Provider", "Authority", "Token host", "Resource host", "Path prefix", "Surrogate"],
            rows,
            &html! { "No " (active) " mappings. Create one with " code { "POST /api/crypto/" (active) "/mappings" } " or " code { "excalibur-ctl crypto" } "." },
        ))
    };
    Ok(page("Crypto Mediation", &ui, &body))
}
