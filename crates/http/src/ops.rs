//! Operations routes shared by every dialect: `GET /healthz` (whether the broker's store
//! is open and healthy) and `GET /metrics` (Prometheus text). They answer in their own
//! fixed shapes, whichever dialect a deployment uses.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use crate::route::{self, Route};
use crate::{metrics, AppState};

/// The reply of `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthReply {
    /// `ok`, or `unavailable` when the store has failed or is closing.
    pub status: &'static str,
}

/// 200 `{"status": "ok"}` while the broker is healthy, else 503.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses(
        (status = 200, description = "Healthy", body = HealthReply),
        (status = 503, description = "The store has failed or is closing", body = HealthReply),
    )
)]
pub async fn healthz(State(app): State<AppState>) -> (StatusCode, Json<HealthReply>) {
    if app.broker.healthy() {
        (StatusCode::OK, Json(HealthReply { status: "ok" }))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(HealthReply {
                status: "unavailable",
            }),
        )
    }
}

/// Every operations route.
pub(crate) fn table() -> Vec<Route> {
    vec![
        Route::get("/healthz", healthz),
        Route::get("/metrics", metrics::scrape),
    ]
}

/// The operations router. A wrong method is the JSON 405 of the native API (these
/// routes predate the other dialects, and their clients are monitoring tools).
pub(crate) fn router() -> Router<AppState> {
    route::build(table())
        .method_not_allowed_fallback(crate::error::method_not_allowed)
        .layer(crate::native::fallback::JsonErrorsLayer)
}
