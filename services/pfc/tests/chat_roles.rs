//! `pfc auth` and `pfc chat` as real processes, configured through the environment the
//! deployment contract names (docs/roles.md): chat fetches auth's public key over gRPC, two
//! chat processes share one Redis, and SIGTERM turns health NOT_SERVING and ends the process.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pfc_proto::auth::v1::auth_service_client::AuthServiceClient;
use pfc_proto::auth::v1::LoginRequest;
use pfc_proto::chat::v1::chat_service_client::ChatServiceClient;
use pfc_proto::chat::v1::{ListMessagesRequest, SendMessageRequest};
use pfc_testkit::{free_port, wait_until, RedisServer};
use tonic::transport::Endpoint;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// Kills the child on drop so a failed test leaves no process behind.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(role: &str, envs: &[(&str, String)]) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pfc"));
    cmd.arg(role)
        .env("PFC_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    Proc(cmd.spawn().expect("spawn pfc"))
}

async fn serving(addr: &str) -> bool {
    let Ok(ch) = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
    else {
        return false;
    };
    let req = HealthCheckRequest {
        service: String::new(),
    };
    matches!(HealthClient::new(ch).check(req).await, Ok(r) if r.get_ref().status == 1)
}

async fn until_serving(addr: &str) {
    wait_until(
        &format!("{addr} serving"),
        Duration::from_secs(20),
        || async { serving(addr).await.then_some(()) },
    )
    .await;
}

fn authed<T>(token: &str, msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

/// A token from `pfc auth` works on two `pfc chat` processes sharing one Redis, which see each
/// other's messages; SIGTERM stops a chat process.
#[tokio::test]
async fn auth_and_two_chat_processes() {
    let redis = RedisServer::start();
    let auth_addr = format!("127.0.0.1:{}", free_port());
    let (a, b) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    // Chat starts first: it must wait (NOT_SERVING) and retry until auth answers.
    let chat_env = |addr: &str| {
        vec![
            ("PFC_GRPC_ADDR", addr.to_string()),
            ("PFC_REDIS_URL", redis.url()),
            ("PFC_AUTH_URL", format!("http://{auth_addr}")),
        ]
    };
    let mut chat_a = spawn("chat", &chat_env(&a));
    let _chat_b = spawn("chat", &chat_env(&b));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !serving(&a).await,
        "chat serves only once it has auth's key"
    );
    let _auth = spawn("auth", &[("PFC_GRPC_ADDR", auth_addr.clone())]);
    until_serving(&auth_addr).await;
    until_serving(&a).await;
    until_serving(&b).await;

    let mut auth = AuthServiceClient::connect(format!("http://{auth_addr}"))
        .await
        .unwrap();
    let token = auth
        .login(LoginRequest {
            username: "alice".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .token;
    let mut ca = ChatServiceClient::connect(format!("http://{a}"))
        .await
        .unwrap();
    let mut cb = ChatServiceClient::connect(format!("http://{b}"))
        .await
        .unwrap();
    let req = SendMessageRequest {
        room: "lobby".into(),
        text: "bonjour".into(),
    };
    ca.send_message(authed(&token, req)).await.unwrap();
    let req = ListMessagesRequest {
        room: "lobby".into(),
        limit: 10,
        before_id: String::new(),
    };
    let page = cb
        .list_messages(authed(&token, req))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.messages[0].text, "bonjour");
    assert_eq!(page.messages[0].author, "alice");

    let ok = Command::new("kill")
        .args(["-TERM", &chat_a.0.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let status = tokio::task::spawn_blocking(move || {
        let s = chat_a.0.wait();
        (s, chat_a)
    })
    .await
    .unwrap()
    .0
    .unwrap();
    assert!(
        status.success(),
        "chat exits cleanly on SIGTERM: {status:?}"
    );
}
