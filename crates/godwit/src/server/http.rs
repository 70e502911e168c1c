//! The HTTP face on the server runtime: hyper's HTTP/1 connection (with upgrades, for
//! WebSockets later) serving the axum router, with Godwit's timeouts around it.
//!
//! - header and idle timeouts: a watchdog per connection, fed by [`Watched`] and the
//!   requests in flight (see [`super::activity`] for why not hyper's own);
//! - body timeout: the request body is a [`StallTimeout`]; a stalled body is answered
//!   with a 408 `request_timeout` and the connection is closed;
//! - shutdown: `graceful_shutdown` on the connection, which closes it after the
//!   response in flight; one with nothing in flight closes after [`DRAIN_GRACE`];
//! - over the connection limit: a fixed 503 `too_many_connections` reply, then close.
//!
//! Routes, extractors and error rendering stay in `godwit-http`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::response::IntoResponse as _;
use axum::Router;
use godwit_http::ApiError;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tower::ServiceExt as _;

use super::activity::{SharedActivity, StallLimits, Watchdog, Watched};
use super::body::{Counted, StallTimeout};
use super::{ConnCtx, Face};

/// While shutting down, a connection with no request in flight is closed once it has
/// written nothing for this long (the tail of its last response had time to go out).
const DRAIN_GRACE: Duration = Duration::from_millis(200);

/// The HTTP-specific timeouts (the idle timeout is the runtime's).
#[derive(Debug, Clone, Copy)]
pub struct HttpTimeouts {
    /// Longest time to receive a request's head.
    pub header: Duration,
    /// Longest pause while reading a request body.
    pub body: Duration,
}

/// Serves an axum router over HTTP/1.1.
pub struct HttpFace {
    router: Router,
    timeouts: HttpTimeouts,
    http1: http1::Builder,
    refusal: Vec<u8>,
}

impl HttpFace {
    /// The face for `router`.
    pub fn new(router: Router, timeouts: HttpTimeouts) -> Self {
        let mut http1 = http1::Builder::new();
        // The watchdog in `serve` keeps the header and idle timeouts instead.
        http1.header_read_timeout(None).keep_alive(true);
        Self {
            router,
            timeouts,
            http1,
            refusal: refusal_reply(),
        }
    }
}

impl Face for HttpFace {
    fn name(&self) -> &'static str {
        "http"
    }

    async fn serve(&self, stream: TcpStream, mut conn: ConnCtx) {
        let _ = stream.set_nodelay(true);
        let activity = SharedActivity::new();
        let limits = StallLimits {
            header: self.timeouts.header,
            idle: conn.idle_timeout,
        };
        let service = HttpService {
            peer: conn.peer,
            router: self.router.clone(),
            activity: activity.clone(),
            body_timeout: self.timeouts.body,
        };
        let io = TokioIo::new(Watched::new(stream, activity.clone()));
        let connection = self.http1.serve_connection(io, service).with_upgrades();
        tokio::pin!(connection);
        let mut watchdog = Watchdog::new(activity, limits);
        loop {
            // `biased`: the watchdog is polled after the connection in the same wake-up,
            // so it sees every change the connection's progress made (see `Watchdog`).
            tokio::select! {
                biased;
                done = connection.as_mut() => {
                    if let Err(err) = done {
                        tracing::debug!(peer = %conn.peer, %err, "HTTP connection failed");
                    }
                    return;
                }
                _ = conn.shutdown.recv(), if !watchdog.draining() => {
                    watchdog.drain(Instant::now(), DRAIN_GRACE);
                    connection.as_mut().graceful_shutdown();
                }
                () = &mut watchdog => {
                    // Nothing in flight: dropping the connection loses no reply.
                    tracing::debug!(peer = %conn.peer, "closing a stalled or idle HTTP connection");
                    return;
                }
            }
        }
    }

    async fn refuse(&self, mut stream: TcpStream) {
        if stream.write_all(&self.refusal).await.is_err() {
            return;
        }
        let _ = stream.shutdown().await;
        // Read what the client sent until it closes: closing a socket with unread input
        // sends a reset, which can destroy the reply before the client has read it. The
        // runtime bounds how long this may take.
        let mut sink = [0u8; 1024];
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    }
}

/// The bytes of the reply to a connection over the limit.
fn refusal_reply() -> Vec<u8> {
    let body = r#"{"error":{"code":"too_many_connections","message":"the server is at its connection limit; retry later"}}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\n\
         content-type: application/json\r\n\
         content-length: {}\r\n\
         retry-after: 1\r\n\
         connection: close\r\n\
         \r\n\
         {body}",
        body.len()
    )
    .into_bytes()
}

/// The reply to a request whose body stalled; the connection closes after it.
fn body_timed_out(timeout: Duration) -> axum::response::Response {
    let message = format!(
        "the request body stalled: no data for {} ms",
        timeout.as_millis()
    );
    let mut response =
        ApiError::new(StatusCode::REQUEST_TIMEOUT, "request_timeout", message).into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// One connection's hyper service: the router, with the body timeout and the
/// in-flight mark around each request.
#[derive(Clone)]
struct HttpService {
    /// The client's address, given to handlers as axum's `ConnectInfo`.
    peer: std::net::SocketAddr,
    router: Router,
    activity: Arc<SharedActivity>,
    body_timeout: Duration,
}

type Reply = Response<Counted<axum::body::Body>>;

impl hyper::service::Service<Request<Incoming>> for HttpService {
    type Response = Reply;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Reply, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let in_flight = self.activity.request();
        let timeout = self.body_timeout;
        let (stalled_tx, mut stalled) = oneshot::channel();
        let mut request = request.map(|body| StallTimeout::new(body, timeout, stalled_tx));
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(self.peer));
        let handled = self.router.clone().oneshot(request);
        Box::pin(async move {
            // A stalled body wins even if the handler is still busy or made its own
            // error of it: the client gets one clear answer.
            let response = tokio::select! {
                biased;
                Ok(()) = &mut stalled => body_timed_out(timeout),
                response = handled => match (stalled.try_recv(), response) {
                    (Ok(()), _) => body_timed_out(timeout),
                    (Err(_), Ok(response)) => response,
                    (Err(_), Err(never)) => match never {},
                },
            };
            Ok(response.map(|body| Counted::new(body, in_flight)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_complete_503_with_a_json_error() {
        let reply = String::from_utf8(refusal_reply()).unwrap();
        let (head, body) = reply.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\nretry-after: 1"), "{head}");
        assert!(head.contains("\r\nconnection: close"), "{head}");
        assert!(
            head.contains(&format!("\r\ncontent-length: {}", body.len())),
            "{head}"
        );
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"]["code"], "too_many_connections");
    }
}
