//! The network edge: one HTTPS client (rustls, certificates verified, no redirects, timeouts)
//! and the rules every provider response goes through (rate-limit headers, 429, 5xx, size).

use std::sync::{Arc, Mutex};

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::error::{ConfigError, Endpoint, Error};
use crate::ratelimit::{RateLimitStatus, reset_from_headers};
use crate::text::escape;

/// The largest provider response read: 1 MiB (contract v2 point 11). Discovery, JWKS, tokens
/// and userinfo are all a few kilobytes; anything larger is refused without reading it all.
pub(crate) const MAX_BODY: usize = 1024 * 1024;

/// The rustls crypto provider for calls to the provider, chosen as the crate docs say: the
/// process-level default when the application installed one, else the provider of this
/// crate's `aws-lc-rs` feature, else that of its `ring` feature. The client never installs a
/// process-level default, and never turns on a provider the application did not ask for.
pub(crate) fn crypto_provider() -> Result<Arc<CryptoProvider>, ConfigError> {
    if let Some(installed) = CryptoProvider::get_default() {
        return Ok(Arc::clone(installed));
    }
    #[cfg(feature = "aws-lc-rs")]
    let chosen = Some(rustls::crypto::aws_lc_rs::default_provider());
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    let chosen = Some(rustls::crypto::ring::default_provider());
    #[cfg(not(any(feature = "ring", feature = "aws-lc-rs")))]
    let chosen: Option<CryptoProvider> = None;
    chosen.map(Arc::new).ok_or_else(|| {
        ConfigError::HttpClient(
            "no rustls crypto provider: enable the `ring` or `aws-lc-rs` feature, or install a \
             process-level default with `rustls::crypto::CryptoProvider::install_default`"
                .into(),
        )
    })
}

/// A provider response that passed the status and size rules.
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) content_type: String,
    pub(crate) body: Vec<u8>,
    /// A `DPoP-Nonce` header worth sending back (RFC 9449 §8), if any.
    pub(crate) dpop_nonce: Option<String>,
    /// Whether `WWW-Authenticate` carries a DPoP challenge with `error="use_dpop_nonce"`.
    pub(crate) asks_dpop_nonce: bool,
}

#[derive(Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
    rate_limit: Arc<Mutex<Option<RateLimitStatus>>>,
}

impl Http {
    pub(crate) fn new(
        extra_root_pem: Option<&[u8]>,
        timeout: std::time::Duration,
    ) -> Result<Self, ConfigError> {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(pem) = extra_root_pem {
            let mut added = 0;
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| ConfigError::CaCert {
                    path: "DOXIMITY_CA_CERT".into(),
                    reason: e.to_string(),
                })?;
                roots.add(cert).map_err(|e| ConfigError::CaCert {
                    path: "DOXIMITY_CA_CERT".into(),
                    reason: e.to_string(),
                })?;
                added += 1;
            }
            if added == 0 {
                return Err(ConfigError::CaCert {
                    path: "DOXIMITY_CA_CERT".into(),
                    reason: "no PEM certificate found".into(),
                });
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(crypto_provider()?)
            .with_safe_default_protocol_versions()
            .map_err(|e| ConfigError::HttpClient(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("doximity-rs/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError::HttpClient(e.to_string()))?;
        Ok(Self {
            client,
            rate_limit: Arc::default(),
        })
    }

    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.client
    }

    pub(crate) fn rate_limit(&self) -> Option<RateLimitStatus> {
        *self.rate_limit.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends a request and applies the rules every provider response goes through:
    /// rate-limit headers recorded, 429 → `RateLimited`, 5xx → `Unavailable`, 3xx →
    /// `UnexpectedStatus` (redirects are never followed), body read up to a bound.
    /// 4xx bodies are returned to the caller, which knows the endpoint's error format.
    pub(crate) async fn send(
        &self,
        endpoint: Endpoint,
        request: reqwest::RequestBuilder,
    ) -> Result<Response, Error> {
        let transport = |e: reqwest::Error| Error::Transport {
            endpoint,
            source: e.without_url(),
        };
        let mut response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        if let Some(rl) = RateLimitStatus::from_headers(response.headers()) {
            *self.rate_limit.lock().unwrap_or_else(|e| e.into_inner()) = Some(rl);
        }
        tracing::debug!(%endpoint, status, "doximity provider response");
        match status {
            429 => {
                return Err(Error::RateLimited {
                    endpoint,
                    reset: reset_from_headers(response.headers()),
                });
            }
            500..=599 => return Err(Error::Unavailable { endpoint, status }),
            200..=299 | 400..=499 => {}
            _ => return Err(Error::UnexpectedStatus { endpoint, status }),
        }
        let content_type = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let dpop_nonce = response
            .headers()
            .get("dpop-nonce")
            .and_then(|v| v.to_str().ok())
            .filter(|v| crate::dpop::valid_nonce(v))
            .map(str::to_owned);
        let asks_dpop_nonce = response
            .headers()
            .get_all(http::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(asks_for_dpop_nonce);
        // A declared length over the bound is refused before any of the body is read; a body
        // without one (chunked) is cut off as soon as it crosses the bound.
        let declared = response.content_length();
        if declared.is_some_and(|n| n > MAX_BODY as u64) {
            return Err(Error::ResponseTooLarge {
                endpoint,
                limit: MAX_BODY,
            });
        }
        let capacity = declared.map_or(0, |n| usize::try_from(n).unwrap_or(MAX_BODY));
        let mut body = Vec::with_capacity(capacity);
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(Error::ResponseTooLarge {
                    endpoint,
                    limit: MAX_BODY,
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Response {
            status,
            content_type,
            body,
            dpop_nonce,
            asks_dpop_nonce,
        })
    }
}

/// Whether a `WWW-Authenticate` value holds a `DPoP` challenge whose `error` is
/// `use_dpop_nonce` (RFC 9449 §9). Quoted strings are opaque (their spaces and commas do not
/// split), so only a real `error` parameter of the `DPoP` challenge counts.
fn asks_for_dpop_nonce(value: &str) -> bool {
    let mut flat = String::with_capacity(value.len());
    let (mut quoted, mut escaped) = (false, false);
    for c in value.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ' ' | '\t' | ',' if quoted => {
                flat.push('_');
                continue;
            }
            _ => {}
        }
        flat.push(c);
    }
    let mut in_dpop = false;
    for token in flat.split([',', ' ', '\t']).filter(|t| !t.is_empty()) {
        match token.split_once('=') {
            None => in_dpop = token.eq_ignore_ascii_case("dpop"),
            Some((name, value)) => {
                if in_dpop
                    && name.eq_ignore_ascii_case("error")
                    && value.trim_matches('"') == "use_dpop_nonce"
                {
                    return true;
                }
            }
        }
    }
    false
}

impl Response {
    pub(crate) fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Parses a JSON success body, or turns an error body into the right error.
    pub(crate) fn json<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: Endpoint,
    ) -> Result<T, Error> {
        if !self.is_success() {
            return Err(self.error(endpoint));
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            if e.is_data() {
                Error::InvalidResponse {
                    endpoint,
                    reason: escape(&format!("not the expected JSON: {e}")),
                }
            } else {
                self.not_json(endpoint)
            }
        })
    }

    fn not_json(&self, endpoint: Endpoint) -> Error {
        Error::NotJson {
            endpoint,
            status: self.status,
            content_type: escape(&self.content_type),
        }
    }

    /// Whether this is the token endpoint's `400 {"error":"use_dpop_nonce"}` (RFC 9449 §8).
    pub(crate) fn is_use_dpop_nonce_error(&self) -> bool {
        #[derive(serde::Deserialize)]
        struct OAuthError {
            error: String,
        }
        self.status == 400
            && serde_json::from_slice::<OAuthError>(&self.body)
                .is_ok_and(|e| e.error == "use_dpop_nonce")
    }

    /// The error for a 4xx: an OAuth error body when there is one, else the status.
    pub(crate) fn error(&self, endpoint: Endpoint) -> Error {
        #[derive(serde::Deserialize)]
        struct OAuthError {
            error: String,
            error_description: Option<String>,
        }
        match serde_json::from_slice::<OAuthError>(&self.body) {
            Ok(e) if !self.is_success() => Error::OAuth {
                endpoint,
                status: self.status,
                error: escape(&e.error),
                description: e.error_description.as_deref().map(escape),
            },
            Err(e) if !e.is_data() => self.not_json(endpoint),
            _ => Error::UnexpectedStatus {
                endpoint,
                status: self.status,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::asks_for_dpop_nonce;

    #[test]
    fn use_dpop_nonce_is_read_from_the_dpop_challenge_only() {
        assert!(asks_for_dpop_nonce(
            r#"DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof""#
        ));
        assert!(asks_for_dpop_nonce(
            r#"Bearer realm="x", DPoP algs="RS256", error_description="a, b c", error=use_dpop_nonce"#
        ));
        assert!(!asks_for_dpop_nonce(r#"Bearer error="use_dpop_nonce""#));
        assert!(!asks_for_dpop_nonce(
            r#"DPoP error="invalid_token", error_description="error=\"use_dpop_nonce\" DPoP""#
        ));
        assert!(!asks_for_dpop_nonce(r#"DPoP error="invalid_dpop_proof""#));
        assert!(!asks_for_dpop_nonce(""));
    }
}
