//! The one client for every Connect operation: each attempt signed afresh
//! with the gateway's credentials, throttling/5xx/connection errors retried by
//! the SDK's standard mode, everything inside the request's deadline.

use std::error::Error;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Full, Limited};

use super::budget::Budgets;
use super::credentials::{CredentialsUnavailable, Signers, SourceIdentity};
use super::endpoint::Route;
use super::error::{ConnectError, ConnectErrorKind};
use super::operation::Operation;
use super::retry::{retry_after, RetryKind, RetryQuota, RetrySettings};
use super::signing::{self, SigningFailed};
use crate::http::client::HttpClient;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::traces;

const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// The header in which Connect names its request id.
pub(crate) const AWS_REQUEST_ID: &str = "x-amzn-requestid";

/// One call to one operation, before signing.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(crate) operation: Operation,
    /// Path and query, labels already percent-encoded.
    pub(crate) path_and_query: String,
    /// A JSON body; `None` for GETs, which carry neither body nor content type.
    pub(crate) body: Option<Bytes>,
    /// The supervisor whose session signs it; `None`: the route's role (or
    /// the gateway's own identity).
    pub(crate) signed_as: Option<SourceIdentity>,
}

impl Call {
    /// A lookup by id: a GET with no body.
    pub(crate) fn get(operation: Operation, path_and_query: String) -> Call {
        Call {
            operation,
            path_and_query,
            body: None,
            signed_as: None,
        }
    }

    /// A POST of a JSON body.
    pub(crate) fn post(operation: Operation, path_and_query: String, body: impl Into<Bytes>) -> Call {
        Call {
            operation,
            path_and_query,
            body: Some(body.into()),
            signed_as: None,
        }
    }

    /// The same call, signed in `who`'s session when given.
    pub(crate) fn signed_as(self, who: Option<SourceIdentity>) -> Call {
        Call { signed_as: who, ..self }
    }
}

/// What one request spent on Connect, for its audit line.
#[derive(Debug, Default)]
pub(crate) struct Spent {
    /// HTTP calls made for facts: each page and each retry (a fact from a
    /// cache, or fetched by another request, costs none).
    lookups: AtomicU32,
    /// Time spent waiting for budget tokens, in microseconds.
    budget_wait_micros: AtomicU64,
}

impl Spent {
    pub(crate) fn lookups(&self) -> u32 {
        self.lookups.load(Ordering::Relaxed)
    }

    pub(crate) fn budget_wait(&self) -> Duration {
        Duration::from_micros(self.budget_wait_micros.load(Ordering::Relaxed))
    }

    fn waited(&self, wait: Duration) {
        let micros = u64::try_from(wait.as_micros()).unwrap_or(u64::MAX);
        self.budget_wait_micros.fetch_add(micros, Ordering::Relaxed);
    }

    fn called(&self, operation: Operation) {
        if operation.looks_up().is_some() {
            self.lookups.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One request's lookups: the client, where they go, in which instance,
/// until when, and what they spent (for the audit).
#[derive(Clone, Copy)]
pub(crate) struct Lookup<'a> {
    pub(crate) client: &'a ConnectClient,
    pub(crate) route: &'a Route,
    pub(crate) instance_id: &'a str,
    pub(crate) deadline: Instant,
    pub(crate) spent: &'a Spent,
}

impl Lookup<'_> {
    /// Makes one lookup call (retried as any call), counting what it spent.
    pub(crate) async fn send(&self, call: &Call) -> Result<Reply, ConnectFailure> {
        self.client.send(self.route, call, self.deadline, self.spent).await
    }
}

/// A successful answer.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Bytes,
    pub(crate) aws_request_id: Option<String>,
    pub(crate) attempts: u32,
}

/// Why a call did not succeed; each kind keeps what caused it.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum FailureKind {
    #[error("Connect answered {} {}", .0.status, .0.name)]
    Connect(ConnectError),
    /// No answer: the connection, TLS, or reading the response failed.
    #[error("Connect could not be reached")]
    Unreachable(#[source] Arc<dyn Error + Send + Sync>),
    #[error("Connect answered with something that is not a {0} response")]
    BadResponse(Operation),
    #[error("the request deadline ran out")]
    Timeout,
    /// The operation's budget has no token before the deadline: not called.
    #[error("the {0} budget has no token before the request's deadline")]
    BudgetExhausted(Operation),
    #[error(transparent)]
    Credentials(#[from] CredentialsUnavailable),
    #[error(transparent)]
    Signing(#[from] SigningFailed),
}

impl FailureKind {
    /// Whether the gateway itself is at fault (its credentials, its
    /// signing), not Connect or STS.
    pub(crate) fn is_the_gateways(&self) -> bool {
        match self {
            FailureKind::Credentials(c) => !c.is_sts(),
            FailureKind::Signing(_) => true,
            _ => false,
        }
    }
}

/// A failed call and what we know of it, for the answer and the audit.
#[derive(Debug, Clone, thiserror::Error)]
#[error("connect:{operation} failed")]
pub(crate) struct ConnectFailure {
    pub(crate) operation: Operation,
    #[source]
    pub(crate) kind: FailureKind,
    pub(crate) upstream_status: Option<u16>,
    pub(crate) aws_request_id: Option<String>,
    pub(crate) attempts: u32,
    pub(crate) retry_after: Option<Duration>,
}

impl ConnectFailure {
    /// A 2xx whose body is not what the operation returns.
    pub(crate) fn bad_response(operation: Operation, reply: &Reply) -> ConnectFailure {
        ConnectFailure {
            operation,
            kind: FailureKind::BadResponse(operation),
            upstream_status: Some(reply.status),
            aws_request_id: reply.aws_request_id.clone(),
            attempts: reply.attempts,
            retry_after: None,
        }
    }
}

/// One attempt's result: an answer, or a failure that may be retried.
enum Attempt {
    Answered {
        status: u16,
        headers: HeaderMap,
        body: Bytes,
    },
    Failed(FailureKind),
}

/// The Connect client shared by every request.
pub(crate) struct ConnectClient {
    http: HttpClient,
    signers: Signers,
    retry: RetrySettings,
    quota: RetryQuota,
    /// Connect's quotas, as budgets every call draws on.
    budgets: Budgets,
    metrics: Arc<Metrics>,
}

impl ConnectClient {
    pub(crate) fn new(
        http: HttpClient,
        signers: Signers,
        retry: RetrySettings,
        budgets: Budgets,
        metrics: Arc<Metrics>,
    ) -> Self {
        ConnectClient {
            http,
            signers,
            quota: RetryQuota::new(retry.quota_capacity),
            retry,
            budgets,
            metrics,
        }
    }

    #[cfg(feature = "test-util")]
    pub(crate) fn quota(&self) -> &RetryQuota {
        &self.quota
    }

    /// Whose credentials sign which call.
    pub(crate) fn signers(&self) -> &Signers {
        &self.signers
    }

    async fn attempt(&self, route: &Route, call: &Call, deadline: Instant) -> Attempt {
        let role = route.role_arn.as_deref();
        let credentials = async {
            match &call.signed_as {
                Some(who) => self.signers.get_as(who).await,
                None => self.signers.get(role).await,
            }
        };
        let credentials = match tokio::time::timeout_at(deadline.into(), credentials).await {
            Err(_) => return Attempt::Failed(FailureKind::Timeout),
            Ok(Err(e)) => return Attempt::Failed(e.into()),
            Ok(Ok(c)) => c,
        };
        let signed = signing::signed_request(
            route,
            &call.operation.method(),
            &call.path_and_query,
            call.body.clone(),
            &credentials,
            SystemTime::now(),
        );
        let request = match signed {
            Ok(r) => r.map(Full::new),
            Err(e) => return Attempt::Failed(e.into()),
        };
        let budget = self
            .retry
            .attempt_timeout
            .min(deadline.saturating_duration_since(Instant::now()));
        let started = Instant::now();
        let exchange = async {
            let unreachable = |e: Box<dyn Error + Send + Sync>| FailureKind::Unreachable(Arc::from(e));
            let response = self.http.request(request).await.map_err(|e| unreachable(e.into()))?;
            let status = response.status().as_u16();
            let (parts, incoming) = response.into_parts();
            let body = Limited::new(incoming, MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(unreachable)?
                .to_bytes();
            Ok::<_, FailureKind>((status, parts.headers, body))
        };
        let result = tokio::time::timeout(budget, exchange).await;
        self.metrics.upstream_duration(started.elapsed());
        match result {
            Err(_) => Attempt::Failed(FailureKind::Timeout),
            Ok(Err(kind)) => Attempt::Failed(kind),
            Ok(Ok((status, headers, body))) => Attempt::Answered { status, headers, body },
        }
    }

    /// Calls an operation, retrying what is safe to retry until `deadline`;
    /// each attempt first takes a token from the operation's budget. What it
    /// spent is added to `spent`.
    pub(crate) async fn send(
        &self,
        route: &Route,
        call: &Call,
        deadline: Instant,
        spent: &Spent,
    ) -> Result<Reply, ConnectFailure> {
        let operation = call.operation;
        let mut attempts = 0;
        let mut last_cost = None;
        let mut previous: Option<ConnectFailure> = None;
        loop {
            match self.budgets.take(route, operation, deadline).await {
                Ok(waited) => {
                    spent.waited(waited);
                    traces::budget_waited(operation.name(), waited);
                }
                Err(exhausted) => {
                    // No token before the deadline: say when to come back, or
                    // answer with what the last attempt got.
                    return Err(previous.unwrap_or(ConnectFailure {
                        operation,
                        kind: FailureKind::BudgetExhausted(operation),
                        upstream_status: None,
                        aws_request_id: None,
                        attempts,
                        retry_after: Some(exhausted.retry_after),
                    }));
                }
            }
            attempts += 1;
            spent.called(operation);
            let (failure, retry) = match self.attempt(route, call, deadline).await {
                Attempt::Answered { status, headers, body } => {
                    let aws_request_id = headers
                        .get(AWS_REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    if (200..300).contains(&status) {
                        self.metrics.upstream_attempt(operation.name(), "success");
                        self.quota.refund(last_cost);
                        return Ok(Reply {
                            status,
                            body,
                            aws_request_id,
                            attempts,
                        });
                    }
                    let error = ConnectError::parse(status, &headers, &body);
                    let retry = RetryKind::of(error.kind);
                    self.metrics.upstream_attempt(
                        operation.name(),
                        match error.kind {
                            ConnectErrorKind::Throttling => "throttled",
                            ConnectErrorKind::ServerError => "server_error",
                            _ => "client_error",
                        },
                    );
                    let failure = ConnectFailure {
                        operation,
                        kind: FailureKind::Connect(error),
                        upstream_status: Some(status),
                        aws_request_id,
                        attempts,
                        retry_after: retry_after(&headers),
                    };
                    (failure, retry)
                }
                Attempt::Failed(kind) => {
                    let (retry, outcome) = match &kind {
                        FailureKind::Timeout => (Some(RetryKind::Transient), "timeout"),
                        FailureKind::Unreachable(_) => (Some(RetryKind::Transient), "connection_error"),
                        _ => (None, "not_sent"),
                    };
                    self.metrics.upstream_attempt(operation.name(), outcome);
                    let failure = ConnectFailure {
                        operation,
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
                return Err(ConnectFailure {
                    kind: FailureKind::Timeout,
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
            let cost = self.retry.cost(kind);
            if !self.quota.try_spend(cost) {
                // Connect is failing for many callers: stop adding retries.
                self.metrics.upstream_attempt(operation.name(), "retry_quota_exhausted");
                tracing::warn!(%operation, error = %crate::telemetry::error_chain(&failure.kind), "retry quota exhausted; not retrying");
                return Err(failure);
            }
            last_cost = Some(cost);
            self.metrics.retry();
            tracing::debug!(%operation, attempt = attempts, delay_ms = delay.as_millis() as u64, error = %crate::telemetry::error_chain(&failure.kind), "retrying");
            previous = Some(failure);
            tokio::time::sleep(delay).await;
        }
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
