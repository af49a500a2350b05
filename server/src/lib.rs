//! Ballast's control plane: the REST API, storage, authentication, the audit
//! log and the dashboard's server side. The `ballast` binary is a thin CLI
//! over this library, and the integration tests drive it through [`app::router`].
#![forbid(unsafe_code)]

pub mod alerts;
pub mod app;
pub mod approvals;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod dead_letters;
pub mod error;
pub mod fields;
pub mod group_commit;
pub mod objectives;
pub mod policy;
pub mod policy_cli;
pub mod policy_hub;
pub mod report;
pub mod routes;
pub mod runbooks;
pub mod store;
pub mod telemetry;
pub mod web;

/// mimalloc rather than the system allocator: a page render or a telemetry
/// batch is thousands of small, short-lived allocations (strings, reactive
/// nodes, JSON values), and glibc's malloc and free were a fifth of the
/// overview's render time. Declared in the library, so that the `ballast`
/// binary, the benchmarks and the tests all run on the same allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
