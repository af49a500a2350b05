//! The REST API's paths, in one place for every client: the dashboard, the
//! policy command line, the demo's bootstrap, the agent and the tests.
//!
//! The server's router mounts the same strings (see `server/src/routes`), and
//! a server test holds every route to the OpenAPI document, so a path that
//! changes here changes for everyone or fails a test.

/// Where the REST API is mounted.
pub const API: &str = "/api/v1";

/// `POST`: sign in with a username and password.
pub const LOGIN: &str = "/api/v1/auth/login";
/// `POST`: end the session.
pub const LOGOUT: &str = "/api/v1/auth/logout";
/// `GET`: who is signed in.
pub const ME: &str = "/api/v1/me";
/// `GET`, `POST`: users.
pub const USERS: &str = "/api/v1/users";
/// `GET`, `POST`: service tokens.
pub const TOKENS: &str = "/api/v1/tokens";
/// `GET`: the audit log.
pub const AUDIT: &str = "/api/v1/audit";
/// `GET`, `POST`: services.
pub const SERVICES: &str = "/api/v1/services";
/// `GET`: publishes waiting for a second person.
pub const PUBLISH_REQUESTS: &str = "/api/v1/publish-requests";
/// `GET`: search dead letters.
pub const DEAD_LETTERS: &str = "/api/v1/dead-letters";
/// `POST`: the same action on many dead letters.
pub const DEAD_LETTER_BULK_ACTIONS: &str = "/api/v1/dead-letters/bulk-actions";
/// `GET`: dead-letter actions (the approvals inbox).
pub const DLQ_ACTIONS: &str = "/api/v1/dlq-actions";
/// `GET`: how many decisions wait for the signed-in user.
pub const DLQ_ACTIONS_COUNT: &str = "/api/v1/dlq-actions/count";
/// `POST`: approve many dead-letter actions at once.
pub const DLQ_ACTIONS_BULK_APPROVE: &str = "/api/v1/dlq-actions/bulk-approve";
/// `GET`: runbooks, filtered by what they are about.
pub const RUNBOOKS: &str = "/api/v1/runbooks";
/// `GET`: the starting text for a new runbook: the incident steps.
pub const RUNBOOK_TEMPLATE: &str = "/api/v1/runbook-template";
/// `GET`: incident checklists, open ones first.
pub const CHECKLISTS: &str = "/api/v1/checklists";
/// `GET`: alert rules.
pub const ALERT_RULES: &str = "/api/v1/alert-rules";
/// `GET`: alerts, firing ones first.
pub const ALERTS: &str = "/api/v1/alerts";
/// `GET`, `POST`: silences.
pub const SILENCES: &str = "/api/v1/silences";
/// `GET`, `POST`: webhooks that receive alert notifications.
pub const WEBHOOKS: &str = "/api/v1/webhooks";
/// `GET`: notifications and their delivery.
pub const NOTIFICATIONS: &str = "/api/v1/notifications";
/// `POST`: force a dependency's breaker open or closed across the fleet.
pub const BREAKER_OVERRIDE: &str = "/api/v1/incidents/breaker-override";
/// `GET`: every service's tightest error budget, for the overview.
pub const OBJECTIVES: &str = "/api/v1/objectives";
/// `GET`: every agent instance in the fleet.
pub const FLEET_INSTANCES: &str = "/api/v1/fleet/instances";
/// `GET`: every service's live state.
pub const FLEET_LIVE: &str = "/api/v1/fleet/live";
/// `GET`: the live view for browsers, as server-sent events.
pub const LIVE: &str = "/api/v1/live";
/// `GET`: the OpenAPI document.
pub const OPENAPI: &str = "/api/v1/openapi.json";

/// `GET`: the agent's policy, with an `ETag`.
pub const AGENT_POLICY: &str = "/api/v1/agent/policy";
/// `GET`: the agent's event stream.
pub const AGENT_STREAM: &str = "/api/v1/agent/stream";
/// `POST`: an agent instance's heartbeat.
pub const AGENT_HEARTBEAT: &str = "/api/v1/agent/heartbeat";
/// `POST`: a sequenced telemetry batch.
pub const AGENT_TELEMETRY: &str = "/api/v1/agent/telemetry";
/// `POST`: a dead-lettered task.
pub const AGENT_DEAD_LETTERS: &str = "/api/v1/agent/dead-letters";

/// `GET`: a runbook's latest version; `PUT`: write its next version.
pub fn runbook(slug: &str) -> String {
    format!("{RUNBOOKS}/{}", segment(slug))
}

/// `GET`: a runbook's history.
pub fn runbook_versions(slug: &str) -> String {
    format!("{RUNBOOKS}/{}/versions", segment(slug))
}

/// `GET`: one version of a runbook.
pub fn runbook_version(slug: &str, version: u64) -> String {
    format!("{RUNBOOKS}/{}/versions/{version}", segment(slug))
}

/// `POST`: start a checklist from a runbook's latest version.
pub fn runbook_checklists(slug: &str) -> String {
    format!("{RUNBOOKS}/{}/checklists", segment(slug))
}

/// `GET`: one checklist.
pub fn checklist(id: &str) -> String {
    format!("{CHECKLISTS}/{}", segment(id))
}

/// `PUT`: tick or untick one step of a checklist.
pub fn checklist_step(id: &str, index: u32) -> String {
    format!("{CHECKLISTS}/{}/steps/{index}", segment(id))
}

/// `POST`: close a checklist.
pub fn close_checklist(id: &str) -> String {
    format!("{CHECKLISTS}/{}/close", segment(id))
}

/// `GET`, `PUT`, `DELETE`: one alert rule.
pub fn alert_rule(name: &str) -> String {
    format!("{ALERT_RULES}/{}", segment(name))
}

/// `GET`: one alert.
pub fn alert(id: &str) -> String {
    format!("{ALERTS}/{}", segment(id))
}

/// `POST`: acknowledge an alert.
pub fn acknowledge_alert(id: &str) -> String {
    format!("{ALERTS}/{}/acknowledge", segment(id))
}

/// `POST`: end a silence early.
pub fn end_silence(id: &str) -> String {
    format!("{SILENCES}/{}/end", segment(id))
}

/// `DELETE`: one webhook.
pub fn webhook(id: &str) -> String {
    format!("{WEBHOOKS}/{}", segment(id))
}

/// `PATCH`: one user.
pub fn user(id: i64) -> String {
    format!("{USERS}/{id}")
}

/// `DELETE`: one service token.
pub fn token(id: &str) -> String {
    format!("{TOKENS}/{}", segment(id))
}

/// `POST`: the outcome of a dead-letter action the agent executed.
pub fn agent_action_ack(id: &str) -> String {
    format!("/api/v1/agent/actions/{}/ack", segment(id))
}

/// `GET`: one dead letter, its actions and history.
pub fn dead_letter(id: &str) -> String {
    format!("{DEAD_LETTERS}/{}", segment(id))
}

/// `POST`: ask for an action on a dead letter.
pub fn dead_letter_actions(id: &str) -> String {
    format!("{DEAD_LETTERS}/{}/actions", segment(id))
}

/// `POST`: approve, reject or withdraw a dead-letter action; `verb` is
/// `approve`, `reject` or `withdraw`.
pub fn dlq_action(id: &str, verb: &str) -> String {
    format!("{DLQ_ACTIONS}/{}/{verb}", segment(id))
}

/// `POST`: approve a publish request.
pub fn approve_publish(id: &str) -> String {
    format!("{PUBLISH_REQUESTS}/{}/approve", segment(id))
}

/// `POST`: reject a publish request.
pub fn reject_publish(id: &str) -> String {
    format!("{PUBLISH_REQUESTS}/{}/reject", segment(id))
}

/// One service in one environment, and what hangs off it.
#[derive(Debug, Clone, Copy)]
pub struct ServicePaths<'a> {
    name: &'a str,
    env: &'a str,
}

/// The paths of service `name` in environment `env`.
pub fn service<'a>(name: &'a str, env: &'a str) -> ServicePaths<'a> {
    ServicePaths { name, env }
}

impl ServicePaths<'_> {
    /// `GET`: the service, its active version and rollout.
    pub fn root(self) -> String {
        format!("{SERVICES}/{}/{}", segment(self.name), segment(self.env))
    }
    fn sub(self, rest: &str) -> String {
        format!("{}/{rest}", self.root())
    }
    /// `GET`, `PUT`: the draft.
    pub fn draft(self) -> String {
        self.sub("draft")
    }
    /// `POST`: validate a document.
    pub fn validate(self) -> String {
        self.sub("validate")
    }
    /// `POST`: publish a document.
    pub fn publish(self) -> String {
        self.sub("publish")
    }
    /// `GET`: every version.
    pub fn versions(self) -> String {
        self.sub("versions")
    }
    /// `GET`: one version.
    pub fn version(self, version: u64) -> String {
        self.sub(&format!("versions/{version}"))
    }
    /// `GET`: the difference between two versions.
    pub fn diff(self) -> String {
        self.sub("diff")
    }
    /// `POST`: roll back to an earlier version.
    pub fn rollback(self) -> String {
        self.sub("rollback")
    }
    /// `POST`: promote, abort or resize a canary.
    pub fn rollout(self) -> String {
        self.sub("rollout")
    }
    /// `GET`: the service's agent instances.
    pub fn instances(self) -> String {
        self.sub("instances")
    }
    /// `GET`: the service's live telemetry.
    pub fn telemetry(self) -> String {
        self.sub("telemetry")
    }
    /// `GET`: the service's dead-letter queue in figures.
    pub fn dead_letter_summary(self) -> String {
        self.sub("dead-letters/summary")
    }
    /// `GET`: the service's reliability report (`?format=html|markdown`).
    pub fn report(self) -> String {
        self.sub("report")
    }
    /// `GET`: the service's objectives, error budgets and canary analysis.
    pub fn objectives(self) -> String {
        self.sub("objectives")
    }
}

/// A path segment with everything but RFC 3986's unreserved characters
/// percent-encoded, and the dot segments `.` and `..` encoded whole.
/// Service and environment names are validated to `[a-z0-9._-]`, so this
/// only matters for input that fails validation anyway (a name typed into
/// the address bar): it must reach the server as a 4xx, never as another
/// path.
pub fn segment(s: &str) -> String {
    if s == "." || s == ".." {
        return s.replace('.', "%2E");
    }
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_paths_nest_under_the_service() {
        let s = service("rag-answer", "prod");
        assert_eq!(s.root(), "/api/v1/services/rag-answer/prod");
        assert_eq!(s.version(3), "/api/v1/services/rag-answer/prod/versions/3");
        assert_eq!(s.publish(), "/api/v1/services/rag-answer/prod/publish");
    }

    #[test]
    fn segments_cannot_escape_their_place() {
        assert_eq!(
            service("../users", "prod").root(),
            "/api/v1/services/..%2Fusers/prod"
        );
        assert_eq!(service("..", "prod").root(), "/api/v1/services/%2E%2E/prod");
        assert_eq!(service("a.b", "prod").root(), "/api/v1/services/a.b/prod");
        assert_eq!(token("a b?c"), "/api/v1/tokens/a%20b%3Fc");
    }
}
