//! Replies that carry a [`Delivery`]: the messages count as delivered only once they
//! were handed to the client's connection.
//!
//! The reply body is the JSON, then one yield (so hyper flushes the JSON to the socket),
//! then a confirm: the confirm (the durable removal or lease) runs after the JSON was
//! handed to the connection, and the chunked reply ends only once it is durable. A client that reads a complete reply knows its take is final; a
//! connection that closes first drops the body, and the delivery's messages return to
//! the head of the queue. If the confirm fails the body errors, and the client sees a
//! broken reply rather than a complete one.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use godwit_core::Delivery;
use http_body::Frame;

use crate::error::ApiError;
use crate::native::render::MessagesReply;

type Confirming = Pin<Box<dyn Future<Output = godwit_core::Result<()>> + Send>>;

/// The reply body of a delivery: the JSON, then the confirm.
struct ConfirmingBody {
    json: Option<Bytes>,
    delivery: Option<Delivery>,
    flushed: bool,
    confirming: Option<Confirming>,
}

impl http_body::Body for ConfirmingBody {
    type Data = Bytes;
    type Error = godwit_core::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(json) = self.json.take() {
            if let Some(d) = self.delivery.as_mut() {
                d.written();
            }
            return Poll::Ready(Some(Ok(Frame::data(json))));
        }
        if !self.flushed {
            // Hand the turn back once: hyper flushes what it buffered (the JSON) to the
            // socket before it asks for the next frame, so the confirm runs once the
            // bytes were handed to the connection, not while they sit in hyper's buffer.
            // A failed flush drops the body, and with it the unconfirmed delivery.
            self.flushed = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if let Some(delivery) = self.delivery.take() {
            self.confirming = Some(Box::pin(delivery.confirm()));
        }
        match self.confirming.as_mut() {
            Some(confirm) => match confirm.as_mut().poll(cx) {
                Poll::Ready(result) => {
                    self.confirming = None;
                    Poll::Ready(result.err().map(Err))
                }
                Poll::Pending => Poll::Pending,
            },
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.json.is_none() && self.delivery.is_none() && self.confirming.is_none()
    }
}

/// A 200 reply with the delivery's messages, confirmed once written.
pub fn reply(delivery: Delivery) -> Result<Response, ApiError> {
    let reply = MessagesReply::new(delivery.messages().to_vec());
    let json = serde_json::to_vec(&reply).map_err(|e| {
        ApiError::from_status(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    })?;
    if delivery.is_empty() {
        return Ok((
            [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            json,
        )
            .into_response());
    }
    Ok(confirming(
        Bytes::from(json),
        HeaderValue::from_static("application/json"),
        delivery,
    ))
}

/// A 200 reply of `bytes` (of `content_type`) that confirms `delivery` once they were
/// handed to the connection: what every dialect's read that consumes answers with.
pub(crate) fn confirming(bytes: Bytes, content_type: HeaderValue, delivery: Delivery) -> Response {
    let body = ConfirmingBody {
        json: Some(bytes),
        delivery: Some(delivery),
        flushed: false,
        confirming: None,
    };
    let mut response = Response::new(Body::new(body));
    response.headers_mut().insert(CONTENT_TYPE, content_type);
    response
}

/// Takes from `queue` as `opts` asks for a dialect that answers with the message itself:
/// a delivery whose every record the store could not read (logged and counted by the
/// core) is confirmed, which consumes them, and the take made again with what is left
/// of the wait. The delivery returned is empty (nothing came within the wait) or holds
/// at least one readable message.
pub(crate) async fn take_readable(
    broker: &godwit_core::Broker,
    queue: &str,
    opts: &godwit_core::ReadOptions,
) -> godwit_core::Result<Delivery> {
    let started = std::time::Instant::now();
    let mut opts = opts.clone();
    let wait = opts.wait;
    loop {
        let delivery = broker.take(queue, opts.clone()).await?;
        if delivery.is_empty() || !delivery.messages().is_empty() {
            return Ok(delivery);
        }
        delivery.confirm().await?;
        opts.wait = wait.saturating_sub(started.elapsed());
    }
}
