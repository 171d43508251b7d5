//! DPoP (RFC 9449): proofs checked at the token endpoint and userinfo, tokens bound to the
//! proof key, nonces on demand, and a switch for every check.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use doximity_mock::{DpopCheck, Fault, MockProvider};
use rsa::RsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::signature::{SignatureEncoding as _, Signer as _};
use rsa::traits::{PrivateKeyParts as _, PublicKeyParts as _};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::support::{Harness, Tokens, now};

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

struct Key(RsaPrivateKey);

impl Key {
    fn new() -> Self {
        Self(RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap())
    }

    fn jwk(&self) -> Value {
        json!({"kty": "RSA", "n": b64(self.0.n().to_bytes_be()), "e": b64(self.0.e().to_bytes_be())})
    }

    /// A proof with `claims`, after `edit` had its way with the header.
    fn sign(&self, claims: &Value, edit: impl FnOnce(&mut Value)) -> String {
        let mut header = json!({"typ": "dpop+jwt", "alg": "RS256", "jwk": self.jwk()});
        edit(&mut header);
        let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        let signature = SigningKey::<Sha256>::new(self.0.clone()).sign(input.as_bytes());
        format!("{input}.{}", b64(signature.to_vec()))
    }

    fn proof(&self, h: &Harness, method: &str, path: &str, access: Option<&str>) -> String {
        self.sign(&claims(h, method, path, access), |_| {})
    }
}

fn claims(h: &Harness, method: &str, path: &str, access: Option<&str>) -> Value {
    let mut claims = json!({
        "jti": b64(rand::random::<[u8; 16]>()),
        "htm": method,
        "htu": h.url(path),
        "iat": now(),
    });
    if let Some(token) = access {
        claims["ath"] = json!(b64(Sha256::digest(token.as_bytes())));
    }
    claims
}

async fn token_with_proof(h: &Harness, form: &[(&str, &str)], proof: &str) -> reqwest::Response {
    h.http
        .post(h.url("/oauth/token"))
        .basic_auth(&h.client.client_id, Some(&h.client.client_secret))
        .header("DPoP", proof)
        .form(form)
        .send()
        .await
        .unwrap()
}

/// Signs in and exchanges the code with a proof by `key`: DPoP-bound tokens.
async fn bound_tokens(h: &Harness, key: &Key) -> Tokens {
    let login = h.login().await;
    let form = h.code_form(&login);
    let response = token_with_proof(h, &form, &key.proof(h, "POST", "/oauth/token", None)).await;
    assert_eq!(response.status(), 200);
    let json: Value = response.json().await.unwrap();
    assert_eq!(json["token_type"], "DPoP");
    Tokens::from(json)
}

async fn userinfo_dpop(h: &Harness, access: &str, proof: &str) -> reqwest::Response {
    h.http
        .get(h.url("/oauth/userinfo"))
        .header("Authorization", format!("DPoP {access}"))
        .header("DPoP", proof)
        .send()
        .await
        .unwrap()
}

fn www_authenticate(response: &reqwest::Response) -> String {
    response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn both_documents_advertise_rs256_unless_told_not_to() {
    let h = Harness::auto().await;
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let doc = h.get_json(path).await;
        assert_eq!(
            doc["dpop_signing_alg_values_supported"],
            json!(["RS256"]),
            "{path}"
        );
    }
    h.mock.inject(Fault::DiscoveryNoDpop);
    let doc = h.get_json("/.well-known/openid-configuration").await;
    assert!(doc.get("dpop_signing_alg_values_supported").is_none());
}

#[tokio::test]
async fn bound_tokens_need_their_key_everywhere() {
    let h = Harness::auto().await;
    let key = Key::new();
    let tokens = bound_tokens(&h, &key).await;

    // Userinfo: the proof by the key works; Bearer and another key do not.
    let ok = userinfo_dpop(
        &h,
        &tokens.access,
        &key.proof(&h, "GET", "/oauth/userinfo", Some(&tokens.access)),
    )
    .await;
    assert_eq!(ok.status(), 200);
    let bearer = h.userinfo(&tokens.access).await;
    assert_eq!(bearer.status(), 401);
    assert_eq!(
        bearer.json::<Value>().await.unwrap()["error"],
        "invalid_token"
    );
    let other = Key::new();
    let stolen = userinfo_dpop(
        &h,
        &tokens.access,
        &other.proof(&h, "GET", "/oauth/userinfo", Some(&tokens.access)),
    )
    .await;
    assert_eq!(stolen.status(), 401);
    assert!(www_authenticate(&stolen).contains(r#"error="invalid_token""#));
    // DPoP scheme without a proof.
    let bare = h
        .http
        .get(h.url("/oauth/userinfo"))
        .header("Authorization", format!("DPoP {}", tokens.access))
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), 401);
    assert!(www_authenticate(&bare).contains(r#"error="invalid_dpop_proof""#));

    // Refresh: without a proof, with another key's: refused; with the key's: rotated, bound.
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", tokens.refresh.as_str()),
    ];
    let plain = h.refresh(&tokens.refresh, None).await;
    assert_eq!(plain.status(), 400);
    assert_eq!(
        plain.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    let wrong = token_with_proof(&h, &form, &other.proof(&h, "POST", "/oauth/token", None)).await;
    assert_eq!(
        wrong.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    let right = token_with_proof(&h, &form, &key.proof(&h, "POST", "/oauth/token", None)).await;
    assert_eq!(right.status(), 200);
    let refreshed = Tokens::from(right.json::<Value>().await.unwrap());
    assert_eq!(refreshed.json["token_type"], "DPoP");
    assert_eq!(
        h.userinfo(&refreshed.access).await.status(),
        401,
        "still bound"
    );
}

#[tokio::test]
async fn unbound_tokens_are_refused_under_the_dpop_scheme() {
    let h = Harness::auto().await;
    let tokens = h.tokens().await;
    assert_eq!(tokens.json["token_type"], "bearer");
    let key = Key::new();
    let response = userinfo_dpop(
        &h,
        &tokens.access,
        &key.proof(&h, "GET", "/oauth/userinfo", Some(&tokens.access)),
    )
    .await;
    assert_eq!(response.status(), 401);
    assert_eq!(h.userinfo(&tokens.access).await.status(), 200);
}

#[tokio::test]
async fn a_bearer_answer_leaves_tokens_unbound() {
    let h = Harness::auto().await;
    h.mock.inject(Fault::DpopTokenTypeBearer);
    let key = Key::new();
    let login = h.login().await;
    let form = h.code_form(&login);
    let response = token_with_proof(&h, &form, &key.proof(&h, "POST", "/oauth/token", None)).await;
    let tokens = Tokens::from(response.json::<Value>().await.unwrap());
    assert_eq!(tokens.json["token_type"], "bearer");
    assert_eq!(h.userinfo(&tokens.access).await.status(), 200);
}

type Edit = fn(&mut Value, &mut Value);

/// Every proof check refuses its defect, and its `DpopCheckOff` switch lets it through: the
/// refusal comes from that check alone.
#[tokio::test]
async fn each_proof_check_refuses_and_its_switch_lets_through() {
    let h = Harness::auto().await;
    let key = Key::new();
    let tokens = bound_tokens(&h, &key).await;
    let cases: [(DpopCheck, Edit); 7] = [
        (DpopCheck::Typ, |header, _| header["typ"] = json!("JWT")),
        (DpopCheck::Alg, |header, _| header["alg"] = json!("RS512")),
        (DpopCheck::Htm, |_, claims| claims["htm"] = json!("POST")),
        (DpopCheck::Htu, |_, claims| {
            let other = claims["htu"].as_str().unwrap().replace("userinfo", "token");
            claims["htu"] = json!(other);
        }),
        (DpopCheck::Iat, |_, claims| {
            claims["iat"] = json!(claims["iat"].as_i64().unwrap() - 600);
        }),
        (DpopCheck::Ath, |_, claims| {
            claims["ath"] = json!(b64(Sha256::digest(b"another")));
        }),
        (DpopCheck::Signature, |_, _| {}),
    ];
    for (check, edit) in cases {
        let make = || {
            let mut claims = claims(&h, "GET", "/oauth/userinfo", Some(&tokens.access));
            let mut header_edit = Value::Null;
            edit(&mut header_edit, &mut claims);
            let proof = key.sign(&claims, |header| {
                if let Some(map) = header_edit.as_object() {
                    for (k, v) in map {
                        header[k] = v.clone();
                    }
                }
            });
            if check == DpopCheck::Signature {
                let (input, signature) = proof.rsplit_once('.').unwrap();
                let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
                bytes[0] ^= 0xff;
                return format!("{input}.{}", b64(bytes));
            }
            proof
        };
        let refused = userinfo_dpop(&h, &tokens.access, &make()).await;
        assert_eq!(refused.status(), 401, "{check:?}");
        assert!(
            www_authenticate(&refused).contains("invalid_dpop_proof"),
            "{check:?}"
        );
        h.mock.inject(Fault::DpopCheckOff(check));
        let passed = userinfo_dpop(&h, &tokens.access, &make()).await;
        assert_eq!(passed.status(), 200, "{check:?} off");
        h.mock.clear_faults();
    }
}

#[tokio::test]
async fn replayed_proofs_and_private_keys_are_refused() {
    let h = Harness::auto().await;
    let key = Key::new();
    let tokens = bound_tokens(&h, &key).await;
    let proof = key.proof(&h, "GET", "/oauth/userinfo", Some(&tokens.access));
    assert_eq!(
        userinfo_dpop(&h, &tokens.access, &proof).await.status(),
        200
    );
    assert_eq!(
        userinfo_dpop(&h, &tokens.access, &proof).await.status(),
        401
    );
    h.mock.inject(Fault::DpopCheckOff(DpopCheck::Replay));
    assert_eq!(
        userinfo_dpop(&h, &tokens.access, &proof).await.status(),
        200
    );
    h.mock.clear_faults();

    let d = b64(key.0.d().to_bytes_be());
    let leaky = key.sign(
        &claims(&h, "GET", "/oauth/userinfo", Some(&tokens.access)),
        |header| {
            header["jwk"]["d"] = json!(d);
        },
    );
    assert_eq!(
        userinfo_dpop(&h, &tokens.access, &leaky).await.status(),
        401
    );
}

#[tokio::test]
async fn a_demanded_nonce_is_given_and_spends_no_code() {
    let h = Harness::start(
        MockProvider::builder()
            .auto_approve(true)
            .require_dpop_nonce(true),
    )
    .await;
    let key = Key::new();
    let login = h.login().await;
    let form = h.code_form(&login);
    let first = token_with_proof(&h, &form, &key.proof(&h, "POST", "/oauth/token", None)).await;
    assert_eq!(first.status(), 400);
    let nonce = first.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    assert_eq!(
        first.json::<Value>().await.unwrap()["error"],
        "use_dpop_nonce"
    );

    let mut with_nonce = claims(&h, "POST", "/oauth/token", None);
    with_nonce["nonce"] = json!(nonce);
    let second = token_with_proof(&h, &form, &key.sign(&with_nonce, |_| {})).await;
    assert_eq!(
        second.status(),
        200,
        "the code was not spent by the nonce demand"
    );
    let tokens = Tokens::from(second.json::<Value>().await.unwrap());

    // At userinfo: a 401 with a DPoP challenge and the nonce.
    let asked = userinfo_dpop(
        &h,
        &tokens.access,
        &key.proof(&h, "GET", "/oauth/userinfo", Some(&tokens.access)),
    )
    .await;
    assert_eq!(asked.status(), 401);
    assert!(www_authenticate(&asked).contains(r#"error="use_dpop_nonce""#));
    assert_eq!(asked.headers()["dpop-nonce"], nonce.as_str());
    let mut with_nonce = claims(&h, "GET", "/oauth/userinfo", Some(&tokens.access));
    with_nonce["nonce"] = json!(nonce);
    assert_eq!(
        userinfo_dpop(&h, &tokens.access, &key.sign(&with_nonce, |_| {}))
            .await
            .status(),
        200
    );
    // The nonce check is what refused the first one.
    h.mock.inject(Fault::DpopCheckOff(DpopCheck::Nonce));
    let without = userinfo_dpop(
        &h,
        &tokens.access,
        &key.proof(&h, "GET", "/oauth/userinfo", Some(&tokens.access)),
    )
    .await;
    assert_eq!(without.status(), 200);
}
