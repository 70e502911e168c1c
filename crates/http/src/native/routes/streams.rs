//! Live streams over HTTP: `GET /v1/queues/{queue}/events` (Server-Sent Events) and
//! `GET /v1/queues/{queue}/ws` (WebSocket), both consumers of the core's streams hub.
//!
//! A message counts as delivered once its frame was handed to the connection: the SSE
//! body yields the event, hands the turn back once (so hyper flushes it), then reports
//! it written; the WebSocket writes and flushes the frame, then reports it. A consumer
//! that goes away first leaves its messages to the others or to the queue.

use std::time::Duration;

use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::Event;
use axum::response::Response;
use godwit_core::{
    QueueEvent, Receipt, Stream, StreamItem, StreamMode, StreamOptions, StreamPolicy,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorBody};
use crate::live::{sse_response, LiveBody, Render, HEARTBEAT};
use crate::native::extract::{ApiQuery, QueueName};
use crate::native::render::MessageJson;
use crate::AppState;

/// How a stream consumes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModeJson {
    /// Removed once written (the default).
    #[default]
    Take,
    /// Leased once written; ack with the receipt.
    Lease,
}

/// How a queue's consumers share its messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PolicyJson {
    /// Every message to every consumer (the default).
    #[default]
    Broadcast,
    /// Each message to one consumer, in turn.
    RoundRobin,
    /// As the queue's `live_policy` setting says, now and after every change of it
    /// (broadcast while it is not set).
    Queue,
}

/// Options of a stream, in the query string.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// A named subscription; absent or empty means the queue's default one.
    pub subscription: Option<String>,
    /// `take` (default) or `lease`.
    pub mode: Option<ModeJson>,
    /// `broadcast` (default), `round_robin`, or `queue` (follow the queue's
    /// `live_policy` setting).
    pub policy: Option<PolicyJson>,
    /// The lease's visibility in lease mode (default 30000).
    pub visibility_ms: Option<u64>,
}

fn options(
    app: &AppState,
    q: StreamQuery,
    after_id: Option<u64>,
) -> Result<StreamOptions, ApiError> {
    let mode = match q.mode.unwrap_or_default() {
        ModeJson::Take => {
            if q.visibility_ms.is_some() {
                return Err(ApiError::invalid_argument(
                    "visibility_ms is for mode=lease",
                ));
            }
            StreamMode::Take
        }
        ModeJson::Lease => StreamMode::Lease {
            visibility: match q.visibility_ms {
                None => app.opts.default_visibility,
                Some(0) => {
                    return Err(ApiError::invalid_argument(
                        "visibility_ms must be at least 1",
                    ))
                }
                Some(ms) => Duration::from_millis(ms),
            },
        },
    };
    Ok(StreamOptions {
        subscription: q.subscription,
        mode,
        policy: match q.policy.unwrap_or_default() {
            PolicyJson::Broadcast => StreamPolicy::Broadcast,
            PolicyJson::RoundRobin => StreamPolicy::RoundRobin,
            PolicyJson::Queue => StreamPolicy::FromQueue,
        },
        after_id,
    })
}

fn event_name(e: QueueEvent) -> &'static str {
    match e {
        QueueEvent::Purged => "purged",
        QueueEvent::Dropped => "dropped",
        QueueEvent::Paused => "paused",
        QueueEvent::Resumed => "resumed",
    }
}

/// A queue's messages as Server-Sent Events: each message one `message` event whose
/// `id:` is the message id and whose data is the message as JSON; queue events as
/// `purged`, `dropped` (the stream then ends), `paused` and `resumed`; a comment every
/// 15 s while idle. A reconnect on a named subscription with `Last-Event-ID` resumes
/// after that id.
#[utoipa::path(
    get,
    path = "/v1/queues/{queue}/events",
    tag = "streams",
    params(("queue" = String, Path, description = "Queue name"), StreamQuery,
        ("Last-Event-ID" = Option<u64>, Header, description = "The last message id received before a reconnect")),
    responses(
        (status = 200, description = "The event stream", content_type = "text/event-stream", body = String),
        (status = 400, description = "`invalid_name`, `invalid_query` or `invalid_argument`: a bad name or option", body = ErrorBody),
        (status = 409, description = "`cursor_subscription`: the subscription is a bare cursor (read it with `GET …/log?subscription=`)", body = ErrorBody),
        (status = 503, description = "`unavailable`: the store has failed or the server is stopping", body = ErrorBody),
    )
)]
pub async fn events(
    State(app): State<AppState>,
    QueueName(queue): QueueName,
    ApiQuery(q): ApiQuery<StreamQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let after_id = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::invalid_argument("Last-Event-ID must be a message id (a u64)")
                })?,
        ),
    };
    let stream = app.broker.connect(&queue, options(&app, q, after_id)?)?;
    Ok(sse_response(LiveBody::new(stream, NativeSse)))
}

/// The native SSE rendering: `message` events with the message as JSON, queue events
/// by name (`dropped` ends the stream).
struct NativeSse;

impl Render for NativeSse {
    type Frame = Event;

    fn message(&self, m: &godwit_core::Message) -> Event {
        let json = serde_json::to_string(&MessageJson::from(m.clone())).unwrap_or_default();
        Event::default()
            .id(m.id.to_string())
            .event("message")
            .data(json)
    }

    fn event(&self, e: QueueEvent) -> (Option<Event>, bool) {
        let event = Event::default().event(event_name(e)).data("{}");
        (Some(event), e == QueueEvent::Dropped)
    }
}

/// A client's frame on a WebSocket stream.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckFrame {
    /// A receipt from a leased message.
    pub ack: String,
}

/// A queue's messages over a WebSocket: each message a text frame
/// `{"type": "message", "message": {...}}`, queue events as `{"type": "purged"}` (and
/// `dropped`, `paused`, `resumed`); in lease mode the client acks with
/// `{"ack": "<receipt>"}` frames (or `POST …/ack`). A ping every 15 s while idle.
#[utoipa::path(
    get,
    path = "/v1/queues/{queue}/ws",
    tag = "streams",
    params(("queue" = String, Path, description = "Queue name"), StreamQuery),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, description = "`invalid_name`, `invalid_query` or `invalid_argument`: a bad name or option, or not a WebSocket upgrade", body = ErrorBody),
        (status = 409, description = "`cursor_subscription`: the subscription is a bare cursor (read it with `GET …/log?subscription=`)", body = ErrorBody),
        (status = 503, description = "`unavailable`: the store has failed or the server is stopping", body = ErrorBody),
    )
)]
pub async fn ws(
    State(app): State<AppState>,
    QueueName(queue): QueueName,
    ApiQuery(q): ApiQuery<StreamQuery>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let upgrade = upgrade.map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid_argument",
            format!("not a WebSocket upgrade: {e}"),
        )
    })?;
    let stream = app.broker.connect(&queue, options(&app, q, None)?)?;
    Ok(upgrade.on_upgrade(move |socket| serve_ws(app, queue, stream, socket)))
}

async fn serve_ws(app: AppState, queue: String, mut stream: Stream, mut socket: WebSocket) {
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.reset();
    loop {
        tokio::select! {
            item = stream.next() => {
                let Some(item) = item else { break };
                match item {
                    StreamItem::Event(e) => {
                        let frame = json!({"type": event_name(e)}).to_string();
                        if socket.send(WsMessage::Text(frame.into())).await.is_err() {
                            break;
                        }
                        if e == QueueEvent::Dropped {
                            break;
                        }
                    }
                    StreamItem::Offer(offer) => {
                        let mut ok = true;
                        for m in offer.messages() {
                            let frame = json!({"type": "message", "message": MessageJson::from(m.clone())})
                                .to_string();
                            if socket.send(WsMessage::Text(frame.into())).await.is_err() {
                                ok = false;
                                break;
                            }
                        }
                        if !ok {
                            break;
                        }
                        offer.written();
                    }
                }
            }
            frame = socket.recv() => {
                match frame {
                    Some(Ok(WsMessage::Text(text))) => {
                        let reply = match serde_json::from_str::<AckFrame>(&text) {
                            Ok(AckFrame { ack }) => match ack.parse::<Receipt>() {
                                Ok(r) => match app.broker.ack(&queue, &[r]).await {
                                    Ok(n) => json!({"type": "acked", "acked": n}),
                                    Err(e) => json!({"type": "error", "code": e.code(), "message": e.to_string()}),
                                },
                                Err(_) => json!({"type": "acked", "acked": 0}),
                            },
                            Err(e) => json!({"type": "error", "code": "invalid_json", "message": e.to_string()}),
                        };
                        if socket.send(WsMessage::Text(reply.to_string().into())).await.is_err() {
                            break;
                        }
                    }
                    Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                }
            }
            _ = heartbeat.tick() => {
                if socket.send(WsMessage::Ping(Vec::new().into())).await.is_err() {
                    break;
                }
            }
        }
    }
}
