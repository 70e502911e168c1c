//! Blocking writers: a push to a full [`Overflow::Block`] queue waits for room.
//!
//! The planner refuses a push to a full queue whatever its overflow policy; for a
//! blocking queue the broker then waits until a commit may have made room and tries
//! again, until the push fits, its wait ends, or the broker stops waiting. Nothing is
//! logged while a push waits, so a client that leaves while blocked leaves no trace.
//! A commit costs one atomic load when no push is blocked.
//!
//! Blocked pushes to one queue retry in arrival order: each takes its queue's turn
//! (a fair lock, first come first served) before it retries, so the oldest blocked push
//! gets the room a commit makes, not whichever woke first.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

use super::pushes::Pushed;
use super::Broker;
use crate::error::Error;
use crate::model::{NewMessage, Overflow, PushOptions};

/// The pushes blocked on full queues, and the wake-up they wait for.
#[derive(Default)]
pub(super) struct Room {
    /// How many pushes are waiting; commits notify only when some are.
    blocked: AtomicUsize,
    /// Notified after every commit while a push is blocked: any commit may free room
    /// (a take, an ack, a purge, a trim, an expiry, a settings change).
    notify: Notify,
    /// Each queue's turn among its blocked pushes (a fair lock: arrival order), while
    /// some push to it is blocked.
    turns: parking_lot::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Room {
    /// Called after every commit: wakes the blocked pushes, if any, to try again.
    pub(super) fn changed(&self) {
        if self.blocked.load(Ordering::Acquire) > 0 {
            self.notify.notify_waiters();
        }
    }
}

/// A blocked push's place in its queue's line; leaving it drops the queue's entry
/// once nobody else holds it.
struct Turn<'a> {
    room: &'a Room,
    queue: &'a str,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl<'a> Turn<'a> {
    fn join(room: &'a Room, queue: &'a str) -> Self {
        let lock = room
            .turns
            .lock()
            .entry(queue.to_string())
            .or_default()
            .clone();
        Turn { room, queue, lock }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut turns = self.room.turns.lock();
        // The map's and this one: nobody else is in line.
        if Arc::strong_count(&self.lock) == 2 {
            turns.remove(self.queue);
        }
    }
}

/// Counts a blocked push while it lives.
struct Blocked<'a>(&'a Room);

impl<'a> Blocked<'a> {
    fn new(room: &'a Room) -> Self {
        room.blocked.fetch_add(1, Ordering::AcqRel);
        Blocked(room)
    }
}

impl Drop for Blocked<'_> {
    fn drop(&mut self) {
        self.0.blocked.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Broker {
    /// Pushes through the batching path; when the queue is full and blocks, waits for
    /// room and tries again (see the module doc).
    pub(super) async fn push_or_block(
        &self,
        queue: &str,
        messages: Vec<NewMessage>,
        hashes: Vec<u64>,
        opts: &PushOptions,
    ) -> Pushed {
        let inner = &self.inner;
        let first = inner
            .combined_push(queue, messages.clone(), hashes.clone(), opts.must_exist)
            .await;
        let Err(Error::QueueFull(_)) = &first else {
            return first;
        };
        let Ok(settings) = self.settings(queue) else {
            return first;
        };
        let too_big = settings
            .max_length
            .is_some_and(|max| messages.len() as u64 > max);
        if settings.overflow != Overflow::Block || too_big {
            return first;
        }
        let wait = opts
            .wait
            .map_or(inner.config.max_wait, |w| w.min(inner.config.max_wait));
        let deadline = tokio::time::Instant::now() + wait;
        let _blocked = Blocked::new(&inner.room);
        let mut stop = inner.stop.subscribe();
        let turn = Turn::join(&inner.room, queue);
        let _my_turn = tokio::select! {
            guard = turn.lock.lock() => guard,
            _ = tokio::time::sleep_until(deadline) => return first,
            _ = stop.changed() => return first,
        };
        loop {
            // Armed before the attempt: a commit between a refusal and the wait below
            // still wakes this push.
            let room = inner.room.notify.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            let attempt = inner
                .combined_push(queue, messages.clone(), hashes.clone(), opts.must_exist)
                .await;
            if !matches!(attempt, Err(Error::QueueFull(_))) || *stop.borrow() {
                return attempt;
            }
            tokio::select! {
                _ = room => {}
                _ = tokio::time::sleep_until(deadline) => return attempt,
                _ = stop.changed() => return attempt,
            }
        }
    }
}
