//! What `/healthz` (liveness: restart me) and `/readyz` (readiness: send me traffic)
//! answer, from state the process already holds (no I/O), and the same figures as
//! metrics. A state every replica shares (PostgreSQL away) degrades readiness without
//! failing it: draining every replica at once would turn clear 503s into refused
//! connections. docs/deploy.md has the table of states.

use std::sync::Arc;
use std::time::Duration;

use excalibur_api::ProbeReport;
use excalibur_core::record::Recorder as _;
use excalibur_store::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use serde_json::json;

use crate::record::ChannelRecorder;
use crate::snapshot::Snapshots;

/// The process's health, shared by the probes and the metrics.
#[derive(Debug, Clone)]
pub(crate) struct Health {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) recorder: ChannelRecorder,
    pub(crate) snapshots: Arc<Snapshots>,
    /// PostgreSQL: other replicas write, and the snapshot follows them.
    pub(crate) replicated: bool,
    /// The CA certificate's `notAfter`, Unix seconds.
    pub(crate) ca_not_after: i64,
    /// The bounds (`[health]`).
    pub(crate) bounds: crate::config::Health,
}

impl Health {
    fn snapshot_age(&self) -> Option<Duration> {
        self.replicated.then(|| self.snapshots.age()).flatten()
    }

    fn ca_remaining_secs(&self) -> i64 {
        self.ca_not_after - excalibur_core::time::Timestamp::now().millis() / 1000
    }

    fn details(&self) -> serde_json::Map<String, serde_json::Value> {
        let db = self.store.connection_stats();
        let mut d = serde_json::Map::new();
        d.insert(
            "ca_not_after".into(),
            json!(
                excalibur_core::time::Timestamp::from_millis(self.ca_not_after * 1000).to_rfc3339()
            ),
        );
        d.insert(
            "database".into(),
            json!({"lost": db.lost, "restored": db.restored}),
        );
        if let Some(age) = self.snapshot_age() {
            d.insert(
                "snapshot_age_ms".into(),
                json!(u64::try_from(age.as_millis()).unwrap_or(u64::MAX)),
            );
        }
        d
    }
}

impl excalibur_api::Probes for Health {
    fn liveness(&self) -> ProbeReport {
        let mut problems = Vec::new();
        if !self.recorder.writer_alive() {
            problems.push("recorder_stopped");
        }
        let db_away = self.store.connection_stats().unavailable;
        if !db_away
            && self
                .snapshot_age()
                .is_some_and(|a| a > self.bounds.snapshot_stuck_after)
        {
            problems.push("snapshot_stuck");
        }
        ProbeReport {
            problems,
            degraded: Vec::new(),
            details: self.details(),
        }
    }

    fn readiness(&self, database_answers: bool) -> ProbeReport {
        let mut problems = Vec::new();
        let mut degraded = Vec::new();
        // While the database is away every replica shares these states: degrade, and
        // let the request path say why (503 `audit_unavailable`, `database_unavailable`).
        let mut local = Vec::new();
        if self.recorder.failing() {
            local.push("recording_failing");
        }
        if self
            .snapshot_age()
            .is_some_and(|a| a > self.bounds.snapshot_stale_after)
        {
            local.push("snapshot_stale");
        }
        if database_answers {
            problems.extend(local);
        } else {
            degraded.push("database_unavailable");
            degraded.extend(local);
        }
        if !self.recorder.has_capacity() {
            problems.push("audit_queue_full");
        }
        let remaining = self.ca_remaining_secs();
        if remaining <= 0 {
            problems.push("ca_expired");
        } else if remaining < i64::try_from(self.bounds.ca_warn.as_secs()).unwrap_or(i64::MAX) {
            degraded.push("ca_expiring");
        }
        ProbeReport {
            problems,
            degraded,
            details: self.details(),
        }
    }
}

impl Collector for Health {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let db = self.store.connection_stats();
        let counters = [
            (
                "excalibur_database_connections_lost",
                "Times the database was found unreachable",
                db.lost,
            ),
            (
                "excalibur_database_connections_restored",
                "Times the database answered again after being unreachable",
                db.restored,
            ),
        ];
        for (name, help, value) in counters {
            let c = ConstCounter::new(value);
            c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
        }
        let gauges = [
            (
                "excalibur_database_up",
                "1 while the database answers the store's transactions",
                i64::from(!db.unavailable),
            ),
            (
                "excalibur_recording_failing",
                "1 while flows and audit events cannot be written (redemption refused)",
                i64::from(self.recorder.failing()),
            ),
            (
                "excalibur_ca_expiry_seconds",
                "Seconds until the CA certificate expires",
                self.ca_remaining_secs(),
            ),
        ];
        for (name, help, value) in gauges {
            let g = ConstGauge::new(value);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        if let Some(age) = self.snapshot_age() {
            let g = ConstGauge::new(age.as_secs_f64());
            g.encode(encoder.encode_descriptor(
                "excalibur_snapshot_age_seconds",
                "Seconds since the snapshot in force was read from the store",
                None,
                g.metric_type(),
            )?)?;
        }
        Ok(())
    }
}
