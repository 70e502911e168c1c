//! Godwit's HTTP faces, one module per dialect, merged into one axum router by
//! [`router`]. Nothing here touches storage: every dialect parses a request, calls the
//! [`godwit_core::Broker`], and renders the reply in its own shape.
//!
//! - [`native`]: the native `/v1` JSON API and its OpenAPI document. Its errors are
//!   `{"error": {"code": "...", "message": "..."}}`, and its error layer (which rewrites
//!   any non-JSON error reply into that shape) wraps `/v1` routes only.
//! - [`ops`]: operations routes shared by every dialect: `/healthz` and `/metrics`.
//! - [`metrics`]: request counting (one middleware around every route) and queue gauges.
//! - [`ui`]: the live web dashboard at `/ui` and RestMQ's `/static/` pages, embedded in
//!   the binary; the page calls the native API from the browser.
//!
//! - [`restmq`]: RestMQ's dialect at the root (its routes, Comet/WebSocket/SSE
//!   consumers, exact-byte JSON and HTML error pages, the ACL file).
//! - [`live`]: the streaming bodies and SSE reply every dialect's live streams share.
//!
//! - [`httpmq`], [`queue_service`], [`queue_sample`]: the three small dialects whose
//!   paths clash with RestMQ's and each other's. Each is one router at its own root
//!   ([`Dialect`]), served under its prefix on the main listener and at the root of its
//!   own optional listener ([`Http::dialect`]): the same router, so both answer alike.
//!
//! A dialect's error forms are its own: no layer rewrites another dialect's replies.

pub mod error;
pub mod httpmq;
pub mod live;
pub mod metrics;
pub mod native;
pub mod ops;
pub mod queue_sample;
pub mod queue_service;
pub mod restmq;
mod route;
pub mod ui;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use godwit_core::{Broker, BrokerConfig};
use metrics_exporter_prometheus::PrometheusHandle;

pub use error::ApiError;

/// Longest duration any request or setting may carry, in milliseconds (100 years).
pub use godwit_core::MAX_DURATION_MS;

/// Room for JSON framing on top of the largest message in single-message bodies.
const BODY_SLACK_BYTES: usize = 64 * 1024;
/// Default limit of a batch request body.
const DEFAULT_BATCH_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Limits and defaults of the HTTP face.
#[derive(Clone)]
pub struct HttpOptions {
    /// Largest request body of every route but batch, in bytes.
    pub max_body_bytes: usize,
    /// Largest body of `POST /v1/queues/{queue}/batch`, in bytes.
    pub max_batch_body_bytes: usize,
    /// Visibility timeout of a lease that does not ask for one.
    pub default_visibility: Duration,
    /// Renders the process's metrics for `GET /metrics`.
    pub metrics: PrometheusHandle,
    /// The RestMQ dialect's settings.
    pub restmq: restmq::RestmqOptions,
    /// The queue_service dialect's settings.
    pub queue_service: queue_service::QueueServiceOptions,
}

impl HttpOptions {
    /// Options fitted to a broker: bodies up to its message limit plus slack, batches up
    /// to 16 MiB (or one body's limit, if larger), 30 s default visibility.
    pub fn new(config: &BrokerConfig, metrics: PrometheusHandle) -> Self {
        let max_body_bytes = config.max_message_bytes.saturating_add(BODY_SLACK_BYTES);
        Self {
            max_body_bytes,
            max_batch_body_bytes: DEFAULT_BATCH_BODY_BYTES.max(max_body_bytes),
            default_visibility: Duration::from_secs(30),
            metrics,
            restmq: restmq::RestmqOptions::default(),
            queue_service: queue_service::QueueServiceOptions::default(),
        }
    }
}

impl std::fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpOptions")
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_batch_body_bytes", &self.max_batch_body_bytes)
            .field("default_visibility", &self.default_visibility)
            .finish_non_exhaustive()
    }
}

/// What every handler gets: the broker and the face's options, behind one `Arc` so
/// that the clone each extractor makes costs one atomic increment.
#[derive(Clone)]
pub struct AppState(Arc<App>);

/// The inside of [`AppState`].
pub struct App {
    /// The broker every route calls.
    pub broker: Broker,
    /// Limits and defaults.
    pub opts: HttpOptions,
    /// Which queues have depth gauges, so deleted queues can be zeroed.
    pub(crate) gauges: metrics::QueueGauges,
    /// The native OpenAPI document, with the configured limits filled in.
    pub(crate) openapi: bytes::Bytes,
    /// The RestMQ dialect's shared state.
    pub(crate) restmq: restmq::Restmq,
}

impl AppState {
    /// A state over `broker` with `opts` and the rendered OpenAPI document.
    pub(crate) fn new(
        broker: Broker,
        opts: HttpOptions,
        openapi: bytes::Bytes,
        restmq: restmq::Restmq,
    ) -> Self {
        AppState(Arc::new(App {
            broker,
            opts,
            gauges: metrics::QueueGauges::default(),
            openapi,
            restmq,
        }))
    }
}

impl std::ops::Deref for AppState {
    type Target = App;

    fn deref(&self) -> &App {
        &self.0
    }
}

/// The whole HTTP face of the main listener ([`Http::main`]). Fails when the RestMQ
/// ACL file does not parse.
pub fn router(broker: Broker, opts: HttpOptions) -> Result<Router, restmq::acl::AclError> {
    Ok(Http::new(broker, opts)?.main())
}

/// A dialect that has a listener of its own besides its prefix on the main listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// httpmq, under `/httpmq/`.
    Httpmq,
    /// queue_service, under `/queue-service/`.
    QueueService,
    /// queue-sample, under `/queue-sample/`.
    QueueSample,
}

impl Dialect {
    /// Every such dialect.
    pub const ALL: [Dialect; 3] = [Dialect::Httpmq, Dialect::QueueService, Dialect::QueueSample];

    /// The dialect's path prefix on the main listener, without a trailing slash.
    pub fn prefix(self) -> &'static str {
        match self {
            Dialect::Httpmq => "/httpmq",
            Dialect::QueueService => "/queue-service",
            Dialect::QueueSample => "/queue-sample",
        }
    }

    /// The dialect's name, for logs.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Httpmq => "httpmq",
            Dialect::QueueService => "queue_service",
            Dialect::QueueSample => "queue-sample",
        }
    }

    /// The dialect's routes, at the root.
    fn routes(self) -> Router<AppState> {
        match self {
            Dialect::Httpmq => httpmq::router(),
            Dialect::QueueService => queue_service::router(),
            Dialect::QueueSample => queue_sample::router(),
        }
    }
}

/// The HTTP faces over one broker and one shared state: the main listener's router and
/// each dialect's router for a listener of its own.
pub struct Http {
    state: AppState,
    collectd: bool,
}

impl Http {
    /// The faces over `broker` with `opts`. Fails when the RestMQ ACL file does not
    /// parse.
    pub fn new(broker: Broker, opts: HttpOptions) -> Result<Self, restmq::acl::AclError> {
        let openapi = native::openapi::json(broker.config()).into();
        let restmq = restmq::Restmq::new(&opts.restmq)?;
        let collectd = opts.restmq.collectd;
        Ok(Http {
            state: AppState::new(broker, opts, openapi, restmq),
            collectd,
        })
    }

    /// The main listener: the operations routes, the native API, RestMQ at the root,
    /// the dashboard, and every [`Dialect`] under its prefix, with request metrics
    /// around all of them. A path no route serves answers RestMQ's 404 page, except
    /// under `/v1/`, where it is the native JSON 404, and under a dialect's prefix,
    /// where it is that dialect's.
    pub fn main(&self) -> Router {
        let mut router = Router::new()
            .merge(ops::router())
            .merge(native::router(&self.state))
            .merge(restmq::router(self.collectd))
            .merge(ui::router());
        for dialect in Dialect::ALL {
            let prefix = dialect.prefix();
            let inner = dialect.routes().with_state(self.state.clone());
            let stripped = tower::ServiceBuilder::new()
                .map_request(move |req| strip_prefix(req, prefix))
                .service(inner);
            router = router
                .route_service(prefix, stripped.clone())
                .route_service(&format!("{prefix}/"), stripped.clone())
                .route_service(&format!("{prefix}/{{*rest}}"), stripped);
        }
        router
            .fallback(not_found)
            .layer(metrics::TrackRequestsLayer::default())
            .with_state(self.state.clone())
    }

    /// `dialect`'s own listener: its routes at the root, with request metrics.
    pub fn dialect(&self, dialect: Dialect) -> Router {
        dialect
            .routes()
            .layer(metrics::TrackRequestsLayer::default())
            .with_state(self.state.clone())
    }
}

/// A request under `prefix` as the dialect's root router sees it: `/httpmq` and
/// `/httpmq/` become `/`, `/httpmq/x?y` becomes `/x?y`.
fn strip_prefix(mut req: axum::extract::Request, prefix: &str) -> axum::extract::Request {
    let uri = req.uri();
    let rest = uri.path().strip_prefix(prefix).unwrap_or(uri.path());
    let path = if rest.is_empty() { "/" } else { rest };
    let path_and_query = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let mut parts = uri.clone().into_parts();
    if let Ok(pq) = path_and_query.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(stripped) = axum::http::Uri::from_parts(parts) {
            *req.uri_mut() = stripped;
        }
    }
    req
}

/// The 404 of a path no route serves: the native JSON error under `/v1`, RestMQ's page
/// elsewhere.
async fn not_found(method: axum::http::Method, uri: axum::http::Uri) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = uri.path();
    if path == "/v1" || path.starts_with("/v1/") {
        native::fallback::not_found(method, uri)
            .await
            .into_response()
    } else {
        restmq::not_found().await
    }
}
