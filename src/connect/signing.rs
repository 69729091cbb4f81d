//! SigV4 signing of calls to Connect, with aws-sigv4. Signs what the official
//! SDK signs: host, x-amz-date and x-amz-security-token, plus content-type
//! when there is a body; content-length and user-agent are added after.
//! aws-sigv4's default settings encode the canonical path once more and
//! normalize it, as Connect (like every service but S3) expects.

use std::sync::Arc;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, HOST, USER_AGENT};
use http::Method;

use super::endpoint::Route;

/// The SigV4 signing name of Amazon Connect.
pub(crate) const SERVICE: &str = "connect";

/// The request could not be built or signed; the cause is kept.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the request to Connect could not be signed")]
pub(crate) struct SigningFailed(#[source] Arc<dyn std::error::Error + Send + Sync>);

fn failed(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> SigningFailed {
    SigningFailed(Arc::from(e.into()))
}

/// Builds the signed request for one attempt. Called again for every retry,
/// so each attempt carries a fresh `x-amz-date` over the same body.
pub(crate) fn signed_request(
    route: &Route,
    method: &Method,
    path_and_query: &str,
    body: Option<Bytes>,
    credentials: &Credentials,
    time: SystemTime,
) -> Result<http::Request<Bytes>, SigningFailed> {
    let mut builder = http::Request::builder()
        .method(method.clone())
        .uri(route.endpoint.uri(path_and_query).map_err(failed)?)
        .header(HOST, route.endpoint.host());
    if body.is_some() {
        builder = builder.header(CONTENT_TYPE, "application/json");
    }
    let mut request = builder.body(body.clone().unwrap_or_default()).map_err(failed)?;

    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&route.region)
        .name(SERVICE)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(failed)?
        .into();
    let signable = SignableRequest::new(
        method.as_str(),
        request.uri().to_string(),
        request
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_str().expect("headers we set are ASCII"))),
        SignableBody::Bytes(request.body()),
    )
    .map_err(failed)?;
    let (instructions, _signature) = sign(signable, &params).map_err(failed)?.into_parts();
    instructions.apply_to_request_http1x(&mut request);

    let length = request.body().len();
    let headers = request.headers_mut();
    if body.is_some() {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    }
    headers.insert(USER_AGENT, HeaderValue::from_static(crate::USER_AGENT));
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connect::endpoint::parse_endpoint;

    fn route() -> Route {
        Route {
            region: "eu-west-2".into(),
            endpoint: parse_endpoint("https://connect.eu-west-2.amazonaws.com").unwrap(),
            role_arn: None,
        }
    }

    fn creds() -> Credentials {
        Credentials::new("AKIDEXAMPLE", "secret", Some("session".into()), None, "t")
    }

    #[test]
    fn a_post_signs_the_sdk_header_set() {
        let body = Some(Bytes::from_static(b"{}"));
        let req = signed_request(
            &route(),
            &Method::POST,
            "/contact/monitor",
            body,
            &creds(),
            SystemTime::UNIX_EPOCH,
        )
        .unwrap();
        let auth = req.headers()["authorization"].to_str().unwrap();
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/19700101/eu-west-2/connect/aws4_request"));
        assert!(
            auth.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token,"),
            "{auth}"
        );
        assert_eq!(req.headers()["x-amz-security-token"], "session");
        assert_eq!(req.headers()["content-length"], "2");
        assert_eq!(req.headers()["host"], "connect.eu-west-2.amazonaws.com");
        let names: Vec<_> = req.headers().keys().map(|k| k.as_str()).collect();
        assert_eq!(
            names.len(),
            7,
            "host, content-type, x-amz-date, x-amz-security-token, authorization, content-length, user-agent: {names:?}"
        );
    }

    #[test]
    fn a_get_has_no_body_no_content_type_and_signs_the_empty_payload() {
        let req = signed_request(
            &route(),
            &Method::GET,
            "/users/inst/a%20b%2Fc",
            None,
            &creds(),
            SystemTime::UNIX_EPOCH,
        )
        .unwrap();
        let auth = req.headers()["authorization"].to_str().unwrap();
        assert!(
            auth.contains("SignedHeaders=host;x-amz-date;x-amz-security-token,"),
            "{auth}"
        );
        assert!(req.headers().get("content-type").is_none());
        assert!(req.headers().get("content-length").is_none());
        assert!(req.body().is_empty());
        assert_eq!(req.uri().path(), "/users/inst/a%20b%2Fc");
    }
}
