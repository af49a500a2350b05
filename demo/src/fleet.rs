//! The simulated fleet: many instances in one process, each with its own
//! instance id, live agent, guard and last-known-good file, and a steady
//! request load spread over them.

use crate::case_review::{CaseReview, Review};
use crate::dead_letters::{DeadLetterState, DeadLetters, control_plane_reporter};
use crate::deps::Dependencies;
use crate::outcome::Outcome;
use crate::rag::{Question, RagPipeline};
use agent::client::{AgentConfig, LiveAgent};
use agent::dlq::ActionRunner;
use agent::idempotency::SqliteDedupStore;
use agent::{Guard, SplitMix64};
use serde_json::{Value, json};
use shared::policy::DegradedStatus;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// The most requests one service keeps in flight. Past it the load
/// generator drops ticks (and counts them) rather than pile up tasks
/// without bound when dependencies slow down.
pub const MAX_IN_FLIGHT: usize = 512;

const STATUSES: [DegradedStatus; 6] = [
    DegradedStatus::Normal,
    DegradedStatus::Degraded,
    DegradedStatus::Partial,
    DegradedStatus::Queued,
    DegradedStatus::Paused,
    DegradedStatus::Refused,
];

/// Requests by final status.
#[derive(Debug, Default)]
pub struct Counters {
    by_status: [AtomicU64; 6],
    dropped: AtomicU64,
}

impl Counters {
    /// Counts one finished request.
    pub fn record(&self, outcome: &Outcome) {
        let i = STATUSES
            .iter()
            .position(|s| *s == outcome.status)
            .unwrap_or(0);
        self.by_status[i].fetch_add(1, Ordering::Relaxed);
    }

    /// The counts, by status name, with `dropped` for ticks the load
    /// generator skipped.
    pub fn snapshot(&self) -> Value {
        let mut out = serde_json::Map::new();
        for (status, n) in STATUSES.iter().zip(&self.by_status) {
            out.insert(
                serde_json::to_value(status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                json!(n.load(Ordering::Relaxed)),
            );
        }
        out.insert(
            "dropped".into(),
            json!(self.dropped.load(Ordering::Relaxed)),
        );
        Value::Object(out)
    }
}

/// What an instance runs.
#[derive(Debug, Clone)]
pub enum Workload {
    /// The RAG answer pipeline.
    Rag(RagPipeline),
    /// The case-review workflow.
    Case(CaseReview),
}

/// One simulated instance.
pub struct Instance {
    /// The service it belongs to.
    pub service: &'static str,
    /// Its instance id.
    pub id: String,
    /// Its link to the control plane.
    pub live: Arc<LiveAgent>,
    /// Its enforcement.
    pub guard: Guard,
    /// What it runs.
    pub workload: Workload,
}

/// How to start a service's instances.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    /// The service name (also its dependency set).
    pub service: &'static str,
    /// Its environment.
    pub environment: String,
    /// The control plane.
    pub base_url: String,
    /// Its service token.
    pub token: String,
    /// How many instances.
    pub instances: usize,
    /// Prefix of the instance ids, so that two demo processes differ.
    pub id_prefix: String,
    /// Where the last-known-good copies go.
    pub state_dir: PathBuf,
    /// Seed of the instances' jitter.
    pub seed: u64,
}

/// Starts the instances of `spec` concurrently (each waits at most its
/// start-up bound for the control plane) and their background work. The
/// case-review instances hold their dead letters in `dead_letters` (one
/// per service, shared by its instances) and execute approved actions.
pub async fn start(
    spec: &ServiceSpec,
    deps: &Dependencies,
    dead_letters: &DeadLetterState,
) -> Vec<Arc<Instance>> {
    if let Err(e) = std::fs::create_dir_all(&spec.state_dir) {
        tracing::warn!(dir = %spec.state_dir.display(), error = %e, "cannot create the state directory");
    }
    let mut set = tokio::task::JoinSet::new();
    for i in 1..=spec.instances {
        let id = format!("{}-{}-{i}", spec.id_prefix, spec.service);
        let config = AgentConfig::new(
            &spec.base_url,
            &spec.token,
            &id,
            spec.service,
            &spec.environment,
            spec.state_dir.join(format!("{id}.policy.json")),
        );
        set.spawn(async move { (i, id, LiveAgent::start(config).await) });
    }
    let mut started = Vec::new();
    while let Some(joined) = set.join_next().await {
        let Ok((i, id, live)) = joined else { continue };
        started.push((i, id, live));
    }
    started.sort_by_key(|(i, _, _)| *i);
    let mut instances = Vec::with_capacity(started.len());
    for (i, id, live) in started {
        let live = Arc::new(live);
        let guard = Guard::builder(live.policy())
            .instance_id(&id)
            .random(Arc::new(SplitMix64::seeded(
                spec.seed.wrapping_add(i as u64),
            )))
            .build();
        live.spawn(guard.clone());
        let (version, source) = live.applied();
        tracing::info!(instance = %id, ?version, ?source, "instance started");
        let workload = if spec.service == crate::rag::SERVICE {
            Workload::Rag(RagPipeline::new(guard.clone(), deps.clone()))
        } else {
            let reporter = control_plane_reporter(live.control_plane());
            let case = CaseReview::new(
                guard.clone(),
                deps.clone(),
                DeadLetters::new(dead_letters.clone(), reporter),
            );
            execute_actions(spec, &id, &live, &case).await;
            Workload::Case(case)
        };
        instances.push(Arc::new(Instance {
            service: spec.service,
            id,
            live,
            guard,
            workload,
        }));
    }
    instances
}

/// Starts executing the approved dead-letter actions the instance `id`
/// receives, remembering them in a SQLite file next to its last-known-good
/// policy, so that a restarted instance does not run an action again.
/// Without that file it executes none: an action run without a durable
/// record could run twice, while one left alone is only marked uncertain.
async fn execute_actions(spec: &ServiceSpec, id: &str, live: &LiveAgent, case: &CaseReview) {
    let path = spec.state_dir.join(format!("{id}.actions.sqlite"));
    let store = match SqliteDedupStore::open(&path).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(
                instance = %id, path = %path.display(), error = %e,
                "no durable record of executed actions; this instance executes none"
            );
            return;
        }
    };
    if let Some(actions) = live.take_actions() {
        ActionRunner::new(store, case.clone(), live.control_plane().clone()).spawn(actions);
    }
}

/// Runs the case review `run_id` for `tenant` now, on the case-review
/// instance its id hashes to (the same one every time), and describes
/// what it did; `None` without a case-review instance.
pub async fn run_case(instances: &[Arc<Instance>], run_id: &str, tenant: &str) -> Option<Value> {
    let cases: Vec<(&str, &CaseReview)> = instances
        .iter()
        .filter_map(|i| match &i.workload {
            Workload::Case(c) => Some((i.id.as_str(), c)),
            Workload::Rag(_) => None,
        })
        .collect();
    if cases.is_empty() {
        return None;
    }
    let hash = run_id.bytes().fold(0xCBF2_9CE4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3)
    });
    let (instance, case) = cases[(hash % cases.len() as u64) as usize];
    let review = case.review(run_id, tenant).await;
    Some(review_json(instance, run_id, &review))
}

/// A review as the control API shows it.
pub fn review_json(instance: &str, run_id: &str, review: &Review) -> Value {
    json!({
        "run_id": run_id,
        "instance_id": instance,
        "status": review.outcome.status.as_str(),
        "messages": review.outcome.messages,
        "approved": review.approved,
        "closed": review.closed,
        "notified": review.notified,
        "dead_letter": review.dead_letter,
        "dead_letter_id": review.dead_letter_id,
    })
}

const TENANTS: [&str; 4] = ["tenant-enterprise-1", "tenant-a", "tenant-b", "tenant-c"];

/// Drives `rps` requests a second, round-robin over `instances`, counting
/// outcomes in `counters`.
pub fn drive(instances: Vec<Arc<Instance>>, rps: f64, counters: Arc<Counters>) -> JoinHandle<()> {
    tokio::spawn(async move {
        if instances.is_empty() || rps <= 0.0 {
            return;
        }
        let room = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rps));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for n in 0u64.. {
            tick.tick().await;
            let Ok(permit) = room.clone().try_acquire_owned() else {
                counters.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let instance = instances[(n % instances.len() as u64) as usize].clone();
            let counters = counters.clone();
            let tenant = TENANTS[(n % TENANTS.len() as u64) as usize];
            tokio::spawn(async move {
                let outcome = match &instance.workload {
                    Workload::Rag(rag) => {
                        rag.answer(&Question {
                            tenant: tenant.to_owned(),
                        })
                        .await
                    }
                    Workload::Case(case) => {
                        case.review(&format!("{}-run-{n}", instance.id), tenant)
                            .await
                            .outcome
                    }
                };
                counters.record(&outcome);
                drop(permit);
            });
        }
    })
}

/// Names of breaker states as the API spells them.
fn state_name<T: serde::Serialize>(state: &T) -> Value {
    serde_json::to_value(state).unwrap_or(Value::Null)
}

/// The `GET /status` document: every instance with its policy and
/// breakers, and each service's counts.
pub fn status(
    instances: &[Arc<Instance>],
    counters: &[(&'static str, Arc<Counters>)],
    dependencies: &[&str],
) -> Value {
    let instances: Vec<Value> = instances
        .iter()
        .map(|i| {
            let (version, source) = i.live.applied();
            let breakers: serde_json::Map<String, Value> = dependencies
                .iter()
                .filter_map(|d| {
                    i.guard
                        .breaker_state(d)
                        .map(|s| ((*d).to_owned(), state_name(&s)))
                })
                .collect();
            json!({
                "service": i.service,
                "instance_id": i.id,
                "policy_version": version,
                "policy_source": state_name(&source),
                "stream_connected": *i.live.stream_connected().borrow(),
                "breakers": breakers,
            })
        })
        .collect();
    let requests: serde_json::Map<String, Value> = counters
        .iter()
        .map(|(s, c)| ((*s).to_owned(), c.snapshot()))
        .collect();
    json!({ "instances": instances, "requests": requests })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_count_by_status_name() {
        let c = Counters::default();
        c.record(&Outcome::default());
        c.record(&Outcome {
            status: DegradedStatus::Refused,
            ..Outcome::default()
        });
        c.dropped.fetch_add(2, Ordering::Relaxed);
        let s = c.snapshot();
        assert_eq!(s["normal"], 1);
        assert_eq!(s["refused"], 1);
        assert_eq!(s["paused"], 0);
        assert_eq!(s["dropped"], 2);
    }
}
