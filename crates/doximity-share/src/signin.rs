//! Sign-in buttons (Step 2 and the Branding Guidelines).

use std::fmt::{self, Display};

use crate::Mark;
use crate::escape::{html, query};

/// The layer's login route (`tower-doximity`'s default).
pub const DEFAULT_LOGIN_PATH: &str = "/auth/doximity/login";

/// The stylesheet for [`SignInButton::without_inline_style`], for pages whose
/// Content-Security-Policy forbids `style` attributes: put it in your own CSS file.
///
/// The button is 140pt × 30pt (the size Step 2 gives Doximity's buttons), text centred and never
/// stretched or wrapped; [`SignInButton::with_width`] widens it. Its colours are deliberately
/// neutral: the Branding Guidelines forbid imitating Doximity's trade dress.
pub const SIGN_IN_STYLESHEET: &str = ".doximity-signin{display:inline-flex;align-items:center;\
justify-content:center;box-sizing:border-box;min-width:140pt;height:30pt;padding:0 10pt;\
border:1px solid #1d2733;border-radius:4pt;background:#fff;color:#1d2733;\
font:600 11pt/1 system-ui,sans-serif;text-decoration:none;white-space:nowrap}\
.doximity-signin img{height:30pt;width:auto}";

const INLINE_STYLE: &str = "display:inline-flex;align-items:center;justify-content:center;\
box-sizing:border-box;height:30pt;padding:0 10pt;border:1px solid #1d2733;border-radius:4pt;\
background:#fff;color:#1d2733;font:600 11pt/1 system-ui,sans-serif;text-decoration:none;\
white-space:nowrap";

/// Which of Doximity's buttons.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SignInKind {
    /// "Sign in with Doximity®": the usual sign-in.
    #[default]
    Login,
    /// "Verify with Doximity®": the older API's `type=verify` landing page.
    Verify,
    /// "Sign up with Doximity®": `prompt=create`, straight to account creation and
    /// verification.
    Create,
}

impl SignInKind {
    /// The button's text before the trademark symbol.
    pub const fn text(self) -> &'static str {
        match self {
            SignInKind::Login => "Sign in with Doximity",
            SignInKind::Verify => "Verify with Doximity",
            SignInKind::Create => "Sign up with Doximity",
        }
    }

    /// The authorization parameter that selects this landing page, as `(name, value)`.
    pub const fn param(self) -> Option<(&'static str, &'static str)> {
        match self {
            SignInKind::Login => None,
            SignInKind::Verify => Some(("type", "verify")),
            SignInKind::Create => Some(("prompt", "create")),
        }
    }
}

/// The width of a [`SignInButton`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Width {
    /// Points (the documentation's unit: the default is 140).
    Points(u16),
    /// CSS pixels.
    Pixels(u16),
    /// A percentage of the containing block, at most 100.
    Percent(u8),
}

impl Display for Width {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Width::Points(n) => write!(f, "{n}pt"),
            Width::Pixels(n) => write!(f, "{n}px"),
            Width::Percent(n) => write!(f, "{}%", n.min(100)),
        }
    }
}

/// A "Sign in with Doximity®" button: a link to the layer's login route.
///
/// No Doximity image is bundled (the official graphics are Doximity's to distribute), so by
/// default it renders an accessible text button of the documented size, 140pt × 30pt, whose
/// visible text is its accessible name and carries the ® the Branding Guidelines require. With
/// [`SignInButton::with_image`] it shows the graphic you host instead, with the same text as
/// `alt`.
///
/// ```
/// use doximity_share::{SignInButton, SignInKind};
///
/// let button = SignInButton::new().with_return_to("/me").without_inline_style();
/// assert_eq!(
///     button.to_string(),
///     "<a class=\"doximity-signin doximity-signin-login\" \
///      href=\"/auth/doximity/login?return_to=%2Fme\">Sign in with Doximity®</a>"
/// );
/// assert!(SignInButton::new().kind(SignInKind::Verify).to_string().contains(">Verify with Doximity®<"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct SignInButton {
    kind: SignInKind,
    login_path: String,
    return_to: Option<String>,
    forward_kind: bool,
    width: Option<Width>,
    inline_style: bool,
    image: Option<String>,
    mark: Mark,
}

impl Default for SignInButton {
    fn default() -> Self {
        Self::new()
    }
}

impl SignInButton {
    /// A "Sign in with Doximity®" button to [`DEFAULT_LOGIN_PATH`], returning to `/`.
    pub fn new() -> Self {
        Self {
            kind: SignInKind::Login,
            login_path: DEFAULT_LOGIN_PATH.to_owned(),
            return_to: None,
            forward_kind: true,
            width: None,
            inline_style: true,
            image: None,
            mark: Mark::default(),
        }
    }

    /// Which button (login, verify, create).
    pub fn kind(mut self, kind: SignInKind) -> Self {
        self.kind = kind;
        self
    }

    /// The login route, if the layer's was moved (`DoximityAuth::with_login_path`).
    pub fn with_login_path(mut self, path: impl Into<String>) -> Self {
        self.login_path = path.into();
        self
    }

    /// Where to come back after signing in (`return_to`, a same-origin path: the layer
    /// sanitises it again).
    pub fn with_return_to(mut self, path: impl Into<String>) -> Self {
        self.return_to = Some(path.into());
        self
    }

    /// Whether the kind's authorization parameter ([`SignInKind::param`]: `type=verify` or
    /// `prompt=create`) goes on the link.
    ///
    /// On by default: `tower-doximity`'s login route forwards `prompt` and `type` to the
    /// provider. Turn it off for a login route that would refuse unknown parameters.
    pub fn forward_kind(mut self, forward: bool) -> Self {
        self.forward_kind = forward;
        self
    }

    /// The button's width instead of the default 140pt (Step 2 allows matching other buttons'
    /// width "as long as the button's contents are not distorted": the text stays centred at
    /// its own size).
    pub fn with_width(mut self, width: Width) -> Self {
        self.width = Some(width);
        self
    }

    /// No `style` attribute: style the `doximity-signin` class yourself, for example with
    /// [`SIGN_IN_STYLESHEET`] (a CSP without `'unsafe-inline'` for styles blocks `style`
    /// attributes). [`SignInButton::with_width`] then has no effect: set the width in your CSS.
    pub fn without_inline_style(mut self) -> Self {
        self.inline_style = false;
        self
    }

    /// Shows the image at `src` (Doximity's official button graphic, hosted by you) instead of
    /// the text; the text becomes its `alt`. Its height is 30pt and its width follows its own
    /// aspect ratio, so it is never distorted.
    pub fn with_image(mut self, src: impl Into<String>) -> Self {
        self.image = Some(src.into());
        self
    }

    /// The trademark symbol after "Doximity" (® by default).
    pub fn with_mark(mut self, mark: Mark) -> Self {
        self.mark = mark;
        self
    }

    /// The link's target: the login route with `return_to` (and the kind's parameter when
    /// [forwarded](SignInButton::forward_kind)), each [percent-encoded](crate::escape::query).
    ///
    /// ```
    /// use doximity_share::{SignInButton, SignInKind};
    /// let b = SignInButton::new().kind(SignInKind::Create).forward_kind(true).with_return_to("/a b");
    /// assert_eq!(b.href(), "/auth/doximity/login?return_to=%2Fa%20b&prompt=create");
    /// ```
    pub fn href(&self) -> String {
        let mut out = self.login_path.clone();
        let mut sep = if out.contains('?') { '&' } else { '?' };
        if let Some(return_to) = &self.return_to {
            out.push(sep);
            out.push_str("return_to=");
            out.push_str(&query(return_to).to_string());
            sep = '&';
        }
        if let (true, Some((name, value))) = (self.forward_kind, self.kind.param()) {
            out.push(sep);
            out.push_str(name);
            out.push('=');
            out.push_str(value);
        }
        out
    }

    /// The visible text, which is also the accessible name (and the image's `alt`).
    pub fn text(&self) -> String {
        format!("{}{}", self.kind.text(), self.mark)
    }

    fn kind_class(&self) -> &'static str {
        match self.kind {
            SignInKind::Login => "doximity-signin-login",
            SignInKind::Verify => "doximity-signin-verify",
            SignInKind::Create => "doximity-signin-create",
        }
    }
}

impl Display for SignInButton {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<a class=\"doximity-signin {}\" href=\"{}\"",
            self.kind_class(),
            html(&self.href())
        )?;
        if self.inline_style {
            match self.width {
                Some(width) => write!(f, " style=\"{INLINE_STYLE};min-width:0;width:{width}\"")?,
                None => write!(f, " style=\"{INLINE_STYLE};min-width:140pt\"")?,
            }
        }
        f.write_str(">")?;
        let text = self.text();
        match &self.image {
            Some(src) => {
                write!(f, "<img src=\"{}\" alt=\"{}\"", html(src), html(&text))?;
                if self.inline_style {
                    f.write_str(" style=\"height:30pt;width:auto\"")?;
                }
                f.write_str(">")?;
            }
            None => write!(f, "{}", html(&text))?,
        }
        f.write_str("</a>")
    }
}
