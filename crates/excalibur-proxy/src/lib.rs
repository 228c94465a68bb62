//! Excalibur's data plane: the forward-proxy listeners, CONNECT handling, TLS
//! interception with leaves minted from the Excalibur CA, and the request pipeline.
//!
//! **Owns:** the CA and its leaf cache, TLS server configs, the proxy request path.
//!
//! **Never:** touches the store on the request path; substitutes a secret without a
//! permit; forwards `Proxy-Authorization` upstream.
//!
//! **Start at:** [`ca::CertAuthority`].

pub mod ca;
