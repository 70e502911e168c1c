//! Cursors over a log-retention queue: reset every cursor, read the retained log by id.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorBody};
use crate::native::extract::{ApiQuery, OptionalJson, QueueName};
use crate::native::render::MessageJson;
use crate::AppState;

/// The body of a reset; may be empty (every cursor goes back to the oldest retained
/// message).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    /// Every subscription delivers the retained messages from this id on (default 0:
    /// from the oldest retained one; an id past the end means only later pushes for a
    /// consuming subscription, and a bare cursor waits there for the log to grow).
    pub id: Option<u64>,
}

/// The reply of a reset.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResetReply {
    /// The queue.
    pub queue: String,
    /// The id every subscription now delivers from (as asked; 0 is the oldest retained).
    pub id: u64,
    /// How many subscriptions moved, the default one included.
    pub subscriptions: u64,
}

/// Options of a log read, in the query string.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// The first id to return (default 0: from the oldest retained message).
    pub from: Option<u64>,
    /// At most this many messages (default 1, at most the broker's max batch).
    pub max: Option<usize>,
    /// Read from this bare cursor's position instead of `from` (the two exclude each
    /// other); the cursor does not move.
    pub subscription: Option<String>,
}

/// A page of the retained log.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogReply {
    /// Retained messages with ids from `from` on, in id order (messages whose TTL
    /// passed are left out); nothing is consumed.
    pub messages: Vec<MessageJson>,
    /// The `from` to ask for next: one past the last id returned, or `from` itself when
    /// nothing was (the log has nothing there yet).
    pub next: u64,
}

/// Moves every subscription of a log-retention queue (the default one included) so
/// it delivers the retained messages from `id` on, as one durable step
/// (queue-sample's `topic_reset`). Leases of the subscriptions are dropped; their
/// last-action times are left as they are.
#[utoipa::path(
    post,
    path = "/v1/queues/{queue}/reset",
    tag = "subscriptions",
    params(("queue" = String, Path, description = "Queue name")),
    request_body(content = Option<ResetRequest>, description = "Where every cursor goes; may be empty"),
    responses(
        (status = 200, description = "Every cursor moved", body = ResetReply),
        (status = 400, description = "`invalid_name` or `invalid_json`: a bad name or body", body = ErrorBody),
        (status = 404, description = "`not_found`: no such queue", body = ErrorBody),
        (status = 409, description = "`not_a_log`: the queue does not keep a log (retention mode `consume`)", body = ErrorBody),
        (status = 413, description = "`too_large`: the body is over the request limit", body = ErrorBody),
        (status = 503, description = "`unavailable` or `storage_error`: the store has failed or the server is stopping", body = ErrorBody),
    )
)]
pub async fn reset(
    State(app): State<AppState>,
    QueueName(queue): QueueName,
    OptionalJson(request): OptionalJson<ResetRequest>,
) -> Result<Json<ResetReply>, ApiError> {
    let id = request.and_then(|r| r.id);
    let subscriptions = app.broker.reset(&queue, id).await?;
    Ok(Json(ResetReply {
        queue,
        id: id.unwrap_or(0),
        subscriptions,
    }))
}

/// Reads up to `max` messages of a log-retention queue's retained log with ids from
/// `from` on (or from a bare cursor's position), without consuming or moving anything;
/// `next` is the `from` of the next page (for a cursor, the id to seek it to once the
/// page is processed).
#[utoipa::path(
    get,
    path = "/v1/queues/{queue}/log",
    tag = "consume",
    params(("queue" = String, Path, description = "Queue name"), LogQuery),
    responses(
        (status = 200, description = "A page of the log, in id order (an empty list when nothing is retained from `from` on)", body = LogReply),
        (status = 400, description = "`invalid_name`, `invalid_query` or `invalid_argument`: a bad name or parameter", body = ErrorBody),
        (status = 404, description = "`not_found`: no such queue, or no such cursor", body = ErrorBody),
        (status = 409, description = "`not_a_log`: the queue does not keep a log (retention mode `consume`)", body = ErrorBody),
        (status = 503, description = "`unavailable` or `storage_error`: the store has failed or the server is stopping", body = ErrorBody),
    )
)]
pub async fn read_log(
    State(app): State<AppState>,
    QueueName(queue): QueueName,
    ApiQuery(query): ApiQuery<LogQuery>,
) -> Result<Json<LogReply>, ApiError> {
    let max = query.max.unwrap_or(1);
    let page = match (query.subscription, query.from) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid_argument(
                "give either from or subscription, not both",
            ))
        }
        (Some(name), None) => app.broker.read_cursor(&queue, &name, max).await?,
        (None, from) => app.broker.read_log(&queue, from.unwrap_or(0), max).await?,
    };
    Ok(Json(LogReply {
        messages: page.messages.into_iter().map(MessageJson::from).collect(),
        next: page.next,
    }))
}
