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
use excalibur_policy::{Change, Policy, PolicyError, PolicyInput};

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
    /// Placeholder names by provider id (with the policy's providers by host: the
    /// candidates for body substitution).
    body_names: imbl::HashMap<String, imbl::OrdSet<String>>,
    /// When placeholders stop being redeemable (Unix ms). Expired ones stay in the
    /// mediator so that they are still found (and refused) and their echoes scrubbed.
    expiry: imbl::HashMap<String, i64>,
    /// SHA-256 of everything the compiled policy was built from (as JSON, streamed into
    /// the hash, never held whole): a rebuild whose inputs are unchanged (e.g. only
    /// workload bearers or a value changed) reuses the policy. `None` after a
    /// [`Snapshot::changed`] that changed the policy: the next build compiles.
    policy_key: Option<[u8; 32]>,
}

/// One committed row, as read back from the store ([`Snapshot::changed`]).
#[derive(Debug, Clone, Copy)]
pub enum Delta<'a> {
    /// A placeholder upserted (a rotation, a new one, another provider or expiry).
    Placeholder {
        /// Its name.
        name: &'a str,
        /// Its provider id.
        provider: &'a str,
        /// Its real value.
        value: &'a Secret,
        /// When it expires (Unix ms).
        expires_ms: Option<i64>,
    },
    /// A translation rule created or replaced (`Some`) or deleted (`None`).
    Rule {
        /// Its id.
        id: &'a str,
        /// The rule as stored.
        rule: Option<&'a TranslationRule>,
    },
    /// A provider upserted.
    Provider(&'a Provider),
    /// A placeholder deleted, by name: from this delta on it is never found nor
    /// redeemed (its value is still scrubbed until the next build).
    PlaceholderRemoved(&'a str),
    /// A provider deleted, by id: no host of its redeems anything from this delta on.
    ProviderRemoved(&'a str),
    /// A service credential created or revoked (`revoked_at`).
    Credential {
        /// The credential as stored.
        info: &'a ServiceCredentialInfo,
        /// Its token hash.
        hash: &'a str,
    },
    /// A live workload bearer issued.
    Workload {
        /// The bearer as stored.
        info: &'a WorkloadInfo,
        /// Its token hash.
        hash: &'a str,
    },
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
        mut input: SnapshotInput,
        allowed_ports: &[u16],
        previous: Option<&Snapshot>,
    ) -> Result<Self, PolicyError> {
        let (credentials, egress) = credential_index(&mut input);
        let namespaces = namespace_egress(&input);
        let expiry: imbl::HashMap<String, i64> = input.placeholder_expiry.iter().cloned().collect();
        let body_names = body_names(&input.placeholders);
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
            body_names,
            expiry,
            policy_key,
        })
    }

    /// This snapshot with one committed row applied, sharing everything the row does
    /// not touch: a placeholder's value is substituted and scrubbed at once (a new
    /// name joins the mediator's tail), a rule, provider or credential changes only
    /// its entries in the policy's and the index's persistent maps. Equal to building
    /// the snapshot whole from the store after the same commit. `None` when the row
    /// cannot be applied alone (a credential with an unusable source network): build.
    pub fn changed(&self, version: u64, delta: Delta<'_>) -> Option<Self> {
        let mut next = self.share(version);
        match delta {
            Delta::Placeholder {
                name,
                provider,
                value,
                expires_ms,
            } => {
                let previous = self.policy.provider_of(name).map(str::to_owned);
                if previous.as_deref() != Some(provider) {
                    next.policy_changed(Change::Bind { name, provider });
                    if let Some(old) = &previous
                        && let Some(names) = next.body_names.get_mut(old)
                    {
                        names.remove(name);
                    }
                    next.body_names
                        .entry(provider.to_owned())
                        .or_default()
                        .insert(name.to_owned());
                }
                match expires_ms {
                    Some(at) => next.expiry.insert(name.to_owned(), at),
                    None => next.expiry.remove(name),
                };
                let rebuilt = Mediator::upsert(&self.mediator, name, value);
                next.mediator = rebuilt.main;
                next.recent = rebuilt.recent;
            }
            Delta::Rule { id, rule } => next.policy_changed(match rule {
                Some(r) => Change::Rule(r),
                None => Change::RemoveRule(id),
            }),
            Delta::Provider(p) => next.policy_changed(Change::Provider(p)),
            Delta::PlaceholderRemoved(name) => {
                if let Some(provider) = self.policy.provider_of(name)
                    && let Some(names) = next.body_names.get_mut(provider)
                {
                    names.remove(name);
                }
                next.expiry.remove(name);
                next.mediator = Mediator::remove(&self.mediator, name);
                next.policy_changed(Change::Unbind(name));
            }
            Delta::ProviderRemoved(id) => {
                next.body_names.remove(id);
                next.policy_changed(Change::RemoveProvider(id));
            }
            Delta::Credential { info, hash } => {
                let principal = format!("service:{}", info.name);
                let mut index = (*self.credentials).clone();
                if info.revoked_at.is_some() {
                    let live = index.live_named(&info.name) == Some(&info.id);
                    insert_revoked(&mut index, hash.to_owned(), info);
                    if live {
                        next.policy_changed(Change::Egress {
                            principal: &principal,
                            hosts: &[],
                        });
                    }
                } else {
                    let entry = credential_entry(info)?;
                    next.policy_changed(Change::Egress {
                        principal: &principal,
                        hosts: &entry.allowed_domains,
                    });
                    index.insert(hash.to_owned(), entry);
                }
                next.credentials = Arc::new(index);
            }
            Delta::Workload { info, hash } => {
                let mut index = (*self.credentials).clone();
                index.insert_workload(hash.to_owned(), workload_entry(info)?);
                next.credentials = Arc::new(index);
            }
        }
        Some(next)
    }

    /// A copy of this snapshot under `version`, sharing everything.
    fn share(&self, version: u64) -> Self {
        Self {
            version,
            credentials: Arc::clone(&self.credentials),
            policy: Arc::clone(&self.policy),
            mediator: Arc::clone(&self.mediator),
            recent: Arc::clone(&self.recent),
            sigv4: Arc::clone(&self.sigv4),
            jwt_bearer: Arc::clone(&self.jwt_bearer),
            mtls: Arc::clone(&self.mtls),
            dpop: Arc::clone(&self.dpop),
            oauth_refresh: Arc::clone(&self.oauth_refresh),
            body_names: self.body_names.clone(),
            expiry: self.expiry.clone(),
            policy_key: self.policy_key,
        }
    }

    fn policy_changed(&mut self, change: Change<'_>) {
        self.policy = Arc::new(self.policy.apply([change]));
        self.policy_key = None;
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
        self.policy
            .providers_toward(host)
            .into_iter()
            .filter_map(|p| self.body_names.get(p))
            .flatten()
    }
}

/// Adds a revoked credential to `index`; one the expiry sweep revoked (reason `expired`)
/// is still refused as expired.
fn insert_revoked(index: &mut CredentialIndex, hash: String, info: &ServiceCredentialInfo) {
    let by_sweep = info.revoked_reason.as_deref() == Some("expired");
    index.insert_revoked(hash, info.id.clone(), info.name.clone(), by_sweep);
}

/// The credential index (service credentials, revoked ones, NetBird devices, workload
/// bearers, SSH sessions), taken out of `input`, and the egress lists of the
/// principals that have their own.
fn credential_index(
    input: &mut SnapshotInput,
) -> (CredentialIndex, Vec<(String, Vec<HostPattern>)>) {
    let mut credentials = CredentialIndex::default();
    let mut egress = Vec::new();
    for (info, hash) in std::mem::take(&mut input.credentials) {
        let Some(entry) = credential_entry(&info) else {
            continue;
        };
        egress.push((
            format!("service:{}", info.name),
            entry.allowed_domains.clone(),
        ));
        credentials.insert(hash, entry);
    }
    for (info, hash) in std::mem::take(&mut input.revoked_credentials) {
        insert_revoked(&mut credentials, hash, &info);
    }
    for d in &input.devices {
        let Ok(ip) = d.ip.parse::<std::net::IpAddr>() else {
            continue;
        };
        egress.push((d.principal.clone(), parse_hosts(&d.allowed_domains)));
        credentials.insert_device(
            ip,
            excalibur_identity::DeviceEntry {
                principal: d.principal.clone(),
                user: d.user.clone(),
                groups: d.groups.clone(),
            },
        );
    }
    for (w, hash) in std::mem::take(&mut input.workloads) {
        if let Some(entry) = workload_entry(&w) {
            credentials.insert_workload(hash, entry);
        }
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
    (credentials, egress)
}

/// Placeholder names by provider id.
fn body_names(
    placeholders: &[(String, String, Secret)],
) -> imbl::HashMap<String, imbl::OrdSet<String>> {
    let mut out: imbl::HashMap<String, imbl::OrdSet<String>> = imbl::HashMap::new();
    for (name, provider, _) in placeholders {
        out.entry(provider.clone())
            .or_default()
            .insert(name.clone());
    }
    out
}

/// Namespaces' and SSH routes' allowed domains.
fn namespace_egress(input: &SnapshotInput) -> Vec<(String, Vec<HostPattern>)> {
    input
        .namespaces
        .iter()
        .map(|n| (n.name.clone(), parse_hosts(&n.allowed_domains)))
        .chain(
            input
                .ssh_routes
                .iter()
                .map(|r| (ssh_route_namespace(&r.id), parse_hosts(&r.allowed_domains))),
        )
        .collect()
}

/// The host patterns of `list` that parse (the API validated them when written).
fn parse_hosts(list: &[String]) -> Vec<HostPattern> {
    list.iter()
        .filter_map(|d| HostPattern::parse(d).ok())
        .collect()
}

/// A service credential as the index holds it; `None` when its source network does
/// not parse (it identifies nobody).
fn credential_entry(info: &ServiceCredentialInfo) -> Option<CredentialEntry> {
    Some(CredentialEntry {
        id: info.id.clone(),
        name: info.name.clone(),
        user: info.user.clone(),
        source_network: info.source_network.parse().ok()?,
        allowed_domains: parse_hosts(&info.allowed_domains),
        expires_ms: info
            .expires_at
            .as_deref()
            .map(|at| excalibur_core::time::Timestamp::parse(at).map(|t| t.millis()))
            .transpose()
            .ok()?,
    })
}

/// A workload bearer as the index holds it; `None` when its source or expiry does not
/// parse.
fn workload_entry(w: &WorkloadInfo) -> Option<WorkloadEntry> {
    let (Ok(source), Ok(expires)) = (
        w.source.parse(),
        excalibur_core::time::Timestamp::parse(&w.expires_at),
    ) else {
        return None;
    };
    Some(WorkloadEntry {
        id: excalibur_core::ids::CredentialId::new(w.id.clone()),
        principal: w.principal.clone(),
        namespace: w.namespace.clone(),
        attestation: w.attestation.clone(),
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
    })
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
    use super::*;

    fn workload(id: &str, principal: &str) -> WorkloadInfo {
        WorkloadInfo {
            id: id.into(),
            namespace: "payments".into(),
            principal: principal.into(),
            attestation: "kubernetes".into(),
            source: "127.0.0.1".into(),
            token_prefix: "xcw_".into(),
            created_at: "2026-01-01T00:00:00Z".into(),
            expires_at: "2099-01-01T00:00:00Z".into(),
            details: serde_json::Value::Null,
        }
    }

    fn input(workloads: usize) -> SnapshotInput {
        SnapshotInput {
            providers: vec![provider("github", &["api.github.com"])],
            workloads: (0..workloads)
                .map(|i| {
                    (
                        workload(&format!("wl_{i}"), &format!("k8s:c/payments/sa{i}")),
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

    fn provider(id: &str, hosts: &[&str]) -> Provider {
        Provider {
            id: id.into(),
            hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
            passthrough: false,
            dangerous_allow_plaintext: false,
        }
    }

    fn rule(id: &str, placeholder: &str, hosts: &[&str], body: bool) -> TranslationRule {
        TranslationRule {
            id: excalibur_core::ids::RuleId::new(id),
            rule: excalibur_core::api::CreateTranslationRule {
                principal: "service:*".into(),
                placeholder: placeholder.into(),
                hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
                path_prefix: "/".into(),
                methods: Vec::new(),
                substitute_body: body,
            },
            created_at: String::new(),
        }
    }

    fn credential(id: &str, name: &str, revoked: bool) -> ServiceCredentialInfo {
        ServiceCredentialInfo {
            id: excalibur_core::ids::CredentialId::new(id),
            name: name.into(),
            user: "ci".into(),
            source_network: "127.0.0.0/8".into(),
            allowed_domains: vec!["api.github.com".into(), "*.gitlab.example".into()],
            prefix: "xcs_".into(),
            created_at: String::new(),
            revoked_at: revoked.then(|| "2026-01-01T00:00:00Z".to_owned()),
            revoked_reason: None,
            expires_at: None,
        }
    }

    /// What a request sees: identification, egress, redemption and substitution of each
    /// name toward each host, body candidates and expiry.
    fn observe(snap: &Snapshot) -> Vec<String> {
        let mut out = Vec::new();
        let names: Vec<String> = ["XCALIBUR_A", "XCALIBUR_B", "XCALIBUR_C", "XCALIBUR_D"]
            .map(str::to_owned)
            .to_vec();
        for token in ["tok-ci", "tok-old", "tok-new", "tok-wl"] {
            let who = excalibur_identity::identify(
                &snap.credentials,
                "127.0.0.1".parse().unwrap(),
                Some(format!("Bearer {token}").as_bytes()),
                0,
            );
            let Ok(principal) = who else {
                out.push(format!("{token}: {:?}", who.map(|_| ())));
                continue;
            };
            let subject = excalibur_policy::Subject::new(&principal);
            for host in ["api.github.com", "x.gitlab.example", "api.stripe.com"] {
                let egress = snap.policy.decide_egress(&subject, host, 443);
                out.push(format!("{token} connect {host}: {egress:?}"));
                let target = excalibur_policy::RedeemTarget::tls(host, "/", "GET");
                for name in &names {
                    let one = std::slice::from_ref(name);
                    let answer = match snap.policy.decide_redeem(&subject, target, one) {
                        Ok(permit) => {
                            let text = format!("{name}|XCALIBUR_AB");
                            let sent = snap.mediator.substitute(&permit, text.as_bytes());
                            format!(
                                "allow {:?} body={} sent={:?}",
                                permit.rules(),
                                permit.substitute_body(),
                                sent.map(String::from_utf8)
                            )
                        }
                        Err(d) => format!("deny {} {:?}", d.reason, d.policies),
                    };
                    out.push(format!("{token} {name} {host}: {answer}"));
                }
                let body: Vec<&String> = snap.body_candidates(host).collect();
                out.push(format!("body {host}: {body:?}"));
            }
        }
        out.push(format!("expired: {:?}", snap.expired(&names, 1_000)));
        out.extend(snap.policy.cedar_text().split("\n\n").map(str::to_owned));
        out
    }

    /// Asserts that `snap` answers every [`observe`] question as `whole` does, line by
    /// line; its answers.
    fn answers_as(snap: &Snapshot, whole: &Snapshot) -> Vec<String> {
        let (got, want) = (observe(snap), observe(whole));
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g, w);
        }
        assert_eq!(got.len(), want.len());
        got
    }

    /// A deleted placeholder or provider decides, from its delta on, as a build without
    /// it: never redeemed, no body candidate, no expiry; the rest is untouched.
    #[test]
    fn a_removal_decides_as_a_build_without_the_row() {
        let secret = |v: &str| Secret::new(v.as_bytes().to_vec());
        let placeholders = |names: &[(&str, &str)]| {
            names
                .iter()
                .map(|(n, p)| {
                    (
                        (*n).to_owned(),
                        (*p).to_owned(),
                        secret(&format!("value-{n}")),
                    )
                })
                .collect::<Vec<_>>()
        };
        let start = || {
            let mut start = input(0);
            start
                .providers
                .push(provider("gitlab", &["*.gitlab.example"]));
            start.placeholders = placeholders(&[
                ("XCALIBUR_A", "github"),
                ("XCALIBUR_B", "github"),
                ("XCALIBUR_C", "gitlab"),
            ]);
            start.placeholder_expiry = vec![("XCALIBUR_B".into(), 500)];
            start.rules = vec![
                rule("r_a", "XCALIBUR_A", &["api.github.com"], false),
                rule("r_b", "XCALIBUR_B", &["api.github.com"], true),
                rule("r_c", "XCALIBUR_C", &["x.gitlab.example"], true),
            ];
            start.credentials = vec![(
                credential("c_ci", "ci", false),
                excalibur_core::ids::token_hash("tok-ci"),
            )];
            start
        };
        let mut end = start();
        let first = Snapshot::build(1, start(), &[443], None).unwrap();
        let before = observe(&first);
        let snap = first
            .changed(2, Delta::PlaceholderRemoved("XCALIBUR_B"))
            .unwrap()
            .changed(3, Delta::PlaceholderRemoved("XCALIBUR_C"))
            .unwrap()
            .changed(4, Delta::ProviderRemoved("gitlab"))
            .unwrap();
        assert_eq!(observe(&first), before);

        end.providers.retain(|p| p.id != "gitlab");
        end.placeholders.retain(|(n, _, _)| n == "XCALIBUR_A");
        end.placeholder_expiry.clear();
        let got = answers_as(&snap, &Snapshot::build(5, end, &[443], None).unwrap());
        assert_ne!(got, before);
        assert!(
            got.iter()
                .any(|l| l.starts_with("tok-ci XCALIBUR_A api.github.com: allow")),
            "{got:#?}"
        );
    }

    #[test]
    fn changes_applied_one_row_at_a_time_equal_a_whole_build() {
        let secret = |v: &str| Secret::new(v.as_bytes().to_vec());
        let hash = excalibur_core::ids::token_hash;
        let mut start = input(0);
        start
            .providers
            .push(provider("gitlab", &["*.gitlab.example"]));
        start.placeholders = vec![
            ("XCALIBUR_A".into(), "github".into(), secret("value-a-0")),
            ("XCALIBUR_B".into(), "github".into(), secret("value-b-0")),
        ];
        start.rules = vec![
            rule("r_a", "XCALIBUR_A", &["api.github.com"], false),
            rule(
                "r_glob",
                "XCALIBUR_B*",
                &["api.github.com", "x.gitlab.example"],
                true,
            ),
        ];
        start.credentials = vec![(credential("c_ci", "ci", false), hash("tok-ci"))];
        start
            .credentials
            .push((credential("c_old", "old", false), hash("tok-old")));
        let first = Snapshot::build(1, start, &[443], None).unwrap();

        let wl = workload("wl_new", "service:ci-wl");
        let (rule_c, rule_a2) = (
            rule("r_c", "XCALIBUR_C", &["x.gitlab.example"], true),
            rule(
                "r_a",
                "XCALIBUR_A",
                &["api.github.com", "x.gitlab.example"],
                false,
            ),
        );
        let (value_a, value_c, value_d) = (
            secret("value-a-1"),
            secret("value-c-0"),
            secret("value-d-0"),
        );
        let github = provider("github", &["api.github.com", "api.stripe.com"]);
        let (new_cred, old_revoked) = (
            credential("c_new", "new", false),
            credential("c_old", "old", true),
        );
        let deltas = [
            Delta::Placeholder {
                name: "XCALIBUR_A",
                provider: "github",
                value: &value_a,
                expires_ms: None,
            },
            Delta::Placeholder {
                name: "XCALIBUR_C",
                provider: "gitlab",
                value: &value_c,
                expires_ms: None,
            },
            Delta::Placeholder {
                name: "XCALIBUR_D",
                provider: "github",
                value: &value_d,
                expires_ms: Some(500),
            },
            // Moved to another provider.
            Delta::Placeholder {
                name: "XCALIBUR_B",
                provider: "gitlab",
                value: &secret("value-b-0"),
                expires_ms: None,
            },
            Delta::Rule {
                id: "r_c",
                rule: Some(&rule_c),
            },
            Delta::Rule {
                id: "r_a",
                rule: Some(&rule_a2),
            },
            Delta::Rule {
                id: "r_glob",
                rule: None,
            },
            Delta::Provider(&github),
            Delta::Credential {
                info: &new_cred,
                hash: &hash("tok-new"),
            },
            Delta::Credential {
                info: &old_revoked,
                hash: &hash("tok-old"),
            },
            Delta::Workload {
                info: &wl,
                hash: &hash("tok-wl"),
            },
        ];
        let before = observe(&first);
        let mut snap = first.changed(10, deltas[0]).unwrap();
        for (i, d) in deltas.iter().enumerate().skip(1) {
            snap = snap.changed(10 + i as u64, *d).unwrap();
        }
        assert_eq!(snap.version, 20);
        // The snapshot changed from still answers as before.
        assert_eq!(observe(&first), before);

        let mut end = input(0);
        end.providers = vec![github.clone(), provider("gitlab", &["*.gitlab.example"])];
        end.placeholders = vec![
            ("XCALIBUR_A".into(), "github".into(), secret("value-a-1")),
            ("XCALIBUR_B".into(), "gitlab".into(), secret("value-b-0")),
            ("XCALIBUR_C".into(), "gitlab".into(), secret("value-c-0")),
            ("XCALIBUR_D".into(), "github".into(), secret("value-d-0")),
        ];
        end.placeholder_expiry = vec![("XCALIBUR_D".into(), 500)];
        end.rules = vec![rule_a2, rule_c];
        end.credentials = vec![
            (credential("c_ci", "ci", false), hash("tok-ci")),
            (new_cred, hash("tok-new")),
        ];
        end.revoked_credentials = vec![(old_revoked, hash("tok-old"))];
        end.workloads = vec![(wl, hash("tok-wl"))];
        let got = answers_as(&snap, &Snapshot::build(30, end, &[443], None).unwrap());
        assert_ne!(got, before);
        assert!(
            got.iter()
                .any(|l| l.contains("sent=Some(Ok(\"value-c-0|XCALIBUR_AB\"))")),
            "{got:#?}"
        );
        // The new value is scrubbed, through the scrubber's layers.
        let mut scrubber = crate::scrub::Scrubber::new(&snap.mediator);
        scrubber.add(&snap.recent, true);
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "x-echo",
            http::HeaderValue::from_static("value-c-0 value-a-1"),
        );
        scrubber.headers(&mut headers);
        assert_eq!(headers["x-echo"], "XCALIBUR_C XCALIBUR_A");
    }
}
