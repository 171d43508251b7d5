//! The whole protocol against the mock provider, over real HTTPS sockets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use doximity::authorize::{Prompt, ResponseMode};
use doximity::{
    AuthorizeRequest, CallbackError, Client, DiscoveryError, Error, JwtError, PendingLogin,
    RevocableToken, TokenSet,
};
use doximity_mock::{Endpoint, Fault, MockProvider};
use support::*;

/// A new login's pending state (its authorization URL unused).
async fn new_login(client: &Client) -> PendingLogin {
    let (_, pending) = client
        .authorize_url(&AuthorizeRequest::new())
        .await
        .unwrap();
    pending
}

/// Completes the login with the callback at `location`, then again: the second answer's error.
async fn replayed_code_error(
    client: &Client,
    pending: &PendingLogin,
    location: &url::Url,
) -> Error {
    client
        .complete_login(pending, location.query().unwrap())
        .await
        .unwrap();
    client
        .complete_login(pending, location.query().unwrap())
        .await
        .unwrap_err()
}

/// Asserts that userinfo refuses the access token of `tokens`.
async fn assert_token_rejected(client: &Client, tokens: &TokenSet) {
    let answer = client
        .userinfo(&tokens.access_token, &tokens.claims.sub)
        .await;
    assert!(
        matches!(answer, Err(Error::TokenRejected { .. })),
        "{answer:?}"
    );
}

/// The error of a login that must fail.
async fn login_error(mock: &MockProvider, client: &Client) -> Error {
    try_login(mock, client, &AuthorizeRequest::new())
        .await
        .unwrap_err()
}

/// A mock whose ID tokens name a key it does not publish, and a client on a clock the test
/// moves, which has fetched the key set once.
async fn with_unknown_kids() -> (MockProvider, Client, TestClock) {
    let mock = start().await;
    let (client, clock) = clocked_client(&mock).await;
    assert_eq!(mock.requests(Endpoint::Jwks), 1);
    mock.inject(Fault::IdTokenUnknownKid);
    (mock, client, clock)
}

/// Which rule an error must come from.
type Rule = fn(&JwtError) -> bool;

/// The [`Rule`] of the errors that match the pattern.
macro_rules! rule {
    ($($pattern:tt)+) => {
        |e: &JwtError| matches!(e, $($pattern)+)
    };
}

#[tokio::test]
async fn discovery_reads_both_documents_and_the_keys() {
    let mock = start().await;
    let client = client(&mock).await;
    let m = client.metadata().unwrap();
    assert_eq!(m.issuer, mock.issuer());
    assert_eq!(m.token_endpoint.path(), "/oauth/token");
    assert_eq!(
        m.revocation_endpoint.as_ref().unwrap().path(),
        "/oauth/revoke"
    );
    assert_eq!(
        m.userinfo_endpoint.as_ref().unwrap().path(),
        "/oauth/userinfo"
    );
    assert_eq!(
        client.check_session_iframe().unwrap().path(),
        "/oauth/session_state"
    );
    // The mock advertises the 21 scopes of Doximity's published metadata, in its order, then
    // the older API's `colleagues`.
    let mut scopes = doximity::scope::DOCUMENTED.to_vec();
    scopes.push(<doximity::scope::legacy::Colleagues as doximity::scope::Scope>::NAME);
    assert_eq!(m.scopes_supported, scopes);
    assert_eq!(mock.requests(Endpoint::OpenIdConfiguration), 1);
    assert_eq!(mock.requests(Endpoint::AuthorizationServerMetadata), 1);
    assert_eq!(mock.requests(Endpoint::Jwks), 1);
    client.refresh_metadata().await.unwrap();
    assert_eq!(mock.requests(Endpoint::OpenIdConfiguration), 2);
}

#[tokio::test]
async fn discovery_rejects_another_issuer() {
    let mock = start().await;
    mock.inject(Fault::DiscoveryWrongIssuer);
    let err = Client::discover(config(&mock)).await.unwrap_err();
    assert!(
        matches!(err, Error::Discovery(DiscoveryError::IssuerMismatch { .. })),
        "{err:?}"
    );
}

#[tokio::test]
async fn certificates_are_verified() {
    let mock = start().await;
    let other = start().await;
    // Trusting another CA (or none but the public roots) must fail the TLS handshake.
    let wrong_ca = config(&mock).with_ca_cert_pem(other.ca_pem().to_vec());
    let err = Client::discover(wrong_ca).await.unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    let demo = mock.client();
    let no_ca = doximity::Config::new(
        demo.client_id.clone(),
        doximity::secret::ClientSecret::new(demo.client_secret.clone()),
        REDIRECT.parse().unwrap(),
    )
    .with_issuer(&mock.issuer())
    .unwrap();
    assert!(matches!(
        Client::discover(no_ca).await,
        Err(Error::Transport { .. })
    ));
}

#[tokio::test]
async fn every_call_has_a_timeout() {
    // A TLS server that accepts and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let mock = start().await;
    let config = config(&mock)
        .with_issuer(&format!("https://127.0.0.1:{}", addr.port()))
        .unwrap()
        .with_timeout(std::time::Duration::from_millis(300));
    let err = Client::discover(config).await.unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    hold.abort();
}

#[tokio::test]
async fn full_login_verifies_a_doximity_shaped_id_token() {
    let (mock, _client, tokens) = signed_in(&AuthorizeRequest::new()).await;
    let subs: Vec<String> = mock.clinicians().into_iter().map(|c| c.sub).collect();
    assert!(subs.contains(&tokens.claims.sub));
    assert_eq!(
        tokens.claims.aud,
        vec![mock.issuer(), mock.client().client_id]
    );
    // Doximity's numeric acr parses.
    assert_eq!(tokens.claims.acr, Some(doximity::Acr::Number(2.into())));
    assert!(tokens.session_state.is_some());
    assert!(tokens.refresh_token.is_some());
    assert!(tokens.scopes.contains("openid"));
    assert!(tokens.expires_at.is_some());
    // Nothing secret in Debug.
    let debug = format!("{tokens:?}");
    assert!(!debug.contains(tokens.access_token.secret().as_str()));
    assert!(!debug.contains(tokens.id_token.secret()));
}

#[tokio::test]
async fn the_callback_state_is_checked_before_anything_else() {
    let mock = start().await;
    let client = client(&mock).await;
    let (location, _pending) = authorize(&mock, &client, &AuthorizeRequest::new()).await;
    let other_pending = new_login(&client).await;
    let before = mock.requests(Endpoint::Token);
    let err = client
        .complete_login(&other_pending, location.query().unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Callback(CallbackError::StateMismatch)),
        "{err:?}"
    );
    assert_eq!(
        mock.requests(Endpoint::Token),
        before,
        "a forged callback must not reach the token endpoint"
    );
}

#[tokio::test]
async fn an_authorization_code_works_once() {
    let mock = start().await;
    let client = client(&mock).await;
    let (location, pending) = authorize(&mock, &client, &AuthorizeRequest::new()).await;
    let err = replayed_code_error(&client, &pending, &location).await;
    assert!(
        matches!(err, Error::OAuth { ref error, .. } if error == "invalid_grant"),
        "{err:?}"
    );
}

#[tokio::test]
async fn fragment_response_mode_and_prompt_none() {
    let mock = start().await;
    let client = client(&mock).await;
    let req = AuthorizeRequest::new().with_response_mode(ResponseMode::Fragment);
    let (location, pending) = authorize(&mock, &client, &req).await;
    assert!(location.query().is_none());
    client
        .complete_login(&pending, location.fragment().unwrap())
        .await
        .unwrap();

    // No provider session: prompt=none answers login_required.
    mock.set_auto_approve(None);
    let req = AuthorizeRequest::new().with_prompt(Prompt::None);
    let (location, pending) = authorize(&mock, &client, &req).await;
    let err = client
        .complete_login(&pending, location.query().unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Callback(CallbackError::InteractionRequired { ref error }) if error == "login_required"),
        "{err:?}"
    );
}

/// Each defect the mock can put in an ID token, and the rule that must catch it.
#[tokio::test]
async fn every_id_token_defect_is_rejected_by_its_rule() {
    let mock = start().await;
    let client = client(&mock).await;
    let cases: Vec<(Fault, Rule)> = vec![
        (Fault::IdTokenBadSignature, rule!(JwtError::BadSignature)),
        (
            Fault::IdTokenWrongIssuer,
            rule!(JwtError::IssuerMismatch { .. }),
        ),
        (
            Fault::IdTokenWrongAudience,
            rule!(JwtError::AudienceMissingClient { .. }),
        ),
        (
            Fault::IdTokenExtraAudience,
            rule!(JwtError::UntrustedAudience(_)),
        ),
        (
            Fault::IdTokenWrongAzp,
            rule!(JwtError::AuthorizedPartyMismatch { .. }),
        ),
        (
            Fault::IdTokenMissingAzp,
            rule!(JwtError::MissingAuthorizedParty),
        ),
        (Fault::IdTokenExpired, rule!(JwtError::Expired { .. })),
        (
            Fault::IdTokenIatInFuture,
            rule!(JwtError::IssuedInFuture { .. }),
        ),
        (Fault::IdTokenMissingNonce, rule!(JwtError::MissingNonce)),
        (Fault::IdTokenWrongNonce, rule!(JwtError::NonceMismatch)),
        (
            Fault::IdTokenBadAtHash,
            rule!(JwtError::AccessTokenHashMismatch),
        ),
        (
            Fault::IdTokenAlgNone,
            rule!(JwtError::DisallowedAlgorithm(a) if a == "none"),
        ),
        (
            Fault::IdTokenHs256WithClientSecret,
            rule!(JwtError::DisallowedAlgorithm(a) if a == "HS256"),
        ),
        (Fault::IdTokenUnknownKid, rule!(JwtError::UnknownKeyId(_))),
        (
            Fault::IdTokenMissingSub,
            rule!(JwtError::MissingClaim("sub")),
        ),
    ];
    for (fault, is_expected) in cases {
        mock.clear_faults();
        mock.inject(fault);
        match try_login(&mock, &client, &AuthorizeRequest::new()).await {
            Err(Error::IdToken(e)) => assert!(is_expected(&e), "{fault:?}: wrong rule {e:?}"),
            other => panic!("{fault:?}: expected an ID-token rejection, got {other:?}"),
        }
    }
    mock.clear_faults();
    mock.inject(Fault::IdTokenStringAcr);
    let tokens = login(&mock, &client, &AuthorizeRequest::new()).await;
    assert_eq!(tokens.claims.acr, Some(doximity::Acr::String("2".into())));
}

/// The metadata and the keys are read again once a day (a long-running process sees the
/// provider's changes), by one call; a failure keeps the current metadata.
#[tokio::test]
async fn the_key_set_is_fetched_again_once_a_day() {
    let mock = start().await;
    let (client, clock) = clocked_client(&mock).await;
    // (hours both clocks move, then a login: the key sets and the metadata fetched so far)
    for (hours, key_sets, metadata) in [(0, 1, 1), (23, 1, 1), (1, 2, 2), (0, 2, 2)] {
        mock.set_clock_offset(clock.advance(hours * 3600));
        login(&mock, &client, &AuthorizeRequest::new()).await;
        let at = clock.offset() / 3600;
        assert_eq!(
            mock.requests(Endpoint::Jwks),
            key_sets,
            "key sets at {at} h"
        );
        assert_eq!(
            mock.requests(Endpoint::OpenIdConfiguration),
            metadata,
            "metadata at {at} h"
        );
    }
    // A day later the provider fails: the current metadata and keys keep working.
    mock.set_clock_offset(clock.advance(24 * 3600));
    mock.inject(Fault::JwksStatus(503));
    login(&mock, &client, &AuthorizeRequest::new()).await;
}

#[tokio::test]
async fn a_failed_jwks_refetch_arms_the_once_a_minute_limit_too() {
    let (mock, client, _) = with_unknown_kids().await;
    mock.inject(Fault::JwksStatus(503));
    for _ in 0..3 {
        assert_login_fails(&mock, &client).await;
    }
    assert_eq!(
        mock.requests(Endpoint::Jwks),
        2,
        "a failing JWKS was asked again within the minute"
    );
}

#[tokio::test]
async fn unknown_kid_refetches_once_a_minute_at_most() {
    let (mock, client, clock) = with_unknown_kids().await;
    // (seconds both clocks move, then a failing login: the key sets fetched so far, why)
    for (wait, key_sets, why) in [
        (0, 2, "one refetch on an unknown kid"),
        (0, 2, "no second refetch within a minute"),
        (61, 3, "a refetch again after a minute"),
    ] {
        mock.set_clock_offset(clock.advance(wait));
        assert_login_fails(&mock, &client).await;
        assert_eq!(mock.requests(Endpoint::Jwks), key_sets, "{why}");
    }
}

#[tokio::test]
async fn rotated_keys_are_picked_up_with_one_single_flight_refetch() {
    let mock = start().await;
    let client = client(&mock).await;
    mock.rotate_keys();
    // Ten logins up to the callback, then ten exchanges at once: all tokens carry the new kid.
    let mut callbacks = Vec::new();
    for _ in 0..10 {
        callbacks.push(authorize(&mock, &client, &AuthorizeRequest::new()).await);
    }
    let before = mock.requests(Endpoint::Jwks);
    let results = futures_util::future::join_all(
        callbacks
            .iter()
            .map(|(location, pending)| client.complete_login(pending, location.query().unwrap())),
    )
    .await;
    for r in results {
        r.unwrap();
    }
    assert_eq!(mock.requests(Endpoint::Jwks), before + 1);
}

#[tokio::test]
async fn refresh_rotates_both_tokens() {
    let req = AuthorizeRequest::new().with_scopes(&"profile:read:basic".parse().unwrap());
    let (mock, client, first) = signed_in(&req).await;
    let second = client.refresh(&first, None).await.unwrap();
    assert_ne!(first.access_token.secret(), second.access_token.secret());
    assert_ne!(
        first.refresh_token.as_ref().unwrap().secret(),
        second.refresh_token.as_ref().unwrap().secret()
    );
    assert_eq!(second.claims.sub, first.claims.sub);
    // The old pair is dead at once.
    let err = client.refresh(&first, None).await.unwrap_err();
    assert!(
        matches!(err, Error::OAuth { ref error, .. } if error == "invalid_grant"),
        "{err:?}"
    );
    let err = client
        .userinfo(&first.access_token, &first.claims.sub)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TokenRejected { .. }), "{err:?}");
    client
        .userinfo(&second.access_token, &second.claims.sub)
        .await
        .unwrap();
    // A subset is fine; a superset is refused before any request.
    let narrowed = client
        .refresh(&second, Some(&doximity::scope::Scopes::openid()))
        .await
        .unwrap();
    assert!(!narrowed.scopes.contains("profile:read:basic"));
    let before = mock.requests(Endpoint::Token);
    let wider: doximity::scope::Scopes = "openid search".parse().unwrap();
    let err = client.refresh(&narrowed, Some(&wider)).await.unwrap_err();
    assert!(
        matches!(err, Error::ScopeNotGranted { ref scope } if scope == "search"),
        "{err:?}"
    );
    assert_eq!(mock.requests(Endpoint::Token), before);
}

#[tokio::test]
async fn a_refreshed_id_token_must_keep_the_identity() {
    let mock = start().await;
    let client = client(&mock).await;
    for fault in [
        Fault::RefreshChangesSub,
        Fault::RefreshChangesIssuer,
        Fault::RefreshChangesAudience,
        Fault::RefreshAddsNonce,
    ] {
        mock.clear_faults();
        let tokens = login(&mock, &client, &AuthorizeRequest::new()).await;
        mock.inject(fault);
        let err = client.refresh(&tokens, None).await.unwrap_err();
        let ok = matches!(
            (&fault, &err),
            (
                Fault::RefreshChangesSub,
                Error::IdToken(JwtError::RefreshChangedClaim("sub"))
            ) | (
                Fault::RefreshChangesIssuer,
                Error::IdToken(JwtError::IssuerMismatch { .. })
            ) | (
                Fault::RefreshChangesAudience,
                Error::IdToken(
                    JwtError::RefreshChangedClaim("aud")
                        | JwtError::AudienceMissingClient { .. }
                        | JwtError::UntrustedAudience(_),
                ),
            ) | (
                Fault::RefreshAddsNonce,
                Error::IdToken(JwtError::RefreshChangedClaim("nonce"))
            )
        );
        assert!(ok, "{fault:?}: {err:?}");
    }
}

#[tokio::test]
async fn revocation_kills_the_pair() {
    let (mock, client, tokens) = signed_in(&AuthorizeRequest::new()).await;
    client
        .revoke(RevocableToken::Access(&tokens.access_token))
        .await
        .unwrap();
    assert_token_rejected(&client, &tokens).await;
    assert!(client.refresh(&tokens, None).await.is_err());

    let tokens = login(&mock, &client, &AuthorizeRequest::new()).await;
    client
        .revoke(RevocableToken::Refresh(
            tokens.refresh_token.as_ref().unwrap(),
        ))
        .await
        .unwrap();
    assert_token_rejected(&client, &tokens).await;

    mock.inject(Fault::RevokeStatus(503));
    let err = client
        .revoke(RevocableToken::Access(&tokens.access_token))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Unavailable { status: 503, .. }) && err.is_retryable(),
        "{err:?}"
    );
}

#[tokio::test]
async fn userinfo_is_a_verified_signed_jwt() {
    let (mock, client, basic) = signed_in(&AuthorizeRequest::new()).await;
    let me = client
        .userinfo(&basic.access_token, &basic.claims.sub)
        .await
        .unwrap();
    assert_eq!(me.sub, basic.claims.sub);
    assert!(me.name.is_none(), "profile claims need profile:read:basic");

    let req = AuthorizeRequest::new().with_scopes(&"profile:read:basic".parse().unwrap());
    let tokens = login(&mock, &client, &req).await;
    let me = client
        .userinfo(&tokens.access_token, &tokens.claims.sub)
        .await
        .unwrap();
    let clinician = mock
        .clinicians()
        .into_iter()
        .find(|c| c.sub == me.sub)
        .unwrap();
    assert_eq!(me.name.as_deref(), Some(clinician.name.as_str()));
    assert_eq!(me.specialty.as_deref(), Some(clinician.specialty.as_str()));
    assert_eq!(
        client
            .identify_access_token(&tokens.access_token)
            .await
            .unwrap()
            .sub,
        me.sub
    );

    let cases: Vec<(Fault, Rule)> = vec![
        (
            Fault::UserinfoOtherSub,
            rule!(JwtError::SubjectMismatch { .. }),
        ),
        (Fault::UserinfoBadSignature, rule!(JwtError::BadSignature)),
        (Fault::UserinfoPlainJson, rule!(JwtError::NotSigned(_))),
    ];
    for (fault, is_expected) in cases {
        mock.clear_faults();
        mock.inject(fault);
        match client
            .userinfo(&tokens.access_token, &tokens.claims.sub)
            .await
        {
            Err(Error::Userinfo(e)) => assert!(is_expected(&e), "{fault:?}: {e:?}"),
            other => panic!("{fault:?}: {other:?}"),
        }
    }
    mock.clear_faults();
    let err = client
        .userinfo(
            &doximity::secret::AccessToken::new("not-a-token".into()),
            &me.sub,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TokenRejected { .. }), "{err:?}");
}

#[tokio::test]
async fn token_endpoint_failures_are_typed() {
    let mock = start().await;
    let client = client(&mock).await;
    mock.inject(Fault::TokenStatus(500));
    let err = login_error(&mock, &client).await;
    assert!(
        matches!(err, Error::Unavailable { status: 500, .. }) && err.is_retryable(),
        "{err:?}"
    );
    mock.clear_faults();
    mock.inject(Fault::TokenGarbage);
    let err = login_error(&mock, &client).await;
    assert!(
        matches!(err, Error::NotJson { status: 200, ref content_type, .. } if content_type == "text/html"),
        "{err:?}"
    );
    mock.clear_faults();
    // Redirects are never followed.
    mock.inject(Fault::TokenStatus(302));
    let err = login_error(&mock, &client).await;
    assert!(
        matches!(err, Error::UnexpectedStatus { status: 302, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn client_authentication_is_basic_unless_opted_out() {
    let mock = start().await;
    let bad_secret = config(&mock);
    let demo = mock.client();
    let bad_secret = doximity::Config::new(
        demo.client_id.clone(),
        doximity::secret::ClientSecret::new("wrong-secret".into()),
        REDIRECT.parse().unwrap(),
    )
    .with_issuer(bad_secret.issuer())
    .unwrap()
    .with_ca_cert_pem(mock.ca_pem().to_vec());
    let client = Client::discover(bad_secret).await.unwrap();
    let err = login_error(&mock, &client).await;
    assert!(
        matches!(err, Error::OAuth { status: 401, ref error, .. } if error == "invalid_client"),
        "{err:?}"
    );
    assert!(!err.to_string().contains("wrong-secret"));

    // client_secret_post is refused by Doximity's OpenID Connect API...
    let client = Client::discover(config(&mock).with_client_secret_post())
        .await
        .unwrap();
    let err = login_error(&mock, &client).await;
    assert!(
        matches!(err, Error::OAuth { status: 401, ref error, .. } if error == "invalid_client"),
        "{err:?}"
    );

    // ...and works against the older API when both sides opt in.
    let legacy = builder()
        .legacy_client_secret_post(true)
        .start()
        .await
        .unwrap();
    let client = Client::discover(config(&legacy).with_client_secret_post())
        .await
        .unwrap();
    let req = AuthorizeRequest::new().with_landing_page(doximity::authorize::LandingPage::Verify);
    let tokens = login(&legacy, &client, &req).await;
    let profile = client
        .legacy_current_user(&tokens.access_token)
        .await
        .unwrap();
    assert!(!profile.is_empty());
}

#[tokio::test]
async fn rate_limits_are_read_and_never_retried() {
    let mock = builder().rate_limit(5_000).start().await.unwrap();
    let client = client(&mock).await;
    let tokens = login(&mock, &client, &AuthorizeRequest::new()).await;
    let status = client
        .rate_limit()
        .expect("the token response carried rate-limit headers");
    assert_eq!(status.limit, 5_000);
    assert!(status.remaining < 5_000);
    let fetched = client.fetch_rate_limit(&tokens.access_token).await.unwrap();
    assert_eq!(fetched.limit, 5_000);

    mock.inject(Fault::RateLimitExhausted);
    let before = mock.requests(Endpoint::Userinfo);
    let err = client
        .userinfo(&tokens.access_token, &tokens.claims.sub)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::RateLimited { reset: Some(_), .. }),
        "{err:?}"
    );
    assert_eq!(
        mock.requests(Endpoint::Userinfo),
        before + 1,
        "exactly one request, no retry loop"
    );
}

#[tokio::test]
async fn logout_url_and_form_carry_the_documented_fields() {
    let (mock, client, tokens) = signed_in(&AuthorizeRequest::new()).await;
    let url = client
        .logout_url(&tokens.id_token, Some("st-1"))
        .await
        .unwrap();
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(q["id_token_hint"], tokens.id_token.secret());
    assert_eq!(q["post_logout_redirect_uri"], "http://127.0.0.1:3000/");
    assert_eq!(q["state"], "st-1");
    // The provider accepts it and sends the user back with the state.
    let response = browser(&mock).get(url).send().await.unwrap();
    assert_eq!(response.status(), 302);
    let location = response.headers()["location"].to_str().unwrap();
    assert!(location.starts_with("http://127.0.0.1:3000/"), "{location}");
    assert!(location.contains("state=st-1"), "{location}");

    let (endpoint, fields) = client.logout_form(&tokens.id_token, None).await.unwrap();
    assert_eq!(endpoint.path(), "/oauth/logout");
    assert!(fields.iter().any(|(k, _)| *k == "id_token_hint"));
    assert!(fields.iter().all(|(k, _)| *k != "state"));
}

#[tokio::test]
async fn errors_never_carry_secrets() {
    let mock: MockProvider = start().await;
    let client = client(&mock).await;
    let (location, pending) = authorize(&mock, &client, &AuthorizeRequest::new()).await;
    let code: String = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let err = replayed_code_error(&client, &pending, &location).await;
    for text in [err.to_string(), format!("{err:?}"), format!("{pending:?}")] {
        assert!(!text.contains(&code), "{text}");
        assert!(!text.contains(pending.state().secret().as_str()), "{text}");
        assert!(!text.contains(&mock.client().client_secret), "{text}");
    }
}

#[tokio::test]
async fn a_provider_advertising_rfc9207_must_send_iss_on_the_callback() {
    use support::tls_server::{TlsServer, json, provider};
    let server = TlsServer::start(provider(
        serde_json::json!({"authorization_response_iss_parameter_supported": true}),
        |_, _| json(400, &serde_json::json!({"error": "invalid_grant"})),
    ))
    .await;
    let client = Client::discover(server.config()).await.unwrap();
    assert!(
        client
            .metadata()
            .unwrap()
            .authorization_response_iss_parameter_supported
    );
    let pending = new_login(&client).await;
    let state: String =
        url::form_urlencoded::byte_serialize(pending.state().secret().as_bytes()).collect();
    let err = client
        .complete_login(&pending, &format!("code=c&state={state}"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Callback(CallbackError::MissingIssuer)),
        "{err:?}"
    );
    assert_eq!(
        server.hits("/oauth/token"),
        0,
        "refused before the exchange"
    );
    // With `iss` the callback passes and the code goes to the token endpoint.
    let iss: String = url::form_urlencoded::byte_serialize(server.issuer().as_bytes()).collect();
    let err = client
        .complete_login(&pending, &format!("code=c&state={state}&iss={iss}"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::OAuth { ref error, .. } if error == "invalid_grant"),
        "{err:?}"
    );
    assert_eq!(server.hits("/oauth/token"), 1);
}

#[tokio::test]
async fn the_mock_does_not_advertise_rfc9207_so_a_callback_without_iss_passes() {
    let mock = start().await;
    let client = client(&mock).await;
    assert!(
        !client
            .metadata()
            .unwrap()
            .authorization_response_iss_parameter_supported
    );
    let (location, pending) = authorize(&mock, &client, &AuthorizeRequest::new()).await;
    assert!(
        location.query_pairs().all(|(k, _)| k != "iss"),
        "{location}"
    );
    client
        .complete_login(&pending, location.query().unwrap())
        .await
        .unwrap();
}

#[tokio::test]
async fn refresh_failures_are_conclusive_only_when_the_grant_is_refused() {
    use support::tls_server::{Answer, TlsServer, provider, response};
    let (mock, client, tokens) = signed_in(&AuthorizeRequest::new()).await;

    // Transient: the provider is down, over its limit, or answers something that is not JSON.
    for fault in [
        Fault::TokenStatus(500),
        Fault::TokenStatus(503),
        Fault::TokenGarbage,
        Fault::RateLimitExhausted,
    ] {
        mock.clear_faults();
        mock.inject(fault);
        let err = client.refresh(&tokens, None).await.unwrap_err();
        assert!(!err.is_conclusive_refresh_failure(), "{fault:?}: {err:?}");
    }
    mock.clear_faults();

    // Transient too: a 403 HTML page (a proxy or firewall, no OAuth error body), a timeout.
    let server = TlsServer::start(provider(serde_json::json!({}), |_, path| match path {
        "/oauth/token" => Answer::Full(response(403, "text/html", b"<h1>Forbidden</h1>")),
        _ => Answer::Hold(Vec::new()),
    }))
    .await;
    let elsewhere = Client::discover(server.config()).await.unwrap();
    let err = elsewhere.refresh(&tokens, None).await.unwrap_err();
    assert!(
        matches!(err, Error::NotJson { status: 403, .. }) && !err.is_conclusive_refresh_failure(),
        "{err:?}"
    );
    let hold = TlsServer::start(provider(serde_json::json!({}), |_, _| {
        Answer::Hold(Vec::new())
    }))
    .await;
    let slow = Client::discover(
        hold.config()
            .with_timeout(std::time::Duration::from_millis(300)),
    )
    .await
    .unwrap();
    let err = slow.refresh(&tokens, None).await.unwrap_err();
    assert!(
        matches!(err, Error::Transport { .. }) && !err.is_conclusive_refresh_failure(),
        "{err:?}"
    );

    // Conclusive: the grant is refused (a rotated-away refresh token), or the refreshed ID
    // token changes the identity.
    let second = client.refresh(&tokens, None).await.unwrap();
    let err = client.refresh(&tokens, None).await.unwrap_err();
    assert!(err.is_conclusive_refresh_failure(), "{err:?}");
    mock.inject(Fault::RefreshChangesSub);
    let err = client.refresh(&second, None).await.unwrap_err();
    assert!(
        matches!(err, Error::IdToken(_)) && err.is_conclusive_refresh_failure(),
        "{err:?}"
    );
}

#[tokio::test]
async fn provider_text_never_forges_a_log_line() {
    use support::tls_server::{TlsServer, json, provider};
    const FORGED: &str = "bad\n2026-01-01 INFO forged";
    let (_mock, client, tokens) = signed_in(&AuthorizeRequest::new()).await;
    let server = TlsServer::start(provider(serde_json::json!({}), |_, _| {
        json(
            400,
            &serde_json::json!({"error": FORGED, "error_description": FORGED}),
        )
    }))
    .await;
    let elsewhere = Client::discover(server.config()).await.unwrap();
    let err = elsewhere.refresh(&tokens, None).await.unwrap_err();
    let Error::OAuth {
        ref error,
        ref description,
        ..
    } = err
    else {
        panic!("{err:?}")
    };
    assert_eq!(error, "bad\\n2026-01-01 INFO forged");
    assert_eq!(description.as_deref(), Some("bad\\n2026-01-01 INFO forged"));
    let shown = err.to_string();
    assert!(!shown.contains('\n'), "{shown:?}");
    // And a callback from the provider.
    let pending = new_login(&client).await;
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("state", pending.state().secret())
        .append_pair("error", FORGED)
        .append_pair("error_description", FORGED)
        .finish();
    let shown = client
        .complete_login(&pending, &q)
        .await
        .unwrap_err()
        .to_string();
    assert!(!shown.contains('\n'), "{shown:?}");
    assert!(
        shown.contains("INFO forged"),
        "escaped, not dropped: {shown:?}"
    );
}

/// Two MiB: twice the bound on provider answers.
const TWO_MIB: usize = 2 * 1024 * 1024;
const ONE_MIB: usize = 1024 * 1024;

/// A server whose `path` answers a 2 MiB body in the given way; every other path is a normal
/// provider. The client's timeout is long compared with the test: a client that waited for
/// the rest of the body would end in a transport timeout, not in `ResponseTooLarge`.
async fn oversized(
    path: &'static str,
    content_type: &'static str,
    chunked: bool,
) -> support::tls_server::TlsServer {
    use support::tls_server::{Answer, TlsServer, chunked_part, head_with_length, json, provider};
    let answer = move || {
        if chunked {
            // One and a half MiB of the two are sent, then nothing: the rest never comes.
            Answer::Hold(chunked_part(content_type, ONE_MIB + ONE_MIB / 2))
        } else {
            // The head declares two MiB and not one byte of the body is sent.
            Answer::Hold(head_with_length(content_type, TWO_MIB))
        }
    };
    if path == "/.well-known/jwks.json" {
        return TlsServer::start(move |issuer: &str, p: &str| match p {
            "/.well-known/openid-configuration" => json(
                200,
                &support::tls_server::discovery(issuer, &serde_json::json!({})),
            ),
            "/.well-known/jwks.json" => answer(),
            _ => json(404, &serde_json::json!({"error": "not_found"})),
        })
        .await;
    }
    TlsServer::start(provider(serde_json::json!({}), move |_, p| {
        if p == path {
            answer()
        } else {
            json(404, &serde_json::json!({"error": "not_found"}))
        }
    }))
    .await
}

/// The error of the code exchange for a callback with the code `c` and a new login's state.
async fn exchange_error(client: &Client) -> Error {
    let pending = new_login(client).await;
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("code", "c")
        .append_pair("state", pending.state().secret())
        .finish();
    client.complete_login(&pending, &q).await.unwrap_err()
}

fn too_large(err: &Error, endpoint: doximity::Endpoint) -> bool {
    matches!(err, Error::ResponseTooLarge { endpoint: e, limit } if *e == endpoint && *limit == ONE_MIB)
}

#[tokio::test]
async fn answers_over_one_mib_are_refused_without_reading_them_all() {
    let timeout = std::time::Duration::from_secs(30);
    let started = std::time::Instant::now();
    for chunked in [false, true] {
        // JWKS: discovery fails.
        let server = oversized("/.well-known/jwks.json", "application/json", chunked).await;
        let err = Client::discover(server.config().with_timeout(timeout))
            .await
            .unwrap_err();
        assert!(too_large(&err, doximity::Endpoint::Jwks), "{err:?}");

        // Token: the code exchange fails.
        let server = oversized("/oauth/token", "application/json", chunked).await;
        let client = Client::discover(server.config().with_timeout(timeout))
            .await
            .unwrap();
        let err = exchange_error(&client).await;
        assert!(too_large(&err, doximity::Endpoint::Token), "{err:?}");
        assert!(!err.is_retryable() && !err.is_conclusive_refresh_failure());

        // Userinfo.
        let server = oversized("/oauth/userinfo", "application/jwt", chunked).await;
        let client = Client::discover(server.config().with_timeout(timeout))
            .await
            .unwrap();
        let token = doximity::secret::AccessToken::new("t".into());
        let err = client.userinfo(&token, "sub").await.unwrap_err();
        assert!(too_large(&err, doximity::Endpoint::Userinfo), "{err:?}");
    }
    // None of the six waited for a body that never comes.
    assert!(started.elapsed() < timeout, "{:?}", started.elapsed());
}

#[tokio::test]
async fn an_answer_of_exactly_one_mib_is_read() {
    use support::tls_server::{Answer, TlsServer, provider, response};
    for (size, refused) in [(ONE_MIB, false), (ONE_MIB + 1, true)] {
        let server = TlsServer::start(provider(serde_json::json!({}), move |_, _| {
            Answer::Full(response(200, "application/json", &vec![b' '; size]))
        }))
        .await;
        let client = Client::discover(server.config()).await.unwrap();
        let err = exchange_error(&client).await;
        if refused {
            assert!(too_large(&err, doximity::Endpoint::Token), "{err:?}");
        } else {
            // Read in full, then found not to be JSON: the size rule let it through.
            assert!(matches!(err, Error::NotJson { .. }), "{err:?}");
        }
    }
}

#[tokio::test]
async fn an_unsigned_userinfo_answer_is_never_trusted() {
    let req = AuthorizeRequest::new().with_scopes(&"profile:read:basic".parse().unwrap());
    let (mock, client, tokens) = signed_in(&req).await;
    mock.inject(Fault::UserinfoPlainJson);
    let err = client
        .userinfo(&tokens.access_token, &tokens.claims.sub)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Userinfo(JwtError::NotSigned(ref t)) if t.starts_with("application/json")),
        "{err:?}"
    );
    let err = client
        .identify_access_token(&tokens.access_token)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Userinfo(JwtError::NotSigned(_))),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_lazy_client_makes_no_call_until_first_use() {
    let mock = start().await;
    let client = Client::lazy(config(&mock)).unwrap();
    assert!(!client.is_ready());
    assert!(client.metadata().is_none());
    assert!(client.check_session_iframe().is_none());
    assert_eq!(mock.requests(Endpoint::OpenIdConfiguration), 0);
    assert_eq!(mock.requests(Endpoint::Jwks), 0);
    let tokens = login(&mock, &client, &AuthorizeRequest::new()).await;
    assert!(client.is_ready());
    assert_eq!(mock.requests(Endpoint::OpenIdConfiguration), 1);
    assert_eq!(mock.requests(Endpoint::Jwks), 1);
    client.refresh(&tokens, None).await.unwrap();
    assert_eq!(mock.requests(Endpoint::OpenIdConfiguration), 1);
    // Only a configuration error fails at construction.
    let bad_ca = config(&mock).with_ca_cert_pem(b"not a certificate".to_vec());
    assert!(matches!(
        Client::lazy(bad_ca),
        Err(doximity::ConfigError::CaCert { .. })
    ));
}

#[tokio::test]
async fn concurrent_first_calls_make_one_discovery() {
    let mock = start().await;
    let client = Client::lazy(config(&mock)).unwrap();
    let calls = (0..32).map(|_| {
        let client = client.clone();
        async move { client.authorize_url(&AuthorizeRequest::new()).await }
    });
    for result in futures_util::future::join_all(calls).await {
        result.unwrap();
    }
    assert_eq!(mock.requests(Endpoint::OpenIdConfiguration), 1);
    assert_eq!(mock.requests(Endpoint::AuthorizationServerMetadata), 1);
    assert_eq!(mock.requests(Endpoint::Jwks), 1);
}

#[tokio::test]
async fn a_provider_down_at_start_is_retried_after_a_backoff_then_used() {
    let mock = start().await;
    let clock = TestClock::default();
    let client = Client::lazy_with_clock(config(&mock), clock.clock()).unwrap();
    // The provider's keys are unavailable at start.
    mock.inject(Fault::JwksStatus(503));
    let err = client
        .authorize_url(&AuthorizeRequest::new())
        .await
        .unwrap_err();
    let Error::ProviderUnavailable {
        retry_after,
        ref reason,
    } = err
    else {
        panic!("{err:?}")
    };
    assert_eq!(retry_after, doximity::LAZY_RETRY_MIN);
    assert!(
        matches!(**reason, Error::Unavailable { status: 503, .. }),
        "{reason:?}"
    );
    assert!(err.is_retryable() && !err.is_conclusive_refresh_failure());
    assert_eq!(mock.requests(Endpoint::Jwks), 1);

    // The provider comes back, but the backoff holds: calls fail fast with no request.
    mock.clear_faults();
    clock.advance(3);
    let calls = (0..8).map(|_| {
        let client = client.clone();
        async move { client.authorize_url(&AuthorizeRequest::new()).await }
    });
    for result in futures_util::future::join_all(calls).await {
        match result {
            Err(Error::ProviderUnavailable { retry_after, .. }) => {
                assert!(
                    retry_after <= std::time::Duration::from_secs(2),
                    "{retry_after:?}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(mock.requests(Endpoint::OpenIdConfiguration), 1);
    assert_eq!(mock.requests(Endpoint::Jwks), 1);

    // After the delay, one attempt, and everything works.
    clock.advance(3);
    let tokens = login(&mock, &client, &AuthorizeRequest::new()).await;
    assert!(client.is_ready());
    assert_eq!(mock.requests(Endpoint::OpenIdConfiguration), 2);
    assert_eq!(mock.requests(Endpoint::Jwks), 2);
    client
        .userinfo(&tokens.access_token, &tokens.claims.sub)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_backoff_grows_with_each_failure() {
    let mock = start().await;
    let clock = TestClock::default();
    let client = Client::lazy_with_clock(config(&mock), clock.clock()).unwrap();
    mock.inject(Fault::DiscoveryWrongIssuer);
    let mut seen = Vec::new();
    for _ in 0..6 {
        match client.ready().await {
            Err(Error::ProviderUnavailable {
                retry_after,
                reason,
            }) => {
                assert!(
                    matches!(
                        *reason,
                        Error::Discovery(DiscoveryError::IssuerMismatch { .. })
                    ),
                    "{reason:?}"
                );
                seen.push(retry_after.as_secs());
                clock.advance(i64::try_from(retry_after.as_secs()).unwrap());
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(seen, [5, 10, 20, 40, 60, 60]);
    assert_eq!(mock.requests(Endpoint::OpenIdConfiguration), 6);
    mock.clear_faults();
    client.ready().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_provider_is_a_retryable_error_not_a_start_failure() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mock = start().await;
    let config = config(&mock)
        .with_issuer(&format!("https://127.0.0.1:{port}"))
        .unwrap();
    let client = Client::lazy(config).unwrap();
    let err = client.ready().await.unwrap_err();
    assert!(
        matches!(err, Error::ProviderUnavailable { ref reason, .. } if matches!(**reason, Error::Transport { .. })),
        "{err:?}"
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn an_access_token_is_verified_into_a_bearer_identity() {
    let req = AuthorizeRequest::new().with_scopes(&"profile:read:basic".parse().unwrap());
    let (mock, client, tokens) = signed_in(&req).await;
    let verified = client
        .verify_access_token(&tokens.access_token)
        .await
        .unwrap();
    assert_eq!(verified.sub(), tokens.claims.sub);
    assert_eq!(verified.issuer(), mock.issuer());
    assert!(verified.audiences().contains(&mock.client().client_id));
    assert!(verified.scopes().contains("profile:read:basic"));
    assert!(verified.userinfo().name.is_some());
    assert_eq!(
        verified.access_token().secret(),
        tokens.access_token.secret()
    );
    assert!(!format!("{verified:?}").contains(tokens.access_token.secret().as_str()));

    let basic = login(&mock, &client, &AuthorizeRequest::new()).await;
    let verified = client
        .verify_access_token(&basic.access_token)
        .await
        .unwrap();
    assert_eq!(verified.scopes().to_string(), "openid");

    // Refused: an unknown token, an unsigned answer, a bad signature.
    let err = client
        .verify_access_token(&doximity::secret::AccessToken::new("nope".into()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TokenRejected { .. }), "{err:?}");
    for fault in [Fault::UserinfoPlainJson, Fault::UserinfoBadSignature] {
        mock.clear_faults();
        mock.inject(fault);
        let err = client
            .verify_access_token(&tokens.access_token)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Userinfo(_)), "{fault:?}: {err:?}");
    }
}

#[tokio::test]
async fn id_tokens_are_verified_in_a_sign_in_form_and_a_presented_form() {
    let mock = start().await;
    let (client, clock) = clocked_client(&mock).await;
    let (location, pending) = authorize(&mock, &client, &AuthorizeRequest::new()).await;
    let tokens = client
        .complete_login(&pending, location.query().unwrap())
        .await
        .unwrap();

    // Sign-in form: the nonce of this login is required.
    client
        .verify_sign_in_id_token(&tokens.id_token, pending.nonce(), None)
        .await
        .unwrap();
    let other = new_login(&client).await;
    let err = client
        .verify_sign_in_id_token(&tokens.id_token, other.nonce(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::IdToken(JwtError::NonceMismatch)),
        "{err:?}"
    );

    // Presented form: no nonce, every other rule.
    let claims = client
        .verify_presented_id_token(&tokens.id_token)
        .await
        .unwrap();
    assert_eq!(claims.sub, tokens.claims.sub);
    let mut forged = tokens.id_token.secret().to_owned();
    forged.truncate(forged.len() - 4);
    forged.push_str("AAAA");
    let err = client
        .verify_presented_id_token(&doximity::secret::RawIdToken::new(forged))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::IdToken(JwtError::BadSignature)),
        "{err:?}"
    );
    clock.advance(3 * 3600);
    let err = client
        .verify_presented_id_token(&tokens.id_token)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::IdToken(JwtError::Expired { .. })),
        "{err:?}"
    );
}
