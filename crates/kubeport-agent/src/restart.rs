//! Restart decisions (restartPolicy) and kubelet's crash-loop back-off.

use std::time::Duration;

/// The pod's `restartPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("OnFailure") => RestartPolicy::OnFailure,
            Some("Never") => RestartPolicy::Never,
            _ => RestartPolicy::Always,
        }
    }

    /// Whether a container that exited with `exit_code` is started again.
    pub fn restarts(self, exit_code: i32) -> bool {
        match self {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => exit_code != 0,
            RestartPolicy::Never => false,
        }
    }
}

/// Environment variable that scales the back-off (milliseconds for the first delay; the
/// maximum stays 30 times that). For tests; kubelet's values are 10 s and 5 min.
pub const BACKOFF_ENV: &str = "KUBEPORT_AGENT_BACKOFF_BASE_MS";

/// Crash-loop back-off: the first restart is immediate, later ones wait 10 s, 20 s, 40 s, …
/// up to 5 min; a container that ran longer than twice the maximum starts a fresh streak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(10),
            max: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// kubelet's values, or the scaled ones from `KUBEPORT_AGENT_BACKOFF_BASE_MS`.
    pub fn from_env() -> Self {
        match std::env::var(BACKOFF_ENV)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
        {
            Some(ms) => Backoff {
                base: Duration::from_millis(ms),
                max: Duration::from_millis(ms.saturating_mul(30)),
            },
            None => Backoff::default(),
        }
    }

    /// The delay before the next start, given how many restarts the current crash streak
    /// already had (0 for the first exit).
    pub fn delay(&self, streak: u32) -> Duration {
        if streak == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32.checked_shl(streak - 1).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// Whether a run of `ran` resets the streak.
    pub fn resets_after(&self, ran: Duration) -> bool {
        ran >= self.max * 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies() {
        assert!(RestartPolicy::parse(None).restarts(0));
        assert!(RestartPolicy::parse(Some("Always")).restarts(1));
        assert!(!RestartPolicy::parse(Some("OnFailure")).restarts(0));
        assert!(RestartPolicy::parse(Some("OnFailure")).restarts(137));
        assert!(!RestartPolicy::parse(Some("Never")).restarts(1));
    }

    #[test]
    fn backoff_doubles_from_ten_seconds_to_five_minutes() {
        let b = Backoff::default();
        let delays: Vec<u64> = (0..8).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(delays, vec![0, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(b.delay(100).as_secs(), 300);
        assert!(!b.resets_after(Duration::from_secs(599)));
        assert!(b.resets_after(Duration::from_secs(600)));
    }
}
