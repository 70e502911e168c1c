//! Opening a broker: load the latest checkpoint, replay the log after it through the
//! same `State::apply` the live broker uses, point relocated records at their copies,
//! and return every lease that was in flight to the head of its subscription.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;

use super::waiters::Waiters;
use super::{maintenance, Broker, BrokerConfig, Core, Inner};
use crate::clock::Clock;
use crate::error::Result;
use crate::op::{Location, Op};
use crate::state::State;
use crate::storage::{Storage, StorageError};

pub(super) fn open(
    storage: Arc<dyn Storage>,
    clock: Arc<dyn Clock>,
    config: BrokerConfig,
) -> Result<Broker> {
    let started = std::time::Instant::now();
    let mut state = match storage.load_checkpoint()? {
        Some(bytes) => State::from_checkpoint(&bytes)
            .map_err(|e| StorageError::Corrupt(format!("checkpoint does not decode: {e}")))?,
        None => State::default(),
    };
    // Tokens grow with wall time, so a receipt from before a restart never matches.
    state.bump_token(clock.now_ms().saturating_mul(1 << 20));
    let mut moved: HashMap<Location, Location> = HashMap::new();
    let mut groups = 0u64;
    storage.replay(&mut |group| {
        groups += 1;
        for (op, loc) in group {
            if let Op::Relocate { from, .. } = &op {
                moved.insert(*from, loc);
            }
            state.apply(&op, Some(loc));
        }
        Ok(())
    })?;
    state.relocate(&moved);
    let (stop, _) = watch::channel(false);
    let inner = Arc::new_cyclic(|me| Inner {
        me: me.clone(),
        core: Mutex::new(Core {
            state,
            waiters: Waiters::default(),
            sessions: HashMap::new(),
            next_delivery: 0,
            next_session: 0,
            deferred: None,
        }),
        storage,
        clock,
        config,
        failed: Mutex::new(None),
        has_failed: AtomicBool::new(false),
        closed: AtomicBool::new(false),
        stop,
        checkpoint_lock: tokio::sync::Mutex::new(()),
        compact_lock: Mutex::new(()),
        pushes: Default::default(),
        counters: Default::default(),
        streams: Default::default(),
        room: Default::default(),
    });
    {
        let mut core = inner.core.lock();
        let leases = core.state.all_leases();
        let released = leases.len();
        // Released one by one to the head, last first, so the first ends up first.
        for (queue, sub, id) in leases.into_iter().rev() {
            let op = Op::Release {
                queue,
                sub,
                ids: vec![id],
            };
            inner.commit(&mut core, vec![op])?;
        }
        tracing::info!(
            replayed_groups = groups,
            released_leases = released,
            queues = core.state.queue_names().count(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "broker state recovered"
        );
    }
    let weak = Arc::downgrade(&inner);
    let stop_rx = inner.stop.subscribe();
    let tick = inner.config.tick;
    tokio::spawn(maintenance::sweeper(weak, stop_rx, tick));
    Ok(Broker { inner })
}
