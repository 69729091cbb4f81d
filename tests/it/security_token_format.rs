//! docs/security.md, tokens as written: the Authorization header, the token's
//! encoding, its JSON, the header members we refuse, and hostile `kid`s.
//! Each is refused with 401 and Connect sees nothing.

use crate::support;

use jsonwebtoken::Algorithm;
use serde_json::json;
use support::security_cases::{b64, case, relabel, run_all, sign_raw, token, Send, UNAUTH};
use support::Harness;

#[tokio::test]
async fn malformed_tokens_and_headers_are_refused_with_401() {
    let h = Harness::start().await;
    let claims = h.claims("sup-1", "supervisors", "user-1");
    let payload = claims.to_string();
    let good = h.keys.ed.mint(&claims);
    let parts: Vec<&str> = good.split('.').collect();
    let signed = |header: serde_json::Value, payload: &str| sign_raw(&header, payload, &h.keys.ed, Algorithm::EdDSA);
    let ed_kid = |kid: serde_json::Value| relabel(&good, json!({"alg": "EdDSA", "kid": kid}));
    let cases = vec![
        case("missing token", Send::Authorization(vec![]), 401, UNAUTH),
        case(
            "scheme other than Bearer",
            Send::Authorization(vec![format!("Basic {good}")]),
            401,
            UNAUTH,
        ),
        case(
            "two Authorization headers",
            Send::Authorization(vec![format!("Bearer {good}"), format!("Bearer {good}")]),
            401,
            UNAUTH,
        ),
        token("wrong number of segments", format!("{}.{}", parts[0], parts[1])),
        token("JWE-shaped (5 segments)", format!("{}.a.b.c.d", parts[0])),
        token(
            "JSON serialization",
            json!({"protected": parts[0], "payload": parts[1], "signature": parts[2]}).to_string(),
        ),
        token("padding =", format!("{}=.{}.{}", parts[0], parts[1], parts[2])),
        token(
            "standard-base64 +/ characters",
            format!("{}.{}.{}+/", parts[0], parts[1], parts[2]),
        ),
        token(
            "header not a JSON object",
            format!("{}.{}.{}", b64(b"[\"EdDSA\"]"), parts[1], parts[2]),
        ),
        token(
            "payload not a JSON object",
            signed(json!({"alg": "EdDSA", "kid": "ed-1"}), "[1]"),
        ),
        token(
            "duplicate keys in header",
            format!(
                "{}.{}.{}",
                b64(br#"{"alg":"EdDSA","kid":"ed-1","kid":"ed-1"}"#),
                parts[1],
                parts[2]
            ),
        ),
        token(
            "duplicate keys in payload",
            signed(
                json!({"alg": "EdDSA", "kid": "ed-1"}),
                &payload.replacen('{', r#"{"connect_user_id":"victim","#, 1),
            ),
        ),
        token(
            "crit with an entry we do not implement",
            signed(
                json!({"alg": "EdDSA", "kid": "ed-1", "crit": ["exp"], "exp": 1}),
                &payload,
            ),
        ),
        token(
            "b64 false",
            signed(
                json!({"alg": "EdDSA", "kid": "ed-1", "b64": false, "crit": ["b64"]}),
                &payload,
            ),
        ),
        token("kid unknown", ed_kid(json!("nope"))),
        token("kid not a string", ed_kid(json!(42))),
        token("kid path traversal", ed_kid(json!("../../../../etc/passwd"))),
        token("kid with SQL characters", ed_kid(json!("' OR '1'='1' --"))),
        token(
            "kid with shell characters",
            ed_kid(json!("$(touch /tmp/cmg-pwned); `id`")),
        ),
    ];
    run_all(&h, cases).await;
    assert!(!std::path::Path::new("/tmp/cmg-pwned").exists());
}
