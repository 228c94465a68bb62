//! Excalibur's vocabulary: the typed values every other crate speaks.
//!
//! **Owns:** typed ids, [`Secret`], roles, audit event types and the hash-chain
//! encoding, canonical JSON, the REST API's data transfer objects, [`ErrorChain`].
//!
//! **Never:** performs I/O, spawns tasks, or prints a secret value (secrets render as
//! `**REDACTED**` and have no `Serialize`).
//!
//! **Start at:** [`audit::NewEvent`], [`secret::Secret`], [`api`].

pub mod api;
pub mod audit;
pub mod canonical;
pub mod error;
pub mod hosts;
pub mod ids;
pub mod merkle;
pub mod principal;
pub mod record;
pub mod secret;
pub mod time;

pub use error::ErrorChain;
pub use secret::{Secret, SecretString, ShownOnce};
