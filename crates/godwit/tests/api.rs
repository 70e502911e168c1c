//! The native HTTP API over real HTTP: every route of the contract, as a user sees it.

mod common;

use std::time::Duration;

use common::{bodies, body_bytes, eventually, ids, TestServer};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(5);

/// What a monitor sees from `/healthz`: a JSON `{"status": "ok"}` (the harness already
/// waited for the 200). The 503 of a failed or closing store cannot be caused over HTTP
/// alone: the router test `healthz_answers_503_once_the_broker_is_shut_down` covers it
/// for a closed broker, and the fault-injecting storage test for a failed store.
#[tokio::test]
async fn healthz_answers_ok_in_json() {
    let s = TestServer::start(&[]).await;
    let r = s.get("/healthz").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.content_type.starts_with("application/json"), "{r:?}");
    assert_eq!(r.json, json!({"status": "ok"}), "{r:?}");
}

#[tokio::test]
async fn push_then_take_round_trips_bodies_and_numbers_ids_from_one() {
    let s = TestServer::start(&[]).await;
    let first = s.push_raw("jobs", "", b"hello").await;
    assert_eq!(first.status, 201, "{first:?}");
    // The server runs with `--fsync always`: the reply says the push is on disk.
    assert_eq!(
        first.json,
        json!({"queue": "jobs", "id": 1, "length": 1, "durable": true})
    );
    assert_eq!(s.push("jobs", "line one\r\nline two\n").await, 2);
    assert_eq!(s.push("jobs", "caf\u{e9} \u{1f426} \"quoted\"").await, 3);

    let got = s.take("jobs", 10).await;
    assert_eq!(ids(&got), vec![1, 2, 3]);
    assert_eq!(
        bodies(&got),
        vec![
            "hello",
            "line one\r\nline two\n",
            "caf\u{e9} \u{1f426} \"quoted\""
        ]
    );
    let m = &got[0];
    assert_eq!(m["priority"], 4, "default priority: {m}");
    assert_eq!(m["headers"], json!({}), "headers object: {m}");
    assert!(m.get("receipt").is_none(), "take carries no receipt: {m}");
    assert!(m["deliveries"].as_u64().is_some(), "deliveries: {m}");
    let created = m["created_at"].as_u64().expect("created_at in ms");
    assert!(
        created > 1_600_000_000_000,
        "created_at looks like ms: {created}"
    );

    assert!(s.take("jobs", 10).await.is_empty(), "take consumes");
    // A take with no `max` takes one message.
    s.push("jobs", "a").await;
    s.push("jobs", "b").await;
    let one = s.post("/v1/queues/jobs/take").await.messages();
    assert_eq!(bodies(&one), vec!["a"]);
}

#[tokio::test]
async fn non_utf8_bodies_come_back_as_base64_byte_for_byte() {
    let s = TestServer::start(&[]).await;
    let raw: Vec<u8> = vec![0xff, 0x00, 0x80, b'a', 0xc3, 0x28, 0x00];
    let reply = s.push_raw("bin", "", &raw).await;
    assert_eq!(reply.status, 201, "{reply:?}");
    let empty = s.push_raw("bin", "", b"").await;
    assert_eq!(empty.status, 201, "an empty body is a message: {empty:?}");

    let got = s.take("bin", 10).await;
    assert_eq!(got.len(), 2);
    assert!(
        got[0].get("body").is_none(),
        "not UTF-8, so no body: {}",
        got[0]
    );
    assert!(got[0]["body_base64"].is_string(), "{}", got[0]);
    assert_eq!(body_bytes(&got[0]), raw);
    assert_eq!(body_bytes(&got[1]), b"");
}

#[tokio::test]
async fn higher_priority_first_and_fifo_within_a_priority() {
    let s = TestServer::start(&[]).await;
    for (p, body) in [
        (1, "low"),
        (9, "high"),
        (4, "mid"),
        (9, "high2"),
        (0, "lowest"),
    ] {
        let r = s
            .push_raw("prio", &format!("?priority={p}"), body.as_bytes())
            .await;
        assert_eq!(r.status, 201, "{r:?}");
    }
    s.push("prio", "mid-default").await;
    let got = s.take("prio", 10).await;
    assert_eq!(
        bodies(&got),
        vec!["high", "high2", "mid", "mid-default", "low", "lowest"]
    );
    assert_eq!(got[0]["priority"], 9);
    assert_eq!(got[5]["priority"], 0);
    s.push_raw("prio", "?priority=10", b"x")
        .await
        .assert_error(400, "invalid_argument");
}

#[tokio::test]
async fn delayed_message_is_invisible_until_due() {
    let s = TestServer::start(&[]).await;
    let r = s.push_raw("later", "?delay_ms=1500", b"later").await;
    assert_eq!(r.status, 201, "{r:?}");
    s.push("later", "now").await;
    let got = s.take("later", 10).await;
    assert_eq!(
        bodies(&got),
        vec!["now"],
        "the delayed one is not ready yet"
    );
    assert_eq!(s.stats("later").await["delayed"], 1);
    let peeked = s.get("/v1/queues/later/peek?max=10").await.messages();
    assert!(peeked.is_empty(), "peek hides delayed messages: {peeked:?}");

    let got = eventually(WAIT, "delayed message becomes ready", || async {
        let m = s.take("later", 10).await;
        (!m.is_empty()).then_some(m)
    })
    .await;
    assert_eq!(bodies(&got), vec!["later"]);
    assert_eq!(s.stats("later").await["delayed"], 0);
}

#[tokio::test]
async fn expired_message_is_never_delivered() {
    let s = TestServer::start(&[]).await;
    let r = s.push_raw("ttl", "?ttl_ms=200", b"ephemeral").await;
    assert_eq!(r.status, 201, "{r:?}");
    s.push("ttl", "stays").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let got = s.take("ttl", 10).await;
    assert_eq!(bodies(&got), vec!["stays"]);
    // Still there after the sweeper has had its chance.
    let stats = s.stats("ttl").await;
    assert_eq!(stats["ready"], 0, "{stats}");
}

#[tokio::test]
async fn dedup_id_returns_the_original_id_with_200() {
    let s = TestServer::start(&[]).await;
    let a = s.push_raw("dd", "?dedup_id=abc", b"one").await;
    assert_eq!(a.status, 201, "{a:?}");
    assert_eq!(a.json["id"], 1);
    let dup = s.push_raw("dd", "?dedup_id=abc", b"two").await;
    assert_eq!(dup.status, 200, "duplicate answers 200: {dup:?}");
    assert_eq!(dup.json["id"], 1, "{dup:?}");
    assert_eq!(dup.json["duplicate"], true, "{dup:?}");
    assert_eq!(dup.json["queue"], "dd", "{dup:?}");
    let b = s.push_raw("dd", "?dedup_id=xyz", b"three").await;
    assert_eq!(b.status, 201);
    assert_eq!(b.json["id"], 2);
    assert_eq!(bodies(&s.take("dd", 10).await), vec!["one", "three"]);
    assert_eq!(s.stats("dd").await["total_pushed"], 2);
}

#[tokio::test]
async fn batch_push_is_ordered_and_keeps_options() {
    let s = TestServer::start(&[]).await;
    let r = s
        .post_json(
            "/v1/queues/b/batch",
            &json!({"messages": [
                {"body": "a"},
                {"body_base64": "//8="},
                {"body": "c", "priority": 9, "headers": {"k": "v"}},
                {"body": "d", "delay_ms": 60000},
            ]}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.json["ids"], json!([1, 2, 3, 4]), "{r:?}");
    assert_eq!(r.json["queue"], "b", "{r:?}");
    let got = s.take("b", 10).await;
    assert_eq!(ids(&got), vec![3, 1, 2]);
    assert_eq!(got[0]["headers"], json!({"k": "v"}));
    assert_eq!(body_bytes(&got[2]), vec![0xff, 0xff]);
    assert_eq!(s.stats("b").await["delayed"], 1);
}

#[tokio::test]
async fn batch_is_all_or_nothing() {
    let s = TestServer::start(&[]).await;
    s.push("ban", "existing").await;
    let bad_items = [
        json!({"messages": [{"body": "ok"}, {"body": "bad", "priority": 42}]}),
        json!({"messages": [{"body": "ok"}, {"body_base64": "***not base64***"}]}),
        json!({"messages": [{"body": "ok"}, {"nobody": 1}]}),
    ];
    for bad in bad_items {
        let r = s.post_json("/v1/queues/ban/batch", &bad).await;
        assert_eq!(r.status, 400, "batch {bad} should fail with 400: {r:?}");
        assert!(
            r.json["error"]["code"].is_string(),
            "JSON error for {bad}: {r:?}"
        );
    }
    let stats = s.stats("ban").await;
    assert_eq!(
        stats["total_pushed"], 1,
        "nothing of a failed batch: {stats}"
    );
    assert_eq!(bodies(&s.take("ban", 10).await), vec!["existing"]);
    assert_eq!(s.push("ban", "next").await, 2, "failed batches used no ids");
}

#[tokio::test]
async fn lease_ack_nack_and_redelivery_counts() {
    let s = TestServer::start(&[]).await;
    s.push("work", "a").await;
    s.push("work", "b").await;
    let leased = s
        .post("/v1/queues/work/lease?max=1&visibility_ms=30000")
        .await
        .messages();
    assert_eq!(bodies(&leased), vec!["a"]);
    assert_eq!(leased[0]["deliveries"], 1);
    let receipt = leased[0]["receipt"].as_str().expect("receipt").to_string();
    let stats = s.stats("work").await;
    assert_eq!(
        (stats["ready"].as_u64(), stats["in_flight"].as_u64()),
        (Some(1), Some(1))
    );

    let ack = s
        .post_json("/v1/queues/work/ack", &json!({"receipts": [receipt]}))
        .await;
    assert_eq!(ack.status, 200, "{ack:?}");
    assert_eq!(ack.json, json!({"acked": 1}));
    let again = s
        .post_json("/v1/queues/work/ack", &json!({"receipts": [receipt]}))
        .await;
    assert_eq!(again.json, json!({"acked": 0}), "a receipt acks once");

    let leased = s.post("/v1/queues/work/lease").await.messages();
    assert_eq!(bodies(&leased), vec!["b"]);
    let r1 = leased[0]["receipt"].as_str().unwrap().to_string();
    let nack = s
        .post_json("/v1/queues/work/nack", &json!({"receipts": [r1]}))
        .await;
    assert_eq!(nack.json, json!({"nacked": 1}), "{nack:?}");
    let nack_again = s
        .post_json("/v1/queues/work/nack", &json!({"receipts": [r1]}))
        .await;
    assert_eq!(nack_again.json, json!({"nacked": 0}));

    let leased = s.post("/v1/queues/work/lease").await.messages();
    assert_eq!(bodies(&leased), vec!["b"], "nack puts it back");
    assert_eq!(leased[0]["deliveries"], 2, "{}", leased[0]);
    let r2 = leased[0]["receipt"].as_str().unwrap().to_string();
    assert_ne!(r1, r2, "each lease has its own receipt");
    let ack = s
        .post_json(
            "/v1/queues/work/ack",
            &json!({"receipts": [r2, "bogus-receipt"]}),
        )
        .await;
    assert!(
        ack.json == json!({"acked": 1}) || ack.status == 400,
        "one live receipt among a bogus one: {ack:?}"
    );
    if ack.status == 400 {
        let ack = s
            .post_json("/v1/queues/work/ack", &json!({"receipts": [r2]}))
            .await;
        assert_eq!(ack.json, json!({"acked": 1}));
    }
    let stats = s.stats("work").await;
    assert_eq!(
        (stats["ready"].as_u64(), stats["in_flight"].as_u64()),
        (Some(0), Some(0))
    );
    assert!(s.post("/v1/queues/work/lease").await.messages().is_empty());
}

#[tokio::test]
async fn receipt_of_an_expired_lease_acks_nothing() {
    let s = TestServer::start(&[]).await;
    s.push("vis", "x").await;
    let leased = s
        .post("/v1/queues/vis/lease?visibility_ms=300")
        .await
        .messages();
    let stale = leased[0]["receipt"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let ack = s
        .post_json("/v1/queues/vis/ack", &json!({"receipts": [stale]}))
        .await;
    assert_eq!(ack.json, json!({"acked": 0}), "expired lease: {ack:?}");

    let again = eventually(WAIT, "expired lease is delivered again", || async {
        let m = s.post("/v1/queues/vis/lease").await.messages();
        (!m.is_empty()).then_some(m)
    })
    .await;
    assert_eq!(bodies(&again), vec!["x"]);
    assert_eq!(again[0]["deliveries"], 2);
    let fresh = again[0]["receipt"].as_str().unwrap().to_string();
    let ack = s
        .post_json("/v1/queues/vis/ack", &json!({"receipts": [stale]}))
        .await;
    assert_eq!(ack.json, json!({"acked": 0}), "old receipt, new lease");
    let ack = s
        .post_json("/v1/queues/vis/ack", &json!({"receipts": [fresh]}))
        .await;
    assert_eq!(ack.json, json!({"acked": 1}));
}

#[tokio::test]
async fn extend_keeps_a_lease_hidden() {
    let s = TestServer::start(&[]).await;
    s.push("ext", "x").await;
    let leased = s
        .post("/v1/queues/ext/lease?visibility_ms=500")
        .await
        .messages();
    let receipt = leased[0]["receipt"].as_str().unwrap().to_string();
    let ext = s
        .post_json(
            "/v1/queues/ext/extend",
            &json!({"receipts": [receipt], "visibility_ms": 30000}),
        )
        .await;
    assert_eq!(ext.status, 200, "{ext:?}");
    assert_eq!(ext.json, json!({"extended": 1}));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(
        s.post("/v1/queues/ext/lease").await.messages().is_empty(),
        "extended lease is still hidden"
    );
    let ack = s
        .post_json("/v1/queues/ext/ack", &json!({"receipts": [receipt]}))
        .await;
    assert_eq!(ack.json, json!({"acked": 1}), "extended receipt is live");
    let ext = s
        .post_json(
            "/v1/queues/ext/extend",
            &json!({"receipts": [receipt], "visibility_ms": 30000}),
        )
        .await;
    assert_eq!(
        ext.json,
        json!({"extended": 0}),
        "acked lease cannot be extended"
    );
}

#[tokio::test]
async fn nacked_past_max_deliveries_goes_to_the_dead_letter_queue() {
    let s = TestServer::start(&[]).await;
    let r = s
        .put_json("/v1/queues/dl", &json!({"max_deliveries": 2}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json["max_deliveries"], 2, "{r:?}");
    s.push("dl", "poison").await;
    s.push("dl", "fine").await;

    let mut poison_deliveries = 0;
    let mut next_body = None;
    for _ in 0..5 {
        let m = s.post("/v1/queues/dl/lease").await.messages();
        let receipt = m
            .first()
            .and_then(|m| m["receipt"].as_str())
            .map(str::to_string);
        if m.is_empty() || m[0]["body"] != "poison" {
            next_body = m.first().map(|m| m["body"].clone());
            if let Some(r) = receipt {
                let a = s
                    .post_json("/v1/queues/dl/ack", &json!({"receipts": [r]}))
                    .await;
                assert_eq!(a.json, json!({"acked": 1}));
            }
            break;
        }
        poison_deliveries += 1;
        let n = s
            .post_json("/v1/queues/dl/nack", &json!({"receipts": [receipt]}))
            .await;
        assert_eq!(n.json, json!({"nacked": 1}));
    }
    assert_eq!(
        poison_deliveries, 2,
        "delivered exactly max_deliveries times"
    );
    assert_eq!(next_body, Some(json!("fine")), "the next message follows");
    let dead = s.take("dl.dlq", 10).await;
    assert_eq!(bodies(&dead), vec!["poison"]);
    assert_eq!(s.stats("dl").await["total_dead_lettered"], 1);
}

#[tokio::test]
async fn lease_expired_past_max_deliveries_goes_to_the_dead_letter_queue() {
    let s = TestServer::start(&[]).await;
    let r = s
        .put_json("/v1/queues/dx", &json!({"max_deliveries": 1}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    s.push("dx", "slow").await;
    let m = s
        .post("/v1/queues/dx/lease?visibility_ms=200")
        .await
        .messages();
    assert_eq!(bodies(&m), vec!["slow"]);
    let dead = eventually(WAIT, "expired lease dead-lettered", || async {
        let m = s.take("dx.dlq", 10).await;
        (!m.is_empty()).then_some(m)
    })
    .await;
    assert_eq!(bodies(&dead), vec!["slow"]);
    assert!(s.post("/v1/queues/dx/lease").await.messages().is_empty());
}

#[tokio::test]
async fn long_poll_take_is_woken_by_a_push() {
    let s = TestServer::start(&[]).await;
    // An empty queue with a short wait answers an empty list.
    assert!(s
        .post("/v1/queues/lp/take?wait_ms=200")
        .await
        .messages()
        .is_empty());

    let client = s.client.clone();
    let url = s.url("/v1/queues/lp/take?wait_ms=5000");
    let waiter = tokio::spawn(async move {
        let resp = client.post(url).send().await.expect("long poll");
        assert_eq!(resp.status().as_u16(), 200);
        resp.json::<Value>().await.expect("json")
    });
    let lease_client = s.client.clone();
    let lease_url = s.url("/v1/queues/lp2/lease?wait_ms=5000");
    let lease_waiter = tokio::spawn(async move {
        let resp = lease_client
            .post(lease_url)
            .send()
            .await
            .expect("long poll");
        resp.json::<Value>().await.expect("json")
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.push("lp", "wake").await;
    s.push("lp2", "wake2").await;
    let got = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("long poll returned")
        .expect("task");
    let msgs = got["messages"].as_array().expect("messages").clone();
    assert_eq!(bodies(&msgs), vec!["wake"], "long poll got the push: {got}");
    let got = tokio::time::timeout(Duration::from_secs(10), lease_waiter)
        .await
        .expect("long poll returned")
        .expect("task");
    let msgs = got["messages"].as_array().expect("messages").clone();
    assert_eq!(bodies(&msgs), vec!["wake2"], "long-poll lease: {got}");
    assert!(msgs[0]["receipt"].is_string());
}

#[tokio::test]
async fn peek_does_not_consume() {
    let s = TestServer::start(&[]).await;
    s.push("pk", "a").await;
    s.push("pk", "b").await;
    for _ in 0..2 {
        let p = s.get("/v1/queues/pk/peek?max=10").await.messages();
        assert_eq!(bodies(&p), vec!["a", "b"]);
        assert!(p[0].get("receipt").is_none());
    }
    let one = s.get("/v1/queues/pk/peek").await.messages();
    assert_eq!(bodies(&one), vec!["a"], "peek defaults to one");
    assert_eq!(bodies(&s.take("pk", 1).await), vec!["a"]);
    assert_eq!(
        bodies(&s.get("/v1/queues/pk/peek?max=10").await.messages()),
        vec!["b"]
    );
    let stats = s.stats("pk").await;
    assert_eq!(stats["ready"], 1, "{stats}");
}

#[tokio::test]
async fn stats_and_list_report_queues() {
    let s = TestServer::start(&[]).await;
    s.push("q1", "a").await;
    s.push("q1", "b").await;
    s.push_raw("q1", "?delay_ms=60000", b"c").await;
    s.push("q2", "x").await;
    s.post("/v1/queues/q1/lease?visibility_ms=30000")
        .await
        .messages();

    let stats = s.stats("q1").await;
    assert_eq!(stats["ready"], 1, "{stats}");
    assert_eq!(stats["in_flight"], 1, "{stats}");
    assert_eq!(stats["delayed"], 1, "{stats}");
    assert_eq!(stats["total_pushed"], 3, "{stats}");
    assert_eq!(stats["next_id"], 4, "{stats}");
    assert!(stats["settings"].is_object(), "settings in stats: {stats}");

    let list = s.get("/v1/queues").await;
    assert_eq!(list.status, 200, "{list:?}");
    let queues = list.json["queues"]
        .as_array()
        .expect("queues array")
        .clone();
    let name_of = common::queue_name;
    let names: Vec<String> = queues.iter().map(name_of).collect();
    assert!(names.contains(&"q1".to_string()), "{names:?}");
    assert!(names.contains(&"q2".to_string()), "{names:?}");
    let q2 = queues.iter().find(|q| name_of(q) == "q2").unwrap();
    assert_eq!(q2["ready"], 1, "{q2}");

    s.get("/v1/queues/never-made")
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn settings_are_set_read_and_cleared() {
    let s = TestServer::start(&[]).await;
    let r = s
        .put_json(
            "/v1/queues/cfg",
            &json!({"max_deliveries": 2, "max_length": 50}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json["max_deliveries"], 2);
    assert_eq!(r.json["max_length"], 50);
    let stats = s.stats("cfg").await;
    assert_eq!(stats["settings"]["max_deliveries"], 2, "{stats}");

    let r = s
        .put_json("/v1/queues/cfg", &json!({"max_deliveries": null}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.json["max_deliveries"].is_null(), "cleared: {r:?}");
    assert_eq!(r.json["max_length"], 50, "untouched setting kept: {r:?}");

    let r = s
        .put_json("/v1/queues/cfg", &json!({"no_such_setting": 1}))
        .await;
    assert_eq!(r.status, 400, "unknown setting: {r:?}");
    let r = s
        .put_json("/v1/queues/cfg", &json!({"max_deliveries": "two"}))
        .await;
    assert_eq!(r.status, 400, "wrong type: {r:?}");
    s.assert_still_serving().await;
}

#[tokio::test]
async fn purge_empties_the_queue_and_ids_keep_rising() {
    let s = TestServer::start(&[]).await;
    for b in ["a", "b", "c"] {
        s.push("pq", b).await;
    }
    let r = s.post("/v1/queues/pq/purge").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json["purged"], 3, "{r:?}");
    assert!(s.take("pq", 10).await.is_empty());
    assert_eq!(s.push("pq", "d").await, 4, "ids keep rising after purge");
    s.post("/v1/queues/unknown-q/purge")
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn drop_deletes_the_queue_and_ids_keep_rising() {
    let s = TestServer::start(&[]).await;
    s.push("dq", "a").await;
    s.push("dq", "b").await;
    let r = s.delete("/v1/queues/dq").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json, json!({"dropped": 2}), "{r:?}");
    s.get("/v1/queues/dq").await.assert_error(404, "not_found");
    s.delete("/v1/queues/dq")
        .await
        .assert_error(404, "not_found");
    let id = s.push("dq", "c").await;
    assert!(id > 2, "ids are never reused, even after a drop: got {id}");
    assert_eq!(bodies(&s.take("dq", 10).await), vec!["c"]);
}

#[tokio::test]
async fn subscriptions_fan_out_every_message_to_each() {
    let s = TestServer::start(&[]).await;
    s.push("topic", "before").await;
    let a = s
        .put_json(
            "/v1/queues/topic/subscriptions/a",
            &json!({"start": "latest"}),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    let b = s
        .put_json(
            "/v1/queues/topic/subscriptions/b",
            &json!({"start": "latest"}),
        )
        .await;
    assert_eq!(b.status, 201, "{b:?}");
    let again = s
        .put_json(
            "/v1/queues/topic/subscriptions/a",
            &json!({"start": "latest"}),
        )
        .await;
    assert_eq!(again.status, 200, "existing subscription: {again:?}");

    s.push("topic", "m1").await;
    s.push("topic", "m2").await;
    let subs = s.get("/v1/queues/topic/subscriptions").await;
    assert_eq!(subs.status, 200, "{subs:?}");
    let list = subs.json["subscriptions"].as_array().expect("list").clone();
    let names: Vec<&str> = list.iter().filter_map(|x| x["name"].as_str()).collect();
    assert_eq!(names, vec!["a", "b"], "{subs:?}");
    assert_eq!(list[0]["ready"], 2, "{subs:?}");
    assert!(list[0]["in_flight"].is_u64() && list[0]["delayed"].is_u64());

    for sub in ["a", "b"] {
        let got = s
            .post(&format!("/v1/queues/topic/take?max=10&subscription={sub}"))
            .await
            .messages();
        assert_eq!(bodies(&got), vec!["m1", "m2"], "subscription {sub}");
    }
    assert_eq!(
        bodies(&s.take("topic", 10).await),
        vec!["before", "m1", "m2"],
        "the default subscription is independent"
    );
    // Leases work per subscription too.
    s.push("topic", "m3").await;
    let leased = s
        .post("/v1/queues/topic/lease?subscription=a")
        .await
        .messages();
    assert_eq!(bodies(&leased), vec!["m3"]);
    let ack = s
        .post_json(
            "/v1/queues/topic/ack",
            &json!({"receipts": [leased[0]["receipt"]]}),
        )
        .await;
    assert_eq!(ack.json, json!({"acked": 1}));
    let got = s
        .post("/v1/queues/topic/take?subscription=b")
        .await
        .messages();
    assert_eq!(bodies(&got), vec!["m3"]);

    let d = s.delete("/v1/queues/topic/subscriptions/a").await;
    assert_eq!(d.status, 204, "{d:?}");
    s.delete("/v1/queues/topic/subscriptions/a")
        .await
        .assert_error(404, "not_found");
    s.post("/v1/queues/topic/take?subscription=a")
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn subscriptions_start_at_earliest_latest_or_an_id() {
    let s = TestServer::start(&[]).await;
    s.push("st", "x1").await;
    s.push("st", "x2").await;
    for (name, start) in [
        ("e", json!("earliest")),
        ("l", json!("latest")),
        ("i", json!(2)),
    ] {
        let r = s
            .put_json(
                &format!("/v1/queues/st/subscriptions/{name}"),
                &json!({ "start": start }),
            )
            .await;
        assert_eq!(r.status, 201, "{name}: {r:?}");
    }
    s.push("st", "x3").await;
    let take = |sub: &'static str| {
        let s = &s;
        async move {
            bodies(
                &s.post(&format!("/v1/queues/st/take?max=10&subscription={sub}"))
                    .await
                    .messages(),
            )
        }
    };
    assert_eq!(take("e").await, vec!["x1", "x2", "x3"]);
    assert_eq!(take("l").await, vec!["x3"]);
    assert_eq!(take("i").await, vec!["x2", "x3"]);
    let r = s
        .put_json(
            "/v1/queues/st/subscriptions/bad",
            &json!({"start": "sometime"}),
        )
        .await;
    assert_eq!(r.status, 400, "bad start: {r:?}");
}

#[tokio::test]
async fn log_retention_keeps_taken_messages_for_seek_and_trims_by_count() {
    let s = TestServer::start(&[]).await;
    let r = s
        .put_json(
            "/v1/queues/log",
            &json!({"retention": {"mode": "log", "max_count": 100}}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let sub = s
        .put_json(
            "/v1/queues/log/subscriptions/s",
            &json!({"start": "earliest"}),
        )
        .await;
    assert_eq!(sub.status, 201, "{sub:?}");
    for i in 1..=5 {
        s.push("log", &format!("m{i}")).await;
    }
    assert_eq!(
        s.take("log", 10).await.len(),
        5,
        "default subscription reads"
    );
    let got = s
        .post("/v1/queues/log/take?max=10&subscription=s")
        .await
        .messages();
    assert_eq!(ids(&got), vec![1, 2, 3, 4, 5]);

    // Seek back over consumed messages: the log still has them.
    let seek = s
        .post_json("/v1/queues/log/subscriptions/s/seek", &json!({"id": 2}))
        .await;
    assert_eq!(seek.status, 200, "{seek:?}");
    let again = s
        .post("/v1/queues/log/take?max=10&subscription=s")
        .await
        .messages();
    assert_eq!(ids(&again), vec![2, 3, 4, 5], "seek back re-reads the log");
    // A subscription made after everything was taken still sees the log.
    let late = s
        .put_json(
            "/v1/queues/log/subscriptions/late",
            &json!({"start": "earliest"}),
        )
        .await;
    assert_eq!(late.status, 201);
    let got = s
        .post("/v1/queues/log/take?max=10&subscription=late")
        .await
        .messages();
    assert_eq!(ids(&got), vec![1, 2, 3, 4, 5], "log keeps taken messages");

    // Past max_count, the oldest leave the log.
    let batch: Vec<Value> = (6..=205)
        .map(|i| json!({"body": format!("m{i}")}))
        .collect();
    let r = s
        .post_json("/v1/queues/log/batch", &json!({ "messages": batch }))
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    eventually(WAIT, "log trimmed to max_count", || async {
        let stats = s.stats("log").await;
        (stats["log_messages"].as_u64().unwrap_or(u64::MAX) <= 100).then_some(())
    })
    .await;
    let trimmed = s
        .put_json(
            "/v1/queues/log/subscriptions/trim",
            &json!({"start": "earliest"}),
        )
        .await;
    assert_eq!(trimmed.status, 201);
    let got = s
        .post("/v1/queues/log/take?max=1000&subscription=trim")
        .await
        .messages();
    let got_ids = ids(&got);
    assert_eq!(got_ids.len(), 100, "exactly max_count kept");
    assert_eq!(got_ids.first(), Some(&106));
    assert_eq!(got_ids.last(), Some(&205));

    let seek = s
        .post_json("/v1/queues/log/subscriptions/nope/seek", &json!({"id": 1}))
        .await;
    seek.assert_error(404, "not_found");
}

#[tokio::test]
async fn max_length_rejects_with_409_or_drops_oldest() {
    let s = TestServer::start(&[]).await;
    let r = s
        .put_json(
            "/v1/queues/full",
            &json!({"max_length": 2, "overflow": "reject"}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    s.push("full", "a").await;
    s.push("full", "b").await;
    s.push_raw("full", "", b"c")
        .await
        .assert_error(409, "queue_full");
    assert_eq!(bodies(&s.take("full", 1).await), vec!["a"]);
    s.push("full", "d").await;
    assert_eq!(bodies(&s.take("full", 10).await), vec!["b", "d"]);

    let r = s
        .put_json(
            "/v1/queues/ring",
            &json!({"max_length": 2, "overflow": "drop_oldest"}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    for b in ["a", "b", "c"] {
        s.push("ring", b).await;
    }
    assert_eq!(bodies(&s.take("ring", 10).await), vec!["b", "c"]);
}

#[tokio::test]
async fn paused_queue_delivers_nothing_until_resumed() {
    let s = TestServer::start(&[]).await;
    let r = s.put_json("/v1/queues/pz", &json!({"paused": true})).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json["paused"], true);
    s.push("pz", "held").await;
    assert!(s.take("pz", 10).await.is_empty(), "paused: no take");
    assert!(
        s.post("/v1/queues/pz/lease").await.messages().is_empty(),
        "paused: no lease"
    );
    assert_eq!(s.stats("pz").await["paused"], true);
    let r = s.put_json("/v1/queues/pz", &json!({"paused": false})).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(bodies(&s.take("pz", 10).await), vec!["held"]);
}

#[tokio::test]
async fn body_over_max_message_bytes_is_413() {
    let s = TestServer::start(&["--max-message-bytes", "1024"]).await;
    s.push_raw("big", "", &vec![b'x'; 1025])
        .await
        .assert_error(413, "too_large");
    let ok = s.push_raw("big", "", &vec![b'x'; 1024]).await;
    assert_eq!(ok.status, 201, "exactly the limit is fine: {ok:?}");
    let r = s
        .post_json(
            "/v1/queues/big/batch",
            &json!({"messages": [{"body": "small"}, {"body": "y".repeat(1025)}]}),
        )
        .await;
    r.assert_error(413, "too_large");
    let far = s.push_raw("big", "", &vec![b'z'; 4 * 1024 * 1024]).await;
    assert_eq!(far.status, 413, "far over the limit: {far:?}");
    assert_eq!(s.stats("big").await["total_pushed"], 1);
    s.assert_still_serving().await;
}

#[tokio::test]
async fn batch_limits_are_configurable() {
    let s = TestServer::start(&["--max-batch", "3", "--max-batch-bytes", "2KiB"]).await;
    let three: Vec<Value> = (0..3).map(|i| json!({"body": format!("m{i}")})).collect();
    let ok = s
        .post_json("/v1/queues/lim/batch", &json!({"messages": three}))
        .await;
    assert_eq!(ok.status, 201, "{ok:?}");
    let four: Vec<Value> = (0..4).map(|i| json!({"body": format!("m{i}")})).collect();
    s.post_json("/v1/queues/lim/batch", &json!({"messages": four}))
        .await
        .assert_error(400, "invalid_argument");
    let big: Vec<Value> = (0..2).map(|_| json!({"body": "x".repeat(1500)})).collect();
    s.post_json("/v1/queues/lim/batch", &json!({"messages": big}))
        .await
        .assert_error(413, "too_large");
    s.post("/v1/queues/lim/take?max=4")
        .await
        .assert_error(400, "invalid_argument");
    assert_eq!(s.take("lim", 3).await.len(), 3);
    assert_eq!(s.stats("lim").await["total_pushed"], 3);
    s.assert_still_serving().await;
}

#[tokio::test]
async fn bad_queue_names_are_400() {
    let s = TestServer::start(&[]).await;
    let long = "x".repeat(256);
    for name in [long.as_str(), "a%0Ab", "a%00b", "a%7Fb", "%09tab", "a%1Bb"] {
        s.push_raw(name, "", b"m")
            .await
            .assert_error(400, "invalid_name");
        s.get(&format!("/v1/queues/{name}"))
            .await
            .assert_error(400, "invalid_name");
    }
    let r = s.push_raw("", "", b"m").await;
    assert_eq!(r.status, 400, "empty queue name: {r:?}");
    let r = s
        .put_json("/v1/queues/ok/subscriptions/a%0Ab", &json!({}))
        .await;
    assert_eq!(r.status, 400, "bad subscription name: {r:?}");

    let longest = "y".repeat(255);
    assert_eq!(s.push(&longest, "m").await, 1, "255 bytes is fine");
    assert_eq!(s.push("caf%C3%A9", "m").await, 1, "UTF-8 names are fine");
    assert_eq!(common::queue_name(&s.stats("caf%C3%A9").await), "caf\u{e9}");
    s.assert_still_serving().await;
}

#[tokio::test]
async fn malformed_json_is_400_with_a_json_error() {
    let s = TestServer::start(&[]).await;
    let garbage = b"{not json".to_vec();
    for path in [
        "/v1/queues/j/batch",
        "/v1/queues/j/ack",
        "/v1/queues/j/nack",
        "/v1/queues/j/extend",
        "/v1/queues/j/subscriptions/s/seek",
    ] {
        let r = s
            .request(
                reqwest::Method::POST,
                path,
                Some((garbage.clone(), "application/json")),
            )
            .await;
        assert_eq!(r.status, 400, "{path}: {r:?}");
        assert!(r.json["error"]["code"].is_string(), "{path}: {r:?}");
    }
    let r = s
        .request(
            reqwest::Method::PUT,
            "/v1/queues/j",
            Some((garbage.clone(), "application/json")),
        )
        .await;
    assert_eq!(r.status, 400, "settings: {r:?}");
    let r = s
        .post_json("/v1/queues/j/ack", &json!({"receipts": 5}))
        .await;
    assert_eq!(r.status, 400, "wrong shape: {r:?}");
    assert!(r.json["error"]["code"].is_string(), "{r:?}");
    s.assert_still_serving().await;
}

#[tokio::test]
async fn unknown_route_is_404_and_wrong_method_405_both_json() {
    let s = TestServer::start(&[]).await;
    for path in ["/v1/nope", "/v1/queues/q/bogus", "/v1"] {
        let r = s.get(path).await;
        r.assert_error(404, "not_found");
        assert!(r.content_type.starts_with("application/json"), "{r:?}");
    }
    // Outside /v1 the root is RestMQ's: its 404 page.
    for path in ["/nope", "/v2/queues", "/q"] {
        let r = s.get(path).await;
        assert_eq!(r.status, 404, "{path}: {r:?}");
        assert_eq!(
            r.text,
            "<html><title>404: Not Found</title><body>404: Not Found</body></html>"
        );
    }
    for (method, path) in [
        (reqwest::Method::GET, "/v1/queues/q/messages"),
        (reqwest::Method::PATCH, "/v1/queues/q"),
        (reqwest::Method::DELETE, "/v1/queues/q/take"),
        (reqwest::Method::POST, "/healthz"),
    ] {
        let r = s.request(method.clone(), path, None).await;
        assert_eq!(r.status, 405, "{method} {path}: {r:?}");
        assert!(
            r.json["error"]["code"].is_string(),
            "{method} {path}: {r:?}"
        );
    }
    s.assert_still_serving().await;
}

#[tokio::test]
async fn bad_query_values_are_400() {
    let s = TestServer::start(&[]).await;
    for path in [
        "/v1/queues/bq/messages?priority=abc",
        "/v1/queues/bq/messages?priority=-1",
        "/v1/queues/bq/messages?delay_ms=-5",
        "/v1/queues/bq/messages?ttl_ms=soon",
        "/v1/queues/bq/take?max=abc",
        "/v1/queues/bq/take?wait_ms=x",
        "/v1/queues/bq/lease?visibility_ms=abc",
        "/v1/queues/bq/lease?max=-1",
    ] {
        let r = s
            .request(
                reqwest::Method::POST,
                path,
                Some((b"m".to_vec(), "text/plain")),
            )
            .await;
        assert_eq!(r.status, 400, "{path}: {r:?}");
        assert!(r.json["error"]["code"].is_string(), "{path}: {r:?}");
    }
    let r = s.get("/v1/queues/bq/peek?max=many").await;
    assert_eq!(r.status, 400, "{r:?}");
    s.assert_still_serving().await;
}

/// The maxima the OpenAPI document states are enforced, not capped: a wait above the
/// server's max wait, durations above 100 years.
#[tokio::test]
async fn values_above_the_documented_maxima_are_400() {
    const OVER_100_YEARS: u64 = 100 * 365 * 24 * 3600 * 1000 + 1;
    let s = TestServer::start(&["--max-wait-ms", "300"]).await;
    for path in [
        "/v1/queues/mx/take?wait_ms=301".to_owned(),
        "/v1/queues/mx/lease?wait_ms=301".to_owned(),
        format!("/v1/queues/mx/lease?visibility_ms={OVER_100_YEARS}"),
        format!("/v1/queues/mx/messages?delay_ms={OVER_100_YEARS}"),
        format!("/v1/queues/mx/messages?ttl_ms={OVER_100_YEARS}"),
    ] {
        s.post(&path).await.assert_error(400, "invalid_argument");
    }
    for settings in [
        json!({"dedup_window_ms": OVER_100_YEARS}),
        json!({"retention": {"mode": "log", "max_age_ms": OVER_100_YEARS}}),
    ] {
        s.put_json("/v1/queues/mx", &settings)
            .await
            .assert_error(400, "invalid_argument");
    }
    let r = s
        .post_json(
            "/v1/queues/mx/extend",
            &json!({"receipts": [], "visibility_ms": OVER_100_YEARS}),
        )
        .await;
    r.assert_error(400, "invalid_argument");
    // At the maximum itself: an ordinary (empty) reply after the wait.
    let r = s.post("/v1/queues/mx/take?wait_ms=300").await;
    assert!(r.messages().is_empty(), "{r:?}");
}

#[tokio::test]
async fn sigterm_exits_zero_and_data_survives_restart() {
    let mut s = TestServer::start(&[]).await;
    for b in ["a", "b", "c"] {
        s.push("keep", b).await;
    }
    s.take("keep", 1).await;
    let leased = s
        .post("/v1/queues/keep/lease?visibility_ms=60000")
        .await
        .messages();
    assert_eq!(bodies(&leased), vec!["b"]);
    s.put_json("/v1/queues/keep", &json!({"max_deliveries": 7}))
        .await;
    let status = s.terminate().await;
    assert!(status.success(), "SIGTERM exit status: {status}");

    s.restart().await;
    let got = s.take("keep", 10).await;
    assert_eq!(
        bodies(&got),
        vec!["b", "c"],
        "taken message stays gone, unacked lease comes back"
    );
    assert_eq!(s.push("keep", "d").await, 4, "ids keep rising over restart");
    assert_eq!(s.stats("keep").await["settings"]["max_deliveries"], 7);
}

#[tokio::test]
async fn metrics_report_requests_and_queue_gauges() {
    let s = TestServer::start(&[]).await;
    s.push("metered", "a").await;
    s.push("metered", "b").await;
    s.take("metered", 1).await;
    let r = s.get("/metrics").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.text.contains("godwit_http_requests_total"),
        "request counter in:\n{}",
        r.text
    );
    let gauge = r
        .text
        .lines()
        .find(|l| l.starts_with("godwit_queue") && l.contains("metered"));
    assert!(
        gauge.is_some(),
        "a godwit_queue* series for the queue in:\n{}",
        r.text
    );
}

/// Every operation the document lists is served (the router's own table is compared
/// with the document, both ways, in the crate's tests; this is the user's side).
#[tokio::test]
async fn openapi_document_lists_only_served_routes() {
    let s = TestServer::start(&[]).await;
    let r = s.get("/v1/openapi.json").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.content_type.starts_with("application/json"), "{r:?}");
    let paths = r.json["paths"].as_object().expect("paths object");
    for (path, methods) in paths {
        let uri = path.replace("{queue}", "doc").replace("{name}", "sub");
        for method in methods.as_object().expect("methods").keys() {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            if uri.ends_with("/events") {
                // An event stream does not end: its status is the answer.
                let resp = s.client.get(s.url(&uri)).send().await.unwrap();
                assert_eq!(resp.status(), 200, "{method} {uri}");
                continue;
            }
            let uri = uri.replace("{key}", "doc-key");
            let reply = s.request(method.clone(), &uri, None).await;
            assert_ne!(reply.status, 405, "{method} {uri}: {reply:?}");
            let message = reply.json["error"]["message"].as_str().unwrap_or("");
            assert!(
                !message.starts_with("no route"),
                "{method} {uri}: {reply:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_consumers_never_share_a_message() {
    let s = TestServer::start(&["--fsync", "never"]).await;
    let batch: Vec<Value> = (0..1000)
        .map(|i| json!({ "body": format!("c{i}") }))
        .collect();
    for _ in 0..2 {
        let r = s
            .post_json("/v1/queues/cc/batch", &json!({ "messages": batch }))
            .await;
        assert_eq!(r.status, 201, "{r:?}");
    }
    // Four takers and four leasers (acking every other lease, nacking the rest) race.
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let client = reqwest::Client::new();
        let base = s.url("/v1/queues/cc");
        tasks.push(tokio::spawn(async move {
            let mut consumed = Vec::new();
            let mut nacks = 0u32;
            for _ in 0..2000 {
                let url = if worker < 4 {
                    format!("{base}/take?max=7")
                } else {
                    format!("{base}/lease?max=5&visibility_ms=60000")
                };
                let reply: Value = client.post(url).send().await.unwrap().json().await.unwrap();
                let messages = reply["messages"].as_array().unwrap().clone();
                if messages.is_empty() {
                    break;
                }
                for m in messages {
                    let id = m["id"].as_u64().unwrap();
                    if let Some(receipt) = m["receipt"].as_str() {
                        let (verb, key) = if id % 2 == 0 || nacks > 50 {
                            ("ack", "acked")
                        } else {
                            nacks += 1;
                            ("nack", "nacked")
                        };
                        let r: Value = client
                            .post(format!("{base}/{verb}"))
                            .json(&json!({ "receipts": [receipt] }))
                            .send()
                            .await
                            .unwrap()
                            .json()
                            .await
                            .unwrap();
                        assert_eq!(r[key], 1, "{verb} of a fresh lease: {r}");
                        if verb == "ack" {
                            consumed.push(id);
                        }
                    } else {
                        consumed.push(id);
                    }
                }
            }
            consumed
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("consumer task"));
    }
    all.sort_unstable();
    let expected: Vec<u64> = (1..=2000).collect();
    assert_eq!(all.len(), 2000, "each message consumed exactly once");
    assert_eq!(all, expected);
    let stats = s.stats("cc").await;
    assert_eq!(
        (stats["ready"].as_u64(), stats["in_flight"].as_u64()),
        (Some(0), Some(0))
    );
}

/// Reads `stats` events from an open `GET /v1/stats/events` reply until `done` accepts
/// one's data (bounded by `WAIT`); returns that data.
async fn next_stats_event(
    resp: &mut reqwest::Response,
    buf: &mut String,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            if !event.lines().any(|l| l == "event: stats") {
                continue;
            }
            let data: String = event
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect();
            let data: Value = serde_json::from_str(&data).expect("stats data is JSON");
            if done(&data) {
                return data;
            }
        }
        let chunk = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .expect("a stats event in time")
            .expect("read the stream")
            .expect("the stream goes on");
        buf.push_str(&String::from_utf8_lossy(&chunk));
    }
}

/// What a dashboard sees from the stats stream: the totals and every queue with its
/// live-delivery setting, at once and again as they change.
#[tokio::test]
async fn the_stats_stream_reports_totals_and_queues_as_they_change() {
    let s = TestServer::start(&[]).await;
    s.push("watched", "a").await;
    let paused = s
        .put_json("/v1/queues/watched", &json!({"live_paused": true}))
        .await;
    assert_eq!(paused.status, 200, "{paused:?}");

    let mut resp = s
        .client
        .get(s.url("/v1/stats/events?interval_ms=100"))
        .send()
        .await
        .expect("open the stats stream");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut buf = String::new();
    let first = next_stats_event(&mut resp, &mut buf, |_| true).await;
    assert!(first["at_ms"].as_u64().is_some_and(|t| t > 0), "{first}");
    assert_eq!(first["totals"], s.get("/v1/stats").await.json, "{first}");
    let queues = first["queues"].as_array().expect("queues");
    assert_eq!(queues.len(), 1, "{first}");
    assert_eq!(queues[0]["name"], "watched");
    assert_eq!(queues[0]["ready"], 1);
    assert_eq!(queues[0]["total_pushed"], 1);
    assert_eq!(queues[0]["live_paused"], true);

    s.push("watched", "b").await;
    s.take("watched", 1).await;
    let later = next_stats_event(&mut resp, &mut buf, |d| {
        d["totals"]["total_consumed"] == json!(1)
    })
    .await;
    assert_eq!(later["totals"]["total_pushed"], 2, "{later}");
    assert_eq!(later["queues"][0]["ready"], 1, "{later}");
    drop(resp);

    for query in ["interval_ms=99", "interval_ms=60001", "interval_ms=0"] {
        s.get(&format!("/v1/stats/events?{query}"))
            .await
            .assert_error(400, "invalid_argument");
    }
    s.get("/v1/stats/events?every=1")
        .await
        .assert_error(400, "invalid_query");
}
