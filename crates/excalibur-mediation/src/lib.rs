//! Excalibur's mediation stage: find placeholders, substitute real values where a
//! [`Permit`](excalibur_policy::Permit) allows, and scrub real values out of responses.
//!
//! **Owns:** the placeholder automaton (one Aho-Corasick over all names, plus their
//! base64 and percent-encoded forms), the scrub automaton over real values, streaming
//! rewriters for bodies.
//!
//! **Never:** substitutes without a `Permit` naming the placeholder; logs or formats a
//! real value; buffers a body without a bound.
//!
//! **Start at:** [`Mediator`].

pub mod dpop;
pub mod jwt_bearer;
pub mod sigv4;
mod substitute;

pub use substitute::{Mediator, Rebuilt, StreamRewriter};
