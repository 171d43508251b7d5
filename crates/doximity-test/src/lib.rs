//! Test support shared by the workspace's tests (never published).
//!
//! - [`TestClock`]: time the tests move forward instead of sleeping;
//! - [`config`] / [`demo_config`]: a [`doximity::Config`] for the mock provider that trusts
//!   its CA, and nothing else;
//! - [`https_client`] and [`Browser`]: HTTPS clients that trust the mock's CA only (checks are
//!   never turned off), the second with a cookie jar;
//! - [`authorize`] / [`sign_in`]: drive the mock's authorization endpoint over HTTP to sign in;
//! - [`oneshot`]: one request through a tower service, its body, its cookies.

mod browser;
mod clock;
pub mod oneshot;

use doximity::secret::ClientSecret;
use doximity::{AuthorizeRequest, Client, Config, PendingLogin, TokenSet};
use doximity_mock::{MockProvider, MockProviderBuilder};

pub use browser::{Browser, Hop};
pub use clock::TestClock;

/// The redirect URI of the tests that serve no callback themselves.
pub const REDIRECT: &str = "http://127.0.0.1:3000/auth/doximity/callback";

/// A mock provider that approves every authorization request by itself (as its first
/// clinician) and accepts `redirect` for the demo client; more options on the builder.
pub fn auto_approving(redirect: &str) -> MockProviderBuilder {
    MockProvider::builder()
        .auto_approve(true)
        .redirect_uri(redirect)
}

/// [`auto_approving`], started.
///
/// # Panics
///
/// When the mock cannot start.
pub async fn start_auto_approving(redirect: &str) -> MockProvider {
    auto_approving(redirect)
        .start()
        .await
        .expect("the mock provider starts")
}

/// A configuration for the client `client_id` / `secret` registered at `mock`, returning to
/// `redirect`; it trusts the mock's CA.
///
/// # Panics
///
/// When `redirect` is not a URL or the mock's issuer is refused.
pub fn config(mock: &MockProvider, client_id: &str, secret: &str, redirect: &str) -> Config {
    Config::new(
        client_id.to_owned(),
        ClientSecret::new(secret.to_owned()),
        redirect.parse().expect("the redirect is a URL"),
    )
    .with_issuer(&mock.issuer())
    .expect("the mock's issuer is accepted")
    .with_ca_cert_pem(mock.ca_pem().to_vec())
}

/// [`config`] for the mock's demo client.
pub fn demo_config(mock: &MockProvider, redirect: &str) -> Config {
    let demo = mock.client();
    config(mock, &demo.client_id, &demo.client_secret, redirect)
}

/// An HTTPS client whose only trusted root is the mock's CA; it follows no redirect, so a
/// test sees every `Location`.
///
/// # Panics
///
/// When the client cannot be built.
pub fn https_client(mock: &MockProvider) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(mock.rustls_client_config())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("the HTTPS client builds")
}

/// [`https_client`] that keeps cookies, as a browser keeps the provider's session cookie: a
/// second visit to the provider finds the person signed in there (for `max_age`,
/// `prompt=login` and `acr_values` step-ups).
///
/// # Panics
///
/// When the client cannot be built.
pub fn https_browser(mock: &MockProvider) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(mock.rustls_client_config())
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .expect("the HTTPS client builds")
}

/// Sends `browser` to the authorization URL of `req` (the mock approves by itself) and returns
/// where the provider redirected it, with the pending login.
///
/// # Panics
///
/// When the authorization URL cannot be built or the provider does not redirect.
pub async fn authorize(
    client: &Client,
    browser: &reqwest::Client,
    req: &AuthorizeRequest,
) -> (url::Url, PendingLogin) {
    let (url, pending) = client
        .authorize_url(req)
        .await
        .expect("the authorization URL builds");
    let response = browser.get(url).send().await.expect("the provider answers");
    assert!(
        response.status().is_redirection(),
        "authorize answered {}",
        response.status()
    );
    (location_url(response.headers()), pending)
}

/// A full sign-in at the mock (auto-approving) with `req`; its error, if any.
pub async fn try_sign_in(
    client: &Client,
    browser: &reqwest::Client,
    req: &AuthorizeRequest,
) -> Result<TokenSet, doximity::Error> {
    let (location, pending) = authorize(client, browser, req).await;
    client
        .complete_login(&pending, location.query().unwrap_or(""))
        .await
}

/// A full sign-in at the mock (auto-approving) with `req`.
///
/// # Panics
///
/// When any step fails.
pub async fn sign_in(
    client: &Client,
    browser: &reqwest::Client,
    req: &AuthorizeRequest,
) -> TokenSet {
    try_sign_in(client, browser, req)
        .await
        .expect("the sign-in succeeds")
}

/// The `Location` header of a response, as an absolute URL.
///
/// # Panics
///
/// When there is none or it is not an absolute URL.
pub fn location_url(headers: &http::HeaderMap) -> url::Url {
    headers
        .get(http::header::LOCATION)
        .expect("a Location header")
        .to_str()
        .expect("an ASCII Location")
        .parse()
        .expect("an absolute Location")
}

/// The path and query of `url`, as the app's router sees the request.
pub fn path_and_query(url: &url::Url) -> String {
    format!("{}?{}", url.path(), url.query().unwrap_or_default())
}

/// `s` encoded for a query string.
pub fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Follows, with `browser`, the redirect to the provider that a login route answered (`res`);
/// the mock approves by itself and sends the browser back: returns the path and query of that
/// callback, as the app's router sees it.
///
/// # Panics
///
/// When the provider does not redirect.
pub async fn at_provider<B>(browser: &reqwest::Client, res: &http::Response<B>) -> String {
    let at = browser
        .get(oneshot::location(res))
        .send()
        .await
        .expect("the provider answers");
    assert!(at.status().is_redirection(), "{}", at.status());
    path_and_query(&location_url(at.headers()))
}

/// The `name=value` of the first `Set-Cookie` in `headers`, as a browser sends it back.
///
/// # Panics
///
/// When there is none.
pub fn cookie_pair(headers: &http::HeaderMap) -> String {
    let set_cookie = headers
        .get(http::header::SET_COOKIE)
        .expect("a Set-Cookie header")
        .to_str()
        .expect("an ASCII Set-Cookie");
    set_cookie
        .split_once(';')
        .map_or(set_cookie, |(pair, _)| pair)
        .to_owned()
}
