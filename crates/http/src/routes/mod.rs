//! The route table, one module per resource family, and the layers around it.

pub mod consume;
pub mod health;
pub mod messages;
pub mod queues;
pub mod subscriptions;

use axum::routing::{get, post, put};
use axum::{Extension, Router};
use tower_http::catch_panic::CatchPanicLayer;

use crate::extract::BodyLimit;
use crate::{fallback, metrics, openapi, AppState};

/// Builds the whole router over `state`.
pub(crate) fn router(state: AppState) -> Router {
    let body_limit = state.opts.max_body_bytes;
    let batch_limit = state.opts.max_batch_body_bytes;
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(metrics::scrape))
        .route("/v1/openapi.json", get(openapi::document))
        .route("/v1/queues", get(queues::list))
        .route(
            "/v1/queues/{queue}",
            put(queues::configure)
                .get(queues::show)
                .delete(queues::delete),
        )
        .route("/v1/queues/{queue}/purge", post(queues::purge))
        .route("/v1/queues/{queue}/messages", post(messages::push))
        .route(
            "/v1/queues/{queue}/batch",
            post(messages::batch).layer(Extension(BodyLimit(batch_limit))),
        )
        .route("/v1/queues/{queue}/take", post(consume::take))
        .route("/v1/queues/{queue}/lease", post(consume::lease))
        .route("/v1/queues/{queue}/ack", post(consume::ack))
        .route("/v1/queues/{queue}/nack", post(consume::nack))
        .route("/v1/queues/{queue}/extend", post(consume::extend))
        .route("/v1/queues/{queue}/peek", get(consume::peek))
        .route("/v1/queues/{queue}/subscriptions", get(subscriptions::list))
        .route(
            "/v1/queues/{queue}/subscriptions/{name}",
            put(subscriptions::subscribe).delete(subscriptions::unsubscribe),
        )
        .route(
            "/v1/queues/{queue}/subscriptions/{name}/seek",
            post(subscriptions::seek),
        )
        .fallback(fallback::not_found)
        .method_not_allowed_fallback(fallback::method_not_allowed)
        .layer(Extension(BodyLimit(body_limit)))
        .layer(CatchPanicLayer::custom(fallback::panicked))
        .layer(axum::middleware::from_fn(metrics::track_requests))
        .layer(axum::middleware::from_fn(fallback::json_errors))
        .with_state(state)
}

#[cfg(test)]
mod tests;
