//! The versioned object store behind the engine: one global, only-growing resourceVersion,
//! persistent maps (cheap snapshots for consistent paged lists), and optional durability.
//!
//! Durability design. A commit validates against the newest state (including writes still on their
//! way to disk), encodes its log record and queues it for the store's log workers, in
//! resourceVersion order, under the state lock; it then waits, off the lock, for the answer:
//! asynchronously ([`Pending::durable`], a oneshot channel), so a waiting request holds no runtime
//! worker while the fsync runs. A log worker (one of [`SYNCERS`] threads) takes every record queued
//! so far, writes them with one write under the log lock (so the log keeps commit order), then
//! fdatasyncs the segment itself (group commit: concurrent writers share an fsync). Records staged
//! while a sync runs wait for it to end and share the next write, unless [`OVERLAP_AT`] of them are
//! waiting: then another worker starts a sync alongside (up to [`SYNCERS`] overlap, for disks slow
//! enough that a queue builds). A sync that returns covers every batch written before it started,
//! so the worker that completes it publishes the resulting state to readers and acknowledges every
//! covered commit, oldest first, however the overlapping syncs finish among themselves; the answer
//! carries the commit's hook (the engine publishes its watch events there), which the request's
//! task runs before it goes on, and what the commit allocated, freed there too. Readers only ever
//! see fsynced state and never wait for an fsync. A failed append is rolled back and fails every
//! write queued on top of it (their state is discarded); a failed sync cuts the log back to its
//! last durable byte and fails every write after it (results of syncs begun before the cut no
//! longer count); if the rollback fails, the store refuses writes until restarted. When the newest
//! log segment grows long, a worker waits until everything written is durable, starts a new
//! segment, and a compaction thread streams a snapshot of the fsynced state, after which the older
//! segments are deleted: no request waits for it. Segments are preallocated with written zeros (see
//! `wal.rs`): the compaction thread (and a thread at open) prepares the next one, so appends do not
//! change the file's size and fdatasync skips the inode. Files: `wal.rs` (the log), `snapshot.rs`,
//! `codec.rs` (record forms), `crypto.rs` (encryption at rest), `files.rs` (permissions, directory
//! fsync).

mod codec;
mod crypto;
mod files;
mod snapshot;
mod wal;

use super::object::{Namespace, Secret};
use super::status::ApiError;
use crypto::Cipher;
use imbl::OrdMap;
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Storage key: `<namespace>/<name>`; its byte order is the API server's list order.
pub type Key = String;

pub fn key(namespace: &str, name: &str) -> Key {
    // Not `format!`: every read builds one, and the formatting machinery costs several times
    // the copy.
    let mut key = String::with_capacity(namespace.len() + 1 + name.len());
    key.push_str(namespace);
    key.push('/');
    key.push_str(name);
    key
}

pub type SecretMap = OrdMap<Key, Arc<Secret>>;

/// A consistent read of the store.
#[derive(Clone)]
pub struct View {
    pub rv: u64,
    pub secrets: SecretMap,
    pub namespaces: OrdMap<String, Arc<Namespace>>,
}

impl View {
    fn empty() -> View {
        View {
            rv: 1000,
            secrets: OrdMap::new(),
            namespaces: OrdMap::new(),
        }
    }
}

/// A change a commit applies.
#[derive(Clone, Debug)]
pub enum Mutation {
    PutSecret(Secret),
    DeleteSecret(Key),
    PutNamespace(Namespace),
}

/// How many list snapshots are kept for continue tokens, and for how long.
const PAGED_SNAPSHOTS: usize = 256;
const PAGED_RETENTION: Duration = Duration::from_secs(300);
/// Records in the newest log segment that start a compaction.
const COMPACT_AFTER_RECORDS: usize = 4096;

struct Inner {
    /// What readers see: fsynced state only.
    view: View,
    /// The newest state, including writes queued for the log; commits validate against it.
    pending: View,
    paged: VecDeque<(u64, Instant, SecretMap)>,
    /// Set when a failed append could not be rolled back: writes are refused until restart.
    poisoned: Option<String>,
    /// Records staged for the log in commit order, not yet taken by a log worker.
    queued: Vec<Job>,
    /// Log workers waiting for records, and whether one of them has been woken and has not
    /// taken the queue yet (records staged meanwhile need no other worker woken).
    idle: usize,
    waking: bool,
    /// Log workers between taking a batch and completing its sync.
    syncing: usize,
    stopping: bool,
}

struct Shared {
    inner: Mutex<Inner>,
    /// Wakes a log worker: records are queued, or the store is closing.
    work: Condvar,
    /// Log appends (each one write and one fsync), for tests and benchmarks.
    appends: AtomicU64,
    /// How many staged records start a sync alongside a running one ([`OVERLAP_AT`]; tests
    /// lower it to make syncs overlap).
    overlap_at: AtomicUsize,
    #[cfg(test)]
    injection: Mutex<Option<Injection>>,
    /// Held by a test to stop the log workers before they gather a batch.
    #[cfg(test)]
    gate: Mutex<()>,
    /// Run by a log worker before each sync (a test holds or fails chosen syncs with it).
    #[cfg(test)]
    sync_hook: Mutex<Option<SyncHook>>,
}

#[cfg(test)]
type SyncHook = Arc<dyn Fn() -> io::Result<()> + Send + Sync>;

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A write failure to inject into the log (unit tests).
#[cfg(test)]
#[derive(Clone, Debug, Default)]
pub struct Injection {
    /// Writes fail with ENOSPC after writing `partial` bytes.
    pub fail_writes: bool,
    pub partial: usize,
    /// Rolling back fails too.
    pub fail_rollback: bool,
    /// Syncs fail with EIO (the write itself succeeds).
    pub fail_syncs: bool,
    /// Starting a new segment fails with EMFILE.
    pub fail_rotations: bool,
}

/// Run once a commit's outcome is known, outside the store lock: `true` once its mutations
/// are durable and visible to readers, `false` when they were discarded. Runs even when the
/// committing request has gone away, so what it publishes never goes missing.
pub type Hook = Box<dyn FnOnce(bool) + Send>;

/// What a commit's function decides: the mutations to apply, its result, and a hook.
pub struct Change<R> {
    pub mutations: Vec<Mutation>,
    pub result: R,
    /// Run with the outcome when there are mutations; dropped unrun when there are none.
    pub then: Option<Hook>,
}

/// A staged commit: its result, valid once its mutations are durable.
#[must_use = "a staged commit is acknowledged only once it is durable"]
pub struct Pending<R> {
    result: R,
    durable: Option<oneshot::Receiver<Settled>>,
}

impl<R> Pending<R> {
    /// Waits (asynchronously, holding no thread) until the commit is durable.
    pub async fn durable(self) -> Result<R, ApiError> {
        if let Some(answer) = self.durable {
            let settled = answer
                .await
                .map_err(|_| ApiError::internal("the store writer has stopped"))?;
            let outcome = settled
                .outcome
                .as_ref()
                .map_err(|why| ApiError::internal(why));
            outcome?;
            // Dropping it runs the commit's hook, here, before the caller hears of the result.
            drop(settled);
        }
        Ok(self.result)
    }

    /// Blocks the calling thread until the commit is durable: for callers outside async code
    /// (opening an engine, tests). Never call it from a task that must not block.
    pub fn durable_blocking(self) -> Result<R, ApiError> {
        block_on(self.durable())
    }
}

/// Polls a future to completion on the calling thread, parking it between wake-ups. The
/// futures it runs here (a oneshot answered by a log worker) need no runtime.
pub fn block_on<F: Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

/// One record on its way to the log.
struct Job {
    record: Vec<u8>,
    /// The state once this record is durable.
    view: View,
    then: Option<Hook>,
    done: oneshot::Sender<Settled>,
}

impl Job {
    /// Answers the committing request, handing back the hook (still to run) and what the
    /// commit allocated; `replaced` is a published state this answer also carries away.
    fn finish(self, outcome: Result<(), String>, replaced: Option<View>) {
        // When the request has gone away, the answer comes back and is dropped (and its hook
        // run) here.
        let _ = self.done.send(Settled {
            outcome,
            then: self.then,
            _freed_by_receiver: (self.record, self.view, replaced),
        });
    }
}

/// A commit's outcome as a log worker hands it back, with the commit's hook and what the
/// commit allocated: the request's own task runs the hook (the engine's event publication)
/// and frees the rest, on the runtime worker whose malloc arena made them, where freeing them
/// on a log worker contended for that arena's lock (a futex per free, 40% of the durable
/// server's futex calls). The hook runs when this is dropped, wherever that happens, so it
/// runs even when the request has gone away.
struct Settled {
    outcome: Result<(), String>,
    then: Option<Hook>,
    _freed_by_receiver: (Vec<u8>, View, Option<View>),
}

impl Drop for Settled {
    fn drop(&mut self) {
        if let Some(then) = self.then.take() {
            // This may run on a log worker (when the request has gone away): a panicking hook
            // must not take the worker down with the answers it still owes other writes.
            let ok = self.outcome.is_ok();
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| then(ok))).is_err() {
                tracing::error!("a store commit hook panicked");
            }
        }
    }
}

struct Writer {
    workers: Vec<JoinHandle<()>>,
    side: Arc<LogSide>,
}

pub struct Store {
    shared: Arc<Shared>,
    writer: Option<Writer>,
}

/// Where the store keeps its data.
#[derive(Clone, Debug)]
pub enum Durability {
    Memory,
    Directory(PathBuf),
    /// A directory whose records are sealed with the key in `key_file` (32 bytes, base64).
    Encrypted {
        dir: PathBuf,
        key_file: PathBuf,
    },
}

impl Durability {
    /// A directory store, encrypted when a key file is given.
    pub fn on_disk(dir: PathBuf, key_file: Option<PathBuf>) -> Durability {
        match key_file {
            Some(key_file) => Durability::Encrypted { dir, key_file },
            None => Durability::Directory(dir),
        }
    }
}

impl Store {
    /// Opens (or creates) a store. A directory store loads its snapshot and replays its log.
    pub fn open(durability: &Durability) -> io::Result<Self> {
        match durability {
            Durability::Memory => Ok(Store {
                shared: Arc::new(Shared::new(View::empty())),
                writer: None,
            }),
            Durability::Directory(dir) => Self::open_dir(dir, None),
            Durability::Encrypted { dir, key_file } => {
                Self::open_dir(dir, Some(Cipher::from_key_file(key_file)?))
            }
        }
    }

    fn open_dir(dir: &Path, cipher: Option<Cipher>) -> io::Result<Self> {
        files::prepare_dir(dir)?;
        let mut view = View::empty();
        let loaded = snapshot::load(dir, cipher.as_ref(), &mut view)?;
        let replayed = wal::replay(dir, cipher.as_ref(), &mut view)?;
        let mut log = wal::Wal::open(dir, &replayed)?;
        let plain = loaded.plain_records + replayed.plain_records;
        if cipher.is_some() && plain > 0 {
            // A store written in the clear, now given a key: rewrite it sealed before serving.
            let older = log.rotate()?;
            snapshot::write(dir, &view, cipher.as_ref())?;
            remove_segments(dir, &older)?;
            tracing::info!(path = %dir.display(), records = plain, "encrypted the records of a plaintext store");
        }
        let shared = Arc::new(Shared::new(view));
        let spares = Arc::new(Spares {
            dir: dir.to_owned(),
            closing: AtomicBool::new(false),
            warned: AtomicBool::new(false),
        });
        // The first rotation's segment, zero-filled meanwhile (a rotation waits for this
        // thread as for a compaction: until then the current segment simply grows).
        let size = spare_bytes(log.len(), log.records);
        let preparing = {
            let spares = spares.clone();
            std::thread::Builder::new()
                .name("store-spare".into())
                .spawn(move || spares.prepare(size))
                .map_err(|e| tracing::warn!(error = %e, "starting the thread that preallocates the next log segment failed"))
                .ok()
        };
        let side = Arc::new(LogSide {
            log: Mutex::new(Log {
                path: Arc::new(log.path()),
                durable: log.len(),
                wal: log,
                unsynced: VecDeque::new(),
                syncs: 0,
                generation: 0,
                compactor: preparing,
                compact_at: COMPACT_AFTER_RECORDS,
                #[cfg(test)]
                rotations_tried: 0,
                buf: Vec::new(),
                spare: Vec::new(),
            }),
            drained: Condvar::new(),
            dir: dir.to_owned(),
            cipher,
            spares,
        });
        // The store stops its workers when dropped, so it exists before the first spawn.
        let mut store = Store {
            shared,
            writer: Some(Writer {
                workers: Vec::new(),
                side,
            }),
        };
        let writer = store.writer.as_mut().expect("a writer");
        for i in 0..SYNCERS {
            let (shared, side) = (store.shared.clone(), writer.side.clone());
            writer.workers.push(
                std::thread::Builder::new()
                    .name(format!("store-log-{i}"))
                    .spawn(move || log_worker(&shared, &side))?,
            );
        }
        Ok(store)
    }

    /// The current (durable) state; never waits for a disk write.
    pub fn read(&self) -> View {
        self.shared.lock().view.clone()
    }

    /// Why the store refuses writes until it is restarted, if it does: a write failed and the
    /// log could not be rolled back to its last good length, or a log worker stopped.
    pub fn refusing_writes(&self) -> Option<String> {
        self.shared.lock().poisoned.clone()
    }

    /// Runs `f` on the newest state with the resourceVersion the commit will get and stages
    /// the mutations it returns: a memory store applies them at once; a durable one queues
    /// them for the writer, and the returned [`Pending`] resolves once they are fsynced.
    /// Neither waits for the disk here.
    pub fn stage<R>(
        &self,
        f: impl FnOnce(&View, u64) -> Result<Change<R>, ApiError>,
    ) -> Result<Pending<R>, ApiError> {
        let mut inner = self.shared.lock();
        if let Some(why) = &inner.poisoned {
            return Err(ApiError::internal(why));
        }
        let next_rv = inner.pending.rv + 1 + u64::from(rand::random::<u8>() % 3);
        let Change {
            mutations,
            result,
            then,
        } = f(&inner.pending, next_rv)?;
        let done = |result| {
            Ok(Pending {
                result,
                durable: None,
            })
        };
        if mutations.is_empty() {
            return done(result);
        }
        let Some(writer) = &self.writer else {
            apply(&mut inner.pending, next_rv, mutations);
            inner.view = inner.pending.clone();
            drop(inner);
            if let Some(then) = then {
                then(true);
            }
            return done(result);
        };
        let record = codec::encode_record(next_rv, &mutations, writer.side.cipher.as_ref());
        let mut view = inner.pending.clone();
        apply(&mut view, next_rv, mutations);
        let (answer, durable) = oneshot::channel();
        inner.queued.push(Job {
            record,
            view: view.clone(),
            then,
            done: answer,
        });
        inner.pending = view;
        let wake = inner.idle > 0
            && !inner.waking
            && (inner.syncing == 0
                || inner.queued.len() >= self.shared.overlap_at.load(Ordering::Relaxed));
        inner.waking |= wake;
        drop(inner);
        if wake {
            self.shared.work.notify_one();
        }
        Ok(Pending {
            result,
            durable: Some(durable),
        })
    }

    /// [`Store::stage`] without a hook, waiting on the calling thread until the commit is
    /// durable (for code outside async tasks; async callers stage and await).
    pub fn commit<R>(
        &self,
        f: impl FnOnce(&View, u64) -> Result<(Vec<Mutation>, R), ApiError>,
    ) -> Result<R, ApiError> {
        self.stage(|view, rv| {
            let (mutations, result) = f(view, rv)?;
            Ok(Change {
                mutations,
                result,
                then: None,
            })
        })?
        .durable_blocking()
    }

    /// Remembers `snapshot` as the state a paged list was read at.
    pub fn keep_for_paging(&self, rv: u64, snapshot: SecretMap) {
        let mut inner = self.shared.lock();
        let now = Instant::now();
        inner
            .paged
            .retain(|(_, at, _)| now.duration_since(*at) < PAGED_RETENTION);
        if inner.paged.iter().any(|(r, _, _)| *r == rv) {
            return;
        }
        if inner.paged.len() == PAGED_SNAPSHOTS {
            inner.paged.pop_front();
        }
        inner.paged.push_back((rv, now, snapshot));
    }

    /// The snapshot a continue token refers to, if still retained.
    pub fn paged_snapshot(&self, rv: u64) -> Option<SecretMap> {
        let inner = self.shared.lock();
        let now = Instant::now();
        inner
            .paged
            .iter()
            .find(|(r, at, _)| *r == rv && now.duration_since(*at) < PAGED_RETENTION)
            .map(|(_, _, s)| s.clone())
    }

    /// Forgets every list snapshot, as etcd compaction would (continue tokens then expire).
    pub fn compact_history(&self) {
        self.shared.lock().paged.clear();
    }

    /// How many log appends (write + fsync) the store has made; fewer than commits when
    /// concurrent writers shared them.
    pub fn log_appends(&self) -> u64 {
        self.shared.appends.load(Ordering::Relaxed)
    }

    #[cfg(test)]
    pub(super) fn inject(&self, injection: Option<Injection>) {
        *self.shared.injection.lock().unwrap() = injection;
    }

    /// Waits for the log's side work (a compaction, preparing the next segment) to finish.
    #[cfg(test)]
    fn finish_side_work(&self) {
        let side = &self.writer.as_ref().expect("a durable store").side;
        let running = side.lock().compactor.take();
        if let Some(running) = running {
            running.join().unwrap();
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Some(w) = self.writer.as_mut() {
            // The workers write and sync everything queued, then stop.
            self.shared.lock().stopping = true;
            self.shared.work.notify_all();
            for worker in w.workers.drain(..) {
                let _ = worker.join();
            }
            w.side.spares.closing.store(true, Ordering::Relaxed);
            if let Some(compactor) = w.side.lock().compactor.take() {
                let _ = compactor.join();
            }
        }
    }
}

impl Shared {
    fn new(view: View) -> Shared {
        Shared {
            inner: Mutex::new(Inner {
                pending: view.clone(),
                view,
                paged: VecDeque::new(),
                poisoned: None,
                queued: Vec::new(),
                idle: 0,
                waking: false,
                syncing: 0,
                stopping: false,
            }),
            work: Condvar::new(),
            appends: AtomicU64::new(0),
            overlap_at: AtomicUsize::new(OVERLAP_AT),
            #[cfg(test)]
            injection: Mutex::new(None),
            #[cfg(test)]
            gate: Mutex::new(()),
            #[cfg(test)]
            sync_hook: Mutex::new(None),
        }
    }
}

/// How many log workers, and so how many fdatasyncs may be in flight at once. On a shared
/// virtual disk a sync is mostly waiting; overlapping syncs complete several times more often
/// than back-to-back ones (a probe on the project's machine: 1 thread 400-1,500 syncs/s, 2
/// threads 2,600-4,200, 4 threads 4,300-5,700), so a write waits for about one sync instead
/// of the rest of the running one plus its own. UpdateSecret at 16 clients: 3 syncers
/// 0.39-0.41x of memory, 8 and 16 syncers 0.46-0.51x.
const SYNCERS: usize = 8;

/// While a sync runs, records staged meanwhile wait for it and share the next write and sync
/// (taken by the worker whose sync ends, with no wake-up) until this many are waiting; then an
/// idle worker starts another sync alongside. Waking a worker for every record (the earlier
/// rule) overlapped syncs of 2-3 records each: each fdatasync costs the VM some 45-100 us of
/// CPU (its virtio requests; more on a busy host), so at 16 clients that was ~0.5 syncs and
/// ~100 us of server CPU per durable UpdateSecret. Now ~0.3 syncs and ~65-70 us (memory: ~48 us), and durable
/// throughput rose from 13.5-15k to 17-20k req/s in the same runs (2026-12-01, BENCHMARKS.md).
/// A disk slow enough that this many records queue behind one sync still gets overlapping
/// syncs.
const OVERLAP_AT: usize = 16;

/// The log side of a durable store, shared by its workers.
struct LogSide {
    log: Mutex<Log>,
    /// Signalled when nothing written is waiting for a sync (a rotation waits for that).
    drained: Condvar,
    dir: PathBuf,
    cipher: Option<Cipher>,
    spares: Arc<Spares>,
}

/// Preallocates the next log segment (`wal::prepare_spare`), off the request path: on a
/// thread of its own when the store opens, then on the compaction thread after each snapshot.
/// A failure, or too little free space, only means the next segment grows as it is written.
struct Spares {
    dir: PathBuf,
    /// Set when the store closes: a fill in progress is abandoned.
    closing: AtomicBool,
    /// A failure has been logged as a warning (later ones go to debug).
    warned: AtomicBool,
}

/// Test controls for the spares of a data directory: hold their preparation back, or fail it
/// with ENOSPC after some bytes.
#[cfg(test)]
#[derive(Clone, Default)]
struct SpareControl {
    hold: bool,
    fail_after: Option<u64>,
    /// Failures seen and warnings logged.
    failures: usize,
    warnings: usize,
}

#[cfg(test)]
static SPARE_CONTROL: Mutex<Option<std::collections::HashMap<PathBuf, SpareControl>>> =
    Mutex::new(None);

#[cfg(test)]
fn spare_control(dir: &Path, f: impl FnOnce(&mut SpareControl)) -> SpareControl {
    let mut all = SPARE_CONTROL.lock().unwrap_or_else(|p| p.into_inner());
    let c = all
        .get_or_insert_with(Default::default)
        .entry(dir.to_owned())
        .or_default();
    f(c);
    c.clone()
}

impl Spares {
    fn prepare(&self, size: u64) {
        #[cfg(test)]
        while spare_control(&self.dir, |_| ()).hold && !self.closing.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(5));
        }
        #[cfg(test)]
        let fail_after = spare_control(&self.dir, |_| ()).fail_after;
        #[cfg(not(test))]
        let fail_after = None;
        let why = match wal::prepare_spare(&self.dir, size, &self.closing, fail_after) {
            Ok(wal::Spare::NoRoom(free)) => format!("{free} bytes free"),
            Ok(_) => return,
            Err(e) => e.to_string(),
        };
        #[cfg(test)]
        spare_control(&self.dir, |c| {
            c.failures += 1;
            c.warnings += usize::from(!self.warned.load(Ordering::Relaxed));
        });
        if self.warned.swap(true, Ordering::Relaxed) {
            tracing::debug!(error = %why, size, "could not preallocate the next log segment");
        } else {
            tracing::warn!(error = %why, size,
                "could not preallocate the next log segment; it grows as it is written instead \
                 (slower syncs, nothing lost). Warned once");
        }
    }
}

/// Bytes to preallocate for a segment: [`COMPACT_AFTER_RECORDS`] records of the size of the
/// recent ones (`bytes` over `records`), a quarter more for headroom, in whole MiB from 1 to
/// 64 (4 before any record is known). Records that outgrow it extend the file.
fn spare_bytes(bytes: u64, records: usize) -> u64 {
    const MIB: u64 = 1 << 20;
    if records == 0 {
        return 4 * MIB;
    }
    let want = bytes / records as u64 * COMPACT_AFTER_RECORDS as u64 * 5 / 4;
    want.div_ceil(MIB).clamp(1, 64) * MIB
}

impl LogSide {
    fn lock(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Records written but not yet durable, and the syncs in flight. Lock order: `LogSide::log`
/// before `Shared::inner`.
struct Log {
    wal: wal::Wal,
    /// The current segment (each worker syncs it through a descriptor of its own).
    path: Arc<PathBuf>,
    /// Written batches, oldest first, each with the segment length after it.
    unsynced: VecDeque<(u64, Vec<Job>)>,
    /// Segment bytes known durable.
    durable: u64,
    syncs: usize,
    /// Bumped when the segment changes or is cut back: older sync results no longer count.
    generation: u64,
    compactor: Option<JoinHandle<()>>,
    /// The segment's record count that makes a compaction due: [`COMPACT_AFTER_RECORDS`], or
    /// later after a failed attempt (a rotation waits for every sync in flight, so retrying it
    /// on every batch would serialize the log while the failure lasts).
    compact_at: usize,
    /// Rotations attempted (tests).
    #[cfg(test)]
    rotations_tried: usize,
    buf: Vec<u8>,
    /// Emptied batch vectors, kept for reuse.
    spare: Vec<Vec<Job>>,
}

/// A sync a worker owes for the batch it wrote.
struct Owed {
    path: Arc<PathBuf>,
    /// Every byte of the segment below this was written before the sync starts.
    covers: u64,
    generation: u64,
}

/// A log worker (one of [`SYNCERS`]): takes every record queued so far and writes them with
/// one write (under the log lock, so the log keeps commit order), then fdatasyncs the segment
/// through a descriptor of its own (so a writeback error is reported to every worker that
/// syncs after it) and completes the sync itself: publishes and acknowledges, in order, every
/// batch it covers. Records arriving while every worker is busy share the next write.
fn log_worker(shared: &Shared, side: &LogSide) {
    let _stopped = StopGuard(shared);
    let mut own: Option<(Arc<PathBuf>, std::fs::File)> = None;
    loop {
        {
            let mut inner = shared.lock();
            while inner.queued.is_empty() && !inner.stopping {
                inner.idle += 1;
                inner = shared.work.wait(inner).unwrap_or_else(|p| p.into_inner());
                inner.idle -= 1;
            }
            if inner.queued.is_empty() {
                return; // stopping, and everything queued was written
            }
        }
        #[cfg(test)]
        drop(shared.gate.lock().unwrap());
        let Some(owed) = write_queued(shared, side) else {
            continue;
        };
        if own.as_ref().is_none_or(|(p, _)| *p != owed.path) {
            own = None;
        }
        let result = sync(shared, &owed.path, &mut own);
        complete(shared, side, &owed, result);
    }
}

/// Fails the queued writes and refuses new ones if a worker panics, so no request waits for
/// an answer that would never come.
struct StopGuard<'a>(&'a Shared);

impl Drop for StopGuard<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let why = "the store writer has stopped; the store refuses writes until it is restarted";
        let mut inner = self.0.lock();
        inner.poisoned = Some(why.into());
        let failed = std::mem::take(&mut inner.queued);
        drop(inner);
        for job in failed {
            job.finish(Err(why.into()), None);
        }
    }
}

/// fdatasync of the current segment through the worker's own descriptor.
fn sync(
    shared: &Shared,
    path: &Arc<PathBuf>,
    own: &mut Option<(Arc<PathBuf>, std::fs::File)>,
) -> io::Result<()> {
    #[cfg(test)]
    {
        let hook = shared.sync_hook.lock().unwrap().clone();
        if let Some(hook) = hook {
            hook()?;
        }
        if shared
            .injection
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|i| i.fail_syncs)
        {
            return Err(io::Error::from_raw_os_error(5)); // EIO
        }
    }
    #[cfg(not(test))]
    let _ = shared;
    match own {
        Some((_, f)) => f.sync_data(),
        None => {
            let f = std::fs::File::open(&**path)?;
            let synced = f.sync_data();
            *own = Some((path.clone(), f));
            synced
        }
    }
}

/// Writes every queued record with one write (rotating the segment first when a compaction
/// is due); returns the sync the caller now owes, or `None` when there was nothing to write
/// or the write failed (its writes are then answered).
fn write_queued(shared: &Shared, side: &LogSide) -> Option<Owed> {
    let mut guard = side.lock();
    #[cfg(test)]
    {
        guard.wal.inject = shared.injection.lock().unwrap().clone();
    }
    loop {
        let log = &mut *guard;
        let due = log.wal.records >= log.compact_at
            && log.compactor.as_ref().is_none_or(JoinHandle::is_finished);
        if !due {
            break;
        }
        if log.syncs == 0 && log.unsynced.is_empty() {
            // Every written record is durable and published: rotate and snapshot that.
            if let Some(done) = log.compactor.take() {
                let _ = done.join();
            }
            #[cfg(test)]
            {
                log.rotations_tried += 1;
            }
            log.compactor = start_compaction(shared, &mut log.wal, side);
            if log.wal.path() != *log.path {
                log.path = Arc::new(log.wal.path());
                log.durable = log.wal.len();
                log.generation += 1;
                log.compact_at = COMPACT_AFTER_RECORDS;
            } else {
                // The rotation failed (and said why): try again a quarter segment later.
                log.compact_at = log.wal.records + COMPACT_AFTER_RECORDS / 4;
            }
            break;
        }
        guard = side.drained.wait(guard).unwrap_or_else(|p| p.into_inner());
    }
    let batch = {
        let mut inner = shared.lock();
        inner.waking = false;
        // The emptied vectors of acknowledged batches are reused: no allocation per batch.
        let spare = guard.spare.pop().unwrap_or_default();
        let batch = std::mem::replace(&mut inner.queued, spare);
        inner.syncing += usize::from(!batch.is_empty());
        batch
    };
    if batch.is_empty() {
        return None;
    }
    let log = &mut *guard;
    log.buf.clear();
    for job in &batch {
        log.buf.extend_from_slice(&job.record);
    }
    shared.appends.fetch_add(1, Ordering::Relaxed);
    if let Err(failure) = log.wal.write(&log.buf, batch.len()) {
        let mut why = format!("writing the store log: {}", failure.error);
        if failure.poisoned {
            why.push_str(
                "; rolling the log back failed too, so the store refuses writes until it is restarted",
            );
        }
        // Earlier batches stay: their records are whole and their syncs are on the way.
        let keep = log
            .unsynced
            .back()
            .map(|(_, b)| b.last().expect("a job").view.clone());
        let failed = fail(shared, batch, &why, failure.poisoned, keep);
        shared.lock().syncing -= 1;
        drop(guard);
        for job in failed {
            job.finish(Err(why.clone()), None);
        }
        return None;
    }
    let covers = log.wal.len();
    log.unsynced.push_back((covers, batch));
    log.syncs += 1;
    Some(Owed {
        path: log.path.clone(),
        covers,
        generation: log.generation,
    })
}

/// A sync has returned: on success every batch it covers is durable (it started after they
/// were written), so they are published and acknowledged, oldest first, however the syncs in
/// flight finish among themselves. A failure cuts the log back to its last durable byte and
/// fails every write after it; a success from before a cut no longer counts (a failure from
/// before one still does).
fn complete(shared: &Shared, side: &LogSide, owed: &Owed, result: io::Result<()>) {
    let mut log = side.lock();
    log.syncs -= 1;
    shared.lock().syncing -= 1;
    let mut answered = Vec::new();
    let mut outcome = Ok(());
    let mut replaced = None;
    // A failure counts even when the sync began before the last cut: the kernel reports a
    // file's writeback error once per descriptor, so the error this sync took may be the one a
    // later write's pages hit, which that write's own sync would then never see. Everything
    // not yet durable fails (conservative: at worst writes that were fine are refused).
    let counts = owed.generation == log.generation || result.is_err();
    if counts {
        match result {
            Ok(()) => {
                log.durable = log.durable.max(owed.covers);
                while let Some((end, _)) = log.unsynced.front()
                    && *end <= log.durable
                {
                    let (_, mut batch) = log.unsynced.pop_front().expect("a batch");
                    answered.append(&mut batch);
                    log.spare.push(batch);
                }
                if let Some(last) = answered.last() {
                    replaced = Some(std::mem::replace(
                        &mut shared.lock().view,
                        last.view.clone(),
                    ));
                }
            }
            Err(e) => {
                let why = format!("syncing the store log: {e}");
                log.generation += 1;
                let durable = log.durable;
                let poisoned = log.wal.cut_to(durable).is_err();
                let failed = log.unsynced.drain(..).flat_map(|(_, b)| b).collect();
                answered = fail(shared, failed, &why, poisoned, None);
                outcome = Err(why);
            }
        }
    }
    if log.syncs == 0 && log.unsynced.is_empty() {
        side.drained.notify_all();
    }
    drop(log);
    let last = answered.len().saturating_sub(1);
    for (i, job) in answered.into_iter().enumerate() {
        let replaced = if i == last { replaced.take() } else { None };
        job.finish(outcome.clone(), replaced);
    }
}

/// Fails `failed` and every write queued behind it (they were validated against the state
/// that failed), resetting the newest state to `keep` (or to what readers see). Called with
/// the log locked, so no worker writes a queued record meanwhile; the caller answers the
/// returned writes once it has unlocked it.
fn fail(
    shared: &Shared,
    mut failed: Vec<Job>,
    why: &str,
    poisoned: bool,
    keep: Option<View>,
) -> Vec<Job> {
    tracing::error!(error = %why, "a store write failed; the log is as it was before it");
    let mut inner = shared.lock();
    inner.pending = keep.unwrap_or_else(|| inner.view.clone());
    if poisoned {
        inner.poisoned = Some(why.to_owned());
    }
    failed.append(&mut inner.queued);
    failed
}

/// Starts a new segment and snapshots the durable state in the background; the older
/// segments are deleted once the snapshot is in place, and the segment after the new one is
/// then zero-filled ahead of use.
fn start_compaction(shared: &Shared, log: &mut wal::Wal, side: &LogSide) -> Option<JoinHandle<()>> {
    let size = spare_bytes(log.len(), log.records);
    let older = match log.rotate() {
        Ok(older) => older,
        Err(e) => {
            tracing::warn!(error = %e, "starting a new log segment failed; compaction postponed");
            return None;
        }
    };
    // Rotation waits until nothing written is unsynced or unpublished, so what readers see is
    // exactly the state at the end of `older`.
    let view = shared.lock().view.clone();
    let (dir, cipher, spares) = (side.dir.clone(), side.cipher.clone(), side.spares.clone());
    let spawned = std::thread::Builder::new()
        .name("store-compactor".into())
        .spawn(move || {
            let result = snapshot::write(&dir, &view, cipher.as_ref())
                .and_then(|()| remove_segments(&dir, &older));
            if let Err(e) = result {
                tracing::warn!(error = %e, "compacting the store failed; the log segments stay and replay still reads them");
            }
            // The segment after the one just started.
            spares.prepare(size);
        });
    spawned
        .map_err(|e| tracing::warn!(error = %e, "starting the compaction thread failed"))
        .ok()
}

fn remove_segments(dir: &Path, segments: &[PathBuf]) -> io::Result<()> {
    for path in segments {
        std::fs::remove_file(path).map_err(|e| files::named(path, "removing", e))?;
    }
    files::sync_dir(dir)
}

/// Decodes one log line as replay would (for fuzzing the decoder with untrusted bytes); true
/// when it is a readable record.
#[doc(hidden)]
pub fn decode_log_line(line: &[u8]) -> bool {
    codec::decode_record(line, None).is_ok()
}

fn apply(view: &mut View, rv: u64, mutations: Vec<Mutation>) {
    for m in mutations {
        match m {
            Mutation::PutSecret(s) => {
                view.secrets
                    .insert(key(&s.meta.namespace, &s.meta.name), Arc::new(s));
            }
            Mutation::DeleteSecret(k) => {
                view.secrets.remove(&k);
            }
            Mutation::PutNamespace(ns) => {
                view.namespaces.insert(ns.meta.name.clone(), Arc::new(ns));
            }
        }
    }
    view.rv = rv;
}

/// `flytesecret kube-api --repair`: backs up the data directory, truncates the log at its
/// first damaged record, and checks that the store then opens. Returns a report for people.
pub fn repair(dir: &Path, key_file: Option<&Path>) -> io::Result<String> {
    if !dir.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no data directory at {}", dir.display()),
        ));
    }
    let cipher = key_file.map(Cipher::from_key_file).transpose()?;
    let mut scratch = View::empty();
    snapshot::load(dir, cipher.as_ref(), &mut scratch).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("{e}\nThe snapshot itself is damaged; repair cannot cut it. Restore the directory from a backup."),
        )
    })?;
    let report = wal::repair(dir, cipher.as_ref())?;
    wal::replay(dir, cipher.as_ref(), &mut scratch)?;
    let mut out = format!(
        "backup of {} written to {}\n",
        dir.display(),
        report.backup.display()
    );
    match &report.cut {
        None => out.push_str("no damaged record found; the log is unchanged\n"),
        Some((path, line, why)) => out.push_str(&format!(
            "{}:{line}: {why}\ntruncated the log there: {} line(s) dropped, {} later segment(s) removed\n",
            path.display(),
            report.lines_dropped,
            report.segments_removed.len()
        )),
    }
    out.push_str(&format!(
        "the store opens: {} secrets at resourceVersion {} ({} log records kept)\n",
        scratch.secrets.len(),
        scratch.rv,
        report.records_kept
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::object::ObjectMeta;
    use super::*;
    use std::fs;
    use std::os::unix::fs::{FileExt, PermissionsExt};
    use std::sync::mpsc;

    fn secret(name: &str, value: &str) -> Secret {
        Secret {
            meta: ObjectMeta {
                name: name.into(),
                namespace: "ns".into(),
                ..Default::default()
            },
            data: [("k".to_owned(), value.as_bytes().to_vec())].into(),
            type_: "Opaque".into(),
            ..Default::default()
        }
    }

    fn put(store: &Store, name: &str, value: &str) -> Result<(), ApiError> {
        store.commit(|_, _| Ok((vec![Mutation::PutSecret(secret(name, value))], ())))
    }

    fn value(view: &View, name: &str) -> Option<Vec<u8>> {
        view.secrets
            .get(&key("ns", name))
            .map(|s| s.data["k"].clone())
    }

    /// A fresh path under the system's temporary directory (not created).
    pub(super) fn temp_dir() -> PathBuf {
        std::env::temp_dir().join(format!("flytesecret-store-{}", uuid::Uuid::new_v4()))
    }

    /// A durable store in a fresh temporary directory.
    fn durable_in_temp_dir() -> (PathBuf, Store) {
        let dir = temp_dir();
        let store = Store::open(&Durability::Directory(dir.clone())).unwrap();
        (dir, store)
    }

    /// A file of the store that cannot be read (here: a directory named like a log segment)
    /// stops it from opening with an error that names the file.
    #[test]
    fn an_unreadable_store_file_is_named_in_the_error() {
        let (dir, store) = durable_in_temp_dir();
        drop(store);
        let odd = dir.join("wal-9999999999.jsonl");
        fs::create_dir(&odd).unwrap();
        let Err(e) = Store::open(&Durability::Directory(dir.clone())) else {
            panic!("a store with a directory for a segment opened");
        };
        let text = e.to_string();
        assert!(text.contains(&odd.display().to_string()), "{text}");
        fs::remove_dir_all(&dir).unwrap();
    }

    fn newest_segment(dir: &Path) -> PathBuf {
        wal::segments(dir).unwrap().pop().unwrap().1
    }

    /// Every byte of every file in the directory.
    fn dir_bytes(dir: &Path) -> Vec<u8> {
        let mut all = Vec::new();
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                all.extend(fs::read(p).unwrap());
            }
        }
        all
    }

    /// Where a segment's records end: its first NUL, or its length.
    fn records_end(bytes: &[u8]) -> usize {
        bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len())
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn directory_store_survives_reopen_compaction_and_a_torn_tail() {
        let dir = temp_dir();
        let durable = Durability::Directory(dir.clone());
        let store = Store::open(&durable).unwrap();
        for i in 0..(COMPACT_AFTER_RECORDS + 10) {
            put(&store, &format!("s{i}"), "v").unwrap();
        }
        store
            .commit(|_, _| Ok((vec![Mutation::DeleteSecret(key("ns", "s0"))], ())))
            .unwrap();
        let before = store.read();
        drop(store);
        // Compaction left a snapshot and only the segment started after it.
        assert!(dir.join("snapshot.jsonl").exists());
        assert_eq!(wal::segments(&dir).unwrap().len(), 1);
        // The segment started by the compaction was preallocated (prepared when the store
        // opened): its records, then zeros to the end of the file.
        let seg = newest_segment(&dir);
        let bytes = fs::read(&seg).unwrap();
        let end = records_end(&bytes);
        assert!(
            end > 0 && bytes.len() as u64 >= spare_bytes(0, 0),
            "{end} {}",
            bytes.len()
        );
        assert!(bytes[end..].iter().all(|b| *b == 0));
        // A torn, unacknowledged record at the end (a crash mid-write: the record, then the
        // zeros it did not reach) is dropped on replay, and the next write overwrites it.
        let torn = br#"{"rv":999999,"m":[{"del":"ns/s1"#;
        let file = fs::OpenOptions::new().write(true).open(&seg).unwrap();
        file.write_all_at(torn, end as u64).unwrap();
        drop(file);
        let store = Store::open(&durable).unwrap();
        let reopened = store.read();
        assert_eq!(reopened.rv, before.rv);
        assert_eq!(reopened.secrets.len(), COMPACT_AFTER_RECORDS + 9);
        assert!(value(&reopened, "s0").is_none());
        assert_eq!(value(&reopened, "s1").unwrap(), b"v");
        put(&store, "late", "x").unwrap();
        drop(store);
        let after = fs::read(&seg).unwrap();
        assert_eq!(after.len(), bytes.len(), "the preallocation was kept");
        assert_eq!(&after[..end], &bytes[..end]);
        assert!(
            !contains(&after, b"999999"),
            "the torn record is still there"
        );
        let reopened = Store::open(&durable).unwrap().read();
        assert_eq!(value(&reopened, "late").unwrap(), b"x");
        assert_eq!(value(&reopened, "s1").unwrap(), b"v");
        // Zeros, then anything else, is damage: refused, naming file, line and offset, and
        // repair cuts the segment where its records end.
        let end = records_end(&after);
        let file = fs::OpenOptions::new().write(true).open(&seg).unwrap();
        let at = after.len() as u64 - 100;
        file.write_all_at(b"junk", at).unwrap();
        drop(file);
        let err = Store::open(&durable).err().unwrap().to_string();
        let lines = after[..end].iter().filter(|b| **b == b'\n').count();
        assert!(
            err.contains(&format!("{}:{}:", seg.display(), lines + 1))
                && err.contains(&format!("byte offset {at} is not zero")),
            "{err}"
        );
        let stop = AtomicBool::new(false);
        wal::prepare_spare(&dir, 1 << 20, &stop, None).unwrap();
        let report = repair(&dir, None).unwrap();
        assert_eq!(fs::read(&seg).unwrap(), &after[..end]);
        // The backup holds the damaged segment but not the all-zero spare.
        let backup = PathBuf::from(
            report
                .lines()
                .next()
                .unwrap()
                .rsplit(" written to ")
                .next()
                .unwrap(),
        );
        assert!(dir.join(wal::SPARE).exists());
        assert!(!backup.join(wal::SPARE).exists());
        assert_eq!(
            fs::read(backup.join(seg.file_name().unwrap())).unwrap()[at as usize..][..4],
            *b"junk"
        );
        let reopened = Store::open(&durable).unwrap().read();
        assert_eq!(value(&reopened, "late").unwrap(), b"x");
        // A damaged snapshot line is named too (and repair cannot cut it).
        let snap = dir.join("snapshot.jsonl");
        let mut bytes = fs::read(&snap).unwrap();
        let third = bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(1)
            .unwrap()
            .0;
        bytes[third + 2] = b'#';
        fs::write(&snap, &bytes).unwrap();
        let err = Store::open(&durable).err().unwrap().to_string();
        assert!(err.contains("snapshot.jsonl:3:"), "{err}");
        let err = repair(&dir, None).unwrap_err().to_string();
        assert!(err.contains("Restore the directory from a backup"), "{err}");
        for e in fs::read_dir(dir.parent().unwrap()).unwrap() {
            let p = e.unwrap().path();
            let own_backup = p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with(&format!(
                    "{}.backup-",
                    dir.file_name().unwrap().to_str().unwrap()
                ))
            });
            if own_backup {
                fs::remove_dir_all(p).unwrap();
            }
        }
        fs::remove_dir_all(dir).unwrap();
    }

    /// A store directory whose newest segment is a preallocated one (the spare prepared when
    /// the store opened, renamed into place as a rotation would).
    fn preallocated_store(dir: &Path) -> Store {
        let durable = Durability::Directory(dir.to_owned());
        let store = Store::open(&durable).unwrap();
        store.finish_side_work();
        drop(store);
        fs::rename(dir.join(wal::SPARE), dir.join("wal-0000000002.jsonl")).unwrap();
        let store = Store::open(&durable).unwrap();
        let seg = newest_segment(dir);
        assert!(seg.ends_with("wal-0000000002.jsonl"));
        assert_eq!(fs::metadata(&seg).unwrap().len(), spare_bytes(0, 0));
        store
    }

    /// Writes a, then b with `injection` active: b must fail with `message`, leave the log's
    /// records as they were after a, never be seen, and leave the store writable and
    /// reopenable without b. In a preallocated segment, nothing of b may be left after a's
    /// records either (replay would read it). Runs in a growing and in a preallocated segment.
    fn a_failed_write_is_undone(injection: Injection, message: &str) {
        for preallocated in [false, true] {
            a_failed_write_is_undone_in(injection.clone(), message, preallocated);
        }
    }

    fn a_failed_write_is_undone_in(injection: Injection, message: &str, preallocated: bool) {
        let dir = temp_dir();
        let durable = Durability::Directory(dir.clone());
        let store = if preallocated {
            preallocated_store(&dir)
        } else {
            Store::open(&durable).unwrap()
        };
        put(&store, "a", "1").unwrap();
        let log_before = fs::read(newest_segment(&dir)).unwrap();
        store.inject(Some(injection));
        let err = put(&store, "b", "2").unwrap_err();
        assert_eq!(err.code, 500);
        assert!(err.message.contains(message), "{}", err.message);
        // Nothing of b is left in the log (a written but unsynced record is cut off), and
        // readers never saw it.
        let log_after = fs::read(newest_segment(&dir)).unwrap();
        if preallocated {
            // Cut back to a's records: the zero-filled tail went with b's bytes.
            assert_eq!(log_after, &log_before[..records_end(&log_before)]);
        } else {
            assert_eq!(log_after, log_before);
        }
        assert!(value(&store.read(), "b").is_none());
        store.inject(None);
        // The failed write's state was discarded: the next write sees no b.
        store
            .commit(|view, _| {
                assert!(
                    value(view, "b").is_none(),
                    "the failed write's state was kept"
                );
                Ok((vec![Mutation::PutSecret(secret("c", "3"))], ()))
            })
            .unwrap();
        drop(store);
        let view = Store::open(&durable).unwrap().read();
        assert_eq!(value(&view, "a").unwrap(), b"1");
        assert_eq!(value(&view, "c").unwrap(), b"3");
        assert!(value(&view, "b").is_none());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_failed_append_leaves_the_log_as_before_and_the_store_writable() {
        a_failed_write_is_undone(
            Injection {
                fail_writes: true,
                partial: 17,
                fail_rollback: false,
                fail_syncs: false,
                fail_rotations: false,
            },
            "No space left on device",
        );
    }

    #[test]
    fn no_write_waits_for_the_next_segment_to_be_zero_filled() {
        let dir = temp_dir();
        spare_control(&dir, |c| c.hold = true);
        let store = Store::open(&Durability::Directory(dir.clone())).unwrap();
        // The spare is held back: every write still completes, into the current segment,
        // which grows past the compaction threshold (the rotation waits for the spare).
        for i in 0..(COMPACT_AFTER_RECORDS + 10) {
            put(&store, &format!("s{i}"), "v").unwrap();
        }
        assert_eq!(wal::segments(&dir).unwrap().len(), 1);
        assert!(!dir.join(wal::SPARE).exists());
        spare_control(&dir, |c| c.hold = false);
        store.finish_side_work();
        // Whole, synced zeros under its final name before any record goes into it.
        let spare = fs::read(dir.join(wal::SPARE)).unwrap();
        assert_eq!(spare.len() as u64, spare_bytes(0, 0));
        assert!(spare.iter().all(|b| *b == 0));
        put(&store, "next", "v").unwrap();
        store.finish_side_work();
        let seg = newest_segment(&dir);
        assert!(seg.ends_with("wal-0000000002.jsonl"), "{}", seg.display());
        let bytes = fs::read(&seg).unwrap();
        assert_eq!(bytes.len() as u64, spare_bytes(0, 0));
        let end = records_end(&bytes);
        assert!(contains(&bytes[..end], b"next"));
        // The compaction thread prepared the one after it, sized for the records seen.
        let next = fs::metadata(dir.join(wal::SPARE)).unwrap().len();
        assert!(next >= 1 << 20 && next % (1 << 20) == 0, "{next}");
        drop(store);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn running_out_of_space_for_a_spare_falls_back_to_a_growing_segment_warning_once() {
        let dir = temp_dir();
        spare_control(&dir, |c| c.fail_after = Some(1536 * 1024));
        let durable = Durability::Directory(dir.clone());
        let store = Store::open(&durable).unwrap();
        put(&store, "first", "v").unwrap();
        store.finish_side_work();
        // The half-zeroed file is gone, and no spare is left.
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(
            !names.iter().any(|n| n.starts_with(wal::SPARE)),
            "{names:?}"
        );
        spare_control(&dir, |c| c.fail_after = Some(0));
        for i in 0..(COMPACT_AFTER_RECORDS + 10) {
            put(&store, &format!("s{i}"), "v").unwrap();
        }
        store.finish_side_work();
        // Rotated into an ordinary growing segment; the compaction's spare failed too.
        let seg = newest_segment(&dir);
        assert!(seg.ends_with("wal-0000000002.jsonl"), "{}", seg.display());
        let bytes = fs::read(&seg).unwrap();
        assert_eq!(records_end(&bytes), bytes.len());
        let control = spare_control(&dir, |_| ());
        assert_eq!((control.failures, control.warnings), (2, 1));
        drop(store);
        let view = Store::open(&durable).unwrap().read();
        assert_eq!(view.secrets.len(), COMPACT_AFTER_RECORDS + 11);
        // Too little free space is not even tried.
        let stop = AtomicBool::new(false);
        assert!(matches!(
            wal::prepare_spare(&dir, u64::MAX / 4, &stop, None),
            Ok(wal::Spare::NoRoom(_))
        ));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_failed_sync_cuts_the_log_back_and_fails_the_write() {
        a_failed_write_is_undone(
            Injection {
                fail_syncs: true,
                ..Default::default()
            },
            "syncing the store log",
        );
    }

    #[test]
    fn concurrent_writes_across_a_compaction_are_all_durable() {
        let dir = temp_dir();
        let durable = Durability::Directory(dir.clone());
        let store = Arc::new(Store::open(&durable).unwrap());
        let rounds = COMPACT_AFTER_RECORDS / 8 + 64;
        let writers: Vec<_> = (0..8)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for i in 0..rounds {
                        put(&store, &format!("t{t}-{}", i % 50), &i.to_string()).unwrap();
                        // Acknowledged means published: this writer's own write is visible.
                        let seen = value(&store.read(), &format!("t{t}-{}", i % 50));
                        assert_eq!(seen.unwrap(), i.to_string().as_bytes());
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        let before = store.read();
        drop(store);
        assert!(dir.join("snapshot.jsonl").exists(), "no compaction ran");
        let after = Store::open(&durable).unwrap().read();
        assert_eq!(after.rv, before.rv);
        assert_eq!(after.secrets.len(), 8 * 50);
        for t in 0..8 {
            for k in 0..50 {
                let last = (0..rounds).rev().find(|i| i % 50 == k).unwrap();
                let name = format!("t{t}-{k}");
                assert_eq!(value(&after, &name).unwrap(), last.to_string().as_bytes());
            }
        }
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_failed_rollback_poisons_the_store_until_restart() {
        let dir = temp_dir();
        let durable = Durability::Directory(dir.clone());
        let store = Store::open(&durable).unwrap();
        put(&store, "a", "1").unwrap();
        store.inject(Some(Injection {
            fail_writes: true,
            partial: 9,
            fail_rollback: true,
            fail_syncs: false,
            fail_rotations: false,
        }));
        assert_eq!(store.refusing_writes(), None);
        assert_eq!(put(&store, "b", "2").unwrap_err().code, 500);
        store.inject(None);
        let why = store.refusing_writes().expect("poisoned");
        assert!(why.contains("rolling the log back failed"), "{why}");
        let err = put(&store, "c", "3").unwrap_err();
        assert_eq!(err.code, 500);
        assert!(
            err.message.contains("until it is restarted"),
            "{}",
            err.message
        );
        assert_eq!(value(&store.read(), "a").unwrap(), b"1");
        drop(store);
        // The partial record has no newline: a torn tail, dropped; a is there.
        let store = Store::open(&durable).unwrap();
        let view = store.read();
        assert_eq!(value(&view, "a").unwrap(), b"1");
        assert!(value(&view, "b").is_none());
        put(&store, "d", "4").unwrap();
        assert_eq!(store.refusing_writes(), None, "a restart recovers");
        drop(store);
        fs::remove_dir_all(dir).unwrap();
    }

    /// A rotation that fails is retried a quarter segment later, not before every batch: each
    /// attempt waits for every sync in flight, so retrying per batch serialized the log for as
    /// long as the failure lasted. Writes go on meanwhile, and the retry rotates once it can.
    #[test]
    fn a_failing_rotation_is_retried_later_not_before_every_batch() {
        let (dir, store) = durable_in_temp_dir();
        let tried = |store: &Store| {
            let side = &store.writer.as_ref().expect("a durable store").side;
            side.lock().rotations_tried
        };
        store.inject(Some(Injection {
            fail_rotations: true,
            ..Default::default()
        }));
        for i in 0..(COMPACT_AFTER_RECORDS + 300) {
            put(&store, &format!("s{i}"), "v").unwrap();
        }
        assert_eq!(
            tried(&store),
            1,
            "one attempt at the threshold, none per later batch"
        );
        assert_eq!(wal::segments(&dir).unwrap().len(), 1);
        store.inject(None);
        for i in 0..(COMPACT_AFTER_RECORDS / 4) {
            put(&store, &format!("t{i}"), "v").unwrap();
        }
        assert_eq!(tried(&store), 2);
        store.finish_side_work();
        assert!(dir.join("snapshot.jsonl").exists(), "the retry compacted");
        let view = store.read();
        drop(store);
        let reopened = Store::open(&Durability::Directory(dir.clone())).unwrap();
        assert_eq!(reopened.read().secrets.len(), view.secrets.len());
        drop(reopened);
        fs::remove_dir_all(dir).unwrap();
    }

    /// Holds the next `n` syncs (in the order workers start them) until the test releases
    /// each with the result it should report (`Ok` then runs the real sync). Returns the
    /// index of each held sync as it starts, and the releases.
    fn hold_syncs(store: &Store, n: usize) -> (mpsc::Receiver<usize>, Vec<HeldSync>) {
        // Every write starts a sync of its own, so these tests can overlap them at will.
        store.shared.overlap_at.store(1, Ordering::Relaxed);
        hold_syncs_as_configured(store, n)
    }

    /// [`hold_syncs`] leaving the rule for starting overlapping syncs as it is.
    fn hold_syncs_as_configured(store: &Store, n: usize) -> (mpsc::Receiver<usize>, Vec<HeldSync>) {
        let (started, starts) = mpsc::channel();
        let started = Mutex::new(started);
        let (releases, waits): (Vec<_>, Vec<_>) = (0..n)
            .map(|_| {
                let (release, wait) = mpsc::channel::<io::Result<()>>();
                (HeldSync(release), Mutex::new(wait))
            })
            .unzip();
        let count = AtomicUsize::new(0);
        let hook: SyncHook = Arc::new(move || {
            let i = count.fetch_add(1, Ordering::SeqCst);
            if i >= n {
                return Ok(());
            }
            started.lock().unwrap().send(i).unwrap();
            waits[i].lock().unwrap().recv().unwrap_or(Ok(()))
        });
        *store.shared.sync_hook.lock().unwrap() = Some(hook);
        (starts, releases)
    }

    struct HeldSync(mpsc::Sender<io::Result<()>>);

    impl HeldSync {
        fn succeed(&self) {
            self.0.send(Ok(())).unwrap();
        }
        fn fail(&self) {
            self.0.send(Err(io::Error::from_raw_os_error(5))).unwrap();
        }
    }

    /// `put` on its own thread; its answer arrives on the returned channel.
    fn put_in_background(store: &Arc<Store>, name: &str) -> mpsc::Receiver<Result<(), ApiError>> {
        let (tx, rx) = mpsc::channel();
        let (store, name) = (store.clone(), name.to_owned());
        std::thread::spawn(move || {
            let answer = put(&store, &name, "v");
            drop(store);
            tx.send(answer).unwrap();
        });
        rx
    }

    fn syncs_in_flight(store: &Store) -> usize {
        store.writer.as_ref().unwrap().side.lock().syncs
    }

    /// Waits until only `n` syncs are in flight (a released sync has been completed).
    fn until_syncs_in_flight(store: &Store, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while syncs_in_flight(store) != n {
            assert!(Instant::now() < deadline, "syncs did not complete");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    const ANSWER: Duration = Duration::from_secs(10);

    #[test]
    fn a_later_sync_finishing_first_acknowledges_the_earlier_writes_and_a_late_failure_loses_nothing()
     {
        let dir = temp_dir();
        let durable = Durability::Directory(dir.clone());
        let store = Arc::new(Store::open(&durable).unwrap());
        put(&store, "a", "v").unwrap();
        let (starts, held) = hold_syncs(&store, 1);
        // b's sync is held; c is written after b, so c's sync covers b too.
        let b = put_in_background(&store, "b");
        assert_eq!(starts.recv_timeout(ANSWER).unwrap(), 0);
        let c = put_in_background(&store, "c");
        c.recv_timeout(ANSWER).unwrap().unwrap();
        b.recv_timeout(ANSWER)
            .expect("b was not acknowledged by the sync that covered it")
            .unwrap();
        let view = store.read();
        assert!(value(&view, "b").is_some() && value(&view, "c").is_some());
        // b's own sync now reports an error: it cannot concern b or c (c's sync, which began
        // after both were written, succeeded), so nothing acknowledged is cut off.
        held[0].fail();
        until_syncs_in_flight(&store, 0);
        assert_eq!(store.read().rv, view.rv, "the published state went back");
        put(&store, "d", "v").unwrap();
        drop(starts);
        drop(Arc::into_inner(store).unwrap());
        let view = Store::open(&durable).unwrap().read();
        for name in ["a", "b", "c", "d"] {
            assert!(value(&view, name).is_some(), "{name} was lost");
        }
        fs::remove_dir_all(dir).unwrap();
    }

    /// Writes staged while a sync runs wait for it and share the next sync; only once
    /// [`OVERLAP_AT`] of them wait does another sync start alongside the running one. Either
    /// way each write is acknowledged only by a sync that began after it was written.
    #[test]
    fn writes_behind_a_running_sync_share_the_next_one_until_enough_wait() {
        let dir = temp_dir();
        let store = Arc::new(Store::open(&Durability::Directory(dir.clone())).unwrap());
        put(&store, "a", "v").unwrap();
        let (starts, held) = hold_syncs_as_configured(&store, 2);
        let first = put_in_background(&store, "first");
        assert_eq!(starts.recv_timeout(ANSWER).unwrap(), 0);
        // A worker woken for "first" may arrive after another already took it; it must be back
        // asleep before the next writes are staged, or it would (rightly) take them itself.
        let deadline = Instant::now() + ANSWER;
        while store.shared.lock().idle < SYNCERS - 1 {
            assert!(
                Instant::now() < deadline,
                "the other log workers did not go idle"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        let queued = |store: &Store| store.shared.lock().queued.len();
        let mut waiting: Vec<_> = (1..OVERLAP_AT)
            .map(|i| put_in_background(&store, &format!("w{i}")))
            .collect();
        let deadline = Instant::now() + ANSWER;
        while queued(&store) < OVERLAP_AT - 1 {
            assert!(Instant::now() < deadline, "the writes were not staged");
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(
            starts.recv_timeout(Duration::from_millis(200)).is_err(),
            "a sync started alongside the running one for fewer than OVERLAP_AT waiting writes"
        );
        assert_eq!(syncs_in_flight(&store), 1);
        waiting.push(put_in_background(&store, "last"));
        assert_eq!(
            starts.recv_timeout(ANSWER).unwrap(),
            1,
            "OVERLAP_AT waiting writes did not start a second sync"
        );
        assert_eq!(
            queued(&store),
            0,
            "the second sync took every waiting write"
        );
        assert!(first.try_recv().is_err() && waiting.iter().all(|w| w.try_recv().is_err()));
        // The second sync began after everything was written: it acknowledges all of it.
        held[1].succeed();
        for answer in waiting.iter().chain([&first]) {
            answer.recv_timeout(ANSWER).unwrap().unwrap();
        }
        held[0].succeed();
        until_syncs_in_flight(&store, 0);
        assert_eq!(store.shared.lock().syncing, 0);
        let view = store.read();
        assert!(value(&view, "last").is_some() && value(&view, "w1").is_some());
        drop(starts);
        drop(Arc::into_inner(store).unwrap());
        fs::remove_dir_all(dir).unwrap();
    }

    /// The scene after a cut: a is durable; b's sync failed while c's (begun before the cut)
    /// was still running, so b and c failed and were cut off; d was then written and its sync
    /// is held. Returns the directory, the store, its held-sync starts and releases
    /// (`held[1]` is c's sync, `held[2]` d's), and the channel d's answer will come on.
    type AfterACut = (
        PathBuf,
        Durability,
        Arc<Store>,
        mpsc::Receiver<usize>,
        Vec<HeldSync>,
        mpsc::Receiver<Result<(), ApiError>>,
    );

    fn after_a_cut() -> AfterACut {
        let dir = temp_dir();
        let durable = Durability::Directory(dir.clone());
        let store = Arc::new(Store::open(&durable).unwrap());
        put(&store, "a", "v").unwrap();
        let log_after_a = fs::read(newest_segment(&dir)).unwrap();
        let (starts, held) = hold_syncs(&store, 3);
        let b = put_in_background(&store, "b");
        assert_eq!(starts.recv_timeout(ANSWER).unwrap(), 0);
        let c = put_in_background(&store, "c");
        assert_eq!(starts.recv_timeout(ANSWER).unwrap(), 1);
        // b's sync fails: b and c (written after it) are cut off and fail, although c's sync
        // is still running.
        held[0].fail();
        for answer in [b, c] {
            let err = answer.recv_timeout(ANSWER).unwrap().unwrap_err();
            assert!(
                err.message.contains("syncing the store log"),
                "{}",
                err.message
            );
        }
        assert_eq!(fs::read(newest_segment(&dir)).unwrap(), log_after_a);
        // d is written where b was, and its sync is held.
        let d = put_in_background(&store, "d");
        assert_eq!(starts.recv_timeout(ANSWER).unwrap(), 2);
        (dir, durable, store, starts, held, d)
    }

    #[test]
    fn a_sync_succeeding_after_an_earlier_one_failed_acknowledges_nothing_written_since() {
        let (dir, durable, store, starts, held, d) = after_a_cut();
        // c's sync now succeeds: it started before the cut, so it says nothing about d.
        held[1].succeed();
        until_syncs_in_flight(&store, 1);
        assert!(
            d.try_recv().is_err(),
            "d was acknowledged before its own sync"
        );
        let view = store.read();
        assert!(
            value(&view, "d").is_none(),
            "d was published before its sync"
        );
        assert!(value(&view, "b").is_none() && value(&view, "c").is_none());
        held[2].succeed();
        d.recv_timeout(ANSWER).unwrap().unwrap();
        assert!(value(&store.read(), "d").is_some());
        drop(starts);
        drop(Arc::into_inner(store).unwrap());
        let view = Store::open(&durable).unwrap().read();
        assert!(value(&view, "a").is_some() && value(&view, "d").is_some());
        assert!(value(&view, "b").is_none() && value(&view, "c").is_none());
        fs::remove_dir_all(dir).unwrap();
    }

    /// A sync that began before a cut and then fails may have taken the writeback error of a
    /// later write's pages (the kernel reports it once per descriptor), so that later write
    /// fails even though its own sync reports success.
    #[test]
    fn a_failure_from_before_a_cut_fails_what_was_written_since() {
        let (dir, durable, store, starts, held, d) = after_a_cut();
        // c's sync, from before the cut, fails: d is not trusted, whatever its own sync says.
        held[1].fail();
        let err = d.recv_timeout(ANSWER).unwrap().unwrap_err();
        assert!(
            err.message.contains("syncing the store log"),
            "{}",
            err.message
        );
        held[2].succeed();
        until_syncs_in_flight(&store, 0);
        assert!(value(&store.read(), "d").is_none(), "d was published");
        put(&store, "e", "v").unwrap();
        drop(starts);
        drop(Arc::into_inner(store).unwrap());
        let view = Store::open(&durable).unwrap().read();
        assert!(value(&view, "a").is_some() && value(&view, "e").is_some());
        for name in ["b", "c", "d"] {
            assert!(
                value(&view, name).is_none(),
                "{name} survived a failed sync"
            );
        }
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_commits_hook_runs_before_its_answer_returns_and_even_when_nobody_waits() {
        let (dir, store) = durable_in_temp_dir();
        let (ran, runs) = mpsc::channel();
        let stage = |name: &str| {
            let ran = ran.clone();
            store
                .stage(|_, _| {
                    Ok(Change {
                        mutations: vec![Mutation::PutSecret(secret(name, "v"))],
                        result: (),
                        then: Some(Box::new(move |ok| ran.send(ok).unwrap())),
                    })
                })
                .unwrap()
        };
        stage("a").durable_blocking().unwrap();
        assert_eq!(
            runs.try_recv(),
            Ok(true),
            "the hook had not run when the answer came"
        );
        // The committing request goes away before its write is durable: the hook still runs.
        drop(stage("b"));
        assert_eq!(runs.recv_timeout(ANSWER), Ok(true));
        assert!(value(&store.read(), "b").is_some());
        drop(store);
        fs::remove_dir_all(dir).unwrap();
    }

    /// A hook that panics where nobody waits (on a log worker) is contained: the writes
    /// behind it are still answered, and the store goes on.
    #[test]
    fn a_panicking_hook_on_a_log_worker_loses_no_other_answer() {
        let (dir, store) = durable_in_temp_dir();
        let (starts, held) = hold_syncs(&store, 2);
        let panicking = store
            .stage(|_, _| {
                Ok(Change {
                    mutations: vec![Mutation::PutSecret(secret("a", "v"))],
                    result: (),
                    then: Some(Box::new(|_| panic!("a hook bug"))),
                })
            })
            .unwrap();
        assert_eq!(starts.recv_timeout(ANSWER).unwrap(), 0);
        let (ran, runs) = mpsc::channel();
        let behind = store
            .stage(|_, _| {
                Ok(Change {
                    mutations: vec![Mutation::PutSecret(secret("b", "v"))],
                    result: (),
                    then: Some(Box::new(move |ok| ran.send(ok).unwrap())),
                })
            })
            .unwrap();
        assert_eq!(starts.recv_timeout(ANSWER).unwrap(), 1);
        // Nobody waits for a any more; b's sync covers a and b, so one worker answers both,
        // a first: a's answer, and its panicking hook, are dropped on that worker.
        drop(panicking);
        held[1].succeed();
        behind.durable_blocking().unwrap();
        assert_eq!(runs.recv_timeout(ANSWER), Ok(true));
        held[0].succeed();
        put(&store, "c", "v").unwrap();
        let view = store.read();
        for name in ["a", "b", "c"] {
            assert!(value(&view, name).is_some(), "{name}");
        }
        drop(starts);
        drop(store);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn concurrent_writers_share_one_fsync() {
        let dir = temp_dir();
        let store = Arc::new(Store::open(&Durability::Directory(dir.clone())).unwrap());
        put(&store, "first", "0").unwrap();
        let appends_before = store.log_appends();
        let gate = store.shared.gate.lock().unwrap();
        let writers: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                std::thread::spawn(move || put(&store, &format!("w{i}"), "v"))
            })
            .collect();
        // Wait until all eight are queued behind the held writer; none is visible yet.
        let deadline = Instant::now() + Duration::from_secs(10);
        while store.shared.lock().pending.secrets.len() < 9 {
            assert!(Instant::now() < deadline, "writers did not queue");
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(
            store.read().secrets.len(),
            1,
            "reads see only fsynced state"
        );
        drop(gate);
        for w in writers {
            w.join().unwrap().unwrap();
        }
        assert!(
            store.log_appends() - appends_before <= 2,
            "8 queued writes took {} appends",
            store.log_appends() - appends_before
        );
        assert_eq!(store.read().secrets.len(), 9);
        drop(store);
        let view = Store::open(&Durability::Directory(dir.clone()))
            .unwrap()
            .read();
        assert_eq!(view.secrets.len(), 9);
        fs::remove_dir_all(dir).unwrap();
    }

    fn engine_request(method: &str, path: &str, body: &str) -> http::Request<bytes::Bytes> {
        http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(bytes::Bytes::from(body.to_owned()))
            .unwrap()
    }

    fn engine_secret(value: &str) -> String {
        format!(
            r#"{{"apiVersion":"v1","kind":"Secret","metadata":{{"name":"a"}},"stringData":{{"k":"{value}"}}}}"#
        )
    }

    /// The engine's value of `default/a`, through a GET.
    async fn engine_value(engine: &super::super::Engine) -> (u16, String) {
        let r = engine
            .handle(engine_request(
                "GET",
                "/api/v1/namespaces/default/secrets/a",
                "",
            ))
            .await;
        let status = r.status().as_u16();
        let body: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
        (
            status,
            body["data"]["k"].as_str().unwrap_or_default().to_owned(),
        )
    }

    #[test]
    fn a_write_waiting_for_its_fsync_leaves_the_runtime_thread_free() {
        use base64::Engine as _;
        let dir = temp_dir();
        let engine = super::super::Engine::open(&Durability::Directory(dir.clone())).unwrap();
        // One thread runs every task: a write that blocked it while waiting for the writer
        // would stop the read below from ever running.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let created = rt.block_on(engine.handle(engine_request(
            "POST",
            "/api/v1/namespaces/default/secrets",
            &engine_secret("old"),
        )));
        assert_eq!(created.status(), 201);
        let appends_before = engine.db.store().log_appends();
        // The writer thread stops before its next append (its fsync) until the gate opens.
        let gate = engine.db.store().shared.gate.lock().unwrap();
        let (seen, read) = mpsc::channel();
        let runner = {
            let engine = engine.clone();
            std::thread::spawn(move || {
                rt.block_on(async {
                    let write = tokio::spawn({
                        let engine = engine.clone();
                        async move {
                            engine
                                .handle(engine_request(
                                    "PUT",
                                    "/api/v1/namespaces/default/secrets/a",
                                    &engine_secret("new"),
                                ))
                                .await
                                .status()
                        }
                    });
                    // Until the write is queued for the writer (it then awaits its fsync).
                    loop {
                        let pending = engine.db.store().shared.lock().pending.rv;
                        if pending > engine.db.read().rv || write.is_finished() {
                            break;
                        }
                        tokio::task::yield_now().await;
                    }
                    let value = engine_value(&engine).await;
                    seen.send((value, write.is_finished())).unwrap();
                    write.await.unwrap()
                })
            })
        };
        let b64 = |v: &str| base64::engine::general_purpose::STANDARD.encode(v);
        match read.recv_timeout(Duration::from_secs(10)) {
            Ok((value, write_done)) => {
                assert_eq!(value, (200, b64("old")), "reads see only fsynced state");
                assert!(!write_done, "the write was answered before its fsync");
            }
            Err(_) => {
                drop(gate);
                let _ = runner.join();
                panic!("a read on the runtime's only thread waited behind a write's fsync");
            }
        }
        drop(gate);
        assert_eq!(runner.join().unwrap(), 200);
        assert_eq!(engine.db.store().log_appends() - appends_before, 1);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert_eq!(rt.block_on(engine_value(&engine)), (200, b64("new")));
        drop(engine);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_damaged_complete_record_refuses_to_start_and_repair_cuts_it_with_a_backup() {
        let dir = temp_dir();
        let durable = Durability::Directory(dir.clone());
        let store = Store::open(&durable).unwrap();
        for name in ["a", "b", "c"] {
            put(&store, name, name).unwrap();
        }
        drop(store);
        let seg = newest_segment(&dir);
        let original = fs::read(&seg).unwrap();
        // Damage the last record but keep its newline: not a torn write.
        let mut damaged = original.clone();
        let n = damaged.len();
        damaged[n - 5] = b'#';
        fs::write(&seg, &damaged).unwrap();
        let err = Store::open(&durable).err().unwrap().to_string();
        let name = seg.file_name().unwrap().to_str().unwrap();
        assert!(err.contains(&format!("{name}:3:")), "{err}");
        assert!(
            err.contains("--repair") && err.contains("Recovering a store"),
            "{err}"
        );
        // Damage in the middle is refused the same way, naming its line.
        let mut middle = original.clone();
        let second = original.iter().position(|b| *b == b'\n').unwrap() + 3;
        middle[second] = b'#';
        fs::write(&seg, &middle).unwrap();
        let err = Store::open(&durable).err().unwrap().to_string();
        assert!(err.contains(&format!("{name}:2:")), "{err}");
        let report = repair(&dir, None).unwrap();
        assert!(
            report.contains(":2:") && report.contains("2 line(s) dropped"),
            "{report}"
        );
        let backup = report
            .lines()
            .next()
            .unwrap()
            .rsplit(" written to ")
            .next()
            .unwrap();
        assert_eq!(fs::read(Path::new(backup).join(name)).unwrap(), middle);
        let view = Store::open(&durable).unwrap().read();
        assert_eq!(value(&view, "a").unwrap(), b"a");
        assert!(value(&view, "b").is_none());
        fs::remove_dir_all(dir).unwrap();
        fs::remove_dir_all(backup).unwrap();
    }

    #[test]
    fn group_and_world_access_is_removed_from_an_existing_directory() {
        let dir = temp_dir();
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let store = Store::open(&Durability::Directory(dir.clone())).unwrap();
        put(&store, "a", "1").unwrap();
        store.finish_side_work();
        drop(store);
        let seg = newest_segment(&dir);
        // The prepared next segment is a store file too.
        let spare = dir.join(wal::SPARE);
        for file in [&seg, &spare] {
            fs::set_permissions(file, fs::Permissions::from_mode(0o644)).unwrap();
        }
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        drop(Store::open(&Durability::Directory(dir.clone())).unwrap());
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&seg), 0o600);
        assert_eq!(mode(&spare), 0o600);
        // A reachable directory holding other things is refused, and left as it was.
        fs::write(dir.join("notes.txt"), "x").unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let err = Store::open(&Durability::Directory(dir.clone()))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("notes.txt") && err.contains("chmod 700"),
            "{err}"
        );
        assert_eq!(mode(&dir), 0o755);
        fs::remove_dir_all(dir).unwrap();
    }

    fn key_file(dir: &Path, byte: u8) -> PathBuf {
        use base64::Engine as _;
        let path = dir.join(format!("key-{byte}"));
        fs::write(
            &path,
            base64::engine::general_purpose::STANDARD.encode([byte; 32]),
        )
        .unwrap();
        path
    }

    #[test]
    fn encryption_at_rest_hides_values_migrates_plaintext_and_refuses_a_wrong_key() {
        use base64::Engine as _;
        let root = temp_dir();
        let dir = root.join("data");
        fs::create_dir_all(&root).unwrap();
        let (key, other) = (key_file(&root, 1), key_file(&root, 2));
        let value_text = "correct-horse-battery-staple";
        let b64 = base64::engine::general_purpose::STANDARD.encode(value_text);
        // A plaintext store first: the value is on disk.
        let plain = Durability::Directory(dir.clone());
        let store = Store::open(&plain).unwrap();
        put(&store, "old", value_text).unwrap();
        drop(store);
        assert!(contains(&dir_bytes(&dir), b64.as_bytes()));
        // Opened with a key, it is rewritten sealed before serving; new writes are sealed.
        let sealed = Durability::on_disk(dir.clone(), Some(key.clone()));
        let store = Store::open(&sealed).unwrap();
        put(&store, "new", value_text).unwrap();
        for i in 0..(COMPACT_AFTER_RECORDS + 5) {
            put(&store, &format!("bulk{i}"), value_text).unwrap();
        }
        drop(store);
        let bytes = dir_bytes(&dir);
        assert!(!contains(&bytes, value_text.as_bytes()));
        assert!(!contains(&bytes, b64.as_bytes()));
        let view = Store::open(&sealed).unwrap().read();
        assert_eq!(value(&view, "old").unwrap(), value_text.as_bytes());
        assert_eq!(value(&view, "new").unwrap(), value_text.as_bytes());
        // Another key, or none, is a clear startup error.
        let err = Store::open(&Durability::on_disk(dir.clone(), Some(other)))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("wrong encryption key") && !err.contains("--repair"),
            "{err}"
        );
        let err = Store::open(&plain).err().unwrap().to_string();
        assert!(err.contains("no key is configured"), "{err}");
        fs::remove_dir_all(root).unwrap();
    }
}
