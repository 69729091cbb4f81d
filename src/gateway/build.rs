//! The composition root: builds the gateway from its settings (plus the parts
//! tests swap), starts the listeners and the background work (key and
//! credential refresh, policy reload, SIGHUP), and stops it all gracefully.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_credential_types::provider::SharedCredentialsProvider;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use super::Gateway;
use crate::auth::jwks::IssuerKeys;
use crate::auth::token::Authenticator;
use crate::authz::cache::FactCaches;
use crate::authz::Authorizer;
use crate::config::Settings;
use crate::connect::budget::Budgets;
use crate::connect::client::ConnectClient;
use crate::connect::credentials::{
    assume_role_provider, CredentialsCache, Signers, StsEndpoint, SupervisorSessions, DEFAULT_REFRESH_MARGIN,
};
use crate::connect::retry::RetrySettings;
use crate::http::admin;
use crate::http::client::{self as http_client, Egress, HttpClient};
use crate::http::server::{serve, Listening};
use crate::http::tls::ReloadableTls;
use crate::shared::SharedStore;
use crate::telemetry::audit::AuditSink;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::traces::Traces;

/// How long start-up waits for first keys and credentials before serving
/// anyway (not ready) and letting the background tasks keep trying.
const STARTUP_WAIT: Duration = Duration::from_secs(5);
/// The admin listener's head timeout: probes and scrapes are local and quick,
/// and it keeps the value it has always had.
const ADMIN_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the policy file is checked for changes.
const POLICY_POLL: Duration = Duration::from_secs(2);

/// What the gateway is built from besides its settings; tests swap parts.
pub struct Dependencies {
    /// The credentials provider; `None` means the standard AWS chain.
    pub credentials: Option<SharedCredentialsProvider>,
    pub credentials_margin: Duration,
    /// Retry settings; `None` means the config's with the SDK's backoff.
    pub retry: Option<RetrySettings>,
    /// The audit sink; `None` means the config's `[audit] file`.
    pub audit: Option<Arc<AuditSink>>,
    /// Proxy and extra CAs for outbound calls; `None` means from the
    /// environment the settings were loaded with.
    pub egress: Option<Egress>,
    /// Where STS is, for assuming instances' roles; `None` means the SDK's
    /// own choice (regional STS, or `AWS_ENDPOINT_URL_STS`).
    pub sts_endpoint: Option<String>,
    /// Called with every validated request before it is decided: lets a test
    /// make a request's handling panic.
    #[cfg(feature = "test-util")]
    pub panic_hook: Option<PanicHook>,
}

/// A test's hook into the request path (see [`Dependencies::panic_hook`]).
#[cfg(feature = "test-util")]
pub type PanicHook = Arc<dyn Fn(&crate::connect::monitor_request::MonitorRequest) + Send + Sync>;

impl Default for Dependencies {
    fn default() -> Self {
        Dependencies {
            credentials: None,
            credentials_margin: DEFAULT_REFRESH_MARGIN,
            retry: None,
            audit: None,
            egress: None,
            sts_endpoint: None,
            #[cfg(feature = "test-util")]
            panic_hook: None,
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
    // Read by the tests (`test-util`); the binary learns them from the log.
    #[cfg_attr(not(feature = "test-util"), allow(dead_code))]
    pub api_addr: SocketAddr,
    #[cfg_attr(not(feature = "test-util"), allow(dead_code))]
    pub admin_addr: Option<SocketAddr>,
    gateway: Arc<Gateway>,
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
        // Their spans, within what is left of the grace (a second at least).
        if let Some(traces) = &self.gateway.traces {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            traces.shutdown(left.max(Duration::from_secs(1))).await;
        }
        for task in self.background {
            task.abort();
        }
    }
}

/// What tests look at inside a running gateway, and the reloads they trigger.
#[cfg(feature = "test-util")]
impl RunningGateway {
    /// How many verified tokens are kept.
    pub fn verified_tokens_kept(&self) -> usize {
        self.gateway.authenticator.verified_tokens().len()
    }

    /// What is left of the retry quota.
    pub fn retry_quota_available(&self) -> u32 {
        self.gateway.connect.quota().available()
    }

    /// The generation of issuer `i`'s key set in force (0: none fetched yet).
    pub fn issuer_key_generation(&self, i: usize) -> u64 {
        self.gateway.authenticator.issuers()[i].key_generation()
    }

    /// Whether issuer `i` has keys.
    pub fn issuer_has_keys(&self, i: usize) -> bool {
        self.gateway.authenticator.issuers()[i].has_keys()
    }

    /// Fetches issuer `i`'s keys now, as the scheduled refresh does.
    pub async fn refresh_issuer_keys(&self, i: usize) -> bool {
        self.gateway.authenticator.issuers()[i].refresh().await.is_ok()
    }

    /// Re-reads the policy file, as a change of it does.
    pub fn reload_policy(&self) -> bool {
        self.gateway.reload_policy()
    }

    /// What SIGHUP does to the request path.
    pub fn sighup(&self) {
        self.gateway.on_sighup()
    }
}

/// The standard AWS credentials chain (environment, profile/SSO, web
/// identity, container and instance metadata).
pub(crate) async fn default_credentials(region: Option<String>) -> SharedCredentialsProvider {
    let mut chain = aws_config::default_provider::credentials::DefaultCredentialsChain::builder();
    if let Some(region) = region {
        chain = chain.region(aws_config::Region::new(region));
    }
    SharedCredentialsProvider::new(chain.build().await)
}

/// The credentials calls are signed with: the gateway's own (`base`), for
/// each instance's `role_arn` that role, assumed with `base`, and for an
/// instance with `source_identity_claim` its supervisors' sessions of that
/// role, asked of STS over `http`.
pub(crate) async fn signers(
    settings: &Settings,
    base: SharedCredentialsProvider,
    margin: Duration,
    sts_endpoint: Option<&str>,
    http: &HttpClient,
) -> Signers {
    let own = Arc::new(CredentialsCache::new(base.clone(), margin));
    let mut roles = HashMap::new();
    for (role, region) in settings.connect.roles() {
        let provider = assume_role_provider(&role, &region, base.clone(), sts_endpoint).await;
        roles.insert(Arc::from(role.arn), Arc::new(CredentialsCache::new(provider, margin)));
    }
    let signers = Signers::with_roles(own.clone(), roles);
    let supervised = settings.connect.source_identity_instances();
    if supervised.is_empty() {
        return signers;
    }
    // Where the SDK's own STS calls would go: the same override variables.
    let endpoint = sts_endpoint
        .or_else(|| settings.env.get("AWS_ENDPOINT_URL_STS"))
        .or_else(|| settings.env.get("AWS_ENDPOINT_URL"));
    let endpoint = StsEndpoint::from_override(endpoint);
    if let StsEndpoint::Invalid(problem) = &endpoint {
        tracing::error!(%problem, "the STS endpoint override is not an http(s) URL; supervisors' sessions will fail");
    }
    signers.with_supervisors(SupervisorSessions::new(supervised, own, http.clone(), endpoint, margin))
}

/// A Connect client on the gateway's own credentials (the standard chain, and
/// the instances' roles) and settings, for `explain --live`: the same lookups
/// the gateway would make.
pub(crate) async fn lookup_client(settings: &Settings) -> ConnectClient {
    let egress = Egress::from_env(|k| settings.env.get(k).map(str::to_owned));
    let provider = default_credentials(settings.connect.default_region.clone()).await;
    let metrics = Arc::new(Metrics::new());
    let http = http_client::build_with(&egress);
    ConnectClient::new(
        http.clone(),
        signers(settings, provider, DEFAULT_REFRESH_MARGIN, None, &http).await,
        RetrySettings::new(settings.connect.max_attempts, settings.connect.attempt_timeout),
        Budgets::new(settings.connect.quotas.clone(), None, metrics.clone()),
        metrics,
    )
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
        .unwrap_or_else(|| Egress::from_env(|k| settings.env.get(k).map(str::to_owned)));
    let client = http_client::build_with(&egress);
    let tls = match &settings.server.tls {
        Some(files) => Some(Arc::new(ReloadableTls::new(files.clone()).map_err(StartError::Config)?)),
        None => None,
    };
    let issuers: Vec<Arc<IssuerKeys>> = settings
        .auth
        .issuers
        .iter()
        .map(|i| Arc::new(IssuerKeys::new(i.clone(), client.clone(), metrics.clone())))
        .collect();
    let provider = match deps.credentials {
        Some(p) => p,
        None => default_credentials(settings.connect.default_region.clone()).await,
    };
    let signers = signers(
        settings,
        provider,
        deps.credentials_margin,
        deps.sts_endpoint.as_deref(),
        &client,
    )
    .await;
    let credentials: Vec<Arc<CredentialsCache>> = signers.caches().cloned().collect();
    let retry = deps
        .retry
        .unwrap_or_else(|| RetrySettings::new(settings.connect.max_attempts, settings.connect.attempt_timeout));
    let audit = match deps.audit {
        Some(a) => a,
        None => Arc::new(
            AuditSink::open_with(&settings.audit_file, settings.audit_chain).map_err(|source| StartError::Audit {
                path: settings.audit_file.clone(),
                source,
            })?,
        ),
    };
    if let Some(problem) = &settings.connect.undefined_profile {
        tracing::warn!(%problem, "the AWS profile cannot be found; credentials must come from elsewhere");
    }
    let authorizer = Authorizer::new(&settings.authz, &settings.connect);
    tracing::info!(endpoint = %authorizer.router().describe(), "routing calls to Connect");
    let shared = match &settings.shared {
        Some(s) => Some(Arc::new(
            SharedStore::new(s, metrics.clone()).map_err(|e| StartError::Config(e.to_string()))?,
        )),
        None => None,
    };
    if let Some(s) = &settings.shared {
        tracing::info!(server = %s.server(), "budgets and facts shared with the fleet");
        for warning in s.warnings() {
            tracing::warn!("{warning}");
        }
    }
    let budgets = Budgets::new(settings.connect.quotas.clone(), shared.clone(), metrics.clone());
    // Exported from this runtime through the same outbound client.
    let traces = match &settings.traces {
        Some(t) => {
            Some(Traces::start(t, client.clone(), metrics.clone()).map_err(|e| StartError::Config(e.to_string()))?)
        }
        None => None,
    };

    let gateway = Arc::new(Gateway {
        authenticator: Authenticator::new(issuers.clone(), settings.auth.leeway),
        authorizer,
        connect: ConnectClient::new(client, signers, retry, budgets, metrics.clone()),
        caches: FactCaches::new(settings.connect.lookups, shared.clone(), metrics.clone()),
        max_list_pages: settings.connect.lookups.max_list_pages,
        shared: shared.clone(),
        audit,
        metrics,
        traces,
        in_flight: Arc::new(Semaphore::new(settings.server.max_in_flight)),
        max_in_flight: settings.server.max_in_flight,
        draining: AtomicBool::new(false),
        cors: settings.cors.clone(),
        max_body_bytes: settings.server.max_body_bytes,
        request_timeout: settings.server.request_timeout,
        #[cfg(feature = "test-util")]
        panic_hook: deps.panic_hook,
    });

    // First keys and credentials, concurrently and bounded; then keep them fresh.
    let first_keys = issuers
        .iter()
        .map(|i| tokio::spawn(refresh_once(i.clone())))
        .collect::<Vec<_>>();
    let first_credentials = async {
        let first = credentials
            .iter()
            .map(|c| tokio::spawn(refresh_credentials_once(c.clone())));
        for task in first.collect::<Vec<_>>() {
            let _ = task.await;
        }
    };
    let all_keys = async {
        for task in first_keys {
            let _ = task.await;
        }
    };
    let first_probe = async {
        if let Some(shared) = &shared {
            shared.probe().await;
        }
    };
    let _ = tokio::time::timeout(STARTUP_WAIT, async {
        tokio::join!(all_keys, first_credentials, first_probe)
    })
    .await;
    let mut background: Vec<JoinHandle<()>> = issuers.iter().map(|i| tokio::spawn(i.clone().refresh_loop())).collect();
    background.extend(credentials.iter().map(|c| tokio::spawn(c.clone().refresh_loop())));
    background.push(tokio::spawn(watch_policy_file(gateway.clone())));
    if let Some(shared) = shared {
        background.push(tokio::spawn(shared.probe_loop()));
    }
    #[cfg(unix)]
    background.push(tokio::spawn(reload_on_sighup(gateway.clone(), tls.clone())));

    let api_addr = api.local_addr().map_err(|source| StartError::Listen {
        addr: settings.server.listen,
        source,
    })?;
    let (shutdown, mut shutdown_rx) = watch::channel(false);
    let admin_addr = match admin {
        Some(listener) => {
            let addr = listener.local_addr().ok();
            let health: Arc<dyn admin::Health> = gateway.clone();
            // The admin listener outlives the API drain, so probes see `/readyz` 503
            // until the end; it is stopped with the background tasks.
            let listening = Listening::plain(ADMIN_HEADER_READ_TIMEOUT);
            background.push(tokio::spawn(serve(
                listener,
                listening,
                std::future::pending(),
                move |req| admin::handle(health.clone(), req),
            )));
            addr
        }
        None => None,
    };
    let g = gateway.clone();
    let listening = Listening {
        header_read_timeout: settings.server.header_read_timeout,
        tls: tls.clone(),
        grace: settings.server.shutdown_grace,
    };
    let served = tokio::spawn(serve(
        api,
        listening,
        async move {
            let _ = shutdown_rx.changed().await;
        },
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

async fn refresh_credentials_once(credentials: Arc<CredentialsCache>) {
    if let Err(e) = credentials.refresh().await {
        tracing::warn!(error = %crate::telemetry::error_chain(&e), "no AWS credentials yet; not ready");
    }
}

async fn refresh_once(issuer: Arc<IssuerKeys>) {
    let _ = issuer.refresh().await;
}

/// Re-reads the policy when its file changes (modification time or size).
async fn watch_policy_file(gateway: Arc<Gateway>) {
    let stamp = |path: &std::path::Path| std::fs::metadata(path).ok().map(|m| (m.modified().ok(), m.len()));
    let mut last = stamp(gateway.authorizer.policy_file());
    loop {
        tokio::time::sleep(POLICY_POLL).await;
        let now = stamp(gateway.authorizer.policy_file());
        if now != last {
            last = now;
            gateway.reload_policy();
        }
    }
}

/// SIGHUP: re-read the policy, reopen the audit file (log rotation), reload TLS.
#[cfg(unix)]
async fn reload_on_sighup(gateway: Arc<Gateway>, tls: Option<Arc<ReloadableTls>>) {
    let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; reload by editing the policy file");
        return;
    };
    while hangup.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the policy, emptying the lookup caches, reopening the audit file");
        gateway.on_sighup();
        if let Some(tls) = &tls {
            match tls.reload() {
                Ok(()) => tracing::info!("TLS certificates reloaded"),
                Err(e) => tracing::error!(error = %e, "new TLS certificates refused; the previous ones stay in force"),
            }
        }
    }
}
