//! RestMQ's live consumers against the real binary with real clients: Comet
//! (`/c/<q>`, read chunk by chunk with `reqwest`), WebSocket (`/ws/<q>`,
//! `tokio-tungstenite`) and SSE (`/sse/<q>`), fed by RestMQ's own producer
//! (`POST /q/<q>` with `value=…`).
//!
//! What a user observes (spec `restmq.md` 4.4, 4.11, 4.12, 5, 12.2 #2–5, #17, #23,
//! 12.3 #27, #28, #33): Comet headers at once and exact lines (JSONP too, numeric-looking
//! values as strings that take nothing with them); broadcast to Comet, WebSocket and SSE
//! alike; round-robin split evenly with nothing lost; `/control/` stop and start with
//! plain reads going on; a consumer killed mid-stream losing nothing; `DELETE /q` ending
//! every kind of stream; the WebSocket handshake's refusals and its echo; a client that
//! never reads stalling nobody; and after `kill -9` every acknowledged add either read
//! once or still queued.
//!
//! A live consumer joins the queue's streams before its response head is written (the
//! Comet and SSE headers, the WebSocket 101), so once a test holds the head, messages
//! posted next reach that consumer.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::AsyncWriteExt as _;
use tokio::time::{timeout, timeout_at, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// How long any single expected frame, line or event may take to arrive.
const ARRIVE: Duration = Duration::from_secs(10);
/// How long a stream must stay silent to count as "nothing more was sent".
const QUIET: Duration = Duration::from_millis(500);

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

// ---- producers and plain reads ----------------------------------------------------------

/// A client for long-lived streams: no total timeout (each read is bounded instead).
fn stream_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .expect("stream client")
}

/// `application/x-www-form-urlencoded` for `pairs`.
fn form_body(pairs: &[(&str, &str)]) -> Vec<u8> {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
        .into_bytes()
}

/// `POST path` with a form body.
async fn post_form(s: &TestServer, path: &str, pairs: &[(&str, &str)]) -> Reply {
    s.request(
        reqwest::Method::POST,
        path,
        Some((form_body(pairs), "application/x-www-form-urlencoded")),
    )
    .await
}

/// `POST /q/<queue>` with `value`; asserts RestMQ's `<queue>:<n>⏎` and returns the key.
async fn add(s: &TestServer, queue: &str, value: &str) -> String {
    let r = post_form(s, &format!("/q/{queue}"), &[("value", value)]).await;
    assert_eq!(r.status, 200, "POST /q/{queue}: {r:?}");
    let key = r
        .text
        .strip_suffix("\r\n")
        .unwrap_or_else(|| panic!("no CRLF after the key: {r:?}"));
    assert!(key.starts_with(&format!("{queue}:")), "{r:?}");
    key.to_string()
}

/// Sets the queue's live policy (`/p/`), asserting `OK⏎`.
async fn set_policy(s: &TestServer, queue: &str, policy: &str) {
    let r = post_form(s, &format!("/p/{queue}"), &[("policy", policy)]).await;
    assert_eq!((r.status, r.text.as_str()), (200, "OK\r\n"), "{r:?}");
}

/// Pops with `GET /q/<queue>` until 204; returns the keys, oldest first.
async fn pop_all(s: &TestServer, queue: &str, limit: usize) -> Vec<String> {
    let mut keys = Vec::new();
    loop {
        let r = s.get(&format!("/q/{queue}")).await;
        if r.status == 204 {
            assert_eq!(r.text, "", "a 204 carries no body");
            return keys;
        }
        assert_eq!(r.status, 200, "GET /q/{queue}: {r:?}");
        let v: serde_json::Value = serde_json::from_str(&r.text).expect("a JSON pop");
        keys.push(v["key"].as_str().expect("a key").to_string());
        assert!(keys.len() <= limit, "popped more than {limit} from {queue}");
    }
}

/// `len` of `GET /stats/<queue>`.
async fn queued(s: &TestServer, queue: &str) -> u64 {
    let r = s.get(&format!("/stats/{queue}")).await;
    assert_eq!(r.status, 200, "{r:?}");
    r.json["len"]
        .as_u64()
        .unwrap_or_else(|| panic!("no len: {r:?}"))
}

/// The `"key"` of a live object `{"key": …, "value": …}` (a Comet line without its CRLF,
/// a WebSocket frame, an SSE `data:`).
fn key_of(object: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(object).unwrap_or_else(|e| panic!("not JSON ({e}): {object:?}"));
    v["key"]
        .as_str()
        .unwrap_or_else(|| panic!("no key in {object:?}"))
        .to_string()
}

/// The exact live object RestMQ writes for message `n` of `queue` with `value`.
fn object(queue: &str, n: usize, value: &str) -> String {
    format!(r#"{{"key": "{queue}:{n}", "value": "{value}"}}"#)
}

// ---- a streaming body read piece by piece -----------------------------------------------

/// What the next read of a streaming body gave.
enum Fill {
    Data,
    End,
    Timeout,
}

/// A streaming HTTP body and what arrived of it that was not consumed yet.
struct Chunks {
    resp: reqwest::Response,
    buf: Vec<u8>,
    ended: bool,
}

impl Chunks {
    async fn fill(&mut self, deadline: Instant) -> Fill {
        if self.ended {
            return Fill::End;
        }
        match timeout_at(deadline, self.resp.chunk()).await {
            Ok(Ok(Some(bytes))) => {
                self.buf.extend_from_slice(&bytes);
                Fill::Data
            }
            // The body ended, cleanly or not (a killed server).
            Ok(Ok(None)) | Ok(Err(_)) => {
                self.ended = true;
                Fill::End
            }
            Err(_) => Fill::Timeout,
        }
    }

    /// The next piece up to and including `sep`, within `limit`; `None` on timeout or at
    /// the end of the body.
    async fn until(&mut self, sep: &[u8], limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(at) = self.buf.windows(sep.len()).position(|w| w == sep) {
                let piece: Vec<u8> = self.buf.drain(..at + sep.len()).collect();
                return Some(String::from_utf8(piece).expect("UTF-8 stream"));
            }
            match self.fill(deadline).await {
                Fill::Data => {}
                Fill::End | Fill::Timeout => return None,
            }
        }
    }

    /// Whether the body ends within `limit` with nothing more in it.
    async fn ends(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            match self.fill(deadline).await {
                Fill::Data => {}
                Fill::End => return self.buf.is_empty(),
                Fill::Timeout => return false,
            }
        }
    }
}

/// A Comet consumer.
struct Comet(Chunks);

impl Comet {
    /// `GET path`; asserts the head RestMQ's Comet promises (200, `text/plain`, chunked)
    /// arrives at once, before any message.
    async fn open(client: &reqwest::Client, s: &TestServer, path: &str) -> Comet {
        let resp = timeout(Duration::from_secs(5), client.get(s.url(path)).send())
            .await
            .unwrap_or_else(|_| panic!("no head for {path} within 5 s"))
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(resp.status(), 200, "GET {path}");
        let h = resp.headers();
        assert_eq!(h["content-type"], "text/plain", "{h:?}");
        assert_eq!(h["transfer-encoding"], "chunked", "{h:?}");
        assert!(!h.contains_key("content-length"), "{h:?}");
        Comet(Chunks {
            resp,
            buf: Vec::new(),
            ended: false,
        })
    }

    /// The next line, CRLF included, within `limit`.
    async fn line(&mut self, limit: Duration) -> Option<String> {
        self.0.until(b"\r\n", limit).await
    }

    /// The next `n` lines, CRLF included.
    async fn lines(&mut self, n: usize) -> Vec<String> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            match self.line(ARRIVE).await {
                Some(l) => out.push(l),
                None => panic!("only {} of {n} lines arrived: {out:?}", out.len()),
            }
        }
        out
    }

    /// The keys of the next `n` lines.
    async fn keys(&mut self, n: usize) -> Vec<String> {
        let lines = self.lines(n).await;
        lines.iter().map(|l| key_of(l.trim_end())).collect()
    }

    /// The keys of every line that arrives until the stream stays quiet or ends.
    async fn rest(&mut self) -> Vec<String> {
        let mut keys = Vec::new();
        while let Some(l) = self.line(QUIET).await {
            keys.push(key_of(l.trim_end()));
        }
        keys
    }
}

/// One Server-Sent Event (comments skipped).
#[derive(Debug, Default)]
struct Sse {
    id: Option<String>,
    event: String,
    data: String,
}

/// An SSE consumer, read as a browser's `EventSource` would.
struct SseClient(Chunks);

impl SseClient {
    async fn open(client: &reqwest::Client, s: &TestServer, path: &str) -> SseClient {
        let resp = timeout(
            Duration::from_secs(5),
            client
                .get(s.url(path))
                .header("accept", "text/event-stream")
                .send(),
        )
        .await
        .unwrap_or_else(|_| panic!("no head for {path} within 5 s"))
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(resp.status(), 200, "GET {path}");
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        SseClient(Chunks {
            resp,
            buf: Vec::new(),
            ended: false,
        })
    }

    /// The next event within `limit`; `None` on timeout or at the end.
    async fn next(&mut self, limit: Duration) -> Option<Sse> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let block = self.0.until(b"\n\n", left).await?;
            let mut ev = Sse {
                event: "message".into(),
                ..Sse::default()
            };
            let mut any = false;
            for line in block.lines() {
                let field = |name: &str| {
                    line.strip_prefix(name)
                        .map(|v| v.strip_prefix(' ').unwrap_or(v).to_string())
                };
                if let Some(v) = field("id:") {
                    ev.id = Some(v);
                    any = true;
                } else if let Some(v) = field("event:") {
                    ev.event = v;
                    any = true;
                } else if let Some(v) = field("data:") {
                    if !ev.data.is_empty() {
                        ev.data.push('\n');
                    }
                    ev.data.push_str(&v);
                    any = true;
                }
            }
            if any {
                return Some(ev);
            }
        }
    }
}

// ---- WebSocket ---------------------------------------------------------------------------

/// Opens `/ws/<queue>` (no `Origin` header: RestMQ's Godwit does not require one).
async fn ws_open(s: &TestServer, path: &str) -> Ws {
    let req = format!("ws://127.0.0.1:{}{path}", s.port())
        .into_client_request()
        .expect("ws request");
    assert!(!req.headers().contains_key("origin"));
    let (socket, resp) = timeout(
        Duration::from_secs(5),
        tokio_tungstenite::connect_async(req),
    )
    .await
    .expect("ws handshake in time")
    .expect("ws handshake");
    assert_eq!(resp.status(), 101);
    socket
}

/// The next text frame (pings and pongs skipped) within [`ARRIVE`].
async fn ws_text(socket: &mut Ws) -> String {
    loop {
        let frame = timeout(ARRIVE, socket.next())
            .await
            .expect("a frame in time")
            .expect("the socket is open")
            .expect("a frame");
        match frame {
            WsMessage::Text(t) => return t.to_string(),
            WsMessage::Ping(_) | WsMessage::Pong(_) => {}
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// Reads a raw socket until it closes or stays silent for `quiet` (at most 60 s in all).
async fn read_for(stream: &mut tokio::net::TcpStream, quiet: Duration) -> Vec<u8> {
    use tokio::io::AsyncReadExt as _;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut all = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while Instant::now() < deadline {
        match timeout(quiet, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => all.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    all
}

// ---- 1. Comet ------------------------------------------------------------------------------

#[tokio::test]
async fn comet_sends_its_head_at_once_then_one_exact_line_per_message() {
    let s = TestServer::start(&[]).await;
    let client = stream_client();
    // The head arrives before any message exists (the queue does not even exist yet).
    let mut c = Comet::open(&client, &s, "/c/cq").await;
    assert!(c.line(QUIET).await.is_none(), "nothing before a message");
    for v in ["m1", "m2", "m3"] {
        add(&s, "cq", v).await;
    }
    assert_eq!(
        c.lines(3).await,
        vec![
            "{\"key\": \"cq:1\", \"value\": \"m1\"}\r\n",
            "{\"key\": \"cq:2\", \"value\": \"m2\"}\r\n",
            "{\"key\": \"cq:3\", \"value\": \"m3\"}\r\n",
        ]
    );

    // JSONP.
    let mut cb = Comet::open(&client, &s, "/c/jq?callback=fn").await;
    add(&s, "jq", "m1").await;
    assert_eq!(
        cb.lines(1).await,
        vec!["fn({\"key\": \"jq:1\", \"value\": \"m1\"});\r\n"]
    );

    // A numeric-looking value is a string here and takes nothing with it.
    for v in ["a", "42", "b", "-1.5", "c"] {
        add(&s, "cq", v).await;
    }
    assert_eq!(
        c.lines(5).await,
        vec![
            "{\"key\": \"cq:4\", \"value\": \"a\"}\r\n",
            "{\"key\": \"cq:5\", \"value\": \"42\"}\r\n",
            "{\"key\": \"cq:6\", \"value\": \"b\"}\r\n",
            "{\"key\": \"cq:7\", \"value\": \"-1.5\"}\r\n",
            "{\"key\": \"cq:8\", \"value\": \"c\"}\r\n",
        ]
    );
    // Nor does a message that expires at once (`ttl=0`, never delivered) or one whose
    // body is not UTF-8 (pushed by another face).
    add(&s, "cq", "d").await;
    let r = post_form(&s, "/q/cq", &[("value", "gone"), ("ttl", "0")]).await;
    assert_eq!(r.text, "cq:10\r\n", "{r:?}");
    assert_eq!(s.push_raw("cq", "", b"\xff\xfe").await.status, 201);
    add(&s, "cq", "e").await;
    let mut keys = Vec::new();
    while keys.last().map(String::as_str) != Some("cq:12") {
        let l = c.line(ARRIVE).await;
        let l = l.unwrap_or_else(|| panic!("e never arrived after {keys:?}"));
        keys.push(key_of(l.trim_end()));
    }
    assert_eq!(keys.first().map(String::as_str), Some("cq:9"), "{keys:?}");
    assert!(
        !keys.contains(&"cq:10".to_string()),
        "an expired message was delivered"
    );

    // JSON `add` is delivered at once too (no 1-second tick).
    let started = Instant::now();
    let r = post_form(
        &s,
        "/queue",
        &[("body", r#"{"cmd": "add", "queue": "cq", "value": "j1"}"#)],
    )
    .await;
    assert_eq!(
        r.text, r#"{"queue": "cq", "value": "j1", "key": "cq:13"}"#,
        "{r:?}"
    );
    assert_eq!(c.lines(1).await, vec![object("cq", 13, "j1") + "\r\n"]);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a JSON add waited {:?}",
        started.elapsed()
    );
    assert!(c.line(QUIET).await.is_none(), "nothing more");
    assert_eq!(queued(&s, "cq").await, 0, "every message was consumed live");

    // Messages waiting before a consumer connects reach it at once, oldest first.
    add(&s, "wq", "w1").await;
    add(&s, "wq", "w2").await;
    let started = Instant::now();
    let mut late = Comet::open(&client, &s, "/c/wq").await;
    assert_eq!(
        late.lines(2).await,
        vec![
            object("wq", 1, "w1") + "\r\n",
            object("wq", 2, "w2") + "\r\n"
        ]
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "waiting messages took {:?}",
        started.elapsed()
    );
}

// ---- 2. Broadcast --------------------------------------------------------------------------

#[tokio::test]
async fn broadcast_gives_comet_websocket_and_sse_consumers_every_message_in_order() {
    let s = TestServer::start(&[]).await;
    let client = stream_client();
    let mut comets = vec![
        Comet::open(&client, &s, "/c/bq").await,
        Comet::open(&client, &s, "/c/bq").await,
    ];
    let mut ws = ws_open(&s, "/ws/bq").await;
    let mut sse = SseClient::open(&client, &s, "/sse/bq").await;
    let n = 20;
    let values: Vec<String> = (1..=n).map(|i| format!("m{i}")).collect();
    for v in &values {
        add(&s, "bq", v).await;
    }
    let objects: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| object("bq", i + 1, v))
        .collect();
    for c in &mut comets {
        let want: Vec<String> = objects.iter().map(|o| format!("{o}\r\n")).collect();
        assert_eq!(c.lines(n).await, want);
    }
    for o in &objects {
        assert_eq!(&ws_text(&mut ws).await, o, "a WebSocket frame has no CRLF");
    }
    for (i, o) in objects.iter().enumerate() {
        let ev = sse.next(ARRIVE).await.expect("an SSE event");
        assert_eq!(ev.event, "message", "{ev:?}");
        assert_eq!(ev.id, Some((i + 1).to_string()), "{ev:?}");
        assert_eq!(&ev.data, o, "{ev:?}");
    }
    // Each message was taken once, by the broadcast, not once per consumer.
    assert_eq!(queued(&s, "bq").await, 0);
    assert_eq!(s.get("/q/bq").await.status, 204);
    for c in &mut comets {
        assert!(c.line(QUIET).await.is_none(), "nothing more");
    }
}

// ---- 3. Round-robin ------------------------------------------------------------------------

#[tokio::test]
async fn round_robin_gives_each_message_to_exactly_one_comet_consumer_evenly() {
    let s = TestServer::start(&[]).await;
    let client = stream_client();
    set_policy(&s, "rq", "roundrobin").await;
    let r = s.get("/p/rq").await;
    assert_eq!(r.text, "{\"queue\": \"rq\", \"value\": \"roundrobin\"}\r\n");
    let mut consumers = Vec::new();
    for _ in 0..3 {
        consumers.push(Comet::open(&client, &s, "/c/rq").await);
    }
    let mut posted = Vec::new();
    for i in 1..=30 {
        posted.push(add(&s, "rq", &format!("r{i}")).await);
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut shares = Vec::new();
    for c in &mut consumers {
        // One message at a time in turn: 30 over 3 consumers is exactly 10 each.
        let got = c.keys(10).await;
        assert!(c.line(QUIET).await.is_none(), "a consumer got more than 10");
        let ids: Vec<usize> = got
            .iter()
            .map(|k| k.strip_prefix("rq:").unwrap().parse().unwrap())
            .collect();
        assert!(
            ids.windows(2).all(|w| w[1] == w[0] + 3),
            "each consumer gets every third message, in order: {ids:?}"
        );
        for k in &got {
            *seen.entry(k.clone()).or_default() += 1;
        }
        shares.push(got);
    }
    assert_eq!(
        seen.keys().cloned().collect::<BTreeSet<_>>(),
        posted.iter().cloned().collect::<BTreeSet<_>>(),
        "nothing lost: {shares:?}"
    );
    assert!(seen.values().all(|n| *n == 1), "{seen:?}");
    assert_eq!(queued(&s, "rq").await, 0);
    // Back to broadcast: the consumers already connected follow at once.
    set_policy(&s, "rq", "broadcast").await;
    add(&s, "rq", "all").await;
    for c in &mut consumers {
        assert_eq!(c.lines(1).await, vec![object("rq", 31, "all") + "\r\n"]);
    }
}

// ---- 4. Pause and resume -------------------------------------------------------------------

#[tokio::test]
async fn control_stop_pauses_live_delivery_only_and_start_delivers_the_rest() {
    let s = TestServer::start(&[]).await;
    let client = stream_client();
    let mut c = Comet::open(&client, &s, "/c/pq").await;
    add(&s, "pq", "before").await;
    assert_eq!(c.lines(1).await, vec![object("pq", 1, "before") + "\r\n"]);

    let r = post_form(&s, "/control/pq", &[("status", "stop")]).await;
    assert_eq!(
        r.text, "{\"stat\": {\"queue\": \"pq\", \"status\": 0}}\r\n",
        "{r:?}"
    );
    for i in 0..5 {
        add(&s, "pq", &format!("during{i}")).await;
    }
    assert!(
        c.line(Duration::from_secs(1)).await.is_none(),
        "nothing is delivered live while stopped"
    );
    assert_eq!(queued(&s, "pq").await, 5);
    // Plain reads go on.
    let r = s.get("/q/pq").await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (
            200,
            "{\"count\": 0, \"key\": \"pq:2\", \"value\": \"during0\"}\r\n"
        ),
        "{r:?}"
    );

    let r = post_form(&s, "/control/pq", &[("status", "start")]).await;
    assert_eq!(
        r.text, "{\"stat\": {\"queue\": \"pq\", \"status\": 1}}\r\n",
        "{r:?}"
    );
    let want: Vec<String> = (1..5)
        .map(|i| object("pq", i + 2, &format!("during{i}")) + "\r\n")
        .collect();
    assert_eq!(c.lines(4).await, want, "the rest, in order, nothing lost");
    assert!(c.line(QUIET).await.is_none());
    assert_eq!(queued(&s, "pq").await, 0);
    // Live again for new messages.
    add(&s, "pq", "after").await;
    assert_eq!(c.lines(1).await, vec![object("pq", 7, "after") + "\r\n"]);
}

// ---- 5. A consumer killed mid-stream -------------------------------------------------------

#[tokio::test]
async fn a_comet_consumer_killed_mid_stream_loses_nothing() {
    let s = TestServer::start(&[]).await;
    let client = stream_client();
    set_policy(&s, "kq", "roundrobin").await;
    let mut survivor = Comet::open(&client, &s, "/c/kq").await;
    let mut doomed = Comet::open(&client, &s, "/c/kq").await;
    let mut posted = Vec::new();
    for i in 0..20 {
        posted.push(add(&s, "kq", &format!("a{i}")).await);
    }
    // Round-robin over two: 10 each. The doomed one has read everything it was sent
    // (a line sent to it and unread when it dies counts as delivered, by design).
    let mut survivor_got = survivor.keys(10).await;
    let doomed_got = doomed.keys(10).await;
    // Killed abruptly: the connection closes, and the next messages are posted at
    // once, before the server can be expected to have noticed.
    drop(doomed);
    for i in 0..40 {
        posted.push(add(&s, "kq", &format!("b{i}")).await);
    }
    survivor_got.extend(survivor.rest().await);
    let unique: BTreeSet<&String> = survivor_got.iter().collect();
    assert_eq!(
        unique.len(),
        survivor_got.len(),
        "the survivor got a message twice: {survivor_got:?}"
    );
    let len = queued(&s, "kq").await;
    let left = pop_all(&s, "kq", 100).await;
    assert_eq!(
        len,
        left.len() as u64,
        "/stats/ len counts what GET /q pops"
    );
    let mut all: Vec<String> = survivor_got
        .iter()
        .chain(&doomed_got)
        .chain(&left)
        .cloned()
        .collect();
    all.sort();
    posted.sort();
    assert_eq!(
        all, posted,
        "every message was read once or is still queued: survivor {survivor_got:?}, \
         doomed {doomed_got:?}, left {left:?}"
    );
}

// ---- 6. DELETE ends the streams ------------------------------------------------------------

#[tokio::test]
async fn delete_ends_comet_websocket_and_sse_streams() {
    let s = TestServer::start(&[]).await;
    let client = stream_client();
    let mut comet = Comet::open(&client, &s, "/c/dq").await;
    let mut jsonp = Comet::open(&client, &s, "/c/dq?callback=cb").await;
    let mut ws = ws_open(&s, "/ws/dq").await;
    let mut sse = SseClient::open(&client, &s, "/sse/dq").await;
    // Something came before.
    add(&s, "dq", "m1").await;
    let o = object("dq", 1, "m1");
    assert_eq!(comet.lines(1).await, vec![format!("{o}\r\n")]);
    assert_eq!(jsonp.lines(1).await, vec![format!("cb({o});\r\n")]);
    assert_eq!(ws_text(&mut ws).await, o);
    assert_eq!(sse.next(ARRIVE).await.expect("m1").data, o);

    let r = s.delete("/q/dq").await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (200, "{\"queue\": \"dq\", \"status\": 0}\r\n"),
        "{r:?}"
    );

    assert_eq!(comet.lines(1).await, vec!["null\r\n"]);
    assert!(comet.0.ends(ARRIVE).await, "the Comet body ends after null");
    assert_eq!(jsonp.lines(1).await, vec!["cb(null);\r\n"]);
    assert!(
        jsonp.0.ends(ARRIVE).await,
        "the JSONP body ends after cb(null);"
    );

    assert_eq!(ws_text(&mut ws).await, "null");
    let close = timeout(ARRIVE, ws.next())
        .await
        .expect("a close frame in time")
        .expect("a frame")
        .expect("a close frame, no garbage");
    match close {
        WsMessage::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Normal),
        other => panic!("expected a close frame with 1000, got {other:?}"),
    }
    let after = timeout(ARRIVE, ws.next()).await.expect("the socket ends");
    assert!(
        !matches!(after, Some(Ok(WsMessage::Text(_) | WsMessage::Binary(_)))),
        "nothing after the close: {after:?}"
    );

    let ev = sse.next(ARRIVE).await.expect("a purged event");
    assert_eq!(ev.event, "purged", "{ev:?}");
    assert!(sse.0.ends(ARRIVE).await, "the SSE body ends after purged");

    // The queue goes on: numbering continues, a new consumer gets new messages.
    let mut again = Comet::open(&client, &s, "/c/dq").await;
    assert_eq!(add(&s, "dq", "m2").await, "dq:2");
    assert_eq!(again.lines(1).await, vec![object("dq", 2, "m2") + "\r\n"]);
}

/// 12.3 #27 "whatever came before", 4.4 #1 "every live consumer registered on the
/// queue": a consumer binds to a queue that does not exist yet (4.11), and a `DELETE`
/// must end it too.
#[tokio::test]
async fn delete_ends_the_streams_of_a_queue_that_never_had_a_message() {
    let s = TestServer::start(&[]).await;
    let client = stream_client();
    let mut comet = Comet::open(&client, &s, "/c/never").await;
    let mut ws = ws_open(&s, "/ws/never").await;
    let mut sse = SseClient::open(&client, &s, "/sse/never").await;
    let r = s.delete("/q/never").await;
    assert_eq!(r.text, "{\"queue\": \"never\", \"status\": 0}\r\n");
    assert_eq!(comet.lines(1).await, vec!["null\r\n"]);
    assert!(comet.0.ends(ARRIVE).await, "the Comet body ends after null");
    assert_eq!(ws_text(&mut ws).await, "null");
    let ev = sse.next(ARRIVE).await.expect("a purged event");
    assert_eq!(ev.event, "purged", "{ev:?}");
}

// ---- 7. The WebSocket handshake and echo ---------------------------------------------------

#[tokio::test]
async fn websocket_echoes_frames_and_refuses_plain_requests_and_old_versions() {
    let s = TestServer::start(&[]).await;
    // No Origin header (ws_open checks it is absent): accepted.
    let mut ws = ws_open(&s, "/ws/eq").await;
    ws.send(WsMessage::Text("hello, \u{4e16}\u{754c} {\"x\": 1}".into()))
        .await
        .unwrap();
    assert_eq!(ws_text(&mut ws).await, "hello, \u{4e16}\u{754c} {\"x\": 1}");
    ws.send(WsMessage::Text("second".into())).await.unwrap();
    assert_eq!(ws_text(&mut ws).await, "second");
    // Messages and echoes share the socket.
    add(&s, "eq", "live").await;
    assert_eq!(ws_text(&mut ws).await, object("eq", 1, "live"));

    // Not an upgrade: the 403 page.
    let r = s.get("/ws/eq").await;
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(
        r.text,
        "<html><title>403: Forbidden</title><body>403: Forbidden</body></html>"
    );

    // An older draft: 426 naming the version spoken.
    let resp = s
        .client
        .get(s.url("/ws/eq"))
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("sec-websocket-version", "8")
        .header("origin", "http://example.com")
        .send()
        .await
        .expect("GET /ws/eq with version 8");
    assert_eq!(resp.status(), 426);
    assert_eq!(resp.headers()["sec-websocket-version"], "13");
    assert_eq!(
        resp.text().await.unwrap(),
        "<html><title>426: Upgrade Required</title><body>426: Upgrade Required</body></html>"
    );

    // The consumer that was open is not disturbed.
    ws.send(WsMessage::Text("still here".into())).await.unwrap();
    assert_eq!(ws_text(&mut ws).await, "still here");
}

// ---- 8. A client that never reads ----------------------------------------------------------

#[tokio::test]
async fn a_comet_client_that_never_reads_stalls_no_one() {
    let s = TestServer::start(&[]).await;
    let client = stream_client();
    let created = s.post("/v1/queues/sq").await;
    assert!(created.status < 300, "create the queue: {created:?}");
    // A raw client with a tiny receive buffer that asks for the stream and never reads.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket
        .connect(([127, 0, 0, 1], s.port()).into())
        .await
        .expect("connect");
    stalled
        .write_all(b"GET /c/sq HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    stalled.flush().await.unwrap();
    let mut reader = Comet::open(&client, &s, "/c/sq").await;
    // The stalled client's head is never read: wait (natively) until it has joined.
    eventually(Duration::from_secs(5), "both consumers joined", || async {
        let r = s.get("/v1/queues/sq").await;
        (r.json["live_consumers"] == 2).then_some(())
    })
    .await;

    // 500 messages of 32 KiB: 16 MiB, far more than the stalled socket's buffers hold
    // (4 KiB to receive, at most 4 MiB to send).
    let pad = "x".repeat(32 * 1024);
    let n = 500;
    let started = Instant::now();
    let producer = {
        let url = s.url("/q/sq");
        let client = s.client.clone();
        tokio::spawn(async move {
            for i in 0..n {
                let body = form_body(&[("value", &format!("{i} {pad}"))]);
                let r = client
                    .post(&url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body)
                    .send()
                    .await
                    .expect("POST /q/sq");
                assert_eq!(r.status(), 200);
            }
        })
    };
    for i in 0..n {
        let line = reader
            .line(ARRIVE)
            .await
            .unwrap_or_else(|| panic!("line {i} of {n} did not arrive"));
        let v: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(v["key"], format!("sq:{}", i + 1));
        assert!(
            v["value"].as_str().unwrap().starts_with(&format!("{i} ")),
            "{i}: in order"
        );
    }
    timeout(Duration::from_secs(30), producer)
        .await
        .expect("the producer finishes")
        .expect("the producer succeeded");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(s.get("/healthz").await.status, 200);
    assert_eq!(add(&s, "other", "ping").await, "other:1");
    assert_eq!(
        s.get("/q/other").await.text,
        "{\"count\": 0, \"key\": \"other:1\", \"value\": \"ping\"}\r\n"
    );
    // When it finally reads, what reached it is whole lines, in order, none twice (a
    // consumer this far behind is cut off from the broadcast rather than waited for).
    let got = read_for(&mut stalled, Duration::from_secs(2)).await;
    let text = String::from_utf8_lossy(&got);
    let ids: Vec<u64> = text
        .split("{\"key\": \"sq:")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().parse().unwrap())
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "the stalled client's lines are in order: {ids:?}"
    );
    // Cut off, its response is aborted rather than ended cleanly, so it can tell it
    // missed messages: no last chunk.
    assert!(
        ids.len() < 500,
        "it fell behind and was cut off: {}",
        ids.len()
    );
    assert!(
        !text.ends_with("\r\n0\r\n\r\n"),
        "the cut-off stream has no clean end: {:?}",
        &text[text.len().saturating_sub(40)..]
    );
}

// ---- 9. Durability across kill -9 ----------------------------------------------------------

/// Posts `value=p<who>-<j>` to `url` until a POST fails; returns the acknowledged keys.
async fn produce(client: reqwest::Client, url: String, who: usize, acked: Arc<Mutex<Vec<String>>>) {
    for j in 0.. {
        let body = form_body(&[("value", &format!("p{who}-{j}"))]);
        let sent = client
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await;
        let Ok(resp) = sent else { return };
        if resp.status() != 200 {
            return;
        }
        let Ok(text) = resp.text().await else { return };
        let key = text.strip_suffix("\r\n").expect("a key line").to_string();
        acked.lock().unwrap().push(key);
    }
}

/// Reads a Comet stream until it ends (the server dies), recording every key.
async fn consume(mut c: Comet, read: Arc<Mutex<Vec<String>>>) {
    while let Some(l) = c.line(Duration::from_secs(30)).await {
        read.lock().unwrap().push(key_of(l.trim_end()));
    }
}

/// Round-robin, not broadcast: every message has exactly one reader, so a message lost
/// by the crash cannot hide behind another consumer's copy, and the rotation's takes
/// (one message each) are many small deliveries racing the kill.
#[tokio::test]
async fn kill9_loses_no_acknowledged_add_and_repeats_none_to_a_consumer() {
    let mut s = TestServer::start(&[]).await;
    let client = stream_client();
    set_policy(&s, "dur", "roundrobin").await;
    let reads: Vec<Arc<Mutex<Vec<String>>>> = (0..2).map(|_| Arc::default()).collect();
    let mut consumers = Vec::new();
    for read in &reads {
        let c = Comet::open(&client, &s, "/c/dur").await;
        consumers.push(tokio::spawn(consume(c, read.clone())));
    }
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let producers: Vec<_> = (0..2)
        .map(|who| {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap();
            tokio::spawn(produce(client, s.url("/q/dur"), who, acked.clone()))
        })
        .collect();
    eventually(Duration::from_secs(30), "300 adds acknowledged", || async {
        let both_read = reads.iter().all(|r| !r.lock().unwrap().is_empty());
        (acked.lock().unwrap().len() >= 300 && both_read).then_some(())
    })
    .await;
    s.kill9();
    for task in producers.into_iter().chain(consumers) {
        timeout(Duration::from_secs(40), task)
            .await
            .expect("a client notices the server died")
            .expect("the client task");
    }
    s.restart().await;

    let acked = acked.lock().unwrap().clone();
    let read: Vec<Vec<String>> = reads.iter().map(|r| r.lock().unwrap().clone()).collect();
    for (i, keys) in read.iter().enumerate() {
        let unique: BTreeSet<&String> = keys.iter().collect();
        assert_eq!(
            unique.len(),
            keys.len(),
            "consumer {i} read a key twice: {keys:?}"
        );
    }
    let left = pop_all(&s, "dur", acked.len() + 1000).await;
    let seen: BTreeSet<&String> = read.iter().flatten().chain(&left).collect();
    let missing: Vec<&String> = acked.iter().filter(|k| !seen.contains(k)).collect();
    assert!(
        missing.is_empty(),
        "acknowledged and then lost: {missing:?} (acked {}, read {} + {}, left {})",
        acked.len(),
        read[0].len(),
        read[1].len(),
        left.len()
    );
    assert_eq!(s.get("/healthz").await.status, 200);
}
