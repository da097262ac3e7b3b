//! The contract between the pod runtime and the agent's log/exec/attach server
//! (module `stream`, kubelet's port 10250).
//!
//! The agent's `run` starts the server as
//! `crate::stream::serve(addr: std::net::SocketAddr, runtime: std::sync::Arc<dyn ContainerRuntime>) -> anyhow::Result<()>`,
//! an `async fn` that binds `addr` (the node IP and `--port`) and serves until its future is
//! dropped (the agent spawns it on a task and aborts the task on shutdown). A bind error is
//! returned; per-connection errors are logged and do not end the server.
//!
//! The trait uses boxed futures (no `async_trait` macro) so it stays object safe:
//! implementations write `Box::pin(async move { ... })`.

use std::future::Future;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};

/// A boxed, sendable future (the return type of the trait's async methods).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Log bytes of a container, in chunks (each chunk is one or more whole lines, except
/// possibly the last chunk of a non-terminated final line).
pub type LogStream = Pin<Box<dyn futures::Stream<Item = std::io::Result<bytes::Bytes>> + Send>>;

/// A writer into a process's stdin. Shutting it down (`AsyncWriteExt::shutdown`) or dropping
/// it closes the stdin of an exec'd process; for attach it only detaches this client (the
/// container's stdin stays open unless the container has `stdinOnce: true`).
pub type StdinWriter = Pin<Box<dyn AsyncWrite + Send>>;

/// A reader of a process's stdout or stderr; EOF when the process (or, for attach, the
/// container instance) has ended.
pub type OutputReader = Pin<Box<dyn AsyncRead + Send>>;

/// What the agent's log/exec/attach HTTP server needs from the pod runtime.
///
/// `namespace`/`pod` name a pod bound to this node; `container` is the container's name
/// (the stream server resolves an empty `container` query to the pod's only container by
/// calling with `""`: the runtime then picks the first container, as kubelet does for
/// single-container pods).
pub trait ContainerRuntime: Send + Sync + 'static {
    /// Log bytes of a container (current instance, or the previous one when
    /// `opts.previous`), honouring `tail_lines`, `since_seconds`, `timestamps` and
    /// `limit_bytes`. With `follow`, the stream continues with new output until the
    /// container instance exits (then ends).
    fn logs<'a>(
        &'a self,
        namespace: &'a str,
        pod: &'a str,
        container: &'a str,
        opts: LogOptions,
    ) -> BoxFuture<'a, Result<LogStream, RuntimeError>>;

    /// Runs `command` in the container's namespaces (net, mount, uts) with the container's
    /// environment and working directory. With `tty`, the process gets its own pty (stdout
    /// carries the pty output; no stderr). `stdin == false` gives a process whose stdin is
    /// /dev/null (`ProcessIo::take_stdin` returns None).
    fn exec<'a>(
        &'a self,
        namespace: &'a str,
        pod: &'a str,
        container: &'a str,
        command: Vec<String>,
        opts: ExecOptions,
    ) -> BoxFuture<'a, Result<Box<dyn ProcessIo>, RuntimeError>>;

    /// Attaches to the container's running main process: its stdin if the container was
    /// started with `stdin: true` (and `opts.stdin`), its stdout/stderr as produced from now
    /// on; with a `tty: true` container, the shared pty (stdout only). `wait` resolves when
    /// the container instance exits. A container with `stdin` and `stdinOnce` (`kubectl run
    /// -i`) is reported running but starts its process at the first attach (or after
    /// `KUBEPORT_AGENT_ATTACH_WAIT_MS`, 5 s by default), so a short command's output is not
    /// lost before kubectl attaches; with `stdinOnce`, the end of the attach client's stdin
    /// closes the container's stdin.
    fn attach<'a>(
        &'a self,
        namespace: &'a str,
        pod: &'a str,
        container: &'a str,
        opts: ExecOptions,
    ) -> BoxFuture<'a, Result<Box<dyn ProcessIo>, RuntimeError>>;
}

/// Options of a log request (kubelet's `PodLogOptions`, as query parameters).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    pub follow: bool,
    /// Only the last N lines (negative or absent: all).
    pub tail_lines: Option<i64>,
    /// Only lines written in the last N seconds.
    pub since_seconds: Option<i64>,
    /// Prefix each line with its RFC 3339 (nanosecond) timestamp and a space.
    pub timestamps: bool,
    /// The previous (terminated) instance of the container.
    pub previous: bool,
    /// Stop after this many bytes.
    pub limit_bytes: Option<i64>,
}

/// Which streams an exec/attach client asked for (the `stdin`, `stdout`, `stderr`, `tty`
/// query parameters). Streams not asked for are not returned by `ProcessIo::take_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecOptions {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            stdin: false,
            stdout: true,
            stderr: true,
            tty: false,
        }
    }
}

/// How a process (or container instance) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    /// The exit code; a process killed by signal N reports 128+N (as a shell does).
    pub code: i32,
}

/// A running process the stream server talks to. Take the streams first (each at most once),
/// then await `wait` (which consumes the box). `resizer` may be called any time before.
pub trait ProcessIo: Send {
    /// The process's stdin (None when not requested or not open).
    fn take_stdin(&mut self) -> Option<StdinWriter>;
    /// The process's stdout (with a tty: the pty output).
    fn take_stdout(&mut self) -> Option<OutputReader>;
    /// The process's stderr (None with a tty).
    fn take_stderr(&mut self) -> Option<OutputReader>;
    /// A handle to resize the pty (None without a tty); usable from another task.
    fn resizer(&self) -> Option<std::sync::Arc<dyn TerminalResizer>>;
    /// Resolves when the process ends. For exec, the output readers reach EOF no later than
    /// shortly after this resolves; read them to EOF before reporting the exit status.
    fn wait(self: Box<Self>) -> BoxFuture<'static, Result<ExitStatus, RuntimeError>>;
}

/// Resizes a pty (kubectl's terminal size messages).
pub trait TerminalResizer: Send + Sync {
    fn resize(&self, width: u16, height: u16) -> std::io::Result<()>;
}

/// Why a runtime call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    /// The pod or container is not on this node (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// The request cannot be served as asked, e.g. the container is not running or has no
    /// previous instance (HTTP 400).
    #[error("{0}")]
    BadRequest(String),
    /// The runtime failed (HTTP 500).
    #[error("{0}")]
    Internal(String),
}
