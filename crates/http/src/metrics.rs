//! Prometheus metrics of the HTTP face: request counts and latency by route template,
//! and queue depth gauges refreshed on every scrape of `GET /metrics`.
//!
//! The recorder itself is installed by the binary; this module only records and renders.
//! The core counts `godwit_messages_in_total` and `godwit_messages_out_total` (so every
//! face is counted once) and the store records `godwit_fsync_seconds`.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::http::Method;
use parking_lot::RwLock;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// Requests served, by method, route template and status.
pub const HTTP_REQUESTS: &str = "godwit_http_requests_total";
/// Request latency in seconds, by method and route template.
pub const HTTP_REQUEST_SECONDS: &str = "godwit_http_request_seconds";
/// Ready messages of a queue's default subscription.
pub const QUEUE_READY: &str = "godwit_queue_ready";
/// In-flight messages of a queue's default subscription.
pub const QUEUE_IN_FLIGHT: &str = "godwit_queue_in_flight";
/// Delayed messages of a queue's default subscription.
pub const QUEUE_DELAYED: &str = "godwit_queue_delayed";

/// The route label of requests that matched no route, so raw paths never become labels.
const UNMATCHED_ROUTE: &str = "unmatched";

/// Counts every request under its matched route template, with its latency. A
/// hand-written layer rather than `from_fn`: no boxed future and no clone of the inner
/// service per request (the two `from_fn` layers cost 10–18% of push throughput).
///
/// Each layer keeps its own cache of metric handles, registered with the recorder
/// that is current at a route's first request. A process-wide cache would hand every
/// later router the handles of whichever recorder came first.
#[derive(Debug, Clone, Default)]
pub struct TrackRequestsLayer {
    handles: Arc<HandleCache>,
}

impl<S> tower::Layer<S> for TrackRequestsLayer {
    type Service = TrackRequests<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TrackRequests {
            inner,
            handles: self.handles.clone(),
        }
    }
}

/// The service of [`TrackRequestsLayer`].
#[derive(Debug, Clone)]
pub struct TrackRequests<S> {
    inner: S,
    handles: Arc<HandleCache>,
}

impl<S> tower::Service<Request> for TrackRequests<S>
where
    S: tower::Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let started = Instant::now();
        let method = static_method(req.method());
        let route = req.extensions().get::<MatchedPath>().cloned();
        TrackedFuture {
            inner: self.inner.call(req),
            handles: self.handles.clone(),
            started,
            method,
            route,
        }
    }
}

pin_project_lite::pin_project! {
    /// A request being served, counted when its response is ready.
    pub struct TrackedFuture<F> {
        #[pin]
        inner: F,
        handles: Arc<HandleCache>,
        started: Instant,
        method: &'static str,
        route: Option<MatchedPath>,
    }
}

impl<F, E> Future for TrackedFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        if let Ok(response) = &result {
            let route = this
                .route
                .as_ref()
                .map_or(UNMATCHED_ROUTE, MatchedPath::as_str);
            this.handles.record(
                this.method,
                route,
                response.status().as_u16(),
                this.started.elapsed().as_secs_f64(),
            );
        }
        Poll::Ready(result)
    }
}

/// A method name as a `'static` label (no allocation per request).
fn static_method(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// The counter and histogram of each (route, method, status) seen, by route.
type Handles =
    HashMap<Box<str>, HashMap<(&'static str, u16), (metrics::Counter, metrics::Histogram)>>;

/// The counter and histogram of one (method, route, status), registered once: a
/// request then costs a read-locked map lookup instead of label allocations and a
/// registry lookup. Routes are the router's templates, so the map stays small.
#[derive(Debug, Default)]
pub struct HandleCache {
    map: RwLock<Handles>,
}

impl HandleCache {
    /// Counts one request and records its latency, under the read lock (the handles are
    /// used in place, not cloned: no reference counts change hands between threads).
    fn record(&self, method: &'static str, route: &str, status: u16, seconds: f64) {
        {
            let map = self.map.read();
            if let Some((count, latency)) = map.get(route).and_then(|m| m.get(&(method, status))) {
                count.increment(1);
                latency.record(seconds);
                return;
            }
        }
        let (count, latency) = (
            metrics::counter!(HTTP_REQUESTS, "method" => method, "route" => route.to_owned(), "status" => status.to_string()),
            metrics::histogram!(HTTP_REQUEST_SECONDS, "method" => method, "route" => route.to_owned()),
        );
        count.increment(1);
        latency.record(seconds);
        self.map
            .write()
            .entry(route.into())
            .or_default()
            .insert((method, status), (count, latency));
    }
}

/// The queues that got depth gauges at the last scrape.
#[derive(Debug, Default)]
pub struct QueueGauges {
    known: Mutex<HashSet<String>>,
}

impl QueueGauges {
    /// Sets the depth gauges of every queue in `stats` and zeroes those of queues that
    /// are gone since the last call.
    pub fn refresh(&self, stats: &[godwit_core::QueueStats]) {
        let current: HashSet<String> = stats.iter().map(|s| s.name.clone()).collect();
        for s in stats {
            let queue = s.name.clone();
            metrics::gauge!(QUEUE_READY, "queue" => queue.clone()).set(s.ready as f64);
            metrics::gauge!(QUEUE_IN_FLIGHT, "queue" => queue.clone()).set(s.in_flight as f64);
            metrics::gauge!(QUEUE_DELAYED, "queue" => queue).set(s.delayed as f64);
        }
        let mut known = self
            .known
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for gone in known.difference(&current) {
            for name in [QUEUE_READY, QUEUE_IN_FLIGHT, QUEUE_DELAYED] {
                metrics::gauge!(name, "queue" => gone.clone()).set(0.0);
            }
        }
        *known = current;
    }
}

/// `GET /metrics`: Prometheus text exposition.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain", body = String))
)]
pub async fn scrape(State(app): State<AppState>) -> Response {
    app.gauges.refresh(&app.broker.list());
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        app.opts.metrics.render(),
    )
        .into_response()
}
