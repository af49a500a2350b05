//! What objectives are measured on: the request records and safety counts
//! in the rollups, summed per time bucket, and the canary analysis's
//! verdicts.

use super::telemetry::{summed_columns, summed_values};
use super::{RollupRow, Store, StoreResult, with_db};
use sqlx::Row;

/// One automatic canary decision.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CanaryVerdictRow {
    /// The service.
    pub service_id: i64,
    /// The canary's version.
    pub canary_version: i64,
    /// The version it was compared with.
    pub stable_version: i64,
    /// `aborted` or `promoted`.
    pub decision: String,
    /// Why.
    pub reason: String,
    /// When, Unix milliseconds.
    pub decided_at: i64,
}

/// Which of a service's rows [`Store::record_buckets`] sums.
#[derive(Debug, Clone)]
pub enum Records {
    /// The request records (`_requests`) and every safety count.
    Objectives,
    /// The request records and safety counts of two policy versions: rows
    /// whose name ends in either suffix (`@v12`).
    Versions(String, String),
}

impl Store {
    /// Per dependency and per bucket of `bucket_ms` (aligned to the epoch),
    /// the column sums of `service_id`'s `records` since `since_ms`. Each
    /// row's `minute_ms` is its bucket's start.
    pub async fn record_buckets(
        &self,
        service_id: i64,
        since_ms: i64,
        bucket_ms: i64,
        records: &Records,
    ) -> StoreResult<Vec<RollupRow>> {
        let which = match records {
            Records::Objectives => {
                "(dependency = '_requests' OR dependency LIKE '\\_safety-%' ESCAPE '\\')"
            }
            Records::Versions(..) => "(dependency LIKE $3 OR dependency LIKE $4)",
        };
        // The bucket width is written into the text, not bound: SQLite
        // numbers parameters by first appearance, and it would come first.
        // It is an integer of ours, never input.
        let bucket_ms = bucket_ms.max(1);
        let sql = format!(
            "SELECT dependency, (minute_ms / {bucket_ms}) * {bucket_ms} AS bucket, {} \
             FROM telemetry_rollups \
             WHERE service_id = $1 AND minute_ms >= $2 AND {which} \
             GROUP BY dependency, bucket ORDER BY bucket",
            summed_columns()
        );
        with_db!(self, pool => {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(service_id)
                .bind(since_ms);
            if let Records::Versions(a, b) = records {
                // Version suffixes hold no LIKE wildcards (`@v` and digits).
                query = query.bind(format!("%{a}")).bind(format!("%{b}"));
            }
            let rows = query.fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let values = summed_values(&row, 2)?;
                out.push(RollupRow {
                    service_id,
                    dependency: row.try_get(0)?,
                    minute_ms: row.try_get(1)?,
                    values,
                });
            }
            Ok(out)
        })
    }

    /// Records a canary decision; a second one for the same canary is
    /// ignored (two evaluators racing decide once).
    pub async fn record_canary_verdict(&self, v: &CanaryVerdictRow) -> StoreResult<bool> {
        with_db!(self, pool => {
            let done = sqlx::query(
                "INSERT INTO canary_verdicts \
                 (service_id, canary_version, stable_version, decision, reason, decided_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (service_id, canary_version) DO NOTHING",
            )
            .bind(v.service_id)
            .bind(v.canary_version)
            .bind(v.stable_version)
            .bind(&v.decision)
            .bind(&v.reason)
            .bind(v.decided_at)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// A service's canary decisions, newest first, at most `limit`.
    pub async fn canary_verdicts(
        &self,
        service_id: i64,
        limit: i64,
    ) -> StoreResult<Vec<CanaryVerdictRow>> {
        with_db!(self, pool => {
            Ok(sqlx::query_as::<_, CanaryVerdictRow>(
                "SELECT service_id, canary_version, stable_version, decision, reason, decided_at \
                 FROM canary_verdicts WHERE service_id = $1 ORDER BY decided_at DESC LIMIT $2",
            )
            .bind(service_id)
            .bind(limit)
            .fetch_all(pool)
            .await?)
        })
    }
}
