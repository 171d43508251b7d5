//! Token endpoint requests (Steps 5 and 7) built as pure values, and their responses parsed.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::claims::IdTokenClaims;
use crate::config::ClientAuthMethod;
use crate::error::{Endpoint, Error};
use crate::scope::Scopes;
use crate::secret::{AccessToken, ClientSecret, RawIdToken, RefreshToken};

/// The tokens of a signed-in user, with the verified ID-token claims.
///
/// Serialisable so a session store can keep it (encrypted: these are as sensitive as
/// passwords). Its `Debug` shows no token.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TokenSet {
    /// The access token.
    pub access_token: AccessToken,
    /// The refresh token; rotated by every refresh.
    pub refresh_token: Option<RefreshToken>,
    /// When the access token expires, epoch seconds.
    pub expires_at: Option<i64>,
    /// The scopes granted.
    pub scopes: Scopes,
    /// The ID token as received.
    pub id_token: RawIdToken,
    /// Its verified claims.
    pub claims: IdTokenClaims,
    /// `session_state` from the callback, for session management.
    pub session_state: Option<String>,
    /// How the access token is presented: `Bearer`, or `DPoP` when the provider bound it to
    /// the client's DPoP key (RFC 9449). Absent in a stored set from before DPoP: `Bearer`.
    #[serde(default)]
    pub token_type: TokenType,
}

/// The kind of an access token, from the token response's `token_type`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum TokenType {
    /// A bearer token (RFC 6750): `Authorization: Bearer <token>`.
    #[default]
    Bearer,
    /// A DPoP-bound token (RFC 9449): `Authorization: DPoP <token>` with a `DPoP` proof
    /// signed by the key it is bound to.
    #[serde(rename = "DPoP")]
    Dpop,
}

impl TokenType {
    /// The `Authorization` scheme: `Bearer` or `DPoP`.
    pub fn scheme(self) -> &'static str {
        match self {
            Self::Bearer => "Bearer",
            Self::Dpop => "DPoP",
        }
    }
}

/// An access token and how to present it, for the calls that take one
/// ([`Client::userinfo`](crate::Client::userinfo) and the `/api/v1` calls).
///
/// Made from a [`TokenSet`] (its [`token_type`](TokenSet::token_type), the right choice for
/// tokens from a sign-in), or from a bare [`AccessToken`], which is taken as `Bearer`.
#[derive(Clone, Copy, Debug)]
pub struct PresentedToken<'a> {
    /// The token.
    pub access_token: &'a AccessToken,
    /// How to present it.
    pub token_type: TokenType,
}

impl<'a> From<&'a TokenSet> for PresentedToken<'a> {
    fn from(tokens: &'a TokenSet) -> Self {
        Self {
            access_token: &tokens.access_token,
            token_type: tokens.token_type,
        }
    }
}

impl<'a> From<&'a AccessToken> for PresentedToken<'a> {
    fn from(access_token: &'a AccessToken) -> Self {
        Self {
            access_token,
            token_type: TokenType::Bearer,
        }
    }
}

impl TokenSet {
    /// Seconds until the access token expires (negative once it has), if known. Saturates:
    /// a `TokenSet` read back from a store may hold any `expires_at`.
    pub fn expires_in(&self, now: i64) -> Option<i64> {
        self.expires_at.map(|e| e.saturating_sub(now))
    }
}

/// The JSON of a token response, before its ID token is verified.
#[derive(Deserialize)]
pub(crate) struct RawTokenResponse {
    pub(crate) access_token: String,
    pub(crate) token_type: String,
    pub(crate) expires_in: Option<serde_json::Number>,
    pub(crate) refresh_token: Option<String>,
    pub(crate) scope: Option<String>,
    pub(crate) id_token: Option<String>,
}

impl RawTokenResponse {
    /// The kind of the tokens. `DPoP` only when the request carried a proof; `Bearer` also
    /// answers a DPoP request (RFC 9449 §5: the server may decline to bind).
    pub(crate) fn check_type(&self, sent_proof: bool) -> Result<TokenType, Error> {
        if self.token_type.eq_ignore_ascii_case("bearer") {
            Ok(TokenType::Bearer)
        } else if sent_proof && self.token_type.eq_ignore_ascii_case("dpop") {
            Ok(TokenType::Dpop)
        } else {
            Err(Error::UnsupportedTokenType(crate::text::escape(
                &self.token_type,
            )))
        }
    }

    pub(crate) fn expires_at(&self, now: i64) -> Option<i64> {
        self.expires_in
            .as_ref()
            .and_then(|n| n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)))
            .map(|secs| now.saturating_add(secs.max(0)))
    }

    pub(crate) fn scopes(&self, asked: &Scopes) -> Result<Scopes, Error> {
        match &self.scope {
            Some(s) => s.parse().map_err(|_| Error::InvalidResponse {
                endpoint: Endpoint::Token,
                reason: "`scope` is not a list of scope tokens".into(),
            }),
            None => Ok(asked.clone()),
        }
    }
}

/// A token-endpoint or revocation request: a form body and an optional `Authorization`.
#[derive(Clone)]
pub(crate) struct FormRequest {
    pub(crate) authorization: Option<String>,
    pub(crate) form: Vec<(&'static str, String)>,
}

/// `Authorization: Basic` as Doximity documents it: URL-encode the id and the secret
/// independently, join with `:`, base64.
pub(crate) fn basic_auth(client_id: &str, secret: &ClientSecret) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", enc(client_id), enc(secret.secret())))
    )
}

pub(crate) fn authenticated(
    method: ClientAuthMethod,
    client_id: &str,
    secret: &ClientSecret,
    mut form: Vec<(&'static str, String)>,
) -> FormRequest {
    match method {
        ClientAuthMethod::ClientSecretPost => {
            form.push(("client_id", client_id.to_owned()));
            form.push(("client_secret", secret.secret().clone()));
            FormRequest {
                authorization: None,
                form,
            }
        }
        ClientAuthMethod::ClientSecretBasic => FormRequest {
            authorization: Some(basic_auth(client_id, secret)),
            form,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_url_encodes_each_part() {
        let h = basic_auth("my id:1", &ClientSecret::new("p@ss:w/rd+".into()));
        let decoded =
            String::from_utf8(STANDARD.decode(h.trim_start_matches("Basic ")).unwrap()).unwrap();
        assert_eq!(decoded, "my+id%3A1:p%40ss%3Aw%2Frd%2B");
    }

    #[test]
    fn post_puts_credentials_in_the_body() {
        let r = authenticated(
            ClientAuthMethod::ClientSecretPost,
            "id",
            &ClientSecret::new("s".into()),
            vec![],
        );
        assert!(r.authorization.is_none());
        assert!(r.form.contains(&("client_secret", "s".to_owned())));
        let r = authenticated(
            ClientAuthMethod::ClientSecretBasic,
            "id",
            &ClientSecret::new("s".into()),
            vec![],
        );
        assert!(r.authorization.is_some());
        assert!(r.form.iter().all(|(k, _)| *k != "client_secret"));
    }

    /// Found by the `tokens_cookie` fuzz target: an extreme `expires_at` overflowed.
    #[test]
    fn expires_in_saturates() {
        let mut tokens: TokenSet = serde_json::from_value(serde_json::json!({
            "access_token": "a", "refresh_token": null, "expires_at": i64::MIN,
            "scopes": "openid", "id_token": "", "session_state": null,
            "claims": {"iss": "", "sub": "s", "aud": [], "exp": 0, "iat": 0}}))
        .unwrap();
        assert_eq!(tokens.expires_in(1_700_000_000), Some(i64::MIN));
        tokens.expires_at = Some(i64::MAX);
        assert_eq!(tokens.expires_in(-1), Some(i64::MAX));
        tokens.expires_at = Some(1_700_001_800);
        assert_eq!(tokens.expires_in(1_700_000_000), Some(1800));
    }

    #[test]
    fn token_type_is_bearer_or_dpop_for_a_dpop_request() {
        let mut r: RawTokenResponse = serde_json::from_value(serde_json::json!({
            "access_token": "a", "token_type": "Bearer", "expires_in": 1800}))
        .unwrap();
        assert_eq!(r.check_type(false).unwrap(), TokenType::Bearer);
        assert_eq!(r.check_type(true).unwrap(), TokenType::Bearer);
        assert_eq!(r.expires_at(100), Some(1900));
        r.token_type = "DPoP".into();
        assert!(matches!(
            r.check_type(false),
            Err(Error::UnsupportedTokenType(_))
        ));
        assert_eq!(r.check_type(true).unwrap(), TokenType::Dpop);
        r.token_type = "dpop".into();
        assert_eq!(r.check_type(true).unwrap(), TokenType::Dpop);
        r.token_type = "mac".into();
        assert!(matches!(
            r.check_type(true),
            Err(Error::UnsupportedTokenType(_))
        ));
    }

    #[test]
    fn token_type_is_stored_and_defaults_to_bearer() {
        let json = serde_json::json!({
            "access_token": "a", "refresh_token": null, "expires_at": null,
            "scopes": "openid", "id_token": "", "session_state": null,
            "claims": {"iss": "", "sub": "s", "aud": [], "exp": 0, "iat": 0}});
        let mut tokens: TokenSet = serde_json::from_value(json).unwrap();
        assert_eq!(tokens.token_type, TokenType::Bearer);
        tokens.token_type = TokenType::Dpop;
        let back = serde_json::to_value(&tokens).unwrap();
        assert_eq!(back["token_type"], "DPoP");
        let tokens: TokenSet = serde_json::from_value(back).unwrap();
        assert_eq!(tokens.token_type, TokenType::Dpop);
        assert_eq!(PresentedToken::from(&tokens).token_type, TokenType::Dpop);
        assert_eq!(
            PresentedToken::from(&tokens.access_token).token_type,
            TokenType::Bearer
        );
    }
}
