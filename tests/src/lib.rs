//! Support for the end-to-end tests: the demo app's router served on `127.0.0.1:0` against a
//! mock provider over HTTPS, and a browser stand-in with a cookie jar that follows no redirect
//! by itself, so every hop is visible; and [`browser`], a real headless Chromium.

pub mod browser;
pub mod tls_front;

use std::net::SocketAddr;

use doximity::Client;
use doximity_mock::{MockProvider, MockProviderBuilder};
pub use doximity_test::{Browser, Hop, TestClock};
use tower_doximity::DoximityAuth;

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
        let config = doximity_test::demo_config(&mock, &redirect)
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
            let _ = axum::serve(
                listener,
                axum::ServiceExt::<axum::extract::Request>::into_make_service(app),
            )
            .await;
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
        self.mock.set_clock_offset(self.clock.offset());
    }
}
