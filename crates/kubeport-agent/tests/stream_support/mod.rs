//! Shared by the stream-server tests: a `ContainerRuntime` backed by real host processes
//! (the protocol layer is what is under test), and a running stream server.
//!
//! The fake knows one pod, `default/p`, with one container `c`:
//! - `exec` runs the command on the host with pipes (with `tty`, still pipes, but resize
//!   requests are recorded so tests can see them arrive);
//! - `attach` attaches to a fresh `cat` (the "container's main process");
//! - `logs` serves the lines of a file, honouring `tailLines`; with `follow`, it then emits
//!   `follow_lines` one by one, 300 ms apart, and ends (as the container exiting would).

#![allow(dead_code)]

use bytes::Bytes;
use kubeport_agent::runtime_api::{
    BoxFuture, ContainerRuntime, ExecOptions, ExitStatus, LogOptions, LogStream, OutputReader,
    ProcessIo, RuntimeError, StdinWriter, TerminalResizer,
};
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::process::{Child, Command};

pub struct FakeRuntime {
    pub log_lines: Vec<String>,
    pub follow_lines: Vec<String>,
    pub resizes: Arc<Mutex<Vec<(u16, u16)>>>,
}

impl FakeRuntime {
    pub fn new() -> Self {
        FakeRuntime {
            log_lines: vec![
                "first line".into(),
                "second line".into(),
                "third line".into(),
            ],
            follow_lines: vec!["followed 1".into(), "followed 2".into()],
            resizes: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn check(&self, namespace: &str, pod: &str, container: &str) -> Result<(), RuntimeError> {
        if namespace != "default" || pod != "p" {
            return Err(RuntimeError::NotFound(format!(
                "pod \"{pod}\" not found in namespace \"{namespace}\""
            )));
        }
        if !container.is_empty() && container != "c" {
            return Err(RuntimeError::NotFound(format!(
                "container \"{container}\" not found in pod \"{pod}\""
            )));
        }
        Ok(())
    }

    fn spawn(
        &self,
        program: &str,
        args: &[String],
        opts: ExecOptions,
    ) -> Result<Box<dyn ProcessIo>, RuntimeError> {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(if opts.stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(if opts.stdout {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(if opts.stderr {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .kill_on_drop(false);
        let mut child = cmd
            .spawn()
            .map_err(|e| RuntimeError::Internal(format!("starting {program}: {e}")))?;
        let stdin = child.stdin.take().map(|s| Box::pin(s) as StdinWriter);
        let stdout = child.stdout.take().map(|s| Box::pin(s) as OutputReader);
        let stderr = child.stderr.take().map(|s| Box::pin(s) as OutputReader);
        Ok(Box::new(FakeProcess {
            child,
            stdin,
            stdout,
            stderr,
            resizer: opts
                .tty
                .then(|| Arc::new(Recorder(self.resizes.clone())) as Arc<dyn TerminalResizer>),
        }))
    }
}

impl Default for FakeRuntime {
    fn default() -> Self {
        Self::new()
    }
}

struct Recorder(Arc<Mutex<Vec<(u16, u16)>>>);

impl TerminalResizer for Recorder {
    fn resize(&self, width: u16, height: u16) -> std::io::Result<()> {
        self.0.lock().unwrap().push((width, height));
        Ok(())
    }
}

struct FakeProcess {
    child: Child,
    stdin: Option<StdinWriter>,
    stdout: Option<OutputReader>,
    stderr: Option<OutputReader>,
    resizer: Option<Arc<dyn TerminalResizer>>,
}

impl ProcessIo for FakeProcess {
    fn take_stdin(&mut self) -> Option<StdinWriter> {
        self.stdin.take()
    }
    fn take_stdout(&mut self) -> Option<OutputReader> {
        self.stdout.take()
    }
    fn take_stderr(&mut self) -> Option<OutputReader> {
        self.stderr.take()
    }
    fn resizer(&self) -> Option<Arc<dyn TerminalResizer>> {
        self.resizer.clone()
    }
    fn wait(self: Box<Self>) -> BoxFuture<'static, Result<ExitStatus, RuntimeError>> {
        let mut child = self.child;
        Box::pin(async move {
            let st = child
                .wait()
                .await
                .map_err(|e| RuntimeError::Internal(e.to_string()))?;
            let code = st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0));
            Ok(ExitStatus { code })
        })
    }
}

impl ContainerRuntime for FakeRuntime {
    fn logs<'a>(
        &'a self,
        namespace: &'a str,
        pod: &'a str,
        container: &'a str,
        opts: LogOptions,
    ) -> BoxFuture<'a, Result<LogStream, RuntimeError>> {
        Box::pin(async move {
            self.check(namespace, pod, container)?;
            let mut lines = self.log_lines.clone();
            if let Some(n) = opts.tail_lines {
                let n = n.max(0) as usize;
                if lines.len() > n {
                    lines.drain(..lines.len() - n);
                }
            }
            let mut chunks: Vec<String> = lines.into_iter().map(|l| l + "\n").collect();
            let followed = if opts.follow {
                self.follow_lines.clone()
            } else {
                Vec::new()
            };
            let initial = futures::stream::iter(
                std::mem::take(&mut chunks)
                    .into_iter()
                    .map(|c| Ok(Bytes::from(c))),
            );
            let later = futures::stream::unfold(followed.into_iter(), |mut it| async move {
                let line = it.next()?;
                tokio::time::sleep(Duration::from_millis(300)).await;
                Some((Ok(Bytes::from(line + "\n")), it))
            });
            use futures::StreamExt;
            Ok(Box::pin(initial.chain(later)) as LogStream)
        })
    }

    fn exec<'a>(
        &'a self,
        namespace: &'a str,
        pod: &'a str,
        container: &'a str,
        command: Vec<String>,
        opts: ExecOptions,
    ) -> BoxFuture<'a, Result<Box<dyn ProcessIo>, RuntimeError>> {
        Box::pin(async move {
            self.check(namespace, pod, container)?;
            self.spawn(&command[0], &command[1..], opts)
        })
    }

    fn attach<'a>(
        &'a self,
        namespace: &'a str,
        pod: &'a str,
        container: &'a str,
        opts: ExecOptions,
    ) -> BoxFuture<'a, Result<Box<dyn ProcessIo>, RuntimeError>> {
        Box::pin(async move {
            self.check(namespace, pod, container)?;
            self.spawn("cat", &[], opts)
        })
    }
}

/// Starts the stream server on 127.0.0.1 (port 0) with `runtime`.
pub async fn start_agent(runtime: Arc<FakeRuntime>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let runtime: Arc<dyn ContainerRuntime> = runtime;
    tokio::spawn(kubeport_agent::stream::serve_listener(listener, runtime));
    addr
}
