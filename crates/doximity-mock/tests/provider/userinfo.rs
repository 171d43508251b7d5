use serde_json::json;

use crate::support::{Harness, Tokens, set};

#[tokio::test]
async fn userinfo_is_a_signed_jwt_with_profile_claims() {
    let h = Harness::auto().await;
    let tokens = h.tokens().await;
    let response = h.userinfo(&tokens.access).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/jwt");
    let jwt = response.text().await.unwrap();
    let claims = h.verified_claims(&jwt).await;
    let who = &h.mock.clinicians()[0];
    let issuer = h.mock.issuer();
    assert_eq!(claims["iss"], issuer.as_str());
    assert_eq!(claims["aud"], json!([issuer, "doximity-demo-client"]));
    assert_eq!(claims["sub"], who.sub.as_str());
    assert_eq!(claims["name"], who.name.as_str());
    assert_eq!(claims["given_name"], who.given_name.as_str());
    assert_eq!(claims["family_name"], who.family_name.as_str());
    assert_eq!(claims["middle_name"], who.middle_name.as_str());
    assert_eq!(claims["credentials"], who.credentials.as_str());
    assert_eq!(claims["profile_photo_url"], who.profile_photo_url.as_str());
    assert_eq!(claims["specialty"], who.specialty.as_str());
    assert_eq!(claims["email"], who.email.as_str());
}

/// Signs in with `scope`, then the verified claims of the userinfo answer.
async fn userinfo_claims(h: &Harness, scope: &str) -> serde_json::Value {
    let login = h.login_with(|p| set(p, "scope", scope)).await;
    let tokens = Tokens::from(
        h.exchange(&login)
            .await
            .json::<serde_json::Value>()
            .await
            .unwrap(),
    );
    let jwt = h.userinfo(&tokens.access).await.text().await.unwrap();
    h.verified_claims(&jwt).await
}

#[tokio::test]
async fn userinfo_claims_follow_the_scope() {
    let h = Harness::auto().await;
    let claims = userinfo_claims(&h, "openid").await;
    let mut keys: Vec<&str> = claims
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["aud", "iss", "sub"]);

    let claims = userinfo_claims(&h, "openid profile:read:basic").await;
    assert!(claims.get("specialty").is_some());
    assert!(claims.get("email").is_none());
}

/// The claims of a userinfo call made with a token for `scope`.
async fn claims_for(h: &Harness, scope: &str) -> serde_json::Map<String, serde_json::Value> {
    userinfo_claims(h, scope).await.as_object().unwrap().clone()
}

#[tokio::test]
async fn email_and_permission_claims_need_their_own_scopes() {
    let h = Harness::auto().await;
    let who = h.mock.clinicians()[0].clone();
    const EMAIL: [&str; 3] = ["email", "primary_email", "emails"];

    let basic = claims_for(&h, "openid profile:read:basic").await;
    assert_eq!(basic["profile_uuid"], who.profile_uuid.as_str());
    assert_ne!(basic["profile_uuid"], basic["sub"]);
    for claim in EMAIL.iter().chain(&["permissions"]) {
        assert!(!basic.contains_key(*claim), "{claim} without its scope");
    }

    let email = claims_for(&h, "openid profile:read:email").await;
    assert_eq!(email["primary_email"], who.email.as_str());
    assert_eq!(email["email"], who.email.as_str());
    assert_eq!(email["emails"], json!(who.emails));
    assert_eq!(email["emails"][0], who.email.as_str());
    assert!(!email.contains_key("name") && !email.contains_key("profile_uuid"));
    assert!(!email.contains_key("permissions"));

    let permissions = claims_for(&h, "openid profile:read:permissions").await;
    assert_eq!(permissions["permissions"], json!(who.permissions));
    for claim in EMAIL.iter().chain(&["name"]) {
        assert!(
            !permissions.contains_key(*claim),
            "{claim} without its scope"
        );
    }

    // Scopes without a documented claim add none.
    let other = claims_for(
        &h,
        "openid profile:read:office profile:read:dialer_phone colleagues:read dialer",
    )
    .await;
    let mut keys: Vec<&str> = other.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["aud", "iss", "sub"]);
}

async fn assert_invalid_token(response: reqwest::Response) {
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
}

#[tokio::test]
async fn userinfo_refuses_missing_unknown_revoked_and_expired_tokens() {
    let h = Harness::auto().await;
    let missing = h.http.get(h.url("/oauth/userinfo")).send().await.unwrap();
    assert_invalid_token(missing).await;
    assert_invalid_token(h.userinfo("made-up").await).await;
    let query_only = h
        .http
        .get(h.url("/oauth/userinfo"))
        .query(&[("access_token", "x")])
        .send()
        .await
        .unwrap();
    assert_invalid_token(query_only).await;

    let revoked = h.tokens().await;
    h.revoke(&revoked.access).await;
    assert_invalid_token(h.userinfo(&revoked.access).await).await;

    let expiring = h.tokens().await;
    // Valid until its 1800 s lifetime ends: 10 s before (a margin for the real clock, which
    // runs on under the offset), then refused at 1800.
    h.mock.set_clock_offset(1790);
    assert_eq!(h.userinfo(&expiring.access).await.status(), 200);
    h.mock.set_clock_offset(1800);
    assert_invalid_token(h.userinfo(&expiring.access).await).await;
    // A refresh token is not an access token.
    h.mock.set_clock_offset(0);
    assert_invalid_token(h.userinfo(&expiring.refresh).await).await;
}
