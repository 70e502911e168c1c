//! Push combining: concurrent pushes are applied by one thread at a time, in batches.
//!
//! Every push joins a queue; the first to find it empty leads the next batch. The leader
//! yields once, so that the pushes already ready on its worker (other connections'
//! requests) join the batch, then takes the state lock once and applies every queued
//! push in arrival order, each as its own atomic group with its own ticket, and hands
//! each its result. A leader dropped while it yields still combines (a drop guard), so
//! no push is left queued without one. With two runtime workers and 64 connections this
//! makes batches of about ten pushes instead of one or two. The followers wait
//! asynchronously for their result instead of parking a runtime thread on the lock, so
//! under load the lock changes hands once per batch, not once per push. Nothing about a
//! push changes: its ops, its group, its ordering among other operations (all under the
//! same lock) and its durability are the same as if it had taken the lock itself.
//!
//! The batch's appends are deferred ([`crate::Storage::append_deferred`]): the store
//! writes them together at the end of the batch, still under the lock, and only then
//! are readers served from them and the pushes answered. A failed batch write fails the
//! store, and every push of the batch is answered with the error.

use std::sync::atomic::Ordering;

use tokio::sync::oneshot;

use super::{Core, Inner};
use crate::error::Result;
use crate::model::{NewMessage, PushOutcome};
use crate::storage::Ticket;

/// A push's result: its ticket and outcomes once applied (not yet durable).
type Pushed = Result<(Ticket, Vec<PushOutcome>)>;

/// Where a push's result goes.
type Reply = oneshot::Sender<Pushed>;

/// A push waiting for the combiner.
pub(super) struct Pending {
    queue: String,
    messages: Vec<NewMessage>,
    reply: Reply,
}

/// Runs the combiner when dropped: the leader of a batch combines through it, whether
/// it finishes its wait or is dropped during it.
struct CombineOnDrop<'a>(&'a Inner);

impl Drop for CombineOnDrop<'_> {
    fn drop(&mut self) {
        self.0.combine();
    }
}

impl Inner {
    /// Queues a push and, when no other thread is combining, applies every queued push.
    /// Returns the push's ticket and outcomes once they are applied (not yet durable).
    pub(super) async fn combined_push(
        &self,
        queue: &str,
        messages: Vec<NewMessage>,
    ) -> Result<(Ticket, Vec<PushOutcome>)> {
        let (reply, result) = oneshot::channel();
        let leader = {
            let mut pushes = self.pushes.lock();
            pushes.push(Pending {
                queue: queue.to_string(),
                messages,
                reply,
            });
            pushes.len() == 1
        };
        if leader {
            // Let the pushes that are ready on this worker join the batch first. The
            // guard combines even if this future is dropped while it waits, so no
            // push is ever left queued without a leader.
            let guard = CombineOnDrop(self);
            tokio::task::yield_now().await;
            drop(guard);
        }
        result.await.unwrap_or_else(|_| {
            Err(crate::Error::Unavailable(
                "the push was dropped by the broker".into(),
            ))
        })
    }

    /// Applies queued pushes until the queue is empty or another thread combines.
    fn combine(&self) {
        loop {
            if self.combining.swap(true, Ordering::AcqRel) {
                // The combiner at work re-checks the queue after it stops.
                return;
            }
            loop {
                let batch = std::mem::take(&mut *self.pushes.lock());
                if batch.is_empty() {
                    break;
                }
                let replies = self.apply_batch(batch);
                for (reply, result) in replies {
                    let _ = reply.send(result);
                }
            }
            self.combining.store(false, Ordering::Release);
            // A push queued after the last look and before the flag fell found a
            // combiner at work and left: take it up.
            if self.pushes.lock().is_empty() {
                return;
            }
        }
    }

    /// Applies a batch under one hold of the lock, with its appends deferred: the store
    /// writes the whole batch at once before any reader is served from it or any push is
    /// answered. Returns each push's reply channel and result.
    fn apply_batch(&self, batch: Vec<Pending>) -> Vec<(Reply, Pushed)> {
        let mut core = self.core.lock();
        core.deferred = Some(Vec::new());
        let mut replies: Vec<_> = batch
            .into_iter()
            .map(|p| {
                let result = self.push_locked(&mut core, &p.queue, p.messages);
                (p.reply, result)
            })
            .collect();
        let mut ready = core.deferred.take().unwrap_or_default();
        match self.storage.flush_deferred().map_err(|e| self.fail(e)) {
            Ok(()) => {
                if !core.waiters.is_empty() {
                    ready.sort_unstable();
                    ready.dedup();
                    for queue in &ready {
                        self.serve(&mut core, queue);
                    }
                }
            }
            Err(e) => {
                // Applied but not written: the store has failed, and no push of the
                // batch may be acknowledged.
                let why = e.to_string();
                for (_, result) in &mut replies {
                    if result.is_ok() {
                        *result = Err(crate::Error::Unavailable(why.clone()));
                    }
                }
            }
        }
        replies
    }

    /// One push under the lock: plan, commit, and the retention it triggers.
    fn push_locked(
        &self,
        core: &mut Core,
        queue: &str,
        messages: Vec<NewMessage>,
    ) -> Result<(Ticket, Vec<PushOutcome>)> {
        let now = self.clock.now_ms();
        let (ops, outcomes) = core.state.plan_push(queue, messages, now)?;
        let mut ticket = self.commit(core, ops)?;
        if let Some(op) = core.state.plan_retention(queue, now) {
            ticket = self.commit(core, vec![op])?;
        }
        Ok((ticket, outcomes))
    }
}
