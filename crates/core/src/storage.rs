//! The storage boundary: what the core asks of a durable store.
//!
//! The core decides every change as a list of [`Op`]s, hands them to
//! [`Storage::append`] (which orders them and makes them durable), and applies the very
//! same ops to its in-memory state — the path recovery replays. A store only persists
//! ops, reads message records back, and keeps checkpoints; it never interprets queue
//! semantics. The embedded log store and a later PostgreSQL store both implement it.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::model::{QueueSettings, StartAt};

/// Where a message record lives in the store: opaque to the core except as a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Location {
    /// Segment (file) number.
    pub segment: u32,
    /// Byte offset of the record in its segment.
    pub offset: u32,
    /// Length of the whole record in bytes.
    pub len: u32,
}

/// A message as stored: everything a push decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushRecord {
    /// Queue name.
    pub queue: String,
    /// Id within the queue.
    pub id: u64,
    /// Push time, ms since the epoch.
    pub created_at_ms: u64,
    /// 0..=9.
    pub priority: u8,
    /// Not delivered before this time (ms); equal to `created_at_ms` when not delayed.
    pub not_before_ms: u64,
    /// Never delivered from this time on (ms); 0 means never expires.
    pub expires_at_ms: u64,
    /// Optional dedup id.
    pub dedup_id: Option<String>,
    /// Headers.
    pub headers: BTreeMap<String, String>,
    /// The body.
    pub body: Bytes,
    /// Goes to the head of the ready order instead of the tail.
    pub at_head: bool,
}

/// Why a message left a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RemoveReason {
    /// Delivered and removed at once.
    Taken,
    /// A lease was acked.
    Acked,
    /// Its TTL passed.
    Expired,
    /// Dropped to make room in a full queue.
    Overflow,
}

/// One durable change. A list of ops handed to [`Storage::append`] is atomic: after a
/// crash either all of it is replayed or none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// A new message (creates the queue if needed).
    Push(PushRecord),
    /// Messages leave one subscription.
    Remove {
        /// Queue name.
        queue: String,
        /// Subscription name ("" is the default one).
        sub: String,
        /// Message ids.
        ids: Vec<u64>,
        /// Why.
        reason: RemoveReason,
    },
    /// Delayed messages whose time came join the tail of their subscription's ready
    /// order, in the given order.
    Promote {
        /// Queue name.
        queue: String,
        /// Subscription name.
        sub: String,
        /// Message ids.
        ids: Vec<u64>,
    },
    /// Messages are leased: delivery count raised, hidden until `until_ms`.
    Lease {
        /// Queue name.
        queue: String,
        /// Subscription name.
        sub: String,
        /// Message ids.
        ids: Vec<u64>,
        /// Lease deadline, ms.
        until_ms: u64,
        /// Lease token of the first id; the next ids get consecutive tokens.
        first_token: u64,
    },
    /// Leased messages return to the head of the ready order (nack, timeout, session end).
    Release {
        /// Queue name.
        queue: String,
        /// Subscription name.
        sub: String,
        /// Message ids, the first ends up first.
        ids: Vec<u64>,
    },
    /// A message moves from one queue's subscription to another queue as a new message
    /// that shares the stored record (dead letters; later `LMOVE`).
    Move {
        /// Source queue.
        queue: String,
        /// Source subscription.
        sub: String,
        /// Source id.
        id: u64,
        /// Destination queue.
        to: String,
        /// Id in the destination queue.
        new_id: u64,
        /// True when this is a dead-lettering.
        dead_letter: bool,
    },
    /// New settings for a queue (creates it if needed).
    Configure {
        /// Queue name.
        queue: String,
        /// The whole new settings.
        settings: QueueSettings,
    },
    /// Every message of every subscription and the log is dropped; ids keep rising.
    Purge {
        /// Queue name.
        queue: String,
    },
    /// The queue is deleted with its subscriptions; its id counter is remembered.
    DropQueue {
        /// Queue name.
        queue: String,
    },
    /// A named subscription is created.
    Subscribe {
        /// Queue name.
        queue: String,
        /// Subscription name.
        sub: String,
        /// Where it starts.
        start: StartAt,
    },
    /// A subscription's position moves: it will deliver retained messages from `id` on.
    Seek {
        /// Queue name.
        queue: String,
        /// Subscription name.
        sub: String,
        /// First id to deliver.
        id: u64,
    },
    /// A named subscription is deleted.
    Unsubscribe {
        /// Queue name.
        queue: String,
        /// Subscription name.
        sub: String,
    },
    /// Log retention: messages with ids below `below` leave the queue's log.
    Trim {
        /// Queue name.
        queue: String,
        /// First id kept.
        below: u64,
    },
    /// A live record copied forward by compaction; its new location replaces `from`.
    Relocate {
        /// The old location.
        from: Location,
        /// The record, unchanged.
        push: PushRecord,
    },
}

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
#[derive(Debug, Clone)]
pub struct Ticket {
    seq: u64,
    rx: Option<watch::Receiver<Progress>>,
}

impl Ticket {
    /// A ticket for append number `seq`, following the writer's progress on `rx`.
    pub fn new(seq: u64, rx: watch::Receiver<Progress>) -> Self {
        Self { seq, rx: Some(rx) }
    }

    /// A ticket that is already durable (nothing was written).
    pub fn done() -> Self {
        Self { seq: 0, rx: None }
    }

    /// Waits until the append is durable.
    pub async fn wait(self) -> Result<(), StorageError> {
        let Some(mut rx) = self.rx else {
            return Ok(());
        };
        let seq = self.seq;
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

/// What [`Storage::append`] returns.
#[derive(Debug)]
pub struct Appended {
    /// The location of each `Push` and `Relocate` op, in order.
    pub locations: Vec<Location>,
    /// Resolves when the ops are durable.
    pub ticket: Ticket,
}

/// A checkpoint being written: the core streams its state into it while holding its
/// lock (so the state matches the log position captured at [`Storage::begin_checkpoint`]),
/// then commits it without the lock.
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
        f.debug_struct("PinnedRecord").field("at", &self.at).finish()
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

    /// Starts a checkpoint at the current end of the log.
    fn begin_checkpoint(&self) -> Result<Box<dyn CheckpointWriter>, StorageError>;

    /// Bytes appended since the latest checkpoint began: drives when to take the next.
    fn bytes_since_checkpoint(&self) -> u64;

    /// Sealed segments (no longer appended to) as `(number, bytes)`: the core compares
    /// them with the live bytes it knows of to decide what to compact. A store without
    /// segments returns none.
    fn sealed_segments(&self) -> Vec<(u32, u64)>;
}
