//! The key/value namespace in memory: every live key with its value, flags, version and
//! expiry, and the planners of its writes.
//!
//! Values are held here (and in checkpoints), not read back from the log: a key's
//! reads, counters and appends need its value under the lock, as Redis and memcached
//! keep theirs in memory. So no log segment is needed for a value once a checkpoint
//! holds it, and reclamation and compaction never have to know about keys. The map is
//! persistent (`imbl`): a checkpoint's snapshot shares it instead of copying it under
//! the lock.
//!
//! Expiry needs no log record: a key whose time has passed is absent to every read and
//! plan at once, and the sweeper drops it from memory; replay brings back the same
//! write with the same expiry time, which is just as absent.

use std::collections::BTreeSet;
use std::ops::Bound;

use bytes::Bytes;
use imbl::OrdMap;
use serde::{Deserialize, Serialize};

use super::State;
use crate::error::{Error, Result};
use crate::kv::*;
use crate::op::Op;

/// One key's value as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub(crate) value: Bytes,
    pub(crate) flags: u32,
    pub(crate) version: u64,
    /// 0 never expires.
    pub(crate) expires_at_ms: u64,
}

impl Entry {
    fn live(&self, now: u64) -> bool {
        self.expires_at_ms == 0 || now < self.expires_at_ms
    }

    fn to_value(&self) -> KvValue {
        KvValue {
            value: self.value.clone(),
            flags: self.flags,
            version: self.version,
            expires_at_ms: self.expires_at_ms,
        }
    }
}

fn cost(key: &str, value_len: usize) -> u64 {
    (key.len() as u64)
        .saturating_add(value_len as u64)
        .saturating_add(KV_ENTRY_OVERHEAD)
}

/// Every key, with what is derived from them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Kv {
    entries: OrdMap<String, Entry>,
    /// The version the next write gets.
    next_version: u64,
    /// Derived: [`cost`] summed over `entries`.
    #[serde(skip)]
    bytes: u64,
    /// Derived: `(expires_at_ms, key)` of every key with a TTL.
    #[serde(skip)]
    expiring: BTreeSet<(u64, String)>,
    /// Keys swept since the start (not kept across restarts).
    #[serde(skip)]
    expired: u64,
}

impl Kv {
    /// Rebuilds what is derived after a checkpoint load.
    pub(crate) fn rebuild(&mut self) {
        self.bytes = 0;
        self.expiring.clear();
        for (k, e) in self.entries.iter() {
            self.bytes = self.bytes.saturating_add(cost(k, e.value.len()));
            if e.expires_at_ms != 0 {
                self.expiring.insert((e.expires_at_ms, k.clone()));
            }
        }
    }

    /// A copy to checkpoint: the map is shared, not copied.
    pub(crate) fn snapshot(&self) -> Kv {
        Kv {
            entries: self.entries.clone(),
            next_version: self.next_version,
            ..Kv::default()
        }
    }

    fn live(&self, key: &str, now: u64) -> Option<&Entry> {
        self.entries.get(key).filter(|e| e.live(now))
    }

    fn insert(&mut self, key: &str, entry: Entry) {
        self.next_version = self.next_version.max(entry.version.saturating_add(1));
        if entry.expires_at_ms != 0 {
            self.expiring.insert((entry.expires_at_ms, key.to_string()));
        }
        self.bytes = self.bytes.saturating_add(cost(key, entry.value.len()));
        if let Some(old) = self.entries.insert(key.to_string(), entry) {
            self.forget(key, &old);
        }
    }

    fn forget(&mut self, key: &str, old: &Entry) {
        self.bytes = self.bytes.saturating_sub(cost(key, old.value.len()));
        if old.expires_at_ms != 0 {
            self.expiring.remove(&(old.expires_at_ms, key.to_string()));
        }
    }

    pub(crate) fn remove(&mut self, key: &str) -> bool {
        match self.entries.remove(key) {
            Some(old) => {
                self.forget(key, &old);
                true
            }
            None => false,
        }
    }

    fn set_expiry(&mut self, key: &str, expires_at_ms: u64) {
        let Some(entry) = self.entries.get(key).cloned() else {
            return;
        };
        if entry.expires_at_ms != 0 {
            self.expiring
                .remove(&(entry.expires_at_ms, key.to_string()));
        }
        if expires_at_ms != 0 {
            self.expiring.insert((expires_at_ms, key.to_string()));
        }
        self.entries.insert(
            key.to_string(),
            Entry {
                expires_at_ms,
                ..entry
            },
        );
    }

    fn clear(&mut self) {
        self.entries = OrdMap::new();
        self.expiring.clear();
        self.bytes = 0;
    }

    /// Drops every key whose TTL has passed at `now`; returns how many.
    pub(crate) fn sweep(&mut self, now: u64) -> u64 {
        let mut n = 0;
        while let Some((at, key)) = self.expiring.first().cloned() {
            if at > now {
                break;
            }
            self.expiring.pop_first();
            if self
                .entries
                .get(&key)
                .is_some_and(|e| e.expires_at_ms == at)
            {
                if let Some(old) = self.entries.remove(&key) {
                    self.bytes = self.bytes.saturating_sub(cost(&key, old.value.len()));
                }
                n += 1;
            }
        }
        self.expired = self.expired.saturating_add(n);
        n
    }

    pub(crate) fn stats(&self) -> KvStats {
        KvStats {
            keys: self.entries.len() as u64,
            bytes: self.bytes,
            expiring: self.expiring.len() as u64,
            expired: self.expired,
        }
    }

    /// Applies a key/value op; false for any other op.
    pub(crate) fn apply(&mut self, op: &Op) -> bool {
        match op {
            Op::KvSet {
                key,
                value,
                flags,
                version,
                expires_at_ms,
            } => self.insert(
                key,
                Entry {
                    value: value.clone(),
                    flags: *flags,
                    version: *version,
                    expires_at_ms: *expires_at_ms,
                },
            ),
            Op::KvExpire { key, expires_at_ms } => self.set_expiry(key, *expires_at_ms),
            Op::KvDelete { keys } => {
                for key in keys {
                    self.remove(key);
                }
            }
            Op::KvFlush => self.clear(),
            _ => return false,
        }
        true
    }
}

/// The expiry time a write gives a key that had `old` (0 never).
fn expiry_time(expiry: Expiry, old: Option<&Entry>, now: u64) -> u64 {
    match expiry {
        Expiry::Never => 0,
        Expiry::Keep => old.map_or(0, |e| e.expires_at_ms),
        Expiry::In(d) => {
            let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
            now.saturating_add(ms.max(1))
        }
        Expiry::At(at) => at.max(1),
    }
}

/// A write planned: the op to commit (none when nothing changes), and what to answer.
pub(crate) struct Planned<T> {
    pub(crate) op: Option<Op>,
    pub(crate) answer: T,
    /// Bytes the namespace holds after the op.
    pub(crate) bytes_after: u64,
}

impl State {
    /// `WrongType` when `name` is a queue.
    fn not_a_queue(&self, name: &str) -> Result<()> {
        if self.has_queue(name) {
            Err(Error::WrongType(format!(
                "{name:?} is a queue, not a key with a value"
            )))
        } else {
            Ok(())
        }
    }

    /// Whether `name` is a key with a value at `now`.
    pub fn has_key(&self, name: &str, now: u64) -> bool {
        self.kv.live(name, now).is_some()
    }

    /// What `name` is at `now`, if anything.
    pub fn kind_of(&self, name: &str, now: u64) -> Option<Kind> {
        if self.has_queue(name) {
            Some(Kind::Queue)
        } else if self.has_key(name, now) {
            Some(Kind::Value)
        } else {
            None
        }
    }

    /// The value of `key` at `now`; `WrongType` when it is a queue.
    pub fn kv_get(&self, key: &str, now: u64) -> Result<Option<KvValue>> {
        self.not_a_queue(key)?;
        Ok(self.kv.live(key, now).map(Entry::to_value))
    }

    /// The value of `key` at `now`, or `None` when it has none or is a queue (Redis
    /// `MGET` answers nil for a name of another type).
    pub fn kv_peek(&self, key: &str, now: u64) -> Option<KvValue> {
        self.kv.live(key, now).map(Entry::to_value)
    }

    /// The key/value namespace's counters.
    pub fn kv_stats(&self) -> KvStats {
        self.kv.stats()
    }

    /// Drops keys whose TTL has passed (no log record: see the module doc).
    pub fn kv_sweep(&mut self, now: u64) -> u64 {
        self.kv.sweep(now)
    }

    /// Bytes the namespace would hold once `key` has a value of `new_len` bytes (or,
    /// with `None`, no value).
    fn bytes_with(&self, key: &str, new_len: Option<usize>) -> u64 {
        let old_cost = self
            .kv
            .entries
            .get(key)
            .map_or(0, |e| cost(key, e.value.len()));
        let new_cost = new_len.map_or(0, |n| cost(key, n));
        self.kv
            .bytes
            .saturating_sub(old_cost)
            .saturating_add(new_cost)
    }

    fn set_op(&self, key: &str, value: Bytes, flags: u32, expires_at_ms: u64) -> (Op, u64) {
        let version = self.kv.next_version.max(1);
        let op = Op::KvSet {
            key: key.to_string(),
            value,
            flags,
            version,
            expires_at_ms,
        };
        (op, version)
    }

    /// Plans a whole-value write.
    pub(crate) fn plan_kv_write(
        &self,
        key: &str,
        write: &KvWrite,
        now: u64,
    ) -> Result<Planned<(WriteOutcome, Option<KvValue>)>> {
        self.not_a_queue(key)?;
        let old = self.kv.live(key, now);
        let old_value = old.map(Entry::to_value);
        let refused = match (write.condition, old) {
            (Condition::IfAbsent, Some(_)) => Some(WriteOutcome::Exists),
            (Condition::IfPresent | Condition::IfVersion(_), None) => Some(WriteOutcome::Missing),
            (Condition::IfVersion(v), Some(e)) if e.version != v => {
                Some(WriteOutcome::VersionMismatch { current: e.version })
            }
            _ => None,
        };
        if let Some(outcome) = refused {
            return Ok(Planned {
                op: None,
                answer: (outcome, old_value),
                bytes_after: self.kv.bytes,
            });
        }
        let expires_at_ms = expiry_time(write.expiry, old, now);
        if expires_at_ms != 0 && expires_at_ms <= now {
            // Already past: the write leaves no key (Redis `SET … PXAT <past>`).
            let op = self.kv.entries.contains_key(key).then(|| Op::KvDelete {
                keys: vec![key.to_string()],
            });
            let bytes_after = self.bytes_with(key, None);
            return Ok(Planned {
                op,
                answer: (
                    WriteOutcome::Stored {
                        version: self.kv.next_version.max(1),
                    },
                    old_value,
                ),
                bytes_after,
            });
        }
        let bytes_after = self.bytes_with(key, Some(write.value.len()));
        let (op, version) = self.set_op(key, write.value.clone(), write.flags, expires_at_ms);
        Ok(Planned {
            op: Some(op),
            answer: (WriteOutcome::Stored { version }, old_value),
            bytes_after,
        })
    }

    /// Plans a counter change; answers the new value (`None`: an unsigned counter's key
    /// is absent).
    pub(crate) fn plan_kv_counter(
        &self,
        key: &str,
        counter: Counter,
        now: u64,
    ) -> Result<Planned<Option<i128>>> {
        self.not_a_queue(key)?;
        let old = self.kv.live(key, now);
        let text = |e: &Entry| std::str::from_utf8(&e.value).ok().map(str::to_owned);
        let new: i128 = match counter {
            Counter::Signed(by) => {
                let current: i64 = match old {
                    None => 0,
                    // Strict, as Redis reads it: no sign but '-', no spaces.
                    Some(e) => text(e)
                        .filter(|t| !t.starts_with('+'))
                        .and_then(|t| t.parse().ok())
                        .ok_or_else(|| {
                            Error::NotAnInteger("value is not an integer or out of range".into())
                        })?,
                };
                let next = current.checked_add(by).ok_or_else(|| {
                    Error::Overflow("increment or decrement would overflow".into())
                })?;
                i128::from(next)
            }
            Counter::Unsigned { by, down } => {
                let Some(e) = old else {
                    return Ok(Planned {
                        op: None,
                        answer: None,
                        bytes_after: self.kv.bytes,
                    });
                };
                // memcached reads the leading digits (a value of "12abc" is refused).
                let current: u64 = text(e)
                    .and_then(|t| t.trim_end_matches([' ', '\r', '\n']).parse().ok())
                    .ok_or_else(|| {
                        Error::NotAnInteger(
                            "cannot increment or decrement non-numeric value".into(),
                        )
                    })?;
                let next = if down {
                    current.saturating_sub(by)
                } else {
                    current.wrapping_add(by)
                };
                i128::from(next)
            }
        };
        let value = Bytes::from(new.to_string());
        let (flags, expires_at_ms) = old.map_or((0, 0), |e| (e.flags, e.expires_at_ms));
        let bytes_after = self.bytes_with(key, Some(value.len()));
        let (op, _) = self.set_op(key, value, flags, expires_at_ms);
        Ok(Planned {
            op: Some(op),
            answer: Some(new),
            bytes_after,
        })
    }

    /// Plans an append (or, with `front`, a prepend); answers the new length (`None`:
    /// the key is absent and `create` is false).
    pub(crate) fn plan_kv_append(
        &self,
        key: &str,
        data: &[u8],
        front: bool,
        create: bool,
        now: u64,
    ) -> Result<Planned<Option<u64>>> {
        self.not_a_queue(key)?;
        let old = self.kv.live(key, now);
        if old.is_none() && !create {
            return Ok(Planned {
                op: None,
                answer: None,
                bytes_after: self.kv.bytes,
            });
        }
        let empty = Bytes::new();
        let current = old.map_or(&empty, |e| &e.value);
        let mut value = Vec::with_capacity(current.len().saturating_add(data.len()));
        if front {
            value.extend_from_slice(data);
            value.extend_from_slice(current);
        } else {
            value.extend_from_slice(current);
            value.extend_from_slice(data);
        }
        let len = value.len() as u64;
        let (flags, expires_at_ms) = old.map_or((0, 0), |e| (e.flags, e.expires_at_ms));
        let bytes_after = self.bytes_with(key, Some(value.len()));
        let (op, _) = self.set_op(key, Bytes::from(value), flags, expires_at_ms);
        Ok(Planned {
            op: Some(op),
            answer: Some(len),
            bytes_after,
        })
    }

    /// Plans a TTL change (Redis `EXPIRE`/`PERSIST`, memcached `touch`); answers whether
    /// the key exists. [`Expiry::Keep`] changes nothing.
    pub(crate) fn plan_kv_expire(
        &self,
        key: &str,
        expiry: Expiry,
        now: u64,
    ) -> Result<Planned<bool>> {
        self.not_a_queue(key)?;
        let Some(old) = self.kv.live(key, now) else {
            return Ok(Planned {
                op: None,
                answer: false,
                bytes_after: self.kv.bytes,
            });
        };
        let at = expiry_time(expiry, Some(old), now);
        let op = if at != 0 && at <= now {
            Some(Op::KvDelete {
                keys: vec![key.to_string()],
            })
        } else if at != old.expires_at_ms {
            Some(Op::KvExpire {
                key: key.to_string(),
                expires_at_ms: at,
            })
        } else {
            None
        };
        Ok(Planned {
            op,
            answer: true,
            bytes_after: self.kv.bytes,
        })
    }

    /// A key's time to live at `now`.
    pub fn kv_ttl(&self, key: &str, now: u64) -> Result<KvTtl> {
        self.not_a_queue(key)?;
        Ok(match self.kv.live(key, now) {
            None => KvTtl::Missing,
            Some(e) if e.expires_at_ms == 0 => KvTtl::Never,
            Some(e) => KvTtl::Ms(e.expires_at_ms - now),
        })
    }

    /// Plans deleting those of `keys` that are live keys (queues are left alone);
    /// answers how many.
    pub(crate) fn plan_kv_delete(&self, keys: &[String], now: u64) -> Planned<u64> {
        let mut live: Vec<String> = Vec::new();
        for k in keys {
            if self.kv.live(k, now).is_some() && !live.contains(k) {
                live.push(k.clone());
            }
        }
        let n = live.len() as u64;
        Planned {
            op: (!live.is_empty()).then_some(Op::KvDelete { keys: live }),
            answer: n,
            bytes_after: self.kv.bytes,
        }
    }

    /// Plans dropping every key; answers how many were live.
    pub(crate) fn plan_kv_flush(&self, now: u64) -> Planned<u64> {
        let n = self.kv.entries.values().filter(|e| e.live(now)).count() as u64;
        Planned {
            op: (!self.kv.entries.is_empty()).then_some(Op::KvFlush),
            answer: n,
            bytes_after: 0,
        }
    }

    /// One page of a key scan, looking at most `scan.max` keys.
    pub fn kv_scan(&self, scan: &KvScan, now: u64) -> KvPage {
        let lower = match &scan.after {
            Some(after) if after.as_str() >= scan.prefix.as_str() => Bound::Excluded(after.clone()),
            _ => Bound::Included(scan.prefix.clone()),
        };
        let mut keys = Vec::new();
        let mut last: Option<&String> = None;
        let mut more = false;
        let in_prefix = self
            .kv
            .entries
            .range((lower, Bound::<String>::Unbounded))
            .take_while(|(k, _)| k.starts_with(&scan.prefix));
        for (looked, (k, e)) in in_prefix.enumerate() {
            if looked == scan.max {
                more = true;
                break;
            }
            last = Some(k);
            let matches = scan.pattern.as_deref().is_none_or(|p| glob_match(p, k));
            if matches && e.live(now) {
                keys.push(k.clone());
            }
        }
        KvPage {
            keys,
            next: if more { last.cloned() } else { None },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(key: &str, value: &'static [u8], version: u64, expires_at_ms: u64) -> Op {
        Op::KvSet {
            key: key.into(),
            value: Bytes::from_static(value),
            flags: 0,
            version,
            expires_at_ms,
        }
    }

    #[test]
    fn a_checkpoint_carries_the_keys_after_the_queues_and_one_without_them_still_loads() {
        let mut st = State::default();
        st.apply(&set("a", b"1", 1, 0), None);
        st.apply(&set("b", b"22", 2, 5_000), None);
        let mut bytes = Vec::new();
        st.snapshot().write_checkpoint(&mut bytes).unwrap();
        let back = State::from_checkpoint(&bytes).unwrap();
        assert_eq!(
            back.kv_peek("b", 0).unwrap().value,
            Bytes::from_static(b"22")
        );
        assert_eq!(back.kv_stats(), st.kv_stats());
        assert_eq!(back.kv.next_version, 3);
        // A checkpoint of the queues' state with nothing after it has no keys.
        let old = postcard::to_allocvec(&st).unwrap();
        let back = State::from_checkpoint(&old).unwrap();
        assert_eq!(back.kv_stats().keys, 0);
    }

    #[test]
    fn the_sweep_drops_expired_keys_and_keeps_the_accounting() {
        let mut st = State::default();
        st.apply(&set("a", b"1", 1, 100), None);
        st.apply(&set("b", b"1", 2, 200), None);
        // Rewritten with a later expiry: the old index entry must not drop it.
        st.apply(&set("a", b"1", 3, 300), None);
        assert_eq!(st.kv_sweep(250), 1);
        assert!(st.kv_peek("a", 250).is_some());
        assert_eq!(st.kv_stats().keys, 1);
        assert_eq!(st.kv_stats().bytes, cost("a", 1));
        assert_eq!(st.kv_sweep(300), 1);
        assert_eq!(
            st.kv_stats(),
            KvStats {
                expired: 2,
                ..KvStats::default()
            }
        );
    }
}
