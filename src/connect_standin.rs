//! An in-process Amazon Connect stand-in for demo mode and tests: it checks
//! the SigV4 signature of every request by recomputing it from what arrived,
//! records what it got, and answers MonitorContact (or as a test scripts).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// How far a signature's `x-amz-date` may be from now, as AWS allows.
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);

/// One request as the stand-in received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// `None` when the signature verified; else what was wrong.
    pub signature_problem: Option<String>,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// A scripted answer for the next request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Answer like MonitorContact does.
    Success,
    /// Answer this status, headers and body.
    Raw {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Wait, then give the inner reply.
    Delayed(Duration, Box<Reply>),
    /// Close the connection without answering.
    Drop,
}

impl Reply {
    /// A Connect error, its type in `X-Amzn-ErrorType`.
    pub fn error(status: u16, error_type: &str) -> Reply {
        Reply::Raw {
            status,
            headers: vec![(
                "x-amzn-errortype".into(),
                format!("{error_type}:http://internal.amazon.com/coral/"),
            )],
            body: json!({"Message": "stand-in error"}).to_string(),
        }
    }
}

struct State {
    credentials: Credentials,
    received: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Reply>>,
    /// Given when the script is empty.
    default_reply: Mutex<Reply>,
}

/// The running stand-in; stops when dropped.
pub struct ConnectStandIn {
    pub addr: SocketAddr,
    tls: bool,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Drop for ConnectStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ConnectStandIn {
    /// Starts on an ephemeral loopback port, accepting signatures made with `credentials`.
    pub async fn start(credentials: Credentials) -> std::io::Result<ConnectStandIn> {
        Self::start_with(credentials, None).await
    }

    /// Like [`start`](Self::start), serving HTTPS with this TLS configuration.
    pub async fn start_tls(
        credentials: Credentials,
        tls: Arc<rustls::ServerConfig>,
    ) -> std::io::Result<ConnectStandIn> {
        Self::start_with(credentials, Some(Arc::new(crate::tls::ReloadableTls::from_config(tls)))).await
    }

    async fn start_with(
        credentials: Credentials,
        tls: Option<Arc<crate::tls::ReloadableTls>>,
    ) -> std::io::Result<ConnectStandIn> {
        let tls_given = tls.is_some();
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            credentials,
            received: Mutex::new(Vec::new()),
            script: Mutex::new(VecDeque::new()),
            default_reply: Mutex::new(Reply::Success),
        });
        let s = state.clone();
        let task = tokio::spawn(crate::server::serve_forever(listener, tls, move |req| {
            answer(s.clone(), req)
        }));
        Ok(ConnectStandIn {
            addr,
            tls: tls_given,
            state,
            task,
        })
    }

    /// The endpoint URL to configure the gateway with (`https://localhost:…`
    /// when serving TLS, the name the test certificates carry).
    pub fn url(&self) -> String {
        if self.tls {
            format!("https://localhost:{}", self.addr.port())
        } else {
            format!("http://{}", self.addr)
        }
    }

    /// Queues replies for the next requests, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.script.lock().expect("script lock").extend(replies);
    }

    /// The reply once the script runs out.
    pub fn set_default(&self, reply: Reply) {
        *self.state.default_reply.lock().expect("default lock") = reply;
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().expect("received lock").clone()
    }

    /// Requests whose signature did not verify.
    pub fn bad_signatures(&self) -> Vec<String> {
        self.received()
            .into_iter()
            .filter_map(|r| r.signature_problem)
            .collect()
    }
}

async fn answer(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    let signature_problem = verify_sigv4(
        parts.method.as_str(),
        parts.uri.path(),
        &parts.headers,
        &body,
        &state.credentials,
        SystemTime::now(),
    )
    .err();
    let received = Received {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        headers: parts.headers,
        body,
        signature_problem: signature_problem.clone(),
    };
    state.received.lock().expect("received lock").push(received.clone());
    if let Some(problem) = signature_problem {
        tracing::warn!(%problem, "stand-in refused a bad signature");
        return Ok(raw(
            403,
            &[("x-amzn-errortype", "InvalidSignatureException")],
            r#"{"Message":"signature mismatch"}"#,
        ));
    }
    let next = state.script.lock().expect("script lock").pop_front();
    let mut reply = next.unwrap_or_else(|| state.default_reply.lock().expect("default lock").clone());
    loop {
        match reply {
            Reply::Delayed(wait, inner) => {
                tokio::time::sleep(wait).await;
                reply = *inner;
            }
            Reply::Drop => return Err(std::io::Error::other("scripted connection drop")),
            Reply::Raw { status, headers, body } => {
                let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                return Ok(raw(status, &headers, &body));
            }
            Reply::Success => return Ok(monitor_success(&received)),
        }
    }
}

fn raw(status: u16, headers: &[(&str, &str)], body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_owned())));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        "x-amzn-requestid",
        http::HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).expect("uuid is ASCII"),
    );
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (http::HeaderName::try_from(*k), http::HeaderValue::from_str(v)) {
            r.headers_mut().insert(k, v);
        }
    }
    r
}

fn monitor_success(received: &Received) -> Response<Full<Bytes>> {
    let body = received.json();
    let text = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    if received.method != "POST" || received.path != "/contact/monitor" || text("ContactId").is_empty() {
        return raw(
            400,
            &[("x-amzn-errortype", "InvalidRequestException")],
            r#"{"Message":"bad request"}"#,
        );
    }
    let region = credential_scope(&received.headers)
        .map(|s| s.region)
        .unwrap_or_default();
    let arn = format!(
        "arn:aws:connect:{region}:123456789012:instance/{}/contact/{}",
        text("InstanceId"),
        text("ContactId")
    );
    raw(
        200,
        &[],
        &json!({"ContactId": text("ContactId"), "ContactArn": arn}).to_string(),
    )
}

struct Scope {
    access_key: String,
    region: String,
    service: String,
    signed_headers: Vec<String>,
}

fn credential_scope(headers: &HeaderMap) -> Result<Scope, String> {
    let auth = headers
        .get(http::header::AUTHORIZATION)
        .ok_or("no authorization header")?
        .to_str()
        .map_err(|_| "authorization is not ASCII")?;
    let rest = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or("authorization is not AWS4-HMAC-SHA256")?;
    let mut credential = None;
    let mut signed = None;
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        }
    }
    let credential: Vec<&str> = credential.ok_or("no Credential")?.split('/').collect();
    if credential.len() != 5 || credential[4] != "aws4_request" {
        return Err("malformed credential scope".into());
    }
    Ok(Scope {
        access_key: credential[0].to_owned(),
        region: credential[2].to_owned(),
        service: credential[3].to_owned(),
        signed_headers: signed
            .ok_or("no SignedHeaders")?
            .split(';')
            .map(str::to_owned)
            .collect(),
    })
}

/// Recomputes a request's SigV4 signature from the method, path, the headers
/// it names as signed, and the body; `Ok` only when it matches exactly.
pub fn verify_sigv4(
    method: &str,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    credentials: &Credentials,
    now: SystemTime,
) -> Result<(), String> {
    let scope = credential_scope(headers)?;
    if scope.access_key != credentials.access_key_id() {
        return Err("unknown access key".into());
    }
    if scope.service != "connect" {
        return Err(format!("signed for service {:?}, not connect", scope.service));
    }
    let header = |name: &str| -> Result<&str, String> {
        let mut values = headers.get_all(name).iter();
        let v = values.next().ok_or(format!("signed header {name} missing"))?;
        if values.next().is_some() {
            return Err(format!("signed header {name} sent twice"));
        }
        v.to_str().map_err(|_| format!("header {name} is not ASCII"))
    };
    for required in ["host", "x-amz-date", "content-type"] {
        if !scope.signed_headers.iter().any(|h| h == required) {
            return Err(format!("{required} is not signed"));
        }
    }
    let amz_date = header("x-amz-date")?;
    let time = parse_amz_date(amz_date).ok_or("x-amz-date is malformed")?;
    let skew = now.duration_since(time).unwrap_or_else(|e| e.duration());
    if skew > MAX_CLOCK_SKEW {
        return Err("x-amz-date too far from now".into());
    }
    let session_token = match scope.signed_headers.iter().any(|h| h == "x-amz-security-token") {
        true => {
            let token = header("x-amz-security-token")?;
            if Some(token) != credentials.session_token() {
                return Err("wrong session token".into());
            }
            Some(token.to_owned())
        }
        false if credentials.session_token().is_some() => return Err("session token not signed".into()),
        false => None,
    };
    // The signer adds x-amz-date and the token itself; give it the rest.
    let mut signed = Vec::new();
    for name in &scope.signed_headers {
        if name != "x-amz-date" && name != "x-amz-security-token" {
            signed.push((name.as_str(), header(name)?));
        }
    }
    let identity = Credentials::new(
        credentials.access_key_id(),
        credentials.secret_access_key(),
        session_token,
        None,
        "connect-standin",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&scope.region)
        .name("connect")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let signable =
        SignableRequest::new(method, path, signed.into_iter(), SignableBody::Bytes(body)).map_err(|e| e.to_string())?;
    let (instructions, _) = sign(signable, &params).map_err(|e| e.to_string())?.into_parts();
    let expected = instructions
        .headers()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.to_owned())
        .ok_or("signer produced no authorization")?;
    if header("authorization")? != expected {
        return Err("signature mismatch".into());
    }
    Ok(())
}

/// `20261124T021959Z` → a time.
fn parse_amz_date(text: &str) -> Option<SystemTime> {
    if text.len() != 16 || &text[8..9] != "T" || !text.ends_with('Z') {
        return None;
    }
    let rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &text[0..4],
        &text[4..6],
        &text[6..8],
        &text[9..11],
        &text[11..13],
        &text[13..15]
    );
    humantime::parse_rfc3339(&rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::{parse_endpoint, Route};

    fn signed(creds: &Credentials) -> http::Request<Bytes> {
        let route = Route {
            region: "us-east-1".into(),
            endpoint: parse_endpoint("http://127.0.0.1:1").unwrap(),
        };
        crate::signing::signed_request(&route, Bytes::from_static(b"{\"a\":1}"), creds, SystemTime::now()).unwrap()
    }

    fn check(req: &http::Request<Bytes>, creds: &Credentials) -> Result<(), String> {
        verify_sigv4(
            "POST",
            req.uri().path(),
            req.headers(),
            req.body(),
            creds,
            SystemTime::now(),
        )
    }

    #[test]
    fn a_good_signature_verifies() {
        let creds = Credentials::new("AKID", "secret", Some("tok".into()), None, "t");
        assert_eq!(check(&signed(&creds), &creds), Ok(()));
    }

    #[test]
    fn a_changed_body_or_header_fails() {
        let creds = Credentials::new("AKID", "secret", None, None, "t");
        let req = signed(&creds);
        let (mut parts, _) = req.clone().into_parts();
        let tampered = verify_sigv4(
            "POST",
            "/contact/monitor",
            &parts.headers,
            b"{\"a\":2}",
            &creds,
            SystemTime::now(),
        );
        assert_eq!(tampered, Err("signature mismatch".into()));
        parts.headers.insert("host", "evil:1".parse().unwrap());
        assert!(verify_sigv4(
            "POST",
            "/contact/monitor",
            &parts.headers,
            req.body(),
            &creds,
            SystemTime::now()
        )
        .is_err());
        let other = Credentials::new("AKID", "other-secret", None, None, "t");
        assert_eq!(check(&req, &other), Err("signature mismatch".into()));
    }
}
