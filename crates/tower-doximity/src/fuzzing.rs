//! The fuzz targets' entry points: the two session cookies, the `Cookie` header scan, the
//! bearer `Authorization` header and `return_to`, each fed from arbitrary bytes.
//!
//! Not part of the API: compiled only with the `fuzzing` feature, for the coverage-guided
//! targets in `fuzz/` and for the replay of their corpus under `cargo test`. Each function
//! must return normally for every input; a panic (an `assert!` below included) is a finding.
//! Besides "no panic", each checks what must hold of what it accepted.

use std::sync::OnceLock;

use doximity::TokenSet;
use http::{HeaderMap, HeaderValue, header};

use crate::bearer::{Presented, presented};
use crate::cookies::{Binding, CookieCodec, find_all, find_session};
use crate::return_to::{MAX_RETURN_TO_LEN, sanitize_return_to};
use crate::session::SessionRecord;
use crate::session::TokensWire;
use crate::{Key, MAX_BEARER_TOKEN_LEN};

/// The 64-byte cookie key the targets seal and open with.
pub const COOKIE_KEY: [u8; 64] = [0x5a; 64];
/// The issuer the cookies are bound to.
pub const ISSUER: &str = "https://auth.doximity.com";
/// The client id the cookies are bound to.
pub const CLIENT_ID: &str = "fuzz-client";
/// The app's origin, against which a sanitised `return_to` is resolved.
pub const APP_ORIGIN: &str = "https://app.example";

/// The codec of an https app (`__Host-` cookie names) over [`COOKIE_KEY`].
pub fn codec() -> &'static CookieCodecHandle {
    static CODEC: OnceLock<CookieCodecHandle> = OnceLock::new();
    CODEC.get_or_init(|| {
        let key = Key::from(&COOKIE_KEY[..]);
        CookieCodecHandle(CookieCodec::new(
            std::slice::from_ref(&key),
            crate::cookies::DEFAULT_PREFIX,
            true,
            Binding {
                issuer: ISSUER,
                client_id: CLIENT_ID,
            },
        ))
    })
}

/// The layer's cookie codec, opaque.
#[derive(Debug)]
pub struct CookieCodecHandle(CookieCodec);

impl CookieCodecHandle {
    /// Seals `plaintext` as the value of the identity cookie, as the cookie store does.
    pub fn seal_identity(&self, plaintext: &[u8]) -> String {
        self.0.seal_value(self.0.names.session(), plaintext)
    }

    /// Seals `plaintext` as the value of the tokens cookie, as the cookie store does.
    pub fn seal_tokens(&self, plaintext: &[u8]) -> String {
        self.0.seal_value(self.0.names.tokens(), plaintext)
    }

    /// The identity cookie's name.
    pub fn identity_name(&self) -> &str {
        self.0.names.session()
    }

    /// The tokens cookie's name.
    pub fn tokens_name(&self) -> &str {
        self.0.names.tokens()
    }
}

/// The identity cookie: `data` as the plaintext an opened cookie holds (decoded as the
/// cookie store decodes it), then sealed under the key and opened back through the codec and
/// through a `Cookie` header, and finally `data` as a sealed value from the network.
pub fn identity_cookie(data: &[u8]) {
    let codec = &codec().0;
    let name = codec.names.session();
    let direct = SessionRecord::from_cookie(data);
    if let Some(record) = &direct {
        let _ = record.profile();
        let _ = format!("{record:?}");
        let again = SessionRecord::from_cookie(&record.to_cookie());
        let again = again.as_ref();
        assert!(again.is_some(), "a decoded record does not re-encode");
        assert_eq!(again.map(|r| r.id.as_str()), Some(record.id.as_str()));
        assert_eq!(again.map(|r| r.sub.as_str()), Some(record.sub.as_str()));
        assert_eq!(again.map(|r| r.rev), Some(record.rev));
        assert_eq!(again.map(|r| r.created_at), Some(record.created_at));
        assert_eq!(again.map(|r| &r.scopes), Some(&record.scopes));
    }
    let sealed = codec.seal_value(name, data);
    let opened = codec.open_with(name, sealed.as_bytes(), |p| Some(p.to_vec()));
    assert_eq!(
        opened.as_deref(),
        Some(data),
        "a sealed value does not open"
    );
    let decoded = codec.open_with(name, sealed.as_bytes(), SessionRecord::from_cookie);
    assert_eq!(decoded.is_some(), direct.is_some());
    assert_eq!(
        codec.open_bytes(codec.names.tokens(), sealed.as_bytes()),
        None,
        "an identity cookie opened as the tokens cookie"
    );
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&format!("{name}={sealed}")) {
        headers.insert(header::COOKIE, value);
    }
    let (record, tokens) = SessionRecord::from_cookies(codec, &headers);
    assert_eq!(record.is_some(), direct.is_some());
    assert!(tokens.as_bytes().is_empty());
    // The input as a value from the network: not base64, short, or not sealed by this key.
    let _ = codec.open_with(name, data, SessionRecord::from_cookie);
    let _ = codec.open_bytes(name, data);
}

/// The tokens cookie: `data` as the JSON an opened tokens cookie holds (the tokens bound to
/// their session id), sealed and opened back as the cookie store does, then `data` as a sealed
/// value from the network.
pub fn tokens_cookie(data: &[u8]) {
    let codec = &codec().0;
    let name = codec.names.tokens();
    let direct = serde_json::from_slice::<TokensWire<String, TokenSet>>(data).ok();
    if let Some(wire) = &direct {
        let _ = format!("{:?}", wire.tokens);
        let _ = wire.tokens.expires_in(1_700_000_000);
        let json = serde_json::to_vec(wire).unwrap_or_default();
        let again = serde_json::from_slice::<TokensWire<String, TokenSet>>(&json);
        assert!(again.is_ok(), "decoded tokens do not re-encode");
        if let Ok(again) = again {
            assert_eq!(again.id, wire.id);
            assert_eq!(again.tokens.claims.sub, wire.tokens.claims.sub);
            assert_eq!(again.tokens.expires_at, wire.tokens.expires_at);
        }
    }
    let sealed = codec.seal_value(name, data);
    let opened = codec
        .open_bytes(name, sealed.as_bytes())
        .and_then(|json| serde_json::from_slice::<TokensWire<String, TokenSet>>(&json).ok());
    assert_eq!(opened.is_some(), direct.is_some());
    assert_eq!(
        codec.open_bytes(codec.names.session(), sealed.as_bytes()),
        None,
        "a tokens cookie opened as the identity cookie"
    );
    let _ = codec.open_bytes(name, data);
    let _ = codec.open_value(name, data);
}

/// The `Cookie` header scan: `data` split at newlines into up to four `Cookie` headers, read
/// by every finder. The one-pass session finder must agree with the per-name finder.
pub fn cookie_header(data: &[u8]) {
    let codec = &codec().0;
    let (session, tokens) = (codec.names.session(), codec.names.tokens());
    let mut headers = HeaderMap::new();
    for line in data.split(|b| *b == b'\n').take(4) {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append(header::COOKIE, value);
        }
    }
    for name in [session, tokens, codec.names.login(), "a", ""] {
        for value in find_all(&headers, name) {
            assert!(!value.contains(&b';'), "a value spans two pairs");
            // Whitespace inside quotes stays (no cookie-value has any: such a value never opens).
            assert!(
                value.first() != Some(&b'"') && value.last() != Some(&b'"'),
                "a value kept its quotes"
            );
        }
    }
    let first_session = find_all(&headers, session).next().map(<[u8]>::to_vec);
    let first_tokens = find_all(&headers, tokens).next().unwrap_or_default();
    let (opened, sealed) = find_session(&headers, session, tokens, |v| Some(v.to_vec()));
    assert_eq!(
        opened, first_session,
        "the finders disagree on the identity cookie"
    );
    assert_eq!(
        sealed.as_bytes(),
        first_tokens,
        "the finders disagree on the tokens cookie"
    );
    let (record, _) = SessionRecord::from_cookies(codec, &headers);
    if let Some(record) = record {
        let _ = record.profile();
    }
    let _ = codec.open(&headers, session);
}

/// The bearer `Authorization` header: `data` split at newlines into up to three headers.
pub fn authorization(data: &[u8]) {
    let mut headers = HeaderMap::new();
    for line in data.split(|b| *b == b'\n').take(3) {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append(header::AUTHORIZATION, value);
        }
    }
    let first = headers
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    match presented(&headers) {
        None => {
            assert!(
                first.is_none_or(|f| !(f.len() >= 6
                    && f[..6].eq_ignore_ascii_case(b"bearer")
                    && f.get(6).is_none_or(|b| *b == b' '))),
                "a bearer header was ignored"
            );
        }
        Some(Presented::Malformed) => {
            assert!(first.is_some_and(|f| f[..6].eq_ignore_ascii_case(b"bearer")));
        }
        Some(Presented::Token(token)) => {
            assert_eq!(headers.get_all(header::AUTHORIZATION).iter().count(), 1);
            assert!(!token.is_empty() && token.len() <= MAX_BEARER_TOKEN_LEN);
            let body = token.trim_end_matches('=');
            assert!(!body.is_empty(), "a token of only padding");
            assert!(
                body.bytes().all(|b| b.is_ascii_alphanumeric()
                    || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')),
                "a token outside b64token"
            );
            assert!(
                first.is_some_and(|f| f[..6].eq_ignore_ascii_case(b"bearer")
                    && f[6..].trim_ascii() == token.as_bytes()),
                "the token is not the header's"
            );
        }
    }
}

/// `sanitize_return_to`: what it keeps is a same-origin path that stays on the app's origin
/// when a browser resolves it, and sanitising is idempotent.
pub fn return_to(data: &[u8]) {
    let Ok(candidate) = std::str::from_utf8(data) else {
        return;
    };
    let kept = sanitize_return_to(candidate);
    assert!(
        kept == candidate || kept == "/",
        "sanitize rewrote the path"
    );
    assert_eq!(sanitize_return_to(kept), kept, "not idempotent");
    assert!(kept.len() <= MAX_RETURN_TO_LEN);
    assert!(kept.starts_with('/') && !kept.starts_with("//"));
    assert!(kept.bytes().all(|b| b.is_ascii_graphic() && b != b'\\'));
    let Ok(origin) = url::Url::parse(APP_ORIGIN) else {
        return;
    };
    // Resolved as a browser resolves a `Location`, raw and after each round of decoding.
    let mut form = kept.to_owned();
    for _ in 0..4 {
        let resolved = origin.join(&form);
        assert!(
            resolved.is_ok_and(|u| u.origin() == origin.origin()),
            "{form:?} leaves the app's origin"
        );
        let decoded = percent_encoding::percent_decode_str(&form)
            .decode_utf8_lossy()
            .into_owned();
        if decoded == form {
            break;
        }
        form = decoded;
    }
}
