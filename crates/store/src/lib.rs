//! The embedded log store: Godwit's default [`godwit_core::Storage`].
//!
//! Segmented append-only files with a CRC32C per record, one group-commit writer thread,
//! checkpoints so recovery replays only the tail, and reclamation of segments that hold
//! nothing live. See `docs/architecture.md` for the format and its invariants.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// When the writer calls `fdatasync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Before acknowledging any write (group commit shares one sync among writers).
    Always,
    /// At most this often; writes are acknowledged once written to the OS.
    Interval(Duration),
    /// Never (the OS decides); writes are acknowledged once written to the OS.
    Never,
}

impl FromStr for FsyncPolicy {
    type Err = String;

    /// Parses `always`, `never` or `interval:MS`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "always" => Ok(FsyncPolicy::Always),
            "never" => Ok(FsyncPolicy::Never),
            _ => {
                let ms = s
                    .strip_prefix("interval:")
                    .and_then(|ms| ms.parse::<u64>().ok())
                    .filter(|ms| *ms > 0)
                    .ok_or_else(|| {
                        format!("invalid fsync policy {s:?}: expected always, never or interval:MS")
                    })?;
                Ok(FsyncPolicy::Interval(Duration::from_millis(ms)))
            }
        }
    }
}

/// How to open a [`LogStore`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// The data directory (created if missing).
    pub dir: PathBuf,
    /// When to fsync.
    pub fsync: FsyncPolicy,
    /// A segment is sealed and a new one started past this size.
    pub segment_bytes: u64,
}

impl StoreOptions {
    /// Defaults for `dir`: fsync always, 64 MiB segments.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            fsync: FsyncPolicy::Always,
            segment_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The embedded log store.
pub struct LogStore {}

impl LogStore {
    /// Opens (or creates) the store in `options.dir`, taking an exclusive lock on it.
    pub fn open(options: StoreOptions) -> Result<Self, godwit_core::StorageError> {
        let _ = options;
        todo!()
    }
}
