//! Bearer mode's cost per request, under load: the server CPU a cached bearer-token check adds
//! to a call, against the same service unprotected, measured side by side in one run.
//!
//! One server thread (a current-thread runtime) serves the same tiny handler (`GET /hello`, a
//! 5-byte body) twice: bare, and behind the Doximity layer in bearer mode. A real sign-in at
//! the bundled mock provider gives an access token; every request of both phases carries the
//! same `Authorization: Bearer <token>` header (the bare server ignores it), so both parse the
//! same bytes. The first layer request fills the cache (one userinfo call); the run checks
//! that no other userinfo call is made. The load generator (keep-alive HTTP/1.1 connections,
//! on the main thread) alternates the phases (bare, bearer, bare, bearer, ...) and reads the
//! server thread's CPU time from `/proc/self/task/<tid>/schedstat` around each phase. The
//! method is the one of `load.rs`.
//!
//! ```text
//! cargo run --release -p doximity-benches --bin bearer            # the full run
//! cargo run --release -p doximity-benches --bin bearer -- --quick # a smoke run
//! ```
//!
//! Options: `--quick`, `--requests N` (per phase), `--concurrency N`, `--rounds N`.
//! Results: `docs/benchmarks.md`, section "Bearer mode".

#![allow(clippy::print_stdout)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, ensure};
use bytes::Bytes;
use doximity::{AuthorizeRequest, Client, Config};
use doximity_benches::server::{Server, connect, parse_args, positive, start_mock, thread_cpu_ns};
use doximity_mock::{Endpoint, MockProvider};
use http::header::{AUTHORIZATION, HOST, HeaderValue, SET_COOKIE};
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Empty};
use tower_doximity::{BearerConfig, DoximityAuth, Key};

const REDIRECT: &str = "http://127.0.0.1:3000/auth/doximity/callback";
/// The bound the issue sets: cached bearer validation adds at most this much server CPU.
const BUDGET_US: f64 = 5.0;

#[derive(Clone, Copy, Debug)]
struct Args {
    requests: u64,
    warmup: u64,
    concurrency: usize,
    rounds: usize,
}

impl Args {
    fn parse() -> anyhow::Result<Self> {
        let mut args = Self {
            requests: 200_000,
            warmup: 20_000,
            concurrency: 32,
            rounds: 3,
        };
        const USAGE: &str = "usage: bearer [--quick] [--requests N] [--concurrency N] [--rounds N]";
        parse_args(USAGE, |arg, it| {
            match arg {
                "--quick" => {
                    args.requests = 2_000;
                    args.warmup = 500;
                    args.rounds = 1;
                }
                "--requests" => args.requests = positive(it, "--requests")?,
                "--concurrency" => {
                    args.concurrency = usize::try_from(positive(it, "--concurrency")?)?;
                }
                "--rounds" => args.rounds = usize::try_from(positive(it, "--rounds")?)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(args)
    }
}

/// `n` requests over `concurrency` keep-alive connections to `addr`; returns the wall time
/// and the server thread's CPU nanoseconds.
async fn phase(
    addr: SocketAddr,
    authorization: &HeaderValue,
    n: u64,
    concurrency: usize,
    tid: u32,
) -> anyhow::Result<(Duration, u64)> {
    let senders = connect(addr, concurrency).await?;
    let issued = Arc::new(AtomicU64::new(0));
    let host = HeaderValue::from_str(&addr.to_string())?;
    let cpu_before = thread_cpu_ns(tid)?;
    let start = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for mut sender in senders {
        let issued = issued.clone();
        let host = host.clone();
        let authorization = authorization.clone();
        workers.spawn(async move {
            while issued.fetch_add(1, Ordering::Relaxed) < n {
                let req = Request::get("/hello")
                    .header(HOST, host.clone())
                    .header(AUTHORIZATION, authorization.clone())
                    .body(Empty::<Bytes>::new())?;
                sender.ready().await?;
                let res = sender.send_request(req).await?;
                ensure!(res.status() == StatusCode::OK, "status {}", res.status());
                ensure!(!res.headers().contains_key(SET_COOKIE), "a cookie was set");
                let body = res.into_body().collect().await?.to_bytes();
                ensure!(body.as_ref() == b"hello", "unexpected body {body:?}");
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = workers.join_next().await {
        r.context("a load worker panicked")??;
    }
    let wall = start.elapsed();
    let cpu = thread_cpu_ns(tid)?.saturating_sub(cpu_before);
    Ok((wall, cpu))
}

/// Signs in at the (auto-approving) mock and returns the access token.
async fn access_token(mock: &MockProvider, config: Config) -> anyhow::Result<String> {
    let client = Client::discover(config).await?;
    let browser = reqwest::Client::builder()
        .use_preconfigured_tls(mock.rustls_client_config())
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let (url, pending) = client.authorize_url(&AuthorizeRequest::new()).await?;
    let res = browser.get(url).send().await?;
    let location: url::Url = res
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .ok_or_else(|| anyhow!("the mock did not redirect back"))?
        .parse()?;
    let tokens = client
        .complete_login(&pending, location.query().unwrap_or(""))
        .await?;
    Ok(tokens.access_token.secret().clone())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse()?;
    let (mock, config) = start_mock(REDIRECT).await?;
    let token = access_token(&mock, config.clone()).await?;
    let authorization = HeaderValue::from_str(&format!("Bearer {token}"))?;
    let bare_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let bearer_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let server_config = config.clone();
    let server = Server::start(bare_listener, bearer_listener, move || async move {
        let client = Client::discover(server_config)
            .await
            .context("discovering the mock provider")?;
        Ok(DoximityAuth::new(client)
            .with_cookie_key(Key::generate())
            .with_bearer(BearerConfig::new()))
    })
    .await?;
    let before = mock.requests(Endpoint::Userinfo);

    println!(
        "bearer: {} requests per phase, {} connections, {} rounds, {} cores",
        args.requests,
        args.concurrency,
        args.rounds,
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get)
    );
    // Warm-up (fills the cache: the one userinfo call of the run).
    phase(
        server.layer,
        &authorization,
        args.warmup,
        args.concurrency,
        server.tid,
    )
    .await?;
    phase(
        server.bare,
        &authorization,
        args.warmup,
        args.concurrency,
        server.tid,
    )
    .await?;

    let (mut bare, mut bearer) = ((0u64, 0u64), (0u64, 0u64));
    println!("| round | server | requests/s | server CPU µs/request |");
    println!("|---|---|---|---|");
    for round in 1..=args.rounds {
        for (name, addr, total) in [
            ("bare", server.bare, &mut bare),
            ("bearer", server.layer, &mut bearer),
        ] {
            let (wall, cpu) = phase(
                addr,
                &authorization,
                args.requests,
                args.concurrency,
                server.tid,
            )
            .await?;
            total.0 += cpu;
            total.1 += args.requests;
            println!(
                "| {round} | {name} | {:.0} | {:.2} |",
                args.requests as f64 / wall.as_secs_f64(),
                cpu as f64 / 1_000.0 / args.requests as f64,
            );
        }
    }
    let userinfo = mock.requests(Endpoint::Userinfo) - before;
    server.stop()?;
    let per = |(cpu, n): (u64, u64)| cpu as f64 / 1_000.0 / n as f64;
    let added = per(bearer) - per(bare);
    println!(
        "\nbare {:.2} µs, bearer {:.2} µs: cached bearer validation adds {added:.2} µs of server \
         CPU per call (budget {BUDGET_US} µs); userinfo calls during the run: {userinfo}",
        per(bare),
        per(bearer)
    );
    ensure!(
        userinfo == 1,
        "expected exactly one userinfo call, saw {userinfo}"
    );
    ensure!(
        added <= BUDGET_US,
        "over budget: {added:.2} µs > {BUDGET_US} µs"
    );
    Ok(())
}
