//! Why a call is refused, and its one mapping to gRPC status codes.

use tonic::Status;

/// A refused call. Messages say what to do, never echo the credential.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// No `authorization: Bearer …` on the call.
    #[error("missing credentials: send `authorization: Bearer <token or API key>`")]
    Missing,
    /// The credential is malformed, tampered, expired, revoked or unknown.
    #[error("{0}")]
    Invalid(String),
    /// A valid credential without the scope the method needs.
    #[error("{0}")]
    Denied(String),
    /// Too many failed attempts with this key id: refused without checking.
    #[error("too many failed attempts; retry in {0} s")]
    TooManyFailures(u64),
    /// A request to manage keys is malformed (names the field and the rule).
    #[error("{0}")]
    InvalidArgument(String),
    /// Verification keys not loaded yet, or the key store unreachable.
    #[error("{0}")]
    Unavailable(String),
}

impl From<AccessError> for Status {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::Missing | AccessError::Invalid(_) => {
                Status::unauthenticated(e.to_string())
            }
            AccessError::Denied(_) => Status::permission_denied(e.to_string()),
            AccessError::TooManyFailures(_) => Status::resource_exhausted(e.to_string()),
            AccessError::InvalidArgument(_) => Status::invalid_argument(e.to_string()),
            AccessError::Unavailable(_) => Status::unavailable(e.to_string()),
        }
    }
}

impl From<pfc_auth::AuthError> for AccessError {
    fn from(e: pfc_auth::AuthError) -> Self {
        use pfc_auth::AuthError as A;
        match e {
            A::MissingToken => AccessError::Missing,
            A::KeysUnavailable => AccessError::Unavailable(e.to_string()),
            A::InvalidToken(_) | A::UnknownKey | A::Expired => AccessError::Invalid(e.to_string()),
            A::InvalidName(_) | A::Key(_) | A::KeyDirNotWritable(_) => {
                AccessError::Invalid(format!("invalid token: {e}"))
            }
        }
    }
}
