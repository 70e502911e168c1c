//! The free-space watermark: a cached reading of the data directory's filesystem.
//!
//! Like RabbitMQ's disk alarm: while free space is below the watermark the core refuses
//! pushes, and keeps serving takes, acks and purges, which let checkpoints reclaim
//! segments. The reading (`statvfs`) is refreshed at most every [`REFRESH`] when asked,
//! and after every [`REFRESH_BYTES`] appended; in between, appended bytes are taken off
//! the cached figure, so it errs on the side of less free space. Space freed by deleting
//! segments is seen at the next refresh: pushes resume without a restart.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Longest a reading is trusted.
pub const REFRESH: Duration = Duration::from_millis(100);
/// Bytes appended after which a reading is refreshed regardless of its age.
pub const REFRESH_BYTES: u64 = 1024 * 1024;

/// The cached free-space reading of one directory's filesystem.
#[derive(Debug)]
pub struct DiskWatch {
    dir: PathBuf,
    min_free: u64,
    base: Instant,
    /// Free bytes at the last reading, minus bytes appended since.
    free: AtomicU64,
    /// When the last reading was taken, in ms since `base`.
    read_at_ms: AtomicU64,
    appended: AtomicU64,
    refreshing: AtomicBool,
}

impl DiskWatch {
    /// Watches `dir`'s filesystem against a watermark of `min_free` bytes.
    pub fn new(dir: &Path, min_free: u64) -> Self {
        let watch = DiskWatch {
            dir: dir.to_path_buf(),
            min_free,
            base: Instant::now(),
            free: AtomicU64::new(u64::MAX),
            read_at_ms: AtomicU64::new(0),
            appended: AtomicU64::new(0),
            refreshing: AtomicBool::new(false),
        };
        watch.refresh();
        watch
    }

    /// Counts `bytes` just appended.
    pub fn appended(&self, bytes: u64) {
        let _ = self
            .free
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |f| {
                Some(f.saturating_sub(bytes))
            });
        if self.appended.fetch_add(bytes, Ordering::Relaxed) + bytes >= REFRESH_BYTES {
            self.refresh();
        }
    }

    /// `Some(why)` while free space is below the watermark.
    pub fn low(&self) -> Option<String> {
        let age = self.now_ms() - self.read_at_ms.load(Ordering::Relaxed);
        if age >= REFRESH.as_millis() as u64 {
            self.refresh();
        }
        let free = self.free.load(Ordering::Relaxed);
        (free < self.min_free).then(|| {
            format!(
                "{free} bytes free, below the watermark of {}",
                self.min_free
            )
        })
    }

    /// Free bytes at the last reading (less what was appended since).
    pub fn free(&self) -> u64 {
        self.free.load(Ordering::Relaxed)
    }

    /// Takes a new reading (one caller at a time; the others use the cached one). When
    /// `statvfs` fails the old reading stays: the watermark is advice, not durability.
    pub fn refresh(&self) {
        if self.refreshing.swap(true, Ordering::Acquire) {
            return;
        }
        self.appended.store(0, Ordering::Relaxed);
        self.read_at_ms.store(self.now_ms(), Ordering::Relaxed);
        match free_bytes(&self.dir) {
            Ok(free) => {
                self.free.store(free, Ordering::Relaxed);
                metrics::gauge!("godwit_disk_free_bytes").set(free as f64);
            }
            Err(e) => tracing::warn!(dir = %self.dir.display(), error = %e, "statvfs failed"),
        }
        self.refreshing.store(false, Ordering::Release);
    }

    fn now_ms(&self) -> u64 {
        self.base.elapsed().as_millis() as u64
    }
}

/// Bytes available to this process on `dir`'s filesystem.
fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let path = CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: statvfs is plain old data; all zeroes is a valid value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: statvfs writes into the struct we pass and reads the NUL-terminated path
    // we own; neither outlives the call.
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_free_space_and_counts_appends_against_it() {
        let dir = tempfile::tempdir().unwrap();
        let real = free_bytes(dir.path()).unwrap();
        assert!(real > 0);
        let never_low = DiskWatch::new(dir.path(), 0);
        assert_eq!(never_low.low(), None);
        let always_low = DiskWatch::new(dir.path(), u64::MAX);
        let why = always_low.low().unwrap();
        assert!(
            why.ends_with(&format!("below the watermark of {}", u64::MAX)),
            "{why}"
        );
        // Appends are taken off the cached reading until the next refresh.
        let w = DiskWatch::new(dir.path(), 0);
        let before = w.free();
        w.appended(1000);
        assert_eq!(w.free(), before - 1000);
    }
}
