//! The authorization request (Step 2) and the pending login it leaves behind.

use openidconnect::PkceCodeChallenge;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::scope::Scopes;
use crate::secret::{CsrfToken, Nonce, PkceCodeVerifier};

/// Random bytes in `state` and `nonce`: 256 bits.
const RANDOM_BYTES: u32 = 32;

/// `prompt`: which interaction to force.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Prompt {
    /// Answer at once; `login_required` when the user is not signed in at Doximity.
    None,
    /// Force the sign-in page.
    Login,
    /// Force the consent page.
    Consent,
    /// Land on account creation and verification.
    Create,
}

/// `display`: how the provider lays out its pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Display {
    /// The responsive page (default).
    Page,
    /// A lightweight page for a popup window.
    Popup,
}

/// `response_mode`: where the callback parameters go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ResponseMode {
    /// The query string (default).
    Query,
    /// The fragment (read by a script in the browser, then posted to the server).
    Fragment,
}

/// The older API's `type`: which landing page the user sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum LandingPage {
    /// `type=login` (default): for users who sign in often.
    Login,
    /// `type=verify`: emphasises identity verification.
    Verify,
}

impl Prompt {
    fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Login => "login",
            Self::Consent => "consent",
            Self::Create => "create",
        }
    }
}

/// Options of one authorization request. The default asks for the configured scopes with no
/// forced interaction.
///
/// ```
/// use doximity::authorize::{AuthorizeRequest, Prompt};
/// let req = AuthorizeRequest::new().with_prompt(Prompt::Create).with_login_hint("dr@example.org");
/// assert_eq!(req.prompt(), Some(Prompt::Create));
/// ```
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct AuthorizeRequest {
    scopes: Option<Scopes>,
    prompt: Option<Prompt>,
    display: Option<Display>,
    response_mode: Option<ResponseMode>,
    id_token_hint: Option<String>,
    login_hint: Option<String>,
    landing_page: Option<LandingPage>,
    acr_values: Vec<String>,
    max_age: Option<u64>,
}

impl AuthorizeRequest {
    /// The default request.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks for these scopes instead of the configured ones (`openid` is always added).
    pub fn with_scopes(mut self, scopes: &Scopes) -> Self {
        self.scopes = Some(Scopes::openid().union(scopes));
        self
    }

    /// Sets `prompt`.
    pub fn with_prompt(mut self, prompt: Prompt) -> Self {
        self.prompt = Some(prompt);
        self
    }

    /// Sets `display`.
    pub fn with_display(mut self, display: Display) -> Self {
        self.display = Some(display);
        self
    }

    /// Sets `response_mode`.
    pub fn with_response_mode(mut self, mode: ResponseMode) -> Self {
        self.response_mode = Some(mode);
        self
    }

    /// Sets `id_token_hint` (a previous ID token, to pre-fill the sign-in page).
    pub fn with_id_token_hint(mut self, id_token: &crate::secret::RawIdToken) -> Self {
        self.id_token_hint = Some(id_token.secret().to_owned());
        self
    }

    /// Sets `login_hint`.
    pub fn with_login_hint(mut self, hint: impl Into<String>) -> Self {
        self.login_hint = Some(hint.into());
        self
    }

    /// Sets the older API's `type` (`login` or `verify`).
    pub fn with_landing_page(mut self, page: LandingPage) -> Self {
        self.landing_page = Some(page);
        self
    }

    /// Sets `acr_values` (OpenID Connect Core 3.1.2.1, RFC 9470): the authentication context
    /// classes wanted, in order of preference. Doximity advertises `"1"`, `"2"` and `"3"`.
    /// The ID token's `acr` must then satisfy one of them
    /// ([`Acr::satisfies`](crate::claims::Acr::satisfies)), or the login fails.
    /// [`Client::authorize_url`](crate::Client::authorize_url) refuses a value the provider
    /// does not list in `acr_values_supported`.
    ///
    /// ```
    /// use doximity::AuthorizeRequest;
    /// let req = AuthorizeRequest::new().with_acr_values(["2"]);
    /// assert_eq!(req.acr_values(), ["2"]);
    /// ```
    pub fn with_acr_values<I, S>(mut self, values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.acr_values = values.into_iter().map(Into::into).collect();
        self
    }

    /// Sets `max_age`: the user must have authenticated at the provider at most this long ago,
    /// or authenticate again. The ID token's `auth_time` must then be within it, or the login
    /// fails. Whole seconds.
    pub fn with_max_age(mut self, max_age: std::time::Duration) -> Self {
        self.max_age = Some(max_age.as_secs());
        self
    }

    /// The `acr_values`, if set.
    pub fn acr_values(&self) -> &[String] {
        &self.acr_values
    }

    /// The `max_age` in seconds, if set.
    pub fn max_age(&self) -> Option<u64> {
        self.max_age
    }

    /// The `prompt`, if set.
    pub fn prompt(&self) -> Option<Prompt> {
        self.prompt
    }

    /// The scopes, if overridden.
    pub fn scopes(&self) -> Option<&Scopes> {
        self.scopes.as_ref()
    }
}

/// What a login must remember between the redirect to Doximity and the callback: `state`,
/// `nonce`, the PKCE verifier, the exact redirect URI and the scopes asked for. Serialisable,
/// so a web layer can keep it in an encrypted cookie. Its `Debug` shows no secret.
#[derive(Serialize, Deserialize, Debug)]
pub struct PendingLogin {
    pub(crate) state: CsrfToken,
    pub(crate) nonce: Nonce,
    pub(crate) pkce_verifier: PkceCodeVerifier,
    pub(crate) redirect_uri: String,
    pub(crate) scopes: Scopes,
    pub(crate) response_mode: Option<ResponseMode>,
    /// Epoch seconds when the login started.
    pub(crate) created_at: i64,
    /// The `acr_values` this login asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) acr_values: Vec<String>,
    /// The `max_age` this login asked for, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) max_age: Option<u64>,
}

impl PendingLogin {
    /// The `state` this login sent.
    pub fn state(&self) -> &CsrfToken {
        &self.state
    }

    /// The `nonce` this login sent, for [`Client::verify_sign_in_id_token`](crate::Client::verify_sign_in_id_token).
    pub fn nonce(&self) -> &Nonce {
        &self.nonce
    }

    /// The scopes this login asked for.
    pub fn scopes(&self) -> &Scopes {
        &self.scopes
    }

    /// When the login started, epoch seconds.
    pub fn created_at(&self) -> i64 {
        self.created_at
    }

    /// The `response_mode` this login asked for.
    pub fn response_mode(&self) -> Option<ResponseMode> {
        self.response_mode
    }

    /// The `acr_values` this login asked for (empty when none).
    pub fn acr_values(&self) -> &[String] {
        &self.acr_values
    }

    /// The `max_age` this login asked for, seconds.
    pub fn max_age(&self) -> Option<u64> {
        self.max_age
    }
}

/// Whether an `acr` value is a plain token that can travel in a URL and in a
/// `WWW-Authenticate` parameter: 1 to 64 of `A-Z a-z 0-9 . _ : / -`.
/// [`Client::authorize_url`](crate::Client::authorize_url) refuses any other.
///
/// ```
/// use doximity::authorize::is_acr_token;
/// assert!(is_acr_token("2") && is_acr_token("urn:mace:incommon:iap:silver"));
/// assert!(!is_acr_token("") && !is_acr_token("a b") && !is_acr_token("\"2\""));
/// ```
pub fn is_acr_token(value: &str) -> bool {
    (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'/' | b'-'))
}

/// Builds the authorization URL with fresh `state`, `nonce` and PKCE verifier (pure but for
/// the randomness).
pub(crate) fn build(
    endpoint: &Url,
    client_id: &str,
    redirect_uri: &Url,
    default_scopes: &Scopes,
    req: &AuthorizeRequest,
    now: i64,
) -> (Url, PendingLogin) {
    let state = CsrfToken::new_random_len(RANDOM_BYTES);
    let nonce = Nonce::new_random_len(RANDOM_BYTES);
    let (challenge, pkce_verifier) = PkceCodeChallenge::new_random_sha256_len(RANDOM_BYTES);
    let scopes = req.scopes.clone().unwrap_or_else(|| default_scopes.clone());
    let mut url = endpoint.clone();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("client_id", client_id)
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", redirect_uri.as_str())
            .append_pair("scope", &scopes.to_string())
            .append_pair("state", state.secret())
            .append_pair("nonce", nonce.secret())
            .append_pair("code_challenge", challenge.as_str())
            .append_pair("code_challenge_method", "S256");
        if let Some(p) = req.prompt {
            q.append_pair("prompt", p.as_str());
        }
        if let Some(d) = req.display {
            q.append_pair(
                "display",
                if d == Display::Popup { "popup" } else { "page" },
            );
        }
        if let Some(m) = req.response_mode {
            q.append_pair(
                "response_mode",
                if m == ResponseMode::Fragment {
                    "fragment"
                } else {
                    "query"
                },
            );
        }
        if let Some(h) = &req.id_token_hint {
            q.append_pair("id_token_hint", h);
        }
        if let Some(h) = &req.login_hint {
            q.append_pair("login_hint", h);
        }
        if !req.acr_values.is_empty() {
            q.append_pair("acr_values", &req.acr_values.join(" "));
        }
        if let Some(max_age) = req.max_age {
            q.append_pair("max_age", &max_age.to_string());
        }
        if let Some(t) = req.landing_page {
            q.append_pair(
                "type",
                if t == LandingPage::Verify {
                    "verify"
                } else {
                    "login"
                },
            );
        }
    }
    let pending = PendingLogin {
        state,
        nonce,
        pkce_verifier,
        redirect_uri: redirect_uri.to_string(),
        scopes,
        response_mode: req.response_mode,
        created_at: now,
        acr_values: req.acr_values.clone(),
        max_age: req.max_age,
    };
    (url, pending)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn endpoint() -> Url {
        Url::parse("https://auth.doximity.com/oauth/authorize").unwrap()
    }

    fn redirect() -> Url {
        Url::parse("https://app.example/auth/doximity/callback").unwrap()
    }

    fn query(url: &Url) -> HashMap<String, String> {
        url.query_pairs().into_owned().collect()
    }

    #[test]
    fn carries_every_documented_parameter() {
        let (url, pending) = build(
            &endpoint(),
            "cid",
            &redirect(),
            &Scopes::openid(),
            &AuthorizeRequest::new(),
            7,
        );
        let q = query(&url);
        assert_eq!(q["client_id"], "cid");
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["redirect_uri"], redirect().as_str());
        assert_eq!(q["scope"], "openid");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["state"], *pending.state.secret());
        assert_eq!(q["nonce"], *pending.nonce.secret());
        let challenge = PkceCodeChallenge::from_code_verifier_sha256(&pending.pkce_verifier);
        assert_eq!(q["code_challenge"], challenge.as_str());
        assert!(!q.contains_key("prompt"));
        assert_eq!(pending.created_at, 7);
    }

    #[test]
    fn secrets_are_256_bits_and_fresh() {
        let (_, a) = build(
            &endpoint(),
            "cid",
            &redirect(),
            &Scopes::openid(),
            &AuthorizeRequest::new(),
            0,
        );
        let (_, b) = build(
            &endpoint(),
            "cid",
            &redirect(),
            &Scopes::openid(),
            &AuthorizeRequest::new(),
            0,
        );
        // 32 bytes base64url without padding = 43 characters.
        assert_eq!(a.state.secret().len(), 43);
        assert_eq!(a.nonce.secret().len(), 43);
        assert_eq!(a.pkce_verifier.secret().len(), 43);
        assert_ne!(a.state.secret(), b.state.secret());
        assert_ne!(a.nonce.secret(), b.nonce.secret());
        assert_ne!(a.pkce_verifier.secret(), b.pkce_verifier.secret());
        assert!(!format!("{a:?}").contains(a.state.secret().as_str()));
    }

    #[test]
    fn optional_parameters() {
        let req = AuthorizeRequest::new()
            .with_prompt(Prompt::None)
            .with_display(Display::Popup)
            .with_response_mode(ResponseMode::Fragment)
            .with_landing_page(LandingPage::Verify)
            .with_scopes(&"profile:read:basic".parse().unwrap());
        let (url, pending) = build(&endpoint(), "cid", &redirect(), &Scopes::openid(), &req, 0);
        let q = query(&url);
        assert_eq!(q["prompt"], "none");
        assert_eq!(q["display"], "popup");
        assert_eq!(q["response_mode"], "fragment");
        assert_eq!(q["type"], "verify");
        assert_eq!(q["scope"], "openid profile:read:basic");
        assert_eq!(pending.response_mode, Some(ResponseMode::Fragment));
        assert!(!q.contains_key("acr_values") && !q.contains_key("max_age"));
    }

    #[test]
    fn step_up_parameters_are_sent_and_remembered() {
        let req = AuthorizeRequest::new()
            .with_acr_values(["3", "2"])
            .with_max_age(std::time::Duration::from_secs(300));
        let (url, pending) = build(&endpoint(), "cid", &redirect(), &Scopes::openid(), &req, 0);
        let q = query(&url);
        assert_eq!(q["acr_values"], "3 2");
        assert_eq!(q["max_age"], "300");
        assert_eq!(pending.acr_values(), ["3", "2"]);
        assert_eq!(pending.max_age(), Some(300));
        // The pending login keeps them across its cookie round trip.
        let back: PendingLogin =
            serde_json::from_str(&serde_json::to_string(&pending).unwrap()).unwrap();
        assert_eq!(back.acr_values(), ["3", "2"]);
        assert_eq!(back.max_age(), Some(300));
    }

    proptest! {
        #[test]
        fn url_round_trips(login_hint in "\\PC{0,40}", hint in "[A-Za-z0-9._-]{0,60}",
                           prompt in prop::sample::select(vec![Prompt::None, Prompt::Login, Prompt::Consent, Prompt::Create]),
                           client_id in "[ -~]{1,30}") {
            let req = AuthorizeRequest::new()
                .with_login_hint(login_hint.clone())
                .with_id_token_hint(&crate::secret::RawIdToken::new(hint.clone()))
                .with_prompt(prompt);
            let (url, pending) = build(&endpoint(), &client_id, &redirect(), &Scopes::openid(), &req, 0);
            prop_assert_eq!(url.host_str(), Some("auth.doximity.com"));
            prop_assert_eq!(url.path(), "/oauth/authorize");
            let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
            let keys: std::collections::HashSet<_> = pairs.iter().map(|(k, _)| k.clone()).collect();
            prop_assert_eq!(keys.len(), pairs.len(), "a parameter repeated");
            let q: HashMap<_, _> = pairs.into_iter().collect();
            prop_assert_eq!(&q["login_hint"], &login_hint);
            prop_assert_eq!(&q["id_token_hint"], &hint);
            prop_assert_eq!(&q["client_id"], &client_id);
            prop_assert_eq!(&q["prompt"], prompt.as_str());
            prop_assert_eq!(&q["state"], pending.state.secret());
        }
    }
}
