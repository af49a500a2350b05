//! Runbooks (append-only versions) and incident checklists (append-only
//! ticks). Every write is audited in its own transaction.

use super::audit::append_audit;
use super::{AuditRecord, Changed, Store, StoreResult, row_exists, with_db};
use sqlx::Row;

/// A runbook's latest state, for listings.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RunbookRow {
    /// Stable name.
    pub slug: String,
    /// Newest version.
    pub latest_version: i64,
    /// Its title.
    pub title: String,
    /// Its links, as JSON text.
    pub links: String,
    /// Its number of checklist steps.
    pub step_count: i64,
    /// Its author.
    pub updated_by: String,
    /// When, Unix milliseconds.
    pub updated_at: i64,
}

/// One stored version.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RunbookVersionRow {
    /// Stable name.
    pub slug: String,
    /// This version.
    pub version: i64,
    /// Title.
    pub title: String,
    /// Markdown.
    pub body: String,
    /// Links, as JSON text.
    pub links: String,
    /// Why it was written.
    pub message: String,
    /// Who wrote it.
    pub author: String,
    /// When, Unix milliseconds.
    pub created_at: i64,
}

/// A version to write.
#[derive(Debug, Clone)]
pub struct NewRunbookVersion<'a> {
    /// Stable name.
    pub slug: &'a str,
    /// Title.
    pub title: &'a str,
    /// Markdown.
    pub body: &'a str,
    /// Links, as JSON text.
    pub links: &'a str,
    /// How many checklist steps the body has.
    pub step_count: i64,
    /// Why.
    pub message: &'a str,
    /// Who.
    pub author: &'a str,
    /// The version the author edited; `None` creates the runbook.
    pub base_version: Option<i64>,
}

/// What a runbook write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunbookWritten {
    /// Stored as this version.
    Version(i64),
    /// `base_version` was left out, but the runbook exists (at this version).
    Exists(i64),
    /// The runbook moved on past `base_version`; this is the newest.
    Stale(i64),
    /// `base_version` was given for a runbook that does not exist.
    Missing,
}

/// An incident checklist.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChecklistRow {
    /// Id.
    pub id: String,
    /// The runbook.
    pub slug: String,
    /// The runbook version its steps come from.
    pub runbook_version: i64,
    /// What is happening.
    pub title: String,
    /// The incident's id elsewhere.
    pub incident_ref: Option<String>,
    /// The steps' texts, as a JSON array.
    pub steps: String,
    /// Who started it.
    pub started_by: String,
    /// When.
    pub started_at: i64,
    /// Who closed it.
    pub closed_by: Option<String>,
    /// When.
    pub closed_at: Option<i64>,
}

/// One tick or untick.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChecklistEventRow {
    /// Order within the checklist, from 1.
    pub seq: i64,
    /// The step's index.
    pub step: i64,
    /// 1 when ticked, 0 when unticked.
    pub done: i64,
    /// Who.
    pub actor: String,
    /// When.
    pub at: i64,
    /// What they said.
    pub note: String,
}

const CHECKLIST_COLUMNS: &str = "id, slug, runbook_version, title, incident_ref, steps, \
                                 started_by, started_at, closed_by, closed_at";

impl Store {
    /// Writes a runbook's next version (or its first), audited.
    pub async fn write_runbook(
        &self,
        new: &NewRunbookVersion<'_>,
        now_ms: i64,
        audit: &AuditRecord,
    ) -> StoreResult<RunbookWritten> {
        with_db!(self, pool => {
            let mut tx = pool.begin().await?;
            // The first statement writes, so that SQLite takes the write lock
            // at once: a read first would have to be upgraded, and fails
            // under concurrent writers.
            let version: i64 = match new.base_version {
                None => {
                    let inserted = sqlx::query(
                        "INSERT INTO runbooks (slug, latest_version, title, links, step_count, updated_by, updated_at) \
                         VALUES ($1, 1, $2, $3, $4, $5, $6) ON CONFLICT (slug) DO NOTHING RETURNING latest_version",
                    )
                    .bind(new.slug)
                    .bind(new.title)
                    .bind(new.links)
                    .bind(new.step_count)
                    .bind(new.author)
                    .bind(now_ms)
                    .fetch_optional(&mut *tx)
                    .await?;
                    match inserted {
                        Some(row) => row.try_get("latest_version")?,
                        None => {
                            let latest: i64 = sqlx::query_scalar("SELECT latest_version FROM runbooks WHERE slug = $1")
                                .bind(new.slug)
                                .fetch_one(&mut *tx)
                                .await?;
                            return Ok(RunbookWritten::Exists(latest));
                        }
                    }
                }
                Some(base) => {
                    let updated = sqlx::query(
                        "UPDATE runbooks SET latest_version = latest_version + 1, title = $3, links = $4, \
                         step_count = $5, updated_by = $6, updated_at = $7 \
                         WHERE slug = $1 AND latest_version = $2 RETURNING latest_version",
                    )
                    .bind(new.slug)
                    .bind(base)
                    .bind(new.title)
                    .bind(new.links)
                    .bind(new.step_count)
                    .bind(new.author)
                    .bind(now_ms)
                    .fetch_optional(&mut *tx)
                    .await?;
                    match updated {
                        Some(row) => row.try_get("latest_version")?,
                        None => {
                            let latest: Option<i64> = sqlx::query_scalar("SELECT latest_version FROM runbooks WHERE slug = $1")
                                .bind(new.slug)
                                .fetch_optional(&mut *tx)
                                .await?;
                            return Ok(match latest {
                                Some(v) => RunbookWritten::Stale(v),
                                None => RunbookWritten::Missing,
                            });
                        }
                    }
                }
            };
            sqlx::query(
                "INSERT INTO runbook_versions (slug, version, title, body, links, message, author, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(new.slug)
            .bind(version)
            .bind(new.title)
            .bind(new.body)
            .bind(new.links)
            .bind(new.message)
            .bind(new.author)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
            append_audit!(tx, now_ms, audit);
            tx.commit().await?;
            Ok(RunbookWritten::Version(version))
        })
    }

    /// Stores version 1 of a runbook unless one with `slug` exists. Not
    /// audited: this is initial data (see `crate::runbooks::library`).
    pub async fn seed_runbook(
        &self,
        slug: &str,
        title: &str,
        body: &str,
        links: &str,
        step_count: i64,
        now_ms: i64,
    ) -> StoreResult<()> {
        with_db!(self, pool => {
            let mut tx = pool.begin().await?;
            let inserted = sqlx::query(
                "INSERT INTO runbooks (slug, latest_version, title, links, step_count, updated_by, updated_at) \
                 VALUES ($1, 1, $2, $3, $4, 'ballast', $5) ON CONFLICT (slug) DO NOTHING RETURNING slug",
            )
            .bind(slug)
            .bind(title)
            .bind(links)
            .bind(step_count)
            .bind(now_ms)
            .fetch_optional(&mut *tx)
            .await?;
            if inserted.is_some() {
                sqlx::query(
                    "INSERT INTO runbook_versions (slug, version, title, body, links, message, author, created_at) \
                     VALUES ($1, 1, $2, $3, $4, 'the built-in library', 'ballast', $5)",
                )
                .bind(slug)
                .bind(title)
                .bind(body)
                .bind(links)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Every runbook's latest state, by slug.
    pub async fn runbooks(&self) -> StoreResult<Vec<RunbookRow>> {
        with_db!(self, pool => {
            Ok(sqlx::query_as::<_, RunbookRow>(
                "SELECT slug, latest_version, title, links, step_count, updated_by, updated_at \
                 FROM runbooks ORDER BY slug",
            )
            .fetch_all(pool)
            .await?)
        })
    }

    /// Every runbook's slug: what policy references are checked against.
    pub async fn runbook_slugs(&self) -> StoreResult<Vec<String>> {
        with_db!(self, pool => {
            Ok(sqlx::query_scalar("SELECT slug FROM runbooks ORDER BY slug")
                .fetch_all(pool)
                .await?)
        })
    }

    /// One version of a runbook (the latest when `version` is `None`), with
    /// the latest version number.
    pub async fn runbook_version(
        &self,
        slug: &str,
        version: Option<i64>,
    ) -> StoreResult<Option<(RunbookVersionRow, i64)>> {
        with_db!(self, pool => {
            let row = sqlx::query_as::<_, RunbookVersionRow>(
                "SELECT v.slug, v.version, v.title, v.body, v.links, v.message, v.author, v.created_at \
                 FROM runbook_versions v JOIN runbooks r ON r.slug = v.slug \
                 WHERE v.slug = $1 AND v.version = COALESCE($2, r.latest_version)",
            )
            .bind(slug)
            .bind(version)
            .fetch_optional(pool)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let latest: i64 = sqlx::query_scalar("SELECT latest_version FROM runbooks WHERE slug = $1")
                .bind(slug)
                .fetch_one(pool)
                .await?;
            Ok(Some((row, latest)))
        })
    }

    /// A runbook's versions, newest first, without their bodies.
    pub async fn runbook_history(&self, slug: &str) -> StoreResult<Vec<RunbookVersionRow>> {
        with_db!(self, pool => {
            Ok(sqlx::query_as::<_, RunbookVersionRow>(
                "SELECT slug, version, title, '' AS body, links, message, author, created_at \
                 FROM runbook_versions WHERE slug = $1 ORDER BY version DESC",
            )
            .bind(slug)
            .fetch_all(pool)
            .await?)
        })
    }

    /// Stores a new checklist, audited.
    pub async fn create_checklist(
        &self,
        row: &ChecklistRow,
        audit: &AuditRecord,
    ) -> StoreResult<()> {
        with_db!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO checklists (id, slug, runbook_version, title, incident_ref, steps, started_by, started_at, closed_by, closed_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL)",
            )
            .bind(&row.id)
            .bind(&row.slug)
            .bind(row.runbook_version)
            .bind(&row.title)
            .bind(&row.incident_ref)
            .bind(&row.steps)
            .bind(&row.started_by)
            .bind(row.started_at)
            .execute(&mut *tx)
            .await?;
            append_audit!(tx, row.started_at, audit);
            tx.commit().await?;
            Ok(())
        })
    }

    /// One checklist and its events, oldest first.
    pub async fn checklist(
        &self,
        id: &str,
    ) -> StoreResult<Option<(ChecklistRow, Vec<ChecklistEventRow>)>> {
        with_db!(self, pool => {
            let sql = format!("SELECT {CHECKLIST_COLUMNS} FROM checklists WHERE id = $1");
            let row = sqlx::query_as::<_, ChecklistRow>(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .fetch_optional(pool)
                .await?;
            let Some(row) = row else { return Ok(None) };
            let events = sqlx::query_as::<_, ChecklistEventRow>(
                "SELECT seq, step, done, actor, at, note FROM checklist_events \
                 WHERE checklist_id = $1 ORDER BY seq",
            )
            .bind(id)
            .fetch_all(pool)
            .await?;
            Ok(Some((row, events)))
        })
    }

    /// Checklists, open ones first, then the most recently started; at most
    /// `limit`. Only those of `slug` when given. Each with its events.
    pub async fn checklists(
        &self,
        slug: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<(ChecklistRow, Vec<ChecklistEventRow>)>> {
        const CHOSEN: &str = "FROM checklists WHERE ($1 IS NULL OR slug = $1) \
             ORDER BY CASE WHEN closed_at IS NULL THEN 0 ELSE 1 END, started_at DESC, id LIMIT $2";
        with_db!(self, pool => {
            let mut tx = pool.begin().await?;
            let rows = sqlx::query_as::<_, ChecklistRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {CHECKLIST_COLUMNS} {CHOSEN}"
            )))
            .bind(slug)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
            let events = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT checklist_id, seq, step, done, actor, at, note FROM checklist_events \
                 WHERE checklist_id IN (SELECT id {CHOSEN}) ORDER BY checklist_id, seq"
            )))
            .bind(slug)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            let mut by_id: std::collections::HashMap<String, Vec<ChecklistEventRow>> = Default::default();
            for e in events {
                let id: String = e.try_get("checklist_id")?;
                by_id.entry(id).or_default().push(ChecklistEventRow {
                    seq: e.try_get("seq")?,
                    step: e.try_get("step")?,
                    done: e.try_get("done")?,
                    actor: e.try_get("actor")?,
                    at: e.try_get("at")?,
                    note: e.try_get("note")?,
                });
            }
            Ok(rows
                .into_iter()
                .map(|r| {
                    let events = by_id.remove(&r.id).unwrap_or_default();
                    (r, events)
                })
                .collect())
        })
    }

    /// Records a tick or untick of `step` on an open checklist, audited.
    #[allow(clippy::too_many_arguments)]
    pub async fn tick_checklist(
        &self,
        id: &str,
        step: i64,
        done: bool,
        actor: &str,
        note: &str,
        now_ms: i64,
        audit: &AuditRecord,
    ) -> StoreResult<Changed> {
        with_db!(self, pool => {
            let mut tx = pool.begin().await?;
            // A no-op write first: it takes the row's lock (and SQLite's
            // write lock), so that two ticks at once get distinct sequence
            // numbers, and it tells an open checklist from a closed one.
            let open = sqlx::query("UPDATE checklists SET id = id WHERE id = $1 AND closed_at IS NULL RETURNING id")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            if open.is_none() {
                return Ok(if row_exists!(tx, "checklists", id) { Changed::Refused } else { Changed::Missing });
            }
            sqlx::query(
                "INSERT INTO checklist_events (checklist_id, seq, step, done, actor, at, note) \
                 SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5, $6 FROM checklist_events WHERE checklist_id = $1",
            )
            .bind(id)
            .bind(step)
            .bind(i64::from(done))
            .bind(actor)
            .bind(now_ms)
            .bind(note)
            .execute(&mut *tx)
            .await?;
            append_audit!(tx, now_ms, audit);
            tx.commit().await?;
            Ok(Changed::Done)
        })
    }

    /// Closes an open checklist, audited.
    pub async fn close_checklist(
        &self,
        id: &str,
        actor: &str,
        now_ms: i64,
        audit: &AuditRecord,
    ) -> StoreResult<Changed> {
        with_db!(self, pool => {
            let mut tx = pool.begin().await?;
            let closed = sqlx::query(
                "UPDATE checklists SET closed_by = $2, closed_at = $3 WHERE id = $1 AND closed_at IS NULL RETURNING id",
            )
            .bind(id)
            .bind(actor)
            .bind(now_ms)
            .fetch_optional(&mut *tx)
            .await?;
            if closed.is_none() {
                return Ok(if row_exists!(tx, "checklists", id) { Changed::Refused } else { Changed::Missing });
            }
            append_audit!(tx, now_ms, audit);
            tx.commit().await?;
            Ok(Changed::Done)
        })
    }
}
