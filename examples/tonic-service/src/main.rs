//! `cargo run -p tonic-service`: the gRPC server behind the Doximity layer in bearer mode.
//!
//! With `DOXIMITY_CLIENT_ID` set it uses the configured provider (`docs/configuration.md`).
//! Without it, it starts the mock provider in-process (auto-approving sign-ins) and writes the
//! client's settings, the demo client's secret included, to an env file readable only by you;
//! the log line says how to run the client with it. `GRPC_ADDR` sets the listen address
//! (default `127.0.0.1:50051`).

use anyhow::Context as _;
use doximity::secret::ClientSecret;
use doximity::{Client, Config};
use doximity_mock::MockProvider;
use tower_doximity::{BearerConfig, DoximityAuth, Key};
use tracing_subscriber::EnvFilter;

const DEFAULT_ADDR: &str = "127.0.0.1:50051";
const REDIRECT: &str = "http://127.0.0.1:3000/auth/doximity/callback";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let addr = env("GRPC_ADDR").unwrap_or_else(|| DEFAULT_ADDR.to_owned());
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on GRPC_ADDR={addr}"))?;
    let addr = listener.local_addr()?;
    // Bearer mode only matters here; the cookie key is set so the layer does not warn about
    // browser sessions this service never has.
    let bearer = BearerConfig::new();
    let (auth, mock) = if env("DOXIMITY_CLIENT_ID").is_some() {
        let auth = DoximityAuth::from_env().await?;
        (auth.with_bearer(bearer), None)
    } else {
        let mock = MockProvider::builder()
            .auto_approve(true)
            .redirect_uri(REDIRECT)
            .start()
            .await
            .context("starting the mock provider")?;
        let demo = mock.client();
        let config = Config::new(
            demo.client_id.clone(),
            ClientSecret::new(demo.client_secret.clone()),
            REDIRECT.parse()?,
        )
        .with_issuer(&mock.issuer())?
        .with_ca_cert_pem(mock.ca_pem().to_vec());
        let client = Client::discover(config).await?;
        let auth = DoximityAuth::new(client)
            .with_cookie_key(Key::generate())
            .with_bearer(bearer);
        let env_file = write_client_env(&mock, &format!("http://{addr}"))?;
        tracing::info!(
            provider = %mock.issuer(),
            "no DOXIMITY_CLIENT_ID: using the embedded mock Doximity provider"
        );
        tracing::info!(
            "in another shell: set -a && . {} && set +a && cargo run -p tonic-service --bin client",
            env_file.display()
        );
        (auth, Some((mock, env_file)))
    };
    tracing::info!(%addr, "clinic.v1.Directory listening (gRPC, h2c)");
    tonic_service::serve(listener, &auth, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    if let Some((_, env_file)) = mock {
        let _ = std::fs::remove_file(env_file);
    }
    Ok(())
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Writes the client's settings to `$TMPDIR/tonic-service-<pid>.env`, readable only by the
/// owner (it holds the demo client's secret).
fn write_client_env(mock: &MockProvider, server: &str) -> anyhow::Result<std::path::PathBuf> {
    use std::io::Write as _;

    let demo = mock.client();
    let path = std::env::temp_dir().join(format!("tonic-service-{}.env", std::process::id()));
    let body = format!(
        "DOXIMITY_ISSUER='{}'\nDOXIMITY_CA_CERT='{}'\nDOXIMITY_CLIENT_ID='{}'\n\
         DOXIMITY_CLIENT_SECRET='{}'\nDOXIMITY_SCOPES='openid profile:read:basic'\nGRPC_SERVER='{}'\n",
        mock.issuer(),
        mock.ca_path().display(),
        demo.client_id,
        demo.client_secret,
        server,
    );
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(body.as_bytes())?;
    Ok(path)
}
