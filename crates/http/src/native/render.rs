//! The JSON shapes of the native API's replies, built from core types.
//!
//! These structs are the wire contract (and the OpenAPI schemas); the core's own types
//! stay free to change. Nothing here talks to the broker.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use godwit_core::{
    BrokerStats, Message, Overflow, QueueSettings, QueueStats, Retention, RetentionMode,
    SubscriptionStats,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A delivered or peeked message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct MessageJson {
    /// Id within its queue: 1, 2, 3… never reused.
    pub id: u64,
    /// The body, when it is valid UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The body in standard base64, when it is not valid UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
    /// 0..=9, higher first.
    pub priority: u8,
    /// Push time in milliseconds since the Unix epoch.
    pub created_at: u64,
    /// How many times the message has been delivered.
    pub deliveries: u32,
    /// How many soft gets have returned it.
    pub soft_gets: u32,
    /// Headers given at push.
    pub headers: BTreeMap<String, String>,
    /// The receipt to ack, nack or extend this lease (leases only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt: Option<String>,
}

impl From<Message> for MessageJson {
    fn from(m: Message) -> Self {
        let (body, body_base64) = match std::str::from_utf8(&m.body) {
            Ok(text) => (Some(text.to_owned()), None),
            Err(_) => (None, Some(BASE64.encode(&m.body))),
        };
        Self {
            id: m.id,
            body,
            body_base64,
            priority: m.priority,
            created_at: m.created_at_ms,
            deliveries: m.deliveries,
            soft_gets: m.soft_gets,
            headers: m.headers,
            receipt: m.receipt.map(|r| r.to_string()),
        }
    }
}

/// The reply of take, lease and peek.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MessagesReply {
    /// The messages, in delivery order; empty when none was ready.
    pub messages: Vec<MessageJson>,
}

impl MessagesReply {
    /// Renders core messages.
    pub fn new(messages: Vec<Message>) -> Self {
        Self {
            messages: messages.into_iter().map(MessageJson::from).collect(),
        }
    }
}

/// Consumption or log retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RetentionModeJson {
    /// A message lives until every subscription that existed at its push consumed it.
    Consume,
    /// A message lives until older, or the log larger, than the limits.
    Log,
}

/// How a queue keeps messages: the mode and, for log retention, its limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RetentionJson {
    /// Consume or log.
    pub mode: RetentionModeJson,
    /// Log retention drops messages older than this many milliseconds.
    pub max_age_ms: Option<u64>,
    /// Log retention keeps at most this many stored bytes.
    pub max_bytes: Option<u64>,
    /// Log retention keeps at most this many messages.
    pub max_count: Option<u64>,
}

impl From<Retention> for RetentionJson {
    fn from(r: Retention) -> Self {
        Self {
            mode: match r.mode {
                RetentionMode::Consume => RetentionModeJson::Consume,
                RetentionMode::Log => RetentionModeJson::Log,
            },
            max_age_ms: r.max_age_ms,
            max_bytes: r.max_bytes,
            max_count: r.max_count,
        }
    }
}

/// What a full queue does with another push.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OverflowJson {
    /// Refuse the push with 409 `queue_full`.
    Reject,
    /// Drop the oldest ready message to make room.
    DropOldest,
    /// Hold the push until there is room, for at most the server's `--max-wait-ms`,
    /// then refuse it with 409 `queue_full`.
    Block,
}

impl From<Overflow> for OverflowJson {
    fn from(o: Overflow) -> Self {
        match o {
            Overflow::Reject => OverflowJson::Reject,
            Overflow::DropOldest => OverflowJson::DropOldest,
            Overflow::Block => OverflowJson::Block,
        }
    }
}

/// A queue's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SettingsJson {
    /// Dead-letter after this many deliveries; `null` never dead-letters.
    pub max_deliveries: Option<u32>,
    /// Where dead letters go; `null` means `<queue>.dlq`.
    pub dead_letter_queue: Option<String>,
    /// How long a dedup id is remembered, in milliseconds.
    pub dedup_window_ms: u64,
    /// Consumption or log retention.
    pub retention: RetentionJson,
    /// Most messages of the default subscription; `null` is unbounded.
    pub max_length: Option<u64>,
    /// Most stored bytes of the default subscription; `null` is unbounded.
    pub max_bytes: Option<u64>,
    /// What a push to a full queue does.
    pub overflow: OverflowJson,
    /// A paused queue accepts pushes but delivers nothing.
    pub paused: bool,
    /// Largest message body this queue takes; `null` is the server's limit.
    pub max_message_bytes: Option<u64>,
    /// Dedup ids are held while their message is queued or in flight, not for the
    /// dedup window.
    pub dedup_until_consumed: bool,
    /// Live delivery (SSE and WebSocket streams) is stopped; plain reads go on.
    pub live_paused: bool,
    /// How live consumers that follow the queue's policy (RestMQ's `/c/` and `/ws/`)
    /// share its messages; `null`: never set (broadcast).
    pub live_policy: Option<LivePolicyJson>,
}

/// A queue's live-delivery policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LivePolicyJson {
    /// Every message to every live consumer.
    Broadcast,
    /// Each message to one live consumer, in turn.
    RoundRobin,
}

impl From<godwit_core::LivePolicy> for LivePolicyJson {
    fn from(p: godwit_core::LivePolicy) -> Self {
        match p {
            godwit_core::LivePolicy::Broadcast => Self::Broadcast,
            godwit_core::LivePolicy::RoundRobin => Self::RoundRobin,
        }
    }
}

impl From<QueueSettings> for SettingsJson {
    fn from(s: QueueSettings) -> Self {
        Self {
            max_deliveries: s.max_deliveries,
            dead_letter_queue: s.dead_letter_queue,
            dedup_window_ms: s.dedup_window_ms,
            retention: s.retention.into(),
            max_length: s.max_length,
            max_bytes: s.max_bytes,
            overflow: s.overflow.into(),
            paused: s.paused,
            max_message_bytes: s.max_message_bytes,
            dedup_until_consumed: s.dedup_until_consumed,
            live_paused: s.live_paused == Some(true),
            live_policy: s.live_policy.map(LivePolicyJson::from),
        }
    }
}

/// Counters of one queue (its default subscription, plus totals).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct StatsJson {
    /// The queue's name.
    pub name: String,
    /// Messages deliverable now.
    pub ready: u64,
    /// Messages leased and not yet acked.
    pub in_flight: u64,
    /// Messages waiting for their delay.
    pub delayed: u64,
    /// Body bytes of the default subscription's messages (ready, delayed, in flight).
    pub bytes: u64,
    /// Body bytes of its ready messages.
    pub ready_bytes: u64,
    /// Reads waiting for a message of this queue (any subscription).
    pub waiters: u64,
    /// Live consumers connected to its streams (SSE and WebSocket).
    pub live_consumers: u64,
    /// How long the last consumed message had been queued, in milliseconds (0 until
    /// one is, since the server started).
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
    /// Messages deleted by id or by value.
    pub total_deleted: u64,
    /// The id the next push will get.
    pub next_id: u64,
    /// Number of named subscriptions.
    pub subscriptions: u64,
    /// Messages kept by log retention.
    pub log_messages: u64,
    /// Whether delivery is paused.
    pub paused: bool,
    /// When the queue was created, in milliseconds since the Unix epoch (0 when its
    /// creation predates logged creations).
    pub created_at: u64,
    /// Its creation number: 1 for the first queue, then 2, 3…
    pub creation: u64,
    /// Free text given at creation or later.
    pub description: Option<String>,
    /// No default subscription: reads must name one.
    pub fanout_only: bool,
}

impl From<QueueStats> for StatsJson {
    fn from(s: QueueStats) -> Self {
        Self {
            name: s.name,
            ready: s.ready,
            in_flight: s.in_flight,
            delayed: s.delayed,
            bytes: s.bytes,
            ready_bytes: s.ready_bytes,
            waiters: s.waiters,
            live_consumers: s.live_consumers,
            last_age_ms: s.last_age_ms,
            total_pushed: s.total_pushed,
            total_delivered: s.total_delivered,
            total_consumed: s.total_consumed,
            total_expired: s.total_expired,
            total_dead_lettered: s.total_dead_lettered,
            total_discarded: s.total_discarded,
            total_deleted: s.total_deleted,
            next_id: s.next_id,
            subscriptions: s.subscriptions,
            log_messages: s.log_messages,
            paused: s.paused,
            created_at: s.created_at_ms,
            creation: s.creation,
            description: s.description,
            fanout_only: s.fanout_only,
        }
    }
}

/// One queue's stats and settings (`GET /v1/queues/{queue}`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QueueJson {
    /// The counters.
    #[serde(flatten)]
    pub stats: StatsJson,
    /// The settings.
    pub settings: SettingsJson,
}

/// The reply of `GET /v1/queues`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QueuesReply {
    /// Every queue's stats, by name.
    pub queues: Vec<StatsJson>,
}

/// Counters of one named subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SubscriptionJson {
    /// The subscription's name (`null` for a queue's default subscription).
    pub name: Option<String>,
    /// Messages deliverable now.
    pub ready: u64,
    /// Messages leased and not yet acked.
    pub in_flight: u64,
    /// Messages waiting for their delay.
    pub delayed: u64,
    /// On a log-retention queue, the cursor: the id the subscription reads from next in
    /// id order (set by subscribe, seek and reset, raised past every message it
    /// delivers and past a trim); `null` on other queues.
    pub position: Option<u64>,
    /// On a log-retention queue, when the subscription last read, acked or sought (or
    /// was created), ms since the epoch (0: not since the queue keeps a log); `null` on
    /// other queues. A reset leaves it as it was.
    pub last_active_ms: Option<u64>,
    /// `"queue"` (it holds its messages) or `"cursor"` (a bare cursor: `ready` counts
    /// the retained messages from its position).
    pub kind: SubscriptionKind,
}

impl From<SubscriptionStats> for SubscriptionJson {
    fn from(s: SubscriptionStats) -> Self {
        Self {
            name: s.name,
            ready: s.ready,
            in_flight: s.in_flight,
            delayed: s.delayed,
            position: s.position,
            last_active_ms: s.last_active_ms,
            kind: if s.cursor {
                SubscriptionKind::Cursor
            } else {
                SubscriptionKind::Queue
            },
        }
    }
}

/// What a subscription is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SubscriptionKind {
    /// It holds its own copy of every message to take, lease and ack (competing
    /// consumers share it).
    #[default]
    Queue,
    /// A bare cursor into a log-retention queue's retained log: a position and
    /// nothing else. Read it with `GET /v1/queues/{queue}/log?subscription=`, move it
    /// with seek (the same cost whatever the backlog); takes and leases on it answer 409
    /// `cursor_subscription`.
    Cursor,
}

/// The reply of `GET /v1/queues/{queue}/subscriptions`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SubscriptionsReply {
    /// The queue's named subscriptions.
    pub subscriptions: Vec<SubscriptionJson>,
}

/// Counters of the whole server: every queue's added up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TotalsJson {
    /// Queues that exist.
    pub queues: u64,
    /// Ready messages of the queues' default subscriptions.
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
    /// Bytes the key/value namespace holds (keys, values, 64 per key).
    pub kv_bytes: u64,
}

impl From<BrokerStats> for TotalsJson {
    fn from(s: BrokerStats) -> Self {
        Self {
            queues: s.queues,
            ready: s.ready,
            in_flight: s.in_flight,
            delayed: s.delayed,
            bytes: s.bytes,
            ready_bytes: s.ready_bytes,
            waiters: s.waiters,
            total_pushed: s.total_pushed,
            total_delivered: s.total_delivered,
            total_consumed: s.total_consumed,
            total_expired: s.total_expired,
            total_dead_lettered: s.total_dead_lettered,
            total_discarded: s.total_discarded,
            total_deleted: s.total_deleted,
            live_consumers: s.live_consumers,
            kv_keys: s.kv_keys,
            kv_bytes: s.kv_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use serde_json::json;

    fn message(body: &'static [u8], receipt: Option<&str>) -> Message {
        let receipt = receipt.map(|r| r.parse::<godwit_core::Receipt>().unwrap());
        Message {
            id: 7,
            body: Bytes::from_static(body),
            priority: 4,
            created_at_ms: 1_700_000_000_123,
            deliveries: 1,
            soft_gets: 2,
            headers: BTreeMap::from([("trace".to_owned(), "abc".to_owned())]),
            receipt,
        }
    }

    #[test]
    fn utf8_bodies_render_as_text() {
        let v = serde_json::to_value(MessageJson::from(message(b"hello", None))).unwrap();
        assert_eq!(
            v,
            json!({"id": 7, "body": "hello", "priority": 4, "created_at": 1_700_000_000_123u64,
                   "deliveries": 1, "soft_gets": 2, "headers": {"trace": "abc"}})
        );
    }

    #[test]
    fn binary_bodies_render_as_base64_with_the_receipt() {
        let v =
            serde_json::to_value(MessageJson::from(message(b"\xff\x00", Some("1f.7.")))).unwrap();
        assert_eq!(v["body_base64"], "/wA=");
        assert!(v.get("body").is_none());
        assert_eq!(v["receipt"], "1f.7.");
    }

    #[test]
    fn settings_render_with_tagged_retention() {
        let v = serde_json::to_value(SettingsJson::from(QueueSettings::default())).unwrap();
        assert_eq!(v["retention"]["mode"], "consume");
        assert_eq!(v["overflow"], "reject");
        assert_eq!(v["max_length"], serde_json::Value::Null);
    }
}
