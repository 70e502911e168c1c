//! The OpenAPI document of the native API, generated from the handlers' annotations and
//! served at `GET /v1/openapi.json`.

use std::sync::OnceLock;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use utoipa::OpenApi;

use crate::error::{ErrorBody, ErrorDetail};
use crate::render::{
    MessageJson, MessagesReply, OverflowJson, QueueJson, QueuesReply, RetentionJson, SettingsJson,
    StatsJson, SubscriptionJson, SubscriptionsReply,
};
use crate::routes::{consume, health, messages, queues, subscriptions};

/// The native API's OpenAPI description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Godwit native API",
        description = "Godwit's native HTTP/JSON API: push, take, lease, ack, peek, queues \
                       and subscriptions. Every error reply is \
                       `{\"error\": {\"code\": \"...\", \"message\": \"...\"}}`."
    ),
    paths(
        health::healthz,
        crate::metrics::scrape,
        document,
        messages::push,
        messages::batch,
        consume::take,
        consume::lease,
        consume::ack,
        consume::nack,
        consume::extend,
        consume::peek,
        queues::configure,
        queues::list,
        queues::show,
        queues::purge,
        queues::delete,
        subscriptions::subscribe,
        subscriptions::seek,
        subscriptions::unsubscribe,
        subscriptions::list,
    ),
    components(schemas(
        ErrorBody,
        ErrorDetail,
        MessageJson,
        MessagesReply,
        SettingsJson,
        RetentionJson,
        OverflowJson,
        StatsJson,
        QueueJson,
        QueuesReply,
        SubscriptionJson,
        SubscriptionsReply,
        health::HealthReply,
        messages::PushReply,
        messages::BatchItem,
        messages::BatchRequest,
        messages::BatchReply,
        consume::ReceiptsRequest,
        consume::ExtendRequest,
        consume::AckReply,
        consume::NackReply,
        consume::ExtendReply,
        queues::SettingsPatchDoc,
        queues::PurgeReply,
        subscriptions::StartJson,
        subscriptions::SubscribeRequest,
        subscriptions::SubscribeReply,
        subscriptions::SeekRequest,
        subscriptions::SeekReply,
    )),
    tags(
        (name = "messages", description = "Pushing messages"),
        (name = "consume", description = "Take, lease, ack, nack, extend and peek"),
        (name = "queues", description = "Queues and their settings"),
        (name = "subscriptions", description = "Named subscriptions for fan-out"),
        (name = "operations", description = "Health, metrics and this document"),
    )
)]
pub struct ApiDoc;

/// The document as JSON text, built once.
pub fn json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .unwrap_or_else(|err| format!("{{\"error\": \"{err}\"}}"))
    })
}

/// `GET /v1/openapi.json`.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "operations",
    responses((status = 200, description = "This OpenAPI document", content_type = "application/json", body = Object))
)]
pub async fn document() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], json())
}
