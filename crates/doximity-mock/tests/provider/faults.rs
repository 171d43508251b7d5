use doximity_mock::{Fault, MockProvider};
use serde_json::{Value, json};

use crate::support::{Harness, Tokens, decode, now, verifies};

/// Injects `fault`, runs a login and code exchange, clears it, returns the tokens.
async fn tokens_with(h: &Harness, fault: Fault) -> Tokens {
    h.mock.clear_faults();
    h.mock.inject(fault);
    let tokens = h.tokens().await;
    h.mock.clear_faults();
    tokens
}

#[tokio::test]
async fn id_token_claim_faults() {
    let h = Harness::auto().await;
    let issuer = h.mock.issuer();
    let claims = |t: &Tokens| decode(&t.id_token).1;

    let t = tokens_with(&h, Fault::IdTokenWrongIssuer).await;
    assert_ne!(claims(&t)["iss"], issuer.as_str());
    let t = tokens_with(&h, Fault::IdTokenWrongAudience).await;
    let aud = claims(&t)["aud"].clone();
    assert_eq!(aud.as_array().unwrap().len(), 2);
    assert!(
        !aud.as_array()
            .unwrap()
            .contains(&json!("doximity-demo-client"))
    );
    let t = tokens_with(&h, Fault::IdTokenExtraAudience).await;
    assert_eq!(
        claims(&t)["aud"],
        json!([issuer, "doximity-demo-client", "https://evil.example"])
    );
    let t = tokens_with(&h, Fault::IdTokenWrongAzp).await;
    assert!(claims(&t)["azp"].is_string());
    assert_ne!(claims(&t)["azp"], "doximity-demo-client");
    let t = tokens_with(&h, Fault::IdTokenMissingAzp).await;
    assert!(claims(&t).get("azp").is_none());
    let t = tokens_with(&h, Fault::IdTokenExpired).await;
    assert!(claims(&t)["exp"].as_i64().unwrap() < now() - 300);
    let t = tokens_with(&h, Fault::IdTokenIatInFuture).await;
    assert!(claims(&t)["iat"].as_i64().unwrap() > now() + 300);
    let t = tokens_with(&h, Fault::IdTokenMissingNonce).await;
    assert!(claims(&t).get("nonce").is_none());
    let t = tokens_with(&h, Fault::IdTokenWrongNonce).await;
    assert!(claims(&t)["nonce"].is_string());
    assert_ne!(claims(&t)["nonce"], "nonce-456");
    let t = tokens_with(&h, Fault::IdTokenBadAtHash).await;
    assert_ne!(claims(&t)["at_hash"], crate::support::at_hash(&t.access));
    let t = tokens_with(&h, Fault::IdTokenMissingSub).await;
    assert!(claims(&t).get("sub").is_none());
    let t = tokens_with(&h, Fault::IdTokenStringAcr).await;
    assert_eq!(claims(&t)["acr"], json!("2"));

    // Each of these is still properly signed: only the named claim is wrong.
    let jwks = h.jwks().await;
    for fault in [
        Fault::IdTokenWrongIssuer,
        Fault::IdTokenExpired,
        Fault::IdTokenStringAcr,
    ] {
        assert!(verifies(&jwks, &tokens_with(&h, fault).await.id_token));
    }
}

#[tokio::test]
async fn id_token_signature_faults() {
    let h = Harness::auto().await;
    let jwks = h.jwks().await;

    let t = tokens_with(&h, Fault::IdTokenBadSignature).await;
    let (header, _) = decode(&t.id_token);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"], jwks["keys"][0]["kid"]);
    assert!(!verifies(&jwks, &t.id_token));

    let t = tokens_with(&h, Fault::IdTokenAlgNone).await;
    assert_eq!(decode(&t.id_token).0, json!({"alg": "none"}));
    assert!(t.id_token.ends_with('.'));

    let t = tokens_with(&h, Fault::IdTokenHs256WithClientSecret).await;
    assert_eq!(decode(&t.id_token).0["alg"], "HS256");
    let (input, signature) = t.id_token.rsplit_once('.').unwrap();
    use hmac::Mac as _;
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(h.client.client_secret.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    use base64::Engine as _;
    let expected =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    assert_eq!(signature, expected);

    let t = tokens_with(&h, Fault::IdTokenUnknownKid).await;
    let (header, _) = decode(&t.id_token);
    assert_eq!(header["alg"], "RS256");
    let kids: Vec<&Value> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| &k["kid"])
        .collect();
    assert!(!kids.contains(&&header["kid"]));
    // Not signed by any published key either.
    let mut relabelled = jwks.clone();
    relabelled["keys"][0]["kid"] = header["kid"].clone();
    assert!(!verifies(&relabelled, &t.id_token));
    assert_eq!(h.jwks().await, jwks, "the unknown key is never published");
}

#[tokio::test]
async fn id_token_faults_apply_to_refreshes_too() {
    let h = Harness::auto().await;
    let tokens = h.tokens().await;
    h.mock.inject(Fault::IdTokenStringAcr);
    let json: Value = h.refresh(&tokens.refresh, None).await.json().await.unwrap();
    assert_eq!(
        decode(json["id_token"].as_str().unwrap()).1["acr"],
        json!("2")
    );
}

#[tokio::test]
async fn refresh_faults_change_the_refreshed_id_token_only() {
    let h = Harness::auto().await;
    let issuer = h.mock.issuer();
    let cases: [(Fault, &str); 4] = [
        (Fault::RefreshChangesSub, "sub"),
        (Fault::RefreshChangesIssuer, "iss"),
        (Fault::RefreshChangesAudience, "aud"),
        (Fault::RefreshAddsNonce, "nonce"),
    ];
    for (fault, claim) in cases {
        h.mock.clear_faults();
        h.mock.inject(fault);
        // The code exchange is untouched...
        let tokens = h.tokens().await;
        let original = decode(&tokens.id_token).1;
        assert_eq!(original["iss"], issuer.as_str());
        assert_eq!(original["sub"], h.mock.clinicians()[0].sub.as_str());
        // ...the refresh is not.
        let json: Value = h.refresh(&tokens.refresh, None).await.json().await.unwrap();
        let refreshed = decode(json["id_token"].as_str().unwrap()).1;
        if claim == "nonce" {
            assert!(refreshed["nonce"].is_string(), "{fault:?}");
            assert_ne!(refreshed["nonce"], original["nonce"], "{fault:?}");
            assert_ne!(refreshed["nonce"], original["nonce"], "{fault:?}");
        } else {
            assert_ne!(refreshed[claim], original[claim], "{fault:?}");
        }
    }
}

#[tokio::test]
async fn userinfo_faults() {
    let h = Harness::auto().await;
    let tokens = h.tokens().await;
    let jwks = h.jwks().await;

    h.mock.inject(Fault::UserinfoOtherSub);
    let jwt = h.userinfo(&tokens.access).await.text().await.unwrap();
    assert!(verifies(&jwks, &jwt));
    assert_ne!(decode(&jwt).1["sub"], h.mock.clinicians()[0].sub.as_str());

    h.mock.clear_faults();
    h.mock.inject(Fault::UserinfoBadSignature);
    let jwt = h.userinfo(&tokens.access).await.text().await.unwrap();
    assert!(!verifies(&jwks, &jwt));

    h.mock.clear_faults();
    h.mock.inject(Fault::UserinfoPlainJson);
    let response = h.userinfo(&tokens.access).await;
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["sub"], h.mock.clinicians()[0].sub.as_str());

    h.mock.clear_faults();
    h.mock.inject(Fault::UserinfoStatus(503));
    let response = h.userinfo(&tokens.access).await;
    assert_eq!(response.status(), 503);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"error": "server_error"})
    );
}

#[tokio::test]
async fn endpoint_status_faults() {
    let h = Harness::auto().await;
    let tokens = h.tokens().await;

    h.mock.inject(Fault::TokenStatus(500));
    let login = h.login().await;
    let response = h.exchange(&login).await;
    assert_eq!(response.status(), 500);
    assert!(response.headers().get("x-rate-limit-limit").is_some());
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"error": "server_error"})
    );
    h.mock.clear_faults();
    // The code was not spent by the failed answer.
    assert_eq!(h.exchange(&login).await.status(), 200);

    h.mock.inject(Fault::TokenGarbage);
    let response = h.refresh(&tokens.refresh, None).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err());
    h.mock.clear_faults();

    h.mock.inject(Fault::RevokeStatus(503));
    assert_eq!(h.revoke(&tokens.access).await.status(), 503);
    h.mock.clear_faults();
    assert_eq!(
        h.userinfo(&tokens.access).await.status(),
        200,
        "not revoked"
    );

    h.mock.inject(Fault::JwksStatus(404));
    let response = h
        .http
        .get(h.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    h.mock.clear_faults();
}

#[tokio::test]
async fn discovery_wrong_issuer_fault() {
    let h = Harness::start(MockProvider::builder()).await;
    h.mock.inject(Fault::DiscoveryWrongIssuer);
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let d: Value = h.get_json(path).await;
        assert_ne!(d["issuer"], h.mock.issuer().as_str());
        assert_eq!(
            d["token_endpoint"],
            format!("{}/oauth/token", h.mock.issuer())
        );
    }
    h.mock.clear_faults();
    let d: Value = h.get_json("/.well-known/openid-configuration").await;
    assert_eq!(d["issuer"], h.mock.issuer().as_str());
}

#[tokio::test]
async fn several_faults_can_be_active_at_once() {
    let h = Harness::auto().await;
    h.mock.inject(Fault::IdTokenMissingAzp);
    h.mock.inject(Fault::IdTokenStringAcr);
    let claims = decode(&h.tokens().await.id_token).1;
    assert!(claims.get("azp").is_none());
    assert_eq!(claims["acr"], json!("2"));
}
