//! RestMQ's reply shapes, byte for byte: the error pages (spec 2.2), the 204 without
//! a body (12.2 #1), the CRLF/JSONP writer (2.3) with Godwit's callback-name rule
//! (12.2 #20), and bodies with their own rules. What goes *into* a body is decided by
//! the routes; the JSON text comes from [`super::pyjson`].

use axum::body::Body;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;

/// RestMQ's default content type, used for its own JSON bodies too.
pub const HTML: &str = "text/html; charset=UTF-8";
/// The content type of `/queue`, `/stats/` and `/control/` GET replies (no charset).
pub const JSON: &str = "application/json";

/// The framework's error page: `<html><title>N: Reason</title><body>N: Reason</body></html>`
/// with the HTML type and a `Content-Length`, no trailing newline.
pub fn error_page(status: StatusCode) -> Response {
    let reason = match status.as_u16() {
        // The phrase RFC 2616 used, which cyclone printed; `http` has RFC 9110's.
        413 => "Request Entity Too Large",
        _ => status.canonical_reason().unwrap_or("Unknown"),
    };
    let line = format!("{}: {reason}", status.as_u16());
    let page = format!("<html><title>{line}</title><body>{line}</body></html>");
    let length = page.len();
    let mut response = text_response(status, HTML, page);
    response
        .headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(length));
    response
}

/// An empty queue's 204: no body and no `Content-Length` (Godwit fix 12.2 #1).
pub fn no_content() -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// Whether `name` may be used as a JSONP callback: ASCII letters, digits, `_`, `$` and
/// `.` only, not empty (Godwit fix 12.2 #20; anything else is a 400 page).
pub fn valid_callback(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'$' | b'.'))
}

/// The RestMQ writer: `text⏎`, or with a callback `cb(text);⏎`, HTML type, 200.
/// The caller checks the callback with [`valid_callback`] first.
pub fn write(text: &str, callback: Option<&str>) -> Response {
    text_response(StatusCode::OK, HTML, written_text(text, callback))
}

/// The writer's bytes without the response: `text⏎` or `cb(text);⏎` (what a reply
/// confirmed after writing, and each Comet line, carry).
pub fn written_text(text: &str, callback: Option<&str>) -> String {
    match callback {
        Some(cb) => format!("{cb}({text});\r\n"),
        None => format!("{text}\r\n"),
    }
}

/// `cb(text)` without `;` or CRLF (the `/stats/` JSONP form), or `text` unchanged
/// without a callback; the result goes to [`raw`].
pub fn wrap_callback(text: &str, callback: Option<&str>) -> String {
    match callback {
        Some(cb) => format!("{cb}({text})"),
        None => text.to_owned(),
    }
}

/// A 200 whose body is `body` exactly, with content type `content_type`: the replies
/// that bypass the writer (`/queue`, `/stats/`, …).
pub fn raw(content_type: &'static str, body: String) -> Response {
    text_response(StatusCode::OK, content_type, body)
}

fn text_response(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn parts(response: Response) -> (StatusCode, Vec<(String, String)>, Vec<u8>) {
        let status = response.status();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("?").to_owned()))
            .collect();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec();
        (status, headers, body)
    }

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    #[tokio::test]
    async fn error_pages_are_exact() {
        let cases = [
            (400, "400: Bad Request"),
            (401, "401: Unauthorized"),
            (404, "404: Not Found"),
            (405, "405: Method Not Allowed"),
            (413, "413: Request Entity Too Large"),
            (415, "415: Unsupported Media Type"),
            (500, "500: Internal Server Error"),
            (503, "503: Service Unavailable"),
        ];
        for (code, line) in cases {
            let status = StatusCode::from_u16(code).expect("status");
            let (got_status, headers, body) = parts(error_page(status)).await;
            let want = format!("<html><title>{line}</title><body>{line}</body></html>");
            assert_eq!(got_status, status);
            assert_eq!(String::from_utf8_lossy(&body), want);
            assert_eq!(header(&headers, "content-type"), Some(HTML));
            let length = want.len().to_string();
            assert_eq!(header(&headers, "content-length"), Some(length.as_str()));
        }
    }

    #[tokio::test]
    async fn the_400_page_of_the_wire_samples() {
        let (_, headers, body) = parts(error_page(StatusCode::BAD_REQUEST)).await;
        assert_eq!(
            body,
            b"<html><title>400: Bad Request</title><body>400: Bad Request</body></html>"
        );
        assert_eq!(header(&headers, "content-length"), Some("73"));
    }

    #[tokio::test]
    async fn no_content_has_no_body_and_no_length() {
        let (status, headers, body) = parts(no_content()).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert!(body.is_empty());
        assert_eq!(header(&headers, "content-length"), None);
        assert_eq!(header(&headers, "content-type"), None);
    }

    #[tokio::test]
    async fn the_writer_adds_crlf_and_jsonp() {
        let (status, headers, body) = parts(write("test:1", None)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, b"test:1\r\n");
        assert_eq!(header(&headers, "content-type"), Some(HTML));
        let (_, _, body) = parts(write("test:7", Some("cb"))).await;
        assert_eq!(body, b"cb(test:7);\r\n");
        let (_, _, body) = parts(write(
            r#"{"count": 0, "key": "pq:1", "value": 1}"#,
            Some("cb"),
        ))
        .await;
        assert_eq!(
            body,
            b"cb({\"count\": 0, \"key\": \"pq:1\", \"value\": 1});\r\n"
        );
        let (_, _, body) = parts(write("null", Some("cb"))).await;
        assert_eq!(body, b"cb(null);\r\n");
    }

    #[tokio::test]
    async fn raw_bodies_are_exact() {
        let text = r#"{"queue": "dq", "redis": "<Godwit store: embedded>", "len": 1}"#;
        let (status, headers, body) = parts(raw(JSON, text.to_owned())).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, text.as_bytes());
        assert_eq!(header(&headers, "content-type"), Some("application/json"));
        let (_, _, body) = parts(raw(JSON, wrap_callback(text, Some("cb")))).await;
        assert_eq!(body, format!("cb({text})").as_bytes());
        assert_eq!(wrap_callback(text, None), text);
        let (_, headers, body) =
            parts(raw(HTML, r#"{"error": "null resultset"}"#.to_owned())).await;
        assert_eq!(body, br#"{"error": "null resultset"}"#);
        assert_eq!(header(&headers, "content-type"), Some(HTML));
    }

    #[test]
    fn callback_names() {
        for ok in ["cb", "jQuery_123", "$", "a.b.c", "_x$9", "A"] {
            assert!(valid_callback(ok), "{ok:?}");
        }
        for bad in [
            "", "a b", "cb()", "a;b", "<script>", "é", "a-b", "x\n", "a/b", "a[0]",
        ] {
            assert!(!valid_callback(bad), "{bad:?}");
        }
    }
}
