//! Excalibur's decision stage: may this principal `connect` to this host, and may it
//! `redeem` this placeholder toward this host, path and method?
//!
//! **Owns:** the Cedar schema; operator objects (translation rules, service-credential
//! egress lists, provider host bindings, allowed ports) as native checks, each equal to
//! the Cedar policy it renders ([`Policy::cedar_text`]); validating operator policies,
//! which Cedar evaluates beside them; [`Policy::apply`], a change that shares all it does
//! not touch; [`Permit`] (the only capability that lets a real value onto the wire).
//!
//! **Never:** allows by default; lets anything but this crate build a [`Permit`];
//! permits a placeholder toward a host outside its provider's hosts (a `forbid` wins
//! over any permit); parses policy text on the request path.
//!
//! **Start at:** [`Policy::compile`], [`Policy::decide_egress`], [`Policy::decide_redeem`].

use std::collections::{HashMap, HashSet};
use std::str::FromStr as _;
use std::sync::Arc;

use cedar_policy::{
    Authorizer, Context, Decision, Entities, Entity, EntityId, EntityTypeName, EntityUid, PolicyId,
    PolicySet, Request, RestrictedExpression, Schema, ValidationMode, Validator,
};
use excalibur_core::api::{PolicyRecord, Provider, TranslationRule};
use excalibur_core::hosts::HostPattern;
use excalibur_core::principal::Principal;

mod compile;
mod memo;
mod native;

/// The Cedar schema (Cedar schema syntax).
pub const SCHEMA: &str = include_str!("schema.cedarschema");

/// Policy-id prefixes reserved for compiled policies.
pub const RESERVED_PREFIXES: &[&str] = &["egress:", "namespace:", "provider:", "builtin:", "rule_"];

/// A denial: a value, not an error. `reason` is the machine code in the audit event and
/// the proxy's reason header; `policies` names what decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deny {
    /// Reason code, e.g. `egress_not_allowed`.
    pub reason: &'static str,
    /// Human detail (no secrets).
    pub detail: String,
    /// Ids of the deciding policies (empty for the default deny).
    pub policies: Vec<String>,
}

/// Permission to put the named placeholders' real values on the wire toward one host.
/// Only [`Policy::decide_redeem`] builds one.
#[derive(Debug, Clone)]
pub struct Permit {
    host: String,
    placeholders: Vec<String>,
    body: bool,
    rules: Vec<String>,
}

impl Permit {
    /// The host the permit is for.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// True when `name` may be substituted.
    pub fn allows(&self, name: &str) -> bool {
        self.placeholders.iter().any(|p| p == name)
    }

    /// The permitted placeholder names.
    pub fn placeholders(&self) -> &[String] {
        &self.placeholders
    }

    /// True when a deciding rule opted in to body substitution.
    pub fn substitute_body(&self) -> bool {
        self.body
    }

    /// Ids of the policies that allowed it.
    pub fn rules(&self) -> &[String] {
        &self.rules
    }
}

/// A principal as Cedar sees it, built once per connection (or request) and reused for
/// every decision about it, so decisions do not rebuild its entity.
#[derive(Debug, Clone)]
pub struct Subject {
    human: bool,
    /// The providers a scoped bearer may redeem toward (empty: unscoped).
    scopes: Arc<[String]>,
    /// The principal, for its Cedar entity.
    principal: Principal,
    /// Its Cedar uid and entity, built the first time an operator policy is evaluated
    /// for it (the native checks do not need them).
    cedar: std::sync::OnceLock<(EntityUid, Entity)>,
    /// Its redeem decisions, while the policy that made them is in force.
    memo: memo::Memo,
}

impl Subject {
    /// The subject of `principal`'s decisions (its Cedar entity, `Workload` or `Human`,
    /// is built when first needed).
    pub fn new(principal: &Principal) -> Self {
        Self {
            human: principal.kind.is_human(),
            scopes: Arc::clone(&principal.scopes),
            principal: principal.clone(),
            cedar: std::sync::OnceLock::new(),
            memo: memo::Memo::default(),
        }
    }

    /// Its Cedar uid and entity.
    fn cedar(&self) -> &(EntityUid, Entity) {
        self.cedar.get_or_init(|| {
            (
                principal_uid(&self.principal),
                principal_entity(&self.principal),
            )
        })
    }

    /// The principal id.
    pub fn id(&self) -> &str {
        &self.principal.id
    }

    /// The principal it is the subject of.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }
}

/// What a redemption is for.
#[derive(Debug, Clone, Copy)]
pub struct RedeemTarget<'a> {
    /// Lowercased host, no port.
    pub host: &'a str,
    /// Request path (no query).
    pub path: &'a str,
    /// Method.
    pub method: &'a str,
    /// `https` when the upstream leg is TLS, else `http`: a secret never leaves in clear
    /// unless its provider says `dangerous_allow_plaintext`.
    pub scheme: &'a str,
    /// The upstream's port.
    pub port: u16,
}

impl<'a> RedeemTarget<'a> {
    /// A redemption over TLS to port 443 (tests, dry runs).
    pub fn tls(host: &'a str, path: &'a str, method: &'a str) -> Self {
        Self {
            host,
            path,
            method,
            scheme: "https",
            port: 443,
        }
    }
}

/// Everything compiled into a [`Policy`].
#[derive(Debug, Clone, Copy)]
pub struct PolicyInput<'a> {
    /// Translation rules.
    pub rules: &'a [TranslationRule],
    /// Providers and their hosts.
    pub providers: &'a [Provider],
    /// `(placeholder name, provider id)`.
    pub placeholders: &'a [(String, String)],
    /// `(principal id, allowed domains)` of service credentials.
    pub egress: &'a [(String, Vec<HostPattern>)],
    /// `(namespace, allowed domains)`: egress for every workload in the namespace.
    pub namespaces: &'a [(String, Vec<HostPattern>)],
    /// Operator policies.
    pub operator: &'a [PolicyRecord],
    /// Ports any principal may reach.
    pub allowed_ports: &'a [u16],
}

/// An operator policy was rejected.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The text is not one Cedar policy.
    #[error("the policy does not parse: {0}")]
    Parse(String),
    /// The policy does not type-check against the schema.
    #[error("the policy fails schema validation: {0}")]
    Invalid(String),
    /// The id is reserved or malformed.
    #[error(
        "policy id `{0}` is invalid or uses a reserved prefix (egress:, provider:, builtin:, rule_)"
    )]
    Id(String),
}

/// The compiled decision set. Translation rules, egress lists and provider bindings are
/// plain data checked natively ([`native`]), each exactly as the Cedar policy
/// [`Policy::cedar_text`] renders for it; operator policies are evaluated by Cedar beside
/// them, and the answers combined as one Cedar policy set would combine them
/// ([`combine`]). Every map is persistent: [`Policy::apply`] shares all it does not
/// change with the policy before it.
#[derive(Debug, Clone)]
pub struct Policy {
    authorizer: Arc<Authorizer>,
    connect: EntityUid,
    redeem: EntityUid,
    operator: Arc<Operator>,
    ports: Arc<[u16]>,
    /// Service credentials' and devices' allowed domains, by principal id.
    egress: imbl::HashMap<String, Arc<[HostPattern]>>,
    /// Namespaces' (and SSH routes') allowed domains.
    namespaces: imbl::HashMap<String, Arc<[HostPattern]>>,
    providers: imbl::HashMap<String, Arc<native::Binding>>,
    /// Provider ids by host pattern (a host's providers, in a few lookups).
    provider_hosts: native::HostIndex,
    /// The same, for passthrough providers only.
    passthrough: native::HostIndex,
    /// Placeholder names (and crypto mapping ids) to their provider ids.
    placeholders: imbl::HashMap<String, String>,
    rules: native::RuleIndex,
    /// Unique per compile or change: the key under which subjects memoize answers.
    generation: u64,
}

/// Operator policies, as Cedar evaluates them.
#[derive(Debug, Default)]
struct Operator {
    set: PolicySet,
    /// `(id, text)` of each one that validated, in order.
    texts: Vec<(String, String)>,
    problems: Vec<String>,
    /// False when one may read the clock: every redemption is evaluated.
    memoize: bool,
}

/// One change to a compiled [`Policy`] ([`Policy::apply`]).
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    /// A placeholder (or mapping id) bound to a provider, added or re-bound.
    Bind {
        /// The name.
        name: &'a str,
        /// Its provider id.
        provider: &'a str,
    },
    /// A placeholder removed.
    Unbind(&'a str),
    /// A translation rule added or replaced (by id).
    Rule(&'a TranslationRule),
    /// A translation rule removed (by id).
    RemoveRule(&'a str),
    /// A principal's allowed domains set (empty: removed).
    Egress {
        /// The principal id.
        principal: &'a str,
        /// Its allowed domains.
        hosts: &'a [HostPattern],
    },
    /// A provider added or replaced.
    Provider(&'a Provider),
    /// A provider removed (by id).
    RemoveProvider(&'a str),
}

/// The schema, parsed. Errors only if the embedded schema is broken (a test guards it).
pub fn schema() -> Result<Schema, PolicyError> {
    Schema::from_cedarschema_str(SCHEMA)
        .map(|(s, _)| s)
        .map_err(|e| PolicyError::Invalid(e.to_string()))
}

/// Checks an operator policy: a valid id, exactly one Cedar policy, and no type error
/// against the schema (strict mode). A policy with a type error is rejected with the
/// validator's message, never silently skipped.
pub fn validate_operator_policy(id: &str, text: &str) -> Result<(), PolicyError> {
    let id_ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        && !RESERVED_PREFIXES.iter().any(|p| id.starts_with(p));
    if !id_ok {
        return Err(PolicyError::Id(id.to_owned()));
    }
    let policy = cedar_policy::Policy::parse(Some(PolicyId::new(id)), text)
        .map_err(|e| PolicyError::Parse(render(&e)))?;
    let mut set = PolicySet::new();
    set.add(policy)
        .map_err(|e| PolicyError::Parse(e.to_string()))?;
    let result = Validator::new(schema()?).validate(&set, ValidationMode::Strict);
    if !result.validation_passed() {
        let messages: Vec<String> = result
            .validation_errors()
            .map(ToString::to_string)
            .collect();
        return Err(PolicyError::Invalid(messages.join("; ")));
    }
    Ok(())
}

fn render(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

impl Policy {
    /// Compiles operator objects and operator policies. An operator policy that no
    /// longer validates is left out and reported by [`Policy::problems`].
    pub fn compile(input: PolicyInput<'_>) -> Result<Self, PolicyError> {
        compile::compile(input)
    }

    /// An empty policy: everything is denied.
    pub fn deny_all() -> Result<Self, PolicyError> {
        Self::compile(PolicyInput {
            rules: &[],
            providers: &[],
            placeholders: &[],
            egress: &[],
            namespaces: &[],
            operator: &[],
            allowed_ports: &[443],
        })
    }

    /// This policy with `changes` made, sharing everything else (a new generation:
    /// memoized answers of the old one are not reused).
    #[must_use]
    pub fn apply<'a>(&self, changes: impl IntoIterator<Item = Change<'a>>) -> Self {
        let mut next = self.clone();
        for change in changes {
            next.change(change);
        }
        next.generation = compile::next_generation();
        next
    }

    /// The compiled Cedar text of every policy, in a stable order (for review): what
    /// the decisions evaluate, natively or by Cedar.
    pub fn cedar_text(&self) -> String {
        compile::render(self)
    }

    /// Operator policies left out of this compilation, with why.
    pub fn problems(&self) -> &[String] {
        &self.operator.problems
    }

    /// The provider a placeholder (or crypto mapping id) belongs to.
    pub fn provider_of(&self, name: &str) -> Option<&str> {
        self.placeholders.get(name).map(String::as_str)
    }

    /// The ids of the providers that list `host`.
    pub fn providers_toward(&self, host: &str) -> Vec<&str> {
        self.provider_hosts.lookup(host)
    }

    /// True when `host` belongs to a passthrough provider (tunnelled, never intercepted).
    pub fn is_passthrough(&self, host: &str) -> bool {
        !self.passthrough.lookup(host).is_empty()
    }

    /// May `principal` open a connection to `host:port`? Default deny. On allow,
    /// returns the ids of the determining policies.
    pub fn decide_egress(
        &self,
        principal: &Subject,
        host: &str,
        port: u16,
    ) -> Result<Vec<String>, Deny> {
        let mut forbids = Vec::new();
        let mut permits = Vec::new();
        if !self.ports.contains(&port) {
            forbids.push("builtin:allowed_ports".to_owned());
        }
        let reaches = |hosts: Option<&Arc<[HostPattern]>>| {
            hosts.is_some_and(|list| list.iter().any(|h| native::host_matches(h, host)))
        };
        // `principal == Workload::"<id>"`: a human never matches a workload's list.
        if !principal.human && reaches(self.egress.get(principal.id())) {
            permits.push(format!("egress:{}", principal.id()));
        }
        if reaches(self.namespaces.get(&principal.principal.namespace)) {
            permits.push(format!(
                "namespace:{}:egress",
                principal.principal.namespace
            ));
        }
        let operator = (!self.operator.set.is_empty()).then(|| {
            let parents = self.provider_hosts.lookup(host);
            let resource = uid("Host", host);
            let entities = self.entities(
                principal,
                resource_entity(&resource, &[("name", host)], &parents),
            );
            let context = [
                ("port", RestrictedExpression::new_long(i64::from(port))),
                ("sni", RestrictedExpression::new_string(host.to_owned())),
                ("time", RestrictedExpression::new_long(now())),
            ];
            self.authorize(principal, &self.connect, resource, context, &entities)
        });
        match combine(forbids, permits, operator) {
            (Decision::Allow, policies) => Ok(policies),
            (Decision::Deny, policies) => Err(Deny {
                reason: deny_reason(&policies, "egress_not_allowed"),
                detail: format!("`{}` may not reach `{host}:{port}`", principal.id()),
                policies,
            }),
        }
    }

    /// May `principal` redeem every placeholder in `found` toward `target`? All or
    /// nothing: one denied placeholder denies the request.
    pub fn decide_redeem(
        &self,
        principal: &Subject,
        target: RedeemTarget<'_>,
        found: &[String],
    ) -> Result<Permit, Deny> {
        let mut permit = Permit {
            host: target.host.to_owned(),
            placeholders: Vec::new(),
            body: false,
            rules: Vec::new(),
        };
        for name in found {
            match self.redeem_one(principal, &target, name) {
                memo::Outcome::Allow { body, policies } => {
                    permit.body |= body;
                    for p in policies {
                        if !permit.rules.contains(&p) {
                            permit.rules.push(p);
                        }
                    }
                    permit.placeholders.push(name.clone());
                }
                memo::Outcome::Deny(deny) => return Err(deny),
            }
        }
        Ok(permit)
    }

    /// One placeholder's redeem decision: the subject's memo when it has this answer
    /// under this policy, else Cedar's (and the memo keeps it).
    fn redeem_one(
        &self,
        principal: &Subject,
        target: &RedeemTarget<'_>,
        name: &str,
    ) -> memo::Outcome {
        let memoize = self.operator.memoize;
        if memoize && let Some(known) = principal.memo.get(self.generation, name, target) {
            return known;
        }
        let outcome = self.evaluate_redeem(principal, target, name);
        if memoize {
            principal.memo.put(self.generation, name, target, &outcome);
        }
        outcome
    }

    fn evaluate_redeem(
        &self,
        principal: &Subject,
        target: &RedeemTarget<'_>,
        name: &str,
    ) -> memo::Outcome {
        let provider = self
            .placeholders
            .get(name)
            .map(String::as_str)
            .unwrap_or_default();
        let mut forbids = Vec::new();
        // A scoped bearer redeems only its providers' placeholders and mappings.
        if !principal.scopes.is_empty() && !principal.scopes.iter().any(|s| s == provider) {
            forbids.push("builtin:scopes".to_owned());
        }
        if let Some(binding) = self.providers.get(provider) {
            binding.forbids(target, &mut forbids);
        }
        let permits: Vec<String> = self
            .rules
            .candidates(name)
            .filter(|r| r.permits(principal.id(), name, target))
            .map(|r| r.id.clone())
            .collect();
        let operator = (!self.operator.set.is_empty())
            .then(|| self.authorize_redeem(principal, target, name, provider));
        match combine(forbids, permits, operator) {
            // Only a translation rule opts in to bodies, not an operator permit.
            (Decision::Allow, policies) => memo::Outcome::Allow {
                body: policies.iter().any(|p| self.rules.substitutes_body(p)),
                policies,
            },
            (Decision::Deny, policies) => {
                let reason = if provider.is_empty() {
                    "placeholder_host_not_bound"
                } else {
                    deny_reason(&policies, "no_translation_rule")
                };
                let detail = match reason {
                    "placeholder_host_not_bound" => {
                        format!("`{name}` is not bound to `{}` by its provider", target.host)
                    }
                    "no_translation_rule" => format!(
                        "no translation rule lets `{}` redeem `{name}` for {} {}{}",
                        principal.id(),
                        target.method,
                        target.host,
                        target.path
                    ),
                    _ => format!(
                        "a policy forbids `{}` to redeem `{name}` toward `{}`",
                        principal.id(),
                        target.host
                    ),
                };
                memo::Outcome::Deny(Deny {
                    reason,
                    detail,
                    policies,
                })
            }
        }
    }

    /// The operator policies' answer to a redemption.
    fn authorize_redeem(
        &self,
        principal: &Subject,
        target: &RedeemTarget<'_>,
        name: &str,
        provider: &str,
    ) -> cedar_policy::Response {
        let resource = uid("Placeholder", name);
        let parents: &[&str] = if provider.is_empty() {
            &[]
        } else {
            &[provider]
        };
        let entity = resource_entity(
            &resource,
            &[("name", name), ("provider", provider)],
            parents,
        );
        let entities = self.entities(principal, entity);
        let context = [
            (
                "host",
                RestrictedExpression::new_string(target.host.to_owned()),
            ),
            (
                "path",
                RestrictedExpression::new_string(target.path.to_owned()),
            ),
            (
                "method",
                RestrictedExpression::new_string(target.method.to_owned()),
            ),
            (
                "scheme",
                RestrictedExpression::new_string(target.scheme.to_owned()),
            ),
            (
                "port",
                RestrictedExpression::new_long(i64::from(target.port)),
            ),
            ("time", RestrictedExpression::new_long(now())),
        ];
        self.authorize(principal, &self.redeem, resource, context, &entities)
    }

    fn entities(&self, principal: &Subject, resource: Entity) -> Entities {
        Entities::from_entities([principal.cedar().1.clone(), resource], None)
            .unwrap_or_else(|_| Entities::empty())
    }

    /// The operator policies' answer (an invalid request is denied by a builtin).
    fn authorize<const N: usize>(
        &self,
        principal: &Subject,
        action: &EntityUid,
        resource: EntityUid,
        context: [(&str, RestrictedExpression); N],
        entities: &Entities,
    ) -> cedar_policy::Response {
        self.authorize_with(
            &self.operator.set,
            principal,
            action,
            resource,
            context,
            entities,
        )
    }

    fn authorize_with<const N: usize>(
        &self,
        set: &PolicySet,
        principal: &Subject,
        action: &EntityUid,
        resource: EntityUid,
        context: [(&str, RestrictedExpression); N],
        entities: &Entities,
    ) -> cedar_policy::Response {
        let invalid = |id: &str| {
            cedar_policy::Response::new(
                Decision::Deny,
                std::iter::once(PolicyId::new(id)).collect(),
                Vec::new(),
            )
        };
        let Ok(context) = Context::from_pairs(context.into_iter().map(|(k, v)| (k.to_owned(), v)))
        else {
            return invalid("builtin:invalid_context");
        };
        let Ok(request) = Request::new(
            principal.cedar().0.clone(),
            action.clone(),
            resource,
            context,
            None,
        ) else {
            return invalid("builtin:invalid_request");
        };
        self.authorizer.is_authorized(&request, set, entities)
    }
}

#[cfg(test)]
impl Policy {
    /// The reference a native decision must equal: every policy of
    /// [`Policy::cedar_text`] in one Cedar set, evaluated by Cedar alone.
    fn cedar_reference(mut self) -> Self {
        let whole =
            PolicySet::from_policies(compile::policies(&self).into_iter().map(|(id, src)| {
                cedar_policy::Policy::parse(Some(PolicyId::new(&id)), &src)
                    .expect("rendered text parses")
            }))
            .expect("unique ids");
        self.operator = Arc::new(Operator {
            set: whole,
            texts: Vec::new(),
            problems: Vec::new(),
            memoize: false,
        });
        self.ports = (0..=u16::MAX).collect();
        self.egress = imbl::HashMap::new();
        self.namespaces = imbl::HashMap::new();
        self.providers = imbl::HashMap::new();
        self.rules = self.rules.without_candidates();
        self
    }
}

/// The answer of one Cedar policy set holding the natively checked policies (the
/// satisfied `forbids` and `permits`, by id) and the operator policies that gave
/// `operator`. Cedar denies when any forbid is satisfied (its reasons are those
/// forbids); else it allows when any permit is satisfied (its reasons are those
/// permits); else it denies with no reason. The operator set's own response tells
/// which: a deny with reasons names satisfied forbids, an allow names satisfied permits.
fn combine(
    mut forbids: Vec<String>,
    mut permits: Vec<String>,
    operator: Option<cedar_policy::Response>,
) -> (Decision, Vec<String>) {
    if let Some(response) = operator {
        let reasons = response.diagnostics().reason().map(ToString::to_string);
        match response.decision() {
            Decision::Deny => forbids.extend(reasons),
            Decision::Allow => permits.extend(reasons),
        }
    }
    let (decision, mut policies) = if forbids.is_empty() && !permits.is_empty() {
        (Decision::Allow, permits)
    } else {
        (Decision::Deny, forbids)
    };
    policies.sort();
    policies.dedup();
    (decision, policies)
}

fn deny_reason(policies: &[String], default: &'static str) -> &'static str {
    if policies.iter().any(|p| p == "builtin:allowed_ports") {
        "port_not_allowed"
    } else if policies.iter().any(|p| p == "builtin:scopes") {
        "scope_not_granted"
    } else if policies
        .iter()
        .any(|p| p.starts_with("provider:") && p.ends_with(":tls"))
    {
        "plaintext_upstream"
    } else if policies.iter().any(|p| p.starts_with("provider:")) {
        "placeholder_host_not_bound"
    } else if policies.is_empty() {
        default
    } else {
        "forbidden_by_policy"
    }
}

fn now() -> i64 {
    excalibur_core::time::Timestamp::now().millis() / 1000
}

/// The schema's entity type names, parsed once (a redemption builds several uids).
static TYPE_NAMES: std::sync::LazyLock<HashMap<&'static str, EntityTypeName>> =
    std::sync::LazyLock::new(|| {
        [
            "Action",
            "Host",
            "Placeholder",
            "Provider",
            "Human",
            "Workload",
        ]
        .into_iter()
        .filter_map(|k| Some((k, EntityTypeName::from_str(k).ok()?)))
        .collect()
    });

fn uid(kind: &str, id: &str) -> EntityUid {
    let ty = match TYPE_NAMES.get(kind) {
        Some(ty) => ty.clone(),
        // INVARIANT: the type names used here are fixed identifiers from our schema.
        #[expect(
            clippy::expect_used,
            reason = "constant entity type names always parse"
        )]
        None => EntityTypeName::from_str(kind).expect("valid entity type name"),
    };
    EntityUid::from_type_name_and_id(ty, EntityId::new(id))
}

fn principal_uid(p: &Principal) -> EntityUid {
    uid(
        if p.kind.is_human() {
            "Human"
        } else {
            "Workload"
        },
        &p.id,
    )
}

fn principal_entity(p: &Principal) -> Entity {
    let strings = |v: &[String]| {
        RestrictedExpression::new_set(
            v.iter()
                .map(|s| RestrictedExpression::new_string(s.clone())),
        )
    };
    let mut attrs = HashMap::from([
        (
            "id".to_owned(),
            RestrictedExpression::new_string(p.id.clone()),
        ),
        (
            "kind".to_owned(),
            RestrictedExpression::new_string(p.kind.as_str().to_owned()),
        ),
        (
            "user".to_owned(),
            RestrictedExpression::new_string(p.user.clone()),
        ),
        (
            "namespace".to_owned(),
            RestrictedExpression::new_string(p.namespace.clone()),
        ),
        ("groups".to_owned(), strings(&p.groups)),
        (
            "attestation".to_owned(),
            RestrictedExpression::new_string(p.attestation.clone()),
        ),
        (
            "source".to_owned(),
            RestrictedExpression::new_ip(p.source.to_string()),
        ),
    ]);
    if p.kind.is_human() {
        attrs.insert("factors_completed".to_owned(), strings(&p.factors));
    }
    attrs.insert(
        "actor".to_owned(),
        RestrictedExpression::new_string(p.actor.clone().unwrap_or_default()),
    );
    attrs.insert(
        "scoped".to_owned(),
        RestrictedExpression::new_bool(!p.scopes.is_empty()),
    );
    attrs.insert("scopes".to_owned(), strings(&p.scopes));
    let tags = p
        .tags
        .iter()
        .map(|(k, v)| (k.clone(), RestrictedExpression::new_string(v.clone())));
    let uid = principal_uid(p);
    Entity::new_with_tags(uid.clone(), attrs, HashSet::new(), tags)
        .unwrap_or_else(|_| Entity::new_no_attrs(uid, HashSet::new()))
}

pub(crate) fn resource_entity(uid: &EntityUid, attrs: &[(&str, &str)], parents: &[&str]) -> Entity {
    let attrs: HashMap<String, RestrictedExpression> = attrs
        .iter()
        .map(|(k, v)| {
            (
                (*k).to_owned(),
                RestrictedExpression::new_string((*v).to_owned()),
            )
        })
        .collect();
    let parents: HashSet<EntityUid> = parents.iter().map(|p| uid_provider(p)).collect();
    Entity::new(uid.clone(), attrs, parents.clone())
        .unwrap_or_else(|_| Entity::new_no_attrs(uid.clone(), parents))
}

fn uid_provider(id: &str) -> EntityUid {
    uid("Provider", id)
}

#[cfg(test)]
mod tests;
