//! The bare counterpart of the demo (`axum-app`) for the `deployed` benchmark: the same
//! runtime (`#[tokio::main]`, the multi-thread scheduler with one worker per CPU), the same
//! `axum::serve`, and a `GET /me` that answers the same shape of JSON as the demo's, built the
//! same way, but with no layer in front. It ignores the `Cookie` header the benchmark sends it.
//!
//! `APP_ADDR` is the listen address (as for the demo). Not meant to be run by hand:
//! `cargo run --release -p doximity-benches --bin deployed` starts it.

use anyhow::Context as _;
use axum::Router;
use axum::response::Json;
use axum::routing::get;

/// A `sub` as long as the mock's (a UUID), so the body is as long as the demo's.
const SUB: &str = "00000000-0000-4000-8000-000000000000";

async fn me() -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "sub": SUB,
        "scopes": "openid",
    }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::var("APP_ADDR").context("APP_ADDR is not set")?;
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on APP_ADDR={addr}"))?;
    let app = Router::new().route("/me", get(me));
    axum::serve(listener, app).await?;
    Ok(())
}
