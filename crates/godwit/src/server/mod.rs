//! The server runtime every listener runs on: accept loops, one connection limit for the
//! whole process, one shutdown signal, and a bounded drain.
//!
//! The shape is tokio's mini-redis `server.rs`. Each listener runs an accept loop. An
//! accepted connection takes a permit from the process-wide [`Semaphore`]; the permit
//! lives in a [`ConnGuard`] that gives it back when the connection task ends, however it
//! ends. A connection over the limit is handed to [`Face::refuse`] (HTTP answers 503),
//! at most [`MAX_REFUSING`] at a time and each for at most [`REFUSE_TIMEOUT`], so a flood
//! of refused clients costs a fixed amount of work.
//!
//! A protocol plugs in as a [`Face`]: what to do with one accepted connection, and how to
//! turn one away. Faces own their protocol's timeouts; the runtime owns the limit, the
//! shutdown signal and the drain. The HTTP face is in [`http`].
//!
//! What does not live here: the broker, routes, protocol parsing.

mod activity;
mod body;
pub mod http;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

/// Gauge of open (admitted) connections across all listeners.
pub const CONNECTIONS_OPEN: &str = "godwit_connections_open";
/// Counter of connections refused because the connection limit was reached.
pub const CONNECTIONS_REFUSED: &str = "godwit_connections_refused_total";

/// Most refusals in progress at once; past that, connections over the limit are closed
/// without a reply.
pub const MAX_REFUSING: usize = 64;
/// Longest time one refusal (write the reply, wait for the client to close) may take.
pub const REFUSE_TIMEOUT: Duration = Duration::from_millis(500);
/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Refusals and accept errors are logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(1);

/// A protocol served on a listener: one accepted connection at a time, in its own task.
///
/// `serve` must end soon after `conn.shutdown` fires (finish the request in flight, then
/// close) and must close connections that idle longer than `conn.idle_timeout`.
pub trait Face: Send + Sync + 'static {
    /// A short name for logs and metric labels, e.g. `"http"`.
    fn name(&self) -> &'static str;

    /// Serves one admitted connection until it closes or the server shuts down.
    fn serve(&self, stream: TcpStream, conn: ConnCtx) -> impl Future<Output = ()> + Send;

    /// Tells a connection over the limit that the server is full, then closes it. The
    /// runtime stops it after [`REFUSE_TIMEOUT`].
    fn refuse(&self, stream: TcpStream) -> impl Future<Output = ()> + Send;
}

/// What a face gets with each admitted connection.
pub struct ConnCtx {
    /// The client's address.
    pub peer: SocketAddr,
    /// Fires once when the server begins to shut down.
    pub shutdown: Shutdown,
    /// Longest time the connection may sit idle between requests.
    pub idle_timeout: Duration,
}

/// The receiving end of the process's shutdown signal.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// Resolves once shutdown has begun (at once if it already has).
    pub async fn recv(&mut self) {
        // A dropped sender also means the server is going away.
        let _ = self.0.wait_for(|stopping| *stopping).await;
    }
}

/// Limits of the runtime, shared by every listener.
#[derive(Debug, Clone, Copy)]
pub struct RuntimeLimits {
    /// Most open connections across all listeners.
    pub max_connections: usize,
    /// Longest idle time of a connection between requests, for every face.
    pub idle_timeout: Duration,
    /// Longest time shutdown waits for in-flight connections before giving up on them.
    pub drain_timeout: Duration,
}

/// The process's listeners and the state they share.
pub struct Runtime {
    limits: RuntimeLimits,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    /// Every [`ConnGuard`] holds a clone; when all are gone, the drain is done.
    drained_tx: mpsc::Sender<()>,
    drained_rx: mpsc::Receiver<()>,
    listeners: JoinSet<()>,
}

/// State every accept loop and connection guard touches.
struct Shared {
    permits: Arc<Semaphore>,
    refusing: Arc<Semaphore>,
    open: AtomicUsize,
    refusal_log: RateLimited,
    accept_error_log: RateLimited,
}

impl Runtime {
    /// A runtime with no listeners yet.
    pub fn new(limits: RuntimeLimits) -> Self {
        let (stop, _) = watch::channel(false);
        let (drained_tx, drained_rx) = mpsc::channel(1);
        Self {
            limits,
            shared: Arc::new(Shared {
                permits: Arc::new(Semaphore::new(limits.max_connections)),
                refusing: Arc::new(Semaphore::new(MAX_REFUSING)),
                open: AtomicUsize::new(0),
                refusal_log: RateLimited::default(),
                accept_error_log: RateLimited::default(),
            }),
            stop,
            drained_tx,
            drained_rx,
            listeners: JoinSet::new(),
        }
    }

    /// Binds `addr` and serves `face` on it until shutdown; returns the bound address.
    pub async fn listen<F: Face>(
        &mut self,
        addr: SocketAddr,
        face: F,
    ) -> anyhow::Result<SocketAddr> {
        let name = face.name();
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the {name} listener on {addr}"))?;
        let local = listener
            .local_addr()
            .with_context(|| format!("reading the {name} listener's address"))?;
        let accept = AcceptLoop {
            listener,
            face: Arc::new(face),
            shared: self.shared.clone(),
            shutdown: Shutdown(self.stop.subscribe()),
            drained: self.drained_tx.clone(),
            idle_timeout: self.limits.idle_timeout,
        };
        self.listeners.spawn(accept.run());
        Ok(local)
    }

    /// Serves until `signal` resolves, then shuts down: stop accepting, tell every
    /// connection, and wait (at most the drain timeout) for them to finish.
    pub async fn run_until(mut self, signal: impl Future<Output = ()>) {
        signal.await;
        let _ = self.stop.send(true);
        while self.listeners.join_next().await.is_some() {}
        tracing::info!(
            open = self.shared.open.load(Ordering::Relaxed),
            "listeners closed; draining connections"
        );
        drop(self.drained_tx);
        let drain = tokio::time::timeout(self.limits.drain_timeout, self.drained_rx.recv());
        if drain.await.is_err() {
            tracing::warn!(
                open = self.shared.open.load(Ordering::Relaxed),
                timeout_ms = self.limits.drain_timeout.as_millis() as u64,
                "connections still open after the drain timeout; closing them"
            );
        } else {
            tracing::info!("all connections closed");
        }
    }
}

/// One listener's accept loop.
struct AcceptLoop<F> {
    listener: TcpListener,
    face: Arc<F>,
    shared: Arc<Shared>,
    shutdown: Shutdown,
    drained: mpsc::Sender<()>,
    idle_timeout: Duration,
}

impl<F: Face> AcceptLoop<F> {
    async fn run(mut self) {
        let name = self.face.name();
        loop {
            let accepted = tokio::select! {
                _ = self.shutdown.recv() => break,
                accepted = self.listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, peer)) => self.admit(stream, peer),
                Err(err) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    if let Some(suppressed) = self.shared.accept_error_log.check() {
                        tracing::warn!(%err, suppressed, "{name}: accept failed");
                    }
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
        tracing::info!("{name} listener closed");
    }

    /// Starts serving a connection, or refuses it when the limit is reached.
    fn admit(&self, stream: TcpStream, peer: SocketAddr) {
        let name = self.face.name();
        let Ok(permit) = self.shared.permits.clone().try_acquire_owned() else {
            metrics::counter!(CONNECTIONS_REFUSED, "face" => name).increment(1);
            if let Some(suppressed) = self.shared.refusal_log.check() {
                tracing::warn!(%peer, suppressed, "{name}: connection limit reached; refusing");
            }
            // Past MAX_REFUSING refusals in flight the stream is dropped: closed unanswered.
            if let Ok(slot) = self.shared.refusing.clone().try_acquire_owned() {
                let face = self.face.clone();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(REFUSE_TIMEOUT, face.refuse(stream)).await;
                    drop(slot);
                });
            }
            return;
        };
        let guard = ConnGuard::new(permit, self.shared.clone(), self.drained.clone());
        let conn = ConnCtx {
            peer,
            shutdown: self.shutdown.clone(),
            idle_timeout: self.idle_timeout,
        };
        let face = self.face.clone();
        tokio::spawn(async move {
            let _guard = guard;
            face.serve(stream, conn).await;
        });
    }
}

/// Held by a connection task for its whole life: gives the connection permit back, and
/// tells the drain it is done, when dropped.
struct ConnGuard {
    _permit: OwnedSemaphorePermit,
    _drained: mpsc::Sender<()>,
    shared: Arc<Shared>,
}

impl ConnGuard {
    fn new(permit: OwnedSemaphorePermit, shared: Arc<Shared>, drained: mpsc::Sender<()>) -> Self {
        let open = shared.open.fetch_add(1, Ordering::Relaxed) + 1;
        // Set, not incremented: the exporter may forget an idle gauge, and a delta
        // applied to a forgotten gauge would drift.
        metrics::gauge!(CONNECTIONS_OPEN).set(open as f64);
        Self {
            _permit: permit,
            _drained: drained,
            shared,
        }
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let open = self.shared.open.fetch_sub(1, Ordering::Relaxed) - 1;
        metrics::gauge!(CONNECTIONS_OPEN).set(open as f64);
    }
}

/// Lets one log line through per [`LOG_EVERY`] and counts the ones it held back.
#[derive(Default)]
struct RateLimited {
    last: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl RateLimited {
    /// `Some(suppressed since the last line)` when a line may be logged now.
    fn check(&self) -> Option<u64> {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        match *last {
            Some(at) if now.duration_since(at) < LOG_EVERY => {
                self.suppressed.fetch_add(1, Ordering::Relaxed);
                None
            }
            _ => {
                *last = Some(now);
                Some(self.suppressed.swap(0, Ordering::Relaxed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limited_lets_one_line_through_per_interval() {
        let log = RateLimited::default();
        assert_eq!(log.check(), Some(0));
        assert_eq!(log.check(), None);
        assert_eq!(log.check(), None);
        *log.last.lock().unwrap() = Some(Instant::now() - LOG_EVERY);
        assert_eq!(log.check(), Some(2), "reports what it held back");
    }
}
