//! A pfc worker written with the Rust SDK: two kinds of your own, JSON in and out.
//!
//! ```text
//! cargo run -p pfc -- dev                              # the jobs core (and UI) on :50051 / :8000
//! cargo run -p pfc-sdk --example worker                # this worker
//! grpcurl -plaintext -d '{"kind":"thumbnail","payload":"eyJ3aWR0aCI6NjQwLCJoZWlnaHQiOjQ4MH0="}' \
//!     localhost:50051 pfc.jobs.v1.JobService/SubmitJob # payload: base64 of {"width":640,"height":480}
//! curl -s localhost:8000/api/v1/jobs -H 'content-type: application/json' \
//!     -d '{"kind":"thumbnail","payload":{"width":640,"height":480}}'
//! ```
//!
//! - `thumbnail`: `{"width": w, "height": h, "delay_ms"?: n}` → `{"width": w/2, "height": h/2,
//!   "pixels": …}`, reporting progress halfway; a missing or zero size is a permanent failure.
//! - `flaky`: fails (retryably) until attempt `succeed_on` (never, without it): shows retries
//!   with backoff and, when attempts run out, the handler's message as the job's error.
//!
//! Settings from the environment: `PFC_JOBS_URL` (default `http://127.0.0.1:50051`),
//! `PFC_WORKER_CONCURRENCY` (8), `PFC_WORKER_NAME` (`example`). Stops gracefully on SIGTERM.

use std::time::Duration;

use pfc_sdk::{HandlerError, Job, Output, Worker};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Thumbnail {
    width: u32,
    height: u32,
    #[serde(default)]
    delay_ms: u64,
}

#[derive(Serialize)]
struct Thumb {
    width: u32,
    height: u32,
    pixels: u64,
}

async fn thumbnail(job: Job) -> Result<Output, HandlerError> {
    let input: Thumbnail = job.json()?; // input that does not parse fails at once
    if input.width == 0 || input.height == 0 {
        return Err(HandlerError::permanent("width and height must be positive"));
    }
    let half = Duration::from_millis(input.delay_ms.min(60_000) / 2);
    tokio::time::sleep(half).await;
    job.progress(50);
    tokio::time::sleep(half).await;
    let (width, height) = (input.width / 2, input.height / 2);
    Output::json(&Thumb {
        width,
        height,
        pixels: u64::from(width) * u64::from(height),
    })
}

#[derive(Deserialize, Default)]
struct Flaky {
    #[serde(default)]
    succeed_on: Option<u32>,
}

async fn flaky(job: Job) -> Result<serde_json::Value, HandlerError> {
    let input: Flaky = job.json().unwrap_or_default();
    match input.succeed_on {
        Some(n) if job.attempt() >= n => Ok(serde_json::json!({ "attempt": job.attempt() })),
        _ => Err(HandlerError::retryable(format!(
            "flaky: attempt {} of {} failed",
            job.attempt(),
            job.max_attempts()
        ))),
    }
}

#[tokio::main]
async fn main() -> Result<(), pfc_sdk::Error> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_owned());
    let url = env("PFC_JOBS_URL", "http://127.0.0.1:50051");
    let concurrency = env("PFC_WORKER_CONCURRENCY", "8").parse().unwrap_or(8);
    Worker::new(url)
        .name(env("PFC_WORKER_NAME", "example"))
        .concurrency(concurrency)
        .handle("thumbnail", thumbnail)
        .handle("flaky", flaky)
        .run()
        .await
}
