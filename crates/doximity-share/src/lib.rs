//! HTML helpers for Doximity (in progress).
