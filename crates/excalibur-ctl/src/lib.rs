//! `excalibur-ctl`: the operator CLI, a client of the REST API only.
//!
//! **Owns:** the command tree ([`cli::Cli`]) and the one HTTP client that carries the API
//! token ([`client::Client`]).
//!
//! **Never:** sends the token anywhere but the API base's origin: not to a URL given to a
//! subcommand, not across a redirect, not in clear to a host that is not loopback unless
//! the operator says `--insecure-http`.
//!
//! **Start at:** [`cli::Cli`], then [`client::ApiBase`].

pub mod cli;
pub mod client;
pub mod offline;
