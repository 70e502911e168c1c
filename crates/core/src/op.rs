//! The log's vocabulary: every durable change to the broker is an [`Op`], and a list of
//! ops handed to [`crate::Storage::append`] is one atomic group.
//!
//! The planners decide ops, the store persists them, and `State::apply` is the only code
//! that gives them meaning, live and on replay. Changing an op's encoding changes the
//! on-disk format: the store's fixture tests exist to make that a conscious act.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::model::{QueueSettings, StartAt};

/// Where a message record lives in the store: opaque to the core except as a key.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct Location {
    /// Segment (file) number.
    pub segment: u32,
    /// Byte offset of the record in its segment.
    pub offset: u32,
    /// Length of the whole record in bytes.
    pub len: u32,
}

/// A message as stored: everything a push decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushRecord {
    /// Queue name.
    pub queue: String,
    /// Id within the queue.
    pub id: u64,
    /// Push time, ms since the epoch.
    pub created_at_ms: u64,
    /// 0..=9.
    pub priority: u8,
    /// Not delivered before this time (ms); equal to `created_at_ms` when not delayed.
    pub not_before_ms: u64,
    /// Never delivered from this time on (ms); 0 means never expires.
    pub expires_at_ms: u64,
    /// Optional dedup id.
    pub dedup_id: Option<String>,
    /// Headers.
    pub headers: BTreeMap<String, String>,
    /// The body.
    pub body: Bytes,
    /// Goes to the head of the ready order instead of the tail.
    pub at_head: bool,
    /// The body's [`body_hash`], when the pusher computed it before taking the lock.
    /// Not stored: replay computes it from the body.
    #[serde(skip)]
    pub body_hash: Option<u64>,
}

/// The hash the value index keys bodies by: XXH3-64, a stable function (it is kept in
/// checkpoints). Equal hashes are only candidates: the bodies are compared before any
/// answer depends on them.
pub fn body_hash(body: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(body)
}

/// Why a message left a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RemoveReason {
    /// Delivered and removed at once.
    Taken,
    /// A lease was acked.
    Acked,
    /// Its TTL passed.
    Expired,
    /// Dropped to make room in a full queue.
    Overflow,
    /// Deleted by id (RestMQ JSON `del`, the native API's delete).
    Deleted,
}

/// One durable change. A list of ops handed to [`Storage::append`](crate::Storage::append) is atomic: after a
/// crash either all of it is replayed or none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// A new message (creates the queue if needed).
    Push(PushRecord),
    /// Messages leave one subscription.
    Remove {
        /// Queue name.
        queue: String,
        /// Subscription name ("" is the default one).
        sub: String,
        /// Message ids.
        ids: Vec<u64>,
        /// Why.
        reason: RemoveReason,
    },
    /// Delayed messages whose time came join the tail of their subscription's ready
    /// order, in the given order.
    Promote {
        /// Queue name.
        queue: String,
        /// Subscription name.
        sub: String,
        /// Message ids.
        ids: Vec<u64>,
    },
    /// Messages are leased: delivery count raised, hidden until `until_ms`.
    Lease {
        /// Queue name.
        queue: String,
        /// Subscription name.
        sub: String,
        /// Message ids.
        ids: Vec<u64>,
        /// Lease deadline, ms.
        until_ms: u64,
        /// Lease token of the first id; the next ids get consecutive tokens.
        first_token: u64,
    },
    /// Leased messages return to the head of the ready order (nack, timeout, session end).
    Release {
        /// Queue name.
        queue: String,
        /// Subscription name.
        sub: String,
        /// Message ids, the first ends up first.
        ids: Vec<u64>,
    },
    /// A message moves from one queue's subscription to another queue as a new message
    /// that shares the stored record (dead letters; later `LMOVE`).
    Move {
        /// Source queue.
        queue: String,
        /// Source subscription.
        sub: String,
        /// Source id.
        id: u64,
        /// Destination queue.
        to: String,
        /// Id in the destination queue.
        new_id: u64,
        /// True when this is a dead-lettering.
        dead_letter: bool,
    },
    /// New settings for a queue (creates it if needed), in the layout of the first
    /// release: written by older builds, read but no longer written (see
    /// [`Op::Settings`]).
    Configure {
        /// Queue name.
        queue: String,
        /// The whole new settings.
        settings: SettingsV1,
    },
    /// Every message of every subscription and the log is dropped; ids keep rising.
    Purge {
        /// Queue name.
        queue: String,
    },
    /// The queue is deleted with its subscriptions; its id counter is remembered.
    DropQueue {
        /// Queue name.
        queue: String,
    },
    /// A named subscription is created.
    Subscribe {
        /// Queue name.
        queue: String,
        /// Subscription name.
        sub: String,
        /// Where it starts.
        start: StartAt,
    },
    /// A subscription's position moves: it will deliver retained messages from `id` on.
    Seek {
        /// Queue name.
        queue: String,
        /// Subscription name.
        sub: String,
        /// First id to deliver.
        id: u64,
    },
    /// A named subscription is deleted.
    Unsubscribe {
        /// Queue name.
        queue: String,
        /// Subscription name.
        sub: String,
    },
    /// Log retention: messages with ids below `below` leave the queue's log.
    Trim {
        /// Queue name.
        queue: String,
        /// First id kept.
        below: u64,
    },
    /// A live record copied forward by compaction; its new location replaces `from`.
    Relocate {
        /// The old location.
        from: Location,
        /// The record, unchanged.
        push: PushRecord,
    },
    /// A message moves from one queue's subscription to either end of another queue
    /// (or the same one) as a new message sharing the stored record (Redis `LMOVE`).
    MoveTo {
        /// Source queue.
        queue: String,
        /// Source subscription.
        sub: String,
        /// Source id.
        id: u64,
        /// Destination queue.
        to: String,
        /// Id in the destination queue.
        new_id: u64,
        /// Joins the destination's head instead of its tail.
        at_head: bool,
    },
    /// A soft get returned a ready message: its soft-get counter goes up by one.
    SoftGet {
        /// Queue name.
        queue: String,
        /// Subscription name.
        sub: String,
        /// Message id.
        id: u64,
    },
    /// A queue is created, with its metadata (logged before the first op that would
    /// create it, so a restarted broker knows when and in which order queues came).
    Create {
        /// Queue name.
        queue: String,
        /// Creation time, ms since the epoch.
        created_at_ms: u64,
        /// Free text, if given.
        description: Option<String>,
        /// No default subscription: a message is kept only for the subscriptions that
        /// exist when it is pushed.
        fanout_only: bool,
    },
    /// A queue's description changes.
    Describe {
        /// Queue name.
        queue: String,
        /// The new description (`None` clears it).
        description: Option<String>,
    },
    /// New settings for a queue (creates it if needed). They travel as JSON, so that a
    /// setting added later is simply absent from older records and takes its default.
    Settings {
        /// Queue name.
        queue: String,
        /// The whole new [`QueueSettings`], as JSON.
        json: String,
    },
    /// A key gets a whole new value (every key/value write: set, counters, appends).
    KvSet {
        /// The key.
        key: String,
        /// Its value.
        value: Bytes,
        /// The client's opaque flags.
        flags: u32,
        /// Its new version (unique across keys, rising).
        version: u64,
        /// When it expires, ms since the epoch; 0 never.
        expires_at_ms: u64,
    },
    /// A key's expiry changes; its value and version do not.
    KvExpire {
        /// The key.
        key: String,
        /// When it expires, ms since the epoch; 0 never.
        expires_at_ms: u64,
    },
    /// Keys are deleted.
    KvDelete {
        /// The keys.
        keys: Vec<String>,
    },
    /// Every key is deleted.
    KvFlush,
    /// A named subscription of a log-retention queue acted (a read, an ack, a seek, its
    /// creation): its last-action time becomes `at_ms`. Logged in the same group as the
    /// action, so the time survives a restart.
    Touch {
        /// Queue name.
        queue: String,
        /// Subscription name.
        sub: String,
        /// The action's time, ms since the epoch.
        at_ms: u64,
    },
    /// Every subscription of a log-retention queue (the default one included) is moved
    /// as by [`Op::Seek`] to `id`: it delivers the retained messages from `id` on
    /// (queue-sample's `topic_reset`). Last-action times are left as they are.
    Reset {
        /// Queue name.
        queue: String,
        /// First id to deliver (0: the oldest retained message).
        id: u64,
    },
    /// A named subscription of a log-retention queue is created as a bare cursor: a
    /// position into the retained log and nothing else (queue-sample's subscribers).
    /// Reads from it are reads of the log; [`Op::Seek`] moves it in O(1).
    Cursor {
        /// Queue name.
        queue: String,
        /// Subscription name.
        sub: String,
        /// Where it starts.
        start: StartAt,
    },
}

/// The settings of [`Op::Configure`], frozen as the first release wrote them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsV1 {
    /// See [`QueueSettings::max_deliveries`].
    pub max_deliveries: Option<u32>,
    /// See [`QueueSettings::dead_letter_queue`].
    pub dead_letter_queue: Option<String>,
    /// See [`QueueSettings::dedup_window_ms`].
    pub dedup_window_ms: u64,
    /// See [`QueueSettings::retention`].
    pub retention: crate::model::Retention,
    /// See [`QueueSettings::max_length`].
    pub max_length: Option<u64>,
    /// See [`QueueSettings::max_bytes`].
    pub max_bytes: Option<u64>,
    /// See [`QueueSettings::overflow`].
    pub overflow: crate::model::Overflow,
    /// See [`QueueSettings::paused`].
    pub paused: bool,
}

impl From<SettingsV1> for QueueSettings {
    fn from(s: SettingsV1) -> Self {
        QueueSettings {
            max_deliveries: s.max_deliveries,
            dead_letter_queue: s.dead_letter_queue,
            dedup_window_ms: s.dedup_window_ms,
            retention: s.retention,
            max_length: s.max_length,
            max_bytes: s.max_bytes,
            overflow: s.overflow,
            paused: s.paused,
            ..QueueSettings::default()
        }
    }
}

impl Op {
    /// The op that gives `queue` these settings.
    pub fn settings(queue: &str, settings: &QueueSettings) -> Op {
        Op::Settings {
            queue: queue.to_string(),
            // Plain data with string keys: serializing it cannot fail.
            json: serde_json::to_string(settings).unwrap_or_default(),
        }
    }
}
