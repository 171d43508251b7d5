//! Secret newtypes. Every one has a redacted `Debug` and is compared in constant time.
//!
//! The OAuth secrets come from the `openidconnect` crate (which takes them from `oauth2`); this
//! module re-exports them and adds the ones it lacks.

pub use openidconnect::{
    AccessToken, AuthorizationCode, ClientSecret, CsrfToken, DeviceCode, Nonce, PkceCodeVerifier,
    RefreshToken, UserCode,
};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// A signed ID token as received (the compact JWS). It names the user and is replayable as an
/// `id_token_hint`, so it is kept out of logs like the other secrets.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RawIdToken(String);

impl RawIdToken {
    /// Wraps a compact JWS.
    pub fn new(jwt: String) -> Self {
        Self(jwt)
    }

    /// The compact JWS.
    ///
    /// # Security
    ///
    /// Do not log it.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for RawIdToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RawIdToken([redacted])")
    }
}

impl PartialEq for RawIdToken {
    fn eq(&self, other: &Self) -> bool {
        ct_eq(&self.0, &other.0)
    }
}

/// Compares two secrets in constant time (in the length of the shorter one; lengths are not
/// secret here: every secret this crate makes has a fixed length).
pub fn ct_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let t = RawIdToken::new("eyJhbGciOiJSUzI1NiJ9.e30.c2ln".into());
        assert_eq!(format!("{t:?}"), "RawIdToken([redacted])");
        let s = ClientSecret::new("hunter2".into());
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn ct_eq_compares_values() {
        assert!(ct_eq("abc", "abc"));
        assert!(!ct_eq("abc", "abd"));
        assert!(!ct_eq("abc", "ab"));
        assert!(!ct_eq("", "a"));
    }
}
