//! Whether the store can still make anything durable, shared by the appenders and the
//! sync thread.
//!
//! Any write or sync error that is not a full disk fails the store for good, whatever
//! the fsync policy: after a failed `fdatasync` the page cache's state is unknown, and
//! after a failed write the file may hold anything. Failing means: [`Health::failure`]
//! answers, every pending and later ticket fails, every later append is refused, one
//! `error!` line is logged and the `godwit_store_failed` gauge turns 1. A full disk
//! (`ENOSPC`, `EDQUOT`) only refuses the one append.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

use godwit_core::storage::Progress;
use godwit_core::StorageError;
use parking_lot::Mutex;
use tokio::sync::watch;

/// The store's failure state and the progress channel every ticket follows.
#[derive(Debug)]
pub(crate) struct Health {
    failed: Mutex<Option<String>>,
    /// Set once `failed` is: lets the healthy path, asked on every append, skip the lock.
    has_failed: AtomicBool,
    progress: watch::Sender<Progress>,
    /// Faults a unit test injects where the OS gives no way to cause them for real.
    #[cfg(test)]
    pub(crate) fail_syncs: std::sync::atomic::AtomicBool,
}

impl Health {
    pub(crate) fn new() -> Self {
        metrics::gauge!("godwit_store_failed").set(0.0);
        Health {
            failed: Mutex::new(None),
            has_failed: AtomicBool::new(false),
            progress: watch::channel(Progress::default()).0,
            #[cfg(test)]
            fail_syncs: Default::default(),
        }
    }

    /// `Some(why)` once the store has failed.
    pub(crate) fn failure(&self) -> Option<String> {
        if !self.has_failed.load(Ordering::Acquire) {
            return None;
        }
        self.failed.lock().clone()
    }

    /// Publishes that every append up to `seq` is durable.
    pub(crate) fn durable(&self, seq: u64) {
        self.progress
            .send_modify(|p| p.durable = p.durable.max(seq));
    }

    /// Classifies an I/O error of the write path: a full disk refuses this append and
    /// leaves the store healthy; anything else fails the store.
    pub(crate) fn write_error(&self, what: String, e: io::Error) -> StorageError {
        if is_disk_full(&e) {
            metrics::counter!("godwit_store_errors_total", "kind" => "disk_full").increment(1);
            tracing::warn!(error = %e, "{what}: disk full; the append is refused");
            return StorageError::DiskFull(format!("{what}: {e}"));
        }
        self.fail("write", format!("{what}: {e}"))
    }

    /// Fails the store after a write error that cannot be refused any more (its ops are
    /// applied already): even a full disk is fatal here.
    pub(crate) fn fatal_write_error(&self, what: String, e: io::Error) -> StorageError {
        self.fail("write", format!("{what}: {e}"))
    }

    /// Fails the store after a sync error (always fatal).
    pub(crate) fn sync_error(&self, what: String, e: io::Error) -> StorageError {
        self.fail("sync", format!("{what}: {e}"))
    }

    /// Marks the store failed (once; the first reason is kept) and returns the error.
    fn fail(&self, kind: &'static str, why: String) -> StorageError {
        metrics::counter!("godwit_store_errors_total", "kind" => kind).increment(1);
        let mut failed = self.failed.lock();
        if failed.is_none() {
            tracing::error!(error = %why, "the log store failed; it refuses every write until a restart");
            metrics::gauge!("godwit_store_failed").set(1.0);
            *failed = Some(why.clone());
            self.has_failed.store(true, Ordering::Release);
            self.progress.send_modify(|p| p.failed = Some(why.clone()));
        }
        StorageError::Failed(failed.clone().unwrap_or(why))
    }

    /// `fdatasync`s `file` (or fails, when a test asked for it).
    pub(crate) fn sync_data(&self, file: &File) -> io::Result<()> {
        #[cfg(test)]
        if self.fail_syncs.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        file.sync_data()
    }
}

/// Whether `e` means the filesystem has no room (or quota) left.
pub(crate) fn is_disk_full(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::StorageFull
        || matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}
