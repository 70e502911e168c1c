//! Request extractors whose rejections are [`ApiError`]s, so axum's plain-text
//! rejections never reach a client.
//!
//! JSON bodies are parsed whatever the `Content-Type` says (a `curl -d` sends
//! `application/x-www-form-urlencoded`), and names in the path are checked with the
//! core's naming rules before a handler runs.

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Query, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt as _;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::AppState;

/// The `{queue}` path parameter, checked with [`godwit_core::name::validate_queue`].
#[derive(Debug, Clone)]
pub struct QueueName(pub String);

/// The `{name}` path parameter of subscription routes, checked with
/// [`godwit_core::name::validate_subscription`].
#[derive(Debug, Clone)]
pub struct SubscriptionName(pub String);

async fn path_param<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
    key: &str,
) -> Result<String, ApiError> {
    // The raw (percent-decoded) parameters: no map and no string per parameter.
    let params = RawPathParams::from_request_parts(parts, state)
        .await
        .map_err(|rejection| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_path",
                rejection.body_text(),
            )
        })?;
    params
        .iter()
        .find(|(name, _)| *name == key)
        .map(|(_, value)| value.to_owned())
        .ok_or_else(|| {
            ApiError::from_status(StatusCode::INTERNAL_SERVER_ERROR, "route has no {key}")
        })
}

impl<S: Send + Sync> FromRequestParts<S> for QueueName {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let name = path_param(parts, state, "queue").await?;
        godwit_core::name::validate_queue(&name)?;
        Ok(Self(name))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for SubscriptionName {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let name = path_param(parts, state, "name").await?;
        godwit_core::name::validate_subscription(&name)?;
        Ok(Self(name))
    }
}

/// The `{key}` path parameter of key/value routes, checked with
/// [`godwit_core::name::validate_key`].
#[derive(Debug, Clone)]
pub struct KeyName(pub String);

impl<S: Send + Sync> FromRequestParts<S> for KeyName {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let name = path_param(parts, state, "key").await?;
        godwit_core::name::validate_key(&name)?;
        Ok(Self(name))
    }
}

/// The `{id}` path parameter of message routes: a message id (a decimal `u64`).
#[derive(Debug, Clone, Copy)]
pub struct MessageId(pub u64);

impl<S: Send + Sync> FromRequestParts<S> for MessageId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let text = path_param(parts, state, "id").await?;
        text.parse().map(Self).map_err(|_| {
            ApiError::invalid_argument(format!("{text:?} is not a message id (a decimal u64)"))
        })
    }
}

/// A query string deserialized into `T`; a bad value is a 400 `invalid_query`.
#[derive(Debug, Clone, Default)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| Self(value))
            .map_err(|rejection| ApiError::invalid_query(rejection.body_text()))
    }
}

/// A route's own body limit, set as a request extension by a layer on that route;
/// without one, a body may be up to the server's `max_body_bytes`.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// How much of an over-limit body is read and thrown away so the client, still sending,
/// gets the 413 reply instead of a reset connection. Past this the connection is closed.
pub(crate) const MAX_DRAIN_BYTES: usize = 64 * 1024 * 1024;

/// The request's `Content-Length`, when it has a readable one: lets a dialect refuse a
/// body declared too long before reading it.
pub(crate) fn declared_length(headers: &axum::http::HeaderMap) -> Option<u64> {
    headers
        .get(axum::http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// The raw request body, within the route's [`BodyLimit`] (over it: 413 `too_large`).
#[derive(Debug, Clone)]
pub struct RawBody(pub Bytes);

impl FromRequest<AppState> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map_or(state.opts.max_body_bytes, |l| l.0);
        read_body(req.into_body(), limit).await.map(Self)
    }
}

/// Reads a body up to `limit` bytes. A longer one is drained (up to
/// [`MAX_DRAIN_BYTES`]) and refused with 413.
pub(crate) async fn read_body(mut body: Body, limit: usize) -> Result<Bytes, ApiError> {
    use http_body::Body as _;
    // A body that arrives in one frame (most do) is kept as it came, not copied.
    let mut first: Option<Bytes> = None;
    let mut buf = BytesMut::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("reading the body: {err}"),
            )
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen <= limit {
            if buf.is_empty() && first.is_none() {
                first = Some(data);
                continue;
            }
            if let Some(first) = first.take() {
                let rest = usize::try_from(body.size_hint().lower()).unwrap_or(limit);
                buf.reserve((first.len() + data.len()).saturating_add(rest).min(limit));
                buf.extend_from_slice(&first);
            }
            buf.extend_from_slice(&data);
        } else {
            first = None;
            buf = BytesMut::new();
            if seen > limit.saturating_add(MAX_DRAIN_BYTES) {
                break;
            }
        }
    }
    if seen > limit {
        return Err(ApiError::body_too_large(limit));
    }
    Ok(first.unwrap_or_else(|| buf.freeze()))
}

/// A JSON body deserialized into `T`, whatever the `Content-Type`; malformed JSON or a
/// wrong shape is a 400 `invalid_json`.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        parse_json(&bytes).map(Self)
    }
}

/// Like [`ApiJson`], but an empty body, or JSON `null`, is `None`.
#[derive(Debug, Clone)]
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned> FromRequest<AppState> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        if bytes.is_empty() || bytes.trim_ascii() == b"null" {
            return Ok(Self(None));
        }
        parse_json(&bytes).map(Self)
    }
}

/// Decodes a request body, which must be a JSON object: every body the API takes is
/// one, and serde would otherwise also read a struct from an array of its fields.
fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(ApiError::invalid_json(
            "invalid JSON body: expected a JSON object",
        ));
    }
    serde_json::from_slice(bytes)
        .map_err(|err| ApiError::invalid_json(format!("invalid JSON body: {err}")))
}
