//! File helpers shared by the PKI and kubeconfig code: atomic writes with an exact mode,
//! and the two kinds of lock they need.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Reads a file, returning `None` when it does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Replaces `path` with `contents` so that readers see either the old or the new file,
/// never a partial one: write a temporary file beside it, fsync, rename over.
/// The file gets exactly `mode` (not masked by the umask).
pub(crate) fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let file_name = path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?;
    let mut temp_name = OsString::from(".");
    temp_name.push(file_name);
    temp_name.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    ));
    let temp = path.with_file_name(temp_name);
    let written = (|| -> io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temp)?;
        file.set_permissions(Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written.with_context(|| format!("writing {}", path.display()))
}

/// An advisory `flock` on a file that stays in place; released when dropped (or when the
/// process dies, so a crash never leaves the PKI directory locked).
pub(crate) struct DirectoryLock {
    _file: File,
}

impl DirectoryLock {
    pub(crate) fn acquire(lock_path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(lock_path)
            .with_context(|| format!("opening lock file {}", lock_path.display()))?;
        file.lock()
            .with_context(|| format!("locking {}", lock_path.display()))?;
        Ok(Self { _file: file })
    }
}

/// The lock client-go, kubectl and kind take before rewriting a kubeconfig: `<file>.lock`
/// created exclusively and removed afterwards. Using the same protocol keeps kubeport from
/// racing a concurrent `kubectl config` or `kind create cluster` on the same file.
pub(crate) struct KubeconfigLock {
    path: PathBuf,
}

/// How long to wait for another writer before giving up.
const KUBECONFIG_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

impl KubeconfigLock {
    pub(crate) fn acquire(kubeconfig: &Path) -> Result<Self> {
        let mut name = kubeconfig.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        let deadline = Instant::now() + KUBECONFIG_LOCK_TIMEOUT;
        let mut pause = Duration::from_millis(2);
        loop {
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(_) => return Ok(Self { path }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if Instant::now() >= deadline {
                        bail!(
                            "timed out after {}s waiting for {} (held by another kubeconfig writer; \
                             remove it if no kubectl, kind or kubeport process is running)",
                            KUBECONFIG_LOCK_TIMEOUT.as_secs(),
                            path.display()
                        );
                    }
                    thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("creating lock file {}", path.display()))
                }
            }
        }
    }
}

impl Drop for KubeconfigLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_sets_exact_mode_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_atomic(&path, b"one", 0o600).unwrap();
        write_atomic(&path, b"two", 0o644).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "two");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        // no temporary files left behind
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn kubeconfig_lock_is_exclusive_and_removed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        let lock = KubeconfigLock::acquire(&config).unwrap();
        let lock_path = dir.path().join("config.lock");
        assert!(lock_path.exists());
        let waiter = {
            let config = config.clone();
            thread::spawn(move || KubeconfigLock::acquire(&config).map(|_| Instant::now()))
        };
        thread::sleep(Duration::from_millis(100));
        let released = Instant::now();
        drop(lock);
        let acquired = waiter.join().unwrap().unwrap();
        assert!(acquired >= released);
        assert!(!lock_path.exists());
    }
}
