//! Injected faults: what the control API sets and every fake dependency of
//! that name reads on each call. One registry per process, shared by every
//! instance, so "make the reranker fail" hits the whole simulated fleet, as
//! a real provider outage would.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// The longest injectable extra latency: a minute is far past every budget
/// in the example policies, and a bound keeps a typo from parking calls
/// for hours.
pub const MAX_LATENCY_MS: u64 = 60_000;

/// A fault on one dependency.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// The share of calls, 0.0 to 1.0, that fail with `unavailable` (a 503).
    #[serde(default)]
    pub error_rate: f64,
    /// Extra latency added to every call, in milliseconds.
    #[serde(default)]
    pub latency_ms: u64,
    /// The dependency refuses connections outright, at once.
    #[serde(default)]
    pub outage: bool,
    /// The share of a model's structured outputs, 0.0 to 1.0, that do not
    /// match their schema. The call itself succeeds: this is the failure a
    /// model provider's status page never shows, caught only by validating
    /// what came back.
    #[serde(default)]
    pub invalid_output_rate: f64,
}

/// A fault that cannot be set, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidFault {
    /// The field.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl FaultSpec {
    /// Checks the ranges: a rate is a probability and latency is bounded.
    pub fn validate(&self) -> Result<(), InvalidFault> {
        if !(0.0..=1.0).contains(&self.error_rate) {
            return Err(InvalidFault {
                field: "error_rate",
                message: "error_rate is a share of calls, from 0.0 to 1.0".into(),
            });
        }
        if !(0.0..=1.0).contains(&self.invalid_output_rate) {
            return Err(InvalidFault {
                field: "invalid_output_rate",
                message: "invalid_output_rate is a share of outputs, from 0.0 to 1.0".into(),
            });
        }
        if self.latency_ms > MAX_LATENCY_MS {
            return Err(InvalidFault {
                field: "latency_ms",
                message: format!("latency_ms is at most {MAX_LATENCY_MS}"),
            });
        }
        Ok(())
    }
}

/// The process's fault registry; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    inner: Arc<RwLock<BTreeMap<String, FaultSpec>>>,
}

impl Faults {
    /// An empty registry: every dependency behaves as its profile says.
    pub fn new() -> Faults {
        Faults::default()
    }

    /// The fault on `dependency`, if any.
    pub fn get(&self, dependency: &str) -> Option<FaultSpec> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(dependency)
            .copied()
    }

    /// Sets (replaces) the fault on `dependency`.
    pub fn set(&self, dependency: &str, spec: FaultSpec) -> Result<(), InvalidFault> {
        spec.validate()?;
        self.inner
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(dependency.to_owned(), spec);
        Ok(())
    }

    /// Clears the fault on `dependency`; whether there was one.
    pub fn clear(&self, dependency: &str) -> bool {
        self.inner
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(dependency)
            .is_some()
    }

    /// Every fault in force, by dependency.
    pub fn all(&self) -> BTreeMap<String, FaultSpec> {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_faults_are_refused_naming_the_field() {
        let faults = Faults::new();
        let bad_rate = FaultSpec {
            error_rate: 1.5,
            ..FaultSpec::default()
        };
        assert_eq!(
            faults.set("reranker", bad_rate).unwrap_err().field,
            "error_rate"
        );
        let bad_latency = FaultSpec {
            latency_ms: MAX_LATENCY_MS + 1,
            ..FaultSpec::default()
        };
        assert_eq!(
            faults.set("reranker", bad_latency).unwrap_err().field,
            "latency_ms"
        );
        assert!(faults.all().is_empty(), "nothing invalid is kept");
        let outage = FaultSpec {
            outage: true,
            ..FaultSpec::default()
        };
        faults.set("reranker", outage).unwrap();
        assert_eq!(faults.get("reranker"), Some(outage));
        assert!(faults.clear("reranker"));
        assert!(!faults.clear("reranker"));
    }
}
