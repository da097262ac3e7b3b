//! Per-controller counters: reconciles, failures, API writes and reconcile time.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Counters of one controller.
#[derive(Default, Debug)]
pub struct ControllerMetrics {
    reconciles: AtomicU64,
    errors: AtomicU64,
    writes: AtomicU64,
    reconcile_nanos: AtomicU64,
    max_reconcile_nanos: AtomicU64,
}

impl ControllerMetrics {
    /// Counts one API write (create, update, patch, delete, binding).
    pub fn write(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_reconcile(&self, took: Duration, failed: bool) {
        let n = took.as_nanos() as u64;
        self.reconciles.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.reconcile_nanos.fetch_add(n, Ordering::Relaxed);
        self.max_reconcile_nanos.fetch_max(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            reconciles: self.reconciles.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            reconcile_time: Duration::from_nanos(self.reconcile_nanos.load(Ordering::Relaxed)),
            max_reconcile_time: Duration::from_nanos(
                self.max_reconcile_nanos.load(Ordering::Relaxed),
            ),
        }
    }
}

/// A point-in-time copy of a controller's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    pub reconciles: u64,
    pub errors: u64,
    pub writes: u64,
    /// Sum of the wall time of all reconciles (including their API calls).
    pub reconcile_time: Duration,
    pub max_reconcile_time: Duration,
}

/// Counters of all controllers, by kube-controller-manager name.
#[derive(Default, Debug, Clone)]
pub struct Metrics {
    inner: Arc<Mutex<BTreeMap<&'static str, Arc<ControllerMetrics>>>>,
}

impl Metrics {
    pub fn controller(&self, name: &'static str) -> Arc<ControllerMetrics> {
        self.inner.lock().unwrap().entry(name).or_default().clone()
    }

    pub fn snapshot(&self) -> BTreeMap<&'static str, MetricsSnapshot> {
        self.inner
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (*k, v.snapshot()))
            .collect()
    }
}
