//! Excalibur's decision stage: may this principal reach this authority, and may it
//! redeem these placeholders toward this host, path and method?
//!
//! **Owns:** the compiled rule set ([`Policy`]), [`Permit`] (the only capability that
//! lets a real value onto the wire), deny reasons.
//!
//! **Never:** allows by default; lets anything but this crate build a [`Permit`];
//! permits a placeholder toward a host outside its provider's hosts, whatever a rule says.
//!
//! **Start at:** [`Policy::compile`], [`Policy::decide_egress`], [`Policy::decide_redeem`].

use std::collections::HashMap;

use excalibur_core::api::{Provider, TranslationRule};
use excalibur_core::audit::glob_match;
use excalibur_core::hosts::HostPattern;
use excalibur_core::principal::Principal;

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

    /// Ids of the rules that allowed it.
    pub fn rules(&self) -> &[String] {
        &self.rules
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
}

#[derive(Debug, Clone)]
struct CompiledRule {
    id: String,
    principal: String,
    placeholder: String,
    hosts: Vec<HostPattern>,
    path_prefix: String,
    methods: Vec<String>,
    body: bool,
}

/// The compiled decision set, built once per snapshot; decisions do no parsing.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    rules: Vec<CompiledRule>,
    provider_hosts: HashMap<String, Vec<HostPattern>>,
    placeholder_provider: HashMap<String, String>,
    passthrough: Vec<HostPattern>,
    allowed_ports: Vec<u16>,
}

impl Policy {
    /// Compiles rules, providers and the placeholder → provider binding. Entries that do
    /// not parse are skipped (the API validated them on write).
    pub fn compile(
        rules: &[TranslationRule],
        providers: &[Provider],
        placeholder_provider: impl IntoIterator<Item = (String, String)>,
        allowed_ports: Vec<u16>,
    ) -> Self {
        let parse = |hosts: &[String]| {
            hosts
                .iter()
                .filter_map(|h| HostPattern::parse(h).ok())
                .collect::<Vec<_>>()
        };
        Self {
            rules: rules
                .iter()
                .map(|r| CompiledRule {
                    id: r.id.to_string(),
                    principal: r.rule.principal.clone(),
                    placeholder: r.rule.placeholder.clone(),
                    hosts: parse(&r.rule.hosts),
                    path_prefix: r.rule.path_prefix.clone(),
                    methods: r.rule.methods.clone(),
                    body: r.rule.substitute_body,
                })
                .collect(),
            provider_hosts: providers.iter().map(|p| (p.id.clone(), parse(&p.hosts))).collect(),
            placeholder_provider: placeholder_provider.into_iter().collect(),
            passthrough: providers
                .iter()
                .filter(|p| p.passthrough)
                .flat_map(|p| parse(&p.hosts))
                .collect(),
            allowed_ports,
        }
    }

    /// May `principal` open a connection to `host:port`? Default deny.
    pub fn decide_egress(&self, principal: &Principal, host: &str, port: u16) -> Result<(), Deny> {
        if !self.allowed_ports.contains(&port) {
            return Err(Deny {
                reason: "port_not_allowed",
                detail: format!("port {port} is not an allowed egress port"),
                policies: vec!["builtin:allowed_ports".to_owned()],
            });
        }
        if principal.allowed_domains.iter().any(|d| d.matches(host)) {
            return Ok(());
        }
        Err(Deny {
            reason: "egress_not_allowed",
            detail: format!("`{}` may not reach `{host}`", principal.id),
            policies: Vec::new(),
        })
    }

    /// True when `host` belongs to a passthrough provider (tunnelled, never intercepted).
    pub fn is_passthrough(&self, host: &str) -> bool {
        self.passthrough.iter().any(|p| p.matches(host))
    }

    /// May `principal` redeem every placeholder in `found` toward `target`? All or
    /// nothing: one denied placeholder denies the request.
    pub fn decide_redeem(
        &self,
        principal: &Principal,
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
            let bound = self
                .placeholder_provider
                .get(name)
                .and_then(|provider| self.provider_hosts.get(provider))
                .is_some_and(|hosts| hosts.iter().any(|h| h.matches(target.host)));
            if !bound {
                return Err(Deny {
                    reason: "placeholder_host_not_bound",
                    detail: format!("`{name}` is not bound to `{}` by its provider", target.host),
                    policies: vec!["builtin:provider_hosts".to_owned()],
                });
            }
            let rule = self.rules.iter().find(|r| {
                glob_match(&r.principal, &principal.id)
                    && glob_match(&r.placeholder, name)
                    && r.hosts.iter().any(|h| h.matches(target.host))
                    && target.path.starts_with(&r.path_prefix)
                    && (r.methods.is_empty() || r.methods.iter().any(|m| m == target.method))
            });
            let Some(rule) = rule else {
                return Err(Deny {
                    reason: "no_translation_rule",
                    detail: format!(
                        "no translation rule lets `{}` redeem `{name}` for {} {}{}",
                        principal.id, target.method, target.host, target.path
                    ),
                    policies: Vec::new(),
                });
            };
            permit.placeholders.push(name.clone());
            permit.body |= rule.body;
            if !permit.rules.contains(&rule.id) {
                permit.rules.push(rule.id.clone());
            }
        }
        Ok(permit)
    }
}

#[cfg(test)]
mod tests;
