//! Device sign-in (RFC 8628) from a terminal, the library behind `cargo run -p device-cli`.
//!
//! With `DOXIMITY_CLIENT_ID` unset it starts the bundled mock provider in-process, so it works
//! on a fresh clone with no account; with it set it reads the configuration contract's
//! variables ([`doximity::Config::from_env`]) and talks to that provider.
//!
//! It prints the verification URL, the user code and a QR code of the complete verification
//! URL, waits (with a spinner on a terminal) while the person approves on another device,
//! prints the verified identity, and, with `--userinfo`, the signed profile.
//!
//! A stock browser does not trust the embedded mock's CA, so for a headless demo the mock can
//! approve by itself as a named demo clinician after a short moment: `--auto-approve[=NAME]`
//! or `DEVICE_CLI_AUTO_APPROVE=NAME` (`1` for the first clinician), with
//! `--approve-after=SECS` or `DEVICE_CLI_APPROVE_AFTER` (default 3 seconds).

use std::io::{IsTerminal as _, Write};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use doximity::secret::ClientSecret;
use doximity::{Client, Config, DeviceAuthorization, DeviceError, Error, TokenSet, UserInfo};
use doximity_mock::{Clinician, MockProvider};
use qrcode::render::unicode::Dense1x2;

/// Where configuration comes from: the process environment, or a test's map.
pub type Env = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The process environment, with empty values treated as unset.
pub fn process_env() -> Env {
    Arc::new(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
}

/// The command line's usage text.
pub const USAGE: &str = "\
device-cli: sign in with Doximity where there is no browser (RFC 8628 device authorization)

USAGE: device-cli [--userinfo] [--auto-approve[=NAME]] [--approve-after=SECS] [--no-qr]

  --userinfo             also ask for profile:read:basic and print the signed userinfo
  --auto-approve[=NAME]  embedded mock only: approve as the demo clinician NAME (a name, an
                         email or a sub; default the first) without a browser
                         (env DEVICE_CLI_AUTO_APPROVE=NAME, or 1)
  --approve-after=SECS   how long the mock waits before approving (default 3;
                         env DEVICE_CLI_APPROVE_AFTER)
  --no-qr                do not draw the QR code

With DOXIMITY_CLIENT_ID unset, the bundled mock provider runs in-process. With it set, the
provider comes from DOXIMITY_ISSUER, DOXIMITY_CLIENT_SECRET, DOXIMITY_SCOPES and
DOXIMITY_CA_CERT, as for every app in this workspace.
";

/// What the command was asked to do.
#[derive(Clone, Debug)]
pub struct Options {
    /// `--help`: print [`USAGE`] and stop.
    pub help: bool,
    /// Ask for `profile:read:basic` too and print the signed userinfo after sign-in.
    pub userinfo: bool,
    /// Embedded mock only: approve as this demo clinician (name, email or sub).
    pub auto_approve: Option<String>,
    /// How long the embedded mock waits before approving.
    pub approve_after: Duration,
    /// Draw the QR code.
    pub qr: bool,
    /// Animate a spinner on standard error while waiting (only when it is a terminal).
    pub spinner: bool,
    /// The polling interval the embedded mock asks for (its default, five seconds, if `None`).
    pub mock_interval: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            help: false,
            userinfo: false,
            auto_approve: None,
            approve_after: Duration::from_secs(3),
            qr: true,
            spinner: true,
            mock_interval: None,
        }
    }
}

impl Options {
    /// Reads the arguments (without the program name) and the `DEVICE_CLI_*` variables.
    ///
    /// ```
    /// let env: device_cli::Env = std::sync::Arc::new(|_| None);
    /// let args = ["--userinfo", "--auto-approve=Okafor", "--approve-after=1"];
    /// let o = device_cli::Options::from_args(args.map(String::from), &env).unwrap();
    /// assert!(o.userinfo);
    /// assert_eq!(o.auto_approve.as_deref(), Some("Okafor"));
    /// assert_eq!(o.approve_after.as_secs(), 1);
    /// ```
    ///
    /// # Errors
    ///
    /// An unknown argument or a malformed number.
    pub fn from_args(args: impl IntoIterator<Item = String>, env: &Env) -> anyhow::Result<Self> {
        let mut o = Self::default();
        let secs = |v: &str, name: &str| -> anyhow::Result<Duration> {
            Ok(Duration::from_secs(v.trim().parse().with_context(
                || format!("{name} must be a number of seconds"),
            )?))
        };
        if let Some(name) = env("DEVICE_CLI_AUTO_APPROVE") {
            o.auto_approve = Some(name);
        }
        if let Some(v) = env("DEVICE_CLI_APPROVE_AFTER") {
            o.approve_after = secs(&v, "DEVICE_CLI_APPROVE_AFTER")?;
        }
        for arg in args {
            match arg.split_once('=') {
                None if arg == "-h" || arg == "--help" => o.help = true,
                None if arg == "--userinfo" => o.userinfo = true,
                None if arg == "--no-qr" => o.qr = false,
                None if arg == "--auto-approve" => o.auto_approve = Some("1".to_owned()),
                Some(("--auto-approve", name)) => o.auto_approve = Some(name.to_owned()),
                Some(("--approve-after", v)) => o.approve_after = secs(v, "--approve-after")?,
                _ => bail!("unknown argument `{arg}`; try --help"),
            }
        }
        Ok(o)
    }
}

/// What a successful run produced.
#[derive(Debug)]
pub struct Outcome {
    /// The verified tokens.
    pub tokens: TokenSet,
    /// The signed userinfo, with `--userinfo`.
    pub userinfo: Option<UserInfo>,
}

/// The demo clinician `wanted` names: `1`, `true` or `yes` for the first; else a `sub`, an
/// email, or part of a name (case-insensitive).
pub fn find_clinician(clinicians: &[Clinician], wanted: &str) -> Option<Clinician> {
    let wanted = wanted.trim();
    if ["1", "true", "yes"].contains(&wanted.to_ascii_lowercase().as_str()) {
        return clinicians.first().cloned();
    }
    let lower = wanted.to_lowercase();
    clinicians
        .iter()
        .find(|c| {
            c.sub == wanted
                || c.email.eq_ignore_ascii_case(wanted)
                || c.name.to_lowercase().contains(&lower)
        })
        .cloned()
}

/// The QR code of `text`, drawn with half-block characters for a dark terminal (light modules
/// as blocks, dark ones as the background), with its quiet zone.
///
/// # Errors
///
/// When `text` is too long for a QR code.
pub fn qr(text: &str) -> anyhow::Result<String> {
    let code = qrcode::QrCode::new(text.as_bytes()).context("drawing the QR code")?;
    Ok(code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

/// Runs the whole device sign-in, writing what the person must read to `out`.
///
/// # Errors
///
/// Configuration and discovery failures, a provider without device sign-in, a denial, expiry,
/// and any provider error, each with a sentence saying what to do.
pub async fn run(env: &Env, options: &Options, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let (client, mock) = if env("DOXIMITY_CLIENT_ID").is_some() {
        if options.auto_approve.is_some() {
            bail!("--auto-approve works only with the embedded mock (DOXIMITY_CLIENT_ID unset)");
        }
        let config = {
            let env = env.clone();
            Config::from_lookup(move |name| env(name)).context("reading the configuration")?
        };
        let client = Client::discover(config)
            .await
            .context("discovering the provider")?;
        (client, None)
    } else {
        let mock = start_mock(options).await?;
        let demo = mock.client();
        let config = Config::new(
            demo.client_id.clone(),
            ClientSecret::new(demo.client_secret.clone()),
            doximity::config::DEFAULT_REDIRECT_URI.parse()?,
        )
        .with_issuer(&mock.issuer())?
        .with_ca_cert_pem(mock.ca_pem().to_vec());
        let client = Client::discover(config)
            .await
            .context("discovering the embedded mock provider")?;
        (client, Some(mock))
    };

    let mut scopes = client.config().scopes().clone();
    if options.userinfo {
        scopes.insert("profile:read:basic")?;
    }
    let mut device = client
        .start_device_authorization(Some(&scopes))
        .await
        .map_err(explain)?;
    show(out, &device, mock.as_ref(), options)?;

    let expires_at = device.expires_at;
    let spinner = options.spinner && std::io::stderr().is_terminal();
    let waited = client
        .wait_for_device_token_with(&mut device, |interval| wait(interval, expires_at, spinner))
        .await;
    if spinner {
        let mut err = std::io::stderr();
        let _ = write!(err, "\r\x1b[2K");
        let _ = err.flush();
    }
    let tokens = waited.map_err(explain)?;

    let claims = &tokens.claims;
    writeln!(out, "\nSigned in. The verified ID token says:")?;
    writeln!(out, "  subject     {}", claims.sub)?;
    writeln!(out, "  issuer      {}", claims.iss)?;
    if let Some(acr) = &claims.acr {
        writeln!(out, "  acr         {}", serde_json::to_string(acr)?)?;
    }
    writeln!(out, "  scopes      {}", tokens.scopes)?;
    if let Some(mock) = &mock
        && let Some(c) = mock.clinicians().into_iter().find(|c| c.sub == claims.sub)
    {
        writeln!(
            out,
            "  clinician   {}, {} (a demo clinician of the embedded mock)",
            c.name, c.credentials
        )?;
    }

    let userinfo = if options.userinfo {
        let me = client
            .userinfo(&tokens.access_token, &claims.sub)
            .await
            .context("calling userinfo")?;
        writeln!(out, "\nUserinfo (a signed JWT, verified):")?;
        for (label, value) in [
            ("name", &me.name),
            ("credentials", &me.credentials),
            ("specialty", &me.specialty),
        ] {
            if let Some(value) = value {
                writeln!(out, "  {label:<11} {value}")?;
            }
        }
        writeln!(out, "{}", serde_json::to_string_pretty(&me)?)?;
        Some(me)
    } else {
        None
    };
    Ok(Outcome { tokens, userinfo })
}

async fn start_mock(options: &Options) -> anyhow::Result<MockProvider> {
    let mock = MockProvider::builder()
        .start()
        .await
        .context("starting the embedded mock provider")?;
    if let Some(interval) = options.mock_interval {
        mock.set_device_interval(interval);
    }
    if let Some(wanted) = &options.auto_approve {
        let clinicians = mock.clinicians();
        let Some(clinician) = find_clinician(&clinicians, wanted) else {
            let names: Vec<&str> = clinicians.iter().map(|c| c.name.as_str()).collect();
            bail!(
                "no demo clinician matches `{wanted}`; pick one of: {}",
                names.join(", ")
            );
        };
        mock.set_device_auto_approve(Some(clinician.sub), options.approve_after);
    }
    Ok(mock)
}

fn show(
    out: &mut dyn Write,
    device: &DeviceAuthorization,
    mock: Option<&MockProvider>,
    options: &Options,
) -> anyhow::Result<()> {
    writeln!(out, "Sign in with Doximity on another device:\n")?;
    writeln!(
        out,
        "  1. On your phone or computer, open  {}",
        device.verification_uri
    )?;
    writeln!(
        out,
        "  2. Enter the code                    {}\n",
        device.user_code.secret()
    )?;
    if options.qr {
        writeln!(
            out,
            "Or scan this QR code; it opens the page with the code filled in:\n"
        )?;
        writeln!(out, "{}", qr(device.url_to_show().as_str())?)?;
        writeln!(out, "  {}\n", device.url_to_show())?;
    }
    if let Some(mock) = mock {
        match &options.auto_approve {
            Some(_) => writeln!(
                out,
                "The embedded mock provider approves by itself in {} s (auto-approve).",
                options.approve_after.as_secs()
            )?,
            None => writeln!(
                out,
                "The embedded mock provider serves that page over HTTPS with its own CA, {}:\n\
                 a browser warns until you trust it. For a demo without a browser, run with \
                 --auto-approve.",
                mock.ca_path().display()
            )?,
        }
    }
    let minutes = (device.expires_at - epoch_secs()).max(0) / 60;
    writeln!(
        out,
        "Waiting for approval (the code expires in {minutes} minutes)..."
    )?;
    out.flush()?;
    Ok(())
}

/// A readable error for the ways a device sign-in ends without tokens.
fn explain(error: Error) -> anyhow::Error {
    let hint = match &error {
        Error::EndpointNotAdvertised("device_authorization_endpoint") => {
            "this provider does not offer device sign-in: its metadata has no \
             device_authorization_endpoint"
        }
        Error::Device(DeviceError::AccessDenied { .. }) => "the sign-in was denied",
        Error::Device(DeviceError::Expired) => "the code expired before it was approved; run again",
        _ => "device sign-in failed",
    };
    anyhow::Error::new(error).context(hint)
}

fn epoch_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Sleeps `interval`; on a terminal, animates a spinner with the time left meanwhile.
async fn wait(interval: Duration, expires_at: i64, spinner: bool) {
    if !spinner {
        tokio::time::sleep(interval).await;
        return;
    }
    const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
    let end = Instant::now() + interval;
    let mut err = std::io::stderr();
    for frame in FRAMES.iter().cycle() {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let remaining = (expires_at - epoch_secs()).max(0);
        let _ = write!(
            err,
            "\r{frame} Waiting for approval... {}:{:02} left (polling every {} s) ",
            remaining / 60,
            remaining % 60,
            interval.as_secs()
        );
        let _ = err.flush();
        tokio::time::sleep(left.min(Duration::from_millis(100))).await;
    }
}
