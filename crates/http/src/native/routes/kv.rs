//! The key/value namespace: `GET/PUT/DELETE /v1/kv/{key}` with raw values, counters,
//! appends, TTLs, multi-get, scans by prefix and pattern, and flush.
//!
//! A value travels raw, as the request or response body; its version (what
//! `if_version` names), flags and expiry travel in `x-godwit-*` headers, the version
//! also as the `ETag`.

use std::time::Duration;

use axum::extract::State;
use axum::http::header::{CONTENT_TYPE, ETAG};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use godwit_core::{Condition, Counter, Expiry, KvScan, KvTtl, KvValue, KvWrite, WriteOutcome};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorBody};
use crate::native::extract::{ApiJson, ApiQuery, KeyName, RawBody};
use crate::native::routes::messages::DurabilityJson;
use crate::{AppState, MAX_DURATION_MS};

/// The header carrying a value's version.
pub const VERSION_HEADER: &str = "x-godwit-version";
/// The header carrying a value's flags.
pub const FLAGS_HEADER: &str = "x-godwit-flags";
/// The header carrying a value's expiry time (ms since the epoch), when it has one.
pub const EXPIRES_HEADER: &str = "x-godwit-expires-at-ms";

/// A value in a JSON reply.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KvValueJson {
    /// The value, when it is valid UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The value in standard base64, when it is not valid UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_base64: Option<String>,
    /// The client's opaque flags.
    pub flags: u32,
    /// Its version: changes on every write, never repeats.
    pub version: u64,
    /// When it expires, ms since the epoch; absent when it never does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
}

impl From<KvValue> for KvValueJson {
    fn from(v: KvValue) -> Self {
        let (value, value_base64) = match std::str::from_utf8(&v.value) {
            Ok(text) => (Some(text.to_owned()), None),
            Err(_) => (None, Some(BASE64.encode(&v.value))),
        };
        Self {
            value,
            value_base64,
            flags: v.flags,
            version: v.version,
            expires_at_ms: (v.expires_at_ms != 0).then_some(v.expires_at_ms),
        }
    }
}

/// Options of a write, in the query string.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PutQuery {
    /// Expire this many milliseconds after the write (at least 1). Without it (and
    /// without `keep_ttl`) the key never expires.
    pub ttl_ms: Option<u64>,
    /// Keep the key's current expiry (default false; not with `ttl_ms`).
    pub keep_ttl: Option<bool>,
    /// Write only when the key is absent (default false).
    pub if_absent: Option<bool>,
    /// Write only when the key exists (default false).
    pub if_present: Option<bool>,
    /// Write only when the key exists at this version (compare-and-swap).
    pub if_version: Option<u64>,
    /// Opaque flags kept with the value (default 0).
    pub flags: Option<u32>,
    /// What to wait for before replying (default: the server's `--fsync` policy).
    pub durability: Option<DurabilityJson>,
}

/// The reply of a write.
#[derive(Debug, Serialize, ToSchema)]
pub struct PutReply {
    /// The key.
    pub key: String,
    /// Its new version.
    pub version: u64,
    /// True when an fsync covering the write completed before the reply.
    pub durable: bool,
    /// The value it replaced, if it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<KvValueJson>,
}

fn header(name: &'static str, value: u64) -> (HeaderName, HeaderValue) {
    (HeaderName::from_static(name), HeaderValue::from(value))
}

/// A key's value, raw, with its version, flags and expiry in headers.
#[utoipa::path(
    get,
    path = "/v1/kv/{key}",
    tag = "kv",
    params(("key" = String, Path, description = "The key")),
    responses(
        (status = 200, description = "The value, raw", content_type = "application/octet-stream", body = Vec<u8>,
            headers(
                ("x-godwit-version" = u64, description = "The value's version"),
                ("x-godwit-flags" = u32, description = "Its flags"),
                ("x-godwit-expires-at-ms" = u64, description = "When it expires (only when it does)"),
            )),
        (status = 400, description = "`invalid_name`: a bad key", body = ErrorBody),
        (status = 404, description = "`not_found`: no such key", body = ErrorBody),
        (status = 409, description = "`wrong_type`: the name is a queue", body = ErrorBody),
        (status = 503, description = "`unavailable`: the server is stopping", body = ErrorBody),
    )
)]
pub async fn get(State(app): State<AppState>, KeyName(key): KeyName) -> Result<Response, ApiError> {
    let value = app
        .broker
        .kv_get(&key)
        .await?
        .ok_or_else(|| not_found(&key))?;
    let mut response = (
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (
                ETAG,
                HeaderValue::from_str(&format!("\"{}\"", value.version))
                    .unwrap_or(HeaderValue::from_static("\"0\"")),
            ),
        ],
        value.value.clone(),
    )
        .into_response();
    let headers = response.headers_mut();
    let (name, v) = header(VERSION_HEADER, value.version);
    headers.insert(name, v);
    let (name, v) = header(FLAGS_HEADER, u64::from(value.flags));
    headers.insert(name, v);
    if value.expires_at_ms != 0 {
        let (name, v) = header(EXPIRES_HEADER, value.expires_at_ms);
        headers.insert(name, v);
    }
    Ok(response)
}

fn not_found(key: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("key {key:?} not found"),
    )
}

fn ttl(ms: u64) -> Result<Duration, ApiError> {
    if ms == 0 || ms > MAX_DURATION_MS {
        return Err(ApiError::invalid_argument(format!(
            "ttl_ms must be 1..={MAX_DURATION_MS}"
        )));
    }
    Ok(Duration::from_millis(ms))
}

/// Writes a value (the raw request body), with a TTL and a condition if given.
#[utoipa::path(
    put,
    path = "/v1/kv/{key}",
    tag = "kv",
    params(("key" = String, Path, description = "The key"), PutQuery),
    request_body(content = Option<Vec<u8>>, content_type = "application/octet-stream",
        description = "The value, raw"),
    responses(
        (status = 200, description = "Written", body = PutReply),
        (status = 400, description = "`invalid_name`, `invalid_query` or `invalid_argument`: a bad key or option", body = ErrorBody),
        (status = 404, description = "`not_found`: `if_present` or `if_version` and no such key", body = ErrorBody),
        (status = 409, description = "`wrong_type`: the name is a queue", body = ErrorBody),
        (status = 412, description = "`exists` (`if_absent` and the key exists) or `version_mismatch` (`if_version` names another version)", body = ErrorBody),
        (status = 413, description = "`too_large`: the value is over the limit", body = ErrorBody),
        (status = 503, description = "`unavailable` or `storage_error`: the store has failed or the server is stopping", body = ErrorBody),
        (status = 507, description = "`disk_full` or `kv_full`: no room for the value now", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
    )
)]
pub async fn put(
    State(app): State<AppState>,
    KeyName(key): KeyName,
    ApiQuery(q): ApiQuery<PutQuery>,
    RawBody(value): RawBody,
) -> Result<Json<PutReply>, ApiError> {
    let keep = q.keep_ttl.unwrap_or(false);
    let expiry = match (q.ttl_ms, keep) {
        (Some(_), true) => {
            return Err(ApiError::invalid_argument(
                "give at most one of ttl_ms and keep_ttl",
            ))
        }
        (Some(ms), false) => Expiry::In(ttl(ms)?),
        (None, true) => Expiry::Keep,
        (None, false) => Expiry::Never,
    };
    let condition = match (
        q.if_absent.unwrap_or(false),
        q.if_present.unwrap_or(false),
        q.if_version,
    ) {
        (false, false, None) => Condition::Always,
        (true, false, None) => Condition::IfAbsent,
        (false, true, None) => Condition::IfPresent,
        (false, false, Some(v)) => Condition::IfVersion(v),
        _ => {
            return Err(ApiError::invalid_argument(
                "give at most one of if_absent, if_present and if_version",
            ))
        }
    };
    let write = KvWrite {
        value,
        flags: q.flags.unwrap_or(0),
        expiry,
        condition,
        durability: q.durability.map(Into::into),
    };
    let reply = app.broker.kv_set(&key, write).await?;
    match reply.outcome {
        WriteOutcome::Stored { version } => Ok(Json(PutReply {
            key,
            version,
            durable: reply.durable,
            old: reply.old.map(Into::into),
        })),
        WriteOutcome::Exists => Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "exists",
            format!("key {key:?} exists"),
        )),
        WriteOutcome::Missing => Err(not_found(&key)),
        WriteOutcome::VersionMismatch { current } => Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "version_mismatch",
            format!("key {key:?} is at version {current}"),
        )),
    }
}

/// Deletes a key.
#[utoipa::path(
    delete,
    path = "/v1/kv/{key}",
    tag = "kv",
    params(("key" = String, Path, description = "The key")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "`invalid_name`: a bad key", body = ErrorBody),
        (status = 404, description = "`not_found`: no such key", body = ErrorBody),
        (status = 503, description = "`unavailable` or `storage_error`: the store has failed or the server is stopping", body = ErrorBody),
    )
)]
pub async fn delete(
    State(app): State<AppState>,
    KeyName(key): KeyName,
) -> Result<StatusCode, ApiError> {
    match app.broker.kv_delete(std::slice::from_ref(&key)).await? {
        0 => Err(not_found(&key)),
        _ => Ok(StatusCode::NO_CONTENT),
    }
}

/// The body of a counter change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IncrRequest {
    /// How much to add (negative subtracts); default 1.
    #[serde(default = "one")]
    pub by: i64,
}

fn one() -> i64 {
    1
}

/// The reply of a counter change.
#[derive(Debug, Serialize, ToSchema)]
pub struct IncrReply {
    /// The counter's new value.
    pub value: i64,
}

/// Adds to a counter: a value holding a signed 64-bit decimal (an absent key counts as
/// 0), keeping its TTL.
#[utoipa::path(
    post,
    path = "/v1/kv/{key}/incr",
    tag = "kv",
    params(("key" = String, Path, description = "The key")),
    request_body(content = IncrRequest),
    responses(
        (status = 200, description = "The new value", body = IncrReply),
        (status = 400, description = "`invalid_name` or `invalid_json`: a bad key or body", body = ErrorBody),
        (status = 409, description = "`wrong_type` (a queue), `not_an_integer` (the value is not a number) or `overflow` (out of the 64-bit range)", body = ErrorBody),
        (status = 413, description = "`too_large`: the body is over the request limit", body = ErrorBody),
        (status = 503, description = "`unavailable` or `storage_error`: the store has failed or the server is stopping", body = ErrorBody),
        (status = 507, description = "`disk_full` or `kv_full`: no room now", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
    )
)]
pub async fn incr(
    State(app): State<AppState>,
    KeyName(key): KeyName,
    ApiJson(request): ApiJson<IncrRequest>,
) -> Result<Json<IncrReply>, ApiError> {
    let value = app
        .broker
        .kv_counter(&key, Counter::Signed(request.by))
        .await?
        .and_then(|v| i64::try_from(v).ok())
        .ok_or_else(|| ApiError::from_status(StatusCode::INTERNAL_SERVER_ERROR, "no counter"))?;
    Ok(Json(IncrReply { value }))
}

/// Options of an append.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AppendQuery {
    /// Prepend instead of append (default false).
    pub front: Option<bool>,
    /// Fail with 404 when the key is absent, instead of creating it (default false).
    pub must_exist: Option<bool>,
}

/// The reply of an append.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppendReply {
    /// The value's new length in bytes.
    pub length: u64,
}

/// Appends (or prepends) the raw request body to a value, keeping its flags and TTL.
#[utoipa::path(
    post,
    path = "/v1/kv/{key}/append",
    tag = "kv",
    params(("key" = String, Path, description = "The key"), AppendQuery),
    request_body(content = Option<Vec<u8>>, content_type = "application/octet-stream",
        description = "The bytes to add, raw"),
    responses(
        (status = 200, description = "The new length", body = AppendReply),
        (status = 400, description = "`invalid_name` or `invalid_query`: a bad key or option", body = ErrorBody),
        (status = 404, description = "`not_found`: `must_exist` and no such key", body = ErrorBody),
        (status = 409, description = "`wrong_type`: the name is a queue", body = ErrorBody),
        (status = 413, description = "`too_large`: the value would be over the limit", body = ErrorBody),
        (status = 503, description = "`unavailable` or `storage_error`: the store has failed or the server is stopping", body = ErrorBody),
        (status = 507, description = "`disk_full` or `kv_full`: no room now", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
    )
)]
pub async fn append(
    State(app): State<AppState>,
    KeyName(key): KeyName,
    ApiQuery(q): ApiQuery<AppendQuery>,
    RawBody(data): RawBody,
) -> Result<Json<AppendReply>, ApiError> {
    let create = !q.must_exist.unwrap_or(false);
    let length = app
        .broker
        .kv_append(&key, data, q.front.unwrap_or(false), create)
        .await?
        .ok_or_else(|| not_found(&key))?;
    Ok(Json(AppendReply { length }))
}

/// A key's time to live.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TtlJson {
    /// Milliseconds left; `null` when the key never expires. In a request, `null`
    /// (or absent) removes the TTL, 1 or more sets it.
    #[serde(default)]
    pub ttl_ms: Option<u64>,
}

/// A key's time to live.
#[utoipa::path(
    get,
    path = "/v1/kv/{key}/ttl",
    tag = "kv",
    params(("key" = String, Path, description = "The key")),
    responses(
        (status = 200, description = "Its TTL", body = TtlJson),
        (status = 400, description = "`invalid_name`: a bad key", body = ErrorBody),
        (status = 404, description = "`not_found`: no such key", body = ErrorBody),
        (status = 409, description = "`wrong_type`: the name is a queue", body = ErrorBody),
        (status = 503, description = "`unavailable`: the server is stopping", body = ErrorBody),
    )
)]
pub async fn get_ttl(
    State(app): State<AppState>,
    KeyName(key): KeyName,
) -> Result<Json<TtlJson>, ApiError> {
    match app.broker.kv_ttl(&key).await? {
        KvTtl::Missing => Err(not_found(&key)),
        KvTtl::Never => Ok(Json(TtlJson { ttl_ms: None })),
        KvTtl::Ms(ms) => Ok(Json(TtlJson { ttl_ms: Some(ms) })),
    }
}

/// Sets or removes a key's time to live (its value and version stay).
#[utoipa::path(
    put,
    path = "/v1/kv/{key}/ttl",
    tag = "kv",
    params(("key" = String, Path, description = "The key")),
    request_body(content = TtlJson),
    responses(
        (status = 200, description = "Changed; the reply is the TTL now", body = TtlJson),
        (status = 400, description = "`invalid_name`, `invalid_json` or `invalid_argument`: a bad key or TTL", body = ErrorBody),
        (status = 404, description = "`not_found`: no such key", body = ErrorBody),
        (status = 409, description = "`wrong_type`: the name is a queue", body = ErrorBody),
        (status = 413, description = "`too_large`: the body is over the request limit", body = ErrorBody),
        (status = 503, description = "`unavailable` or `storage_error`: the store has failed or the server is stopping", body = ErrorBody),
    )
)]
pub async fn put_ttl(
    State(app): State<AppState>,
    KeyName(key): KeyName,
    ApiJson(request): ApiJson<TtlJson>,
) -> Result<Json<TtlJson>, ApiError> {
    let expiry = match request.ttl_ms {
        None => Expiry::Never,
        Some(ms) => Expiry::In(ttl(ms)?),
    };
    if !app.broker.kv_expire(&key, expiry).await? {
        return Err(not_found(&key));
    }
    Ok(Json(request))
}

/// A scan's options.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ScanQuery {
    /// Only keys that start with this.
    pub prefix: Option<String>,
    /// Only keys matching this glob (`*`, `?`, `[a-z]`, `[^x]`, `\` escapes).
    pub pattern: Option<String>,
    /// Start after this key (the previous page's `next`).
    pub after: Option<String>,
    /// Most keys looked at for this page (default 100, at most the server's
    /// `max_batch`); a page may hold fewer when `pattern` skips some.
    pub limit: Option<usize>,
}

/// One page of keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScanReply {
    /// Keys, in byte order.
    pub keys: Vec<String>,
    /// Pass as `after` for the next page; absent when the scan is done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Lists keys by prefix and pattern, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/kv",
    tag = "kv",
    params(ScanQuery),
    responses(
        (status = 200, description = "A page of keys", body = ScanReply),
        (status = 400, description = "`invalid_query` or `invalid_argument`: a bad option", body = ErrorBody),
        (status = 503, description = "`unavailable`: the server is stopping", body = ErrorBody),
    )
)]
pub async fn scan(
    State(app): State<AppState>,
    ApiQuery(q): ApiQuery<ScanQuery>,
) -> Result<Json<ScanReply>, ApiError> {
    let page = app
        .broker
        .kv_scan(KvScan {
            prefix: q.prefix.unwrap_or_default(),
            pattern: q.pattern,
            after: q.after,
            max: q.limit.unwrap_or(100),
        })
        .await?;
    Ok(Json(ScanReply {
        keys: page.keys,
        next: page.next,
    }))
}

/// The body of a multi-get.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MultiGetRequest {
    /// The keys, 1 to the server's `max_batch`.
    pub keys: Vec<String>,
}

/// The reply of a multi-get.
#[derive(Debug, Serialize, ToSchema)]
pub struct MultiGetReply {
    /// One per key, in order: `null` for a key with no value (or a queue).
    pub values: Vec<Option<KvValueJson>>,
}

/// Reads several keys at once.
#[utoipa::path(
    post,
    path = "/v1/kv",
    tag = "kv",
    request_body(content = MultiGetRequest),
    responses(
        (status = 200, description = "The values", body = MultiGetReply),
        (status = 400, description = "`invalid_json`, `invalid_name` or `invalid_argument`: a bad body, key or count", body = ErrorBody),
        (status = 413, description = "`too_large`: the body is over the request limit", body = ErrorBody),
        (status = 503, description = "`unavailable`: the server is stopping", body = ErrorBody),
    )
)]
pub async fn get_many(
    State(app): State<AppState>,
    ApiJson(request): ApiJson<MultiGetRequest>,
) -> Result<Json<MultiGetReply>, ApiError> {
    let values = app.broker.kv_get_many(&request.keys).await?;
    Ok(Json(MultiGetReply {
        values: values.into_iter().map(|v| v.map(Into::into)).collect(),
    }))
}

/// The reply of a flush.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlushReply {
    /// How many keys were deleted.
    pub deleted: u64,
}

/// Deletes every key (queues are left alone).
#[utoipa::path(
    delete,
    path = "/v1/kv",
    tag = "kv",
    responses(
        (status = 200, description = "Deleted", body = FlushReply),
        (status = 503, description = "`unavailable` or `storage_error`: the store has failed or the server is stopping", body = ErrorBody),
    )
)]
pub async fn flush(State(app): State<AppState>) -> Result<Json<FlushReply>, ApiError> {
    let deleted = app.broker.kv_flush().await?;
    Ok(Json(FlushReply { deleted }))
}
