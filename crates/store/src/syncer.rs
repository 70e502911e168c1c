//! Group commit: one thread owns every `fdatasync`.
//!
//! Appends write their bytes in place (`pwrite`, under the appender's lock, in sequence
//! order; a batch of deferred appends with one `pwrite`) and, under `--fsync always`,
//! ask this thread for a sync (one request per append, sent once its bytes are written). The thread takes every
//! request that has queued up, reads the highest sequence number written so far (every
//! request taken was sent after its append, so its append is covered), syncs the current
//! segment once, and answers exactly those requests: each [`godwit_core::Ticket`] is
//! woken by the sync that covers it, never by another's. While one sync runs, more
//! appends queue: concurrent writers share one sync, and nothing is acknowledged before
//! it is on disk.
//!
//! A sync error fails the store (see [`crate::health`]) under every policy, and the
//! thread stops: there is nothing more it could make durable.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use crate::health::Health;
use crate::{Appender, FsyncPolicy};

/// One sync request: answered `Ok` once a sync covering it is done, `Err(why)` if the
/// store failed.
pub(crate) type Request = tokio::sync::oneshot::Sender<Result<(), String>>;

/// Runs the syncer until every sender is gone, then syncs once more.
pub(crate) fn run(
    requests: Receiver<Request>,
    appender: Arc<Mutex<Appender>>,
    policy: FsyncPolicy,
    health: Arc<Health>,
) {
    let mut synced = 0u64;
    let mut waiting: Vec<Request> = Vec::new();
    let answer = |waiting: &mut Vec<Request>, result: Result<(), String>| {
        for w in waiting.drain(..) {
            let _ = w.send(result.clone());
        }
    };
    loop {
        let more = match policy {
            FsyncPolicy::Interval(every) => match requests.recv_timeout(every) {
                Ok(w) => {
                    waiting.push(w);
                    true
                }
                Err(RecvTimeoutError::Timeout) => true,
                Err(RecvTimeoutError::Disconnected) => false,
            },
            _ => match requests.recv() {
                Ok(w) => {
                    waiting.push(w);
                    true
                }
                Err(_) => false,
            },
        };
        waiting.extend(requests.try_iter());
        let (seq, file, segment) = {
            let a = appender.lock();
            (a.seq, a.file.clone(), a.segment)
        };
        if let Some(why) = health.failure() {
            answer(&mut waiting, Err(why));
            return;
        }
        if seq > synced {
            if let Some(file) = file {
                let started = Instant::now();
                if let Err(e) = health.sync_data(&file) {
                    let err = health.sync_error(format!("fdatasync of segment {segment}"), e);
                    answer(&mut waiting, Err(err.to_string()));
                    return;
                }
                metrics::histogram!("godwit_fsync_seconds").record(started.elapsed().as_secs_f64());
            }
            synced = seq;
        }
        health.durable(seq);
        answer(&mut waiting, Ok(()));
        if !more {
            return;
        }
    }
}
