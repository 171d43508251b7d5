//! The trademark symbol that must follow the Doximity name.

use std::fmt;

/// The symbol written after "Doximity" in visible text.
///
/// Doximity's Branding Guidelines: "The Doximity Marks must be accompanied by the appropriate
/// ® or ™ symbol", and "If using the Marks on sites based outside the United States, use the ™
/// symbol unless otherwise noted". The default is [`Mark::Registered`].
///
/// ```
/// use doximity_share::Mark;
/// assert_eq!(Mark::default().to_string(), "®");
/// assert_eq!(Mark::Trademark.to_string(), "™");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mark {
    /// ® (U+00AE), for sites based in the United States.
    #[default]
    Registered,
    /// ™ (U+2122), for sites based outside the United States.
    Trademark,
}

impl Mark {
    /// The symbol as a string.
    pub const fn as_str(self) -> &'static str {
        match self {
            Mark::Registered => "\u{ae}",
            Mark::Trademark => "\u{2122}",
        }
    }
}

impl fmt::Display for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
