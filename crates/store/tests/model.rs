//! Property test: the broker over the real log store against a deliberately naive model
//! (a `Vec` and a few maps), over random sequences of push, take, lease, ack, nack,
//! time passing (delays, TTLs, lease expiry), checkpoints, compaction and restarts. Every reply is
//! compared.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use godwit_core::*;
use godwit_store::{FsyncPolicy, LogStore, StoreOptions};
use proptest::prelude::*;

const Q: &str = "q";

#[derive(Debug, Clone)]
enum Step {
    Push {
        priority: u8,
        delay: Option<u64>,
        ttl: Option<u64>,
        head: bool,
    },
    Take(usize),
    Lease(usize, u64),
    Ack(Vec<usize>),
    Nack(Vec<usize>),
    Advance(u64),
    Checkpoint,
    Compact,
    Restart,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0u8..3, prop::option::weighted(0.2, 1u64..300), prop::option::weighted(0.2, 1u64..400), prop::bool::weighted(0.15))
            .prop_map(|(priority, delay, ttl, head)| Step::Push { priority: priority * 3, delay, ttl, head }),
        2 => (1usize..4).prop_map(Step::Take),
        3 => (1usize..4, 50u64..300).prop_map(|(n, v)| Step::Lease(n, v)),
        2 => prop::collection::vec(0usize..40, 1..3).prop_map(Step::Ack),
        1 => prop::collection::vec(0usize..40, 1..3).prop_map(Step::Nack),
        2 => (1u64..250).prop_map(Step::Advance),
        1 => Just(Step::Checkpoint),
        1 => Just(Step::Compact),
        1 => Just(Step::Restart),
    ]
}

/// One message in the model.
#[derive(Debug, Clone, Copy)]
struct M {
    id: u64,
    priority: u8,
    deliveries: u32,
    expires: u64,
    /// Ready-order key: tail pushes count up, head insertions count down.
    key: i64,
}

#[derive(Default)]
struct Model {
    next_id: u64,
    ready: Vec<M>,
    delayed: Vec<(u64, M)>,
    leased: HashMap<u64, (M, u64)>,
    tail: i64,
    head: i64,
    dead: u64,
}

impl Model {
    fn new() -> Self {
        Model {
            next_id: 1,
            ..Model::default()
        }
    }

    fn push_tail(&mut self, mut m: M) {
        self.tail += 1;
        m.key = self.tail;
        self.ready.push(m);
    }

    fn push_head(&mut self, mut m: M) {
        self.head -= 1;
        m.key = self.head;
        self.ready.push(m);
    }

    fn ordered(&self) -> Vec<M> {
        let mut v = self.ready.clone();
        v.sort_by_key(|m| (std::cmp::Reverse(m.priority), m.key));
        v
    }

    /// Time-driven changes, in the order the broker makes them.
    fn settle(&mut self, now: u64, max_deliveries: u32) {
        self.delayed.sort_by_key(|(due, m)| (*due, m.id));
        let (due, later): (Vec<_>, Vec<_>) = self.delayed.drain(..).partition(|(d, _)| *d <= now);
        self.delayed = later;
        for (_, m) in due {
            self.push_tail(m);
        }
        let mut expired: Vec<(u64, M)> = self
            .leased
            .values()
            .filter(|(_, until)| *until <= now)
            .map(|(m, until)| (*until, *m))
            .collect();
        expired.sort_by_key(|(until, m)| (*until, m.id));
        for (_, m) in expired.iter().rev() {
            self.leased.remove(&m.id);
            if m.deliveries >= max_deliveries {
                self.dead += 1;
            } else {
                self.push_head(*m);
            }
        }
    }

    fn read(&mut self, max: usize, now: u64) -> Vec<M> {
        let mut picked = Vec::new();
        let mut gone = Vec::new();
        for m in self.ordered() {
            if picked.len() >= max {
                break;
            }
            if m.expires != 0 && now >= m.expires {
                gone.push(m.id);
            } else {
                picked.push(m);
            }
        }
        self.ready
            .retain(|m| !gone.contains(&m.id) && !picked.iter().any(|p| p.id == m.id));
        for p in &mut picked {
            p.deliveries += 1;
        }
        picked
    }
}

fn open(dir: &std::path::Path, clock: Arc<ManualClock>) -> Broker {
    let mut opts = StoreOptions::new(dir);
    opts.fsync = FsyncPolicy::Never;
    opts.segment_bytes = 2048;
    let store = LogStore::open(opts).expect("store opens");
    Broker::open(Arc::new(store), clock, BrokerConfig::default()).expect("broker opens")
}

const MAX_DELIVERIES: u32 = 3;

fn run(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    rt.block_on(async {
        let mut broker = open(dir.path(), clock.clone());
        let patch = SettingsPatch {
            max_deliveries: Some(Some(MAX_DELIVERIES)),
            ..SettingsPatch::default()
        };
        broker.configure(Q, patch).await.unwrap();
        let mut model = Model::new();
        // Receipts handed out, by index; the model knows which are live.
        let mut receipts: Vec<(String, u64, u64)> = Vec::new();
        for step in steps {
            let now = clock.now_ms();
            model.settle(now, MAX_DELIVERIES);
            match step {
                Step::Push {
                    priority,
                    delay,
                    ttl,
                    head,
                } => {
                    let mut msg = NewMessage::new(format!("body-{}", model.next_id));
                    msg.priority = priority;
                    msg.delay = delay.map(Duration::from_millis);
                    msg.ttl = ttl.map(Duration::from_millis);
                    msg.at_head = head;
                    let out = broker.push(Q, vec![msg]).await.unwrap();
                    prop_assert_eq!(out[0].id, model.next_id);
                    let m = M {
                        id: model.next_id,
                        priority,
                        deliveries: 0,
                        expires: ttl.map_or(0, |t| now + delay.unwrap_or(0) + t),
                        key: 0,
                    };
                    model.next_id += 1;
                    match delay {
                        Some(d) => model.delayed.push((now + d, m)),
                        None if head => model.push_head(m),
                        None => model.push_tail(m),
                    }
                }
                Step::Take(max) => {
                    let got = broker
                        .take(
                            Q,
                            ReadOptions {
                                max,
                                ..ReadOptions::default()
                            },
                        )
                        .await
                        .unwrap();
                    let want = model.read(max, now);
                    let got_ids: Vec<(u64, u32)> =
                        got.iter().map(|m| (m.id, m.deliveries)).collect();
                    let want_ids: Vec<(u64, u32)> =
                        want.iter().map(|m| (m.id, m.deliveries)).collect();
                    prop_assert_eq!(got_ids, want_ids);
                    for m in &got {
                        prop_assert_eq!(m.body.to_vec(), format!("body-{}", m.id).into_bytes());
                    }
                }
                Step::Lease(max, vis) => {
                    let got = broker
                        .lease(
                            Q,
                            LeaseOptions {
                                read: ReadOptions {
                                    max,
                                    ..ReadOptions::default()
                                },
                                visibility: Duration::from_millis(vis),
                                session: None,
                            },
                        )
                        .await
                        .unwrap();
                    let want = model.read(max, now);
                    let got_ids: Vec<(u64, u32)> =
                        got.iter().map(|m| (m.id, m.deliveries)).collect();
                    let want_ids: Vec<(u64, u32)> =
                        want.iter().map(|m| (m.id, m.deliveries)).collect();
                    prop_assert_eq!(got_ids, want_ids);
                    for (g, w) in got.iter().zip(want) {
                        model.leased.insert(w.id, (w, now + vis));
                        receipts.push((g.receipt.clone().unwrap(), w.id, now + vis));
                    }
                }
                Step::Ack(idx) | Step::Nack(idx) if receipts.is_empty() => {
                    let _ = idx;
                }
                Step::Ack(idx) => {
                    let chosen: Vec<&(String, u64, u64)> =
                        idx.iter().map(|i| &receipts[i % receipts.len()]).collect();
                    let rs: Vec<String> = chosen.iter().map(|r| r.0.clone()).collect();
                    let n = broker.ack(Q, &rs).await.unwrap();
                    let mut want = 0;
                    let mut seen = Vec::new();
                    for (_, id, until) in chosen {
                        if seen.contains(id) {
                            continue;
                        }
                        if model.leased.get(id).is_some_and(|(_, u)| u == until) {
                            model.leased.remove(id);
                            want += 1;
                            seen.push(*id);
                        }
                    }
                    prop_assert_eq!(n, want);
                }
                Step::Nack(idx) => {
                    let chosen: Vec<(String, u64, u64)> = idx
                        .iter()
                        .map(|i| receipts[i % receipts.len()].clone())
                        .collect();
                    let rs: Vec<String> = chosen.iter().map(|r| r.0.clone()).collect();
                    let n = broker.nack(Q, &rs).await.unwrap();
                    let live: Vec<M> = {
                        let mut live = Vec::new();
                        for (_, id, until) in &chosen {
                            if let Some((m, u)) = model.leased.get(id) {
                                if u == until && !live.iter().any(|l: &M| l.id == *id) {
                                    live.push(*m);
                                }
                            }
                        }
                        live
                    };
                    prop_assert_eq!(n, live.len());
                    for m in live.iter().rev() {
                        model.leased.remove(&m.id);
                        if m.deliveries >= MAX_DELIVERIES {
                            model.dead += 1;
                        } else {
                            model.push_head(*m);
                        }
                    }
                }
                Step::Advance(ms) => clock.advance(ms),
                Step::Checkpoint => broker.checkpoint().await.unwrap(),
                Step::Compact => {
                    broker.compact().await.unwrap();
                }
                Step::Restart => {
                    drop(broker);
                    broker = open(dir.path(), clock.clone());
                    let mut back: Vec<(u64, M)> = model
                        .leased
                        .drain()
                        .map(|(_, (m, until))| (until, m))
                        .collect();
                    back.sort_by_key(|(until, m)| (*until, m.id));
                    for (_, m) in back.into_iter().rev() {
                        model.push_head(m);
                    }
                    // Old receipts stay in the list: they must now ack nothing.
                    for r in &mut receipts {
                        r.2 = u64::MAX;
                    }
                }
            }
            let now = clock.now_ms();
            model.settle(now, MAX_DELIVERIES);
            let stats = broker.stats(Q).unwrap();
            prop_assert_eq!(stats.ready, model.ready.len() as u64, "ready");
            prop_assert_eq!(stats.in_flight, model.leased.len() as u64, "in flight");
            prop_assert_eq!(stats.delayed, model.delayed.len() as u64, "delayed");
            prop_assert_eq!(stats.next_id, model.next_id, "next id");
            let dlq = broker
                .stats(&format!("{Q}.dlq"))
                .map(|s| s.ready)
                .unwrap_or(0);
            prop_assert_eq!(dlq, model.dead, "dead letters");
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn broker_matches_model(steps in prop::collection::vec(step(), 1..80)) {
        run(steps)?;
    }
}
