//! What answers when no handler does: unknown routes (404), wrong methods (405),
//! panics (500), and a safety net that turns any non-JSON error reply into our shape.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::header::{ALLOW, CONTENT_TYPE};
use axum::http::{Method, StatusCode, Uri};
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

/// The safety net: a handler that panics is answered `500 internal` (the panic is logged
/// and the server keeps serving), and an error reply that is not JSON (one some layer
/// made on its own) is rewritten into `{"error": {...}}` with the same status and
/// `Allow` header. A
/// hand-written layer: a reply that needs no rewrite (nearly all) costs a status check,
/// with no boxed future and no clone of the inner service.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonErrorsLayer;

impl<S> tower::Layer<S> for JsonErrorsLayer {
    type Service = JsonErrors<S>;

    fn layer(&self, inner: S) -> Self::Service {
        JsonErrors { inner }
    }
}

/// The service of [`JsonErrorsLayer`].
#[derive(Debug, Clone)]
pub struct JsonErrors<S> {
    inner: S,
}

impl<S> tower::Service<Request> for JsonErrors<S>
where
    S: tower::Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = JsonErrorsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        match std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(req))) {
            Ok(inner) => JsonErrorsFuture {
                inner: Some(inner),
                rewriting: None,
            },
            Err(panic) => JsonErrorsFuture {
                inner: None,
                rewriting: Some(Box::pin(std::future::ready(crate::error::panicked(panic)))),
            },
        }
    }
}

type Rewrite = Pin<Box<dyn Future<Output = Response> + Send>>;

pin_project_lite::pin_project! {
    /// A reply on its way out, rewritten when it is a non-JSON error.
    pub struct JsonErrorsFuture<F> {
        #[pin]
        inner: Option<F>,
        rewriting: Option<Rewrite>,
    }
}

impl<F, E> Future for JsonErrorsFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            if let Some(rewrite) = this.rewriting.as_mut() {
                return rewrite.as_mut().poll(cx).map(Ok);
            }
            let Some(inner) = this.inner.as_mut().as_pin_mut() else {
                return Poll::Pending;
            };
            // A panicking handler is answered with a 500 and the server keeps serving
            // (in this layer rather than tower-http's, which boxes every response body).
            let polled = std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx)));
            let response = match polled {
                Err(panic) => {
                    this.inner.set(None);
                    return Poll::Ready(Ok(crate::error::panicked(panic)));
                }
                Ok(Poll::Pending) => return Poll::Pending,
                Ok(Poll::Ready(Ok(response))) => response,
                Ok(Poll::Ready(Err(e))) => return Poll::Ready(Err(e)),
            };
            if !needs_rewrite(&response) {
                return Poll::Ready(Ok(response));
            }
            *this.rewriting = Some(Box::pin(rewrite(response)));
        }
    }
}

/// Whether `response` is an error reply that is not JSON.
fn needs_rewrite(response: &Response) -> bool {
    let status = response.status();
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    (status.is_client_error() || status.is_server_error()) && !is_json
}

/// The JSON form of a non-JSON error reply, its text kept as the message.
async fn rewrite(response: Response) -> Response {
    let status = response.status();
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

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt as _;

    use super::*;

    async fn call(router: &Router, path: &str) -> (StatusCode, serde_json::Value) {
        let req = Request::get(path).body(Body::empty()).unwrap();
        let resp = router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    #[tokio::test]
    async fn a_panicking_handler_gets_a_json_500_and_the_router_keeps_serving() {
        async fn at_once() -> &'static str {
            panic!("boom at once")
        }
        async fn after_a_wait() -> &'static str {
            tokio::task::yield_now().await;
            panic!("boom later")
        }
        let router = Router::new()
            .route("/now", get(at_once))
            .route("/later", get(after_a_wait))
            .route(
                "/fine",
                get(|| async { axum::Json(serde_json::json!({"ok": true})) }),
            )
            .layer(JsonErrorsLayer);
        for path in ["/now", "/later"] {
            let (status, body) = call(&router, path).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
            assert_eq!(body["error"]["code"], "internal", "{path}: {body}");
        }
        assert_eq!(call(&router, "/fine").await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn a_plain_text_error_is_rewritten_as_json() {
        let router = Router::new()
            .route(
                "/teapot",
                get(|| async { (StatusCode::IM_A_TEAPOT, "short and stout") }),
            )
            .layer(JsonErrorsLayer);
        let (status, body) = call(&router, "/teapot").await;
        assert_eq!(status, StatusCode::IM_A_TEAPOT);
        assert_eq!(body["error"]["message"], "short and stout", "{body}");
    }
}
