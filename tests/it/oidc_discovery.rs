//! OIDC discovery (`discovery = true`): the keys are found through the
//! issuer's own `/.well-known/openid-configuration`, which must name that
//! issuer exactly and an https (or loopback http) `jwks_uri`; when the
//! provider is down, the keys already held keep working.

use crate::support;

use std::time::Duration;

use serde_json::json;
use support::{Harness, Options, BODY};

fn discovery() -> Options<'static> {
    Options {
        config: r#"
            [[auth.issuers]]
            issuer = "{ISSUER}"
            audiences = ["connect-monitor-gateway"]
            algorithms = ["RS256", "ES256", "EdDSA"]
            discovery = true
            jwks_refresh = "1s"
        "#,
        ..Default::default()
    }
}

#[tokio::test]
async fn discovery_finds_the_keys_through_the_issuers_openid_configuration() {
    let h = Harness::with(discovery()).await;
    let a = h.monitor(Some(&h.supervisor_token()), BODY).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(h.admin("/readyz").await.0, 200);
    // The document and then the key set: two fetches at least.
    assert!(h.issuer.fetches() >= 2);
}

#[tokio::test]
async fn a_discovery_document_naming_another_issuer_is_refused() {
    let h = Harness::with(Options {
        // One trailing slash makes it another issuer: no byte may differ.
        discovery_document: Some(|i| json!({"issuer": format!("{}/", i.issuer()), "jwks_uri": i.jwks_url()})),
        ..discovery()
    })
    .await;
    let (status, body) = h.admin("/readyz").await;
    assert_eq!(status, 503, "no keys from a document for another issuer: {body}");
    let a = h.monitor(Some(&h.supervisor_token()), BODY).await;
    assert_eq!((a.status, a.code()), (503, "UNAVAILABLE"), "{:?}", a.body);
    let (_, metrics) = h.admin("/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("cmg_jwks_refresh_total{") && l.contains("result=\"error\"")),
        "{metrics}"
    );

    // Once the provider serves its own document, the next refresh finds the keys.
    h.issuer.set_discovery(None);
    support::wait_until(Duration::from_secs(15), "keys found after the fix", || {
        h.gateway().issuer_has_keys(0)
    })
    .await;
    assert_eq!(h.admin("/readyz").await.0, 200);
    assert_eq!(h.monitor(Some(&h.supervisor_token()), BODY).await.status, 200);
}

#[tokio::test]
async fn a_discovery_document_with_an_http_jwks_uri_is_refused() {
    let h = Harness::with(Options {
        // Plain http off loopback: refused before anything is fetched from it.
        discovery_document: Some(|i| json!({"issuer": i.issuer(), "jwks_uri": "http://keys.example.com/jwks.json"})),
        ..discovery()
    })
    .await;
    let (status, body) = h.admin("/readyz").await;
    assert_eq!(status, 503, "{body}");
    let a = h.monitor(Some(&h.supervisor_token()), BODY).await;
    assert_eq!(a.status, 503, "{:?}", a.body);
}

#[tokio::test]
async fn cached_keys_keep_working_while_the_discovery_provider_is_down() {
    let h = Harness::with(discovery()).await;
    assert_eq!(h.admin("/readyz").await.0, 200);
    support::issuer_outage_keeps_the_cached_keys(&h).await;
}
