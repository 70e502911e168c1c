//! Messages whose TTL passed leave on their own: the sweep removes them through the
//! expiry index without any read, counts them, and compaction then has nothing of
//! them to copy. On the old core they stayed (counted as ready, kept alive in their
//! segments) until a read stumbled on them.

mod common;

use std::time::Duration;

use common::*;
use godwit_core::*;

fn with_ttl(body: &str, ttl_ms: u64) -> NewMessage {
    let mut m = NewMessage::new(body.to_string());
    m.ttl = Some(Duration::from_millis(ttl_ms));
    m
}

#[tokio::test]
async fn expired_messages_leave_stats_without_a_read() {
    let t = TestBroker::new(1 << 20);
    push(&t.broker, "q", "keeper").await;
    let short: Vec<NewMessage> = (0..3).map(|i| with_ttl(&format!("t{i}"), 100)).collect();
    t.broker.push("q", short).await.unwrap();
    t.clock.advance(99);
    assert_eq!(t.broker.stats("q").unwrap().ready, 4);
    t.clock.advance(1);
    let stats = t.broker.stats("q").unwrap();
    assert_eq!((stats.ready, stats.total_expired), (1, 3));
    assert_eq!(stats.bytes, "keeper".len() as u64);
    assert_eq!(bodies(&take(&t.broker, "q", 10).await), ["keeper"]);
}

#[tokio::test]
async fn compaction_after_expiry_copies_nothing_of_the_expired() {
    // Small segments: the keeper shares the first one with expiring messages, and the
    // rest fill a few more.
    let t = TestBroker::new(1024);
    let body = "x".repeat(100);
    push(&t.broker, "q", "keeper").await;
    for _ in 0..20 {
        t.broker
            .push("q", vec![with_ttl(&body, 100)])
            .await
            .unwrap();
    }
    let before = t.store.segment_numbers();
    assert!(before.len() >= 3, "segments: {before:?}");
    t.clock.advance(100);
    let stats = t.broker.stats("q").unwrap();
    assert_eq!((stats.ready, stats.total_expired), (1, 20));
    // Only the keeper is live in a sealed segment: it alone is copied forward.
    assert_eq!(t.broker.compact().await.unwrap(), 1);
    let after = t.store.segment_numbers();
    assert!(
        after
            .iter()
            .all(|n| !before[..before.len() - 1].contains(n)),
        "sealed segments reclaimed: before {before:?}, after {after:?}"
    );
    assert_eq!(t.broker.compact().await.unwrap(), 0, "nothing left to copy");
    assert_eq!(bodies(&take(&t.broker, "q", 10).await), ["keeper"]);
}

#[tokio::test]
async fn an_expired_message_is_gone_after_a_restart_too() {
    let t = TestBroker::new(1 << 20);
    t.broker
        .push("q", vec![with_ttl("short", 100)])
        .await
        .unwrap();
    t.clock.advance(100);
    assert_eq!(t.broker.stats("q").unwrap().total_expired, 1);
    drop(t.broker);
    let broker = open(t.store.clone(), t.clock.clone());
    let stats = broker.stats("q").unwrap();
    assert_eq!((stats.ready, stats.total_expired), (0, 1));
}
