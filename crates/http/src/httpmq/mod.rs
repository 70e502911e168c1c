//! httpmq's dialect (`../shared/specs/httpmq.md`): `/?name=…&opt=…` with its own status
//! codes and bodies. Served at the root of `--httpmq-listen` and under `/httpmq/` on the
//! main listener (see [`crate::Dialect`]).

use axum::Router;

use crate::AppState;

/// httpmq's routes, at the root.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
}
