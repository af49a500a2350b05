//! Ballast's shared vocabulary: the types that travel between the server, the
//! dashboard (compiled to wasm) and the enforcement agent.
//!
//! This crate holds no I/O, so that the very same validation runs in the
//! browser as an engineer types, on the server before a publish, and in the
//! agent before it applies a pushed policy.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod api;
pub mod paths;
pub mod policy;
pub mod protocol;
pub mod role;
pub mod wire;
