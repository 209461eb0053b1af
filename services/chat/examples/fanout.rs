//! Chat fan-out benchmark (not a test): N subscribers on one room, M messages/s sent; reports
//! delivered messages/s and send→receive latency percentiles.
//!
//! ```text
//! cargo run --release -p pfc-chat --example fanout -- --subscribers 1000 --rate 100 --seconds 10
//! ```
//!
//! The chat role runs in this process (`pfc_chat::serve`, the same code as `pfc chat`) over a
//! private redis-server (or `--redis-url`, or `--memory`); subscribers are real gRPC streams
//! spread over `--connections` HTTP/2 connections; the sender stamps each message with its send
//! time, and each subscriber measures the time until the message reached it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use pfc_auth::{Issuer, Keys, SigningKey};
use pfc_proto::chat::v1::chat_service_client::ChatServiceClient;
use pfc_proto::chat::v1::{SendMessageRequest, SubscribeRequest};
use tokio_stream::StreamExt;
use tonic::transport::Endpoint;

#[derive(Parser, Debug)]
struct Args {
    /// Subscribers on the room.
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// Messages sent per second.
    #[arg(long, default_value_t = 100)]
    rate: u64,
    /// How long to send.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// HTTP/2 connections the subscribers share.
    #[arg(long, default_value_t = 20)]
    connections: usize,
    /// Use this Redis instead of starting a private redis-server.
    #[arg(long)]
    redis_url: Option<String>,
    /// Use the in-memory store instead of Redis.
    #[arg(long)]
    memory: bool,
    /// Benchmark a chat server that is already running (e.g. `pfc chat`) instead of one in this
    /// process; needs --token (from its auth's Login).
    #[arg(long)]
    target: Option<String>,
    /// Token for --target.
    #[arg(long)]
    token: Option<String>,
    /// Only serve: start the chat server on this address, print a token, run until Ctrl-C
    /// (pair with a second `fanout --target http://ADDR --token T` to split server and load).
    #[arg(long)]
    serve: Option<std::net::SocketAddr>,
}

fn authed<T>(token: &str, msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    // A JWT is ASCII.
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii token"),
    );
    r
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _redis;
    let (url, token) = match &args.target {
        Some(url) => (
            url.clone(),
            args.token.clone().expect("--target needs --token"),
        ),
        None => {
            let store: Arc<dyn pfc_chat::ChatStore> = if args.memory {
                Arc::new(pfc_chat::MemoryStore::new(10_000))
            } else {
                let redis_url = match &args.redis_url {
                    Some(u) => u.clone(),
                    None => {
                        let r = pfc_testkit::RedisServer::start();
                        let u = r.url();
                        _redis = r;
                        u
                    }
                };
                Arc::new(pfc_chat::RedisStore::new(&redis_url, 10_000)?)
            };
            let issuer = Issuer::new(
                SigningKey::generate(),
                Duration::from_secs(3600),
                "pfc-auth",
                "pfc",
            );
            let limits = pfc_chat::Limits {
                send_rate: 1e9,
                send_burst: 1e9,
                ..Default::default()
            };
            let bind = args.serve.unwrap_or(([127, 0, 0, 1], 0).into());
            let listener = tokio::net::TcpListener::bind(bind).await?;
            let addr = listener.local_addr()?;
            let stop = pfc_runtime::Shutdown::new();
            let server = pfc_chat::serve(
                listener,
                store,
                Keys::fixed(issuer.verifier()),
                limits,
                stop.clone(),
            );
            let token = issuer.issue("bench")?.0;
            if args.serve.is_some() {
                println!("serving on http://{addr}\ntoken: {token}");
                stop.trigger_on(pfc_runtime::shutdown_signal());
                return server.await;
            }
            tokio::spawn(server);
            (format!("http://{addr}"), token)
        }
    };

    let mut channels = Vec::new();
    for _ in 0..args.connections.max(1) {
        channels.push(
            Endpoint::from_shared(url.clone())?
                .tcp_nodelay(true)
                .connect()
                .await?,
        );
    }
    let start = Instant::now();
    let expected = args.rate * args.seconds;
    let room = format!("bench-{}", std::process::id());

    // Subscribers: each records the latency (µs) of every message it gets.
    let mut tasks = Vec::new();
    for i in 0..args.subscribers {
        let mut client = ChatServiceClient::new(channels[i % channels.len()].clone());
        let mut stream = client
            .subscribe(authed(
                &token,
                SubscribeRequest {
                    room: room.clone(),
                    after_id: String::new(),
                    events: false,
                },
            ))
            .await?
            .into_inner();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(expected as usize);
            // No timer per message (that would cost as much as the delivery): the main task
            // aborts stragglers once every message should have arrived.
            while lat.len() < expected as usize {
                let Some(Ok(m)) = stream.next().await else {
                    break;
                };
                let now = start.elapsed().as_micros() as u64;
                let sent: u64 = m.message.and_then(|m| m.text.parse().ok()).unwrap_or(now);
                lat.push(now.saturating_sub(sent).min(u32::MAX as u64) as u32);
            }
            lat
        }));
    }
    eprintln!(
        "{} subscribers connected in {:?}",
        args.subscribers,
        start.elapsed()
    );

    // Sender: `rate` messages/s, each stamped with its send time (µs since start).
    let sender = ChatServiceClient::new(channels[0].clone());
    let send_start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for _ in 0..expected {
        tick.tick().await;
        let text = start.elapsed().as_micros().to_string();
        let mut s = sender.clone();
        let token = token.clone();
        let room = room.clone();
        tokio::spawn(async move {
            if let Err(e) = s
                .send_message(authed(&token, SendMessageRequest { room, text }))
                .await
            {
                eprintln!("send failed: {e}");
            }
        });
    }
    let send_secs = send_start.elapsed().as_secs_f64();

    let mut all = Vec::with_capacity((expected as usize) * args.subscribers);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    for t in tasks {
        let abort = t.abort_handle();
        match tokio::time::timeout_at(deadline, t).await {
            Ok(lat) => all.extend(lat?),
            Err(_) => abort.abort(), // missing deliveries show in the count
        }
    }
    let span = send_start.elapsed().as_secs_f64();
    all.sort_unstable();
    let delivered = all.len() as u64;
    let want = expected * args.subscribers as u64;
    println!("chat fan-out: {} subscribers ({} connections), {} msg/s for {} s ({} messages sent in {:.2} s)",
        args.subscribers, args.connections, args.rate, args.seconds, expected, send_secs);
    println!(
        "  deliveries: {delivered}/{want} ({:.3}%), {:.0} deliveries/s",
        delivered as f64 * 100.0 / want as f64,
        delivered as f64 / span
    );
    println!(
        "  send→receive latency: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        pct(&all, 0.50), pct(&all, 0.90), pct(&all, 0.99), pct(&all, 0.999), pct(&all, 1.0)
    );
    Ok(())
}
