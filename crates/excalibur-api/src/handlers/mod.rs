//! Route handlers, one module per resource: validate, call the store, reload the
//! snapshot, answer. Each handler carries its OpenAPI operation (`#[utoipa::path]`) and
//! each module lists its handlers ([`Routes`]); [`all`] merges them, so the router and
//! the OpenAPI document come from one place.

use axum::Router;
use axum::response::Response;
use excalibur_core::ShownOnce;
use excalibur_core::ids::IssuedToken;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};

use crate::{ApiError, ApiState};

mod credentials;
mod crypto;
mod import;
mod netbird;
mod observe;
mod placeholders;
mod policies;
mod providers;
mod rules;
mod ssh;
mod system;
mod tokens;
mod webhooks;
mod workloads;

pub(crate) use credentials::create_credential;
pub(crate) use ssh::revoke_session;
pub(crate) use system::{method_not_allowed, not_found};
pub(crate) use webhooks::create_webhook;

type ApiResult = Result<Response, ApiError>;

/// A resource's routes. A route can only be added with its OpenAPI operation
/// (`routes!(handler)` of a `#[utoipa::path]` handler), so the router and the document
/// come from the same attribute: no route is served undocumented.
pub(crate) struct Routes(OpenApiRouter<ApiState>);

impl Default for Routes {
    fn default() -> Self {
        Self(OpenApiRouter::new())
    }
}

impl Routes {
    /// Serves a documented handler (its method and path come from its attribute).
    pub(crate) fn add(self, route: UtoipaMethodRouter<ApiState>) -> Self {
        Self(self.0.routes(route))
    }

    pub(crate) fn merge(self, other: Routes) -> Self {
        Self(self.0.merge(other.0))
    }

    /// The router, and the document: `frame` (info, security) with every route's operation.
    pub(crate) fn split(
        self,
        frame: utoipa::openapi::OpenApi,
    ) -> (Router<ApiState>, utoipa::openapi::OpenApi) {
        OpenApiRouter::with_openapi(frame)
            .merge(self.0)
            .split_for_parts()
    }
}

/// Every API route (the UI's pages are separate: [`crate::ui::routes`]).
pub(crate) fn all() -> Routes {
    Routes::default()
        .merge(system::routes())
        .merge(tokens::routes())
        .merge(providers::routes())
        .merge(import::routes())
        .merge(placeholders::routes())
        .merge(credentials::routes())
        .merge(rules::routes())
        .merge(policies::routes())
        .merge(webhooks::routes())
        .merge(workloads::routes())
        .merge(observe::routes())
        .merge(crypto::routes())
        .merge(netbird::routes())
        .merge(ssh::routes())
}

fn exposed(token: &IssuedToken) -> ShownOnce {
    // Shown once, in the creation response only.
    ShownOnce::new(String::from_utf8_lossy(token.token.expose()).into_owned())
}
