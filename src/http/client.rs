//! The one outbound HTTP client (Connect and JWKS): hyper-util's pooled client
//! over rustls, HTTP/1.1, with bounded reads.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::CertificateDer;
use tokio::net::TcpStream;

/// The client type shared by every outbound call.
pub type HttpClient = Client<HttpsConnector<EgressConnector>, Full<Bytes>>;

/// How outbound connections leave: directly, or through a corporate proxy
/// (HTTP CONNECT tunnel), and which extra CAs to trust besides Mozilla's.
#[derive(Clone, Default)]
pub struct Egress {
    pub proxy: Option<Arc<Matcher>>,
    pub extra_roots: Vec<CertificateDer<'static>>,
}

impl Egress {
    /// The proxy settings of `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and
    /// `NO_PROXY` (or their lower-case forms), read through `lookup`.
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Egress {
        let var = |name: &str| {
            lookup(name)
                .or_else(|| lookup(&name.to_ascii_lowercase()))
                .filter(|v| !v.trim().is_empty())
        };
        let (https, http, all, no) = (var("HTTPS_PROXY"), var("HTTP_PROXY"), var("ALL_PROXY"), var("NO_PROXY"));
        if https.is_none() && http.is_none() && all.is_none() {
            return Egress::default();
        }
        let mut builder = Matcher::builder();
        if let Some(all) = all {
            builder = builder.all(all);
        }
        if let Some(http) = http {
            builder = builder.http(http);
        }
        if let Some(https) = https {
            builder = builder.https(https);
        }
        if let Some(no) = no {
            builder = builder.no(no);
        }
        Egress {
            proxy: Some(Arc::new(builder.build())),
            extra_roots: Vec::new(),
        }
    }
}

/// Connects directly, or through a CONNECT tunnel when the proxy matcher
/// intercepts the destination. TLS (for https) runs over either.
#[derive(Clone)]
pub struct EgressConnector {
    direct: HttpConnector,
    proxy: Option<Arc<Matcher>>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<Uri> for EgressConnector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let direct = self.direct.clone();
        match self.proxy.as_ref().and_then(|m| m.intercept(&dst)) {
            Some(intercept) => {
                let mut tunnel = Tunnel::new(intercept.uri().clone(), direct);
                if let Some(auth) = intercept.basic_auth() {
                    tunnel = tunnel.with_auth(auth.clone());
                }
                Box::pin(async move { tunnel.call(dst).await.map_err(Into::into) })
            }
            None => {
                let mut direct = direct;
                Box::pin(async move { direct.call(dst).await.map_err(Into::into) })
            }
        }
    }
}

/// A client that goes out directly and trusts the Mozilla roots only (demo,
/// tests, tools).
#[cfg(feature = "demo")]
pub fn build() -> HttpClient {
    build_with(&Egress::default())
}

/// Builds the client: TLS with the Mozilla roots (no system store needed in a
/// distroless image) plus any extra CAs, plain HTTP allowed for loopback
/// stand-ins and overrides, and the proxy when one is configured.
pub(crate) fn build_with(egress: &Egress) -> HttpClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for cert in &egress.extra_roots {
        if let Err(e) = roots.add(cert.clone()) {
            tracing::warn!(error = %e, "an extra CA certificate was not usable");
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("the aws-lc-rs provider supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(EgressConnector {
            direct: http,
            proxy: egress.proxy.clone(),
        });
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(https)
}

/// Why an outbound read failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("connection failed")]
    Connect(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("timed out")]
    Timeout,
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("response body unreadable or over {0} bytes")]
    Body(usize),
}

/// GETs a URL and returns its body, refusing bodies over `limit` bytes.
pub(crate) async fn get_bytes(
    client: &HttpClient,
    url: &str,
    timeout: Duration,
    limit: usize,
) -> Result<Bytes, FetchError> {
    let request = http::Request::get(url)
        .header(http::header::USER_AGENT, crate::USER_AGENT)
        .header(http::header::ACCEPT, "application/json")
        .body(Full::new(Bytes::new()))
        .map_err(|e| FetchError::Connect(e.into()))?;
    let fetch = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| FetchError::Connect(e.into()))?;
        if !response.status().is_success() {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        Limited::new(response.into_body(), limit)
            .collect()
            .await
            .map(|c| c.to_bytes())
            .map_err(|_| FetchError::Body(limit))
    };
    tokio::time::timeout(timeout, fetch)
        .await
        .map_err(|_| FetchError::Timeout)?
}
