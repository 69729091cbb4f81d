//! Prometheus metrics (docs/operations.md, "Metrics"). Labels are bounded: codes, outcomes and
//! configured issuers only — never a caller, contact or user id.

use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// Labels of a configured issuer (its URL is not `'static`).
type IssuerLabels = Vec<(&'static str, String)>;
/// Labels whose values are the gateway's own words (codes, operations,
/// outcomes): counted on the request path without an allocation.
type Fixed<const N: usize> = [(&'static str, &'static str); N];

/// Every metric the gateway keeps.
pub struct Metrics {
    registry: Registry,
    requests: Family<Fixed<1>, Counter>,
    request_duration: Histogram,
    upstream_attempts: Family<Fixed<2>, Counter>,
    upstream_duration: Histogram,
    jwks_refresh: Family<IssuerLabels, Counter>,
    in_flight: Gauge,
    policy_reloads: Family<Fixed<1>, Counter>,
    retries: Counter,
    load_shed: Counter,
    jwks_keys: Family<IssuerLabels, Gauge>,
    connect_lookups: Family<Fixed<2>, Counter>,
    budget_wait: Family<Fixed<1>, Histogram, fn() -> Histogram>,
    budget_exhausted: Family<Fixed<1>, Counter>,
    shared_errors: Counter,
    shared_degraded: Gauge,
    otlp_dropped_spans: Counter,
}

fn budget_wait_histogram() -> Histogram {
    // 1 ms to ~16 s: a token within the burst costs nothing; beyond it a call
    // waits up to the request's deadline.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::default();
        // 100 µs to ~52 s: resolves the gateway's own sub-millisecond work and
        // multi-second upstream calls in one histogram.
        let request_duration = Histogram::new(exponential_buckets(0.0001, 2.0, 20));
        let upstream_attempts = Family::default();
        let upstream_duration = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let jwks_refresh = Family::default();
        let in_flight = Gauge::default();
        let policy_reloads = Family::default();
        let retries = Counter::default();
        let load_shed = Counter::default();
        let jwks_keys = Family::default();
        let connect_lookups = Family::default();
        let budget_wait: Family<Fixed<1>, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(budget_wait_histogram);
        let budget_exhausted = Family::default();
        let shared_errors = Counter::default();
        let shared_degraded = Gauge::default();
        let otlp_dropped_spans = Counter::default();
        registry.register(
            "cmg_connect_budget_wait_seconds",
            "Time calls to Connect waited for a token of their operation's budget",
            budget_wait.clone(),
        );
        registry.register(
            "cmg_connect_budget_exhausted",
            "Calls to Connect not made: no token of the operation's budget within the request's deadline",
            budget_exhausted.clone(),
        );
        registry.register(
            "cmg_shared_errors",
            "Commands to the shared server that failed or timed out",
            shared_errors.clone(),
        );
        registry.register(
            "cmg_shared_degraded",
            "1 while this replica cannot use the shared server and runs on its own cache and fallback budgets",
            shared_degraded.clone(),
        );
        registry.register(
            "cmg_otlp_dropped_spans",
            "Spans never delivered to the OTLP collector: the export queue was full, or the collector did not take their batch",
            otlp_dropped_spans.clone(),
        );
        registry.register(
            "cmg_requests",
            "API requests answered, by envelope code",
            requests.clone(),
        );
        registry.register(
            "cmg_request_duration_seconds",
            "Time from request to answer",
            request_duration.clone(),
        );
        registry.register(
            "cmg_upstream_attempts",
            "Attempts to call Connect, by operation and outcome",
            upstream_attempts.clone(),
        );
        registry.register(
            "cmg_upstream_duration_seconds",
            "Duration of each attempt to call Connect",
            upstream_duration.clone(),
        );
        registry.register(
            "cmg_jwks_refresh",
            "JWKS fetches, by issuer and result",
            jwks_refresh.clone(),
        );
        registry.register("cmg_in_flight", "API requests being handled now", in_flight.clone());
        registry.register(
            "cmg_policy_reloads",
            "Policy reloads, by result",
            policy_reloads.clone(),
        );
        registry.register("cmg_upstream_retries", "Retries of the Connect call", retries.clone());
        registry.register(
            "cmg_load_shed",
            "Requests refused because max_in_flight was reached",
            load_shed.clone(),
        );
        registry.register(
            "cmg_jwks_keys",
            "Signing keys held per issuer (the key cache)",
            jwks_keys.clone(),
        );
        registry.register(
            "cmg_connect_lookups",
            "Facts looked up for Connect-aware grants, by operation and outcome",
            connect_lookups.clone(),
        );
        registry.register(
            "cmg_build",
            "Build information",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        Metrics {
            registry,
            requests,
            request_duration,
            upstream_attempts,
            upstream_duration,
            jwks_refresh,
            in_flight,
            policy_reloads,
            retries,
            load_shed,
            jwks_keys,
            connect_lookups,
            budget_wait,
            budget_exhausted,
            shared_errors,
            shared_degraded,
            otlp_dropped_spans,
        }
    }

    /// Spans that will never reach the collector.
    pub fn otlp_spans_dropped(&self, spans: u64) {
        self.otlp_dropped_spans.inc_by(spans);
    }

    /// A call to Connect got its budget's token after `waited`.
    pub fn budget_waited(&self, operation: &'static str, waited: Duration) {
        self.budget_wait
            .get_or_create(&[("operation", operation)])
            .observe(waited.as_secs_f64());
    }

    /// A call to Connect was not made: no token before the deadline.
    pub fn budget_exhausted(&self, operation: &'static str) {
        self.budget_exhausted.get_or_create(&[("operation", operation)]).inc();
    }

    /// A command to the shared server failed or timed out.
    pub fn shared_error(&self) {
        self.shared_errors.inc();
    }

    /// Whether this replica has fallen back from the shared server.
    pub fn shared_degraded(&self, degraded: bool) {
        self.shared_degraded.set(i64::from(degraded));
    }

    pub fn request_done(&self, code: &'static str, elapsed: Duration) {
        self.requests.get_or_create(&[("code", code)]).inc();
        self.request_duration.observe(elapsed.as_secs_f64());
    }

    /// One attempt at a Connect operation, by outcome.
    pub fn upstream_attempt(&self, operation: &'static str, outcome: &'static str) {
        self.upstream_attempts
            .get_or_create(&[("operation", operation), ("outcome", outcome)])
            .inc();
    }

    pub fn upstream_duration(&self, elapsed: Duration) {
        self.upstream_duration.observe(elapsed.as_secs_f64());
    }

    /// `issuer` is a configured issuer URL, so the label set stays bounded.
    pub fn jwks_refresh(&self, issuer: &str, result: &'static str) {
        self.jwks_refresh
            .get_or_create(&vec![("issuer", issuer.to_string()), ("result", result.to_string())])
            .inc();
    }

    pub fn policy_reload(&self, result: &'static str) {
        self.policy_reloads.get_or_create(&[("result", result)]).inc();
    }

    /// How many keys an issuer's cache holds after a successful refresh.
    pub fn jwks_keys(&self, issuer: &str, keys: usize) {
        self.jwks_keys
            .get_or_create(&vec![("issuer", issuer.to_string())])
            .set(keys as i64);
    }

    /// One fact wanted: `cache_hit` (in process), `shared_hit` (on the shared
    /// server), `ok`, `not_found`, `throttled`, `budget_exhausted` or `error`.
    pub fn connect_lookup(&self, operation: &'static str, outcome: &'static str) {
        self.connect_lookups
            .get_or_create(&[("operation", operation), ("outcome", outcome)])
            .inc();
    }

    pub fn retry(&self) {
        self.retries.inc();
    }

    pub fn load_shed(&self) {
        self.load_shed.inc();
    }

    pub fn in_flight(&self) -> &Gauge {
        &self.in_flight
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
