//! pfc's worker: takes leased jobs from the store, runs their processor, reports back.
//!
//! One fetch loop per process leases as many jobs as there are free slots (one store call
//! for a batch), each job runs in its own task under a span that continues the submitter's
//! trace, and reports are batched by a completer task (one pipelined round trip for many
//! jobs). A heartbeat task renews the leases of every job still held — running, or done but
//! not yet reported — so a live worker never loses a job it is working on, and a dead one
//! loses its jobs to another worker within the lease time.
//!
//! Shutdown (SIGTERM): stop taking work, let running jobs finish and report within
//! `--shutdown-timeout`, then give the rest back to the queue ([`pfc_queue::JobStore::release`]).
//!
//! # Layout
//! - [`Config`] / [`WorkerArgs`]: flags and env.
//! - [`Worker`]: the loops; [`Worker::run`].
//! - [`run`]: the `pfc worker` role (worker + gRPC health endpoint).

mod worker;

pub use worker::{run, Config, Worker, WorkerArgs};
