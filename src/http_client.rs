//! The one outbound HTTP client (Connect and JWKS): hyper-util's pooled client
//! over rustls, HTTP/1.1, with bounded reads.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// The client type shared by every outbound call.
pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Builds the client: TLS with the Mozilla roots (no system store needed in a
/// distroless image), plain HTTP allowed for loopback stand-ins and overrides.
pub fn build() -> HttpClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::aws_lc_rs::default_provider())
        .expect("the aws-lc-rs provider supports the default TLS versions")
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(https)
}

/// Why an outbound read failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("timed out")]
    Timeout,
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("response body unreadable or over {0} bytes")]
    Body(usize),
}

/// GETs a URL and returns its body, refusing bodies over `limit` bytes.
pub async fn get_bytes(client: &HttpClient, url: &str, timeout: Duration, limit: usize) -> Result<Bytes, FetchError> {
    let request = http::Request::get(url)
        .header(http::header::USER_AGENT, crate::USER_AGENT)
        .header(http::header::ACCEPT, "application/json")
        .body(Full::new(Bytes::new()))
        .map_err(|e| FetchError::Connect(e.to_string()))?;
    let fetch = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| FetchError::Connect(error_chain(&e)))?;
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

/// An error with its causes, for logs ("client error (Connect): connection refused").
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
