//! The native API's list operations over real HTTP against the real binary: both ends,
//! moves, range reads, soft gets, delete by id, and per-request durability, with their
//! bad inputs; and `kill -9` proving what each acknowledged.

mod common;

use common::*;
use serde_json::{json, Value};

async fn push_all(s: &TestServer, queue: &str, bodies: &[&str]) {
    for b in bodies {
        s.push(queue, b).await;
    }
}

async fn range(s: &TestServer, queue: &str, query: &str) -> Vec<String> {
    let r = s.get(&format!("/v1/queues/{queue}/range?{query}")).await;
    assert_eq!(r.status, 200, "{r:?}");
    bodies(&r.messages())
}

#[tokio::test]
async fn pushes_at_the_head_and_reads_from_the_tail() {
    let s = TestServer::start(&[]).await;
    push_all(&s, "l", &["a", "b"]).await;
    let r = s.push_raw("l", "?at_head=true", b"h").await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.json["length"], 3, "{r:?}");
    assert_eq!(range(&s, "l", "").await, vec!["h", "a", "b"]);

    let peek = s.get("/v1/queues/l/peek?end=tail&max=2").await;
    assert_eq!(bodies(&peek.messages()), vec!["b", "a"]);
    let took = s.post("/v1/queues/l/take?end=tail").await;
    assert_eq!(bodies(&took.messages()), vec!["b"]);
    let leased = s.post("/v1/queues/l/lease?end=tail&max=1").await;
    assert_eq!(bodies(&leased.messages()), vec!["a"]);
    assert!(leased.messages()[0]["receipt"].is_string());
    let took = s.post("/v1/queues/l/take?end=head").await;
    assert_eq!(bodies(&took.messages()), vec!["h"]);

    s.post("/v1/queues/l/take?end=middle")
        .await
        .assert_error(400, "invalid_query");
    s.push_raw("l", "?at_head=maybe", b"x")
        .await
        .assert_error(400, "invalid_query");
}

#[tokio::test]
async fn batches_push_at_the_head_and_report_length_and_durability() {
    let s = TestServer::start(&["--fsync", "never"]).await;
    let batch = json!({"messages": [{"body": "t1"}, {"body": "h1", "at_head": true}]});
    let r = s.post_json("/v1/queues/b/batch", &batch).await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(
        (r.json["length"].clone(), r.json["durable"].clone()),
        (json!(2), json!(false)),
        "under --fsync never a push is not on disk by default: {r:?}"
    );
    let batch = json!({"messages": [{"body": "t2"}], "durability": "fsync"});
    let r = s.post_json("/v1/queues/b/batch", &batch).await;
    assert_eq!(
        (r.json["length"].clone(), r.json["durable"].clone()),
        (json!(3), json!(true)),
        "{r:?}"
    );
    assert_eq!(
        range(&s, "b", "start=0&stop=-1").await,
        vec!["h1", "t1", "t2"]
    );
    let bad = json!({"messages": [{"body": "x"}], "durability": "eventually"});
    s.post_json("/v1/queues/b/batch", &bad)
        .await
        .assert_error(400, "invalid_json");
    s.push_raw("b", "?durability=sometimes", b"x")
        .await
        .assert_error(400, "invalid_query");
}

#[tokio::test]
async fn ranges_count_from_either_end_and_refuse_too_many_at_once() {
    let s = TestServer::start(&["--max-batch", "5"]).await;
    push_all(&s, "r", &["m0", "m1", "m2", "m3", "m4", "m5"]).await;
    assert_eq!(range(&s, "r", "start=1&stop=2").await, vec!["m1", "m2"]);
    assert_eq!(range(&s, "r", "start=-2").await, vec!["m4", "m5"]);
    assert_eq!(range(&s, "r", "start=3&stop=3").await, vec!["m3"]);
    assert!(range(&s, "r", "start=4&stop=1").await.is_empty());
    assert!(range(&s, "absent", "").await.is_empty());
    let too_many = s.get("/v1/queues/r/range?start=0&stop=-1").await;
    too_many.assert_error(400, "invalid_argument");
    s.get("/v1/queues/r/range?start=zero")
        .await
        .assert_error(400, "invalid_query");
    s.get("/v1/queues/r/range?stop=99999999999999999999")
        .await
        .assert_error(400, "invalid_query");
    s.get("/v1/queues/r/range?subscription=nobody")
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn moves_go_between_ends_and_survive_kill9() {
    let mut s = TestServer::start(&[]).await;
    push_all(&s, "src", &["a", "b", "c"]).await;
    push_all(&s, "dst", &["x"]).await;
    let r = s
        .post("/v1/queues/src/move?to=dst&from_end=tail&to_end=head")
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(bodies(&r.messages()), vec!["c"]);
    let r = s.post("/v1/queues/src/move?to=dst").await;
    assert_eq!(bodies(&r.messages()), vec!["a"]);
    // The same queue on both sides rotates it.
    push_all(&s, "ring", &["1", "2", "3"]).await;
    s.post("/v1/queues/ring/move?to=ring&from_end=tail&to_end=head")
        .await;
    let empty = s.post("/v1/queues/nothing/move?to=dst").await;
    assert_eq!((empty.status, empty.messages().len()), (200, 0));

    s.post("/v1/queues/src/move")
        .await
        .assert_error(400, "invalid_query");
    s.post("/v1/queues/src/move?to=")
        .await
        .assert_error(400, "invalid_name");
    s.post("/v1/queues/src/move?to=dst&to_end=side")
        .await
        .assert_error(400, "invalid_query");

    s.kill9();
    s.restart().await;
    assert_eq!(range(&s, "dst", "").await, vec!["c", "x", "a"]);
    assert_eq!(range(&s, "src", "").await, vec!["b"]);
    assert_eq!(range(&s, "ring", "").await, vec!["3", "1", "2"]);
}

#[tokio::test]
async fn a_blocking_move_is_served_by_a_later_push() {
    let s = TestServer::start(&[]).await;
    let url = s.url("/v1/queues/jobs/move?to=working&wait_ms=10000");
    let waiter = tokio::spawn(async move {
        let r = reqwest::Client::new().post(url).send().await.unwrap();
        r.json::<Value>().await.unwrap()
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    s.push("jobs", "job-1").await;
    let got = waiter.await.unwrap();
    assert_eq!(got["messages"][0]["body"], "job-1", "{got}");
    assert_eq!(range(&s, "working", "").await, vec!["job-1"]);
    assert_eq!(s.stats("jobs").await["ready"], 0);
}

#[tokio::test]
async fn soft_gets_count_durably_and_consume_nothing() {
    let mut s = TestServer::start(&[]).await;
    let none = s.post("/v1/queues/sg/soft-get").await;
    assert_eq!((none.status, none.messages().len()), (200, 0), "{none:?}");
    push_all(&s, "sg", &["first", "second"]).await;
    for n in 1..=2 {
        let r = s.post("/v1/queues/sg/soft-get").await;
        let m = &r.messages()[0];
        assert_eq!(
            (m["body"].clone(), m["soft_gets"].clone()),
            (json!("first"), json!(n))
        );
    }
    s.kill9();
    s.restart().await;
    let r = s.post("/v1/queues/sg/soft-get").await;
    assert_eq!(r.messages()[0]["soft_gets"], 3, "{r:?}");
    let taken = s.take("sg", 2).await;
    assert_eq!(bodies(&taken), vec!["first", "second"]);
    assert_eq!(taken[0]["soft_gets"], 3);
    s.post("/v1/queues/sg/soft-get?subscription=nobody")
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn delete_by_id_removes_one_message_wherever_it_is() {
    let mut s = TestServer::start(&[]).await;
    push_all(&s, "d", &["a", "b", "c"]).await;
    let leased = s.post("/v1/queues/d/lease").await.messages();
    assert_eq!(leased[0]["id"], 1);
    let r = s.delete("/v1/queues/d/messages/1").await;
    assert_eq!(
        (r.status, r.json.clone()),
        (200, json!({"deleted": 1})),
        "{r:?}"
    );
    let r = s.delete("/v1/queues/d/messages/3").await;
    assert_eq!(r.status, 200, "{r:?}");
    s.delete("/v1/queues/d/messages/3")
        .await
        .assert_error(404, "not_found");
    s.delete("/v1/queues/d/messages/-1")
        .await
        .assert_error(400, "invalid_argument");
    s.delete("/v1/queues/d/messages/18446744073709551616")
        .await
        .assert_error(400, "invalid_argument");
    s.delete("/v1/queues/none/messages/1")
        .await
        .assert_error(404, "not_found");
    // The deleted lease's receipt acks nothing.
    let receipt = leased[0]["receipt"].clone();
    let ack = s
        .post_json("/v1/queues/d/ack", &json!({"receipts": [receipt]}))
        .await;
    assert_eq!(ack.json, json!({"acked": 0}));
    assert_eq!(s.stats("d").await["total_deleted"], 2);

    s.kill9();
    s.restart().await;
    assert_eq!(bodies(&s.take("d", 10).await), vec!["b"]);
}

/// Under `--fsync never`, concurrent pushes that ask for `durability=fsync` wait for
/// an fsync of their own (the fsync histogram counts them) and say `durable: true`;
/// the others say `durable: false`. After `kill -9` every acknowledged push of both
/// kinds is there. (A `kill -9` leaves the page cache, so it cannot tell the two
/// apart: what this proves is that asking for less never loses what asked for more,
/// and that the fsyncs asked for really happen.)
#[tokio::test]
async fn fsync_pushes_among_written_ones_are_synced_and_all_survive_kill9() {
    let mut s = TestServer::start(&["--fsync", "never"]).await;
    let fsyncs = |metrics: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("godwit_fsync_seconds_count "))
            .map_or(0, |v| v.trim().parse().unwrap())
    };
    let metrics = |s: &TestServer| {
        let url = s.url("/metrics");
        async move { reqwest::get(url).await.unwrap().text().await.unwrap() }
    };
    let before = fsyncs(&metrics(&s).await);
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let client = client.clone();
        let base = s.url("/v1/queues/mixed/messages");
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..40 {
                let durability = if (w + i) % 2 == 0 { "fsync" } else { "written" };
                let body = format!("{w}-{i}-{durability}");
                let r = client
                    .post(format!("{base}?durability={durability}"))
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
                let v: Value = r.json().await.unwrap();
                assert_eq!(v["durable"], json!(durability == "fsync"), "{v}");
                acked.push(body);
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    let synced = fsyncs(&metrics(&s).await) - before;
    assert!(
        (1..=160).contains(&synced),
        "160 fsync pushes make at least one fsync and at most one each: {synced}"
    );
    s.kill9();
    s.restart().await;
    let mut got = bodies(&s.drain("mixed", 1000).await);
    got.sort();
    acked.sort();
    assert_eq!(got, acked);
}

async fn contains(s: &TestServer, queue: &str, body: &str) -> bool {
    let r = s
        .request(
            reqwest::Method::POST,
            &format!("/v1/queues/{queue}/contains"),
            Some((body.as_bytes().to_vec(), "application/octet-stream")),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    r.json["contains"].as_bool().unwrap()
}

#[tokio::test]
async fn the_value_index_answers_unique_pushes_membership_and_removal_across_restarts() {
    let mut s = TestServer::start(&[]).await;
    let r = s.push_raw("set", "?unique=true", b"red").await;
    assert_eq!((r.status, r.json["id"].clone()), (201, json!(1)), "{r:?}");
    let again = s.push_raw("set", "?unique=true", b"red").await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(
        (
            again.json["id"].clone(),
            again.json["duplicate"].clone(),
            again.json["length"].clone()
        ),
        (json!(1), json!(true), json!(1))
    );
    // Without `unique` an equal body is simply another message.
    s.push("set", "red").await;
    let batch = json!({"messages": [
        {"body": "green", "unique": true},
        {"body": "green", "unique": true},
        {"body_base64": "/wA=", "unique": true},
    ]});
    let r = s.post_json("/v1/queues/set/batch", &batch).await;
    assert_eq!(r.json["duplicate"], json!([false, true, false]), "{r:?}");
    assert!(contains(&s, "set", "green").await);
    assert!(!contains(&s, "set", "blue").await);
    assert!(!contains(&s, "nothing", "red").await);

    // SIGTERM writes a checkpoint: the index comes back from it.
    s.terminate().await;
    s.restart().await;
    assert!(contains(&s, "set", "red").await);
    let r = s.push_raw("set", "?unique=true", b"green").await;
    assert_eq!(r.json["duplicate"], true, "{r:?}");

    // LREM: two reds, remove one from the tail, then every one.
    let remove = |count: i64| json!({"body": "red", "count": count});
    let r = s.post_json("/v1/queues/set/remove", &remove(-1)).await;
    assert_eq!(r.json, json!({"removed": 1}), "{r:?}");
    assert_eq!(range(&s, "set", "").await[0], "red", "the head red stays");
    let r = s.post_json("/v1/queues/set/remove", &remove(0)).await;
    assert_eq!(r.json, json!({"removed": 1}), "{r:?}");
    assert!(!contains(&s, "set", "red").await);
    let binary = json!({"body_base64": "/wA="});
    assert_eq!(
        s.post_json("/v1/queues/set/remove", &binary).await.json["removed"],
        1
    );
    let both = json!({"body": "a", "body_base64": "YQ=="});
    s.post_json("/v1/queues/set/remove", &both)
        .await
        .assert_error(400, "invalid_argument");
    let huge = json!({"body": "a", "count": 1e30});
    s.post_json("/v1/queues/set/remove", &huge)
        .await
        .assert_error(400, "invalid_json");

    // After kill -9 the log replays into the same index.
    s.kill9();
    s.restart().await;
    assert!(contains(&s, "set", "green").await);
    assert!(!contains(&s, "set", "red").await);
    let r = s.push_raw("set", "?unique=true", b"red").await;
    assert_eq!(r.status, 201, "a removed value can come back: {r:?}");
    assert_eq!(range(&s, "set", "").await, vec!["green", "red"]);
}

#[tokio::test]
async fn stats_show_ready_bytes_waiters_and_server_totals() {
    let s = TestServer::start(&[]).await;
    push_all(&s, "k", &["abc", "de"]).await;
    assert_eq!(s.put_json("/v1/queues/empty", &json!({})).await.status, 200);
    let url = s.url("/v1/queues/empty/take?wait_ms=10000");
    let waiter = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .send()
            .await
            .unwrap()
            .status()
    });
    let waiting = eventually(
        std::time::Duration::from_secs(5),
        "a waiter counted",
        || async {
            let st = s.stats("empty").await;
            (st["waiters"] == 1).then_some(st)
        },
    )
    .await;
    assert_eq!(waiting["ready"], 0);
    let st = s.stats("k").await;
    assert_eq!(
        (st["bytes"].clone(), st["ready_bytes"].clone()),
        (json!(5), json!(5))
    );
    assert_eq!(bodies(&s.take("k", 1).await), vec!["abc"]);
    assert!(s.stats("k").await["last_age_ms"].is_u64());
    let totals = s.get("/v1/stats").await;
    assert_eq!(totals.status, 200, "{totals:?}");
    assert_eq!(
        (
            totals.json["queues"].clone(),
            totals.json["ready"].clone(),
            totals.json["ready_bytes"].clone(),
            totals.json["waiters"].clone(),
            totals.json["total_pushed"].clone(),
            totals.json["total_consumed"].clone(),
        ),
        (json!(2), json!(1), json!(2), json!(1), json!(2), json!(1)),
        "{totals:?}"
    );
    s.push("empty", "wake").await;
    assert_eq!(waiter.await.unwrap(), 200);
}

#[tokio::test]
async fn queues_are_created_once_described_listed_by_prefix_and_fanned_out() {
    let mut s = TestServer::start(&[]).await;
    let r = s
        .post_json("/v1/queues/orders.eu", &json!({"description": "EU orders"}))
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.json["description"], "EU orders");
    assert_eq!(r.json["creation"], 1);
    assert!(r.json["created_at"].as_u64().unwrap() > 1_700_000_000_000);
    s.post("/v1/queues/orders.eu")
        .await
        .assert_error(409, "already_exists");
    let long = json!({"description": "x".repeat(5000)});
    s.post_json("/v1/queues/long", &long)
        .await
        .assert_error(400, "invalid_argument");
    s.post_json("/v1/queues/odd", &json!({"colour": "red"}))
        .await
        .assert_error(400, "invalid_json");

    // must_exist refuses to create.
    s.push_raw("orders.us", "?must_exist=true", b"x")
        .await
        .assert_error(404, "not_found");
    s.push("orders.us", "x").await;
    assert_eq!(
        s.push_raw("orders.us", "?must_exist=true", b"y")
            .await
            .status,
        201
    );
    let r = s
        .request(
            reqwest::Method::PUT,
            "/v1/queues/orders.us/description",
            Some((
                br#"{"description": "US orders"}"#.to_vec(),
                "application/json",
            )),
        )
        .await;
    assert_eq!(
        (r.status, r.json["description"].clone()),
        (200, json!("US orders")),
        "{r:?}"
    );

    // A fan-out-only queue: no default subscription.
    let r = s
        .post_json("/v1/queues/news", &json!({"fanout_only": true}))
        .await;
    assert_eq!(r.json["fanout_only"], true, "{r:?}");
    s.push("news", "unheard").await;
    s.put_json(
        "/v1/queues/news/subscriptions/mail",
        &json!({"start": "latest"}),
    )
    .await;
    s.push("news", "hello").await;
    s.post("/v1/queues/news/take")
        .await
        .assert_error(404, "not_found");

    s.kill9();
    s.restart().await;
    let listed = s.get("/v1/queues?prefix=orders.").await;
    let names: Vec<Value> = listed.json["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("orders.eu"), json!("orders.us")]);
    let us = s.stats("orders.us").await;
    assert_eq!(
        (us["creation"].clone(), us["description"].clone()),
        (json!(2), json!("US orders"))
    );
    let mail = s.post("/v1/queues/news/take?subscription=mail&max=5").await;
    assert_eq!(bodies(&mail.messages()), vec!["hello"]);
    s.get("/v1/queues?sort=name")
        .await
        .assert_error(400, "invalid_query");
}

/// Unique pushes and removes by value from concurrent clients, `kill -9` in the middle
/// of them, then a restart: every acknowledged answer holds (a body acknowledged as
/// added and not removed is there, one acknowledged as removed is not), no body is
/// queued twice, and `contains` agrees with what is queued, body by body.
#[tokio::test]
async fn the_value_index_survives_kill9_under_concurrent_unique_pushes_and_removes() {
    use std::collections::{BTreeMap, BTreeSet};
    let mut s = TestServer::start(&[]).await;
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for t in 0..6 {
        let client = client.clone();
        let push_url = s.url("/v1/queues/set/messages?unique=true");
        let remove_url = s.url("/v1/queues/set/remove");
        tasks.push(tokio::spawn(async move {
            // Each task owns its bodies, so its own answers are a sequential history.
            // Last acknowledged state per body: Some(true) present, Some(false) absent;
            // a body whose last request got no answer is unknown (None).
            let mut known: BTreeMap<String, Option<bool>> = BTreeMap::new();
            // Until the server is killed under it.
            for i in 0..u32::MAX {
                let body = format!("v{t}-{}", i % 7);
                let present = known.get(&body).copied().flatten().unwrap_or(false);
                let uncertain = matches!(known.get(&body), Some(None));
                if i % 3 == 2 {
                    let r = client
                        .post(&remove_url)
                        .json(&json!({"body": body}))
                        .send()
                        .await;
                    let Ok(r) = r else {
                        known.insert(body, None);
                        break;
                    };
                    let Ok(v) = r.json::<Value>().await else {
                        known.insert(body, None);
                        break;
                    };
                    if !uncertain {
                        assert_eq!(v["removed"], json!(u64::from(present)), "{body}: {v}");
                    }
                    known.insert(body, Some(false));
                } else {
                    let r = client.post(&push_url).body(body.clone()).send().await;
                    let Ok(r) = r else {
                        known.insert(body, None);
                        break;
                    };
                    let Ok(v) = r.json::<Value>().await else {
                        known.insert(body, None);
                        break;
                    };
                    if !uncertain {
                        let duplicate = v["duplicate"] == json!(true);
                        assert_eq!(duplicate, present, "{body}: {v}");
                    }
                    known.insert(body, Some(true));
                }
            }
            known
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    s.kill9();
    let mut known = BTreeMap::new();
    for t in tasks {
        known.extend(t.await.unwrap());
    }
    s.restart().await;
    let queued = bodies(&s.drain_peek("set").await);
    let distinct: BTreeSet<&String> = queued.iter().collect();
    assert_eq!(
        distinct.len(),
        queued.len(),
        "a unique body is queued once: {queued:?}"
    );
    for (body, state) in &known {
        let there = distinct.contains(body);
        if let Some(want) = state {
            assert_eq!(there, *want, "{body} after kill -9");
        }
        assert_eq!(contains(&s, "set", body).await, there, "contains {body}");
    }
    assert!(
        known.values().any(Option::is_none),
        "the kill landed while requests were in flight"
    );
}
