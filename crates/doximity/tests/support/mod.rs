//! Shared set-up: a mock provider over HTTPS and a client that trusts only its CA.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub(crate) mod tls_server;

use doximity::{AuthorizeRequest, Client, Config, PendingLogin, TokenSet};
use doximity_mock::{MockProvider, MockProviderBuilder};
pub(crate) use doximity_test::{REDIRECT, TestClock};

pub(crate) fn config(mock: &MockProvider) -> Config {
    doximity_test::demo_config(mock, REDIRECT)
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

/// A client of the mock on a clock the test moves.
pub(crate) async fn clocked_client(mock: &MockProvider) -> (Client, TestClock) {
    let clock = TestClock::default();
    let client = Client::discover_with_clock(config(mock), clock.clock())
        .await
        .expect("discovery succeeds");
    (client, clock)
}

/// A login that must fail (any error).
pub(crate) async fn assert_login_fails(mock: &MockProvider, client: &Client) {
    assert!(
        try_login(mock, client, &AuthorizeRequest::new())
            .await
            .is_err(),
        "the login succeeded"
    );
}

/// A browser stand-in: trusts only the mock's CA and follows no redirect.
pub(crate) fn browser(mock: &MockProvider) -> reqwest::Client {
    doximity_test::https_client(mock)
}

/// Sends the browser to the authorization URL (the mock auto-approves) and returns where the
/// provider redirected it.
pub(crate) async fn authorize(
    mock: &MockProvider,
    client: &Client,
    req: &AuthorizeRequest,
) -> (url::Url, PendingLogin) {
    doximity_test::authorize(client, &browser(mock), req).await
}

/// A started mock, a client of it, and the tokens of one full login with `req`.
pub(crate) async fn signed_in(req: &AuthorizeRequest) -> (MockProvider, Client, TokenSet) {
    let mock = start().await;
    let client = client(&mock).await;
    let tokens = login(&mock, &client, req).await;
    (mock, client, tokens)
}

/// A full login; panics if any step fails.
pub(crate) async fn login(
    mock: &MockProvider,
    client: &Client,
    req: &AuthorizeRequest,
) -> TokenSet {
    doximity_test::sign_in(client, &browser(mock), req).await
}

pub(crate) async fn try_login(
    mock: &MockProvider,
    client: &Client,
    req: &AuthorizeRequest,
) -> Result<TokenSet, doximity::Error> {
    doximity_test::try_sign_in(client, &browser(mock), req).await
}
