//! Connect's quotas as budgets (docs/configuration.md, `[connect.quotas]`):
//! every HTTP call to Connect first takes a token from its operation's
//! budget, per AWS account and region. A token within the request's
//! remaining time is waited for; a later one is refused at once, so the
//! caller gets 429 with `Retry-After` instead of Connect throttling everyone.
//! With `[shared]` the budget is one for the whole fleet, on the server;
//! without it (or while the server cannot be used) it is kept in process.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::endpoint::Route;
use super::operation::Operation;
use super::settings::QuotaSettings;
use crate::shared::{SharedStore, Token};
use crate::telemetry::metrics::Metrics;

/// The least time a token must leave for its call: a token later than the
/// deadline less this is refused at once, since a call made with less time
/// would mostly run out of it (a 504 instead of a 429 that says when to come back).
const LEAST_CALL_TIME: Duration = Duration::from_millis(250);

/// No token comes before the deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Exhausted {
    /// When the next token will be free.
    pub(crate) retry_after: Duration,
}

/// A token bucket kept as the theoretical arrival time of the next call (GCRA).
struct Gcra {
    interval: Duration,
    burst_tolerance: Duration,
    next: Instant,
}

/// A GCRA's spacing of `rate` calls per second, up to `burst` at once: the
/// interval between tokens and how far ahead of it a burst may run.
fn spacing(rate: f64, burst: u32) -> (Duration, Duration) {
    let interval = Duration::from_secs_f64(1.0 / rate);
    (interval, interval * burst.saturating_sub(1))
}

impl Gcra {
    /// `rate` calls per second on average, up to `burst` at once.
    fn new(rate: f64, burst: u32, now: Instant) -> Gcra {
        let (interval, burst_tolerance) = spacing(rate, burst);
        Gcra {
            interval,
            burst_tolerance,
            next: now,
        }
    }

    /// The same budget with no token left: the next comes after one interval.
    fn empty(rate: f64, burst: u32, now: Instant) -> Gcra {
        let mut gcra = Gcra::new(rate, burst, now);
        gcra.next = now + gcra.burst_tolerance + gcra.interval;
        gcra
    }

    /// Reserves the next token if it comes before `deadline`: how long to wait for it.
    fn reserve(&mut self, now: Instant, deadline: Instant) -> Result<Duration, Exhausted> {
        let tat = self.next.max(now);
        let allowed_at = tat.checked_sub(self.burst_tolerance).unwrap_or(now).max(now);
        if allowed_at >= deadline {
            return Err(Exhausted {
                retry_after: allowed_at - now,
            });
        }
        self.next = tat + self.interval;
        Ok(allowed_at - now)
    }
}

/// Which budget a call draws on: Connect's quotas are per account and region.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BudgetKey {
    /// The account of the instance's `role_arn`; `None`: the gateway's own.
    account: Option<String>,
    region: String,
    operation: Operation,
}

impl BudgetKey {
    fn of(route: &Route, operation: Operation) -> BudgetKey {
        BudgetKey {
            account: account(route).map(str::to_owned),
            region: route.region.clone(),
            operation,
        }
    }

    fn matches(&self, route: &Route, operation: Operation) -> bool {
        self.operation == operation && self.region == route.region && self.account.as_deref() == account(route)
    }
}

/// The account a route's calls count against: its role's, else `None`
/// (the gateway's own).
fn account(route: &Route) -> Option<&str> {
    route.role_arn.as_deref().and_then(account_of)
}

/// The account of an IAM role ARN (`arn:aws:iam::<account>:role/…`).
fn account_of(role_arn: &str) -> Option<&str> {
    role_arn.split(':').nth(4).filter(|a| !a.is_empty())
}

/// Budgets kept in this process, found by a short scan (a gateway serves a
/// handful of accounts and regions).
#[derive(Default)]
struct LocalBudgets(Vec<(BudgetKey, Gcra)>);

impl LocalBudgets {
    fn reserve(
        &mut self,
        route: &Route,
        operation: Operation,
        deadline: Instant,
        new: impl FnOnce(Instant) -> Gcra,
    ) -> Result<Duration, Exhausted> {
        let now = Instant::now();
        let at = match self.0.iter().position(|(k, _)| k.matches(route, operation)) {
            Some(at) => at,
            None => {
                self.0.push((BudgetKey::of(route, operation), new(now)));
                self.0.len() - 1
            }
        };
        self.0[at].1.reserve(now, deadline)
    }
}

/// Every budget this replica draws on.
pub(crate) struct Budgets {
    quotas: QuotaSettings,
    /// The budgets when no server is shared.
    local: Mutex<LocalBudgets>,
    shared: Option<Arc<SharedStore>>,
    /// While the shared server cannot be used: `1 / fallback_replicas` of
    /// each budget, started empty at each fallback (the count it began at).
    fallback: Mutex<(u64, LocalBudgets)>,
    metrics: Arc<Metrics>,
}

impl Budgets {
    pub(crate) fn new(quotas: QuotaSettings, shared: Option<Arc<SharedStore>>, metrics: Arc<Metrics>) -> Budgets {
        Budgets {
            quotas,
            local: Mutex::default(),
            shared,
            fallback: Mutex::default(),
            metrics,
        }
    }

    /// Takes a token for one call of `operation` on `route`, waiting for it
    /// when it comes early enough before `deadline` to make the call: how
    /// long it waited.
    pub(crate) async fn take(
        &self,
        route: &Route,
        operation: Operation,
        deadline: Instant,
    ) -> Result<Duration, Exhausted> {
        let last_useful = deadline.checked_sub(LEAST_CALL_TIME).unwrap_or(deadline);
        let reserved = self.reserve(route, operation, last_useful).await;
        match reserved {
            Ok(wait) => {
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                self.metrics.budget_waited(operation.name(), wait);
                Ok(wait)
            }
            Err(exhausted) => {
                self.metrics.budget_exhausted(operation.name());
                Err(exhausted)
            }
        }
    }

    async fn reserve(&self, route: &Route, operation: Operation, deadline: Instant) -> Result<Duration, Exhausted> {
        let budget = self.quotas.budget(operation);
        let Some(shared) = &self.shared else {
            let mut local = self.local.lock().expect("budget lock");
            return local.reserve(route, operation, deadline, |now| {
                Gcra::new(budget.rate, budget.burst, now)
            });
        };
        if shared.in_use() {
            let (interval, tolerance) = spacing(budget.rate, budget.burst);
            let account = account(route).unwrap_or("-");
            let key = shared.key(&["budget", account, &route.region, operation.name()]);
            // Strictly before the deadline, as in process.
            let longest = deadline
                .saturating_duration_since(Instant::now())
                .saturating_sub(Duration::from_micros(1));
            match shared.take_token(&key, interval, tolerance, longest).await {
                Ok(Token::After(wait)) => return Ok(wait),
                Ok(Token::NotBefore(retry_after)) => return Err(Exhausted { retry_after }),
                // The server failed this step: the replica has fallen back.
                Err(_) => {}
            }
        }
        let replicas = f64::from(shared.fallback_replicas());
        let (rate, burst) = (
            budget.rate / replicas,
            (budget.burst / shared.fallback_replicas()).max(1),
        );
        let mut fallback = self.fallback.lock().expect("budget lock");
        let count = shared.fallback_count();
        if fallback.0 != count {
            *fallback = (count, LocalBudgets::default());
        }
        fallback
            .1
            .reserve(route, operation, deadline, |now| Gcra::empty(rate, burst, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gcra(rate: f64, burst: u32) -> (Gcra, Instant) {
        let now = Instant::now();
        (Gcra::new(rate, burst, now), now)
    }

    #[test]
    fn a_burst_passes_at_once_then_tokens_are_spaced_by_the_rate() {
        let (mut budget, now) = gcra(10.0, 3);
        let deadline = now + Duration::from_secs(5);
        for _ in 0..3 {
            assert_eq!(budget.reserve(now, deadline), Ok(Duration::ZERO));
        }
        assert_eq!(budget.reserve(now, deadline), Ok(Duration::from_millis(100)));
        assert_eq!(budget.reserve(now, deadline), Ok(Duration::from_millis(200)));
    }

    #[test]
    fn a_token_past_the_deadline_is_refused_with_when_it_comes() {
        let (mut budget, now) = gcra(1.0, 1);
        assert_eq!(budget.reserve(now, now + Duration::from_secs(5)), Ok(Duration::ZERO));
        let refused = budget.reserve(now, now + Duration::from_millis(100)).unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_secs(1));
        // Nothing was reserved by the refusal.
        assert_eq!(
            budget.reserve(now, now + Duration::from_secs(5)),
            Ok(Duration::from_secs(1))
        );
    }

    #[test]
    fn a_fallback_budget_starts_empty() {
        let now = Instant::now();
        let mut budget = Gcra::empty(2.0, 5, now);
        assert_eq!(
            budget.reserve(now, now + Duration::from_secs(5)),
            Ok(Duration::from_millis(500))
        );
    }

    #[test]
    fn the_account_is_the_role_arns() {
        assert_eq!(account_of("arn:aws:iam::222233334444:role/x"), Some("222233334444"));
        assert_eq!(account_of("nonsense"), None);
    }
}
