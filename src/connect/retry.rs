//! The AWS SDK's standard retry mode: which failures are retried, full-jitter
//! exponential backoff, Connect's own retry hints, and the retry quota that
//! keeps an outage from multiplying the load on Connect.

use std::time::Duration;

use http::HeaderMap;

use super::error::ConnectErrorKind;

/// Retry and timeout settings of calls to Connect.
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
    pub fn backoff(&self, kind: RetryKind, attempt: u32) -> Duration {
        let base = match kind {
            RetryKind::Throttle => self.throttle_base,
            RetryKind::Transient => self.transient_base,
        };
        let ceiling = base
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.max_backoff);
        ceiling.mul_f64(fastrand::f64())
    }

    /// What a retry of this kind costs from the quota.
    pub fn cost(&self, kind: RetryKind) -> u32 {
        match kind {
            RetryKind::Throttle => self.throttle_retry_cost,
            RetryKind::Transient => self.transient_retry_cost,
        }
    }
}

/// Why a failed attempt may be tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryKind {
    Throttle,
    Transient,
}

impl RetryKind {
    /// Whether (and how) an error Connect answered is retried.
    pub fn of(kind: ConnectErrorKind) -> Option<RetryKind> {
        match kind {
            ConnectErrorKind::Throttling => Some(RetryKind::Throttle),
            ConnectErrorKind::ServerError => Some(RetryKind::Transient),
            _ => None,
        }
    }
}

/// The retry quota shared by all requests: each retry spends tokens, each
/// success gives some back, so a Connect outage does not multiply load.
pub(crate) struct RetryQuota {
    capacity: u32,
    available: std::sync::Mutex<u32>,
}

impl RetryQuota {
    pub(crate) fn new(capacity: u32) -> Self {
        RetryQuota {
            capacity,
            available: std::sync::Mutex::new(capacity),
        }
    }

    pub(crate) fn try_spend(&self, cost: u32) -> bool {
        let mut available = self.available.lock().expect("quota lock");
        if *available < cost {
            return false;
        }
        *available -= cost;
        true
    }

    /// A success refunds the cost of its last retry, or 1 when it needed none.
    pub(crate) fn refund(&self, last_cost: Option<u32>) {
        let mut available = self.available.lock().expect("quota lock");
        *available = (*available + last_cost.unwrap_or(1)).min(self.capacity);
    }

    #[cfg(feature = "test-util")]
    pub(crate) fn available(&self) -> u32 {
        *self.available.lock().expect("quota lock")
    }
}

/// `Retry-After` in seconds, or Connect's `x-amz-retry-after` in milliseconds.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = text("x-amz-retry-after").and_then(|v| v.parse::<u64>().ok()) {
        return Some(Duration::from_millis(ms));
    }
    text("retry-after")
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_retried() {
        use ConnectErrorKind as K;
        assert_eq!(RetryKind::of(K::Throttling), Some(RetryKind::Throttle));
        assert_eq!(RetryKind::of(K::ServerError), Some(RetryKind::Transient));
        for kind in [
            K::NotFound,
            K::QuotaExceeded,
            K::InvalidRequest,
            K::Other,
            K::IdentityRefused,
        ] {
            assert_eq!(RetryKind::of(kind), None, "{kind:?}");
        }
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
