//! kind's progress display: ` • step  ...` while a step runs, then ` ✓ step` or ` ✗ step`
//! (on a terminal the running line is replaced in place).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Progress of a multi-step command, printed on stderr as kind prints it.
pub struct Status {
    current: Option<(String, Instant)>,
    tty: bool,
    /// Finished steps and how long each took (for `--timings`).
    pub timings: Vec<(String, Duration)>,
}

impl Default for Status {
    fn default() -> Self {
        Self::new()
    }
}

impl Status {
    pub fn new() -> Self {
        Status {
            current: None,
            tty: std::io::stderr().is_terminal(),
            timings: Vec::new(),
        }
    }

    /// Ends the running step (successfully) and starts `step`.
    pub fn start(&mut self, step: impl Into<String>) {
        self.end(true);
        let step = step.into();
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, " • {step}  ...");
        } else {
            let _ = writeln!(err, " • {step}  ...");
        }
        let _ = err.flush();
        self.current = Some((step, Instant::now()));
    }

    /// Ends the running step, if any, with a check mark or a cross.
    pub fn end(&mut self, success: bool) {
        let Some((step, started)) = self.current.take() else {
            return;
        };
        let mark = if success { '✓' } else { '✗' };
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K");
        }
        let _ = writeln!(err, " {mark} {step}");
        self.timings.push((step, started.elapsed()));
    }
}
