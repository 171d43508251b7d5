//! The layer's cost per request in the shape people deploy: the demo binary (`axum-app`), a
//! process of its own configured through its environment, against a bare axum process.
//!
//! ```text
//! cargo build --release -p axum-app -p doximity-benches --bins
//! target/release/deployed
//! ```
//!
//! 1. Finds the demo and the bare server next to itself (`target/release/axum-app` and
//!    `bare-me`, built by the first command above), unless `--demo-bin PATH` and
//!    `--bare-bin PATH` name them.
//! 2. Starts the mock provider in-process (HTTPS, its CA written to a temporary PEM file) with
//!    a client registered for the demo, and the demo as a child process in provider mode, as
//!    the configuration contract starts it: `DOXIMITY_CLIENT_ID`, `DOXIMITY_CLIENT_SECRET`,
//!    `DOXIMITY_ISSUER`, `DOXIMITY_CA_CERT`, `DOXIMITY_REDIRECT_URI`, `APP_ADDR` (a free
//!    port), a fixed `DOXIMITY_COOKIE_KEY`, `RUST_LOG=warn`.
//! 3. Signs in for real: the demo's login route, the mock's consent page (read, then posted
//!    back with its CSRF token, "approve"), the callback, `/me`. Keeps the `Cookie` header.
//! 4. Starts `bare-me` (the same runtime, `GET /me` answering the same JSON shape) as another
//!    child process, sent the same `Cookie` header.
//! 5. Drives both with `wrk` on loopback (`--client builtin` or no `wrk` on the `PATH`: the
//!    bench's own keep-alive client), interleaved rounds (bare, demo, bare, demo, ...), each
//!    phase a warm-up then a measured run.
//! 6. Reads each server process's CPU time (utime and stime of all its threads, from
//!    `/proc/<pid>/stat`) around each measured run, and prints per phase req/s and server CPU
//!    µs/req (with its user-space and system parts), then the added µs (demo − bare) and the
//!    throughput ratio (demo / bare).
//!
//! Checks (the run fails otherwise): every measured demo response is 200 (wrk's non-2xx/3xx
//! count is 0 and no socket error; a request without the cookie is refused with a 4xx first,
//! so a lost session cannot pass as a redirect), and the mock's counters for all of its
//! endpoints do not move during a phase (no provider call on the hot path).
//!
//! Each round signs in afresh, so that its phases end within a minute of sign-in: the layer
//! re-seals the identity cookie (`last_seen`) at most once a minute, which a browser applies
//! and `wrk` (no cookie jar) would not.
//!
//! Options: `--rounds N` (3), `--duration S` (measured seconds per phase, 10), `--warmup S`
//! (3), `--connections N` (32), `--threads N` (wrk threads, 1), `--client wrk|builtin`,
//! `--demo-bin PATH`, `--bare-bin PATH`. `docs/benchmarks.md` holds the results.

#![allow(clippy::print_stdout)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail, ensure};
use bytes::Bytes;
use doximity_benches::server::{
    browser_client, connect, loadavg, moved_calls, parse_args, positive, provider_calls,
    redirect_target, run_on_one_thread, session_cookies,
};
use doximity_mock::{ClientRegistration, MockProvider};
use http::header::{ACCEPT, COOKIE, HOST, HeaderValue};
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Empty};

/// The demo's client at the mock.
const CLIENT_ID: &str = "deployed-bench";
const CLIENT_SECRET: &str = "deployed-bench-secret";

/// A fixed cookie key (64 bytes, base64), as a deployment configures one.
const COOKIE_KEY: &str =
    "ZG94aW1pdHktcnMgZGVwbG95ZWQtc2hhcGUgYmVuY2htYXJrOiBhIGZpeGVkIGtleSwgbm90IGEgc2VjcmV0IQ==";

/// The layer re-seals the identity cookie at most this often: a round's phases must end
/// sooner after its sign-in.
const TOUCH_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LoadClient {
    Wrk,
    Builtin,
}

#[derive(Debug)]
struct Args {
    rounds: usize,
    duration: u64,
    warmup: u64,
    connections: u64,
    threads: u64,
    client: Option<LoadClient>,
    demo_bin: Option<PathBuf>,
    bare_bin: Option<PathBuf>,
}

impl Args {
    fn parse() -> anyhow::Result<Self> {
        let mut args = Args {
            rounds: 3,
            duration: 10,
            warmup: 3,
            connections: 32,
            threads: 1,
            client: None,
            demo_bin: None,
            bare_bin: None,
        };
        const USAGE: &str = "usage: deployed [--rounds N] [--duration S] [--warmup S] [--connections N] [--threads N] [--client wrk|builtin] [--demo-bin PATH] [--bare-bin PATH]";
        parse_args(USAGE, |arg, it| {
            match arg {
                "--rounds" => args.rounds = usize::try_from(positive(it, "--rounds")?)?,
                "--duration" => args.duration = positive(it, "--duration")?,
                "--warmup" => args.warmup = positive(it, "--warmup")?,
                "--connections" => args.connections = positive(it, "--connections")?,
                "--threads" => args.threads = positive(it, "--threads")?,
                "--client" => {
                    args.client = Some(match it.next().as_deref() {
                        Some("wrk") => LoadClient::Wrk,
                        Some("builtin") => LoadClient::Builtin,
                        other => bail!("--client {other:?}: expected wrk or builtin"),
                    });
                }
                "--demo-bin" => {
                    args.demo_bin = Some(it.next().context("--demo-bin needs a path")?.into());
                }
                "--bare-bin" => {
                    args.bare_bin = Some(it.next().context("--bare-bin needs a path")?.into());
                }
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        ensure!(
            Duration::from_secs(2 * (args.duration + args.warmup)) + Duration::from_secs(10)
                < TOUCH_INTERVAL,
            "--duration + --warmup too long: a round (two phases) must end within a minute of its sign-in"
        );
        Ok(args)
    }
}

/// The release binaries: given, else next to this one (`target/release/`). Build them first
/// with `cargo build --release -p axum-app -p doximity-benches --bins` (a `cargo build` run
/// from inside `cargo run` sees another environment and rebuilds the TLS crates each time).
fn binaries(args: &Args) -> anyhow::Result<(PathBuf, PathBuf)> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .ok_or_else(|| anyhow!("no directory for {}", exe.display()))?;
    let demo = args
        .demo_bin
        .clone()
        .unwrap_or_else(|| dir.join("axum-app"));
    let bare = args.bare_bin.clone().unwrap_or_else(|| dir.join("bare-me"));
    for bin in [&demo, &bare] {
        ensure!(
            bin.is_file(),
            "{} not found: run `cargo build --release -p axum-app -p doximity-benches --bins` first, or pass --demo-bin / --bare-bin",
            bin.display()
        );
    }
    Ok((demo, bare))
}

/// A free port on loopback (bound, read, released: the child binds it next).
fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// A server child process, killed on drop.
struct Server {
    name: &'static str,
    child: Child,
    addr: SocketAddr,
    /// Its stderr, for the error message when it stops.
    log: PathBuf,
}

impl Server {
    fn start(
        name: &'static str,
        bin: &Path,
        env: &[(&str, String)],
        dir: &Path,
    ) -> anyhow::Result<Self> {
        let addr = free_addr()?;
        let log = dir.join(format!("{name}.log"));
        let mut cmd = Command::new(bin);
        cmd.env_clear()
            .env("APP_ADDR", addr.to_string())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        Ok(Self {
            name,
            child,
            addr,
            log,
        })
    }

    /// Waits until the server accepts connections (at most 60 s).
    async fn ready(&mut self) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                bail!("{} exited ({status}) before it listened:\n{log}", self.name);
            }
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return Ok(());
            }
            ensure!(
                start.elapsed() < Duration::from_secs(60),
                "{} does not listen on {}",
                self.name,
                self.addr
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// User and system CPU time of all its threads, in nanoseconds.
    fn cpu_ns(&self, tick_ns: u64) -> anyhow::Result<Cpu> {
        let (user, system) = process_cpu_ticks(self.child.id())?;
        Ok(Cpu {
            user: user * tick_ns,
            system: system * tick_ns,
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process's CPU time in nanoseconds: user space (the process's own code) and system (the
/// kernel on its behalf: sockets, epoll, scheduling).
#[derive(Clone, Copy, Debug, Default)]
struct Cpu {
    user: u64,
    system: u64,
}

impl Cpu {
    fn since(self, before: Cpu) -> Cpu {
        Cpu {
            user: self.user.saturating_sub(before.user),
            system: self.system.saturating_sub(before.system),
        }
    }
    fn total(self) -> u64 {
        self.user + self.system
    }
}

/// (utime, stime) in clock ticks from `/proc/<pid>/stat`: the whole process, all threads.
fn process_cpu_ticks(pid: u32) -> anyhow::Result<(u64, u64)> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let rest = text
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("unexpected {path}"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, stime 15.
    let utime: u64 = fields.get(11).context("no utime")?.parse()?;
    let stime: u64 = fields.get(12).context("no stime")?.parse()?;
    Ok((utime, stime))
}

/// Nanoseconds per clock tick (`getconf CLK_TCK`, 100 on Linux).
fn tick_ns() -> anyhow::Result<u64> {
    let out = Command::new("getconf").arg("CLK_TCK").output();
    let hz: u64 = match out {
        Ok(o) if o.status.success() => String::from_utf8(o.stdout)?.trim().parse()?,
        _ => 100,
    };
    ensure!(hz > 0, "CLK_TCK is 0");
    Ok(1_000_000_000 / hz)
}

/// Signs in at the demo as a browser does, approving on the mock's consent page, and returns
/// the demo's cookies as a `Cookie` header value.
async fn sign_in(mock: &MockProvider, base: &str) -> anyhow::Result<String> {
    let (http, jar) = browser_client(mock)?;
    let mut res = http
        .get(format!("{base}/auth/doximity/login?return_to=%2Fme"))
        .header("accept", "text/html")
        .send()
        .await?;
    let mut consented = false;
    for _ in 0..10 {
        if res.status().is_redirection() {
            let url = redirect_target(&res)?;
            res = http.get(url).header("accept", "text/html").send().await?;
            continue;
        }
        ensure!(
            res.status() == StatusCode::OK,
            "sign-in stopped at {} with {}",
            res.url().path(),
            res.status()
        );
        if res.url().path() == "/me" {
            let me: serde_json::Value = res.json().await?;
            let expected = mock
                .clinicians()
                .first()
                .map(|c| c.sub.clone())
                .unwrap_or_default();
            ensure!(me["sub"] == expected.as_str(), "signed in as {me}");
            let ours = session_cookies(&jar, base)?;
            ensure!(
                ours.len() == 2,
                "expected 2 session cookies, got {}",
                ours.len()
            );
            return Ok(ours.join("; "));
        }
        // The consent page: approve as the first clinician, as a person would click.
        ensure!(!consented, "the consent page came back after approving");
        let page_url = res.url().clone();
        let html = res.text().await?;
        let csrf = attribute_after(&html, "name=\"csrf_token\" value=\"")
            .ok_or_else(|| anyhow!("no CSRF token on the consent page at {}", page_url.path()))?;
        let sub = attribute_after(&html, "name=\"sub\" value=\"")
            .ok_or_else(|| anyhow!("no clinician on the consent page"))?;
        res = http
            .post(page_url.join("/oauth/authorize")?)
            .form(&[("csrf_token", csrf), ("sub", sub), ("action", "approve")])
            .send()
            .await?;
        consented = true;
    }
    bail!("too many redirects while signing in")
}

/// The attribute value that follows `prefix` in `html` (up to the closing quote).
fn attribute_after<'a>(html: &'a str, prefix: &str) -> Option<&'a str> {
    let start = html.find(prefix)? + prefix.len();
    let len = html[start..].find('"')?;
    Some(&html[start..start + len])
}

/// What a load run reports.
#[derive(Clone, Copy, Debug, Default)]
struct Run {
    requests: u64,
    wall: Duration,
    not_ok: u64,
    socket_errors: u64,
}

/// `wrk` for `duration`, with `cookie`, against `GET /me` at `addr`, on the blocking pool
/// (this thread keeps serving the mock meanwhile).
async fn run_wrk(
    args: &Args,
    addr: SocketAddr,
    cookie: &str,
    duration: u64,
) -> anyhow::Result<Run> {
    let mut cmd = Command::new("wrk");
    cmd.arg(format!("-t{}", args.threads))
        .arg(format!("-c{}", args.connections))
        .arg(format!("-d{duration}s"))
        .args(["--timeout", "5s", "-H", "Accept: application/json", "-H"])
        .arg(format!("Cookie: {cookie}"))
        .arg(format!("http://{addr}/me"))
        .stdin(Stdio::null());
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await?
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(out.status.success(), "wrk failed: {text}");
    parse_wrk(&text)
}

/// Reads wrk's summary: `N requests in 10.00s, ...`, `Non-2xx or 3xx responses: N`,
/// `Socket errors: connect A, read B, write C, timeout D`.
fn parse_wrk(text: &str) -> anyhow::Result<Run> {
    let mut run = Run::default();
    let mut seen = false;
    for line in text.lines().map(str::trim) {
        if let Some((n, rest)) = line.split_once(" requests in ") {
            run.requests = n.trim().parse()?;
            let t = rest.split(',').next().unwrap_or_default().trim();
            run.wall = parse_wrk_time(t).ok_or_else(|| anyhow!("wrk duration {t:?}"))?;
            seen = true;
        } else if let Some(n) = line.strip_prefix("Non-2xx or 3xx responses:") {
            run.not_ok = n.trim().parse()?;
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            run.socket_errors = rest
                .split(',')
                .filter_map(|kv| kv.split_whitespace().last()?.parse::<u64>().ok())
                .sum();
        }
    }
    ensure!(seen, "no summary in wrk's output:\n{text}");
    Ok(run)
}

/// wrk's durations: `10.00s`, `1.00m`, `500.00ms`.
fn parse_wrk_time(t: &str) -> Option<Duration> {
    let (n, unit) = t
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| t.split_at(i))?;
    let n: f64 = n.parse().ok()?;
    let secs = match unit {
        "us" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

/// The bench's own load generator: `connections` keep-alive HTTP/1.1 connections on this
/// thread for `duration`, counting non-200 answers.
async fn run_builtin(
    args: &Args,
    addr: SocketAddr,
    cookie: &str,
    duration: u64,
) -> anyhow::Result<Run> {
    let senders = connect(addr, usize::try_from(args.connections)?).await?;
    let host = HeaderValue::from_str(&addr.to_string())?;
    let cookie = HeaderValue::from_str(cookie)?;
    let done = Arc::new(AtomicBool::new(false));
    let (ok, not_ok) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let start = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for mut sender in senders {
        let (done, ok, not_ok) = (done.clone(), ok.clone(), not_ok.clone());
        let (host, cookie) = (host.clone(), cookie.clone());
        workers.spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let req = Request::get("/me")
                    .header(HOST, host.clone())
                    .header(ACCEPT, "application/json")
                    .header(COOKIE, cookie.clone())
                    .body(Empty::<Bytes>::new())?;
                sender.ready().await?;
                let res = sender.send_request(req).await?;
                let counter = if res.status() == StatusCode::OK {
                    &ok
                } else {
                    &not_ok
                };
                counter.fetch_add(1, Ordering::Relaxed);
                res.into_body().collect().await?;
            }
            anyhow::Ok(())
        });
    }
    tokio::time::sleep(Duration::from_secs(duration)).await;
    done.store(true, Ordering::Relaxed);
    while let Some(r) = workers.join_next().await {
        r.context("a load worker panicked")??;
    }
    let (ok, not_ok) = (ok.load(Ordering::Relaxed), not_ok.load(Ordering::Relaxed));
    Ok(Run {
        requests: ok + not_ok,
        wall: start.elapsed(),
        not_ok,
        socket_errors: 0,
    })
}

/// One load run with the chosen client.
async fn drive(
    client: LoadClient,
    args: &Args,
    addr: SocketAddr,
    cookie: &str,
    secs: u64,
) -> anyhow::Result<Run> {
    match client {
        LoadClient::Wrk => run_wrk(args, addr, cookie, secs).await,
        LoadClient::Builtin => run_builtin(args, addr, cookie, secs).await,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Bare,
    Demo,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Bare => "bare",
            Kind::Demo => "demo",
        }
    }
}

struct Phase {
    kind: Kind,
    round: usize,
    run: Run,
    cpu: Cpu,
    load: String,
}

impl Phase {
    fn rps(&self) -> f64 {
        self.run.requests as f64 / self.run.wall.as_secs_f64()
    }
    fn cpu_us(&self) -> f64 {
        self.per_request_us(self.cpu.total())
    }
    fn per_request_us(&self, ns: u64) -> f64 {
        ns as f64 / 1_000.0 / self.run.requests as f64
    }
    fn busy(&self) -> f64 {
        self.cpu.total() as f64 / 1e9 / self.run.wall.as_secs_f64() * 100.0
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => f64::midpoint(v[n / 2 - 1], v[n / 2]),
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let client = match args.client {
        Some(c) => c,
        None if Command::new("wrk").arg("--version").output().is_ok() => LoadClient::Wrk,
        None => LoadClient::Builtin,
    };
    let (demo_bin, bare_bin) = binaries(&args)?;
    let tick = tick_ns()?;
    let dir = tempfile::tempdir()?;

    // The provider: the mock over HTTPS, its CA in a PEM file the demo is pointed at.
    let mock = MockProvider::builder()
        .start()
        .await
        .context("starting the mock provider")?;
    let ca = dir.path().join("mock-ca.pem");
    std::fs::write(&ca, mock.ca_pem())?;

    let demo_addr = free_addr()?;
    let base = format!("http://{demo_addr}");
    let redirect = format!("{base}/auth/doximity/callback");
    mock.register_client(
        ClientRegistration::new(CLIENT_ID, CLIENT_SECRET)
            .with_redirect_uri(&redirect)
            .with_post_logout_redirect_uri(format!("{base}/")),
    );
    let demo_env = [
        ("DOXIMITY_CLIENT_ID", CLIENT_ID.to_owned()),
        ("DOXIMITY_CLIENT_SECRET", CLIENT_SECRET.to_owned()),
        ("DOXIMITY_ISSUER", mock.issuer()),
        ("DOXIMITY_CA_CERT", ca.display().to_string()),
        ("DOXIMITY_REDIRECT_URI", redirect),
        ("DOXIMITY_COOKIE_KEY", COOKIE_KEY.to_owned()),
        ("APP_ADDR", demo_addr.to_string()),
    ];
    let mut demo = Server::start("demo", &demo_bin, &demo_env, dir.path())?;
    // `APP_ADDR` from `demo_env` replaces the free port `Server::start` picked.
    demo.addr = demo_addr;
    demo.ready().await?;
    let mut bare = Server::start("bare", &bare_bin, &[], dir.path())?;
    bare.ready().await?;

    // Not signed in, the demo refuses `/me` with a 4xx (not a redirect, which wrk would count
    // as a success): the 200s below are the session's doing. Every request says
    // `Accept: application/json`, as an API client does; a browser's would be redirected.
    let anon = reqwest::Client::builder()
        .tls_backend_preconfigured(mock.rustls_client_config())
        .redirect(reqwest::redirect::Policy::none())
        .build()?
        .get(format!("{base}/me"))
        .header("accept", "application/json")
        .send()
        .await?;
    ensure!(
        anon.status().is_client_error(),
        "the demo answered {} to an anonymous /me",
        anon.status()
    );

    let mut cookie = sign_in(&mock, &base).await?;
    let sizes = cookie
        .split(';')
        .filter_map(|p| p.trim().split_once('='))
        .map(|(k, v)| format!("{k} {} B", v.len()))
        .collect::<Vec<_>>()
        .join(", ");
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("doximity-rs deployed-shape benchmark (commit {commit})");
    println!(
        "  demo: {} (pid {}, provider mode against the mock, cookie store); bare: {} (pid {})",
        demo_bin.display(),
        demo.child.id(),
        bare_bin.display(),
        bare.child.id()
    );
    println!(
        "  load: {} on loopback, GET /me, {} connections{}; {} rounds of bare then demo, each phase {} s warm-up + {} s measured",
        match client {
            LoadClient::Wrk => "wrk",
            LoadClient::Builtin => "the bench's keep-alive client",
        },
        args.connections,
        if client == LoadClient::Wrk {
            format!(", {} thread(s)", args.threads)
        } else {
            String::new()
        },
        args.rounds,
        args.warmup,
        args.duration
    );
    println!(
        "  Cookie header: {} bytes ({sizes}), the same for both servers",
        cookie.len()
    );
    println!(
        "  machine: {} CPUs, load average before: {}",
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        loadavg()
    );

    let mut phases = Vec::new();
    for round in 1..=args.rounds {
        let signed_in = Instant::now();
        if round > 1 {
            cookie = sign_in(&mock, &base).await?;
        }
        for kind in [Kind::Bare, Kind::Demo] {
            let server = match kind {
                Kind::Bare => &bare,
                Kind::Demo => &demo,
            };
            let calls_before = provider_calls(&mock);
            let warm = drive(client, &args, server.addr, &cookie, args.warmup).await?;
            let cpu_before = server.cpu_ns(tick)?;
            let run = drive(client, &args, server.addr, &cookie, args.duration).await?;
            let cpu = server.cpu_ns(tick)?.since(cpu_before);
            let calls_after = provider_calls(&mock);
            let moved = moved_calls(&calls_before, &calls_after);
            ensure!(
                moved.is_empty(),
                "the provider was called during the {} phase: {}",
                kind.name(),
                moved.join(", ")
            );
            for (label, r) in [("warm-up", warm), ("measured", run)] {
                ensure!(
                    r.not_ok == 0 && r.socket_errors == 0,
                    "{} {label} phase, round {round}: {} of {} responses not 2xx/3xx, {} socket errors",
                    kind.name(),
                    r.not_ok,
                    r.requests,
                    r.socket_errors
                );
                ensure!(
                    r.requests > 0,
                    "{} {label}: no request completed",
                    kind.name()
                );
            }
            phases.push(Phase {
                kind,
                round,
                run,
                cpu,
                load: loadavg(),
            });
        }
        ensure!(
            signed_in.elapsed() < TOUCH_INTERVAL,
            "round {round} took longer than the cookie write-back interval"
        );
    }
    let load_after = loadavg();
    for server in [&mut demo, &mut bare] {
        if let Some(status) = server.child.try_wait()? {
            bail!("{} exited during the run ({status})", server.name);
        }
    }

    println!();
    println!(
        "{:<5} {:>5} {:>9} {:>6} {:>8} {:>11} {:>6} {:>6} {:>7}  load avg after",
        "phase", "round", "requests", "wall s", "req/s", "server CPU", "user", "system", "server"
    );
    println!(
        "{:<5} {:>5} {:>9} {:>6} {:>8} {:>11} {:>6} {:>6} {:>7}",
        "", "", "", "", "", "µs/req", "µs/req", "µs/req", "busy %"
    );
    for p in &phases {
        println!(
            "{:<5} {:>5} {:>9} {:>6.2} {:>8.0} {:>11.2} {:>6.2} {:>6.2} {:>7.0}  {}",
            p.kind.name(),
            p.round,
            p.run.requests,
            p.run.wall.as_secs_f64(),
            p.rps(),
            p.cpu_us(),
            p.per_request_us(p.cpu.user),
            p.per_request_us(p.cpu.system),
            p.busy(),
            p.load
        );
    }
    let of = |kind: Kind| phases.iter().filter(move |p| p.kind == kind);
    let total = |kind: Kind| {
        let (mut n, mut wall, mut cpu) = (0u64, 0f64, Cpu::default());
        for p in of(kind) {
            n += p.run.requests;
            wall += p.run.wall.as_secs_f64();
            cpu.user += p.cpu.user;
            cpu.system += p.cpu.system;
        }
        let us = |ns: u64| ns as f64 / 1_000.0 / n as f64;
        (
            n as f64 / wall,
            us(cpu.total()),
            us(cpu.user),
            us(cpu.system),
            n,
        )
    };
    let (bare_rps, bare_cpu, bare_user, bare_system, _) = total(Kind::Bare);
    let (demo_rps, demo_cpu, demo_user, demo_system, demo_n) = total(Kind::Demo);
    // Per round: the demo phase against the bare phase just before it.
    let pairs: Vec<(f64, f64)> = of(Kind::Bare)
        .zip(of(Kind::Demo))
        .map(|(b, d)| (d.rps() / b.rps(), d.cpu_us() - b.cpu_us()))
        .collect();
    let verdict = |met: bool| if met { "met" } else { "MISSED" };
    println!();
    println!(
        "{:<5} {:>9} {:>13} {:>14} {:>16}",
        "all", "req/s", "CPU µs/req", "user µs/req", "system µs/req"
    );
    println!(
        "{:<5} {:>9.0} {:>13.2} {:>14.2} {:>16.2}",
        "bare", bare_rps, bare_cpu, bare_user, bare_system
    );
    println!(
        "{:<5} {:>9.0} {:>13.2} {:>14.2} {:>16.2}",
        "demo", demo_rps, demo_cpu, demo_user, demo_system
    );
    println!();
    let (ratio, added) = (demo_rps / bare_rps, demo_cpu - bare_cpu);
    println!(
        "demo / bare throughput: {ratio:.3} (per round: {}; median {:.3}) goal >= 0.9: {}",
        pairs
            .iter()
            .map(|p| format!("{:.3}", p.0))
            .collect::<Vec<_>>()
            .join(", "),
        median(pairs.iter().map(|p| p.0).collect()),
        verdict(ratio >= 0.9)
    );
    println!(
        "added server CPU (demo − bare): {added:.2} µs/req (per round: {}; median {:.2}) goal <= 2: {}",
        pairs
            .iter()
            .map(|p| format!("{:.2}", p.1))
            .collect::<Vec<_>>()
            .join(", "),
        median(pairs.iter().map(|p| p.1).collect()),
        verdict(added <= 2.0)
    );
    println!(
        "of which user space {:.2} µs/req, system {:.2} µs/req (clock ticks of {} ms: read over many phases)",
        demo_user - bare_user,
        demo_system - bare_system,
        tick / 1_000_000
    );
    println!(
        "checks: all {demo_n} measured demo responses 2xx/3xx with no socket error (and an anonymous /me is a 4xx), provider calls during every phase: 0"
    );
    println!("load average after: {load_after}");
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse()?;
    run_on_one_thread(run(args))
}
