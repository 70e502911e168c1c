//! State beyond plain messages survives `kill -9`: purges, drops, dedup ids, delays,
//! settings, subscriptions, dead letters, log retention, and disk reclamation. Each
//! scenario runs with the default checkpointing and with a tiny checkpoint threshold so
//! that recovery goes through a checkpoint plus a replayed tail.

mod common;

use std::time::Duration;

use common::{bodies, eventually, files_with_suffix, ids, TestServer};
use serde_json::json;

const SMALL_CHECKPOINTS: &[&str] = &["--checkpoint-bytes", "4096"];

async fn crash_and_restart(s: &mut TestServer) {
    s.kill9();
    s.restart().await;
}

async fn purged_and_dropped_messages_stay_gone(args: &[&str]) {
    let mut s = TestServer::start(args).await;
    for i in 0..20 {
        s.push("purged", &format!("p{i}")).await;
        s.push("dropped", &format!("d{i}")).await;
    }
    let r = s.post("/v1/queues/purged/purge").await;
    assert_eq!(r.json["purged"], 20, "{r:?}");
    assert_eq!(s.delete("/v1/queues/dropped").await.json["dropped"], 20);
    crash_and_restart(&mut s).await;

    assert!(
        s.take("purged", 100).await.is_empty(),
        "purged messages came back"
    );
    let r = s.get("/v1/queues/dropped").await;
    assert_eq!(r.status, 404, "dropped queue came back: {r:?}");
    assert_eq!(
        s.push("purged", "after").await,
        21,
        "ids rise after purge + crash"
    );
    let id = s.push("dropped", "after").await;
    assert!(id > 20, "ids rise after drop + crash: got {id}");
    assert_eq!(bodies(&s.take("dropped", 100).await), vec!["after"]);
}

#[tokio::test]
async fn purged_and_dropped_messages_stay_gone_after_kill9() {
    purged_and_dropped_messages_stay_gone(&[]).await;
}

#[tokio::test]
async fn purged_and_dropped_messages_stay_gone_after_kill9_with_checkpoints() {
    purged_and_dropped_messages_stay_gone(SMALL_CHECKPOINTS).await;
}

async fn dedup_delay_priority_and_settings_survive(args: &[&str]) {
    let mut s = TestServer::start(args).await;
    let r = s.push_raw("dd", "?dedup_id=order-7", b"first").await;
    assert_eq!(r.status, 201);
    let r = s.push_raw("delayed", "?delay_ms=3000", b"later").await;
    assert_eq!(r.status, 201);
    s.push("delayed", "now").await;
    for (p, b) in [(1, "low"), (9, "high"), (4, "mid")] {
        s.push_raw("prio", &format!("?priority={p}"), b.as_bytes())
            .await;
    }
    let r = s
        .put_json(
            "/v1/queues/cfg",
            &json!({"max_deliveries": 3, "max_length": 10, "paused": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    s.push("cfg", "held").await;
    crash_and_restart(&mut s).await;

    let dup = s.push_raw("dd", "?dedup_id=order-7", b"second").await;
    assert_eq!(dup.status, 200, "dedup id forgotten over a crash: {dup:?}");
    assert_eq!(dup.json["id"], 1);
    assert_eq!(dup.json["duplicate"], true);

    assert_eq!(
        bodies(&s.take("delayed", 10).await),
        vec!["now"],
        "a delayed message stays delayed over a crash"
    );
    let later = eventually(Duration::from_secs(10), "delayed message due", || async {
        let m = s.take("delayed", 10).await;
        (!m.is_empty()).then_some(m)
    })
    .await;
    assert_eq!(bodies(&later), vec!["later"]);

    assert_eq!(
        bodies(&s.take("prio", 10).await),
        vec!["high", "mid", "low"]
    );

    let settings = s.stats("cfg").await["settings"].clone();
    assert_eq!(settings["max_deliveries"], 3, "{settings}");
    assert_eq!(settings["max_length"], 10, "{settings}");
    assert_eq!(settings["paused"], true, "{settings}");
    assert!(s.take("cfg", 10).await.is_empty(), "still paused");
}

#[tokio::test]
async fn dedup_delay_priority_and_settings_survive_kill9() {
    dedup_delay_priority_and_settings_survive(&[]).await;
}

#[tokio::test]
async fn dedup_delay_priority_and_settings_survive_kill9_with_checkpoints() {
    dedup_delay_priority_and_settings_survive(SMALL_CHECKPOINTS).await;
}

async fn subscriptions_and_dead_letters_survive(args: &[&str]) {
    let mut s = TestServer::start(args).await;
    let r = s
        .put_json("/v1/queues/t/subscriptions/a", &json!({"start": "latest"}))
        .await;
    assert_eq!(r.status, 201);
    let r = s
        .put_json("/v1/queues/t/subscriptions/b", &json!({"start": "latest"}))
        .await;
    assert_eq!(r.status, 201);
    for i in 1..=6 {
        s.push("t", &format!("m{i}")).await;
    }
    let got = s
        .post("/v1/queues/t/take?max=2&subscription=a")
        .await
        .messages();
    assert_eq!(ids(&got), vec![1, 2]);
    let got = s
        .post("/v1/queues/t/take?max=4&subscription=b")
        .await
        .messages();
    assert_eq!(ids(&got), vec![1, 2, 3, 4]);

    s.put_json("/v1/queues/dlx", &json!({"max_deliveries": 1}))
        .await;
    s.push("dlx", "poison").await;
    let m = s.post("/v1/queues/dlx/lease").await.messages();
    let n = s
        .post_json(
            "/v1/queues/dlx/nack",
            &json!({"receipts": [m[0]["receipt"]]}),
        )
        .await;
    assert_eq!(n.json, json!({"nacked": 1}));
    crash_and_restart(&mut s).await;

    let subs = s.get("/v1/queues/t/subscriptions").await;
    let names: Vec<&str> = subs.json["subscriptions"]
        .as_array()
        .expect("subscriptions")
        .iter()
        .filter_map(|x| x["name"].as_str())
        .collect();
    assert_eq!(names, vec!["a", "b"], "{subs:?}");
    let a = s
        .post("/v1/queues/t/take?max=10&subscription=a")
        .await
        .messages();
    assert_eq!(ids(&a), vec![3, 4, 5, 6], "subscription a's position");
    let b = s
        .post("/v1/queues/t/take?max=10&subscription=b")
        .await
        .messages();
    assert_eq!(ids(&b), vec![5, 6], "subscription b's position");
    assert_eq!(ids(&s.take("t", 10).await), vec![1, 2, 3, 4, 5, 6]);

    assert_eq!(bodies(&s.take("dlx.dlq", 10).await), vec!["poison"]);
    assert!(s.take("dlx", 10).await.is_empty());
}

#[tokio::test]
async fn subscriptions_and_dead_letters_survive_kill9() {
    subscriptions_and_dead_letters_survive(&[]).await;
}

#[tokio::test]
async fn subscriptions_and_dead_letters_survive_kill9_with_checkpoints() {
    subscriptions_and_dead_letters_survive(SMALL_CHECKPOINTS).await;
}

async fn log_retention_survives(args: &[&str]) {
    let mut s = TestServer::start(args).await;
    let r = s
        .put_json(
            "/v1/queues/log",
            &json!({"retention": {"mode": "log", "max_count": 10}}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    for i in 1..=25 {
        s.push("log", &format!("m{i}")).await;
    }
    assert_eq!(
        ids(&s.take("log", 100).await),
        (16..=25).collect::<Vec<_>>(),
        "the log dropped the oldest, unread or not"
    );
    crash_and_restart(&mut s).await;

    eventually(Duration::from_secs(5), "log trimmed", || async {
        (s.stats("log").await["log_messages"].as_u64() <= Some(10)).then_some(())
    })
    .await;
    let r = s
        .put_json(
            "/v1/queues/log/subscriptions/r",
            &json!({"start": "earliest"}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let got = s
        .post("/v1/queues/log/take?max=100&subscription=r")
        .await
        .messages();
    assert_eq!(
        ids(&got),
        (16..=25).collect::<Vec<_>>(),
        "the log keeps the newest max_count"
    );
    assert!(s.take("log", 10).await.is_empty(), "default position kept");
}

#[tokio::test]
async fn log_retention_survives_kill9() {
    log_retention_survives(&[]).await;
}

#[tokio::test]
async fn log_retention_survives_kill9_with_checkpoints() {
    log_retention_survives(SMALL_CHECKPOINTS).await;
}

fn segment_bytes(s: &TestServer) -> u64 {
    files_with_suffix(&s.data_dir(), ".seg")
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

#[tokio::test]
async fn consumed_segments_are_reclaimed() {
    let mut s = TestServer::start(&[
        "--fsync",
        "never",
        "--segment-bytes",
        "65536",
        "--checkpoint-bytes",
        "65536",
    ])
    .await;
    let body = "r".repeat(1000);
    for _ in 0..40 {
        let batch: Vec<_> = (0..50).map(|_| json!({ "body": body })).collect();
        let r = s
            .post_json("/v1/queues/reclaim/batch", &json!({ "messages": batch }))
            .await;
        assert_eq!(r.status, 201, "{r:?}");
    }
    let peak = segment_bytes(&s);
    assert!(peak >= 2_000_000, "2 MB of bodies are on disk: {peak}");
    assert_eq!(s.drain("reclaim", 2000).await.len(), 2000);
    // Further writes drive checkpoints, after which consumed segments can go.
    let reclaimed = eventually(Duration::from_secs(20), "segments reclaimed", || async {
        let batch: Vec<_> = (0..20).map(|_| json!({ "body": body })).collect();
        s.post_json("/v1/queues/churn/batch", &json!({ "messages": batch }))
            .await;
        s.drain("churn", 100).await;
        let now = segment_bytes(&s);
        (now < peak / 4).then_some(now)
    })
    .await;
    eprintln!("segments: {peak} bytes at peak, {reclaimed} after consumption");

    crash_and_restart(&mut s).await;
    assert!(s.take("reclaim", 10).await.is_empty());
    assert_eq!(
        s.push("reclaim", "after").await,
        2001,
        "ids survive reclamation"
    );
}

#[tokio::test]
async fn sigterm_does_not_wait_for_idle_long_polls() {
    let mut s = TestServer::start(&[]).await;
    let client = s.client.clone();
    let url = s.url("/v1/queues/idle/take?wait_ms=30000");
    let poll = tokio::spawn(async move { client.post(url).send().await.map(|r| r.status()) });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // TestServer::terminate fails the test if the server needs more than 20 s to exit.
    let status = s.terminate().await;
    assert!(status.success(), "{status}");
    let _ = poll.await;
}

/// The relaxed fsync modes acknowledge once the bytes are written to the OS, so a killed
/// process (not a power cut) still loses nothing; and a graceful stop syncs everything.
#[tokio::test]
async fn relaxed_fsync_modes_keep_acknowledged_pushes_across_a_process_crash() {
    for mode in ["interval:20", "never"] {
        let mut s = TestServer::start(&["--fsync", mode]).await;
        for i in 0..50 {
            s.push("relaxed", &format!("m{i}")).await;
        }
        crash_and_restart(&mut s).await;
        for i in 50..60 {
            s.push("relaxed", &format!("m{i}")).await;
        }
        let status = s.terminate().await;
        assert!(
            status.success(),
            "{mode}: graceful stop exits 0: {status:?}"
        );
        s.restart().await;
        let got = s.take("relaxed", 100).await;
        assert_eq!(
            ids(&got),
            (1..=60).collect::<Vec<u64>>(),
            "{mode}: every acknowledged push survives"
        );
    }
}
