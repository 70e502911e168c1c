//! The planners: given the state and the time, which ops an operation needs. They
//! never mutate what the log knows; the only state they touch is transient (a
//! reservation, a lease token counter), which a restart forgets by design.

use std::collections::HashMap;

use bytes::Bytes;

use super::{DeliveryId, Meta, State};
use crate::error::{Error, Result};
use crate::model::*;
use crate::op::{Op, PushRecord, RemoveReason};

/// How a read consumes once its delivery is confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadMode {
    /// Remove.
    Take,
    /// Lease until the given deadline (ms).
    Lease {
        /// Deadline.
        until_ms: u64,
    },
    /// Move to another queue (or the same one), at one of its ends.
    Move {
        /// Destination queue.
        to: String,
        /// Joins the destination's head instead of its tail.
        at_head: bool,
    },
}

/// What a reservation picked.
#[derive(Debug, Default)]
pub(crate) struct Reserved {
    /// The messages, in delivery order (deliveries already counted).
    pub(crate) metas: Vec<Meta>,
    /// For a lease, the token of the first message; the next get consecutive ones.
    pub(crate) first_token: Option<u64>,
    /// Messages met on the way that expired or were trimmed: to be removed.
    pub(crate) expired: Option<Op>,
}

impl State {
    /// Decides the push ops for `messages` (validated; `hashes[i]` is the body hash of
    /// `messages[i]`) at `now`. Duplicates produce no op. May add an overflow `Remove`
    /// first when the queue drops its oldest. A unique push whose hash matches a held
    /// message asks `same_body` whether the stored body (at that location) equals its
    /// own: a hash match alone never refuses a push.
    pub fn plan_push(
        &self,
        queue: &str,
        messages: Vec<NewMessage>,
        hashes: &[u64],
        now: u64,
        same_body: &mut dyn FnMut(crate::op::Location, &Bytes) -> Result<bool>,
    ) -> Result<(Vec<Op>, Vec<PushOutcome>)> {
        let q = self.queues.get(queue);
        let default_settings = QueueSettings::default();
        let settings = q.map_or(&default_settings, |q| &q.settings);
        let mut next_id = self.next_id_of(queue);
        let mut seen_in_batch: HashMap<&str, u64> = HashMap::new();
        // Bodies added by this batch, by hash: a later unique push in it compares here.
        let mut added: HashMap<u64, Vec<(u64, &Bytes)>> = HashMap::new();
        let any_unique = messages.iter().any(|m| m.unique);
        let mut outcomes = Vec::with_capacity(messages.len());
        let mut pushes = Vec::with_capacity(messages.len());
        let mut new_bytes = 0u64;
        for (i, m) in messages.iter().enumerate() {
            if let Some(limit) = settings.max_message_bytes {
                if m.body.len() as u64 > limit {
                    return Err(Error::TooLarge {
                        size: m.body.len(),
                        limit: usize::try_from(limit).unwrap_or(usize::MAX),
                    });
                }
            }
            let hash = hashes
                .get(i)
                .copied()
                .unwrap_or_else(|| crate::op::body_hash(&m.body));
            if let Some(key) = m.dedup_id.as_deref() {
                let earlier = seen_in_batch.get(key).copied().or_else(|| {
                    q.and_then(|q| {
                        q.held_dedup.get(key).copied().or_else(|| {
                            q.dedup
                                .get(key)
                                .filter(|(_, until)| *until > now)
                                .map(|(id, _)| *id)
                        })
                    })
                });
                if let Some(id) = earlier {
                    outcomes.push(PushOutcome {
                        id,
                        duplicate: true,
                    });
                    continue;
                }
                seen_in_batch.insert(key, next_id);
            }
            if m.unique {
                let mut equal = added
                    .get(&hash)
                    .and_then(|v| v.iter().find(|(_, b)| **b == m.body))
                    .map(|(id, _)| *id);
                if equal.is_none() {
                    if let Some(sub) = q.and_then(|q| q.default_sub()) {
                        for held in sub.with_hash(hash) {
                            if same_body(held.loc, &m.body)? {
                                equal = Some(held.id);
                                break;
                            }
                        }
                    }
                }
                if let Some(id) = equal {
                    outcomes.push(PushOutcome {
                        id,
                        duplicate: true,
                    });
                    continue;
                }
            }
            if any_unique {
                added.entry(hash).or_default().push((next_id, &m.body));
            }
            outcomes.push(PushOutcome {
                id: next_id,
                duplicate: false,
            });
            new_bytes = new_bytes.saturating_add(m.body.len() as u64);
            let not_before = now.saturating_add(duration_ms(m.delay));
            // A zero TTL has expired at once (RestMQ's `ttl` ≤ 0): it is acknowledged
            // and swept, never delivered.
            let expires = m.ttl.map_or(0, |t| {
                if t.is_zero() {
                    not_before.max(1)
                } else {
                    not_before.saturating_add(duration_ms(Some(t)).max(1))
                }
            });
            pushes.push(Op::Push(PushRecord {
                queue: queue.to_string(),
                id: next_id,
                created_at_ms: now,
                priority: m.priority,
                not_before_ms: not_before,
                expires_at_ms: expires,
                dedup_id: m.dedup_id.clone(),
                headers: m.headers.clone(),
                body: m.body.clone(),
                at_head: m.at_head,
                body_hash: Some(hash),
            }));
            next_id = next_id.saturating_add(1);
        }
        let mut ops = Vec::new();
        if let Some(sub) = q.and_then(|q| q.default_sub()) {
            let count = sub.len().saturating_add(pushes.len() as u64);
            let bytes = sub.bytes().saturating_add(new_bytes);
            let over_len = settings
                .max_length
                .map_or(0, |max| count.saturating_sub(max));
            let over_bytes = settings
                .max_bytes
                .map_or(0, |max| bytes.saturating_sub(max));
            if over_len > 0 || over_bytes > 0 {
                match settings.overflow {
                    // A blocking queue's push waits in the broker and is planned again.
                    Overflow::Reject | Overflow::Block => {
                        return Err(Error::QueueFull(queue.to_string()))
                    }
                    Overflow::DropOldest => {
                        let mut need_bytes = over_bytes;
                        // The oldest ready messages sit near the front of their lanes.
                        let window = (over_len as usize).saturating_add(64);
                        let mut oldest: Vec<&Meta> = sub
                            .ready_in_order()
                            .filter(|m| !sub.is_reserved(m.id))
                            .take(window.saturating_mul(PRIORITY_LEVELS))
                            .collect();
                        oldest.sort_by_key(|m| m.id);
                        let mut ids = Vec::new();
                        for m in oldest {
                            if ids.len() as u64 >= over_len && need_bytes == 0 {
                                break;
                            }
                            need_bytes = need_bytes.saturating_sub(u64::from(m.body_len));
                            ids.push(m.id);
                        }
                        if (ids.len() as u64) < over_len || need_bytes > 0 {
                            return Err(Error::QueueFull(queue.to_string()));
                        }
                        ops.push(Op::Remove {
                            queue: queue.to_string(),
                            sub: super::DEFAULT_SUB.to_string(),
                            ids,
                            reason: RemoveReason::Overflow,
                        });
                    }
                }
            }
        }
        ops.extend(pushes);
        Ok((ops, outcomes))
    }

    /// The `Trim` op log retention needs now, if any.
    pub fn plan_retention(&self, queue: &str, now: u64) -> Option<Op> {
        let q = self.queues.get(queue)?;
        let Retention {
            mode: RetentionMode::Log,
            max_age_ms,
            max_bytes,
            max_count,
        } = q.settings.retention
        else {
            return None;
        };
        let mut drop = 0usize;
        let mut bytes = q.log_bytes;
        let total = q.log.len();
        for (i, m) in q.log.iter().enumerate() {
            let remaining = (total - i) as u64;
            let too_old = max_age_ms.is_some_and(|age| m.created_at_ms.saturating_add(age) <= now);
            let too_many = max_count.is_some_and(|max| remaining > max);
            let too_big = max_bytes.is_some_and(|max| bytes > max);
            if !(too_old || too_many || too_big) {
                break;
            }
            bytes = bytes.saturating_sub(u64::from(m.body_len));
            drop = i + 1;
        }
        if drop == 0 {
            return None;
        }
        let below = q.log.iter().nth(drop).map_or(q.next_id, |m| m.id);
        Some(Op::Trim {
            queue: queue.to_string(),
            below,
        })
    }

    /// Reserves up to `max` ready messages of a subscription, from `end`, for
    /// `delivery`: they are hidden from other readers until the delivery is confirmed
    /// (see [`State::plan_confirm`]) or ends ([`State::unreserve`]). A paused queue
    /// reserves nothing.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn reserve(
        &mut self,
        queue: &str,
        sub: &str,
        max: usize,
        end: End,
        mode: &ReadMode,
        delivery: DeliveryId,
        now: u64,
    ) -> Reserved {
        let first_token = self.next_token;
        let Some(q) = self.queues.get_mut(queue) else {
            return Reserved::default();
        };
        if q.settings.paused {
            return Reserved::default();
        }
        let floor = q.log_floor;
        let Some(s) = q.subs.get_mut(sub) else {
            return Reserved::default();
        };
        let mut expired = Vec::new();
        let mut metas = Vec::new();
        for m in s.ready_from(end) {
            if metas.len() >= max {
                break;
            }
            if s.is_reserved(m.id) {
                continue;
            }
            if m.expired(now) || m.id < floor {
                expired.push(m.id);
            } else {
                let mut meta = *m;
                meta.deliveries = meta.deliveries.saturating_add(1);
                metas.push(meta);
            }
        }
        s.reserve(&metas, delivery);
        let first_token = match mode {
            ReadMode::Lease { .. } if !metas.is_empty() => {
                self.next_token = first_token.saturating_add(metas.len() as u64);
                Some(first_token)
            }
            _ => None,
        };
        let expired = (!expired.is_empty()).then(|| Op::Remove {
            queue: queue.to_string(),
            sub: sub.to_string(),
            ids: expired,
            reason: RemoveReason::Expired,
        });
        Reserved {
            metas,
            first_token,
            expired,
        }
    }

    /// The ops that confirm a delivery: a `Remove` (take) or `Lease` of those of `ids`
    /// still reserved by `delivery` (a purge or drop in between leaves fewer).
    /// On a log-retention queue a named subscription's read is also its last action:
    /// an `Op::Touch` at `now` follows.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn plan_confirm(
        &self,
        queue: &str,
        sub: &str,
        ids: &[u64],
        delivery: DeliveryId,
        mode: &ReadMode,
        first_token: Option<u64>,
        now: u64,
    ) -> Vec<Op> {
        let Some(q) = self.queues.get(queue) else {
            return Vec::new();
        };
        let Some(s) = q.subs.get(sub) else {
            return Vec::new();
        };
        let still = s.reserved_by(ids, delivery);
        if still.is_empty() {
            return Vec::new();
        }
        let mut ops = self.plan_confirm_ops(queue, sub, ids, still, mode, first_token);
        if q.is_log() && !sub.is_empty() {
            ops.push(touch(queue, sub, now));
        }
        ops
    }

    /// [`State::plan_confirm`]'s ops for the messages `still` reserved.
    fn plan_confirm_ops(
        &self,
        queue: &str,
        sub: &str,
        ids: &[u64],
        still: Vec<u64>,
        mode: &ReadMode,
        first_token: Option<u64>,
    ) -> Vec<Op> {
        match mode {
            ReadMode::Take => vec![Op::Remove {
                queue: queue.to_string(),
                sub: sub.to_string(),
                ids: still,
                reason: RemoveReason::Taken,
            }],
            ReadMode::Move { to, at_head } => {
                // New ids rise in delivery order; several moved to the head go last
                // first, so they keep that order there too.
                let first_id = self.next_id_of(to);
                let mut ops: Vec<Op> = still
                    .into_iter()
                    .enumerate()
                    .map(|(i, id)| Op::MoveTo {
                        queue: queue.to_string(),
                        sub: sub.to_string(),
                        id,
                        to: to.clone(),
                        new_id: first_id.saturating_add(i as u64),
                        at_head: *at_head,
                    })
                    .collect();
                if *at_head {
                    ops.reverse();
                }
                ops
            }
            &ReadMode::Lease { until_ms } => {
                // Token i belongs to ids[i] (the receipts already written say so): one
                // op per run of messages still reserved keeps every token in place.
                let first = first_token.unwrap_or(0);
                let mut ops: Vec<Op> = Vec::new();
                let mut run: Vec<u64> = Vec::new();
                let mut run_token = 0;
                for (i, id) in ids.iter().enumerate() {
                    if still.contains(id) {
                        if run.is_empty() {
                            run_token = first.saturating_add(i as u64);
                        }
                        run.push(*id);
                    } else if !run.is_empty() {
                        ops.push(lease_op(
                            queue,
                            sub,
                            std::mem::take(&mut run),
                            until_ms,
                            run_token,
                        ));
                    }
                }
                if !run.is_empty() {
                    ops.push(lease_op(queue, sub, run, until_ms, run_token));
                }
                ops
            }
        }
    }

    /// Ends `delivery`'s reservation of `ids` without consuming: the messages are
    /// visible again in their place. Returns how many were still reserved.
    pub(crate) fn unreserve(
        &mut self,
        queue: &str,
        sub: &str,
        ids: &[u64],
        delivery: DeliveryId,
    ) -> usize {
        self.queues
            .get_mut(queue)
            .and_then(|q| q.subs.get_mut(sub))
            .map_or(0, |s| s.unreserve(ids, delivery))
    }

    /// The op that returns a leased message: a `Release`, or a dead-letter `Move` once
    /// it reached the queue's max deliveries.
    pub fn plan_return(&self, queue: &str, sub: &str, id: u64) -> Option<Op> {
        let q = self.queues.get(queue)?;
        let lease = q.subs.get(sub)?.lease_of(id)?;
        let dead = q
            .settings
            .max_deliveries
            .is_some_and(|max| u32::from(lease.meta.deliveries) >= max);
        if dead {
            let to = q.dead_letter_queue(queue);
            let new_id = self.next_id_of(&to);
            Some(Op::Move {
                queue: queue.to_string(),
                sub: sub.to_string(),
                id,
                to,
                new_id,
                dead_letter: true,
            })
        } else {
            Some(Op::Release {
                queue: queue.to_string(),
                sub: sub.to_string(),
                ids: vec![id],
            })
        }
    }

    /// Leases past their deadline at `now`, as `(sub, id)`.
    pub fn expired_leases(&self, queue: &str, now: u64) -> Vec<(String, u64)> {
        let Some(q) = self.queues.get(queue) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (name, s) in &q.subs {
            out.extend(
                s.deadlines()
                    .take_while(|(until, _)| *until <= now)
                    .map(|(_, id)| (name.clone(), id)),
            );
        }
        out
    }

    /// The `Promote` ops for delayed messages due at `now`.
    pub fn plan_promote(&self, queue: &str, now: u64) -> Vec<Op> {
        let Some(q) = self.queues.get(queue) else {
            return Vec::new();
        };
        q.subs
            .iter()
            .filter_map(|(name, s)| {
                let ids = s.due(now);
                (!ids.is_empty()).then(|| Op::Promote {
                    queue: queue.to_string(),
                    sub: name.clone(),
                    ids,
                })
            })
            .collect()
    }

    /// The `Remove` ops for ready messages whose TTL passed at `now` (found through the
    /// expiry index, not by scanning).
    pub fn plan_expire(&self, queue: &str, now: u64) -> Vec<Op> {
        let Some(q) = self.queues.get(queue) else {
            return Vec::new();
        };
        q.subs
            .iter()
            .filter_map(|(name, s)| {
                let ids = s.expired_ready(now);
                (!ids.is_empty()).then(|| Op::Remove {
                    queue: queue.to_string(),
                    sub: name.clone(),
                    ids,
                    reason: RemoveReason::Expired,
                })
            })
            .collect()
    }
}

/// The op that records a named subscription's last action at `now`.
pub(crate) fn touch(queue: &str, sub: &str, now: u64) -> Op {
    Op::Touch {
        queue: queue.to_string(),
        sub: sub.to_string(),
        at_ms: now,
    }
}

fn lease_op(queue: &str, sub: &str, ids: Vec<u64>, until_ms: u64, first_token: u64) -> Op {
    Op::Lease {
        queue: queue.to_string(),
        sub: sub.to_string(),
        ids,
        until_ms,
        first_token,
    }
}

/// Milliseconds of an optional duration, saturating (validation bounds it far below).
fn duration_ms(d: Option<std::time::Duration>) -> u64 {
    d.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use bytes::Bytes;

    use super::*;
    use crate::op::Location;

    /// A record whose body hash is forced, as a collision would make it.
    fn pushed(id: u64, body: &'static str, hash: u64) -> Op {
        Op::Push(PushRecord {
            queue: "q".into(),
            id,
            created_at_ms: 1,
            priority: DEFAULT_PRIORITY,
            not_before_ms: 1,
            expires_at_ms: 0,
            dedup_id: None,
            headers: BTreeMap::new(),
            body: Bytes::from_static(body.as_bytes()),
            at_head: false,
            body_hash: Some(hash),
        })
    }

    fn unique(body: &'static str) -> NewMessage {
        NewMessage {
            unique: true,
            ..NewMessage::new(body)
        }
    }

    #[test]
    fn a_hash_collision_never_refuses_a_unique_push_or_counts_as_a_member() {
        let mut st = State::default();
        let mut stored: HashMap<Location, Bytes> = HashMap::new();
        for (id, body) in [(1, "apple"), (2, "pear")] {
            let loc = Location {
                segment: 1,
                offset: id as u32 * 100,
                len: 50,
            };
            let op = pushed(id, body, 7 << 32);
            if let Op::Push(rec) = &op {
                stored.insert(loc, rec.body.clone());
            }
            st.apply(&op, Some(loc));
        }
        let mut same = |loc: Location, body: &Bytes| Ok(stored.get(&loc) == Some(body));
        // Same hash, different body: added.
        let (ops, out) = st
            .plan_push("q", vec![unique("plum")], &[7 << 32], 2, &mut same)
            .unwrap();
        assert_eq!(
            out[0],
            PushOutcome {
                id: 3,
                duplicate: false
            }
        );
        assert_eq!(ops.len(), 1);
        // Same hash and body as the second candidate: refused, naming it.
        let (ops, out) = st
            .plan_push("q", vec![unique("pear")], &[7 << 32], 2, &mut same)
            .unwrap();
        assert_eq!(
            out[0],
            PushOutcome {
                id: 2,
                duplicate: true
            }
        );
        assert!(ops.is_empty());
        // Within one batch: the second equal body is the first's duplicate, even with
        // a hash shared by a stored message with another body.
        let (_, out) = st
            .plan_push(
                "q",
                vec![unique("fig"), unique("fig")],
                &[7 << 32, 7 << 32],
                2,
                &mut same,
            )
            .unwrap();
        assert_eq!(
            out,
            vec![
                PushOutcome {
                    id: 3,
                    duplicate: false
                },
                PushOutcome {
                    id: 3,
                    duplicate: true
                }
            ]
        );
        // The index returns both colliding messages as candidates, nothing more.
        let ids: Vec<u64> = st
            .with_hash("q", "", 7 << 32)
            .iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(ids, vec![1, 2]);
        assert!(st.with_hash("q", "", 8 << 32).is_empty());
        // The index keys on the top half of the hash: a hash differing below it is
        // still a candidate, and the body comparison decides.
        let low: Vec<u64> = st
            .with_hash("q", "", (7 << 32) | 5)
            .iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(low, vec![1, 2]);
    }
}
