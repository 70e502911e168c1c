//! The broker over the real log store: behaviour that must hold across restarts.

use std::sync::Arc;
use std::time::Duration;

use godwit_core::*;
use godwit_store::{FsyncPolicy, LogStore, StoreOptions};

fn open(dir: &std::path::Path, clock: Arc<ManualClock>) -> Broker {
    let mut opts = StoreOptions::new(dir);
    opts.fsync = FsyncPolicy::Never;
    opts.segment_bytes = 4096;
    let store = LogStore::open(opts).unwrap();
    Broker::open(Arc::new(store), clock, BrokerConfig::default()).unwrap()
}

fn read(max: usize) -> ReadOptions {
    ReadOptions {
        max,
        ..ReadOptions::default()
    }
}

fn bodies(msgs: &[Message]) -> Vec<String> {
    msgs.iter()
        .map(|m| String::from_utf8_lossy(&m.body).into_owned())
        .collect()
}

#[tokio::test]
async fn push_take_lease_ack_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let b = open(dir.path(), clock.clone());
    let msgs = (0..50).map(|i| NewMessage::new(format!("m{i}"))).collect();
    let out = b.push("jobs", msgs).await.unwrap();
    assert_eq!(out.first().unwrap().id, 1);
    assert_eq!(out.last().unwrap().id, 50);
    let taken = b.take("jobs", read(10)).await.unwrap();
    assert_eq!(bodies(&taken)[0], "m0");
    let leased = b
        .lease(
            "jobs",
            LeaseOptions {
                read: read(5),
                visibility: Duration::from_secs(30),
                session: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(leased.len(), 5);
    assert_eq!(leased[0].id, 11);
    let receipts: Vec<String> = leased.iter().filter_map(|m| m.receipt.clone()).collect();
    assert_eq!(b.ack("jobs", &receipts[..2]).await.unwrap(), 2);
    assert_eq!(b.ack("jobs", &receipts[..2]).await.unwrap(), 0);
    b.checkpoint().await.unwrap();
    b.push("jobs", vec![NewMessage::new("after")])
        .await
        .unwrap();
    drop(b);

    let b = open(dir.path(), clock.clone());
    let s = b.stats("jobs").unwrap();
    // 50 pushed + 1, 10 taken, 2 acked; the 3 unacked leases are ready again.
    assert_eq!(s.ready, 39);
    assert_eq!(s.in_flight, 0);
    assert_eq!(s.next_id, 52);
    let all = b.take("jobs", read(100)).await.unwrap();
    let ids: Vec<u64> = all.iter().map(|m| m.id).collect();
    assert_eq!(&ids[..3], &[13, 14, 15]);
    assert_eq!(all[0].deliveries, 2);
    assert_eq!(*ids.last().unwrap(), 51);
    assert_eq!(all.len(), 39);
    assert!(receipts.len() == 5);
    // A receipt from before the restart is stale.
    assert_eq!(b.ack("jobs", &receipts[2..]).await.unwrap(), 0);
    drop(b);
    let b = open(dir.path(), clock);
    assert_eq!(b.stats("jobs").unwrap().ready, 0);
    let out = b.push("jobs", vec![NewMessage::new("x")]).await.unwrap();
    assert_eq!(out[0].id, 52);
}
