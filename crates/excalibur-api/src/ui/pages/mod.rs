//! One module per page: its routes, its handlers, its template.

pub(super) mod audit;
pub(super) mod crypto;
pub(super) mod escrow;
pub(super) mod fleet;
pub(super) mod flows;
pub(super) mod login;
pub(super) mod netbird;
pub(super) mod overview;
pub(super) mod policies;
pub(super) mod rules;
pub(super) mod services;
pub(super) mod webhooks;

use serde::Deserialize;

/// A form with nothing but its CSRF token (delete and revoke buttons).
#[derive(Deserialize)]
pub(super) struct CsrfForm {
    pub(super) csrf: String,
}
