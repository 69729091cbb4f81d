//! The one place every failure becomes an answer: status, envelope code,
//! message and headers (docs/api.md). An error knows its side — the caller's
//! (4xx), Connect's (its answer mapped, 429, 502, 504) or the gateway's own
//! (503, 500) — and the status follows from the side. Every text a caller can
//! read is here; none quotes the caller's input or Connect's own text.

use std::error::Error;
use std::time::Duration;

use http::header::{HeaderValue, ALLOW, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Response, StatusCode};
use serde_json::json;

use crate::auth::token::{AuthError, KeysUnavailable};
use crate::authz::policy::DenyReason;
use crate::authz::Refusal;
use crate::connect::client::{ConnectFailure, FailureKind, AWS_REQUEST_ID};
use crate::connect::credentials::{CredentialsUnavailable, SourceIdentityRefused};
use crate::connect::endpoint::NoRegion;
use crate::connect::error::ConnectErrorKind;
use crate::connect::monitor_request::InvalidRequest;
use crate::connect::operation::Operation;
use crate::http::{json_response, Body};

/// Whose fault a failure is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The caller's request or token: 4xx.
    Caller,
    /// Connect's answer, or no answer: Connect's 4xx mapped, 429, 502, 504.
    Connect,
    /// The gateway's own state or a fault of its own: 503 or 500.
    Gateway,
}

/// Everything that can stop a request, grouped by the side whose fault it is.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GatewayError {
    // The caller's side.
    #[error("no such endpoint")]
    NotFound,
    /// Another method than the one the path takes (named for `Allow`).
    #[error("method not allowed")]
    MethodNotAllowed(&'static str),
    #[error(transparent)]
    Unauthenticated(#[from] AuthError),
    #[error("denied by policy: {0}")]
    Forbidden(DenyReason),
    /// The instance signs MonitorContact as the supervisor, and the token's
    /// claim cannot name them: not a grant's deny, the same 403.
    #[error(transparent)]
    SourceIdentity(#[from] SourceIdentityRefused),
    #[error(transparent)]
    Invalid(#[from] InvalidRequest),
    #[error("not exactly one Host header")]
    NotOneHost,
    #[error("the request body could not be read")]
    BodyUnreadable(#[source] Box<dyn Error + Send + Sync>),
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("Content-Type is not application/json")]
    UnsupportedMediaType,
    #[error("request body not received in time")]
    RequestTimeout,
    // The gateway's side.
    #[error("at capacity (max_in_flight)")]
    AtCapacity,
    #[error(transparent)]
    KeysUnavailable(#[from] KeysUnavailable),
    #[error(transparent)]
    NoRegion(#[from] NoRegion),
    /// A fault of the gateway itself (a panic while handling the request).
    #[error("internal error")]
    Internal(#[source] Box<dyn Error + Send + Sync>),
    // Connect's side (or, for credentials and signing, the gateway's).
    #[error(transparent)]
    Upstream(#[from] ConnectFailure),
    /// A lookup a grant needed failed: the request fails closed.
    #[error("a lookup failed")]
    Lookup(#[source] ConnectFailure),
}

impl From<Refusal> for GatewayError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Denied(reason) => GatewayError::Forbidden(reason),
            Refusal::NoRegion => GatewayError::NoRegion(NoRegion),
            Refusal::LookupFailed(failure) => GatewayError::Lookup(failure),
            refused @ Refusal::ControlCharacterInClaim(_) => GatewayError::Invalid(InvalidRequest(refused.to_string())),
            // Only `explain` decides without a source of facts.
            missing @ Refusal::FactsMissing(_) => GatewayError::Internal(Box::new(missing)),
        }
    }
}

/// How an error is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    pub(crate) retry_after: Option<Duration>,
}

impl Answer {
    fn new((status, code): (StatusCode, &'static str), message: impl Into<String>) -> Self {
        Answer {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
}

/// The envelope code of a success, for metrics and the audit.
pub(crate) const OK_CODE: &str = "OK";

const VALIDATION: (StatusCode, &str) = (StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
const FORBIDDEN: (StatusCode, &str) = (StatusCode::FORBIDDEN, "FORBIDDEN");
const NOT_FOUND: (StatusCode, &str) = (StatusCode::NOT_FOUND, "NOT_FOUND");
const UNAVAILABLE: (StatusCode, &str) = (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE");
const INTERNAL: (StatusCode, &str) = (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR");
const UPSTREAM: (StatusCode, &str) = (StatusCode::BAD_GATEWAY, "UPSTREAM_ERROR");
const UPSTREAM_TIMEOUT: (StatusCode, &str) = (StatusCode::GATEWAY_TIMEOUT, "UPSTREAM_TIMEOUT");
const RATE_LIMITED: (StatusCode, &str) = (StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED");

impl GatewayError {
    /// Whose fault it is.
    pub(crate) fn side(&self) -> Side {
        use GatewayError as E;
        match self {
            E::NotFound
            | E::MethodNotAllowed(_)
            | E::Unauthenticated(_)
            | E::Forbidden(_)
            | E::SourceIdentity(_)
            | E::Invalid(_)
            | E::NotOneHost
            | E::BodyUnreadable(_)
            | E::PayloadTooLarge
            | E::UnsupportedMediaType
            | E::RequestTimeout => Side::Caller,
            E::AtCapacity | E::KeysUnavailable(_) | E::NoRegion(_) | E::Internal(_) => Side::Gateway,
            E::Upstream(failure) | E::Lookup(failure) if failure.kind.is_the_gateways() => Side::Gateway,
            E::Upstream(_) | E::Lookup(_) => Side::Connect,
        }
    }

    /// The answer for this error: the side chooses which map is asked.
    pub(crate) fn answer(&self) -> Answer {
        let answer = match self.side() {
            Side::Caller => self.callers_fault(),
            Side::Gateway => self.gateways_fault(),
            Side::Connect => match self {
                GatewayError::Lookup(failure) => lookup_answer(failure),
                GatewayError::Upstream(failure) => upstream_answer(failure),
                _ => unreachable!("only Connect's failures are on Connect's side"),
            },
        };
        debug_assert!(
            match self.side() {
                Side::Caller => answer.status.is_client_error(),
                Side::Gateway => matches!(answer.status.as_u16(), 500 | 503),
                Side::Connect => matches!(answer.status.as_u16(), 400 | 404 | 409 | 429 | 502 | 504),
            },
            "{self:?} answered {}",
            answer.status
        );
        answer
    }

    /// The caller's side: what to fix in the request.
    fn callers_fault(&self) -> Answer {
        use GatewayError as E;
        match self {
            E::NotFound => Answer::new(NOT_FOUND, "No such endpoint"),
            E::MethodNotAllowed(allowed) => Answer::new(
                (StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED"),
                format!("Only {allowed} is allowed here"),
            ),
            E::Unauthenticated(why) => Answer::new((StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"), capitalize(why)),
            E::Forbidden(reason) => Answer::new(FORBIDDEN, format!("Denied by policy: {reason}")),
            E::SourceIdentity(why) => Answer::new(FORBIDDEN, capitalize(why)),
            E::Invalid(why) => Answer::new(VALIDATION, why.0.clone()),
            E::NotOneHost => Answer::new(VALIDATION, "exactly one Host header is required"),
            E::BodyUnreadable(_) => Answer::new(VALIDATION, "the request body could not be read"),
            E::PayloadTooLarge => Answer::new(
                (StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE"),
                "Request body is larger than the gateway accepts",
            ),
            E::UnsupportedMediaType => Answer::new(
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE"),
                "Content-Type must be application/json",
            ),
            E::RequestTimeout => Answer::new(
                (StatusCode::REQUEST_TIMEOUT, "REQUEST_TIMEOUT"),
                "The request body did not arrive in time",
            ),
            other => unreachable!("{other:?} is not the caller's fault"),
        }
    }

    /// The gateway's side: its own state (503) or a fault of its own (500).
    fn gateways_fault(&self) -> Answer {
        use GatewayError as E;
        match self {
            E::AtCapacity => Answer::new(UNAVAILABLE, "The gateway is at capacity; retry shortly"),
            E::KeysUnavailable(why) => Answer::new(UNAVAILABLE, capitalize(why)),
            E::NoRegion(_) => Answer::new(UNAVAILABLE, "No region is configured for this instance"),
            E::Internal(_) => Answer::new(INTERNAL, "The gateway failed to answer"),
            E::Upstream(failure) | E::Lookup(failure) => match &failure.kind {
                FailureKind::Credentials(_) => Answer::new(UNAVAILABLE, "The gateway has no usable AWS credentials"),
                _ => Answer::new(INTERNAL, "The gateway could not sign the request"),
            },
            other => unreachable!("{other:?} is not the gateway's fault"),
        }
    }

    /// Whether Connect was not called for want of a budget token.
    pub(crate) fn is_budget_exhausted(&self) -> bool {
        matches!(
            self,
            GatewayError::Upstream(f) | GatewayError::Lookup(f) if matches!(f.kind, FailureKind::BudgetExhausted(_))
        )
    }

    /// What the audit line gives as `reason` for a refusal: the policy's
    /// reason, `internal` for a fault of the gateway itself, else the
    /// envelope code in lower case.
    pub(crate) fn audit_reason(&self) -> String {
        if self.is_budget_exhausted() {
            return "budget_exhausted".to_owned();
        }
        match self {
            GatewayError::Forbidden(reason) => reason.as_str().to_owned(),
            GatewayError::SourceIdentity(refused) => refused.reason().to_owned(),
            GatewayError::Internal(_) => "internal".to_owned(),
            other => other.answer().code.to_ascii_lowercase(),
        }
    }

    /// The error envelope, with the headers its status calls for.
    pub(crate) fn response(&self, request_id: &str) -> Response<Body> {
        let answer = self.answer();
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
                if let GatewayError::MethodNotAllowed(allowed) = self {
                    headers.insert(ALLOW, HeaderValue::from_static(allowed));
                }
            }
            _ => {}
        }
        if let Some(after) = answer.retry_after {
            // Whole seconds, rounded up, and never 0: "retry at once" would
            // send the caller straight back into the same refusal.
            headers.insert(
                RETRY_AFTER,
                HeaderValue::from((after.as_secs_f64().ceil() as u64).max(1)),
            );
        }
        if let GatewayError::Upstream(failure) | GatewayError::Lookup(failure) = self {
            if let Some(id) = failure
                .aws_request_id
                .as_deref()
                .and_then(|v| HeaderValue::from_str(v).ok())
            {
                headers.insert(AWS_REQUEST_ID, id);
            }
        }
        response
    }
}

/// MonitorContact's failures: Connect's errors mapped to the envelope.
fn upstream_answer(failure: &ConnectFailure) -> Answer {
    let mut answer = match &failure.kind {
        FailureKind::Connect(e) => match e.kind {
            ConnectErrorKind::InvalidRequest => Answer::new(
                VALIDATION,
                format!("Connect refused the request as invalid ({})", e.name),
            ),
            ConnectErrorKind::NotFound => Answer::new(NOT_FOUND, "Connect found no such instance, contact or user"),
            ConnectErrorKind::Idempotency => Answer::new(
                (StatusCode::CONFLICT, "CONFLICT"),
                "Connect refused a reused ClientToken with different parameters",
            ),
            ConnectErrorKind::QuotaExceeded => Answer::new(
                RATE_LIMITED,
                format!("Connect's service quota for {} is exceeded", failure.operation),
            ),
            ConnectErrorKind::Throttling => Answer::new(
                RATE_LIMITED,
                format!(
                    "Connect is still throttling after retries ({})",
                    quota_of(failure.operation)
                ),
            ),
            ConnectErrorKind::IdentityRefused if e.name.is_empty() => Answer::new(
                UPSTREAM,
                "Connect denied the gateway's own AWS identity; check the gateway's IAM permissions",
            ),
            ConnectErrorKind::IdentityRefused => Answer::new(
                UPSTREAM,
                format!(
                    "Connect denied the gateway's own AWS identity ({}); check the gateway's IAM permissions",
                    e.name
                ),
            ),
            ConnectErrorKind::ServerError | ConnectErrorKind::Other => {
                Answer::new(UPSTREAM, format!("Connect answered HTTP {}", e.status))
            }
        },
        FailureKind::Unreachable(_) => Answer::new(UPSTREAM, "Connect could not be reached"),
        FailureKind::BadResponse(operation) => Answer::new(
            UPSTREAM,
            format!("Connect answered with something that is not a {operation} response"),
        ),
        FailureKind::BudgetExhausted(_) => budget_exhausted(failure.operation),
        FailureKind::Timeout => Answer::new(UPSTREAM_TIMEOUT, "Connect did not answer within the request timeout"),
        FailureKind::Credentials(sts) if sts.is_sts() => sts_answer(sts),
        FailureKind::Credentials(_) | FailureKind::Signing(_) => unreachable!("the gateway's side"),
    };
    if answer.status == StatusCode::TOO_MANY_REQUESTS {
        answer.retry_after = failure.retry_after;
    }
    answer
}

/// A failed lookup, failing closed: what Connect did not find is named,
/// throttling is 429, running out of time 504, anything else 502 naming the
/// operation (so an operator knows which IAM action or quota to look at).
fn lookup_answer(failure: &ConnectFailure) -> Answer {
    let operation = failure.operation;
    let mut answer = match &failure.kind {
        FailureKind::Connect(e) => match e.kind {
            ConnectErrorKind::NotFound => Answer::new(
                NOT_FOUND,
                format!("Connect found no such {}", operation.looks_up().unwrap_or("resource")),
            ),
            ConnectErrorKind::Throttling | ConnectErrorKind::QuotaExceeded => Answer::new(
                RATE_LIMITED,
                format!(
                    "Connect is still throttling connect:{operation} after retries ({})",
                    quota_of(operation)
                ),
            ),
            _ => Answer::new(
                UPSTREAM,
                format!("connect:{operation} failed (HTTP {} {})", e.status, e.name),
            ),
        },
        FailureKind::Timeout => Answer::new(
            UPSTREAM_TIMEOUT,
            format!("connect:{operation} did not answer within the request timeout"),
        ),
        FailureKind::BudgetExhausted(_) => budget_exhausted(operation),
        FailureKind::Unreachable(_) | FailureKind::BadResponse(_) => {
            Answer::new(UPSTREAM, format!("connect:{operation} could not be read from Connect"))
        }
        FailureKind::Credentials(sts) if sts.is_sts() => sts_answer(sts),
        FailureKind::Credentials(_) | FailureKind::Signing(_) => unreachable!("the gateway's side"),
    };
    if answer.status == StatusCode::TOO_MANY_REQUESTS {
        answer.retry_after = failure.retry_after;
    }
    answer
}

/// STS gave no supervisor's session: 502 naming the action, with STS's
/// status and error code when it answered (its message stays in the log).
fn sts_answer(failed: &CredentialsUnavailable) -> Answer {
    let answered = failed.sts_refusal().map(|r| format!(" ({r})")).unwrap_or_default();
    Answer::new(
        UPSTREAM,
        format!("sts:AssumeRole for the supervisor's session failed{answered}; check that the role's trust policy lets the gateway call sts:AssumeRole and sts:SetSourceIdentity"),
    )
}

/// No token of the operation's budget before the deadline: Connect was not
/// called (its quota is the whole fleet's; docs/configuration.md, `[connect.quotas]`).
fn budget_exhausted(operation: Operation) -> Answer {
    Answer::new(
        RATE_LIMITED,
        format!("The gateways' budget for connect:{operation} has no call to spare before the request's deadline; retry after the time given"),
    )
}

/// An operation's quota, for a throttled caller's operator: Connect's
/// default, which an account may have had raised.
fn quota_of(operation: Operation) -> String {
    let quota = operation.quota();
    format!(
        "Connect's default quota for {operation} is {} calls/s, burst {}, per AWS account and Region",
        quota.rate, quota.burst
    )
}

fn capitalize(e: &impl std::fmt::Display) -> String {
    let text = e.to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connect::error::ConnectError;

    fn connect(status: u16, name: &str) -> Answer {
        GatewayError::Upstream(ConnectFailure {
            operation: Operation::MonitorContact,
            kind: FailureKind::Connect(ConnectError::new(status, name.into())),
            upstream_status: Some(status),
            aws_request_id: None,
            attempts: 1,
            retry_after: Some(Duration::from_secs(2)),
        })
        .answer()
    }

    #[test]
    fn connect_errors_map_per_contract() {
        let cases = [
            (400, "InvalidRequestException", 400, "VALIDATION_ERROR"),
            (400, "InvalidParameterException", 400, "VALIDATION_ERROR"),
            (403, "AccessDeniedException", 502, "UPSTREAM_ERROR"),
            (404, "ResourceNotFoundException", 404, "NOT_FOUND"),
            (409, "IdempotencyException", 409, "CONFLICT"),
            (402, "ServiceQuotaExceededException", 429, "RATE_LIMITED"),
            (429, "ThrottlingException", 429, "RATE_LIMITED"),
            (500, "InternalServiceException", 502, "UPSTREAM_ERROR"),
            (503, "", 502, "UPSTREAM_ERROR"),
        ];
        for (status, name, want_status, want_code) in cases {
            let a = connect(status, name);
            assert_eq!((a.status.as_u16(), a.code), (want_status, want_code), "{name}");
        }
        assert_eq!(connect(429, "").retry_after, Some(Duration::from_secs(2)));
        assert!(connect(403, "AccessDeniedException")
            .message
            .contains("gateway's own AWS identity"));
    }

    #[test]
    fn throttled_exception_is_answered_429_as_it_is_retried() {
        let a = connect(400, "ThrottledException");
        assert_eq!((a.status.as_u16(), a.code), (429, "RATE_LIMITED"));
    }

    #[test]
    fn every_401_says_bearer_and_every_405_says_post() {
        let r = GatewayError::Unauthenticated(AuthError::Missing).response("id");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        let r = GatewayError::MethodNotAllowed("POST").response("id");
        assert_eq!(r.headers()["allow"], "POST");
    }

    fn failure(operation: Operation, kind: FailureKind) -> ConnectFailure {
        ConnectFailure {
            operation,
            kind,
            upstream_status: None,
            aws_request_id: None,
            attempts: 1,
            retry_after: None,
        }
    }

    #[test]
    fn the_status_follows_from_the_side() {
        let io = || Box::new(std::io::Error::other("cause")) as Box<dyn Error + Send + Sync>;
        let connect_kinds = || {
            vec![
                FailureKind::Connect(ConnectError::new(400, "InvalidRequestException".into())),
                FailureKind::Connect(ConnectError::new(404, "ResourceNotFoundException".into())),
                FailureKind::Connect(ConnectError::new(409, "IdempotencyException".into())),
                FailureKind::Connect(ConnectError::new(429, "ThrottlingException".into())),
                FailureKind::Connect(ConnectError::new(403, "AccessDeniedException".into())),
                FailureKind::Connect(ConnectError::new(500, String::new())),
                FailureKind::Unreachable(std::sync::Arc::from(io())),
                FailureKind::BadResponse(Operation::DescribeUser),
                FailureKind::Timeout,
                FailureKind::BudgetExhausted(Operation::MonitorContact),
            ]
        };
        let mut errors = vec![
            GatewayError::NotFound,
            GatewayError::MethodNotAllowed("POST"),
            GatewayError::Unauthenticated(AuthError::Missing),
            GatewayError::Forbidden(DenyReason::UserNotAllowed),
            GatewayError::SourceIdentity(SourceIdentityRefused::Invalid("email".into())),
            GatewayError::Invalid(InvalidRequest("UserId is required".into())),
            GatewayError::NotOneHost,
            GatewayError::BodyUnreadable(io()),
            GatewayError::PayloadTooLarge,
            GatewayError::UnsupportedMediaType,
            GatewayError::RequestTimeout,
            GatewayError::AtCapacity,
            GatewayError::KeysUnavailable(KeysUnavailable("https://idp".into())),
            GatewayError::NoRegion(NoRegion),
            GatewayError::Internal(io()),
            GatewayError::Upstream(failure(
                Operation::MonitorContact,
                FailureKind::Credentials(CredentialsUnavailable::Expired),
            )),
        ];
        errors.push(GatewayError::Upstream(failure(
            Operation::MonitorContact,
            FailureKind::Credentials(CredentialsUnavailable::AssumeRole(std::sync::Arc::new(
                CredentialsUnavailable::TimedOut,
            ))),
        )));
        for kind in connect_kinds() {
            errors.push(GatewayError::Upstream(failure(Operation::MonitorContact, kind)));
        }
        for kind in connect_kinds() {
            errors.push(GatewayError::Lookup(failure(Operation::DescribeContact, kind)));
        }
        for error in &errors {
            let status = error.answer().status.as_u16();
            let fits = match error.side() {
                Side::Caller => (400..500).contains(&status),
                Side::Gateway => status == 500 || status == 503,
                Side::Connect => [400, 404, 409, 429, 502, 504].contains(&status),
            };
            assert!(
                fits,
                "{error:?} is on the {:?} side and answered {status}",
                error.side()
            );
        }
    }

    #[test]
    fn an_error_keeps_its_cause() {
        let refused = std::io::Error::other("tcp connect error: connection refused");
        let e = GatewayError::Lookup(failure(
            Operation::DescribeUser,
            FailureKind::Unreachable(std::sync::Arc::new(refused)),
        ));
        assert_eq!(
            crate::telemetry::error_chain(&e),
            "a lookup failed: connect:DescribeUser failed: Connect could not be reached: \
             tcp connect error: connection refused"
        );
    }

    #[test]
    fn a_fault_of_the_gateway_is_audited_as_internal() {
        let e = GatewayError::Internal(Box::new(std::io::Error::other("a panic")));
        assert_eq!(
            (e.answer().status.as_u16(), e.audit_reason().as_str()),
            (500, "internal")
        );
        assert_eq!(GatewayError::AtCapacity.audit_reason(), "unavailable");
        assert_eq!(
            GatewayError::Forbidden(DenyReason::AgentOutOfScope).audit_reason(),
            "agent_out_of_scope"
        );
    }

    #[test]
    fn a_claim_that_cannot_name_the_supervisor_is_403_with_its_own_reason() {
        for (refused, reason) in [
            (
                SourceIdentityRefused::Missing("email".into()),
                "source_identity_missing",
            ),
            (
                SourceIdentityRefused::Invalid("email".into()),
                "source_identity_invalid",
            ),
        ] {
            let e = GatewayError::from(refused);
            let answer = e.answer();
            assert_eq!((answer.status.as_u16(), answer.code), (403, "FORBIDDEN"));
            assert!(answer.message.contains("email"), "{}", answer.message);
            assert_eq!(e.audit_reason(), reason);
        }
    }

    #[test]
    fn sts_failing_a_supervisors_session_is_502_naming_sts_assume_role() {
        let e = GatewayError::Upstream(failure(
            Operation::MonitorContact,
            FailureKind::Credentials(CredentialsUnavailable::AssumeRole(std::sync::Arc::new(
                CredentialsUnavailable::TimedOut,
            ))),
        ));
        let answer = e.answer();
        assert_eq!((answer.status.as_u16(), answer.code), (502, "UPSTREAM_ERROR"));
        assert!(answer.message.starts_with("sts:AssumeRole"), "{}", answer.message);
        // The gateway's own credentials missing stays the gateway's 503.
        let own = GatewayError::Upstream(failure(
            Operation::MonitorContact,
            FailureKind::Credentials(CredentialsUnavailable::Expired),
        ));
        assert_eq!(own.answer().status.as_u16(), 503);
    }
}
