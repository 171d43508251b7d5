//! A real Redis for the tests: `REDIS_URL` when set, otherwise a `redis-server` child on a
//! free port in a temporary directory, killed on drop. With `CI=true` a missing Redis fails
//! the test; locally it is skipped with a loud message.

#![allow(dead_code, unreachable_pub)] // Each test file uses a part of it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to answer its first `PING`.
const READY_WITHIN: Duration = Duration::from_secs(20);

/// A Redis server for one test (or borrowed from `REDIS_URL`).
pub struct RedisServer {
    url: String,
    child: Option<Child>,
    port: u16,
    dir: Option<tempfile::TempDir>,
    persistent: bool,
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Skips (locally) or fails (CI) a test that has no Redis.
fn unavailable(why: &str) -> Option<RedisServer> {
    assert!(
        !in_ci(),
        "CI=true and no Redis: {why}. Install redis-server or set REDIS_URL."
    );
    // Straight to the process's stderr: `eprintln!` is captured, and hidden for a test that
    // passes.
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!(
            "\n*** SKIPPED: no Redis ({why}). Install redis-server or set REDIS_URL to run the \
             Redis tests. ***\n"
        )
        .as_bytes(),
    );
    None
}

impl RedisServer {
    /// `REDIS_URL` when set, else a fresh `redis-server` child; `None` (locally) when neither
    /// is available.
    pub async fn shared() -> Option<Self> {
        if let Ok(url) = std::env::var("REDIS_URL")
            && !url.trim().is_empty()
        {
            let mut server = Self {
                url,
                child: None,
                port: 0,
                dir: None,
                persistent: false,
            };
            if let Err(e) = server.wait_ready().await {
                return unavailable(&format!("REDIS_URL does not answer: {e}"));
            }
            return Some(server);
        }
        Self::spawn(false).await
    }

    /// Always a child of ours (a test that stops and restarts the server). `persistent`:
    /// an append-only file synced on every write, so a restart keeps the data.
    pub async fn spawn(persistent: bool) -> Option<Self> {
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => return unavailable(&format!("no temporary directory: {e}")),
        };
        let port = match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
            Ok(a) => a.port(),
            Err(e) => return unavailable(&format!("no free port: {e}")),
        };
        let mut server = Self {
            url: format!("redis://127.0.0.1:{port}/"),
            child: None,
            port,
            dir: Some(dir),
            persistent,
        };
        if let Err(e) = server.start().await {
            return unavailable(&e);
        }
        Some(server)
    }

    fn dir(&self) -> PathBuf {
        self.dir
            .as_ref()
            .map(|d| d.path().to_owned())
            .unwrap_or_default()
    }

    async fn start(&mut self) -> Result<(), String> {
        let mut cmd = Command::new("redis-server");
        cmd.arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(self.dir())
            .arg("--save")
            .arg("");
        if self.persistent {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start redis-server: {e}"))?;
        self.child = Some(child);
        self.wait_ready().await
    }

    /// Polls `PING` until the server answers (a deadline, not a fixed sleep).
    async fn wait_ready(&mut self) -> Result<(), String> {
        let client = redis::Client::open(self.url.as_str()).map_err(|e| e.to_string())?;
        let start = Instant::now();
        let mut last = String::new();
        while start.elapsed() < READY_WITHIN {
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!("redis-server exited: {status}"));
            }
            match client.get_multiplexed_async_connection().await {
                Ok(mut c) => match redis::cmd("PING").query_async::<String>(&mut c).await {
                    Ok(pong) if pong == "PONG" => return Ok(()),
                    Ok(other) => last = other,
                    Err(e) => last = e.to_string(),
                },
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Err(format!("no PONG within {READY_WITHIN:?}: {last}"))
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Kills the server (like a crash) and waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and directory, and waits for `PING`.
    pub async fn restart(&mut self) {
        assert!(self.dir.is_some(), "only a server of ours can be restarted");
        self.stop();
        self.start().await.expect("redis-server restarts");
    }

    /// A plain connection for the test to look at the data.
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url.as_str())
            .expect("a valid URL")
            .get_multiplexed_async_connection()
            .await
            .expect("Redis answers")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
