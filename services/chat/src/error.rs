//! The chat error type and its one mapping to gRPC status codes.

use tonic::Status;

/// Everything that can go wrong in the chat role.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// A request field is invalid (room name, text, id, limit).
    #[error("{0}")]
    InvalidArgument(String),
    /// The caller has no valid token.
    #[error(transparent)]
    Auth(#[from] pfc_auth::AuthError),
    /// The caller sends faster than the rate limit allows.
    #[error(
        "rate limit exceeded: at most {rate} {what}/s (burst {burst}); retry in {retry_ms} ms"
    )]
    RateLimited {
        /// What is limited (`messages`, `typing signals`).
        what: &'static str,
        /// Sustained rate.
        rate: f64,
        /// Burst size.
        burst: f64,
        /// When a send will be allowed again.
        retry_ms: u64,
    },
    /// A Redis command failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Stored data could not be understood.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// The server is shutting down.
    #[error("server is shutting down")]
    ShuttingDown,
}

impl From<ChatError> for Status {
    fn from(e: ChatError) -> Self {
        match e {
            ChatError::InvalidArgument(_) => Status::invalid_argument(e.to_string()),
            ChatError::Auth(a) => a.into(),
            ChatError::RateLimited { .. } => Status::resource_exhausted(e.to_string()),
            ChatError::Redis(ref err) => {
                tracing::error!(error = %err, "redis command failed");
                Status::unavailable("chat store unavailable")
            }
            ChatError::Corrupt(ref what) => {
                tracing::error!(what = %what, "corrupt chat data");
                Status::internal("corrupt chat data")
            }
            ChatError::ShuttingDown => Status::unavailable(e.to_string()),
        }
    }
}
