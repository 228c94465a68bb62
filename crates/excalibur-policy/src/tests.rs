use excalibur_core::api::CreateTranslationRule;
use excalibur_core::ids::RuleId;
use excalibur_core::principal::PrincipalKind;

use super::*;

fn rule(
    id: &str,
    principal: &str,
    placeholder: &str,
    hosts: &[&str],
    prefix: &str,
    methods: &[&str],
) -> TranslationRule {
    TranslationRule {
        id: RuleId::new(id),
        rule: CreateTranslationRule {
            principal: principal.into(),
            placeholder: placeholder.into(),
            hosts: hosts.iter().map(|s| s.to_string()).collect(),
            path_prefix: prefix.into(),
            methods: methods.iter().map(|s| s.to_string()).collect(),
            substitute_body: false,
        },
        created_at: String::new(),
    }
}

fn policy() -> Policy {
    let providers = vec![
        Provider {
            id: "github".into(),
            hosts: vec!["api.github.com".into()],
            passthrough: false,
        },
        Provider {
            id: "stripe".into(),
            hosts: vec!["api.stripe.com".into()],
            passthrough: false,
        },
        Provider {
            id: "bank".into(),
            hosts: vec!["*.bank.example".into()],
            passthrough: true,
        },
    ];
    let rules = vec![
        rule("r_gh", "service:*", "XCALIBUR_GITHUB_*", &["api.github.com"], "/", &[]),
        // A rule that names a host outside the provider's: the binding still wins.
        rule("r_bad", "*", "XCALIBUR_GITHUB_TOKEN", &["evil.example"], "/", &[]),
        rule(
            "r_stripe",
            "service:billing",
            "XCALIBUR_STRIPE_KEY",
            &["api.stripe.com"],
            "/v1/",
            &["POST"],
        ),
    ];
    let bindings = [
        ("XCALIBUR_GITHUB_TOKEN".to_owned(), "github".to_owned()),
        ("XCALIBUR_STRIPE_KEY".to_owned(), "stripe".to_owned()),
    ];
    Policy::compile(&rules, &providers, bindings, vec![443])
}

fn principal(id: &str, domains: &[&str]) -> Principal {
    Principal {
        id: id.into(),
        kind: PrincipalKind::ServiceCredential,
        user: "u".into(),
        credential_id: None,
        allowed_domains: domains.iter().map(|d| HostPattern::parse(d).unwrap()).collect(),
        source: "10.0.0.1".parse().unwrap(),
    }
}

fn redeem(p: &Principal, host: &str, path: &str, method: &str, name: &str) -> Result<Vec<String>, &'static str> {
    policy()
        .decide_redeem(p, RedeemTarget { host, path, method }, &[name.to_owned()])
        .map(|permit| permit.rules().to_vec())
        .map_err(|d| d.reason)
}

/// principal, host, path, method, placeholder, expected rule ids or deny reason.
type Case<'a> = (
    &'a Principal,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    Result<&'a [&'a str], &'a str>,
);

#[test]
fn redemption_matrix() {
    let ci = principal("service:ci", &["api.github.com"]);
    let billing = principal("service:billing", &["api.stripe.com"]);
    let cases: &[Case<'_>] = &[
        (
            &ci,
            "api.github.com",
            "/user",
            "GET",
            "XCALIBUR_GITHUB_TOKEN",
            Ok(&["r_gh"]),
        ),
        (
            &ci,
            "evil.example",
            "/",
            "GET",
            "XCALIBUR_GITHUB_TOKEN",
            Err("placeholder_host_not_bound"),
        ),
        (
            &ci,
            "api.stripe.com",
            "/v1/charges",
            "POST",
            "XCALIBUR_GITHUB_TOKEN",
            Err("placeholder_host_not_bound"),
        ),
        (
            &ci,
            "api.stripe.com",
            "/v1/charges",
            "POST",
            "XCALIBUR_STRIPE_KEY",
            Err("no_translation_rule"),
        ),
        (
            &billing,
            "api.stripe.com",
            "/v1/charges",
            "POST",
            "XCALIBUR_STRIPE_KEY",
            Ok(&["r_stripe"]),
        ),
        (
            &billing,
            "api.stripe.com",
            "/v1/charges",
            "GET",
            "XCALIBUR_STRIPE_KEY",
            Err("no_translation_rule"),
        ),
        (
            &billing,
            "api.stripe.com",
            "/v2/charges",
            "POST",
            "XCALIBUR_STRIPE_KEY",
            Err("no_translation_rule"),
        ),
        (
            &billing,
            "api.github.com",
            "/user",
            "GET",
            "XCALIBUR_UNKNOWN_TOKEN",
            Err("placeholder_host_not_bound"),
        ),
    ];
    for (p, host, path, method, name, want) in cases {
        let got = redeem(p, host, path, method, name);
        let want = want.map(|ids| ids.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(got, want, "{} {method} {host}{path} {name}", p.id);
    }
}

#[test]
fn egress_is_default_deny_and_port_bound() {
    let p = policy();
    let ci = principal("service:ci", &["api.github.com", "*.npmjs.org"]);
    assert!(p.decide_egress(&ci, "api.github.com", 443).is_ok());
    assert!(p.decide_egress(&ci, "registry.npmjs.org", 443).is_ok());
    assert_eq!(
        p.decide_egress(&ci, "npmjs.org", 443).unwrap_err().reason,
        "egress_not_allowed"
    );
    assert_eq!(
        p.decide_egress(&ci, "api.github.com", 22).unwrap_err().reason,
        "port_not_allowed"
    );
    assert_eq!(
        p.decide_egress(&ci, "140.82.112.6", 443).unwrap_err().reason,
        "egress_not_allowed"
    );
    assert!(p.is_passthrough("www.bank.example"));
    assert!(!p.is_passthrough("api.github.com"));
}

#[test]
fn one_denied_placeholder_denies_all() {
    let ci = principal("service:ci", &["api.github.com"]);
    let found = vec!["XCALIBUR_GITHUB_TOKEN".to_owned(), "XCALIBUR_STRIPE_KEY".to_owned()];
    let target = RedeemTarget {
        host: "api.github.com",
        path: "/",
        method: "GET",
    };
    assert!(policy().decide_redeem(&ci, target, &found).is_err());
}
