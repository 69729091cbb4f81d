//! Token rules, table-driven: each forged, malformed or out-of-date token is
//! answered 401 UNAUTHENTICATED with `WWW-Authenticate: Bearer`, and Connect
//! sees nothing.

mod support;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use support::{now, Harness, BODY};

fn b64(v: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(v)
}

/// A token from raw header and payload text and a signature segment.
fn raw_token(header: &str, payload: &str, signature: &str) -> String {
    format!("{}.{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()), signature)
}

/// Valid claims with some members replaced (`null` removes one).
fn claims_with(h: &Harness, changes: Value) -> Value {
    let mut claims = h.claims("sup-1", "supervisors", "user-1");
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    claims
}

async fn unauthenticated(h: &Harness, case: &str, authorization: Option<String>) {
    let mut req = http::Request::post(h.url("/contact/monitor")).header("content-type", "application/json");
    if let Some(value) = authorization {
        req = req.header("authorization", value);
    }
    let a = h
        .send(
            req.body(http_body_util::Full::new(bytes::Bytes::from_static(BODY.as_bytes())))
                .unwrap(),
        )
        .await;
    assert_eq!((a.status, a.code()), (401, "UNAUTHENTICATED"), "{case}: {:?}", a.body);
    assert_eq!(a.headers["www-authenticate"], "Bearer", "{case}");
    assert!(h.connect.received().is_empty(), "{case}: Connect must see nothing");
}

#[tokio::test]
async fn missing_token_and_other_schemes_are_401() {
    let h = Harness::start().await;
    unauthenticated(&h, "no Authorization", None).await;
    unauthenticated(&h, "Basic scheme", Some("Basic dXNlcjpwYXNz".into())).await;
    unauthenticated(&h, "Bearer without token", Some("Bearer ".into())).await;
    unauthenticated(&h, "token without scheme", Some(h.supervisor_token())).await;
}

#[tokio::test]
async fn malformed_tokens_are_401() {
    let h = Harness::start().await;
    let good = h.supervisor_token();
    let parts: Vec<&str> = good.split('.').collect();
    let payload = serde_json::to_string(&h.claims("sup-1", "supervisors", "user-1")).unwrap();
    let cases = [
        ("two segments", format!("{}.{}", parts[0], parts[1])),
        ("four segments", format!("{good}.x")),
        ("JWE-shaped five segments", format!("{}.a.b.c.d", parts[0])),
        (
            "JSON serialization",
            json!({"payload": parts[1], "protected": parts[0], "signature": parts[2]}).to_string(),
        ),
        ("padding", format!("{}=.{}.{}", parts[0], parts[1], parts[2])),
        (
            "standard base64 characters",
            format!("{}.{}.{}+/", parts[0], parts[1], parts[2]),
        ),
        ("header not an object", raw_token("[\"EdDSA\"]", &payload, parts[2])),
        (
            "payload not an object",
            raw_token(r#"{"alg":"EdDSA","kid":"ed-1"}"#, "\"sup\"", parts[2]),
        ),
        (
            "duplicate alg in header",
            raw_token(r#"{"alg":"EdDSA","alg":"EdDSA","kid":"ed-1"}"#, &payload, parts[2]),
        ),
        ("empty signature", format!("{}.{}.", parts[0], parts[1])),
    ];
    for (case, token) in cases {
        unauthenticated(&h, case, Some(format!("Bearer {token}"))).await;
    }
}

#[tokio::test]
async fn forged_and_confused_algorithms_are_401() {
    let h = Harness::start().await;
    let payload = serde_json::to_string(&h.claims("sup-1", "supervisors", "user-1")).unwrap();
    let claims = h.claims("sup-1", "supervisors", "user-1");
    // HS256 "signed" with the issuer's public key material.
    let public_jwk = serde_json::to_vec(&h.keys.ec.public_jwk()).unwrap();
    let mut hs_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs_header.kid = Some("ec-1".into());
    let hs256 = jsonwebtoken::encode(
        &hs_header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&public_jwk),
    )
    .unwrap();
    // A valid EdDSA signature presented as ES256.
    let ed = h.keys.ed.mint(&claims);
    let ed_parts: Vec<&str> = ed.split('.').collect();
    let as_es256 = format!(
        "{}.{}.{}",
        b64(br#"{"alg":"ES256","kid":"ed-1"}"#),
        ed_parts[1],
        ed_parts[2]
    );
    let mut tampered = ed_parts.clone();
    let other_payload = b64(
        serde_json::to_string(&claims_with(&h, json!({"connect_user_id": "victim"})))
            .unwrap()
            .as_bytes(),
    );
    tampered[1] = &other_payload;
    let cases = [
        ("alg none", raw_token(r#"{"alg":"none"}"#, &payload, "")),
        ("alg None", raw_token(r#"{"alg":"None","kid":"ed-1"}"#, &payload, "")),
        ("alg missing", raw_token(r#"{"kid":"ed-1"}"#, &payload, ed_parts[2])),
        (
            "alg lower-case",
            raw_token(r#"{"alg":"eddsa","kid":"ed-1"}"#, &payload, ed_parts[2]),
        ),
        ("HS256 with the public key as secret", hs256),
        ("EdDSA signature labelled ES256", as_es256),
        ("payload changed after signing", tampered.join(".")),
        ("signed by a key the JWKS does not hold", h.keys.foreign.mint(&claims)),
        (
            "crit header",
            raw_token(r#"{"alg":"EdDSA","kid":"ed-1","crit":["exp"]}"#, &payload, ed_parts[2]),
        ),
        (
            "b64 false",
            raw_token(r#"{"alg":"EdDSA","kid":"ed-1","b64":false}"#, &payload, ed_parts[2]),
        ),
        (
            "kid not a string",
            raw_token(r#"{"alg":"EdDSA","kid":7}"#, &payload, ed_parts[2]),
        ),
        (
            "kid path traversal",
            raw_token(r#"{"alg":"EdDSA","kid":"../../etc/passwd"}"#, &payload, ed_parts[2]),
        ),
    ];
    for (case, token) in cases {
        unauthenticated(&h, case, Some(format!("Bearer {token}"))).await;
    }
}

#[tokio::test]
async fn claim_rules_are_enforced() {
    let h = Harness::start().await;
    let issuer = h.issuer.issuer();
    let cases = [
        ("exp missing", json!({"exp": null})),
        ("exp past beyond leeway", json!({"exp": now() - 120})),
        ("exp a string", json!({"exp": (now() + 600).to_string()})),
        ("exp a float too large", json!({"exp": 1e300})),
        ("nbf future beyond leeway", json!({"nbf": now() + 600})),
        ("iat future beyond leeway", json!({"iat": now() + 600})),
        ("iss mismatch", json!({"iss": "https://other.example"})),
        ("iss with trailing slash", json!({"iss": format!("{issuer}/")})),
        ("iss missing", json!({"iss": null})),
        ("aud missing", json!({"aud": null})),
        ("aud empty", json!({"aud": []})),
        ("aud without ours", json!({"aud": ["someone-else"]})),
        ("sub missing", json!({"sub": null})),
        ("sub empty", json!({"sub": ""})),
    ];
    for (case, changes) in cases {
        let token = h.keys.ed.mint(&claims_with(&h, changes));
        unauthenticated(&h, case, Some(format!("Bearer {token}"))).await;
    }
}

#[tokio::test]
async fn claims_within_leeway_are_accepted() {
    let h = Harness::start().await;
    let token = h.keys.ed.mint(&claims_with(
        &h,
        json!({"exp": now() - 30, "nbf": now() + 30, "iat": now() + 30}),
    ));
    let a = h.monitor(Some(&token), BODY).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    let token = h
        .keys
        .ed
        .mint(&claims_with(&h, json!({"aud": ["other", support::AUDIENCE]})));
    assert_eq!(
        h.monitor(Some(&token), BODY).await.status,
        200,
        "aud array holding ours"
    );
}

#[tokio::test]
async fn algorithm_outside_the_issuers_allow_list_is_401() {
    let h = Harness::with(support::Options {
        issuer_extra: String::new(),
        ..Default::default()
    })
    .await;
    // PS256 over the published RSA key: a fine algorithm, but not in this issuer's list.
    let rsa_pem = std::fs::read(format!("{}/tests/fixtures/rsa.pem", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let ps = connect_monitor_gateway::issuer_standin::SigningKey::from_pem(
        &rsa_pem,
        jsonwebtoken::Algorithm::PS256,
        "rsa-1",
    )
    .unwrap();
    let token = ps.mint(&h.claims("sup-1", "supervisors", "user-1"));
    unauthenticated(&h, "PS256 not allowed", Some(format!("Bearer {token}"))).await;
}
