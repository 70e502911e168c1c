//! What answers when no handler does: unknown routes (404), wrong methods (405),
//! panics (500), and a safety net that turns any non-JSON error reply into our shape.

use axum::extract::Request;
use axum::http::header::{ALLOW, CONTENT_TYPE};
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Largest error body the safety net reads to reuse as a message.
const MAX_ERROR_TEXT: usize = 4096;

/// 404 for a path no route matches; a queue path with an empty name is a 400 instead,
/// since that is what the client got wrong.
pub async fn not_found(method: Method, uri: Uri) -> ApiError {
    let path = uri.path();
    if path == "/v1/queues/" || path.starts_with("/v1/queues//") {
        if let Err(err) = godwit_core::name::validate_queue("") {
            return err.into();
        }
    }
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {method} {path}"),
    )
}

/// Middleware: an error reply that is not JSON (one some layer made on its own) is
/// rewritten into `{"error": {...}}` with the same status and `Allow` header.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_ERROR_TEXT)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_owned();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    let mut out = ApiError::from_status(status, message).into_response();
    if let Some(allow) = parts.headers.get(ALLOW) {
        out.headers_mut().insert(ALLOW, allow.clone());
    }
    out
}
