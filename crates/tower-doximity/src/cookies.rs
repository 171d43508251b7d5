//! The layer's cookies: names, attributes, and sealing (AES-256-GCM through the `cookie`
//! crate's private jar, with the cookie name as associated data, so a value cannot be moved
//! from one cookie to another).

use std::time::Duration;

use http::HeaderMap;
use http::header::{COOKIE, HeaderValue};
use tower_cookies::Key;
use tower_cookies::cookie::{Cookie, CookieJar, SameSite};

/// The three cookies. With an https redirect URI they carry the `__Host-` prefix (and
/// `Secure`, `Path=/`, no `Domain`, as the prefix demands).
#[derive(Clone, Debug)]
pub(crate) struct CookieNames {
    /// The hot identity cookie (cookie store) or the session id (server stores).
    pub(crate) session: &'static str,
    /// The tokens (cookie store only), decrypted only when needed.
    pub(crate) tokens: &'static str,
    /// The login transaction (state, nonce, PKCE verifier, `return_to`).
    pub(crate) login: &'static str,
}

impl CookieNames {
    pub(crate) fn new(secure: bool) -> Self {
        if secure {
            Self {
                session: "__Host-doximity-session",
                tokens: "__Host-doximity-tokens",
                login: "__Host-doximity-login",
            }
        } else {
            Self {
                session: "doximity-session",
                tokens: "doximity-tokens",
                login: "doximity-login",
            }
        }
    }
}

/// Seals and opens the layer's cookies with one key.
#[derive(Clone)]
pub(crate) struct CookieCodec {
    key: Key,
    pub(crate) secure: bool,
    pub(crate) names: CookieNames,
}

impl std::fmt::Debug for CookieCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieCodec")
            .field("key", &"[redacted]")
            .field("secure", &self.secure)
            .field("names", &self.names)
            .finish()
    }
}

impl CookieCodec {
    pub(crate) fn new(key: Key, secure: bool) -> Self {
        Self {
            key,
            secure,
            names: CookieNames::new(secure),
        }
    }

    /// A `Set-Cookie` value carrying `value` encrypted, `HttpOnly`, `SameSite=Lax`, `Path=/`, `Secure`
    /// when https, with `Max-Age` when given.
    pub(crate) fn seal(
        &self,
        name: &'static str,
        value: &str,
        max_age: Option<Duration>,
    ) -> HeaderValue {
        let mut jar = CookieJar::new();
        jar.private_mut(&self.key)
            .add(Cookie::new(name, value.to_owned()));
        let sealed = jar
            .get(name)
            .map(|c| c.value().to_owned())
            .unwrap_or_default();
        self.header(name, &sealed, max_age)
    }

    /// Decrypts the value of the first cookie `name` in `headers` that opens with our key.
    /// A missing, truncated, tampered or foreign cookie gives `None`.
    pub(crate) fn open(&self, headers: &HeaderMap, name: &'static str) -> Option<String> {
        find_all(headers, name).find_map(|raw| self.open_value(name, raw))
    }

    pub(crate) fn open_value(&self, name: &'static str, raw: &str) -> Option<String> {
        let jar = CookieJar::new();
        jar.private(&self.key)
            .decrypt(Cookie::new(name, raw.to_owned()))
            .map(|c| c.value().to_owned())
    }

    /// A `Set-Cookie` value that deletes cookie `name`.
    pub(crate) fn removal(&self, name: &'static str) -> HeaderValue {
        self.header(name, "", Some(Duration::ZERO))
    }

    fn header(&self, name: &'static str, value: &str, max_age: Option<Duration>) -> HeaderValue {
        let mut builder = Cookie::build((name, value.to_owned()))
            .http_only(true)
            .same_site(SameSite::Lax)
            .path("/")
            .secure(self.secure);
        if let Some(age) = max_age {
            let secs = i64::try_from(age.as_secs()).unwrap_or(i64::MAX);
            builder = builder.max_age(tower_cookies::cookie::time::Duration::seconds(secs));
        }
        let cookie = builder.build();
        // Sealed values are base64 and names are ours: always a valid header.
        HeaderValue::from_str(&cookie.to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("doximity-invalid=; Max-Age=0"))
    }
}

/// Every value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn find_all<'a>(
    headers: &'a HeaderMap,
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(move |pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k.trim() == name).then(|| v.trim().trim_matches('"'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec(secure: bool) -> CookieCodec {
        CookieCodec::new(Key::generate(), secure)
    }

    fn request_with(cookie: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_str(cookie).unwrap());
        h
    }

    fn value_of(set_cookie: &HeaderValue) -> String {
        let c = Cookie::parse(set_cookie.to_str().unwrap().to_owned()).unwrap();
        format!("{}={}", c.name(), c.value())
    }

    #[test]
    fn attributes_over_https() {
        let c = codec(true);
        let h = c.seal(c.names.session, "hello", Some(Duration::from_secs(600)));
        let s = h.to_str().unwrap();
        assert!(s.starts_with("__Host-doximity-session="), "{s}");
        for attr in [
            "HttpOnly",
            "SameSite=Lax",
            "Path=/",
            "Secure",
            "Max-Age=600",
        ] {
            assert!(s.contains(attr), "{attr} missing in {s}");
        }
        assert!(!s.contains("Domain"), "{s}");
        assert!(!s.contains("hello"), "value is not encrypted: {s}");
    }

    #[test]
    fn attributes_over_http() {
        let c = codec(false);
        let s = c.seal(c.names.login, "x", None);
        let s = s.to_str().unwrap();
        assert!(s.starts_with("doximity-login="), "{s}");
        assert!(s.contains("HttpOnly") && s.contains("SameSite=Lax") && s.contains("Path=/"));
        assert!(!s.contains("Secure"), "{s}");
        let r = c.removal(c.names.login);
        assert!(r.to_str().unwrap().contains("Max-Age=0"));
    }

    #[test]
    fn round_trip_and_tampering() {
        let c = codec(true);
        let set = c.seal(c.names.session, "payload", None);
        let pair = value_of(&set);
        assert_eq!(
            c.open(&request_with(&pair), c.names.session).as_deref(),
            Some("payload")
        );
        // Another cookie name (the value is bound to its name).
        let moved = pair.replace("__Host-doximity-session", "__Host-doximity-tokens");
        assert_eq!(c.open(&request_with(&moved), c.names.tokens), None);
        // Truncated, flipped, empty, foreign key, garbage.
        let truncated = &pair[..pair.len() - 4];
        assert_eq!(c.open(&request_with(truncated), c.names.session), None);
        let mut flipped = pair.clone().into_bytes();
        let i = flipped.len() - 10;
        flipped[i] = if flipped[i] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(c.open(&request_with(&flipped), c.names.session), None);
        assert_eq!(
            c.open(&request_with("__Host-doximity-session="), c.names.session),
            None
        );
        let other = codec(true);
        assert_eq!(other.open(&request_with(&pair), other.names.session), None);
        assert_eq!(
            c.open(
                &request_with("__Host-doximity-session=%%%;;=="),
                c.names.session
            ),
            None
        );
        // A tossed cookie before ours does not hide ours.
        let both = format!("__Host-doximity-session=junk; {pair}");
        assert_eq!(
            c.open(&request_with(&both), c.names.session).as_deref(),
            Some("payload")
        );
    }
}
