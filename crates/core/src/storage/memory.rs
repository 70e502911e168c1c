//! An in-memory [`Storage`]: the log as a list of ops in numbered "segments", with
//! checkpoints and reclamation, and no files. It lets the core's model test run
//! restarts, checkpoints and compaction without a disk; every append is durable at
//! once, so dropping a broker and opening another over the same storage is a crash.
//!
//! Deferred appends are held as unwritten until [`Storage::flush_deferred`]: reading
//! one fails, as reading bytes not yet written to a file would, so a core that served a
//! reader from a batch before writing it fails the core's waiter tests.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::Arc;

use parking_lot::Mutex;

use super::{
    Appended, CheckpointWriter, Location, Op, PushRecord, ReplayGroup, Storage, StorageError,
    Ticket,
};

/// One stored record: where it is, the op, and whether it ends its group.
type Record = (Location, Op, bool);

#[derive(Default)]
struct Log {
    segments: BTreeMap<u32, Vec<Record>>,
    segment: u32,
    offset: u32,
    checkpoint: Option<(u32, u32, Vec<u8>)>,
    since_checkpoint: u64,
    /// Records of deferred appends not yet flushed, by (segment, offset).
    unwritten: BTreeSet<(u32, u32)>,
}

/// The in-memory store.
pub struct MemoryStorage {
    log: Arc<Mutex<Log>>,
    segment_bytes: u32,
}

impl MemoryStorage {
    /// A store whose "segments" are sealed past `segment_bytes` of records.
    pub fn new(segment_bytes: u32) -> Self {
        MemoryStorage {
            log: Arc::new(Mutex::new(Log {
                segment: 1,
                ..Log::default()
            })),
            segment_bytes: segment_bytes.max(1),
        }
    }

    /// Numbers of the segments still kept (reclaimed ones are gone).
    pub fn segment_numbers(&self) -> Vec<u32> {
        self.log.lock().segments.keys().copied().collect()
    }
}

fn record_len(op: &Op) -> u32 {
    let size = postcard::to_allocvec(op).map_or(0, |v| v.len());
    u32::try_from(size).unwrap_or(u32::MAX).saturating_add(9)
}

impl Storage for MemoryStorage {
    fn load_checkpoint(&self) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self
            .log
            .lock()
            .checkpoint
            .as_ref()
            .map(|(_, _, b)| b.clone()))
    }

    fn replay(
        &self,
        visit: &mut dyn FnMut(ReplayGroup) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        let log = self.log.lock();
        let (from_seg, from_off) = log.checkpoint.as_ref().map_or((0, 0), |(s, o, _)| (*s, *o));
        let mut group = Vec::new();
        for (loc, op, end) in log.segments.values().flatten() {
            if (loc.segment, loc.offset) < (from_seg, from_off)
                || log.unwritten.contains(&(loc.segment, loc.offset))
            {
                continue;
            }
            group.push((op.clone(), *loc));
            if *end {
                visit(std::mem::take(&mut group))?;
            }
        }
        Ok(())
    }

    fn append(&self, ops: &[Op]) -> Result<Appended, StorageError> {
        let mut log = self.log.lock();
        let total: u32 = ops.iter().map(record_len).sum();
        if log.offset > 0 && log.offset.saturating_add(total) > self.segment_bytes {
            log.segment += 1;
            log.offset = 0;
        }
        let mut locations = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            let len = record_len(op);
            let loc = Location {
                segment: log.segment,
                offset: log.offset,
                len,
            };
            if matches!(op, Op::Push(_) | Op::Relocate { .. }) {
                locations.push(loc);
            }
            let segment = log.segment;
            log.segments
                .entry(segment)
                .or_default()
                .push((loc, op.clone(), i + 1 == ops.len()));
            log.offset = log.offset.saturating_add(len);
            log.since_checkpoint += u64::from(len);
        }
        Ok(Appended {
            locations,
            ticket: Ticket::done(),
        })
    }

    fn append_deferred(&self, ops: &[Op]) -> Result<Appended, StorageError> {
        let appended = self.append(ops)?;
        let mut log = self.log.lock();
        let segment = log.segment;
        let unwritten: Vec<_> = log.segments[&segment]
            .iter()
            .rev()
            .take(ops.len())
            .map(|(loc, _, _)| (loc.segment, loc.offset))
            .collect();
        log.unwritten.extend(unwritten);
        Ok(appended)
    }

    fn flush_deferred(&self) -> Result<(), StorageError> {
        self.log.lock().unwritten.clear();
        Ok(())
    }

    fn read(&self, at: Location) -> Result<PushRecord, StorageError> {
        let log = self.log.lock();
        if log.unwritten.contains(&(at.segment, at.offset)) {
            return Err(StorageError::Corrupt(format!(
                "record at {at:?} read before it was written"
            )));
        }
        let missing = || StorageError::Corrupt(format!("no record at {at:?}"));
        let records = log.segments.get(&at.segment).ok_or_else(missing)?;
        let i = records
            .binary_search_by_key(&at.offset, |(loc, _, _)| loc.offset)
            .map_err(|_| missing())?;
        match &records[i].1 {
            Op::Push(rec) | Op::Relocate { push: rec, .. } => Ok(rec.clone()),
            _ => Err(missing()),
        }
    }

    fn sync(&self) -> Ticket {
        Ticket::done()
    }

    fn begin_checkpoint(&self) -> Result<Box<dyn CheckpointWriter>, StorageError> {
        let log = self.log.lock();
        Ok(Box::new(MemoryCheckpoint {
            log: self.log.clone(),
            at: (log.segment, log.offset),
            bytes: Vec::new(),
        }))
    }

    fn bytes_since_checkpoint(&self) -> u64 {
        self.log.lock().since_checkpoint
    }

    fn sealed_segments(&self) -> Vec<(u32, u64)> {
        let log = self.log.lock();
        log.segments
            .iter()
            .filter(|(n, _)| **n < log.segment)
            .map(|(n, records)| {
                let size = records.iter().map(|(l, _, _)| u64::from(l.len)).sum();
                (*n, size)
            })
            .collect()
    }
}

struct MemoryCheckpoint {
    log: Arc<Mutex<Log>>,
    at: (u32, u32),
    bytes: Vec<u8>,
}

impl Write for MemoryCheckpoint {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CheckpointWriter for MemoryCheckpoint {
    fn commit(self: Box<Self>, live_segments: BTreeSet<u32>) -> Result<(), StorageError> {
        let mut log = self.log.lock();
        let (segment, offset) = self.at;
        log.checkpoint = Some((segment, offset, self.bytes));
        log.since_checkpoint = 0;
        log.segments
            .retain(|n, _| *n >= segment || live_segments.contains(n));
        Ok(())
    }
}
