//! Property test: the broker over the in-memory store against a deliberately naive model
//! (a `Vec` and a few maps per subscription), over random sequences of push, take, lease,
//! ack, nack on the default subscription and a named one (fan-out), time passing (delays,
//! TTLs, lease expiry, dead letters), checkpoints, compaction and restarts; and of the
//! two-step delivery: deliveries dropped unconfirmed, deliveries held open across other
//! steps (then confirmed or dropped), leases owned by a session that ends, and crashes
//! while a delivery or a session is open; and of both ends: takes from the tail, moves
//! from either end of a subscription to either end of a second queue (confirmed or
//! dropped), deletes by id, soft gets and range reads by position. Every reply, the
//! ready order of both subscriptions and of the second queue (by peek and by range),
//! soft-get counters and the counters are compared after every step. Unique pushes and
//! removes by value run against the value index, and after every step `contains` of
//! every body pushed so far must agree with a scan of the model. The key/value namespace
//! runs alongside: conditional sets (compare-and-swap by version included), counters,
//! appends, TTLs, expiry changes and deletes against a map, every key's value, version
//! and TTL compared after every step, through the same checkpoints, compactions and
//! restarts.
//!
//! A second property (`cursors_match_model`) runs a log-retention queue with the default
//! subscription, two named consuming ones and a bare cursor against a model of cursors:
//! pushes, takes, leases and acks, seeks anywhere (before the start, inside, past the
//! end), resets of every cursor, paged reads of the log by id and from the bare cursor
//! (whose takes are refused), time passing, checkpoints, compaction and restarts; after
//! every step each subscription's ready order, counters, cursor position and last-action
//! time, and the whole log read page by page, must match.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use godwit_core::storage::faulty::FaultyStorage;
use godwit_core::storage::memory::MemoryStorage;
use godwit_core::*;
use proptest::prelude::*;

const Q: &str = "q";
/// Where moves go.
const DST: &str = "dst";
const MAX_DELIVERIES: u32 = 3;
/// Small segments, so compaction and checkpoints reclaim within one case.
const SEGMENT_BYTES: u32 = 2048;
/// Most deliveries held open at once.
const MAX_HELD: usize = 3;

/// How a read consumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Take,
    /// A lease with this visibility (ms).
    Lease(u64),
    /// A lease through the open session (one is opened if none is).
    SessionLease(u64),
}

#[derive(Debug, Clone)]
enum Step {
    Push {
        priority: u8,
        delay: Option<u64>,
        ttl: Option<u64>,
        head: bool,
    },
    Take(usize, usize),
    /// A take from the tail.
    TakeTail(usize, usize),
    /// A move of up to `max` from an end of a subscription to an end of [`DST`],
    /// confirmed or dropped.
    Move {
        sub: usize,
        max: usize,
        from_tail: bool,
        to_head: bool,
        confirm: bool,
    },
    /// Deletes by id (ids taken modulo the ids pushed so far) from a subscription.
    Delete(usize, Vec<u64>),
    /// A soft get of a subscription's head.
    SoftGet(usize),
    /// A range read by position of a subscription.
    Range(usize, i64, i64),
    /// A unique push of the body of message `k` (modulo the ids so far, or a new one).
    UniquePush(u64),
    /// Removes by value (the body of message `k`) up to a count from an end.
    RemoveValue(usize, u64, i64),
    Lease(usize, usize, u64),
    /// A read whose delivery is dropped unconfirmed (after `written()` if the flag says).
    Drop {
        sub: usize,
        max: usize,
        kind: Kind,
        written: bool,
    },
    /// A read whose delivery stays open across the following steps.
    Hold {
        sub: usize,
        max: usize,
        kind: Kind,
    },
    /// Confirms (true) or drops a held delivery.
    Settle(usize, bool),
    /// A confirmed lease through the session.
    SessionLease(usize, usize, u64),
    /// Ends the session by `end()` (true) or by dropping it; its held deliveries are
    /// confirmed (true) or dropped first.
    EndSession {
        end: bool,
        confirm_held: bool,
    },
    Ack(Vec<usize>),
    Nack(Vec<usize>),
    Advance(u64),
    Checkpoint,
    Compact,
    Restart,
    /// A key/value write: key, a number (or text), TTL, condition (0 always, 1 if
    /// absent, 2 if present, 3 at the current version, 4 at a stale one).
    KvSet {
        key: u8,
        num: i16,
        text: bool,
        ttl: Option<u64>,
        cond: u8,
    },
    KvIncr(u8, i16),
    KvAppend(u8, bool),
    KvExpire(u8, Option<u64>),
    KvDelete(u8),
}

/// Keys of the model's key/value steps.
const KEYS: u8 = 4;

fn key(k: u8) -> String {
    format!("key-{k}")
}

/// One key in the model.
#[derive(Debug, Clone)]
struct KvM {
    value: Vec<u8>,
    version: u64,
    expires: u64,
}

impl KvM {
    fn live(&self, now: u64) -> bool {
        self.expires == 0 || now < self.expires
    }
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Take),
        (50u64..300).prop_map(Kind::Lease),
        (50u64..300).prop_map(Kind::SessionLease),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0u8..3, prop::option::weighted(0.2, 1u64..300), prop::option::weighted(0.2, 1u64..400), prop::bool::weighted(0.15))
            .prop_map(|(priority, delay, ttl, head)| Step::Push { priority: priority * 3, delay, ttl, head }),
        2 => (0usize..2, 1usize..4).prop_map(|(sub, n)| Step::Take(sub, n)),
        1 => (0usize..2, 1usize..4).prop_map(|(sub, n)| Step::TakeTail(sub, n)),
        2 => (0usize..2, 1usize..3, any::<bool>(), any::<bool>(), prop::bool::weighted(0.8))
            .prop_map(|(sub, max, from_tail, to_head, confirm)| Step::Move { sub, max, from_tail, to_head, confirm }),
        1 => (0usize..2, prop::collection::vec(0u64..40, 1..3)).prop_map(|(sub, ids)| Step::Delete(sub, ids)),
        1 => (0usize..2).prop_map(Step::SoftGet),
        1 => (0usize..2, -12i64..12, -12i64..12).prop_map(|(sub, a, b)| Step::Range(sub, a, b)),
        2 => (0u64..60).prop_map(Step::UniquePush),
        1 => (0usize..2, 0u64..60, -2i64..3).prop_map(|(sub, k, n)| Step::RemoveValue(sub, k, n)),
        3 => (0usize..2, 1usize..4, 50u64..300).prop_map(|(sub, n, v)| Step::Lease(sub, n, v)),
        2 => (0usize..2, 1usize..4, kind(), any::<bool>())
            .prop_map(|(sub, max, kind, written)| Step::Drop { sub, max, kind, written }),
        2 => (0usize..2, 1usize..4, kind()).prop_map(|(sub, max, kind)| Step::Hold { sub, max, kind }),
        2 => (0usize..MAX_HELD, any::<bool>()).prop_map(|(i, confirm)| Step::Settle(i, confirm)),
        2 => (0usize..2, 1usize..4, 50u64..300).prop_map(|(sub, n, v)| Step::SessionLease(sub, n, v)),
        1 => (any::<bool>(), any::<bool>())
            .prop_map(|(end, confirm_held)| Step::EndSession { end, confirm_held }),
        2 => prop::collection::vec(0usize..40, 1..3).prop_map(Step::Ack),
        1 => prop::collection::vec(0usize..40, 1..3).prop_map(Step::Nack),
        2 => (1u64..250).prop_map(Step::Advance),
        1 => Just(Step::Checkpoint),
        1 => Just(Step::Compact),
        1 => Just(Step::Restart),
        2 => (0..KEYS, -50i16..50, prop::bool::weighted(0.2), prop::option::weighted(0.3, 1u64..400), 0u8..5)
            .prop_map(|(key, num, text, ttl, cond)| Step::KvSet { key, num, text, ttl, cond }),
        1 => (0..KEYS, -20i16..20).prop_map(|(k, d)| Step::KvIncr(k, d)),
        1 => (0..KEYS, any::<bool>()).prop_map(|(k, front)| Step::KvAppend(k, front)),
        1 => (0..KEYS, prop::option::weighted(0.6, 0u64..400)).prop_map(|(k, t)| Step::KvExpire(k, t)),
        1 => (0..KEYS).prop_map(Step::KvDelete),
    ]
}

/// One message in the model.
#[derive(Debug, Clone, Copy)]
struct M {
    id: u64,
    priority: u8,
    deliveries: u32,
    soft_gets: u32,
    /// The id its body was pushed with (a moved message keeps its body).
    origin: u64,
    expires: u64,
    /// Ready-order key: tail pushes count up, head insertions count down.
    key: i64,
}

/// A lease in the model; `serial` names it (a receipt of another lease of the same
/// message, or of one from before a restart, names nothing).
#[derive(Debug, Clone, Copy)]
struct Leased {
    m: M,
    until: u64,
    serial: u64,
}

/// One subscription's state in the model.
#[derive(Default)]
struct SubModel {
    ready: Vec<M>,
    delayed: Vec<(u64, M)>,
    leased: HashMap<u64, Leased>,
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
    /// Returns how many leases were dead-lettered and how many messages expired.
    fn settle(&mut self, now: u64, max_deliveries: u32) -> (u64, u64) {
        self.delayed.sort_by_key(|(due, m)| (*due, m.id));
        let (due, later): (Vec<_>, Vec<_>) = self.delayed.drain(..).partition(|(d, _)| *d <= now);
        self.delayed = later;
        for (_, m) in due {
            self.push_tail(m);
        }
        let mut expired: Vec<Leased> = self
            .leased
            .values()
            .filter(|l| l.until <= now)
            .copied()
            .collect();
        expired.sort_by_key(|l| (l.until, l.m.id));
        let mut dead = 0;
        for l in expired.iter().rev() {
            self.leased.remove(&l.m.id);
            if l.m.deliveries >= max_deliveries {
                dead += 1;
            } else {
                self.push_head(l.m);
            }
        }
        // Expired messages leave eagerly (the broker's expiry index).
        let before = self.ready.len();
        self.ready.retain(|m| m.expires == 0 || now < m.expires);
        (dead, (before - self.ready.len()) as u64)
    }

    /// Removes up to `max` ready messages in delivery order (from the tail: in reverse)
    /// and returns them as they were (a delivery shows them with one more delivery).
    fn pick(&mut self, max: usize, tail: bool) -> Vec<M> {
        let mut order = self.ordered();
        if tail {
            order.reverse();
        }
        let picked: Vec<M> = order.into_iter().take(max).collect();
        self.ready.retain(|m| !picked.iter().any(|p| p.id == m.id));
        picked
    }

    /// Deletes `id` wherever it is; returns whether it was held.
    fn delete(&mut self, id: u64) -> bool {
        let before = self.ready.len() + self.delayed.len();
        self.ready.retain(|m| m.id != id);
        self.delayed.retain(|(_, m)| m.id != id);
        let gone = self.ready.len() + self.delayed.len() < before;
        self.leased.remove(&id).is_some() || gone
    }

    /// Puts picked messages back exactly where they were.
    fn restore(&mut self, picked: &[M]) {
        self.ready.extend_from_slice(picked);
    }

    /// Returns a lease to the head, or dead-letters it (returns true) at max deliveries.
    fn give_back(&mut self, l: Leased) -> bool {
        self.leased.remove(&l.m.id);
        if l.m.deliveries >= MAX_DELIVERIES {
            true
        } else {
            self.push_head(l.m);
            false
        }
    }

    /// The lease named by `serial`, if it is still live at `now` (a held lease
    /// confirmed past its deadline never is).
    fn live(&self, id: u64, serial: u64, now: u64) -> Option<Leased> {
        self.leased
            .get(&id)
            .filter(|l| l.serial == serial && l.until > now)
            .copied()
    }
}

/// The queue in the model: the default subscription (0) and "s1" (1), and the queue
/// moves go to.
struct Model {
    next_id: u64,
    subs: [SubModel; 2],
    dst: SubModel,
    dst_next_id: u64,
    dead: u64,
    expired: u64,
    next_serial: u64,
    kv: BTreeMap<u8, KvM>,
}

impl Model {
    fn settle(&mut self, now: u64) {
        for s in &mut self.subs {
            let (dead, expired) = s.settle(now, MAX_DELIVERIES);
            self.dead += dead;
            self.expired += expired;
        }
        // A moved message keeps its TTL.
        self.dst.settle(now, MAX_DELIVERIES);
    }

    /// Records a confirmed lease of `picked` until `until`; returns the serials.
    fn lease(&mut self, which: usize, picked: &[M], until: u64) -> Vec<u64> {
        let mut serials = Vec::new();
        for m in picked {
            self.next_serial += 1;
            let m = M {
                deliveries: m.deliveries + 1,
                ..*m
            };
            let serial = self.next_serial;
            self.subs[which]
                .leased
                .insert(m.id, Leased { m, until, serial });
            serials.push(serial);
        }
        serials
    }
}

/// The broker's name of model subscription `i`.
fn sub_name(i: usize) -> Option<String> {
    (i == 1).then(|| "s1".to_string())
}

/// One incarnation of the broker over `store`, behind a fault switch that "kills" it:
/// once the process is deemed crashed, nothing the old broker still does (a held
/// delivery or a session dropped late) reaches the store.
fn open(store: &Arc<MemoryStorage>, clock: &Arc<ManualClock>) -> (Broker, Arc<FaultyStorage>) {
    let faulty = Arc::new(FaultyStorage::new(store.clone()));
    // The sweeper's work is what every operation does first at the same manual time;
    // a long tick keeps the steps deterministic.
    let config = BrokerConfig {
        tick: Duration::from_secs(3600),
        ..BrokerConfig::default()
    };
    let broker = Broker::open(faulty.clone(), clock.clone(), config).expect("broker opens");
    (broker, faulty)
}

/// A read's reply matches the model's: same ids and delivery counts in the same order,
/// and each body is the one pushed with that id. `want` is as the model held them (one
/// delivery fewer than shown).
fn same_messages(got: &[Message], want: &[M]) -> Result<(), TestCaseError> {
    let got: Vec<(u64, u32, Vec<u8>)> = got
        .iter()
        .map(|m| (m.id, m.deliveries, m.body.to_vec()))
        .collect();
    let want: Vec<(u64, u32, Vec<u8>)> = want
        .iter()
        .map(|m| (m.id, m.deliveries + 1, body(m.origin)))
        .collect();
    prop_assert_eq!(got, want);
    Ok(())
}

/// The body of the message first pushed as id `origin`.
fn body(origin: u64) -> Vec<u8> {
    format!("body-{origin}").into_bytes()
}

/// Ids, delivery and soft-get counts of messages as shown, and their bodies' origin.
fn shown(got: &[Message]) -> Vec<(u64, u32, u32, Vec<u8>)> {
    got.iter()
        .map(|m| (m.id, m.deliveries, m.soft_gets, m.body.to_vec()))
        .collect()
}

/// The same of model messages.
fn modelled(want: &[M]) -> Vec<(u64, u32, u32, Vec<u8>)> {
    want.iter()
        .map(|m| (m.id, m.deliveries, m.soft_gets, body(m.origin)))
        .collect()
}

/// A delivery held open, with what the model picked for it.
struct Held {
    delivery: Delivery,
    which: usize,
    kind: Kind,
    picked: Vec<M>,
    until: u64,
}

/// A receipt handed out: (receipt, subscription, id, serial of its lease; 0 for none).
type Handed = (Receipt, usize, u64, u64);

/// The broker under test, the model, and what the test holds between steps.
struct World {
    store: Arc<MemoryStorage>,
    clock: Arc<ManualClock>,
    broker: Broker,
    faulty: Arc<FaultyStorage>,
    model: Model,
    receipts: Vec<Handed>,
    held: Vec<Held>,
    session: Option<Session>,
    /// The session's confirmed leases, in order: (subscription, id, serial).
    owned: Vec<(usize, u64, u64)>,
}

fn read_options(which: usize, max: usize) -> ReadOptions {
    ReadOptions {
        max,
        subscription: sub_name(which),
        ..ReadOptions::default()
    }
}

fn lease_options(which: usize, max: usize, vis: u64) -> LeaseOptions {
    LeaseOptions {
        read: read_options(which, max),
        visibility: Duration::from_millis(vis),
    }
}

impl World {
    /// Starts a read of `kind`; the model picks what it must deliver.
    async fn read(&mut self, which: usize, max: usize, kind: Kind) -> (Delivery, Vec<M>) {
        self.read_from(which, max, kind, false).await
    }

    /// Starts a read of `kind` from an end; the model picks what it must deliver.
    async fn read_from(
        &mut self,
        which: usize,
        max: usize,
        kind: Kind,
        tail: bool,
    ) -> (Delivery, Vec<M>) {
        let mut opts = read_options(which, max);
        if tail {
            opts.end = End::Tail;
        }
        let delivery = match kind {
            Kind::Take => self.broker.take(Q, opts).await,
            Kind::Lease(vis) => self.broker.lease(Q, lease_options(which, max, vis)).await,
            Kind::SessionLease(vis) => {
                let broker = &self.broker;
                let session = self.session.get_or_insert_with(|| broker.open_session());
                session.lease(Q, lease_options(which, max, vis)).await
            }
        };
        let picked = self.model.subs[which].pick(max, tail);
        (delivery.unwrap(), picked)
    }

    /// Records what a confirmed lease of `picked` (shown as `got`) makes.
    fn leased(&mut self, which: usize, kind: Kind, got: &[Message], picked: &[M], until: u64) {
        let serials = self.model.lease(which, picked, until);
        for (g, serial) in got.iter().zip(serials) {
            let receipt = g.receipt.clone().expect("a lease carries receipts");
            self.receipts.push((receipt, which, g.id, serial));
            if matches!(kind, Kind::SessionLease(_)) {
                self.owned.push((which, g.id, serial));
            }
        }
    }

    /// Confirms or drops a held delivery.
    async fn settle_held(&mut self, h: Held, confirm: bool) -> Result<(), TestCaseError> {
        let mut got = h.delivery.messages().to_vec();
        if confirm {
            // Messages deleted while the delivery was open are no longer in it.
            got.retain(|g| h.picked.iter().any(|p| p.id == g.id));
            h.delivery.confirm().await.unwrap();
            if h.kind != Kind::Take {
                self.leased(h.which, h.kind, &got, &h.picked, h.until);
            }
        } else {
            drop(h.delivery);
            self.model.subs[h.which].restore(&h.picked);
            self.dead_receipts(h.which, &got);
        }
        Ok(())
    }

    /// Ids of the messages subscription `which` holds (ready, delayed, in flight or in
    /// a held delivery) with the body of `origin`, in id order.
    fn holding(&self, which: usize, origin: u64) -> Vec<u64> {
        let s = &self.model.subs[which];
        let mut ids: Vec<u64> = s
            .ready
            .iter()
            .chain(s.delayed.iter().map(|(_, m)| m))
            .chain(s.leased.values().map(|l| &l.m))
            .chain(
                self.held
                    .iter()
                    .filter(|h| h.which == which)
                    .flat_map(|h| h.picked.iter()),
            )
            .filter(|m| m.origin == origin)
            .map(|m| m.id)
            .collect();
        ids.sort();
        ids
    }

    /// Receipts of a lease never confirmed: they must ack nothing.
    fn dead_receipts(&mut self, which: usize, got: &[Message]) {
        for g in got {
            if let Some(r) = &g.receipt {
                self.receipts.push((r.clone(), which, g.id, 0));
            }
        }
    }

    async fn step(&mut self, step: Step) -> Result<(), TestCaseError> {
        let now = self.clock.now_ms();
        self.model.settle(now);
        match step {
            Step::Push {
                priority,
                delay,
                ttl,
                head,
            } => {
                let model = &mut self.model;
                let mut msg = NewMessage::new(format!("body-{}", model.next_id));
                msg.priority = priority;
                msg.delay = delay.map(Duration::from_millis);
                msg.ttl = ttl.map(Duration::from_millis);
                msg.at_head = head;
                let out = self.broker.push(Q, vec![msg]).await.unwrap();
                prop_assert_eq!(out[0].id, model.next_id);
                let m = M {
                    id: model.next_id,
                    priority,
                    deliveries: 0,
                    soft_gets: 0,
                    origin: model.next_id,
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
            Step::Take(which, max) | Step::TakeTail(which, max) => {
                let tail = matches!(step, Step::TakeTail(..));
                let (d, picked) = self.read_from(which, max, Kind::Take, tail).await;
                let got = d.into_messages().await.unwrap();
                same_messages(&got, &picked)?;
            }
            Step::Move {
                sub: which,
                max,
                from_tail,
                to_head,
                confirm,
            } => {
                let mut opts = read_options(which, max);
                if from_tail {
                    opts.end = End::Tail;
                }
                let opts = MoveOptions {
                    read: opts,
                    to: DST.to_string(),
                    to_end: if to_head { End::Head } else { End::Tail },
                };
                let d = self.broker.move_messages(Q, opts).await.unwrap();
                let picked = self.model.subs[which].pick(max, from_tail);
                same_messages(d.messages(), &picked)?;
                if confirm {
                    d.confirm().await.unwrap();
                    let model = &mut self.model;
                    let mut arriving: Vec<M> = picked
                        .iter()
                        .enumerate()
                        .map(|(i, m)| M {
                            id: model.dst_next_id + i as u64,
                            deliveries: 0,
                            soft_gets: 0,
                            ..*m
                        })
                        .collect();
                    model.dst_next_id += picked.len() as u64;
                    if to_head {
                        // Last first, so they keep their order at the head.
                        arriving.reverse();
                        arriving.into_iter().for_each(|m| model.dst.push_head(m));
                    } else {
                        arriving.into_iter().for_each(|m| model.dst.push_tail(m));
                    }
                } else {
                    drop(d);
                    self.model.subs[which].restore(&picked);
                }
            }
            Step::Delete(which, ids) => {
                let ids: Vec<u64> = ids.iter().map(|i| i % self.model.next_id + 1).collect();
                let n = self
                    .broker
                    .delete(Q, sub_name(which).as_deref(), &ids)
                    .await
                    .unwrap();
                let mut want = 0;
                let mut seen = Vec::new();
                for id in ids {
                    if seen.contains(&id) {
                        continue;
                    }
                    seen.push(id);
                    let mut held = false;
                    for h in self.held.iter_mut().filter(|h| h.which == which) {
                        let before = h.picked.len();
                        h.picked.retain(|m| m.id != id);
                        held |= h.picked.len() < before;
                    }
                    if self.model.subs[which].delete(id) || held {
                        want += 1;
                    }
                }
                prop_assert_eq!(n, want, "deleted");
            }
            Step::SoftGet(which) => {
                let got = self
                    .broker
                    .soft_get(Q, sub_name(which).as_deref())
                    .await
                    .unwrap();
                let sub = &mut self.model.subs[which];
                let head = sub.ordered().first().map(|m| m.id);
                prop_assert_eq!(got.as_ref().map(|m| m.id), head, "soft get");
                if let Some(got) = got {
                    let m = sub.ready.iter_mut().find(|m| m.id == got.id).unwrap();
                    m.soft_gets += 1;
                    prop_assert_eq!(got.body.to_vec(), body(m.origin));
                    prop_assert_eq!(got.soft_gets, m.soft_gets, "soft-get counter");
                }
            }
            Step::Range(which, start, stop) => {
                let got = self
                    .broker
                    .range(Q, sub_name(which).as_deref(), start, stop)
                    .await
                    .unwrap();
                let order = self.model.subs[which].ordered();
                let len = order.len() as i64;
                let norm = |i: i64| if i < 0 { len + i } else { i };
                let (a, b) = (norm(start).max(0), norm(stop).min(len - 1));
                let want: Vec<u64> = if a > b || a >= len {
                    Vec::new()
                } else {
                    order[a as usize..=b as usize]
                        .iter()
                        .map(|m| m.id)
                        .collect()
                };
                let got: Vec<u64> = got.iter().map(|m| m.id).collect();
                prop_assert_eq!(got, want, "range {}..={}", start, stop);
            }
            Step::UniquePush(k) => {
                // The body of an earlier message (maybe still held, maybe gone), or
                // one never pushed.
                let origin = k % (self.model.next_id + 1) + 1;
                let mut msg = NewMessage::new(body(origin));
                msg.unique = true;
                let out = self.broker.push(Q, vec![msg]).await.unwrap();
                let held = self.holding(0, origin);
                match held.first() {
                    Some(id) => {
                        prop_assert_eq!(
                            (out[0].id, out[0].duplicate),
                            (*id, true),
                            "unique push refused"
                        );
                    }
                    None => {
                        let model = &mut self.model;
                        prop_assert_eq!(
                            (out[0].id, out[0].duplicate),
                            (model.next_id, false),
                            "unique push added"
                        );
                        let m = M {
                            id: model.next_id,
                            priority: DEFAULT_PRIORITY,
                            deliveries: 0,
                            soft_gets: 0,
                            origin,
                            expires: 0,
                            key: 0,
                        };
                        model.next_id += 1;
                        model.subs.iter_mut().for_each(|s| s.push_tail(m));
                    }
                }
            }
            Step::RemoveValue(which, k, count) => {
                let origin = k % (self.model.next_id + 1) + 1;
                let n = self
                    .broker
                    .remove_value(Q, sub_name(which).as_deref(), &body(origin), count)
                    .await
                    .unwrap();
                let sub = &mut self.model.subs[which];
                let mut order = sub.ordered();
                if count < 0 {
                    order.reverse();
                }
                let max = if count == 0 {
                    usize::MAX
                } else {
                    count.unsigned_abs() as usize
                };
                let gone: Vec<u64> = order
                    .iter()
                    .filter(|m| m.origin == origin)
                    .take(max)
                    .map(|m| m.id)
                    .collect();
                sub.ready.retain(|m| !gone.contains(&m.id));
                prop_assert_eq!(n, gone.len() as u64, "removed by value");
            }
            Step::Lease(which, max, vis) | Step::SessionLease(which, max, vis) => {
                let kind = match step {
                    Step::Lease(..) => Kind::Lease(vis),
                    _ => Kind::SessionLease(vis),
                };
                let (d, picked) = self.read(which, max, kind).await;
                let got = d.into_messages().await.unwrap();
                same_messages(&got, &picked)?;
                self.leased(which, kind, &got, &picked, now + vis);
            }
            Step::Drop {
                sub: which,
                max,
                kind,
                written,
            } => {
                let (mut d, picked) = self.read(which, max, kind).await;
                let got = d.messages().to_vec();
                same_messages(&got, &picked)?;
                if written {
                    d.written();
                }
                drop(d);
                self.model.subs[which].restore(&picked);
                self.dead_receipts(which, &got);
                // The next read sees the same messages, in the same order.
                let again = self
                    .broker
                    .peek(Q, max, sub_name(which).as_deref())
                    .await
                    .unwrap();
                let ids = |ms: &[Message]| ms.iter().map(|m| m.id).collect::<Vec<_>>();
                prop_assert_eq!(ids(&again), ids(&got), "after a dropped delivery");
            }
            Step::Hold {
                sub: which,
                max,
                kind,
            } => {
                if self.held.len() < MAX_HELD {
                    let (d, picked) = self.read(which, max, kind).await;
                    same_messages(d.messages(), &picked)?;
                    let until = match kind {
                        Kind::Take => 0,
                        Kind::Lease(vis) | Kind::SessionLease(vis) => now + vis,
                    };
                    if !d.is_empty() {
                        self.held.push(Held {
                            delivery: d,
                            which,
                            kind,
                            picked,
                            until,
                        });
                    }
                }
            }
            Step::Settle(i, confirm) => {
                if !self.held.is_empty() {
                    let h = self.held.remove(i % self.held.len());
                    self.settle_held(h, confirm).await?;
                }
            }
            Step::EndSession { end, confirm_held } => {
                if let Some(session) = self.session.take() {
                    let mut i = 0;
                    while i < self.held.len() {
                        if matches!(self.held[i].kind, Kind::SessionLease(_)) {
                            let h = self.held.remove(i);
                            self.settle_held(h, confirm_held).await?;
                        } else {
                            i += 1;
                        }
                    }
                    let returned = if end {
                        Some(session.end())
                    } else {
                        drop(session);
                        None
                    };
                    // Like a nack of each live lease, last first.
                    let mut want = 0;
                    for (which, id, serial) in std::mem::take(&mut self.owned).into_iter().rev() {
                        let sub = &mut self.model.subs[which];
                        if let Some(l) = sub.live(id, serial, now) {
                            want += 1;
                            if sub.give_back(l) {
                                self.model.dead += 1;
                            }
                        }
                    }
                    if let Some(n) = returned {
                        prop_assert_eq!(n, want, "session leases returned");
                    }
                }
            }
            Step::Ack(_) | Step::Nack(_) if self.receipts.is_empty() => {}
            Step::Ack(idx) => {
                let chosen: Vec<Handed> = idx
                    .iter()
                    .map(|i| self.receipts[i % self.receipts.len()].clone())
                    .collect();
                let rs: Vec<Receipt> = chosen.iter().map(|r| r.0.clone()).collect();
                let n = self.broker.ack(Q, &rs).await.unwrap();
                let mut want = 0;
                for (_, which, id, serial) in chosen {
                    let sub = &mut self.model.subs[which];
                    if sub.live(id, serial, now).is_some() {
                        sub.leased.remove(&id);
                        want += 1;
                    }
                }
                prop_assert_eq!(n, want);
            }
            Step::Nack(idx) => {
                let chosen: Vec<Handed> = idx
                    .iter()
                    .map(|i| self.receipts[i % self.receipts.len()].clone())
                    .collect();
                let rs: Vec<Receipt> = chosen.iter().map(|r| r.0.clone()).collect();
                let n = self.broker.nack(Q, &rs).await.unwrap();
                let mut live: Vec<(usize, Leased)> = Vec::new();
                for (_, which, id, serial) in &chosen {
                    if let Some(l) = self.model.subs[*which].live(*id, *serial, now) {
                        if !live.iter().any(|(w, x)| w == which && x.m.id == *id) {
                            live.push((*which, l));
                        }
                    }
                }
                prop_assert_eq!(n, live.len());
                for (which, l) in live.into_iter().rev() {
                    if self.model.subs[which].give_back(l) {
                        self.model.dead += 1;
                    }
                }
            }
            Step::Advance(ms) => self.clock.advance(ms),
            Step::Checkpoint => self.broker.checkpoint().await.unwrap(),
            Step::Compact => {
                self.broker.compact().await.unwrap();
            }
            Step::Restart => self.crash_and_restart(),
            Step::KvSet {
                key: k,
                num,
                text,
                ttl,
                cond,
            } => {
                let kv = &mut self.model.kv;
                let current = kv.get(&k).filter(|e| e.live(now)).cloned();
                let condition = match cond {
                    0 => Condition::Always,
                    1 => Condition::IfAbsent,
                    2 => Condition::IfPresent,
                    3 => Condition::IfVersion(current.as_ref().map_or(1, |e| e.version)),
                    _ => Condition::IfVersion(current.as_ref().map_or(1, |e| e.version) + 1000),
                };
                let value = if text {
                    format!("text{num}")
                } else {
                    num.to_string()
                };
                let write = KvWrite {
                    value: value.clone().into(),
                    expiry: ttl.map_or(Expiry::Never, |t| Expiry::In(Duration::from_millis(t))),
                    condition,
                    ..KvWrite::default()
                };
                let reply = self.broker.kv_set(&key(k), write).await.unwrap();
                let want = match (condition, &current) {
                    (Condition::IfAbsent, Some(_)) => WriteOutcome::Exists,
                    (Condition::IfPresent | Condition::IfVersion(_), None) => WriteOutcome::Missing,
                    (Condition::IfVersion(v), Some(e)) if e.version != v => {
                        WriteOutcome::VersionMismatch { current: e.version }
                    }
                    _ => reply.outcome,
                };
                prop_assert_eq!(reply.outcome, want);
                prop_assert_eq!(
                    reply.old.map(|o| o.value.to_vec()),
                    current.map(|c| c.value)
                );
                if let WriteOutcome::Stored { version } = reply.outcome {
                    let fresh = kv.values().all(|e| e.version < version);
                    prop_assert!(fresh, "versions rise and never repeat");
                    kv.insert(
                        k,
                        KvM {
                            value: value.into_bytes(),
                            version,
                            expires: ttl.map_or(0, |t| now + t),
                        },
                    );
                }
            }
            Step::KvIncr(k, delta) => {
                let got = self
                    .broker
                    .kv_counter(&key(k), Counter::Signed(delta.into()))
                    .await;
                let kv = &mut self.model.kv;
                let current = kv.get(&k).filter(|e| e.live(now)).cloned();
                let parsed: Option<i64> = match &current {
                    None => Some(0),
                    // Strict as Redis: "+5" is not an integer.
                    Some(e) => std::str::from_utf8(&e.value)
                        .ok()
                        .filter(|t| !t.starts_with('+'))
                        .and_then(|t| t.parse().ok()),
                };
                match parsed {
                    Some(n) => {
                        let next = n + i64::from(delta);
                        prop_assert_eq!(got.unwrap(), Some(i128::from(next)));
                        let version = self.broker.kv_get(&key(k)).await.unwrap().unwrap().version;
                        kv.insert(
                            k,
                            KvM {
                                value: next.to_string().into_bytes(),
                                version,
                                expires: current.map_or(0, |c| c.expires),
                            },
                        );
                    }
                    None => prop_assert!(matches!(got, Err(Error::NotAnInteger(_)))),
                }
            }
            Step::KvAppend(k, front) => {
                let got = self
                    .broker
                    .kv_append(&key(k), "+".into(), front, true)
                    .await
                    .unwrap();
                let kv = &mut self.model.kv;
                let current = kv.get(&k).filter(|e| e.live(now)).cloned();
                let mut value = current.as_ref().map_or(Vec::new(), |c| c.value.clone());
                if front {
                    value.insert(0, b'+');
                } else {
                    value.push(b'+');
                }
                prop_assert_eq!(got, Some(value.len() as u64));
                let version = self.broker.kv_get(&key(k)).await.unwrap().unwrap().version;
                kv.insert(
                    k,
                    KvM {
                        value,
                        version,
                        expires: current.map_or(0, |c| c.expires),
                    },
                );
            }
            Step::KvExpire(k, ttl) => {
                let expiry = ttl.map_or(Expiry::Never, |t| Expiry::In(Duration::from_millis(t)));
                let found = self.broker.kv_expire(&key(k), expiry).await.unwrap();
                let kv = &mut self.model.kv;
                let live = kv.get(&k).is_some_and(|e| e.live(now));
                prop_assert_eq!(found, live);
                if let Some(e) = kv.get_mut(&k).filter(|_| live) {
                    // A TTL of 0 ms is the shortest there is: 1 ms.
                    e.expires = ttl.map_or(0, |t| now + t.max(1));
                }
            }
            Step::KvDelete(k) => {
                let n = self.broker.kv_delete(&[key(k)]).await.unwrap();
                let kv = &mut self.model.kv;
                let live = kv.get(&k).is_some_and(|e| e.live(now));
                prop_assert_eq!(n, u64::from(live));
                kv.remove(&k);
            }
        }
        let now = self.clock.now_ms();
        self.model.settle(now);
        self.check().await
    }

    /// Drops the broker as a crash would, with held deliveries and the session still
    /// open; they are dropped only after the new broker is up, and the old broker can
    /// no longer write.
    fn crash_and_restart(&mut self) {
        self.faulty.fail_appends(true);
        self.faulty.fail_syncs(true);
        // A restart takes time: lease tokens start from the wall time at open, and the
        // tokens of deliveries never confirmed were never logged, so only a later
        // millisecond keeps their receipts from naming a new lease.
        self.clock.advance(1);
        let (broker, faulty) = open(&self.store, &self.clock);
        drop(std::mem::replace(&mut self.broker, broker));
        self.faulty = faulty;
        // Reserved messages were never logged as gone: they are ready in their place.
        for h in std::mem::take(&mut self.held) {
            let got = h.delivery.messages().to_vec();
            drop(h.delivery);
            self.model.subs[h.which].restore(&h.picked);
            self.dead_receipts(h.which, &got);
        }
        drop(self.session.take());
        self.owned.clear();
        // Every lease returns to the head, the first deadline first.
        for sub in &mut self.model.subs {
            let mut back: Vec<Leased> = sub.leased.drain().map(|(_, l)| l).collect();
            back.sort_by_key(|l| (l.until, l.m.id));
            for l in back.into_iter().rev() {
                sub.push_head(l.m);
            }
        }
        // Old receipts stay in the list: their serials name no lease any more.
    }

    /// Counters and ready order of both subscriptions, and the dead letters.
    async fn check(&self) -> Result<(), TestCaseError> {
        let model = &self.model;
        let reserved = |which: usize| -> u64 {
            self.held
                .iter()
                .filter(|h| h.which == which)
                .map(|h| h.picked.len() as u64)
                .sum()
        };
        let stats = self.broker.stats(Q).unwrap();
        let d = &model.subs[0];
        prop_assert_eq!(stats.ready, d.ready.len() as u64, "ready");
        prop_assert_eq!(
            stats.in_flight,
            d.leased.len() as u64 + reserved(0),
            "in flight"
        );
        prop_assert_eq!(stats.delayed, d.delayed.len() as u64, "delayed");
        let ready_bytes: usize = d.ready.iter().map(|m| body(m.origin).len()).sum();
        prop_assert_eq!(stats.ready_bytes, ready_bytes as u64, "ready bytes");
        prop_assert_eq!(stats.next_id, model.next_id, "next id");
        prop_assert_eq!(stats.total_expired, model.expired, "expired");
        prop_assert_eq!(stats.total_dead_lettered, model.dead, "dead-lettered");
        let named = self.broker.subscriptions(Q).unwrap();
        let s1 = &model.subs[1];
        prop_assert_eq!(named.len(), 1);
        prop_assert_eq!(
            (named[0].ready, named[0].in_flight, named[0].delayed),
            (
                s1.ready.len() as u64,
                s1.leased.len() as u64 + reserved(1),
                s1.delayed.len() as u64
            ),
            "s1 counters"
        );
        for which in 0..2 {
            let peeked = self
                .broker
                .peek(Q, 1000, sub_name(which).as_deref())
                .await
                .unwrap();
            let want = modelled(&model.subs[which].ordered());
            prop_assert_eq!(
                shown(&peeked),
                want.clone(),
                "ready order of subscription {}",
                which
            );
            let ranged = self
                .broker
                .range(Q, sub_name(which).as_deref(), 0, -1)
                .await
                .unwrap();
            prop_assert_eq!(shown(&ranged), want, "range of subscription {}", which);
        }
        // The value index agrees with a scan of the model, for every body so far.
        for which in 0..2 {
            for origin in 1..=model.next_id {
                let held = !self.holding(which, origin).is_empty();
                let found = self
                    .broker
                    .contains(Q, sub_name(which).as_deref(), &body(origin))
                    .await
                    .unwrap();
                prop_assert_eq!(
                    found,
                    held,
                    "contains body-{} in subscription {}",
                    origin,
                    which
                );
            }
        }
        let peeked = self.broker.peek(DST, 1000, None).await.unwrap();
        prop_assert_eq!(
            shown(&peeked),
            modelled(&model.dst.ordered()),
            "moved messages"
        );
        let dlq = self
            .broker
            .stats(&format!("{Q}.dlq"))
            .map(|s| s.ready)
            .unwrap_or(0);
        prop_assert_eq!(dlq, model.dead, "dead letters");
        let now = self.clock.now_ms();
        for k in 0..KEYS {
            let want = model.kv.get(&k).filter(|e| e.live(now));
            let got = self.broker.kv_get(&key(k)).await.unwrap();
            prop_assert_eq!(
                got.as_ref()
                    .map(|v| (v.value.to_vec(), v.version, v.expires_at_ms)),
                want.map(|e| (e.value.clone(), e.version, e.expires)),
                "key {}",
                k
            );
            let ttl = self.broker.kv_ttl(&key(k)).await.unwrap();
            let want_ttl = match want {
                None => KvTtl::Missing,
                Some(e) if e.expires == 0 => KvTtl::Never,
                Some(e) => KvTtl::Ms(e.expires - now),
            };
            prop_assert_eq!(ttl, want_ttl, "ttl of key {}", k);
        }
        let live = model.kv.values().filter(|e| e.live(now)).count();
        let page = self
            .broker
            .kv_scan(KvScan {
                prefix: "key-".into(),
                max: 100,
                ..KvScan::default()
            })
            .await
            .unwrap();
        prop_assert_eq!(page.keys.len(), live, "scan");
        Ok(())
    }
}

fn run(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = Arc::new(MemoryStorage::new(SEGMENT_BYTES));
        let clock = Arc::new(ManualClock::new(1_000_000));
        let (broker, faulty) = open(&store, &clock);
        let patch = SettingsPatch {
            max_deliveries: Some(Some(MAX_DELIVERIES)),
            ..SettingsPatch::default()
        };
        broker.configure(Q, patch).await.unwrap();
        broker.subscribe(Q, "s1", StartAt::Latest).await.unwrap();
        let mut world = World {
            store,
            clock,
            broker,
            faulty,
            model: Model {
                next_id: 1,
                subs: Default::default(),
                dst: SubModel::default(),
                dst_next_id: 1,
                dead: 0,
                expired: 0,
                next_serial: 0,
                kv: BTreeMap::new(),
            },
            receipts: Vec::new(),
            held: Vec::new(),
            session: None,
            owned: Vec::new(),
        };
        for step in steps {
            world.step(step).await?;
        }
        // Whatever is still open ends cleanly: held deliveries return their messages
        // and the session its leases.
        for h in std::mem::take(&mut world.held) {
            world.settle_held(h, false).await?;
        }
        world
            .step(Step::EndSession {
                end: true,
                confirm_held: false,
            })
            .await
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn broker_matches_model(steps in prop::collection::vec(step(), 1..80)) {
        run(steps)?;
    }
}

// ---- cursors over a log ----------------------------------------------------------------

/// The log queue of the cursor model.
const LOGQ: &str = "topic";

#[derive(Debug, Clone)]
enum CStep {
    Push,
    /// A take of up to `n` from subscription `sub` (0 is the default one).
    Take(usize, usize),
    /// A lease of up to `n` from subscription `sub` (a long visibility: only acks and
    /// restarts end it).
    Lease(usize, usize),
    /// Acks of receipts handed out (indexes modulo their number).
    Ack(Vec<usize>),
    /// A seek of named subscription 1 or 2 to an id (up to past the end).
    Seek(usize, u64),
    /// A reset of every cursor, to the start or an id.
    Reset(Option<u64>),
    /// A paged read of the log from an id, up to `max`.
    ReadLog(u64, usize),
    /// A seek of the bare cursor to an id (up to past the end).
    CursorSeek(u64),
    /// A read of up to `max` from the bare cursor (it does not move).
    CursorRead(usize),
    /// A take from the bare cursor, which is refused.
    CursorTake,
    Advance(u64),
    Checkpoint,
    Compact,
    Restart,
}

fn cstep() -> impl Strategy<Value = CStep> {
    prop_oneof![
        6 => Just(CStep::Push),
        3 => (0usize..3, 1usize..4).prop_map(|(s, n)| CStep::Take(s, n)),
        2 => (0usize..3, 1usize..4).prop_map(|(s, n)| CStep::Lease(s, n)),
        2 => prop::collection::vec(0usize..40, 1..3).prop_map(CStep::Ack),
        3 => (1usize..3, 0u64..40).prop_map(|(s, id)| CStep::Seek(s, id)),
        1 => prop::option::of(0u64..40).prop_map(CStep::Reset),
        2 => (0u64..40, 1usize..6).prop_map(|(from, max)| CStep::ReadLog(from, max)),
        2 => (0u64..40).prop_map(CStep::CursorSeek),
        2 => (1usize..6).prop_map(CStep::CursorRead),
        1 => Just(CStep::CursorTake),
        2 => (1u64..500).prop_map(CStep::Advance),
        1 => Just(CStep::Checkpoint),
        1 => Just(CStep::Compact),
        1 => Just(CStep::Restart),
    ]
}

/// One cursor in the model: its messages, position and last action.
#[derive(Default)]
struct Cursor {
    sub: SubModel,
    position: u64,
    last_active: u64,
}

struct CursorWorld {
    store: Arc<MemoryStorage>,
    clock: Arc<ManualClock>,
    broker: Broker,
    faulty: Arc<FaultyStorage>,
    next_id: u64,
    /// Every message pushed (nothing is trimmed: retention keeps all).
    log: Vec<M>,
    subs: [Cursor; 3],
    /// The bare cursor [`BARE`]: position and last action (it holds no messages).
    bare: (u64, u64),
    /// (receipt, subscription, id, serial).
    receipts: Vec<Handed>,
    next_serial: u64,
}

/// The broker's name of cursor-model subscription `i` (0: the default one).
fn cursor_sub(i: usize) -> Option<String> {
    (i > 0).then(|| format!("s{i}"))
}

/// The bare cursor subscription of the cursor model.
const BARE: &str = "c3";

/// A lease visibility no test run reaches.
const LONG_MS: u64 = 1 << 40;

impl CursorWorld {
    fn message(&self, id: u64) -> M {
        M {
            id,
            priority: DEFAULT_PRIORITY,
            deliveries: 0,
            soft_gets: 0,
            origin: id,
            expires: 0,
            key: 0,
        }
    }

    /// Where a seek to `id` puts a cursor: clamped to the retained ids.
    fn clamped(&self, id: u64) -> u64 {
        self.cursor_at(id).min(self.next_id)
    }

    /// Where a seek (or reset) to `id` puts the bare cursor: raised to the retained
    /// log, but past the end kept as set.
    fn cursor_at(&self, id: u64) -> u64 {
        let first = self.log.first().map_or(self.next_id, |m| m.id);
        id.max(first)
    }

    /// What a seek (or reset) to `id` makes of cursor `which` in the model.
    fn seek_model(&mut self, which: usize, id: u64) {
        let position = self.clamped(id);
        let c = &mut self.subs[which];
        c.sub = SubModel::default();
        for m in self.log.iter().filter(|m| m.id >= id) {
            c.sub.push_tail(*m);
        }
        c.position = position;
    }

    async fn step(&mut self, step: CStep) -> Result<(), TestCaseError> {
        let now = self.clock.now_ms();
        match step {
            CStep::Push => {
                let out = self
                    .broker
                    .push(LOGQ, vec![NewMessage::new(body(self.next_id))])
                    .await
                    .unwrap();
                prop_assert_eq!(out[0].id, self.next_id);
                let m = self.message(self.next_id);
                self.next_id += 1;
                self.log.push(m);
                self.subs.iter_mut().for_each(|c| c.sub.push_tail(m));
            }
            CStep::Take(which, max) => {
                let opts = ReadOptions {
                    max,
                    subscription: cursor_sub(which),
                    ..ReadOptions::default()
                };
                let got = self
                    .broker
                    .take(LOGQ, opts)
                    .await
                    .unwrap()
                    .into_messages()
                    .await
                    .unwrap();
                let c = &mut self.subs[which];
                let picked = c.sub.pick(max, false);
                same_messages(&got, &picked)?;
                if let Some(top) = picked.iter().map(|m| m.id).max() {
                    c.position = c.position.max(top + 1);
                    c.last_active = now;
                }
            }
            CStep::Lease(which, max) => {
                let opts = LeaseOptions {
                    read: ReadOptions {
                        max,
                        subscription: cursor_sub(which),
                        ..ReadOptions::default()
                    },
                    visibility: Duration::from_millis(LONG_MS),
                };
                let got = self
                    .broker
                    .lease(LOGQ, opts)
                    .await
                    .unwrap()
                    .into_messages()
                    .await
                    .unwrap();
                let c = &mut self.subs[which];
                let picked = c.sub.pick(max, false);
                same_messages(&got, &picked)?;
                if let Some(top) = picked.iter().map(|m| m.id).max() {
                    c.position = c.position.max(top + 1);
                    c.last_active = now;
                }
                for (g, m) in got.iter().zip(&picked) {
                    self.next_serial += 1;
                    let m = M {
                        deliveries: m.deliveries + 1,
                        ..*m
                    };
                    let serial = self.next_serial;
                    c.sub.leased.insert(
                        m.id,
                        Leased {
                            m,
                            until: now + LONG_MS,
                            serial,
                        },
                    );
                    let receipt = g.receipt.clone().expect("a lease carries receipts");
                    self.receipts.push((receipt, which, g.id, serial));
                }
            }
            CStep::Ack(_) if self.receipts.is_empty() => {}
            CStep::Ack(idx) => {
                let chosen: Vec<Handed> = idx
                    .iter()
                    .map(|i| self.receipts[i % self.receipts.len()].clone())
                    .collect();
                let rs: Vec<Receipt> = chosen.iter().map(|r| r.0.clone()).collect();
                let n = self.broker.ack(LOGQ, &rs).await.unwrap();
                let mut want = 0;
                for (_, which, id, serial) in chosen {
                    let c = &mut self.subs[which];
                    if c.sub.live(id, serial, now).is_some() {
                        c.sub.leased.remove(&id);
                        c.last_active = now;
                        want += 1;
                    }
                }
                prop_assert_eq!(n, want, "acked");
            }
            CStep::Seek(which, id) => {
                let name = cursor_sub(which).expect("a named subscription");
                self.broker.seek(LOGQ, &name, id).await.unwrap();
                self.seek_model(which, id);
                self.subs[which].last_active = now;
            }
            CStep::Reset(id) => {
                let n = self.broker.reset(LOGQ, id).await.unwrap();
                prop_assert_eq!(n, 4, "subscriptions reset");
                for which in 0..3 {
                    self.seek_model(which, id.unwrap_or(0));
                }
                self.bare.0 = self.cursor_at(id.unwrap_or(0));
            }
            CStep::CursorSeek(id) => {
                self.broker.seek(LOGQ, BARE, id).await.unwrap();
                self.bare = (self.cursor_at(id), now);
            }
            CStep::CursorRead(max) => {
                let page = self.broker.read_cursor(LOGQ, BARE, max).await.unwrap();
                let want: Vec<u64> = self
                    .log
                    .iter()
                    .filter(|m| m.id >= self.bare.0)
                    .take(max)
                    .map(|m| m.id)
                    .collect();
                let got: Vec<u64> = page.messages.iter().map(|m| m.id).collect();
                prop_assert_eq!(&got, &want, "cursor read from {}", self.bare.0);
                for m in &page.messages {
                    prop_assert_eq!(m.body.to_vec(), body(m.id));
                }
            }
            CStep::CursorTake => {
                let opts = ReadOptions {
                    max: 1,
                    subscription: Some(BARE.to_string()),
                    ..ReadOptions::default()
                };
                let refused = self.broker.take(LOGQ, opts).await.err();
                prop_assert!(
                    matches!(refused, Some(godwit_core::Error::IsACursor(_))),
                    "a take from a cursor: {:?}",
                    refused
                );
            }
            CStep::ReadLog(from, max) => {
                let page = self.broker.read_log(LOGQ, from, max).await.unwrap();
                let want: Vec<u64> = self
                    .log
                    .iter()
                    .filter(|m| m.id >= from)
                    .take(max)
                    .map(|m| m.id)
                    .collect();
                let got: Vec<u64> = page.messages.iter().map(|m| m.id).collect();
                prop_assert_eq!(&got, &want, "log page from {}", from);
                for m in &page.messages {
                    prop_assert_eq!(m.body.to_vec(), body(m.id));
                }
                prop_assert_eq!(page.next, want.last().map_or(from, |id| id + 1), "next");
            }
            CStep::Advance(ms) => self.clock.advance(ms),
            CStep::Checkpoint => self.broker.checkpoint().await.unwrap(),
            CStep::Compact => {
                self.broker.compact().await.unwrap();
            }
            CStep::Restart => {
                self.faulty.fail_appends(true);
                self.faulty.fail_syncs(true);
                self.clock.advance(1);
                let (broker, faulty) = open(&self.store, &self.clock);
                drop(std::mem::replace(&mut self.broker, broker));
                self.faulty = faulty;
                for c in &mut self.subs {
                    let mut back: Vec<Leased> = c.sub.leased.drain().map(|(_, l)| l).collect();
                    back.sort_by_key(|l| (l.until, l.m.id));
                    for l in back.into_iter().rev() {
                        c.sub.push_head(l.m);
                    }
                }
            }
        }
        self.check().await
    }

    async fn check(&self) -> Result<(), TestCaseError> {
        let all = self.broker.subscriptions(LOGQ).unwrap();
        prop_assert_eq!(all.len(), 3);
        let bare = &all[0];
        prop_assert_eq!(bare.name.as_deref(), Some(BARE));
        prop_assert!(bare.cursor);
        let backlog = self.log.iter().filter(|m| m.id >= self.bare.0).count() as u64;
        prop_assert_eq!(
            (bare.ready, bare.in_flight, bare.delayed),
            (backlog, 0, 0),
            "counters of the bare cursor"
        );
        prop_assert_eq!(bare.position, Some(self.bare.0), "position of the cursor");
        prop_assert_eq!(bare.last_active_ms, Some(self.bare.1), "its last action");
        let named = &all[1..];
        for (i, stats) in named.iter().enumerate() {
            prop_assert!(!stats.cursor);
            let c = &self.subs[i + 1];
            prop_assert_eq!(stats.name.clone(), cursor_sub(i + 1));
            prop_assert_eq!(
                (stats.ready, stats.in_flight),
                (c.sub.ready.len() as u64, c.sub.leased.len() as u64),
                "counters of s{}",
                i + 1
            );
            prop_assert_eq!(stats.position, Some(c.position), "position of s{}", i + 1);
            prop_assert_eq!(
                stats.last_active_ms,
                Some(c.last_active),
                "last action of s{}",
                i + 1
            );
        }
        let stats = self.broker.stats(LOGQ).unwrap();
        prop_assert_eq!(stats.ready, self.subs[0].sub.ready.len() as u64, "ready");
        prop_assert_eq!(stats.log_messages, self.log.len() as u64, "log length");
        for which in 0..3 {
            let peeked = self
                .broker
                .peek(LOGQ, 1000, cursor_sub(which).as_deref())
                .await
                .unwrap();
            prop_assert_eq!(
                shown(&peeked),
                modelled(&self.subs[which].sub.ordered()),
                "ready order of subscription {}",
                which
            );
        }
        // The whole log, page by page.
        let mut from = 0;
        let mut ids = Vec::new();
        loop {
            let page = self.broker.read_log(LOGQ, from, 4).await.unwrap();
            if page.messages.is_empty() {
                prop_assert_eq!(page.next, from);
                break;
            }
            ids.extend(page.messages.iter().map(|m| m.id));
            prop_assert!(page.next > from);
            from = page.next;
        }
        let want: Vec<u64> = self.log.iter().map(|m| m.id).collect();
        prop_assert_eq!(ids, want, "the log read page by page");
        Ok(())
    }
}

fn run_cursors(steps: Vec<CStep>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = Arc::new(MemoryStorage::new(SEGMENT_BYTES));
        let clock = Arc::new(ManualClock::new(1_000_000));
        let (broker, faulty) = open(&store, &clock);
        let patch = SettingsPatch {
            retention: Some(Retention {
                mode: RetentionMode::Log,
                ..Retention::default()
            }),
            ..SettingsPatch::default()
        };
        broker.configure(LOGQ, patch).await.unwrap();
        let now = clock.now_ms();
        let mut subs: [Cursor; 3] = Default::default();
        for (which, c) in subs.iter_mut().enumerate().skip(1) {
            let name = cursor_sub(which).unwrap();
            broker
                .subscribe(LOGQ, &name, StartAt::Latest)
                .await
                .unwrap();
            c.position = 1;
            c.last_active = now;
        }
        subs[0].position = 1;
        let created = broker
            .subscribe_cursor(LOGQ, BARE, StartAt::Latest)
            .await
            .unwrap();
        prop_assert!(created);
        let mut world = CursorWorld {
            store,
            clock,
            broker,
            faulty,
            next_id: 1,
            log: Vec::new(),
            subs,
            bare: (1, now),
            receipts: Vec::new(),
            next_serial: 0,
        };
        world.check().await?;
        for step in steps {
            world.step(step).await?;
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn cursors_match_model(steps in prop::collection::vec(cstep(), 1..80)) {
        run_cursors(steps)?;
    }
}
