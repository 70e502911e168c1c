//! Live streams against the real binary with real clients: Server-Sent Events read by
//! `reqwest` as a browser's `EventSource` would, WebSocket by `tokio-tungstenite`.
//! Broadcast to three consumers (each gets every message, in order), round-robin to
//! three (each message exactly once, split evenly), pause then resume (nothing lost,
//! plain reads go on), a consumer killed mid-stream (nothing lost), queue events,
//! lease mode acked by frame, and `Last-Event-ID` resuming a subscription.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// One Server-Sent Event.
#[derive(Debug, Clone, Default)]
struct Sse {
    id: Option<String>,
    event: String,
    data: String,
}

/// An open event stream.
struct SseClient {
    resp: reqwest::Response,
    buf: String,
}

impl SseClient {
    async fn open(s: &TestServer, path: &str) -> SseClient {
        Self::open_with(s, path, None).await
    }

    async fn open_with(s: &TestServer, path: &str, last_event_id: Option<u64>) -> SseClient {
        let mut req = s
            .client
            .get(s.url(path))
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id.to_string());
        }
        let resp = req.send().await.expect("open the event stream");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        SseClient {
            resp,
            buf: String::new(),
        }
    }

    /// The next event that is not a comment, within `limit`.
    async fn next(&mut self, limit: Duration) -> Option<Sse> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut ev = Sse::default();
                let mut any = false;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        ev.id = Some(v.trim().to_string());
                        any = true;
                    } else if let Some(v) = line.strip_prefix("event:") {
                        ev.event = v.trim().to_string();
                        any = true;
                    } else if let Some(v) = line.strip_prefix("data:") {
                        ev.data.push_str(v.trim_start());
                        any = true;
                    }
                }
                if any {
                    return Some(ev);
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.resp.chunk()).await;
            match chunk {
                Ok(Ok(Some(bytes))) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                _ => return None,
            }
        }
    }

    /// The bodies of the next `n` message events.
    async fn bodies(&mut self, n: usize) -> Vec<String> {
        let mut out = Vec::new();
        while out.len() < n {
            let ev = self
                .next(Duration::from_secs(10))
                .await
                .unwrap_or_else(|| panic!("only {} of {n} messages arrived: {out:?}", out.len()));
            if ev.event == "message" {
                let m: Value = serde_json::from_str(&ev.data).unwrap();
                assert_eq!(ev.id.as_deref(), Some(m["id"].to_string().as_str()));
                out.push(m["body"].as_str().unwrap().to_string());
            }
        }
        out
    }
}

/// Waits until the queue's streams have `n` consumers.
async fn consumers(s: &TestServer, queue: &str, n: u64) {
    eventually(Duration::from_secs(5), "consumers connect", || async {
        (s.stats(queue).await["live_consumers"] == json!(n)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn broadcast_gives_every_consumer_every_message_in_order() {
    let s = TestServer::start(&[]).await;
    s.post("/v1/queues/news").await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(SseClient::open(&s, "/v1/queues/news/events").await);
    }
    consumers(&s, "news", 3).await;
    let sent: Vec<String> = (0..30).map(|i| format!("m{i}")).collect();
    for b in &sent {
        s.push("news", b).await;
    }
    for c in &mut clients {
        assert_eq!(c.bodies(30).await, sent);
    }
    // Each message was taken once.
    eventually(Duration::from_secs(5), "all consumed", || async {
        let st = s.stats("news").await;
        (st["ready"] == json!(0) && st["total_consumed"] == json!(30)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn round_robin_gives_each_message_to_exactly_one_consumer_evenly() {
    let s = TestServer::start(&[]).await;
    s.post("/v1/queues/jobs").await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(SseClient::open(&s, "/v1/queues/jobs/events?policy=round_robin").await);
    }
    consumers(&s, "jobs", 3).await;
    for i in 0..30 {
        s.push("jobs", &format!("j{i}")).await;
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for c in &mut clients {
        let got = c.bodies(10).await;
        for b in got {
            *seen.entry(b).or_default() += 1;
        }
        assert!(
            c.next(Duration::from_millis(200)).await.is_none(),
            "a consumer got more than its tenth"
        );
    }
    assert_eq!(seen.len(), 30, "{seen:?}");
    assert!(seen.values().all(|n| *n == 1), "{seen:?}");
}

#[tokio::test]
async fn pause_stops_live_delivery_only_and_resume_loses_nothing() {
    let s = TestServer::start(&[]).await;
    s.post("/v1/queues/p").await;
    let mut c = SseClient::open(&s, "/v1/queues/p/events").await;
    consumers(&s, "p", 1).await;
    s.push("p", "before").await;
    assert_eq!(c.bodies(1).await, vec!["before"]);
    let r = s
        .put_json("/v1/queues/p", &json!({"live_paused": true}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let ev = c.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(ev.event, "paused");
    for i in 0..5 {
        s.push("p", &format!("during{i}")).await;
    }
    assert!(
        c.next(Duration::from_millis(400)).await.is_none(),
        "nothing is streamed while paused"
    );
    // Plain reads still work on a stopped queue.
    assert_eq!(bodies(&s.take("p", 1).await), vec!["during0"]);
    s.put_json("/v1/queues/p", &json!({"live_paused": false}))
        .await;
    let ev = c.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(ev.event, "resumed");
    assert_eq!(
        c.bodies(4).await,
        vec!["during1", "during2", "during3", "during4"]
    );
    // Purge and drop reach the stream; a drop ends it.
    s.post("/v1/queues/p/purge").await;
    assert_eq!(
        c.next(Duration::from_secs(5)).await.unwrap().event,
        "purged"
    );
    s.delete("/v1/queues/p").await;
    assert_eq!(
        c.next(Duration::from_secs(5)).await.unwrap().event,
        "dropped"
    );
    assert!(c.next(Duration::from_secs(2)).await.is_none());
}

/// Everything a stream has been sent, read until it goes quiet.
async fn drain(c: &mut SseClient) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(ev) = c.next(Duration::from_millis(500)).await {
        if ev.event == "message" {
            let m: Value = serde_json::from_str(&ev.data).unwrap();
            out.push(m["body"].as_str().unwrap().to_string());
        }
    }
    out
}

#[tokio::test]
async fn a_consumer_killed_mid_stream_loses_nothing() {
    let s = TestServer::start(&[]).await;
    s.post("/v1/queues/w").await;
    let mut survivor = SseClient::open(&s, "/v1/queues/w/events?policy=round_robin").await;
    let mut doomed = SseClient::open(&s, "/v1/queues/w/events?policy=round_robin").await;
    consumers(&s, "w", 2).await;
    let mut want: Vec<String> = Vec::new();
    for i in 0..20 {
        want.push(format!("a{i}"));
        s.push("w", &format!("a{i}")).await;
    }
    let mut received = survivor.bodies(10).await;
    // The doomed consumer reads what reached it, then dies mid-stream (its connection
    // closed while pushes go on).
    let mut doomed_got = drain(&mut doomed).await;
    drop(doomed);
    for i in 0..20 {
        want.push(format!("b{i}"));
        s.push("w", &format!("b{i}")).await;
    }
    received.extend(drain(&mut survivor).await);
    doomed_got.sort();
    let left = bodies(&s.drain_peek("w").await);
    let mut all: Vec<String> = received
        .iter()
        .chain(doomed_got.iter())
        .chain(left.iter())
        .cloned()
        .collect();
    all.sort();
    want.sort();
    assert_eq!(
        all, want,
        "every message reached exactly one consumer or stays queued: survivor {received:?}, \
         doomed {doomed_got:?}, left {left:?}"
    );
    // What the doomed one never got went to the survivor: after it died, all of it.
    assert!(
        (0..20).all(|i| received.contains(&format!("b{i}")) || left.contains(&format!("b{i}"))),
        "{received:?}"
    );
}

#[tokio::test]
async fn last_event_id_resumes_a_subscription_after_it() {
    let s = TestServer::start(&[]).await;
    s.put_json("/v1/queues/feed/subscriptions/mine", &json!({}))
        .await;
    let path = "/v1/queues/feed/events?subscription=mine";
    let mut c = SseClient::open(&s, path).await;
    consumers(&s, "feed", 1).await;
    let ids: Vec<u64> = {
        let mut ids = Vec::new();
        for i in 0..3 {
            ids.push(s.push("feed", &format!("f{i}")).await);
        }
        ids
    };
    assert_eq!(c.bodies(3).await, vec!["f0", "f1", "f2"]);
    drop(c);
    consumers(&s, "feed", 0).await;
    // Pushed while away, and one from before that is offered again (as after a crash
    // between the write and its confirm) is skipped by the id the client names.
    s.push("feed", "f3").await;
    let mut c = SseClient::open_with(&s, path, Some(ids[2])).await;
    assert_eq!(c.bodies(1).await, vec!["f3"]);
    s.get(&format!("{path}&mode=bogus"))
        .await
        .assert_error(400, "invalid_query");
    let r = s
        .client
        .get(s.url(path))
        .header("last-event-id", "not-a-number")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

async fn ws_connect(
    s: &TestServer,
    query: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let url = format!("ws://127.0.0.1:{}/v1/queues/ws{query}", s.port());
    let (socket, resp) = tokio_tungstenite::connect_async(url).await.expect("ws");
    assert_eq!(resp.status(), 101);
    socket
}

async fn ws_next(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .expect("a frame");
        if let WsMessage::Text(t) = frame {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

#[tokio::test]
async fn websocket_streams_in_lease_mode_and_acks_by_frame() {
    let s = TestServer::start(&[]).await;
    s.post("/v1/queues/ws").await;
    let mut socket = ws_connect(&s, "/ws?mode=lease&visibility_ms=60000").await;
    consumers(&s, "ws", 1).await;
    s.push("ws", "hello").await;
    s.push("ws", "world").await;
    let mut receipts = Vec::new();
    for want in ["hello", "world"] {
        let v = ws_next(&mut socket).await;
        assert_eq!(v["type"], "message", "{v}");
        assert_eq!(v["message"]["body"], want);
        receipts.push(v["message"]["receipt"].as_str().unwrap().to_string());
    }
    let st = s.stats("ws").await;
    assert_eq!(st["in_flight"], 2, "{st}");
    socket
        .send(WsMessage::Text(
            json!({"ack": receipts[0]}).to_string().into(),
        ))
        .await
        .unwrap();
    assert_eq!(ws_next(&mut socket).await["acked"], 1);
    socket
        .send(WsMessage::Text("{bad json".into()))
        .await
        .unwrap();
    assert_eq!(ws_next(&mut socket).await["type"], "error");
    // The other is acked over HTTP.
    let r = s
        .post_json("/v1/queues/ws/ack", &json!({"receipts": [receipts[1]]}))
        .await;
    assert_eq!(r.json["acked"], 1, "{r:?}");
    let st = s.stats("ws").await;
    assert_eq!(
        (st["in_flight"].clone(), st["total_consumed"].clone()),
        (json!(0), json!(2))
    );
    // Broadcast over WebSocket to three.
    let mut sockets = Vec::new();
    for _ in 0..3 {
        sockets.push(ws_connect(&s, "/ws").await);
    }
    consumers(&s, "ws", 4).await;
    drop(socket);
    consumers(&s, "ws", 3).await;
    for i in 0..10 {
        s.push("ws", &format!("b{i}")).await;
    }
    for socket in &mut sockets {
        for i in 0..10 {
            let v = ws_next(socket).await;
            assert_eq!(v["message"]["body"], format!("b{i}"));
        }
    }
    // Not an upgrade: a clear 400.
    s.get("/v1/queues/ws/ws")
        .await
        .assert_error(400, "invalid_argument");
}
