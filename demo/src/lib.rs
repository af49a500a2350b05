//! Ballast's demo AI service: a simulated RAG answer pipeline and a
//! case-review agent over fake dependencies, enforced by the real agent
//! ([`agent::Guard`]) and fed by a running control plane.
//!
//! Nothing leaves the process but calls to the Ballast server: the model
//! providers, search indexes, reranker, tools and the approval service are
//! [`deps::FakeDependency`] values whose latency, error rate and outages
//! are tunable at run time through [`control`]. Breaker states, fallbacks,
//! degraded answers and telemetry all come from the enforcement code.
//!
//! ```
//! use demo::deps::Dependencies;
//! use demo::faults::{FaultSpec, Faults};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let faults = Faults::new();
//! let deps = Dependencies::new(&faults, 42);
//! faults.set("reranker", FaultSpec { outage: true, ..FaultSpec::default() }).unwrap();
//! assert!(deps.get("reranker").call().await.is_err());
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod bootstrap;
pub mod case_review;
pub mod control;
pub mod dead_letters;
pub mod deps;
pub mod faults;
pub mod fleet;
pub mod outcome;
pub mod rag;
