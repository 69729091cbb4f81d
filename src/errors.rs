//! The one place every failure becomes an answer: status, envelope code and
//! message of CONTRACT §5. Downstream faults are 4xx, upstream ones 502/504.

use std::time::Duration;

use http::StatusCode;

use crate::authentication::{AuthError, KeysUnavailable};
use crate::credentials::CredentialsUnavailable;
use crate::monitor_request::InvalidRequest;
use crate::policy::DenyReason;
use crate::upstream::{UpstreamErrorKind, UpstreamFailure};

/// Everything that can stop a request, by the side whose fault it is.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
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
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    #[error("request body not received in time")]
    RequestTimeout,
    // Our side.
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
    // Connect's side.
    #[error(transparent)]
    Upstream(#[from] UpstreamFailure),
}

impl From<KeysUnavailable> for GatewayError {
    fn from(e: KeysUnavailable) -> Self {
        GatewayError::Unavailable(e.to_string())
    }
}

impl From<CredentialsUnavailable> for GatewayError {
    fn from(_: CredentialsUnavailable) -> Self {
        GatewayError::Unavailable("the gateway has no AWS credentials yet".into())
    }
}

/// How an error is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
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
pub const OK_CODE: &str = "OK";

impl GatewayError {
    /// The answer for this error. Messages are ours, never the caller's input
    /// or Connect's text, so nothing secret or hostile is echoed.
    pub fn answer(&self) -> Answer {
        use GatewayError as E;
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
            E::Unavailable(why) => Answer::new(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", capitalize(why)),
            E::Internal(_) => Answer::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_ERROR",
                "The gateway failed to answer",
            ),
            E::Upstream(failure) => upstream_answer(failure),
        }
    }
}

/// Connect's errors (REFERENCE.md) mapped to CONTRACT §5.
fn upstream_answer(failure: &UpstreamFailure) -> Answer {
    let mut answer = match &failure.kind {
        UpstreamErrorKind::Connect(e) => match e.error_type.as_str() {
            "InvalidRequestException" | "InvalidParameterException" => Answer::new(
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                format!("Connect refused the request as invalid ({})", e.error_type),
            ),
            "ResourceNotFoundException" => Answer::new(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "Connect found no such instance, contact or user",
            ),
            "IdempotencyException" => Answer::new(
                StatusCode::CONFLICT,
                "CONFLICT",
                "Connect refused a reused ClientToken with different parameters",
            ),
            "ServiceQuotaExceededException" => Answer::new(
                StatusCode::TOO_MANY_REQUESTS,
                "RATE_LIMITED",
                "Connect's service quota for MonitorContact is exceeded",
            ),
            "AccessDeniedException"
            | "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "ExpiredTokenException"
            | "InvalidClientTokenId"
            | "MissingAuthenticationTokenException" => Answer::new(
                StatusCode::BAD_GATEWAY,
                "UPSTREAM_ERROR",
                format!(
                    "Connect denied the gateway's own AWS identity ({}); check the gateway's IAM permissions",
                    e.error_type
                ),
            ),
            "ThrottlingException" | "TooManyRequestsException" => Answer::new(
                StatusCode::TOO_MANY_REQUESTS,
                "RATE_LIMITED",
                "Connect is still throttling after retries",
            ),
            _ if e.status == 429 => Answer::new(
                StatusCode::TOO_MANY_REQUESTS,
                "RATE_LIMITED",
                "Connect is still throttling after retries",
            ),
            _ if e.status == 403 => Answer::new(
                StatusCode::BAD_GATEWAY,
                "UPSTREAM_ERROR",
                "Connect denied the gateway's own AWS identity; check the gateway's IAM permissions",
            ),
            _ => Answer::new(
                StatusCode::BAD_GATEWAY,
                "UPSTREAM_ERROR",
                format!("Connect answered HTTP {}", e.status),
            ),
        },
        UpstreamErrorKind::Unreachable(_) => Answer::new(
            StatusCode::BAD_GATEWAY,
            "UPSTREAM_ERROR",
            "Connect could not be reached",
        ),
        UpstreamErrorKind::BadResponse => Answer::new(
            StatusCode::BAD_GATEWAY,
            "UPSTREAM_ERROR",
            "Connect answered with something that is not a MonitorContact response",
        ),
        UpstreamErrorKind::LocalRateLimit => Answer::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
            "The gateway's MonitorContact rate limit is reached; retry after the time given",
        ),
        UpstreamErrorKind::Timeout => Answer::new(
            StatusCode::GATEWAY_TIMEOUT,
            "UPSTREAM_TIMEOUT",
            "Connect did not answer within the request timeout",
        ),
        UpstreamErrorKind::Credentials(_) => Answer::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            "The gateway has no usable AWS credentials",
        ),
        UpstreamErrorKind::Signing(_) => Answer::new(
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
    use crate::upstream::ConnectError;

    fn connect(status: u16, error_type: &str) -> Answer {
        GatewayError::Upstream(UpstreamFailure {
            kind: UpstreamErrorKind::Connect(ConnectError {
                status,
                error_type: error_type.into(),
            }),
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
}
