//! `cargo run -p tonic-service --bin client`: calls `clinic.v1.Directory` with a bearer token.
//!
//! The token: `DOXIMITY_ACCESS_TOKEN` when set; otherwise the client signs in at the provider
//! of the configuration contract (`DOXIMITY_ISSUER`, `DOXIMITY_CLIENT_ID`, ...), which only
//! works with the auto-approving mock the server embeds (its env file has every setting).
//! `GRPC_SERVER` is the server's URL (default `http://127.0.0.1:50051`).

#![allow(clippy::print_stdout)] // A command-line tool: its output is the point.

use anyhow::Context as _;
use doximity::{Client, Config};
use tonic_service::pb::directory_client::DirectoryClient;
use tonic_service::pb::{MyProfileRequest, WhoAmIRequest};
use tonic_service::{https_client, sign_in_at_mock, with_bearer};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let server = env("GRPC_SERVER").unwrap_or_else(|| "http://127.0.0.1:50051".to_owned());
    let token = match env("DOXIMITY_ACCESS_TOKEN") {
        Some(token) => token,
        None => {
            let config = Config::from_env()?;
            let ca = env("DOXIMITY_CA_CERT").context("DOXIMITY_CA_CERT (the mock's CA)")?;
            let browser = https_client(&std::fs::read(&ca).with_context(|| ca.clone())?)?;
            let scopes = config.scopes().clone();
            let client = Client::discover(config).await?;
            let tokens = sign_in_at_mock(&client, &browser, &scopes).await?;
            println!("signed in at the mock as {}", tokens.claims.sub);
            tokens.access_token.secret().clone()
        }
    };
    let mut directory = DirectoryClient::connect(server.clone())
        .await
        .with_context(|| format!("connecting to {server}"))?;

    let me = directory
        .who_am_i(with_bearer(WhoAmIRequest {}, &token)?)
        .await?
        .into_inner();
    println!(
        "WhoAmI: sub={} scopes=[{}] authenticated_by={}",
        me.sub,
        me.scopes.join(" "),
        me.authenticated_by
    );
    match directory
        .my_profile(with_bearer(MyProfileRequest {}, &token)?)
        .await
    {
        Ok(p) => {
            let p = p.into_inner();
            println!("MyProfile: {} {} ({})", p.name, p.credentials, p.specialty);
        }
        Err(status) => println!("MyProfile: {:?}: {}", status.code(), status.message()),
    }
    let anonymous = directory.who_am_i(WhoAmIRequest {}).await;
    if let Err(status) = anonymous {
        println!(
            "WhoAmI without a token: {:?}: {}",
            status.code(),
            status.message()
        );
    }
    Ok(())
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}
