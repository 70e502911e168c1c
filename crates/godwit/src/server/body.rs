//! Body wrappers of the HTTP face: a request body that fails when the client stalls, and
//! a response body that keeps its request counted as in flight until it is sent.

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::oneshot;
use tokio::time::Sleep;

use super::activity::InFlight;

/// Errors a wrapped body passes on.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The error of a request body that stalled longer than the body timeout.
#[derive(Debug)]
pub struct BodyStalled(pub Duration);

impl std::fmt::Display for BodyStalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no request body data for {} ms", self.0.as_millis())
    }
}

impl std::error::Error for BodyStalled {}

/// A request body that fails with [`BodyStalled`] when, while it is being read, no data
/// arrives for `timeout`, and says so on `stalled` so the request can be answered with
/// a 408 whatever its handler does with the error. The clock runs only while the body is
/// polled, so a handler that reads late is not punished for it; it restarts with every
/// frame, so a slow but steady upload is not cut off.
pub struct StallTimeout<B> {
    inner: B,
    timeout: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    stalled: Option<oneshot::Sender<()>>,
}

impl<B> StallTimeout<B> {
    /// Wraps `inner`; `stalled` fires if the body stalls.
    pub fn new(inner: B, timeout: Duration, stalled: oneshot::Sender<()>) -> Self {
        Self {
            inner,
            timeout,
            sleep: None,
            stalled: Some(stalled),
        }
    }
}

impl<B> Body for StallTimeout<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.sleep = None;
                return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
            }
            Poll::Pending => {}
        }
        let timeout = this.timeout;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                if let Some(stalled) = this.stalled.take() {
                    let _ = stalled.send(());
                }
                Poll::Ready(Some(Err(Box::new(BodyStalled(timeout)))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that holds its request's [`InFlight`] mark until it is dropped,
/// which hyper does once the body is sent or the connection is gone.
pub struct Counted<B> {
    inner: B,
    _in_flight: InFlight,
}

impl<B> Counted<B> {
    /// Wraps `inner`.
    pub fn new(inner: B, in_flight: InFlight) -> Self {
        Self {
            inner,
            _in_flight: in_flight,
        }
    }
}

impl<B: Body + Unpin> Body for Counted<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
