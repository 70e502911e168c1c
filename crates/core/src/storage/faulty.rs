//! A fault-injecting [`Storage`] for tests: wraps another store and, on command, fails
//! appends, fails syncs (as a dying disk does), or reports the disk below its
//! watermark. It is how the failed-store and disk-full paths are tested end to end
//! without breaking a real disk.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::{
    Appended, CheckpointWriter, Location, Op, PinnedRecord, PushRecord, ReplayGroup, Storage,
    StorageError, Ticket,
};

/// A store that fails when told to.
pub struct FaultyStorage {
    inner: Arc<dyn Storage>,
    fail_appends: AtomicBool,
    fail_syncs: AtomicBool,
    disk_full: AtomicBool,
}

impl FaultyStorage {
    /// Wraps `inner`; no fault is on.
    pub fn new(inner: Arc<dyn Storage>) -> Self {
        FaultyStorage {
            inner,
            fail_appends: AtomicBool::new(false),
            fail_syncs: AtomicBool::new(false),
            disk_full: AtomicBool::new(false),
        }
    }

    /// From now on every append fails with an I/O error.
    pub fn fail_appends(&self, on: bool) {
        self.fail_appends.store(on, Ordering::SeqCst);
    }

    /// From now on every sync fails: tickets fail and the store reports a failure.
    pub fn fail_syncs(&self, on: bool) {
        self.fail_syncs.store(on, Ordering::SeqCst);
    }

    /// While on, the store reports free space below its watermark and appends fail
    /// with [`StorageError::DiskFull`].
    pub fn disk_full(&self, on: bool) {
        self.disk_full.store(on, Ordering::SeqCst);
    }
}

impl Storage for FaultyStorage {
    fn load_checkpoint(&self) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.load_checkpoint()
    }

    fn replay(
        &self,
        visit: &mut dyn FnMut(ReplayGroup) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        self.inner.replay(visit)
    }

    fn append(&self, ops: &[Op]) -> Result<Appended, StorageError> {
        if self.fail_appends.load(Ordering::SeqCst) {
            return Err(StorageError::io(
                "appending (injected fault)",
                std::io::Error::other("injected write error"),
            ));
        }
        if self.disk_full.load(Ordering::SeqCst) && ops.iter().any(|op| matches!(op, Op::Push(_))) {
            return Err(StorageError::DiskFull("injected: no space left".into()));
        }
        let mut appended = self.inner.append(ops)?;
        if self.fail_syncs.load(Ordering::SeqCst) {
            appended.ticket = Ticket::failed("fdatasync failed (injected fault)");
        }
        Ok(appended)
    }

    fn read(&self, at: Location) -> Result<PushRecord, StorageError> {
        self.inner.read(at)
    }

    fn pin(&self, at: Location) -> Result<PinnedRecord, StorageError> {
        self.inner.pin(at)
    }

    fn sync(&self) -> Ticket {
        if self.fail_syncs.load(Ordering::SeqCst) {
            return Ticket::failed("fdatasync failed (injected fault)");
        }
        self.inner.sync()
    }

    fn syncs_appends(&self) -> bool {
        self.inner.syncs_appends()
    }

    fn failure(&self) -> Option<String> {
        if self.fail_syncs.load(Ordering::SeqCst) {
            return Some("fdatasync failed (injected fault)".into());
        }
        self.inner.failure()
    }

    fn disk_low(&self) -> Option<String> {
        if self.disk_full.load(Ordering::SeqCst) {
            return Some("0 bytes free, below the watermark (injected)".into());
        }
        self.inner.disk_low()
    }

    fn begin_checkpoint(&self) -> Result<Box<dyn CheckpointWriter>, StorageError> {
        self.inner.begin_checkpoint()
    }

    fn bytes_since_checkpoint(&self) -> u64 {
        self.inner.bytes_since_checkpoint()
    }

    fn sealed_segments(&self) -> Vec<(u32, u64)> {
        self.inner.sealed_segments()
    }
}
