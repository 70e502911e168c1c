//! Where queue-sample's names live in the core: a topic is the log-retention queue
//! `queue-sample:<topic>`, a subscriber is a cursor of it named by its decimal id, and
//! the two global numberings (subscriber ids, message ids) are counters of the core's
//! key/value store, so a number is never handed out twice, restarts included.
//!
//! The only state here is [`Directory`]'s cache of which topic holds which subscriber:
//! derived from the core (filled by a scan of the topics' cursors), checked against it
//! on every use, and safe to lose.

use std::collections::HashMap;

use godwit_core::{Broker, Counter};
use parking_lot::Mutex;

/// The prefix of every topic's queue name.
pub(crate) const QUEUE_PREFIX: &str = "queue-sample:";
/// The key/value counter of subscriber ids (a dot, so no topic's queue can clash).
const SUBSCRIBER_IDS: &str = "queue-sample.subscriber-ids";
/// The key/value counter of message ids.
const MESSAGE_IDS: &str = "queue-sample.message-ids";
/// The message header that carries a message's global id.
pub(crate) const ID_HEADER: &str = "queue-sample-id";

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
