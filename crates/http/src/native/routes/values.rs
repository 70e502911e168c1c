//! The value index: membership and removal by body (Redis `SISMEMBER`, `LREM`).

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::native::extract::{ApiJson, ApiQuery, QueueName, RawBody};
use crate::native::routes::consume::SubscriptionQuery;
use crate::native::routes::messages::json_body;
use crate::AppState;

/// The reply of a membership test.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContainsReply {
    /// Whether the queue holds a message (ready, delayed or in flight) with this body.
    pub contains: bool,
}

/// The body of a removal by value: exactly one of `body` and `body_base64`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveRequest {
    /// The body as text.
    pub body: Option<String>,
    /// The body as standard base64, for binary bodies.
    pub body_base64: Option<String>,
    /// At most this many, from the head when positive, from the tail when negative;
    /// 0 (the default) removes every ready message with this body.
    #[serde(default)]
    pub count: i64,
    /// A named subscription; absent or empty means the queue's default one.
    pub subscription: Option<String>,
}

/// The reply of a removal by value.
#[derive(Debug, Serialize, ToSchema)]
pub struct RemoveReply {
    /// How many ready messages were removed.
    pub removed: u64,
}

/// Whether the queue holds a message with the request body, verbatim.
#[utoipa::path(
    post,
    path = "/v1/queues/{queue}/contains",
    tag = "values",
    params(("queue" = String, Path, description = "Queue name"), SubscriptionQuery),
    request_body(content = Option<String>, content_type = "application/octet-stream",
        description = "The body to look for, verbatim"),
    responses(
        (status = 200, description = "Whether a message with that body is held", body = ContainsReply),
        (status = 400, description = "`invalid_name` or `invalid_query`: a bad name or parameter", body = ErrorBody),
        (status = 404, description = "`not_found`: no such subscription", body = ErrorBody),
        (status = 409, description = "`cursor_subscription`: the subscription is a bare cursor (read it with `GET …/log?subscription=`)", body = ErrorBody),
        (status = 413, description = "`too_large`: the body is over the message limit", body = ErrorBody),
        (status = 503, description = "`unavailable` or `storage_error`: the store has failed or the server is stopping", body = ErrorBody),
    )
)]
pub async fn contains(
    State(app): State<AppState>,
    QueueName(queue): QueueName,
    ApiQuery(query): ApiQuery<SubscriptionQuery>,
    RawBody(body): RawBody,
) -> Result<Json<ContainsReply>, ApiError> {
    let contains = app
        .broker
        .contains(&queue, query.subscription.as_deref(), &body)
        .await?;
    Ok(Json(ContainsReply { contains }))
}

/// Removes ready messages whose body equals the given one (Redis `LREM`); leased and
/// delayed ones are left alone.
#[utoipa::path(
    post,
    path = "/v1/queues/{queue}/remove",
    tag = "values",
    params(("queue" = String, Path, description = "Queue name")),
    request_body(content = RemoveRequest),
    responses(
        (status = 200, description = "How many were removed", body = RemoveReply),
        (status = 400, description = "`invalid_name`, `invalid_json` or `invalid_argument`: a bad name or body", body = ErrorBody),
        (status = 404, description = "`not_found`: no such subscription", body = ErrorBody),
        (status = 409, description = "`cursor_subscription`: the subscription is a bare cursor (read it with `GET …/log?subscription=`)", body = ErrorBody),
        (status = 413, description = "`too_large`: the body is over the request limit", body = ErrorBody),
        (status = 503, description = "`unavailable` or `storage_error`: the store has failed or the server is stopping", body = ErrorBody),
    )
)]
pub async fn remove(
    State(app): State<AppState>,
    QueueName(queue): QueueName,
    ApiJson(request): ApiJson<RemoveRequest>,
) -> Result<Json<RemoveReply>, ApiError> {
    let body = json_body(request.body, request.body_base64)?;
    let removed = app
        .broker
        .remove_value(
            &queue,
            request.subscription.as_deref(),
            &body,
            request.count,
        )
        .await?;
    Ok(Json(RemoveReply { removed }))
}
