//! Failure handling under every fsync policy, with the one fault the OS offers no way to
//! cause on demand: a failing `fdatasync` (injected through [`crate::health::Health`]).
//! Real write faults (`EFBIG`, `ENOSPC`) are caused for real in `tests/write_faults.rs`
//! and `tests/disk_full.rs`.

use std::time::Duration;

use godwit_core::storage::PushRecord;
use godwit_core::{Op, Storage, StorageError};

use crate::{FsyncPolicy, LogStore, StoreOptions};

fn push(id: u64) -> Op {
    Op::Push(PushRecord {
        queue: "q".into(),
        id,
        created_at_ms: 1,
        priority: 4,
        not_before_ms: 1,
        expires_at_ms: 0,
        dedup_id: None,
        headers: Default::default(),
        body: bytes::Bytes::from_static(b"body"),
        at_head: false,
        body_hash: None,
    })
}

fn open(dir: &std::path::Path, fsync: FsyncPolicy) -> LogStore {
    let mut opts = StoreOptions::new(dir);
    opts.fsync = fsync;
    let store = LogStore::open(opts).unwrap();
    store.replay(&mut |_| Ok(())).unwrap();
    store
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Whatever the policy, a failed sync fails the store: `failure()` answers, the sync's
/// ticket fails, and every later append is refused.
#[test]
fn a_failed_fsync_fails_the_store_under_every_policy() {
    for policy in [
        FsyncPolicy::Always,
        FsyncPolicy::Interval(Duration::from_millis(5)),
        FsyncPolicy::Never,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), policy);
        let ok = store.append(&[push(1)]).unwrap();
        rt().block_on(ok.ticket.wait()).unwrap();
        assert_eq!(store.failure(), None);
        store.fail_syncs();
        let pending = store.append(&[push(2)]).unwrap().ticket;
        let synced = rt().block_on(store.sync().wait());
        assert!(
            matches!(synced, Err(StorageError::Failed(_))),
            "{policy:?}: {synced:?}"
        );
        if policy == FsyncPolicy::Always {
            let pending = rt().block_on(pending.wait());
            assert!(
                matches!(pending, Err(StorageError::Failed(_))),
                "{pending:?}"
            );
        }
        let why = store.failure().expect("failure() after a failed fsync");
        assert!(why.contains("fdatasync of segment 1"), "{why}");
        let later = store.append(&[push(3)]);
        assert!(
            matches!(later, Err(StorageError::Failed(_))),
            "{policy:?}: {later:?}"
        );
        assert!(matches!(
            rt().block_on(store.sync().wait()),
            Err(StorageError::Failed(_))
        ));
    }
}

/// Under `interval:MS` no one asks for a sync: the periodic one fails the store alone.
#[test]
fn the_interval_syncer_fails_the_store_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), FsyncPolicy::Interval(Duration::from_millis(5)));
    store.fail_syncs();
    store.append(&[push(1)]).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.failure().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the store never failed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(matches!(
        store.append(&[push(2)]),
        Err(StorageError::Failed(_))
    ));
}

/// Sealing a segment syncs it; a failure there is fatal too.
#[test]
fn a_failed_seal_fails_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = StoreOptions::new(dir.path());
    opts.fsync = FsyncPolicy::Interval(Duration::from_secs(3600));
    opts.segment_bytes = 50;
    let store = LogStore::open(opts).unwrap();
    store.replay(&mut |_| Ok(())).unwrap();
    store.append(&[push(1)]).unwrap();
    store.fail_syncs();
    let rolled = store.append(&[push(2)]);
    assert!(matches!(rolled, Err(StorageError::Failed(_))), "{rolled:?}");
    assert!(store.failure().unwrap().contains("syncing segment 1"));
}
