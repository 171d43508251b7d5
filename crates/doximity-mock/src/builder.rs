//! [`MockProviderBuilder`]: how a provider is configured before it starts.

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::keys::{KeySet, SigningKeyEntry, random_token};
use crate::model::{
    ClientRegistration, DEMO_CLIENT_ID, DEMO_POST_LOGOUT_REDIRECT_URI, DEMO_REDIRECT_URI,
    demo_clinicians,
};
use crate::routes::photo::photo_path;
use crate::state::{Shared, State, StateConfig};
use crate::{Error, MockProvider, routes, server, tls};

/// Configures a [`MockProvider`]; made by [`MockProvider::builder`].
#[derive(Debug, Clone)]
pub struct MockProviderBuilder {
    redirect_uris: Vec<String>,
    post_logout_redirect_uris: Vec<String>,
    auto_approve: bool,
    rate_limit: u32,
    access_token_ttl: Duration,
    bind: SocketAddr,
    legacy_client_secret_post: bool,
    browser_over_http: bool,
    require_dpop_nonce: bool,
}

impl Default for MockProviderBuilder {
    fn default() -> Self {
        Self {
            redirect_uris: Vec::new(),
            post_logout_redirect_uris: Vec::new(),
            auto_approve: false,
            rate_limit: 5_000,
            access_token_ttl: Duration::from_secs(1800),
            bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            legacy_client_secret_post: false,
            browser_over_http: false,
            require_dpop_nonce: false,
        }
    }
}

impl MockProviderBuilder {
    /// Adds a redirect URI to the demo client (its default,
    /// `http://127.0.0.1:3000/auth/doximity/callback`, stays registered).
    #[must_use]
    pub fn redirect_uri(mut self, uri: impl Into<String>) -> Self {
        self.redirect_uris.push(uri.into());
        self
    }

    /// Adds a post-logout redirect URI to the demo client (its default,
    /// `http://127.0.0.1:3000/`, stays registered).
    #[must_use]
    pub fn post_logout_redirect_uri(mut self, uri: impl Into<String>) -> Self {
        self.post_logout_redirect_uris.push(uri.into());
        self
    }

    /// `true`: the authorization endpoint shows no page and approves at once as
    /// the first demo clinician (after validating the request). Default `false`.
    #[must_use]
    pub fn auto_approve(mut self, yes: bool) -> Self {
        self.auto_approve = yes;
        self
    }

    /// Requests per hour per client. Default 5,000, as Doximity's.
    #[must_use]
    pub fn rate_limit(mut self, per_hour: u32) -> Self {
        self.rate_limit = per_hour;
        self
    }

    /// Lifetime of access tokens and ID tokens. Default 30 minutes.
    #[must_use]
    pub fn access_token_ttl(mut self, ttl: Duration) -> Self {
        self.access_token_ttl = ttl;
        self
    }

    /// The address to listen on. Default `127.0.0.1:0` (a free port).
    #[must_use]
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// `true`: the token and revocation endpoints also accept
    /// `client_id`/`client_secret` in the body (`client_secret_post`), as the
    /// older API did. Default `false`: such requests get 401 `invalid_client`.
    #[must_use]
    pub fn legacy_client_secret_post(mut self, yes: bool) -> Self {
        self.legacy_client_secret_post = yes;
        self
    }

    /// `true`: the pages a browser opens (the authorization and consent page, `end_session`,
    /// the `check_session_iframe`, the share page and the clinicians' photos) are also served
    /// over plain HTTP on a second loopback listener (`127.0.0.1:0`, or `[::1]:0` when the
    /// provider listens on `::1`), and the discovery documents name those `http://` URLs for
    /// `authorization_endpoint`, `end_session_endpoint` and `check_session_iframe`. Default
    /// `false`: everything is HTTPS.
    ///
    /// This is what lets a browser nobody configured sign in: browsers refuse the mock's own CA
    /// but treat `http://127.0.0.1` as a secure context. Every back-channel endpoint
    /// (discovery, JWKS, token, userinfo, revocation, `/api/v1`) stays HTTPS only, verified
    /// against the mock's CA. Cookies set over plain HTTP carry no `Secure` and are
    /// `SameSite=Lax`.
    ///
    /// # Security
    ///
    /// A relying party must be told, in code, to accept `http://` browser endpoints from this
    /// provider (the `doximity` crate's `Config::with_loopback_browser_endpoints`); its default
    /// refuses metadata with a non-`https` endpoint. Use this for a demo on one machine only.
    #[must_use]
    pub fn browser_over_http(mut self, yes: bool) -> Self {
        self.browser_over_http = yes;
        self
    }

    /// `true`: every DPoP proof must carry the provider's current nonce (RFC 9449 §8, §9). A
    /// proof without it is answered `use_dpop_nonce` with the nonce in a `DPoP-Nonce` header:
    /// 400 at the token endpoint, 401 with a `DPoP` challenge at the resources. Default
    /// `false`. Requests without a proof are not affected.
    #[must_use]
    pub fn require_dpop_nonce(mut self, yes: bool) -> Self {
        self.require_dpop_nonce = yes;
        self
    }

    /// Generates the CA, the TLS certificate and the RSA signing key, binds the
    /// listener and starts serving.
    ///
    /// # Errors
    ///
    /// When the address cannot be bound, the CA file cannot be written, or key
    /// generation fails.
    pub async fn start(self) -> Result<MockProvider, Error> {
        let listener = TcpListener::bind(self.bind).await?;
        let bound = listener.local_addr()?;
        let ip = match bound.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let addr = SocketAddr::new(ip, bound.port());
        let issuer = format!("https://{addr}");
        let browser_listener = if self.browser_over_http {
            let loopback = match ip {
                IpAddr::V6(ip) if ip.is_loopback() => IpAddr::V6(ip),
                _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
            };
            let listener = TcpListener::bind(SocketAddr::new(loopback, 0)).await?;
            let browser_addr = listener.local_addr()?;
            Some((listener, browser_addr))
        } else {
            None
        };
        let browser_base = match &browser_listener {
            Some((_, browser_addr)) => format!("http://{browser_addr}"),
            None => issuer.clone(),
        };

        let key_task = tokio::task::spawn_blocking(SigningKeyEntry::generate);
        let tls_task = tokio::task::spawn_blocking(move || tls::generate(ip));
        let key = key_task
            .await
            .map_err(|e| Error::Key(e.to_string()))?
            .map_err(|e| Error::Key(e.to_string()))?;
        let tls = tls_task.await.map_err(|e| Error::Tls(e.to_string()))??;

        let mut ca_file = tempfile::Builder::new()
            .prefix("doximity-mock-ca-")
            .suffix(".pem")
            .tempfile()?;
        ca_file.write_all(tls.ca_pem.as_bytes())?;
        ca_file.flush()?;
        let ca_path = ca_file.into_temp_path();

        let mut demo = ClientRegistration::new(DEMO_CLIENT_ID, random_token())
            .with_redirect_uri(DEMO_REDIRECT_URI)
            .with_post_logout_redirect_uri(DEMO_POST_LOGOUT_REDIRECT_URI);
        for uri in self.redirect_uris {
            if !demo.redirect_uris.contains(&uri) {
                demo.redirect_uris.push(uri);
            }
        }
        for uri in self.post_logout_redirect_uris {
            if !demo.post_logout_redirect_uris.contains(&uri) {
                demo.post_logout_redirect_uris.push(uri);
            }
        }
        let clinicians: Vec<_> = demo_clinicians()
            .into_iter()
            .map(|mut c| {
                c.profile_photo_url = format!("{browser_base}{}", photo_path(&c.sub));
                c
            })
            .collect();
        let auto_approve = self
            .auto_approve
            .then(|| clinicians.first().map(|c| c.sub.clone()))
            .flatten();
        let config = StateConfig {
            demo_client: demo,
            auto_approve,
            rate_limit: self.rate_limit,
            access_token_ttl: i64::try_from(self.access_token_ttl.as_secs()).unwrap_or(i64::MAX),
            legacy_client_secret_post: self.legacy_client_secret_post,
            clinicians,
            require_dpop_nonce: self.require_dpop_nonce,
        };
        let shared = Arc::new(Shared::new(
            issuer,
            browser_base,
            State::new(config, KeySet::new(key)),
        ));
        let router = routes::router(Arc::clone(&shared));
        let (shutdown, receiver) = watch::channel(false);
        let https = server::serve(
            listener,
            Some(Arc::new(tls.server_config)),
            router,
            receiver.clone(),
        );
        let (server, browser_addr) = match browser_listener {
            Some((browser, browser_addr)) => {
                let plain = server::serve(
                    browser,
                    None,
                    routes::browser_router(Arc::clone(&shared)),
                    receiver,
                );
                let both = tokio::spawn(async move {
                    tokio::join!(https, plain);
                });
                (both, Some(browser_addr))
            }
            None => (tokio::spawn(https), None),
        };
        tracing::info!(
            issuer = %shared.issuer,
            browser_base = %shared.browser_base,
            "mock Doximity provider started"
        );
        Ok(MockProvider {
            shared,
            addr,
            browser_addr,
            ca_pem: tls.ca_pem.into_bytes(),
            ca_path,
            shutdown,
            server: Some(server),
        })
    }
}
