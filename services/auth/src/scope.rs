//! Scopes: what a credential (a Login token or an API key) allows, and which scopes Login
//! grants to whom.
//!
//! Tokens carry their scopes in the `scope` claim, space-separated (the OAuth 2 convention,
//! RFC 8693 §4.2), so any JWT tool shows them. A token without the claim (issued before scopes
//! existed) has none: it still works for chat, which checks only the signature, but for no
//! jobs call once access control is on.

use std::fmt;

/// One permission. `jobs:admin` implies `jobs:write`, which implies `jobs:read`; `worker` and
/// `chat` imply nothing else (a worker key cannot submit or read other jobs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Read jobs, stats, kinds; watch transitions.
    JobsRead,
    /// Submit jobs (and everything `jobs:read` allows).
    JobsWrite,
    /// Cancel, retry, delete, queue operations, API keys (and everything `jobs:write` allows).
    JobsAdmin,
    /// Connect to `WorkerService` and run jobs.
    Worker,
    /// Use chat.
    Chat,
}

impl Scope {
    /// Every scope, in documentation order.
    pub const ALL: [Scope; 5] = [
        Scope::JobsRead,
        Scope::JobsWrite,
        Scope::JobsAdmin,
        Scope::Worker,
        Scope::Chat,
    ];

    /// The wire name (`jobs:read`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::JobsRead => "jobs:read",
            Scope::JobsWrite => "jobs:write",
            Scope::JobsAdmin => "jobs:admin",
            Scope::Worker => "worker",
            Scope::Chat => "chat",
        }
    }

    /// Parses a wire name; `None` for anything else.
    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|c| c.as_str() == s)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes, with the implications applied on [`Scopes::allows`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Scopes(u8);

impl Scopes {
    /// No scope.
    pub const NONE: Scopes = Scopes(0);

    /// The set holding `scopes`.
    pub fn of(scopes: &[Scope]) -> Scopes {
        Scopes(scopes.iter().fold(0, |acc, s| acc | s.bit()))
    }

    /// Adds `scope`.
    pub fn insert(&mut self, scope: Scope) {
        self.0 |= scope.bit();
    }

    /// The union of both sets.
    pub fn union(self, other: Scopes) -> Scopes {
        Scopes(self.0 | other.0)
    }

    /// True when the set was granted `scope` itself (no implication).
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// True when these scopes allow what `needed` guards: held directly or implied
    /// (`jobs:admin` ⊃ `jobs:write` ⊃ `jobs:read`).
    pub fn allows(self, needed: Scope) -> bool {
        let implied_by: &[Scope] = match needed {
            Scope::JobsRead => &[Scope::JobsRead, Scope::JobsWrite, Scope::JobsAdmin],
            Scope::JobsWrite => &[Scope::JobsWrite, Scope::JobsAdmin],
            Scope::JobsAdmin => &[Scope::JobsAdmin],
            Scope::Worker => &[Scope::Worker],
            Scope::Chat => &[Scope::Chat],
        };
        implied_by.iter().any(|s| self.contains(*s))
    }

    /// True for the empty set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The scopes held, in documentation order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// The wire names held.
    pub fn names(self) -> Vec<String> {
        self.iter().map(|s| s.as_str().to_string()).collect()
    }

    /// Parses space- or comma-separated names; an unknown name is an error naming it and the
    /// allowed ones.
    pub fn parse(s: &str) -> Result<Scopes, String> {
        let mut out = Scopes::NONE;
        for name in s.split([' ', ',']).map(str::trim).filter(|n| !n.is_empty()) {
            out.insert(Scope::parse(name).ok_or_else(|| unknown(name))?);
        }
        Ok(out)
    }

    /// Parses the `scope` claim of a token: unknown names (a newer issuer's) are skipped,
    /// not an error, so adding a scope never invalidates tokens.
    pub fn from_claim(s: &str) -> Scopes {
        let mut out = Scopes::NONE;
        for scope in s.split(' ').filter_map(Scope::parse) {
            out.insert(scope);
        }
        out
    }
}

/// The error for an unknown scope name.
pub fn unknown(name: &str) -> String {
    format!(
        "unknown scope {name:?}; expected one of {}",
        Scope::ALL.map(Scope::as_str).join(", ")
    )
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(" "))
    }
}

/// Which scopes Login puts in a user's token: `default` for everyone, plus `jobs:admin` for
/// the users on the `admins` allow-list.
///
/// Login is passwordless (a pseudo), so these grants are only as strong as whoever can
/// reach Login: see docs/security.md for production advice (give Login tokens `chat` only
/// and use API keys for jobs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grants {
    /// Scopes of every Login token.
    pub default: Scopes,
    /// Usernames whose tokens also carry `jobs:admin`.
    pub admins: Vec<String>,
}

impl Default for Grants {
    /// Everyone: `chat jobs:read jobs:write`; no admin.
    fn default() -> Self {
        Grants {
            default: Scopes::of(&[Scope::Chat, Scope::JobsRead, Scope::JobsWrite]),
            admins: Vec::new(),
        }
    }
}

impl Grants {
    /// The scopes of a token for `username`.
    pub fn for_user(&self, username: &str) -> Scopes {
        let mut scopes = self.default;
        if self.admins.iter().any(|a| a == username) {
            scopes.insert(Scope::JobsAdmin);
        }
        scopes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Admin implies write implies read; worker and chat imply nothing else.
    #[test]
    fn implications() {
        let admin = Scopes::of(&[Scope::JobsAdmin]);
        assert!(admin.allows(Scope::JobsRead) && admin.allows(Scope::JobsWrite));
        assert!(!admin.allows(Scope::Worker));
        let write = Scopes::of(&[Scope::JobsWrite]);
        assert!(write.allows(Scope::JobsRead) && !write.allows(Scope::JobsAdmin));
        let worker = Scopes::of(&[Scope::Worker]);
        assert!(!worker.allows(Scope::JobsWrite) && !worker.allows(Scope::JobsRead));
        assert!(!Scopes::of(&[Scope::Chat]).allows(Scope::JobsRead));
    }

    /// Names round-trip; unknown names are refused by config parsing, skipped in claims.
    #[test]
    fn parsing() {
        let s = Scopes::parse("jobs:read, worker").unwrap();
        assert_eq!(s.to_string(), "jobs:read worker");
        assert_eq!(Scopes::parse(&s.to_string()).unwrap(), s);
        let err = Scopes::parse("jobs:read root").unwrap_err();
        assert!(
            err.contains("\"root\"") && err.contains("jobs:admin"),
            "{err}"
        );
        assert_eq!(
            Scopes::from_claim("root jobs:read"),
            Scopes::of(&[Scope::JobsRead])
        );
    }

    /// Admins get jobs:admin on top of the default grant.
    #[test]
    fn grants() {
        let g = Grants {
            admins: vec!["ops".into()],
            ..Grants::default()
        };
        assert!(g.for_user("ops").contains(Scope::JobsAdmin));
        assert!(!g.for_user("alice").contains(Scope::JobsAdmin));
        assert!(g.for_user("alice").contains(Scope::JobsWrite));
    }
}
