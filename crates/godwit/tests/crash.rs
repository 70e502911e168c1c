//! Durability under `kill -9`: acknowledged pushes and takes survive a crash at an
//! arbitrary instant, nothing is delivered twice, and ids keep rising.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{bodies, ids, TestServer};
use serde_json::{json, Value};

const QUEUE: &str = "crash";
const PUSHERS: usize = 8;
const TAKERS: usize = 2;
const CYCLES: usize = 3;
/// How long takers run alongside the pushers in each cycle.
const TAKE_PHASE: Duration = Duration::from_millis(1500);
/// How long pushers keep going alone before the kill.
const PUSH_ONLY_PHASE: Duration = Duration::from_millis(500);
/// Hard bound on any worker loop, whatever happens to the server.
const WORKER_LIMIT: Duration = Duration::from_secs(20);

/// What one pusher saw: every body it tried, and the ids of those acknowledged.
#[derive(Default)]
struct PushLog {
    attempted: Vec<String>,
    acked: Vec<(u64, String)>,
    unexpected: Vec<String>,
}

/// What one taker saw: every message in an acknowledged take reply.
#[derive(Default)]
struct TakeLog {
    taken: Vec<(u64, String)>,
    unexpected: Vec<String>,
}

async fn pusher(client: reqwest::Client, url: String, tag: String) -> PushLog {
    let mut log = PushLog::default();
    let started = Instant::now();
    let mut seq = 0u64;
    while started.elapsed() < WORKER_LIMIT {
        seq += 1;
        let body = format!("{tag}-{seq}");
        log.attempted.push(body.clone());
        // A connection error means the server died: the push may or may not have landed.
        let Ok(resp) = client.post(&url).body(body.clone()).send().await else {
            break;
        };
        let status = resp.status().as_u16();
        let Ok(reply) = resp.json::<Value>().await else {
            break;
        };
        match (status, reply["id"].as_u64()) {
            (201, Some(id)) => log.acked.push((id, body)),
            _ => log
                .unexpected
                .push(format!("push {body}: {status} {reply}")),
        }
    }
    log
}

async fn taker(client: reqwest::Client, url: String, stop: Arc<AtomicBool>) -> TakeLog {
    let mut log = TakeLog::default();
    let started = Instant::now();
    while !stop.load(Ordering::SeqCst) && started.elapsed() < WORKER_LIMIT {
        let Ok(resp) = client.post(&url).send().await else {
            log.unexpected
                .push("take failed while the server was up".into());
            break;
        };
        let status = resp.status().as_u16();
        let reply: Value = match resp.json().await {
            Ok(v) => v,
            Err(e) => {
                log.unexpected.push(format!("take reply: {e}"));
                break;
            }
        };
        let Some(messages) = reply["messages"].as_array().filter(|_| status == 200) else {
            log.unexpected.push(format!("take: {status} {reply}"));
            continue;
        };
        for (id, body) in ids(messages).into_iter().zip(bodies(messages)) {
            log.taken.push((id, body));
        }
    }
    log
}

/// Everything acknowledged to clients over the whole test.
#[derive(Default)]
struct Ledger {
    /// Acknowledged pushes: id -> body.
    pushed: BTreeMap<u64, String>,
    /// Every body a pusher tried (acknowledged or not).
    attempted: HashSet<String>,
    /// Acknowledged deliveries, in order: (id, body).
    delivered: Vec<(u64, String)>,
    /// Largest id any client has seen.
    max_seen: u64,
}

impl Ledger {
    fn record_pushes(&mut self, cycle: usize, logs: Vec<PushLog>) {
        let floor = self.max_seen;
        for log in logs {
            assert!(log.unexpected.is_empty(), "{:?}", log.unexpected);
            self.attempted.extend(log.attempted);
            for (id, body) in log.acked {
                assert!(
                    id > floor,
                    "cycle {cycle}: push got id {id}, not above {floor} seen before the crash"
                );
                if let Some(other) = self.pushed.insert(id, body.clone()) {
                    panic!("id {id} acknowledged for both {other:?} and {body:?}");
                }
            }
        }
    }

    fn record_deliveries(&mut self, taken: Vec<(u64, String)>) {
        self.delivered.extend(taken);
    }

    fn update_max_seen(&mut self) {
        let pushed = self.pushed.keys().next_back().copied().unwrap_or(0);
        let delivered = self.delivered.iter().map(|(id, _)| *id).max().unwrap_or(0);
        self.max_seen = self.max_seen.max(pushed).max(delivered);
    }
}

/// One cycle: pushers and takers under load, takers stop (so no take reply is lost in
/// flight), pushers go on, and the server is killed with SIGKILL mid-push.
async fn load_then_kill(server: &mut TestServer, cycle: usize, ledger: &mut Ledger) {
    let push_url = server.url(&format!("/v1/queues/{QUEUE}/messages"));
    let take_url = server.url(&format!("/v1/queues/{QUEUE}/take?max=20&wait_ms=50"));
    let stop_takers = Arc::new(AtomicBool::new(false));
    let pushers: Vec<_> = (0..PUSHERS)
        .map(|p| {
            // One client per worker: its own keep-alive connection.
            let client = reqwest::Client::new();
            tokio::spawn(pusher(client, push_url.clone(), format!("c{cycle}-p{p}")))
        })
        .collect();
    let takers: Vec<_> = (0..TAKERS)
        .map(|_| {
            let client = reqwest::Client::new();
            tokio::spawn(taker(client, take_url.clone(), stop_takers.clone()))
        })
        .collect();

    tokio::time::sleep(TAKE_PHASE).await;
    stop_takers.store(true, Ordering::SeqCst);
    for t in takers {
        let log = t.await.expect("taker task");
        assert!(
            log.unexpected.is_empty(),
            "{:?}\nserver stderr:\n{}",
            log.unexpected,
            server.stderr()
        );
        ledger.record_deliveries(log.taken);
    }
    tokio::time::sleep(PUSH_ONLY_PHASE).await;
    server.kill9();

    let mut logs = Vec::new();
    for p in pushers {
        logs.push(p.await.expect("pusher task"));
    }
    let acked: usize = logs.iter().map(|l| l.acked.len()).sum();
    assert!(acked > 0, "cycle {cycle}: no push was acknowledged");
    ledger.record_pushes(cycle, logs);
    ledger.update_max_seen();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_under_load_loses_and_duplicates_nothing() {
    kill9_cycles(&["--fsync", "always"]).await;
}

/// The same with checkpoints, segment rolls and reclamation happening all through the
/// load, so kills also land in the middle of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_during_checkpoints_and_segment_rolls_loses_and_duplicates_nothing() {
    kill9_cycles(&[
        "--fsync",
        "always",
        "--checkpoint-bytes",
        "65536",
        "--segment-bytes",
        "65536",
    ])
    .await;
}

async fn kill9_cycles(args: &[&str]) {
    let mut server = TestServer::start(args).await;
    let mut ledger = Ledger::default();
    for cycle in 0..CYCLES {
        load_then_kill(&mut server, cycle, &mut ledger).await;
        server.restart().await;
    }

    // The ids of pushes after the last restart rise above everything seen.
    let after = server.push(QUEUE, "after-last-restart").await;
    assert!(
        after > ledger.max_seen,
        "push after restart got id {after}, not above {}",
        ledger.max_seen
    );
    ledger.attempted.insert("after-last-restart".into());
    ledger.pushed.insert(after, "after-last-restart".into());

    let drained = server.drain(QUEUE, 10_000_000).await;
    let drained: Vec<(u64, String)> = ids(&drained).into_iter().zip(bodies(&drained)).collect();

    // Nothing duplicated: no id and no body is delivered twice, before or after crashes.
    let mut seen_ids = HashMap::new();
    let mut seen_bodies = HashSet::new();
    for (phase, (id, body)) in ledger
        .delivered
        .iter()
        .map(|d| ("before a crash", d))
        .chain(drained.iter().map(|d| ("in the final drain", d)))
    {
        if let Some(first) = seen_ids.insert(*id, phase) {
            panic!("id {id} ({body}) delivered {first} and again {phase}");
        }
        assert!(
            seen_bodies.insert(body.clone()),
            "body {body} delivered twice (second time {phase})"
        );
        assert!(
            ledger.attempted.contains(body),
            "delivered a body nobody pushed: {body}"
        );
        if let Some(pushed) = ledger.pushed.get(id) {
            assert_eq!(pushed, body, "id {id} came back with another body");
        }
    }

    // Nothing lost: every acknowledged push was delivered before a crash or is still there.
    let lost: Vec<_> = ledger
        .pushed
        .iter()
        .filter(|(id, _)| !seen_ids.contains_key(id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged pushes lost, e.g. {:?} (of {} acknowledged, {} taken before, {} drained)",
        lost.len(),
        lost.iter().take(5).collect::<Vec<_>>(),
        ledger.pushed.len(),
        ledger.delivered.len(),
        drained.len()
    );
    eprintln!(
        "crash test: {} pushes acknowledged, {} taken before crashes, {} drained after",
        ledger.pushed.len(),
        ledger.delivered.len(),
        drained.len()
    );
    // The drain comes out in id order within the single default priority.
    let drained_ids: Vec<u64> = drained.iter().map(|(id, _)| *id).collect();
    let mut sorted = drained_ids.clone();
    sorted.sort_unstable();
    assert_eq!(drained_ids, sorted, "drain is FIFO by id");
}

#[tokio::test]
async fn kill9_returns_unacked_leases_and_keeps_acked_ones_gone() {
    let mut server = TestServer::start(&["--fsync", "always"]).await;
    for i in 1..=10 {
        server.push("leases", &format!("m{i}")).await;
    }
    let leased = server
        .post("/v1/queues/leases/lease?max=6&visibility_ms=60000")
        .await
        .messages();
    assert_eq!(ids(&leased), vec![1, 2, 3, 4, 5, 6]);
    let receipts: Vec<Value> = leased[..3].iter().map(|m| m["receipt"].clone()).collect();
    let ack = server
        .post_json("/v1/queues/leases/ack", &json!({ "receipts": receipts }))
        .await;
    assert_eq!(ack.json, json!({"acked": 3}), "{ack:?}");

    server.kill9();
    server.restart().await;

    let stats = server.stats("leases").await;
    assert_eq!(
        stats["in_flight"], 0,
        "leases of a dead process are released: {stats}"
    );
    assert_eq!(stats["ready"], 7, "{stats}");
    let again = server
        .post("/v1/queues/leases/lease?max=10&visibility_ms=60000")
        .await
        .messages();
    let mut got = ids(&again);
    got.sort_unstable();
    assert_eq!(
        got,
        vec![4, 5, 6, 7, 8, 9, 10],
        "acked stay gone, unacked return"
    );
    for m in &again {
        let id = m["id"].as_u64().unwrap();
        let expected = if id <= 6 { 2 } else { 1 };
        assert_eq!(
            m["deliveries"], expected,
            "delivery count survives the crash: {m}"
        );
    }
    // The old receipts are stale after the crash.
    let old: Vec<Value> = leased[3..].iter().map(|m| m["receipt"].clone()).collect();
    let ack = server
        .post_json("/v1/queues/leases/ack", &json!({ "receipts": old }))
        .await;
    assert_eq!(
        ack.json,
        json!({"acked": 0}),
        "receipts from before the crash: {ack:?}"
    );
    assert_eq!(server.push("leases", "m11").await, 11);
}

/// Leases and acks under load through a kill: an acknowledged ack is final (the message
/// never comes back), and every acknowledged push is either acked or comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_during_lease_and_ack_keeps_acks_final() {
    let mut server = TestServer::start(&["--fsync", "always"]).await;
    let mut pushed: BTreeMap<u64, String> = BTreeMap::new();
    let mut acked: HashSet<u64> = HashSet::new();
    let mut in_doubt: HashSet<u64> = HashSet::new();
    for cycle in 0..2 {
        let push_url = server.url("/v1/queues/acks/messages");
        let base = server.url("/v1/queues/acks");
        let pushers: Vec<_> = (0..4)
            .map(|p| {
                tokio::spawn(pusher(
                    reqwest::Client::new(),
                    push_url.clone(),
                    format!("a{cycle}-p{p}"),
                ))
            })
            .collect();
        let ackers: Vec<_> = (0..4)
            .map(|_| {
                let client = reqwest::Client::new();
                let base = base.clone();
                tokio::spawn(async move {
                    let mut done: Vec<u64> = Vec::new();
                    // Ids whose ack was sent but got no reply: it may or may not have landed.
                    let mut in_doubt: Vec<u64> = Vec::new();
                    let started = Instant::now();
                    while started.elapsed() < WORKER_LIMIT {
                        let Ok(r) = client
                            .post(format!(
                                "{base}/lease?max=10&visibility_ms=60000&wait_ms=50"
                            ))
                            .send()
                            .await
                        else {
                            break;
                        };
                        let Ok(v) = r.json::<Value>().await else {
                            break;
                        };
                        let msgs = v["messages"].as_array().cloned().unwrap_or_default();
                        if msgs.is_empty() {
                            continue;
                        }
                        let receipts: Vec<Value> =
                            msgs.iter().map(|m| m["receipt"].clone()).collect();
                        let Ok(r) = client
                            .post(format!("{base}/ack"))
                            .json(&json!({ "receipts": receipts }))
                            .send()
                            .await
                        else {
                            in_doubt.extend(ids(&msgs));
                            break;
                        };
                        let Ok(v) = r.json::<Value>().await else {
                            in_doubt.extend(ids(&msgs));
                            break;
                        };
                        assert_eq!(v["acked"].as_u64(), Some(msgs.len() as u64), "{v}");
                        done.extend(ids(&msgs));
                    }
                    (done, in_doubt)
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(2000)).await;
        server.kill9();
        for p in pushers {
            let log = p.await.expect("pusher");
            assert!(log.unexpected.is_empty(), "{:?}", log.unexpected);
            for (id, body) in log.acked {
                assert!(
                    pushed.insert(id, body).is_none(),
                    "id {id} acknowledged twice"
                );
            }
        }
        for a in ackers {
            let (done, doubt) = a.await.expect("acker");
            for id in done {
                assert!(acked.insert(id), "id {id} acked twice");
            }
            in_doubt.extend(doubt);
        }
        server.restart().await;
    }
    let drained = ids(&server.drain("acks", 1_000_000).await);
    for id in &drained {
        assert!(
            !acked.contains(id),
            "id {id} was acked before a crash and came back"
        );
    }
    let drained: HashSet<u64> = drained.into_iter().collect();
    let lost: Vec<_> = pushed
        .keys()
        .filter(|id| !acked.contains(id) && !drained.contains(id) && !in_doubt.contains(id))
        .take(5)
        .collect();
    if !lost.is_empty() {
        let stats = server.stats("acks").await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let later = ids(&server.drain("acks", 1_000_000).await);
        panic!(
            "acknowledged pushes neither acked nor back: {lost:?}; stats after the drain: \
             {stats}; taken 1.5 s later: {later:?}; server log:\n{}",
            server.stderr()
        );
    }
    eprintln!(
        "lease crash test: {} pushed, {} acked, {} back after the crashes, {} acks in doubt",
        pushed.len(),
        acked.len(),
        drained.len(),
        in_doubt.len()
    );
}
