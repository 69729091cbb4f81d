//! Benchmark helper (not a test): the bare pass-through that
//! `benches/gateway.sh` measures the gateway against. It is built from the
//! gateway's own stack and nothing else — a hyper 1 HTTP/1.1 server (one task
//! per connection, as the gateway serves), hyper-util's legacy pooled client
//! (HttpConnector, no delay, 30 s idle pool, as the gateway's client) and a
//! multi-thread tokio runtime with the default worker count — and it does
//! the least a forwarding proxy can do: read the POST body, send it to the
//! upstream at the same path with its content type, read the answer and
//! return its status, content type and body. No token, no policy, no
//! signing, no audit: what is left of the gateway's cost is the stack's.
//!
//! It runs as its own process so that its CPU time and memory can be read
//! from `/proc/<pid>` like the gateway's. It listens on `127.0.0.1:0` and
//! prints `listening <addr>` on stdout once it accepts connections.
//!
//! Usage: `bench_passthrough --upstream http://127.0.0.1:<port>`

use std::convert::Infallible;
use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;

type Upstream = Client<HttpConnector, Full<Bytes>>;

/// The largest body it reads, as the gateway's default `max_body_bytes`.
const MAX_BODY: usize = 8192;

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response
}

/// Forwards one request to `{upstream}{path}` and returns the upstream's answer.
async fn forward(client: Upstream, base: String, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Ok(plain(StatusCode::PAYLOAD_TOO_LARGE, "body too large\n")),
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let Ok(uri) = format!("{base}{path}").parse::<Uri>() else {
        return Ok(plain(StatusCode::BAD_REQUEST, "bad path\n"));
    };
    let content_type = parts
        .headers
        .get(CONTENT_TYPE)
        .cloned()
        .unwrap_or(HeaderValue::from_static("application/json"));
    let outbound = Request::builder()
        .method(parts.method)
        .uri(uri)
        .header(CONTENT_TYPE, content_type)
        .body(Full::new(body))
        .expect("a well-formed request");
    let answer = match client.request(outbound).await {
        Ok(answer) => answer,
        Err(_) => return Ok(plain(StatusCode::BAD_GATEWAY, "upstream unreachable\n")),
    };
    let (parts, body) = answer.into_parts();
    let Ok(body) = body.collect().await.map(|c| c.to_bytes()) else {
        return Ok(plain(StatusCode::BAD_GATEWAY, "upstream body unreadable\n"));
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = parts.status;
    if let Some(ct) = parts.headers.get(CONTENT_TYPE) {
        response.headers_mut().insert(CONTENT_TYPE, ct.clone());
    }
    Ok(response)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let upstream = args
        .iter()
        .position(|a| a == "--upstream")
        .and_then(|i| args.get(i + 1))
        .expect("usage: bench_passthrough --upstream http://127.0.0.1:<port>")
        .trim_end_matches('/')
        .to_owned();

    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    let client: Upstream = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector);

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
    let addr = listener.local_addr().expect("its address");
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening {addr}");
        let _ = out.flush();
    }

    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(5))
        .max_headers(64)
        .max_header_size(32 * 1024);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (http, client, base) = (http.clone(), client.clone(), upstream.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req| forward(client.clone(), base.clone(), req));
            let _ = http.serve_connection(TokioIo::new(stream), service).await;
        });
    }
}
