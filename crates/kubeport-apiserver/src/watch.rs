//! Watch streams: newline-delimited `{"type":..., "object":...}` events over chunked HTTP,
//! with kube-apiserver's resourceVersion semantics, selector transitions, bookmarks,
//! `timeoutSeconds`, and in-stream 410 expiry.

use crate::body::Body;
use crate::http::{json_response, Representation};
use crate::registry::{decode_record, watch_type, ListOptions, Registry};
use crate::resources::ResourceInfo;
use crate::tables;
use bytes::Bytes;
use futures::StreamExt;
use http::{header, Response};
use http_body_util::{BodyExt, StreamBody};
use kubeport_core::Status;
use kubeport_store::{EventKind, StoreError};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

const BOOKMARK_INTERVAL: Duration = Duration::from_secs(60);
/// Without timeoutSeconds kube-apiserver ends watches after 30-60 minutes.
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

struct Encoder {
    info: &'static ResourceInfo,
    repr: Representation,
    include: Option<String>,
    sent_columns: bool,
}

impl Encoder {
    fn event(&mut self, kind: &str, obj: Value) -> Bytes {
        let object = match self.repr {
            Representation::Table if kind != "ERROR" && kind != "BOOKMARK" => {
                let rv = crate::meta::resource_version(&obj).to_string();
                let t = tables::table(
                    self.info,
                    &[obj],
                    json!({"resourceVersion": rv}),
                    self.include.as_deref(),
                    !self.sent_columns,
                );
                self.sent_columns = true;
                t
            }
            Representation::PartialMetadata if kind != "ERROR" => tables::partial_metadata(&obj),
            _ => obj,
        };
        let mut line =
            serde_json::to_vec(&json!({"type": kind, "object": object})).expect("serializes");
        line.push(b'\n');
        Bytes::from(line)
    }
}

fn bookmark(info: &ResourceInfo, rev: u64, initial_end: bool) -> Value {
    let mut meta = json!({"resourceVersion": rev.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    json!({"kind": info.kind, "apiVersion": info.api_version(), "metadata": meta})
}

pub async fn serve(
    registry: Arc<Registry>,
    info: &'static ResourceInfo,
    namespace: Option<String>,
    opts: ListOptions,
    q: &HashMap<String, String>,
    repr: Representation,
    include: Option<String>,
) -> Result<Response<Body>, Status> {
    let rv_param = q.get("resourceVersion").cloned().unwrap_or_default();
    let send_initial = q.get("sendInitialEvents").is_some_and(|v| v == "true");
    if q.contains_key("resourceVersionMatch") && !send_initial {
        return Err(Status::invalid(
            "ListOptions.meta.k8s.io",
            "meta.k8s.io",
            "ListOptions",
            "",
            &[kubeport_core::FieldError::forbidden(
                "resourceVersionMatch".into(),
                "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
            )],
        ));
    }
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|v| v == "true");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_WATCH_TIMEOUT);
    let prefix = info.key_prefix_in(namespace.as_deref());
    let mut enc = Encoder {
        info,
        repr,
        include,
        sent_columns: false,
    };
    let mut initial: Vec<Bytes> = Vec::new();
    let initial_events = rv_param.is_empty() || rv_param == "0" || send_initial;
    let start_rev;
    if initial_events {
        let (items, rev, _) = registry.list(
            info,
            namespace.as_deref(),
            &ListOptions {
                limit: 0,
                continue_token: None,
                ..opts.clone()
            },
        )?;
        for item in items {
            initial.push(enc.event("ADDED", item));
        }
        if send_initial && bookmarks {
            initial.push(enc.event("BOOKMARK", bookmark(info, rev, true)));
        }
        start_rev = rev;
    } else {
        start_rev = rv_param
            .parse::<u64>()
            .map_err(|_| Status::bad_request(format!("invalid resource version: {rv_param:?}")))?;
        // A revision from the future (e.g. after the store was replaced) waits briefly, then fails as kube-apiserver does.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while registry.store.revision() < start_rev {
            if tokio::time::Instant::now() > deadline {
                let mut s = Status::timeout(format!(
                    "Too large resource version: {start_rev}, current: {}",
                    registry.store.revision()
                ));
                s.details = Some(
                    json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1}),
                );
                return Err(s);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let watcher = match registry.store.watch(&prefix, start_rev) {
        Ok(w) => Some(w),
        Err(StoreError::Compacted { requested, oldest }) => {
            let s = Status::expired(format!(
                "too old resource version: {requested} ({})",
                oldest.saturating_sub(1)
            ));
            initial.push(enc.event("ERROR", s.to_json()));
            None
        }
        Err(e) => return Err(Status::internal(e.to_string())),
    };

    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(256);
    tokio::spawn(async move {
        for line in initial {
            if tx.send(line).await.is_err() {
                return;
            }
        }
        let Some(mut watcher) = watcher else { return };
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval(BOOKMARK_INTERVAL);
        ticker.tick().await;
        let mut last_rev = start_rev;
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = tx.closed() => return,
                _ = ticker.tick(), if bookmarks => {
                    let line = enc.event("BOOKMARK", bookmark(info, last_rev.max(start_rev), false));
                    if tx.send(line).await.is_err() { return; }
                }
                ev = watcher.next() => {
                    let Some(ev) = ev else { return };
                    let ev = match ev {
                        Ok(ev) => ev,
                        Err(_) => {
                            // The watcher fell behind its buffer: tell the client to relist.
                            let s = Status::expired(format!("too old resource version: {last_rev} ({last_rev})"));
                            let _ = tx.send(enc.event("ERROR", s.to_json())).await;
                            return;
                        }
                    };
                    last_rev = ev.revision;
                    let now_matches = ev.kind != EventKind::Deleted && Registry::event_matches(&ev.value, &opts.labels, &opts.fields);
                    let was_matching = match (&ev.kind, &ev.prev_value) {
                        (EventKind::Created, _) => false,
                        (EventKind::Deleted, _) => Registry::event_matches(&ev.value, &opts.labels, &opts.fields),
                        (EventKind::Modified, Some(prev)) => Registry::event_matches(prev, &opts.labels, &opts.fields),
                        (EventKind::Modified, None) => now_matches,
                    };
                    let kind = match (was_matching, now_matches) {
                        (false, true) => "ADDED",
                        (true, true) => watch_type(ev.kind),
                        (true, false) => "DELETED",
                        (false, false) => continue,
                    };
                    let rec = kubeport_store::Record { key: ev.key.clone(), value: ev.value.clone(), create_revision: ev.create_revision, mod_revision: ev.revision };
                    let obj = decode_record(&rec);
                    if tx.send(enc.event(kind, obj)).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx)
        .map(|b| Ok::<_, Infallible>(hyper::body::Frame::data(b)));
    let body = StreamBody::new(stream).boxed_unsync();
    let _ = json_response;
    Ok(Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(body)
        .expect("valid response"))
}
