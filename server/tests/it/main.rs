//! Every integration test of the server, in one binary.
//!
//! One binary, not one per file: each test binary links the whole server
//! (about 190 MB unstripped), so a dozen of them cost minutes of linking and
//! gigabytes of disk on every fresh CI machine.

#[macro_use]
mod common;

mod alerts;
mod api;
mod cli;
mod cli_policy;
mod dead_letters;
mod incidents;
mod objectives;
mod openapi;
mod pages;
mod policy;
mod report;
mod runbooks;
mod streams;
mod telemetry;
