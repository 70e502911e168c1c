//! The scenarios: concurrent keep-alive HTTP workers against one server.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;

use crate::report::{Memory, Row};
use crate::Plan;

/// Longest a count-bounded fill may run before it gives up.
const FILL_LIMIT: Duration = Duration::from_secs(600);

/// What one worker did.
#[derive(Default)]
struct Tally {
    requests: u64,
    messages: u64,
    bytes: u64,
    latencies: Vec<Duration>,
    errors: u64,
    first_error: Option<String>,
}

impl Tally {
    /// Counts a failed request, keeps the first one's reason, and backs off briefly so
    /// a dead or refusing server isn't spun on.
    async fn fail(&mut self, why: impl FnOnce() -> String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(why());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()
        .context("building HTTP client")
}

/// A body of `size` printable bytes.
fn body(size: usize) -> Bytes {
    let pattern = b"godwit-bar-tailed-";
    Bytes::from(
        (0..size)
            .map(|i| pattern[i % pattern.len()])
            .collect::<Vec<u8>>(),
    )
}

/// A batch request body of `n` messages of `size` bytes.
fn batch_json(n: usize, size: usize) -> Bytes {
    let text = String::from_utf8_lossy(&body(size)).into_owned();
    let messages: Vec<serde_json::Value> = (0..n)
        .map(|_| serde_json::json!({ "body": text }))
        .collect();
    Bytes::from(serde_json::json!({ "messages": messages }).to_string())
}

/// Runs `connections` workers, each with its own client, and merges what they did.
async fn run_workers<F, Fut>(plan: &Plan, label: String, worker: F) -> anyhow::Result<Row>
where
    F: Fn(reqwest::Client) -> Fut,
    Fut: Future<Output = Tally> + Send + 'static,
{
    let started = Instant::now();
    let mut handles = Vec::with_capacity(plan.connections);
    for _ in 0..plan.connections {
        handles.push(tokio::spawn(worker(client()?)));
    }
    let mut row = Row {
        scenario: label,
        connections: plan.connections,
        ..Row::default()
    };
    for h in handles {
        let t = h.await.context("bench worker panicked")?;
        row.requests += t.requests;
        row.messages += t.messages;
        row.bytes += t.bytes;
        row.errors += t.errors;
        row.latencies.extend(t.latencies);
        if row.first_error.is_none() {
            row.first_error = t.first_error;
        }
    }
    row.elapsed = started.elapsed();
    Ok(row)
}

/// Sends one POST and returns its status and body, timing it into `tally`.
async fn post(
    client: &reqwest::Client,
    url: &str,
    body: Option<Bytes>,
    tally: &mut Tally,
) -> Option<(u16, Bytes)> {
    let started = Instant::now();
    let mut req = client.post(url);
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b);
    }
    let result = match req.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            resp.bytes()
                .await
                .map(|b| (status, b))
                .map_err(|e| format!("POST {url}: reading the reply: {e}"))
        }
        Err(e) => Err(format!("POST {url}: {e}")),
    };
    match result {
        Ok((status, reply)) if (200..300).contains(&status) => {
            tally.requests += 1;
            tally.latencies.push(started.elapsed());
            Some((status, reply))
        }
        Ok((status, reply)) => {
            tally
                .fail(|| format!("POST {url}: HTTP {status}: {}", snippet(&reply)))
                .await;
            Some((status, reply))
        }
        Err(why) => {
            tally.fail(|| why).await;
            None
        }
    }
}

/// The start of a reply body, for an error message.
fn snippet(reply: &[u8]) -> String {
    let text = String::from_utf8_lossy(&reply[..reply.len().min(200)]).into_owned();
    text.trim().to_string()
}

async fn drop_queue(plan: &Plan, queue: &str) {
    if let Ok(c) = client() {
        let _ = c
            .delete(format!("{}/v1/queues/{queue}", plan.url))
            .send()
            .await;
    }
}

/// Acknowledged single-message pushes for `plan.duration`.
pub(crate) async fn single_pushes(plan: &Plan) -> anyhow::Result<Row> {
    let queue = plan.queue("push");
    let url = format!("{}/v1/queues/{queue}/messages", plan.url);
    let payload = body(plan.size);
    let deadline = Instant::now() + plan.duration;
    let row = run_workers(plan, "push (1 msg/request)".into(), |c| {
        let url = url.clone();
        let payload = payload.clone();
        async move {
            let mut t = Tally::default();
            while Instant::now() < deadline {
                let started = Instant::now();
                match c.post(&url).body(payload.clone()).send().await {
                    Ok(r) if r.status().as_u16() == 201 => {
                        let _ = r.bytes().await;
                        t.requests += 1;
                        t.messages += 1;
                        t.bytes += payload.len() as u64;
                        t.latencies.push(started.elapsed());
                    }
                    Ok(r) => {
                        let status = r.status().as_u16();
                        t.fail(|| format!("POST {url}: HTTP {status}")).await;
                    }
                    Err(e) => t.fail(|| format!("POST {url}: {e}")).await,
                }
            }
            t
        }
    })
    .await?;
    drop_queue(plan, &queue).await;
    Ok(row)
}

/// Batched pushes for `plan.duration`.
pub(crate) async fn batched_pushes(plan: &Plan) -> anyhow::Result<Row> {
    let queue = plan.queue("batch");
    let row = fill(
        plan,
        &queue,
        None,
        format!("batch push ({}/req)", plan.batch),
    )
    .await?;
    drop_queue(plan, &queue).await;
    Ok(row)
}

/// Pushes batches to `queue`: `count` messages in all, or for `plan.duration` when `None`.
async fn fill(plan: &Plan, queue: &str, count: Option<u64>, label: String) -> anyhow::Result<Row> {
    let url = format!("{}/v1/queues/{queue}/batch", plan.url);
    let batch = plan.batch as u64;
    let full = batch_json(plan.batch, plan.size);
    let remaining = Arc::new(AtomicU64::new(count.unwrap_or(u64::MAX)));
    let deadline = Instant::now() + count.map_or(plan.duration, |_| FILL_LIMIT);
    let size = plan.size as u64;
    let last_size = plan.size;
    run_workers(plan, label, |c| {
        let url = url.clone();
        let full = full.clone();
        let remaining = remaining.clone();
        async move {
            let mut t = Tally::default();
            while Instant::now() < deadline {
                // Claim up to one batch from what is left.
                let claimed = remaining
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                        (left > 0).then(|| left - left.min(batch))
                    })
                    .map(|left| left.min(batch))
                    .unwrap_or(0);
                if claimed == 0 {
                    break;
                }
                let payload = if claimed == batch {
                    full.clone()
                } else {
                    batch_json(claimed as usize, last_size)
                };
                loop {
                    match post(&c, &url, Some(payload.clone()), &mut t).await {
                        Some((201, _)) => {
                            t.messages += claimed;
                            t.bytes += claimed * size;
                            break;
                        }
                        _ if Instant::now() >= deadline => break,
                        _ => continue,
                    }
                }
            }
            t
        }
    })
    .await
}

/// Fills `plan.messages`, then takes them in batches until the queue is empty or
/// `plan.duration` has passed. Returns the fill row and the take row.
pub(crate) async fn batched_takes(plan: &Plan) -> anyhow::Result<(Row, Row)> {
    let queue = plan.queue("take");
    let fill_row = fill(
        plan,
        &queue,
        Some(plan.messages),
        format!("take prefill ({}/req)", plan.batch),
    )
    .await?;
    let url = format!("{}/v1/queues/{queue}/take?max={}", plan.url, plan.batch);
    let size = plan.size as u64;
    let deadline = Instant::now() + plan.duration;
    let take_row = run_workers(plan, format!("take ({}/req)", plan.batch), |c| {
        let url = url.clone();
        async move {
            let mut t = Tally::default();
            while Instant::now() < deadline {
                let Some((200, reply)) = post(&c, &url, None, &mut t).await else {
                    continue;
                };
                let n = serde_json::from_slice::<serde_json::Value>(&reply)
                    .ok()
                    .and_then(|v| v["messages"].as_array().map(|m| m.len() as u64))
                    .unwrap_or(0);
                if n == 0 {
                    break;
                }
                t.messages += n;
                t.bytes += n * size;
            }
            t
        }
    })
    .await?;
    drop_queue(plan, &queue).await;
    Ok((fill_row, take_row))
}

/// Sends one `PUT {prefix}{n}` of `payload` and checks for 200, timing it into `t`.
/// Returns whether it succeeded.
async fn kv_put(c: &reqwest::Client, url: &str, payload: &Bytes, t: &mut Tally) -> bool {
    let started = Instant::now();
    match c.put(url).body(payload.clone()).send().await {
        Ok(r) if r.status().as_u16() == 200 => {
            let _ = r.bytes().await;
            t.requests += 1;
            t.messages += 1;
            t.bytes += payload.len() as u64;
            t.latencies.push(started.elapsed());
            true
        }
        Ok(r) => {
            let status = r.status().as_u16();
            let reply = r.bytes().await.unwrap_or_default();
            t.fail(|| format!("PUT {url}: HTTP {status}: {}", snippet(&reply)))
                .await;
            false
        }
        Err(e) => {
            t.fail(|| format!("PUT {url}: {e}")).await;
            false
        }
    }
}

/// Sets keys `{prefix}0` … `{prefix}{plan.keys - 1}`, each request the next key of a
/// counter shared by the workers: every key once (retrying failures) when `count` is
/// `Some`, rotating over them for `plan.duration` when `None`.
async fn kv_fill(
    plan: &Plan,
    prefix: &str,
    count: Option<u64>,
    label: String,
) -> anyhow::Result<Row> {
    let base = format!("{}/v1/kv/{prefix}", plan.url);
    let payload = body(plan.size);
    let keys = plan.keys;
    let next = Arc::new(AtomicU64::new(0));
    let limit = count.unwrap_or(u64::MAX);
    let deadline = Instant::now() + count.map_or(plan.duration, |_| FILL_LIMIT);
    run_workers(plan, label, |c| {
        let base = base.clone();
        let payload = payload.clone();
        let next = next.clone();
        async move {
            let mut t = Tally::default();
            while Instant::now() < deadline {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= limit {
                    break;
                }
                let url = format!("{base}{}", n % keys);
                // A fill retries a failed set; a timed run moves on to the next key.
                while !kv_put(&c, &url, &payload, &mut t).await
                    && count.is_some()
                    && Instant::now() < deadline
                {}
            }
            t
        }
    })
    .await
}

/// Deletes the keys a key/value scenario wrote (best effort, untimed).
async fn drop_keys(plan: &Plan, prefix: &str) {
    let base = format!("{}/v1/kv/{prefix}", plan.url);
    let keys = plan.keys;
    let next = Arc::new(AtomicU64::new(0));
    let _ = run_workers(plan, String::new(), |c| {
        let base = base.clone();
        let next = next.clone();
        async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= keys {
                    break;
                }
                let _ = c.delete(format!("{base}{n}")).send().await;
            }
            Tally::default()
        }
    })
    .await;
}

/// Single-value sets of `plan.size` bytes for `plan.duration`, rotating over `plan.keys`
/// keys (each request the next key, whichever worker sends it).
pub(crate) async fn kv_sets(plan: &Plan) -> anyhow::Result<Row> {
    let prefix = plan.key_prefix("kv-set");
    let row = kv_fill(plan, &prefix, None, format!("kv-set ({} keys)", plan.keys)).await?;
    drop_keys(plan, &prefix).await;
    Ok(row)
}

/// Sets every one of `plan.keys` keys once, then gets them for `plan.duration`, rotating
/// over the key space; a get counts only when it is 200 with a value of `plan.size`
/// bytes. Returns the fill row and the get row.
pub(crate) async fn kv_gets(plan: &Plan) -> anyhow::Result<(Row, Row)> {
    let prefix = plan.key_prefix("kv-get");
    let fill_row = kv_fill(
        plan,
        &prefix,
        Some(plan.keys),
        format!("kv prefill ({} keys)", plan.keys),
    )
    .await?;
    let base = format!("{}/v1/kv/{prefix}", plan.url);
    let keys = plan.keys;
    let size = plan.size;
    let next = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + plan.duration;
    let get_row = run_workers(plan, format!("kv-get ({keys} keys)"), |c| {
        let base = base.clone();
        let next = next.clone();
        async move {
            let mut t = Tally::default();
            while Instant::now() < deadline {
                let url = format!("{base}{}", next.fetch_add(1, Ordering::Relaxed) % keys);
                let started = Instant::now();
                let reply = match c.get(&url).send().await {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        r.bytes()
                            .await
                            .map(|b| (status, b))
                            .map_err(|e| format!("GET {url}: reading the reply: {e}"))
                    }
                    Err(e) => Err(format!("GET {url}: {e}")),
                };
                match reply {
                    Ok((200, value)) if value.len() == size => {
                        t.requests += 1;
                        t.messages += 1;
                        t.bytes += size as u64;
                        t.latencies.push(started.elapsed());
                    }
                    Ok((200, value)) => {
                        let got = value.len();
                        t.fail(|| format!("GET {url}: a value of {got} bytes, not {size}"))
                            .await;
                    }
                    Ok((status, reply)) => {
                        t.fail(|| format!("GET {url}: HTTP {status}: {}", snippet(&reply)))
                            .await;
                    }
                    Err(why) => t.fail(|| why).await,
                }
            }
            t
        }
    })
    .await?;
    drop_keys(plan, &prefix).await;
    Ok((fill_row, get_row))
}

/// Reads a `Vm*` line (in KiB) from `/proc/PID/status`.
fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Fills `plan.messages` × `plan.size` bytes and reads the server's RSS around it.
pub(crate) async fn backlog(
    plan: &Plan,
    pid: Option<u32>,
    keep: bool,
) -> anyhow::Result<(Row, Memory)> {
    let queue = plan.queue("backlog");
    let before_kib = pid.and_then(|p| proc_status_kib(p, "VmRSS:"));
    let row = fill(
        plan,
        &queue,
        Some(plan.messages),
        format!("backlog fill ({}/req)", plan.batch),
    )
    .await?;
    // Let background work (checkpoints, cache trims) settle before reading memory.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let memory = Memory {
        queue: queue.clone(),
        messages: row.messages,
        size: plan.size,
        before_kib,
        after_kib: pid.and_then(|p| proc_status_kib(p, "VmRSS:")),
        peak_kib: pid.and_then(|p| proc_status_kib(p, "VmHWM:")),
    };
    if !keep {
        drop_queue(plan, &queue).await;
    }
    Ok((row, memory))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_and_batches_have_the_asked_shape() {
        assert_eq!(body(0).len(), 0);
        assert_eq!(body(200).len(), 200);
        let v: serde_json::Value = serde_json::from_slice(&batch_json(3, 10)).unwrap();
        let messages = v["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 3);
        assert_eq!(messages[0]["body"].as_str().unwrap().len(), 10);
    }

    #[test]
    fn snippets_are_short_and_trimmed() {
        assert_eq!(
            snippet(b"  {\"error\":\"not_found\"}\n"),
            "{\"error\":\"not_found\"}"
        );
        assert_eq!(snippet(&[b'x'; 500]).len(), 200);
    }
}
