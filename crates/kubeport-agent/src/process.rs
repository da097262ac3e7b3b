//! Starting processes in a pod's namespaces: its network namespace (setns), and per process a
//! new mount namespace (the pod's files bind-mounted over the node's: resolv.conf, hosts,
//! nginx's document root) and UTS namespace (the pod's hostname). Every process of a pod
//! built from the same `PodNamespaces` sees the same view. Also the pty plumbing for `tty`.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The namespaces and file view of a pod.
#[derive(Debug, Clone)]
pub struct PodNamespaces {
    /// The pod's network namespace (a bind-mounted nsfs file such as /run/netns/NAME).
    pub netns: PathBuf,
    pub hostname: String,
    /// Per-pod files and directories bind-mounted over node paths: (source, target).
    pub binds: Vec<(PathBuf, PathBuf)>,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Launch {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    pub ns: Arc<PodNamespaces>,
}

/// How the process's standard streams are connected.
#[derive(Debug)]
pub enum StdioMode {
    /// stdin from /dev/null (or a pipe with `stdin`), stdout and stderr to pipes.
    Pipes { stdin: bool },
    /// All three on this pty slave (see `open_pty`; the caller keeps the master).
    Tty(OwnedFd),
}

/// A started process.
pub struct Spawned {
    pub child: tokio::process::Child,
    pub pid: i32,
}

fn cstring(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Starts `launch` in the pod's namespaces. The process leads its own session and process
/// group (so the group can be signalled as a whole).
pub fn spawn(launch: &Launch, mode: StdioMode) -> io::Result<Spawned> {
    if launch.argv.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty command"));
    }
    let netns = std::fs::File::open(&launch.ns.netns).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "opening network namespace {}: {e}",
                launch.ns.netns.display()
            ),
        )
    })?;
    let binds: Vec<(CString, CString)> = launch
        .ns
        .binds
        .iter()
        .map(|(s, t)| Ok((cstring(s)?, cstring(t)?)))
        .collect::<io::Result<_>>()?;
    let hostname = launch.ns.hostname.clone().into_bytes();
    let workdir = match launch.working_dir.as_deref().filter(|w| !w.is_empty()) {
        Some(w) => Some(cstring(Path::new(w))?),
        None => None,
    };
    let root = CString::new("/").unwrap();
    let sys = CString::new("/sys").unwrap();
    let sysfs = CString::new("sysfs").unwrap();

    let mut cmd = tokio::process::Command::new(&launch.argv[0]);
    cmd.args(&launch.argv[1..]);
    cmd.env_clear();
    for (k, v) in &launch.env {
        cmd.env(k, v);
    }
    cmd.kill_on_drop(false);
    let tty = matches!(mode, StdioMode::Tty(_));
    match mode {
        StdioMode::Pipes { stdin } => {
            cmd.stdin(if stdin {
                std::process::Stdio::piped()
            } else {
                std::process::Stdio::null()
            });
            cmd.stdout(std::process::Stdio::piped());
            cmd.stderr(std::process::Stdio::piped());
        }
        StdioMode::Tty(slave) => {
            cmd.stdin(std::process::Stdio::from(slave.try_clone()?));
            cmd.stdout(std::process::Stdio::from(slave.try_clone()?));
            cmd.stderr(std::process::Stdio::from(slave));
        }
    }
    let netns_fd = netns.as_raw_fd();
    // SAFETY: the closure runs in the forked child before exec and only makes raw system
    // calls on data prepared above (no allocation, no locks).
    unsafe {
        cmd.pre_exec(move || {
            check(libc::setns(netns_fd, libc::CLONE_NEWNET))?;
            check(libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWUTS))?;
            check(libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_SLAVE,
                std::ptr::null(),
            ))?;
            for (src, dst) in &binds {
                check(libc::mount(
                    src.as_ptr(),
                    dst.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                ))?;
            }
            // /sys shows the network namespace that mounted it: remount it for the pod's
            // (as `ip netns exec` does). Best effort.
            if libc::umount2(sys.as_ptr(), libc::MNT_DETACH) == 0 {
                libc::mount(
                    sysfs.as_ptr(),
                    sys.as_ptr(),
                    sysfs.as_ptr(),
                    0,
                    std::ptr::null(),
                );
            }
            check(libc::sethostname(
                hostname.as_ptr() as *const libc::c_char,
                hostname.len(),
            ))?;
            check(libc::setsid())?;
            if tty {
                check(libc::ioctl(0, libc::TIOCSCTTY as _, 0))?;
            }
            if let Some(w) = &workdir {
                check(libc::chdir(w.as_ptr()))?;
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    // The parent's copies of the pty slave (inside `cmd`) close with it.
    drop(cmd);
    drop(netns);
    let pid = child.id().map(|p| p as i32).unwrap_or(0);
    Ok(Spawned { child, pid })
}

/// The exit code a shell would report: the code, or 128 + the signal.
pub fn exit_code(status: std::process::ExitStatus) -> (i32, Option<i32>) {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => (c, None),
        (None, Some(s)) => (128 + s, Some(s)),
        (None, None) => (255, None),
    }
}

/// Sends `sig` to a process group (a container's processes). Ignores a group that is gone.
pub fn signal_group(pgid: i32, sig: libc::c_int) {
    if pgid > 1 {
        // SAFETY: kill(2) with a negative pid signals the group; no memory is involved.
        unsafe {
            libc::kill(-pgid, sig);
        }
    }
}

/// Whether any process of the group is still alive.
pub fn group_alive(pgid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    pgid > 1 && unsafe { libc::kill(-pgid, 0) } == 0
}

/// A process's start time (clock ticks since boot, /proc/PID/stat field 22): with the pid it
/// identifies the process across pid reuse.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 2..];
    after_comm.split_whitespace().nth(19)?.parse().ok()
}

/// The master side of a pty, usable from tokio.
pub struct PtyMaster {
    fd: AsyncFd<OwnedFd>,
}

fn set_flags(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        check(libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC))?;
    }
    Ok(())
}

/// Opens a pty pair (80x24); the master is non-blocking, both are close-on-exec.
pub fn open_pty() -> io::Result<(PtyMaster, OwnedFd)> {
    let mut master: RawFd = -1;
    let mut slave: RawFd = -1;
    let size = libc::winsize {
        ws_row: 24,
        ws_col: 80,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes two descriptors into the provided integers.
    unsafe {
        check(libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        ))?;
    }
    // SAFETY: openpty returned two fresh descriptors we now own.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    set_flags(master.as_raw_fd())?;
    set_flags(slave.as_raw_fd())?;
    // SAFETY: fcntl on our descriptor.
    unsafe {
        let flags = libc::fcntl(master.as_raw_fd(), libc::F_GETFL);
        check(libc::fcntl(
            master.as_raw_fd(),
            libc::F_SETFL,
            flags | libc::O_NONBLOCK,
        ))?;
    }
    // SAFETY: the AsyncFd owns the descriptor for its whole life.
    let fd = unsafe { AsyncFd::register(master) }.map_err(io::Error::from)?;
    Ok((PtyMaster { fd }, slave))
}

impl PtyMaster {
    pub fn resize(&self, width: u16, height: u16) -> io::Result<()> {
        let size = libc::winsize {
            ws_row: height,
            ws_col: width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize from the pointer.
        unsafe {
            check(libc::ioctl(
                self.fd.as_raw_fd(),
                libc::TIOCSWINSZ as _,
                &size,
            ))
        }
    }

    fn poll_read_buf(&self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            let res = guard.try_io(|inner| {
                // SAFETY: reading into the unfilled part of the buffer.
                let n = unsafe {
                    libc::read(
                        inner.as_raw_fd(),
                        unfilled.as_mut_ptr() as *mut libc::c_void,
                        unfilled.len(),
                    )
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match res {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // EIO: every slave descriptor is closed (the processes ended): end of stream.
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Poll::Ready(Ok(())),
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_write_buf(&self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            let res = guard.try_io(|inner| {
                // SAFETY: writing from a valid slice.
                let n = unsafe {
                    libc::write(
                        inner.as_raw_fd(),
                        data.as_ptr() as *const libc::c_void,
                        data.len(),
                    )
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match res {
                Ok(r) => return Poll::Ready(r),
                Err(_would_block) => continue,
            }
        }
    }
}

/// A reader or writer on a shared pty master.
#[derive(Clone)]
pub struct PtyIo(pub Arc<PtyMaster>);

impl AsyncRead for PtyIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.0.poll_read_buf(cx, buf)
    }
}

impl AsyncWrite for PtyIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_write_buf(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A writer that closes (drops) its inner writer on shutdown, so a pipe reader sees EOF.
pub struct ClosingWriter<W>(pub Option<W>);

impl<W: AsyncWrite + Unpin> AsyncWrite for ClosingWriter<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.0.as_mut() {
            Some(w) => Pin::new(w).poll_write(cx, buf),
            None => Poll::Ready(Err(io::Error::from(io::ErrorKind::BrokenPipe))),
        }
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.0.as_mut() {
            Some(w) => Pin::new(w).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(w) = self.0.as_mut() {
            ready!(Pin::new(w).poll_flush(cx))?;
        }
        self.0 = None;
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell_convention() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            exit_code(std::process::ExitStatus::from_raw(3 << 8)),
            (3, None)
        );
        assert_eq!(
            exit_code(std::process::ExitStatus::from_raw(libc::SIGKILL)),
            (137, Some(9))
        );
        assert_eq!(
            exit_code(std::process::ExitStatus::from_raw(libc::SIGTERM)),
            (143, Some(15))
        );
    }

    #[test]
    fn own_start_time_is_readable() {
        let me = std::process::id() as i32;
        assert!(process_start_time(me).is_some());
        assert!(process_start_time(i32::MAX).is_none());
    }

    #[tokio::test]
    async fn pty_round_trip() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (master, slave) = open_pty().unwrap();
        let master = Arc::new(master);
        master.resize(100, 30).unwrap();
        let mut slave = tokio::fs::File::from_std(std::fs::File::from(slave));
        let mut w = PtyIo(master.clone());
        w.write_all(b"ping\n").await.unwrap();
        let mut buf = [0u8; 64];
        let n = slave.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"ping\n");
    }
}
