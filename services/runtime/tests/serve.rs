//! `pfc_runtime::grpc::serve_with` against real sockets: the lame-duck delay and the maximum
//! connection age that Kubernetes rollouts and scale-ups rely on (issue 15, defects 4 and 5).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pfc_runtime::{grpc, ServeSettings, Shutdown};
use tokio::net::TcpListener;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// Starts a health-only gRPC server with `settings`; returns its address, its shutdown and task.
async fn start(
    settings: ServeSettings,
) -> (
    SocketAddr,
    Shutdown,
    tokio::task::JoinHandle<Result<(), grpc::ServeError>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let routes =
        grpc::with_health_and_reflection(tonic::service::Routes::default(), health).unwrap();
    let stop = Shutdown::new();
    let task = tokio::spawn(grpc::serve_with(
        settings,
        listener,
        routes,
        reporter,
        vec![],
        stop.wait(),
    ));
    (addr, stop, task)
}

/// The overall health status over a new connection, or None when no connection is possible.
async fn status_over_new_connection(addr: SocketAddr) -> Option<i32> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_millis(300))
        .connect()
        .await
        .ok()?;
    let r = HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .ok()?;
    Some(r.into_inner().status)
}

/// After the shutdown signal the server says NOT_SERVING but still accepts new connections and
/// answers them for the whole lame-duck delay; only then does it stop.
#[tokio::test]
async fn lame_duck_keeps_accepting_while_not_serving() {
    let delay = Duration::from_millis(800);
    let (addr, stop, task) = start(ServeSettings {
        shutdown_delay: delay,
        max_connection_age: None,
    })
    .await;
    assert_eq!(
        status_over_new_connection(addr).await,
        Some(ServingStatus::Serving as i32)
    );
    let t0 = Instant::now();
    stop.trigger();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Still accepting, and saying it is going away.
    assert_eq!(
        status_over_new_connection(addr).await,
        Some(ServingStatus::NotServing as i32)
    );
    assert!(
        !task.is_finished(),
        "server stopped before the lame-duck delay"
    );
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("server did not stop after the delay")
        .unwrap()
        .unwrap();
    assert!(
        t0.elapsed() >= delay,
        "stopped after {:?}, before the {delay:?} delay",
        t0.elapsed()
    );
    assert_eq!(status_over_new_connection(addr).await, None);
}

/// Without a delay (the default, `pfc dev`, tests) the server stops right away.
#[tokio::test]
async fn no_delay_stops_at_once() {
    let (_addr, stop, task) = start(ServeSettings::default()).await;
    let t0 = Instant::now();
    stop.trigger();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("server did not stop")
        .unwrap()
        .unwrap();
    assert!(t0.elapsed() < Duration::from_millis(500));
}

/// With a maximum connection age, a long-lived client channel (like the gateway's) is moved to
/// new connections (which a Service would spread over replicas) without any failed call.
#[tokio::test]
async fn max_connection_age_makes_clients_reconnect_without_errors() {
    let (server, _stop, _task) = start(ServeSettings {
        shutdown_delay: Duration::ZERO,
        max_connection_age: Some(Duration::from_millis(300)),
    })
    .await;
    // A counting TCP proxy stands in for the Service: every new connection goes through it.
    let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_addr = proxy.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = proxy.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(server).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    let channel: Channel = Endpoint::from_shared(format!("http://{proxy_addr}"))
        .unwrap()
        .connect_lazy();
    let mut client = HealthClient::new(channel);
    let end = Instant::now() + Duration::from_millis(1500);
    let mut calls = 0;
    while Instant::now() < end {
        let r = client
            .check(HealthCheckRequest::default())
            .await
            .expect("a call failed while connections were recycled");
        assert_eq!(r.into_inner().status, ServingStatus::Serving as i32);
        calls += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let n = accepted.load(Ordering::SeqCst);
    assert!(
        n >= 3,
        "{calls} calls over 1.5 s used {n} connection(s); expected a new one every ~300 ms"
    );
}
