//! A queue's bookkeeping: settings, id counter, subscriptions, the retained log, dedup
//! ids and counters.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::lane::Lane;
use super::live::Live;
use super::sub::Sub;
use super::{Meta, DEFAULT_SUB};
use crate::model::{QueueSettings, StartAt};

/// Counters kept as things happen.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Counters {
    pub(crate) pushed: u64,
    pub(crate) delivered: u64,
    pub(crate) consumed: u64,
    pub(crate) expired: u64,
    pub(crate) dead_lettered: u64,
    /// Dropped to make room (overflow).
    pub(crate) discarded: u64,
    /// Deleted by id.
    pub(crate) deleted: u64,
}

/// A bare cursor subscription of a log-retention queue: where it reads from next and
/// when it last acted. It holds no messages, so a push costs it nothing and a seek is
/// one assignment; reads of it are reads of the queue's log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Cursor {
    /// The id it reads from next (a read starts at the oldest retained message when
    /// this one was trimmed).
    pub(crate) position: u64,
    /// When it last acted (seek, creation), ms since the epoch.
    pub(crate) last_active_ms: u64,
}

/// A queue: settings, id counter, subscriptions and (for log retention) the log.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Queue {
    pub(crate) settings: QueueSettings,
    pub(crate) next_id: u64,
    pub(crate) subs: BTreeMap<String, Sub>,
    /// Log retention: every retained message in id order, consumed or not.
    pub(crate) log: Lane,
    /// Body bytes in `log`.
    pub(crate) log_bytes: u64,
    /// Ids below this were trimmed from the log or purged.
    pub(crate) log_floor: u64,
    /// Dedup id → (message id, remembered until).
    pub(crate) dedup: HashMap<String, (u64, u64)>,
    pub(crate) dedup_order: VecDeque<(u64, String)>,
    /// Dedup ids held until their message is consumed (`dedup_until_consumed`): key →
    /// message id, and back.
    pub(crate) held_dedup: HashMap<String, u64>,
    pub(crate) dedup_key_of: HashMap<u64, String>,
    pub(crate) counters: Counters,
    /// How long the last consumed message had been queued (ms); not checkpointed.
    #[serde(skip)]
    pub(crate) last_age_ms: u64,
    /// When the queue was created (ms since the epoch; 0 for a queue created by a log
    /// written before creations were logged).
    pub(crate) created_at_ms: u64,
    /// Its creation number: queues are numbered 1, 2, 3… as they are created.
    pub(crate) seq: u64,
    /// Free text.
    pub(crate) description: Option<String>,
    /// No default subscription.
    pub(crate) fanout_only: bool,
    /// While the queue keeps a log: every message with this id or a later one is in
    /// `log` (or was trimmed). Messages pushed before the queue turned to log retention
    /// (ids below) may be held by subscriptions without being in the log.
    pub(crate) log_since: u64,
    /// Bare cursor subscriptions by name (never the default one; a name is a cursor or
    /// a subscription, not both). Encoded in their own checkpoint section (see
    /// [`super::State::from_checkpoint`]).
    #[serde(skip)]
    pub(crate) cursors: BTreeMap<String, Cursor>,
}

impl Queue {
    pub(crate) fn new(next_id: u64, seq: u64) -> Self {
        let mut subs = BTreeMap::new();
        subs.insert(DEFAULT_SUB.to_string(), Sub::default());
        Queue {
            next_id,
            subs,
            seq,
            ..Queue::default()
        }
    }

    /// A copy for a checkpoint (see [`Sub::snapshot`]).
    pub(crate) fn snapshot(&self) -> Queue {
        Queue {
            settings: self.settings.clone(),
            next_id: self.next_id,
            subs: self
                .subs
                .iter()
                .map(|(n, s)| (n.clone(), s.snapshot()))
                .collect(),
            log: self.log.clone(),
            log_bytes: self.log_bytes,
            log_floor: self.log_floor,
            dedup: self.dedup.clone(),
            dedup_order: self.dedup_order.clone(),
            held_dedup: self.held_dedup.clone(),
            dedup_key_of: self.dedup_key_of.clone(),
            counters: self.counters.clone(),
            last_age_ms: 0,
            created_at_ms: self.created_at_ms,
            seq: self.seq,
            description: self.description.clone(),
            fanout_only: self.fanout_only,
            log_since: self.log_since,
            cursors: self.cursors.clone(),
        }
    }

    /// Rebuilds derived indexes and segment accounting after a checkpoint load.
    pub(crate) fn rebuild(&mut self, live: &mut Live) {
        self.log.iter().for_each(|m| live.add(m.loc));
        self.subs.values_mut().for_each(|s| s.rebuild(live));
    }

    /// The default subscription: every queue has it, except a fan-out-only one.
    pub(crate) fn default_sub(&self) -> Option<&Sub> {
        self.subs.get(DEFAULT_SUB)
    }

    pub(crate) fn is_log(&self) -> bool {
        self.settings.retention.is_log()
    }

    pub(crate) fn dead_letter_queue(&self, name: &str) -> String {
        self.settings
            .dead_letter_queue
            .clone()
            .unwrap_or_else(|| format!("{name}.dlq"))
    }

    /// Adds a message to the log (log retention) and every subscription.
    pub(crate) fn add(&mut self, meta: Meta, not_before_ms: u64, at_head: bool, live: &mut Live) {
        if self.is_log() {
            self.log.push_back(meta);
            self.log_bytes += u64::from(meta.body_len);
            live.add(meta.loc);
        }
        for sub in self.subs.values_mut() {
            sub.add(meta, not_before_ms, at_head, live);
        }
        self.counters.pushed += 1;
        self.next_id = self.next_id.max(meta.id.saturating_add(1));
    }

    /// Takes new settings (leaving log retention empties the log).
    pub(crate) fn configure(&mut self, settings: QueueSettings, live: &mut Live) {
        if !settings.retention.is_log() {
            self.clear_log(live);
        } else if !self.is_log() {
            self.log_since = self.next_id;
        }
        self.settings = settings;
    }

    /// Forgets the held dedup ids of those of `ids` no subscription holds any more.
    pub(crate) fn release_dedup(&mut self, ids: &[u64]) {
        if self.dedup_key_of.is_empty() {
            return;
        }
        for id in ids {
            if !self.dedup_key_of.contains_key(id) || self.subs.values().any(|s| s.holds(*id)) {
                continue;
            }
            if let Some(key) = self.dedup_key_of.remove(id) {
                self.held_dedup.remove(&key);
            }
        }
    }

    /// [`Queue::release_dedup`] of every message with a held dedup id (after a
    /// subscription went or moved).
    pub(crate) fn release_all_dedup(&mut self) {
        let ids: Vec<u64> = self.dedup_key_of.keys().copied().collect();
        self.release_dedup(&ids);
    }

    /// Empties the retained log.
    pub(crate) fn clear_log(&mut self, live: &mut Live) {
        self.log.drain().for_each(|m| live.remove(m.loc));
        self.log_bytes = 0;
    }

    /// Retained messages from `from_id` on, in id order, for a subscription being seeded,
    /// with their not-before times. On a log queue they are the log's from `from_id` on,
    /// found by binary search; only ids below `log_since` (pushed before the queue kept
    /// a log) are looked for in the other subscriptions. Elsewhere, the union of what
    /// every subscription holds.
    fn retained_from(&self, from_id: u64) -> Vec<(Meta, u64)> {
        let from_id = from_id.max(self.log_floor);
        if self.is_log() && from_id >= self.log_since {
            return self.log.iter_from_id(from_id).map(|m| (*m, 0)).collect();
        }
        let mut by_id: BTreeMap<u64, (Meta, u64)> = BTreeMap::new();
        if self.is_log() {
            for m in self.log.iter_from_id(from_id) {
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

    /// The lowest id a subscription may read from: the oldest retained log message,
    /// or the next id when the log is empty.
    fn first_retained(&self) -> u64 {
        self.log
            .front()
            .map_or(self.next_id, |m| m.id)
            .max(self.log_floor)
            .min(self.next_id)
    }

    /// The position a subscription starting at `start` gets: the next id for the
    /// latest, else the id clamped to the retained ones (a start past the end is the
    /// end, so every later push is seen).
    fn position_of(&self, start: StartAt) -> u64 {
        let from = match start {
            StartAt::Latest => self.next_id,
            StartAt::Earliest => 0,
            StartAt::Id(id) => id,
        };
        from.max(self.first_retained()).min(self.next_id)
    }

    /// The position a bare cursor set to `start` keeps: the next id for the latest,
    /// else the id raised to the retained ones but not lowered to the end. A cursor
    /// holds no messages, so a position past the end is kept as set: nothing is read
    /// from it until the log grows past it (queue-sample's "ack sets the cursor
    /// anywhere").
    fn cursor_at(&self, start: StartAt) -> u64 {
        match start {
            StartAt::Latest => self.next_id,
            StartAt::Earliest => self.first_retained(),
            StartAt::Id(id) => id.max(self.first_retained()),
        }
    }

    /// Creates cursor `name` at `start` (its last action is set by the `Touch` logged
    /// with it).
    pub(crate) fn add_cursor(&mut self, name: &str, start: StartAt) {
        let position = self.cursor_at(start);
        self.cursors.insert(
            name.to_string(),
            Cursor {
                position,
                last_active_ms: 0,
            },
        );
    }

    /// Moves cursor `name` to `id`, as a seek does: a map lookup and an assignment,
    /// whatever the backlog. False if there is no such cursor.
    pub(crate) fn seek_cursor(&mut self, name: &str, id: u64) -> bool {
        let position = self.cursor_at(StartAt::Id(id));
        match self.cursors.get_mut(name) {
            Some(c) => {
                c.position = position;
                true
            }
            None => false,
        }
    }

    /// Where cursor `c` reads from now: its position, raised past what was trimmed.
    pub(crate) fn cursor_position(&self, c: &Cursor) -> u64 {
        self.cursor_at(StartAt::Id(c.position))
    }

    /// Retained messages a cursor at `position` has still to read.
    pub(crate) fn cursor_backlog(&self, position: u64) -> u64 {
        if !self.is_log() {
            return 0;
        }
        self.log.count_from_id(position) as u64
    }

    /// (Re)starts subscription `sub` at `start`, with the retained messages from there.
    /// A start past the end is the end: every later push is delivered. The
    /// subscription's last-action time is kept.
    pub(crate) fn seed(&mut self, sub: &str, start: StartAt, live: &mut Live) {
        let from = match start {
            StartAt::Latest => None,
            StartAt::Earliest => Some(0),
            StartAt::Id(id) => Some(id),
        };
        let messages = from.map(|id| self.retained_from(id)).unwrap_or_default();
        let position = self.position_of(start);
        let s = self.subs.entry(sub.to_string()).or_default();
        let last_active_ms = s.last_active_ms;
        s.clear(live);
        s.last_active_ms = last_active_ms;
        s.position = position;
        for (mut meta, due) in messages {
            meta.deliveries = 0;
            s.add(meta, due, false, live);
        }
    }

    /// Moves every subscription (the default one included) as a seek to `id` would.
    pub(crate) fn reset(&mut self, id: u64, live: &mut Live) {
        let names: Vec<String> = self.subs.keys().cloned().collect();
        for name in names {
            self.seed(&name, StartAt::Id(id), live);
        }
        let position = self.cursor_at(StartAt::Id(id));
        self.cursors
            .values_mut()
            .for_each(|c| c.position = position);
        self.release_all_dedup();
    }

    /// Releases everything the queue holds from the segment accounting.
    pub(crate) fn release_all(&mut self, live: &mut Live) {
        for s in self.subs.values_mut() {
            s.clear(live);
        }
        self.clear_log(live);
    }
}
