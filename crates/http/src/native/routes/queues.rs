//! Queues as resources: create or configure, show, list, purge, delete.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use godwit_core::{CreateOptions, SettingsPatch};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorBody};
use crate::native::extract::{ApiJson, ApiQuery, OptionalJson, QueueName};
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
    /// Largest message body this queue takes (at least 1); `null` is the server's
    /// `--max-message-bytes`.
    max_message_bytes: Option<u64>,
    /// Hold dedup ids while their message is queued or in flight, not for the window.
    dedup_until_consumed: Option<bool>,
    /// Stop (true) or resume live delivery to streams; plain reads go on.
    live_paused: Option<bool>,
    /// `"broadcast"` or `"round_robin"`: how live consumers that follow the queue's
    /// policy share its messages.
    live_policy: Option<crate::native::render::LivePolicyJson>,
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

/// Options of a listing, in the query string.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only queues whose name starts with this.
    pub prefix: Option<String>,
}

/// Lists the queues (those starting with `prefix`, if given) with their stats.
#[utoipa::path(
    get,
    path = "/v1/queues",
    tag = "queues",
    params(ListQuery),
    responses(
        (status = 200, description = "The queues' stats, by name", body = QueuesReply),
        (status = 400, description = "`invalid_query`: a bad parameter", body = ErrorBody),
    )
)]
pub async fn list(
    State(app): State<AppState>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<QueuesReply>, ApiError> {
    let prefix = query.prefix.unwrap_or_default();
    let queues = app
        .broker
        .list_prefix(&prefix)
        .into_iter()
        .map(StatsJson::from)
        .collect();
    Ok(Json(QueuesReply { queues }))
}

/// The body of a creation.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    /// Free text (at most 4096 bytes).
    pub description: Option<String>,
    /// No default subscription: a message is kept only for the subscriptions that exist
    /// when it is pushed, and reads must name one (default false).
    #[serde(default)]
    pub fanout_only: bool,
}

/// The body of a description change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DescribeRequest {
    /// The new description; `null` clears it.
    pub description: Option<String>,
}

/// Creates a queue, or answers 409 `already_exists` (`PUT /v1/queues/{queue}` creates
/// one only if needed).
#[utoipa::path(
    post,
    path = "/v1/queues/{queue}",
    tag = "queues",
    params(("queue" = String, Path, description = "Queue name")),
    request_body(content = Option<CreateRequest>, description = "Optional; an empty body creates a plain queue"),
    responses(
        (status = 201, description = "Created: its stats and settings", body = QueueJson),
        (status = 400, description = "`invalid_name`, `invalid_json` or `invalid_argument`: a bad name or body", body = ErrorBody),
        (status = 409, description = "`already_exists`: the queue is there", body = ErrorBody),
        (status = 413, description = "`too_large`: the body is over the request limit", body = ErrorBody),
        (status = 503, description = "`unavailable` or `storage_error`: the store has failed or the server is stopping", body = ErrorBody),
    )
)]
pub async fn create(
    State(app): State<AppState>,
    QueueName(queue): QueueName,
    OptionalJson(request): OptionalJson<CreateRequest>,
) -> Result<(StatusCode, Json<QueueJson>), ApiError> {
    let request = request.unwrap_or_default();
    let opts = CreateOptions {
        description: request.description,
        fanout_only: request.fanout_only,
    };
    app.broker.create(&queue, opts).await?;
    let reply = QueueJson {
        stats: app.broker.stats(&queue)?.into(),
        settings: app.broker.settings(&queue)?.into(),
    };
    Ok((StatusCode::CREATED, Json(reply)))
}

/// Sets or clears a queue's description.
#[utoipa::path(
    put,
    path = "/v1/queues/{queue}/description",
    tag = "queues",
    params(("queue" = String, Path, description = "Queue name")),
    request_body(content = DescribeRequest),
    responses(
        (status = 200, description = "The queue's stats with the new description", body = StatsJson),
        (status = 400, description = "`invalid_name`, `invalid_json` or `invalid_argument`: a bad name or body", body = ErrorBody),
        (status = 404, description = "`not_found`: no such queue", body = ErrorBody),
        (status = 413, description = "`too_large`: the body is over the request limit", body = ErrorBody),
        (status = 503, description = "`unavailable` or `storage_error`: the store has failed or the server is stopping", body = ErrorBody),
    )
)]
pub async fn describe(
    State(app): State<AppState>,
    QueueName(queue): QueueName,
    ApiJson(request): ApiJson<DescribeRequest>,
) -> Result<Json<StatsJson>, ApiError> {
    app.broker.describe(&queue, request.description).await?;
    Ok(Json(app.broker.stats(&queue)?.into()))
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
