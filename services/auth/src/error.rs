//! The auth error type and its one mapping to gRPC status codes.

use tonic::Status;

/// Everything that can go wrong issuing or checking a token.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A username or other name broke the naming rules.
    #[error("{0}")]
    InvalidName(String),
    /// No `authorization: Bearer <jwt>` metadata on the request.
    #[error("missing bearer token: send `authorization: Bearer <jwt>` (get one from Login)")]
    MissingToken,
    /// The token is malformed, tampered, signed by an unknown key or with a refused algorithm.
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// The token names a key (`kid`) this verifier does not know: auth's key changed.
    #[error("invalid token: signed by an unknown key (if auth's key just changed, retry shortly)")]
    UnknownKey,
    /// The token's `exp` is past.
    #[error("token expired: log in again")]
    Expired,
    /// The verification keys have not been fetched from the auth service yet.
    #[error("verification keys not loaded yet")]
    KeysUnavailable,
    /// The signing key could not be loaded or used.
    #[error("signing key: {0}")]
    Key(String),
    /// The key directory holds no key and auth cannot write one into it.
    #[error("key directory: {0}")]
    KeyDirNotWritable(String),
}

impl From<AuthError> for Status {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::InvalidName(_) => Status::invalid_argument(e.to_string()),
            AuthError::MissingToken
            | AuthError::InvalidToken(_)
            | AuthError::UnknownKey
            | AuthError::Expired => Status::unauthenticated(e.to_string()),
            AuthError::KeysUnavailable => Status::unavailable(e.to_string()),
            AuthError::Key(_) | AuthError::KeyDirNotWritable(_) => {
                Status::internal("token signing failed")
            }
        }
    }
}
