//! The device authorization grant (RFC 8628): sign in where there is no browser.
//!
//! A command-line tool, a TV or a kiosk asks the provider for a pair of codes, shows the person
//! a short *user code* and a URL to open on another device (a phone, a laptop), and polls the
//! token endpoint with the long *device code* until the person approves or denies, or the codes
//! expire. The tokens that come back are checked exactly like the authorization-code flow's
//! (RS256, `iss`, `aud`, `azp`, `exp`, `iat`, `at_hash`), except that there is no `nonce`:
//! nothing in the device flow carries one. The [`TokenSet`] works with [`Client::refresh`]
//! and [`Client::revoke`] like any other.
//!
//! # Tutorial
//!
//! ```
//! use doximity::{Client, Config, secret::ClientSecret};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mock = doximity_mock::MockProvider::builder().start().await?;
//! # mock.set_device_interval(std::time::Duration::from_secs(1));
//! let demo = mock.client();
//! let config = Config::new(
//!     demo.client_id.clone(),
//!     ClientSecret::new(demo.client_secret.clone()),
//!     "http://127.0.0.1:3000/auth/doximity/callback".parse()?,
//! )
//! .with_issuer(&mock.issuer())?
//! .with_ca_cert_pem(mock.ca_pem().to_vec());
//! let client = Client::discover(config).await?;
//!
//! // 1. Ask for the codes, then show the person where to go and what to type.
//! let mut device = client.start_device_authorization(None).await?;
//! println!("open {} and type {}", device.verification_uri, device.user_code.secret());
//!
//! // (The person approves on the verification page; here the mock's handle does it.)
//! let sub = mock.clinicians()[0].sub.clone();
//! mock.approve_device(device.user_code.secret(), &sub);
//!
//! // 2. Poll every `interval` until the person has acted. `wait_for_device_token` sleeps with
//! //    tokio's timer; `wait_for_device_token_with` takes a sleeper of your own (a test clock,
//! //    a spinner), and `poll_device_token` polls once.
//! let tokens = client.wait_for_device_token(&mut device).await?;
//! assert_eq!(tokens.claims.sub, sub);
//! assert!(tokens.refresh_token.is_some());
//! # Ok(()) }
//! ```
//!
//! # Security
//!
//! - The device code and the user code are secrets ([`DeviceCode`], [`UserCode`]): redacted in
//!   `Debug`, never in an error message. `verification_uri_complete` contains the user code and
//!   is redacted too.
//! - The verification URIs are shown to a person, never fetched. They must be `https`, or plain
//!   `http` on a loopback address (a local development provider); anything else (another
//!   scheme such as `javascript:`, `http` to a remote host) is
//!   [`DeviceError::UnsafeVerificationUri`].
//! - Polling never goes faster than the provider's `interval` (at least one second); every
//!   `slow_down` adds five seconds for this and every later poll (RFC 8628 §3.5). Nothing here
//!   retries a failed poll: a 429, a 5xx or a transport failure ends the wait with its error.
//! - The codes' lifetime is enforced locally too: once `expires_in` has passed, no further
//!   request is sent.

use std::future::Future;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::client::Client;
use crate::error::{Endpoint, Error};
use crate::scope::Scopes;
use crate::secret::{AccessToken, DeviceCode, RawIdToken, RefreshToken, UserCode};
use crate::token::{RawTokenResponse, TokenSet};

/// The `grant_type` of the device access token request (RFC 8628 §3.4).
pub const DEVICE_CODE_GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// The polling interval when the provider names none (RFC 8628 §3.2).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// How much each `slow_down` adds to the interval (RFC 8628 §3.5).
pub const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);
/// The shortest interval this client polls at, whatever the provider says.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// A device authorization in progress: what to show the person, and what to poll with.
///
/// Made by [`Client::start_device_authorization`]. Its `Debug` shows neither code.
#[derive(Clone)]
#[non_exhaustive]
pub struct DeviceAuthorization {
    /// The device code the client polls with. Never shown to anyone.
    pub device_code: DeviceCode,
    /// The short code the person types at [`verification_uri`](Self::verification_uri).
    pub user_code: UserCode,
    /// Where the person goes to approve.
    pub verification_uri: Url,
    /// The verification URI with the user code already in it (for a QR code or a link), if
    /// the provider sent one.
    pub verification_uri_complete: Option<Url>,
    /// When the codes expire, epoch seconds (by the client's clock).
    pub expires_at: i64,
    /// How long to wait between polls. Grows by five seconds at every `slow_down`.
    pub interval: Duration,
    /// The scopes asked for.
    pub scopes: Scopes,
}

impl std::fmt::Debug for DeviceAuthorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceAuthorization")
            .field("device_code", &self.device_code)
            .field("user_code", &self.user_code)
            .field("verification_uri", &self.verification_uri.as_str())
            .field(
                "verification_uri_complete",
                &self
                    .verification_uri_complete
                    .as_ref()
                    .map(|_| "[redacted]"),
            )
            .field("expires_at", &self.expires_at)
            .field("interval", &self.interval)
            .field("scopes", &self.scopes)
            .finish()
    }
}

impl DeviceAuthorization {
    /// The URL to show (as text or a QR code): `verification_uri_complete` when the provider
    /// sent one, else `verification_uri` (then the person types the user code).
    pub fn url_to_show(&self) -> &Url {
        self.verification_uri_complete
            .as_ref()
            .unwrap_or(&self.verification_uri)
    }
}

/// The answer to one poll of the token endpoint.
#[derive(Debug)]
#[non_exhaustive]
pub enum DevicePoll {
    /// `authorization_pending`: the person has not acted yet. Poll again after `interval`.
    Pending,
    /// `slow_down`: polled too fast. The interval has grown by five seconds.
    SlowDown,
    /// The person approved: the verified tokens.
    Granted(Box<TokenSet>),
}

/// Why a device authorization ended without tokens.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// The person denied the request (`access_denied`).
    #[error("the user denied the device sign-in{}", description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    AccessDenied {
        /// The provider's `error_description`, if any.
        description: Option<String>,
    },
    /// The codes expired before the person approved (`expired_token`, or `expires_in` passed
    /// by the client's clock). Start again.
    #[error("the device sign-in expired before it was approved; start again")]
    Expired,
    /// A verification URI is neither `https` nor `http` on a loopback address.
    #[error("the device authorization's `{field}` is not a safe URL to show: `{url}`")]
    UnsafeVerificationUri {
        /// `verification_uri` or `verification_uri_complete`.
        field: &'static str,
        /// The value, shortened and without control characters (the complete URI's query,
        /// which holds the user code, is dropped).
        url: String,
    },
}

/// The device authorization response (RFC 8628 §3.2), as sent.
#[derive(Deserialize)]
struct RawDeviceResponse {
    device_code: String,
    user_code: String,
    verification_uri: String,
    verification_uri_complete: Option<String>,
    expires_in: serde_json::Number,
    interval: Option<serde_json::Number>,
}

fn seconds(n: &serde_json::Number) -> Option<u64> {
    n.as_u64()
        .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
}

/// A URL shown to a person: `https`, or `http` on a loopback host.
fn user_facing_url(field: &'static str, value: &str) -> Result<Url, DeviceError> {
    let unsafe_url = || DeviceError::UnsafeVerificationUri {
        field,
        url: value
            .split(['?', '#'])
            .next()
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect(),
    };
    let url = Url::parse(value).map_err(|_| unsafe_url())?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match url.scheme() {
        "https" if url.host().is_some() => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(unsafe_url()),
    }
}

impl RawDeviceResponse {
    fn into_authorization(self, now: i64, scopes: Scopes) -> Result<DeviceAuthorization, Error> {
        let invalid = |reason: &str| Error::InvalidResponse {
            endpoint: Endpoint::DeviceAuthorization,
            reason: reason.to_owned(),
        };
        if self.device_code.is_empty() || self.user_code.is_empty() {
            return Err(invalid("`device_code` or `user_code` is empty"));
        }
        let verification_uri = user_facing_url("verification_uri", &self.verification_uri)?;
        let verification_uri_complete = self
            .verification_uri_complete
            .as_deref()
            .map(|v| user_facing_url("verification_uri_complete", v))
            .transpose()?;
        let expires_in = seconds(&self.expires_in)
            .ok_or_else(|| invalid("`expires_in` is not a number of seconds"))?;
        let interval = match &self.interval {
            None => DEFAULT_INTERVAL,
            Some(n) => Duration::from_secs(
                seconds(n).ok_or_else(|| invalid("`interval` is not a number of seconds"))?,
            ),
        };
        Ok(DeviceAuthorization {
            device_code: DeviceCode::new(self.device_code),
            user_code: UserCode::new(self.user_code),
            verification_uri,
            verification_uri_complete,
            expires_at: now.saturating_add(i64::try_from(expires_in).unwrap_or(i64::MAX)),
            interval: interval.max(MIN_INTERVAL),
            scopes,
        })
    }
}

/// What a token-endpoint error means while polling; `None`: not a polling answer.
fn classify(error: &Error) -> Option<Result<DevicePoll, DeviceError>> {
    let Error::OAuth {
        endpoint: Endpoint::Token,
        error,
        description,
        ..
    } = error
    else {
        return None;
    };
    Some(match error.as_str() {
        "authorization_pending" => Ok(DevicePoll::Pending),
        "slow_down" => Ok(DevicePoll::SlowDown),
        "access_denied" => Err(DeviceError::AccessDenied {
            description: description.clone(),
        }),
        "expired_token" => Err(DeviceError::Expired),
        _ => return None,
    })
}

impl Client {
    /// Starts a device authorization (RFC 8628 §3.1): authenticates like the token endpoint
    /// and asks for `scopes` (the configured scopes when `None`).
    ///
    /// # Errors
    ///
    /// [`Error::EndpointNotAdvertised`]`("device_authorization_endpoint")` when the provider's
    /// metadata has no such endpoint (no request is sent);
    /// [`DeviceError::UnsafeVerificationUri`] for a verification URI not fit to show; the
    /// usual transport, status and rate-limit errors.
    #[tracing::instrument(
        name = "doximity.provider",
        skip_all,
        fields(endpoint = "device_authorization")
    )]
    pub async fn start_device_authorization(
        &self,
        scopes: Option<&Scopes>,
    ) -> Result<DeviceAuthorization, Error> {
        let endpoint = self
            .ready()
            .await?
            .device_authorization_endpoint
            .clone()
            .ok_or(Error::EndpointNotAdvertised(
                "device_authorization_endpoint",
            ))?;
        let scopes = scopes.unwrap_or(self.config().scopes()).clone();
        let request = self.authenticated(vec![("scope", scopes.to_string())]);
        let response = self
            .post_form(Endpoint::DeviceAuthorization, endpoint, request)
            .await?;
        let raw: RawDeviceResponse = response.json(Endpoint::DeviceAuthorization)?;
        raw.into_authorization(self.clock().epoch_secs(), scopes)
    }

    /// Polls the token endpoint once (RFC 8628 §3.4). On `slow_down` the device's
    /// [`interval`](DeviceAuthorization::interval) grows by five seconds. On success the ID
    /// token is verified like the code flow's, without a nonce.
    ///
    /// # Errors
    ///
    /// [`DeviceError::AccessDenied`], [`DeviceError::Expired`] (also without a request once
    /// the codes' lifetime has passed), ID-token errors, and the usual transport, status and
    /// rate-limit errors.
    #[tracing::instrument(name = "doximity.provider", skip_all, fields(endpoint = "token"))]
    pub async fn poll_device_token(
        &self,
        device: &mut DeviceAuthorization,
    ) -> Result<DevicePoll, Error> {
        if self.clock().epoch_secs() >= device.expires_at {
            return Err(DeviceError::Expired.into());
        }
        let request = self.authenticated(vec![
            ("grant_type", DEVICE_CODE_GRANT_TYPE.to_owned()),
            ("device_code", device.device_code.secret().clone()),
        ]);
        let metadata = self.ready().await?;
        let key = self.dpop_key_for(&metadata);
        let response = self
            .post_token(metadata.token_endpoint.clone(), request, key)
            .await?;
        let raw: RawTokenResponse = match response.json(Endpoint::Token) {
            Ok(raw) => raw,
            Err(error) => {
                return match classify(&error) {
                    Some(Ok(DevicePoll::SlowDown)) => {
                        device.interval += SLOW_DOWN_STEP;
                        Ok(DevicePoll::SlowDown)
                    }
                    Some(Ok(poll)) => Ok(poll),
                    Some(Err(device_error)) => Err(device_error.into()),
                    None => Err(error),
                };
            }
        };
        let token_type = raw.check_type(key.is_some())?;
        let now = self.clock().epoch_secs();
        let id_token = RawIdToken::new(raw.id_token.clone().ok_or(Error::MissingIdToken)?);
        let access_token = AccessToken::new(raw.access_token.clone());
        let claims = self
            .verify_id_token(&id_token, None, Some(&access_token))
            .await?;
        Ok(DevicePoll::Granted(Box::new(TokenSet {
            scopes: raw.scopes(&device.scopes)?,
            expires_at: raw.expires_at(now),
            refresh_token: raw.refresh_token.map(RefreshToken::new),
            access_token,
            id_token,
            claims,
            session_state: None,
            token_type,
        })))
    }

    /// Waits for the person: sleeps [`interval`](DeviceAuthorization::interval) (with tokio's
    /// timer), polls, and again, until tokens, a denial, expiry or an error.
    ///
    /// # Errors
    ///
    /// As [`Client::poll_device_token`].
    pub async fn wait_for_device_token(
        &self,
        device: &mut DeviceAuthorization,
    ) -> Result<TokenSet, Error> {
        self.wait_for_device_token_with(device, tokio::time::sleep)
            .await
    }

    /// [`Client::wait_for_device_token`] with the sleeping done by `sleep`, which is called
    /// with the current interval before every poll: tests pass one that advances a test clock
    /// instead of waiting, an app one that also animates a spinner.
    ///
    /// # Errors
    ///
    /// As [`Client::poll_device_token`].
    pub async fn wait_for_device_token_with<S, F>(
        &self,
        device: &mut DeviceAuthorization,
        mut sleep: S,
    ) -> Result<TokenSet, Error>
    where
        S: FnMut(Duration) -> F,
        F: Future<Output = ()>,
    {
        loop {
            sleep(device.interval).await;
            match self.poll_device_token(device).await? {
                DevicePoll::Granted(tokens) => return Ok(*tokens),
                DevicePoll::Pending | DevicePoll::SlowDown => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: serde_json::Value) -> RawDeviceResponse {
        serde_json::from_value(json).unwrap()
    }

    fn good() -> serde_json::Value {
        serde_json::json!({
            "device_code": "dc-secret-0123456789",
            "user_code": "WDJB-MJHT",
            "verification_uri": "https://auth.example/device",
            "verification_uri_complete": "https://auth.example/device?user_code=WDJB-MJHT",
            "expires_in": 600,
            "interval": 5,
        })
    }

    #[test]
    fn parses_the_rfc_8628_response() {
        let d = raw(good())
            .into_authorization(1000, Scopes::openid())
            .unwrap();
        assert_eq!(d.expires_at, 1600);
        assert_eq!(d.interval, Duration::from_secs(5));
        assert_eq!(d.user_code.secret(), "WDJB-MJHT");
        assert_eq!(d.url_to_show().query(), Some("user_code=WDJB-MJHT"));
    }

    #[test]
    fn interval_defaults_to_five_seconds_and_is_at_least_one() {
        let mut j = good();
        j.as_object_mut().unwrap().remove("interval");
        let d = raw(j).into_authorization(0, Scopes::openid()).unwrap();
        assert_eq!(d.interval, DEFAULT_INTERVAL);
        let mut j = good();
        j["interval"] = 0.into();
        let d = raw(j).into_authorization(0, Scopes::openid()).unwrap();
        assert_eq!(d.interval, MIN_INTERVAL);
    }

    #[test]
    fn verification_uris_must_be_safe_to_show() {
        for (field, bad) in [
            ("verification_uri", "http://auth.example/device"),
            ("verification_uri", "javascript:alert(1)"),
            ("verification_uri", "not a url"),
            (
                "verification_uri_complete",
                "http://auth.example/device?user_code=WDJB-MJHT",
            ),
            ("verification_uri_complete", "data:text/html,hi"),
        ] {
            let mut j = good();
            j[field] = bad.into();
            let e = raw(j)
                .into_authorization(0, Scopes::openid())
                .err()
                .unwrap();
            assert!(
                matches!(e, Error::Device(DeviceError::UnsafeVerificationUri { field: f, ref url }) if f == field && !url.contains("WDJB")),
                "{field} {bad}: {e:?}"
            );
        }
        for ok in [
            "http://127.0.0.1:8080/device",
            "http://[::1]/device",
            "http://localhost:3000/device",
        ] {
            let mut j = good();
            j["verification_uri"] = ok.into();
            assert!(
                raw(j).into_authorization(0, Scopes::openid()).is_ok(),
                "{ok}"
            );
        }
    }

    #[test]
    fn debug_hides_both_codes() {
        let d = raw(good()).into_authorization(0, Scopes::openid()).unwrap();
        let debug = format!("{d:?}");
        assert!(!debug.contains("dc-secret"), "{debug}");
        assert!(!debug.contains("WDJB"), "{debug}");
    }

    #[test]
    fn polling_answers_are_classified() {
        let oauth = |error: &str| Error::OAuth {
            endpoint: Endpoint::Token,
            status: 400,
            error: error.to_owned(),
            description: None,
        };
        assert!(matches!(
            classify(&oauth("authorization_pending")),
            Some(Ok(DevicePoll::Pending))
        ));
        assert!(matches!(
            classify(&oauth("slow_down")),
            Some(Ok(DevicePoll::SlowDown))
        ));
        assert!(matches!(
            classify(&oauth("access_denied")),
            Some(Err(DeviceError::AccessDenied { .. }))
        ));
        assert!(matches!(
            classify(&oauth("expired_token")),
            Some(Err(DeviceError::Expired))
        ));
        assert!(classify(&oauth("invalid_grant")).is_none());
        let elsewhere = Error::OAuth {
            endpoint: Endpoint::Revocation,
            status: 400,
            error: "slow_down".into(),
            description: None,
        };
        assert!(classify(&elsewhere).is_none());
    }

    #[test]
    fn the_endpoint_comes_from_either_document_and_must_be_https() {
        let iss = "https://auth.doximity.com";
        let base = serde_json::json!({
            "issuer": iss,
            "authorization_endpoint": "https://auth.doximity.com/oauth/authorize",
            "token_endpoint": "https://auth.doximity.com/oauth/token",
            "jwks_uri": "https://auth.doximity.com/.well-known/jwks.json",
        });
        let doc = |j: serde_json::Value| serde_json::from_value(j).unwrap();
        let m = crate::ProviderMetadata::from_documents(iss, doc(base.clone()), None).unwrap();
        assert!(m.device_authorization_endpoint.is_none());
        let mut oauth = serde_json::json!({"issuer": iss});
        oauth["device_authorization_endpoint"] =
            "https://auth.doximity.com/oauth/device_authorization".into();
        let m = crate::ProviderMetadata::from_documents(iss, doc(base.clone()), Some(doc(oauth)))
            .unwrap();
        assert_eq!(
            m.device_authorization_endpoint.unwrap().path(),
            "/oauth/device_authorization"
        );
        let mut plain = base;
        plain["device_authorization_endpoint"] = "http://auth.doximity.com/device".into();
        let e = crate::ProviderMetadata::from_documents(iss, doc(plain), None).unwrap_err();
        assert!(matches!(
            e,
            crate::DiscoveryError::NotHttps {
                field: "device_authorization_endpoint",
                ..
            }
        ));
    }
}
