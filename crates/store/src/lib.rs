//! The embedded log store: Godwit's default [`godwit_core::Storage`].
//!
//! Segmented append-only files with a CRC32C per record, group commit (one sync thread),
//! checkpoints so recovery replays only the tail, and reclamation of segments that hold
//! nothing live. See `docs/architecture.md` for the format and its invariants.

pub mod checkpoint;
pub mod record;
pub mod segment;
mod syncer;

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use godwit_core::storage::{Appended, CheckpointWriter, Progress, PushRecord, ReplayGroup};
use godwit_core::{Location, Op, Storage, StorageError, Ticket};
use parking_lot::Mutex;
use tokio::sync::watch;

use checkpoint::{Draft, Position};
use record::Parsed;
use segment::Segments;

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
pub struct LogStore {
    options: StoreOptions,
    segments: Arc<Segments>,
    appender: Arc<Mutex<Appender>>,
    syncer: Mutex<Option<(mpsc::Sender<()>, JoinHandle<()>)>>,
    progress: watch::Receiver<Progress>,
    failed: Mutex<Option<String>>,
    checkpoint: Mutex<Option<(Position, Vec<u8>)>>,
    start: Position,
    _lock: File,
}

/// Where the next append goes. Guarded by one mutex so that sequence numbers, offsets
/// and the bytes in the file always agree; the syncer reads `seq` and `file` together.
pub(crate) struct Appender {
    /// Appends written so far.
    pub(crate) seq: u64,
    /// The segment being appended to, once created.
    pub(crate) file: Option<Arc<File>>,
    segment: u32,
    offset: u64,
    total: u64,
    at_checkpoint: u64,
}

impl LogStore {
    /// Opens (or creates) the store in `options.dir`, taking an exclusive lock on it.
    pub fn open(options: StoreOptions) -> Result<Self, StorageError> {
        let dir = &options.dir;
        fs::create_dir_all(dir)
            .map_err(|e| StorageError::io(format!("creating {}", dir.display()), e))?;
        let lock = lock_dir(dir)?;
        let _ = fs::remove_file(dir.join("checkpoint.tmp"));
        let checkpoint = checkpoint::load(dir)?;
        let start = checkpoint.as_ref().map(|(p, _)| *p).unwrap_or_default();
        let log_dir = dir.join("log");
        let segments = Arc::new(
            Segments::open(&log_dir)
                .map_err(|e| StorageError::io(format!("opening {}", log_dir.display()), e))?,
        );
        let appender = Arc::new(Mutex::new(Appender {
            seq: 0,
            file: None,
            segment: start.segment.max(1),
            offset: start.offset,
            total: 0,
            at_checkpoint: 0,
        }));
        let (tx, rx) = mpsc::channel();
        let (progress_tx, progress) = watch::channel(Progress::default());
        let handle = {
            let appender = appender.clone();
            let policy = options.fsync;
            std::thread::Builder::new()
                .name("godwit-log-sync".into())
                .spawn(move || syncer::run(rx, appender, policy, progress_tx))
                .map_err(|e| StorageError::io("starting the log syncer", e))?
        };
        Ok(LogStore {
            appender,
            syncer: Mutex::new(Some((tx, handle))),
            options,
            segments,
            progress,
            failed: Mutex::new(None),
            checkpoint: Mutex::new(checkpoint),
            start,
            _lock: lock,
        })
    }

    /// Asks the syncer for a sync and returns a ticket for append `seq`.
    fn sync_ticket(&self, seq: u64) -> Ticket {
        let sent = self
            .syncer
            .lock()
            .as_ref()
            .is_some_and(|(tx, _)| tx.send(()).is_ok());
        if sent {
            Ticket::new(seq, self.progress.clone())
        } else {
            let (_, rx) = watch::channel(Progress {
                durable: 0,
                failed: Some("the log syncer has stopped".into()),
            });
            Ticket::new(seq, rx)
        }
    }

    fn write_failed(&self, e: io::Error, what: String) -> StorageError {
        let err = StorageError::io(what, e);
        *self.failed.lock() = Some(err.to_string());
        err
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    /// Cuts segment `n` at `at` (the start of a damaged group) and sets aside every
    /// later segment.
    fn cut(
        &self,
        n: u32,
        at: u64,
        later: &[u32],
        why: &str,
        size: u64,
    ) -> Result<(), StorageError> {
        tracing::warn!(
            segment = n,
            offset = at,
            bytes_cut = size - at,
            reason = why,
            "cutting a damaged log tail"
        );
        let file = self
            .segments
            .get(n)
            .ok_or_else(|| StorageError::Corrupt(format!("segment {n} vanished")))?;
        file.set_len(at)
            .and_then(|_| file.sync_all())
            .map_err(|e| StorageError::io(format!("truncating segment {n}"), e))?;
        for &m in later {
            tracing::warn!(segment = m, "setting aside a log segment after the damage");
            self.segments
                .quarantine(m)
                .map_err(|e| StorageError::io(format!("setting aside segment {m}"), e))?;
        }
        Ok(())
    }
}

impl Drop for LogStore {
    fn drop(&mut self) {
        if let Some((tx, handle)) = self.syncer.lock().take() {
            drop(tx);
            let _ = handle.join();
        }
    }
}

fn lock_dir(dir: &std::path::Path) -> Result<File, StorageError> {
    let path = dir.join("LOCK");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StorageError::io(format!("opening {}", path.display()), e))?;
    // SAFETY: flock on a file descriptor we own; no memory is shared with the kernel.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(StorageError::io(
            format!("{} is in use by another godwit process", dir.display()),
            io::Error::last_os_error(),
        ));
    }
    Ok(file)
}

impl Storage for LogStore {
    fn load_checkpoint(&self) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.checkpoint.lock().take().map(|(_, state)| state))
    }

    fn replay(
        &self,
        visit: &mut dyn FnMut(ReplayGroup) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        let numbers: Vec<u32> = self
            .segments
            .numbers()
            .into_iter()
            .filter(|n| *n >= self.start.segment)
            .collect();
        let mut end = Position {
            segment: self.start.segment.max(1),
            offset: self.start.offset,
        };
        for (i, &n) in numbers.iter().enumerate() {
            let path = self.segments.path(n);
            let data = fs::read(&path)
                .map_err(|e| StorageError::io(format!("reading {}", path.display()), e))?;
            let size = data.len() as u64;
            let mut off = if n == self.start.segment {
                self.start.offset as usize
            } else {
                0
            };
            if off > data.len() {
                return Err(StorageError::Corrupt(format!(
                    "segment {n} is shorter ({size} bytes) than the checkpoint's position {off}"
                )));
            }
            let mut group: ReplayGroup = Vec::new();
            let mut group_start = off;
            let mut damage = None;
            while off < data.len() {
                match record::parse(&data[off..]) {
                    Parsed::Record {
                        op,
                        end_of_group,
                        len,
                    } => {
                        let loc = Location {
                            segment: n,
                            offset: off as u32,
                            len: len as u32,
                        };
                        group.push((op, loc));
                        off += len;
                        if end_of_group {
                            visit(std::mem::take(&mut group))?;
                            group_start = off;
                        }
                    }
                    Parsed::Incomplete => {
                        damage = Some("torn record".to_string());
                        break;
                    }
                    Parsed::Corrupt(why) => {
                        damage = Some(why);
                        break;
                    }
                }
            }
            if damage.is_none() && !group.is_empty() {
                damage = Some("group without its last record".into());
            }
            if let Some(why) = damage {
                self.cut(n, group_start as u64, &numbers[i + 1..], &why, size)?;
                end = Position {
                    segment: n,
                    offset: group_start as u64,
                };
                break;
            }
            end = Position {
                segment: n,
                offset: size,
            };
        }
        let mut a = self.appender.lock();
        a.segment = end.segment;
        a.offset = end.offset;
        a.file = self.segments.get(end.segment);
        Ok(())
    }

    fn append(&self, ops: &[Op]) -> Result<Appended, StorageError> {
        let mut bytes = Vec::new();
        let mut records = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            let at = bytes.len();
            let len = record::encode(op, i + 1 == ops.len(), &mut bytes)?;
            if matches!(op, Op::Push(_) | Op::Relocate { .. }) {
                records.push((at as u64, len as u32));
            }
        }
        let len = bytes.len() as u64;
        if len > u32::MAX as u64 / 2 {
            return Err(StorageError::Corrupt(format!(
                "{len}-byte append is too large"
            )));
        }
        if let Some(why) = self.failed.lock().clone() {
            return Err(StorageError::Failed(why));
        }
        let policy = self.options.fsync;
        let mut a = self.appender.lock();
        let roll = a.offset > 0
            && (a.offset + len > self.options.segment_bytes || a.offset + len > u32::MAX as u64);
        if roll {
            // Seal the old segment before anything in the new one can be acknowledged.
            if let (Some(file), false) = (&a.file, policy == FsyncPolicy::Never) {
                file.sync_data()
                    .map_err(|e| self.write_failed(e, format!("syncing segment {}", a.segment)))?;
            }
            a.segment += 1;
            a.offset = 0;
            a.file = None;
        }
        let file = match &a.file {
            Some(file) => file.clone(),
            None => {
                let n = a.segment;
                let file = self
                    .segments
                    .create(n)
                    .map_err(|e| self.write_failed(e, format!("creating segment {n}")))?;
                a.file = Some(file.clone());
                file
            }
        };
        file.write_all_at(&bytes, a.offset).map_err(|e| {
            self.write_failed(e, format!("writing segment {} at {}", a.segment, a.offset))
        })?;
        let locations = records
            .into_iter()
            .map(|(at, len)| Location {
                segment: a.segment,
                offset: (a.offset + at) as u32,
                len,
            })
            .collect();
        a.seq += 1;
        a.offset += len;
        a.total += len;
        let seq = a.seq;
        drop(a);
        let ticket = match policy {
            FsyncPolicy::Always => self.sync_ticket(seq),
            FsyncPolicy::Interval(_) | FsyncPolicy::Never => Ticket::done(),
        };
        Ok(Appended { locations, ticket })
    }

    fn read(&self, at: Location) -> Result<PushRecord, StorageError> {
        let file = self
            .segments
            .get(at.segment)
            .ok_or_else(|| StorageError::Corrupt(format!("segment {} is missing", at.segment)))?;
        let mut buf = vec![0u8; at.len as usize];
        file.read_exact_at(&mut buf, at.offset as u64)
            .map_err(|e| {
                StorageError::io(
                    format!("reading segment {} at {}", at.segment, at.offset),
                    e,
                )
            })?;
        match record::parse(&buf) {
            Parsed::Record {
                op: Op::Push(rec), ..
            }
            | Parsed::Record {
                op: Op::Relocate { push: rec, .. },
                ..
            } => Ok(rec),
            Parsed::Record { .. } => Err(StorageError::Corrupt(format!(
                "no message record at segment {} offset {}",
                at.segment, at.offset
            ))),
            Parsed::Incomplete => Err(StorageError::Corrupt("short record".into())),
            Parsed::Corrupt(why) => Err(StorageError::Corrupt(format!(
                "segment {} offset {}: {why}",
                at.segment, at.offset
            ))),
        }
    }

    fn sync(&self) -> Ticket {
        let seq = self.appender.lock().seq;
        self.sync_ticket(seq)
    }

    fn begin_checkpoint(&self) -> Result<Box<dyn CheckpointWriter>, StorageError> {
        let mut a = self.appender.lock();
        let position = Position {
            segment: a.segment,
            offset: a.offset,
        };
        a.at_checkpoint = a.total;
        drop(a);
        let draft = Draft::create(&self.options.dir, position)
            .map_err(|e| StorageError::io("creating checkpoint draft", e))?;
        Ok(Box::new(PendingCheckpoint {
            draft,
            dir: self.options.dir.clone(),
            segments: self.segments.clone(),
        }))
    }

    fn bytes_since_checkpoint(&self) -> u64 {
        let a = self.appender.lock();
        a.total - a.at_checkpoint
    }

    fn sealed_segments(&self) -> Vec<(u32, u64)> {
        let current = self.appender.lock().segment;
        self.segments
            .numbers()
            .into_iter()
            .filter(|n| *n < current)
            .filter_map(|n| Some((n, self.segments.get(n)?.metadata().ok()?.len())))
            .collect()
    }
}

/// A checkpoint being streamed to disk.
struct PendingCheckpoint {
    draft: Draft,
    dir: PathBuf,
    segments: Arc<Segments>,
}

impl Write for PendingCheckpoint {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.draft.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.draft.flush()
    }
}

impl CheckpointWriter for PendingCheckpoint {
    fn commit(self: Box<Self>, live_segments: BTreeSet<u32>) -> Result<(), StorageError> {
        let position = self.draft.position;
        self.draft
            .finish(&self.dir)
            .map_err(|e| StorageError::io("writing checkpoint", e))?;
        let mut reclaimed = 0;
        for n in self.segments.numbers() {
            if n < position.segment && !live_segments.contains(&n) {
                self.segments
                    .remove(n)
                    .map_err(|e| StorageError::io(format!("deleting segment {n}"), e))?;
                reclaimed += 1;
            }
        }
        if reclaimed > 0 {
            self.segments
                .sync_dir()
                .map_err(|e| StorageError::io("syncing log directory", e))?;
        }
        tracing::debug!(
            segment = position.segment,
            offset = position.offset,
            reclaimed,
            "checkpoint written"
        );
        Ok(())
    }
}
