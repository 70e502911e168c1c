//! List operations by position and id: range reads, soft gets, delete by id.

use super::{delivery, require_sub, sub_name, Broker};
use crate::error::{Error, Result};
use crate::model::*;
use crate::name::validate_queue;
use crate::op::{Op, RemoveReason};

impl Broker {
    /// The ready messages at positions `start..=stop` of the delivery order, without
    /// consuming them (Redis `LRANGE`/`LINDEX`): 0 is the head, -1 the tail, and out of
    /// range positions are clipped. At most the broker's `max_batch` messages per call.
    /// Each position costs its distance from the nearer end.
    pub async fn range(
        &self,
        queue: &str,
        subscription: Option<&str>,
        start: i64,
        stop: i64,
    ) -> Result<Vec<Message>> {
        validate_queue(queue)?;
        let sub = sub_name(subscription)?;
        let pinned = {
            let (core, now) = self.inner.lock_swept(&[queue])?;
            require_sub(&core.state, queue, sub)?;
            let len = core.state.visible(queue, sub);
            let Some((first, last)) = positions(start, stop, len) else {
                return Ok(Vec::new());
            };
            let max = self.inner.config.max_batch as u64;
            if last - first >= max {
                return Err(Error::InvalidArgument(format!(
                    "a range of {} messages is more than {max} (max_batch): ask for less at a time",
                    last - first + 1
                )));
            }
            let metas = core.state.range(queue, sub, first, last, now);
            self.inner.pin(&core.state, queue, sub, &metas)
        };
        Ok(delivery::load(pinned, None, sub))
    }

    /// Returns the message at the head, ready and unreserved, without consuming it, and
    /// durably raises its soft-get counter (RestMQ's JSON `get`): repeated soft gets
    /// return the same message with the counter 1, 2, 3…
    pub async fn soft_get(
        &self,
        queue: &str,
        subscription: Option<&str>,
    ) -> Result<Option<Message>> {
        validate_queue(queue)?;
        let sub = sub_name(subscription)?;
        let (ticket, pinned) = {
            let (mut core, now) = self.inner.lock_swept(&[queue])?;
            require_sub(&core.state, queue, sub)?;
            let Some(meta) = core.state.peek(queue, sub, 1, End::Head, now).pop() else {
                return Ok(None);
            };
            let op = Op::SoftGet {
                queue: queue.to_string(),
                sub: sub.to_string(),
                id: meta.id,
            };
            let ticket = self.inner.commit(&mut core, vec![op])?;
            // Pinned after the op is applied: the count includes this soft get.
            (ticket, self.inner.pin(&core.state, queue, sub, &[meta]))
        };
        self.inner.wait(ticket).await?;
        Ok(delivery::load(pinned, None, sub).pop())
    }

    /// Deletes messages by id wherever they are in the subscription (ready, delayed or
    /// leased); returns how many it held. Ids it does not hold are ignored.
    pub async fn delete(
        &self,
        queue: &str,
        subscription: Option<&str>,
        ids: &[u64],
    ) -> Result<u64> {
        validate_queue(queue)?;
        let sub = sub_name(subscription)?;
        if ids.len() > self.inner.config.max_batch {
            return Err(Error::InvalidArgument(format!(
                "{} ids is more than {} (max_batch)",
                ids.len(),
                self.inner.config.max_batch
            )));
        }
        let (ticket, n) = {
            let (mut core, _) = self.inner.lock_swept(&[queue])?;
            if !core.state.has_queue(queue) {
                return Err(Error::NotFound(format!("queue {queue:?}")));
            }
            require_sub(&core.state, queue, sub)?;
            let held = core.state.held_ids(queue, sub, ids);
            let n = held.len() as u64;
            let ops = if held.is_empty() {
                Vec::new()
            } else {
                vec![Op::Remove {
                    queue: queue.to_string(),
                    sub: sub.to_string(),
                    ids: held,
                    reason: RemoveReason::Deleted,
                }]
            };
            (self.inner.commit(&mut core, ops)?, n)
        };
        self.inner.wait(ticket).await?;
        Ok(n)
    }
}

/// Redis-style positions (negative ones count from the tail, -1 the last) normalized
/// against a length and clipped: `None` when the range is empty.
fn positions(start: i64, stop: i64, len: u64) -> Option<(u64, u64)> {
    let len_i = i64::try_from(len).unwrap_or(i64::MAX);
    let norm = |i: i64| if i < 0 { len_i.saturating_add(i) } else { i };
    let first = norm(start).max(0);
    let last = norm(stop).min(len_i.saturating_sub(1));
    if first > last || first >= len_i {
        return None;
    }
    // Both are in 0..len here.
    Some((u64::try_from(first).ok()?, u64::try_from(last).ok()?))
}
