//! `/q/<queue>`: `POST` adds (`value` or `msg`, `ttl`), `GET` pops the oldest message
//! (the hard get), `DELETE` purges; `GET /q/` lists the queues. Also the adds and pops
//! that `/` shares.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use godwit_core::{NewMessage, MAX_DURATION_MS};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::pyjson::{convert, dumps, PyValue};
use super::reply::{error_page, no_content, write, written_text, HTML};
use super::request::{checked_rest, core_error, key, take_one, text, Ctx};
use crate::AppState;

/// `/q/` and `/q/<queue>`, every method.
pub(crate) async fn route(State(app): State<AppState>, req: Request) -> Response {
    let ctx = match checked_rest(&app, req, "/q/").await {
        Ok(ctx) => ctx,
        Err(refused) => return refused,
    };
    match ctx.method.clone() {
        Method::GET if ctx.name.is_empty() => list(&app),
        Method::GET => pop(&app, &ctx.name, ctx.callback.as_deref(), no_content).await,
        Method::POST => {
            let value = match (ctx.args.get("msg"), ctx.args.get("value")) {
                (Some(msg), _) if !msg.is_empty() => msg,
                (_, Some(value)) => value,
                (Some(msg), None) => msg,
                (None, None) => return error_page(StatusCode::BAD_REQUEST),
            };
            add(&app, &ctx, &ctx.name, value).await
        }
        Method::DELETE => purge(&app, &ctx).await,
        _ => error_page(StatusCode::METHOD_NOT_ALLOWED),
    }
}

/// Adds `value` to `queue` with the request's `ttl` (seconds; ≤ 0 expires at once, not
/// an integer is the 400 page and stores nothing) and answers `<queue>:<id>⏎`.
pub(crate) async fn add(app: &AppState, ctx: &Ctx, queue: &str, value: &str) -> Response {
    let ttl = match ctx.args.get("ttl") {
        None => None,
        Some(ttl) => match parse_ttl(ttl) {
            Some(ttl) => Some(ttl),
            None => return error_page(StatusCode::BAD_REQUEST),
        },
    };
    let mut message = NewMessage::new(value.to_string());
    message.ttl = ttl;
    match app.broker.push(queue, vec![message]).await {
        Ok(out) => write(&key(queue, out[0].id), ctx.callback.as_deref()),
        Err(e) => core_error(&e),
    }
}

/// A `ttl` argument: a Python `int()` (the grammar [`convert`] knows), in seconds; ≤ 0
/// is zero (expired at once); above the 100-year bound is refused by the core.
fn parse_ttl(ttl: &str) -> Option<Duration> {
    let PyValue::Int(digits) = convert(ttl) else {
        return None;
    };
    if digits.starts_with('-') {
        return Some(Duration::ZERO);
    }
    // Past the bound is still a number: saturate, and let the core refuse it.
    let secs = digits.parse::<u64>().unwrap_or(u64::MAX);
    let ms = secs
        .saturating_mul(1000)
        .min(MAX_DURATION_MS.saturating_add(1));
    Some(Duration::from_millis(ms))
}

/// Pops the oldest message of `queue` and answers
/// `{"count": 0, "key": "<queue>:<id>", "value": <value>}⏎` (numeric-looking values as
/// numbers), confirmed once written; `empty()` when there is none.
pub(crate) async fn pop(
    app: &AppState,
    queue: &str,
    callback: Option<&str>,
    empty: fn() -> Response,
) -> Response {
    let delivery = match take_one(app, queue).await {
        Ok(Some(d)) => d,
        Ok(None) => return empty(),
        Err(e) => return core_error(&e),
    };
    let m = &delivery.messages()[0];
    let reply = PyValue::Dict(vec![
        ("count".into(), PyValue::Int("0".into())),
        ("key".into(), PyValue::Str(key(queue, m.id))),
        ("value".into(), convert(&text(&m.body))),
    ]);
    let bytes = written_text(&dumps(&reply), callback);
    crate::native::delivered::confirming(bytes.into(), HeaderValue::from_static(HTML), delivery)
}

/// `DELETE /q/<queue>`: ends the queue's live streams (the core's purge event) and
/// answers `{"queue": "<queue>", "status": 1}⏎`, `status` 0 when it held nothing.
async fn purge(app: &AppState, ctx: &Ctx) -> Response {
    let status = match app.broker.purge(&ctx.name).await {
        Ok(n) => u64::from(n > 0),
        Err(godwit_core::Error::NotFound(_)) => 0,
        Err(e) => return core_error(&e),
    };
    let reply = PyValue::Dict(vec![
        ("queue".into(), PyValue::Str(ctx.name.clone())),
        ("status".into(), PyValue::Int(status.to_string())),
    ]);
    write(&dumps(&reply), ctx.callback.as_deref())
}

/// `GET /q/`: an HTML list of every queue, each a link to its `/q/` route.
fn list(app: &AppState) -> Response {
    let mut page =
        String::from("<html><head><title>avaliable queue for REST</title></head><body><ul>");
    for q in app.broker.list() {
        let href = percent_encode_path(&q.name);
        let name = escape_html(&q.name);
        page.push_str(&format!("<li><a href=\"/q/{href}\">/q/{name}</a></li>"));
    }
    page.push_str("</ul></body></html>");
    ([(axum::http::header::CONTENT_TYPE, HTML)], page).into_response()
}

/// Text made safe inside HTML (escaped once: RestMQ escaped twice).
pub(crate) fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// What a queue name keeps unencoded in a link: path characters that RestMQ's path
/// decoding gives back as they are (`+` is not one: it decodes as a space).
const PATH_SAFE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b':')
    .remove(b'@')
    .remove(b'!')
    .remove(b'$')
    .remove(b'&')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b',')
    .remove(b';')
    .remove(b'=')
    .remove(b'/');

/// A queue name as a path segment that RestMQ's path decoding gives back.
fn percent_encode_path(name: &str) -> String {
    utf8_percent_encode(name, PATH_SAFE).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_is_a_python_int_in_seconds_and_at_most_zero_expires_at_once() {
        assert_eq!(parse_ttl("10"), Some(Duration::from_secs(10)));
        assert_eq!(parse_ttl("+3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_ttl("0"), Some(Duration::ZERO));
        assert_eq!(parse_ttl("-5"), Some(Duration::ZERO));
        assert_eq!(parse_ttl(""), None);
        assert_eq!(parse_ttl("1.5"), None);
        assert_eq!(parse_ttl("abc"), None);
        assert_eq!(parse_ttl("-"), None);
        assert_eq!(parse_ttl("- 5"), Some(Duration::ZERO));
        assert_eq!(parse_ttl("1e5"), None);
        assert_eq!(
            parse_ttl("99999999999999999999999"),
            Some(Duration::from_millis(MAX_DURATION_MS + 1))
        );
    }

    #[test]
    fn html_is_escaped_once() {
        assert_eq!(escape_html("a&b<c>"), "a&amp;b&lt;c&gt;");
        assert_eq!(percent_encode_path("a b+c"), "a%20b%2Bc");
        assert_eq!(percent_encode_path("x/y:1;é"), "x/y:1;%C3%A9");
    }
}
