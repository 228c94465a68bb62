//! JWT and JWKS parsing in token exchange: an arbitrary JWKS document (as an issuer would
//! serve it) and an arbitrary subject token. No panics; never an accepted token.
#![no_main]

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use excalibur_identity::attest::{Attestors, JwksSource, Kubernetes, KubernetesConfig};
use libfuzzer_sys::fuzz_target;

#[derive(Debug)]
struct Fixed(String);

impl JwksSource for Fixed {
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + '_>> {
        Box::pin(std::future::ready(Ok(self.0.clone())))
    }
}

/// Drives a future that never waits on I/O (the JWKS source is immediate).
fn run<T>(fut: impl Future<Output = T>) -> Option<T> {
    let mut fut = std::pin::pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (jwks, token) = text.split_once('\u{0}').unwrap_or((&text, "e30.e30.sig"));
    let cfg = KubernetesConfig {
        issuer: "https://kubernetes.default.svc".into(),
        cluster: "fuzz".into(),
        audience: "excalibur".into(),
    };
    let attestors = Attestors {
        kubernetes: Some(Kubernetes::new(cfg, Box::new(Fixed(jwks.to_owned())))),
        ..Default::default()
    };
    // Without a private key no fuzz input can carry a valid signature.
    if let Some(result) = run(attestors.verify(token)) {
        assert!(result.is_err(), "a fuzzed token was accepted");
    }
});
