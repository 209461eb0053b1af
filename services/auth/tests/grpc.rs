//! The auth role served for real on 127.0.0.1:0 and called over gRPC.

use std::net::SocketAddr;
use std::time::Duration;

use pfc_proto::auth::v1::auth_service_client::AuthServiceClient;
use pfc_proto::auth::v1::{LoginRequest, VerifyRequest};
use tokio::sync::oneshot;
use tonic::Code;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

async fn health(
    url: String,
) -> Result<HealthClient<tonic::transport::Channel>, tonic::transport::Error> {
    Ok(HealthClient::new(
        tonic::transport::Endpoint::from_shared(url)
            .unwrap()
            .connect()
            .await?,
    ))
}

async fn start_server(
    config: pfc_auth::Config,
) -> (SocketAddr, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel();
    let handle = tokio::spawn(async move {
        pfc_auth::run(listener, config, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    // Wait for readiness by polling health, not by sleeping.
    let url = format!("http://{addr}");
    for _ in 0..200 {
        if let Ok(mut h) = health(url.clone()).await {
            if h.check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .is_ok()
            {
                return (addr, tx, handle);
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("auth did not become healthy");
}

/// Login issues a token that Verify accepts and that verifies locally with the JWKS from GetJwks.
#[tokio::test]
async fn login_verify_and_local_verification_via_jwks() {
    let (addr, stop, handle) = start_server(pfc_auth::Config::default()).await;
    let url = format!("http://{addr}");
    let mut client = AuthServiceClient::connect(url.clone()).await.unwrap();
    let login = client
        .login(LoginRequest {
            username: "alice".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(login.claims.as_ref().unwrap().subject, "alice");
    let verified = client
        .verify(VerifyRequest {
            token: login.token.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(verified.claims.unwrap().subject, "alice");

    let keys = pfc_auth::Keys::remote(url, Duration::from_secs(60), std::future::pending());
    tokio::time::timeout(Duration::from_secs(5), keys.wait_loaded())
        .await
        .unwrap();
    assert_eq!(keys.verify(&login.token).await.unwrap().sub, "alice");

    stop.send(()).unwrap();
    handle.await.unwrap();
}

/// Bad usernames are INVALID_ARGUMENT; garbage and foreign tokens are UNAUTHENTICATED.
#[tokio::test]
async fn bad_input_gets_clear_codes() {
    let (addr, _stop, _handle) = start_server(pfc_auth::Config::default()).await;
    let mut client = AuthServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let err = client
        .login(LoginRequest {
            username: "no spaces".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = client
        .login(LoginRequest {
            username: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = client
        .verify(VerifyRequest {
            token: "a.b.c".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let other = pfc_auth::Issuer::new(
        pfc_auth::SigningKey::generate(),
        Duration::from_secs(60),
        "pfc-auth",
        "pfc",
    );
    let (foreign, _) = other.issue("alice").unwrap();
    let err = client
        .verify(VerifyRequest { token: foreign })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
}

/// A PEM key file is used when configured: two servers with the same file accept each other's tokens.
#[tokio::test]
async fn key_file_is_shared_by_replicas() {
    let dir = std::env::temp_dir().join(format!("pfc-auth-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("key.pem");
    std::fs::write(&path, pfc_auth::SigningKey::generate_pem()).unwrap();
    let config = pfc_auth::Config {
        signing_key_file: Some(path),
        ..Default::default()
    };
    let (a, _s1, _h1) = start_server(config.clone()).await;
    let (b, _s2, _h2) = start_server(config).await;
    let mut ca = AuthServiceClient::connect(format!("http://{a}"))
        .await
        .unwrap();
    let mut cb = AuthServiceClient::connect(format!("http://{b}"))
        .await
        .unwrap();
    let token = ca
        .login(LoginRequest {
            username: "bob".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .token;
    cb.verify(VerifyRequest { token }).await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

/// Health reports SERVING overall and for pfc.auth.v1.AuthService.
#[tokio::test]
async fn health_per_service() {
    let (addr, _stop, _handle) = start_server(pfc_auth::Config::default()).await;
    let mut h = health(format!("http://{addr}")).await.unwrap();
    for service in ["", "pfc.auth.v1.AuthService"] {
        let status = h
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, 1, "{service:?} should be SERVING");
    }
}

/// When auth comes back with a new key (e.g. a restart with an ephemeral key), the first
/// call with a token signed by it is accepted: the remote verifier re-fetches the keys at once
/// and waits for them instead of refusing the token (and not after the full refresh period).
#[tokio::test]
async fn remote_keys_refresh_on_unknown_key() {
    let (addr, stop, handle) = start_server(pfc_auth::Config::default()).await;
    let keys = pfc_auth::Keys::remote(
        format!("http://{addr}"),
        Duration::from_secs(3600),
        std::future::pending(),
    );
    tokio::time::timeout(Duration::from_secs(5), keys.wait_loaded())
        .await
        .unwrap();
    stop.send(()).unwrap();
    handle.await.unwrap();

    // Same address, new ephemeral key.
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let (_tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        pfc_auth::run(listener, pfc_auth::Config::default(), async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    let mut client = loop {
        if let Ok(c) = AuthServiceClient::connect(format!("http://{addr}")).await {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let token = client
        .login(LoginRequest {
            username: "alice".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .token;
    let started = std::time::Instant::now();
    let claims = keys
        .verify(&token)
        .await
        .expect("accepted on the first call");
    assert_eq!(claims.sub, "alice");
    assert!(started.elapsed() < pfc_auth::UNKNOWN_KEY_WAIT);
    // A token from a key auth never had still fails (after one bounded wait).
    let foreign = pfc_auth::Issuer::new(
        pfc_auth::SigningKey::generate(),
        Duration::from_secs(60),
        "pfc-auth",
        "pfc",
    )
    .issue("alice")
    .unwrap()
    .0;
    assert!(matches!(
        keys.verify(&foreign).await,
        Err(pfc_auth::AuthError::UnknownKey)
    ));
}

fn key_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "pfc-auth-keys-{}-{}",
        std::process::id(),
        pfc_testkit::free_port()
    ))
}

async fn login(client: &mut AuthServiceClient<tonic::transport::Channel>, user: &str) -> String {
    client
        .login(LoginRequest {
            username: user.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .token
}

fn kid_of(token: &str) -> String {
    use base64::Engine as _;
    let header = token.split('.').next().unwrap();
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
    header["kid"].as_str().unwrap().to_string()
}

/// An empty key directory gets a key that survives a restart: tokens issued before the
/// restart still verify after it (no logout on restart).
#[tokio::test]
async fn key_dir_keeps_the_key_across_restarts() {
    let dir = key_dir();
    let config = pfc_auth::Config {
        key_dir: Some(dir.clone()),
        ..Default::default()
    };
    let (a, stop, handle) = start_server(config.clone()).await;
    let mut c = AuthServiceClient::connect(format!("http://{a}"))
        .await
        .unwrap();
    let token = login(&mut c, "alice").await;
    stop.send(()).unwrap();
    handle.await.unwrap();
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "one key written"
    );
    let (b, _stop, _handle) = start_server(config).await;
    let mut c = AuthServiceClient::connect(format!("http://{b}"))
        .await
        .unwrap();
    let claims = c
        .verify(VerifyRequest { token })
        .await
        .expect("a token from before the restart")
        .into_inner()
        .claims
        .unwrap();
    assert_eq!(claims.subject, "alice");
    let _ = std::fs::remove_dir_all(dir);
}

/// Rotation without logout: a key added to the directory is published at once, signs once
/// active, and the previous key stays published, so a verifier holding the old JWKS accepts
/// new tokens (it re-fetches) and old tokens alike; nothing restarts.
#[tokio::test]
async fn rotation_keeps_old_tokens_valid_and_new_ones_verify_at_once() {
    let dir = key_dir();
    let config = pfc_auth::Config {
        key_dir: Some(dir.clone()),
        key_reload: Duration::from_millis(100),
        ..Default::default()
    };
    let (addr, _stop, _handle) = start_server(config).await;
    let url = format!("http://{addr}");
    let mut c = AuthServiceClient::connect(url.clone()).await.unwrap();
    let old = login(&mut c, "alice").await;
    let keys = pfc_auth::Keys::remote(url, Duration::from_secs(3600), std::future::pending());
    tokio::time::timeout(Duration::from_secs(5), keys.wait_loaded())
        .await
        .unwrap();
    assert_eq!(keys.kids(), [kid_of(&old)]);

    // Rotate: a new key, active from now.
    pfc_auth::write_new_key(&dir, pfc_auth::now_secs()).unwrap();
    let new = loop {
        let t = login(&mut c, "bob").await;
        if kid_of(&t) != kid_of(&old) {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let jwks = c
        .get_jwks(pfc_proto::auth::v1::GetJwksRequest {})
        .await
        .unwrap()
        .into_inner()
        .jwks_json;
    assert!(
        jwks.contains(&kid_of(&old)) && jwks.contains(&kid_of(&new)),
        "{jwks}"
    );
    // The verifier still holds the old key set: the new token makes it re-fetch, not fail.
    assert_eq!(keys.verify(&new).await.unwrap().sub, "bob");
    assert_eq!(keys.verify(&old).await.unwrap().sub, "alice");
    c.verify(VerifyRequest { token: old }).await.unwrap();
    c.verify(VerifyRequest { token: new }).await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

/// An empty key directory auth cannot write to does not stop it: it starts with an
/// ephemeral key (as without a directory) and says why in the log.
#[tokio::test]
async fn unwritable_empty_key_dir_falls_back_to_an_ephemeral_key() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = key_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o500)).unwrap();
    if std::fs::write(dir.join("probe"), b"x").is_ok() {
        // Root ignores directory modes: nothing to test here.
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let config = pfc_auth::Config {
        key_dir: Some(dir.clone()),
        ..Default::default()
    };
    let (a, _stop, _handle) = start_server(config).await;
    let mut c = AuthServiceClient::connect(format!("http://{a}"))
        .await
        .unwrap();
    login(&mut c, "alice").await;
    let _ = std::fs::remove_dir_all(dir);
}
