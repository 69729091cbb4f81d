//! The request path as named phases: admit → route → authenticate → read the
//! request → decide → call Connect (not on a dry run) → answer and audit. Each phase records what
//! it found in the [`Exchange`]; the audit line is built once, at the end,
//! from those facts.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures_util::FutureExt;
use http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::json;
use tracing::Instrument;

use super::errors::{GatewayError, Side, OK_CODE};
use super::to_completion::{Panicked, ToCompletion};
use super::Gateway;
use crate::auth::token::{bearer_token, AuthFailure, Identity};
use crate::authz::facts::Recorded;
use crate::authz::listing::{check_instance_id, Listing};
use crate::authz::live_facts::LiveFacts;
use crate::authz::policy::find_claim;
use crate::authz::Permit;
use crate::connect::client::{Spent, AWS_REQUEST_ID};
use crate::connect::credentials::SourceIdentity;
use crate::connect::monitor_contact::{self, Monitored};
use crate::connect::monitor_request::{InvalidRequest, MonitorRequest};
use crate::connect::operation::Operation;
use crate::http::{json_response, Body, REQUEST_ID};
use crate::telemetry::audit::{AuditRecord, Verdict};
use crate::telemetry::traces::{InSpan as _, Span};
use crate::telemetry::{error_chain, trace_context};

/// The dry run's path: every phase but the call to Connect (docs/api.md, "The dry run").
pub(crate) const CHECK_PATH: &str = "/contact/monitor/check";

/// The header in which a caller says why it monitors.
const MONITOR_REASON: &str = "monitor-reason";

/// The listing's path (docs/api.md, "The listing").
pub(crate) const LISTING_PATH: &str = "/contacts/monitorable";

/// What a request that got through produced.
enum Done {
    /// Connect put the panel on the call.
    Monitored(Monitored),
    /// A dry run: authorization allowed it; Connect was not called.
    Checked,
    /// A listing of the contacts the caller may monitor.
    Listed(Listing),
}

/// What the phases of one request found, in the order they found it.
#[derive(Default)]
struct Exchange {
    /// `/contact/monitor/check` or the listing: decide, never call MonitorContact.
    dry_run: bool,
    /// The listing of monitorable contacts.
    listing: bool,
    /// The listing's instance, from the query.
    listed_instance: Option<String>,
    identity: Option<Arc<Identity>>,
    request: Option<MonitorRequest>,
    permit: Option<Permit>,
    client_token: Option<String>,
    /// The contact's agent, when a grant looked at the contact.
    agent_id: Option<String>,
    /// What this request spent on Connect: lookups and budget waits.
    spent: Spent,
    /// Why the caller monitors, from a valid `Monitor-Reason` header.
    monitor_reason: Option<String>,
    /// The supervisor whose session signs MonitorContact, for an instance
    /// with `source_identity_claim`.
    source_identity: Option<SourceIdentity>,
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
        .unwrap_or_else(crate::ids::random_uuid)
}

/// The API route `path` is, if any (a span is named after it).
fn route(path: &str) -> Option<&'static str> {
    [monitor_contact::PATH, CHECK_PATH, LISTING_PATH]
        .into_iter()
        .find(|route| *route == path)
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
    /// Answers one API request. Never fails: every error becomes an envelope.
    pub(crate) async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, std::convert::Infallible> {
        // If the caller hangs up mid-call, the request moves to a task of its
        // own: the call to Connect still completes, is audited, and leaves the
        // gauges right. Until then it runs in place, with no task hand-off.
        match ToCompletion::new(self.answer(req)).await {
            Ok(response) => Ok(response),
            // A panic outside the phases (they catch their own, and answer and
            // audit it with the request's id): still an answer, never a lost
            // connection.
            Err(panicked) => {
                tracing::error!(error = %panicked, "request failed");
                let request_id = crate::ids::random_uuid();
                Ok(GatewayError::Internal(Box::new(panicked)).response(&request_id))
            }
        }
    }

    async fn answer(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        // A browser's preflight carries no token and is not an API request.
        if let Some(preflight) = self.cors.preflight(req.method(), req.headers()) {
            return preflight;
        }
        let request_id = request_id(&req);
        let caller = trace_context::traceparent(req.headers());
        let traced = self
            .traces
            .as_ref()
            .map(|t| t.request(req.method(), route(req.uri().path()), &request_id, caller.as_ref()));
        let trace_id = caller.map(|c| c.trace_id);
        // With debug logging, every log line of this request names it and the
        // caller's trace; the lines logged by default name both themselves
        // (an info span would cost every request its formatting).
        let span = tracing::debug_span!("request", request_id = %request_id, trace_id = trace_id.as_deref());
        self.answer_request(req, request_id, trace_id, traced)
            .instrument(span)
            .await
    }

    async fn answer_request(
        self: Arc<Self>,
        req: Request<Incoming>,
        request_id: String,
        trace_id: Option<String>,
        traced: Option<Span>,
    ) -> Response<Body> {
        let cors_origin = self.cors.allowed_origin(req.headers());
        let started = Instant::now();
        let mut exchange = Exchange::default();
        self.metrics.in_flight().inc();
        // Admit: shed load beyond max_in_flight at once, rather than queue. The
        // permit is held until the audit line is written (shutdown waits for it).
        let admitted = self.in_flight.clone().try_acquire_owned().ok();
        let outcome = match admitted {
            // A panic in a phase is this request's failure: answered 500 with
            // its id, audited, and the gauges and permit put back below.
            Some(_) => match AssertUnwindSafe(self.process(req, started, &mut exchange).in_span(traced.as_ref()))
                .catch_unwind()
                .await
            {
                Ok(outcome) => outcome,
                Err(payload) => Err(GatewayError::Internal(Box::new(Panicked::from_payload(
                    payload.as_ref(),
                )))),
            },
            None => {
                self.metrics.load_shed();
                Err(GatewayError::AtCapacity)
            }
        };
        let (mut response, audit) = match &outcome {
            Ok(Done::Monitored(done)) => (success_response(done, &request_id), self.audit_success(&exchange, done)),
            Ok(Done::Checked) => (checked_response(&exchange, &request_id), self.audit_checked(&exchange)),
            Ok(Done::Listed(listing)) => (
                listed_response(&exchange, listing, &request_id),
                self.audit_listed(&exchange, listing),
            ),
            Err(error) => {
                let answer = error.answer();
                // A refusal is the audit's to record; only a failure is the
                // operator's news (a flood of bad tokens must not flood the log).
                match error.side() {
                    Side::Gateway if answer.status.is_server_error() && matches!(error, GatewayError::Internal(_)) => {
                        tracing::error!(request_id, trace_id, code = answer.code, error = %error_chain(error), "request failed")
                    }
                    _ if answer.status.is_server_error() => {
                        tracing::warn!(request_id, trace_id, code = answer.code, error = %error_chain(error), "request failed")
                    }
                    _ => {
                        tracing::debug!(request_id, trace_id, code = answer.code, error = %error_chain(error), "request refused")
                    }
                }
                (error.response(&request_id), self.audit_failure(&exchange, error))
            }
        };
        self.cors.decorate(cors_origin, &mut response);
        let elapsed = started.elapsed();
        let record = AuditRecord {
            ts: now_rfc3339(),
            request_id,
            duration_ms: millis(elapsed),
            trace_id,
            ..audit
        };
        // Written before the answer leaves: a caller never sees a result the audit lacks.
        self.audit.write(&record);
        if let Some(span) = traced {
            let decision = match record.decision {
                Verdict::Allow => "allow",
                Verdict::Deny => "deny",
            };
            let grant = exchange.permit.as_ref().map(|p| p.grant.as_str());
            span.answered(record.status, decision, record.reason.as_deref(), grant);
        }
        self.metrics.request_done(record.code, elapsed);
        self.metrics.in_flight().dec();
        drop(admitted);
        response
    }

    async fn process(
        &self,
        req: Request<Incoming>,
        started: Instant,
        exchange: &mut Exchange,
    ) -> Result<Done, GatewayError> {
        // Route: the call, its dry run or the listing; one method, one Host.
        let method = match req.uri().path() {
            monitor_contact::PATH => Method::POST,
            CHECK_PATH => {
                exchange.dry_run = true;
                Method::POST
            }
            LISTING_PATH => {
                (exchange.dry_run, exchange.listing) = (true, true);
                Method::GET
            }
            _ => return Err(GatewayError::NotFound),
        };
        if req.method() != method {
            let allowed = if method == Method::GET { "GET" } else { "POST" };
            return Err(GatewayError::MethodNotAllowed(allowed));
        }
        // HTTP/1.1 requires exactly one Host; two give proxies room to disagree.
        if req.headers().get_all(http::header::HOST).iter().count() != 1 {
            return Err(GatewayError::NotOneHost);
        }
        if exchange.listing {
            return Box::pin(self.list(req, started, exchange)).await;
        }
        let deadline = started + self.request_timeout;

        // Authenticate before reading the body: no `100 Continue` for strangers.
        let identity = exchange.identity.insert(self.authenticate(&req).await?);
        exchange.monitor_reason = monitor_reason(req.headers());

        // Read the request: a JSON body that is a valid MonitorContact request.
        if !is_json(&req) {
            return Err(GatewayError::UnsupportedMediaType);
        }
        let body = self.read_body(req, deadline).await?;
        let request = exchange.request.insert(MonitorRequest::parse(&body)?);
        #[cfg(feature = "test-util")]
        if let Some(hook) = &self.panic_hook {
            hook(request);
        }

        // Name the supervisor: an instance with `source_identity_claim` has
        // MonitorContact signed in their session, named by their claim as it
        // is (docs/security.md, "CloudTrail names the supervisor"). A claim
        // that cannot be is refused here, before any lookup, dry run or not.
        exchange.source_identity = self
            .connect
            .signers()
            .source_identity(&request.instance_id, |claim| find_claim(&identity.claims, claim))?;

        // Decide: the one authorization seam, asking Connect what a grant needs.
        let facts = Recorded::new(LiveFacts::new(&self.connect, &self.caches, deadline, &exchange.spent));
        // A dry run decides as if a reason were given, and says when one is needed.
        let reason_given = exchange.dry_run || exchange.monitor_reason.is_some();
        let decided = self.authorizer.decide(identity, request, reason_given, &facts).await;
        exchange.agent_id = facts.agent_id().flatten();
        let permit = exchange.permit.insert(decided?);
        if exchange.dry_run {
            return Ok(Done::Checked);
        }

        // Call Connect: the body rebuilt from what was validated.
        let client_token = exchange.client_token.insert(monitor_contact::client_token(request));
        let traced = Span::connect(Operation::MonitorContact.name());
        // Boxed: the call's future is large, and kept inline it would make every
        // request's task (moved at spawn) large too.
        let monitored = Box::pin(
            monitor_contact::monitor_contact(
                &self.connect,
                &permit.route,
                request,
                client_token,
                exchange.source_identity.as_ref(),
                deadline,
                &exchange.spent,
            )
            .in_span(traced.as_ref()),
        )
        .await?;
        Ok(Done::Monitored(monitored))
    }

    /// The listing, routed: authenticate, read the instance from the query, and let
    /// the authorizer list what the caller may monitor, asking Connect
    /// within the request's deadline and the listing's allowance of calls.
    async fn list(
        &self,
        req: Request<Incoming>,
        started: Instant,
        exchange: &mut Exchange,
    ) -> Result<Done, GatewayError> {
        let deadline = started + self.request_timeout;
        let identity = exchange.identity.insert(self.authenticate(&req).await?);
        let instance_id = exchange.listed_instance.insert(listed_instance(req.uri().query())?);
        let facts = LiveFacts::new(&self.connect, &self.caches, deadline, &exchange.spent);
        let listing = self
            .authorizer
            .list(identity, instance_id, &facts, self.max_list_pages)
            .await?;
        Ok(Done::Listed(listing))
    }

    async fn authenticate(&self, req: &Request<Incoming>) -> Result<Arc<Identity>, GatewayError> {
        let _traced = Span::child("authenticate");
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
            Ok(Err(e)) => Err(GatewayError::BodyUnreadable(e)),
        }
    }

    /// The audit facts every record shares: who asked, for what, and the verdict.
    fn audit_facts(&self, exchange: &Exchange) -> AuditRecord {
        let request = exchange.request.as_ref();
        AuditRecord {
            decision: if exchange.permit.is_some() {
                Verdict::Allow
            } else {
                Verdict::Deny
            },
            reason: exchange.permit.as_ref().map(|p| p.grant.clone()),
            issuer: exchange.identity.as_ref().map(|i| i.issuer.clone()),
            subject: exchange.identity.as_ref().map(|i| i.subject.clone()),
            source_identity: exchange.source_identity.as_ref().map(|s| s.value().to_owned()),
            instance_id: request
                .map(|r| r.instance_id.clone())
                .or_else(|| exchange.listed_instance.clone()),
            contact_id: request.map(|r| r.contact_id.clone()),
            user_id: request.map(|r| r.user_id.clone()),
            capabilities: request.map(|r| r.capabilities.iter().map(|c| c.as_str()).collect()),
            client_token: exchange.client_token.clone(),
            agent_id: exchange.agent_id.clone(),
            lookups: exchange.spent.lookups(),
            budget_wait_ms: millis(exchange.spent.budget_wait()),
            dry_run: exchange.dry_run,
            listing: exchange.listing,
            monitor_reason: exchange.monitor_reason.clone(),
            ..AuditRecord::default()
        }
    }

    fn audit_success(&self, exchange: &Exchange, done: &Monitored) -> AuditRecord {
        AuditRecord {
            status: 200,
            code: OK_CODE,
            upstream_status: Some(done.status),
            aws_request_id: done.aws_request_id.clone(),
            attempts: done.attempts,
            ..self.audit_facts(exchange)
        }
    }

    fn audit_listed(&self, exchange: &Exchange, listing: &Listing) -> AuditRecord {
        AuditRecord {
            decision: Verdict::Allow,
            status: 200,
            code: OK_CODE,
            user_id: listing.caller.clone(),
            contacts: Some(listing.contacts.len()),
            ..self.audit_facts(exchange)
        }
    }

    fn audit_checked(&self, exchange: &Exchange) -> AuditRecord {
        AuditRecord {
            status: 200,
            code: OK_CODE,
            ..self.audit_facts(exchange)
        }
    }

    fn audit_failure(&self, exchange: &Exchange, error: &GatewayError) -> AuditRecord {
        let answer = error.answer();
        let facts = self.audit_facts(exchange);
        // A deny names why; an allow that failed later keeps its grant,
        // unless the call was never made for want of budget.
        let reason = match facts.decision {
            Verdict::Allow if !error.is_budget_exhausted() => facts.reason.clone(),
            _ => Some(error.audit_reason()),
        };
        let upstream = match error {
            GatewayError::Upstream(f) => Some(f),
            _ => None,
        };
        AuditRecord {
            status: answer.status.as_u16(),
            code: answer.code,
            reason,
            upstream_status: upstream.and_then(|f| f.upstream_status),
            aws_request_id: upstream.and_then(|f| f.aws_request_id.clone()),
            attempts: upstream.map_or(0, |f| f.attempts),
            ..facts
        }
    }
}

/// The success envelope (docs/api.md), with Connect's request id.
fn success_response(done: &Monitored, request_id: &str) -> Response<Body> {
    // Serialized straight from borrowed fields (no JSON tree built per request).
    #[derive(serde::Serialize)]
    struct Data<'a> {
        id: &'a str,
        contact_arn: &'a str,
        client_token: &'a str,
        created_at: String,
    }
    #[derive(serde::Serialize)]
    struct Envelope<'a> {
        success: bool,
        data: Data<'a>,
    }
    let body = Envelope {
        success: true,
        data: Data {
            id: &done.contact_id,
            contact_arn: &done.contact_arn,
            client_token: &done.client_token,
            created_at: now_rfc3339(),
        },
    };
    let mut response = json_response(StatusCode::OK, &body, request_id);
    if let Some(id) = done
        .aws_request_id
        .as_deref()
        .and_then(|v| HeaderValue::from_str(v).ok())
    {
        response.headers_mut().insert(AWS_REQUEST_ID, id);
    }
    response
}

/// The dry run's answer: what the real call would be allowed to ask for.
fn checked_response(exchange: &Exchange, request_id: &str) -> Response<Body> {
    let capabilities: Vec<&str> = exchange
        .request
        .iter()
        .flat_map(|r| r.capabilities.iter().map(|c| c.as_str()))
        .collect();
    let body = json!({
        "success": true,
        "data": {
            "decision": "allow",
            "grant": exchange.permit.as_ref().map(|p| p.grant.as_str()),
            "capabilities": capabilities,
            "reason_required": exchange.permit.as_ref().is_some_and(|p| p.reason_required),
        }
    });
    json_response(StatusCode::OK, &body, request_id)
}

/// The longest `Monitor-Reason`, in characters.
const MAX_REASON_CHARS: usize = 200;

/// The text of a valid `Monitor-Reason` header (docs/api.md, "Saying why"):
/// exactly one, 1 to 200 characters of UTF-8, none a control character.
/// Anything else is no reason at all: a grant that needs one refuses.
fn monitor_reason(headers: &http::HeaderMap) -> Option<String> {
    let mut values = headers.get_all(MONITOR_REASON).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return None;
    };
    let text = std::str::from_utf8(value.as_bytes()).ok()?;
    let chars = text.chars().count();
    let valid = (1..=MAX_REASON_CHARS).contains(&chars) && !text.chars().any(char::is_control);
    valid.then(|| text.to_owned())
}

/// The instance a listing's query names: `instance_id`, exactly once, and
/// nothing else (docs/api.md, "The listing"). Messages name the parameter
/// and the rule, never what was sent.
fn listed_instance(query: Option<&str>) -> Result<String, InvalidRequest> {
    let mut instance = None;
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if name != "instance_id" {
            return Err(InvalidRequest(
                "the only query parameter this route takes is instance_id".into(),
            ));
        }
        if instance.replace(value).is_some() {
            return Err(InvalidRequest("query parameter instance_id must be given once".into()));
        }
    }
    let instance = instance.ok_or_else(|| InvalidRequest("query parameter instance_id is required".into()))?;
    check_instance_id(&instance).map_err(|rule| InvalidRequest(format!("query parameter instance_id {rule}")))?;
    Ok(instance.into_owned())
}

/// The listing's answer (docs/api.md, "The listing").
fn listed_response(exchange: &Exchange, listing: &Listing, request_id: &str) -> Response<Body> {
    let instance_id = exchange.listed_instance.as_deref().unwrap_or_default();
    let body = json!({ "success": true, "data": listing.data(instance_id) });
    json_response(StatusCode::OK, &body, request_id)
}

/// A duration in the audit's unit: milliseconds, to the microsecond.
fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(bytes: &[&[u8]]) -> Option<String> {
        let mut headers = http::HeaderMap::new();
        for value in bytes {
            headers.append(
                MONITOR_REASON,
                HeaderValue::from_maybe_shared(Bytes::copy_from_slice(value)).unwrap(),
            );
        }
        monitor_reason(&headers)
    }

    #[test]
    fn a_reason_is_one_header_of_1_to_200_characters_without_control_characters() {
        assert_eq!(reason(&[b"Customer asked"]).as_deref(), Some("Customer asked"));
        assert_eq!(
            reason(&["é".repeat(200).as_bytes()]).map(|r| r.chars().count()),
            Some(200)
        );
        for (case, value) in [
            ("empty", &b""[..]),
            ("a tab", b"a\tb"),
            ("invalid UTF-8", b"a\xffb"),
            ("a C1 control", "a\u{9b}b".as_bytes()),
        ] {
            assert_eq!(reason(&[value]), None, "{case}");
        }
        assert_eq!(reason(&["é".repeat(201).as_bytes()]), None, "201 characters");
        assert_eq!(reason(&[b"one", b"two"]), None, "two headers");
        assert_eq!(reason(&[]), None);
    }

    #[test]
    fn del_never_reaches_a_reason() {
        // http refuses DEL in a header value, so hyper never hands one over;
        // the rule would refuse it too.
        assert!(HeaderValue::from_bytes(b"a\x7fb").is_err());
        assert!('\u{7f}'.is_control());
    }
}
