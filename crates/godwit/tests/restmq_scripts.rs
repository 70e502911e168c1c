//! The original RestMQ's scripts (specs/restmq.md section 10) replayed against the real
//! `godwit serve` binary: the `test_rest.sh` walk-through, the ApacheBench producer and
//! consumer, `bigmessage.py`, the map/reduce word count, N concurrent Comet clients and
//! the wire samples of 10.7, each asserting the exact bytes a RestMQ client sees (with
//! Godwit's deliberate fixes of section 12 where they apply).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::Method;
use serde_json::Value;

const HTML: &str = "text/html; charset=UTF-8";
const FORM: &str = "application/x-www-form-urlencoded";
const PAGE_400: &str = "<html><title>400: Bad Request</title><body>400: Bad Request</body></html>";
const PAGE_404: &str = "<html><title>404: Not Found</title><body>404: Not Found</body></html>";
const PAGE_405: &str =
    "<html><title>405: Method Not Allowed</title><body>405: Method Not Allowed</body></html>";
const STORE: &str = "<Godwit store: embedded>";
/// How long a Comet client waits for its next line.
const LINE_WAIT: Duration = Duration::from_secs(10);

/// A reply with its headers and exact body bytes.
#[derive(Debug)]
struct Wire {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Wire {
    fn header(&self, name: reqwest::header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn content_type(&self) -> &str {
        self.header(CONTENT_TYPE).unwrap_or("")
    }

    /// Asserts status, content type and the exact body.
    #[track_caller]
    fn assert(&self, status: u16, content_type: &str, body: &str) {
        assert_eq!(self.status, status, "status of {self:?}");
        assert_eq!(
            self.content_type(),
            content_type,
            "content type of {self:?}"
        );
        assert_eq!(self.body, body, "body of {self:?}");
    }
}

async fn send(
    client: &reqwest::Client,
    method: Method,
    url: &str,
    body: Option<(&str, &str)>,
) -> Wire {
    let mut req = client.request(method.clone(), url);
    if let Some((bytes, content_type)) = body {
        req = req
            .header(CONTENT_TYPE, content_type)
            .body(bytes.to_string());
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.expect("read body");
    Wire {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).expect("a UTF-8 body"),
    }
}

/// A client that does not follow redirects (to see the 302s).
fn plain_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// `POST /queue` with a raw `application/json` body.
async fn raw_json(s: &TestServer, json: &str) -> Wire {
    let body = Some((json, "application/json"));
    send(&s.client, Method::POST, &s.url("/queue"), body).await
}

async fn get(s: &TestServer, path: &str) -> Wire {
    send(&s.client, Method::GET, &s.url(path), None).await
}

/// `POST path` with a form body given verbatim (already urlencoded).
async fn form(s: &TestServer, path: &str, body: &str) -> Wire {
    send(&s.client, Method::POST, &s.url(path), Some((body, FORM))).await
}

/// `application/x-www-form-urlencoded` encoding of one value, as Python's `urlencode`
/// does it (space as `+`).
fn urlencode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3 / 2);
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The hard-GET reply of a string value (JSON-encoded as RestMQ does for plain ASCII
/// without `</` or control characters).
fn hard_get(key: &str, value_json: &str) -> String {
    format!("{{\"count\": 0, \"key\": \"{key}\", \"value\": {value_json}}}\r\n")
}

/// A connected Comet consumer (`GET /c/<queue>`): headers received, lines read on
/// demand.
struct Comet {
    resp: reqwest::Response,
    buf: Vec<u8>,
}

impl Comet {
    /// Connects and checks the headers Godwit sends at once (12.3 #27).
    async fn connect(client: &reqwest::Client, url: &str) -> Comet {
        let resp = tokio::time::timeout(LINE_WAIT, client.get(url).send())
            .await
            .unwrap_or_else(|_| panic!("no Comet headers from {url}"))
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        assert_eq!(resp.status().as_u16(), 200, "Comet status");
        let ct = resp
            .headers()
            .get(CONTENT_TYPE)
            .map(|v| v.to_str().unwrap());
        assert_eq!(ct, Some("text/plain"), "Comet content type");
        assert!(
            resp.headers().get(CONTENT_LENGTH).is_none(),
            "a Comet stream is chunked"
        );
        Comet {
            resp,
            buf: Vec::new(),
        }
    }

    /// The next CRLF-terminated line, terminator included.
    async fn line(&mut self) -> String {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..end + 2).collect();
                return String::from_utf8(line).expect("a UTF-8 Comet line");
            }
            let chunk = tokio::time::timeout(LINE_WAIT, self.resp.chunk())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "no Comet line within {LINE_WAIT:?}; have {:?}",
                        String::from_utf8_lossy(&self.buf)
                    )
                })
                .expect("read the Comet stream")
                .unwrap_or_else(|| {
                    panic!(
                        "the Comet stream ended; have {:?}",
                        String::from_utf8_lossy(&self.buf)
                    )
                });
            self.buf.extend_from_slice(&chunk);
        }
    }
}

/// A client for live streams: no overall timeout (waits are bounded per line).
fn stream_client() -> reqwest::Client {
    reqwest::Client::builder().build().expect("client")
}

// ---- 10.1 examples/test_rest.sh -------------------------------------------------------

#[tokio::test]
async fn test_rest_sh_walk_through() {
    let s = TestServer::start(&[]).await;

    form(&s, "/", "queue=test&value=foobar")
        .await
        .assert(200, HTML, "test:1\r\n");
    let body = urlencode(r#"{"cmd":"get", "queue":"test"}"#);
    form(&s, "/queue", &format!("body={body}")).await.assert(
        200,
        "application/json",
        r#"{"queue": "test", "count": 1, "value": "foobar", "key": "test:1"}"#,
    );
    form(&s, "/q/test", "value=foobar")
        .await
        .assert(200, HTML, "test:2\r\n");
    get(&s, "/q/test")
        .await
        .assert(200, HTML, &hard_get("test:1", "\"foobar\""));

    let control = |status: u8| {
        format!(
            "{{\"queue\": \"test\", \"status\": {{\"queue\": \"test\", \"status\": {status}}}, \
             \"redis\": \"{STORE}\"}}\r\n"
        )
    };
    get(&s, "/control/test")
        .await
        .assert(200, "application/json", &control(1));
    form(&s, "/control/test", "status=stop").await.assert(
        200,
        HTML,
        "{\"stat\": {\"queue\": \"test\", \"status\": 0}}\r\n",
    );
    get(&s, "/control/test")
        .await
        .assert(200, "application/json", &control(0));
    form(&s, "/control/test", "status=start").await.assert(
        200,
        HTML,
        "{\"stat\": {\"queue\": \"test\", \"status\": 1}}\r\n",
    );
    get(&s, "/control/test")
        .await
        .assert(200, "application/json", &control(1));

    send(&s.client, Method::DELETE, &s.url("/q/test"), None)
        .await
        .assert(200, HTML, "{\"queue\": \"test\", \"status\": 1}\r\n");

    let policy = |value: &str| format!("{{\"queue\": \"test\", \"value\": \"{value}\"}}\r\n");
    get(&s, "/p/test")
        .await
        .assert(200, HTML, &policy("unknown"));
    form(&s, "/p/test", "policy=roundrobin")
        .await
        .assert(200, HTML, "OK\r\n");
    get(&s, "/p/test")
        .await
        .assert(200, HTML, &policy("roundrobin"));
    form(&s, "/p/test", "policy=broadcast")
        .await
        .assert(200, HTML, "OK\r\n");
    get(&s, "/p/test")
        .await
        .assert(200, HTML, &policy("broadcast"));

    // "GET /c/test and wait for messages posted from another terminal": the purge kept
    // the numbering, so the next message is test:3.
    let live = stream_client();
    let mut comet = Comet::connect(&live, &s.url("/c/test")).await;
    form(&s, "/q/test", "value=hello+comet")
        .await
        .assert(200, HTML, "test:3\r\n");
    assert_eq!(
        comet.line().await,
        "{\"key\": \"test:3\", \"value\": \"hello comet\"}\r\n"
    );
    // Delivered live, so gone from the queue.
    let empty = get(&s, "/q/test").await;
    assert_eq!((empty.status, empty.body.as_str()), (204, ""));
}

// ---- 10.2 tests/ab.txt + tests/post.txt -------------------------------------------------

const AB_BODY: &str =
    "queue=reducer&value=%7B%22count%22%3A+302%2C+%22filename%22%3A+%22files%2Fbookfrag-aa%22%7D";
const AB_VALUE_JSON: &str = r#""{\"count\": 302, \"filename\": \"files/bookfrag-aa\"}""#;

#[tokio::test]
async fn ab_producer_then_consumer() {
    const POSTS: usize = 2_000;
    const PRODUCERS: usize = 50;
    const CONSUMERS: usize = 20;
    let s = TestServer::start(&[]).await;

    // Producer: 50 at a time, every answer `reducer:N⏎` with a distinct N.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..PRODUCERS {
        let client = s.client.clone();
        let url = s.url("/");
        tasks.spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..POSTS / PRODUCERS {
                let reply = send(&client, Method::POST, &url, Some((AB_BODY, FORM))).await;
                assert_eq!(
                    (reply.status, reply.content_type()),
                    (200, HTML),
                    "{reply:?}"
                );
                let n = reply
                    .body
                    .strip_prefix("reducer:")
                    .and_then(|rest| rest.strip_suffix("\r\n"))
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or_else(|| panic!("not reducer:N⏎: {reply:?}"));
                ids.push(n);
            }
            ids
        });
    }
    let mut posted = BTreeSet::new();
    while let Some(ids) = tasks.join_next().await {
        for n in ids.expect("producer task") {
            assert!(posted.insert(n), "reducer:{n} answered twice");
        }
    }
    assert_eq!(posted.len(), POSTS);
    assert_eq!(posted, (1..=POSTS as u64).collect(), "ids are 1..=N");

    // Consumer: 20 at a time until 204; every 200 a distinct key and the posted value.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CONSUMERS {
        let client = s.client.clone();
        let url = s.url("/q/reducer");
        tasks.spawn(async move {
            let mut got = Vec::new();
            loop {
                let reply = send(&client, Method::GET, &url, None).await;
                if reply.status == 204 {
                    assert_eq!(reply.body, "", "204 without a body");
                    return got;
                }
                assert_eq!(
                    (reply.status, reply.content_type()),
                    (200, HTML),
                    "{reply:?}"
                );
                let n = reply
                    .body
                    .strip_prefix("{\"count\": 0, \"key\": \"reducer:")
                    .and_then(|rest| rest.split('"').next())
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or_else(|| panic!("not a hard-GET reply: {reply:?}"));
                assert_eq!(reply.body, hard_get(&format!("reducer:{n}"), AB_VALUE_JSON));
                got.push(n);
                assert!(got.len() <= POSTS, "more pops than posts");
            }
        });
    }
    let mut popped = BTreeSet::new();
    while let Some(ids) = tasks.join_next().await {
        for n in ids.expect("consumer task") {
            assert!(popped.insert(n), "reducer:{n} popped twice");
        }
    }
    assert_eq!(popped, posted, "every posted key popped exactly once");
}

// ---- 10.3 tests/bigmessage.py -----------------------------------------------------------

/// Deterministic pseudo-random printable text (words, punctuation, newlines) of `len`
/// bytes.
fn pseudo_random_text(len: usize, mut seed: u64) -> String {
    const PUNCT: &[u8] = b".,;:!?\"'()[]{}<>/\\&=+%#@$*-_~`^|";
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut out = String::with_capacity(len);
    while out.len() < len {
        let r = next();
        match r % 16 {
            0 => out.push('\n'),
            1 | 2 => out.push(char::from(PUNCT[(r >> 8) as usize % PUNCT.len()])),
            _ => {
                let word = 1 + (r >> 8) % 9;
                for i in 0..word {
                    out.push(char::from(b'a' + ((r >> (12 + i * 4)) % 26) as u8));
                }
                out.push(' ');
            }
        }
    }
    out.truncate(len);
    out
}

#[tokio::test]
async fn bigmessage_round_trip() {
    let s = TestServer::start(&[]).await;
    let content = pseudo_random_text(600 * 1024, 0x9E37_79B9_7F4A_7C15);
    let original = serde_json::json!({
        "filename": "bigfile.txt",
        "len": content.len(),
        "content": content,
    });
    let value = serde_json::to_string(&original).expect("encode");
    let queue = "bigmessages_1764651600";
    let body = format!("queue={queue}&value={}", urlencode(&value));
    assert!(
        body.len() < 1024 * 1024,
        "the form body fits the default limit"
    );

    let reply = form(&s, "/", &body).await;
    reply.assert(200, HTML, &format!("{queue}:1\r\n"));
    let key = reply.body.trim_end();

    let popped = get(&s, &format!("/q/{queue}")).await;
    assert_eq!((popped.status, popped.content_type()), (200, HTML));
    assert!(popped.body.ends_with("}\r\n"), "CRLF-terminated");
    let reply: Value = serde_json::from_str(&popped.body).expect("a JSON reply");
    assert_eq!(reply["count"], 0);
    assert_eq!(reply["key"], key);
    let text = reply["value"].as_str().expect("the value is the JSON text");
    assert_eq!(text, value, "the stored text comes back byte for byte");
    let decoded: Value = serde_json::from_str(text).expect("the value decodes as JSON");
    let got = decoded["content"].as_str().expect("content");
    assert_eq!(decoded["len"].as_u64(), Some(got.len() as u64));
    assert_eq!(got.len(), content.len(), "content length");
    assert!(got == content, "content differs from the original");
    assert_eq!(decoded["filename"], "bigfile.txt");

    // Popped for good.
    let again = get(&s, &format!("/q/{queue}")).await;
    assert_eq!((again.status, again.body.as_str()), (204, ""));
}

const PAGE_413: &str =
    "<html><title>413: Request Entity Too Large</title><body>413: Request Entity Too Large</body></html>";

#[tokio::test]
async fn message_size_limit_is_the_value_not_the_form_body() {
    // The default --max-message-bytes is 1 MiB: a value of exactly that is stored, one
    // byte more is the 413 page (12.2 #21).
    let s = TestServer::start(&[]).await;
    let limit = 1024 * 1024;
    let at = "x".repeat(limit);
    form(&s, "/q/limit", &format!("value={at}"))
        .await
        .assert(200, HTML, "limit:1\r\n");
    let popped = get(&s, "/q/limit").await;
    assert_eq!(popped.status, 200);
    assert_eq!(popped.body, hard_get("limit:1", &format!("\"{at}\"")));
    let over = "x".repeat(limit + 1);
    form(&s, "/q/limit", &format!("value={over}"))
        .await
        .assert(413, HTML, PAGE_413);
}

#[tokio::test]
async fn bigmessage_heavily_percent_encoded_under_the_limit() {
    // bigmessage.py on a file full of quotes and punctuation: a 750,000-byte JSON value
    // (under the 1 MiB message limit) whose form encoding is 3x that.
    let s = TestServer::start(&[]).await;
    let content = "\"<&>=%+\\".repeat(75_000);
    let value = serde_json::to_string(&serde_json::json!({
        "filename": "quotes.txt",
        "len": content.len(),
        "content": content,
    }))
    .expect("encode");
    assert!(value.len() < 1024 * 1024, "the value is under the limit");
    let body = format!("queue=bigmessages_2&value={}", urlencode(&value));
    assert!(body.len() > 2 * 1024 * 1024, "its form body is not");
    form(&s, "/", &body)
        .await
        .assert(200, HTML, "bigmessages_2:1\r\n");
    let popped = get(&s, "/q/bigmessages_2").await;
    assert_eq!(popped.status, 200, "{:?}", &popped.body[..100]);
    let reply: Value = serde_json::from_str(&popped.body).expect("a JSON reply");
    assert!(
        reply["value"].as_str() == Some(value.as_str()),
        "round trip"
    );
}

// ---- 10.6 examples/mapreduce (word count over queues) -------------------------------------

const TEXT: &str = "\
The godwit is a large wading bird with a long bill
it probes the mud of the estuary for worms and shellfish
a bar-tailed godwit flew eleven thousand kilometres without a stop
the bird did not eat or drink or rest on the way
Over the sea the godwit rode the wind and the wind was kind
Scientists tagged the bird and followed it by satellite

the flight took eleven days and the bird lost half its weight
and then it rested on the mud and ate worms again
Naïve café words count once: café, CAFÉ and café.
";

fn words(line: &str) -> impl Iterator<Item = String> + '_ {
    line.split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
}

#[tokio::test]
async fn mapreduce_word_count() {
    const WORKERS: usize = 4;
    let s = TestServer::start(&[]).await;

    // Mapper: one message a (non-empty) line.
    let mut lines = 0;
    for line in TEXT.lines().filter(|l| !l.trim().is_empty()) {
        let reply = form(&s, "/q/map", &format!("value={}", urlencode(line))).await;
        lines += 1;
        reply.assert(200, HTML, &format!("map:{lines}\r\n"));
    }

    // Workers: pop lines until the map queue is empty, post each line's counts.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..WORKERS {
        let client = s.client.clone();
        let map = s.url("/q/map");
        let reduce = s.url("/q/reduce");
        tasks.spawn(async move {
            let mut done = 0;
            loop {
                let reply = send(&client, Method::GET, &map, None).await;
                if reply.status == 204 {
                    return done;
                }
                assert_eq!(reply.status, 200, "{reply:?}");
                let popped: Value = serde_json::from_str(&reply.body).expect("JSON reply");
                let line = popped["value"].as_str().expect("a line comes back as text");
                let mut counts = BTreeMap::<String, u64>::new();
                for w in words(line) {
                    *counts.entry(w).or_default() += 1;
                }
                let partial = serde_json::to_string(&counts).expect("encode");
                let body = format!("value={}", urlencode(&partial));
                let posted = send(&client, Method::POST, &reduce, Some((&body, FORM))).await;
                assert!(
                    posted.status == 200 && posted.body.starts_with("reduce:"),
                    "{posted:?}"
                );
                done += 1;
            }
        });
    }
    let mut mapped = 0;
    while let Some(n) = tasks.join_next().await {
        mapped += n.expect("worker task");
    }
    assert_eq!(mapped, lines, "every line mapped once");

    // Reducer: pop every partial count and merge.
    let mut total = BTreeMap::<String, u64>::new();
    let mut partials = 0;
    loop {
        let reply = get(&s, "/q/reduce").await;
        if reply.status == 204 {
            break;
        }
        assert_eq!(reply.status, 200, "{reply:?}");
        let popped: Value = serde_json::from_str(&reply.body).expect("JSON reply");
        let partial: BTreeMap<String, u64> =
            serde_json::from_str(popped["value"].as_str().expect("partial as text"))
                .expect("a partial count");
        for (w, n) in partial {
            *total.entry(w).or_default() += n;
        }
        partials += 1;
    }
    assert_eq!(partials, lines);

    let mut direct = BTreeMap::<String, u64>::new();
    for w in TEXT.lines().flat_map(words) {
        *direct.entry(w).or_default() += 1;
    }
    assert_eq!(total, direct);
    assert_eq!(total["café"], 4);
}

// ---- 10.6 examples/test_comet_curl.py (N concurrent Comet clients) -----------------------

#[tokio::test]
async fn concurrent_comet_clients_on_a_broadcast_queue() {
    const CLIENTS: usize = 20;
    const MESSAGES: usize = 50;
    let s = TestServer::start(&[]).await;
    form(&s, "/p/bq", "policy=broadcast")
        .await
        .assert(200, HTML, "OK\r\n");

    let live = stream_client();
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(Comet::connect(&live, &s.url("/c/bq")).await);
    }
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                let mut lines = Vec::new();
                for _ in 0..MESSAGES {
                    lines.push(c.line().await);
                }
                lines
            })
        })
        .collect();
    for i in 1..=MESSAGES {
        form(&s, "/q/bq", &format!("value=msg-{i}")).await.assert(
            200,
            HTML,
            &format!("bq:{i}\r\n"),
        );
    }
    let expected: Vec<String> = (1..=MESSAGES)
        .map(|i| format!("{{\"key\": \"bq:{i}\", \"value\": \"msg-{i}\"}}\r\n"))
        .collect();
    for (n, reader) in readers.into_iter().enumerate() {
        let lines = reader.await.expect("reader task");
        assert_eq!(lines, expected, "Comet client {n}");
    }
}

// ---- 10.7 wire samples ---------------------------------------------------------------------

#[tokio::test]
async fn wire_samples() {
    let s = TestServer::start(&[]).await;
    let plain = plain_client();

    // GET /q/test on an empty (unknown, then drained) queue: 204, no body, no length.
    for _ in 0..2 {
        let empty = get(&s, "/q/test").await;
        assert_eq!(empty.status, 204, "{empty:?}");
        assert_eq!(empty.body, "", "204 carries no body (12.2 #1)");
        assert_eq!(empty.header(CONTENT_LENGTH), None, "{empty:?}");
        form(&s, "/q/test", "value=foobar").await;
        get(&s, "/q/test").await;
    }

    // POST /q/test without value or msg: the 400 page.
    send(&s.client, Method::POST, &s.url("/q/test"), None)
        .await
        .assert(400, HTML, PAGE_400);
    form(&s, "/q/test", "other=1")
        .await
        .assert(400, HTML, PAGE_400);

    // POST / continues the queue's numbering.
    form(&s, "/", "queue=test&value=v3")
        .await
        .assert(200, HTML, "test:3\r\n");
    get(&s, "/?queue=test")
        .await
        .assert(200, HTML, &hard_get("test:3", "\"v3\""));
    // GET /?queue=test on the empty queue: the 404 page (not 204).
    get(&s, "/?queue=test").await.assert(404, HTML, PAGE_404);

    // GET /: 302 to the dashboard, empty body.
    let root = send(&plain, Method::GET, &s.url("/"), None).await;
    assert_eq!(root.status, 302, "{root:?}");
    assert_eq!(root.header(LOCATION), Some("/static/index.html"));
    assert_eq!(root.body, "");

    // POST /queue with an unknown cmd: 200, HTML type, no CRLF.
    let foo = urlencode(r#"{"cmd":"foo", "queue":"jq"}"#);
    form(&s, "/queue", &format!("body={foo}")).await.assert(
        200,
        HTML,
        r#"{"error": "null resultset"}"#,
    );

    // POST /queue with a raw application/json body: accepted (12.2 #13).
    let raw = |json: &'static str| raw_json(&s, json);
    raw(r#"{"cmd": "add", "queue": "jq", "value": "a1"}"#)
        .await
        .assert(
            200,
            "application/json",
            r#"{"queue": "jq", "value": "a1", "key": "jq:1"}"#,
        );
    raw(r#"{"cmd": "get", "queue": "jq"}"#).await.assert(
        200,
        "application/json",
        r#"{"queue": "jq", "count": 1, "value": "a1", "key": "jq:1"}"#,
    );
    raw(r#"{"cmd": "foo", "queue": "jq"}"#).await.assert(
        200,
        HTML,
        r#"{"error": "null resultset"}"#,
    );

    // GET /queue: 302 to the help form.
    let help = send(&plain, Method::GET, &s.url("/queue"), None).await;
    assert_eq!(help.status, 302, "{help:?}");
    assert_eq!(help.header(LOCATION), Some("/static/help.html"));
    assert_eq!(help.body, "");

    // PUT, OPTIONS and HEAD /q/x: the 405 page (HEAD: its headers, no body).
    for method in [Method::PUT, Method::OPTIONS, Method::PATCH] {
        send(&s.client, method, &s.url("/q/x"), None)
            .await
            .assert(405, HTML, PAGE_405);
    }
    let head = send(&s.client, Method::HEAD, &s.url("/q/x"), None).await;
    assert_eq!(head.status, 405, "{head:?}");
    assert_eq!(head.content_type(), HTML);
    assert_eq!(head.body, "");

    // Numeric-looking values come back as numbers in a hard GET.
    let cases = [
        ("007", "7"),
        ("-1.50", "-1.5"),
        ("1.5e3", "1500.0"),
        ("1e5", "\"1e5\""),
        ("caf%C3%A9 </x>", r#""caf\u00e9 <\/x>""#),
        ("%20%20spaced%20%20", "\"spaced\""),
    ];
    for (n, (posted, shown)) in cases.iter().enumerate() {
        let key = format!("nq:{}", n + 1);
        form(&s, "/q/nq", &format!("value={posted}")).await.assert(
            200,
            HTML,
            &format!("{key}\r\n"),
        );
        get(&s, "/q/nq")
            .await
            .assert(200, HTML, &hard_get(&key, shown));
    }

    // /q/a%2Bb+c is queue "a+b c".
    form(&s, "/q/a%2Bb+c", "value=x")
        .await
        .assert(200, HTML, "a+b c:1\r\n");
    get(&s, "/q/a%2Bb%20c")
        .await
        .assert(200, HTML, &hard_get("a+b c:1", "\"x\""));
}
