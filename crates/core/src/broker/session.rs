//! Sessions: leases owned by a client connection (Kestrel `/open`, Redis `BLMOVE`),
//! returned to the head of their queue the moment the connection ends.
//!
//! A session lease is recorded under the same lock as the `Lease` op that creates it
//! (when its delivery is confirmed), so no cancelled future can leave one behind
//! unowned; a delivery dropped before its confirm never became a lease at all.

use std::sync::Arc;

use super::{lease_consume, Inner, SessionLease};
use crate::error::Result;
use crate::model::{LeaseOptions, SessionId};
use crate::state::State;
use crate::Delivery;

/// A session's lease list is pruned of acked and expired leases from this length on.
const PRUNE_AT: usize = 64;

/// A client connection's ownership of leases. Dropping it (or [`Session::end`])
/// returns every lease it still holds to the head of its queue.
pub struct Session {
    inner: Arc<Inner>,
    id: SessionId,
    ended: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("id", &self.id).finish()
    }
}

impl Session {
    pub(super) fn new(inner: Arc<Inner>, id: SessionId) -> Self {
        Session {
            inner,
            id,
            ended: false,
        }
    }

    /// This session's id (unique within the process).
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// Leases like [`crate::Broker::lease`]; the leases belong to this session.
    pub async fn lease(&self, queue: &str, opts: LeaseOptions) -> Result<Delivery> {
        self.lease_any(&[queue], opts).await
    }

    /// Leases from the first of `queues` with a ready message, waiting on all of them.
    pub async fn lease_any(&self, queues: &[&str], opts: LeaseOptions) -> Result<Delivery> {
        let consume = lease_consume(&opts)?;
        crate::Broker {
            inner: self.inner.clone(),
        }
        .read(queues, &opts.read, consume, Some(self.id))
        .await
    }

    /// Ends the session now: its live leases return to the head (or dead-letter).
    /// Returns how many were returned.
    pub fn end(mut self) -> usize {
        self.release()
    }

    fn release(&mut self) -> usize {
        if self.ended {
            return 0;
        }
        self.ended = true;
        let inner = &self.inner;
        let mut core = inner.core.lock();
        let owned = core.sessions.remove(&self.id).unwrap_or_default();
        let now = inner.clock.now_ms();
        let mut n = 0;
        for (queue, sub, id, token) in owned.into_iter().rev() {
            if !core.state.live_lease(&queue, &sub, id, token, now) {
                continue;
            }
            if let Some(op) = core.state.plan_return(&queue, &sub, id) {
                // Nobody waits on this: the release is durable with the next sync, and
                // a crash before it returns the lease anyway (leases are not durable).
                match inner.commit(&mut core, vec![op]) {
                    Ok(_) => n += 1,
                    Err(e) => tracing::warn!(error = %e, "returning a session lease failed"),
                }
            }
        }
        n
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.release();
    }
}

/// Forgets leases that are no longer live once the list is long (amortised O(1)).
pub(super) fn prune(owned: &mut Vec<SessionLease>, st: &State, now: u64) {
    if owned.len() >= PRUNE_AT && owned.len() == owned.capacity() {
        owned.retain(|(q, s, id, t)| st.live_lease(q, s, *id, *t, now));
    }
}
