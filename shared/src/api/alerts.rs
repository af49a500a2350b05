//! Alert rules on live metrics, the alerts they raise, silences, and the
//! webhooks that notifications go to, as the dashboard and the REST API
//! see them.

use serde::{Deserialize, Serialize};

crate::wire_enum! {
    /// What an alert rule watches. Rates are shares of calls (0 to 1) over
    /// the rule's window, from the one-minute rollups that every replica
    /// writes, so that every replica computes the same value.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(rename_all = "snake_case")]
    pub enum AlertMetric {
        /// Calls refused by an open breaker in the window (a count).
        BreakerOpen => ("breaker_open", "Breaker open (rejected calls)"),
        /// Failed calls over calls.
        ErrorRate => ("error_rate", "Error rate"),
        /// Timed-out calls over calls.
        TimeoutRate => ("timeout_rate", "Timeout rate"),
        /// Calls answered by a fallback over calls.
        FallbackRate => ("fallback_rate", "Fallback rate"),
        /// Degraded responses over calls.
        DegradedRate => ("degraded_rate", "Degraded rate"),
        /// Attempts (calls plus retries) per call.
        RetryAmplification => ("retry_amplification", "Retry amplification"),
        /// Shed and bulkhead-rejected work over all work attempted, across
        /// the service.
        ShedRate => ("shed_rate", "Shed rate"),
        /// Repaired model outputs over calls.
        RepairRate => ("repair_rate", "Repair rate"),
        /// Spend since midnight UTC over the policy's daily cost budget
        /// (`limits.cost_per_tenant_per_day_usd_micros`).
        CostBudget => ("cost_budget", "Cost budget used"),
        /// Dead letters waiting (open or with an action pending).
        DlqDepth => ("dlq_depth", "Dead letters waiting"),
        /// Dead letters received in the window: how fast the queue grows.
        DlqGrowth => ("dlq_growth", "Dead letters received"),
        /// Age in seconds of the oldest dead letter waiting.
        DlqOldestAge => ("dlq_oldest_age", "Oldest dead letter (s)"),
        /// An objective's error budget burns fast: over both an hour and its
        /// last five minutes (pages).
        SloBurnFast => ("slo_burn_fast", "Error budget burn, fast (1 h and 5 min)"),
        /// Over both six hours and their last thirty minutes (pages).
        SloBurnMedium => ("slo_burn_medium", "Error budget burn, medium (6 h and 30 min)"),
        /// Over both three days and their last six hours (a ticket).
        SloBurnSlow => ("slo_burn_slow", "Error budget burn, slow (3 d and 6 h)"),
        /// Violations of a safety goal in the window (a count).
        SafetyViolations => ("safety_violations", "Safety goal violations"),
        /// Canaries the canary analysis rolled back in the window (a count).
        CanaryAborted => ("canary_aborted", "Canary rolled back automatically"),
    }
}

impl AlertMetric {
    /// Whether the metric is computed per dependency (one alert per
    /// dependency) rather than for the service as a whole.
    pub fn per_dependency(self) -> bool {
        !matches!(
            self,
            AlertMetric::ShedRate
                | AlertMetric::CostBudget
                | AlertMetric::DlqDepth
                | AlertMetric::DlqGrowth
                | AlertMetric::DlqOldestAge
                | AlertMetric::SloBurnFast
                | AlertMetric::SloBurnMedium
                | AlertMetric::SloBurnSlow
                | AlertMetric::SafetyViolations
                | AlertMetric::CanaryAborted
        )
    }

    /// Whether rules on this metric are generated from a policy's
    /// objectives (one per objective), rather than written by people.
    pub fn from_objectives(self) -> bool {
        matches!(
            self,
            AlertMetric::SloBurnFast
                | AlertMetric::SloBurnMedium
                | AlertMetric::SloBurnSlow
                | AlertMetric::SafetyViolations
                | AlertMetric::CanaryAborted
        )
    }

    /// Whether the value is a share of calls, which is noise until enough
    /// calls were made (see [`AlertRuleWrite::min_calls`]).
    pub fn is_rate(self) -> bool {
        matches!(
            self,
            AlertMetric::ErrorRate
                | AlertMetric::TimeoutRate
                | AlertMetric::FallbackRate
                | AlertMetric::DegradedRate
                | AlertMetric::RetryAmplification
                | AlertMetric::ShedRate
                | AlertMetric::RepairRate
        )
    }
}

crate::wire_enum! {
    /// Which side of the threshold is bad.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(rename_all = "snake_case")]
    pub enum Comparison {
        /// Fires while the value is above the threshold.
        Above => ("above", "above"),
        /// Fires while the value is below the threshold.
        Below => ("below", "below"),
    }
}

crate::wire_enum! {
    /// How urgent an alert is.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(rename_all = "snake_case")]
    pub enum Severity {
        /// Wake someone up.
        Page => ("page", "Page"),
        /// Someone should look during working hours.
        Ticket => ("ticket", "Ticket"),
        /// Worth knowing; nobody needs to act.
        Info => ("info", "Info"),
    }
}

/// Where a rule applies. Each part left out matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AlertScope {
    /// A service's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// An environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// A dependency's name (for per-dependency metrics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependency: Option<String>,
}

/// `PUT /api/v1/alert-rules/{name}`: creates or replaces a rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AlertRuleWrite {
    /// What the rule is for, in a sentence.
    #[serde(default)]
    pub description: String,
    /// What it watches.
    pub metric: AlertMetric,
    /// Where.
    #[serde(default)]
    pub scope: AlertScope,
    /// Which side of the threshold fires.
    pub comparison: Comparison,
    /// The threshold, in the metric's unit.
    pub threshold: f64,
    /// The window the value is computed over, in seconds (60 to 86 400;
    /// rounded up to whole minutes, the rollups' resolution).
    pub window_s: u32,
    /// How long the condition must hold before the alert fires, in seconds.
    #[serde(default)]
    pub for_s: u32,
    /// How urgent.
    pub severity: Severity,
    /// The runbook's slug. Required: every alert leads to a runbook.
    pub runbook: String,
    /// Rates are not judged on fewer calls than this in the window.
    #[serde(default = "default_min_calls")]
    pub min_calls: u32,
    /// Webhooks (by id) that get this rule's notifications.
    #[serde(default)]
    pub notify: Vec<String>,
    /// A disabled rule is not evaluated; its firing alerts resolve.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The objective (by id) a generated rule watches; set only on rules
    /// that Ballast generates from a policy's objectives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective: Option<String>,
}

fn default_min_calls() -> u32 {
    20
}

fn default_true() -> bool {
    true
}

/// A stored rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertRuleView {
    /// The rule's name: a slug, and what policies' `alert` fields name.
    pub name: String,
    /// Its definition.
    #[serde(flatten)]
    pub rule: AlertRuleWrite,
    /// Whether it came with Ballast (it can still be edited or disabled).
    pub builtin: bool,
    /// Who last wrote it.
    pub updated_by: String,
    /// When, Unix milliseconds.
    pub updated_at_ms: i64,
}

crate::wire_enum! {
    /// Where an alert stands: `pending` (the condition holds, not yet for
    /// `for_s`) → `firing` → `resolved`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(rename_all = "snake_case")]
    pub enum AlertState {
        /// The condition holds, not yet for long enough.
        Pending => ("pending", "Pending"),
        /// Firing.
        Firing => ("firing", "Firing"),
        /// Over.
        Resolved => ("resolved", "Resolved"),
    }
}

/// One alert: a rule's condition on one service (and dependency).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertView {
    /// Id.
    pub id: String,
    /// The rule.
    pub rule: String,
    /// Its metric.
    pub metric: AlertMetric,
    /// Its severity.
    pub severity: Severity,
    /// Its runbook's slug.
    pub runbook: String,
    /// The service.
    pub service: String,
    /// The environment.
    pub environment: String,
    /// The dependency, for per-dependency metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependency: Option<String>,
    /// Where it stands.
    pub state: AlertState,
    /// The last value computed.
    pub value: f64,
    /// The rule's threshold.
    pub threshold: f64,
    /// A sentence saying what is wrong.
    pub summary: String,
    /// When the condition began to hold, Unix milliseconds.
    pub started_at_ms: i64,
    /// When it fired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fired_at_ms: Option<i64>,
    /// When it resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at_ms: Option<i64>,
    /// Who acknowledged it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_by: Option<String>,
    /// When.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_at_ms: Option<i64>,
    /// The silence that keeps it from notifying, if one matches now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silenced_by: Option<String>,
}

/// `POST /api/v1/silences`: stop notifications for matching alerts for a
/// while. Alerts still fire and show; only notifications stop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SilenceWrite {
    /// Only this rule's alerts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Only this service's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Only this environment's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// How long, in seconds (at most 7 days).
    pub duration_s: u32,
    /// Why.
    pub reason: String,
}

/// A silence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SilenceView {
    /// Id.
    pub id: String,
    /// Rule matched, if narrowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Service matched, if narrowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Environment matched, if narrowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Why.
    pub reason: String,
    /// Who.
    pub created_by: String,
    /// From, Unix milliseconds.
    pub starts_at_ms: i64,
    /// Until.
    pub ends_at_ms: i64,
    /// Who ended it early, if someone did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_by: Option<String>,
}

/// `POST /api/v1/webhooks`: where notifications go.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WebhookWrite {
    /// A name for people.
    pub name: String,
    /// An `http://` URL. Each request is signed with the secret.
    pub url: String,
    /// The signing secret (16 to 256 characters). Never shown again.
    pub secret: String,
}

impl std::fmt::Debug for WebhookWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookWrite")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// A webhook, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookView {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// URL.
    pub url: String,
    /// Who created it.
    pub created_by: String,
    /// When.
    pub created_at_ms: i64,
    /// Deliveries that failed in a row (the breaker opens at 5).
    pub consecutive_failures: u32,
    /// While set and in the future, deliveries wait: the receiver is
    /// failing and Ballast gives it room to recover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker_open_until_ms: Option<i64>,
    /// Notifications not delivered yet.
    pub pending: u64,
}

crate::wire_enum! {
    /// Where a notification stands.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(rename_all = "snake_case")]
    pub enum NotificationStatus {
        /// Waiting for its next attempt.
        Pending => ("pending", "Pending"),
        /// The receiver answered 2xx.
        Delivered => ("delivered", "Delivered"),
        /// Given up on after every attempt.
        Failed => ("failed", "Failed"),
    }
}

/// One notification of one alert to one webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotificationView {
    /// Id; sent as `X-Ballast-Delivery`, so a receiver can drop repeats.
    pub id: String,
    /// The alert.
    pub alert_id: String,
    /// The webhook.
    pub webhook_id: String,
    /// `firing` or `resolved`.
    pub event: AlertState,
    /// Where it stands.
    pub status: NotificationStatus,
    /// Attempts so far.
    pub attempts: u32,
    /// When the next attempt is due.
    pub next_attempt_at_ms: i64,
    /// Why the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When it was delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at_ms: Option<i64>,
}

/// What a webhook receives: `POST` with this JSON body, and the headers
/// `X-Ballast-Delivery` (the notification's id), `X-Ballast-Timestamp`
/// (Unix seconds) and `X-Ballast-Signature: sha256=HEX`, the HMAC-SHA256 of
/// `TIMESTAMP.BODY` under the webhook's secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertNotification {
    /// `firing` or `resolved`.
    pub event: AlertState,
    /// The alert as it stood when the notification was made.
    pub alert: AlertView,
    /// Where to read the runbook: the dashboard's path.
    pub runbook_path: String,
}

crate::wire_enum! {
    /// What an incident override does to a breaker.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(rename_all = "snake_case")]
    pub enum OverrideState {
        /// Force it open: no call reaches the dependency.
        Open => ("open", "Force open"),
        /// Force it closed: it never opens.
        Closed => ("closed", "Force closed"),
        /// End an override now.
        Lift => ("lift", "Lift the override"),
    }
}

/// A service, by name and environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ServiceRef {
    /// Name.
    pub name: String,
    /// Environment.
    pub environment: String,
}

/// `POST /api/v1/incidents/breaker-override`: force one dependency's
/// breaker open or closed across the fleet for a while, or lift that. Each
/// service gets a new policy version through the normal publish path:
/// versioned, audited, and waiting for an approver where its policy says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BreakerOverrideRequest {
    /// The dependency, by the name policies give it (`reranker`).
    pub dependency: String,
    /// What to do to its breaker.
    pub state: OverrideState,
    /// How long the override holds, in seconds (60 to 604 800); agents end
    /// it on their own clock. Not used to lift.
    #[serde(default)]
    pub duration_s: u32,
    /// Why: the incident, in a line.
    pub reason: String,
    /// The services to change; every service whose active policy has a
    /// breaker on the dependency when left empty.
    #[serde(default)]
    pub services: Vec<ServiceRef>,
}

/// What happened to one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum OverrideOutcome {
    /// Published as this version.
    Published {
        /// The new version.
        version: u64,
    },
    /// Waiting for an approver.
    PendingApproval {
        /// The publish request to approve.
        request_id: String,
    },
    /// Not changed, and why (no breaker on that dependency, say).
    Skipped {
        /// Why.
        reason: String,
    },
    /// Refused, and why.
    Failed {
        /// Why.
        error: String,
    },
}

/// One service's result of a [`BreakerOverrideRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BreakerOverrideResult {
    /// The service.
    pub service: ServiceRef,
    /// What happened.
    #[serde(flatten)]
    pub outcome: OverrideOutcome,
}
