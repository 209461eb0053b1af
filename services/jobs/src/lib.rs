//! pfc's jobs core: the gRPC `pfc.jobs.v1.JobService` in front of the job store.
//!
//! Stateless: any number of replicas can serve the same Redis. Validation happens here
//! (size limits, known kinds), so the store only ever sees well-formed jobs; every store
//! error becomes a gRPC status in one place (`error.rs`). Health follows the store.
//!
//! # Layout
//! - `service`: the tonic service ([`Jobs`]) and request [`Limits`].
//! - `server`: [`Config`], [`run`] (the `pfc jobs` role), [`background`] duties.
//! - `convert`: store model ↔ protobuf.
//! - `error`: [`JobError`] and its mapping to `tonic::Status`.

pub mod convert;
pub mod error;
pub mod server;
pub mod service;

pub use error::JobError;
pub use server::{background, run, service, Config, LimitArgs, SERVICE_NAME};
pub use service::{Jobs, Limits};
