//! `pfc dev --auth-required` as a real process (issue 17): Login tokens carry the configured
//! scopes, the jobs API refuses calls without one, and the built-in worker, which holds a
//! `worker` token of its own, runs what a user with `jobs:write` submits.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pfc_proto::auth::v1 as auth_pb;
use pfc_proto::jobs::v1 as pb;
use tonic::Code;

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn with<T>(token: &str, msg: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    req
}

/// alice (default scopes) submits and reads but cannot cancel; ops (on PFC_AUTH_ADMIN_USERS)
/// can; no token is UNAUTHENTICATED; the built-in worker completes alice's job.
#[tokio::test]
async fn dev_with_auth_required() {
    let grpc = pfc_testkit::free_port();
    let http = pfc_testkit::free_port();
    let _child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_pfc"))
            .args(["dev", "--auth-required"])
            .args(["--grpc-addr", &format!("127.0.0.1:{grpc}")])
            .args(["--http-addr", &format!("127.0.0.1:{http}")])
            .env("PFC_AUTH_ADMIN_USERS", "ops")
            .env_remove("PFC_TOKEN")
            .env("PFC_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn pfc dev"),
    );
    let url = format!("http://127.0.0.1:{grpc}");
    let channel = pfc_testkit::wait_until("pfc dev up", Duration::from_secs(30), || {
        let url = url.clone();
        async move {
            tonic::transport::Endpoint::from_shared(url)
                .ok()?
                .connect()
                .await
                .ok()
        }
    })
    .await;
    let mut jobs = pb::job_service_client::JobServiceClient::new(channel.clone());
    let mut auth = auth_pb::auth_service_client::AuthServiceClient::new(channel);
    let login = |name: &str| auth_pb::LoginRequest {
        username: name.into(),
    };
    let alice = auth.login(login("alice")).await.unwrap().into_inner();
    let scopes = alice.claims.unwrap().scopes;
    assert_eq!(scopes, ["jobs:read", "jobs:write", "chat"], "default grant");
    let ops = auth.login(login("ops")).await.unwrap().into_inner().token;

    let submit = || pb::SubmitJobRequest {
        kind: "uppercase".into(),
        text: "secured".into(),
        ..Default::default()
    };
    let err = jobs.submit_job(submit()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let id = jobs
        .submit_job(with(&alice.token, submit()))
        .await
        .unwrap()
        .into_inner()
        .job_id;
    let done = pfc_testkit::wait_until("job done", Duration::from_secs(20), || {
        let mut jobs = jobs.clone();
        let req = with(&alice.token, pb::GetJobRequest { job_id: id.clone() });
        async move {
            let job = jobs.get_job(req).await.ok()?.into_inner().job?;
            (job.status == pb::JobStatus::Done as i32).then_some(job)
        }
    })
    .await;
    assert_eq!(
        done.result.as_deref(),
        Some("SECURED"),
        "the built-in worker ran it"
    );

    let id = jobs
        .submit_job(with(
            &alice.token,
            pb::SubmitJobRequest {
                kind: "sleep".into(),
                text: "30".into(),
                delay: Some(prost_types::Duration {
                    seconds: 60,
                    nanos: 0,
                }),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .job_id;
    let cancel = || pb::CancelJobRequest { job_id: id.clone() };
    let err = jobs
        .cancel_job(with(&alice.token, cancel()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    jobs.cancel_job(with(&ops, cancel()))
        .await
        .expect("an admin cancels");

    // API keys through the CLI: an admin creates them, a user without jobs:admin cannot.
    let cli = |token: &str, args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_pfc"))
            .arg("apikey")
            .args(args)
            .args(["--jobs-url", &url])
            .env("PFC_TOKEN", token)
            .env("PFC_LOG", "warn")
            .output()
            .expect("run pfc apikey");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, _, err) = cli(
        &alice.token,
        &["create", "--scope", "jobs:write", "--name", "ci"],
    );
    assert!(!ok && err.contains("PermissionDenied"), "{err}");
    let (ok, ci, err) = cli(&ops, &["create", "--scope", "jobs:write", "--name", "ci"]);
    assert!(ok && ci.starts_with("pfc_"), "{ci} {err}");
    let (ok, worker_key, err) = cli(
        &ops,
        &[
            "create",
            "--scope",
            "worker",
            "--kind",
            "uppercase",
            "--name",
            "w1",
        ],
    );
    assert!(ok, "{err}");
    let (ok, list, _) = cli(&ops, &["list"]);
    assert!(
        ok && list.contains(" ci ") && list.contains("uppercase"),
        "{list}"
    );
    assert!(!list.contains(&ci[21..]), "list never shows a secret");
    jobs.submit_job(with(&ci, submit()))
        .await
        .expect("the CI key submits");
    let err = jobs
        .submit_job(with(&worker_key, submit()))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::PermissionDenied,
        "a worker key cannot submit"
    );
    let id = ci[4..20].to_string();
    let (ok, _, err) = cli(&ops, &["revoke", &id]);
    assert!(ok, "{err}");
    let err = jobs.submit_job(with(&ci, submit())).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "revoked");

    // `pfc worker` without a key, or with a key limited to `uppercase` (it declares every
    // built-in kind), stops with the reason; with an unrestricted worker key it connects.
    for (token, reason) in [
        (None, "missing credentials"),
        (Some(&worker_key), "may run only"),
    ] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pfc"));
        cmd.args(["worker", "--jobs-url", &url, "--grpc-addr", "127.0.0.1:0"])
            .env_remove("PFC_TOKEN")
            .env("PFC_LOG", "warn");
        if let Some(t) = token {
            cmd.env("PFC_TOKEN", t);
        }
        let out = cmd.output().expect("run pfc worker");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(reason), "{stderr}");
    }
    let (ok, worker_key, err) = cli(&ops, &["create", "--scope", "worker", "--name", "w2"]);
    assert!(ok, "{err}");
    let _keyed = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_pfc"))
            .args(["worker", "--jobs-url", &url, "--grpc-addr", "127.0.0.1:0"])
            .args(["--name", "keyed"])
            .env("PFC_TOKEN", &worker_key)
            .env("PFC_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn pfc worker"),
    );
    pfc_testkit::wait_until("keyed worker connected", Duration::from_secs(20), || {
        let mut jobs = jobs.clone();
        let req = with(&ops, pb::GetStatsRequest {});
        async move {
            let stats = jobs.get_stats(req).await.ok()?.into_inner();
            stats
                .workers
                .iter()
                .any(|w| w.id.starts_with("keyed"))
                .then_some(())
        }
    })
    .await;
}

/// The chart's path: `pfc jobs --auth-required` on Redis with a pre-shared `PFC_WORKER_KEY`
/// (auth itself unreachable: key checks need no call to it). `pfc worker` presenting that key
/// connects; the key is no use for anything but the worker protocol; without a key the
/// worker stops.
#[tokio::test]
async fn jobs_with_a_preshared_worker_key() {
    let redis = pfc_testkit::RedisServer::start();
    let grpc = pfc_testkit::free_port();
    let key = "pfc_chartgenerated00_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ";
    let _jobs = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_pfc"))
            .args(["jobs", "--auth-required"])
            .args(["--grpc-addr", &format!("127.0.0.1:{grpc}")])
            .args([
                "--auth-url",
                &format!("http://127.0.0.1:{}", pfc_testkit::free_port()),
            ])
            .env("PFC_REDIS_URL", redis.url())
            .env("PFC_WORKER_KEY", key)
            .env("PFC_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn pfc jobs"),
    );
    let url = format!("http://127.0.0.1:{grpc}");
    let channel = pfc_testkit::wait_until("pfc jobs up", Duration::from_secs(30), || {
        let url = url.clone();
        async move {
            tonic::transport::Endpoint::from_shared(url)
                .ok()?
                .connect()
                .await
                .ok()
        }
    })
    .await;
    let mut jobs = pb::job_service_client::JobServiceClient::new(channel);
    let err = jobs
        .get_stats(with(key, pb::GetStatsRequest {}))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::PermissionDenied,
        "the worker key only runs jobs"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_pfc"))
        .args(["worker", "--jobs-url", &url, "--grpc-addr", "127.0.0.1:0"])
        .env_remove("PFC_TOKEN")
        .env("PFC_LOG", "warn")
        .output()
        .expect("run pfc worker");
    assert!(!out.status.success(), "no key: the worker exits");

    let health = pfc_testkit::free_port();
    let _worker = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_pfc"))
            .args(["worker", "--jobs-url", &url])
            .args(["--grpc-addr", &format!("127.0.0.1:{health}")])
            .env("PFC_TOKEN", key)
            .env("PFC_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn pfc worker"),
    );
    // The worker's health turns SERVING once its Work stream is welcomed.
    let health_url = format!("http://127.0.0.1:{health}");
    pfc_testkit::wait_until("keyed worker welcomed", Duration::from_secs(30), || {
        let url = health_url.clone();
        async move {
            let ch = tonic::transport::Endpoint::from_shared(url)
                .ok()?
                .connect()
                .await
                .ok()?;
            let r = tonic_health::pb::health_client::HealthClient::new(ch)
                .check(tonic_health::pb::HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .ok()?
                .into_inner();
            (r.status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32)
                .then_some(())
        }
    })
    .await;
}
