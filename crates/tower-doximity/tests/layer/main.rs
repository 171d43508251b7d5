//! The layer's integration tests, one binary, a module a topic. The session-mode tests run the
//! layer in process (`oneshot` through an axum router), the bearer tests over a real socket,
//! the Redis tests against a real `redis-server`; the mock provider answers over HTTPS
//! behind them all. Time moves through an injected clock: no sleeps.

#![allow(clippy::unwrap_used)] // Test helpers: a failure should panic.

#[path = "../support/redis_server.rs"]
mod redis_server;

mod harness;

mod bearer;
mod cookies;
mod dpop;
mod logout;
mod modes;
mod redis_store;
mod refresh;
mod session_check;
mod sign_in;
mod step_up;
mod stores;
mod timeouts;
