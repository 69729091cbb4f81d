//! Building the gateway from settings and serving it: the API and admin
//! listeners, HTTP/1.1 limits, background refreshes and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use aws_credential_types::provider::SharedCredentialsProvider;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use crate::admin;
use crate::audit::AuditSink;
use crate::authentication::Authenticator;
use crate::config::Settings;
use crate::cors::Cors;
use crate::credentials::{CredentialsCache, DEFAULT_REFRESH_MARGIN};
use crate::endpoint::Router;
use crate::http_client::{self, Egress};
use crate::jwks::IssuerKeys;
use crate::metrics::Metrics;
use crate::pipeline::{Body, Gateway};
use crate::rate_limit::RateLimiter;
use crate::tls::ReloadableTls;
use crate::upstream::{RetrySettings, Upstream};

/// How long start-up waits for first keys and credentials before serving
/// anyway (not ready) and letting the background tasks keep trying.
const STARTUP_WAIT: Duration = Duration::from_secs(5);
/// Request head limits (start line and headers together).
const MAX_HEADERS: usize = 64;
const MAX_HEADER_BYTES: usize = 32 * 1024;

/// What the gateway is built from besides its settings; tests swap parts.
pub struct Dependencies {
    /// The credentials provider; `None` means the standard AWS chain.
    pub credentials: Option<SharedCredentialsProvider>,
    pub credentials_margin: Duration,
    /// Retry settings; `None` means the config's with the SDK's backoff.
    pub retry: Option<RetrySettings>,
    /// The audit sink; `None` means the config's `[audit] file`.
    pub audit: Option<Arc<AuditSink>>,
    /// Proxy and extra CAs for outbound calls; `None` means from the environment.
    pub egress: Option<Egress>,
    /// Reads endpoint variables (`AWS_ENDPOINT_URL_CONNECT`, …); the process
    /// environment by default.
    pub env: fn(&str) -> Option<String>,
}

impl Default for Dependencies {
    fn default() -> Self {
        Dependencies {
            credentials: None,
            credentials_margin: DEFAULT_REFRESH_MARGIN,
            retry: None,
            audit: None,
            egress: None,
            env: |k| std::env::var(k).ok(),
        }
    }
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("cannot open the audit file {path}: {source}")]
    Audit { path: String, source: std::io::Error },
}

/// A running gateway: its addresses and the means to stop it.
pub struct RunningGateway {
    pub api_addr: SocketAddr,
    pub admin_addr: Option<SocketAddr>,
    pub gateway: Arc<Gateway>,
    shutdown: watch::Sender<bool>,
    served: JoinHandle<()>,
    background: Vec<JoinHandle<()>>,
}

impl RunningGateway {
    /// Stops accepting, marks `/readyz` 503, lets in-flight requests finish
    /// within `grace`, then stops the admin listener and background tasks.
    pub async fn shutdown(self, grace: Duration) {
        self.gateway.draining.store(true, Ordering::SeqCst);
        let _ = self.shutdown.send(true);
        let deadline = tokio::time::Instant::now() + grace;
        let _ = tokio::time::timeout_at(deadline + Duration::from_secs(1), self.served).await;
        // Requests whose caller hung up are still finishing their Connect call:
        // wait for them too (all admission permits back), within the same grace.
        let all = u32::try_from(self.gateway.max_in_flight).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout_at(deadline, self.gateway.in_flight.acquire_many(all)).await;
        for task in self.background {
            task.abort();
        }
    }
}

/// The standard AWS credentials chain (environment, profile/SSO, web
/// identity, container and instance metadata).
pub async fn default_credentials(region: Option<String>) -> SharedCredentialsProvider {
    let mut chain = aws_config::default_provider::credentials::DefaultCredentialsChain::builder();
    if let Some(region) = region {
        chain = chain.region(aws_config::Region::new(region));
    }
    SharedCredentialsProvider::new(chain.build().await)
}

/// Builds the gateway and starts serving on the configured listeners.
pub async fn start(settings: &Settings, deps: Dependencies) -> Result<RunningGateway, StartError> {
    let api = bind(settings.server.listen).await?;
    let admin = match settings.server.admin_listen {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    start_on(settings, deps, api, admin).await
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen { addr, source })
}

/// Like [`start`], on listeners the caller already bound.
pub async fn start_on(
    settings: &Settings,
    deps: Dependencies,
    api: TcpListener,
    admin: Option<TcpListener>,
) -> Result<RunningGateway, StartError> {
    let metrics = Arc::new(Metrics::new());
    let egress = deps
        .egress
        .unwrap_or_else(|| Egress::from_env(|k| std::env::var(k).ok()));
    let client = http_client::build_with(&egress);
    let tls = match &settings.tls {
        Some(files) => Some(Arc::new(ReloadableTls::new(files.clone()).map_err(StartError::Config)?)),
        None => None,
    };
    let issuers: Vec<Arc<IssuerKeys>> = settings
        .issuers
        .iter()
        .map(|i| Arc::new(IssuerKeys::new(i.clone(), client.clone(), metrics.clone())))
        .collect();
    let provider = match deps.credentials {
        Some(p) => p,
        None => default_credentials(settings.default_region(|k| std::env::var(k).ok())).await,
    };
    let credentials = Arc::new(CredentialsCache::new(provider, deps.credentials_margin));
    let retry = deps
        .retry
        .unwrap_or_else(|| RetrySettings::new(settings.connect.max_attempts, settings.connect.attempt_timeout.0));
    let audit = match deps.audit {
        Some(a) => a,
        None => Arc::new(
            AuditSink::open(&settings.audit_file).map_err(|source| StartError::Audit {
                path: settings.audit_file.clone(),
                source,
            })?,
        ),
    };
    let router = Router::new(settings, deps.env).map_err(StartError::Config)?;
    tracing::info!(endpoint = %router.describe(), "routing MonitorContact calls");

    let gateway = Arc::new(Gateway {
        authenticator: Authenticator::new(issuers.clone(), settings.leeway),
        policy: RwLock::new(Arc::new(settings.policy.clone())),
        policy_file: settings.policy_file.clone(),
        draining: AtomicBool::new(false),
        user_id_claim: settings.user_id_claim.clone(),
        router,
        upstream: Upstream::new(
            client,
            credentials.clone(),
            retry,
            settings
                .connect
                .max_rate
                .map(|rate| RateLimiter::new(rate, settings.connect.burst.unwrap_or_else(|| rate.ceil() as u32))),
            metrics.clone(),
        ),
        audit,
        metrics,
        in_flight: Arc::new(Semaphore::new(settings.server.max_in_flight)),
        max_in_flight: settings.server.max_in_flight,
        cors: Cors::new(settings.cors.allowed_origins.clone(), settings.cors.max_age.0),
        max_body_bytes: settings.server.max_body_bytes,
        request_timeout: settings.server.request_timeout.0,
    });

    // First keys and credentials, concurrently and bounded; then keep them fresh.
    let first_keys = futures_join_all(issuers.iter().map(|i| {
        let i = i.clone();
        async move {
            let _ = i.refresh().await;
        }
    }));
    let first_credentials = async {
        if let Err(e) = credentials.refresh().await {
            tracing::warn!(error = %e, "no AWS credentials yet; not ready");
        }
    };
    let _ = tokio::time::timeout(STARTUP_WAIT, async { tokio::join!(first_keys, first_credentials) }).await;
    let mut background: Vec<JoinHandle<()>> = issuers.iter().map(|i| tokio::spawn(i.clone().refresh_loop())).collect();
    background.push(tokio::spawn(credentials.clone().refresh_loop()));
    background.push(tokio::spawn(watch_policy_file(gateway.clone())));
    #[cfg(unix)]
    background.push(tokio::spawn(reload_on_sighup(gateway.clone(), tls.clone())));

    let api_addr = api.local_addr().map_err(|source| StartError::Listen {
        addr: settings.server.listen,
        source,
    })?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let grace = settings.server.shutdown_grace.0;
    let header_read_timeout = settings.server.header_read_timeout.0;

    let admin_addr = match admin {
        Some(listener) => {
            let addr = listener.local_addr().ok();
            let g = gateway.clone();
            // The admin listener outlives the API drain, so probes see `/readyz` 503
            // until the end; it is stopped with the background tasks.
            background.push(tokio::spawn(serve_forever(listener, None, move |req| {
                admin::handle(g.clone(), req)
            })));
            addr
        }
        None => None,
    };
    let g = gateway.clone();
    let served = tokio::spawn(serve(
        api,
        header_read_timeout,
        shutdown_rx,
        grace,
        tls.clone(),
        move |req| g.clone().handle(req),
    ));
    let admin_text = admin_addr.map_or_else(|| "disabled".to_string(), |a| a.to_string());
    tracing::info!(listen = %api_addr, admin = %admin_text, version = env!("CARGO_PKG_VERSION"), "connect-monitor-gateway serving");
    Ok(RunningGateway {
        api_addr,
        admin_addr,
        gateway,
        shutdown,
        served,
        background,
    })
}

/// Runs futures concurrently and waits for all (a tiny join_all, to avoid a dependency).
async fn futures_join_all<F: Future<Output = ()> + Send + 'static>(futures: impl Iterator<Item = F>) {
    let tasks: Vec<JoinHandle<()>> = futures.map(tokio::spawn).collect();
    for t in tasks {
        let _ = t.await;
    }
}

/// Accepts HTTP/1.1 connections until shutdown, then drains within `grace`.
/// HTTP/1 only: `Upgrade: h2c` is never honoured.
async fn serve<F, Fut, E>(
    listener: TcpListener,
    header_read_timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
    tls: Option<Arc<ReloadableTls>>,
    handler: F,
) where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Body>, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        // Room for a large JWT, not for header floods: 431 beyond either limit.
        .max_headers(MAX_HEADERS)
        .max_header_size(MAX_HEADER_BYTES);
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _peer) = match accepted {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors and the like: pause instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let (handler, http, watcher, tls) = (handler.clone(), http.clone(), graceful.watcher(), tls.clone());
                tokio::spawn(async move {
                    let served = match tls {
                        None => watcher.watch(http.serve_connection(TokioIo::new(stream), service_fn(handler))).await,
                        Some(tls) => {
                            // The handshake counts against the header read timeout too.
                            let accepted = tokio::time::timeout(header_read_timeout, tls.acceptor().accept(stream)).await;
                            let Ok(Ok(stream)) = accepted else {
                                tracing::debug!("TLS handshake failed or timed out");
                                return;
                            };
                            watcher.watch(http.serve_connection(TokioIo::new(stream), service_fn(handler))).await
                        }
                    };
                    if let Err(e) = served {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!("shutdown grace ran out with requests still in flight");
    }
}

/// Serves a handler until the task is dropped (the admin listener and the
/// in-process stand-ins), over TLS when given.
pub async fn serve_forever<F, Fut, E>(listener: TcpListener, tls: Option<Arc<ReloadableTls>>, handler: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Body>, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
{
    let (_keep_open, never) = watch::channel(false);
    serve(listener, Duration::from_secs(30), never, Duration::ZERO, tls, handler).await;
}

/// How often the policy file is checked for changes.
const POLICY_POLL: Duration = Duration::from_secs(2);

/// Re-reads the policy when its file changes (modification time or size).
async fn watch_policy_file(gateway: Arc<Gateway>) {
    let stamp = |path: &std::path::Path| std::fs::metadata(path).ok().map(|m| (m.modified().ok(), m.len()));
    let mut last = stamp(&gateway.policy_file);
    loop {
        tokio::time::sleep(POLICY_POLL).await;
        let now = stamp(&gateway.policy_file);
        if now != last {
            last = now;
            gateway.reload_policy();
        }
    }
}

/// SIGHUP: re-read the policy and reopen the audit file (log rotation).
#[cfg(unix)]
async fn reload_on_sighup(gateway: Arc<Gateway>, tls: Option<Arc<ReloadableTls>>) {
    let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; reload by editing the policy file");
        return;
    };
    while hangup.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the policy and reopening the audit file");
        gateway.reload_policy();
        if let Err(e) = gateway.audit.reopen() {
            tracing::error!(error = %e, "the audit file could not be reopened; still writing to the old one");
        }
        if let Some(tls) = &tls {
            match tls.reload() {
                Ok(()) => tracing::info!("TLS certificates reloaded"),
                Err(e) => tracing::error!(error = %e, "new TLS certificates refused; the previous ones stay in force"),
            }
        }
    }
}

/// Resolves when SIGTERM (what orchestrators send) or SIGINT arrives.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
