//! The value index from outside: membership and removal by body. Candidates come from
//! the index under the lock; their stored bodies are compared after it.

use std::collections::BTreeSet;

use super::{require_sub, sub_name, Broker};
use crate::error::{Error, Result};
use crate::model::*;
use crate::name::validate_queue;
use crate::op::{body_hash, Op, RemoveReason};

impl Broker {
    /// Whether the subscription holds a message (ready, delayed or in flight) whose
    /// body equals `body` (Redis `SISMEMBER`). Candidates are found by hash and their
    /// stored bodies compared, outside the lock.
    pub async fn contains(
        &self,
        queue: &str,
        subscription: Option<&str>,
        body: &[u8],
    ) -> Result<bool> {
        Ok(!self
            .equal_bodies(queue, subscription, body, true)
            .await?
            .is_empty())
    }

    /// Removes up to `count.unsigned_abs()` ready messages whose body equals `body`,
    /// from the head when `count > 0`, from the tail when `count < 0`, every one when
    /// `count == 0` (Redis `LREM`); returns how many. Leased and delayed messages are
    /// left alone.
    pub async fn remove_value(
        &self,
        queue: &str,
        subscription: Option<&str>,
        body: &[u8],
        count: i64,
    ) -> Result<u64> {
        let sub = sub_name(subscription)?;
        let equal = self.equal_bodies(queue, subscription, body, false).await?;
        if equal.is_empty() {
            return Ok(0);
        }
        let end = if count < 0 { End::Tail } else { End::Head };
        let max = match count {
            0 => usize::MAX,
            n => usize::try_from(n.unsigned_abs()).unwrap_or(usize::MAX),
        };
        let (ticket, n) = {
            let (mut core, now) = self.inner.lock_swept(&[queue])?;
            // Ids name immutable bodies: those compared equal still are, wherever
            // they are now.
            let ids = core.state.ready_among(queue, sub, &equal, end, max, now);
            let n = ids.len() as u64;
            let ops = if ids.is_empty() {
                Vec::new()
            } else {
                vec![Op::Remove {
                    queue: queue.to_string(),
                    sub: sub.to_string(),
                    ids,
                    reason: RemoveReason::Deleted,
                }]
            };
            (self.inner.commit(&mut core, ops)?, n)
        };
        self.inner.wait(ticket).await?;
        Ok(n)
    }

    /// Ids of held messages whose stored body equals `body` (the first one only when
    /// `first` is set): candidates by hash under the lock, bodies read after it.
    async fn equal_bodies(
        &self,
        queue: &str,
        subscription: Option<&str>,
        body: &[u8],
        first: bool,
    ) -> Result<BTreeSet<u64>> {
        validate_queue(queue)?;
        let sub = sub_name(subscription)?;
        let hash = body_hash(body);
        let pinned = {
            let (core, _) = self.inner.lock_swept(&[queue])?;
            require_sub(&core.state, queue, sub)?;
            let metas = core.state.with_hash(queue, sub, hash);
            self.inner.pin(&core.state, queue, sub, &metas)
        };
        let mut equal = BTreeSet::new();
        for (meta, _, record) in pinned {
            let record = record.and_then(|r| r.read()).map_err(Error::Storage)?;
            if record.body == body {
                equal.insert(meta.id);
                if first {
                    break;
                }
            }
        }
        Ok(equal)
    }
}
