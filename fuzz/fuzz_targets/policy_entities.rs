//! Policy entity building and decisions with hostile strings: no panics, and never a
//! permit toward a host outside the provider's.
#![no_main]

use std::sync::OnceLock;

use excalibur_core::api::{CreateTranslationRule, Provider, TranslationRule};
use excalibur_core::ids::RuleId;
use excalibur_core::principal::{Principal, PrincipalKind};
use excalibur_policy::{Policy, PolicyInput, RedeemTarget, Subject};
use libfuzzer_sys::fuzz_target;

fn policy() -> &'static Policy {
    static P: OnceLock<Policy> = OnceLock::new();
    P.get_or_init(|| {
        let rules = vec![TranslationRule {
            id: RuleId::new("r"),
            rule: CreateTranslationRule {
                principal: "*".into(),
                placeholder: "*".into(),
                hosts: vec!["*.example".into()],
                path_prefix: "/".into(),
                methods: vec![],
                substitute_body: false,
            },
            created_at: String::new(),
        }];
        let providers = vec![Provider {
            id: "p".into(),
            hosts: vec!["h.example".into()],
            passthrough: false,
            dangerous_allow_plaintext: false,
        }];
        let bindings = [("XCALIBUR_TOKEN".to_owned(), "p".to_owned())];
        Policy::compile(PolicyInput {
            rules: &rules,
            providers: &providers,
            placeholders: &bindings,
            egress: &[],
            namespaces: &[],
            operator: &[],
            allowed_ports: &[443],
        })
        .expect("policy")
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\u{0}');
    let mut next = || parts.next().unwrap_or_default().to_owned();
    let (id, ns, host, path, method, name) = (next(), next(), next(), next(), next(), next());
    let human = data.first().is_some_and(|b| b & 1 == 1);
    let subject = Subject::new(&Principal {
        id,
        kind: if human {
            PrincipalKind::Human
        } else {
            PrincipalKind::ServiceCredential
        },
        user: ns.clone(),
        namespace: ns,
        groups: vec![name.clone()],
        attestation: String::new(),
        factors: vec![path.clone()],
        credential_id: None,
        source: "::1".parse().expect("ip"),
        tags: Default::default(),
        actor: None,
        scopes: Default::default(),
    });
    let p = policy();
    let _ = p.decide_egress(&subject, &host, 443);
    let found = vec!["XCALIBUR_TOKEN".to_owned(), name];
    if let Ok(permit) = p.decide_redeem(&subject, RedeemTarget::tls(&host, &path, &method), &found)
    {
        assert_eq!(permit.host(), "h.example");
    }
});
