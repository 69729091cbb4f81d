//! The one place every failure becomes an answer: status, envelope code,
//! message and headers of CONTRACT §5. Downstream faults are 4xx, upstream
//! ones 502/504, our own 503/500. Every text a caller can read is here; none
//! quotes the caller's input or Connect's own text.

use std::time::Duration;

use http::header::{HeaderValue, ALLOW, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Response, StatusCode};
use serde_json::json;

use crate::auth::token::{AuthError, KeysUnavailable};
use crate::authz::policy::DenyReason;
use crate::authz::Refusal;
use crate::connect::client::{ConnectFailure, FailureKind, AWS_REQUEST_ID};
use crate::connect::error::ConnectErrorKind;
use crate::connect::monitor_request::InvalidRequest;
use crate::http::{json_response, Body};

/// Everything that can stop a request, by the side whose fault it is.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GatewayError {
    // The caller's side.
    #[error("no such endpoint")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error(transparent)]
    Unauthenticated(#[from] AuthError),
    #[error("denied by policy: {0}")]
    Forbidden(DenyReason),
    #[error(transparent)]
    Invalid(#[from] InvalidRequest),
    #[error("not exactly one Host header")]
    NotOneHost,
    #[error("the request body could not be read")]
    BodyUnreadable,
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("Content-Type is not application/json")]
    UnsupportedMediaType,
    #[error("request body not received in time")]
    RequestTimeout,
    // Our side.
    #[error("at capacity (max_in_flight)")]
    AtCapacity,
    #[error(transparent)]
    KeysUnavailable(#[from] KeysUnavailable),
    #[error("no region is configured for the instance")]
    NoRegion,
    #[error("internal error: {0}")]
    Internal(String),
    // Connect's side.
    #[error(transparent)]
    Upstream(#[from] ConnectFailure),
    /// A lookup a grant needed failed: the request fails closed (CONTRACT §9).
    #[error("lookup failed: {0}")]
    Lookup(ConnectFailure),
}

impl From<Refusal> for GatewayError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Denied(reason) => GatewayError::Forbidden(reason),
            Refusal::NoRegion => GatewayError::NoRegion,
            Refusal::LookupFailed(failure) => GatewayError::Lookup(failure),
            // Only `explain` decides without a source of facts.
            Refusal::FactsMissing(what) => GatewayError::Internal(what),
        }
    }
}

/// How an error is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after: Option<Duration>,
}

impl Answer {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
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

const UNAVAILABLE: (StatusCode, &str) = (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE");
const UPSTREAM: (StatusCode, &str) = (StatusCode::BAD_GATEWAY, "UPSTREAM_ERROR");
const RATE_LIMITED: (StatusCode, &str) = (StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED");

impl GatewayError {
    /// The answer for this error.
    pub(crate) fn answer(&self) -> Answer {
        use GatewayError as E;
        let say = |(status, code): (StatusCode, &'static str), message: &str| Answer::new(status, code, message);
        match self {
            E::NotFound => Answer::new(StatusCode::NOT_FOUND, "NOT_FOUND", "No such endpoint"),
            E::MethodNotAllowed => Answer::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "Only POST is allowed here",
            ),
            E::Unauthenticated(why) => Answer::new(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", capitalize(why)),
            E::Forbidden(reason) => Answer::new(
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                format!("Denied by policy: {reason}"),
            ),
            E::Invalid(why) => Answer::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", why.0.clone()),
            E::NotOneHost => Answer::new(
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                "exactly one Host header is required",
            ),
            E::BodyUnreadable => Answer::new(
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                "the request body could not be read",
            ),
            E::PayloadTooLarge => Answer::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
                "Request body is larger than the gateway accepts",
            ),
            E::UnsupportedMediaType => Answer::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UNSUPPORTED_MEDIA_TYPE",
                "Content-Type must be application/json",
            ),
            E::RequestTimeout => Answer::new(
                StatusCode::REQUEST_TIMEOUT,
                "REQUEST_TIMEOUT",
                "The request body did not arrive in time",
            ),
            E::AtCapacity => say(UNAVAILABLE, "The gateway is at capacity; retry shortly"),
            E::KeysUnavailable(why) => Answer::new(UNAVAILABLE.0, UNAVAILABLE.1, capitalize(why)),
            E::NoRegion => say(UNAVAILABLE, "No region is configured for this instance"),
            E::Internal(_) => Answer::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_ERROR",
                "The gateway failed to answer",
            ),
            E::Upstream(failure) => upstream_answer(failure),
            E::Lookup(failure) => lookup_answer(failure),
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
                headers.insert(ALLOW, HeaderValue::from_static("POST"));
            }
            _ => {}
        }
        if let Some(after) = answer.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(after.as_secs_f64().ceil() as u64));
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

/// Connect's errors (REFERENCE.md) mapped to CONTRACT §5.
fn upstream_answer(failure: &ConnectFailure) -> Answer {
    let say = |(status, code): (StatusCode, &'static str), message: String| Answer::new(status, code, message);
    let mut answer = match &failure.kind {
        FailureKind::Connect(e) => match e.kind {
            ConnectErrorKind::InvalidRequest => Answer::new(
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                format!("Connect refused the request as invalid ({})", e.name),
            ),
            ConnectErrorKind::NotFound => Answer::new(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "Connect found no such instance, contact or user",
            ),
            ConnectErrorKind::Idempotency => Answer::new(
                StatusCode::CONFLICT,
                "CONFLICT",
                "Connect refused a reused ClientToken with different parameters",
            ),
            ConnectErrorKind::QuotaExceeded => say(
                RATE_LIMITED,
                format!("Connect's service quota for {} is exceeded", failure.operation),
            ),
            ConnectErrorKind::Throttling => say(RATE_LIMITED, "Connect is still throttling after retries".into()),
            ConnectErrorKind::IdentityRefused if e.name.is_empty() => say(
                UPSTREAM,
                "Connect denied the gateway's own AWS identity; check the gateway's IAM permissions".into(),
            ),
            ConnectErrorKind::IdentityRefused => say(
                UPSTREAM,
                format!(
                    "Connect denied the gateway's own AWS identity ({}); check the gateway's IAM permissions",
                    e.name
                ),
            ),
            ConnectErrorKind::ServerError | ConnectErrorKind::Other => {
                say(UPSTREAM, format!("Connect answered HTTP {}", e.status))
            }
        },
        FailureKind::Unreachable(_) => say(UPSTREAM, "Connect could not be reached".into()),
        FailureKind::BadResponse(operation) => say(
            UPSTREAM,
            format!("Connect answered with something that is not a {operation} response"),
        ),
        FailureKind::LocalRateLimit => say(
            RATE_LIMITED,
            "The gateway's MonitorContact rate limit is reached; retry after the time given".into(),
        ),
        FailureKind::Timeout => Answer::new(
            StatusCode::GATEWAY_TIMEOUT,
            "UPSTREAM_TIMEOUT",
            "Connect did not answer within the request timeout",
        ),
        FailureKind::Credentials(_) => say(UNAVAILABLE, "The gateway has no usable AWS credentials".into()),
        FailureKind::Signing(_) => Answer::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            "The gateway could not sign the request",
        ),
    };
    if answer.status == StatusCode::TOO_MANY_REQUESTS {
        answer.retry_after = failure.retry_after;
    }
    answer
}

/// A failed lookup, per CONTRACT §9: what Connect did not find is named,
/// throttling is 429, running out of time 504, anything else 502 naming the
/// operation (so an operator knows which IAM action or quota to look at).
fn lookup_answer(failure: &ConnectFailure) -> Answer {
    let operation = failure.operation;
    let mut answer = match &failure.kind {
        FailureKind::Connect(e) => match e.kind {
            ConnectErrorKind::NotFound => Answer::new(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                format!("Connect found no such {}", looked_up(operation)),
            ),
            ConnectErrorKind::Throttling | ConnectErrorKind::QuotaExceeded => Answer::new(
                RATE_LIMITED.0,
                RATE_LIMITED.1,
                format!("Connect is still throttling connect:{operation} after retries"),
            ),
            _ => Answer::new(
                UPSTREAM.0,
                UPSTREAM.1,
                format!("connect:{operation} failed (HTTP {} {})", e.status, e.name),
            ),
        },
        FailureKind::Timeout => Answer::new(
            StatusCode::GATEWAY_TIMEOUT,
            "UPSTREAM_TIMEOUT",
            format!("connect:{operation} did not answer within the request timeout"),
        ),
        FailureKind::Unreachable(_) | FailureKind::BadResponse(_) | FailureKind::LocalRateLimit => Answer::new(
            UPSTREAM.0,
            UPSTREAM.1,
            format!("connect:{operation} could not be read from Connect"),
        ),
        // Credentials and signing are the gateway's own state, as for MonitorContact.
        FailureKind::Credentials(_) | FailureKind::Signing(_) => upstream_answer(failure),
    };
    if answer.status == StatusCode::TOO_MANY_REQUESTS {
        answer.retry_after = failure.retry_after;
    }
    answer
}

/// What a lookup operation looks up, for "no such …".
fn looked_up(operation: &str) -> &'static str {
    match operation {
        "DescribeContact" => "contact",
        "ListSecurityProfilePermissions" => "security profile",
        _ => "user",
    }
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
            operation: "MonitorContact",
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
        let r = GatewayError::MethodNotAllowed.response("id");
        assert_eq!(r.headers()["allow"], "POST");
    }
}
