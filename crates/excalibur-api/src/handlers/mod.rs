//! Route handlers, one module per resource: validate, call the store, reload the
//! snapshot, answer. Each module lists its routes ([`Routes`]); [`all`] merges them, so
//! the router and the route list the OpenAPI test checks come from one place.

use axum::Router;
use axum::handler::Handler;
use axum::response::Response;
use axum::routing::MethodRouter;
use excalibur_core::ShownOnce;
use excalibur_core::ids::IssuedToken;

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

/// A resource's routes: the router and its `(method, path)` list, built together.
#[derive(Default)]
pub(crate) struct Routes {
    router: Router<ApiState>,
    list: Vec<(&'static str, &'static str)>,
}

impl Routes {
    /// Serves `method` on `path` with `endpoint` (a method router that may carry layers).
    pub(crate) fn add(
        mut self,
        method: &'static str,
        path: &'static str,
        endpoint: MethodRouter<ApiState>,
    ) -> Self {
        self.router = self.router.route(path, endpoint);
        self.list.push((method, path));
        self
    }

    pub(crate) fn get<H: Handler<T, ApiState>, T: 'static>(self, path: &'static str, h: H) -> Self {
        self.add("get", path, axum::routing::get(h))
    }

    pub(crate) fn post<H: Handler<T, ApiState>, T: 'static>(
        self,
        path: &'static str,
        h: H,
    ) -> Self {
        self.add("post", path, axum::routing::post(h))
    }

    pub(crate) fn delete<H: Handler<T, ApiState>, T: 'static>(
        self,
        path: &'static str,
        h: H,
    ) -> Self {
        self.add("delete", path, axum::routing::delete(h))
    }

    fn merge(mut self, other: Routes) -> Self {
        self.router = self.router.merge(other.router);
        self.list.extend(other.list);
        self
    }

    /// The router, and every `(method, path)` it serves.
    pub(crate) fn into_parts(self) -> (Router<ApiState>, Vec<(&'static str, &'static str)>) {
        (self.router, self.list)
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
