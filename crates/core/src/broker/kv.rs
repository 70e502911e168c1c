//! The key/value namespace: the operations of Redis strings, memcached's key/value
//! mode and the native `/v1/kv` routes, planned under the lock like every other change
//! and durable like a push (see `state/kv.rs` for where values live).

use bytes::Bytes;

use super::{Broker, Inner};
use crate::error::{Error, Result};
use crate::kv::*;
use crate::name::validate_key;
use crate::op::Op;
use crate::storage::Ticket;

impl Broker {
    /// The value of `key`, if it has one; `WrongType` when it is a queue.
    pub async fn kv_get(&self, key: &str) -> Result<Option<KvValue>> {
        validate_key(key)?;
        let core = self.inner.core.lock();
        core.state.kv_get(key, self.inner.clock.now_ms())
    }

    /// The values of `keys`, in order: `None` for a key with no value or a queue (Redis
    /// `MGET`), at most [`crate::BrokerConfig::max_batch`] keys.
    pub async fn kv_get_many(&self, keys: &[String]) -> Result<Vec<Option<KvValue>>> {
        self.inner.batch_bound(keys.len())?;
        keys.iter().try_for_each(|k| validate_key(k))?;
        let core = self.inner.core.lock();
        let now = self.inner.clock.now_ms();
        Ok(keys.iter().map(|k| core.state.kv_peek(k, now)).collect())
    }

    /// Writes a whole value, if its condition holds; the reply says whether it did,
    /// the value it replaced and how durable the write is.
    pub async fn kv_set(&self, key: &str, write: KvWrite) -> Result<KvWriteReply> {
        self.inner.check_write(key, write.value.len())?;
        validate_expiry(write.expiry)?;
        let durability = write.durability;
        let (ticket, (outcome, old)) = self
            .inner
            .commit_kv(|st, now| st.plan_kv_write(key, &write, now))?;
        let durable = self.inner.settle(ticket, durability).await?;
        Ok(KvWriteReply {
            outcome,
            old,
            durable,
        })
    }

    /// Writes several values in one atomic, durable step (Redis `MSET`); with
    /// `if_none_exist`, only when none of the keys has a value (`MSETNX`). Returns
    /// whether they were written. At most [`crate::BrokerConfig::max_batch`] items.
    pub async fn kv_set_many(
        &self,
        items: Vec<(String, KvWrite)>,
        if_none_exist: bool,
    ) -> Result<bool> {
        self.inner.batch_bound(items.len())?;
        for (key, write) in &items {
            self.inner.check_write(key, write.value.len())?;
            validate_expiry(write.expiry)?;
        }
        let ticket = {
            let mut core = self.inner.core.lock();
            let now = self.inner.clock.now_ms();
            for (key, _) in &items {
                if core.state.has_queue(key) {
                    return Err(Error::WrongType(format!(
                        "{key:?} is a queue, not a key with a value"
                    )));
                }
                if if_none_exist && core.state.has_key(key, now) {
                    return Ok(false);
                }
            }
            // A key given twice ends with its last value, as in Redis.
            let mut last: Vec<&(String, KvWrite)> = Vec::with_capacity(items.len());
            for item in items.iter().rev() {
                if !last.iter().any(|l| l.0 == item.0) {
                    last.push(item);
                }
            }
            last.reverse();
            // Each key's change is planned against the state before the batch; the
            // keys are distinct, so the changes in size add up, and each write gets
            // its own version.
            let before = i128::from(core.state.kv_stats().bytes);
            let mut after = before;
            let mut ops = Vec::with_capacity(last.len());
            for (key, write) in last {
                let planned = core.state.plan_kv_write(key, write, now)?;
                after += i128::from(planned.bytes_after) - before;
                if let Some(mut op) = planned.op {
                    if let Op::KvSet { version, .. } = &mut op {
                        *version = version.saturating_add(ops.len() as u64);
                    }
                    ops.push(op);
                }
            }
            if after > before {
                self.inner
                    .kv_room(u64::try_from(after).unwrap_or(u64::MAX))?;
            }
            let mut ticket = Ticket::done();
            if !ops.is_empty() {
                ticket = self.inner.commit(&mut core, ops)?;
            }
            ticket
        };
        let durability = items.first().and_then(|(_, w)| w.durability);
        self.inner.settle(ticket, durability).await?;
        Ok(true)
    }

    /// Changes a counter; returns its new value, or `None` when an unsigned counter's
    /// key is absent (memcached `NOT_FOUND`).
    pub async fn kv_counter(&self, key: &str, counter: Counter) -> Result<Option<i128>> {
        self.inner.check_write(key, 0)?;
        let (ticket, value) = self
            .inner
            .commit_kv(|st, now| st.plan_kv_counter(key, counter, now))?;
        self.inner.settle(ticket, None).await?;
        Ok(value)
    }

    /// Appends `data` to a value (`front`: prepends it); returns the new length, or
    /// `None` when the key is absent and `create` is false (memcached `append`; Redis
    /// `APPEND` creates).
    pub async fn kv_append(
        &self,
        key: &str,
        data: Bytes,
        front: bool,
        create: bool,
    ) -> Result<Option<u64>> {
        self.inner.check_write(key, data.len())?;
        let max = self.inner.config.max_message_bytes;
        let (ticket, len) = self.inner.commit_kv(|st, now| {
            let planned = st.plan_kv_append(key, &data, front, create, now)?;
            match planned.answer {
                Some(len) if len > max as u64 => Err(Error::TooLarge {
                    size: usize::try_from(len).unwrap_or(usize::MAX),
                    limit: max,
                }),
                _ => Ok(planned),
            }
        })?;
        self.inner.settle(ticket, None).await?;
        Ok(len)
    }

    /// Changes when a key expires (Redis `EXPIRE`, `PERSIST` with [`Expiry::Never`],
    /// memcached `touch`; a time already past deletes it). Returns whether it exists.
    pub async fn kv_expire(&self, key: &str, expiry: Expiry) -> Result<bool> {
        validate_key(key)?;
        validate_expiry(expiry)?;
        let (ticket, found) = self
            .inner
            .commit_kv(|st, now| st.plan_kv_expire(key, expiry, now))?;
        self.inner.settle(ticket, None).await?;
        Ok(found)
    }

    /// A key's time to live.
    pub async fn kv_ttl(&self, key: &str) -> Result<KvTtl> {
        validate_key(key)?;
        let core = self.inner.core.lock();
        core.state.kv_ttl(key, self.inner.clock.now_ms())
    }

    /// Deletes those of `keys` that have values (queues are left alone: a face that
    /// deletes either kind drops them itself); returns how many. At most
    /// [`crate::BrokerConfig::max_batch`] keys.
    pub async fn kv_delete(&self, keys: &[String]) -> Result<u64> {
        self.inner.batch_bound(keys.len())?;
        keys.iter().try_for_each(|k| validate_key(k))?;
        let (ticket, n) = self
            .inner
            .commit_kv(|st, now| Ok(st.plan_kv_delete(keys, now)))?;
        self.inner.settle(ticket, None).await?;
        Ok(n)
    }

    /// Deletes every key; returns how many there were.
    pub async fn kv_flush(&self) -> Result<u64> {
        let (ticket, n) = self.inner.commit_kv(|st, now| Ok(st.plan_kv_flush(now)))?;
        self.inner.settle(ticket, None).await?;
        Ok(n)
    }

    /// One page of keys, in byte order (see [`KvScan`]).
    pub async fn kv_scan(&self, scan: KvScan) -> Result<KvPage> {
        if scan.max == 0 || scan.max > self.inner.config.max_batch {
            return Err(Error::InvalidArgument(format!(
                "a scan looks at 1 to {} keys",
                self.inner.config.max_batch
            )));
        }
        let core = self.inner.core.lock();
        Ok(core.state.kv_scan(&scan, self.inner.clock.now_ms()))
    }

    /// What `name` is, if anything (Redis `TYPE`, `EXISTS`).
    pub fn kind_of(&self, name: &str) -> Option<Kind> {
        let core = self.inner.core.lock();
        core.state.kind_of(name, self.inner.clock.now_ms())
    }

    /// The key/value namespace's counters.
    pub fn kv_stats(&self) -> KvStats {
        self.inner.core.lock().state.kv_stats()
    }
}

/// Refuses a TTL over [`MAX_TTL`].
fn validate_expiry(expiry: Expiry) -> Result<()> {
    match expiry {
        Expiry::In(d) if d > MAX_TTL => Err(Error::InvalidArgument(format!(
            "a TTL is at most {} ms",
            MAX_TTL.as_millis()
        ))),
        _ => Ok(()),
    }
}

impl Inner {
    /// Refuses a batch over `max_batch` (or an empty one).
    fn batch_bound(&self, n: usize) -> Result<()> {
        if n == 0 || n > self.config.max_batch {
            return Err(Error::InvalidArgument(format!(
                "1 to {} keys at once",
                self.config.max_batch
            )));
        }
        Ok(())
    }

    /// What every write checks before the lock: the key, the value's size, the disk.
    fn check_write(&self, key: &str, value_len: usize) -> Result<()> {
        validate_key(key)?;
        let limit = self.config.max_message_bytes;
        if value_len > limit {
            return Err(Error::TooLarge {
                size: value_len,
                limit,
            });
        }
        if let Some(why) = self.storage.disk_low() {
            return Err(Error::DiskFull(why));
        }
        Ok(())
    }

    /// `KvFull` when the namespace would hold more than `max_kv_bytes`.
    fn kv_room(&self, bytes_after: u64) -> Result<()> {
        if bytes_after > self.config.max_kv_bytes {
            return Err(Error::KvFull(format!(
                "holding {bytes_after} bytes would pass max_kv_bytes ({})",
                self.config.max_kv_bytes
            )));
        }
        Ok(())
    }

    /// Plans one key/value change under the lock and commits it; returns the ticket
    /// and the planner's answer. A write that would grow the namespace past its limit
    /// is refused (one that shrinks it never is).
    fn commit_kv<T>(
        &self,
        plan: impl FnOnce(&crate::state::State, u64) -> Result<crate::state::Planned<T>>,
    ) -> Result<(Ticket, T)> {
        let mut core = self.core.lock();
        let now = self.clock.now_ms();
        let planned = plan(&core.state, now)?;
        if planned.bytes_after > core.state.kv_stats().bytes {
            self.kv_room(planned.bytes_after)?;
        }
        let ticket = match planned.op {
            Some(op) => self.commit(&mut core, vec![op])?,
            None => Ticket::done(),
        };
        Ok((ticket, planned.answer))
    }
}
