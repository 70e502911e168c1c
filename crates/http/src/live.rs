//! Live delivery over a streaming HTTP body, shared by every dialect's streams (native
//! SSE, RestMQ's Comet and SSE): the hub's items rendered by the dialect, each offer
//! reported written only after hyper was given the chance to flush it.
//!
//! The body yields an offer's frames, hands the turn back once (hyper flushes what it
//! buffered to the socket before it asks for the next frame), then calls
//! [`godwit_core::Offer::written`]. A connection that closes first drops the body, and
//! the offer goes to another consumer or back to the queue.
//!
//! A stream the hub ends (a consumer that fell too far behind, or the server stopping)
//! ends the body with an error, so the connection is aborted and the client can tell it
//! was cut off; a stream the dialect ends on a queue event (a purge) ends cleanly.

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};

use futures_util::Stream as FuturesStream;
use godwit_core::{Message, Offer, QueueEvent, Stream, StreamItem};

/// How often an idle stream sends a heartbeat (an SSE comment, a WebSocket ping), so
/// proxies keep it open.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// An event stream as a reply: `text/event-stream` with a heartbeat comment every
/// [`HEARTBEAT`] while idle. Every SSE route (native, RestMQ, the stats stream)
/// answers through it.
pub fn sse_response<S, E>(events: S) -> Response
where
    S: FuturesStream<Item = Result<Event, E>> + Send + 'static,
    E: Into<axum::BoxError>,
{
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(HEARTBEAT))
        .into_response()
}

/// How a dialect writes a live stream.
pub trait Render: Unpin {
    /// One frame of the body (an SSE event, a line of bytes).
    type Frame;

    /// The frame of one delivered message.
    fn message(&self, m: &Message) -> Self::Frame;

    /// What a queue event writes (if anything) and whether the stream ends after it.
    fn event(&self, e: QueueEvent) -> (Option<Self::Frame>, bool);
}

/// Why a live body broke off: the hub ended the stream (the consumer fell too far
/// behind, or the server is stopping).
#[derive(Debug, thiserror::Error)]
#[error("the live stream was cut off (too far behind, or the server is stopping)")]
pub struct CutOff;

enum State {
    /// Waiting for the next item.
    Next,
    /// The offer's frames are yielded: hand the turn back once, so hyper flushes them.
    Flushing(Offer),
    /// The turn came back: report the offer written.
    Report(Offer),
}

/// A live stream as a body: a [`FuturesStream`] of the dialect's frames.
pub struct LiveBody<R: Render> {
    stream: Option<Stream>,
    render: R,
    state: State,
    /// Frames still to yield, last first.
    pending: Vec<R::Frame>,
}

impl<R: Render> LiveBody<R> {
    /// The body of `stream`, written by `render`.
    pub fn new(stream: Stream, render: R) -> Self {
        Self {
            stream: Some(stream),
            render,
            state: State::Next,
            pending: Vec::new(),
        }
    }
}

impl<R: Render> FuturesStream for LiveBody<R>
where
    R::Frame: Unpin,
{
    type Item = Result<R::Frame, CutOff>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(frame) = this.pending.pop() {
                return Poll::Ready(Some(Ok(frame)));
            }
            match std::mem::replace(&mut this.state, State::Next) {
                State::Flushing(offer) => {
                    this.state = State::Report(offer);
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                State::Report(offer) => offer.written(),
                State::Next => {}
            }
            let Some(stream) = this.stream.as_mut() else {
                return Poll::Ready(None);
            };
            // The hub's receive is cancel-safe: a future dropped while pending loses
            // nothing.
            let item = match Box::pin(stream.next()).as_mut().poll(cx) {
                Poll::Ready(item) => item,
                Poll::Pending => return Poll::Pending,
            };
            match item {
                None => {
                    this.stream = None;
                    return Poll::Ready(Some(Err(CutOff)));
                }
                Some(StreamItem::Event(e)) => {
                    let (frame, end) = this.render.event(e);
                    if end {
                        this.stream = None;
                    }
                    if let Some(frame) = frame {
                        return Poll::Ready(Some(Ok(frame)));
                    }
                }
                Some(StreamItem::Offer(offer)) => {
                    let render = &this.render;
                    this.pending = offer
                        .messages()
                        .iter()
                        .rev()
                        .map(|m| render.message(m))
                        .collect();
                    this.state = State::Flushing(offer);
                }
            }
        }
    }
}
