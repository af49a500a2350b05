//! Who may do what. The server checks every endpoint against this matrix and
//! the dashboard uses the same matrix to decide which navigation to show, so
//! the two can never disagree.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

crate::wire_enum! {
    /// A human user's role. Service tokens are not users and have no role: they
    /// can only speak the agent protocol for their own service.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(rename_all = "snake_case")]
    pub enum Role {
        /// Reads everything a dashboard shows; changes nothing.
        Viewer => ("viewer", "Viewer"),
        /// Edits drafts, publishes low-risk policy, requests DLQ actions, writes
        /// runbooks and alerts, runs chaos outside production.
        Engineer => ("engineer", "Engineer"),
        /// Approves requests that someone else made, and high-risk publishes.
        Approver => ("approver", "Approver"),
        /// Manages users and service tokens, and may do everything else.
        Admin => ("admin", "Admin"),
    }
}

/// Something a request may want to do. Endpoints name the permission they need
/// rather than a role, so that the matrix lives in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Read services, policy, telemetry, DLQ entries and runbooks.
    Read,
    /// Create and edit drafts, runbooks, alerts and chaos experiments.
    Edit,
    /// Publish a policy version that needs no second person.
    PublishLowRisk,
    /// Ask for a dead-letter action (redrive, cancel, manual complete, escalate).
    RequestDlqAction,
    /// Approve or reject someone else's request or high-risk publish.
    Approve,
    /// Work an incident: start a runbook's checklist, tick its steps,
    /// acknowledge and silence alerts. On-call approvers do this too, so it
    /// is not part of [`Permission::Edit`].
    Respond,
    /// Create, change and disable users.
    ManageUsers,
    /// Create, list and revoke service tokens.
    ManageTokens,
    /// Read the audit log.
    ReadAudit,
}

impl Role {
    /// Whether this role grants `permission`.
    ///
    /// Approvers do not edit: keeping the people who approve apart from the
    /// people who author is what makes four eyes mean something.
    pub fn allows(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Admin => true,
            Role::Viewer => matches!(permission, Read),
            Role::Engineer => {
                matches!(
                    permission,
                    Read | Edit | PublishLowRisk | RequestDlqAction | Respond
                )
            }
            Role::Approver => matches!(permission, Read | Approve | Respond | ReadAudit),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for a role name that is not one of [`Role::ALL`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownRole(pub String);

impl fmt::Display for UnknownRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = Role::ALL.iter().map(|r| r.as_str()).collect();
        write!(
            f,
            "unknown role {:?}: expected one of {}",
            self.0,
            names.join(", ")
        )
    }
}

impl std::error::Error for UnknownRole {}

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::from_name(s).ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn approvers_and_authors_are_kept_apart() {
        assert!(!Role::Approver.allows(Permission::Edit));
        assert!(!Role::Engineer.allows(Permission::Approve));
        assert!(!Role::Viewer.allows(Permission::Edit));
        assert!(Role::Admin.allows(Permission::ManageTokens));
        assert!(!Role::Engineer.allows(Permission::ManageUsers));
    }
}
