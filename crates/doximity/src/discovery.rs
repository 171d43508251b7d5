//! Discovery: `/.well-known/openid-configuration` and `/.well-known/oauth-authorization-server`
//! (Step 1). Doximity splits its metadata across the two: only the second lists
//! `revocation_endpoint` (and, in Doximity's example, `userinfo_endpoint`), so both are read and
//! merged. Parsing and the rules are pure; [`Client`](crate::Client) does the fetching.

use serde::Deserialize;
use url::Url;

use crate::error::DiscoveryError;

/// The provider's metadata, merged from both documents and checked.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProviderMetadata {
    /// `issuer`, exactly the configured one.
    pub issuer: String,
    /// `authorization_endpoint`.
    pub authorization_endpoint: Url,
    /// `token_endpoint`.
    pub token_endpoint: Url,
    /// `jwks_uri`.
    pub jwks_uri: Url,
    /// `userinfo_endpoint`.
    pub userinfo_endpoint: Option<Url>,
    /// `revocation_endpoint` (from the authorization-server document).
    pub revocation_endpoint: Option<Url>,
    /// `end_session_endpoint` (RP-initiated logout).
    pub end_session_endpoint: Option<Url>,
    /// `check_session_iframe` (session management).
    pub check_session_iframe: Option<Url>,
    /// `scopes_supported`, as advertised.
    pub scopes_supported: Vec<String>,
    /// `device_authorization_endpoint` (RFC 8628), when the provider offers device sign-in.
    pub device_authorization_endpoint: Option<Url>,
}

/// One discovery document as sent; every field optional so the rules can name what is missing.
#[derive(Debug, Default, Deserialize)]
pub struct RawMetadata {
    issuer: Option<String>,
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
    jwks_uri: Option<String>,
    userinfo_endpoint: Option<String>,
    revocation_endpoint: Option<String>,
    end_session_endpoint: Option<String>,
    check_session_iframe: Option<String>,
    device_authorization_endpoint: Option<String>,
    #[serde(default)]
    scopes_supported: Vec<String>,
    #[serde(default)]
    response_types_supported: Vec<String>,
    #[serde(default)]
    code_challenge_methods_supported: Vec<String>,
}

impl ProviderMetadata {
    /// Merges and checks the two documents. `oauth` is `None` when the provider does not serve
    /// the authorization-server document (then revocation is unavailable).
    ///
    /// ```
    /// let oidc: doximity::discovery::RawMetadata = serde_json::from_str(r#"{
    ///   "issuer": "https://auth.doximity.com",
    ///   "authorization_endpoint": "https://auth.doximity.com/oauth/authorize",
    ///   "token_endpoint": "https://auth.doximity.com/oauth/token",
    ///   "jwks_uri": "https://auth.doximity.com/.well-known/jwks.json"}"#).unwrap();
    /// let oauth: doximity::discovery::RawMetadata = serde_json::from_str(r#"{
    ///   "issuer": "https://auth.doximity.com",
    ///   "revocation_endpoint": "https://auth.doximity.com/oauth/revoke"}"#).unwrap();
    /// let m = doximity::ProviderMetadata::from_documents("https://auth.doximity.com", oidc, Some(oauth)).unwrap();
    /// assert_eq!(m.revocation_endpoint.unwrap().path(), "/oauth/revoke");
    /// ```
    pub fn from_documents(
        expected_issuer: &str,
        oidc: RawMetadata,
        oauth: Option<RawMetadata>,
    ) -> Result<Self, DiscoveryError> {
        check_issuer(expected_issuer, oidc.issuer.as_deref())?;
        let oauth = match oauth {
            Some(o) => {
                check_issuer(expected_issuer, o.issuer.as_deref())?;
                o
            }
            None => RawMetadata::default(),
        };
        for doc in [&oidc, &oauth] {
            if !doc.response_types_supported.is_empty()
                && !doc.response_types_supported.iter().any(|r| r == "code")
            {
                return Err(DiscoveryError::Unsupported("response_type=code"));
            }
            if !doc.code_challenge_methods_supported.is_empty()
                && !doc
                    .code_challenge_methods_supported
                    .iter()
                    .any(|m| m == "S256")
            {
                return Err(DiscoveryError::Unsupported("code_challenge_method=S256"));
            }
        }
        let pick = |a: Option<String>, b: Option<String>| a.or(b);
        let required = |field: &'static str, v: Option<String>| -> Result<Url, DiscoveryError> {
            https(field, &v.ok_or(DiscoveryError::MissingField(field))?)
        };
        let optional =
            |field: &'static str, v: Option<String>| -> Result<Option<Url>, DiscoveryError> {
                v.map(|v| https(field, &v)).transpose()
            };
        let scopes_supported = if oauth.scopes_supported.is_empty() {
            oidc.scopes_supported
        } else {
            oauth.scopes_supported
        };
        Ok(Self {
            issuer: expected_issuer.to_owned(),
            authorization_endpoint: required(
                "authorization_endpoint",
                pick(oidc.authorization_endpoint, oauth.authorization_endpoint),
            )?,
            token_endpoint: required(
                "token_endpoint",
                pick(oidc.token_endpoint, oauth.token_endpoint),
            )?,
            jwks_uri: required("jwks_uri", pick(oidc.jwks_uri, oauth.jwks_uri))?,
            userinfo_endpoint: optional(
                "userinfo_endpoint",
                pick(oidc.userinfo_endpoint, oauth.userinfo_endpoint),
            )?,
            revocation_endpoint: optional(
                "revocation_endpoint",
                pick(oauth.revocation_endpoint, oidc.revocation_endpoint),
            )?,
            end_session_endpoint: optional(
                "end_session_endpoint",
                pick(oidc.end_session_endpoint, oauth.end_session_endpoint),
            )?,
            check_session_iframe: optional(
                "check_session_iframe",
                pick(oidc.check_session_iframe, oauth.check_session_iframe),
            )?,
            scopes_supported,
            device_authorization_endpoint: optional(
                "device_authorization_endpoint",
                pick(
                    oidc.device_authorization_endpoint,
                    oauth.device_authorization_endpoint,
                ),
            )?,
        })
    }
}

fn check_issuer(expected: &str, actual: Option<&str>) -> Result<(), DiscoveryError> {
    let actual = actual.ok_or(DiscoveryError::MissingField("issuer"))?;
    if actual == expected {
        Ok(())
    } else {
        Err(DiscoveryError::IssuerMismatch {
            expected: expected.to_owned(),
            actual: actual.chars().take(200).collect(),
        })
    }
}

fn https(field: &'static str, value: &str) -> Result<Url, DiscoveryError> {
    match Url::parse(value) {
        Ok(url) if url.scheme() == "https" && url.host().is_some() => Ok(url),
        _ => Err(DiscoveryError::NotHttps {
            field,
            url: value.chars().take(200).collect(),
        }),
    }
}

/// The well-known URL for `suffix` under `issuer` (RFC 8414 path insertion is not needed:
/// Doximity's issuer has no path, so the document sits under the issuer).
pub(crate) fn well_known(issuer: &str, suffix: &str) -> Result<Url, crate::error::ConfigError> {
    Url::parse(&format!(
        "{}/.well-known/{suffix}",
        issuer.trim_end_matches('/')
    ))
    .map_err(|e| crate::error::ConfigError::InvalidUrl {
        name: "DOXIMITY_ISSUER",
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISS: &str = "https://auth.doximity.com";

    fn doc(json: serde_json::Value) -> RawMetadata {
        serde_json::from_value(json).unwrap()
    }

    fn full() -> serde_json::Value {
        serde_json::json!({
            "issuer": ISS,
            "authorization_endpoint": "https://auth.doximity.com/oauth/authorize",
            "token_endpoint": "https://auth.doximity.com/oauth/token",
            "jwks_uri": "https://auth.doximity.com/.well-known/jwks.json",
            "check_session_iframe": "https://auth.doximity.com/oauth/session_state",
            "end_session_endpoint": "https://auth.doximity.com/oauth/logout",
        })
    }

    #[test]
    fn issuer_must_match_exactly() {
        for bad in [
            "https://auth.doximity.com/",
            "https://AUTH.doximity.com",
            "https://evil.example",
        ] {
            let mut j = full();
            j["issuer"] = bad.into();
            let e = ProviderMetadata::from_documents(ISS, doc(j), None).unwrap_err();
            assert!(matches!(e, DiscoveryError::IssuerMismatch { .. }), "{bad}");
        }
        let mut oauth = full();
        oauth["issuer"] = "https://evil.example".into();
        let e = ProviderMetadata::from_documents(ISS, doc(full()), Some(doc(oauth))).unwrap_err();
        assert!(matches!(e, DiscoveryError::IssuerMismatch { .. }));
    }

    #[test]
    fn endpoints_must_be_https() {
        for field in [
            "authorization_endpoint",
            "token_endpoint",
            "jwks_uri",
            "end_session_endpoint",
        ] {
            let mut j = full();
            j[field] = "http://auth.doximity.com/x".into();
            let e = ProviderMetadata::from_documents(ISS, doc(j), None).unwrap_err();
            assert!(
                matches!(e, DiscoveryError::NotHttps { field: f, .. } if f == field),
                "{field}"
            );
        }
    }

    #[test]
    fn required_fields_are_named() {
        let mut j = full();
        j.as_object_mut().unwrap().remove("jwks_uri");
        let e = ProviderMetadata::from_documents(ISS, doc(j), None).unwrap_err();
        assert!(matches!(e, DiscoveryError::MissingField("jwks_uri")));
    }

    #[test]
    fn revocation_comes_from_the_second_document() {
        let oauth = doc(serde_json::json!({"issuer": ISS,
            "revocation_endpoint": "https://auth.doximity.com/oauth/revoke",
            "userinfo_endpoint": "https://auth.doximity.com/oauth/userinfo"}));
        let m = ProviderMetadata::from_documents(ISS, doc(full()), Some(oauth)).unwrap();
        assert_eq!(m.revocation_endpoint.unwrap().path(), "/oauth/revoke");
        assert_eq!(m.userinfo_endpoint.unwrap().path(), "/oauth/userinfo");
        let m = ProviderMetadata::from_documents(ISS, doc(full()), None).unwrap();
        assert!(m.revocation_endpoint.is_none());
    }

    #[test]
    fn must_support_code_and_s256_when_listed() {
        let mut j = full();
        j["code_challenge_methods_supported"] = serde_json::json!(["plain"]);
        assert!(ProviderMetadata::from_documents(ISS, doc(j), None).is_err());
        let mut j = full();
        j["response_types_supported"] = serde_json::json!(["token"]);
        assert!(ProviderMetadata::from_documents(ISS, doc(j), None).is_err());
    }
}
