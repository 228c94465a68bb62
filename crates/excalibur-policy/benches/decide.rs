//! Decision latency on the request path with 1,000 translation rules, 1,000 service
//! credentials' egress policies, 100 providers and a few operator policies.
//! `cargo bench -p excalibur-policy` prints p50/p99/p99.9 per decision kind.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    missing_docs,
    reason = "benchmark"
)]

use std::time::{Duration, Instant};

use excalibur_core::api::{
    CreatePolicy, CreateTranslationRule, PolicyRecord, Provider, TranslationRule,
};
use excalibur_core::hosts::HostPattern;
use excalibur_core::ids::RuleId;
use excalibur_core::principal::{Principal, PrincipalKind};
use excalibur_policy::{Policy, PolicyInput, RedeemTarget, Subject};

const N: usize = 1000;
const ITERATIONS: usize = 50_000;

fn main() {
    let providers: Vec<Provider> = (0..100)
        .map(|i| Provider {
            id: format!("p{i}"),
            hosts: vec![format!("api{i}.example.com")],
            passthrough: false,
            dangerous_allow_plaintext: false,
        })
        .collect();
    let rules: Vec<TranslationRule> = (0..N)
        .map(|i| TranslationRule {
            id: RuleId::new(format!("rule_{i}")),
            rule: CreateTranslationRule {
                principal: format!("service:svc{i}*"),
                placeholder: format!("XCALIBUR_KEY_{i}"),
                hosts: vec![format!("api{}.example.com", i % 100)],
                path_prefix: "/v1/".into(),
                methods: vec!["GET".into(), "POST".into()],
                substitute_body: false,
            },
            created_at: String::new(),
        })
        .collect();
    let placeholders: Vec<(String, String)> = (0..N)
        .map(|i| (format!("XCALIBUR_KEY_{i}"), format!("p{}", i % 100)))
        .collect();
    let egress: Vec<(String, Vec<HostPattern>)> = (0..N)
        .map(|i| {
            (
                format!("service:svc{i}"),
                vec![HostPattern::parse(&format!("api{}.example.com", i % 100)).unwrap()],
            )
        })
        .collect();
    let operator = vec![PolicyRecord {
        policy: CreatePolicy {
            id: "no-deletes".into(),
            description: String::new(),
            policy: r#"forbid (principal, action == Action::"redeem", resource) when { context.method == "DELETE" };"#
                .into(),
        },
        created_at: String::new(),
    }];
    let started = Instant::now();
    let policy = Policy::compile(PolicyInput {
        rules: &rules,
        providers: &providers,
        placeholders: &placeholders,
        egress: &egress,
        namespaces: &[],
        operator: &operator,
        allowed_ports: &[80, 443],
    })
    .unwrap();
    println!(
        "compiled {} rules + {} egress + {} provider + {} operator policies in {:.1} ms",
        N,
        N,
        providers.len(),
        operator.len(),
        started.elapsed().as_secs_f64() * 1e3
    );

    let principal = |i: usize| Principal {
        id: format!("service:svc{i}"),
        kind: PrincipalKind::ServiceCredential,
        user: "bench".into(),
        namespace: String::new(),
        groups: Vec::new(),
        attestation: "service_credential".into(),
        factors: Vec::new(),
        credential_id: None,
        source: "10.0.0.1".parse().unwrap(),
        tags: Default::default(),
        actor: None,
        scopes: Default::default(),
    };
    // The proxy builds a principal's Cedar entity once per connection and reuses it.
    let principals: Vec<Subject> = (0..N).map(|i| Subject::new(&principal(i))).collect();

    report("connect (allow)", |k| {
        let i = k % N;
        assert!(
            policy
                .decide_egress(&principals[i], &format!("api{}.example.com", i % 100), 443)
                .is_ok()
        );
    });
    report("connect (deny)", |k| {
        let i = k % N;
        assert!(
            policy
                .decide_egress(&principals[i], "elsewhere.example.org", 443)
                .is_err()
        );
    });
    report("redeem (allow)", |k| {
        let i = k % N;
        let host = format!("api{}.example.com", i % 100);
        let target = RedeemTarget::tls(&host, "/v1/items", "GET");
        assert!(
            policy
                .decide_redeem(&principals[i], target, &[format!("XCALIBUR_KEY_{i}")])
                .is_ok()
        );
    });
    report("redeem (forbid wins)", |k| {
        let i = k % N;
        let host = format!("api{}.example.com", i % 100);
        let target = RedeemTarget::tls(&host, "/v1/items", "DELETE");
        assert!(
            policy
                .decide_redeem(&principals[i], target, &[format!("XCALIBUR_KEY_{i}")])
                .is_err()
        );
    });
}

fn report(name: &str, mut f: impl FnMut(usize)) {
    for k in 0..1000 {
        f(k);
    }
    let mut samples: Vec<Duration> = Vec::with_capacity(ITERATIONS);
    for k in 0..ITERATIONS {
        let t = Instant::now();
        f(k);
        samples.push(t.elapsed());
    }
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    println!(
        "{name:<22} p50 {:>6.1} us   p99 {:>6.1} us   p99.9 {:>6.1} us   ({ITERATIONS} decisions)",
        pct(0.50).as_secs_f64() * 1e6,
        pct(0.99).as_secs_f64() * 1e6,
        pct(0.999).as_secs_f64() * 1e6
    );
}
