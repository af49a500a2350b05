//! The hash-chained audit log. Every entry commits to the one before it, so
//! an edited, removed or reordered row breaks the chain at a point that
//! `ballast audit verify` names.

use super::{Store, StoreResult, with_db};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::Row;

/// The hash that the first entry commits to.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What to record: who did what to what, with details.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    /// `user:NAME`, `token:ID`, `cli` or `anonymous`.
    pub actor: String,
    /// A dotted verb such as `user.create`.
    pub action: String,
    /// What the action was done to.
    pub target: String,
    /// Details. Never holds a secret.
    pub detail: Value,
}

impl AuditRecord {
    /// A record with the given parts.
    pub fn new(
        actor: impl Into<String>,
        action: impl Into<String>,
        target: impl Into<String>,
        detail: Value,
    ) -> Self {
        AuditRecord {
            actor: actor.into(),
            action: action.into(),
            target: target.into(),
            detail,
        }
    }
}

/// A stored audit entry.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// When, in Unix milliseconds.
    pub at_ms: i64,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// To what.
    pub target: String,
    /// Details as JSON text, exactly as hashed.
    pub detail: String,
    /// The previous entry's hash.
    pub prev_hash: String,
    /// This entry's hash.
    pub hash: String,
}

/// Where and why the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// The first entry that does not verify.
    pub seq: i64,
    /// Why it does not.
    pub reason: String,
}

/// The hash of one entry. Each field is length-prefixed so that moving bytes
/// from one field to the next cannot produce the same hash.
pub fn entry_hash(
    prev_hash: &str,
    seq: i64,
    at_ms: i64,
    actor: &str,
    action: &str,
    target: &str,
    detail: &str,
) -> String {
    let mut h = Sha256::new();
    for part in [
        prev_hash.as_bytes(),
        &seq.to_be_bytes(),
        &at_ms.to_be_bytes(),
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    for part in [actor, action, target, detail] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Appends `$rec` to the audit chain inside the open transaction `$tx`, so
/// that the change and its audit entry commit or vanish together. The first
/// statement takes the write lock on `audit_head`, which serialises appenders
/// on both backends and keeps the chain from forking. Evaluates to the seq.
macro_rules! append_audit {
    ($tx:expr, $now_ms:expr, $rec:expr) => {{
        use sqlx::Row as _;
        let rec: &$crate::store::AuditRecord = $rec;
        let now_ms: i64 = $now_ms;
        let head = sqlx::query(
            "UPDATE audit_head SET last_seq = last_seq + 1 WHERE id = 1 RETURNING last_seq, last_hash",
        )
        .fetch_one(&mut *$tx)
        .await?;
        let seq: i64 = head.try_get("last_seq")?;
        let prev: String = head.try_get("last_hash")?;
        let detail = rec.detail.to_string();
        let hash = $crate::store::audit::entry_hash(
            &prev, seq, now_ms, &rec.actor, &rec.action, &rec.target, &detail,
        );
        sqlx::query(
            "INSERT INTO audit_log (seq, at_ms, actor, action, target, detail, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(seq)
        .bind(now_ms)
        .bind(&rec.actor)
        .bind(&rec.action)
        .bind(&rec.target)
        .bind(&detail)
        .bind(&prev)
        .bind(&hash)
        .execute(&mut *$tx)
        .await?;
        sqlx::query("UPDATE audit_head SET last_hash = $1 WHERE id = 1")
            .bind(&hash)
            .execute(&mut *$tx)
            .await?;
        seq
    }};
}
pub(crate) use append_audit;

impl Store {
    /// Appends one audit entry on its own, for events that change nothing
    /// else (a failed login, say). Returns its seq.
    pub async fn append_audit(&self, now_ms: i64, rec: &AuditRecord) -> StoreResult<i64> {
        with_db!(self, pool => {
            let mut tx = pool.begin().await?;
            let seq = append_audit!(tx, now_ms, rec);
            tx.commit().await?;
            Ok(seq)
        })
    }

    /// Entries newest first, at most `limit`, older than `before_seq` if given.
    pub async fn list_audit(
        &self,
        limit: i64,
        before_seq: Option<i64>,
    ) -> StoreResult<Vec<AuditRow>> {
        let before = before_seq.unwrap_or(i64::MAX);
        with_db!(self, pool => {
            Ok(sqlx::query_as::<_, AuditRow>(
                "SELECT seq, at_ms, actor, action, target, detail, prev_hash, hash FROM audit_log \
                 WHERE seq < $1 ORDER BY seq DESC LIMIT $2",
            )
            .bind(before)
            .bind(limit)
            .fetch_all(pool)
            .await?)
        })
    }

    /// Walks the whole chain in order and reports the first broken link, or
    /// the number of entries if the chain is whole. Reads in pages so that a
    /// long log does not have to fit in memory.
    pub async fn verify_audit(&self) -> StoreResult<Result<i64, ChainBreak>> {
        const PAGE: i64 = 1000;
        let mut expected_seq = 1i64;
        let mut prev = GENESIS_HASH.to_owned();
        loop {
            let rows = with_db!(self, pool => {
                sqlx::query_as::<_, AuditRow>(
                    "SELECT seq, at_ms, actor, action, target, detail, prev_hash, hash FROM audit_log \
                     WHERE seq >= $1 ORDER BY seq ASC LIMIT $2",
                )
                .bind(expected_seq)
                .bind(PAGE)
                .fetch_all(pool)
                .await?
            });
            let page_len = rows.len() as i64;
            for row in rows {
                if row.seq != expected_seq {
                    return Ok(Err(ChainBreak {
                        seq: expected_seq,
                        reason: format!("entry {expected_seq} is missing (next is {})", row.seq),
                    }));
                }
                if row.prev_hash != prev {
                    return Ok(Err(ChainBreak {
                        seq: row.seq,
                        reason: "does not commit to the previous entry".into(),
                    }));
                }
                let recomputed = entry_hash(
                    &row.prev_hash,
                    row.seq,
                    row.at_ms,
                    &row.actor,
                    &row.action,
                    &row.target,
                    &row.detail,
                );
                if recomputed != row.hash {
                    return Ok(Err(ChainBreak {
                        seq: row.seq,
                        reason: "its content does not match its hash (edited)".into(),
                    }));
                }
                prev = row.hash;
                expected_seq += 1;
            }
            if page_len < PAGE {
                break;
            }
        }
        // Entries cut off the end leave a whole but shorter chain; the head
        // remembers how long the chain was.
        let (last_seq, last_hash): (i64, String) = with_db!(self, pool => {
            let row = sqlx::query("SELECT last_seq, last_hash FROM audit_head WHERE id = 1")
                .fetch_one(pool)
                .await?;
            (row.try_get("last_seq")?, row.try_get("last_hash")?)
        });
        let count = expected_seq - 1;
        if last_seq != count || last_hash != prev {
            return Ok(Err(ChainBreak {
                seq: count + 1,
                reason: format!("the log ends at entry {count} but the head says {last_seq}"),
            }));
        }
        Ok(Ok(count))
    }
}
