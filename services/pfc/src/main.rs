//! `pfc`: one binary, one subcommand per deployable role, plus `pfc dev` (everything in one
//! process) and tools (`probe`, `bench`). Each role's logic lives in its own crate; this file
//! only parses flags, sets up telemetry and hands over. See `docs/roles.md`.

mod dev;
mod probe;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// pfc: jobs and chat on a Rust gRPC core.
#[derive(Parser)]
#[command(name = "pfc", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// Log format: text or json.
    #[arg(long, env = "PFC_LOG_FORMAT", default_value = "text", global = true)]
    log_format: pfc_telemetry::LogFormat,
    /// Log filter (RUST_LOG syntax), e.g. `info` or `pfc_jobs=debug,info`.
    #[arg(long = "log", env = "PFC_LOG", default_value = "info", global = true)]
    log_filter: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Everything in one process: JobService, workers, auth, chat and the gateway (in-memory
    /// store unless --redis-url is given). UI on http://localhost:8000, gRPC on :50051.
    Dev(dev::DevConfig),
    /// The jobs core: gRPC JobService in front of Redis.
    Jobs(pfc_jobs::Config),
    /// A worker: runs jobs from Redis.
    Worker(pfc_worker::Config),
    /// The auth service: issues and verifies EdDSA JWTs, publishes its JWKS.
    Auth(pfc_auth::Config),
    /// The chat service: rooms, history, live messages and presence, over Redis.
    Chat(pfc_chat::Config),
    /// The HTTP gateway: web UI, REST (origin-compatible and /api/v1), SSE, gRPC-web, OpenAPI.
    Gateway(pfc_gateway::Config),
    /// Health probe for container healthchecks: exit 0 when the target is healthy.
    Probe(probe::ProbeArgs),
    /// Load generator: submits jobs over gRPC and reports throughput, latency, CPU and memory.
    Bench(pfc_bench::Args),
}

impl Command {
    fn role(&self) -> &'static str {
        match self {
            Command::Dev(_) => "dev",
            Command::Jobs(_) => "jobs",
            Command::Worker(_) => "worker",
            Command::Auth(_) => "auth",
            Command::Chat(_) => "chat",
            Command::Gateway(_) => "gateway",
            Command::Probe(_) => "probe",
            Command::Bench(_) => "bench",
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // `--grpc-addr`/`PFC_GRPC_ADDR` given, or just the role's default (docs/roles.md)
    let grpc_addr_explicit = matches
        .subcommand()
        .and_then(|(_, m)| m.value_source("grpc_addr"))
        .is_some_and(|source| source != ValueSource::DefaultValue);
    match cli.command {
        Command::Probe(args) => return probe::run(args).await,
        Command::Bench(args) => return pfc_bench::run(args).await.map(|_| ()),
        _ => {}
    }
    let telemetry = pfc_telemetry::init(cli.command.role(), cli.log_format, &cli.log_filter)?;
    let shutdown = pfc_runtime::shutdown_signal();
    let result = match cli.command {
        Command::Dev(c) => dev::run(c, shutdown).await,
        Command::Jobs(c) => {
            let l = pfc_runtime::bind(c.grpc_addr).await?;
            pfc_jobs::run(l, c, shutdown).await
        }
        Command::Worker(c) => {
            // Nothing dials a worker but its health probes, so two workers on one host must
            // both start with their defaults: a taken default port falls back to an
            // ephemeral one. An address that was asked for fails loudly (Kubernetes probes).
            let l = if grpc_addr_explicit {
                pfc_runtime::bind(c.grpc_addr).await?
            } else {
                pfc_runtime::bind_default(c.grpc_addr).await?
            };
            pfc_worker::run(l, c, shutdown).await
        }
        Command::Auth(c) => {
            let l = pfc_runtime::bind(c.grpc_addr).await?;
            pfc_auth::run(l, c, shutdown).await
        }
        Command::Chat(c) => {
            let l = pfc_runtime::bind(c.grpc_addr).await?;
            pfc_chat::run(l, c, shutdown).await
        }
        Command::Gateway(c) => {
            let l = pfc_runtime::bind(c.http_addr).await?;
            pfc_gateway::run(l, c, shutdown).await
        }
        Command::Probe(_) | Command::Bench(_) => unreachable!("handled above"),
    };
    telemetry.shutdown();
    if let Err(e) = &result {
        tracing::error!(error = format!("{e:#}"), "exiting with error");
    }
    result
}
