//! Storage. One [`Store`] in front of two backends: SQLite (the default, one
//! box, data under `./data`) and PostgreSQL (several stateless replicas).
//!
//! Each backend has its own migrations (`migrations/sqlite`,
//! `migrations/postgres`) because DDL does not port, but the queries do: both
//! accept `$1` placeholders, `RETURNING` and `ON CONFLICT`. So each query is
//! written once and [`with_db!`] compiles it against each driver. Times are
//! stored as integer milliseconds so that values round-trip on both.

mod alerts;
mod audit;
mod dead_letters;
mod objectives;
mod policy;
mod runbooks;
mod telemetry;
mod tokens;
mod users;

pub use alerts::{
    AlertRow, AlertRuleRow, Changed, ClaimedNotification, DeliveryOutcome, NewAlert,
    NewNotification, NotificationRow, SilenceRow, WebhookRow,
};
pub use audit::{AuditRecord, ChainBreak};
pub use dead_letters::{
    AckResult, AckWrite, ActionRow, Claim, DeadLetterFilter, DeadLetterRow, DepthRow, EventRow,
    IngestWrite, Ingested, NewEvent, Transition,
};
pub use objectives::{CanaryVerdictRow, Records};
pub use policy::{
    CanaryChange, DraftRow, InstanceRow, NewVersion, PublishRequestRow, RefusedColumns, RolloutRow,
    ServiceRow, VersionRow,
};
pub use runbooks::{
    ChecklistEventRow, ChecklistRow, NewRunbookVersion, RunbookRow, RunbookVersionRow,
    RunbookWritten,
};
pub use telemetry::{
    BatchWrite, FleetInstanceRow, ROLLUP_COLUMNS, ROLLUP_FIRST_BUCKET, ROLLUP_WIDTH, ReceiptKey,
    RollupRow,
};
pub use tokens::TokenRow;
pub use users::{SessionRow, UserRow};

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// Runs `$body` with `$pool` bound to whichever backend pool the store holds.
/// The body is compiled once per backend, so one SQL text serves both.
macro_rules! with_db {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.db {
            $crate::store::Db::Sqlite($pool) => $body,
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_db;

/// After a conditional update changed nothing: whether the row `id` of
/// `$table` exists (the condition refused it) or not (there is no such row).
macro_rules! row_exists {
    ($tx:expr, $table:literal, $id:expr) => {{
        let found: Option<String> =
            sqlx::query_scalar(concat!("SELECT id FROM ", $table, " WHERE id = $1"))
                .bind($id)
                .fetch_optional(&mut *$tx)
                .await?;
        found.is_some()
    }};
}
pub(crate) use row_exists;

/// The pool of the backend in use.
#[derive(Clone, Debug)]
pub(crate) enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// What a [`Store::listen`] handler hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// Listening (again): anything said before may have been missed.
    Connected,
    /// A notification's payload.
    Message(String),
}

/// Which backend a store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite in WAL mode.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// The storage handle that every request uses. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
}

/// A storage failure, classified so that the API can answer precisely.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness or foreign-key constraint refused the write; names the
    /// constraint so the caller can say which field clashed.
    #[error("conflict on {0}")]
    Conflict(String),
    /// The row asked for does not exist.
    #[error("not found")]
    NotFound,
    /// The database cannot be reached or is shutting down. Nothing was written.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// Anything else. Logged in full, reported to clients as an internal error.
    #[error("database error: {0}")]
    Other(#[source] sqlx::Error),
    /// Stored data that the application cannot read back (e.g. an unknown role).
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Database(db) => {
                if db.is_unique_violation() || db.is_foreign_key_violation() {
                    let name = db.constraint().unwrap_or("unknown").to_owned();
                    // SQLite does not report constraint names; recover the
                    // table.column pair from its message instead.
                    let name = if name == "unknown" {
                        db.message()
                            .rsplit(": ")
                            .next()
                            .unwrap_or("unknown")
                            .to_owned()
                    } else {
                        name
                    };
                    StoreError::Conflict(name)
                } else if is_unavailable_code(db.code().as_deref()) {
                    StoreError::Unavailable(err)
                } else {
                    StoreError::Other(err)
                }
            }
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(err),
            _ => StoreError::Other(err),
        }
    }
}

/// Whether a database error code means "cannot serve now" rather than "this
/// statement is wrong": Postgres connection exceptions (08…), shutdowns and
/// start-ups (57P…), resource exhaustion (53…) and a database that no longer
/// exists (3D000); SQLite busy (5), locked (6), I/O (10), full (13) and
/// cannot-open (14) errors, with their extended codes.
fn is_unavailable_code(code: Option<&str>) -> bool {
    let Some(code) = code else { return false };
    if code.starts_with("08")
        || code.starts_with("57P")
        || code.starts_with("53")
        || code == "3D000"
    {
        return true;
    }
    code.parse::<i32>()
        .map(|n| matches!(n & 0xff, 5 | 6 | 10 | 13 | 14))
        .unwrap_or(false)
}

/// Shorthand for storage results.
pub type StoreResult<T> = Result<T, StoreError>;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

impl Store {
    /// Opens the database named by `url` (`sqlite://PATH` or `postgres://…`)
    /// and brings its schema up to date.
    pub async fn open(url: &str) -> StoreResult<Store> {
        let store = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(StoreError::Unavailable)?
                .create_if_missing(true)
                // WAL lets readers run beside the writer; FULL makes every
                // acknowledged commit survive a power cut, not just a crash.
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(5));
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(options)
                .await?;
            SQLITE_MIGRATIONS
                .run(&pool)
                .await
                .map_err(|e| StoreError::Other(e.into()))?;
            Store {
                db: Db::Sqlite(pool),
            }
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options = PgConnectOptions::from_str(url).map_err(StoreError::Unavailable)?;
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(options)
                .await?;
            POSTGRES_MIGRATIONS
                .run(&pool)
                .await
                .map_err(|e| StoreError::Other(e.into()))?;
            Store {
                db: Db::Postgres(pool),
            }
        } else {
            return Err(StoreError::Unavailable(sqlx::Error::Configuration(
                "database URL must start with sqlite:// or postgres://".into(),
            )));
        };
        // The built-in runbooks and alert rules are initial data, like a migration's rows:
        // policies and the built-in alert rules refer to them, so they must
        // be there before anything is served. Existing runbooks are kept.
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        crate::runbooks::library::seed(&store, now_ms).await?;
        crate::alerts::pack::seed(&store, now_ms).await?;
        Ok(store)
    }

    /// The SQLite URL for the default database file inside `data_dir`.
    pub fn sqlite_url_in(data_dir: &Path) -> String {
        format!("sqlite://{}", data_dir.join("ballast.db").display())
    }

    /// Which backend this store runs on.
    pub fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// A cheap round trip, for readiness probes.
    pub async fn ping(&self) -> StoreResult<()> {
        with_db!(self, pool => {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    /// On Postgres: `LISTEN`s on `channel` for as long as `handler` answers
    /// true, reconnecting with capped backoff. The handler hears
    /// [`Heard::Connected`] after each (re)connect, so that it can catch up
    /// on what was said while it was away, then each payload. Nothing
    /// happens on SQLite, which has one process and so nobody to hear from.
    pub fn listen<F, Fut>(&self, channel: &'static str, handler: F)
    where
        F: Fn(Heard) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = bool> + Send,
    {
        let Some(pool) = self.pg_pool().cloned() else {
            return;
        };
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(error = %e, channel, "cannot connect to LISTEN; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        continue;
                    }
                };
                if let Err(e) = listener.listen(channel).await {
                    tracing::warn!(error = %e, channel, "cannot LISTEN; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
                backoff = Duration::from_millis(100);
                if !handler(Heard::Connected).await {
                    return;
                }
                loop {
                    match listener.try_recv().await {
                        Ok(Some(n)) => {
                            if !handler(Heard::Message(n.payload().to_owned())).await {
                                return;
                            }
                        }
                        // The connection dropped: reconnect, and catch up.
                        Ok(None) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, channel, "listener failed; reconnecting");
                            break;
                        }
                    }
                }
            }
        });
    }

    /// The Postgres pool, for LISTEN; `None` on SQLite.
    pub fn pg_pool(&self) -> Option<&PgPool> {
        match &self.db {
            Db::Postgres(pool) => Some(pool),
            Db::Sqlite(_) => None,
        }
    }

    /// Tells other replicas about a change (Postgres NOTIFY). On SQLite there
    /// is only one process, so there is no one to tell.
    pub async fn notify(&self, channel: &str, payload: &str) -> StoreResult<()> {
        if let Db::Postgres(pool) = &self.db {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(channel)
                .bind(payload)
                .execute(pool)
                .await?;
        }
        Ok(())
    }

    /// Closes every connection. Later calls fail with [`StoreError::Unavailable`].
    pub async fn close(&self) {
        with_db!(self, pool => pool.close().await)
    }
}
