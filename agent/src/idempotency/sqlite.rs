use super::{Claim, DedupStore, StoreError};
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A dedup store in a SQLite file, so that keys survive a restart: a
/// redelivery after a crash must not repeat the side effect either.
#[derive(Debug, Clone)]
pub struct SqliteDedupStore {
    pool: SqlitePool,
}

fn err(e: sqlx::Error) -> StoreError {
    StoreError(e.to_string())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl SqliteDedupStore {
    /// Opens (creating if needed) the store in the file at `path`.
    pub async fn open(path: &Path) -> Result<SqliteDedupStore, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(err)?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS ballast_dedup (
                key TEXT PRIMARY KEY,
                fingerprint TEXT NOT NULL,
                result BLOB,
                expires_at_ms INTEGER NOT NULL
            )",
        )
        .execute(&pool)
        .await
        .map_err(err)?;
        Ok(SqliteDedupStore { pool })
    }
}

impl DedupStore for SqliteDedupStore {
    async fn claim(
        &self,
        key: &str,
        fingerprint: &str,
        retention: Duration,
    ) -> Result<Claim, StoreError> {
        let now = now_ms();
        let expires = now.saturating_add(retention.as_millis() as i64);
        // One statement decides: the insert happens only if the key is
        // absent or expired, so two concurrent claims cannot both be fresh.
        let inserted = sqlx::query(
            "INSERT INTO ballast_dedup (key, fingerprint, result, expires_at_ms)
             VALUES ($1, $2, NULL, $3)
             ON CONFLICT (key) DO UPDATE
               SET fingerprint = excluded.fingerprint, result = NULL,
                   expires_at_ms = excluded.expires_at_ms
               WHERE ballast_dedup.expires_at_ms <= $4",
        )
        .bind(key)
        .bind(fingerprint)
        .bind(expires)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(err)?
        .rows_affected();
        if inserted == 1 {
            return Ok(Claim::Fresh);
        }
        let row = sqlx::query("SELECT fingerprint, result FROM ballast_dedup WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        let Some(row) = row else {
            // Released between the two statements: the caller may retry.
            return Ok(Claim::InProgress);
        };
        let stored: String = row.try_get("fingerprint").map_err(err)?;
        let result: Option<Vec<u8>> = row.try_get("result").map_err(err)?;
        if stored != fingerprint {
            return Ok(Claim::Conflict { stored: result });
        }
        Ok(match result {
            Some(r) => Claim::Done(r),
            None => Claim::InProgress,
        })
    }

    async fn complete(&self, key: &str, result: &[u8]) -> Result<(), StoreError> {
        sqlx::query("UPDATE ballast_dedup SET result = $1 WHERE key = $2")
            .bind(result)
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM ballast_dedup WHERE key = $1 AND result IS NULL")
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_claims_are_fresh_once_then_replay_or_conflict_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dedup.db");
        let store = SqliteDedupStore::open(&path).await.unwrap();
        let day = Duration::from_secs(86_400);
        assert_eq!(store.claim("k", "f1", day).await.unwrap(), Claim::Fresh);
        assert_eq!(
            store.claim("k", "f1", day).await.unwrap(),
            Claim::InProgress
        );
        store.complete("k", b"42").await.unwrap();
        drop(store);
        let store = SqliteDedupStore::open(&path).await.unwrap();
        assert_eq!(
            store.claim("k", "f1", day).await.unwrap(),
            Claim::Done(b"42".to_vec())
        );
        assert_eq!(
            store.claim("k", "f2", day).await.unwrap(),
            Claim::Conflict {
                stored: Some(b"42".to_vec())
            }
        );
        assert_eq!(store.claim("j", "f", day).await.unwrap(), Claim::Fresh);
        store.release("j").await.unwrap();
        assert_eq!(store.claim("j", "f", day).await.unwrap(), Claim::Fresh);
    }
}
