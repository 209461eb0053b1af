//! `pfc probe`: a healthcheck for images without curl or grpcurl (distroless). Exit 0 when
//! the target is healthy, 1 otherwise, with the reason on stderr.

use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What to probe.
#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    #[command(subcommand)]
    target: Target,
    /// Give up after this long.
    #[arg(long, default_value = "3s", value_parser = humantime_parse, global = true)]
    timeout: Duration,
}

fn humantime_parse(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000)
    } else {
        (s, 1000)
    };
    num.parse::<u64>()
        .map(|n| Duration::from_millis(n * mult))
        .map_err(|e| e.to_string())
}

#[derive(Debug, clap::Subcommand)]
enum Target {
    /// grpc.health.v1.Health/Check on ADDR (host:port); SERVING is healthy.
    Grpc {
        /// host:port
        addr: String,
        /// Service name to check ("" = the whole server).
        #[arg(long, default_value = "")]
        service: String,
    },
    /// HTTP GET on URL (http://host:port/path); a 2xx status is healthy.
    Http {
        /// http://host:port/path
        url: String,
    },
}

/// Runs the probe.
pub async fn run(args: ProbeArgs) -> anyhow::Result<()> {
    let r = tokio::time::timeout(args.timeout, async {
        match args.target {
            Target::Grpc { addr, service } => grpc(&addr, &service).await,
            Target::Http { url } => http(&url).await,
        }
    })
    .await;
    match r {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e),
        Err(_) => bail!("probe timed out after {:?}", args.timeout),
    }
}

async fn grpc(addr: &str, service: &str) -> anyhow::Result<()> {
    use tonic_health::pb::{
        health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
    };
    let url = if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    };
    let channel = tonic::transport::Endpoint::from_shared(url)?
        .connect()
        .await
        .context("connect")?;
    let resp = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .context("health check")?;
    let status = resp.into_inner().status();
    if status != ServingStatus::Serving {
        bail!("status {status:?}");
    }
    Ok(())
}

async fn http(url: &str) -> anyhow::Result<()> {
    let rest = url
        .strip_prefix("http://")
        .context("only http:// URLs are supported")?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:80")
    };
    let mut s = tokio::net::TcpStream::connect(&addr)
        .await
        .with_context(|| format!("connect {addr}"))?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut buf = Vec::new();
    s.take(4096).read_to_end(&mut buf).await?;
    let head = String::from_utf8_lossy(&buf);
    let code: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("not an HTTP response")?;
    if !(200..300).contains(&code) {
        bail!("HTTP {code}");
    }
    Ok(())
}
