//! Credentials presented to an API (`Authorization: Bearer ...`), verified through the
//! provider: what a bearer identity may honestly be built from.

use serde_json::Value;

use crate::claims::UserInfo;
use crate::scope::Scopes;
use crate::secret::AccessToken;

/// An access token that the provider vouched for through a signed userinfo answer (signature,
/// `iss`, `aud` containing our client id, and `exp` when present all checked). Made only by
/// [`Client::verify_access_token`](crate::Client::verify_access_token): holding one means the
/// checks passed, so a web layer can build a bearer identity from it without inventing an ID
/// token or a session.
///
/// Its `Debug` shows no token.
#[derive(Clone)]
pub struct VerifiedAccessToken {
    access_token: AccessToken,
    userinfo: UserInfo,
    issuer: String,
    audiences: Vec<String>,
    expires_at: Option<i64>,
    scopes: Scopes,
}

impl VerifiedAccessToken {
    /// Built from a userinfo answer that passed every check.
    pub(crate) fn from_verified_userinfo(access_token: AccessToken, userinfo: UserInfo) -> Self {
        let issuer = match userinfo.additional.get("iss") {
            Some(Value::String(s)) => s.clone(),
            _ => String::new(),
        };
        let audiences = match userinfo.additional.get("aud") {
            Some(Value::String(a)) => vec![a.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        let expires_at = userinfo.additional.get("exp").and_then(Value::as_i64);
        let scopes = scopes_shown_by(&userinfo);
        Self {
            access_token,
            userinfo,
            issuer,
            audiences,
            expires_at,
            scopes,
        }
    }

    /// The user's Doximity id.
    pub fn sub(&self) -> &str {
        &self.userinfo.sub
    }

    /// The issuer that signed the answer (the configured one).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The answer's audiences (our client id, and perhaps the issuer).
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }

    /// The answer's `exp`, epoch seconds, when it carried one. Doximity's answers carry none:
    /// then how long to trust the token is the caller's choice (a cache lifetime).
    pub fn expires_at(&self) -> Option<i64> {
        self.expires_at
    }

    /// The scopes the answer shows were granted: `openid`, those in a `scope` claim if the
    /// provider sends one, `profile:read:basic` when the basic profile's claims are present
    /// (not `profile_uuid` alone, whose scope Doximity does not document), `profile:read:email` when `primary_email`, `emails` or `email` is, and
    /// `profile:read:permissions` when `permissions` is. Never more than the answer proves.
    pub fn scopes(&self) -> &Scopes {
        &self.scopes
    }

    /// The verified userinfo claims (the profile, when the token's scopes allow it).
    pub fn userinfo(&self) -> &UserInfo {
        &self.userinfo
    }

    /// The access token itself, for calls on the user's behalf.
    pub fn access_token(&self) -> &AccessToken {
        &self.access_token
    }
}

impl std::fmt::Debug for VerifiedAccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedAccessToken")
            .field("sub", &self.userinfo.sub)
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("expires_at", &self.expires_at)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// The scopes a userinfo answer proves.
fn scopes_shown_by(info: &UserInfo) -> Scopes {
    let mut scopes = Scopes::openid();
    if let Some(Value::String(listed)) = info.additional.get("scope")
        && let Ok(listed) = listed.parse::<Scopes>()
    {
        scopes = scopes.union(&listed);
    }
    let basic = info.name.is_some()
        || info.given_name.is_some()
        || info.family_name.is_some()
        || info.credentials.is_some()
        || info.specialty.is_some()
        || info.profile_photo_url.is_some();
    if basic {
        let _ = scopes.insert("profile:read:basic");
    }
    if info.primary_email.is_some()
        || info.emails.is_some()
        || info.additional.contains_key("email")
    {
        let _ = scopes.insert("profile:read:email");
    }
    if info.permissions.is_some() {
        let _ = scopes.insert("profile:read:permissions");
    }
    scopes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(json: serde_json::Value) -> UserInfo {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn scopes_are_only_what_the_answer_shows() {
        let t = |j| {
            VerifiedAccessToken::from_verified_userinfo(
                AccessToken::new("tok-secret".into()),
                info(j),
            )
        };
        let bare =
            t(serde_json::json!({"sub": "u1", "iss": "https://i", "aud": ["https://i", "c"]}));
        assert_eq!(bare.scopes().to_string(), "openid");
        assert_eq!(bare.audiences(), ["https://i", "c"]);
        assert_eq!(bare.issuer(), "https://i");
        assert_eq!(bare.expires_at(), None);
        let profile = t(serde_json::json!({"sub": "u1", "name": "Dr A", "exp": 99,
            "scope": "openid search"}));
        assert_eq!(
            profile.scopes().to_string(),
            "openid search profile:read:basic"
        );
        assert_eq!(profile.expires_at(), Some(99));
        // Each typed claim shows the scope Doximity documents for it, and only that one.
        for (claims, shown) in [
            (
                serde_json::json!({"primary_email": "a@b.org"}),
                "openid profile:read:email",
            ),
            (
                serde_json::json!({"emails": ["a@b.org"]}),
                "openid profile:read:email",
            ),
            (
                serde_json::json!({"email": "a@b.org"}),
                "openid profile:read:email",
            ),
            (
                serde_json::json!({"permissions": ["x"]}),
                "openid profile:read:permissions",
            ),
            (serde_json::json!({"profile_uuid": "p-1"}), "openid"),
        ] {
            let mut answer = claims.clone();
            answer["sub"] = "u1".into();
            assert_eq!(t(answer).scopes().to_string(), shown, "{claims}");
        }
        assert!(!format!("{profile:?}").contains("tok-secret"));
    }
}
