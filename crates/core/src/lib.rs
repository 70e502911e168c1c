//! The Godwit broker core: the one model every face (HTTP, RESP, memcache) maps onto.
//!
//! What lives here: queues and their settings, messages and their delivery state
//! (`state`, private: faces see it only through the [`Broker`]), the log's vocabulary
//! ([`op`]), the async [`Broker`] facade that faces call (with [`Delivery`] and
//! [`Session`]), validation of everything a client sends ([`validate`]), and the
//! [`storage`] boundary a durable store implements, with two doubles for tests
//! ([`storage::memory`], [`storage::faulty`]). What does not: sockets, protocol types,
//! or any knowledge of files — those belong to faces and stores.

pub mod broker;
pub mod clock;
pub mod config;
pub mod error;
pub mod kv;
pub mod model;
pub mod name;
pub mod op;
mod state;
pub mod storage;
pub mod validate;

pub use broker::{
    Broker, BrokerConfig, Delivery, Offer, QueueEvent, Session, Stream, StreamItem, StreamMode,
    StreamOptions, StreamPolicy,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, Result};
pub use kv::*;
pub use model::*;
pub use storage::{Location, Op, PinnedRecord, RecordSource, Storage, StorageError, Ticket};
