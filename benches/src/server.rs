//! What the load binaries (`load`, `bearer`, `deployed`) share: the handler, the server thread
//! whose CPU is measured, the CPU probes, the keep-alive connections of the load generator, the
//! mock provider and its client's `Config`, its request counters, and the numeric options.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use doximity::Config;
use doximity::secret::ClientSecret;
use doximity_mock::{Endpoint, MockProvider};
use http_body_util::Empty;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tower_doximity::DoximityAuth;

/// Reads the command line: each argument goes to `flag` with the rest of the line (for its
/// value), and `flag` answers whether it knows it; `--help` prints `usage` and exits. An
/// unknown argument is an error (`cargo bench` passes `--bench` to every target; these are
/// not benches).
///
/// # Errors
///
/// An unknown argument, or the error of `flag`.
#[allow(clippy::print_stdout)] // The usage is the program's answer to `--help`.
pub fn parse_args(
    usage: &str,
    mut flag: impl FnMut(&str, &mut dyn Iterator<Item = String>) -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        if arg == "--help" || arg == "-h" {
            println!("{usage}");
            std::process::exit(0);
        }
        if !flag(&arg, &mut it)? {
            bail!("unknown argument {arg:?} (try --help)");
        }
    }
    Ok(())
}

/// A browser stand-in for signing in: a cookie jar, no automatic redirects, the mock's CA as
/// its only root, and a 30 s timeout; the client and its jar.
///
/// # Errors
///
/// When the client cannot be built.
pub fn browser_client(
    mock: &MockProvider,
) -> anyhow::Result<(reqwest::Client, Arc<reqwest::cookie::Jar>)> {
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let http = reqwest::Client::builder()
        .tls_backend_preconfigured(mock.rustls_client_config())
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()?;
    Ok((http, jar))
}

/// The session cookies (`name=value`) that `jar` holds for `base`: the layer's alone, since the
/// jar also holds the mock provider's own (same host, another port), which a real provider on
/// its own domain would not share.
///
/// # Errors
///
/// When there is no cookie for `base`, or `base` is not a URL.
pub fn session_cookies(jar: &reqwest::cookie::Jar, base: &str) -> anyhow::Result<Vec<String>> {
    use reqwest::cookie::CookieStore as _;
    let cookies = jar
        .cookies(&base.parse()?)
        .ok_or_else(|| anyhow!("no session cookie after sign-in"))?;
    Ok(cookies
        .to_str()?
        .split(';')
        .map(str::trim)
        .filter(|pair| pair.starts_with("doximity-") || pair.starts_with("__Host-doximity-"))
        .map(str::to_owned)
        .collect())
}

/// The provider endpoints whose counts differ between two [`provider_calls`], as
/// `Endpoint before -> after`.
pub fn moved_calls(before: &[u64], after: &[u64]) -> Vec<String> {
    ENDPOINTS
        .iter()
        .zip(before.iter().zip(after.iter()))
        .filter(|(_, (b, a))| a != b)
        .map(|(e, (b, a))| format!("{e:?} {b} -> {a}"))
        .collect()
}

/// Runs `main` to its end on a current-thread runtime: the mock provider and what of the load
/// runs in-process (the built-in load generator, the sign-in browser) share that one thread;
/// the mock is idle while the phases run (checked through its counters).
///
/// # Errors
///
/// When the runtime cannot be built, or the error of `main`.
pub fn run_on_one_thread(main: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(main)
}

/// Where a redirect `res` sends the client: its `Location`, resolved against its URL.
///
/// # Errors
///
/// When there is no `Location` or it is not a URL.
pub fn redirect_target(res: &reqwest::Response) -> anyhow::Result<url::Url> {
    let location = res
        .headers()
        .get("location")
        .ok_or_else(|| anyhow!("a redirect without Location"))?
        .to_str()?;
    Ok(res.url().join(location)?)
}

/// The bundled mock provider (auto-approving, for `redirect`) and the `Config` of its demo
/// client, trusting the mock's CA.
pub async fn start_mock(redirect: &str) -> anyhow::Result<(MockProvider, Config)> {
    let mock = MockProvider::builder()
        .auto_approve(true)
        .redirect_uri(redirect)
        .start()
        .await
        .context("starting the mock provider")?;
    let demo = mock.client();
    let config = Config::new(
        demo.client_id,
        ClientSecret::new(demo.client_secret),
        redirect.parse()?,
    )
    .with_issuer(&mock.issuer())?
    .with_ca_cert_pem(mock.ca_pem().to_vec());
    Ok((mock, config))
}

/// Every endpoint the mock counts.
pub const ENDPOINTS: [Endpoint; 11] = [
    Endpoint::OpenIdConfiguration,
    Endpoint::AuthorizationServerMetadata,
    Endpoint::Jwks,
    Endpoint::Authorize,
    Endpoint::Token,
    Endpoint::Revoke,
    Endpoint::Userinfo,
    Endpoint::Logout,
    Endpoint::CheckSession,
    Endpoint::RateLimit,
    Endpoint::UsersCurrent,
];

/// The mock's request count for each of [`ENDPOINTS`]: equal before and after a phase means
/// no provider call during it.
pub fn provider_calls(mock: &MockProvider) -> [u64; ENDPOINTS.len()] {
    ENDPOINTS.map(|e| mock.requests(e))
}

/// The 1-, 5- and 15-minute load averages from `/proc/loadavg`.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| {
            let v: Vec<&str> = s.split_whitespace().take(3).collect();
            (v.len() == 3).then(|| v.join(" "))
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The next command-line argument as the positive number `flag` needs.
pub fn positive(it: &mut dyn Iterator<Item = String>, flag: &str) -> anyhow::Result<u64> {
    let v = it.next().ok_or_else(|| anyhow!("{flag} needs a number"))?;
    let n: u64 = v.parse().with_context(|| format!("{flag} {v}"))?;
    anyhow::ensure!(n > 0, "{flag} must be positive");
    Ok(n)
}

/// The handler both servers run: `GET /hello`, a 5-byte body.
pub fn app() -> Router {
    Router::new().route("/hello", get(|| async { "hello" }))
}

/// The settings `RedisStore::connect` gives its `ConnectionManager`, for the benchmarks' own
/// Redis connections.
pub fn manager_config() -> redis::aio::ConnectionManagerConfig {
    redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(1)))
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_secs(1))
}

/// [`app`] whose handler makes one Redis round trip (`PING`, over a `ConnectionManager` set up
/// as `RedisStore::connect` sets up its own) before it answers: the bare server plus "one round
/// trip", to set the Redis store's cost against.
///
/// # Errors
///
/// When Redis cannot be reached.
pub async fn app_with_round_trip(redis_url: &str) -> anyhow::Result<Router> {
    let client = redis::Client::open(redis_url)?;
    let conn = redis::aio::ConnectionManager::new_with_config(client, manager_config()).await?;
    Ok(Router::new().route(
        "/hello",
        get(move || {
            let mut conn = conn.clone();
            async move {
                match redis::cmd("PING").query_async::<String>(&mut conn).await {
                    Ok(_) => (http::StatusCode::OK, "hello"),
                    Err(_) => (http::StatusCode::SERVICE_UNAVAILABLE, "redis"),
                }
            }
        }),
    ))
}

/// Nanoseconds thread `tid` of this process has spent on a CPU (the first field of
/// `/proc/self/task/<tid>/schedstat`).
pub fn thread_cpu_ns(tid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/self/task/{tid}/schedstat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let first = text
        .split_whitespace()
        .next()
        .ok_or_else(|| anyhow!("{path} is empty"))?;
    first.parse().with_context(|| format!("parsing {path}"))
}

/// The id of the calling thread, from `/proc/thread-self` (a link to `<pid>/task/<tid>`).
pub fn current_tid() -> anyhow::Result<u32> {
    let link = std::fs::read_link("/proc/thread-self").context("reading /proc/thread-self")?;
    let tid = link
        .file_name()
        .and_then(|s| s.to_str())
        .ok_or_else(|| anyhow!("unexpected /proc/thread-self link {}", link.display()))?;
    tid.parse()
        .with_context(|| format!("parsing the tid in {}", link.display()))
}

/// `concurrency` keep-alive HTTP/1.1 connections to `addr`, opened before a phase so its clock
/// and CPU readings cover requests only.
pub async fn connect(
    addr: SocketAddr,
    concurrency: usize,
) -> anyhow::Result<Vec<SendRequest<Empty<Bytes>>>> {
    let mut senders = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        senders.push(sender);
    }
    Ok(senders)
}

/// The server: [`app`] served bare and behind the layer, on one current-thread runtime on its
/// own OS thread, whose CPU time is what the benchmarks measure.
pub struct Server {
    /// Where the bare app listens.
    pub bare: SocketAddr,
    /// Where the app behind the layer listens.
    pub layer: SocketAddr,
    /// Where the bare app with one Redis round trip per request listens, if started
    /// ([`Server::start_with_round_trip`]).
    pub round_trip: Option<SocketAddr>,
    /// The server thread's id, for [`thread_cpu_ns`].
    pub tid: u32,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl Server {
    /// Starts the server thread. `auth` runs on that thread (so discovery and any store
    /// connection are the server's own work) and gives the `DoximityAuth` whose layer wraps the
    /// second app. The caller's runtime keeps running the mock provider meanwhile.
    pub async fn start<F, Fut>(
        bare: std::net::TcpListener,
        layer: std::net::TcpListener,
        auth: F,
    ) -> anyhow::Result<Self>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<DoximityAuth>>,
    {
        Self::start_with_round_trip(bare, layer, None, auth).await
    }

    /// [`Server::start`], with a third app on the same thread when `round_trip` names a
    /// listener and a Redis URL: [`app_with_round_trip`].
    pub async fn start_with_round_trip<F, Fut>(
        bare: std::net::TcpListener,
        layer: std::net::TcpListener,
        round_trip: Option<(std::net::TcpListener, String)>,
        auth: F,
    ) -> anyhow::Result<Self>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<DoximityAuth>>,
    {
        let (bare_addr, layer_addr) = (bare.local_addr()?, layer.local_addr()?);
        bare.set_nonblocking(true)?;
        layer.set_nonblocking(true)?;
        let round_trip_addr = match &round_trip {
            Some((l, _)) => {
                l.set_nonblocking(true)?;
                Some(l.local_addr()?)
            }
            None => None,
        };
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<u32>();
        let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("server".to_owned())
            .spawn(move || -> anyhow::Result<()> {
                let tid = current_tid()?;
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(async move {
                    let auth = auth().await?;
                    let bare_app = app();
                    let layer_app = app().layer(auth.layer());
                    let bare = tokio::net::TcpListener::from_std(bare)?;
                    let layer = tokio::net::TcpListener::from_std(layer)?;
                    let round_trip = match round_trip {
                        Some((listener, url)) => Some((
                            tokio::net::TcpListener::from_std(listener)?,
                            app_with_round_trip(&url).await?,
                        )),
                        None => None,
                    };
                    ready_tx
                        .send(tid)
                        .map_err(|_| anyhow!("the benchmark stopped waiting"))?;
                    let round_trip = async move {
                        match round_trip {
                            Some((listener, app)) => axum::serve(listener, app).await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        r = axum::serve(bare, bare_app) => r.context("bare server")?,
                        r = axum::serve(layer, layer_app) => r.context("layer server")?,
                        r = round_trip => r.context("round-trip server")?,
                        _ = shutdown_rx => {}
                    }
                    anyhow::Ok(())
                })
            })?;
        let tid = match tokio::time::timeout(Duration::from_secs(60), ready_rx).await {
            Ok(Ok(tid)) => tid,
            Err(_) => bail!("the server thread did not start within a minute"),
            // The thread ended before it was ready: its error says why.
            Ok(Err(_)) => {
                return match thread.join() {
                    Ok(Err(e)) => Err(e.context("the server thread failed")),
                    Ok(Ok(())) | Err(_) => Err(anyhow!("the server thread did not start")),
                };
            }
        };
        Ok(Self {
            bare: bare_addr,
            layer: layer_addr,
            round_trip: round_trip_addr,
            tid,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// Stops the server thread and returns how it ended.
    pub fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(anyhow!("the server thread panicked")),
            None => Ok(()),
        }
    }
}
