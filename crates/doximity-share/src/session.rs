//! The session check: OpenID Connect Session Management's hidden `check_session_iframe` and the
//! script that polls it (the "Session Management" section of `001_*.txt`).

use std::fmt::{self, Display};
use std::time::Duration;

use crate::escape::{html, js_string};
use crate::signin::DEFAULT_LOGIN_PATH;

/// How often the script asks by default: every 5 seconds.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// The shortest interval accepted (shorter ones are raised to it).
pub const MIN_INTERVAL: Duration = Duration::from_millis(500);

/// By default [`OnChanged::Recheck`] navigates at most once every 5 minutes per tab.
pub const DEFAULT_RECHECK_AT_MOST_EVERY: Duration = Duration::from_secs(300);

/// The provider URL given to [`SessionCheck::new`] has no usable origin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidProviderUrl {
    /// Not an absolute `https://` or `http://` URL.
    #[error("check_session_iframe must be an absolute http(s) URL, got {url:?}")]
    NotHttp {
        /// The URL given.
        url: String,
    },
    /// No host after the scheme, or a host with characters an origin cannot have.
    #[error("check_session_iframe has no valid host: {url:?}")]
    BadHost {
        /// The URL given.
        url: String,
    },
    /// User name or password in the URL (`https://user@host/`).
    #[error("check_session_iframe must not carry credentials: {url:?}")]
    Credentials {
        /// The URL given.
        url: String,
    },
}

/// What the page does when the provider answers `changed` (the person's Doximity session
/// ended or changed).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnChanged {
    /// Navigate to `{login_path}?prompt=none&return_to={current path and query}`: a re-check of
    /// the session with the provider.
    ///
    /// With `tower-doximity`'s login route, `prompt` is not forwarded (the route reads only
    /// `return_to` and `scope`): it starts a normal sign-in, so the provider signs the person
    /// back in without a page if their Doximity session is alive, and shows its sign-in page
    /// if it is not. The local session is replaced only by a successful sign-in.
    ///
    /// It navigates at most once per [`SessionCheck::with_recheck_at_most_every`] window per
    /// tab (remembered in `sessionStorage`; without `sessionStorage` it never navigates). That
    /// keeps a browser that withholds the provider's cookie from the iframe (third-party
    /// cookies blocked: the check then always answers `changed`) from bouncing between the page
    /// and the provider. `<html data-doximity-recheck>` says `started` or `skipped`.
    Recheck {
        /// The layer's login route.
        login_path: String,
    },
    /// Navigate to this URL (for example the app's logout route).
    Navigate(String),
    /// Only report: set the state attribute and fire the `doximity-session` event, and let the
    /// page decide.
    Report,
}

impl Default for OnChanged {
    /// [`OnChanged::Recheck`] through [`DEFAULT_LOGIN_PATH`].
    fn default() -> Self {
        OnChanged::Recheck {
            login_path: DEFAULT_LOGIN_PATH.to_owned(),
        }
    }
}

/// The session check: a hidden `<iframe>` on the provider's `check_session_iframe` and a
/// script that, every [interval](SessionCheck::with_interval), posts
/// `client_id + " " + session_state` to the provider's **origin** and handles the answer.
///
/// The script accepts answers only from that origin and that frame (`event.origin` and
/// `event.source` are both checked). Each answer is exposed as
/// `<html data-doximity-session="unchanged|changed|error">` and as a `doximity-session`
/// `CustomEvent` on `document` (its `detail` is the answer). Polling stops at the first
/// `changed` or `error`; on `changed` the [configured action](OnChanged) runs.
///
/// Render it only on pages of a signed-in person, with the `session_state` the callback
/// received for that session. Doximity: "The Javascript poller must be from the same origin as
/// the `redirect_uri` used when authenticating […] Otherwise, Doximity will always return a
/// "changed" response."
///
/// # Third-party cookies
///
/// The iframe is the provider's page inside yours: when your app and the provider are on
/// different sites (always, in production), the provider's session cookie is a third-party
/// cookie there. A browser that blocks third-party cookies (Safari, Firefox's strict mode,
/// Chromium as this project's browser tests run it) withholds it, and the check answers
/// `changed` although nothing changed. Treat `changed` as a hint to re-check with a top-level
/// navigation, which first-party cookies survive: that is the default action, rate-limited so
/// it cannot loop. `docs/html-helpers.md` has the details.
///
/// ```
/// use doximity_share::SessionCheck;
///
/// let check = SessionCheck::new(
///     "https://auth.doximity.com/oauth/session_state",
///     "my-client-id",
///     "3b6f…e2.salt",
/// )?
/// .with_nonce("r4nd");
/// let html = check.to_string();
/// assert!(html.starts_with(
///     "<iframe id=\"doximity-op\" src=\"https://auth.doximity.com/oauth/session_state\" \
///      title=\"Doximity session check\" hidden tabindex=\"-1\" aria-hidden=\"true\"></iframe>\n\
///      <script nonce=\"r4nd\">"
/// ));
/// assert!(html.contains(r#""origin":"https://auth.doximity.com""#));
/// assert_eq!(check.origin(), "https://auth.doximity.com");
/// # Ok::<(), doximity_share::InvalidProviderUrl>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct SessionCheck {
    frame_src: String,
    origin: String,
    client_id: String,
    session_state: String,
    interval: Duration,
    on_changed: OnChanged,
    nonce: Option<String>,
    frame_id: String,
    recheck_every: Duration,
}

impl SessionCheck {
    /// A session check against `check_session_iframe` (from the provider's discovery
    /// document) for `client_id` and the session's `session_state`.
    ///
    /// # Errors
    ///
    /// [`InvalidProviderUrl`] when `check_session_iframe` is not an absolute `http(s)` URL
    /// with a host: the script needs the provider's exact origin to address its messages.
    pub fn new(
        check_session_iframe: impl Into<String>,
        client_id: impl Into<String>,
        session_state: impl Into<String>,
    ) -> Result<Self, InvalidProviderUrl> {
        let frame_src = check_session_iframe.into();
        let origin = origin_of(&frame_src)?;
        Ok(Self {
            frame_src,
            origin,
            client_id: client_id.into(),
            session_state: session_state.into(),
            interval: DEFAULT_INTERVAL,
            on_changed: OnChanged::default(),
            nonce: None,
            frame_id: "doximity-op".to_owned(),
            recheck_every: DEFAULT_RECHECK_AT_MOST_EVERY,
        })
    }

    /// How often to ask ([`DEFAULT_INTERVAL`]; at least [`MIN_INTERVAL`]).
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval.max(MIN_INTERVAL);
        self
    }

    /// What to do on `changed` ([`OnChanged::Recheck`] through the default login route by
    /// default).
    pub fn with_on_changed(mut self, action: OnChanged) -> Self {
        self.on_changed = action;
        self
    }

    /// A CSP nonce for the script (`<script nonce="…">`), for a `script-src 'nonce-…'` policy.
    /// The policy must also allow the provider's origin in `frame-src`.
    pub fn with_nonce(mut self, nonce: impl Into<String>) -> Self {
        self.nonce = Some(nonce.into());
        self
    }

    /// How often [`OnChanged::Recheck`] may navigate, per tab
    /// ([`DEFAULT_RECHECK_AT_MOST_EVERY`]).
    pub fn with_recheck_at_most_every(mut self, window: Duration) -> Self {
        self.recheck_every = window;
        self
    }

    /// The iframe's `id` (`doximity-op` by default), if the page already uses that id.
    pub fn with_frame_id(mut self, id: impl Into<String>) -> Self {
        self.frame_id = id.into();
        self
    }

    /// The provider's origin the messages are addressed to and accepted from
    /// (`scheme://host[:port]`, lower-case, default port omitted).
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

/// The serialised origin of an absolute http(s) URL, as a browser writes `event.origin`.
fn origin_of(url: &str) -> Result<String, InvalidProviderUrl> {
    let lower = url
        .get(..8)
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let (scheme, rest, default_port) = if lower.starts_with("https://") {
        ("https", &url[8..], 443)
    } else if lower.starts_with("http://") {
        ("http", &url[7..], 80)
    } else {
        return Err(InvalidProviderUrl::NotHttp {
            url: url.to_owned(),
        });
    };
    let authority = rest.split(['/', '?', '#', '\\']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(InvalidProviderUrl::Credentials {
            url: url.to_owned(),
        });
    }
    let bad_host = || InvalidProviderUrl::BadHost {
        url: url.to_owned(),
    };
    // `[v6]:port`, or `host:port`.
    let (host, port) = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => (&authority[..i], Some(&authority[i + 1..])),
        _ => (authority, None),
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'));
    let port = match port {
        None => None,
        Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse::<u16>().map_err(|_| bad_host())?)
        }
        Some(_) => return Err(bad_host()),
    };
    if !host_ok {
        return Err(bad_host());
    }
    let host = host.to_ascii_lowercase();
    Ok(match port {
        Some(p) if p != default_port => format!("{scheme}://{host}:{p}"),
        _ => format!("{scheme}://{host}"),
    })
}

/// The script. `CONFIG` is replaced by a JSON object whose strings are all written with
/// [`js_string`]. Plain ES5 plus `CustomEvent` and `dataset`.
const SCRIPT: &str = r#"(function () {
  "use strict";
  var cfg = CONFIG;
  var frame = document.getElementById(cfg.frameId);
  if (!frame) { return; }
  var timer = null;
  var done = false;
  function report(state) {
    document.documentElement.setAttribute("data-doximity-session", state);
    document.dispatchEvent(new CustomEvent("doximity-session", { detail: state }));
  }
  function check() {
    if (done || !frame.contentWindow) { return; }
    frame.contentWindow.postMessage(cfg.clientId + " " + cfg.sessionState, cfg.origin);
  }
  function stop() {
    done = true;
    if (timer !== null) { clearInterval(timer); timer = null; }
  }
  function changed() {
    var a = cfg.onChanged;
    if (a.recheck !== undefined) {
      var root = document.documentElement;
      var key = "doximity-recheck " + cfg.clientId;
      var now = Date.now();
      try {
        var last = Number(window.sessionStorage.getItem(key)) || 0;
        if (now - last < cfg.recheckEvery) { root.setAttribute("data-doximity-recheck", "skipped"); return; }
        window.sessionStorage.setItem(key, String(now));
      } catch (e) {
        root.setAttribute("data-doximity-recheck", "skipped");
        return;
      }
      root.setAttribute("data-doximity-recheck", "started");
      var sep = a.recheck.indexOf("?") < 0 ? "?" : "&";
      window.location.assign(a.recheck + sep + "prompt=none&return_to=" +
        encodeURIComponent(window.location.pathname + window.location.search));
    } else if (a.navigate !== undefined) {
      window.location.assign(a.navigate);
    }
  }
  window.addEventListener("message", function (event) {
    if (event.origin !== cfg.origin || event.source !== frame.contentWindow || done) { return; }
    if (event.data === "unchanged") { report("unchanged"); return; }
    stop();
    if (event.data === "changed") { report("changed"); changed(); } else { report("error"); }
  }, false);
  frame.addEventListener("load", check, false);
  timer = setInterval(check, cfg.interval);
})();"#;

impl Display for SessionCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<iframe id=\"{}\" src=\"{}\" title=\"Doximity session check\" hidden tabindex=\"-1\" \
             aria-hidden=\"true\"></iframe>\n<script",
            html(&self.frame_id),
            html(&self.frame_src)
        )?;
        if let Some(nonce) = &self.nonce {
            write!(f, " nonce=\"{}\"", html(nonce))?;
        }
        let on_changed = match &self.on_changed {
            OnChanged::Recheck { login_path } => {
                format!("{{\"recheck\":{}}}", js_string(login_path))
            }
            OnChanged::Navigate(url) => format!("{{\"navigate\":{}}}", js_string(url)),
            OnChanged::Report => "{}".to_owned(),
        };
        let config = format!(
            "{{\"frameId\":{},\"origin\":{},\"clientId\":{},\"sessionState\":{},\"interval\":{},\"recheckEvery\":{},\"onChanged\":{}}}",
            js_string(&self.frame_id),
            js_string(&self.origin),
            js_string(&self.client_id),
            js_string(&self.session_state),
            self.interval.as_millis(),
            self.recheck_every.as_millis(),
            on_changed
        );
        write!(f, ">\n{}\n</script>", SCRIPT.replacen("CONFIG", &config, 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_serialised_as_browsers_do() {
        for (url, origin) in [
            (
                "https://auth.doximity.com/oauth/session_state",
                "https://auth.doximity.com",
            ),
            (
                "HTTPS://Auth.Doximity.COM:443/x",
                "https://auth.doximity.com",
            ),
            (
                "https://127.0.0.1:8443/oauth/session_state",
                "https://127.0.0.1:8443",
            ),
            ("http://localhost:80", "http://localhost"),
            ("http://localhost:8080?x#y", "http://localhost:8080"),
            ("https://[::1]:9000/p", "https://[::1]:9000"),
            ("https://[::1]/p", "https://[::1]"),
        ] {
            assert_eq!(origin_of(url).as_deref(), Ok(origin), "{url}");
        }
    }

    #[test]
    fn unusable_provider_urls_are_refused() {
        for url in [
            "/oauth/session_state",
            "javascript:alert(1)",
            "//auth.doximity.com/x",
            "ftp://h/",
        ] {
            assert!(
                matches!(origin_of(url), Err(InvalidProviderUrl::NotHttp { .. })),
                "{url}"
            );
        }
        for url in [
            "https:///x",
            "https://a b/",
            "https://h:99999999/",
            "https://h\"/",
            "https://h:/",
        ] {
            assert!(
                matches!(origin_of(url), Err(InvalidProviderUrl::BadHost { .. })),
                "{url}"
            );
        }
        assert!(matches!(
            origin_of("https://u:p@auth.doximity.com/"),
            Err(InvalidProviderUrl::Credentials { .. })
        ));
    }

    #[test]
    fn the_interval_has_a_floor() {
        let c = SessionCheck::new("https://h/", "c", "s")
            .unwrap()
            .with_interval(Duration::ZERO);
        assert!(c.to_string().contains("\"interval\":500,"));
    }
}
