//! Telemetry shared by every binary: `tracing` to stdout (JSON in production, pretty for
//! people), OpenTelemetry spans exported over OTLP when an endpoint is set (off otherwise),
//! and the W3C trace-context propagator that the messaging crate uses for AMQP headers.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde::Deserialize;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Json,
    Pretty,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TelemetrySettings {
    #[serde(default)]
    pub format: LogFormat,
    /// `tracing` filter, e.g. `info,lapin=warn`; `RUST_LOG` wins when set.
    #[serde(default = "default_filter")]
    pub filter: String,
    /// OTLP/gRPC endpoint (`http://collector:4317`); export is off when absent.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
}

fn default_filter() -> String {
    "info,lapin=warn,tokio_postgres=warn".into()
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        TelemetrySettings {
            format: LogFormat::Json,
            filter: default_filter(),
            otlp_endpoint: None,
        }
    }
}

/// Flushes spans and the log writer on drop.
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
    _writer: tracing_appender::non_blocking::WorkerGuard,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take()
            && let Err(e) = p.shutdown()
        {
            eprintln!("telemetry shutdown failed: {e}");
        }
    }
}

/// Installs the global subscriber. Call once, from `main`; tests leave it uninstalled
/// (silent) unless they opt in.
pub fn init(service: &str, settings: &TelemetrySettings) -> anyhow::Result<TelemetryGuard> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.filter));
    // Logs are written by a thread of their own and dropped (counted) when it falls behind:
    // a slow reader of stdout (a pipe, a log shipper) during a log storm must never block
    // the runtime's workers, or the service stops serving while it looks alive.
    let (writer, writer_guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(100_000)
        .lossy(true)
        .finish(std::io::stdout());
    let fmt = match settings.format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .compact()
            .boxed(),
    };
    let (otel, provider) = match &settings.otlp_endpoint {
        Some(endpoint) => {
            use opentelemetry_otlp::WithExportConfig;
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build()?;
            let resource = opentelemetry_sdk::Resource::builder()
                .with_service_name(service.to_owned())
                .build();
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(resource)
                .build();
            let tracer = provider.tracer(service.to_owned());
            opentelemetry::global::set_tracer_provider(provider.clone());
            (
                Some(tracing_opentelemetry::layer().with_tracer(tracer)),
                Some(provider),
            )
        }
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init()?;
    Ok(TelemetryGuard {
        provider,
        _writer: writer_guard,
    })
}

/// For tests: installs a pretty subscriber when `TEST_LOG` is set, once per process.
pub fn init_for_tests() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        if std::env::var_os("TEST_LOG").is_some() {
            let filter =
                EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,lapin=warn"));
            let _ = tracing_subscriber::registry()
                .with(filter)
                .with(tracing_subscriber::fmt::layer().compact().with_test_writer())
                .try_init();
        }
    });
}
