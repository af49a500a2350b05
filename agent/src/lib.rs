//! Ballast's enforcement agent. It is embedded in every service, receives the
//! policy that the control plane publishes, and enforces it in-process.
//!
//! The centre is the [`Guard`]: give it a dependency, an operation and the
//! request's deadline, and it runs the call under the policy in force
//! (deadline, rate limits and reserved budgets, breaker, bulkheads,
//! retries within the retry budget) and returns the result together with
//! the status the answer must carry and the fallback, if any, the policy
//! allows. [`GuardLayer`] does the same for tower services; the
//! [`deadline`] layers carry the `ballast-deadline` header in and out.
//!
//! Each pattern is also a tower layer of its own, for code that wants to
//! choose and order them: [`rate_limit::RateLimitLayer`],
//! [`bulkhead::BulkheadLayer`], [`breaker::BreakerLayer`] and
//! [`retry::RetryLayer`], with [`fallback::FallbackLayer`] outermost to
//! label what fails per the fallback matrix. Each pattern folder owns its
//! decisions, its layer and its tests, and decides on the shared
//! [`state::Enforcement`] alone (one breaker per dependency, the bulkhead
//! partitions, the rate and usage buckets, the retry budget, the telemetry
//! recorder); the [`Guard`] composes them and derefs to that state. So a
//! layer is made from an [`Enforcement`] or a [`Guard`] alike, and a call
//! made through the layers and one made through [`Guard::call`] meet the
//! same limits and are counted alike. A request names its dependency (and its
//! tenant, partition values, idempotency key, effect and usage estimate)
//! through [`GuardedRequest`]; an `http::Request` carries a [`CallSpec`] in
//! its extensions. A [`Classifier`] sorts outcomes into error classes.
//!
//! ```
//! use agent::breaker::BreakerLayer;
//! use agent::bulkhead::BulkheadLayer;
//! use agent::deadline::DeadlineLayer;
//! use agent::rate_limit::RateLimitLayer;
//! use agent::retry::RetryLayer;
//! use agent::{CallSpec, CompiledPolicy, DependencyError, Guard, policy_channel};
//! use shared::policy::ErrorClass;
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let (_publish, policy) = policy_channel(CompiledPolicy::conservative_default("rag", "prod"));
//! let guard = Guard::builder(policy).build();
//! static SENT: AtomicU32 = AtomicU32::new(0);
//! let search = ServiceBuilder::new()
//!     .layer(DeadlineLayer::new(guard.policy_receiver()))
//!     .layer(RateLimitLayer::new(&guard))
//!     .layer(BulkheadLayer::new(&guard))
//!     .layer(BreakerLayer::new(&guard))
//!     .layer(RetryLayer::new(&guard))
//!     .service(service_fn(|_req: http::Request<()>| async {
//!         // The first attempt fails with a retryable error.
//!         match SENT.fetch_add(1, Ordering::SeqCst) {
//!             0 => Err(DependencyError::new(ErrorClass::Unavailable, "503")),
//!             _ => Ok("hits"),
//!         }
//!     }));
//!
//! let mut req = http::Request::new(());
//! // A read: the conservative default retries it once.
//! req.extensions_mut().insert(
//!     CallSpec::new("search", "query").effect(shared::policy::Effect::Read));
//! assert_eq!(search.oneshot(req).await.unwrap(), "hits");
//! assert_eq!(SENT.load(Ordering::SeqCst), 2);
//! # }
//! ```
//!
//! The rest of the policy is enforced where the service asks: model
//! routing in [`routing`] (which fallback model may serve a request of a
//! given risk and feature, and the extra validation its answers need),
//! retrieval sources in [`retrieval`] (fail, degrade, omit or ask a
//! person), agent workflow nodes in [`nodes`] (approvals, degraded-mode
//! holds, node retries, fallback nodes, handoffs, optional nodes),
//! idempotent side effects in [`idempotency`]. The invariants bind them
//! all: a must-fail-closed failure is never worked around, a failure a
//! `may_degrade` entry covers is answered labelled, never silently, and
//! each `must_not_do` kind is checked where it can happen. A received policy that fails the server's own validation is
//! refused before any of this (see [`client`]).
//!
//! The layers read the policy in force when a call starts and keep that
//! version for the whole call. Their order is the caller's: in the stack
//! above the breaker sees the outcome of all of a call's attempts, where
//! [`Guard::call`] consults it before each attempt.
//!
//! The policy arrives through a `tokio::sync::watch` channel of
//! [`CompiledPolicy`] values. Each call takes the version in force when it
//! starts and keeps it, so a swap never disturbs calls in flight. All time
//! goes through `tokio::time`, and jitter through an injectable
//! [`RandomSource`], so behaviour is deterministic on a paused clock.
//!
//! ```
//! use agent::{Call, CompiledPolicy, DependencyError, Guard, policy_channel};
//! use shared::policy::{DegradedStatus, ErrorClass, Policy};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let policy = Policy::from_yaml(r#"
//! service: { name: rag, environment: prod, owner: me, risk_tier: medium,
//!            dependencies: { reranker: { kind: reranker, required: false } } }
//! fallbacks:
//!   - component: reranker
//!     failure: any
//!     fallback: { kind: skip_step }
//!     degraded_status: degraded
//!     user_message: Results are ranked more coarsely than usual.
//!     allowed: true
//! "#).unwrap();
//! let (_publish, policy) = policy_channel(CompiledPolicy::compile(
//!     policy, Some(1), shared::protocol::PolicySource::Server));
//! let guard = Guard::builder(policy).build();
//!
//! let out = guard
//!     .call(&Call::new("reranker", "rerank"), |_attempt| async {
//!         Err::<Vec<u32>, _>(DependencyError::new(ErrorClass::Unavailable, "503"))
//!     })
//!     .await;
//! assert!(out.result.is_err());
//! assert_eq!(out.status, DegradedStatus::Degraded);
//! assert_eq!(out.fallback().unwrap().action.name(), "skip_step");
//! assert_eq!(out.user_message(), Some("Results are ranked more coarsely than usual."));
//! # }
//! ```
//!
//! Wrapping a real HTTP call: here a hyper client asks a search service,
//! sends each attempt's own deadline in the `ballast-deadline` header, and
//! sorts what comes back into error classes, which decide retries, the
//! breaker and the fallback. The search service is a small axum app on a
//! loopback port, so that the example runs as it stands.
//!
//! ```
//! use shared::protocol::DEADLINE_HEADER;
//! use agent::{Call, CompiledPolicy, DependencyError, Guard, policy_channel};
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Empty};
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use shared::policy::{Effect, ErrorClass};
//!
//! # #[tokio::main]
//! # async fn main() {
//! // The search service: it answers with the deadline it was given.
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! let search_url = format!("http://{}/query?q=refund", listener.local_addr().unwrap());
//! let search = axum::Router::new().route(
//!     "/query",
//!     axum::routing::get(|headers: http::HeaderMap| async move {
//!         let ms = headers[DEADLINE_HEADER].to_str().unwrap().to_owned();
//!         format!("hits within {ms} ms")
//!     }),
//! );
//! tokio::spawn(async move { axum::serve(listener, search).await.unwrap() });
//!
//! let (_publish, policy) = policy_channel(CompiledPolicy::conservative_default("rag", "prod"));
//! let guard = Guard::builder(policy).build();
//! let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
//!
//! let out = guard
//!     .call(
//!         &Call::new("search", "query").effect(Effect::Read),
//!         |attempt| {
//!             let client = client.clone();
//!             let url = search_url.clone();
//!             async move {
//!                 let mut req = http::Request::get(url);
//!                 if let Some(deadline) = attempt.deadline {
//!                     req = req.header(DEADLINE_HEADER, deadline.header_value());
//!                 }
//!                 let req = req.body(Empty::new()).expect("a valid request");
//!                 let fail = |class, e: &dyn std::fmt::Display| {
//!                     DependencyError::new(class, e.to_string())
//!                 };
//!                 let resp = client
//!                     .request(req)
//!                     .await
//!                     .map_err(|e| fail(ErrorClass::Connection, &e))?;
//!                 let status = resp.status();
//!                 match status.as_u16() {
//!                     200..=299 => {}
//!                     429 => return Err(fail(ErrorClass::RateLimited, &status)),
//!                     503 => return Err(fail(ErrorClass::Unavailable, &status)),
//!                     500..=599 => return Err(fail(ErrorClass::Overloaded, &status)),
//!                     _ => return Err(fail(ErrorClass::Permanent, &status)),
//!                 }
//!                 let body = resp
//!                     .into_body()
//!                     .collect()
//!                     .await
//!                     .map_err(|e| fail(ErrorClass::Connection, &e))?;
//!                 Ok::<Bytes, DependencyError>(body.to_bytes())
//!             }
//!         },
//!     )
//!     .await;
//! match &out.result {
//!     Ok(hits) => println!("{}", String::from_utf8_lossy(hits)),
//!     // Not normal: tell the caller, in the policy's words.
//!     Err(e) => println!("{e}: {:?} {:?}", out.status, out.user_message()),
//! }
//! // The conservative default gives each dependency call at most 10 s.
//! let hits = out.result.unwrap();
//! assert!(hits.starts_with(b"hits within "), "{hits:?}");
//! let ms: u64 = std::str::from_utf8(&hits[12..hits.len() - 3]).unwrap().parse().unwrap();
//! assert!(ms <= 10_000);
//! assert_eq!(out.status, shared::policy::DegradedStatus::Normal);
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod admission;
pub mod breaker;
pub mod bulkhead;
pub mod cache;
pub mod cache_key;
pub mod call;
pub mod client;
pub mod clock;
pub mod compiled;
pub mod deadline;
pub mod dlq;
pub mod fallback;
pub mod guard;
pub mod idempotency;
pub mod nodes;
pub mod random;
pub mod rate_limit;
pub mod repair;
pub mod request;
pub mod retrieval;
pub mod retry;
pub mod routing;
pub mod state;
pub mod steps;
pub mod telemetry;

pub use admission::{Admitted, Refusal, Request};
pub use cache_key::{CacheKey, CacheKeyBuilder};
pub use call::{Call, Classify, DependencyError, Usage};
pub use clock::CallClock;
pub use compiled::{CompiledPolicy, PolicyReceiver, policy_channel};
pub use deadline::Deadline;
pub use fallback::Degradation;
pub use guard::{Attempt, Guard, GuardBuilder, GuardError, GuardLayer, Guarded};
pub use random::{RandomSource, SplitMix64};
pub use request::{ByError, CallRecord, CallSpec, Classifier, GuardedRequest, HttpStatus};
pub use state::Enforcement;
