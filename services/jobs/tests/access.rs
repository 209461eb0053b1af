//! Access control over real gRPC on loopback (issue 17): a jobs server behind the access
//! guard, Login tokens from a real issuer verified locally, API keys in memory and in a real
//! redis-server, and SDK workers with and without a worker key.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use pfc_access::{ApiKeys, Authenticator};
use pfc_auth::{Issuer, Keys, Scope, Scopes, SigningKey};
use pfc_processors::Registry;
use pfc_proto::jobs::v1 as pb;
use pfc_proto::jobs::v1::job_service_client::JobServiceClient;
use pfc_queue::{JobStore, MemoryStore, StoreConfig};
use pfc_testkit::RedisServer;
use tonic::transport::Channel;
use tonic::Code;

fn issuer() -> Issuer {
    Issuer::new(
        SigningKey::generate(),
        Duration::from_secs(3600),
        "pfc-auth",
        "pfc",
    )
}

/// A jobs server (JobService + WorkerService) behind the guard, verifying `issuer`'s tokens
/// and `keys`' API keys; returns its URL.
async fn serve(issuer: &Issuer, keys: Arc<ApiKeys>) -> String {
    let store: Arc<dyn JobStore> = Arc::new(MemoryStore::new(StoreConfig::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (reporter, health) = tonic_health::server::health_reporter();
    let stop = pfc_runtime::Shutdown::new();
    let workers = pfc_jobs::Workers::new(
        store.clone(),
        Duration::from_secs(3),
        Default::default(),
        stop.clone(),
    );
    let routes = tonic::service::Routes::new(pfc_jobs::service(
        store,
        Registry::builtin(),
        Default::default(),
    ))
    .add_service(workers.into_server())
    .add_service(pfc_access::ApiKeyGrpc::new(keys.clone()).into_server());
    let auth = Authenticator::new(Keys::fixed(issuer.verifier()), Some(keys));
    let routes = pfc_jobs::guarded(routes, Some(auth));
    let routes = pfc_runtime::grpc::with_health_and_reflection(routes, health).unwrap();
    tokio::spawn(pfc_runtime::grpc::serve(
        listener,
        routes,
        reporter,
        vec![],
        std::future::pending(),
    ));
    format!("http://{addr}")
}

async fn client(url: &str) -> JobServiceClient<Channel> {
    let url = url.to_string();
    let channel = pfc_testkit::wait_until("jobs server", Duration::from_secs(10), || {
        let url = url.clone();
        async move {
            tonic::transport::Endpoint::from_shared(url)
                .unwrap()
                .connect()
                .await
                .ok()
        }
    })
    .await;
    JobServiceClient::new(channel)
}

fn with<T>(token: Option<&str>, msg: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    if let Some(t) = token {
        req.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    req
}

fn submit() -> pb::SubmitJobRequest {
    pb::SubmitJobRequest {
        kind: "uppercase".into(),
        text: "hi".into(),
        ..Default::default()
    }
}

async fn submit_code(c: &mut JobServiceClient<Channel>, token: Option<&str>) -> Code {
    match c.submit_job(with(token, submit())).await {
        Ok(_) => Code::Ok,
        Err(s) => s.code(),
    }
}

async fn stats_code(c: &mut JobServiceClient<Channel>, token: Option<&str>) -> Code {
    match c.get_stats(with(token, pb::GetStatsRequest {})).await {
        Ok(_) => Code::Ok,
        Err(s) => s.code(),
    }
}

fn scoped(issuer: &Issuer, scopes: &[Scope]) -> String {
    let now = pfc_auth::now_secs();
    issuer
        .issue_scoped("alice", Scopes::of(scopes), now, now + 600)
        .unwrap()
        .0
}

fn memory_keys() -> Arc<ApiKeys> {
    Arc::new(ApiKeys::new(Arc::new(
        pfc_access::apikeys::MemoryKeyStore::new(),
    )))
}

/// No token, garbage, a tampered, an expired, an `alg: none` and a wrong-key token are all
/// UNAUTHENTICATED, and nothing is submitted; health stays open for probes.
#[tokio::test]
async fn bad_credentials_are_unauthenticated() {
    let issuer = issuer();
    let url = serve(&issuer, memory_keys()).await;
    let mut c = client(&url).await;
    let good = scoped(&issuer, &[Scope::JobsAdmin]);
    let parts: Vec<&str> = good.split('.').collect();
    let payload: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let mut forged = payload.clone();
    forged["sub"] = "mallory".into();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(forged.to_string()),
        parts[2]
    );
    let alg_none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        parts[1]
    );
    let now = pfc_auth::now_secs();
    let expired = issuer
        .issue_scoped(
            "alice",
            Scopes::of(&[Scope::JobsAdmin]),
            now - 7200,
            now - 3600,
        )
        .unwrap()
        .0;
    let wrong_key = scoped(&self::issuer(), &[Scope::JobsAdmin]);
    for (what, token) in [
        ("none", None),
        ("garbage", Some("not-a-token")),
        ("tampered", Some(tampered.as_str())),
        ("alg none", Some(alg_none.as_str())),
        ("expired", Some(expired.as_str())),
        ("wrong key", Some(wrong_key.as_str())),
        ("bad api key", Some("pfc_0123456789abcdef_nope")),
    ] {
        assert_eq!(
            submit_code(&mut c, token).await,
            Code::Unauthenticated,
            "{what}"
        );
        assert_eq!(
            stats_code(&mut c, token).await,
            Code::Unauthenticated,
            "{what}"
        );
    }
    let stats = c
        .get_stats(with(Some(&good), pb::GetStatsRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        stats.submitted_total, 0,
        "nothing was submitted by a refused call"
    );
    let channel = tonic::transport::Endpoint::from_shared(url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let health = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await;
    assert!(health.is_ok(), "health needs no credential: {health:?}");
}

/// Read-only tokens read but cannot submit; write tokens submit but cannot cancel; admin
/// tokens cancel; a chat-only token gets nothing: PERMISSION_DENIED naming the scope.
#[tokio::test]
async fn scopes_decide_what_a_token_may_do() {
    let issuer = issuer();
    let url = serve(&issuer, memory_keys()).await;
    let mut c = client(&url).await;
    let read = scoped(&issuer, &[Scope::JobsRead]);
    let write = scoped(&issuer, &[Scope::JobsWrite]);
    let admin = scoped(&issuer, &[Scope::JobsAdmin]);
    let chat = scoped(&issuer, &[Scope::Chat]);

    assert_eq!(
        stats_code(&mut c, Some(&chat)).await,
        Code::PermissionDenied
    );
    assert_eq!(stats_code(&mut c, Some(&read)).await, Code::Ok);
    let err = c.submit_job(with(Some(&read), submit())).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("jobs:write"), "{}", err.message());

    let id = c
        .submit_job(with(Some(&write), submit()))
        .await
        .unwrap()
        .into_inner()
        .job_id;
    let get = c
        .get_job(with(Some(&read), pb::GetJobRequest { job_id: id.clone() }))
        .await;
    assert!(get.is_ok(), "{get:?}");
    let cancel = |t: String| pb::CancelJobRequest { job_id: t };
    let err = c
        .cancel_job(with(Some(&write), cancel(id.clone())))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("jobs:admin"), "{}", err.message());
    let r = c.cancel_job(with(Some(&admin), cancel(id))).await;
    assert!(r.is_ok(), "admin cancels: {r:?}");
}

/// API keys on both stores: a `jobs:write` key submits, a `worker` key cannot, a revoked key
/// and a wrong secret are UNAUTHENTICATED, and repeated failures lock the key id for a while
/// (RESOURCE_EXHAUSTED, even with the right secret).
#[tokio::test]
async fn api_keys_on_memory_and_redis() {
    let redis = RedisServer::start();
    for (store, keys) in [
        ("memory", memory_keys()),
        (
            "redis",
            Arc::new(ApiKeys::new(Arc::new(
                pfc_access::apikeys::RedisKeyStore::new(&redis.url(), false).unwrap(),
            ))),
        ),
    ] {
        let issuer = issuer();
        let url = serve(&issuer, keys.clone()).await;
        let mut c = client(&url).await;
        let (ci, record) = keys
            .create("ci", Scopes::of(&[Scope::JobsWrite]), vec![])
            .await
            .unwrap();
        assert!(
            ci.starts_with("pfc_") && !record.hash.contains(&ci[21..]),
            "{store}"
        );
        let (worker, _) = keys
            .create("w", Scopes::of(&[Scope::Worker]), vec![])
            .await
            .unwrap();
        assert_eq!(submit_code(&mut c, Some(&ci)).await, Code::Ok, "{store}");
        assert_eq!(
            submit_code(&mut c, Some(&worker)).await,
            Code::PermissionDenied,
            "{store}: a worker key cannot submit"
        );
        let listed = keys.list().await.unwrap();
        assert_eq!(listed.len(), 2, "{store}");

        assert!(keys.revoke(&record.id).await.unwrap(), "{store}");
        assert!(!keys.revoke("nosuchkey0000000").await.unwrap(), "{store}");
        assert_eq!(
            submit_code(&mut c, Some(&ci)).await,
            Code::Unauthenticated,
            "{store}: revoked"
        );

        let (admin, rec) = keys
            .create("ops", Scopes::of(&[Scope::JobsAdmin]), vec![])
            .await
            .unwrap();
        let wrong = format!("pfc_{}_{}", rec.id, "x".repeat(43));
        for _ in 0..pfc_access::apikeys::MAX_FAILURES {
            assert_eq!(
                stats_code(&mut c, Some(&wrong)).await,
                Code::Unauthenticated
            );
        }
        assert_eq!(
            stats_code(&mut c, Some(&admin)).await,
            Code::ResourceExhausted,
            "{store}: locked after {} failures",
            pfc_access::apikeys::MAX_FAILURES
        );
    }
}

/// An SDK worker with a worker key runs jobs; without a credential, or with a write key, it
/// is refused at connect (a configuration error, not a reconnect loop); a key limited to
/// `sleep` cannot declare `uppercase`.
#[tokio::test]
async fn workers_need_a_worker_key() {
    let issuer = issuer();
    let keys = memory_keys();
    let url = serve(&issuer, keys.clone()).await;
    let mut c = client(&url).await;
    let write = scoped(&issuer, &[Scope::JobsWrite]);
    let (worker_key, _) = keys
        .create("w", Scopes::of(&[Scope::Worker]), vec![])
        .await
        .unwrap();
    let (sleep_only, _) = keys
        .create("s", Scopes::of(&[Scope::Worker]), vec!["sleep".into()])
        .await
        .unwrap();
    let args = pfc_worker::WorkerArgs {
        queues: Vec::new(),
        concurrency: 1,
        shutdown_timeout: Duration::from_secs(5),
        job_timeout: Duration::from_secs(60),
    };
    for (what, token, code) in [
        ("no key", None, "missing credentials"),
        ("write key", Some(write.as_str()), "needs scope worker"),
        ("kinds", Some(sleep_only.as_str()), "may run only"),
    ] {
        let mut w = pfc_worker::builtin(&url, Registry::builtin(), &args, Some("t"));
        // The SDK falls back to PFC_TOKEN; an explicit empty token means none.
        w = w.token(token.unwrap_or(""));
        let r = tokio::time::timeout(Duration::from_secs(30), w.run_until(std::future::pending()))
            .await
            .expect("a refused worker stops instead of retrying");
        let err = r.unwrap_err().to_string();
        assert!(err.contains(code), "{what}: {err}");
    }
    let id = c
        .submit_job(with(Some(&write), submit()))
        .await
        .unwrap()
        .into_inner()
        .job_id;
    let w = pfc_worker::builtin(&url, Registry::builtin(), &args, Some("t")).token(worker_key);
    let stop = pfc_runtime::Shutdown::new();
    let run = tokio::spawn(w.run_until(stop.wait()));
    let done = pfc_testkit::wait_until("job done", Duration::from_secs(30), || {
        let mut c = c.clone();
        let req = with(Some(&write), pb::GetJobRequest { job_id: id.clone() });
        async move {
            let job = c.get_job(req).await.ok()?.into_inner().job?;
            (job.status == pb::JobStatus::Done as i32).then_some(job)
        }
    })
    .await;
    assert_eq!(done.result.as_deref(), Some("HI"));
    stop.trigger();
    run.await.unwrap().unwrap();
}

/// ApiKeyService: jobs:admin only; bad input is INVALID_ARGUMENT naming the field; an unknown
/// id is NOT_FOUND; a created key works at once and the listing never holds its secret.
#[tokio::test]
async fn api_key_service_over_grpc() {
    use pfc_proto::jobs::v1::api_key_service_client::ApiKeyServiceClient;
    let issuer = issuer();
    let url = serve(&issuer, memory_keys()).await;
    let mut jobs = client(&url).await;
    let channel = tonic::transport::Endpoint::from_shared(url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut keys = ApiKeyServiceClient::new(channel);
    let admin = scoped(&issuer, &[Scope::JobsAdmin]);
    let write = scoped(&issuer, &[Scope::JobsWrite]);
    let create = |name: &str, scopes: &[&str], kinds: &[&str]| pb::CreateApiKeyRequest {
        name: name.into(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        kinds: kinds.iter().map(|s| s.to_string()).collect(),
    };
    let err = keys
        .create_api_key(with(Some(&write), create("ci", &["jobs:write"], &[])))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    for (req, field) in [
        (create("", &["jobs:write"], &[]), "name"),
        (create("a b", &["jobs:write"], &[]), "name"),
        (create("ci", &[], &[]), "scopes"),
        (create("ci", &["root"], &[]), "scopes"),
        (create("ci", &["jobs:write"], &["uppercase"]), "kinds"),
        (create("ci", &["worker"], &["Bad Kind"]), "kinds"),
    ] {
        let err = keys
            .create_api_key(with(Some(&admin), req))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}");
        assert!(
            err.message().starts_with(field),
            "{field}: {}",
            err.message()
        );
    }
    let created = keys
        .create_api_key(with(Some(&admin), create("ci", &["jobs:write"], &[])))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(submit_code(&mut jobs, Some(&created.key)).await, Code::Ok);
    let listed = keys
        .list_api_keys(with(Some(&admin), pb::ListApiKeysRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.api_keys.len(), 1);
    assert_eq!(listed.api_keys[0].scopes, ["jobs:write"]);
    assert!(
        !format!("{listed:?}").contains(&created.key[21..]),
        "no secret listed"
    );
    let err = keys
        .revoke_api_key(with(
            Some(&admin),
            pb::RevokeApiKeyRequest { id: "nope".into() },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let id = created.api_key.unwrap().id;
    keys.revoke_api_key(with(Some(&admin), pb::RevokeApiKeyRequest { id }))
        .await
        .unwrap();
    assert_eq!(
        submit_code(&mut jobs, Some(&created.key)).await,
        Code::Unauthenticated
    );
}
