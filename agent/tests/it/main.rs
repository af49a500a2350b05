//! Every integration test of the agent but one, in one binary.
//!
//! One binary, not one per file: each links the agent and, for the live
//! tests, the whole server, so a binary per file cost minutes of linking and
//! gigabytes of disk on every fresh CI machine. `killed_control_plane` stays
//! apart because its `main` must be able to become the server.

mod local;
mod support;

mod attempts;
mod breaker_override;
mod dlq_live;
mod dlq_runner;
mod enforcement;
mod fallback_layer;
mod handles;
mod layer_alone;
mod layers;
mod live;
mod matrix;
mod partition;
mod policy_layers;
mod properties;
mod request_records;
mod shared_clock;
