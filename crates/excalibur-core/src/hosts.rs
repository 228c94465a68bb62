//! Host patterns: `api.github.com` (exact) or `*.example.com` (any subdomain, not the apex).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A validated, lowercased host pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HostPattern(String);

/// The text is not a host name or `*.suffix` pattern.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a host name or `*.suffix` pattern")]
pub struct HostPatternError(String);

impl HostPattern {
    /// Parses `host` or `*.suffix`; lowercases and strips a trailing dot.
    pub fn parse(s: &str) -> Result<Self, HostPatternError> {
        let lower = s.trim_end_matches('.').to_ascii_lowercase();
        let name = lower.strip_prefix("*.").unwrap_or(&lower);
        if !is_host_name(name) {
            return Err(HostPatternError(s.to_owned()));
        }
        Ok(Self(lower))
    }

    /// True when `host` (already lowercased, no port) matches.
    pub fn matches(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.');
        match self.0.strip_prefix("*.") {
            Some(suffix) => {
                host.len() > suffix.len() + 1
                    && host.ends_with(suffix)
                    && host.as_bytes().get(host.len() - suffix.len() - 1) == Some(&b'.')
            }
            None => host.eq_ignore_ascii_case(&self.0),
        }
    }

    /// True when every host this pattern matches is also matched by `outer`.
    pub fn within(&self, outer: &HostPattern) -> bool {
        match (self.0.strip_prefix("*."), outer.0.strip_prefix("*.")) {
            (None, _) => outer.matches(&self.0),
            (Some(inner), Some(o)) => inner == o || outer.matches(inner),
            (Some(_), None) => false,
        }
    }

    /// The pattern text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for HostPattern {
    type Error = HostPatternError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<HostPattern> for String {
    fn from(p: HostPattern) -> String {
        p.0
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// True for a DNS name or IP literal: labels of `[a-z0-9-]`, 1..=63 chars, total <= 253.
pub fn is_host_name(s: &str) -> bool {
    if s.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pattern: &str, host: &str, want: bool) {
        assert_eq!(
            HostPattern::parse(pattern).unwrap().matches(host),
            want,
            "{pattern} vs {host}"
        );
    }

    #[test]
    fn matching() {
        check("api.github.com", "api.github.com", true);
        check("API.GitHub.com.", "api.github.com", true);
        check("api.github.com", "evilapi.github.com", false);
        check("*.github.com", "api.github.com", true);
        check("*.github.com", "github.com", false);
        check("*.github.com", "evilgithub.com", false);
        check("*.github.com", "a.b.github.com", true);
        assert!(HostPattern::parse("").is_err());
        assert!(HostPattern::parse("a b").is_err());
        assert!(HostPattern::parse("*").is_err());
        assert!(HostPattern::parse("x.*.com").is_err());
    }

    #[test]
    fn containment() {
        let p = |s| HostPattern::parse(s).unwrap();
        assert!(p("api.github.com").within(&p("*.github.com")));
        assert!(p("*.api.github.com").within(&p("*.github.com")));
        assert!(!p("*.github.com").within(&p("api.github.com")));
        assert!(!p("api.stripe.com").within(&p("*.github.com")));
    }
}
