//! Schedules end to end: `pfc jobs` replicas (the role's own `run`, in this process) on one
//! real redis-server, the ScheduleService over gRPC on loopback, and the jobs they fire read
//! back through the JobService.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{store_args, JobsServer};
use pfc_proto::jobs::v1 as pb;
use pfc_proto::jobs::v1::schedule_service_client::ScheduleServiceClient;
use pfc_testkit::RedisServer;
use tonic::transport::Channel;
use tonic::Code;

async fn schedules(addr: SocketAddr) -> ScheduleServiceClient<Channel> {
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    ScheduleServiceClient::new(ch)
}

fn every(name: &str, ms: u64) -> pb::Schedule {
    let d = Duration::from_millis(ms);
    pb::Schedule {
        name: name.into(),
        every: Some(prost_types::Duration {
            seconds: d.as_secs() as i64,
            nanos: d.subsec_nanos() as i32,
        }),
        job: Some(pb::SubmitJobRequest {
            kind: "uppercase".into(),
            text: format!("tick of {name}"),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn create(c: &mut ScheduleServiceClient<Channel>, s: pb::Schedule) -> pb::Schedule {
    c.create_schedule(pb::CreateScheduleRequest { schedule: Some(s) })
        .await
        .unwrap()
        .into_inner()
        .schedule
        .unwrap()
}

/// The tick times (from the idempotency keys `schedule:<name>:<tick-ms>`) of every job the
/// schedule `name` fired, sorted, read through the JobService.
async fn ticks_of(server: &JobsServer, name: &str) -> Vec<i64> {
    let mut c = server.client().await;
    let prefix = format!("schedule:{name}:");
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let page = c
            .list_jobs(pb::ListJobsRequest {
                page_size: 200,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        for j in page.jobs {
            if j.text == format!("tick of {name}") {
                let tick = j
                    .idempotency_key
                    .strip_prefix(&prefix)
                    .unwrap_or_else(|| panic!("a scheduled job without its tick key: {j:?}"));
                out.push(tick.parse::<i64>().unwrap());
            }
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    out.sort();
    out
}

/// The issue's test: a schedule every 2 s, two `pfc jobs` replicas on one redis-server, one
/// of them (the first started, so the likely leader) stopped after 6 s and started again at
/// 10 s. Over 20 s every tick is exactly one job: the ticks in the idempotency keys are
/// consecutive multiples of 2 s — none twice, none skipped across the failover.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_tick_fires_once_across_two_replicas_and_a_restart() {
    let redis = RedisServer::start();
    let args = store_args(Some(redis.url()));
    let a = JobsServer::start(args.clone()).await;
    let b = JobsServer::start(args.clone()).await;
    let mut c = schedules(b.addr).await;
    let created = create(&mut c, every("every2s", 2_000)).await;
    assert!(created.next_fire_time.is_some());
    let t0 = tokio::time::Instant::now();
    // the run is 20 s of wall time by design: the failover must happen between ticks
    tokio::time::sleep_until(t0 + Duration::from_secs(6)).await;
    a.stop.trigger();
    a.task.await.unwrap().unwrap();
    tokio::time::sleep_until(t0 + Duration::from_secs(10)).await;
    let a = JobsServer::start(args.clone()).await;
    tokio::time::sleep_until(t0 + Duration::from_secs(20)).await;
    c.update_schedule(pb::UpdateScheduleRequest {
        name: "every2s".into(),
        paused: Some(true),
    })
    .await
    .unwrap();
    let ticks = ticks_of(&a, "every2s").await;
    let mut distinct = ticks.clone();
    distinct.dedup();
    assert_eq!(distinct, ticks, "a tick fired twice");
    for w in ticks.windows(2) {
        assert_eq!(
            w[1] - w[0],
            2_000,
            "consecutive ticks, none skipped: {ticks:?}"
        );
    }
    // 10 ticks in 20 s; generous for a loaded machine (each tick is checked above anyway)
    assert!(ticks.len() >= 7, "too few ticks in 20 s: {ticks:?}");
    let got = c
        .get_schedule(pb::GetScheduleRequest {
            name: "every2s".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .schedule
        .unwrap();
    let last = pfc_proto::timestamp_to_ms(got.last_fire_time.as_ref().unwrap());
    assert_eq!(
        Some(&last),
        ticks.last(),
        "last fire is the last job's tick"
    );
    assert!(!got.last_job_id.is_empty());
    assert!(got.paused && got.next_fire_time.is_none());
    eprintln!("every2s: {} ticks over 20 s across a restart", ticks.len());
}

/// A paused schedule fires nothing: a running schedule beside it is the clock (three of its
/// ticks pass), while one created paused and one paused after creation make no job; resumed,
/// it fires again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_schedule_fires_nothing() {
    let redis = RedisServer::start();
    let server = JobsServer::start(store_args(Some(redis.url()))).await;
    let mut c = schedules(server.addr).await;
    let mut asleep = every("asleep", 1_000);
    asleep.paused = true;
    let asleep = create(&mut c, asleep).await;
    assert!(asleep.paused && asleep.next_fire_time.is_none());
    create(&mut c, every("stopped", 1_000)).await;
    c.update_schedule(pb::UpdateScheduleRequest {
        name: "stopped".into(),
        paused: Some(true),
    })
    .await
    .unwrap();
    create(&mut c, every("clock", 1_000)).await;
    pfc_testkit::wait_until(
        "three ticks of the clock",
        Duration::from_secs(30),
        || async { (ticks_of(&server, "clock").await.len() >= 3).then_some(()) },
    )
    .await;
    assert!(ticks_of(&server, "asleep").await.is_empty());
    assert!(ticks_of(&server, "stopped").await.is_empty());
    let resumed = c
        .update_schedule(pb::UpdateScheduleRequest {
            name: "stopped".into(),
            paused: Some(false),
        })
        .await
        .unwrap()
        .into_inner()
        .schedule
        .unwrap();
    assert!(!resumed.paused && resumed.next_fire_time.is_some());
    pfc_testkit::wait_until(
        "the resumed schedule fires",
        Duration::from_secs(30),
        || async { (!ticks_of(&server, "stopped").await.is_empty()).then_some(()) },
    )
    .await;
    let list = c
        .list_schedules(pb::ListSchedulesRequest {})
        .await
        .unwrap()
        .into_inner()
        .schedules;
    let names: Vec<_> = list.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["asleep", "clock", "stopped"]);
    let clock = &list[1];
    assert!(clock.last_fire_time.is_some() && !clock.last_job_id.is_empty());
    assert_ne!(
        clock.last_job_status(),
        pb::JobStatus::Unspecified,
        "{clock:?}"
    );
    c.delete_schedule(pb::DeleteScheduleRequest {
        name: "clock".into(),
    })
    .await
    .unwrap();
}

/// Bad input is INVALID_ARGUMENT naming the field; duplicates ALREADY_EXISTS; unknown names
/// NOT_FOUND.
#[tokio::test]
async fn bad_input_names_the_field() {
    let redis = RedisServer::start();
    let server = JobsServer::start(store_args(Some(redis.url()))).await;
    let mut c = schedules(server.addr).await;
    let cases: Vec<(pb::Schedule, &str)> = vec![
        (
            pb::Schedule {
                cron: "61 * * * *".into(),
                every: None,
                ..every("a", 1_000)
            },
            "cron",
        ),
        (
            pb::Schedule {
                cron: "* * *".into(),
                every: None,
                ..every("a", 1_000)
            },
            "cron",
        ),
        (
            pb::Schedule {
                cron: "0 3 * * *".into(),
                time_zone: "Mars/Olympus".into(),
                every: None,
                ..every("a", 1_000)
            },
            "time_zone",
        ),
        (
            pb::Schedule {
                cron: "0 3 * * *".into(),
                ..every("a", 1_000)
            },
            "exactly one of cron and every",
        ),
        (every("a", 10), "every"),
        (every("Bad Name", 1_000), "name"),
        (
            pb::Schedule {
                job: None,
                ..every("a", 1_000)
            },
            "job is required",
        ),
        (
            pb::Schedule {
                job: Some(pb::SubmitJobRequest {
                    text: "x".into(),
                    idempotency_key: "k".into(),
                    ..Default::default()
                }),
                ..every("a", 1_000)
            },
            "job.idempotency_key",
        ),
        (
            pb::Schedule {
                job: Some(pb::SubmitJobRequest {
                    kind: "NO SUCH".into(),
                    text: "x".into(),
                    ..Default::default()
                }),
                ..every("a", 1_000)
            },
            "job.kind",
        ),
        (
            pb::Schedule {
                job: Some(pb::SubmitJobRequest::default()),
                ..every("a", 1_000)
            },
            "job.text",
        ),
        (
            pb::Schedule {
                catch_up: 9,
                ..every("a", 1_000)
            },
            "catch_up",
        ),
    ];
    for (s, field) in cases {
        let e = c
            .create_schedule(pb::CreateScheduleRequest {
                schedule: Some(s.clone()),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{s:?}: {e:?}");
        assert!(e.message().contains(field), "{field}: {}", e.message());
    }
    let ok = create(
        &mut c,
        pb::Schedule {
            cron: "0 3 * * *".into(),
            time_zone: "Europe/Berlin".into(),
            every: None,
            catch_up: pb::CatchUp::Skip as i32,
            ..every("nightly", 1_000)
        },
    )
    .await;
    assert_eq!(ok.time_zone, "Europe/Berlin");
    assert_eq!(ok.catch_up(), pb::CatchUp::Skip);
    assert_eq!(ok.source(), pb::ScheduleSource::Api);
    let e = c
        .create_schedule(pb::CreateScheduleRequest {
            schedule: Some(every("nightly", 1_000)),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
    for e in [
        c.get_schedule(pb::GetScheduleRequest {
            name: "nope".into(),
        })
        .await
        .unwrap_err(),
        c.delete_schedule(pb::DeleteScheduleRequest {
            name: "nope".into(),
        })
        .await
        .unwrap_err(),
        c.update_schedule(pb::UpdateScheduleRequest {
            name: "nope".into(),
            paused: Some(true),
        })
        .await
        .unwrap_err(),
    ] {
        assert_eq!(e.code(), Code::NotFound, "{e:?}");
    }
}

/// Schedules declared in a file (the JSON the chart renders from `jobs.schedules`) exist after
/// a fresh start, once however many replicas apply the file, with `source = CONFIG`; a pause
/// set through the API survives a restart that applies the file again; a bad file fails the
/// start naming the schedule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_schedules_exist_after_a_fresh_start() {
    let dir = std::env::temp_dir().join(format!("pfc-schedules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("schedules.json");
    std::fs::write(
        &file,
        r#"{"schedules": [
          {"name": "nightly-report", "cron": "0 3 * * *", "time_zone": "Europe/Berlin",
           "catch_up": "skip", "job": {"kind": "report", "payload": {"scope": "all"}}},
          {"name": "heartbeat", "every": "1h", "job": {"text": "still here"}}]}"#,
    )
    .unwrap();
    let redis = RedisServer::start();
    let args = store_args(Some(redis.url()));
    let with_file = pfc_jobs::ScheduleArgs {
        schedules_file: Some(file.clone()),
    };
    let a = JobsServer::start_with(args.clone(), with_file.clone()).await;
    let b = JobsServer::start_with(args.clone(), with_file.clone()).await;
    let mut c = schedules(b.addr).await;
    let list = pfc_testkit::wait_until("declared schedules", Duration::from_secs(10), || {
        let mut c = c.clone();
        async move {
            let l = c
                .list_schedules(pb::ListSchedulesRequest {})
                .await
                .ok()?
                .into_inner()
                .schedules;
            (l.len() == 2).then_some(l)
        }
    })
    .await;
    assert_eq!(list[0].name, "heartbeat");
    assert_eq!(list[1].name, "nightly-report");
    assert_eq!(list[1].time_zone, "Europe/Berlin");
    assert_eq!(list[1].catch_up(), pb::CatchUp::Skip);
    assert!(list
        .iter()
        .all(|s| s.source() == pb::ScheduleSource::Config));
    c.update_schedule(pb::UpdateScheduleRequest {
        name: "heartbeat".into(),
        paused: Some(true),
    })
    .await
    .unwrap();
    a.stop.trigger();
    a.task.await.unwrap().unwrap();
    let _a = JobsServer::start_with(args.clone(), with_file).await;
    let hb = c
        .get_schedule(pb::GetScheduleRequest {
            name: "heartbeat".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .schedule
        .unwrap();
    assert!(hb.paused, "the pause survives re-applying the file");
    std::fs::write(
        &file,
        r#"{"schedules": [{"name": "bad", "cron": "0 3 * * *", "time_zone": "Mars/Olympus", "job": {"text": "x"}}]}"#,
    )
    .unwrap();
    let mut config: pfc_jobs::Config = {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct A {
            #[command(flatten)]
            c: pfc_jobs::Config,
        }
        A::parse_from(["t"]).c
    };
    config.store = args;
    config.schedules.schedules_file = Some(file);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = pfc_jobs::run(listener, config, std::future::pending())
        .await
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("bad") && msg.contains("time_zone"), "{msg}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `pfc schedule` (the binary) against a jobs server: create, list, pause, delete; a bad cron
/// exits non-zero with INVALID_ARGUMENT naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_manages_schedules() {
    let redis = RedisServer::start();
    let server = JobsServer::start(store_args(Some(redis.url()))).await;
    let url = server.url();
    let pfc = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_pfc"))
            .arg("schedule")
            .args(args)
            .args(["--jobs-url", &url])
            .env_remove("PFC_TOKEN")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = pfc(&["create", "tick", "--every", "1h", "--text", "hi"]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("tick") && out.contains("every 1h") && out.contains("active"),
        "{out}"
    );
    let (ok, out, err) = pfc(&[
        "create",
        "nightly",
        "--cron",
        "0 3 * * *",
        "--time-zone",
        "Europe/Berlin",
        "--kind",
        "report",
        "--payload",
        r#"{"scope":"all"}"#,
    ]);
    assert!(ok, "{out}{err}");
    let (ok, out, _) = pfc(&["list"]);
    assert!(ok);
    assert!(
        out.contains("nightly") && out.contains("0 3 * * * (Europe/Berlin)"),
        "{out}"
    );
    let (ok, out, _) = pfc(&["pause", "tick"]);
    assert!(ok && out.contains("paused"), "{out}");
    let (ok, _, err) = pfc(&["delete", "tick"]);
    assert!(ok, "{err}");
    let (ok, _, err) = pfc(&["create", "bad", "--cron", "61 * * * *", "--text", "x"]);
    assert!(!ok);
    assert!(
        err.contains("InvalidArgument") && err.contains("cron"),
        "{err}"
    );
    let (ok, _, err) = pfc(&["get", "tick"]);
    assert!(!ok && err.contains("NotFound"), "{err}");
}
