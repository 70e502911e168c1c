//! A real write fault that is not a full disk fails the store under every fsync policy.
//!
//! The fault is caused for real: `RLIMIT_FSIZE` makes the kernel refuse a `pwrite` past
//! the limit with `EFBIG` (with `SIGXFSZ` ignored). The limit is per process, so this
//! file holds one test only.

mod common;

use common::push;

use std::time::Duration;

use godwit_core::{Storage, StorageError};
use godwit_store::{FsyncPolicy, LogStore, StoreOptions};

fn set_file_size_limit(bytes: libc::rlim_t) -> libc::rlimit {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the structs we own for the call only.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut old), 0);
        let new = libc::rlimit {
            rlim_cur: bytes,
            rlim_max: old.rlim_max,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &new), 0);
    }
    old
}

#[test]
fn a_write_error_fails_the_store_under_every_policy() {
    // SAFETY: ignoring a signal for the whole (single-test) process.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for policy in [
        FsyncPolicy::Always,
        FsyncPolicy::Interval(Duration::from_millis(10)),
        FsyncPolicy::Never,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = StoreOptions::new(dir.path());
        opts.fsync = policy;
        let store = LogStore::open(opts).unwrap();
        store.replay(&mut |_| Ok(())).unwrap();
        let first = store.append(&[push(1, vec![b'x'; 100])]).unwrap();
        rt.block_on(first.ticket.wait()).unwrap();

        let old = set_file_size_limit(4096);
        let refused = store.append(&[push(2, vec![b'x'; 10_000])]);
        set_file_size_limit(old.rlim_cur);

        assert!(
            matches!(refused, Err(StorageError::Failed(_))),
            "{policy:?}: {refused:?}"
        );
        let why = store.failure().expect("failure() after a write error");
        assert!(why.contains("0000000001.seg at byte"), "{why}");
        assert!(matches!(
            store.append(&[push(3, vec![b'x'; 10])]),
            Err(StorageError::Failed(_))
        ));
        assert!(matches!(
            rt.block_on(store.sync().wait()),
            Err(StorageError::Failed(_))
        ));
        // What was acknowledged before the fault is still readable.
        assert_eq!(store.read(first.locations[0]).unwrap().id, 1);
    }
}
