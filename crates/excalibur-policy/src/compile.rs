//! Compiling operator objects to Cedar, and slicing the policy set so a decision only
//! evaluates policies that can apply to it.
//!
//! Slices are sound: a rule left out of a placeholder's slice has a placeholder glob
//! that does not match that name, so its `when` clause could never hold; a credential's
//! egress permit is scoped to `principal ==` that credential; a provider's forbids are
//! in the slice of its placeholders. Builtin and operator policies are in the global
//! set, which every decision evaluates beside its slices, combined as one set (a slice
//! holds only its own policies: nothing is copied per placeholder or principal).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use cedar_policy::{Authorizer, PolicyId, PolicySet};
use excalibur_core::audit::glob_match;
use excalibur_core::hosts::HostPattern;

use excalibur_core::api::{CreateTranslationRule, Provider, TranslationRule};

use crate::{Policy, PolicyError, PolicyInput, resource_entity, uid, validate_operator_policy};

/// Numbers compiled policies, so subjects can tell one policy's answers from another's.
static GENERATION: AtomicU64 = AtomicU64::new(1);

/// Conservative: any mention of `time` (`context.time`, `context["time"]`,
/// `context has time`) may make an answer depend on the clock.
pub(crate) fn reads_the_clock(text: &str) -> bool {
    text.contains("time")
}

pub(crate) fn compile(
    input: PolicyInput<'_>,
    previous: Option<&Policy>,
) -> Result<Policy, PolicyError> {
    let mut parser = Parser {
        text: String::new(),
        previous: previous.map(|p| &p.parsed),
        parsed: HashMap::new(),
    };
    let mut problems = Vec::new();

    let (connect_global, redeem_global) = global_sets(&mut parser, &input, &mut problems)?;

    let connect_by_principal = connect_slices(&mut parser, input.egress, |principal, hosts| {
        (
            format!("egress:{principal}"),
            format!(
                "permit (principal == Workload::{principal:?}, action == Action::\"connect\", resource)\nwhen {{ {hosts} }};"
            ),
        )
    })?;
    let connect_by_namespace = connect_slices(
        &mut parser,
        input.namespaces,
        |namespace, hosts| {
            (
                format!("namespace:{namespace}:egress"),
                format!(
                    "permit (principal, action == Action::\"connect\", resource)\nwhen {{ principal.namespace == {namespace:?} && ({hosts}) }};"
                ),
            )
        },
    )?;

    let mut providers = Vec::new();
    let mut provider_forbid = HashMap::new();
    for p in input.providers {
        let (hosts, set) = provider_slice(&mut parser, p)?;
        provider_forbid.insert(p.id.clone(), set);
        providers.push((p.id.clone(), hosts));
    }

    let rules = RuleIndex::build(&mut parser, input.rules)?;
    let mut redeem_by_placeholder = HashMap::new();
    let mut placeholder_provider = HashMap::new();
    let mut placeholder_entities = HashMap::new();
    for (name, provider) in input.placeholders {
        let entity_uid = uid("Placeholder", name);
        placeholder_entities.insert(
            name.clone(),
            resource_entity(
                &entity_uid,
                &[("name", name), ("provider", provider)],
                &[provider.as_str()],
            ),
        );
        let set = rules.slice(name)?;
        if !set.is_empty() {
            redeem_by_placeholder.insert(name.clone(), set);
        }
        placeholder_provider.insert(name.clone(), provider.clone());
    }

    let passthrough = input
        .providers
        .iter()
        .filter(|p| p.passthrough)
        .flat_map(|p| p.hosts.iter().filter_map(|h| HostPattern::parse(h).ok()))
        .collect();

    Ok(Policy {
        authorizer: Authorizer::new(),
        connect: uid("Action", "connect"),
        redeem: uid("Action", "redeem"),
        connect_global,
        connect_by_principal,
        connect_by_namespace,
        redeem_global,
        redeem_by_provider: provider_forbid,
        redeem_by_placeholder,
        providers,
        placeholder_provider,
        placeholder_entities,
        passthrough,
        body_rules: rules.body,
        cedar_text: parser.text,
        parsed: parser.parsed,
        problems,
        generation: GENERATION.fetch_add(1, Ordering::Relaxed),
        memoize: !input
            .operator
            .iter()
            .any(|p| reads_the_clock(&p.policy.policy)),
    })
}

/// The sets every decision evaluates: the builtins (allowed ports for `connect`,
/// scopes for `redeem`) and each operator policy that validates (the others are left
/// out, each with a line in `problems`).
fn global_sets(
    parser: &mut Parser<'_>,
    input: &PolicyInput<'_>,
    problems: &mut Vec<String>,
) -> Result<(PolicySet, PolicySet), PolicyError> {
    let ports: Vec<String> = input
        .allowed_ports
        .iter()
        .map(ToString::to_string)
        .collect();
    let ports_policy = parser.parse(
        "builtin:allowed_ports",
        &format!(
            "forbid (principal, action == Action::\"connect\", resource)\nunless {{ [{}].contains(context.port) }};",
            ports.join(", ")
        ),
    )?;

    // A scoped bearer redeems only its providers' placeholders and mappings.
    let scopes_policy = parser.parse(
        "builtin:scopes",
        "forbid (principal, action == Action::\"redeem\", resource)\nwhen { principal.scoped && !principal.scopes.contains(resource.provider) };",
    )?;

    let mut operator = Vec::new();
    for rec in input.operator {
        let (id, src) = (&rec.policy.id, &rec.policy.policy);
        match validate_operator_policy(id, src) {
            Ok(()) => operator.push(parser.parse(id, src)?),
            Err(e) => problems.push(format!("operator policy `{id}` left out: {e}")),
        }
    }

    let mut connect_global = PolicySet::new();
    add(&mut connect_global, &ports_policy)?;
    let mut redeem_global = PolicySet::new();
    add(&mut redeem_global, &scopes_policy)?;
    for p in &operator {
        add(&mut connect_global, p)?;
        add(&mut redeem_global, p)?;
    }
    Ok((connect_global, redeem_global))
}

/// One connect slice per entry of `lists` that has hosts; `source(key, condition on
/// the hosts)` gives its policy's id and text.
fn connect_slices(
    parser: &mut Parser<'_>,
    lists: &[(String, Vec<HostPattern>)],
    source: impl Fn(&str, &str) -> (String, String),
) -> Result<HashMap<String, PolicySet>, PolicyError> {
    let mut out = HashMap::new();
    for (key, domains) in lists {
        if domains.is_empty() {
            continue;
        }
        let (id, src) = source(key, &hosts_condition("resource.name", domains));
        let mut set = PolicySet::new();
        add(&mut set, &parser.parse(&id, &src)?)?;
        out.insert(key.clone(), set);
    }
    Ok(out)
}

/// A provider's host list and its forbids (redeeming outside its hosts; over a
/// cleartext leg unless it opted in), the slice its placeholders share.
fn provider_slice(
    parser: &mut Parser<'_>,
    p: &Provider,
) -> Result<(Vec<HostPattern>, PolicySet), PolicyError> {
    let hosts: Vec<HostPattern> = p
        .hosts
        .iter()
        .filter_map(|h| HostPattern::parse(h).ok())
        .collect();
    let condition = if hosts.is_empty() {
        "false".to_owned()
    } else {
        hosts_condition("context.host", &hosts)
    };
    let src = format!(
        "forbid (principal, action == Action::\"redeem\", resource in Provider::{:?})\nunless {{ {condition} }};",
        p.id
    );
    let mut forbids = vec![parser.parse(&format!("provider:{}:hosts", p.id), &src)?];
    // A secret never crosses a cleartext leg unless the operator opted in, loudly.
    if !p.dangerous_allow_plaintext {
        let src = format!(
            "forbid (principal, action == Action::\"redeem\", resource in Provider::{:?})\nwhen {{ context.scheme != \"https\" }};",
            p.id
        );
        forbids.push(parser.parse(&format!("provider:{}:tls", p.id), &src)?);
    }
    let mut set = PolicySet::new();
    for forbid in &forbids {
        add(&mut set, forbid)?;
    }
    Ok((hosts, set))
}

/// The translation rules as Cedar permits, indexed for slicing: rules naming one
/// placeholder are found by name; only glob rules are matched against every
/// placeholder (the build stays linear in the usual case).
struct RuleIndex {
    globs: Vec<(String, cedar_policy::Policy)>,
    exact: HashMap<String, Vec<cedar_policy::Policy>>,
    /// The ids of rules that substitute in bodies.
    body: HashSet<String>,
}

impl RuleIndex {
    fn build(parser: &mut Parser<'_>, rules: &[TranslationRule]) -> Result<Self, PolicyError> {
        let mut index = Self {
            globs: Vec::new(),
            exact: HashMap::new(),
            body: HashSet::new(),
        };
        for r in rules {
            let id = r.id.to_string();
            if r.rule.substitute_body {
                index.body.insert(id.clone());
            }
            let policy = parser.parse(&id, &rule_source(&r.rule))?;
            if r.rule.placeholder.contains('*') {
                index.globs.push((r.rule.placeholder.clone(), policy));
            } else {
                index
                    .exact
                    .entry(r.rule.placeholder.clone())
                    .or_default()
                    .push(policy);
            }
        }
        Ok(index)
    }

    /// The rules that can name placeholder `name`.
    fn slice(&self, name: &str) -> Result<PolicySet, PolicyError> {
        let mut set = PolicySet::new();
        for policy in self.exact.get(name).into_iter().flatten() {
            add(&mut set, policy)?;
        }
        for (glob, policy) in &self.globs {
            if glob_match(glob, name) {
                add(&mut set, policy)?;
            }
        }
        Ok(set)
    }
}

/// One translation rule as a Cedar `permit` on `redeem`.
fn rule_source(rule: &CreateTranslationRule) -> String {
    let hosts: Vec<HostPattern> = rule
        .hosts
        .iter()
        .filter_map(|h| HostPattern::parse(h).ok())
        .collect();
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
        format!("({})", hosts_condition("context.host", &hosts))
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

/// Parses policies, reusing what the previous compile parsed from the same id and
/// text: a write re-parses only the policies it changed, not every rule's.
struct Parser<'p> {
    /// Every policy's text, for operators to read.
    text: String,
    previous: Option<&'p HashMap<String, cedar_policy::Policy>>,
    /// What this compile used, for the next one.
    parsed: HashMap<String, cedar_policy::Policy>,
}

impl Parser<'_> {
    fn parse(&mut self, id: &str, src: &str) -> Result<cedar_policy::Policy, PolicyError> {
        self.text.push_str(&format!("// {id}\n{src}\n\n"));
        let key = format!("{id}\u{0}{src}");
        let policy = match self.previous.and_then(|m| m.get(&key)) {
            Some(p) => p.clone(),
            None => cedar_policy::Policy::parse(Some(PolicyId::new(id)), src)
                .map_err(|e| PolicyError::Parse(format!("{id}: {e}")))?,
        };
        self.parsed.insert(key, policy.clone());
        Ok(policy)
    }
}

fn add(set: &mut PolicySet, policy: &cedar_policy::Policy) -> Result<(), PolicyError> {
    set.add(policy.clone())
        .map_err(|e| PolicyError::Parse(e.to_string()))
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
