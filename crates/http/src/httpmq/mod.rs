//! httpmq's dialect (`specs/httpmq.md`): topic publish/subscribe over plain HTTP,
//! `POST|DELETE|GET|HEAD /{topic}/{user}` and `POST /{topic}`, with empty `text/html`
//! bodies and status codes as the only error form. Served at the root of
//! `--httpmq-listen` and under `/httpmq/` on the main listener (see [`crate::Dialect`]).
//!
//! - [`request`]: the raw path and method into a command (names split before decoding).
//! - `topic`: each command applied to the broker (topic = fan-out-only queue, user =
//!   named subscription at the end, fetch = a take confirmed once written).
//! - [`reply`]: the reply shapes and the one mapping of core errors onto them.
//!
//! Every path goes through one fallback handler: httpmq's routing (whole-path match on
//! the raw path, case-sensitive methods, anything else an empty 404) is its own.

pub mod reply;
pub mod request;

mod topic;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Router;

use self::request::{Command, RequestError};
use crate::native::extract;
use crate::AppState;

/// httpmq's routes, at the root.
pub(crate) fn router() -> Router<AppState> {
    Router::new().fallback(handle)
}

/// Parses, applies and renders one request.
async fn handle(State(app): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let command = match request::parse(&parts.method, parts.uri.path()) {
        Ok(command) => command,
        Err(RequestError::NoRoute) => return reply::empty(StatusCode::NOT_FOUND),
        Err(RequestError::BadName) => return reply::empty(StatusCode::BAD_REQUEST),
    };
    match command {
        Command::Subscribe(pair) => topic::subscribe(&app, &pair).await,
        Command::Unsubscribe(pair) => topic::unsubscribe(&app, &pair).await,
        Command::Fetch(pair) => topic::fetch(&app, &pair).await,
        Command::Peek(pair) => topic::peek(&app, &pair).await,
        Command::Publish(name) => {
            // A body over the limit is read and dropped before the 413, so that a client
            // still sending gets the reply instead of a reset; one declared longer than
            // `read_body` drains is refused before it is read.
            let limit = app.broker.config().max_message_bytes;
            let drained = limit.saturating_add(extract::MAX_DRAIN_BYTES);
            if extract::declared_length(&parts.headers)
                .is_some_and(|n| u64::try_from(drained).is_ok_and(|l| n > l))
            {
                return reply::empty(StatusCode::PAYLOAD_TOO_LARGE);
            }
            match extract::read_body(Body::new(body), limit).await {
                Ok(bytes) => topic::publish(&app, &name, bytes).await,
                Err(e) => reply::empty(e.status),
            }
        }
    }
}
