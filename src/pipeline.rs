//! The request path, stage by stage: admit → route → authenticate → read and
//! validate the body → authorize → sign and forward → answer and audit.
//! Each stage lives in its own module; this one only puts them in order.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::json;
use tokio::sync::Semaphore;

use crate::audit::{AuditRecord, AuditSink};
use crate::authentication::{bearer_token, AuthFailure, Authenticator, Identity};
use crate::cors::Cors;
use crate::endpoint::{RouteError, Router};
use crate::errors::{Answer, GatewayError, OK_CODE};
use crate::metrics::Metrics;
use crate::monitor_request::MonitorRequest;
use crate::policy::{Decision, DenyReason, Policy};
use crate::upstream::{ConnectSuccess, Upstream};

/// The path of the one API operation.
pub const MONITOR_PATH: &str = "/contact/monitor";
const REQUEST_ID: &str = "x-request-id";
const AWS_REQUEST_ID: &str = "x-amzn-requestid";

/// The body type of every response.
pub type Body = Full<Bytes>;

/// Everything the request path needs, shared by all connections.
pub struct Gateway {
    pub authenticator: Authenticator,
    pub policy: RwLock<Arc<Policy>>,
    /// Where the policy is re-read from on SIGHUP or change.
    pub policy_file: std::path::PathBuf,
    /// Set on shutdown: `/readyz` answers 503 while in-flight requests finish.
    pub draining: std::sync::atomic::AtomicBool,
    pub user_id_claim: String,
    pub router: Router,
    pub upstream: Upstream,
    pub audit: Arc<AuditSink>,
    pub metrics: Arc<Metrics>,
    pub in_flight: Arc<Semaphore>,
    pub max_in_flight: usize,
    pub cors: Cors,
    pub max_body_bytes: u64,
    pub request_timeout: Duration,
}

/// What a successful request produced.
struct Monitored {
    success: ConnectSuccess,
    client_token: String,
}

/// A caller-supplied request id is kept when it is short and plain; anything
/// else is replaced, so logs and headers never carry hostile bytes.
fn request_id(req: &Request<Incoming>) -> String {
    req.headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

fn is_json(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

impl Gateway {
    /// Re-reads the policy file. A policy that does not load is refused and
    /// the one in force stays: a bad edit never opens or closes the gate.
    pub fn reload_policy(&self) -> bool {
        match Policy::load(&self.policy_file) {
            Ok(policy) => {
                let grants = policy.grants.len();
                *self.policy.write().expect("policy lock") = Arc::new(policy);
                self.metrics.policy_reload("success");
                tracing::info!(file = %self.policy_file.display(), grants, "policy reloaded");
                true
            }
            Err(problems) => {
                self.metrics.policy_reload("error");
                tracing::error!(problems = %problems, "new policy refused; the previous policy stays in force");
                false
            }
        }
    }

    /// Answers one API request. Never fails: every error becomes an envelope.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Result<Response<Body>, std::convert::Infallible> {
        // Each request runs on its own task: if the caller hangs up mid-call, the
        // call to Connect still completes, is audited, and leaves the gauges right.
        match tokio::spawn(self.answer(req)).await {
            Ok(response) => Ok(response),
            Err(e) => {
                tracing::error!(error = %e, "request task failed");
                let request_id = uuid::Uuid::new_v4().to_string();
                Ok(error_response(
                    &GatewayError::Internal(e.to_string()).answer(),
                    &request_id,
                    None,
                ))
            }
        }
    }

    async fn answer(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        // A browser's preflight carries no token and is not an API request.
        if let Some(preflight) = self.cors.preflight(req.method(), req.headers()) {
            return preflight;
        }
        let cors_origin = self.cors.allowed_origin(req.headers());
        let started = Instant::now();
        let request_id = request_id(&req);
        let mut audit = AuditRecord {
            request_id: request_id.clone(),
            decision: "deny",
            ..AuditRecord::default()
        };
        self.metrics.in_flight().inc();
        // Admit: shed load beyond max_in_flight at once, rather than queue. The
        // permit is held until the audit line is written (shutdown waits for it).
        let admitted = self.in_flight.clone().try_acquire_owned().ok();
        let result = match admitted {
            Some(_) => self.process(req, started, &mut audit).await,
            None => {
                self.metrics.load_shed();
                Err(GatewayError::Unavailable(
                    "the gateway is at capacity; retry shortly".into(),
                ))
            }
        };
        let mut response = match result {
            Ok(done) => self.success(done, &request_id, &mut audit),
            Err(error) => self.failure(error, &request_id, &mut audit),
        };
        self.cors.decorate(cors_origin, &mut response);
        let elapsed = started.elapsed();
        audit.ts = now_rfc3339();
        audit.duration_ms = (elapsed.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0;
        // Written before the answer leaves: a caller never sees a result the audit lacks.
        self.audit.write(&audit);
        self.metrics.request_done(audit.code, elapsed);
        self.metrics.in_flight().dec();
        drop(admitted);
        response
    }

    async fn process(
        &self,
        req: Request<Incoming>,
        started: Instant,
        audit: &mut AuditRecord,
    ) -> Result<Monitored, GatewayError> {
        // Route: one path, one method.
        if req.uri().path() != MONITOR_PATH {
            return Err(GatewayError::NotFound);
        }
        if req.method() != Method::POST {
            return Err(GatewayError::MethodNotAllowed);
        }
        // HTTP/1.1 requires exactly one Host; two give proxies room to disagree.
        if req.headers().get_all(http::header::HOST).iter().count() != 1 {
            return Err(GatewayError::Invalid(crate::monitor_request::InvalidRequest(
                "exactly one Host header is required".into(),
            )));
        }
        let deadline = started + self.request_timeout;

        // Authenticate before reading the body: no `100 Continue` for strangers.
        let identity = self.authenticate(&req).await?;
        audit.issuer = Some(identity.issuer.clone());
        audit.subject = Some(identity.subject.clone());

        // Read and validate the body.
        if !is_json(&req) {
            return Err(GatewayError::UnsupportedMediaType);
        }
        let body = self.read_body(req, deadline).await?;
        let request = MonitorRequest::parse(&body)?;
        audit.instance_id = Some(request.instance_id.clone());
        audit.contact_id = Some(request.contact_id.clone());
        audit.user_id = Some(request.user_id.clone());
        audit.capabilities = Some(request.capabilities.iter().map(|c| c.as_str()).collect());

        // Authorize: the instance must be routable (the allow-list), then the policy.
        let route = self.router.route(&request.instance_id).map_err(|e| match e {
            RouteError::UnknownInstance => GatewayError::Forbidden(DenyReason::InstanceNotAllowed),
            RouteError::NoRegion => GatewayError::Unavailable("no region is configured for this instance".into()),
        })?;
        let policy = self.policy.read().expect("policy lock").clone();
        match policy.evaluate(&identity.claims, &request, &self.user_id_claim) {
            Decision::Deny(reason) => return Err(GatewayError::Forbidden(reason)),
            Decision::Allow { grant } => {
                audit.decision = "allow";
                audit.reason = Some(grant);
            }
        }

        // Sign and forward: the body rebuilt from what was validated.
        let client_token = request
            .client_token
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        audit.client_token = Some(client_token.clone());
        let connect_body = Bytes::from(request.to_connect_body(&client_token));
        let outcome = self.upstream.monitor_contact(&route, connect_body, deadline).await;
        match outcome {
            Ok(success) => Ok(Monitored { success, client_token }),
            Err(failure) => {
                audit.upstream_status = failure.upstream_status;
                audit.aws_request_id = failure.aws_request_id.clone();
                audit.attempts = failure.attempts;
                Err(failure.into())
            }
        }
    }

    async fn authenticate(&self, req: &Request<Incoming>) -> Result<Identity, GatewayError> {
        let token = bearer_token(req.headers())?;
        match self.authenticator.authenticate(token).await {
            Ok(identity) => Ok(identity),
            Err(AuthFailure::Rejected(e)) => Err(e.into()),
            Err(AuthFailure::Unavailable(e)) => Err(e.into()),
        }
    }

    /// Reads the body, refusing by `Content-Length` before reading a byte and
    /// by count while reading (chunked bodies declare nothing).
    async fn read_body(&self, req: Request<Incoming>, deadline: Instant) -> Result<Bytes, GatewayError> {
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_body_bytes) {
            return Err(GatewayError::PayloadTooLarge);
        }
        let limited = Limited::new(req.into_body(), self.max_body_bytes as usize);
        match tokio::time::timeout_at(deadline.into(), limited.collect()).await {
            Err(_) => Err(GatewayError::RequestTimeout),
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(GatewayError::PayloadTooLarge),
            Ok(Err(_)) => Err(GatewayError::Invalid(crate::monitor_request::InvalidRequest(
                "the request body could not be read".into(),
            ))),
        }
    }

    fn success(&self, done: Monitored, request_id: &str, audit: &mut AuditRecord) -> Response<Body> {
        audit.status = 200;
        audit.code = OK_CODE;
        audit.upstream_status = Some(done.success.status);
        audit.aws_request_id = done.success.aws_request_id.clone();
        audit.attempts = done.success.attempts;
        let body = json!({
            "success": true,
            "data": {
                "id": done.success.contact_id,
                "contact_arn": done.success.contact_arn,
                "client_token": done.client_token,
                "created_at": now_rfc3339(),
            }
        });
        let mut response = json_response(StatusCode::OK, &body, request_id);
        if let Some(id) = done
            .success
            .aws_request_id
            .as_deref()
            .and_then(|v| HeaderValue::from_str(v).ok())
        {
            response.headers_mut().insert(AWS_REQUEST_ID, id);
        }
        response
    }

    fn failure(&self, error: GatewayError, request_id: &str, audit: &mut AuditRecord) -> Response<Body> {
        let answer = error.answer();
        audit.status = answer.status.as_u16();
        audit.code = answer.code;
        if audit.decision == "deny" {
            audit.reason = Some(match &error {
                GatewayError::Forbidden(reason) => reason.as_str().to_string(),
                _ => answer.code.to_ascii_lowercase(),
            });
        }
        if answer.status.is_server_error() {
            tracing::warn!(request_id, code = answer.code, error = %error, "request failed");
        } else {
            tracing::info!(request_id, code = answer.code, error = %error, "request refused");
        }
        error_response(&answer, request_id, audit.aws_request_id.as_deref())
    }
}

/// The error envelope for an answer, with the headers its status calls for.
fn error_response(answer: &Answer, request_id: &str, aws_request_id: Option<&str>) -> Response<Body> {
    let body = json!({
        "success": false,
        "error": {"code": answer.code, "message": answer.message, "request_id": request_id}
    });
    let mut response = json_response(answer.status, &body, request_id);
    let headers = response.headers_mut();
    match answer.status {
        StatusCode::UNAUTHORIZED => {
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        StatusCode::METHOD_NOT_ALLOWED => {
            headers.insert(ALLOW, HeaderValue::from_static("POST"));
        }
        _ => {}
    }
    if let Some(after) = answer.retry_after {
        headers.insert(RETRY_AFTER, HeaderValue::from(after.as_secs_f64().ceil() as u64));
    }
    if let Some(id) = aws_request_id.and_then(|v| HeaderValue::from_str(v).ok()) {
        headers.insert(AWS_REQUEST_ID, id);
    }
    response
}

/// A JSON response with the request id; the one way answers are built.
pub fn json_response(status: StatusCode, body: &serde_json::Value, request_id: &str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert(REQUEST_ID, id);
    }
    response
}
