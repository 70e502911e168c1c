//! Stalled and surplus clients never hold the server: header, body and idle timeouts
//! close them, the connection limit refuses the surplus with a 503 and takes them back
//! when they leave, and a graceful stop still ends at once with clients hanging on.
//!
//! Stalled clients are raw TCP sockets; the normal client is reqwest.

mod common;

use std::time::{Duration, Instant};

use common::{eventually, read_until_closed, TestServer};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// How many stalled connections of each kind a test opens.
const STALLED: usize = 200;
/// Generous bound for "closed after the timeout" when the timeouts are 0.5 s.
const CLOSE_WITHIN: Duration = Duration::from_secs(10);
const SMALL_TIMEOUTS: &[&str] = &[
    "--header-timeout-ms",
    "500",
    "--body-timeout-ms",
    "500",
    "--idle-timeout-ms",
    "500",
];

/// A request whose head never ends.
const PARTIAL_HEAD: &[u8] =
    b"POST /v1/queues/stalled/messages HTTP/1.1\r\nHost: godwit\r\nContent-Le";
/// A complete head announcing 100 bytes of body, and 10 of them.
const PARTIAL_BODY: &[u8] =
    b"POST /v1/queues/stalled/messages HTTP/1.1\r\nHost: godwit\r\nContent-Length: 100\r\n\r\n0123456789";
const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: godwit\r\n\r\n";

async fn open_stalled(s: &TestServer, n: usize, sent: &[u8]) -> Vec<TcpStream> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let mut c = s.connect().await;
        c.write_all(sent).await.expect("send the stalled prefix");
        conns.push(c);
    }
    conns
}

/// Reads one response with a `content-length` body; returns its head and body.
async fn read_response(c: &mut TcpStream) -> (String, Vec<u8>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().expect("content-length"))
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                return (head, got[end + 4..end + 4 + len].to_vec());
            }
        }
        let n = tokio::time::timeout(CLOSE_WITHIN, c.read(&mut buf))
            .await
            .expect("a response in time")
            .expect("read a response");
        assert!(n > 0, "closed mid-response after {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
}

/// Splits a raw reply into its lower-cased head and its body.
fn split_reply(raw: &[u8]) -> (String, Vec<u8>) {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete head in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    (head, raw[end + 4..].to_vec())
}

#[tokio::test]
async fn stalled_clients_do_not_stop_a_normal_client() {
    let s = TestServer::start(&[]).await;
    let heads = open_stalled(&s, STALLED, PARTIAL_HEAD).await;
    let bodies = open_stalled(&s, STALLED, PARTIAL_BODY).await;
    for i in 0..20 {
        s.push("normal", &format!("m{i}")).await;
    }
    let got = s.drain("normal", 100).await;
    assert_eq!(
        got.len(),
        20,
        "every push taken with stalled clients around"
    );
    s.assert_still_serving().await;
    drop((heads, bodies));
}

#[tokio::test]
async fn stalled_connections_are_closed_after_their_timeouts() {
    let s = TestServer::start(SMALL_TIMEOUTS).await;
    let mut heads = open_stalled(&s, STALLED, PARTIAL_HEAD).await;
    let mut bodies = open_stalled(&s, STALLED, PARTIAL_BODY).await;
    let mut silent = s.connect().await;
    let mut idle = s.connect().await;
    // Keep-alive works: two requests on one connection, then it idles.
    for _ in 0..2 {
        idle.write_all(HEALTHZ).await.unwrap();
        let (head, _) = read_response(&mut idle).await;
        assert!(head.starts_with("http/1.1 200"), "{head}");
    }
    // A long-poll is in flight, not idle: it outlives the idle timeout and is answered.
    let poll = s
        .post("/v1/queues/quiet/take?wait_ms=1500")
        .await
        .messages();
    assert!(poll.is_empty());

    for (i, c) in heads.iter_mut().enumerate() {
        let reply = read_until_closed(c, CLOSE_WITHIN).await;
        assert!(reply.is_some(), "stalled head {i} still open");
    }
    for (i, c) in bodies.iter_mut().enumerate() {
        let raw = read_until_closed(c, CLOSE_WITHIN)
            .await
            .unwrap_or_else(|| panic!("stalled body {i} still open"));
        let (head, body) = split_reply(&raw);
        assert!(head.starts_with("http/1.1 408"), "stalled body {i}: {head}");
        assert!(head.contains("\r\nconnection: close"), "{head}");
        let json: Value = serde_json::from_slice(&body).expect("408 body is JSON");
        assert_eq!(json["error"]["code"], "request_timeout", "{json}");
        assert!(json["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    let reply = read_until_closed(&mut silent, CLOSE_WITHIN).await;
    assert_eq!(
        reply.as_deref(),
        Some(&b""[..]),
        "a silent connection is closed"
    );
    let reply = read_until_closed(&mut idle, CLOSE_WITHIN).await;
    assert_eq!(
        reply.as_deref(),
        Some(&b""[..]),
        "an idle keep-alive connection is closed"
    );
    s.assert_still_serving().await;
}

/// Opens a connection that holds a permit: it got a 200 and stays open (keep-alive).
async fn admitted(s: &TestServer) -> TcpStream {
    eventually(CLOSE_WITHIN, "a connection slot", || async {
        let mut c = s.connect().await;
        c.write_all(HEALTHZ).await.ok()?;
        let (head, _) = read_response(&mut c).await;
        head.starts_with("http/1.1 200").then_some(c)
    })
    .await
}

#[tokio::test]
async fn connections_over_the_limit_get_a_503_and_permits_come_back() {
    let s = TestServer::start(&["--max-connections", "5"]).await;
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(admitted(&s).await);
    }

    let mut sixth = s.connect().await;
    let _ = sixth.write_all(HEALTHZ).await;
    let raw = read_until_closed(&mut sixth, CLOSE_WITHIN)
        .await
        .expect("the refused connection is closed");
    let (head, body) = split_reply(&raw);
    assert!(
        head.starts_with("http/1.1 503 service unavailable"),
        "{head}"
    );
    for header in [
        "retry-after: 1",
        "connection: close",
        "content-type: application/json",
    ] {
        assert!(
            head.contains(&format!("\r\n{header}")),
            "no {header}: {head}"
        );
    }
    let json: Value = serde_json::from_slice(&body).expect("503 body is JSON");
    assert_eq!(json["error"]["code"], "too_many_connections", "{json}");
    assert!(json["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));

    drop(held);
    let mut again = Vec::new();
    for _ in 0..5 {
        again.push(admitted(&s).await);
    }
    drop(again);
    let metrics = eventually(CLOSE_WITHIN, "metrics with a slot free", || async {
        let mut c = s.connect().await;
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: godwit\r\n\r\n")
            .await
            .ok()?;
        let (head, body) = read_response(&mut c).await;
        head.starts_with("http/1.1 200")
            .then(|| String::from_utf8_lossy(&body).into_owned())
    })
    .await;
    let refused = metrics
        .lines()
        .find(|l| l.starts_with("godwit_connections_refused_total"))
        .unwrap_or_else(|| panic!("no refusal counter in\n{metrics}"));
    let count: f64 = refused.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 1.0, "{refused}");
    assert!(metrics.contains("godwit_connections_open"), "{metrics}");
}

#[tokio::test]
async fn sigterm_with_a_long_poll_and_stalled_clients_exits_zero_quickly() {
    let mut s = TestServer::start(&[]).await;
    let heads = open_stalled(&s, 20, PARTIAL_HEAD).await;
    let mut idle = Vec::new();
    for _ in 0..20 {
        let mut c = s.connect().await;
        c.write_all(HEALTHZ).await.unwrap();
        read_response(&mut c).await;
        idle.push(c);
    }
    let client = s.client.clone();
    let url = s.url("/v1/queues/idle/take?wait_ms=30000");
    let poll = tokio::spawn(async move { client.post(url).send().await.map(|r| r.status()) });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = Instant::now();
    let status = s.terminate().await;
    let took = started.elapsed();
    assert!(status.success(), "{status}");
    // Far below the 10 s drain bound: nothing waited for the stalled or idle clients.
    assert!(took < Duration::from_secs(8), "exit took {took:?}");
    let polled = poll.await.expect("poll task");
    assert!(
        polled.as_ref().is_ok_and(|st| st.is_success()),
        "the long-poll was answered: {polled:?}"
    );
    drop((heads, idle));
}
