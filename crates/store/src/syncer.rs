//! Group commit: one thread owns every `fdatasync`.
//!
//! Appends write their bytes in place (`pwrite`, under the appender's lock, in sequence
//! order) and, under `--fsync always`, ask this thread for a sync. The thread takes every
//! request that has queued up, reads the highest sequence number written so far, syncs
//! the current segment once, and publishes that number as durable, which resolves every
//! [`godwit_core::Ticket`] up to it. While one sync runs, more appends queue: concurrent
//! writers share one sync, and nothing is acknowledged before it is on disk.
//!
//! A sync error fails the store (see [`crate::health`]) under every policy, and the
//! thread stops: there is nothing more it could make durable.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use crate::health::Health;
use crate::{Appender, FsyncPolicy};

/// Runs the syncer until every sender is gone, then syncs once more.
pub(crate) fn run(
    requests: Receiver<()>,
    appender: Arc<Mutex<Appender>>,
    policy: FsyncPolicy,
    health: Arc<Health>,
) {
    let mut synced = 0u64;
    loop {
        let more = match policy {
            FsyncPolicy::Interval(every) => match requests.recv_timeout(every) {
                Ok(()) | Err(RecvTimeoutError::Timeout) => true,
                Err(RecvTimeoutError::Disconnected) => false,
            },
            _ => requests.recv().is_ok(),
        };
        while requests.try_recv().is_ok() {}
        let (seq, file, segment) = {
            let a = appender.lock();
            (a.seq, a.file.clone(), a.segment)
        };
        if health.failure().is_some() {
            return;
        }
        if seq > synced {
            if let Some(file) = file {
                let started = Instant::now();
                if let Err(e) = health.sync_data(&file) {
                    health.sync_error(format!("fdatasync of segment {segment}"), e);
                    return;
                }
                metrics::histogram!("godwit_fsync_seconds").record(started.elapsed().as_secs_f64());
            }
            synced = seq;
        }
        health.durable(seq);
        if !more {
            return;
        }
    }
}
