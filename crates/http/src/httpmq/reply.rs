//! httpmq's reply shapes: every reply is `text/html` (no charset), with an empty body
//! except subscribe's `Subscription succeeded`, a fetched message and the 500 text.
//! Core errors map onto them in [`core_error`], the one place that does.

use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use godwit_core::Delivery;

/// httpmq's content type, on every reply.
pub const HTML: &str = "text/html";

/// Subscribe's body.
pub const SUBSCRIBED: &str = "Subscription succeeded";

/// The body of an internal failure, as the original's framework wrote it.
pub const INTERNAL: &str = "500 Internal Server Error";

/// A reply of `status` with `body`, typed `text/html`.
pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Response {
    let mut response = Response::new(Body::from(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(HTML));
    response
}

/// A reply of `status` with an empty body.
pub fn empty(status: StatusCode) -> Response {
    text(status, Bytes::new())
}

/// A fetched message: 200 with its raw bytes, the take confirmed only once they were
/// handed to the connection (fix 6.2 #6).
pub fn message(body: Bytes, delivery: Delivery) -> Response {
    crate::native::delivered::confirming(body, HeaderValue::from_static(HTML), delivery)
}

/// The reply to a core error, of the status [`crate::error::page_status`] gives: empty
/// (400 for a name or request the broker cannot hold, 404 for a topic or user that is
/// not there, 413 for a body over the limit, 503 when storage is unavailable), and 500
/// with [`INTERNAL`] otherwise.
pub fn core_error(e: &godwit_core::Error) -> Response {
    match crate::error::page_status(e) {
        StatusCode::INTERNAL_SERVER_ERROR => {
            tracing::warn!(error = %e, "httpmq request failed");
            text(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL)
        }
        status => empty(status),
    }
}
