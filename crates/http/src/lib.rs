//! Godwit's HTTP faces. For now: the native `/v1` JSON API, `/healthz`, `/metrics` and
//! the OpenAPI document.
//!
//! Each route family is one module under [`routes`] that parses (with the extractors in
//! [`extract`]), calls the [`godwit_core::Broker`], and renders (with [`render`]).
//! Every error a client sees is an [`ApiError`] in the shape
//! `{"error": {"code": "...", "message": "..."}}`. Nothing here touches storage.
//!
//! Message headers travel in HTTP request headers named `x-godwit-header-<name>` on
//! `POST /v1/queues/{queue}/messages` (the name is lower-cased, as HTTP header names
//! are case-insensitive), and in the `headers` object of batch items and replies.

mod delivered;
pub mod error;
pub mod extract;
mod fallback;
pub mod metrics;
pub mod openapi;
pub mod render;
pub mod routes;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use godwit_core::{Broker, BrokerConfig};
use metrics_exporter_prometheus::PrometheusHandle;

pub use error::ApiError;

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

/// What every handler gets: the broker and the face's options.
#[derive(Clone)]
pub struct AppState {
    /// The broker every route calls.
    pub broker: Broker,
    /// Limits and defaults.
    pub opts: Arc<HttpOptions>,
    /// Which queues have depth gauges, so deleted queues can be zeroed.
    pub(crate) gauges: Arc<metrics::QueueGauges>,
}

/// The whole HTTP face: `/healthz`, `/metrics` and the native `/v1` API, with JSON
/// errors for unknown routes, wrong methods, bad input and panics.
pub fn router(broker: Broker, opts: HttpOptions) -> Router {
    let state = AppState {
        broker,
        opts: Arc::new(opts),
        gauges: Arc::default(),
    };
    routes::router(state)
}
