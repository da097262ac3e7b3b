//! Container log files in the CRI format (`<RFC 3339 time> <stdout|stderr> <F|P> <text>`, one
//! record a line, as container runtimes write them for kubelet), and reading them back for
//! `kubectl logs` with `--tail`, `--since`, `--timestamps`, `--limit-bytes` and `-f`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

use crate::runtime_api::{LogOptions, LogStream};

/// A line longer than this is written in parts (`P` records), as CRI runtimes do.
const MAX_RECORD: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutStream {
    Stdout,
    Stderr,
}

impl OutStream {
    fn as_str(self) -> &'static str {
        match self {
            OutStream::Stdout => "stdout",
            OutStream::Stderr => "stderr",
        }
    }
}

/// One parsed log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub time: DateTime<Utc>,
    pub stream: OutStream,
    /// False for a `P` (partial) record: the line continues in the next record.
    pub full: bool,
    pub text: Vec<u8>,
}

/// Encodes a record as one file line.
pub fn encode(time: DateTime<Utc>, stream: OutStream, full: bool, text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 48);
    out.extend_from_slice(time.to_rfc3339_opts(SecondsFormat::Nanos, true).as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.as_str().as_bytes());
    out.extend_from_slice(if full { b" F " } else { b" P " });
    out.extend_from_slice(text);
    out.push(b'\n');
    out
}

/// Parses one file line (without its newline).
pub fn parse(line: &[u8]) -> Option<Record> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let time = std::str::from_utf8(parts.next()?).ok()?;
    let time = DateTime::parse_from_rfc3339(time).ok()?.with_timezone(&Utc);
    let stream = match parts.next()? {
        b"stdout" => OutStream::Stdout,
        b"stderr" => OutStream::Stderr,
        _ => return None,
    };
    let full = match parts.next()? {
        b"F" => true,
        b"P" => false,
        _ => return None,
    };
    Some(Record {
        time,
        stream,
        full,
        text: parts.next().unwrap_or_default().to_vec(),
    })
}

/// Go's RFC3339Nano (trailing zeros of the fraction dropped), kubelet's timestamp format.
pub fn go_rfc3339_nano(t: DateTime<Utc>) -> String {
    let s = t.to_rfc3339_opts(SecondsFormat::Nanos, true);
    // "2006-01-02T15:04:05.123456789Z"
    let (main, _) = s.split_at(s.len() - 1);
    match main.split_once('.') {
        Some((secs, frac)) => {
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() {
                format!("{secs}Z")
            } else {
                format!("{secs}.{frac}Z")
            }
        }
        None => s,
    }
}

/// Splits complete file lines off `buf` (keeping an incomplete tail in it).
fn take_records(buf: &mut Vec<u8>) -> Vec<Record> {
    let Some(last_nl) = buf.iter().rposition(|b| *b == b'\n') else {
        return Vec::new();
    };
    let complete: Vec<u8> = buf.drain(..=last_nl).collect();
    complete
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(parse)
        .collect()
}

/// Formats records as `kubectl logs` prints them.
fn render(records: &[Record], timestamps: bool, out: &mut Vec<u8>, line_start: &mut bool) {
    for r in records {
        if timestamps && *line_start {
            out.extend_from_slice(go_rfc3339_nano(r.time).as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(&r.text);
        if r.full {
            out.push(b'\n');
        }
        *line_start = r.full;
    }
}

/// Keeps the records of the last `n` lines (a line is a run of P records ending with an F).
fn tail(records: Vec<Record>, n: i64) -> Vec<Record> {
    if n < 0 {
        return records;
    }
    let mut lines = 0i64;
    let mut start = records.len();
    for (i, r) in records.iter().enumerate().rev() {
        if r.full {
            if lines == n {
                break;
            }
            lines += 1;
        }
        start = i;
    }
    if n == 0 {
        return Vec::new();
    }
    records[start..].to_vec()
}

/// Progress of a log file being written: bytes written so far, and whether the writer is done
/// (the container instance ended).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    pub written: u64,
    pub done: bool,
}

/// Output chunks sent to the log writer.
pub enum Chunk {
    Data(OutStream, Bytes),
    Eof(OutStream),
}

/// Writes a container instance's output to its log file: whole lines as `F` records, the
/// unterminated rest when its stream ends. Returns when both streams ended (or all senders
/// dropped); progress is published for followers.
pub async fn write_log(
    path: PathBuf,
    mut rx: mpsc::Receiver<Chunk>,
    progress: watch::Sender<Progress>,
) {
    let file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .await;
    let mut file = match file {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::warn!("cannot open log file {}: {e}", path.display());
            None
        }
    };
    let mut written = file
        .as_ref()
        .map(|_| std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0))
        .unwrap_or(0);
    let mut pending: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut open = 2;
    let idx = |s: OutStream| match s {
        OutStream::Stdout => 0,
        OutStream::Stderr => 1,
    };
    while open > 0 {
        let Some(chunk) = rx.recv().await else { break };
        let mut out = Vec::new();
        let now = Utc::now();
        match chunk {
            Chunk::Data(stream, data) => {
                let buf = &mut pending[idx(stream)];
                buf.extend_from_slice(&data);
                while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=nl).collect();
                    let text = line.strip_suffix(b"\n").unwrap_or(&line);
                    let text = text.strip_suffix(b"\r").unwrap_or(text);
                    out.extend(encode(now, stream, true, text));
                }
                while buf.len() > MAX_RECORD {
                    let part: Vec<u8> = buf.drain(..MAX_RECORD).collect();
                    out.extend(encode(now, stream, false, &part));
                }
            }
            Chunk::Eof(stream) => {
                open -= 1;
                let buf = std::mem::take(&mut pending[idx(stream)]);
                if !buf.is_empty() {
                    out.extend(encode(now, stream, true, &buf));
                }
            }
        }
        if !out.is_empty() {
            if let Some(f) = file.as_mut() {
                if f.write_all(&out).await.is_ok() {
                    written += out.len() as u64;
                    progress.send_replace(Progress {
                        written,
                        done: false,
                    });
                }
            }
        }
    }
    let now = Utc::now();
    let mut out = Vec::new();
    for (i, buf) in pending.iter().enumerate() {
        if !buf.is_empty() {
            let s = if i == 0 {
                OutStream::Stdout
            } else {
                OutStream::Stderr
            };
            out.extend(encode(now, s, true, buf));
        }
    }
    if let Some(f) = file.as_mut() {
        if !out.is_empty() && f.write_all(&out).await.is_ok() {
            written += out.len() as u64;
        }
        let _ = f.flush().await;
    }
    progress.send_replace(Progress {
        written,
        done: true,
    });
}

/// Reads a log file for `kubectl logs`. With `opts.follow` and a `progress` receiver the stream
/// continues until the writer is done.
pub async fn read_log(
    path: &Path,
    opts: &LogOptions,
    progress: Option<watch::Receiver<Progress>>,
) -> std::io::Result<LogStream> {
    let mut file = match tokio::fs::File::open(path).await {
        Ok(f) => Some(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let mut buf = Vec::new();
    if let Some(f) = file.as_mut() {
        f.read_to_end(&mut buf).await?;
    }
    let offset = buf.len() as u64;
    let since = opts
        .since_seconds
        .map(|s| Utc::now() - chrono::Duration::seconds(s.max(0)));
    let keep = move |r: &Record| since.is_none_or(|t| r.time >= t);
    let mut records: Vec<Record> = take_records(&mut buf).into_iter().filter(keep).collect();
    if let Some(n) = opts.tail_lines {
        records = tail(records, n);
    }
    let mut first = Vec::new();
    let mut line_start = true;
    render(&records, opts.timestamps, &mut first, &mut line_start);
    let mut budget = opts.limit_bytes.filter(|l| *l > 0).map(|l| l as u64);
    let cut = |data: &mut Vec<u8>, budget: &mut Option<u64>| {
        if let Some(b) = budget.as_mut() {
            if data.len() as u64 > *b {
                data.truncate(*b as usize);
            }
            *b -= data.len() as u64;
        }
    };
    cut(&mut first, &mut budget);
    let timestamps = opts.timestamps;
    let follow = opts.follow && progress.is_some() && budget != Some(0);
    let path = path.to_path_buf();
    let stream = async_stream_from(move |tx| async move {
        if !first.is_empty() && tx.send(Ok(Bytes::from(first))).await.is_err() {
            return;
        }
        if !follow {
            return;
        }
        let mut progress = progress.expect("follow needs progress");
        let mut offset = offset;
        let mut pending = buf;
        let mut line_start = line_start;
        let mut budget = budget;
        loop {
            let state = *progress.borrow_and_update();
            if state.written > offset {
                if file.is_none() {
                    file = tokio::fs::File::open(&path).await.ok();
                }
                if let Some(f) = file.as_mut() {
                    if f.seek(std::io::SeekFrom::Start(offset)).await.is_err() {
                        return;
                    }
                    let mut chunk = Vec::new();
                    if f.read_to_end(&mut chunk).await.is_err() {
                        return;
                    }
                    offset += chunk.len() as u64;
                    pending.extend_from_slice(&chunk);
                    let records = take_records(&mut pending);
                    let mut out = Vec::new();
                    render(&records, timestamps, &mut out, &mut line_start);
                    cut(&mut out, &mut budget);
                    if !out.is_empty() && tx.send(Ok(Bytes::from(out))).await.is_err() {
                        return;
                    }
                    if budget == Some(0) {
                        return;
                    }
                }
                continue;
            }
            if state.done {
                return;
            }
            tokio::select! {
                changed = progress.changed() => {
                    if changed.is_err() {
                        // The writer is gone: read what is left once more, then stop.
                        if progress.borrow().written <= offset { return; }
                    }
                }
                _ = tx.closed() => return,
                // A safety net against a missed wake-up.
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
    });
    Ok(stream)
}

/// A stream fed by a task through a channel (the task ends when the stream is dropped).
fn async_stream_from<F, Fut>(body: F) -> LogStream
where
    F: FnOnce(mpsc::Sender<std::io::Result<Bytes>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(body(tx));
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn record_round_trip_and_go_timestamps() {
        let line = encode(
            t("2025-01-02T03:04:05.120Z"),
            OutStream::Stderr,
            true,
            b"a b c",
        );
        assert_eq!(line, b"2025-01-02T03:04:05.120000000Z stderr F a b c\n");
        let r = parse(&line[..line.len() - 1]).unwrap();
        assert_eq!(r.text, b"a b c");
        assert_eq!(r.stream, OutStream::Stderr);
        assert!(r.full);
        assert_eq!(go_rfc3339_nano(r.time), "2025-01-02T03:04:05.12Z");
        assert_eq!(
            go_rfc3339_nano(t("2025-01-02T03:04:05Z")),
            "2025-01-02T03:04:05Z"
        );
        assert!(parse(b"garbage").is_none());
    }

    #[test]
    fn tail_counts_lines_with_partials() {
        let rec = |text: &str, full: bool| Record {
            time: t("2025-01-01T00:00:00Z"),
            stream: OutStream::Stdout,
            full,
            text: text.as_bytes().to_vec(),
        };
        let rs = vec![
            rec("a", true),
            rec("b1", false),
            rec("b2", true),
            rec("c", true),
        ];
        let texts = |v: Vec<Record>| {
            v.into_iter()
                .map(|r| String::from_utf8(r.text).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(texts(tail(rs.clone(), 2)), vec!["b1", "b2", "c"]);
        assert_eq!(texts(tail(rs.clone(), 1)), vec!["c"]);
        assert_eq!(texts(tail(rs.clone(), 0)), Vec::<String>::new());
        assert_eq!(texts(tail(rs.clone(), 10)).len(), 4);
        assert_eq!(texts(tail(rs, -1)).len(), 4);
    }

    async fn collect(s: LogStream) -> String {
        let parts: Vec<Bytes> = s.map(|r| r.unwrap()).collect().await;
        String::from_utf8(parts.concat()).unwrap()
    }

    #[tokio::test]
    async fn write_then_read_with_options() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let (tx, rx) = mpsc::channel(8);
        let (ptx, prx) = watch::channel(Progress::default());
        let writer = tokio::spawn(write_log(path.clone(), rx, ptx));
        // A follower started before any output sees everything until the end.
        let follow = read_log(
            &path,
            &LogOptions {
                follow: true,
                ..Default::default()
            },
            Some(prx.clone()),
        )
        .await
        .unwrap();
        tx.send(Chunk::Data(
            OutStream::Stdout,
            Bytes::from_static(b"one\ntw"),
        ))
        .await
        .unwrap();
        tx.send(Chunk::Data(
            OutStream::Stderr,
            Bytes::from_static(b"err\r\n"),
        ))
        .await
        .unwrap();
        tx.send(Chunk::Data(
            OutStream::Stdout,
            Bytes::from_static(b"o\nthree"),
        ))
        .await
        .unwrap();
        tx.send(Chunk::Eof(OutStream::Stdout)).await.unwrap();
        tx.send(Chunk::Eof(OutStream::Stderr)).await.unwrap();
        writer.await.unwrap();
        assert!(prx.borrow().done);
        assert_eq!(collect(follow).await, "one\nerr\ntwo\nthree\n");

        let all = read_log(&path, &LogOptions::default(), None).await.unwrap();
        assert_eq!(collect(all).await, "one\nerr\ntwo\nthree\n");
        let tail2 = read_log(
            &path,
            &LogOptions {
                tail_lines: Some(2),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
        assert_eq!(collect(tail2).await, "two\nthree\n");
        let limited = read_log(
            &path,
            &LogOptions {
                limit_bytes: Some(6),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
        assert_eq!(collect(limited).await, "one\ner");
        let stamped = collect(
            read_log(
                &path,
                &LogOptions {
                    timestamps: true,
                    tail_lines: Some(1),
                    ..Default::default()
                },
                None,
            )
            .await
            .unwrap(),
        )
        .await;
        let (ts, rest) = stamped.split_once(' ').unwrap();
        assert_eq!(rest, "three\n");
        assert!(ts.ends_with('Z') && ts.contains('T'), "{ts}");
        let missing = read_log(&dir.path().join("none.log"), &LogOptions::default(), None)
            .await
            .unwrap();
        assert_eq!(collect(missing).await, "");
    }
}
