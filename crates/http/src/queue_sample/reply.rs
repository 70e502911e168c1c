//! The replies queue-sample's clients see: JSON as Python's `json.dumps` writes it
//! with `Content-type: application/json` exactly, the `{"http_status",
//! "error_message"}` envelope, the empty 200 of non-GET actions, and timestamps as
//! Python's `str()` of a UTC datetime.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::restmq::pyjson::{self, PyValue};

/// A 200 with a JSON body.
pub(crate) fn json(value: &PyValue) -> Response {
    json_with(StatusCode::OK, value)
}

/// A JSON body with `status`.
pub(crate) fn json_with(status: StatusCode, value: &PyValue) -> Response {
    // pyjson writes RestMQ's `<\/` rewrite, which Python's plain json.dumps does not
    // make; the raw writer never produces `<\/` itself (its backslashes always start
    // an escape), so undoing it is exact.
    let text = pyjson::dumps(value).replace("<\\/", "</");
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        text,
    )
        .into_response()
}

/// The 200 with no content type and an empty body of an action called without GET.
pub(crate) fn empty() -> Response {
    StatusCode::OK.into_response()
}

/// What went wrong, in the dialect's error envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QsError {
    /// The HTTP status, repeated in the body.
    pub status: StatusCode,
    /// The `error_message` text.
    pub message: String,
}

impl QsError {
    /// An error with `status` and `message`.
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> QsError {
        QsError {
            status,
            message: message.into(),
        }
    }

    /// A 422, the status of every parameter and topic error.
    pub(crate) fn unprocessable(message: impl Into<String>) -> QsError {
        QsError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    /// A storage or broker failure: 503 `Storage unavailable` (8.2.7).
    pub(crate) fn storage() -> QsError {
        QsError::new(StatusCode::SERVICE_UNAVAILABLE, "Storage unavailable")
    }
}

impl From<godwit_core::Error> for QsError {
    /// The one place a core error becomes a reply; routes handle the errors they
    /// expect (a missing topic or subscriber) before this.
    fn from(err: godwit_core::Error) -> QsError {
        use godwit_core::Error as E;
        match err {
            E::InvalidName(why) | E::InvalidArgument(why) => QsError::unprocessable(why),
            E::TooLarge { .. } | E::QueueFull(_) => QsError::unprocessable(err.to_string()),
            E::NotFound(what) => QsError::unprocessable(format!("{what} does not exist")),
            _ => {
                tracing::warn!(error = %err, "queue-sample: broker failure");
                QsError::storage()
            }
        }
    }
}

impl IntoResponse for QsError {
    fn into_response(self) -> Response {
        let body = PyValue::dict([
            ("http_status", PyValue::int(self.status.as_u16())),
            ("error_message", PyValue::str(self.message)),
        ]);
        json_with(self.status, &body)
    }
}

/// A timestamp as Python's `str()` of an aware UTC datetime:
/// `2019-12-18 22:11:44.123000+00:00`, the fraction left out when it is zero.
pub(crate) fn timestamp(ms: u64) -> String {
    let secs = ms / 1000;
    let micros = (ms % 1000) * 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let fraction = if micros == 0 {
        String::new()
    } else {
        format!(".{micros:06}")
    };
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}{fraction}+00:00")
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, restricted to days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_read_like_python() {
        assert_eq!(timestamp(0), "1970-01-01 00:00:00+00:00");
        assert_eq!(
            timestamp(1_576_707_104_123),
            "2019-12-18 22:11:44.123000+00:00"
        );
        assert_eq!(timestamp(951_782_400_000), "2000-02-29 00:00:00+00:00");
    }

    #[test]
    fn json_keeps_slashes_and_escapes_non_ascii() {
        let v = PyValue::dict([("m", PyValue::str("</a> é"))]);
        let text = pyjson::dumps(&v).replace("<\\/", "</");
        assert_eq!(text, "{\"m\": \"</a> \\u00e9\"}");
    }
}
