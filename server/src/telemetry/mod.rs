//! Telemetry: ingest of agents' batches, the live view and `/metrics`.
//!
//! A batch is checked first (a bad one is refused whole and touches nothing),
//! then written durably — its receipt and its one-minute rollups in one
//! transaction, shared with whatever other batches are waiting ([`writer`]) —
//! and only then added to this replica's in-memory [`live`] aggregation and
//! acknowledged. A resent batch finds its receipt and adds nothing anywhere.
//!
//! Browsers follow along on `GET /api/v1/live`: one task per replica
//! recomputes the fleet summary when a batch arrives (at most once a second)
//! and once a second anyway, and every stream sends it when it changed.

pub mod components;
pub mod live;
pub mod metrics;
pub mod roster;
pub mod writer;

use crate::app::App;
use crate::clock::Clock;
use crate::error::{ApiError, ApiResult};
use crate::policy::instances::{self, FORGET_MS};
use crate::policy_hub::Snapshot;
use crate::store::{
    BatchWrite, DepthRow, InstanceRow, ROLLUP_FIRST_BUCKET, ROLLUP_WIDTH, ReceiptKey, RollupRow,
    ServiceRow, Store,
};
use live::Live;
use shared::api::{
    DeadLetterFigures, FleetLive, InstanceCounts, InstanceStatus, ServiceLiveSummary,
    ServiceTelemetry,
};
use shared::policy::{DegradedStatus, is_objective_record};
use shared::protocol::{DependencyTelemetry, LATENCY_BUCKETS_MS, TelemetryBatch};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// Indices into [`Counts`], in the order of the rollup columns.
pub mod col {
    #![allow(missing_docs)]
    pub const CALLS: usize = 0;
    pub const SUCCESSES: usize = 1;
    pub const FAILURES: usize = 2;
    pub const TIMEOUTS: usize = 3;
    pub const RETRIES: usize = 4;
    pub const RETRY_BUDGET_EXHAUSTED: usize = 5;
    pub const BREAKER_REJECTIONS: usize = 6;
    pub const BULKHEAD_REJECTIONS: usize = 7;
    pub const RATE_LIMITED: usize = 8;
    pub const SHED: usize = 9;
    pub const FALLBACKS: usize = 10;
    pub const DEGRADED: usize = 11;
    pub const REPAIRS: usize = 12;
    pub const TOKENS: usize = 13;
    pub const COST_USD_MICROS: usize = 14;
    pub const LATENCY_SUM_MS: usize = 15;
    pub const IDEMPOTENCY_CONFLICTS: usize = 16;
    pub const DUPLICATES_PREVENTED: usize = 17;
    /// The first of five per-status counts, in [`DegradedStatus`] order
    /// from `degraded` to `refused` (see [`status`]).
    pub const STATUS_DEGRADED: usize = 18;
    pub const STATUS_PARTIAL: usize = 19;
    pub const STATUS_QUEUED: usize = 20;
    pub const STATUS_PAUSED: usize = 21;
    pub const STATUS_REFUSED: usize = 22;

    /// The column counting `status`; `None` for normal, which is what is
    /// left of the calls.
    pub fn status(status: shared::policy::DegradedStatus) -> Option<usize> {
        use shared::policy::DegradedStatus as S;
        match status {
            S::Normal => None,
            S::Degraded => Some(STATUS_DEGRADED),
            S::Partial => Some(STATUS_PARTIAL),
            S::Queued => Some(STATUS_QUEUED),
            S::Paused => Some(STATUS_PAUSED),
            S::Refused => Some(STATUS_REFUSED),
        }
    }
}

/// Additive counts in rollup column order: counters, then latency buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts(pub [u64; ROLLUP_WIDTH]);

impl Default for Counts {
    fn default() -> Self {
        Counts([0; ROLLUP_WIDTH])
    }
}

impl Counts {
    /// One dependency's window, flattened. Failures and fallbacks are summed
    /// over their keys; degraded counts every status but normal.
    pub fn from_dependency(d: &DependencyTelemetry) -> Counts {
        let mut c = Counts::default();
        let v = &mut c.0;
        v[col::CALLS] = d.calls;
        v[col::SUCCESSES] = d.successes;
        v[col::FAILURES] = d.failures.values().fold(0u64, |a, n| a.saturating_add(*n));
        v[col::TIMEOUTS] = d.timeouts;
        v[col::RETRIES] = d.retries;
        v[col::RETRY_BUDGET_EXHAUSTED] = d.retry_budget_exhausted;
        v[col::BREAKER_REJECTIONS] = d.breaker_rejections;
        v[col::BULKHEAD_REJECTIONS] = d.bulkhead_rejections;
        v[col::RATE_LIMITED] = d.rate_limited;
        v[col::SHED] = d.shed;
        v[col::FALLBACKS] = d.fallbacks.values().fold(0u64, |a, n| a.saturating_add(*n));
        v[col::DEGRADED] = d
            .degraded
            .iter()
            .filter(|(s, _)| **s != DegradedStatus::Normal)
            .fold(0u64, |a, (_, n)| a.saturating_add(*n));
        v[col::REPAIRS] = d.repairs;
        v[col::TOKENS] = d.tokens;
        v[col::COST_USD_MICROS] = d.cost_usd_micros;
        v[col::LATENCY_SUM_MS] = d.latency_sum_ms;
        v[col::IDEMPOTENCY_CONFLICTS] = d.idempotency_conflicts;
        v[col::DUPLICATES_PREVENTED] = d.duplicates_prevented;
        for (status, n) in &d.degraded {
            if let Some(at) = col::status(*status) {
                v[at] = v[at].saturating_add(*n);
            }
        }
        for (i, n) in d.latency_buckets.iter().enumerate() {
            v[ROLLUP_FIRST_BUCKET + i] = *n;
        }
        c
    }

    /// Counts read back from a stored rollup.
    pub fn from_rollup(r: &RollupRow) -> Counts {
        Counts(r.values.map(|v| v.max(0) as u64))
    }

    /// Adds `other` in place.
    pub fn add(&mut self, other: &Counts) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a = a.saturating_add(b);
        }
    }

    /// One column.
    pub fn get(&self, column: usize) -> u64 {
        self.0[column]
    }

    /// The latency histogram, per [`LATENCY_BUCKETS_MS`] bucket.
    pub fn buckets(&self) -> &[u64] {
        &self.0[ROLLUP_FIRST_BUCKET..]
    }

    /// Completed calls: the histogram's total.
    pub fn latency_count(&self) -> u64 {
        self.buckets()
            .iter()
            .fold(0u64, |a, n| a.saturating_add(*n))
    }
}

/// The `q` quantile (0–1) of a fixed-bucket histogram: the upper bound of the
/// bucket holding it, in milliseconds; the open-ended last bucket reads as
/// its lower bound (60 000). None for an empty histogram.
pub fn quantile_ms(buckets: &[u64], q: f64) -> Option<u64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0u64;
    for (i, n) in buckets.iter().enumerate() {
        seen += n;
        if seen >= rank {
            let bound = LATENCY_BUCKETS_MS[i];
            return Some(if bound == u64::MAX {
                LATENCY_BUCKETS_MS[LATENCY_BUCKETS_MS.len() - 2]
            } else {
                bound
            });
        }
    }
    None
}

/// Limits on a batch. An agent flushes about once a second, so these are far
/// above what a healthy one sends and bound what a broken one can cost.
pub mod limits {
    /// Dependencies in one batch.
    pub const MAX_DEPENDENCIES: usize = 256;
    /// Tenants in one batch.
    pub const MAX_TENANTS: usize = 1000;
    /// Bytes in a dependency, tenant or fallback name.
    pub const MAX_NAME_BYTES: usize = 128;
    /// Fallback rows in one dependency.
    pub const MAX_FALLBACK_KEYS: usize = 64;
    /// Breaker transitions in one dependency's window.
    pub const MAX_TRANSITIONS: usize = 64;
    /// Any one counter in one window: a trillion, so that sums over a
    /// minute of a large fleet stay far from overflowing 63 bits.
    pub const MAX_COUNT: u64 = 1_000_000_000_000;
    /// The longest window a batch may cover.
    pub const MAX_WINDOW_MS: i64 = 3600 * 1000;
    /// How far ahead of the server's clock a window may end (clock skew).
    pub const MAX_FUTURE_MS: i64 = 5 * 60 * 1000;
    /// How old a batch may be. Receipts are kept a day; a batch older than
    /// that could no longer be recognised as a resend, so it is refused.
    pub const MAX_AGE_MS: i64 = 23 * 3600 * 1000;
}

/// Receipts are kept this long, which bounds how late a resend is recognised.
pub const RECEIPT_RETENTION_MS: i64 = 24 * 3600 * 1000;
/// The fleet overview's window.
pub const FLEET_WINDOW_SECS: u64 = 60;
/// How often the live feed recomputes at most (and at least, while watched).
/// A quarter second keeps every dashboard well under a second behind the
/// agents (measured: benches/telemetry_ingest.rs) at the cost of recomputing
/// the fleet summary four times a second while someone watches.
const PUBLISH_EVERY: Duration = Duration::from_millis(250);
/// How often old receipts and rollups are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

fn check_name(field: String, name: &str) -> ApiResult<()> {
    if name.is_empty() || name.len() > limits::MAX_NAME_BYTES || name.chars().any(char::is_control)
    {
        return Err(ApiError::invalid(
            field,
            format!(
                "names must be 1 to {} bytes without control characters",
                limits::MAX_NAME_BYTES
            ),
        ));
    }
    Ok(())
}

fn check_count(field: impl FnOnce() -> String, n: u64) -> ApiResult<()> {
    if n > limits::MAX_COUNT {
        return Err(ApiError::invalid(
            field(),
            format!("at most {} per window", limits::MAX_COUNT),
        ));
    }
    Ok(())
}

/// Checks a batch against the protocol's bounds; the error names the first
/// field at fault.
pub fn validate(batch: &TelemetryBatch, now_ms: i64) -> ApiResult<()> {
    instances::check_instance_id(&batch.instance_id)?;
    if batch.sequence == 0 || batch.sequence > i64::MAX as u64 {
        return Err(ApiError::invalid(
            "sequence",
            "sequence must be between 1 and 2^63-1",
        ));
    }
    if batch.window_start_ms < 0 {
        return Err(ApiError::invalid(
            "window_start_ms",
            "window_start_ms must be a Unix time in milliseconds",
        ));
    }
    if batch.window_end_ms < batch.window_start_ms {
        return Err(ApiError::invalid(
            "window_end_ms",
            "window_end_ms must not be before window_start_ms",
        ));
    }
    if batch.window_end_ms - batch.window_start_ms > limits::MAX_WINDOW_MS {
        return Err(ApiError::invalid(
            "window_start_ms",
            "a window may cover at most an hour",
        ));
    }
    if batch.window_end_ms > now_ms + limits::MAX_FUTURE_MS {
        return Err(ApiError::invalid(
            "window_end_ms",
            "window_end_ms is more than 5 minutes ahead of the server's clock",
        ));
    }
    if batch.window_end_ms < now_ms - limits::MAX_AGE_MS {
        return Err(ApiError::invalid(
            "window_end_ms",
            "the batch is older than 23 hours; it can no longer be told from a resend",
        ));
    }
    if batch.policy_version.is_some_and(|v| v > i64::MAX as u64) {
        return Err(ApiError::invalid("policy_version", "out of range"));
    }
    if batch.dependencies.len() > limits::MAX_DEPENDENCIES {
        return Err(ApiError::invalid(
            "dependencies",
            format!(
                "at most {} dependencies per batch",
                limits::MAX_DEPENDENCIES
            ),
        ));
    }
    for (name, d) in &batch.dependencies {
        let at = |f: &str| format!("dependencies.{name}.{f}");
        check_name(format!("dependencies.{name}"), name)?;
        if !d.latency_buckets.is_empty() && d.latency_buckets.len() != LATENCY_BUCKETS_MS.len() {
            return Err(ApiError::invalid(
                at("latency_buckets"),
                format!(
                    "latency_buckets must be empty or have exactly {} counts, one per bucket of LATENCY_BUCKETS_MS",
                    LATENCY_BUCKETS_MS.len()
                ),
            ));
        }
        for (i, n) in d.latency_buckets.iter().enumerate() {
            check_count(|| format!("{}[{i}]", at("latency_buckets")), *n)?;
        }
        for (field, n) in [
            ("calls", d.calls),
            ("successes", d.successes),
            ("timeouts", d.timeouts),
            ("retries", d.retries),
            ("retry_budget_exhausted", d.retry_budget_exhausted),
            ("breaker_rejections", d.breaker_rejections),
            ("bulkhead_rejections", d.bulkhead_rejections),
            ("rate_limited", d.rate_limited),
            ("shed", d.shed),
            ("repairs", d.repairs),
            ("idempotency_conflicts", d.idempotency_conflicts),
            ("duplicates_prevented", d.duplicates_prevented),
            ("tokens", d.tokens),
            ("cost_usd_micros", d.cost_usd_micros),
            ("latency_sum_ms", d.latency_sum_ms),
            ("in_flight", d.in_flight),
            ("queued", d.queued),
        ] {
            check_count(|| at(field), n)?;
        }
        for n in d.failures.values() {
            check_count(|| at("failures"), *n)?;
        }
        for n in d.degraded.values() {
            check_count(|| at("degraded"), *n)?;
        }
        if d.fallbacks.len() > limits::MAX_FALLBACK_KEYS {
            return Err(ApiError::invalid(
                at("fallbacks"),
                format!("at most {} fallback rows", limits::MAX_FALLBACK_KEYS),
            ));
        }
        for (key, n) in &d.fallbacks {
            check_name(at("fallbacks"), key)?;
            check_count(|| at("fallbacks"), *n)?;
        }
        if d.breaker_transitions.len() > limits::MAX_TRANSITIONS {
            return Err(ApiError::invalid(
                at("breaker_transitions"),
                format!("at most {} transitions per window", limits::MAX_TRANSITIONS),
            ));
        }
    }
    if batch.tenant_cost_usd_micros.len() > limits::MAX_TENANTS {
        return Err(ApiError::invalid(
            "tenant_cost_usd_micros",
            format!("at most {} tenants per batch", limits::MAX_TENANTS),
        ));
    }
    for (tenant, n) in &batch.tenant_cost_usd_micros {
        check_name("tenant_cost_usd_micros".into(), tenant)?;
        check_count(|| "tenant_cost_usd_micros".into(), *n)?;
    }
    check_count(|| "dropped_batches".into(), batch.dropped_batches)?;
    Ok(())
}

/// The rollup deltas of a batch: one per dependency, in the minute in which
/// its window ended. The request records and safety counts are counted a
/// second time under the policy version the instance ran, so that a
/// canary's requests can be told from the stable version's (see
/// [`crate::objectives::of_version`]).
pub fn rollups_of(service_id: i64, batch: &TelemetryBatch) -> Vec<RollupRow> {
    let minute_ms = batch.window_end_ms.div_euclid(60_000) * 60_000;
    let row = |dependency: String, d: &DependencyTelemetry| RollupRow {
        service_id,
        dependency,
        minute_ms,
        // Validation bounds every value far below i64::MAX.
        values: Counts::from_dependency(d)
            .0
            .map(|v| v.min(i64::MAX as u64) as i64),
    };
    let mut rows: Vec<RollupRow> = batch
        .dependencies
        .iter()
        .map(|(name, d)| row(name.clone(), d))
        .collect();
    if let Some(version) = batch.policy_version {
        for (name, d) in &batch.dependencies {
            if is_objective_record(name) {
                rows.push(row(crate::objectives::of_version(name, version), d));
            }
        }
    }
    rows
}

/// The telemetry side of the application state.
#[derive(Debug)]
pub struct Telemetry {
    /// What this replica has heard recently.
    pub live: Arc<Mutex<Live>>,
    /// The `/metrics` registry.
    pub metrics: metrics::Metrics,
    /// Every service and its instances' heartbeats, for the fleet view;
    /// shared with the `/metrics` collector.
    pub roster: Arc<roster::Roster>,
    writer: writer::Writer,
    changed: Arc<Notify>,
    fleet: watch::Sender<Arc<str>>,
    /// Each service's dead-letter queue, as the last sweep counted it;
    /// shared with the `/metrics` collector.
    dead_letters: Arc<Mutex<HashMap<i64, metrics::QueueFigures>>>,
    /// Every objective's figures as the last scrape computed them; shared
    /// with the `/metrics` collector.
    pub objectives: metrics::SharedObjectives,
}

impl Telemetry {
    /// Starts the writer task.
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Telemetry {
        let live = Arc::new(Mutex::new(Live::default()));
        let dead_letters = Arc::new(Mutex::new(HashMap::new()));
        let roster = Arc::new(roster::Roster::default());
        let objectives = metrics::SharedObjectives::default();
        Telemetry {
            metrics: metrics::Metrics::new(
                live.clone(),
                dead_letters.clone(),
                objectives.clone(),
                roster.clone(),
                clock.clone(),
            ),
            live,
            roster,
            writer: writer::Writer::spawn(store, clock),
            changed: Arc::new(Notify::new()),
            fleet: watch::channel(Arc::from("")).0,
            dead_letters,
            objectives,
        }
    }

    /// Replaces the dead-letter figures with a fresh count from the store
    /// (so every replica shows the same), waking the live view if they
    /// changed.
    pub fn set_dead_letter_depths(&self, rows: Vec<DepthRow>) {
        let fresh: HashMap<i64, metrics::QueueFigures> = rows
            .into_iter()
            .map(|r| {
                (
                    r.service_id,
                    metrics::QueueFigures {
                        service: r.name,
                        environment: r.environment,
                        figures: DeadLetterFigures {
                            depth: r.depth.max(0) as u64,
                            oldest_received_at_ms: r.oldest,
                        },
                    },
                )
            })
            .collect();
        let mut figures = self.dead_letters.lock().expect("dead-letter figures lock");
        if *figures != fresh {
            *figures = fresh;
            self.changed.notify_one();
        }
    }

    /// One service's dead-letter figures.
    pub fn dead_letter_figures(&self, service_id: i64) -> DeadLetterFigures {
        self.dead_letters
            .lock()
            .expect("dead-letter figures lock")
            .get(&service_id)
            .map(|q| q.figures)
            .unwrap_or_default()
    }

    /// Records a checked batch durably, then (if it was new) adds it to the
    /// live view. Returns whether it was new.
    pub async fn ingest(
        &self,
        service_id: i64,
        name: &str,
        environment: &str,
        batch: &TelemetryBatch,
        now_ms: i64,
    ) -> ApiResult<bool> {
        let write = BatchWrite {
            receipt: ReceiptKey {
                service_id,
                instance_id: batch.instance_id.clone(),
                sequence: batch.sequence as i64,
            },
            rollups: rollups_of(service_id, batch),
        };
        let new = self.writer.write(write).await?;
        if new {
            self.live.lock().expect("live telemetry lock").apply(
                service_id,
                name,
                environment,
                batch,
                now_ms,
            );
            // A service registered on another replica shows in the fleet
            // view here from its first batch, not the next refresh.
            self.roster.service(service_id, name, environment);
            self.changed.notify_one();
        }
        self.metrics
            .batch(if new { "accepted" } else { "duplicate" });
        Ok(new)
    }

    /// Subscribes to the serialised fleet summary; empty until first computed.
    pub fn subscribe_fleet(&self) -> watch::Receiver<Arc<str>> {
        self.fleet.subscribe()
    }
}

fn instance_counts<'a>(
    now_ms: i64,
    heartbeats: impl IntoIterator<Item = &'a InstanceRow>,
    telemetry_seen: Option<&HashMap<String, i64>>,
    snapshot: &Snapshot,
) -> InstanceCounts {
    let mut last: BTreeMap<&str, i64> = BTreeMap::new();
    let mut lagging = Vec::new();
    for row in heartbeats {
        last.insert(&row.instance_id, row.last_seen_at);
        let desired = snapshot.for_instance(&row.instance_id).map(|p| p.version);
        if desired.is_some() && row.policy_version.map(|v| v as u64) != desired {
            lagging.push(row.instance_id.clone());
        }
    }
    for (id, seen) in telemetry_seen.into_iter().flatten() {
        let e = last.entry(id).or_insert(*seen);
        *e = (*e).max(*seen);
    }
    // Sorted, so that equal fleets serialise alike: the live feed sends a
    // view only when its JSON changed, and heartbeats come in no order.
    lagging.sort_unstable();
    let mut counts = InstanceCounts {
        lagging,
        ..InstanceCounts::default()
    };
    for seen in last.values() {
        let age = now_ms - seen;
        // Silent for a day: no longer part of the fleet, not even as down.
        if age > FORGET_MS {
            continue;
        }
        match instances::status(age) {
            InstanceStatus::Up => counts.up += 1,
            InstanceStatus::Stale => counts.stale += 1,
            InstanceStatus::Down => counts.down += 1,
        }
    }
    counts
}

/// One service's live figures over the last `window_secs` seconds (1–900),
/// with a time series of at most 300 points.
pub async fn service_view(
    app: &App,
    service: &ServiceRow,
    window_secs: u64,
) -> ApiResult<ServiceTelemetry> {
    let now_ms = app.clock.now_ms();
    let window = window_secs as i64;
    let step = ((window + 299) / 300).max(1);
    let heartbeats = app.store.instances(service.id, now_ms - FORGET_MS).await?;
    let snapshot = app.hub.snapshot(service.id).await?;
    let live = app.telemetry.live.lock().expect("live telemetry lock");
    let s = live.services.get(&service.id);
    let kind = |name: &str| components::kind(&snapshot, name);
    let rows = s
        .map(|s| s.dependencies(now_ms, window, kind))
        .unwrap_or_default();
    Ok(ServiceTelemetry {
        service: service.name.clone(),
        environment: service.environment.clone(),
        as_of_ms: now_ms,
        window_secs,
        step_secs: step as u64,
        instances: instance_counts(now_ms, &heartbeats, s.map(|s| &s.instances_seen), &snapshot),
        dependencies: rows.components,
        service_level: rows.service_level,
        series: s
            .map(|s| s.series(now_ms, window, step, kind))
            .unwrap_or_default(),
        tenant_cost_usd_micros: s
            .map(|s| s.tenant_costs(now_ms, window))
            .unwrap_or_default(),
    })
}

/// Every registered service's summary over the last minute. Reads no
/// database once the roster is loaded and every service's policy snapshot
/// is in the hub (see [`roster`]).
pub async fn fleet_view(app: &App) -> ApiResult<FleetLive> {
    let now_ms = app.clock.now_ms();
    let roster = &app.telemetry.roster;
    roster.ensure_loaded(&app.store, now_ms).await?;
    let ids = roster.read(i64::MIN, |services| {
        services.map(|(s, _)| s.id).collect::<Vec<_>>()
    });
    let mut snapshots = HashMap::with_capacity(ids.len());
    for id in ids {
        snapshots.insert(id, app.hub.snapshot(id).await?);
    }
    let summaries = roster.read(now_ms - FORGET_MS, |services| {
        let live = app.telemetry.live.lock().expect("live telemetry lock");
        services
            // A service registered since the snapshots were taken comes
            // with the next view.
            .filter_map(|(s, heartbeats)| {
                let snapshot = snapshots.get(&s.id)?;
                let l = live.services.get(&s.id);
                let rows = l
                    .map(|l| {
                        l.dependencies(now_ms, FLEET_WINDOW_SECS as i64, |name| {
                            components::kind(snapshot, name)
                        })
                    })
                    .unwrap_or_default();
                let worst_breaker = rows
                    .components
                    .iter()
                    .filter_map(|d| d.breaker)
                    .max_by_key(|b| live::severity(*b));
                Some(ServiceLiveSummary {
                    service: s.name.to_owned(),
                    environment: s.environment.to_owned(),
                    instances: instance_counts(
                        now_ms,
                        heartbeats,
                        l.map(|l| &l.instances_seen),
                        snapshot,
                    ),
                    worst_breaker,
                    dependencies: rows.components,
                    service_level: rows.service_level,
                    dead_letters: app.telemetry.dead_letter_figures(s.id),
                })
            })
            .collect()
    });
    Ok(FleetLive {
        as_of_ms: now_ms,
        window_secs: FLEET_WINDOW_SECS,
        services: summaries,
    })
}

/// Merges the store into the roster every `every`, and loads it at start,
/// so that what other replicas recorded shows here (see [`roster`]).
async fn refresh_roster(weak: Weak<App>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(app) = weak.upgrade() else { return };
        if let Err(e) = app
            .telemetry
            .roster
            .refresh(&app.store, app.clock.now_ms())
            .await
        {
            tracing::warn!(error = %e, "could not refresh the fleet roster");
        }
    }
}

/// Deletes receipts older than a day and rollups older than the configured
/// retention, as of the app's clock. Returns (receipts, rollups) deleted.
pub async fn prune(app: &App) -> ApiResult<(u64, u64)> {
    let now_ms = app.clock.now_ms();
    let retention_ms = i64::from(app.settings.rollup_retention_days) * 24 * 3600 * 1000;
    Ok(app
        .store
        .prune_telemetry(
            now_ms - RECEIPT_RETENTION_MS,
            now_ms - retention_ms,
            now_ms - i64::from(shared::policy::MAX_WINDOW_DAYS) * 24 * 3600 * 1000,
        )
        .await?)
}

/// Starts the background tasks that need the whole app: pruning, the live
/// feed, and the roster's refresh. All hold the app weakly and end when it
/// is dropped.
pub fn start(app: &Arc<App>) {
    let weak = Arc::downgrade(app);
    tokio::spawn(async move {
        // The first run waits a period too: start-up stays quick, and a test
        // that prunes by hand does not race this task.
        let first = tokio::time::Instant::now() + PRUNE_EVERY;
        let mut every = tokio::time::interval_at(first, PRUNE_EVERY);
        loop {
            every.tick().await;
            let Some(app) = weak.upgrade() else { return };
            match prune(&app).await {
                Ok((0, 0)) => {}
                Ok((receipts, rollups)) => {
                    tracing::info!(receipts, rollups, "pruned old telemetry")
                }
                Err(e) => tracing::warn!(error = %e.message, "could not prune telemetry"),
            }
        }
    });
    let weak = Arc::downgrade(app);
    let changed = app.telemetry.changed.clone();
    tokio::spawn(publish_fleet(weak, changed));
    tokio::spawn(refresh_roster(
        Arc::downgrade(app),
        app.settings.fleet_refresh,
    ));
}

/// Recomputes the fleet summary when a batch arrives or a second passes, at
/// most once a second and only while someone watches, and wakes the streams
/// when it differs from the last one.
async fn publish_fleet(weak: Weak<App>, changed: Arc<Notify>) {
    let mut every = tokio::time::interval(PUBLISH_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = changed.notified() => {}
            _ = every.tick() => {}
        }
        if let Some(at) = last {
            let due = at + PUBLISH_EVERY;
            if tokio::time::Instant::now() < due {
                tokio::time::sleep_until(due).await;
            }
        }
        let Some(app) = weak.upgrade() else { return };
        if app.telemetry.fleet.receiver_count() == 0 {
            continue;
        }
        last = Some(tokio::time::Instant::now());
        match fleet_view(&app).await.map(|f| serde_json::to_string(&f)) {
            Ok(Ok(json)) => {
                app.telemetry.fleet.send_if_modified(|current| {
                    if **current == *json {
                        false
                    } else {
                        *current = Arc::from(json);
                        true
                    }
                });
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "could not serialise the fleet summary"),
            Err(e) => tracing::warn!(error = %e.message, "could not compute the fleet summary"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_read_bucket_upper_bounds() {
        let mut b = [0u64; 16];
        b[3] = 90; // ≤ 10 ms
        b[6] = 6; // ≤ 100 ms
        b[9] = 4; // ≤ 1 s
        assert_eq!(quantile_ms(&b, 0.50), Some(10));
        assert_eq!(quantile_ms(&b, 0.90), Some(10));
        assert_eq!(quantile_ms(&b, 0.95), Some(100));
        assert_eq!(quantile_ms(&b, 0.99), Some(1000));
        assert_eq!(quantile_ms(&[0; 16], 0.5), None);
        let mut slow = [0u64; 16];
        slow[15] = 1;
        assert_eq!(quantile_ms(&slow, 0.5), Some(60_000));
    }

    /// Counts are stored and summed by position: each index names the
    /// column it is written to, and the buckets run from the first bucket
    /// column to the end.
    #[test]
    fn column_indices_name_their_rollup_columns() {
        use crate::store::ROLLUP_COLUMNS;
        for (index, name) in [
            (col::CALLS, "calls"),
            (col::SUCCESSES, "successes"),
            (col::FAILURES, "failures"),
            (col::TIMEOUTS, "timeouts"),
            (col::RETRIES, "retries"),
            (col::RETRY_BUDGET_EXHAUSTED, "retry_budget_exhausted"),
            (col::BREAKER_REJECTIONS, "breaker_rejections"),
            (col::BULKHEAD_REJECTIONS, "bulkhead_rejections"),
            (col::RATE_LIMITED, "rate_limited"),
            (col::SHED, "shed"),
            (col::FALLBACKS, "fallbacks"),
            (col::DEGRADED, "degraded"),
            (col::REPAIRS, "repairs"),
            (col::TOKENS, "tokens"),
            (col::COST_USD_MICROS, "cost_usd_micros"),
            (col::LATENCY_SUM_MS, "latency_sum_ms"),
            (col::IDEMPOTENCY_CONFLICTS, "idempotency_conflicts"),
            (col::DUPLICATES_PREVENTED, "duplicates_prevented"),
            (col::STATUS_DEGRADED, "status_degraded"),
            (col::STATUS_PARTIAL, "status_partial"),
            (col::STATUS_QUEUED, "status_queued"),
            (col::STATUS_PAUSED, "status_paused"),
            (col::STATUS_REFUSED, "status_refused"),
        ] {
            assert_eq!(ROLLUP_COLUMNS[index], name);
        }
        assert_eq!(ROLLUP_COLUMNS[ROLLUP_FIRST_BUCKET], "b00");
        assert_eq!(ROLLUP_WIDTH - ROLLUP_FIRST_BUCKET, LATENCY_BUCKETS_MS.len());
        let d = DependencyTelemetry {
            idempotency_conflicts: 3,
            duplicates_prevented: 4,
            latency_buckets: (1..=16).collect(),
            ..DependencyTelemetry::default()
        };
        let c = Counts::from_dependency(&d);
        assert_eq!(c.get(col::IDEMPOTENCY_CONFLICTS), 3);
        assert_eq!(c.get(col::DUPLICATES_PREVENTED), 4);
        assert_eq!(c.buckets(), (1..=16).collect::<Vec<u64>>());
    }
}
