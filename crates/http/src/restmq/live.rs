//! RestMQ's live consumers on the core's streams hub: Comet (`/c/<queue>`, chunked
//! `text/plain`, one JSON line a message), WebSocket (`/ws/<queue>`, one text frame a
//! message, client frames echoed) and the SSE RestMQ promised (`/sse/<queue>`). All
//! follow the queue's policy (`/p/`: broadcast unless set to round-robin) and its
//! status (`/control/`: stopped pauses them), and a message counts as delivered once
//! written to one of them. `DELETE /q/<queue>` ends them: Comet with a `null` line,
//! WebSocket with a `null` frame and a close (1000), SSE with a `purged` event.

use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::sse::Event;
use axum::response::Response;
use bytes::Bytes;
use godwit_core::{Message, QueueEvent, Stream, StreamItem, StreamOptions, StreamPolicy};

use super::acl::Category;
use super::pyjson::{dumps, PyValue};
use super::reply::{error_page, written_text};
use super::request::{checked, core_error, key, peer, text};
use crate::live::{sse_response, LiveBody, Render, HEARTBEAT};
use crate::AppState;

// Comet sends no heartbeat: every byte of its body is a message line to RestMQ's
// clients. SSE and WebSocket send one every `HEARTBEAT`.

/// A live consumer of the queue's default subscription, by the queue's policy.
#[allow(clippy::result_large_err)] // the error is the reply, made once per request
fn connect(app: &AppState, queue: &str) -> Result<Stream, Response> {
    let opts = StreamOptions {
        policy: StreamPolicy::FromQueue,
        ..StreamOptions::default()
    };
    app.broker.connect(queue, opts).map_err(|e| core_error(&e))
}

/// `{"key": "<queue>:<id>", "value": "<body>"}`: the object every live consumer gets
/// (values as text, never converted to numbers).
fn line(queue: &str, m: &Message) -> String {
    dumps(&PyValue::Dict(vec![
        ("key".into(), PyValue::Str(key(queue, m.id))),
        ("value".into(), PyValue::Str(text(&m.body))),
    ]))
}

/// Comet's body: a line a message, `null` and the end on a purge or a drop.
struct CometLines {
    queue: String,
    callback: Option<String>,
}

impl Render for CometLines {
    type Frame = Bytes;

    fn message(&self, m: &Message) -> Bytes {
        written_text(&line(&self.queue, m), self.callback.as_deref()).into()
    }

    fn event(&self, e: QueueEvent) -> (Option<Bytes>, bool) {
        match e {
            QueueEvent::Purged | QueueEvent::Dropped => (
                Some(written_text("null", self.callback.as_deref()).into()),
                true,
            ),
            QueueEvent::Paused | QueueEvent::Resumed => (None, false),
        }
    }
}

/// `GET /c/<queue>`: the Comet stream, headers at once.
pub(crate) async fn comet(State(app): State<AppState>, req: Request) -> Response {
    let ctx = match checked(&app, req, Some(Category::CometConsumer), "/c/").await {
        Ok(ctx) => ctx,
        Err(refused) => return refused,
    };
    let stream = match connect(&app, &ctx.name) {
        Ok(s) => s,
        Err(refused) => return refused,
    };
    let render = CometLines {
        queue: ctx.name,
        callback: ctx.callback,
    };
    let mut response = Response::new(Body::from_stream(LiveBody::new(stream, render)));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

/// The SSE rendering: `id:` the message id, `data:` the Comet object.
struct SseEvents {
    queue: String,
}

impl Render for SseEvents {
    type Frame = Event;

    fn message(&self, m: &Message) -> Event {
        Event::default()
            .id(m.id.to_string())
            .data(line(&self.queue, m))
    }

    fn event(&self, e: QueueEvent) -> (Option<Event>, bool) {
        match e {
            QueueEvent::Purged => (Some(Event::default().event("purged").data("null")), true),
            QueueEvent::Dropped => (Some(Event::default().event("dropped").data("null")), true),
            QueueEvent::Paused | QueueEvent::Resumed => (None, false),
        }
    }
}

/// `GET /sse/<queue>`: the Server-Sent Events stream (Comet's ACL category).
pub(crate) async fn sse(State(app): State<AppState>, req: Request) -> Response {
    let ctx = match checked(&app, req, Some(Category::CometConsumer), "/sse/").await {
        Ok(ctx) => ctx,
        Err(refused) => return refused,
    };
    let stream = match connect(&app, &ctx.name) {
        Ok(s) => s,
        Err(refused) => return refused,
    };
    let render = SseEvents { queue: ctx.name };
    sse_response(LiveBody::new(stream, render))
}

/// `/ws/<queue>`: the WebSocket consumer. RFC 6455 (version 13) only: another version
/// gets 426 with `Sec-WebSocket-Version: 13`, a request that is not an upgrade the 403
/// page; the ACL (`[websocket:consumer]`, cookie `auth=user:password`) is checked
/// before the upgrade.
pub(crate) async fn websocket(State(app): State<AppState>, req: Request) -> Response {
    let ip = peer(&app, &req);
    let verdict = app
        .restmq
        .acl
        .check_request(Category::WebsocketConsumer, ip, req.headers());
    if let Some(refused) = super::acl::refusal(verdict) {
        return refused;
    }
    let headers = req.headers();
    let upgrade_asked = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !upgrade_asked {
        return error_page(StatusCode::FORBIDDEN);
    }
    let version = headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    if version != Some("13") {
        let mut refused = error_page(StatusCode::UPGRADE_REQUIRED);
        refused.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return refused;
    }
    let tail = req.uri().path().strip_prefix("/ws/").unwrap_or_default();
    let Ok(queue) = super::args::decode_path_name(tail) else {
        return error_page(StatusCode::BAD_REQUEST);
    };
    let (mut parts, _) = req.into_parts();
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &app).await {
        Ok(u) => u,
        Err(_) => return error_page(StatusCode::BAD_REQUEST),
    };
    let stream = match connect(&app, &queue) {
        Ok(s) => s,
        Err(refused) => return refused,
    };
    upgrade.on_upgrade(move |socket| serve_ws(queue, stream, socket))
}

async fn serve_ws(queue: String, mut stream: Stream, mut socket: WebSocket) {
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.reset();
    loop {
        tokio::select! {
            item = stream.next() => {
                let Some(item) = item else { break };
                match item {
                    StreamItem::Event(QueueEvent::Purged | QueueEvent::Dropped) => {
                        let _ = socket.send(WsMessage::Text("null".into())).await;
                        let close = CloseFrame { code: 1000, reason: "".into() };
                        let _ = socket.send(WsMessage::Close(Some(close))).await;
                        break;
                    }
                    StreamItem::Event(_) => {}
                    StreamItem::Offer(offer) => {
                        let mut sent = true;
                        for m in offer.messages() {
                            if socket.send(WsMessage::Text(line(&queue, m).into())).await.is_err() {
                                sent = false;
                                break;
                            }
                        }
                        if !sent {
                            break;
                        }
                        offer.written();
                    }
                }
            }
            frame = socket.recv() => {
                let echo = match frame {
                    Some(Ok(WsMessage::Text(t))) => t,
                    Some(Ok(WsMessage::Binary(b))) => String::from_utf8_lossy(&b).into_owned().into(),
                    Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                if socket.send(WsMessage::Text(echo)).await.is_err() {
                    break;
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
