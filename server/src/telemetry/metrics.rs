//! `/metrics`: the fleet's reliability figures and the server's own, in the
//! Prometheus text format, through the `prometheus-client` crate.
//!
//! The dependency figures are not kept twice: a [`Collector`] reads the live
//! aggregation's cumulative totals at scrape time. Counters count what this
//! replica ingested since it started; Prometheus' `rate()` and `sum()` across
//! replicas do the rest.

use super::Counts;
use super::col;
use super::live::{GAUGE_LIVE_MS, Live};
use super::roster::Roster;
use crate::clock::Clock;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelValue, LabelValueEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use shared::protocol::{BreakerState, LATENCY_BUCKETS_MS};
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};

type Label = [(&'static str, &'static str); 1];

/// The server's registry and its own instruments.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    http: Family<Label, Counter>,
    batches: Family<Label, Counter>,
    /// Open `/api/v1/live` streams.
    pub subscribers: Gauge,
}

impl Metrics {
    /// A registry with the server's instruments and the fleet collector.
    pub fn new(
        live: Arc<Mutex<Live>>,
        dead_letters: Arc<Mutex<HashMap<i64, QueueFigures>>>,
        objectives: SharedObjectives,
        roster: Arc<Roster>,
        clock: Arc<dyn Clock>,
    ) -> Metrics {
        let mut registry = Registry::with_prefix("ballast");
        let http = Family::<Label, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by status class",
            http.clone(),
        );
        let batches = Family::<Label, Counter>::default();
        registry.register(
            "telemetry_batches",
            "Telemetry batches received, by outcome (accepted, duplicate, rejected)",
            batches.clone(),
        );
        let subscribers = Gauge::default();
        registry.register(
            "live_subscribers",
            "Open /api/v1/live streams",
            subscribers.clone(),
        );
        registry.register_collector(Box::new(FleetCollector {
            live,
            dead_letters,
            objectives,
            roster,
            clock,
        }));
        Metrics {
            registry,
            http,
            batches,
            subscribers,
        }
    }

    /// Counts one answered request.
    pub fn http_response(&self, status: u16) {
        let class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.http.get_or_create(&[("class", class)]).inc();
    }

    /// Counts one telemetry batch by outcome.
    pub fn batch(&self, outcome: &'static str) {
        self.batches.get_or_create(&[("outcome", outcome)]).inc();
    }

    /// The exposition in the OpenMetrics text format.
    pub fn encode_openmetrics(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    /// The exposition in the classic Prometheus text format (0.0.4), for
    /// scrapers and tools that do not ask for OpenMetrics.
    pub fn encode_prometheus(&self) -> Result<String, std::fmt::Error> {
        Ok(openmetrics_to_prometheus(&self.encode_openmetrics()?))
    }
}

/// Rewrites OpenMetrics text as Prometheus 0.0.4 text. The two differ, for
/// what this server emits, in two places: an OpenMetrics counter family `x`
/// has samples `x_total`, whereas the classic format names the family after
/// its samples; and OpenMetrics ends with `# EOF`.
pub fn openmetrics_to_prometheus(text: &str) -> String {
    let counters: std::collections::HashSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(l) => out.push_str(&l),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// A label value escaped for the text format. Service names are restricted
/// already, but dependency names come from agents.
#[derive(Debug, Clone, Copy)]
struct Esc<'a>(&'a str);

impl EncodeLabelValue for Esc<'_> {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        for ch in self.0.chars() {
            match ch {
                '\\' => encoder.write_str("\\\\")?,
                '"' => encoder.write_str("\\\"")?,
                '\n' => encoder.write_str("\\n")?,
                c => encoder.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// One service's dead-letter queue as the sweep last counted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueFigures {
    /// Service name.
    pub service: String,
    /// Environment.
    pub environment: String,
    /// Depth and oldest arrival.
    pub figures: shared::api::DeadLetterFigures,
}

/// One objective's standing as the last scrape computed it.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectiveFigures {
    /// Service name.
    pub service: String,
    /// Environment.
    pub environment: String,
    /// The objective's id.
    pub objective: String,
    /// The target, as a ratio.
    pub target: f64,
    /// The budget left, as a ratio of the budget (below zero: overspent).
    pub remaining: f64,
    /// (window label, burn rate), shortest window first.
    pub burn: Vec<(&'static str, f64)>,
}

/// The objectives' figures, shared between the scrape (which refreshes
/// them from the store) and the collector (which encodes them).
pub type SharedObjectives = Arc<Mutex<Vec<ObjectiveFigures>>>;

#[derive(Debug)]
struct FleetCollector {
    live: Arc<Mutex<Live>>,
    dead_letters: Arc<Mutex<HashMap<i64, QueueFigures>>>,
    objectives: SharedObjectives,
    roster: Arc<Roster>,
    clock: Arc<dyn Clock>,
}

impl FleetCollector {
    /// Each objective's budget left, target and burn rates: what the
    /// burn-rate alerts judge, for dashboards and alerting outside Ballast.
    fn encode_objectives(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let figures = self.objectives.lock().expect("objective figures lock");
        fn label(f: &ObjectiveFigures) -> Labels<'_> {
            vec![
                ("service", Esc(&f.service)),
                ("environment", Esc(&f.environment)),
                ("objective", Esc(&f.objective)),
            ]
        }
        let mut family = encoder.encode_descriptor(
            "slo_error_budget_remaining_ratio",
            "Share of the objective's error budget left over its window (below zero: overspent)",
            None,
            MetricType::Gauge,
        )?;
        for f in figures.iter() {
            family
                .encode_family(&label(f))?
                .encode_gauge(&f.remaining)?;
        }
        let mut family = encoder.encode_descriptor(
            "slo_target_ratio",
            "The objective's target: the share of requests that must be good",
            None,
            MetricType::Gauge,
        )?;
        for f in figures.iter() {
            family.encode_family(&label(f))?.encode_gauge(&f.target)?;
        }
        let mut family = encoder.encode_descriptor(
            "slo_burn_rate",
            "How fast the error budget burns over a window (1 spends it exactly over the objective's window)",
            None,
            MetricType::Gauge,
        )?;
        for f in figures.iter() {
            for (window, rate) in &f.burn {
                let mut l = label(f);
                l.push(("window", Esc(window)));
                family.encode_family(&l)?.encode_gauge(rate)?;
            }
        }
        Ok(())
    }

    /// Per service, how many of its live instances refuse a policy that
    /// failed their validation. Every service has a series, zero included,
    /// so that an alert on it resolves when the last refusal clears.
    fn encode_refusals(
        &self,
        encoder: &mut DescriptorEncoder,
        now_ms: i64,
    ) -> Result<(), std::fmt::Error> {
        // Counted before the live figures are locked, and under the
        // roster's lock alone: the fleet view takes the two the other way
        // round.
        let refusing: Vec<(String, String, i64)> =
            self.roster.read(now_ms - GAUGE_LIVE_MS, |services| {
                services
                    .map(|(s, rows)| {
                        let n = rows
                            .iter()
                            .filter(|r| r.refused.refused_version.is_some())
                            .count();
                        (s.name.to_owned(), s.environment.to_owned(), n as i64)
                    })
                    .collect()
            });
        let mut family = encoder.encode_descriptor(
            "instances_refusing_policy",
            "Live instances that refused a policy version failing their validation and enforce an older one",
            None,
            MetricType::Gauge,
        )?;
        for (service, environment, n) in &refusing {
            let l = vec![("service", Esc(service)), ("environment", Esc(environment))];
            family.encode_family(&l)?.encode_gauge(n)?;
        }
        Ok(())
    }

    /// Depth and oldest age of every service's dead-letter queue. A service
    /// whose queue is empty has no series, as Prometheus expects of a
    /// figure that is absent rather than zero-valued by accident.
    fn encode_dead_letters(
        &self,
        encoder: &mut DescriptorEncoder,
        now_ms: i64,
    ) -> Result<(), std::fmt::Error> {
        let queues = self.dead_letters.lock().expect("dead-letter figures lock");
        let mut queues: Vec<&QueueFigures> = queues.values().collect();
        queues.sort_by(|a, b| (&a.service, &a.environment).cmp(&(&b.service, &b.environment)));
        let mut family = encoder.encode_descriptor(
            "dead_letters",
            "Dead letters open or with an action pending",
            None,
            MetricType::Gauge,
        )?;
        for q in &queues {
            let l = vec![
                ("service", Esc(&q.service)),
                ("environment", Esc(&q.environment)),
            ];
            family
                .encode_family(&l)?
                .encode_gauge(&(q.figures.depth as i64))?;
        }
        let mut family = encoder.encode_descriptor(
            "dead_letter_oldest_age_seconds",
            "Age of the oldest dead letter open or with an action pending",
            None,
            MetricType::Gauge,
        )?;
        for q in &queues {
            let Some(oldest) = q.figures.oldest_received_at_ms else {
                continue;
            };
            let l = vec![
                ("service", Esc(&q.service)),
                ("environment", Esc(&q.environment)),
            ];
            family
                .encode_family(&l)?
                .encode_gauge(&((now_ms - oldest).max(0) as f64 / 1000.0))?;
        }
        Ok(())
    }
}

type Labels<'a> = Vec<(&'static str, Esc<'a>)>;

fn labels<'a>(service: &'a str, env: &'a str, dep: &'a str) -> Labels<'a> {
    vec![
        ("service", Esc(service)),
        ("environment", Esc(env)),
        ("dependency", Esc(dep)),
    ]
}

const COUNTERS: [(&str, &str, usize); 12] = [
    ("dependency_calls", "Calls (first attempts)", col::CALLS),
    (
        "dependency_successes",
        "Calls that succeeded",
        col::SUCCESSES,
    ),
    ("dependency_timeouts", "Calls that timed out", col::TIMEOUTS),
    (
        "dependency_retries",
        "Retries (attempts beyond the first)",
        col::RETRIES,
    ),
    (
        "dependency_retry_budget_exhausted",
        "Retries refused by the retry budget",
        col::RETRY_BUDGET_EXHAUSTED,
    ),
    (
        "dependency_shed",
        "Requests shed by admission control",
        col::SHED,
    ),
    ("dependency_fallbacks", "Fallbacks taken", col::FALLBACKS),
    (
        "dependency_degraded",
        "Responses with a degraded status",
        col::DEGRADED,
    ),
    (
        "dependency_repairs",
        "Structured-output repair attempts",
        col::REPAIRS,
    ),
    ("dependency_tokens", "Model tokens used", col::TOKENS),
    (
        "dependency_idempotency_conflicts",
        "Idempotency keys reused with a different payload",
        col::IDEMPOTENCY_CONFLICTS,
    ),
    (
        "dependency_duplicates_prevented",
        "Side effects not run again because their key had already run or was running",
        col::DUPLICATES_PREVENTED,
    ),
];

const BREAKER_STATES: [(BreakerState, &str); 5] = [
    (BreakerState::Closed, "closed"),
    (BreakerState::HalfOpen, "half_open"),
    (BreakerState::Open, "open"),
    (BreakerState::ForcedOpen, "forced_open"),
    (BreakerState::ForcedClosed, "forced_closed"),
];

fn histogram_buckets(c: &Counts) -> Vec<(f64, u64)> {
    LATENCY_BUCKETS_MS
        .iter()
        .zip(c.buckets())
        .map(|(bound, n)| {
            let le = if *bound == u64::MAX {
                f64::MAX
            } else {
                *bound as f64 / 1000.0
            };
            (le, *n)
        })
        .collect()
}

impl Collector for FleetCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let now_ms = self.clock.now_ms();
        self.encode_refusals(&mut encoder, now_ms)?;
        self.encode_dead_letters(&mut encoder, now_ms)?;
        self.encode_objectives(&mut encoder)?;
        let live = self.live.lock().expect("live telemetry lock");
        let mut services: Vec<_> = live.services.values().collect();
        services.sort_by(|a, b| (&a.name, &a.environment).cmp(&(&b.name, &b.environment)));

        for (name, help, column) in COUNTERS {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for s in &services {
                for (dep, totals) in s.totals() {
                    family
                        .encode_family(&labels(&s.name, &s.environment, dep))?
                        .encode_counter::<NoLabelSet, u64, u64>(&totals.counts.get(column), None)?;
                }
            }
        }

        let mut family = encoder.encode_descriptor(
            "dependency_cost_dollars",
            "Cost of calls in US dollars",
            None,
            MetricType::Counter,
        )?;
        for s in &services {
            for (dep, totals) in s.totals() {
                let dollars = totals.counts.get(col::COST_USD_MICROS) as f64 / 1e6;
                family
                    .encode_family(&labels(&s.name, &s.environment, dep))?
                    .encode_counter::<NoLabelSet, f64, f64>(&dollars, None)?;
            }
        }

        let mut family = encoder.encode_descriptor(
            "dependency_failures",
            "Failed calls by error class",
            None,
            MetricType::Counter,
        )?;
        for s in &services {
            for (dep, totals) in s.totals() {
                for (class, n) in &totals.failures_by_class {
                    let mut l = labels(&s.name, &s.environment, dep);
                    l.push(("class", Esc(class.as_str())));
                    family
                        .encode_family(&l)?
                        .encode_counter::<NoLabelSet, u64, u64>(n, None)?;
                }
            }
        }

        let mut family = encoder.encode_descriptor(
            "dependency_rejections",
            "Calls refused before reaching the dependency, by reason (breaker, bulkhead, rate_limit)",
            None,
            MetricType::Counter,
        )?;
        for s in &services {
            for (dep, totals) in s.totals() {
                for (reason, column) in [
                    ("breaker", col::BREAKER_REJECTIONS),
                    ("bulkhead", col::BULKHEAD_REJECTIONS),
                    ("rate_limit", col::RATE_LIMITED),
                ] {
                    let mut l = labels(&s.name, &s.environment, dep);
                    l.push(("reason", Esc(reason)));
                    family
                        .encode_family(&l)?
                        .encode_counter::<NoLabelSet, u64, u64>(&totals.counts.get(column), None)?;
                }
            }
        }

        let mut family = encoder.encode_descriptor(
            "dependency_latency_seconds",
            "Latency of completed calls",
            None,
            MetricType::Histogram,
        )?;
        for s in &services {
            for (dep, totals) in s.totals() {
                let c = &totals.counts;
                family
                    .encode_family(&labels(&s.name, &s.environment, dep))?
                    .encode_histogram::<NoLabelSet>(
                        c.get(col::LATENCY_SUM_MS) as f64 / 1000.0,
                        c.latency_count(),
                        &histogram_buckets(c),
                        None,
                    )?;
            }
        }

        let gauges: Vec<_> = services
            .iter()
            .flat_map(|s| {
                s.gauges(now_ms)
                    .map(move |(dep, b, f, q)| (*s, dep, b, f, q))
            })
            .collect();
        let mut family = encoder.encode_descriptor(
            "dependency_breaker_state",
            "1 for the worst breaker state across live instances, 0 for the others",
            None,
            MetricType::Gauge,
        )?;
        for (s, dep, breaker, _, _) in &gauges {
            let Some(current) = breaker else { continue };
            for (state, label) in BREAKER_STATES {
                let mut l = labels(&s.name, &s.environment, dep);
                l.push(("state", Esc(label)));
                let v: i64 = (state == *current).into();
                family.encode_family(&l)?.encode_gauge(&v)?;
            }
        }
        for (name, help, pick) in [
            (
                "dependency_in_flight",
                "Calls in flight, summed over live instances",
                0,
            ),
            (
                "dependency_queued",
                "Calls queued in bulkheads, summed over live instances",
                1,
            ),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (s, dep, _, in_flight, queued) in &gauges {
                let v = if pick == 0 { *in_flight } else { *queued } as i64;
                family
                    .encode_family(&labels(&s.name, &s.environment, dep))?
                    .encode_gauge(&v)?;
            }
        }
        Ok(())
    }
}
