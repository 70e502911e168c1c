//! The key/value namespace's vocabulary: what a face asks of [`crate::Broker`]'s `kv_*`
//! operations and what they answer (Redis strings, memcached's key/value mode,
//! MessageQueue's DB server, the native `/v1/kv` routes).
//!
//! Keys and queues share one namespace: a name is either a queue or a key, never both,
//! and an operation of the wrong kind fails with [`crate::Error::WrongType`]. Every
//! write is logged and durable like a push; values live in memory (as Redis and
//! memcached keep them) and in checkpoints, so the log segments that held them can be
//! reclaimed.

use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

use crate::model::Durability;

/// A value as a read returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KvValue {
    /// The value.
    pub value: Bytes,
    /// The client's opaque flags (memcached's 32-bit flags; 0 when none were given).
    pub flags: u32,
    /// Changes on every write of the key, and never repeats across keys: what a
    /// compare-and-swap names (memcached's `cas` unique, HTTP's `ETag`).
    pub version: u64,
    /// When the key expires (ms since the epoch); 0 never.
    pub expires_at_ms: u64,
}

/// What a key costs in `max_kv_bytes` beyond its key and value bytes: about what the
/// map's node share, the entry and the expiry index take.
pub const KV_ENTRY_OVERHEAD: u64 = 64;

/// When a written key expires.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Expiry {
    /// Never (a write without a TTL clears the key's old one, as Redis `SET` does).
    #[default]
    Never,
    /// Keep what the key had (Redis `KEEPTTL`; memcached `append`, `incr`).
    Keep,
    /// This long after the write (at most [`MAX_TTL`]).
    In(Duration),
    /// At this time, ms since the epoch; a time already past deletes the key.
    At(u64),
}

/// The longest TTL a key may be given (100 years): longer asks are refused.
pub const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// When a write happens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Condition {
    /// Always.
    #[default]
    Always,
    /// Only when the key is absent (Redis `NX`, memcached `add`).
    IfAbsent,
    /// Only when the key exists (Redis `XX`, memcached `replace`).
    IfPresent,
    /// Only when the key exists at this version (memcached `cas`).
    IfVersion(u64),
}

/// A write of a whole value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KvWrite {
    /// The new value.
    pub value: Bytes,
    /// The client's opaque flags.
    pub flags: u32,
    /// When it expires.
    pub expiry: Expiry,
    /// When the write happens.
    pub condition: Condition,
    /// The durability to wait for; `None` is the server's fsync policy.
    pub durability: Option<Durability>,
}

/// What a conditional write found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum WriteOutcome {
    /// Written; the key now has this version.
    Stored {
        /// The new version.
        version: u64,
    },
    /// Not written: the key exists ([`Condition::IfAbsent`]).
    Exists,
    /// Not written: the key is absent ([`Condition::IfPresent`], [`Condition::IfVersion`]).
    Missing,
    /// Not written: the key is at another version ([`Condition::IfVersion`]).
    VersionMismatch {
        /// The key's current version.
        current: u64,
    },
}

/// What a write reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KvWriteReply {
    /// Whether it was written, and if not why.
    pub outcome: WriteOutcome,
    /// The value the key had before (Redis `SET … GET`), if it had one.
    pub old: Option<KvValue>,
    /// True when an fsync covering the write completed before the reply.
    pub durable: bool,
}

/// How a counter is read and changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// Redis `INCRBY`/`DECRBY`: the value is a signed 64-bit decimal (an absent key
    /// counts as 0 and is created); a result outside `i64` is refused.
    Signed(i64),
    /// memcached `incr`/`decr`: the value is an unsigned 64-bit decimal and the key must
    /// exist; `incr` wraps at 2^64 and `decr` stops at 0, as memcached documents.
    Unsigned {
        /// The amount.
        by: u64,
        /// Decrement instead of increment.
        down: bool,
    },
}

/// A key's time to live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KvTtl {
    /// No such key (Redis `TTL` answers -2).
    Missing,
    /// The key never expires (-1).
    Never,
    /// Milliseconds left.
    Ms(u64),
}

/// What a name is, in the namespace queues and keys share (Redis `TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A queue.
    Queue,
    /// A key with a value.
    Value,
}

/// One page of a key scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KvPage {
    /// Keys found, in byte order.
    pub keys: Vec<String>,
    /// Where the next page starts (pass it as `after`); `None` when the scan is done.
    pub next: Option<String>,
}

/// A key scan: keys in byte order after `after`, with `prefix`, matching `pattern`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KvScan {
    /// Only keys that start with this.
    pub prefix: String,
    /// Only keys matching this Redis-style glob (`*`, `?`, `[a-z]`, `[^x]`, `\`).
    pub pattern: Option<String>,
    /// Start after this key (the previous page's `next`).
    pub after: Option<String>,
    /// Most keys looked at (not returned: a page may hold fewer when the pattern
    /// skips some), at most [`crate::BrokerConfig::max_batch`].
    pub max: usize,
}

/// The key/value namespace's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KvStats {
    /// Keys that exist (some may have expired but not yet been swept).
    pub keys: u64,
    /// Bytes of keys and values held, what `max_kv_bytes` bounds.
    pub bytes: u64,
    /// Keys with a TTL.
    pub expiring: u64,
    /// Keys removed because their TTL passed, since the broker started.
    pub expired: u64,
}

/// Whether `name` matches the Redis-style glob `pattern`: `*` any run, `?` one
/// character, `[abc]`, `[a-z]` and `[^a]` classes, `\` escapes the next character.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Iterative with one backtrack point per `*`: linear in practice, no recursion.
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ni));
                    pi += 1;
                    continue;
                }
                '?' => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                '[' => {
                    if let Some((matched, next)) = class_match(&p, pi, n[ni]) {
                        if matched {
                            pi = next;
                            ni += 1;
                            continue;
                        }
                    } else if n[ni] == '[' {
                        // An unclosed class is a literal '['.
                        pi += 1;
                        ni += 1;
                        continue;
                    }
                }
                '\\' if pi + 1 < p.len() => {
                    if p[pi + 1] == n[ni] {
                        pi += 2;
                        ni += 1;
                        continue;
                    }
                }
                c => {
                    if c == n[ni] {
                        pi += 1;
                        ni += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((sp, sn)) => {
                pi = sp + 1;
                ni = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Matches `c` against the class starting at `p[start] == '['`: whether it matched
/// and where the pattern goes on, or `None` when the class is not closed.
fn class_match(p: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = p.get(i) == Some(&'^');
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < p.len() {
        let mut lo = p[i];
        if lo == ']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if lo == '\\' && i + 1 < p.len() {
            i += 1;
            lo = p[i];
        }
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            let hi = p[i + 2];
            let (a, b) = if lo <= hi { (lo, hi) } else { (hi, lo) };
            matched |= a <= c && c <= b;
            i += 3;
        } else {
            matched |= lo == c;
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs_match_as_redis_documents() {
        assert!(glob_match("*", ""));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("h?llo", "hello"));
        assert!(glob_match("h?llo", "hallo"));
        assert!(!glob_match("h?llo", "hllo"));
        assert!(glob_match("h*llo", "hllo"));
        assert!(glob_match("h*llo", "heeeello"));
        assert!(glob_match("h[ae]llo", "hello"));
        assert!(!glob_match("h[ae]llo", "hillo"));
        assert!(glob_match("h[^e]llo", "hallo"));
        assert!(!glob_match("h[^e]llo", "hello"));
        assert!(glob_match("h[a-b]llo", "hbllo"));
        assert!(!glob_match("h[a-b]llo", "hcllo"));
        assert!(glob_match("user:*:name", "user:42:name"));
        assert!(!glob_match("user:*:name", "user:42:age"));
        assert!(glob_match("a\\*b", "a*b"));
        assert!(!glob_match("a\\*b", "axb"));
        assert!(glob_match("[]", "[]"));
        assert!(glob_match("*a*b*c*", "xxaxxbxxcxx"));
        assert!(!glob_match("*a*b*c*", "xxaxxcxxbxx"));
        // Many stars on a long name stay fast (one backtrack point).
        let long = "a".repeat(10_000);
        assert!(!glob_match("*a*a*a*a*a*b", &long));
    }
}
