//! Serving HTTP/1.1 connections: accept, optional TLS, the request-head
//! limits, and a bounded graceful drain; plus the shutdown signals.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use super::tls::ReloadableTls;
use super::Body;

/// Request head limits (start line and headers together).
const MAX_HEADERS: usize = 64;
const MAX_HEADER_BYTES: usize = 32 * 1024;

/// How one listener serves its connections.
#[derive(Clone)]
pub struct Listening {
    /// A client must send its whole request head within this.
    pub header_read_timeout: Duration,
    pub tls: Option<Arc<ReloadableTls>>,
    /// After shutdown, how long in-flight requests may take to finish.
    pub grace: Duration,
}

impl Listening {
    /// Plain HTTP, with the given head timeout and no drain.
    pub fn plain(header_read_timeout: Duration) -> Self {
        Listening {
            header_read_timeout,
            tls: None,
            grace: Duration::ZERO,
        }
    }
}

/// Accepts HTTP/1.1 connections until `shutdown` resolves, then drains within
/// the grace. HTTP/1 only: `Upgrade: h2c` is never honoured.
///
/// Requests hyper cannot parse (broken framing, a NUL in a header, an
/// oversized head) are answered by hyper itself with a bare 400 or 431 and
/// the connection closed: the handler never sees them.
pub async fn serve<F, Fut, E>(
    listener: TcpListener,
    listening: Listening,
    shutdown: impl Future<Output = ()>,
    handler: F,
) where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Body>, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(listening.header_read_timeout)
        // Room for a large JWT, not for header floods: 431 beyond either limit.
        .max_headers(MAX_HEADERS)
        .max_header_size(MAX_HEADER_BYTES);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors and the like: pause instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let accepted_at = Instant::now();
                let _ = stream.set_nodelay(true);
                let (handler, http, watcher, tls) = (handler.clone(), http.clone(), graceful.watcher(), listening.tls.clone());
                let header_read_timeout = listening.header_read_timeout;
                tokio::spawn(async move {
                    let served = match tls {
                        None => watcher.watch(http.serve_connection(TokioIo::new(stream), service_fn(handler))).await,
                        Some(tls) => {
                            // The handshake counts against the header read timeout too.
                            let accepted = tokio::time::timeout(header_read_timeout, tls.acceptor().accept(stream)).await;
                            let Ok(Ok(stream)) = accepted else {
                                tracing::debug!(peer_port = peer.port(), "TLS handshake failed or timed out");
                                return;
                            };
                            watcher.watch(http.serve_connection(TokioIo::new(stream), service_fn(handler))).await
                        }
                    };
                    // How long the gateway held the connection, from its own accept:
                    // what the connection-limit tests measure.
                    let lived_ms = accepted_at.elapsed().as_millis() as u64;
                    match served {
                        Ok(()) => tracing::debug!(peer_port = peer.port(), lived_ms, "connection closed"),
                        Err(e) => tracing::debug!(peer_port = peer.port(), lived_ms, error = %e, "connection closed with an error"),
                    }
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(listening.grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace ran out with requests still in flight");
    }
}

/// Resolves when SIGTERM (what orchestrators send) or SIGINT arrives.
pub(crate) async fn shutdown_signal() {
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
