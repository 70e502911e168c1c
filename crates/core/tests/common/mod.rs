//! The one helper every core integration test uses: a broker over an in-memory store
//! with a clock moved by hand.

#![allow(dead_code)] // Each test file uses its own part of it.

use std::sync::Arc;
use std::time::Duration;

use godwit_core::storage::memory::MemoryStorage;
use godwit_core::*;

/// Where the manual clock starts: a realistic wall time (2023), so sums with the
/// longest durations are exercised at the values a real clock gives.
pub const START_MS: u64 = 1_700_000_000_000;

/// A broker under test, with its store and clock.
pub struct TestBroker {
    pub broker: Broker,
    pub store: Arc<MemoryStorage>,
    pub clock: Arc<ManualClock>,
}

impl TestBroker {
    /// A fresh broker over a store with `segment_bytes` segments.
    pub fn new(segment_bytes: u32) -> Self {
        let store = Arc::new(MemoryStorage::new(segment_bytes));
        let clock = Arc::new(ManualClock::new(START_MS));
        let broker = open(store.clone(), clock.clone());
        TestBroker {
            broker,
            store,
            clock,
        }
    }
}

/// Opens a broker over `storage` with the default config.
pub fn open(storage: Arc<dyn Storage>, clock: Arc<ManualClock>) -> Broker {
    Broker::open(storage, clock, BrokerConfig::default()).expect("broker opens")
}

/// A read of up to `max` messages that does not wait.
pub fn now(max: usize) -> ReadOptions {
    ReadOptions {
        max,
        ..ReadOptions::default()
    }
}

/// A read of up to `max` messages waiting up to `wait`.
pub fn waiting(max: usize, wait: Duration) -> ReadOptions {
    ReadOptions {
        max,
        wait,
        ..ReadOptions::default()
    }
}

/// A lease of up to `max` messages for `visibility`, not waiting.
pub fn lease(max: usize, visibility: Duration) -> LeaseOptions {
    LeaseOptions {
        read: now(max),
        visibility,
    }
}

/// Pushes one plain message; returns its id.
pub async fn push(broker: &Broker, queue: &str, body: &str) -> u64 {
    broker
        .push(queue, vec![NewMessage::new(body.to_string())])
        .await
        .expect("push")[0]
        .id
}

/// Takes (and confirms) up to `max` messages at once.
pub async fn take(broker: &Broker, queue: &str, max: usize) -> Vec<Message> {
    broker
        .take(queue, now(max))
        .await
        .expect("take")
        .into_messages()
        .await
        .expect("confirm")
}

/// The bodies of `messages`, as text.
pub fn bodies(messages: &[Message]) -> Vec<String> {
    messages
        .iter()
        .map(|m| String::from_utf8_lossy(&m.body).into_owned())
        .collect()
}

/// Lets spawned tasks run up to their first wait (a long-poll registers there).
/// Tests run on the current-thread runtime, where a spawned task runs when the test
/// task yields.
pub async fn let_others_run() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}
