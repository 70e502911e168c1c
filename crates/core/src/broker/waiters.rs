//! Long-poll waiters, served in arrival order.
//!
//! A read that finds nothing registers a slot in the FIFO list of every queue it waits
//! on (for its subscription), under the same lock that saw nothing, so no push can slip
//! in between. Whenever an op may make messages ready, `Inner::serve` hands them to the
//! oldest slot first: the messages are reserved for it and the [`Delivery`] is sent
//! through its channel. No wake-all race: long-poll is fair, and round-robin among
//! live consumers is deterministic. A slot served on one queue is gone from the others
//! (its sender is taken), which gives Redis `BLPOP k1 k2 …` semantics.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{Core, Inner, ReadRequest};
use crate::error::Result;
use crate::Delivery;

/// One waiting read.
pub(super) struct Slot {
    request: ReadRequest,
    tx: Mutex<Option<oneshot::Sender<Delivery>>>,
}

impl Slot {
    fn gone(&self) -> bool {
        self.tx.lock().as_ref().is_none_or(|tx| tx.is_closed())
    }
}

/// Every waiting read, by queue then subscription, oldest first.
#[derive(Default)]
pub(super) struct Waiters {
    by_queue: HashMap<String, BTreeMap<String, VecDeque<Arc<Slot>>>>,
}

impl Waiters {
    pub(super) fn is_empty(&self) -> bool {
        self.by_queue.is_empty()
    }

    /// Reads still waiting on `queue`, over all its subscriptions.
    pub(super) fn count(&self, queue: &str) -> u64 {
        self.by_queue.get(queue).map_or(0, |subs| {
            subs.values()
                .flat_map(|list| list.iter())
                .filter(|slot| !slot.gone())
                .count() as u64
        })
    }

    fn add(&mut self, queue: &str, slot: Arc<Slot>) {
        self.by_queue
            .entry(queue.to_string())
            .or_default()
            .entry(slot.request.sub.clone())
            .or_default()
            .push_back(slot);
    }

    fn remove(&mut self, queue: &str, slot: &Arc<Slot>) {
        let Some(subs) = self.by_queue.get_mut(queue) else {
            return;
        };
        if let Some(list) = subs.get_mut(&slot.request.sub) {
            list.retain(|s| !Arc::ptr_eq(s, slot));
            if list.is_empty() {
                subs.remove(&slot.request.sub);
            }
        }
        if subs.is_empty() {
            self.by_queue.remove(queue);
        }
    }
}

impl Inner {
    /// Hands ready messages of `queue` to its waiters, oldest first, per subscription.
    pub(super) fn serve(&self, core: &mut Core, queue: &str) {
        let Some(subs) = core.waiters.by_queue.get(queue) else {
            return;
        };
        let subs: Vec<String> = subs.keys().cloned().collect();
        let now = self.clock.now_ms();
        for sub in subs {
            loop {
                let front = core
                    .waiters
                    .by_queue
                    .get_mut(queue)
                    .and_then(|s| s.get_mut(&sub))
                    .and_then(|list| list.front().cloned());
                let Some(slot) = front else { break };
                if slot.gone() {
                    core.waiters.remove(queue, &slot);
                    continue;
                }
                let reserved = Delivery::reserve(self, core, queue, &slot.request, now);
                let delivery = match reserved {
                    Ok(Some(d)) => d,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(queue, error = %e, "serving a waiter failed");
                        break;
                    }
                };
                core.waiters.remove(queue, &slot);
                let tx = slot.tx.lock().take();
                // A waiter that left (or was served on another queue) between the look
                // and the send gets nothing: the messages go back without re-locking.
                match tx {
                    Some(tx) => {
                        if let Err(delivery) = tx.send(delivery) {
                            delivery.release_locked(core);
                        }
                    }
                    None => delivery.release_locked(core),
                }
            }
        }
    }
}

/// Removes a slot from every list when its read ends, then drops the channel (which
/// may hold a delivery whose drop takes the lock, so never under it).
struct Registration<'a> {
    inner: &'a Inner,
    queues: &'a [&'a str],
    slot: Arc<Slot>,
    rx: Option<oneshot::Receiver<Delivery>>,
}

impl Registration<'_> {
    /// Leaves every list; returns a delivery that arrived meanwhile, if any.
    fn leave(&mut self) -> Option<Delivery> {
        {
            let mut core = self.inner.core.lock();
            for q in self.queues {
                core.waiters.remove(q, &self.slot);
            }
            self.slot.tx.lock().take();
        }
        self.rx.take().and_then(|mut rx| rx.try_recv().ok())
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        if self.rx.is_some() {
            drop(self.leave());
        }
    }
}

/// A read over `queues`: reserve what is ready now, else wait up to `wait`, served in
/// arrival order. Returns an empty delivery when nothing came.
pub(super) async fn read(
    inner: &Inner,
    queues: &[&str],
    request: ReadRequest,
    wait: Duration,
) -> Result<Delivery> {
    let deadline = Instant::now() + wait;
    let mut stopping = inner.stop.subscribe();
    let mut registration = None;
    {
        let (mut core, now) = inner.lock_swept(queues)?;
        for q in queues {
            super::require_sub(&core.state, q, &request.sub)?;
        }
        for q in queues {
            if let Some(d) = Delivery::reserve(inner, &mut core, q, &request, now)? {
                drop(core);
                return Ok(loaded(d));
            }
        }
        if !wait.is_zero() && !*stopping.borrow_and_update() {
            let (tx, rx) = oneshot::channel();
            let slot = Arc::new(Slot {
                request: request.clone(),
                tx: Mutex::new(Some(tx)),
            });
            for q in queues {
                core.waiters.add(q, slot.clone());
            }
            registration = Some(Registration {
                inner,
                queues,
                slot,
                rx: Some(rx),
            });
        }
    }
    let Some(mut reg) = registration else {
        return Ok(Delivery::empty(queues[0]));
    };
    loop {
        // Delays, lease expiries and TTLs change readiness by themselves: look again
        // when the next one is due (the sweep serves the oldest waiter, maybe us).
        let next_change = {
            let core = inner.core.lock();
            queues.iter().filter_map(|q| core.state.next_wake(q)).min()
        };
        let mut until = deadline;
        if let Some(at) = next_change {
            let ms = at.saturating_sub(inner.clock.now_ms()).max(1);
            if let Some(at) = Instant::now().checked_add(Duration::from_millis(ms)) {
                until = until.min(at);
            }
        }
        let Some(rx) = reg.rx.as_mut() else {
            return Ok(Delivery::empty(queues[0]));
        };
        tokio::select! {
            got = rx => {
                reg.rx = None;
                // Served on one queue, the slot must leave the others' lists as well.
                drop(reg.leave());
                return Ok(match got {
                    Ok(d) => loaded(d),
                    Err(_) => Delivery::empty(queues[0]),
                });
            }
            _ = tokio::time::sleep_until(until) => {}
            _ = stopping.changed() => {
                return Ok(reg.leave().map_or_else(|| Delivery::empty(queues[0]), loaded));
            }
        }
        if Instant::now() >= deadline {
            return Ok(reg
                .leave()
                .map_or_else(|| Delivery::empty(queues[0]), loaded));
        }
        drop(inner.lock_swept(queues)?);
    }
}

fn loaded(mut d: Delivery) -> Delivery {
    d.load();
    d
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use crate::storage::memory::MemoryStorage;
    use crate::{Broker, BrokerConfig, ManualClock, NewMessage, ReadOptions};

    /// Lists of waiting slots, by queue.
    fn slots(broker: &Broker) -> Vec<(String, usize)> {
        let core = broker.inner.core.lock();
        let mut out: Vec<(String, usize)> = core
            .waiters
            .by_queue
            .iter()
            .map(|(q, subs)| (q.clone(), subs.values().map(|l| l.len()).sum()))
            .collect();
        out.sort();
        out
    }

    #[tokio::test]
    async fn a_multi_queue_waiter_served_by_one_queue_leaves_no_slot_on_the_others() {
        let storage = Arc::new(MemoryStorage::new(1 << 20));
        let clock = Arc::new(ManualClock::new(1_000_000));
        let broker = Broker::open(storage, clock, BrokerConfig::default()).unwrap();
        for _ in 0..3 {
            let b = broker.clone();
            let waiter = tokio::spawn(async move {
                let opts = ReadOptions {
                    max: 1,
                    wait: Duration::from_secs(10),
                    subscription: None,
                    ..ReadOptions::default()
                };
                b.take_any(&["a", "b"], opts)
                    .await
                    .unwrap()
                    .into_messages()
                    .await
            });
            while slots(&broker).is_empty() {
                tokio::task::yield_now().await;
            }
            broker.push("a", vec![NewMessage::new("x")]).await.unwrap();
            assert_eq!(waiter.await.unwrap().unwrap().len(), 1);
            // Served on "a": nothing of it may stay registered on "b", where it would
            // pile up for as long as "b" gets no message.
            assert_eq!(slots(&broker), Vec::<(String, usize)>::new());
        }
    }
}
