//! Constructors for tests (feature `test-util`): a [`TokenSet`] and [`IdTokenClaims`] built
//! in code, for the tests of an app that uses this crate (or `tower-doximity`'s
//! `test_util`), where no provider signs anything.
//!
//! What these build was **never verified**: no signature, no issuer, audience or expiry check
//! ran, and the ID token they carry is not a JWS. Nothing in this crate accepts them as proof
//! of anything: [`Client`](crate::Client) verifies what a provider sends, and these values are
//! only ever made by the code that uses them. The feature is off unless a crate asks for it.

use crate::claims::IdTokenClaims;
use crate::scope::Scopes;
use crate::secret::{AccessToken, RawIdToken};
use crate::token::TokenSet;

/// The ID token of [`TokenSet::for_tests`]: three base64url segments that are no JWS (the
/// header decodes to `unsigned`), so no verifier accepts it.
pub const UNSIGNED_ID_TOKEN: &str = "dW5zaWduZWQ.dW5zaWduZWQ.dW5zaWduZWQ";

impl IdTokenClaims {
    /// Claims for `sub` as an ID token of `issuer` for `client_id` would carry them: `aud` is
    /// `[issuer, client_id]` (Doximity's shape), `azp` the client id, issued at `iat`,
    /// expiring at `exp`; no nonce, no `acr` (set the public fields to add them).
    ///
    /// **Never verified**: for tests only (see the [module](crate::test_util) docs).
    ///
    /// ```
    /// let claims = doximity::IdTokenClaims::for_tests("https://auth.doximity.com", "app", "sub-1", 0, 3600);
    /// assert_eq!(claims.aud, ["https://auth.doximity.com", "app"]);
    /// ```
    pub fn for_tests(issuer: &str, client_id: &str, sub: &str, iat: i64, exp: i64) -> Self {
        Self {
            iss: issuer.to_owned(),
            sub: sub.to_owned(),
            aud: vec![issuer.to_owned(), client_id.to_owned()],
            azp: Some(client_id.to_owned()),
            exp,
            iat,
            auth_time: Some(iat),
            nonce: None,
            acr: None,
            additional: serde_json::Map::new(),
        }
    }
}

impl TokenSet {
    /// Tokens with the access token `access_token`, the scopes granted, the access token's
    /// expiry (epoch seconds) and the ID-token claims; no refresh token, no `session_state`,
    /// and [`UNSIGNED_ID_TOKEN`] as the raw ID token.
    ///
    /// **Never verified**: for tests only (see the [module](crate::test_util) docs).
    ///
    /// ```
    /// use doximity::{IdTokenClaims, TokenSet, secret::AccessToken};
    /// let claims = IdTokenClaims::for_tests("https://auth.doximity.com", "app", "sub-1", 0, 3600);
    /// let tokens = TokenSet::for_tests(AccessToken::new("test-token".into()), "openid".parse()?, Some(3600), claims);
    /// assert_eq!(tokens.claims.sub, "sub-1");
    /// assert!(tokens.refresh_token.is_none());
    /// # Ok::<(), doximity::ConfigError>(())
    /// ```
    pub fn for_tests(
        access_token: AccessToken,
        scopes: Scopes,
        expires_at: Option<i64>,
        claims: IdTokenClaims,
    ) -> Self {
        Self {
            access_token,
            refresh_token: None,
            expires_at,
            scopes,
            id_token: RawIdToken::new(UNSIGNED_ID_TOKEN.to_owned()),
            claims,
            session_state: None,
            token_type: crate::token::TokenType::Bearer,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_placeholder_id_token_is_no_jws() {
        assert!(crate::jwt::UnverifiedJwt::parse(UNSIGNED_ID_TOKEN).is_err());
    }
}
