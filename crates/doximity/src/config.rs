//! Configuration: credentials, provider, redirect URI, scopes, trust and timeouts.

use std::time::Duration;

use url::Url;

use crate::error::ConfigError;
use crate::scope::Scopes;
use crate::secret::ClientSecret;

/// Doximity's issuer, the default provider.
pub const DEFAULT_ISSUER: &str = "https://auth.doximity.com";
/// The older API's host, which serves `/api/v1/*` for the default issuer.
pub const DEFAULT_API_BASE: &str = "https://www.doximity.com";
/// The redirect URI of the configuration contract's default deployment.
pub const DEFAULT_REDIRECT_URI: &str = "http://127.0.0.1:3000/auth/doximity/callback";

/// How the client authenticates at the token and revocation endpoints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientAuthMethod {
    /// HTTP Basic with the URL-encoded id and secret: what Doximity's OpenID Connect API takes.
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body: the older API (`002_*.txt`). Opt-in.
    ClientSecretPost,
}

/// Everything the client needs. Build it with [`Config::new`] and the `with_*` methods, or
/// read it from the environment with [`Config::from_env`].
///
/// ```
/// use doximity::Config;
/// use doximity::secret::ClientSecret;
///
/// let config = Config::new("my-client", ClientSecret::new("s3cret".into()),
///         "https://app.example/auth/doximity/callback".parse().unwrap())
///     .with_scopes(&"openid profile:read:basic".parse().unwrap());
/// assert_eq!(config.issuer(), "https://auth.doximity.com");
/// assert!(!format!("{config:?}").contains("s3cret"));
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct Config {
    pub(crate) issuer: String,
    pub(crate) api_base: Option<Url>,
    pub(crate) client_id: String,
    pub(crate) client_secret: ClientSecret,
    pub(crate) redirect_uri: Url,
    pub(crate) scopes: Scopes,
    pub(crate) post_logout_redirect_uri: Option<Url>,
    pub(crate) extra_root_pem: Option<Vec<u8>>,
    pub(crate) leeway: Duration,
    pub(crate) timeout: Duration,
    pub(crate) auth_method: ClientAuthMethod,
    pub(crate) loopback_browser_endpoints: bool,
    pub(crate) dpop_key: Option<crate::dpop::DpopKey>,
}

impl Config {
    /// A configuration for Doximity's production issuer with scope `openid`.
    pub fn new(
        client_id: impl Into<String>,
        client_secret: ClientSecret,
        redirect_uri: Url,
    ) -> Self {
        Self {
            issuer: DEFAULT_ISSUER.to_owned(),
            api_base: None,
            client_id: client_id.into(),
            client_secret,
            redirect_uri,
            scopes: Scopes::openid(),
            post_logout_redirect_uri: None,
            extra_root_pem: None,
            leeway: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            auth_method: ClientAuthMethod::ClientSecretBasic,
            loopback_browser_endpoints: false,
            dpop_key: None,
        }
    }

    /// Reads the configuration contract's variables:
    ///
    /// | variable | meaning | default |
    /// |---|---|---|
    /// | `DOXIMITY_CLIENT_ID` / `DOXIMITY_CLIENT_SECRET` | credentials | required |
    /// | `DOXIMITY_ISSUER` | provider | `https://auth.doximity.com` |
    /// | `DOXIMITY_REDIRECT_URI` | callback URL | `http://127.0.0.1:3000/auth/doximity/callback` |
    /// | `DOXIMITY_SCOPES` | space separated | `openid` |
    /// | `DOXIMITY_POST_LOGOUT_REDIRECT_URI` | after provider logout | origin of the redirect URI, `/` |
    /// | `DOXIMITY_CA_CERT` | PEM file of an extra trusted root | none |
    ///
    /// An empty variable counts as unset.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`Config::from_env`] with the variables taken from `lookup` (for tests and for other
    /// configuration sources).
    ///
    /// ```
    /// let vars = [("DOXIMITY_CLIENT_ID", "id"), ("DOXIMITY_CLIENT_SECRET", "secret"),
    ///             ("DOXIMITY_SCOPES", "openid profile:read:basic")];
    /// let config = doximity::Config::from_lookup(|k| {
    ///     vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    /// }).unwrap();
    /// assert_eq!(config.scopes().to_string(), "openid profile:read:basic");
    /// assert_eq!(config.post_logout_redirect_uri().as_str(), "http://127.0.0.1:3000/");
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let client_id =
            get("DOXIMITY_CLIENT_ID").ok_or(ConfigError::Missing("DOXIMITY_CLIENT_ID"))?;
        let client_secret =
            get("DOXIMITY_CLIENT_SECRET").ok_or(ConfigError::Missing("DOXIMITY_CLIENT_SECRET"))?;
        let redirect_uri = parse_url(
            "DOXIMITY_REDIRECT_URI",
            get("DOXIMITY_REDIRECT_URI")
                .as_deref()
                .unwrap_or(DEFAULT_REDIRECT_URI),
        )?;
        let mut config = Config::new(
            client_id.trim(),
            ClientSecret::new(client_secret),
            redirect_uri,
        );
        if let Some(issuer) = get("DOXIMITY_ISSUER") {
            config = config.with_issuer(issuer.trim())?;
        }
        if let Some(scopes) = get("DOXIMITY_SCOPES") {
            config = config.with_scopes(&scopes.parse()?);
        }
        if let Some(uri) = get("DOXIMITY_POST_LOGOUT_REDIRECT_URI") {
            config = config.with_post_logout_redirect_uri(parse_url(
                "DOXIMITY_POST_LOGOUT_REDIRECT_URI",
                &uri,
            )?);
        }
        if let Some(path) = get("DOXIMITY_CA_CERT") {
            let pem = std::fs::read(&path).map_err(|e| ConfigError::CaCert {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            config = config.with_ca_cert_pem(pem);
        }
        Ok(config.with_dpop_key(crate::dpop::DpopKey::from_lookup(&lookup)?))
    }

    /// Sets the issuer (the provider). It must be https, and discovery must report it exactly.
    pub fn with_issuer(mut self, issuer: &str) -> Result<Self, ConfigError> {
        let url = parse_url("DOXIMITY_ISSUER", issuer)?;
        if url.scheme() != "https" {
            return Err(ConfigError::NotHttps {
                name: "DOXIMITY_ISSUER",
                url: issuer.to_owned(),
            });
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(ConfigError::InvalidUrl {
                name: "DOXIMITY_ISSUER",
                reason: "an issuer has no query or fragment".into(),
            });
        }
        self.issuer = issuer.to_owned();
        Ok(self)
    }

    /// Sets the base URL of the `/api/v1/*` calls (rate limit, older profile API). Defaults to
    /// `https://www.doximity.com` for Doximity's issuer and to the issuer for any other.
    pub fn with_api_base(mut self, base: Url) -> Result<Self, ConfigError> {
        if base.scheme() != "https" {
            return Err(ConfigError::NotHttps {
                name: "api_base",
                url: base.to_string(),
            });
        }
        self.api_base = Some(base);
        Ok(self)
    }

    /// Sets the scopes to ask for. `openid` is always added: without it there is no ID token.
    pub fn with_scopes(mut self, scopes: &Scopes) -> Self {
        self.scopes = Scopes::openid().union(scopes);
        self
    }

    /// Sets where the provider sends the user after logout. Defaults to the redirect URI's
    /// origin with path `/`.
    pub fn with_post_logout_redirect_uri(mut self, uri: Url) -> Self {
        self.post_logout_redirect_uri = Some(uri);
        self
    }

    /// Trusts one more root certificate (PEM), besides the public web roots. This is how tests
    /// and the demo trust the mock provider's own CA; certificate checks are never turned off.
    pub fn with_ca_cert_pem(mut self, pem: Vec<u8>) -> Self {
        self.extra_root_pem = Some(pem);
        self
    }

    /// Sets the clock leeway for `exp`, `iat` and `auth_time` (default 30 s).
    ///
    /// # Security
    ///
    /// A larger leeway accepts expired tokens for longer. Keep it to minutes at most.
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Sets the timeout of every provider call (default 10 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Uses `client_secret_post` at the token endpoint, as the older API (`002_*.txt`) does.
    ///
    /// # Security
    ///
    /// Doximity's OpenID Connect API takes only `client_secret_basic`; use this only against
    /// the older API.
    pub fn with_client_secret_post(mut self) -> Self {
        self.auth_method = ClientAuthMethod::ClientSecretPost;
        self
    }

    /// Accepts plain `http` for the provider's browser-facing endpoints
    /// (`authorization_endpoint`, `end_session_endpoint`, `check_session_iframe`) when both they
    /// and the issuer are on a loopback IP address (`127.0.0.0/8` or `::1`).
    ///
    /// This is for the embedded mock provider only, which serves its sign-in pages over
    /// `http://127.0.0.1:<port>` so that a browser nobody configured can sign in without a
    /// certificate warning. Set it in code next to the code that starts the embedded mock;
    /// [`Config::from_env`] and [`Config::from_lookup`] never set it, and no variable can.
    ///
    /// ```
    /// # let config = doximity::Config::new("id", doximity::secret::ClientSecret::new("s".into()),
    /// #     "http://127.0.0.1:3000/auth/doximity/callback".parse().unwrap());
    /// let config = config.with_loopback_browser_endpoints();
    /// assert!(config.loopback_browser_endpoints());
    /// ```
    ///
    /// # Security
    ///
    /// Every back-channel call (discovery, token, JWKS, userinfo, revocation) stays HTTPS with
    /// certificates verified: this flag does not touch them, and a non-https back-channel
    /// endpoint is refused with or without it. Only the three URLs the *browser* is sent to
    /// may be `http`, and only on loopback, where the traffic never leaves the machine and
    /// browsers treat `http://127.0.0.1` as a secure context. A URL on any other host
    /// (including names such as `localhost.evil.example`, or a private address such as
    /// `10.0.0.1`) is refused, and so is every `http` URL when the issuer itself is not on
    /// loopback. Never set this for a configured (real) provider.
    pub fn with_loopback_browser_endpoints(mut self) -> Self {
        self.loopback_browser_endpoints = true;
        self
    }

    /// Signs DPoP proofs (RFC 9449) with `key` whenever the provider's metadata advertises an
    /// algorithm this crate implements (`RS256`): on every token-endpoint call (code exchange,
    /// refresh, device polling) and on userinfo. The provider then binds the tokens it issues
    /// to the key. Without this, or when the provider advertises no such algorithm, tokens
    /// are plain `Bearer`.
    ///
    /// Use one key per deployment, shared by every instance: a token bound to one instance's
    /// key cannot be refreshed by another. See `docs/dpop.md`.
    ///
    /// ```
    /// # let config = doximity::Config::new("id", doximity::secret::ClientSecret::new("s".into()),
    /// #     "http://127.0.0.1:3000/auth/doximity/callback".parse().unwrap());
    /// let key = doximity::dpop::DpopKey::generate().unwrap();
    /// let config = config.with_dpop_key(key.clone());
    /// assert_eq!(config.dpop_key().unwrap().thumbprint(), key.thumbprint());
    /// ```
    pub fn with_dpop_key(mut self, key: crate::dpop::DpopKey) -> Self {
        self.dpop_key = Some(key);
        self
    }

    /// No DPoP: tokens are requested and presented as `Bearer` even when the provider
    /// advertises DPoP (the switch for a deployment that must not use it).
    pub fn without_dpop(mut self) -> Self {
        self.dpop_key = None;
        self
    }

    /// The DPoP key, if one is configured.
    pub fn dpop_key(&self) -> Option<&crate::dpop::DpopKey> {
        self.dpop_key.as_ref()
    }

    /// Whether [`Config::with_loopback_browser_endpoints`] was set (never from the
    /// environment).
    pub fn loopback_browser_endpoints(&self) -> bool {
        self.loopback_browser_endpoints
    }

    /// The issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The redirect URI.
    pub fn redirect_uri(&self) -> &Url {
        &self.redirect_uri
    }

    /// The scopes asked for at sign-in.
    pub fn scopes(&self) -> &Scopes {
        &self.scopes
    }

    /// Where the provider sends the user after logout.
    pub fn post_logout_redirect_uri(&self) -> Url {
        self.post_logout_redirect_uri.clone().unwrap_or_else(|| {
            let mut u = self.redirect_uri.clone();
            u.set_path("/");
            u.set_query(None);
            u.set_fragment(None);
            u
        })
    }

    /// The base URL of `/api/v1/*`.
    pub fn api_base(&self) -> Url {
        if let Some(base) = &self.api_base {
            return base.clone();
        }
        let base = if self.issuer == DEFAULT_ISSUER {
            DEFAULT_API_BASE
        } else {
            &self.issuer
        };
        // Both are validated https URLs.
        Url::parse(base).unwrap_or_else(|_| self.redirect_uri.clone())
    }

    /// Whether the redirect URI is https (which decides the cookie's `Secure` and `__Host-`).
    pub fn is_https(&self) -> bool {
        self.redirect_uri.scheme() == "https"
    }

    /// The clock leeway.
    pub fn leeway(&self) -> Duration {
        self.leeway
    }

    /// The client authentication method.
    pub fn auth_method(&self) -> ClientAuthMethod {
        self.auth_method
    }
}

fn parse_url(name: &'static str, value: &str) -> Result<Url, ConfigError> {
    Url::parse(value.trim()).map_err(|e| ConfigError::InvalidUrl {
        name,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn defaults_follow_the_contract() {
        let c = Config::from_lookup(lookup(&[
            ("DOXIMITY_CLIENT_ID", "id"),
            ("DOXIMITY_CLIENT_SECRET", "secret"),
        ]))
        .unwrap();
        assert_eq!(c.issuer(), DEFAULT_ISSUER);
        assert_eq!(c.redirect_uri().as_str(), DEFAULT_REDIRECT_URI);
        assert_eq!(c.scopes().to_string(), "openid");
        assert_eq!(
            c.post_logout_redirect_uri().as_str(),
            "http://127.0.0.1:3000/"
        );
        assert_eq!(c.api_base().as_str(), "https://www.doximity.com/");
        assert!(!c.is_https());
    }

    #[test]
    fn missing_credentials_are_named() {
        let e = Config::from_lookup(lookup(&[("DOXIMITY_CLIENT_SECRET", "s")])).unwrap_err();
        assert!(matches!(e, ConfigError::Missing("DOXIMITY_CLIENT_ID")));
        let e = Config::from_lookup(lookup(&[
            ("DOXIMITY_CLIENT_ID", "i"),
            ("DOXIMITY_CLIENT_SECRET", " "),
        ]))
        .unwrap_err();
        assert!(matches!(e, ConfigError::Missing("DOXIMITY_CLIENT_SECRET")));
    }

    #[test]
    fn issuer_must_be_https() {
        let e = Config::from_lookup(lookup(&[
            ("DOXIMITY_CLIENT_ID", "id"),
            ("DOXIMITY_CLIENT_SECRET", "secret"),
            ("DOXIMITY_ISSUER", "http://auth.doximity.com"),
        ]))
        .unwrap_err();
        assert!(matches!(e, ConfigError::NotHttps { .. }));
    }

    #[test]
    fn openid_is_always_asked_for() {
        let c = Config::from_lookup(lookup(&[
            ("DOXIMITY_CLIENT_ID", "id"),
            ("DOXIMITY_CLIENT_SECRET", "secret"),
            ("DOXIMITY_SCOPES", "profile:read:basic"),
        ]))
        .unwrap();
        assert_eq!(c.scopes().to_string(), "openid profile:read:basic");
    }

    #[test]
    fn unreadable_ca_cert_is_an_error() {
        let e = Config::from_lookup(lookup(&[
            ("DOXIMITY_CLIENT_ID", "id"),
            ("DOXIMITY_CLIENT_SECRET", "secret"),
            ("DOXIMITY_CA_CERT", "/nonexistent/ca.pem"),
        ]))
        .unwrap_err();
        assert!(matches!(e, ConfigError::CaCert { .. }));
    }

    #[test]
    fn secret_is_not_in_debug() {
        let c = Config::from_lookup(lookup(&[
            ("DOXIMITY_CLIENT_ID", "id"),
            ("DOXIMITY_CLIENT_SECRET", "very-secret-value"),
        ]))
        .unwrap();
        assert!(!format!("{c:?}").contains("very-secret-value"));
    }

    #[test]
    fn loopback_browser_endpoints_never_come_from_the_environment() {
        let vars = [
            ("DOXIMITY_CLIENT_ID", "id"),
            ("DOXIMITY_CLIENT_SECRET", "secret"),
            ("DOXIMITY_ISSUER", "https://127.0.0.1:8443"),
            ("DOXIMITY_LOOPBACK_BROWSER_ENDPOINTS", "true"),
        ];
        let c = Config::from_lookup(lookup(&vars)).unwrap();
        assert!(!c.loopback_browser_endpoints());
        assert!(
            c.with_loopback_browser_endpoints()
                .loopback_browser_endpoints()
        );
    }
}
