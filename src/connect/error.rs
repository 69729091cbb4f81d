//! Connect's error answers, read once: the error's name (from the
//! `X-Amzn-ErrorType` header, `__type` or `code`) and the kind it belongs to,
//! which decides both whether a call is retried and how the caller is answered.

use http::HeaderMap;
use serde_json::Value;

/// What a Connect error means for us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectErrorKind {
    /// `ThrottlingException`, `TooManyRequestsException`, `ThrottledException`, or any 429.
    Throttling,
    /// `ServiceQuotaExceededException`: not retried, the quota will not lift in time.
    QuotaExceeded,
    /// `InvalidRequestException`, `InvalidParameterException`.
    InvalidRequest,
    /// `ResourceNotFoundException`.
    NotFound,
    /// `IdempotencyException`: a ClientToken reused with other parameters.
    Idempotency,
    /// Connect refused the gateway's own AWS identity (IAM, signature, token), or any 403.
    IdentityRefused,
    /// 500, 502, 503 or 504: worth another attempt.
    ServerError,
    /// Anything else.
    Other,
}

/// An error Connect answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConnectError {
    pub(crate) status: u16,
    /// e.g. `ThrottlingException`, without namespace or suffix; empty when Connect gave none.
    pub(crate) name: String,
    pub(crate) kind: ConnectErrorKind,
}

impl ConnectError {
    /// Reads an error answer.
    pub(crate) fn parse(status: u16, headers: &HeaderMap, body: &[u8]) -> ConnectError {
        Self::new(status, error_name(headers, body))
    }

    pub(crate) fn new(status: u16, name: String) -> ConnectError {
        let kind = classify(status, &name);
        ConnectError { status, name, kind }
    }
}

/// The name first, then the status.
fn classify(status: u16, name: &str) -> ConnectErrorKind {
    use ConnectErrorKind as K;
    match name {
        "ThrottlingException" | "TooManyRequestsException" | "ThrottledException" => K::Throttling,
        "ServiceQuotaExceededException" => K::QuotaExceeded,
        "InvalidRequestException" | "InvalidParameterException" => K::InvalidRequest,
        "ResourceNotFoundException" => K::NotFound,
        "IdempotencyException" => K::Idempotency,
        "AccessDeniedException"
        | "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "ExpiredTokenException"
        | "InvalidClientTokenId"
        | "MissingAuthenticationTokenException" => K::IdentityRefused,
        _ if status == 429 => K::Throttling,
        _ if status == 403 => K::IdentityRefused,
        _ if matches!(status, 500 | 502 | 503 | 504) => K::ServerError,
        _ => K::Other,
    }
}

/// The error's name from the `X-Amzn-ErrorType` header, else the body's
/// `__type`, else its `code`; namespaces (`ns#Name`) and suffixes (`Name:…`) dropped.
pub(crate) fn error_name(headers: &HeaderMap, body: &[u8]) -> String {
    let raw = headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            let doc: Value = serde_json::from_slice(body).ok()?;
            ["__type", "code"]
                .iter()
                .find_map(|k| doc.get(*k).and_then(Value::as_str).map(str::to_owned))
        })
        .unwrap_or_default();
    let name = raw.split(':').next().unwrap_or_default();
    name.rsplit('#').next().unwrap_or_default().trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ConnectErrorKind as K;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn error_name_from_header_with_suffix() {
        let h = headers(&[("x-amzn-errortype", "ThrottlingException:http://internal.amazon.com/")]);
        assert_eq!(error_name(&h, b""), "ThrottlingException");
    }

    #[test]
    fn error_name_from_body_type_with_namespace() {
        let body = br#"{"__type":"com.amazonaws.connect#ResourceNotFoundException","Message":"x"}"#;
        assert_eq!(error_name(&HeaderMap::new(), body), "ResourceNotFoundException");
    }

    #[test]
    fn error_name_from_body_code() {
        assert_eq!(
            error_name(&HeaderMap::new(), br#"{"code":"IdempotencyException"}"#),
            "IdempotencyException"
        );
        assert_eq!(error_name(&HeaderMap::new(), b"<html>"), "");
    }

    #[test]
    fn every_throttling_name_is_one_kind() {
        for name in ["ThrottlingException", "TooManyRequestsException", "ThrottledException"] {
            assert_eq!(ConnectError::new(400, name.into()).kind, K::Throttling, "{name}");
        }
        assert_eq!(ConnectError::new(429, String::new()).kind, K::Throttling);
    }

    #[test]
    fn kinds_by_name_then_status() {
        assert_eq!(
            ConnectError::new(500, "InternalServiceException".into()).kind,
            K::ServerError
        );
        assert_eq!(ConnectError::new(503, String::new()).kind, K::ServerError);
        assert_eq!(ConnectError::new(501, String::new()).kind, K::Other);
        assert_eq!(
            ConnectError::new(404, "ResourceNotFoundException".into()).kind,
            K::NotFound
        );
        assert_eq!(
            ConnectError::new(402, "ServiceQuotaExceededException".into()).kind,
            K::QuotaExceeded
        );
        assert_eq!(ConnectError::new(403, String::new()).kind, K::IdentityRefused);
    }
}
