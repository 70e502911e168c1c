//! Helpers shared by the store's integration tests.

use godwit_core::storage::PushRecord;
use godwit_core::Op;

/// A plain push of `body` to queue `q` as message `id`: no headers, delay, TTL or dedup.
pub fn push(id: u64, body: impl Into<bytes::Bytes>) -> Op {
    Op::Push(PushRecord {
        queue: "q".into(),
        id,
        created_at_ms: 1,
        priority: 4,
        not_before_ms: 1,
        expires_at_ms: 0,
        dedup_id: None,
        headers: Default::default(),
        body: body.into(),
        at_head: false,
        body_hash: None,
    })
}
