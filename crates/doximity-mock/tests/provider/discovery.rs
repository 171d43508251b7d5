use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use doximity_mock::MockProvider;
use serde_json::json;

use crate::support::{Harness, http_client};

#[tokio::test]
async fn openid_configuration_has_doximitys_shape() {
    let h = Harness::start(MockProvider::builder()).await;
    let issuer = h.mock.issuer();
    assert!(issuer.starts_with("https://127.0.0.1:"));
    assert!(!issuer.ends_with('/'));
    assert_eq!(issuer, format!("https://{}", h.mock.addr()));
    let d = h.get_json("/.well-known/openid-configuration").await;
    assert_eq!(d["issuer"], issuer);
    assert_eq!(
        d["authorization_endpoint"],
        format!("{issuer}/oauth/authorize")
    );
    assert_eq!(d["token_endpoint"], format!("{issuer}/oauth/token"));
    assert_eq!(d["userinfo_endpoint"], format!("{issuer}/oauth/userinfo"));
    assert_eq!(
        d["check_session_iframe"],
        format!("{issuer}/oauth/session_state")
    );
    assert_eq!(d["end_session_endpoint"], format!("{issuer}/oauth/logout"));
    assert_eq!(d["jwks_uri"], format!("{issuer}/.well-known/jwks.json"));
    // Which names these are is checked against the client's own list of Doximity's scopes
    // (`doximity`'s flow tests).
    assert_eq!(
        d["scopes_supported"],
        json!(doximity_mock::SUPPORTED_SCOPES)
    );
    assert_eq!(
        d["response_types_supported"],
        json!(["code", "code id_token"])
    );
    assert_eq!(d["response_modes_supported"], json!(["query", "fragment"]));
    assert_eq!(d["subject_types_supported"], json!(["public"]));
    assert_eq!(d["id_token_signing_alg_values_supported"], json!(["RS256"]));
    assert_eq!(
        d["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic"])
    );
    assert_eq!(d["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(
        d["grant_types_supported"],
        json!([
            "authorization_code",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:device_code"
        ])
    );
    let claims = d["claims_supported"].as_array().unwrap();
    for claim in [
        "iss",
        "sub",
        "aud",
        "azp",
        "acr",
        "at_hash",
        "nonce",
        "specialty",
    ] {
        assert!(claims.contains(&json!(claim)), "{claim} missing");
    }
    assert!(d.get("revocation_endpoint").is_none());
}

#[tokio::test]
async fn authorization_server_metadata_adds_revocation_and_ui() {
    let h = Harness::start(MockProvider::builder()).await;
    let issuer = h.mock.issuer();
    let oidc = h.get_json("/.well-known/openid-configuration").await;
    let d = h.get_json("/.well-known/oauth-authorization-server").await;
    for (key, value) in oidc.as_object().unwrap() {
        assert_eq!(&d[key], value, "{key} differs");
    }
    assert_eq!(d["revocation_endpoint"], format!("{issuer}/oauth/revoke"));
    assert_eq!(
        d["token_endpoint_auth_signing_alg_values_supported"],
        json!(["RS256"])
    );
    assert_eq!(d["ui_locales_supported"], json!(["en-US"]));
}

#[tokio::test]
async fn jwks_publishes_one_rsa_2048_signing_key() {
    let h = Harness::start(MockProvider::builder()).await;
    let jwks = h.get_json("/.well-known/jwks.json").await;
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let key = &keys[0];
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["alg"], "RS256");
    assert!(uuid::Uuid::parse_str(key["kid"].as_str().unwrap()).is_ok());
    let n = key["n"].as_str().unwrap();
    assert!(!n.contains('=') && !n.contains('+') && !n.contains('/'));
    assert_eq!(URL_SAFE_NO_PAD.decode(n).unwrap().len(), 256);
    assert_eq!(key["e"], "AQAB");
}

#[tokio::test]
async fn ca_file_holds_the_ca_and_untrusting_clients_fail_without_stopping_the_server() {
    let h = Harness::start(MockProvider::builder()).await;
    assert_eq!(std::fs::read(h.mock.ca_path()).unwrap(), h.mock.ca_pem());
    assert!(
        std::str::from_utf8(h.mock.ca_pem())
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );

    // A client trusting another CA must fail the handshake...
    let other = MockProvider::start().await.unwrap();
    let stranger = http_client(other.ca_pem());
    let err = stranger
        .get(h.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    // ...and the server keeps serving everyone else.
    let ok = h
        .http
        .get(h.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);

    // `localhost` is a valid name too.
    let by_name = format!(
        "https://localhost:{}/.well-known/jwks.json",
        h.mock.addr().port()
    );
    assert_eq!(h.http.get(by_name).send().await.unwrap().status(), 200);

    // The convenience configuration trusts the CA as well.
    let convenient = reqwest::Client::builder()
        .tls_backend_preconfigured(h.mock.rustls_client_config())
        .build()
        .unwrap();
    let response = convenient
        .get(h.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}
