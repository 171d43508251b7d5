//! `cargo run -p axum-app`: the demo. See the crate docs for the configuration.

use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
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
