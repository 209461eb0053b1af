//! `pfc`: one binary, one subcommand per deployable role, plus `pfc dev` (everything in one
//! process) and tools (`probe`, `bench`). Each role's logic lives in its own crate; this file
//! only parses flags, sets up telemetry and hands over. See `docs/roles.md`.

mod apikey;
mod dev;
mod probe;
mod schedule;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
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
    /// Lame-duck delay after SIGTERM: health and readiness say NOT_SERVING while the servers
    /// keep accepting for this long, so endpoint removal reaches every proxy before they drain
    /// (e.g. `5s` in Kubernetes; 0 stops at once, as `pfc dev` does by default).
    #[arg(long, env = "PFC_SHUTDOWN_DELAY", default_value = "0s", value_parser = parse_duration, global = true)]
    shutdown_delay: Duration,
    /// Close gRPC connections gracefully after this age so long-lived clients (the gateway)
    /// reconnect and spread over new replicas behind a Service, e.g. `2m` (0: never).
    #[arg(long, env = "PFC_GRPC_MAX_CONNECTION_AGE", default_value = "0s", value_parser = parse_duration, global = true)]
    grpc_max_connection_age: Duration,
    /// Serve Prometheus metrics (`GET /metrics`, OpenMetrics text) on this address, e.g.
    /// `0.0.0.0:9090`; unset: no metrics listener (the gateway still serves `/metrics` on
    /// its HTTP port). See docs/operations.md for the metrics of each role.
    #[arg(long, env = "PFC_METRICS_ADDR", global = true)]
    metrics_addr: Option<std::net::SocketAddr>,
    #[command(subcommand)]
    command: Command,
}

/// A duration such as `500ms`, `5s`, `2m`, `1h30m` or `0` (the subset of humantime's syntax
/// the other `PFC_*` durations use).
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let (num, tail) = rest.split_at(digits);
        let unit_len = tail.len()
            - tail
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let (unit, tail) = tail.split_at(unit_len);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("invalid duration {s:?} (e.g. 5s, 500ms, 2m)"))?;
        total += match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n * 60),
            "h" => Duration::from_secs(n * 3600),
            _ => {
                return Err(format!(
                    "invalid duration {s:?}: unit must be ms, s, m or h"
                ))
            }
        };
        rest = tail;
    }
    Ok(total)
}

/// `pfc chat` flags: the chat role's own plus the Redis password file every Redis role takes.
#[derive(clap::Args)]
struct ChatArgs {
    #[command(flatten)]
    config: pfc_chat::Config,
    /// File holding the Redis password (e.g. a mounted Kubernetes Secret), read at startup;
    /// instead of `--redis-password`.
    #[arg(
        long,
        env = "PFC_REDIS_PASSWORD_FILE",
        conflicts_with = "redis_password"
    )]
    redis_password_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Everything in one process: JobService, workers, auth, chat and the gateway (in-memory
    /// store unless --redis-url is given). UI on http://localhost:8000, gRPC on :50051.
    Dev(dev::DevConfig),
    /// The jobs core: gRPC JobService in front of Redis.
    Jobs(pfc_jobs::Config),
    /// A worker: runs the built-in kinds with jobs from the jobs core (the worker protocol).
    Worker(pfc_worker::Config),
    /// The auth service: issues and verifies EdDSA JWTs, publishes its JWKS.
    Auth(pfc_auth::Config),
    /// The chat service: rooms, history, live messages and presence, over Redis.
    Chat(ChatArgs),
    /// The HTTP gateway: web UI, REST (origin-compatible and /api/v1), SSE, gRPC-web, OpenAPI.
    Gateway(pfc_gateway::Config),
    /// Health probe for container healthchecks: exit 0 when the target is healthy.
    Probe(probe::ProbeArgs),
    /// Load generator: submits jobs over gRPC and reports throughput, latency, CPU and memory.
    Bench(pfc_bench::Args),
    /// API keys for programs, CI and workers: create (printed once), list, revoke.
    Apikey(apikey::ApiKeyArgs),
    /// Schedules (cron or interval jobs, each tick fired once): list, get, create, pause,
    /// resume, delete.
    Schedule(schedule::ScheduleCliArgs),
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
            Command::Apikey(_) => "apikey",
            Command::Schedule(_) => "schedule",
        }
    }
}

/// `pfc worker --grpc-addr`/`PFC_GRPC_ADDR` given, or just the role's default (docs/roles.md).
/// Asked of the worker's matches only: clap panics (debug builds) on an id a subcommand
/// lacks, such as `grpc_addr` of `pfc probe`.
fn worker_addr_explicit(matches: &clap::ArgMatches) -> bool {
    matches
        .subcommand_matches("worker")
        .and_then(|m| m.value_source("grpc_addr"))
        .is_some_and(|source| source != ValueSource::DefaultValue)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let grpc_addr_explicit = worker_addr_explicit(&matches);
    match cli.command {
        Command::Probe(args) => return probe::run(args).await,
        Command::Bench(args) => return pfc_bench::run(args).await.map(|_| ()),
        Command::Apikey(args) => return apikey::run(args).await,
        Command::Schedule(args) => return schedule::run(args).await,
        _ => {}
    }
    let telemetry = pfc_telemetry::init(cli.command.role(), cli.log_format, &cli.log_filter)?;
    pfc_runtime::configure(pfc_runtime::ServeSettings {
        shutdown_delay: cli.shutdown_delay,
        max_connection_age: (!cli.grpc_max_connection_age.is_zero())
            .then_some(cli.grpc_max_connection_age),
    });
    if let Some(addr) = cli.metrics_addr {
        let l = pfc_runtime::bind(addr).await.context("metrics listener")?;
        // lives as long as the process: scrapes keep working while the role drains
        tokio::spawn(async move {
            if let Err(e) = pfc_metrics::serve(l, std::future::pending()).await {
                tracing::error!(error = %e, "metrics listener failed");
            }
        });
    }
    let shutdown = pfc_runtime::shutdown_signal();
    let password_file = "failed to read the Redis password file (PFC_REDIS_PASSWORD_FILE)";
    let result = match cli.command {
        Command::Dev(mut c) => {
            c.store.load_password_file().context(password_file)?;
            dev::run(c, shutdown).await
        }
        Command::Jobs(mut c) => {
            c.store.load_password_file().context(password_file)?;
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
        Command::Chat(ChatArgs {
            mut config,
            redis_password_file,
        }) => {
            if let Some(path) = redis_password_file {
                config.redis_password =
                    Some(pfc_redis::url::read_password_file(&path).context(password_file)?);
            }
            let l = pfc_runtime::bind(config.grpc_addr).await?;
            pfc_chat::run(l, config, shutdown).await
        }
        Command::Gateway(c) => {
            let l = pfc_runtime::bind(c.http_addr).await?;
            pfc_gateway::run(l, c, shutdown).await
        }
        Command::Probe(_) | Command::Bench(_) | Command::Apikey(_) | Command::Schedule(_) => {
            unreachable!("handled above")
        }
    };
    telemetry.shutdown();
    if let Err(e) = &result {
        tracing::error!(error = format!("{e:#}"), "exiting with error");
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Durations take the units the other `PFC_*` durations use; anything else is refused.
    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        for bad in ["", "5", "s", "5 s", "5x", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    /// Every subcommand gets past the explicit-address check: `pfc probe` has no `grpc_addr`,
    /// and asking its matches for one panicked in debug builds (every container healthcheck
    /// of a debug image failed); the worker still tells a given address from its default.
    #[test]
    fn explicit_worker_address_is_asked_of_the_worker_only() {
        Cli::command().debug_assert();
        let parse = |args: &[&str]| Cli::command().try_get_matches_from(args).unwrap();
        assert!(!worker_addr_explicit(&parse(&[
            "pfc",
            "probe",
            "grpc",
            "127.0.0.1:1"
        ])));
        assert!(!worker_addr_explicit(&parse(&["pfc", "jobs"])));
        assert!(!worker_addr_explicit(&parse(&["pfc", "worker"])));
        assert!(worker_addr_explicit(&parse(&[
            "pfc",
            "worker",
            "--grpc-addr",
            "0.0.0.0:50054"
        ])));
    }

    /// `pfc chat` takes `--redis-password-file` like the other Redis roles, and refuses it
    /// together with `--redis-password`; the serving settings are global flags.
    #[test]
    fn chat_takes_a_password_file() {
        let cli = Cli::try_parse_from([
            "pfc",
            "chat",
            "--redis-password-file",
            "/etc/pfc/redis/redis-password",
            "--shutdown-delay",
            "5s",
        ])
        .unwrap();
        assert_eq!(cli.shutdown_delay, Duration::from_secs(5));
        let Command::Chat(args) = cli.command else {
            panic!("not chat")
        };
        assert_eq!(
            args.redis_password_file.as_deref(),
            Some(std::path::Path::new("/etc/pfc/redis/redis-password"))
        );
        assert!(Cli::try_parse_from([
            "pfc",
            "chat",
            "--redis-password",
            "x",
            "--redis-password-file",
            "/f"
        ])
        .is_err());
    }
}
