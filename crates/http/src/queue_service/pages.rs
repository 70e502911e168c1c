//! queue_service's error replies: Werkzeug 0.14's HTML pages, byte for byte (spec 2.1,
//! 2.3, 6.2 #3 and #6), and the one mapping from core errors onto them.

use axum::http::header::{ALLOW, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The `Allow` header of `/messages` (Flask's order).
pub const ALLOW_MESSAGES: &str = "HEAD, POST, OPTIONS, GET";

/// Werkzeug's page for `status`: its title and description, in HTML 3.2.
pub fn page(status: StatusCode) -> String {
    let (title, description) = match status.as_u16() {
        400 => (
            "Bad Request",
            "The browser (or proxy) sent a request that this server could not understand.",
        ),
        404 => (
            "Not Found",
            "The requested URL was not found on the server.  If you entered the URL manually please check your spelling and try again.",
        ),
        405 => (
            "Method Not Allowed",
            "The method is not allowed for the requested URL.",
        ),
        413 => (
            "Request Entity Too Large",
            "The data value transmitted exceeds the capacity limit.",
        ),
        503 => (
            "Service Unavailable",
            "The server is temporarily unable to service your request due to maintenance downtime or capacity problems.  Please try again later.",
        ),
        _ => (
            "Internal Server Error",
            "The server encountered an internal error and was unable to complete your request.  Either the server is overloaded or there is an error in the application.",
        ),
    };
    let code = if matches!(status.as_u16(), 400 | 404 | 405 | 413 | 503) {
        status.as_u16()
    } else {
        500
    };
    format!(
        "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 3.2 Final//EN\">\n<title>{code} {title}</title>\n<h1>{title}</h1>\n<p>{description}</p>\n"
    )
}

/// The reply of Werkzeug's error `status`: its page as `text/html`, with `Allow` on a
/// 405 and `Retry-After: 1` on a 503.
pub fn error(status: StatusCode) -> Response {
    let status = match status.as_u16() {
        400 | 404 | 405 | 413 | 503 => status,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let mut response = (
        status,
        [(CONTENT_TYPE, HeaderValue::from_static("text/html"))],
        page(status),
    )
        .into_response();
    if status == StatusCode::METHOD_NOT_ALLOWED {
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static(ALLOW_MESSAGES));
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// The page for a core error: 400 for a bad argument, 413 for a value over the limit,
/// 503 (try again) for a full queue or a store that cannot take writes, 500 otherwise.
pub fn core_error(e: &godwit_core::Error) -> Response {
    use godwit_core::Error as E;
    error(match e {
        E::InvalidName(_) | E::InvalidArgument(_) => StatusCode::BAD_REQUEST,
        E::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        E::QueueFull(_) | E::Storage(_) | E::Unavailable(_) | E::DiskFull(_) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    })
}

/// queue_service's 404 page, for every path but `/messages`.
pub async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_have_werkzeugs_exact_lengths() {
        for (status, len) in [(400, 192), (404, 233), (405, 178), (413, 196), (503, 263)] {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(page(status).len(), len, "{status}");
        }
        assert!(page(StatusCode::BAD_REQUEST).ends_with(
            "<p>The browser (or proxy) sent a request that this server could not understand.</p>\n"
        ));
    }
}
