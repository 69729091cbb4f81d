//! The gateway's AWS credentials: asked once for many requests, again only
//! when they near expiry, and a clear 503 when there are none.

mod support;

use std::time::{Duration, Instant};

use support::{CountingCredentials, Harness, Options, BODY};

#[tokio::test]
async fn credentials_provider_is_asked_once_for_many_requests() {
    let h = Harness::start().await;
    let token = h.supervisor_token();
    let calls = (0..30).map(|_| h.monitor(Some(&token), BODY));
    for a in futures_like_join(calls).await {
        assert_eq!(a.status, 200);
    }
    assert_eq!(h.credentials.calls(), 1, "one provider call for 30 requests");
    h.assert_signatures_verified();
}

async fn futures_like_join<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut out = Vec::new();
    for f in futures {
        out.push(f.await);
    }
    out
}

#[tokio::test]
async fn credentials_are_asked_again_only_when_they_near_expiry() {
    // First credentials live for margin + 1.5 s; the next ones for an hour.
    let margin = Duration::from_secs(2);
    let first_lifetime = margin + Duration::from_millis(1500);
    let creds = CountingCredentials::new(vec![Some(first_lifetime), Some(Duration::from_secs(3600))]);
    let h = Harness::with(Options {
        credentials: creds.clone(),
        credentials_margin: margin,
        ..Default::default()
    })
    .await;
    let started = Instant::now();
    let token = h.supervisor_token();
    for _ in 0..5 {
        assert_eq!(h.monitor(Some(&token), BODY).await.status, 200);
    }
    assert_eq!(creds.calls(), 1, "fresh credentials are reused");
    // Wait (bounded) until the first credentials are inside the refresh margin.
    let near_expiry = first_lifetime - margin;
    tokio::time::sleep(near_expiry.saturating_sub(started.elapsed()) + Duration::from_millis(100)).await;
    for _ in 0..5 {
        assert_eq!(h.monitor(Some(&token), BODY).await.status, 200);
    }
    assert_eq!(creds.calls(), 2, "renewed once when near expiry, then reused");
    h.assert_signatures_verified();
}

#[derive(Debug)]
struct Failing;

impl aws_credential_types::provider::ProvideCredentials for Failing {
    fn provide_credentials<'a>(&'a self) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::ready(Err(
            aws_credential_types::provider::error::CredentialsError::not_loaded("no credentials in the test chain"),
        ))
    }
}

#[tokio::test]
async fn missing_credentials_answer_503_and_readyz_says_why() {
    let h = Harness::start().await;
    let g = h
        .gateway_with_credentials(aws_credential_types::provider::SharedCredentialsProvider::new(Failing))
        .await;
    let (status, body) = get(&h.client, &format!("http://{}/readyz", g.admin_addr.unwrap())).await;
    assert_eq!(status, 503);
    assert!(
        body.contains("aws_credentials") && body.contains("not resolved"),
        "{body}"
    );
    assert_eq!(h.monitor_at(&g).await, 503);
    assert!(h.connect.received().is_empty());
}

async fn get(client: &connect_monitor_gateway::http::client::HttpClient, url: &str) -> (u16, String) {
    use http_body_util::BodyExt;
    let req = http::Request::get(url)
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let r = client.request(req).await.unwrap();
    let status = r.status().as_u16();
    let body = r.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}
