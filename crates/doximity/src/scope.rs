//! Scopes, as strings and as types.
//!
//! A [`Scope`] is a marker type naming one OAuth scope, so an extractor can say in its type which
//! scope it needs: `Scoped<ProfileReadBasic>`. The [`scope!`](crate::scope!) macro maps
//! Doximity's documented scope strings to their markers, and
//! [`custom_scope!`](crate::custom_scope!) declares a marker for a scope of your own.
//!
//! ```
//! use doximity::scope::{ProfileReadBasic, Scope, Scopes};
//!
//! assert_eq!(ProfileReadBasic::NAME, "profile:read:basic");
//! assert_eq!(<doximity::scope!("profile:read:basic") as Scope>::NAME, "profile:read:basic");
//!
//! doximity::custom_scope!(
//!     /// Reads the colleague list.
//!     pub ReadColleagues = "colleagues:read"
//! );
//! assert_eq!(ReadColleagues::NAME, "colleagues:read");
//!
//! let granted: Scopes = "openid profile:read:basic".parse().unwrap();
//! assert!(granted.contains(ProfileReadBasic::NAME));
//! ```

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// One OAuth scope as a type.
pub trait Scope: Send + Sync + 'static {
    /// The scope string, e.g. `profile:read:basic`.
    const NAME: &'static str;
}

macro_rules! doc_scope {
    ($(#[$m:meta])* $name:ident = $value:literal) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
        pub struct $name;
        impl Scope for $name {
            const NAME: &'static str = $value;
        }
    };
}

doc_scope!(
    /// `openid`: the ID token (the smallest scope, and Doximity's default).
    OpenId = "openid"
);
doc_scope!(
    /// `profile:read:basic`: name, credentials, specialty and photo in userinfo.
    ProfileReadBasic = "profile:read:basic"
);
doc_scope!(
    /// `search`, listed in Doximity's `scopes_supported`.
    Search = "search"
);

/// Scopes of the older API (`002_*.txt`).
pub mod legacy {
    use super::Scope;

    doc_scope!(
        /// `basic`: the profile through `/api/v1/users/current`.
        Basic = "basic"
    );
    doc_scope!(
        /// `colleagues`: the colleague list.
        Colleagues = "colleagues"
    );
    doc_scope!(
        /// `email`: the registered email address.
        Email = "email"
    );
}

/// Names the marker type of a documented Doximity scope, in type position.
///
/// ```
/// use doximity::scope::Scope;
/// type Needed = doximity::scope!("profile:read:basic");
/// assert_eq!(Needed::NAME, "profile:read:basic");
/// ```
///
/// An undocumented scope string does not compile; declare it with
/// [`custom_scope!`](crate::custom_scope!).
///
/// ```compile_fail
/// type Nope = doximity::scope!("admin:everything");
/// ```
#[macro_export]
macro_rules! scope {
    ("openid") => {
        $crate::scope::OpenId
    };
    ("profile:read:basic") => {
        $crate::scope::ProfileReadBasic
    };
    ("search") => {
        $crate::scope::Search
    };
    ("basic") => {
        $crate::scope::legacy::Basic
    };
    ("colleagues") => {
        $crate::scope::legacy::Colleagues
    };
    ("email") => {
        $crate::scope::legacy::Email
    };
}

/// Declares a marker type for a scope of your own.
///
/// ```
/// doximity::custom_scope!(
///     /// Our partner scope.
///     pub PartnerRead = "partner:read"
/// );
/// use doximity::scope::Scope;
/// assert_eq!(PartnerRead::NAME, "partner:read");
/// ```
#[macro_export]
macro_rules! custom_scope {
    ($(#[$m:meta])* $vis:vis $name:ident = $value:literal) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
        $vis struct $name;
        impl $crate::scope::Scope for $name {
            const NAME: &'static str = $value;
        }
    };
}

/// An ordered set of scope strings, written space-separated on the wire. Kept as that one
/// string (valid tokens, no duplicates, single spaces), so reading a set back allocates once.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Scopes(String);

impl Scopes {
    /// Just `openid`.
    pub fn openid() -> Self {
        Self(OpenId::NAME.to_owned())
    }

    /// Whether `scope` is in the set.
    pub fn contains(&self, scope: &str) -> bool {
        self.iter().any(|s| s == scope)
    }

    /// Whether every scope of `other` is in this set.
    pub fn is_superset_of(&self, other: &Scopes) -> bool {
        other.iter().all(|s| self.contains(s))
    }

    /// Adds a scope (no-op when present). Fails on a string that is not a scope token.
    pub fn insert(&mut self, scope: &str) -> Result<(), ConfigError> {
        validate_token(scope)?;
        self.push_valid(scope);
        Ok(())
    }

    /// Adds a scope already known to be a valid token.
    fn push_valid(&mut self, scope: &str) {
        if !self.contains(scope) {
            if !self.0.is_empty() {
                self.0.push(' ');
            }
            self.0.push_str(scope);
        }
    }

    /// The union of two sets, in order.
    #[must_use]
    pub fn union(&self, other: &Scopes) -> Scopes {
        let mut out = self.clone();
        for s in other.iter() {
            out.push_valid(s);
        }
        out
    }

    /// The scopes, in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.split(' ').filter(|s| !s.is_empty())
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The set as written on the wire: space-separated, in order.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn validate_token(s: &str) -> Result<(), ConfigError> {
    // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
    let ok = !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::InvalidScope(s.to_owned()))
    }
}

impl std::str::FromStr for Scopes {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = Scopes(String::with_capacity(s.len()));
        for token in s.split(' ').filter(|t| !t.is_empty()) {
            out.insert(token)?;
        }
        Ok(out)
    }
}

impl TryFrom<String> for Scopes {
    type Error = ConfigError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Scopes> for String {
    fn from(s: Scopes) -> String {
        s.0
    }
}

impl std::fmt::Display for Scopes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_space_separated() {
        let s: Scopes = "openid  profile:read:basic openid".parse().unwrap();
        assert_eq!(s.to_string(), "openid profile:read:basic");
        assert!(s.contains("openid"));
        assert!(!s.contains("search"));
    }

    #[test]
    fn the_empty_set_holds_nothing_and_grows_without_stray_spaces() {
        let mut s = Scopes::default();
        assert!(s.is_empty() && s.iter().next().is_none() && !s.contains(""));
        assert_eq!(" ".parse::<Scopes>().unwrap(), s);
        s.insert("openid").unwrap();
        s.insert("openid").unwrap();
        assert_eq!(s.to_string(), "openid");
        assert_eq!(s.union(&"a b".parse().unwrap()).to_string(), "openid a b");
        assert_eq!(s.iter().collect::<Vec<_>>(), ["openid"]);
    }

    #[test]
    fn rejects_non_scope_tokens() {
        for bad in ["a\"b", "a\\b", "caf\u{e9}", "a\tb", "x\u{7f}"] {
            assert!(bad.parse::<Scopes>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn superset_and_union() {
        let a: Scopes = "openid profile:read:basic".parse().unwrap();
        let b = Scopes::openid();
        assert!(a.is_superset_of(&b));
        assert!(!b.is_superset_of(&a));
        assert_eq!(b.union(&a), a);
    }

    #[test]
    fn macro_maps_documented_strings() {
        assert_eq!(<crate::scope!("openid") as Scope>::NAME, "openid");
        assert_eq!(<crate::scope!("search") as Scope>::NAME, "search");
        assert_eq!(<crate::scope!("email") as Scope>::NAME, "email");
    }
}
