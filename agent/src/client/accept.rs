//! What a received policy must pass before the agent enforces it: the same
//! validation the server runs before a publish (`shared::policy::validate`),
//! and, for the copy on disk, that it governs this service and
//! environment. A policy that fails is refused whole: the agent keeps the
//! version it enforces, logs why, and reports the refusal in its heartbeat.
//! A pushed policy is normally valid (the server validated it), so a
//! refusal means a server with other rules, a hand-edited or foreign disk
//! copy, or a bug; none of them may loosen what the agent enforces.

use shared::policy::ValidationContext;
use shared::protocol::PolicyEnvelope;

/// How many errors a refusal carries: enough to find the fault, few enough
/// to keep a heartbeat small.
pub const MAX_REPORTED_ERRORS: usize = 8;

/// The validation errors of `envelope` (as `path: code`, at most
/// [`MAX_REPORTED_ERRORS`]), or `Ok` when it may be enforced. `expected`
/// is the service and environment the copy must govern; `None` trusts the
/// envelope's own (the control plane chose it by the service token).
pub fn check(envelope: &PolicyEnvelope, expected: Option<(&str, &str)>) -> Result<(), Vec<String>> {
    if let Some((service, environment)) = expected
        && (envelope.service != service || envelope.environment != environment)
    {
        return Err(vec![format!(
            "service: the copy governs {}/{}, not {service}/{environment}",
            envelope.service, envelope.environment
        )]);
    }
    // Alerts and runbooks live on the server: unknown here, unchecked.
    let report = shared::policy::validate(&envelope.policy, &ValidationContext::new());
    if !report.has_errors() {
        return Ok(());
    }
    Err(report
        .errors()
        .take(MAX_REPORTED_ERRORS)
        .map(|f| format!("{}: {}", f.path, f.code))
        .collect())
}
