//! The OpenAPI document of the native API (and the operations routes), generated from
//! the handlers' annotations, completed with the limits the server enforces, and served
//! at `GET /v1/openapi.json`.
//!
//! The annotations list every status a route can answer. The bounds of parameters and
//! fields come from `limits`, filled in at startup from the code's constants and the
//! broker's configuration (`max_batch`, `max_wait`), so the document states the limits
//! of the server that serves it.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use godwit_core::name::MAX_NAME_BYTES;
use godwit_core::{BrokerConfig, MAX_PRIORITY};
use serde_json::{json, Map, Value};
use utoipa::OpenApi;

use super::render::{
    MessageJson, MessagesReply, OverflowJson, QueueJson, QueuesReply, RetentionJson, SettingsJson,
    StatsJson, SubscriptionJson, SubscriptionsReply, TotalsJson,
};
use super::routes::{
    consume, cursors, kv, messages, queues, stats, streams, subscriptions, values,
};
use crate::error::{ErrorBody, ErrorDetail};
use crate::{ops, AppState, MAX_DURATION_MS};

/// The native API's OpenAPI description, as annotated (without the configured limits;
/// see [`json()`]).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Godwit native API",
        description = "Godwit's native HTTP/JSON API: push, take, lease, ack, peek, move, \
                       range reads, soft get, delete by id, membership and removal by body, queues, subscriptions, \
                       cursors over a log, and the key/value namespace queues share. Every error reply is \
                       `{\"error\": {\"code\": \"...\", \"message\": \"...\"}}`. A method a \
                       path does not list answers 405 with an `Allow` header."
    ),
    paths(
        ops::healthz,
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
        consume::move_messages,
        consume::range,
        consume::soft_get,
        consume::delete_message,
        values::contains,
        values::remove,
        queues::configure,
        queues::list,
        queues::totals,
        queues::show,
        queues::create,
        queues::describe,
        queues::purge,
        queues::delete,
        subscriptions::subscribe,
        subscriptions::seek,
        subscriptions::unsubscribe,
        subscriptions::list,
        streams::events,
        streams::ws,
        stats::events,
        kv::scan,
        kv::get_many,
        kv::flush,
        kv::get,
        kv::put,
        kv::delete,
        kv::incr,
        kv::append,
        kv::get_ttl,
        kv::put_ttl,
        cursors::reset,
        cursors::read_log,
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
        TotalsJson,
        QueueJson,
        QueuesReply,
        SubscriptionJson,
        SubscriptionsReply,
        ops::HealthReply,
        messages::PushReply,
        messages::BatchItem,
        messages::BatchRequest,
        messages::BatchReply,
        consume::ReceiptsRequest,
        consume::ExtendRequest,
        consume::AckReply,
        consume::NackReply,
        consume::ExtendReply,
        consume::EndJson,
        consume::DeleteReply,
        values::ContainsReply,
        values::RemoveRequest,
        values::RemoveReply,
        messages::DurabilityJson,
        queues::SettingsPatchDoc,
        queues::PurgeReply,
        queues::DropReply,
        queues::CreateRequest,
        queues::DescribeRequest,
        subscriptions::StartJson,
        subscriptions::SubscribeRequest,
        subscriptions::SubscribeReply,
        subscriptions::SeekRequest,
        subscriptions::SeekReply,
        streams::ModeJson,
        streams::PolicyJson,
        streams::AckFrame,
        stats::LiveQueueJson,
        stats::StatsEventJson,
        kv::KvValueJson,
        kv::PutReply,
        kv::IncrRequest,
        kv::IncrReply,
        kv::AppendReply,
        kv::TtlJson,
        kv::ScanReply,
        kv::MultiGetRequest,
        kv::MultiGetReply,
        kv::FlushReply,
        cursors::ResetRequest,
        cursors::ResetReply,
        cursors::LogReply,
    )),
    tags(
        (name = "messages", description = "Pushing messages"),
        (name = "consume", description = "Take, lease, ack, nack, extend, peek, move, range reads, soft get and paged reads of a retained log"),
        (name = "values", description = "Membership and removal by body (the value index)"),
        (name = "queues", description = "Queues and their settings"),
        (name = "subscriptions", description = "Named subscriptions for fan-out, and cursors over a log-retention queue"),
        (name = "streams", description = "Live delivery: Server-Sent Events and WebSocket, and the live stats stream"),
        (name = "kv", description = "The key/value namespace (keys and queues share one namespace)"),
        (name = "operations", description = "Health, metrics and this document"),
    )
)]
pub struct ApiDoc;

/// Characters a name may not contain (Rust's `char::is_control`: C0, DEL and C1).
const NAME_CHARS: &str = r"[^\x00-\x1F\x7F-\x9F]";

/// A bound of every parameter and schema property with a given name.
enum Limit {
    /// A queue or subscription name: 1–255 bytes without control characters.
    Name,
    /// A subscription name where empty means the default subscription.
    NameOrEmpty,
    /// An integer in `min..=max`.
    Range(u64, u64),
    /// A string of at most this many characters (the server counts UTF-8 bytes).
    MaxLength(usize),
    /// An array of `min..=max` items.
    Items(usize, usize),
}

/// The bounds the server enforces for a broker with `config`, by parameter or property
/// name, or by `Schema.property` for a property of one schema only. Every key must
/// match something in the document (checked by a test).
fn limits(config: &BrokerConfig) -> Vec<(&'static str, Limit)> {
    let max_batch = config.max_batch;
    let max_wait_ms = u64::try_from(config.max_wait.as_millis()).unwrap_or(u64::MAX);
    vec![
        ("queue", Limit::Name),
        ("name", Limit::Name),
        ("to", Limit::Name),
        ("dead_letter_queue", Limit::Name),
        ("subscription", Limit::NameOrEmpty),
        ("priority", Limit::Range(0, u64::from(MAX_PRIORITY))),
        ("max", Limit::Range(1, max_batch as u64)),
        ("wait_ms", Limit::Range(0, max_wait_ms)),
        ("visibility_ms", Limit::Range(1, MAX_DURATION_MS)),
        ("delay_ms", Limit::Range(0, MAX_DURATION_MS)),
        ("ttl_ms", Limit::Range(1, MAX_DURATION_MS)),
        ("dedup_window_ms", Limit::Range(0, MAX_DURATION_MS)),
        ("max_age_ms", Limit::Range(0, MAX_DURATION_MS)),
        ("max_deliveries", Limit::Range(1, u64::from(u32::MAX))),
        ("max_message_bytes", Limit::Range(1, u64::MAX)),
        ("dedup_id", Limit::MaxLength(MAX_NAME_BYTES)),
        (
            "description",
            Limit::MaxLength(godwit_core::MAX_DESCRIPTION_BYTES),
        ),
        ("BatchRequest.messages", Limit::Items(1, max_batch)),
        ("key", Limit::Name),
        ("limit", Limit::Range(1, max_batch as u64)),
        ("MultiGetRequest.keys", Limit::Items(1, max_batch)),
        (
            "interval_ms",
            Limit::Range(stats::MIN_INTERVAL_MS, stats::MAX_INTERVAL_MS),
        ),
    ]
}

impl Limit {
    /// Writes the bound into a parameter's or property's schema.
    fn apply(&self, schema: &mut Map<String, Value>) {
        let name_pattern = |quantifier: &str| format!("^{NAME_CHARS}{quantifier}$");
        match *self {
            Limit::Name => {
                schema.insert("minLength".into(), json!(1));
                schema.insert("maxLength".into(), json!(MAX_NAME_BYTES));
                schema.insert("pattern".into(), json!(name_pattern("+")));
            }
            Limit::NameOrEmpty => {
                schema.insert("maxLength".into(), json!(MAX_NAME_BYTES));
                schema.insert("pattern".into(), json!(name_pattern("*")));
            }
            Limit::Range(min, max) => {
                schema.insert("minimum".into(), json!(min));
                schema.insert("maximum".into(), json!(max));
            }
            Limit::MaxLength(max) => {
                schema.insert("maxLength".into(), json!(max));
            }
            Limit::Items(min, max) => {
                schema.insert("minItems".into(), json!(min));
                schema.insert("maxItems".into(), json!(max));
            }
        }
    }
}

/// The canonical name and largest value of an unsigned integer `format` (utoipa spells
/// them `u-int64` and so on).
fn unsigned_format(format: &str) -> Option<(&'static str, u64)> {
    match format {
        "uint8" | "u-int8" => Some(("uint8", u8::MAX.into())),
        "uint16" | "u-int16" => Some(("uint16", u16::MAX.into())),
        "uint32" | "u-int32" => Some(("uint32", u32::MAX.into())),
        "uint64" | "u-int64" => Some(("uint64", u64::MAX)),
        _ => None,
    }
}

/// Gives every unsigned integer schema under `value` its canonical format and its
/// format's maximum (a tighter limit from [`limits`] replaces it later).
fn bound_integer_formats(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let format = map.get("format").and_then(Value::as_str);
            if let Some((name, max)) = format.and_then(unsigned_format) {
                map.insert("format".into(), json!(name));
                map.entry("maximum").or_insert(json!(max));
            }
            map.values_mut().for_each(bound_integer_formats);
        }
        Value::Array(items) => items.iter_mut().for_each(bound_integer_formats),
        _ => {}
    }
}

/// Fills `limits` into the document: parameters by name, and properties of component
/// schemas by `Schema.property` or, failing that, by property name. Returns the keys
/// that matched something.
fn apply_limits(doc: &mut Value, limits: &[(&'static str, Limit)]) -> Vec<&'static str> {
    let mut found = Vec::new();
    let mut apply = |key: &str, schema: &mut Value| -> bool {
        let Some((key, limit)) = limits.iter().find(|(k, _)| *k == key) else {
            return false;
        };
        if let Some(schema) = schema.as_object_mut() {
            limit.apply(schema);
            found.push(*key);
        }
        true
    };
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        let operations = paths
            .values_mut()
            .filter_map(Value::as_object_mut)
            .flat_map(|methods| methods.values_mut());
        for operation in operations {
            let params = operation
                .get_mut("parameters")
                .and_then(Value::as_array_mut);
            for param in params.into_iter().flatten() {
                let name = param["name"].as_str().unwrap_or_default().to_owned();
                if param["in"] == "query" {
                    drop_null_type(&mut param["schema"]);
                }
                apply(&name, &mut param["schema"]);
            }
        }
    }
    let schemas = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut);
    for (schema_name, schema) in schemas.into_iter().flatten() {
        let properties = schema.get_mut("properties").and_then(Value::as_object_mut);
        for (name, property) in properties.into_iter().flatten() {
            if !apply(&format!("{schema_name}.{name}"), property) {
                apply(name, property);
            }
        }
    }
    found
}

/// A query parameter is absent or a value; it cannot be JSON `null`.
fn drop_null_type(schema: &mut Value) {
    if let Some(types) = schema.get_mut("type").and_then(Value::as_array_mut) {
        types.retain(|t| t != "null");
        if let [only] = types.as_slice() {
            let only = only.clone();
            schema["type"] = only;
        }
    }
}

/// Standard base64 with padding and zero trailing bits, as the server decodes it: the
/// last symbol before `==` carries 4 unused bits (index a multiple of 16), before `=` 2
/// (a multiple of 4).
const BASE64_PATTERN: &str =
    "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?$";

/// What the annotations cannot say about a batch item: exactly one of `body` and
/// `body_base64` is a string (the other absent or `null`), base64 is strict, and header
/// names are not empty.
fn refine_batch_item(doc: &mut Value) {
    let Some(item) = doc.pointer_mut("/components/schemas/BatchItem") else {
        return;
    };
    let one = |given: &str, other: &str| {
        json!({
            "required": [given],
            "properties": {given: {"type": "string"}, other: {"type": "null"}},
        })
    };
    item["oneOf"] = json!([one("body", "body_base64"), one("body_base64", "body")]);
    item["properties"]["body_base64"]["pattern"] = json!(BASE64_PATTERN);
    item["properties"]["headers"]["propertyNames"]["minLength"] = json!(1);
}

/// The document as a JSON value, with the limits of a broker with `config`.
fn document_value(config: &BrokerConfig) -> (Value, Vec<&'static str>) {
    let mut doc = serde_json::to_value(ApiDoc::openapi())
        .unwrap_or_else(|err| json!({"error": format!("rendering the OpenAPI document: {err}")}));
    bound_integer_formats(&mut doc);
    refine_batch_item(&mut doc);
    let found = apply_limits(&mut doc, &limits(config));
    (doc, found)
}

/// The document as JSON text for a broker with `config`, built once per router.
pub fn json(config: &BrokerConfig) -> String {
    let (doc, _) = document_value(config);
    serde_json::to_string_pretty(&doc).unwrap_or_else(|err| format!("{{\"error\": \"{err}\"}}"))
}

/// `GET /v1/openapi.json`.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "operations",
    responses((status = 200, description = "This OpenAPI document", content_type = "application/json", body = Object))
)]
pub async fn document(State(app): State<AppState>) -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], app.openapi.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_limit_lands_in_the_document() {
        let config = BrokerConfig::default();
        let (_, found) = document_value(&config);
        for (name, _) in limits(&config) {
            assert!(found.contains(&name), "limit {name} matches nothing");
        }
    }

    #[test]
    fn configured_limits_are_the_documented_ones() {
        let config = BrokerConfig {
            max_batch: 17,
            max_wait: std::time::Duration::from_millis(1234),
            ..BrokerConfig::default()
        };
        let (doc, _) = document_value(&config);
        let params = &doc["paths"]["/v1/queues/{queue}/lease"]["post"]["parameters"];
        let param = |name: &str| {
            params
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == name)
                .unwrap_or_else(|| panic!("no {name} parameter"))["schema"]
                .clone()
        };
        assert_eq!(param("max")["maximum"], 17);
        assert_eq!(param("max")["minimum"], 1);
        assert_eq!(param("wait_ms")["maximum"], 1234);
        assert_eq!(param("visibility_ms")["maximum"], MAX_DURATION_MS);
        assert_eq!(param("queue")["maxLength"], 255);
        let batch = &doc["components"]["schemas"]["BatchRequest"]["properties"]["messages"];
        assert_eq!(batch["maxItems"], 17);
        let seek_id = &doc["components"]["schemas"]["SeekRequest"]["properties"]["id"];
        assert_eq!(seek_id["maximum"], u64::MAX);
    }
}
