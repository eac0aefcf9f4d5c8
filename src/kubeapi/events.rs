//! The store plus the watch event hub: every write the engine makes goes through [`Db::commit`],
//! which turns the committed mutations into ADDED/MODIFIED/DELETED events, keeps a bounded
//! history of them (to resume a watch from a resourceVersion, or answer "too old"), and
//! broadcasts them to open watches. Publishing happens under the hub lock that also covers the
//! commit, so events reach watchers in resourceVersion order and a watch opened between two
//! commits sees exactly the events after the state it started from.

use super::object::{Namespace, Phase, Secret};
use super::status::ApiError;
use super::store::{Mutation, Store, View, key};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::broadcast;

/// How many events are kept for resuming watches (the watch cache's history window).
pub const HISTORY: usize = 1024;
/// How many events an open watch may lag behind before it is closed.
const CHANNEL: usize = 1024;

#[derive(Clone, Debug)]
pub enum Object {
    Secret(Arc<Secret>),
    Namespace(Arc<Namespace>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One committed change: the object after it (for DELETED, its last state at the deletion's
/// resourceVersion) and, for MODIFIED, the object before (so a selector can turn the event into
/// ADDED or DELETED for a watcher the object enters or leaves).
#[derive(Clone, Debug)]
pub struct Event {
    pub rv: u64,
    pub kind: EventType,
    pub object: Object,
    pub previous: Option<Object>,
}

struct Hub {
    history: VecDeque<Event>,
    /// Every event with a resourceVersion above this is in `history`.
    floor: u64,
    tx: broadcast::Sender<Event>,
}

/// What a new watch starts from.
pub struct Subscription {
    pub view: View,
    /// Events after the requested resourceVersion (empty when starting from `view`).
    pub backlog: Vec<Event>,
    pub rx: broadcast::Receiver<Event>,
}

pub struct Db {
    store: Store,
    hub: Mutex<Hub>,
}

impl Db {
    pub fn new(store: Store) -> Db {
        let floor = store.read().rv;
        Db {
            store,
            hub: Mutex::new(Hub {
                history: VecDeque::new(),
                floor,
                tx: broadcast::channel(CHANNEL).0,
            }),
        }
    }

    fn hub(&self) -> MutexGuard<'_, Hub> {
        self.hub.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn read(&self) -> View {
        self.store.read()
    }

    /// [`Store::commit`], publishing the events of what was committed.
    pub fn commit<R>(
        &self,
        f: impl FnOnce(&View, u64) -> Result<(Vec<Mutation>, R), ApiError>,
    ) -> Result<R, ApiError> {
        let mut hub = self.hub();
        let mut events = Vec::new();
        let result = self.store.commit(|view, rv| {
            let (mutations, result) = f(view, rv)?;
            events = events_for(view, rv, &mutations);
            Ok((mutations, result))
        })?;
        for event in events {
            if hub.history.len() == HISTORY
                && let Some(dropped) = hub.history.pop_front()
            {
                hub.floor = dropped.rv;
            }
            hub.history.push_back(event.clone());
            let _ = hub.tx.send(event);
        }
        Ok(result)
    }

    /// Opens a watch: from the current state (`since == None`), or from the events after
    /// `since`; `Err(floor)` when those events are no longer kept.
    pub fn subscribe(&self, since: Option<u64>) -> Result<Subscription, u64> {
        let hub = self.hub();
        let view = self.store.read();
        let backlog = match since {
            None => Vec::new(),
            Some(rv) if rv < hub.floor => return Err(hub.floor),
            Some(rv) => hub.history.iter().filter(|e| e.rv > rv).cloned().collect(),
        };
        Ok(Subscription {
            view,
            backlog,
            rx: hub.tx.subscribe(),
        })
    }

    /// Forgets the event history, as etcd compaction would: resuming older watches gets 410.
    pub fn compact(&self) {
        let mut hub = self.hub();
        hub.history.clear();
        hub.floor = self.store.read().rv;
    }
}

fn live_namespace(view: &View, name: &str) -> Option<Arc<Namespace>> {
    view.namespaces
        .get(name)
        .filter(|n| n.phase != Phase::Gone)
        .cloned()
}

fn events_for(view: &View, rv: u64, mutations: &[Mutation]) -> Vec<Event> {
    mutations
        .iter()
        .filter_map(|m| match m {
            Mutation::PutSecret(s) => {
                let previous = view
                    .secrets
                    .get(&key(&s.meta.namespace, &s.meta.name))
                    .cloned();
                Some(Event {
                    rv,
                    kind: if previous.is_some() {
                        EventType::Modified
                    } else {
                        EventType::Added
                    },
                    object: Object::Secret(Arc::new(s.clone())),
                    previous: previous.map(Object::Secret),
                })
            }
            Mutation::DeleteSecret(k) => view.secrets.get(k).map(|old| {
                let mut last = (**old).clone();
                last.meta.resource_version = rv.to_string();
                Event {
                    rv,
                    kind: EventType::Deleted,
                    object: Object::Secret(Arc::new(last)),
                    previous: None,
                }
            }),
            Mutation::PutNamespace(ns) => {
                let previous = live_namespace(view, &ns.meta.name);
                match (ns.phase, previous) {
                    (Phase::Gone, None) => None,
                    (Phase::Gone, Some(old)) => {
                        let mut last = (*old).clone();
                        last.meta.resource_version = rv.to_string();
                        Some(Event {
                            rv,
                            kind: EventType::Deleted,
                            object: Object::Namespace(Arc::new(last)),
                            previous: None,
                        })
                    }
                    (_, previous) => Some(Event {
                        rv,
                        kind: if previous.is_some() {
                            EventType::Modified
                        } else {
                            EventType::Added
                        },
                        object: Object::Namespace(Arc::new(ns.clone())),
                        previous: previous.map(Object::Namespace),
                    }),
                }
            }
        })
        .collect()
}
