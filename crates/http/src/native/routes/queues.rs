//! Queues as resources: create or configure, show, list, purge, delete.

use axum::extract::State;
use axum::Json;
use godwit_core::SettingsPatch;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::native::extract::{OptionalJson, QueueName};
use crate::native::render::{
    OverflowJson, QueueJson, QueuesReply, SettingsJson, StatsJson, TotalsJson,
};
use crate::AppState;

/// A partial settings update (documentation of the body `PUT /v1/queues/{queue}` takes):
/// absent fields keep their value, `null` clears an optional one.
#[derive(Debug, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct SettingsPatchDoc {
    /// Dead-letter after this many deliveries; `null` never dead-letters.
    max_deliveries: Option<u32>,
    /// Where dead letters go; `null` means `<queue>.dlq`.
    dead_letter_queue: Option<String>,
    /// How long a dedup id is remembered, in milliseconds.
    dedup_window_ms: Option<u64>,
    /// `{"mode": "consume"}` or `{"mode": "log", "max_age_ms": …, "max_bytes": …,
    /// "max_count": …}`.
    retention: Option<crate::native::render::RetentionJson>,
    /// Most messages of the default subscription; `null` is unbounded.
    max_length: Option<u64>,
    /// Most stored bytes of the default subscription; `null` is unbounded.
    max_bytes: Option<u64>,
    /// What a push to a full queue does.
    overflow: Option<OverflowJson>,
    /// A paused queue accepts pushes but delivers nothing.
    paused: Option<bool>,
}

/// The reply of purge.
#[derive(Debug, Serialize, ToSchema)]
pub struct PurgeReply {
    /// How many messages the default subscription lost.
    pub purged: u64,
}

/// The reply of a queue's deletion.
#[derive(Debug, Serialize, ToSchema)]
pub struct DropReply {
    /// How many messages the default subscription held.
    pub dropped: u64,
}

/// Creates a queue or changes its settings; an empty body creates it with defaults.
#[utoipa::path(
    put,
    path = "/v1/queues/{queue}",
    tag = "queues",
    params(("queue" = String, Path, description = "Queue name")),
    request_body(content = Option<SettingsPatchDoc>, description = "Settings to change; may be empty"),
    responses(
        (status = 200, description = "The queue's settings now", body = SettingsJson),
        (status = 400, description = "`invalid_name`, `invalid_json` or `invalid_argument`: a bad name or settings", body = ErrorBody),
        (status = 413, description = "`too_large`: the body is over the request limit", body = ErrorBody),
        (status = 503, description = "`unavailable` or `storage_error`: the store has failed or the server is stopping", body = ErrorBody),
    )
)]
pub async fn configure(
    State(app): State<AppState>,
    QueueName(queue): QueueName,
    OptionalJson(patch): OptionalJson<SettingsPatch>,
) -> Result<Json<SettingsJson>, ApiError> {
    let patch = patch.unwrap_or_default();
    let settings = app.broker.configure(&queue, patch).await?;
    Ok(Json(settings.into()))
}

/// Lists every queue with its stats.
#[utoipa::path(
    get,
    path = "/v1/queues",
    tag = "queues",
    responses((status = 200, description = "Every queue's stats, by name", body = QueuesReply))
)]
pub async fn list(State(app): State<AppState>) -> Json<QueuesReply> {
    let queues = app.broker.list().into_iter().map(StatsJson::from).collect();
    Json(QueuesReply { queues })
}

/// Shows one queue's stats and settings.
#[utoipa::path(
    get,
    path = "/v1/queues/{queue}",
    tag = "queues",
    params(("queue" = String, Path, description = "Queue name")),
    responses(
        (status = 200, description = "Stats and settings", body = QueueJson),
        (status = 400, description = "`invalid_name`: a bad queue name", body = ErrorBody),
        (status = 404, description = "`not_found`: no such queue", body = ErrorBody),
        (status = 503, description = "`unavailable` or `storage_error`: the store has failed or the server is stopping", body = ErrorBody),
    )
)]
pub async fn show(
    State(app): State<AppState>,
    QueueName(queue): QueueName,
) -> Result<Json<QueueJson>, ApiError> {
    let stats = app.broker.stats(&queue)?;
    let settings = app.broker.settings(&queue)?;
    Ok(Json(QueueJson {
        stats: stats.into(),
        settings: settings.into(),
    }))
}

/// The whole server's counters: every queue's added up.
#[utoipa::path(
    get,
    path = "/v1/stats",
    tag = "queues",
    responses((status = 200, description = "Totals over every queue", body = TotalsJson))
)]
pub async fn totals(State(app): State<AppState>) -> Json<TotalsJson> {
    Json(app.broker.totals().into())
}

/// Drops every message of the queue; ids keep rising.
#[utoipa::path(
    post,
    path = "/v1/queues/{queue}/purge",
    tag = "queues",
    params(("queue" = String, Path, description = "Queue name")),
    responses(
        (status = 200, description = "How many messages were dropped", body = PurgeReply),
        (status = 400, description = "`invalid_name`: a bad queue name", body = ErrorBody),
        (status = 404, description = "`not_found`: no such queue", body = ErrorBody),
        (status = 503, description = "`unavailable` or `storage_error`: the store has failed or the server is stopping", body = ErrorBody),
    )
)]
pub async fn purge(
    State(app): State<AppState>,
    QueueName(queue): QueueName,
) -> Result<Json<PurgeReply>, ApiError> {
    let purged = app.broker.purge(&queue).await?;
    Ok(Json(PurgeReply { purged }))
}

/// Deletes a queue with its messages and subscriptions.
#[utoipa::path(
    delete,
    path = "/v1/queues/{queue}",
    tag = "queues",
    params(("queue" = String, Path, description = "Queue name")),
    responses(
        (status = 200, description = "Deleted; how many messages it held", body = DropReply),
        (status = 400, description = "`invalid_name`: a bad queue name", body = ErrorBody),
        (status = 404, description = "`not_found`: no such queue", body = ErrorBody),
        (status = 503, description = "`unavailable` or `storage_error`: the store has failed or the server is stopping", body = ErrorBody),
    )
)]
pub async fn delete(
    State(app): State<AppState>,
    QueueName(queue): QueueName,
) -> Result<Json<DropReply>, ApiError> {
    let dropped = app.broker.drop_queue(&queue).await?;
    Ok(Json(DropReply { dropped }))
}
