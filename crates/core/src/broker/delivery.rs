//! Two-step delivery: a message counts as delivered only once it was handed to the
//! client's connection.
//!
//! A read reserves its messages (hidden from other readers, nothing logged) and hands
//! the face a [`Delivery`] with the bodies loaded. The face writes them out, then calls
//! [`Delivery::confirm`], which logs the removal (take) or the lease and makes it
//! durable. A `Delivery` dropped unconfirmed (the connection closed, a write failed,
//! the future was cancelled) returns its messages to exactly where they were, with
//! nothing logged. A crash between the write and the confirm means the message is
//! delivered again after restart: a take is at-least-once on a crash, never lost.

use std::sync::Arc;

use super::{Core, Inner, ReadRequest};
use crate::error::Result;
use crate::model::{Message, Receipt, SessionId};
use crate::state::{DeliveryId, Meta, ReadMode};
use crate::storage::{PinnedRecord, StorageError};

/// A message chosen by a read, its soft-get count, and its record pinned for reading
/// outside the lock.
pub(crate) type Pinned = (Meta, u16, Result<PinnedRecord, StorageError>);

/// Messages reserved for one client, waiting for [`Delivery::confirm`].
#[must_use = "an unconfirmed delivery returns its messages when dropped"]
pub struct Delivery {
    inner: Option<Arc<Inner>>,
    queue: String,
    sub: String,
    id: DeliveryId,
    mode: ReadMode,
    first_token: Option<u64>,
    session: Option<SessionId>,
    ids: Vec<u64>,
    pinned: Vec<Pinned>,
    messages: Vec<Message>,
    /// When the last message was pushed (for the queue's `last_age_ms`).
    last_created_at: u64,
    written: bool,
    settled: bool,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("queue", &self.queue)
            .field("sub", &self.sub)
            .field("ids", &self.ids)
            .field("settled", &self.settled)
            .finish_non_exhaustive()
    }
}

impl Delivery {
    /// A delivery with nothing in it (a read that found nothing).
    pub(super) fn empty(queue: &str) -> Self {
        Delivery {
            inner: None,
            queue: queue.to_string(),
            sub: String::new(),
            id: 0,
            mode: ReadMode::Take,
            first_token: None,
            session: None,
            ids: Vec::new(),
            pinned: Vec::new(),
            messages: Vec::new(),
            last_created_at: 0,
            written: false,
            settled: true,
        }
    }

    /// Reserves what `request` asks of `queue` for a new delivery, under the lock.
    /// Returns `None` when nothing is ready.
    pub(super) fn reserve(
        inner: &Inner,
        core: &mut Core,
        queue: &str,
        request: &ReadRequest,
        now: u64,
    ) -> Result<Option<Delivery>> {
        core.next_delivery += 1;
        let id = core.next_delivery;
        let mode = request.consume.mode(now);
        let sub = request.sub.as_str();
        let reserved = core
            .state
            .reserve(queue, sub, request.max, request.end, &mode, id, now);
        if let Some(op) = reserved.expired {
            inner.commit(core, vec![op])?;
        }
        if reserved.metas.is_empty() {
            return Ok(None);
        }
        let ids = reserved.metas.iter().map(|m| m.id).collect();
        let last_created_at = reserved.metas.last().map_or(0, |m| m.created_at_ms);
        Ok(Some(Delivery {
            inner: Some(inner.arc()),
            queue: queue.to_string(),
            sub: sub.to_string(),
            id,
            mode,
            first_token: reserved.first_token,
            session: request.session,
            ids,
            pinned: inner.pin(&core.state, queue, sub, &reserved.metas),
            messages: Vec::new(),
            last_created_at,
            written: false,
            settled: false,
        }))
    }

    /// Reads the pinned bodies (outside the lock).
    pub(super) fn load(&mut self) {
        let pinned = std::mem::take(&mut self.pinned);
        self.messages = load(pinned, self.first_token, &self.sub);
    }

    /// The queue the messages come from (the one that served a multi-queue wait).
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The messages, in delivery order. A record that could not be read is left out
    /// (logged and counted); it is consumed with the rest on confirm.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// Whether the read found nothing.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Notes that the messages were handed to the client's connection: if the
    /// delivery is dropped after this without a confirm, the messages are counted in
    /// `godwit_deliveries_unconfirmed_total` (the client may have seen them; they are
    /// queued again).
    pub fn written(&mut self) {
        self.written = true;
    }

    /// Confirms the delivery: logs the removal (take) or the lease and waits until it
    /// is durable. The log entry is made before the first await, so cancelling the
    /// returned future after it starts no longer returns the messages.
    pub async fn confirm(mut self) -> Result<()> {
        let ticket = self.settle()?;
        match &self.inner {
            Some(inner) => inner.wait(ticket).await,
            None => Ok(()),
        }
    }

    /// Confirms at once and hands back the messages: for in-process callers whose
    /// "write" is the return value itself.
    pub async fn into_messages(mut self) -> Result<Vec<Message>> {
        let messages = std::mem::take(&mut self.messages);
        self.confirm().await?;
        Ok(messages)
    }

    fn settle(&mut self) -> Result<crate::storage::Ticket> {
        self.settled = true;
        let Some(inner) = self.inner.clone() else {
            return Ok(crate::storage::Ticket::done());
        };
        let mut core = inner.core.lock();
        let ops = core.state.plan_confirm(
            &self.queue,
            &self.sub,
            &self.ids,
            self.id,
            &self.mode,
            self.first_token,
            inner.clock.now_ms(),
        );
        match inner.commit(&mut core, ops) {
            Ok(ticket) => {
                if let (Some(session), Some(first)) = (self.session, self.first_token) {
                    let now = inner.clock.now_ms();
                    let Core {
                        state, sessions, ..
                    } = &mut *core;
                    match sessions.get_mut(&session) {
                        Some(owned) => {
                            super::session::prune(owned, state, now);
                            for (i, id) in self.ids.iter().enumerate() {
                                let token = first.saturating_add(i as u64);
                                owned.push((self.queue.clone(), self.sub.clone(), *id, token));
                            }
                        }
                        // The session ended while this delivery was being written: its
                        // leases go back at once, as the session's others did.
                        None => {
                            for id in self.ids.iter().rev() {
                                if let Some(op) =
                                    core.state.plan_return(&self.queue, &self.sub, *id)
                                {
                                    if let Err(e) = inner.commit(&mut core, vec![op]) {
                                        tracing::warn!(error = %e, "returning a lease of an ended session failed");
                                    }
                                }
                            }
                        }
                    }
                }
                if !matches!(self.mode, ReadMode::Lease { .. }) {
                    let now = inner.clock.now_ms();
                    core.state
                        .note_consumed(&self.queue, self.last_created_at, now);
                }
                inner
                    .counters
                    .messages_out()
                    .increment(self.ids.len() as u64);
                Ok(ticket)
            }
            Err(e) => {
                self.release(&inner, &mut core);
                Err(e)
            }
        }
    }

    /// Returns the messages to where they were (under the lock) and serves waiters.
    fn release(&mut self, inner: &Inner, core: &mut Core) {
        self.settled = true;
        let n = core
            .state
            .unreserve(&self.queue, &self.sub, &self.ids, self.id);
        if self.written && n > 0 {
            metrics::counter!("godwit_deliveries_unconfirmed_total").increment(n as u64);
        }
        if n > 0 {
            inner.serve(core, &self.queue);
        }
    }

    /// Returns the messages while the caller already holds the lock (a hand-off to a
    /// waiter that has gone).
    pub(super) fn release_locked(mut self, core: &mut Core) {
        if let Some(inner) = self.inner.take() {
            self.release(&inner, core);
        }
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        if let Some(inner) = self.inner.take() {
            let mut core = inner.core.lock();
            self.release(&inner, &mut core);
        }
    }
}

/// Reads pinned records into messages; a record that cannot be read is logged, counted
/// and left out.
pub(crate) fn load(pinned: Vec<Pinned>, first_token: Option<u64>, sub: &str) -> Vec<Message> {
    let mut out = Vec::with_capacity(pinned.len());
    for (i, (meta, soft_gets, record)) in pinned.into_iter().enumerate() {
        match record.and_then(|r| r.read()) {
            Ok(rec) => out.push(Message {
                id: meta.id,
                body: rec.body,
                priority: meta.priority,
                created_at_ms: rec.created_at_ms,
                deliveries: u32::from(meta.deliveries),
                soft_gets: u32::from(soft_gets),
                headers: rec.headers,
                receipt: first_token.map(|t| Receipt {
                    token: t.saturating_add(i as u64),
                    id: meta.id,
                    sub: sub.to_string(),
                }),
            }),
            Err(e) => {
                tracing::error!(id = meta.id, error = %e, "message record unreadable");
                metrics::counter!("godwit_unreadable_records_total").increment(1);
            }
        }
    }
    out
}
