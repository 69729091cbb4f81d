//! TLS and mutual TLS on the API listener, and outbound calls (Connect and
//! JWKS) through a corporate proxy's CONNECT tunnel unless NO_PROXY matches.

use crate::support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use connect_monitor_gateway::test_util::Egress;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use support::{tls_fixture, Harness, Options, BODY};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// An HTTPS client trusting the test CA, optionally presenting a client certificate.
fn https_client(identity: Option<&str>) -> HttpsClient {
    let mut roots = rustls::RootCertStore::empty();
    for cert in support::test_ca() {
        roots.add(cert).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some(name) => {
            let certs: Vec<CertificateDer<'static>> =
                CertificateDer::pem_file_iter(tls_fixture(&format!("{name}.pem")))
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
            let key = PrivateKeyDer::from_pem_file(tls_fixture(&format!("{name}.key"))).unwrap();
            builder.with_client_auth_cert(certs, key).unwrap()
        }
    };
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http1()
        .build();
    Client::builder(TokioExecutor::new()).build(https)
}

/// The API served over TLS with the test certificate, requiring client
/// certificates signed by the test CA if asked.
fn tls_options(client_ca: bool) -> Options<'static> {
    let config = if client_ca {
        r#"
            [server.tls]
            cert_file = "{FIXTURES}/tls/server.pem"
            key_file = "{FIXTURES}/tls/server.key"
            client_ca_file = "{FIXTURES}/tls/ca.pem"
        "#
    } else {
        r#"
            [server.tls]
            cert_file = "{FIXTURES}/tls/server.pem"
            key_file = "{FIXTURES}/tls/server.key"
        "#
    };
    Options {
        config,
        ..Default::default()
    }
}

/// POSTs over HTTPS; `Err` when the TLS handshake or the exchange fails.
async fn post_https(h: &Harness, client: &HttpsClient) -> Result<u16, String> {
    let url = format!("https://localhost:{}/contact/monitor", h.gateway().api_addr.port());
    let req = http::Request::post(url)
        .header("authorization", format!("Bearer {}", h.supervisor_token()))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(BODY.as_bytes())))
        .unwrap();
    match tokio::time::timeout(Duration::from_secs(10), client.request(req)).await {
        Ok(Ok(r)) => {
            let status = r.status().as_u16();
            let _ = r.into_body().collect().await;
            Ok(status)
        }
        Ok(Err(e)) => Err(connect_monitor_gateway::test_util::error_chain(&e)),
        Err(_) => Err("timed out".into()),
    }
}

#[tokio::test]
async fn api_is_served_over_tls_when_configured() {
    let h = Harness::with(tls_options(false)).await;
    assert_eq!(post_https(&h, &https_client(None)).await, Ok(200));
    h.assert_signatures_verified();
}

#[tokio::test]
async fn mutual_tls_refuses_clients_without_a_trusted_certificate() {
    let h = Harness::with(tls_options(true)).await;
    let without = post_https(&h, &https_client(None)).await;
    assert!(without.is_err(), "a client without a certificate got {without:?}");
    let stranger = post_https(&h, &https_client(Some("stranger"))).await;
    assert!(
        stranger.is_err(),
        "a client certificate from another CA got {stranger:?}"
    );
    assert_eq!(post_https(&h, &https_client(Some("client"))).await, Ok(200));
    assert_eq!(h.connect.received().len(), 1, "only the trusted client reached Connect");
}

#[tokio::test]
async fn unreadable_certificates_are_refused_by_check() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policy.toml"), "").unwrap();
    std::fs::write(dir.path().join("bad.pem"), "not a certificate").unwrap();
    let text = format!(
        "[server.tls]\ncert_file = \"bad.pem\"\nkey_file = \"{}\"\n[[auth.issuers]]\nissuer = \"i\"\naudiences = [\"a\"]\nalgorithms = [\"EdDSA\"]\njwks_url = \"https://i/jwks\"\n[connect]\nregion = \"us-east-1\"\n[policy]\nfile = \"policy.toml\"\n",
        tls_fixture("server.key").display()
    );
    let err = connect_monitor_gateway::test_util::Settings::from_toml(
        &text,
        &dir.path().join("g.toml"),
        connect_monitor_gateway::test_util::Environment::default(),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("server.tls") && err.to_string().contains("bad.pem"),
        "{err}"
    );
}

/// A CONNECT proxy on loopback that records every tunnel target.
struct ConnectProxy {
    addr: std::net::SocketAddr,
    targets: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ConnectProxy {
    async fn start() -> ConnectProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let targets = Arc::new(Mutex::new(Vec::new()));
        let t = targets.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let t = t.clone();
                tokio::spawn(async move {
                    let mut reader = BufReader::new(stream);
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).await.is_err() {
                        return;
                    }
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).await.is_err() || line == "\r\n" || line.is_empty() {
                            break;
                        }
                    }
                    let mut parts = request_line.split_whitespace();
                    let (Some("CONNECT"), Some(target)) = (parts.next(), parts.next()) else {
                        let _ = reader
                            .get_mut()
                            .write_all(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
                            .await;
                        return;
                    };
                    t.lock().unwrap().push(target.to_owned());
                    let Ok(mut upstream) = TcpStream::connect(target).await else {
                        let _ = reader.get_mut().write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                        return;
                    };
                    let mut client = reader.into_inner();
                    if client
                        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                        .await
                        .is_ok()
                    {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
            }
        });
        ConnectProxy { addr, targets, task }
    }

    fn targets(&self) -> Vec<String> {
        self.targets.lock().unwrap().clone()
    }
}

/// Egress as the gateway reads it from these environment variables.
fn egress_from(vars: &[(&str, String)]) -> Egress {
    let vars = vars.to_vec();
    let mut egress = Egress::from_env(move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone()));
    egress.extra_roots = support::test_ca();
    egress
}

#[tokio::test]
async fn connect_and_jwks_calls_go_through_the_https_proxy() {
    let proxy = ConnectProxy::start().await;
    let proxy_url = format!("http://{}", proxy.addr);
    let h = Harness::with(Options {
        connect_tls: true,
        egress: Some(egress_from(&[
            ("HTTPS_PROXY", proxy_url.clone()),
            ("http_proxy", proxy_url),
        ])),
        ..Default::default()
    })
    .await;
    let a = h.monitor(Some(&h.supervisor_token()), BODY).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    h.assert_signatures_verified();
    let targets = proxy.targets();
    let connect_target = format!("localhost:{}", h.connect.addr.port());
    assert!(
        targets.contains(&connect_target),
        "Connect went through the proxy: {targets:?}"
    );
    assert!(
        targets.contains(&h.issuer.addr.to_string()),
        "the JWKS fetch went through the proxy: {targets:?}"
    );
}

#[tokio::test]
async fn no_proxy_match_goes_direct() {
    let proxy = ConnectProxy::start().await;
    let proxy_url = format!("http://{}", proxy.addr);
    let h = Harness::with(Options {
        connect_tls: true,
        egress: Some(egress_from(&[
            ("HTTPS_PROXY", proxy_url.clone()),
            ("HTTP_PROXY", proxy_url),
            ("NO_PROXY", "localhost,127.0.0.1".into()),
        ])),
        ..Default::default()
    })
    .await;
    let a = h.monitor(Some(&h.supervisor_token()), BODY).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(proxy.targets(), Vec::<String>::new(), "nothing went through the proxy");
}

#[test]
fn no_proxy_variables_means_direct() {
    assert!(Egress::from_env(|_| None).proxy.is_none());
    assert!(
        Egress::from_env(|k| (k == "https_proxy").then(|| "http://p:3128".to_string()))
            .proxy
            .is_some()
    );
}

#[test]
fn certificates_are_reread_on_reload_and_a_bad_set_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::copy(tls_fixture("server.pem"), &cert).unwrap();
    std::fs::copy(tls_fixture("server.key"), &key).unwrap();
    let tls = connect_monitor_gateway::test_util::ReloadableTls::new(connect_monitor_gateway::test_util::TlsFiles {
        cert_file: cert.clone(),
        key_file: key.clone(),
        client_ca_file: None,
    })
    .unwrap();
    std::fs::write(
        &cert,
        "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    assert!(tls.reload().is_err(), "a broken certificate is refused");
    // A certificate that does not match the key is refused too.
    std::fs::copy(tls_fixture("client.pem"), &cert).unwrap();
    assert!(tls.reload().is_err(), "a certificate for another key is refused");
    std::fs::copy(tls_fixture("server.pem"), &cert).unwrap();
    assert!(tls.reload().is_ok(), "a good set is taken");
}
