//! The optional local limiter in front of Connect's MonitorContact quota
//! (2/s, burst 5 per account and region by default): callers queue briefly
//! inside their deadline instead of being bounced by Connect.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A token bucket kept as the theoretical arrival time of the next call (GCRA).
pub(crate) struct RateLimiter {
    interval: Duration,
    burst_tolerance: Duration,
    next: Mutex<Instant>,
}

/// The caller would have to wait past its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WouldExceedDeadline {
    pub(crate) retry_after: Duration,
}

impl RateLimiter {
    /// `rate` calls per second on average, up to `burst` at once.
    pub(crate) fn new(rate: f64, burst: u32) -> Self {
        let interval = Duration::from_secs_f64(1.0 / rate);
        RateLimiter {
            interval,
            burst_tolerance: interval * burst.saturating_sub(1),
            next: Mutex::new(Instant::now()),
        }
    }

    /// Reserves the next slot and waits for it, or refuses at once when the
    /// slot comes after `deadline` (nothing is reserved then).
    pub(crate) async fn acquire(&self, deadline: Instant) -> Result<(), WouldExceedDeadline> {
        let wait = {
            let mut next = self.next.lock().expect("limiter lock");
            let now = Instant::now();
            let tat = (*next).max(now);
            let allowed_at = tat.checked_sub(self.burst_tolerance).unwrap_or(now).max(now);
            if allowed_at >= deadline {
                return Err(WouldExceedDeadline {
                    retry_after: allowed_at - now,
                });
            }
            *next = tat + self.interval;
            allowed_at - now
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn burst_passes_at_once_then_calls_are_spaced() {
        let limiter = RateLimiter::new(10.0, 3);
        let deadline = Instant::now() + Duration::from_secs(5);
        let started = Instant::now();
        for _ in 0..3 {
            limiter.acquire(deadline).await.unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_millis(50),
            "the burst is not delayed"
        );
        limiter.acquire(deadline).await.unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(90),
            "the fourth waits for its slot"
        );
    }

    #[tokio::test]
    async fn a_slot_past_the_deadline_is_refused_with_retry_after() {
        let limiter = RateLimiter::new(1.0, 1);
        limiter.acquire(Instant::now() + Duration::from_secs(5)).await.unwrap();
        let refused = limiter
            .acquire(Instant::now() + Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(refused.retry_after > Duration::from_millis(800), "{refused:?}");
    }
}
