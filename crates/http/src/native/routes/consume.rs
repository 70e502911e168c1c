//! Consuming: take, lease, ack, nack, extend, peek, move, range reads, soft get and
//! delete by id.

use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use axum::Json;
use godwit_core::{End, LeaseOptions, MoveOptions, ReadOptions, Receipt};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorBody};
use crate::native::extract::{ApiJson, ApiQuery, MessageId, QueueName};
use crate::native::render::MessagesReply;
use crate::AppState;

/// Options of a take, in the query string.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TakeQuery {
    /// At most this many messages (default 1, at most the broker's max batch).
    pub max: Option<usize>,
    /// Wait up to this many milliseconds for a first message (default 0; at most the
    /// server's max wait).
    pub wait_ms: Option<u64>,
    /// A named subscription; absent or empty means the queue's default one.
    pub subscription: Option<String>,
    /// The end to take from (default `head`).
    pub end: Option<EndJson>,
}

/// An end of a queue's delivery order: the head is what a take gets next (highest
/// priority, oldest), the tail the other end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EndJson {
    /// The next message a take gets.
    Head,
    /// The last one.
    Tail,
}

impl From<EndJson> for End {
    fn from(e: EndJson) -> Self {
        match e {
            EndJson::Head => End::Head,
            EndJson::Tail => End::Tail,
        }
    }
}

fn end(e: Option<EndJson>) -> End {
    e.map_or(End::Head, End::from)
}

/// Options of a lease, in the query string.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LeaseQuery {
    /// At most this many messages (default 1, at most the broker's max batch).
    pub max: Option<usize>,
    /// Wait up to this many milliseconds for a first message (default 0; at most the
    /// server's max wait).
    pub wait_ms: Option<u64>,
    /// How long the lease hides the messages (default 30000).
    pub visibility_ms: Option<u64>,
    /// A named subscription; absent or empty means the queue's default one.
    pub subscription: Option<String>,
    /// The end to lease from (default `head`).
    pub end: Option<EndJson>,
}

/// Options of a peek, in the query string.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PeekQuery {
    /// At most this many messages (default 1, at most the broker's max batch).
    pub max: Option<usize>,
    /// A named subscription; absent or empty means the queue's default one.
    pub subscription: Option<String>,
    /// The end to look from (default `head`; from the tail the messages come last
    /// first).
    pub end: Option<EndJson>,
}

/// Options of a move, in the query string.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MoveQuery {
    /// The destination queue (created on first use; may be the source).
    pub to: String,
    /// The source's end to take from (default `head`).
    pub from_end: Option<EndJson>,
    /// The destination's end the messages join (default `tail`).
    pub to_end: Option<EndJson>,
    /// At most this many messages (default 1, at most the broker's max batch).
    pub max: Option<usize>,
    /// Wait up to this many milliseconds for a first message (default 0; at most the
    /// server's max wait).
    pub wait_ms: Option<u64>,
    /// A named subscription of the source; absent or empty means the default one.
    pub subscription: Option<String>,
}

/// Options of a range read, in the query string.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RangeQuery {
    /// First position (0 is the head; negative counts from the tail, -1 the last).
    pub start: Option<i64>,
    /// Last position, inclusive (default -1). At most the broker's max batch
    /// messages per request.
    pub stop: Option<i64>,
    /// A named subscription; absent or empty means the queue's default one.
    pub subscription: Option<String>,
}

/// Options naming a subscription, in the query string.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SubscriptionQuery {
    /// A named subscription; absent or empty means the queue's default one.
    pub subscription: Option<String>,
}

/// The reply of a delete by id.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeleteReply {
    /// How many messages were deleted (1).
    pub deleted: u64,
}

/// The body of ack and nack.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiptsRequest {
    /// Receipts from lease replies.
    pub receipts: Vec<String>,
}

/// The body of extend.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendRequest {
    /// Receipts from lease replies.
    pub receipts: Vec<String>,
    /// The new visibility timeout from now, in milliseconds (default 30000).
    pub visibility_ms: Option<u64>,
}

/// The reply of ack.
#[derive(Debug, Serialize, ToSchema)]
pub struct AckReply {
    /// How many receipts were live leases (stale ones ack nothing).
    pub acked: usize,
}

/// The reply of nack.
#[derive(Debug, Serialize, ToSchema)]
pub struct NackReply {
    /// How many receipts were live leases.
    pub nacked: usize,
}

/// The reply of extend.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExtendReply {
    /// How many receipts were live leases.
    pub extended: usize,
}

/// The `max` of a read: 1 when absent; its bounds are the core's to check.
fn max_messages(max: Option<usize>) -> usize {
    max.unwrap_or(1)
}

fn read_options(
    max: Option<usize>,
    wait_ms: Option<u64>,
    sub: Option<String>,
    from: Option<EndJson>,
) -> ReadOptions {
    ReadOptions {
        max: max_messages(max),
        wait: Duration::from_millis(wait_ms.unwrap_or(0)),
        // Absent, empty or named; the name's rules are the core's to check.
        subscription: sub,
        end: end(from),
    }
}

/// Parses receipts; one that does not parse names no lease, like a stale one.
fn receipts(texts: &[String]) -> Vec<Receipt> {
    texts.iter().filter_map(|t| t.parse().ok()).collect()
}

fn visibility(app: &AppState, ms: Option<u64>) -> Result<Duration, ApiError> {
    match ms {
        None => Ok(app.opts.default_visibility),
        Some(0) => Err(ApiError::invalid_argument(
            "visibility_ms must be at least 1",
        )),
        Some(ms) => Ok(Duration::from_millis(ms)),
    }
}

/// Delivers and removes up to `max` messages at once (at-most-once), waiting up to
/// `wait_ms` for a first one.
#[utoipa::path(
    post,
    path = "/v1/queues/{queue}/take",
    tag = "consume",
    params(("queue" = String, Path, description = "Queue name"), TakeQuery),
    responses(
        (status = 200, description = "The messages (an empty list when none was ready)", body = MessagesReply),
        (status = 400, description = "`invalid_name`, `invalid_query` or `invalid_argument`: a bad name or parameter", body = ErrorBody),
        (status = 404, description = "`not_found`: no such subscription", body = ErrorBody),
        (status = 409, description = "`cursor_subscription`: the subscription is a bare cursor (read it with `GET …/log?subscription=`)", body = ErrorBody),
        (status = 503, description = "`unavailable` or `storage_error`: the store has failed or the server is stopping", body = ErrorBody),
    )
)]
pub async fn take(
    State(app): State<AppState>,
    QueueName(queue): QueueName,
    ApiQuery(query): ApiQuery<TakeQuery>,
) -> Result<Response, ApiError> {
    let opts = read_options(query.max, query.wait_ms, query.subscription, query.end);
    crate::native::delivered::reply(app.broker.take(&queue, opts).await?)
}

/// Leases up to `max` messages for `visibility_ms`; each carries a `receipt` to ack,
/// nack or extend it. Unacked leases become ready again when they time out.
#[utoipa::path(
    post,
    path = "/v1/queues/{queue}/lease",
    tag = "consume",
    params(("queue" = String, Path, description = "Queue name"), LeaseQuery),
    responses(
        (status = 200, description = "The leased messages, each with a receipt", body = MessagesReply),
        (status = 400, description = "`invalid_name`, `invalid_query` or `invalid_argument`: a bad name or parameter", body = ErrorBody),
        (status = 404, description = "`not_found`: no such subscription", body = ErrorBody),
        (status = 409, description = "`cursor_subscription`: the subscription is a bare cursor (read it with `GET …/log?subscription=`)", body = ErrorBody),
        (status = 503, description = "`unavailable` or `storage_error`: the store has failed or the server is stopping", body = ErrorBody),
    )
)]
pub async fn lease(
    State(app): State<AppState>,
    QueueName(queue): QueueName,
    ApiQuery(query): ApiQuery<LeaseQuery>,
) -> Result<Response, ApiError> {
    let opts = LeaseOptions {
        read: read_options(query.max, query.wait_ms, query.subscription, query.end),
        visibility: visibility(&app, query.visibility_ms)?,
    };
    crate::native::delivered::reply(app.broker.lease(&queue, opts).await?)
}

/// Acks leases: the messages are consumed. Stale receipts ack nothing.
#[utoipa::path(
    post,
    path = "/v1/queues/{queue}/ack",
    tag = "consume",
    params(("queue" = String, Path, description = "Queue name")),
    request_body(content = ReceiptsRequest),
    responses(
        (status = 200, description = "How many leases were acked", body = AckReply),
        (status = 400, description = "`invalid_name` or `invalid_json`: a bad name or body", body = ErrorBody),
        (status = 413, description = "`too_large`: the body is over the request limit", body = ErrorBody),
        (status = 503, description = "`unavailable` or `storage_error`: the store has failed or the server is stopping", body = ErrorBody),
    )
)]
pub async fn ack(
    State(app): State<AppState>,
    QueueName(queue): QueueName,
    ApiJson(request): ApiJson<ReceiptsRequest>,
) -> Result<Json<AckReply>, ApiError> {
    let acked = app.broker.ack(&queue, &receipts(&request.receipts)).await?;
    Ok(Json(AckReply { acked }))
}

/// Nacks leases: the messages go back to the head of the queue (or to the dead-letter
/// queue past the queue's max deliveries).
#[utoipa::path(
    post,
    path = "/v1/queues/{queue}/nack",
    tag = "consume",
    params(("queue" = String, Path, description = "Queue name")),
    request_body(content = ReceiptsRequest),
    responses(
        (status = 200, description = "How many leases were returned", body = NackReply),
        (status = 400, description = "`invalid_name` or `invalid_json`: a bad name or body", body = ErrorBody),
        (status = 413, description = "`too_large`: the body is over the request limit", body = ErrorBody),
        (status = 503, description = "`unavailable` or `storage_error`: the store has failed or the server is stopping", body = ErrorBody),
    )
)]
pub async fn nack(
    State(app): State<AppState>,
    QueueName(queue): QueueName,
    ApiJson(request): ApiJson<ReceiptsRequest>,
) -> Result<Json<NackReply>, ApiError> {
    let nacked = app
        .broker
        .nack(&queue, &receipts(&request.receipts))
        .await?;
    Ok(Json(NackReply { nacked }))
}

/// Extends live leases to `visibility_ms` from now.
#[utoipa::path(
    post,
    path = "/v1/queues/{queue}/extend",
    tag = "consume",
    params(("queue" = String, Path, description = "Queue name")),
    request_body(content = ExtendRequest),
    responses(
        (status = 200, description = "How many leases were extended", body = ExtendReply),
        (status = 400, description = "`invalid_name`, `invalid_json` or `invalid_argument`: a bad name, body or visibility", body = ErrorBody),
        (status = 413, description = "`too_large`: the body is over the request limit", body = ErrorBody),
        (status = 503, description = "`unavailable` or `storage_error`: the store has failed or the server is stopping", body = ErrorBody),
    )
)]
pub async fn extend(
    State(app): State<AppState>,
    QueueName(queue): QueueName,
    ApiJson(request): ApiJson<ExtendRequest>,
) -> Result<Json<ExtendReply>, ApiError> {
    let visibility = visibility(&app, request.visibility_ms)?;
    let extended = app
        .broker
        .extend(&queue, &receipts(&request.receipts), visibility)
        .await?;
    Ok(Json(ExtendReply { extended }))
}

/// Shows up to `max` ready messages in delivery order without consuming them.
#[utoipa::path(
    get,
    path = "/v1/queues/{queue}/peek",
    tag = "consume",
    params(("queue" = String, Path, description = "Queue name"), PeekQuery),
    responses(
        (status = 200, description = "The messages that would be delivered next", body = MessagesReply),
        (status = 400, description = "`invalid_name`, `invalid_query` or `invalid_argument`: a bad name or parameter", body = ErrorBody),
        (status = 404, description = "`not_found`: no such subscription", body = ErrorBody),
        (status = 409, description = "`cursor_subscription`: the subscription is a bare cursor (read it with `GET …/log?subscription=`)", body = ErrorBody),
        (status = 503, description = "`unavailable` or `storage_error`: the store has failed or the server is stopping", body = ErrorBody),
    )
)]
pub async fn peek(
    State(app): State<AppState>,
    QueueName(queue): QueueName,
    ApiQuery(query): ApiQuery<PeekQuery>,
) -> Result<Json<MessagesReply>, ApiError> {
    let opts = read_options(query.max, None, query.subscription, query.end);
    let messages = app.broker.peek_from(&queue, opts).await?;
    Ok(Json(MessagesReply::new(messages)))
}

/// Moves up to `max` messages from an end of this queue to an end of `to`, waiting up
/// to `wait_ms` for a first one (Redis `LMOVE`/`BLMOVE`). Each arrives in `to` as a new
/// message. The reply is written before the move is made durable; a reply cut short
/// means the messages may still be in the source.
#[utoipa::path(
    post,
    path = "/v1/queues/{queue}/move",
    tag = "consume",
    params(("queue" = String, Path, description = "Source queue name"), MoveQuery),
    responses(
        (status = 200, description = "The moved messages, as they were in the source (an empty list when none was ready)", body = MessagesReply),
        (status = 400, description = "`invalid_name`, `invalid_query` or `invalid_argument`: a bad name or parameter", body = ErrorBody),
        (status = 404, description = "`not_found`: no such subscription", body = ErrorBody),
        (status = 409, description = "`cursor_subscription`: the subscription is a bare cursor (read it with `GET …/log?subscription=`)", body = ErrorBody),
        (status = 503, description = "`unavailable` or `storage_error`: the store has failed or the server is stopping", body = ErrorBody),
    )
)]
pub async fn move_messages(
    State(app): State<AppState>,
    QueueName(queue): QueueName,
    ApiQuery(query): ApiQuery<MoveQuery>,
) -> Result<Response, ApiError> {
    let opts = MoveOptions {
        read: read_options(query.max, query.wait_ms, query.subscription, query.from_end),
        to: query.to,
        to_end: query.to_end.map_or(End::Tail, End::from),
    };
    crate::native::delivered::reply(app.broker.move_messages(&queue, opts).await?)
}

/// Shows the ready messages at positions `start..=stop` of the delivery order without
/// consuming them (Redis `LRANGE`; `start=i&stop=i` is `LINDEX`).
#[utoipa::path(
    get,
    path = "/v1/queues/{queue}/range",
    tag = "consume",
    params(("queue" = String, Path, description = "Queue name"), RangeQuery),
    responses(
        (status = 200, description = "The messages at those positions, head first (an empty list when none)", body = MessagesReply),
        (status = 400, description = "`invalid_name`, `invalid_query` or `invalid_argument`: a bad name or parameter, or a range over the max batch", body = ErrorBody),
        (status = 404, description = "`not_found`: no such subscription", body = ErrorBody),
        (status = 409, description = "`cursor_subscription`: the subscription is a bare cursor (read it with `GET …/log?subscription=`)", body = ErrorBody),
        (status = 503, description = "`unavailable` or `storage_error`: the store has failed or the server is stopping", body = ErrorBody),
    )
)]
pub async fn range(
    State(app): State<AppState>,
    QueueName(queue): QueueName,
    ApiQuery(query): ApiQuery<RangeQuery>,
) -> Result<Json<MessagesReply>, ApiError> {
    let messages = app
        .broker
        .range(
            &queue,
            query.subscription.as_deref(),
            query.start.unwrap_or(0),
            query.stop.unwrap_or(-1),
        )
        .await?;
    Ok(Json(MessagesReply::new(messages)))
}

/// Returns the message at the head without consuming it and durably raises its
/// `soft_gets` counter (RestMQ's JSON `get`): repeated calls return the same message
/// with the counter 1, 2, 3…
#[utoipa::path(
    post,
    path = "/v1/queues/{queue}/soft-get",
    tag = "consume",
    params(("queue" = String, Path, description = "Queue name"), SubscriptionQuery),
    responses(
        (status = 200, description = "The head message with its raised counter (an empty list when none is ready)", body = MessagesReply),
        (status = 400, description = "`invalid_name` or `invalid_query`: a bad name or parameter", body = ErrorBody),
        (status = 404, description = "`not_found`: no such subscription", body = ErrorBody),
        (status = 409, description = "`cursor_subscription`: the subscription is a bare cursor (read it with `GET …/log?subscription=`)", body = ErrorBody),
        (status = 503, description = "`unavailable` or `storage_error`: the store has failed or the server is stopping", body = ErrorBody),
    )
)]
pub async fn soft_get(
    State(app): State<AppState>,
    QueueName(queue): QueueName,
    ApiQuery(query): ApiQuery<SubscriptionQuery>,
) -> Result<Json<MessagesReply>, ApiError> {
    let message = app
        .broker
        .soft_get(&queue, query.subscription.as_deref())
        .await?;
    Ok(Json(MessagesReply::new(message.into_iter().collect())))
}

/// Deletes one message by id, wherever it is (ready, delayed or leased).
#[utoipa::path(
    delete,
    path = "/v1/queues/{queue}/messages/{id}",
    tag = "messages",
    params(
        ("queue" = String, Path, description = "Queue name"),
        ("id" = u64, Path, description = "Message id"),
        SubscriptionQuery,
    ),
    responses(
        (status = 200, description = "Deleted", body = DeleteReply),
        (status = 400, description = "`invalid_name`, `invalid_argument` or `invalid_query`: a bad name, id or parameter", body = ErrorBody),
        (status = 404, description = "`not_found`: no such queue or subscription, or the message is not in it", body = ErrorBody),
        (status = 409, description = "`cursor_subscription`: the subscription is a bare cursor (read it with `GET …/log?subscription=`)", body = ErrorBody),
        (status = 503, description = "`unavailable` or `storage_error`: the store has failed or the server is stopping", body = ErrorBody),
    )
)]
pub async fn delete_message(
    State(app): State<AppState>,
    QueueName(queue): QueueName,
    MessageId(id): MessageId,
    ApiQuery(query): ApiQuery<SubscriptionQuery>,
) -> Result<Json<DeleteReply>, ApiError> {
    let deleted = app
        .broker
        .delete(&queue, query.subscription.as_deref(), &[id])
        .await?;
    if deleted == 0 {
        return Err(ApiError::from(godwit_core::Error::NotFound(format!(
            "message {id} of {queue:?}"
        ))));
    }
    Ok(Json(DeleteReply { deleted }))
}
