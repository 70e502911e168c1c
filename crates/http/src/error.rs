//! The JSON error of the native API and the operations routes:
//! `{"error": {"code": "...", "message": "..."}}`, with their 405 and panic replies.
//! (Other dialects render their own error forms.)
//!
//! Every failure a client can see goes through [`ApiError`]: core errors (mapped by
//! variant in one place, [`ApiError::from`]), extractor rejections (malformed JSON, bad
//! query values, bodies over the limit) and routing misses (404, 405).

use std::any::Any;

use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

/// An error reply: an HTTP status, a stable machine-readable code and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status of the reply.
    pub status: StatusCode,
    /// A short stable code such as `invalid_argument` or `queue_full`.
    pub code: &'static str,
    /// A human-readable explanation.
    pub message: String,
}

impl ApiError {
    /// An error with an explicit status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// A 400 `invalid_argument` error: a parameter is out of range or malformed.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_argument", message)
    }

    /// A 400 `invalid_json` error: the request body is not the JSON we expect.
    pub fn invalid_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_json", message)
    }

    /// A 400 `invalid_query` error: the query string does not parse.
    pub fn invalid_query(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_query", message)
    }

    /// A 413 `too_large` error for a request body over `limit` bytes.
    pub fn body_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("request body is over the limit of {limit} bytes"),
        )
    }

    /// A 507 `disk_full` error: the store has no room for a push now; the reply carries
    /// `Retry-After: 1`, as space comes back when consumers catch up.
    pub fn disk_full(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INSUFFICIENT_STORAGE, "disk_full", message)
    }

    /// The error a client gets for a status produced outside our handlers (the safety
    /// net that rewrites non-JSON error replies); the code is derived from the status.
    pub fn from_status(status: StatusCode, message: impl Into<String>) -> Self {
        let code = match status {
            StatusCode::BAD_REQUEST => "bad_request",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
            StatusCode::PAYLOAD_TOO_LARGE => "too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::UNPROCESSABLE_ENTITY => "invalid_json",
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            StatusCode::INSUFFICIENT_STORAGE => "disk_full",
            s if s.is_server_error() => "internal",
            _ => "error",
        };
        Self::new(status, code, message)
    }
}

impl From<godwit_core::Error> for ApiError {
    fn from(err: godwit_core::Error) -> Self {
        use godwit_core::Error as E;
        let status = match &err {
            E::InvalidName(_) | E::InvalidArgument(_) => StatusCode::BAD_REQUEST,
            E::NotFound(_) => StatusCode::NOT_FOUND,
            E::QueueFull(_)
            | E::AlreadyExists(_)
            | E::NotALog(_)
            | E::IsACursor(_)
            | E::WrongType(_)
            | E::NotAnInteger(_)
            | E::Overflow(_) => StatusCode::CONFLICT,
            E::KvFull(_) => StatusCode::INSUFFICIENT_STORAGE,
            E::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            E::DiskFull(_) => return Self::disk_full(err.to_string()),
            E::Storage(_) | E::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        Self::new(status, err.code(), err.to_string())
    }
}

/// The status of a core error for the dialects whose error form is a status and a fixed
/// page or an empty body (RestMQ, httpmq): 400 for a name or request the broker cannot
/// hold, 404 for what is not there, 413 for a value over the limit, 503 for a store
/// that failed or is full, 500 otherwise.
pub(crate) fn page_status(e: &godwit_core::Error) -> StatusCode {
    use godwit_core::Error as E;
    match e {
        E::InvalidName(_) | E::InvalidArgument(_) | E::WrongType(_) | E::IsACursor(_) => {
            StatusCode::BAD_REQUEST
        }
        E::NotFound(_) => StatusCode::NOT_FOUND,
        E::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        E::Storage(_) | E::Unavailable(_) | E::DiskFull(_) | E::QueueFull(_) | E::KvFull(_) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The JSON body of every error reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A short stable code, e.g. `invalid_argument`, `not_found`, `queue_full`,
    /// `too_large`, `invalid_json`, `invalid_query`, `invalid_name`, `method_not_allowed`,
    /// `unavailable`, `storage_error`, `disk_full`, `not_a_log`, `wrong_type`,
    /// `not_an_integer`, `overflow`, `kv_full`, `exists`, `version_mismatch`.
    pub code: String,
    /// A human-readable explanation.
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = %self.status, code = self.code, "{}", self.message);
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::INSUFFICIENT_STORAGE {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// 405 for a known path with a method it does not serve (axum adds `Allow`).
pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not take {method}", uri.path()),
    )
}

/// The reply for a handler that panicked: the panic is logged, the server keeps serving.
pub fn panicked(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %detail, "request handler panicked");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error",
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use godwit_core::{Error, StorageError};

    fn status_and_code(err: Error) -> (StatusCode, &'static str) {
        let api = ApiError::from(err);
        (api.status, api.code)
    }

    #[test]
    fn core_errors_map_by_variant() {
        assert_eq!(
            status_and_code(Error::InvalidName("x".into())),
            (StatusCode::BAD_REQUEST, "invalid_name")
        );
        assert_eq!(
            status_and_code(Error::InvalidArgument("x".into())),
            (StatusCode::BAD_REQUEST, "invalid_argument")
        );
        assert_eq!(
            status_and_code(Error::NotFound("queue q".into())),
            (StatusCode::NOT_FOUND, "not_found")
        );
        assert_eq!(
            status_and_code(Error::QueueFull("q".into())),
            (StatusCode::CONFLICT, "queue_full")
        );
        assert_eq!(
            status_and_code(Error::TooLarge { size: 2, limit: 1 }),
            (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
        );
        assert_eq!(
            status_and_code(Error::Unavailable("stopping".into())),
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        );
        let io = std::io::Error::other("disk on fire");
        assert_eq!(
            status_and_code(Error::Storage(StorageError::io("append", io))),
            (StatusCode::SERVICE_UNAVAILABLE, "storage_error")
        );
    }

    #[test]
    fn disk_full_is_507_with_retry_after() {
        let resp = ApiError::disk_full("no space left").into_response();
        assert_eq!(resp.status(), StatusCode::INSUFFICIENT_STORAGE);
        assert_eq!(resp.headers()[RETRY_AFTER], "1");
        let resp = ApiError::invalid_argument("x").into_response();
        assert!(resp.headers().get(RETRY_AFTER).is_none());
    }

    #[tokio::test]
    async fn renders_the_error_shape() {
        let resp = ApiError::invalid_argument("priority must be 0..=9").into_response();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": {"code": "invalid_argument", "message": "priority must be 0..=9"}})
        );
    }
}
