//! Policy distribution: which version each instance should run, and telling
//! every open agent stream the moment that changes.
//!
//! Each service has a `watch` channel holding a [`Snapshot`] of its rollout
//! (active version, canary version and share), with each envelope already
//! serialised. A change loads the snapshot from the store once per replica and
//! every stream re-reads it from memory, so a publish reaches a thousand
//! streams with one query. Across replicas on Postgres, a change is announced
//! with `NOTIFY ballast_policy` and every replica's listener reloads.

use crate::store::{Heard, Store, StoreResult};
use sha2::{Digest, Sha256};
use shared::policy::Policy;
use shared::protocol::PolicyEnvelope;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// The Postgres channel that carries policy changes between replicas.
pub const NOTIFY_CHANNEL: &str = "ballast_policy";

/// One published version, ready to send.
#[derive(Debug)]
pub struct Published {
    /// The version.
    pub version: u64,
    /// The content hash, unquoted.
    pub etag: String,
    /// The envelope as JSON, serialised once for every reader.
    pub json: Arc<str>,
    /// What the policy calls its components, for the live view, which
    /// classifies agents' rows many times a second.
    pub components: crate::telemetry::components::Components,
    /// The daily cost budget (`limits.cost_per_tenant_per_day_usd_micros`),
    /// for the alert evaluator, which reads it every few seconds.
    pub cost_budget_usd_micros: Option<u64>,
    /// When the version was published, Unix milliseconds: a canary's start.
    pub published_at_ms: i64,
    /// The policy's goals (its objectives and canary analysis), for the
    /// evaluator, which reads them every few seconds.
    pub goals: shared::policy::Goals,
}

/// A service's rollout, resolved.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// What instances outside the canary run.
    pub active: Option<Arc<Published>>,
    /// The canary version and the share of instances (1–99) that run it.
    pub canary: Option<(Arc<Published>, u8)>,
}

impl Snapshot {
    /// The version `instance_id` should run.
    pub fn for_instance(&self, instance_id: &str) -> Option<&Arc<Published>> {
        match &self.canary {
            Some((canary, percent)) if canary_bucket(instance_id) < *percent => Some(canary),
            _ => self.active.as_ref(),
        }
    }
}

/// The instance's canary bucket, 0–99: the first 8 bytes of SHA-256 of its
/// id, big-endian, modulo 100. Stable across restarts, replicas and agent
/// languages, so an instance stays in or out of a canary as its share grows.
pub fn canary_bucket(instance_id: &str) -> u8 {
    let digest = Sha256::digest(instance_id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % 100) as u8
}

/// The content hash of a policy document: what the ETag is made of.
pub fn document_etag(document_json: &str) -> String {
    hex::encode(&Sha256::digest(document_json.as_bytes())[..12])
}

/// Per-service snapshots and their subscribers.
#[derive(Debug)]
pub struct PolicyHub {
    store: Store,
    channels: Mutex<HashMap<i64, watch::Sender<Arc<Snapshot>>>>,
    /// (name, environment) → id. Services are never deleted or renamed, so
    /// a found id stays right; a miss is not cached.
    ids: Mutex<HashMap<(String, String), i64>>,
    /// Names this replica in its NOTIFY payloads, so that it does not reload
    /// a change twice when its own notification comes back.
    origin: String,
}

impl PolicyHub {
    /// A hub over `store`. On Postgres, call [`PolicyHub::listen`] too.
    pub fn new(store: Store) -> PolicyHub {
        PolicyHub {
            store,
            channels: Mutex::new(HashMap::new()),
            ids: Mutex::new(HashMap::new()),
            origin: crate::auth::random_hex(8),
        }
    }

    /// The id of a service, from memory after the first look-up.
    pub async fn service_id(&self, name: &str, environment: &str) -> StoreResult<Option<i64>> {
        let key = (name.to_owned(), environment.to_owned());
        if let Some(id) = self.ids.lock().expect("hub lock").get(&key) {
            return Ok(Some(*id));
        }
        let Some(row) = self.store.service(name, environment).await? else {
            return Ok(None);
        };
        self.ids.lock().expect("hub lock").insert(key, row.id);
        Ok(Some(row.id))
    }

    /// Subscribes to a service's snapshot, loading it on first use.
    pub async fn subscribe(&self, service_id: i64) -> StoreResult<watch::Receiver<Arc<Snapshot>>> {
        if let Some(tx) = self.channels.lock().expect("hub lock").get(&service_id) {
            return Ok(tx.subscribe());
        }
        let snapshot = Arc::new(self.load(service_id).await?);
        let mut channels = self.channels.lock().expect("hub lock");
        // Another request may have loaded it meanwhile; keep the first.
        let tx = channels
            .entry(service_id)
            .or_insert_with(|| watch::channel(snapshot).0);
        Ok(tx.subscribe())
    }

    /// The current snapshot of a service.
    pub async fn snapshot(&self, service_id: i64) -> StoreResult<Arc<Snapshot>> {
        Ok(self.subscribe(service_id).await?.borrow().clone())
    }

    /// Reloads a service from the store and wakes its subscribers. Called
    /// after every change to the service's rollout, here and (via NOTIFY) on
    /// every other replica.
    pub async fn refresh(&self, service_id: i64) -> StoreResult<()> {
        let known = self
            .channels
            .lock()
            .expect("hub lock")
            .contains_key(&service_id);
        if !known {
            // Nobody here has asked for it yet; the first subscriber loads it.
            return Ok(());
        }
        let snapshot = Arc::new(self.load(service_id).await?);
        if let Some(tx) = self.channels.lock().expect("hub lock").get(&service_id) {
            tx.send_replace(snapshot);
        }
        Ok(())
    }

    /// Announces a change: reloads here and tells the other replicas.
    pub async fn changed(&self, service_id: i64) -> StoreResult<()> {
        self.store
            .notify(NOTIFY_CHANNEL, &format!("{service_id}:{}", self.origin))
            .await?;
        self.refresh(service_id).await
    }

    async fn refresh_all(&self) {
        let ids: Vec<i64> = self
            .channels
            .lock()
            .expect("hub lock")
            .keys()
            .copied()
            .collect();
        for id in ids {
            if let Err(e) = self.refresh(id).await {
                tracing::warn!(service_id = id, error = %e, "could not reload a policy snapshot");
            }
        }
    }

    async fn load(&self, service_id: i64) -> StoreResult<Snapshot> {
        let rollout = self.store.rollout(service_id).await?;
        let Some(service) = self.store.service_by_id(service_id).await? else {
            return Ok(Snapshot::default());
        };
        let published = |version: Option<i64>| {
            let store = &self.store;
            let service = &service;
            async move {
                let Some(v) = version else { return Ok(None) };
                let Some(row) = store.version(service_id, v).await? else {
                    return Ok(None);
                };
                let policy = Policy::from_json(&row.document).map_err(|e| {
                    crate::store::StoreError::Corrupt(format!(
                        "stored policy version {v} does not parse: {e}"
                    ))
                })?;
                let envelope = PolicyEnvelope {
                    service: service.name.clone(),
                    environment: service.environment.clone(),
                    version: v as u64,
                    etag: row.etag.clone(),
                    published_at_ms: row.created_at,
                    policy,
                };
                let json = serde_json::to_string(&envelope)
                    .map_err(|e| crate::store::StoreError::Corrupt(e.to_string()))?;
                Ok::<_, crate::store::StoreError>(Some(Arc::new(Published {
                    version: v as u64,
                    etag: row.etag,
                    json: json.into(),
                    components: crate::telemetry::components::Components::of(&envelope.policy),
                    cost_budget_usd_micros: envelope
                        .policy
                        .limits
                        .as_ref()
                        .and_then(|l| l.cost_per_tenant_per_day_usd_micros),
                    published_at_ms: row.created_at,
                    goals: envelope.policy.goals.clone().unwrap_or_default(),
                })))
            }
        };
        let active = published(rollout.active_version).await?;
        let canary = match (
            published(rollout.canary_version).await?,
            rollout.canary_percent,
        ) {
            (Some(p), Some(percent)) => Some((p, percent.clamp(1, 99) as u8)),
            _ => None,
        };
        Ok(Snapshot { active, canary })
    }

    /// On Postgres: listens for other replicas' changes for as long as the
    /// process runs, reconnecting with backoff, and reloads everything after
    /// each (re)connect so that nothing said while disconnected is missed.
    pub fn listen(self: &Arc<Self>) {
        let hub = Arc::downgrade(self);
        self.store.listen(NOTIFY_CHANNEL, move |heard| {
            let hub = hub.clone();
            async move {
                let Some(hub) = hub.upgrade() else {
                    return false;
                };
                match heard {
                    Heard::Connected => hub.refresh_all().await,
                    Heard::Message(payload) => {
                        // "service_id:origin"; this replica already
                        // reloaded its own changes in `changed`.
                        let (id, origin) = payload.split_once(':').unwrap_or((&payload, ""));
                        if origin != hub.origin
                            && let Ok(id) = id.parse::<i64>()
                            && let Err(e) = hub.refresh(id).await
                        {
                            tracing::warn!(service_id = id, error = %e, "could not reload after NOTIFY");
                        }
                    }
                }
                true
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canary_buckets_are_stable_and_spread() {
        assert_eq!(canary_bucket("instance-1"), canary_bucket("instance-1"));
        let mut counts = [0u32; 10];
        for i in 0..10_000 {
            counts[canary_bucket(&format!("pod-{i}")) as usize / 10] += 1;
        }
        // Each tenth of the buckets gets about a tenth of the instances.
        for c in counts {
            assert!((800..1200).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn the_canary_takes_only_its_share() {
        let p = |v| {
            Arc::new(Published {
                version: v,
                etag: format!("e{v}"),
                json: "{}".into(),
                components: Default::default(),
                cost_budget_usd_micros: None,
                published_at_ms: 0,
                goals: Default::default(),
            })
        };
        let snap = Snapshot {
            active: Some(p(1)),
            canary: Some((p(2), 25)),
        };
        let in_canary = (0..4000)
            .filter(|i| snap.for_instance(&format!("i-{i}")).unwrap().version == 2)
            .count();
        assert!((800..1200).contains(&in_canary), "{in_canary}");
        for i in 0..100 {
            let id = format!("i-{i}");
            let expected = if canary_bucket(&id) < 25 { 2 } else { 1 };
            assert_eq!(snap.for_instance(&id).unwrap().version, expected);
        }
    }
}
