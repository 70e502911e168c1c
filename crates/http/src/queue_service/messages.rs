//! `/messages`: `POST` queues the posted object's `text` value and echoes the object,
//! `GET` takes the oldest value (waiting, in bounded steps), `HEAD` looks without
//! taking, `OPTIONS` lists the methods; any other method is Werkzeug's 405. Methods are
//! matched without regard to case, as Werkzeug upper-cases them (spec 6.3 #1).

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use godwit_core::{Delivery, Error as CoreError, NewMessage, PushOptions, ReadOptions};
use tokio::time::Instant;

use super::json::{self, Json};
use super::pages::{self, ALLOW_MESSAGES};
use crate::AppState;

/// The media type of every JSON reply (Flask's `jsonify`).
const JSON_TYPE: &str = "application/json";

/// `/messages`, every method.
pub(crate) async fn route(State(app): State<AppState>, req: Request) -> Response {
    match req.method().as_str().to_ascii_uppercase().as_str() {
        "GET" => read(&app).await,
        "HEAD" => look(&app).await,
        "POST" => write(&app, req).await,
        "OPTIONS" => {
            let mut response = (
                [(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                )],
                "",
            )
                .into_response();
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static(ALLOW_MESSAGES));
            response
        }
        _ => pages::error(StatusCode::METHOD_NOT_ALLOWED),
    }
}

/// Whether the request's media type is JSON as Flask 1.0 decides: `application/json`
/// or `application/*+json`, compared without case, parameters ignored.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return false;
    };
    let value = String::from_utf8_lossy(value.as_bytes());
    let mime: String = value
        .trim_start()
        .chars()
        .take_while(|c| !matches!(c, ';' | ',') && !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// `POST /messages`: the JSON object's `text` value is queued (as its compact JSON
/// text) and the whole object echoed once it is. A full queue with blocking writers
/// holds the request up to the configured wait, then answers 503 with nothing stored.
async fn write(app: &AppState, req: Request) -> Response {
    let limit = app.broker.config().max_message_bytes;
    if crate::native::extract::declared_length(req.headers()).is_some_and(|n| n > limit as u64) {
        return pages::error(StatusCode::PAYLOAD_TOO_LARGE);
    }
    if !is_json(req.headers()) {
        return pages::error(StatusCode::BAD_REQUEST);
    }
    let body = match crate::native::extract::read_body(Body::new(req.into_body()), limit).await {
        Ok(body) => body,
        Err(e) if e.status == StatusCode::PAYLOAD_TOO_LARGE => {
            return pages::error(StatusCode::PAYLOAD_TOO_LARGE)
        }
        Err(_) => return pages::error(StatusCode::BAD_REQUEST),
    };
    let posted = match json::loads(&body) {
        Ok(Json::Object(map)) => map,
        _ => return pages::error(StatusCode::BAD_REQUEST),
    };
    let Some(text) = posted.get("text") else {
        return pages::error(StatusCode::BAD_REQUEST);
    };
    let message = NewMessage::new(json::dumps_utf8(text));
    if let Err(e) = push(app, message).await {
        return pages::core_error(&e);
    }
    let mut echo = json::dumps(&Json::Object(posted));
    echo.push('\n');
    ([(CONTENT_TYPE, HeaderValue::from_static(JSON_TYPE))], echo).into_response()
}

/// The longest single wait the core takes (its `max_wait`), and the time left until
/// `deadline` cut to it.
fn step(app: &AppState, deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .min(app.broker.config().max_wait)
}

/// Pushes `message`, waiting for room up to the configured wait, in steps of at most
/// the core's longest wait.
async fn push(app: &AppState, message: NewMessage) -> godwit_core::Result<()> {
    let queue = &app.opts.queue_service.queue;
    let deadline = Instant::now() + app.opts.queue_service.wait;
    loop {
        let started = Instant::now();
        let wait = step(app, deadline);
        let opts = PushOptions {
            wait: Some(wait),
            ..PushOptions::default()
        };
        match app
            .broker
            .push_with(queue, vec![message.clone()], opts)
            .await
        {
            Ok(_) => return Ok(()),
            // A refusal that took the whole step was a wait for room: wait on while
            // time is left. One that came at once (a queue that rejects, a push larger
            // than the queue, a server stopping) is final.
            Err(CoreError::QueueFull(_))
                if !wait.is_zero() && started.elapsed() >= wait && Instant::now() < deadline => {}
            Err(e) => return Err(e),
        }
    }
}

/// Takes the oldest message, waiting up to the configured wait in steps of at most the
/// core's longest wait; `None` when none came (or the server is stopping). A delivery
/// returned holds one readable message.
async fn take(app: &AppState) -> godwit_core::Result<Option<Delivery>> {
    let queue = &app.opts.queue_service.queue;
    let deadline = Instant::now() + app.opts.queue_service.wait;
    let mut created = false;
    loop {
        let started = Instant::now();
        let wait = step(app, deadline);
        let opts = ReadOptions {
            max: 1,
            wait,
            ..ReadOptions::default()
        };
        match crate::native::delivered::take_readable(&app.broker, queue, &opts).await {
            Ok(d) if !d.is_empty() => return Ok(Some(d)),
            // Not made yet (or deleted): make it, and wait on it.
            Err(CoreError::NotFound(_)) if !created => {
                created = true;
                app.broker.ensure(queue).await?;
                continue;
            }
            Err(CoreError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        // An empty answer before the step was up means the server is stopping.
        if wait.is_zero() || started.elapsed() < wait || Instant::now() >= deadline {
            return Ok(None);
        }
    }
}

/// The reply body of a stored value: `{"text":<value>}⏎`. A body another face pushed
/// that is not JSON is shown as a string of its text.
fn render(body: &[u8]) -> Bytes {
    let value = std::str::from_utf8(body)
        .ok()
        .and_then(|s| json::parse(s).ok())
        .unwrap_or_else(|| Json::Str(String::from_utf8_lossy(body).into_owned()));
    let reply = Json::Object([("text".to_string(), value)].into_iter().collect());
    let mut text = json::dumps(&reply);
    text.push('\n');
    Bytes::from(text)
}

/// `GET /messages`: 200 with the oldest value, taken for good only once the reply was
/// handed to the connection (a client that left gets nothing and takes nothing); 204
/// with no body when none came within the wait.
async fn read(app: &AppState) -> Response {
    let delivery = match take(app).await {
        Ok(Some(d)) => d,
        Ok(None) => return StatusCode::NO_CONTENT.into_response(),
        Err(e) => return pages::core_error(&e),
    };
    let Some(message) = delivery.messages().first() else {
        // `take` hands out only deliveries with a readable message.
        return StatusCode::NO_CONTENT.into_response();
    };
    let bytes = render(&message.body);
    crate::native::delivered::confirming(bytes, HeaderValue::from_static(JSON_TYPE), delivery)
}

/// `HEAD /messages`: neither takes nor waits; 200 with the headers `GET` would send
/// when a message is waiting, 204 when none is.
async fn look(app: &AppState) -> Response {
    let queue = &app.opts.queue_service.queue;
    let messages = match app.broker.peek(queue, 1, None).await {
        Ok(messages) => messages,
        Err(CoreError::NotFound(_)) => Vec::new(),
        Err(e) => return pages::core_error(&e),
    };
    let Some(message) = messages.first() else {
        return StatusCode::NO_CONTENT.into_response();
    };
    let len = render(&message.body).len();
    let mut response = Response::new(Body::empty());
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(JSON_TYPE));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(content_type: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap());
        h
    }

    #[test]
    fn json_media_types_are_flasks() {
        for yes in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/vnd.api+json",
            " application/json;x=1",
        ] {
            assert!(is_json(&headers(yes)), "{yes}");
        }
        for no in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/jsonx",
            "",
        ] {
            assert!(!is_json(&headers(no)), "{no}");
        }
        assert!(!is_json(&HeaderMap::new()));
    }

    #[test]
    fn stored_values_render_as_the_read_reply() {
        assert_eq!(&render(b"\"hello\"")[..], b"{\"text\":\"hello\"}\n");
        assert_eq!(&render("\"é\"".as_bytes())[..], b"{\"text\":\"\\u00e9\"}\n");
        assert_eq!(&render(b"null")[..], b"{\"text\":null}\n");
        assert_eq!(&render(b"not json")[..], b"{\"text\":\"not json\"}\n");
    }
}
