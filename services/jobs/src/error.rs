//! The one place where job errors become gRPC statuses.

use pfc_queue::StoreError;
use tonic::Status;

/// Everything a JobService call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The request is malformed; the message says which field and why.
    #[error("{0}")]
    InvalidArgument(String),
    /// The payload is larger than the server accepts (`RESOURCE_EXHAUSTED`, like a request
    /// message over the size limit; the gateway answers 413).
    #[error("payload too large: {size} bytes, the limit is {limit} bytes")]
    PayloadTooLarge {
        /// Size of the payload.
        size: usize,
        /// `--max-payload-bytes`.
        limit: usize,
    },
    /// Unknown or expired job.
    #[error("job {0} not found (unknown id, or expired after its retention time)")]
    NotFound(String),
    /// Unknown queue.
    #[error("queue {0:?} not found (a queue exists from its first job on)")]
    QueueNotFound(String),
    /// The job's state forbids the operation.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for JobError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(id) => JobError::NotFound(id),
            StoreError::QueueNotFound(q) => JobError::QueueNotFound(q),
            e @ StoreError::InvalidState { .. } => JobError::FailedPrecondition(e.to_string()),
            e => JobError::Store(e),
        }
    }
}

impl From<JobError> for Status {
    fn from(e: JobError) -> Self {
        match e {
            JobError::InvalidArgument(m) => Status::invalid_argument(m),
            e @ JobError::PayloadTooLarge { .. } => Status::resource_exhausted(e.to_string()),
            e @ (JobError::NotFound(_) | JobError::QueueNotFound(_)) => {
                Status::not_found(e.to_string())
            }
            JobError::FailedPrecondition(m) => Status::failed_precondition(m),
            JobError::Store(e) if e.is_unavailable() => {
                tracing::warn!(error = %e, "job store unavailable");
                Status::unavailable("job store unavailable; retry later")
            }
            JobError::Store(e) => {
                tracing::error!(error = %e, "job store error");
                Status::internal("internal job store error")
            }
        }
    }
}
