//! pfc's jobs core: the gRPC `pfc.jobs.v1.JobService` in front of the job store, and the
//! `pfc.worker.v1.WorkerService` through which workers in any language run its jobs.
//!
//! Stateless: any number of replicas can serve the same Redis. Validation happens here
//! (size limits, kind names, JSON payloads), so the store only ever sees well-formed jobs;
//! every store error becomes a gRPC status in one place (`error.rs`). Health follows the store.
//!
//! # Layout
//! - `service`: the tonic service ([`Jobs`]) and request [`Limits`].
//! - `hub`: the watch [`Hub`]: one event reader per process, routing each transition only to
//!   the `WatchJob`/`WatchJobs` streams that want it.
//! - `worker_service`: `pfc.worker.v1.WorkerService` ([`Workers`]), the worker protocol.
//! - `schedule_service`: `pfc.jobs.v1.ScheduleService` ([`Schedules`]) and the scheduler duty.
//! - `metrics`: the core's Prometheus metrics (jobs submitted and finished, queue gauges).
//! - `server`: [`Config`], [`run`] (the `pfc jobs` role), [`background`] duties.
//! - `validate`: the stateless rules of a submit (kind names, content types).
//! - `convert`: store model ↔ protobuf.
//! - `error`: [`JobError`] and its mapping to `tonic::Status`.

pub mod convert;
pub mod error;
pub mod hub;
pub mod metrics;
pub mod schedule_service;
pub mod server;
pub mod service;
pub mod validate;
pub mod worker_service;

pub use error::JobError;
pub use hub::Hub;
pub use schedule_service::{ScheduleArgs, Schedules, SCHEDULE_SERVICE_NAME};
pub use server::{api_keys, background, guarded, run, service, Config, LimitArgs, SERVICE_NAME};
pub use service::{Jobs, Limits};
pub use worker_service::{WorkerServiceArgs, Workers, WORKER_SERVICE_NAME};
