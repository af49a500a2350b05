//! The fake dependencies: in-process stand-ins for model providers, search,
//! a reranker, tools and the rest, with tunable latency and error rates.
//!
//! Each call waits on a tokio timer (so a paused clock makes it exact) for
//! the profile's latency plus its jitter plus any injected latency, then
//! fails with the profile's error rate or the injected one, whichever is
//! higher. An injected outage refuses at once, like a closed port. All
//! randomness comes from a seeded [`SplitMix64`] per dependency, so a run
//! with the same seed and the same call order replays exactly.

use crate::faults::Faults;
use agent::{DependencyError, RandomSource, SplitMix64};
use shared::policy::ErrorClass;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How a dependency behaves when nothing is injected.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    /// The least a call takes.
    pub latency_ms: u64,
    /// Up to this much more, uniformly.
    pub jitter_ms: u64,
    /// The share of calls that fail on their own.
    pub error_rate: f64,
}

impl Profile {
    /// A profile.
    pub const fn new(latency_ms: u64, jitter_ms: u64, error_rate: f64) -> Profile {
        Profile {
            latency_ms,
            jitter_ms,
            error_rate,
        }
    }
}

/// Every dependency the two simulated services use, with its everyday
/// behaviour: fast identity and stores, a slower reranker and judges, and
/// model calls of one to two seconds.
pub const CATALOGUE: &[(&str, Profile)] = &[
    ("identity", Profile::new(10, 10, 0.001)),
    ("query_planner", Profile::new(100, 80, 0.01)),
    ("embedding", Profile::new(50, 40, 0.005)),
    ("vector_db", Profile::new(60, 60, 0.005)),
    ("lexical_search", Profile::new(40, 30, 0.002)),
    ("reranker", Profile::new(120, 100, 0.01)),
    ("model_provider", Profile::new(1000, 800, 0.01)),
    ("secondary_provider", Profile::new(1300, 800, 0.01)),
    ("validation_judge", Profile::new(250, 200, 0.01)),
    ("case_record", Profile::new(40, 20, 0.002)),
    ("policy_index", Profile::new(60, 40, 0.002)),
    ("prior_decisions", Profile::new(80, 60, 0.01)),
    ("style_judge", Profile::new(250, 200, 0.02)),
    ("approval_service", Profile::new(80, 40, 0.005)),
    ("notification_api", Profile::new(120, 80, 0.01)),
    ("checkpoint_store", Profile::new(8, 5, 0.001)),
    ("workflow_queue", Profile::new(5, 5, 0.0)),
];

/// How long an outage takes to refuse: a refused connection is quick but
/// not free.
const REFUSE_MS: u64 = 2;

/// The share of a model's structured outputs that miss their schema on an
/// ordinary day: rare, and nearly always fixed by one repair.
pub const NATURAL_INVALID_OUTPUT_RATE: f64 = 0.01;

/// What a model call gave back: only whether it matches the schema it was
/// asked for matters to the simulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Output {
    /// Whether the output validates against its schema.
    pub valid: bool,
}

/// True with probability `p`, drawn from `rng`.
pub fn chance(rng: &dyn RandomSource, p: f64) -> bool {
    // 53 random bits make an exact double in [0, 1).
    p > 0.0 && ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
}

/// One fake dependency.
#[derive(Debug)]
pub struct FakeDependency {
    name: String,
    profile: Profile,
    faults: Faults,
    rng: SplitMix64,
    /// Draws whether an output validates. Its own generator, so that
    /// validating outputs does not shift the latencies and errors a seed
    /// replays.
    output_rng: SplitMix64,
    /// Side effects done, by idempotency key: what the system of record
    /// holds. A key is applied at most once, however often it is sent.
    effects: Mutex<HashMap<String, u32>>,
}

impl FakeDependency {
    /// A dependency called `name` behaving as `profile`, reading injected
    /// faults from `faults`, drawing from a generator seeded with `seed`.
    pub fn new(name: &str, profile: Profile, faults: Faults, seed: u64) -> FakeDependency {
        FakeDependency {
            name: name.to_owned(),
            profile,
            faults,
            rng: SplitMix64::seeded(seed),
            output_rng: SplitMix64::seeded(seed ^ 0xA076_1D64_78BD_642F),
            effects: Mutex::default(),
        }
    }

    /// The dependency's name, as the policy and the fault API know it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits out the call's latency and decides whether it failed.
    async fn respond(&self) -> Result<(), DependencyError> {
        let fault = self.faults.get(&self.name).unwrap_or_default();
        if fault.outage {
            tokio::time::sleep(Duration::from_millis(REFUSE_MS)).await;
            return Err(DependencyError::new(
                ErrorClass::Connection,
                format!("{}: connection refused", self.name),
            ));
        }
        let latency = self.profile.latency_ms
            + self.rng.between(0, self.profile.jitter_ms)
            + fault.latency_ms;
        tokio::time::sleep(Duration::from_millis(latency)).await;
        if chance(&self.rng, self.profile.error_rate.max(fault.error_rate)) {
            return Err(DependencyError::new(
                ErrorClass::Unavailable,
                format!("{}: 503 service unavailable", self.name),
            ));
        }
        Ok(())
    }

    /// A call without side effects (a read, a search, a generation).
    pub async fn call(&self) -> Result<(), DependencyError> {
        self.respond().await
    }

    /// A model call producing structured output. The call fails as any
    /// call does; when it succeeds, the output misses its schema with the
    /// injected `invalid_output_rate` (or the natural one), and always when
    /// `force_invalid` is set.
    pub async fn generate(&self, force_invalid: bool) -> Result<Output, DependencyError> {
        self.respond().await?;
        let rate = self
            .faults
            .get(&self.name)
            .map_or(0.0, |f| f.invalid_output_rate)
            .max(NATURAL_INVALID_OUTPUT_RATE);
        let invalid = force_invalid || chance(&self.output_rng, rate);
        Ok(Output { valid: !invalid })
    }

    /// Refuses the call at once, as an outage does, but for this one call
    /// only: how a single run is made to fail on demand (see
    /// [`crate::dead_letters::FailOnce`]) without touching the rest.
    pub async fn refuse(&self) -> Result<(), DependencyError> {
        tokio::time::sleep(Duration::from_millis(REFUSE_MS)).await;
        Err(DependencyError::new(
            ErrorClass::Connection,
            format!("{}: connection refused", self.name),
        ))
    }

    /// A call with a side effect under an idempotency key. A failure may
    /// come after the effect was done (the reply was lost), as real writes
    /// can; a retry under the same key then finds it done and does not
    /// repeat it. Returns whether this call did the effect.
    pub async fn write(&self, key: &str) -> Result<bool, DependencyError> {
        let fault = self.faults.get(&self.name).unwrap_or_default();
        let outcome = self.respond().await;
        if outcome.is_err() && (fault.outage || !chance(&self.rng, 0.5)) {
            // Refused before doing anything.
            return outcome.map(|()| false);
        }
        let mut effects = self.effects.lock().unwrap_or_else(|e| e.into_inner());
        let done = effects.entry(key.to_owned()).or_insert(0);
        let now = *done == 0;
        if now {
            *done = 1;
        }
        drop(effects);
        outcome.map(|()| now)
    }

    /// How many times the effect under `key` was done: 0 or 1.
    pub fn effects_of(&self, key: &str) -> u32 {
        self.effects
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .copied()
            .unwrap_or(0)
    }
}

/// Every fake dependency of the process, by name; shared by all instances,
/// as the real ones would be.
#[derive(Debug, Clone)]
pub struct Dependencies {
    by_name: Arc<BTreeMap<String, FakeDependency>>,
}

impl Dependencies {
    /// The [`CATALOGUE`], each dependency with its own generator derived
    /// from `seed`.
    pub fn new(faults: &Faults, seed: u64) -> Dependencies {
        let by_name = CATALOGUE
            .iter()
            .enumerate()
            .map(|(i, (name, profile))| {
                let seed = seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                (
                    (*name).to_owned(),
                    FakeDependency::new(name, *profile, faults.clone(), seed),
                )
            })
            .collect();
        Dependencies {
            by_name: Arc::new(by_name),
        }
    }

    /// The dependency called `name`.
    ///
    /// # Panics
    /// If `name` is not in the [`CATALOGUE`]: the pipelines name only
    /// catalogued dependencies, so this is a programming error.
    pub fn get(&self, name: &str) -> &FakeDependency {
        self.by_name
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not a catalogued dependency"))
    }

    /// Every side effect done so far, by run and operation: each key
    /// `run/…/operation` counted under its first and last segments. The
    /// writes of the workflows key by run and node, so a redrive that kept
    /// its key shows as one effect and one that made a new key as two.
    pub fn side_effects(&self) -> BTreeMap<String, BTreeMap<String, u32>> {
        let mut out: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
        for dep in self.by_name.values() {
            let effects = dep.effects.lock().unwrap_or_else(|e| e.into_inner());
            for (key, n) in effects.iter() {
                let run = key.split_once('/').map_or(key.as_str(), |(r, _)| r);
                let operation = key.rsplit_once('/').map_or(key.as_str(), |(_, o)| o);
                *out.entry(run.to_owned())
                    .or_default()
                    .entry(operation.to_owned())
                    .or_default() += n;
            }
        }
        out
    }

    /// Whether `name` is a dependency here.
    pub fn knows(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::FaultSpec;
    use tokio::time::Instant;

    fn fixed(latency_ms: u64, error_rate: f64) -> (Faults, FakeDependency) {
        let faults = Faults::new();
        let dep = FakeDependency::new(
            "reranker",
            Profile::new(latency_ms, 0, error_rate),
            faults.clone(),
            7,
        );
        (faults, dep)
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_takes_the_profiles_latency_plus_the_injected_latency() {
        let (faults, dep) = fixed(120, 0.0);
        let t = Instant::now();
        dep.call().await.unwrap();
        assert_eq!(t.elapsed(), Duration::from_millis(120));
        faults
            .set(
                "reranker",
                FaultSpec {
                    latency_ms: 2000,
                    ..FaultSpec::default()
                },
            )
            .unwrap();
        let t = Instant::now();
        dep.call().await.unwrap();
        assert_eq!(t.elapsed(), Duration::from_millis(2120));
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_stays_within_the_profile() {
        let dep = FakeDependency::new("x", Profile::new(100, 50, 0.0), Faults::new(), 3);
        for _ in 0..50 {
            let t = Instant::now();
            dep.call().await.unwrap();
            let ms = t.elapsed().as_millis();
            assert!((100..=150).contains(&ms), "{ms}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_outage_refuses_at_once_whatever_the_latency() {
        let (faults, dep) = fixed(500, 0.0);
        faults
            .set(
                "reranker",
                FaultSpec {
                    outage: true,
                    latency_ms: 10_000,
                    ..FaultSpec::default()
                },
            )
            .unwrap();
        let t = Instant::now();
        let err = dep.call().await.unwrap_err();
        assert_eq!(err.class, ErrorClass::Connection);
        assert_eq!(t.elapsed(), Duration::from_millis(REFUSE_MS));
        faults.clear("reranker");
        dep.call().await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn error_rates_hold_and_a_seed_replays_the_same_failures() {
        async fn failures(seed: u64) -> Vec<bool> {
            let faults = Faults::new();
            faults
                .set(
                    "d",
                    FaultSpec {
                        error_rate: 0.3,
                        ..FaultSpec::default()
                    },
                )
                .unwrap();
            let dep = FakeDependency::new("d", Profile::new(1, 0, 0.0), faults, seed);
            let mut out = Vec::new();
            for _ in 0..1000 {
                out.push(dep.call().await.is_err());
            }
            out
        }
        let a = failures(11).await;
        assert_eq!(a, failures(11).await, "the same seed, the same failures");
        assert_ne!(a, failures(12).await);
        let failed = a.iter().filter(|f| **f).count();
        assert!((240..=360).contains(&failed), "about 30%: {failed}");
        let (_, never) = fixed(1, 0.0);
        let (_, always) = fixed(1, 1.0);
        for _ in 0..100 {
            assert!(never.call().await.is_ok());
            let e = always.call().await.unwrap_err();
            assert_eq!(e.class, ErrorClass::Unavailable);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_is_done_at_most_once_per_key_even_when_replies_are_lost() {
        let (faults, dep) = fixed(5, 0.0);
        faults
            .set(
                "reranker",
                FaultSpec {
                    error_rate: 0.8,
                    ..FaultSpec::default()
                },
            )
            .unwrap();
        let key = "run-1/close_case";
        let (mut done_and_told, mut done_reply_lost) = (0, 0);
        for _ in 0..200 {
            let before = dep.effects_of(key);
            match dep.write(key).await {
                Ok(true) => done_and_told += 1,
                Ok(false) => {}
                Err(_) if before == 0 && dep.effects_of(key) == 1 => done_reply_lost += 1,
                Err(_) => {}
            }
        }
        assert_eq!(dep.effects_of(key), 1);
        assert_eq!(done_and_told + done_reply_lost, 1, "done exactly once");
        assert_eq!(dep.effects_of("run-2/close_case"), 0);
    }

    #[test]
    fn the_catalogue_covers_both_example_policies() {
        let deps = Dependencies::new(&Faults::new(), 1);
        for text in [
            include_str!("../../examples/policies/rag-answer.yaml"),
            include_str!("../../examples/policies/case-review-agent.yaml"),
        ] {
            let policy = shared::policy::Policy::from_yaml(text).unwrap();
            for name in policy.service.dependencies.keys() {
                assert!(deps.knows(name), "{name} is simulated");
            }
        }
    }
}
