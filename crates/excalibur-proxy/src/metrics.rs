//! Proxy metrics (Prometheus): requests by decision and principal kind, upstream
//! latency, substitutions. Labels never carry principal ids, hosts or secrets.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of `excalibur_proxy_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `allow` or `deny`.
    pub decision: String,
    /// Principal kind, e.g. `service_credential`, `attested_workload`, `unidentified`.
    pub principal_kind: String,
}

/// The proxy's metric handles (cheap to clone).
#[derive(Debug, Clone)]
pub struct ProxyMetrics {
    requests: Family<RequestLabels, Counter>,
    upstream_latency: Histogram,
    substitutions: Counter,
    parked: Gauge,
}

impl ProxyMetrics {
    /// Creates the metrics and registers them.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            requests: Family::default(),
            upstream_latency: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            substitutions: Counter::default(),
            parked: Gauge::default(),
        };
        registry.register(
            "excalibur_proxy_requests",
            "Proxied requests by decision and principal kind",
            m.requests.clone(),
        );
        registry.register(
            "excalibur_proxy_upstream_latency_seconds",
            "Time from forwarding a request to the upstream's response head",
            m.upstream_latency.clone(),
        );
        registry.register(
            "excalibur_proxy_substitutions",
            "Placeholders substituted into requests",
            m.substitutions.clone(),
        );
        registry.register(
            "excalibur_proxy_tunnels_parked",
            "Idle intercepted HTTP/1 tunnels holding only their TLS session",
            m.parked.clone(),
        );
        m
    }

    /// Counts one request.
    pub fn request(&self, decision: &str, principal_kind: &str) {
        self.requests
            .get_or_create(&RequestLabels {
                decision: decision.to_owned(),
                principal_kind: principal_kind.to_owned(),
            })
            .inc();
    }

    /// Records an upstream latency.
    pub fn upstream(&self, seconds: f64) {
        self.upstream_latency.observe(seconds);
    }

    /// The gauge of parked tunnels.
    pub(crate) fn parked(&self) -> &Gauge {
        &self.parked
    }

    /// Counts substituted placeholders.
    pub fn substituted(&self, n: usize) {
        self.substitutions
            .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
    }
}
