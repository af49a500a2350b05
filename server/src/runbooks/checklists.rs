//! Checklists: a runbook worked through during an incident. The steps are
//! copied from the runbook version it was started on, and every tick and
//! untick is kept with who made it and when, so the review afterwards
//! reads what was done rather than what people remember.

use crate::app::App;
use crate::auth::UserPrincipal;
use crate::error::{ApiError, ApiResult};
use crate::store::{AuditRecord, Changed, ChecklistEventRow, ChecklistRow};
use serde_json::json;
use shared::api::{ChecklistEvent, ChecklistStart, ChecklistStep, ChecklistView, StepTick};

const MAX_TITLE_CHARS: usize = 200;
const MAX_REF_CHARS: usize = 200;
const MAX_NOTE_CHARS: usize = 2_000;
/// How many checklists a listing returns at most.
pub const LIST_LIMIT: i64 = 200;

/// Starts a checklist on `slug`'s latest version.
pub async fn start(
    app: &App,
    user: &UserPrincipal,
    slug: &str,
    req: &ChecklistStart,
) -> ApiResult<ChecklistView> {
    crate::fields::text("title", &req.title, MAX_TITLE_CHARS, true)?;
    if let Some(r) = &req.incident_ref {
        crate::fields::text("incident_ref", r, MAX_REF_CHARS, true)?;
    }
    let runbook = super::get(app, slug, None).await?;
    if runbook.steps.is_empty() {
        return Err(ApiError::invalid(
            "slug",
            format!(
                "runbook `{slug}` has no checklist steps (task-list items such as `- [ ] step`)"
            ),
        ));
    }
    let row = ChecklistRow {
        id: format!("cl-{}", crate::auth::random_hex(8)),
        slug: runbook.slug.clone(),
        runbook_version: i64::try_from(runbook.version).unwrap_or(i64::MAX),
        title: req.title.trim().to_owned(),
        incident_ref: req.incident_ref.as_ref().map(|r| r.trim().to_owned()),
        steps: serde_json::to_string(&runbook.steps).map_err(|e| ApiError::internal(&e))?,
        started_by: user.actor(),
        started_at: app.clock.now_ms(),
        closed_by: None,
        closed_at: None,
    };
    app.store
        .create_checklist(
            &row,
            &AuditRecord::new(
                user.actor(),
                "checklist.start",
                format!("checklist:{}", row.id),
                json!({ "runbook": row.slug, "version": row.runbook_version, "title": row.title,
                        "incident_ref": row.incident_ref }),
            ),
        )
        .await?;
    view(row, Vec::new())
}

/// Ticks or unticks step `index`.
pub async fn tick(
    app: &App,
    user: &UserPrincipal,
    id: &str,
    index: u32,
    req: &StepTick,
) -> ApiResult<ChecklistView> {
    crate::fields::text("note", &req.note, MAX_NOTE_CHARS, false)?;
    let (row, _) = app
        .store
        .checklist(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no checklist `{id}`")))?;
    let steps = step_texts(&row)?;
    let Some(text) = steps.get(index as usize) else {
        return Err(ApiError::invalid(
            "index",
            format!(
                "the checklist has steps 0 to {}",
                steps.len().saturating_sub(1)
            ),
        ));
    };
    let audit = AuditRecord::new(
        user.actor(),
        if req.done {
            "checklist.tick"
        } else {
            "checklist.untick"
        },
        format!("checklist:{id}"),
        json!({ "step": index, "text": text, "note": req.note }),
    );
    let changed = app
        .store
        .tick_checklist(
            id,
            i64::from(index),
            req.done,
            &user.actor(),
            req.note.trim(),
            app.clock.now_ms(),
            &audit,
        )
        .await?;
    after_change(app, id, changed).await
}

/// Closes a checklist: the incident is over, and nothing more is ticked.
pub async fn close(app: &App, user: &UserPrincipal, id: &str) -> ApiResult<ChecklistView> {
    let audit = AuditRecord::new(
        user.actor(),
        "checklist.close",
        format!("checklist:{id}"),
        json!({}),
    );
    let changed = app
        .store
        .close_checklist(id, &user.actor(), app.clock.now_ms(), &audit)
        .await?;
    after_change(app, id, changed).await
}

async fn after_change(app: &App, id: &str, changed: Changed) -> ApiResult<ChecklistView> {
    match changed {
        Changed::Done => get(app, id).await,
        Changed::Missing => Err(ApiError::not_found(format!("no checklist `{id}`"))),
        Changed::Refused => Err(ApiError::conflict(
            "id",
            format!("checklist `{id}` is closed; start a new one"),
        )),
    }
}

/// One checklist, with every step's state and the full record.
pub async fn get(app: &App, id: &str) -> ApiResult<ChecklistView> {
    let (row, events) = app
        .store
        .checklist(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no checklist `{id}`")))?;
    view(row, events)
}

/// Checklists, open ones first; those of one runbook when `slug` is given.
pub async fn list(app: &App, slug: Option<&str>) -> ApiResult<Vec<ChecklistView>> {
    let rows = app.store.checklists(slug, LIST_LIMIT).await?;
    rows.into_iter()
        .map(|(r, events)| view(r, events))
        .collect()
}

fn step_texts(row: &ChecklistRow) -> ApiResult<Vec<String>> {
    serde_json::from_str(&row.steps)
        .map_err(|e| ApiError::internal(&format!("stored checklist steps: {e}")))
}

fn view(row: ChecklistRow, events: Vec<ChecklistEventRow>) -> ApiResult<ChecklistView> {
    let mut steps: Vec<ChecklistStep> = step_texts(&row)?
        .into_iter()
        .enumerate()
        .map(|(i, text)| ChecklistStep {
            index: u32::try_from(i).unwrap_or(u32::MAX),
            text,
            done: false,
            by: None,
            at_ms: None,
            note: String::new(),
        })
        .collect();
    let events: Vec<ChecklistEvent> = events
        .into_iter()
        .map(|e| ChecklistEvent {
            index: u32::try_from(e.step).unwrap_or(u32::MAX),
            done: e.done != 0,
            by: e.actor,
            at_ms: e.at,
            note: e.note,
        })
        .collect();
    // Events are in order, so the last one for a step is its state.
    for e in &events {
        if let Some(step) = steps.get_mut(e.index as usize) {
            step.done = e.done;
            step.by = Some(e.by.clone());
            step.at_ms = Some(e.at_ms);
            step.note = e.note.clone();
        }
    }
    Ok(ChecklistView {
        id: row.id,
        slug: row.slug,
        runbook_version: u64::try_from(row.runbook_version).unwrap_or(0),
        title: row.title,
        incident_ref: row.incident_ref,
        started_by: row.started_by,
        started_at_ms: row.started_at,
        closed_by: row.closed_by,
        closed_at_ms: row.closed_at,
        steps,
        events,
    })
}
