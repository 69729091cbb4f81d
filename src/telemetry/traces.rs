//! Traces over OTLP (docs/operations.md, "Traces"): with `[telemetry]
//! otlp_endpoint`, one span per API request, in the caller's trace when its
//! `traceparent` is valid, with a child for authentication, for each fact a
//! decision looked up (`connect.<Operation>`, `cmg.cache` = `miss`, `hit` or
//! `shared_hit`), for the MonitorContact call and for each wait for a budget
//! token (`budget_wait`). Without an endpoint nothing here runs; the request
//! path only asks whether its context carries a tracer, a thread-local read
//! of under a nanosecond (measured), two to five times a request.
//!
//! Spans are made with the OpenTelemetry API directly, where the phases know
//! what a span should say, rather than bridged from the `tracing` spans: the
//! request's `debug_span` is there for logs (and costs nothing unless debug
//! logging is on); a bridge would export whatever spans the code and its
//! libraries open, and their fields, where a span here carries only the
//! attributes named below (never a token, a secret or a `Monitor-Reason`).
//! The request's span travels in the OpenTelemetry [`Context`] that its work
//! runs in ([`InSpan`]), with this gateway's tracer beside it, so the deep
//! places (the fact caches, the Connect client) start children without new
//! parameters, and two gateways in one process (tests) never share a tracer.
//!
//! Export never holds up an answer: a span ends into a bounded queue
//! (`max_queue`) with a non-blocking send, and one task on the gateway's
//! runtime sends batches to `{otlp_endpoint}/v1/traces` as OTLP/HTTP
//! protobuf, through the gateway's own hyper client, one attempt per batch
//! within [`EXPORT_TIMEOUT`]. The SDK's own batch processor is not used: it
//! exports from a thread of its own with a blocking client (or needs an
//! experimental runtime feature), and what it drops it only logs; here a
//! span that finds the queue full, or whose batch the collector did not
//! take, is counted in `cmg_otlp_dropped_spans_total`. No retries inside the
//! exporter: its backoff sleeps the thread unless its tokio feature is built
//! in, and the next batch is the retry.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::future::Either;
use http::Method;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::Connect;
use hyper_util::client::legacy::Client;
use opentelemetry::context::{FutureExt as _, WithContext};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceContextExt as _, TraceFlags, TraceId, TraceState, Tracer as _,
    TracerProvider as _,
};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_otlp::{Protocol, RetryPolicy, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider, SpanData, SpanExporter as _, SpanProcessor};
use opentelemetry_sdk::Resource;
use serde::Deserialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::metrics::Metrics;
use super::trace_context::TraceParent;
use crate::check::Check;

/// The resource every span is exported with.
pub(crate) const SERVICE_NAME: &str = "connect-monitor-gateway";
/// Spans waiting for export, by default (the SDK's own default).
const DEFAULT_MAX_QUEUE: usize = 2048;
/// The most spans one export carries (the SDK's default), and never more
/// than the queue holds: what waits in memory stays within twice `max_queue`.
const MAX_BATCH: usize = 512;
/// How long the first span of a batch waits for others: a request's spans
/// end within milliseconds of each other and leave in one export.
const BATCH_DELAY: Duration = Duration::from_millis(500);
/// One export's time, sending and answer included (OTLP's default); a
/// collector slower than this loses the batch.
pub(crate) const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of a collector's answer read (it says only what it refused).
const MAX_REPLY_BYTES: usize = 64 * 1024;

/// `[telemetry]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TelemetrySection {
    /// The collector's OTLP/HTTP base URL; no traces without it.
    #[serde(default)]
    otlp_endpoint: Option<String>,
    #[serde(default = "default_max_queue")]
    max_queue: usize,
}

fn default_max_queue() -> usize {
    DEFAULT_MAX_QUEUE
}

impl Default for TelemetrySection {
    fn default() -> Self {
        TelemetrySection {
            otlp_endpoint: None,
            max_queue: DEFAULT_MAX_QUEUE,
        }
    }
}

/// Where and how traces are exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TraceSettings {
    /// `{otlp_endpoint}/v1/traces`.
    pub(crate) traces_url: String,
    pub(crate) max_queue: usize,
}

impl TelemetrySection {
    /// The export's settings, or `None` when traces are off.
    pub(crate) fn check(self, c: &mut Check) -> Option<TraceSettings> {
        if self.max_queue == 0 {
            c.bad("telemetry.max_queue", "must be at least 1");
        }
        let endpoint = self.otlp_endpoint?;
        match traces_url(&endpoint) {
            Ok(traces_url) => Some(TraceSettings {
                traces_url,
                max_queue: self.max_queue.max(1),
            }),
            Err(why) => {
                c.bad("telemetry.otlp_endpoint", why);
                None
            }
        }
    }
}

/// `{endpoint}/v1/traces`, for an `http://` or `https://` base URL with a
/// host and neither credentials, query nor fragment.
fn traces_url(endpoint: &str) -> Result<String, &'static str> {
    const RULE: &str = "must be an http:// or https:// URL with a host, such as \"http://127.0.0.1:4318\"";
    let uri: http::Uri = endpoint.parse().map_err(|_| RULE)?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(RULE);
    }
    let authority = uri.authority().ok_or(RULE)?;
    if authority.host().is_empty() {
        return Err(RULE);
    }
    if authority.as_str().contains('@') {
        return Err("must not hold credentials: a collector's key goes in OTEL_EXPORTER_OTLP_HEADERS");
    }
    if uri.query().is_some() || endpoint.contains('#') {
        return Err("must not have a query or a fragment");
    }
    Ok(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
}

/// The gateway's tracer and its export, started from the settings.
pub(crate) struct Traces {
    /// Holds its provider, and through it the queue.
    tracer: SdkTracer,
    stop: watch::Sender<bool>,
    exporting: Mutex<Option<JoinHandle<()>>>,
}

/// Why traces could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("the OTLP exporter could not be built: {0}")]
pub(crate) struct ExportUnavailable(#[from] opentelemetry_otlp::ExporterBuildError);

impl Traces {
    /// Starts exporting on the current tokio runtime, through `client` (the
    /// gateway's outbound client: its pool, TLS roots and proxy).
    pub(crate) fn start<C>(
        settings: &TraceSettings,
        client: Client<C, Full<Bytes>>,
        metrics: Arc<Metrics>,
    ) -> Result<Traces, ExportUnavailable>
    where
        C: Connect + Clone + Send + Sync + 'static,
    {
        let resource = Resource::builder_empty()
            .with_service_name(SERVICE_NAME)
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(Collector(client))
            .with_endpoint(settings.traces_url.clone())
            .with_protocol(Protocol::HttpBinary)
            .with_timeout(EXPORT_TIMEOUT)
            .with_retry_policy(RetryPolicy::disabled())
            .build()?;
        exporter.set_resource(&resource);
        let (queue, spans) = mpsc::channel(settings.max_queue);
        let provider = SdkTracerProvider::builder()
            .with_resource(resource)
            // A caller that does not sample its trace gets no span here either.
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
            .with_span_processor(Queue {
                spans: queue,
                metrics: metrics.clone(),
            })
            .build();
        let (stop, stopped) = watch::channel(false);
        let batch = MAX_BATCH.min(settings.max_queue);
        let exporting = tokio::spawn(export(exporter, spans, batch, stopped, metrics));
        tracing::info!(endpoint = %settings.traces_url, "exporting traces");
        Ok(Traces {
            tracer: provider.tracer(SERVICE_NAME),
            stop,
            exporting: Mutex::new(Some(exporting)),
        })
    }

    /// The span of one API request: `route` when it is one of the API's
    /// (`POST /contact/monitor`), else `HTTP <method>`; a child of the
    /// caller's span when it sent a valid `traceparent`. The request id
    /// links it to the audit line when the caller sent no trace.
    pub(crate) fn request(
        &self,
        method: &Method,
        route: Option<&'static str>,
        request_id: &str,
        caller: Option<&TraceParent>,
    ) -> Span {
        let method = method_name(method);
        let name: Cow<'static, str> = match route {
            Some(route) => format!("{method} {route}").into(),
            None => format!("HTTP {method}").into(),
        };
        let mut attributes = vec![
            KeyValue::new("http.request.method", method),
            KeyValue::new("cmg.request_id", request_id.to_owned()),
        ];
        if let Some(route) = route {
            attributes.push(KeyValue::new("http.route", route));
        }
        let parent = match caller.and_then(remote_parent) {
            Some(remote) => Context::new().with_remote_span_context(remote),
            None => Context::new(),
        };
        let span = self.tracer.build_with_context(
            self.tracer
                .span_builder(name)
                .with_kind(SpanKind::Server)
                .with_attributes(attributes),
            &parent,
        );
        Span(parent.with_span(span).with_value(Tracing(self.tracer.clone())))
    }

    /// Stops exporting: what is queued is sent, within `within`.
    pub(crate) async fn shutdown(&self, within: Duration) {
        let _ = self.stop.send(true);
        let task = self.exporting.lock().expect("traces lock").take();
        if let Some(mut task) = task {
            if tokio::time::timeout(within, &mut task).await.is_err() {
                task.abort();
                tracing::warn!("traces still queued at shutdown were not exported");
            }
        }
    }
}

/// The tracer, beside the span in a request's context.
struct Tracing(SdkTracer);

/// A span and the context it gives the work inside it; ends when dropped.
pub(crate) struct Span(Context);

impl Span {
    /// A child of the current context's span, when the request is traced.
    pub(crate) fn child(name: &'static str) -> Option<Span> {
        Self::start(|| name.into(), SpanKind::Internal, None)
    }

    /// The span of a call to Connect's `operation`, when the request is traced.
    pub(crate) fn connect(operation: &'static str) -> Option<Span> {
        Self::start(|| format!("connect.{operation}").into(), SpanKind::Client, None)
    }

    fn start(name: impl FnOnce() -> Cow<'static, str>, kind: SpanKind, since: Option<SystemTime>) -> Option<Span> {
        Context::map_current(|cx| {
            let Tracing(tracer) = cx.get::<Tracing>()?;
            let mut builder = tracer.span_builder(name()).with_kind(kind);
            builder.start_time = since;
            let span = tracer.build_with_context(builder, cx);
            Some(Span(cx.with_span(span)))
        })
    }

    /// Sets an attribute.
    pub(crate) fn set(&self, key: &'static str, value: impl Into<Value>) {
        self.0.span().set_attribute(KeyValue::new(key, value));
    }

    /// Marks the span failed, saying why in the gateway's own words.
    pub(crate) fn fail(&self, why: &'static str) {
        self.0.span().set_status(Status::error(why));
    }

    /// What the request came to: its status, decision, reason and grant (the
    /// audit's words: a grant's name or a deny reason, never caller text).
    pub(crate) fn answered(&self, status: u16, decision: &'static str, reason: Option<&str>, grant: Option<&str>) {
        let span = self.0.span();
        span.set_attribute(KeyValue::new("http.response.status_code", i64::from(status)));
        span.set_attribute(KeyValue::new("cmg.decision", decision));
        if let Some(reason) = reason {
            span.set_attribute(KeyValue::new("cmg.reason", reason.to_owned()));
        }
        if let Some(grant) = grant {
            span.set_attribute(KeyValue::new("cmg.grant", grant.to_owned()));
        }
        if status >= 500 {
            span.set_status(Status::error("server error"));
        }
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        self.0.span().end();
    }
}

/// Work done inside a span: the spans it starts are the span's children.
pub(crate) trait InSpan: Future + Sized {
    /// Runs inside `span`, or as it is when the request is not traced.
    fn in_span(self, span: Option<&Span>) -> Either<WithContext<Self>, Self> {
        match span {
            Some(span) => Either::Left(self.with_context(span.0.clone())),
            None => Either::Right(self),
        }
    }
}

impl<F: Future> InSpan for F {}

/// A call to Connect's `operation` waited `waited` for its budget's token:
/// a `budget_wait` span over that time, when the request is traced.
pub(crate) fn budget_waited(operation: &'static str, waited: Duration) {
    if waited.is_zero() {
        return;
    }
    let since = SystemTime::now().checked_sub(waited);
    if let Some(span) = Span::start(|| "budget_wait".into(), SpanKind::Internal, since) {
        span.set("cmg.operation", operation);
    }
}

/// The method as OpenTelemetry's conventions name it: a standard one as
/// it is, any other `_OTHER` (an extension method is caller text).
fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "_OTHER",
    }
}

/// The caller's span, from a valid `traceparent`.
fn remote_parent(caller: &TraceParent) -> Option<SpanContext> {
    let trace_id = TraceId::from_hex(&caller.trace_id).ok()?;
    let span_id = SpanId::from_bytes(caller.parent_id.to_be_bytes());
    // Only the sampled bit is defined (W3C Trace Context Level 1).
    let flags = TraceFlags::new(caller.flags) & TraceFlags::SAMPLED;
    Some(SpanContext::new(trace_id, span_id, flags, true, TraceState::default()))
}

/// Where ended spans go: the export queue, or nowhere (counted) when it is full.
struct Queue {
    spans: mpsc::Sender<SpanData>,
    metrics: Arc<Metrics>,
}

impl fmt::Debug for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue").field("free", &self.spans.capacity()).finish()
    }
}

impl SpanProcessor for Queue {
    fn on_start(&self, _: &mut opentelemetry_sdk::trace::Span, _: &Context) {}

    fn on_end(&self, span: SpanData) {
        // Called on the request's thread as its span ends: never wait here.
        if self.spans.try_send(span).is_err() {
            self.metrics.otlp_spans_dropped(1);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
        // The export task drains the queue (`Traces::shutdown`).
        Ok(())
    }
}

/// Sends the queue's spans in batches until stopped, then what is left.
async fn export(
    exporter: opentelemetry_otlp::SpanExporter,
    mut spans: mpsc::Receiver<SpanData>,
    max_batch: usize,
    mut stop: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
) {
    let mut failing = false;
    loop {
        let first = tokio::select! {
            span = spans.recv() => span,
            _ = stop.wait_for(|stopped| *stopped) => None,
        };
        let Some(first) = first else { break };
        let mut batch = vec![first];
        let until = tokio::time::Instant::now() + BATCH_DELAY;
        while batch.len() < max_batch {
            tokio::select! {
                span = spans.recv() => match span {
                    Some(span) => batch.push(span),
                    None => break,
                },
                _ = tokio::time::sleep_until(until) => break,
                _ = stop.wait_for(|stopped| *stopped) => break,
            }
        }
        send(&exporter, batch, &metrics, &mut failing).await;
    }
    spans.close();
    let mut batch = Vec::new();
    while let Ok(span) = spans.try_recv() {
        batch.push(span);
        if batch.len() == max_batch {
            send(&exporter, std::mem::take(&mut batch), &metrics, &mut failing).await;
        }
    }
    if !batch.is_empty() {
        send(&exporter, batch, &metrics, &mut failing).await;
    }
}

/// One export; a batch the collector did not take is counted as dropped.
/// The log says when exports start failing and when they work again, not
/// every failure (a collector that is down would flood it).
async fn send(
    exporter: &opentelemetry_otlp::SpanExporter,
    batch: Vec<SpanData>,
    metrics: &Metrics,
    failing: &mut bool,
) {
    let spans = batch.len() as u64;
    let outcome = match tokio::time::timeout(EXPORT_TIMEOUT, exporter.export(batch)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {EXPORT_TIMEOUT:?}")),
    };
    match outcome {
        Ok(()) if *failing => {
            *failing = false;
            tracing::info!("traces are exported again");
        }
        Ok(()) => {}
        Err(error) => {
            metrics.otlp_spans_dropped(spans);
            if !*failing {
                *failing = true;
                tracing::warn!(%error, "traces could not be exported; dropping them until the collector takes them");
            }
        }
    }
}

/// The exporter's HTTP client: the gateway's own.
struct Collector<C>(Client<C, Full<Bytes>>);

impl<C> fmt::Debug for Collector<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Collector")
    }
}

#[async_trait::async_trait]
impl<C> opentelemetry_http::HttpClient for Collector<C>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, opentelemetry_http::HttpError> {
        // The time limit is the export's (`send`).
        let response = self.0.request(request.map(Full::new)).await?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_REPLY_BYTES).collect().await?.to_bytes();
        Ok(http::Response::from_parts(parts, body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traces_url_is_the_endpoint_with_v1_traces() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318").as_deref(),
            Ok("http://127.0.0.1:4318/v1/traces")
        );
        assert_eq!(
            traces_url("https://collector.example/otlp/").as_deref(),
            Ok("https://collector.example/otlp/v1/traces")
        );
        for bad in [
            "",
            "127.0.0.1:4318",
            "grpc://127.0.0.1:4317",
            "http://user:secret@collector:4318",
            "http://collector:4318/?x=1",
            "http://collector:4318/#x",
        ] {
            assert!(traces_url(bad).is_err(), "{bad:?}");
        }
    }

    fn checked(text: &str) -> (Option<TraceSettings>, Vec<String>) {
        let env = crate::check::Environment::default();
        let mut c = Check::new(std::path::Path::new("gateway.toml"), &env);
        let section: TelemetrySection = toml::from_str(text).unwrap();
        let settings = section.check(&mut c);
        (settings, c.problems.into_iter().map(|p| p.key).collect())
    }

    #[test]
    fn the_section_is_off_without_an_endpoint_and_names_what_is_wrong() {
        assert_eq!(checked(""), (None, vec![]));
        assert_eq!(
            checked("otlp_endpoint = \"http://127.0.0.1:4318/\""),
            (
                Some(TraceSettings {
                    traces_url: "http://127.0.0.1:4318/v1/traces".into(),
                    max_queue: DEFAULT_MAX_QUEUE,
                }),
                vec![]
            )
        );
        let (settings, problems) = checked("otlp_endpoint = \"127.0.0.1:4318\"\nmax_queue = 0");
        assert_eq!(settings, None);
        assert_eq!(problems, ["telemetry.max_queue", "telemetry.otlp_endpoint"]);
    }

    #[test]
    fn an_extension_method_is_not_named() {
        assert_eq!(method_name(&Method::POST), "POST");
        assert_eq!(method_name(&Method::from_bytes(b"SECRETS").unwrap()), "_OTHER");
    }

    #[test]
    fn a_caller_that_does_not_sample_is_followed() {
        let caller = |flags| TraceParent {
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            parent_id: 0x00f0_67aa_0ba9_02b7,
            flags,
        };
        let sampled = remote_parent(&caller(0x01)).unwrap();
        assert!(sampled.is_sampled() && sampled.is_remote());
        assert_eq!(sampled.span_id(), SpanId::from_hex("00f067aa0ba902b7").unwrap());
        assert!(!remote_parent(&caller(0x00)).unwrap().is_sampled());
        assert!(
            !remote_parent(&caller(0x02)).unwrap().is_sampled(),
            "undefined bits ignored"
        );
    }

    #[test]
    fn without_a_tracer_in_the_context_no_span_is_made() {
        assert!(Span::child("authenticate").is_none());
        assert!(Span::connect("DescribeContact").is_none());
        budget_waited("MonitorContact", Duration::from_millis(5));
    }
}
