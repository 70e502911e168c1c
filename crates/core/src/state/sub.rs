//! One subscription's view of a queue: ready lanes per priority, delayed messages,
//! leases, and the transient reservations of deliveries being written to a client.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::lane::Lane;
use super::live::Live;
use super::{Lease, Meta};
use crate::model::{End, SubscriptionStats, PRIORITY_LEVELS};

/// A value-index entry: the top 32 bits of a body hash (what a `Meta` keeps), then the
/// message id, as 12 bytes ordered as `(hash32, id)`. Half the hash is enough to narrow
/// the candidates (each is then compared by body), and a 12-byte key keeps the index at
/// about 29 bytes a message instead of 36.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ValueKey([u8; 12]);

impl ValueKey {
    fn new(hash: u32, id: u64) -> Self {
        let mut key = [0u8; 12];
        key[..4].copy_from_slice(&hash.to_be_bytes());
        key[4..].copy_from_slice(&id.to_be_bytes());
        ValueKey(key)
    }

    fn of(meta: &Meta) -> Self {
        Self::new(meta.hash, meta.id)
    }

    /// The first and last keys a hash's candidates can have.
    fn span(hash: u32) -> (Self, Self) {
        (Self::new(hash, 0), Self::new(hash, u64::MAX))
    }

    fn id(&self) -> u64 {
        let mut id = [0u8; 8];
        id.copy_from_slice(&self.0[4..]);
        u64::from_be_bytes(id)
    }
}

/// Identifies one [`crate::Delivery`] while its messages are reserved.
pub(crate) type DeliveryId = u64;

/// One subscription's messages.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Sub {
    lanes: [Lane; PRIORITY_LEVELS],
    /// Messages in the lanes (reserved ones included).
    ready: u64,
    /// Body bytes of every message held (ready, delayed, in flight).
    bytes: u64,
    delayed: BTreeMap<(u64, u64), Meta>,
    inflight: HashMap<u64, Lease>,
    /// `(until, id)` of every lease, for expiry.
    expiry: BTreeSet<(u64, u64)>,
    /// `(expires_at, id)` of ready messages with a TTL: the sweeper removes what is due
    /// without scanning. Derived, so rebuilt after a checkpoint is loaded.
    #[serde(skip)]
    ttl: BTreeSet<(u64, u64)>,
    /// Ready messages handed to a delivery that has not been confirmed: hidden from
    /// other readers, still in their lane and in the log's view. Never checkpointed.
    #[serde(skip)]
    reserved: HashMap<u64, (DeliveryId, u32)>,
    /// Soft gets per message, for the messages that had any (RestMQ's counter): a side
    /// map, so a `Meta` stays 48 bytes.
    soft_gets: HashMap<u64, u16>,
    /// Body bytes of the ready messages not reserved (Kestrel's `bytes`). Derived.
    #[serde(skip)]
    ready_bytes: u64,
    /// The value index: a [`ValueKey`] for every message held (ready, delayed, in
    /// flight). Derived from the `Meta`s, so rebuilt after a checkpoint is loaded.
    #[serde(skip)]
    values: BTreeSet<ValueKey>,
    /// The cursor (kept for subscriptions of log-retention queues): the id it reads
    /// from next in id order. Set by subscribe, seek and reset; raised past every
    /// message it delivers (take, lease, move) and past a trim.
    pub(crate) position: u64,
    /// When it last acted (read, ack, seek, creation), ms since the epoch; 0 for never.
    /// Kept for named subscriptions of log-retention queues.
    pub(crate) last_active_ms: u64,
}

impl Sub {
    /// A copy for a checkpoint: shares lane chunks, leaves out reservations (their
    /// messages are ready as far as the log knows) and derived indexes.
    pub(crate) fn snapshot(&self) -> Sub {
        Sub {
            lanes: self.lanes.clone(),
            ready: self.ready,
            bytes: self.bytes,
            delayed: self.delayed.clone(),
            inflight: self.inflight.clone(),
            expiry: self.expiry.clone(),
            ttl: BTreeSet::new(),
            reserved: HashMap::new(),
            soft_gets: self.soft_gets.clone(),
            ready_bytes: 0,
            values: BTreeSet::new(),
            position: self.position,
            last_active_ms: self.last_active_ms,
        }
    }

    /// Rebuilds derived indexes and the segment accounting after a checkpoint load.
    pub(crate) fn rebuild(&mut self, live: &mut Live) {
        self.ttl = self
            .lanes
            .iter()
            .flat_map(|l| l.iter())
            .filter(|m| m.expires_at_ms != 0)
            .map(|m| (m.expires_at_ms, m.id))
            .collect();
        let mut values = BTreeSet::new();
        self.for_each(|m| {
            live.add(m.loc);
            values.insert(ValueKey::of(m));
        });
        self.values = values;
        self.ready_bytes = self.ready_in_order().map(|m| u64::from(m.body_len)).sum();
    }

    fn insert_ready(&mut self, meta: Meta, at_head: bool) {
        let lane = &mut self.lanes[usize::from(meta.priority)];
        if at_head {
            lane.push_front(meta);
        } else {
            lane.push_back(meta);
        }
        if meta.expires_at_ms != 0 {
            self.ttl.insert((meta.expires_at_ms, meta.id));
        }
        self.ready += 1;
        self.ready_bytes += u64::from(meta.body_len);
    }

    fn remove_ready(&mut self, priority: u8, id: u64) -> Option<Meta> {
        let meta = self.lanes[usize::from(priority)].remove(id)?;
        self.left_ready(&meta);
        Some(meta)
    }

    fn left_ready(&mut self, meta: &Meta) {
        self.ready -= 1;
        if self.reserved.remove(&meta.id).is_none() {
            self.ready_bytes -= u64::from(meta.body_len);
        }
        if meta.expires_at_ms != 0 {
            self.ttl.remove(&(meta.expires_at_ms, meta.id));
        }
    }

    /// Adds a message: ready (at the tail or head) or delayed until `not_before_ms`.
    pub(crate) fn add(&mut self, meta: Meta, not_before_ms: u64, at_head: bool, live: &mut Live) {
        live.add(meta.loc);
        self.bytes += u64::from(meta.body_len);
        self.values.insert(ValueKey::of(&meta));
        if not_before_ms > meta.created_at_ms {
            self.delayed.insert((not_before_ms, meta.id), meta);
        } else {
            self.insert_ready(meta, at_head);
        }
    }

    /// Removes a message wherever it is (lease, ready lane, delayed).
    pub(crate) fn take_out(&mut self, id: u64, live: &mut Live) -> Option<Meta> {
        let meta = self.detach(id)?;
        self.bytes -= u64::from(meta.body_len);
        self.values.remove(&ValueKey::of(&meta));
        self.soft_gets.remove(&id);
        live.remove(meta.loc);
        Some(meta)
    }

    /// Takes a message out of its place without forgetting it (leases move it).
    fn detach(&mut self, id: u64) -> Option<Meta> {
        if let Some(lease) = self.inflight.remove(&id) {
            self.expiry.remove(&(lease.until_ms, id));
            return Some(lease.meta);
        }
        for p in (0..PRIORITY_LEVELS).rev() {
            if self.lanes[p].front().is_some_and(|m| m.id == id) {
                let meta = self.lanes[p].pop_front()?;
                self.left_ready(&meta);
                return Some(meta);
            }
        }
        for p in (0..PRIORITY_LEVELS).rev() {
            if let Some(meta) = self.remove_ready(p as u8, id) {
                return Some(meta);
            }
        }
        let key = self.delayed.keys().find(|(_, mid)| *mid == id).copied()?;
        self.delayed.remove(&key)
    }

    /// Empties the subscription; returns how many messages it held.
    pub(crate) fn clear(&mut self, live: &mut Live) -> u64 {
        let n = self.len();
        self.for_each(|m| live.remove(m.loc));
        *self = Sub::default();
        n
    }

    /// Leases a message (wherever it is ready) until `until_ms` with `token`; raises its
    /// delivery count. Returns whether it was there.
    pub(crate) fn lease(&mut self, id: u64, until_ms: u64, token: u64) -> bool {
        let Some(mut meta) = self.detach(id) else {
            return false;
        };
        meta.deliveries = meta.deliveries.saturating_add(1);
        self.inflight.insert(
            id,
            Lease {
                meta,
                token,
                until_ms,
            },
        );
        self.expiry.insert((until_ms, id));
        true
    }

    /// Returns a leased message to the head of its lane.
    pub(crate) fn release(&mut self, id: u64) -> bool {
        let Some(lease) = self.inflight.remove(&id) else {
            return false;
        };
        self.expiry.remove(&(lease.until_ms, id));
        self.insert_ready(lease.meta, true);
        true
    }

    /// Moves the given delayed messages to the tail of their lane, in order.
    pub(crate) fn promote(&mut self, ids: &[u64]) {
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

    /// Drops ready messages with ids below `below` from the lane heads (log trim).
    pub(crate) fn trim_below(&mut self, below: u64, live: &mut Live) {
        for p in 0..PRIORITY_LEVELS {
            while self.lanes[p].front().is_some_and(|m| m.id < below) {
                if let Some(m) = self.lanes[p].pop_front() {
                    self.left_ready(&m);
                    self.bytes -= u64::from(m.body_len);
                    self.values.remove(&ValueKey::of(&m));
                    self.soft_gets.remove(&m.id);
                    live.remove(m.loc);
                }
            }
        }
    }

    /// Messages held: ready, delayed and in flight.
    pub(crate) fn len(&self) -> u64 {
        self.ready + self.delayed.len() as u64 + self.inflight.len() as u64
    }

    /// Body bytes held.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Ready messages in delivery order: highest priority first, lane order within.
    /// Reserved ones included; see [`Sub::is_reserved`].
    pub(crate) fn ready_in_order(&self) -> impl DoubleEndedIterator<Item = &Meta> {
        self.lanes.iter().rev().flat_map(|lane| lane.iter())
    }

    /// Ready messages from `end`: delivery order from the head, its reverse from the
    /// tail. Reserved ones included.
    pub(crate) fn ready_from(&self, end: End) -> Box<dyn Iterator<Item = &Meta> + '_> {
        match end {
            End::Head => Box::new(self.ready_in_order()),
            End::Tail => Box::new(self.ready_in_order().rev()),
        }
    }

    /// Ready messages not reserved by a delivery (the length positions count in).
    pub(crate) fn visible(&self) -> u64 {
        self.ready - self.reserved.len() as u64
    }

    /// The messages held whose body hash is `hash`, in id order (candidates: their
    /// bodies may still differ).
    pub(crate) fn with_hash(&self, hash: u64) -> impl Iterator<Item = &Meta> + '_ {
        let (first, last) = ValueKey::span(super::hash32(hash));
        self.values
            .range(first..=last)
            .filter_map(|key| self.find(key.id()))
    }

    /// The message `id` held here, wherever it is.
    pub(crate) fn find(&self, id: u64) -> Option<&Meta> {
        if let Some(lease) = self.inflight.get(&id) {
            return Some(&lease.meta);
        }
        self.lanes
            .iter()
            .find_map(|l| l.get(id))
            .or_else(|| self.delayed.values().find(|m| m.id == id))
    }

    /// Whether the subscription holds message `id` (ready, delayed or in flight).
    pub(crate) fn holds(&self, id: u64) -> bool {
        self.find(id).is_some()
    }

    /// Raises a ready message's soft-get counter.
    pub(crate) fn count_soft_get(&mut self, id: u64) {
        if self.lanes.iter().any(|l| l.get(id).is_some()) {
            let n = self.soft_gets.entry(id).or_default();
            *n = n.saturating_add(1);
        }
    }

    /// How many soft gets have returned message `id`.
    pub(crate) fn soft_gets_of(&self, id: u64) -> u16 {
        self.soft_gets.get(&id).copied().unwrap_or(0)
    }

    /// Whether a ready message is one a read may be shown: not reserved, not expired at
    /// `now`, not below the queue's log floor.
    pub(crate) fn is_shown(&self, m: &Meta, now: u64, floor: u64) -> bool {
        !m.expired(now) && m.id >= floor && !self.is_reserved(m.id)
    }

    /// Whether a ready message is reserved by an unconfirmed delivery.
    pub(crate) fn is_reserved(&self, id: u64) -> bool {
        self.reserved.contains_key(&id)
    }

    /// Reserves ready messages for `delivery`.
    pub(crate) fn reserve(&mut self, metas: &[Meta], delivery: DeliveryId) {
        for m in metas {
            if self.reserved.insert(m.id, (delivery, m.body_len)).is_none() {
                self.ready_bytes -= u64::from(m.body_len);
            }
        }
    }

    /// Of `ids`, those still reserved by `delivery`, in order.
    pub(crate) fn reserved_by(&self, ids: &[u64], delivery: DeliveryId) -> Vec<u64> {
        ids.iter()
            .copied()
            .filter(|id| self.reserved.get(id).is_some_and(|(d, _)| *d == delivery))
            .collect()
    }

    /// Ends `delivery`'s reservations: its messages are visible again where they were.
    pub(crate) fn unreserve(&mut self, ids: &[u64], delivery: DeliveryId) -> usize {
        let mut n = 0;
        for id in ids {
            if let Some(&(d, len)) = self.reserved.get(id) {
                if d != delivery {
                    continue;
                }
                self.reserved.remove(id);
                self.ready_bytes += u64::from(len);
                n += 1;
            }
        }
        n
    }

    /// Ids of ready, unreserved messages whose TTL passed at `now`.
    pub(crate) fn expired_ready(&self, now: u64) -> Vec<u64> {
        self.ttl
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, id)| *id)
            .filter(|id| !self.reserved.contains_key(id))
            .collect()
    }

    /// Ids of delayed messages due at `now`, in (due, id) order.
    pub(crate) fn due(&self, now: u64) -> Vec<u64> {
        self.delayed
            .keys()
            .take_while(|(due, _)| *due <= now)
            .map(|(_, id)| *id)
            .collect()
    }

    /// The lease of `id`, if in flight.
    pub(crate) fn lease_of(&self, id: u64) -> Option<&Lease> {
        self.inflight.get(&id)
    }

    /// Moves a lease's deadline.
    pub(crate) fn set_deadline(&mut self, id: u64, until_ms: u64) {
        if let Some(lease) = self.inflight.get_mut(&id) {
            self.expiry.remove(&(lease.until_ms, id));
            lease.until_ms = until_ms;
            self.expiry.insert((until_ms, id));
        }
    }

    /// `(until, id)` of leases in deadline order.
    pub(crate) fn deadlines(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.expiry.iter().copied()
    }

    /// Leases in deadline order.
    pub(crate) fn leases(&self) -> Vec<&Lease> {
        let mut leases: Vec<&Lease> = self.inflight.values().collect();
        leases.sort_by_key(|l| (l.until_ms, l.meta.id));
        leases
    }

    /// The earliest time something here changes by itself: a delay ends, a lease
    /// expires, a TTL passes.
    pub(crate) fn next_change(&self) -> Option<u64> {
        let delay = self.delayed.keys().next().map(|(due, _)| *due);
        let lease = self.expiry.iter().next().map(|(until, _)| *until);
        let ttl = self.ttl.iter().next().map(|(at, _)| *at);
        [delay, lease, ttl].into_iter().flatten().min()
    }

    /// Whether the sweeper has anything to watch here.
    pub(crate) fn has_timers(&self) -> bool {
        !self.expiry.is_empty() || !self.delayed.is_empty() || !self.ttl.is_empty()
    }

    /// Every message held, with its not-before time (0 when ready), for seeding other
    /// subscriptions.
    pub(crate) fn all_messages(&self) -> impl Iterator<Item = (Meta, u64)> + '_ {
        self.ready_in_order()
            .map(|m| (*m, 0))
            .chain(self.delayed.iter().map(|(&(due, _), m)| (*m, due)))
            .chain(self.inflight.values().map(|l| (l.meta, 0)))
    }

    /// Calls `f` with every message held.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Meta)) {
        self.lanes.iter().flat_map(|l| l.iter()).for_each(&mut f);
        self.delayed.values().for_each(&mut f);
        self.inflight.values().for_each(|l| f(&l.meta));
    }

    /// Calls `f` with every message held, mutably (compaction rewrites locations).
    pub(crate) fn for_each_mut(&mut self, mut f: impl FnMut(&mut Meta)) {
        self.lanes.iter_mut().for_each(|l| l.for_each_mut(&mut f));
        self.delayed.values_mut().for_each(&mut f);
        self.inflight.values_mut().for_each(|l| f(&mut l.meta));
    }

    /// Body bytes of the ready messages a read could get (not reserved).
    pub(crate) fn ready_bytes(&self) -> u64 {
        self.ready_bytes
    }

    /// Counters for the API (reserved messages count as in flight).
    pub(crate) fn stats(&self, name: Option<String>) -> SubscriptionStats {
        let reserved = self.reserved.len() as u64;
        SubscriptionStats {
            name,
            ready: self.ready - reserved,
            in_flight: self.inflight.len() as u64 + reserved,
            delayed: self.delayed.len() as u64,
            position: None,
            last_active_ms: None,
            cursor: false,
        }
    }

    /// Raises the cursor past message `id` (it was delivered).
    pub(crate) fn passed(&mut self, id: u64) {
        self.position = self.position.max(id.saturating_add(1));
    }
}
