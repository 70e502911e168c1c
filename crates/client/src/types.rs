//! The native API's request options and replies, as Rust types.

use std::collections::BTreeMap;

use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A delivered or peeked message (serialized as the server sends it).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Message {
    /// The message id, rising per queue.
    pub id: u64,
    /// The body when it is UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The body in standard base64 when it is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
    /// Priority, 0–9 (higher first).
    #[serde(default)]
    pub priority: u8,
    /// When it was pushed, ms since the Unix epoch.
    #[serde(default)]
    pub created_at: u64,
    /// How many times it was delivered.
    #[serde(default)]
    pub deliveries: u32,
    /// How many soft gets returned it.
    #[serde(default)]
    pub soft_gets: u32,
    /// The message's headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The lease receipt (leases only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<String>,
}

impl Message {
    /// The body's bytes, whichever form the server sent it in.
    pub fn bytes(&self) -> Result<Bytes> {
        match (&self.body, &self.body_base64) {
            (Some(text), _) => Ok(Bytes::from(text.clone().into_bytes())),
            (None, Some(b64)) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map(Bytes::from)
                .map_err(|e| Error::Protocol(format!("message {}: bad body_base64: {e}", self.id))),
            (None, None) => Err(Error::Protocol(format!("message {} has no body", self.id))),
        }
    }
}

/// How durable a push must be before the server replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Wait for an fsync covering the push.
    Fsync,
    /// Reply once the record is written (survives a process kill, not a power loss).
    Written,
}

impl Durability {
    fn as_str(self) -> &'static str {
        match self {
            Durability::Fsync => "fsync",
            Durability::Written => "written",
        }
    }
}

/// Options of a single push; `Default` is a plain push.
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// Priority 0–9 (server default 4).
    pub priority: Option<u8>,
    /// Delay before the message is ready, ms.
    pub delay_ms: Option<u64>,
    /// Time to live, ms.
    pub ttl_ms: Option<u64>,
    /// A dedup id: a second push with it within the dedup window is a duplicate.
    pub dedup_id: Option<String>,
    /// Message headers.
    pub headers: BTreeMap<String, String>,
    /// Durability for this push (server policy when `None`).
    pub durability: Option<Durability>,
}

impl PushOptions {
    pub(crate) fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(p) = self.priority {
            q.push(("priority", p.to_string()));
        }
        if let Some(d) = self.delay_ms {
            q.push(("delay_ms", d.to_string()));
        }
        if let Some(t) = self.ttl_ms {
            q.push(("ttl_ms", t.to_string()));
        }
        if let Some(id) = &self.dedup_id {
            q.push(("dedup_id", id.clone()));
        }
        if let Some(d) = self.durability {
            q.push(("durability", d.as_str().to_string()));
        }
        q
    }
}

/// One message of a batch push.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NewMessage {
    /// The body when it is UTF-8 (set one of `body` and `body_base64`; see [`NewMessage::new`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The body in standard base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
    /// Priority 0–9.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    /// Delay before it is ready, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Time to live, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
    /// A dedup id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dedup_id: Option<String>,
    /// Message headers.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

impl NewMessage {
    /// A message with these body bytes, sent as text when they are UTF-8, else as base64.
    pub fn new(body: impl AsRef<[u8]>) -> NewMessage {
        let body = body.as_ref();
        match std::str::from_utf8(body) {
            Ok(text) => NewMessage {
                body: Some(text.to_owned()),
                ..NewMessage::default()
            },
            Err(_) => NewMessage {
                body_base64: Some(base64::engine::general_purpose::STANDARD.encode(body)),
                ..NewMessage::default()
            },
        }
    }

    /// The same message with one more header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> NewMessage {
        self.headers.insert(name.into(), value.into());
        self
    }
}

#[derive(Serialize)]
pub(crate) struct BatchRequest<'a> {
    pub messages: &'a [NewMessage],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub durability: Option<Durability>,
}

/// The reply to a push.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Pushed {
    /// The queue pushed to.
    pub queue: String,
    /// The new message's id (the original's for a duplicate).
    pub id: u64,
    /// What the queue holds after the push.
    #[serde(default)]
    pub length: u64,
    /// Whether it was a duplicate and not added.
    #[serde(default)]
    pub duplicate: bool,
    /// Whether an fsync covering it completed before the reply.
    #[serde(default)]
    pub durable: bool,
}

/// The reply to a batch push.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct BatchPushed {
    /// The queue pushed to.
    pub queue: String,
    /// The ids, in request order.
    pub ids: Vec<u64>,
    /// `true` at the positions of duplicates (absent when there were none).
    #[serde(default)]
    pub duplicate: Option<Vec<bool>>,
    /// What the queue holds after the push.
    #[serde(default)]
    pub length: u64,
    /// Whether an fsync covering it completed before the reply.
    #[serde(default)]
    pub durable: bool,
}

/// Options of a take, lease or peek; `Default` reads one message without waiting.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// At most this many messages (server default 1).
    pub max: Option<u32>,
    /// Long-poll up to this many ms for a message (take and lease only).
    pub wait_ms: Option<u64>,
    /// A named subscription instead of the queue's own.
    pub subscription: Option<String>,
    /// How long leased messages stay hidden, ms (lease only).
    pub visibility_ms: Option<u64>,
}

impl ReadOptions {
    /// Reads up to `max` messages.
    pub fn max(max: u32) -> ReadOptions {
        ReadOptions {
            max: Some(max),
            ..ReadOptions::default()
        }
    }

    pub(crate) fn query(&self, waits: bool, leases: bool) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(m) = self.max {
            q.push(("max", m.to_string()));
        }
        if waits {
            if let Some(w) = self.wait_ms {
                q.push(("wait_ms", w.to_string()));
            }
        }
        if let Some(s) = &self.subscription {
            q.push(("subscription", s.clone()));
        }
        if leases {
            if let Some(v) = self.visibility_ms {
                q.push(("visibility_ms", v.to_string()));
            }
        }
        q
    }
}

#[derive(Deserialize)]
pub(crate) struct MessagesReply {
    pub messages: Vec<Message>,
}

/// One queue's counters, as `GET /v1/queues` lists them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct QueueStats {
    /// The queue's name.
    pub name: String,
    /// Ready messages.
    #[serde(default)]
    pub ready: u64,
    /// Leased messages.
    #[serde(default)]
    pub in_flight: u64,
    /// Delayed messages.
    #[serde(default)]
    pub delayed: u64,
    /// Body bytes held.
    #[serde(default)]
    pub bytes: u64,
    /// Live stream consumers connected.
    #[serde(default)]
    pub live_consumers: u64,
    /// Messages pushed since the queue was created.
    #[serde(default)]
    pub total_pushed: u64,
    /// Deliveries made.
    #[serde(default)]
    pub total_delivered: u64,
    /// Messages consumed (taken or acked).
    #[serde(default)]
    pub total_consumed: u64,
    /// Subscriptions of the queue.
    #[serde(default)]
    pub subscriptions: u64,
    /// Whether the queue is paused.
    #[serde(default)]
    pub paused: bool,
    /// The queue's description.
    #[serde(default)]
    pub description: Option<String>,
    /// The id the next push gets.
    #[serde(default)]
    pub next_id: u64,
}

/// The counters added up over every queue (`GET /v1/stats`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Totals {
    /// How many queues exist.
    #[serde(default)]
    pub queues: u64,
    /// Ready messages.
    #[serde(default)]
    pub ready: u64,
    /// Leased messages.
    #[serde(default)]
    pub in_flight: u64,
    /// Delayed messages.
    #[serde(default)]
    pub delayed: u64,
    /// Body bytes held.
    #[serde(default)]
    pub bytes: u64,
    /// Messages pushed.
    #[serde(default)]
    pub total_pushed: u64,
    /// Messages consumed.
    #[serde(default)]
    pub total_consumed: u64,
}

#[derive(Deserialize)]
pub(crate) struct QueuesReply {
    pub queues: Vec<QueueStats>,
}

/// Options of a live subscription (`GET /v1/queues/{queue}/events`).
#[derive(Debug, Clone, Default)]
pub struct StreamOptions {
    /// A named subscription instead of the queue's own.
    pub subscription: Option<String>,
    /// Lease instead of take (messages then carry receipts to ack).
    pub lease: bool,
    /// Resume after this message id (`Last-Event-ID`).
    pub after_id: Option<u64>,
}

/// One event of a live subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// A message, now delivered to this subscriber.
    Message(Message),
    /// A queue event by name: `purged`, `paused`, `resumed` or `dropped` (the last one
    /// ends the stream).
    Queue(String),
}
