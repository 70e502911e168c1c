//! The embedded log store: Godwit's default [`godwit_core::Storage`].
//!
//! Segmented append-only files with a CRC32C per record, group commit (one sync thread),
//! checkpoints so recovery replays only the tail, and reclamation of segments that hold
//! nothing live. See `docs/architecture.md` for the format and its invariants.

pub mod checkpoint;
pub mod disk;
mod health;
pub mod record;
mod recovery;
pub mod segment;
mod syncer;
#[cfg(test)]
mod tests;

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

use godwit_core::storage::{
    Appended, CheckpointWriter, PinnedRecord, PushRecord, RecordSource, ReplayGroup,
};
use godwit_core::{Location, Op, Storage, StorageError, Ticket};
use parking_lot::Mutex;

use checkpoint::{Draft, Position};
use disk::DiskWatch;
use health::Health;
use record::Parsed;
use segment::{Segments, HEADER_LEN};

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
    /// Free-space watermark of the data directory's filesystem: below it
    /// [`Storage::disk_low`] answers and the core refuses pushes. `None` means twice
    /// `segment_bytes`: room for the segments a checkpoint, a compaction round and the
    /// acks that free space still need.
    pub min_free_bytes: Option<u64>,
}

impl StoreOptions {
    /// Defaults for `dir`: fsync always, 64 MiB segments, a watermark of two segments.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            fsync: FsyncPolicy::Always,
            segment_bytes: 64 * 1024 * 1024,
            min_free_bytes: None,
        }
    }

    /// The free-space watermark in effect.
    pub fn min_free_bytes(&self) -> u64 {
        self.min_free_bytes
            .unwrap_or(self.segment_bytes.saturating_mul(2))
    }
}

/// The embedded log store.
pub struct LogStore {
    options: StoreOptions,
    segments: Arc<Segments>,
    appender: Arc<Mutex<Appender>>,
    syncer: Mutex<Option<(mpsc::Sender<syncer::Request>, JoinHandle<()>)>>,
    health: Arc<Health>,
    disk: DiskWatch,
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
    /// The end of the log, counting bytes still staged.
    offset: u64,
    total: u64,
    at_checkpoint: u64,
    /// Bytes of deferred appends not yet written; they end at `offset`.
    staged: Vec<u8>,
    /// The sync requests of the staged appends, sent once their bytes are written.
    staged_syncs: Vec<syncer::Request>,
    /// The current segment's blocks are reserved up to here (see [`segment::reserve`]).
    reserved_until: u64,
}

impl LogStore {
    /// Opens (or creates) the store in `options.dir`, taking an exclusive lock on it.
    /// Refuses with [`StorageError::UnknownFormat`] (changing nothing) when a segment or
    /// the checkpoint is of a format this build does not read.
    pub fn open(options: StoreOptions) -> Result<Self, StorageError> {
        let dir = &options.dir;
        fs::create_dir_all(dir)
            .map_err(|e| StorageError::io(format!("creating {}", dir.display()), e))?;
        let lock = lock_dir(dir)?;
        let checkpoint = checkpoint::load(dir)?;
        let start = checkpoint.as_ref().map(|(p, _)| *p).unwrap_or_default();
        let log_dir = dir.join("log");
        let segments = Arc::new(
            Segments::open(&log_dir)
                .map_err(|e| StorageError::io(format!("opening {}", log_dir.display()), e))?,
        );
        recovery::check_headers(&segments)?;
        let _ = fs::remove_file(dir.join("checkpoint.tmp"));
        let appender = Arc::new(Mutex::new(Appender {
            seq: 0,
            file: None,
            segment: start.segment.max(1),
            offset: start.offset,
            total: 0,
            at_checkpoint: 0,
            staged: Vec::new(),
            staged_syncs: Vec::new(),
            reserved_until: 0,
        }));
        let health = Arc::new(Health::new());
        let (tx, rx) = mpsc::channel();
        let handle = {
            let appender = appender.clone();
            let health = health.clone();
            let policy = options.fsync;
            std::thread::Builder::new()
                .name("godwit-log-sync".into())
                .spawn(move || syncer::run(rx, appender, policy, health))
                .map_err(|e| StorageError::io("starting the log syncer", e))?
        };
        Ok(LogStore {
            appender,
            syncer: Mutex::new(Some((tx, handle))),
            disk: DiskWatch::new(dir, options.min_free_bytes()),
            options,
            segments,
            health,
            checkpoint: Mutex::new(checkpoint),
            start,
            _lock: lock,
        })
    }

    /// Asks the syncer for a sync covering every append so far;
    /// the ticket is answered by that sync alone, so a sync wakes only its own waiters.
    fn sync_ticket(&self) -> Ticket {
        let (answer, rx) = tokio::sync::oneshot::channel();
        self.request_syncs([answer]);
        Ticket::answered_by(rx)
    }

    /// Hands sync requests to the syncer; one it can no longer take is answered at once
    /// with why (the store's failure, or the syncer having stopped).
    fn request_syncs(&self, answers: impl IntoIterator<Item = syncer::Request>) {
        let syncer = self.syncer.lock();
        for answer in answers {
            let refused = match syncer.as_ref() {
                Some((tx, _)) => tx.send(answer).err().map(|mpsc::SendError(a)| a),
                None => Some(answer),
            };
            if let Some(answer) = refused {
                let why = self
                    .health
                    .failure()
                    .unwrap_or_else(|| "the log syncer has stopped".into());
                let _ = answer.send(Err(why));
            }
        }
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    /// Creates segment `n` for the appender.
    fn create_segment(&self, n: u32) -> Result<Arc<File>, StorageError> {
        self.segments.create(n).map_err(|e| {
            let path = self.segments.path(n);
            self.health
                .write_error(format!("creating {}", path.display()), e)
        })
    }

    /// Encodes `ops` as one group and appends it. A deferred append whose bytes fit in
    /// the current segment's reserved blocks is only staged, to be written with the
    /// others at [`Storage::flush_deferred`] in one `pwrite`; any other append first
    /// writes what is staged, then its own bytes.
    fn append_ops(&self, ops: &[Op], defer: bool) -> Result<Appended, StorageError> {
        let mut bytes = Vec::with_capacity(ops.iter().map(record::size_hint).sum());
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
        let policy = self.options.fsync;
        let mut a = self.appender.lock();
        if let Some(why) = self.health.failure() {
            return Err(StorageError::Failed(why));
        }
        let roll = a.offset > HEADER_LEN
            && (a.offset + len > self.options.segment_bytes || a.offset + len > u32::MAX as u64);
        if roll {
            // Staged bytes belong to the segment being sealed.
            self.write_staged(&mut a)?;
        }
        match a.file.clone() {
            Some(file) if roll => {
                // Seal the old segment before anything in the new one can be acknowledged.
                if policy != FsyncPolicy::Never {
                    self.health.sync_data(&file).map_err(|e| {
                        self.health
                            .sync_error(format!("syncing segment {}", a.segment), e)
                    })?;
                }
                segment::release(&file, a.offset);
                let n = a.segment + 1;
                a.file = Some(self.create_segment(n)?);
                a.segment = n;
                a.offset = HEADER_LEN;
                a.reserved_until = self.reserve(&mut a);
            }
            Some(_) => {}
            None => {
                a.file = Some(self.create_segment(a.segment)?);
                a.offset = HEADER_LEN;
                a.reserved_until = self.reserve(&mut a);
            }
        }
        let at = a.offset;
        let staged = defer && at + len <= a.reserved_until;
        let mut ticket = Ticket::done();
        if staged {
            a.staged.extend_from_slice(&bytes);
            if policy == FsyncPolicy::Always {
                let (answer, rx) = tokio::sync::oneshot::channel();
                a.staged_syncs.push(answer);
                ticket = Ticket::answered_by(rx);
            }
        } else {
            self.write_staged(&mut a)?;
            self.write_at(&a, &bytes, at)?;
            a.seq += 1;
        }
        let locations = records
            .into_iter()
            .map(|(rel, len)| Location {
                segment: a.segment,
                offset: (at + rel) as u32,
                len,
            })
            .collect();
        a.offset += len;
        a.total += len;
        drop(a);
        if !staged {
            self.disk.appended(len);
            if policy == FsyncPolicy::Always {
                ticket = self.sync_ticket();
            }
        }
        Ok(Appended { locations, ticket })
    }

    /// Writes `bytes` at `at` of the current segment. A full disk refuses the write and
    /// gives back what a partial write took; any other error fails the store.
    fn write_at(&self, a: &Appender, bytes: &[u8], at: u64) -> Result<(), StorageError> {
        let Some(file) = a.file.as_ref() else {
            return Err(StorageError::Failed("no segment to append to".into()));
        };
        if let Err(e) = file.write_all_at(bytes, at) {
            let what = format!(
                "writing {} at byte {at}",
                self.segments.path(a.segment).display()
            );
            let err = self.health.write_error(what, e);
            if matches!(err, StorageError::DiskFull(_)) {
                // Recovery would cut it as a torn tail; the next append overwrites it.
                let _ = file.set_len(at);
            }
            return Err(err);
        }
        Ok(())
    }

    /// Writes the staged bytes in one `pwrite` and hands their sync requests to the
    /// syncer. Their appends were already applied by the core, so any error here, even
    /// a full disk (which the reserved blocks should rule out), fails the store.
    fn write_staged(&self, a: &mut Appender) -> Result<(), StorageError> {
        if a.staged.is_empty() {
            return Ok(());
        }
        let staged = std::mem::take(&mut a.staged);
        let syncs = std::mem::take(&mut a.staged_syncs);
        let at = a.offset - staged.len() as u64;
        let written = match a.file.as_ref() {
            Some(file) => file.write_all_at(&staged, at),
            None => Err(io::Error::other("no segment to append to")),
        };
        if let Err(e) = written {
            let what = format!(
                "writing {} staged bytes to {} at byte {at}",
                staged.len(),
                self.segments.path(a.segment).display()
            );
            let err = self.health.fatal_write_error(what, e);
            for s in syncs {
                let _ = s.send(Err(err.to_string()));
            }
            return Err(err);
        }
        a.seq += 1;
        self.disk.appended(staged.len() as u64);
        self.request_syncs(syncs);
        // Keep the buffer's capacity for the next batch.
        a.staged = staged;
        a.staged.clear();
        Ok(())
    }

    /// Reserves the current segment's blocks from the end of the log to its full size;
    /// returns where the reservation ends (the current end when none could be made).
    fn reserve(&self, a: &mut Appender) -> u64 {
        let end = self.options.segment_bytes.min(u32::MAX as u64);
        match a.file.as_ref() {
            Some(file) if segment::reserve(file, a.offset, end) => end,
            _ => a.offset,
        }
    }

    /// Makes a test's next syncs fail as a dying disk's would.
    #[cfg(test)]
    pub(crate) fn fail_syncs(&self) {
        self.health
            .fail_syncs
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for LogStore {
    fn drop(&mut self) {
        let _ = self.write_staged(&mut self.appender.lock());
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

/// A checkpoint I/O error: a full disk only postpones the checkpoint (`DiskFull`),
/// anything else is an I/O error with `what` as context.
fn checkpoint_error(what: &str, e: io::Error) -> StorageError {
    if health::is_disk_full(&e) {
        StorageError::DiskFull(format!("{what}: {e}"))
    } else {
        StorageError::io(what, e)
    }
}

/// Reads the message record at `at` from its segment's file.
fn read_record(file: &File, at: Location) -> Result<PushRecord, StorageError> {
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
        Parsed::Corrupt(why) | Parsed::Unknown(why) => Err(StorageError::Corrupt(format!(
            "segment {} offset {}: {why}",
            at.segment, at.offset
        ))),
    }
}

/// A segment's file held open for a pinned read: the record stays readable after
/// reclamation deletes the segment (the inode lives until the last handle closes).
struct PinnedSegment(Arc<File>);

impl RecordSource for PinnedSegment {
    fn read_at(&self, at: Location) -> Result<PushRecord, StorageError> {
        read_record(&self.0, at)
    }
}

impl Storage for LogStore {
    fn load_checkpoint(&self) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.checkpoint.lock().take().map(|(_, state)| state))
    }

    fn replay(
        &self,
        visit: &mut dyn FnMut(ReplayGroup) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        let end = recovery::replay(&self.segments, self.start, visit)?;
        let mut a = self.appender.lock();
        a.segment = end.segment;
        a.offset = end.offset;
        a.file = self.segments.get(end.segment);
        a.reserved_until = self.reserve(&mut a);
        Ok(())
    }

    fn append(&self, ops: &[Op]) -> Result<Appended, StorageError> {
        self.append_ops(ops, false)
    }

    fn append_deferred(&self, ops: &[Op]) -> Result<Appended, StorageError> {
        self.append_ops(ops, true)
    }

    fn flush_deferred(&self) -> Result<(), StorageError> {
        self.write_staged(&mut self.appender.lock())
    }

    fn read(&self, at: Location) -> Result<PushRecord, StorageError> {
        let file = self
            .segments
            .get(at.segment)
            .ok_or_else(|| StorageError::Corrupt(format!("segment {} is missing", at.segment)))?;
        read_record(&file, at)
    }

    fn pin(&self, at: Location) -> Result<PinnedRecord, StorageError> {
        let file = self
            .segments
            .get(at.segment)
            .ok_or_else(|| StorageError::Corrupt(format!("segment {} is missing", at.segment)))?;
        Ok(PinnedRecord::new(Arc::new(PinnedSegment(file)), at))
    }

    fn failure(&self) -> Option<String> {
        self.health.failure()
    }

    fn disk_low(&self) -> Option<String> {
        self.disk.low()
    }

    fn syncs_appends(&self) -> bool {
        self.options.fsync == FsyncPolicy::Always
    }

    fn sync(&self) -> Ticket {
        // A failed store syncs nothing more: its sync tickets fail, even when everything
        // appended before the failure happened to be durable already.
        if let Some(why) = self.health.failure() {
            return Ticket::failed(why);
        }
        if let Err(e) = self.write_staged(&mut self.appender.lock()) {
            return Ticket::failed(e.to_string());
        }
        self.sync_ticket()
    }

    fn begin_checkpoint(&self) -> Result<Box<dyn CheckpointWriter>, StorageError> {
        let mut a = self.appender.lock();
        // The checkpoint's position must be the end of what is in the file.
        self.write_staged(&mut a)?;
        let position = Position {
            segment: a.segment,
            offset: a.offset,
        };
        a.at_checkpoint = a.total;
        drop(a);
        let draft = Draft::create(&self.options.dir, position)
            .map_err(|e| checkpoint_error("creating checkpoint draft", e))?;
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
        // A failed draft removes itself and the old checkpoint stays; the store stays
        // healthy (the log is untouched), so a full disk only postpones reclamation.
        self.draft
            .finish(&self.dir)
            .map_err(|e| checkpoint_error("writing checkpoint", e))?;
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
