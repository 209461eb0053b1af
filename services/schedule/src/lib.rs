//! pfc's schedules: jobs submitted on a cron expression or a fixed interval, each tick
//! **exactly once** however many `pfc jobs` replicas run.
//!
//! A [`Schedule`] names when ([`Spec`]: cron in a time zone, or an interval) and what (a
//! `SubmitJobRequest` template). The [`Scheduler`] — run by every `pfc jobs` process, elected
//! so one fires at a time — submits each due tick through the ordinary
//! [`pfc_queue::JobStore::submit`] with the idempotency key `schedule:<name>:<tick-ms>`, then
//! advances the schedule's `next` with a compare-and-set. The reasoning (Redis time, election,
//! the key, the CAS, catch-up) is in `docs/design.md`, "Schedules".
//!
//! # Layout
//! - `spec`: [`Spec`], cron and interval tick arithmetic (DST-aware), with its unit tests.
//! - `model`: [`Schedule`], [`ScheduleState`], [`LastFire`], [`CatchUp`], the idempotency key.
//! - `error`: [`ScheduleError`].
//! - `memory`: [`MemoryScheduleStore`] (`pfc dev`, tests).
//! - `redis_store`: [`RedisScheduleStore`] and its Lua scripts (`src/lua/*.lua`).
//! - `scheduler`: [`Scheduler`], the loop that fires due ticks.
//! - `declared`: schedules declared in a file ([`DeclaredSchedules`]), applied at startup.
//! - `contract`: the behaviour both stores must have, as reusable async checks.

pub mod contract;
pub mod declared;
pub mod error;
pub mod memory;
pub mod model;
pub mod redis_store;
pub mod scheduler;
pub mod spec;

use std::time::Duration;

use async_trait::async_trait;

pub use declared::DeclaredSchedules;
pub use error::ScheduleError;
pub use memory::MemoryScheduleStore;
pub use model::{idempotency_key, CatchUp, LastFire, Schedule, ScheduleState, Source};
pub use redis_store::RedisScheduleStore;
pub use scheduler::{Scheduler, SKIP_GRACE_MS};
pub use spec::{Spec, SpecError};

/// Result alias for schedule store calls.
pub type Result<T, E = ScheduleError> = std::result::Result<T, E>;

/// Most schedules one store holds (the scheduler reads them whole each round).
pub const MAX_SCHEDULES: usize = 1000;

/// Where schedules live: the job store's Redis (own hash slot) or memory. Every change is
/// atomic; `advance` and `replace` are compare-and-set, which is what makes several
/// schedulers safe (`docs/design.md`, "Schedules").
#[async_trait]
pub trait ScheduleStore: Send + Sync + 'static {
    /// The store's clock (Redis `TIME`), Unix ms: the one clock every replica agrees on.
    async fn now(&self) -> Result<i64>;

    /// Takes or renews the scheduler election for `instance` with a `term`; returns the store
    /// time when `instance` leads now, `None` when another instance does.
    async fn lead(&self, instance: &str, term: Duration) -> Result<Option<i64>>;

    /// Stores a new schedule with its first tick. [`ScheduleError::AlreadyExists`] when the
    /// name is taken, [`ScheduleError::Full`] at [`MAX_SCHEDULES`].
    async fn create(&self, schedule: &Schedule, next_ms: Option<i64>) -> Result<()>;

    /// One schedule with its state.
    async fn get(&self, name: &str) -> Result<Option<ScheduleState>>;

    /// Every schedule, by name.
    async fn list(&self) -> Result<Vec<ScheduleState>>;

    /// Names and next ticks of the schedules due at `now_ms` (next ≤ now).
    async fn due(&self, now_ms: i64) -> Result<Vec<(String, i64)>>;

    /// Replaces the definition `expected` with `new` and sets the next tick to `next_ms`
    /// (`Some(None)` clears it, `None` leaves it): false when the stored definition is no
    /// longer `expected` (someone else changed it). [`ScheduleError::NotFound`] when gone.
    async fn replace(
        &self,
        expected: &Schedule,
        new: &Schedule,
        next_ms: Option<Option<i64>>,
    ) -> Result<bool>;

    /// Moves `next` from `expected_next` to `next_ms` and records `last` (when given): false,
    /// changing nothing, when `next` is no longer `expected_next` (another scheduler advanced
    /// it, or the schedule was paused, changed or deleted).
    async fn advance(
        &self,
        name: &str,
        expected_next: i64,
        next_ms: Option<i64>,
        last: Option<&LastFire>,
    ) -> Result<bool>;

    /// Deletes a schedule; false when there was none.
    async fn delete(&self, name: &str) -> Result<bool>;
}
