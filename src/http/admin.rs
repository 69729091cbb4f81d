//! The admin listener: liveness, readiness and metrics, apart from the API so
//! probes and scrapes never compete with callers or need a token.

use std::sync::Arc;

use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Value};

use super::{json_response, Body};

/// What the admin endpoints report on; the gateway implements it.
pub(crate) trait Health: Send + Sync {
    /// Whether the API can serve now, with a check name → state map.
    fn readiness(&self) -> (bool, Value);
    /// The metrics exposition text.
    fn metrics_text(&self) -> String;
}

pub(crate) async fn handle(
    health: Arc<dyn Health>,
    req: Request<Incoming>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let id = crate::ids::random_uuid();
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
            let (ready, checks) = health.readiness();
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
            let mut r = Response::new(Body::from(health.metrics_text()));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            );
            r
        }
        _ => json_response(StatusCode::NOT_FOUND, &json!({"status": "not found"}), &id),
    })
}
