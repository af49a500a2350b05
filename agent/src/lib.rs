//! Ballast's enforcement agent. It is embedded in every service, receives the
//! policy that the control plane publishes, and enforces it in-process.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
