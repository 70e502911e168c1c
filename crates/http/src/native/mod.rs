//! The native `/v1` JSON API: push, take, lease, ack, nack, extend, peek, queues,
//! subscriptions, and its OpenAPI document at `GET /v1/openapi.json`.
//!
//! Each route family is one module under [`routes`] that parses (with the extractors in
//! [`extract`]), calls the [`godwit_core::Broker`], and renders (with [`render`]).
//! Every error a client sees is an [`crate::ApiError`] in the shape
//! `{"error": {"code": "...", "message": "..."}}`; [`fallback`] holds the 404 reply
//! and the safety net that rewrites any other error reply into that
//! shape, applied to the routes of this module only.
//!
//! Message headers travel in HTTP request headers named `x-godwit-header-<name>` on
//! `POST /v1/queues/{queue}/messages` (the name is lower-cased, as HTTP header names
//! are case-insensitive), and in the `headers` object of batch items and replies.

pub(crate) mod delivered;
pub mod extract;
pub mod fallback;
pub mod openapi;
pub mod render;
pub mod routes;

use axum::Router;

use crate::route;
use crate::AppState;

/// The native router: every route of [`routes::table`], with JSON 405 and panic
/// replies, the body limit, and the JSON error safety net.
pub(crate) fn router(state: &AppState) -> Router<AppState> {
    route::build(routes::table(state))
        .method_not_allowed_fallback(crate::error::method_not_allowed)
        .layer(fallback::JsonErrorsLayer)
}

#[cfg(test)]
mod tests;
