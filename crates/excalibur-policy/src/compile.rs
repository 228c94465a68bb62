//! Compiling operator objects into a [`Policy`], changing one in place of a compile
//! ([`Policy::apply`]), and rendering the Cedar text every decision is equal to.
//!
//! The rendered text is the specification: `tests.rs` evaluates it with Cedar alone
//! and holds every native decision equal to Cedar's.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cedar_policy::{Authorizer, PolicyId};
use excalibur_core::api::CreateTranslationRule;
use excalibur_core::hosts::HostPattern;

use crate::native::{Binding, HostIndex, Rule, RuleIndex};
use crate::{Change, Operator, Policy, PolicyError, PolicyInput, uid, validate_operator_policy};

/// Numbers compiled policies, so subjects can tell one policy's answers from another's.
static GENERATION: AtomicU64 = AtomicU64::new(1);

pub(crate) fn next_generation() -> u64 {
    GENERATION.fetch_add(1, Ordering::Relaxed)
}

/// Conservative: any mention of `time` (`context.time`, `context["time"]`,
/// `context has time`) may make an answer depend on the clock.
pub(crate) fn reads_the_clock(text: &str) -> bool {
    text.contains("time")
}

pub(crate) fn compile(input: PolicyInput<'_>) -> Result<Policy, PolicyError> {
    let mut policy = Policy {
        authorizer: Arc::new(Authorizer::new()),
        connect: uid("Action", "connect"),
        redeem: uid("Action", "redeem"),
        operator: Arc::new(operator(input.operator)?),
        ports: input.allowed_ports.into(),
        egress: imbl::HashMap::new(),
        namespaces: input
            .namespaces
            .iter()
            .filter(|(_, hosts)| !hosts.is_empty())
            .map(|(n, hosts)| (n.clone(), hosts.as_slice().into()))
            .collect(),
        providers: imbl::HashMap::new(),
        provider_hosts: HostIndex::default(),
        passthrough: HostIndex::default(),
        placeholders: imbl::HashMap::new(),
        rules: RuleIndex::default(),
        generation: next_generation(),
    };
    for p in input.providers {
        policy.change(Change::Provider(p));
    }
    for (principal, hosts) in input.egress {
        policy.change(Change::Egress { principal, hosts });
    }
    for (name, provider) in input.placeholders {
        policy.change(Change::Bind { name, provider });
    }
    for r in input.rules {
        policy.change(Change::Rule(r));
    }
    Ok(policy)
}

/// The operator policies that validate, parsed once; the others are left out, each
/// with a line in `problems`.
fn operator(records: &[excalibur_core::api::PolicyRecord]) -> Result<Operator, PolicyError> {
    let mut out = Operator {
        memoize: !records.iter().any(|p| reads_the_clock(&p.policy.policy)),
        ..Operator::default()
    };
    for rec in records {
        let (id, src) = (&rec.policy.id, &rec.policy.policy);
        if let Err(e) = validate_operator_policy(id, src) {
            out.problems
                .push(format!("operator policy `{id}` left out: {e}"));
            continue;
        }
        let policy = cedar_policy::Policy::parse(Some(PolicyId::new(id)), src)
            .map_err(|e| PolicyError::Parse(format!("{id}: {e}")))?;
        out.set
            .add(policy)
            .map_err(|e| PolicyError::Parse(e.to_string()))?;
        out.texts.push((id.clone(), src.clone()));
    }
    Ok(out)
}

impl Policy {
    /// Makes one change in place (the maps are persistent: what it does not touch stays
    /// shared with every clone).
    pub(crate) fn change(&mut self, change: Change<'_>) {
        match change {
            Change::Bind { name, provider } => {
                self.placeholders
                    .insert(name.to_owned(), provider.to_owned());
            }
            Change::Unbind(name) => {
                self.placeholders.remove(name);
            }
            Change::Rule(r) => self.rules.insert(Rule::new(r)),
            Change::RemoveRule(id) => self.rules.remove(id),
            Change::Egress { principal, hosts } => {
                if hosts.is_empty() {
                    self.egress.remove(principal);
                } else {
                    self.egress.insert(principal.to_owned(), hosts.into());
                }
            }
            Change::Provider(p) => {
                self.remove_provider(&p.id);
                let binding = Binding::new(p);
                for h in &binding.hosts {
                    self.provider_hosts.insert(h, &p.id);
                    if binding.passthrough {
                        self.passthrough.insert(h, &p.id);
                    }
                }
                self.providers.insert(p.id.clone(), Arc::new(binding));
            }
            Change::RemoveProvider(id) => self.remove_provider(id),
        }
    }

    fn remove_provider(&mut self, id: &str) {
        if let Some(old) = self.providers.remove(id) {
            for h in &old.hosts {
                self.provider_hosts.remove(h, id);
                self.passthrough.remove(h, id);
            }
        }
    }
}

/// Every policy as Cedar text, each under a `// id` line ([`policies`]).
pub(crate) fn render(p: &Policy) -> String {
    let mut out = String::new();
    for (id, src) in policies(p) {
        let _ = write!(out, "// {id}\n{src}\n\n");
    }
    out
}

/// Every policy as `(id, Cedar text)`: builtins, operator policies (in order), then
/// egress, namespace, provider and rule policies sorted by id.
pub(crate) fn policies(p: &Policy) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut emit = |id: &str, src: &str| out.push((id.to_owned(), src.to_owned()));
    let ports: Vec<String> = p.ports.iter().map(ToString::to_string).collect();
    emit(
        "builtin:allowed_ports",
        &format!(
            "forbid (principal, action == Action::\"connect\", resource)\nunless {{ [{}].contains(context.port) }};",
            ports.join(", ")
        ),
    );
    // A scoped bearer redeems only its providers' placeholders and mappings.
    emit(
        "builtin:scopes",
        "forbid (principal, action == Action::\"redeem\", resource)\nwhen { principal.scoped && !principal.scopes.contains(resource.provider) };",
    );
    for (id, src) in &p.operator.texts {
        emit(id, src);
    }
    let mut egress: Vec<_> = p.egress.iter().collect();
    egress.sort_by(|a, b| a.0.cmp(b.0));
    for (principal, hosts) in egress {
        emit(
            &format!("egress:{principal}"),
            &format!(
                "permit (principal == Workload::{principal:?}, action == Action::\"connect\", resource)\nwhen {{ {} }};",
                hosts_condition("resource.name", hosts)
            ),
        );
    }
    let mut namespaces: Vec<_> = p.namespaces.iter().collect();
    namespaces.sort_by(|a, b| a.0.cmp(b.0));
    for (namespace, hosts) in namespaces {
        emit(
            &format!("namespace:{namespace}:egress"),
            &format!(
                "permit (principal, action == Action::\"connect\", resource)\nwhen {{ principal.namespace == {namespace:?} && ({}) }};",
                hosts_condition("resource.name", hosts)
            ),
        );
    }
    let mut providers: Vec<_> = p.providers.values().collect();
    providers.sort_by(|a, b| a.id.cmp(&b.id));
    for b in providers {
        let condition = if b.hosts.is_empty() {
            "false".to_owned()
        } else {
            hosts_condition("context.host", &b.hosts)
        };
        emit(
            &format!("provider:{}:hosts", b.id),
            &format!(
                "forbid (principal, action == Action::\"redeem\", resource in Provider::{:?})\nunless {{ {condition} }};",
                b.id
            ),
        );
        // A secret never crosses a cleartext leg unless the operator opted in, loudly.
        if !b.plaintext {
            emit(
                &format!("provider:{}:tls", b.id),
                &format!(
                    "forbid (principal, action == Action::\"redeem\", resource in Provider::{:?})\nwhen {{ context.scheme != \"https\" }};",
                    b.id
                ),
            );
        }
    }
    let mut rules: Vec<_> = p.rules.by_id.values().collect();
    rules.sort_by(|a, b| a.id.cmp(&b.id));
    for r in rules {
        emit(&r.id, &rule_source(&r.rule, &r.hosts));
    }
    out
}

/// One translation rule as a Cedar `permit` on `redeem`.
fn rule_source(rule: &CreateTranslationRule, hosts: &[HostPattern]) -> String {
    let mut conds = Vec::new();
    if rule.principal != "*" {
        conds.push(format!("principal.id like {}", like_glob(&rule.principal)));
    }
    if rule.placeholder.contains('*') {
        conds.push(format!(
            "resource.name like {}",
            like_glob(&rule.placeholder)
        ));
    } else {
        conds.push(format!("resource.name == {:?}", rule.placeholder));
    }
    conds.push(if hosts.is_empty() {
        "false".to_owned()
    } else {
        format!("({})", hosts_condition("context.host", hosts))
    });
    if rule.path_prefix != "/" {
        conds.push(format!(
            "context.path like {}",
            like_prefix(&rule.path_prefix)
        ));
    }
    if !rule.methods.is_empty() {
        let methods: Vec<String> = rule.methods.iter().map(|m| format!("{m:?}")).collect();
        conds.push(format!("[{}].contains(context.method)", methods.join(", ")));
    }
    format!(
        "permit (principal, action == Action::\"redeem\", resource)\nwhen {{ {} }};",
        conds.join("\n  && ")
    )
}

/// `X == "h" || X like "*.suffix"` for a list of host patterns.
fn hosts_condition(expr: &str, hosts: &[HostPattern]) -> String {
    hosts
        .iter()
        .map(|h| match h.as_str().strip_prefix("*.") {
            Some(suffix) => format!("{expr} like {}", like_prefix_wild(suffix)),
            None => format!("{expr} == {:?}", h.as_str()),
        })
        .collect::<Vec<_>>()
        .join(" || ")
}

/// A Cedar `like` literal for our `*` glob: `*` stays a wildcard, the rest is literal.
fn like_glob(glob: &str) -> String {
    format!("{glob:?}")
}

/// A Cedar `like` literal matching any string that starts with `prefix`.
fn like_prefix(prefix: &str) -> String {
    let quoted = format!("{prefix:?}").replace('*', "\\*");
    format!("{}*\"", quoted.trim_end_matches('"'))
}

/// A Cedar `like` literal matching `*.suffix` (one or more labels before the suffix).
fn like_prefix_wild(suffix: &str) -> String {
    let quoted = format!("{suffix:?}").replace('*', "\\*");
    format!("\"*.{}", quoted.trim_start_matches('"'))
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_literals() {
        assert_eq!(super::like_prefix("/v1/"), r#""/v1/*""#);
        assert_eq!(super::like_prefix("/a*b"), r#""/a\*b*""#);
        assert_eq!(super::like_prefix_wild("npmjs.org"), r#""*.npmjs.org""#);
        assert_eq!(super::like_glob("service:*"), r#""service:*""#);
        assert_eq!(super::like_glob("a\"b"), r#""a\"b""#);
    }
}
