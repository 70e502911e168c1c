//! The live subscription: a parser for the native Server-Sent Events stream.

use crate::error::{Error, Result};
use crate::types::{Message, StreamEvent};

/// A live subscription to a queue's event stream; call [`Subscription::next`] in a loop.
#[derive(Debug)]
pub struct Subscription {
    resp: reqwest::Response,
    buf: Vec<u8>,
    ended: bool,
}

/// The fields of one SSE event gathered so far.
#[derive(Default)]
struct Pending {
    event: Option<String>,
    data: Vec<String>,
}

impl Subscription {
    pub(crate) fn new(resp: reqwest::Response) -> Subscription {
        Subscription {
            resp,
            buf: Vec::new(),
            ended: false,
        }
    }

    /// The next event, or `None` once the stream ended cleanly (after `dropped`).
    /// A stream cut short (the server stopped, or this consumer fell too far behind) is
    /// [`Error::Unreachable`].
    pub async fn next(&mut self) -> Result<Option<StreamEvent>> {
        let mut pending = Pending::default();
        loop {
            if self.ended {
                return Ok(None);
            }
            while let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                let line = String::from_utf8_lossy(&line[..line.len() - 1]);
                let line = line.strip_suffix('\r').unwrap_or(&line);
                if line.is_empty() {
                    if let Some(event) = finish(std::mem::take(&mut pending))? {
                        if event == StreamEvent::Queue("dropped".into()) {
                            self.ended = true;
                        }
                        return Ok(Some(event));
                    }
                    continue;
                }
                if line.starts_with(':') {
                    continue;
                }
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "event" => pending.event = Some(value.to_string()),
                    "data" => pending.data.push(value.to_string()),
                    _ => {}
                }
            }
            match self.resp.chunk().await.map_err(Error::from_reqwest)? {
                Some(chunk) => self.buf.extend_from_slice(&chunk),
                None => {
                    self.ended = true;
                    return Ok(None);
                }
            }
        }
    }
}

/// Turns a complete event into a [`StreamEvent`]; `None` for an event without fields.
fn finish(p: Pending) -> Result<Option<StreamEvent>> {
    let name = p.event.unwrap_or_else(|| "message".into());
    if p.data.is_empty() && name == "message" {
        return Ok(None);
    }
    if name == "message" {
        let data = p.data.join("\n");
        let message: Message = serde_json::from_str(&data)
            .map_err(|e| Error::Protocol(format!("bad message event: {e}")))?;
        return Ok(Some(StreamEvent::Message(message)));
    }
    Ok(Some(StreamEvent::Queue(name)))
}
