//! RestMQ's dialect on the main listener; see `specs/restmq.md`.
//!
//! The text layer lives here: Python-2 JSON text and numeric conversion ([`pyjson`]),
//! argument and path-name decoding ([`args`]), the exact-byte replies ([`reply`]) and
//! the ACL file ([`acl`]). The routes come on top of these.

pub mod acl;
pub mod args;
pub mod pyjson;
pub mod reply;
