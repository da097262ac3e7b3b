//! The transport-independent half of an exec/attach session: moves bytes between a
//! runtime process and the client's channels, and decides the outcome.
//!
//! A transport (WebSocket or SPDY) feeds [`Inbound`] events from the client into
//! `SessionIo::inbound`, writes every [`Outbound`] chunk from `SessionIo::outbound` until
//! that channel closes, and only then reads `SessionIo::outcome` and reports it on the
//! error channel, so the status always follows the last output byte. Dropping `inbound`
//! means the client went away: output pumping stops and the process is left to finish on
//! its own (as kubelet leaves an exec'd process when its stream breaks).

use crate::runtime_api::{ExitStatus, ProcessIo, RuntimeError};
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

/// Something the client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Inbound {
    Stdin(Bytes),
    /// The client closed its stdin.
    StdinEof,
    Resize {
        width: u16,
        height: u16,
    },
}

/// Output for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outbound {
    Stdout(Bytes),
    Stderr(Bytes),
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Exited(ExitStatus),
    /// The runtime failed while the process ran.
    Failed(RuntimeError),
    /// The client's connection ended first.
    ClientGone,
}

pub(crate) struct SessionIo {
    pub inbound: mpsc::Sender<Inbound>,
    pub outbound: mpsc::Receiver<Outbound>,
    pub outcome: oneshot::Receiver<Outcome>,
}

/// Read size of the output pumps (also the largest chunk a client receives at once).
const CHUNK: usize = 32 * 1024;

/// Starts pumping `process`'s streams; see the module docs for the contract.
pub(crate) fn start(process: Box<dyn ProcessIo>) -> SessionIo {
    let (inbound_tx, inbound_rx) = mpsc::channel(64);
    let (outbound_tx, outbound_rx) = mpsc::channel(16);
    let (outcome_tx, outcome_rx) = oneshot::channel();
    tokio::spawn(async move {
        let outcome = drive(process, inbound_rx, outbound_tx).await;
        let _ = outcome_tx.send(outcome);
    });
    SessionIo {
        inbound: inbound_tx,
        outbound: outbound_rx,
        outcome: outcome_rx,
    }
}

async fn drive(
    mut process: Box<dyn ProcessIo>,
    mut inbound: mpsc::Receiver<Inbound>,
    outbound: mpsc::Sender<Outbound>,
) -> Outcome {
    let stdin = process.take_stdin();
    let stdout = process.take_stdout();
    let stderr = process.take_stderr();
    let resizer = process.resizer();
    let wait = tokio::spawn(process.wait());

    let stdout_pump = stdout.map(|r| tokio::spawn(pump(r, outbound.clone(), Outbound::Stdout)));
    let stderr_pump = stderr.map(|r| tokio::spawn(pump(r, outbound.clone(), Outbound::Stderr)));
    drop(outbound);
    let abort_pumps = [
        stdout_pump.as_ref().map(|h| h.abort_handle()),
        stderr_pump.as_ref().map(|h| h.abort_handle()),
    ];

    // Writing stdin runs on its own task so a process that does not read its stdin cannot
    // stall output or exit detection.
    let stdin_tx = stdin.map(|mut writer| {
        let (tx, mut rx) = mpsc::channel::<Option<Bytes>>(16);
        tokio::spawn(async move {
            while let Some(chunk) = rx.recv().await {
                match chunk {
                    Some(data) => {
                        if writer.write_all(&data).await.is_err() || writer.flush().await.is_err() {
                            return;
                        }
                    }
                    None => break,
                }
            }
            let _ = writer.shutdown().await;
        });
        tx
    });
    let mut stdin_tx = stdin_tx;

    let finished = async move {
        if let Some(h) = stdout_pump {
            let _ = h.await;
        }
        if let Some(h) = stderr_pump {
            let _ = h.await;
        }
        match wait.await {
            Ok(Ok(status)) => Outcome::Exited(status),
            Ok(Err(e)) => Outcome::Failed(e),
            Err(e) => Outcome::Failed(RuntimeError::Internal(e.to_string())),
        }
    };
    tokio::pin!(finished);

    loop {
        tokio::select! {
            outcome = &mut finished => return outcome,
            msg = inbound.recv() => match msg {
                None => {
                    for h in abort_pumps.iter().flatten() {
                        h.abort();
                    }
                    return Outcome::ClientGone;
                }
                Some(Inbound::Stdin(data)) => {
                    if let Some(tx) = &stdin_tx {
                        if tx.send(Some(data)).await.is_err() {
                            stdin_tx = None;
                        }
                    }
                }
                Some(Inbound::StdinEof) => {
                    if let Some(tx) = stdin_tx.take() {
                        let _ = tx.send(None).await;
                    }
                }
                Some(Inbound::Resize { width, height }) => {
                    if let Some(r) = &resizer {
                        if let Err(e) = r.resize(width, height) {
                            tracing::debug!("terminal resize to {width}x{height} failed: {e}");
                        }
                    }
                }
            }
        }
    }
}

async fn pump(
    mut reader: crate::runtime_api::OutputReader,
    out: mpsc::Sender<Outbound>,
    wrap: fn(Bytes) -> Outbound,
) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if out
                    .send(wrap(Bytes::copy_from_slice(&buf[..n])))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

/// Parses the terminal-size messages of the resize channel: JSON objects
/// `{"Width":W,"Height":H}`, possibly several in one chunk or one split across chunks
/// (SPDY carries them as a byte stream). Complete objects are drained from `buf`.
pub(crate) fn parse_resizes(buf: &mut Vec<u8>) -> Vec<Inbound> {
    let mut events = Vec::new();
    let mut consumed = 0;
    {
        let mut it = serde_json::Deserializer::from_slice(buf).into_iter::<serde_json::Value>();
        loop {
            match it.next() {
                Some(Ok(v)) => {
                    consumed = it.byte_offset();
                    let dim = |k: &str| {
                        v.get(k)
                            .and_then(|x| x.as_u64())
                            .map(|x| x.min(u16::MAX as u64) as u16)
                    };
                    if let (Some(width), Some(height)) = (dim("Width"), dim("Height")) {
                        events.push(Inbound::Resize { width, height });
                    }
                }
                Some(Err(e)) if e.is_eof() => break,
                Some(Err(_)) => {
                    // Not JSON: drop what we have rather than wedge the channel.
                    consumed = buf.len();
                    break;
                }
                None => {
                    consumed = buf.len();
                    break;
                }
            }
        }
    }
    buf.drain(..consumed);
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_messages_split_and_joined() {
        let mut buf = b"{\"Width\":80,\"Height\":24}\n{\"Width\":1".to_vec();
        assert_eq!(
            parse_resizes(&mut buf),
            vec![Inbound::Resize {
                width: 80,
                height: 24
            }]
        );
        assert_eq!(buf, b"\n{\"Width\":1".to_vec());
        buf.extend_from_slice(b"00,\"Height\":50}\n");
        assert_eq!(
            parse_resizes(&mut buf),
            vec![Inbound::Resize {
                width: 100,
                height: 50
            }]
        );
        assert!(buf.iter().all(|b| b.is_ascii_whitespace()));
    }

    #[test]
    fn resize_garbage_is_dropped() {
        let mut buf = b"nonsense".to_vec();
        assert!(parse_resizes(&mut buf).is_empty());
        assert!(buf.is_empty());
    }
}
