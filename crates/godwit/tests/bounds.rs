//! Time arithmetic at the edges, over HTTP (the bug report's repro): durations past the
//! documented limit (100 years, `MAX_DURATION_MS`) are refused with 400, durations at
//! the limit are accepted and behave, and a restart replays them without a panic
//! (release builds run with overflow checks on, so a wrap would kill the server).

mod common;

use common::{bodies, ids, TestServer};
use serde_json::{json, Value};

/// The documented limit of every duration: 100 years in milliseconds.
const MAX_MS: u64 = 3_153_600_000_000;

async fn configure(s: &TestServer, queue: &str, settings: Value) -> common::Reply {
    s.put_json(&format!("/v1/queues/{queue}"), &settings).await
}

/// What a queue must look like after every restart below.
async fn assert_queues_intact(s: &TestServer, when: &str) {
    let lg = s.get("/v1/queues/lg").await;
    assert_eq!(lg.status, 200, "{when}: {lg:?}");
    assert_eq!(lg.json["ready"], 2, "{when}: {lg:?}");
    assert_eq!(
        lg.json["settings"]["retention"]["max_age_ms"], MAX_MS,
        "{when}: retention lost: {lg:?}"
    );
    let dd = s.get("/v1/queues/dd").await;
    assert_eq!(dd.status, 200, "{when}: {dd:?}");
    assert_eq!(
        dd.json["settings"]["dedup_window_ms"], MAX_MS,
        "{when}: {dd:?}"
    );
    // The leased message is still hidden (or back at the head after a restart, as
    // leases are not durable) — either way the queue answers and holds it.
    let vis = s.get("/v1/queues/vis").await;
    assert_eq!(vis.status, 200, "{when}: {vis:?}");
    let held =
        vis.json["ready"].as_u64().unwrap_or(0) + vis.json["in_flight"].as_u64().unwrap_or(0);
    assert_eq!(held, 1, "{when}: {vis:?}");
}

#[tokio::test]
async fn durations_past_100_years_are_refused_and_at_the_limit_survive_restarts() {
    let mut s = TestServer::start(&[]).await;

    // Retention: u64::MAX is refused, the limit is taken.
    configure(
        &s,
        "lg",
        json!({"retention": {"mode": "log", "max_age_ms": u64::MAX}}),
    )
    .await
    .assert_error(400, "invalid_argument");
    assert_eq!(
        s.get("/v1/queues/lg").await.status,
        404,
        "a refused configure must not create the queue"
    );
    let ok = configure(
        &s,
        "lg",
        json!({"retention": {"mode": "log", "max_age_ms": MAX_MS}}),
    )
    .await;
    assert_eq!(ok.status, 200, "{ok:?}");
    for b in ["one", "two", "three"] {
        s.push("lg", b).await;
    }
    let stats = s.stats("lg").await;
    assert_eq!(stats["ready"], 3, "{stats}");
    let first = s.take("lg", 1).await;
    assert_eq!(bodies(&first), vec!["one"]);
    assert_eq!(s.stats("lg").await["ready"], 2);

    // Visibility: u64::MAX is refused, the limit is taken and never expires.
    s.push("vis", "leased").await;
    s.post(&format!("/v1/queues/vis/lease?visibility_ms={}", u64::MAX))
        .await
        .assert_error(400, "invalid_argument");
    let leased = s
        .post(&format!("/v1/queues/vis/lease?visibility_ms={MAX_MS}"))
        .await
        .messages();
    assert_eq!(bodies(&leased), vec!["leased"]);
    let second = s
        .post(&format!("/v1/queues/vis/lease?visibility_ms={MAX_MS}"))
        .await
        .messages();
    assert!(
        second.is_empty(),
        "redelivered a 100-year lease: {second:?}"
    );
    // Extending to the limit is fine too; past it is refused.
    let receipt = leased[0]["receipt"].clone();
    let ext = s
        .post_json(
            "/v1/queues/vis/extend",
            &json!({"receipts": [receipt], "visibility_ms": MAX_MS}),
        )
        .await;
    assert_eq!(ext.status, 200, "{ext:?}");
    s.post_json(
        "/v1/queues/vis/extend",
        &json!({"receipts": [receipt], "visibility_ms": u64::MAX}),
    )
    .await
    .assert_error(400, "invalid_argument");

    // Dedup window: past the limit refused, at the limit a duplicate is caught.
    configure(&s, "dd", json!({"dedup_window_ms": MAX_MS + 1}))
        .await
        .assert_error(400, "invalid_argument");
    configure(&s, "dd", json!({"dedup_window_ms": u64::MAX}))
        .await
        .assert_error(400, "invalid_argument");
    let ok = configure(&s, "dd", json!({"dedup_window_ms": MAX_MS})).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let a = s.push_raw("dd", "?dedup_id=k", b"first").await;
    assert_eq!(a.status, 201, "{a:?}");
    let b = s.push_raw("dd", "?dedup_id=k", b"again").await;
    assert_eq!(b.json["duplicate"], true, "{b:?}");
    assert_eq!(bodies(&s.take("dd", 10).await), vec!["first"]);

    // Delay and TTL at and past the limit.
    s.push_raw("dl", &format!("?delay_ms={}", u64::MAX), b"x")
        .await
        .assert_error(400, "invalid_argument");
    s.push_raw("dl", &format!("?ttl_ms={}", u64::MAX), b"x")
        .await
        .assert_error(400, "invalid_argument");
    let far = s
        .push_raw("dl", &format!("?delay_ms={MAX_MS}&ttl_ms={MAX_MS}"), b"far")
        .await;
    assert_eq!(far.status, 201, "{far:?}");

    // A clean restart (final checkpoint) and a crash (log replay) both come back up.
    let status = s.terminate().await;
    assert!(status.success(), "exit {status}; stderr:\n{}", s.stderr());
    s.restart().await;
    assert_queues_intact(&s, "after terminate + start").await;
    s.push("lg", "four").await;
    s.kill9();
    s.restart().await;
    let lg = s.get("/v1/queues/lg").await;
    assert_eq!(lg.json["ready"], 3, "after kill -9: {lg:?}");
    let rest = s.take("lg", 10).await;
    assert_eq!(bodies(&rest), vec!["two", "three", "four"]);
    assert_eq!(ids(&rest), vec![2, 3, 4]);
    let vis = s.stats("vis").await;
    assert_eq!(
        vis["ready"].as_u64().unwrap_or(0) + vis["in_flight"].as_u64().unwrap_or(0),
        1,
        "{vis}"
    );
    let dl = s.stats("dl").await;
    assert_eq!(dl["delayed"], 1, "the 100-year delay was lost: {dl}");
    assert!(
        !s.stderr().contains("panicked"),
        "server panicked:\n{}",
        s.stderr()
    );
}
