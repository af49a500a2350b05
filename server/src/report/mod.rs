//! The reliability report of one service: the domain reference's ten
//! sections, filled from the active policy, the last day's rollups, the
//! dead-letter queue, the alert rules and alerts that apply, and the
//! runbooks they lead to. Rendered by askama to HTML (a standalone page,
//! styled inline, so that a downloaded copy reads the same offline) and to
//! Markdown (for a pull request or a wiki).
//!
//! The report states what is known and says so where something is not: a
//! section with no policy says that nothing is configured, and chaos
//! results say that no experiment has run rather than leaving a blank.

use crate::alerts::rules;
use crate::app::App;
use crate::error::{ApiError, ApiResult};
use crate::objectives::bp_percent;
use crate::store::{ROLLUP_COLUMNS, ServiceRow};
use askama::Template;
use serde::Serialize;
use shared::api::{AlertRuleWrite, AlertState};
use shared::policy::Policy;
use shared::protocol::LATENCY_BUCKETS_MS;
use std::collections::{BTreeMap, BTreeSet};

/// How far back the report's figures look.
pub const WINDOW_MS: i64 = 86_400_000;

/// A table of one section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// What the table shows.
    pub caption: String,
    /// Column headings.
    pub headers: Vec<String>,
    /// Cells, row by row, as text.
    pub rows: Vec<Vec<String>>,
}

/// One of the eleven sections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Anchor id.
    pub id: &'static str,
    /// Its number, from 1.
    pub number: usize,
    /// Title.
    pub title: &'static str,
    /// Paragraphs before the tables.
    pub paragraphs: Vec<String>,
    /// Tables; empty ones are left out.
    pub tables: Vec<Table>,
}

/// Everything the report says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Service.
    pub service: String,
    /// Environment.
    pub environment: String,
    /// Owner.
    pub owner: String,
    /// Risk tier, as a label.
    pub risk_tier: String,
    /// Active version, if any.
    pub version: Option<u64>,
    /// When the report was made, as an HTTP date (UTC).
    pub generated_at: String,
    /// The eleven sections, in order.
    pub sections: Vec<Section>,
}

#[derive(Template)]
#[template(path = "report.html")]
struct HtmlReport<'a> {
    r: &'a Report,
}

#[derive(Template)]
#[template(path = "report.md", escape = "none")]
struct MarkdownReport<'a> {
    r: &'a Report,
}

impl Report {
    /// The report as a standalone HTML page.
    pub fn to_html(&self) -> ApiResult<String> {
        HtmlReport { r: self }
            .render()
            .map_err(|e| ApiError::internal(&e))
    }

    /// The report as Markdown.
    pub fn to_markdown(&self) -> ApiResult<String> {
        MarkdownReport { r: self }
            .render()
            .map_err(|e| ApiError::internal(&e))
    }
}

/// Markdown table cells cannot hold a pipe or a line break.
pub fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// A policy value as short text: strings as they are, anything else as
/// compact `key: value` pairs.
fn word<T: Serialize>(value: &T) -> String {
    fn render(v: &serde_json::Value) -> String {
        match v {
            serde_json::Value::Null => "—".into(),
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(items) => {
                items.iter().map(render).collect::<Vec<_>>().join(", ")
            }
            serde_json::Value::Object(map) => map
                .iter()
                .map(|(k, v)| format!("{}: {}", k.replace('_', " "), render(v)))
                .collect::<Vec<_>>()
                .join("; "),
            other => other.to_string(),
        }
    }
    serde_json::to_value(value).map_or_else(|_| "—".into(), |v| render(&v))
}

fn opt(value: &Option<String>) -> String {
    value.clone().unwrap_or_else(|| "—".into())
}

fn ms(v: u64) -> String {
    format!("{v} ms")
}

fn pct(part: i64, whole: i64) -> String {
    if whole <= 0 {
        "—".into()
    } else {
        format!("{:.2}%", part as f64 * 100.0 / whole as f64)
    }
}

/// A time as an HTTP date (RFC 9110, always UTC), which every reader and
/// tool knows.
fn date(ms: i64) -> String {
    let t =
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    httpdate::fmt_http_date(t)
}

/// One dependency's last day, from the rollups.
#[derive(Debug, Default, Clone)]
struct Observed {
    values: Vec<i64>,
}

impl Observed {
    fn get(&self, name: &str) -> i64 {
        ROLLUP_COLUMNS
            .iter()
            .position(|c| *c == name)
            .and_then(|i| self.values.get(i).copied())
            .unwrap_or(0)
    }

    /// The upper bound of the latency bucket that holds the `q` quantile:
    /// the rollups keep buckets, not calls, so this is a bound, not a value.
    fn quantile_bound(&self, q: f64) -> String {
        let first = ROLLUP_COLUMNS.iter().position(|c| *c == "b00").unwrap_or(0);
        let buckets: Vec<i64> = self.values.iter().skip(first).copied().collect();
        let total: i64 = buckets.iter().sum();
        if total == 0 {
            return "—".into();
        }
        let target = (total as f64 * q).ceil() as i64;
        let mut seen = 0;
        for (i, n) in buckets.iter().enumerate() {
            seen += n;
            if seen >= target {
                return match LATENCY_BUCKETS_MS.get(i) {
                    Some(bound) => format!("≤ {bound} ms"),
                    None => format!("> {} ms", LATENCY_BUCKETS_MS.last().copied().unwrap_or(0)),
                };
            }
        }
        "—".into()
    }
}

/// Builds the report of `service` as of now.
pub async fn build(app: &App, service: &ServiceRow) -> ApiResult<Report> {
    let now = app.clock.now_ms();
    let active = crate::policy::active_policy(app, service.id).await?;
    let (version, policy) = match active {
        Some((v, p)) => (Some(v), Some(p)),
        None => (None, None),
    };
    let mut observed: BTreeMap<String, Observed> = BTreeMap::new();
    for row in app.store.rollup_sums(now - WINDOW_MS).await? {
        if row.service_id == service.id && !row.dependency.starts_with('_') {
            observed.insert(
                row.dependency.clone(),
                Observed {
                    values: row.values.to_vec(),
                },
            );
        }
    }
    let rule_rows = app.store.alert_rules().await?;
    let mut applying: Vec<(String, AlertRuleWrite)> = Vec::new();
    for row in &rule_rows {
        let rule = rules::definition(row)?;
        if rules::applies_to(&rule, service) {
            applying.push((row.name.clone(), rule));
        }
    }
    let alerts = app.store.alerts(None, Some(service.id), 500).await?;
    let depth = app
        .store
        .dead_letter_depths()
        .await?
        .into_iter()
        .find(|d| d.service_id == service.id);
    let received: i64 = app
        .store
        .dead_letters_received_since(now - WINDOW_MS)
        .await?
        .into_iter()
        .find(|(id, _)| *id == service.id)
        .map_or(0, |(_, n)| n);
    let runbooks = app.store.runbooks().await?;
    let goals = crate::objectives::of_service(app, service, now).await?;

    let p = policy.as_ref();
    let sections = vec![
        timeouts(p, &observed),
        retries(p, &observed),
        breakers(p, &observed),
        fallbacks(p, &observed),
        bulkheads(p, &observed),
        queues(
            p,
            depth.as_ref().map(|d| (d.depth, d.oldest)),
            received,
            now,
        ),
        idempotency(p),
        chaos(),
        metrics(&observed, &applying, &alerts),
        runbook_section(p, &applying, &runbooks),
        goals_section(&goals),
    ];
    Ok(Report {
        service: service.name.clone(),
        environment: service.environment.clone(),
        owner: service.owner.clone(),
        risk_tier: p.map_or_else(|| "—".into(), |p| p.service.risk_tier.label().to_owned()),
        version,
        generated_at: date(now),
        sections,
    })
}

fn no_policy(id: &'static str, number: usize, title: &'static str) -> Section {
    Section {
        id,
        number,
        title,
        paragraphs: vec![
            "No policy is published for this service, so nothing is enforced here.".into(),
        ],
        tables: Vec::new(),
    }
}

fn timeouts(p: Option<&Policy>, observed: &BTreeMap<String, Observed>) -> Section {
    let (id, number, title) = ("timeout-budget", 1, "Timeout budget");
    let Some(p) = p else {
        return no_policy(id, number, title);
    };
    let Some(t) = &p.timeouts else {
        return Section {
            id,
            number,
            title,
            paragraphs: vec![
                "No timeout budget is set: calls are bounded only by their own timeouts.".into(),
            ],
            tables: Vec::new(),
        };
    };
    let stages = Table {
        caption: "Stages of the request's budget".into(),
        headers: vec!["Stage".into(), "Budget".into(), "Dependencies".into()],
        rows: t
            .stages
            .iter()
            .map(|s| vec![s.name.clone(), ms(s.budget_ms), s.dependencies.join(", ")])
            .collect(),
    };
    let deps = Table {
        caption: "Per-dependency timeouts against the last day".into(),
        headers: vec![
            "Dependency".into(),
            "Timeout".into(),
            "Observed p95".into(),
            "Timed out".into(),
        ],
        rows: t
            .dependencies
            .iter()
            .map(|(dep, timeout)| {
                let o = observed.get(dep).cloned().unwrap_or_default();
                vec![
                    dep.clone(),
                    ms(*timeout),
                    o.quantile_bound(0.95),
                    pct(o.get("timeouts"), o.get("calls")),
                ]
            })
            .collect(),
    };
    Section {
        id,
        number,
        title,
        paragraphs: vec![format!(
            "The whole request has {}; the agent turns it into a deadline that every call below shares.",
            ms(t.total_ms)
        )],
        tables: vec![stages, deps],
    }
}

fn retries(p: Option<&Policy>, observed: &BTreeMap<String, Observed>) -> Section {
    let (id, number, title) = ("retry-policy", 2, "Retry policy");
    let Some(p) = p else {
        return no_policy(id, number, title);
    };
    let mut paragraphs = Vec::new();
    match &p.retry_budget {
        Some(b) => paragraphs.push(format!(
            "Retries across the service are capped at {}% of calls (at least {} per second), so a failing \
             dependency cannot be multiplied into a retry storm.",
            b.ratio_percent, b.min_per_second
        )),
        None => paragraphs.push("No service-wide retry budget is set.".into()),
    }
    let table = Table {
        caption: "Retries per dependency, and what they cost in the last day".into(),
        headers: vec![
            "Dependency".into(),
            "Attempts".into(),
            "Backoff".into(),
            "Jitter".into(),
            "Retried on".into(),
            "Retries per call".into(),
            "Budget exhausted".into(),
        ],
        rows: p
            .retry
            .iter()
            .map(|(dep, r)| {
                let o = observed.get(dep).cloned().unwrap_or_default();
                let calls = o.get("calls");
                vec![
                    dep.clone(),
                    r.max_attempts.to_string(),
                    format!("{}–{} ms", r.base_delay_ms, r.max_delay_ms),
                    word(&r.jitter),
                    word(&r.retry_on),
                    if calls > 0 {
                        format!("{:.2}", o.get("retries") as f64 / calls as f64)
                    } else {
                        "—".into()
                    },
                    o.get("retry_budget_exhausted").to_string(),
                ]
            })
            .collect(),
    };
    if p.retry.is_empty() {
        paragraphs.push("No dependency is retried.".into());
    }
    Section {
        id,
        number,
        title,
        paragraphs,
        tables: vec![table],
    }
}

fn breakers(p: Option<&Policy>, observed: &BTreeMap<String, Observed>) -> Section {
    let (id, number, title) = ("circuit-breakers", 3, "Circuit breaker policy");
    let Some(p) = p else {
        return no_policy(id, number, title);
    };
    let table = Table {
        caption: "Breakers, and the calls they refused in the last day".into(),
        headers: vec![
            "Dependency".into(),
            "Opens on".into(),
            "Cooldown".into(),
            "Half-open probes".into(),
            "Forced".into(),
            "Refused calls".into(),
            "Runbook".into(),
        ],
        rows: p
            .breakers
            .iter()
            .map(|(dep, b)| {
                let o = observed.get(dep).cloned().unwrap_or_default();
                vec![
                    dep.clone(),
                    word(&b.mode),
                    ms(b.cooldown_ms),
                    b.half_open_probes.to_string(),
                    word(&b.forced),
                    o.get("breaker_rejections").to_string(),
                    opt(&b.runbook),
                ]
            })
            .collect(),
    };
    let paragraphs = if p.breakers.is_empty() {
        vec!["No dependency has a breaker: a failing dependency is called until its timeout, every time.".into()]
    } else {
        Vec::new()
    };
    Section {
        id,
        number,
        title,
        paragraphs,
        tables: vec![table],
    }
}

fn fallbacks(p: Option<&Policy>, observed: &BTreeMap<String, Observed>) -> Section {
    let (id, number, title) = ("fallback-matrix", 4, "Fallback matrix");
    let Some(p) = p else {
        return no_policy(id, number, title);
    };
    let table = Table {
        caption: "What happens when a component fails".into(),
        headers: vec![
            "Component".into(),
            "Failure".into(),
            "Fallback".into(),
            "Allowed".into(),
            "Status shown".into(),
            "User message".into(),
            "Fallbacks (last day)".into(),
        ],
        rows: p
            .fallbacks
            .iter()
            .map(|f| {
                let o = observed.get(&f.component).cloned().unwrap_or_default();
                vec![
                    f.component.clone(),
                    word(&f.failure),
                    word(&f.fallback),
                    if f.allowed { "yes".into() } else { "no".into() },
                    word(&f.degraded_status),
                    opt(&f.user_message),
                    o.get("fallbacks").to_string(),
                ]
            })
            .collect(),
    };
    let paragraphs = if p.fallbacks.is_empty() {
        vec!["No fallbacks are defined: every failure reaches the caller.".into()]
    } else {
        vec!["Every fallback is labelled for the user; a silent fallback is a hidden change in quality.".into()]
    };
    Section {
        id,
        number,
        title,
        paragraphs,
        tables: vec![table],
    }
}

fn bulkheads(p: Option<&Policy>, observed: &BTreeMap<String, Observed>) -> Section {
    let (id, number, title) = ("bulkheads", 5, "Bulkhead design");
    let Some(p) = p else {
        return no_policy(id, number, title);
    };
    let table = Table {
        caption: "Bulkheads, and the work they refused in the last day".into(),
        headers: vec![
            "Bulkhead".into(),
            "Partitioned by".into(),
            "Dependency".into(),
            "Concurrent".into(),
            "Queued".into(),
            "Queue timeout".into(),
            "Refused".into(),
        ],
        rows: p
            .bulkheads
            .iter()
            .map(|(name, b)| {
                let refused = b
                    .dependency
                    .as_ref()
                    .and_then(|d| observed.get(d))
                    .map_or(0, |o| o.get("bulkhead_rejections"));
                vec![
                    name.clone(),
                    word(&b.partition),
                    opt(&b.dependency),
                    b.max_concurrent.to_string(),
                    b.max_queued.to_string(),
                    ms(b.queue_timeout_ms),
                    refused.to_string(),
                ]
            })
            .collect(),
    };
    let paragraphs = if p.bulkheads.is_empty() {
        vec!["No bulkheads: one slow feature can take every worker.".into()]
    } else {
        Vec::new()
    };
    Section {
        id,
        number,
        title,
        paragraphs,
        tables: vec![table],
    }
}

fn queues(
    p: Option<&Policy>,
    depth: Option<(i64, Option<i64>)>,
    received: i64,
    now: i64,
) -> Section {
    let (depth, oldest) = depth.unwrap_or((0, None));
    let mut paragraphs = vec![format!(
        "Dead letters waiting: {depth}{}. Received in the last day: {received}.",
        oldest.map_or(String::new(), |t| format!(
            " (the oldest for {} min)",
            (now - t).max(0) / 60_000
        ))
    )];
    let mut tables = Vec::new();
    match p.and_then(|p| p.dead_letters.as_ref()) {
        Some(d) => {
            paragraphs.push(format!(
                "Approvals expire after {} s; an agent must acknowledge a dispatched action within {} s or it \
                 becomes uncertain and is never re-sent on its own.",
                d.approval_expires_after_s, d.ack_timeout_s
            ));
            tables.push(Table {
                caption: "Which dead-letter actions need a second person".into(),
                headers: vec!["Action".into(), "Approval".into()],
                rows: d.approval.iter().map(|(k, v)| vec![word(k), word(v)]).collect(),
            });
            tables.push(Table {
                caption: "Task types".into(),
                headers: vec!["Task type".into(), "Side effects".into()],
                rows: d
                    .task_types
                    .iter()
                    .map(|(name, t)| vec![name.clone(), if t.side_effects { "yes".into() } else { "no".into() }])
                    .collect(),
            });
        }
        None => paragraphs.push(
            "The policy has no dead-letter section, so the defaults for the service's tier decide which actions \
             need an approver."
                .into(),
        ),
    }
    if let Some(a) = p.and_then(|p| p.admission.as_ref()) {
        // Read through the document's own shape, so that the table follows
        // the policy model as it grows.
        let doc = serde_json::to_value(a).unwrap_or_default();
        let field = |t: &serde_json::Value, k: &str| t.get(k).map_or_else(|| "—".into(), word);
        tables.push(Table {
            caption: format!(
                "Load shedding: what each trigger does to each class of work (unlisted work is {})",
                field(&doc, "default_class")
            ),
            headers: vec![
                "Trigger".into(),
                "When".into(),
                "Classes".into(),
                "User message".into(),
            ],
            rows: doc
                .get("triggers")
                .and_then(|t| t.as_array())
                .map(|ts| {
                    ts.iter()
                        .map(|t| {
                            vec![
                                field(t, "id"),
                                field(t, "signal"),
                                field(t, "modes"),
                                field(t, "user_message"),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default(),
        });
    }
    Section {
        id: "queues",
        number: 6,
        title: "Queue and DLQ design",
        paragraphs,
        tables,
    }
}

fn idempotency(p: Option<&Policy>) -> Section {
    let (id, number, title) = ("idempotency", 7, "Idempotency strategy");
    let Some(p) = p else {
        return no_policy(id, number, title);
    };
    let Some(i) = &p.idempotency else {
        return Section {
            id,
            number,
            title,
            paragraphs: vec![
                "No operation has an idempotency key: a retried write may happen twice.".into(),
            ],
            tables: Vec::new(),
        };
    };
    Section {
        id,
        number,
        title,
        paragraphs: vec!["Each side-effecting operation carries a key; the agent remembers it, so a retry or a redrive \
                          does the work once."
            .into()],
        tables: vec![Table {
            caption: "Keyed operations".into(),
            headers: vec![
                "Operation".into(),
                "Dependency".into(),
                "Key".into(),
                "On a reused key with another payload".into(),
                "Remembered for".into(),
            ],
            rows: i
                .operations
                .iter()
                .map(|(name, op)| {
                    vec![
                        name.clone(),
                        opt(&op.dependency),
                        word(&op.key),
                        word(&op.on_payload_mismatch),
                        ms(op.retention_ms),
                    ]
                })
                .collect(),
        }],
    }
}

fn goals_section(goals: &shared::api::ServiceObjectives) -> Section {
    let (id, number, title) = ("goals", 11, "Reliability goals and error budgets");
    let mut paragraphs = Vec::new();
    if goals.objectives.is_empty() {
        paragraphs.push(
            "The active policy states no objectives, so no error budget is tracked and canaries are judged by hand."
                .into(),
        );
    } else {
        paragraphs.push(
            "Each objective is measured on the agents' request records over its rolling window. The budget is the \
             bad requests the target allows; a burn rate of 1 spends it exactly over the window."
                .into(),
        );
    }
    let burn_at = |o: &shared::api::ObjectiveStatus, window_s: u32| {
        o.burn_rates
            .iter()
            .find(|b| b.window_s == window_s)
            .map_or_else(|| "—".into(), |b| format!("{:.2}", b.rate))
    };
    let objectives = Table {
        caption: "Objectives".into(),
        headers: vec![
            "Objective".into(),
            "Goal".into(),
            "Requests".into(),
            "Achieved".into(),
            "Budget left".into(),
            "Burn, 1 h".into(),
            "Burn, 3 d".into(),
        ],
        rows: goals
            .objectives
            .iter()
            .map(|o| {
                vec![
                    o.id.clone(),
                    o.summary.clone(),
                    o.valid.to_string(),
                    o.achieved_bp
                        .map_or_else(|| "—".into(), |bp| bp_percent(i64::from(bp))),
                    if o.kind == "safety" {
                        format!("{} violations", o.violations)
                    } else {
                        bp_percent(o.budget_remaining_bp)
                    },
                    burn_at(o, 3_600),
                    burn_at(o, 259_200),
                ]
            })
            .collect(),
    };
    if goals.canary_history.is_empty() {
        paragraphs
            .push("No canary has been promoted or rolled back by the canary analysis.".into());
    }
    let canaries = Table {
        caption: "Canaries decided by the analysis".into(),
        headers: vec![
            "Canary".into(),
            "Against".into(),
            "Decision".into(),
            "When".into(),
            "Why".into(),
        ],
        rows: goals
            .canary_history
            .iter()
            .map(|v| {
                vec![
                    format!("v{}", v.canary_version),
                    format!("v{}", v.stable_version),
                    v.decision.clone(),
                    date(v.decided_at_ms),
                    v.reason.clone(),
                ]
            })
            .collect(),
    };
    Section {
        id,
        number,
        title,
        paragraphs,
        tables: vec![objectives, canaries]
            .into_iter()
            .filter(|t| !t.rows.is_empty())
            .collect(),
    }
}

fn chaos() -> Section {
    Section {
        id: "chaos",
        number: 8,
        title: "Chaos test results",
        paragraphs: vec!["No chaos experiment has run against this service yet, so none of its failure paths has \
                          been exercised from the control plane."
            .into()],
        tables: Vec::new(),
    }
}

fn metrics(
    observed: &BTreeMap<String, Observed>,
    applying: &[(String, AlertRuleWrite)],
    alerts: &[crate::store::AlertRow],
) -> Section {
    let figures = Table {
        caption: "The last day, per dependency".into(),
        headers: vec![
            "Dependency".into(),
            "Calls".into(),
            "Errors".into(),
            "Timeouts".into(),
            "Fallbacks".into(),
            "Degraded".into(),
            "Refused by breaker".into(),
            "p50".into(),
            "p95".into(),
            "p99".into(),
        ],
        rows: observed
            .iter()
            .map(|(dep, o)| {
                let calls = o.get("calls");
                vec![
                    dep.clone(),
                    calls.to_string(),
                    pct(o.get("failures"), calls),
                    pct(o.get("timeouts"), calls),
                    pct(o.get("fallbacks"), calls),
                    pct(o.get("degraded"), calls),
                    o.get("breaker_rejections").to_string(),
                    o.quantile_bound(0.5),
                    o.quantile_bound(0.95),
                    o.quantile_bound(0.99),
                ]
            })
            .collect(),
    };
    let rules = Table {
        caption: "Alert rules that watch this service".into(),
        headers: vec![
            "Rule".into(),
            "Metric".into(),
            "Condition".into(),
            "Severity".into(),
            "Runbook".into(),
        ],
        rows: applying
            .iter()
            .filter(|(_, r)| r.enabled)
            .map(|(name, r)| {
                vec![
                    name.clone(),
                    r.metric.label().to_owned(),
                    format!(
                        "{} {} over {} min, held {} s",
                        r.comparison.as_str(),
                        r.threshold,
                        r.window_s.div_ceil(60),
                        r.for_s
                    ),
                    r.severity.label().to_owned(),
                    r.runbook.clone(),
                ]
            })
            .collect(),
    };
    let history = Table {
        caption: "Alerts".into(),
        headers: vec![
            "Rule".into(),
            "State".into(),
            "Dependency".into(),
            "Since".into(),
            "What".into(),
        ],
        rows: alerts
            .iter()
            .filter(|a| a.state != AlertState::Pending.as_str())
            .take(50)
            .map(|a| {
                vec![
                    a.rule.clone(),
                    a.state.clone(),
                    if a.dependency.is_empty() {
                        "—".into()
                    } else {
                        a.dependency.clone()
                    },
                    date(a.fired_at.unwrap_or(a.started_at)),
                    a.summary.clone(),
                ]
            })
            .collect(),
    };
    let firing = alerts
        .iter()
        .filter(|a| a.state == AlertState::Firing.as_str())
        .count();
    Section {
        id: "metrics-and-alerts",
        number: 9,
        title: "Metrics and alerts",
        paragraphs: vec![format!(
            "{} dependencies reported in the last day; {firing} alerts are firing now. Latency percentiles are the \
             upper bounds of the histogram buckets that hold them.",
            observed.len()
        )],
        tables: vec![figures, rules, history],
    }
}

fn runbook_section(
    p: Option<&Policy>,
    applying: &[(String, AlertRuleWrite)],
    runbooks: &[crate::store::RunbookRow],
) -> Section {
    let mut wanted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    if let Some(p) = p {
        for (dep, b) in &p.breakers {
            if let Some(r) = &b.runbook {
                wanted
                    .entry(r.clone())
                    .or_default()
                    .insert(format!("breaker on {dep}"));
            }
        }
        for f in &p.fallbacks {
            if let Some(r) = &f.runbook {
                wanted
                    .entry(r.clone())
                    .or_default()
                    .insert(format!("fallback of {}", f.component));
            }
        }
        for (name, n) in &p.agent_nodes {
            if let Some(r) = &n.runbook {
                wanted
                    .entry(r.clone())
                    .or_default()
                    .insert(format!("agent node {name}"));
            }
        }
    }
    for (name, r) in applying.iter().filter(|(_, r)| r.enabled) {
        wanted
            .entry(r.runbook.clone())
            .or_default()
            .insert(format!("alert {name}"));
    }
    let rows = wanted
        .into_iter()
        .map(|(slug, used_by)| {
            let book = runbooks.iter().find(|b| b.slug == slug);
            vec![
                slug.clone(),
                book.map_or_else(|| "(missing)".into(), |b| b.title.clone()),
                book.map_or_else(
                    || "—".into(),
                    |b| format!("v{}, {} steps", b.latest_version, b.step_count),
                ),
                used_by.into_iter().collect::<Vec<_>>().join(", "),
            ]
        })
        .collect();
    Section {
        id: "runbook",
        number: 10,
        title: "Runbook",
        paragraphs: vec!["Every alert leads to a runbook; these are the ones this service's policy and alerts point \
                          to. During an incident, start a checklist from the runbook's page: it records who did each \
                          step, and when."
            .into()],
        tables: vec![Table {
            caption: "Runbooks in use".into(),
            headers: vec!["Runbook".into(), "Title".into(), "Version".into(), "Used by".into()],
            rows,
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc() {
        assert_eq!(date(1_700_000_000_000), "Tue, 14 Nov 2023 22:13:20 GMT");
    }

    #[test]
    fn markdown_cells_keep_their_table_shape() {
        assert_eq!(md_cell("a|b\nc"), "a\\|b c");
    }
}
