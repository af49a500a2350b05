//! Version diffs and the invariant-loosening check.

use shared::policy::{ChangeKind, Policy, diff, invariant_loosenings};

const CASE_REVIEW: &str = include_str!("../../examples/policies/case-review-agent.yaml");

fn base() -> Policy {
    Policy::from_yaml(CASE_REVIEW).unwrap()
}

#[test]
fn identical_versions_have_no_diff() {
    assert!(diff(&base(), &base()).is_empty());
    assert!(!Policy::loosens_invariants(&base(), &base()));
}

#[test]
fn changes_are_reported_by_path() {
    let old = base();
    let mut new = base();
    new.retry.get_mut("model_provider").unwrap().max_attempts = 2;
    new.breakers.remove("reranker");
    new.fallbacks.pop();
    new.timeouts
        .as_mut()
        .unwrap()
        .dependencies
        .insert("case_record".into(), 1500);
    let changes = diff(&old, &new);
    let find = |path: &str| {
        changes
            .iter()
            .find(|c| c.path == path)
            .unwrap_or_else(|| panic!("no change at {path}: {changes:#?}"))
    };
    let c = find("retry.model_provider.max_attempts");
    assert_eq!(c.kind, ChangeKind::Changed);
    assert_eq!(c.old, Some(3.into()));
    assert_eq!(c.new, Some(2.into()));
    assert_eq!(find("breakers.reranker").kind, ChangeKind::Removed);
    let last = old.fallbacks.len() - 1;
    assert_eq!(find(&format!("fallbacks.{last}")).kind, ChangeKind::Removed);
    let added = find("timeouts.dependencies.case_record");
    assert_eq!(added.kind, ChangeKind::Added);
    assert_eq!(added.new, Some(1500.into()));
    assert_eq!(changes.len(), 4, "{changes:#?}");
}

#[test]
fn removing_a_fail_closed_entry_loosens_invariants() {
    let old = base();
    let mut new = base();
    new.invariants.as_mut().unwrap().must_fail_closed.remove(1);
    let l = invariant_loosenings(&old, &new);
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].id, "approval_service_unavailable");
    assert_eq!(l[0].path, "invariants.must_fail_closed.1");
    assert!(Policy::loosens_invariants(&old, &new));
    // The reverse publish tightens them.
    assert!(!Policy::loosens_invariants(&new, &old));
}

#[test]
fn removing_a_must_not_do_entry_loosens_invariants() {
    let old = base();
    let mut new = base();
    new.invariants
        .as_mut()
        .unwrap()
        .must_not_do
        .retain(|e| e.id != "close_case_without_approval");
    assert!(Policy::loosens_invariants(&old, &new));
    new.invariants = None;
    assert_eq!(invariant_loosenings(&old, &new).len(), 10);
}

#[test]
fn adding_to_may_degrade_loosens_invariants() {
    let old = base();
    let mut new = base();
    let mut extra = new.invariants.as_ref().unwrap().may_degrade[0].clone();
    extra.id = "case_record_slow".into();
    new.invariants.as_mut().unwrap().may_degrade.push(extra);
    let l = invariant_loosenings(&old, &new);
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].path, "invariants.may_degrade.4");
    // Removing from may_degrade tightens them.
    assert!(!Policy::loosens_invariants(&new, &old));
}

#[test]
fn changing_an_entry_counts_as_loosening() {
    let old = base();
    let mut new = base();
    new.invariants.as_mut().unwrap().must_fail_closed[0].component = None;
    assert!(Policy::loosens_invariants(&old, &new));
    // Reordering does not.
    let mut reordered = base();
    reordered.invariants.as_mut().unwrap().must_not_do.reverse();
    assert!(!Policy::loosens_invariants(&old, &reordered));
}
