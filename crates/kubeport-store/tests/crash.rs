//! Acknowledged writes survive SIGKILL.
//!
//! The test re-executes its own binary as a child that writes keys concurrently and prints each
//! key once its write is acknowledged; the parent kills the child with SIGKILL mid-stream and
//! checks that the reopened store holds every key the child printed.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use bytes::Bytes;
use kubeport_store::{Store, StoreOptions};

const CHILD_DIR_ENV: &str = "KUBEPORT_STORE_CRASH_CHILD_DIR";
const ACK: &str = "ACK ";

/// Runs as the child when the environment variable is set; a no-op in a normal test run.
#[test]
fn crash_child_writer() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let store = Store::open(std::path::Path::new(&dir), StoreOptions::default()).unwrap();
        let writers: Vec<_> = (0..8)
            .map(|writer| {
                let store = store.clone();
                tokio::spawn(async move {
                    for i in 0u64.. {
                        let key = format!("/crash/{writer}/{i}");
                        let value = Bytes::from(format!("{{\"writer\":{writer},\"i\":{i}}}"));
                        store.create(&key, value).await.unwrap();
                        let mut out = std::io::stdout().lock();
                        writeln!(out, "{ACK}{key}").unwrap();
                        out.flush().unwrap();
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.await.unwrap();
        }
    });
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "crash_child_writer",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut acknowledged = Vec::new();
    let mut killed = false;
    for line in stdout.lines() {
        let line = line.unwrap();
        if let Some(key) = line.strip_prefix(ACK) {
            acknowledged.push(key.to_string());
        }
        if acknowledged.len() == 400 && !killed {
            // Child::kill sends SIGKILL on Unix: no destructor or flush runs in the child.
            child.kill().unwrap();
            killed = true;
        }
        // Keep reading: lines already in the pipe were printed, so acknowledged, before the kill.
    }
    let status = child.wait().unwrap();
    assert!(killed, "child exited before the kill: {status:?}");
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }

    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|key| store.get(key).is_none())
        .collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    assert!(store.revision() >= acknowledged.len() as u64);
    assert_eq!(store.count("/crash/") as u64, store.revision());
    // The restored event window is consistent with the records.
    let (records, revision, _) = store.list("/crash/", None, 0);
    assert_eq!(revision, store.revision());
    assert!(records.iter().all(|r| r.create_revision == r.mod_revision));
}
