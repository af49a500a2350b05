//! What this replica has heard in the last 15 minutes, in memory: per
//! (service, dependency) a sparse ring of one-second buckets, the latest
//! gauges and breaker state of each instance, recent breaker transitions, and
//! cumulative totals for `/metrics`. Figures for any window up to 15 minutes
//! are summed from the buckets on demand.

use super::components::SERVICE_ROW;
use super::{Counts, col, quantile_ms};
use shared::api::{
    BreakerTransitionView, ComponentKind, DependencyLive, DependencySeries, TelemetryPoint,
};
use shared::policy::ErrorClass;
use shared::protocol::{BreakerState, TelemetryBatch};
use std::collections::{BTreeMap, HashMap, VecDeque};

/// How much history the rings keep.
pub const HORIZON_SECS: i64 = 15 * 60;
/// An instance not heard from for this long no longer counts towards the
/// breaker state and gauges (the same bound as "stale" in the fleet view).
pub const GAUGE_LIVE_MS: i64 = crate::policy::instances::STALE_MS;
/// Instances not heard from for a day are forgotten.
const FORGET_INSTANCE_MS: i64 = 24 * 3600 * 1000;
/// Bounds that keep a misbehaving fleet from exhausting memory. Past them,
/// new names are still stored in the rollups but not tracked live.
const MAX_DEPENDENCIES_PER_SERVICE: usize = 1024;
const MAX_TENANTS_PER_SERVICE: usize = 10_000;
const MAX_TRANSITIONS: usize = 20;
/// Where tenants beyond [`MAX_TENANTS_PER_SERVICE`] are added up.
pub const OTHER_TENANTS: &str = "(other)";

/// One instance's latest view of one dependency.
#[derive(Debug, Clone, Default)]
struct Gauges {
    /// The end of the window it came from (agent clock), to ignore reordering.
    window_end_ms: i64,
    /// When this replica received it.
    seen_ms: i64,
    breaker: Option<BreakerState>,
    in_flight: u64,
    queued: u64,
}

/// Cumulative figures since this replica started, for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    /// Every counter and latency bucket.
    pub counts: Counts,
    /// Failures by class.
    pub failures_by_class: BTreeMap<ErrorClass, u64>,
}

/// What the instances reported about a dependency's state in one second:
/// gauges summed over the reports (each instance reports about once a
/// second, so the sum is the fleet's figure), the worst breaker state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Moment {
    in_flight: u64,
    queued: u64,
    breaker: Option<BreakerState>,
}

impl Moment {
    fn add(&mut self, other: &Moment) {
        self.in_flight = self.in_flight.saturating_add(other.in_flight);
        self.queued = self.queued.saturating_add(other.queued);
        self.breaker = worse(self.breaker, other.breaker);
    }

    /// A step of several seconds shows its busiest second and its worst
    /// breaker state: a chart must not smooth an overload away.
    fn peak(&mut self, other: &Moment) {
        self.in_flight = self.in_flight.max(other.in_flight);
        self.queued = self.queued.max(other.queued);
        self.breaker = worse(self.breaker, other.breaker);
    }
}

fn worse(a: Option<BreakerState>, b: Option<BreakerState>) -> Option<BreakerState> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if severity(y) > severity(x) { y } else { x }),
        (x, y) => x.or(y),
    }
}

/// One second of a dependency's ring.
type Second = (i64, Counts, Moment);

#[derive(Debug, Default)]
struct DependencyLiveState {
    /// Ascending by second, at most one entry per second.
    ring: VecDeque<Second>,
    instances: HashMap<String, Gauges>,
    transitions: VecDeque<BreakerTransitionView>,
    totals: Totals,
}

/// One service's live state.
#[derive(Debug, Default)]
pub struct ServiceLive {
    /// Name.
    pub name: String,
    /// Environment.
    pub environment: String,
    dependencies: BTreeMap<String, DependencyLiveState>,
    tenants: BTreeMap<String, VecDeque<(i64, u64)>>,
    /// Instance → when this replica last received a batch from it.
    pub instances_seen: HashMap<String, i64>,
}

/// Every service's live state on this replica.
#[derive(Debug, Default)]
pub struct Live {
    /// By service id.
    pub services: HashMap<i64, ServiceLive>,
}

/// How bad a breaker state is for traffic: open refuses calls, half-open
/// admits a few, forced-closed has the breaker bypassed.
pub fn severity(state: BreakerState) -> u8 {
    match state {
        BreakerState::Closed => 0,
        BreakerState::ForcedClosed => 1,
        BreakerState::HalfOpen => 2,
        BreakerState::Open => 3,
        BreakerState::ForcedOpen => 4,
    }
}

fn ratio(n: u64, d: u64) -> f64 {
    if d == 0 { 0.0 } else { n as f64 / d as f64 }
}

impl Live {
    /// Adds an accepted batch. `now_ms` is this replica's clock: a batch
    /// stamped in the future counts as now, and one older than the horizon
    /// adds to the totals but not to the rings.
    pub fn apply(
        &mut self,
        service_id: i64,
        name: &str,
        environment: &str,
        batch: &TelemetryBatch,
        now_ms: i64,
    ) {
        let service = self
            .services
            .entry(service_id)
            .or_insert_with(|| ServiceLive {
                name: name.to_owned(),
                environment: environment.to_owned(),
                ..ServiceLive::default()
            });
        let now_sec = now_ms.div_euclid(1000);
        let sec = batch.window_end_ms.min(now_ms).div_euclid(1000);
        let in_horizon = sec > now_sec - HORIZON_SECS;
        service
            .instances_seen
            .insert(batch.instance_id.clone(), now_ms);
        service
            .instances_seen
            .retain(|_, seen| now_ms - *seen <= FORGET_INSTANCE_MS);

        for (dep_name, dep) in &batch.dependencies {
            if !service.dependencies.contains_key(dep_name)
                && service.dependencies.len() >= MAX_DEPENDENCIES_PER_SERVICE
            {
                continue;
            }
            let state = service.dependencies.entry(dep_name.clone()).or_default();
            let counts = Counts::from_dependency(dep);
            state.totals.counts.add(&counts);
            for (class, n) in &dep.failures {
                *state.totals.failures_by_class.entry(*class).or_default() += n;
            }
            if in_horizon {
                let moment = Moment {
                    in_flight: dep.in_flight,
                    queued: dep.queued,
                    breaker: dep.breaker,
                };
                add_to_ring(&mut state.ring, sec, &counts, &moment);
            }
            prune_ring(&mut state.ring, now_sec);
            let gauges = state
                .instances
                .entry(batch.instance_id.clone())
                .or_default();
            if batch.window_end_ms >= gauges.window_end_ms {
                *gauges = Gauges {
                    window_end_ms: batch.window_end_ms,
                    seen_ms: now_ms,
                    breaker: dep.breaker.or(gauges.breaker),
                    in_flight: dep.in_flight,
                    queued: dep.queued,
                };
            }
            state
                .instances
                .retain(|_, g| now_ms - g.seen_ms <= FORGET_INSTANCE_MS);
            for t in &dep.breaker_transitions {
                state.transitions.push_back(BreakerTransitionView {
                    instance_id: batch.instance_id.clone(),
                    at_ms: t.at_ms,
                    from: t.from,
                    to: t.to,
                });
            }
            while state.transitions.len() > MAX_TRANSITIONS {
                state.transitions.pop_front();
            }
        }

        if in_horizon {
            for (tenant, cost) in &batch.tenant_cost_usd_micros {
                let key = if service.tenants.contains_key(tenant)
                    || service.tenants.len() < MAX_TENANTS_PER_SERVICE
                {
                    tenant.as_str()
                } else {
                    OTHER_TENANTS
                };
                let ring = service.tenants.entry(key.to_owned()).or_default();
                match ring.back_mut() {
                    Some((s, c)) if *s == sec => *c = c.saturating_add(*cost),
                    _ => ring.push_back((sec, *cost)),
                }
            }
        }
        service.tenants.retain(|_, ring| {
            while ring
                .front()
                .is_some_and(|(s, _)| *s <= now_sec - HORIZON_SECS)
            {
                ring.pop_front();
            }
            !ring.is_empty()
        });
    }
}

fn add_to_ring(ring: &mut VecDeque<Second>, sec: i64, counts: &Counts, moment: &Moment) {
    // Batches arrive nearly in order, so the slot is almost always the last.
    match ring.back_mut() {
        Some((s, c, m)) if *s == sec => {
            c.add(counts);
            return m.add(moment);
        }
        Some((s, _, _)) if *s < sec => return ring.push_back((sec, *counts, *moment)),
        None => return ring.push_back((sec, *counts, *moment)),
        _ => {}
    }
    match ring.binary_search_by_key(&sec, |(s, _, _)| *s) {
        Ok(i) => {
            ring[i].1.add(counts);
            ring[i].2.add(moment);
        }
        Err(i) => ring.insert(i, (sec, *counts, *moment)),
    }
}

fn prune_ring(ring: &mut VecDeque<Second>, now_sec: i64) {
    while ring
        .front()
        .is_some_and(|(s, _, _)| *s <= now_sec - HORIZON_SECS)
    {
        ring.pop_front();
    }
}

/// A service's rows over a window, as the live view shows them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    /// Each dependency, retrieval source and agent node, by name, with its
    /// kind.
    pub components: Vec<DependencyLive>,
    /// The service-level rows folded into one named
    /// [`SERVICE_ROW`](super::components::SERVICE_ROW); None when no agent
    /// reported one.
    pub service_level: Option<DependencyLive>,
}

impl ServiceLive {
    /// Every row's summary over the last `window_secs`, classified by
    /// `kind`; the rows of the service itself are folded into one, so that
    /// they never pass for a dependency.
    pub fn dependencies(
        &self,
        now_ms: i64,
        window_secs: i64,
        kind: impl Fn(&str) -> ComponentKind,
    ) -> Rows {
        let mut rows = Rows::default();
        let mut service = Vec::new();
        for (name, state) in &self.dependencies {
            // The request records and safety counts are the objectives'
            // (see crate::objectives); folded in, they would count each
            // request twice in the service's row.
            if shared::policy::is_objective_record(name) {
                continue;
            }
            match kind(name) {
                ComponentKind::Service => service.push(state),
                k => rows.components.push(DependencyLive {
                    kind: k,
                    ..summarise(name, &[state], now_ms, window_secs)
                }),
            }
        }
        if !service.is_empty() {
            rows.service_level = Some(DependencyLive {
                kind: ComponentKind::Service,
                ..summarise(SERVICE_ROW, &service, now_ms, window_secs)
            });
        }
        rows
    }

    /// The time series of every row but the service's (see
    /// [`ServiceLive::dependencies`]) over the last `window_secs`, in steps
    /// of `step_secs`.
    pub fn series(
        &self,
        now_ms: i64,
        window_secs: i64,
        step_secs: i64,
        kind: impl Fn(&str) -> ComponentKind,
    ) -> Vec<DependencySeries> {
        let now_sec = now_ms.div_euclid(1000);
        // Steps are aligned to multiples of the step so that a chart's points
        // do not shift as time passes; the last step may be partial.
        let last_start = now_sec - now_sec.rem_euclid(step_secs);
        let steps = (window_secs + step_secs - 1) / step_secs;
        let first_start = last_start - (steps - 1) * step_secs;
        self.dependencies
            .iter()
            .filter(|(name, _)| kind(name) != ComponentKind::Service)
            .map(|(name, state)| {
                let mut sums = vec![(Counts::default(), Moment::default()); steps as usize];
                for (sec, counts, moment) in &state.ring {
                    if *sec >= first_start && *sec <= now_sec {
                        let (c, m) = &mut sums[((sec - first_start) / step_secs) as usize];
                        c.add(counts);
                        m.peak(moment);
                    }
                }
                let points = sums
                    .iter()
                    .enumerate()
                    .map(|(i, (c, m))| TelemetryPoint {
                        at_ms: (first_start + i as i64 * step_secs) * 1000,
                        calls: c.get(col::CALLS),
                        failures: c.get(col::FAILURES),
                        timeouts: c.get(col::TIMEOUTS),
                        retries: c.get(col::RETRIES),
                        fallbacks: c.get(col::FALLBACKS),
                        degraded: c.get(col::DEGRADED),
                        shed: c.get(col::SHED),
                        rejections: c.get(col::BREAKER_REJECTIONS)
                            + c.get(col::BULKHEAD_REJECTIONS)
                            + c.get(col::RATE_LIMITED),
                        p50_ms: quantile_ms(c.buckets(), 0.50),
                        p95_ms: quantile_ms(c.buckets(), 0.95),
                        p99_ms: quantile_ms(c.buckets(), 0.99),
                        tokens: c.get(col::TOKENS),
                        cost_usd_micros: c.get(col::COST_USD_MICROS),
                        in_flight: m.in_flight,
                        queued: m.queued,
                        bulkhead_rejections: c.get(col::BULKHEAD_REJECTIONS),
                        breaker: m.breaker,
                    })
                    .collect();
                DependencySeries {
                    dependency: name.clone(),
                    points,
                }
            })
            .collect()
    }

    /// Cost by tenant over the last `window_secs`.
    pub fn tenant_costs(&self, now_ms: i64, window_secs: i64) -> BTreeMap<String, u64> {
        let now_sec = now_ms.div_euclid(1000);
        self.tenants
            .iter()
            .filter_map(|(tenant, ring)| {
                let sum: u64 = ring
                    .iter()
                    .filter(|(s, _)| *s > now_sec - window_secs && *s <= now_sec)
                    .map(|(_, c)| *c)
                    .sum();
                (sum > 0).then(|| (tenant.clone(), sum))
            })
            .collect()
    }

    /// Cumulative totals per dependency, for `/metrics`.
    pub fn totals(&self) -> impl Iterator<Item = (&str, &Totals)> {
        self.dependencies
            .iter()
            .map(|(name, s)| (name.as_str(), &s.totals))
    }

    /// The worst breaker state and summed gauges of live instances, per
    /// dependency, for `/metrics`.
    pub fn gauges(
        &self,
        now_ms: i64,
    ) -> impl Iterator<Item = (&str, Option<BreakerState>, u64, u64)> {
        self.dependencies.iter().map(move |(name, s)| {
            let (breaker, _, in_flight, queued) = live_gauges(&[s], now_ms);
            (name.as_str(), breaker, in_flight, queued)
        })
    }
}

type LiveGauges = (
    Option<BreakerState>,
    BTreeMap<String, BreakerState>,
    u64,
    u64,
);

/// The gauges of live instances over `states` (one row, or the rows
/// folded into one): summed, with each instance's and the overall worst
/// breaker state.
fn live_gauges(states: &[&DependencyLiveState], now_ms: i64) -> LiveGauges {
    let mut worst: Option<BreakerState> = None;
    let mut by_instance = BTreeMap::new();
    let (mut in_flight, mut queued) = (0u64, 0u64);
    for (instance, g) in states.iter().flat_map(|s| &s.instances) {
        if now_ms - g.seen_ms > GAUGE_LIVE_MS {
            continue;
        }
        in_flight = in_flight.saturating_add(g.in_flight);
        queued = queued.saturating_add(g.queued);
        if let Some(b) = g.breaker {
            let mine = by_instance.entry(instance.clone()).or_insert(b);
            *mine = worse(Some(*mine), Some(b)).unwrap_or(b);
            worst = worse(worst, Some(b));
        }
    }
    (worst, by_instance, in_flight, queued)
}

/// One row's figures over the window, from `states`: one row's state, or
/// several folded into one (their counts add up bucket by bucket, so the
/// percentiles are those of all their calls).
fn summarise(
    name: &str,
    states: &[&DependencyLiveState],
    now_ms: i64,
    window_secs: i64,
) -> DependencyLive {
    let now_sec = now_ms.div_euclid(1000);
    let mut c = Counts::default();
    for (sec, counts, _) in states.iter().flat_map(|s| &s.ring) {
        if *sec > now_sec - window_secs && *sec <= now_sec {
            c.add(counts);
        }
    }
    let calls = c.get(col::CALLS);
    let completed = c.latency_count();
    let (breaker, breakers, in_flight, queued) = live_gauges(states, now_ms);
    let horizon_ms = now_ms - HORIZON_SECS * 1000;
    let mut transitions: Vec<&BreakerTransitionView> = states
        .iter()
        .flat_map(|s| &s.transitions)
        .filter(|t| t.at_ms >= horizon_ms)
        .collect();
    // Newest first; each row keeps its own in arrival order, so order them
    // by time when there are several.
    transitions.reverse();
    if states.len() > 1 {
        transitions.sort_by_key(|t| std::cmp::Reverse(t.at_ms));
        transitions.truncate(MAX_TRANSITIONS);
    }
    DependencyLive {
        dependency: name.to_owned(),
        kind: ComponentKind::Dependency,
        calls,
        successes: c.get(col::SUCCESSES),
        failures: c.get(col::FAILURES),
        timeouts: c.get(col::TIMEOUTS),
        retries: c.get(col::RETRIES),
        retry_budget_exhausted: c.get(col::RETRY_BUDGET_EXHAUSTED),
        breaker_rejections: c.get(col::BREAKER_REJECTIONS),
        bulkhead_rejections: c.get(col::BULKHEAD_REJECTIONS),
        rate_limited: c.get(col::RATE_LIMITED),
        shed: c.get(col::SHED),
        fallbacks: c.get(col::FALLBACKS),
        degraded: c.get(col::DEGRADED),
        tokens: c.get(col::TOKENS),
        cost_usd_micros: c.get(col::COST_USD_MICROS),
        idempotency_conflicts: c.get(col::IDEMPOTENCY_CONFLICTS),
        duplicates_prevented: c.get(col::DUPLICATES_PREVENTED),
        error_rate: ratio(c.get(col::FAILURES), calls),
        timeout_rate: ratio(c.get(col::TIMEOUTS), calls),
        fallback_rate: ratio(c.get(col::FALLBACKS), calls),
        degraded_rate: ratio(c.get(col::DEGRADED), calls),
        retry_amplification: if calls == 0 {
            1.0
        } else {
            (calls + c.get(col::RETRIES)) as f64 / calls as f64
        },
        p50_ms: quantile_ms(c.buckets(), 0.50),
        p95_ms: quantile_ms(c.buckets(), 0.95),
        p99_ms: quantile_ms(c.buckets(), 0.99),
        mean_ms: (completed > 0).then(|| c.get(col::LATENCY_SUM_MS) as f64 / completed as f64),
        breaker,
        breakers,
        recent_transitions: transitions.into_iter().cloned().collect(),
        in_flight,
        queued,
    }
}
