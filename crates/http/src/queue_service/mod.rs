//! queue_service's dialect (`../shared/specs/queue-service.md`): `POST /messages` and
//! the waiting `GET /messages`. Served at the root of `--queue-service-listen` and under
//! `/queue-service/` on the main listener (see [`crate::Dialect`]).

use std::time::Duration;

use axum::Router;

use crate::AppState;

/// Default of [`QueueServiceOptions::wait`].
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);

/// The queue_service dialect's settings.
#[derive(Debug, Clone)]
pub struct QueueServiceOptions {
    /// Longest time `GET /messages` waits for a message before answering 204.
    pub wait: Duration,
}

impl Default for QueueServiceOptions {
    fn default() -> Self {
        Self { wait: DEFAULT_WAIT }
    }
}

/// queue_service's routes, at the root.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
}
