//! The HTTP edge shared by the API and the admin listener: the one body type,
//! serving connections (limits, TLS, graceful drain), CORS, the admin
//! endpoints, and the outbound client. Knows nothing of tokens or Connect.

pub(crate) mod admin;
pub(crate) mod client;
pub(crate) mod cors;
pub(crate) mod server;
pub(crate) mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use http_body_util::Full;
use serde::Deserialize;

use crate::check::{secs, Check, HumanDuration};

/// The body type of every response.
pub(crate) type Body = Full<Bytes>;

/// The header that carries a request's id, in and out.
pub(crate) const REQUEST_ID: &str = "x-request-id";

/// A JSON response with the request id; the one way answers are built.
pub(crate) fn json_response(status: StatusCode, body: &impl serde::Serialize, request_id: &str) -> Response<Body> {
    let bytes = serde_json::to_vec(body).expect("a response body serializes");
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert(REQUEST_ID, id);
    }
    response
}

/// `[server]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServerSection {
    #[serde(default = "default_listen")]
    listen: SocketAddr,
    #[serde(default)]
    admin_listen: Option<SocketAddr>,
    #[serde(default = "default_max_body_bytes")]
    max_body_bytes: u64,
    #[serde(default = "default_header_read_timeout")]
    header_read_timeout: HumanDuration,
    #[serde(default = "default_request_timeout")]
    request_timeout: HumanDuration,
    #[serde(default = "default_shutdown_grace")]
    shutdown_grace: HumanDuration,
    #[serde(default = "default_max_in_flight")]
    max_in_flight: usize,
    #[serde(default = "default_worker_threads")]
    worker_threads: usize,
    #[serde(default)]
    tls: Option<TlsSection>,
}

/// `[server.tls]`: serve the API over TLS; mutual TLS with `client_ca_file`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsSection {
    cert_file: PathBuf,
    key_file: PathBuf,
    #[serde(default)]
    client_ca_file: Option<PathBuf>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_max_body_bytes() -> u64 {
    8192
}
fn default_header_read_timeout() -> HumanDuration {
    secs(5)
}
fn default_request_timeout() -> HumanDuration {
    secs(10)
}
fn default_shutdown_grace() -> HumanDuration {
    secs(20)
}
fn default_max_in_flight() -> usize {
    256
}
/// Two: a sidecar must not start one worker per core of a 64-core node.
fn default_worker_threads() -> usize {
    2
}

impl Default for ServerSection {
    fn default() -> Self {
        toml::from_str("").expect("every [server] key has a default")
    }
}

/// `[server]`, checked: the listeners and the limits every request lives by.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    pub admin_listen: Option<SocketAddr>,
    pub max_body_bytes: u64,
    pub header_read_timeout: Duration,
    pub request_timeout: Duration,
    pub shutdown_grace: Duration,
    pub max_in_flight: usize,
    /// The runtime's worker threads.
    pub worker_threads: usize,
    /// With paths resolved, when the API is served over TLS.
    pub tls: Option<tls::TlsFiles>,
}

impl ServerSection {
    pub(crate) fn check(self, c: &mut Check) -> ServerSettings {
        if self.max_body_bytes == 0 {
            c.bad("server.max_body_bytes", "must be at least 1");
        }
        if self.max_in_flight == 0 {
            c.bad("server.max_in_flight", "must be at least 1");
        }
        if !(1..=512).contains(&self.worker_threads) {
            c.bad("server.worker_threads", "must be between 1 and 512");
        }
        for (key, d) in [
            ("server.header_read_timeout", self.header_read_timeout),
            ("server.request_timeout", self.request_timeout),
        ] {
            if d.0.is_zero() {
                c.bad(key, "must be longer than 0s");
            }
        }
        let tls = self.tls.map(|t| tls::TlsFiles {
            cert_file: c.resolve(&t.cert_file),
            key_file: c.resolve(&t.key_file),
            client_ca_file: t.client_ca_file.as_ref().map(|f| c.resolve(f)),
        });
        if let Some(files) = &tls {
            if let Err(e) = tls::server_config(files) {
                c.bad("server.tls", e);
            }
        }
        ServerSettings {
            listen: self.listen,
            admin_listen: self.admin_listen,
            max_body_bytes: self.max_body_bytes,
            header_read_timeout: self.header_read_timeout.0,
            request_timeout: self.request_timeout.0,
            shutdown_grace: self.shutdown_grace.0,
            max_in_flight: self.max_in_flight,
            worker_threads: self.worker_threads,
            tls,
        }
    }
}
