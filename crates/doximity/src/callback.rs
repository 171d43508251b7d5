//! The authorization response (Step 4): parsing and the rules, `state` first.

use crate::authorize::PendingLogin;
use crate::error::CallbackError;
use crate::secret::{AuthorizationCode, ct_eq};
use crate::text::escape;

/// How long a login may take between the redirect and the callback.
pub const MAX_LOGIN_AGE_SECS: i64 = 10 * 60;

/// Whether the authorization response must carry `iss` (RFC 9207).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum IssParameter {
    /// The provider does not advertise `authorization_response_iss_parameter_supported`:
    /// `iss` is checked when present.
    #[default]
    Optional,
    /// The provider advertises it: a callback without `iss` is refused.
    Required,
}

impl IssParameter {
    /// What the provider's metadata asks for.
    ///
    /// ```
    /// use doximity::callback::IssParameter;
    /// let oidc = serde_json::from_str(r#"{"issuer": "https://auth.doximity.com",
    ///   "authorization_endpoint": "https://auth.doximity.com/oauth/authorize",
    ///   "token_endpoint": "https://auth.doximity.com/oauth/token",
    ///   "jwks_uri": "https://auth.doximity.com/.well-known/jwks.json",
    ///   "authorization_response_iss_parameter_supported": true}"#).unwrap();
    /// let m = doximity::ProviderMetadata::from_documents("https://auth.doximity.com", oidc, None).unwrap();
    /// assert_eq!(IssParameter::from_metadata(&m), IssParameter::Required);
    /// ```
    pub fn from_metadata(metadata: &crate::ProviderMetadata) -> Self {
        if metadata.authorization_response_iss_parameter_supported {
            Self::Required
        } else {
            Self::Optional
        }
    }
}

/// The parameters of an authorization response, parsed but not yet checked.
#[derive(Default)]
pub struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    session_state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    iss: Option<String>,
}

impl std::fmt::Debug for CallbackParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackParams")
            .field("code", &self.code.as_ref().map(|_| "[redacted]"))
            .field("state", &self.state.as_ref().map(|_| "[redacted]"))
            .field(
                "session_state",
                &self.session_state.as_ref().map(|_| "[redacted]"),
            )
            .field("error", &self.error)
            .field("error_description", &self.error_description)
            .finish()
    }
}

/// A callback that passed every rule.
#[derive(Debug)]
pub struct Authorized {
    /// The authorization code (short-lived, single use).
    pub code: AuthorizationCode,
    /// OpenID Connect Session Management's `session_state`, for the session-check iframe.
    pub session_state: Option<String>,
}

impl CallbackParams {
    /// Parses an `application/x-www-form-urlencoded` string: the callback's query, or the
    /// fragment for `response_mode=fragment`. A repeated parameter is an error (it could be
    /// a parameter-pollution attempt); unknown parameters are ignored.
    ///
    /// ```
    /// use doximity::callback::CallbackParams;
    /// let p = CallbackParams::parse("code=abc&state=xyz&session_state=s").unwrap();
    /// assert!(CallbackParams::parse("code=a&code=b&state=x").is_err());
    /// ```
    pub fn parse(input: &str) -> Result<Self, CallbackError> {
        let mut out = Self::default();
        for (k, v) in url::form_urlencoded::parse(input.trim_start_matches(['?', '#']).as_bytes()) {
            let slot = match &*k {
                "code" => &mut out.code,
                "state" => &mut out.state,
                "session_state" => &mut out.session_state,
                "error" => &mut out.error,
                "error_description" => &mut out.error_description,
                "iss" => &mut out.iss,
                _ => continue,
            };
            if slot.is_some() {
                return Err(CallbackError::RepeatedParameter(escape(&k)));
            }
            *slot = Some(v.into_owned());
        }
        Ok(out)
    }

    /// The `error` parameter, if any.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Applies the rules in order: the login is fresh, `state` matches (constant time), `iss`
    /// (RFC 9207) is ours when present and present when `iss_parameter` is
    /// [`IssParameter::Required`], then a provider `error` becomes a typed error, then a
    /// `code` must be there.
    ///
    pub fn validate(
        self,
        pending: &PendingLogin,
        issuer: &str,
        iss_parameter: IssParameter,
        now: i64,
    ) -> Result<Authorized, CallbackError> {
        let state = self.state.ok_or(CallbackError::MissingState)?;
        if !ct_eq(&state, pending.state.secret()) {
            return Err(CallbackError::StateMismatch);
        }
        if now.saturating_sub(pending.created_at) > MAX_LOGIN_AGE_SECS
            || now < pending.created_at - 60
        {
            return Err(CallbackError::Expired);
        }
        match self.iss {
            Some(iss) if iss != issuer => {
                return Err(CallbackError::IssuerMismatch {
                    expected: issuer.to_owned(),
                    actual: escape(&iss),
                });
            }
            None if iss_parameter == IssParameter::Required => {
                return Err(CallbackError::MissingIssuer);
            }
            _ => {}
        }
        if let Some(error) = self.error {
            let description = self.error_description.as_deref().map(escape);
            return Err(match error.as_str() {
                "access_denied" => CallbackError::AccessDenied { description },
                "login_required"
                | "consent_required"
                | "interaction_required"
                | "account_selection_required" => CallbackError::InteractionRequired { error },
                _ => CallbackError::Provider {
                    error: escape(&error),
                    description,
                },
            });
        }
        let code = self
            .code
            .filter(|c| !c.is_empty())
            .ok_or(CallbackError::MissingCode)?;
        Ok(Authorized {
            code: AuthorizationCode::new(code),
            session_state: self.session_state,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authorize::{AuthorizeRequest, build};
    use crate::scope::Scopes;
    use proptest::prelude::*;

    const ISS: &str = "https://auth.doximity.com";

    fn pending() -> PendingLogin {
        let e = url::Url::parse("https://auth.doximity.com/oauth/authorize").unwrap();
        let r = url::Url::parse("https://app.example/cb").unwrap();
        build(
            &e,
            "cid",
            &r,
            &Scopes::openid(),
            &AuthorizeRequest::new(),
            1000,
        )
        .1
    }

    fn run(q: &str, p: &PendingLogin) -> Result<Authorized, CallbackError> {
        CallbackParams::parse(q)?.validate(p, ISS, IssParameter::Optional, 1000)
    }

    fn enc(s: &str) -> String {
        url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
    }

    #[test]
    fn happy_path() {
        let p = pending();
        let a = run(
            &format!("code=c1&state={}&session_state=ss", enc(p.state.secret())),
            &p,
        )
        .unwrap();
        assert_eq!(a.code.secret(), "c1");
        assert_eq!(a.session_state.as_deref(), Some("ss"));
    }

    #[test]
    fn state_is_checked_before_the_error() {
        let p = pending();
        let e = run("error=access_denied&state=forged", &p).unwrap_err();
        assert!(matches!(e, CallbackError::StateMismatch));
        let e = run("error=access_denied", &p).unwrap_err();
        assert!(matches!(e, CallbackError::MissingState));
        let e = run("code=c&state=", &p).unwrap_err();
        assert!(matches!(e, CallbackError::StateMismatch));
    }

    #[test]
    fn provider_errors_are_typed() {
        let p = pending();
        let s = enc(p.state.secret());
        let e = run(
            &format!(
                "error=access_denied&error_description=The+user+denied+your+request.&state={s}"
            ),
            &p,
        )
        .unwrap_err();
        assert!(
            matches!(e, CallbackError::AccessDenied { description: Some(ref d) } if d == "The user denied your request.")
        );
        let e = run(&format!("error=login_required&state={s}"), &p).unwrap_err();
        assert!(matches!(e, CallbackError::InteractionRequired { .. }));
        let e = run(&format!("error=server_error&state={s}"), &p).unwrap_err();
        assert!(matches!(e, CallbackError::Provider { .. }));
        let e = run(&format!("state={s}"), &p).unwrap_err();
        assert!(matches!(e, CallbackError::MissingCode));
    }

    #[test]
    fn repeated_parameters_are_rejected() {
        let p = pending();
        let s = enc(p.state.secret());
        for q in [
            format!("code=a&code=b&state={s}"),
            format!("code=a&state={s}&state={s}"),
            format!("code=a&state={s}&error=x&error=y"),
        ] {
            assert!(
                matches!(run(&q, &p), Err(CallbackError::RepeatedParameter(_))),
                "{q}"
            );
        }
    }

    #[test]
    fn issuer_parameter_must_be_ours() {
        let p = pending();
        let s = enc(p.state.secret());
        assert!(run(&format!("code=a&state={s}&iss={}", enc(ISS)), &p).is_ok());
        let e = run(
            &format!("code=a&state={s}&iss={}", enc("https://evil.example")),
            &p,
        )
        .unwrap_err();
        assert!(matches!(e, CallbackError::IssuerMismatch { .. }));
    }

    #[test]
    fn a_missing_iss_is_refused_when_the_provider_advertises_it() {
        let p = pending();
        let s = enc(p.state.secret());
        let required = |q: &str| {
            CallbackParams::parse(q)
                .unwrap()
                .validate(&p, ISS, IssParameter::Required, 1000)
        };
        let e = required(&format!("code=a&state={s}")).unwrap_err();
        assert!(matches!(e, CallbackError::MissingIssuer), "{e:?}");
        // Error responses carry `iss` too (RFC 9207 section 2).
        let e = required(&format!("error=access_denied&state={s}")).unwrap_err();
        assert!(matches!(e, CallbackError::MissingIssuer), "{e:?}");
        assert!(required(&format!("code=a&state={s}&iss={}", enc(ISS))).is_ok());
        let e = required(&format!(
            "code=a&state={s}&iss={}",
            enc("https://evil.example")
        ))
        .unwrap_err();
        assert!(matches!(e, CallbackError::IssuerMismatch { .. }));
        // A provider that does not advertise it (Doximity, the mock) may leave it out.
        assert!(run(&format!("code=a&state={s}"), &p).is_ok());
    }

    #[test]
    fn network_text_never_forges_a_log_line() {
        const FORGED: &str = "x\n2026-01-01 INFO forged";
        let p = pending();
        let s = enc(p.state.secret());
        let f = enc(FORGED);
        for q in [
            format!("error=access_denied&error_description={f}&state={s}"),
            format!("error={f}&error_description={f}&state={s}"),
            format!("code=a&state={s}&iss={f}"),
        ] {
            let shown = match CallbackParams::parse(&q) {
                Err(e) => e.to_string(),
                Ok(params) => params
                    .validate(&p, ISS, IssParameter::Optional, 1000)
                    .unwrap_err()
                    .to_string(),
            };
            assert!(!shown.contains('\n'), "{q}: {shown:?}");
            assert!(
                shown.contains("\\n2026-01-01 INFO forged"),
                "{q}: {shown:?}"
            );
        }
    }

    #[test]
    fn stale_login_is_rejected() {
        let p = pending();
        let q = format!("code=a&state={}", enc(p.state.secret()));
        let late = CallbackParams::parse(&q).unwrap().validate(
            &p,
            ISS,
            IssParameter::Optional,
            1000 + MAX_LOGIN_AGE_SECS + 1,
        );
        assert!(matches!(late, Err(CallbackError::Expired)));
    }

    #[test]
    fn debug_hides_code_and_state() {
        let p = CallbackParams::parse("code=topsecretcode&state=topsecretstate").unwrap();
        let d = format!("{p:?}");
        assert!(!d.contains("topsecret"), "{d}");
    }

    proptest! {
        #[test]
        fn parse_never_panics(input in "\\PC{0,200}") {
            let _ = CallbackParams::parse(&input);
        }

        #[test]
        fn parse_round_trips(code in "\\PC{1,60}", state in "\\PC{0,60}", ss in "\\PC{0,60}") {
            let q = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("code", &code).append_pair("state", &state)
                .append_pair("session_state", &ss).finish();
            let p = CallbackParams::parse(&q).unwrap();
            prop_assert_eq!(p.code.as_deref(), Some(code.as_str()));
            prop_assert_eq!(p.state.as_deref(), Some(state.as_str()));
            prop_assert_eq!(p.session_state.as_deref(), Some(ss.as_str()));
        }

        #[test]
        fn only_the_right_state_passes(state in "[A-Za-z0-9_-]{1,64}") {
            let p = pending();
            let q = format!("code=c&state={}", enc(&state));
            let r = CallbackParams::parse(&q).unwrap().validate(&p, ISS, IssParameter::Optional, 1000);
            prop_assert_eq!(r.is_ok(), &state == p.state.secret());
        }
    }
}
