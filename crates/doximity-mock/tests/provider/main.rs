//! Integration tests: the mock provider over real HTTPS sockets, with a client
//! that trusts only the mock's CA and never follows redirects.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is the failure report"
)]

mod api;
mod authorize;
mod browser_http;
mod device;
mod discovery;
mod dpop;
mod faults;
mod logout;
mod misc;
mod rate_limit;
mod stepup;
mod support;
mod token;
mod userinfo;
