//! Queues as things: lifecycle (create, ensure, describe, purge, drop), settings,
//! subscriptions, and the stats kept as things happen.

use super::{require_any_sub, Broker, Core};
use crate::error::{Error, Result};
use crate::model::*;
use crate::name::{validate_queue, validate_subscription};
use crate::op::Op;
use crate::state::{touch, DEFAULT_SUB};
use crate::validate;

impl Broker {
    /// Stats of one queue, or `NotFound`.
    pub fn stats(&self, queue: &str) -> Result<QueueStats> {
        validate_queue(queue)?;
        let (core, _) = self.inner.lock_swept(&[queue])?;
        core.state
            .stats(queue)
            .map(|s| self.with_live(with_waiters(&core, s)))
            .ok_or_else(|| Error::NotFound(format!("queue {queue:?}")))
    }

    /// Stats of every queue, by name.
    pub fn list(&self) -> Vec<QueueStats> {
        self.list_prefix("")
    }

    /// Stats of the queues whose name starts with `prefix`, by name.
    pub fn list_prefix(&self, prefix: &str) -> Vec<QueueStats> {
        let core = self.inner.core.lock();
        let st = &core.state;
        st.queue_names_with(prefix)
            .filter_map(|q| st.stats(q))
            .map(|s| self.with_live(with_waiters(&core, s)))
            .collect()
    }

    /// Creates a queue, or fails with `AlreadyExists` when it is there (queue-sample's
    /// topic creation, Kestrel and httpmq declarations). A fan-out-only queue has no
    /// default subscription.
    pub async fn create(&self, queue: &str, opts: CreateOptions) -> Result<()> {
        validate_queue(queue)?;
        validate::description(opts.description.as_deref())?;
        let ticket = {
            let mut core = self.inner.core.lock();
            if core.state.has_queue(queue) {
                return Err(Error::AlreadyExists(format!("queue {queue:?}")));
            }
            let op = Op::Create {
                queue: queue.to_string(),
                created_at_ms: self.inner.clock.now_ms(),
                description: opts.description,
                fanout_only: opts.fanout_only,
            };
            self.inner.commit(&mut core, vec![op])?
        };
        self.inner.wait(ticket).await
    }

    /// Creates a queue with the default options unless it exists; returns whether it
    /// was created.
    pub async fn ensure(&self, queue: &str) -> Result<bool> {
        match self.create(queue, CreateOptions::default()).await {
            Ok(()) => Ok(true),
            Err(Error::AlreadyExists(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Sets or clears a queue's description; `NotFound` when absent.
    pub async fn describe(&self, queue: &str, description: Option<String>) -> Result<()> {
        validate_queue(queue)?;
        validate::description(description.as_deref())?;
        let op = Op::Describe {
            queue: queue.to_string(),
            description,
        };
        let (ticket, _) = self.inner.commit_on_queue(queue, op)?;
        self.inner.wait(ticket).await
    }

    /// The whole broker's counters: every queue's added up.
    pub fn totals(&self) -> BrokerStats {
        let mut totals = BrokerStats::default();
        self.list().iter().for_each(|q| totals.add(q));
        let kv = self.kv_stats();
        totals.kv_keys = kv.keys;
        totals.kv_bytes = kv.bytes;
        totals
    }

    /// The settings of a queue, or `NotFound`.
    pub fn settings(&self, queue: &str) -> Result<QueueSettings> {
        validate_queue(queue)?;
        let core = self.inner.core.lock();
        core.state
            .settings(queue)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("queue {queue:?}")))
    }

    /// Changes a queue's settings (creating it if needed); returns the new settings.
    pub async fn configure(&self, queue: &str, patch: SettingsPatch) -> Result<QueueSettings> {
        validate_queue(queue)?;
        validate::settings(queue, &patch)?;
        let (ticket, settings) = {
            let mut core = self.inner.core.lock();
            let mut settings = core.state.settings(queue).cloned().unwrap_or_default();
            patch.apply(&mut settings);
            let op = Op::settings(queue, &settings);
            let mut ticket = self.inner.commit(&mut core, vec![op])?;
            let now = self.inner.clock.now_ms();
            if let Some(op) = core.state.plan_retention(queue, now) {
                ticket = self.inner.commit(&mut core, vec![op])?;
            }
            (ticket, settings)
        };
        self.inner.wait(ticket).await?;
        Ok(settings)
    }

    /// Drops every message of the queue; ids keep rising. Returns how many the default
    /// subscription held, or `NotFound`.
    pub async fn purge(&self, queue: &str) -> Result<u64> {
        let op = Op::Purge {
            queue: queue.to_string(),
        };
        let (ticket, n) = match self.inner.commit_on_queue(queue, op.clone()) {
            Ok(done) => done,
            Err(e @ Error::NotFound(_)) => {
                // Live consumers may wait on a queue that does not exist yet: a purge
                // still ends their streams (RestMQ's `DELETE /q` finishes every one).
                self.inner.streams.notice(&op, |_| false);
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        self.inner.wait(ticket).await?;
        Ok(n)
    }

    /// Deletes a queue and its subscriptions; returns how many messages the default
    /// subscription held, or `NotFound` when absent.
    pub async fn drop_queue(&self, queue: &str) -> Result<u64> {
        let op = Op::DropQueue {
            queue: queue.to_string(),
        };
        let (ticket, n) = self.inner.commit_on_queue(queue, op)?;
        self.inner.wait(ticket).await?;
        Ok(n)
    }

    /// Creates a named subscription (idempotent: an existing one is left as it is and
    /// `false` returned).
    pub async fn subscribe(&self, queue: &str, name: &str, start: StartAt) -> Result<bool> {
        validate_queue(queue)?;
        validate_subscription(name)?;
        let ticket = {
            let mut core = self.inner.core.lock();
            if core.state.has_sub(queue, name) {
                return Ok(false);
            }
            let mut ops = vec![Op::Subscribe {
                queue: queue.to_string(),
                sub: name.to_string(),
                start,
            }];
            if core.state.is_log(queue) {
                ops.push(touch(queue, name, self.inner.clock.now_ms()));
            }
            self.inner.commit(&mut core, ops)?
        };
        self.inner.wait(ticket).await?;
        Ok(true)
    }

    /// Moves a subscription so it delivers retained messages from `id` on (its leases
    /// are dropped with it). On a log-retention queue this is a cursor move and the seek
    /// is the subscription's last action: a bare cursor ([`Broker::subscribe_cursor`])
    /// only takes the new position, whatever the backlog (queue-sample's
    /// `ack_message`), raised to the oldest retained id and kept as set past the end
    /// (nothing is read until the log grows past it); a consuming subscription is
    /// seeded from the log alone (O(log n) to find `id`, then one step per message from
    /// there), its position `id` clamped to the retained ids, so past the end is the
    /// end and every later push is delivered.
    pub async fn seek(&self, queue: &str, name: &str, id: u64) -> Result<()> {
        validate_queue(queue)?;
        validate_subscription(name)?;
        let ticket = {
            let mut core = self.inner.core.lock();
            require_any_sub(&core.state, queue, name)?;
            let mut ops = vec![Op::Seek {
                queue: queue.to_string(),
                sub: name.to_string(),
                id,
            }];
            if core.state.is_log(queue) {
                ops.push(touch(queue, name, self.inner.clock.now_ms()));
            }
            self.inner.commit(&mut core, ops)?
        };
        self.inner.wait(ticket).await
    }

    /// Moves every subscription of a log-retention queue (the default one included) so
    /// it delivers the retained messages from `id` on (`None` or 0: from the oldest
    /// retained one; past the end: only later pushes, and a bare cursor only once the
    /// log grows past `id`), as one logged op
    /// (queue-sample's `topic_reset`). Leases of the subscriptions are dropped with
    /// them; last-action times are left as they are. Returns how many subscriptions
    /// moved. `NotFound` for no such queue, `NotALog` for a queue that consumes.
    pub async fn reset(&self, queue: &str, id: Option<u64>) -> Result<u64> {
        validate_queue(queue)?;
        let (ticket, n) = {
            let mut core = self.inner.core.lock();
            log_queue(&core.state, queue)?;
            let op = Op::Reset {
                queue: queue.to_string(),
                id: id.unwrap_or(0),
            };
            let n = core.state.sub_count(queue);
            (self.inner.commit(&mut core, vec![op])?, n)
        };
        self.inner.wait(ticket).await?;
        Ok(n)
    }

    /// Creates a named subscription of a log-retention queue as a bare cursor: a
    /// position into the retained log and a last-action time, holding no messages
    /// (queue-sample's subscribers, Kafka's committed offsets). It is read with
    /// [`Broker::read_cursor`], which does not move it, and moved with
    /// [`Broker::seek`], which costs the same for any backlog; [`Broker::reset`] moves
    /// it too. Takes, leases, peeks and streams on it answer `IsACursor`. Idempotent
    /// like [`Broker::subscribe`] (`false` when a subscription of that name exists, of
    /// either kind). `NotFound` for no such queue, `NotALog` for a queue that consumes.
    pub async fn subscribe_cursor(&self, queue: &str, name: &str, start: StartAt) -> Result<bool> {
        validate_queue(queue)?;
        validate_subscription(name)?;
        let ticket = {
            let mut core = self.inner.core.lock();
            log_queue(&core.state, queue)?;
            if core.state.has_sub(queue, name) {
                return Ok(false);
            }
            let ops = vec![
                Op::Cursor {
                    queue: queue.to_string(),
                    sub: name.to_string(),
                    start,
                },
                touch(queue, name, self.inner.clock.now_ms()),
            ];
            self.inner.commit(&mut core, ops)?
        };
        self.inner.wait(ticket).await?;
        Ok(true)
    }

    /// Reads up to `max` (1 ..= `max_batch`) retained messages from cursor `name`'s
    /// position on, in id order, without moving it (queue-sample's `get_message`: the
    /// same messages come back until a seek moves past them). O(log n) to find the
    /// position. `NotFound` for no such queue or cursor (a consuming subscription of
    /// that name is read with take or lease instead), `NotALog` for a queue that no
    /// longer keeps a log.
    pub async fn read_cursor(&self, queue: &str, name: &str, max: usize) -> Result<LogPage> {
        validate_queue(queue)?;
        validate_subscription(name)?;
        self.log_page(queue, max, |st| {
            st.cursor_position(queue, name)
                .ok_or_else(|| Error::NotFound(format!("cursor {name:?} of {queue:?}")))
        })
    }

    /// Reads up to `max` (1 ..= `max_batch`) messages of a log-retention queue's
    /// retained log with ids from `from` on, in id order, without consuming anything
    /// (messages whose TTL passed are left out). The page's `next` is the id to ask for
    /// next. Costs O(log n) to find `from`. `NotFound` for no such queue, `NotALog` for
    /// a queue that consumes, `InvalidArgument` for `max` out of bounds.
    pub async fn read_log(&self, queue: &str, from: u64, max: usize) -> Result<LogPage> {
        validate_queue(queue)?;
        self.log_page(queue, max, |_| Ok(from))
    }

    /// A page of up to `max` retained messages of a log queue from the id `from`
    /// finds, under the same lock.
    fn log_page(
        &self,
        queue: &str,
        max: usize,
        from: impl FnOnce(&crate::state::State) -> Result<u64>,
    ) -> Result<LogPage> {
        let limit = self.inner.config.max_batch;
        if max == 0 || max > limit {
            return Err(Error::InvalidArgument(format!(
                "max must be 1 ..= {limit} (max_batch), not {max}"
            )));
        }
        let (pinned, from) = {
            let (core, now) = self.inner.lock_swept(&[queue])?;
            log_queue(&core.state, queue)?;
            let from = from(&core.state)?;
            let metas = core.state.log_from(queue, from, max, now);
            let pinned = metas
                .iter()
                .map(|m| (*m, 0, self.inner.storage.pin(m.loc)))
                .collect::<Vec<_>>();
            (pinned, from)
        };
        let next = pinned
            .last()
            .map_or(from, |(m, _, _)| m.id.saturating_add(1));
        let messages = super::delivery::load(pinned, None, DEFAULT_SUB);
        Ok(LogPage { messages, next })
    }

    /// Deletes a named subscription; `NotFound` when absent.
    pub async fn unsubscribe(&self, queue: &str, name: &str) -> Result<()> {
        let op = Op::Unsubscribe {
            queue: queue.to_string(),
            sub: name.to_string(),
        };
        let ticket = self.inner.commit_on_subscription(queue, name, op)?;
        self.inner.wait(ticket).await
    }

    /// Stats of a queue's named subscriptions.
    pub fn subscriptions(&self, queue: &str) -> Result<Vec<SubscriptionStats>> {
        validate_queue(queue)?;
        let (core, _) = self.inner.lock_swept(&[queue])?;
        core.state
            .subscriptions(queue)
            .ok_or_else(|| Error::NotFound(format!("queue {queue:?}")))
    }
}

/// A queue's stats with its waiting reads counted (they live beside the state).
impl Broker {
    fn with_live(&self, mut stats: QueueStats) -> QueueStats {
        stats.live_consumers = self.live_consumers(&stats.name);
        stats
    }
}

/// `NotFound` for no such queue, `NotALog` for one that does not keep a log.
fn log_queue(st: &crate::state::State, queue: &str) -> Result<()> {
    if !st.has_queue(queue) {
        return Err(Error::NotFound(format!("queue {queue:?}")));
    }
    if !st.is_log(queue) {
        return Err(Error::NotALog(format!("{queue:?}")));
    }
    Ok(())
}

fn with_waiters(core: &Core, mut stats: QueueStats) -> QueueStats {
    stats.waiters = core.waiters.count(&stats.name);
    stats
}
