//! The only kernel-facing part: runs the nft-backed `iptables` tools (Debian's `iptables`
//! package: `iptables-nft`, `iptables-nft-restore`, `iptables-nft-save` and their `ip6tables`
//! twins).

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fmt;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use kubeport_proxy_model::IpFamily;

use crate::jumps::{canary_chains, saved_chains, CleanupCommands, JumpRule, Table};
use crate::names::{is_service_chain, KUBE_PROXY_CANARY};
use crate::proxier::FamilyRestore;

/// Why an iptables command failed.
#[derive(Debug)]
pub enum ApplyError {
    /// The program could not be started or fed.
    Io {
        program: String,
        error: std::io::Error,
    },
    /// The program ran and failed (a failed `iptables-restore` changes nothing: each table
    /// is committed atomically, and the filter table only when the nat one parsed too).
    Failed {
        command: String,
        status: Option<i32>,
        stderr: String,
    },
}

impl fmt::Display for ApplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApplyError::Io { program, error } => write!(f, "running {program}: {error}"),
            ApplyError::Failed {
                command,
                status,
                stderr,
            } => match status {
                Some(code) => write!(
                    f,
                    "{command} exited with status {code}: {}",
                    stderr.trim_end()
                ),
                None => write!(f, "{command} was killed by a signal: {}", stderr.trim_end()),
            },
        }
    }
}

impl std::error::Error for ApplyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ApplyError::Io { error, .. } => Some(error),
            ApplyError::Failed { .. } => None,
        }
    }
}

/// The iptables tools of one family, optionally run inside a named network namespace
/// (`ip netns exec NAME …`).
#[derive(Debug, Clone)]
pub struct Iptables {
    family: IpFamily,
    prefix: Vec<OsString>,
    iptables: OsString,
    restore: OsString,
    save: OsString,
}

/// `/usr/sbin/NAME` when it exists (it is often missing from a non-root `PATH`), else NAME.
fn program(name: &str) -> OsString {
    let sbin = Path::new("/usr/sbin").join(name);
    if sbin.exists() {
        sbin.into_os_string()
    } else {
        OsString::from(name)
    }
}

impl Iptables {
    /// The nft-backed tools of `family` (`iptables-nft*` or `ip6tables-nft*`), acting on the
    /// caller's network namespace.
    pub fn new(family: IpFamily) -> Self {
        let base = match family {
            IpFamily::V4 => "iptables",
            IpFamily::V6 => "ip6tables",
        };
        Iptables {
            family,
            prefix: Vec::new(),
            iptables: program(&format!("{base}-nft")),
            restore: program(&format!("{base}-nft-restore")),
            save: program(&format!("{base}-nft-save")),
        }
    }

    /// The same tools run through `ip netns exec NAMESPACE`.
    pub fn in_network_namespace(family: IpFamily, namespace: &str) -> Self {
        let mut tools = Self::new(family);
        tools.prefix = vec![
            program("ip"),
            "netns".into(),
            "exec".into(),
            namespace.into(),
        ];
        tools
    }

    pub fn family(&self) -> IpFamily {
        self.family
    }

    fn command(&self, program: &OsString) -> Command {
        match self.prefix.split_first() {
            Some((first, rest)) => {
                let mut command = Command::new(first);
                command.args(rest).arg(program);
                command
            }
            None => Command::new(program),
        }
    }

    fn describe(program: &OsString, args: &[String]) -> String {
        let mut text = Path::new(program)
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        for arg in args {
            text.push(' ');
            text.push_str(arg);
        }
        text
    }

    fn run(
        &self,
        program: &OsString,
        args: &[String],
        input: Option<&str>,
    ) -> Result<Output, ApplyError> {
        let io_error = |error| ApplyError::Io {
            program: program.to_string_lossy().into_owned(),
            error,
        };
        let mut command = self.command(program);
        command
            .args(args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().map_err(io_error)?;
        if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin.write_all(text.as_bytes()).map_err(io_error)?;
        }
        child.wait_with_output().map_err(io_error)
    }

    fn run_ok(
        &self,
        program: &OsString,
        args: &[String],
        input: Option<&str>,
    ) -> Result<String, ApplyError> {
        let output = self.run(program, args, input)?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(ApplyError::Failed {
                command: Self::describe(program, args),
                status: output.status.code(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            })
        }
    }

    /// Runs `iptables-restore --noflush --counters` with `input`: tables and chains not named
    /// in it are left alone.
    pub fn restore(&self, input: &str) -> Result<(), ApplyError> {
        let args = vec!["--noflush".to_string(), "--counters".to_string()];
        self.run_ok(&self.restore, &args, Some(input)).map(|_| ())
    }

    /// Applies one family's restore input the way kube-proxy does: on a full sync, first
    /// the canary chains and the jump rules from the built-in chains, then the restore.
    pub fn apply(&self, input: &FamilyRestore) -> Result<(), ApplyError> {
        if input.is_full_sync() {
            self.ensure_canaries()?;
            self.ensure_jump_rules(&input.jump_rules())?;
        }
        self.restore(input.as_str())
    }

    /// Creates a chain unless it exists.
    fn ensure_chain(&self, table: Table, chain: &str) -> Result<(), ApplyError> {
        let args = vec![
            "-t".to_string(),
            table.as_str().to_string(),
            "-N".to_string(),
            chain.to_string(),
        ];
        let output = self.run(&self.iptables, &args, None)?;
        // "iptables: Chain already exists." spares listing a possibly long chain.
        let exists = String::from_utf8_lossy(&output.stderr).contains("already exists");
        if output.status.success() || exists || self.chain_exists(table, chain)? {
            Ok(())
        } else {
            Err(ApplyError::Failed {
                command: Self::describe(&self.iptables, &args),
                status: output.status.code(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            })
        }
    }

    /// The chain exists in the table.
    pub fn chain_exists(&self, table: Table, chain: &str) -> Result<bool, ApplyError> {
        let args = vec![
            "-t".to_string(),
            table.as_str().to_string(),
            "-S".to_string(),
            chain.to_string(),
        ];
        Ok(self.run(&self.iptables, &args, None)?.status.success())
    }

    /// Ensures each rule exists (`-C`, then `-I` when missing), creating its target chain
    /// first. Idempotent: rules already present are not duplicated.
    pub fn ensure_jump_rules(&self, rules: &[JumpRule]) -> Result<(), ApplyError> {
        for rule in rules {
            self.ensure_chain(rule.table, rule.target)?;
            let check = rule.check_args();
            let output = self.run(&self.iptables, &check, None)?;
            match output.status.code() {
                Some(0) => continue,
                // 1: "Bad rule (does a matching rule exist in that chain?)".
                Some(1) => {
                    self.run_ok(&self.iptables, &rule.insert_args(), None)?;
                }
                status => {
                    return Err(ApplyError::Failed {
                        command: Self::describe(&self.iptables, &check),
                        status,
                        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
                    })
                }
            }
        }
        Ok(())
    }

    /// Creates the `KUBE-PROXY-CANARY` chains in mangle, nat and filter.
    pub fn ensure_canaries(&self) -> Result<(), ApplyError> {
        for (table, chain) in canary_chains() {
            self.ensure_chain(table, chain)?;
        }
        Ok(())
    }

    /// False when the mangle canary is gone: someone flushed the tables and the next sync
    /// must be a full one.
    pub fn canary_present(&self) -> Result<bool, ApplyError> {
        self.chain_exists(Table::Mangle, KUBE_PROXY_CANARY)
    }

    /// `iptables-save` of one table, or of all tables.
    pub fn save(&self, table: Option<Table>) -> Result<String, ApplyError> {
        let args = match table {
            Some(table) => vec!["-t".to_string(), table.as_str().to_string()],
            None => Vec::new(),
        };
        self.run_ok(&self.save, &args, None)
    }

    /// Per-service chains (`KUBE-SVC-…`, `KUBE-SEP-…`, …) present in the nat table; feed them
    /// to [`crate::IptablesProxier::observe_existing_chains`] before the first sync.
    pub fn existing_service_chains(&self) -> Result<BTreeSet<String>, ApplyError> {
        let saved = self.save(Some(Table::Nat))?;
        Ok(saved_chains(&saved)
            .remove(&Table::Nat)
            .unwrap_or_default()
            .into_iter()
            .filter(|chain| is_service_chain(chain))
            .collect())
    }

    /// `--cleanup`: deletes every copy of the jump rules, then flushes and deletes every
    /// `KUBE-*` chain in filter, nat and mangle.
    pub fn cleanup(&self, commands: &CleanupCommands) -> Result<(), ApplyError> {
        for rule in &commands.jump_rules {
            // Each -D removes one copy; a rule added twice needs two. Bounded in case the
            // tool keeps succeeding for another reason.
            for _ in 0..64 {
                let output = self.run(&self.iptables, &rule.delete_args(), None)?;
                if !output.status.success() {
                    break;
                }
            }
        }
        let saved = self.save(None)?;
        let input = commands.restore_input(&saved);
        if input.is_empty() {
            return Ok(());
        }
        self.restore(&input)
    }
}
