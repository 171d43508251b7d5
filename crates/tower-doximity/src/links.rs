//! The layer's links to its own login route: `return_to`, and for a step-up the scopes with
//! an HMAC tag that lets the login route request them, or the `acr_values` and `max_age` a
//! new sign-in must meet.

use base64::Engine as _;
use doximity::scope::Scopes;
use hmac::Mac as _;

use crate::return_to::sanitize_return_to;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Makes and checks login links.
pub(crate) struct Links {
    /// The login route's path.
    pub(crate) login: String,
    /// The HMAC key of step-up links (derived from the cookie key).
    pub(crate) step_up_key: [u8; 32],
}

impl std::fmt::Debug for Links {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Links")
            .field("login", &self.login)
            .finish_non_exhaustive()
    }
}

impl Links {
    /// The login route with `return_to` (and, for a step-up, `scope` with the `step_up` tag
    /// that lets the login route request those scopes).
    pub(crate) fn login_location(&self, return_to: &str, scopes: Option<&Scopes>) -> String {
        self.step_up_location(return_to, scopes, None, None)
    }

    /// [`Links::login_location`], plus the `acr_values` and `max_age` a sign-in must meet
    /// (RFC 9470's step-up). They need no tag: asking for a stronger or more recent sign-in
    /// cannot widen what the app is granted.
    pub(crate) fn step_up_location(
        &self,
        return_to: &str,
        scopes: Option<&Scopes>,
        acr_values: Option<&str>,
        max_age: Option<u64>,
    ) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("return_to", sanitize_return_to(return_to));
        if let Some(s) = scopes {
            let scope = s.to_string();
            q.append_pair("scope", &scope);
            q.append_pair("step_up", &self.step_up_tag(&scope));
        }
        if let Some(acr) = acr_values {
            q.append_pair("acr_values", acr);
        }
        if let Some(age) = max_age {
            q.append_pair("max_age", &age.to_string());
        }
        format!("{}?{}", self.login, q.finish())
    }

    fn step_up_mac(&self, scope: &str) -> HmacSha256 {
        let mut mac = <HmacSha256 as hmac::Mac>::new_from_slice(&self.step_up_key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(scope.as_bytes());
        mac
    }

    /// The tag of a step-up link for `scope`: HMAC-SHA256 with a key derived from the cookie
    /// key, base64url.
    fn step_up_tag(&self, scope: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(self.step_up_mac(scope).finalize().into_bytes())
    }

    /// Whether `tag` is this layer's tag for `scope` (constant time).
    pub(crate) fn verify_step_up(&self, scope: &str, tag: &str) -> bool {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(tag)
            .is_ok_and(|t| self.step_up_mac(scope).verify_slice(&t).is_ok())
    }
}
