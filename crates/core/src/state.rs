//! The in-memory model, to be written.
