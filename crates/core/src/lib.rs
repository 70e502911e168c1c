//! The Godwit broker core: the one model every face (HTTP, RESP, memcache) maps onto.
//!
//! What lives here: queues and their settings, messages and their delivery state
//! ([`state`]), the async [`Broker`] facade that frontends call, and the [`storage`]
//! boundary a durable store implements. What does not: sockets, protocol types, or any
//! knowledge of files — those belong to frontends and stores.

pub mod broker;
pub mod clock;
pub mod error;
pub mod model;
pub mod name;
pub mod state;
pub mod storage;

pub use broker::{Broker, BrokerConfig};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, Result};
pub use model::*;
pub use storage::{Location, Op, PinnedRecord, RecordSource, Storage, StorageError, Ticket};
