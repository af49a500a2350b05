//! What the rows of live figures are about. Agents report every component
//! they count under its name, in one map: dependencies, retrieval sources
//! (under the source's name), agent nodes (under the node's name), and the
//! service's own counts under names starting with `_` (`_service` for
//! admission, the request rate and the service's bulkheads; `_unnamed` for
//! calls that named no dependency). Policy names never start with `_`, so
//! those are told apart by their name; the others only by the policy that
//! lists them.

use crate::policy_hub::Snapshot;
use shared::api::ComponentKind;
use shared::policy::Policy;
use std::collections::BTreeSet;

/// The service-level row's name: what `_`-prefixed rows are folded into.
pub const SERVICE_ROW: &str = "_service";

/// The names a policy version gives its retrieval sources and agent nodes,
/// and its declared dependencies, kept with the published version so that
/// the live view classifies rows without parsing the policy again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Components {
    dependencies: BTreeSet<String>,
    sources: BTreeSet<String>,
    nodes: BTreeSet<String>,
}

impl Components {
    /// The components `policy` names.
    pub fn of(policy: &Policy) -> Components {
        Components {
            dependencies: policy.service.dependencies.keys().cloned().collect(),
            sources: policy
                .retrieval
                .iter()
                .flat_map(|r| r.sources.keys().cloned())
                .collect(),
            nodes: policy.agent_nodes.keys().cloned().collect(),
        }
    }

    /// What this version calls `name`, if it names it. A name that is
    /// both a dependency and a source is a dependency: the agent counts
    /// the two in one row, and its calls and breaker are the dependency's.
    fn kind(&self, name: &str) -> Option<ComponentKind> {
        if self.dependencies.contains(name) {
            Some(ComponentKind::Dependency)
        } else if self.sources.contains(name) {
            Some(ComponentKind::RetrievalSource)
        } else if self.nodes.contains(name) {
            Some(ComponentKind::AgentNode)
        } else {
            None
        }
    }
}

/// What a reported row named `name` is, by the active version and then
/// the canary's (instances run either); a name neither lists is taken for
/// a dependency, and every `_` name is the service's.
pub fn kind(snapshot: &Snapshot, name: &str) -> ComponentKind {
    if name.starts_with('_') {
        return ComponentKind::Service;
    }
    snapshot
        .active
        .iter()
        .chain(snapshot.canary.iter().map(|(p, _)| p))
        .find_map(|p| p.components.kind(name))
        .unwrap_or(ComponentKind::Dependency)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy_hub::Published;
    use std::sync::Arc;

    fn published(version: u64, yaml: &str) -> Arc<Published> {
        Arc::new(Published {
            version,
            etag: format!("e{version}"),
            json: "{}".into(),
            components: Components::of(&Policy::from_yaml(yaml).unwrap()),
            cost_budget_usd_micros: None,
            published_at_ms: 0,
            goals: Default::default(),
        })
    }

    #[test]
    fn rows_are_classified_by_the_policies_in_force() {
        let header = "service:\n  name: rag\n  environment: prod\n  owner: team\n  risk_tier: low\n  dependencies:\n    search: { kind: lexical_search, required: true }\n";
        let active = published(
            1,
            &format!(
                "{header}retrieval:\n  sources:\n    policy: {{ dependency: search, required: true, on_failure: fail }}\n    search: {{ dependency: search, required: true, on_failure: fail }}\n"
            ),
        );
        let canary = published(
            2,
            &format!(
                "{header}agent_nodes:\n  draft: {{ dependencies: [search], required_for_completion: true }}\n"
            ),
        );
        let snapshot = Snapshot {
            active: Some(active),
            canary: Some((canary, 10)),
        };
        for (name, expected) in [
            ("search", ComponentKind::Dependency),
            ("policy", ComponentKind::RetrievalSource),
            ("draft", ComponentKind::AgentNode),
            ("unlisted", ComponentKind::Dependency),
            ("_service", ComponentKind::Service),
            ("_unnamed", ComponentKind::Service),
        ] {
            assert_eq!(kind(&snapshot, name), expected, "{name}");
        }
        // Before anything is published, only the `_` rows are told apart.
        let none = Snapshot::default();
        assert_eq!(kind(&none, "policy"), ComponentKind::Dependency);
        assert_eq!(kind(&none, "_service"), ComponentKind::Service);
    }
}
