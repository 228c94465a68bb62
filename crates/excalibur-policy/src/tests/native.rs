//! The native checks against Cedar evaluating their rendered text, and
//! [`Policy::apply`] against a fresh compile.

use excalibur_core::principal::PrincipalKind;

use super::*;

/// Every decision over `(principal, host, port / scheme, placeholder, path, method)`,
/// one line each, for comparing two policies.
fn matrix(p: &Policy) -> Vec<String> {
    let mut scoped = workload("service:ci");
    scoped.scopes = vec!["stripe".into()].into();
    let mut elsewhere = workload("k8s:c/retail/sa");
    elsewhere.namespace = "retail".into();
    let principals = [
        workload("service:ci"),
        workload("service:billing"),
        workload("service:other"),
        principal("service:ci", PrincipalKind::Human),
        principal("alice", PrincipalKind::Human),
        scoped,
        elsewhere,
    ];
    let hosts = [
        "api.github.com",
        "api.stripe.com",
        "kv.vault.example",
        "vault.example",
        "evil.example",
        "registry.npmjs.org",
        "legacy.example",
        "www.bank.example",
        // Matched as Cedar matches them: exactly, no case folding, no trailing dot.
        "API.github.com",
        "api.github.com.",
        ".vault.example",
    ];
    let names = [
        "XCALIBUR_GITHUB_TOKEN",
        "XCALIBUR_STRIPE_KEY",
        "XCALIBUR_VAULT_KEY",
        "XCALIBUR_LEGACY",
        "XCALIBUR_UNKNOWN",
    ];
    let mut out = Vec::new();
    for who in &principals {
        let subject = Subject::new(who);
        for host in hosts {
            for port in [443, 8443] {
                let answer = match p.decide_egress(&subject, host, port) {
                    Ok(policies) => format!("allow [{}]", policies.join(",")),
                    Err(d) => format!("deny {} [{}]", d.reason, d.policies.join(",")),
                };
                out.push(format!(
                    "{} {:?} connect {host}:{port} -> {answer}",
                    who.id, who.kind
                ));
            }
            for name in names {
                for (path, method, scheme) in [
                    ("/v1/charges", "POST", "https"),
                    ("/user", "GET", "https"),
                    ("/user", "GET", "http"),
                ] {
                    let target = RedeemTarget {
                        host,
                        path,
                        method,
                        scheme,
                        port: 443,
                    };
                    let answer = match p.decide_redeem(&subject, target, &[name.to_owned()]) {
                        Ok(permit) => format!(
                            "allow [{}] body={}",
                            permit.rules().join(","),
                            permit.substitute_body()
                        ),
                        Err(d) => format!("deny {} [{}]", d.reason, d.policies.join(",")),
                    };
                    out.push(format!(
                        "{} {:?} {name} {method} {scheme}://{host}{path} -> {answer}",
                        who.id, who.kind
                    ));
                }
            }
        }
    }
    out
}

fn cross_cutting() -> [PolicyRecord; 4] {
    [
        operator(
            "no_vault_for_humans",
            "forbid (principal is Human, action == Action::\"redeem\", resource in Provider::\"vault\");",
        ),
        operator(
            "humans_reach_the_vault",
            "permit (principal is Human, action == Action::\"connect\", resource)\nwhen { resource.name like \"*.vault.example\" };",
        ),
        operator(
            "billing_never_reaches_github",
            "forbid (principal == Workload::\"service:billing\", action == Action::\"connect\", resource)\nwhen { resource.name == \"api.github.com\" };",
        ),
        operator(
            "ci_redeems_the_vault_key",
            "permit (principal == Workload::\"service:ci\", action == Action::\"redeem\", resource)\nwhen { resource.name == \"XCALIBUR_VAULT_KEY\" && context.host like \"*.vault.example\" };",
        ),
    ]
}

/// The native checks answer exactly as Cedar evaluating the rendered text of every
/// policy in one set: the decision, the deny reason and the policies named, for egress
/// and redemption, with and without operator policies that cut across them.
#[test]
fn native_decisions_equal_cedar_on_the_rendered_text() {
    for extra in [&[][..], &cross_cutting()[..]] {
        let native = compile(&objects(), extra);
        let whole = compile(&objects(), extra).cedar_reference();
        let (a, b) = (matrix(&native), matrix(&whole));
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x, y);
        }
        assert_eq!(a.len(), b.len());
        // The matrix exercises both answers, not only denials.
        let allowed = a.iter().filter(|l| l.contains("-> allow")).count();
        assert!(
            allowed > 20 && allowed < a.len() - 20,
            "{allowed} of {} allowed",
            a.len()
        );
    }
}

/// A policy changed object by object (with detours: a rule added then removed, a
/// provider replaced) decides and renders as one compiled from the end state, and the
/// policy it was changed from still decides as before.
#[test]
fn applied_changes_decide_as_a_fresh_compile() {
    let o = objects();
    let extra = cross_cutting();
    let empty = compile(
        &Objects {
            providers: Vec::new(),
            rules: Vec::new(),
            placeholders: Vec::new(),
            egress: Vec::new(),
            namespaces: o.namespaces.clone(),
        },
        &extra,
    );
    let before = matrix(&empty);
    let mut wrong = o.providers[0].clone();
    wrong.hosts = vec!["evil.example".into()];
    let detour = rule(
        "r_detour",
        "*",
        "XCALIBUR_GITHUB_TOKEN",
        &["evil.example"],
        "/",
        &[],
    );
    let mut changes = vec![Change::Provider(&wrong), Change::Rule(&detour)];
    changes.extend(o.providers.iter().map(Change::Provider));
    changes.extend(o.rules.iter().rev().map(Change::Rule));
    changes.push(Change::RemoveRule("r_detour"));
    changes.extend(
        o.placeholders
            .iter()
            .map(|(name, provider)| Change::Bind { name, provider }),
    );
    changes.push(Change::Bind {
        name: "XCALIBUR_GONE",
        provider: "github",
    });
    changes.push(Change::Unbind("XCALIBUR_GONE"));
    changes.extend(
        o.egress
            .iter()
            .map(|(principal, hosts)| Change::Egress { principal, hosts }),
    );
    let changed = empty.apply(changes);
    let fresh = compile(&o, &extra);
    assert_eq!(matrix(&changed), matrix(&fresh));
    assert_eq!(changed.cedar_text(), fresh.cedar_text());
    assert_eq!(matrix(&empty), before);
    // Removing what was added gives back the empty policy's answers.
    let mut undo: Vec<Change<'_>> = o
        .providers
        .iter()
        .map(|p| Change::RemoveProvider(&p.id))
        .collect();
    undo.extend(o.rules.iter().map(|r| Change::RemoveRule(r.id.as_str())));
    undo.extend(o.placeholders.iter().map(|(n, _)| Change::Unbind(n)));
    undo.extend(o.egress.iter().map(|(principal, _)| Change::Egress {
        principal,
        hosts: &[],
    }));
    assert_eq!(matrix(&changed.apply(undo)), before);
}
