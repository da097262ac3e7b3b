//! Behaviour of a real on-disk store in a temporary directory.

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use kubeport_store::{Event, EventKind, Store, StoreError, StoreOptions, Watcher};

fn open(dir: &std::path::Path) -> Store {
    Store::open(dir, StoreOptions::default()).expect("open store")
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// The next event, failing the test instead of hanging if none arrives.
async fn next_event(watcher: &mut Watcher) -> Option<Result<Event, StoreError>> {
    tokio::time::timeout(Duration::from_secs(10), watcher.next())
        .await
        .expect("watch event within 10s")
}

#[tokio::test]
async fn crud_with_preconditions_and_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert_eq!(store.revision(), 0);
    assert_eq!(store.get("/registry/services/default/web"), None);

    let created = store
        .create("/registry/services/default/web", b("v1"))
        .await
        .unwrap();
    assert_eq!(created.create_revision, 1);
    assert_eq!(created.mod_revision, 1);
    assert_eq!(created.value, b("v1"));
    assert_eq!(store.revision(), 1);
    assert_eq!(store.get("/registry/services/default/web"), Some(created));

    assert_eq!(
        store
            .create("/registry/services/default/web", b("again"))
            .await,
        Err(StoreError::AlreadyExists)
    );
    assert_eq!(
        store
            .update("/registry/services/default/web", b("v2"), Some(7))
            .await,
        Err(StoreError::Conflict {
            current_mod_revision: 1
        })
    );
    assert_eq!(
        store
            .update("/registry/services/default/db", b("x"), None)
            .await,
        Err(StoreError::NotFound)
    );
    // Failed writes consume no revision.
    assert_eq!(store.revision(), 1);

    let updated = store
        .update("/registry/services/default/web", b("v2"), Some(1))
        .await
        .unwrap();
    assert_eq!((updated.create_revision, updated.mod_revision), (1, 2));
    let unconditional = store
        .update("/registry/services/default/web", b("v3"), None)
        .await
        .unwrap();
    assert_eq!(
        (unconditional.create_revision, unconditional.mod_revision),
        (1, 3)
    );

    assert_eq!(
        store
            .delete("/registry/services/default/web", Some(2))
            .await,
        Err(StoreError::Conflict {
            current_mod_revision: 3
        })
    );
    let deleted = store
        .delete("/registry/services/default/web", Some(3))
        .await
        .unwrap();
    assert_eq!(deleted.value, b("v3"));
    assert_eq!((deleted.create_revision, deleted.mod_revision), (1, 4));
    assert_eq!(store.get("/registry/services/default/web"), None);
    assert_eq!(
        store.delete("/registry/services/default/web", None).await,
        Err(StoreError::NotFound)
    );
    assert_eq!(store.revision(), 4);

    // A re-created key starts a new life.
    let recreated = store
        .create("/registry/services/default/web", b("v4"))
        .await
        .unwrap();
    assert_eq!((recreated.create_revision, recreated.mod_revision), (5, 5));
    store.close().await;
}

#[tokio::test]
async fn error_messages() {
    assert_eq!(
        StoreError::Compacted {
            requested: 3,
            oldest: 10
        }
        .to_string(),
        "too old resource version: 3 (10)"
    );
    assert_eq!(
        StoreError::Conflict {
            current_mod_revision: 4
        }
        .to_string(),
        "precondition failed: the current mod revision is 4"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_conflicting_writes_have_exactly_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let creates: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.create("/k", b(&format!("v{i}"))).await })
        })
        .collect();
    let mut winners = 0;
    for create in creates {
        match create.await.unwrap() {
            Ok(record) => {
                winners += 1;
                assert_eq!(record.mod_revision, 1);
            }
            Err(err) => assert_eq!(err, StoreError::AlreadyExists),
        }
    }
    assert_eq!(winners, 1);

    // Compare-and-swap from the same revision: one update wins, the rest see its revision.
    let updates: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.update("/k", b(&format!("u{i}")), Some(1)).await })
        })
        .collect();
    let mut winners = 0;
    for update in updates {
        match update.await.unwrap() {
            Ok(record) => {
                winners += 1;
                assert_eq!(record.mod_revision, 2);
            }
            Err(err) => assert_eq!(
                err,
                StoreError::Conflict {
                    current_mod_revision: 2
                }
            ),
        }
    }
    assert_eq!(winners, 1);
    assert_eq!(store.revision(), 2);
    store.close().await;
}

#[tokio::test]
async fn list_pages_through_a_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for key in [
        "/registry/services/default/c",
        "/registry/services/default/a",
        "/registry/services/default/b",
        "/registry/services/default2/x",
        "/registry/services/kube-system/dns",
        "/registry/pods/default/p",
    ] {
        store.create(key, b(key)).await.unwrap();
    }

    let (all, revision, more) = store.list("/registry/services/default/", None, 0);
    let keys: Vec<&str> = all.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "/registry/services/default/a",
            "/registry/services/default/b",
            "/registry/services/default/c"
        ]
    );
    assert_eq!(all[0].value, b("/registry/services/default/a"));
    assert_eq!(revision, 6);
    assert!(!more);

    let (page1, _, more) = store.list("/registry/services/", None, 2);
    let keys: Vec<&str> = page1.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "/registry/services/default/a",
            "/registry/services/default/b"
        ]
    );
    assert!(more);
    let (page2, _, more) = store.list("/registry/services/", Some(&page1[1].key), 2);
    let keys: Vec<&str> = page2.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "/registry/services/default/c",
            "/registry/services/default2/x"
        ]
    );
    assert!(more);
    let (page3, _, more) = store.list("/registry/services/", Some(&page2[1].key), 2);
    let keys: Vec<&str> = page3.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["/registry/services/kube-system/dns"]);
    assert!(!more);
    // Exactly filling the page leaves nothing more.
    let (exact, _, more) = store.list("/registry/services/default/", None, 3);
    assert_eq!(exact.len(), 3);
    assert!(!more);
    // A continuation key before the prefix does not leak keys outside it.
    let (before, _, _) = store.list("/registry/services/", Some("/registry/a"), 0);
    assert_eq!(before.len(), 5);

    assert_eq!(store.count("/registry/services/default/"), 3);
    assert_eq!(store.count("/registry/services/"), 5);
    assert_eq!(store.count("/registry/"), 6);
    assert_eq!(store.count("/registry/nodes/"), 0);
    assert_eq!(store.count(""), 6);
    store.close().await;
}

#[tokio::test]
async fn watch_delivers_backlog_then_live_events_with_values() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .create("/registry/services/default/a", b("a1"))
        .await
        .unwrap();
    store
        .create("/registry/pods/default/p", b("p1"))
        .await
        .unwrap();
    store
        .update("/registry/services/default/a", b("a2"), None)
        .await
        .unwrap();

    let mut watcher = store.watch("/registry/services/", 1).unwrap();
    store
        .delete("/registry/services/default/a", None)
        .await
        .unwrap();
    store
        .create("/registry/pods/default/q", b("q1"))
        .await
        .unwrap();
    store
        .create("/registry/services/default/b", b("b1"))
        .await
        .unwrap();

    let modified = next_event(&mut watcher).await.unwrap().unwrap();
    assert_eq!(
        modified,
        Event {
            revision: 3,
            kind: EventKind::Modified,
            key: "/registry/services/default/a".into(),
            value: b("a2"),
            prev_value: Some(b("a1")),
            create_revision: 1,
        }
    );
    let deleted = next_event(&mut watcher).await.unwrap().unwrap();
    assert_eq!(
        deleted,
        Event {
            revision: 4,
            kind: EventKind::Deleted,
            key: "/registry/services/default/a".into(),
            value: b("a2"),
            prev_value: Some(b("a2")),
            create_revision: 1,
        }
    );
    let created = next_event(&mut watcher).await.unwrap().unwrap();
    assert_eq!(
        created,
        Event {
            revision: 6,
            kind: EventKind::Created,
            key: "/registry/services/default/b".into(),
            value: b("b1"),
            prev_value: None,
            create_revision: 6,
        }
    );
    // Nothing else is pending.
    assert!(
        tokio::time::timeout(Duration::from_millis(100), watcher.next())
            .await
            .is_err()
    );
    store.close().await;
}

/// Collects `count` events from a watcher and checks they are exactly the revisions
/// `after+1 ..= after+count`.
async fn expect_contiguous(mut watcher: Watcher, after: u64, count: u64) {
    let mut expected = after + 1;
    while expected <= after + count {
        let event = next_event(&mut watcher)
            .await
            .expect("stream open")
            .expect("no error");
        assert_eq!(event.revision, expected, "gap or duplicate in the watch");
        expected += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_started_during_concurrent_writes_see_every_revision_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for i in 0..20 {
        store.create(&format!("/seed/{i}"), b("s")).await.unwrap();
    }
    const WRITERS: u64 = 8;
    const PER_WRITER: u64 = 100;
    let total = 20 + WRITERS * PER_WRITER;

    let from_start = store.watch("", 0).unwrap();
    let first_check = tokio::spawn(expect_contiguous(from_start, 0, total));

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..PER_WRITER {
                    let key = format!("/w/{w}/{}", i % 10);
                    if i < 10 {
                        store.create(&key, b("c")).await.unwrap();
                    } else {
                        store.update(&key, b(&i.to_string()), None).await.unwrap();
                    }
                }
            })
        })
        .collect();

    // Watches that start at the current revision while writes are in flight.
    let mut midway = Vec::new();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(1)).await;
        let at = store.revision();
        let watcher = store.watch("", at).unwrap();
        midway.push(tokio::spawn(expect_contiguous(watcher, at, total - at)));
    }
    // A prefix watcher sees exactly its writer's events.
    let prefixed = store.watch("/w/3/", 0).unwrap();

    for writer in writers {
        writer.await.unwrap();
    }
    assert_eq!(store.revision(), total);
    first_check.await.unwrap();
    for check in midway {
        check.await.unwrap();
    }
    let events: Vec<Event> = prefixed
        .take(PER_WRITER as usize)
        .map(|item| item.unwrap())
        .collect()
        .await;
    assert!(events.iter().all(|e| e.key.starts_with("/w/3/")));
    assert!(events.windows(2).all(|w| w[0].revision < w[1].revision));
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == EventKind::Created)
            .count(),
        10
    );
    store.close().await;
}

#[tokio::test]
async fn watching_before_the_retained_window_is_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        StoreOptions {
            watch_retention_events: 10,
            durable: true,
        },
    )
    .unwrap();
    assert_eq!(store.oldest_watchable_revision(), 0);
    for i in 0..25 {
        store.create(&format!("/k/{i:02}"), b("v")).await.unwrap();
    }
    assert_eq!(store.oldest_watchable_revision(), 15);
    let err = store.watch("/k/", 3).unwrap_err();
    assert_eq!(
        err,
        StoreError::Compacted {
            requested: 3,
            oldest: 15
        }
    );
    assert_eq!(err.to_string(), "too old resource version: 3 (15)");
    assert!(matches!(
        store.watch("", 14),
        Err(StoreError::Compacted { .. })
    ));

    let mut watcher = store.watch("/k/", 15).unwrap();
    for revision in 16..=25 {
        assert_eq!(
            next_event(&mut watcher).await.unwrap().unwrap().revision,
            revision
        );
    }
    // Watching from the current revision (or later) waits for new events.
    let mut at_head = store.watch("/k/", 25).unwrap();
    store.create("/k/new", b("n")).await.unwrap();
    assert_eq!(
        next_event(&mut at_head).await.unwrap().unwrap().revision,
        26
    );
    store.close().await;
}

#[tokio::test]
async fn restart_restores_records_revision_and_watch_window() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        watch_retention_events: 50,
        durable: true,
    };
    {
        let store = Store::open(dir.path(), options.clone()).unwrap();
        for i in 0..40 {
            store
                .create(&format!("/r/{i:02}"), b(&format!("v{i}")))
                .await
                .unwrap();
        }
        for i in 0..20 {
            store
                .update(&format!("/r/{i:02}"), b(&format!("w{i}")), None)
                .await
                .unwrap();
        }
        store.delete("/r/39", None).await.unwrap();
        assert_eq!(store.revision(), 61);
        store.close().await;
        assert_eq!(store.create("/late", b("x")).await, Err(StoreError::Closed));
    }

    let store = Store::open(dir.path(), options.clone()).unwrap();
    assert_eq!(store.revision(), 61);
    assert_eq!(store.count("/r/"), 39);
    let r05 = store.get("/r/05").unwrap();
    assert_eq!(r05.value, b("w5"));
    assert_eq!((r05.create_revision, r05.mod_revision), (6, 46));
    let r30 = store.get("/r/30").unwrap();
    assert_eq!((r30.create_revision, r30.mod_revision), (31, 31));
    assert_eq!(store.get("/r/39"), None);
    assert_eq!(store.oldest_watchable_revision(), 11);
    assert!(matches!(
        store.watch("", 10),
        Err(StoreError::Compacted {
            requested: 10,
            oldest: 11
        })
    ));

    // The persisted window replays with full event contents.
    let mut watcher = store.watch("/r/", 44).unwrap();
    let e45 = next_event(&mut watcher).await.unwrap().unwrap();
    assert_eq!(
        e45,
        Event {
            revision: 45,
            kind: EventKind::Modified,
            key: "/r/04".into(),
            value: b("w4"),
            prev_value: Some(b("v4")),
            create_revision: 5,
        }
    );
    for revision in 46..=60 {
        assert_eq!(
            next_event(&mut watcher).await.unwrap().unwrap().revision,
            revision
        );
    }
    let e61 = next_event(&mut watcher).await.unwrap().unwrap();
    assert_eq!(e61.kind, EventKind::Deleted);
    assert_eq!(e61.value, b("v39"));
    // New writes continue the revision sequence and reach the resumed watch live.
    let created = store.create("/r/new", b("n")).await.unwrap();
    assert_eq!(created.mod_revision, 62);
    assert_eq!(
        next_event(&mut watcher).await.unwrap().unwrap().revision,
        62
    );
    drop(watcher);
    store.close().await;
    drop(store);

    // Reopening with a smaller window keeps only the newest events.
    let store = Store::open(
        dir.path(),
        StoreOptions {
            watch_retention_events: 5,
            durable: true,
        },
    )
    .unwrap();
    assert_eq!(store.revision(), 62);
    assert_eq!(store.oldest_watchable_revision(), 57);
    let mut watcher = store.watch("", 57).unwrap();
    assert_eq!(
        next_event(&mut watcher).await.unwrap().unwrap().revision,
        58
    );
    store.close().await;
}

#[tokio::test]
async fn dropping_the_last_handle_releases_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.create("/a", b("1")).await.unwrap();
    drop(store);
    let store = open(dir.path());
    assert_eq!(store.get("/a").unwrap().value, b("1"));
}

#[tokio::test]
async fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert!(matches!(
        Store::open(dir.path(), StoreOptions::default()),
        Err(StoreError::Io(_))
    ));
    store.close().await;
}

#[tokio::test]
async fn a_slow_watcher_is_ended_without_blocking_writers_or_losing_events_silently() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut slow = store.watch_with_buffer("/k/", 0, 5).unwrap();
    let mut other_prefix = store.watch_with_buffer("/other/", 0, 5).unwrap();
    for i in 0..12 {
        // Writers are never held up by the full watcher.
        tokio::time::timeout(
            Duration::from_secs(10),
            store.create(&format!("/k/{i:02}"), b("v")),
        )
        .await
        .unwrap()
        .unwrap();
    }
    for revision in 1..=5 {
        assert_eq!(
            next_event(&mut slow).await.unwrap().unwrap().revision,
            revision
        );
    }
    assert_eq!(
        next_event(&mut slow).await,
        Some(Err(StoreError::WatchOverflow { capacity: 5 }))
    );
    assert_eq!(next_event(&mut slow).await, None);

    // A watcher on an untouched prefix is unaffected; it can resume normally.
    store.create("/other/x", b("o")).await.unwrap();
    assert_eq!(
        next_event(&mut other_prefix)
            .await
            .unwrap()
            .unwrap()
            .revision,
        13
    );
    // The client of the ended watch resumes from the last revision it saw.
    let mut resumed = store.watch("/k/", 5).unwrap();
    assert_eq!(next_event(&mut resumed).await.unwrap().unwrap().revision, 6);
    store.close().await;
}

#[tokio::test]
async fn closing_ends_watchers_and_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.create("/a", b("1")).await.unwrap();
    let mut watcher = store.watch("", 0).unwrap();
    let clone = store.clone();
    store.close().await;
    assert_eq!(next_event(&mut watcher).await.unwrap().unwrap().revision, 1);
    assert_eq!(
        next_event(&mut watcher).await,
        Some(Err(StoreError::Closed))
    );
    assert_eq!(next_event(&mut watcher).await, None);
    assert_eq!(
        clone.update("/a", b("2"), None).await,
        Err(StoreError::Closed)
    );
    assert_eq!(clone.delete("/a", None).await, Err(StoreError::Closed));
    assert!(matches!(clone.watch("", 0), Err(StoreError::Closed)));
    // Reads of the last committed state keep working.
    assert_eq!(clone.get("/a").unwrap().value, b("1"));
    clone.close().await;
}

#[tokio::test]
async fn non_durable_writes_are_flushed_on_close() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        watch_retention_events: 100,
        durable: false,
    };
    let store = Store::open(dir.path(), options.clone()).unwrap();
    let mut keys = HashSet::new();
    for i in 0..30 {
        let key = format!("/n/{i}");
        store.create(&key, b("v")).await.unwrap();
        keys.insert(key);
    }
    store.close().await;
    drop(store);
    let store = Store::open(dir.path(), options).unwrap();
    let (records, revision, _) = store.list("/n/", None, 0);
    assert_eq!(revision, 30);
    assert_eq!(
        records.into_iter().map(|r| r.key).collect::<HashSet<_>>(),
        keys
    );
    store.close().await;
}
