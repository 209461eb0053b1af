//! `pfc schedule list|get|create|pause|resume|delete`: periodic jobs through
//! `pfc.jobs.v1.ScheduleService` on `--jobs-url`, with `PFC_TOKEN` when the server requires a
//! credential (reads need `jobs:read`, changes `jobs:admin`). docs/design.md, "Schedules".

use anyhow::Context;
use pfc_proto::jobs::v1 as pb;
use pfc_proto::jobs::v1::schedule_service_client::ScheduleServiceClient;

/// `pfc schedule` flags.
#[derive(Debug, clap::Args)]
pub struct ScheduleCliArgs {
    #[command(subcommand)]
    command: ScheduleCommand,
    /// The jobs core (gRPC).
    #[arg(
        long,
        env = "PFC_JOBS_URL",
        default_value = "http://127.0.0.1:50051",
        global = true
    )]
    jobs_url: String,
    /// Credential for the call, sent as `authorization: Bearer …`.
    #[arg(long, env = "PFC_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
enum ScheduleCommand {
    /// Every schedule: next and last fire, the last job's status.
    List,
    /// One schedule, as JSON-like detail.
    Get {
        /// Its name.
        name: String,
    },
    /// Create a schedule: `--cron` (5 or 6 fields, `--time-zone`) or `--every`, and its job.
    Create {
        /// Unique name (`[a-z0-9][a-z0-9._-]{0,63}`).
        name: String,
        /// Cron expression, e.g. "0 3 * * *" or "*/10 * * * * *" (seconds first).
        #[arg(long, conflicts_with = "every")]
        cron: Option<String>,
        /// IANA time zone of --cron (default UTC).
        #[arg(long)]
        time_zone: Option<String>,
        /// Fixed interval instead of --cron, e.g. 30s, 5m, 1h.
        #[arg(long, value_parser = humantime::parse_duration)]
        every: Option<std::time::Duration>,
        /// Kind of job (default uppercase).
        #[arg(long, default_value = "")]
        kind: String,
        /// Text input.
        #[arg(long, conflicts_with = "payload")]
        text: Option<String>,
        /// JSON input.
        #[arg(long)]
        payload: Option<String>,
        /// Queue (default `default`).
        #[arg(long, default_value = "")]
        queue: String,
        /// Skip ticks missed during an outage instead of firing the oldest once.
        #[arg(long)]
        skip_missed: bool,
        /// Create it paused.
        #[arg(long)]
        paused: bool,
    },
    /// Pause a schedule: it fires nothing until resumed.
    Pause {
        /// Its name.
        name: String,
    },
    /// Resume a schedule from the first tick after now.
    Resume {
        /// Its name.
        name: String,
    },
    /// Delete a schedule (its jobs stay).
    Delete {
        /// Its name.
        name: String,
    },
}

fn with_token<T>(token: Option<&str>, msg: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    if let Some(Ok(v)) = token.map(|t| format!("Bearer {}", t.trim()).parse()) {
        req.metadata_mut().insert("authorization", v);
    }
    req
}

/// Runs `pfc schedule …`.
pub async fn run(args: ScheduleCliArgs) -> anyhow::Result<()> {
    let channel = tonic::transport::Endpoint::from_shared(args.jobs_url.clone())
        .with_context(|| format!("invalid --jobs-url {:?}", args.jobs_url))?
        .connect()
        .await
        .with_context(|| format!("failed to connect to {}", args.jobs_url))?;
    let mut c = ScheduleServiceClient::new(channel);
    let t = args.token.as_deref();
    let failed = |s: tonic::Status| anyhow::anyhow!("{:?}: {}", s.code(), s.message());
    match args.command {
        ScheduleCommand::List => {
            let r = c
                .list_schedules(with_token(t, pb::ListSchedulesRequest {}))
                .await
                .map_err(failed)?
                .into_inner();
            print_list(&r.schedules);
        }
        ScheduleCommand::Get { name } => {
            let r = c
                .get_schedule(with_token(t, pb::GetScheduleRequest { name }))
                .await
                .map_err(failed)?
                .into_inner();
            print_list(r.schedule.as_slice());
        }
        ScheduleCommand::Create {
            name,
            cron,
            time_zone,
            every,
            kind,
            text,
            payload,
            queue,
            skip_missed,
            paused,
        } => {
            let schedule = pb::Schedule {
                name,
                cron: cron.unwrap_or_default(),
                time_zone: time_zone.unwrap_or_default(),
                every: every.map(|d| prost_types::Duration {
                    seconds: d.as_secs() as i64,
                    nanos: d.subsec_nanos() as i32,
                }),
                job: Some(pb::SubmitJobRequest {
                    kind,
                    text: text.unwrap_or_default(),
                    payload: payload.map(String::into_bytes).unwrap_or_default(),
                    queue,
                    ..Default::default()
                }),
                catch_up: if skip_missed {
                    pb::CatchUp::Skip
                } else {
                    pb::CatchUp::FireOnce
                } as i32,
                paused,
                ..Default::default()
            };
            let r = c
                .create_schedule(with_token(
                    t,
                    pb::CreateScheduleRequest {
                        schedule: Some(schedule),
                    },
                ))
                .await
                .map_err(failed)?
                .into_inner();
            print_list(r.schedule.as_slice());
        }
        ScheduleCommand::Pause { name } => update(&mut c, t, name, true).await?,
        ScheduleCommand::Resume { name } => update(&mut c, t, name, false).await?,
        ScheduleCommand::Delete { name } => {
            c.delete_schedule(with_token(
                t,
                pb::DeleteScheduleRequest { name: name.clone() },
            ))
            .await
            .map_err(failed)?;
            eprintln!("deleted {name}");
        }
    }
    Ok(())
}

async fn update(
    c: &mut ScheduleServiceClient<tonic::transport::Channel>,
    token: Option<&str>,
    name: String,
    paused: bool,
) -> anyhow::Result<()> {
    let r = c
        .update_schedule(with_token(
            token,
            pb::UpdateScheduleRequest {
                name,
                paused: Some(paused),
            },
        ))
        .await
        .map_err(|s| anyhow::anyhow!("{:?}: {}", s.code(), s.message()))?
        .into_inner();
    print_list(r.schedule.as_slice());
    Ok(())
}

fn ts(t: Option<&prost_types::Timestamp>) -> String {
    t.map(|t| {
        let ms = pfc_proto::timestamp_to_ms(t);
        humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64),
        )
        .to_string()
    })
    .unwrap_or_else(|| "-".into())
}

fn when(s: &pb::Schedule) -> String {
    match &s.every {
        Some(d) => format!(
            "every {}",
            humantime::format_duration(std::time::Duration::new(
                d.seconds.max(0) as u64,
                d.nanos.max(0) as u32
            ))
        ),
        None if s.time_zone.is_empty() || s.time_zone == "UTC" => s.cron.clone(),
        None => format!("{} ({})", s.cron, s.time_zone),
    }
}

fn print_list(list: &[pb::Schedule]) {
    println!(
        "{:<20}  {:<28}  {:<6}  {:<20}  {:<20}  LAST JOB",
        "NAME", "WHEN", "STATE", "NEXT", "LAST"
    );
    for s in list {
        let last = if !s.last_error.is_empty() {
            format!("error: {}", s.last_error)
        } else if s.last_job_id.is_empty() {
            "-".into()
        } else {
            format!(
                "{} {}",
                s.last_job_id,
                s.last_job_status()
                    .as_str_name()
                    .trim_start_matches("JOB_STATUS_")
                    .to_lowercase()
            )
        };
        println!(
            "{:<20}  {:<28}  {:<6}  {:<20}  {:<20}  {}",
            s.name,
            when(s),
            if s.paused { "paused" } else { "active" },
            ts(s.next_fire_time.as_ref()),
            ts(s.last_fire_time.as_ref()),
            last
        );
    }
}
