//! The data that crosses the core's public boundary: what a face pushes, what it gets
//! back, settings and stats.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The longest duration any client may ask for, in milliseconds (100 years): delays,
/// TTLs, visibility timeouts, dedup windows and log retention ages above it are refused,
/// so no time sum can overflow.
pub const MAX_DURATION_MS: u64 = 100 * 365 * 24 * 3600 * 1000;
/// Longest dedup id, in bytes.
pub const MAX_DEDUP_ID_BYTES: usize = 255;

/// Priority given to messages that do not ask for one.
pub const DEFAULT_PRIORITY: u8 = 4;
/// Highest priority; priorities run 0..=9 and higher is delivered first.
pub const MAX_PRIORITY: u8 = 9;
/// Number of priority levels.
pub const PRIORITY_LEVELS: usize = MAX_PRIORITY as usize + 1;

/// Identifies a client connection that can own leases (Kestrel `/open`, Redis `BLMOVE`):
/// when the session ends its leases return to the head of their queue at once.
pub type SessionId = u64;

/// A message as a face hands it to the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// The body, verbatim.
    pub body: Bytes,
    /// 0..=9, higher first.
    pub priority: u8,
    /// Not delivered before this much time has passed.
    pub delay: Option<Duration>,
    /// Never delivered once this much time has passed since the push.
    pub ttl: Option<Duration>,
    /// A second push with the same id within the queue's dedup window is not added.
    pub dedup_id: Option<String>,
    /// Free-form string headers.
    pub headers: BTreeMap<String, String>,
    /// Insert at the head of the queue instead of the tail (Redis `LPUSH` on a queue read
    /// with `RPOP`, Kestrel abort).
    pub at_head: bool,
    /// Not added when the queue's default subscription still holds a message with an
    /// equal body (ready, delayed or in flight): the outcome is then a duplicate naming
    /// that message (MessageQueue `SADD`, memcached `add`).
    pub unique: bool,
}

impl NewMessage {
    /// A plain message with default priority and no options.
    pub fn new(body: impl Into<Bytes>) -> Self {
        Self {
            body: body.into(),
            priority: DEFAULT_PRIORITY,
            delay: None,
            ttl: None,
            dedup_id: None,
            headers: BTreeMap::new(),
            at_head: false,
            unique: false,
        }
    }
}

/// An end of a queue's delivery order. The head is what a take gets next: the highest
/// priority's oldest ready message (or the one pushed to the head last). The tail is
/// the other end: the lowest priority's newest. Delayed messages have no end until
/// they are due; then they join the tail of their priority.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum End {
    /// Where takes come from by default, and `at_head` pushes go.
    #[default]
    Head,
    /// Where pushes go by default.
    Tail,
}

/// How durable a write must be before it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// On disk: wait for an fsync that covers the write (the group commit), whatever
    /// the server's fsync policy.
    Fsync,
    /// In the log file (the operating system's page cache): survives the process
    /// being killed, not the machine losing power.
    Written,
}

/// Per-request options of a push.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushOptions {
    /// The durability to wait for; `None` is the server's fsync policy (`Fsync` under
    /// `--fsync always`, `Written` otherwise).
    pub durability: Option<Durability>,
    /// Refuse the push with `NotFound` unless the queue exists (instead of creating it).
    pub must_exist: bool,
    /// How long a push to a full [`Overflow::Block`] queue waits for room; `None` is the
    /// server's `max_wait` (and more than it is cut to it).
    pub wait: Option<std::time::Duration>,
}

/// The longest queue description, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 4096;

/// How [`crate::Broker::create`] makes a queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateOptions {
    /// Free text (at most [`MAX_DESCRIPTION_BYTES`]).
    pub description: Option<String>,
    /// No default subscription: a message is kept only for the subscriptions that exist
    /// when it is pushed, until each has consumed it (httpmq's reference counting);
    /// one pushed when there are none is kept nowhere.
    pub fanout_only: bool,
}

/// What a push reports: each message's outcome, the queue's new length and how
/// durable the messages were when the reply was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushReply {
    /// One per message, in order.
    pub outcomes: Vec<PushOutcome>,
    /// Messages the queue's default subscription holds right after the push (ready,
    /// delayed and in flight): Redis `LPUSH`'s reply.
    pub length: u64,
    /// True when an fsync covering the push completed before the reply.
    pub durable: bool,
}

/// The result of pushing one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PushOutcome {
    /// The message's id in its queue (the original's id for a duplicate).
    pub id: u64,
    /// True when the message was not added: its dedup id matched a message pushed
    /// within the window, or (a unique push) its body equals one still queued.
    pub duplicate: bool,
}

/// A message as the core delivers or shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Id within its queue: 1, 2, 3… never reused.
    pub id: u64,
    /// The body, verbatim.
    pub body: Bytes,
    /// 0..=9.
    pub priority: u8,
    /// Push time, milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// How many times this message has been leased (taken messages count one).
    pub deliveries: u32,
    /// How many soft gets ([`crate::Broker::soft_get`]) have returned it, durably
    /// counted (RestMQ's per-message counter).
    pub soft_gets: u32,
    /// Headers given at push.
    pub headers: BTreeMap<String, String>,
    /// The receipt that acks or nacks this lease; `None` for take and peek.
    pub receipt: Option<Receipt>,
}

/// Names one lease: what ack, nack and extend take. Its text form
/// (`<token hex>.<id>.<subscription>`) is what faces hand to clients; a receipt from
/// before a restart, or for a lease that expired, names nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Receipt {
    pub(crate) token: u64,
    pub(crate) id: u64,
    pub(crate) sub: String,
}

impl Receipt {
    /// The leased message's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The subscription the lease belongs to ("" for the default one).
    pub fn subscription(&self) -> &str {
        &self.sub
    }
}

impl std::fmt::Display for Receipt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:x}.{}.{}", self.token, self.id, self.sub)
    }
}

impl std::str::FromStr for Receipt {
    type Err = crate::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || crate::Error::InvalidArgument(format!("{s:?} is not a receipt"));
        let mut parts = s.splitn(3, '.');
        let token = u64::from_str_radix(parts.next().ok_or_else(bad)?, 16).map_err(|_| bad())?;
        let id = parts.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
        let sub = parts.next().ok_or_else(bad)?.to_string();
        Ok(Receipt { token, id, sub })
    }
}

/// Where a read comes from and how long it may wait.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// At most this many messages: 1 ..= the broker's `max_batch`, else refused.
    pub max: usize,
    /// Wait up to this long for a first message when none is ready (at most the
    /// broker's `max_wait`, else refused).
    pub wait: Duration,
    /// A named subscription, or `None` for the queue's default one.
    pub subscription: Option<String>,
    /// The end to read from (Redis `LPOP` is the head, `RPOP` the tail).
    pub end: End,
}

/// Where a move puts the message it takes (Redis `LMOVE`/`BLMOVE`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MoveOptions {
    /// What to take, and from which end of the source.
    pub read: ReadOptions,
    /// The destination queue (created if absent; it may be the source).
    pub to: String,
    /// The destination's end the messages join.
    pub to_end: End,
}

/// A lease request: a read plus a visibility timeout (1 ms ..= [`MAX_DURATION_MS`]).
/// Leases taken through a [`crate::Session`] also end with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaseOptions {
    /// What to read.
    pub read: ReadOptions,
    /// How long the lease hides the message before it becomes ready again.
    pub visibility: Duration,
}

/// How a queue keeps messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RetentionMode {
    /// A message lives until every subscription that existed at its push has consumed it.
    #[default]
    Consume,
    /// A message lives until it is older, or the log larger, than the limits, whether or
    /// not it was consumed; subscriptions can seek back over it.
    Log,
}

/// A queue's retention: the mode and, for log retention, its limits. In JSON:
/// `{"mode": "log", "max_count": 1000}`; absent limits are unbounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Retention {
    /// Consume or log.
    pub mode: RetentionMode,
    /// Log retention drops messages older than this many milliseconds.
    #[serde(default)]
    pub max_age_ms: Option<u64>,
    /// Log retention keeps at most this many body bytes.
    #[serde(default)]
    pub max_bytes: Option<u64>,
    /// Log retention keeps at most this many messages.
    #[serde(default)]
    pub max_count: Option<u64>,
}

impl Retention {
    /// Whether this is log retention.
    pub fn is_log(&self) -> bool {
        self.mode == RetentionMode::Log
    }
}

/// What a full queue does with another push.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Overflow {
    /// Refuse the push with [`crate::Error::QueueFull`].
    #[default]
    Reject,
    /// Drop the oldest ready message of the default subscription to make room.
    DropOldest,
    /// Hold the push until there is room (queue_service's blocking writers), for at
    /// most [`PushOptions::wait`] (else the server's `max_wait`), then refuse it with
    /// [`crate::Error::QueueFull`]. A push larger than the whole queue is refused at
    /// once.
    Block,
}

/// Per-queue settings, all with defaults (a field absent from a stored record takes its
/// default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct QueueSettings {
    /// Dead-letter after this many deliveries; `None` (the default) never dead-letters.
    pub max_deliveries: Option<u32>,
    /// Where dead letters go; `None` means `<queue>.dlq`.
    pub dead_letter_queue: Option<String>,
    /// How long a dedup id is remembered, in milliseconds.
    pub dedup_window_ms: u64,
    /// Consumption or log retention.
    pub retention: Retention,
    /// Most ready+delayed+in-flight messages of the default subscription; `None` is unbounded.
    pub max_length: Option<u64>,
    /// Most body bytes held by the default subscription (ready, delayed and in flight);
    /// `None` is unbounded.
    pub max_bytes: Option<u64>,
    /// What a push to a full queue does.
    pub overflow: Overflow,
    /// A paused queue accepts pushes but delivers nothing until resumed.
    pub paused: bool,
    /// Largest message body this queue takes, in bytes (within the server's
    /// `max_message_bytes`); `None` is the server's limit (Kestrel's `max_item_size`).
    pub max_message_bytes: Option<u64>,
    /// Dedup ids are held for as long as their message is queued or in flight (in any
    /// subscription), not for the dedup window.
    pub dedup_until_consumed: bool,
    /// Live delivery (streams) is stopped (`Some(true)`); plain reads go on (RestMQ's
    /// `/control` stop). Unlike `paused`, which stops every read. `None`: never set
    /// (delivering, as `Some(false)`; RestMQ shows a queue without a message and
    /// without a status as having none).
    pub live_paused: Option<bool>,
    /// How the live consumers that follow the queue's policy
    /// ([`crate::StreamPolicy::FromQueue`]: RestMQ's `/c/` and `/ws/`) share its
    /// messages; `None`: never set, which delivers as broadcast (RestMQ's `/p/` shows
    /// `"unknown"`).
    pub live_policy: Option<LivePolicy>,
}

/// A queue's live-delivery policy ([`QueueSettings::live_policy`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LivePolicy {
    /// Every message to every live consumer.
    Broadcast,
    /// Each message to one live consumer, in turn, in connection order.
    RoundRobin,
}

impl QueueSettings {
    /// Whether live delivery is stopped: `live_paused`, or every read `paused`.
    pub fn live_stopped(&self) -> bool {
        self.paused || self.live_paused == Some(true)
    }
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            max_deliveries: None,
            dead_letter_queue: None,
            dedup_window_ms: 5 * 60 * 1000,
            retention: Retention::default(),
            max_length: None,
            max_bytes: None,
            overflow: Overflow::Reject,
            paused: false,
            max_message_bytes: None,
            dedup_until_consumed: false,
            live_paused: None,
            live_policy: None,
        }
    }
}

/// A partial update of [`QueueSettings`]: absent fields keep their value. A field set to
/// JSON `null` (the inner `None`) clears an optional setting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    /// See [`QueueSettings::max_deliveries`].
    #[serde(default, with = "double_option")]
    pub max_deliveries: Option<Option<u32>>,
    /// See [`QueueSettings::dead_letter_queue`].
    #[serde(default, with = "double_option")]
    pub dead_letter_queue: Option<Option<String>>,
    /// See [`QueueSettings::dedup_window_ms`].
    pub dedup_window_ms: Option<u64>,
    /// See [`QueueSettings::retention`].
    pub retention: Option<Retention>,
    /// See [`QueueSettings::max_length`].
    #[serde(default, with = "double_option")]
    pub max_length: Option<Option<u64>>,
    /// See [`QueueSettings::max_bytes`].
    #[serde(default, with = "double_option")]
    pub max_bytes: Option<Option<u64>>,
    /// See [`QueueSettings::overflow`].
    pub overflow: Option<Overflow>,
    /// See [`QueueSettings::paused`].
    pub paused: Option<bool>,
    /// See [`QueueSettings::max_message_bytes`].
    #[serde(default, with = "double_option")]
    pub max_message_bytes: Option<Option<u64>>,
    /// See [`QueueSettings::dedup_until_consumed`].
    pub dedup_until_consumed: Option<bool>,
    /// See [`QueueSettings::live_paused`].
    pub live_paused: Option<bool>,
    /// See [`QueueSettings::live_policy`].
    pub live_policy: Option<LivePolicy>,
}

impl SettingsPatch {
    /// Applies the patch to `settings`.
    pub fn apply(&self, settings: &mut QueueSettings) {
        if let Some(v) = self.max_deliveries {
            settings.max_deliveries = v;
        }
        if let Some(v) = &self.dead_letter_queue {
            settings.dead_letter_queue = v.clone();
        }
        if let Some(v) = self.dedup_window_ms {
            settings.dedup_window_ms = v;
        }
        if let Some(v) = self.retention {
            settings.retention = v;
        }
        if let Some(v) = self.max_length {
            settings.max_length = v;
        }
        if let Some(v) = self.max_bytes {
            settings.max_bytes = v;
        }
        if let Some(v) = self.overflow {
            settings.overflow = v;
        }
        if let Some(v) = self.paused {
            settings.paused = v;
        }
        if let Some(v) = self.max_message_bytes {
            settings.max_message_bytes = v;
        }
        if let Some(v) = self.dedup_until_consumed {
            settings.dedup_until_consumed = v;
        }
        if let Some(v) = self.live_paused {
            settings.live_paused = Some(v);
        }
        if let Some(v) = self.live_policy {
            settings.live_policy = Some(v);
        }
    }
}

mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        T: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// Where a new subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StartAt {
    /// Only messages pushed from now on.
    Latest,
    /// Every message still retained by the queue, then new ones.
    Earliest,
    /// Retained messages with this id or later, then new ones.
    Id(u64),
}

/// Counters of one subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscriptionStats {
    /// The subscription's name (`None` for the queue's default subscription).
    pub name: Option<String>,
    /// Messages deliverable now.
    pub ready: u64,
    /// Messages leased and not yet acked.
    pub in_flight: u64,
    /// Messages waiting for their delay.
    pub delayed: u64,
    /// For a subscription of a log-retention queue, its cursor: the id it reads from
    /// next in id order (set by subscribe, seek and reset, raised past every message it
    /// delivers and past a trim); `None` on other queues.
    pub position: Option<u64>,
    /// For a subscription of a log-retention queue, when it last read, acked or sought
    /// (or was created), ms since the epoch; 0 if it never did since it existed on a log
    /// queue. `None` on other queues.
    pub last_active_ms: Option<u64>,
    /// A bare cursor ([`crate::Broker::subscribe_cursor`]): it holds nothing, `ready`
    /// counts the retained messages from its position, and it is read with
    /// [`crate::Broker::read_cursor`].
    pub cursor: bool,
}

/// A page of a log-retention queue's retained log, read without consuming
/// ([`crate::Broker::read_log`]).
#[derive(Debug, Clone)]
pub struct LogPage {
    /// Retained messages with ids from the asked one on, in id order (messages whose
    /// TTL passed are left out).
    pub messages: Vec<Message>,
    /// The id to ask for next: one past the last message returned, or the id asked for
    /// when none was.
    pub next: u64,
}

/// Counters of one queue, kept as things happen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    /// The queue's name.
    pub name: String,
    /// Ready messages of the default subscription.
    pub ready: u64,
    /// In-flight messages of the default subscription.
    pub in_flight: u64,
    /// Delayed messages of the default subscription.
    pub delayed: u64,
    /// Body bytes of the default subscription's messages (ready, delayed, in flight).
    pub bytes: u64,
    /// Body bytes of the default subscription's ready messages (Kestrel's `bytes`).
    pub ready_bytes: u64,
    /// Reads waiting for a message of this queue, over all subscriptions (Kestrel's
    /// `waiters`).
    pub waiters: u64,
    /// Live consumers connected to the queue's streams (SSE, WebSocket, and later
    /// Redis `SUBSCRIBE`).
    pub live_consumers: u64,
    /// How long the most recently consumed message (taken, acked or moved) had been in
    /// the queue, in milliseconds (Kestrel's `age`); 0 until one is, since the broker
    /// opened.
    pub last_age_ms: u64,
    /// Messages accepted since the queue was created (duplicates not counted).
    pub total_pushed: u64,
    /// Deliveries made (takes and leases), over all subscriptions.
    pub total_delivered: u64,
    /// Messages removed by take or ack, over all subscriptions.
    pub total_consumed: u64,
    /// Messages dropped because their TTL passed.
    pub total_expired: u64,
    /// Messages moved to the dead-letter queue.
    pub total_dead_lettered: u64,
    /// Messages dropped to make room in a full queue (overflow `drop_oldest`).
    pub total_discarded: u64,
    /// Messages deleted by id.
    pub total_deleted: u64,
    /// The id the next push will get.
    pub next_id: u64,
    /// Number of named subscriptions.
    pub subscriptions: u64,
    /// Messages kept by log retention (0 for consumption retention).
    pub log_messages: u64,
    /// Whether delivery is paused.
    pub paused: bool,
    /// When the queue was created, ms since the epoch (0 when its creation predates
    /// logged creations).
    pub created_at_ms: u64,
    /// Its creation number: 1 for the first queue created, then 2, 3…
    pub creation: u64,
    /// Free text given at creation or later.
    pub description: Option<String>,
    /// A fan-out-only queue has no default subscription: a message is kept only for the
    /// subscriptions that exist when it is pushed, and reads must name one.
    pub fanout_only: bool,
}

/// Counters of the whole broker: the sums of every queue's (what Redis `INFO` and
/// memcached `stats` report), kept per queue as things happen and added up per call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BrokerStats {
    /// Queues that exist.
    pub queues: u64,
    /// Ready messages of the default subscriptions.
    pub ready: u64,
    /// In-flight messages of the default subscriptions.
    pub in_flight: u64,
    /// Delayed messages of the default subscriptions.
    pub delayed: u64,
    /// Body bytes the default subscriptions hold.
    pub bytes: u64,
    /// Body bytes of their ready messages.
    pub ready_bytes: u64,
    /// Reads waiting, over all queues.
    pub waiters: u64,
    /// Messages accepted (duplicates not counted).
    pub total_pushed: u64,
    /// Deliveries made.
    pub total_delivered: u64,
    /// Messages removed by take, ack or move.
    pub total_consumed: u64,
    /// Messages whose TTL passed.
    pub total_expired: u64,
    /// Messages dead-lettered.
    pub total_dead_lettered: u64,
    /// Messages dropped by overflow.
    pub total_discarded: u64,
    /// Messages deleted by id or by value.
    pub total_deleted: u64,
    /// Live consumers connected to streams, over all queues.
    pub live_consumers: u64,
    /// Keys of the key/value namespace.
    pub kv_keys: u64,
    /// Bytes the key/value namespace holds (what `max_kv_bytes` bounds).
    pub kv_bytes: u64,
}

impl BrokerStats {
    /// Adds one queue's counters.
    pub fn add(&mut self, q: &QueueStats) {
        self.queues += 1;
        self.ready += q.ready;
        self.in_flight += q.in_flight;
        self.delayed += q.delayed;
        self.bytes += q.bytes;
        self.ready_bytes += q.ready_bytes;
        self.waiters += q.waiters;
        self.total_pushed += q.total_pushed;
        self.total_delivered += q.total_delivered;
        self.total_consumed += q.total_consumed;
        self.total_expired += q.total_expired;
        self.live_consumers += q.live_consumers;
        self.total_dead_lettered += q.total_dead_lettered;
        self.total_discarded += q.total_discarded;
        self.total_deleted += q.total_deleted;
    }
}
