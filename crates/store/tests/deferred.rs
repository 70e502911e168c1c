//! Deferred appends: the push combiner stages a batch of appends and writes them with
//! one `pwrite` at `flush_deferred`. Each keeps its own group and location; none is
//! durable (its ticket resolved) before the flush; and the segment's blocks are
//! reserved up front, so the batched write cannot meet a full disk after the core
//! applied the ops.

mod common;

use common::push;

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use godwit_core::{Op, Storage};
use godwit_store::{FsyncPolicy, LogStore, StoreOptions};

fn open(dir: &std::path::Path, fsync: FsyncPolicy, segment_bytes: u64) -> LogStore {
    let mut opts = StoreOptions::new(dir);
    opts.fsync = fsync;
    opts.segment_bytes = segment_bytes;
    let store = LogStore::open(opts).unwrap();
    store.replay(&mut |_| Ok(())).unwrap();
    store
}

fn ids_replayed(dir: &std::path::Path) -> Vec<Vec<u64>> {
    let store = open(dir, FsyncPolicy::Never, 1 << 20);
    let mut groups = Vec::new();
    store
        .replay(&mut |group| {
            groups.push(
                group
                    .iter()
                    .map(|(op, _)| match op {
                        Op::Push(rec) => rec.id,
                        other => panic!("unexpected op {other:?}"),
                    })
                    .collect(),
            );
            Ok(())
        })
        .unwrap();
    groups
}

#[test]
fn a_flushed_batch_reads_back_and_replays_as_separate_groups() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), FsyncPolicy::Never, 1 << 20);
    let seg = dir.path().join("log/0000000001.seg");
    let a = store.append_deferred(&[push(1, "one")]).unwrap();
    let b = store
        .append_deferred(&[push(2, "two"), push(3, "three")])
        .unwrap();
    let len_staged = std::fs::metadata(&seg).unwrap().len();
    store.flush_deferred().unwrap();
    let len_flushed = std::fs::metadata(&seg).unwrap().len();
    assert!(
        len_flushed > len_staged,
        "the flush writes the staged bytes ({len_staged} -> {len_flushed})"
    );
    let at = [a.locations[0], b.locations[0], b.locations[1]];
    assert!(at[0].offset + at[0].len <= at[1].offset);
    for (loc, (id, body)) in at.iter().zip([(1, "one"), (2, "two"), (3, "three")]) {
        let rec = store.read(*loc).unwrap();
        assert_eq!((rec.id, &rec.body[..]), (id, body.as_bytes()));
    }
    // An immediate append after a flush goes after the batch.
    let c = store.append(&[push(4, "four")]).unwrap();
    assert!(c.locations[0].offset >= at[2].offset + at[2].len);
    drop(store);
    assert_eq!(ids_replayed(dir.path()), vec![vec![1], vec![2, 3], vec![4]]);
}

#[test]
fn an_immediate_append_writes_what_is_staged_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), FsyncPolicy::Never, 1 << 20);
    store.append_deferred(&[push(1, "one")]).unwrap();
    // No flush: the next plain append must not overtake or overwrite the staged one.
    store.append(&[push(2, "two")]).unwrap();
    drop(store);
    assert_eq!(ids_replayed(dir.path()), vec![vec![1], vec![2]]);
}

#[tokio::test]
async fn a_deferred_ticket_resolves_only_after_the_flush() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), FsyncPolicy::Always, 1 << 20);
    let appended = store.append_deferred(&[push(1, "one")]).unwrap();
    let mut wait = Box::pin(appended.ticket.wait());
    assert!(
        tokio::time::timeout(Duration::from_millis(200), &mut wait)
            .await
            .is_err(),
        "durable before it was written"
    );
    store.flush_deferred().unwrap();
    tokio::time::timeout(Duration::from_secs(5), wait)
        .await
        .expect("the flush's sync answers the ticket")
        .unwrap();
}

#[test]
fn segments_reserve_their_blocks_and_give_back_the_rest_when_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let segment_bytes = 1 << 20;
    let store = open(dir.path(), FsyncPolicy::Never, segment_bytes);
    store.append(&[push(1, "one")]).unwrap();
    let first = dir.path().join("log/0000000001.seg");
    let meta = std::fs::metadata(&first).unwrap();
    let allocated = meta.blocks() * 512;
    if allocated < segment_bytes {
        eprintln!("skipping: this filesystem does not preallocate ({allocated} bytes)");
        return;
    }
    assert!(
        meta.len() < 4096,
        "the reservation keeps the size: {}",
        meta.len()
    );
    // Fill the segment so the next append rolls to segment 2.
    let big = "x".repeat(300 * 1024);
    for id in 2..6 {
        store.append(&[push(id, big.clone())]).unwrap();
    }
    assert!(dir.path().join("log/0000000002.seg").exists());
    let sealed = std::fs::metadata(&first).unwrap();
    assert!(
        sealed.blocks() * 512 < sealed.len() + 64 * 1024,
        "a sealed segment keeps about its length: {} blocks for {} bytes",
        sealed.blocks(),
        sealed.len()
    );
}
