//! The only kernel-facing part: runs a transaction through `nft -f -`.

use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Why `nft` did not apply a transaction.
#[derive(Debug)]
pub enum ApplyError {
    /// `nft` could not be started or fed.
    Io(std::io::Error),
    /// `nft` ran and refused the transaction (nothing was changed: transactions are atomic).
    Rejected { status: Option<i32>, stderr: String },
}

impl fmt::Display for ApplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApplyError::Io(err) => write!(f, "running nft: {err}"),
            ApplyError::Rejected { status, stderr } => match status {
                Some(code) => write!(f, "nft exited with status {code}: {}", stderr.trim_end()),
                None => write!(f, "nft was killed by a signal: {}", stderr.trim_end()),
            },
        }
    }
}

impl std::error::Error for ApplyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ApplyError::Io(err) => Some(err),
            ApplyError::Rejected { .. } => None,
        }
    }
}

/// The `nft` program.
#[derive(Debug, Clone)]
pub struct Nft {
    program: PathBuf,
}

impl Default for Nft {
    fn default() -> Self {
        Nft {
            program: PathBuf::from("nft"),
        }
    }
}

impl Nft {
    /// `nft` found through `PATH`.
    pub fn new() -> Self {
        Self::default()
    }

    /// A specific `nft` binary.
    pub fn with_program(program: impl Into<PathBuf>) -> Self {
        Nft {
            program: program.into(),
        }
    }

    /// Applies a transaction atomically (`nft -f -`).
    pub fn apply(&self, transaction: &str) -> Result<(), ApplyError> {
        self.run(&["-f", "-"], transaction)
    }

    /// Validates a transaction without changing anything (`nft -c -f -`).
    pub fn check(&self, transaction: &str) -> Result<(), ApplyError> {
        self.run(&["-c", "-f", "-"], transaction)
    }

    fn run(&self, args: &[&str], input: &str) -> Result<(), ApplyError> {
        let mut child = Command::new(&self.program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(ApplyError::Io)?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input.as_bytes()).map_err(ApplyError::Io)?;
        }
        let output = child.wait_with_output().map_err(ApplyError::Io)?;
        if output.status.success() {
            Ok(())
        } else {
            Err(ApplyError::Rejected {
                status: output.status.code(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            })
        }
    }
}
