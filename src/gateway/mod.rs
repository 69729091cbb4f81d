//! The gateway: the request path as named phases ([`phases`]), the one map
//! from errors to answers ([`errors`]), and its composition root ([`build`]),
//! which builds every part from the settings and starts serving; a request
//! outlives its caller's hang-up through [`to_completion`].

pub(crate) mod build;
pub(crate) mod errors;
pub(crate) mod phases;
pub(crate) mod to_completion;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::Semaphore;

use crate::auth::token::Authenticator;
use crate::authz::cache::FactCaches;
use crate::authz::Authorizer;
use crate::connect::client::ConnectClient;
use crate::http::admin::Health;
use crate::http::cors::Cors;
use crate::shared::SharedStore;
use crate::telemetry::audit::AuditSink;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::traces::Traces;

/// Everything the request path needs, shared by all connections.
pub(crate) struct Gateway {
    pub(crate) authenticator: Authenticator,
    pub(crate) authorizer: Authorizer,
    pub(crate) connect: ConnectClient,
    /// Facts looked up in Connect, shared by every request.
    pub(crate) caches: FactCaches,
    /// Connect calls one listing may make (`[connect.lookups] max_list_pages`).
    pub(crate) max_list_pages: u32,
    /// The fleet's shared server (`[shared]`), for `/readyz`.
    pub(crate) shared: Option<Arc<SharedStore>>,
    pub(crate) audit: Arc<AuditSink>,
    pub(crate) metrics: Arc<Metrics>,
    /// Spans exported over OTLP (`[telemetry] otlp_endpoint`), when configured.
    pub(crate) traces: Option<Traces>,
    /// Admission: one permit per request being handled.
    pub(crate) in_flight: Arc<Semaphore>,
    pub(crate) max_in_flight: usize,
    /// Set on shutdown: `/readyz` answers 503 while in-flight requests finish.
    pub(crate) draining: AtomicBool,
    pub(crate) cors: Cors,
    pub(crate) max_body_bytes: u64,
    pub(crate) request_timeout: Duration,
    /// A test's hook into the request path.
    #[cfg(feature = "test-util")]
    pub(crate) panic_hook: Option<build::PanicHook>,
}

impl Gateway {
    /// Re-reads the policy file (SIGHUP or a change); a bad one is refused
    /// and the one in force stays.
    pub(crate) fn reload_policy(&self) -> bool {
        match self.authorizer.reload() {
            Ok(grants) => {
                self.metrics.policy_reload("success");
                tracing::info!(file = %self.authorizer.policy_file().display(), grants, "policy reloaded");
                true
            }
            Err(problems) => {
                self.metrics.policy_reload("error");
                tracing::error!(problems = %problems, "new policy refused; the previous policy stays in force");
                false
            }
        }
    }
}

impl Gateway {
    /// What SIGHUP does to the request path: the policy re-read, the facts
    /// looked up in Connect forgotten, the audit file reopened (rotation).
    pub(crate) fn on_sighup(&self) {
        self.reload_policy();
        self.caches.clear();
        if let Err(e) = self.audit.reopen() {
            tracing::error!(error = %e, "the audit file could not be reopened; still writing to the old one");
        }
    }
}

impl Health for Gateway {
    /// Ready when every issuer has keys, AWS credentials are resolved (ours
    /// and every instance's role), and the gateway is not draining.
    fn readiness(&self) -> (bool, Value) {
        let mut checks = Map::new();
        let mut ready = true;
        for issuer in self.authenticator.issuers() {
            let ok = issuer.has_keys();
            ready &= ok;
            checks.insert(
                format!("jwks:{}", issuer.issuer.issuer),
                Value::from(if ok { "ok" } else { "no keys" }),
            );
        }
        if self.draining.load(Ordering::SeqCst) {
            ready = false;
            checks.insert("draining".into(), Value::from("shutting down"));
        }
        let signers = self.connect.signers();
        let creds = signers.own_credentials().is_ready();
        ready &= creds;
        checks.insert(
            "aws_credentials".into(),
            Value::from(if creds { "ok" } else { "not resolved" }),
        );
        for (arn, ok) in signers.roles_ready() {
            ready &= ok;
            checks.insert(
                format!("role:{arn}"),
                Value::from(if ok { "ok" } else { "not assumed" }),
            );
        }
        // Degraded still serves (on this replica's own cache and budgets).
        if let Some(shared) = &self.shared {
            let state = if shared.in_use() { "ok" } else { "degraded" };
            checks.insert("shared".into(), Value::from(state));
        }
        (ready, Value::Object(checks))
    }

    fn metrics_text(&self) -> String {
        self.metrics.render()
    }
}
