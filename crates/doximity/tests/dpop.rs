//! DPoP (RFC 9449) against the mock provider, over real HTTPS sockets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use doximity::dpop::{DpopError, DpopKey};
use doximity::{
    AuthorizeRequest, Client, DevicePoll, Endpoint as Called, Error, ResourceHeaders, TokenType,
};
use doximity_mock::{DpopCheck, Endpoint, Fault, MockProvider};
use support::*;

fn key() -> DpopKey {
    DpopKey::generate().unwrap()
}

async fn dpop_client(mock: &MockProvider, key: &DpopKey) -> Client {
    Client::discover(config(mock).with_dpop_key(key.clone()))
        .await
        .unwrap()
}

/// Whether the `Authorization` header of `headers` is of `scheme` (`DPoP` or `Bearer`).
fn has_scheme(headers: &ResourceHeaders, scheme: &str) -> bool {
    let value = headers.authorization().to_str().unwrap();
    value
        .strip_prefix(scheme)
        .is_some_and(|rest| rest.starts_with(' '))
}

fn userinfo_url(client: &Client) -> url::Url {
    client
        .metadata()
        .unwrap()
        .userinfo_endpoint
        .clone()
        .unwrap()
}

/// The userinfo endpoint called with the access token of `tokens` as a plain Bearer token,
/// from a plain HTTPS client (no key).
async fn bearer_userinfo(
    mock: &MockProvider,
    client: &Client,
    tokens: &doximity::TokenSet,
) -> reqwest::Response {
    browser(mock)
        .get(userinfo_url(client))
        .bearer_auth(tokens.access_token.secret())
        .send()
        .await
        .unwrap()
}

/// `GET` with the headers `resource_headers` made, from a plain HTTPS client (no key).
async fn get_with(
    mock: &MockProvider,
    url: &url::Url,
    headers: &doximity::ResourceHeaders,
) -> reqwest::Response {
    let mut map = http::HeaderMap::new();
    headers.apply(&mut map);
    browser(mock)
        .get(url.clone())
        .headers(map)
        .send()
        .await
        .unwrap()
}

fn challenge(response: &reqwest::Response) -> String {
    response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn sign_in_refresh_userinfo_and_api_over_dpop() {
    let mock = start().await;
    let key = key();
    let client = dpop_client(&mock, &key).await;
    assert!(client.uses_dpop().await.unwrap());
    let tokens = login(&mock, &client, &AuthorizeRequest::new()).await;
    assert_eq!(tokens.token_type, TokenType::Dpop);

    let me = client.userinfo(&tokens, &tokens.claims.sub).await.unwrap();
    assert_eq!(me.sub, tokens.claims.sub);
    let legacy = client.legacy_current_user(&tokens).await.unwrap();
    assert_eq!(legacy["id"], tokens.claims.sub.as_str());

    let refreshed = client.refresh(&tokens, None).await.unwrap();
    assert_eq!(refreshed.token_type, TokenType::Dpop);
    client
        .userinfo(&refreshed, &tokens.claims.sub)
        .await
        .unwrap();
    // Rotation still holds: the old pair is dead.
    assert!(matches!(
        client.userinfo(&tokens, &tokens.claims.sub).await,
        Err(Error::TokenRejected { .. })
    ));
    // Token endpoint twice, userinfo three times, no retries anywhere.
    assert_eq!(mock.requests(Endpoint::Token), 2);
    assert_eq!(mock.requests(Endpoint::Userinfo), 3);
}

#[tokio::test]
async fn a_stolen_bound_token_is_refused_as_bearer() {
    let mock = start().await;
    let client = dpop_client(&mock, &key()).await;
    let tokens = login(&mock, &client, &AuthorizeRequest::new()).await;
    assert_eq!(tokens.token_type, TokenType::Dpop);

    // Presented as Bearer (a bare access token), through the client and by hand.
    assert!(matches!(
        client
            .userinfo(&tokens.access_token, &tokens.claims.sub)
            .await,
        Err(Error::TokenRejected {
            endpoint: Called::Userinfo
        })
    ));
    let response = bearer_userinfo(&mock, &client, &tokens).await;
    assert_eq!(response.status(), 401);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token");
    // The bound refresh token without a proof: refused, conclusively.
    let bearer_client = client_without_dpop(&mock).await;
    let e = bearer_client.refresh(&tokens, None).await.unwrap_err();
    assert!(e.is_conclusive_refresh_failure(), "{e}");
    // The rightful holder still can.
    client.userinfo(&tokens, &tokens.claims.sub).await.unwrap();
}

async fn client_without_dpop(mock: &MockProvider) -> Client {
    client(mock).await
}

#[tokio::test]
async fn a_proof_from_another_key_is_refused() {
    let mock = start().await;
    let owner = dpop_client(&mock, &key()).await;
    let thief = dpop_client(&mock, &key()).await;
    let tokens = login(&mock, &owner, &AuthorizeRequest::new()).await;

    assert!(matches!(
        thief.userinfo(&tokens, &tokens.claims.sub).await,
        Err(Error::TokenRejected { .. })
    ));
    let headers = thief
        .resource_headers(&http::Method::GET, &userinfo_url(&thief), &tokens)
        .await
        .unwrap();
    let response = get_with(&mock, &userinfo_url(&thief), &headers).await;
    assert_eq!(response.status(), 401);
    assert!(challenge(&response).starts_with("DPoP "));
    assert!(challenge(&response).contains(r#"error="invalid_token""#));

    match thief.refresh(&tokens, None).await {
        Err(Error::OAuth { error, .. }) => assert_eq!(error, "invalid_grant"),
        other => panic!("expected invalid_grant, got {other:?}"),
    }
    // The refusal is the binding check's: without it the thief's proof would do.
    mock.inject(Fault::DpopCheckOff(DpopCheck::Binding));
    thief.userinfo(&tokens, &tokens.claims.sub).await.unwrap();
    mock.clear_faults();
    owner.userinfo(&tokens, &tokens.claims.sub).await.unwrap();
}

#[tokio::test]
async fn a_replayed_proof_is_refused() {
    let mock = start().await;
    let client = dpop_client(&mock, &key()).await;
    let tokens = login(&mock, &client, &AuthorizeRequest::new()).await;
    let url = userinfo_url(&client);
    let headers = client
        .resource_headers(&http::Method::GET, &url, &tokens)
        .await
        .unwrap();
    assert!(headers.dpop().is_some());
    assert!(has_scheme(&headers, "DPoP"));
    assert!(!format!("{headers:?}").contains(tokens.access_token.secret().as_str()));

    assert_eq!(get_with(&mock, &url, &headers).await.status(), 200);
    let replay = get_with(&mock, &url, &headers).await;
    assert_eq!(replay.status(), 401);
    assert!(challenge(&replay).contains(r#"error="invalid_dpop_proof""#));

    // The replay check is what refused it.
    mock.inject(Fault::DpopCheckOff(DpopCheck::Replay));
    assert_eq!(get_with(&mock, &url, &headers).await.status(), 200);
}

#[tokio::test]
async fn a_proof_for_another_endpoint_is_refused() {
    let mock = start().await;
    let client = dpop_client(&mock, &key()).await;
    let tokens = login(&mock, &client, &AuthorizeRequest::new()).await;
    let mut elsewhere = userinfo_url(&client);
    elsewhere.set_path("/api/v1/users/current");
    let headers = client
        .resource_headers(&http::Method::GET, &elsewhere, &tokens)
        .await
        .unwrap();
    let response = get_with(&mock, &userinfo_url(&client), &headers).await;
    assert_eq!(response.status(), 401);
    assert!(challenge(&response).contains(r#"error="invalid_dpop_proof""#));
    mock.inject(Fault::DpopCheckOff(DpopCheck::Htu));
    assert_eq!(
        get_with(&mock, &userinfo_url(&client), &headers)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn the_nonce_is_retried_once_then_remembered() {
    let mock = builder().require_dpop_nonce(true).start().await.unwrap();
    let client = dpop_client(&mock, &key()).await;
    let tokens = login(&mock, &client, &AuthorizeRequest::new()).await;
    assert_eq!(tokens.token_type, TokenType::Dpop);
    // The code exchange: `use_dpop_nonce`, then one retry with the nonce.
    assert_eq!(mock.requests(Endpoint::Token), 2);

    // The remembered nonce: no retry at the token endpoint nor at userinfo (same server).
    let refreshed = client.refresh(&tokens, None).await.unwrap();
    assert_eq!(mock.requests(Endpoint::Token), 3);
    client
        .userinfo(&refreshed, &tokens.claims.sub)
        .await
        .unwrap();
    assert_eq!(mock.requests(Endpoint::Userinfo), 1);

    // A client without the nonce is asked for it at the resource too, and retries once.
    let other =
        Client::discover(config(&mock).with_dpop_key(client.config().dpop_key().unwrap().clone()))
            .await
            .unwrap();
    other
        .userinfo(&refreshed, &tokens.claims.sub)
        .await
        .unwrap();
    assert_eq!(mock.requests(Endpoint::Userinfo), 3);
}

#[tokio::test]
async fn a_nonce_refused_twice_in_a_row_is_a_typed_error() {
    let mock = start().await;
    mock.inject(Fault::DpopNonceEveryRequest);
    let client = dpop_client(&mock, &key()).await;
    let e = try_login(&mock, &client, &AuthorizeRequest::new())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Dpop(DpopError::NonceRejected {
                endpoint: Called::Token
            })
        ),
        "{e:?}"
    );
    assert!(!e.is_conclusive_refresh_failure());
    assert_eq!(mock.requests(Endpoint::Token), 2, "exactly one retry");
}

#[tokio::test]
async fn metadata_without_dpop_algs_means_bearer_even_with_a_key() {
    let mock = start().await;
    mock.inject(Fault::DiscoveryNoDpop);
    let client = dpop_client(&mock, &key()).await;
    assert!(!client.uses_dpop().await.unwrap());
    assert!(
        client
            .dpop_proof(&http::Method::GET, &userinfo_url(&client), None)
            .await
            .unwrap()
            .is_none()
    );
    let tokens = login(&mock, &client, &AuthorizeRequest::new()).await;
    assert_eq!(tokens.token_type, TokenType::Bearer);
    // Unbound: a plain Bearer call works.
    let response = bearer_userinfo(&mock, &client, &tokens).await;
    assert_eq!(response.status(), 200);
    let refreshed = client.refresh(&tokens, None).await.unwrap();
    assert_eq!(refreshed.token_type, TokenType::Bearer);
}

#[tokio::test]
async fn a_bearer_answer_to_a_dpop_request_is_kept_as_bearer() {
    let mock = start().await;
    mock.inject(Fault::DpopTokenTypeBearer);
    let client = dpop_client(&mock, &key()).await;
    let tokens = login(&mock, &client, &AuthorizeRequest::new()).await;
    assert_eq!(tokens.token_type, TokenType::Bearer);
    let headers = client
        .resource_headers(&http::Method::GET, &userinfo_url(&client), &tokens)
        .await
        .unwrap();
    assert!(headers.dpop().is_none());
    assert!(has_scheme(&headers, "Bearer"));
    client.userinfo(&tokens, &tokens.claims.sub).await.unwrap();
    let refreshed = client.refresh(&tokens, None).await.unwrap();
    assert_eq!(refreshed.token_type, TokenType::Bearer);
}

#[tokio::test]
async fn device_polling_sends_a_proof() {
    let mock = MockProvider::builder().start().await.unwrap();
    let client = dpop_client(&mock, &key()).await;
    let mut device = client.start_device_authorization(None).await.unwrap();
    let sub = mock.clinicians()[0].sub.clone();
    assert!(mock.approve_device(device.user_code.secret(), &sub));
    let DevicePoll::Granted(tokens) = client.poll_device_token(&mut device).await.unwrap() else {
        panic!("approved device must be granted");
    };
    assert_eq!(tokens.token_type, TokenType::Dpop);
    client.userinfo(&*tokens, &sub).await.unwrap();
}

#[tokio::test]
async fn proofs_for_handlers_come_only_with_dpop() {
    let mock = start().await;
    let plain = client(&mock).await;
    let url = userinfo_url(&plain);
    assert!(!plain.uses_dpop().await.unwrap());
    assert!(
        plain
            .dpop_proof(&http::Method::GET, &url, None)
            .await
            .unwrap()
            .is_none()
    );
    let with_key = dpop_client(&mock, &key()).await;
    let proof = with_key
        .dpop_proof(&http::Method::GET, &url, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(proof.as_str().split('.').count(), 3);
    assert_eq!(format!("{proof:?}"), "DpopProof([redacted])");
    // A DPoP-bound token set cannot be used by a client without DPoP.
    let tokens = login(&mock, &with_key, &AuthorizeRequest::new()).await;
    assert!(matches!(
        plain
            .resource_headers(&http::Method::GET, &url, &tokens)
            .await,
        Err(Error::Dpop(DpopError::NotAvailable))
    ));
}
