//! Telemetry from agents: receipts that make a resent batch count once, and
//! one-minute rollups per (service, dependency) that add up across batches,
//! instances and replicas.
//!
//! Many batches are written in one transaction (group commit, see
//! `crate::telemetry::writer`): one fsync acknowledges them all, which is
//! what lets one SQLite file take a large fleet's flushes.

use super::{InstanceRow, Store, StoreResult, with_db};
use sqlx::Row;
use std::collections::{BTreeMap, HashSet};

/// The additive columns of a rollup, in the order [`RollupRow::values`] holds
/// them: the counters, then one column per latency bucket of
/// `shared::protocol::LATENCY_BUCKETS_MS`. The buckets stay last (readers
/// slice them off from [`ROLLUP_FIRST_BUCKET`] to the end), so a new counter
/// goes before them; every query names its columns, so the order of the
/// table's columns (a new one is added at its end) does not matter.
pub const ROLLUP_COLUMNS: [&str; ROLLUP_WIDTH] = [
    "calls",
    "successes",
    "failures",
    "timeouts",
    "retries",
    "retry_budget_exhausted",
    "breaker_rejections",
    "bulkhead_rejections",
    "rate_limited",
    "shed",
    "fallbacks",
    "degraded",
    "repairs",
    "tokens",
    "cost_usd_micros",
    "latency_sum_ms",
    "idempotency_conflicts",
    "duplicates_prevented",
    "status_degraded",
    "status_partial",
    "status_queued",
    "status_paused",
    "status_refused",
    "b00",
    "b01",
    "b02",
    "b03",
    "b04",
    "b05",
    "b06",
    "b07",
    "b08",
    "b09",
    "b10",
    "b11",
    "b12",
    "b13",
    "b14",
    "b15",
];
/// How many additive columns a rollup has.
pub const ROLLUP_WIDTH: usize = 39;
/// Where the latency buckets start in [`ROLLUP_COLUMNS`].
pub const ROLLUP_FIRST_BUCKET: usize = 23;

/// The SELECT list that sums every rollup column. SUM of a BIGINT is
/// NUMERIC on Postgres: cast back, so that both backends hand over an i64.
pub(super) fn summed_columns() -> String {
    ROLLUP_COLUMNS
        .map(|c| format!("CAST(SUM({c}) AS BIGINT)"))
        .join(", ")
}

/// The rollup values of a row whose columns from `first` on are
/// [`summed_columns`]; a sum over no rows (NULL) is 0.
pub(super) fn summed_values<R>(row: &R, first: usize) -> Result<[i64; ROLLUP_WIDTH], sqlx::Error>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let mut values = [0i64; ROLLUP_WIDTH];
    for (i, v) in values.iter_mut().enumerate() {
        *v = row.try_get::<Option<i64>, _>(first + i)?.unwrap_or(0);
    }
    Ok(values)
}

/// One (service, dependency, minute) of counts, either a delta to add or a
/// stored total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupRow {
    /// The service.
    pub service_id: i64,
    /// The dependency's name, as the agent reports it.
    pub dependency: String,
    /// The minute's start, Unix milliseconds.
    pub minute_ms: i64,
    /// Values in [`ROLLUP_COLUMNS`] order.
    pub values: [i64; ROLLUP_WIDTH],
}

/// What identifies a batch: the same three again is a resend.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReceiptKey {
    /// The service its token names.
    pub service_id: i64,
    /// The reporting instance.
    pub instance_id: String,
    /// The batch's sequence number.
    pub sequence: i64,
}

/// One batch to record: its receipt, and the rollup deltas it adds if new.
#[derive(Debug, Clone)]
pub struct BatchWrite {
    /// Identifies the batch.
    pub receipt: ReceiptKey,
    /// Deltas to add, one per (dependency, minute).
    pub rollups: Vec<RollupRow>,
}

/// An instance as last heard from, with its service.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FleetInstanceRow {
    /// The service.
    pub service_id: i64,
    /// The instance.
    #[sqlx(flatten)]
    pub instance: InstanceRow,
}

// Rows per multi-row statement: well under SQLite's 32 766 bound parameters.
const RECEIPTS_PER_STATEMENT: usize = 500;
const ROLLUPS_PER_STATEMENT: usize = 200;

fn receipts_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO telemetry_receipts (service_id, instance_id, sequence, received_at) VALUES ",
    );
    for i in 0..rows {
        let b = i * 4;
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(&format!("(${}, ${}, ${}, ${})", b + 1, b + 2, b + 3, b + 4));
    }
    sql.push_str(" ON CONFLICT DO NOTHING RETURNING service_id, instance_id, sequence");
    sql
}

fn rollups_sql(rows: usize) -> String {
    let per_row = 3 + ROLLUP_WIDTH;
    let mut sql = format!(
        "INSERT INTO telemetry_rollups (service_id, dependency, minute_ms, {}) VALUES ",
        ROLLUP_COLUMNS.join(", ")
    );
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push('(');
        for j in 0..per_row {
            if j > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${}", i * per_row + j + 1));
        }
        sql.push(')');
    }
    sql.push_str(" ON CONFLICT (service_id, dependency, minute_ms) DO UPDATE SET ");
    let sets: Vec<String> = ROLLUP_COLUMNS
        .iter()
        .map(|c| format!("{c} = telemetry_rollups.{c} + excluded.{c}"))
        .collect();
    sql.push_str(&sets.join(", "));
    sql
}

impl Store {
    /// Records a group of batches in one transaction and reports, per batch
    /// in the order given, whether it was new. A batch already received (or
    /// repeated within the group) adds nothing. Receipts are inserted in key
    /// order and rollups in key order, so concurrent writers on Postgres lock
    /// rows in the same order and cannot deadlock each other.
    pub async fn record_telemetry(
        &self,
        batches: &[BatchWrite],
        now_ms: i64,
    ) -> StoreResult<Vec<bool>> {
        let mut order: Vec<usize> = (0..batches.len()).collect();
        order.sort_by(|a, b| batches[*a].receipt.cmp(&batches[*b].receipt));
        let mut seen = HashSet::new();
        order.retain(|i| seen.insert(&batches[*i].receipt));

        with_db!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut inserted: HashSet<ReceiptKey> = HashSet::new();
            for chunk in order.chunks(RECEIPTS_PER_STATEMENT) {
                let sql = receipts_sql(chunk.len());
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for i in chunk {
                    let r = &batches[*i].receipt;
                    q = q.bind(r.service_id).bind(&r.instance_id).bind(r.sequence).bind(now_ms);
                }
                for row in q.fetch_all(&mut *tx).await? {
                    inserted.insert(ReceiptKey {
                        service_id: row.try_get(0)?,
                        instance_id: row.try_get(1)?,
                        sequence: row.try_get(2)?,
                    });
                }
            }
            // Batches of one group often share a (dependency, minute); adding
            // them up here writes each row once.
            let mut merged: BTreeMap<(i64, &str, i64), [i64; ROLLUP_WIDTH]> = BTreeMap::new();
            for b in batches.iter().filter(|b| inserted.contains(&b.receipt)) {
                for r in &b.rollups {
                    let sum = merged
                        .entry((r.service_id, r.dependency.as_str(), r.minute_ms))
                        .or_insert([0; ROLLUP_WIDTH]);
                    for (s, v) in sum.iter_mut().zip(r.values) {
                        *s = s.saturating_add(v);
                    }
                }
            }
            let rows: Vec<_> = merged.into_iter().collect();
            for chunk in rows.chunks(ROLLUPS_PER_STATEMENT) {
                let sql = rollups_sql(chunk.len());
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for ((service_id, dependency, minute_ms), values) in chunk {
                    q = q.bind(*service_id).bind(*dependency).bind(*minute_ms);
                    for v in values {
                        q = q.bind(*v);
                    }
                }
                q.execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(batches.iter().map(|b| inserted.remove(&b.receipt)).collect())
        })
    }

    /// A service's stored rollups from `since_ms` on, oldest first.
    pub async fn rollups(&self, service_id: i64, since_ms: i64) -> StoreResult<Vec<RollupRow>> {
        let sql = format!(
            "SELECT service_id, dependency, minute_ms, {} FROM telemetry_rollups \
             WHERE service_id = $1 AND minute_ms >= $2 ORDER BY minute_ms, dependency",
            ROLLUP_COLUMNS.join(", ")
        );
        with_db!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(service_id)
                .bind(since_ms)
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let mut values = [0i64; ROLLUP_WIDTH];
                for (i, v) in values.iter_mut().enumerate() {
                    *v = row.try_get(3 + i)?;
                }
                out.push(RollupRow {
                    service_id: row.try_get(0)?,
                    dependency: row.try_get(1)?,
                    minute_ms: row.try_get(2)?,
                    values,
                });
            }
            Ok(out)
        })
    }

    /// How many batch receipts a service has.
    pub async fn telemetry_receipt_count(&self, service_id: i64) -> StoreResult<i64> {
        with_db!(self, pool => {
            let (n,): (i64,) =
                sqlx::query_as("SELECT COUNT(*) FROM telemetry_receipts WHERE service_id = $1")
                    .bind(service_id)
                    .fetch_one(pool)
                    .await?;
            Ok(n)
        })
    }

    /// Deletes receipts received before `receipts_before_ms` and rollups of
    /// minutes before `rollups_before_ms`. Returns how many of each went.
    pub async fn prune_telemetry(
        &self,
        receipts_before_ms: i64,
        rollups_before_ms: i64,
        records_before_ms: i64,
    ) -> StoreResult<(u64, u64)> {
        with_db!(self, pool => {
            let receipts = sqlx::query("DELETE FROM telemetry_receipts WHERE received_at < $1")
                .bind(receipts_before_ms)
                .execute(pool)
                .await?
                .rows_affected();
            // The request records and safety counts are what objectives'
            // windows (up to 90 days) are measured on: kept longer.
            let rollups = sqlx::query(
                "DELETE FROM telemetry_rollups WHERE minute_ms < $1 \
                 AND dependency NOT LIKE '\\_requests%' ESCAPE '\\' \
                 AND dependency NOT LIKE '\\_safety-%' ESCAPE '\\'",
            )
            .bind(rollups_before_ms)
            .execute(pool)
            .await?
            .rows_affected();
            let records = sqlx::query("DELETE FROM telemetry_rollups WHERE minute_ms < $1")
                .bind(records_before_ms.min(rollups_before_ms))
                .execute(pool)
                .await?
                .rows_affected();
            Ok((receipts, rollups + records))
        })
    }

    /// Every instance heard from since `since_ms`, of every service: one
    /// query for the fleet view instead of one per service.
    pub async fn all_instances(&self, since_ms: i64) -> StoreResult<Vec<FleetInstanceRow>> {
        with_db!(self, pool => {
            Ok(sqlx::query_as::<_, FleetInstanceRow>(
                "SELECT service_id, instance_id, agent_version, policy_version, policy_source, started_at, last_seen_at, \
                 refused_version, refused_source, refused_errors, refused_at \
                 FROM instances WHERE last_seen_at >= $1 ORDER BY service_id, instance_id",
            )
            .bind(since_ms)
            .fetch_all(pool)
            .await?)
        })
    }
}
