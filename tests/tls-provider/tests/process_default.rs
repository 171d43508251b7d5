//! A process-level default provider that the application installed is the one the client
//! uses, ahead of the provider of the crate's features. A test binary of its own, since the
//! default is process-wide.

mod common;

use tower_doximity::doximity::{Client, ConfigError, Error};

#[tokio::test]
async fn an_installed_process_default_provider_is_the_one_the_client_uses() {
    // A provider that cannot make any TLS configuration: no cipher suites. If the client used
    // its feature's provider instead, discovery would succeed.
    let mut unusable = rustls::crypto::aws_lc_rs::default_provider();
    unusable.cipher_suites.clear();
    unusable.install_default().unwrap();

    let mock = doximity_mock::MockProvider::builder()
        .start()
        .await
        .unwrap();
    let config = common::demo_config(&mock);
    let error = Client::discover(config).await.err().unwrap();
    assert!(
        matches!(error, Error::Config(ConfigError::HttpClient(_))),
        "{error:?}"
    );

    mock.shutdown().await;
}
