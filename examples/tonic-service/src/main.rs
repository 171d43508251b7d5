//! A tonic service behind the Doximity layer (in progress).
fn main() {}
