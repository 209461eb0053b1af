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
}
