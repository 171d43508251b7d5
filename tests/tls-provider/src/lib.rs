//! Nothing to export: the test in `tests/` is the point of this crate.
