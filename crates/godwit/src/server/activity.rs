//! When an HTTP connection should be closed for stalling: the header and idle timeouts.
//!
//! hyper's own `header_read_timeout` starts whenever the connection waits for a request
//! head, so on a keep-alive connection it also caps the idle time between requests at the
//! header timeout. Godwit keeps the two apart, so a connection's clock is kept here:
//!
//! - a new connection, and an idle one whose next request has begun to arrive, must
//!   finish the request's head within the header timeout;
//! - between requests (none in flight, nothing arriving) a connection may idle for the
//!   idle timeout, counted from the end of its last response or its last write;
//! - while a request is in flight neither applies: the handler (long-polls), the body
//!   timeout and the response own the time.
//!
//! [`Activity`] is plain state with time passed in; [`Watched`] feeds it from the socket.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// The header and idle timeouts of one kind of connection.
#[derive(Debug, Clone, Copy)]
pub struct StallLimits {
    /// Longest time from a head's first byte (or the accept) to its end.
    pub header: Duration,
    /// Longest time between requests with nothing happening.
    pub idle: Duration,
}

/// One connection's activity: what is in flight and since when it has been quiet.
#[derive(Debug)]
pub struct Activity {
    requests: usize,
    /// When the connection last became idle, or last wrote.
    quiet_since: Instant,
    /// When the head of the next request began to arrive (set at accept).
    head_since: Option<Instant>,
}

impl Activity {
    /// A connection accepted at `now`, waiting for its first request head.
    pub fn new(now: Instant) -> Self {
        Self {
            requests: 0,
            quiet_since: now,
            head_since: Some(now),
        }
    }

    /// Bytes arrived from the client; when they begin a request head, the header
    /// timeout starts (which may bring the deadline forward).
    pub fn on_read(&mut self, now: Instant) {
        if self.requests == 0 && self.head_since.is_none() {
            self.head_since = Some(now);
        }
    }

    /// Bytes went out to the client.
    pub fn on_write(&mut self, now: Instant) {
        self.quiet_since = now;
    }

    /// A request head was parsed and handed to the service.
    pub fn request_started(&mut self) {
        self.requests += 1;
        self.head_since = None;
    }

    /// A request's response was sent (or abandoned).
    pub fn request_finished(&mut self, now: Instant) {
        self.requests = self.requests.saturating_sub(1);
        if self.requests == 0 {
            self.quiet_since = now;
            self.head_since = None;
        }
    }

    /// When the connection must be closed if nothing changes, or `None` while a request
    /// is in flight.
    pub fn deadline(&self, limits: StallLimits) -> Option<Instant> {
        if self.requests > 0 {
            return None;
        }
        Some(match self.head_since {
            Some(since) => since + limits.header,
            None => self.quiet_since + limits.idle,
        })
    }

    /// The deadline once shutdown began at `since`: with nothing in flight, close after
    /// `grace` without writes. hyper's graceful shutdown alone would wait for the first
    /// request of a connection that has not sent one, up to the header timeout.
    pub fn drain_deadline(&self, since: Instant, grace: Duration) -> Option<Instant> {
        (self.requests == 0).then(|| self.quiet_since.max(since) + grace)
    }
}

/// [`Activity`] shared by a connection's socket, its requests and its [`Watchdog`].
#[derive(Debug)]
pub struct SharedActivity {
    state: Mutex<Activity>,
}

impl SharedActivity {
    /// Activity of a connection accepted now.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(Activity::new(Instant::now())),
        })
    }

    /// Runs `f` on the state (never across an `.await`).
    pub fn with<R>(&self, f: impl FnOnce(&mut Activity) -> R) -> R {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Marks a request in flight until the returned guard is dropped.
    pub fn request(self: &Arc<Self>) -> InFlight {
        self.with(Activity::request_started);
        InFlight(self.clone())
    }
}

/// A request in flight on a connection; dropping it marks the request finished.
#[derive(Debug)]
pub struct InFlight(Arc<SharedActivity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.with(|a| a.request_finished(Instant::now()));
    }
}

/// Resolves when a connection must be closed for stalling or idling, or (once
/// [`Watchdog::drain`] was called) for having nothing left to send.
///
/// Cheap per request: one timer per connection, re-armed only when the deadline moves
/// earlier or when it fires early, and no wake-up of its own. Every change to the
/// activity happens while the connection's task is polled (socket reads and writes,
/// requests starting and their responses being dropped are all driven by hyper inside
/// that task), so a watchdog polled after the connection in the same task (a `biased`
/// select) sees each change as soon as it is made. A deadline that moved later is
/// found when the timer fires, and the timer is set again.
pub struct Watchdog {
    activity: Arc<SharedActivity>,
    limits: StallLimits,
    draining: Option<(Instant, Duration)>,
    timer: Pin<Box<Sleep>>,
    /// Where `timer` is set, if it is.
    armed: Option<Instant>,
}

impl Watchdog {
    /// A watchdog over `activity` with `limits`.
    pub fn new(activity: Arc<SharedActivity>, limits: StallLimits) -> Self {
        Self {
            activity,
            limits,
            draining: None,
            timer: Box::pin(tokio::time::sleep_until(tokio::time::Instant::now())),
            armed: None,
        }
    }

    /// Shutdown began at `since`: close once nothing is in flight and nothing was
    /// written for `grace`.
    pub fn drain(&mut self, since: Instant, grace: Duration) {
        self.draining = Some((since, grace));
    }

    /// Whether [`Watchdog::drain`] was called.
    pub fn draining(&self) -> bool {
        self.draining.is_some()
    }

    fn deadline(&self) -> Option<Instant> {
        self.activity.with(|a| {
            let drain = self
                .draining
                .and_then(|(since, grace)| a.drain_deadline(since, grace));
            match (a.deadline(self.limits), drain) {
                (Some(x), Some(y)) => Some(x.min(y)),
                (x, y) => x.or(y),
            }
        })
    }
}

impl std::future::Future for Watchdog {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let want = self.deadline();
            // Re-arm only when the deadline moved earlier than the timer; one that moved
            // later (or went away while a request is in flight) is seen when the timer
            // fires. So a busy keep-alive connection resets its timer about once per
            // header timeout, not once per request.
            if let Some(want) = want {
                if self.armed.is_none_or(|at| at > want) {
                    self.timer.as_mut().reset(want.into());
                    self.armed = Some(want);
                }
            }
            if self.armed.is_none() || self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            // The timer fired at `armed`.
            self.armed = None;
            match want {
                Some(want) if want <= Instant::now() => return Poll::Ready(()),
                // Moved later: loop to set the timer for it.
                Some(_) => {}
                // A request is in flight: no deadline until it ends, which happens
                // inside this task and so is seen at the next poll.
                None => return Poll::Pending,
            }
        }
    }
}

/// A socket that reports its reads and writes to the connection's [`SharedActivity`].
pub struct Watched<S> {
    inner: S,
    activity: Arc<SharedActivity>,
}

impl<S> Watched<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, activity: Arc<SharedActivity>) -> Self {
        Self { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.with(|a| a.on_read(Instant::now()));
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.with(|a| a.on_write(Instant::now()));
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.with(|a| a.on_write(Instant::now()));
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: StallLimits = StallLimits {
        header: Duration::from_secs(10),
        idle: Duration::from_secs(60),
    };

    fn at(t0: Instant, secs: u64) -> Instant {
        t0 + Duration::from_secs(secs)
    }

    #[test]
    fn a_new_connection_must_send_its_head_within_the_header_timeout() {
        let t0 = Instant::now();
        let mut a = Activity::new(t0);
        assert_eq!(a.deadline(LIMITS), Some(at(t0, 10)));
        // Bytes of the head do not extend it: a slow trickle is still cut off.
        a.on_read(at(t0, 5));
        assert_eq!(a.deadline(LIMITS), Some(at(t0, 10)));
    }

    #[test]
    fn no_deadline_while_a_request_is_in_flight() {
        let t0 = Instant::now();
        let mut a = Activity::new(t0);
        a.request_started();
        a.on_read(at(t0, 100)); // body bytes
        assert_eq!(a.deadline(LIMITS), None);
        a.request_finished(at(t0, 200));
        assert_eq!(
            a.deadline(LIMITS),
            Some(at(t0, 260)),
            "idle from the response"
        );
    }

    #[test]
    fn an_idle_connection_gets_the_idle_timeout_until_a_head_begins() {
        let t0 = Instant::now();
        let mut a = Activity::new(t0);
        a.request_started();
        a.request_finished(at(t0, 1));
        a.on_write(at(t0, 2)); // the tail of the response went out
        assert_eq!(a.deadline(LIMITS), Some(at(t0, 62)));
        a.on_read(at(t0, 30));
        assert_eq!(
            a.deadline(LIMITS),
            Some(at(t0, 40)),
            "header timeout from first byte"
        );
        a.request_started();
        assert_eq!(a.deadline(LIMITS), None);
    }

    #[test]
    fn a_draining_connection_closes_once_nothing_is_in_flight_or_being_written() {
        let t0 = Instant::now();
        let grace = Duration::from_secs(1);
        let mut a = Activity::new(t0);
        assert_eq!(a.drain_deadline(at(t0, 5), grace), Some(at(t0, 6)));
        a.request_started();
        assert_eq!(a.drain_deadline(at(t0, 5), grace), None);
        a.request_finished(at(t0, 7));
        a.on_write(at(t0, 8));
        assert_eq!(a.drain_deadline(at(t0, 5), grace), Some(at(t0, 9)));
    }

    #[test]
    fn pipelined_requests_keep_the_connection_busy_until_the_last_ends() {
        let t0 = Instant::now();
        let mut a = Activity::new(t0);
        a.request_started();
        a.request_started();
        a.request_finished(at(t0, 1));
        assert_eq!(a.deadline(LIMITS), None);
        a.request_finished(at(t0, 2));
        assert_eq!(a.deadline(LIMITS), Some(at(t0, 62)));
    }

    const SHORT: StallLimits = StallLimits {
        header: Duration::from_millis(200),
        idle: Duration::from_millis(2_000),
    };

    /// Polls `watchdog` for at most `within`; true if it fired.
    async fn fires_within(watchdog: &mut Watchdog, within: Duration) -> bool {
        tokio::time::timeout(within, watchdog).await.is_ok()
    }

    #[tokio::test]
    async fn a_head_begun_on_an_idle_connection_brings_the_watchdog_forward() {
        let activity = SharedActivity::new();
        activity.with(Activity::request_started);
        activity.with(|a| a.request_finished(Instant::now()));
        let mut watchdog = Watchdog::new(activity.clone(), SHORT);
        // Idle: armed for the idle timeout, far off.
        assert!(!fires_within(&mut watchdog, Duration::from_millis(50)).await);
        let began = Instant::now();
        activity.with(|a| a.on_read(began));
        assert!(
            fires_within(&mut watchdog, Duration::from_millis(1_500)).await,
            "a stalled head is cut at the header timeout, not the idle one"
        );
        assert!(began.elapsed() >= SHORT.header);
    }

    #[tokio::test]
    async fn a_deadline_that_moved_later_is_kept_when_the_timer_fires_early() {
        let limits = StallLimits {
            header: Duration::from_millis(300),
            idle: Duration::from_millis(300),
        };
        let activity = SharedActivity::new();
        activity.with(Activity::request_started);
        activity.with(|a| a.request_finished(Instant::now()));
        let mut watchdog = Watchdog::new(activity.clone(), limits);
        assert!(!fires_within(&mut watchdog, Duration::from_millis(150)).await);
        let wrote = Instant::now();
        activity.with(|a| a.on_write(wrote));
        assert!(fires_within(&mut watchdog, Duration::from_secs(2)).await);
        assert!(
            wrote.elapsed() >= limits.idle,
            "the idle clock restarts with the last write"
        );
    }

    #[tokio::test]
    async fn no_close_while_a_request_is_in_flight() {
        let activity = SharedActivity::new();
        let mut watchdog = Watchdog::new(activity.clone(), SHORT);
        activity.with(Activity::request_started);
        assert!(!fires_within(&mut watchdog, SHORT.header * 3).await);
        activity.with(|a| a.request_finished(Instant::now()));
        assert!(fires_within(&mut watchdog, SHORT.idle * 2).await);
    }
}
