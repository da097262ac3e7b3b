//! Watch streams: a backlog copied from the event log at registration, then live events the
//! writer pushes into a bounded per-watcher queue.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use futures::Stream;

use crate::{lock, Event, StoreError};

/// The live half of a watcher, shared between the writer (producer) and the [`Watcher`].
pub(crate) struct WatchQueue {
    pub(crate) prefix: String,
    capacity: usize,
    inner: Mutex<QueueInner>,
    /// Set when the [`Watcher`] is dropped so the writer unregisters it.
    receiver_dropped: AtomicBool,
}

struct QueueInner {
    events: VecDeque<Event>,
    /// Why the stream ends once `events` is drained; set at most once.
    end: Option<StoreError>,
    waker: Option<Waker>,
}

/// What the writer should do with a watcher after offering it events.
#[derive(PartialEq, Eq)]
pub(crate) enum Delivery {
    Keep,
    Unregister,
}

impl WatchQueue {
    pub(crate) fn new(prefix: String, capacity: usize) -> Arc<WatchQueue> {
        Arc::new(WatchQueue {
            prefix,
            capacity: capacity.max(1),
            inner: Mutex::new(QueueInner {
                events: VecDeque::new(),
                end: None,
                waker: None,
            }),
            receiver_dropped: AtomicBool::new(false),
        })
    }

    pub(crate) fn is_dropped(&self) -> bool {
        self.receiver_dropped.load(Ordering::Acquire)
    }

    /// Queues the events of one committed batch that match the prefix. A watcher whose queue
    /// would exceed its capacity keeps what it already has and then ends with
    /// [`StoreError::WatchOverflow`]: events are never dropped silently and a slow reader never
    /// makes the writer wait.
    pub(crate) fn offer(&self, batch: &[Event]) -> Delivery {
        if self.is_dropped() {
            return Delivery::Unregister;
        }
        let mut matching = batch
            .iter()
            .filter(|event| event.key.starts_with(&self.prefix))
            .peekable();
        if matching.peek().is_none() {
            return Delivery::Keep;
        }
        let mut inner = lock(&self.inner);
        let mut delivery = Delivery::Keep;
        for event in matching {
            if inner.events.len() >= self.capacity {
                inner.end = Some(StoreError::WatchOverflow {
                    capacity: self.capacity,
                });
                delivery = Delivery::Unregister;
                break;
            }
            inner.events.push_back(event.clone());
        }
        if let Some(waker) = inner.waker.take() {
            waker.wake();
        }
        delivery
    }

    /// Ends the stream after the events already queued (used when the store closes).
    pub(crate) fn finish(&self, reason: StoreError) {
        let mut inner = lock(&self.inner);
        if inner.end.is_none() {
            inner.end = Some(reason);
        }
        if let Some(waker) = inner.waker.take() {
            waker.wake();
        }
    }
}

/// A stream of events for keys under a prefix, in revision order, without gaps or duplicates.
///
/// Yields `Ok(event)` items; a final `Err` item tells why the stream ended
/// ([`StoreError::WatchOverflow`] if this watcher fell too far behind, [`StoreError::Closed`]
/// if the store closed), after which it yields `None`.
pub struct Watcher {
    backlog: VecDeque<Event>,
    queue: Arc<WatchQueue>,
    finished: bool,
}

impl Watcher {
    pub(crate) fn new(backlog: VecDeque<Event>, queue: Arc<WatchQueue>) -> Watcher {
        Watcher {
            backlog,
            queue,
            finished: false,
        }
    }

    /// The next event; `None` once the stream has ended.
    pub async fn next(&mut self) -> Option<Result<Event, StoreError>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// The key prefix this watcher follows.
    pub fn prefix(&self) -> &str {
        &self.queue.prefix
    }
}

impl Stream for Watcher {
    type Item = Result<Event, StoreError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        if let Some(event) = this.backlog.pop_front() {
            return Poll::Ready(Some(Ok(event)));
        }
        let mut inner = lock(&this.queue.inner);
        if let Some(event) = inner.events.pop_front() {
            return Poll::Ready(Some(Ok(event)));
        }
        if let Some(reason) = inner.end.take() {
            this.finished = true;
            return Poll::Ready(Some(Err(reason)));
        }
        match &inner.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => inner.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.queue.receiver_dropped.store(true, Ordering::Release);
    }
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("prefix", &self.queue.prefix)
            .field("backlog", &self.backlog.len())
            .field("finished", &self.finished)
            .finish()
    }
}
