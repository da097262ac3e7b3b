//! The single writer thread: group commit of queued writes into one durable redb transaction.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use redb::{Database, Durability, ReadableTable, TableDefinition};
use tokio::sync::{mpsc, oneshot};

use crate::codec::{encode_event, encode_record};
use crate::watch::Delivery;
use crate::{lock, read, write, Event, EventKind, Record, Shared, StoreError};

pub(crate) const RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("records");
pub(crate) const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(crate) const META_REVISION: &str = "revision";

/// Upper bound on writes per transaction, so one huge burst does not delay every caller in it.
const MAX_BATCH: usize = 4096;
/// With `durable: false`, how often a commit is still made durable anyway.
const NON_DURABLE_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

pub(crate) type Reply = oneshot::Sender<Result<Record, StoreError>>;

pub(crate) enum WriteOp {
    Create {
        key: String,
        value: Bytes,
    },
    Update {
        key: String,
        value: Bytes,
        expected_mod_revision: Option<u64>,
    },
    Delete {
        key: String,
        expected_mod_revision: Option<u64>,
    },
}

impl WriteOp {
    fn key(&self) -> &str {
        match self {
            WriteOp::Create { key, .. }
            | WriteOp::Update { key, .. }
            | WriteOp::Delete { key, .. } => key,
        }
    }
}

pub(crate) enum Command {
    Write(WriteOp, Reply),
    Close,
}

pub(crate) struct Writer {
    pub(crate) db: Database,
    pub(crate) shared: Arc<Shared>,
    pub(crate) durable: bool,
    pub(crate) retention: usize,
    pub(crate) commands: mpsc::UnboundedReceiver<Command>,
    /// Flipped to `true` once the database file is closed, so `Store::close` can wait for it.
    pub(crate) done: tokio::sync::watch::Sender<bool>,
}

impl Writer {
    pub(crate) fn run(mut self) {
        let mut last_durable_commit = Instant::now();
        let mut queued = Vec::new();
        let mut batch = Vec::new();
        'serve: while let Some(first) = self.commands.blocking_recv() {
            // Group commit: everything that queued up while the previous batch was being
            // committed goes into this transaction.
            queued.push(first);
            while queued.len() < MAX_BATCH {
                match self.commands.try_recv() {
                    Ok(command) => queued.push(command),
                    Err(_) => break,
                }
            }
            let mut closing = false;
            for command in queued.drain(..) {
                match command {
                    Command::Write(op, reply) if !closing => batch.push((op, reply)),
                    Command::Write(_, reply) => {
                        let _ = reply.send(Err(StoreError::Closed));
                    }
                    Command::Close => closing = true,
                }
            }
            if !batch.is_empty() {
                let durable = self.durable
                    || last_durable_commit.elapsed() >= NON_DURABLE_FLUSH_INTERVAL
                    || closing;
                self.commit_batch(std::mem::take(&mut batch), durable);
                if durable {
                    last_durable_commit = Instant::now();
                }
            }
            if closing {
                break 'serve;
            }
        }
        self.shutdown();
    }

    fn shutdown(mut self) {
        // Refuse whatever is still queued, in order, before releasing the file.
        self.commands.close();
        while let Ok(command) = self.commands.try_recv() {
            if let Command::Write(_, reply) = command {
                let _ = reply.send(Err(StoreError::Closed));
            }
        }
        if !self.durable {
            // Earlier non-durable commits reach the disk with this one.
            let flushed = self
                .db
                .begin_write()
                .map_err(redb::Error::from)
                .and_then(|txn| {
                    txn.commit()?;
                    Ok(())
                });
            if let Err(err) = flushed {
                tracing::error!(error = %err, "final flush of the store failed");
            }
        }
        {
            let mut state = write(&self.shared.state);
            state.closed = true;
            let mut watchers = lock(&self.shared.watchers);
            for watcher in watchers.drain(..) {
                watcher.finish(StoreError::Closed);
            }
        }
        if let Err(err) = self.db.close() {
            tracing::error!(error = %err, "closing the store database failed");
        }
        self.done.send_replace(true);
    }

    /// Applies a batch of writes in queue order within one transaction and answers each after
    /// the transaction is committed and visible in memory.
    fn commit_batch(&mut self, batch: Vec<(WriteOp, Reply)>, durable: bool) {
        let base_revision = read(&self.shared.state).revision;
        let mut staged = Staged {
            revision: base_revision,
            overlay: HashMap::new(),
            events: Vec::new(),
        };
        let mut outcomes = Vec::with_capacity(batch.len());
        let result = self.write_transaction(&batch, &mut staged, &mut outcomes, durable);
        if let Err(err) = result {
            tracing::error!(error = %err, "store write transaction failed");
            let message = err.to_string();
            for (_, reply) in batch {
                let _ = reply.send(Err(StoreError::Io(message.clone())));
            }
            return;
        }
        if !staged.events.is_empty() {
            self.publish(staged);
        }
        for ((_, reply), outcome) in batch.into_iter().zip(outcomes) {
            let _ = reply.send(outcome);
        }
    }

    fn write_transaction(
        &self,
        batch: &[(WriteOp, Reply)],
        staged: &mut Staged,
        outcomes: &mut Vec<Result<Record, StoreError>>,
        durable: bool,
    ) -> Result<(), redb::Error> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(if durable {
            Durability::Immediate
        } else {
            Durability::None
        })?;
        {
            let mut records = txn.open_table(RECORDS)?;
            let mut events = txn.open_table(EVENTS)?;
            let mut meta = txn.open_table(META)?;
            for (op, _) in batch {
                let current = staged.current(&self.shared, op.key());
                let outcome = match decide(op, current, staged.revision + 1) {
                    Ok((record, event)) => {
                        match event.kind {
                            EventKind::Deleted => {
                                records.remove(record.key.as_str())?;
                            }
                            EventKind::Created | EventKind::Modified => {
                                let encoded = encode_record(
                                    record.create_revision,
                                    record.mod_revision,
                                    &record.value,
                                );
                                records.insert(record.key.as_str(), encoded.as_slice())?;
                            }
                        }
                        events.insert(event.revision, encode_event(&event).as_slice())?;
                        staged.revision = event.revision;
                        staged.overlay.insert(
                            record.key.clone(),
                            (event.kind != EventKind::Deleted).then(|| record.clone()),
                        );
                        staged.events.push(event);
                        Ok(record)
                    }
                    Err(err) => Err(err),
                };
                outcomes.push(outcome);
            }
            if staged.events.is_empty() {
                drop((records, events, meta));
                txn.abort()?;
                return Ok(());
            }
            // Keep the persisted event window the same size as the in-memory one.
            let cutoff = staged.revision.saturating_sub(self.retention as u64);
            if cutoff > 0 {
                let first_retained = events.first()?.map(|(revision, _)| revision.value());
                if first_retained.is_some_and(|first| first <= cutoff) {
                    events.retain_in(..=cutoff, |_, _| false)?;
                }
            }
            meta.insert(META_REVISION, staged.revision)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Makes a committed batch visible: records, revision, event log and watchers change under
    /// one lock, so a concurrent `watch` sees each event either in its backlog or live, never
    /// both and never neither.
    fn publish(&self, staged: Staged) {
        let mut state = write(&self.shared.state);
        for (key, record) in staged.overlay {
            match record {
                Some(record) => {
                    state.records.insert(key, record);
                }
                None => {
                    state.records.remove(&key);
                }
            }
        }
        state.revision = staged.revision;
        state.events.extend(staged.events.iter().cloned());
        while state.events.len() > self.retention {
            state.events.pop_front();
        }
        let mut watchers = lock(&self.shared.watchers);
        watchers.retain(|watcher| watcher.offer(&staged.events) == Delivery::Keep);
    }
}

/// The effect of the writes of a batch so far, not yet committed.
struct Staged {
    revision: u64,
    /// Records written by this batch; `None` for deleted keys.
    overlay: HashMap<String, Option<Record>>,
    events: Vec<Event>,
}

impl Staged {
    /// The record a write sees: earlier writes of the same batch win over committed state.
    fn current(&self, shared: &Shared, key: &str) -> Option<Record> {
        match self.overlay.get(key) {
            Some(staged) => staged.clone(),
            None => read(&shared.state).records.get(key).cloned(),
        }
    }
}

/// Checks a write's precondition against the current record and, if it holds, returns the
/// resulting record and event at `revision`.
fn decide(
    op: &WriteOp,
    current: Option<Record>,
    revision: u64,
) -> Result<(Record, Event), StoreError> {
    let check = |current: &Record, expected: Option<u64>| match expected {
        Some(expected) if expected != current.mod_revision => Err(StoreError::Conflict {
            current_mod_revision: current.mod_revision,
        }),
        _ => Ok(()),
    };
    match (op, current) {
        (WriteOp::Create { .. }, Some(_)) => Err(StoreError::AlreadyExists),
        (WriteOp::Create { key, value }, None) => Ok((
            Record {
                key: key.clone(),
                value: value.clone(),
                create_revision: revision,
                mod_revision: revision,
            },
            Event {
                revision,
                kind: EventKind::Created,
                key: key.clone(),
                value: value.clone(),
                prev_value: None,
                create_revision: revision,
            },
        )),
        (WriteOp::Update { .. } | WriteOp::Delete { .. }, None) => Err(StoreError::NotFound),
        (
            WriteOp::Update {
                key,
                value,
                expected_mod_revision,
            },
            Some(current),
        ) => {
            check(&current, *expected_mod_revision)?;
            Ok((
                Record {
                    key: key.clone(),
                    value: value.clone(),
                    create_revision: current.create_revision,
                    mod_revision: revision,
                },
                Event {
                    revision,
                    kind: EventKind::Modified,
                    key: key.clone(),
                    value: value.clone(),
                    prev_value: Some(current.value),
                    create_revision: current.create_revision,
                },
            ))
        }
        (
            WriteOp::Delete {
                key,
                expected_mod_revision,
            },
            Some(current),
        ) => {
            check(&current, *expected_mod_revision)?;
            Ok((
                Record {
                    key: key.clone(),
                    value: current.value.clone(),
                    create_revision: current.create_revision,
                    mod_revision: revision,
                },
                Event {
                    revision,
                    kind: EventKind::Deleted,
                    key: key.clone(),
                    value: current.value.clone(),
                    prev_value: Some(current.value),
                    create_revision: current.create_revision,
                },
            ))
        }
    }
}
