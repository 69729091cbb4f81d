//! Traces over OTLP (`[telemetry] otlp_endpoint`, docs/operations.md,
//! "Traces"): an in-process collector on an ephemeral port decodes what the
//! gateway exports. One span per request, in the caller's trace, with its
//! phases as children; no token and no `Monitor-Reason` in anything sent;
//! and a collector that is down or hung never delays an answer, its lost
//! spans counted in `cmg_otlp_dropped_spans_total`.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use connect_monitor_gateway::test_util::{serve, Listening};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::support::connect_records::{contact, grant};
use crate::support::{Answer, Harness, Options, BODY, SECRET_KEY, SESSION_TOKEN};

/// The callers' spans: `traceparent` headers and what they name.
const FIRST: (&str, &str, &str) = (
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "0af7651916cd43dd8448eb211c80319c",
    "b7ad6b7169203331",
);
const SECOND: (&str, &str, &str) = (
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "4bf92f3577b34da6a3ce929d0e0e4736",
    "00f067aa0ba902b7",
);
/// A caller that does not sample its trace (flags 00).
const UNSAMPLED: (&str, &str) = (
    "00-5c1b6a0e7d2f4a3b9c8d7e6f5a4b3c2d-1a2b3c4d5e6f7081-00",
    "5c1b6a0e7d2f4a3b9c8d7e6f5a4b3c2d",
);

/// Why the caller listens in: it must reach the audit only.
const WHY: &str = "Customer asked for a supervisor, ticket 4711";

/// How long a test waits for the collector to hear of a span.
const EXPORTED_WITHIN: Duration = Duration::from_secs(20);

/// One span as the collector got it.
#[derive(Debug, Clone)]
struct Exported {
    service: String,
    trace_id: String,
    span_id: String,
    /// Empty for a span that starts its trace.
    parent: String,
    name: String,
    kind: i32,
    attributes: BTreeMap<String, String>,
}

impl Exported {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

#[derive(Default)]
struct Received {
    spans: Vec<Exported>,
    /// Every export as sent, to search for what must never be there.
    bodies: Vec<Bytes>,
    /// Where exports went, and how they were sent.
    requests: Vec<String>,
}

/// An OTLP/HTTP collector on an ephemeral loopback port; stops when dropped.
struct Collector {
    addr: SocketAddr,
    received: Arc<Mutex<Received>>,
    task: JoinHandle<()>,
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Collector {
    async fn start() -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Received::default()));
        let r = received.clone();
        let task = tokio::spawn(serve(
            listener,
            Listening::plain(Duration::from_secs(30)),
            std::future::pending(),
            move |req| receive(r.clone(), req),
        ));
        Collector { addr, received, task }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The spans received once `done` holds of them (polled, bounded).
    async fn spans_when(&self, what: &str, done: impl Fn(&[Exported]) -> bool) -> Vec<Exported> {
        let deadline = tokio::time::Instant::now() + EXPORTED_WITHIN;
        loop {
            let spans = self.received.lock().unwrap().spans.clone();
            if done(&spans) {
                return spans;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: not exported within {EXPORTED_WITHIN:?}; got {spans:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Asserts no export held any of `secrets`, anywhere in its bytes.
    fn assert_never_sent(&self, secrets: &[&str]) {
        let received = self.received.lock().unwrap();
        assert!(!received.bodies.is_empty());
        for body in &received.bodies {
            for secret in secrets {
                let found = body.windows(secret.len()).any(|w| w == secret.as_bytes());
                assert!(!found, "an export holds {secret:?}");
            }
        }
        for span in &received.spans {
            for value in span.attributes.values().chain([&span.name]) {
                assert!(!secrets.iter().any(|s| value.contains(s)), "{span:?}");
            }
        }
    }
}

async fn receive(received: Arc<Mutex<Received>>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    let content_type = parts.headers.get("content-type").and_then(|v| v.to_str().ok());
    let mut received = received.lock().unwrap();
    received.requests.push(format!(
        "{} {} {}",
        parts.method,
        parts.uri.path(),
        content_type.unwrap_or("-")
    ));
    if let Ok(export) = ExportTraceServiceRequest::decode(body.clone()) {
        received.spans.extend(flatten(export));
    }
    received.bodies.push(body);
    let answer = Response::builder()
        .header("content-type", "application/x-protobuf")
        .body(Full::new(Bytes::new()))
        .unwrap();
    Ok(answer)
}

fn flatten(export: ExportTraceServiceRequest) -> Vec<Exported> {
    let mut spans = Vec::new();
    for resource_spans in export.resource_spans {
        let resource = resource_spans
            .resource
            .map(|r| attributes(&r.attributes))
            .unwrap_or_default();
        let service = resource.get("service.name").cloned().unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                spans.push(Exported {
                    service: service.clone(),
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent: hex(&span.parent_span_id),
                    name: span.name,
                    kind: span.kind,
                    attributes: attributes(&span.attributes),
                });
            }
        }
    }
    spans
}

fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter().map(|kv| (kv.key.clone(), text(kv.value.as_ref()))).collect()
}

fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        other => format!("{other:?}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The one span named `name` in trace `trace_id`.
fn span<'a>(spans: &'a [Exported], trace_id: &str, name: &str) -> &'a Exported {
    let found: Vec<_> = spans
        .iter()
        .filter(|s| s.trace_id == trace_id && s.name == name)
        .collect();
    assert_eq!(found.len(), 1, "one {name} in trace {trace_id}: {spans:#?}");
    found[0]
}

/// The names of `parent`'s children.
fn children<'a>(spans: &'a [Exported], parent: &Exported) -> BTreeSet<&'a str> {
    spans
        .iter()
        .filter(|s| s.trace_id == parent.trace_id && s.parent == parent.span_id)
        .map(|s| s.name.as_str())
        .collect()
}

fn has_request(spans: &[Exported], trace_id: &str, name: &str) -> bool {
    spans.iter().any(|s| s.trace_id == trace_id && s.name == name)
}

/// A MonitorContact POST with a token, and optionally a caller's trace and a reason.
async fn post(h: &Harness, path: &str, token: &str, traceparent: Option<&str>, why: Option<&str>) -> Answer {
    let mut request = Request::post(h.url(path))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json");
    if let Some(traceparent) = traceparent {
        request = request.header("traceparent", traceparent);
    }
    if let Some(why) = why {
        request = request.header("monitor-reason", why);
    }
    h.send(request.body(Full::new(Bytes::from(BODY))).unwrap()).await
}

async fn get(h: &Harness, path: &str) -> Answer {
    h.send(Request::get(h.url(path)).body(Full::new(Bytes::new())).unwrap())
        .await
}

#[tokio::test]
async fn a_request_is_a_span_in_the_callers_trace_with_its_phases_as_children() {
    let collector = Collector::start().await;
    // A grant that needs the contact's record and a reason; MonitorContact
    // paced at one call every 4 s, so the second call waits for its token.
    let config = format!(
        "[telemetry]\notlp_endpoint = \"{}\"\n\n[connect.quotas]\nMonitorContact = {{ rate = 0.25, burst = 1 }}\n",
        collector.endpoint()
    );
    let h = Harness::with(Options {
        policy: grant("agents = { queues = [\"q-1\"] }\nrequire_reason = true"),
        config: &config,
        ..Options::default()
    })
    .await;
    h.connect.add_contact(contact(Some("agent-1"), &["g-team"]));
    let token = h.supervisor_token();
    for caller in [FIRST, SECOND] {
        let a = post(&h, "/contact/monitor", &token, Some(caller.0), Some(WHY)).await;
        assert_eq!(a.status, 200, "{:?}", a.body);
    }
    assert_eq!(
        h.connect.calls("DescribeContact"),
        1,
        "the second request's contact came from the cache"
    );

    // A request's span ends after its children, and spans leave in the order they end.
    let spans = collector
        .spans_when("both requests' spans", |spans| {
            [FIRST, SECOND]
                .iter()
                .all(|c| has_request(spans, c.1, "POST /contact/monitor"))
        })
        .await;
    let first = span(&spans, FIRST.1, "POST /contact/monitor");
    assert_eq!(first.parent, FIRST.2, "a child of the caller's span");
    assert_eq!(first.kind, SpanKind::Server as i32);
    for (key, value) in [
        ("cmg.decision", "allow"),
        ("cmg.grant", "connect-aware"),
        ("cmg.reason", "connect-aware"),
        ("http.response.status_code", "200"),
        ("http.request.method", "POST"),
        ("http.route", "/contact/monitor"),
    ] {
        assert_eq!(first.attr(key), Some(value), "{key} in {first:#?}");
    }
    let audited = &h.audit_lines()[0];
    assert_eq!(
        first.attr("cmg.request_id"),
        audited["request_id"].as_str(),
        "the audit line's"
    );
    assert_eq!(
        children(&spans, first),
        BTreeSet::from(["authenticate", "connect.DescribeContact", "connect.MonitorContact"])
    );
    let looked_up = span(&spans, FIRST.1, "connect.DescribeContact");
    assert_eq!(looked_up.attr("cmg.cache"), Some("miss"));
    assert_eq!(looked_up.kind, SpanKind::Client as i32);
    assert!(
        !spans.iter().any(|s| s.trace_id == FIRST.1 && s.name == "budget_wait"),
        "the first token was free"
    );

    let second = span(&spans, SECOND.1, "POST /contact/monitor");
    assert_eq!(second.parent, SECOND.2);
    assert_eq!(
        span(&spans, SECOND.1, "connect.DescribeContact").attr("cmg.cache"),
        Some("hit")
    );
    let called = span(&spans, SECOND.1, "connect.MonitorContact");
    assert_eq!(called.parent, second.span_id);
    assert!(called.attr("cmg.cache").is_none(), "not a lookup");
    let waited = span(&spans, SECOND.1, "budget_wait");
    assert_eq!(waited.parent, called.span_id, "the wait is the call's");
    assert_eq!(waited.attr("cmg.operation"), Some("MonitorContact"));

    assert!(
        spans.iter().all(|s| s.service == "connect-monitor-gateway"),
        "{spans:#?}"
    );
    let sent = collector.received.lock().unwrap().requests.clone();
    assert!(
        sent.iter().all(|r| r == "POST /v1/traces application/x-protobuf"),
        "{sent:?}"
    );
    // The reason reached the audit, and nothing the collector got.
    assert_eq!(h.audit_lines().last().unwrap()["monitor_reason"], WHY);
    collector.assert_never_sent(&[&token, WHY, SECRET_KEY, SESSION_TOKEN]);
}

#[tokio::test]
async fn every_request_is_named_after_its_route_and_an_unsampled_caller_gets_no_span() {
    let collector = Collector::start().await;
    let config = format!("[telemetry]\notlp_endpoint = \"{}\"\n", collector.endpoint());
    let h = Harness::with(Options {
        config: &config,
        ..Options::default()
    })
    .await;
    let token = h.supervisor_token();
    let unsampled = post(&h, "/contact/monitor", &token, Some(UNSAMPLED.0), None).await;
    assert_eq!(unsampled.status, 200, "{:?}", unsampled.body);
    assert_eq!(post(&h, "/contact/monitor/check", &token, None, None).await.status, 200);
    assert_eq!(get(&h, "/contacts/monitorable?instance_id=inst-1").await.status, 401);
    assert_eq!(get(&h, "/nowhere").await.status, 404);
    // Spans leave in the order they end: once this one is in, so are the others.
    let marker = post(&h, "/contact/monitor", &token, Some(FIRST.0), None).await;
    assert_eq!(marker.status, 200);
    let spans = collector
        .spans_when("the last request's span", |spans| {
            has_request(spans, FIRST.1, "POST /contact/monitor")
        })
        .await;

    assert!(
        !spans.iter().any(|s| s.trace_id == UNSAMPLED.1),
        "a caller that does not sample gets no span: {spans:#?}"
    );
    let named = |name: &str| -> Exported {
        let found: Vec<_> = spans.iter().filter(|s| s.name == name).collect();
        assert_eq!(found.len(), 1, "one {name}: {spans:#?}");
        found[0].clone()
    };
    let check = named("POST /contact/monitor/check");
    assert_eq!(check.parent, "", "no traceparent: a trace of its own");
    assert!(![FIRST.1, UNSAMPLED.1].contains(&check.trace_id.as_str()));
    assert_eq!(
        (check.attr("cmg.decision"), check.attr("cmg.grant")),
        (Some("allow"), Some("supervisors"))
    );
    assert_eq!(
        children(&spans, &check),
        BTreeSet::from(["authenticate"]),
        "a dry run calls nothing"
    );
    let listing = named("GET /contacts/monitorable");
    assert_eq!(
        (listing.attr("http.response.status_code"), listing.attr("cmg.decision")),
        (Some("401"), Some("deny"))
    );
    assert_eq!(listing.attr("cmg.reason"), Some("unauthenticated"));
    let elsewhere = named("HTTP GET");
    assert_eq!(elsewhere.attr("http.response.status_code"), Some("404"));
    assert_eq!(elsewhere.attr("http.route"), None, "no route: the path is the caller's");
    assert!(children(&spans, &elsewhere).is_empty());
    collector.assert_never_sent(&[&token, "/nowhere"]);
}

#[tokio::test]
async fn shutdown_sends_the_spans_still_queued() {
    let collector = Collector::start().await;
    let config = format!("[telemetry]\notlp_endpoint = \"{}\"\n", collector.endpoint());
    let mut h = Harness::with(Options {
        config: &config,
        ..Options::default()
    })
    .await;
    let a = post(&h, "/contact/monitor", &h.supervisor_token(), Some(FIRST.0), None).await;
    assert_eq!(a.status, 200);
    // At once, before the export's batch would have left on its own.
    let gateway = h.gateway.take().unwrap();
    tokio::time::timeout(Duration::from_secs(10), gateway.shutdown(Duration::from_secs(5)))
        .await
        .expect("shutdown within its grace");
    let spans = collector.received.lock().unwrap().spans.clone();
    assert!(
        has_request(&spans, FIRST.1, "POST /contact/monitor"),
        "sent before shutdown returned: {spans:#?}"
    );
}

/// Sends `n` requests one after the other, each answered 200 within the
/// request timeout, then returns `cmg_otlp_dropped_spans_total` once it
/// counts (polled, bounded).
async fn answered_promptly_and_dropped_spans_counted(h: &Harness, n: usize) -> f64 {
    let token = h.supervisor_token();
    for i in 0..n {
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, h.monitor(Some(&token), BODY))
            .await
            .unwrap_or_else(|_| panic!("request {i} not answered within the request timeout"));
        assert_eq!(answer.status, 200, "request {i}: {:?}", answer.body);
    }
    let deadline = tokio::time::Instant::now() + EXPORTED_WITHIN;
    loop {
        let dropped = dropped_spans(h).await;
        if dropped > 0.0 {
            return dropped;
        }
        assert!(tokio::time::Instant::now() < deadline, "no span counted as dropped");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A tiny queue: eight spans wait for export, the rest are dropped.
fn config_for(endpoint: &str) -> String {
    format!("[server]\nrequest_timeout = \"5s\"\n\n[telemetry]\notlp_endpoint = \"{endpoint}\"\nmax_queue = 8\n")
}

async fn dropped_spans(h: &Harness) -> f64 {
    let (status, text) = h.admin("/metrics").await;
    assert_eq!(status, 200);
    text.lines()
        .find_map(|l| l.strip_prefix("cmg_otlp_dropped_spans_total "))
        .map(|v| v.trim().parse().unwrap())
        .expect("cmg_otlp_dropped_spans_total is served")
}

#[tokio::test]
async fn a_collector_that_is_down_never_delays_an_answer() {
    // A port nobody listens on.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = config_for(&format!("http://{addr}"));
    let h = Harness::with(Options {
        config: &config,
        ..Options::default()
    })
    .await;
    assert_eq!(dropped_spans(&h).await, 0.0);
    // Three spans a request (the request, authenticate, MonitorContact).
    let dropped = answered_promptly_and_dropped_spans_counted(&h, 20).await;
    assert!(dropped <= 60.0, "{dropped}");
}

#[tokio::test]
async fn a_collector_that_never_answers_never_delays_an_answer() {
    // Accepts connections, reads nothing and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hung = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let h = Harness::with(Options {
        config: &config_for(&format!("http://{addr}")),
        ..Options::default()
    })
    .await;
    // One batch of at most eight waits on the collector, eight more wait in
    // the queue: of sixty spans, the rest are dropped as they end.
    let dropped = answered_promptly_and_dropped_spans_counted(&h, 20).await;
    assert!(dropped >= 60.0 - 16.0, "{dropped}");
    hung.abort();
}
