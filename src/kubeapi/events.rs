//! The store plus the watch event hub: every write the engine makes goes through [`Db::commit`],
//! which turns the committed mutations into ADDED/MODIFIED/DELETED events, keeps a bounded
//! history of them (to resume a watch from a resourceVersion, or answer "too old"), and
//! broadcasts them to open watches. The hub lock is not held across the store's commit (which
//! may batch and fsync): each commit takes a ticket while the store runs it (so tickets follow
//! resourceVersion order) and publishes it from the store's hook once the outcome is known (on
//! the request's task, or on a log worker when the request has gone away), through a reorder
//! buffer, so events reach watchers in resourceVersion order. A ticket whose commit never learns
//! its outcome is published empty when dropped, so it cannot stall later events. A watch
//! starting from the current state may also get events of commits already in that state;
//! watchers drop events at or below their version.

use super::object::{Namespace, Phase, Secret};
use super::status::ApiError;
use super::store::{Change, Hook, Mutation, Store, View, key};
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::broadcast;

/// How many events are kept for resuming watches (the watch cache's history window).
pub const HISTORY: usize = 1024;
/// How many events an open watch may lag behind before it is closed.
const CHANNEL: usize = 1024;
/// How long a read asking for a resourceVersion the store has not reached waits for it, as the
/// watch cache does (`blockTimeout`) [docs/kubernetes-api.md §2.6].
const FRESHNESS_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

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
    /// The next ticket to publish, and finished commits waiting for earlier ones.
    next: u64,
    pending: BTreeMap<u64, Vec<Event>>,
    /// Bumped after every publication: reads waiting for a resourceVersion look again.
    published: tokio::sync::watch::Sender<()>,
}

/// What a new watch starts from.
pub struct Subscription {
    pub view: View,
    /// Events after the requested resourceVersion (empty when starting from `view`).
    pub backlog: Vec<Event>,
    pub rx: broadcast::Receiver<Event>,
    /// Becomes true when the server shuts down: open watches end then.
    pub closing: tokio::sync::watch::Receiver<bool>,
}

pub struct Db {
    store: Store,
    hub: Arc<Mutex<Hub>>,
    tickets: AtomicU64,
    closing: tokio::sync::watch::Sender<bool>,
}

impl Db {
    pub fn new(store: Store) -> Db {
        let floor = store.read().rv;
        Db {
            store,
            hub: Arc::new(Mutex::new(Hub {
                history: VecDeque::new(),
                floor,
                tx: broadcast::channel(CHANNEL).0,
                next: 0,
                pending: BTreeMap::new(),
                published: tokio::sync::watch::Sender::new(()),
            })),
            tickets: AtomicU64::new(0),
            closing: tokio::sync::watch::Sender::new(false),
        }
    }

    fn hub(&self) -> MutexGuard<'_, Hub> {
        lock(&self.hub)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn read(&self) -> View {
        self.store.read()
    }

    /// Commits through [`Store::stage`] at once (validation and ordering happen in this call)
    /// and returns a future that resolves once the write is durable; the events of what was
    /// committed are published by then.
    pub fn commit<R>(
        &self,
        f: impl FnOnce(&View, u64) -> Result<(Vec<Mutation>, R), ApiError>,
    ) -> impl Future<Output = Result<R, ApiError>> {
        let staged = self.store.stage(|view, rv| {
            let (mutations, result) = f(view, rv)?;
            let then = (!mutations.is_empty())
                .then(|| self.ticket(events_for(view, rv, &mutations)).into_hook());
            Ok(Change {
                mutations,
                result,
                then,
            })
        });
        async move { staged?.durable().await }
    }

    /// [`Db::commit`], blocking the calling thread until durable: for code outside async tasks.
    pub fn commit_blocking<R>(
        &self,
        f: impl FnOnce(&View, u64) -> Result<(Vec<Mutation>, R), ApiError>,
    ) -> Result<R, ApiError> {
        super::store::block_on(self.commit(f))
    }

    /// Takes the next place in the publication order for a commit's events.
    fn ticket(&self, events: Vec<Event>) -> Ticket {
        Ticket {
            hub: self.hub.clone(),
            number: self.tickets.fetch_add(1, Ordering::SeqCst),
            events,
            succeeded: false,
        }
    }

    #[cfg(test)]
    fn publish(&self, ticket: u64, events: Vec<Event>) {
        publish(&self.hub, ticket, events);
    }

    /// Waits up to [`FRESHNESS_WAIT`] for the store to reach resourceVersion `rv` (a read asking
    /// for state at least that new); then 504 `Too large resource version`.
    pub async fn reach(&self, rv: u64) -> Result<(), ApiError> {
        let mut published = self.hub().published.subscribe();
        let reached = tokio::time::timeout(
            FRESHNESS_WAIT,
            published.wait_for(|()| self.store.read().rv >= rv),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        if reached {
            return Ok(());
        }
        Err(ApiError::resource_version_too_large(
            rv,
            self.store.read().rv,
        ))
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
            closing: self.closing.subscribe(),
        })
    }

    /// Ends every open watch, and every watch opened from now on once it has sent its
    /// initial events (the server is shutting down; clients re-list or resume elsewhere).
    pub fn end_watches(&self) {
        self.closing.send_replace(true);
    }

    /// Forgets the event history, as etcd compaction would: resuming older watches gets 410.
    pub fn compact(&self) {
        let mut hub = self.hub();
        hub.history.clear();
        hub.floor = self.store.read().rv;
    }
}

/// A commit's place in the publication order. It is published exactly once, when it is
/// dropped: with the commit's events if the commit succeeded, with none if it failed, and with
/// none if it never learnt an outcome (its hook dropped uncalled, as when a panic abandons a
/// commit), so that one lost commit cannot hold back every later event.
struct Ticket {
    hub: Arc<Mutex<Hub>>,
    number: u64,
    events: Vec<Event>,
    /// Set by the hook when the commit succeeded; only then are the events published.
    succeeded: bool,
}

impl Ticket {
    /// The store hook that settles this ticket with the commit's outcome.
    fn into_hook(self) -> Hook {
        Box::new(move |ok: bool| {
            let mut ticket = self;
            ticket.succeeded = ok;
        })
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let events = if self.succeeded {
            std::mem::take(&mut self.events)
        } else {
            Vec::new()
        };
        publish(&self.hub, self.number, events);
    }
}

fn lock(hub: &Mutex<Hub>) -> MutexGuard<'_, Hub> {
    hub.lock().unwrap_or_else(|p| p.into_inner())
}

/// Hands a commit's events to the hub; they reach watchers once every earlier ticket has.
fn publish(hub: &Mutex<Hub>, ticket: u64, events: Vec<Event>) {
    let mut hub = lock(hub);
    hub.pending.insert(ticket, events);
    loop {
        let next = hub.next;
        let Some(ready) = hub.pending.remove(&next) else {
            break;
        };
        hub.next += 1;
        for event in ready {
            if hub.history.len() == HISTORY
                && let Some(dropped) = hub.history.pop_front()
            {
                hub.floor = dropped.rv;
            }
            hub.history.push_back(event.clone());
            let _ = hub.tx.send(event);
        }
    }
    hub.published.send_replace(());
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

#[cfg(test)]
mod tests {
    use super::super::store::Durability;
    use super::*;

    fn event(rv: u64) -> Event {
        Event {
            rv,
            kind: EventType::Added,
            object: Object::Secret(Arc::new(Secret::default())),
            previous: None,
        }
    }

    #[test]
    fn commits_finishing_out_of_order_are_published_in_ticket_order() {
        let db = Db::new(Store::open(&Durability::Memory).unwrap());
        let mut sub = db.subscribe(None).unwrap();
        db.publish(1, vec![event(1020)]);
        assert!(sub.rx.try_recv().is_err(), "ticket 1 waits for ticket 0");
        db.publish(0, vec![event(1010)]);
        assert_eq!(sub.rx.try_recv().unwrap().rv, 1010);
        assert_eq!(sub.rx.try_recv().unwrap().rv, 1020);
        // A failed commit (no events) still lets later tickets through.
        db.publish(3, vec![event(1040)]);
        db.publish(2, vec![]);
        assert_eq!(sub.rx.try_recv().unwrap().rv, 1040);
        let from = db.subscribe(Some(1010)).unwrap();
        let rvs: Vec<u64> = from.backlog.iter().map(|e| e.rv).collect();
        assert_eq!(rvs, [1020, 1040]);
    }

    /// A commit whose hook is dropped without being called (abandoned by a panic between
    /// staging and the log) used to keep its ticket unpublished forever, and with it every
    /// later event from every watch.
    #[test]
    fn a_commit_abandoned_without_an_outcome_does_not_hold_back_later_events() {
        let db = Db::new(Store::open(&Durability::Memory).unwrap());
        let mut sub = db.subscribe(None).unwrap();
        let abandoned = db.ticket(vec![event(1010)]).into_hook();
        let failed = db.ticket(vec![event(1020)]).into_hook();
        let succeeded = db.ticket(vec![event(1030)]).into_hook();
        succeeded(true);
        failed(false);
        assert!(sub.rx.try_recv().is_err(), "ticket 2 waits for ticket 0");
        drop(abandoned);
        assert_eq!(
            sub.rx.try_recv().unwrap().rv,
            1030,
            "nothing of 1010 or 1020"
        );
        assert!(sub.rx.try_recv().is_err());
    }
}
