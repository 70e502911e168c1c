//! Clients that go away, then `kill -9`: under concurrent load with `--fsync always`,
//! consumers drop their connections at random moments (before the reply, part-way
//! through it, after the JSON but before the terminating chunk), long-polls are
//! cancelled while waiting, and leases are acked or abandoned. Then the server is
//! killed, restarted and drained, and every message is accounted for.
//!
//! Consumers talk raw HTTP/1.1 over `TcpStream` so the test decides when a connection
//! ends. The harness records every byte that reached a client's socket, even ones the
//! "consumer" in it chose not to read, so a message the server handed to a connection
//! is never invisible to the accounting:
//!
//! - a *half-close* (`shutdown(Write)`) is what the server sees as the client going
//!   away (hyper closes on EOF); the harness goes on reading until the server closes,
//!   so it sees everything the server wrote;
//! - an *abort* (`SO_LINGER 0`, a reset) is used only where nothing but the terminating
//!   chunk can still be in flight (after the whole JSON), or on a queue nothing is
//!   pushed to (cancelled long-polls), so no message can vanish unseen.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{bodies, TestServer};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const QUEUE: &str = "cc";
/// A queue nothing is pushed to: long-polls on it are cancelled by resets.
const IDLE: &str = "cc-idle";
/// Producers of small bodies, plus one of large ones.
const PRODUCERS: usize = 3;
/// Pause between pushes of one small producer (so consumers keep up and wait).
const SMALL_EVERY: Duration = Duration::from_millis(2);
/// A large body is larger than hyper's write buffer (about 400 KiB), so hyper asks the
/// reply body for its next frame (the confirm) only once the client read most of it.
const BIG_BYTES: usize = 900 * 1024;
const BIG_EVERY: Duration = Duration::from_millis(30);
/// Rounds of three large messages taken at once and reset mid-body, after the load.
const RESETS_AT_END: usize = 2;
/// Their queue, so the test knows what a reply it did not read held.
const END_QUEUE: &str = "cc-end";
const TAKERS: usize = 3;
const LEASERS: usize = 2;
/// How long consumers run alongside the producers.
const LOAD: Duration = Duration::from_secs(4);
/// After consumers stop: time for the server to notice closed connections and for
/// every started confirm to become durable, before the counter is read.
const SETTLE: Duration = Duration::from_millis(500);
/// How long producers go on alone after the counter is read, before the kill.
const PUSH_ONLY: Duration = Duration::from_millis(300);
/// Bound on any single exchange with the server.
const EXCHANGE_LIMIT: Duration = Duration::from_secs(10);

/// A tiny deterministic PRNG (xorshift64*), seeded per worker.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// A global order of client-side events, to tell "this request started after that
/// removal was durable" (a request that started later cannot have reserved it).
static CLOCK: AtomicU64 = AtomicU64::new(0);

fn tick() -> u64 {
    CLOCK.fetch_add(1, Ordering::SeqCst)
}

/// When a raw exchange ends, from the client's side.
#[derive(Debug, Clone, Copy)]
enum Plan {
    /// Read the whole reply.
    Complete,
    /// Half-close after this long (before or while the reply arrives: with `wait_ms`,
    /// a long-poll cancelled while waiting).
    HalfCloseAfter(Duration),
    /// Read the head and this many bytes of the body, then half-close.
    HalfCloseAfterBodyBytes(usize),
    /// Read the whole JSON chunk, then reset the connection before the terminating
    /// chunk (unless it already arrived).
    AbortAfterJson,
    /// Reset the connection after this long (only on a queue nothing is pushed to).
    AbortAfter(Duration),
    /// Read the head and this many bytes of the body, then reset: with `max=1` and a
    /// body whose id comes first, the message is identified by then, and a large one
    /// cannot have been written in full (the client does not read it), so the server
    /// drops the delivery after handing over its JSON.
    AbortAfterBodyBytes(usize),
}

/// What reached the client's socket in one exchange.
#[derive(Debug, Default)]
struct Observed {
    /// `tick()` before the request was written.
    started: u64,
    /// `tick()` after the last byte was read.
    ended: u64,
    /// The HTTP status, 0 if no head arrived.
    status: u16,
    /// Whether the whole reply arrived (the chunked terminator, or all of a
    /// content-length body): for a take, the removal is then durable.
    complete: bool,
    /// The reply body so far (chunk framing removed).
    body: Vec<u8>,
}

impl Observed {
    /// The complete reply's JSON.
    fn json(&self) -> Option<Value> {
        self.complete
            .then(|| serde_json::from_slice(&self.body).ok())
            .flatten()
    }

    /// Every message body fully visible in what arrived (all of them when complete).
    fn bodies(&self) -> Vec<String> {
        if let Some(v) = self.json() {
            return v["messages"]
                .as_array()
                .map(|m| bodies(m).iter().map(|b| message_id(b)).collect())
                .unwrap_or_default();
        }
        // A prefix of `{"messages":[{"id":1,"body":"p0-1",...},...]}`: our bodies are
        // plain ASCII without escapes, so a message is identified once its body's
        // closing quote, or the `|` after a large body's id, has arrived.
        let text = String::from_utf8_lossy(&self.body);
        let mut out = Vec::new();
        let mut rest = &text[..];
        while let Some(at) = rest.find("\"body\":\"") {
            rest = &rest[at + 8..];
            match rest.find(['"', '|']) {
                Some(end) => {
                    out.push(rest[..end].to_string());
                    rest = &rest[end..];
                }
                None => break,
            }
        }
        out
    }
}

/// Parses what arrived so far: `(status, body, complete)`.
fn parse_reply(raw: &[u8]) -> (u16, Vec<u8>, bool) {
    let Some(head_end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return (0, Vec::new(), false);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let rest = &raw[head_end + 4..];
    let header = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
    };
    if header("transfer-encoding:").is_some_and(|v| v.contains("chunked")) {
        let mut body = Vec::new();
        let mut at = 0;
        loop {
            let Some(line_end) = rest[at..].windows(2).position(|w| w == b"\r\n") else {
                return (status, body, false);
            };
            let size_text = String::from_utf8_lossy(&rest[at..at + line_end]).into_owned();
            let size = usize::from_str_radix(size_text.trim(), 16).unwrap_or(0);
            let data = at + line_end + 2;
            if size == 0 {
                let complete = rest.len() >= data + 2 && &rest[data..data + 2] == b"\r\n";
                return (status, body, complete);
            }
            let end = (data + size).min(rest.len());
            body.extend_from_slice(&rest[data..end]);
            if rest.len() < data + size + 2 {
                return (status, body, false);
            }
            at = data + size + 2;
        }
    }
    let len: usize = header("content-length:")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let body = rest[..rest.len().min(len)].to_vec();
    let complete = rest.len() >= len;
    (status, body, complete)
}

/// Whether `raw` holds the head and at least the first whole chunk (or whole body).
fn json_arrived(raw: &[u8]) -> bool {
    let (status, body, complete) = parse_reply(raw);
    complete || (status != 0 && !body.is_empty() && first_chunk_done(raw))
}

fn first_chunk_done(raw: &[u8]) -> bool {
    let Some(head_end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let rest = &raw[head_end + 4..];
    let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") else {
        return false;
    };
    let size =
        usize::from_str_radix(String::from_utf8_lossy(&rest[..line_end]).trim(), 16).unwrap_or(0);
    rest.len() >= line_end + 2 + size + 2
}

/// Reads until EOF or reset, appending to `raw`; bounded by `EXCHANGE_LIMIT`.
async fn read_to_end(stream: &mut TcpStream, raw: &mut Vec<u8>) {
    let mut buf = [0u8; 8192];
    let _ = tokio::time::timeout(EXCHANGE_LIMIT, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
}

/// Reads until `done(raw)` or EOF; false on EOF or timeout.
async fn read_until(
    stream: &mut TcpStream,
    raw: &mut Vec<u8>,
    done: impl Fn(&[u8]) -> bool,
) -> bool {
    let mut buf = [0u8; 8192];
    tokio::time::timeout(EXCHANGE_LIMIT, async {
        while !done(raw) {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
        true
    })
    .await
    .unwrap_or(false)
}

/// One request on a fresh connection (`Connection: close`), ended as `plan` says.
async fn exchange(port: u16, method: &str, path: &str, body: &[u8], plan: Plan) -> Observed {
    let mut obs = Observed {
        started: tick(),
        ..Observed::default()
    };
    let Ok(mut stream) = connect(port, matches!(plan, Plan::AbortAfterBodyBytes(_))).await else {
        obs.ended = tick();
        return obs;
    };
    let _ = stream.set_nodelay(true);
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    if stream.write_all(&req).await.is_err() {
        obs.ended = tick();
        return obs;
    }
    let mut raw = Vec::new();
    match plan {
        Plan::Complete => read_to_end(&mut stream, &mut raw).await,
        Plan::HalfCloseAfter(d) => {
            tokio::time::sleep(d).await;
            let _ = stream.shutdown().await;
            read_to_end(&mut stream, &mut raw).await;
        }
        Plan::HalfCloseAfterBodyBytes(n) => {
            read_until(&mut stream, &mut raw, |r| {
                r.windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .is_some_and(|h| r.len() >= h + 4 + n)
            })
            .await;
            let _ = stream.shutdown().await;
            read_to_end(&mut stream, &mut raw).await;
        }
        Plan::AbortAfterJson => {
            read_until(&mut stream, &mut raw, json_arrived).await;
            abort(stream);
        }
        Plan::AbortAfterBodyBytes(n) => {
            read_until(&mut stream, &mut raw, |r| {
                r.windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .is_some_and(|h| r.len() >= h + 4 + n)
            })
            .await;
            abort(stream);
        }
        Plan::AbortAfter(d) => {
            let mut buf = [0u8; 8192];
            let _ = tokio::time::timeout(d, async {
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => raw.extend_from_slice(&buf[..n]),
                    }
                }
            })
            .await;
            abort(stream);
        }
    }
    obs.ended = tick();
    let (status, body, complete) = parse_reply(&raw);
    obs.status = status;
    obs.body = body;
    obs.complete = complete;
    obs
}

/// Connects; a `small_window` socket has a tiny receive buffer (set before connecting,
/// so the kernel does not grow it), so a client that stops reading stops the server's
/// writes soon after.
async fn connect(port: u16, small_window: bool) -> std::io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    if small_window {
        socket.set_recv_buffer_size(8 * 1024)?;
    }
    socket
        .connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .await
}

/// Closes with a reset (`SO_LINGER 0`), as a crashed or killed client does.
fn abort(stream: TcpStream) {
    if let Ok(std) = stream.into_std() {
        let _ = socket_linger_zero(&std);
    }
}

fn socket_linger_zero(stream: &std::net::TcpStream) -> std::io::Result<()> {
    use std::os::fd::AsRawFd as _;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a socket we own, with a correctly sized `linger` value.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The message a rendered body belongs to: large bodies are `ID|padding`, so the id is
/// visible in the first bytes of a reply that is cut short.
fn message_id(body: &str) -> String {
    body.split('|').next().unwrap_or(body).to_string()
}

/// One time a client saw a message body.
#[derive(Debug, Clone)]
struct Sighting {
    body: String,
    kind: Kind,
    /// When the request that delivered it was sent, and when its reply ended.
    started: u64,
    ended: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// In a complete take reply: the removal was durable before the reply ended.
    TakeComplete,
    /// In a take reply that did not end: removed (confirm started) or returned.
    TakeIncomplete,
    /// In a lease reply (complete or not) whose receipt was never acked successfully:
    /// it comes back by visibility timeout (or at the restart), once.
    LeaseNotAcked,
    /// In a complete lease reply, then acked (`{"acked": 1}`): removed durably.
    LeaseAcked,
}

/// Everything the workers saw.
#[derive(Default)]
struct Ledger {
    sightings: Vec<Sighting>,
    /// Acked lease receipts' bodies with the tick after the ack reply.
    acked_at: Vec<(String, u64)>,
    /// Requests that failed in an unexpected way while the server was up.
    unexpected: Vec<String>,
    /// How many exchanges ended each way, for the summary.
    counts: BTreeMap<&'static str, usize>,
}

type Shared = Arc<Mutex<Ledger>>;

fn record(ledger: &Shared, obs: &Observed, kind: Kind) {
    let mut l = ledger.lock().expect("ledger");
    for body in obs.bodies() {
        l.sightings.push(Sighting {
            body,
            kind,
            started: obs.started,
            ended: obs.ended,
        });
    }
}

fn count(ledger: &Shared, what: &'static str) {
    *ledger
        .lock()
        .expect("ledger")
        .counts
        .entry(what)
        .or_default() += 1;
}

/// Pushes numbered bodies until the server dies; returns (attempted, acknowledged).
/// Large bodies go first (priority 9), so the takers that reset mid-body meet them.
async fn producer(url: String, tag: usize, big: bool) -> (Vec<String>, Vec<String>) {
    let url = if big {
        format!("{url}?priority=9")
    } else {
        url
    };
    let client = reqwest::Client::builder()
        .timeout(EXCHANGE_LIMIT)
        .build()
        .expect("client");
    let (mut attempted, mut acked) = (Vec::new(), Vec::new());
    let started = Instant::now();
    for n in 0.. {
        if started.elapsed() > Duration::from_secs(30) {
            break;
        }
        let id = format!("p{tag}-{n}");
        attempted.push(id.clone());
        let body = if big {
            tokio::time::sleep(BIG_EVERY).await;
            format!("{id}|{}", "x".repeat(BIG_BYTES))
        } else {
            tokio::time::sleep(SMALL_EVERY).await;
            id.clone()
        };
        let Ok(resp) = client.post(&url).body(body).send().await else {
            break;
        };
        let status = resp.status().as_u16();
        if resp.bytes().await.is_err() {
            break;
        }
        if status == 201 {
            acked.push(id);
        }
    }
    (attempted, acked)
}

/// Takes with random `max`, `wait_ms` and a random way of ending the exchange.
async fn taker(port: u16, seed: u64, stop: Arc<AtomicBool>, ledger: Shared) {
    let mut rng = Rng::new(seed);
    while !stop.load(Ordering::SeqCst) {
        let mut max = rng.range(1, 5);
        let wait = rng.range(0, 500);
        let (plan, what) = match rng.range(0, 12) {
            10..=12 => {
                max = 1;
                (
                    Plan::AbortAfterBodyBytes(rng.range(60, 200) as usize),
                    "take reset mid-body",
                )
            }
            0..=3 => (Plan::Complete, "take complete"),
            4 | 5 => (
                Plan::HalfCloseAfter(Duration::from_millis(rng.range(0, 300))),
                "take closed before/while waiting",
            ),
            6 | 7 => (
                Plan::HalfCloseAfterBodyBytes(rng.range(0, 120) as usize),
                "take closed part-way",
            ),
            _ => (Plan::AbortAfterJson, "take reset after the JSON"),
        };
        let path = format!("/v1/queues/{QUEUE}/take?max={max}&wait_ms={wait}");
        let obs = exchange(port, "POST", &path, b"", plan).await;
        count(&ledger, what);
        if !matches!(plan, Plan::Complete) {
            count(
                &ledger,
                if obs.complete {
                    "  ... of which the reply was complete anyway"
                } else {
                    "  ... of which the reply was cut"
                },
            );
        }
        if obs.status != 0 && obs.status != 200 {
            ledger
                .lock()
                .expect("ledger")
                .unexpected
                .push(format!("take {path}: {obs:?}"));
        }
        let kind = if obs.complete {
            Kind::TakeComplete
        } else {
            Kind::TakeIncomplete
        };
        record(&ledger, &obs, kind);
        if matches!(plan, Plan::Complete) && !obs.complete {
            ledger
                .lock()
                .expect("ledger")
                .unexpected
                .push(format!("take reply cut while the server was up: {obs:?}"));
        }
    }
}

/// Leases with short visibility; acks some, abandons some after reading, and drops
/// some connections before reading.
async fn leaser(port: u16, seed: u64, stop: Arc<AtomicBool>, ledger: Shared) {
    let mut rng = Rng::new(seed);
    while !stop.load(Ordering::SeqCst) {
        let max = rng.range(1, 3);
        let vis = rng.range(150, 600);
        let path = format!("/v1/queues/{QUEUE}/lease?max={max}&visibility_ms={vis}&wait_ms=100");
        let choice = rng.range(0, 9);
        if choice >= 7 {
            // Abandoned before reading: the connection goes away at once.
            let d = Duration::from_millis(rng.range(0, 20));
            let obs = exchange(port, "POST", &path, b"", Plan::HalfCloseAfter(d)).await;
            count(&ledger, "lease closed before reading");
            record(&ledger, &obs, Kind::LeaseNotAcked);
            continue;
        }
        let obs = exchange(port, "POST", &path, b"", Plan::Complete).await;
        let Some(reply) = obs.json().filter(|_| obs.status == 200) else {
            ledger
                .lock()
                .expect("ledger")
                .unexpected
                .push(format!("lease: {obs:?}"));
            record(&ledger, &obs, Kind::LeaseNotAcked);
            continue;
        };
        let messages = reply["messages"].as_array().cloned().unwrap_or_default();
        if choice >= 4 {
            count(&ledger, "lease read then abandoned");
            record(&ledger, &obs, Kind::LeaseNotAcked);
            continue;
        }
        count(&ledger, "lease read then acked");
        // Ack one receipt at a time: the count says which were live.
        for m in &messages {
            let body = message_id(&bodies(std::slice::from_ref(m))[0]);
            let ack = serde_json::to_vec(&json!({"receipts": [m["receipt"]]})).expect("json");
            let a = exchange(
                port,
                "POST",
                &format!("/v1/queues/{QUEUE}/ack"),
                &ack,
                Plan::Complete,
            )
            .await;
            let acked = a.json().and_then(|v| v["acked"].as_u64());
            let kind = match acked {
                Some(1) => Kind::LeaseAcked,
                Some(_) => Kind::LeaseNotAcked,
                None => {
                    ledger
                        .lock()
                        .expect("ledger")
                        .unexpected
                        .push(format!("ack: {a:?}"));
                    Kind::LeaseNotAcked
                }
            };
            let mut l = ledger.lock().expect("ledger");
            l.sightings.push(Sighting {
                body: body.clone(),
                kind,
                started: obs.started,
                ended: obs.ended,
            });
            if kind == Kind::LeaseAcked {
                l.acked_at.push((body, a.ended));
            }
        }
    }
}

/// Long-polls on a queue nothing is pushed to, reset while waiting.
async fn idle_poller(port: u16, seed: u64, stop: Arc<AtomicBool>, ledger: Shared) {
    let mut rng = Rng::new(seed);
    while !stop.load(Ordering::SeqCst) {
        // Far longer than the test: only a server that noticed the reset lets go.
        let path = format!("/v1/queues/{IDLE}/take?wait_ms=20000");
        let d = Duration::from_millis(rng.range(5, 300));
        let obs = exchange(port, "POST", &path, b"", Plan::AbortAfter(d)).await;
        count(&ledger, "idle long-poll reset while waiting");
        if obs.status != 0 && obs.status != 200 {
            ledger
                .lock()
                .expect("ledger")
                .unexpected
                .push(format!("idle take: {obs:?}"));
        }
    }
}

/// The sum of a metric's samples in Prometheus text (0 when absent).
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_clients_and_kill9_lose_nothing_and_redeliver_only_what_was_unconfirmed() {
    let mut server = TestServer::start(&["--fsync", "always"]).await;
    let port = server.port();
    // The idle queue must exist for its long-polls to wait.
    assert_eq!(
        server
            .put_json(&format!("/v1/queues/{IDLE}"), &json!({}))
            .await
            .status,
        200
    );
    let ledger: Shared = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let push_url = server.url(&format!("/v1/queues/{QUEUE}/messages"));
    let producers: Vec<_> = (0..=PRODUCERS)
        .map(|p| tokio::spawn(producer(push_url.clone(), p, p == PRODUCERS)))
        .collect();
    let mut consumers = Vec::new();
    for t in 0..TAKERS {
        consumers.push(tokio::spawn(taker(
            port,
            100 + t as u64,
            stop.clone(),
            ledger.clone(),
        )));
    }
    for l in 0..LEASERS {
        consumers.push(tokio::spawn(leaser(
            port,
            200 + l as u64,
            stop.clone(),
            ledger.clone(),
        )));
    }
    consumers.push(tokio::spawn(idle_poller(
        port,
        300,
        stop.clone(),
        ledger.clone(),
    )));

    tokio::time::sleep(LOAD).await;
    // Consumers stop first, so no delivery is in flight at the kill: every redelivery
    // after the restart is then explained by the counter or by a lease not acked.
    stop.store(true, Ordering::SeqCst);
    for c in consumers {
        c.await.expect("consumer task");
    }
    // Deterministically, too: on a queue of its own, a reply of several large messages
    // is more than the socket buffers hold, so a client that reads its first bytes and
    // resets leaves the server with the JSON handed over and the confirm not begun.
    // The client may have seen any of them (it knows the queue's whole content).
    let mut extra = Vec::new();
    for round in 0..RESETS_AT_END {
        let mut batch = Vec::new();
        for n in 0..3 {
            let id = format!("end-{round}-{n}");
            let body = format!("{id}|{}", "x".repeat(BIG_BYTES));
            let reply = server.push_raw(END_QUEUE, "", body.as_bytes()).await;
            assert_eq!(reply.status, 201, "{reply:?}");
            batch.push(id);
        }
        let path = format!("/v1/queues/{END_QUEUE}/take?max=3");
        let obs = exchange(port, "POST", &path, b"", Plan::AbortAfterBodyBytes(100)).await;
        count(&ledger, "large take reset mid-body (at the end)");
        assert!(
            !obs.complete,
            "a 2.7 MB reply arrived whole unread: {}",
            obs.status
        );
        let mut l = ledger.lock().expect("ledger");
        for id in &batch {
            l.sightings.push(Sighting {
                body: id.clone(),
                kind: Kind::TakeIncomplete,
                started: obs.started,
                ended: obs.ended,
            });
        }
        extra.extend(batch);
    }
    tokio::time::sleep(SETTLE).await;
    let metrics = server.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    let unconfirmed = metric(&metrics.text, "godwit_deliveries_unconfirmed_total") as usize;
    // Every dropped or reset connection was noticed and closed: what stays open is the
    // producers' keep-alive connections and this scrape.
    let open = metric(&metrics.text, "godwit_connections_open") as usize;
    assert!(
        open <= PRODUCERS + 3,
        "{open} HTTP connections still open after every consumer left"
    );
    // No waiter was left behind on the idle queue: a message pushed there is ready and
    // taken at once.
    server.push(IDLE, "idle-probe").await;
    assert_eq!(bodies(&server.take(IDLE, 5).await), vec!["idle-probe"]);

    // Producers keep going into the kill.
    tokio::time::sleep(PUSH_ONLY).await;
    server.kill9();
    let mut attempted: HashSet<String> = extra.iter().cloned().collect();
    let mut acked = extra;
    for p in producers {
        let (a, k) = p.await.expect("producer task");
        attempted.extend(a);
        acked.extend(k);
    }
    server.restart().await;
    let mut drained = Vec::new();
    loop {
        let batch = server.take(QUEUE, 20).await;
        if batch.is_empty() {
            break;
        }
        drained.extend(bodies(&batch).iter().map(|b| message_id(b)));
        assert!(
            drained.len() <= attempted.len(),
            "drained more than was pushed"
        );
    }
    let ledger = Arc::try_unwrap(ledger)
        .ok()
        .expect("workers are done")
        .into_inner()
        .expect("ledger");
    assert!(ledger.unexpected.is_empty(), "{:#?}", ledger.unexpected);

    let summary = format!(
        "acked pushes {}, attempted {}, sightings {}, drained {}, unconfirmed {unconfirmed}, \
         exchanges {:?}",
        acked.len(),
        attempted.len(),
        ledger.sightings.len(),
        drained.len(),
        ledger.counts
    );
    eprintln!("{summary}");

    // 0. Nothing appears that no producer sent, and the drain has no duplicates.
    let mut drained_set = HashSet::new();
    for b in &drained {
        assert!(
            attempted.contains(b),
            "drained {b:?}, never pushed; {summary}"
        );
        assert!(
            drained_set.insert(b.clone()),
            "drained {b:?} twice; {summary}"
        );
    }
    for s in &ledger.sightings {
        assert!(attempted.contains(&s.body), "saw {s:?}, never pushed");
    }

    // 1. No acknowledged push is lost: each was read from a complete take reply, acked
    //    as a lease, seen in an incomplete take reply (its removal may have been
    //    confirmed after the JSON was handed over: the client went away, not the
    //    message), or is still queued. A lease not acked never removes a message.
    let removed_by_client: HashSet<&str> = ledger
        .sightings
        .iter()
        .filter(|s| s.kind != Kind::LeaseNotAcked)
        .map(|s| s.body.as_str())
        .collect();
    let lost: Vec<&String> = acked
        .iter()
        .filter(|b| !drained_set.contains(*b) && !removed_by_client.contains(b.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged pushes lost: {lost:?}; {summary}"
    );

    // 2. A complete take reply, or an ack, means the removal was durable: the message
    //    is not in a second complete reply or acked twice, not delivered to any
    //    request sent after that, and not queued after the restart.
    let mut final_at: HashMap<&str, u64> = HashMap::new();
    for s in &ledger.sightings {
        if s.kind == Kind::TakeComplete {
            let before = final_at.insert(&s.body, s.ended);
            assert!(before.is_none(), "{:?} removed twice; {summary}", s.body);
        }
    }
    for (body, at) in &ledger.acked_at {
        let before = final_at.insert(body, *at);
        assert!(before.is_none(), "{body:?} removed twice; {summary}");
    }
    for s in &ledger.sightings {
        if let Some(&at) = final_at.get(s.body.as_str()) {
            // The removing delivery itself was requested before its removal ended.
            assert!(
                s.started < at,
                "{s:?} was delivered by a request sent after its removal was durable; {summary}"
            );
        }
    }
    for body in final_at.keys() {
        assert!(
            !drained_set.contains(*body),
            "{body:?} was removed durably but is queued after the restart; {summary}"
        );
    }

    // 3. Redelivery is bounded. A message is delivered again only after it returned to
    //    the queue, and with clients quiet at the kill and `--fsync always` a message
    //    returns only (a) when a delivery whose JSON was handed to the connection is
    //    dropped unconfirmed — counted per message in
    //    `godwit_deliveries_unconfirmed_total` — or (b) when a lease that was not acked
    //    expires or is returned at the restart, at most once per lease sighting. A
    //    delivery dropped before its JSON was handed over was never seen; a complete
    //    take, an ack, or an incomplete take whose confirm started, removes it for good.
    //    So the extra sightings (by clients and in the drain) are at most (a) + (b).
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for s in &ledger.sightings {
        *seen.entry(&s.body).or_default() += 1;
    }
    for b in &drained {
        *seen.entry(b).or_default() += 1;
    }
    let again: usize = seen.values().map(|n| n.saturating_sub(1)).sum();
    let twice = seen.values().filter(|n| **n > 1).count();
    let lease_not_acked = ledger
        .sightings
        .iter()
        .filter(|s| s.kind == Kind::LeaseNotAcked)
        .count();
    assert!(
        twice <= again && again <= unconfirmed + lease_not_acked,
        "{again} extra sightings ({twice} messages) > {unconfirmed} unconfirmed + \
         {lease_not_acked} leases not acked; {summary}"
    );
    eprintln!("seen again: {again} sightings of {twice} messages");

    // The load exercised every path.
    assert!(acked.len() > 100, "too little load; {summary}");
    // Not asserted: whether the server drops a delivery after its JSON (rather than
    // confirming it) depends on how much the kernel buffers for a client that stopped
    // reading; the large resets above make it likely, not certain.
    if unconfirmed == 0 {
        eprintln!("note: no delivery was dropped after its JSON this run");
    }
    for kind in [Kind::TakeComplete, Kind::LeaseAcked, Kind::LeaseNotAcked] {
        assert!(
            ledger.sightings.iter().any(|s| s.kind == kind),
            "no {kind:?} sighting; {summary}"
        );
    }
}
