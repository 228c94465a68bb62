//! The decide stage for redemption: every redeem decision of one request, made once and
//! in one place: the placeholders in the target, the header names and values, the body
//! candidates, and the crypto mappings that apply to the target. What the decision
//! needs (scheme, upstream port, the clock) is in the values it is given.

use std::collections::BTreeSet;

use excalibur_policy::{Deny, Permit, RedeemTarget, Subject};
use http::HeaderMap;

use crate::dpop::Leg;
use crate::jwt_bearer::JwtBearerRoute;
use crate::mtls::MtlsRoute;
use crate::oauth_refresh::OauthRefreshRoute;
use crate::pipeline::Target;
use crate::sigv4::Sigv4Route;
use crate::snapshot::Snapshot;

/// What the decision reads of a request head (after hop-by-hop headers are gone).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Head<'a> {
    pub(crate) method: &'a str,
    /// Path without the query.
    pub(crate) path: &'a str,
    /// Path and query, as sent.
    pub(crate) path_and_query: &'a str,
    pub(crate) headers: &'a HeaderMap,
    /// A body follows (placeholders in it cannot be found before deciding).
    pub(crate) body: bool,
    /// The providers the caller's bearer is scoped to, when its scopes restrict them.
    pub(crate) scoped_providers: Option<&'a [String]>,
}

impl<'a> Head<'a> {
    pub(crate) fn new(
        method: &'a str,
        path: &'a str,
        path_and_query: &'a str,
        headers: &'a HeaderMap,
        body: bool,
        scoped_providers: Option<&'a [String]>,
    ) -> Self {
        Self {
            method,
            path,
            path_and_query,
            headers,
            body,
            scoped_providers,
        }
    }
}

/// The crypto families that apply to one target; at most one of each.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Families<'s> {
    pub(crate) sigv4: Option<&'s Sigv4Route>,
    pub(crate) mtls: Option<&'s MtlsRoute>,
    pub(crate) dpop: Option<Leg<'s>>,
    pub(crate) oauth: Option<&'s OauthRefreshRoute>,
    pub(crate) jwt_bearer: Option<&'s JwtBearerRoute>,
}

impl<'s> Families<'s> {
    /// The mappings of `snap` that apply to `target` and `path`. mTLS only on a TLS leg.
    pub(crate) fn find(snap: &'s Snapshot, target: &Target, path: &str) -> Self {
        Self {
            sigv4: snap.sigv4.find(&target.host, path),
            mtls: target
                .https
                .then(|| snap.mtls.find(&target.host, target.port))
                .flatten(),
            dpop: snap.dpop.find(&target.host, path),
            oauth: snap.oauth_refresh.find(&target.host, path),
            jwt_bearer: snap.jwt_bearer.find(&target.host, path),
        }
    }

    /// Their mapping ids: each is redeemed like a placeholder.
    pub(crate) fn ids(&self) -> Vec<String> {
        [
            self.sigv4.map(|r| &r.id),
            self.mtls.map(|r| &r.id),
            self.dpop.map(|l| &l.route().id),
            self.oauth.map(|r| &r.id),
            self.jwt_bearer.map(|r| &r.id),
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect()
    }
}

/// An allowed redemption: what may be substituted and which families run.
#[derive(Debug)]
pub(crate) struct Redemption<'s> {
    /// The placeholders that may be substituted (`None`: none were asked for).
    pub(crate) permit: Option<Permit>,
    pub(crate) families: Families<'s>,
    /// Placeholder names and mapping ids, for the flow record.
    pub(crate) redeemed: Vec<String>,
}

/// A refused redemption: the names it was about, and why.
#[derive(Debug)]
pub(crate) struct Denied {
    pub(crate) names: Vec<String>,
    pub(crate) deny: Deny,
}

/// Decides every redemption of one request toward `target` at `now_ms`.
///
/// Refused (one [`Denied`] for the whole request): a placeholder past its `expires_at`
/// (`placeholder_expired`); any placeholder or mapping the policy does not allow here,
/// including over a cleartext leg (`plaintext_upstream`) or in an encoded form toward a
/// host that may not have it.
pub(crate) fn redemption<'s>(
    snap: &'s Snapshot,
    subject: &Subject,
    target: &Target,
    head: &Head<'_>,
    now_ms: i64,
) -> Result<Redemption<'s>, Denied> {
    let mut asked = asked(snap, head);
    if let Some(name) = snap.expired(&asked, now_ms) {
        return Err(Denied {
            names: asked.clone(),
            deny: Deny {
                reason: "placeholder_expired",
                detail: format!("placeholder `{name}` has expired"),
                policies: vec!["builtin:placeholder_expiry".to_owned()],
            },
        });
    }
    let out_of_scope = |names: &[String]| out_of_scope(snap, head.scoped_providers, names);
    if let Some(denied) = out_of_scope(&asked) {
        return Err(denied);
    }
    let redeem_target = RedeemTarget {
        host: &target.host,
        path: head.path,
        method: head.method,
        scheme: target.scheme(),
        port: target.port,
    };
    // A body is streamed, so placeholders in it cannot be found before deciding: those
    // this principal may redeem into bodies toward this host join the permit.
    if head.body {
        for name in snap.body_candidates(&target.host) {
            let one = std::slice::from_ref(name);
            if !asked.iter().any(|a| a == name)
                && snap.expired(one, now_ms).is_none()
                && out_of_scope(one).is_none()
                && snap
                    .policy
                    .decide_redeem(subject, redeem_target, one)
                    .is_ok_and(|p| p.substitute_body())
            {
                asked.push(name.clone());
            }
        }
    }
    let permit = if asked.is_empty() {
        None
    } else {
        match snap.policy.decide_redeem(subject, redeem_target, &asked) {
            Ok(p) => Some(p),
            Err(deny) => return Err(Denied { names: asked, deny }),
        }
    };
    let families = Families::find(snap, target, head.path);
    let mappings = families.ids();
    if let Some(denied) = out_of_scope(&mappings) {
        return Err(denied);
    }
    if !mappings.is_empty()
        && let Err(deny) = snap.policy.decide_redeem(subject, redeem_target, &mappings)
    {
        return Err(Denied {
            names: mappings,
            deny,
        });
    }
    let mut redeemed: Vec<String> = permit
        .as_ref()
        .map(|p| p.placeholders().to_vec())
        .unwrap_or_default();
    redeemed.extend(mappings);
    Ok(Redemption {
        permit,
        families,
        redeemed,
    })
}

/// The placeholders a request names, literally or encoded, in its target and in its
/// header names and values.
fn asked(snap: &Snapshot, head: &Head<'_>) -> Vec<String> {
    let mediator = &snap.mediator;
    let (mut found, mut encoded) = (BTreeSet::new(), BTreeSet::new());
    let mut scan = |bytes: &[u8]| {
        mediator.find(bytes, &mut found);
        mediator.find_encoded(bytes, &mut encoded);
    };
    scan(head.path_and_query.as_bytes());
    for (name, value) in head.headers {
        scan(name.as_str().as_bytes());
        scan(value.as_bytes());
    }
    let mut asked: Vec<String> = found.iter().cloned().collect();
    asked.extend(encoded.iter().filter(|n| !found.contains(*n)).cloned());
    asked
}

/// A bearer exchanged with `scope=provider:<id> ...` redeems only those providers'
/// placeholders and mappings, whatever the rules would allow: the refusal for the
/// first of `names` outside them.
fn out_of_scope(snap: &Snapshot, scoped: Option<&[String]>, names: &[String]) -> Option<Denied> {
    let allowed = scoped?;
    let name = names.iter().find(|n| {
        snap.policy
            .provider_of(n)
            .is_none_or(|p| !allowed.iter().any(|a| a == p))
    })?;
    let scopes: Vec<String> = allowed.iter().map(|p| format!("provider:{p}")).collect();
    Some(Denied {
        names: names.to_vec(),
        deny: Deny {
            reason: "scope_not_granted",
            detail: format!(
                "`{name}` is not within the bearer's scopes ({})",
                scopes.join(" ")
            ),
            policies: vec!["builtin:token_scope".to_owned()],
        },
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use excalibur_core::Secret;
    use excalibur_core::api::{CreateTranslationRule, Provider, TranslationRule};
    use excalibur_core::ids::RuleId;
    use excalibur_core::principal::{Principal, PrincipalKind};
    use http::HeaderValue;

    use super::*;
    use crate::snapshot::SnapshotInput;

    const NOW: i64 = 1_800_000_000_000;

    fn snapshot() -> Snapshot {
        let provider = |id: &str, host: &str, plaintext: bool| Provider {
            id: id.into(),
            hosts: vec![host.into()],
            passthrough: false,
            dangerous_allow_plaintext: plaintext,
        };
        let rule = |id: &str, placeholder: &str, host: &str, body: bool| TranslationRule {
            id: RuleId::new(id),
            rule: CreateTranslationRule {
                principal: "*".into(),
                placeholder: placeholder.into(),
                hosts: vec![host.into()],
                path_prefix: "/".into(),
                methods: Vec::new(),
                substitute_body: body,
            },
            created_at: String::new(),
        };
        let secret = |s: &str| Secret::new(s.as_bytes().to_vec());
        let input = SnapshotInput {
            providers: vec![
                provider("github", "api.github.com", false),
                provider("intranet", "wiki.internal", true),
            ],
            placeholders: vec![
                (
                    "XCALIBUR_GH".into(),
                    "github".into(),
                    secret("ghp_aaaaaaaaaaaa"),
                ),
                (
                    "XCALIBUR_OLD".into(),
                    "github".into(),
                    secret("ghp_bbbbbbbbbbbb"),
                ),
                (
                    "XCALIBUR_BODY".into(),
                    "github".into(),
                    secret("ghp_cccccccccccc"),
                ),
                (
                    "XCALIBUR_WIKI".into(),
                    "intranet".into(),
                    secret("wiki_dddddddddd"),
                ),
            ],
            placeholder_expiry: vec![("XCALIBUR_OLD".into(), NOW + 1000)],
            rules: vec![
                rule("r1", "XCALIBUR_GH", "api.github.com", false),
                rule("r2", "XCALIBUR_OLD", "api.github.com", false),
                rule("r3", "XCALIBUR_BODY", "api.github.com", true),
                rule("r4", "XCALIBUR_WIKI", "wiki.internal", false),
            ],
            ..SnapshotInput::default()
        };
        Snapshot::build(1, input, &[80, 443], None).unwrap()
    }

    /// `service:ci`, as the proxy builds it for a service credential.
    pub(crate) fn subject() -> Subject {
        Subject::new(&Principal {
            id: "service:ci".into(),
            kind: PrincipalKind::ServiceCredential,
            user: "ci".into(),
            namespace: String::new(),
            groups: Vec::new(),
            attestation: "service_credential".into(),
            factors: Vec::new(),
            credential_id: None,
            source: "127.0.0.1".parse().unwrap(),
            tags: Default::default(),
            actor: None,
            scopes: Default::default(),
        })
    }

    /// `check(url, header value, body?, now offset ms, expected)`: expected is the
    /// redeemed names joined by `,`, or `deny <reason>`.
    fn check(url: &str, header: &str, body: bool, at: i64, expected: &str) {
        check_scoped(url, header, body, at, None, expected);
    }

    fn check_scoped(
        url: &str,
        header: &str,
        body: bool,
        at: i64,
        scoped: Option<&[String]>,
        expected: &str,
    ) {
        let snap = snapshot();
        let uri: http::Uri = url.parse().unwrap();
        let https = uri.scheme_str() == Some("https");
        let target = Target {
            https,
            host: uri.host().unwrap().to_owned(),
            port: uri.port_u16().unwrap_or(if https { 443 } else { 80 }),
        };
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_str(header).unwrap());
        let pq = uri.path_and_query().unwrap().as_str();
        let head = Head {
            method: "POST",
            path: uri.path(),
            path_and_query: pq,
            headers: &headers,
            body,
            scoped_providers: scoped,
        };
        let got = match redemption(&snap, &subject(), &target, &head, NOW + at) {
            Ok(r) => r.redeemed.join(","),
            Err(d) => format!("deny {}", d.deny.reason),
        };
        assert_eq!(
            got, expected,
            "{url} {header} body={body} at={at} {scoped:?}"
        );
    }

    #[test]
    fn every_redemption_decided_once() {
        check(
            "https://api.github.com/u",
            "Bearer XCALIBUR_GH",
            false,
            0,
            "XCALIBUR_GH",
        );
        check(
            "https://api.github.com:8443/u",
            "Bearer XCALIBUR_GH",
            false,
            0,
            "XCALIBUR_GH",
        );
        check("https://api.github.com/u", "none", false, 0, "");
        check(
            "https://api.github.com/u?t=XCALIBUR_GH",
            "none",
            false,
            0,
            "XCALIBUR_GH",
        );
        // Cleartext legs: refused unless the provider opted in.
        check(
            "http://api.github.com/u",
            "Bearer XCALIBUR_GH",
            false,
            0,
            "deny plaintext_upstream",
        );
        check(
            "http://api.github.com/u?t=XCALIBUR_GH",
            "x",
            false,
            0,
            "deny plaintext_upstream",
        );
        check(
            "http://wiki.internal/p",
            "Bearer XCALIBUR_WIKI",
            false,
            0,
            "XCALIBUR_WIKI",
        );
        // Expiry is decided against the clock given, not a sweeper.
        check(
            "https://api.github.com/u",
            "Bearer XCALIBUR_OLD",
            false,
            999,
            "XCALIBUR_OLD",
        );
        check(
            "https://api.github.com/u",
            "Bearer XCALIBUR_OLD",
            false,
            1000,
            "deny placeholder_expired",
        );
        // Another provider's host, or an encoded form toward it.
        check(
            "https://wiki.internal/p",
            "Bearer XCALIBUR_GH",
            false,
            0,
            "deny placeholder_host_not_bound",
        );
        check(
            "https://wiki.internal/p",
            "Basic WENBTElCVVJfR0g=",
            false,
            0,
            "deny placeholder_host_not_bound",
        );
        // A body joins the body-substitution candidates; a cleartext leg never has any.
        check("https://api.github.com/u", "none", true, 0, "XCALIBUR_BODY");
        check("http://api.github.com/u", "none", true, 0, "");
    }

    #[test]
    fn scopes_restrict_providers() {
        let github = ["github".to_owned()];
        let intranet = ["intranet".to_owned()];
        let gh = "https://api.github.com/u";
        check_scoped(
            gh,
            "Bearer XCALIBUR_GH",
            false,
            0,
            Some(&github),
            "XCALIBUR_GH",
        );
        check_scoped(
            gh,
            "Bearer XCALIBUR_GH",
            false,
            0,
            Some(&intranet),
            "deny scope_not_granted",
        );
        // Body candidates outside the scopes are never added.
        check_scoped(gh, "none", true, 0, Some(&intranet), "");
        check_scoped(gh, "none", true, 0, Some(&github), "XCALIBUR_BODY");
    }
}
