//! Idempotency: keys built from what identifies a side effect, a store that
//! remembers each key with its payload's fingerprint and result, and
//! [`run_once`], which runs a side effect at most once per key.
//!
//! The same key with the same payload replays the stored result without
//! repeating the side effect (a duplicate message, a redelivery). The same
//! key with a different payload is a conflict, never a silent repeat: the
//! caller meant something else. What a conflict then does is the
//! operation's `on_payload_mismatch`: `reject` and `escalate` refuse it
//! (escalation marks it for a person), and `replay_original` hands back
//! the first call's stored result, so the effect is still not repeated.
//!
//! [`crate::state::Enforcement::run_once`] runs the same under the policy
//! in force, and counts what idempotency prevented in telemetry: the
//! conflicts, and the duplicates whose side effect was not run again.

mod memory;
mod sqlite;

pub use memory::MemoryDedupStore;
pub use sqlite::SqliteDedupStore;

use crate::telemetry::DependencyStats;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use shared::policy::{IdempotencyKeyPart, IdempotentOperation, KeyReuse};
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::time::Duration;

/// How long a key is remembered when the policy does not say.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// An idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The key as a string, to store or send.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A key taken as given, such as a DLQ action's id.
    pub fn raw(key: impl Into<String>) -> IdempotencyKey {
        IdempotencyKey(key.into())
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The policy requires key parts this builder was not given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the idempotency key lacks {missing:?}")]
pub struct MissingKeyParts {
    /// The missing parts.
    pub missing: Vec<IdempotencyKeyPart>,
}

/// Builds an [`IdempotencyKey`] from named parts.
#[derive(Debug, Clone, Default)]
pub struct KeyBuilder {
    parts: BTreeMap<IdempotencyKeyPart, String>,
}

impl KeyBuilder {
    /// No parts yet.
    pub fn new() -> KeyBuilder {
        KeyBuilder::default()
    }
    /// Sets a part.
    pub fn part(mut self, part: IdempotencyKeyPart, value: impl Into<String>) -> Self {
        self.parts.insert(part, value.into());
        self
    }
    /// The caller's request id.
    pub fn request(self, id: impl Into<String>) -> Self {
        self.part(IdempotencyKeyPart::RequestId, id)
    }
    /// The workflow run.
    pub fn run(self, id: impl Into<String>) -> Self {
        self.part(IdempotencyKeyPart::WorkflowRunId, id)
    }
    /// The workflow node.
    pub fn node(self, node: impl Into<String>) -> Self {
        self.part(IdempotencyKeyPart::Node, node)
    }
    /// The operation.
    pub fn operation(self, operation: impl Into<String>) -> Self {
        self.part(IdempotencyKeyPart::Operation, operation)
    }

    fn encode<'a>(parts: impl Iterator<Item = (&'a IdempotencyKeyPart, &'a String)>) -> String {
        // Length-prefixed, so that ("a:b", "c") and ("a", "b:c") differ.
        let mut out = String::new();
        for (part, value) in parts {
            let name = serde_json::to_value(part)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            out.push_str(&format!("{name}={}:{value};", value.len()));
        }
        out
    }

    /// The key from every part given.
    pub fn build(&self) -> IdempotencyKey {
        IdempotencyKey(KeyBuilder::encode(self.parts.iter()))
    }

    /// The key from exactly the parts `rule` lists, refusing to build one
    /// without all of them: a key missing a part collides across the
    /// requests that part would have told apart.
    pub fn build_for(&self, rule: &IdempotentOperation) -> Result<IdempotencyKey, MissingKeyParts> {
        let missing: Vec<_> = rule
            .key
            .iter()
            .filter(|p| !self.parts.contains_key(p))
            .copied()
            .collect();
        if !missing.is_empty() {
            return Err(MissingKeyParts { missing });
        }
        Ok(IdempotencyKey(KeyBuilder::encode(
            self.parts.iter().filter(|(p, _)| rule.key.contains(p)),
        )))
    }
}

/// A payload's SHA-256, in hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// The fingerprint of `payload`.
    pub fn of(payload: &[u8]) -> Fingerprint {
        let digest = Sha256::digest(payload);
        Fingerprint(digest.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The hex string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What the store says about a key being claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Never seen (or expired): the caller now owns it and runs the effect.
    Fresh,
    /// Claimed by a call that has not finished.
    InProgress,
    /// Done before with the same payload; here is the stored result.
    Done(Vec<u8>),
    /// Seen before with a different payload.
    Conflict {
        /// The first call's stored result, once it completed; a policy
        /// that replays the original on a mismatch hands it back.
        stored: Option<Vec<u8>>,
    },
}

/// A dedup store failed.
#[derive(Debug, thiserror::Error)]
#[error("dedup store: {0}")]
pub struct StoreError(pub String);

/// Remembers idempotency keys. Implementations must make `claim` atomic:
/// of two concurrent claims of a fresh key, exactly one is `Fresh`.
pub trait DedupStore: Send + Sync {
    /// Claims `key` for a payload with `fingerprint`, remembered for
    /// `retention`.
    fn claim(
        &self,
        key: &str,
        fingerprint: &str,
        retention: Duration,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;

    /// Stores the result of the claimed key's effect.
    fn complete(
        &self,
        key: &str,
        result: &[u8],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Gives up a claim whose effect failed cleanly, so a retry may run it.
    fn release(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The result of [`run_once`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Once<T> {
    /// The effect ran now.
    Ran(T),
    /// The effect had run before; this is its stored result.
    Replayed(T),
}

impl<T> Once<T> {
    /// The value either way.
    pub fn into_inner(self) -> T {
        match self {
            Once::Ran(t) | Once::Replayed(t) => t,
        }
    }
}

/// Why [`run_once`] did not produce a value.
#[derive(Debug, thiserror::Error)]
pub enum OnceError<E> {
    /// The key was used before with a different payload.
    #[error("idempotency key reused with a different payload")]
    Conflict {
        /// Whether the policy sends such conflicts to a person.
        escalate: bool,
    },
    /// Another call holds the key and has not finished.
    #[error("another call with this idempotency key is in progress")]
    InProgress,
    /// The store failed; the effect was not run.
    #[error(transparent)]
    Store(StoreError),
    /// The effect failed; its claim was released.
    #[error("the effect failed")]
    Failed(E),
}

/// Runs `effect` at most once per `key`: the first call runs it and stores
/// its result; a repeat with the same payload gets the stored result; a
/// repeat with another payload is a conflict, or, when `rule` says
/// `replay_original`, gets the first call's stored result.
pub async fn run_once<S, T, E, F, Fut>(
    store: &S,
    key: &IdempotencyKey,
    payload: &Fingerprint,
    rule: Option<&IdempotentOperation>,
    effect: F,
) -> Result<Once<T>, OnceError<E>>
where
    S: DedupStore,
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    run_once_counted(store, key, payload, rule, None, effect).await
}

fn replay<T: DeserializeOwned, E>(bytes: &[u8]) -> Result<Once<T>, OnceError<E>> {
    serde_json::from_slice(bytes)
        .map(Once::Replayed)
        .map_err(|e| OnceError::Store(StoreError(e.to_string())))
}

/// [`run_once`], counting in `stats` each conflict and each duplicate whose
/// side effect was not run again.
pub(crate) async fn run_once_counted<S, T, E, F, Fut>(
    store: &S,
    key: &IdempotencyKey,
    payload: &Fingerprint,
    rule: Option<&IdempotentOperation>,
    stats: Option<&DependencyStats>,
    effect: F,
) -> Result<Once<T>, OnceError<E>>
where
    S: DedupStore,
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let retention = rule.map_or(DEFAULT_RETENTION, |r| Duration::from_millis(r.retention_ms));
    let claim = store
        .claim(key.as_str(), payload.as_str(), retention)
        .await
        .map_err(OnceError::Store)?;
    let prevented = || {
        if let Some(s) = stats {
            s.duplicate_prevented();
        }
    };
    match claim {
        Claim::Fresh => {}
        Claim::InProgress => {
            prevented();
            return Err(OnceError::InProgress);
        }
        Claim::Conflict { stored } => {
            if let Some(s) = stats {
                s.idempotency_conflict();
            }
            let reuse = rule.map_or(KeyReuse::Reject, |r| r.on_payload_mismatch);
            return match (reuse, stored) {
                (KeyReuse::ReplayOriginal, Some(bytes)) => {
                    prevented();
                    replay(&bytes)
                }
                // The original is still running: nothing to replay yet,
                // and running this one too would be the duplicate.
                (KeyReuse::ReplayOriginal, None) => {
                    prevented();
                    Err(OnceError::InProgress)
                }
                (reuse, _) => Err(OnceError::Conflict {
                    escalate: reuse == KeyReuse::Escalate,
                }),
            };
        }
        Claim::Done(bytes) => {
            prevented();
            return replay(&bytes);
        }
    }
    match effect().await {
        Ok(value) => {
            let bytes = serde_json::to_vec(&value)
                .map_err(|e| OnceError::Store(StoreError(e.to_string())))?;
            store
                .complete(key.as_str(), &bytes)
                .await
                .map_err(OnceError::Store)?;
            Ok(Once::Ran(value))
        }
        Err(e) => {
            // A failed effect may be retried under the same key; a release
            // that fails leaves the claim to expire, which errs on the side
            // of not repeating.
            let _ = store.release(key.as_str()).await;
            Err(OnceError::Failed(e))
        }
    }
}

impl crate::state::Enforcement {
    /// Runs `effect` at most once per `key` under the policy in force:
    /// `operation`'s rule in the `idempotency` section says how long the
    /// key is kept and what a key reused with another payload does (see
    /// [`run_once`]). Conflicts and prevented duplicates are counted
    /// against the rule's dependency, or the operation's name without one.
    pub async fn run_once<S, T, E, F, Fut>(
        &self,
        operation: &str,
        store: &S,
        key: &IdempotencyKey,
        payload: &Fingerprint,
        effect: F,
    ) -> Result<Once<T>, OnceError<E>>
    where
        S: DedupStore,
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let policy = self.policy();
        let rule = policy.idempotent_operation(operation);
        let component = rule
            .and_then(|r| r.dependency.as_deref())
            .unwrap_or(operation);
        let stats = self.recorder().dependency(component);
        run_once_counted(store, key, payload, rule, Some(&stats), effect).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_parts_cannot_run_into_each_other() {
        let a = KeyBuilder::new().request("a:b").run("c").build();
        let b = KeyBuilder::new().request("a").run("b:c").build();
        assert_ne!(a, b);
    }

    #[test]
    fn a_key_is_refused_without_the_parts_the_policy_requires() {
        let rule = IdempotentOperation {
            dependency: None,
            key: vec![IdempotencyKeyPart::WorkflowRunId, IdempotencyKeyPart::Node],
            on_payload_mismatch: KeyReuse::Reject,
            retention_ms: 1000,
        };
        let err = KeyBuilder::new().run("r1").build_for(&rule).unwrap_err();
        assert_eq!(err.missing, vec![IdempotencyKeyPart::Node]);
        let key = KeyBuilder::new()
            .run("r1")
            .node("close_case")
            .request("ignored")
            .build_for(&rule)
            .unwrap();
        assert_eq!(key.as_str(), "workflow_run_id=2:r1;node=10:close_case;");
    }
}
