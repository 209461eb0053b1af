//! [`Caller`]: who a verified credential says is calling.

use pfc_auth::{Scope, Scopes};

/// How the caller proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A Login token (JWT), by its `jti`.
    Token {
        /// The token id.
        jti: String,
    },
    /// An API key, by its (public) id.
    ApiKey {
        /// The key id (the part of the key that is not secret).
        id: String,
    },
}

/// A verified caller, inserted into the request's extensions by the guard so services can
/// apply finer rules (a worker key limited to some kinds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The user (token `sub`) or the key's name.
    pub subject: String,
    /// What the credential allows.
    pub scopes: Scopes,
    /// Kinds a worker credential may run; `None`: any.
    pub kinds: Option<Vec<String>>,
    /// How it was proved.
    pub credential: Credential,
}

impl Caller {
    /// True when the caller holds `scope` (or a scope implying it).
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.allows(scope)
    }

    /// True when this caller may run jobs of `kind`.
    pub fn may_run(&self, kind: &str) -> bool {
        self.kinds
            .as_ref()
            .is_none_or(|kinds| kinds.iter().any(|k| k == kind))
    }
}
