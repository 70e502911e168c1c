//! queue_service's dialect end to end (`shared/specs/queue-service.md`): the original's
//! unit and HTTP tests, its reader-writer copy, every keep/fix item of section 6, the
//! bounded waits, the optional capacity, bad input and durability. Every scenario runs
//! on both mounts: under `/queue-service` on the main port and at the root of
//! `--queue-service-listen`.

mod common;

use std::time::Duration;

use common::{free_port, TestServer};
use reqwest::header::CONTENT_TYPE;
use reqwest::{Client, Method};
use serde_json::{json, Value};

const PAGE_400: &str = "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 3.2 Final//EN\">\n<title>400 Bad Request</title>\n<h1>Bad Request</h1>\n<p>The browser (or proxy) sent a request that this server could not understand.</p>\n";
const PAGE_404: &str = "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 3.2 Final//EN\">\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n<p>The requested URL was not found on the server.  If you entered the URL manually please check your spelling and try again.</p>\n";
const PAGE_405: &str = "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 3.2 Final//EN\">\n<title>405 Method Not Allowed</title>\n<h1>Method Not Allowed</h1>\n<p>The method is not allowed for the requested URL.</p>\n";
const PAGE_413: &str = "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 3.2 Final//EN\">\n<title>413 Request Entity Too Large</title>\n<h1>Request Entity Too Large</h1>\n<p>The data value transmitted exceeds the capacity limit.</p>\n";
const PAGE_503: &str = "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 3.2 Final//EN\">\n<title>503 Service Unavailable</title>\n<h1>Service Unavailable</h1>\n<p>The server is temporarily unable to service your request due to maintenance downtime or capacity problems.  Please try again later.</p>\n";

const ALLOW: &str = "HEAD, POST, OPTIONS, GET";

/// A server with queue_service's own listener, and the two bases `/messages` hangs off.
struct Service {
    server: TestServer,
    own_port: u16,
    client: Client,
}

impl Service {
    async fn start(extra: &[&str]) -> Service {
        let own_port = free_port();
        let listen = format!("127.0.0.1:{own_port}");
        let mut args = vec!["--queue-service-listen", listen.as_str()];
        args.extend_from_slice(extra);
        let server = TestServer::start(&args).await;
        Service {
            server,
            own_port,
            client: client(Duration::from_secs(60)),
        }
    }

    /// The prefix on the main port, then the root of the dialect's listener.
    fn bases(&self) -> [String; 2] {
        [
            self.server.url("/queue-service"),
            format!("http://127.0.0.1:{}", self.own_port),
        ]
    }

    async fn restart(&mut self) {
        self.server.restart().await;
        self.client = client(Duration::from_secs(60));
    }
}

fn client(timeout: Duration) -> Client {
    Client::builder()
        .timeout(timeout)
        .pool_max_idle_per_host(0)
        .build()
        .expect("client")
}

/// A reply: status, headers that matter, body.
#[derive(Debug)]
struct Got {
    status: u16,
    content_type: String,
    allow: String,
    retry_after: String,
    content_length: Option<u64>,
    body: String,
}

impl Got {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("reply is not JSON ({e}): {self:?}"))
    }

    #[track_caller]
    fn assert_page(&self, status: u16, page: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.content_type, "text/html", "{self:?}");
        assert_eq!(self.body, page, "{self:?}");
    }
}

async fn send(req: reqwest::RequestBuilder) -> Got {
    let resp = req.send().await.expect("request");
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap_or("").to_string())
            .unwrap_or_default()
    };
    let (content_type, allow, retry_after) = (
        header("content-type"),
        header("allow"),
        header("retry-after"),
    );
    let content_length = resp
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let status = resp.status().as_u16();
    let body = resp.text().await.expect("body");
    Got {
        status,
        content_type,
        allow,
        retry_after,
        content_length,
        body,
    }
}

async fn post_raw(c: &Client, base: &str, content_type: Option<&str>, body: Vec<u8>) -> Got {
    let mut req = c.post(format!("{base}/messages")).body(body);
    if let Some(ct) = content_type {
        req = req.header(CONTENT_TYPE, ct);
    }
    send(req).await
}

async fn post(c: &Client, base: &str, body: &str) -> Got {
    post_raw(c, base, Some("application/json"), body.as_bytes().to_vec()).await
}

async fn post_text(c: &Client, base: &str, text: &str) -> Got {
    post(c, base, &json!({ "text": text }).to_string()).await
}

async fn get(c: &Client, base: &str) -> Got {
    send(c.get(format!("{base}/messages"))).await
}

/// Reads until a 204, returning every `text` read.
async fn drain(c: &Client, base: &str) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let got = get(c, base).await;
        if got.status == 204 {
            return out;
        }
        assert_eq!(got.status, 200, "{got:?}");
        out.push(got.json()["text"].clone());
    }
}

/// The short wait most scenarios run with, so an empty read ends quickly.
const SHORT_WAIT: &[&str] = &["--queue-service-wait-ms", "300"];

#[tokio::test]
async fn the_originals_unit_and_integration_tests_pass_on_both_mounts() {
    let svc = Service::start(SHORT_WAIT).await;
    let c = &svc.client;
    for base in &svc.bases() {
        // test_message_queue.py: write two, the first read returns the first; two
        // reads return both in order.
        assert_eq!(post_text(c, base, "one").await.status, 200);
        assert_eq!(post_text(c, base, "two").await.status, 200);
        assert_eq!(get(c, base).await.json(), json!({"text": "one"}));
        assert_eq!(get(c, base).await.json(), json!({"text": "two"}));

        // test_integration.py 01..04.
        let w = post_text(c, base, "new message").await;
        assert_eq!(w.status, 200, "{w:?}");
        let r = get(c, base).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json(), json!({"text": "new message"}));
        assert_eq!(post_text(c, base, "first").await.status, 200);
        assert_eq!(post_text(c, base, "second").await.status, 200);
        assert_eq!(get(c, base).await.json()["text"], "first");
        assert_eq!(get(c, base).await.json()["text"], "second");
        post(c, base, r#"{"data":"new message"}"#)
            .await
            .assert_page(400, PAGE_400);
        post(c, base, r#""invalid message""#)
            .await
            .assert_page(400, PAGE_400);
        assert!(drain(c, base).await.is_empty(), "nothing left over");

        // Capacity is off by default: more than the original's 10 are taken.
        for i in 0..12 {
            assert_eq!(post_text(c, base, &format!("m{i}")).await.status, 200);
        }
        let all = drain(c, base).await;
        let want: Vec<Value> = (0..12).map(|i| json!(format!("m{i}"))).collect();
        assert_eq!(all, want);
    }
    // The queue is an ordinary core queue, visible in the native API.
    let stats = svc.server.stats("queue_service").await;
    assert_eq!(stats["ready"].as_u64().unwrap_or(0), 0, "{stats}");
}

#[tokio::test]
async fn echo_and_read_follow_flask_jsonify() {
    let svc = Service::start(SHORT_WAIT).await;
    let c = &svc.client;
    for base in &svc.bases() {
        let w = post(c, base, r#"{"text":"hello","zeta":1,"alpha":[1,2]}"#).await;
        assert_eq!(w.status, 200);
        assert_eq!(w.content_type, "application/json");
        assert_eq!(w.body, "{\"alpha\":[1,2],\"text\":\"hello\",\"zeta\":1}\n");
        let r = get(c, base).await;
        assert_eq!(r.content_type, "application/json");
        assert_eq!(r.body, "{\"text\":\"hello\"}\n");

        // Any JSON value is a text; it comes back as posted, re-serialised.
        for (posted, read) in [
            (r#""""#, r#""""#),
            ("42", "42"),
            ("null", "null"),
            ("true", "true"),
            (
                r#"{"b":{"y":2,"x":1},"a":[]}"#,
                r#"{"a":[],"b":{"x":1,"y":2}}"#,
            ),
            ("[1, 2.50, -0.0, 1e5]", "[1,2.5,-0.0,100000.0]"),
            (
                "123456789012345678901234567890",
                "123456789012345678901234567890",
            ),
            ("1e16", "1e+16"),
            ("0.00001", "1e-05"),
            (
                r#""é😀\u007f/\"\\\n""#,
                r#""\u00e9\ud83d\ude00\u007f/\"\\\n""#,
            ),
        ] {
            let body = format!("{{\"text\":{posted}}}");
            let w = post(c, base, &body).await;
            assert_eq!(w.status, 200, "{posted}: {w:?}");
            assert_eq!(w.body, format!("{{\"text\":{read}}}\n"), "echo of {posted}");
            let r = get(c, base).await;
            assert_eq!(r.body, format!("{{\"text\":{read}}}\n"), "read of {posted}");
        }
        // A repeated key keeps its last value.
        let w = post(c, base, r#"{"text":"a","text":"b"}"#).await;
        assert_eq!(w.body, "{\"text\":\"b\"}\n");
        assert_eq!(get(c, base).await.body, "{\"text\":\"b\"}\n");

        // Media types: `+json` and parameters count; case does not matter.
        for ct in [
            "application/json; charset=utf-8",
            "APPLICATION/JSON",
            "application/vnd.godwit+json",
        ] {
            let w = post_raw(c, base, Some(ct), br#"{"text":"t"}"#.to_vec()).await;
            assert_eq!(w.status, 200, "{ct}: {w:?}");
            assert_eq!(get(c, base).await.json()["text"], "t");
        }
        // Encodings as Flask detects them (6.3 #2), whatever charset says.
        let text = r#"{"text":"ü"}"#;
        let utf16le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let mut bom16 = vec![0xfe, 0xff];
        bom16.extend(text.encode_utf16().flat_map(u16::to_be_bytes));
        let mut bom8 = vec![0xef, 0xbb, 0xbf];
        bom8.extend_from_slice(text.as_bytes());
        let utf32be: Vec<u8> = text
            .chars()
            .flat_map(|ch| (ch as u32).to_be_bytes())
            .collect();
        for body in [utf16le, bom16, bom8, utf32be] {
            let w = post_raw(c, base, Some("application/json; charset=latin-1"), body).await;
            assert_eq!(w.status, 200, "{w:?}");
            assert_eq!(w.body, "{\"text\":\"\\u00fc\"}\n");
            assert_eq!(get(c, base).await.json()["text"], "ü");
        }
        assert!(drain(c, base).await.is_empty());
    }
}

#[tokio::test]
async fn bad_input_gets_werkzeugs_pages_and_stores_nothing() {
    let svc = Service::start(&[
        "--queue-service-wait-ms",
        "300",
        "--max-message-bytes",
        "4096",
    ])
    .await;
    let c = &svc.client;
    for base in &svc.bases() {
        let good = br#"{"text":"x"}"#.to_vec();
        for ct in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("application/jsonx"),
        ] {
            post_raw(c, base, ct, good.clone())
                .await
                .assert_page(400, PAGE_400);
        }
        let form = c.post(format!("{base}/messages")).form(&[("text", "x")]);
        send(form).await.assert_page(400, PAGE_400);
        for body in [
            "",
            "{",
            "{\"text\":}",
            "null",
            "\"text\"",
            "[\"text\"]",
            "42",
            "true",
            "{}",
            "{\"data\":1}",
            "{\"text\":NaN}",
            "{\"text\":Infinity}",
            "{\"text\":-Infinity}",
            "{\"text\":1e400}",
            "{\"text\":1}x",
            "{'text':1}",
            "{\"text\":\"\\ud800\"}",
        ] {
            post(c, base, body).await.assert_page(400, PAGE_400);
        }
        post_raw(c, base, Some("application/json"), vec![0xff, 0xfe, 0x41])
            .await
            .assert_page(400, PAGE_400);
        let deep = "[".repeat(100_000);
        post(c, base, &format!("{{\"text\":{deep}"))
            .await
            .assert_page(413, PAGE_413);
        let deep = "[".repeat(1000) + &"]".repeat(1000);
        post(c, base, &format!("{{\"text\":{deep}}}"))
            .await
            .assert_page(400, PAGE_400);
        // Over --max-message-bytes: 413.
        let big = format!("{{\"text\":\"{}\"}}", "a".repeat(5000));
        post(c, base, &big).await.assert_page(413, PAGE_413);
        // Nothing was stored, and the server still serves.
        assert!(drain(c, base).await.is_empty());
        assert_eq!(post_text(c, base, "after").await.status, 200);
        assert_eq!(get(c, base).await.json()["text"], "after");
    }
}

#[tokio::test]
async fn other_methods_and_paths_answer_as_werkzeug_and_head_never_consumes() {
    let svc = Service::start(SHORT_WAIT).await;
    let c = &svc.client;
    for base in &svc.bases() {
        let o = send(c.request(Method::OPTIONS, format!("{base}/messages"))).await;
        assert_eq!(o.status, 200);
        assert_eq!(o.allow, ALLOW);
        assert_eq!(o.body, "");
        for m in [Method::PUT, Method::DELETE, Method::PATCH] {
            let got = send(c.request(m.clone(), format!("{base}/messages"))).await;
            got.assert_page(405, PAGE_405);
            assert_eq!(got.allow, ALLOW, "{m}");
        }
        for path in ["/messages/", "/", "/message", "/messages/1", "/v1/queues"] {
            send(c.get(format!("{base}{path}")))
                .await
                .assert_page(404, PAGE_404);
            send(c.post(format!("{base}{path}")).body("{}"))
                .await
                .assert_page(404, PAGE_404);
        }

        // HEAD on an empty queue: 204 at once (6.2 #4).
        let h = send(c.head(format!("{base}/messages"))).await;
        assert_eq!(h.status, 204, "{h:?}");
        // HEAD with a message waiting: GET's headers, nothing consumed.
        post_text(c, base, "kept").await;
        for _ in 0..3 {
            let h = send(c.head(format!("{base}/messages"))).await;
            assert_eq!(h.status, 200, "{h:?}");
            assert_eq!(h.content_type, "application/json");
            assert_eq!(h.content_length, Some("{\"text\":\"kept\"}\n".len() as u64));
            assert_eq!(h.body, "");
        }
        // Method names are case-insensitive (6.3 #1): `get` reads like GET.
        let lower = Method::from_bytes(b"get").unwrap();
        let r = send(c.request(lower, format!("{base}/messages"))).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.json(), json!({"text": "kept"}));
        let lower = Method::from_bytes(b"post").unwrap();
        let w = send(
            c.request(lower, format!("{base}/messages"))
                .header(CONTENT_TYPE, "application/json")
                .body(r#"{"text":"lower"}"#),
        )
        .await;
        assert_eq!(w.status, 200, "{w:?}");
        assert_eq!(get(c, base).await.json()["text"], "lower");
        assert!(drain(c, base).await.is_empty());
    }
}

#[tokio::test]
async fn a_read_waits_but_not_forever_and_a_reader_that_leaves_takes_nothing() {
    // The core's longest wait is shorter than queue_service's: the read waits in steps.
    let svc = Service::start(&["--queue-service-wait-ms", "3000", "--max-wait-ms", "500"]).await;
    let c = &svc.client;
    for base in &svc.bases() {
        // Bounded: an empty queue answers 204 with no body (6.2 #1).
        let r = get(c, base).await;
        assert_eq!(r.status, 204, "{r:?}");
        assert_eq!(r.body, "");

        // A waiting read gets a message posted while it waits, past the core's step.
        let reader = {
            let (c, base) = (c.clone(), base.clone());
            tokio::spawn(async move { get(&c, &base).await })
        };
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert_eq!(post_text(c, base, "late").await.status, 200);
        let r = reader.await.unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.json()["text"], "late");

        // A reader that gives up while waiting swallows nothing (6.2 #2).
        let impatient = client(Duration::from_millis(300));
        let gone = impatient.get(format!("{base}/messages")).send().await;
        assert!(
            gone.is_err(),
            "the impatient read should time out: {gone:?}"
        );
        // As for a writer: the server learns of the close when the FIN reaches it.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(post_text(c, base, "next").await.status, 200);
        let r = get(c, base).await;
        assert_eq!(r.status, 200, "the next message was swallowed: {r:?}");
        assert_eq!(r.json()["text"], "next");
        assert!(drain(c, base).await.is_empty());
    }
}

#[tokio::test]
async fn with_capacity_writers_block_until_room_and_are_refused_after_the_wait() {
    let svc = Service::start(&[
        "--queue-service-capacity",
        "10",
        "--queue-service-wait-ms",
        "3000",
    ])
    .await;
    let c = &svc.client;
    let stats = svc.server.stats("queue_service").await;
    assert_eq!(stats["settings"]["max_length"], 10, "{stats}");
    assert_eq!(stats["settings"]["overflow"], "block", "{stats}");
    for base in &svc.bases() {
        for i in 0..10 {
            assert_eq!(post_text(c, base, &format!("m{i}")).await.status, 200);
        }
        // The 11th waits for room; a read makes it; its echo follows the write.
        let writer = {
            let (c, base) = (c.clone(), base.clone());
            tokio::spawn(async move { post_text(&c, &base, "m10").await })
        };
        // Give it time to be answered if it did not block (a slow machine can only
        // hide a failure here, never cause one).
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!writer.is_finished(), "the 11th POST did not block");
        assert_eq!(get(c, base).await.json()["text"], "m0");
        let w = writer.await.unwrap();
        assert_eq!(w.status, 200, "{w:?}");
        assert_eq!(w.body, "{\"text\":\"m10\"}\n");

        // Full again, and nobody reads: refused after the wait, with nothing stored.
        let refused = post_text(c, base, "refused").await;
        refused.assert_page(503, PAGE_503);
        assert_eq!(refused.retry_after, "1");

        // A writer that leaves while blocked stores nothing (6.2 #3).
        let impatient = client(Duration::from_millis(300));
        let gone = impatient
            .post(format!("{base}/messages"))
            .header(CONTENT_TYPE, "application/json")
            .body(r#"{"text":"left"}"#)
            .send()
            .await;
        assert!(gone.is_err(), "the blocked POST should time out: {gone:?}");
        // The server learns of the close only when the FIN reaches it; room made
        // before that would be a race no server can win, so give the close a moment.
        tokio::time::sleep(Duration::from_millis(500)).await;

        let all = drain(c, base).await;
        let want: Vec<Value> = (1..=10).map(|i| json!(format!("m{i}"))).collect();
        assert_eq!(all, want, "only acknowledged writes are queued, in order");

        // Blocked writers are served in arrival order (6.3 #3).
        for i in 0..10 {
            assert_eq!(post_text(c, base, &format!("f{i}")).await.status, 200);
        }
        let mut writers = Vec::new();
        for w in ["w1", "w2", "w3"] {
            let (c, base) = (c.clone(), base.clone());
            writers.push(tokio::spawn(async move { post_text(&c, &base, w).await }));
            // Let each arrive (and block) before the next.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for _ in 0..3 {
            assert_eq!(get(c, base).await.status, 200);
        }
        for w in writers {
            assert_eq!(w.await.unwrap().status, 200);
        }
        let all = drain(c, base).await;
        let mut want: Vec<Value> = (3..10).map(|i| json!(format!("f{i}"))).collect();
        want.extend([json!("w1"), json!("w2"), json!("w3")]);
        assert_eq!(all, want, "blocked writers out of arrival order");
    }
}

/// The reader-writer program: a producer POSTs every line (newline kept) and then
/// `exit`; a consumer GETs until `exit`, retrying on a reply that is not JSON (a 204),
/// appending each text to the output.
async fn copy_through(c: &Client, base: &str, input: &str) -> String {
    let lines: Vec<String> = input.split_inclusive('\n').map(str::to_string).collect();
    let producer = {
        let (c, base) = (c.clone(), base.to_string());
        tokio::spawn(async move {
            for (i, line) in lines.iter().enumerate() {
                let w = post_text(&c, &base, line).await;
                assert_eq!(w.status, 200, "line {i}: {w:?}");
            }
            assert_eq!(post_text(&c, &base, "exit").await.status, 200);
        })
    };
    let mut output = String::new();
    loop {
        let r = get(c, base).await;
        let Ok(v) = serde_json::from_str::<Value>(&r.body) else {
            continue;
        };
        let text = v["text"].as_str().expect("a text").to_string();
        if text == "exit" {
            break;
        }
        output.push_str(&text);
    }
    producer.await.unwrap();
    output
}

#[tokio::test]
async fn the_reader_writer_copy_is_identical() {
    let svc = Service::start(&[
        "--queue-service-wait-ms",
        "200",
        "--queue-service-capacity",
        "10",
    ])
    .await;
    let mut input = String::new();
    for i in 0..300 {
        match i % 7 {
            0 => input.push('\n'),
            1 => input.push_str("exit\n"),
            2 => input.push_str("ünïcødé ☃ 😀 \"quoted\" \\ back\tslash\n"),
            3 => input.push_str(&"long ".repeat(200)),
            _ => input.push_str(&format!("line {i}\r\n")),
        }
        if i % 7 == 3 {
            input.push('\n');
        }
    }
    input.push_str("last line without a newline");
    let dir = tempfile::tempdir().unwrap();
    let in_path = dir.path().join("input.txt");
    std::fs::write(&in_path, &input).unwrap();
    for (n, base) in svc.bases().iter().enumerate() {
        let text = std::fs::read_to_string(&in_path).unwrap();
        let output = copy_through(&svc.client, base, &text).await;
        let out_path = dir.path().join(format!("output-{n}.txt"));
        std::fs::write(&out_path, &output).unwrap();
        assert_eq!(
            std::fs::read(&out_path).unwrap(),
            std::fs::read(&in_path).unwrap(),
            "the copy through {base} differs"
        );
    }
}

#[tokio::test]
async fn posted_messages_survive_kill_9_and_restart() {
    let mut svc = Service::start(SHORT_WAIT).await;
    let bases = svc.bases();
    let mut want = Vec::new();
    for (n, base) in bases.iter().enumerate() {
        for i in 0..20 {
            let text = format!("durable {n}-{i}");
            assert_eq!(post_text(&svc.client, base, &text).await.status, 200);
            want.push(json!(text));
        }
    }
    // One read confirmed before the crash is gone for good.
    assert_eq!(get(&svc.client, &bases[0]).await.json()["text"], want[0]);
    want.remove(0);
    svc.server.kill9();
    svc.restart().await;
    let bases = svc.bases();
    // Half through each mount, in order.
    let mut got = Vec::new();
    for (n, base) in bases.iter().enumerate() {
        for _ in 0..(want.len() / 2 + n) {
            let r = get(&svc.client, base).await;
            if r.status == 204 {
                break;
            }
            got.push(r.json()["text"].clone());
        }
    }
    got.extend(drain(&svc.client, &bases[1]).await);
    assert_eq!(got, want);
}

/// A message whose record went bad on disk after it was accepted is skipped (the core
/// logs and counts it) and the read answers the next one, on both mounts.
#[tokio::test]
async fn a_record_unreadable_on_disk_is_skipped_by_the_read() {
    let svc = Service::start(&["--fsync", "always", "--queue-service-wait-ms", "300"]).await;
    let c = &svc.client;
    for v in [
        "first-bad-aaaa",
        "second-good",
        "third-bad-bbbb",
        "fourth-good",
    ] {
        assert_eq!(post_text(c, &svc.bases()[0], v).await.status, 200);
    }
    common::spoil_bodies(
        &svc.server.data_dir(),
        &["first-bad-aaaa", "third-bad-bbbb"],
    );
    for (base, want) in svc.bases().iter().zip(["second-good", "fourth-good"]) {
        let got = get(c, base).await;
        assert_eq!(got.status, 200, "{got:?}");
        assert_eq!(got.json()["text"], want);
    }
    assert!(drain(c, &svc.bases()[1]).await.is_empty());
    svc.server.assert_still_serving().await;
}
