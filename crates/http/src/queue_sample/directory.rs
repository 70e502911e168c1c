//! Where queue-sample's names live in the core: a topic is the log-retention queue
//! `queue-sample:<topic>`, a subscriber is a cursor of it named by its decimal id, and
//! the two global numberings (subscriber ids, message ids) are counters of the core's
//! key/value store, so a number is never handed out twice, restarts included.
//!
//! Core ids of a queue keep rising when it is dropped and created again, but a
//! topic's offsets restart at 1: the core id of a topic's offset 1 (its *base*) is
//! kept in the key/value store under the queue's creation number, written once the
//! topic is a log, so a topic without it is a creation that did not finish.
//!
//! The only state here is [`Directory`]'s cache of which topic holds which subscriber:
//! derived from the core (filled by a scan of the topics' cursors), checked against it
//! on every use, and safe to lose.

use std::collections::HashMap;

use godwit_core::{Broker, Counter, Error, KvWrite};
use parking_lot::Mutex;

/// The prefix of every topic's queue name.
pub(crate) const QUEUE_PREFIX: &str = "queue-sample:";
/// The key/value counter of subscriber ids (a dot, so no topic's queue can clash).
const SUBSCRIBER_IDS: &str = "queue-sample.subscriber-ids";
/// The key/value counter of message ids.
const MESSAGE_IDS: &str = "queue-sample.message-ids";
/// The message header that carries a message's global id.
pub(crate) const ID_HEADER: &str = "queue-sample-id";

/// A topic as found in the core: its queue and the core id of its offset 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Topic {
    /// The queue's name.
    pub queue: String,
    /// The core id of offset 1.
    pub base: u64,
}

impl Topic {
    /// The offset of the message with core id `id`.
    pub(crate) fn offset(&self, id: u64) -> u64 {
        id.saturating_sub(self.base).saturating_add(1)
    }

    /// The core position that reads offset `next` next (anything below 1: from the
    /// first message).
    pub(crate) fn position(&self, next: i64) -> u64 {
        match u64::try_from(next) {
            Ok(n) if n >= 1 => self.base.saturating_add(n - 1),
            _ => 0,
        }
    }

    /// The topic's name.
    pub(crate) fn name(&self) -> &str {
        topic_of(&self.queue).unwrap_or(&self.queue)
    }

    /// The last processed offset of a cursor at core position `position`.
    pub(crate) fn cursor_offset(&self, position: u64) -> i128 {
        i128::from(position) - i128::from(self.base)
    }
}

/// The key/value key of the base of a queue's incarnation `creation`.
fn base_key(creation: u64) -> String {
    format!("queue-sample.base.{creation}")
}

/// The topic whose queue is `queue`, if it exists and its creation finished.
pub(crate) async fn resolve(broker: &Broker, queue: &str) -> godwit_core::Result<Option<Topic>> {
    let stats = match broker.stats(queue) {
        Ok(stats) => stats,
        Err(Error::NotFound(_) | Error::InvalidName(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let base = broker
        .kv_get(&base_key(stats.creation))
        .await?
        .and_then(|v| std::str::from_utf8(&v.value).ok()?.parse::<u64>().ok());
    Ok(base.map(|base| Topic {
        queue: queue.to_string(),
        base,
    }))
}

/// Finishes a topic's creation: records its base, the id its next push gets (no push
/// can reach a topic before this).
pub(crate) async fn record_base(broker: &Broker, queue: &str) -> godwit_core::Result<()> {
    let stats = broker.stats(queue)?;
    let write = KvWrite {
        value: stats.next_id.to_string().into(),
        ..KvWrite::default()
    };
    broker.kv_set(&base_key(stats.creation), write).await?;
    Ok(())
}

/// Forgets the base of a deleted queue's incarnation `creation`.
pub(crate) async fn forget_base(broker: &Broker, creation: u64) -> godwit_core::Result<()> {
    broker.kv_delete(&[base_key(creation)]).await?;
    Ok(())
}

/// The core queue of `topic`.
pub(crate) fn queue_of(topic: &str) -> String {
    format!("{QUEUE_PREFIX}{topic}")
}

/// The topic of a core queue, if it is one.
pub(crate) fn topic_of(queue: &str) -> Option<&str> {
    queue.strip_prefix(QUEUE_PREFIX)
}

/// The next subscriber id (1, 2, 3…; a failed subscribe still uses one up).
pub(crate) async fn next_subscriber_id(broker: &Broker) -> godwit_core::Result<u64> {
    next(broker, SUBSCRIBER_IDS).await
}

/// The next message id, global across topics.
pub(crate) async fn next_message_id(broker: &Broker) -> godwit_core::Result<u64> {
    next(broker, MESSAGE_IDS).await
}

async fn next(broker: &Broker, key: &str) -> godwit_core::Result<u64> {
    let value = broker.kv_counter(key, Counter::Signed(1)).await?;
    Ok(value.and_then(|v| u64::try_from(v).ok()).unwrap_or(0))
}

/// Which topic's queue holds each subscriber, as last seen in the core.
#[derive(Debug, Default)]
pub(crate) struct Directory {
    queues: Mutex<HashMap<u64, String>>,
}

impl Directory {
    /// The queue that holds subscriber `id`, from the cache or else a scan of every
    /// topic's cursors; `None` for an id no topic has. A cached answer may be stale
    /// (the subscriber or its topic was deleted since): the caller's core call then
    /// answers `NotFound`, and it calls [`Directory::forget`]. Ids are never reused,
    /// so a cursor named `id` in that queue is always this subscriber.
    pub(crate) async fn queue_of_subscriber(
        &self,
        broker: &Broker,
        id: u64,
    ) -> godwit_core::Result<Option<String>> {
        if let Some(queue) = self.queues.lock().get(&id) {
            return Ok(Some(queue.clone()));
        }
        // Ids above the counter were never handed out: no scan needed.
        let issued = broker
            .kv_get(SUBSCRIBER_IDS)
            .await?
            .and_then(|v| std::str::from_utf8(&v.value).ok()?.parse::<u64>().ok())
            .unwrap_or(0);
        if id == 0 || id > issued {
            return Ok(None);
        }
        let mut found = None;
        let mut seen = Vec::new();
        for stats in broker.list_prefix(QUEUE_PREFIX) {
            let Ok(subs) = broker.subscriptions(&stats.name) else {
                continue;
            };
            for sub in subs {
                if let Some(n) = sub.name.as_deref().and_then(|n| n.parse::<u64>().ok()) {
                    if n == id {
                        found = Some(stats.name.clone());
                    }
                    seen.push((n, stats.name.clone()));
                }
            }
        }
        self.queues.lock().extend(seen);
        Ok(found)
    }

    /// Records that subscriber `id` is in `queue`.
    pub(crate) fn remember(&self, id: u64, queue: &str) {
        self.queues.lock().insert(id, queue.to_string());
    }

    /// Forgets subscriber `id` (it is gone).
    pub(crate) fn forget(&self, id: u64) {
        self.queues.lock().remove(&id);
    }
}
