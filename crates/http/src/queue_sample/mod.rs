//! queue-sample's dialect (`../shared/specs/queue-sample.md`): topics, numbered
//! subscribers and cursor reads, with its JSON error envelope. Served at the root of
//! `--queue-sample-listen` and under `/queue-sample/` on the main listener (see
//! [`crate::Dialect`]).
//!
//! The original dispatches by the last path segment alone, so the router is one
//! fallback handler: `dispatch` resolves the route and checks the method first
//! (8.3.7), then reads the parameters (`params`), then runs the route (`routes`)
//! against the broker, rendering with `reply`. Where topics, subscribers and the
//! global numberings live in the core is `directory`'s business.
//!
//! - A topic is the log-retention, fan-out-only queue `queue-sample:<topic>`; its
//!   offsets are the queue's message ids (1, 2, 3… per incarnation, assigned
//!   atomically by the core, so concurrent publishes never collide).
//! - A subscriber is a cursor of that queue named by its decimal id.
//! - Subscriber and message ids come from two key/value counters, durable and never
//!   reused.

mod directory;
mod params;
mod reply;
mod routes;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};

use crate::restmq::pyjson::PyValue;
use crate::AppState;
use directory::Directory;
use params::Params;
use reply::QsError;
use routes::Call;

/// queue-sample's routes, at the root: every path goes to [`dispatch`].
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .fallback(dispatch)
        .layer(Extension(Arc::new(Directory::default())))
}

/// The routes, by their last path segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Topics,
    TopicMessages,
    TopicSubscribers,
    Topic,
    TopicDelete,
    Publish,
    Subscribe,
    Unsubscribe,
    GetMessage,
    AckMessage,
    TopicReset,
}

impl Route {
    /// The route of a segment; method names (`GET`, `PATCH`…) are unknown routes
    /// (8.2.3).
    fn parse(name: &str) -> Option<Route> {
        Some(match name {
            "topics" => Route::Topics,
            "topic_messages" => Route::TopicMessages,
            "topic_subscribers" => Route::TopicSubscribers,
            "topic" => Route::Topic,
            "topic_delete" => Route::TopicDelete,
            "publish" => Route::Publish,
            "subscribe" => Route::Subscribe,
            "unsubscribe" => Route::Unsubscribe,
            "get_message" => Route::GetMessage,
            "ack_message" => Route::AckMessage,
            "topic_reset" => Route::TopicReset,
            _ => return None,
        })
    }

    /// Whether `method` may call the route (3.1).
    fn allows(self, method: &Method) -> bool {
        use Route::*;
        match *method {
            Method::GET => true,
            Method::POST | Method::PUT => {
                matches!(
                    self,
                    Publish | AckMessage | TopicReset | Unsubscribe | Topic
                )
            }
            Method::DELETE => matches!(self, TopicDelete | Unsubscribe),
            _ => false,
        }
    }
}

/// The route name of a path: its last segment, with `;params` cut off as `urlparse`
/// did (8.3.9), not percent-decoded.
fn route_name(path: &str) -> &str {
    let last = path.rsplit('/').next().unwrap_or("");
    last.split(';').next().unwrap_or("")
}

/// Every request: method, route and method allowlist, then the parameters, then the
/// route. Exactly one response, whatever the input.
async fn dispatch(
    State(state): State<AppState>,
    Extension(directory): Extension<Arc<Directory>>,
    req: Request,
) -> Response {
    let method = req.method().clone();
    if method == Method::PATCH {
        return QsError::new(StatusCode::NOT_IMPLEMENTED, "Unsupported command").into_response();
    }
    if ![Method::GET, Method::POST, Method::PUT, Method::DELETE].contains(&method) {
        // HEAD gets the headers only (8.2.4); hyper sends no body on a HEAD reply.
        let text = format!("Unsupported method ('{method}')");
        return reply::json_with(StatusCode::NOT_IMPLEMENTED, &PyValue::str(text));
    }
    let name = route_name(req.uri().path()).to_string();
    let Some(route) = Route::parse(&name) else {
        return QsError::new(
            StatusCode::NOT_IMPLEMENTED,
            format!("Unsupported route ({name})"),
        )
        .into_response();
    };
    if !route.allows(&method) {
        return QsError::new(
            StatusCode::UNAUTHORIZED,
            format!("Unsupported route ({name}) for {method}"),
        )
        .into_response();
    }
    let params = match read_params(&state, req).await {
        Ok(params) => params,
        Err(e) => return e.into_response(),
    };
    let call = Call {
        broker: &state.broker,
        directory: &directory,
        method: &method,
        params,
    };
    let result = match route {
        Route::Topics => routes::topics(call).await,
        Route::TopicMessages => routes::topic_messages(call).await,
        Route::TopicSubscribers => routes::topic_subscribers(call).await,
        Route::Topic => routes::create(call).await,
        Route::TopicDelete => routes::delete(call).await,
        Route::Publish => routes::publish(call).await,
        Route::Subscribe => routes::subscribe(call).await,
        Route::Unsubscribe => routes::unsubscribe(call).await,
        Route::GetMessage => routes::get_message(call).await,
        Route::AckMessage => routes::ack_message(call).await,
        Route::TopicReset => routes::reset(call).await,
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// The parameters: the query string, or for POST the JSON object of the body (which
/// must come with exactly `Content-type: application/json`).
async fn read_params(state: &AppState, req: Request) -> Result<Params, QsError> {
    if req.method() != Method::POST {
        return Ok(Params::from_query(req.uri().query().unwrap_or("")));
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    if content_type.as_deref() != Some("application/json") {
        let got = content_type.unwrap_or_else(|| "None".to_string());
        return Err(QsError::new(
            StatusCode::BAD_REQUEST,
            format!("POST command only accepts \"application/json\" content type. (Got \"{got}\")"),
        ));
    }
    let limit = state.opts.max_body_bytes;
    let body = axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|_| {
            QsError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("POST body is larger than {limit} bytes"),
            )
        })?;
    Params::from_json(&body).map_err(|e| QsError::new(StatusCode::BAD_REQUEST, e.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_the_last_segment_without_params() {
        assert_eq!(route_name("/foo/bar/subscribe"), "subscribe");
        assert_eq!(route_name("/a/subscribe;x"), "subscribe");
        assert_eq!(route_name("/"), "");
        assert_eq!(route_name("/topics/"), "");
        assert_eq!(Route::parse("GET"), None);
        assert!(!Route::Subscribe.allows(&Method::POST));
        assert!(!Route::TopicDelete.allows(&Method::POST));
        assert!(Route::Unsubscribe.allows(&Method::DELETE));
    }
}
