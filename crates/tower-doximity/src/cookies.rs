//! The layer's cookies: names, attributes, and sealing.
//!
//! Sealing is AES-256-GCM in the `cookie` crate's private-jar format (`base64(nonce | ciphertext
//! | tag)`, a random 96-bit nonce, the cookie name as associated data, so a value cannot be
//! moved from one cookie to another). The AES key is not the raw cookie key: it is derived
//! with HKDF-SHA256 from the whole 64-byte key and the provider's issuer and the app's client
//! id, so a cookie sealed for one provider or client never opens for another (contract v2,
//! point 2). The keys form a ring, newest first: the first seals, every one opens (point 1).
//! Each cipher is set up once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::HeaderMap;
use http::header::{COOKIE, HeaderValue};
use tower_cookies::Key;
use tower_cookies::cookie::{Cookie, SameSite};

/// The AES-GCM nonce: 96 random bits per sealed value.
const NONCE_LEN: usize = 12;
/// The AES-GCM tag.
const TAG_LEN: usize = 16;
/// The largest decoded value [`CookieCodec::open_with`] opens on the stack.
const STACK_OPEN: usize = 1024;
/// HKDF salt: names this derivation, so the subkey is used for nothing else.
const HKDF_SALT: &[u8] = b"doximity-rs cookie sealing v2";
/// Seals by one process with one key after which a warning asks for a rotation: half of the
/// 2^32 random-nonce budget NIST SP 800-38D sets for one AES-GCM key.
const SEAL_WARNING: u64 = 1 << 31;

/// The default prefix of the cookies' names
/// ([`DoximityAuth::with_cookie_prefix`](crate::DoximityAuth::with_cookie_prefix)).
pub(crate) const DEFAULT_PREFIX: &str = "doximity";

/// The three cookies: `<prefix>-session`, `<prefix>-tokens`, `<prefix>-login`. With an https
/// redirect URI they carry the `__Host-` prefix too (and `Secure`, `Path=/`, no `Domain`, as
/// the prefix demands).
#[derive(Clone, Debug)]
pub(crate) struct CookieNames {
    /// The hot identity cookie (cookie store) or the session id (server stores).
    session: Box<str>,
    /// The tokens (cookie store only), decrypted only when needed.
    tokens: Box<str>,
    /// The login transaction (state, nonce, PKCE verifier, `return_to`).
    login: Box<str>,
}

impl CookieNames {
    pub(crate) fn new(prefix: &str, secure: bool) -> Self {
        let host = if secure { "__Host-" } else { "" };
        let name = |what: &str| format!("{host}{prefix}-{what}").into_boxed_str();
        Self {
            session: name("session"),
            tokens: name("tokens"),
            login: name("login"),
        }
    }

    pub(crate) fn session(&self) -> &str {
        &self.session
    }

    pub(crate) fn tokens(&self) -> &str {
        &self.tokens
    }

    pub(crate) fn login(&self) -> &str {
        &self.login
    }
}

/// Whether `prefix` can start a cookie name: 1 to 32 of `A-Z a-z 0-9 - _ .`, not starting with
/// `__` (the browser's own `__Host-`/`__Secure-` prefixes are the layer's to add).
pub(crate) fn is_valid_prefix(prefix: &str) -> bool {
    (1..=32).contains(&prefix.len())
        && !prefix.starts_with("__")
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// What a session is bound to besides the key: the provider and the app.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Binding<'a> {
    pub(crate) issuer: &'a str,
    pub(crate) client_id: &'a str,
}

/// Seals with the newest key of a ring and opens with any of them.
#[derive(Clone)]
pub(crate) struct CookieCodec {
    /// AES-256-GCM per key of the ring (newest first), each keyed with the HKDF subkey of the
    /// key and the [`Binding`], its key schedule computed once.
    ciphers: std::sync::Arc<[Aes256Gcm]>,
    /// Seals made with the newest key by this process.
    seals: std::sync::Arc<AtomicU64>,
    pub(crate) secure: bool,
    pub(crate) names: CookieNames,
}

impl std::fmt::Debug for CookieCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieCodec")
            .field("keys", &self.ciphers.len())
            .field("secure", &self.secure)
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

/// The AES-256 key for `key` under `binding`: HKDF-SHA256 over the whole 64-byte key, with the
/// issuer and the client id (each length-prefixed) as the info.
fn subkey(key: &Key, binding: Binding<'_>) -> [u8; 32] {
    let mut info = Vec::with_capacity(16 + binding.issuer.len() + binding.client_id.len());
    for part in [binding.issuer, binding.client_id] {
        info.extend_from_slice(&(part.len() as u64).to_be_bytes());
        info.extend_from_slice(part.as_bytes());
    }
    let mut out = [0u8; 32];
    hkdf::Hkdf::<sha2::Sha256>::new(Some(HKDF_SALT), key.master())
        .expand(&info, &mut out)
        .unwrap_or_else(|_| unreachable!("32 bytes is a valid HKDF-SHA256 length"));
    out
}

/// The HMAC-SHA256 key of the layer's step-up links: HKDF of the newest cookie key under
/// `binding`, with a salt of its own (never the sealing key).
pub(crate) fn step_up_key(keys: &[Key], binding: Binding<'_>) -> [u8; 32] {
    derived_key(keys, binding, b"doximity-rs step-up links v1")
}

/// The HMAC-SHA256 key of the audit trail's session hashes: HKDF of the newest cookie key
/// under `binding`, with a salt of its own (never the sealing key), so every instance with the
/// same key hashes a session alike.
pub(crate) fn audit_key(keys: &[Key], binding: Binding<'_>) -> [u8; 32] {
    derived_key(keys, binding, b"doximity-rs audit session hash v1")
}

fn derived_key(keys: &[Key], binding: Binding<'_>, salt: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    if let Some(key) = keys.first() {
        let sealing = subkey(key, binding);
        hkdf::Hkdf::<sha2::Sha256>::new(Some(salt), &sealing)
            .expand(b"", &mut out)
            .unwrap_or_else(|_| unreachable!("32 bytes is a valid HKDF-SHA256 length"));
    }
    out
}

impl CookieCodec {
    /// A codec over `keys` (newest first; at least one) bound to `binding`.
    pub(crate) fn new(keys: &[Key], prefix: &str, secure: bool, binding: Binding<'_>) -> Self {
        let ciphers: Vec<Aes256Gcm> = keys
            .iter()
            .map(|k| {
                Aes256Gcm::new_from_slice(&subkey(k, binding))
                    .unwrap_or_else(|_| unreachable!("the subkey is 32 bytes"))
            })
            .collect();
        debug_assert!(!ciphers.is_empty(), "a key ring has at least one key");
        Self {
            ciphers: ciphers.into(),
            seals: std::sync::Arc::default(),
            secure,
            names: CookieNames::new(prefix, secure),
        }
    }

    /// A `Set-Cookie` value carrying `value` encrypted, `HttpOnly`, `SameSite=Lax`, `Path=/`, `Secure`
    /// when https, with `Max-Age` when given.
    pub(crate) fn seal(
        &self,
        name: &str,
        value: &(impl AsRef<[u8]> + ?Sized),
        max_age: Option<Duration>,
    ) -> HeaderValue {
        let sealed = self.seal_value(name, value);
        self.header(name, &sealed, max_age)
    }

    /// `base64([nonce | ciphertext | tag])` of `value`, a fresh random nonce, the cookie name
    /// as associated data: the `cookie` crate's private-jar format.
    pub(crate) fn seal_value(&self, name: &str, value: &(impl AsRef<[u8]> + ?Sized)) -> String {
        let value = value.as_ref();
        let mut data = vec![0u8; NONCE_LEN + value.len() + TAG_LEN];
        let (nonce, rest) = data.split_at_mut(NONCE_LEN);
        let (in_out, tag) = rest.split_at_mut(value.len());
        nonce.copy_from_slice(&rand::random::<[u8; NONCE_LEN]>());
        in_out.copy_from_slice(value);
        if self.seals.fetch_add(1, Ordering::Relaxed) == SEAL_WARNING {
            tracing::warn!(
                seals = SEAL_WARNING,
                "the cookie key has sealed 2^31 values in this process: put a new key first in \
                 DOXIMITY_COOKIE_KEY (AES-GCM's random-nonce budget is 2^32 per key)"
            );
        }
        let Some(cipher) = self.ciphers.first() else {
            return String::new();
        };
        let Ok(sealed_tag) =
            cipher.encrypt_in_place_detached(Nonce::from_slice(nonce), name.as_bytes(), in_out)
        else {
            // Only for a value beyond AES-GCM's limit (64 GiB): never a cookie.
            return String::new();
        };
        tag.copy_from_slice(&sealed_tag);
        BASE64.encode(&data)
    }

    /// Decrypts the value of the first cookie `name` in `headers` that opens with our key.
    /// A missing, truncated, tampered or foreign cookie gives `None`.
    pub(crate) fn open(&self, headers: &HeaderMap, name: &str) -> Option<String> {
        find_all(headers, name).find_map(|raw| self.open_value(name, raw))
    }

    /// Opens one sealed value to text.
    pub(crate) fn open_value(&self, name: &str, raw: &[u8]) -> Option<String> {
        String::from_utf8(self.open_bytes(name, raw)?).ok()
    }

    /// Opens a sealed value (base64 of `[nonce | ciphertext | tag]`) to its plaintext bytes;
    /// `None` when it is not base64, too short, or does not authenticate with our key and
    /// this cookie name.
    pub(crate) fn open_bytes(&self, name: &str, raw: &[u8]) -> Option<Vec<u8>> {
        let mut data = BASE64.decode(raw).ok()?;
        let len = self.open_in_place(name, &mut data)?.len();
        data.copy_within(NONCE_LEN..NONCE_LEN + len, 0);
        data.truncate(len);
        Some(data)
    }

    /// Opens a sealed value as [`CookieCodec::open_bytes`] does and hands the plaintext to
    /// `read`. A value of up to [`STACK_OPEN`] bytes (the identity cookie, read on every
    /// request) is decoded into a buffer on the stack: no allocation.
    pub(crate) fn open_with<T>(
        &self,
        name: &str,
        raw: &[u8],
        read: impl FnOnce(&[u8]) -> Option<T>,
    ) -> Option<T> {
        if raw.len().div_ceil(4) * 3 <= STACK_OPEN {
            let mut buf = [0u8; STACK_OPEN];
            let len = BASE64.decode_slice(raw, &mut buf).ok()?;
            return read(self.open_in_place(name, &mut buf[..len])?);
        }
        read(&self.open_bytes(name, raw)?)
    }

    /// Decrypts `[nonce | ciphertext | tag]` in place with the first key of the ring that
    /// authenticates it (AES-GCM checks the tag before it decrypts, so a failed key leaves the
    /// buffer as it was); the plaintext.
    fn open_in_place<'a>(&self, name: &str, data: &'a mut [u8]) -> Option<&'a [u8]> {
        if data.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let (nonce, rest) = data.split_at_mut(NONCE_LEN);
        let (in_out, tag) = rest.split_at_mut(rest.len() - TAG_LEN);
        let opened = self.ciphers.iter().any(|cipher| {
            cipher
                .decrypt_in_place_detached(
                    Nonce::from_slice(nonce),
                    name.as_bytes(),
                    in_out,
                    Tag::from_slice(tag),
                )
                .is_ok()
        });
        opened.then_some(in_out)
    }

    /// A `Set-Cookie` value that deletes cookie `name`.
    pub(crate) fn removal(&self, name: &str) -> HeaderValue {
        self.header(name, "", Some(Duration::ZERO))
    }

    pub(crate) fn header(&self, name: &str, value: &str, max_age: Option<Duration>) -> HeaderValue {
        let mut builder = Cookie::build((name.to_owned(), value.to_owned()))
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

/// A cookie value still sealed, kept as a reference into the request's `Cookie` header (a
/// reference-counted [`HeaderValue`] clone and a range): no copy until it is opened.
#[derive(Clone)]
pub(crate) struct SealedValue {
    header: HeaderValue,
    start: usize,
    end: usize,
}

impl SealedValue {
    /// No value (opens to nothing).
    pub(crate) fn empty() -> Self {
        Self {
            header: HeaderValue::from_static(""),
            start: 0,
            end: 0,
        }
    }

    /// `value`, a slice of `header`'s bytes, as a reference into `header`.
    fn within(header: &HeaderValue, value: &[u8]) -> Self {
        let start = (value.as_ptr() as usize).saturating_sub(header.as_bytes().as_ptr() as usize);
        Self {
            header: header.clone(),
            start,
            end: start + value.len(),
        }
    }

    /// The sealed value's bytes.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.header
            .as_bytes()
            .get(self.start..self.end)
            .unwrap_or_default()
    }
}

/// The `name=value` pairs of one `Cookie` header, each trimmed of ASCII whitespace and the
/// value of surrounding quotes. Read as bytes: a cookie of another application with bytes
/// outside visible ASCII neither hides ours nor costs a validation pass over the header.
fn pairs(header: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let mut rest = header;
    std::iter::from_fn(move || {
        while !rest.is_empty() {
            let (pair, tail) = match memchr::memchr(b';', rest) {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &[][..]),
            };
            rest = tail;
            if let Some(eq) = memchr::memchr(b'=', pair) {
                let name = pair[..eq].trim_ascii();
                let mut value = pair[eq + 1..].trim_ascii();
                while let [b'"', inner @ ..] = value {
                    value = inner;
                }
                while let [inner @ .., b'"'] = value {
                    value = inner;
                }
                return Some((name, value));
            }
        }
        None
    })
}

/// Every value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn find_all<'a>(
    headers: &'a HeaderMap,
    name: &'a str,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    headers
        .get_all(COOKIE)
        .iter()
        .flat_map(move |h| pairs(h.as_bytes()))
        .filter_map(move |(n, v)| (n == name.as_bytes()).then_some(v))
}

/// The cookie store's two cookies in one pass over the `Cookie` headers, as every signed-in
/// request reads them: the first value of cookie `session` that `open` accepts (a stray
/// cookie of that name does not hide ours), and the first value of cookie `tokens`, left
/// sealed.
pub(crate) fn find_session<T>(
    headers: &HeaderMap,
    session: &str,
    tokens: &str,
    mut open: impl FnMut(&[u8]) -> Option<T>,
) -> (Option<T>, SealedValue) {
    let (session, tokens) = (session.as_bytes(), tokens.as_bytes());
    let mut opened = None;
    let mut sealed = None;
    'headers: for header in headers.get_all(COOKIE) {
        for (name, value) in pairs(header.as_bytes()) {
            if opened.is_none() && name == session {
                opened = open(value);
            } else if sealed.is_none() && name == tokens {
                sealed = Some(SealedValue::within(header, value));
            }
            if opened.is_some() && sealed.is_some() {
                break 'headers;
            }
        }
    }
    (opened, sealed.unwrap_or_else(SealedValue::empty))
}

#[cfg(test)]
#[allow(clippy::redundant_clone, clippy::cloned_ref_to_slice_refs)] // Keys read best as a list.
mod tests {
    use super::*;

    fn codec(secure: bool) -> CookieCodec {
        CookieCodec::new(&[Key::generate()], DEFAULT_PREFIX, secure, BOUND)
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
        let h = c.seal(c.names.session(), "hello", Some(Duration::from_secs(600)));
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
        let s = c.seal(c.names.login(), "x", None);
        let s = s.to_str().unwrap();
        assert!(s.starts_with("doximity-login="), "{s}");
        assert!(s.contains("HttpOnly") && s.contains("SameSite=Lax") && s.contains("Path=/"));
        assert!(!s.contains("Secure"), "{s}");
        let r = c.removal(c.names.login());
        assert!(r.to_str().unwrap().contains("Max-Age=0"));
    }

    const BOUND: Binding<'static> = Binding {
        issuer: "https://auth.doximity.com",
        client_id: "app",
    };

    #[test]
    fn the_ring_seals_with_the_newest_key_and_opens_with_every_listed_one() {
        let (old, new) = (Key::generate(), Key::generate());
        let before = CookieCodec::new(&[old.clone()], DEFAULT_PREFIX, false, BOUND);
        let rotated = CookieCodec::new(&[new.clone(), old.clone()], DEFAULT_PREFIX, false, BOUND);
        let after = CookieCodec::new(&[new.clone()], DEFAULT_PREFIX, false, BOUND);
        let name = before.names.session();
        let sealed_old = before.seal_value(name, "payload");
        let sealed_new = rotated.seal_value(name, "payload");
        // The rotated ring opens both; the new key alone opens only what it sealed.
        assert_eq!(
            rotated.open_value(name, sealed_old.as_bytes()).as_deref(),
            Some("payload")
        );
        assert_eq!(
            rotated.open_value(name, sealed_new.as_bytes()).as_deref(),
            Some("payload")
        );
        assert_eq!(
            after.open_value(name, sealed_new.as_bytes()).as_deref(),
            Some("payload")
        );
        assert_eq!(after.open_value(name, sealed_old.as_bytes()), None);
        // The newest key seals: the old key alone cannot open it.
        assert_eq!(before.open_value(name, sealed_new.as_bytes()), None);
        // On the stack path too.
        assert!(
            after
                .open_with(name, sealed_old.as_bytes(), |p| Some(p.len()))
                .is_none()
        );
        assert_eq!(
            rotated.open_with(name, sealed_old.as_bytes(), |p| Some(p.len())),
            Some(7)
        );
    }

    #[test]
    fn a_value_opens_only_for_its_issuer_client_and_cookie_name() {
        let key = Key::generate();
        let c = CookieCodec::new(&[key.clone()], DEFAULT_PREFIX, false, BOUND);
        let sealed = c.seal_value(c.names.session(), "payload");
        let other_client = CookieCodec::new(
            &[key.clone()],
            DEFAULT_PREFIX,
            false,
            Binding {
                client_id: "other",
                ..BOUND
            },
        );
        let other_issuer = CookieCodec::new(
            &[key.clone()],
            DEFAULT_PREFIX,
            false,
            Binding {
                issuer: "https://evil.example",
                ..BOUND
            },
        );
        // Length-prefixed: moving a byte between issuer and client id is another binding.
        let shifted = CookieCodec::new(
            &[key],
            DEFAULT_PREFIX,
            false,
            Binding {
                issuer: "https://auth.doximity.coma",
                client_id: "pp",
            },
        );
        for codec in [&other_client, &other_issuer, &shifted] {
            assert_eq!(codec.open_value(c.names.session(), sealed.as_bytes()), None);
        }
        assert_eq!(c.open_value(c.names.tokens(), sealed.as_bytes()), None);
        assert_eq!(
            c.open_value(c.names.session(), sealed.as_bytes())
                .as_deref(),
            Some("payload")
        );
        // Two seals of one value differ (a fresh nonce each).
        assert_ne!(sealed, c.seal_value(c.names.session(), "payload"));
        // Empty plaintext round-trips; shorter than nonce + tag does not open.
        let empty = c.seal_value(c.names.login(), "");
        assert_eq!(
            c.open_value(c.names.login(), empty.as_bytes()).as_deref(),
            Some("")
        );
        assert_eq!(
            c.open_value(c.names.login(), BASE64.encode([0u8; 27]).as_bytes()),
            None
        );
    }

    #[test]
    fn the_prefix_names_the_cookies_and_only_safe_prefixes_pass() {
        let plain = CookieNames::new("app-2", false);
        assert_eq!(
            (plain.session(), plain.tokens(), plain.login()),
            ("app-2-session", "app-2-tokens", "app-2-login")
        );
        let host = CookieNames::new(DEFAULT_PREFIX, true);
        assert_eq!(
            (host.session(), host.tokens(), host.login()),
            (
                "__Host-doximity-session",
                "__Host-doximity-tokens",
                "__Host-doximity-login"
            )
        );
        for ok in ["a", "doximity", "My_App.v2-x", &"x".repeat(32)] {
            assert!(is_valid_prefix(ok), "{ok}");
        }
        for bad in [
            "",
            "__Host",
            "__Secure-x",
            "a b",
            "a;b",
            "a=b",
            "é",
            "a\nb",
            &"x".repeat(33),
        ] {
            assert!(!is_valid_prefix(bad), "{bad:?}");
        }
        // Another prefix is another cookie: one app never reads the other's session.
        let key = Key::generate();
        let a = CookieCodec::new(&[key.clone()], "app-a", false, BOUND);
        let b = CookieCodec::new(&[key], "app-b", false, BOUND);
        let set = a.seal(a.names.session(), "payload", None);
        let pair = set.to_str().unwrap().split(';').next().unwrap().to_owned();
        assert_eq!(
            a.open(&request_with(&pair), a.names.session()).as_deref(),
            Some("payload")
        );
        assert_eq!(b.open(&request_with(&pair), b.names.session()), None);
    }

    #[test]
    fn the_raw_cookie_key_is_not_the_sealing_key() {
        // A value sealed by the `cookie` crate's private jar with the raw key (what an older
        // version of this layer wrote) does not open: only the derived subkey seals.
        use tower_cookies::cookie::CookieJar;
        let key = Key::generate();
        let c = CookieCodec::new(&[key.clone()], DEFAULT_PREFIX, false, BOUND);
        let mut jar = CookieJar::new();
        jar.private_mut(&key)
            .add(Cookie::new(c.names.tokens().to_owned(), "tokens"));
        let theirs = jar.get(c.names.tokens()).unwrap().value().to_owned();
        assert_eq!(c.open_value(c.names.tokens(), theirs.as_bytes()), None);
    }

    #[test]
    fn sealed_value_is_the_first_cookie_of_its_name() {
        let mut h = request_with("a=1; doximity-tokens=\"abc\"; doximity-tokens=def");
        h.append(COOKIE, HeaderValue::from_static("doximity-tokens=ghi"));
        let first =
            |h: &HeaderMap, name: &str| find_session(h, "doximity-session", name, |_| None::<()>).1;
        assert_eq!(first(&h, "doximity-tokens").as_bytes(), b"abc");
        assert_eq!(first(&h, "b").as_bytes(), b"");
        let mut h2 = request_with("a=1");
        h2.append(COOKIE, HeaderValue::from_static("x=2; doximity-tokens=zz"));
        assert_eq!(first(&h2, "doximity-tokens").as_bytes(), b"zz");
    }

    #[test]
    fn open_with_reads_small_values_on_the_stack_and_large_ones_on_the_heap() {
        let c = codec(false);
        let name = c.names.session();
        // Around the stack buffer's size: plaintext + nonce + tag decoded.
        for len in [
            0,
            1,
            500,
            STACK_OPEN - 28,
            STACK_OPEN - 27,
            STACK_OPEN,
            3000,
        ] {
            let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let sealed = c.seal_value(name, &plain);
            let read = c.open_with(name, sealed.as_bytes(), |p| Some(p.to_vec()));
            assert_eq!(read.as_deref(), Some(&plain[..]), "length {len}");
            // Tampered, or under another name: nothing, whichever path.
            let mut bad = sealed.clone().into_bytes();
            let i = bad.len() / 2;
            bad[i] = if bad[i] == b'A' { b'B' } else { b'A' };
            assert!(
                c.open_with(name, &bad, |p| Some(p.len())).is_none(),
                "{len}"
            );
            assert!(
                c.open_with(c.names.tokens(), sealed.as_bytes(), |p| Some(p.len()))
                    .is_none()
            );
            assert!(c.open_with(name, b"%%%", |p| Some(p.len())).is_none());
        }
    }

    #[test]
    fn another_apps_non_ascii_cookie_does_not_hide_ours() {
        let c = codec(false);
        let sealed = c.seal_value(c.names.session(), "payload");
        let mut raw = b"theme=caf\xc3\xa9; ".to_vec();
        raw.extend_from_slice(format!("doximity-session={sealed}; doximity-tokens=t").as_bytes());
        raw.push(0x80);
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_bytes(&raw).unwrap());
        assert_eq!(c.open(&h, c.names.session()).as_deref(), Some("payload"));
        let (opened, tokens) = find_session(&h, c.names.session(), c.names.tokens(), |v| {
            c.open_bytes(c.names.session(), v)
        });
        assert_eq!(opened.as_deref(), Some(&b"payload"[..]));
        assert_eq!(tokens.as_bytes(), b"t\x80");
    }

    #[test]
    fn one_pass_finds_both_cookies_in_any_order_and_header() {
        let c = codec(false);
        let sealed = c.seal_value(c.names.session(), "p");
        let mut h = request_with("doximity-tokens=first; x=1");
        h.append(
            COOKIE,
            HeaderValue::from_str(&format!(
                "doximity-session=junk; doximity-session={sealed}; doximity-tokens=second"
            ))
            .unwrap(),
        );
        let (opened, tokens) = find_session(&h, c.names.session(), c.names.tokens(), |v| {
            c.open_bytes(c.names.session(), v)
        });
        assert_eq!(opened.as_deref(), Some(&b"p"[..]));
        assert_eq!(tokens.as_bytes(), b"first");
        let (none, tokens) = find_session(
            &request_with("a=b"),
            c.names.session(),
            c.names.tokens(),
            |v| c.open_bytes(c.names.session(), v),
        );
        assert!(none.is_none());
        assert_eq!(tokens.as_bytes(), b"");
    }

    #[test]
    fn round_trip_and_tampering() {
        let c = codec(true);
        let set = c.seal(c.names.session(), "payload", None);
        let pair = value_of(&set);
        assert_eq!(
            c.open(&request_with(&pair), c.names.session()).as_deref(),
            Some("payload")
        );
        // Another cookie name (the value is bound to its name).
        let moved = pair.replace("__Host-doximity-session", "__Host-doximity-tokens");
        assert_eq!(c.open(&request_with(&moved), c.names.tokens()), None);
        // Truncated, flipped, empty, foreign key, garbage.
        let truncated = &pair[..pair.len() - 4];
        assert_eq!(c.open(&request_with(truncated), c.names.session()), None);
        let mut flipped = pair.clone().into_bytes();
        let i = flipped.len() - 10;
        flipped[i] = if flipped[i] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(c.open(&request_with(&flipped), c.names.session()), None);
        assert_eq!(
            c.open(&request_with("__Host-doximity-session="), c.names.session()),
            None
        );
        let other = codec(true);
        assert_eq!(
            other.open(&request_with(&pair), other.names.session()),
            None
        );
        assert_eq!(
            c.open(
                &request_with("__Host-doximity-session=%%%;;=="),
                c.names.session()
            ),
            None
        );
        // A tossed cookie before ours does not hide ours.
        let both = format!("__Host-doximity-session=junk; {pair}");
        assert_eq!(
            c.open(&request_with(&both), c.names.session()).as_deref(),
            Some("payload")
        );
    }
}
