use doximity_mock::{ClientRegistration, Endpoint, MockProvider};

use crate::support::{Harness, decode, verifies};

#[tokio::test]
async fn key_rotation_publishes_the_new_key_and_keeps_the_old_until_retired() {
    let h = Harness::auto().await;
    let before = h.tokens().await;
    let old_kid = decode(&before.id_token).0["kid"].clone();

    h.mock.rotate_keys();
    let jwks = h.jwks().await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    let after = h.tokens().await;
    let new_kid = decode(&after.id_token).0["kid"].clone();
    assert_ne!(new_kid, old_kid);
    assert_eq!(jwks["keys"][0]["kid"], new_kid);
    assert!(verifies(&jwks, &before.id_token));
    assert!(verifies(&jwks, &after.id_token));

    h.mock.retire_old_keys();
    let jwks = h.jwks().await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    assert_eq!(jwks["keys"][0]["kid"], new_kid);
    assert!(!verifies(&jwks, &before.id_token));
    assert!(verifies(&jwks, &after.id_token));
}

#[tokio::test]
async fn counters_count_every_request_whatever_its_result() {
    let h = Harness::auto().await;
    assert_eq!(h.mock.requests(Endpoint::Token), 0);
    let tokens = h.tokens().await;
    h.token_request(&[("grant_type", "nonsense")]).await;
    // Even a wrong method counts.
    h.http.get(h.url("/oauth/token")).send().await.unwrap();
    assert_eq!(h.mock.requests(Endpoint::Token), 3);
    assert_eq!(h.mock.requests(Endpoint::Authorize), 1);
    h.userinfo(&tokens.access).await;
    h.userinfo("bad").await;
    assert_eq!(h.mock.requests(Endpoint::Userinfo), 2);
    h.jwks().await;
    assert_eq!(h.mock.requests(Endpoint::Jwks), 1);
    for (path, endpoint) in [
        (
            "/.well-known/openid-configuration",
            Endpoint::OpenIdConfiguration,
        ),
        (
            "/.well-known/oauth-authorization-server",
            Endpoint::AuthorizationServerMetadata,
        ),
        ("/oauth/logout", Endpoint::Logout),
        ("/oauth/session_state", Endpoint::CheckSession),
        ("/api/v1/rate_limit", Endpoint::RateLimit),
        ("/api/v1/users/current", Endpoint::UsersCurrent),
        ("/share", Endpoint::Share),
    ] {
        h.http.get(h.url(path)).send().await.unwrap();
        assert_eq!(h.mock.requests(endpoint), 1, "{path}");
    }
    h.revoke("x").await;
    assert_eq!(h.mock.requests(Endpoint::Revoke), 1);
}

#[tokio::test]
async fn debug_output_never_shows_the_secret() {
    let h = Harness::start(MockProvider::builder()).await;
    let client = h.mock.client();
    assert_eq!(client.client_id, "doximity-demo-client");
    assert!(client.client_secret.len() >= 32);
    let debug = format!("{client:?}");
    assert!(!debug.contains(&client.client_secret), "{debug}");
    assert!(debug.contains("[redacted]"));
    assert!(debug.contains("doximity-demo-client"));
    assert!(!format!("{:?}", h.mock).contains(&client.client_secret));

    let other = MockProvider::start().await.unwrap();
    assert_ne!(
        other.client().client_secret,
        client.client_secret,
        "random per start"
    );
}

#[tokio::test]
async fn demo_defaults_and_clinicians() {
    let h = Harness::start(MockProvider::builder()).await;
    assert_eq!(
        h.client.redirect_uris,
        ["http://127.0.0.1:3000/auth/doximity/callback"]
    );
    assert_eq!(
        h.client.post_logout_redirect_uris,
        ["http://127.0.0.1:3000/"]
    );
    let clinicians = h.mock.clinicians();
    assert!(clinicians.len() >= 3);
    for c in &clinicians {
        assert_eq!(uuid::Uuid::parse_str(&c.sub).unwrap().get_version_num(), 4);
        assert!(!c.name.is_empty() && !c.credentials.is_empty() && c.email.contains('@'));
    }
    let again = MockProvider::start().await.unwrap();
    // The same people on every start; only the photos' base (the provider's own port) differs.
    let people = |mock: &MockProvider| {
        mock.clinicians()
            .into_iter()
            .map(|mut c| {
                let base = mock.browser_base();
                assert!(c.profile_photo_url.starts_with(&format!("{base}/photos/")));
                c.profile_photo_url = c.profile_photo_url.replace(&base, "");
                c
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(people(&again), people(&h.mock), "a fixed set");
}

#[tokio::test]
async fn registered_clients_can_sign_in() {
    let h = Harness::auto().await;
    h.mock.register_client(
        ClientRegistration::new("second-app", "second-secret")
            .with_redirect_uri("https://app.example/cb"),
    );
    let (verifier, challenge) = crate::support::pkce();
    let mut params = h.auth_params(&challenge);
    crate::support::set(&mut params, "client_id", "second-app");
    crate::support::set(&mut params, "redirect_uri", "https://app.example/cb");
    let response = h.authorize(&params, None).await;
    let query = crate::support::query_map(&crate::support::location(&response));
    let response = h
        .http
        .post(h.url("/oauth/token"))
        .basic_auth("second-app", Some("second-secret"))
        .form(&crate::support::code_grant(
            &query["code"],
            "https://app.example/cb",
            &verifier,
        ))
        .send()
        .await
        .unwrap();
    let json: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        decode(json["id_token"].as_str().unwrap()).1["azp"],
        "second-app"
    );
}

#[tokio::test]
async fn shutdown_stops_serving_and_removes_the_ca_file() {
    let mock = MockProvider::start().await.unwrap();
    let ca = mock.ca_pem().to_vec();
    let path = mock.ca_path().to_path_buf();
    let url = format!("{}/.well-known/jwks.json", mock.issuer());
    let http = crate::support::http_client(&ca);
    assert_eq!(http.get(&url).send().await.unwrap().status(), 200);
    mock.shutdown().await;
    assert!(!path.exists());
    let fresh = crate::support::http_client(&ca);
    let err = fresh.get(&url).send().await.unwrap_err();
    assert!(err.is_connect(), "{err:?}");
}
