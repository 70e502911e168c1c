//! `GET /healthz`: whether the broker's store is open and healthy.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;

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
