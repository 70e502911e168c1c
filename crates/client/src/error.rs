//! The client's one error type: what went wrong talking to the server, in variants a
//! caller can act on.

/// An error from a call to the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server could not be reached (refused, reset, timed out, or it went away
    /// mid-reply): worth retrying once it is back.
    #[error("server unreachable")]
    Unreachable(#[source] reqwest::Error),
    /// The server answered with an error in its JSON form (`{"error": {"code", "message"}}`).
    #[error("{status} {code}: {message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The error code (`not_found`, `queue_full`, `invalid_name`, …).
        code: String,
        /// The server's message.
        message: String,
    },
    /// The server's reply was not what the native API sends.
    #[error("unexpected reply: {0}")]
    Protocol(String),
    /// The server URL is not a valid base URL.
    #[error("invalid server URL {0:?}")]
    InvalidUrl(String),
}

impl Error {
    /// Whether the server was unreachable (so a retry may succeed).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Error::Unreachable(_))
    }

    /// Whether the server answered with this error code.
    pub fn is_code(&self, wanted: &str) -> bool {
        matches!(self, Error::Api { code, .. } if code == wanted)
    }

    /// Whether the server was reachable but temporarily unable (503, or a request that
    /// did not complete): a retry may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Unreachable(_) => true,
            Error::Api { status, .. } => *status == 503 || *status == 507,
            _ => false,
        }
    }

    pub(crate) fn from_reqwest(e: reqwest::Error) -> Error {
        if e.is_decode() {
            Error::Protocol(e.to_string())
        } else {
            Error::Unreachable(e)
        }
    }
}

/// The client's result type.
pub type Result<T> = std::result::Result<T, Error>;
