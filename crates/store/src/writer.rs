//! The group-commit writer: one thread that owns every write and every fsync.
//!
//! Appends arrive in order on a channel. The writer takes everything queued, writes it
//! with `pwrite` at the offsets the appender already chose, calls `fdatasync` once for
//! the whole batch (per the fsync policy), and only then publishes the highest durable
//! sequence number, which resolves the waiting [`godwit_core::Ticket`]s. Concurrent
//! writers therefore share one sync, and nothing is acknowledged before it is on disk
//! under `--fsync always`.

use std::os::unix::fs::FileExt;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use godwit_core::storage::Progress;
use tokio::sync::watch;

use crate::segment::Segments;
use crate::FsyncPolicy;

/// Work for the writer.
#[derive(Debug)]
pub enum Job {
    /// Write `bytes` at `offset` of `segment`; append number `seq`.
    Write {
        /// Append number.
        seq: u64,
        /// Segment number.
        segment: u32,
        /// Offset in the segment.
        offset: u64,
        /// Encoded records.
        bytes: Vec<u8>,
    },
    /// Sync everything written so far, whatever the policy; append number `seq`.
    Sync {
        /// Append number.
        seq: u64,
    },
}

/// Most bytes one batch gathers before it is written and synced.
const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;

/// Runs the writer until every sender is gone.
pub fn run(
    jobs: Receiver<Job>,
    segments: Arc<Segments>,
    policy: FsyncPolicy,
    progress: watch::Sender<Progress>,
) {
    let mut current: Option<(u32, Arc<std::fs::File>)> = None;
    let mut dirty = false;
    let mut last_sync = Instant::now();
    loop {
        let first = match (policy, dirty) {
            (FsyncPolicy::Interval(every), true) => {
                let wait = every.saturating_sub(last_sync.elapsed());
                match jobs.recv_timeout(wait.max(Duration::from_millis(1))) {
                    Ok(job) => Some(job),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            _ => match jobs.recv() {
                Ok(job) => Some(job),
                Err(_) => break,
            },
        };
        let mut batch: Vec<Job> = first.into_iter().collect();
        let mut bytes: usize = batch.iter().map(job_len).sum();
        while bytes < MAX_BATCH_BYTES {
            match jobs.try_recv() {
                Ok(job) => {
                    bytes += job_len(&job);
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        let mut highest = None;
        let mut force = false;
        let result = (|| -> std::io::Result<()> {
            for job in &batch {
                match job {
                    Job::Write {
                        seq,
                        segment,
                        offset,
                        bytes,
                    } => {
                        if current.as_ref().map(|(n, _)| *n) != Some(*segment) {
                            // Seal the previous segment before anything after it is acked.
                            if let Some((_, file)) = current.take() {
                                if dirty && policy != FsyncPolicy::Never {
                                    sync(&file)?;
                                }
                            }
                            current = Some((*segment, segments.create(*segment)?));
                        }
                        if let Some((_, file)) = &current {
                            file.write_all_at(bytes, *offset)?;
                        }
                        dirty = true;
                        highest = Some(*seq);
                    }
                    Job::Sync { seq } => {
                        force = true;
                        highest = Some(*seq);
                    }
                }
            }
            let due = match policy {
                FsyncPolicy::Always => true,
                FsyncPolicy::Interval(every) => last_sync.elapsed() >= every,
                FsyncPolicy::Never => false,
            };
            if dirty && (force || due) {
                if let Some((_, file)) = &current {
                    sync(file)?;
                }
                dirty = false;
                last_sync = Instant::now();
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                if let Some(seq) = highest {
                    progress.send_modify(|p| p.durable = p.durable.max(seq));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "log write failed; the store stops accepting writes");
                progress.send_modify(|p| p.failed = Some(format!("log write failed: {e}")));
                // Keep draining so senders never block; every later ticket fails.
                while jobs.recv().is_ok() {}
                return;
            }
        }
    }
    if dirty {
        if let Some((_, file)) = &current {
            let _ = sync(file);
        }
    }
}

fn job_len(job: &Job) -> usize {
    match job {
        Job::Write { bytes, .. } => bytes.len(),
        Job::Sync { .. } => 0,
    }
}

fn sync(file: &std::fs::File) -> std::io::Result<()> {
    let started = Instant::now();
    file.sync_data()?;
    metrics::histogram!("godwit_fsync_seconds").record(started.elapsed().as_secs_f64());
    Ok(())
}
