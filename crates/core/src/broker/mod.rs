//! The async facade every face calls: validates, decides ops under one lock, hands them
//! to the store, applies them to the state, and answers once they are durable.
//!
//! One `Mutex<Core>` guards the model, the waiters and the sessions. Work under it is
//! planning and applying ops (microseconds) plus handing bytes to the store's writer,
//! which orders appends exactly as the lock does; fsync, body reads and waiting all
//! happen outside it.
//!
//! | file | idea |
//! | --- | --- |
//! | here | `Broker`: the operations faces call, and `commit` |
//! | `delivery.rs` | two-step delivery: reserve, write, confirm (or return on drop) |
//! | `pushes.rs` | push combining: one lock hand-off per batch of concurrent pushes |
//! | `session.rs` | connection-owned leases, released when the session ends |
//! | `waiters.rs` | long-poll waiters served in arrival order, over one or more queues |
//! | `maintenance.rs` | the sweeper, checkpoints and compaction |
//! | `recovery.rs` | opening: checkpoint, replay, leases back to the head |

mod delivery;
mod maintenance;
mod pushes;
mod recovery;
mod session;
mod waiters;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};
use tokio::sync::watch;

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::model::*;
use crate::name::{validate_queue, validate_subscription};
use crate::op::{body_hash, Op, RemoveReason};
use crate::state::{Meta, ReadMode, State, DEFAULT_SUB};
use crate::storage::{Storage, StorageError, Ticket};
use crate::validate;

pub use crate::config::BrokerConfig;
pub use delivery::Delivery;
pub use session::Session;
use waiters::Waiters;

/// A handle to the broker; cheap to clone, shared by every face.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

/// A lease owned by a session: `(queue, sub, id, token)`.
type SessionLease = (String, String, u64, u64);

/// Everything under the one lock.
struct Core {
    state: State,
    waiters: Waiters,
    sessions: HashMap<SessionId, Vec<SessionLease>>,
    next_delivery: u64,
    next_session: SessionId,
    /// While the push combiner applies a batch: appends are deferred (written together
    /// at the end of the batch), and the queues they made ready are noted here to be
    /// served only once the batch is written.
    deferred: Option<Vec<String>>,
}

struct Inner {
    me: Weak<Inner>,
    core: Mutex<Core>,
    storage: Arc<dyn Storage>,
    clock: Arc<dyn Clock>,
    config: BrokerConfig,
    failed: Mutex<Option<String>>,
    /// Set once `failed` is: lets the healthy path skip the lock.
    has_failed: AtomicBool,
    closed: AtomicBool,
    stop: watch::Sender<bool>,
    checkpoint_lock: tokio::sync::Mutex<()>,
    compact_lock: Mutex<()>,
    /// Pushes waiting for their batch's leader, one queue per lane (`pushes.rs`).
    pushes: [Mutex<Vec<pushes::Pending>>; pushes::LANES],
    /// Message counters, registered at first use.
    counters: Counters,
}

/// The broker's message counters, each registered once (with the recorder current at
/// its first use) instead of looked up in the registry on every push and take.
#[derive(Default)]
struct Counters {
    messages_in: std::sync::OnceLock<metrics::Counter>,
    messages_out: std::sync::OnceLock<metrics::Counter>,
}

impl Counters {
    /// `godwit_messages_in_total`: messages stored (duplicates not counted).
    fn messages_in(&self) -> &metrics::Counter {
        self.messages_in
            .get_or_init(|| metrics::counter!("godwit_messages_in_total"))
    }

    /// `godwit_messages_out_total`: messages whose delivery was confirmed.
    fn messages_out(&self) -> &metrics::Counter {
        self.messages_out
            .get_or_init(|| metrics::counter!("godwit_messages_out_total"))
    }
}

/// How a read consumes, before the time is known.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Consume {
    Take,
    Lease { visibility_ms: u64 },
    Move { to: String, at_head: bool },
}

impl Consume {
    fn mode(&self, now: u64) -> ReadMode {
        match self {
            Consume::Take => ReadMode::Take,
            Consume::Lease { visibility_ms } => ReadMode::Lease {
                until_ms: now.saturating_add(*visibility_ms),
            },
            Consume::Move { to, at_head } => ReadMode::Move {
                to: to.clone(),
                at_head: *at_head,
            },
        }
    }
}

/// What a read asks for, kept by a waiter until it is served.
#[derive(Debug, Clone)]
struct ReadRequest {
    sub: String,
    max: usize,
    end: End,
    consume: Consume,
    session: Option<SessionId>,
}

/// `NotFound` unless the queue has the subscription (the default one always exists).
fn require_sub(st: &State, queue: &str, sub: &str) -> Result<()> {
    if sub.is_empty() && st.is_fanout_only(queue) {
        Err(Error::NotFound(format!(
            "default subscription of {queue:?}: it is fan-out only, name a subscription"
        )))
    } else if sub.is_empty() || st.has_sub(queue, sub) {
        Ok(())
    } else {
        Err(Error::NotFound(format!(
            "subscription {sub:?} of {queue:?}"
        )))
    }
}

fn sub_name(opt: Option<&str>) -> Result<&str> {
    match opt {
        None | Some("") => Ok(DEFAULT_SUB),
        Some(name) => validate_subscription(name).map(|_| name),
    }
}

/// A queue's stats with its waiting reads counted (they live beside the state).
fn with_waiters(core: &Core, mut stats: QueueStats) -> QueueStats {
    stats.waiters = core.waiters.count(&stats.name);
    stats
}

/// Redis-style positions (negative ones count from the tail, -1 the last) normalized
/// against a length and clipped: `None` when the range is empty.
fn positions(start: i64, stop: i64, len: u64) -> Option<(u64, u64)> {
    let len_i = i64::try_from(len).unwrap_or(i64::MAX);
    let norm = |i: i64| if i < 0 { len_i.saturating_add(i) } else { i };
    let first = norm(start).max(0);
    let last = norm(stop).min(len_i.saturating_sub(1));
    if first > last || first >= len_i {
        return None;
    }
    // Both are in 0..len here.
    Some((u64::try_from(first).ok()?, u64::try_from(last).ok()?))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Broker {
    /// Opens a broker over `storage`: loads the latest checkpoint, replays the log tail,
    /// returns in-flight leases to their queues, and starts the background sweeper
    /// (which needs a Tokio runtime).
    pub fn open(
        storage: Arc<dyn Storage>,
        clock: Arc<dyn Clock>,
        config: BrokerConfig,
    ) -> Result<Self> {
        recovery::open(storage, clock, config)
    }

    /// The broker's configuration.
    pub fn config(&self) -> &BrokerConfig {
        &self.inner.config
    }

    /// Pushes messages to `queue` (created on first use) as one atomic step, durable
    /// as the server's fsync policy says.
    pub async fn push(&self, queue: &str, messages: Vec<NewMessage>) -> Result<Vec<PushOutcome>> {
        let reply = self
            .push_with(queue, messages, PushOptions::default())
            .await?;
        Ok(reply.outcomes)
    }

    /// Pushes messages as one atomic step with per-request options: the durability
    /// to wait for (more or less than the server's policy). The reply says what the
    /// push got: its outcomes, the queue's new length and whether it is on disk.
    pub async fn push_with(
        &self,
        queue: &str,
        messages: Vec<NewMessage>,
        opts: PushOptions,
    ) -> Result<PushReply> {
        validate_queue(queue)?;
        validate::messages(&self.inner.config, &messages)?;
        if let Some(why) = self.inner.storage.disk_low() {
            return Err(Error::DiskFull(why));
        }
        // Hashed here, before the lock, for the value index.
        let hashes = messages.iter().map(|m| body_hash(&m.body)).collect();
        let (ticket, outcomes, length) = self
            .inner
            .combined_push(queue, messages, hashes, opts.must_exist)
            .await?;
        let syncs = self.inner.storage.syncs_appends();
        let durability = opts.durability.unwrap_or(if syncs {
            Durability::Fsync
        } else {
            Durability::Written
        });
        // The batch is in the log file once the combiner answers: "written" needs no
        // more; "fsync" waits for the group commit, or forces a sync when appends are
        // not synced by themselves.
        let durable = match durability {
            Durability::Written => false,
            Durability::Fsync if syncs => {
                self.inner.wait(ticket).await?;
                true
            }
            Durability::Fsync => {
                self.inner.wait(self.inner.storage.sync()).await?;
                true
            }
        };
        let added = outcomes.iter().filter(|o| !o.duplicate).count();
        self.inner.counters.messages_in().increment(added as u64);
        Ok(PushReply {
            outcomes,
            length,
            durable,
        })
    }

    /// Delivers up to `opts.max` messages to be removed: the returned [`Delivery`] holds
    /// them reserved; [`Delivery::confirm`] once they are written to the client removes
    /// them, and dropping it instead returns them to the head.
    pub async fn take(&self, queue: &str, opts: ReadOptions) -> Result<Delivery> {
        self.read(&[queue], &opts, Consume::Take, None).await
    }

    /// Like [`Broker::take`], waiting on several queues at once: the first queue in
    /// `queues` with a ready message serves the oldest waiter (Redis `BLPOP k1 k2`).
    pub async fn take_any(&self, queues: &[&str], opts: ReadOptions) -> Result<Delivery> {
        self.read(queues, &opts, Consume::Take, None).await
    }

    /// Moves up to `opts.read.max` messages from an end of `queue` to an end of
    /// `opts.to`, waiting up to `opts.read.wait` for one (Redis `LMOVE`, `BLMOVE`,
    /// `RPOPLPUSH`). The returned [`Delivery`] holds them reserved in the source;
    /// [`Delivery::confirm`] moves them, in one durable step, and dropping it leaves
    /// them where they were. Each arrives in the destination as a new message (a new
    /// id, sharing the stored body) in every subscription the destination has.
    pub async fn move_messages(&self, queue: &str, opts: MoveOptions) -> Result<Delivery> {
        validate_queue(&opts.to)?;
        let consume = Consume::Move {
            to: opts.to.clone(),
            at_head: opts.to_end == End::Head,
        };
        self.read(&[queue], &opts.read, consume, None).await
    }

    /// Leases up to `opts.read.max` messages; each carries a receipt for ack/nack once
    /// the delivery is confirmed.
    pub async fn lease(&self, queue: &str, opts: LeaseOptions) -> Result<Delivery> {
        let consume = lease_consume(&opts)?;
        self.read(&[queue], &opts.read, consume, None).await
    }

    /// Opens a session: leases taken through it return to the head of their queue as
    /// soon as it ends or is dropped (a connection closing), without waiting for their
    /// visibility timeout.
    pub fn open_session(&self) -> Session {
        let id = {
            let mut core = self.inner.core.lock();
            core.next_session += 1;
            let id = core.next_session;
            // Present while the session lives: a lease confirmed after it ended is
            // returned at once instead of being owned by nobody.
            core.sessions.insert(id, Vec::new());
            id
        };
        Session::new(self.inner.clone(), id)
    }

    async fn read(
        &self,
        queues: &[&str],
        opts: &ReadOptions,
        consume: Consume,
        session: Option<SessionId>,
    ) -> Result<Delivery> {
        if queues.is_empty() {
            return Err(Error::InvalidArgument("no queue to read from".into()));
        }
        for q in queues {
            validate_queue(q)?;
        }
        validate::read(&self.inner.config, opts)?;
        // A failed store could not confirm what a read hands out: say so up front.
        if let Some(why) = self.inner.failure() {
            return Err(Error::Unavailable(why));
        }
        let sub = sub_name(opts.subscription.as_deref())?;
        let request = ReadRequest {
            sub: sub.to_string(),
            max: opts.max,
            end: opts.end,
            consume,
            session,
        };
        let delivery = waiters::read(&self.inner, queues, request, opts.wait).await?;
        Ok(delivery)
    }

    /// Acks leases by receipt; returns how many were live (stale receipts ack nothing).
    pub async fn ack(&self, queue: &str, receipts: &[Receipt]) -> Result<usize> {
        validate_queue(queue)?;
        let (ticket, n) = {
            let (mut core, now) = self.inner.lock_swept(&[queue])?;
            let mut by_sub: HashMap<&str, Vec<u64>> = HashMap::new();
            for r in receipts {
                let ids = by_sub.entry(r.sub.as_str()).or_default();
                if !ids.contains(&r.id) && core.state.live_lease(queue, &r.sub, r.id, r.token, now)
                {
                    ids.push(r.id);
                    if let Some(at) = core.state.leased_created_at(queue, &r.sub, r.id) {
                        core.state.note_consumed(queue, at, now);
                    }
                }
            }
            let n = by_sub.values().map(Vec::len).sum();
            let ops = by_sub
                .into_iter()
                .filter(|(_, ids)| !ids.is_empty())
                .map(|(sub, ids)| Op::Remove {
                    queue: queue.to_string(),
                    sub: sub.to_string(),
                    ids,
                    reason: RemoveReason::Acked,
                })
                .collect();
            (self.inner.commit(&mut core, ops)?, n)
        };
        self.inner.wait(ticket).await?;
        Ok(n)
    }

    /// Returns leased messages to the head of their queue (or dead-letters them);
    /// returns how many receipts were live.
    pub async fn nack(&self, queue: &str, receipts: &[Receipt]) -> Result<usize> {
        validate_queue(queue)?;
        let (ticket, n) = {
            let (mut core, now) = self.inner.lock_swept(&[queue])?;
            let mut ticket = Ticket::done();
            let mut n = 0;
            // Returned to the head last first, so the first receipt's message leads.
            for r in receipts.iter().rev() {
                if !core.state.live_lease(queue, &r.sub, r.id, r.token, now) {
                    continue;
                }
                if let Some(op) = core.state.plan_return(queue, &r.sub, r.id) {
                    ticket = self.inner.commit(&mut core, vec![op])?;
                    n += 1;
                }
            }
            (ticket, n)
        };
        self.inner.wait(ticket).await?;
        Ok(n)
    }

    /// Extends live leases to `visibility` from now; returns how many were live.
    pub async fn extend(
        &self,
        queue: &str,
        receipts: &[Receipt],
        visibility: Duration,
    ) -> Result<usize> {
        validate_queue(queue)?;
        validate::visibility(visibility)?;
        let (mut core, now) = self.inner.lock_swept(&[queue])?;
        let until = now.saturating_add(millis(visibility));
        let mut n = 0;
        for r in receipts {
            if core.state.live_lease(queue, &r.sub, r.id, r.token, now) {
                core.state.extend_lease(queue, &r.sub, r.id, until);
                n += 1;
            }
        }
        Ok(n)
    }

    /// Shows up to `max` ready messages in delivery order without consuming them.
    pub async fn peek(
        &self,
        queue: &str,
        max: usize,
        subscription: Option<&str>,
    ) -> Result<Vec<Message>> {
        self.peek_from(
            queue,
            ReadOptions {
                max,
                subscription: subscription.map(str::to_owned),
                ..ReadOptions::default()
            },
        )
        .await
    }

    /// Shows up to `opts.max` ready messages from `opts.end` without consuming them:
    /// from the head in delivery order, from the tail in reverse (`wait` is ignored).
    pub async fn peek_from(&self, queue: &str, opts: ReadOptions) -> Result<Vec<Message>> {
        validate_queue(queue)?;
        let sub = sub_name(opts.subscription.as_deref())?;
        validate::read(&self.inner.config, &opts)?;
        let pinned = {
            let (core, now) = self.inner.lock_swept(&[queue])?;
            require_sub(&core.state, queue, sub)?;
            let metas = core.state.peek(queue, sub, opts.max, opts.end, now);
            self.inner.pin(&metas)
        };
        Ok(delivery::load(pinned, None, sub))
    }

    /// The ready messages at positions `start..=stop` of the delivery order, without
    /// consuming them (Redis `LRANGE`/`LINDEX`): 0 is the head, -1 the tail, and out of
    /// range positions are clipped. At most the broker's `max_batch` messages per call.
    /// Each position costs its distance from the nearer end.
    pub async fn range(
        &self,
        queue: &str,
        subscription: Option<&str>,
        start: i64,
        stop: i64,
    ) -> Result<Vec<Message>> {
        validate_queue(queue)?;
        let sub = sub_name(subscription)?;
        let pinned = {
            let (core, now) = self.inner.lock_swept(&[queue])?;
            require_sub(&core.state, queue, sub)?;
            let len = core.state.visible(queue, sub);
            let Some((first, last)) = positions(start, stop, len) else {
                return Ok(Vec::new());
            };
            let max = self.inner.config.max_batch as u64;
            if last - first >= max {
                return Err(Error::InvalidArgument(format!(
                    "a range of {} messages is more than {max} (max_batch): ask for less at a time",
                    last - first + 1
                )));
            }
            let metas = core.state.range(queue, sub, first, last, now);
            self.inner.pin(&metas)
        };
        Ok(delivery::load(pinned, None, sub))
    }

    /// Returns the message at the head, ready and unreserved, without consuming it, and
    /// durably raises its soft-get counter (RestMQ's JSON `get`): repeated soft gets
    /// return the same message with the counter 1, 2, 3…
    pub async fn soft_get(
        &self,
        queue: &str,
        subscription: Option<&str>,
    ) -> Result<Option<Message>> {
        validate_queue(queue)?;
        let sub = sub_name(subscription)?;
        let (ticket, pinned) = {
            let (mut core, now) = self.inner.lock_swept(&[queue])?;
            require_sub(&core.state, queue, sub)?;
            let Some(meta) = core.state.peek(queue, sub, 1, End::Head, now).pop() else {
                return Ok(None);
            };
            let op = Op::SoftGet {
                queue: queue.to_string(),
                sub: sub.to_string(),
                id: meta.id,
            };
            let ticket = self.inner.commit(&mut core, vec![op])?;
            let counted = Meta {
                soft_gets: meta.soft_gets.saturating_add(1),
                ..meta
            };
            (ticket, self.inner.pin(&[counted]))
        };
        self.inner.wait(ticket).await?;
        Ok(delivery::load(pinned, None, sub).pop())
    }

    /// Whether the subscription holds a message (ready, delayed or in flight) whose
    /// body equals `body` (Redis `SISMEMBER`). Candidates are found by hash and their
    /// stored bodies compared, outside the lock.
    pub async fn contains(
        &self,
        queue: &str,
        subscription: Option<&str>,
        body: &[u8],
    ) -> Result<bool> {
        Ok(!self
            .equal_bodies(queue, subscription, body, true)
            .await?
            .is_empty())
    }

    /// Removes up to `count.unsigned_abs()` ready messages whose body equals `body`,
    /// from the head when `count > 0`, from the tail when `count < 0`, every one when
    /// `count == 0` (Redis `LREM`); returns how many. Leased and delayed messages are
    /// left alone.
    pub async fn remove_value(
        &self,
        queue: &str,
        subscription: Option<&str>,
        body: &[u8],
        count: i64,
    ) -> Result<u64> {
        let sub = sub_name(subscription)?;
        let equal = self.equal_bodies(queue, subscription, body, false).await?;
        if equal.is_empty() {
            return Ok(0);
        }
        let end = if count < 0 { End::Tail } else { End::Head };
        let max = match count {
            0 => usize::MAX,
            n => usize::try_from(n.unsigned_abs()).unwrap_or(usize::MAX),
        };
        let (ticket, n) = {
            let (mut core, now) = self.inner.lock_swept(&[queue])?;
            // Ids name immutable bodies: those compared equal still are, wherever
            // they are now.
            let ids = core.state.ready_among(queue, sub, &equal, end, max, now);
            let n = ids.len() as u64;
            let ops = if ids.is_empty() {
                Vec::new()
            } else {
                vec![Op::Remove {
                    queue: queue.to_string(),
                    sub: sub.to_string(),
                    ids,
                    reason: RemoveReason::Deleted,
                }]
            };
            (self.inner.commit(&mut core, ops)?, n)
        };
        self.inner.wait(ticket).await?;
        Ok(n)
    }

    /// Ids of held messages whose stored body equals `body` (the first one only when
    /// `first` is set): candidates by hash under the lock, bodies read after it.
    async fn equal_bodies(
        &self,
        queue: &str,
        subscription: Option<&str>,
        body: &[u8],
        first: bool,
    ) -> Result<std::collections::BTreeSet<u64>> {
        validate_queue(queue)?;
        let sub = sub_name(subscription)?;
        let hash = body_hash(body);
        let pinned = {
            let (core, _) = self.inner.lock_swept(&[queue])?;
            require_sub(&core.state, queue, sub)?;
            let metas = core.state.with_hash(queue, sub, hash);
            self.inner.pin(&metas)
        };
        let mut equal = std::collections::BTreeSet::new();
        for (meta, record) in pinned {
            let record = record.and_then(|r| r.read()).map_err(Error::Storage)?;
            if record.body == body {
                equal.insert(meta.id);
                if first {
                    break;
                }
            }
        }
        Ok(equal)
    }

    /// Deletes messages by id wherever they are in the subscription (ready, delayed or
    /// leased); returns how many it held. Ids it does not hold are ignored.
    pub async fn delete(
        &self,
        queue: &str,
        subscription: Option<&str>,
        ids: &[u64],
    ) -> Result<u64> {
        validate_queue(queue)?;
        let sub = sub_name(subscription)?;
        if ids.len() > self.inner.config.max_batch {
            return Err(Error::InvalidArgument(format!(
                "{} ids is more than {} (max_batch)",
                ids.len(),
                self.inner.config.max_batch
            )));
        }
        let (ticket, n) = {
            let (mut core, _) = self.inner.lock_swept(&[queue])?;
            if !core.state.has_queue(queue) {
                return Err(Error::NotFound(format!("queue {queue:?}")));
            }
            require_sub(&core.state, queue, sub)?;
            let held = core.state.held_ids(queue, sub, ids);
            let n = held.len() as u64;
            let ops = if held.is_empty() {
                Vec::new()
            } else {
                vec![Op::Remove {
                    queue: queue.to_string(),
                    sub: sub.to_string(),
                    ids: held,
                    reason: RemoveReason::Deleted,
                }]
            };
            (self.inner.commit(&mut core, ops)?, n)
        };
        self.inner.wait(ticket).await?;
        Ok(n)
    }

    /// Stats of one queue, or `NotFound`.
    pub fn stats(&self, queue: &str) -> Result<QueueStats> {
        validate_queue(queue)?;
        let (core, _) = self.inner.lock_swept(&[queue])?;
        core.state
            .stats(queue)
            .map(|s| with_waiters(&core, s))
            .ok_or_else(|| Error::NotFound(format!("queue {queue:?}")))
    }

    /// Stats of every queue, by name.
    pub fn list(&self) -> Vec<QueueStats> {
        self.list_prefix("")
    }

    /// Stats of the queues whose name starts with `prefix`, by name.
    pub fn list_prefix(&self, prefix: &str) -> Vec<QueueStats> {
        let core = self.inner.core.lock();
        let st = &core.state;
        st.queue_names_with(prefix)
            .filter_map(|q| st.stats(q))
            .map(|s| with_waiters(&core, s))
            .collect()
    }

    /// Creates a queue, or fails with `AlreadyExists` when it is there (queue-sample's
    /// topic creation, Kestrel and httpmq declarations). A fan-out-only queue has no
    /// default subscription.
    pub async fn create(&self, queue: &str, opts: CreateOptions) -> Result<()> {
        validate_queue(queue)?;
        validate::description(opts.description.as_deref())?;
        let ticket = {
            let mut core = self.inner.core.lock();
            if core.state.has_queue(queue) {
                return Err(Error::AlreadyExists(format!("queue {queue:?}")));
            }
            let op = Op::Create {
                queue: queue.to_string(),
                created_at_ms: self.inner.clock.now_ms(),
                description: opts.description,
                fanout_only: opts.fanout_only,
            };
            self.inner.commit(&mut core, vec![op])?
        };
        self.inner.wait(ticket).await
    }

    /// Creates a queue with the default options unless it exists; returns whether it
    /// was created.
    pub async fn ensure(&self, queue: &str) -> Result<bool> {
        match self.create(queue, CreateOptions::default()).await {
            Ok(()) => Ok(true),
            Err(Error::AlreadyExists(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Sets or clears a queue's description; `NotFound` when absent.
    pub async fn describe(&self, queue: &str, description: Option<String>) -> Result<()> {
        validate_queue(queue)?;
        validate::description(description.as_deref())?;
        let ticket = {
            let mut core = self.inner.core.lock();
            if !core.state.has_queue(queue) {
                return Err(Error::NotFound(format!("queue {queue:?}")));
            }
            let op = Op::Describe {
                queue: queue.to_string(),
                description,
            };
            self.inner.commit(&mut core, vec![op])?
        };
        self.inner.wait(ticket).await
    }

    /// The whole broker's counters: every queue's added up.
    pub fn totals(&self) -> BrokerStats {
        let mut totals = BrokerStats::default();
        self.list().iter().for_each(|q| totals.add(q));
        totals
    }

    /// The settings of a queue, or `NotFound`.
    pub fn settings(&self, queue: &str) -> Result<QueueSettings> {
        validate_queue(queue)?;
        let core = self.inner.core.lock();
        core.state
            .settings(queue)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("queue {queue:?}")))
    }

    /// Changes a queue's settings (creating it if needed); returns the new settings.
    pub async fn configure(&self, queue: &str, patch: SettingsPatch) -> Result<QueueSettings> {
        validate_queue(queue)?;
        validate::settings(queue, &patch)?;
        let (ticket, settings) = {
            let mut core = self.inner.core.lock();
            let mut settings = core.state.settings(queue).cloned().unwrap_or_default();
            patch.apply(&mut settings);
            let op = Op::settings(queue, &settings);
            let mut ticket = self.inner.commit(&mut core, vec![op])?;
            let now = self.inner.clock.now_ms();
            if let Some(op) = core.state.plan_retention(queue, now) {
                ticket = self.inner.commit(&mut core, vec![op])?;
            }
            (ticket, settings)
        };
        self.inner.wait(ticket).await?;
        Ok(settings)
    }

    /// Drops every message of the queue; ids keep rising. Returns how many the default
    /// subscription held, or `NotFound`.
    pub async fn purge(&self, queue: &str) -> Result<u64> {
        validate_queue(queue)?;
        let (ticket, n) = {
            let mut core = self.inner.core.lock();
            if !core.state.has_queue(queue) {
                return Err(Error::NotFound(format!("queue {queue:?}")));
            }
            let n = core.state.held(queue);
            let op = Op::Purge {
                queue: queue.to_string(),
            };
            (self.inner.commit(&mut core, vec![op])?, n)
        };
        self.inner.wait(ticket).await?;
        Ok(n)
    }

    /// Deletes a queue and its subscriptions; returns how many messages the default
    /// subscription held, or `NotFound` when absent.
    pub async fn drop_queue(&self, queue: &str) -> Result<u64> {
        validate_queue(queue)?;
        let (ticket, n) = {
            let mut core = self.inner.core.lock();
            if !core.state.has_queue(queue) {
                return Err(Error::NotFound(format!("queue {queue:?}")));
            }
            let n = core.state.held(queue);
            let op = Op::DropQueue {
                queue: queue.to_string(),
            };
            (self.inner.commit(&mut core, vec![op])?, n)
        };
        self.inner.wait(ticket).await?;
        Ok(n)
    }

    /// Creates a named subscription (idempotent: an existing one is left as it is and
    /// `false` returned).
    pub async fn subscribe(&self, queue: &str, name: &str, start: StartAt) -> Result<bool> {
        validate_queue(queue)?;
        validate_subscription(name)?;
        let ticket = {
            let mut core = self.inner.core.lock();
            if core.state.has_sub(queue, name) {
                return Ok(false);
            }
            let op = Op::Subscribe {
                queue: queue.to_string(),
                sub: name.to_string(),
                start,
            };
            self.inner.commit(&mut core, vec![op])?
        };
        self.inner.wait(ticket).await?;
        Ok(true)
    }

    /// Moves a subscription so it delivers retained messages from `id` on (its leases
    /// are dropped with it).
    pub async fn seek(&self, queue: &str, name: &str, id: u64) -> Result<()> {
        let op = Op::Seek {
            queue: queue.to_string(),
            sub: name.to_string(),
            id,
        };
        let ticket = self.inner.commit_on_subscription(queue, name, op)?;
        self.inner.wait(ticket).await
    }

    /// Deletes a named subscription; `NotFound` when absent.
    pub async fn unsubscribe(&self, queue: &str, name: &str) -> Result<()> {
        let op = Op::Unsubscribe {
            queue: queue.to_string(),
            sub: name.to_string(),
        };
        let ticket = self.inner.commit_on_subscription(queue, name, op)?;
        self.inner.wait(ticket).await
    }

    /// Stats of a queue's named subscriptions.
    pub fn subscriptions(&self, queue: &str) -> Result<Vec<SubscriptionStats>> {
        validate_queue(queue)?;
        let (core, _) = self.inner.lock_swept(&[queue])?;
        core.state
            .subscriptions(queue)
            .ok_or_else(|| Error::NotFound(format!("queue {queue:?}")))
    }

    /// `Ok` while the broker can make writes durable; otherwise why not (the store
    /// failed, or the broker is shut down).
    pub fn health(&self) -> std::result::Result<(), String> {
        if let Some(why) = self.inner.failure() {
            return Err(why);
        }
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err("the broker is shut down".into());
        }
        Ok(())
    }

    /// Whether the store is open and healthy.
    pub fn healthy(&self) -> bool {
        self.health().is_ok()
    }

    /// `Some(why)` while pushes are refused for lack of disk space.
    pub fn disk_low(&self) -> Option<String> {
        self.inner.storage.disk_low()
    }

    /// Writes a checkpoint now, so recovery replays only what comes after it, and lets
    /// the store reclaim segments nothing lives in any more.
    pub async fn checkpoint(&self) -> Result<()> {
        self.inner.checkpoint().await
    }

    /// Reclaims log space now: copies the live records of sparse sealed segments
    /// forward, then checkpoints so those and fully consumed segments are deleted.
    /// Returns how many records were copied.
    pub async fn compact(&self) -> Result<usize> {
        let copied = self.inner.compact()?;
        self.inner.checkpoint().await?;
        Ok(copied)
    }

    /// Begins a shutdown: waiting reads return what they have (nothing) at once and new
    /// reads do not wait, so a server can drain its connections quickly. Writes still
    /// work until [`Broker::shutdown`].
    pub fn stop_waiting(&self) {
        let _ = self.inner.stop.send(true);
    }

    /// Stops the sweeper, writes a final checkpoint and syncs the store; later calls
    /// fail with `Unavailable`.
    pub async fn shutdown(&self) -> Result<()> {
        let _ = self.inner.stop.send(true);
        let result = self.inner.checkpoint().await;
        self.inner.closed.store(true, Ordering::SeqCst);
        self.inner.wait(self.inner.storage.sync()).await?;
        result
    }
}

fn lease_consume(opts: &LeaseOptions) -> Result<Consume> {
    validate::visibility(opts.visibility)?;
    Ok(Consume::Lease {
        visibility_ms: millis(opts.visibility),
    })
}

impl Inner {
    fn arc(&self) -> Arc<Inner> {
        // Inner only exists inside the Arc that `me` points to.
        self.me
            .upgrade()
            .expect("the broker is alive while it runs")
    }

    /// Why the broker can no longer make writes durable, if so. A failure the store
    /// reports is remembered: the broker stays failed until a restart even if the
    /// store's report goes away.
    fn failure(&self) -> Option<String> {
        // The healthy path reads two flags and takes no lock: every commit asks.
        if !self.has_failed.load(Ordering::Acquire) {
            let why = self.storage.failure()?;
            metrics::gauge!("godwit_store_failed").set(1.0);
            self.failed.lock().get_or_insert(why);
            self.has_failed.store(true, Ordering::Release);
        }
        self.failed.lock().clone()
    }

    /// Commits `op`, which concerns the named subscription, or answers `NotFound` when
    /// the queue has no such subscription.
    fn commit_on_subscription(&self, queue: &str, name: &str, op: Op) -> Result<Ticket> {
        validate_queue(queue)?;
        validate_subscription(name)?;
        let mut core = self.core.lock();
        require_sub(&core.state, queue, name)?;
        self.commit(&mut core, vec![op])
    }

    /// Locks the core and applies the queues' time-driven changes; returns the guard
    /// and the time used.
    fn lock_swept(&self, queues: &[&str]) -> Result<(MutexGuard<'_, Core>, u64)> {
        let mut core = self.core.lock();
        let now = self.clock.now_ms();
        for q in queues {
            self.sweep(&mut core, q, now)?;
        }
        Ok((core, now))
    }

    /// Appends ops to the store and applies them: the one path every change takes.
    /// Waiters of queues where messages may have become ready are served after.
    fn commit(&self, core: &mut Core, mut ops: Vec<Op>) -> Result<Ticket> {
        if ops.is_empty() {
            return Ok(Ticket::done());
        }
        // A queue an op would create is created first, by a logged `Create` with the
        // time, so its creation time and order survive a restart.
        let mut creates: Vec<Op> = Vec::new();
        let mut checked: Option<&str> = None;
        for q in ops.iter().filter_map(creates_queue) {
            // A batch's pushes name one queue: look it up once.
            if checked == Some(q) {
                continue;
            }
            checked = Some(q);
            let new = !core.state.has_queue(q)
                && !creates
                    .iter()
                    .any(|c| matches!(c, Op::Create { queue, .. } if queue == q));
            if new {
                creates.push(Op::Create {
                    queue: q.to_string(),
                    created_at_ms: self.clock.now_ms(),
                    description: None,
                    fanout_only: false,
                });
            }
        }
        if !creates.is_empty() {
            creates.append(&mut ops);
            ops = creates;
        }
        if let Some(why) = self.failure() {
            return Err(Error::Unavailable(why));
        }
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::Unavailable("the broker is shut down".into()));
        }
        let appended = if core.deferred.is_some() {
            self.storage.append_deferred(&ops)
        } else {
            self.storage.append(&ops)
        }
        .map_err(|e| self.fail(e))?;
        let mut locations = appended.locations.into_iter();
        for op in &ops {
            let loc = match op {
                Op::Push(_) | Op::Relocate { .. } => locations.next(),
                _ => None,
            };
            core.state.apply(op, loc);
        }
        if let Some(ready) = core.deferred.as_mut() {
            // Not yet: a served reader could look for records still in memory.
            ready.extend(ops.iter().filter_map(readies).map(str::to_owned));
        } else if !core.waiters.is_empty() {
            for queue in ops.iter().filter_map(readies) {
                self.serve(core, queue);
            }
        }
        Ok(appended.ticket)
    }

    /// Maps a store error to the broker's; a disk-full refusal is not a failure.
    fn fail(&self, e: StorageError) -> Error {
        match e {
            StorageError::DiskFull(why) => Error::DiskFull(why),
            e => {
                tracing::error!(error = %e, "store failed; refusing further writes");
                metrics::gauge!("godwit_store_failed").set(1.0);
                *self.failed.lock() = Some(e.to_string());
                self.has_failed.store(true, Ordering::Release);
                Error::Storage(e)
            }
        }
    }

    async fn wait(&self, ticket: Ticket) -> Result<()> {
        ticket.wait().await.map_err(|e| self.fail(e))
    }

    /// Time-driven changes of one queue: due delays, expired leases (released or
    /// dead-lettered), expired TTLs, log retention by age.
    fn sweep(&self, core: &mut Core, queue: &str, now: u64) -> Result<()> {
        core.state.forget_dedup(queue, now);
        let promote = core.state.plan_promote(queue, now);
        self.commit(core, promote)?;
        for (sub, id) in core.state.expired_leases(queue, now).into_iter().rev() {
            if let Some(op) = core.state.plan_return(queue, &sub, id) {
                self.commit(core, vec![op])?;
            }
        }
        // After the returns: a returned lease whose TTL passed goes at once.
        let expire = core.state.plan_expire(queue, now);
        self.commit(core, expire)?;
        if let Some(op) = core.state.plan_retention(queue, now) {
            self.commit(core, vec![op])?;
        }
        Ok(())
    }

    /// Pins the records of `metas` (under the lock) for reading after it.
    fn pin(&self, metas: &[Meta]) -> Vec<delivery::Pinned> {
        metas
            .iter()
            .map(|m| (*m, self.storage.pin(m.loc)))
            .collect()
    }
}

/// The queue `op` creates when it does not exist yet.
fn creates_queue(op: &Op) -> Option<&str> {
    match op {
        Op::Push(rec) => Some(rec.queue.as_str()),
        Op::Configure { queue, .. } | Op::Settings { queue, .. } | Op::Subscribe { queue, .. } => {
            Some(queue.as_str())
        }
        Op::Move { to, .. } | Op::MoveTo { to, .. } => Some(to.as_str()),
        _ => None,
    }
}

/// The queue where `op` may make messages ready (whose waiters to serve), if any.
fn readies(op: &Op) -> Option<&str> {
    match op {
        Op::Push(rec) => Some(rec.queue.as_str()),
        Op::Promote { queue, .. }
        | Op::Release { queue, .. }
        | Op::Configure { queue, .. }
        | Op::Settings { queue, .. }
        | Op::Subscribe { queue, .. }
        | Op::Seek { queue, .. } => Some(queue.as_str()),
        Op::Move { to, .. } | Op::MoveTo { to, .. } => Some(to.as_str()),
        _ => None,
    }
}
