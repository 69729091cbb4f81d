//! SigV4 signing of the outbound MonitorContact call, with aws-sigv4.
//! Signs what the official SDK signs: content-type, host, x-amz-date and
//! x-amz-security-token; content-length and user-agent are added after.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, HOST, USER_AGENT};

use crate::endpoint::Route;

/// The SigV4 signing name of Amazon Connect.
pub const SERVICE: &str = "connect";

#[derive(Debug, Clone, thiserror::Error)]
#[error("signing failed: {0}")]
pub struct SigningFailed(String);

/// Builds the signed request for one attempt. Called again for every retry,
/// so each attempt carries a fresh `x-amz-date` over the same body.
pub fn signed_request(
    route: &Route,
    body: Bytes,
    credentials: &Credentials,
    time: SystemTime,
) -> Result<http::Request<Bytes>, SigningFailed> {
    let mut request = http::Request::post(route.endpoint.monitor_contact_uri())
        .header(HOST, route.endpoint.host())
        .header(CONTENT_TYPE, "application/json")
        .body(body)
        .map_err(|e| SigningFailed(e.to_string()))?;

    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&route.region)
        .name(SERVICE)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| SigningFailed(e.to_string()))?
        .into();
    let signable = SignableRequest::new(
        "POST",
        request.uri().to_string(),
        request
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_str().expect("headers we set are ASCII"))),
        SignableBody::Bytes(request.body()),
    )
    .map_err(|e| SigningFailed(e.to_string()))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| SigningFailed(e.to_string()))?
        .into_parts();
    instructions.apply_to_request_http1x(&mut request);

    let length = request.body().len();
    let headers = request.headers_mut();
    headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(USER_AGENT, HeaderValue::from_static(crate::USER_AGENT));
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::parse_endpoint;

    #[test]
    fn signs_the_sdk_header_set() {
        let route = Route {
            region: "eu-west-2".into(),
            endpoint: parse_endpoint("https://connect.eu-west-2.amazonaws.com").unwrap(),
        };
        let creds = Credentials::new("AKIDEXAMPLE", "secret", Some("session".into()), None, "t");
        let req = signed_request(&route, Bytes::from_static(b"{}"), &creds, SystemTime::UNIX_EPOCH).unwrap();
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
}
