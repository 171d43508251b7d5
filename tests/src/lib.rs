//! Support for the end-to-end tests: the demo app's router served on `127.0.0.1:0` against a
//! mock provider over HTTPS, and a browser stand-in with a cookie jar that follows no redirect
//! by itself, so every hop is visible; and [`browser`], a real headless Chromium.

pub mod browser;
pub mod tls_front;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

use doximity::secret::ClientSecret;
use doximity::{Client, Clock, Config};
use doximity_mock::{MockProvider, MockProviderBuilder};
use tower_doximity::DoximityAuth;

/// A clock tests move forward instead of sleeping.
#[derive(Clone, Default)]
pub struct TestClock(Arc<AtomicI64>);

impl TestClock {
    /// Moves the clock forward.
    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }

    /// The clock, for `Client::discover_with_clock`.
    pub fn clock(&self) -> Clock {
        let offset = self.0.clone();
        Clock::new(move || {
            let secs = offset.load(Ordering::SeqCst);
            let delta = Duration::from_secs(secs.unsigned_abs());
            if secs >= 0 {
                SystemTime::now() + delta
            } else {
                SystemTime::now() - delta
            }
        })
    }
}

/// The demo app on a real socket, with its own mock provider.
pub struct App {
    /// The app's base URL, `http://127.0.0.1:PORT`.
    pub base: String,
    /// The provider.
    pub mock: MockProvider,
    /// The app's clock.
    pub clock: TestClock,
    /// The auth value the app was built with.
    pub auth: DoximityAuth,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for App {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl App {
    /// The demo app with a mock provider from `builder` (auto-approving as the first
    /// clinician).
    pub async fn start(builder: MockProviderBuilder) -> App {
        Self::start_with(builder, |auth| auth).await
    }

    /// As [`App::start`], with the auth value adjusted by `configure`.
    pub async fn start_with(
        builder: MockProviderBuilder,
        configure: impl FnOnce(DoximityAuth) -> DoximityAuth,
    ) -> App {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        let base = format!("http://{addr}");
        let redirect = format!("{base}/auth/doximity/callback");
        let mock = builder
            .auto_approve(true)
            .redirect_uri(&redirect)
            .post_logout_redirect_uri(format!("{base}/"))
            .start()
            .await
            .expect("mock starts");
        let demo = mock.client();
        let config = Config::new(
            demo.client_id,
            ClientSecret::new(demo.client_secret),
            redirect.parse().expect("url"),
        )
        .with_issuer(&mock.issuer())
        .expect("issuer")
        .with_ca_cert_pem(mock.ca_pem().to_vec())
        .with_post_logout_redirect_uri(format!("{base}/").parse().expect("url"))
        .with_scopes(&"openid".parse().expect("scopes"));
        let clock = TestClock::default();
        let client = Client::discover_with_clock(config, clock.clock())
            .await
            .expect("discovery");
        let auth =
            configure(DoximityAuth::new(client).with_cookie_key(tower_doximity::Key::generate()));
        let app = axum_app::router(&auth);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        App {
            base,
            mock,
            clock,
            auth,
            server,
        }
    }

    /// A URL on the app.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A new browser (empty cookie jar) that trusts the mock's CA.
    pub fn browser(&self) -> Browser {
        Browser::new(&self.mock)
    }

    /// Moves both clocks (the app's and the provider's) forward.
    pub fn advance(&self, secs: i64) {
        self.clock.advance(secs);
        self.mock
            .set_clock_offset(self.clock.0.load(Ordering::SeqCst));
    }
}

/// A browser stand-in: cookie jar, no automatic redirects, trusts the mock's CA only.
pub struct Browser {
    /// The HTTP client.
    pub http: reqwest::Client,
    /// Its cookie jar.
    pub jar: Arc<reqwest::cookie::Jar>,
}

/// One response along a redirect chain.
#[derive(Debug)]
pub struct Hop {
    /// The URL requested.
    pub url: String,
    /// The status.
    pub status: u16,
    /// The `Location`, if any.
    pub location: Option<String>,
}

impl Browser {
    /// A browser with an empty jar.
    pub fn new(mock: &MockProvider) -> Self {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(mock.rustls_client_config())
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Self { http, jar }
    }

    /// A browser navigation: GET with the headers a browser sends for a top-level page.
    pub async fn navigate(&self, url: &str) -> reqwest::Response {
        self.http
            .get(url)
            .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
            .header("sec-fetch-mode", "navigate")
            .send()
            .await
            .expect("request")
    }

    /// Navigates to `url` and follows redirects (at most 10), returning every hop and the
    /// final response.
    pub async fn follow(&self, url: &str) -> (Vec<Hop>, reqwest::Response) {
        let mut url = url.to_owned();
        let mut hops = Vec::new();
        for _ in 0..10 {
            let res = self.navigate(&url).await;
            let location = res
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .map(|l| res.url().join(l).expect("location is a URL").to_string());
            hops.push(Hop {
                url: url.clone(),
                status: res.status().as_u16(),
                location: location.clone(),
            });
            match location {
                Some(next) if res.status().is_redirection() => url = next,
                _ => return (hops, res),
            }
        }
        panic!("too many redirects: {hops:?}");
    }

    /// The cookie header the jar would send to `url`.
    pub fn cookies_for(&self, url: &str) -> String {
        use reqwest::cookie::CookieStore as _;
        self.jar
            .cookies(&url.parse().expect("url"))
            .and_then(|v| v.to_str().ok().map(str::to_owned))
            .unwrap_or_default()
    }
}
