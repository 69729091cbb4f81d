//! The admin listener: liveness, readiness and metrics, apart from the API so
//! probes and scrapes never compete with callers or need a token.

use std::sync::Arc;

use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Map, Value};

use crate::pipeline::{json_response, Body, Gateway};

/// Readiness: every issuer has keys and AWS credentials are resolved.
pub fn readiness(gateway: &Gateway) -> (bool, Value) {
    let mut checks = Map::new();
    let mut ready = true;
    for issuer in gateway.authenticator.issuers() {
        let ok = issuer.has_keys();
        ready &= ok;
        checks.insert(
            format!("jwks:{}", issuer.issuer.issuer),
            Value::from(if ok { "ok" } else { "no keys" }),
        );
    }
    if gateway.draining.load(std::sync::atomic::Ordering::SeqCst) {
        ready = false;
        checks.insert("draining".into(), Value::from("shutting down"));
    }
    let creds = gateway.upstream.credentials().is_ready();
    ready &= creds;
    checks.insert(
        "aws_credentials".into(),
        Value::from(if creds { "ok" } else { "not resolved" }),
    );
    (ready, Value::Object(checks))
}

pub async fn handle(gateway: Arc<Gateway>, req: Request<Incoming>) -> Result<Response<Body>, std::convert::Infallible> {
    let id = uuid::Uuid::new_v4().to_string();
    if req.method() != Method::GET {
        let mut r = json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({"status": "method not allowed"}),
            &id,
        );
        r.headers_mut()
            .insert(http::header::ALLOW, HeaderValue::from_static("GET"));
        return Ok(r);
    }
    Ok(match req.uri().path() {
        "/healthz" => json_response(StatusCode::OK, &json!({"status": "ok"}), &id),
        "/readyz" => {
            let (ready, checks) = readiness(&gateway);
            if ready {
                json_response(StatusCode::OK, &json!({"status": "ready", "checks": checks}), &id)
            } else {
                json_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &json!({"status": "not_ready", "checks": checks}),
                    &id,
                )
            }
        }
        "/metrics" => {
            let mut r = Response::new(Body::from(gateway.metrics.render()));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            );
            r
        }
        _ => json_response(StatusCode::NOT_FOUND, &json!({"status": "not found"}), &id),
    })
}
