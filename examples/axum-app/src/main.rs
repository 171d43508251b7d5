//! `cargo run -p axum-app`: the demo. See the crate docs for the configuration.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// `RUST_LOG` as a list of `target=level` directives (`info,tower_doximity=debug`), default
/// `info`. (`Targets` rather than `EnvFilter`: the same syntax for targets and levels, without
/// the regex engine, which the first build would otherwise compile.)
fn log_filter() -> Targets {
    std::env::var("RUST_LOG")
        .ok()
        .and_then(|directives| directives.parse().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().finish().with(log_filter()).init();
    let demo = axum_app::start(axum_app::process_env()).await?;
    match &demo.mock {
        Some(mock) => {
            tracing::info!(
                url = %demo.url(),
                provider = %mock.issuer(),
                sign_in_pages = %mock.browser_base(),
                "demo running with the embedded mock Doximity provider (no DOXIMITY_CLIENT_ID set)"
            );
            tracing::info!(
                "open {} in any browser and sign in as a demo clinician (no account, no certificate to trust)",
                demo.url()
            );
        }
        None => tracing::info!(url = %demo.url(), "demo running"),
    }
    tokio::signal::ctrl_c().await?;
    demo.shutdown().await;
    Ok(())
}
