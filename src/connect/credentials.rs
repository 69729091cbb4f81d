//! The gateway's own AWS credentials, those of each role an instance is
//! signed as, and the supervisors' sessions of those roles (AssumeRole with
//! `SourceIdentity`, docs/security.md "CloudTrail names the supervisor"):
//! asked of the provider once, cached, and renewed ahead of expiry — never
//! fetched per request.

use std::collections::HashMap;
use std::error::Error;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{self, ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, HOST, USER_AGENT};
use http_body_util::{BodyExt, Full, Limited};
use serde_json::Value;

use super::endpoint::{parse_endpoint, Endpoint};
use super::settings::AssumedRole;
use crate::http::client::HttpClient;

/// Renew this long before the credentials expire.
pub(crate) const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(15);

/// Why no credentials could sign a call; the provider's own error is kept as
/// the cause (its text names the chain link that failed, never a secret).
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum CredentialsUnavailable {
    #[error("AWS credentials are not available: the credentials provider timed out")]
    TimedOut,
    #[error("AWS credentials are not available")]
    Provider(#[source] Arc<CredentialsError>),
    #[error("AWS credentials are not available: the provider returned expired credentials")]
    Expired,
    #[error("AWS credentials are not available: none for role {0}")]
    NoRole(String),
    /// STS did not give a supervisor's session (the gateway's own
    /// credentials were there to ask with): STS's side, not the gateway's.
    #[error("sts:AssumeRole for the supervisor's session failed")]
    AssumeRole(#[source] Arc<CredentialsUnavailable>),
}

impl CredentialsUnavailable {
    /// Whether STS, not the gateway, failed: a supervisor's session was refused or not answered.
    pub(crate) fn is_sts(&self) -> bool {
        matches!(self, CredentialsUnavailable::AssumeRole(_))
    }

    /// What STS answered when it refused a supervisor's session (`HTTP 403
    /// AccessDenied`): its status and error code, never its message.
    pub(crate) fn sts_refusal(&self) -> Option<String> {
        let CredentialsUnavailable::AssumeRole(inner) = self else {
            return None;
        };
        let CredentialsUnavailable::Provider(error) = inner.as_ref() else {
            return None;
        };
        match error.source()?.downcast_ref::<StsFailed>()? {
            StsFailed::Refused { status, code } => Some(format!("HTTP {status} {code}").trim_end().to_owned()),
            _ => None,
        }
    }
}

/// A cache in front of a credentials provider (the default chain in production).
pub(crate) struct CredentialsCache {
    provider: SharedCredentialsProvider,
    current: RwLock<Option<Credentials>>,
    /// One refresh at a time: many requests waiting on expiry make one call.
    refreshing: tokio::sync::Mutex<()>,
    margin: Duration,
}

impl CredentialsCache {
    pub(crate) fn new(provider: SharedCredentialsProvider, margin: Duration) -> Self {
        CredentialsCache {
            provider,
            current: RwLock::new(None),
            refreshing: tokio::sync::Mutex::new(()),
            margin,
        }
    }

    fn fresh(&self) -> Option<Credentials> {
        let current = self.current.read().expect("credentials lock");
        current.as_ref().filter(|c| !self.near_expiry(c)).cloned()
    }

    fn near_expiry(&self, creds: &Credentials) -> bool {
        creds
            .expiry()
            .is_some_and(|expiry| SystemTime::now() + self.margin >= expiry)
    }

    fn unexpired(&self) -> Option<Credentials> {
        let current = self.current.read().expect("credentials lock");
        current
            .as_ref()
            .filter(|c| c.expiry().is_none_or(|e| SystemTime::now() < e))
            .cloned()
    }

    /// Whether usable credentials are held now (for `/readyz`).
    pub(crate) fn is_ready(&self) -> bool {
        self.unexpired().is_some()
    }

    /// Credentials for signing one request.
    pub(crate) async fn get(&self) -> Result<Credentials, CredentialsUnavailable> {
        if let Some(c) = self.fresh() {
            return Ok(c);
        }
        let _one_at_a_time = self.refreshing.lock().await;
        if let Some(c) = self.fresh() {
            return Ok(c);
        }
        match self.refresh_locked().await {
            Ok(c) => Ok(c),
            // A provider hiccup must not fail requests while what we hold is still valid.
            Err(e) => self.unexpired().ok_or(e),
        }
    }

    async fn refresh_locked(&self) -> Result<Credentials, CredentialsUnavailable> {
        let asked = tokio::time::timeout(PROVIDER_TIMEOUT, self.provider.provide_credentials()).await;
        let creds = match asked {
            Err(_) => return Err(CredentialsUnavailable::TimedOut),
            Ok(Err(e)) => return Err(CredentialsUnavailable::Provider(Arc::new(e))),
            Ok(Ok(c)) => c,
        };
        if creds.expiry().is_some_and(|e| e <= SystemTime::now()) {
            return Err(CredentialsUnavailable::Expired);
        }
        *self.current.write().expect("credentials lock") = Some(creds.clone());
        tracing::info!(expires = ?creds.expiry().map(humantime::format_rfc3339_seconds), "AWS credentials resolved");
        Ok(creds)
    }

    /// Refreshes now, unless another caller is already doing so.
    pub(crate) async fn refresh(&self) -> Result<Credentials, CredentialsUnavailable> {
        let _one_at_a_time = self.refreshing.lock().await;
        self.refresh_locked().await
    }

    /// Keeps credentials fresh in the background so no request waits on the
    /// provider: resolve at start, then again `margin` before each expiry.
    pub(crate) async fn refresh_loop(self: std::sync::Arc<Self>) {
        loop {
            let held = match self.fresh() {
                Some(c) => Ok(c),
                None => self.refresh().await,
            };
            let wait = match held {
                Ok(c) => match c.expiry() {
                    // Static credentials never expire: nothing more to do.
                    None => return,
                    Some(expiry) => expiry
                        .duration_since(SystemTime::now() + self.margin)
                        .unwrap_or(Duration::ZERO)
                        .max(Duration::from_secs(1)),
                },
                Err(e) => {
                    tracing::warn!(error = %crate::telemetry::error_chain(&e), "AWS credentials not refreshed; will retry");
                    RETRY_AFTER_FAILURE
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// The role-session name CloudTrail shows for the gateway's AssumeRole calls.
pub(crate) const ROLE_SESSION_NAME: &str = "connect-monitor-gateway";

/// A provider of a role's credentials: STS AssumeRole (the SDK's own
/// provider), called with `base` — the gateway's own credentials — in
/// `region`. `sts_endpoint` overrides where STS is (tests; in production the
/// SDK reads `AWS_ENDPOINT_URL_STS` itself).
pub(crate) async fn assume_role_provider(
    role: &AssumedRole,
    region: &str,
    base: SharedCredentialsProvider,
    sts_endpoint: Option<&str>,
) -> SharedCredentialsProvider {
    let mut sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_owned()))
        .credentials_provider(base);
    if let Some(url) = sts_endpoint {
        sdk = sdk.endpoint_url(url);
    }
    let sdk = sdk.load().await;
    let mut provider = aws_config::sts::AssumeRoleProvider::builder(role.arn.clone())
        .session_name(ROLE_SESSION_NAME)
        .configure(&sdk);
    if let Some(id) = &role.external_id {
        provider = provider.external_id(id.clone());
    }
    SharedCredentialsProvider::new(provider.build().await)
}

/// The session-name prefix of a supervisor's session: CloudTrail shows
/// `assumed-role/<role>/cmg-<value>`, and a trust policy can tell these
/// sessions from the role's own (`connect-monitor-gateway`).
const SUPERVISOR_SESSION_PREFIX: &str = "cmg-";
/// The longest `RoleSessionName` STS accepts.
const MAX_SESSION_NAME: usize = 64;
/// Supervisors' sessions kept at most; the least recently used goes first.
const MAX_SUPERVISOR_SESSIONS: u64 = 10_000;
/// A supervisor's session unused this long is dropped: by then the hour a
/// role session lasts by default is over, and its credentials with it.
const SUPERVISOR_SESSION_IDLE: Duration = Duration::from_secs(60 * 60);
/// The largest STS answer read.
const MAX_STS_RESPONSE_BYTES: usize = 64 * 1024;

/// Why a caller's claim cannot be a supervisor's `SourceIdentity`. Never
/// holds the value: the messages name the claim and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SourceIdentityRefused {
    #[error("the token has no claim {0} holding a string, which this instance's MonitorContact is signed with as SourceIdentity")]
    Missing(String),
    #[error("the token's claim {0} is this instance's SourceIdentity and must be 2 to 64 characters of ASCII letters, digits and _+=,.@-")]
    Invalid(String),
}

impl SourceIdentityRefused {
    /// The reason the answer's audit line gives.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            SourceIdentityRefused::Missing(_) => "source_identity_missing",
            SourceIdentityRefused::Invalid(_) => "source_identity_invalid",
        }
    }
}

/// A `SourceIdentity` as STS accepts it: 2 to 64 characters of `[\w+=,.@-]`
/// (ASCII). Nothing is changed to make a value fit: one that does not is refused.
fn valid_source_identity(value: &str) -> bool {
    (2..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b))
}

/// The `RoleSessionName` of a supervisor's session: `cmg-` and the value,
/// cut to 64 characters. A valid value is all characters a session name
/// allows, so the cut is all it needs.
fn supervisor_session_name(value: &str) -> String {
    let mut name = format!("{SUPERVISOR_SESSION_PREFIX}{value}");
    name.truncate(MAX_SESSION_NAME);
    name
}

/// An instance's role as its supervisors' sessions assume it.
#[derive(Debug, PartialEq, Eq, Hash)]
struct SupervisedRole {
    arn: String,
    external_id: Option<String>,
    /// Where its STS calls go (the instance's region).
    region: String,
    /// The token claim that names the supervisor.
    claim: String,
}

/// Who signs a MonitorContact call: a supervisor, by the value of their
/// token's claim, in a session of the instance's role.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct SourceIdentity {
    role: Arc<SupervisedRole>,
    value: Arc<str>,
}

impl SourceIdentity {
    /// The value sent as `SourceIdentity` (for the audit).
    pub(crate) fn value(&self) -> &str {
        &self.value
    }
}

/// Where STS is: an override (`AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL`, a
/// test's stand-in), else the regional endpoint of the instance's region.
#[derive(Debug, Clone)]
pub(crate) enum StsEndpoint {
    Regional,
    Override(Endpoint),
    /// The override does not parse: every supervisor's session fails,
    /// rather than going somewhere it was not meant to.
    Invalid(Arc<str>),
}

impl StsEndpoint {
    /// From an override's text, if any.
    pub(crate) fn from_override(text: Option<&str>) -> StsEndpoint {
        match text.map(parse_endpoint) {
            None => StsEndpoint::Regional,
            Some(Ok(endpoint)) => StsEndpoint::Override(endpoint),
            Some(Err(e)) => StsEndpoint::Invalid(Arc::from(e)),
        }
    }

    fn at(&self, region: &str) -> Result<Endpoint, StsFailed> {
        match self {
            StsEndpoint::Regional => parse_endpoint(&format!("https://sts.{region}.amazonaws.com"))
                .map_err(|e| StsFailed::Endpoint(Arc::from(e))),
            StsEndpoint::Override(endpoint) => Ok(endpoint.clone()),
            StsEndpoint::Invalid(e) => Err(StsFailed::Endpoint(e.clone())),
        }
    }
}

/// Why STS gave no supervisor's session; the cause is kept.
#[derive(Debug, Clone, thiserror::Error)]
enum StsFailed {
    #[error("the gateway's own credentials, to ask STS with, are not available")]
    NoOwnCredentials(#[source] CredentialsUnavailable),
    #[error("the STS endpoint is not an http(s) URL with a host: {0}")]
    Endpoint(Arc<str>),
    #[error("the request to STS could not be signed")]
    Signing(#[source] Arc<dyn Error + Send + Sync>),
    #[error("STS could not be reached")]
    Unreachable(#[source] Arc<dyn Error + Send + Sync>),
    #[error("STS answered HTTP {status} {code}")]
    Refused { status: u16, code: String },
    #[error("STS answered with something that is not an AssumeRole response")]
    BadResponse,
}

/// STS AssumeRole for the supervisors' sessions, made here rather than with
/// the SDK's provider, which cannot send `SourceIdentity`: signed with the
/// gateway's own credentials, over the gateway's HTTP client (its proxy and
/// CAs), the answer read as the query protocol's XML.
struct Sts {
    http: HttpClient,
    endpoint: StsEndpoint,
    own: Arc<CredentialsCache>,
}

impl std::fmt::Debug for Sts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sts")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl Sts {
    async fn assume_role(&self, role: &SupervisedRole, value: &str) -> Result<Credentials, StsFailed> {
        let own = self.own.get().await.map_err(StsFailed::NoOwnCredentials)?;
        let endpoint = self.endpoint.at(&role.region)?;
        let request = signed_sts_request(&endpoint, &role.region, assume_role_form(role, value), &own)
            .map_err(|e| StsFailed::Signing(Arc::from(e)))?;
        let unreachable = |e: Box<dyn Error + Send + Sync>| StsFailed::Unreachable(Arc::from(e));
        let response = self
            .http
            .request(request.map(Full::new))
            .await
            .map_err(|e| unreachable(e.into()))?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), MAX_STS_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(unreachable)?
            .to_bytes();
        let text = std::str::from_utf8(&body).map_err(|_| StsFailed::BadResponse)?;
        if !(200..300).contains(&status) {
            let code = element(text, "Code")
                .filter(|c| c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.'))
                .unwrap_or_default();
            return Err(StsFailed::Refused {
                status,
                code: code.to_owned(),
            });
        }
        let credentials = element(text, "Credentials").ok_or(StsFailed::BadResponse)?;
        let field = |name| element(credentials, name).ok_or(StsFailed::BadResponse);
        let expiry = humantime::parse_rfc3339_weak(field("Expiration")?).map_err(|_| StsFailed::BadResponse)?;
        Ok(Credentials::new(
            field("AccessKeyId")?,
            field("SecretAccessKey")?,
            Some(field("SessionToken")?.to_owned()),
            Some(expiry),
            "cmg-source-identity",
        ))
    }
}

/// The AssumeRole call's form: the role, the supervisor's session name and
/// `SourceIdentity`, and the role's external id.
fn assume_role_form(role: &SupervisedRole, value: &str) -> Bytes {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("Action", "AssumeRole")
        .append_pair("Version", "2011-06-15")
        .append_pair("RoleArn", &role.arn)
        .append_pair("RoleSessionName", &supervisor_session_name(value))
        .append_pair("SourceIdentity", value);
    if let Some(id) = &role.external_id {
        form.append_pair("ExternalId", id);
    }
    Bytes::from(form.finish())
}

/// The text of the first `<name>…</name>` in `xml`. STS's answers hold no
/// attributes, CDATA or escapes in the elements read here.
fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    Some(xml[start..end].trim())
}

/// A signed `POST /` of an STS query-protocol form: the SDK's header set.
fn signed_sts_request(
    endpoint: &Endpoint,
    region: &str,
    body: Bytes,
    credentials: &Credentials,
) -> Result<http::Request<Bytes>, Box<dyn Error + Send + Sync>> {
    let mut request = http::Request::post(endpoint.uri("/")?)
        .header(HOST, endpoint.host())
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)?;
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()?
        .into();
    let signable = SignableRequest::new(
        "POST",
        request.uri().to_string(),
        request
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_str().expect("headers we set are ASCII"))),
        SignableBody::Bytes(request.body()),
    )?;
    let (instructions, _signature) = sign(signable, &params)?.into_parts();
    instructions.apply_to_request_http1x(&mut request);
    let length = request.body().len();
    let headers = request.headers_mut();
    headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(USER_AGENT, HeaderValue::from_static(crate::USER_AGENT));
    Ok(request)
}

/// One supervisor's session as a credentials provider, for a [`CredentialsCache`].
#[derive(Debug)]
struct SupervisorSession {
    sts: Arc<Sts>,
    who: SourceIdentity,
}

impl SupervisorSession {
    async fn assume(&self) -> provider::Result {
        self.sts
            .assume_role(&self.who.role, &self.who.value)
            .await
            .map_err(CredentialsError::provider_error)
    }
}

impl ProvideCredentials for SupervisorSession {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::new(self.assume())
    }
}

/// The supervisors' sessions: which instances sign MonitorContact so, and a
/// bounded cache of sessions per (role, value), each renewed as the
/// gateway's own credentials are. A session is assumed when a request first
/// needs it, inside that request's MonitorContact attempt.
pub(crate) struct SupervisorSessions {
    /// Instance id → its role as its supervisors' sessions assume it.
    instances: HashMap<String, Arc<SupervisedRole>>,
    sessions: moka::future::Cache<SourceIdentity, Arc<CredentialsCache>>,
    sts: Arc<Sts>,
    margin: Duration,
}

impl SupervisorSessions {
    /// For `instances` (id, role with its `source_identity_claim`, region),
    /// assumed with `own` at `endpoint` over `http`.
    pub(crate) fn new(
        instances: Vec<(String, AssumedRole, String)>,
        own: Arc<CredentialsCache>,
        http: HttpClient,
        endpoint: StsEndpoint,
        margin: Duration,
    ) -> SupervisorSessions {
        let instances = instances
            .into_iter()
            .filter_map(|(id, role, region)| {
                let claim = role.source_identity_claim?;
                let role = SupervisedRole {
                    arn: role.arn,
                    external_id: role.external_id,
                    region,
                    claim,
                };
                Some((id, Arc::new(role)))
            })
            .collect();
        SupervisorSessions {
            instances,
            sessions: moka::future::Cache::builder()
                .max_capacity(MAX_SUPERVISOR_SESSIONS)
                .time_to_idle(SUPERVISOR_SESSION_IDLE)
                .build(),
            sts: Arc::new(Sts { http, endpoint, own }),
            margin,
        }
    }

    /// The supervisor a call for `instance_id` is signed as, by the claim
    /// `claim` finds (`None`: the instance signs as its role itself).
    fn source_identity<'c>(
        &self,
        instance_id: &str,
        claim: impl FnOnce(&str) -> Option<&'c Value>,
    ) -> Result<Option<SourceIdentity>, SourceIdentityRefused> {
        let Some(role) = self.instances.get(instance_id) else {
            return Ok(None);
        };
        // Found like the policy's claims; one that is not a string is no value at all.
        let Some(Value::String(value)) = claim(&role.claim) else {
            return Err(SourceIdentityRefused::Missing(role.claim.clone()));
        };
        if !valid_source_identity(value) {
            return Err(SourceIdentityRefused::Invalid(role.claim.clone()));
        }
        Ok(Some(SourceIdentity {
            role: role.clone(),
            value: Arc::from(value.as_str()),
        }))
    }

    /// The supervisor's session: concurrent first requests share one
    /// entry, and its cache one AssumeRole.
    async fn session(&self, who: &SourceIdentity) -> Arc<CredentialsCache> {
        self.sessions
            .get_with_by_ref(who, async {
                let provider = SupervisorSession {
                    sts: self.sts.clone(),
                    who: who.clone(),
                };
                Arc::new(CredentialsCache::new(
                    SharedCredentialsProvider::new(provider),
                    self.margin,
                ))
            })
            .await
    }
}

/// Whose credentials sign a call: the gateway's own, the cache of the role
/// the call's instance is signed as, or a supervisor's session of that role.
pub(crate) struct Signers {
    own: Arc<CredentialsCache>,
    roles: HashMap<Arc<str>, Arc<CredentialsCache>>,
    supervisors: Option<SupervisorSessions>,
}

impl Signers {
    /// The gateway's own credentials only.
    #[cfg(test)]
    pub(crate) fn own(own: Arc<CredentialsCache>) -> Signers {
        Signers {
            own,
            roles: HashMap::new(),
            supervisors: None,
        }
    }

    pub(crate) fn with_roles(own: Arc<CredentialsCache>, roles: HashMap<Arc<str>, Arc<CredentialsCache>>) -> Signers {
        Signers {
            own,
            roles,
            supervisors: None,
        }
    }

    /// The same signers, with the supervisors' sessions of the instances
    /// that have them.
    pub(crate) fn with_supervisors(self, supervisors: SupervisorSessions) -> Signers {
        Signers {
            supervisors: Some(supervisors),
            ..self
        }
    }

    /// The supervisor whose session signs MonitorContact for `instance_id`,
    /// by the caller's claim that `claim` finds; `None` when the instance
    /// has no `source_identity_claim`. A value is taken as it is or refused.
    pub(crate) fn source_identity<'c>(
        &self,
        instance_id: &str,
        claim: impl FnOnce(&str) -> Option<&'c Value>,
    ) -> Result<Option<SourceIdentity>, SourceIdentityRefused> {
        match &self.supervisors {
            Some(supervisors) => supervisors.source_identity(instance_id, claim),
            None => Ok(None),
        }
    }

    /// The credentials of a supervisor's session.
    pub(crate) async fn get_as(&self, who: &SourceIdentity) -> Result<Credentials, CredentialsUnavailable> {
        let Some(supervisors) = &self.supervisors else {
            return Err(CredentialsUnavailable::NoRole(who.role.arn.clone()));
        };
        match supervisors.session(who).await.get().await {
            Ok(credentials) => Ok(credentials),
            // Without credentials of its own the gateway could not ask STS:
            // that is its own state, answered as for any other call.
            Err(failed) => match self.own.get().await {
                Err(own) => Err(own),
                Ok(_) => Err(CredentialsUnavailable::AssumeRole(Arc::new(failed))),
            },
        }
    }

    /// The credentials for a call made as `role_arn` (`None`: our own).
    pub(crate) async fn get(&self, role_arn: Option<&str>) -> Result<Credentials, CredentialsUnavailable> {
        match role_arn {
            None => self.own.get().await,
            Some(arn) => match self.roles.get(arn) {
                Some(cache) => cache.get().await,
                // Never sign as ourselves what was meant to be signed as a role.
                None => Err(CredentialsUnavailable::NoRole(arn.to_owned())),
            },
        }
    }

    /// The gateway's own credentials.
    pub(crate) fn own_credentials(&self) -> &Arc<CredentialsCache> {
        &self.own
    }

    /// Each role's ARN and whether its credentials are held now, in ARN order.
    pub(crate) fn roles_ready(&self) -> Vec<(&str, bool)> {
        let mut roles: Vec<(&str, bool)> = self.roles.iter().map(|(arn, c)| (&**arn, c.is_ready())).collect();
        roles.sort_unstable();
        roles
    }

    /// Every cache: ours, then the roles'.
    pub(crate) fn caches(&self) -> impl Iterator<Item = &Arc<CredentialsCache>> {
        std::iter::once(&self.own).chain(self.roles.values())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[derive(Debug)]
    struct Counting {
        calls: Arc<AtomicUsize>,
        lifetime: Duration,
    }

    impl ProvideCredentials for Counting {
        fn provide_credentials<'a>(&'a self) -> aws_credential_types::provider::future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let expiry = SystemTime::now() + self.lifetime;
            aws_credential_types::provider::future::ProvideCredentials::ready(Ok(Credentials::new(
                "AKIDTEST",
                "secret",
                None,
                Some(expiry),
                "test",
            )))
        }
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_provider_call() {
        let calls = Arc::new(AtomicUsize::new(0));
        let cache = Arc::new(CredentialsCache::new(
            SharedCredentialsProvider::new(Counting {
                calls: calls.clone(),
                lifetime: Duration::from_secs(3600),
            }),
            DEFAULT_REFRESH_MARGIN,
        ));
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let c = cache.clone();
                tokio::spawn(async move { c.get().await.unwrap() })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn credentials_inside_the_margin_are_renewed() {
        let calls = Arc::new(AtomicUsize::new(0));
        let cache = CredentialsCache::new(
            SharedCredentialsProvider::new(Counting {
                calls: calls.clone(),
                lifetime: Duration::from_secs(60),
            }),
            DEFAULT_REFRESH_MARGIN,
        );
        cache.get().await.unwrap();
        cache.get().await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2, "60 s left is inside the 5 min margin");
    }

    fn supervised(claim: &str) -> SupervisorSessions {
        let own = Arc::new(CredentialsCache::new(
            SharedCredentialsProvider::new(Credentials::new("AKIDTEST", "secret", None, None, "test")),
            DEFAULT_REFRESH_MARGIN,
        ));
        let role = AssumedRole {
            arn: "arn:aws:iam::222233334444:role/connect-monitor".into(),
            external_id: None,
            source_identity_claim: Some(claim.into()),
        };
        SupervisorSessions::new(
            vec![("inst-1".into(), role, "eu-west-2".into())],
            own,
            crate::http::client::build(),
            StsEndpoint::Regional,
            DEFAULT_REFRESH_MARGIN,
        )
    }

    #[test]
    fn a_source_identity_is_2_to_64_characters_sts_accepts_taken_as_it_is() {
        let sessions = supervised("email");
        let claims = |v: Value| serde_json::json!({ "email": v });
        let of = |v: Value| {
            let claims = claims(v);
            sessions
                .source_identity("inst-1", |name| claims.get(name))
                .map(|s| s.map(|s| s.value().to_owned()))
        };
        let longest = format!("{}@example.com", "a".repeat(52));
        for good in ["ab", "alice@example.com", "A_b+c=d,e.f@g-h", longest.as_str()] {
            assert_eq!(of(Value::from(good)), Ok(Some(good.to_owned())), "{good}");
        }
        let invalid = SourceIdentityRefused::Invalid("email".into());
        let too_long = "a".repeat(65);
        for bad in ["a", too_long.as_str(), "alice smith", "alicé", "a:b", "a/b", "a\tb", ""] {
            assert_eq!(of(Value::from(bad)), Err(invalid.clone()), "{bad:?}");
        }
        let missing = SourceIdentityRefused::Missing("email".into());
        for absent in [Value::Null, Value::from(12345), serde_json::json!(["alice"])] {
            assert_eq!(of(absent.clone()), Err(missing.clone()), "{absent}");
        }
        assert_eq!(
            sessions.source_identity("inst-2", |_| None),
            Ok(None),
            "an instance without source_identity_claim"
        );
        assert_eq!(invalid.reason(), "source_identity_invalid");
        assert_eq!(missing.reason(), "source_identity_missing");
    }

    #[test]
    fn the_session_name_is_cmg_and_the_value_cut_to_64_characters() {
        assert_eq!(supervisor_session_name("alice@example.com"), "cmg-alice@example.com");
        let longest = "b".repeat(64);
        assert_eq!(supervisor_session_name(&longest), format!("cmg-{}", "b".repeat(60)));
    }

    #[test]
    fn an_assume_role_answer_is_read_and_a_refusal_keeps_only_its_code() {
        let answer = "<AssumeRoleResponse><AssumeRoleResult><SourceIdentity>alice</SourceIdentity>\
            <Credentials><AccessKeyId>ASIA1</AccessKeyId><SecretAccessKey>s/+=</SecretAccessKey>\
            <SessionToken>t</SessionToken><Expiration>2030-01-01T00:00:00.123Z</Expiration>\
            </Credentials></AssumeRoleResult></AssumeRoleResponse>";
        let credentials = element(answer, "Credentials").unwrap();
        assert_eq!(element(credentials, "SecretAccessKey"), Some("s/+="));
        assert!(humantime::parse_rfc3339_weak(element(credentials, "Expiration").unwrap()).is_ok());
        assert_eq!(element(answer, "Code"), None);

        let failed = CredentialsUnavailable::AssumeRole(Arc::new(CredentialsUnavailable::Provider(Arc::new(
            CredentialsError::provider_error(StsFailed::Refused {
                status: 403,
                code: "AccessDenied".into(),
            }),
        ))));
        assert!(failed.is_sts());
        assert_eq!(failed.sts_refusal().as_deref(), Some("HTTP 403 AccessDenied"));
        assert!(!CredentialsUnavailable::Expired.is_sts());
    }

    #[test]
    fn the_assume_role_form_carries_the_session_name_source_identity_and_external_id() {
        let role = SupervisedRole {
            arn: "arn:aws:iam::222233334444:role/connect-monitor".into(),
            external_id: Some("contact-center-7".into()),
            region: "eu-west-2".into(),
            claim: "email".into(),
        };
        let form = assume_role_form(&role, "a+b@example.com");
        let pairs: Vec<(String, String)> = form_urlencoded::parse(&form).into_owned().collect();
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("Action"), Some("AssumeRole"));
        assert_eq!(get("RoleArn"), Some(role.arn.as_str()));
        assert_eq!(get("RoleSessionName"), Some("cmg-a+b@example.com"));
        assert_eq!(get("SourceIdentity"), Some("a+b@example.com"));
        assert_eq!(get("ExternalId"), Some("contact-center-7"));
    }
}
