//! Comparing two versions of a policy: a field-by-field diff for the
//! dashboard and the CLI, and the invariant check that decides whether a
//! publish needs an approver.

use super::Policy;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What happened to a value between two versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Present only in the new version.
    Added,
    /// Present only in the old version.
    Removed,
    /// Present in both, with different values.
    Changed,
}

/// One difference between two versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Where, in the same dotted form as validation findings:
    /// `retry.model_provider.max_attempts`, `fallbacks.3`.
    pub path: String,
    /// Added, removed or changed.
    pub kind: ChangeKind,
    /// The old value (absent when added).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<Value>,
    /// The new value (absent when removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<Value>,
}

/// The differences between two versions, at the deepest path where they
/// differ, in document order. Lists are compared position by position, so
/// inserting a fallback row shows as changes to the rows after it plus one
/// added at the end; a reviewer reads the changed rows either way.
pub fn diff(old: &Policy, new: &Policy) -> Vec<Change> {
    let old = serde_json::to_value(old).unwrap_or(Value::Null);
    let new = serde_json::to_value(new).unwrap_or(Value::Null);
    let mut out = Vec::new();
    walk(&mut Vec::new(), &old, &new, &mut out);
    out
}

fn walk(path: &mut Vec<String>, old: &Value, new: &Value, out: &mut Vec<Change>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            // Old keys in order, then keys only the new version has.
            for (key, left) in a {
                path.push(key.clone());
                match b.get(key) {
                    Some(right) => walk(path, left, right, out),
                    None => out.push(change(path, ChangeKind::Removed, Some(left), None)),
                }
                path.pop();
            }
            for (key, right) in b {
                if !a.contains_key(key) {
                    path.push(key.clone());
                    out.push(change(path, ChangeKind::Added, None, Some(right)));
                    path.pop();
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for index in 0..a.len().max(b.len()) {
                path.push(index.to_string());
                match (a.get(index), b.get(index)) {
                    (Some(left), Some(right)) => walk(path, left, right, out),
                    (Some(left), None) => {
                        out.push(change(path, ChangeKind::Removed, Some(left), None))
                    }
                    (None, Some(right)) => {
                        out.push(change(path, ChangeKind::Added, None, Some(right)))
                    }
                    (None, None) => {}
                }
                path.pop();
            }
        }
        _ if old == new => {}
        _ => out.push(change(path, ChangeKind::Changed, Some(old), Some(new))),
    }
}

fn change(path: &[String], kind: ChangeKind, old: Option<&Value>, new: Option<&Value>) -> Change {
    Change {
        path: path.join("."),
        kind,
        old: old.cloned(),
        new: new.cloned(),
    }
}

/// One way a new version loosens the invariants of the old one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Loosening {
    /// The entry concerned, as a path into the version that has it: the old
    /// one for removed or changed protections, the new one for an added or
    /// changed `may_degrade` entry.
    pub path: String,
    /// The entry's id.
    pub id: String,
    /// What was done to it, for the approval request.
    pub message: String,
}

/// How `new` loosens the invariants of `old`: an entry removed from (or
/// changed in) `must_fail_closed` or `must_not_do`, or an entry added to (or
/// changed in) `may_degrade`. An entry is unchanged when an identical one
/// is in the other version, wherever it stands, so reordering loosens
/// nothing. A changed entry counts because a new wording or component can
/// narrow what it protects, and telling narrowing from widening reliably is
/// a job for the approver.
pub fn invariant_loosenings(old: &Policy, new: &Policy) -> Vec<Loosening> {
    let empty = Default::default();
    let old_inv = old.invariants.as_ref().unwrap_or(&empty);
    let new_inv = new.invariants.as_ref().unwrap_or(&empty);
    let mut out = Vec::new();
    vanished(
        "must_fail_closed",
        &old_inv.must_fail_closed,
        &new_inv.must_fail_closed,
        |e| &e.id,
        "removes",
        "from",
        &mut out,
    );
    vanished(
        "must_not_do",
        &old_inv.must_not_do,
        &new_inv.must_not_do,
        |e| &e.id,
        "removes",
        "from",
        &mut out,
    );
    vanished(
        "may_degrade",
        &new_inv.may_degrade,
        &old_inv.may_degrade,
        |e| &e.id,
        "adds",
        "to",
        &mut out,
    );
    out
}

/// Entries of `from` with no identical entry in `to`, each reported as
/// `verb`ed (or changed, when `to` has an entry with the same id).
fn vanished<T: PartialEq>(
    list: &str,
    from: &[T],
    to: &[T],
    id_of: impl Fn(&T) -> &String,
    verb: &str,
    preposition: &str,
    out: &mut Vec<Loosening>,
) {
    for (index, entry) in from.iter().enumerate() {
        if to.contains(entry) {
            continue;
        }
        let id = id_of(entry).clone();
        let same_id = to.iter().any(|other| *id_of(other) == id);
        let message = if same_id {
            format!("changes {list} entry `{id}`")
        } else {
            format!("{verb} `{id}` {preposition} {list}")
        };
        out.push(Loosening {
            path: format!("invariants.{list}.{index}"),
            id,
            message,
        });
    }
}
