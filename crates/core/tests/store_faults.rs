//! The failed-store and disk-full paths at the broker level, through `FaultyStorage`:
//! a failed sync fails the write that needed it and leaves the broker unhealthy for
//! good (what was acknowledged before survives a restart); a full disk refuses pushes
//! only, and only while it is full.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use godwit_core::storage::faulty::FaultyStorage;
use godwit_core::storage::memory::MemoryStorage;
use godwit_core::*;

fn faulty() -> (
    Arc<MemoryStorage>,
    Arc<FaultyStorage>,
    Arc<ManualClock>,
    Broker,
) {
    let store = Arc::new(MemoryStorage::new(1 << 20));
    let faulty = Arc::new(FaultyStorage::new(store.clone()));
    let clock = Arc::new(ManualClock::new(START_MS));
    let broker = open(faulty.clone(), clock.clone());
    (store, faulty, clock, broker)
}

#[tokio::test]
async fn a_failed_sync_fails_the_push_and_the_broker_stays_unhealthy() {
    let (store, faulty, clock, broker) = faulty();
    let acked: Vec<u64> = {
        let mut ids = Vec::new();
        for i in 0..5 {
            ids.push(push(&broker, "q", &format!("m{i}")).await);
        }
        ids
    };
    assert!(broker.healthy());
    faulty.fail_syncs(true);
    let failed = broker.push("q", vec![NewMessage::new("lost?")]).await;
    assert!(failed.is_err(), "{failed:?}");
    assert!(!broker.healthy());
    // It stays so: every later write is refused, reads do not heal it.
    let refused = broker.push("q", vec![NewMessage::new("later")]).await;
    assert!(refused.is_err(), "{refused:?}");
    assert!(broker.peek("q", 10, None).await.is_ok());
    assert!(broker.checkpoint().await.is_err());
    assert!(!broker.healthy());
    assert!(broker.health().is_err());
    drop(broker);
    let reopened = open(store, clock);
    assert!(reopened.healthy());
    let got: Vec<u64> = take(&reopened, "q", 10)
        .await
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(
        got[..acked.len()],
        acked[..],
        "every acknowledged push is there"
    );
}

#[tokio::test]
async fn a_sync_failure_the_broker_saw_is_not_forgotten_when_the_store_recovers() {
    let (_store, faulty, _clock, broker) = faulty();
    push(&broker, "q", "m").await;
    faulty.fail_syncs(true);
    // The checkpoint's sync fails: the broker records the failure itself.
    assert!(broker.checkpoint().await.is_err());
    faulty.fail_syncs(false);
    assert!(
        !broker.healthy(),
        "no write is trusted again before a restart"
    );
    let refused = broker.push("q", vec![NewMessage::new("later")]).await;
    assert!(matches!(refused, Err(Error::Unavailable(_))), "{refused:?}");
}

#[tokio::test]
async fn a_full_disk_refuses_pushes_only_and_only_while_full() {
    let (_store, faulty, _clock, broker) = faulty();
    for body in ["a", "b", "c"] {
        push(&broker, "q", body).await;
    }
    faulty.disk_full(true);
    assert!(broker.disk_low().is_some());
    let refused = broker.push("q", vec![NewMessage::new("d")]).await;
    assert!(matches!(refused, Err(Error::DiskFull(_))), "{refused:?}");
    // Reads and acks free space, so they go on.
    assert_eq!(bodies(&take(&broker, "q", 1).await), ["a"]);
    let leased = broker
        .lease("q", lease(1, Duration::from_secs(30)))
        .await
        .unwrap()
        .into_messages()
        .await
        .unwrap();
    assert_eq!(bodies(&leased), ["b"]);
    let receipt = leased[0].receipt.clone().unwrap();
    assert_eq!(broker.ack("q", &[receipt]).await.unwrap(), 1);
    assert!(broker.healthy(), "a full disk is not a failed store");
    faulty.disk_full(false);
    assert!(broker.disk_low().is_none());
    push(&broker, "q", "d").await;
    assert_eq!(bodies(&take(&broker, "q", 10).await), ["c", "d"]);
}

#[tokio::test]
async fn a_failed_append_fails_the_push_and_keeps_what_was_acknowledged() {
    let (store, faulty, clock, broker) = faulty();
    push(&broker, "q", "kept").await;
    faulty.fail_appends(true);
    assert!(broker.push("q", vec![NewMessage::new("x")]).await.is_err());
    assert!(!broker.healthy());
    drop(broker);
    let reopened = open(store, clock);
    assert_eq!(bodies(&take(&reopened, "q", 10).await), ["kept"]);
}
