//! OpenTelemetry traces, exported over OTLP/HTTP when the standard `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; README "Traces" lists what is read.
//!
//! Spans are `tracing` spans, bridged by `tracing-opentelemetry`: the request (`graphql`, made by
//! the transport, parented to the caller's `traceparent`), the operation (`query Name`), each
//! resolver that returns an object or a list ([`GraphqlSpans`]), and each SQL statement
//! ([`record_statement`], from the pool's metric callback). Without an endpoint none of that is
//! built: the resolver extension is not installed and the statement callback returns at once,
//! so a request pays nothing. (SeaORM's own `tracing-spans` feature would wrap every
//! statement's future in two more layers whether or not anything listens: about 30 000
//! instructions of memcpy a statement, measured with callgrind.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextResolve, ResolveInfo,
};
use async_graphql::{ServerResult, Value};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing::{Level, Metadata};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{FilterFn, Filtered};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The target of this module's spans; README's default log filter keeps them out of log lines.
pub const SPAN_TARGET: &str = "logbook::otel";

static ENABLED: AtomicBool = AtomicBool::new(false);
/// The exporter's tracer, for the statement spans made after the fact.
static TRACER: OnceLock<opentelemetry_sdk::trace::Tracer> = OnceLock::new();

/// Whether spans are exported (an endpoint was configured and the exporter built).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// An environment variable's value, unless it is unset or blank (as the OTel specification
/// reads its variables).
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Whether the environment asks for spans to be exported (an endpoint is set and the SDK is not
/// turned off); [`layer_from_env`] then builds the exporter or says why it cannot.
pub fn configured() -> bool {
    let disabled = env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || env("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"));
    let endpoint =
        env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT"));
    endpoint.is_some() && !disabled
}

/// The exporter's provider, kept so that the spans still queued are sent before the process
/// exits.
pub struct Exporting {
    provider: SdkTracerProvider,
}

impl Exporting {
    /// Sends what is queued and stops the exporter (at most a few seconds).
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown_with_timeout(Duration::from_secs(5)) {
            eprintln!("logbook: flushing OpenTelemetry spans failed: {e}");
        }
    }
}

/// The layer that exports spans, when the environment asks for it; `Err` says why a configured
/// exporter cannot be built (the process should refuse to start rather than drop traces).
#[allow(clippy::type_complexity)]
pub fn layer_from_env<S>() -> Result<
    Option<(
        Filtered<
            tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>,
            FilterFn,
            S,
        >,
        Exporting,
    )>,
    String,
>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    if !configured() {
        return Ok(None);
    }
    if let Some(other) = env("OTEL_TRACES_EXPORTER").filter(|v| !v.eq_ignore_ascii_case("otlp")) {
        return Err(format!(
            "OTEL_TRACES_EXPORTER={other} is not supported: Logbook exports traces over OTLP only"
        ));
    }
    let protocol = env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .unwrap_or_else(|| "http/protobuf".to_owned());
    // The exporter crate reads the endpoint, headers, timeout and compression variables itself;
    // the protocol it leaves to us (and would default to JSON, against the specification).
    let protocol = match protocol.as_str() {
        "http/protobuf" => Protocol::HttpBinary,
        "http/json" => Protocol::HttpJson,
        other => {
            return Err(format!(
                "OTEL_EXPORTER_OTLP_PROTOCOL={other} is not supported: use http/protobuf (the \
                 default, usually port 4318) or http/json"
            ))
        }
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .build()
        .map_err(|e| format!("cannot build the OTLP trace exporter: {e}"))?;
    let mut resource = Resource::builder();
    let named = env("OTEL_SERVICE_NAME").is_some()
        || env("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|a| a.contains("service.name="));
    if !named {
        resource = resource.with_service_name("logbook");
    }
    let resource = resource
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    // The sampler comes from OTEL_TRACES_SAMPLER (default: parent-based, always on).
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("logbook");
    let _ = TRACER.set(tracer.clone());
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_filter(exported());
    ENABLED.store(true, Ordering::Relaxed);
    Ok(Some((layer, Exporting { provider })))
}

/// What the exporter sees: Logbook's own spans and events at info and above.
fn exported() -> FilterFn {
    fn relevant(meta: &Metadata<'_>) -> bool {
        *meta.level() <= Level::INFO && meta.target().starts_with("logbook")
    }
    FilterFn::new(relevant as fn(&Metadata<'_>) -> bool)
}

/// A span for one SQL statement that just ran `elapsed` (the pool's metric callback calls this
/// after every statement), as a child of the current span: a request's resolver, or the
/// request itself. Statements outside any span (the revocation polls, the export worker's
/// claims) make none, or each would be a trace of its own. Only the SQL text is recorded, with
/// its `$1`/`?` placeholders: bound values never leave the process.
pub fn record_statement(system: &'static str, sql: &str, elapsed: Duration, failed: bool) {
    use opentelemetry::trace::{Span as _, SpanKind, Status, Tracer as _};
    if !enabled() {
        return;
    }
    let Some(tracer) = TRACER.get() else { return };
    let current = tracing::Span::current();
    if current.is_none() {
        return;
    }
    let parent = current.context();
    if !parent.span().span_context().is_valid() {
        return;
    }
    let end = SystemTime::now();
    let operation = sql
        .split_whitespace()
        .next()
        .unwrap_or("SQL")
        .to_ascii_uppercase();
    let mut span = tracer
        .span_builder(operation.clone())
        .with_kind(SpanKind::Client)
        .with_start_time(end - elapsed)
        .with_attributes([
            opentelemetry::KeyValue::new("db.system", system),
            opentelemetry::KeyValue::new("db.operation", operation),
            opentelemetry::KeyValue::new("db.statement", sql.to_owned()),
        ])
        .start_with_context(tracer, &parent);
    if failed {
        span.set_status(Status::error("the statement failed"));
    }
    span.end_with_timestamp(end);
}

/// Parents `span` (a request's) to the caller's W3C trace context, when spans are exported and
/// the caller sent one.
pub fn adopt_caller_context(span: &tracing::Span, req: &actix_web::HttpRequest) {
    if !enabled() {
        return;
    }
    span.set_attribute("http.request.method", req.method().as_str().to_owned());
    span.set_attribute("url.path", req.path().to_owned());
    let carrier = HeaderCarrier(req.headers());
    let parent = TraceContextPropagator::new().extract(&carrier);
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// Puts the response's status on the request's span (an error status from 500 up).
pub fn record_response(span: &tracing::Span, status: u16) {
    if !enabled() {
        return;
    }
    span.set_attribute("http.response.status_code", i64::from(status));
    if status >= 500 {
        span.set_status(opentelemetry::trace::Status::error(format!(
            "HTTP {status}"
        )));
    }
}

/// The `traceparent` naming `span` as the parent, when spans are exported (so the caller's
/// trace view links to the very span the collector received).
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    if !enabled() {
        return None;
    }
    let context = span.context();
    let span_ref = context.span();
    let span_context = span_ref.span_context();
    span_context.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            span_context.trace_id(),
            span_context.span_id(),
            span_context.trace_flags().to_u8()
        )
    })
}

struct HeaderCarrier<'a>(&'a actix_web::http::header::HeaderMap);

impl opentelemetry::propagation::Extractor for HeaderCarrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// The operation's span, named as OpenTelemetry's GraphQL conventions say (`query NewestRuns`).
/// The document itself is not recorded: its literals may be a tenant's data.
pub fn operation_span(operation_type: &'static str, name: Option<&str>) -> tracing::Span {
    if !enabled() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(
        target: SPAN_TARGET,
        "graphql.operation",
        otel.name = %match name {
            Some(name) => format!("{operation_type} {name}"),
            None => operation_type.to_owned(),
        },
        graphql.operation.type = operation_type,
        graphql.operation.name = name,
    );
    span
}

/// A span per resolver that returns an object or a list of them (a scalar's would be a span per
/// cell): installed on the schema only when spans are exported. The fields a
/// `plain::PlainList` answers in one pass are all scalars, so nothing it skips had a span.
pub struct GraphqlSpans;

impl ExtensionFactory for GraphqlSpans {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(GraphqlSpans)
    }
}

#[async_trait::async_trait]
impl Extension for GraphqlSpans {
    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        use tracing::Instrument as _;
        let leaf = || {
            let named = async_graphql::registry::MetaTypeName::concrete_typename(info.return_type);
            ctx.schema_env
                .registry
                .types
                .get(named)
                .is_some_and(|ty| ty.is_leaf())
        };
        if info.is_for_introspection || leaf() {
            return next.run(ctx, info).await;
        }
        let span = tracing::info_span!(
            target: SPAN_TARGET,
            "graphql.resolve",
            otel.name = %format_args!("{}.{}", info.parent_type, info.name),
            graphql.field.path = %info.path_node,
            graphql.field.type = info.return_type,
            otel.status_code = tracing::field::Empty,
        );
        let resolved = next.run(ctx, info).instrument(span.clone()).await;
        if resolved.is_err() {
            span.record("otel.status_code", "ERROR");
        }
        resolved
    }
}
