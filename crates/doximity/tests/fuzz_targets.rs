//! The fuzz targets of `doximity` on stable: the committed corpus, inputs derived from it, and
//! inputs built from the protocol's own shapes. Each target must never panic.

#![allow(clippy::unwrap_used)] // Test helpers: a failure should panic.

#[path = "../../../fuzz/replay.rs"]
mod replay;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use doximity::fuzzing;
use proptest::prelude::*;

const CALLBACK_TOKENS: &[&[u8]] = &[
    b"&",
    b"=",
    b"?",
    b"#",
    b"%",
    b"%0a",
    b"%00",
    b"%E2%80%AE",
    b"+",
    b"code=",
    b"state=",
    b"state=fuzz-state",
    b"iss=",
    b"iss=https%3A%2F%2Fauth.doximity.com",
    b"error=",
    b"error=access_denied",
    b"error=login_required",
    b"error_description=",
    b"session_state=",
];
const JWT_TOKENS: &[&[u8]] = &[b".", b"=", b"eyJ", b"AAAA", b"_-", b"\"", b"{}"];
const JSON_TOKENS: &[&[u8]] = &[
    b"\"",
    b",",
    b":",
    b"{",
    b"}",
    b"[",
    b"]",
    b"null",
    b"true",
    b"-1",
    b"1e400",
    b"9223372036854775807",
    b"-9223372036854775808",
    b"\"aud\"",
    b"\"iss\"",
    b"\"exp\"",
    b"\"iat\"",
    b"\"nonce\"",
    b"\"azp\"",
    b"\"at_hash\"",
    b"\"acr\"",
    b"\"kid\"",
    b"\"n\"",
    b"\"e\"",
    b"\"kty\"",
    b"\"RSA\"",
    b"\"alg\"",
    b"\"use\"",
    b"\"fuzz-client\"",
    b"\"https://auth.doximity.com\"",
    b"\\u0000",
    b"\\n",
];

fn b64(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(s)
}

/// A callback query made of the parameters the parser knows, in any order and repetition.
fn callback_query() -> impl Strategy<Value = String> {
    let name = prop::sample::select(vec![
        "code",
        "state",
        "session_state",
        "error",
        "error_description",
        "iss",
        "x",
    ]);
    let value = prop_oneof![
        Just("fuzz-state".to_owned()),
        Just("https://auth.doximity.com".to_owned()),
        Just("access_denied".to_owned()),
        "\\PC{0,12}",
        ".{0,12}",
    ];
    prop::collection::vec((name, value), 0..7).prop_map(|pairs| {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            s.append_pair(k, &v);
        }
        s.finish()
    })
}

/// A JSON value made of the shapes claims take.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::{Value, json};
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        Just(json!(fuzzing::ISSUER)),
        Just(json!(fuzzing::CLIENT_ID)),
        Just(json!(fuzzing::SUB)),
        Just(json!(fuzzing::NONCE)),
        "\\PC{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop::collection::vec(inner, 0..4).prop_map(Value::Array)
    })
}

/// A claims object: the registered claims with arbitrary values, some left out.
fn claims() -> impl Strategy<Value = serde_json::Map<String, serde_json::Value>> {
    let mut names = fuzzing::REGISTERED_CLAIMS.to_vec();
    names.extend(["at_hash", "name"]);
    prop::collection::vec((prop::sample::select(names), json_value()), 0..12)
        .prop_map(|pairs| pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

replay::corpus_and_mutations! {
    callback: callback_corpus, callback_mutated, CALLBACK_TOKENS;
    jwt: jwt_corpus, jwt_mutated, JWT_TOKENS;
    jwt_claims: jwt_claims_corpus, jwt_claims_mutated, JSON_TOKENS;
    jwks: jwks_corpus, jwks_mutated, JSON_TOKENS;
}

proptest! {
    #![proptest_config(replay::config())]

    #[test]
    fn callback_generated(query in callback_query()) {
        fuzzing::callback(query.as_bytes());
    }

    #[test]
    fn callback_bytes(input in prop::collection::vec(any::<u8>(), 0..256)) {
        fuzzing::callback(&input);
    }

    #[test]
    fn jwt_generated(header in json_value(), payload in claims(), sig in ".{0,8}") {
        let token = format!("{}.{}.{}", b64(&header.to_string()),
            b64(&serde_json::Value::Object(payload).to_string()), b64(&sig));
        fuzzing::jwt(token.as_bytes());
    }

    #[test]
    fn jwt_claims_generated(payload in claims()) {
        fuzzing::jwt_claims(&serde_json::to_vec(&payload).unwrap());
    }
}
