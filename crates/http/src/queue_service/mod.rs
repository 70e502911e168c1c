//! queue_service's dialect (`../shared/specs/queue-service.md`): `POST /messages` and
//! the waiting `GET /messages`. Served at the root of `--queue-service-listen` and under
//! `/queue-service/` on the main listener (see [`crate::Dialect`]).
//!
//! - [`json`]: Flask 1.0's JSON rules (encodings, Python's `json.loads`, `jsonify`).
//! - [`pages`]: Werkzeug's error pages and the mapping of core errors onto them.
//! - `messages`: the `/messages` handlers, over one ordinary core queue
//!   ([`QueueServiceOptions::queue`]).
//!
//! Nothing is kept here: the queue is a core queue like any other, visible in the
//! native API and the dashboard, and its optional capacity is the queue's own
//! `max_length` with [`godwit_core::Overflow::Block`].

pub mod json;
mod messages;
pub mod pages;

use std::time::Duration;

use axum::routing::any;
use axum::Router;
use godwit_core::{Broker, Overflow, SettingsPatch};

use crate::AppState;

/// Default of [`QueueServiceOptions::wait`].
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);

/// Default of [`QueueServiceOptions::queue`].
pub const DEFAULT_QUEUE: &str = "queue_service";

/// The queue_service dialect's settings.
#[derive(Debug, Clone)]
pub struct QueueServiceOptions {
    /// Longest time `GET /messages` waits for a message before answering 204, and a
    /// `POST` to a full queue waits for room before answering 503.
    pub wait: Duration,
    /// The original's capacity: the queue's most messages, with writers blocking while
    /// it is full. `None` (the default) leaves the queue's settings as they are.
    pub capacity: Option<u64>,
    /// The core queue behind `/messages`.
    pub queue: String,
}

impl Default for QueueServiceOptions {
    fn default() -> Self {
        Self {
            wait: DEFAULT_WAIT,
            capacity: None,
            queue: DEFAULT_QUEUE.to_string(),
        }
    }
}

/// Makes the dialect's queue ready before the listeners open: when a capacity is set,
/// gives the queue (created if absent) that `max_length` with blocking writers.
/// Otherwise nothing is done: the queue is made on first use, like any other.
pub async fn prepare(broker: &Broker, opts: &QueueServiceOptions) -> godwit_core::Result<()> {
    if let Some(capacity) = opts.capacity {
        let patch = SettingsPatch {
            max_length: Some(Some(capacity)),
            overflow: Some(Overflow::Block),
            ..SettingsPatch::default()
        };
        broker.configure(&opts.queue, patch).await?;
    }
    Ok(())
}

/// queue_service's routes, at the root: `/messages` (every method, matched without
/// regard to case) and Werkzeug's 404 page for every other path.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/messages", any(messages::route))
        .fallback(pages::not_found)
}
