//! The broker over the real log store: behaviour that must hold across restarts.

use std::sync::Arc;
use std::time::Duration;

use godwit_core::*;
use godwit_store::{FsyncPolicy, LogStore, StoreOptions};

fn open(dir: &std::path::Path, clock: Arc<ManualClock>) -> Broker {
    let mut opts = StoreOptions::new(dir);
    opts.fsync = FsyncPolicy::Never;
    opts.segment_bytes = 4096;
    let store = LogStore::open(opts).unwrap();
    Broker::open(Arc::new(store), clock, BrokerConfig::default()).unwrap()
}

fn read(max: usize) -> ReadOptions {
    ReadOptions {
        max,
        ..ReadOptions::default()
    }
}

fn bodies(msgs: &[Message]) -> Vec<String> {
    msgs.iter()
        .map(|m| String::from_utf8_lossy(&m.body).into_owned())
        .collect()
}

#[tokio::test]
async fn push_take_lease_ack_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let b = open(dir.path(), clock.clone());
    let msgs = (0..50).map(|i| NewMessage::new(format!("m{i}"))).collect();
    let out = b.push("jobs", msgs).await.unwrap();
    assert_eq!(out.first().unwrap().id, 1);
    assert_eq!(out.last().unwrap().id, 50);
    let taken = b
        .take("jobs", read(10))
        .await
        .unwrap()
        .into_messages()
        .await
        .unwrap();
    assert_eq!(bodies(&taken)[0], "m0");
    let leased = b
        .lease(
            "jobs",
            LeaseOptions {
                read: read(5),
                visibility: Duration::from_secs(30),
            },
        )
        .await
        .unwrap()
        .into_messages()
        .await
        .unwrap();
    assert_eq!(leased.len(), 5);
    assert_eq!(leased[0].id, 11);
    let receipts: Vec<Receipt> = leased.iter().filter_map(|m| m.receipt.clone()).collect();
    assert_eq!(b.ack("jobs", &receipts[..2]).await.unwrap(), 2);
    assert_eq!(b.ack("jobs", &receipts[..2]).await.unwrap(), 0);
    b.checkpoint().await.unwrap();
    b.push("jobs", vec![NewMessage::new("after")])
        .await
        .unwrap();
    drop(b);

    let b = open(dir.path(), clock.clone());
    let s = b.stats("jobs").unwrap();
    // 50 pushed + 1, 10 taken, 2 acked; the 3 unacked leases are ready again.
    assert_eq!(s.ready, 39);
    assert_eq!(s.in_flight, 0);
    assert_eq!(s.next_id, 52);
    let all = b
        .take("jobs", read(100))
        .await
        .unwrap()
        .into_messages()
        .await
        .unwrap();
    let ids: Vec<u64> = all.iter().map(|m| m.id).collect();
    assert_eq!(&ids[..3], &[13, 14, 15]);
    assert_eq!(all[0].deliveries, 2);
    assert_eq!(*ids.last().unwrap(), 51);
    assert_eq!(all.len(), 39);
    assert!(receipts.len() == 5);
    // A receipt from before the restart is stale.
    assert_eq!(b.ack("jobs", &receipts[2..]).await.unwrap(), 0);
    drop(b);
    let b = open(dir.path(), clock);
    assert_eq!(b.stats("jobs").unwrap().ready, 0);
    let out = b.push("jobs", vec![NewMessage::new("x")]).await.unwrap();
    assert_eq!(out[0].id, 52);
}

fn segment_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("log"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "seg"))
        })
        .count()
}

#[tokio::test]
async fn consumed_segments_are_reclaimed_and_a_pinning_message_is_moved_forward() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let b = open(dir.path(), clock.clone());
    // One long-delayed message at the very start pins the first segment.
    let mut pin = NewMessage::new("pinned");
    pin.delay = Some(Duration::from_secs(3600));
    b.push("jobs", vec![pin]).await.unwrap();
    for i in 0..200 {
        b.push("jobs", vec![NewMessage::new(format!("{i:0>100}"))])
            .await
            .unwrap();
    }
    let before = segment_files(dir.path());
    assert!(before > 5, "expected many 4 KiB segments, got {before}");
    let taken = b
        .take("jobs", read(1000))
        .await
        .unwrap()
        .into_messages()
        .await
        .unwrap();
    assert_eq!(taken.len(), 200);
    let copied = b.compact().await.unwrap();
    assert_eq!(copied, 1, "only the pinning message is copied forward");
    let after = segment_files(dir.path());
    assert!(
        after <= 2,
        "segments left after compaction: {after} (was {before})"
    );
    drop(b);

    let b = open(dir.path(), clock.clone());
    assert_eq!(b.stats("jobs").unwrap().delayed, 1);
    clock.advance(3_600_000);
    let got = b
        .take("jobs", read(10))
        .await
        .unwrap()
        .into_messages()
        .await
        .unwrap();
    assert_eq!(bodies(&got), vec!["pinned"]);
    assert_eq!(got[0].id, 1);
}

#[tokio::test]
async fn fan_out_subscriptions_and_log_retention() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let b = open(dir.path(), clock.clone());
    b.push("t", vec![NewMessage::new("before")]).await.unwrap();
    assert!(b.subscribe("t", "a", StartAt::Latest).await.unwrap());
    assert!(b.subscribe("t", "b", StartAt::Earliest).await.unwrap());
    assert!(!b.subscribe("t", "b", StartAt::Latest).await.unwrap());
    b.push("t", vec![NewMessage::new("m1"), NewMessage::new("m2")])
        .await
        .unwrap();
    let sub = |name: &str| ReadOptions {
        max: 10,
        subscription: Some(name.to_string()),
        ..ReadOptions::default()
    };
    assert_eq!(
        bodies(
            &b.take("t", sub("a"))
                .await
                .unwrap()
                .into_messages()
                .await
                .unwrap()
        ),
        ["m1", "m2"]
    );
    assert_eq!(
        bodies(
            &b.take("t", sub("b"))
                .await
                .unwrap()
                .into_messages()
                .await
                .unwrap()
        ),
        ["before", "m1", "m2"]
    );
    // The default subscription still has all three; seeking "a" back replays them.
    b.seek("t", "a", 2).await.unwrap();
    drop(b);
    let b = open(dir.path(), clock.clone());
    assert_eq!(
        bodies(
            &b.take("t", sub("a"))
                .await
                .unwrap()
                .into_messages()
                .await
                .unwrap()
        ),
        ["m1", "m2"]
    );
    assert_eq!(
        b.take("t", read(10))
            .await
            .unwrap()
            .into_messages()
            .await
            .unwrap()
            .len(),
        3
    );
    assert!(b.take("t", sub("missing")).await.is_err());

    // Log retention keeps the last 3 whatever was consumed.
    let patch = SettingsPatch {
        retention: Some(Retention {
            mode: RetentionMode::Log,
            max_age_ms: None,
            max_bytes: None,
            max_count: Some(3),
        }),
        ..SettingsPatch::default()
    };
    b.configure("log", patch).await.unwrap();
    for i in 1..=5 {
        b.push("log", vec![NewMessage::new(format!("e{i}"))])
            .await
            .unwrap();
    }
    assert_eq!(b.stats("log").unwrap().log_messages, 3);
    assert_eq!(
        bodies(
            &b.take("log", read(10))
                .await
                .unwrap()
                .into_messages()
                .await
                .unwrap()
        ),
        ["e3", "e4", "e5"]
    );
    b.subscribe("log", "replay", StartAt::Earliest)
        .await
        .unwrap();
    drop(b);
    let b = open(dir.path(), clock);
    assert_eq!(
        bodies(
            &b.take("log", sub("replay"))
                .await
                .unwrap()
                .into_messages()
                .await
                .unwrap()
        ),
        ["e3", "e4", "e5"]
    );
}

#[tokio::test]
async fn dedup_window_overflow_pause_sessions_and_long_poll() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let b = open(dir.path(), clock.clone());

    // Dedup: same id within the window is the original; after the window it is new.
    let with_key = |body: &str| {
        let mut m = NewMessage::new(body.to_string());
        m.dedup_id = Some("k".into());
        m
    };
    let first = b.push("d", vec![with_key("a")]).await.unwrap()[0];
    let again = b.push("d", vec![with_key("b")]).await.unwrap()[0];
    assert_eq!((again.id, again.duplicate), (first.id, true));
    clock.advance(5 * 60 * 1000);
    let later = b.push("d", vec![with_key("c")]).await.unwrap()[0];
    assert_eq!((later.id, later.duplicate), (2, false));

    // Max length: reject, then drop-oldest.
    let cap = |overflow| SettingsPatch {
        max_length: Some(Some(2)),
        overflow: Some(overflow),
        ..SettingsPatch::default()
    };
    b.configure("cap", cap(Overflow::Reject)).await.unwrap();
    b.push("cap", vec![NewMessage::new("1"), NewMessage::new("2")])
        .await
        .unwrap();
    let full = b.push("cap", vec![NewMessage::new("3")]).await;
    assert!(matches!(full, Err(Error::QueueFull(_))), "{full:?}");
    b.configure("cap", cap(Overflow::DropOldest)).await.unwrap();
    b.push("cap", vec![NewMessage::new("3")]).await.unwrap();
    assert_eq!(
        bodies(
            &b.take("cap", read(10))
                .await
                .unwrap()
                .into_messages()
                .await
                .unwrap()
        ),
        ["2", "3"]
    );

    // Paused queues accept but deliver nothing until resumed.
    let pause = |paused| SettingsPatch {
        paused: Some(paused),
        ..SettingsPatch::default()
    };
    b.configure("p", pause(true)).await.unwrap();
    b.push("p", vec![NewMessage::new("x")]).await.unwrap();
    assert!(b
        .take("p", read(1))
        .await
        .unwrap()
        .into_messages()
        .await
        .unwrap()
        .is_empty());
    b.configure("p", pause(false)).await.unwrap();
    assert_eq!(
        b.take("p", read(1))
            .await
            .unwrap()
            .into_messages()
            .await
            .unwrap()
            .len(),
        1
    );

    // A session's leases come back as soon as it ends.
    b.push("s", vec![NewMessage::new("job")]).await.unwrap();
    let session = b.open_session();
    let leased = session
        .lease(
            "s",
            LeaseOptions {
                read: read(1),
                visibility: Duration::from_secs(600),
            },
        )
        .await
        .unwrap()
        .into_messages()
        .await
        .unwrap();
    assert_eq!(leased.len(), 1);
    assert!(b
        .take("s", read(1))
        .await
        .unwrap()
        .into_messages()
        .await
        .unwrap()
        .is_empty());
    assert_eq!(session.end(), 1);
    let back = b
        .take("s", read(1))
        .await
        .unwrap()
        .into_messages()
        .await
        .unwrap();
    assert_eq!((back[0].id, back[0].deliveries), (1, 2));

    // A long-poll is woken by a push from another task.
    let waiter = {
        let b = b.clone();
        tokio::spawn(async move {
            b.take(
                "lp",
                ReadOptions {
                    max: 1,
                    wait: Duration::from_secs(20),
                    subscription: None,
                    ..Default::default()
                },
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    b.push("lp", vec![NewMessage::new("wake")]).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the waiter returns well before its 20 s wait")
        .unwrap()
        .unwrap()
        .into_messages()
        .await
        .unwrap();
    assert_eq!(bodies(&got), ["wake"]);
}

/// Many long-polls racing many pushes on two threads: every message is delivered
/// exactly once, none is lost between a waiter's registration and its wake-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_long_polls_and_pushes_deliver_each_message_once() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path(), Arc::new(ManualClock::new(1_000_000)));
    let mut takers = Vec::new();
    for _ in 0..16 {
        let b = b.clone();
        takers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..200 {
                let opts = ReadOptions {
                    max: 3,
                    wait: Duration::from_millis(20),
                    subscription: None,
                    ..Default::default()
                };
                got.extend(
                    b.take("race", opts)
                        .await
                        .unwrap()
                        .into_messages()
                        .await
                        .unwrap()
                        .into_iter()
                        .map(|m| m.id),
                );
            }
            got
        }));
    }
    let mut pushers = Vec::new();
    for p in 0..4 {
        let b = b.clone();
        pushers.push(tokio::spawn(async move {
            for i in 0..250 {
                b.push("race", vec![NewMessage::new(format!("{p}-{i}"))])
                    .await
                    .unwrap();
                if i % 16 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    for p in pushers {
        p.await.unwrap();
    }
    let mut ids = Vec::new();
    for t in takers {
        ids.extend(t.await.unwrap());
    }
    ids.extend(
        b.take("race", read(1000))
            .await
            .unwrap()
            .into_messages()
            .await
            .unwrap()
            .iter()
            .map(|m| m.id),
    );
    ids.sort_unstable();
    assert_eq!(ids, (1..=1000).collect::<Vec<u64>>());
}

#[tokio::test]
async fn a_long_session_keeps_only_its_live_leases() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path(), Arc::new(ManualClock::new(1_000_000)));
    let session = b.open_session();
    let opts = LeaseOptions {
        read: read(1),
        visibility: Duration::from_secs(600),
    };
    let msgs = (0..300).map(|i| NewMessage::new(format!("{i}"))).collect();
    b.push("long", msgs).await.unwrap();
    // Keep every 50th lease open; ack the rest, across several prunings of the list.
    let mut open_ids = Vec::new();
    for i in 0..300 {
        let got = session
            .lease("long", opts.clone())
            .await
            .unwrap()
            .into_messages()
            .await
            .unwrap();
        if i % 50 == 0 {
            open_ids.push(got[0].id);
        } else {
            let receipt = got[0].receipt.clone().unwrap();
            assert_eq!(b.ack("long", &[receipt]).await.unwrap(), 1);
        }
    }
    assert_eq!(b.stats("long").unwrap().in_flight, 6);
    assert_eq!(session.end(), 6);
    let back = b
        .take("long", read(10))
        .await
        .unwrap()
        .into_messages()
        .await
        .unwrap();
    assert_eq!(back.iter().map(|m| m.id).collect::<Vec<_>>(), open_ids);
}

#[tokio::test]
async fn keys_survive_checkpoints_compaction_and_reclaimed_segments() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let b = open(dir.path(), clock.clone());
    let write = |v: &str| KvWrite {
        value: bytes::Bytes::from(v.to_string()),
        ..KvWrite::default()
    };
    b.kv_set("first", write("written before everything"))
        .await
        .unwrap();
    b.kv_counter("hits", Counter::Signed(41)).await.unwrap();
    // Enough messages, consumed, that the segments holding the writes are reclaimed.
    for round in 0..4 {
        let msgs = (0..100)
            .map(|i| NewMessage::new(format!("round {round} message {i} {}", "x".repeat(60))))
            .collect();
        b.push("churn", msgs).await.unwrap();
        b.take("churn", read(100))
            .await
            .unwrap()
            .into_messages()
            .await
            .unwrap();
    }
    b.checkpoint().await.unwrap();
    b.kv_counter("hits", Counter::Signed(1)).await.unwrap();
    b.kv_delete(&["nothing".into()]).await.unwrap();
    b.compact().await.unwrap();
    let segments = std::fs::read_dir(dir.path().join("log")).unwrap().count();
    assert!(
        segments <= 3,
        "consumed segments were reclaimed: {segments}"
    );
    drop(b);
    let b = open(dir.path(), clock);
    let first = b.kv_get("first").await.unwrap().unwrap();
    assert_eq!(first.value, bytes::Bytes::from("written before everything"));
    let hits = b.kv_get("hits").await.unwrap().unwrap();
    assert_eq!(hits.value, bytes::Bytes::from("42"));
    assert_eq!(b.kv_stats().keys, 2);
}
