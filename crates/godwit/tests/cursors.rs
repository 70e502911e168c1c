//! Cursors over a log-retention queue through the real binary: seeks (past the end
//! too), a reset of every cursor, paged reads of the log by id, cursor positions and
//! last-action times in the subscription stats, bad inputs, and durability of the
//! cursors across a checkpointing stop and a `kill -9`.

mod common;

use common::{ids, TestServer};
use serde_json::{json, Value};

/// Creates `queue` with log retention and the named subscriptions, starting at latest.
async fn log_queue(s: &TestServer, queue: &str, subs: &[&str]) {
    let r = s
        .put_json(
            &format!("/v1/queues/{queue}"),
            &json!({"retention": {"mode": "log"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    for sub in subs {
        let r = s
            .put_json(
                &format!("/v1/queues/{queue}/subscriptions/{sub}"),
                &json!({}),
            )
            .await;
        assert_eq!(r.status, 201, "{r:?}");
    }
}

/// The named subscriptions of `queue`, by name.
async fn subs(s: &TestServer, queue: &str) -> Vec<Value> {
    let r = s.get(&format!("/v1/queues/{queue}/subscriptions")).await;
    assert_eq!(r.status, 200, "{r:?}");
    r.json["subscriptions"].as_array().expect("a list").clone()
}

/// `(position, last_active_ms)` of subscription `name`.
async fn cursor(s: &TestServer, queue: &str, name: &str) -> (u64, u64) {
    let list = subs(s, queue).await;
    let sub = list
        .iter()
        .find(|x| x["name"] == name)
        .unwrap_or_else(|| panic!("no subscription {name} in {list:?}"));
    (
        sub["position"].as_u64().expect("a position"),
        sub["last_active_ms"].as_u64().expect("a last action"),
    )
}

/// Takes up to `max` from subscription `sub`.
async fn take_from(s: &TestServer, queue: &str, sub: &str, max: usize) -> Vec<u64> {
    let r = s
        .post(&format!(
            "/v1/queues/{queue}/take?max={max}&subscription={sub}"
        ))
        .await;
    ids(&r.messages())
}

/// A page of the log: ids and `next`.
async fn page(s: &TestServer, queue: &str, query: &str) -> (Vec<u64>, u64) {
    let r = s.get(&format!("/v1/queues/{queue}/log?{query}")).await;
    assert_eq!(r.status, 200, "{r:?}");
    (ids(&r.messages()), r.json["next"].as_u64().expect("next"))
}

#[tokio::test]
async fn seeks_resets_and_log_pages_move_cursors_over_the_retained_log() {
    let s = TestServer::start(&[]).await;
    log_queue(&s, "topic", &["a", "b"]).await;
    let (position, created) = cursor(&s, "topic", "a").await;
    assert_eq!(position, 1);
    assert!(created > 0, "subscribing is an action");
    for i in 1..=5 {
        assert_eq!(s.push("topic", &format!("m{i}")).await, i);
    }

    // A read moves the cursor past what it delivered and is an action.
    assert_eq!(take_from(&s, "topic", "a", 2).await, vec![1, 2]);
    let (position, read_at) = cursor(&s, "topic", "a").await;
    assert_eq!(position, 3);
    assert!(read_at >= created);
    assert_eq!(cursor(&s, "topic", "b").await.0, 1);

    // A seek past the end is the end: every later push is seen.
    let r = s
        .post_json(
            "/v1/queues/topic/subscriptions/a/seek",
            &json!({"id": u64::MAX}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(cursor(&s, "topic", "a").await.0, 6);
    assert!(take_from(&s, "topic", "a", 10).await.is_empty());
    assert_eq!(s.push("topic", "m6").await, 6);
    assert_eq!(take_from(&s, "topic", "a", 10).await, vec![6]);
    assert_eq!(cursor(&s, "topic", "a").await.0, 7);

    // A seek back replays the retained messages from there, consumed or not.
    let r = s
        .post_json("/v1/queues/topic/subscriptions/b/seek", &json!({"id": 4}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(take_from(&s, "topic", "b", 10).await, vec![4, 5, 6]);

    // A reset moves every cursor (the default subscription's too) to the start, and
    // leaves the last-action times alone.
    let before = cursor(&s, "topic", "a").await;
    let r = s.post("/v1/queues/topic/reset").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.json,
        json!({"queue": "topic", "id": 0, "subscriptions": 3})
    );
    assert_eq!(cursor(&s, "topic", "a").await, (1, before.1));
    assert_eq!(
        take_from(&s, "topic", "a", 10).await,
        vec![1, 2, 3, 4, 5, 6]
    );
    assert_eq!(ids(&s.take("topic", 10).await), vec![1, 2, 3, 4, 5, 6]);
    let r = s
        .post_json("/v1/queues/topic/reset", &json!({"id": 5}))
        .await;
    assert_eq!(r.json["id"], 5, "{r:?}");
    assert_eq!(take_from(&s, "topic", "b", 10).await, vec![5, 6]);
    assert_eq!(cursor(&s, "topic", "b").await.0, 7);

    // The log read by pages, without consuming.
    assert_eq!(
        page(&s, "topic", "from=0&max=4").await,
        (vec![1, 2, 3, 4], 5)
    );
    assert_eq!(page(&s, "topic", "from=5&max=4").await, (vec![5, 6], 7));
    assert_eq!(page(&s, "topic", "from=7&max=4").await, (vec![], 7));
    assert_eq!(page(&s, "topic", "max=1").await, (vec![1], 2));
    assert_eq!(
        page(&s, "topic", &format!("from={}&max=5", u64::MAX)).await,
        (vec![], u64::MAX)
    );
    let r = s.get("/v1/queues/topic/log?from=2&max=1").await;
    assert_eq!(r.messages()[0]["body"], "m2", "{r:?}");
    assert_eq!(s.stats("topic").await["log_messages"], 6);
}

#[tokio::test]
async fn cursor_operations_refuse_bad_input() {
    let s = TestServer::start(&[]).await;
    log_queue(&s, "topic", &["a"]).await;
    s.push("plain", "x").await;
    let r = s
        .put_json("/v1/queues/plain/subscriptions/p", &json!({}))
        .await;
    assert_eq!(r.status, 201, "{r:?}");

    // Unknown queues.
    s.get("/v1/queues/nope/log")
        .await
        .assert_error(404, "not_found");
    s.post("/v1/queues/nope/reset")
        .await
        .assert_error(404, "not_found");
    s.post_json("/v1/queues/nope/subscriptions/a/seek", &json!({"id": 1}))
        .await
        .assert_error(404, "not_found");
    // A queue that consumes has no log to reset or read.
    s.get("/v1/queues/plain/log")
        .await
        .assert_error(409, "not_a_log");
    s.post("/v1/queues/plain/reset")
        .await
        .assert_error(409, "not_a_log");
    // Its subscriptions have no cursor fields.
    let list = subs(&s, "plain").await;
    assert_eq!(list[0]["position"], Value::Null, "{list:?}");
    assert_eq!(list[0]["last_active_ms"], Value::Null, "{list:?}");

    // Numbers out of bounds.
    s.get("/v1/queues/topic/log?max=0")
        .await
        .assert_error(400, "invalid_argument");
    s.get("/v1/queues/topic/log?max=1001")
        .await
        .assert_error(400, "invalid_argument");
    for query in [
        "from=-1",
        "from=18446744073709551616",
        "max=99999999999999999999999",
        "from=abc",
        "other=1",
    ] {
        s.get(&format!("/v1/queues/topic/log?{query}"))
            .await
            .assert_error(400, "invalid_query");
    }
    for body in [
        json!({"id": -1}),
        json!({"id": 1.5}),
        json!({"id": "1"}),
        json!({"other": 1}),
    ] {
        s.post_json("/v1/queues/topic/reset", &body)
            .await
            .assert_error(400, "invalid_json");
    }
    let r = s
        .request(
            reqwest::Method::POST,
            "/v1/queues/topic/reset",
            Some((
                b"{\"id\": 18446744073709551616}".to_vec(),
                "application/json",
            )),
        )
        .await;
    r.assert_error(400, "invalid_json");
    // The log is still there, unchanged.
    assert_eq!(page(&s, "topic", "max=10").await, (vec![], 0));
}

#[tokio::test]
async fn cursor_positions_and_last_actions_survive_a_stop_and_a_kill9() {
    let mut s = TestServer::start(&[]).await;
    log_queue(&s, "topic", &["a", "b", "c"]).await;
    for i in 1..=6 {
        s.push("topic", &format!("m{i}")).await;
    }
    assert_eq!(take_from(&s, "topic", "a", 2).await, vec![1, 2]);
    let r = s
        .post_json("/v1/queues/topic/subscriptions/b/seek", &json!({"id": 5}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = s.post("/v1/queues/topic/lease?max=1&subscription=c").await;
    let receipt = r.messages()[0]["receipt"]
        .as_str()
        .expect("a receipt")
        .to_string();
    std::thread::sleep(std::time::Duration::from_millis(5));
    let r = s
        .post_json("/v1/queues/topic/ack", &json!({"receipts": [receipt]}))
        .await;
    assert_eq!(r.json["acked"], 1, "{r:?}");
    let before = subs(&s, "topic").await;

    // A stop writes a checkpoint: the cursors come back from it.
    let status = s.terminate().await;
    assert!(status.success(), "{status:?}");
    s.restart().await;
    assert_eq!(subs(&s, "topic").await, before);

    // More actions after the checkpoint, then a crash: they come back from the log.
    assert_eq!(take_from(&s, "topic", "a", 1).await, vec![3]);
    let r = s
        .post_json("/v1/queues/topic/subscriptions/c/seek", &json!({"id": 1}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = s
        .post_json("/v1/queues/topic/reset", &json!({"id": 4}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let before = subs(&s, "topic").await;
    for sub in &before {
        assert_eq!(sub["position"], 4, "{before:?}");
        assert!(
            sub["last_active_ms"].as_u64().unwrap_or(0) > 0,
            "{before:?}"
        );
    }
    s.kill9();
    s.restart().await;
    assert_eq!(subs(&s, "topic").await, before);
    assert_eq!(take_from(&s, "topic", "b", 10).await, vec![4, 5, 6]);
    assert_eq!(page(&s, "topic", "max=10").await.0, vec![1, 2, 3, 4, 5, 6]);
}

/// Creates bare cursor `name` of `queue` at `start`.
async fn bare_cursor(s: &TestServer, queue: &str, name: &str, start: Value) -> u16 {
    let r = s
        .put_json(
            &format!("/v1/queues/{queue}/subscriptions/{name}"),
            &json!({"kind": "cursor", "start": start}),
        )
        .await;
    r.status
}

#[tokio::test]
async fn a_bare_cursor_is_read_without_moving_moved_by_seek_and_survives_a_kill9() {
    let mut s = TestServer::start(&[]).await;
    log_queue(&s, "topic", &[]).await;
    for i in 1..=5 {
        s.push("topic", &format!("m{i}")).await;
    }
    // queue-sample's subscriber: starts at the end, sees only later messages.
    assert_eq!(bare_cursor(&s, "topic", "r", json!("latest")).await, 201);
    assert_eq!(bare_cursor(&s, "topic", "r", json!("earliest")).await, 200);
    assert_eq!(bare_cursor(&s, "topic", "e", json!("earliest")).await, 201);
    let list = subs(&s, "topic").await;
    assert_eq!(list[0]["name"], "e");
    assert_eq!(list[0]["kind"], "cursor");
    assert_eq!(
        (&list[0]["position"], &list[0]["ready"]),
        (&json!(1), &json!(5))
    );
    assert_eq!(
        (&list[1]["position"], &list[1]["ready"]),
        (&json!(6), &json!(0))
    );
    assert_eq!(s.stats("topic").await["subscriptions"], 2);

    // Reading does not move it: the same messages come back until a seek.
    assert_eq!(
        page(&s, "topic", "subscription=e&max=2").await,
        (vec![1, 2], 3)
    );
    assert_eq!(
        page(&s, "topic", "subscription=e&max=2").await,
        (vec![1, 2], 3)
    );
    assert_eq!(page(&s, "topic", "subscription=r&max=2").await, (vec![], 6));
    s.push("topic", "m6").await;
    assert_eq!(
        page(&s, "topic", "subscription=r&max=9").await,
        (vec![6], 7)
    );
    let (_, created) = cursor(&s, "topic", "e").await;
    std::thread::sleep(std::time::Duration::from_millis(5));
    let r = s
        .post_json("/v1/queues/topic/subscriptions/e/seek", &json!({"id": 3}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let (position, acted) = cursor(&s, "topic", "e").await;
    assert_eq!(position, 3);
    assert!(acted > created, "a seek is an action: {acted} > {created}");
    assert_eq!(
        page(&s, "topic", "subscription=e&max=9").await.0,
        vec![3, 4, 5, 6]
    );

    // A bare cursor set past the end stays there: nothing is read from it until the
    // log grows past it (a consuming subscription's seek past the end is the end).
    let r = s
        .post_json("/v1/queues/topic/subscriptions/r/seek", &json!({"id": 9}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(cursor(&s, "topic", "r").await.0, 9);
    assert_eq!(s.push("topic", "m7").await, 7);
    assert!(page(&s, "topic", "subscription=r&max=9").await.0.is_empty());
    assert_eq!(s.push("topic", "m8").await, 8);
    assert_eq!(s.push("topic", "m9").await, 9);
    assert_eq!(page(&s, "topic", "subscription=r&max=9").await.0, vec![9]);
    let r = s
        .post_json(
            "/v1/queues/topic/subscriptions/r/seek",
            &json!({"id": u64::MAX}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(cursor(&s, "topic", "r").await.0, u64::MAX);
    assert!(page(&s, "topic", "subscription=r&max=9").await.0.is_empty());

    // It holds no messages to take, lease, peek or stream.
    for path in [
        "/v1/queues/topic/take?subscription=e",
        "/v1/queues/topic/lease?subscription=e",
    ] {
        s.post(path).await.assert_error(409, "cursor_subscription");
    }
    s.get("/v1/queues/topic/peek?subscription=e")
        .await
        .assert_error(409, "cursor_subscription");
    s.get("/v1/queues/topic/events?subscription=e")
        .await
        .assert_error(409, "cursor_subscription");

    // A stop (checkpoint), more moves, a crash: positions come back from both.
    let status = s.terminate().await;
    assert!(status.success(), "{status:?}");
    s.restart().await;
    assert_eq!(cursor(&s, "topic", "e").await.0, 3);
    assert_eq!(cursor(&s, "topic", "r").await.0, u64::MAX);
    let r = s
        .post_json("/v1/queues/topic/subscriptions/e/seek", &json!({"id": 6}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = s
        .post_json("/v1/queues/topic/reset", &json!({"id": 2}))
        .await;
    assert_eq!(r.json["subscriptions"], 3, "{r:?}");
    let before = subs(&s, "topic").await;
    assert_eq!(before[1]["position"], 2, "{before:?}");
    s.kill9();
    s.restart().await;
    assert_eq!(subs(&s, "topic").await, before);
    assert_eq!(
        page(&s, "topic", "subscription=r&max=2").await,
        (vec![2, 3], 4)
    );

    // Unsubscribing removes it.
    let r = s.delete("/v1/queues/topic/subscriptions/e").await;
    assert_eq!(r.status, 204, "{r:?}");
    s.get("/v1/queues/topic/log?subscription=e")
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn bare_cursors_refuse_what_they_cannot_be() {
    let s = TestServer::start(&[]).await;
    assert_eq!(bare_cursor(&s, "nowhere", "c", json!("latest")).await, 404);
    s.push("plain", "m").await;
    assert_eq!(bare_cursor(&s, "plain", "c", json!("latest")).await, 409);
    log_queue(&s, "topic", &["q"]).await;
    // A name is one kind: a consuming subscription is not turned into a cursor.
    assert_eq!(bare_cursor(&s, "topic", "q", json!("latest")).await, 200);
    assert_eq!(subs(&s, "topic").await[0]["kind"], "queue");
    s.get("/v1/queues/topic/log?subscription=q")
        .await
        .assert_error(404, "not_found");
    assert_eq!(bare_cursor(&s, "topic", "c", json!("latest")).await, 201);
    s.get("/v1/queues/topic/log?subscription=c&from=1")
        .await
        .assert_error(400, "invalid_argument");
    let r = s
        .put_json(
            "/v1/queues/topic/subscriptions/x",
            &json!({"kind": "pointer"}),
        )
        .await;
    r.assert_error(400, "invalid_json");
}
