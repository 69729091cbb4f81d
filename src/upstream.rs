//! Forwarding to Connect: one logical call per request, each attempt signed
//! afresh over the same body, throttling/5xx/connection errors retried with
//! jittered exponential backoff, all inside the request's deadline.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use serde_json::Value;

use crate::credentials::{CredentialsCache, CredentialsUnavailable};
use crate::endpoint::Route;
use crate::http_client::{error_chain, HttpClient};
use crate::metrics::Metrics;
use crate::rate_limit::RateLimiter;
use crate::signing;

const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Retry and timeout settings of the upstream call.
#[derive(Debug, Clone)]
pub struct RetrySettings {
    pub max_attempts: u32,
    pub attempt_timeout: Duration,
    /// Backoff base after a throttling error (the SDK uses 1 s).
    pub throttle_base: Duration,
    /// Backoff base after a 5xx or connection error (the SDK uses 50 ms).
    pub transient_base: Duration,
    pub max_backoff: Duration,
    /// The retry quota (the SDK's token bucket): capacity and costs.
    pub quota_capacity: u32,
    pub throttle_retry_cost: u32,
    pub transient_retry_cost: u32,
}

impl RetrySettings {
    pub fn new(max_attempts: u32, attempt_timeout: Duration) -> Self {
        RetrySettings {
            max_attempts,
            attempt_timeout,
            throttle_base: Duration::from_secs(1),
            transient_base: Duration::from_millis(50),
            max_backoff: Duration::from_secs(20),
            quota_capacity: 500,
            throttle_retry_cost: 5,
            transient_retry_cost: 14,
        }
    }

    /// random(0, min(base × 2^(attempt−1), cap)), the SDK's "full jitter".
    fn backoff(&self, kind: RetryKind, attempt: u32) -> Duration {
        let base = match kind {
            RetryKind::Throttle => self.throttle_base,
            RetryKind::Transient => self.transient_base,
        };
        let ceiling = base
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.max_backoff);
        ceiling.mul_f64(fastrand::f64())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RetryKind {
    Throttle,
    Transient,
}

/// The retry quota shared by all requests: each retry spends tokens, each
/// success gives some back, so a Connect outage does not multiply load.
pub struct RetryQuota {
    capacity: u32,
    available: std::sync::Mutex<u32>,
}

impl RetryQuota {
    pub fn new(capacity: u32) -> Self {
        RetryQuota {
            capacity,
            available: std::sync::Mutex::new(capacity),
        }
    }

    fn try_spend(&self, cost: u32) -> bool {
        let mut available = self.available.lock().expect("quota lock");
        if *available < cost {
            return false;
        }
        *available -= cost;
        true
    }

    /// A success refunds the cost of its last retry, or 1 when it needed none.
    fn refund(&self, last_cost: Option<u32>) {
        let mut available = self.available.lock().expect("quota lock");
        *available = (*available + last_cost.unwrap_or(1)).min(self.capacity);
    }

    pub fn available(&self) -> u32 {
        *self.available.lock().expect("quota lock")
    }
}

/// What Connect answered when it succeeded.
#[derive(Debug, Clone)]
pub struct ConnectSuccess {
    pub contact_id: String,
    pub contact_arn: String,
    pub status: u16,
    pub aws_request_id: Option<String>,
    pub attempts: u32,
}

/// An error Connect answered with, named by its error type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectError {
    pub status: u16,
    /// e.g. `ThrottlingException`, without namespace or suffix; empty when Connect gave none.
    pub error_type: String,
}

/// Why the upstream call did not succeed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamErrorKind {
    #[error("Connect answered {} {}", .0.status, .0.error_type)]
    Connect(ConnectError),
    #[error("Connect unreachable: {0}")]
    Unreachable(String),
    #[error("Connect answered something that is not a MonitorContact response")]
    BadResponse,
    #[error("the request deadline ran out")]
    Timeout,
    #[error("the local MonitorContact rate limit has no slot before the deadline")]
    LocalRateLimit,
    #[error(transparent)]
    Credentials(#[from] CredentialsUnavailable),
    #[error(transparent)]
    Signing(#[from] signing::SigningFailed),
}

/// A failed upstream call and what we know of it, for the answer and the audit.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind}")]
pub struct UpstreamFailure {
    pub kind: UpstreamErrorKind,
    pub upstream_status: Option<u16>,
    pub aws_request_id: Option<String>,
    pub attempts: u32,
    pub retry_after: Option<Duration>,
}

/// The error type of a Connect error response, from the `X-Amzn-ErrorType`
/// header, else the body's `__type`, else its `code`; namespaces
/// (`ns#Name`) and suffixes (`Name:…`) dropped.
pub fn error_type(headers: &HeaderMap, body: &[u8]) -> String {
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

fn retry_kind(status: u16, error_type: &str) -> Option<RetryKind> {
    match error_type {
        "ThrottlingException" | "TooManyRequestsException" | "ThrottledException" => Some(RetryKind::Throttle),
        _ if status == 429 => Some(RetryKind::Throttle),
        _ if matches!(status, 500 | 502 | 503 | 504) => Some(RetryKind::Transient),
        _ => None,
    }
}

/// `Retry-After` in seconds, or Connect's `x-amz-retry-after` in milliseconds.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = text("x-amz-retry-after").and_then(|v| v.parse::<u64>().ok()) {
        return Some(Duration::from_millis(ms));
    }
    text("retry-after")
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// The MonitorContact client.
pub struct Upstream {
    client: HttpClient,
    credentials: Arc<CredentialsCache>,
    retry: RetrySettings,
    quota: RetryQuota,
    limiter: Option<RateLimiter>,
    metrics: Arc<Metrics>,
}

/// One attempt's result: an answer, or a failure that may be retried.
enum Attempt {
    Answered {
        status: u16,
        headers: HeaderMap,
        body: Bytes,
    },
    Failed(UpstreamErrorKind),
}

impl Upstream {
    pub fn new(
        client: HttpClient,
        credentials: Arc<CredentialsCache>,
        retry: RetrySettings,
        limiter: Option<RateLimiter>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Upstream {
            client,
            credentials,
            quota: RetryQuota::new(retry.quota_capacity),
            retry,
            limiter,
            metrics,
        }
    }

    pub fn quota(&self) -> &RetryQuota {
        &self.quota
    }

    pub fn credentials(&self) -> &Arc<CredentialsCache> {
        &self.credentials
    }

    async fn attempt(&self, route: &Route, body: &Bytes, deadline: Instant) -> Attempt {
        let credentials = match tokio::time::timeout_at(deadline.into(), self.credentials.get()).await {
            Err(_) => return Attempt::Failed(UpstreamErrorKind::Timeout),
            Ok(Err(e)) => return Attempt::Failed(e.into()),
            Ok(Ok(c)) => c,
        };
        let request = match signing::signed_request(route, body.clone(), &credentials, SystemTime::now()) {
            Ok(r) => r.map(Full::new),
            Err(e) => return Attempt::Failed(e.into()),
        };
        let budget = self
            .retry
            .attempt_timeout
            .min(deadline.saturating_duration_since(Instant::now()));
        let started = Instant::now();
        let call = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| UpstreamErrorKind::Unreachable(error_chain(&e)))?;
            let status = response.status().as_u16();
            let (parts, incoming) = response.into_parts();
            let body = Limited::new(incoming, MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| UpstreamErrorKind::Unreachable(format!("reading the response: {e}")))?
                .to_bytes();
            Ok::<_, UpstreamErrorKind>((status, parts.headers, body))
        };
        let result = tokio::time::timeout(budget, call).await;
        self.metrics.upstream_duration(started.elapsed());
        match result {
            Err(_) => Attempt::Failed(UpstreamErrorKind::Timeout),
            Ok(Err(kind)) => Attempt::Failed(kind),
            Ok(Ok((status, headers, body))) => Attempt::Answered { status, headers, body },
        }
    }

    /// Calls MonitorContact, retrying what is safe to retry until `deadline`.
    pub async fn monitor_contact(
        &self,
        route: &Route,
        body: Bytes,
        deadline: Instant,
    ) -> Result<ConnectSuccess, UpstreamFailure> {
        let mut attempts = 0;
        let mut last_cost = None;
        let mut previous: Option<UpstreamFailure> = None;
        loop {
            if let Some(limiter) = &self.limiter {
                if let Err(refused) = limiter.acquire(deadline).await {
                    // No slot before the deadline: say when to come back, or
                    // answer with what the last attempt got.
                    return Err(previous.unwrap_or(UpstreamFailure {
                        kind: UpstreamErrorKind::LocalRateLimit,
                        upstream_status: None,
                        aws_request_id: None,
                        attempts,
                        retry_after: Some(refused.retry_after),
                    }));
                }
            }
            attempts += 1;
            let outcome = self.attempt(route, &body, deadline).await;
            let (failure, retry) = match outcome {
                Attempt::Answered { status, headers, body } => {
                    let aws_request_id = headers
                        .get("x-amzn-requestid")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    if StatusCode::from_u16(status).is_ok_and(|s| s.is_success()) {
                        self.metrics.upstream_attempt("success");
                        self.quota.refund(last_cost);
                        return parse_success(&body)
                            .map(|(contact_id, contact_arn)| ConnectSuccess {
                                contact_id,
                                contact_arn,
                                status,
                                aws_request_id: aws_request_id.clone(),
                                attempts,
                            })
                            .ok_or(UpstreamFailure {
                                kind: UpstreamErrorKind::BadResponse,
                                upstream_status: Some(status),
                                aws_request_id,
                                attempts,
                                retry_after: None,
                            });
                    }
                    let error_type = error_type(&headers, &body);
                    let retry = retry_kind(status, &error_type);
                    self.metrics.upstream_attempt(match retry {
                        Some(RetryKind::Throttle) => "throttled",
                        Some(RetryKind::Transient) => "server_error",
                        None => "client_error",
                    });
                    let failure = UpstreamFailure {
                        kind: UpstreamErrorKind::Connect(ConnectError { status, error_type }),
                        upstream_status: Some(status),
                        aws_request_id,
                        attempts,
                        retry_after: retry_after(&headers),
                    };
                    (failure, retry)
                }
                Attempt::Failed(kind) => {
                    let retry = match &kind {
                        UpstreamErrorKind::Unreachable(_) | UpstreamErrorKind::Timeout => Some(RetryKind::Transient),
                        _ => None,
                    };
                    self.metrics.upstream_attempt(match &kind {
                        UpstreamErrorKind::Timeout => "timeout",
                        UpstreamErrorKind::Unreachable(_) => "connection_error",
                        _ => "not_sent",
                    });
                    let failure = UpstreamFailure {
                        kind,
                        upstream_status: None,
                        aws_request_id: None,
                        attempts,
                        retry_after: None,
                    };
                    (failure, retry)
                }
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(UpstreamFailure {
                    kind: UpstreamErrorKind::Timeout,
                    ..failure
                });
            }
            let Some(kind) = retry else {
                return Err(failure);
            };
            if attempts >= self.retry.max_attempts {
                return Err(failure);
            }
            // Connect's own hint wins over our backoff, within the same cap.
            let delay = failure
                .retry_after
                .map(|hint| hint.min(self.retry.max_backoff))
                .unwrap_or_else(|| self.retry.backoff(kind, attempts));
            if delay >= remaining {
                // Waiting would outlive the deadline: answer with what we know.
                return Err(failure);
            }
            let cost = match kind {
                RetryKind::Throttle => self.retry.throttle_retry_cost,
                RetryKind::Transient => self.retry.transient_retry_cost,
            };
            if !self.quota.try_spend(cost) {
                // Connect is failing for many callers: stop adding retries.
                self.metrics.upstream_attempt("retry_quota_exhausted");
                tracing::warn!(error = %failure.kind, "retry quota exhausted; not retrying");
                return Err(failure);
            }
            last_cost = Some(cost);
            self.metrics.retry();
            tracing::debug!(attempt = attempts, delay_ms = delay.as_millis() as u64, error = %failure.kind, "retrying MonitorContact");
            previous = Some(failure);
            tokio::time::sleep(delay).await;
        }
    }
}

fn parse_success(body: &[u8]) -> Option<(String, String)> {
    let doc: Value = serde_json::from_slice(body).ok()?;
    Some((
        doc.get("ContactId")?.as_str()?.to_owned(),
        doc.get("ContactArn")?.as_str()?.to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn error_type_from_header_with_suffix() {
        let h = headers(&[("x-amzn-errortype", "ThrottlingException:http://internal.amazon.com/")]);
        assert_eq!(error_type(&h, b""), "ThrottlingException");
    }

    #[test]
    fn error_type_from_body_type_with_namespace() {
        let body = br#"{"__type":"com.amazonaws.connect#ResourceNotFoundException","Message":"x"}"#;
        assert_eq!(error_type(&HeaderMap::new(), body), "ResourceNotFoundException");
    }

    #[test]
    fn error_type_from_body_code() {
        assert_eq!(
            error_type(&HeaderMap::new(), br#"{"code":"IdempotencyException"}"#),
            "IdempotencyException"
        );
        assert_eq!(error_type(&HeaderMap::new(), b"<html>"), "");
    }

    #[test]
    fn what_is_retried() {
        assert_eq!(retry_kind(429, ""), Some(RetryKind::Throttle));
        assert_eq!(retry_kind(400, "ThrottlingException"), Some(RetryKind::Throttle));
        assert_eq!(retry_kind(500, "InternalServiceException"), Some(RetryKind::Transient));
        assert_eq!(retry_kind(503, ""), Some(RetryKind::Transient));
        assert_eq!(retry_kind(501, ""), None);
        assert_eq!(retry_kind(404, "ResourceNotFoundException"), None);
        assert_eq!(retry_kind(402, "ServiceQuotaExceededException"), None);
    }

    #[test]
    fn backoff_is_capped_full_jitter() {
        let r = RetrySettings::new(3, Duration::from_secs(1));
        for attempt in 1..10 {
            assert!(r.backoff(RetryKind::Throttle, attempt) <= Duration::from_secs(20));
            assert!(r.backoff(RetryKind::Transient, attempt) <= Duration::from_millis(50) * 2u32.pow(attempt - 1));
        }
    }
}
