//! The broker's limits and defaults, read by the broker and by validation.

use std::time::Duration;

/// Limits and defaults of a broker.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Largest accepted message body in bytes.
    pub max_message_bytes: usize,
    /// Longest wait a read may ask for; longer asks are refused.
    pub max_wait: Duration,
    /// Most messages one read or batch may carry.
    pub max_batch: usize,
    /// Take a checkpoint once this many log bytes were written since the last one.
    pub checkpoint_bytes: u64,
    /// How often leases, delays, TTLs and retention are swept.
    pub tick: Duration,
    /// How often the log is checked for segments to reclaim or compact.
    pub maintenance: Duration,
    /// A sealed segment whose live bytes are below this fraction of its size has its
    /// live records copied forward so the segment can be deleted.
    pub compact_below: f64,
    /// Most live bytes copied forward per maintenance round.
    pub compact_budget: u64,
    /// Most bytes the key/value namespace may hold (keys, values and a fixed cost per
    /// key, [`crate::KV_ENTRY_OVERHEAD`]); writes that would pass it are refused.
    pub max_kv_bytes: u64,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: 1024 * 1024,
            max_wait: Duration::from_secs(30),
            max_batch: 1000,
            checkpoint_bytes: 64 * 1024 * 1024,
            tick: Duration::from_millis(100),
            maintenance: Duration::from_secs(5),
            compact_below: 0.5,
            compact_budget: 8 * 1024 * 1024,
            max_kv_bytes: 256 * 1024 * 1024,
        }
    }
}
