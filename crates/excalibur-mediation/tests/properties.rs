//! Properties: scrubbing undoes substitution for any input and any chunking, and a
//! placeholder in any supported encoding is detected, so a disallowed host never gets a
//! permit for it.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    missing_docs,
    reason = "tests"
)]

use std::collections::BTreeSet;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use excalibur_core::Secret;
use excalibur_core::api::{CreateTranslationRule, Provider, TranslationRule};
use excalibur_core::hosts::HostPattern;
use excalibur_core::ids::RuleId;
use excalibur_core::principal::{Principal, PrincipalKind};
use excalibur_mediation::Mediator;
use excalibur_policy::{Permit, Policy, PolicyInput, RedeemTarget, Subject};
use proptest::prelude::*;

const NAMES: [&str; 3] = ["XCALIBUR_GITHUB_TOKEN", "XCALIBUR_STRIPE_KEY", "XCALIBUR_K"];
// Each value has a `#`, which filler never contains, so filler cannot spell a value.
const VALUES: [&str; 3] = ["ghp#real_1234567890abcdef", "sk#live_9876543210", "k#v"];

fn mediator() -> Arc<Mediator> {
    Arc::new(Mediator::new(
        NAMES
            .iter()
            .zip(VALUES)
            .map(|(n, v)| ((*n).to_owned(), Secret::new(v.as_bytes().to_vec())))
            .collect(),
    ))
}

fn policy() -> Policy {
    let providers = vec![Provider {
        id: "p".into(),
        hosts: vec!["api.example.com".into()],
        passthrough: false,
        dangerous_allow_plaintext: false,
    }];
    let rules = vec![TranslationRule {
        id: RuleId::new("r"),
        rule: CreateTranslationRule {
            principal: "*".into(),
            placeholder: "XCALIBUR_*".into(),
            hosts: vec!["api.example.com".into()],
            path_prefix: "/".into(),
            methods: vec![],
            substitute_body: true,
        },
        created_at: String::new(),
    }];
    let bindings: Vec<(String, String)> = NAMES
        .iter()
        .map(|n| ((*n).to_owned(), "p".to_owned()))
        .collect();
    let egress = [(
        "service:x".to_owned(),
        vec![HostPattern::parse("*.example.com").unwrap()],
    )];
    Policy::compile(PolicyInput {
        rules: &rules,
        providers: &providers,
        placeholders: &bindings,
        egress: &egress,
        namespaces: &[],
        operator: &[],
        allowed_ports: &[443],
    })
    .unwrap()
}

fn subject() -> Subject {
    Subject::new(&Principal {
        id: "service:x".into(),
        kind: PrincipalKind::ServiceCredential,
        user: "x".into(),
        namespace: String::new(),
        groups: vec![],
        attestation: "service_credential".into(),
        factors: vec![],
        credential_id: None,
        source: "127.0.0.1".parse().unwrap(),
        tags: Default::default(),
        actor: None,
        scopes: Default::default(),
    })
}

fn permit_all(p: &Policy) -> Permit {
    let found: Vec<String> = NAMES.iter().map(|n| (*n).to_owned()).collect();
    p.decide_redeem(
        &subject(),
        RedeemTarget::tls("api.example.com", "/", "POST"),
        &found,
    )
    .unwrap()
}

/// Text made of filler and placeholder names, as bytes.
fn text() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            "[a-zA-Z0-9 _:/=&\"{}]{0,12}".prop_map(String::into_bytes),
            prop::sample::select(NAMES.to_vec()).prop_map(|n| n.as_bytes().to_vec()),
        ],
        0..12,
    )
    .prop_map(|parts| parts.concat())
}

fn rewrite(m: &Arc<Mediator>, p: &Permit, input: &[u8], cuts: &[usize], scrub: bool) -> Vec<u8> {
    let mut r = if scrub {
        m.body_scrubber()
    } else {
        m.body_substituter(p.clone())
    };
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    cuts.sort_unstable();
    let mut out = Vec::new();
    let mut last = 0;
    for c in cuts {
        out.extend(r.push(&input[last..c]));
        last = c;
    }
    out.extend(r.push(&input[last..]));
    out.extend(r.finish());
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn scrub_undoes_substitute_for_any_chunking(input in text(), cuts in prop::collection::vec(any::<usize>(), 0..6), cuts2 in prop::collection::vec(any::<usize>(), 0..6)) {
        // Filler never contains a real value here, so the round trip is exact.
        let m = mediator();
        let p = permit_all(&policy());
        let whole = m.substitute(&p, &input).unwrap_or_else(|| input.clone());
        let streamed = rewrite(&m, &p, &input, &cuts, false);
        prop_assert_eq!(&streamed, &whole);
        let back = rewrite(&m, &p, &whole, &cuts2, true);
        prop_assert_eq!(back, input);
    }

    #[test]
    fn any_encoding_is_detected_and_denied_toward_other_hosts(
        name in prop::sample::select(NAMES.to_vec()),
        prefix in "[a-z:]{0,5}",
        suffix in "[a-z]{0,5}",
        encoding in 0u8..4,
        host in "[a-z]{1,10}\\.(org|net|example\\.org)",
    ) {
        let raw = format!("{prefix}{name}{suffix}");
        let carried = match encoding {
            0 => raw,
            1 => raw.bytes().map(|b| format!("%{b:02X}")).collect(),
            2 => STANDARD.encode(&raw),
            _ => URL_SAFE_NO_PAD.encode(&raw),
        };
        let m = mediator();
        let mut found = BTreeSet::new();
        m.find(carried.as_bytes(), &mut found);
        m.find_encoded(carried.as_bytes(), &mut found);
        prop_assert!(found.contains(name), "{} not found in {}", name, carried);
        let asked: Vec<String> = found.into_iter().collect();
        let decision = policy().decide_redeem(&subject(), RedeemTarget::tls(&host, "/", "GET"), &asked);
        prop_assert!(decision.is_err(), "permit toward {}", host);
    }
}
