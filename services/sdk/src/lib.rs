//! The Rust SDK for pfc: submit and follow jobs with a [`Client`], run your own code for
//! your own kinds with a [`Worker`].
//!
//! A worker connects to the jobs core's `pfc.worker.v1.WorkerService` (the protocol is in
//! `docs/workers.md`), declares the kinds it handles and how many jobs it runs at once, and
//! gets jobs as it has free slots — with the guarantees of pfc's built-in worker, which is
//! built on this crate: at-least-once delivery, leases kept alive while it runs, a killed
//! worker's jobs redelivered at once, retries with backoff, graceful shutdown.
//!
//! ```no_run
//! use pfc_sdk::{Client, Job, Worker};
//!
//! # async fn demo() -> Result<(), pfc_sdk::Error> {
//! // a worker for the kind "greet"
//! let worker = Worker::new("http://127.0.0.1:50051")
//!     .handle("greet", |job: Job| async move {
//!         let name: String = job.json()?;
//!         Ok(serde_json::json!({ "greeting": format!("hello {name}") }))
//!     });
//! tokio::spawn(worker.run());
//!
//! // a client submitting one and waiting for it
//! let client = Client::connect("http://127.0.0.1:50051").await?;
//! let id = client.submit("greet", "Ada").await?;
//! let job = client.wait(&id, std::time::Duration::from_secs(10)).await?;
//! let result: Option<serde_json::Value> = job.result_json()?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - `client`: [`Client`], [`Submit`], [`JobInfo`], [`JobStatus`].
//! - `worker`: [`Worker`] and its run loop (streams, reconnects, resume, shutdown).
//! - `job`: what handlers get and give: [`Job`], [`Output`], [`HandlerError`], [`ResultExt`].
//! - `error`: [`Error`].
//! - `metrics`: the worker's Prometheus metrics (run times, slots, leases lost).

mod client;
mod error;
mod job;
mod metrics;
mod worker;

pub use client::{Client, JobInfo, JobStatus, Submit};
pub use error::Error;
pub use job::{HandlerError, Job, Output, ResultExt, JSON, TEXT};
pub use worker::{Worker, SDK};

/// The generated protobuf types and clients (`pfc.jobs.v1`, `pfc.worker.v1`), for what the
/// SDK does not wrap.
pub use pfc_proto as proto;
