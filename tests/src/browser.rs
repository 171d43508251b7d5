//! A real browser for the end-to-end tests: headless Chromium driven through chromedriver with
//! `fantoccini`.
//!
//! [`Chrome::stock`] is a browser nobody configured: a fresh profile under a temporary `HOME`,
//! no CA installed, no certificate flag. [`Chrome::start`] trusts test CAs (the TLS front's)
//! the way a person would trust them: added with `certutil` to a throwaway NSS database under a
//! temporary `HOME`, which Chromium reads. No certificate check is ever turned off (no
//! `--ignore-certificate-errors`, no SPKI allow-list, no `acceptInsecureCerts`).
//!
//! Needs the Debian packages `chromium`, `chromium-driver` and (for [`Chrome::start`])
//! `libnss3-tools`. When one is missing, the test fails under `CI=true` and otherwise skips
//! with a loud message. `CHROMIUM` and `CHROMEDRIVER` override where the binaries are looked
//! for.

use std::future::Future;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

/// How long any wait in these tests may take before it fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// One browser at a time: the machine has two cores, and a Chromium per test would starve them.
static ONE_AT_A_TIME: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// Whether this run is CI (`CI=true`), where the browser tests must run, not skip.
pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// The executables the browser tests need.
#[derive(Debug)]
struct Tools {
    chromium: PathBuf,
    chromedriver: PathBuf,
    certutil: Option<PathBuf>,
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn find_tools(need_certutil: bool) -> Result<Tools, String> {
    let from_env = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_file())
    };
    let chromium = from_env("CHROMIUM")
        .or_else(|| which("chromium"))
        .or_else(|| which("chromium-browser"))
        .or_else(|| which("google-chrome"));
    let chromedriver = from_env("CHROMEDRIVER").or_else(|| which("chromedriver"));
    let certutil = which("certutil");
    let missing: Vec<&str> = [
        ("chromium", chromium.is_none()),
        ("chromedriver (chromium-driver)", chromedriver.is_none()),
        (
            "certutil (libnss3-tools)",
            need_certutil && certutil.is_none(),
        ),
    ]
    .into_iter()
    .filter_map(|(name, absent)| absent.then_some(name))
    .collect();
    if need_certutil && certutil.is_none() {
        return Err(missing.join(", "));
    }
    match (chromium, chromedriver) {
        (Some(chromium), Some(chromedriver)) => Ok(Tools {
            chromium,
            chromedriver,
            certutil,
        }),
        _ => Err(missing.join(", ")),
    }
}

/// A headless Chromium session whose fresh profile trusts the given CAs.
pub struct Chrome {
    /// The `WebDriver` client.
    pub client: Client,
    driver: Child,
    home: tempfile::TempDir,
    _permit: tokio::sync::SemaphorePermit<'static>,
}

impl Chrome {
    /// Starts chromedriver on a free port and a headless Chromium whose NSS database trusts
    /// exactly the CAs in `ca_pems`, besides the system's.
    ///
    /// `None` (after printing why) when the tools are missing outside CI.
    ///
    /// # Panics
    ///
    /// When the tools are missing under `CI=true`, or the browser cannot be started.
    pub async fn start(ca_pems: &[&[u8]]) -> Option<Chrome> {
        Self::launch(Some(ca_pems)).await
    }

    /// A browser nobody configured: a fresh profile, no CA installed (not even an NSS
    /// database), no certificate flag. What a newcomer has.
    ///
    /// `None` (after printing why) when the tools are missing outside CI.
    ///
    /// # Panics
    ///
    /// When the tools are missing under `CI=true`, or the browser cannot be started.
    pub async fn stock() -> Option<Chrome> {
        Self::launch(None).await
    }

    async fn launch(ca_pems: Option<&[&[u8]]>) -> Option<Chrome> {
        let tools = match find_tools(ca_pems.is_some()) {
            Ok(tools) => tools,
            Err(missing) if is_ci() => panic!(
                "CI=true but the browser tests cannot run: missing {missing}. \
                 Install the Debian packages chromium, chromium-driver and libnss3-tools \
                 (.ci/run's APT_PACKAGES does)."
            ),
            Err(missing) => {
                // Straight to the process's stderr, not `eprintln!`, which the test harness
                // captures and hides for a passing test.
                let _ = std::io::Write::write_all(
                    &mut std::io::stderr(),
                    format!(
                        "\n**************** SKIPPED: browser test ****************\n\
                         missing {missing}; install chromium, chromium-driver and \
                         libnss3-tools to run it (CI=true makes this a failure)\n\
                         *******************************************************\n"
                    )
                    .as_bytes(),
                );
                return None;
            }
        };
        let permit = ONE_AT_A_TIME
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let home = tempfile::tempdir().expect("temp dir");
        if let (Some(ca_pems), Some(certutil)) = (ca_pems, &tools.certutil) {
            trust_cas(certutil, home.path(), ca_pems);
        }
        let (mut driver, webdriver_url) = spawn_driver(&tools.chromedriver, home.path());
        let profile = home.path().join("profile");
        let serde_json::Value::Object(capabilities) = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": tools.chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--window-size=1000,800",
                    "--lang=en-US",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        }) else {
            unreachable!("a JSON object literal")
        };
        let connected =
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(capabilities)
                .connect(&webdriver_url)
                .await;
        let client = match connected {
            Ok(client) => client,
            Err(e) => {
                kill_group(&mut driver);
                let log = std::fs::read_to_string(home.path().join("chromedriver.log"))
                    .unwrap_or_default();
                panic!("cannot start Chromium through chromedriver: {e}\n{log}");
            }
        };
        Some(Chrome {
            client,
            driver,
            home,
            _permit: permit,
        })
    }

    /// Navigates and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.client.current_url().await.expect("current url").into()
    }

    /// The page's visible text.
    pub async fn text(&self) -> String {
        self.client
            .find(Locator::Css("body"))
            .await
            .expect("body")
            .text()
            .await
            .expect("text")
    }

    /// Polls `condition` every 100 ms until it holds, failing after [`DEADLINE`] with `what`
    /// and the page's URL.
    pub async fn wait_until<F, Fut>(&self, what: &str, mut condition: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if condition().await {
                return;
            }
            if Instant::now() > deadline {
                let url = self.client.current_url().await.map(String::from);
                panic!("timed out after {DEADLINE:?} waiting for {what} (on {url:?})");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the current URL starts with `prefix`.
    pub async fn wait_for_url(&self, prefix: &str) {
        self.wait_until(&format!("a URL starting with {prefix}"), || async {
            self.client
                .current_url()
                .await
                .is_ok_and(|u| u.as_str().starts_with(prefix))
        })
        .await;
    }

    /// Waits for an element matching the CSS selector.
    pub async fn wait_for(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(DEADLINE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} within {DEADLINE:?}: {e}"))
    }

    /// Whether the page has an element matching the CSS selector now.
    pub async fn has(&self, css: &str) -> bool {
        self.client.find(Locator::Css(css)).await.is_ok()
    }

    /// Waits for an element matching the CSS selector and clicks it.
    pub async fn click(&self, css: &str) {
        self.wait_for(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// The value of an attribute of `<html>` (`None` when absent or between pages).
    pub async fn root_attribute(&self, name: &str) -> Option<String> {
        self.client
            .find(Locator::Css("html"))
            .await
            .ok()?
            .attr(name)
            .await
            .ok()
            .flatten()
    }

    /// The element's computed accessible role and name (`WebDriver` "Get Computed Role" and
    /// "Get Computed Label"): what assistive technology is told.
    pub async fn accessibility(&self, element: &Element) -> (String, String) {
        let id = element.element_id().to_string();
        let ask = |what: &'static str| AccessibilityQuery {
            element: id.clone(),
            what,
        };
        let text = |v: Result<serde_json::Value, fantoccini::error::CmdError>| match v {
            Ok(serde_json::Value::String(s)) => s,
            other => panic!("computed accessibility: {other:?}"),
        };
        let role = text(self.client.issue_cmd(ask("computedrole")).await);
        let label = text(self.client.issue_cmd(ask("computedlabel")).await);
        (role, label)
    }

    /// Saves a PNG of the viewport as `target/screenshots/{name}.png` and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        self.screenshot_into(&screenshot_dir(), name).await
    }

    /// Saves a PNG of the viewport as `{dir}/{name}.png` and returns its path.
    pub async fn screenshot_into(&self, dir: &Path, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::create_dir_all(dir).expect("screenshot dir");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// Resizes the window so that the page's viewport is `width` × `height` CSS pixels (as a
    /// phone's, e.g. 375 wide), and returns the viewport width the page then reports.
    pub async fn set_viewport(&self, width: u32, height: u32) -> u64 {
        let inner = |c: &Client| {
            let c = c.clone();
            async move {
                c.execute("return [window.innerWidth, window.innerHeight]", vec![])
                    .await
                    .expect("viewport")
            }
        };
        self.client
            .set_window_size(width, height)
            .await
            .expect("set window size");
        // The window has borders in some modes: grow it by the difference once.
        let measured = inner(&self.client).await;
        let w = measured[0].as_u64().unwrap_or(u64::from(width));
        let h = measured[1].as_u64().unwrap_or(u64::from(height));
        let (dw, dh) = (
            u64::from(width).saturating_sub(w),
            u64::from(height).saturating_sub(h),
        );
        if dw > 0 || dh > 0 {
            self.client
                .set_window_size(
                    width + u32::try_from(dw).unwrap_or(0),
                    height + u32::try_from(dh).unwrap_or(0),
                )
                .await
                .expect("set window size");
        }
        inner(&self.client).await[0].as_u64().unwrap_or_default()
    }

    /// Whether the page is wider than its viewport (a horizontal scroll bar).
    pub async fn overflows_horizontally(&self) -> bool {
        self.client
            .execute(
                "return document.documentElement.scrollWidth > window.innerWidth",
                vec![],
            )
            .await
            .expect("scroll width")
            .as_bool()
            .unwrap_or(true)
    }

    /// Ends the browser session, then chromedriver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        kill_group(&mut self.driver);
    }

    /// The temporary `HOME` (NSS database, profile, chromedriver log).
    pub fn home(&self) -> &Path {
        self.home.path()
    }
}

impl Drop for Chrome {
    fn drop(&mut self) {
        kill_group(&mut self.driver);
    }
}

/// Where screenshots go: `$CARGO_TARGET_DIR/screenshots`, else the workspace's
/// `target/screenshots`.
pub fn screenshot_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
            PathBuf::from,
        )
        .join("screenshots")
}

#[derive(Debug)]
struct AccessibilityQuery {
    element: String,
    what: &'static str,
}

impl WebDriverCompatibleCommand for AccessibilityQuery {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/element/{}/{}",
            session_id.unwrap_or_default(),
            self.element,
            self.what
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::GET, None)
    }
}

/// A fresh NSS database in `home/.pki/nssdb` (where Chromium on Linux looks) that trusts each
/// of `ca_pems` as a CA for TLS servers.
fn trust_cas(certutil: &Path, home: &Path, ca_pems: &[&[u8]]) {
    let db = home.join(".pki/nssdb");
    std::fs::create_dir_all(&db).expect("nssdb dir");
    let db_arg = format!("sql:{}", db.display());
    let run = |args: &[&str]| {
        let out = Command::new(certutil)
            .args(args)
            .output()
            .expect("run certutil");
        assert!(
            out.status.success(),
            "certutil {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["-d", &db_arg, "-N", "--empty-password"]);
    for (i, pem) in ca_pems.iter().enumerate() {
        let ca = home.join(format!("ca-{i}.pem"));
        std::fs::write(&ca, pem).expect("write CA");
        let nickname = format!("e2e-ca-{i}");
        let path = ca.display().to_string();
        run(&[
            "-d", &db_arg, "-A", "-t", "C,,", "-n", &nickname, "-i", &path,
        ]);
    }
}

/// Starts chromedriver on a free port (chromedriver has no `--port=0`: bind `127.0.0.1:0`, read
/// the port, release it, and retry on a conflict) with `HOME` set to `home`. Returns the child
/// and the `WebDriver` URL once it accepts connections.
fn spawn_driver(chromedriver: &Path, home: &Path) -> (Child, String) {
    let mut last_error = String::new();
    for _ in 0..5 {
        let port = {
            let probe = TcpListener::bind("127.0.0.1:0").expect("bind a probe");
            probe.local_addr().expect("probe addr").port()
        };
        let mut command = Command::new(chromedriver);
        command
            .arg(format!("--port={port}"))
            .arg(format!(
                "--log-path={}",
                home.join("chromedriver.log").display()
            ))
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_CACHE_HOME", home.join(".cache"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own process group, so that the Chromium it launches goes with it.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command.spawn().expect("spawn chromedriver");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                last_error = format!("chromedriver on port {port} exited: {status}");
                break;
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return (child, format!("http://{addr}/"));
            }
            if Instant::now() > deadline {
                kill_group(&mut child);
                last_error = format!("chromedriver did not listen on {addr} within 20 s");
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("cannot start chromedriver: {last_error}");
}

/// Ends the process group of a chromedriver we started (it and the Chromium it launched), by
/// its id, then reaps it.
fn kill_group(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", child.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = child.kill();
    }
    let _ = child.wait();
}
