//! Logging and tracing for every pfc role.
//!
//! [`init`] installs one `tracing` subscriber per process: human-readable or JSON logs, a
//! filter from `PFC_LOG` (default `info`), and — only when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set — OpenTelemetry export over OTLP/HTTP
//! (protobuf), honouring the standard `OTEL_*` variables (`OTEL_SERVICE_NAME`, headers,
//! timeouts; `OTEL_EXPORTER_OTLP_PROTOCOL` must be `http/protobuf` or unset — another protocol
//! is refused at startup). Export is off by default so a laptop run needs no collector.
//!
//! Incoming trace context: [`set_parent`] continues a `traceparent` a request carries (the
//! gateway per HTTP request, every gRPC server per call through `pfc_runtime`), and
//! [`current_traceparent`] is what outgoing calls send on.
//!
//! Trace context crosses the queue as a W3C `traceparent` string stored with the job:
//! [`current_traceparent`] captures it where the job is submitted, [`set_parent`] makes the
//! worker's job span a child of it, so one trace covers submit → queue → processing.
//!
//! # Layout
//! - [`init`] / [`Telemetry`]: subscriber setup and shutdown (flushes spans).
//! - [`LogFormat`]: text or JSON.
//! - [`current_traceparent`], [`set_parent`]: W3C trace context across the queue.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (for log collectors).
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!(
                "unknown log format {other:?} (expected text or json)"
            )),
        }
    }
}

/// Failure to set up telemetry.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built (bad endpoint URL).
    #[error("failed to build the OTLP exporter: {0}")]
    Exporter(String),
    /// A global subscriber was already installed.
    #[error("a tracing subscriber is already installed: {0}")]
    AlreadyInstalled(String),
}

/// Keeps the exporter alive; [`Telemetry::shutdown`] (or drop) flushes pending spans.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// True when spans are exported over OTLP.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Flushes and stops the exporter.
    pub fn shutdown(mut self) {
        self.flush_and_stop();
    }

    /// Exports every finished span now (tests call this before checking the collector).
    pub fn flush(&self) {
        if let Some(p) = &self.provider {
            let _ = p.force_flush();
        }
    }

    fn flush_and_stop(&mut self) {
        if let Some(p) = self.provider.take() {
            let _ = p.force_flush();
            let _ = p.shutdown();
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.flush_and_stop();
    }
}

fn otlp_configured() -> bool {
    [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|k| std::env::var(k).is_ok_and(|v| !v.trim().is_empty()))
}

/// The OTLP protocol asked for: `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, else
/// `OTEL_EXPORTER_OTLP_PROTOCOL`, else the default `http/protobuf`.
fn otlp_protocol() -> String {
    [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ]
    .iter()
    .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
    .map_or_else(|| "http/protobuf".to_owned(), |v| v.trim().to_owned())
}

/// pfc exports OTLP over HTTP with protobuf bodies only (`http/protobuf`, the collectors'
/// port 4318). Another protocol asked for is refused at startup rather than ignored: sending
/// HTTP to a collector's gRPC port (4317) would lose every span without a word.
fn check_protocol() -> Result<(), TelemetryError> {
    match otlp_protocol().as_str() {
        "http/protobuf" => Ok(()),
        other => Err(TelemetryError::Exporter(format!(
            "OTEL_EXPORTER_OTLP_PROTOCOL={other:?} is not supported: pfc exports OTLP over \
             HTTP (http/protobuf); point OTEL_EXPORTER_OTLP_ENDPOINT at the collector's OTLP/HTTP \
             port (4318) and unset the protocol or set it to http/protobuf"
        ))),
    }
}

/// Installs the global subscriber for a role. `service` names the role in exported traces
/// unless `OTEL_SERVICE_NAME` says otherwise; `filter` uses `RUST_LOG` syntax.
pub fn init(service: &str, format: LogFormat, filter: &str) -> Result<Telemetry, TelemetryError> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    // the log filter applies to log output only: exported traces keep every info span even
    // when the logs are turned down to warnings
    let fmt = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_target(true)
            // colours only on a terminal: `podman logs`/`kubectl logs` get plain text
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
    }
    .with_filter(filter);
    let provider = if otlp_configured() {
        check_protocol()?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        let name = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| format!("pfc-{service}"));
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name(name)
            .build();
        Some(
            SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(resource)
                .build(),
        )
    } else {
        None
    };
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("pfc"))
            .with_filter(tracing_subscriber::filter::LevelFilter::INFO)
    });
    tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init()
        .map_err(|e| TelemetryError::AlreadyInstalled(e.to_string()))?;
    Ok(Telemetry { provider })
}

/// The W3C `traceparent` of the current span, when it belongs to a sampled trace.
pub fn current_traceparent() -> Option<String> {
    let cx = tracing::Span::current().context();
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove("traceparent")
}

/// Makes `span` a child of the trace named by `traceparent` (ignored when malformed).
pub fn set_parent(span: &tracing::Span, traceparent: &str) {
    let mut carrier = HashMap::new();
    carrier.insert("traceparent".to_owned(), traceparent.to_owned());
    let cx = TraceContextPropagator::new().extract(&carrier);
    let _ = span.set_parent(cx);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Log formats parse from their flag values.
    #[test]
    fn log_format_parses() {
        assert_eq!("json".parse::<LogFormat>().unwrap(), LogFormat::Json);
        assert_eq!("text".parse::<LogFormat>().unwrap(), LogFormat::Text);
        assert!("xml".parse::<LogFormat>().is_err());
    }

    /// Without a tracing layer there is no sampled trace, so no traceparent is made up.
    #[test]
    fn no_traceparent_without_trace() {
        assert_eq!(current_traceparent(), None);
    }
}
