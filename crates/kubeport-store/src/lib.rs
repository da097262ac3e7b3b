//! kubeport-store: the API server's durable, revisioned, embedded key-value store.
//!
//! Semantics follow etcd as the Kubernetes API server uses it:
//! - one global revision counter (0 for an empty store); every successful create, update or
//!   delete gets the next revision, and each record carries its `create_revision` and
//!   `mod_revision`;
//! - a write is acknowledged only after its redb transaction is committed with fsync, so an
//!   acknowledged write survives the process being killed. One writer thread commits all writes
//!   that queued up meanwhile in a single transaction (group commit);
//! - all current records live in memory as well, so reads never touch the disk and see only
//!   committed writes;
//! - the most recent events (a count-based window) are kept in memory and in redb, so a watch
//!   can resume from any revision inside the window, also after a restart.
//!
//! A write whose future is dropped after it was submitted may still be applied.

mod codec;
mod watch;
mod writer;

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::JoinHandle;

use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable};
use tokio::sync::{mpsc, oneshot};

use watch::WatchQueue;
pub use watch::Watcher;
use writer::{Command, WriteOp, Writer, EVENTS, META, META_REVISION, RECORDS};

/// Name of the database file inside the store directory.
pub const DATABASE_FILE: &str = "store.redb";

/// How many live events a watcher may have queued before it is ended with
/// [`StoreError::WatchOverflow`] (see [`Store::watch_with_buffer`]).
pub const DEFAULT_WATCH_BUFFER_EVENTS: usize = 10_000;

/// Options for [`Store::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// How many of the most recent events are kept for watches to resume from (at least 1).
    pub watch_retention_events: usize,
    /// Whether every commit is fsynced before writes are acknowledged. Without it, commits are
    /// made durable at least once a second and on close; meant for tests and benchmarks.
    pub durable: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            watch_retention_events: 200_000,
            durable: true,
        }
    }
}

/// A current key with its value and revisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: String,
    pub value: Bytes,
    /// Revision of the write that created the key.
    pub create_revision: u64,
    /// Revision of the last write to the key (for a record returned by `delete`, the deletion).
    pub mod_revision: u64,
}

/// What a write did to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Created,
    Modified,
    Deleted,
}

/// One committed write, as delivered to watchers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub revision: u64,
    pub kind: EventKind,
    pub key: String,
    /// The new value; for `Deleted`, the last value the key had.
    pub value: Bytes,
    /// The value before this write: `None` for `Created`, the old value for `Modified` and
    /// `Deleted`.
    pub prev_value: Option<Bytes>,
    pub create_revision: u64,
}

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("key already exists")]
    AlreadyExists,
    #[error("key not found")]
    NotFound,
    #[error("precondition failed: the current mod revision is {current_mod_revision}")]
    Conflict { current_mod_revision: u64 },
    /// The requested revision is older than the retained event window; `oldest` is the oldest
    /// revision a watch can start after. The message is kube-apiserver's.
    #[error("too old resource version: {requested} ({oldest})")]
    Compacted { requested: u64, oldest: u64 },
    /// A watcher did not keep up: more than `capacity` live events were waiting for it.
    #[error("watcher fell more than {capacity} events behind and was closed")]
    WatchOverflow { capacity: usize },
    #[error("the store is closed")]
    Closed,
    #[error("storage error: {0}")]
    Io(String),
}

fn io_error(err: impl std::fmt::Display) -> StoreError {
    StoreError::Io(err.to_string())
}

/// The durable revisioned store. Cheap to clone; all clones share one database.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    commands: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
    done: tokio::sync::watch::Receiver<bool>,
    writer_thread: Mutex<Option<JoinHandle<()>>>,
}

/// State shared by the handles and the writer thread.
pub(crate) struct Shared {
    pub(crate) state: RwLock<State>,
    /// Registered watchers. Locked only while `state` is held (in either mode), which is what
    /// orders registration against the publication of events.
    pub(crate) watchers: Mutex<Vec<Arc<WatchQueue>>>,
}

pub(crate) struct State {
    pub(crate) records: BTreeMap<String, Record>,
    pub(crate) revision: u64,
    /// The retained event window, oldest first, contiguous in revision.
    pub(crate) events: VecDeque<Event>,
    pub(crate) closed: bool,
}

impl State {
    fn oldest_watchable_revision(&self) -> u64 {
        match self.events.front() {
            Some(oldest) => oldest.revision - 1,
            None => self.revision,
        }
    }
}

// A panic elsewhere must not make the store unusable: the data behind these locks is only
// changed in steps that cannot panic half-way.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

impl Store {
    /// Opens (creating if needed) the store in `dir`, restoring records, the revision counter
    /// and the persisted event window.
    pub fn open(dir: &Path, opts: StoreOptions) -> Result<Store, StoreError> {
        let retention = opts.watch_retention_events.max(1);
        std::fs::create_dir_all(dir).map_err(io_error)?;
        let db = Database::create(dir.join(DATABASE_FILE)).map_err(io_error)?;
        let state = load(&db, retention)?;
        let shared = Arc::new(Shared {
            state: RwLock::new(state),
            watchers: Mutex::new(Vec::new()),
        });
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (done_tx, done) = tokio::sync::watch::channel(false);
        let writer = Writer {
            db,
            shared: shared.clone(),
            durable: opts.durable,
            retention,
            commands: command_rx,
            done: done_tx,
        };
        let writer_thread = std::thread::Builder::new()
            .name("kubeport-store-writer".into())
            .spawn(move || writer.run())
            .map_err(io_error)?;
        Ok(Store {
            inner: Arc::new(Inner {
                commands,
                shared,
                done,
                writer_thread: Mutex::new(Some(writer_thread)),
            }),
        })
    }

    /// The revision of the last committed write (0 for an empty store).
    pub fn revision(&self) -> u64 {
        read(&self.inner.shared.state).revision
    }

    /// The current record for `key`.
    pub fn get(&self, key: &str) -> Option<Record> {
        read(&self.inner.shared.state).records.get(key).cloned()
    }

    /// Records whose key starts with `prefix`, sorted by key, only keys after `start_after` if
    /// given, at most `limit` of them (0 = all). Returns the records, the revision at which this
    /// view is consistent, and whether more records remain after the last one returned.
    pub fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> (Vec<Record>, u64, bool) {
        let state = read(&self.inner.shared.state);
        let lower = match start_after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        let mut matching = state
            .records
            .range::<str, _>((lower, Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(_, record)| record);
        let records: Vec<Record> = if limit == 0 {
            matching.by_ref().cloned().collect()
        } else {
            matching.by_ref().take(limit).cloned().collect()
        };
        let more = matching.next().is_some();
        (records, state.revision, more)
    }

    /// How many records have a key starting with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        read(&self.inner.shared.state)
            .records
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix))
            .count()
    }

    /// Creates `key`; [`StoreError::AlreadyExists`] if it exists.
    pub async fn create(&self, key: &str, value: Bytes) -> Result<Record, StoreError> {
        self.submit(WriteOp::Create {
            key: key.to_string(),
            value,
        })
        .await
    }

    /// Replaces the value of `key`. With `expected_mod_revision: Some(r)` the write fails with
    /// [`StoreError::Conflict`] unless the current `mod_revision` is `r`;
    /// [`StoreError::NotFound`] if the key does not exist.
    pub async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected_mod_revision: Option<u64>,
    ) -> Result<Record, StoreError> {
        self.submit(WriteOp::Update {
            key: key.to_string(),
            value,
            expected_mod_revision,
        })
        .await
    }

    /// Deletes `key` under the same preconditions as [`Store::update`]. Returns the deleted
    /// record with `mod_revision` set to the deletion's revision.
    pub async fn delete(
        &self,
        key: &str,
        expected_mod_revision: Option<u64>,
    ) -> Result<Record, StoreError> {
        self.submit(WriteOp::Delete {
            key: key.to_string(),
            expected_mod_revision,
        })
        .await
    }

    async fn submit(&self, op: WriteOp) -> Result<Record, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .commands
            .send(Command::Write(op, reply))
            .map_err(|_| StoreError::Closed)?;
        answer.await.unwrap_or(Err(StoreError::Closed))
    }

    /// Events for keys starting with `prefix` with revision > `after_revision`, in revision
    /// order: first those already committed, then live ones, with no gap or duplicate between
    /// them. [`StoreError::Compacted`] if `after_revision` is older than
    /// [`Store::oldest_watchable_revision`].
    pub fn watch(&self, prefix: &str, after_revision: u64) -> Result<Watcher, StoreError> {
        self.watch_with_buffer(prefix, after_revision, DEFAULT_WATCH_BUFFER_EVENTS)
    }

    /// [`Store::watch`] with a chosen limit on queued live events; a watcher that falls further
    /// behind ends with [`StoreError::WatchOverflow`] after the events it already has.
    pub fn watch_with_buffer(
        &self,
        prefix: &str,
        after_revision: u64,
        buffer_events: usize,
    ) -> Result<Watcher, StoreError> {
        let shared = &self.inner.shared;
        // Holding the state lock while registering means the writer publishes each event either
        // before the backlog is copied (so it is in the backlog) or after the watcher is
        // registered (so it is delivered live).
        let state = read(&shared.state);
        if state.closed {
            return Err(StoreError::Closed);
        }
        let oldest = state.oldest_watchable_revision();
        if after_revision < oldest {
            return Err(StoreError::Compacted {
                requested: after_revision,
                oldest,
            });
        }
        let first_newer = state
            .events
            .partition_point(|event| event.revision <= after_revision);
        let backlog: VecDeque<Event> = state
            .events
            .range(first_newer..)
            .filter(|event| event.key.starts_with(prefix))
            .cloned()
            .collect();
        let queue = WatchQueue::new(prefix.to_string(), buffer_events);
        lock(&shared.watchers).push(queue.clone());
        drop(state);
        Ok(Watcher::new(backlog, queue))
    }

    /// The oldest revision a watch can start after: the revision just before the oldest retained
    /// event (the current revision if no event is retained).
    pub fn oldest_watchable_revision(&self) -> u64 {
        read(&self.inner.shared.state).oldest_watchable_revision()
    }

    /// Commits what is queued, refuses later writes with [`StoreError::Closed`], ends all
    /// watchers with [`StoreError::Closed`] and closes the database file.
    pub async fn close(&self) {
        let _ = self.inner.commands.send(Command::Close);
        let mut done = self.inner.done.clone();
        // An error means the writer thread is gone, which also releases the file.
        let _ = done.wait_for(|closed| *closed).await;
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone: stop the writer and wait for it so the file is released
        // (and can be reopened) once the store is dropped.
        let _ = self.commands.send(Command::Close);
        if let Some(thread) = lock(&self.writer_thread).take() {
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = read(&self.inner.shared.state);
        f.debug_struct("Store")
            .field("revision", &state.revision)
            .field("records", &state.records.len())
            .field("retained_events", &state.events.len())
            .field("closed", &state.closed)
            .finish()
    }
}

/// Reads the persisted state: all records, the revision and the newest `retention` events.
fn load(db: &Database, retention: usize) -> Result<State, StoreError> {
    // Creating the tables up front lets every later read assume they exist.
    let txn = db.begin_write().map_err(io_error)?;
    txn.open_table(RECORDS).map_err(io_error)?;
    txn.open_table(EVENTS).map_err(io_error)?;
    txn.open_table(META).map_err(io_error)?;
    txn.commit().map_err(io_error)?;

    let txn = db.begin_read().map_err(io_error)?;
    let mut records = BTreeMap::new();
    for entry in txn
        .open_table(RECORDS)
        .map_err(io_error)?
        .iter()
        .map_err(io_error)?
    {
        let (key, raw) = entry.map_err(io_error)?;
        let record = codec::decode_record(key.value(), raw.value())?;
        records.insert(record.key.clone(), record);
    }
    let stored_revision = txn
        .open_table(META)
        .map_err(io_error)?
        .get(META_REVISION)
        .map_err(io_error)?
        .map_or(0, |revision| revision.value());

    let event_table = txn.open_table(EVENTS).map_err(io_error)?;
    let last_event = event_table
        .last()
        .map_err(io_error)?
        .map_or(0, |(revision, _)| revision.value());
    let first_kept = last_event.saturating_sub(retention as u64) + 1;
    let mut events = VecDeque::new();
    for entry in event_table.range(first_kept..).map_err(io_error)? {
        let (revision, raw) = entry.map_err(io_error)?;
        events.push_back(codec::decode_event(revision.value(), raw.value())?);
    }
    Ok(State {
        records,
        revision: stored_revision.max(last_event),
        events,
        closed: false,
    })
}
