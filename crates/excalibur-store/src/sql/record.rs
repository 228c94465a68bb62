//! Recording: flows in flight (write-ahead intents), completed flows and audit events,
//! written in the caller's transaction with multi-row statements.

use std::fmt::Write as _;

use excalibur_core::api::Flow;
use excalibur_core::audit::{GENESIS_HASH, NewEvent, chain_hash_canonical};
use excalibur_core::ids::AuditSeq;
use excalibur_core::time::Timestamp;

use super::{HeadKey, Inner, head_mac};
use crate::StoreError;
use crate::db::{Mode, Tx, Value, params};

impl crate::RecordBatch {
    /// The transaction kind its commit needs.
    pub(super) fn mode(&self) -> Mode {
        if self.synced {
            Mode::RecordSynced
        } else {
            Mode::Record
        }
    }
}

impl super::SqlStore {
    /// Writes one recording batch on the calling thread. With a journal (SQLite) its
    /// intents are appended there first, and a batch of intents alone needs no
    /// transaction; the completions' intents are forgotten once their commit is done.
    pub(super) fn record_batch(
        inner: &Inner,
        batch: &crate::RecordBatch,
    ) -> Result<(), StoreError> {
        let Some(journal) = inner.journal.get() else {
            return Self::tx_here(inner, batch.mode(), |inner, tx| {
                record(inner, tx, batch, false)
            });
        };
        journal.append(&batch.gateway, &batch.intents, batch.synced)?;
        if batch.flows.is_empty() && batch.events.is_empty() {
            return Ok(());
        }
        Self::tx_here(inner, batch.mode(), |inner, tx| {
            record(inner, tx, batch, true)
        })?;
        journal.completed(batch.flows.iter().map(|f| f.id.as_str()), batch.synced);
        Ok(())
    }

    /// Journals flows in flight at `path` from now on, after moving what a previous
    /// process left open there into `flow_intents` (those whose completion was not
    /// committed), where the sweep completes them as `interrupted`. Refused while
    /// another process holds the journal (one process per SQLite database). Blocking.
    pub(crate) fn adopt_journal(&self, path: &std::path::Path) -> Result<(), StoreError> {
        // A predecessor shutting down may hold the journal for a few seconds more.
        let file = crate::journal::lock(path, std::time::Duration::from_secs(10))?;
        let left = crate::journal::left_open(path)?;
        if !left.is_empty() {
            let n = left.len();
            Self::tx_here(&self.inner, Mode::Write, |_, tx| {
                for f in &left {
                    tx.execute(
                        "INSERT INTO flow_intents (id, gateway, body) SELECT ?1, ?2, ?3
                         WHERE NOT EXISTS (SELECT 1 FROM flows WHERE id = ?1)
                         ON CONFLICT (id) DO NOTHING",
                        params![f.id, f.gateway, f.body],
                    )?;
                }
                Ok(())
            })?;
            tracing::info!(flows = n, "the flow journal of the last run is read back");
        }
        let journal = crate::journal::IntentJournal::create(path, file)?;
        self.inner
            .journal
            .set(journal)
            .map_err(|_| StoreError::Invalid("the flow journal is already open".into()))
    }
}

/// Writes one recording batch: intents (in flight, in `flow_intents`), completions
/// (each deleting its intent) and events, in the caller's transaction. `journaled`: the
/// intents are in the SQLite journal instead, so none is inserted or deleted here.
pub(super) fn record(
    inner: &Inner,
    tx: &mut dyn Tx,
    batch: &crate::RecordBatch,
    journaled: bool,
) -> Result<(), StoreError> {
    if !journaled {
        let mark = Value::from(&batch.gateway);
        let rows = batch
            .intents
            .iter()
            .map(|f| {
                Ok(vec![
                    Value::from(&f.id),
                    mark.clone(),
                    Value::from(serde_json::to_string(f).map_err(StoreError::Corrupt)?),
                ])
            })
            .collect::<Result<_, StoreError>>()?;
        insert_rows(tx, INTENT_COLUMNS, rows, " ON CONFLICT (id) DO NOTHING")?;
    }
    let rows = batch
        .flows
        .iter()
        .map(flow_values)
        .collect::<Result<_, _>>()?;
    insert_rows(
        tx,
        FLOW_COLUMNS,
        rows,
        " ON CONFLICT (id) DO UPDATE SET ts_ms = excluded.ts_ms, body = excluded.body,
         principal = excluded.principal, host = excluded.host,
         decision = excluded.decision",
    )?;
    if !journaled {
        delete_intents(tx, &batch.flows)?;
    }
    append_events(tx, &inner.head_key, &batch.events)
}

/// Deletes the intents of `flows`, whose completions this transaction writes (a flow
/// that had none costs a lookup in a table of what is in flight).
fn delete_intents(tx: &mut dyn Tx, flows: &[Flow]) -> Result<(), StoreError> {
    let mut rest = flows;
    while !rest.is_empty() {
        let (now, later) = rest.split_at(chunk_len(rest.len()));
        rest = later;
        let mut sql = String::from("DELETE FROM flow_intents WHERE id IN (");
        for i in 1..=now.len() {
            let _ = write!(sql, "{}?{i}", if i == 1 { "" } else { ", " });
        }
        sql.push(')');
        let ids: Vec<Value> = now.iter().map(|f| Value::from(&f.id)).collect();
        tx.execute(&sql, &ids)?;
    }
    Ok(())
}

pub(super) fn append_events(
    tx: &mut dyn Tx,
    key: &HeadKey,
    events: &[NewEvent],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let head: Option<(i64, String)> = tx.query_opt(
        "SELECT seq, hash FROM audit_head WHERE id = 1",
        params![],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let (mut seq, mut prev) = head.unwrap_or((0, GENESIS_HASH.to_owned()));
    let mut rows = Vec::with_capacity(events.len());
    for e in events {
        seq += 1;
        let now = Timestamp::now();
        let ts = now.to_rfc3339();
        let details = excalibur_core::canonical::to_vec(&e.details);
        let hash = chain_hash_canonical(
            AuditSeq(seq),
            &ts,
            e.event_type.as_str(),
            &e.principal,
            &details,
            &prev,
        );
        rows.push(vec![
            Value::from(seq),
            Value::from(ts),
            Value::from(now.millis()),
            Value::from(e.event_type.as_str()),
            Value::from(&e.principal),
            Value::from(String::from_utf8(details).unwrap_or_default()),
            Value::from(std::mem::replace(&mut prev, hash.clone())),
            Value::from(hash),
        ]);
    }
    insert_rows(
        tx,
        "audit_events (seq, ts, ts_ms, type, principal, details, prev_hash, hash)",
        rows,
        "",
    )?;
    tx.execute(
        "INSERT INTO audit_head (id, seq, hash, mac) VALUES (1, ?1, ?2, ?3)
         ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, mac = excluded.mac",
        params![seq, prev, head_mac(key, seq, &prev)],
    )?;
    Ok(())
}

/// The columns of a flow row, as [`flow_values`] gives them.
pub(super) const FLOW_COLUMNS: &str = "flows (id, ts_ms, body, principal, host, decision)";
/// The columns of a flow in flight: its id, the gateway instance sending it, the flow.
const INTENT_COLUMNS: &str = "flow_intents (id, gateway, body)";

pub(super) fn flow_values(f: &Flow) -> Result<Vec<Value>, StoreError> {
    let ms = Timestamp::parse(&f.ts)
        .map(Timestamp::millis)
        .unwrap_or_default();
    Ok(vec![
        Value::from(&f.id),
        Value::from(ms),
        Value::from(serde_json::to_string(f).map_err(StoreError::Corrupt)?),
        Value::from(&f.principal),
        Value::from(&f.host),
        Value::from(&f.decision),
    ])
}

/// Inserts `rows` (each as many values as the column list names) with multi-row
/// `INSERT`s followed by `conflict` (an `ON CONFLICT` clause or nothing): a batch of
/// records costs a few round trips under the write lock, not two per record.
pub(super) fn insert_rows(
    tx: &mut dyn Tx,
    into: &str,
    rows: Vec<Vec<Value>>,
    conflict: &str,
) -> Result<(), StoreError> {
    let mut rows = rows.into_iter().peekable();
    let mut left = rows.len();
    while rows.peek().is_some() {
        let take = chunk_len(left);
        left -= take;
        let mut sql = String::with_capacity(into.len() + conflict.len() + take * 48);
        sql.push_str("INSERT INTO ");
        sql.push_str(into);
        sql.push_str(" VALUES ");
        let mut params = Vec::new();
        for (i, row) in rows.by_ref().take(take).enumerate() {
            sql.push_str(if i == 0 { "(" } else { ", (" });
            for (j, v) in row.into_iter().enumerate() {
                if j > 0 {
                    sql.push_str(", ");
                }
                params.push(v);
                let _ = write!(sql, "?{}", params.len());
            }
            sql.push(')');
        }
        sql.push_str(conflict);
        tx.execute(&sql, &params)?;
    }
    Ok(())
}

/// How many of `left` (> 0) rows the next statement takes: 256, or the largest power of
/// two below `left`. At most nine statement shapes per table, so the prepared statements
/// stay cached whatever the batch size; 8 columns x 256 stays far below both databases'
/// limit on parameters (SQLite 32,766; PostgreSQL 65,535).
fn chunk_len(left: usize) -> usize {
    const CHUNK: usize = 256;
    if left >= CHUNK {
        CHUNK
    } else {
        1 << left.ilog2()
    }
}
