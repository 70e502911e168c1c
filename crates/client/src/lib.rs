//! An async, typed client for Godwit's native HTTP API (`/v1`, see `docs/http-api.md`).
//!
//! ```no_run
//! # async fn demo() -> godwit_client::Result<()> {
//! use godwit_client::{Client, PushOptions, ReadOptions};
//! let client = Client::new("http://127.0.0.1:8888")?;
//! client.push("jobs", "resize photo 1", &PushOptions::default()).await?;
//! for m in client.take("jobs", &ReadOptions::max(10)).await? {
//!     println!("{} {:?}", m.id, m.bytes()?);
//! }
//! # Ok(()) }
//! ```
//!
//! Every call is one HTTP request; errors come back as [`Error`], whose
//! [`Error::is_unreachable`] tells a retry-worthy failure from the server's refusal.
//! The crate holds no state besides the connection pool.

mod error;
mod sse;
mod types;

use bytes::Bytes;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Deserialize;

pub use crate::error::{Error, Result};
pub use crate::sse::Subscription;
pub use crate::types::{
    BatchPushed, Durability, Message, NewMessage, PushOptions, Pushed, QueueStats, ReadOptions,
    StreamEvent, StreamOptions, Totals,
};

/// A handle on one Godwit server; cheap to clone (the connection pool is shared).
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

/// What a path segment keeps unencoded: RFC 3986's unreserved bytes.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes a path segment: every byte but the RFC 3986 unreserved ones.
fn encode_segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

impl Client {
    /// A client for the server at `base` (e.g. `http://127.0.0.1:8888`).
    pub fn new(base: &str) -> Result<Client> {
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| Error::Protocol(format!("building the HTTP client: {e}")))?;
        Client::with_http(base, http)
    }

    /// A client using this `reqwest::Client` (for timeouts, proxies, TLS settings).
    pub fn with_http(base: &str, http: reqwest::Client) -> Result<Client> {
        let trimmed = base.trim_end_matches('/');
        let host = trimmed
            .strip_prefix("http://")
            .or_else(|| trimmed.strip_prefix("https://"));
        if host.is_none_or(str::is_empty) {
            return Err(Error::InvalidUrl(base.to_string()));
        }
        Ok(Client {
            base: trimmed.to_string(),
            http,
        })
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn queue_url(&self, queue: &str, rest: &str) -> String {
        format!("{}/v1/queues/{}{}", self.base, encode_segment(queue), rest)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let resp = req.send().await.map_err(Error::from_reqwest)?;
        check(resp).await
    }

    async fn json<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> Result<T> {
        let resp = self.send(req).await?;
        let bytes = resp.bytes().await.map_err(Error::from_reqwest)?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Protocol(e.to_string()))
    }

    /// Whether the server is up and its store healthy (`GET /healthz`).
    pub async fn health(&self) -> Result<()> {
        self.send(self.http.get(format!("{}/healthz", self.base)))
            .await
            .map(drop)
    }

    /// Pushes one message whose body is `body`, byte for byte.
    pub async fn push(
        &self,
        queue: &str,
        body: impl Into<Bytes>,
        options: &PushOptions,
    ) -> Result<Pushed> {
        let mut req = self
            .http
            .post(self.queue_url(queue, "/messages"))
            .query(&options.query())
            .body(body.into());
        for (name, value) in &options.headers {
            req = req.header(format!("x-godwit-header-{name}"), value);
        }
        self.json(req).await
    }

    /// Pushes several messages, all or nothing.
    pub async fn push_batch(
        &self,
        queue: &str,
        messages: &[NewMessage],
        durability: Option<Durability>,
    ) -> Result<BatchPushed> {
        let body = types::BatchRequest {
            messages,
            durability,
        };
        let body = serde_json::to_vec(&body).map_err(|e| Error::Protocol(e.to_string()))?;
        self.json(
            self.http
                .post(self.queue_url(queue, "/batch"))
                .header("content-type", "application/json")
                .body(body),
        )
        .await
    }

    async fn read(
        &self,
        method: Method,
        queue: &str,
        what: &str,
        query: Vec<(&'static str, String)>,
    ) -> Result<Vec<Message>> {
        let reply: types::MessagesReply = self
            .json(
                self.http
                    .request(method, self.queue_url(queue, what))
                    .query(&query),
            )
            .await?;
        Ok(reply.messages)
    }

    /// Takes (removes) up to `max` messages; empty when none is ready within `wait_ms`.
    pub async fn take(&self, queue: &str, options: &ReadOptions) -> Result<Vec<Message>> {
        self.read(Method::POST, queue, "/take", options.query(true, false))
            .await
    }

    /// Leases up to `max` messages: hidden until acked, nacked or `visibility_ms` passes.
    pub async fn lease(&self, queue: &str, options: &ReadOptions) -> Result<Vec<Message>> {
        self.read(Method::POST, queue, "/lease", options.query(true, true))
            .await
    }

    /// Lists up to `max` messages from the head without consuming them.
    pub async fn peek(&self, queue: &str, options: &ReadOptions) -> Result<Vec<Message>> {
        self.read(Method::GET, queue, "/peek", options.query(false, false))
            .await
    }

    async fn receipts(&self, queue: &str, what: &str, receipts: &[String]) -> Result<u64> {
        let body = serde_json::json!({ "receipts": receipts });
        let reply: serde_json::Value = self
            .json(self.http.post(self.queue_url(queue, what)).json(&body))
            .await?;
        let key = if what == "/ack" { "acked" } else { "nacked" };
        reply[key]
            .as_u64()
            .ok_or_else(|| Error::Protocol(format!("no {key:?} in {reply}")))
    }

    /// Acknowledges leased messages by receipt; returns how many were still leased.
    pub async fn ack(&self, queue: &str, receipts: &[String]) -> Result<u64> {
        self.receipts(queue, "/ack", receipts).await
    }

    /// Gives leased messages back (ready again at once); returns how many were leased.
    pub async fn nack(&self, queue: &str, receipts: &[String]) -> Result<u64> {
        self.receipts(queue, "/nack", receipts).await
    }

    /// One queue's counters (`not_found` when it does not exist).
    pub async fn queue_stats(&self, queue: &str) -> Result<QueueStats> {
        self.json(self.http.get(self.queue_url(queue, ""))).await
    }

    /// Every queue's counters, by name (only those starting with `prefix` if given).
    pub async fn list_queues(&self, prefix: Option<&str>) -> Result<Vec<QueueStats>> {
        let mut req = self.http.get(format!("{}/v1/queues", self.base));
        if let Some(p) = prefix {
            req = req.query(&[("prefix", p)]);
        }
        let reply: types::QueuesReply = self.json(req).await?;
        Ok(reply.queues)
    }

    /// The counters added up over every queue.
    pub async fn totals(&self) -> Result<Totals> {
        self.json(self.http.get(format!("{}/v1/stats", self.base)))
            .await
    }

    /// Creates a queue (`already_exists` when it is there).
    pub async fn create(&self, queue: &str, description: Option<&str>) -> Result<QueueStats> {
        let body = match description {
            Some(d) => serde_json::json!({ "description": d }),
            None => serde_json::json!({}),
        };
        self.json(self.http.post(self.queue_url(queue, "")).json(&body))
            .await
    }

    /// Removes every message of a queue; returns how many.
    pub async fn purge(&self, queue: &str) -> Result<u64> {
        let reply: serde_json::Value = self
            .json(self.http.post(self.queue_url(queue, "/purge")))
            .await?;
        reply["purged"]
            .as_u64()
            .ok_or_else(|| Error::Protocol(format!("no \"purged\" in {reply}")))
    }

    /// Deletes a queue and its messages; returns how many messages it held.
    pub async fn delete(&self, queue: &str) -> Result<u64> {
        let reply: serde_json::Value = self
            .json(self.http.delete(self.queue_url(queue, "")))
            .await?;
        reply["dropped"]
            .as_u64()
            .ok_or_else(|| Error::Protocol(format!("no \"dropped\" in {reply}")))
    }

    /// Opens a live subscription on the queue's Server-Sent Events stream: each message
    /// is delivered (taken, or leased with `lease`) as it arrives.
    pub async fn subscribe(&self, queue: &str, options: &StreamOptions) -> Result<Subscription> {
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(s) = &options.subscription {
            query.push(("subscription", s.clone()));
        }
        if options.lease {
            query.push(("mode", "lease".into()));
        }
        let mut req = self
            .http
            .get(self.queue_url(queue, "/events"))
            .query(&query)
            .header("accept", "text/event-stream");
        if let Some(id) = options.after_id {
            req = req.header("last-event-id", id.to_string());
        }
        let resp = self.send(req).await?;
        Ok(Subscription::new(resp))
    }
}

/// Turns a non-2xx reply into [`Error::Api`].
async fn check(resp: reqwest::Response) -> Result<reqwest::Response> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let bytes = resp.bytes().await.map_err(Error::from_reqwest)?;
    Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
        Ok(body) => Error::Api {
            status: status.as_u16(),
            code: body.error.code,
            message: body.error.message,
        },
        Err(_) => Error::Api {
            status: status.as_u16(),
            code: "http_error".into(),
            message: String::from_utf8_lossy(&bytes).into_owned(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(encode_segment("a/b c"), "a%2Fb%20c");
        assert_eq!(encode_segment("jobs-1.x_~"), "jobs-1.x_~");
        assert_eq!(encode_segment("é"), "%C3%A9");
    }

    #[test]
    fn base_urls_are_checked() {
        assert!(Client::new("ftp://x").is_err());
        assert!(Client::new("http://").is_err());
        let c = Client::new("http://127.0.0.1:8888/").expect("valid url");
        assert_eq!(c.base_url(), "http://127.0.0.1:8888");
    }
}
