//! A work queue with client-go's workqueue guarantees: a key queued several times is processed
//! once, a key is never processed by two workers at once (a key added while it is being
//! processed is handled again afterwards), and failed keys come back with per-key exponential
//! backoff.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// First retry delay after a failure; doubles per consecutive failure (client-go: 5 ms).
pub const BASE_BACKOFF: Duration = Duration::from_millis(5);
/// Upper bound of the retry delay (client-go uses 1000 s; controllers here retry sooner).
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

struct State<T> {
    queue: VecDeque<T>,
    /// Keys waiting to be processed (queued, or re-added while processing).
    dirty: HashSet<T>,
    processing: HashSet<T>,
    failures: HashMap<T, u32>,
    shut_down: bool,
}

/// A deduplicating, rate-limited work queue of keys.
pub struct WorkQueue<T> {
    state: Mutex<State<T>>,
    notify: Notify,
}

impl<T: Clone + Eq + Hash + Send + 'static> WorkQueue<T> {
    pub fn new() -> Arc<Self> {
        Arc::new(WorkQueue {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                dirty: HashSet::new(),
                processing: HashSet::new(),
                failures: HashMap::new(),
                shut_down: false,
            }),
            notify: Notify::new(),
        })
    }

    /// Queues a key unless it is already waiting.
    pub fn add(&self, item: T) {
        let mut s = self.state.lock().unwrap();
        if s.shut_down || s.dirty.contains(&item) {
            return;
        }
        s.dirty.insert(item.clone());
        if !s.processing.contains(&item) {
            s.queue.push_back(item);
            drop(s);
            self.notify.notify_one();
        }
    }

    /// Queues a key after a delay.
    pub fn add_after(self: &Arc<Self>, item: T, delay: Duration) {
        if delay.is_zero() {
            self.add(item);
            return;
        }
        let q = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            q.add(item);
        });
    }

    /// Queues a key after its backoff: 5 ms doubled per consecutive failure.
    pub fn add_rate_limited(self: &Arc<Self>, item: T) {
        let delay = {
            let mut s = self.state.lock().unwrap();
            let n = s.failures.entry(item.clone()).or_insert(0);
            let d = backoff(*n);
            *n = n.saturating_add(1);
            d
        };
        self.add_after(item, delay);
    }

    /// Clears a key's failure history (after a successful reconcile).
    pub fn forget(&self, item: &T) {
        self.state.lock().unwrap().failures.remove(item);
    }

    /// How many consecutive failures a key has had.
    pub fn requeues(&self, item: &T) -> u32 {
        self.state
            .lock()
            .unwrap()
            .failures
            .get(item)
            .copied()
            .unwrap_or(0)
    }

    /// Waits for the next key; None once shut down. Call [`WorkQueue::done`] afterwards.
    pub async fn get(&self) -> Option<T> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut s = self.state.lock().unwrap();
                if s.shut_down {
                    return None;
                }
                if let Some(item) = s.queue.pop_front() {
                    s.dirty.remove(&item);
                    s.processing.insert(item.clone());
                    let more = !s.queue.is_empty();
                    drop(s);
                    if more {
                        // Another worker may be idle while keys remain.
                        self.notify.notify_one();
                    }
                    return Some(item);
                }
            }
            notified.await;
        }
    }

    /// Marks a key as processed; re-queues it if it was added meanwhile.
    pub fn done(&self, item: &T) {
        let mut s = self.state.lock().unwrap();
        s.processing.remove(item);
        if s.dirty.contains(item) {
            s.queue.push_back(item.clone());
            drop(s);
            self.notify.notify_one();
        }
    }

    /// Number of keys waiting (not counting those being processed).
    pub fn len(&self) -> usize {
        self.state.lock().unwrap().queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether nothing is queued or being processed.
    pub fn is_idle(&self) -> bool {
        let s = self.state.lock().unwrap();
        s.queue.is_empty() && s.processing.is_empty()
    }

    /// Stops handing out keys; waiting workers return None.
    pub fn shut_down(&self) {
        self.state.lock().unwrap().shut_down = true;
        self.notify.notify_waiters();
    }
}

/// The delay before the `n`-th retry (0-based).
pub fn backoff(n: u32) -> Duration {
    let factor = 1u64.checked_shl(n.min(40)).unwrap_or(u64::MAX);
    let nanos = (BASE_BACKOFF.as_nanos() as u64).saturating_mul(factor);
    Duration::from_nanos(nanos).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn deduplicates_and_serialises_a_key() {
        let q: Arc<WorkQueue<String>> = WorkQueue::new();
        q.add("a".into());
        q.add("a".into());
        q.add("b".into());
        assert_eq!(q.len(), 2);
        let a = q.get().await.unwrap();
        assert_eq!(a, "a");
        // Re-adding while processing does not hand it to another worker...
        q.add("a".into());
        assert_eq!(q.get().await.unwrap(), "b");
        assert!(q.is_empty());
        // ...but it comes back once the first worker is done.
        q.done(&a);
        assert_eq!(q.get().await.unwrap(), "a");
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(0), Duration::from_millis(5));
        assert_eq!(backoff(1), Duration::from_millis(10));
        assert_eq!(backoff(4), Duration::from_millis(80));
        assert_eq!(backoff(60), MAX_BACKOFF);
    }

    #[tokio::test]
    async fn rate_limited_keys_return_after_their_backoff() {
        let q: Arc<WorkQueue<u32>> = WorkQueue::new();
        q.add_rate_limited(7);
        assert_eq!(q.requeues(&7), 1);
        let got = tokio::time::timeout(Duration::from_secs(1), q.get()).await;
        assert_eq!(got.unwrap(), Some(7));
        q.forget(&7);
        assert_eq!(q.requeues(&7), 0);
    }
}
