//! HTTP faces (to be written).
