//! `cargo run -p doximity-mock`: a mock Doximity provider for a person with a browser.
//!
//! Environment: `MOCK_ADDR` (default `127.0.0.1:0`), `MOCK_REDIRECT_URI` and
//! `MOCK_POST_LOGOUT_REDIRECT_URI` (comma-separated, added to the demo client),
//! `RUST_LOG` (`target=level` directives, default `info`).

use std::net::SocketAddr;

use doximity_mock::MockProvider;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

fn list(name: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[tokio::main]
#[allow(clippy::print_stdout)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `RUST_LOG` as `target=level` directives (no regex engine to compile).
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|directives| directives.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO));
    tracing_subscriber::fmt().finish().with(filter).init();
    let addr: SocketAddr = std::env::var("MOCK_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:0".to_owned())
        .parse()
        .map_err(|e| format!("MOCK_ADDR: {e}"))?;
    let mut builder = MockProvider::builder().bind(addr);
    for uri in list("MOCK_REDIRECT_URI") {
        builder = builder.redirect_uri(uri);
    }
    for uri in list("MOCK_POST_LOGOUT_REDIRECT_URI") {
        builder = builder.post_logout_redirect_uri(uri);
    }
    let mock = builder.start().await?;
    let client = mock.client();
    println!("Doximity mock provider");
    println!("  issuer:          {}", mock.issuer());
    println!(
        "  discovery:       {}/.well-known/openid-configuration",
        mock.issuer()
    );
    println!("  CA certificate:  {}", mock.ca_path().display());
    println!("  client_id:       {}", client.client_id);
    println!("  client_secret:   {}", client.client_secret);
    println!("  redirect URIs:   {}", client.redirect_uris.join(", "));
    println!(
        "  post-logout:     {}",
        client.post_logout_redirect_uris.join(", ")
    );
    for clinician in mock.clinicians() {
        println!(
            "  clinician:       {} {} ({}) sub={}",
            clinician.name, clinician.credentials, clinician.specialty, clinician.sub
        );
    }
    println!("Press Ctrl-C to stop.");
    tokio::signal::ctrl_c().await?;
    mock.shutdown().await;
    Ok(())
}
