//! The live streams hub: connected consumers of a queue's subscription, fed by one pump
//! per group, the mechanism every live face shares (SSE and WebSocket streams, RestMQ's
//! Comet, Redis `SUBSCRIBE`, Kestrel's `monitor`).
//!
//! Consumers of the same queue, subscription, mode and policy form a group. The group's
//! pump reads with the ordinary two-step delivery (a take or a lease that waits) and
//! offers what it got:
//!
//! - **broadcast**: each batch is taken once and offered to every consumer, in order;
//! - **round-robin**: each message is offered to one consumer, rotating in connection
//!   order (one that is full or gone is skipped).
//!
//! An [`Offer`] counts as delivered once a consumer reports it written to its connection
//! ([`Offer::written`]): the pump's delivery is then confirmed. When every consumer it
//! went to drops it unwritten (they went away), the delivery is dropped and its messages
//! return to the head of the subscription, where the next read (and, round-robin, the
//! next consumer) gets them. A broadcast consumer that falls more than [`BUFFER`]
//! offers behind is disconnected rather than slowing the others (as Redis disconnects a
//! slow pub/sub client).
//!
//! Queue events (purged, dropped, live delivery paused or resumed) reach every stream
//! of the queue; while a queue's `live_paused` (or `paused`) is set its pumps read
//! nothing, and plain reads are not affected by `live_paused`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{mpsc, Notify, Semaphore};

use super::{Broker, Delivery, Inner};
use crate::error::{Error, Result};
use crate::model::{LeaseOptions, LivePolicy, Message, ReadOptions};
use crate::name::{validate_queue, validate_subscription};
use crate::op::Op;

/// How a group's consumers share its messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum StreamPolicy {
    /// Every message to every consumer.
    #[default]
    Broadcast,
    /// Each message to one consumer, in turn.
    RoundRobin,
    /// As the queue's `live_policy` setting says, read before each delivery, so a
    /// change reaches connected consumers at once (broadcast while never set):
    /// RestMQ's `/p/`.
    FromQueue,
}

/// How a stream consumes what it delivers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum StreamMode {
    /// Removed once written.
    #[default]
    Take,
    /// Leased once written, for this long; the consumer acks by receipt.
    Lease {
        /// The lease's visibility.
        visibility: Duration,
    },
}

/// What a consumer asks for when it connects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamOptions {
    /// A named subscription, or `None` for the queue's default one.
    pub subscription: Option<String>,
    /// Take or lease.
    pub mode: StreamMode,
    /// Broadcast or round-robin.
    pub policy: StreamPolicy,
    /// Messages with ids up to this one were delivered to this consumer before (an SSE
    /// `Last-Event-ID`): offered again, they count as written and are not sent.
    pub after_id: Option<u64>,
}

/// Something that happened to a stream's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueEvent {
    /// Every message was removed.
    Purged,
    /// The queue was deleted.
    Dropped,
    /// Live delivery stopped (`live_paused` or `paused` set).
    Paused,
    /// Live delivery resumed.
    Resumed,
}

/// What a stream yields.
#[derive(Debug)]
pub enum StreamItem {
    /// Messages to write, then report with [`Offer::written`].
    Offer(Offer),
    /// A queue event.
    Event(QueueEvent),
}

/// Offers a broadcast consumer may have waiting before it is disconnected; a round-robin
/// consumer with this many waiting is skipped.
pub const BUFFER: usize = 256;

/// Messages a broadcast pump takes at once.
const BATCH: usize = 64;

/// Deliveries of one group awaiting their consumers' reports at once.
const IN_FLIGHT: usize = 64;

/// Messages offered to a consumer: it writes them to its connection, then calls
/// [`Offer::written`]. Dropped without that, the offer counts as not delivered to it.
#[derive(Debug)]
pub struct Offer {
    messages: Arc<Vec<Message>>,
    report: Option<mpsc::UnboundedSender<bool>>,
}

impl Offer {
    /// The messages, in delivery order.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// Reports the messages written to the consumer's connection: the delivery is
    /// confirmed (the first report of a broadcast is enough).
    pub fn written(mut self) {
        if let Some(report) = self.report.take() {
            let _ = report.send(true);
        }
    }
}

impl Drop for Offer {
    fn drop(&mut self) {
        if let Some(report) = self.report.take() {
            let _ = report.send(false);
        }
    }
}

/// A connected live consumer: yields offers and events until the queue's stream ends
/// (the broker stops, or this consumer fell too far behind). Dropping it disconnects it;
/// offers it held return to the others or to the queue.
#[derive(Debug)]
pub struct Stream {
    rx: mpsc::Receiver<StreamItem>,
    after_id: Option<u64>,
    _member: MemberGuard,
}

impl Stream {
    /// The next offer or event; `None` once the stream has ended.
    pub async fn next(&mut self) -> Option<StreamItem> {
        loop {
            let item = self.rx.recv().await?;
            let StreamItem::Offer(mut offer) = item else {
                return Some(item);
            };
            let Some(after) = self.after_id else {
                return Some(StreamItem::Offer(offer));
            };
            if offer.messages.iter().all(|m| m.id <= after) {
                // Delivered before the consumer reconnected: written, not sent again.
                offer.written();
                continue;
            }
            if offer.messages.iter().any(|m| m.id <= after) {
                let rest: Vec<Message> = offer
                    .messages
                    .iter()
                    .filter(|m| m.id > after)
                    .cloned()
                    .collect();
                offer.messages = Arc::new(rest);
            }
            return Some(StreamItem::Offer(offer));
        }
    }
}

/// What identifies a group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct GroupKey {
    queue: String,
    sub: String,
    mode: StreamMode,
    policy: StreamPolicy,
}

#[derive(Debug)]
struct Member {
    id: u64,
    tx: mpsc::Sender<StreamItem>,
}

/// A group's consumers, in connection order.
#[derive(Debug, Default)]
struct Group {
    members: Mutex<Vec<Member>>,
    /// Membership or the queue's pause changed: the pump looks again.
    changed: Notify,
    /// The rotation of a round-robin group.
    next: AtomicU64,
    /// Whether live delivery was paused when last seen (to report changes once).
    paused: AtomicBool,
}

/// Every group, by key.
#[derive(Debug, Default)]
pub(super) struct Hub {
    groups: Mutex<HashMap<GroupKey, Arc<Group>>>,
    next_member: AtomicU64,
    /// Set while any group exists: lets `commit` skip the hub entirely otherwise.
    active: AtomicBool,
}

/// Removes its consumer from its group when the [`Stream`] goes.
#[derive(Debug)]
struct MemberGuard {
    group: Arc<Group>,
    id: u64,
}

impl Drop for MemberGuard {
    fn drop(&mut self) {
        self.group.members.lock().retain(|m| m.id != self.id);
        self.group.changed.notify_one();
    }
}

impl Broker {
    /// Connects a live consumer to `queue` (see the module doc). The first consumer of
    /// a group starts its pump; the last one to go stops it.
    pub fn connect(&self, queue: &str, opts: StreamOptions) -> Result<Stream> {
        validate_queue(queue)?;
        let sub = match opts.subscription.as_deref() {
            None | Some("") => String::new(),
            Some(name) => {
                validate_subscription(name)?;
                name.to_string()
            }
        };
        if let StreamMode::Lease { visibility } = opts.mode {
            crate::validate::visibility(visibility)?;
        }
        if let Some(why) = self.inner.failure() {
            return Err(Error::Unavailable(why));
        }
        if self.inner.core.lock().state.is_cursor(queue, &sub) {
            return Err(Error::IsACursor(format!("{sub:?} of {queue:?}")));
        }
        let paused = self.live_paused(queue);
        let key = GroupKey {
            queue: queue.to_string(),
            sub,
            mode: opts.mode,
            policy: opts.policy,
        };
        let hub = &self.inner.streams;
        let (tx, rx) = mpsc::channel(BUFFER);
        let id = hub.next_member.fetch_add(1, Ordering::Relaxed);
        let (group, start) = {
            let mut groups = hub.groups.lock();
            let mut start = false;
            let group = groups
                .entry(key.clone())
                .or_insert_with(|| {
                    start = true;
                    Arc::new(Group {
                        paused: AtomicBool::new(paused),
                        ..Group::default()
                    })
                })
                .clone();
            group.members.lock().push(Member { id, tx });
            hub.active.store(true, Ordering::Release);
            (group, start)
        };
        group.changed.notify_one();
        if start {
            let broker = self.clone();
            let pumped = group.clone();
            tokio::spawn(async move { broker.pump(key, pumped).await });
        }
        Ok(Stream {
            rx,
            after_id: opts.after_id,
            _member: MemberGuard { group, id },
        })
    }

    /// How many consumers are connected to `queue`'s streams (Redis `PUBLISH`'s reply).
    pub fn live_consumers(&self, queue: &str) -> u64 {
        let groups = self.inner.streams.groups.lock();
        groups
            .iter()
            .filter(|(k, _)| k.queue == queue)
            .map(|(_, g)| g.members.lock().len() as u64)
            .sum()
    }

    fn live_paused(&self, queue: &str) -> bool {
        self.settings(queue).is_ok_and(|s| s.live_stopped())
    }

    /// The policy a group delivers by now: its own, or the queue's setting.
    fn effective_policy(&self, key: &GroupKey) -> StreamPolicy {
        match key.policy {
            StreamPolicy::FromQueue => {
                match self.settings(&key.queue).ok().and_then(|s| s.live_policy) {
                    Some(LivePolicy::RoundRobin) => StreamPolicy::RoundRobin,
                    Some(LivePolicy::Broadcast) | None => StreamPolicy::Broadcast,
                }
            }
            policy => policy,
        }
    }

    /// One group's pump: reads and offers until the group is empty or the broker stops.
    async fn pump(self, key: GroupKey, group: Arc<Group>) {
        let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
        loop {
            if *self.inner.stop.borrow() || self.inner.failure().is_some() {
                break;
            }
            if group.members.lock().is_empty() {
                let mut groups = self.inner.streams.groups.lock();
                // Still empty under the hub's lock: no consumer can join it any more.
                if group.members.lock().is_empty() {
                    groups.remove(&key);
                    if groups.is_empty() {
                        self.inner.streams.active.store(false, Ordering::Release);
                    }
                    return;
                }
                continue;
            }
            if group.paused.load(Ordering::Acquire) {
                let _ =
                    tokio::time::timeout(Duration::from_secs(1), group.changed.notified()).await;
                group
                    .paused
                    .store(self.live_paused(&key.queue), Ordering::Release);
                continue;
            }
            let Ok(permit) = in_flight.clone().acquire_owned().await else {
                break;
            };
            let policy = self.effective_policy(&key);
            let delivery = tokio::select! {
                d = self.pump_read(&key, policy) => d,
                // A consumer came or went, or the queue paused: look again.
                _ = group.changed.notified() => continue,
            };
            let delivery = match delivery {
                Ok(d) if d.messages().is_empty() => continue,
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(queue = key.queue, error = %e, "live stream read failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            let messages = Arc::new(delivery.messages().to_vec());
            let (report, reports) = mpsc::unbounded_channel();
            let offered = match policy {
                StreamPolicy::RoundRobin => offer_one(&group, &messages, &report).await,
                _ => offer_all(&group, &messages, &report),
            };
            drop(report);
            if offered == 0 {
                // Nobody to take it: back to the head, as if never read.
                drop(delivery);
                continue;
            }
            tokio::spawn(settle(delivery, reports, permit));
        }
        // The broker stops: every consumer's stream ends.
        self.inner.streams.groups.lock().remove(&key);
        group.members.lock().clear();
    }

    async fn pump_read(&self, key: &GroupKey, policy: StreamPolicy) -> Result<Delivery> {
        let read = ReadOptions {
            max: match policy {
                StreamPolicy::RoundRobin => 1,
                _ => BATCH.min(self.inner.config.max_batch),
            },
            wait: self.inner.config.max_wait.min(Duration::from_secs(5)),
            subscription: (!key.sub.is_empty()).then(|| key.sub.clone()),
            ..ReadOptions::default()
        };
        match key.mode {
            StreamMode::Take => self.take(&key.queue, read).await,
            StreamMode::Lease { visibility } => {
                self.lease(&key.queue, LeaseOptions { read, visibility })
                    .await
            }
        }
    }
}

/// Offers `messages` to every member; returns to how many. A member whose buffer is
/// full has fallen too far behind and is disconnected.
fn offer_all(
    group: &Group,
    messages: &Arc<Vec<Message>>,
    report: &mpsc::UnboundedSender<bool>,
) -> usize {
    let mut members = group.members.lock();
    let mut offered = 0;
    members.retain(|m| {
        let offer = Offer {
            messages: messages.clone(),
            report: Some(report.clone()),
        };
        match m.tx.try_send(StreamItem::Offer(offer)) {
            Ok(()) => {
                offered += 1;
                true
            }
            Err(_) => false,
        }
    });
    offered
}

/// Offers `messages` to the next member in turn that has room (waiting for the chosen
/// one when all are full); returns 1 if one took it, 0 when none is left.
async fn offer_one(
    group: &Group,
    messages: &Arc<Vec<Message>>,
    report: &mpsc::UnboundedSender<bool>,
) -> usize {
    let offer = || Offer {
        messages: messages.clone(),
        report: Some(report.clone()),
    };
    let waiting_on = {
        let mut members = group.members.lock();
        let mut tries = members.len();
        let mut full: Option<mpsc::Sender<StreamItem>> = None;
        while tries > 0 && !members.is_empty() {
            tries -= 1;
            let at = (group.next.fetch_add(1, Ordering::Relaxed) as usize) % members.len();
            match members[at].tx.try_send(StreamItem::Offer(offer())) {
                Ok(()) => return 1,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    full.get_or_insert_with(|| members[at].tx.clone());
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    members.remove(at);
                }
            }
        }
        full
    };
    match waiting_on {
        Some(tx) => usize::from(tx.send(StreamItem::Offer(offer())).await.is_ok()),
        None => 0,
    }
}

/// Confirms `delivery` once a consumer reports it written, or drops it (its messages
/// return to the head) when every offer was dropped unwritten.
async fn settle(
    delivery: Delivery,
    mut reports: mpsc::UnboundedReceiver<bool>,
    _permit: tokio::sync::OwnedSemaphorePermit,
) {
    let mut delivery = delivery;
    while let Some(written) = reports.recv().await {
        if written {
            delivery.written();
            if let Err(e) = delivery.confirm().await {
                tracing::warn!(error = %e, "confirming a live delivery failed");
            }
            return;
        }
    }
}

impl Hub {
    /// Passes `op`'s queue event (if it has one) to the queue's streams; `paused` says
    /// whether live delivery is paused once the op applied (for settings changes).
    pub(super) fn notice(&self, op: &Op, paused: impl Fn(&str) -> bool) {
        if !self.active.load(Ordering::Acquire) {
            return;
        }
        let (queue, event) = match op {
            Op::Purge { queue } => (queue, Some(QueueEvent::Purged)),
            Op::DropQueue { queue } => (queue, Some(QueueEvent::Dropped)),
            Op::Settings { queue, .. } | Op::Configure { queue, .. } => (queue, None),
            _ => return,
        };
        let groups = self.groups.lock();
        let now_paused = event.is_none().then(|| paused(queue));
        for (key, group) in groups.iter().filter(|(k, _)| &k.queue == queue) {
            if event.is_none() && key.policy == StreamPolicy::FromQueue {
                // The policy may have changed: the pump reads it again before its next
                // delivery instead of finishing a read begun under the old one.
                group.changed.notify_one();
            }
            let event = match (event, now_paused) {
                (Some(e), _) => e,
                (None, Some(p)) if group.paused.swap(p, Ordering::AcqRel) != p => {
                    group.changed.notify_one();
                    if p {
                        QueueEvent::Paused
                    } else {
                        QueueEvent::Resumed
                    }
                }
                _ => continue,
            };
            for m in group.members.lock().iter() {
                let _ = m.tx.try_send(StreamItem::Event(event));
            }
        }
    }
}

impl Inner {
    /// Tells the streams about `ops` just applied (under the core's lock).
    pub(super) fn notice_streams(&self, state: &crate::state::State, ops: &[Op]) {
        if !self.streams.active.load(Ordering::Acquire) {
            return;
        }
        for op in ops {
            self.streams
                .notice(op, |q| state.settings(q).is_some_and(|s| s.live_stopped()));
        }
    }
}
