//! The native route table, one module per resource family.

pub mod consume;
pub mod cursors;
pub mod kv;
pub mod messages;
pub mod queues;
pub mod stats;
pub mod streams;
pub mod subscriptions;
pub mod values;

use axum::Extension;

use super::extract::BodyLimit;
use super::openapi;
use crate::route::Route;
use crate::AppState;

/// Every native operation. This one table builds the router and is checked against the
/// OpenAPI document, path and method alike.
pub(crate) fn table(state: &AppState) -> Vec<Route> {
    let batch_limit = state.opts.max_batch_body_bytes;
    vec![
        Route::get("/v1/openapi.json", openapi::document),
        Route::get("/v1/queues", queues::list),
        Route::get("/v1/stats", queues::totals),
        Route::get("/v1/stats/events", stats::events),
        Route::put("/v1/queues/{queue}", queues::configure),
        Route::get("/v1/queues/{queue}", queues::show),
        Route::post("/v1/queues/{queue}", queues::create),
        Route::put("/v1/queues/{queue}/description", queues::describe),
        Route::delete("/v1/queues/{queue}", queues::delete),
        Route::post("/v1/queues/{queue}/purge", queues::purge),
        Route::post("/v1/queues/{queue}/messages", messages::push),
        Route::post("/v1/queues/{queue}/batch", messages::batch)
            .map(|h| h.layer(Extension(BodyLimit(batch_limit)))),
        Route::post("/v1/queues/{queue}/take", consume::take),
        Route::post("/v1/queues/{queue}/lease", consume::lease),
        Route::post("/v1/queues/{queue}/ack", consume::ack),
        Route::post("/v1/queues/{queue}/nack", consume::nack),
        Route::post("/v1/queues/{queue}/extend", consume::extend),
        Route::get("/v1/queues/{queue}/peek", consume::peek),
        Route::post("/v1/queues/{queue}/move", consume::move_messages),
        Route::get("/v1/queues/{queue}/range", consume::range),
        Route::post("/v1/queues/{queue}/soft-get", consume::soft_get),
        Route::delete("/v1/queues/{queue}/messages/{id}", consume::delete_message),
        Route::post("/v1/queues/{queue}/contains", values::contains),
        Route::post("/v1/queues/{queue}/remove", values::remove),
        Route::get("/v1/queues/{queue}/subscriptions", subscriptions::list),
        Route::put(
            "/v1/queues/{queue}/subscriptions/{name}",
            subscriptions::subscribe,
        ),
        Route::delete(
            "/v1/queues/{queue}/subscriptions/{name}",
            subscriptions::unsubscribe,
        ),
        Route::post(
            "/v1/queues/{queue}/subscriptions/{name}/seek",
            subscriptions::seek,
        ),
        Route::get("/v1/queues/{queue}/events", streams::events),
        Route::get("/v1/queues/{queue}/ws", streams::ws),
        Route::get("/v1/kv", kv::scan),
        Route::post("/v1/kv", kv::get_many),
        Route::delete("/v1/kv", kv::flush),
        Route::get("/v1/kv/{key}", kv::get),
        Route::put("/v1/kv/{key}", kv::put),
        Route::delete("/v1/kv/{key}", kv::delete),
        Route::post("/v1/kv/{key}/incr", kv::incr),
        Route::post("/v1/kv/{key}/append", kv::append),
        Route::get("/v1/kv/{key}/ttl", kv::get_ttl),
        Route::put("/v1/kv/{key}/ttl", kv::put_ttl),
        Route::post("/v1/queues/{queue}/reset", cursors::reset),
        Route::get("/v1/queues/{queue}/log", cursors::read_log),
    ]
}
