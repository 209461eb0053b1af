//! [`ScheduleError`]: what the schedule store can fail with.

use pfc_queue::StoreError;

/// Everything a schedule store call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// No schedule by that name.
    #[error("schedule {0:?} not found")]
    NotFound(String),
    /// A schedule by that name exists already.
    #[error("schedule {0:?} already exists")]
    AlreadyExists(String),
    /// The store holds [`crate::MAX_SCHEDULES`] schedules.
    #[error("the store holds {0} schedules, the limit")]
    Full(usize),
    /// Redis failed (through the job store's connection layer).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Stored data this version does not understand.
    #[error("corrupt schedule {name:?}: {detail}")]
    Corrupt {
        /// The schedule.
        name: String,
        /// What is wrong.
        detail: String,
    },
}

impl From<redis::RedisError> for ScheduleError {
    fn from(e: redis::RedisError) -> Self {
        ScheduleError::Store(StoreError::Redis(e))
    }
}

impl ScheduleError {
    /// True when the store could not be reached: retry later.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, ScheduleError::Store(e) if e.is_unavailable())
    }
}
