//! Benchmarks for doximity-rs (in progress).
