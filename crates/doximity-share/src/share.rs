//! The Share Button (`000_*.txt`, section "Share Button"), in both documented forms.

use std::fmt::{self, Display};

use crate::Mark;
use crate::escape::{html, query};

/// The default share endpoint. **Unconfirmed**: the stored Doximity documentation lost this
/// URL. `www.doximity.com` is the site Doximity members are signed in to (the OAuth host
/// `auth.doximity.com` only runs the sign-in flow), and `/share` is the path the documentation
/// calls "the share endpoint". Confirm it against Doximity's live developer documentation and
/// set it with [`ShareButton::with_endpoint`] if it differs.
pub const DEFAULT_SHARE_ENDPOINT: &str = "https://www.doximity.com/share";

/// The default URL of Doximity's Share Button script. **Unconfirmed**: the stored
/// documentation shows only a protocol-relative `//…` source whose host and path were lost.
/// This default uses `https:` explicitly (a protocol-relative URL would load over plain HTTP on
/// an HTTP page) on the same host as [`DEFAULT_SHARE_ENDPOINT`]. Confirm it against Doximity's
/// live developer documentation and set it with [`ShareButton::with_script_src`].
pub const DEFAULT_SHARE_SCRIPT: &str = "https://www.doximity.com/share.js";

/// The accessible name the documentation gives both forms (`aria-label`).
pub const SHARE_LABEL: &str = "Share via Doximity";

/// The JavaScript-enhanced Share Button: an anchor with class `doximity-share-button`, the
/// optional `data-url`, `data-message`, `data-subject` and `aria-label="Share via Doximity"`,
/// followed by the `async` script tag that enhances it. The form the documentation recommends.
///
/// The anchor's `href` is the full [plain share link](ShareButton::share_url), so the button
/// still works where the script does not load (blocked, offline, or a mock provider that
/// serves none).
///
/// ```
/// use doximity_share::ShareButton;
///
/// let button = ShareButton::new()
///     .with_url("https://example.org/a?b=1&c=2")
///     .with_message("Check out this article")
///     .with_subject("Measles in Ohio");
/// assert_eq!(
///     button.to_string(),
///     "<a class=\"doximity-share-button\" \
///      href=\"https://www.doximity.com/share?url=https%3A%2F%2Fexample.org%2Fa%3Fb%3D1%26c%3D2&amp;message=Check%20out%20this%20article&amp;subject=Measles%20in%20Ohio\" \
///      data-url=\"https://example.org/a?b=1&amp;c=2\" \
///      data-message=\"Check out this article\" \
///      data-subject=\"Measles in Ohio\" \
///      aria-label=\"Share via Doximity\">Share via Doximity®</a>\n\
///      <script async src=\"https://www.doximity.com/share.js\" charset=\"utf-8\"></script>"
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct ShareButton {
    endpoint: String,
    script_src: String,
    url: Option<String>,
    message: Option<String>,
    subject: Option<String>,
    include_script: bool,
    nonce: Option<String>,
    mark: Mark,
}

impl Default for ShareButton {
    fn default() -> Self {
        Self::new()
    }
}

impl ShareButton {
    /// A Share Button with no parameters (Doximity then asks the person what to share), the
    /// [default endpoint](DEFAULT_SHARE_ENDPOINT) and [script](DEFAULT_SHARE_SCRIPT).
    pub fn new() -> Self {
        Self {
            endpoint: DEFAULT_SHARE_ENDPOINT.to_owned(),
            script_src: DEFAULT_SHARE_SCRIPT.to_owned(),
            url: None,
            message: None,
            subject: None,
            include_script: true,
            nonce: None,
            mark: Mark::default(),
        }
    }

    /// The share endpoint the link points at (for example a mock provider's `/share`).
    ///
    /// It is configuration, not user input: it is escaped for the attribute, but not checked.
    /// Parameters are appended with `?`, or with `&` when it already has a query.
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = endpoint.into();
        self
    }

    /// The source of the enhancing script.
    ///
    /// # Security
    ///
    /// The script runs with the page's privileges: point this only at Doximity's own script.
    pub fn with_script_src(mut self, src: impl Into<String>) -> Self {
        self.script_src = src.into();
        self
    }

    /// The URL to share (`url` / `data-url`).
    pub fn with_url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// The message to prefill (`message` / `data-message`).
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    /// The subject to prefill (`subject` / `data-subject`).
    pub fn with_subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Renders the anchor only. For a page with several buttons: render the script once with
    /// [`ShareButton::script_tag`]. Also for a provider that serves no script (a mock).
    pub fn without_script(mut self) -> Self {
        self.include_script = false;
        self
    }

    /// A CSP nonce for the script tag (`<script nonce="…">`), for a `script-src 'nonce-…'`
    /// policy.
    pub fn with_nonce(mut self, nonce: impl Into<String>) -> Self {
        self.nonce = Some(nonce.into());
        self
    }

    /// The trademark symbol after "Doximity" in the visible text (® by default).
    pub fn with_mark(mut self, mark: Mark) -> Self {
        self.mark = mark;
        self
    }

    /// The plain share link: the endpoint with the present parameters, in the documented
    /// order `url`, `message`, `subject`, each [percent-encoded](crate::escape::query).
    ///
    /// ```
    /// use doximity_share::ShareButton;
    /// let b = ShareButton::new().with_endpoint("https://mock/share").with_subject("A & B");
    /// assert_eq!(b.share_url(), "https://mock/share?subject=A%20%26%20B");
    /// ```
    pub fn share_url(&self) -> String {
        let mut out = self.endpoint.clone();
        let mut sep = if out.contains('?') { '&' } else { '?' };
        for (name, value) in self.params() {
            out.push(sep);
            out.push_str(name);
            out.push('=');
            out.push_str(&query(value).to_string());
            sep = '&';
        }
        out
    }

    /// The other documented form: a plain link to the share endpoint, no script.
    ///
    /// ```
    /// use doximity_share::ShareButton;
    /// let link = ShareButton::new().with_endpoint("/share").with_url("https://a.example/").plain_link();
    /// assert_eq!(
    ///     link.to_string(),
    ///     "<a href=\"/share?url=https%3A%2F%2Fa.example%2F\" aria-label=\"Share via Doximity\">Share via Doximity®</a>"
    /// );
    /// ```
    pub fn plain_link(&self) -> ShareLink {
        ShareLink {
            href: self.share_url(),
            mark: self.mark,
        }
    }

    /// The script tag alone (`<script async src=… charset="utf-8">`), with the nonce if set.
    ///
    /// ```
    /// use doximity_share::ShareButton;
    /// assert_eq!(
    ///     ShareButton::new().with_nonce("r4nd").script_tag().to_string(),
    ///     "<script async src=\"https://www.doximity.com/share.js\" charset=\"utf-8\" nonce=\"r4nd\"></script>"
    /// );
    /// ```
    pub fn script_tag(&self) -> ShareScript {
        ShareScript {
            src: self.script_src.clone(),
            nonce: self.nonce.clone(),
        }
    }

    fn params(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("url", self.url.as_deref()),
            ("message", self.message.as_deref()),
            ("subject", self.subject.as_deref()),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| (name, v)))
    }
}

impl Display for ShareButton {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<a class=\"doximity-share-button\" href=\"{}\"",
            html(&self.share_url())
        )?;
        for (name, value) in self.params() {
            write!(f, " data-{name}=\"{}\"", html(value))?;
        }
        write!(
            f,
            " aria-label=\"{SHARE_LABEL}\">Share via Doximity{}</a>",
            self.mark
        )?;
        if self.include_script {
            write!(f, "\n{}", self.script_tag())?;
        }
        Ok(())
    }
}

/// The plain Share link (no script), from [`ShareButton::plain_link`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareLink {
    href: String,
    mark: Mark,
}

impl ShareLink {
    /// The link's target (not yet HTML-escaped).
    pub fn href(&self) -> &str {
        &self.href
    }
}

impl Display for ShareLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<a href=\"{}\" aria-label=\"{SHARE_LABEL}\">Share via Doximity{}</a>",
            html(&self.href),
            self.mark
        )
    }
}

/// The Share Button script tag, from [`ShareButton::script_tag`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareScript {
    src: String,
    nonce: Option<String>,
}

impl Display for ShareScript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<script async src=\"{}\" charset=\"utf-8\"",
            html(&self.src)
        )?;
        if let Some(nonce) = &self.nonce {
            write!(f, " nonce=\"{}\"", html(nonce))?;
        }
        f.write_str("></script>")
    }
}
