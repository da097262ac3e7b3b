//! Starting the cluster's processes inside node namespaces, and finding and ending them
//! again — only ever by PID, after checking the PID is still ours.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::state::{ProcessRecord, ProcessRole};

/// The directory holding named network namespaces (`ip netns`).
pub const NETNS_DIR: &str = "/run/netns";

/// The path of named network namespace `name`.
pub fn netns_path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Starts `program args` detached (own session, stdin from /dev/null, stdout and stderr
/// appended to `log`), inside network namespace `netns` when given.
///
/// The namespace is entered with setns(2) between fork and exec rather than through
/// `ip netns exec`: that one also unshares the mount namespace, and namespaces the agent
/// later creates for pods would then be invisible to `ip netns` on the host.
pub fn spawn_detached(
    netns: Option<&str>,
    program: &Path,
    args: &[OsString],
    log: &Path,
) -> Result<Child> {
    let log_file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let netns_file = match netns {
        Some(name) => Some(
            File::open(netns_path(name))
                .with_context(|| format!("opening network namespace {name}"))?,
        ),
        None => None,
    };
    let netns_fd = netns_file.as_ref().map(|f| f.as_raw_fd());
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file);
    // SAFETY: only async-signal-safe calls (setns, setsid) run between fork and exec; the
    // namespace file stays open in the parent until spawn returns.
    unsafe {
        cmd.pre_exec(move || {
            if let Some(fd) = netns_fd {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {}", program.display()))?;
    drop(netns_file);
    Ok(child)
}

/// A process's start time in clock ticks since boot (`/proc/PID/stat` field 22).
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: fields resume after
    // the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// A process's arguments, or `None` once it has gone (or is a zombie).
pub fn cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    if raw.is_empty() {
        return None;
    }
    Some(
        raw.split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
    )
}

/// Whether `record` still names the process `create` started: same start time, same
/// subcommand, and an argument pointing into the cluster's state directory.
pub fn is_ours(record: &ProcessRecord, state_dir: &Path) -> bool {
    if start_time(record.pid) != Some(record.start_time) {
        return false;
    }
    let Some(args) = cmdline(record.pid) else {
        return false;
    };
    let dir = state_dir.to_string_lossy();
    args.get(1).map(String::as_str) == Some(record.role.subcommand())
        && args.iter().skip(2).any(|a| a.contains(dir.as_ref()))
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) with a specific, verified PID.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// The PIDs whose network namespace is one of `namespaces` (files under /run/netns).
pub fn pids_in_netns(namespaces: &[PathBuf]) -> Vec<u32> {
    let ids: Vec<(u64, u64)> = namespaces
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| (m.dev(), m.ino()))
        .collect();
    if ids.is_empty() {
        return Vec::new();
    }
    let me = std::process::id();
    let mut pids = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        if let Ok(m) = std::fs::metadata(format!("/proc/{pid}/ns/net")) {
            if ids.contains(&(m.dev(), m.ino())) {
                pids.push(pid);
            }
        }
    }
    pids
}

/// Ends the cluster's processes: the recorded ones that are still ours get SIGTERM and a
/// moment to exit; then everything left inside the cluster's namespaces (pods included,
/// and the recorded processes if they did not exit) gets SIGKILL until none is left.
pub fn stop_cluster_processes(
    records: &[ProcessRecord],
    state_dir: &Path,
    namespaces: &[PathBuf],
) -> Vec<u32> {
    let ours: Vec<&ProcessRecord> = records.iter().filter(|r| is_ours(r, state_dir)).collect();
    for r in &ours {
        signal(r.pid, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_millis(500);
    while Instant::now() < deadline && ours.iter().any(|r| is_ours(r, state_dir)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut ended: Vec<u32> = ours.iter().map(|r| r.pid).collect();
    for r in &ours {
        if is_ours(r, state_dir) {
            signal(r.pid, libc::SIGKILL);
        }
    }
    // Pods and anything else started in our namespaces. Repeat: a dying parent's child
    // may still be forking.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let pids = pids_in_netns(namespaces);
        if pids.is_empty() || Instant::now() > deadline {
            break;
        }
        for pid in &pids {
            signal(*pid, libc::SIGKILL);
            if !ended.contains(pid) {
                ended.push(*pid);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    ended
}

/// The record for a just-started child.
pub fn record(role: ProcessRole, node: Option<&str>, child: &Child, log: &Path) -> ProcessRecord {
    ProcessRecord {
        role,
        node: node.map(str::to_string),
        pid: child.id(),
        start_time: start_time(child.id()).unwrap_or(0),
        log: log.to_path_buf(),
    }
}

/// The last `lines` lines of a log file, for error messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_and_cmdline_of_self() {
        let me = std::process::id();
        assert!(start_time(me).unwrap() > 0);
        assert!(!cmdline(me).unwrap().is_empty());
        assert_eq!(start_time(u32::MAX), None);
    }

    #[test]
    fn a_record_is_ours_only_with_matching_process() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let marker = dir.path().join("marker");
        // `sleep` plays a lab process: argv[1] is the "subcommand" checked.
        let child = spawn_detached(
            None,
            Path::new("/bin/sh"),
            &[
                "-c".into(),
                format!("sleep 30 # {}", marker.display()).into(),
            ],
            &log,
        )
        .unwrap();
        let mut rec = record(ProcessRole::Server, None, &child, &log);
        // argv[1] is "-c", not "server": not ours.
        assert!(!is_ours(&rec, dir.path()));
        rec.role = ProcessRole::Server;
        let args = cmdline(rec.pid).unwrap();
        assert_eq!(args[1], "-c");
        // A wrong start time is never ours, whatever the command line.
        rec.start_time += 1;
        assert!(!is_ours(&rec, dir.path()));
        let mut child = child;
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(cmdline(rec.pid), None);
    }
}
