//! The in-memory model: plain data with methods that take `&mut self` and the current
//! time, and no I/O, no locks, no async.
//!
//! Every durable change goes through [`State::apply`], which takes an [`Op`] (and, for
//! a push, the location the store gave its record). The planners (`plan.rs`) look at
//! the state and decide which ops an operation needs; the broker appends those ops to
//! the store and then applies them. Recovery applies the same ops from the log, so a
//! restarted broker reaches the state the running one had.
//!
//! | file | idea |
//! | --- | --- |
//! | `lane.rs` | one priority's ready order (chunked, shared on snapshot) |
//! | `sub.rs` | a subscription: lanes, delays, leases, reservations |
//! | `queue.rs` | a queue: settings, ids, subscriptions, log, dedup, counters |
//! | `live.rs` | live references per log segment, for reclamation |
//! | `plan.rs` | the planners: which ops an operation needs |
//! | here | `State`, `apply`, relocation and the read-only views |
//!
//! Memory per queued message is one [`Meta`] (48 bytes) and one value-index entry (12
//! bytes in a B-tree, about 29 bytes with the tree's nodes) per subscription holding
//! it; bodies, headers, dedup ids and soft-get counts (a side map of the messages that
//! have any) stay out of it.

mod kv;
mod lane;
mod live;
mod plan;
mod queue;
mod sub;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::model::*;
use crate::op::{Location, Op, RemoveReason};

pub(crate) use kv::Planned;
pub(crate) use live::SegmentLive;
pub(crate) use plan::touch;
pub use plan::ReadMode;
pub(crate) use sub::DeliveryId;

use live::Live;
use queue::{Cursor, Queue};

/// The part of a body hash a [`Meta`] keeps.
pub(crate) fn hash32(hash: u64) -> u32 {
    (hash >> 32) as u32
}

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
    /// Body length in bytes (what `max_bytes` and the `bytes` stats count).
    pub body_len: u32,
    /// The top 32 bits of the body's hash ([`crate::op::body_hash`]), for the value
    /// index (candidates are compared by body, so half the hash is enough).
    pub hash: u32,
    /// Leases so far (saturating).
    pub deliveries: u16,
    /// 0..=9.
    pub priority: u8,
}

// A `Meta` per message per subscription is most of the memory a backlog costs.
const _: () = assert!(std::mem::size_of::<Meta>() == 48);

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

/// The queue named `name`, created (with its remembered id counter and the next
/// creation number) when absent.
fn queue_entry<'a>(
    queues: &'a mut BTreeMap<String, Queue>,
    retired: &mut HashMap<String, u64>,
    next_seq: &mut u64,
    name: &str,
) -> &'a mut Queue {
    // Looked up first so the common case allocates no key.
    if !queues.contains_key(name) {
        let next_id = retired.remove(name).unwrap_or(1);
        *next_seq += 1;
        queues.insert(name.to_string(), Queue::new(next_id, *next_seq));
    }
    queues.get_mut(name).expect("inserted above")
}

/// What a move means for the source queue's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Moved {
    /// A dead-lettering (the message also loses its TTL).
    DeadLetter,
    /// Delivered and consumed by a move (`LMOVE`).
    Consumed,
    /// Neither (a `Move` op that is not a dead-lettering).
    Plain,
}

/// A cursor as a checkpoint's third section lists it: queue, name, cursor.
type CursorEntry = (String, String, Cursor);

/// Everything the broker holds in memory.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    queues: BTreeMap<String, Queue>,
    retired: HashMap<String, u64>,
    next_token: u64,
    /// The creation number of the newest queue.
    next_seq: u64,
    /// Derived from the messages held; rebuilt after a checkpoint load.
    #[serde(skip)]
    live: Live,
    /// The key/value namespace: encoded after the rest in a checkpoint (see
    /// [`State::from_checkpoint`]).
    #[serde(skip)]
    kv: kv::Kv,
}

impl State {
    /// Decodes a checkpoint and rebuilds what is derived from it. A checkpoint is the
    /// queues' state, then the key/value namespace's, then the cursor subscriptions
    /// (version 5); one written before cursors (version 4) ends after the second part.
    pub(crate) fn from_checkpoint(bytes: &[u8]) -> Result<State, postcard::Error> {
        let (mut st, rest): (State, &[u8]) = postcard::take_from_bytes(bytes)?;
        if !rest.is_empty() {
            let (kv, rest): (kv::Kv, &[u8]) = postcard::take_from_bytes(rest)?;
            st.kv = kv;
            st.kv.rebuild();
            if !rest.is_empty() {
                let cursors: Vec<CursorEntry> = postcard::from_bytes(rest)?;
                for (queue, name, cursor) in cursors {
                    if let Some(q) = st.queues.get_mut(&queue) {
                        q.cursors.insert(name, cursor);
                    }
                }
            }
        }
        let mut live = Live::default();
        st.queues.values_mut().for_each(|q| q.rebuild(&mut live));
        st.live = live;
        Ok(st)
    }

    /// Encodes a checkpoint of this state (a [`State::snapshot`]) into `out`.
    pub(crate) fn write_checkpoint(&self, out: impl std::io::Write) -> postcard::Result<()> {
        let out = postcard::to_io(self, out)?;
        let out = postcard::to_io(&self.kv, out)?;
        let cursors: Vec<(&String, &String, &Cursor)> = self
            .queues
            .iter()
            .flat_map(|(q, queue)| queue.cursors.iter().map(move |(n, c)| (q, n, c)))
            .collect();
        postcard::to_io(&cursors, out)?;
        Ok(())
    }

    /// A copy to checkpoint: cheap under the lock (lane chunks are shared), without
    /// reservations or derived indexes.
    pub(crate) fn snapshot(&self) -> State {
        State {
            queues: self
                .queues
                .iter()
                .map(|(n, q)| (n.clone(), q.snapshot()))
                .collect(),
            retired: self.retired.clone(),
            next_token: self.next_token,
            next_seq: self.next_seq,
            live: Live::default(),
            kv: self.kv.snapshot(),
        }
    }

    /// Raises the next lease token to at least `token`.
    pub fn bump_token(&mut self, token: u64) {
        self.next_token = self.next_token.max(token);
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

    /// Whether the queue has the subscription ("" is the default one), of either
    /// kind.
    pub fn has_sub(&self, queue: &str, sub: &str) -> bool {
        self.queues
            .get(queue)
            .is_some_and(|q| q.subs.contains_key(sub) || q.cursors.contains_key(sub))
    }

    /// Whether the queue's subscription `sub` is a bare cursor.
    pub fn is_cursor(&self, queue: &str, sub: &str) -> bool {
        self.queues
            .get(queue)
            .is_some_and(|q| q.cursors.contains_key(sub))
    }

    /// Where cursor `sub` of `queue` reads from next (raised past what was trimmed).
    pub fn cursor_position(&self, queue: &str, sub: &str) -> Option<u64> {
        let q = self.queues.get(queue)?;
        q.cursors.get(sub).map(|c| q.cursor_position(c))
    }

    /// Applies one op. `loc` is the location of a `Push` record.
    pub fn apply(&mut self, op: &Op, loc: Option<Location>) {
        if self.kv.apply(op) {
            return;
        }
        let live = &mut self.live;
        match op {
            Op::Push(rec) => {
                let Some(loc) = loc else { return };
                let meta = Meta {
                    id: rec.id,
                    created_at_ms: rec.created_at_ms,
                    expires_at_ms: rec.expires_at_ms,
                    loc,
                    body_len: u32::try_from(rec.body.len()).unwrap_or(u32::MAX),
                    deliveries: 0,
                    hash: hash32(
                        rec.body_hash
                            .unwrap_or_else(|| crate::op::body_hash(&rec.body)),
                    ),
                    priority: rec.priority.min(MAX_PRIORITY),
                };
                let q = queue_entry(
                    &mut self.queues,
                    &mut self.retired,
                    &mut self.next_seq,
                    &rec.queue,
                );
                if let Some(key) = &rec.dedup_id {
                    if q.settings.dedup_until_consumed {
                        q.held_dedup.insert(key.clone(), rec.id);
                        q.dedup_key_of.insert(rec.id, key.clone());
                    } else {
                        let until = rec.created_at_ms.saturating_add(q.settings.dedup_window_ms);
                        q.dedup.insert(key.clone(), (rec.id, until));
                        q.dedup_order.push_back((until, key.clone()));
                    }
                }
                q.add(meta, rec.not_before_ms, rec.at_head, live);
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
                let cursor = q.is_log() && *reason == RemoveReason::Taken;
                let Some(s) = q.subs.get_mut(sub) else { return };
                let mut removed = 0u64;
                for id in ids {
                    if s.take_out(*id, live).is_some() {
                        removed += 1;
                        if cursor {
                            s.passed(*id);
                        }
                    }
                }
                q.release_dedup(ids);
                let c = &mut q.counters;
                match reason {
                    RemoveReason::Taken => {
                        c.delivered += removed;
                        c.consumed += removed;
                    }
                    RemoveReason::Acked => c.consumed += removed,
                    RemoveReason::Expired => c.expired += removed,
                    RemoveReason::Overflow => c.discarded += removed,
                    RemoveReason::Deleted => c.deleted += removed,
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
                self.next_token = self
                    .next_token
                    .max(first_token.saturating_add(ids.len() as u64));
                let Some(q) = self.queues.get_mut(queue) else {
                    return;
                };
                let cursor = q.is_log();
                let Some(s) = q.subs.get_mut(sub) else { return };
                for (i, id) in ids.iter().enumerate() {
                    if s.lease(*id, *until_ms, first_token.saturating_add(i as u64)) {
                        q.counters.delivered += 1;
                        if cursor {
                            s.passed(*id);
                        }
                    }
                }
            }
            Op::Release { queue, sub, ids } => {
                let Some(s) = self.queues.get_mut(queue).and_then(|q| q.subs.get_mut(sub)) else {
                    return;
                };
                for id in ids.iter().rev() {
                    s.release(*id);
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
                // A dead letter is kept for inspection: its TTL no longer applies (as
                // RabbitMQ drops the expiration of a dead-lettered message).
                let how = if *dead_letter {
                    Moved::DeadLetter
                } else {
                    Moved::Plain
                };
                self.move_message(queue, sub, *id, to, *new_id, false, how);
            }
            Op::Configure { queue, settings } => {
                let q = queue_entry(
                    &mut self.queues,
                    &mut self.retired,
                    &mut self.next_seq,
                    queue,
                );
                q.configure(QueueSettings::from(settings.clone()), live);
            }
            Op::Settings { queue, json } => {
                let settings: QueueSettings = match serde_json::from_str(json) {
                    Ok(s) => s,
                    Err(e) => {
                        // Checksummed and written by this code: only a bug gets here.
                        tracing::error!(queue, error = %e, "queue settings record unreadable; kept the old settings");
                        return;
                    }
                };
                let q = queue_entry(
                    &mut self.queues,
                    &mut self.retired,
                    &mut self.next_seq,
                    queue,
                );
                q.configure(settings, live);
            }
            Op::Purge { queue } => {
                if let Some(q) = self.queues.get_mut(queue) {
                    q.release_all(live);
                    q.log_floor = q.next_id;
                    let next_id = q.next_id;
                    q.subs.values_mut().for_each(|s| s.position = next_id);
                    q.dedup.clear();
                    q.dedup_order.clear();
                    q.held_dedup.clear();
                    q.dedup_key_of.clear();
                }
            }
            Op::DropQueue { queue } => {
                if let Some(mut q) = self.queues.remove(queue) {
                    q.release_all(live);
                    self.retired.insert(queue.clone(), q.next_id);
                }
            }
            Op::Subscribe { queue, sub, start } => {
                let q = queue_entry(
                    &mut self.queues,
                    &mut self.retired,
                    &mut self.next_seq,
                    queue,
                );
                if !q.subs.contains_key(sub) {
                    q.seed(sub, *start, live);
                }
            }
            Op::Cursor { queue, sub, start } => {
                if let Some(q) = self.queues.get_mut(queue) {
                    if !sub.is_empty() && !q.subs.contains_key(sub) && !q.cursors.contains_key(sub)
                    {
                        q.add_cursor(sub, *start);
                    }
                }
            }
            Op::Seek { queue, sub, id } => {
                if let Some(q) = self.queues.get_mut(queue) {
                    if q.seek_cursor(sub, *id) {
                        return;
                    }
                    if q.subs.contains_key(sub) {
                        q.seed(sub, StartAt::Id(*id), live);
                    }
                    q.release_all_dedup();
                }
            }
            Op::Unsubscribe { queue, sub } => {
                if let Some(q) = self.queues.get_mut(queue) {
                    if !sub.is_empty() {
                        if let Some(mut s) = q.subs.remove(sub) {
                            s.clear(live);
                        }
                        if q.cursors.remove(sub).is_some() {
                            return;
                        }
                    }
                    q.release_all_dedup();
                }
            }
            Op::Trim { queue, below } => {
                let Some(q) = self.queues.get_mut(queue) else {
                    return;
                };
                while q.log.front().is_some_and(|m| m.id < *below) {
                    if let Some(m) = q.log.pop_front() {
                        q.log_bytes -= u64::from(m.body_len);
                        live.remove(m.loc);
                    }
                }
                q.log_floor = q.log_floor.max(*below);
                for s in q.subs.values_mut() {
                    s.trim_below(*below, live);
                    s.position = s.position.max(*below);
                }
                let gone: Vec<u64> = q
                    .dedup_key_of
                    .keys()
                    .filter(|id| **id < *below)
                    .copied()
                    .collect();
                q.release_dedup(&gone);
            }
            Op::Relocate { .. } => {}
            Op::KvSet { .. } | Op::KvExpire { .. } | Op::KvDelete { .. } | Op::KvFlush => {}
            Op::MoveTo {
                queue,
                sub,
                id,
                to,
                new_id,
                at_head,
            } => self.move_message(queue, sub, *id, to, *new_id, *at_head, Moved::Consumed),
            Op::SoftGet { queue, sub, id } => {
                if let Some(s) = self.queues.get_mut(queue).and_then(|q| q.subs.get_mut(sub)) {
                    s.count_soft_get(*id);
                }
            }
            Op::Create {
                queue,
                created_at_ms,
                description,
                fanout_only,
            } => {
                if self.queues.contains_key(queue) {
                    return;
                }
                // A key of that name had expired (a live one refuses the creation).
                self.kv.remove(queue);
                let q = queue_entry(
                    &mut self.queues,
                    &mut self.retired,
                    &mut self.next_seq,
                    queue,
                );
                q.created_at_ms = *created_at_ms;
                q.description = description.clone();
                q.fanout_only = *fanout_only;
                if *fanout_only {
                    q.subs.remove(DEFAULT_SUB);
                }
            }
            Op::Describe { queue, description } => {
                if let Some(q) = self.queues.get_mut(queue) {
                    q.description = description.clone();
                }
            }
            Op::Touch { queue, sub, at_ms } => {
                let Some(q) = self.queues.get_mut(queue) else {
                    return;
                };
                if let Some(s) = q.subs.get_mut(sub) {
                    s.last_active_ms = *at_ms;
                } else if let Some(c) = q.cursors.get_mut(sub) {
                    c.last_active_ms = *at_ms;
                }
            }
            Op::Reset { queue, id } => {
                if let Some(q) = self.queues.get_mut(queue) {
                    if q.is_log() {
                        q.reset(*id, live);
                    }
                }
            }
        }
    }

    /// Takes message `id` out of a subscription and adds it to queue `to` (created if
    /// absent) as message `new_id`, sharing its record; counted as `how` says.
    #[allow(clippy::too_many_arguments)]
    fn move_message(
        &mut self,
        queue: &str,
        sub: &str,
        id: u64,
        to: &str,
        new_id: u64,
        at_head: bool,
        how: Moved,
    ) {
        let live = &mut self.live;
        let Some(q) = self.queues.get_mut(queue) else {
            return;
        };
        let cursor = q.is_log() && how == Moved::Consumed;
        let Some(s) = q.subs.get_mut(sub) else { return };
        let Some(meta) = s.take_out(id, live) else {
            return;
        };
        if cursor {
            s.passed(id);
        }
        q.release_dedup(&[id]);
        match how {
            Moved::DeadLetter => q.counters.dead_lettered += 1,
            Moved::Consumed => {
                q.counters.delivered += 1;
                q.counters.consumed += 1;
            }
            Moved::Plain => {}
        }
        let moved = Meta {
            id: new_id,
            deliveries: 0,
            expires_at_ms: if how == Moved::DeadLetter {
                0
            } else {
                meta.expires_at_ms
            },
            ..meta
        };
        queue_entry(&mut self.queues, &mut self.retired, &mut self.next_seq, to)
            .add(moved, 0, at_head, live);
    }

    /// Points every message stored at a key of `moved` to its new location (after
    /// compaction copied records forward), keeping the segment accounting in step.
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
        let live = &mut self.live;
        let mut fix = |m: &mut Meta| {
            let to = target(m.loc);
            if to != m.loc {
                live.remove(m.loc);
                live.add(to);
                m.loc = to;
            }
        };
        for q in self.queues.values_mut() {
            q.log.for_each_mut(&mut fix);
            for s in q.subs.values_mut() {
                s.for_each_mut(&mut fix);
            }
        }
    }

    /// Every segment some message still lives in, with its live references.
    pub(crate) fn live_segments(&self) -> BTreeMap<u32, SegmentLive> {
        self.live.segments().collect()
    }

    /// The live references into segment `n`.
    pub(crate) fn live_in(&self, n: u32) -> SegmentLive {
        self.live.get(n)
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
                s.for_each(&mut visit);
            }
        }
        out
    }

    // ---- views ---------------------------------------------------------------------

    /// The settings of a queue.
    pub fn settings(&self, queue: &str) -> Option<&QueueSettings> {
        self.queues.get(queue).map(|q| &q.settings)
    }

    /// Stats of one queue.
    pub fn stats(&self, queue: &str) -> Option<QueueStats> {
        let q = self.queues.get(queue)?;
        let empty = sub::Sub::default();
        let default = q.default_sub().unwrap_or(&empty);
        let d = default.stats(None);
        Some(QueueStats {
            name: queue.to_string(),
            ready: d.ready,
            in_flight: d.in_flight,
            delayed: d.delayed,
            bytes: default.bytes(),
            ready_bytes: default.ready_bytes(),
            waiters: 0,
            live_consumers: 0,
            last_age_ms: q.last_age_ms,
            total_pushed: q.counters.pushed,
            total_delivered: q.counters.delivered,
            total_consumed: q.counters.consumed,
            total_expired: q.counters.expired,
            total_dead_lettered: q.counters.dead_lettered,
            total_discarded: q.counters.discarded,
            total_deleted: q.counters.deleted,
            next_id: q.next_id,
            subscriptions: (q.subs.keys().filter(|n| !n.is_empty()).count() + q.cursors.len())
                as u64,
            log_messages: q.log.len() as u64,
            paused: q.settings.paused,
            created_at_ms: q.created_at_ms,
            creation: q.seq,
            description: q.description.clone(),
            fanout_only: q.fanout_only,
        })
    }

    /// Names of all queues, sorted.
    pub fn queue_names(&self) -> impl Iterator<Item = &String> {
        self.queues.keys()
    }

    /// Names of the queues that start with `prefix`, sorted (a range of the map, not a
    /// scan of every queue).
    pub fn queue_names_with<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a String> {
        self.queues
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .map(|(name, _)| name)
            .take_while(move |name| name.starts_with(prefix))
    }

    /// Whether the queue has no default subscription (reads must name one).
    pub fn is_fanout_only(&self, queue: &str) -> bool {
        self.queues.get(queue).is_some_and(|q| q.fanout_only)
    }

    /// Stats of a queue's named subscriptions, both kinds, by name.
    pub fn subscriptions(&self, queue: &str) -> Option<Vec<SubscriptionStats>> {
        let q = self.queues.get(queue)?;
        let log = q.is_log();
        let subs = q.subs.iter().filter(|(n, _)| !n.is_empty()).map(|(n, s)| {
            let mut stats = s.stats(Some(n.clone()));
            if log {
                stats.position = Some(s.position);
                stats.last_active_ms = Some(s.last_active_ms);
            }
            stats
        });
        let cursors = q.cursors.iter().map(|(n, c)| {
            let position = q.cursor_position(c);
            SubscriptionStats {
                name: Some(n.clone()),
                ready: q.cursor_backlog(position),
                in_flight: 0,
                delayed: 0,
                position: Some(position),
                last_active_ms: Some(c.last_active_ms),
                cursor: true,
            }
        });
        let mut all: Vec<SubscriptionStats> = subs.chain(cursors).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Some(all)
    }

    /// Whether the queue keeps a log (log retention).
    pub fn is_log(&self, queue: &str) -> bool {
        self.queues.get(queue).is_some_and(|q| q.is_log())
    }

    /// How many subscriptions the queue has, the default one included.
    pub fn sub_count(&self, queue: &str) -> u64 {
        self.queues
            .get(queue)
            .map_or(0, |q| (q.subs.len() + q.cursors.len()) as u64)
    }

    /// Up to `max` messages of the queue's retained log with ids from `from` on, in id
    /// order, leaving out those whose TTL passed at `now`. Costs O(log n) to find the
    /// first, then one step per message.
    pub fn log_from(&self, queue: &str, from: u64, max: usize, now: u64) -> Vec<Meta> {
        let Some(q) = self.queues.get(queue) else {
            return Vec::new();
        };
        q.log
            .iter_from_id(from.max(q.log_floor))
            .filter(|m| !m.expired(now))
            .take(max)
            .copied()
            .collect()
    }

    /// Messages the default subscription holds (the dropped count of a purge).
    pub fn held(&self, queue: &str) -> u64 {
        self.queues
            .get(queue)
            .and_then(|q| q.default_sub())
            .map_or(0, |s| s.len())
    }

    /// Up to `max` ready, unreserved messages from `end` (in delivery order from the
    /// head, in reverse from the tail), without consuming.
    pub fn peek(&self, queue: &str, sub: &str, max: usize, end: End, now: u64) -> Vec<Meta> {
        let Some((s, floor)) = self.sub_view(queue, sub) else {
            return Vec::new();
        };
        s.ready_from(end)
            .filter(|m| s.is_shown(m, now, floor))
            .take(max)
            .copied()
            .collect()
    }

    /// A subscription and its queue's log floor (ids below it were trimmed or purged).
    fn sub_view(&self, queue: &str, sub: &str) -> Option<(&sub::Sub, u64)> {
        let q = self.queues.get(queue)?;
        Some((q.subs.get(sub)?, q.log_floor))
    }

    /// How many soft gets have returned each of `metas`, messages of a subscription
    /// (one lookup of the subscription for them all).
    pub fn soft_gets_of(&self, queue: &str, sub: &str, metas: &[Meta]) -> Vec<u16> {
        let s = self.queues.get(queue).and_then(|q| q.subs.get(sub));
        metas
            .iter()
            .map(|m| s.map_or(0, |s| s.soft_gets_of(m.id)))
            .collect()
    }

    /// Ready, unreserved messages a read could get now (what positions count).
    pub fn visible(&self, queue: &str, sub: &str) -> u64 {
        self.queues
            .get(queue)
            .and_then(|q| q.subs.get(sub))
            .map_or(0, |s| s.visible())
    }

    /// The ready messages at positions `first..=last` of the delivery order (0 is the
    /// head), in that order. Walks from whichever end is nearer, so a position costs
    /// its distance from that end.
    pub fn range(&self, queue: &str, sub: &str, first: u64, last: u64, now: u64) -> Vec<Meta> {
        let Some((s, floor)) = self.sub_view(queue, sub) else {
            return Vec::new();
        };
        let len = s.visible();
        if first > last || first >= len {
            return Vec::new();
        }
        let last = last.min(len - 1);
        let count = usize::try_from(last - first + 1).unwrap_or(usize::MAX);
        let shown = |m: &&Meta| s.is_shown(m, now, floor);
        if first <= len - 1 - last {
            let skip = usize::try_from(first).unwrap_or(usize::MAX);
            s.ready_from(End::Head)
                .filter(shown)
                .skip(skip)
                .take(count)
                .copied()
                .collect()
        } else {
            let skip = usize::try_from(len - 1 - last).unwrap_or(usize::MAX);
            let mut out: Vec<Meta> = s
                .ready_from(End::Tail)
                .filter(shown)
                .skip(skip)
                .take(count)
                .copied()
                .collect();
            out.reverse();
            out
        }
    }

    /// The messages a subscription holds (ready, delayed or in flight) whose body hash
    /// is `hash`: candidates for a value, to be compared by body.
    pub fn with_hash(&self, queue: &str, sub: &str, hash: u64) -> Vec<Meta> {
        let Some(s) = self.queues.get(queue).and_then(|q| q.subs.get(sub)) else {
            return Vec::new();
        };
        s.with_hash(hash).copied().collect()
    }

    /// Of `ids`, the ready messages a read could take now (unreserved, unexpired), in
    /// order from `end`, at most `max`.
    pub fn ready_among(
        &self,
        queue: &str,
        sub: &str,
        ids: &BTreeSet<u64>,
        end: End,
        max: usize,
        now: u64,
    ) -> Vec<u64> {
        let Some((s, floor)) = self.sub_view(queue, sub) else {
            return Vec::new();
        };
        s.ready_from(end)
            .filter(|m| ids.contains(&m.id) && s.is_shown(m, now, floor))
            .take(max)
            .map(|m| m.id)
            .collect()
    }

    /// Of `ids`, those the subscription holds (ready, delayed or in flight), once each.
    pub fn held_ids(&self, queue: &str, sub: &str, ids: &[u64]) -> Vec<u64> {
        let Some(s) = self.queues.get(queue).and_then(|q| q.subs.get(sub)) else {
            return Vec::new();
        };
        let mut out: Vec<u64> = Vec::new();
        for id in ids {
            if !out.contains(id) && s.holds(*id) {
                out.push(*id);
            }
        }
        out
    }

    /// Whether the receipt `(id, token)` still names a live lease of the subscription.
    pub fn live_lease(&self, queue: &str, sub: &str, id: u64, token: u64, now: u64) -> bool {
        self.queues
            .get(queue)
            .and_then(|q| q.subs.get(sub))
            .and_then(|s| s.lease_of(id))
            .is_some_and(|l| l.token == token && l.until_ms > now)
    }

    /// Notes that a message created at `created_at_ms` was consumed at `now` (the
    /// queue's `last_age_ms`; not logged, a restart starts it again at 0).
    pub fn note_consumed(&mut self, queue: &str, created_at_ms: u64, now: u64) {
        if let Some(q) = self.queues.get_mut(queue) {
            q.last_age_ms = now.saturating_sub(created_at_ms);
        }
    }

    /// When the live lease of `id` was pushed, if there is one.
    pub fn leased_created_at(&self, queue: &str, sub: &str, id: u64) -> Option<u64> {
        self.queues
            .get(queue)
            .and_then(|q| q.subs.get(sub))
            .and_then(|s| s.lease_of(id))
            .map(|l| l.meta.created_at_ms)
    }

    /// Changes a live lease's deadline (not logged: leases do not survive a restart).
    pub fn extend_lease(&mut self, queue: &str, sub: &str, id: u64, until_ms: u64) {
        if let Some(s) = self.queues.get_mut(queue).and_then(|q| q.subs.get_mut(sub)) {
            s.set_deadline(id, until_ms);
        }
    }

    /// Every in-flight lease of every queue, as `(queue, sub, id)` (to release at start).
    pub fn all_leases(&self) -> Vec<(String, String, u64)> {
        let mut out = Vec::new();
        for (qn, q) in &self.queues {
            for (sn, s) in &q.subs {
                out.extend(
                    s.leases()
                        .iter()
                        .map(|l| (qn.clone(), sn.clone(), l.meta.id)),
                );
            }
        }
        out
    }

    /// The earliest time something in the queue changes by itself (a delay ends, a
    /// lease expires, a TTL passes), for waiters to wake.
    pub fn next_wake(&self, queue: &str) -> Option<u64> {
        let q = self.queues.get(queue)?;
        q.subs.values().filter_map(|s| s.next_change()).min()
    }

    /// Names of queues with anything time-driven (the sweeper visits these).
    pub fn busy_queues(&self) -> Vec<String> {
        self.queues
            .iter()
            .filter(|(_, q)| {
                (q.settings.retention.is_log() && q.settings.retention.max_age_ms.is_some())
                    || !q.dedup_order.is_empty()
                    || q.subs.values().any(|s| s.has_timers())
            })
            .map(|(n, _)| n.clone())
            .collect()
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_queue(st: &mut State, name: &str) {
        let settings = QueueSettings {
            retention: Retention {
                mode: RetentionMode::Log,
                ..Retention::default()
            },
            ..QueueSettings::default()
        };
        st.apply(
            &Op::Settings {
                queue: name.into(),
                json: serde_json::to_string(&settings).unwrap(),
            },
            None,
        );
        st.apply(
            &Op::Cursor {
                queue: name.into(),
                sub: "c".into(),
                start: StartAt::Latest,
            },
            None,
        );
        st.apply(
            &Op::Seek {
                queue: name.into(),
                sub: "c".into(),
                id: 0,
            },
            None,
        );
    }

    #[test]
    fn cursors_travel_in_the_checkpoints_third_section_and_a_v4_one_has_none() {
        let mut st = State::default();
        log_queue(&mut st, "t");
        st.apply(
            &Op::Touch {
                queue: "t".into(),
                sub: "c".into(),
                at_ms: 77,
            },
            None,
        );
        assert!(st.is_cursor("t", "c"));

        let mut v5 = Vec::new();
        st.snapshot().write_checkpoint(&mut v5).unwrap();
        let back = State::from_checkpoint(&v5).unwrap();
        assert!(back.is_cursor("t", "c"));
        assert_eq!(back.subscriptions("t"), st.subscriptions("t"));
        let stats = &back.subscriptions("t").unwrap()[0];
        assert_eq!((stats.cursor, stats.last_active_ms), (true, Some(77)));

        // Format 4 ended after the key/value section.
        let snap = st.snapshot();
        let v4 = postcard::to_stdvec(&snap).unwrap();
        let v4 = [v4, postcard::to_stdvec(&snap.kv).unwrap()].concat();
        let old = State::from_checkpoint(&v4).unwrap();
        assert!(old.has_queue("t"));
        assert!(!old.has_sub("t", "c"));
    }
}
