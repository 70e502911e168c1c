//! queue-sample's dialect (`../shared/specs/queue-sample.md`): topics, numbered
//! subscribers and cursor reads, with its JSON error envelope. Served at the root of
//! `--queue-sample-listen` and under `/queue-sample/` on the main listener (see
//! [`crate::Dialect`]).

use axum::Router;

use crate::AppState;

/// queue-sample's routes, at the root.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
}
