//! A full disk refuses appends without failing the store, on a real full filesystem: a
//! small tmpfs (needs root; skipped with a message otherwise).

mod common;

use common::push;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use godwit_core::{Op, Storage, StorageError};
use godwit_store::{checkpoint, FsyncPolicy, LogStore, StoreOptions};

/// A tmpfs mounted on a temporary directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn open(dir: &Path) -> LogStore {
    let mut opts = StoreOptions::new(dir);
    opts.fsync = FsyncPolicy::Always;
    opts.segment_bytes = 64 * 1024;
    let store = LogStore::open(opts).unwrap();
    store.replay(&mut |_| Ok(())).unwrap();
    store
}

fn checkpoint_now(store: &LogStore, state: &[u8]) -> Result<(), StorageError> {
    let mut cp = store.begin_checkpoint()?;
    cp.write_all(state)
        .map_err(|e| StorageError::io("streaming state", e))?;
    cp.commit(BTreeSet::new())
}

#[test]
fn a_full_disk_refuses_appends_keeps_the_store_healthy_and_recovers() {
    let Some(fs) = Tmpfs::mount("1m") else {
        eprintln!("skipped: cannot mount tmpfs (needs root)");
        return;
    };
    let ballast: PathBuf = fs.path().join("ballast");
    std::fs::write(&ballast, vec![0u8; 256 * 1024]).unwrap();
    let dir = fs.path().join("data");
    let store = open(&dir);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(store.disk_low(), None);
    checkpoint_now(&store, b"the old checkpoint").unwrap();
    let old_checkpoint = std::fs::read(checkpoint::path(&dir)).unwrap();

    // Fill the disk.
    let mut acked = Vec::new();
    let refused = loop {
        match store.append(&[push(acked.len() as u64 + 1, vec![b'x'; 8 * 1024])]) {
            Ok(a) => {
                rt.block_on(a.ticket.wait()).unwrap();
                acked.push(a.locations[0]);
            }
            Err(e) => break e,
        }
        assert!(acked.len() < 1000, "the 1 MiB tmpfs never filled");
    };
    assert!(matches!(refused, StorageError::DiskFull(_)), "{refused:?}");
    assert_eq!(store.failure(), None, "a full disk is not a failure");
    std::thread::sleep(Duration::from_millis(150));
    let low = store.disk_low().expect("disk_low() on a full disk");
    assert!(
        low.ends_with(&format!(
            "bytes free, below the watermark of {}",
            128 * 1024
        )),
        "{low}"
    );
    // Everything acknowledged reads back; the partial write was given back.
    for (i, at) in acked.iter().enumerate() {
        assert_eq!(store.read(*at).unwrap().id, i as u64 + 1);
    }
    let last = acked.last().unwrap();
    let seg = dir.join(format!("log/{:010}.seg", last.segment));
    assert_eq!(
        std::fs::metadata(&seg).unwrap().len(),
        (last.offset + last.len) as u64
    );

    // A checkpoint that does not fit fails cleanly: no checkpoint.tmp, old one kept.
    let big_state = vec![7u8; 512 * 1024];
    let cp = checkpoint_now(&store, &big_state);
    assert!(cp.is_err(), "a 512 KiB checkpoint fit on a full disk");
    assert!(!dir.join("checkpoint.tmp").exists());
    assert_eq!(
        std::fs::read(checkpoint::path(&dir)).unwrap(),
        old_checkpoint
    );
    assert_eq!(
        store.failure(),
        None,
        "a failed checkpoint is not a failure"
    );

    // Space comes back: the watermark clears at the next reading, appends go on.
    std::fs::remove_file(&ballast).unwrap();
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(store.disk_low(), None);
    let after = store
        .append(&[push(acked.len() as u64 + 1, vec![b'x'; 8 * 1024])])
        .unwrap();
    rt.block_on(after.ticket.wait()).unwrap();
    acked.push(after.locations[0]);
    drop(store);

    // Recovery replays every acknowledged append and nothing else.
    let store = LogStore::open(StoreOptions::new(&dir)).unwrap();
    let mut ids = Vec::new();
    store
        .replay(&mut |group| {
            for (op, _) in group {
                if let Op::Push(p) = op {
                    ids.push(p.id);
                }
            }
            Ok(())
        })
        .unwrap();
    // The checkpoint was taken before any push, so every push replays.
    assert_eq!(ids, (1..=acked.len() as u64).collect::<Vec<_>>());
}
