//! The layer's cost per request, under load.
//!
//! One run serves the same tiny handler (`GET /hello`, a 5-byte body) twice from one server
//! thread: bare, and behind the Doximity layer (cookie store, the default). A real sign-in at
//! the bundled mock provider gives the session cookies; every layer request carries them. The
//! load generator (keep-alive HTTP/1.1 connections on another thread) alternates the phases
//! (bare, layer, bare, layer, ...) and reads the server thread's CPU time from
//! `/proc/self/task/<tid>/schedstat` around each phase.
//!
//! ```text
//! cargo run --release -p doximity-benches --bin load            # the full run
//! cargo run --release -p doximity-benches --bin load -- --quick # a smoke run
//! ```
//!
//! Options: `--quick`, `--requests N` (per phase), `--concurrency N`, `--rounds N`,
//! `--store cookie|memory|redis` (the layer's session store; default `cookie`), `--redis-url
//! URL` (else `REDIS_URL`, else a `redis-server` child on a free port). With `--store redis`
//! the run also counts the Redis commands per layer request (`INFO commandstats`) and, for
//! a child server, its CPU time. `--sessions N` (server stores) writes N other sessions into
//! the layer's store before the measured one is signed in (N + 1 in the store; with `--store
//! memory` the run checks the store's length): `tower_doximity::test_util::SignedIn::store_in`
//! on the layer's own `DoximityAuth` (same store, same key, same issuer and client id), sealed
//! as the layer writes a session, without a sign-in at the mock (which costs milliseconds each).
//! `--spread K` (with `--sessions N`, K <= N): the layer's requests (and the bare server's
//! requests with cookies) no longer all carry the one signed-in session: request i of a phase
//! carries the cookie of the (i mod K)-th of K filled sessions, spread evenly over the N, so the
//! store's lookups touch K sessions instead of one hot one (the cache effects of a big store).
//! `docs/benchmarks.md` explains the method and holds the results.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail, ensure};
use bytes::Bytes;
use doximity::Client;
use doximity_benches::server::{
    Server, browser_client, connect, current_tid, loadavg, manager_config, moved_calls, parse_args,
    positive, provider_calls, redirect_target, run_on_one_thread, session_cookies, start_mock,
    thread_cpu_ns,
};
use doximity_mock::MockProvider;
use http::header::{COOKIE, HOST, HeaderValue, SET_COOKIE};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt as _, Empty};
use tower_doximity::__bench::IdentityCookie;
use tower_doximity::test_util::SignedIn;
use tower_doximity::{DoximityAuth, Key, MemoryStore, RedisStore};

/// A phase stops after this long even if not every request was sent.
const PHASE_TIME_LIMIT: Duration = Duration::from_secs(60);

#[derive(Clone, Debug)]
struct Args {
    requests: u64,
    warmup: u64,
    concurrency: usize,
    rounds: usize,
    quick: bool,
    store: StoreKind,
    redis_url: Option<String>,
    /// Other sessions written into the store before the measured one is signed in.
    sessions: u64,
    /// Requests cycle through this many of the filled sessions (0: all carry the signed-in one).
    spread: u64,
}

/// The layer's session store (`--store`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StoreKind {
    Cookie,
    Memory,
    Redis,
}

impl StoreKind {
    fn parse(v: &str) -> anyhow::Result<Self> {
        Ok(match v {
            "cookie" => Self::Cookie,
            "memory" => Self::Memory,
            "redis" => Self::Redis,
            other => bail!("--store {other:?}: expected cookie, memory or redis"),
        })
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Cookie => "cookie store",
            Self::Memory => "MemoryStore",
            Self::Redis => "RedisStore",
        }
    }

    /// How many of the layer's cookies a signed-in browser holds.
    fn cookies(self) -> usize {
        match self {
            Self::Cookie => 2,
            Self::Memory | Self::Redis => 1,
        }
    }
}

/// The store the server thread gives the layer: `url` is the Redis server's for `Redis`.
async fn with_store(
    auth: DoximityAuth,
    store: StoreKind,
    url: Option<&str>,
    memory: MemoryStore,
) -> anyhow::Result<DoximityAuth> {
    Ok(match store {
        StoreKind::Cookie => auth,
        StoreKind::Memory => auth.with_store(memory),
        StoreKind::Redis => {
            let url = url.ok_or_else(|| anyhow!("no Redis URL"))?;
            let store = RedisStore::connect(url)
                .await
                .context("connecting to Redis")?;
            auth.with_store(store)
        }
    })
}

/// A Redis server for `--store redis`: `--redis-url`, else `REDIS_URL`, else a
/// `redis-server` child on a free port (no persistence), killed on drop.
struct Redis {
    url: String,
    child: Option<std::process::Child>,
    _dir: Option<tempfile::TempDir>,
}

impl Redis {
    async fn start(url: Option<String>) -> anyhow::Result<Self> {
        if let Some(url) = url.or_else(|| std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty()))
        {
            let redis = Self {
                url,
                child: None,
                _dir: None,
            };
            redis.wait_ready().await?;
            return Ok(redis);
        }
        let dir = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "no", "--dir"])
            .arg(dir.path())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("starting redis-server (install it, or pass --redis-url)")?;
        let redis = Self {
            url: format!("redis://127.0.0.1:{port}/"),
            child: Some(child),
            _dir: Some(dir),
        };
        redis.wait_ready().await?;
        Ok(redis)
    }

    /// Polls `PING` until the server answers, for at most 20 s.
    async fn wait_ready(&self) -> anyhow::Result<()> {
        let client = redis::Client::open(self.url.as_str())?;
        let start = Instant::now();
        loop {
            if let Ok(mut c) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut c)
                    .await
                    .is_ok()
            {
                return Ok(());
            }
            ensure!(
                start.elapsed() < Duration::from_secs(20),
                "Redis does not answer PING"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Calls per command since the server started (`INFO commandstats`), and the server's
    /// main-thread CPU time (ns) when it is our child.
    async fn stats(
        &self,
    ) -> anyhow::Result<(std::collections::BTreeMap<String, u64>, Option<u64>)> {
        let client = redis::Client::open(self.url.as_str())?;
        let mut c = client.get_multiplexed_async_connection().await?;
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut c)
            .await?;
        let mut calls = std::collections::BTreeMap::new();
        for line in info.lines() {
            let Some((name, rest)) = line
                .strip_prefix("cmdstat_")
                .and_then(|l| l.split_once(':'))
            else {
                continue;
            };
            let n = rest
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            calls.insert(name.to_owned(), n);
        }
        let cpu = match &self.child {
            Some(child) => {
                let path = format!("/proc/{}/schedstat", child.id());
                let text =
                    std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
                text.split_whitespace().next().and_then(|v| v.parse().ok())
            }
            None => None,
        };
        Ok((calls, cpu))
    }
}

/// The loopback round trip a store command cannot beat: sequential `PING`s from this thread,
/// over one multiplexed connection, and over a `ConnectionManager` with `RedisStore::connect`'s
/// settings (the store's own client, with its response timeout). For each: mean and median
/// wall time, and this thread's CPU time, per `PING`, in µs.
async fn ping_round_trip(url: &str, n: usize) -> anyhow::Result<[(f64, f64, f64); 2]> {
    let client = redis::Client::open(url)?;
    let mut plain = client.get_multiplexed_async_connection().await?;
    let mut managed =
        redis::aio::ConnectionManager::new_with_config(client, manager_config()).await?;
    Ok([pings(&mut plain, n).await?, pings(&mut managed, n).await?])
}

/// `n` sequential `PING`s on `c` after 1,000 unmeasured: mean and median wall µs, CPU µs of
/// this thread, per `PING`.
async fn pings(
    c: &mut impl redis::aio::ConnectionLike,
    n: usize,
) -> anyhow::Result<(f64, f64, f64)> {
    for _ in 0..1_000 {
        redis::cmd("PING").query_async::<String>(c).await?;
    }
    let mut times = Vec::with_capacity(n);
    let tid = current_tid()?;
    let cpu_before = thread_cpu_ns(tid)?;
    for _ in 0..n {
        let start = Instant::now();
        redis::cmd("PING").query_async::<String>(c).await?;
        times.push(start.elapsed());
    }
    let cpu = thread_cpu_ns(tid)?.saturating_sub(cpu_before) as f64 / 1_000.0 / n as f64;
    times.sort_unstable();
    let mean = times.iter().sum::<Duration>().as_secs_f64() * 1e6 / n as f64;
    let median = times.get(n / 2).map_or(0.0, |d| d.as_secs_f64() * 1e6);
    Ok((mean, median, cpu))
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Prints the Redis commands per layer request between two `Redis::stats`, and the Redis
/// server's CPU per layer request. The bare phases send nothing to Redis.
fn print_redis_costs(
    before: &(std::collections::BTreeMap<String, u64>, Option<u64>),
    after: &(std::collections::BTreeMap<String, u64>, Option<u64>),
    layer_requests: u64,
) {
    let per = |n: u64| n as f64 / layer_requests as f64;
    let mut top_level = 0u64;
    let mut lines = Vec::new();
    for (name, &n) in &after.0 {
        // The two `INFO` calls of the measurement itself are not the layer's.
        let delta = n.saturating_sub(before.0.get(name).copied().unwrap_or(0));
        let delta = if name == "info" {
            delta.saturating_sub(1)
        } else {
            delta
        };
        if delta == 0 {
            continue;
        }
        // The layer's round trips: `HMGET` (load), `SET` (the replay guard), `EVALSHA`/`EVAL`/
        // `SCRIPT` (writes, locks, deletes); the other commands run inside those scripts, in
        // the same round trip.
        if matches!(
            name.as_str(),
            "hget" | "hmget" | "get" | "set" | "evalsha" | "eval" | "script|load" | "del"
        ) {
            top_level += delta;
        }
        lines.push(format!("{name} {delta} ({:.4}/req)", per(delta)));
    }
    println!(
        "redis commands during the measured phases: {} (the `ping`s are the bare+rt phases')",
        lines.join(", ")
    );
    println!(
        "redis round trips per layer request: {:.4} ({top_level} for {layer_requests} requests)",
        per(top_level)
    );
    if let (Some(b), Some(a)) = (before.1, after.1) {
        println!(
            "redis-server CPU per layer request: {:.2} µs (its main thread, schedstat; the bare+rt phases' PINGs included)",
            a.saturating_sub(b) as f64 / 1_000.0 / layer_requests as f64
        );
    }
}

impl Args {
    fn parse() -> anyhow::Result<Self> {
        let mut args = Args {
            requests: 200_000,
            warmup: 20_000,
            concurrency: 32,
            rounds: 2,
            quick: false,
            store: StoreKind::Cookie,
            redis_url: None,
            sessions: 0,
            spread: 0,
        };
        const USAGE: &str = "usage: load [--quick] [--requests N] [--concurrency N] [--rounds N] [--store cookie|memory|redis] [--redis-url URL] [--sessions N] [--spread K]";
        parse_args(USAGE, |arg, it| {
            match arg {
                "--quick" => {
                    args.quick = true;
                    args.requests = 2_000;
                    args.warmup = 500;
                }
                "--requests" => args.requests = positive(it, "--requests")?,
                "--concurrency" => {
                    args.concurrency = usize::try_from(positive(it, "--concurrency")?)?;
                }
                "--rounds" => args.rounds = usize::try_from(positive(it, "--rounds")?)?,
                "--store" => {
                    let v = it.next().ok_or_else(|| anyhow!("--store needs a value"))?;
                    args.store = StoreKind::parse(&v)?;
                }
                "--redis-url" => {
                    args.redis_url = Some(
                        it.next()
                            .ok_or_else(|| anyhow!("--redis-url needs a URL"))?,
                    );
                }
                "--sessions" => args.sessions = positive(it, "--sessions")?,
                "--spread" => args.spread = positive(it, "--spread")?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        ensure!(
            args.sessions == 0 || args.store != StoreKind::Cookie,
            "--sessions needs a server store (--store memory or redis): the cookie store keeps none"
        );
        ensure!(
            args.spread <= args.sessions,
            "--spread K needs --sessions N with K <= N: the requests use K of the filled sessions"
        );
        Ok(args)
    }
}

/// The `Cookie` header a signed-in browser sends, updated from `Set-Cookie` as a browser
/// would (the layer re-seals the identity cookie when `last_seen` is due).
struct Jar {
    pairs: RwLock<(Vec<(String, String)>, HeaderValue)>,
}

impl Jar {
    fn new(header: &str) -> anyhow::Result<Self> {
        let pairs = header
            .split(';')
            .filter_map(|p| p.trim().split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect::<Vec<_>>();
        let value = HeaderValue::from_str(header)?;
        Ok(Self {
            pairs: RwLock::new((pairs, value)),
        })
    }

    fn header(&self) -> HeaderValue {
        self.pairs
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .1
            .clone()
    }

    /// Applies the response's `Set-Cookie`s; an error if the layer deleted a cookie (the
    /// session ended: the benchmark would measure something else).
    fn update(&self, headers: &HeaderMap) -> anyhow::Result<()> {
        let mut guard = self
            .pairs
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for set in headers.get_all(SET_COOKIE) {
            let set = set.to_str()?;
            ensure!(
                !set.contains("Max-Age=0"),
                "the layer cleared a session cookie: the session ended"
            );
            let pair = set.split(';').next().unwrap_or_default();
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| anyhow!("malformed Set-Cookie"))?;
            match guard.0.iter_mut().find(|(k, _)| k == name) {
                Some(slot) => value.clone_into(&mut slot.1),
                None => guard.0.push((name.to_owned(), value.to_owned())),
            }
        }
        let joined = guard
            .0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        guard.1 = HeaderValue::from_str(&joined)?;
        Ok(())
    }
}

/// The order of the phases in each round (`BareRoundTrip` with `--store redis` only).
const KINDS: [Kind; 4] = [
    Kind::Bare,
    Kind::BareCookies,
    Kind::BareRoundTrip,
    Kind::Layer,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// The bare server, requests without cookies.
    Bare,
    /// The bare server, requests with the same `Cookie` header as the layer's (ignored):
    /// separates the layer's own work from receiving and parsing ~2.7 KB more per request.
    BareCookies,
    /// `--store redis`: the bare server with the same requests as `BareCookies`, whose handler
    /// makes one Redis round trip (`PING`) before it answers: "one round trip" of the goal.
    BareRoundTrip,
    /// Behind the layer, signed in.
    Layer,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Bare => "bare",
            Kind::BareCookies => "bare+ck",
            Kind::BareRoundTrip => "bare+rt",
            Kind::Layer => "layer",
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Outcome {
    ok: u64,
    not_ok: u64,
    set_cookie: u64,
}

/// What one phase measured.
#[derive(Clone, Copy, Debug)]
struct Measured {
    wall: Duration,
    /// The server thread's CPU time.
    cpu_ns: u64,
    /// The load generator thread's CPU time (for reading the result: which side was busy).
    client_ns: u64,
    outcome: Outcome,
}

#[derive(Clone, Copy, Debug)]
struct Phase {
    kind: Kind,
    round: usize,
    requests: u64,
    wall: Duration,
    cpu_ns: u64,
    client_ns: u64,
    set_cookie: u64,
}

impl Phase {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.wall.as_secs_f64()
    }
    fn cpu_us(&self) -> f64 {
        self.cpu_ns as f64 / 1_000.0 / self.requests as f64
    }
    fn busy(&self) -> f64 {
        self.cpu_ns as f64 / 1e9 / self.wall.as_secs_f64() * 100.0
    }
    fn client_busy(&self) -> f64 {
        self.client_ns as f64 / 1e9 / self.wall.as_secs_f64() * 100.0
    }
}

/// One phase: `n` requests over `concurrency` keep-alive connections to `addr`, the server
/// thread's (`tid`) and the load generator's (`client_tid`) CPU read before and after.
async fn phase(
    kind: Kind,
    addr: SocketAddr,
    jars: Option<&Arc<[Jar]>>,
    n: u64,
    concurrency: usize,
    tid: u32,
    client_tid: u32,
) -> anyhow::Result<Measured> {
    let senders = connect(addr, concurrency).await?;
    let issued = Arc::new(AtomicU64::new(0));
    let host = HeaderValue::from_str(&addr.to_string())?;
    let client_before = thread_cpu_ns(client_tid)?;
    let cpu_before = thread_cpu_ns(tid)?;
    let start = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for mut sender in senders {
        let issued = issued.clone();
        let jars = jars.cloned();
        let host = host.clone();
        workers.spawn(async move {
            let mut out = Outcome::default();
            loop {
                let i = issued.fetch_add(1, Ordering::Relaxed);
                if i >= n || start.elapsed() >= PHASE_TIME_LIMIT {
                    break;
                }
                // Request i carries session i mod K (K = 1 unless `--spread`).
                let jar = jars
                    .as_ref()
                    .map(|jars| &jars[usize::try_from(i % jars.len() as u64).unwrap_or(0)]);
                let mut req = Request::get("/hello").header(HOST, host.clone());
                if let Some(jar) = jar {
                    req = req.header(COOKIE, jar.header());
                }
                sender.ready().await?;
                let res = sender
                    .send_request(req.body(Empty::<Bytes>::new())?)
                    .await?;
                let ok = res.status() == StatusCode::OK;
                if ok {
                    out.ok += 1;
                } else {
                    out.not_ok += 1;
                }
                if res.headers().contains_key(SET_COOKIE) {
                    out.set_cookie += 1;
                    match jar {
                        Some(jar) if kind == Kind::Layer => jar.update(res.headers())?,
                        _ => bail!("the bare server set a cookie"),
                    }
                }
                let body = res.into_body().collect().await?.to_bytes();
                ensure!(!ok || body.as_ref() == b"hello", "unexpected body {body:?}");
            }
            anyhow::Ok(out)
        });
    }
    let mut total = Outcome::default();
    while let Some(r) = workers.join_next().await {
        let o = r.context("a load worker panicked")??;
        total.ok += o.ok;
        total.not_ok += o.not_ok;
        total.set_cookie += o.set_cookie;
    }
    let wall = start.elapsed();
    let cpu_ns = thread_cpu_ns(tid)?.saturating_sub(cpu_before);
    let client_ns = thread_cpu_ns(client_tid)?.saturating_sub(client_before);
    ensure!(
        total.not_ok == 0,
        "{}: {} of {} requests did not answer 200",
        kind.name(),
        total.not_ok,
        total.ok + total.not_ok
    );
    ensure!(total.ok > 0, "{}: no request completed", kind.name());
    Ok(Measured {
        wall,
        cpu_ns,
        client_ns,
        outcome: total,
    })
}

/// Signs in at the mock through the layer's routes, as a browser does, and returns the
/// `Cookie` header the browser then sends to the layer server.
async fn sign_in(mock: &MockProvider, base: &str, expected: usize) -> anyhow::Result<String> {
    let (http, jar) = browser_client(mock)?;
    let mut url: url::Url = format!("{base}/auth/doximity/login?return_to=%2Fhello").parse()?;
    for _ in 0..10 {
        let res = http
            .get(url.clone())
            .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
            .header("sec-fetch-mode", "navigate")
            .send()
            .await?;
        if res.status().is_redirection() {
            url = redirect_target(&res)?;
            continue;
        }
        ensure!(
            res.status() == StatusCode::OK && url.path() == "/hello",
            "sign-in ended at {} with {}",
            url.path(),
            res.status()
        );
        let ours = session_cookies(&jar, base)?;
        ensure!(
            ours.len() == expected,
            "expected {expected} session cookie(s) (identity and tokens, or the id), got {}",
            ours.len()
        );
        return Ok(ours.join("; "));
    }
    bail!("too many redirects while signing in")
}

/// Writes `n` sessions into the store of `auth` (the measured layer's own `DoximityAuth`),
/// sealed as the layer writes a session (`SignedIn::store_in`), up to 64 writes in flight (a
/// Redis store's round trips overlap); how long it took, and the `Cookie` headers of `keep` of
/// them, evenly spread over the `n` (the `--spread` sessions).
async fn fill(
    auth: &DoximityAuth,
    n: u64,
    keep: u64,
) -> anyhow::Result<Option<(u64, Duration, Vec<HeaderValue>)>> {
    if n == 0 {
        return Ok(None);
    }
    let step = n.checked_div(keep).unwrap_or(u64::MAX).max(1);
    let start = Instant::now();
    let mut kept = Vec::new();
    let mut writes = tokio::task::JoinSet::new();
    let mut done = 0u64;
    for i in 0..n {
        if writes.len() >= 64
            && let Some(r) = writes.join_next().await
        {
            kept.extend(r.context("a fill task panicked")??);
            done += 1;
        }
        let auth = auth.clone();
        writes.spawn(async move {
            let cookie = SignedIn::new(format!("filled-{i}"))
                .store_in(&auth)
                .await
                .with_context(|| format!("writing filled session {i}"))?;
            anyhow::Ok((i % step == 0 && i / step < keep).then_some(cookie))
        });
        if (i + 1) % (n / 10).max(1) == 0 {
            eprintln!(
                "  filling: {} of {n} sessions written or in flight ({:.1} s)",
                i + 1,
                start.elapsed().as_secs_f64()
            );
        }
    }
    while let Some(r) = writes.join_next().await {
        kept.extend(r.context("a fill task panicked")??);
        done += 1;
    }
    ensure!(done == n, "wrote {done} of {n} sessions");
    ensure!(
        kept.len() as u64 == keep,
        "kept {} session cookies, expected {keep}",
        kept.len()
    );
    Ok(Some((n, start.elapsed(), kept)))
}

async fn run(args: Args) -> anyhow::Result<()> {
    // The load generator runs on this thread (a current-thread runtime).
    let client_tid = current_tid()?;
    let bare_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let layer_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let layer_base = format!("http://{}", layer_listener.local_addr()?);
    let redirect = format!("{layer_base}/auth/doximity/callback");
    let (mock, config) = start_mock(&redirect).await?;
    let key = Key::generate();
    let redis = match args.store {
        StoreKind::Redis => Some(Redis::start(args.redis_url.clone()).await?),
        _ => None,
    };
    let store = (args.store, redis.as_ref().map(|r| r.url.clone()));
    let server_key = key.clone();
    let memory = MemoryStore::new();
    let server_memory = memory.clone();
    let (issuer, client_id) = (config.issuer().to_owned(), config.client_id().to_owned());
    // The layer's own `DoximityAuth` (a clone shares its store and key), for `fill`.
    let (auth_tx, auth_rx) = tokio::sync::oneshot::channel::<DoximityAuth>();
    let round_trip = match &redis {
        Some(r) => Some((std::net::TcpListener::bind("127.0.0.1:0")?, r.url.clone())),
        None => None,
    };
    let server = Server::start_with_round_trip(
        bare_listener,
        layer_listener,
        round_trip,
        move || async move {
            let client = Client::discover(config)
                .await
                .context("discovering the mock provider")?;
            let auth = DoximityAuth::new(client).with_cookie_key(server_key.clone());
            // Connected on the server thread: the store's I/O is the server's work.
            let auth = with_store(auth, store.0, store.1.as_deref(), server_memory).await?;
            auth_tx
                .send(auth.clone())
                .map_err(|_| anyhow!("the benchmark stopped waiting"))?;
            Ok(auth)
        },
    )
    .await?;
    let layer_auth = auth_rx
        .await
        .context("the server thread gave no DoximityAuth")?;

    // Not signed in, the layer refuses: the 200s below are the session's doing.
    let probe = reqwest::Client::builder()
        .tls_backend_preconfigured(mock.rustls_client_config())
        .redirect(reqwest::redirect::Policy::none())
        .build()?
        .get(format!("{layer_base}/hello"))
        .send()
        .await?;
    ensure!(
        probe.status() != StatusCode::OK,
        "the layer let an anonymous request through"
    );

    let filled = fill(&layer_auth, args.sessions, args.spread).await?;
    drop(layer_auth);
    let cookie_header = sign_in(&mock, &layer_base, args.store.cookies()).await?;
    if args.store == StoreKind::Memory {
        let expected = usize::try_from(args.sessions)? + 1;
        ensure!(
            memory.len() == expected,
            "the memory store holds {} sessions, expected {expected}",
            memory.len()
        );
    }
    if args.store == StoreKind::Cookie {
        // The session is the cookie store's, and the bench's decoder reads the layer's format.
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_str(&cookie_header)?);
        let identity = IdentityCookie::bound(key, false, &issuer, &client_id);
        let record = identity
            .decode(&headers)
            .ok_or_else(|| anyhow!("the identity cookie does not open with the bench's decoder"))?;
        let expected_sub = mock
            .clinicians()
            .first()
            .map(|c| c.sub.clone())
            .unwrap_or_default();
        ensure!(record.sub() == expected_sub, "signed in as the wrong user");
    }
    let sizes = cookie_header
        .split(';')
        .filter_map(|p| p.trim().split_once('='))
        .map(|(k, v)| format!("{k} {} B", v.len()))
        .collect::<Vec<_>>()
        .join(", ");
    let jars: Arc<[Jar]> = match &filled {
        Some((_, _, spread)) if !spread.is_empty() => spread
            .iter()
            .map(|h| Jar::new(h.to_str()?))
            .collect::<anyhow::Result<Vec<_>>>()?
            .into(),
        _ => Arc::new([Jar::new(&cookie_header)?]),
    };
    let jar = &jars;

    println!(
        "doximity-rs load benchmark{}",
        if args.quick { " (--quick)" } else { "" }
    );
    println!(
        "  handler: GET /hello (5-byte body); {} keep-alive HTTP/1.1 connections; {} requests per phase, {} rounds, warm-up {} per kind",
        args.concurrency, args.requests, args.rounds, args.warmup
    );
    println!(
        "  server: one current_thread tokio runtime on its own OS thread (tid {}); load generator: another thread",
        server.tid
    );
    println!(
        "  session: {}, signed in at the mock; sealed cookie values: {sizes}",
        args.store.describe()
    );
    if let Some((n, took, _)) = &filled {
        println!(
            "  store filled first with {n} other sessions ({:.2} µs per session, SignedIn::store_in); the signed-in session is one more",
            took.as_secs_f64() * 1e6 / *n as f64
        );
    }
    if args.spread > 0 {
        println!(
            "  requests with cookies SPREAD over {} of the filled sessions (request i: session i mod {}), not the signed-in one",
            jars.len(),
            jars.len()
        );
    } else {
        println!("  requests with cookies all carry the one signed-in session (one hot session)");
    }
    println!(
        "  machine: {} CPUs, load average before: {}",
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        loadavg()
    );

    let calls_before = provider_calls(&mock);
    let target = |kind: Kind| match kind {
        Kind::Bare => Some((server.bare, None)),
        Kind::BareCookies => Some((server.bare, Some(jar))),
        Kind::BareRoundTrip => server.round_trip.map(|addr| (addr, Some(jar))),
        Kind::Layer => Some((server.layer, Some(jar))),
    };
    for kind in KINDS {
        let Some((addr, jar)) = target(kind) else {
            continue;
        };
        phase(
            kind,
            addr,
            jar,
            args.warmup,
            args.concurrency,
            server.tid,
            client_tid,
        )
        .await?;
    }
    // The loopback round trip just before the measured phases (and again after them).
    let ping_before = match &redis {
        Some(r) => Some(ping_round_trip(&r.url, 20_000).await?),
        None => None,
    };
    let redis_before = match &redis {
        Some(r) => Some(r.stats().await?),
        None => None,
    };
    let mut phases = Vec::new();
    for round in 1..=args.rounds {
        for kind in KINDS {
            let Some((addr, jar)) = target(kind) else {
                continue;
            };
            let m = phase(
                kind,
                addr,
                jar,
                args.requests,
                args.concurrency,
                server.tid,
                client_tid,
            )
            .await?;
            phases.push(Phase {
                kind,
                round,
                requests: m.outcome.ok,
                wall: m.wall,
                cpu_ns: m.cpu_ns,
                client_ns: m.client_ns,
                set_cookie: m.outcome.set_cookie,
            });
        }
    }
    let calls_after = provider_calls(&mock);
    let moved = moved_calls(&calls_before, &calls_after);
    let load_after = loadavg();
    let server_round_trip = server.round_trip;
    server.stop()?;
    ensure!(
        moved.is_empty(),
        "the provider was called during the measured phases: {}",
        moved.join(", ")
    );

    println!();
    println!(
        "{:<7} {:>5} {:>8} {:>6} {:>7} {:>11} {:>7} {:>11} {:>7} {:>10}",
        "phase",
        "round",
        "requests",
        "wall s",
        "req/s",
        "server CPU",
        "server",
        "client CPU",
        "client",
        "Set-Cookie"
    );
    println!(
        "{:<7} {:>5} {:>8} {:>6} {:>7} {:>11} {:>7} {:>11} {:>7} {:>10}",
        "", "", "", "", "", "µs/req", "busy %", "µs/req", "busy %", ""
    );
    for p in &phases {
        println!(
            "{:<7} {:>5} {:>8} {:>6.2} {:>7.0} {:>11.2} {:>7.0} {:>11.2} {:>7.0} {:>10}",
            p.kind.name(),
            p.round,
            p.requests,
            p.wall.as_secs_f64(),
            p.rps(),
            p.cpu_us(),
            p.busy(),
            p.client_ns as f64 / 1_000.0 / p.requests as f64,
            p.client_busy(),
            p.set_cookie
        );
    }
    let total = |kind: Kind| {
        let (mut n, mut wall, mut cpu) = (0u64, Duration::ZERO, 0u64);
        for p in phases.iter().filter(|p| p.kind == kind) {
            n += p.requests;
            wall += p.wall;
            cpu += p.cpu_ns;
        }
        (
            n as f64 / wall.as_secs_f64(),
            cpu as f64 / 1_000.0 / n as f64,
        )
    };
    let (bare_rps, bare_cpu) = total(Kind::Bare);
    let (ck_rps, ck_cpu) = total(Kind::BareCookies);
    let (rt_rps, rt_cpu) = total(Kind::BareRoundTrip);
    let (layer_rps, layer_cpu) = total(Kind::Layer);
    let with_round_trip = server_round_trip.is_some();
    let verdict = |met: bool| if met { "met" } else { "MISSED" };
    println!();
    println!("{:<8} {:>10} {:>13}", "all", "req/s", "CPU µs/req");
    println!("{:<8} {:>10.0} {:>13.2}", "bare", bare_rps, bare_cpu);
    println!("{:<8} {:>10.0} {:>13.2}", "bare+ck", ck_rps, ck_cpu);
    if with_round_trip {
        println!("{:<8} {:>10.0} {:>13.2}", "bare+rt", rt_rps, rt_cpu);
    }
    println!("{:<8} {:>10.0} {:>13.2}", "layer", layer_rps, layer_cpu);
    println!();
    println!("{:<44} {:>12} {:>22}", "", "layer/bare", "added CPU µs/req");
    let mut against = vec![
        ("against bare (no cookies sent)", bare_rps, bare_cpu),
        ("against bare+ck (same request bytes)", ck_rps, ck_cpu),
    ];
    if with_round_trip {
        against.push(("against bare+rt (same bytes, one PING)", rt_rps, rt_cpu));
    }
    for (label, rps, cpu) in against {
        let (ratio, added) = (layer_rps / rps, layer_cpu - cpu);
        println!(
            "{label:<44} {ratio:>5.3} {:>6} {added:>13.2} {:>8}",
            verdict(ratio >= 0.8),
            verdict(added <= 5.0),
        );
    }
    println!("goals: throughput ratio >= 0.8, added server CPU <= 5 µs per request");
    println!(
        "wall time per request (1 / req/s): bare {:.1} µs, layer {:.1} µs, added {:.1} µs (the latency a request sees only with --concurrency 1)",
        1e6 / bare_rps,
        1e6 / layer_rps,
        1e6 / layer_rps - 1e6 / bare_rps
    );
    if with_round_trip {
        let added = 1e6 / layer_rps - 1e6 / rt_rps;
        println!(
            "Redis store: wall time per request bare+rt {:.1} µs (bare + one round trip), layer {:.1} µs: added {added:.1} µs over one round trip (goal <= 5: {}; a latency only with --concurrency 1); added server CPU over bare+rt {:.2} µs (goal <= 5: {})",
            1e6 / rt_rps,
            1e6 / layer_rps,
            verdict(added <= 5.0),
            layer_cpu - rt_cpu,
            verdict(layer_cpu - rt_cpu <= 5.0),
        );
    }
    let layer_requests: u64 = phases
        .iter()
        .filter(|p| p.kind == Kind::Layer)
        .map(|p| p.requests)
        .sum();
    println!(
        "checks: all {layer_requests} measured layer requests answered 200; provider calls during warm-up and measured phases: 0"
    );
    if let (Some(r), Some(before)) = (&redis, &redis_before) {
        let after = r.stats().await?;
        print_redis_costs(before, &after, layer_requests);
        let after = ping_round_trip(&r.url, 20_000).await?;
        for (when, ping) in [("before", ping_before), ("after", Some(after))] {
            let Some(ping) = ping else { continue };
            for ((mean, median, cpu), over) in ping.into_iter().zip([
                "one multiplexed connection",
                "a ConnectionManager as RedisStore::connect makes",
            ]) {
                println!(
                    "redis PING round trip (20000 sequential, {over}, {when} the phases): mean {mean:.1} µs, median {median:.1} µs wall; {cpu:.2} µs CPU of the calling thread per PING"
                );
            }
        }
    }
    println!("load average after: {load_after}");
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse()?;
    run_on_one_thread(run(args))
}
