//! The live-stream scenarios: fan-out of batched pushes to many broadcast SSE consumers
//! (`fanout`), and publish-to-consumer latency of paced single pushes over SSE and
//! WebSocket (`stream-latency`).
//!
//! Latencies are measured in this one process on one monotonic clock: a pusher notes the
//! instant just before it sends a request under a sequence number it writes into the
//! message bodies, and a consumer subtracts that instant from the one at which it parsed
//! the event carrying the body.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::report::Row;
use crate::Plan;

/// Longest the consumers may take to connect, and to deliver what was pushed after the
/// pushes end.
const SETTLE_LIMIT: Duration = Duration::from_secs(60);

/// Most messages the fan-out pushers may be ahead of the slowest consumer: the queue
/// holds at most about this many, so the run measures sustained fan-out, not a backlog.
const FANOUT_WINDOW: u64 = 1_000;

/// What a stream scenario found besides its rows: one line each, printed after the table.
pub(crate) type Notes = Vec<String>;

/// Splits a Server-Sent Events byte stream into events (blank-line separated blocks of
/// `field: value` lines; `:` lines are comments).
#[derive(Default)]
struct SseParser {
    buf: Vec<u8>,
    /// Bytes of `buf` already known to hold no event end.
    scanned: usize,
}

/// One parsed SSE event.
struct SseEvent<'a> {
    event: &'a str,
    id: Option<&'a str>,
    data: &'a str,
}

impl SseParser {
    /// Feeds `chunk` and calls `on_event` for every event it completes.
    fn feed(&mut self, chunk: &[u8], mut on_event: impl FnMut(SseEvent<'_>)) {
        self.buf.extend_from_slice(chunk);
        let mut start = 0;
        let mut at = self.scanned.max(1);
        while at < self.buf.len() {
            if self.buf[at] == b'\n' && self.buf[at - 1] == b'\n' {
                let block = &self.buf[start..at - 1];
                if let Ok(text) = std::str::from_utf8(block) {
                    parse_block(text, &mut on_event);
                }
                start = at + 1;
                at = start + 1;
            } else {
                at += 1;
            }
        }
        self.buf.drain(..start);
        self.scanned = self.buf.len().saturating_sub(1);
    }
}

fn parse_block(text: &str, on_event: &mut impl FnMut(SseEvent<'_>)) {
    let mut event = "message";
    let mut id = None;
    let mut data = None;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => event = value,
            "id" => id = Some(value),
            // The server writes one data line per event.
            "data" => data = Some(value),
            _ => {}
        }
    }
    if let Some(data) = data {
        on_event(SseEvent { event, id, data });
    }
}

/// The `"body"` string of a message's JSON, found by text (cheap enough for 100 readers);
/// bench bodies hold no quotes or escapes.
fn body_of(json: &str) -> Option<&str> {
    let from = json.find("\"body\":\"")? + 8;
    let len = json[from..].find('"')?;
    Some(&json[from..from + len])
}

/// A body of `size` bytes (at least its tag) starting with `tag` and a space.
fn tagged_body(tag: &str, size: usize) -> String {
    let pattern = b"godwit-bar-tailed-";
    let mut s = String::with_capacity(size.max(tag.len() + 1));
    s.push_str(tag);
    s.push(' ');
    let mut i = 0;
    while s.len() < size {
        s.push(pattern[i % pattern.len()] as char);
        i += 1;
    }
    s
}

/// The leading number of a tagged body (`"17 godwit…"`, `"17.3 godwit…"` → 17).
fn tag_number(body: &str) -> Option<u64> {
    let end = body
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(body.len());
    body[..end].parse().ok()
}

fn client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .build()
        .context("building HTTP client")
}

async fn create_queue(c: &reqwest::Client, plan: &Plan, queue: &str) -> anyhow::Result<()> {
    let r = c
        .post(format!("{}/v1/queues/{queue}", plan.url))
        .send()
        .await
        .with_context(|| format!("creating queue {queue}"))?;
    if !r.status().is_success() {
        bail!("creating queue {queue}: HTTP {}", r.status());
    }
    Ok(())
}

/// `GET /v1/queues/{queue}` as JSON.
async fn queue_stats(
    c: &reqwest::Client,
    plan: &Plan,
    queue: &str,
) -> anyhow::Result<serde_json::Value> {
    let r = c
        .get(format!("{}/v1/queues/{queue}", plan.url))
        .send()
        .await
        .with_context(|| format!("reading the stats of {queue}"))?;
    if !r.status().is_success() {
        bail!("stats of {queue}: HTTP {}", r.status());
    }
    r.json().await.context("parsing queue stats")
}

/// Waits until the queue reports `want` live consumers, or fails after [`SETTLE_LIMIT`].
async fn await_consumers(
    c: &reqwest::Client,
    plan: &Plan,
    queue: &str,
    want: u64,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + SETTLE_LIMIT;
    loop {
        let stats = queue_stats(c, plan, queue).await?;
        let live = stats["live_consumers"].as_u64().unwrap_or(0);
        if live == want {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("{queue}: {live} live consumers after {SETTLE_LIMIT:?}, wanted {want}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn drop_queue(c: &reqwest::Client, plan: &Plan, queue: &str) {
    let _ = c
        .delete(format!("{}/v1/queues/{queue}", plan.url))
        .send()
        .await;
}

/// What one fan-out consumer saw.
#[derive(Default)]
struct ConsumerReport {
    received: u64,
    last_id: u64,
    /// Message events whose id was not above the one before.
    out_of_order: u64,
    /// When the last message event was parsed.
    last_at: Option<Instant>,
    /// Delivery latencies of the first message of each pushed batch.
    latencies: Vec<Duration>,
    /// Why the stream ended before it was told to stop, if it did.
    ended: Option<String>,
    /// Non-message events (`purged`, `dropped`, …).
    events: Vec<String>,
}

/// The instants just before each fan-out batch request was sent, by batch number.
type SendTimes = Arc<RwLock<HashMap<u64, Instant>>>;

/// One broadcast SSE consumer of the fan-out: counts message events, checks their ids
/// rise, and times the first message of each batch until `stop` turns true.
async fn fanout_consumer(
    url: String,
    progress: Arc<AtomicU64>,
    sent: SendTimes,
    mut stop: watch::Receiver<bool>,
) -> ConsumerReport {
    let mut rep = ConsumerReport::default();
    let c = match client() {
        Ok(c) => c,
        Err(e) => {
            rep.ended = Some(format!("{e:#}"));
            return rep;
        }
    };
    let mut resp = match c.get(&url).send().await {
        Ok(r) if r.status().is_success() => r,
        Ok(r) => {
            rep.ended = Some(format!("GET {url}: HTTP {}", r.status()));
            return rep;
        }
        Err(e) => {
            rep.ended = Some(format!("GET {url}: {e}"));
            return rep;
        }
    };
    let mut parser = SseParser::default();
    // The batch whose send instant was looked up last, and that instant.
    let mut cached: Option<(u64, Instant)> = None;
    loop {
        let chunk = tokio::select! {
            c = resp.chunk() => c,
            _ = stop.wait_for(|s| *s) => break,
        };
        let chunk = match chunk {
            Ok(Some(c)) => c,
            Ok(None) => {
                rep.ended = Some("stream ended (disconnected by the server)".into());
                break;
            }
            Err(e) => {
                rep.ended = Some(format!("reading the stream: {e}"));
                break;
            }
        };
        let now = Instant::now();
        parser.feed(&chunk, |ev| {
            if ev.event != "message" {
                rep.events.push(ev.event.to_string());
                return;
            }
            let id = ev.id.and_then(|i| i.parse::<u64>().ok()).unwrap_or(0);
            if id <= rep.last_id {
                rep.out_of_order += 1;
            }
            rep.last_id = rep.last_id.max(id);
            rep.received += 1;
            // Bodies are "<batch>.<index> …": time index 0 of each batch.
            let Some(body) = body_of(ev.data) else { return };
            let first = body
                .split_once(' ')
                .and_then(|(tag, _)| tag.split_once('.'))
                .is_some_and(|(_, i)| i == "0");
            if !first {
                return;
            }
            let Some(batch) = tag_number(body) else {
                return;
            };
            let at = match cached {
                Some((b, at)) if b == batch => Some(at),
                _ => sent.read().ok().and_then(|m| m.get(&batch).copied()),
            };
            if let Some(at) = at {
                cached = Some((batch, at));
                rep.latencies.push(now.saturating_duration_since(at));
            }
        });
        rep.last_at = Some(now);
        progress.store(rep.received, Ordering::Relaxed);
    }
    rep
}

/// `plan.consumers` broadcast SSE consumers on one queue, batched pushes from
/// `plan.connections` pushers for `plan.duration` (staying at most [`FANOUT_WINDOW`]
/// messages ahead of the slowest consumer), then every consumer's count and last id
/// checked against the queue's. Returns the push row, the deliveries row and notes.
pub(crate) async fn fanout(plan: &Plan) -> anyhow::Result<(Row, Row, Notes)> {
    let queue = plan.queue("fanout");
    let c = client()?;
    create_queue(&c, plan, &queue).await?;
    let events = format!("{}/v1/queues/{queue}/events?policy=broadcast", plan.url);
    let sent: SendTimes = Arc::new(RwLock::new(HashMap::new()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let counters: Arc<Vec<Arc<AtomicU64>>> = Arc::new(
        (0..plan.consumers)
            .map(|_| Arc::new(AtomicU64::new(0)))
            .collect(),
    );
    let mut consumers = Vec::with_capacity(plan.consumers);
    for progress in counters.iter() {
        consumers.push(tokio::spawn(fanout_consumer(
            events.clone(),
            progress.clone(),
            sent.clone(),
            stop_rx.clone(),
        )));
    }
    await_consumers(&c, plan, &queue, plan.consumers as u64).await?;

    // Pushers: each request a batch of `plan.batch` bodies tagged "<batch>.<index>".
    let url = format!("{}/v1/queues/{queue}/batch", plan.url);
    let next_batch = Arc::new(AtomicU64::new(0));
    let pushed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + plan.duration;
    let mut pushers = Vec::with_capacity(plan.connections);
    for _ in 0..plan.connections {
        let (c, url, sent, counters) = (client()?, url.clone(), sent.clone(), counters.clone());
        let (next_batch, pushed) = (next_batch.clone(), pushed.clone());
        let (batch, size) = (plan.batch, plan.size);
        pushers.push(tokio::spawn(async move {
            let mut row = Row::default();
            while Instant::now() < deadline {
                let slowest = counters
                    .iter()
                    .map(|p| p.load(Ordering::Relaxed))
                    .min()
                    .unwrap_or(0);
                if pushed.load(Ordering::Relaxed) > slowest + FANOUT_WINDOW {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
                let n = next_batch.fetch_add(1, Ordering::Relaxed);
                let messages: Vec<serde_json::Value> = (0..batch)
                    .map(|i| serde_json::json!({ "body": tagged_body(&format!("{n}.{i}"), size) }))
                    .collect();
                let payload = Bytes::from(serde_json::json!({ "messages": messages }).to_string());
                let at = Instant::now();
                if let Ok(mut m) = sent.write() {
                    m.insert(n, at);
                }
                match c
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(payload)
                    .send()
                    .await
                {
                    Ok(r) if r.status().as_u16() == 201 => {
                        let _ = r.bytes().await;
                        row.latencies.push(at.elapsed());
                        row.requests += 1;
                        row.messages += batch as u64;
                        row.bytes += (batch * size) as u64;
                        pushed.fetch_add(batch as u64, Ordering::Relaxed);
                    }
                    Ok(r) => {
                        row.errors += 1;
                        let status = r.status();
                        let reply = r.text().await.unwrap_or_default();
                        row.first_error
                            .get_or_insert_with(|| format!("POST {url}: HTTP {status}: {reply}"));
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err(e) => {
                        row.errors += 1;
                        row.first_error
                            .get_or_insert_with(|| format!("POST {url}: {e}"));
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
            row
        }));
    }
    let mut push_row = Row {
        scenario: format!("fanout push ({}/req)", plan.batch),
        connections: plan.connections,
        ..Row::default()
    };
    for p in pushers {
        let r = p.await.context("fan-out pusher panicked")?;
        push_row.requests += r.requests;
        push_row.messages += r.messages;
        push_row.bytes += r.bytes;
        push_row.errors += r.errors;
        push_row.latencies.extend(r.latencies);
        if push_row.first_error.is_none() {
            push_row.first_error = r.first_error;
        }
    }
    push_row.elapsed = started.elapsed();

    // What the queue took in, as every consumer should see it: `total_pushed` messages,
    // the last one `next_id - 1`.
    let stats = queue_stats(&c, plan, &queue).await?;
    let backlog = stats["ready"].as_u64().unwrap_or(0);
    let want = stats["total_pushed"].as_u64().unwrap_or(0);
    let last_id = stats["next_id"].as_u64().unwrap_or(1).saturating_sub(1);
    let settle = Instant::now() + SETTLE_LIMIT;
    let all_done =
        |counters: &[Arc<AtomicU64>]| counters.iter().all(|p| p.load(Ordering::Relaxed) >= want);
    while !all_done(&counters)
        && Instant::now() < settle
        && consumers.iter().any(|h| !h.is_finished())
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let live_after = queue_stats(&c, plan, &queue)
        .await
        .ok()
        .and_then(|s| s["live_consumers"].as_u64());
    let _ = stop_tx.send(true);
    let mut reports = Vec::with_capacity(consumers.len());
    for h in consumers {
        reports.push(h.await.context("fan-out consumer panicked")?);
    }
    drop_queue(&c, plan, &queue).await;

    let mut delivery_row = Row {
        scenario: format!("fanout recv ({} SSE)", plan.consumers),
        connections: plan.consumers,
        ..Row::default()
    };
    let mut last_at = started;
    let mut short = Vec::new();
    let mut disconnected = 0;
    let mut unordered = 0;
    let mut other_events: HashMap<String, u64> = HashMap::new();
    for (i, r) in reports.into_iter().enumerate() {
        delivery_row.messages += r.received;
        delivery_row.requests += r.received;
        delivery_row.bytes += r.received * plan.size as u64;
        delivery_row.latencies.extend(r.latencies);
        if let Some(at) = r.last_at {
            last_at = last_at.max(at);
        }
        if r.out_of_order > 0 {
            unordered += 1;
        }
        for e in r.events {
            *other_events.entry(e).or_default() += 1;
        }
        if let Some(why) = &r.ended {
            disconnected += 1;
            delivery_row
                .first_error
                .get_or_insert_with(|| format!("consumer {i}: {why}"));
        }
        if r.received != want || r.last_id != last_id || r.out_of_order > 0 {
            short.push(format!(
                "consumer {i}: {} of {want}, last id {} of {last_id}, {} out of order{}",
                r.received,
                r.last_id,
                r.out_of_order,
                r.ended.map(|w| format!(" ({w})")).unwrap_or_default()
            ));
        }
    }
    delivery_row.elapsed = last_at.saturating_duration_since(started);
    delivery_row.errors = short.len() as u64;

    let mut notes = vec![format!(
        "fanout: {} consumers, {want} messages pushed (last id {last_id}), {backlog} still queued when the pushes ended; {}",
        plan.consumers,
        if short.is_empty() {
            format!("every consumer received all {want} in id order, last id {last_id}")
        } else {
            format!("{} consumers short or out of order", short.len())
        }
    )];
    notes.push(format!(
        "fanout: {disconnected} consumers disconnected before the end, {unordered} saw ids out of order, live_consumers before they were stopped {}; deliveries {:.0}/s over {:.2} s, delivery latency (first of each batch) p50 {} p99 {} max {} ms",
        live_after.map_or("-".into(), |n| n.to_string()),
        delivery_row.messages_per_sec(),
        delivery_row.elapsed.as_secs_f64(),
        fmt_ms(delivery_row.percentile_ms(50.0)),
        fmt_ms(delivery_row.percentile_ms(99.0)),
        fmt_ms(delivery_row.percentile_ms(100.0)),
    ));
    if !other_events.is_empty() {
        let mut list: Vec<_> = other_events.into_iter().collect();
        list.sort();
        notes.push(format!("fanout: other events seen: {list:?}"));
    }
    for s in short.iter().take(10) {
        notes.push(format!("fanout shortfall: {s}"));
    }
    if short.len() > 10 {
        notes.push(format!("fanout shortfall: … and {} more", short.len() - 10));
    }
    Ok((push_row, delivery_row, notes))
}

fn fmt_ms(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into())
}

/// Which live stream a latency run reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    Sse,
    WebSocket,
}

impl Transport {
    fn label(self) -> &'static str {
        match self {
            Transport::Sse => "sse",
            Transport::WebSocket => "ws",
        }
    }
}

/// The send instants of a latency run, by sequence number (nanoseconds after `base`, plus
/// one; 0 while unsent).
struct Sent {
    base: Instant,
    at: Vec<AtomicU64>,
}

impl Sent {
    fn mark(&self, seq: u64) {
        if let Some(slot) = self.at.get(seq as usize) {
            slot.store(self.base.elapsed().as_nanos() as u64 + 1, Ordering::Release);
        }
    }

    fn latency(&self, seq: u64, now: Instant) -> Option<Duration> {
        let nanos = self.at.get(seq as usize)?.load(Ordering::Acquire);
        (nanos > 0)
            .then(|| now.saturating_duration_since(self.base + Duration::from_nanos(nanos - 1)))
    }
}

/// What the latency consumer saw.
#[derive(Default)]
struct LatencyReport {
    received: u64,
    /// Messages whose id was not above the one before (a delivery-order fault).
    out_of_order: u64,
    /// Messages whose sequence number was below the one before: concurrent pushes that
    /// overtook each other on their way to the server (not a fault).
    overtaken: u64,
    last_id: u64,
    latencies: Vec<Duration>,
    ended: Option<String>,
}

impl LatencyReport {
    /// Counts one message's JSON, timing it by the sequence number in its body.
    fn message(&mut self, msg: &serde_json::Value, sent: &Sent, last_seq: &mut Option<u64>) {
        let now = Instant::now();
        let Some(seq) = msg["body"].as_str().and_then(tag_number) else {
            return;
        };
        self.received += 1;
        let id = msg["id"].as_u64().unwrap_or(0);
        if id <= self.last_id {
            self.out_of_order += 1;
        }
        self.last_id = self.last_id.max(id);
        if last_seq.is_some_and(|l| seq < l) {
            self.overtaken += 1;
        }
        *last_seq = Some(seq);
        if let Some(l) = sent.latency(seq, now) {
            self.latencies.push(l);
        }
    }
}

/// Reads one consumer's stream until `stop` turns true, timing every message.
async fn latency_consumer(
    transport: Transport,
    url: String,
    sent: Arc<Sent>,
    progress: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) -> LatencyReport {
    let mut rep = LatencyReport::default();
    let mut last_seq = None;
    match transport {
        Transport::Sse => {
            let resp = match client() {
                Ok(c) => c.get(&url).send().await,
                Err(e) => {
                    rep.ended = Some(format!("{e:#}"));
                    return rep;
                }
            };
            let mut resp = match resp {
                Ok(r) if r.status().is_success() => r,
                Ok(r) => {
                    rep.ended = Some(format!("GET {url}: HTTP {}", r.status()));
                    return rep;
                }
                Err(e) => {
                    rep.ended = Some(format!("GET {url}: {e}"));
                    return rep;
                }
            };
            let mut parser = SseParser::default();
            loop {
                let chunk = tokio::select! {
                    c = resp.chunk() => c,
                    _ = stop.wait_for(|s| *s) => break,
                };
                match chunk {
                    Ok(Some(chunk)) => parser.feed(&chunk, |ev| {
                        if ev.event == "message" {
                            if let Ok(msg) = serde_json::from_str(ev.data) {
                                rep.message(&msg, &sent, &mut last_seq);
                            }
                        }
                    }),
                    Ok(None) => {
                        rep.ended = Some("stream ended".into());
                        break;
                    }
                    Err(e) => {
                        rep.ended = Some(format!("reading the stream: {e}"));
                        break;
                    }
                }
                progress.store(rep.received, Ordering::Relaxed);
            }
        }
        Transport::WebSocket => {
            let mut ws = match tokio_tungstenite::connect_async(url.as_str()).await {
                Ok((ws, _)) => ws,
                Err(e) => {
                    rep.ended = Some(format!("connecting {url}: {e}"));
                    return rep;
                }
            };
            loop {
                let frame = tokio::select! {
                    f = ws.next() => f,
                    _ = stop.wait_for(|s| *s) => break,
                };
                match frame {
                    Some(Ok(WsMessage::Text(text))) => {
                        if let Ok(v) = serde_json::from_str::<serde_json::Value>(text.as_str()) {
                            if v["type"] == "message" {
                                rep.message(&v["message"], &sent, &mut last_seq);
                            }
                        }
                    }
                    Some(Ok(WsMessage::Close(_))) | None => {
                        rep.ended = Some("socket closed".into());
                        break;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        rep.ended = Some(format!("reading the socket: {e}"));
                        break;
                    }
                }
                progress.store(rep.received, Ordering::Relaxed);
            }
            let _ = ws.close(None).await;
        }
    }
    rep
}

/// One consumer on `transport`, single pushes paced at `plan.rate` per second for
/// `plan.duration` (each its own request, so a slow one does not hold the pace back),
/// latency from just before each push is sent to the parse of its event. Returns the
/// latency row and notes.
pub(crate) async fn latency(plan: &Plan, transport: Transport) -> anyhow::Result<(Row, Notes)> {
    let label = transport.label();
    let queue = plan.queue(&format!("latency-{label}"));
    let c = client()?;
    create_queue(&c, plan, &queue).await?;
    let total = plan.rate * plan.duration.as_secs();
    let sent = Arc::new(Sent {
        base: Instant::now(),
        at: (0..total).map(|_| AtomicU64::new(0)).collect(),
    });
    let progress = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let path = format!("/v1/queues/{queue}");
    let url = match transport {
        Transport::Sse => format!("{}{path}/events?policy=broadcast", plan.url),
        Transport::WebSocket => format!(
            "{}{path}/ws?policy=broadcast",
            plan.url.replacen("http", "ws", 1)
        ),
    };
    let consumer = tokio::spawn(latency_consumer(
        transport,
        url,
        sent.clone(),
        progress.clone(),
        stop_rx,
    ));
    await_consumers(&c, plan, &queue, 1).await?;

    let push_url = format!("{}{path}/messages", plan.url);
    let pusher = client()?;
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let behind = Arc::new(AtomicBool::new(false));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / plan.rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut requests = Vec::with_capacity(total as usize);
    for seq in 0..total {
        tick.tick().await;
        let body = tagged_body(&seq.to_string(), plan.size);
        let (c, url, sent) = (pusher.clone(), push_url.clone(), sent.clone());
        let (ok, failed, first_error) = (ok.clone(), failed.clone(), first_error.clone());
        requests.push(tokio::spawn(async move {
            sent.mark(seq);
            match c.post(&url).body(body).send().await {
                Ok(r) if r.status().as_u16() == 201 => {
                    let _ = r.bytes().await;
                    ok.fetch_add(1, Ordering::Relaxed);
                }
                Ok(r) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    let why = format!("POST {url}: HTTP {}", r.status());
                    first_error.lock().unwrap().get_or_insert(why);
                }
                Err(e) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    let why = format!("POST {url}: {e}");
                    first_error.lock().unwrap().get_or_insert(why);
                }
            }
        }));
    }
    let paced_for = started.elapsed();
    if paced_for > plan.duration + Duration::from_millis(500) {
        behind.store(true, Ordering::Relaxed);
    }
    for r in requests {
        let _ = r.await;
    }
    let pushes_done = started.elapsed();
    let want = ok.load(Ordering::Relaxed);
    let settle = Instant::now() + SETTLE_LIMIT;
    while progress.load(Ordering::Relaxed) < want
        && Instant::now() < settle
        && !consumer.is_finished()
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = stop_tx.send(true);
    let rep = consumer.await.context("latency consumer panicked")?;
    drop_queue(&c, plan, &queue).await;

    let push_errors = failed.load(Ordering::Relaxed);
    let row = Row {
        scenario: format!("latency {label} ({}/s)", plan.rate),
        connections: 1,
        requests: rep.received,
        messages: rep.received,
        bytes: rep.received * plan.size as u64,
        elapsed: pushes_done,
        errors: push_errors + want.saturating_sub(rep.received) + rep.out_of_order,
        first_error: first_error
            .lock()
            .unwrap()
            .clone()
            .or_else(|| rep.ended.clone()),
        latencies: rep.latencies,
    };
    let mut notes = vec![format!(
        "stream-latency {label}: {} pushes at {}/s over {:.2} s ({:.0}/s achieved{}), {want} acknowledged, {push_errors} failed; received {} ({} missing, {} out of id order, {} overtaken by a later push){}; latency p50 {} p90 {} p99 {} p99.9 {} max {} ms",
        total,
        plan.rate,
        paced_for.as_secs_f64(),
        want as f64 / paced_for.as_secs_f64().max(1e-9),
        if behind.load(Ordering::Relaxed) { ", the pacer fell behind" } else { "" },
        rep.received,
        want.saturating_sub(rep.received),
        rep.out_of_order,
        rep.overtaken,
        rep.ended.map(|w| format!(", consumer: {w}")).unwrap_or_default(),
        fmt_ms(row.percentile_ms(50.0)),
        fmt_ms(row.percentile_ms(90.0)),
        fmt_ms(row.percentile_ms(99.0)),
        fmt_ms(row.percentile_ms(99.9)),
        fmt_ms(row.percentile_ms(100.0)),
    )];
    if let Some(why) = &row.first_error {
        notes.push(format!("stream-latency {label}: first error: {why}"));
    }
    Ok((row, notes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_split_across_chunks() {
        let stream = b": hi\n\nid: 1\nevent: message\ndata: {\"id\":1,\"body\":\"7.0 x\"}\n\nid: 2\nevent: message\ndata: {\"id\":2}\n\nevent: dropped\ndata: {}\n\n";
        for cut in 0..stream.len() {
            let mut p = SseParser::default();
            let mut seen = Vec::new();
            let mut on = |e: SseEvent<'_>| {
                seen.push((
                    e.event.to_string(),
                    e.id.map(str::to_string),
                    e.data.to_string(),
                ))
            };
            p.feed(&stream[..cut], &mut on);
            p.feed(&stream[cut..], &mut on);
            assert_eq!(seen.len(), 3, "cut at {cut}");
            assert_eq!(seen[0].0, "message");
            assert_eq!(seen[0].1.as_deref(), Some("1"));
            assert_eq!(body_of(&seen[0].2), Some("7.0 x"));
            assert_eq!(seen[1].1.as_deref(), Some("2"));
            assert_eq!(seen[2].0, "dropped");
            assert!(p.buf.is_empty());
        }
    }

    #[test]
    fn tagged_bodies_carry_their_number() {
        let b = tagged_body("42.3", 200);
        assert_eq!(b.len(), 200);
        assert_eq!(tag_number(&b), Some(42));
        assert_eq!(tag_number(&tagged_body("9", 1)), Some(9));
        assert_eq!(tag_number("x"), None);
    }

    #[test]
    fn send_instants_give_latencies() {
        let sent = Sent {
            base: Instant::now(),
            at: (0..3).map(|_| AtomicU64::new(0)).collect(),
        };
        assert_eq!(sent.latency(1, Instant::now()), None);
        sent.mark(1);
        let later = Instant::now() + Duration::from_millis(5);
        assert!(sent.latency(1, later).unwrap() >= Duration::from_millis(5));
        assert_eq!(sent.latency(7, later), None);
    }
}
