//! The demo app: an axum router behind the Doximity layer.
//!
//! It follows the configuration contract (`docs/configuration.md`): with `DOXIMITY_CLIENT_ID`
//! unset it starts the bundled mock provider in-process and signs people in there; with it set
//! it talks to the configured provider (Doximity by default), trusting `DOXIMITY_CA_CERT` when
//! given.
//!
//! Routes: `/` public (signed out: Doximity's sign-in, verify and sign-up buttons and the Share
//! Button; signed in: who, the scopes granted, when the session ends, the session check's live
//! status and a sign-out button), `/me` protected JSON with `sub`, `/profile` requiring
//! `profile:read:basic` (a signed-in user without it is stepped up), `/show-profile` (the home
//! page's step-up to `profile:read:basic`, back to `/`), `/session` (a signed-in page showing
//! what the session check reports), `/session-ended` (where the session check lands when the
//! Doximity session is gone), and the layer's `/auth/doximity/{login,callback,logout}`. The HTML
//! comes from `doximity-share` (see `docs/html-helpers.md`); a browser whose sign-in fails gets
//! a page that says why (access denied, provider unavailable) with a way back, while API and
//! gRPC clients keep the layer's answers.
//!
//! With the embedded mock, the mock serves the pages a browser opens (sign-in, sign-out, the
//! session check's frame, the share page, the clinicians' photos) over plain HTTP on loopback,
//! so a browser nobody configured signs in without a certificate warning; the app's own calls
//! to the mock (discovery, token, userinfo, JWKS, revocation) stay HTTPS, verified against the
//! mock's CA. See `docs/architecture.md`.
//!
//! If the provider cannot be discovered at start (down, or its metadata breaks a rule), the app
//! still starts: `/` works, everything else answers 503 with the reason, and discovery is tried
//! again (at most every few seconds) until it succeeds.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::ServiceExt;
use axum::body::Body;
use axum::response::{IntoResponse, Json, Redirect, Response};
use axum::routing::get;
use axum_doximity::{DoximityUser, Profile, Scoped};
use doximity::scope::{ProfileReadBasic, Scope as _};
use doximity::secret::ClientSecret;
use doximity::{Client, Config};
use doximity_mock::MockProvider;
use tower::Layer as _;
use tower::util::MapResponse;
use tower_doximity::{DoximityAuth, DoximityService, Key, ResponseBody};

mod pages;
pub use pages::PageOptions;
use pages::Pages;

/// The session's absolute timeout (the layer's default), which the home page shows.
pub const ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(12 * 3600);
/// The session's idle timeout (the layer's default), which the home page shows.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// The demo as a service: its [`Router`] wrapped once by the Doximity layer, and the layer's
/// responses turned into axum's. Serve it with `axum::serve(listener,
/// app.into_make_service())` (`axum::ServiceExt`).
///
/// The layer wraps the whole router rather than each route (`Router::layer`): it runs before
/// routing, as it must anyway to answer its own `/auth/doximity/*` routes, and a request pays
/// for one wrapper instead of axum's per-route boxing around it (about 0.4 µs per request,
/// `docs/benchmarks.md`). What passes is the same either way.
pub type App = MapResponse<DoximityService<Router>, fn(Response<ResponseBody<Body>>) -> Response>;

/// The app's routes behind `auth`'s layer, with Doximity's own share endpoint.
pub fn router(auth: &DoximityAuth) -> App {
    router_with(auth, PageOptions::default())
}

/// [`router`] with the pages adjusted by `options` (the embedded mock's share endpoint).
///
/// The layer gets the demo's refusal strategy: a browser whose sign-in failed sees a page
/// that says why, with a way back; every other refusal is the layer's default.
pub fn router_with(auth: &DoximityAuth, options: PageOptions) -> App {
    let pages = Arc::new(Pages::new(Some(auth.clone()), options));
    let auth = auth
        .clone()
        .add_public_path("/")
        .add_public_path(pages::SESSION_ENDED_PATH)
        .add_public_path(pages::RECHECK_PATH)
        .with_refuse(pages::refuse);
    #[cfg(feature = "metrics")]
    let auth = auth.add_public_path(METRICS_PATH);
    let home_pages = pages.clone();
    let router = Router::new();
    #[cfg(feature = "metrics")]
    let router = {
        // Installed before the first request, so nothing is counted into the void.
        let _ = metrics_handle();
        router.route(METRICS_PATH, get(metrics))
    };
    let router =
        router
            .route(
                "/",
                get(move |user: Option<DoximityUser>| async move {
                    home_pages.home(user.as_ref()).await
                }),
            )
            .route("/me", get(me))
            .route("/profile", get(profile))
            .route(pages::SHOW_PROFILE_PATH, get(show_profile))
            .route(pages::SESSION_ENDED_PATH, get(session_ended))
            .route(pages::RECHECK_PATH, get(recheck))
            .route(
                "/session",
                get(move |user: DoximityUser| async move { pages.session(&user) }),
            );
    let into_response: fn(Response<ResponseBody<Body>>) -> Response = IntoResponse::into_response;
    MapResponse::new(auth.layer().layer(router), into_response)
}

/// Where the metrics are served (feature `metrics`).
#[cfg(feature = "metrics")]
pub const METRICS_PATH: &str = "/metrics";

/// `GET /metrics` (feature `metrics`): the layer's counters, gauges and histograms in
/// Prometheus's text format. Public in the demo; put it behind your own network rule in a
/// deployment. The recorder is installed on first use, once per process.
#[cfg(feature = "metrics")]
async fn metrics() -> Response {
    match metrics_handle() {
        Some(h) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            h.render(),
        )
            .into_response(),
        None => axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// The process's Prometheus recorder, installed on first use.
#[cfg(feature = "metrics")]
fn metrics_handle() -> Option<&'static metrics_exporter_prometheus::PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .install_recorder()
                .map_err(|e| tracing::warn!(error = %e, "no metrics recorder"))
                .ok()
        })
        .as_ref()
}

/// `/show-profile`: asks for `profile:read:basic` (a browser without it is stepped up by the
/// extractor's refusal, and comes back here), then shows the home page, which now has the
/// profile.
async fn show_profile(_: Scoped<ProfileReadBasic>) -> Redirect {
    Redirect::to("/")
}

/// `/session-ended`: the session check's silent re-check found the Doximity session gone. If
/// the person is signed in after all (the provider still knew them), home.
async fn session_ended(user: Option<DoximityUser>) -> Response {
    match user {
        Some(_) => Redirect::to("/").into_response(),
        None => Pages::session_ended(),
    }
}

/// `/session-recheck`: where the home page's session check goes when the provider answers
/// `changed`: a silent sign-in (`prompt=none`) that comes back to `/session-ended`, which shows
/// that the session ended, or (when the provider still knows the person) goes home.
async fn recheck() -> Redirect {
    Redirect::to("/auth/doximity/login?prompt=none&return_to=%2Fsession-ended")
}

async fn me(user: DoximityUser) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "sub": user.sub(),
        "scopes": user.scopes().to_string(),
    }))
}

async fn profile(
    _: Scoped<ProfileReadBasic>,
    Profile(profile): Profile,
) -> Json<doximity::UserInfo> {
    Json(profile)
}

/// Where the app's configuration comes from: the process environment, or a map in tests.
pub type Env = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The process environment, with empty values treated as unset.
pub fn process_env() -> Env {
    Arc::new(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
}

/// A running demo.
pub struct Demo {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The embedded mock provider, when no credentials were configured.
    pub mock: Option<MockProvider>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
}

impl Demo {
    /// The URL to open.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Stops the server and waits for it.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.server).await;
    }
}

/// Binds `APP_ADDR` (default `127.0.0.1:3000`), builds the app from `env`, and serves it in the
/// background.
pub async fn start(env: Env) -> anyhow::Result<Demo> {
    let addr = env("APP_ADDR").unwrap_or_else(|| "127.0.0.1:3000".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on APP_ADDR={addr}"))?;
    start_on(listener, env).await
}

/// [`start`] on a listener that is already bound (`APP_ADDR` is then ignored).
pub async fn start_on(listener: tokio::net::TcpListener, env: Env) -> anyhow::Result<Demo> {
    let addr = listener.local_addr()?;
    let (app, mock) = if env("DOXIMITY_CLIENT_ID").is_some() {
        (provider_app(&env).await?, None)
    } else {
        let (app, mock) = mock_app(&env, addr).await?;
        (app, Some(mock))
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let serve = axum::serve(
            listener,
            ServiceExt::<axum::extract::Request>::into_make_service(app),
        )
        .with_graceful_shutdown(async {
            let _ = rx.await;
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "server stopped");
        }
    });
    Ok(Demo {
        addr,
        mock,
        shutdown: Some(tx),
        server,
    })
}

/// The cookie keys from `DOXIMITY_COOKIE_KEY` (base64 keys of 64 bytes, comma-separated,
/// newest first), if set. A malformed key is a configuration error, fatal at start.
fn cookie_key(env: &Env) -> anyhow::Result<Option<Vec<Key>>> {
    match env("DOXIMITY_COOKIE_KEY") {
        Some(encoded) => Ok(Some(
            tower_doximity::parse_cookie_keys(&encoded).context("DOXIMITY_COOKIE_KEY")?,
        )),
        // The layer warns about a random key itself.
        None => Ok(None),
    }
}

fn auth(client: Client, keys: Option<&Vec<Key>>) -> DoximityAuth {
    // `/profile` steps up to `profile:read:basic`: a login link may ask for it.
    let auth = DoximityAuth::new(client)
        .with_step_up_scopes(&ProfileReadBasic::NAME.parse().unwrap_or_default())
        .with_idle_timeout(IDLE_TIMEOUT)
        .with_absolute_timeout(ABSOLUTE_TIMEOUT);
    match keys {
        Some(keys) => auth.with_cookie_keys(keys.iter().cloned()),
        None => auth,
    }
}

/// No credentials: start the mock provider in-process, registered for this app.
async fn mock_app(env: &Env, addr: SocketAddr) -> anyhow::Result<(App, MockProvider)> {
    let redirect = match env("DOXIMITY_REDIRECT_URI") {
        Some(uri) => uri,
        None => format!("http://{addr}/auth/doximity/callback"),
    };
    let redirect: url::Url = redirect.parse().context("DOXIMITY_REDIRECT_URI")?;
    let post_logout: url::Url = match env("DOXIMITY_POST_LOGOUT_REDIRECT_URI") {
        Some(uri) => uri.parse().context("DOXIMITY_POST_LOGOUT_REDIRECT_URI")?,
        None => {
            let mut origin = redirect.clone();
            origin.set_path("/");
            origin.set_query(None);
            origin.set_fragment(None);
            origin
        }
    };
    // The pages a browser opens over plain HTTP on loopback: no certificate warning in a
    // browser nobody configured. The back channel stays HTTPS.
    let mock = MockProvider::builder()
        .browser_over_http(true)
        .redirect_uri(redirect.as_str())
        .post_logout_redirect_uri(post_logout.as_str())
        .start()
        .await
        .context("starting the mock provider")?;
    let demo = mock.client();
    let mut config = Config::new(
        demo.client_id.clone(),
        ClientSecret::new(demo.client_secret.clone()),
        redirect,
    )
    .with_issuer(&mock.issuer())?
    .with_ca_cert_pem(mock.ca_pem().to_vec())
    .with_post_logout_redirect_uri(post_logout)
    // The embedded mock only, in code: its sign-in, sign-out and session-check pages are
    // `http://127.0.0.1:…`. Never for a configured provider.
    .with_loopback_browser_endpoints()
    // DPoP-bound tokens, as with a configured provider: `DOXIMITY_DPOP_KEY`, or a random key.
    .with_dpop_key(doximity::dpop::DpopKey::from_lookup(|name| env(name))?);
    if let Some(scopes) = env("DOXIMITY_SCOPES") {
        config = config.with_scopes(&scopes.parse()?);
    }
    let client = Client::discover(config)
        .await
        .context("discovering the mock provider")?;
    let options = PageOptions {
        share_endpoint: Some(format!("{}/share", mock.browser_base())),
        ..PageOptions::default()
    };
    Ok((
        router_with(&auth(client, cookie_key(env)?.as_ref()), options),
        mock,
    ))
}

/// Credentials configured: the real provider (or whatever `DOXIMITY_ISSUER` names).
async fn provider_app(env: &Env) -> anyhow::Result<App> {
    let config = {
        let env = env.clone();
        Config::from_lookup(move |name| env(name))?
    };
    let keys = cookie_key(env)?;
    // No per-request wrapper: the client discovers the provider on first use (single-flight,
    // with a backoff), and while it cannot, the layer answers 503 with the reason.
    let client = Client::lazy(config)?;
    match client.ready().await {
        Ok(_) => tracing::info!(issuer = client.config().issuer(), "provider discovered"),
        Err(e) => tracing::error!(
            issuer = client.config().issuer(),
            error = %e,
            "provider discovery failed; sign-in answers 503 until it succeeds"
        ),
    }
    Ok(router(&auth(client, keys.as_ref())))
}
