//! The placeholder scanner with encodings, substitution, scrubbing and streaming: no
//! panics, and streaming equals whole-body rewriting at any cut.
#![no_main]

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use excalibur_core::Secret;
use excalibur_core::api::{CreateTranslationRule, Provider, TranslationRule};
use excalibur_core::hosts::HostPattern;
use excalibur_core::ids::RuleId;
use excalibur_core::principal::{Principal, PrincipalKind};
use excalibur_mediation::Mediator;
use excalibur_policy::{Permit, Policy, PolicyInput, RedeemTarget, Subject};
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 2] = ["XCALIBUR_GITHUB_TOKEN", "XCALIBUR_K"];

fn setup() -> &'static (Arc<Mediator>, Permit) {
    static S: OnceLock<(Arc<Mediator>, Permit)> = OnceLock::new();
    S.get_or_init(|| {
        let m = Arc::new(Mediator::new(vec![
            (
                NAMES[0].into(),
                Secret::new(b"ghp#value_0123456789".to_vec()),
            ),
            (NAMES[1].into(), Secret::new(b"k#v".to_vec())),
        ]));
        let rules = vec![TranslationRule {
            id: RuleId::new("r"),
            rule: CreateTranslationRule {
                principal: "*".into(),
                placeholder: "*".into(),
                hosts: vec!["h.example".into()],
                path_prefix: "/".into(),
                methods: vec![],
                substitute_body: true,
            },
            created_at: String::new(),
        }];
        let providers = vec![Provider {
            id: "p".into(),
            hosts: vec!["h.example".into()],
            passthrough: false,
            dangerous_allow_plaintext: false,
        }];
        let bindings: Vec<(String, String)> =
            NAMES.iter().map(|n| ((*n).into(), "p".into())).collect();
        let egress = [(
            "service:f".to_owned(),
            vec![HostPattern::parse("h.example").expect("host")],
        )];
        let policy = Policy::compile(PolicyInput {
            rules: &rules,
            providers: &providers,
            placeholders: &bindings,
            egress: &egress,
            namespaces: &[],
            operator: &[],
            allowed_ports: &[443],
        })
        .expect("policy");
        let subject = Subject::new(&Principal {
            id: "service:f".into(),
            kind: PrincipalKind::ServiceCredential,
            user: "f".into(),
            namespace: String::new(),
            groups: vec![],
            attestation: String::new(),
            factors: vec![],
            credential_id: None,
            source: "127.0.0.1".parse().expect("ip"),
            tags: Default::default(),
            actor: None,
            scopes: Default::default(),
        });
        let found: Vec<String> = NAMES.iter().map(|n| (*n).into()).collect();
        let permit = policy
            .decide_redeem(&subject, RedeemTarget::tls("h.example", "/", "GET"), &found)
            .expect("permit");
        (m, permit)
    })
}

fuzz_target!(|data: &[u8]| {
    let (m, permit) = setup();
    let mut found = BTreeSet::new();
    m.find(data, &mut found);
    m.find_encoded(data, &mut found);
    let whole = m.substitute(permit, data).unwrap_or_else(|| data.to_vec());
    let _ = m.scrub(&whole);
    let cut = data.first().map_or(0, |b| usize::from(*b)) % (data.len() + 1);
    let mut s = m.body_substituter(permit.clone());
    let mut streamed = s.push(&data[..cut]);
    streamed.extend(s.push(&data[cut..]));
    streamed.extend(s.finish());
    assert_eq!(streamed, whole);
});
