//! Time arithmetic at the limits: every duration a client may send is bounded by
//! `MAX_DURATION_MS`, the bound itself works as a (very long) duration, and nothing
//! past it gets in. On the old core these sums wrapped or saturated into "already
//! expired" (and overflow checks are on in the release profile the tests run with).

mod common;

use std::time::Duration;

use common::*;
use godwit_core::*;

const MAX: Duration = Duration::from_millis(MAX_DURATION_MS);
const PAST_MAX: Duration = Duration::from_millis(MAX_DURATION_MS + 1);

fn log_retention(max_age_ms: u64) -> SettingsPatch {
    SettingsPatch {
        retention: Some(Retention {
            mode: RetentionMode::Log,
            max_age_ms: Some(max_age_ms),
            ..Retention::default()
        }),
        ..SettingsPatch::default()
    }
}

fn is_invalid<T: std::fmt::Debug>(r: Result<T>) -> bool {
    matches!(r, Err(Error::InvalidArgument(_)))
}

#[tokio::test]
async fn log_retention_max_age_past_the_bound_is_refused() {
    let t = TestBroker::new(1 << 20);
    assert!(is_invalid(
        t.broker.configure("q", log_retention(u64::MAX)).await
    ));
    assert!(is_invalid(
        t.broker
            .configure("q", log_retention(MAX_DURATION_MS + 1))
            .await
    ));
    assert!(
        t.broker.settings("q").is_err(),
        "a refused patch creates nothing"
    );
}

#[tokio::test]
async fn log_retention_max_age_at_the_bound_keeps_messages() {
    let t = TestBroker::new(1 << 20);
    t.broker
        .configure("q", log_retention(MAX_DURATION_MS))
        .await
        .unwrap();
    for i in 0..3 {
        push(&t.broker, "q", &format!("m{i}")).await;
    }
    t.clock.advance(1000);
    let stats = t.broker.stats("q").unwrap();
    assert_eq!((stats.ready, stats.log_messages), (3, 3));
    assert_eq!(bodies(&take(&t.broker, "q", 10).await), ["m0", "m1", "m2"]);
}

#[tokio::test]
async fn a_lease_for_the_longest_visibility_is_not_expired_at_once() {
    let t = TestBroker::new(1 << 20);
    push(&t.broker, "q", "m").await;
    let first = t.broker.lease("q", lease(1, MAX)).await.unwrap();
    let first = first.into_messages().await.unwrap();
    assert_eq!(first.len(), 1);
    t.clock.advance(1000);
    let second = t.broker.lease("q", lease(1, MAX)).await.unwrap();
    assert!(second.is_empty(), "the first lease still hides the message");
    assert_eq!(t.broker.stats("q").unwrap().in_flight, 1);
    let receipt = first[0].receipt.clone().unwrap();
    assert_eq!(
        t.broker
            .extend("q", std::slice::from_ref(&receipt), MAX)
            .await
            .unwrap(),
        1
    );
    assert_eq!(t.broker.ack("q", &[receipt]).await.unwrap(), 1);
    assert!(is_invalid(t.broker.lease("q", lease(1, PAST_MAX)).await));
}

#[tokio::test]
async fn dedup_with_the_longest_window_still_dedups() {
    let t = TestBroker::new(1 << 20);
    let patch = SettingsPatch {
        dedup_window_ms: Some(MAX_DURATION_MS),
        ..SettingsPatch::default()
    };
    t.broker.configure("q", patch).await.unwrap();
    let with_id = |body: &str| {
        let mut m = NewMessage::new(body.to_string());
        m.dedup_id = Some("k".into());
        m
    };
    let first = t.broker.push("q", vec![with_id("a")]).await.unwrap();
    t.clock.advance(60 * 60 * 1000);
    let again = t.broker.push("q", vec![with_id("b")]).await.unwrap();
    assert!(!first[0].duplicate);
    assert!(again[0].duplicate);
    assert_eq!(again[0].id, first[0].id);
    assert_eq!(t.broker.stats("q").unwrap().ready, 1);
    let past = SettingsPatch {
        dedup_window_ms: Some(MAX_DURATION_MS + 1),
        ..SettingsPatch::default()
    };
    assert!(is_invalid(t.broker.configure("q", past).await));
}

#[tokio::test]
async fn delay_and_ttl_at_the_bound_are_taken_and_past_it_refused() {
    let t = TestBroker::new(1 << 20);
    let msg = |delay: Option<Duration>, ttl: Option<Duration>| {
        let mut m = NewMessage::new("m");
        m.delay = delay;
        m.ttl = ttl;
        vec![m]
    };
    t.broker.push("q", msg(Some(MAX), None)).await.unwrap();
    t.broker.push("q", msg(None, Some(MAX))).await.unwrap();
    assert!(is_invalid(
        t.broker.push("q", msg(Some(PAST_MAX), None)).await
    ));
    assert!(is_invalid(
        t.broker.push("q", msg(None, Some(PAST_MAX))).await
    ));
    let stats = t.broker.stats("q").unwrap();
    assert_eq!((stats.ready, stats.delayed, stats.total_pushed), (1, 1, 2));
}

#[tokio::test]
async fn a_zero_ttl_is_acknowledged_and_expired_at_once_never_delivered() {
    let t = TestBroker::new(1 << 20);
    let mut m = NewMessage::new("gone");
    m.ttl = Some(Duration::ZERO);
    let out = t.broker.push("q", vec![m]).await.unwrap();
    assert_eq!(out[0].id, 1);
    t.broker
        .push("q", vec![NewMessage::new("kept")])
        .await
        .unwrap();
    let got = common::take(&t.broker, "q", 10).await;
    assert_eq!(got.len(), 1);
    assert_eq!(&got[0].body[..], b"kept");
    let stats = t.broker.stats("q").unwrap();
    assert_eq!(
        (stats.ready, stats.total_pushed, stats.total_expired),
        (0, 2, 1)
    );
}

#[tokio::test]
async fn the_longest_delay_plus_the_longest_ttl_does_not_overflow() {
    let t = TestBroker::new(1 << 20);
    let mut m = NewMessage::new("far");
    m.delay = Some(MAX);
    m.ttl = Some(MAX);
    t.broker.push("q", vec![m]).await.unwrap();
    t.clock.advance(MAX_DURATION_MS);
    let stats = t.broker.stats("q").unwrap();
    assert_eq!((stats.ready, stats.delayed, stats.total_expired), (1, 0, 0));
    t.clock.advance(MAX_DURATION_MS);
    let stats = t.broker.stats("q").unwrap();
    assert_eq!((stats.ready, stats.total_expired), (0, 1));
}
