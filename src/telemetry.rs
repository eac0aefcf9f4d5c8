//! Logs and traces. Logs go to stderr (text or JSON) and never carry secret values. Traces are
//! exported over OTLP/gRPC only when configured (`secret.tracing.otlpEndpoint`, or the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT`): one span per RPC, named and attributed like the Go service's
//! OpenTelemetry interceptor.

use opentelemetry::trace::TracerProvider as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The service name traces are reported under (the Go service's).
pub const SERVICE_NAME: &str = "secret-service";

/// Flushes and stops the trace exporter when dropped.
pub struct Telemetry {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take()
            && let Err(e) = p.shutdown()
        {
            eprintln!("flytesecret: flushing traces failed: {e}");
        }
    }
}

/// The OTLP endpoint to export to, if tracing is configured.
pub fn otlp_endpoint(configured: &str) -> Option<String> {
    if !configured.is_empty() {
        return Some(configured.to_owned());
    }
    std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
}

/// Installs the global subscriber. Must run inside the Tokio runtime when tracing is on.
pub fn init(json: bool, otlp: Option<String>) -> anyhow::Result<Telemetry> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use tracing_subscriber::Layer as _;
    type Boxed = Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>;
    // RUST_LOG filters the logs only; traces always carry the RPC spans. The logs see the
    // per-RPC span only at debug verbosity: every log line an RPC writes at info names its
    // secret itself, and a span the log layer accepts is built and has its fields formatted on
    // every RPC (about 15% of a GetSecret's instructions) whether or not anything is logged in
    // it. With neither debug logs nor OTLP, the span is disabled and costs nothing.
    let filter = logs_filter(filter);
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if json {
        fmt.json().with_filter(filter).boxed()
    } else {
        fmt.with_filter(filter).boxed()
    };
    let mut layers: Vec<Boxed> = vec![fmt];
    let provider = match otlp {
        Some(endpoint) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint_from(&endpoint)
                .build()?;
            let resource = opentelemetry_sdk::Resource::builder()
                .with_service_name(SERVICE_NAME)
                .build();
            Some(
                opentelemetry_sdk::trace::SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(resource)
                    .build(),
            )
        }
        None => None,
    };
    if let Some(p) = &provider {
        let rpc_spans = tracing_subscriber::filter::Targets::new()
            .with_target("flytesecret", tracing::Level::INFO);
        layers.push(
            tracing_opentelemetry::layer()
                .with_tracer(p.tracer("flytesecret"))
                .with_filter(rpc_spans)
                .boxed(),
        );
    }
    tracing_subscriber::registry().with(layers).try_init()?;
    Ok(Telemetry { provider })
}

/// What reaches the logs: what `filter` (RUST_LOG, else `info`) lets through, less the RPC span
/// below debug verbosity (see [`init`]) and less everything kube-client's `client` module logs,
/// at any verbosity. That module logs the whole text of an API answer it cannot parse (`warn`:
/// a list of Secrets with their data) and of the answers to deletes (`trace`: the deleted
/// Secret); secret values never go to our logs, so none of it does. kube-client's other
/// modules (its TLS roots, its connection errors) log no answers and are kept.
pub fn logs_filter<S>(
    filter: tracing_subscriber::EnvFilter,
) -> impl tracing_subscriber::layer::Filter<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use tracing_subscriber::filter::FilterExt as _;
    let rpc_span_in_logs = filter
        .max_level_hint()
        .is_some_and(|l| l >= tracing_subscriber::filter::LevelFilter::DEBUG);
    filter.and(tracing_subscriber::filter::filter_fn(move |m| {
        (rpc_span_in_logs || !is_rpc_span(m)) && m.target() != KUBE_CLIENT_ANSWER_LOGS
    }))
}

/// The target of kube-client's events that can carry an API answer's text.
const KUBE_CLIENT_ANSWER_LOGS: &str = "kube_client::client";

/// The span [`crate::service::SecretService`] opens around each RPC.
fn is_rpc_span(m: &tracing::Metadata<'_>) -> bool {
    m.is_span() && m.name() == crate::service::RPC_SPAN && m.target().starts_with("flytesecret")
}

trait WithEndpoint {
    fn with_endpoint_from(self, endpoint: &str) -> Self;
}

impl WithEndpoint
    for opentelemetry_otlp::SpanExporterBuilder<opentelemetry_otlp::TonicExporterBuilderSet>
{
    fn with_endpoint_from(self, endpoint: &str) -> Self {
        use opentelemetry_otlp::WithExportConfig as _;
        self.with_endpoint(endpoint)
    }
}

/// Log output kept in memory, for tests that check what is logged.
#[cfg(test)]
#[derive(Clone, Default)]
pub(crate) struct Captured(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(test)]
impl Captured {
    /// What was logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[cfg(test)]
impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
