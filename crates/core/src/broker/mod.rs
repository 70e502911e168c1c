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
//! | `lists.rs` | positions, soft gets and delete by id (Redis lists, RestMQ) |
//! | `values.rs` | the value index: membership and removal by body |
//! | `kv.rs` | the key/value namespace queues share |
//! | `queues.rs` | queue lifecycle, settings, subscriptions and stats |
//! | `pushes.rs` | push combining: one lock hand-off per batch of concurrent pushes |
//! | `session.rs` | connection-owned leases, released when the session ends |
//! | `streams.rs` | the live streams hub: broadcast and round-robin consumers |
//! | `waiters.rs` | long-poll waiters served in arrival order, over one or more queues |
//! | `maintenance.rs` | the sweeper, checkpoints and compaction |
//! | `recovery.rs` | opening: checkpoint, replay, leases back to the head |

mod delivery;
mod kv;
mod lists;
mod maintenance;
mod pushes;
mod queues;
mod recovery;
mod room;
mod session;
mod streams;
mod values;
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
pub use streams::{Offer, QueueEvent, Stream, StreamItem, StreamMode, StreamOptions, StreamPolicy};
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
    /// Live consumers (`streams.rs`).
    streams: streams::Hub,
    /// Pushes waiting for room in a full blocking queue (`room.rs`).
    room: room::Room,
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

/// `NotFound` unless the queue has the subscription (the default one always exists),
/// and `IsACursor` for a bare cursor: what reads, leases, moves and removals of
/// messages ask first.
fn require_sub(st: &State, queue: &str, sub: &str) -> Result<()> {
    if st.is_cursor(queue, sub) {
        return Err(Error::IsACursor(format!("{sub:?} of {queue:?}")));
    }
    require_any_sub(st, queue, sub)
}

/// `NotFound` unless the queue has the subscription, of either kind.
fn require_any_sub(st: &State, queue: &str, sub: &str) -> Result<()> {
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
        let (ticket, outcomes, length) = self.push_or_block(queue, messages, hashes, &opts).await?;
        let durable = self.inner.settle(ticket, opts.durability).await?;
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
            // On a log queue an ack is a named subscription's last action.
            let log = n > 0 && core.state.is_log(queue);
            let mut ops = Vec::new();
            for (sub, ids) in by_sub.into_iter().filter(|(_, ids)| !ids.is_empty()) {
                if log && !sub.is_empty() {
                    ops.push(crate::state::touch(queue, sub, now));
                }
                ops.push(Op::Remove {
                    queue: queue.to_string(),
                    sub: sub.to_string(),
                    ids,
                    reason: RemoveReason::Acked,
                });
            }
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
            self.inner.pin(&core.state, queue, sub, &metas)
        };
        Ok(delivery::load(pinned, None, sub))
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
        require_any_sub(&core.state, queue, name)?;
        self.commit(&mut core, vec![op])
    }

    /// Commits `op`, which concerns an existing queue, or answers `NotFound` when there
    /// is no such queue; returns the ticket and how many messages the queue's default
    /// subscription held before the op (what a purge or a drop reports).
    fn commit_on_queue(&self, queue: &str, op: Op) -> Result<(Ticket, u64)> {
        validate_queue(queue)?;
        let mut core = self.core.lock();
        if !core.state.has_queue(queue) {
            return Err(Error::NotFound(format!("queue {queue:?}")));
        }
        let held = core.state.held(queue);
        Ok((self.commit(&mut core, vec![op])?, held))
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
            if new && core.state.has_key(q, self.clock.now_ms()) {
                return Err(Error::WrongType(format!(
                    "{q:?} is a key with a value, not a queue"
                )));
            }
            if new {
                creates.push(Op::Create {
                    queue: q.to_string(),
                    created_at_ms: self.clock.now_ms(),
                    description: None,
                    fanout_only: false,
                });
            }
        }
        for op in &ops {
            if let Op::Create { queue, .. } = op {
                if core.state.has_key(queue, self.clock.now_ms()) {
                    return Err(Error::WrongType(format!(
                        "{queue:?} is a key with a value, not a queue"
                    )));
                }
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
        self.notice_streams(&core.state, &ops);
        self.room.changed();
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

    /// Waits for a committed write to be as durable as asked (`None`: the server's
    /// fsync policy); returns whether an fsync covers it. Its records are in the log
    /// file once committed, so "written" needs no more; "fsync" waits for the group
    /// commit, or forces a sync when appends are not synced by themselves.
    async fn settle(&self, ticket: Ticket, durability: Option<Durability>) -> Result<bool> {
        let syncs = self.storage.syncs_appends();
        let durability = durability.unwrap_or(if syncs {
            Durability::Fsync
        } else {
            Durability::Written
        });
        match durability {
            Durability::Written => Ok(false),
            Durability::Fsync if syncs => {
                self.wait(ticket).await?;
                Ok(true)
            }
            Durability::Fsync => {
                self.wait(self.storage.sync()).await?;
                Ok(true)
            }
        }
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

    /// Pins the records of `metas` of a subscription (under the lock) for reading
    /// after it, with their soft-get counts.
    fn pin(&self, st: &State, queue: &str, sub: &str, metas: &[Meta]) -> Vec<delivery::Pinned> {
        let soft_gets = st.soft_gets_of(queue, sub, metas);
        metas
            .iter()
            .zip(soft_gets)
            .map(|(m, n)| (*m, n, self.storage.pin(m.loc)))
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
