//! Request and response bodies of the REST API, one module per resource; field names
//! match the user docs. Everything is re-exported here (`excalibur_core::api::Flow`).
//!
//! Requests reject unknown fields so a typo is an error, not a silent default. A secret a
//! request carries is a [`SecretString`] (redacted, never serialized); one shown once in
//! a response is a [`ShownOnce`].

#[cfg(doc)]
use crate::secret::{SecretString, ShownOnce};

mod credentials;
mod crypto;
mod dpop;
mod flows;
mod import;
mod jwt_bearer;
mod mtls;
mod netbird;
mod oauth_refresh;
mod policies;
mod problem;
mod rules;
mod sigv4;
mod ssh;
mod tokens;
mod vault;
mod webhooks;
mod workloads;

pub use credentials::*;
pub use crypto::*;
pub use dpop::*;
pub use flows::*;
pub use import::*;
pub use jwt_bearer::*;
pub use mtls::*;
pub use netbird::*;
pub use oauth_refresh::*;
pub use policies::*;
pub use problem::*;
pub use rules::*;
pub use sigv4::*;
pub use ssh::*;
pub use tokens::*;
pub use vault::*;
pub use webhooks::*;
pub use workloads::*;

#[cfg(test)]
mod tests;
