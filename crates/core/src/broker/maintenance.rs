//! Background work: the sweeper (time-driven changes every tick), checkpoints and
//! compaction. None of it walks the backlog under the lock on a normal round:
//! reclaimable space comes from the per-segment live counts kept by `apply`, and a
//! checkpoint serializes a snapshot (lane chunks shared, not copied) on a blocking
//! thread after the lock is released.

use std::collections::HashMap;
use std::sync::Weak;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::Inner;
use crate::error::{Error, Result};
use crate::op::{Location, Op};
use crate::storage::StorageError;

impl Inner {
    /// Whether some sealed segment is dead or sparse enough to be worth a round of
    /// compaction and a checkpoint.
    pub(super) fn reclaimable(&self) -> bool {
        let sealed = self.storage.sealed_segments();
        if sealed.is_empty() {
            return false;
        }
        let core = self.core.lock();
        sealed
            .iter()
            .any(|(n, size)| self.sparse(core.state.live_in(*n).bytes, *size))
    }

    /// Whether a sealed segment of `size` bytes with `live` bytes in it is worth
    /// compacting (or, with nothing live, deleting).
    fn sparse(&self, live: u64, size: u64) -> bool {
        (live as f64) < (size as f64) * self.config.compact_below
    }

    /// Copies the live records of sparse sealed segments to the log's tail (within the
    /// budget) and points the state at the copies. Records are read outside the lock.
    pub(super) fn compact(&self) -> Result<usize> {
        let _one_at_a_time = self.compact_lock.lock();
        let pinned = {
            let core = self.core.lock();
            let mut budget = self.config.compact_budget;
            let mut pinned = Vec::new();
            for (n, size) in self.storage.sealed_segments() {
                let live = core.state.live_in(n);
                if live.refs == 0 || !self.sparse(live.bytes, size) || live.bytes > budget {
                    continue;
                }
                budget -= live.bytes;
                for loc in core.state.locations_in(n) {
                    pinned.push((loc, self.storage.pin(loc)?));
                }
            }
            pinned
        };
        if pinned.is_empty() {
            return Ok(0);
        }
        let mut from = Vec::with_capacity(pinned.len());
        let mut ops = Vec::with_capacity(pinned.len());
        for (loc, record) in pinned {
            let push = record.read()?;
            from.push(loc);
            ops.push(Op::Relocate { from: loc, push });
        }
        let mut core = self.core.lock();
        let appended = self.storage.append(&ops).map_err(|e| self.fail(e))?;
        let moved: HashMap<Location, Location> = from.into_iter().zip(appended.locations).collect();
        core.state.relocate(&moved);
        tracing::info!(records = moved.len(), "compacted sparse log segments");
        Ok(moved.len())
    }

    /// Writes a checkpoint of the state as of now and lets the store delete segments
    /// behind it that nothing lives in.
    pub(super) async fn checkpoint(&self) -> Result<()> {
        let _one_at_a_time = self.checkpoint_lock.lock().await;
        let started = std::time::Instant::now();
        let (mut writer, snapshot, live) = {
            let core = self.core.lock();
            let writer = self.storage.begin_checkpoint().map_err(|e| self.fail(e))?;
            let live: std::collections::BTreeSet<u32> =
                core.state.live_segments().into_keys().collect();
            (writer, core.state.snapshot(), live)
        };
        metrics::histogram!("godwit_checkpoint_lock_seconds")
            .record(started.elapsed().as_secs_f64());
        self.wait(self.storage.sync()).await?;
        let written = tokio::task::spawn_blocking(move || {
            snapshot.write_checkpoint(&mut writer).map_err(|e| {
                StorageError::io("writing checkpoint", std::io::Error::other(e.to_string()))
            })?;
            drop(snapshot);
            writer.commit(live)
        })
        .await
        .map_err(|e| Error::Unavailable(format!("checkpoint task failed: {e}")))?;
        written.map_err(|e| self.fail(e))?;
        Ok(())
    }
}

/// The background task: sweeps busy queues every tick and checkpoints when the log has
/// grown enough. Ends when the broker is dropped or shut down.
pub(super) async fn sweeper(inner: Weak<Inner>, mut stop: watch::Receiver<bool>, tick: Duration) {
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_maintenance = Instant::now();
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.changed() => return,
        }
        let Some(inner) = inner.upgrade() else { return };
        if *stop.borrow() {
            return;
        }
        {
            let mut core = inner.core.lock();
            let now = inner.clock.now_ms();
            core.state.kv_sweep(now);
            for queue in core.state.busy_queues() {
                if let Err(e) = inner.sweep(&mut core, &queue, now) {
                    tracing::warn!(queue, error = %e, "sweep failed");
                }
            }
        }
        let mut due = inner.storage.bytes_since_checkpoint() >= inner.config.checkpoint_bytes;
        if last_maintenance.elapsed() >= inner.config.maintenance {
            last_maintenance = Instant::now();
            if inner.reclaimable() {
                if let Err(e) = inner.compact() {
                    tracing::error!(error = %e, "compaction failed");
                }
                due = true;
            }
        }
        if due {
            if let Err(e) = inner.checkpoint().await {
                tracing::error!(error = %e, "checkpoint failed");
            }
        }
    }
}
