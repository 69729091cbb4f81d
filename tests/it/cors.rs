//! CORS through the real stack: allowed origins get a preflight answer and
//! CORS headers; every other origin gets none.

use crate::support;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use support::{Harness, Options, BODY};

async fn cors_harness() -> Harness {
    Harness::with(Options {
        config: r#"
            [cors]
            allowed_origins = ["https://dash.example"]
            max_age = "5m"
        "#,
        ..Default::default()
    })
    .await
}

fn preflight(h: &Harness, origin: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method("OPTIONS")
        .uri(h.url("/contact/monitor"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization, content-type")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test]
async fn preflight_from_allowed_origin_is_answered_without_a_token() {
    let h = cors_harness().await;
    let a = h.send(preflight(&h, "https://dash.example")).await;
    assert_eq!(a.status, 204);
    assert_eq!(a.headers["access-control-allow-origin"], "https://dash.example");
    assert_eq!(a.headers["access-control-allow-methods"], "GET, POST");
    assert_eq!(
        a.headers["access-control-allow-headers"],
        "authorization, content-type, x-request-id"
    );
    assert_eq!(a.headers["access-control-max-age"], "300");
    assert_eq!(a.headers["vary"], "Origin");
}

#[tokio::test]
async fn allowed_origin_gets_cors_headers_on_the_answer() {
    let h = cors_harness().await;
    let req = Request::post(h.url("/contact/monitor"))
        .header("origin", "https://dash.example")
        .header("authorization", format!("Bearer {}", h.supervisor_token()))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(BODY.as_bytes())))
        .unwrap();
    let a = h.send(req).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.headers["access-control-allow-origin"], "https://dash.example");
    assert_eq!(a.headers["access-control-expose-headers"], "x-request-id");
    assert_eq!(a.headers["vary"], "Origin");
}

#[tokio::test]
async fn other_origins_get_no_cors_headers() {
    let h = cors_harness().await;
    let a = h.send(preflight(&h, "https://evil.example")).await;
    assert_eq!(a.status, 405);
    assert!(!a.headers.contains_key("access-control-allow-origin"));
    let req = Request::post(h.url("/contact/monitor"))
        .header("origin", "https://evil.example")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let a = h.send(req).await;
    assert_eq!(a.status, 401);
    assert!(a.headers.keys().all(|k| !k.as_str().starts_with("access-control-")));
}

#[tokio::test]
async fn no_cors_headers_when_no_origin_is_configured() {
    let h = Harness::start().await;
    let a = h.send(preflight(&h, "https://dash.example")).await;
    assert_eq!(a.status, 405);
    assert!(a.headers.keys().all(|k| !k.as_str().starts_with("access-control-")));
}
