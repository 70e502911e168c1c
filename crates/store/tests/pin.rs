//! A pinned record stays readable after reclamation deletes its segment: the core pins
//! under its lock and reads later, outside it.

mod common;

use common::push;

use std::collections::BTreeSet;
use std::io::Write;

use godwit_core::Storage;
use godwit_store::{FsyncPolicy, LogStore, StoreOptions};

#[test]
fn a_pinned_read_survives_the_deletion_of_its_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = StoreOptions::new(dir.path());
    opts.fsync = FsyncPolicy::Never;
    opts.segment_bytes = 256;
    let store = LogStore::open(opts).unwrap();
    store.replay(&mut |_| Ok(())).unwrap();

    let first = store.append(&[push(1, "a".repeat(100))]).unwrap();
    let at = first.locations[0];
    assert_eq!(at.segment, 1);
    // Roll to a later segment so segment 1 is sealed and behind the checkpoint.
    let later = store.append(&[push(2, "b".repeat(200))]).unwrap();
    assert!(later.locations[0].segment > 1);

    let pinned = store.pin(at).unwrap();
    let seg1 = dir.path().join("log/0000000001.seg");
    assert!(seg1.exists());

    let mut cp = store.begin_checkpoint().unwrap();
    cp.write_all(b"opaque state").unwrap();
    cp.commit(BTreeSet::new()).unwrap();
    assert!(!seg1.exists(), "segment 1 should have been reclaimed");

    assert!(
        store.read(at).is_err(),
        "a plain read of a deleted segment fails"
    );
    let rec = pinned.read().unwrap();
    assert_eq!(rec.id, 1);
    assert_eq!(rec.body, "a".repeat(100).as_bytes());
    assert_eq!(pinned.location(), at);
}
