//! Excalibur's identification stage: turns what a connection carries into one
//! [`Principal`].
//!
//! **Owns:** the service-credential resolver (`Proxy-Authorization` bearer or Basic,
//! bound to a source CIDR) and its in-memory index.
//!
//! **Never:** trusts `X-Forwarded-For` or any header for the source address (only the
//! TCP peer); treats loopback as authentication; compares tokens other than by hash.
//!
//! **Start at:** [`identify`].

use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use excalibur_core::hosts::HostPattern;
use excalibur_core::ids::{CredentialId, token_hash};
use excalibur_core::principal::{Principal, PrincipalKind};
use ipnet::IpNet;

pub mod attest;
pub mod aws;
pub mod cloud;
pub mod mint;
pub mod svid;

/// A live service credential as the proxy sees it.
#[derive(Debug, Clone)]
pub struct CredentialEntry {
    /// Credential id.
    pub id: CredentialId,
    /// Name (the principal id is `service:<name>`).
    pub name: String,
    /// User.
    pub user: String,
    /// The network the token may be presented from.
    pub source_network: IpNet,
    /// Allowed destinations.
    pub allowed_domains: Vec<HostPattern>,
    /// When it stops identifying anyone (ms since the epoch), whatever the expiry
    /// sweeper has done yet.
    pub expires_ms: Option<i64>,
}

/// A live workload bearer (issued by token exchange) as the proxy sees it.
#[derive(Debug, Clone)]
pub struct WorkloadEntry {
    /// Workload id (the bearer's id, used for revocation checks in open tunnels).
    pub id: CredentialId,
    /// Principal id, e.g. `k8s:prod/payments/api`.
    pub principal: String,
    /// Namespace.
    pub namespace: String,
    /// Attestation kind, e.g. `kubernetes`.
    pub attestation: String,
    /// The address the exchange came from; the bearer works only from there.
    pub source: IpAddr,
    /// Expiry, ms since the epoch.
    pub expires_ms: i64,
    /// Providers this bearer may redeem toward (`scope=provider:<id> ...` at the
    /// exchange); empty: not restricted by scope.
    pub providers: Arc<[String]>,
    /// Attributes mapped from the subject token's claims (Cedar tags), sorted; shared
    /// with every principal it identifies (no copy per request).
    pub tags: Arc<[(String, String)]>,
    /// The actor of a delegated exchange (RFC 8693 `actor_token`).
    pub actor: Option<String>,
}

/// A NetBird developer device: identified by its overlay address.
#[derive(Debug, Clone)]
pub struct DeviceEntry {
    /// Principal id, `developer_device:<peer-id>`.
    pub principal: String,
    /// The NetBird user.
    pub user: String,
    /// Group names.
    pub groups: Vec<String>,
}

/// A live SSH-gateway session's proxy token as the proxy sees it.
#[derive(Debug, Clone)]
pub struct SessionEntry {
    /// Session id (used for revocation checks in open tunnels).
    pub id: CredentialId,
    /// Principal id, `user_session:<user>@<session>`.
    pub principal: String,
    /// The SSH user.
    pub user: String,
    /// The policy namespace of the session's route (`ssh-route:<id>`).
    pub namespace: String,
    /// How the user authenticated to the gateway (`publickey`, `certificate`), and the
    /// factors its certificate's CA asserted (e.g. `Fido2`).
    pub factor: String,
    /// Factors asserted by the user CA.
    pub factors: Vec<String>,
    /// Tags asserted by the user CA, sorted.
    pub tags: Arc<[(String, String)]>,
    /// The only address the token works from: the target host the shell runs on.
    pub source: IpAddr,
}

/// Live credentials by token hash. Persistent maps: a clone shares them, and a change
/// to the clone copies only the path to what it touches.
#[derive(Debug, Clone, Default)]
pub struct CredentialIndex {
    by_hash: imbl::HashMap<String, Arc<CredentialEntry>>,
    /// Live service credentials' ids and expiry.
    ids: imbl::HashMap<CredentialId, Option<i64>>,
    workloads: imbl::HashMap<String, Arc<WorkloadEntry>>,
    workload_expiry: imbl::HashMap<CredentialId, i64>,
    workload_providers: imbl::HashMap<CredentialId, Arc<[String]>>,
    devices: imbl::HashMap<IpAddr, Arc<DeviceEntry>>,
    device_ids: imbl::HashSet<CredentialId>,
    sessions: imbl::HashMap<String, Arc<SessionEntry>>,
    session_ids: imbl::HashSet<CredentialId>,
    /// Revoked service credentials by token hash: `(id, name)`, for attribution only.
    revoked: imbl::HashMap<String, (CredentialId, String)>,
    /// The ids of revoked credentials the expiry sweep revoked: still refused as expired.
    expired: imbl::HashSet<CredentialId>,
    /// The live service credential of each name (one per name).
    named: imbl::HashMap<String, CredentialId>,
}

impl CredentialIndex {
    /// Remembers a revoked credential under its token hash: it identifies nobody, but a
    /// request that presents it is refused, attributed to it: as `credential_expired`
    /// when `expired` (the expiry sweep revoked it: the answer does not change when the
    /// sweep runs), else as `credential_revoked`. A live credential under the same hash
    /// stops being live.
    pub fn insert_revoked(&mut self, hash: String, id: CredentialId, name: String, expired: bool) {
        if let Some(live) = self.by_hash.remove(&hash) {
            self.ids.remove(&live.id);
        }
        self.ids.remove(&id);
        if self.named.get(&name) == Some(&id) {
            self.named.remove(&name);
        }
        if expired {
            self.expired.insert(id.clone());
        } else {
            self.expired.remove(&id);
        }
        self.revoked.insert(hash, (id, name));
    }

    /// The live service credential named `name`.
    pub fn live_named(&self, name: &str) -> Option<&CredentialId> {
        self.named.get(name)
    }

    /// Adds a credential under the hex SHA-256 of its token.
    pub fn insert(&mut self, hash: String, entry: CredentialEntry) {
        self.revoked.remove(&hash);
        self.expired.remove(&entry.id);
        self.ids.insert(entry.id.clone(), entry.expires_ms);
        self.named.insert(entry.name.clone(), entry.id.clone());
        self.by_hash.insert(hash, Arc::new(entry));
    }

    /// True when the credential with this id is live.
    pub fn contains_id(&self, id: &CredentialId) -> bool {
        self.ids.contains_key(id)
    }

    /// Adds a workload bearer under the hex SHA-256 of its token.
    pub fn insert_workload(&mut self, hash: String, entry: WorkloadEntry) {
        self.workload_expiry
            .insert(entry.id.clone(), entry.expires_ms);
        if !entry.providers.is_empty() {
            self.workload_providers
                .insert(entry.id.clone(), entry.providers.clone());
        }
        self.workloads.insert(hash, Arc::new(entry));
    }

    /// The providers a workload bearer's scopes allow, when its scopes restrict them.
    pub fn scoped_providers(&self, id: &CredentialId) -> Option<&[String]> {
        self.workload_providers.get(id).map(|p| &p[..])
    }

    /// Adds a NetBird device under its overlay address (which must lie in the configured
    /// overlay network: the binary checks, so loopback is never an identity by default).
    pub fn insert_device(&mut self, ip: IpAddr, entry: DeviceEntry) {
        self.device_ids
            .insert(CredentialId::new(entry.principal.clone()));
        self.devices.insert(ip.to_canonical(), Arc::new(entry));
    }

    /// Adds an SSH session's proxy token under the hex SHA-256 of the token.
    pub fn insert_session(&mut self, hash: String, entry: SessionEntry) {
        self.session_ids.insert(entry.id.clone());
        self.sessions.insert(hash, Arc::new(entry));
    }

    /// True when the credential or workload bearer with this id is live at `now_ms`.
    pub fn is_live(&self, id: &CredentialId, now_ms: i64) -> bool {
        self.ids
            .get(id)
            .is_some_and(|exp| exp.is_none_or(|at| at > now_ms))
            || self.device_ids.contains(id)
            || self.session_ids.contains(id)
            || self
                .workload_expiry
                .get(id)
                .is_some_and(|exp| *exp > now_ms)
    }

    /// Why the credential or bearer with this id no longer identifies anyone at
    /// `now_ms` (`None`: it is live): `credential_expired` (a service credential past
    /// its expiry), `token_expired` (a workload bearer past its), else
    /// `credential_revoked`.
    pub fn not_live(&self, id: &CredentialId, now_ms: i64) -> Option<&'static str> {
        if self.is_live(id, now_ms) {
            None
        } else if self.ids.contains_key(id) || self.expired.contains(id) {
            Some("credential_expired")
        } else if self.workload_expiry.contains_key(id) {
            Some("token_expired")
        } else {
            Some("credential_revoked")
        }
    }

    /// Number of live credentials.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

/// Why a caller was not identified. Each maps to a 407 and a `proxy_auth_denied` reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unidentified {
    /// No `Proxy-Authorization`.
    #[error("no proxy credentials")]
    Missing,
    /// The header is not `Bearer <token>` or `Basic <user:token>`.
    #[error("malformed proxy credentials")]
    Malformed,
    /// No credential has this token.
    #[error("unknown proxy credential")]
    Unknown,
    /// A revoked service credential's token.
    #[error("credential `{name}` is revoked")]
    Revoked {
        /// Which.
        credential: CredentialId,
        /// Its name.
        name: String,
    },
    /// A workload bearer past its expiry.
    #[error("the workload token has expired")]
    Expired,
    /// A service credential past its `expires_at`.
    #[error("credential `{name}` has expired")]
    CredentialExpired {
        /// Which.
        credential: CredentialId,
        /// Its name.
        name: String,
    },
    /// A workload bearer presented from another address than the one it was issued to.
    #[error("the workload token was issued to another address")]
    WrongSource,
    /// A valid token presented from outside its source network: the credential must be revoked.
    #[error("credential `{credential}` used from `{source_addr}`, outside its source network")]
    SourceMismatch {
        /// The credential to revoke.
        credential: CredentialId,
        /// Its name.
        name: String,
        /// Where it came from.
        source_addr: IpAddr,
    },
}

impl Unidentified {
    /// The audit reason code.
    pub fn reason(&self) -> &'static str {
        match self {
            Unidentified::Missing => "missing_credentials",
            Unidentified::Malformed => "malformed_credentials",
            Unidentified::Unknown => "unknown_credential",
            Unidentified::Revoked { .. } => "credential_revoked",
            Unidentified::Expired => "token_expired",
            Unidentified::CredentialExpired { .. } => "credential_expired",
            Unidentified::WrongSource => "workload_source_mismatch",
            Unidentified::SourceMismatch { .. } => "source_network_mismatch",
        }
    }
}

/// Identifies a proxy caller from its TCP peer address and `Proxy-Authorization` value
/// (`now_ms` bounds workload bearers and expiring credentials).
pub fn identify(
    index: &CredentialIndex,
    peer: IpAddr,
    proxy_authorization: Option<&[u8]>,
    now_ms: i64,
) -> Result<Principal, Unidentified> {
    let source = peer.to_canonical();
    let Some(header) = proxy_authorization else {
        // A NetBird device is identified by its overlay address (WireGuard-authenticated).
        let device = index.devices.get(&source).ok_or(Unidentified::Missing)?;
        return Ok(device_principal(device, source));
    };
    let hash = token_hash(&bearer_token(header)?);
    if let Some(w) = index.workloads.get(&hash) {
        if w.expires_ms <= now_ms {
            return Err(Unidentified::Expired);
        }
        if w.source != source {
            return Err(Unidentified::WrongSource);
        }
        return Ok(workload_principal(w, source));
    }
    if let Some(sess) = index.sessions.get(&hash) {
        if sess.source != source {
            return Err(Unidentified::WrongSource);
        }
        return Ok(session_principal(sess, source));
    }
    let Some(entry) = index.by_hash.get(&hash) else {
        return Err(match index.revoked.get(&hash) {
            Some((credential, name)) if index.expired.contains(credential) => {
                Unidentified::CredentialExpired {
                    credential: credential.clone(),
                    name: name.clone(),
                }
            }
            Some((credential, name)) => Unidentified::Revoked {
                credential: credential.clone(),
                name: name.clone(),
            },
            None => Unidentified::Unknown,
        });
    };
    if entry.expires_ms.is_some_and(|at| at <= now_ms) {
        return Err(Unidentified::CredentialExpired {
            credential: entry.id.clone(),
            name: entry.name.clone(),
        });
    }
    if !entry.source_network.contains(&source) {
        return Err(Unidentified::SourceMismatch {
            credential: entry.id.clone(),
            name: entry.name.clone(),
            source_addr: source,
        });
    }
    Ok(Principal {
        id: format!("service:{}", entry.name),
        kind: PrincipalKind::ServiceCredential,
        user: entry.user.clone(),
        namespace: String::new(),
        groups: Vec::new(),
        attestation: PrincipalKind::ServiceCredential.as_str().to_owned(),
        factors: Vec::new(),
        credential_id: Some(entry.id.clone()),
        source,
        tags: Default::default(),
        actor: None,
        scopes: Default::default(),
    })
}

/// A device is attested by the overlay (a Cedar `Workload` with attestation `netbird`),
/// not an interactive human session.
fn device_principal(device: &DeviceEntry, source: IpAddr) -> Principal {
    Principal {
        id: device.principal.clone(),
        kind: PrincipalKind::AttestedWorkload,
        user: device.user.clone(),
        namespace: "netbird".to_owned(),
        groups: device.groups.clone(),
        attestation: "netbird".to_owned(),
        factors: Vec::new(),
        credential_id: Some(CredentialId::new(device.principal.clone())),
        source,
        tags: Default::default(),
        actor: None,
        scopes: Default::default(),
    }
}

fn workload_principal(w: &WorkloadEntry, source: IpAddr) -> Principal {
    Principal {
        id: w.principal.clone(),
        kind: PrincipalKind::AttestedWorkload,
        user: String::new(),
        namespace: w.namespace.clone(),
        groups: Vec::new(),
        attestation: w.attestation.clone(),
        factors: Vec::new(),
        credential_id: Some(w.id.clone()),
        source,
        tags: w.tags.clone(),
        actor: w.actor.clone(),
        scopes: w.providers.clone(),
    }
}

fn session_principal(sess: &SessionEntry, source: IpAddr) -> Principal {
    Principal {
        id: sess.principal.clone(),
        kind: PrincipalKind::Human,
        user: sess.user.clone(),
        namespace: sess.namespace.clone(),
        groups: Vec::new(),
        attestation: "ssh".to_owned(),
        factors: std::iter::once(sess.factor.clone())
            .chain(sess.factors.iter().cloned())
            .collect(),
        credential_id: Some(sess.id.clone()),
        source,
        tags: sess.tags.clone(),
        actor: None,
        scopes: Default::default(),
    }
}

/// Extracts the token from `Bearer <token>` or `Basic base64(<user>:<token>)` (the
/// form clients send from a proxy URL's userinfo).
fn bearer_token(header: &[u8]) -> Result<String, Unidentified> {
    let text = std::str::from_utf8(header)
        .map_err(|_| Unidentified::Malformed)?
        .trim();
    let (scheme, rest) = text.split_once(' ').ok_or(Unidentified::Malformed)?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        return Ok(rest.to_owned());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = STANDARD.decode(rest).map_err(|_| Unidentified::Malformed)?;
        let decoded = String::from_utf8(decoded).map_err(|_| Unidentified::Malformed)?;
        let (_, password) = decoded.split_once(':').ok_or(Unidentified::Malformed)?;
        if !password.is_empty() {
            return Ok(password.to_owned());
        }
    }
    Err(Unidentified::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> CredentialIndex {
        let mut idx = CredentialIndex::default();
        idx.insert(
            token_hash("xcs_secret"),
            CredentialEntry {
                id: CredentialId::new("svc_1"),
                name: "ci-runner".into(),
                user: "ci".into(),
                source_network: "10.0.0.0/8".parse().unwrap(),
                allowed_domains: vec![HostPattern::parse("api.github.com").unwrap()],
                expires_ms: Some(1_000),
            },
        );
        idx
    }

    /// A credential past its expiry identifies nobody at once, and an open tunnel's
    /// liveness check says so too, whatever the sweeper has done; revoking it leaves
    /// only the attribution.
    #[test]
    fn an_expired_or_revoked_credential_identifies_nobody() {
        let mut idx = index();
        let at = |idx: &CredentialIndex, now| {
            identify(
                idx,
                "10.1.2.3".parse().unwrap(),
                Some(b"Bearer xcs_secret"),
                now,
            )
            .map(|p| p.id)
            .map_err(|e| e.reason())
        };
        let id = CredentialId::new("svc_1");
        assert_eq!(at(&idx, 999), Ok("service:ci-runner".to_owned()));
        assert!(idx.is_live(&id, 999) && idx.live_named("ci-runner") == Some(&id));
        assert_eq!(at(&idx, 1_000), Err("credential_expired"));
        assert!(!idx.is_live(&id, 1_000));
        assert_eq!(
            (idx.not_live(&id, 999), idx.not_live(&id, 1_000)),
            (None, Some("credential_expired"))
        );
        let before = idx.clone();
        let revoked = |idx: &CredentialIndex, by_sweep| {
            let mut idx = idx.clone();
            idx.insert_revoked(
                token_hash("xcs_secret"),
                id.clone(),
                "ci-runner".into(),
                by_sweep,
            );
            idx
        };
        // The expiry sweep's revocation changes no answer.
        let swept = revoked(&idx, true);
        assert_eq!(at(&swept, 1_000), Err("credential_expired"));
        assert!(!swept.is_live(&id, 1_000) && swept.live_named("ci-runner").is_none());
        assert_eq!(swept.not_live(&id, 1_000), Some("credential_expired"));
        idx = revoked(&idx, false);
        assert_eq!(at(&idx, 0), Err("credential_revoked"));
        assert!(!idx.is_live(&id, 0) && idx.live_named("ci-runner").is_none());
        assert_eq!(idx.not_live(&id, 0), Some("credential_revoked"));
        // The index it was changed from is untouched.
        assert_eq!(at(&before, 0), Ok("service:ci-runner".to_owned()));
    }

    #[test]
    fn session_tokens_work_only_from_the_target_host() {
        let mut idx = index();
        idx.insert_session(
            token_hash("xss_tok"),
            SessionEntry {
                id: CredentialId::new("sess_1"),
                principal: "user_session:alice@sess_1".into(),
                user: "alice".into(),
                namespace: "ssh-route:sshr_1".into(),
                factor: "publickey".into(),
                factors: Vec::new(),
                tags: Default::default(),
                source: "10.9.9.9".parse().unwrap(),
            },
        );
        let p = identify(
            &idx,
            "10.9.9.9".parse().unwrap(),
            Some(b"Bearer xss_tok"),
            0,
        )
        .unwrap();
        assert_eq!(p.id, "user_session:alice@sess_1");
        assert!(p.kind.is_human());
        assert!(idx.is_live(&CredentialId::new("sess_1"), 0));
        let e = identify(
            &idx,
            "10.9.9.8".parse().unwrap(),
            Some(b"Bearer xss_tok"),
            0,
        )
        .unwrap_err();
        assert_eq!(e.reason(), "workload_source_mismatch");
    }

    fn check(peer: &str, header: Option<&str>, want: Result<&str, &str>) {
        let got = identify(
            &index(),
            peer.parse().unwrap(),
            header.map(str::as_bytes),
            0,
        );
        match (got, want) {
            (Ok(p), Ok(id)) => assert_eq!(p.id, id),
            (Err(e), Err(reason)) => assert_eq!(e.reason(), reason),
            (got, want) => panic!("{peer} {header:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn table() {
        check(
            "10.1.2.3",
            Some("Bearer xcs_secret"),
            Ok("service:ci-runner"),
        );
        check(
            "::ffff:10.1.2.3",
            Some("bearer xcs_secret"),
            Ok("service:ci-runner"),
        );
        let basic = format!("Basic {}", STANDARD.encode("ci-runner:xcs_secret"));
        check("10.1.2.3", Some(&basic), Ok("service:ci-runner"));
        check("10.1.2.3", None, Err("missing_credentials"));
        check("10.1.2.3", Some("Bearer"), Err("malformed_credentials"));
        check(
            "10.1.2.3",
            Some("Token xcs_secret"),
            Err("malformed_credentials"),
        );
        check(
            "10.1.2.3",
            Some("Bearer xcs_other"),
            Err("unknown_credential"),
        );
        check(
            "192.168.1.1",
            Some("Bearer xcs_secret"),
            Err("source_network_mismatch"),
        );
        check(
            "127.0.0.1",
            Some("Bearer xcs_secret"),
            Err("source_network_mismatch"),
        );
    }
}
