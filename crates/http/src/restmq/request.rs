//! What every RestMQ route does first, in RestMQ's order: the ACL check, then the body
//! (bounded), the arguments, the queue name from the path and the JSONP callback. Each
//! failure is RestMQ's own error page.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;

use super::acl::{refusal, Category};
use super::args::{decode_path_name, Args};
use super::reply::{error_page, valid_callback};
use crate::AppState;

/// A RestMQ request past its checks.
pub(crate) struct Ctx {
    /// The queue name from the path tail (percent-decoded, plus as space); empty for
    /// routes without one.
    pub(crate) name: String,
    /// Query and form arguments.
    pub(crate) args: Args,
    /// A valid JSONP callback, if given.
    pub(crate) callback: Option<String>,
    /// The request's headers.
    pub(crate) headers: HeaderMap,
    /// The request's method.
    pub(crate) method: Method,
    /// The raw body (for `/queue`'s raw JSON form).
    pub(crate) body: bytes::Bytes,
}

/// The client's address: the TCP peer, or (when the server trusts a proxy) the
/// `X-Real-Ip` or first `X-Forwarded-For` address. Unknown (an in-process request)
/// is `0.0.0.0`, which no allow list of real addresses matches.
pub(crate) fn peer(app: &AppState, req: &Request) -> IpAddr {
    if app.restmq.trust_proxy {
        let forwarded = req
            .headers()
            .get("x-real-ip")
            .or_else(|| req.headers().get("x-forwarded-for"))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse().ok());
        if let Some(ip) = forwarded {
            return ip;
        }
    }
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

/// Runs the checks for a route whose queue name follows `prefix` in the path (`""`
/// for none). `category` is the ACL category, if the route has one.
pub(crate) async fn checked(
    app: &AppState,
    req: Request,
    category: Option<Category>,
    prefix: &str,
) -> Result<Ctx, Response> {
    if let Some(category) = category {
        let ip = peer(app, &req);
        let verdict = app.restmq.acl.check_request(category, ip, req.headers());
        if let Some(refused) = refusal(verdict) {
            return Err(refused);
        }
    }
    let (parts, body) = req.into_parts();
    // A form encodes a byte in up to three: a value at the message limit must fit
    // (spec 12.2 #21 refuses only values over it; the core checks the decoded size).
    let limit = app.opts.max_body_bytes.saturating_mul(3);
    let body = crate::native::extract::read_body(Body::new(body), limit)
        .await
        .map_err(|e| error_page(e.status))?;
    let content_type = parts
        .headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let args = Args::parse(&parts.method, parts.uri.query(), content_type, body.clone())
        .await
        .map_err(|_| error_page(StatusCode::BAD_REQUEST))?;
    let tail = parts.uri.path().strip_prefix(prefix).unwrap_or_default();
    let name = decode_path_name(tail).map_err(|_| error_page(StatusCode::BAD_REQUEST))?;
    let callback = match args.get("callback") {
        Some(cb) if !valid_callback(cb) => return Err(error_page(StatusCode::BAD_REQUEST)),
        cb => cb.map(str::to_string),
    };
    Ok(Ctx {
        name,
        args,
        callback,
        headers: parts.headers,
        method: parts.method,
        body,
    })
}

/// [`checked`] for a REST route: a `GET` is a consumer, any other method a producer
/// (RestMQ's `[rest:consumer]` and `[rest:producer]`).
pub(crate) async fn checked_rest(
    app: &AppState,
    req: Request,
    prefix: &str,
) -> Result<Ctx, Response> {
    let category = if req.method() == Method::GET {
        Category::RestConsumer
    } else {
        Category::RestProducer
    };
    checked(app, req, Some(category), prefix).await
}

/// The page for a core error, of the status [`crate::error::page_status`] gives.
pub(crate) fn core_error(e: &godwit_core::Error) -> Response {
    error_page(crate::error::page_status(e))
}

/// Takes the oldest message of `queue` for a hard GET or a JSON `take` (confirmed once
/// the reply is written): `None` when there is none, the queue unknown included. A
/// delivery returned holds one readable message (see
/// [`crate::native::delivered::take_readable`]).
pub(crate) async fn take_one(
    app: &AppState,
    queue: &str,
) -> godwit_core::Result<Option<godwit_core::Delivery>> {
    let opts = godwit_core::ReadOptions {
        max: 1,
        ..godwit_core::ReadOptions::default()
    };
    match crate::native::delivered::take_readable(&app.broker, queue, &opts).await {
        Ok(d) if d.is_empty() => Ok(None),
        Ok(d) => Ok(Some(d)),
        Err(godwit_core::Error::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `<queue>:<id>`, RestMQ's message key.
pub(crate) fn key(queue: &str, id: u64) -> String {
    format!("{queue}:{id}")
}

/// A message body as RestMQ text (bodies pushed by other faces may not be UTF-8).
pub(crate) fn text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).into_owned()
}
