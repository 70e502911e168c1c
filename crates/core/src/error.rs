//! The core's error type: variants a frontend can map to its protocol's error form.

use crate::storage::StorageError;

/// Result alias for core operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in a broker operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A queue or subscription name breaks the naming rules.
    #[error("invalid name: {0}")]
    InvalidName(String),
    /// A parameter is out of range or malformed.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The named queue or subscription does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// A create found the queue already there.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The queue is at its configured max length or bytes and rejects pushes.
    #[error("queue {0} is full")]
    QueueFull(String),
    /// A message body is over the configured limit.
    #[error("message is {size} bytes; the limit is {limit}")]
    TooLarge {
        /// Size of the rejected body.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// Free disk space is below the watermark (or the disk is full): pushes are refused
    /// until space comes back; reads, acks and purges go on.
    #[error("disk full: {0}")]
    DiskFull(String),
    /// The store failed; the broker stops accepting writes.
    #[error("storage failure: {0}")]
    Storage(#[from] StorageError),
    /// A name is a queue where a key with a value was asked for, or the other way round
    /// (Redis `WRONGTYPE`): queues and keys share one namespace.
    #[error("wrong kind of name: {0}")]
    WrongType(String),
    /// A counter's value is not a number of its kind.
    #[error("{0}")]
    NotAnInteger(String),
    /// A counter's result is out of its range.
    #[error("{0}")]
    Overflow(String),
    /// The key/value namespace is at its configured `max_kv_bytes`.
    #[error("key/value store is full: {0}")]
    KvFull(String),
    /// The broker is shutting down or its store has failed earlier.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// The operation needs a queue with log retention (a cursor reset, a read of the
    /// retained log), and this queue consumes instead.
    #[error("queue {0} does not keep a log (set retention.mode to \"log\")")]
    NotALog(String),
    /// The subscription is a bare cursor (created with [`crate::Broker::subscribe_cursor`]):
    /// it holds no messages to take, lease, peek or stream; it is read with
    /// [`crate::Broker::read_cursor`] and moved with [`crate::Broker::seek`].
    #[error("subscription {0} is a cursor: read it from its position and move it by seek")]
    IsACursor(String),
}

impl Error {
    /// A short stable code for this error, used by faces in their replies.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidName(_) => "invalid_name",
            Error::InvalidArgument(_) => "invalid_argument",
            Error::NotFound(_) => "not_found",
            Error::AlreadyExists(_) => "already_exists",
            Error::QueueFull(_) => "queue_full",
            Error::TooLarge { .. } => "too_large",
            Error::DiskFull(_) => "disk_full",
            Error::Storage(_) => "storage_error",
            Error::Unavailable(_) => "unavailable",
            Error::WrongType(_) => "wrong_type",
            Error::NotAnInteger(_) => "not_an_integer",
            Error::Overflow(_) => "overflow",
            Error::KvFull(_) => "kv_full",
            Error::NotALog(_) => "not_a_log",
            Error::IsACursor(_) => "cursor_subscription",
        }
    }
}
