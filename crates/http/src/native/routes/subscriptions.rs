//! Named subscriptions of a queue: create, seek, delete, list.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use godwit_core::StartAt;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::native::extract::{ApiJson, OptionalJson, QueueName, SubscriptionName};
use crate::native::render::{SubscriptionJson, SubscriptionKind, SubscriptionsReply};
use crate::AppState;

/// Where a new subscription starts: `"latest"`, `"earliest"` or a message id.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum StartJson {
    /// `"latest"` (only new messages) or `"earliest"` (every retained one).
    Named(String),
    /// Retained messages with this id or later.
    Id(u64),
}

impl TryFrom<StartJson> for StartAt {
    type Error = ApiError;

    fn try_from(start: StartJson) -> Result<Self, ApiError> {
        match start {
            StartJson::Id(id) => Ok(StartAt::Id(id)),
            StartJson::Named(name) => match name.as_str() {
                "latest" => Ok(StartAt::Latest),
                "earliest" => Ok(StartAt::Earliest),
                other => other.parse().map(StartAt::Id).map_err(|_| {
                    ApiError::invalid_argument(format!(
                        "start must be \"latest\", \"earliest\" or a message id, not {other:?}"
                    ))
                }),
            },
        }
    }
}

/// The body of `PUT …/subscriptions/{name}`; may be empty (a `queue` subscription that
/// starts at latest).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscribeRequest {
    /// Where the subscription starts (default `"latest"`).
    pub start: Option<StartJson>,
    /// What it is (default `"queue"`); a `"cursor"` needs an existing log-retention
    /// queue.
    pub kind: Option<SubscriptionKind>,
}

/// The reply of creating a subscription.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscribeReply {
    /// The queue.
    pub queue: String,
    /// The subscription.
    pub name: String,
    /// False when the subscription existed already (and was left as it was).
    pub created: bool,
}

/// The body of seek.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeekRequest {
    /// Deliver retained messages from this id on.
    pub id: u64,
}

/// The reply of seek.
#[derive(Debug, Serialize, ToSchema)]
pub struct SeekReply {
    /// The queue.
    pub queue: String,
    /// The subscription.
    pub name: String,
    /// The id it now delivers from.
    pub id: u64,
}

/// Creates a named subscription (and the queue, for a `queue` subscription); an
/// existing one of either kind is left as it is.
#[utoipa::path(
    put,
    path = "/v1/queues/{queue}/subscriptions/{name}",
    tag = "subscriptions",
    params(
        ("queue" = String, Path, description = "Queue name"),
        ("name" = String, Path, description = "Subscription name"),
    ),
    request_body(content = Option<SubscribeRequest>, description = "Where to start; may be empty"),
    responses(
        (status = 201, description = "Created", body = SubscribeReply),
        (status = 200, description = "It existed already", body = SubscribeReply),
        (status = 400, description = "`invalid_name`, `invalid_json` or `invalid_argument`: a bad name or start", body = ErrorBody),
        (status = 404, description = "`not_found`: no such queue (a cursor needs one)", body = ErrorBody),
        (status = 409, description = "`not_a_log` (a cursor on a queue without log retention) or `wrong_type` (the name is a key)", body = ErrorBody),
        (status = 413, description = "`too_large`: the body is over the request limit", body = ErrorBody),
        (status = 503, description = "`unavailable` or `storage_error`: the store has failed or the server is stopping", body = ErrorBody),
    )
)]
pub async fn subscribe(
    State(app): State<AppState>,
    QueueName(queue): QueueName,
    SubscriptionName(name): SubscriptionName,
    OptionalJson(request): OptionalJson<SubscribeRequest>,
) -> Result<Response, ApiError> {
    let (start, kind) = request.map_or((None, None), |r| (r.start, r.kind));
    let start = match start {
        Some(start) => StartAt::try_from(start)?,
        None => StartAt::Latest,
    };
    let created = match kind.unwrap_or_default() {
        SubscriptionKind::Queue => app.broker.subscribe(&queue, &name, start).await?,
        SubscriptionKind::Cursor => app.broker.subscribe_cursor(&queue, &name, start).await?,
    };
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let reply = SubscribeReply {
        queue,
        name,
        created,
    };
    Ok((status, Json(reply)).into_response())
}

/// Moves a subscription so it delivers retained messages from `id` on (an id past the
/// end is the end: every later push is delivered). On a log-retention queue this moves
/// the subscription's cursor: its `position` becomes `id` (clamped to the retained ids;
/// a bare cursor keeps an id past the end as set and reads nothing until the log grows
/// past it) and the seek is its last action.
#[utoipa::path(
    post,
    path = "/v1/queues/{queue}/subscriptions/{name}/seek",
    tag = "subscriptions",
    params(
        ("queue" = String, Path, description = "Queue name"),
        ("name" = String, Path, description = "Subscription name"),
    ),
    request_body(content = SeekRequest),
    responses(
        (status = 200, description = "Moved", body = SeekReply),
        (status = 400, description = "`invalid_name` or `invalid_json`: a bad name or body", body = ErrorBody),
        (status = 404, description = "`not_found`: no such queue or subscription", body = ErrorBody),
        (status = 413, description = "`too_large`: the body is over the request limit", body = ErrorBody),
        (status = 503, description = "`unavailable` or `storage_error`: the store has failed or the server is stopping", body = ErrorBody),
    )
)]
pub async fn seek(
    State(app): State<AppState>,
    QueueName(queue): QueueName,
    SubscriptionName(name): SubscriptionName,
    ApiJson(request): ApiJson<SeekRequest>,
) -> Result<Json<SeekReply>, ApiError> {
    app.broker.seek(&queue, &name, request.id).await?;
    Ok(Json(SeekReply {
        queue,
        name,
        id: request.id,
    }))
}

/// Deletes a named subscription and its in-flight leases.
#[utoipa::path(
    delete,
    path = "/v1/queues/{queue}/subscriptions/{name}",
    tag = "subscriptions",
    params(
        ("queue" = String, Path, description = "Queue name"),
        ("name" = String, Path, description = "Subscription name"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "`invalid_name`: a bad queue or subscription name", body = ErrorBody),
        (status = 404, description = "`not_found`: no such queue or subscription", body = ErrorBody),
        (status = 503, description = "`unavailable` or `storage_error`: the store has failed or the server is stopping", body = ErrorBody),
    )
)]
pub async fn unsubscribe(
    State(app): State<AppState>,
    QueueName(queue): QueueName,
    SubscriptionName(name): SubscriptionName,
) -> Result<StatusCode, ApiError> {
    app.broker.unsubscribe(&queue, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lists a queue's named subscriptions with their counters.
#[utoipa::path(
    get,
    path = "/v1/queues/{queue}/subscriptions",
    tag = "subscriptions",
    params(("queue" = String, Path, description = "Queue name")),
    responses(
        (status = 200, description = "The subscriptions", body = SubscriptionsReply),
        (status = 400, description = "`invalid_name`: a bad queue name", body = ErrorBody),
        (status = 404, description = "`not_found`: no such queue", body = ErrorBody),
        (status = 503, description = "`unavailable` or `storage_error`: the store has failed or the server is stopping", body = ErrorBody),
    )
)]
pub async fn list(
    State(app): State<AppState>,
    QueueName(queue): QueueName,
) -> Result<Json<SubscriptionsReply>, ApiError> {
    let subscriptions = app
        .broker
        .subscriptions(&queue)?
        .into_iter()
        .map(SubscriptionJson::from)
        .collect();
    Ok(Json(SubscriptionsReply { subscriptions }))
}
