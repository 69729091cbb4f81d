//! An in-process AWS STS that answers AssumeRole (query protocol, XML) after
//! verifying the call's SigV4 signature, handing out predictable credentials:
//! the n-th AssumeRole gets [`StsStandIn::issued`]`(n)`. It records every
//! call's parameters (`RoleArn`, `RoleSessionName`, `ExternalId`,
//! `SourceIdentity`, …) and can hold its answers until a test lets them go.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use bytes::Bytes;
use connect_monitor_gateway::test_util::{percent_decode, verify_sigv4_for};
use connect_monitor_gateway::test_util::{serve, Listening};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One AssumeRole call as received.
#[derive(Debug, Clone)]
pub struct AssumeRoleCall {
    pub at: SystemTime,
    /// The form parameters (Action, RoleArn, RoleSessionName, ExternalId, …).
    pub params: Vec<(String, String)>,
    /// `None` when the signature verified with the caller's credentials.
    pub signature_problem: Option<String>,
    /// The region of the signature's credential scope.
    pub signed_region: Option<String>,
}

impl AssumeRoleCall {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The session's `SourceIdentity`, if the call set one.
    pub fn source_identity(&self) -> Option<&str> {
        self.param("SourceIdentity")
    }
}

struct State {
    /// Whose signatures are accepted: the gateway's own credentials.
    caller: Credentials,
    /// How long handed-out credentials live.
    lifetime: Mutex<Duration>,
    /// While set, every call is refused with this error code (403).
    refuse: Mutex<Option<&'static str>>,
    calls: Mutex<Vec<AssumeRoleCall>>,
    /// The expiry of each set handed out, in order.
    expiries: Mutex<Vec<SystemTime>>,
    /// While `true`, answers wait (the calls are recorded at once).
    held: tokio::sync::watch::Sender<bool>,
}

/// The running STS; stops when dropped.
pub struct StsStandIn {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Drop for StsStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StsStandIn {
    /// Starts on an ephemeral loopback port, accepting calls signed with `caller`.
    pub async fn start(caller: Credentials, lifetime: Duration) -> StsStandIn {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            caller,
            lifetime: Mutex::new(lifetime),
            refuse: Mutex::new(None),
            calls: Mutex::new(Vec::new()),
            expiries: Mutex::new(Vec::new()),
            held: tokio::sync::watch::Sender::new(false),
        });
        let s = state.clone();
        let task = tokio::spawn(serve(
            listener,
            Listening::plain(Duration::from_secs(30)),
            std::future::pending(),
            move |req| answer(s.clone(), req),
        ));
        StsStandIn { addr, state, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The credentials the n-th AssumeRole (from 1) hands out.
    pub fn issued(n: usize) -> Credentials {
        Credentials::new(
            format!("ASIASTANDINROLE{n:05}"),
            format!("role-secret-{n}-abcdefghijklmnopqrstuvwxyz"),
            Some(format!("role-session-token-{n}")),
            None,
            "sts-standin",
        )
    }

    pub fn calls(&self) -> Vec<AssumeRoleCall> {
        self.state.calls.lock().unwrap().clone()
    }

    /// When each set handed out expires, in order.
    pub fn expiries(&self) -> Vec<SystemTime> {
        self.state.expiries.lock().unwrap().clone()
    }

    /// Refuse every call with `AccessDenied` (403) while `true`.
    pub fn set_refusing(&self, refusing: bool) {
        *self.state.refuse.lock().unwrap() = refusing.then_some("AccessDenied");
    }

    /// Holds every answer (calls are still recorded as they arrive) while `true`.
    pub fn set_holding(&self, holding: bool) {
        self.state.held.send_replace(holding);
    }

    /// The calls that set a `SourceIdentity`: the supervisors' sessions.
    pub fn source_identity_calls(&self) -> Vec<AssumeRoleCall> {
        self.calls()
            .into_iter()
            .filter(|c| c.source_identity().is_some())
            .collect()
    }
}

/// One `application/x-www-form-urlencoded` name or value: `+` is a space.
fn form_decode(text: &str) -> String {
    percent_decode(&text.replace('+', " "))
}

async fn answer(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let signature_problem = verify_sigv4_for(
        "sts",
        parts.method.as_str(),
        &path,
        &parts.headers,
        &body,
        &state.caller,
        SystemTime::now(),
    )
    .err();
    let signed_region = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("Credential=").nth(1))
        .and_then(|v| v.split('/').nth(2))
        .map(str::to_owned);
    let params: Vec<(String, String)> = String::from_utf8_lossy(&body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (form_decode(k), form_decode(v))
        })
        .collect();
    let call = AssumeRoleCall {
        at: SystemTime::now(),
        params,
        signature_problem: signature_problem.clone(),
        signed_region,
    };
    let session_name = call.param("RoleSessionName").unwrap_or_default().to_owned();
    let source_identity = call
        .source_identity()
        .map(|v| format!("\n    <SourceIdentity>{v}</SourceIdentity>"))
        .unwrap_or_default();
    let n = {
        let mut calls = state.calls.lock().unwrap();
        calls.push(call);
        calls.len()
    };
    let _ = state.held.subscribe().wait_for(|held| !held).await;
    let refused = *state.refuse.lock().unwrap();
    if let Some(code) = signature_problem.as_ref().map(|_| "SignatureDoesNotMatch").or(refused) {
        let xml = format!(
            "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>stand-in refusal</Message></Error><RequestId>r-{n}</RequestId></ErrorResponse>"
        );
        let mut r = Response::new(Full::new(Bytes::from(xml)));
        *r.status_mut() = http::StatusCode::FORBIDDEN;
        r.headers_mut()
            .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/xml"));
        return Ok(r);
    }
    let issued = StsStandIn::issued(n);
    let expiry = SystemTime::now() + *state.lifetime.lock().unwrap();
    state.expiries.lock().unwrap().push(expiry);
    let xml = format!(
        r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <AssumedRoleUser>
      <AssumedRoleId>AROASTANDIN:{session_name}</AssumedRoleId>
      <Arn>arn:aws:sts::222233334444:assumed-role/connect-monitor/{session_name}</Arn>
    </AssumedRoleUser>{source_identity}
    <Credentials>
      <AccessKeyId>{}</AccessKeyId>
      <SecretAccessKey>{}</SecretAccessKey>
      <SessionToken>{}</SessionToken>
      <Expiration>{}</Expiration>
    </Credentials>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>r-{n}</RequestId></ResponseMetadata>
</AssumeRoleResponse>"#,
        issued.access_key_id(),
        issued.secret_access_key(),
        issued.session_token().unwrap(),
        humantime::format_rfc3339_seconds(expiry),
    );
    let mut r = Response::new(Full::new(Bytes::from(xml)));
    r.headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/xml"));
    Ok(r)
}
