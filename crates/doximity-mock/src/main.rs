//! `cargo run -p doximity-mock`: a mock Doximity provider for a person with a browser.
//!
//! Environment: `MOCK_ADDR` (default `127.0.0.1:0`), `MOCK_REDIRECT_URI` and
//! `MOCK_POST_LOGOUT_REDIRECT_URI` (comma-separated, added to the demo client),
//! `RUST_LOG` (tracing filter, default `info`).

use std::net::SocketAddr;

use doximity_mock::MockProvider;

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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
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
