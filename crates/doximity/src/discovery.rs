//! Discovery: `/.well-known/openid-configuration` and `/.well-known/oauth-authorization-server`
//! (Step 1). Doximity splits its metadata across the two: only the second lists
//! `revocation_endpoint` (and, in Doximity's example, `userinfo_endpoint`), so both are read and
//! merged. Parsing and the rules are pure; [`Client`](crate::Client) does the fetching.

use std::net::IpAddr;

use serde::Deserialize;
use url::{Host, Url};

use crate::error::DiscoveryError;
use crate::text::escape;

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
    /// `authorization_response_iss_parameter_supported` (RFC 9207), true when either document
    /// says so. Then a callback without `iss` is refused.
    pub authorization_response_iss_parameter_supported: bool,
    /// `device_authorization_endpoint` (RFC 8628), when the provider offers device sign-in.
    pub device_authorization_endpoint: Option<Url>,
    /// `dpop_signing_alg_values_supported` (RFC 9449 §5.1): the union of both documents.
    /// DPoP is used only when this lists an algorithm of [`crate::dpop::SUPPORTED_ALGS`].
    pub dpop_signing_alg_values_supported: Vec<String>,
    /// `acr_values_supported`: the union of both documents. When it is not empty, an
    /// authorization request may ask only for these `acr_values`.
    pub acr_values_supported: Vec<String>,
}

/// How strictly discovery judges endpoint URLs. The default is strict: every endpoint must
/// be `https`. Build it from a [`Config`](crate::Config) with
/// [`DiscoveryPolicy::from_config`].
///
/// ```
/// use doximity::discovery::DiscoveryPolicy;
/// assert!(!DiscoveryPolicy::default().loopback_browser_endpoints());
/// assert!(DiscoveryPolicy::default().with_loopback_browser_endpoints().loopback_browser_endpoints());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct DiscoveryPolicy {
    loopback_browser_endpoints: bool,
}

impl DiscoveryPolicy {
    /// The policy a configuration asks for.
    pub fn from_config(config: &crate::Config) -> Self {
        Self {
            loopback_browser_endpoints: config.loopback_browser_endpoints(),
        }
    }

    /// Accepts `http` browser-facing endpoints on loopback for a loopback issuer.
    ///
    /// # Security
    ///
    /// For the embedded mock provider only; see
    /// [`Config::with_loopback_browser_endpoints`](crate::Config::with_loopback_browser_endpoints).
    pub fn with_loopback_browser_endpoints(mut self) -> Self {
        self.loopback_browser_endpoints = true;
        self
    }

    /// Whether the loopback exception is on.
    pub fn loopback_browser_endpoints(&self) -> bool {
        self.loopback_browser_endpoints
    }
}

/// Whether an endpoint is one the browser is sent to (and may, for the embedded mock, be
/// plain http on loopback) or one this crate calls itself (always https).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Channel {
    Browser,
    Back,
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
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
    #[serde(default)]
    dpop_signing_alg_values_supported: Vec<String>,
    #[serde(default)]
    acr_values_supported: Vec<String>,
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
        Self::from_documents_with(expected_issuer, oidc, oauth, DiscoveryPolicy::default())
    }

    /// [`ProviderMetadata::from_documents`] under a [`DiscoveryPolicy`] (the loopback exception
    /// of the embedded mock provider).
    ///
    /// ```
    /// use doximity::discovery::{DiscoveryPolicy, RawMetadata};
    /// let oidc: RawMetadata = serde_json::from_str(r#"{
    ///   "issuer": "https://127.0.0.1:8443",
    ///   "authorization_endpoint": "http://127.0.0.1:8080/oauth/authorize",
    ///   "token_endpoint": "https://127.0.0.1:8443/oauth/token",
    ///   "jwks_uri": "https://127.0.0.1:8443/.well-known/jwks.json"}"#).unwrap();
    /// let policy = DiscoveryPolicy::default().with_loopback_browser_endpoints();
    /// let m = doximity::ProviderMetadata::from_documents_with(
    ///     "https://127.0.0.1:8443", oidc, None, policy).unwrap();
    /// assert_eq!(m.authorization_endpoint.scheme(), "http");
    /// ```
    pub fn from_documents_with(
        expected_issuer: &str,
        oidc: RawMetadata,
        oauth: Option<RawMetadata>,
        policy: DiscoveryPolicy,
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
        // The exception holds only when asked for in code AND the issuer is on loopback.
        let loopback_ok = policy.loopback_browser_endpoints
            && Url::parse(expected_issuer).is_ok_and(|u| is_loopback_host(&u));
        let check = |field: &'static str, channel: Channel, v: &str| {
            endpoint_url(field, v, loopback_ok && channel == Channel::Browser)
        };
        let required = |field: &'static str,
                        channel: Channel,
                        v: Option<String>|
         -> Result<Url, DiscoveryError> {
            check(
                field,
                channel,
                &v.ok_or(DiscoveryError::MissingField(field))?,
            )
        };
        let optional = |field: &'static str,
                        channel: Channel,
                        v: Option<String>|
         -> Result<Option<Url>, DiscoveryError> {
            v.map(|v| check(field, channel, &v)).transpose()
        };
        let scopes_supported = if oauth.scopes_supported.is_empty() {
            oidc.scopes_supported
        } else {
            oauth.scopes_supported
        };
        let iss_parameter = oidc.authorization_response_iss_parameter_supported
            || oauth.authorization_response_iss_parameter_supported;
        let union = |a: &[String], b: &[String]| {
            let mut all = a.to_vec();
            all.extend(b.iter().filter(|v| !a.contains(v)).cloned());
            all
        };
        let dpop_algs = union(
            &oidc.dpop_signing_alg_values_supported,
            &oauth.dpop_signing_alg_values_supported,
        );
        let acr_values = union(&oidc.acr_values_supported, &oauth.acr_values_supported);
        Ok(Self {
            issuer: expected_issuer.to_owned(),
            authorization_endpoint: required(
                "authorization_endpoint",
                Channel::Browser,
                pick(oidc.authorization_endpoint, oauth.authorization_endpoint),
            )?,
            token_endpoint: required(
                "token_endpoint",
                Channel::Back,
                pick(oidc.token_endpoint, oauth.token_endpoint),
            )?,
            jwks_uri: required(
                "jwks_uri",
                Channel::Back,
                pick(oidc.jwks_uri, oauth.jwks_uri),
            )?,
            userinfo_endpoint: optional(
                "userinfo_endpoint",
                Channel::Back,
                pick(oidc.userinfo_endpoint, oauth.userinfo_endpoint),
            )?,
            revocation_endpoint: optional(
                "revocation_endpoint",
                Channel::Back,
                pick(oauth.revocation_endpoint, oidc.revocation_endpoint),
            )?,
            end_session_endpoint: optional(
                "end_session_endpoint",
                Channel::Browser,
                pick(oidc.end_session_endpoint, oauth.end_session_endpoint),
            )?,
            check_session_iframe: optional(
                "check_session_iframe",
                Channel::Browser,
                pick(oidc.check_session_iframe, oauth.check_session_iframe),
            )?,
            scopes_supported,
            authorization_response_iss_parameter_supported: iss_parameter,
            device_authorization_endpoint: optional(
                "device_authorization_endpoint",
                Channel::Back,
                pick(
                    oidc.device_authorization_endpoint,
                    oauth.device_authorization_endpoint,
                ),
            )?,
            dpop_signing_alg_values_supported: dpop_algs,
            acr_values_supported: acr_values,
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
            actual: escape(actual),
        })
    }
}

/// An endpoint URL must be `https` with a host. With `allow_loopback_http` (the embedded
/// mock's browser-facing endpoints, for a loopback issuer), `http` on a loopback IP literal
/// is accepted too.
fn endpoint_url(
    field: &'static str,
    value: &str,
    allow_loopback_http: bool,
) -> Result<Url, DiscoveryError> {
    match Url::parse(value) {
        Ok(url) if url.scheme() == "https" && url.host().is_some() => Ok(url),
        Ok(url) if allow_loopback_http && url.scheme() == "http" && is_loopback_host(&url) => {
            Ok(url)
        }
        _ => Err(DiscoveryError::NotHttps {
            field,
            url: escape(value),
        }),
    }
}

/// Whether a URL's host is a loopback IP literal (`127.0.0.0/8` or `::1`). Names, even
/// `localhost`, are not: a name is resolved elsewhere and can be made to point anywhere.
fn is_loopback_host(url: &Url) -> bool {
    let ip = match url.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip),
        _ => return false,
    };
    ip.is_loopback()
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
    fn dpop_algs_come_from_either_document() {
        let m = ProviderMetadata::from_documents(ISS, doc(full()), None).unwrap();
        assert!(m.dpop_signing_alg_values_supported.is_empty());
        let mut oauth = serde_json::json!({"issuer": ISS});
        oauth["dpop_signing_alg_values_supported"] = serde_json::json!(["RS256"]);
        let m =
            ProviderMetadata::from_documents(ISS, doc(full()), Some(doc(oauth.clone()))).unwrap();
        assert_eq!(m.dpop_signing_alg_values_supported, ["RS256"]);
        let mut oidc = full();
        oidc["dpop_signing_alg_values_supported"] = serde_json::json!(["ES256", "RS256"]);
        let m = ProviderMetadata::from_documents(ISS, doc(oidc), Some(doc(oauth))).unwrap();
        assert_eq!(m.dpop_signing_alg_values_supported, ["ES256", "RS256"]);
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

    const LOOP_ISS: &str = "https://127.0.0.1:8443";
    const BROWSER_FIELDS: [&str; 3] = [
        "authorization_endpoint",
        "end_session_endpoint",
        "check_session_iframe",
    ];
    const BACK_FIELDS: [&str; 4] = [
        "token_endpoint",
        "jwks_uri",
        "userinfo_endpoint",
        "revocation_endpoint",
    ];

    fn loopback() -> serde_json::Value {
        serde_json::json!({
            "issuer": LOOP_ISS,
            "authorization_endpoint": "https://127.0.0.1:8443/oauth/authorize",
            "token_endpoint": "https://127.0.0.1:8443/oauth/token",
            "jwks_uri": "https://127.0.0.1:8443/.well-known/jwks.json",
            "userinfo_endpoint": "https://127.0.0.1:8443/oauth/userinfo",
            "revocation_endpoint": "https://127.0.0.1:8443/oauth/revoke",
            "check_session_iframe": "https://127.0.0.1:8443/oauth/session_state",
            "end_session_endpoint": "https://127.0.0.1:8443/oauth/logout",
        })
    }

    fn lenient() -> DiscoveryPolicy {
        DiscoveryPolicy::default().with_loopback_browser_endpoints()
    }

    fn with_field(base: serde_json::Value, field: &str, url: &str) -> RawMetadata {
        let mut j = base;
        j[field] = url.into();
        doc(j)
    }

    #[test]
    fn loopback_browser_endpoints_may_be_http_with_the_flag() {
        for field in BROWSER_FIELDS {
            for url in [
                "http://127.0.0.1:8080/x",
                "http://127.9.9.9/x",
                "http://[::1]:80/x",
            ] {
                let m = ProviderMetadata::from_documents_with(
                    LOOP_ISS,
                    with_field(loopback(), field, url),
                    None,
                    lenient(),
                )
                .unwrap_or_else(|e| panic!("{field} {url}: {e}"));
                let got = match field {
                    "authorization_endpoint" => Some(m.authorization_endpoint),
                    "end_session_endpoint" => m.end_session_endpoint,
                    _ => m.check_session_iframe,
                };
                assert_eq!(got.unwrap().scheme(), "http");
            }
        }
        // The whole mock shape at once.
        let mut j = loopback();
        for field in BROWSER_FIELDS {
            j[field] = "http://127.0.0.1:8080/x".into();
        }
        assert!(ProviderMetadata::from_documents_with(LOOP_ISS, doc(j), None, lenient()).is_ok());
    }

    #[test]
    fn loopback_http_is_refused_without_the_flag() {
        for field in BROWSER_FIELDS {
            let e = ProviderMetadata::from_documents(
                LOOP_ISS,
                with_field(loopback(), field, "http://127.0.0.1:8080/x"),
                None,
            )
            .unwrap_err();
            assert!(
                matches!(e, DiscoveryError::NotHttps { field: f, .. } if f == field),
                "{field}"
            );
        }
    }

    #[test]
    fn the_loopback_flag_refuses_other_hosts() {
        for field in BROWSER_FIELDS {
            for url in [
                "http://evil.example/x",
                "http://localhost.evil.example/x",
                "http://localhost/x",
                "http://10.0.0.1/x",
                "http://128.0.0.1/x",
                "http://[::2]/x",
                "ftp://127.0.0.1/x",
                "http://127.0.0.1.evil.example/x",
            ] {
                let e = ProviderMetadata::from_documents_with(
                    LOOP_ISS,
                    with_field(loopback(), field, url),
                    None,
                    lenient(),
                )
                .unwrap_err();
                assert!(
                    matches!(e, DiscoveryError::NotHttps { field: f, .. } if f == field),
                    "{field} {url}"
                );
            }
        }
    }

    #[test]
    fn the_loopback_flag_needs_a_loopback_issuer() {
        let mut j = full();
        j["authorization_endpoint"] = "http://127.0.0.1:8080/oauth/authorize".into();
        let e = ProviderMetadata::from_documents_with(ISS, doc(j), None, lenient()).unwrap_err();
        assert!(matches!(
            e,
            DiscoveryError::NotHttps {
                field: "authorization_endpoint",
                ..
            }
        ));
    }

    #[test]
    fn back_channel_endpoints_stay_https_even_with_the_loopback_flag() {
        for field in BACK_FIELDS {
            let e = ProviderMetadata::from_documents_with(
                LOOP_ISS,
                with_field(loopback(), field, "http://127.0.0.1:8080/x"),
                None,
                lenient(),
            )
            .unwrap_err();
            assert!(
                matches!(e, DiscoveryError::NotHttps { field: f, .. } if f == field),
                "{field}"
            );
            // Also when it comes from the authorization-server document.
            let oauth =
                doc(serde_json::json!({"issuer": LOOP_ISS, field: "http://127.0.0.1:8080/x"}));
            let mut oidc = loopback();
            oidc.as_object_mut().unwrap().remove(field);
            let r =
                ProviderMetadata::from_documents_with(LOOP_ISS, doc(oidc), Some(oauth), lenient());
            assert!(
                matches!(r, Err(DiscoveryError::NotHttps { field: f, .. }) if f == field),
                "{field} from the second document"
            );
        }
    }

    #[test]
    fn the_rfc9207_flag_is_read_from_either_document() {
        let m = ProviderMetadata::from_documents(ISS, doc(full()), None).unwrap();
        assert!(!m.authorization_response_iss_parameter_supported);
        let mut j = full();
        j["authorization_response_iss_parameter_supported"] = true.into();
        let m = ProviderMetadata::from_documents(ISS, doc(j), None).unwrap();
        assert!(m.authorization_response_iss_parameter_supported);
        let oauth = doc(serde_json::json!({"issuer": ISS,
            "authorization_response_iss_parameter_supported": true}));
        let m = ProviderMetadata::from_documents(ISS, doc(full()), Some(oauth)).unwrap();
        assert!(m.authorization_response_iss_parameter_supported);
        let mut j = full();
        j["authorization_response_iss_parameter_supported"] = false.into();
        let m = ProviderMetadata::from_documents(ISS, doc(j), None).unwrap();
        assert!(!m.authorization_response_iss_parameter_supported);
    }

    #[test]
    fn discovery_reasons_are_escaped() {
        let forged = "https://evil.example/\n2026-01-01 INFO forged";
        let mut j = full();
        j["issuer"] = forged.into();
        let e = ProviderMetadata::from_documents(ISS, doc(j), None).unwrap_err();
        assert!(!e.to_string().contains('\n'), "{e}");
        let mut j = full();
        // (A URL parser drops raw newlines, so the refused value is the one shown.)
        j["token_endpoint"] = "http://evil.example/\n2026-01-01 INFO forged".into();
        let e = ProviderMetadata::from_documents(ISS, doc(j), None).unwrap_err();
        assert!(!e.to_string().contains('\n'), "{e}");
        assert!(e.to_string().contains("\\n2026"), "{e}");
    }
}
