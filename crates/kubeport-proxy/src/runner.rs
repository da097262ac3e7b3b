//! Bounded-frequency sync scheduling (kube-proxy's `BoundedFrequencyRunner`): a sync runs
//! when requested, but at most `burst` syncs back to back and then one per `min_interval`
//! (requests arriving in between are coalesced into one sync); with no request a sync runs
//! every `max_interval`; a failed sync is retried after a backoff.

use std::time::{Duration, Instant};

/// The schedule, as a pure state machine over explicit instants.
#[derive(Debug, Clone)]
pub struct RunnerSchedule {
    min_interval: Duration,
    max_interval: Duration,
    burst: f64,
    /// Token bucket: one token per `min_interval`, at most `burst`.
    tokens: f64,
    refilled_at: Instant,
    /// Earliest instant a requested (or retried / follow-up) sync is wanted.
    wanted_at: Option<Instant>,
    last_run: Instant,
}

impl RunnerSchedule {
    /// A schedule whose first sync is wanted right away.
    pub fn new(min_interval: Duration, max_interval: Duration, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        RunnerSchedule {
            min_interval,
            max_interval,
            burst,
            tokens: burst,
            refilled_at: now,
            wanted_at: Some(now),
            last_run: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        if self.min_interval.is_zero() {
            self.tokens = self.burst;
        } else {
            let elapsed = now.saturating_duration_since(self.refilled_at);
            self.tokens = (self.tokens + elapsed.as_secs_f64() / self.min_interval.as_secs_f64())
                .min(self.burst);
        }
        self.refilled_at = now;
    }

    /// A sync is needed as soon as allowed.
    pub fn request(&mut self, now: Instant) {
        self.request_at(now);
    }

    /// A sync is needed at `at` (or earlier if something else asks).
    pub fn request_at(&mut self, at: Instant) {
        self.wanted_at = Some(self.wanted_at.map_or(at, |wanted| wanted.min(at)));
    }

    /// Whether a sync is wanted (requested, retried, or followed up), ignoring the periodic one.
    pub fn is_pending(&self) -> bool {
        self.wanted_at.is_some()
    }

    /// When the next sync should start.
    pub fn next_run(&self, now: Instant) -> Instant {
        let periodic = self.last_run + self.max_interval;
        let Some(wanted) = self.wanted_at else {
            return periodic;
        };
        // Earliest instant a token is available.
        let mut schedule = self.clone();
        schedule.refill(now);
        let token_at = if schedule.tokens >= 1.0 {
            now
        } else {
            now + self
                .min_interval
                .mul_f64((1.0 - schedule.tokens).clamp(0.0, 1.0))
        };
        wanted.max(token_at).min(periodic.max(token_at))
    }

    /// Records that a sync starts now (consuming a token and any pending request).
    pub fn start_run(&mut self, now: Instant) {
        self.refill(now);
        self.tokens = (self.tokens - 1.0).max(0.0);
        self.wanted_at = None;
        self.last_run = now;
    }
}

/// Exponential backoff for retrying failed syncs.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Option<Duration>,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            current: None,
        }
    }

    /// The delay before the next retry: `initial`, then doubling up to `max`.
    pub fn next_delay(&mut self) -> Duration {
        let next = match self.current {
            None => self.initial,
            Some(current) => (current * 2).min(self.max),
        };
        self.current = Some(next);
        next
    }

    /// A success resets the delay.
    pub fn reset(&mut self) {
        self.current = None;
    }

    /// The last delay handed out (`None` after a success).
    pub fn current(&self) -> Option<Duration> {
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(30);

    #[test]
    fn first_sync_is_immediate_and_periodic_syncs_follow() {
        let t0 = Instant::now();
        let mut s = RunnerSchedule::new(MIN, MAX, 2, t0);
        assert_eq!(s.next_run(t0), t0);
        s.start_run(t0);
        assert!(!s.is_pending());
        assert_eq!(s.next_run(t0), t0 + MAX);
    }

    #[test]
    fn bursts_then_one_per_min_interval() {
        let t0 = Instant::now();
        let mut s = RunnerSchedule::new(MIN, MAX, 2, t0);
        s.start_run(t0); // token 1 of 2
        s.request(t0);
        assert_eq!(s.next_run(t0), t0); // burst: second token
        s.start_run(t0);
        s.request(t0);
        // Bucket empty: wait a full interval.
        assert_eq!(s.next_run(t0), t0 + MIN);
        let t1 = t0 + Duration::from_millis(400);
        // Requests in between coalesce: still one sync at t0 + MIN.
        s.request(t1);
        assert_eq!(s.next_run(t1), t0 + MIN);
        s.start_run(t0 + MIN);
        assert!(!s.is_pending());
        assert_eq!(s.next_run(t0 + MIN), t0 + MIN + MAX);
    }

    #[test]
    fn delayed_requests_wait_for_their_time() {
        let t0 = Instant::now();
        let mut s = RunnerSchedule::new(MIN, MAX, 2, t0);
        s.start_run(t0);
        s.request_at(t0 + Duration::from_secs(5));
        assert_eq!(s.next_run(t0), t0 + Duration::from_secs(5));
        // An immediate request wins over the later one.
        s.request(t0 + Duration::from_secs(1));
        assert_eq!(
            s.next_run(t0 + Duration::from_secs(1)),
            t0 + Duration::from_secs(1)
        );
    }

    #[test]
    fn zero_min_interval_never_waits() {
        let t0 = Instant::now();
        let mut s = RunnerSchedule::new(Duration::ZERO, MAX, 2, t0);
        for _ in 0..5 {
            s.start_run(t0);
            s.request(t0);
            assert_eq!(s.next_run(t0), t0);
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        let delays: Vec<u64> = (0..5).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(delays, vec![1, 2, 4, 5, 5]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_secs(1));
    }
}
