//! Runbooks and the checklists people work through during an incident, as
//! the dashboard and the REST API see them.

use serde::{Deserialize, Serialize};

/// What a runbook is about, so that the page of a failing service, an
/// alert or an open breaker can offer the right one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RunbookLinks {
    /// Services (by name, any environment) the runbook is written for.
    #[serde(default)]
    pub services: Vec<String>,
    /// Dependencies (by the names policies give them, such as
    /// `model_provider`) whose failure it handles.
    #[serde(default)]
    pub dependencies: Vec<String>,
    /// Kinds of failure it handles, such as `breaker_open` or `dlq_growth`:
    /// the metric names of alert rules, or free words a team agrees on.
    #[serde(default)]
    pub failure_types: Vec<String>,
}

/// `PUT /api/v1/runbooks/{slug}`: creates the runbook or writes its next
/// version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RunbookWrite {
    /// A one-line title.
    pub title: String,
    /// The text, in Markdown. Task-list items (`- [ ] step`) become the
    /// steps of an incident checklist.
    pub body: String,
    /// What the runbook is about.
    #[serde(default)]
    pub links: RunbookLinks,
    /// The version the author edited. When the runbook has moved on since,
    /// the write is refused with 409 rather than silently overwriting
    /// someone else's change. Leave out to create a new runbook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_version: Option<u64>,
    /// Why the change was made, kept with the version.
    #[serde(default)]
    pub message: String,
}

/// One runbook in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunbookSummary {
    /// The stable name that policies and alert rules refer to.
    pub slug: String,
    /// The latest version's title.
    pub title: String,
    /// The latest version, from 1.
    pub version: u64,
    /// The latest version's links.
    pub links: RunbookLinks,
    /// How many checklist steps the latest version has.
    pub step_count: u32,
    /// Who wrote the latest version (`user:NAME`, or `ballast` for the
    /// built-in library).
    pub updated_by: String,
    /// When, Unix milliseconds.
    pub updated_at_ms: i64,
}

/// One version of a runbook, in full.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunbookView {
    /// The stable name.
    pub slug: String,
    /// This version's number.
    pub version: u64,
    /// The newest version there is (to tell an old version from the latest).
    pub latest_version: u64,
    /// Title.
    pub title: String,
    /// The Markdown text as written.
    pub body: String,
    /// The text rendered to HTML and sanitised: safe to insert into a page.
    pub html: String,
    /// The checklist steps, in order: the text of each task-list item.
    pub steps: Vec<String>,
    /// Links.
    pub links: RunbookLinks,
    /// Why this version was written.
    pub message: String,
    /// Who wrote this version.
    pub author: String,
    /// When, Unix milliseconds.
    pub created_at_ms: i64,
}

/// One entry of a runbook's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunbookVersionSummary {
    /// Version number.
    pub version: u64,
    /// Title at that version.
    pub title: String,
    /// Why it was written.
    pub message: String,
    /// Who wrote it.
    pub author: String,
    /// When, Unix milliseconds.
    pub created_at_ms: i64,
}

/// `GET /api/v1/runbook-template`: the starting text for a new runbook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunbookTemplate {
    /// A title to start from.
    pub title: String,
    /// The Markdown text, with the incident steps as a checklist.
    pub body: String,
}

/// `POST /api/v1/runbooks/{slug}/checklists`: start working through the
/// runbook's steps for an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChecklistStart {
    /// What is happening, in a line.
    pub title: String,
    /// The incident's id in the team's incident tool, if there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_ref: Option<String>,
}

/// `PUT /api/v1/checklists/{id}/steps/{index}`: tick or untick a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StepTick {
    /// Whether the step is done.
    pub done: bool,
    /// What was found or done, if worth saying.
    #[serde(default)]
    pub note: String,
}

/// One step of a checklist and who ticked it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChecklistStep {
    /// Position, from 0.
    pub index: u32,
    /// The step's text, from the runbook version the checklist was started on.
    pub text: String,
    /// Whether it is ticked now.
    pub done: bool,
    /// Who last ticked or unticked it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// When, Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_ms: Option<i64>,
    /// The note left with the last tick.
    #[serde(default)]
    pub note: String,
}

/// One tick or untick, in order: the checklist's record of the incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChecklistEvent {
    /// The step.
    pub index: u32,
    /// Ticked (true) or unticked.
    pub done: bool,
    /// Who.
    pub by: String,
    /// When, Unix milliseconds.
    pub at_ms: i64,
    /// What they said.
    pub note: String,
}

/// A runbook being worked through during an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChecklistView {
    /// Id.
    pub id: String,
    /// The runbook.
    pub slug: String,
    /// The runbook version whose steps are listed (later edits do not move
    /// the steps under the people working through them).
    pub runbook_version: u64,
    /// What is happening.
    pub title: String,
    /// The incident's id elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_ref: Option<String>,
    /// Who started it.
    pub started_by: String,
    /// When, Unix milliseconds.
    pub started_at_ms: i64,
    /// Who closed it, once closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_by: Option<String>,
    /// When, once closed. A closed checklist takes no more ticks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at_ms: Option<i64>,
    /// Every step, with its current state.
    pub steps: Vec<ChecklistStep>,
    /// Every tick and untick, oldest first.
    pub events: Vec<ChecklistEvent>,
}
