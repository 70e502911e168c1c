//! Property test: the broker over the in-memory store against a deliberately naive model
//! (a `Vec` and a few maps per subscription), over random sequences of push, take, lease,
//! ack, nack on the default subscription and a named one (fan-out), time passing (delays,
//! TTLs, lease expiry, dead letters), checkpoints, compaction and restarts. Every reply
//! and the counters of both subscriptions are compared after every step.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use godwit_core::storage::memory::MemoryStorage;
use godwit_core::*;
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
    Take(usize, usize),
    Lease(usize, usize, u64),
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
        2 => (0usize..2, 1usize..4).prop_map(|(sub, n)| Step::Take(sub, n)),
        3 => (0usize..2, 1usize..4, 50u64..300).prop_map(|(sub, n, v)| Step::Lease(sub, n, v)),
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

/// One subscription's state in the model.
#[derive(Default)]
struct SubModel {
    ready: Vec<M>,
    delayed: Vec<(u64, M)>,
    leased: HashMap<u64, (M, u64)>,
    tail: i64,
    head: i64,
}

impl SubModel {
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
    /// Returns how many leases were dead-lettered.
    fn settle(&mut self, now: u64, max_deliveries: u32) -> u64 {
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
        let mut dead = 0;
        for (_, m) in expired.iter().rev() {
            self.leased.remove(&m.id);
            if m.deliveries >= max_deliveries {
                dead += 1;
            } else {
                self.push_head(*m);
            }
        }
        // Expired messages leave eagerly (the broker's expiry index).
        self.ready.retain(|m| m.expires == 0 || now < m.expires);
        dead
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

/// The queue in the model: the default subscription (0) and "s1" (1).
struct Model {
    next_id: u64,
    subs: [SubModel; 2],
    dead: u64,
}

impl Model {
    fn new() -> Self {
        Model {
            next_id: 1,
            subs: Default::default(),
            dead: 0,
        }
    }

    fn settle(&mut self, now: u64, max_deliveries: u32) {
        for s in &mut self.subs {
            self.dead += s.settle(now, max_deliveries);
        }
    }
}

/// The broker's name of model subscription `i`.
fn sub_name(i: usize) -> Option<String> {
    (i == 1).then(|| "s1".to_string())
}

/// Small segments, so compaction and checkpoints reclaim within one case.
const SEGMENT_BYTES: u32 = 2048;

fn open(store: &Arc<MemoryStorage>, clock: Arc<ManualClock>) -> Broker {
    Broker::open(store.clone(), clock, BrokerConfig::default()).expect("broker opens")
}

const MAX_DELIVERIES: u32 = 3;

/// A read's reply matches the model's: same ids and delivery counts in the same order,
/// and each body is the one pushed with that id.
fn same_messages(got: &[Message], want: &[M]) -> Result<(), TestCaseError> {
    let got_ids: Vec<(u64, u32)> = got.iter().map(|m| (m.id, m.deliveries)).collect();
    let want_ids: Vec<(u64, u32)> = want.iter().map(|m| (m.id, m.deliveries)).collect();
    prop_assert_eq!(got_ids, want_ids);
    for m in got {
        prop_assert_eq!(m.body.to_vec(), format!("body-{}", m.id).into_bytes());
    }
    Ok(())
}

fn run(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = Arc::new(MemoryStorage::new(SEGMENT_BYTES));
    let clock = Arc::new(ManualClock::new(1_000_000));
    rt.block_on(async {
        let mut broker = open(&store, clock.clone());
        let patch = SettingsPatch {
            max_deliveries: Some(Some(MAX_DELIVERIES)),
            ..SettingsPatch::default()
        };
        broker.configure(Q, patch).await.unwrap();
        broker.subscribe(Q, "s1", StartAt::Latest).await.unwrap();
        let mut model = Model::new();
        // Receipts handed out: (receipt, subscription, id, lease deadline).
        let mut receipts: Vec<(Receipt, usize, u64, u64)> = Vec::new();
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
                    for sub in &mut model.subs {
                        match delay {
                            Some(d) => sub.delayed.push((now + d, m)),
                            None if head => sub.push_head(m),
                            None => sub.push_tail(m),
                        }
                    }
                }
                Step::Take(which, max) => {
                    let got = broker
                        .take(
                            Q,
                            ReadOptions {
                                max,
                                subscription: sub_name(which),
                                ..ReadOptions::default()
                            },
                        )
                        .await
                        .unwrap()
                        .into_messages()
                        .await
                        .unwrap();
                    let want = model.subs[which].read(max, now);
                    same_messages(&got, &want)?;
                }
                Step::Lease(which, max, vis) => {
                    let got = broker
                        .lease(
                            Q,
                            LeaseOptions {
                                read: ReadOptions {
                                    max,
                                    subscription: sub_name(which),
                                    ..ReadOptions::default()
                                },
                                visibility: Duration::from_millis(vis),
                            },
                        )
                        .await
                        .unwrap()
                        .into_messages()
                        .await
                        .unwrap();
                    let want = model.subs[which].read(max, now);
                    same_messages(&got, &want)?;
                    for (g, w) in got.iter().zip(want) {
                        model.subs[which].leased.insert(w.id, (w, now + vis));
                        receipts.push((g.receipt.clone().unwrap(), which, w.id, now + vis));
                    }
                }
                Step::Ack(idx) | Step::Nack(idx) if receipts.is_empty() => {
                    let _ = idx;
                }
                Step::Ack(idx) => {
                    let chosen: Vec<&(Receipt, usize, u64, u64)> =
                        idx.iter().map(|i| &receipts[i % receipts.len()]).collect();
                    let rs: Vec<Receipt> = chosen.iter().map(|r| r.0.clone()).collect();
                    let n = broker.ack(Q, &rs).await.unwrap();
                    let mut want = 0;
                    for (_, which, id, until) in chosen {
                        let leased = &mut model.subs[*which].leased;
                        if leased.get(id).is_some_and(|(_, u)| u == until) {
                            leased.remove(id);
                            want += 1;
                        }
                    }
                    prop_assert_eq!(n, want);
                }
                Step::Nack(idx) => {
                    let chosen: Vec<(Receipt, usize, u64, u64)> = idx
                        .iter()
                        .map(|i| receipts[i % receipts.len()].clone())
                        .collect();
                    let rs: Vec<Receipt> = chosen.iter().map(|r| r.0.clone()).collect();
                    let n = broker.nack(Q, &rs).await.unwrap();
                    let mut live: Vec<(usize, M)> = Vec::new();
                    for (_, which, id, until) in &chosen {
                        if let Some((m, u)) = model.subs[*which].leased.get(id) {
                            if u == until && !live.iter().any(|(w, l)| w == which && l.id == *id) {
                                live.push((*which, *m));
                            }
                        }
                    }
                    prop_assert_eq!(n, live.len());
                    for (which, m) in live.iter().rev() {
                        let sub = &mut model.subs[*which];
                        sub.leased.remove(&m.id);
                        if m.deliveries >= MAX_DELIVERIES {
                            model.dead += 1;
                        } else {
                            sub.push_head(*m);
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
                    broker = open(&store, clock.clone());
                    for sub in &mut model.subs {
                        let mut back: Vec<(u64, M)> = sub
                            .leased
                            .drain()
                            .map(|(_, (m, until))| (until, m))
                            .collect();
                        back.sort_by_key(|(until, m)| (*until, m.id));
                        for (_, m) in back.into_iter().rev() {
                            sub.push_head(m);
                        }
                    }
                    // Old receipts stay in the list: they must now ack nothing.
                    for r in &mut receipts {
                        r.3 = u64::MAX;
                    }
                }
            }
            let now = clock.now_ms();
            model.settle(now, MAX_DELIVERIES);
            let stats = broker.stats(Q).unwrap();
            let d = &model.subs[0];
            prop_assert_eq!(stats.ready, d.ready.len() as u64, "ready");
            prop_assert_eq!(stats.in_flight, d.leased.len() as u64, "in flight");
            prop_assert_eq!(stats.delayed, d.delayed.len() as u64, "delayed");
            prop_assert_eq!(stats.next_id, model.next_id, "next id");
            let named = broker.subscriptions(Q).unwrap();
            let s1 = &model.subs[1];
            prop_assert_eq!(named.len(), 1);
            prop_assert_eq!(
                (named[0].ready, named[0].in_flight, named[0].delayed),
                (
                    s1.ready.len() as u64,
                    s1.leased.len() as u64,
                    s1.delayed.len() as u64
                ),
                "s1 counters"
            );
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
    #![proptest_config(ProptestConfig { cases: 128, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn broker_matches_model(steps in prop::collection::vec(step(), 1..80)) {
        run(steps)?;
    }
}
