//! [`Snapshot`]: everything the request path reads, immutable, swapped atomically after
//! each store commit. A request loads it once and keeps it to the end.

use std::sync::Arc;

use excalibur_core::Secret;
use excalibur_core::api::{
    MappingRecord, Namespace, NetbirdPeer, PolicyRecord, Provider, ServiceCredentialInfo, SshRoute,
    SshSession, TranslationRule, WorkloadInfo,
};
use excalibur_core::hosts::HostPattern;
use excalibur_identity::{CredentialEntry, CredentialIndex, WorkloadEntry};
use excalibur_mediation::Mediator;
use excalibur_policy::{Policy, PolicyError, PolicyInput};

use crate::dpop::DpopRoutes;
use crate::jwt_bearer::JwtBearerRoutes;
use crate::mtls::MtlsRoutes;
use crate::oauth_refresh::OauthRefreshRoutes;
use crate::sigv4::Sigv4Routes;

/// The inputs a snapshot is built from (read from the store in one transaction).
#[derive(Debug, Default)]
pub struct SnapshotInput {
    /// `(placeholder, provider id, real value)`.
    pub placeholders: Vec<(String, String, Secret)>,
    /// `(placeholder, expires at in Unix ms)` for placeholders that expire.
    pub placeholder_expiry: Vec<(String, i64)>,
    /// Providers.
    pub providers: Vec<Provider>,
    /// Live service credentials with their token hashes.
    pub credentials: Vec<(ServiceCredentialInfo, String)>,
    /// Revoked ones (attribution of a request that still presents one).
    pub revoked_credentials: Vec<(ServiceCredentialInfo, String)>,
    /// Translation rules.
    pub rules: Vec<TranslationRule>,
    /// Operator Cedar policies.
    pub policies: Vec<PolicyRecord>,
    /// Namespaces and their egress lists.
    pub namespaces: Vec<Namespace>,
    /// Live workload bearers with their token hashes.
    pub workloads: Vec<(WorkloadInfo, String)>,
    /// Crypto mappings with their opened keys.
    pub mappings: Vec<(MappingRecord, Secret)>,
    /// NetBird developer devices (already checked to lie in the overlay network).
    pub devices: Vec<NetbirdPeer>,
    /// SSH routes (their allowed domains are the egress of their sessions).
    pub ssh_routes: Vec<SshRoute>,
    /// Active SSH sessions with their proxy-token hashes.
    pub ssh_sessions: Vec<(SshSession, String)>,
}

/// The policy namespace of an SSH route's sessions.
pub fn ssh_route_namespace(route_id: &str) -> String {
    format!("ssh-route:{route_id}")
}

/// The request path's view of configuration.
#[derive(Debug)]
pub struct Snapshot {
    /// Monotonic version, for logs and metrics.
    pub version: u64,
    /// Service credentials by token hash.
    pub credentials: Arc<CredentialIndex>,
    /// Compiled decisions (shared with the API's dry-run endpoint).
    pub policy: Arc<Policy>,
    /// Placeholder automata and values.
    pub mediator: Arc<Mediator>,
    /// Scrubs the values rotated since `mediator`'s scrub automata were built (empty
    /// when none): responses are scrubbed with both.
    pub recent: Arc<Mediator>,
    /// SigV4 mappings, ready to sign.
    pub sigv4: Arc<Sigv4Routes>,
    /// JWT-bearer mappings, ready to sign assertions.
    pub jwt_bearer: Arc<JwtBearerRoutes>,
    /// Upstream mTLS mappings.
    pub mtls: Arc<MtlsRoutes>,
    /// DPoP mappings.
    pub dpop: Arc<DpopRoutes>,
    /// OAuth2 refresh mappings.
    pub oauth_refresh: Arc<OauthRefreshRoutes>,
    /// Placeholder names by their provider's hosts (candidates for body substitution).
    body_candidates: Arc<Vec<(Vec<HostPattern>, Vec<String>)>>,
    /// When placeholders stop being redeemable (Unix ms). Expired ones stay in the
    /// mediator so that they are still found (and refused) and their echoes scrubbed.
    expiry: Arc<std::collections::HashMap<String, i64>>,
    /// SHA-256 of everything the compiled policy was built from (as JSON, streamed into
    /// the hash, never held whole): a rebuild whose inputs are unchanged (e.g. only
    /// workload bearers or a value changed) reuses the policy.
    policy_key: Option<[u8; 32]>,
}

impl Snapshot {
    /// An empty snapshot: nobody is identified, nothing is allowed.
    pub fn empty() -> Result<Self, PolicyError> {
        Self::build(0, SnapshotInput::default(), &[443], None)
    }

    /// Builds a snapshot. CPU-bound (policy compilation, automata): call off the async threads.
    /// `previous` lends its compiled policy when the policy's inputs did not change.
    pub fn build(
        version: u64,
        input: SnapshotInput,
        allowed_ports: &[u16],
        previous: Option<&Snapshot>,
    ) -> Result<Self, PolicyError> {
        let mut credentials = CredentialIndex::default();
        let mut egress = Vec::new();
        for (info, hash) in input.credentials {
            let Ok(source_network) = info.source_network.parse() else {
                continue;
            };
            let allowed_domains: Vec<HostPattern> = info
                .allowed_domains
                .iter()
                .filter_map(|d| HostPattern::parse(d).ok())
                .collect();
            egress.push((format!("service:{}", info.name), allowed_domains.clone()));
            credentials.insert(
                hash,
                CredentialEntry {
                    id: info.id,
                    name: info.name,
                    user: info.user,
                    source_network,
                    allowed_domains,
                },
            );
        }
        for (info, hash) in input.revoked_credentials {
            credentials.insert_revoked(hash, info.id, info.name);
        }
        for d in &input.devices {
            let Ok(ip) = d.ip.parse::<std::net::IpAddr>() else {
                continue;
            };
            let domains: Vec<HostPattern> = d
                .allowed_domains
                .iter()
                .filter_map(|h| HostPattern::parse(h).ok())
                .collect();
            egress.push((d.principal.clone(), domains));
            credentials.insert_device(
                ip,
                excalibur_identity::DeviceEntry {
                    principal: d.principal.clone(),
                    user: d.user.clone(),
                    groups: d.groups.clone(),
                },
            );
        }
        for (w, hash) in input.workloads {
            let (Ok(source), Ok(expires)) = (
                w.source.parse(),
                excalibur_core::time::Timestamp::parse(&w.expires_at),
            ) else {
                continue;
            };
            credentials.insert_workload(
                hash,
                WorkloadEntry {
                    id: excalibur_core::ids::CredentialId::new(w.id),
                    principal: w.principal,
                    namespace: w.namespace,
                    attestation: w.attestation,
                    source,
                    expires_ms: expires.millis(),
                    providers: w
                        .details
                        .get("scopes")
                        .and_then(serde_json::Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(|s| s.as_str()?.strip_prefix("provider:"))
                        .map(str::to_owned)
                        .collect(),
                    tags: w
                        .details
                        .get("tags")
                        .and_then(serde_json::Value::as_object)
                        .into_iter()
                        .flatten()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                        .collect(),
                    actor: w
                        .details
                        .pointer("/act/principal")
                        .and_then(serde_json::Value::as_str)
                        .map(str::to_owned),
                },
            );
        }
        for (s, hash) in &input.ssh_sessions {
            let Ok(source) = s.proxy_source.parse::<std::net::IpAddr>() else {
                continue;
            };
            credentials.insert_session(
                hash.clone(),
                excalibur_identity::SessionEntry {
                    id: excalibur_core::ids::CredentialId::new(s.id.clone()),
                    principal: s.principal.clone(),
                    user: s.user.clone(),
                    namespace: ssh_route_namespace(&s.route_id),
                    factor: s.auth.clone(),
                    factors: s.factors.clone(),
                    tags: s.tags.clone().into_iter().collect(),
                    source: source.to_canonical(),
                },
            );
        }
        let parse_domains = |list: &[String]| -> Vec<HostPattern> {
            list.iter()
                .filter_map(|d| HostPattern::parse(d).ok())
                .collect()
        };
        let namespaces: Vec<(String, Vec<HostPattern>)> = input
            .namespaces
            .iter()
            .map(|n| (n.name.clone(), parse_domains(&n.allowed_domains)))
            .chain(input.ssh_routes.iter().map(|r| {
                (
                    ssh_route_namespace(&r.id),
                    parse_domains(&r.allowed_domains),
                )
            }))
            .collect();
        let expiry: std::collections::HashMap<String, i64> =
            input.placeholder_expiry.iter().cloned().collect();
        let body_candidates = body_candidates(&input.providers, &input.placeholders, &expiry);
        let sigv4 = Sigv4Routes::build(&input.mappings);
        let jwt_bearer = JwtBearerRoutes::build(&input.mappings);
        let mtls = MtlsRoutes::build(&input.mappings);
        let dpop = DpopRoutes::build(&input.mappings);
        let oauth_refresh = OauthRefreshRoutes::build(&input.mappings);
        // A mapping is redeemed like a placeholder: by its id, toward its provider's hosts.
        let bindings: Vec<(String, String)> = input
            .placeholders
            .iter()
            .map(|(n, p, _)| (n.clone(), p.clone()))
            .chain(sigv4.bindings())
            .chain(jwt_bearer.bindings())
            .chain(mtls.bindings())
            .chain(dpop.bindings())
            .chain(oauth_refresh.bindings())
            .collect();
        let policy_key = policy_key(
            (&input.rules, &input.providers, &input.policies),
            &bindings,
            &egress,
            &namespaces,
            allowed_ports,
        );
        let reused = previous
            .filter(|p| policy_key.is_some() && p.policy_key == policy_key)
            .map(|p| Arc::clone(&p.policy));
        let policy = match reused {
            Some(p) => p,
            None => {
                let input = PolicyInput {
                    rules: &input.rules,
                    providers: &input.providers,
                    placeholders: &bindings,
                    egress: &egress,
                    namespaces: &namespaces,
                    operator: &input.policies,
                    allowed_ports,
                };
                Arc::new(Policy::compile(input)?)
            }
        };
        let entries: Vec<(String, Secret)> = input
            .placeholders
            .into_iter()
            .map(|(n, _, v)| (n, v))
            .collect();
        // Unchanged placeholders keep their automata; a rotation rebuilds only the
        // scrub automata.
        let (mediator, recent) = match previous {
            Some(p) => {
                let r = Mediator::rebuild(&p.mediator, entries);
                (r.main, r.recent)
            }
            None => (Arc::new(Mediator::new(entries)), Arc::default()),
        };
        Ok(Self {
            version,
            credentials: Arc::new(credentials),
            policy,
            mediator,
            recent,
            sigv4: Arc::new(sigv4),
            jwt_bearer: Arc::new(jwt_bearer),
            mtls: Arc::new(mtls),
            dpop: Arc::new(dpop),
            oauth_refresh: Arc::new(oauth_refresh),
            body_candidates: Arc::new(body_candidates),
            expiry: Arc::new(expiry),
            policy_key,
        })
    }

    /// This snapshot with one placeholder's value rotated: every index, the policy and
    /// the automata are shared, and the new value is scrubbed by `recent` as in
    /// [`Snapshot::build`]. `None` unless `name` is a placeholder here with the same
    /// provider and the same expiry (anything else changes what the policy, the body
    /// candidates or the expiry check see: build the snapshot whole).
    pub fn rotated(
        &self,
        version: u64,
        name: &str,
        provider: &str,
        value: &Secret,
        expires_ms: Option<i64>,
    ) -> Option<Self> {
        if self.policy.provider_of(name) != Some(provider)
            || self.expiry.get(name).copied() != expires_ms
        {
            return None;
        }
        let rebuilt = Mediator::rotate(&self.mediator, name, value)?;
        Some(Self {
            version,
            credentials: Arc::clone(&self.credentials),
            policy: Arc::clone(&self.policy),
            mediator: rebuilt.main,
            recent: rebuilt.recent,
            sigv4: Arc::clone(&self.sigv4),
            jwt_bearer: Arc::clone(&self.jwt_bearer),
            mtls: Arc::clone(&self.mtls),
            dpop: Arc::clone(&self.dpop),
            oauth_refresh: Arc::clone(&self.oauth_refresh),
            body_candidates: Arc::clone(&self.body_candidates),
            expiry: Arc::clone(&self.expiry),
            policy_key: self.policy_key,
        })
    }

    /// The first of `names` past its `expires_at` at `now_ms`: it is never redeemed,
    /// whatever the expiry sweeper has done yet.
    pub fn expired<'a>(&self, names: &'a [String], now_ms: i64) -> Option<&'a String> {
        names
            .iter()
            .find(|n| self.expiry.get(*n).is_some_and(|at| *at <= now_ms))
    }

    /// Placeholders whose provider lists `host`.
    pub fn body_candidates<'a>(&'a self, host: &'a str) -> impl Iterator<Item = &'a String> + 'a {
        self.body_candidates
            .iter()
            .filter(move |(hosts, _)| hosts.iter().any(|h| h.matches(host)))
            .flat_map(|(_, names)| names)
    }
}

/// Placeholder names by their provider's hosts, grouped once (not a scan of every
/// placeholder per provider). Expired at build time: never a body candidate again.
fn body_candidates(
    providers: &[Provider],
    placeholders: &[(String, String, Secret)],
    expiry: &std::collections::HashMap<String, i64>,
) -> Vec<(Vec<HostPattern>, Vec<String>)> {
    let built_at = excalibur_core::time::Timestamp::now().millis();
    let mut by_provider: std::collections::HashMap<&str, Vec<String>> =
        std::collections::HashMap::new();
    for (n, provider, _) in placeholders {
        if expiry.get(n).is_none_or(|at| *at > built_at) {
            by_provider
                .entry(provider.as_str())
                .or_default()
                .push(n.clone());
        }
    }
    providers
        .iter()
        .map(|p| {
            let hosts = p
                .hosts
                .iter()
                .filter_map(|h| HostPattern::parse(h).ok())
                .collect();
            (hosts, by_provider.remove(p.id.as_str()).unwrap_or_default())
        })
        .collect()
}

/// SHA-256 of everything the compiled policy is built from, as JSON streamed into the
/// hash ([`Snapshot::policy_key`]); `None` if it cannot be serialized (never reused).
fn policy_key(
    (rules, providers, policies): (&[TranslationRule], &[Provider], &[PolicyRecord]),
    bindings: &[(String, String)],
    egress: &[(String, Vec<HostPattern>)],
    namespaces: &[(String, Vec<HostPattern>)],
    allowed_ports: &[u16],
) -> Option<[u8; 32]> {
    fn hosts(list: &[(String, Vec<HostPattern>)]) -> Vec<(&String, Vec<&str>)> {
        list.iter()
            .map(|(p, d)| (p, d.iter().map(HostPattern::as_str).collect()))
            .collect()
    }
    let mut h = HashWriter(aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256));
    serde_json::to_writer(
        &mut h,
        &(
            rules,
            providers,
            bindings,
            hosts(egress),
            hosts(namespaces),
            policies,
            allowed_ports,
        ),
    )
    .ok()?;
    h.0.finish().as_ref().try_into().ok()
}

/// Feeds written bytes into a digest (for [`Snapshot::policy_key`]).
struct HashWriter(aws_lc_rs::digest::Context);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use excalibur_core::api::{Provider, WorkloadInfo};

    use super::*;

    fn input(workloads: usize) -> SnapshotInput {
        SnapshotInput {
            providers: vec![Provider {
                id: "github".into(),
                hosts: vec!["api.github.com".into()],
                passthrough: false,
                dangerous_allow_plaintext: false,
            }],
            workloads: (0..workloads)
                .map(|i| {
                    (
                        WorkloadInfo {
                            id: format!("wl_{i}"),
                            namespace: "payments".into(),
                            principal: format!("k8s:c/payments/sa{i}"),
                            attestation: "kubernetes".into(),
                            source: "127.0.0.1".into(),
                            token_prefix: "xcw_".into(),
                            created_at: "2026-01-01T00:00:00Z".into(),
                            expires_at: "2099-01-01T00:00:00Z".into(),
                            details: serde_json::Value::Null,
                        },
                        format!("{i:064x}"),
                    )
                })
                .collect(),
            ..SnapshotInput::default()
        }
    }

    #[test]
    fn unchanged_policy_inputs_reuse_the_compiled_policy() {
        let first = Snapshot::build(1, input(0), &[443], None).unwrap();
        // A new workload bearer changes the credential index, not the policy.
        let second = Snapshot::build(2, input(1), &[443], Some(&first)).unwrap();
        assert!(Arc::ptr_eq(&first.policy, &second.policy));
        let wl = excalibur_core::ids::CredentialId::new("wl_0");
        assert!(second.credentials.is_live(&wl, 0) && !first.credentials.is_live(&wl, 0));
        // A provider change recompiles.
        let mut changed = input(1);
        changed.providers[0].hosts.push("uploads.github.com".into());
        let third = Snapshot::build(3, changed, &[443], Some(&second)).unwrap();
        assert!(!Arc::ptr_eq(&second.policy, &third.policy));
        // So do different allowed ports.
        let fourth = Snapshot::build(4, input(1), &[443, 8443], Some(&second)).unwrap();
        assert!(!Arc::ptr_eq(&second.policy, &fourth.policy));
    }

    #[test]
    fn a_rotation_patches_the_snapshot_and_anything_else_asks_for_a_build() {
        use excalibur_core::api::{CreateTranslationRule, TranslationRule};
        let secret = |v: &str| Secret::new(v.as_bytes().to_vec());
        let placeholders = |a: &str| {
            vec![
                ("XCALIBUR_A".to_owned(), "github".to_owned(), secret(a)),
                (
                    "XCALIBUR_B".to_owned(),
                    "github".to_owned(),
                    secret("value-b"),
                ),
            ]
        };
        let mut base = input(0);
        base.placeholders = placeholders("old-a");
        base.placeholder_expiry = vec![("XCALIBUR_B".into(), 4_102_444_800_000)];
        let rule = TranslationRule {
            id: excalibur_core::ids::RuleId::new("r_a"),
            rule: CreateTranslationRule {
                principal: "service:*".into(),
                placeholder: "XCALIBUR_*".into(),
                hosts: vec!["api.github.com".into()],
                path_prefix: "/".into(),
                methods: Vec::new(),
                substitute_body: false,
            },
            created_at: String::new(),
        };
        base.rules = vec![rule.clone()];
        let first = Snapshot::build(1, base, &[443], None).unwrap();
        let ci = crate::decide::tests::subject();
        let sent = |snap: &Snapshot| {
            let names = ["XCALIBUR_A".to_owned(), "XCALIBUR_B".to_owned()];
            let target = excalibur_policy::RedeemTarget::tls("api.github.com", "/", "GET");
            let permit = snap.policy.decide_redeem(&ci, target, &names).unwrap();
            let out = snap
                .mediator
                .substitute(&permit, b"XCALIBUR_A XCALIBUR_B")
                .unwrap();
            String::from_utf8(out).unwrap()
        };
        assert_eq!(sent(&first), "old-a value-b");

        let rotated = first
            .rotated(2, "XCALIBUR_A", "github", &secret("new-a"), None)
            .unwrap();
        assert_eq!(rotated.version, 2);
        assert_eq!(sent(&rotated), "new-a value-b");
        // Shared, not rebuilt: the policy and every index.
        assert!(Arc::ptr_eq(&first.policy, &rotated.policy));
        assert!(Arc::ptr_eq(&first.credentials, &rotated.credentials));
        // The new value is scrubbed (by the recent layer), the old snapshot untouched.
        assert!(rotated.recent.scrub(b"echo new-a").is_some());
        assert!(first.recent.scrub(b"echo new-a").is_none());
        assert_eq!(sent(&first), "old-a value-b");
        // The same as building it whole.
        let mut whole = input(0);
        whole.placeholders = placeholders("new-a");
        whole.placeholder_expiry = vec![("XCALIBUR_B".into(), 4_102_444_800_000)];
        whole.rules = vec![rule];
        let built = Snapshot::build(3, whole, &[443], Some(&first)).unwrap();
        assert_eq!(sent(&built), sent(&rotated));

        // Anything but a rotation is built whole.
        let v = secret("x");
        assert!(first.rotated(4, "XCALIBUR_A", "gitlab", &v, None).is_none());
        assert!(
            first
                .rotated(4, "XCALIBUR_A", "github", &v, Some(1))
                .is_none()
        );
        assert!(first.rotated(4, "XCALIBUR_B", "github", &v, None).is_none());
        assert!(
            first
                .rotated(4, "XCALIBUR_B", "github", &v, Some(4_102_444_800_000))
                .is_some()
        );
        assert!(first.rotated(4, "XCALIBUR_C", "github", &v, None).is_none());
    }
}
