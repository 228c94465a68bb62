//! Audit events and the hash chain that makes the log tamper-evident.
//!
//! `hash = SHA-256(prev_hash || canonical_json({seq, ts, type, principal, details, prev_hash}))`,
//! hex-encoded. Binding `seq` and `prev_hash` into every record makes edits, deletions
//! and reordering visible; tail truncation is caught by the store's authenticated head.

use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::canonical;
use crate::ids::AuditSeq;
use crate::secret::hex;

/// The `prev_hash` of the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

macro_rules! event_types {
    ($($(#[$doc:meta])* $variant:ident => $wire:literal,)*) => {
        /// Every audit event type Excalibur writes; wire names match the user docs.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventType { $($(#[$doc])* $variant,)* }

        impl EventType {
            /// All types, for docs and the OpenAPI enum.
            pub const ALL: &'static [EventType] = &[$(EventType::$variant,)*];

            /// The wire name, e.g. `placeholder_rotated`.
            pub fn as_str(self) -> &'static str {
                match self { $(EventType::$variant => $wire,)* }
            }
        }
    };
}

event_types! {
    /// An API token was minted.
    TokenCreated => "token_created",
    /// An API token was revoked.
    TokenRevoked => "token_revoked",
    /// A placeholder was created or updated (every upsert).
    PlaceholderUpdated => "placeholder_updated",
    /// A placeholder's real value changed.
    PlaceholderRotated => "placeholder_rotated",
    /// A placeholder was deleted.
    PlaceholderDeleted => "placeholder_deleted",
    /// A placeholder was headed somewhere no rule allows; it was not substituted.
    PlaceholderDenied => "placeholder_denied",
    /// A provider and its hosts were created or changed.
    ProviderUpdated => "provider_updated",
    /// A provider was deleted.
    ProviderDeleted => "provider_deleted",
    /// A service credential was minted.
    ServiceCredentialCreated => "service_credential_created",
    /// A service credential was revoked (by an admin or automatically).
    ServiceCredentialRevoked => "service_credential_revoked",
    /// A translation rule was created.
    TranslationRuleCreated => "translation_rule_created",
    /// A translation rule was deleted.
    TranslationRuleDeleted => "translation_rule_deleted",
    /// An operator Cedar policy was added.
    PolicyCreated => "policy_created",
    /// An operator Cedar policy was deleted.
    PolicyDeleted => "policy_deleted",
    /// A placeholder or service credential passed its `expires_at`.
    CredentialExpired => "credential_expired",
    /// A webhook was added.
    WebhookCreated => "webhook_created",
    /// A webhook was deleted.
    WebhookDeleted => "webhook_deleted",
    /// A namespace and its allowed domains were created or changed.
    NamespaceUpdated => "namespace_updated",
    /// A workload's platform token was verified.
    WorkloadAttested => "workload_attested",
    /// A short-lived proxy bearer was issued to a workload.
    WorkloadTokenIssued => "workload_token_issued",
    /// Excalibur's workload-token signing key was rotated.
    SigningKeyRotated => "signing_key_rotated",
    /// A workload bearer was revoked (by id or by principal: the kill switch).
    WorkloadTokenRevoked => "workload_token_revoked",
    /// A platform token was presented a second time within its lifetime.
    WorkloadTokenReplayDenied => "workload_token_replay_denied",
    /// The same subject token was exchanged again from the address that first
    /// exchanged it (a restarted workload): its earlier bearer was revoked.
    WorkloadTokenReissued => "workload_token_reissued",
    /// A principal was killed: its bearers revoked and its exchanges refused until lifted.
    PrincipalRevoked => "principal_revoked",
    /// An admin lifted a principal's standing revocation.
    PrincipalRevocationLifted => "principal_revocation_lifted",
    /// An exchange was refused because its principal is revoked.
    WorkloadExchangeDenied => "workload_exchange_denied",
    /// An operator accepted configuration rows edited outside Excalibur.
    ConfigurationAccepted => "configuration_accepted",
    /// A SigV4 mapping was created.
    Sigv4MappingCreated => "sigv4_mapping_created",
    /// A SigV4 mapping was replaced (new keys or scope: a rotation).
    Sigv4MappingUpdated => "sigv4_mapping_updated",
    /// A SigV4 mapping was deleted.
    Sigv4MappingDeleted => "sigv4_mapping_deleted",
    /// The proxy signed one request with a SigV4 mapping's key.
    Sigv4Signed => "sigv4_signed",
    /// An operator had a URL presigned with a SigV4 mapping's key.
    Sigv4Presigned => "sigv4_presigned",
    /// A JWT-bearer mapping was created.
    JwtBearerMappingCreated => "jwt_bearer_mapping_created",
    /// A JWT-bearer mapping was replaced (new key or settings: a rotation).
    JwtBearerMappingUpdated => "jwt_bearer_mapping_updated",
    /// A JWT-bearer mapping was deleted.
    JwtBearerMappingDeleted => "jwt_bearer_mapping_deleted",
    /// The proxy signed an assertion with a JWT-bearer mapping's key.
    JwtBearerSigned => "jwt_bearer_signed",
    /// The proxy exchanged an assertion for an access token (or failed to).
    JwtBearerExchange => "jwt_bearer_exchange",
    /// An upstream mTLS mapping was created.
    MtlsMappingCreated => "mtls_mapping_created",
    /// An upstream mTLS mapping was replaced (new certificate or key: a rotation).
    MtlsMappingUpdated => "mtls_mapping_updated",
    /// An upstream mTLS mapping was deleted.
    MtlsMappingDeleted => "mtls_mapping_deleted",
    /// A DPoP mapping was created (with a new proof key).
    DpopMappingCreated => "dpop_mapping_created",
    /// A DPoP mapping was replaced (a new proof key: a rotation).
    DpopMappingUpdated => "dpop_mapping_updated",
    /// A DPoP mapping was deleted.
    DpopMappingDeleted => "dpop_mapping_deleted",
    /// The proxy sent a request with a DPoP proof.
    DpopSigned => "dpop_signed",
    /// An OAuth2 refresh mapping was created.
    OauthRefreshMappingCreated => "oauth_refresh_mapping_created",
    /// An OAuth2 refresh mapping was replaced, or the proxy stored a rotated refresh token.
    OauthRefreshMappingUpdated => "oauth_refresh_mapping_updated",
    /// An OAuth2 refresh mapping was deleted.
    OauthRefreshMappingDeleted => "oauth_refresh_mapping_deleted",
    /// An SSH route was created.
    SshRouteCreated => "ssh_route_created",
    /// An SSH route was replaced.
    SshRouteUpdated => "ssh_route_updated",
    /// An SSH route was deleted.
    SshRouteDeleted => "ssh_route_deleted",
    /// A user logged in through the SSH gateway and was routed to a target.
    SshSessionStarted => "ssh_session_started",
    /// An SSH-gateway session ended (closed, revoked, target gone, restart).
    SshSessionEnded => "ssh_session_ended",
    /// The SSH gateway refused a login or a channel (with a reason).
    SshAccessDenied => "ssh_access_denied",
    /// A file was read or written over SFTP through the gateway (path, bytes).
    SftpTransfer => "sftp_transfer",
    /// The proxy refreshed an access token (or failed to).
    OauthTokenRefreshed => "oauth_token_refreshed",
    /// The proxy assumed a SigV4 mapping's role for temporary credentials (or failed to):
    /// role, expiry, status; never the credentials.
    Sigv4CredentialsAssumed => "sigv4_credentials_assumed",
    /// The NetBird peer list changed after a sync.
    NetbirdSynced => "netbird_synced",
    /// A NetBird sync failed (the last good state stays in force).
    NetbirdSyncFailed => "netbird_sync_failed",
    /// A proxy caller was identified.
    ProxyAuthOk => "proxy_auth_ok",
    /// A proxy caller was refused identification.
    ProxyAuthDenied => "proxy_auth_denied",
    /// Egress to a destination was denied.
    EgressDenied => "egress_denied",
    /// One proxied request finished.
    FlowRecorded => "flow_recorded",
    /// The gateway started.
    ServerStarted => "server_started",
    /// A signed checkpoint (Merkle tree head) of the audit log was made.
    AuditCheckpoint => "audit_checkpoint",
}

impl EventType {
    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|t| t.as_str() == s)
    }
}

impl Serialize for EventType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// An event about to be appended; the store assigns `seq`, `ts` and hashes.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// What happened.
    pub event_type: EventType,
    /// Who did it or whom it concerns (`admin:<token id>`, `service:<name>`, `system`).
    pub principal: String,
    /// Structured facts; never a secret value (fingerprints and prefixes only).
    pub details: Value,
}

impl NewEvent {
    /// Builds an event.
    pub fn new(event_type: EventType, principal: impl Into<String>, details: Value) -> Self {
        Self {
            event_type,
            principal: principal.into(),
            details,
        }
    }
}

/// A stored audit event as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEvent {
    /// Position in the chain, from 1, without gaps.
    pub seq: AuditSeq,
    /// RFC 3339 UTC time of the append.
    pub ts: String,
    /// Event type wire name.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Principal the event is about.
    pub principal: String,
    /// Structured details.
    pub details: Value,
    /// Hash of the previous event ([`GENESIS_HASH`] for the first).
    pub prev_hash: String,
    /// Hash of this event.
    pub hash: String,
}

/// Computes the chain hash of one event.
pub fn chain_hash(
    seq: AuditSeq,
    ts: &str,
    event_type: &str,
    principal: &str,
    details: &Value,
    prev_hash: &str,
) -> String {
    chain_hash_canonical(
        seq,
        ts,
        event_type,
        principal,
        &canonical::to_vec(details),
        prev_hash,
    )
}

/// [`chain_hash`] over details already in canonical form (the recorder stores those
/// same bytes). The hashed body is the canonical JSON of
/// `{seq, ts, type, principal, details, prev_hash}`, written here in sorted key order.
pub fn chain_hash_canonical(
    seq: AuditSeq,
    ts: &str,
    event_type: &str,
    principal: &str,
    details: &[u8],
    prev_hash: &str,
) -> String {
    let mut body = Vec::with_capacity(details.len() + 256);
    body.extend_from_slice(b"{\"details\":");
    body.extend_from_slice(details);
    body.extend_from_slice(b",\"prev_hash\":");
    canonical::write_str(&mut body, prev_hash);
    body.extend_from_slice(b",\"principal\":");
    canonical::write_str(&mut body, principal);
    body.extend_from_slice(format!(",\"seq\":{},\"ts\":", seq.0).as_bytes());
    canonical::write_str(&mut body, ts);
    body.extend_from_slice(b",\"type\":");
    canonical::write_str(&mut body, event_type);
    body.push(b'}');
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(prev_hash.as_bytes());
    ctx.update(&body);
    hex(ctx.finish().as_ref())
}

impl AuditEvent {
    /// Recomputes this event's hash from its fields.
    pub fn recompute_hash(&self) -> String {
        chain_hash(
            self.seq,
            &self.ts,
            &self.event_type,
            &self.principal,
            &self.details,
            &self.prev_hash,
        )
    }
}

/// The outcome of verifying the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VerifyReport {
    /// True when every event links and the head matches the authenticated head.
    pub ok: bool,
    /// Events checked.
    pub checked: i64,
    /// Seq of the last event in the log.
    pub head_seq: Option<i64>,
    /// Hash of the last event.
    pub head_hash: Option<String>,
    /// First seq at which the chain is broken.
    pub first_broken_seq: Option<i64>,
    /// Why it is broken.
    pub reason: Option<String>,
    /// Configuration rows edited outside Excalibur (`table/key (changed|added|removed)`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_rows: Vec<String>,
}

/// Incremental chain verifier: feed events in seq order, then [`ChainVerifier::finish`].
#[derive(Debug)]
pub struct ChainVerifier {
    expected_seq: i64,
    prev_hash: String,
    broken: Option<(i64, String)>,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self {
            expected_seq: 1,
            prev_hash: GENESIS_HASH.to_owned(),
            broken: None,
        }
    }
}

impl ChainVerifier {
    /// Checks the next event; stops recording after the first break.
    pub fn push(&mut self, event: &AuditEvent) {
        if self.broken.is_some() {
            return;
        }
        let reason = if event.seq.0 != self.expected_seq {
            Some(format!(
                "expected seq {} but found {}",
                self.expected_seq, event.seq.0
            ))
        } else if event.prev_hash != self.prev_hash {
            Some("prev_hash does not match the previous event".to_owned())
        } else if event.recompute_hash() != event.hash {
            Some("hash does not match the event's contents".to_owned())
        } else {
            None
        };
        if let Some(reason) = reason {
            self.broken = Some((self.expected_seq, reason));
            return;
        }
        self.expected_seq += 1;
        self.prev_hash.clone_from(&event.hash);
    }

    /// Finishes against the authenticated head `(seq, hash)` the store keeps apart from
    /// the rows (`None` for an empty log). A missing tail shows up here.
    pub fn finish(self, head: Option<(i64, &str)>) -> VerifyReport {
        let checked = self.expected_seq - 1;
        let last = (checked > 0).then(|| (checked, self.prev_hash.clone()));
        let mut broken = self.broken;
        if broken.is_none() {
            match (head, &last) {
                (None, None) => {}
                (Some((hs, hh)), Some((ls, lh))) if hs == *ls && hh == lh => {}
                (Some((hs, _)), Some((ls, _))) if hs > *ls => {
                    broken = Some((
                        ls + 1,
                        format!("events {}..={hs} are missing (tail truncated)", ls + 1),
                    ));
                }
                (Some((hs, _)), None) => {
                    broken = Some((1, format!("events 1..={hs} are missing")));
                }
                (_, Some((ls, _))) => {
                    broken = Some((
                        *ls,
                        "the last event does not match the authenticated head".to_owned(),
                    ));
                }
            }
        }
        VerifyReport {
            ok: broken.is_none(),
            checked,
            head_seq: last.as_ref().map(|l| l.0),
            head_hash: last.map(|l| l.1),
            first_broken_seq: broken.as_ref().map(|b| b.0),
            reason: broken.map(|b| b.1),
            config_rows: Vec::new(),
        }
    }
}

/// True when `event_type` matches a glob with `*` wildcards (e.g. `placeholder_*`).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(c) if Some(c) == t.get(ti) => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The hashed body written by hand in sorted key order is the canonical JSON of the
    /// event's fields, so chains written before (and verifiers elsewhere) still agree.
    #[test]
    fn chain_hash_is_hash_of_canonical_body() {
        let details = json!({"b": [1, "x\"y"], "a": {"d": null, "c": 2}});
        let body = json!({"seq": 42, "ts": "2026-01-01T00:00:00.000Z", "type": "flow_recorded",
                          "principal": "svc:ci \u{e9}", "details": details, "prev_hash": "ab\\cd"});
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(b"ab\\cd");
        ctx.update(&canonical::to_vec(&body));
        let expected = hex(ctx.finish().as_ref());
        let got = chain_hash(
            AuditSeq(42),
            "2026-01-01T00:00:00.000Z",
            "flow_recorded",
            "svc:ci \u{e9}",
            &details,
            "ab\\cd",
        );
        assert_eq!(got, expected);
    }

    fn chain(n: i64) -> Vec<AuditEvent> {
        let mut prev = GENESIS_HASH.to_owned();
        (1..=n)
            .map(|i| {
                let mut e = AuditEvent {
                    seq: AuditSeq(i),
                    ts: format!("2026-11-23T10:00:{i:02}.000Z"),
                    event_type: "placeholder_updated".into(),
                    principal: "admin:tok_1".into(),
                    details: json!({"n": i}),
                    prev_hash: prev.clone(),
                    hash: String::new(),
                };
                e.hash = e.recompute_hash();
                prev.clone_from(&e.hash);
                e
            })
            .collect()
    }

    fn verify(events: &[AuditEvent], head: Option<(i64, &str)>) -> VerifyReport {
        let mut v = ChainVerifier::default();
        events.iter().for_each(|e| v.push(e));
        v.finish(head)
    }

    #[test]
    fn detects_edit_delete_reorder_truncate() {
        let events = chain(5);
        let head = (5, events[4].hash.as_str());
        assert!(verify(&events, Some(head)).ok);

        let mut edited = events.clone();
        edited[2].details = json!({"n": 99});
        assert_eq!(verify(&edited, Some(head)).first_broken_seq, Some(3));

        let mut deleted = events.clone();
        deleted.remove(1);
        assert_eq!(verify(&deleted, Some(head)).first_broken_seq, Some(2));

        let mut reordered = events.clone();
        reordered.swap(3, 4);
        assert_eq!(verify(&reordered, Some(head)).first_broken_seq, Some(4));

        let truncated = &events[..3];
        let r = verify(truncated, Some(head));
        assert!(!r.ok);
        assert_eq!(r.first_broken_seq, Some(4));
        assert!(verify(&[], None).ok);
    }

    #[test]
    fn globs() {
        for (p, t, want) in [
            ("placeholder_*", "placeholder_rotated", true),
            ("placeholder_*", "proxy_auth_ok", false),
            ("*_denied", "proxy_auth_denied", true),
            ("proxy_auth_ok", "proxy_auth_ok", true),
            ("*", "x", true),
            ("p*_*d", "placeholder_rotated", true),
            ("p*_*x", "placeholder_rotated", false),
        ] {
            assert_eq!(glob_match(p, t), want, "{p} vs {t}");
        }
    }
}
