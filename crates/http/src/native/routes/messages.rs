//! Pushing messages: one raw body (`POST …/messages`) or a JSON batch (`POST …/batch`).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use godwit_core::{Durability, NewMessage, PushOptions, DEFAULT_PRIORITY};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorBody};
use crate::native::extract::{ApiJson, ApiQuery, QueueName, RawBody};
use crate::AppState;

/// Request headers with this prefix become message headers (the rest of the name).
pub const HEADER_PREFIX: &str = "x-godwit-header-";

/// Options of a single push, in the query string.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PushQuery {
    /// 0..=9, higher is delivered first (default 4).
    pub priority: Option<u8>,
    /// Not delivered before this many milliseconds have passed.
    pub delay_ms: Option<u64>,
    /// Never delivered once this many milliseconds have passed (at least 1).
    pub ttl_ms: Option<u64>,
    /// A second push with this id within the queue's dedup window is not added.
    pub dedup_id: Option<String>,
    /// Goes to the head of its priority's ready order instead of the tail (default
    /// false).
    pub at_head: Option<bool>,
    /// What to wait for before replying (default: the server's `--fsync` policy).
    pub durability: Option<DurabilityJson>,
    /// Not added when the queue still holds a message with an equal body (ready,
    /// delayed or in flight): the reply is then a duplicate naming it (default false).
    pub unique: Option<bool>,
    /// Refuse with 404 unless the queue exists, instead of creating it (default false).
    pub must_exist: Option<bool>,
}

/// How durable a push must be before the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DurabilityJson {
    /// On disk: wait for an fsync covering the push, even under `--fsync never`.
    Fsync,
    /// In the log file: survives the process being killed, not a power loss.
    Written,
}

impl From<DurabilityJson> for Durability {
    fn from(d: DurabilityJson) -> Self {
        match d {
            DurabilityJson::Fsync => Durability::Fsync,
            DurabilityJson::Written => Durability::Written,
        }
    }
}

fn push_options(durability: Option<DurabilityJson>, must_exist: bool) -> PushOptions {
    PushOptions {
        durability: durability.map(Durability::from),
        must_exist,
        // A push to a full blocking queue waits up to the server's `--max-wait-ms`.
        wait: None,
    }
}

/// The reply of a single push.
#[derive(Debug, Serialize, ToSchema)]
pub struct PushReply {
    /// The queue pushed to.
    pub queue: String,
    /// The message's id (the original's id for a duplicate).
    pub id: u64,
    /// Present and `true` when the message was not added: its dedup id matched an
    /// earlier message, or (a unique push) the queue holds an equal body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<bool>,
    /// Messages the queue holds after the push (ready, delayed and in flight).
    pub length: u64,
    /// Whether an fsync covering the push completed before this reply.
    pub durable: bool,
}

/// One message of a batch: exactly one of `body` and `body_base64`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchItem {
    /// The body as text.
    pub body: Option<String>,
    /// The body as standard base64, for binary bodies.
    pub body_base64: Option<String>,
    /// 0..=9, higher is delivered first (default 4).
    pub priority: Option<u8>,
    /// Not delivered before this many milliseconds have passed.
    pub delay_ms: Option<u64>,
    /// Never delivered once this many milliseconds have passed (at least 1).
    pub ttl_ms: Option<u64>,
    /// A second push with this id within the queue's dedup window is not added.
    pub dedup_id: Option<String>,
    /// Free-form string headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Goes to the head of its priority's ready order instead of the tail.
    #[serde(default)]
    pub at_head: bool,
    /// Not added when the queue still holds a message with an equal body.
    #[serde(default)]
    pub unique: bool,
}

/// The body of `POST /v1/queues/{queue}/batch`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// The messages, pushed all or nothing, in this order.
    pub messages: Vec<BatchItem>,
    /// What to wait for before replying (default: the server's `--fsync` policy).
    pub durability: Option<DurabilityJson>,
    /// Refuse with 404 unless the queue exists, instead of creating it.
    #[serde(default)]
    pub must_exist: bool,
}

/// The reply of a batch push.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchReply {
    /// The queue pushed to.
    pub queue: String,
    /// The ids, in the order of the request (an original's id for a duplicate).
    pub ids: Vec<u64>,
    /// Present when some items were duplicates: `true` at their positions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<Vec<bool>>,
    /// Messages the queue holds after the push (ready, delayed and in flight).
    pub length: u64,
    /// Whether an fsync covering the push completed before this reply.
    pub durable: bool,
}

/// Push options shared by both forms, as the wire gives them; the core checks their
/// bounds (`godwit_core::validate`).
struct MessageOptions {
    priority: Option<u8>,
    delay_ms: Option<u64>,
    ttl_ms: Option<u64>,
    dedup_id: Option<String>,
    at_head: bool,
    unique: bool,
}

impl MessageOptions {
    /// The core's message: blank arguments (an empty dedup id, a zero delay) are absent.
    /// A zero `ttl_ms` is refused here: the core takes a zero TTL (expired at once, for
    /// RestMQ's `ttl` ≤ 0), the native API documents 1 as its least.
    fn into_message(
        self,
        body: Bytes,
        headers: BTreeMap<String, String>,
    ) -> Result<NewMessage, ApiError> {
        if self.ttl_ms == Some(0) {
            return Err(ApiError::invalid_argument(format!(
                "ttl_ms must be 1..={}",
                crate::MAX_DURATION_MS
            )));
        }
        Ok(NewMessage {
            body,
            priority: self.priority.unwrap_or(DEFAULT_PRIORITY),
            delay: self
                .delay_ms
                .filter(|ms| *ms > 0)
                .map(Duration::from_millis),
            ttl: self.ttl_ms.map(Duration::from_millis),
            dedup_id: self.dedup_id.filter(|id| !id.is_empty()),
            headers,
            at_head: self.at_head,
            unique: self.unique,
        })
    }
}

/// Collects `x-godwit-header-<name>` request headers as message headers.
/// The request's `x-godwit-header-*` headers, read in place (axum's `HeaderMap`
/// extractor would clone every header of every push).
pub struct MessageHeaders(BTreeMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for MessageHeaders {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        message_headers(&parts.headers).map(Self)
    }
}

fn message_headers(headers: &HeaderMap) -> Result<BTreeMap<String, String>, ApiError> {
    let mut out = BTreeMap::new();
    for (name, value) in headers {
        let Some(key) = name.as_str().strip_prefix(HEADER_PREFIX) else {
            continue;
        };
        let value = std::str::from_utf8(value.as_bytes())
            .map_err(|_| ApiError::invalid_argument(format!("header {name} is not valid UTF-8")))?;
        out.insert(key.to_owned(), value.to_owned());
    }
    Ok(out)
}

/// Pushes the request body, verbatim, as one message.
///
/// Request headers named `x-godwit-header-<name>` become message headers `<name>`.
#[utoipa::path(
    post,
    path = "/v1/queues/{queue}/messages",
    tag = "messages",
    params(("queue" = String, Path, description = "Queue name (created on first use)"), PushQuery),
    request_body(content = Option<String>, content_type = "application/octet-stream",
        description = "The message body, verbatim (may be empty). Headers `x-godwit-header-<name>: <value>` become message headers."),
    responses(
        (status = 201, description = "Pushed", body = PushReply),
        (status = 200, description = "Not added: a duplicate of a message within the dedup window, or (unique) of a body still queued", body = PushReply),
        (status = 400, description = "`invalid_name`, `invalid_query` or `invalid_argument`: a bad name, parameter or header", body = ErrorBody),
        (status = 404, description = "`not_found`: `must_exist` was set and the queue does not exist", body = ErrorBody),
        (status = 409, description = "`queue_full`: the queue is at its max length or bytes and rejects pushes", body = ErrorBody),
        (status = 413, description = "`too_large`: the body is over the message or request limit", body = ErrorBody),
        (status = 503, description = "`unavailable` or `storage_error`: the store has failed or the server is stopping", body = ErrorBody),
        (status = 507, description = "`disk_full`: no room to store the message now", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before trying again"))),
    )
)]
pub async fn push(
    State(app): State<AppState>,
    QueueName(queue): QueueName,
    ApiQuery(query): ApiQuery<PushQuery>,
    MessageHeaders(headers): MessageHeaders,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let options = MessageOptions {
        priority: query.priority,
        delay_ms: query.delay_ms,
        ttl_ms: query.ttl_ms,
        dedup_id: query.dedup_id,
        at_head: query.at_head.unwrap_or(false),
        unique: query.unique.unwrap_or(false),
    };
    let message = options.into_message(body, headers)?;
    let pushed = app
        .broker
        .push_with(
            &queue,
            vec![message],
            push_options(query.durability, query.must_exist.unwrap_or(false)),
        )
        .await?;
    let outcome = pushed.outcomes.first().copied().ok_or_else(|| {
        ApiError::from_status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "push returned no outcome",
        )
    })?;
    let status = if outcome.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let reply = PushReply {
        queue,
        id: outcome.id,
        duplicate: outcome.duplicate.then_some(true),
        length: pushed.length,
        durable: pushed.durable,
    };
    Ok((status, Json(reply)).into_response())
}

/// Pushes a JSON batch of messages as one atomic step: every item is checked first, and
/// either all are stored or none.
#[utoipa::path(
    post,
    path = "/v1/queues/{queue}/batch",
    tag = "messages",
    params(("queue" = String, Path, description = "Queue name (created on first use)")),
    request_body(content = BatchRequest),
    responses(
        (status = 201, description = "Pushed", body = BatchReply),
        (status = 200, description = "Every item was a duplicate", body = BatchReply),
        (status = 400, description = "`invalid_name`, `invalid_json` or `invalid_argument`: a bad name, JSON body or item", body = ErrorBody),
        (status = 404, description = "`not_found`: `must_exist` was set and the queue does not exist", body = ErrorBody),
        (status = 409, description = "`queue_full`: the queue is at its max length or bytes and rejects pushes", body = ErrorBody),
        (status = 413, description = "`too_large`: a body or the request is over the limit", body = ErrorBody),
        (status = 503, description = "`unavailable` or `storage_error`: the store has failed or the server is stopping", body = ErrorBody),
        (status = 507, description = "`disk_full`: no room to store the messages now", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before trying again"))),
    )
)]
pub async fn batch(
    State(app): State<AppState>,
    QueueName(queue): QueueName,
    ApiJson(request): ApiJson<BatchRequest>,
) -> Result<Response, ApiError> {
    if request.messages.is_empty() {
        return Err(ApiError::invalid_argument("messages must not be empty"));
    }
    let messages = request
        .messages
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            batch_message(item).map_err(|mut err| {
                err.message = format!("messages[{i}]: {}", err.message);
                err
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let pushed = app
        .broker
        .push_with(
            &queue,
            messages,
            push_options(request.durability, request.must_exist),
        )
        .await?;
    let outcomes = &pushed.outcomes;
    let fresh = outcomes.iter().filter(|o| !o.duplicate).count();
    let any_duplicate = fresh < outcomes.len();
    let status = if fresh == 0 {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let reply = BatchReply {
        queue,
        ids: outcomes.iter().map(|o| o.id).collect(),
        duplicate: any_duplicate.then(|| outcomes.iter().map(|o| o.duplicate).collect()),
        length: pushed.length,
        durable: pushed.durable,
    };
    Ok((status, Json(reply)).into_response())
}

/// A body given in JSON as exactly one of `body` (text) and `body_base64`.
pub(crate) fn json_body(text: Option<String>, base64: Option<String>) -> Result<Bytes, ApiError> {
    match (text, base64) {
        (Some(text), None) => Ok(Bytes::from(text)),
        (None, Some(encoded)) => BASE64
            .decode(encoded.as_bytes())
            .map(Bytes::from)
            .map_err(|err| ApiError::invalid_argument(format!("body_base64 is not base64: {err}"))),
        _ => Err(ApiError::invalid_argument(
            "give exactly one of body and body_base64",
        )),
    }
}

fn batch_message(item: BatchItem) -> Result<NewMessage, ApiError> {
    let body = json_body(item.body, item.body_base64)?;
    let options = MessageOptions {
        priority: item.priority,
        delay_ms: item.delay_ms,
        ttl_ms: item.ttl_ms,
        dedup_id: item.dedup_id,
        at_head: item.at_head,
        unique: item.unique,
    };
    options.into_message(body, item.headers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn prefixed_request_headers_become_message_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("x-godwit-header-trace", HeaderValue::from_static("abc"));
        headers.insert("content-type", HeaderValue::from_static("text/plain"));
        let got = message_headers(&headers).unwrap();
        assert_eq!(
            got,
            BTreeMap::from([("trace".to_owned(), "abc".to_owned())])
        );
    }

    #[test]
    fn batch_items_need_exactly_one_body() {
        let item = |body: Option<&str>, b64: Option<&str>| BatchItem {
            body: body.map(str::to_owned),
            body_base64: b64.map(str::to_owned),
            priority: None,
            delay_ms: None,
            ttl_ms: None,
            dedup_id: None,
            headers: BTreeMap::new(),
            at_head: false,
            unique: false,
        };
        assert!(batch_message(item(None, None)).is_err());
        assert!(batch_message(item(Some("a"), Some("YQ=="))).is_err());
        assert!(batch_message(item(None, Some("!!"))).is_err());
        let m = batch_message(item(None, Some("/wA="))).unwrap();
        assert_eq!(&m.body[..], b"\xff\x00");
    }

    #[test]
    fn blank_options_are_absent_and_bounds_are_left_to_the_core() {
        let opts = |priority, delay_ms, dedup_id: &str| MessageOptions {
            priority,
            delay_ms,
            ttl_ms: Some(5),
            dedup_id: Some(dedup_id.to_owned()),
            at_head: false,
            unique: false,
        };
        let m = opts(None, Some(0), "")
            .into_message(Bytes::from_static(b"x"), BTreeMap::new())
            .unwrap();
        assert_eq!(m.priority, DEFAULT_PRIORITY);
        assert_eq!((m.delay, m.dedup_id), (None, None));
        assert_eq!(m.ttl, Some(Duration::from_millis(5)));
        // Out of range here, refused by `godwit_core::validate` (400 over HTTP).
        let m = opts(Some(10), Some(1), "k")
            .into_message(Bytes::new(), BTreeMap::new())
            .unwrap();
        assert_eq!(m.priority, 10);
    }
}
