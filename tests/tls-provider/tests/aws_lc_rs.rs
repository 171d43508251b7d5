//! The layer with `default-features = false, features = ["aws-lc-rs"]` in a binary that also
//! has reqwest's default TLS: a real sign-in against the mock over HTTPS (its CA trusted
//! through the configuration), and then rustls's process-level builder, which panics when
//! more than one provider feature of rustls is on.

mod common;

use tower_doximity::DoximityAuth;
use tower_doximity::doximity::{AuthorizeRequest, Client};

#[tokio::test]
async fn aws_lc_rs_layer_next_to_reqwest_default_tls_signs_in_and_keeps_one_provider() {
    let mock = doximity_mock::MockProvider::builder()
        .auto_approve(true)
        .start()
        .await
        .unwrap();
    // The library's calls (discovery, JWKS, token) over TLS with the feature's provider.
    let config = common::demo_config(&mock);
    let client = Client::discover(config).await.unwrap();
    assert!(
        rustls::crypto::CryptoProvider::get_default().is_none(),
        "the library must not install a process-level provider"
    );

    // The layer builds on that client (a 64-byte cookie key, base64).
    let key = format!("{}QQ==", "QUFB".repeat(21));
    let _layer = DoximityAuth::new(client.clone())
        .with_cookie_key_base64(&key)
        .unwrap()
        .layer();

    // The user's own reqwest with its default TLS plays the browser, trusting the mock's CA.
    let browser = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(mock.ca_pem()).unwrap()])
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let (url, pending) = client
        .authorize_url(&AuthorizeRequest::new())
        .await
        .expect("authorize URL");
    let approved = browser.get(url).send().await.unwrap();
    let location: url::Url = approved.headers()["location"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let tokens = client
        .complete_login(&pending, location.query().unwrap_or(""))
        .await
        .unwrap();
    assert!(!tokens.claims.sub.is_empty());

    // Other crates in the binary (database and mail clients, for example) call this. With two
    // provider features on (ring forced by the layer, aws-lc-rs from reqwest) it panics.
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    assert!(!config.crypto_provider().cipher_suites.is_empty());

    mock.shutdown().await;
}
