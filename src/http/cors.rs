//! CORS for browser dashboards (`[cors]`, docs/api.md): exact origin match,
//! preflight answered without a token, and no CORS headers at all otherwise.

use std::time::Duration;

use http::header::{
    HeaderValue, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use http::{HeaderMap, Method, Response, StatusCode};

use serde::Deserialize;

use super::Body;
use crate::check::{secs, Check, HumanDuration};

/// `[cors]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CorsSection {
    #[serde(default)]
    allowed_origins: Vec<String>,
    #[serde(default = "default_max_age")]
    max_age: HumanDuration,
}

fn default_max_age() -> HumanDuration {
    secs(600)
}

impl Default for CorsSection {
    fn default() -> Self {
        CorsSection {
            allowed_origins: Vec::new(),
            max_age: default_max_age(),
        }
    }
}

impl CorsSection {
    /// Checks every origin is an origin (scheme and host, no path).
    pub(crate) fn check(self, c: &mut Check) -> Cors {
        for (i, origin) in self.allowed_origins.iter().enumerate() {
            if !(origin.starts_with("http://") || origin.starts_with("https://")) || origin.ends_with('/') {
                c.bad(
                    format!("cors.allowed_origins[{i}]"),
                    format!("{origin:?} is not an origin like \"https://dashboard.example.com\""),
                );
            }
        }
        Cors::new(self.allowed_origins, self.max_age.0)
    }
}

/// The allowed origins and how long browsers may cache a preflight.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cors {
    allowed_origins: Vec<String>,
    max_age: Duration,
}

impl Cors {
    pub(crate) fn new(allowed_origins: Vec<String>, max_age: Duration) -> Self {
        Cors {
            allowed_origins,
            max_age,
        }
    }

    /// The request's origin, when it is one we allow (byte-for-byte).
    pub(crate) fn allowed_origin(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let origin = headers.get(ORIGIN)?;
        self.allowed_origins
            .iter()
            .any(|o| o.as_bytes() == origin.as_bytes())
            .then(|| origin.clone())
    }

    /// A preflight from an allowed origin, answered before authentication
    /// (browsers never send credentials on a preflight).
    pub(crate) fn preflight(&self, method: &Method, headers: &HeaderMap) -> Option<Response<Body>> {
        if method != Method::OPTIONS || !headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD) {
            return None;
        }
        let origin = self.allowed_origin(headers)?;
        let mut response = Response::new(Body::default());
        *response.status_mut() = StatusCode::NO_CONTENT;
        let h = response.headers_mut();
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(VARY, HeaderValue::from_static("Origin"));
        h.insert(ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST"));
        h.insert(
            ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type, x-request-id"),
        );
        h.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from(self.max_age.as_secs()));
        Some(response)
    }

    /// Adds the CORS headers to an answer for an allowed origin.
    pub(crate) fn decorate(&self, origin: Option<HeaderValue>, response: &mut Response<Body>) {
        if let Some(origin) = origin {
            let h = response.headers_mut();
            h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            h.insert(VARY, HeaderValue::from_static("Origin"));
            h.insert(ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("x-request-id"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap()))
            .collect()
    }

    fn cors() -> Cors {
        Cors::new(vec!["https://dash.example".into()], Duration::from_secs(600))
    }

    #[test]
    fn preflight_from_an_allowed_origin_is_answered() {
        let h = headers(&[
            ("origin", "https://dash.example"),
            ("access-control-request-method", "POST"),
        ]);
        let r = cors().preflight(&Method::OPTIONS, &h).unwrap();
        assert_eq!(r.status(), 204);
        assert_eq!(r.headers()["access-control-allow-origin"], "https://dash.example");
        assert_eq!(r.headers()["access-control-max-age"], "600");
        assert_eq!(r.headers()["vary"], "Origin");
    }

    #[test]
    fn other_origins_get_no_cors_headers() {
        for origin in ["https://dash.example.evil", "https://DASH.example", "null"] {
            let h = headers(&[("origin", origin), ("access-control-request-method", "POST")]);
            assert!(cors().preflight(&Method::OPTIONS, &h).is_none(), "{origin}");
            assert!(cors().allowed_origin(&h).is_none(), "{origin}");
        }
        let h = headers(&[("origin", "https://dash.example")]);
        assert!(
            Cors::default().allowed_origin(&h).is_none(),
            "empty list: no CORS at all"
        );
    }
}
