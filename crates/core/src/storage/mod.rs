//! The storage boundary: what the core asks of a durable store.
//!
//! The core decides every change as a list of [`Op`]s, hands them to
//! [`Storage::append`] (which orders them and makes them durable), and applies the very
//! same ops to its in-memory state — the path recovery replays. A store only persists
//! ops, reads message records back, and keeps checkpoints; it never interprets queue
//! semantics. The embedded log store and a later PostgreSQL store both implement it.

use std::collections::BTreeSet;
use std::io::Write;

use tokio::sync::{oneshot, watch};

pub use crate::op::{Location, Op, PushRecord, RemoveReason};

/// A failure of the store.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An I/O error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A record failed its checksum or did not decode.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// The writer failed earlier; nothing more can be made durable.
    #[error("store failed: {0}")]
    Failed(String),
    /// The disk is full, or below the free-space watermark: this append was refused, but
    /// the store is healthy and earlier appends are intact. Not fatal: appends succeed
    /// again once space comes back.
    #[error("disk full: {0}")]
    DiskFull(String),
    /// A record or checkpoint was written by a format this build does not know (a newer
    /// Godwit, or damage with a valid checksum). Recovery stops and deletes nothing.
    #[error("unknown format: {0}")]
    UnknownFormat(String),
}

impl StorageError {
    /// Wraps an I/O error with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        StorageError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Progress of a store's writer, published to [`Ticket`]s.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Every append with a sequence number up to this one is durable (per fsync policy).
    pub durable: u64,
    /// Set once the writer failed; every pending and later ticket fails with it.
    pub failed: Option<String>,
}

/// Resolves when one append is durable: the promise behind every acknowledgement.
#[derive(Debug)]
pub struct Ticket(Waiting);

#[derive(Debug)]
enum Waiting {
    /// Nothing to wait for.
    Done,
    /// Durable once the writer's published progress reaches `seq`.
    Progress(u64, watch::Receiver<Progress>),
    /// Durable when the writer answers this one request: only this waiter is woken,
    /// not every waiter on each sync.
    Answer(oneshot::Receiver<Result<(), String>>),
}

impl Ticket {
    /// A ticket for append number `seq`, following the writer's progress on `rx`.
    pub fn new(seq: u64, rx: watch::Receiver<Progress>) -> Self {
        Self(Waiting::Progress(seq, rx))
    }

    /// A ticket the writer resolves by answering `rx` (`Err(why)` when it failed; a
    /// dropped sender means the writer stopped).
    pub fn answered_by(rx: oneshot::Receiver<Result<(), String>>) -> Self {
        Self(Waiting::Answer(rx))
    }

    /// A ticket that is already durable (nothing was written).
    pub fn done() -> Self {
        Self(Waiting::Done)
    }

    /// Waits until the append is durable.
    pub async fn wait(self) -> Result<(), StorageError> {
        match self.0 {
            Waiting::Done => Ok(()),
            Waiting::Answer(rx) => match rx.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(why)) => Err(StorageError::Failed(why)),
                Err(_) => Err(StorageError::Failed("writer stopped".into())),
            },
            Waiting::Progress(seq, mut rx) => {
                let progress = rx
                    .wait_for(|p| p.durable >= seq || p.failed.is_some())
                    .await
                    .map_err(|_| StorageError::Failed("writer stopped".into()))?;
                match &progress.failed {
                    Some(why) if progress.durable < seq => Err(StorageError::Failed(why.clone())),
                    _ => Ok(()),
                }
            }
        }
    }
}

/// What [`Storage::append`] returns.
#[derive(Debug)]
pub struct Appended {
    /// The location of each `Push` and `Relocate` op, in order.
    pub locations: Vec<Location>,
    /// Resolves when the ops are durable.
    pub ticket: Ticket,
}

/// A checkpoint being written: begun under the core's lock (so its position matches
/// the snapshot of the state taken there), then filled with that snapshot and committed
/// on a blocking thread, outside the lock.
pub trait CheckpointWriter: Write + Send {
    /// Makes the checkpoint the one recovery starts from, once the log up to its
    /// position is durable, then deletes log segments that are behind it and not in
    /// `live_segments`.
    fn commit(self: Box<Self>, live_segments: BTreeSet<u32>) -> Result<(), StorageError>;
}

/// Reads one message record back; obtained with [`Storage::pin`] while the core holds
/// its lock, so the record stays readable even if reclamation deletes its segment
/// before the read runs.
pub trait RecordSource: Send + Sync {
    /// Reads the record at `at`.
    fn read_at(&self, at: Location) -> Result<PushRecord, StorageError>;
}

/// A record pinned for a later read (see [`Storage::pin`]).
#[derive(Clone)]
pub struct PinnedRecord {
    source: std::sync::Arc<dyn RecordSource>,
    at: Location,
}

impl PinnedRecord {
    /// Pins `at` in `source`.
    pub fn new(source: std::sync::Arc<dyn RecordSource>, at: Location) -> Self {
        Self { source, at }
    }

    /// Reads the pinned record.
    pub fn read(&self) -> Result<PushRecord, StorageError> {
        self.source.read_at(self.at)
    }

    /// Where the record is.
    pub fn location(&self) -> Location {
        self.at
    }
}

impl std::fmt::Debug for PinnedRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinnedRecord")
            .field("at", &self.at)
            .finish()
    }
}

/// A record already read, for stores without files to pin.
struct ReadRecord(PushRecord);

impl RecordSource for ReadRecord {
    fn read_at(&self, _at: Location) -> Result<PushRecord, StorageError> {
        Ok(self.0.clone())
    }
}

/// One atomic group of ops found during recovery, each with its location.
pub type ReplayGroup = Vec<(Op, Location)>;

/// A durable store of ops and message records.
pub trait Storage: Send + Sync + 'static {
    /// The latest committed checkpoint, if any.
    fn load_checkpoint(&self) -> Result<Option<Vec<u8>>, StorageError>;

    /// Calls `visit` with every complete op group written after the latest checkpoint, in
    /// order. A torn or corrupt tail is cut off (and logged) rather than failing.
    fn replay(
        &self,
        visit: &mut dyn FnMut(ReplayGroup) -> Result<(), StorageError>,
    ) -> Result<(), StorageError>;

    /// Orders `ops` after every earlier append and starts making them durable. Once it
    /// returns, [`Storage::read`] finds the records; it does not wait for a sync: the
    /// returned ticket resolves when they are durable.
    fn append(&self, ops: &[Op]) -> Result<Appended, StorageError>;

    /// Like [`Storage::append`], but the store may hold the bytes in memory until
    /// [`Storage::flush_deferred`], to write a whole batch of appends at once. The
    /// returned locations are final, and the ticket resolves only after the flush.
    /// A deferred append must still refuse (a full disk, say) before it returns
    /// whenever the later write could fail for that reason: the core applies it at once.
    fn append_deferred(&self, ops: &[Op]) -> Result<Appended, StorageError> {
        self.append(ops)
    }

    /// Writes every deferred append. Their ops are applied already, so an error here
    /// fails the store. The core calls it before it releases its lock, before any
    /// reader can look for the records and before any push is answered.
    fn flush_deferred(&self) -> Result<(), StorageError> {
        Ok(())
    }

    /// Reads a message record back by location.
    fn read(&self, at: Location) -> Result<PushRecord, StorageError>;

    /// Pins the record at `at` so a later [`PinnedRecord::read`] finds it even if its
    /// segment is reclaimed in between. Called under the core's lock, so it must be
    /// cheap (no I/O in a store with files: take a handle). The default reads at once.
    fn pin(&self, at: Location) -> Result<PinnedRecord, StorageError> {
        let rec = self.read(at)?;
        Ok(PinnedRecord::new(std::sync::Arc::new(ReadRecord(rec)), at))
    }

    /// `Some(why)` once the store has failed (a write or sync error, whatever the fsync
    /// policy): nothing more can be made durable until a restart.
    fn failure(&self) -> Option<String> {
        None
    }

    /// `Some(why)` while free disk space is below the store's watermark: the core then
    /// refuses pushes (which add data) and keeps serving takes, acks and purges (which
    /// free it). Must be cheap: a cached reading, refreshed by the store.
    fn disk_low(&self) -> Option<String> {
        None
    }

    /// A ticket that resolves once everything appended so far is on disk (forcing a
    /// sync whatever the fsync policy).
    fn sync(&self) -> Ticket;

    /// Whether an append's ticket waits for an fsync covering it (the group commit).
    /// False under a relaxed fsync policy, where only [`Storage::sync`] forces one.
    fn syncs_appends(&self) -> bool {
        true
    }

    /// Starts a checkpoint at the current end of the log.
    fn begin_checkpoint(&self) -> Result<Box<dyn CheckpointWriter>, StorageError>;

    /// Bytes appended since the latest checkpoint began: drives when to take the next.
    fn bytes_since_checkpoint(&self) -> u64;

    /// Sealed segments (no longer appended to) as `(number, bytes)`: the core compares
    /// them with the live bytes it knows of to decide what to compact. A store without
    /// segments returns none.
    fn sealed_segments(&self) -> Vec<(u32, u64)>;
}

pub mod faulty;
pub mod memory;

impl Ticket {
    /// A ticket that fails with `why` (a store that can no longer make writes durable).
    pub fn failed(why: impl Into<String>) -> Self {
        let (_tx, rx) = watch::channel(Progress {
            durable: 0,
            failed: Some(why.into()),
        });
        Ticket::new(1, rx)
    }
}
