//! The fuzz targets of `tower-doximity` on stable: the committed corpus, inputs derived from
//! it, and inputs built from each format's own shapes. Each target must never panic.
//!
//! The seeds that need real session cookies are made by
//! `cargo test -p tower-doximity --test fuzz_targets -- --ignored write_generated_seeds`.

#![allow(clippy::unwrap_used)] // Test helpers: a failure should panic.

#[path = "../../../fuzz/replay.rs"]
mod replay;

use std::time::Duration;

use proptest::prelude::*;
use tower_doximity::fuzzing;

const COOKIE_TOKENS: &[&[u8]] = &[
    b";",
    b"=",
    b" ",
    b"\"",
    b"\t",
    b"\n",
    b"__Host-doximity-session=",
    b"__Host-doximity-tokens=",
    b"__Host-doximity-login=",
    b"a=",
];
const AUTHORIZATION_TOKENS: &[&[u8]] = &[
    b"Bearer ",
    b"bearer",
    b"BEARER ",
    b" ",
    b"=",
    b".",
    b"+",
    b"/",
    b"~",
    b"\n",
    b"\xc3\xa9",
];
const RETURN_TO_TOKENS: &[&[u8]] = &[
    b"/",
    b"//",
    b"\\",
    b"%2F",
    b"%2f",
    b"%5C",
    b"%25",
    b"%2e",
    b".",
    b"..",
    b"?",
    b"#",
    b":",
    b"@",
    b"%00",
    b"%0a",
    b"https:",
    b"\xef\xbc\x8f",
    b"%EF%BC%8F",
];
const JSON_TOKENS: &[&[u8]] = &[
    b"\"",
    b",",
    b":",
    b"{",
    b"}",
    b"[",
    b"]",
    b"null",
    b"-1",
    b"1e400",
    b"-9223372036854775808",
    b"9223372036854775807",
    b"\"expires_at\"",
    b"\"scopes\"",
    b"\"claims\"",
    b"\"sub\"",
    b"\\u0000",
];
const POSTCARD_TOKENS: &[&[u8]] = &[
    b"\x00",
    b"\x01",
    b"\x7f",
    b"\x80",
    b"\xff\xff\xff\xff\x0f",
    b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
    b"openid",
    b" ",
    b"{}",
    b"\"",
];

replay::corpus_and_mutations! {
    identity_cookie: identity_cookie_corpus, identity_cookie_mutated, POSTCARD_TOKENS;
    tokens_cookie: tokens_cookie_corpus, tokens_cookie_mutated, JSON_TOKENS;
    cookie_header: cookie_header_corpus, cookie_header_mutated, COOKIE_TOKENS;
    authorization: authorization_corpus, authorization_mutated, AUTHORIZATION_TOKENS;
    return_to: return_to_corpus, return_to_mutated, RETURN_TO_TOKENS;
}

proptest! {
    #![proptest_config(replay::config())]

    #[test]
    fn identity_cookie_bytes(input in prop::collection::vec(any::<u8>(), 0..128)) {
        fuzzing::identity_cookie(&input);
    }

    #[test]
    fn cookie_header_generated(pairs in prop::collection::vec((
        prop::sample::select(vec!["__Host-doximity-session", "__Host-doximity-tokens", "a", " ", ""]),
        "[ -~]{0,12}",
        prop::sample::select(vec!["; ", ";", "\n", " ;", ""]),
    ), 0..6)) {
        let header: String = pairs.iter().map(|(n, v, sep)| format!("{n}={v}{sep}")).collect();
        fuzzing::cookie_header(header.as_bytes());
    }

    #[test]
    fn authorization_generated(scheme in "(?i)bearer|basic|bearerx|", gap in " {0,3}", token in "[ -~]{0,24}") {
        fuzzing::authorization(format!("{scheme}{gap}{token}").as_bytes());
    }

    #[test]
    fn return_to_generated(parts in prop::collection::vec(prop::sample::select(RETURN_TO_TOKENS.to_vec()), 0..8)) {
        fuzzing::return_to(&parts.concat());
    }
}

/// Writes the seeds that hold real session cookies: identity-cookie plaintexts as the cookie
/// store writes them, tokens-cookie JSON, and `Cookie` headers carrying both cookies sealed
/// under the targets' key.
#[test]
#[ignore = "writes seeds into fuzz/corpus; run by hand when the cookie formats change"]
fn write_generated_seeds() {
    use doximity::UserInfo;
    use doximity::scope::Scopes;
    use http::{HeaderMap, HeaderValue, header};
    use tower_doximity::__bench::{IdentityCookie, Record};
    use tower_doximity::Key;

    let corpus = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let write = |target: &str, name: &str, data: &[u8]| {
        std::fs::write(corpus.join(target).join(name), data).unwrap();
    };
    let bench = IdentityCookie::new(Key::from(&[7u8; 64][..]), true);
    let plaintext = |record: &Record| {
        let set_cookie = bench.encode(record, Duration::from_secs(3600));
        let (pair, _) = set_cookie.to_str().unwrap().split_once(';').unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_str(pair).unwrap());
        bench.open(&headers).unwrap()
    };
    let profile: UserInfo = serde_json::from_value(serde_json::json!({
        "sub": "00000000-0000-4000-8000-000000000001", "name": "Dr. Fuzz",
        "specialty": "Testing"}))
    .unwrap();
    let scopes: Scopes = "openid profile:read:basic".parse().unwrap();
    let plain = Record::new(
        profile.sub.clone(),
        Scopes::openid(),
        None,
        1_700_000_000,
        None,
    );
    let full = Record::new(
        profile.sub.clone(),
        scopes,
        Some(profile),
        1_700_000_000,
        Some(1_700_003_600),
    );
    let (plain, full) = (plaintext(&plain), plaintext(&full));
    write("identity_cookie", "record", &plain);
    write("identity_cookie", "record-with-profile", &full);

    let tokens = serde_json::json!({"i": "session-id", "t": {
        "access_token": "fuzz-access-token", "refresh_token": "fuzz-refresh-token",
        "expires_at": 1_700_003_600, "scopes": "openid profile:read:basic",
        "id_token": "e30.e30.c2ln", "session_state": "ss",
        "claims": {"iss": "https://auth.doximity.com", "sub": "00000000-0000-4000-8000-000000000001",
            "aud": ["fuzz-client"], "azp": "fuzz-client", "exp": 1_700_003_600,
            "iat": 1_700_000_000, "nonce": "fuzz-nonce", "acr": 2, "extra": "kept"}}});
    let tokens = serde_json::to_vec(&tokens).unwrap();
    write("tokens_cookie", "tokens", &tokens);
    let minimal = br#"{"i":"","t":{"access_token":"a","refresh_token":null,"expires_at":null,"scopes":"openid","id_token":"","session_state":null,"claims":{"iss":"","sub":"s","aud":[],"exp":0,"iat":0}}}"#;
    write("tokens_cookie", "tokens-minimal", minimal);

    let codec = fuzzing::codec();
    let header = format!(
        "theme=dark; {}={}; {}=\"{}\"",
        codec.identity_name(),
        codec.seal_identity(&full),
        codec.tokens_name(),
        codec.seal_tokens(&tokens)
    );
    write("cookie_header", "sealed-session", header.as_bytes());
    let two = format!(
        "{}=stale; a=b\n{}={}",
        codec.identity_name(),
        codec.identity_name(),
        codec.seal_identity(&plain)
    );
    write("cookie_header", "sealed-after-stray", two.as_bytes());
}
