//! The async facade every face calls: validates, decides ops under one lock, hands them
//! to the store, applies them to the state, and answers once they are durable.
//!
//! One `Mutex<State>` guards the whole model. Work under it is planning and applying
//! ops (microseconds) plus handing bytes to the store's writer, which orders appends
//! exactly as the lock does; fsync, body reads and waiting all happen outside it.

use std::collections::{BTreeSet, HashMap};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::model::*;
use crate::name::{validate_queue, validate_subscription};
use crate::state::{Picked, ReadMode, State, DEFAULT_SUB};
use crate::storage::{Location, Op, Storage, StorageError, Ticket};

/// Limits and defaults of a broker.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Largest accepted message body in bytes.
    pub max_message_bytes: usize,
    /// Longest wait a read may ask for; longer asks are cut to this.
    pub max_wait: Duration,
    /// Most messages one read or batch may carry.
    pub max_batch: usize,
    /// Take a checkpoint once this many log bytes were written since the last one.
    pub checkpoint_bytes: u64,
    /// How often leases, delays and retention are swept.
    pub tick: Duration,
    /// How often the log is checked for segments to reclaim or compact.
    pub maintenance: Duration,
    /// A sealed segment whose live bytes are below this fraction of its size has its
    /// live records copied forward so the segment can be deleted.
    pub compact_below: f64,
    /// Most live bytes copied forward per maintenance round.
    pub compact_budget: u64,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: 1024 * 1024,
            max_wait: Duration::from_secs(30),
            max_batch: 1000,
            checkpoint_bytes: 64 * 1024 * 1024,
            tick: Duration::from_millis(100),
            maintenance: Duration::from_secs(5),
            compact_below: 0.5,
            compact_budget: 8 * 1024 * 1024,
        }
    }
}

/// A handle to the broker; cheap to clone, shared by every face.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

/// A lease owned by a session: `(queue, sub, id, token)`.
type SessionLease = (String, String, u64, u64);

/// A session's lease list is pruned of acked and expired leases from this length on.
const SESSION_PRUNE_AT: usize = 64;

struct Inner {
    state: Mutex<State>,
    storage: Arc<dyn Storage>,
    clock: Arc<dyn Clock>,
    config: BrokerConfig,
    waiters: Mutex<HashMap<String, Arc<Notify>>>,
    sessions: Mutex<HashMap<SessionId, Vec<SessionLease>>>,
    failed: Mutex<Option<String>>,
    closed: AtomicBool,
    stop: watch::Sender<bool>,
    checkpoint_lock: tokio::sync::Mutex<()>,
}

/// A receipt: `<token hex>.<id>.<subscription>`.
fn receipt(token: u64, id: u64, sub: &str) -> String {
    format!("{token:x}.{id}.{sub}")
}

fn parse_receipt(r: &str) -> Option<(u64, u64, &str)> {
    let mut parts = r.splitn(3, '.');
    let token = u64::from_str_radix(parts.next()?, 16).ok()?;
    let id = parts.next()?.parse().ok()?;
    Some((token, id, parts.next()?))
}

/// `NotFound` unless the queue has the subscription (the default one always exists).
fn require_sub(st: &State, queue: &str, sub: &str) -> Result<()> {
    if sub.is_empty() || st.has_sub(queue, sub) {
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

impl Broker {
    /// Opens a broker over `storage`: loads the latest checkpoint, replays the log tail,
    /// returns in-flight leases to their queues, and starts the background sweeper
    /// (which needs a Tokio runtime).
    pub fn open(
        storage: Arc<dyn Storage>,
        clock: Arc<dyn Clock>,
        config: BrokerConfig,
    ) -> Result<Self> {
        let started = std::time::Instant::now();
        let mut state = match storage.load_checkpoint()? {
            Some(bytes) => postcard::from_bytes::<State>(&bytes)
                .map_err(|e| StorageError::Corrupt(format!("checkpoint does not decode: {e}")))?,
            None => State::default(),
        };
        // Tokens grow with wall time, so a receipt from before a restart never matches.
        state.bump_token(clock.now_ms() << 20);
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
        let broker = Broker {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                storage,
                clock,
                config,
                waiters: Mutex::new(HashMap::new()),
                sessions: Mutex::new(HashMap::new()),
                failed: Mutex::new(None),
                closed: AtomicBool::new(false),
                stop,
                checkpoint_lock: tokio::sync::Mutex::new(()),
            }),
        };
        {
            let mut st = broker.inner.state.lock();
            let leases = st.all_leases();
            let released = leases.len();
            // Released one by one to the head, last first, so the first ends up first.
            for (queue, sub, id) in leases.into_iter().rev() {
                let op = Op::Release {
                    queue,
                    sub,
                    ids: vec![id],
                };
                broker.inner.commit(&mut st, vec![op])?;
            }
            tracing::info!(
                replayed_groups = groups,
                released_leases = released,
                queues = st.queue_names().count(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "broker state recovered"
            );
        }
        let weak = Arc::downgrade(&broker.inner);
        let stop_rx = broker.inner.stop.subscribe();
        let tick = broker.inner.config.tick;
        tokio::spawn(sweeper(weak, stop_rx, tick));
        Ok(broker)
    }

    /// The broker's configuration.
    pub fn config(&self) -> &BrokerConfig {
        &self.inner.config
    }

    /// Pushes messages to `queue` (created on first use) as one atomic, durable step.
    pub async fn push(&self, queue: &str, messages: Vec<NewMessage>) -> Result<Vec<PushOutcome>> {
        validate_queue(queue)?;
        self.inner.validate_messages(&messages)?;
        let (ticket, outcomes) = {
            let mut st = self.inner.state.lock();
            let now = self.inner.clock.now_ms();
            let (ops, outcomes) = st.plan_push(queue, messages, now)?;
            let mut ticket = self.inner.commit(&mut st, ops)?;
            if let Some(op) = st.plan_retention(queue, now) {
                ticket = self.inner.commit(&mut st, vec![op])?;
            }
            (ticket, outcomes)
        };
        let added = outcomes.iter().filter(|o| !o.duplicate).count();
        if added > 0 {
            self.inner.wake(queue);
        }
        self.inner.wait(ticket).await?;
        metrics::counter!("godwit_messages_in_total").increment(added as u64);
        Ok(outcomes)
    }

    /// Delivers and removes up to `opts.max` messages (at-most-once).
    pub async fn take(&self, queue: &str, opts: ReadOptions) -> Result<Vec<Message>> {
        self.read(queue, &opts, None, None).await
    }

    /// Leases up to `opts.read.max` messages; each carries a receipt for ack/nack.
    pub async fn lease(&self, queue: &str, opts: LeaseOptions) -> Result<Vec<Message>> {
        if opts.visibility.is_zero() {
            return Err(Error::InvalidArgument(
                "visibility must be at least 1 ms".into(),
            ));
        }
        self.read(queue, &opts.read, Some(opts.visibility), opts.session)
            .await
    }

    async fn read(
        &self,
        queue: &str,
        opts: &ReadOptions,
        visibility: Option<Duration>,
        session: Option<SessionId>,
    ) -> Result<Vec<Message>> {
        validate_queue(queue)?;
        let sub = sub_name(opts.subscription.as_deref())?;
        let max = opts.max.clamp(1, self.inner.config.max_batch);
        let wait = opts.wait.min(self.inner.config.max_wait);
        let deadline = Instant::now() + wait;
        loop {
            let waiter = (!wait.is_zero()).then(|| self.inner.notifier(queue));
            let mut notified = pin!(waiter.as_ref().map(|w| w.notify.notified()));
            // Register before looking at the state, so a push in between still wakes us.
            if let Some(n) = notified.as_mut().as_pin_mut() {
                n.enable();
            }
            let (ticket, picked, wake_at) = {
                let (mut st, now) = self.inner.lock_swept(queue)?;
                require_sub(&st, queue, sub)?;
                let mode = match visibility {
                    Some(v) => ReadMode::Lease {
                        until_ms: now + v.as_millis() as u64,
                    },
                    None => ReadMode::Take,
                };
                let (ops, picked) = st.plan_read(queue, sub, max, mode, now);
                let ticket = self.inner.commit(&mut st, ops)?;
                (ticket, picked, st.next_wake(queue))
            };
            if !picked.is_empty() {
                self.inner.wait(ticket).await?;
                if let Some(session) = session {
                    let mut sessions = self.inner.sessions.lock();
                    let owned = sessions.entry(session).or_default();
                    for p in &picked {
                        // A long session acks most of what it leases: before the list
                        // grows, forget leases that are no longer live (amortised O(1)).
                        if owned.len() >= SESSION_PRUNE_AT && owned.len() == owned.capacity() {
                            let st = self.inner.state.lock();
                            let now = self.inner.clock.now_ms();
                            owned.retain(|(q, s, id, t)| st.live_lease(q, s, *id, *t, now));
                        }
                        if let Some(token) = p.token {
                            owned.push((queue.to_string(), sub.to_string(), p.meta.id, token));
                        }
                    }
                }
                metrics::counter!("godwit_messages_out_total").increment(picked.len() as u64);
                return self.inner.load(sub, picked);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let mut until = deadline;
            if let Some(at) = wake_at {
                let ms = at.saturating_sub(self.inner.clock.now_ms()).max(1);
                until = until.min(now + Duration::from_millis(ms));
            }
            let mut stopping = self.inner.stop.subscribe();
            if *stopping.borrow_and_update() {
                return Ok(Vec::new());
            }
            let woken = async {
                match notified.as_mut().as_pin_mut() {
                    Some(n) => n.await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep_until(until) => {}
                _ = stopping.changed() => return Ok(Vec::new()),
            }
        }
    }

    /// Acks leases by receipt; returns how many were live (stale receipts ack nothing).
    pub async fn ack(&self, queue: &str, receipts: &[String]) -> Result<usize> {
        validate_queue(queue)?;
        let (ticket, n) = {
            let (mut st, now) = self.inner.lock_swept(queue)?;
            let mut by_sub: HashMap<&str, Vec<u64>> = HashMap::new();
            for (token, id, sub) in receipts.iter().filter_map(|r| parse_receipt(r)) {
                let ids = by_sub.entry(sub).or_default();
                if !ids.contains(&id) && st.live_lease(queue, sub, id, token, now) {
                    ids.push(id);
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
                    reason: crate::storage::RemoveReason::Acked,
                })
                .collect();
            (self.inner.commit(&mut st, ops)?, n)
        };
        self.inner.wait(ticket).await?;
        Ok(n)
    }

    /// Returns leased messages to the head of their queue (or dead-letters them);
    /// returns how many receipts were live.
    pub async fn nack(&self, queue: &str, receipts: &[String]) -> Result<usize> {
        validate_queue(queue)?;
        let (ticket, n) = {
            let (mut st, now) = self.inner.lock_swept(queue)?;
            let mut ticket = Ticket::done();
            let mut n = 0;
            // Returned to the head last first, so the first receipt's message leads.
            for (token, id, sub) in receipts.iter().rev().filter_map(|r| parse_receipt(r)) {
                if !st.live_lease(queue, sub, id, token, now) {
                    continue;
                }
                if let Some(op) = st.plan_return(queue, sub, id) {
                    ticket = self.inner.commit(&mut st, vec![op])?;
                    n += 1;
                }
            }
            (ticket, n)
        };
        if n > 0 {
            self.inner.wake(queue);
        }
        self.inner.wait(ticket).await?;
        Ok(n)
    }

    /// Extends live leases to `visibility` from now; returns how many were live.
    pub async fn extend(
        &self,
        queue: &str,
        receipts: &[String],
        visibility: Duration,
    ) -> Result<usize> {
        validate_queue(queue)?;
        if visibility.is_zero() {
            return Err(Error::InvalidArgument(
                "visibility must be at least 1 ms".into(),
            ));
        }
        let (mut st, now) = self.inner.lock_swept(queue)?;
        let mut n = 0;
        for (token, id, sub) in receipts.iter().filter_map(|r| parse_receipt(r)) {
            if st.live_lease(queue, sub, id, token, now) {
                st.extend_lease(queue, sub, id, now + visibility.as_millis() as u64);
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
        validate_queue(queue)?;
        let sub = sub_name(subscription)?;
        let max = max.clamp(1, self.inner.config.max_batch);
        let metas = {
            let (st, now) = self.inner.lock_swept(queue)?;
            require_sub(&st, queue, sub)?;
            st.peek(queue, sub, max, now)
        };
        let picked = metas
            .into_iter()
            .map(|meta| Picked { meta, token: None })
            .collect();
        self.inner.load(sub, picked)
    }

    /// Releases every lease owned by `session` (the connection ended).
    pub async fn end_session(&self, session: SessionId) -> Result<usize> {
        let owned = self
            .inner
            .sessions
            .lock()
            .remove(&session)
            .unwrap_or_default();
        let mut n = 0;
        let mut touched = BTreeSet::new();
        let ticket = {
            let mut st = self.inner.state.lock();
            let now = self.inner.clock.now_ms();
            let mut ticket = Ticket::done();
            for (queue, sub, id, token) in owned.into_iter().rev() {
                if st.live_lease(&queue, &sub, id, token, now) {
                    if let Some(op) = st.plan_return(&queue, &sub, id) {
                        ticket = self.inner.commit(&mut st, vec![op])?;
                        n += 1;
                        touched.insert(queue);
                    }
                }
            }
            ticket
        };
        for q in touched {
            self.inner.wake(&q);
        }
        self.inner.wait(ticket).await?;
        Ok(n)
    }

    /// Stats of one queue, or `NotFound`.
    pub fn stats(&self, queue: &str) -> Result<QueueStats> {
        validate_queue(queue)?;
        let (st, _) = self.inner.lock_swept(queue)?;
        st.stats(queue)
            .ok_or_else(|| Error::NotFound(format!("queue {queue:?}")))
    }

    /// Stats of every queue, by name.
    pub fn list(&self) -> Vec<QueueStats> {
        let st = self.inner.state.lock();
        st.queue_names().filter_map(|q| st.stats(q)).collect()
    }

    /// The settings of a queue, or `NotFound`.
    pub fn settings(&self, queue: &str) -> Result<QueueSettings> {
        validate_queue(queue)?;
        let st = self.inner.state.lock();
        st.settings(queue)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("queue {queue:?}")))
    }

    /// Changes a queue's settings (creating it if needed); returns the new settings.
    pub async fn configure(&self, queue: &str, patch: SettingsPatch) -> Result<QueueSettings> {
        validate_queue(queue)?;
        if let Some(Some(dlq)) = &patch.dead_letter_queue {
            validate_queue(dlq)?;
            if dlq == queue {
                return Err(Error::InvalidArgument(
                    "a queue cannot be its own dead-letter queue".into(),
                ));
            }
        }
        if patch.max_deliveries == Some(Some(0)) {
            return Err(Error::InvalidArgument(
                "max_deliveries must be at least 1".into(),
            ));
        }
        let (ticket, settings) = {
            let mut st = self.inner.state.lock();
            let mut settings = st.settings(queue).cloned().unwrap_or_default();
            patch.apply(&mut settings);
            let op = Op::Configure {
                queue: queue.to_string(),
                settings: settings.clone(),
            };
            let mut ticket = self.inner.commit(&mut st, vec![op])?;
            let now = self.inner.clock.now_ms();
            if let Some(op) = st.plan_retention(queue, now) {
                ticket = self.inner.commit(&mut st, vec![op])?;
            }
            (ticket, settings)
        };
        if !settings.paused {
            self.inner.wake(queue);
        }
        self.inner.wait(ticket).await?;
        Ok(settings)
    }

    /// Drops every message of the queue; ids keep rising. Returns how many the default
    /// subscription held, or `NotFound`.
    pub async fn purge(&self, queue: &str) -> Result<u64> {
        validate_queue(queue)?;
        let (ticket, n) = {
            let mut st = self.inner.state.lock();
            if !st.has_queue(queue) {
                return Err(Error::NotFound(format!("queue {queue:?}")));
            }
            let n = st.held(queue);
            let op = Op::Purge {
                queue: queue.to_string(),
            };
            (self.inner.commit(&mut st, vec![op])?, n)
        };
        self.inner.wait(ticket).await?;
        Ok(n)
    }

    /// Deletes a queue and its subscriptions; `NotFound` when absent.
    pub async fn drop_queue(&self, queue: &str) -> Result<()> {
        validate_queue(queue)?;
        let ticket = {
            let mut st = self.inner.state.lock();
            if !st.has_queue(queue) {
                return Err(Error::NotFound(format!("queue {queue:?}")));
            }
            let op = Op::DropQueue {
                queue: queue.to_string(),
            };
            self.inner.commit(&mut st, vec![op])?
        };
        self.inner.wait(ticket).await
    }

    /// Creates a named subscription (idempotent: an existing one is left as it is and
    /// `false` returned).
    pub async fn subscribe(&self, queue: &str, name: &str, start: StartAt) -> Result<bool> {
        validate_queue(queue)?;
        validate_subscription(name)?;
        let ticket = {
            let mut st = self.inner.state.lock();
            if st.has_sub(queue, name) {
                return Ok(false);
            }
            let op = Op::Subscribe {
                queue: queue.to_string(),
                sub: name.to_string(),
                start,
            };
            self.inner.commit(&mut st, vec![op])?
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
        self.inner.wake(queue);
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
        let (st, _) = self.inner.lock_swept(queue)?;
        st.subscriptions(queue)
            .ok_or_else(|| Error::NotFound(format!("queue {queue:?}")))
    }

    /// Whether the store is open and healthy.
    pub fn healthy(&self) -> bool {
        self.inner.failed.lock().is_none() && !self.inner.closed.load(Ordering::SeqCst)
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

impl Inner {
    fn validate_messages(&self, messages: &[NewMessage]) -> Result<()> {
        if messages.is_empty() {
            return Err(Error::InvalidArgument("no messages to push".into()));
        }
        if messages.len() > self.config.max_batch {
            return Err(Error::InvalidArgument(format!(
                "{} messages in one push; the limit is {}",
                messages.len(),
                self.config.max_batch
            )));
        }
        for m in messages {
            if m.body.len() > self.config.max_message_bytes {
                return Err(Error::TooLarge {
                    size: m.body.len(),
                    limit: self.config.max_message_bytes,
                });
            }
            if m.priority > MAX_PRIORITY {
                return Err(Error::InvalidArgument(format!(
                    "priority {} is out of range 0..={MAX_PRIORITY}",
                    m.priority
                )));
            }
            if let Some(key) = &m.dedup_id {
                if key.is_empty() || key.len() > 255 {
                    return Err(Error::InvalidArgument(
                        "dedup_id must be 1 to 255 bytes".into(),
                    ));
                }
            }
            const YEAR_MS: u128 = 365 * 24 * 3600 * 1000;
            let too_long = |d: Option<Duration>| d.is_some_and(|d| d.as_millis() > 100 * YEAR_MS);
            if too_long(m.delay) || too_long(m.ttl) {
                return Err(Error::InvalidArgument(
                    "delay and ttl are limited to 100 years".into(),
                ));
            }
        }
        Ok(())
    }

    /// Commits `op`, which concerns the named subscription, or answers `NotFound` when
    /// the queue has no such subscription.
    fn commit_on_subscription(&self, queue: &str, name: &str, op: Op) -> Result<Ticket> {
        validate_queue(queue)?;
        validate_subscription(name)?;
        let mut st = self.state.lock();
        require_sub(&st, queue, name)?;
        self.commit(&mut st, vec![op])
    }

    /// Locks the state and applies the queue's time-driven changes; returns the guard
    /// and the time used.
    fn lock_swept(&self, queue: &str) -> Result<(MutexGuard<'_, State>, u64)> {
        let mut st = self.state.lock();
        let now = self.clock.now_ms();
        self.sweep(&mut st, queue, now)?;
        Ok((st, now))
    }

    /// Appends ops to the store and applies them: the one path every change takes.
    fn commit(&self, st: &mut State, ops: Vec<Op>) -> Result<Ticket> {
        if ops.is_empty() {
            return Ok(Ticket::done());
        }
        if let Some(why) = self.failed.lock().clone() {
            return Err(Error::Unavailable(why));
        }
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::Unavailable("the broker is shut down".into()));
        }
        let appended = self.storage.append(&ops).map_err(|e| self.fail(e))?;
        let mut locations = appended.locations.into_iter();
        for op in &ops {
            let loc = match op {
                Op::Push(_) | Op::Relocate { .. } => locations.next(),
                _ => None,
            };
            st.apply(op, loc);
        }
        Ok(appended.ticket)
    }

    fn fail(&self, e: StorageError) -> Error {
        tracing::error!(error = %e, "store failed; refusing further writes");
        *self.failed.lock() = Some(e.to_string());
        Error::Storage(e)
    }

    async fn wait(&self, ticket: Ticket) -> Result<()> {
        ticket.wait().await.map_err(|e| self.fail(e))
    }

    /// Time-driven changes of one queue: due delays, expired leases (released or
    /// dead-lettered), log retention by age.
    fn sweep(&self, st: &mut State, queue: &str, now: u64) -> Result<()> {
        st.forget_dedup(queue, now);
        let promote = st.plan_promote(queue, now);
        let mut woke = !promote.is_empty();
        self.commit(st, promote)?;
        for (sub, id) in st.expired_leases(queue, now).into_iter().rev() {
            if let Some(op) = st.plan_return(queue, &sub, id) {
                if let Op::Move { to, .. } = &op {
                    self.wake(to);
                }
                self.commit(st, vec![op])?;
                woke = true;
            }
        }
        if let Some(op) = st.plan_retention(queue, now) {
            self.commit(st, vec![op])?;
        }
        if woke {
            self.wake(queue);
        }
        Ok(())
    }

    fn notifier<'a>(&'a self, queue: &'a str) -> Waiter<'a> {
        let notify = self
            .waiters
            .lock()
            .entry(queue.to_string())
            .or_default()
            .clone();
        Waiter {
            inner: self,
            queue,
            notify,
        }
    }

    fn wake(&self, queue: &str) {
        if let Some(n) = self.waiters.lock().get(queue) {
            n.notify_waiters();
        }
    }

    /// Reads the records of picked messages and builds the replies. A record that
    /// cannot be read is logged and skipped (its message is already consumed).
    fn load(&self, sub: &str, picked: Vec<Picked>) -> Result<Vec<Message>> {
        let mut out = Vec::with_capacity(picked.len());
        let mut first_err = None;
        for p in picked {
            match self.storage.read(p.meta.loc) {
                Ok(rec) => out.push(Message {
                    id: p.meta.id,
                    body: rec.body,
                    priority: p.meta.priority,
                    created_at_ms: rec.created_at_ms,
                    deliveries: p.meta.deliveries as u32,
                    headers: rec.headers,
                    receipt: p.token.map(|t| receipt(t, p.meta.id, sub)),
                }),
                Err(e) => {
                    tracing::error!(id = p.meta.id, error = %e, "message record unreadable");
                    metrics::counter!("godwit_unreadable_records_total").increment(1);
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) if out.is_empty() => Err(Error::Storage(e)),
            _ => Ok(out),
        }
    }

    /// Whether some sealed segment is dead or sparse enough to be worth a round of
    /// compaction and a checkpoint.
    fn reclaimable(&self) -> bool {
        let sealed = self.storage.sealed_segments();
        if sealed.is_empty() {
            return false;
        }
        let live = self.state.lock().live_segments();
        sealed.iter().any(|(n, size)| {
            let l = live.get(n).copied().unwrap_or(0);
            (l as f64) < (*size as f64) * self.config.compact_below
        })
    }

    /// Copies the live records of sparse sealed segments to the log's tail (within the
    /// budget) and points the state at the copies.
    fn compact(&self) -> Result<usize> {
        let mut st = self.state.lock();
        let live = st.live_segments();
        let mut budget = self.config.compact_budget;
        let mut ops = Vec::new();
        let mut from = Vec::new();
        for (n, size) in self.storage.sealed_segments() {
            let l = live.get(&n).copied().unwrap_or(0);
            if l == 0 || (l as f64) >= (size as f64) * self.config.compact_below || l > budget {
                continue;
            }
            budget -= l;
            for loc in st.locations_in(n) {
                let push = self.storage.read(loc)?;
                from.push(loc);
                ops.push(Op::Relocate { from: loc, push });
            }
        }
        if ops.is_empty() {
            return Ok(0);
        }
        let appended = self.storage.append(&ops).map_err(|e| self.fail(e))?;
        let moved: HashMap<Location, Location> = from.into_iter().zip(appended.locations).collect();
        st.relocate(&moved);
        tracing::info!(records = moved.len(), "compacted sparse log segments");
        Ok(moved.len())
    }

    async fn checkpoint(&self) -> Result<()> {
        let _one_at_a_time = self.checkpoint_lock.lock().await;
        let (writer, live) = {
            let st = self.state.lock();
            let mut writer = self.storage.begin_checkpoint()?;
            postcard::to_io(&*st, &mut writer).map_err(|e| {
                Error::Storage(StorageError::io(
                    "writing checkpoint",
                    std::io::Error::other(e.to_string()),
                ))
            })?;
            (writer, st.live_segments().into_keys().collect())
        };
        self.wait(self.storage.sync()).await?;
        tokio::task::spawn_blocking(move || writer.commit(live))
            .await
            .map_err(|e| Error::Unavailable(format!("checkpoint task failed: {e}")))??;
        Ok(())
    }
}

/// A reader's registration for wake-ups on one queue; the queue's entry is removed
/// with its last waiter, so long-polls on many names leave nothing behind.
struct Waiter<'a> {
    inner: &'a Inner,
    queue: &'a str,
    notify: Arc<Notify>,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let mut waiters = self.inner.waiters.lock();
        // One reference in the map, one here: no other reader waits on this queue.
        if Arc::strong_count(&self.notify) == 2 {
            waiters.remove(self.queue);
        }
    }
}

/// The background task: sweeps busy queues every tick and checkpoints when the log has
/// grown enough. Ends when the broker is dropped or shut down.
async fn sweeper(inner: Weak<Inner>, mut stop: watch::Receiver<bool>, tick: Duration) {
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
            let mut st = inner.state.lock();
            let now = inner.clock.now_ms();
            for queue in st.busy_queues() {
                if let Err(e) = inner.sweep(&mut st, &queue, now) {
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
