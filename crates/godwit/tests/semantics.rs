//! Interactions between features a user will combine: delay with priority, TTL with
//! leases, dedup after consumption, purge with leases, restarts across due times, and
//! concurrent writers racing on one dedup id.

mod common;

use std::time::Duration;

use common::{bodies, eventually, ids, TestServer};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_due_high_priority_message_overtakes_ready_low_ones() {
    let s = TestServer::start(&[]).await;
    s.push_raw("dp", "?priority=9&delay_ms=400", b"urgent-later")
        .await;
    s.push_raw("dp", "?priority=1", b"low-1").await;
    s.push_raw("dp", "?priority=1", b"low-2").await;
    tokio::time::sleep(Duration::from_millis(900)).await;
    let got = s.take("dp", 10).await;
    assert_eq!(bodies(&got), vec!["urgent-later", "low-1", "low-2"]);
}

#[tokio::test]
async fn nacked_message_returns_ahead_of_its_peers() {
    let s = TestServer::start(&[]).await;
    for b in ["a", "b", "c"] {
        s.push("nh", b).await;
    }
    let m = s.post("/v1/queues/nh/lease?max=2").await.messages();
    assert_eq!(bodies(&m), vec!["a", "b"]);
    let r = s
        .post_json(
            "/v1/queues/nh/nack",
            &json!({"receipts": [m[1]["receipt"]]}),
        )
        .await;
    assert_eq!(r.json, json!({"nacked": 1}));
    assert_eq!(bodies(&s.take("nh", 10).await), vec!["b", "c"]);
}

#[tokio::test]
async fn a_message_whose_ttl_passes_while_leased_is_not_redelivered() {
    let s = TestServer::start(&[]).await;
    s.push_raw("tl", "?ttl_ms=400", b"short-lived").await;
    let m = s.post("/v1/queues/tl/lease").await.messages();
    assert_eq!(bodies(&m), vec!["short-lived"]);
    tokio::time::sleep(Duration::from_millis(900)).await;
    s.post_json(
        "/v1/queues/tl/nack",
        &json!({"receipts": [m[0]["receipt"]]}),
    )
    .await;
    assert!(
        s.take("tl", 10).await.is_empty(),
        "an expired message is never delivered, even after a nack"
    );
}

#[tokio::test]
async fn dedup_id_is_remembered_after_the_message_is_consumed() {
    let s = TestServer::start(&[]).await;
    let r = s.push_raw("dc", "?dedup_id=k", b"one").await;
    assert_eq!(r.status, 201);
    assert_eq!(bodies(&s.take("dc", 10).await), vec!["one"]);
    let dup = s.push_raw("dc", "?dedup_id=k", b"two").await;
    assert_eq!(dup.status, 200, "within the window: {dup:?}");
    assert_eq!(dup.json["duplicate"], true);
    assert!(s.take("dc", 10).await.is_empty());
}

#[tokio::test]
async fn dedup_window_setting_expires_ids() {
    let s = TestServer::start(&[]).await;
    let r = s
        .put_json("/v1/queues/dw", &json!({"dedup_window_ms": 300}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(s.push_raw("dw", "?dedup_id=k", b"one").await.status, 201);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let again = s.push_raw("dw", "?dedup_id=k", b"two").await;
    assert_eq!(again.status, 201, "past the window: {again:?}");
    assert_eq!(bodies(&s.take("dw", 10).await), vec!["one", "two"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pushes_with_one_dedup_id_add_one_message() {
    let s = TestServer::start(&[]).await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let client = reqwest::Client::new();
        let url = s.url("/v1/queues/race/messages?dedup_id=same");
        tasks.push(tokio::spawn(async move {
            let r = client.post(url).body(format!("v{i}")).send().await.unwrap();
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap();
            (status, v["id"].as_u64().unwrap())
        }));
    }
    let mut created = 0;
    for t in tasks {
        let (status, id) = t.await.unwrap();
        assert_eq!(id, 1, "every reply names the one message");
        if status == 201 {
            created += 1;
        } else {
            assert_eq!(status, 200);
        }
    }
    assert_eq!(created, 1, "exactly one push is new");
    assert_eq!(s.take("race", 10).await.len(), 1);
}

#[tokio::test]
async fn purge_cancels_leases() {
    let s = TestServer::start(&[]).await;
    s.push("pl", "a").await;
    s.push("pl", "b").await;
    let m = s.post("/v1/queues/pl/lease").await.messages();
    let r = s.post("/v1/queues/pl/purge").await;
    assert_eq!(r.status, 200, "{r:?}");
    let ack = s
        .post_json("/v1/queues/pl/ack", &json!({"receipts": [m[0]["receipt"]]}))
        .await;
    assert_eq!(ack.json, json!({"acked": 0}), "a purged lease acks nothing");
    let nack = s
        .post_json(
            "/v1/queues/pl/nack",
            &json!({"receipts": [m[0]["receipt"]]}),
        )
        .await;
    assert_eq!(nack.json, json!({"nacked": 0}));
    assert!(
        s.take("pl", 10).await.is_empty(),
        "nothing comes back after purge"
    );
    let stats = s.stats("pl").await;
    assert_eq!(stats["in_flight"], 0, "{stats}");
}

#[tokio::test]
async fn receipts_only_work_on_their_own_queue() {
    let s = TestServer::start(&[]).await;
    s.push("qa", "a").await;
    s.push("qb", "b").await;
    let m = s.post("/v1/queues/qa/lease").await.messages();
    let ack = s
        .post_json("/v1/queues/qb/ack", &json!({"receipts": [m[0]["receipt"]]}))
        .await;
    assert!(
        ack.json == json!({"acked": 0}) || ack.status == 400,
        "another queue's receipt: {ack:?}"
    );
    let ack = s
        .post_json("/v1/queues/qa/ack", &json!({"receipts": [m[0]["receipt"]]}))
        .await;
    assert_eq!(ack.json, json!({"acked": 1}));
    assert_eq!(bodies(&s.take("qb", 10).await), vec!["b"]);
}

#[tokio::test]
async fn dropping_a_queue_removes_its_subscriptions() {
    let s = TestServer::start(&[]).await;
    let r = s
        .put_json("/v1/queues/ds/subscriptions/a", &json!({"start": "latest"}))
        .await;
    assert_eq!(r.status, 201);
    s.push("ds", "m").await;
    assert_eq!(s.delete("/v1/queues/ds").await.json["dropped"], 1);
    s.push("ds", "again").await;
    let subs = s.get("/v1/queues/ds/subscriptions").await;
    assert_eq!(subs.status, 200, "{subs:?}");
    assert_eq!(subs.json["subscriptions"], json!([]), "{subs:?}");
    assert_eq!(bodies(&s.take("ds", 10).await), vec!["again"]);
}

#[tokio::test]
async fn dead_letter_queue_can_be_named() {
    let s = TestServer::start(&[]).await;
    let r = s
        .put_json(
            "/v1/queues/dn",
            &json!({"max_deliveries": 1, "dead_letter_queue": "graveyard"}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    s.push("dn", "poison").await;
    let m = s.post("/v1/queues/dn/lease").await.messages();
    s.post_json(
        "/v1/queues/dn/nack",
        &json!({"receipts": [m[0]["receipt"]]}),
    )
    .await;
    assert_eq!(bodies(&s.take("graveyard", 10).await), vec!["poison"]);
    assert_eq!(s.get("/v1/queues/dn.dlq").await.status, 404);
}

#[tokio::test]
async fn due_and_expired_times_pass_while_the_server_is_down() {
    let mut s = TestServer::start(&[]).await;
    s.push_raw("down", "?delay_ms=500", b"due-while-down").await;
    s.push_raw("down", "?ttl_ms=500", b"expired-while-down")
        .await;
    s.push("down", "plain").await;
    let status = s.terminate().await;
    assert!(status.success());
    tokio::time::sleep(Duration::from_millis(1000)).await;
    s.restart().await;
    let got = eventually(WAIT, "due message delivered after restart", || async {
        let m = s.take("down", 10).await;
        (!m.is_empty()).then_some(m)
    })
    .await;
    let mut all = bodies(&got);
    all.extend(bodies(&s.take("down", 10).await));
    all.sort();
    assert_eq!(all, vec!["due-while-down", "plain"]);
}

#[tokio::test]
async fn long_poll_on_a_subscription_is_woken_by_a_push() {
    let s = TestServer::start(&[]).await;
    let r = s
        .put_json(
            "/v1/queues/lps/subscriptions/w",
            &json!({"start": "latest"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let client = s.client.clone();
    let url = s.url("/v1/queues/lps/take?wait_ms=5000&subscription=w");
    let waiter =
        tokio::spawn(async move { client.post(url).send().await.unwrap().json::<Value>().await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.push("lps", "hello").await;
    let got = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("returned")
        .unwrap()
        .unwrap();
    let msgs = got["messages"].as_array().unwrap().clone();
    assert_eq!(bodies(&msgs), vec!["hello"], "{got}");
}

#[tokio::test]
async fn seek_forward_skips_earlier_messages() {
    let s = TestServer::start(&[]).await;
    for i in 1..=5 {
        s.push("sk", &format!("m{i}")).await;
    }
    let r = s
        .put_json("/v1/queues/sk/subscriptions/f", &json!({"start": 1}))
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let r = s
        .post_json("/v1/queues/sk/subscriptions/f/seek", &json!({"id": 4}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let got = s
        .post("/v1/queues/sk/take?max=10&subscription=f")
        .await
        .messages();
    assert_eq!(ids(&got), vec![4, 5]);
}

#[tokio::test]
async fn many_queues_are_listed() {
    let s = TestServer::start(&["--fsync", "never"]).await;
    for i in 0..300 {
        s.push(&format!("many-{i:03}"), "x").await;
    }
    let list = s.get("/v1/queues").await;
    let queues = list.json["queues"].as_array().expect("queues").clone();
    let names: Vec<String> = queues.iter().map(common::queue_name).collect();
    for i in [0, 150, 299] {
        assert!(
            names.contains(&format!("many-{i:03}")),
            "many-{i:03} listed"
        );
    }
    assert_eq!(queues.len(), 300);
}
