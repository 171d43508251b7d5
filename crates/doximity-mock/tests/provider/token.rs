use doximity_mock::{ClientRegistration, MockProvider};
use serde_json::{Value, json};

use crate::support::{Harness, Tokens, at_hash, decode, error_of, now, set};

#[tokio::test]
async fn code_exchange_returns_tokens_and_a_verifiable_id_token() {
    let h = Harness::auto().await;
    let login = h.login().await;
    let response = h.exchange(&login).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let tokens = Tokens::from(response.json::<Value>().await.unwrap());
    let json = &tokens.json;
    assert_eq!(json["token_type"], "bearer");
    assert_eq!(json["expires_in"], 1800);
    assert_eq!(
        json["scope"],
        "openid profile:read:basic profile:read:email"
    );
    assert_ne!(tokens.access, tokens.refresh);

    let (header, _) = decode(&tokens.id_token);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["typ"], "JWT");
    let jwks = h.jwks().await;
    assert_eq!(header["kid"], jwks["keys"][0]["kid"]);

    let claims = h.verified_claims(&tokens.id_token).await;
    let issuer = h.mock.issuer();
    let sub = claims["sub"].as_str().unwrap();
    assert_eq!(sub, h.mock.clinicians()[0].sub);
    assert_eq!(uuid::Uuid::parse_str(sub).unwrap().get_version_num(), 4);
    assert_eq!(claims["iss"], issuer.as_str());
    assert_eq!(claims["aud"], json!([issuer, "doximity-demo-client"]));
    assert_eq!(claims["azp"], "doximity-demo-client");
    assert_eq!(claims["nonce"], "nonce-456");
    assert_eq!(claims["at_hash"], at_hash(&tokens.access));
    assert_eq!(claims["acr"], json!(2));
    let iat = claims["iat"].as_i64().unwrap();
    let exp = claims["exp"].as_i64().unwrap();
    assert_eq!(exp - iat, 1800);
    assert!((iat - now()).abs() < 60);
    assert!(claims["auth_time"].as_i64().unwrap() <= iat);
}

#[tokio::test]
async fn access_token_ttl_sets_expires_in_and_exp() {
    let h = Harness::start(
        MockProvider::builder()
            .auto_approve(true)
            .access_token_ttl(std::time::Duration::from_secs(600)),
    )
    .await;
    let tokens = h.tokens().await;
    assert_eq!(tokens.json["expires_in"], 600);
    let (_, claims) = decode(&tokens.id_token);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        600
    );
}

#[tokio::test]
async fn without_openid_there_is_no_id_token() {
    let h = Harness::auto().await;
    let login = h
        .login_with(|p| set(p, "scope", "profile:read:basic"))
        .await;
    let json: Value = h.exchange(&login).await.json().await.unwrap();
    assert!(json.get("id_token").is_none());
    assert_eq!(json["scope"], "profile:read:basic");
}

#[tokio::test]
async fn client_secret_post_is_rejected_unless_legacy_is_enabled() {
    let h = Harness::auto().await;
    let login = h.login().await;
    let response = h
        .http
        .post(h.url("/oauth/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &login.code),
            ("redirect_uri", h.redirect_uri()),
            ("code_verifier", &login.verifier),
            ("client_id", &h.client.client_id),
            ("client_secret", &h.client.client_secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["www-authenticate"],
        "Basic realm=\"doximity-mock\""
    );
    assert_eq!(error_of(response).await, (401, "invalid_client".to_owned()));
    // Nothing was spent: Basic still works with the same code.
    assert_eq!(h.exchange(&login).await.status(), 200);

    let legacy = Harness::start(
        MockProvider::builder()
            .auto_approve(true)
            .legacy_client_secret_post(true),
    )
    .await;
    let login = legacy.login().await;
    let response = legacy
        .http
        .post(legacy.url("/oauth/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &login.code),
            ("redirect_uri", legacy.redirect_uri()),
            ("code_verifier", &login.verifier),
            ("client_id", &legacy.client.client_id),
            ("client_secret", &legacy.client.client_secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn wrong_or_missing_client_credentials_are_401() {
    let h = Harness::auto().await;
    let login = h.login().await;
    let form = h.code_form(&login);
    let wrong = h
        .http
        .post(h.url("/oauth/token"))
        .basic_auth(&h.client.client_id, Some("not-the-secret"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(wrong).await, (401, "invalid_client".to_owned()));
    let unknown = h
        .http
        .post(h.url("/oauth/token"))
        .basic_auth("someone-else", Some(&h.client.client_secret))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(unknown).await, (401, "invalid_client".to_owned()));
    let none = h
        .http
        .post(h.url("/oauth/token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(none).await, (401, "invalid_client".to_owned()));
    let garbage = h
        .http
        .post(h.url("/oauth/token"))
        .header("authorization", "Basic !!!not-base64")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(garbage).await, (401, "invalid_client".to_owned()));
}

#[tokio::test]
async fn basic_credentials_are_url_decoded() {
    let h = Harness::auto().await;
    let client = ClientRegistration::new("app:with space", "s3cret/+=%")
        .with_redirect_uri("http://127.0.0.1:3000/auth/doximity/callback");
    h.mock.register_client(client);
    // id and secret URL-encoded, then joined and base64-encoded.
    let response = h
        .http
        .post(h.url("/oauth/revoke"))
        .basic_auth("app%3Awith+space", Some("s3cret%2F%2B%3D%25"))
        .form(&[("token", "whatever")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn pkce_mismatch_and_redirect_mismatch_are_invalid_grant() {
    let h = Harness::auto().await;
    let login = h.login().await;
    let response = h
        .token_request(&[
            ("grant_type", "authorization_code"),
            ("code", &login.code),
            ("redirect_uri", h.redirect_uri()),
            (
                "code_verifier",
                "a-different-verifier-that-is-long-enough-to-be-valid",
            ),
        ])
        .await;
    assert_eq!(error_of(response).await, (400, "invalid_grant".to_owned()));

    let login = h.login().await;
    let response = h
        .token_request(&[
            ("grant_type", "authorization_code"),
            ("code", &login.code),
            ("redirect_uri", "http://127.0.0.1:3000/other"),
            ("code_verifier", &login.verifier),
        ])
        .await;
    assert_eq!(error_of(response).await, (400, "invalid_grant".to_owned()));

    let missing = h
        .token_request(&[
            ("grant_type", "authorization_code"),
            ("code", &h.login().await.code),
            ("redirect_uri", h.redirect_uri()),
        ])
        .await;
    assert_eq!(error_of(missing).await, (400, "invalid_request".to_owned()));
}

#[tokio::test]
async fn a_reused_code_is_invalid_grant_and_revokes_its_tokens() {
    let h = Harness::auto().await;
    let login = h.login().await;
    let first = Tokens::from(h.exchange(&login).await.json::<Value>().await.unwrap());
    assert_eq!(h.userinfo(&first.access).await.status(), 200);

    let second = h.exchange(&login).await;
    assert_eq!(error_of(second).await, (400, "invalid_grant".to_owned()));
    assert_eq!(h.userinfo(&first.access).await.status(), 401);
    let refresh = h.refresh(&first.refresh, None).await;
    assert_eq!(error_of(refresh).await, (400, "invalid_grant".to_owned()));
}

#[tokio::test]
async fn codes_expire_after_120_seconds() {
    let h = Harness::auto().await;
    let login = h.login().await;
    h.mock.set_clock_offset(121);
    let response = h.exchange(&login).await;
    assert_eq!(error_of(response).await, (400, "invalid_grant".to_owned()));

    h.mock.set_clock_offset(0);
    let login = h.login().await;
    h.mock.set_clock_offset(119);
    assert_eq!(h.exchange(&login).await.status(), 200);
}

#[tokio::test]
async fn unknown_codes_grant_types_and_repeated_parameters_are_rejected() {
    let h = Harness::auto().await;
    let unknown = h
        .token_request(&[
            ("grant_type", "authorization_code"),
            ("code", "nope"),
            ("redirect_uri", h.redirect_uri()),
            (
                "code_verifier",
                "a-verifier-that-is-long-enough-to-be-valid-1234",
            ),
        ])
        .await;
    assert_eq!(error_of(unknown).await, (400, "invalid_grant".to_owned()));
    let grant = h.token_request(&[("grant_type", "password")]).await;
    assert_eq!(
        error_of(grant).await,
        (400, "unsupported_grant_type".to_owned())
    );
    let none = h.token_request(&[("code", "x")]).await;
    assert_eq!(error_of(none).await, (400, "invalid_request".to_owned()));
    let twice = h
        .token_request(&[
            ("grant_type", "refresh_token"),
            ("grant_type", "refresh_token"),
        ])
        .await;
    assert_eq!(error_of(twice).await, (400, "invalid_request".to_owned()));
}

#[tokio::test]
async fn codes_are_bound_to_their_client() {
    let h = Harness::auto().await;
    let other = ClientRegistration::new("other-app", "other-secret")
        .with_redirect_uri("http://127.0.0.1:3000/auth/doximity/callback");
    h.mock.register_client(other);
    let login = h.login().await;
    let response = h
        .http
        .post(h.url("/oauth/token"))
        .basic_auth("other-app", Some("other-secret"))
        .form(&h.code_form(&login))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(response).await, (400, "invalid_grant".to_owned()));
}

#[tokio::test]
async fn refresh_rotates_and_kills_the_old_pair() {
    let h = Harness::auto().await;
    let first = h.tokens().await;
    let response = h.refresh(&first.refresh, None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let second = Tokens::from(response.json::<Value>().await.unwrap());
    assert_ne!(second.access, first.access);
    assert_ne!(second.refresh, first.refresh);
    assert_eq!(second.json["scope"], first.json["scope"]);

    assert_eq!(h.userinfo(&first.access).await.status(), 401);
    let reused = h.refresh(&first.refresh, None).await;
    assert_eq!(error_of(reused).await, (400, "invalid_grant".to_owned()));
    assert_eq!(h.userinfo(&second.access).await.status(), 200);

    let old = decode(&first.id_token).1;
    let new = h.verified_claims(&second.id_token).await;
    assert_eq!(new["iss"], old["iss"]);
    assert_eq!(new["sub"], old["sub"]);
    assert_eq!(new["aud"], old["aud"]);
    assert_eq!(new["auth_time"], old["auth_time"]);
    assert!(new.get("nonce").is_none());
    assert_eq!(new["at_hash"], at_hash(&second.access));
}

#[tokio::test]
async fn refresh_may_narrow_the_scope_but_never_widen_it() {
    let h = Harness::auto().await;
    let login = h
        .login_with(|p| set(p, "scope", "openid profile:read:basic"))
        .await;
    let first = Tokens::from(h.exchange(&login).await.json::<Value>().await.unwrap());

    let wider = h
        .refresh(&first.refresh, Some("openid profile:read:email"))
        .await;
    assert_eq!(error_of(wider).await, (400, "invalid_scope".to_owned()));
    // The failed attempt did not spend the refresh token.
    let narrower = h.refresh(&first.refresh, Some("openid")).await;
    assert_eq!(narrower.status(), 200);
    let second = Tokens::from(narrower.json::<Value>().await.unwrap());
    assert_eq!(second.json["scope"], "openid");
    let jwt = h.userinfo(&second.access).await.text().await.unwrap();
    assert!(decode(&jwt).1.get("name").is_none());

    // Later refreshes may return to the original grant, not beyond.
    let back = h
        .refresh(&second.refresh, Some("openid profile:read:basic"))
        .await;
    assert_eq!(back.status(), 200);
}

#[tokio::test]
async fn revoking_either_token_revokes_the_pair() {
    let h = Harness::auto().await;
    let by_access = h.tokens().await;
    let response = h.revoke(&by_access.access).await;
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.unwrap().is_empty());
    assert_eq!(h.userinfo(&by_access.access).await.status(), 401);
    assert_eq!(h.refresh(&by_access.refresh, None).await.status(), 400);

    let by_refresh = h.tokens().await;
    assert_eq!(h.revoke(&by_refresh.refresh).await.status(), 200);
    assert_eq!(h.userinfo(&by_refresh.access).await.status(), 401);
    assert_eq!(h.refresh(&by_refresh.refresh, None).await.status(), 400);

    assert_eq!(h.revoke("never-issued").await.status(), 200);
    let anonymous = h
        .http
        .post(h.url("/oauth/revoke"))
        .form(&[("token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(anonymous).await,
        (401, "invalid_client".to_owned())
    );
}

#[tokio::test]
async fn revoke_all_for_signs_a_user_out_everywhere() {
    let h = Harness::auto().await;
    let a = h.tokens().await;
    let b = h.tokens().await;
    h.mock.revoke_all_for(&h.mock.clinicians()[0].sub);
    assert_eq!(h.userinfo(&a.access).await.status(), 401);
    assert_eq!(h.userinfo(&b.access).await.status(), 401);
    assert_eq!(h.refresh(&b.refresh, None).await.status(), 400);
}
