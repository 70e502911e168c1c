//! queue-sample's dialect end to end (`shared/specs/queue-sample.md`): the real binary,
//! a real HTTP client, and every test run against both mounts — the `/queue-sample`
//! prefix of the main listener and the root of `--queue-sample-listen`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{free_port, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

/// One mount of the dialect: its base URL.
#[derive(Clone)]
struct Qs {
    client: reqwest::Client,
    base: String,
}

/// A reply: status, content type (if any) and body.
#[derive(Debug)]
struct Got {
    status: u16,
    content_type: Option<String>,
    text: String,
}

impl Got {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|_| panic!("not JSON: {self:?}"))
    }

    #[track_caller]
    fn ok_json(&self) -> Value {
        assert_eq!(self.status, 200, "{self:?}");
        assert_eq!(
            self.content_type.as_deref(),
            Some("application/json"),
            "{self:?}"
        );
        self.json()
    }

    /// Asserts the error envelope with this status and text.
    #[track_caller]
    fn assert_error(&self, status: u16, message: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.content_type.as_deref(), Some("application/json"));
        assert_eq!(
            self.json(),
            json!({"http_status": status, "error_message": message}),
            "{self:?}"
        );
    }

    /// Asserts the empty 200 with no content type of a non-GET action.
    #[track_caller]
    fn assert_empty_ok(&self) {
        assert_eq!(self.status, 200, "{self:?}");
        assert_eq!(self.content_type, None, "{self:?}");
        assert_eq!(self.text, "");
    }
}

impl Qs {
    async fn send(&self, method: Method, path: &str, body: Option<(&[u8], &str)>) -> Got {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some((bytes, ct)) = body {
            req = req.header("content-type", ct).body(bytes.to_vec());
        }
        let resp = req.send().await.expect("request answered");
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap_or("").to_string());
        let text = resp.text().await.expect("body");
        Got {
            status,
            content_type,
            text,
        }
    }

    async fn get(&self, path: &str) -> Got {
        self.send(Method::GET, path, None).await
    }

    async fn post(&self, route: &str, body: &Value) -> Got {
        let bytes = serde_json::to_vec(body).unwrap();
        self.send(Method::POST, route, Some((&bytes, "application/json")))
            .await
    }

    async fn create(&self, topic: &str) {
        let got = self
            .get(&format!("/topic?topic={topic}&description=about+{topic}"))
            .await;
        assert_eq!(
            got.ok_json(),
            json!({"topic": topic, "message": format!("Topic \"{topic}\" created")})
        );
    }

    async fn subscribe(&self, topic: &str) -> u64 {
        let got = self
            .get(&format!("/subscribe?topic={topic}"))
            .await
            .ok_json();
        assert_eq!(got["topic"], topic);
        got["subscriber_id"].as_u64().expect("numeric id")
    }

    async fn publish(&self, topic: &str, message: &str) -> u64 {
        let got = self
            .post("/publish", &json!({"topic": topic, "message": message}))
            .await;
        got.assert_empty_ok();
        self.last_offset(topic).await
    }

    async fn last_offset(&self, topic: &str) -> u64 {
        let all = self
            .get(&format!("/topic_messages?topic={topic}"))
            .await
            .ok_json();
        all.as_array()
            .unwrap()
            .iter()
            .map(|m| m["_offset"].as_u64().unwrap())
            .max()
            .unwrap_or(0)
    }

    /// The offsets `get_message` returns now (the one-object-or-array rule undone).
    async fn pending(&self, sub: u64, n: u64) -> Vec<u64> {
        let got = self
            .get(&format!(
                "/get_message?subscriber_id={sub}&num_messages={n}"
            ))
            .await
            .ok_json();
        let rows = match got {
            Value::Array(rows) => rows,
            one @ Value::Object(_) => vec![one],
            other => panic!("unexpected {other}"),
        };
        rows.iter()
            .map(|m| m["_offset"].as_u64().unwrap())
            .collect()
    }

    async fn ack(&self, sub: u64, offset: i64) -> Value {
        self.get(&format!("/ack_message?subscriber_id={sub}&offset={offset}"))
            .await
            .ok_json()
    }
}

/// A server with the dialect's own listener, and both mounts.
async fn start() -> (TestServer, Qs, Qs) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let server = TestServer::start(&["--queue-sample-listen", &listen]).await;
    let (prefixed, own) = mounts(&server, port);
    (server, prefixed, own)
}

fn mounts(server: &TestServer, own_port: u16) -> (Qs, Qs) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let prefixed = Qs {
        client: client.clone(),
        base: server.url("/queue-sample"),
    };
    let own = Qs {
        client,
        base: format!("http://127.0.0.1:{own_port}"),
    };
    (prefixed, own)
}

/// Runs `check` against each mount, with topic names of its own.
async fn on_both<F, Fut>(check: F)
where
    F: Fn(Qs, &'static str) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (_server, prefixed, own) = start().await;
    check(prefixed, "p").await;
    check(own, "o").await;
}

#[tokio::test]
async fn publisher_and_subscriber_flow() {
    on_both(|qs, tag| async move {
        let t = format!("{tag}flow");
        qs.create(&t).await;
        let early = qs.subscribe(&t).await;
        // Nothing pending: an empty array.
        assert_eq!(
            qs.get(&format!("/get_message?subscriber_id={early}"))
                .await
                .ok_json(),
            json!([])
        );
        let got = qs
            .get(&format!("/publish?topic={t}&message=hello"))
            .await
            .ok_json();
        assert_eq!(
            got,
            json!({"message": format!("Saved message to topic \"{t}\" at offset 1")})
        );
        // One pending message comes back as a single object, again and again (peek).
        for _ in 0..2 {
            let one = qs
                .get(&format!("/get_message?subscriber_id={early}"))
                .await
                .ok_json();
            assert_eq!(one["_offset"], 1);
            assert_eq!(one["message"], "hello");
            assert_eq!(one["topic"], t.as_str());
            let keys: Vec<&String> = one.as_object().unwrap().keys().collect();
            assert_eq!(keys.len(), 5);
            let ts = one["publish_ts"].as_str().unwrap();
            assert!(ts.ends_with("+00:00") && ts.len() >= 25, "{ts}");
        }
        // A subscriber that starts later sees only later messages (fan-out).
        let late = qs.subscribe(&t).await;
        assert!(late > early);
        for i in 2..=4 {
            assert_eq!(qs.publish(&t, &format!("m{i}")).await, i);
        }
        assert_eq!(qs.pending(early, 20).await, vec![1, 2, 3, 4]);
        assert_eq!(qs.pending(late, 20).await, vec![2, 3, 4]);
        assert_eq!(qs.pending(late, 2).await, vec![2, 3]);
        // Ack sets the cursor: forwards, backwards, past the end.
        let row = qs.ack(early, 3).await;
        assert_eq!(row["id"], early);
        assert_eq!(row["topic"], t.as_str());
        assert_eq!(row["_offset"], 3);
        assert!(row["action_ts"].as_str().unwrap().ends_with("+00:00"));
        assert_eq!(qs.pending(early, 20).await, vec![4]);
        qs.ack(early, 0).await;
        assert_eq!(qs.pending(early, 20).await, vec![1, 2, 3, 4]);
        qs.ack(early, 4).await;
        assert_eq!(qs.pending(early, 20).await, Vec::<u64>::new());
        // The POST ack of the subscriber class answers JSON too.
        let got = qs
            .post("/ack_message", &json!({"subscriber_id": late, "offset": 4}))
            .await
            .ok_json();
        assert_eq!(got["_offset"], 4);
        // Listings.
        let topics = qs.get(&format!("/topics?topic={t}")).await.ok_json();
        assert_eq!(topics[0]["topic"], t.as_str());
        assert_eq!(topics[0]["description"], format!("about {t}"));
        assert_eq!(qs.get("/topics?topic=nope").await.ok_json(), json!([]));
        let subs = qs
            .get(&format!("/topic_subscribers?topic={t}"))
            .await
            .ok_json();
        let ids: Vec<u64> = subs
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_u64().unwrap())
            .collect();
        assert_eq!(ids, vec![early, late]);
        // Unsubscribe removes only the subscriber.
        let got = qs
            .get(&format!("/unsubscribe?subscriber_id={late}"))
            .await
            .ok_json();
        assert_eq!(
            got,
            json!({"message": format!("Subscriber \"{late}\" deleted")})
        );
        assert_eq!(
            qs.get(&format!("/get_message?subscriber_id={late}"))
                .await
                .ok_json(),
            json!([])
        );
        assert_eq!(
            qs.get(&format!("/ack_message?subscriber_id={late}&offset=1"))
                .await
                .ok_json(),
            Value::Null
        );
        assert_eq!(qs.last_offset(&t).await, 4);
        // Unknown ids are "deleted" too.
        qs.get("/unsubscribe?subscriber_id=987654").await.ok_json();
    })
    .await;
}

#[tokio::test]
async fn topic_reset_moves_every_subscriber() {
    on_both(|qs, tag| async move {
        let t = format!("{tag}reset");
        qs.create(&t).await;
        let a = qs.subscribe(&t).await;
        let b = qs.subscribe(&t).await;
        for i in 1..=5 {
            qs.publish(&t, &format!("m{i}")).await;
        }
        qs.ack(a, 5).await;
        let got = qs
            .get(&format!("/topic_reset?topic={t}&offset=3"))
            .await
            .ok_json();
        assert_eq!(got, json!({"topic": t, "offset": 3, "subscriber_count": 2}));
        // Both (one ahead of 3, one behind it) now read from offset 3.
        assert_eq!(qs.pending(a, 20).await, vec![3, 4, 5]);
        assert_eq!(qs.pending(b, 20).await, vec![3, 4, 5]);
        let subs = qs
            .get(&format!("/topic_subscribers?topic={t}"))
            .await
            .ok_json();
        assert!(subs.as_array().unwrap().iter().all(|s| s["_offset"] == 2));
        // The default offset is 1: replay from the start.
        let got = qs.get(&format!("/topic_reset?topic={t}")).await.ok_json();
        assert_eq!(got["offset"], 1);
        assert_eq!(qs.pending(a, 20).await, vec![1, 2, 3, 4, 5]);
        // Through POST: the empty 200.
        qs.post("/topic_reset", &json!({"topic": t, "offset": 5}))
            .await
            .assert_empty_ok();
        assert_eq!(qs.pending(b, 20).await, vec![5]);
        // An unknown topic: zero subscribers, not an error.
        let got = qs.get("/topic_reset?topic=nope&offset=2").await.ok_json();
        assert_eq!(
            got,
            json!({"topic": "nope", "offset": 2, "subscriber_count": 0})
        );
    })
    .await;
}

/// Ack and reset set the cursor anywhere (spec 5, 8.1): past the end, nothing is
/// delivered until the topic grows beyond it, and the row shows the offset as set.
#[tokio::test]
async fn a_cursor_set_past_the_end_waits_for_the_topic_to_grow() {
    on_both(|qs, tag| async move {
        let t = format!("{tag}beyond");
        qs.create(&t).await;
        let a = qs.subscribe(&t).await;
        let b = qs.subscribe(&t).await;
        assert_eq!(qs.publish(&t, "m1").await, 1);
        let row = qs.ack(a, 3).await;
        assert_eq!(row["_offset"], 3);
        assert_eq!(qs.publish(&t, "m2").await, 2);
        assert_eq!(qs.publish(&t, "m3").await, 3);
        assert!(qs.pending(a, 20).await.is_empty());
        assert_eq!(qs.publish(&t, "m4").await, 4);
        assert_eq!(qs.pending(a, 20).await, vec![4]);
        // A reset past the end moves every subscriber there.
        let got = qs
            .get(&format!("/topic_reset?topic={t}&offset=7"))
            .await
            .ok_json();
        assert_eq!(got["subscriber_count"], 2);
        let subs = qs
            .get(&format!("/topic_subscribers?topic={t}"))
            .await
            .ok_json();
        assert!(
            subs.as_array().unwrap().iter().all(|s| s["_offset"] == 6),
            "{subs}"
        );
        for i in 5..=6 {
            assert_eq!(qs.publish(&t, &format!("m{i}")).await, i);
        }
        assert!(qs.pending(b, 20).await.is_empty());
        assert_eq!(qs.publish(&t, "m7").await, 7);
        assert_eq!(qs.pending(a, 20).await, vec![7]);
        assert_eq!(qs.pending(b, 20).await, vec![7]);
    })
    .await;
}

#[tokio::test]
async fn deleting_a_topic_cascades_and_offsets_restart() {
    on_both(|qs, tag| async move {
        let t = format!("{tag}del");
        qs.create(&t).await;
        let sub = qs.subscribe(&t).await;
        qs.publish(&t, "a").await;
        qs.publish(&t, "b").await;
        let got = qs.get(&format!("/topic_delete?topic={t}")).await.ok_json();
        assert_eq!(got, json!({"message": format!("Topic \"{t}\" deleted")}));
        assert_eq!(
            qs.get(&format!("/topics?topic={t}")).await.ok_json(),
            json!([])
        );
        assert_eq!(
            qs.get(&format!("/topic_messages?topic={t}"))
                .await
                .ok_json(),
            json!([])
        );
        assert_eq!(
            qs.get(&format!("/topic_subscribers?topic={t}"))
                .await
                .ok_json(),
            json!([])
        );
        assert_eq!(
            qs.get(&format!("/get_message?subscriber_id={sub}"))
                .await
                .ok_json(),
            json!([])
        );
        qs.get(&format!("/publish?topic={t}&message=x"))
            .await
            .assert_error(422, &format!("Topic \"{t}\" does not exist"));
        // Deleting what does not exist is fine; DELETE answers the empty 200.
        qs.get("/topic_delete?topic=never").await.ok_json();
        qs.send(Method::DELETE, "/topic_delete?topic=never", None)
            .await
            .assert_empty_ok();
        // Re-created: offsets start at 1 again, the old subscriber stays gone, new ids.
        qs.create(&t).await;
        let again = qs.subscribe(&t).await;
        assert!(again > sub, "subscriber ids are never reused");
        assert_eq!(qs.publish(&t, "c").await, 1);
        assert_eq!(
            qs.get(&format!("/get_message?subscriber_id={sub}"))
                .await
                .ok_json(),
            json!([])
        );
        assert_eq!(qs.pending(again, 20).await, vec![1]);
        // Creating it twice is refused.
        qs.get(&format!("/topic?topic={t}&description=d"))
            .await
            .assert_error(422, &format!("The topic \"{t}\" already exists"));
    })
    .await;
}

#[tokio::test]
async fn dispatch_errors_match_the_original() {
    on_both(|qs, tag| async move {
        let t = format!("{tag}disp");
        qs.create(&t).await;
        qs.get("/nope").await.assert_error(501, "Unsupported route (nope)");
        qs.get("/").await.assert_error(501, "Unsupported route ()");
        qs.get("/topics/").await.assert_error(501, "Unsupported route ()");
        // Method-named routes are plain unknown routes (8.2.3).
        for name in ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"] {
            qs.get(&format!("/{name}")).await.assert_error(501, &format!("Unsupported route ({name})"));
        }
        // Any prefix is ignored, and so are ;params (8.3.9).
        let got = qs.get(&format!("/foo/bar/subscribe?topic={t}")).await.ok_json();
        assert!(got["subscriber_id"].is_u64());
        let got = qs.get(&format!("/a/subscribe;x?topic={t}")).await.ok_json();
        assert!(got["subscriber_id"].is_u64());
        // Method allowlists.
        qs.post("/subscribe", &json!({"topic": t}))
            .await
            .assert_error(401, "Unsupported route (subscribe) for POST");
        qs.send(Method::DELETE, "/publish?topic=x&message=y", None)
            .await
            .assert_error(401, "Unsupported route (publish) for DELETE");
        // QPublisher.delete_topic still gets 401.
        qs.post("/topic_delete", &json!({"topic": t}))
            .await
            .assert_error(401, "Unsupported route (topic_delete) for POST");
        qs.send(Method::PATCH, "/topics", None).await.assert_error(501, "Unsupported command");
        let got = qs.send(Method::OPTIONS, "/topics", None).await;
        assert_eq!(got.status, 501);
        assert_eq!(got.content_type.as_deref(), Some("application/json"));
        assert_eq!(got.json(), json!("Unsupported method ('OPTIONS')"));
        // HEAD: 501 with headers only (8.2.4).
        let got = qs.send(Method::HEAD, "/topics", None).await;
        assert_eq!(got.status, 501);
        assert_eq!(got.text, "");
        // Routing comes before the body (8.3.7): the 501 and 401 whatever the body.
        qs.send(Method::POST, "/nope", Some((b"[1]", "application/json")))
            .await
            .assert_error(501, "Unsupported route (nope)");
        qs.send(Method::POST, "/subscribe", Some((b"x", "text/plain")))
            .await
            .assert_error(401, "Unsupported route (subscribe) for POST");
        // Content type exactly application/json, one response, connection still usable.
        qs.send(Method::POST, "/publish", Some((b"{}", "application/json; charset=utf-8")))
            .await
            .assert_error(
                400,
                "POST command only accepts \"application/json\" content type. (Got \"application/json; charset=utf-8\")",
            );
        qs.send(Method::POST, "/publish", None)
            .await
            .assert_error(400, "POST command only accepts \"application/json\" content type. (Got \"None\")");
        qs.get("/topics").await.ok_json();
    })
    .await;
}

#[tokio::test]
async fn malformed_input_gets_the_envelope() {
    on_both(|qs, tag| async move {
        let t = format!("{tag}bad");
        qs.create(&t).await;
        let sub = qs.subscribe(&t).await;
        let json_ct = "application/json";
        for body in [&b""[..], b"{", b"\xff\xfe", b"{\"topic\": }"] {
            qs.send(Method::POST, "/publish", Some((body, json_ct)))
                .await
                .assert_error(400, "POST body is not valid JSON");
        }
        qs.send(Method::POST, "/publish", Some((b"[1]", json_ct)))
            .await
            .assert_error(400, "POST body must be a JSON object");
        // Missing parameters, with the original's (partly wrong) texts.
        qs.get("/publish?topic=x").await.assert_error(422, "Missing parameters topic, message");
        qs.get(&format!("/publish?topic={t}&message=")).await.assert_error(422, "Missing parameters topic, message");
        qs.get("/topic?topic=x").await.assert_error(422, "Missing parameters topic, description");
        qs.get("/topic_delete").await.assert_error(422, "Missing parameter: topic");
        qs.get("/subscribe").await.assert_error(422, "Missing 'topic' parameter");
        qs.get("/unsubscribe").await.assert_error(422, "Missing parameter: subscriber_id");
        qs.get("/get_message").await.assert_error(422, "Missing 'topic' parameter");
        qs.get(&format!("/ack_message?subscriber_id={sub}")).await.assert_error(422, "Missing parameter: topic");
        qs.post("/ack_message", &json!({"subscriber_id": sub, "offset": 0}))
            .await
            .assert_error(422, "Missing parameter: topic");
        qs.get("/topic_reset").await.assert_error(422, "Missing 'topic' parameter");
        qs.post("/topic_reset", &json!({"topic": t, "offset": 0}))
            .await
            .assert_error(422, "Missing 'topic' parameter");
        // JSON 0, false and null count as missing; an array's first element is used.
        qs.post("/publish", &json!({"topic": t, "message": null}))
            .await
            .assert_error(422, "Missing parameters topic, message");
        qs.post("/publish", &json!({"topic": [t], "message": ["first", "second"]}))
            .await
            .assert_empty_ok();
        assert_eq!(qs.pending(sub, 1).await, vec![1]);
        // Unknown topic and subscriber.
        qs.get("/subscribe?topic=nope").await.assert_error(422, "The topic \"nope\" does not exist");
        qs.post("/publish", &json!({"topic": "nope", "message": "x"}))
            .await
            .assert_error(422, "Topic \"nope\" does not exist");
        assert_eq!(qs.get("/get_message?subscriber_id=424242").await.ok_json(), json!([]));
        assert_eq!(qs.get("/get_message?subscriber_id=-3").await.ok_json(), json!([]));
        assert_eq!(qs.get("/ack_message?subscriber_id=424242&offset=1").await.ok_json(), Value::Null);
        // Non-integers: the text the original meant to send (8.2.2).
        qs.get("/get_message?subscriber_id=abc")
            .await
            .assert_error(422, "Expected integer value for the subscriber_id parameter. Got [['abc']].");
        qs.get("/get_message?subscriber_id=abc&num_messages=1.5")
            .await
            .assert_error(
                422,
                "Expected integer value for the subscriber_id parameter. Got [['abc']].<br>Expected integer value for the num_messages parameter. Got [['1.5']].",
            );
        qs.post("/ack_message", &json!({"subscriber_id": sub, "offset": 1.5}))
            .await
            .assert_error(422, "Expected integer value for the offset parameter. Got [1.5].");
        qs.post("/ack_message", &json!({"subscriber_id": true, "offset": 1}))
            .await
            .assert_error(422, "Expected integer value for the subscriber_id parameter. Got [true].");
        qs.post("/unsubscribe", &json!({"subscriber_id": "x1"}))
            .await
            .assert_error(422, "Expected integer value for the subscriber_id parameter. Got [x1].");
        qs.post("/unsubscribe", &json!({"subscriber_id": [["abc"]]}))
            .await
            .assert_error(422, "Expected integer value for the subscriber_id parameter. Got [[\"abc\"]].");
        // Huge numbers are non-integers, not overflows or dropped connections.
        qs.get("/get_message?subscriber_id=99999999999999999999999")
            .await
            .assert_error(
                422,
                "Expected integer value for the subscriber_id parameter. Got [['99999999999999999999999']].",
            );
        qs.post("/ack_message", &json!({"subscriber_id": sub, "offset": 1e300}))
            .await
            .assert_error(422, "Expected integer value for the offset parameter. Got [1e+300].");
        qs.get(&format!("/ack_message?subscriber_id={sub}&offset=1_0"))
            .await
            .assert_error(422, "Expected integer value for the offset parameter. Got [['1_0']].");
        // The extreme 64-bit values are integers: saturated, never overflowing.
        let row = qs.ack(sub, i64::MAX).await;
        assert_eq!(row["id"], sub);
        qs.ack(sub, i64::MIN).await;
        assert_eq!(qs.pending(sub, 20).await, vec![1]);
        qs.get(&format!("/topic_reset?topic={t}&offset={}", i64::MAX)).await.ok_json();
        qs.get(&format!("/get_message?subscriber_id={sub}&num_messages={}", i64::MIN)).await.ok_json();
        // topic_reset keeps its wrong text.
        qs.get(&format!("/topic_reset?topic={t}&offset=abc"))
            .await
            .assert_error(422, "Expected integer value for the subscriber_id parameter. Got [['abc']].");
        qs.post("/topic_reset", &json!({"topic": t, "offset": "abc"}))
            .await
            .assert_error(422, "Expected integer value for the subscriber_id parameter. Got [abc].");
        // Non-string text parameters (8.2.2, 8.3.8).
        qs.post("/publish", &json!({"topic": t, "message": 5}))
            .await
            .assert_error(422, "Expected string value for the message parameter. Got [5].");
        qs.post("/publish", &json!({"topic": t, "message": []}))
            .await
            .assert_error(422, "Expected string value for the message parameter. Got [[]].");
        qs.post("/topic", &json!({"topic": {"a": 1}, "description": "d"}))
            .await
            .assert_error(422, "Expected string value for the topic parameter. Got [{\"a\":1}].");
        // An empty JSON message is a message.
        qs.post("/publish", &json!({"topic": t, "message": ""})).await.assert_empty_ok();
        assert_eq!(qs.last_offset(&t).await, 2);
    })
    .await;
}

#[tokio::test]
async fn json_replies_are_python_shaped() {
    on_both(|qs, tag| async move {
        let t = format!("{tag}shape");
        qs.create(&t).await;
        let sub = qs.subscribe(&t).await;
        qs.post("/publish", &json!({"topic": t, "message": "é </b> \"q\""}))
            .await
            .assert_empty_ok();
        let got = qs.get(&format!("/get_message?subscriber_id={sub}")).await;
        assert!(got.text.starts_with("{\"id\": "), "{}", got.text);
        assert!(got.text.contains(", \"topic\": "), "{}", got.text);
        assert!(
            got.text.contains("\"message\": \"\\u00e9 </b> \\\"q\\\"\""),
            "{}",
            got.text
        );
        let got = qs.get(&format!("/subscribe?topic={t}")).await;
        assert!(got
            .text
            .starts_with(&format!("{{\"topic\": \"{t}\", \"subscriber_id\": ")));
    })
    .await;
}

#[tokio::test]
async fn concurrent_publishes_never_collide() {
    on_both(|qs, tag| async move {
        let t = format!("{tag}race");
        qs.create(&t).await;
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let qs = qs.clone();
                let t = t.clone();
                tokio::spawn(async move {
                    if i % 2 == 0 {
                        qs.post("/publish", &json!({"topic": t, "message": format!("m{i}")}))
                            .await
                            .status
                    } else {
                        qs.get(&format!("/publish?topic={t}&message=m{i}"))
                            .await
                            .status
                    }
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap(), 200);
        }
        let all = qs
            .get(&format!("/topic_messages?topic={t}"))
            .await
            .ok_json();
        let offsets: BTreeSet<u64> = all
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["_offset"].as_u64().unwrap())
            .collect();
        assert_eq!(offsets, (1..=40).collect());
        let ids: BTreeSet<u64> = all
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_u64().unwrap())
            .collect();
        assert_eq!(ids.len(), 40, "message ids are distinct");
    })
    .await;
}

/// A small deterministic generator (xorshift), so runs can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// A stress subscriber (queue_sub_stress.py): polls one message at a time with no
/// sleep, acks each, stops after `idle` consecutive empty polls once publishing is
/// over; returns every offset it processed (repeats included).
async fn stress_subscriber(qs: Qs, sub: u64, done: tokio::sync::watch::Receiver<bool>) -> Vec<u64> {
    let mut seen = Vec::new();
    let mut empty = 0;
    loop {
        let got = qs
            .get(&format!("/get_message?subscriber_id={sub}"))
            .await
            .ok_json();
        match got {
            Value::Object(m) => {
                empty = 0;
                let offset = m["_offset"].as_u64().unwrap();
                seen.push(offset);
                let acked = qs
                    .post(
                        "/ack_message",
                        &json!({"subscriber_id": sub, "offset": offset}),
                    )
                    .await;
                assert_eq!(acked.status, 200, "{acked:?}");
            }
            Value::Array(rows) => {
                assert!(rows.is_empty(), "a batch of 1 is never an array of rows");
                if *done.borrow() {
                    empty += 1;
                    if empty >= 10 {
                        break;
                    }
                }
                tokio::task::yield_now().await;
            }
            other => panic!("unexpected {other}"),
        }
    }
    qs.post("/unsubscribe", &json!({"subscriber_id": sub}))
        .await
        .assert_empty_ok();
    seen
}

/// The next offset of the topic's slowest subscriber (its `_offset` + 1).
async fn slowest_next(qs: &Qs, topic: &str) -> u64 {
    let subs = qs
        .get(&format!("/topic_subscribers?topic={topic}"))
        .await
        .ok_json();
    subs.as_array()
        .unwrap()
        .iter()
        .map(|s| s["_offset"].as_i64().unwrap().max(0).unsigned_abs() + 1)
        .min()
        .unwrap_or(1)
}

#[tokio::test]
async fn stress_publishers_with_resets_and_polling_subscribers() {
    on_both(|qs, tag| async move {
        let t = format!("{tag}stress");
        qs.create(&t).await;
        let (done_tx, done_rx) = tokio::sync::watch::channel(false);
        let subs: Vec<u64> = {
            let mut subs = Vec::new();
            for _ in 0..3 {
                subs.push(qs.subscribe(&t).await);
            }
            subs
        };
        let readers: Vec<_> = subs
            .iter()
            .map(|&s| tokio::spawn(stress_subscriber(qs.clone(), s, done_rx.clone())))
            .collect();
        let publishers: Vec<_> = (0..4u64)
            .map(|p| {
                let qs = qs.clone();
                let t = t.clone();
                tokio::spawn(async move {
                    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (p + 1));
                    let mut resets = 0;
                    for i in 1..=60u64 {
                        let got = qs
                            .post(
                                "/publish",
                                &json!({"topic": t, "message": format!("test message {i}")}),
                            )
                            .await;
                        assert_eq!(got.status, 200, "publish failed: {got:?}");
                        if i > 1 && rng.below(100) < 4 {
                            // Back to a random offset, never past the slowest
                            // subscriber's next one: a reset forward skips messages by
                            // definition (the original's too), which would defeat the
                            // "sees every offset" check.
                            let slowest = slowest_next(&qs, &t).await;
                            let to = 1 + rng.below((i - 1).min(slowest));
                            let got = qs
                                .post("/topic_reset", &json!({"topic": t, "offset": to}))
                                .await;
                            got.assert_empty_ok();
                            resets += 1;
                        }
                    }
                    resets
                })
            })
            .collect();
        let mut resets = 0;
        for p in publishers {
            resets += p.await.unwrap();
        }
        assert!(resets > 0, "the seeded run resets the topic");
        done_tx.send(true).unwrap();
        let total = 4 * 60;
        let all = qs
            .get(&format!("/topic_messages?topic={t}"))
            .await
            .ok_json();
        let offsets: Vec<u64> = all
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["_offset"].as_u64().unwrap())
            .collect();
        let sorted: BTreeSet<u64> = offsets.iter().copied().collect();
        assert_eq!(
            sorted,
            (1..=total).collect(),
            "offsets 1..={total} with no gaps"
        );
        assert_eq!(offsets.len() as u64, total);
        for reader in readers {
            let seen = reader.await.unwrap();
            let distinct: BTreeSet<u64> = seen.iter().copied().collect();
            // Each subscriber started before the first publish: it saw every offset.
            assert_eq!(
                distinct,
                (1..=total).collect(),
                "a subscriber missed an offset"
            );
        }
        assert_eq!(
            qs.get(&format!("/topic_subscribers?topic={t}"))
                .await
                .ok_json(),
            json!([])
        );
    })
    .await;
}

#[tokio::test]
async fn topics_subscribers_cursors_and_messages_survive_kill_9() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut server = TestServer::start(&["--queue-sample-listen", &listen]).await;
    let (prefixed, own) = mounts(&server, port);
    prefixed.create("durable").await;
    own.create("second").await;
    let a = prefixed.subscribe("durable").await;
    let b = own.subscribe("durable").await;
    for i in 1..=5 {
        prefixed.publish("durable", &format!("m{i}")).await;
    }
    prefixed.ack(a, 3).await;
    let before_msgs = prefixed.get("/topic_messages").await.ok_json();
    let before_subs: BTreeMap<u64, Value> = subscriber_map(&prefixed).await;
    let before_topics = prefixed.get("/topics").await.ok_json();

    server.kill9();
    server.restart().await;
    let (prefixed, own) = mounts(&server, port);

    assert_eq!(prefixed.get("/topics").await.ok_json(), before_topics);
    assert_eq!(own.get("/topic_messages").await.ok_json(), before_msgs);
    assert_eq!(subscriber_map(&own).await, before_subs);
    assert_eq!(prefixed.pending(a, 20).await, vec![4, 5]);
    assert_eq!(own.pending(b, 20).await, vec![1, 2, 3, 4, 5]);
    // Numbering goes on after the restart: no subscriber id or offset is reused.
    let c = own.subscribe("durable").await;
    assert!(c > a.max(b), "{c} reuses a number");
    assert_eq!(own.publish("durable", "m6").await, 6);
    let ids: Vec<u64> = own
        .get("/topic_messages?topic=durable")
        .await
        .ok_json()
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
}

async fn subscriber_map(qs: &Qs) -> BTreeMap<u64, Value> {
    qs.get("/topic_subscribers")
        .await
        .ok_json()
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_u64().unwrap(), s.clone()))
        .collect()
}
