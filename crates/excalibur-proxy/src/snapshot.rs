//! [`Snapshot`]: everything the request path reads, immutable, swapped atomically after
//! each store commit. A request loads it once and keeps it to the end.

use std::sync::Arc;

use excalibur_core::Secret;
use excalibur_core::api::{Provider, ServiceCredentialInfo, TranslationRule};
use excalibur_core::hosts::HostPattern;
use excalibur_identity::{CredentialEntry, CredentialIndex};
use excalibur_mediation::Mediator;
use excalibur_policy::Policy;

/// The inputs a snapshot is built from (read from the store in one transaction).
#[derive(Debug, Default)]
pub struct SnapshotInput {
    /// `(placeholder, provider id, real value)`.
    pub placeholders: Vec<(String, String, Secret)>,
    /// Providers.
    pub providers: Vec<Provider>,
    /// Live service credentials with their token hashes.
    pub credentials: Vec<(ServiceCredentialInfo, String)>,
    /// Translation rules.
    pub rules: Vec<TranslationRule>,
}

/// The request path's view of configuration.
#[derive(Debug)]
pub struct Snapshot {
    /// Monotonic version, for logs and metrics.
    pub version: u64,
    /// Service credentials by token hash.
    pub credentials: CredentialIndex,
    /// Compiled decisions.
    pub policy: Policy,
    /// Placeholder automata and values.
    pub mediator: Arc<Mediator>,
}

impl Snapshot {
    /// An empty snapshot: nobody is identified, nothing is allowed.
    pub fn empty() -> Self {
        Self::build(0, SnapshotInput::default(), vec![443])
    }

    /// Builds a snapshot. CPU-bound (automaton construction): call off the async threads.
    pub fn build(version: u64, input: SnapshotInput, allowed_ports: Vec<u16>) -> Self {
        let mut credentials = CredentialIndex::default();
        for (info, hash) in input.credentials {
            let Ok(source_network) = info.source_network.parse() else {
                continue;
            };
            credentials.insert(
                hash,
                CredentialEntry {
                    id: info.id,
                    name: info.name,
                    user: info.user,
                    source_network,
                    allowed_domains: info
                        .allowed_domains
                        .iter()
                        .filter_map(|d| HostPattern::parse(d).ok())
                        .collect(),
                },
            );
        }
        let bindings: Vec<(String, String)> = input
            .placeholders
            .iter()
            .map(|(n, p, _)| (n.clone(), p.clone()))
            .collect();
        let policy = Policy::compile(&input.rules, &input.providers, bindings, allowed_ports);
        let mediator = Arc::new(Mediator::new(
            input.placeholders.into_iter().map(|(n, _, v)| (n, v)).collect(),
        ));
        Self {
            version,
            credentials,
            policy,
            mediator,
        }
    }
}
