//! Shared set-up: a mock provider over HTTPS and a client that trusts only its CA.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub(crate) mod tls_server;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

use doximity::secret::ClientSecret;
use doximity::{AuthorizeRequest, Client, Clock, Config, PendingLogin, TokenSet};
use doximity_mock::{MockProvider, MockProviderBuilder};

pub(crate) const REDIRECT: &str = "http://127.0.0.1:3000/auth/doximity/callback";

/// A clock the test can move forward without sleeping.
#[derive(Clone, Default)]
pub(crate) struct TestClock(Arc<AtomicI64>);

impl TestClock {
    pub(crate) fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }

    pub(crate) fn clock(&self) -> Clock {
        let offset = self.0.clone();
        Clock::new(move || {
            let o = offset.load(Ordering::SeqCst);
            let now = SystemTime::now();
            if o >= 0 {
                now + Duration::from_secs(o.unsigned_abs())
            } else {
                now - Duration::from_secs(o.unsigned_abs())
            }
        })
    }
}

pub(crate) fn config(mock: &MockProvider) -> Config {
    let demo = mock.client();
    Config::new(
        demo.client_id,
        ClientSecret::new(demo.client_secret),
        REDIRECT.parse().unwrap(),
    )
    .with_issuer(&mock.issuer())
    .unwrap()
    .with_ca_cert_pem(mock.ca_pem().to_vec())
}

pub(crate) async fn start() -> MockProvider {
    builder().start().await.expect("mock provider starts")
}

pub(crate) fn builder() -> MockProviderBuilder {
    MockProvider::builder().auto_approve(true)
}

pub(crate) async fn client(mock: &MockProvider) -> Client {
    Client::discover(config(mock))
        .await
        .expect("discovery succeeds")
}

/// A browser stand-in: trusts only the mock's CA and follows no redirect.
pub(crate) fn browser(mock: &MockProvider) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(mock.rustls_client_config())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Sends the browser to the authorization URL (the mock auto-approves) and returns where the
/// provider redirected it.
pub(crate) async fn authorize(
    mock: &MockProvider,
    client: &Client,
    req: &AuthorizeRequest,
) -> (url::Url, PendingLogin) {
    let (url, pending) = client.authorize_url(req).await.unwrap();
    let response = browser(mock).get(url).send().await.unwrap();
    assert!(
        response.status().is_redirection(),
        "authorize answered {}",
        response.status()
    );
    let location = response.headers()["location"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    (location, pending)
}

/// A full login; panics if any step fails.
pub(crate) async fn login(
    mock: &MockProvider,
    client: &Client,
    req: &AuthorizeRequest,
) -> TokenSet {
    try_login(mock, client, req).await.expect("login succeeds")
}

pub(crate) async fn try_login(
    mock: &MockProvider,
    client: &Client,
    req: &AuthorizeRequest,
) -> Result<TokenSet, doximity::Error> {
    let (location, pending) = authorize(mock, client, req).await;
    client
        .complete_login(&pending, location.query().unwrap_or(""))
        .await
}
