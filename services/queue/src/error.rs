//! The store's error type.

/// Everything a [`crate::JobStore`] call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such job (never existed, or expired after its retention).
    #[error("job {0} not found")]
    NotFound(String),
    /// No such queue (no job was ever submitted to it).
    #[error("queue {0:?} not found (a queue exists from its first job on)")]
    QueueNotFound(String),
    /// The job is not in a state that allows the operation (e.g. cancel of a running job).
    #[error("job {id} is {status}; {action} needs it to be queued or scheduled")]
    InvalidState {
        /// The job.
        id: String,
        /// Its status.
        status: crate::Status,
        /// What was attempted.
        action: &'static str,
    },
    /// Could not get a Redis connection (Redis down, pool exhausted).
    #[error("redis connection unavailable: {0}")]
    Pool(#[from] deadpool_redis::PoolError),
    /// Redis answered with an error or the connection broke mid-call.
    #[error("redis error: {0}")]
    Redis(#[from] redis::RedisError),
    /// Redis returned data this version does not understand.
    #[error("corrupt data for {key}: {detail}")]
    Corrupt {
        /// The key.
        key: String,
        /// What is wrong.
        detail: String,
    },
    /// The store is shutting down.
    #[error("store is closed")]
    Closed,
    /// A batched call failed because Redis could not be reached (shared by the whole batch).
    #[error("redis unavailable: {0}")]
    Unavailable(String),
}

impl StoreError {
    /// True when the failure is the backend being unreachable (retry later, report
    /// `UNAVAILABLE`), not a problem with the request.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Pool(_)
                | StoreError::Redis(_)
                | StoreError::Closed
                | StoreError::Unavailable(_)
        )
    }
}
