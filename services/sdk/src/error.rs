//! [`Error`]: everything a [`crate::Client`] call or a [`crate::Worker`] can fail with.

use std::time::Duration;

/// Why an SDK call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL is not an `http://` or `https://` URL.
    #[error("invalid pfc URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The jobs core could not be reached.
    #[error("failed to connect to {url}: {source}")]
    Connect {
        /// The URL dialled.
        url: String,
        /// The transport error.
        #[source]
        source: tonic::transport::Error,
    },
    /// The jobs core answered with an error status (e.g. `NOT_FOUND`, `INVALID_ARGUMENT`).
    #[error("pfc answered {}: {}", .0.code(), .0.message())]
    Status(#[from] tonic::Status),
    /// [`crate::Client::wait`] gave up before the job ended.
    #[error("job {job_id} did not finish within {timeout:?}")]
    Timeout {
        /// The job.
        job_id: String,
        /// How long it waited.
        timeout: Duration,
    },
    /// A payload could not be encoded, or a result decoded, as JSON.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A result was asked for as JSON but is not JSON.
    #[error("the job's result is {0:?}, not JSON")]
    NotJson(String),
    /// The worker's configuration was refused (by the SDK or by the jobs core's Hello
    /// validation): a bad kind name, a concurrency out of range. Not retried.
    #[error("invalid worker configuration: {0}")]
    Config(String),
}

impl Error {
    /// The gRPC status, when the jobs core answered with one.
    pub fn status(&self) -> Option<&tonic::Status> {
        match self {
            Error::Status(s) => Some(s),
            _ => None,
        }
    }
}
