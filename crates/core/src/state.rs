//! The in-memory model: plain data with methods that take `&mut self` and the current
//! time, and no I/O, no locks, no async.
//!
//! Every change goes through [`State::apply`], which takes an [`Op`] (and, for a push,
//! the location the store gave its record). Planning methods (`plan_*`) look at the
//! state and decide which ops an operation needs; the broker appends those ops to the
//! store and then applies them. Recovery applies the same ops from the log, so a
//! restarted broker reaches the state the running one had.
//!
//! Memory per queued message is one [`Meta`] (40 bytes) per subscription holding it;
//! bodies, headers and dedup ids stay in the store.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::*;
use crate::storage::{Location, Op, PushRecord, RemoveReason};

/// The default subscription's name.
pub const DEFAULT_SUB: &str = "";

/// What the core keeps in memory for one queued message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// Id within the queue.
    pub id: u64,
    /// Push time (ms), used by log retention by age.
    pub created_at_ms: u64,
    /// Expiry time (ms); 0 never expires.
    pub expires_at_ms: u64,
    /// Where the record is stored.
    pub loc: Location,
    /// Leases so far (saturating).
    pub deliveries: u16,
    /// 0..=9.
    pub priority: u8,
}

impl Meta {
    /// Whether the message's TTL has passed at `now`.
    pub fn expired(&self, now: u64) -> bool {
        self.expires_at_ms != 0 && now >= self.expires_at_ms
    }
}

/// A leased message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The message.
    pub meta: Meta,
    /// Token that a receipt must carry.
    pub token: u64,
    /// Deadline (ms).
    pub until_ms: u64,
}

/// One subscription's view of a queue: ready lanes per priority, delayed messages and
/// leases.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Sub {
    lanes: [VecDeque<Meta>; PRIORITY_LEVELS],
    ready: u64,
    bytes: u64,
    delayed: BTreeMap<(u64, u64), Meta>,
    inflight: HashMap<u64, Lease>,
    expiry: BTreeSet<(u64, u64)>,
}

impl Sub {
    fn insert_ready(&mut self, meta: Meta, at_head: bool) {
        let lane = &mut self.lanes[meta.priority as usize];
        if at_head {
            lane.push_front(meta);
        } else {
            lane.push_back(meta);
        }
        self.ready += 1;
    }

    fn add(&mut self, meta: Meta, not_before_ms: u64, at_head: bool) {
        self.bytes += meta.loc.len as u64;
        if not_before_ms > meta.created_at_ms {
            self.delayed.insert((not_before_ms, meta.id), meta);
        } else {
            self.insert_ready(meta, at_head);
        }
    }

    /// Removes a message wherever it is (lease, ready lane, delayed).
    fn take_out(&mut self, id: u64) -> Option<Meta> {
        if let Some(lease) = self.inflight.remove(&id) {
            self.expiry.remove(&(lease.until_ms, id));
            self.bytes -= lease.meta.loc.len as u64;
            return Some(lease.meta);
        }
        let found = self
            .lanes
            .iter()
            .enumerate()
            .find_map(|(p, lane)| (lane.front().map(|m| m.id) == Some(id)).then_some((p, 0)))
            .or_else(|| {
                self.lanes
                    .iter()
                    .enumerate()
                    .find_map(|(p, lane)| lane.iter().position(|m| m.id == id).map(|i| (p, i)))
            });
        if let Some((p, i)) = found {
            let meta = self.lanes[p].remove(i)?;
            self.ready -= 1;
            self.bytes -= meta.loc.len as u64;
            return Some(meta);
        }
        let key = self.delayed.keys().find(|(_, mid)| *mid == id).copied()?;
        let meta = self.delayed.remove(&key)?;
        self.bytes -= meta.loc.len as u64;
        Some(meta)
    }

    fn clear(&mut self) -> u64 {
        let n = self.len();
        *self = Sub::default();
        n
    }

    /// Messages held: ready, delayed and in flight.
    fn len(&self) -> u64 {
        self.ready + self.delayed.len() as u64 + self.inflight.len() as u64
    }

    /// Ready messages in delivery order: highest priority first, lane order within.
    fn ready_in_order(&self) -> impl Iterator<Item = &Meta> {
        self.lanes.iter().rev().flat_map(|lane| lane.iter())
    }

    /// Ids of delayed messages due at `now`, in (due, id) order.
    fn due(&self, now: u64) -> Vec<u64> {
        self.delayed
            .keys()
            .take_while(|(due, _)| *due <= now)
            .map(|(_, id)| *id)
            .collect()
    }

    /// Moves the given delayed messages to the tail of their lane, in order.
    fn promote(&mut self, ids: &[u64]) {
        for id in ids {
            let key = match self.delayed.first_key_value() {
                Some((&(due, first), _)) if first == *id => Some((due, first)),
                _ => self.delayed.keys().find(|(_, m)| m == id).copied(),
            };
            if let Some(meta) = key.and_then(|k| self.delayed.remove(&k)) {
                self.insert_ready(meta, false);
            }
        }
    }

    /// Every message held, with its not-before time, for seeding other subscriptions.
    fn all_messages(&self) -> impl Iterator<Item = (Meta, u64)> + '_ {
        self.ready_in_order()
            .map(|m| (*m, 0))
            .chain(self.delayed.iter().map(|(&(due, _), m)| (*m, due)))
            .chain(self.inflight.values().map(|l| (l.meta, 0)))
    }

    fn stats(&self, name: Option<String>) -> SubscriptionStats {
        SubscriptionStats {
            name,
            ready: self.ready,
            in_flight: self.inflight.len() as u64,
            delayed: self.delayed.len() as u64,
        }
    }
}

/// Counters kept as things happen.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Counters {
    pushed: u64,
    delivered: u64,
    consumed: u64,
    expired: u64,
    dead_lettered: u64,
}

/// A queue: settings, id counter, subscriptions and (for log retention) the log.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Queue {
    settings: QueueSettings,
    next_id: u64,
    subs: BTreeMap<String, Sub>,
    log: VecDeque<Meta>,
    log_bytes: u64,
    log_floor: u64,
    dedup: HashMap<String, (u64, u64)>,
    dedup_order: VecDeque<(u64, String)>,
    counters: Counters,
}

impl Queue {
    fn new(next_id: u64) -> Self {
        let mut subs = BTreeMap::new();
        subs.insert(DEFAULT_SUB.to_string(), Sub::default());
        Queue {
            next_id,
            subs,
            ..Queue::default()
        }
    }

    fn default_sub(&self) -> &Sub {
        self.subs
            .get(DEFAULT_SUB)
            .expect("every queue has its default subscription")
    }

    fn is_log(&self) -> bool {
        self.settings.retention.is_log()
    }

    fn dead_letter_queue(&self, name: &str) -> String {
        self.settings
            .dead_letter_queue
            .clone()
            .unwrap_or_else(|| format!("{name}.dlq"))
    }

    /// Adds a message to the log (log retention) and every subscription.
    fn add(&mut self, meta: Meta, not_before_ms: u64, at_head: bool) {
        if self.is_log() {
            self.log.push_back(meta);
            self.log_bytes += meta.loc.len as u64;
        }
        for sub in self.subs.values_mut() {
            sub.add(meta, not_before_ms, at_head);
        }
        self.counters.pushed += 1;
        self.next_id = self.next_id.max(meta.id + 1);
    }

    /// Retained messages from `from_id` on, in id order, for a subscription being seeded.
    fn retained_from(&self, from_id: u64) -> Vec<(Meta, u64)> {
        let mut by_id: BTreeMap<u64, (Meta, u64)> = BTreeMap::new();
        if self.is_log() {
            for m in self.log.iter().filter(|m| m.id >= from_id) {
                by_id.insert(m.id, (*m, 0));
            }
        }
        for sub in self.subs.values() {
            for (m, due) in sub.all_messages().filter(|(m, _)| m.id >= from_id) {
                by_id.entry(m.id).or_insert((m, due));
            }
        }
        by_id.into_values().collect()
    }

    fn seed(&mut self, sub: &str, start: StartAt) {
        let from = match start {
            StartAt::Latest => None,
            StartAt::Earliest => Some(0),
            StartAt::Id(id) => Some(id),
        };
        let messages = from.map(|id| self.retained_from(id)).unwrap_or_default();
        let floor = self.log_floor;
        let s = self.subs.entry(sub.to_string()).or_default();
        s.clear();
        for (mut meta, due) in messages.into_iter().filter(|(m, _)| m.id >= floor) {
            meta.deliveries = 0;
            s.add(meta, due, false);
        }
    }
}

/// Everything the broker holds in memory.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    queues: BTreeMap<String, Queue>,
    retired: HashMap<String, u64>,
    next_token: u64,
}

/// A message chosen by a read, before its body is fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Picked {
    /// The message (deliveries already counted for a lease).
    pub meta: Meta,
    /// The lease token, for leases.
    pub token: Option<u64>,
}

/// How a read consumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// Remove at once.
    Take,
    /// Lease until the given deadline (ms).
    Lease {
        /// Deadline.
        until_ms: u64,
    },
}

impl State {
    /// A state with lease tokens starting at `first_token` (use a value that grows across
    /// restarts, such as the start time, so old receipts never match new leases).
    pub fn new(first_token: u64) -> Self {
        State {
            next_token: first_token,
            ..State::default()
        }
    }

    /// Raises the next lease token to at least `token`.
    pub fn bump_token(&mut self, token: u64) {
        self.next_token = self.next_token.max(token);
    }

    fn queue_mut(&mut self, name: &str) -> &mut Queue {
        if !self.queues.contains_key(name) {
            let next_id = self.retired.remove(name).unwrap_or(1);
            self.queues.insert(name.to_string(), Queue::new(next_id));
        }
        self.queues.get_mut(name).expect("inserted above")
    }

    fn next_id_of(&self, name: &str) -> u64 {
        self.queues
            .get(name)
            .map(|q| q.next_id)
            .or_else(|| self.retired.get(name).copied())
            .unwrap_or(1)
    }

    /// Whether the queue exists.
    pub fn has_queue(&self, name: &str) -> bool {
        self.queues.contains_key(name)
    }

    /// Whether the queue has the subscription (`None` is the default one).
    pub fn has_sub(&self, queue: &str, sub: &str) -> bool {
        self.queues
            .get(queue)
            .is_some_and(|q| q.subs.contains_key(sub))
    }

    /// Applies one op. `loc` is the location of a `Push` record.
    pub fn apply(&mut self, op: &Op, loc: Option<Location>) {
        match op {
            Op::Push(rec) => {
                let Some(loc) = loc else { return };
                let meta = Meta {
                    id: rec.id,
                    created_at_ms: rec.created_at_ms,
                    expires_at_ms: rec.expires_at_ms,
                    loc,
                    deliveries: 0,
                    priority: rec.priority.min(MAX_PRIORITY),
                };
                let q = self.queue_mut(&rec.queue);
                if let Some(key) = &rec.dedup_id {
                    let until = rec.created_at_ms + q.settings.dedup_window_ms;
                    q.dedup.insert(key.clone(), (rec.id, until));
                    q.dedup_order.push_back((until, key.clone()));
                }
                q.add(meta, rec.not_before_ms, rec.at_head);
            }
            Op::Remove {
                queue,
                sub,
                ids,
                reason,
            } => {
                let Some(q) = self.queues.get_mut(queue) else {
                    return;
                };
                let Some(s) = q.subs.get_mut(sub) else { return };
                let removed = ids.iter().filter(|id| s.take_out(**id).is_some()).count() as u64;
                let c = &mut q.counters;
                match reason {
                    RemoveReason::Taken => {
                        c.delivered += removed;
                        c.consumed += removed;
                    }
                    RemoveReason::Acked => c.consumed += removed,
                    RemoveReason::Expired => c.expired += removed,
                    RemoveReason::Overflow => {}
                }
            }
            Op::Promote { queue, sub, ids } => {
                if let Some(s) = self.queues.get_mut(queue).and_then(|q| q.subs.get_mut(sub)) {
                    s.promote(ids);
                }
            }
            Op::Lease {
                queue,
                sub,
                ids,
                until_ms,
                first_token,
            } => {
                self.bump_token(first_token + ids.len() as u64);
                let Some(q) = self.queues.get_mut(queue) else {
                    return;
                };
                let Some(s) = q.subs.get_mut(sub) else { return };
                for (i, id) in ids.iter().enumerate() {
                    if let Some(mut meta) = s.take_out(*id) {
                        meta.deliveries = meta.deliveries.saturating_add(1);
                        s.bytes += meta.loc.len as u64;
                        s.inflight.insert(
                            *id,
                            Lease {
                                meta,
                                token: first_token + i as u64,
                                until_ms: *until_ms,
                            },
                        );
                        s.expiry.insert((*until_ms, *id));
                        q.counters.delivered += 1;
                    }
                }
            }
            Op::Release { queue, sub, ids } => {
                let Some(s) = self.queues.get_mut(queue).and_then(|q| q.subs.get_mut(sub)) else {
                    return;
                };
                for id in ids.iter().rev() {
                    if let Some(lease) = s.inflight.remove(id) {
                        s.expiry.remove(&(lease.until_ms, *id));
                        s.insert_ready(lease.meta, true);
                    }
                }
            }
            Op::Move {
                queue,
                sub,
                id,
                to,
                new_id,
                dead_letter,
            } => {
                let Some(q) = self.queues.get_mut(queue) else {
                    return;
                };
                let Some(meta) = q.subs.get_mut(sub).and_then(|s| s.take_out(*id)) else {
                    return;
                };
                if *dead_letter {
                    q.counters.dead_lettered += 1;
                }
                let moved = Meta {
                    id: *new_id,
                    deliveries: 0,
                    ..meta
                };
                self.queue_mut(to).add(moved, 0, false);
            }
            Op::Configure { queue, settings } => {
                let q = self.queue_mut(queue);
                if !settings.retention.is_log() {
                    q.log.clear();
                    q.log_bytes = 0;
                }
                q.settings = settings.clone();
            }
            Op::Purge { queue } => {
                if let Some(q) = self.queues.get_mut(queue) {
                    for s in q.subs.values_mut() {
                        s.clear();
                    }
                    q.log.clear();
                    q.log_bytes = 0;
                    q.log_floor = q.next_id;
                    q.dedup.clear();
                    q.dedup_order.clear();
                }
            }
            Op::DropQueue { queue } => {
                if let Some(q) = self.queues.remove(queue) {
                    self.retired.insert(queue.clone(), q.next_id);
                }
            }
            Op::Subscribe { queue, sub, start } => {
                let q = self.queue_mut(queue);
                if !q.subs.contains_key(sub) {
                    q.seed(sub, *start);
                }
            }
            Op::Seek { queue, sub, id } => {
                if let Some(q) = self.queues.get_mut(queue) {
                    if q.subs.contains_key(sub) {
                        q.seed(sub, StartAt::Id(*id));
                    }
                }
            }
            Op::Unsubscribe { queue, sub } => {
                if let Some(q) = self.queues.get_mut(queue) {
                    if !sub.is_empty() {
                        q.subs.remove(sub);
                    }
                }
            }
            Op::Trim { queue, below } => {
                let Some(q) = self.queues.get_mut(queue) else {
                    return;
                };
                while q.log.front().is_some_and(|m| m.id < *below) {
                    if let Some(m) = q.log.pop_front() {
                        q.log_bytes -= m.loc.len as u64;
                    }
                }
                q.log_floor = q.log_floor.max(*below);
                for s in q.subs.values_mut() {
                    for p in 0..PRIORITY_LEVELS {
                        while s.lanes[p].front().is_some_and(|m| m.id < *below) {
                            if let Some(m) = s.lanes[p].pop_front() {
                                s.ready -= 1;
                                s.bytes -= m.loc.len as u64;
                            }
                        }
                    }
                }
            }
            Op::Relocate { .. } => {}
        }
    }

    /// Points every message stored at a key of `moved` to its new location (after
    /// compaction copied records forward), keeping byte counts in step.
    pub fn relocate(&mut self, moved: &HashMap<Location, Location>) {
        if moved.is_empty() {
            return;
        }
        // A record may move more than once before a checkpoint: follow the chain.
        let target = |mut loc: Location| {
            for _ in 0..moved.len() {
                match moved.get(&loc) {
                    Some(next) => loc = *next,
                    None => break,
                }
            }
            loc
        };
        let fix = |m: &mut Meta, bytes: &mut u64| {
            let to = target(m.loc);
            *bytes = *bytes - m.loc.len as u64 + to.len as u64;
            m.loc = to;
        };
        for q in self.queues.values_mut() {
            for m in q.log.iter_mut() {
                fix(m, &mut q.log_bytes);
            }
            for s in q.subs.values_mut() {
                let mut bytes = s.bytes;
                s.lanes
                    .iter_mut()
                    .flat_map(|l| l.iter_mut())
                    .for_each(|m| fix(m, &mut bytes));
                s.delayed.values_mut().for_each(|m| fix(m, &mut bytes));
                s.inflight
                    .values_mut()
                    .for_each(|l| fix(&mut l.meta, &mut bytes));
                s.bytes = bytes;
            }
        }
    }

    /// Every segment some message still lives in, with the live bytes in it.
    pub fn live_segments(&self) -> BTreeMap<u32, u64> {
        let mut live: BTreeMap<u32, u64> = BTreeMap::new();
        let mut count = |m: &Meta| *live.entry(m.loc.segment).or_default() += m.loc.len as u64;
        for q in self.queues.values() {
            q.log.iter().for_each(&mut count);
            for s in q.subs.values() {
                s.lanes.iter().flat_map(|l| l.iter()).for_each(&mut count);
                s.delayed.values().for_each(&mut count);
                s.inflight.values().for_each(|l| count(&l.meta));
            }
        }
        live
    }

    /// Every distinct location of a live message in `segment` (for compaction).
    pub fn locations_in(&self, segment: u32) -> BTreeSet<Location> {
        let mut out = BTreeSet::new();
        let mut visit = |m: &Meta| {
            if m.loc.segment == segment {
                out.insert(m.loc);
            }
        };
        for q in self.queues.values() {
            q.log.iter().for_each(&mut visit);
            for s in q.subs.values() {
                s.lanes.iter().flat_map(|l| l.iter()).for_each(&mut visit);
                s.delayed.values().for_each(&mut visit);
                s.inflight.values().for_each(|l| visit(&l.meta));
            }
        }
        out
    }

    // ---- planning ------------------------------------------------------------------

    /// Decides the push ops for `messages` (validated) at `now`. Duplicates produce no
    /// op. May add an overflow `Remove` first when the queue drops its oldest.
    pub fn plan_push(
        &self,
        queue: &str,
        messages: Vec<NewMessage>,
        now: u64,
    ) -> Result<(Vec<Op>, Vec<PushOutcome>)> {
        let q = self.queues.get(queue);
        let settings = q.map(|q| q.settings.clone()).unwrap_or_default();
        let mut next_id = self.next_id_of(queue);
        let mut seen_in_batch: HashMap<&str, u64> = HashMap::new();
        let mut outcomes = Vec::with_capacity(messages.len());
        let mut pushes = Vec::with_capacity(messages.len());
        let mut new_bytes = 0u64;
        for m in &messages {
            if let Some(key) = m.dedup_id.as_deref() {
                let earlier = seen_in_batch.get(key).copied().or_else(|| {
                    q.and_then(|q| q.dedup.get(key))
                        .filter(|(_, until)| *until > now)
                        .map(|(id, _)| *id)
                });
                if let Some(id) = earlier {
                    outcomes.push(PushOutcome {
                        id,
                        duplicate: true,
                    });
                    continue;
                }
                seen_in_batch.insert(key, next_id);
            }
            outcomes.push(PushOutcome {
                id: next_id,
                duplicate: false,
            });
            new_bytes += m.body.len() as u64;
            let delay = m.delay.map(|d| d.as_millis() as u64).unwrap_or(0);
            let ttl = m.ttl.map(|d| d.as_millis() as u64);
            pushes.push(Op::Push(PushRecord {
                queue: queue.to_string(),
                id: next_id,
                created_at_ms: now,
                priority: m.priority,
                not_before_ms: now + delay,
                expires_at_ms: ttl.map(|t| now + delay + t.max(1)).unwrap_or(0),
                dedup_id: m.dedup_id.clone(),
                headers: m.headers.clone(),
                body: m.body.clone(),
                at_head: m.at_head,
            }));
            next_id += 1;
        }
        let mut ops = Vec::new();
        if let Some(q) = q {
            let sub = q.default_sub();
            let count = sub.len() + pushes.len() as u64;
            let bytes = sub.bytes + new_bytes;
            let over_len = settings
                .max_length
                .map_or(0, |max| count.saturating_sub(max));
            let over_bytes = settings.max_bytes.is_some_and(|max| bytes > max);
            if over_len > 0 || over_bytes {
                match settings.overflow {
                    Overflow::Reject => return Err(Error::QueueFull(queue.to_string())),
                    Overflow::DropOldest => {
                        let mut need_bytes = settings
                            .max_bytes
                            .map_or(0, |max| bytes.saturating_sub(max));
                        // The oldest ready messages sit near the front of their lanes.
                        let window = over_len as usize + 64;
                        let mut oldest: Vec<&Meta> = sub
                            .lanes
                            .iter()
                            .flat_map(|l| l.iter().take(window))
                            .collect();
                        oldest.sort_by_key(|m| m.id);
                        let mut ids = Vec::new();
                        for m in oldest {
                            if ids.len() as u64 >= over_len && need_bytes == 0 {
                                break;
                            }
                            need_bytes = need_bytes.saturating_sub(m.loc.len as u64);
                            ids.push(m.id);
                        }
                        if (ids.len() as u64) < over_len || need_bytes > 0 {
                            return Err(Error::QueueFull(queue.to_string()));
                        }
                        ops.push(Op::Remove {
                            queue: queue.to_string(),
                            sub: DEFAULT_SUB.to_string(),
                            ids,
                            reason: RemoveReason::Overflow,
                        });
                    }
                }
            }
        }
        ops.extend(pushes);
        Ok((ops, outcomes))
    }

    /// The `Trim` op log retention needs now, if any.
    pub fn plan_retention(&self, queue: &str, now: u64) -> Option<Op> {
        let q = self.queues.get(queue)?;
        let Retention {
            mode: RetentionMode::Log,
            max_age_ms,
            max_bytes,
            max_count,
        } = q.settings.retention
        else {
            return None;
        };
        let mut drop = 0usize;
        let mut bytes = q.log_bytes;
        for (i, m) in q.log.iter().enumerate() {
            let remaining = (q.log.len() - i) as u64;
            let too_old = max_age_ms.is_some_and(|age| m.created_at_ms + age <= now);
            let too_many = max_count.is_some_and(|max| remaining > max);
            let too_big = max_bytes.is_some_and(|max| bytes > max);
            if !(too_old || too_many || too_big) {
                break;
            }
            bytes -= m.loc.len as u64;
            drop = i + 1;
        }
        if drop == 0 {
            return None;
        }
        let below = q.log.get(drop).map_or(q.next_id, |m| m.id);
        Some(Op::Trim {
            queue: queue.to_string(),
            below,
        })
    }

    /// Chooses up to `max` ready messages of a subscription; returns the ops (expired
    /// messages met on the way are removed too) and the chosen messages. A paused queue
    /// chooses nothing.
    pub fn plan_read(
        &mut self,
        queue: &str,
        sub: &str,
        max: usize,
        mode: ReadMode,
        now: u64,
    ) -> (Vec<Op>, Vec<Picked>) {
        let first_token = self.next_token;
        let Some(q) = self.queues.get_mut(queue) else {
            return (Vec::new(), Vec::new());
        };
        if q.settings.paused {
            return (Vec::new(), Vec::new());
        }
        let floor = q.log_floor;
        let Some(s) = q.subs.get_mut(sub) else {
            return (Vec::new(), Vec::new());
        };
        let mut expired = Vec::new();
        let mut picked = Vec::new();
        for m in s.ready_in_order() {
            if picked.len() >= max {
                break;
            }
            if m.expired(now) || m.id < floor {
                expired.push(m.id);
            } else {
                picked.push(*m);
            }
        }
        let mut ops = Vec::new();
        if !expired.is_empty() {
            ops.push(Op::Remove {
                queue: queue.to_string(),
                sub: sub.to_string(),
                ids: expired,
                reason: RemoveReason::Expired,
            });
        }
        if picked.is_empty() {
            return (ops, Vec::new());
        }
        let ids: Vec<u64> = picked.iter().map(|m| m.id).collect();
        let picked = match mode {
            ReadMode::Take => {
                ops.push(Op::Remove {
                    queue: queue.to_string(),
                    sub: sub.to_string(),
                    ids,
                    reason: RemoveReason::Taken,
                });
                picked
                    .into_iter()
                    .map(|mut meta| {
                        meta.deliveries = meta.deliveries.saturating_add(1);
                        Picked { meta, token: None }
                    })
                    .collect()
            }
            ReadMode::Lease { until_ms } => {
                ops.push(Op::Lease {
                    queue: queue.to_string(),
                    sub: sub.to_string(),
                    ids,
                    until_ms,
                    first_token,
                });
                picked
                    .into_iter()
                    .enumerate()
                    .map(|(i, mut meta)| {
                        meta.deliveries = meta.deliveries.saturating_add(1);
                        Picked {
                            meta,
                            token: Some(first_token + i as u64),
                        }
                    })
                    .collect()
            }
        };
        (ops, picked)
    }

    /// Up to `max` ready messages in delivery order, without consuming them.
    pub fn peek(&self, queue: &str, sub: &str, max: usize, now: u64) -> Vec<Meta> {
        let Some(q) = self.queues.get(queue) else {
            return Vec::new();
        };
        let floor = q.log_floor;
        let Some(s) = q.subs.get(sub) else {
            return Vec::new();
        };
        s.ready_in_order()
            .filter(|m| !m.expired(now) && m.id >= floor)
            .take(max)
            .copied()
            .collect()
    }

    /// The live lease `(id, token)` of a subscription, if the receipt still matches.
    pub fn live_lease(&self, queue: &str, sub: &str, id: u64, token: u64, now: u64) -> bool {
        self.queues
            .get(queue)
            .and_then(|q| q.subs.get(sub))
            .and_then(|s| s.inflight.get(&id))
            .is_some_and(|l| l.token == token && l.until_ms > now)
    }

    /// The op that returns a leased message: a `Release`, or a dead-letter `Move` once
    /// it reached the queue's max deliveries.
    pub fn plan_return(&self, queue: &str, sub: &str, id: u64) -> Option<Op> {
        let q = self.queues.get(queue)?;
        let lease = q.subs.get(sub)?.inflight.get(&id)?;
        let dead = q
            .settings
            .max_deliveries
            .is_some_and(|max| lease.meta.deliveries as u32 >= max);
        if dead {
            let to = q.dead_letter_queue(queue);
            let new_id = self.next_id_of(&to);
            Some(Op::Move {
                queue: queue.to_string(),
                sub: sub.to_string(),
                id,
                to,
                new_id,
                dead_letter: true,
            })
        } else {
            Some(Op::Release {
                queue: queue.to_string(),
                sub: sub.to_string(),
                ids: vec![id],
            })
        }
    }

    /// Changes a live lease's deadline (not logged: leases do not survive a restart).
    pub fn extend_lease(&mut self, queue: &str, sub: &str, id: u64, until_ms: u64) {
        let Some(s) = self.queues.get_mut(queue).and_then(|q| q.subs.get_mut(sub)) else {
            return;
        };
        if let Some(lease) = s.inflight.get_mut(&id) {
            s.expiry.remove(&(lease.until_ms, id));
            lease.until_ms = until_ms;
            s.expiry.insert((until_ms, id));
        }
    }

    /// Leases past their deadline at `now`, as `(queue, sub, id)`.
    pub fn expired_leases(&self, queue: &str, now: u64) -> Vec<(String, u64)> {
        let Some(q) = self.queues.get(queue) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (name, s) in &q.subs {
            for &(until, id) in &s.expiry {
                if until > now {
                    break;
                }
                out.push((name.clone(), id));
            }
        }
        out
    }

    /// Every in-flight lease of every queue, as `(queue, sub, id)` (to release at start).
    pub fn all_leases(&self) -> Vec<(String, String, u64)> {
        let mut out = Vec::new();
        for (qn, q) in &self.queues {
            for (sn, s) in &q.subs {
                let mut leases: Vec<&Lease> = s.inflight.values().collect();
                leases.sort_by_key(|l| (l.until_ms, l.meta.id));
                out.extend(leases.iter().map(|l| (qn.clone(), sn.clone(), l.meta.id)));
            }
        }
        out
    }

    /// Forgets dedup ids past their window (needs no log record: replay rebuilds the
    /// same windows from the push records).
    pub fn forget_dedup(&mut self, queue: &str, now: u64) {
        let Some(q) = self.queues.get_mut(queue) else {
            return;
        };
        while let Some((until, key)) = q.dedup_order.front() {
            if *until > now {
                break;
            }
            if q.dedup.get(key).is_some_and(|(_, u)| u == until) {
                q.dedup.remove(key);
            }
            q.dedup_order.pop_front();
        }
    }

    /// The `Promote` ops for delayed messages due at `now`.
    pub fn plan_promote(&self, queue: &str, now: u64) -> Vec<Op> {
        let Some(q) = self.queues.get(queue) else {
            return Vec::new();
        };
        q.subs
            .iter()
            .filter_map(|(name, s)| {
                let ids = s.due(now);
                (!ids.is_empty()).then(|| Op::Promote {
                    queue: queue.to_string(),
                    sub: name.clone(),
                    ids,
                })
            })
            .collect()
    }

    /// The earliest time something in the queue changes by itself (a delay ends or a
    /// lease expires), for waiters to wake.
    pub fn next_wake(&self, queue: &str) -> Option<u64> {
        let q = self.queues.get(queue)?;
        q.subs
            .values()
            .flat_map(|s| {
                let delay = s.delayed.keys().next().map(|(due, _)| *due);
                let lease = s.expiry.iter().next().map(|(until, _)| *until);
                delay.into_iter().chain(lease)
            })
            .min()
    }

    /// Names of queues that have leases or delayed messages (the sweeper visits these).
    pub fn busy_queues(&self) -> Vec<String> {
        self.queues
            .iter()
            .filter(|(_, q)| {
                (q.settings.retention.is_log() && q.settings.retention.max_age_ms.is_some())
                    || !q.dedup_order.is_empty()
                    || q.subs
                        .values()
                        .any(|s| !s.expiry.is_empty() || !s.delayed.is_empty())
            })
            .map(|(n, _)| n.clone())
            .collect()
    }

    // ---- views ---------------------------------------------------------------------

    /// The settings of a queue.
    pub fn settings(&self, queue: &str) -> Option<&QueueSettings> {
        self.queues.get(queue).map(|q| &q.settings)
    }

    /// Stats of one queue.
    pub fn stats(&self, queue: &str) -> Option<QueueStats> {
        let q = self.queues.get(queue)?;
        let d = q.default_sub();
        Some(QueueStats {
            name: queue.to_string(),
            ready: d.ready,
            in_flight: d.inflight.len() as u64,
            delayed: d.delayed.len() as u64,
            bytes: d.bytes,
            total_pushed: q.counters.pushed,
            total_delivered: q.counters.delivered,
            total_consumed: q.counters.consumed,
            total_expired: q.counters.expired,
            total_dead_lettered: q.counters.dead_lettered,
            next_id: q.next_id,
            subscriptions: q.subs.len() as u64 - 1,
            log_messages: q.log.len() as u64,
            paused: q.settings.paused,
        })
    }

    /// Names of all queues, sorted.
    pub fn queue_names(&self) -> impl Iterator<Item = &String> {
        self.queues.keys()
    }

    /// Stats of a queue's named subscriptions.
    pub fn subscriptions(&self, queue: &str) -> Option<Vec<SubscriptionStats>> {
        let q = self.queues.get(queue)?;
        Some(
            q.subs
                .iter()
                .filter(|(n, _)| !n.is_empty())
                .map(|(n, s)| s.stats(Some(n.clone())))
                .collect(),
        )
    }

    /// Ready messages of the default subscription (for the dropped-count of a purge).
    pub fn held(&self, queue: &str) -> u64 {
        self.queues.get(queue).map_or(0, |q| q.default_sub().len())
    }
}
