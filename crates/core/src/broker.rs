//! The async facade every face calls: validates, decides ops under one lock, hands them
//! to the store, applies them to the state, and answers once they are durable.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::error::Result;
use crate::model::*;
use crate::storage::Storage;

/// Limits and defaults of a broker.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Largest accepted message body in bytes.
    pub max_message_bytes: usize,
    /// Longest wait a read may ask for; longer asks are cut to this.
    pub max_wait: Duration,
    /// Most messages one read may return.
    pub max_batch: usize,
    /// Take a checkpoint once this many log bytes were written since the last one.
    pub checkpoint_bytes: u64,
    /// How often leases, delays and retention are swept.
    pub tick: Duration,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: 1024 * 1024,
            max_wait: Duration::from_secs(30),
            max_batch: 1000,
            checkpoint_bytes: 64 * 1024 * 1024,
            tick: Duration::from_millis(100),
        }
    }
}

/// A handle to the broker; cheap to clone, shared by every face.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

struct Inner {
    _storage: Arc<dyn Storage>,
    _clock: Arc<dyn Clock>,
    _config: BrokerConfig,
}

#[allow(unused_variables)]
impl Broker {
    /// Opens a broker over `storage`: loads the latest checkpoint, replays the log tail,
    /// returns in-flight leases to their queues, and starts the background sweeper
    /// (which needs a Tokio runtime).
    pub fn open(
        storage: Arc<dyn Storage>,
        clock: Arc<dyn Clock>,
        config: BrokerConfig,
    ) -> Result<Self> {
        todo!()
    }

    /// The broker's configuration.
    pub fn config(&self) -> &BrokerConfig {
        &self.inner._config
    }

    /// Pushes messages to `queue` (created on first use) as one atomic, durable step.
    pub async fn push(&self, queue: &str, messages: Vec<NewMessage>) -> Result<Vec<PushOutcome>> {
        todo!()
    }

    /// Delivers and removes up to `opts.max` messages (at-most-once).
    pub async fn take(&self, queue: &str, opts: ReadOptions) -> Result<Vec<Message>> {
        todo!()
    }

    /// Leases up to `opts.read.max` messages; each carries a receipt for ack/nack.
    pub async fn lease(&self, queue: &str, opts: LeaseOptions) -> Result<Vec<Message>> {
        todo!()
    }

    /// Acks leases by receipt; returns how many were live (stale receipts ack nothing).
    pub async fn ack(&self, queue: &str, receipts: &[String]) -> Result<usize> {
        todo!()
    }

    /// Returns leased messages to the head of their queue (or dead-letters them);
    /// returns how many receipts were live.
    pub async fn nack(&self, queue: &str, receipts: &[String]) -> Result<usize> {
        todo!()
    }

    /// Extends live leases to `visibility` from now; returns how many were live.
    pub async fn extend(&self, queue: &str, receipts: &[String], visibility: Duration) -> Result<usize> {
        todo!()
    }

    /// Shows up to `max` ready messages in delivery order without consuming them.
    pub async fn peek(&self, queue: &str, max: usize, subscription: Option<&str>) -> Result<Vec<Message>> {
        todo!()
    }

    /// Releases every lease owned by `session` (the connection ended).
    pub async fn end_session(&self, session: SessionId) -> Result<usize> {
        todo!()
    }

    /// Stats of one queue, or `NotFound`.
    pub fn stats(&self, queue: &str) -> Result<QueueStats> {
        todo!()
    }

    /// Stats of every queue, by name.
    pub fn list(&self) -> Vec<QueueStats> {
        todo!()
    }

    /// The settings of a queue, or `NotFound`.
    pub fn settings(&self, queue: &str) -> Result<QueueSettings> {
        todo!()
    }

    /// Changes a queue's settings (creating it if needed); returns the new settings.
    pub async fn configure(&self, queue: &str, patch: SettingsPatch) -> Result<QueueSettings> {
        todo!()
    }

    /// Drops every message of the queue; ids keep rising. Returns how many were dropped
    /// from the default subscription, or `NotFound`.
    pub async fn purge(&self, queue: &str) -> Result<u64> {
        todo!()
    }

    /// Deletes a queue and its subscriptions; `NotFound` when absent.
    pub async fn drop_queue(&self, queue: &str) -> Result<()> {
        todo!()
    }

    /// Creates a named subscription (idempotent: an existing one is left as it is and
    /// `false` returned).
    pub async fn subscribe(&self, queue: &str, name: &str, start: StartAt) -> Result<bool> {
        todo!()
    }

    /// Moves a subscription so it delivers retained messages from `id` on.
    pub async fn seek(&self, queue: &str, name: &str, id: u64) -> Result<()> {
        todo!()
    }

    /// Deletes a named subscription; `NotFound` when absent.
    pub async fn unsubscribe(&self, queue: &str, name: &str) -> Result<()> {
        todo!()
    }

    /// Stats of a queue's named subscriptions.
    pub fn subscriptions(&self, queue: &str) -> Result<Vec<SubscriptionStats>> {
        todo!()
    }

    /// Whether the store is open and healthy.
    pub fn healthy(&self) -> bool {
        todo!()
    }

    /// Stops the sweeper, writes a final checkpoint and syncs the store.
    pub async fn shutdown(&self) -> Result<()> {
        todo!()
    }
}
