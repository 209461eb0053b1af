//! Trace context travels with the job: a real `pfc dev` process exports its spans over
//! OTLP/HTTP to a receiver running inside this test, and the SubmitJob span and the worker's
//! job span carry the same trace id.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use pfc_proto::jobs::v1 as pb;
use prost::Message;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// Kills the child process when the test ends, even on a failed assertion.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Span name → trace ids seen.
type Seen = Arc<Mutex<HashMap<String, Vec<Vec<u8>>>>>;

/// A minimal OTLP/HTTP receiver: accepts `POST /v1/traces` with a protobuf body.
async fn receiver(listener: tokio::net::TcpListener, seen: Seen) {
    loop {
        let Ok((sock, _)) = listener.accept().await else {
            return;
        };
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut r = BufReader::new(sock);
            loop {
                let mut len = 0usize;
                let mut line = String::new();
                if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let h = h.trim_end();
                    if h.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        if k.eq_ignore_ascii_case("content-length") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                }
                let mut body = vec![0; len];
                if r.read_exact(&mut body).await.is_err() {
                    return;
                }
                if let Ok(req) = ExportTraceServiceRequest::decode(body.as_slice()) {
                    let mut s = seen.lock().unwrap();
                    for rs in req.resource_spans {
                        for ss in rs.scope_spans {
                            for span in ss.spans {
                                s.entry(span.name).or_default().push(span.trace_id);
                            }
                        }
                    }
                }
                let resp = "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
                if r.get_mut().write_all(resp.as_bytes()).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// The submitter's span and the worker's job span share one trace id.
#[tokio::test]
async fn submit_and_job_spans_share_a_trace() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    tokio::spawn(receiver(listener, seen.clone()));

    let grpc = pfc_testkit::free_port();
    let http = pfc_testkit::free_port();
    let _child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_pfc"))
            .args(["dev", "--grpc-addr", &format!("127.0.0.1:{grpc}")])
            .args(["--http-addr", &format!("127.0.0.1:{http}")])
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{otlp}"))
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
            .env("PFC_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn pfc dev"),
    );

    let addr: std::net::SocketAddr = format!("127.0.0.1:{grpc}").parse().unwrap();
    let mut c = pfc_testkit::wait_until("pfc dev up", Duration::from_secs(20), || async move {
        let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .ok()?
            .connect()
            .await
            .ok()?;
        Some(pb::job_service_client::JobServiceClient::new(ch))
    })
    .await;
    let id = c
        .submit_job(pb::SubmitJobRequest {
            text: "trace me".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .job_id;
    let job = pfc_testkit::wait_until("job done", Duration::from_secs(10), || {
        let mut c = c.clone();
        let id = id.clone();
        async move {
            let j = c
                .get_job(pb::GetJobRequest { job_id: id })
                .await
                .ok()?
                .into_inner()
                .job?;
            (j.status() == pb::JobStatus::Done).then_some(j)
        }
    })
    .await;
    assert!(
        !job.traceparent.is_empty(),
        "the job carries its submitter's traceparent"
    );

    let (submit, run) =
        pfc_testkit::wait_until("both spans exported", Duration::from_secs(15), || {
            let seen = seen.clone();
            async move {
                let s = seen.lock().unwrap();
                Some((s.get("SubmitJob")?.clone(), s.get("job")?.clone()))
            }
        })
        .await;
    let trace_hex: String = submit[0].iter().map(|b| format!("{b:02x}")).collect();
    assert!(
        job.traceparent.contains(&trace_hex),
        "{} vs {trace_hex}",
        job.traceparent
    );
    assert_eq!(
        submit[0], run[0],
        "SubmitJob and job spans are in one trace"
    );
}

/// A REST submit through the gateway is one trace from the HTTP request to the worker's job
/// span: the gateway continues the client's `traceparent`, sends it to the core, which
/// continues it, stores it with the job, and the worker's span joins it.
#[tokio::test]
async fn rest_request_and_job_span_share_the_callers_trace() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    tokio::spawn(receiver(listener, seen.clone()));

    let grpc = pfc_testkit::free_port();
    let http = pfc_testkit::free_port();
    let _child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_pfc"))
            .args(["dev", "--grpc-addr", &format!("127.0.0.1:{grpc}")])
            .args(["--http-addr", &format!("127.0.0.1:{http}")])
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{otlp}"))
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
            .env("PFC_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn pfc dev"),
    );

    // the caller's trace (a browser's, say): every span below must carry this id
    let trace_hex = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{trace_hex}-00f067aa0ba902b7-01");
    let body = r#"{"kind":"uppercase","text":"trace me over rest"}"#;
    let request = format!(
        "POST /api/v1/jobs HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         traceparent: {traceparent}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let answer = pfc_testkit::wait_until("REST submit", Duration::from_secs(20), || {
        let request = request.clone();
        async move {
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", http))
                .await
                .ok()?;
            s.write_all(request.as_bytes()).await.ok()?;
            let mut out = String::new();
            s.read_to_string(&mut out).await.ok()?;
            out.starts_with("HTTP/1.1 20").then_some(out)
        }
    })
    .await;
    assert!(answer.contains("\"id\""), "{answer}");

    let want: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&trace_hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    // the gateway's request span, the core's gRPC span and SubmitJob, and the worker's job
    for name in ["http", "grpc", "SubmitJob", "job"] {
        let want = want.clone();
        let seen = seen.clone();
        pfc_testkit::wait_until(
            &format!("a {name} span in the caller's trace"),
            Duration::from_secs(20),
            || {
                let (want, seen) = (want.clone(), seen.clone());
                async move {
                    let s = seen.lock().unwrap();
                    s.get(name)?.contains(&want).then_some(())
                }
            },
        )
        .await;
    }
}

/// A protocol pfc does not speak is refused at startup, naming the variable, instead of
/// sending OTLP/HTTP to a port that expects gRPC.
#[test]
fn unsupported_otlp_protocol_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_pfc"))
        .args([
            "dev",
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
        ])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        .output()
        .expect("run pfc dev");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("OTEL_EXPORTER_OTLP_PROTOCOL"), "{err}");
}
