use std::fmt::Write as _;

use excalibur_core::api::{CreatePolicy, CreateTranslationRule, PolicyRecord};
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
            substitute_body: id == "r_stripe",
        },
        created_at: String::new(),
    }
}

fn operator(id: &str, text: &str) -> PolicyRecord {
    PolicyRecord {
        policy: CreatePolicy {
            id: id.into(),
            description: String::new(),
            policy: text.into(),
        },
        created_at: String::new(),
    }
}

/// The operator objects most tests decide over.
struct Objects {
    providers: Vec<Provider>,
    rules: Vec<TranslationRule>,
    placeholders: Vec<(String, String)>,
    egress: Vec<(String, Vec<HostPattern>)>,
    namespaces: Vec<(String, Vec<HostPattern>)>,
}

fn providers() -> Vec<Provider> {
    vec![
        Provider {
            id: "github".into(),
            hosts: vec!["api.github.com".into()],
            passthrough: false,
            dangerous_allow_plaintext: false,
        },
        Provider {
            id: "stripe".into(),
            hosts: vec!["api.stripe.com".into()],
            passthrough: false,
            dangerous_allow_plaintext: false,
        },
        Provider {
            id: "vault".into(),
            hosts: vec!["*.vault.example".into()],
            passthrough: false,
            dangerous_allow_plaintext: false,
        },
        Provider {
            id: "bank".into(),
            hosts: vec!["*.bank.example".into()],
            passthrough: true,
            dangerous_allow_plaintext: false,
        },
        Provider {
            id: "legacy".into(),
            hosts: vec!["legacy.example".into()],
            passthrough: false,
            dangerous_allow_plaintext: true,
        },
    ]
}

fn objects() -> Objects {
    let rules = vec![
        rule(
            "r_gh",
            "service:*",
            "XCALIBUR_GITHUB_*",
            &["api.github.com"],
            "/",
            &[],
        ),
        // A rule that names a host outside the provider's: the binding still wins.
        rule(
            "r_bad",
            "*",
            "XCALIBUR_GITHUB_TOKEN",
            &["evil.example"],
            "/",
            &[],
        ),
        rule(
            "r_stripe",
            "service:billing",
            "XCALIBUR_STRIPE_KEY",
            &["api.stripe.com"],
            "/v1/",
            &["POST"],
        ),
        rule(
            "r_legacy",
            "*",
            "XCALIBUR_LEGACY",
            &["legacy.example"],
            "/",
            &[],
        ),
    ];
    let placeholders = vec![
        ("XCALIBUR_GITHUB_TOKEN".to_owned(), "github".to_owned()),
        ("XCALIBUR_STRIPE_KEY".to_owned(), "stripe".to_owned()),
        ("XCALIBUR_VAULT_KEY".to_owned(), "vault".to_owned()),
        ("XCALIBUR_LEGACY".to_owned(), "legacy".to_owned()),
    ];
    let egress = vec![
        (
            "service:ci".to_owned(),
            vec![
                HostPattern::parse("api.github.com").unwrap(),
                HostPattern::parse("*.npmjs.org").unwrap(),
            ],
        ),
        (
            "service:billing".to_owned(),
            vec![HostPattern::parse("api.stripe.com").unwrap()],
        ),
    ];
    let namespaces = vec![(
        "finance".to_owned(),
        vec![HostPattern::parse("*.vault.example").unwrap()],
    )];
    Objects {
        providers: providers(),
        rules,
        placeholders,
        egress,
        namespaces,
    }
}

fn compile(o: &Objects, extra: &[PolicyRecord]) -> Policy {
    Policy::compile(PolicyInput {
        rules: &o.rules,
        providers: &o.providers,
        placeholders: &o.placeholders,
        egress: &o.egress,
        namespaces: &o.namespaces,
        operator: extra,
        allowed_ports: &[443],
    })
    .unwrap()
}

fn policy_with(extra: &[PolicyRecord]) -> Policy {
    let mut o = objects();
    o.namespaces.clear();
    compile(&o, extra)
}

fn policy() -> Policy {
    policy_with(&[])
}

fn principal(id: &str, kind: PrincipalKind) -> Principal {
    Principal {
        id: id.into(),
        kind,
        user: "u".into(),
        namespace: "finance".into(),
        groups: Vec::new(),
        attestation: kind.as_str().into(),
        factors: Vec::new(),
        credential_id: None,
        source: "10.0.0.1".parse().unwrap(),
        tags: Default::default(),
        actor: None,
        scopes: Default::default(),
    }
}

fn workload(id: &str) -> Principal {
    principal(id, PrincipalKind::ServiceCredential)
}

fn redeem(p: &Policy, who: &Principal, host: &str, path: &str, method: &str, name: &str) -> String {
    match p.decide_redeem(
        &Subject::new(who),
        RedeemTarget::tls(host, path, method),
        &[name.to_owned()],
    ) {
        Ok(permit) => format!("allow [{}]", permit.rules().join(",")),
        Err(d) => format!("deny {} [{}]", d.reason, d.policies.join(",")),
    }
}

fn connect(p: &Policy, who: &Principal, host: &str, port: u16) -> String {
    match p.decide_egress(&Subject::new(who), host, port) {
        Ok(policies) => format!("allow [{}]", policies.join(",")),
        Err(d) => format!("deny {} [{}]", d.reason, d.policies.join(",")),
    }
}

/// Compares against a committed snapshot; `UPDATE_SNAPSHOTS=1` rewrites it for review.
fn snapshot(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        #[allow(
            clippy::disallowed_methods,
            reason = "writing a reviewed test snapshot"
        )]
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        actual, expected,
        "snapshot {name} changed; review and rerun with UPDATE_SNAPSHOTS=1"
    );
}

#[test]
fn schema_parses_and_compiled_policies_validate_strictly() {
    let p = policy();
    let set: PolicySet = p.cedar_text().parse().unwrap();
    let result = Validator::new(schema().unwrap()).validate(&set, ValidationMode::Strict);
    let errors: Vec<String> = result
        .validation_errors()
        .map(ToString::to_string)
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    snapshot("compiled.cedar", &p.cedar_text());
}

#[test]
fn authorization_matrix() {
    let p = policy();
    let principals = [
        workload("service:ci"),
        workload("service:billing"),
        principal("alice", PrincipalKind::Human),
    ];
    let mut out = String::new();
    for who in &principals {
        for (host, port) in [
            ("api.github.com", 443),
            ("registry.npmjs.org", 443),
            ("npmjs.org", 443),
            ("api.stripe.com", 443),
            ("api.github.com", 22),
            ("10.0.0.5", 443),
        ] {
            writeln!(
                out,
                "{:<16} connect {host}:{port} -> {}",
                who.id,
                connect(&p, who, host, port)
            )
            .unwrap();
        }
        for (host, path, method, name) in [
            ("api.github.com", "/user", "GET", "XCALIBUR_GITHUB_TOKEN"),
            ("evil.example", "/", "GET", "XCALIBUR_GITHUB_TOKEN"),
            (
                "api.stripe.com",
                "/v1/charges",
                "POST",
                "XCALIBUR_GITHUB_TOKEN",
            ),
            (
                "api.stripe.com",
                "/v1/charges",
                "POST",
                "XCALIBUR_STRIPE_KEY",
            ),
            (
                "api.stripe.com",
                "/v1/charges",
                "GET",
                "XCALIBUR_STRIPE_KEY",
            ),
            (
                "api.stripe.com",
                "/v2/charges",
                "POST",
                "XCALIBUR_STRIPE_KEY",
            ),
            ("api.github.com", "/user", "GET", "XCALIBUR_UNKNOWN_TOKEN"),
        ] {
            writeln!(
                out,
                "{:<16} redeem {name} {method} {host}{path} -> {}",
                who.id,
                redeem(&p, who, host, path, method, name)
            )
            .unwrap();
        }
    }
    snapshot("authorization_matrix.txt", &out);
}

#[test]
fn seed_003_workloads_bypass_mfa_humans_need_fido2() {
    // Seed 003's transfer-funds policy, adapted: redeeming the vault key needs the same
    // tenant (namespace); workloads pass, humans need a completed Fido2 factor.
    let text = r#"permit (principal, action == Action::"redeem", resource)
when {
  resource.name == "XCALIBUR_VAULT_KEY" && principal.namespace == "finance"
  && (principal is Workload || (principal is Human && principal.factors_completed.contains("Fido2")))
};"#;
    validate_operator_policy("transfer-funds", text).unwrap();
    let p = policy_with(&[operator("transfer-funds", text)]);
    let target = ("db.vault.example", "/", "GET", "XCALIBUR_VAULT_KEY");
    let check = |who: &Principal| redeem(&p, who, target.0, target.1, target.2, target.3);
    assert_eq!(check(&workload("svc:payments")), "allow [transfer-funds]");
    let mut alice = principal("alice", PrincipalKind::Human);
    assert_eq!(check(&alice), "deny no_translation_rule []");
    alice.factors = vec!["Fido2".into()];
    assert_eq!(check(&alice), "allow [transfer-funds]");
    let mut other_tenant = workload("svc:other");
    other_tenant.namespace = "retail".into();
    assert_eq!(check(&other_tenant), "deny no_translation_rule []");
    // The provider binding still applies: the vault key never goes to another host.
    assert_eq!(
        redeem(
            &p,
            &workload("svc:payments"),
            "api.github.com",
            "/",
            "GET",
            "XCALIBUR_VAULT_KEY"
        ),
        "deny placeholder_host_not_bound [provider:vault:hosts]"
    );
}

#[test]
fn tags_from_claims_and_the_actor_are_visible_to_policies() {
    // Seed 003 written with tags: the tenant comes from the token's claims.
    let text = r#"permit (principal, action == Action::"redeem", resource)
when {
  resource.name == "XCALIBUR_VAULT_KEY"
  && principal.hasTag("tenant_id") && principal.getTag("tenant_id") == "acme"
  && (principal is Workload || (principal is Human && principal.factors_completed.contains("Fido2")))
};"#;
    validate_operator_policy("transfer-funds", text).unwrap();
    let p = policy_with(&[operator("transfer-funds", text)]);
    let target = ("db.vault.example", "/", "GET", "XCALIBUR_VAULT_KEY");
    let check = |who: &Principal| redeem(&p, who, target.0, target.1, target.2, target.3);
    let mut acme = workload("oidc:gha/acme/app");
    assert_eq!(check(&acme), "deny no_translation_rule []", "no tag");
    acme.tags = vec![("tenant_id".into(), "acme".into())].into();
    assert_eq!(check(&acme), "allow [transfer-funds]");
    let mut globex = workload("oidc:gha/globex/app");
    globex.tags = vec![("tenant_id".into(), "globex".into())].into();
    assert_eq!(check(&globex), "deny no_translation_rule []");
    let mut alice = principal("alice", PrincipalKind::Human);
    alice.tags = vec![("tenant_id".into(), "acme".into())].into();
    assert_eq!(check(&alice), "deny no_translation_rule []", "no Fido2");
    alice.factors = vec!["Fido2".into()];
    assert_eq!(check(&alice), "allow [transfer-funds]");
    // Delegation: who acts for the principal.
    let only_ci = r#"forbid (principal, action == Action::"redeem", resource)
when { principal.actor != "" && principal.actor != "oidc:gha/ci" };"#;
    validate_operator_policy("only-ci-acts", only_ci).unwrap();
    let p = policy_with(&[
        operator("transfer-funds", text),
        operator("only-ci-acts", only_ci),
    ]);
    let check = |who: &Principal| redeem(&p, who, target.0, target.1, target.2, target.3);
    acme.actor = Some("oidc:gha/ci".into());
    assert_eq!(check(&acme), "allow [transfer-funds]");
    acme.actor = Some("oidc:gha/intruder".into());
    assert_eq!(check(&acme), "deny forbidden_by_policy [only-ci-acts]");
}

#[test]
fn a_scoped_bearer_redeems_only_its_providers() {
    let p = policy();
    let mut ci = workload("service:ci");
    let github = |who: &Principal| {
        redeem(
            &p,
            who,
            "api.github.com",
            "/repo",
            "GET",
            "XCALIBUR_GITHUB_TOKEN",
        )
    };
    assert_eq!(github(&ci), "allow [r_gh]", "unscoped");
    ci.scopes = vec!["github".into()].into();
    assert_eq!(github(&ci), "allow [r_gh]");
    ci.scopes = vec!["stripe".into()].into();
    assert_eq!(github(&ci), "deny scope_not_granted [builtin:scopes]");
}

#[test]
fn forbid_overrides_a_rule() {
    let forbid = r#"forbid (principal, action == Action::"redeem", resource) when { context.method == "DELETE" };"#;
    let p = policy_with(&[operator("no-deletes", forbid)]);
    let ci = workload("service:ci");
    assert_eq!(
        redeem(
            &p,
            &ci,
            "api.github.com",
            "/repo",
            "GET",
            "XCALIBUR_GITHUB_TOKEN"
        ),
        "allow [r_gh]"
    );
    assert_eq!(
        redeem(
            &p,
            &ci,
            "api.github.com",
            "/repo",
            "DELETE",
            "XCALIBUR_GITHUB_TOKEN"
        ),
        "deny forbidden_by_policy [no-deletes]"
    );
}

#[test]
fn schema_errors_are_rejected_with_the_validators_message() {
    let typo = r#"permit (principal, action == Action::"redeem", resource) when { principal.tenant_id == "x" };"#;
    let err = validate_operator_policy("typo", typo)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("schema validation") && err.contains("tenant_id"),
        "{err}"
    );
    let wrong_type = r#"permit (principal, action == Action::"connect", resource) when { context.port == "443" };"#;
    assert!(validate_operator_policy("wrong-type", wrong_type).is_err());
    let bad_action = r#"permit (principal, action == Action::"fly", resource);"#;
    assert!(validate_operator_policy("bad-action", bad_action).is_err());
    assert!(matches!(
        validate_operator_policy("syntax", "permit (principal"),
        Err(PolicyError::Parse(_))
    ));
    assert!(matches!(
        validate_operator_policy("egress:x", "permit (principal, action, resource);"),
        Err(PolicyError::Id(_))
    ));
    // A stored policy that no longer validates is left out and reported, not silently applied.
    let p = policy_with(&[operator("typo", typo)]);
    assert_eq!(p.problems().len(), 1);
}

#[test]
fn one_denied_placeholder_denies_all_and_body_flag_follows_the_rule() {
    let p = policy();
    let billing = Subject::new(&workload("service:billing"));
    let target = RedeemTarget::tls("api.stripe.com", "/v1/charges", "POST");
    let permit = p
        .decide_redeem(&billing, target, &["XCALIBUR_STRIPE_KEY".to_owned()])
        .unwrap();
    assert!(permit.substitute_body());
    let both = vec![
        "XCALIBUR_STRIPE_KEY".to_owned(),
        "XCALIBUR_GITHUB_TOKEN".to_owned(),
    ];
    assert!(p.decide_redeem(&billing, target, &both).is_err());
    assert!(p.is_passthrough("www.bank.example"));
}

#[test]
fn cleartext_legs_need_the_providers_dangerous_opt_in() {
    let ci = Subject::new(&workload("service:ci"));
    let name = ["XCALIBUR_GITHUB_TOKEN".to_owned()];
    let over = |p: &Policy, scheme: &str, port: u16| {
        let target = RedeemTarget {
            host: "api.github.com",
            path: "/user",
            method: "GET",
            scheme,
            port,
        };
        match p.decide_redeem(&ci, target, &name) {
            Ok(_) => "allow".to_owned(),
            Err(d) => format!("deny {} [{}]", d.reason, d.policies.join(",")),
        }
    };
    let p = policy();
    assert_eq!(over(&p, "https", 443), "allow");
    assert_eq!(over(&p, "https", 8443), "allow");
    assert_eq!(
        over(&p, "http", 80),
        "deny plaintext_upstream [provider:github:tls]"
    );
    assert_eq!(
        over(&p, "http", 443),
        "deny plaintext_upstream [provider:github:tls]"
    );
    // Operator policies see the scheme and the upstream port too.
    let only_443 = operator(
        "only-443",
        "forbid (principal, action == Action::\"redeem\", resource) when { context.port != 443 && context.scheme == \"https\" };",
    );
    let p = policy_with(&[only_443]);
    assert_eq!(over(&p, "https", 443), "allow");
    assert!(over(&p, "https", 8443).starts_with("deny forbidden_by_policy"));
}

#[test]
fn a_subject_asking_again_gets_the_answer_the_policy_in_force_gives() {
    let ci = Subject::new(&workload("service:ci"));
    let gh = ["XCALIBUR_GITHUB_TOKEN".to_owned()];
    let ask = |p: &Policy, path: &str, method: &str| match p.decide_redeem(
        &ci,
        RedeemTarget::tls("api.github.com", path, method),
        &gh,
    ) {
        Ok(permit) => format!("allow [{}]", permit.rules().join(",")),
        Err(d) => format!("deny {}: {}", d.reason, d.detail),
    };
    let p = policy();
    let no_admin = operator(
        "no-admin",
        "forbid (principal, action == Action::\"redeem\", resource) when { context.path like \"/admin*\" && context.method != \"GET\" };",
    );
    let q = policy_with(&[no_admin]);
    // Past the memo's capacity, twice over: every answer is the one its policy gives.
    for round in 0..2 {
        for i in 0..300 {
            let admin = format!("/admin/{i}");
            assert_eq!(ask(&p, &admin, "POST"), "allow [r_gh]", "round {round}");
            assert!(
                ask(&q, &admin, "POST").starts_with("deny forbidden_by_policy"),
                "round {round}"
            );
            assert_eq!(ask(&q, &admin, "GET"), "allow [r_gh]", "round {round}");
            assert_eq!(ask(&q, &format!("/user/{i}"), "POST"), "allow [r_gh]");
        }
    }
    // A denial names the request it is about, not an earlier one's.
    let stripe = ["XCALIBUR_STRIPE_KEY".to_owned()];
    for path in ["/v1/a", "/v1/b", "/v1/a"] {
        let d = p
            .decide_redeem(
                &ci,
                RedeemTarget::tls("api.stripe.com", path, "PUT"),
                &stripe,
            )
            .unwrap_err();
        assert!(
            d.detail.ends_with(&format!("PUT api.stripe.com{path}")),
            "{}",
            d.detail
        );
    }
    // A policy that reads the clock is asked every time.
    let until = now() + 1;
    let timed = operator(
        "until",
        &format!(
            "forbid (principal, action == Action::\"redeem\", resource) when {{ context.time > {until} }};"
        ),
    );
    let t = policy_with(&[timed]);
    assert_eq!(ask(&t, "/user", "GET"), "allow [r_gh]");
    for _ in 0..40 {
        if now() > until {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(ask(&t, "/user", "GET").starts_with("deny forbidden_by_policy"));
}

mod native;
