//! The request line as httpmq reads it: the raw path split on `/` into one or two
//! non-empty segments (before any decoding, so `%2F` stays inside a name: fix 6.2 #2),
//! each percent-decoded with `+` kept as `+`, and the method matched case-sensitively.
//! Nothing here calls the broker.

use axum::http::Method;
use percent_encoding::percent_decode_str;
use thiserror::Error;

/// What an httpmq request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `POST /{topic}/{user}`: subscribe.
    Subscribe(Pair),
    /// `DELETE /{topic}/{user}`: unsubscribe.
    Unsubscribe(Pair),
    /// `GET /{topic}/{user}`: take the next message.
    Fetch(Pair),
    /// `HEAD /{topic}/{user}`: what GET would answer, without consuming.
    Peek(Pair),
    /// `POST /{topic}`: publish the body.
    Publish(String),
}

/// A topic and a username, both decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// The topic (a core queue).
    pub topic: String,
    /// The username (a named subscription on the topic's queue).
    pub user: String,
}

/// Why a request is not an httpmq command.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RequestError {
    /// No route has this method and path shape (httpmq's empty 404).
    #[error("no such route")]
    NoRoute,
    /// A segment does not decode to UTF-8 text (an empty 400).
    #[error("a name is not UTF-8 once percent-decoded")]
    BadName,
}

/// Parses `method` and the raw (still percent-encoded) `path` into a [`Command`].
pub fn parse(method: &Method, path: &str) -> Result<Command, RequestError> {
    let rest = path.strip_prefix('/').ok_or(RequestError::NoRoute)?;
    let segments: Vec<&str> = rest.split('/').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err(RequestError::NoRoute);
    }
    match segments.as_slice() {
        [topic] if *method == Method::POST => Ok(Command::Publish(decode(topic)?)),
        [topic, user] => {
            let make: fn(Pair) -> Command = match *method {
                Method::POST => Command::Subscribe,
                Method::DELETE => Command::Unsubscribe,
                Method::GET => Command::Fetch,
                Method::HEAD => Command::Peek,
                _ => return Err(RequestError::NoRoute),
            };
            Ok(make(Pair {
                topic: decode(topic)?,
                user: decode(user)?,
            }))
        }
        _ => Err(RequestError::NoRoute),
    }
}

/// One segment, percent-decoded (`+` is not a space).
fn decode(segment: &str) -> Result<String, RequestError> {
    percent_decode_str(segment)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| RequestError::BadName)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(topic: &str, user: &str) -> Pair {
        Pair {
            topic: topic.into(),
            user: user.into(),
        }
    }

    #[test]
    fn routes_by_method_and_segment_count() {
        assert_eq!(
            parse(&Method::POST, "/t/u"),
            Ok(Command::Subscribe(pair("t", "u")))
        );
        assert_eq!(
            parse(&Method::DELETE, "/t/u"),
            Ok(Command::Unsubscribe(pair("t", "u")))
        );
        assert_eq!(
            parse(&Method::GET, "/t/u"),
            Ok(Command::Fetch(pair("t", "u")))
        );
        assert_eq!(
            parse(&Method::HEAD, "/t/u"),
            Ok(Command::Peek(pair("t", "u")))
        );
        assert_eq!(parse(&Method::POST, "/t"), Ok(Command::Publish("t".into())));
        for (m, p) in [
            (Method::GET, "/t"),
            (Method::DELETE, "/t"),
            (Method::PUT, "/t/u"),
            (Method::POST, "/"),
            (Method::GET, "/"),
            (Method::POST, "/t/"),
            (Method::POST, "/t/u/"),
            (Method::POST, "/a/b/c"),
            (Method::GET, "//u"),
            (Method::POST, ""),
        ] {
            assert_eq!(parse(&m, p), Err(RequestError::NoRoute), "{m} {p}");
        }
        let lower = Method::from_bytes(b"get").unwrap();
        assert_eq!(parse(&lower, "/t/u"), Err(RequestError::NoRoute));
    }

    #[test]
    fn names_are_split_before_decoding_and_plus_is_kept() {
        assert_eq!(
            parse(&Method::POST, "/x%2Fy"),
            Ok(Command::Publish("x/y".into()))
        );
        assert_eq!(
            parse(&Method::GET, "/a%20b/u+1"),
            parse(&Method::GET, "/a%20b/u%2B1")
        );
        assert_eq!(
            parse(&Method::GET, "/a%20b/u+1"),
            Ok(Command::Fetch(pair("a b", "u+1")))
        );
        assert_eq!(
            parse(&Method::POST, "/caf%C3%A9/u"),
            Ok(Command::Subscribe(pair("café", "u")))
        );
        assert_eq!(parse(&Method::POST, "/%FF/u"), Err(RequestError::BadName));
    }
}
