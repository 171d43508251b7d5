//! The set-up both test binaries share. This workspace cannot use `doximity-test` (it would
//! bring the main workspace's `ring` into the build), so it keeps this one function.

use doximity_mock::MockProvider;
use tower_doximity::doximity::Config;
use tower_doximity::doximity::secret::ClientSecret;

/// The demo client of `mock`, trusting its CA through the configuration.
pub(crate) fn demo_config(mock: &MockProvider) -> Config {
    let demo = mock.client();
    Config::new(
        demo.client_id,
        ClientSecret::new(demo.client_secret),
        "http://127.0.0.1:3000/auth/doximity/callback"
            .parse()
            .unwrap(),
    )
    .with_issuer(&mock.issuer())
    .unwrap()
    .with_ca_cert_pem(mock.ca_pem().to_vec())
}
