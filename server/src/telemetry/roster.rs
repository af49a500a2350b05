//! The fleet's roster, in memory: every registered service and the last
//! heartbeat of each instance heard from in the last day. The fleet view
//! (the overview page, `GET /api/v1/fleet/live`, and the live feed, which
//! recomputes it four times a second while anyone watches) reads it instead
//! of querying the store each time: those two queries were most of the
//! overview's render time.
//!
//! The store stays the record; the roster is a copy that can only be behind
//! it, and only by what other replicas did:
//! - it is loaded from the store before it is first read (and at start, by
//!   the refresh task);
//! - what this replica handles goes in at once, after the store accepted it:
//!   a registration, a heartbeat, a telemetry batch (which names its
//!   service);
//! - every [`crate::app::Settings::fleet_refresh`] it is merged with the
//!   store again, which brings in what other replicas on the same PostgreSQL
//!   recorded. Agents heartbeat every 10 s and an instance counts as up for
//!   15 s, so a refresh every 2 s keeps an instance that heartbeats only to
//!   another replica up here too.
//!
//! Policy versions are not kept here: the fleet view reads them from the
//! policy hub, which reloads on every publish, here and (NOTIFY) elsewhere.
//!
//! A merge never moves an instance back in time: a heartbeat that arrived
//! here while a refresh was reading the store must not be undone by the
//! older row that refresh read. Services are never deleted or renamed, so
//! the merge only adds them.

use crate::policy::instances::FORGET_MS;
use crate::store::{InstanceRow, Store, StoreResult};
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use tokio::sync::OnceCell;

#[derive(Debug, Default)]
struct State {
    /// By (name, environment, id): the order the fleet view lists them in.
    order: BTreeSet<(String, String, i64)>,
    /// Service id → instance id → its last heartbeat.
    instances: HashMap<i64, HashMap<String, InstanceRow>>,
}

impl State {
    fn add_service(&mut self, id: i64, name: &str, environment: &str) {
        // The heartbeat path calls this for every beat: look before
        // allocating the key.
        if self.instances.contains_key(&id) {
            return;
        }
        self.instances.insert(id, HashMap::new());
        self.order
            .insert((name.to_owned(), environment.to_owned(), id));
    }

    fn add_instance(&mut self, service_id: i64, row: InstanceRow) {
        let known = self.instances.entry(service_id).or_default();
        match known.get_mut(&row.instance_id) {
            Some(old) if old.last_seen_at > row.last_seen_at => {}
            Some(old) => *old = row,
            None => {
                known.insert(row.instance_id.clone(), row);
            }
        }
    }
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct Roster {
    state: Mutex<State>,
    loaded: OnceCell<()>,
}

impl Roster {
    /// Makes sure the roster has been loaded from the store once; the first
    /// caller loads it, concurrent ones wait for that load. A failed load
    /// is tried again by the next caller.
    pub async fn ensure_loaded(&self, store: &Store, now_ms: i64) -> StoreResult<()> {
        self.loaded
            .get_or_try_init(|| self.read_store(store, now_ms))
            .await?;
        Ok(())
    }

    /// Merges the store's services and instances into the roster, and
    /// forgets instances silent for a day.
    pub async fn refresh(&self, store: &Store, now_ms: i64) -> StoreResult<()> {
        self.read_store(store, now_ms).await?;
        // Loaded now, if it was not yet: a waiting first reader need not
        // read the store again.
        let _ = self.loaded.set(());
        Ok(())
    }

    async fn read_store(&self, store: &Store, now_ms: i64) -> StoreResult<()> {
        // Services first: an instance row of a service registered between
        // the two queries is kept, and its service comes with the next
        // refresh (or this replica's next beat of it).
        let services = store.list_services().await?;
        let instances = store.all_instances(now_ms - FORGET_MS).await?;
        let mut state = self.state.lock().expect("roster lock");
        for s in services {
            state.add_service(s.id, &s.name, &s.environment);
        }
        for row in instances {
            state.add_instance(row.service_id, row.instance);
        }
        for known in state.instances.values_mut() {
            known.retain(|_, row| row.last_seen_at >= now_ms - FORGET_MS);
        }
        Ok(())
    }

    /// A service this replica registered, or learnt of from its agent.
    pub fn service(&self, id: i64, name: &str, environment: &str) {
        self.state
            .lock()
            .expect("roster lock")
            .add_service(id, name, environment);
    }

    /// A heartbeat this replica stored.
    pub fn heartbeat(&self, service_id: i64, name: &str, environment: &str, row: InstanceRow) {
        let mut state = self.state.lock().expect("roster lock");
        state.add_service(service_id, name, environment);
        state.add_instance(service_id, row);
    }

    /// Every service by name and environment, each with its instances heard
    /// from since `since_ms` (in no particular order), passed to `read`
    /// under the roster's lock.
    pub fn read<T>(
        &self,
        since_ms: i64,
        read: impl FnOnce(&mut dyn Iterator<Item = (RosterView<'_>, Vec<&InstanceRow>)>) -> T,
    ) -> T {
        let state = self.state.lock().expect("roster lock");
        let mut services = state.order.iter().map(|(name, environment, id)| {
            let instances = state
                .instances
                .get(id)
                .into_iter()
                .flat_map(HashMap::values)
                .filter(|row| row.last_seen_at >= since_ms)
                .collect();
            (
                RosterView {
                    id: *id,
                    name,
                    environment,
                },
                instances,
            )
        });
        read(&mut services)
    }
}

/// A service, borrowed from the roster while it is read.
#[derive(Debug, Clone, Copy)]
pub struct RosterView<'a> {
    /// Store id.
    pub id: i64,
    /// Name.
    pub name: &'a str,
    /// Environment.
    pub environment: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(instance: &str, at: i64, version: Option<i64>) -> InstanceRow {
        InstanceRow {
            instance_id: instance.into(),
            agent_version: "0.1.0".into(),
            policy_version: version,
            policy_source: "server".into(),
            started_at: 0,
            last_seen_at: at,
            refused: Default::default(),
        }
    }

    /// (instance, last seen, policy version), sorted.
    type Seen = Vec<(String, i64, Option<i64>)>;

    /// Each service as "name/environment" with its instances.
    fn seen(roster: &Roster, since: i64) -> Vec<(String, Seen)> {
        roster.read(since, |services| {
            services
                .map(|(s, rows)| {
                    let mut rows: Vec<_> = rows
                        .iter()
                        .map(|r| (r.instance_id.clone(), r.last_seen_at, r.policy_version))
                        .collect();
                    rows.sort();
                    (format!("{}/{}", s.name, s.environment), rows)
                })
                .collect()
        })
    }

    #[test]
    fn services_are_listed_by_name_then_environment() {
        let roster = Roster::default();
        roster.service(3, "rag", "prod");
        roster.service(1, "rag", "dev");
        roster.heartbeat(2, "billing", "prod", beat("pod-1", 10, None));
        // Learnt again from a later beat: still one entry.
        roster.heartbeat(2, "billing", "prod", beat("pod-1", 20, None));
        let names: Vec<_> = seen(&roster, 0).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["billing/prod", "rag/dev", "rag/prod"]);
    }

    #[test]
    fn an_older_row_never_replaces_a_newer_heartbeat() {
        let roster = Roster::default();
        roster.heartbeat(1, "rag", "prod", beat("pod-1", 200, Some(2)));
        // What a refresh that read the store before that beat would bring.
        roster
            .state
            .lock()
            .unwrap()
            .add_instance(1, beat("pod-1", 100, Some(1)));
        roster
            .state
            .lock()
            .unwrap()
            .add_instance(1, beat("pod-2", 150, None));
        assert_eq!(
            seen(&roster, 0),
            [(
                "rag/prod".to_owned(),
                vec![("pod-1".into(), 200, Some(2)), ("pod-2".into(), 150, None)]
            )]
        );
        // A newer row from elsewhere does replace it.
        roster
            .state
            .lock()
            .unwrap()
            .add_instance(1, beat("pod-1", 300, Some(3)));
        assert_eq!(seen(&roster, 0)[0].1[0], ("pod-1".into(), 300, Some(3)));
        // Reads leave out what is older than asked for.
        assert_eq!(seen(&roster, 160)[0].1, [("pod-1".into(), 300, Some(3))]);
    }
}
