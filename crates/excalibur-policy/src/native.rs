//! The compiled objects (translation rules, egress lists, provider bindings) as plain
//! data with the checks their Cedar text states, in persistent maps: a write shares
//! everything it does not touch with the policy before it.
//!
//! Each check is the `when`/`unless` condition of the policy [`crate::Policy::cedar_text`]
//! renders for the object, evaluated without Cedar (a test holds the two equal). The
//! ids they report are those policies' ids, so audit events name the same policies.

use std::sync::Arc;

use excalibur_core::api::{CreateTranslationRule, Provider, TranslationRule};
use excalibur_core::audit::glob_match;
use excalibur_core::hosts::HostPattern;

use crate::RedeemTarget;

/// One translation rule: a `permit` on `redeem`.
#[derive(Debug)]
pub(crate) struct Rule {
    pub(crate) id: String,
    pub(crate) rule: CreateTranslationRule,
    pub(crate) hosts: Vec<HostPattern>,
}

impl Rule {
    pub(crate) fn new(r: &TranslationRule) -> Self {
        Self {
            id: r.id.to_string(),
            hosts: parse_hosts(&r.rule.hosts),
            rule: r.rule.clone(),
        }
    }

    /// True when the rule's placeholder is a glob (matched against every name).
    pub(crate) fn is_glob(&self) -> bool {
        self.rule.placeholder.contains('*')
    }

    /// Its condition: principal glob, placeholder (exact or glob), hosts (none: never),
    /// path prefix (`/`: any path), methods (none: any).
    pub(crate) fn permits(&self, principal: &str, name: &str, t: &RedeemTarget<'_>) -> bool {
        let r = &self.rule;
        (r.principal == "*" || glob_match(&r.principal, principal))
            && (if self.is_glob() {
                glob_match(&r.placeholder, name)
            } else {
                r.placeholder == name
            })
            && self.hosts.iter().any(|h| host_matches(h, t.host))
            && (r.path_prefix == "/" || t.path.starts_with(r.path_prefix.as_str()))
            && (r.methods.is_empty() || r.methods.iter().any(|m| m == t.method))
    }
}

/// A provider's binding: its placeholders are redeemed only toward its hosts, and only
/// over TLS unless it opted in to cleartext.
#[derive(Debug)]
pub(crate) struct Binding {
    pub(crate) id: String,
    pub(crate) hosts: Vec<HostPattern>,
    pub(crate) plaintext: bool,
    pub(crate) passthrough: bool,
}

impl Binding {
    pub(crate) fn new(p: &Provider) -> Self {
        Self {
            id: p.id.clone(),
            hosts: parse_hosts(&p.hosts),
            plaintext: p.dangerous_allow_plaintext,
            passthrough: p.passthrough,
        }
    }

    /// The forbids a redemption toward `t` of one of its placeholders meets.
    pub(crate) fn forbids(&self, t: &RedeemTarget<'_>, out: &mut Vec<String>) {
        if !self.hosts.iter().any(|h| host_matches(h, t.host)) {
            out.push(format!("provider:{}:hosts", self.id));
        }
        if !self.plaintext && t.scheme != "https" {
            out.push(format!("provider:{}:tls", self.id));
        }
    }
}

/// `host` matched as the rendered Cedar condition matches it: `== "h"` is exact (no case
/// folding, no trailing-dot trimming), `like "*.suffix"` any text ending in `.suffix`.
/// Never looser than Cedar: a looser match would weaken a provider's host forbid.
pub(crate) fn host_matches(pattern: &HostPattern, host: &str) -> bool {
    let p = pattern.as_str();
    match p.strip_prefix('*') {
        Some(dot_suffix) => host.ends_with(dot_suffix),
        None => host == p,
    }
}

pub(crate) fn parse_hosts(list: &[String]) -> Vec<HostPattern> {
    list.iter()
        .filter_map(|h| HostPattern::parse(h).ok())
        .collect()
}

/// Ids by host pattern, found from a host in as many lookups as it has labels (not a
/// scan of every pattern).
#[derive(Debug, Clone, Default)]
pub(crate) struct HostIndex {
    exact: imbl::HashMap<String, Arc<[String]>>,
    /// `*.suffix` patterns, by suffix.
    wild: imbl::HashMap<String, Arc<[String]>>,
}

impl HostIndex {
    fn slot(&mut self, pattern: &HostPattern) -> &mut imbl::HashMap<String, Arc<[String]>> {
        match pattern.as_str().strip_prefix("*.") {
            Some(_) => &mut self.wild,
            None => &mut self.exact,
        }
    }

    fn key(pattern: &HostPattern) -> String {
        let s = pattern.as_str();
        s.strip_prefix("*.").unwrap_or(s).to_owned()
    }

    pub(crate) fn insert(&mut self, pattern: &HostPattern, id: &str) {
        let key = Self::key(pattern);
        let map = self.slot(pattern);
        let mut ids: Vec<String> = map.get(&key).map(|v| v.to_vec()).unwrap_or_default();
        if !ids.iter().any(|i| i == id) {
            ids.push(id.to_owned());
        }
        map.insert(key, ids.into());
    }

    pub(crate) fn remove(&mut self, pattern: &HostPattern, id: &str) {
        let key = Self::key(pattern);
        let map = self.slot(pattern);
        let ids: Vec<String> = map
            .get(&key)
            .into_iter()
            .flat_map(|v| v.iter())
            .filter(|i| *i != id)
            .cloned()
            .collect();
        if ids.is_empty() {
            map.remove(&key);
        } else {
            map.insert(key, ids.into());
        }
    }

    /// The ids of every pattern matching `host` (lowercased), each once.
    pub(crate) fn lookup<'a>(&'a self, host: &str) -> Vec<&'a str> {
        let host = host.trim_end_matches('.');
        let mut out: Vec<&str> = Vec::new();
        let mut add = |ids: Option<&'a Arc<[String]>>| {
            for id in ids.into_iter().flat_map(|v| v.iter()) {
                if !out.contains(&id.as_str()) {
                    out.push(id);
                }
            }
        };
        add(self.exact.get(host));
        // `*.suffix` needs at least one character before the dot.
        for (i, b) in host.bytes().enumerate().skip(1) {
            if b == b'.'
                && let Some(suffix) = host.get(i + 1..)
            {
                add(self.wild.get(suffix));
            }
        }
        out
    }
}

/// Translation rules, found by placeholder: rules naming one placeholder by its name,
/// glob rules (few) by matching.
#[derive(Debug, Clone, Default)]
pub(crate) struct RuleIndex {
    pub(crate) by_id: imbl::HashMap<String, Arc<Rule>>,
    exact: imbl::HashMap<String, Arc<[Arc<Rule>]>>,
    globs: Arc<[Arc<Rule>]>,
}

impl RuleIndex {
    /// Adds `rule`, replacing the rule with its id.
    pub(crate) fn insert(&mut self, rule: Rule) {
        self.remove(&rule.id);
        let rule = Arc::new(rule);
        if rule.is_glob() {
            let mut globs = self.globs.to_vec();
            globs.push(Arc::clone(&rule));
            self.globs = globs.into();
        } else {
            let key = rule.rule.placeholder.clone();
            let mut list = self.exact.get(&key).map(|v| v.to_vec()).unwrap_or_default();
            list.push(Arc::clone(&rule));
            self.exact.insert(key, list.into());
        }
        self.by_id.insert(rule.id.clone(), rule);
    }

    pub(crate) fn remove(&mut self, id: &str) {
        let Some(old) = self.by_id.remove(id) else {
            return;
        };
        if old.is_glob() {
            self.globs = self.globs.iter().filter(|r| r.id != id).cloned().collect();
        } else {
            let key = &old.rule.placeholder;
            let list: Vec<Arc<Rule>> = self
                .exact
                .get(key)
                .into_iter()
                .flat_map(|v| v.iter())
                .filter(|r| r.id != id)
                .cloned()
                .collect();
            if list.is_empty() {
                self.exact.remove(key);
            } else {
                self.exact.insert(key.clone(), list.into());
            }
        }
    }

    /// True when `id` is a rule that substitutes in bodies.
    pub(crate) fn substitutes_body(&self, id: &str) -> bool {
        self.by_id.get(id).is_some_and(|r| r.rule.substitute_body)
    }

    /// The same rules, found by id only (never a candidate: the Cedar reference).
    #[cfg(test)]
    pub(crate) fn without_candidates(&self) -> Self {
        Self {
            by_id: self.by_id.clone(),
            ..Self::default()
        }
    }

    /// The rules that can name placeholder `name`.
    pub(crate) fn candidates<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Rule> {
        self.exact
            .get(name)
            .into_iter()
            .flat_map(|v| v.iter())
            .chain(
                self.globs
                    .iter()
                    .filter(move |r| glob_match(&r.rule.placeholder, name)),
            )
            .map(AsRef::as_ref)
    }
}
